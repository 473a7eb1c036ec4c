//! Who is calling: `Authorization: Bearer <api key>` on every route, then the key's rate
//! limit (429 with `Retry-After`). The caller's `Caller` goes into the request's extensions.

use super::error::ApiError;
use crate::api_keys;
use crate::limits::{LimitError, Limited, Limiter, Rate};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

/// The per-key limit: where it is kept (the whole cluster's, on PostgreSQL) and its rate.
pub struct ApiLimit {
    pub limiter: Arc<Limiter>,
    pub rate: Rate,
}

/// The middleware in front of every authenticated route.
pub async fn authenticate(
    State(state): State<AppState>,
    Extension(limit): Extension<Arc<ApiLimit>>,
    mut request: Request,
    next: Next,
) -> Response {
    match caller_of(&state, &limit, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn caller_of(
    state: &AppState,
    limit: &ApiLimit,
    headers: &HeaderMap,
) -> Result<api_keys::Caller, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(key) = presented else {
        return Err(ApiError::unauthorized());
    };
    let caller = api_keys::authenticate(&state.db, key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::unauthorized)?;
    match limit
        .limiter
        .take(&format!("api:{}", caller.key_id), limit.rate)
        .await
    {
        Ok(()) => Ok(caller),
        Err(LimitError::Store(e)) => Err(ApiError::internal(e)),
        Err(LimitError::Limited(Limited {
            retry_after_secs: wait,
        })) => {
            ::metrics::counter!("api_rate_limited_total").increment(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests with this key; retry in {wait} s"),
            )
            .retry_after(wait))
        }
    }
}
