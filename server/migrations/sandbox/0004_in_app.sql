-- In-app and phone-browser payments (#18). Each trade records the product that made it
-- (WeChat trade_type NATIVE / JSAPI / MWEB; Alipay precreate, create or WAP), the buyer it
-- was made for (JSAPI, alipay.trade.create), and where the cashier sends the buyer back
-- (WeChat H5 redirect_url, Alipay WAP return_url).
ALTER TABLE sandbox_trades ADD COLUMN trade_type TEXT NOT NULL DEFAULT 'NATIVE';
ALTER TABLE sandbox_trades ADD COLUMN payer TEXT;
ALTER TABLE sandbox_trades ADD COLUMN return_url TEXT;

-- The one-time codes of the wallets' silent sign-ins (WeChat snsapi_base, Alipay auth_base):
-- used once, WeChat's dead after 5 minutes. `payer` is the id the exchange will name, `kind`
-- its kind (openid, user_id, open_id).
CREATE TABLE sandbox_oauth_codes (
    code       TEXT PRIMARY KEY,
    channel    TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    payer      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- The buyer ids each app was given by a sign-in: an order naming another is refused, as at
-- the providers (WeChat: appid and openid do not match; Alipay: ACQ.BUYER_NOT_EXIST).
CREATE TABLE sandbox_payers (
    channel TEXT NOT NULL,
    app_id  TEXT NOT NULL,
    payer   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (channel, app_id, payer)
);
