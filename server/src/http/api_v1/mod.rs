//! The merchant API, `/api/v1`: orders, their closing and refunds, for a merchant's shop.
//!
//! - `Authorization: Bearer <api key>` on every call (`api_keys.rs`); every query is scoped
//!   to the key's merchant, and another merchant's order is a 404, never a 403.
//! - Money is an integer of fen (`"amount": 1234` is ¥12.34); times are Unix seconds.
//! - Errors are `{"error": {"code", "message", "field"?}}` with the matching status; a
//!   validation message names the field.
//! - `Idempotency-Key` on a POST: the first response is kept for 24 h and replayed byte for
//!   byte to the same request (`Idempotent-Replayed: true`); the same key with another body
//!   is a 409; while the first is still running a repeat gets 409 `request_in_progress`; a
//!   request that fails validation stores nothing.
//! - A per-key rate limit (`SCANPAY_API_RATE_PER_MINUTE`, a burst of that many then that
//!   many a minute; the whole cluster's on PostgreSQL, see `limits.rs`): 429 with
//!   `Retry-After`.

mod schema;

use crate::api_keys::{self, Caller};
use crate::limits::{LimitError, Limited, Limiter, Rate};
use crate::orders::{self, NewOrder, Order, OrderError, OrderStatus};
use crate::payments::{CloseError, PaymentError};
use crate::providers::Channel;
use crate::refunds::{self, Refund, RefundError};
use crate::state::AppState;
use app::money::Amount;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use schema::{ErrorBody, OrderList, OrderObject, RefundList, RefundObject};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::Arc;
use utoipa::OpenApi;

/// How long an idempotent response is kept.
const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
/// A key still "running" this long after its request began belongs to a request that died
/// (twice the server's request time limit): a repeat takes it over.
const RUNNING_LEASE_MS: i64 = 60 * 1000;
/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;
const MAX_METADATA_KEYS: usize = 20;

/// The `/api/v1` routes, to be nested under `/api/v1`.
pub fn router(state: AppState) -> Router<AppState> {
    let limit = Arc::new(ApiLimit {
        limiter: state.limiter.clone(),
        rate: Rate::per_minute(state.settings.api_rate_per_minute),
    });
    Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/close", post(close_order))
        .route(
            "/orders/{id}/refunds",
            post(create_refund).get(list_refunds),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .layer(middleware::from_fn_with_state(state, authenticate))
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

/// An API error as JSON (`schema::ErrorBody`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            extra: None,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no order {what}"),
        )
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "merchant API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request could not be completed; it is safe to retry",
        )
    }

    /// As a finished answer (what idempotency stores).
    fn answer(self) -> Answer {
        Answer(self.status, self.body())
    }

    fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(f) = self.field {
            error["field"] = json!(f);
        }
        if let Some((k, v)) = &self.extra {
            error[*k] = v.clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// A finished API answer: status and JSON body (what idempotency stores and replays).
struct Answer(StatusCode, Value);

fn respond(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

// ---- authentication and rate limit ----

/// The per-key limit: where it is kept (the whole cluster's, on PostgreSQL) and its rate.
struct ApiLimit {
    limiter: Arc<Limiter>,
    rate: Rate,
}

async fn authenticate(
    State(state): State<AppState>,
    Extension(limit): Extension<Arc<ApiLimit>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match presented {
        Some(key) => match api_keys::authenticate(&state.db, key).await {
            Ok(c) => c,
            Err(e) => return ApiError::internal(e).into_response(),
        },
        None => None,
    };
    let Some(caller) = caller else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a live API key as `Authorization: Bearer sk_…`",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    match limit
        .limiter
        .take(&format!("api:{}", caller.key_id), limit.rate)
        .await
    {
        Ok(()) => {}
        Err(LimitError::Store(e)) => return ApiError::internal(e).into_response(),
        Err(LimitError::Limited(Limited {
            retry_after_secs: wait,
        })) => {
            ::metrics::counter!("api_rate_limited_total").increment(1);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests with this key; retry in {wait} s"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return r;
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

// ---- idempotency ----

/// Runs `execute` at most once per (merchant, `Idempotency-Key`): see the module docs.
async fn idempotent<F, Fut>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    execute: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let Some(key) = headers.get("idempotency-key") else {
        let Answer(status, body) = execute().await;
        return respond(status, body.to_string());
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
    else {
        return ApiError::invalid(
            "Idempotency-Key",
            format!("the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
        .into_response();
    };
    let hash = {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update(b"\n");
        h.update(body);
        format!("{:x}", h.finalize())
    };
    let pool = state.db.pool();
    let now = orders::now_ms();
    // Claim the key: a new one, one whose 24 hours are over, or one still "running" past
    // its lease (its request died with the process: no request runs longer than the
    // server's time limit), taken over in the same statement. A live key claims nothing:
    // the request is a repeat or a conflict.
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_hash, state, created_at) \
         VALUES ($1, $2, $3, 'running', $4) \
         ON CONFLICT (merchant_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             state = 'running', response_status = NULL, response_body = NULL, created_at = excluded.created_at \
         WHERE idempotency_keys.created_at < $5 \
            OR (idempotency_keys.state = 'running' AND idempotency_keys.created_at < $6)",
    )
    .bind(&caller.merchant_id)
    .bind(key)
    .bind(&hash)
    .bind(now)
    .bind(now - IDEMPOTENCY_TTL_MS)
    .bind(now - RUNNING_LEASE_MS)
    .execute(pool)
    .await;
    match claimed {
        Ok(done) if done.rows_affected() == 1 => {}
        Ok(_) => return replay(state, caller, key, &hash).await,
        Err(e) => return ApiError::internal(e).into_response(),
    }
    let Answer(status, value) = execute().await;
    let text = value.to_string();
    let stored = if status == StatusCode::INTERNAL_SERVER_ERROR {
        // Our own fault: nothing is kept, so the same key can try again.
        sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2")
            .bind(&caller.merchant_id)
            .bind(key)
            .execute(pool)
            .await
    } else {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $1, response_body = $2 \
             WHERE merchant_id = $3 AND key = $4",
        )
        .bind(i64::from(status.as_u16()))
        .bind(&text)
        .bind(&caller.merchant_id)
        .bind(key)
        .execute(pool)
        .await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot store an idempotent response");
    }
    respond(status, text)
}

async fn replay(state: &AppState, caller: &Caller, key: &str, hash: &str) -> Response {
    let row = sqlx::query(
        "SELECT request_hash, state, response_status, response_body FROM idempotency_keys \
         WHERE merchant_id = $1 AND key = $2",
    )
    .bind(&caller.merchant_id)
    .bind(key)
    .fetch_optional(state.db.pool())
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        // Deleted meanwhile (its first request failed on our side): ask to try again.
        Ok(None) => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key just ended; retry",
            )
            .into_response()
        }
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let get = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten();
    if get("request_hash").as_deref() != Some(hash) {
        return ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request (method, path or body); use a new key",
        )
        .into_response();
    }
    if get("state").as_deref() != Some("done") {
        let mut r = ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let status = row
        .try_get::<Option<i64>, _>("response_status")
        .ok()
        .flatten()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = respond(status, get("response_body").unwrap_or_default());
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

// ---- views ----

fn order_json(o: &Order, base: &str) -> Value {
    serde_json::to_value(OrderObject::of(o, base)).unwrap_or(Value::Null)
}

fn refund_json(r: &Refund) -> Value {
    serde_json::to_value(RefundObject::of(r)).unwrap_or(Value::Null)
}

fn base_url(state: &AppState) -> String {
    state.settings.public_url.clone()
}

// ---- request parsing ----

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

fn amount_field(m: &Map<String, Value>) -> Result<Amount, ApiError> {
    let bad = || {
        ApiError::invalid(
            "amount",
            "amount must be a whole number of fen from 1 to 10000000000 (1234 is ¥12.34)",
        )
    };
    let fen = m.get("amount").and_then(Value::as_i64).ok_or_else(bad)?;
    if fen < 1 {
        return Err(bad());
    }
    Amount::from_fen(fen).map_err(|_| bad())
}

fn optional_string<'a>(
    m: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// A validated order creation.
struct CreateOrder {
    new: NewOrder,
    channel: Option<Channel>,
    metadata: Option<Value>,
}

fn parse_create_order(
    state: &AppState,
    merchant_id: &str,
    body: &[u8],
) -> Result<CreateOrder, ApiError> {
    let m = json_object(body)?;
    let amount = amount_field(&m)?;
    match optional_string(&m, "currency")? {
        Some("CNY") => {}
        _ => return Err(ApiError::invalid("currency", "currency must be \"CNY\"")),
    }
    let subject = optional_string(&m, "subject")?
        .map(str::trim)
        .filter(|s| (1..=127).contains(&s.chars().count()))
        .ok_or_else(|| ApiError::invalid("subject", "subject must be 1 to 127 characters"))?;
    let expires_in = match m.get("expires_in") {
        None | Some(Value::Null) => state.settings.default_expiry_secs,
        Some(v) => v
            .as_i64()
            .filter(|n| (orders::MIN_EXPIRY_SECS..=orders::MAX_EXPIRY_SECS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "expires_in",
                    format!(
                        "expires_in must be a whole number of seconds from {} to {}",
                        orders::MIN_EXPIRY_SECS,
                        orders::MAX_EXPIRY_SECS
                    ),
                )
            })?,
    };
    let return_url = optional_string(&m, "return_url")?.map(str::to_string);
    let channel = match optional_string(&m, "channel")? {
        None => None,
        Some(c) => {
            let channel = Channel::parse(c).ok_or_else(|| {
                ApiError::invalid("channel", "channel must be \"alipay\" or \"wechat\"")
            })?;
            if state.providers.get(channel).is_none() {
                return Err(ApiError::invalid(
                    "channel",
                    format!("{channel} is not enabled on this server"),
                ));
            }
            Some(channel)
        }
    };
    let metadata = match m.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let ok = o.len() <= MAX_METADATA_KEYS
                && o.iter().all(|(k, v)| {
                    (1..=40).contains(&k.chars().count())
                        && v.as_str().is_some_and(|s| s.chars().count() <= 500)
                });
            if !ok {
                return Err(ApiError::invalid(
                    "metadata",
                    format!("metadata must be an object of at most {MAX_METADATA_KEYS} string values (keys up to 40 characters, values up to 500)"),
                ));
            }
            Some(Value::Object(o.clone()))
        }
        Some(_) => return Err(ApiError::invalid("metadata", "metadata must be an object")),
    };
    let new = NewOrder {
        merchant_id: merchant_id.to_string(),
        amount,
        subject: subject.to_string(),
        expires_in_secs: expires_in,
        return_url,
    };
    if let Some(url) = &new.return_url {
        if !orders::valid_return_url(url) {
            return Err(ApiError::invalid(
                "return_url",
                "return_url must be an absolute http:// or https:// URL of at most 512 characters",
            ));
        }
    }
    Ok(CreateOrder {
        new,
        channel,
        metadata,
    })
}

// ---- handlers ----

/// Create an order (and, with `channel`, its wallet code).
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = schema::CreateOrderRequest,
    params(schema::Idempotency),
    responses(
        (status = 201, description = "Created", body = OrderObject),
        (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 409, description = "Idempotency key reused or in progress", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
        (status = 502, description = "The provider could not create the code", body = ErrorBody),
    ))]
async fn create_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse_create_order(&state, &caller.merchant_id, &body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let run = || async {
        let order = match state
            .payments
            .create_order(&request.new, request.metadata.as_ref())
            .await
        {
            Ok(o) => o,
            Err(OrderError::Db(e)) => return ApiError::internal(e).answer(),
            Err(e) => return ApiError::invalid("order", e.to_string()).answer(),
        };
        let base = base_url(&state);
        let mut view = order_json(&order, &base);
        if let Some(channel) = request.channel {
            match state
                .start
                .start_payment(order.id.as_str(), channel)
                .await
            {
                Ok(attempt) => {
                    view["code_url"] = json!(attempt.code_url);
                    if let Ok(Some(o)) = orders::get(&state.db, order.id.as_str()).await {
                        view["status"] = json!(o.status);
                    }
                }
                Err(PaymentError::Provider { channel, source }) => {
                    return ApiError {
                        extra: Some(("order_id", json!(order.id.as_str()))),
                        ..ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "provider_unavailable",
                            format!("the order was created, but {channel} could not create a code: {source}"),
                        )
                    }
                    .answer()
                }
                Err(e) => return ApiError::internal(e).answer(),
            }
        }
        Answer(StatusCode::CREATED, view)
    };
    idempotent(&state, &caller, &headers, "POST /orders", &body, run).await
}

async fn merchant_order(state: &AppState, caller: &Caller, id: &str) -> Result<Order, ApiError> {
    match orders::get(&state.db, id).await {
        Ok(Some(o)) if o.merchant_id == caller.merchant_id => Ok(o),
        Ok(_) => Err(ApiError::not_found(id)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// One order.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(schema::OrderPath),
    responses(
        (status = 200, description = "The order", body = OrderObject),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such order of yours", body = ErrorBody),
    ))]
async fn get_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order = merchant_order(&state, &caller, &id).await?;
    Ok(Json(order_json(&order, &base_url(&state))))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    channel: Option<String>,
    limit: Option<i64>,
    starting_after: Option<String>,
}

/// Your orders, newest first, by cursor.
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(
        ("status" = Option<String>, Query, description = "Only this status"),
        ("channel" = Option<String>, Query, description = "alipay or wechat"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("starting_after" = Option<String>, Query, description = "A next_cursor"),
    ),
    responses(
        (status = 200, description = "A page", body = OrderList),
        (status = 400, description = "Invalid filter (names it)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
    ))]
async fn list_orders(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let status =
        match q.status.as_deref() {
            None => None,
            Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", format!("{s:?} is not an order status"))
            })?),
        };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 100"));
    }
    if let Some(cursor) = q.starting_after.as_deref() {
        // A cursor must be one of the caller's orders; anything else would page from nowhere.
        if merchant_order(&state, &caller, cursor).await.is_err() {
            return Err(ApiError::invalid(
                "starting_after",
                "starting_after must be the id of one of your orders (a next_cursor)",
            ));
        }
    }
    let channel = match q.channel.as_deref() {
        None => None,
        Some(s) => Some(Channel::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "channel",
                format!("{s:?} is not a channel (alipay, wechat)"),
            )
        })?),
    };
    let search = orders::Search {
        status,
        channel,
        starting_after: q.starting_after.clone(),
        ..orders::Search::default()
    };
    let page = orders::list(&state.db, &caller.merchant_id, &search, limit + 1)
        .await
        .map_err(ApiError::internal)?;
    let has_more = page.len() as i64 > limit;
    let base = base_url(&state);
    let data: Vec<OrderObject> = page
        .iter()
        .take(limit as usize)
        .map(|o| OrderObject::of(o, &base))
        .collect();
    let next_cursor = if has_more {
        data.last().map(|o| o.id.clone())
    } else {
        None
    };
    Ok(Json(json!(OrderList {
        object: "list".into(),
        data,
        has_more,
        next_cursor,
    })))
}

/// Close an unpaid order (its code stops working).
#[utoipa::path(post, path = "/orders/{id}/close", tag = "orders",
    params(schema::OrderPath, schema::Idempotency),
    responses(
        (status = 200, description = "Closed (also when it already was)", body = OrderObject),
        (status = 404, description = "No such order of yours", body = ErrorBody),
        (status = 409, description = "Paid or expired: not closable", body = ErrorBody),
        (status = 502, description = "The provider could not close the code", body = ErrorBody),
    ))]
async fn close_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let order = match merchant_order(&state, &caller, &id).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let route = format!("POST /orders/{id}/close");
    let run = || async {
        match state
            .payments
            .close_for_merchant(&caller.merchant_id, order.id.as_str(), "api")
            .await
        {
            Ok(closed) => Answer(StatusCode::OK, order_json(&closed, &base_url(&state))),
            Err(CloseError::NotFound(_)) => ApiError::not_found(&id).answer(),
            Err(e @ CloseError::NotClosable(_)) => {
                ApiError::new(StatusCode::CONFLICT, "order_not_closable", e.to_string()).answer()
            }
            Err(CloseError::Payment(PaymentError::Provider { channel, source })) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                format!("{channel} could not close the code: {source}; nothing changed, retry"),
            )
            .answer(),
            Err(CloseError::Payment(PaymentError::Busy)) => ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a code for this order is being created; retry shortly",
            )
            .answer(),
            Err(CloseError::Payment(e)) => ApiError::internal(e).answer(),
        }
    };
    idempotent(&state, &caller, &headers, &route, &body, run).await
}

/// Refund all or part of a paid order.
#[utoipa::path(post, path = "/orders/{id}/refunds", tag = "refunds",
    request_body = schema::CreateRefundRequest,
    params(schema::OrderPath, schema::Idempotency),
    responses(
        (status = 201, description = "The refund as the provider left it", body = RefundObject),
        (status = 400, description = "Invalid (an amount over what is refundable names `refundable`)", body = ErrorBody),
        (status = 404, description = "No such order of yours", body = ErrorBody),
        (status = 409, description = "Not a paid order", body = ErrorBody),
    ))]
async fn create_refund(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = json_object(&body).and_then(|m| {
        let amount = amount_field(&m)?;
        let reason = optional_string(&m, "reason")?.map(str::to_string);
        if reason
            .as_deref()
            .is_some_and(|r| r.chars().count() > refunds::MAX_REASON_CHARS)
        {
            return Err(ApiError::invalid(
                "reason",
                format!(
                    "reason must be at most {} characters",
                    refunds::MAX_REASON_CHARS
                ),
            ));
        }
        Ok((amount, reason))
    });
    let (amount, reason) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = merchant_order(&state, &caller, &id).await {
        return e.into_response();
    }
    let route = format!("POST /orders/{id}/refunds");
    let run = || async {
        match refunds::request(
            &state.payments,
            &caller.merchant_id,
            &id,
            amount,
            reason.as_deref(),
        )
        .await
        {
            Ok(r) => Answer(StatusCode::CREATED, refund_json(&r)),
            Err(RefundError::NotFound(_)) => ApiError::not_found(&id).answer(),
            Err(RefundError::NotRefundable(status)) => ApiError::new(
                StatusCode::CONFLICT,
                "order_not_refundable",
                format!("the order is {status}; only a paid order can be refunded"),
            )
            .answer(),
            Err(RefundError::TooMuch { available }) => ApiError {
                extra: Some(("refundable", json!(available))),
                ..ApiError::invalid(
                    "amount",
                    format!("at most {available} fen of this order can still be refunded"),
                )
            }
            .answer(),
            Err(RefundError::Zero) => {
                ApiError::invalid("amount", RefundError::Zero.to_string()).answer()
            }
            Err(RefundError::Reason) => {
                ApiError::invalid("reason", RefundError::Reason.to_string()).answer()
            }
            Err(e @ RefundError::ChannelDisabled(_)) => {
                ApiError::new(StatusCode::CONFLICT, "channel_disabled", e.to_string()).answer()
            }
            // Not answers of a refund request (only of the abnormal-refund action).
            Err(e @ (RefundError::NotAbnormal(_) | RefundError::Provider(_))) => {
                ApiError::new(StatusCode::CONFLICT, "order_not_refundable", e.to_string()).answer()
            }
            Err(RefundError::Db(e)) => ApiError::internal(e).answer(),
        }
    };
    idempotent(&state, &caller, &headers, &route, &body, run).await
}

/// An order's refunds.
#[utoipa::path(get, path = "/orders/{id}/refunds", tag = "refunds",
    params(schema::OrderPath),
    responses(
        (status = 200, description = "Oldest first", body = RefundList),
        (status = 404, description = "No such order of yours", body = ErrorBody),
    ))]
async fn list_refunds(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    merchant_order(&state, &caller, &id).await?;
    let list = refunds::for_order(&state.payments, &caller.merchant_id, &id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!(RefundList {
        object: "list".into(),
        data: list.iter().map(RefundObject::of).collect(),
        has_more: false,
    })))
}
