-- The sandbox gateways' own state: a separate system from ScanPay's order tables, in its own
-- SQLite file (data/sandbox/sandbox.db), so query / close / refund answer from the sandbox's
-- truth, as the real providers would. Money in fen, times in Unix milliseconds.

-- One trade per provider order (Alipay precreate / WeChat native).
CREATE TABLE sandbox_trades (
    id              TEXT    PRIMARY KEY,      -- random token in the wallet-page URL
    channel         TEXT    NOT NULL CHECK (channel IN ('alipay', 'wechat')),
    out_trade_no    TEXT    NOT NULL,
    account         TEXT    NOT NULL,         -- Alipay app_id / WeChat mchid that created it
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    subject         TEXT    NOT NULL,
    notify_url      TEXT    NOT NULL,
    request_digest  TEXT    NOT NULL,         -- what it was created with: a different repeat is refused
    -- created: QR issued; scanned: a wallet opened it (Alipay's trade exists from here);
    -- paid; closed.
    state           TEXT    NOT NULL CHECK (state IN ('created', 'scanned', 'paid', 'closed')),
    trade_no        TEXT    NOT NULL,         -- the provider's trade number
    refunded        BIGINT  NOT NULL DEFAULT 0,
    faults          TEXT    NOT NULL DEFAULT '',
    expires_at      BIGINT,
    created_at      BIGINT  NOT NULL,
    paid_at         BIGINT,
    UNIQUE (channel, out_trade_no)
);

-- Refunds, keyed by the merchant's idempotency key (out_request_no / out_refund_no).
CREATE TABLE sandbox_refunds (
    channel         TEXT    NOT NULL,
    out_refund_no   TEXT    NOT NULL,
    trade_id        TEXT    NOT NULL REFERENCES sandbox_trades (id),
    amount          BIGINT  NOT NULL CHECK (amount > 0),
    refund_id       TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (channel, out_refund_no)
);

-- Notification deliveries: one row per notification (a duplicate fault adds rows), retried on
-- the provider's schedule until acknowledged. Surviving a restart is the point of a table.
CREATE TABLE sandbox_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id        TEXT    NOT NULL REFERENCES sandbox_trades (id),
    notify_id       TEXT    NOT NULL,         -- stable across redeliveries
    stale           INTEGER NOT NULL DEFAULT 0, -- 1: an out-of-order unpaid-state copy
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         BIGINT,                   -- NULL: finished (acknowledged or schedule over)
    acknowledged    INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX sandbox_deliveries_due ON sandbox_deliveries (next_at) WHERE next_at IS NOT NULL;

-- Every attempt and how the merchant answered, for the sandbox's own page.
CREATE TABLE sandbox_attempts (
    delivery_id     INTEGER NOT NULL REFERENCES sandbox_deliveries (id),
    attempt         INTEGER NOT NULL,
    at              BIGINT  NOT NULL,
    status          INTEGER,                  -- NULL: no HTTP answer (connect error, timeout)
    body            TEXT    NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
