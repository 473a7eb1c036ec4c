-- Payment attempts: each time a customer asks for a code in one wallet, ScanPay creates a
-- trade at that provider. Closing a trade at a provider burns its out_trade_no (both
-- providers refuse to reopen it), so every attempt has its own trade number: the order id for
-- the first, `<order id>_<seq>` after it (26 + 1 + up to 5 characters: within 32).
-- At most one attempt per order is live (`opening` while the prepay call runs, `open` once
-- the provider returned a code): switching wallet closes the live one first.
CREATE TABLE payment_attempts (
    out_trade_no        TEXT    PRIMARY KEY CHECK (length(out_trade_no) BETWEEN 6 AND 32),
    order_id            TEXT    NOT NULL REFERENCES orders (id),
    seq                 BIGINT  NOT NULL CHECK (seq >= 1),
    channel             TEXT    NOT NULL CHECK (channel IN ('alipay', 'wechat')),
    status              TEXT    NOT NULL CHECK (status IN ('opening', 'open', 'closed', 'failed', 'paid')),
    code_url            TEXT,
    provider_trade_no   TEXT,
    error               TEXT,
    created_at          BIGINT  NOT NULL,
    closed_at           BIGINT,
    UNIQUE (order_id, seq)
);
CREATE UNIQUE INDEX payment_attempts_one_live ON payment_attempts (order_id)
    WHERE status IN ('opening', 'open');
CREATE INDEX payment_attempts_by_order ON payment_attempts (order_id, seq);

-- The wallet the order was paid with, and the unguessable token of its aggregate code
-- (`/q/<token>`), which any wallet can scan.
ALTER TABLE orders ADD COLUMN paid_channel TEXT;
ALTER TABLE orders ADD COLUMN aggregate_token TEXT;
CREATE UNIQUE INDEX orders_by_aggregate_token ON orders (aggregate_token);
