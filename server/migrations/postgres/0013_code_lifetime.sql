-- A provider's code lives at most two hours (Alipay precreate qr_code, WeChat Native
-- code_url), whatever the order's own time: `payable_until` is the last moment the attempt's
-- code can be paid at the provider (Unix ms; the time_expire sent with it). An attempt closed
-- on our side only (Alipay cannot close a code nobody scanned yet) stays under the active
-- query until then, so a payment through it whose notification is lost is still found.
ALTER TABLE payment_attempts ADD COLUMN payable_until BIGINT;
