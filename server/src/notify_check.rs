//! `scanpay notify verify`: checks a raw notification (as a provider says it sent it, or as
//! the inbox stored it) against a public key, offline, and says whether it verifies, why not,
//! and what it says. The same verification code as the server, so its verdict is the server's.

use crate::infra::clock::Fixed;
use crate::infra::secret::Secret;
use crate::providers::alipay::{Alipay, AlipayAccount};
use crate::providers::crypto::{CryptoError, Signer};
use crate::providers::keys::{public_key_from_text, read_key_file};
use crate::providers::wechat::{WechatAccount, WechatPay};
use crate::providers::{
    Channel, NotificationError, PaymentProvider, TradeState, VerifiedNotification,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What to check: the arguments of `scanpay notify verify`.
#[derive(Clone, Debug, clap::Args)]
pub struct VerifyRequest {
    #[arg(long, value_parser = parse_channel)]
    pub provider: Channel,
    /// The raw body, exactly as received.
    #[arg(long)]
    pub body: PathBuf,
    /// WeChat: the headers, one `Name: value` per line (or the inbox's JSON object).
    #[arg(long)]
    pub headers: Option<PathBuf>,
    /// The provider's public key (Alipay public key / WeChat Pay public key or platform key;
    /// PEM or base64).
    #[arg(long)]
    pub public_key: PathBuf,
    /// WeChat: the APIv3 key file (32 bytes).
    #[arg(long)]
    pub apiv3_key_file: Option<PathBuf>,
    /// WeChat: the public key id to trust (default: the `Wechatpay-Serial` the notification
    /// names).
    #[arg(long)]
    pub key_id: Option<String>,
    /// WeChat: check the ±300 s window at this Unix second instead of now.
    #[arg(long)]
    pub at: Option<i64>,
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    Channel::parse(s).ok_or_else(|| format!("{s:?}: alipay or wechat"))
}

/// The verdict and a report for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub verified: bool,
    pub report: String,
}

/// The CLI has no private key: verification never signs.
struct NoSigner;

impl Signer for NoSigner {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Err(CryptoError::Sign)
    }
}

/// Verifies; `Err` only for unusable input (a missing file, a malformed key).
pub fn verify(req: &VerifyRequest) -> Result<Verdict, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let body = read(&req.body)?;
    let key_text = read_key_file(&req.public_key).map_err(|e| e.to_string())?;
    let verifier = Arc::new(
        public_key_from_text(&key_text)
            .map_err(|e| format!("{}: {e}", req.public_key.display()))?,
    );
    let headers = match &req.headers {
        Some(p) => parse_headers(&String::from_utf8_lossy(&read(p)?))?,
        None => http::HeaderMap::new(),
    };
    let http = reqwest::Client::new();
    let mut report = String::new();
    let _ = writeln!(report, "provider:   {}", req.provider);
    let _ = writeln!(report, "body:       {} bytes", body.len());
    let result = match req.provider {
        Channel::Alipay => {
            let client = Alipay::new(
                AlipayAccount {
                    gateway: String::new(),
                    app_id: String::new(),
                    seller_id: None,
                },
                Arc::new(NoSigner),
                verifier,
                http,
                Duration::from_secs(1),
            );
            client.verify_notification(&headers, &body)
        }
        Channel::Wechat => {
            let Some(key_file) = &req.apiv3_key_file else {
                return Err("--apiv3-key-file is required for WeChat Pay".into());
            };
            if req.headers.is_none() {
                return Err("--headers is required for WeChat Pay (the signature is there)".into());
            }
            let raw = read_key_file(key_file).map_err(|e| e.to_string())?;
            let apiv3: [u8; 32] = raw
                .trim_end_matches(['\r', '\n'])
                .as_bytes()
                .try_into()
                .map_err(|_| format!("{}: the APIv3 key must be 32 bytes", key_file.display()))?;
            let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
            let serial = header("wechatpay-serial").unwrap_or_default().to_string();
            let stamp: Option<i64> = header("wechatpay-timestamp").and_then(|t| t.parse().ok());
            let now = req
                .at
                .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
            let _ = writeln!(report, "serial:     {serial}");
            if let Some(t) = stamp {
                let _ = writeln!(
                    report,
                    "timestamp:  {t} ({} s from the time checked)",
                    t - now
                );
            }
            let client = |clock: i64| {
                WechatPay::new(
                    WechatAccount {
                        api_base: String::new(),
                        appid: String::new(),
                        mchid: String::new(),
                        cert_serial: String::new(),
                        wechat_key_id: req.key_id.clone().unwrap_or_else(|| serial.clone()),
                        app_secret: None,
                    },
                    Arc::new(NoSigner),
                    verifier.clone(),
                    Secret::new(apiv3),
                    http.clone(),
                    Duration::from_secs(1),
                    Arc::new(Fixed::at_unix(clock)),
                )
            };
            let result = client(now).verify_notification(&headers, &body);
            if let (Err(NotificationError::StaleTimestamp { .. }), Some(t)) = (&result, stamp) {
                // Tell a bad signature from an old one: check again at its own time.
                let again = client(t).verify_notification(&headers, &body);
                let _ = writeln!(
                    report,
                    "note:       {}",
                    if again.is_ok() {
                        "the signature itself verifies; only the time window fails (a provider redelivery is signed afresh)"
                    } else {
                        "the signature does not verify even at its own timestamp"
                    }
                );
            }
            result
        }
    };
    match result {
        Ok(n) => {
            describe(&mut report, &n);
            let _ = writeln!(report, "result:     VERIFIED");
            Ok(Verdict {
                verified: true,
                report,
            })
        }
        Err(e) => {
            let _ = writeln!(
                report,
                "reason:     {e} ({})",
                crate::risk::RiskKind::from(&e).as_str()
            );
            let _ = writeln!(report, "result:     NOT VERIFIED");
            Ok(Verdict {
                verified: false,
                report,
            })
        }
    }
}

fn describe(report: &mut String, n: &VerifiedNotification) {
    let state = match n.state {
        TradeState::Paid => "paid",
        TradeState::Pending => "not paid yet",
        TradeState::Closed => "closed",
        TradeState::Failed => "failed",
    };
    let _ = writeln!(report, "fields:");
    let _ = writeln!(report, "  notification id    {}", n.notification_id);
    let _ = writeln!(report, "  out_trade_no       {}", n.out_trade_no);
    let _ = writeln!(
        report,
        "  provider trade no  {}",
        n.provider_trade_no.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        report,
        "  state              {} ({state})",
        n.provider_state
    );
    let _ = writeln!(
        report,
        "  amount             {} {} ({} fen)",
        n.amount,
        n.currency,
        n.amount.fen()
    );
    let _ = writeln!(report, "  app id             {}", n.app_id);
    let _ = writeln!(report, "  merchant account   {}", n.merchant_account);
    if let Some(g) = &n.replay_guard {
        let _ = writeln!(report, "  nonce              {}", g.nonce);
    }
}

/// Reads headers written one `Name: value` per line (as `curl -v` or a log shows them; a
/// leading `> `/`< ` is dropped, other lines are ignored), or a JSON object of them.
pub fn parse_headers(text: &str) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::new();
    let mut put = |name: &str, value: &str| -> Result<(), String> {
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not a header value"))?;
        map.insert(name, value);
        Ok(())
    };
    if text.trim_start().starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("the headers JSON: {e}"))?;
        for (k, v) in object {
            put(&k, v.as_str().unwrap_or_default())?;
        }
        return Ok(map);
    }
    for line in text.lines() {
        let line = line
            .trim_start_matches("> ")
            .trim_start_matches("< ")
            .trim();
        if let Some((name, value)) = line.split_once(':') {
            if !name.is_empty() && !name.contains(' ') {
                put(name, value)?;
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_parse_from_curl_lines_and_from_json() {
        let h = super::parse_headers(
            "POST /notify/wechat HTTP/1.1\n> Wechatpay-Nonce: abc\nWechatpay-Timestamp: 1700000000\n\n",
        )
        .expect("parse");
        assert_eq!(h.get("wechatpay-nonce").expect("nonce"), "abc");
        assert_eq!(
            h.get("wechatpay-timestamp").expect("timestamp"),
            "1700000000"
        );
        assert_eq!(h.len(), 2);
        let j = super::parse_headers(r#"{"wechatpay-serial": "PUB_KEY_ID_1"}"#).expect("json");
        assert_eq!(j.get("wechatpay-serial").expect("serial"), "PUB_KEY_ID_1");
    }
}
