//! `/healthz` (the process answers) and `/readyz` (it can serve: the database answers and the
//! process is not shutting down). Load balancers and orchestrators poll these.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        );
    }
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.db.engine().display_name()})),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database ping failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unready", "reason": "database unreachable"})),
            )
        }
    }
}
