-- Refund outcomes as the providers report them: `abnormal` (WeChat ABNORMAL: the buyer's
-- card is gone, the money waits at WeChat until the merchant applies for the abnormal
-- refund; the amount stays reserved), the provider's own last word about a refund, and
-- whether it returns a second payment (`extra` = 1: the customer paid the order twice; its
-- refund is reserved on that payment's attempt, not on the order).
-- SQLite cannot widen a CHECK in place: the table is rebuilt with the same rows.
CREATE TABLE refunds_new (
    id                  TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 6 AND 64),
    order_id            TEXT    NOT NULL REFERENCES orders (id),
    merchant_id         TEXT    NOT NULL,
    out_trade_no        TEXT    NOT NULL,
    channel             TEXT    NOT NULL CHECK (channel IN ('alipay', 'wechat')),
    amount              BIGINT  NOT NULL CHECK (amount >= 1),
    reason              TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'abnormal')),
    provider_refund_no  TEXT,
    error               TEXT,
    attempts            BIGINT  NOT NULL DEFAULT 0,
    next_try_at         BIGINT,
    claimed_until       BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    provider_state      TEXT,
    extra               BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO refunds_new (id, order_id, merchant_id, out_trade_no, channel, amount, reason, status,
    provider_refund_no, error, attempts, next_try_at, claimed_until, created_at, updated_at)
SELECT id, order_id, merchant_id, out_trade_no, channel, amount, reason, status,
    provider_refund_no, error, attempts, next_try_at, claimed_until, created_at, updated_at
FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_new RENAME TO refunds;
CREATE INDEX refunds_by_order ON refunds (order_id, created_at);
CREATE INDEX refunds_due ON refunds (status, next_try_at);

-- What is refunded or being refunded of a second payment (an attempt paid after another
-- already paid the order): reserved by one conditional UPDATE, released if the refund fails.
ALTER TABLE payment_attempts ADD COLUMN refund_reserved BIGINT NOT NULL DEFAULT 0;
