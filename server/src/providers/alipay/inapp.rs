//! Alipay inside its own browser and in plain phone browsers (providers.md part two
//! §1.7–1.9): the silent `auth_base` sign-in and `alipay.system.oauth.token` that name the
//! buyer (a `user_id` or, for newer apps, an `open_id`), `alipay.trade.create` for
//! `tradePay`, the signed WAP cashier link, and the verification of its return.

use super::*;
use crate::providers::{PayMethod, Payer};
use app::model::checkout::WalletCall;

impl Alipay {
    /// Where the browser signs in: the real gateway's `openapi.` host becomes `openauth.`;
    /// any other gateway (the sandbox) serves it beside its `gateway.do`.
    fn authorize_base(&self) -> String {
        let gateway = self.account.gateway.as_str();
        let (scheme, rest) = gateway.split_once("://").unwrap_or(("https", gateway));
        match rest.strip_prefix("openapi") {
            Some(host) => {
                let host = host.split('/').next().unwrap_or_default();
                format!("{scheme}://openauth{host}/oauth2/publicAppAuthorize.htm")
            }
            None => {
                let base = gateway.split('?').next().unwrap_or_default();
                let base = base.strip_suffix("/gateway.do").unwrap_or(base);
                format!("{base}/oauth2/publicAppAuthorize.htm")
            }
        }
    }

    pub(super) fn oauth_authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("app_id", &self.account.app_id)
            .append_pair("scope", "auth_base")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .finish();
        format!("{}?{query}", self.authorize_base())
    }

    /// `alipay.system.oauth.token`: the buyer behind an `auth_code`, tagged with the kind of
    /// id that came back (`user_id` when the app still gets one, else `open_id`).
    pub(super) async fn oauth_buyer(&self, code: &str) -> Result<Payer, ProviderError> {
        const METHOD: &str = "alipay.system.oauth.token";
        let params = self.signed_with(
            METHOD,
            &[("grant_type", "authorization_code"), ("code", code)],
            None,
            OffsetDateTime::now_utc(),
        )?;
        let raw = self.post(METHOD, &params).await?;
        let answer: wire::OauthTokenResponse = parse(&raw)?;
        let present = |v: Option<String>| v.filter(|v| !v.is_empty() && v != "undefined");
        let payer = match (present(answer.user_id), present(answer.open_id)) {
            (Some(user_id), _) => Payer::parse(&format!("alipay_user_id:{user_id}")),
            (None, Some(open_id)) => Payer::parse(&format!("alipay_open_id:{open_id}")),
            (None, None) => None,
        };
        payer.ok_or_else(|| ProviderError::Malformed("no buyer id in the answer".into()))
    }

    /// The `biz_content` members of each method and the method's name; `Err` for a method
    /// Alipay does not have or a request missing what its method needs.
    pub(super) fn method_part(
        &self,
        req: &PrepayRequest,
        biz: &mut serde_json::Value,
    ) -> Result<&'static str, ProviderError> {
        match (req.method, &req.payer) {
            (PayMethod::Native, _) => Ok("alipay.trade.precreate"),
            // The id goes in the field of its kind: buyer_id for a 2088… user id,
            // buyer_open_id for an open id (the other field gives ACQ.BUYER_NOT_EXIST).
            (PayMethod::Jsapi, Some(Payer::AlipayUserId(id))) => {
                biz["buyer_id"] = json!(id);
                Ok("alipay.trade.create")
            }
            (PayMethod::Jsapi, Some(Payer::AlipayOpenId(id))) => {
                biz["buyer_open_id"] = json!(id);
                Ok("alipay.trade.create")
            }
            (PayMethod::Wap, _) => {
                biz["product_code"] = json!("QUICK_WAP_WAY");
                if let Some(back) = &req.return_url {
                    biz["quit_url"] = json!(back);
                }
                Ok("alipay.trade.wap.pay")
            }
            _ => Err(req.unsupported(Channel::Alipay)),
        }
    }

    /// WAP is a page call: no server-to-server request. The customer's browser is sent to
    /// the gateway with every parameter signed (`return_url` and `notify_url` included).
    pub(super) fn wap_url(
        &self,
        req: &PrepayRequest,
        biz: &serde_json::Value,
    ) -> Result<String, ProviderError> {
        let biz = biz.to_string();
        let mut extra = vec![("biz_content", biz.as_str())];
        if let Some(back) = &req.return_url {
            extra.push(("return_url", back.as_str()));
        }
        let params = self.signed_with(
            "alipay.trade.wap.pay",
            &extra,
            Some(&req.notify_url),
            OffsetDateTime::now_utc(),
        )?;
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let sep = if self.account.gateway.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{query}", self.account.gateway))
    }

    /// `alipay.trade.create`'s answer: the trade number `tradePay` is given.
    pub(super) fn created_trade(
        &self,
        req: &PrepayRequest,
        raw: &str,
    ) -> Result<String, ProviderError> {
        let r: wire::CreateResponse = parse(raw)?;
        if r.out_trade_no
            .as_ref()
            .is_some_and(|o| *o != req.out_trade_no)
        {
            return Err(ProviderError::Malformed(
                "the response names another out_trade_no".into(),
            ));
        }
        r.trade_no
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ProviderError::Malformed("the answer has no trade_no".into()))
    }

    /// The return of the WAP cashier (`method=alipay.trade.wap.pay.return`): verified like a
    /// notification (every field but `sign` and `sign_type`, decoded once, sorted), from our
    /// app. It carries no trade state: it only names the trade to look at.
    pub(super) fn verified_return(
        &self,
        query: &[(String, String)],
    ) -> Result<OutTradeNo, NotificationError> {
        let mut fields = BTreeMap::new();
        for (k, v) in query {
            if fields.insert(k.clone(), v.clone()).is_some() {
                return Err(NotificationError::Malformed(format!("{k} appears twice")));
            }
        }
        // Our own parameter on the return page, not Alipay's.
        fields.remove("back");
        let sign = fields
            .get("sign")
            .ok_or(NotificationError::MissingField("sign"))?;
        if fields.get("sign_type").is_some_and(|t| t != "RSA2") {
            return Err(NotificationError::Malformed("sign_type is not RSA2".into()));
        }
        let content = wire::sign_content(&fields, &["sign", "sign_type"]);
        if !self.verifier.verify_base64(content.as_bytes(), sign) {
            return Err(NotificationError::BadSignature);
        }
        let ours = self.identity().app_id;
        let app = fields
            .get("auth_app_id")
            .or_else(|| fields.get("app_id"))
            .ok_or(NotificationError::MissingField("app_id"))?;
        if *app != ours && fields.get("app_id") != Some(&self.account.app_id) {
            return Err(NotificationError::Malformed("another app's return".into()));
        }
        fields
            .get("out_trade_no")
            .map(|o| OutTradeNo::new(o.as_str()))
            .ok_or(NotificationError::MissingField("out_trade_no"))
    }

    pub(super) fn trade_pay_call(&self, trade_no: &str) -> WalletCall {
        WalletCall::Alipay {
            trade_no: trade_no.to_string(),
        }
    }
}
