-- Refunds through the provider that took the payment. A refund's id is also the provider's
-- idempotency key (Alipay out_request_no, WeChat out_refund_no), so asking again — after a
-- timeout, a crash, on another node — can never refund twice.
CREATE TABLE refunds (
    id                  TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 6 AND 64),
    order_id            TEXT    NOT NULL REFERENCES orders (id),
    merchant_id         TEXT    NOT NULL,
    out_trade_no        TEXT    NOT NULL,
    channel             TEXT    NOT NULL CHECK (channel IN ('alipay', 'wechat')),
    amount              BIGINT  NOT NULL CHECK (amount >= 1),
    reason              TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_refund_no  TEXT,
    error               TEXT,
    attempts            BIGINT  NOT NULL DEFAULT 0,
    next_try_at         BIGINT,
    claimed_until       BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX refunds_by_order ON refunds (order_id, created_at);
CREATE INDEX refunds_due ON refunds (status, next_try_at);

-- Money of refunds asked for but not settled yet. A refund is admitted by one conditional
-- UPDATE that keeps refunded_amount + refund_pending within the paid amount, so concurrent
-- refunds can never add up to more than was paid.
ALTER TABLE orders ADD COLUMN refund_pending BIGINT NOT NULL DEFAULT 0;
