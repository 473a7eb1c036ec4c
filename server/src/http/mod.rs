//! The HTTP surface: operational endpoints, the Leptos pages and server functions, static
//! files, and the layers every request passes through (request id, tracing, metrics).
//! One file per resource, each with its handlers; [`router`] joins them.

mod api_v1;
mod auth;
pub mod client_addr;
mod health;
mod internal;
mod metrics;
mod notify;

use crate::state::AppState;
use app::services::AppServices;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::HeaderName;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router for one process.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let services = state.services.clone();
    let context = move || provide_context::<Arc<dyn AppServices>>(services.clone());
    let options = state.leptos_options.clone();
    let shell = move |_: leptos::config::LeptosOptions| app::shell(options.clone());

    let mut router = Router::new();
    if let Some(sandbox) = &state.sandbox {
        router = router.nest_service("/sandbox", sandbox.router());
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/notify/{channel}", axum::routing::post(notify::receive))
        .merge(auth::router(&state))
        .merge(internal::router())
        .nest(
            "/api/v1",
            api_v1::router(state.clone()),
        )
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let shell = shell.clone();
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    // The path only: query strings may carry tokens.
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// Counts requests and records their latency by method, route pattern and status. The route
/// is the pattern (`/checkout/{order_id}`), never the raw path, so label sets stay bounded.
async fn record_metrics(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    ::metrics::counter!("http_requests_total", &labels).increment(1);
    ::metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}
