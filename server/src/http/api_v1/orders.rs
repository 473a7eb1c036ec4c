//! `/orders`: create, list, get and close a merchant's orders.

use super::body::{self, RequestBody};
use super::error::ApiError;
use super::idempotency::{idempotent, key_of};
use super::schema::{self, ErrorBody, ListParams, OrderList, OrderObject, OrderPath};
use crate::api_keys::Caller;
use crate::orders::{self, NewOrder, Order, OrderError, OrderStatus};
use crate::payments::{CloseError, PayWay, PaymentError};
use crate::providers::{PayMethod, Payer};
use crate::state::AppState;
use app::channel::Channel;
use app::money::Amount;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::{Extension, Json};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

/// The only currency.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Currency {
    #[serde(rename = "CNY")]
    Cny,
}

/// `POST /orders`.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Fen (`1234` is ¥12.34).
    #[schema(schema_with = schema::amount)]
    #[serde(deserialize_with = "body::whole")]
    pub amount: i64,
    #[schema(schema_with = schema::currency)]
    #[allow(
        dead_code,
        reason = "read by serde only: it refuses any currency but CNY, the only one stored"
    )]
    pub currency: Currency,
    /// What the customer sees.
    #[schema(schema_with = schema::subject)]
    pub subject: String,
    /// Seconds the order can be paid (default 900).
    #[schema(schema_with = schema::expires_in)]
    #[serde(default, deserialize_with = "body::whole_or_none")]
    pub expires_in: Option<i64>,
    /// Where the customer is sent after paying.
    #[schema(schema_with = schema::return_url)]
    pub return_url: Option<String>,
    /// Create the wallet's code at once (the answer then holds `code_url`).
    #[schema(schema_with = schema::channel_input)]
    pub channel: Option<Channel>,
    /// The merchant's own string values.
    #[schema(schema_with = schema::metadata)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// With `channel`: how the customer pays (default `native`).
    #[schema(schema_with = schema::method_input)]
    pub method: Option<PayMethod>,
    /// `jsapi`: who pays (WeChat openid, Alipay user_id or open_id).
    #[schema(schema_with = schema::payer_id_input)]
    pub payer_id: Option<String>,
    /// `h5`: the customer's IP address.
    #[schema(schema_with = schema::payer_client_ip_input)]
    pub payer_client_ip: Option<String>,
}

impl CreateOrderRequest {
    /// The payment the request asks for, when it names a channel.
    fn way(&self, public_url: &str, token: Option<&str>) -> Option<PayWay> {
        let channel = self.channel?;
        let method = self.method.unwrap_or_default();
        let payer = self.payer_id.as_deref().and_then(|id| {
            let kind = match channel {
                Channel::Wechat => "wechat_openid",
                Channel::Alipay
                    if id.len() == 16
                        && id.starts_with("2088")
                        && id.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    "alipay_user_id"
                }
                Channel::Alipay => "alipay_open_id",
            };
            Payer::parse(&format!("{kind}:{id}"))
        });
        Some(PayWay {
            channel,
            method,
            payer,
            client_ip: self.payer_client_ip.clone(),
            // The cashier sends the customer back to the order's aggregate code, which shows
            // the order as it is (never taking the visit as a payment).
            return_url: token.map(|t| format!("{public_url}/q/{t}?back={channel}")),
        })
    }
}

/// The subject's meaningful characters: anything but the ends' spaces and line breaks.
fn subject_text(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

impl RequestBody for CreateOrderRequest {
    fn rule(field: &str) -> Option<String> {
        Some(match field {
            "amount" => format!(
                "amount must be a whole number of fen from 1 to {} (1234 is ¥12.34)",
                Amount::MAX.fen()
            ),
            "currency" => "currency must be \"CNY\"".into(),
            "subject" => format!(
                "subject must be 1 to {} characters, not only spaces",
                orders::MAX_SUBJECT_CHARS
            ),
            "expires_in" => format!(
                "expires_in must be a whole number of seconds from {} to {}",
                orders::MIN_EXPIRY_SECS,
                orders::MAX_EXPIRY_SECS
            ),
            "return_url" => format!(
                "return_url must be an absolute http:// or https:// URL of at most {} characters",
                orders::MAX_RETURN_URL
            ),
            "channel" => "channel must be \"alipay\" or \"wechat\"".into(),
            "method" => "method must be \"native\", \"jsapi\", \"h5\" (WeChat) or \"wap\" (Alipay), with a channel that has it".into(),
            "payer_id" => "payer_id is required for jsapi: 1 to 128 of [0-9A-Za-z_-] (a WeChat openid, an Alipay user_id or open_id)".into(),
            "payer_client_ip" => "payer_client_ip is required for h5: the customer's IPv4 or IPv6 address".into(),
            "metadata" => format!(
                "metadata must be an object of at most {} string values (keys 1 to {} characters, values up to {})",
                schema::MAX_METADATA_KEYS,
                schema::MAX_METADATA_KEY_CHARS,
                schema::MAX_METADATA_VALUE_CHARS
            ),
            _ => return None,
        })
    }

    fn check(&self) -> Result<(), ApiError> {
        if Amount::from_fen(self.amount).is_err() || self.amount < 1 {
            return Err(Self::invalid("amount"));
        }
        let chars = self.subject.chars().count();
        if chars > orders::MAX_SUBJECT_CHARS || subject_text(&self.subject).is_empty() {
            return Err(Self::invalid("subject"));
        }
        if self
            .expires_in
            .is_some_and(|n| !(orders::MIN_EXPIRY_SECS..=orders::MAX_EXPIRY_SECS).contains(&n))
        {
            return Err(Self::invalid("expires_in"));
        }
        if self
            .return_url
            .as_deref()
            .is_some_and(|u| !orders::valid_return_url(u))
        {
            return Err(Self::invalid("return_url"));
        }
        let method = self.method.unwrap_or_default();
        if self.method.is_some() && !self.channel.is_some_and(|c| method.offered_by(c)) {
            return Err(Self::invalid("method"));
        }
        let payer_ok = self.payer_id.as_deref().is_some_and(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        });
        if (method == PayMethod::Jsapi && !payer_ok)
            || (self.payer_id.is_some() && method != PayMethod::Jsapi)
        {
            return Err(Self::invalid("payer_id"));
        }
        let ip_ok = self
            .payer_client_ip
            .as_deref()
            .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        if (method == PayMethod::H5 && !ip_ok)
            || (self.payer_client_ip.is_some() && method != PayMethod::H5)
        {
            return Err(Self::invalid("payer_client_ip"));
        }
        if let Some(m) = &self.metadata {
            let ok = m.len() <= schema::MAX_METADATA_KEYS
                && m.iter().all(|(k, v)| {
                    (1..=schema::MAX_METADATA_KEY_CHARS).contains(&k.chars().count())
                        && v.as_str()
                            .is_some_and(|s| s.chars().count() <= schema::MAX_METADATA_VALUE_CHARS)
                });
            if !ok {
                return Err(Self::invalid("metadata"));
            }
        }
        Ok(())
    }
}

/// Create an order (and, with `channel`, its wallet code).
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body = CreateOrderRequest,
    params(schema::Idempotency),
    responses(
        (status = 201, description = "Created", body = OrderObject),
        (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 409, description = "Idempotency key reused or in progress", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
        (status = 502, description = "The provider could not create the code", body = ErrorBody),
    ))]
pub async fn create_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateOrderRequest = body::parse(&body)?;
    if let Some(channel) = request.channel {
        let available = state
            .payments
            .book()
            .for_merchant(&caller.merchant_id, channel)
            .await
            .map_err(ApiError::internal)?;
        if available.is_none() {
            return Err(ApiError::invalid(
                "channel",
                format!("channel {channel} is not enabled on this server"),
            ));
        }
    }
    let key = key_of(&headers)?;
    let run = || async {
        match create(&state, &caller, request).await {
            Ok(view) => (StatusCode::CREATED, view).into(),
            Err(e) => e.into(),
        }
    };
    Ok(idempotent(&state, &caller, key, "POST /orders", &body, run).await)
}

async fn create(
    state: &AppState,
    caller: &Caller,
    request: CreateOrderRequest,
) -> Result<OrderObject, ApiError> {
    let new = NewOrder {
        merchant_id: caller.merchant_id.clone(),
        amount: Amount::from_fen(request.amount)
            .map_err(|_| CreateOrderRequest::invalid("amount"))?,
        subject: subject_text(&request.subject).to_string(),
        expires_in_secs: request
            .expires_in
            .unwrap_or(state.settings.default_expiry_secs),
        return_url: request.return_url.clone(),
    };
    let metadata = request.metadata.clone().map(serde_json::Value::Object);
    let order = match state.payments.create_order(&new, metadata.as_ref()).await {
        Ok(o) => o,
        Err(OrderError::Db(e)) => return Err(ApiError::internal(e)),
        Err(e) => return Err(ApiError::invalid("order", e.to_string())),
    };
    let base = &state.settings.public_url;
    let Some(way) = request.way(base, order.aggregate_token.as_deref()) else {
        return Ok(OrderObject::of(&order, base));
    };
    match state.start.start_with(&order.id, &way).await {
        Ok(attempt) => {
            // The order as the code left it (its status moved on).
            let now = orders::get(&state.db, &order.id)
                .await
                .ok()
                .flatten()
                .unwrap_or(order);
            let mut view = OrderObject::of(&now, base);
            view.pay_params = pay_params(state, &attempt).await?;
            view.method = Some(attempt.method);
            view.code_url = attempt.code_url;
            Ok(view)
        }
        Err(PaymentError::Provider { channel, source }) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            format!("the order was created, but {channel} could not create a code: {source}"),
        )
        .with("order_id", order.id.as_str())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// A jsapi attempt's call for the wallet's bridge, signed now.
async fn pay_params(
    state: &AppState,
    attempt: &crate::payments::Attempt,
) -> Result<Option<serde_json::Value>, ApiError> {
    let (PayMethod::Jsapi, Some(code)) = (attempt.method, &attempt.code_url) else {
        return Ok(None);
    };
    let Some(client) = state
        .payments
        .client_of(attempt)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    let call = client.wallet_call(code).map_err(ApiError::internal)?;
    Ok(Some(match call {
        app::model::checkout::WalletCall::Wechat(p) => {
            serde_json::to_value(p).map_err(ApiError::internal)?
        }
        app::model::checkout::WalletCall::Alipay { trade_no } => {
            serde_json::json!({ "tradeNO": trade_no })
        }
    }))
}

/// The caller's order `id`; another merchant's is a 404 like a missing one.
pub async fn merchant_order(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Order, ApiError> {
    // An id that cannot be one of ours is an order that does not exist.
    let Some(order_id) = orders::OrderId::parse(id) else {
        return Err(ApiError::not_found(id));
    };
    match orders::get(&state.db, &order_id).await {
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
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
    ))]
pub async fn get_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(OrderPath { id }): Path<OrderPath>,
) -> Result<Json<OrderObject>, ApiError> {
    let order = merchant_order(&state, &caller, &id).await?;
    Ok(Json(OrderObject::of(&order, &state.settings.public_url)))
}

/// The list's query, read by hand so that each refusal names its parameter.
fn list_params(raw: Option<&str>) -> Result<ListParams, ApiError> {
    let mut q = ListParams::default();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "status" => {
                q.status = Some(OrderStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid("status", format!("status {value:?} is not an order status"))
                })?)
            }
            "channel" => {
                q.channel = Some(Channel::parse(&value).ok_or_else(|| {
                    ApiError::invalid(
                        "channel",
                        format!("channel {value:?} is not a channel (alipay, wechat)"),
                    )
                })?)
            }
            "limit" => {
                q.limit = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=schema::MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "limit",
                                format!(
                                    "limit must be a whole number from 1 to {}",
                                    schema::MAX_PAGE
                                ),
                            )
                        })?,
                )
            }
            "starting_after" => q.starting_after = Some(value),
            // Unknown parameters are ignored, as the document allows.
            _ => {}
        }
    }
    Ok(q)
}

/// Your orders, newest first, by cursor.
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(schema::ListParams),
    responses(
        (status = 200, description = "A page", body = OrderList),
        (status = 400, description = "Invalid filter (names it)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
    ))]
pub async fn list_orders(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrderList>, ApiError> {
    let q = list_params(raw.as_deref())?;
    let limit = q.limit.unwrap_or(schema::DEFAULT_PAGE);
    if let Some(cursor) = q.starting_after.as_deref() {
        // A cursor must be one of the caller's orders; anything else would page from nowhere.
        if merchant_order(&state, &caller, cursor).await.is_err() {
            return Err(ApiError::invalid(
                "starting_after",
                "starting_after must be the id of one of your orders (a next_cursor)",
            ));
        }
    }
    let search = orders::Search {
        status: q.status,
        channel: q.channel,
        starting_after: q.starting_after,
        ..orders::Search::default()
    };
    let page = orders::list(&state.db, &caller.merchant_id, &search, limit + 1)
        .await
        .map_err(ApiError::internal)?;
    let has_more = page.len() as i64 > limit;
    let base = &state.settings.public_url;
    let data: Vec<OrderObject> = page
        .iter()
        .take(limit as usize)
        .map(|o| OrderObject::of(o, base))
        .collect();
    let next_cursor = if has_more {
        data.last().map(|o| o.id.clone())
    } else {
        None
    };
    Ok(Json(OrderList {
        object: "list".into(),
        data,
        has_more,
        next_cursor,
    }))
}

/// Close an unpaid order (its code stops working).
#[utoipa::path(post, path = "/orders/{id}/close", tag = "orders",
    params(schema::OrderPath, schema::Idempotency),
    responses(
        (status = 200, description = "Closed (also when it already was)", body = OrderObject),
        (status = 400, description = "Invalid Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such order of yours", body = ErrorBody),
        (status = 409, description = "Paid or expired: not closable; or a request in progress", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
        (status = 502, description = "The provider could not close the code", body = ErrorBody),
    ))]
pub async fn close_order(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(OrderPath { id }): Path<OrderPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let order = merchant_order(&state, &caller, &id).await?;
    let key = key_of(&headers)?;
    let route = format!("POST /orders/{id}/close");
    let run = || async {
        match state
            .payments
            .close_for_merchant(&caller.merchant_id, &order.id, "api")
            .await
        {
            Ok(closed) => (
                StatusCode::OK,
                OrderObject::of(&closed, &state.settings.public_url),
            )
                .into(),
            Err(e) => close_error(&id, e).into(),
        }
    };
    Ok(idempotent(&state, &caller, key, &route, &body, run).await)
}

fn close_error(id: &str, e: CloseError) -> ApiError {
    match e {
        CloseError::NotFound(_) => ApiError::not_found(id),
        e @ CloseError::NotClosable(_) => {
            ApiError::new(StatusCode::CONFLICT, "order_not_closable", e.to_string())
        }
        CloseError::Payment(PaymentError::Provider { channel, source }) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            format!("{channel} could not close the code: {source}; nothing changed, retry"),
        ),
        CloseError::Payment(PaymentError::Busy) => ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a code for this order is being created; retry shortly",
        ),
        CloseError::Payment(e) => ApiError::internal(e),
    }
}
