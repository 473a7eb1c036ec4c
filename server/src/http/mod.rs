//! The HTTP surface: operational endpoints, the Leptos pages and server functions, static
//! files, and the layers every request passes through: request id, a span and an INFO access
//! line per request (method, route pattern, status, latency; never the query or a body),
//! metrics, a panic turned into a 500 naming the request id, a time limit, and per-address
//! limits on the costly public routes (`throttle`).
//! One file per resource, each with its handlers; [`router`] joins them.

mod api_v1;
mod auth;
mod export;
mod health;
mod internal;
mod metrics;
mod notify;
mod shop_card;
mod throttle;

use crate::state::AppState;
use app::services::AppServices;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::FutureExt;
use http::HeaderName;
use http::StatusCode;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The app's route list, generated once per process.
///
/// Generating it runs the whole app with resource loading suppressed by a process-wide flag
/// (`leptos_server::SuppressResourceLoad`): a `Resource` whose future is first polled while
/// the flag is up waits forever, whichever server it belongs to (leptos issue #4773). A
/// second `Application` built in a process that already serves pages (every test binary,
/// the cluster tests) would stall those pages' responses at random; once per process, before
/// anything serves, nothing is rendering when the flag is up.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// The whole application router for one process.
pub fn router(state: AppState) -> Router {
    let routes = route_list();
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
        .route("/notify/{channel}", axum::routing::post(notify::receive))
        .route(
            "/notify/{channel}/{merchant}",
            axum::routing::post(notify::receive_for_merchant),
        )
        .merge(auth::router(&state))
        .merge(export::router())
        .merge(internal::router())
        .merge(shop_card::router())
        .nest("/api/v1", api_v1::router(state.clone()))
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let shell = shell.clone();
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            throttle::throttle,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            // No path here: raw paths carry tokens (`/q/…`, `/auth/link/…`); the
                            // access line names the route pattern.
                            tracing::info_span!("request", request_id = %id)
                        })
                        .on_request(())
                        .on_response(())
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// `/metrics` alone: on the main router unless it has a listener of its own
/// (`SCANPAY_METRICS_LISTEN`).
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics::render))
}

/// How long one request may take before it is answered 503 (provider calls take at most
/// 10 s; streamed bodies such as the CSV export are not cut by it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A handler that panics answers 500 naming the request id instead of dropping the
/// connection. The panic itself is logged once, by the process's panic hook
/// (`telemetry::log_panics`), inside the request's span.
async fn catch_panic(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal error. Request id: {id}\n"),
        )
            .into_response(),
    }
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
    let elapsed = start.elapsed();
    // The access line, inside the request's span (its request id).
    tracing::info!(
        target: "access",
        method = %labels[0].1,
        route = %labels[1].1,
        status = %labels[2].1,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
    );
    ::metrics::counter!("http_requests_total", &labels).increment(1);
    ::metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    response
}
