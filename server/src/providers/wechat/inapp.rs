//! WeChat inside its own browser and in plain phone browsers (providers.md part two
//! §2.6–2.8): the silent OAuth sign-in (`snsapi_base`) that names the payer's `openid`, the
//! JSAPI page parameters and their `paySign`, and the body parts of JSAPI and H5 orders.

use super::*;
use crate::providers::Payer;
use app::model::checkout::{WalletCall, WechatPayParams};

/// WeChat Pay's real API base: beside it, the real OAuth hosts; any other base (the
/// sandbox) serves OAuth under itself, at the real paths.
const REAL_API_BASE: &str = "https://api.mch.weixin.qq.com";

impl WechatPay {
    /// The browser-facing OAuth host and the server-facing `sns` API host.
    fn oauth_bases(&self) -> (&str, &str) {
        match self.account.api_base.as_str() {
            REAL_API_BASE => ("https://open.weixin.qq.com", "https://api.weixin.qq.com"),
            sandbox => (sandbox, sandbox),
        }
    }

    /// `snsapi_base`: silent, it names only the openid. `#wechat_redirect` is required;
    /// `connect_redirect=1` keeps WeChat from opening it twice (which burns the code).
    pub(super) fn oauth_authorize_url(&self, redirect_uri: &str, state: &str) -> Option<String> {
        let (appid, Some(_)) = self.pay_app() else {
            return None;
        };
        let (open, _) = self.oauth_bases();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("appid", appid)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "snsapi_base")
            .append_pair("state", state)
            .append_pair("connect_redirect", "1")
            .finish();
        Some(format!(
            "{open}/connect/oauth2/authorize?{query}#wechat_redirect"
        ))
    }

    /// `GET /sns/oauth2/access_token`: the openid behind a code. Errors come as HTTP 200
    /// with `errcode` (`40163` code used, `40029` invalid code); the AppSecret is in the URL,
    /// so no error message ever carries the URL.
    pub(super) async fn oauth_openid(&self, code: &str) -> Result<Payer, ProviderError> {
        let (appid, Some(secret)) = self.pay_app() else {
            return Err(ProviderError::Unsupported(
                "a WeChat sign-in without the AppSecret",
            ));
        };
        let (_, sns) = self.oauth_bases();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("appid", appid)
            .append_pair("secret", secret.expose())
            .append_pair("code", code)
            .append_pair("grant_type", "authorization_code")
            .finish();
        let response = self
            .http
            .get(format!("{sns}/sns/oauth2/access_token?{query}"))
            .send()
            .await
            .map_err(|e| transport_error(e.without_url(), self.timeout))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e.without_url(), self.timeout))?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Status { status });
        }
        let answer: wire::OauthToken = parse(&bytes)?;
        if let Some(code) = answer.errcode.filter(|c| *c != 0) {
            return Err(ProviderError::Business {
                code: code.to_string(),
                message: answer.errmsg.unwrap_or_default(),
                sub_code: None,
            });
        }
        answer
            .openid
            .and_then(|id| Payer::parse(&format!("wechat_openid:{id}")))
            .ok_or_else(|| ProviderError::Malformed("no valid openid in the answer".into()))
    }

    /// The parameters of `getBrandWCPayRequest` for a `prepay_id=…` package, signed now:
    /// `paySign` = SHA256withRSA over `appId\ntimeStamp\nnonceStr\npackage\n` with the
    /// merchant key. `appId` is the appid the payer signed in to (partner mode: the
    /// sub-merchant's own official account, when it gave one).
    pub fn jsapi_params(&self, package: &str) -> Result<WalletCall, ProviderError> {
        if !package.starts_with("prepay_id=") {
            return Err(ProviderError::Malformed(
                "a JSAPI attempt holds a prepay_id package".into(),
            ));
        }
        let time_stamp = self.clock.now_unix().to_string();
        let nonce_str = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        let app_id = self.pay_app().0.to_string();
        let message = wire::pay_sign_message(&app_id, &time_stamp, &nonce_str, package);
        let pay_sign = self.signer.sign_base64(message.as_bytes())?;
        Ok(WalletCall::Wechat(WechatPayParams {
            app_id,
            time_stamp,
            nonce_str,
            package: package.to_string(),
            sign_type: "RSA".into(),
            pay_sign,
        }))
    }

    /// The method's path and the members it adds to the order body; `Err` for a method
    /// WeChat does not have or a request missing what its method needs.
    pub(super) fn method_part(
        &self,
        req: &PrepayRequest,
        body: &mut serde_json::Value,
    ) -> Result<&'static str, ProviderError> {
        match (req.method, &req.payer, &req.client_ip) {
            (PayMethod::Native, _, _) => Ok("native"),
            (PayMethod::Jsapi, Some(Payer::WechatOpenId(openid)), _) => {
                // In partner mode the openid is of the sub-merchant's own official account
                // (`sub_openid`, beside `sub_appid`) or else of ours (`sp_openid`); a plain
                // `openid` is refused there.
                body["payer"] = match (&self.sub_mchid, &self.sub_app) {
                    (Some(_), Some(_)) => json!({ "sub_openid": openid }),
                    (Some(_), None) => json!({ "sp_openid": openid }),
                    (None, _) => json!({ "openid": openid }),
                };
                Ok("jsapi")
            }
            (PayMethod::H5, _, Some(ip)) => {
                body["scene_info"] = json!({
                    "payer_client_ip": ip,
                    "h5_info": { "type": "Wap" },
                });
                Ok("h5")
            }
            _ => Err(req.unsupported(Channel::Wechat)),
        }
    }
}

/// What an order call answers for each method, as the customer is handed it: the QR's
/// `code_url`; the JSAPI package `prepay_id=…`; the H5 cashier's URL with our return page as
/// its `redirect_url`.
pub(super) fn handed_out(req: &PrepayRequest, bytes: &[u8]) -> Result<String, ProviderError> {
    let answer: wire::OrderResponse = parse(bytes)?;
    let missing = |what: &str| ProviderError::Malformed(format!("the answer has no {what}"));
    match req.method {
        PayMethod::Jsapi => answer
            .prepay_id
            .map(|id| format!("prepay_id={id}"))
            .ok_or_else(|| missing("prepay_id")),
        PayMethod::H5 => {
            let url = answer.h5_url.ok_or_else(|| missing("h5_url"))?;
            Ok(match &req.return_url {
                Some(back) => {
                    let back: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}redirect_url={back}")
                }
                None => url,
            })
        }
        _ => answer.code_url.ok_or_else(|| missing("code_url")),
    }
}
