-- Board accounts: the people of a merchant who sign in to the order board.

-- A user belongs to one merchant. The email is stored lower-cased and is unique across
-- merchants (it is what a person signs in with). The password is an argon2id PHC string;
-- NULL until the person chooses one through their one-time sign-in link.
CREATE TABLE users (
    id              TEXT    PRIMARY KEY,
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    email           TEXT    NOT NULL UNIQUE,
    password_hash   TEXT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX users_by_merchant ON users (merchant_id);

-- Signed-in browsers. The cookie holds 256 random bits; only their SHA-256 is stored, with the
-- session's CSRF token (sent back with every change the board makes).
CREATE TABLE sessions (
    token_hash      TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL REFERENCES users (id),
    csrf            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- One-time sign-in links (`scanpay merchant create`, `scanpay merchant login-link`): used once,
-- within their lifetime, to choose a password and sign in.
CREATE TABLE login_links (
    token_hash      TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL REFERENCES users (id),
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    used_at         BIGINT
);
