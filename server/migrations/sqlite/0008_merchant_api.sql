-- The merchant API (/api/v1).

-- API keys: shown once at creation; stored as the SHA-256 of the key (keys are 190 random
-- bits, so a fast hash is enough: nothing to brute-force), with a visible prefix so a person
-- can tell keys apart. Revoked keys stay for the record.
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    merchant_id     TEXT    NOT NULL REFERENCES merchants (id),
    name            TEXT    NOT NULL DEFAULT '',
    prefix          TEXT    NOT NULL,
    hash            TEXT    NOT NULL UNIQUE,
    created_at      BIGINT  NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, created_at);

-- Idempotency-Key: the first response to a (merchant, key) is kept for 24 hours and replayed
-- byte for byte to a repeat with the same request; another request under the key is refused.
-- `running` while the first request executes, so a concurrent repeat is turned away.
CREATE TABLE idempotency_keys (
    merchant_id     TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('running', 'done')),
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);

-- The merchant's own key/value data for an order, as JSON text.
ALTER TABLE orders ADD COLUMN metadata TEXT;
