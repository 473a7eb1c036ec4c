-- Refund outcomes as the providers report them: `abnormal` (WeChat ABNORMAL: the buyer's
-- card is gone, the money waits at WeChat until the merchant applies for the abnormal
-- refund; the amount stays reserved), the provider's own last word about a refund, and
-- whether it returns a second payment (`extra` = 1: the customer paid the order twice; its
-- refund is reserved on that payment's attempt, not on the order).
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'abnormal'));
ALTER TABLE refunds ADD COLUMN provider_state TEXT;
ALTER TABLE refunds ADD COLUMN extra BIGINT NOT NULL DEFAULT 0;

-- What is refunded or being refunded of a second payment (an attempt paid after another
-- already paid the order): reserved by one conditional UPDATE, released if the refund fails.
ALTER TABLE payment_attempts ADD COLUMN refund_reserved BIGINT NOT NULL DEFAULT 0;
