-- Active query: when ScanPay next asks the provider about an open attempt (a payment whose
-- notifications are all lost is still found), and how many times it has asked. The worker
-- claims due rows by moving next_query_at forward in one conditional UPDATE (a lease), so
-- several nodes never ask about the same attempt at once.
ALTER TABLE payment_attempts ADD COLUMN next_query_at BIGINT;
ALTER TABLE payment_attempts ADD COLUMN query_count BIGINT NOT NULL DEFAULT 0;
CREATE INDEX payment_attempts_due_query ON payment_attempts (status, next_query_at);
