//! WeChat Pay API v3 wire rules: the signed messages, the `Authorization` header, the state
//! mappings and the JSON shapes. Pure; the client in `mod.rs` does I/O.

use super::super::{state_of, RefundState, StateWord, TradeState};

/// What a request signature covers: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, where URL is the
/// path with its query string and BODY the exact bytes sent (empty for GET).
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n")
}

/// What a response or notification signature covers: `TIMESTAMP\nNONCE\nBODY\n` over the raw
/// body bytes (an empty 204 body gives `ts\nnonce\n\n`).
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

pub fn authorization(
    mchid: &str,
    nonce: &str,
    signature: &str,
    timestamp: i64,
    serial: &str,
) -> String {
    format!(
        "{AUTH_SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{serial}\""
    )
}

/// The fields of an `Authorization` header (in any order), or `None` when it is not ours.
pub fn parse_authorization(header: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let rest = header.strip_prefix(AUTH_SCHEME)?.trim_start();
    let mut out = std::collections::BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        out.insert(k.to_string(), v.to_string());
    }
    Some(out)
}

/// WeChat's `trade_state` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStateWord {
    Success,
    Refund,
    Notpay,
    Closed,
    Revoked,
    Userpaying,
    Payerror,
    #[serde(other)]
    Unknown,
}

impl StateWord for TradeStateWord {
    type State = TradeState;
    fn known(self) -> Option<TradeState> {
        use TradeStateWord as W;
        match self {
            W::Success | W::Refund => Some(TradeState::Paid),
            W::Closed | W::Revoked => Some(TradeState::Closed),
            W::Payerror => Some(TradeState::Failed),
            W::Notpay | W::Userpaying => Some(TradeState::Pending),
            W::Unknown => None,
        }
    }
}

/// WeChat's `trade_state`. Only `SUCCESS` (and `REFUND`, a paid trade later refunded) is paid.
pub fn trade_state(state: &str) -> TradeState {
    state_of::<TradeStateWord>(state)
}

/// A refund's `status` words (`refund_status` in its notification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatusWord {
    Success,
    Closed,
    Processing,
    Abnormal,
    #[serde(other)]
    Unknown,
}

impl StateWord for RefundStatusWord {
    type State = RefundState;
    fn known(self) -> Option<RefundState> {
        use RefundStatusWord as W;
        match self {
            W::Success => Some(RefundState::Succeeded),
            W::Closed => Some(RefundState::Failed),
            // Not a failure: the money waits at WeChat for the merchant to send it another way.
            W::Abnormal => Some(RefundState::Abnormal),
            W::Processing => Some(RefundState::Pending),
            W::Unknown => None,
        }
    }
}

/// A refund's `status` (`refund_status` in its notification).
pub fn refund_state(status: &str) -> RefundState {
    state_of::<RefundStatusWord>(status)
}

/// The answer of an order call: Native's `code_url`, JSAPI's `prepay_id` or H5's `h5_url`.
#[derive(Debug, serde::Deserialize)]
pub struct OrderResponse {
    pub code_url: Option<String>,
    pub prepay_id: Option<String>,
    pub h5_url: Option<String>,
}

/// The answer of `sns/oauth2/access_token` (errors: HTTP 200 with `errcode`).
#[derive(serde::Deserialize)]
pub struct OauthToken {
    pub openid: Option<String>,
    pub errcode: Option<i64>,
    pub errmsg: Option<String>,
}

/// What `paySign` signs: four lines, each ending in `\n`, the last too.
pub fn pay_sign_message(app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> String {
    format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n")
}

#[derive(Debug, serde::Deserialize)]
pub struct ErrorResponse {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct AmountJson {
    pub total: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Transaction {
    pub appid: Option<String>,
    pub mchid: Option<String>,
    /// Partner mode: the service provider and the sub-merchant.
    #[serde(default)]
    pub sp_appid: Option<String>,
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_mchid: Option<String>,
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub transaction_id: Option<String>,
    pub trade_state: String,
    pub amount: Option<AmountJson>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RefundResponse {
    pub refund_id: Option<String>,
    pub out_refund_no: Option<String>,
    pub status: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct Notification {
    pub id: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    #[serde(default)]
    pub event_type: String,
    pub resource: Resource,
}

/// The decrypted resource of a refund notification.
#[derive(Debug, serde::Deserialize)]
pub struct RefundResource {
    pub mchid: Option<String>,
    /// Partner mode: the service provider and the sub-merchant.
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_mchid: Option<String>,
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub transaction_id: Option<String>,
    pub out_refund_no: Option<String>,
    pub refund_id: Option<String>,
    pub refund_status: Option<String>,
    pub amount: Option<RefundAmount>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RefundAmount {
    pub total: Option<i64>,
    pub refund: Option<i64>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Resource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_end_every_line_with_a_line_feed() {
        assert_eq!(
            request_message("GET", "/v3/x?mchid=1", 10, "N", ""),
            "GET\n/v3/x?mchid=1\n10\nN\n\n"
        );
        assert_eq!(response_message("10", "N", b""), b"10\nN\n\n");
    }

    #[test]
    fn authorization_round_trips_in_any_field_order() {
        let h = authorization("1900", "NONCE", "SIG+/=", 1554208460, "SERIAL");
        let f = parse_authorization(&h).expect("ours");
        assert_eq!(f["mchid"], "1900");
        assert_eq!(f["signature"], "SIG+/=");
        let other_order = "WECHATPAY2-SHA256-RSA2048 serial_no=\"S\",signature=\"X\",mchid=\"1\",timestamp=\"2\",nonce_str=\"N\"";
        assert_eq!(
            parse_authorization(other_order).expect("any order")["timestamp"],
            "2"
        );
        assert!(parse_authorization("Bearer x").is_none());
    }

    #[test]
    fn only_success_and_refund_states_are_paid() {
        assert_eq!(trade_state("SUCCESS"), TradeState::Paid);
        assert_eq!(trade_state("REFUND"), TradeState::Paid);
        for s in ["NOTPAY", "USERPAYING", "success", "", "NEW_STATE"] {
            assert_eq!(trade_state(s), TradeState::Pending, "{s}");
        }
        assert_eq!(trade_state("CLOSED"), TradeState::Closed);
        assert_eq!(trade_state("REVOKED"), TradeState::Closed);
        assert_eq!(trade_state("PAYERROR"), TradeState::Failed);
    }

    #[test]
    fn only_success_and_closed_end_a_refund() {
        assert_eq!(refund_state("SUCCESS"), RefundState::Succeeded);
        assert_eq!(refund_state("CLOSED"), RefundState::Failed);
        assert_eq!(refund_state("ABNORMAL"), RefundState::Abnormal);
        for s in ["PROCESSING", "CLOSE", "success", ""] {
            assert_eq!(refund_state(s), RefundState::Pending, "{s}");
        }
    }
}
