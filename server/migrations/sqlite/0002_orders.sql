-- Orders and their timeline. An order id doubles as the providers' out_trade_no, so it fits
-- both: at most 32 characters of [0-9A-Za-z_]. Status only moves forward (see
-- server/src/orders/status.rs); every change is a conditional UPDATE in a transaction that also
-- writes an order_events row, so the timeline and the status never disagree.
CREATE TABLE orders (
    id                  TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 6 AND 32),
    merchant_id         TEXT    NOT NULL REFERENCES merchants (id),
    amount              BIGINT  NOT NULL CHECK (amount BETWEEN 1 AND 10000000000),
    currency            TEXT    NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
    subject             TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 127),
    status              TEXT    NOT NULL CHECK (status IN
                            ('created', 'pending', 'paid', 'partially_refunded', 'refunded', 'expired', 'closed')),
    -- 1 when a payment arrived after the order had expired or was closed (BIGINT 0/1: the
    -- Any driver carries integers the same way on both engines, booleans not).
    late                BIGINT  NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    refunded_amount     BIGINT  NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    provider_trade_no   TEXT,
    return_url          TEXT,
    expires_at          BIGINT  NOT NULL,
    paid_at             BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, created_at);
CREATE INDEX orders_by_status_expiry ON orders (status, expires_at);

-- The timeline of an order: every transition and, later, every notification, query and
-- webhook. detail is JSON text.
CREATE TABLE order_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT    NOT NULL REFERENCES orders (id),
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}',
    created_at  BIGINT  NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (order_id, id);
