-- How each attempt is paid (#18): `native` (a code on a screen, scanned by the wallet),
-- `jsapi` (inside a wallet's own browser: WeChat JSAPI after OAuth, Alipay trade.create and
-- tradePay after auth_base), `h5` (WeChat H5 in a plain phone browser) or `wap` (Alipay WAP).
-- Attempts made before this were all native. Query, close, refund and expiry work the same
-- for every method; `code_url` holds what the method hands the customer (the QR's URL, the
-- JSAPI `prepay_id=…` package, Alipay's trade number, the H5 or WAP cashier's URL).
ALTER TABLE payment_attempts ADD COLUMN method TEXT NOT NULL DEFAULT 'native';

-- Who pays a jsapi attempt, as the wallet named them through OAuth, tagged with the kind of
-- id (`wechat_openid:…`, `alipay_user_id:…`, `alipay_open_id:…`): Alipay's order must be
-- given the id in the field of its kind (buyer_id or buyer_open_id). NULL for the others.
ALTER TABLE payment_attempts ADD COLUMN payer TEXT;

-- The `state` of each wallet sign-in (OAuth) we start from an aggregate code: random, bound
-- to the code's order token and the wallet, used once, honoured for 10 minutes. A state
-- that is not here (made up or changed), used already or too old is refused, so a sign-in
-- cannot be replayed into another order.
CREATE TABLE pay_states (
    state      TEXT PRIMARY KEY,
    token      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX pay_states_created ON pay_states (created_at);
