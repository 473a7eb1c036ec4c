//! The merchant API, `/api/v1`: orders, their closing and refunds, for a merchant's shop.
//!
//! - `Authorization: Bearer <api key>` on every call (`auth.rs`); every query is scoped to
//!   the key's merchant, and another merchant's order is a 404, never a 403.
//! - Money is an integer of fen (`"amount": 1234` is ¥12.34); times are Unix seconds.
//! - Errors are `{"error": {"code", "message", "field"?}}` with the matching status
//!   (`error.rs`); a validation message names the field and its rule (`body.rs`).
//! - `Idempotency-Key` on a POST (`idempotency.rs`).
//! - A per-key rate limit (`SCANPAY_API_RATE_PER_MINUTE`, a burst of that many then that
//!   many a minute; the whole cluster's on PostgreSQL, see `limits.rs`): 429 with
//!   `Retry-After`.
//! - The OpenAPI 3.1 document (`schema.rs`) is generated from the request and response
//!   types the handlers use (`orders.rs`, `refunds.rs`), so the two cannot drift.

mod auth;
mod body;
mod error;
mod idempotency;
mod orders;
mod refunds;
mod schema;

use error::ApiError;

use crate::limits::Rate;
use crate::state::AppState;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::StatusCode;
use std::sync::Arc;
use utoipa::OpenApi;

/// The `/api/v1` routes, to be nested under `/api/v1`.
pub fn router(state: AppState) -> Router<AppState> {
    let limit = Arc::new(auth::ApiLimit {
        limiter: state.limiter.clone(),
        rate: Rate::per_minute(state.settings.api_rate_per_minute),
    });
    Router::new()
        .route(
            "/orders",
            post(orders::create_order).get(orders::list_orders),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/close", post(orders::close_order))
        .route(
            "/orders/{id}/refunds",
            post(refunds::create_refund).get(refunds::list_refunds),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .layer(middleware::from_fn_with_state(state, auth::authenticate))
        .layer(Extension(limit))
        // The document is public: it describes the API, not anyone's data.
        .route("/openapi.json", get(openapi))
}

/// The OpenAPI 3.1 document of this API, generated from the handlers and their types.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    schema::ApiDoc::openapi()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}
