-- Merchant webhooks: each outbox event is POSTed to its merchant's endpoint, signed with the
-- merchant's secret (`ScanPay-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`), retried
-- on a schedule of about 24 hours until the first 2xx.
ALTER TABLE merchants ADD COLUMN webhook_url TEXT;
-- The HMAC key. It must be readable to sign with, so it is kept as is; it never appears in
-- logs or Debug output.
ALTER TABLE merchants ADD COLUMN webhook_secret TEXT;

-- Delivery state of each outbox event: `pending` until delivered, given up (`failed`, after
-- the whole schedule) or found to have no endpoint (`no_endpoint`). The worker claims due
-- rows by moving `claimed_until` forward in one conditional UPDATE … RETURNING (a lease), so
-- several nodes never send one event at once.
ALTER TABLE outbox ADD COLUMN delivery TEXT NOT NULL DEFAULT 'pending'
    CHECK (delivery IN ('pending', 'delivered', 'failed', 'no_endpoint'));
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN delivered_at BIGINT;
CREATE INDEX outbox_due ON outbox (delivery, next_attempt_at);

-- Every delivery attempt with its answer: the log the board shows per event.
CREATE TABLE webhook_attempts (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id       BIGINT  NOT NULL REFERENCES outbox (id),
    attempt         BIGINT  NOT NULL,
    manual          BIGINT  NOT NULL DEFAULT 0 CHECK (manual IN (0, 1)),
    at              BIGINT  NOT NULL,
    url             TEXT    NOT NULL,
    status          BIGINT,
    response        TEXT,
    error           TEXT,
    duration_ms     BIGINT  NOT NULL
);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (outbox_id, id);
