//! `/metrics`: Prometheus text exposition of the process's metrics.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

pub async fn render() -> impl IntoResponse {
    let body = crate::infra::telemetry::metrics().render();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
}
