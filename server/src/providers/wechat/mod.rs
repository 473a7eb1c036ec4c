//! WeChat Pay API v3: Native (QR) orders, query, close, refund, and the encrypted payment
//! notification. Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 …`; every response
//! and notification is verified against the WeChat Pay public key (`PUB_KEY_ID_…` serial) or
//! a platform key, within ±300 s of our clock; `WECHATPAY/SIGNTEST/` probes never verify.
//!
//! This file holds the account, the client and its signatures; `operations.rs` the
//! provider's operations (prepay, query, close, refund, notifications); `wire.rs` the JSON.

mod inapp;
mod operations;
pub mod wire;

use super::crypto::{aes_gcm_decrypt, Signer, Verifier};
use super::{
    transport_error, Channel, NotificationError, NotificationKind, NotifyReply, OutTradeNo,
    PayMethod, PaymentProvider, Prepay, PrepayRequest, ProviderError, RefundNotice, RefundRequest,
    RefundState, RefundStatus, ReplayGuard, TradeState, TradeStatus, VerifiedNotification,
};
use crate::infra::clock::Clock;
use crate::infra::secret::Secret;
use app::money::Amount;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::macros::offset;
use time::OffsetDateTime;

/// How far a signed timestamp may be from our clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// What identifies us to WeChat Pay, and which of its keys we trust.
#[derive(Clone, Debug)]
pub struct WechatAccount {
    /// `https://api.mch.weixin.qq.com`, without a trailing slash.
    pub api_base: String,
    pub appid: String,
    pub mchid: String,
    /// The serial number of our merchant API certificate (sent as `serial_no`).
    pub cert_serial: String,
    /// The id of the WeChat Pay key we verify with: `PUB_KEY_ID_…` or a platform serial.
    pub wechat_key_id: String,
    /// The official account's AppSecret, for OAuth (`snsapi_base`) before JSAPI; `None`:
    /// no payment inside WeChat's browser.
    pub app_secret: Option<Secret<String>>,
}

pub struct WechatPay {
    account: WechatAccount,
    /// Our merchant private key (`apiclient_key.pem`).
    signer: Arc<dyn Signer>,
    /// WeChat Pay's public key.
    verifier: Arc<dyn Verifier>,
    /// The APIv3 key: 32 ASCII bytes, decrypts notification resources.
    apiv3_key: Secret<[u8; 32]>,
    http: reqwest::Client,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    /// The path part of the API base (`""` for the real one, `/sandbox/wechat` for ours):
    /// signed requests cover the whole request path.
    base_path: String,
    /// Service-provider (partner) mode: the sub-merchant this client acts for, with our
    /// `mchid` as `sp_mchid` and our `appid` as `sp_appid` (providers.md part two §2.12).
    sub_mchid: Option<String>,
    /// Partner mode with the sub-merchant's own official account: payers sign in to it, the
    /// order names it as `sub_appid` and the payer as `sub_openid`, and the page's `appId`
    /// is it.
    sub_app: Option<crate::providers::SubApp>,
}

/// Why a signed message did not check out (shared by responses and notifications).
#[derive(Debug, PartialEq, Eq)]
enum SignatureProblem {
    Missing,
    Probe,
    Serial(String),
    Stale(i64),
    Bad,
}

impl WechatPay {
    pub fn new(
        account: WechatAccount,
        signer: Arc<dyn Signer>,
        verifier: Arc<dyn Verifier>,
        apiv3_key: Secret<[u8; 32]>,
        http: reqwest::Client,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> WechatPay {
        let base = account.api_base.as_str();
        let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
        let base_path = rest
            .find('/')
            .map(|i| rest[i..].trim_end_matches('/'))
            .unwrap_or("")
            .to_string();
        WechatPay {
            base_path,
            sub_mchid: None,
            sub_app: None,
            account,
            signer,
            verifier,
            apiv3_key,
            http,
            timeout,
            clock,
        }
    }

    /// This service provider acting for sub-merchant `sub_mchid`: the partner APIs, signed
    /// with our keys; the money lands in the sub-merchant's account.
    pub fn for_sub_merchant(
        &self,
        sub_mchid: &str,
        sub_app: Option<crate::providers::SubApp>,
    ) -> WechatPay {
        WechatPay {
            account: self.account.clone(),
            signer: self.signer.clone(),
            verifier: self.verifier.clone(),
            apiv3_key: self.apiv3_key.clone(),
            http: self.http.clone(),
            timeout: self.timeout,
            clock: self.clock.clone(),
            base_path: self.base_path.clone(),
            sub_mchid: Some(sub_mchid.to_string()),
            sub_app,
        }
    }

    /// The official account payers sign in to and the page pays under, with its AppSecret:
    /// the sub-merchant's own when it gave one, else ours (`None`: no AppSecret).
    fn pay_app(&self) -> (&str, Option<&Secret<String>>) {
        match &self.sub_app {
            Some(sub) => (&sub.appid, Some(&sub.secret)),
            None => (&self.account.appid, self.account.app_secret.as_ref()),
        }
    }

    /// The trades' API: the partner one when acting for a sub-merchant.
    fn trades(&self) -> &'static str {
        match self.sub_mchid {
            Some(_) => "/v3/pay/partner/transactions",
            None => "/v3/pay/transactions",
        }
    }

    /// Who a trade belongs to, as a query string: `mchid=…`, or `sp_mchid=…&sub_mchid=…`.
    fn owner_query(&self) -> String {
        match &self.sub_mchid {
            Some(sub) => format!("sp_mchid={}&sub_mchid={sub}", self.account.mchid),
            None => format!("mchid={}", self.account.mchid),
        }
    }

    pub fn account(&self) -> &WechatAccount {
        &self.account
    }

    /// The `Authorization` header for one request.
    pub fn authorization(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        timestamp: i64,
        nonce: &str,
    ) -> Result<String, ProviderError> {
        let message = wire::request_message(method, path_and_query, timestamp, nonce, body);
        let signature = self.signer.sign_base64(message.as_bytes())?;
        Ok(wire::authorization(
            &self.account.mchid,
            nonce,
            &signature,
            timestamp,
            &self.account.cert_serial,
        ))
    }

    fn check_signature(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<ReplayGuard, SignatureProblem> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(ts), Some(nonce), Some(signature), Some(serial)) = (
            get("wechatpay-timestamp"),
            get("wechatpay-nonce"),
            get("wechatpay-signature"),
            get("wechatpay-serial"),
        ) else {
            return Err(SignatureProblem::Missing);
        };
        if signature.starts_with("WECHATPAY/SIGNTEST/") {
            return Err(SignatureProblem::Probe);
        }
        if serial != self.account.wechat_key_id {
            return Err(SignatureProblem::Serial(serial.to_string()));
        }
        let stamp: i64 = ts.parse().map_err(|_| SignatureProblem::Bad)?;
        // abs_diff: an attacker's timestamp near i64::MIN must not overflow.
        let skew = i64::try_from(self.clock.now_unix().abs_diff(stamp)).unwrap_or(i64::MAX);
        if skew >= MAX_SKEW_SECS {
            return Err(SignatureProblem::Stale(skew));
        }
        if !self
            .verifier
            .verify_base64(&wire::response_message(ts, nonce, body), signature)
        {
            return Err(SignatureProblem::Bad);
        }
        let digest = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for part in [ts.as_bytes(), nonce.as_bytes(), body, signature.as_bytes()] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            format!("{:x}", h.finalize())
        };
        Ok(ReplayGuard {
            nonce: nonce.to_string(),
            signed_at: stamp,
            digest,
        })
    }

    /// Sends one signed request; returns the verified body of a 2xx answer.
    async fn request(
        &self,
        method: http::Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<Vec<u8>, ProviderError> {
        let body_text = body.unwrap_or_default();
        let timestamp = self.clock.now_unix();
        let nonce = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        // The signed URL is the request's whole path: any path of the API base included.
        let signed = format!("{}{path_and_query}", self.base_path);
        let auth = self.authorization(method.as_str(), &signed, &body_text, timestamp, &nonce)?;
        let mut req = self
            .http
            .request(
                method.clone(),
                format!("{}{}", self.account.api_base, path_and_query),
            )
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::ACCEPT, "application/json");
        if method != http::Method::GET {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body_text);
        }
        let response = req
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        if status >= 500 {
            return Err(ProviderError::Status { status });
        }
        match self.check_signature(&headers, &bytes) {
            Ok(_) => {}
            Err(SignatureProblem::Missing) => return Err(ProviderError::Unsigned),
            Err(_) => return Err(ProviderError::BadSignature),
        }
        if !(200..300).contains(&status) {
            return Err(
                match serde_json::from_slice::<wire::ErrorResponse>(&bytes) {
                    Ok(e) => ProviderError::Business {
                        code: e.code,
                        message: e.message,
                        sub_code: None,
                    },
                    Err(_) => ProviderError::Status { status },
                },
            );
        }
        Ok(bytes.to_vec())
    }

    /// A verified and decrypted refund notification (`REFUND.SUCCESS|ABNORMAL|CLOSED`). It
    /// names no app id (only `mchid`): decrypting under our APIv3 key shows it is ours.
    fn refund_notification(
        &self,
        id: String,
        plain: &[u8],
        guard: ReplayGuard,
    ) -> Result<VerifiedNotification, NotificationError> {
        let r: wire::RefundResource = serde_json::from_slice(plain)
            .map_err(|e| NotificationError::Malformed(format!("resource: {e}")))?;
        let missing = NotificationError::MissingField;
        let amount = r.amount.ok_or(missing("amount"))?;
        let fen = |v: Option<i64>, name: &'static str| {
            let v = v.ok_or(missing(name))?;
            Amount::from_fen(v).map_err(|_| NotificationError::BadAmount(v.to_string()))
        };
        let refund = fen(amount.refund, "amount.refund")?;
        if refund.fen() == 0 {
            return Err(NotificationError::BadAmount("0".into()));
        }
        let total = fen(amount.total, "amount.total")?;
        let provider_state = r.refund_status.ok_or(missing("refund_status"))?;
        // Partner mode names the service provider (us) and the sub-merchant instead.
        let merchant_account = match (r.sp_mchid, r.sub_mchid) {
            (Some(sp), Some(sub)) if sp == self.account.mchid => sub,
            (Some(sp), Some(_)) => {
                return Err(NotificationError::Malformed(format!(
                    "sp_mchid {sp} is not ours"
                )))
            }
            _ => r.mchid.ok_or(missing("mchid"))?,
        };
        Ok(VerifiedNotification {
            channel: Channel::Wechat,
            notification_id: id,
            out_trade_no: r.out_trade_no.ok_or(missing("out_trade_no"))?,
            provider_trade_no: r.transaction_id,
            state: TradeState::Pending,
            provider_state: format!("REFUND {provider_state}"),
            amount: total,
            currency: "CNY".into(),
            app_id: self.account.appid.clone(),
            merchant_account,
            replay_guard: Some(guard),
            kind: NotificationKind::Refund(RefundNotice {
                out_refund_no: r.out_refund_no.ok_or(missing("out_refund_no"))?,
                provider_refund_no: r.refund_id,
                state: wire::refund_state(&provider_state),
                provider_state,
                refund,
            }),
        })
    }

    fn trade_path(&self, out_trade_no: &OutTradeNo) -> Result<String, ProviderError> {
        let out_trade_no = out_trade_no.as_str();
        if out_trade_no.is_empty()
            || !out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ProviderError::Malformed(format!(
                "out_trade_no {out_trade_no:?} is not URL-safe"
            )));
        }
        Ok(format!("{}/out-trade-no/{out_trade_no}", self.trades()))
    }
}

/// A refund answer (request, query or abnormal application), checked to be about ours.
fn refund_status(bytes: &[u8], out_refund_no: &str) -> Result<RefundStatus, ProviderError> {
    let r: wire::RefundResponse = parse(bytes)?;
    if r.out_refund_no
        .as_deref()
        .is_some_and(|o| o != out_refund_no)
    {
        return Err(ProviderError::Malformed(
            "the refund answer names another out_refund_no".into(),
        ));
    }
    Ok(RefundStatus {
        state: wire::refund_state(&r.status),
        provider_state: r.status,
        provider_refund_no: r.refund_id,
    })
}

/// An id that goes into a URL path as it is.
fn url_safe(id: &str) -> Result<&str, ProviderError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
    {
        return Err(ProviderError::Malformed(format!("{id:?} is not URL-safe")));
    }
    Ok(id)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| ProviderError::Malformed(e.to_string()))
}

fn rfc3339_china(unix: i64) -> Result<String, ProviderError> {
    let t = OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| ProviderError::Malformed("expiry out of range".into()))?
        .to_offset(offset!(+8));
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| ProviderError::Malformed("expiry out of range".into()))
}
