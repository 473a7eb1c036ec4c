-- Refund outcomes as the providers report them: a refund can be accepted and still
-- processing (Alipay fund_change=N, WeChat PROCESSING), abnormal (WeChat: the buyer's card is
-- gone), or done. `answers` counts the refund calls answered for it (the refund_unknown and
-- refund_cut faults spoil only the first); `settles_at` is when a processing refund is done.
ALTER TABLE sandbox_refunds ADD COLUMN status TEXT NOT NULL DEFAULT 'SUCCESS'
    CHECK (status IN ('PROCESSING', 'SUCCESS', 'ABNORMAL', 'CLOSED'));
ALTER TABLE sandbox_refunds ADD COLUMN answers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sandbox_refunds ADD COLUMN settles_at BIGINT;
ALTER TABLE sandbox_refunds ADD COLUMN notify_url TEXT;

-- A delivery about a refund (WeChat REFUND.* notifications) names it; NULL: a trade's.
ALTER TABLE sandbox_deliveries ADD COLUMN out_refund_no TEXT;
