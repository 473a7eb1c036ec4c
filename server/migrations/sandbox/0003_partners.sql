-- Service-provider (partner) trades: `account` is the sub-merchant whose money it is (WeChat
-- sub_mchid / the Alipay app that authorised ours), `via` the service provider that made
-- and signs it (WeChat sp_mchid / our Alipay app id). NULL: a merchant's own trade.
ALTER TABLE sandbox_trades ADD COLUMN via TEXT;
