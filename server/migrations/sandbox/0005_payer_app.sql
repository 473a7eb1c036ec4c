-- The app a JSAPI trade's payer signed in to (WeChat: the ordering appid, or in partner mode
-- the service provider's appid for sp_openid or the sub-merchant's sub_appid for sub_openid):
-- the page must pay under that appId, and notifications name the payer in its field.
ALTER TABLE sandbox_trades ADD COLUMN payer_app TEXT;
