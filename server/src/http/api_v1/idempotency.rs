//! `Idempotency-Key` on a POST: the first answer is kept for 24 h and replayed byte for byte
//! to the same request (`Idempotent-Replayed: true`); the same key with another request is a
//! 409 `idempotency_key_reused`; while the first is still running a repeat gets 409
//! `request_in_progress`; a request that fails validation stores nothing, and neither does
//! one that fails on our side (500), so its key can try again.

use super::error::{Answer, ApiError};
use crate::api_keys::Caller;
use crate::state::AppState;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// How long an idempotent response is kept.
const TTL_MS: i64 = 24 * 3600 * 1000;
/// A key still "running" this long after its request began belongs to a request that died
/// (twice the server's request time limit): a repeat takes it over.
const RUNNING_LEASE_MS: i64 = 60 * 1000;
/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY: usize = 255;
/// Visible ASCII, spaces inside only (a header value's ends are trimmed on the wire); the
/// OpenAPI document states the same rule.
pub const KEY_PATTERN: &str = "^[!-~]([ -~]*[!-~])?$";

/// The request's `Idempotency-Key`, if it sent one that follows [`KEY_PATTERN`].
pub fn key_of(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_KEY
        && bytes.first().is_some_and(visible)
        && bytes.last().is_some_and(visible)
        && bytes.iter().all(|b| (b' '..=b'~').contains(b));
    if !ok {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("the Idempotency-Key header must be 1 to {MAX_KEY} visible ASCII characters (spaces only inside)"),
        ));
    }
    Ok(std::str::from_utf8(bytes).ok())
}

/// Runs `execute` at most once per (merchant, key): see the module docs. Without a key it
/// simply runs.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    route: &str,
    body: &[u8],
    execute: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let Some(key) = key else {
        return execute().await.into_response();
    };
    let hash = {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update(b"\n");
        h.update(body);
        format!("{:x}", h.finalize())
    };
    let pool = state.db.pool();
    let now = crate::infra::clock::now_ms();
    // Claim the key: a new one, one whose 24 hours are over, or one still "running" past
    // its lease (its request died with the process: no request runs longer than the
    // server's time limit), taken over in the same statement. A live key claims nothing:
    // the request is a repeat or a conflict.
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_hash, state, created_at) \
         VALUES ($1, $2, $3, 'running', $4) \
         ON CONFLICT (merchant_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             state = 'running', response_status = NULL, response_body = NULL, created_at = excluded.created_at \
         WHERE idempotency_keys.created_at < $5 \
            OR (idempotency_keys.state = 'running' AND idempotency_keys.created_at < $6)",
    )
    .bind(&caller.merchant_id)
    .bind(key)
    .bind(&hash)
    .bind(now)
    .bind(now - TTL_MS)
    .bind(now - RUNNING_LEASE_MS)
    .execute(pool)
    .await;
    match claimed {
        Ok(done) if done.rows_affected() == 1 => {}
        Ok(_) => {
            return match replay(state, caller, key, &hash).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        Err(e) => return ApiError::internal(e).into_response(),
    }
    let Answer(status, value) = execute().await;
    let text = value.to_string();
    let stored = if status == StatusCode::INTERNAL_SERVER_ERROR {
        // Our own fault: nothing is kept, so the same key can try again.
        sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2")
            .bind(&caller.merchant_id)
            .bind(key)
            .execute(pool)
            .await
    } else {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $1, response_body = $2 \
             WHERE merchant_id = $3 AND key = $4",
        )
        .bind(i64::from(status.as_u16()))
        .bind(&text)
        .bind(&caller.merchant_id)
        .bind(key)
        .execute(pool)
        .await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot store an idempotent response");
    }
    Answer::respond(status, text)
}

/// The kept answer to a repeat, or why there is none (yet).
async fn replay(
    state: &AppState,
    caller: &Caller,
    key: &str,
    hash: &str,
) -> Result<Response, ApiError> {
    let row = sqlx::query(
        "SELECT request_hash, state, response_status, response_body FROM idempotency_keys \
         WHERE merchant_id = $1 AND key = $2",
    )
    .bind(&caller.merchant_id)
    .bind(key)
    .fetch_optional(state.db.pool())
    .await
    .map_err(ApiError::internal)?
    // Deleted meanwhile (its first request failed on our side): ask to try again.
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key just ended; retry",
        )
    })?;
    let get = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten();
    if get("request_hash").as_deref() != Some(hash) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request (method, path or body); use a new key",
        ));
    }
    if get("state").as_deref() != Some("done") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .retry_after(1));
    }
    let status = row
        .try_get::<Option<i64>, _>("response_status")
        .ok()
        .flatten()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = Answer::respond(status, get("response_body").unwrap_or_default());
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(v).expect("header value"),
        );
        h
    }

    #[test]
    fn keys_follow_the_documented_pattern() {
        let pattern = regex::Regex::new(KEY_PATTERN).expect("pattern");
        assert_eq!(key_of(&HeaderMap::new()).ok(), Some(None));
        let long = "k".repeat(MAX_KEY);
        let too_long = "k".repeat(MAX_KEY + 1);
        let tab = "a\tb";
        for (key, ok) in [
            ("order-1", true),
            ("a b", true),
            ("~", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            (tab, false),
        ] {
            let map = headers(key.as_bytes());
            assert_eq!(key_of(&map).is_ok(), ok, "{key:?}");
            // The code and the document agree (length aside, which the schema states apart).
            if key.len() <= MAX_KEY {
                assert_eq!(pattern.is_match(key), ok, "{key:?}");
            }
        }
        let accented = headers(b"caf\xc3\xa9");
        assert!(key_of(&accented).is_err());
        let empty = headers(b"");
        let e = key_of(&empty).expect_err("empty");
        assert_eq!(e.field(), Some("Idempotency-Key"));
    }
}
