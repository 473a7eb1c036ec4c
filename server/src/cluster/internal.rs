//! The internal calls between nodes: `POST /internal/v1/payments/start` runs a payment flow on
//! the node it is sent to.
//!
//! Every call is signed with the cluster secret: HMAC-SHA256 over the method, the path, the
//! timestamp, a nonce, the calling node's id and the body, in `ScanPay-Signature` (hex). A
//! call is refused (401) when the secret is not set here, a header is missing, the timestamp is
//! more than [`WINDOW_SECS`] away from this node's clock, the signature does not verify, or its
//! nonce was seen before (on any node: nonces are kept in the shared database).

use crate::payments::{Attempt, PaymentError};
use crate::providers::Channel;
use app::status::OrderStatus;
use serde::{Deserialize, Serialize};

pub const START_PATH: &str = "/internal/v1/payments/start";
/// How far a call's timestamp may be from this node's clock.
pub const WINDOW_SECS: i64 = 30;
/// How long nonces are remembered: longer than the window, so a replay inside it is caught.
pub const NONCE_MEMORY_MS: i64 = 2 * WINDOW_SECS * 1000 + 10_000;

pub const NODE_HEADER: &str = "scanpay-node";
pub const TIMESTAMP_HEADER: &str = "scanpay-timestamp";
pub const NONCE_HEADER: &str = "scanpay-nonce";
pub const SIGNATURE_HEADER: &str = "scanpay-signature";

fn message(method: &str, path: &str, ts: i64, nonce: &str, node: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{method}\n{path}\n{ts}\n{nonce}\n{node}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

fn key(secret: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes())
}

/// The signed headers of a call made now.
pub fn sign(
    secret: &str,
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    use rand::distributions::{Alphanumeric, DistString};
    let ts = crate::infra::clock::now_ms().div_euclid(1000);
    let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    sign_at(secret, node, method, path, body, ts, &nonce)
}

/// [`sign`] with a given timestamp and nonce (tests make stale and replayed calls with it).
pub fn sign_at(
    secret: &str,
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
    ts: i64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let tag = ring::hmac::sign(&key(secret), &message(method, path, ts, nonce, node, body));
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    vec![
        (NODE_HEADER, node.to_string()),
        (TIMESTAMP_HEADER, ts.to_string()),
        (NONCE_HEADER, nonce.to_string()),
        (SIGNATURE_HEADER, hex),
    ]
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("cluster calls are off on this node (no cluster secret)")]
    NoSecret,
    #[error("a signature header is missing or malformed")]
    Missing,
    #[error("the timestamp is outside the allowed window")]
    Stale,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the nonce was used before")]
    Replay,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoSecret => "no_secret",
            Refusal::Missing => "missing",
            Refusal::Stale => "stale",
            Refusal::BadSignature => "bad_signature",
            Refusal::Replay => "replay",
        }
    }
}

/// Checks a call's signature and timestamp (the nonce is checked against the database by the
/// caller); the calling node's id and the nonce when it verifies.
pub fn verify(
    secret: Option<&str>,
    headers: &http::HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(String, String), Refusal> {
    let secret = secret.ok_or(Refusal::NoSecret)?;
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(Refusal::Missing)
    };
    let node = get(NODE_HEADER)?;
    let nonce = get(NONCE_HEADER)?;
    let ts: i64 = get(TIMESTAMP_HEADER)?
        .parse()
        .map_err(|_| Refusal::Missing)?;
    let signature = get(SIGNATURE_HEADER)?;
    if nonce.len() < 16 || nonce.len() > 64 || node.len() > 128 {
        return Err(Refusal::Missing);
    }
    if now_secs.abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
        return Err(Refusal::Stale);
    }
    let tag = (0..signature.len())
        .step_by(2)
        .map(|i| {
            signature
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(Refusal::BadSignature)?;
    ring::hmac::verify(
        &key(secret),
        &message(method, path, ts, &nonce, &node, body),
        &tag,
    )
    .map_err(|_| Refusal::BadSignature)?;
    Ok((node, nonce))
}

/// Remembers a nonce; `false` when it was seen before (a replay).
pub async fn remember_nonce(db: &crate::infra::db::Db, nonce: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO internal_nonces (nonce, seen_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce)
    .bind(crate::infra::clock::now_ms())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets nonces older than [`NONCE_MEMORY_MS`]; how many.
pub async fn forget_old_nonces(db: &crate::infra::db::Db) -> Result<usize, sqlx::Error> {
    let done = sqlx::query("DELETE FROM internal_nonces WHERE seen_at < $1")
        .bind(crate::infra::clock::now_ms() - NONCE_MEMORY_MS)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() as usize)
}

/// The request body of a forwarded flow.
#[derive(Debug, Serialize, Deserialize)]
pub struct StartRequest {
    pub order_id: String,
    /// The wallet (`channel`) and how it pays, flattened: a request of a node that knew
    /// only `channel` is a native payment.
    #[serde(flatten)]
    pub way: crate::payments::PayWay,
}

/// What a node answers to a forwarded flow it ran. Faults of the node itself (database,
/// injected) are a 500 instead, so the caller tries elsewhere.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StartAnswer {
    Started {
        attempt: Box<Attempt>,
    },
    NotFound {
        order_id: String,
    },
    NotPayable {
        status: OrderStatus,
    },
    ChannelDisabled {
        channel: Channel,
    },
    Busy,
    Provider {
        channel: Channel,
        message: String,
        transient: bool,
    },
}

impl StartAnswer {
    /// The answer to a flow's result; `None` for a fault of this node.
    pub fn of(result: Result<Attempt, PaymentError>) -> Option<StartAnswer> {
        Some(match result {
            Ok(attempt) => StartAnswer::Started {
                attempt: Box::new(attempt),
            },
            Err(PaymentError::NotFound(order_id)) => StartAnswer::NotFound { order_id },
            Err(PaymentError::NotPayable(status)) => StartAnswer::NotPayable { status },
            Err(PaymentError::ChannelDisabled(channel)) => StartAnswer::ChannelDisabled { channel },
            Err(PaymentError::Busy) => StartAnswer::Busy,
            Err(PaymentError::Provider { channel, source }) => StartAnswer::Provider {
                channel,
                transient: source.is_transient(),
                message: source.to_string(),
            },
            Err(PaymentError::Db(_) | PaymentError::Injected(_) | PaymentError::Account(_)) => {
                return None
            }
        })
    }

    pub fn into_result(self) -> Result<Attempt, PaymentError> {
        match self {
            StartAnswer::Started { attempt } => Ok(*attempt),
            StartAnswer::NotFound { order_id } => Err(PaymentError::NotFound(order_id)),
            StartAnswer::NotPayable { status } => Err(PaymentError::NotPayable(status)),
            StartAnswer::ChannelDisabled { channel } => Err(PaymentError::ChannelDisabled(channel)),
            StartAnswer::Busy => Err(PaymentError::Busy),
            StartAnswer::Provider {
                channel,
                message,
                transient,
            } => Err(PaymentError::Provider {
                channel,
                source: crate::providers::ProviderError::Relayed { message, transient },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: Vec<(&'static str, String)>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn a_signed_call_verifies_and_any_change_is_refused() {
        let body = br#"{"order_id":"x","channel":"wechat"}"#;
        let now = 1_800_000_000;
        let signed = sign_at(
            "s3cret",
            "node-a",
            "POST",
            START_PATH,
            body,
            now,
            "n0nce-n0nce-n0nce",
        );
        let h = headers(signed.clone());
        assert_eq!(
            verify(Some("s3cret"), &h, "POST", START_PATH, body, now + 5),
            Ok(("node-a".into(), "n0nce-n0nce-n0nce".into()))
        );
        let refused =
            |secret: Option<&str>, h: &http::HeaderMap, path: &str, body: &[u8], at: i64| {
                verify(secret, h, "POST", path, body, at).expect_err("refused")
            };
        assert_eq!(
            refused(Some("other"), &h, START_PATH, body, now),
            Refusal::BadSignature
        );
        assert_eq!(
            refused(Some("s3cret"), &h, START_PATH, b"{}", now),
            Refusal::BadSignature
        );
        assert_eq!(
            refused(Some("s3cret"), &h, "/internal/v1/other", body, now),
            Refusal::BadSignature
        );
        assert_eq!(
            refused(Some("s3cret"), &h, START_PATH, body, now + 31),
            Refusal::Stale
        );
        assert_eq!(
            refused(Some("s3cret"), &h, START_PATH, body, now - 31),
            Refusal::Stale
        );
        assert_eq!(refused(None, &h, START_PATH, body, now), Refusal::NoSecret);
        let mut other_node = h.clone();
        other_node.insert(NODE_HEADER, "node-b".parse().expect("value"));
        assert_eq!(
            refused(Some("s3cret"), &other_node, START_PATH, body, now),
            Refusal::BadSignature
        );
        let mut unsigned = h.clone();
        unsigned.remove(SIGNATURE_HEADER);
        assert_eq!(
            refused(Some("s3cret"), &unsigned, START_PATH, body, now),
            Refusal::Missing
        );
    }
}
