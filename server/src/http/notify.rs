//! `POST /notify/alipay` and `POST /notify/wechat`: the providers' asynchronous notifications
//! to the operator's accounts; `POST /notify/<channel>/<merchant>`: to a merchant's own
//! account, verified with that account's keys.
//! This layer reads the body (keeping at most [`MAX_BODY`] bytes, so even an oversized one is
//! on record), hands it to `payments::notify`, and sends exactly the reply that provider
//! expects.

use crate::credentials::Account;
use crate::merchants::MerchantId;
use crate::payments::inbox::Received;
pub use crate::payments::notify::MAX_BODY;
use crate::payments::notify::{self, Answer};
use crate::providers::{Channel, NotifyReply};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;

/// Past this many bytes an oversized body is no longer read at all.
const DISCARD_AFTER: u64 = 16 * 1024 * 1024;
/// A body that takes longer than this to arrive is taken as it is (a provider sends a few
/// KiB at once; a slow sender only holds a connection).
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn receive(
    state: State<AppState>,
    Path(channel): Path<String>,
    request: Request,
) -> Response {
    receive_for(state, channel, Account::Operator, request).await
}

pub async fn receive_for_merchant(
    state: State<AppState>,
    Path((channel, merchant)): Path<(String, String)>,
    request: Request,
) -> Response {
    let account = Account::Merchant(MerchantId::new(merchant));
    receive_for(state, channel, account, request).await
}

async fn receive_for(
    State(state): State<AppState>,
    channel: String,
    account: Account,
    request: Request,
) -> Response {
    let Some(channel) = Channel::parse(&channel) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let provider = match state.payments.book().client(&account, channel).await {
        Ok(Some(p)) => p,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            // Stored but not openable (the master key): the provider sends it again later.
            tracing::error!(%channel, %account, error = %e, "a notification's account cannot be opened");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let remote_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.to_string());
    let (parts, body) = request.into_parts();
    let headers: HeaderMap = parts.headers;
    let (bytes, size) = read_capped(body).await;
    let received = Received {
        channel,
        remote_addr: remote_addr.as_deref(),
        headers: &headers,
        body: &bytes,
        body_size: size,
    };
    let reply = match notify::receive(&state.payments, provider.as_ref(), &account, &received).await
    {
        Answer::Outcome(outcome) => provider.notification_reply(outcome),
        Answer::Unreadable { status, message } => provider.refusal_reply(status, message),
    };
    respond(reply)
}

/// Reads the body, keeping the first [`MAX_BODY`] bytes, and counts the rest (up to
/// [`DISCARD_AFTER`], for at most [`BODY_WAIT`]). A body that breaks off counts what arrived.
async fn read_capped(body: Body) -> (Vec<u8>, u64) {
    let mut body = body;
    let mut kept = Vec::new();
    let mut size: u64 = 0;
    let deadline = tokio::time::Instant::now() + BODY_WAIT;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        let room = MAX_BODY.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..room.min(data.len())]);
        if size > DISCARD_AFTER {
            break;
        }
    }
    (kept, size)
}

fn respond(r: NotifyReply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match r.content_type {
        Some(ct) => (status, [(header::CONTENT_TYPE, ct)], r.body).into_response(),
        None => (status, r.body).into_response(),
    }
}
