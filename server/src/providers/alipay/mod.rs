//! Alipay OpenAPI v2 (RSA2): face-to-face precreate, query, close, refund, and the
//! asynchronous trade notification. Common parameters travel in the URL query and
//! `biz_content` in the form body, as the official SDKs send them; every response is verified
//! over its raw `*_response` text before a field of it is believed.

mod inapp;
mod transport;
pub mod wire;

use super::crypto::{Signer, Verifier};
use super::{
    state_of, transport_error, Channel, NotificationError, NotificationKind, NotifyReply,
    OutTradeNo, PayMethod, PaymentProvider, Prepay, PrepayRequest, ProviderError, RefundRequest,
    RefundState, RefundStatus, SubMerchant, TradeState, TradeStatus, VerifiedNotification,
};
use async_trait::async_trait;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::macros::{format_description, offset};
use time::OffsetDateTime;

/// What identifies us to Alipay.
#[derive(Clone, Debug)]
pub struct AlipayAccount {
    /// The gateway URL, e.g. `https://openapi.alipay.com/gateway.do`.
    pub gateway: String,
    pub app_id: String,
    /// Our seller (merchant) user id, `2088…`; notifications must name it.
    pub seller_id: Option<String>,
}

pub struct Alipay {
    account: AlipayAccount,
    /// Our application private key.
    signer: Arc<dyn Signer>,
    /// Alipay's public key, for responses and notifications.
    verifier: Arc<dyn Verifier>,
    http: reqwest::Client,
    /// The total timeout `http` was built with, for error messages.
    timeout: Duration,
    /// Third-party application (ISV) mode: the merchant whose app authorised ours.
    isv: Option<Isv>,
}

/// A merchant's authorisation of our app (`alipay.open.auth.token.app`): every call carries
/// its `app_auth_token`; the money settles to the merchant's own account (providers.md part
/// two §1.13).
#[derive(Clone)]
pub struct Isv {
    pub app_auth_token: crate::infra::secret::Secret<String>,
    /// The merchant's own app (`auth_app_id` in notifications).
    pub auth_app_id: String,
    /// The merchant's PID (`seller_id` in notifications).
    pub seller_id: String,
}

impl Alipay {
    pub fn new(
        account: AlipayAccount,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Alipay {
        Alipay {
            account,
            signer,
            verifier,
            http,
            timeout,
            isv: None,
        }
    }

    /// Our app acting for the merchant that authorised it.
    pub fn for_merchant(&self, isv: Isv) -> Alipay {
        Alipay {
            account: self.account.clone(),
            signer: self.signer.clone(),
            verifier: self.verifier.clone(),
            http: self.http.clone(),
            timeout: self.timeout,
            isv: Some(isv),
        }
    }

    pub fn account(&self) -> &AlipayAccount {
        &self.account
    }

    /// The signed parameters of one API call (all of them, `sign` included).
    pub fn signed_params(
        &self,
        method: &str,
        biz_content: &str,
        notify_url: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        self.signed_with(method, &[("biz_content", biz_content)], notify_url, now)
    }

    /// The signed parameters of a call whose business parameters are `extra` (most calls:
    /// `biz_content`; `alipay.system.oauth.token`: top-level `grant_type` and `code`; a page
    /// call also `return_url`).
    pub fn signed_with(
        &self,
        method: &str,
        extra: &[(&str, &str)],
        notify_url: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut params: BTreeMap<String, String> = [
            ("app_id", self.account.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        params.insert("timestamp".into(), china_time(now));
        if let Some(url) = notify_url {
            params.insert("notify_url".into(), url.to_string());
        }
        if let Some(isv) = &self.isv {
            params.insert("app_auth_token".into(), isv.app_auth_token.expose().clone());
        }
        let content = wire::sign_content(&params, &["sign"]);
        params.insert("sign".into(), self.signer.sign_base64(content.as_bytes())?);
        Ok(params)
    }

    /// Calls `method` and returns the verified raw `*_response` object text of a `10000` reply.
    async fn call(
        &self,
        method: &str,
        biz: serde_json::Value,
        notify_url: Option<&str>,
    ) -> Result<String, ProviderError> {
        let params = self.signed_params(
            method,
            &biz.to_string(),
            notify_url,
            OffsetDateTime::now_utc(),
        )?;
        self.post(method, &params).await
    }
}

fn parse<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, ProviderError> {
    serde_json::from_str(raw).map_err(|e| ProviderError::Malformed(e.to_string()))
}

/// `yyyy-MM-dd HH:mm:ss` in China time (GMT+8), as Alipay expects timestamps.
pub fn china_time(t: OffsetDateTime) -> String {
    t.to_offset(offset!(+8))
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_else(|_| unreachable!("a fixed format of a valid date always formats"))
}

fn is_trade_not_exist(err: &ProviderError) -> bool {
    matches!(err, ProviderError::Business { sub_code: Some(s), .. } if s == "ACQ.TRADE_NOT_EXIST")
}

#[async_trait]
impl PaymentProvider for Alipay {
    fn channel(&self) -> Channel {
        Channel::Alipay
    }

    fn identity(&self) -> super::ProviderIdentity {
        match &self.isv {
            Some(isv) => super::ProviderIdentity {
                app_id: isv.auth_app_id.clone(),
                merchant_account: Some(isv.seller_id.clone()),
            },
            None => super::ProviderIdentity {
                app_id: self.account.app_id.clone(),
                merchant_account: self.account.seller_id.clone(),
            },
        }
    }

    fn for_sub_merchant(&self, sub: &SubMerchant) -> Option<Arc<dyn PaymentProvider>> {
        match sub {
            SubMerchant::Alipay(isv) => Some(Arc::new(self.for_merchant(isv.clone()))),
            SubMerchant::Wechat { .. } => None,
        }
    }

    async fn create_prepay(&self, req: &PrepayRequest) -> Result<Prepay, ProviderError> {
        let expire = OffsetDateTime::from_unix_timestamp(req.expires_at.div_euclid(1000))
            .map_err(|_| ProviderError::Malformed("expiry out of range".into()))?;
        let mut biz = json!({
            "out_trade_no": req.out_trade_no,
            "total_amount": wire::format_amount(req.amount),
            "subject": req.subject,
            "time_expire": china_time(expire),
        });
        if let Some(seller) = &self.account.seller_id {
            biz["seller_id"] = json!(seller);
        }
        let method = self.method_part(req, &mut biz)?;
        match req.method {
            PayMethod::Wap => {
                return Ok(Prepay {
                    code_url: self.wap_url(req, &biz)?,
                })
            }
            PayMethod::Jsapi => {
                let raw = self.call(method, biz, Some(&req.notify_url)).await?;
                return Ok(Prepay {
                    code_url: self.created_trade(req, &raw)?,
                });
            }
            PayMethod::Native | PayMethod::H5 => {}
        }
        let raw = self.call(method, biz, Some(&req.notify_url)).await?;
        let r: wire::PrecreateResponse = parse(&raw)?;
        if r.out_trade_no
            .as_ref()
            .is_some_and(|o| *o != req.out_trade_no)
        {
            return Err(ProviderError::Malformed(
                "the response names another out_trade_no".into(),
            ));
        }
        Ok(Prepay {
            code_url: r.qr_code,
        })
    }

    fn authorize_url(&self, redirect_uri: &str, state: &str) -> Option<String> {
        Some(self.oauth_authorize_url(redirect_uri, state))
    }

    async fn payer_of_code(&self, code: &str) -> Result<super::Payer, ProviderError> {
        self.oauth_buyer(code).await
    }

    fn wallet_call(&self, code: &str) -> Result<app::model::checkout::WalletCall, ProviderError> {
        Ok(self.trade_pay_call(code))
    }

    fn verify_return(&self, query: &[(String, String)]) -> Result<OutTradeNo, NotificationError> {
        self.verified_return(query)
    }

    async fn query(&self, out_trade_no: &OutTradeNo) -> Result<TradeStatus, ProviderError> {
        match self
            .call(
                "alipay.trade.query",
                json!({ "out_trade_no": out_trade_no }),
                None,
            )
            .await
        {
            Ok(raw) => {
                let r: wire::QueryResponse = parse(&raw)?;
                if r.out_trade_no.as_ref() != Some(out_trade_no) {
                    return Err(ProviderError::Malformed(
                        "the query answer is not about our out_trade_no".into(),
                    ));
                }
                Ok(TradeStatus {
                    state: wire::trade_state(&r.trade_status),
                    amount: r.total_amount.as_deref().and_then(wire::parse_amount),
                    provider_state: r.trade_status,
                    provider_trade_no: r.trade_no,
                })
            }
            // Before the buyer scans, the trade does not exist at Alipay yet: still pending.
            Err(e) if is_trade_not_exist(&e) => Ok(TradeStatus {
                state: TradeState::Pending,
                provider_state: "ACQ.TRADE_NOT_EXIST".into(),
                provider_trade_no: None,
                amount: None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn close(&self, out_trade_no: &OutTradeNo) -> Result<(), ProviderError> {
        self.call(
            "alipay.trade.close",
            json!({ "out_trade_no": out_trade_no }),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundStatus, ProviderError> {
        let mut biz = json!({
            "out_trade_no": req.out_trade_no,
            "refund_amount": wire::format_amount(req.refund),
            "out_request_no": req.out_refund_no,
        });
        if let Some(reason) = &req.reason {
            biz["refund_reason"] = json!(reason);
        }
        let raw = self.call("alipay.trade.refund", biz, None).await?;
        let r: wire::RefundResponse = parse(&raw)?;
        if r.out_trade_no
            .as_ref()
            .is_some_and(|o| *o != req.out_trade_no)
        {
            return Err(ProviderError::Malformed(
                "the refund answer names another out_trade_no".into(),
            ));
        }
        // 10000 only means "accepted": fund_change Y is money moved by this call; N (or none)
        // is "confirm with the refund query", also what a repeat of a done refund answers.
        let moved = r.fund_change.as_deref() == Some("Y");
        Ok(RefundStatus {
            state: if moved {
                RefundState::Succeeded
            } else {
                RefundState::Pending
            },
            provider_state: format!("fund_change={}", r.fund_change.as_deref().unwrap_or("?")),
            provider_refund_no: r.trade_no,
        })
    }

    async fn refund_query(
        &self,
        out_trade_no: &OutTradeNo,
        out_refund_no: &str,
    ) -> Result<RefundStatus, ProviderError> {
        let raw = match self
            .call(
                "alipay.trade.fastpay.refund.query",
                json!({ "out_trade_no": out_trade_no, "out_request_no": out_refund_no }),
                None,
            )
            .await
        {
            Ok(raw) => raw,
            Err(e) if is_trade_not_exist(&e) => {
                return Ok(RefundStatus {
                    state: RefundState::NotFound,
                    provider_state: "ACQ.TRADE_NOT_EXIST".into(),
                    provider_refund_no: None,
                })
            }
            Err(e) => return Err(e),
        };
        let r: wire::RefundQueryResponse = parse(&raw)?;
        if r.out_trade_no.as_ref().is_some_and(|o| o != out_trade_no)
            || r.out_request_no
                .as_deref()
                .is_some_and(|o| o != out_refund_no)
        {
            return Err(ProviderError::Malformed(
                "the refund query answer names another refund".into(),
            ));
        }
        // REFUND_SUCCESS is the only success; no refund_status means "not received, or not
        // done": never a failure on its own.
        let state = match r.refund_status.as_deref() {
            Some(word) => state_of::<wire::RefundStatusWord>(word),
            None if r.refund_amount.is_none() => RefundState::NotFound,
            None => RefundState::Pending,
        };
        Ok(RefundStatus {
            state,
            provider_state: r.refund_status.unwrap_or_else(|| "no refund_status".into()),
            provider_refund_no: r.trade_no,
        })
    }

    fn verify_notification(
        &self,
        _headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedNotification, NotificationError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| NotificationError::Malformed("not UTF-8".into()))?;
        let mut fields = BTreeMap::new();
        // Decoded exactly once: decoding twice corrupts values that contain '%'.
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            if fields.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(NotificationError::Malformed(format!(
                    "field {k} appears twice"
                )));
            }
        }
        if let Some(charset) = fields.get("charset") {
            if !charset.eq_ignore_ascii_case("utf-8") {
                return Err(NotificationError::Malformed(format!(
                    "charset {charset} (we ask for utf-8)"
                )));
            }
        }
        if fields.get("sign_type").is_some_and(|t| t != "RSA2") {
            return Err(NotificationError::Malformed("sign_type is not RSA2".into()));
        }
        let sign = fields
            .get("sign")
            .ok_or(NotificationError::MissingField("sign"))?;
        let content = wire::sign_content(&fields, &["sign", "sign_type"]);
        if !self.verifier.verify_base64(content.as_bytes(), sign) {
            return Err(NotificationError::BadSignature);
        }
        let take = |name: &'static str| {
            fields
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(NotificationError::MissingField(name))
        };
        let total = take("total_amount")?;
        let provider_state = take("trade_status")?;
        // A trade_status_sync about a refund of ours carries these; it never pays nor closes.
        let echo = ["refund_fee", "gmt_refund", "out_biz_no"]
            .iter()
            .any(|f| fields.get(*f).is_some_and(|v| !v.is_empty()));
        Ok(VerifiedNotification {
            kind: if echo {
                NotificationKind::RefundEcho
            } else {
                NotificationKind::Payment
            },
            channel: Channel::Alipay,
            notification_id: take("notify_id")?,
            out_trade_no: OutTradeNo::new(take("out_trade_no")?),
            provider_trade_no: Some(take("trade_no")?),
            state: if echo {
                TradeState::Pending
            } else {
                wire::trade_state(&provider_state)
            },
            provider_state,
            amount: wire::parse_amount(&total).ok_or(NotificationError::BadAmount(total))?,
            currency: "CNY".into(),
            app_id: match &self.isv {
                // For a merchant that authorised our app: sent to our app, about theirs.
                Some(_) => {
                    if take("app_id")? != self.account.app_id {
                        return Err(NotificationError::Malformed("app_id is not our app".into()));
                    }
                    take("auth_app_id")?
                }
                None => take("app_id")?,
            },
            merchant_account: take("seller_id")?,
            replay_guard: None,
        })
    }

    fn acceptance_reply(&self) -> NotifyReply {
        text_reply(200, b"success")
    }

    /// Alipay reads only the body: anything but `success` means "send it again".
    fn refusal_reply(&self, status: u16, _message: &str) -> NotifyReply {
        text_reply(status, b"fail")
    }

    fn claimed_trade(&self, body: &[u8]) -> Option<String> {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == "out_trade_no")
            .map(|(_, v)| v.into_owned())
    }
}

fn text_reply(status: u16, body: &[u8]) -> NotifyReply {
    NotifyReply {
        status,
        content_type: Some("text/plain; charset=utf-8"),
        body: body.to_vec(),
    }
}
