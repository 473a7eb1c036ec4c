//! `POST /internal/v1/payments/start`: a payment flow forwarded by another node of the
//! cluster (see `cluster::internal` for the signature rules). Refusals are 401 with the
//! reason; a draining node answers 503 so the caller tries elsewhere.

use crate::cluster::internal::{self, Refusal, StartAnswer, StartRequest};
use crate::cluster::NodeState;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route(internal::START_PATH, post(start))
}

fn refuse(r: Refusal) -> Response {
    ::metrics::counter!("cluster_internal_refused_total", "reason" => r.as_str()).increment(1);
    tracing::warn!(reason = r.as_str(), "internal call refused");
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": { "code": r.as_str(), "message": r.to_string() } })),
    )
        .into_response()
}

fn failed(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

async fn start(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let cluster = &state.cluster;
    let secret = cluster
        .settings()
        .secret
        .as_ref()
        .map(|s| s.expose().as_str());
    let now = crate::infra::clock::now_ms().div_euclid(1000);
    let (node, nonce) =
        match internal::verify(secret, &headers, "POST", internal::START_PATH, &body, now) {
            Ok(v) => v,
            Err(r) => return refuse(r),
        };
    match internal::remember_nonce(&state.db, &nonce).await {
        Ok(true) => {}
        Ok(false) => return refuse(Refusal::Replay),
        Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
    if cluster.state() == NodeState::Draining {
        return failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this node is draining".into(),
        );
    }
    let parsed = serde_json::from_slice::<StartRequest>(&body)
        .ok()
        .and_then(|r| Some((crate::ids::OrderId::parse(&r.order_id)?, r.way)));
    let Some((order_id, way)) = parsed else {
        return failed(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected {order_id, channel}".into(),
        );
    };
    tracing::debug!(from = %node, order = %order_id, "running a forwarded flow");
    match StartAnswer::of(cluster.run_local(&order_id, &way).await) {
        Some(answer) => Json(answer).into_response(),
        None => failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "node_fault",
            "this node could not run the flow".into(),
        ),
    }
}
