-- A shop's fixed code (#18, the 收款码 at the counter): a permanent `/p/<code>` any wallet or
-- phone camera scans; the customer types the amount. `code` is 16 random letters and digits
-- (printed, so public, but not guessable from another); `name` says where it hangs. A
-- disabled code stays (its orders name it) but takes no new payment.
CREATE TABLE shop_codes (
    code        TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE INDEX shop_codes_merchant ON shop_codes (merchant_id, created_at);

-- The fixed code an order was paid through; NULL for any other order.
ALTER TABLE orders ADD COLUMN shop_code TEXT;
