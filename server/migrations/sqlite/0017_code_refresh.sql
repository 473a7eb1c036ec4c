-- When the code an attempt hands out was issued (#18). WeChat's codes (Native `code_url`,
-- JSAPI `prepay_id`) live two hours whatever the order's `time_expire`, and repeating the
-- order call with the same parameters before `time_expire` gives a fresh code for the same
-- trade: so a WeChat attempt is payable until the order's own end (`payable_until`), and its
-- code is renewed by that re-call before `code_at` + 2 h. NULL: issued when the attempt was
-- made (`created_at`).
ALTER TABLE payment_attempts ADD COLUMN code_at BIGINT;
