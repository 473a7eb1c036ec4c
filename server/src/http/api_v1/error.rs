//! The API's error answer, `{"error": {"code", "message", "field"?, …}}`, and the finished
//! answer (status and JSON) that idempotency keeps and replays.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

/// An API error (`schema::ErrorBody`). Boxed: handlers return it in `Result`s.
#[derive(Debug)]
pub struct ApiError(Box<Detail>);

#[derive(Debug)]
struct Detail {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(Detail {
            status,
            code,
            message: message.into(),
            field: None,
            extra: Map::new(),
            retry_after: None,
        }))
    }

    /// A validation error: 400 `invalid_request` naming the field at fault.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.0.field = Some(field.into());
        e
    }

    /// A body that is not JSON, or not an object: 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn not_found(id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no order {id}"))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a live API key as `Authorization: Bearer sk_…`",
        )
    }

    /// Our own failure: logged, and answered without its details.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "merchant API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request could not be completed; it is safe to retry",
        )
    }

    /// One more member of the error object (`order_id`, `refundable`).
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> ApiError {
        self.0.extra.insert(key.to_string(), value.into());
        self
    }

    /// Sends `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.0.retry_after = Some(secs);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> &'static str {
        self.0.code
    }

    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    fn body(&self) -> Value {
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let Some(f) = self.field() {
            error["field"] = json!(f);
        }
        for (k, v) in &self.0.extra {
            error[k.as_str()] = v.clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), Json(self.body())).into_response();
        if let Some(secs) = self.0.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A finished answer: status and JSON body (what idempotency stores and replays). Headers
/// are not kept, so an answer that needs one (`Retry-After`) is never stored: those are
/// produced before or instead of running the request.
pub struct Answer(pub StatusCode, pub Value);

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Answer {
        Answer(e.status(), e.body())
    }
}

impl<T: serde::Serialize> From<(StatusCode, T)> for Answer {
    fn from((status, body): (StatusCode, T)) -> Answer {
        match serde_json::to_value(body) {
            Ok(v) => Answer(status, v),
            Err(e) => ApiError::internal(e).into(),
        }
    }
}

impl Answer {
    /// The answer as sent (also what a replay sends, byte for byte).
    pub fn respond(status: StatusCode, text: String) -> Response {
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response()
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        Answer::respond(self.0, self.1.to_string())
    }
}
