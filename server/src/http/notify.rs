//! `POST /notify/alipay` and `POST /notify/wechat`: the providers' asynchronous notifications.
//! The provider client verifies (signature, timestamp, decryption); `payments::notify` decides
//! what the notification means; the reply is exactly what that provider expects.

use crate::payments::notify;
use crate::providers::{Channel, NotifyOutcome, NotifyReply};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

/// The largest notification body accepted; both providers' are a few kilobytes.
pub const MAX_BODY: usize = 64 * 1024;

pub async fn receive(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(channel) = Channel::parse(&channel) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(provider) = state.providers.get(channel).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let outcome = match provider.verify_notification(&headers, &body) {
        Ok(n) => notify::process(&state.payments, &n).await,
        Err(e) => {
            tracing::warn!(%channel, reason = %e, "notification failed verification");
            ::metrics::counter!("notifications_rejected_total", "channel" => channel.as_str(), "reason" => e.label())
                .increment(1);
            NotifyOutcome::Rejected
        }
    };
    ::metrics::counter!("notifications_total", "channel" => channel.as_str(), "outcome" => format!("{outcome:?}").to_lowercase())
        .increment(1);
    reply(provider.notification_reply(outcome))
}

fn reply(r: NotifyReply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.content_type {
        Some(ct) => (status, [(header::CONTENT_TYPE, ct)], r.body).into_response(),
        None => (status, r.body).into_response(),
    }
}
