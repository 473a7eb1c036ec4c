//! Alipay OpenAPI v2 wire rules: the signed content of requests and notifications, the raw
//! `*_response` substring that responses are signed over, the yuan-string amount codec, and
//! the exhaustive mapping of trade states. Pure functions; the client in `mod.rs` does I/O.

use super::super::{state_of, RefundState, StateWord, TradeState};
use app::money::Amount;
use std::collections::BTreeMap;

/// The content Alipay signs: every parameter except those in `exclude` and empty values,
/// sorted by key (byte order), joined as `k=v` with `&`, values raw (not URL-encoded).
/// Requests exclude only `sign`; trade notifications exclude `sign` and `sign_type`.
pub fn sign_content(params: &BTreeMap<String, String>, exclude: &[&str]) -> String {
    let mut out = String::new();
    for (k, v) in params {
        if v.is_empty() || exclude.contains(&k.as_str()) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The exact raw text of the object under top-level key `key` (from its `{` to the matching
/// `}`), found by a scan that respects JSON strings. Responses are signed over these bytes,
/// escapes (`\/`) and key order included, so they are never re-serialised.
pub fn raw_object<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = skip_string(b, i)?;
                if depth == 1 && &text[i + 1..end - 1] == key {
                    let mut j = skip_ws(b, end);
                    if b.get(j) == Some(&b':') {
                        j = skip_ws(b, j + 1);
                        if b.get(j) == Some(&b'{') {
                            let close = matching_brace(b, j)?;
                            return Some(&text[j..=close]);
                        }
                    }
                }
                i = end;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// Index just past the string that starts at `start` (a `"`).
fn skip_string(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn matching_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `1230` fen → `"12.30"`.
pub fn format_amount(amount: Amount) -> String {
    amount.yuan_string()
}

/// `"12.30"` → 1230 fen. Strict: digits, an optional point with one or two digits, no sign,
/// exponent, spaces or leading zeros; at most 100,000,000.00. Never through a float.
pub fn parse_amount(s: &str) -> Option<Amount> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => {
            if f.is_empty() || f.len() > 2 || !f.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (i, f)
        }
        None => (s, ""),
    };
    if int.is_empty() || int.len() > 9 || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if int.len() > 1 && int.starts_with('0') {
        return None;
    }
    let yuan: i64 = int.parse().ok()?;
    let fen_part: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    Amount::from_fen(yuan.checked_mul(100)?.checked_add(fen_part)?).ok()
}

/// Alipay's `trade_status` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatusWord {
    WaitBuyerPay,
    TradeClosed,
    TradeSuccess,
    TradeFinished,
    #[serde(other)]
    Unknown,
}

impl StateWord for TradeStatusWord {
    type State = TradeState;
    fn known(self) -> Option<TradeState> {
        match self {
            TradeStatusWord::TradeSuccess | TradeStatusWord::TradeFinished => {
                Some(TradeState::Paid)
            }
            TradeStatusWord::TradeClosed => Some(TradeState::Closed),
            TradeStatusWord::WaitBuyerPay => Some(TradeState::Pending),
            TradeStatusWord::Unknown => None,
        }
    }
}

/// Alipay's `trade_status`. Only `TRADE_SUCCESS` and `TRADE_FINISHED` are paid.
pub fn trade_state(status: &str) -> TradeState {
    state_of::<TradeStatusWord>(status)
}

/// The refund query's `refund_status` words: `REFUND_SUCCESS` is the only one documented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatusWord {
    RefundSuccess,
    #[serde(other)]
    Unknown,
}

impl StateWord for RefundStatusWord {
    type State = RefundState;
    fn known(self) -> Option<RefundState> {
        match self {
            RefundStatusWord::RefundSuccess => Some(RefundState::Succeeded),
            RefundStatusWord::Unknown => None,
        }
    }
}

/// The common fields of every `*_response` object.
#[derive(Debug, serde::Deserialize)]
pub struct Common {
    pub code: String,
    #[serde(default)]
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct CreateResponse {
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub trade_no: Option<String>,
}

/// `alipay_system_oauth_token_response`: `user_id` (2088…) for older apps, only `open_id`
/// for apps in the OpenID scheme.
#[derive(serde::Deserialize)]
pub struct OauthTokenResponse {
    pub user_id: Option<String>,
    pub open_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct PrecreateResponse {
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub qr_code: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct QueryResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub trade_status: String,
    pub total_amount: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RefundResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub fund_change: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct RefundQueryResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<crate::providers::OutTradeNo>,
    pub out_request_no: Option<String>,
    pub refund_status: Option<String>,
    pub refund_amount: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_format_with_two_places_and_parse_back_strictly() {
        let a = |f| Amount::from_fen(f).expect("valid");
        assert_eq!(format_amount(a(1230)), "12.30");
        assert_eq!(format_amount(a(1)), "0.01");
        assert_eq!(format_amount(a(10_000_000_000)), "100000000.00");
        assert_eq!(parse_amount("12.30"), Some(a(1230)));
        assert_eq!(parse_amount("12.3"), Some(a(1230)));
        assert_eq!(parse_amount("12"), Some(a(1200)));
        assert_eq!(parse_amount("0.01"), Some(a(1)));
        assert_eq!(parse_amount("100000000.00"), Some(a(10_000_000_000)));
        for bad in [
            "12.3.4",
            "-1",
            "1e3",
            "",
            ".5",
            "5.",
            "1.234",
            "+1",
            " 1",
            "1 ",
            "01",
            "0x10",
            "１２",
            "100000000.01",
            "1000000000",
            "NaN",
            "1,00",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad:?} must be refused");
        }
    }

    #[test]
    fn sign_content_sorts_drops_empty_and_excluded() {
        let p: BTreeMap<String, String> = [
            ("b", "2"),
            ("a", "1"),
            ("sign", "x"),
            ("sign_type", "RSA2"),
            ("e", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sign_content(&p, &["sign"]), "a=1&b=2&sign_type=RSA2");
        assert_eq!(sign_content(&p, &["sign", "sign_type"]), "a=1&b=2");
    }

    #[test]
    fn raw_object_respects_strings_and_nesting() {
        let text = r#"{"x_response":{"a":"}{\"","b":{"c":[1,{"d":"\/"}]}},"sign":"S"}"#;
        assert_eq!(
            raw_object(text, "x_response"),
            Some(r#"{"a":"}{\"","b":{"c":[1,{"d":"\/"}]}}"#)
        );
        assert_eq!(
            raw_object(
                r#"{"n":{"x_response":{}},"x_response" : {"k":1}}"#,
                "x_response"
            ),
            Some(r#"{"k":1}"#)
        );
        assert_eq!(
            raw_object(r#"{"x_response":{"a":1"#, "x_response"),
            None,
            "truncated"
        );
        assert_eq!(raw_object(r#"{"y_response":{}}"#, "x_response"), None);
    }

    #[test]
    fn only_explicit_success_states_are_paid() {
        assert_eq!(trade_state("TRADE_SUCCESS"), TradeState::Paid);
        assert_eq!(trade_state("TRADE_FINISHED"), TradeState::Paid);
        assert_eq!(trade_state("TRADE_CLOSED"), TradeState::Closed);
        assert_eq!(trade_state("WAIT_BUYER_PAY"), TradeState::Pending);
        assert_eq!(trade_state("TRADE_SUCCESS "), TradeState::Pending);
        assert_eq!(trade_state("SOMETHING_NEW"), TradeState::Pending);
        // The refund query: only REFUND_SUCCESS is an outcome; any other word is pending.
        for (word, want) in [
            ("REFUND_SUCCESS", RefundState::Succeeded),
            ("refund_success", RefundState::Pending),
            ("REFUND_FAIL", RefundState::Pending),
            ("", RefundState::Pending),
        ] {
            assert_eq!(state_of::<RefundStatusWord>(word), want, "{word:?}");
        }
    }
}
