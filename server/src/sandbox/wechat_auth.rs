//! The sandbox WeChat Pay API's side of authentication: which registered account signed a
//! request (`Authorization`: mchid, certificate serial, timestamp, signature), and answers
//! signed with that account's WeChat Pay key.

use super::{now_ms, Sandbox, SandboxAccount, Trade};
use crate::providers::crypto::{Signer, Verifier};
use crate::providers::wechat::{wire, MAX_SKEW_SECS};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// One authenticated request: the sandbox and the merchant account that signed it, which
/// signs the answer and owns the trades it may see.
pub(super) struct Req {
    pub(super) sb: Arc<Sandbox>,
    pub(super) account: Arc<SandboxAccount>,
}

impl std::ops::Deref for Req {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sb
    }
}

impl Req {
    pub(super) fn wechat_signed(&self, status: StatusCode, body: String) -> Response {
        signed(&self.account, status, body)
    }

    pub(super) fn wechat_error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        self.wechat_signed(
            status,
            json!({ "code": code, "message": message }).to_string(),
        )
    }

    /// The refusal of a partner call whose `sub_mchid` is no merchant here (every registered
    /// account may be a sub-merchant of every other; nobody else).
    pub(super) fn unknown_sub(&self, sub: Option<&str>) -> Option<Response> {
        sub.filter(|s| self.sb.by_mchid(s).is_none()).map(|_| {
            self.wechat_error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "sub_mchid 无效，或未与服务商建立关系",
            )
        })
    }

    /// This account's trade `out_trade_no` (or, with `sub`, the one it made as service
    /// provider for that sub-merchant): another merchant's does not exist for it.
    pub(super) async fn own_trade(
        &self,
        out_trade_no: &str,
        sub: Option<&str>,
    ) -> Result<Option<Trade>, sqlx::Error> {
        let mine = &self.account.wechat_mchid;
        Ok(self
            .sb
            .trade_by_out_no("wechat", out_trade_no)
            .await?
            .filter(|t| match sub {
                Some(sub) => t.account == sub && t.via.as_ref() == Some(mine),
                None => t.account == *mine && t.via.is_none(),
            }))
    }
}

/// A response signed the WeChat Pay way, with `account`'s WeChat Pay key.
fn signed(account: &SandboxAccount, status: StatusCode, body: String) -> Response {
    let ts = (now_ms() / 1000).to_string();
    let nonce = super::token(32);
    let sig = account
        .keys
        .wechat_gateway
        .sign_base64(&wire::response_message(&ts, &nonce, body.as_bytes()))
        .unwrap_or_default();
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("content-type", "application/json"),
        ("wechatpay-timestamp", ts.as_str()),
        ("wechatpay-nonce", nonce.as_str()),
        ("wechatpay-signature", sig.as_str()),
        ("wechatpay-serial", account.wechat_key_id.as_str()),
        ("wechatpay-signature-type", wire::AUTH_SCHEME),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    if let Ok(v) = super::token(32).parse() {
        h.insert("request-id", v);
    }
    r
}

impl Sandbox {
    /// A response signed with the default account's key (a refusal before the caller is
    /// known).
    pub(super) fn wechat_signed(&self, status: StatusCode, body: String) -> Response {
        signed(&self.default_account(), status, body)
    }

    pub(super) fn wechat_error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        self.wechat_signed(
            status,
            json!({ "code": code, "message": message }).to_string(),
        )
    }

    /// Checks the merchant's Authorization header for this request: the registered account
    /// that signed it, or why not.
    fn authenticate(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Arc<SandboxAccount>, &'static str> {
        let fields = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(wire::parse_authorization)
            .ok_or("Authorization 头缺失或格式错误")?;
        let (Some(mchid), Some(serial), Some(ts), Some(nonce), Some(sig)) = (
            fields.get("mchid"),
            fields.get("serial_no"),
            fields.get("timestamp").and_then(|t| t.parse::<i64>().ok()),
            fields.get("nonce_str"),
            fields.get("signature"),
        ) else {
            return Err("Authorization 缺少字段");
        };
        let account = self
            .by_mchid(mchid)
            .filter(|a| a.wechat_serial == *serial)
            .ok_or("商户号或证书序列号不正确")?;
        if (now_ms() / 1000).abs_diff(ts) >= MAX_SKEW_SECS.unsigned_abs() {
            return Err("timestamp 与系统时间相差超过 5 分钟");
        }
        let body = std::str::from_utf8(body).map_err(|_| "请求体不是 UTF-8")?;
        let message = wire::request_message(method.as_str(), uri, ts, nonce, body);
        if !account
            .keys
            .wechat_merchant
            .verify_base64(message.as_bytes(), sig)
        {
            return Err("签名错误");
        }
        Ok(account)
    }

    /// API-side faults, then authentication: the account that signed the call, or the
    /// response that refuses it.
    pub(super) async fn admit(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Arc<SandboxAccount>, Response> {
        if let Some(fault) = self.api_faults().await {
            return Err(fault);
        }
        self.authenticate(method, uri, headers, body)
            .map_err(|why| self.wechat_error(StatusCode::UNAUTHORIZED, "SIGN_ERROR", why))
    }
}
