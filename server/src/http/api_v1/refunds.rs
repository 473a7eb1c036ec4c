//! `/orders/{id}/refunds`: refund all or part of a paid order, and list its refunds.

use super::body::{self, RequestBody};
use super::error::{Answer, ApiError};
use super::idempotency::{idempotent, key_of};
use super::orders::merchant_order;
use super::schema::{self, ErrorBody, OrderPath, RefundList, RefundObject};
use crate::api_keys::Caller;
use crate::payments::refunds::{self, RefundError};
use crate::state::AppState;
use app::money::Amount;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /orders/{id}/refunds`.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundRequest {
    /// Fen; at most what is still refundable.
    #[schema(schema_with = schema::amount)]
    #[serde(deserialize_with = "body::whole")]
    pub amount: i64,
    /// Shown to the buyer by the wallet.
    #[schema(schema_with = schema::reason)]
    pub reason: Option<String>,
}

impl RequestBody for CreateRefundRequest {
    fn rule(field: &str) -> Option<String> {
        Some(match field {
            "amount" => format!(
                "amount must be a whole number of fen from 1 to {}, at most what is still refundable",
                Amount::MAX.fen()
            ),
            "reason" => format!(
                "reason must be a string of at most {} characters",
                refunds::MAX_REASON_CHARS
            ),
            _ => return None,
        })
    }

    fn check(&self) -> Result<(), ApiError> {
        if Amount::from_fen(self.amount).is_err() || self.amount < 1 {
            return Err(Self::invalid("amount"));
        }
        if self
            .reason
            .as_deref()
            .is_some_and(|r| r.chars().count() > refunds::MAX_REASON_CHARS)
        {
            return Err(Self::invalid("reason"));
        }
        Ok(())
    }
}

/// Refund all or part of a paid order.
#[utoipa::path(post, path = "/orders/{id}/refunds", tag = "refunds",
    request_body = CreateRefundRequest,
    params(schema::OrderPath, schema::Idempotency),
    responses(
        (status = 201, description = "The refund as the provider left it", body = RefundObject),
        (status = 400, description = "Invalid (an amount over what is refundable names `refundable`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such order of yours", body = ErrorBody),
        (status = 409, description = "Not a paid order; or a request in progress", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
    ))]
pub async fn create_refund(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(OrderPath { id }): Path<OrderPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateRefundRequest = body::parse(&body)?;
    let amount =
        Amount::from_fen(request.amount).map_err(|_| CreateRefundRequest::invalid("amount"))?;
    let order = merchant_order(&state, &caller, &id).await?;
    let key = key_of(&headers)?;
    let route = format!("POST /orders/{id}/refunds");
    let run = || async {
        match refunds::request(
            &state.payments,
            &caller.merchant_id,
            &order.id,
            amount,
            request.reason.as_deref(),
        )
        .await
        {
            Ok(r) => Answer::from((StatusCode::CREATED, RefundObject::of(&r))),
            Err(e) => refund_error(&id, e).into(),
        }
    };
    Ok(idempotent(&state, &caller, key, &route, &body, run).await)
}

fn refund_error(id: &str, e: RefundError) -> ApiError {
    match e {
        RefundError::NotFound(_) => ApiError::not_found(id),
        RefundError::NotRefundable(status) => ApiError::new(
            StatusCode::CONFLICT,
            "order_not_refundable",
            format!("the order is {status}; only a paid order can be refunded"),
        ),
        RefundError::TooMuch { available } => ApiError::invalid(
            "amount",
            format!("at most {available} fen of this order can still be refunded"),
        )
        .with("refundable", available),
        RefundError::Zero => ApiError::invalid("amount", RefundError::Zero.to_string()),
        RefundError::Reason => ApiError::invalid("reason", RefundError::Reason.to_string()),
        e @ RefundError::ChannelDisabled(_) => {
            ApiError::new(StatusCode::CONFLICT, "channel_disabled", e.to_string())
        }
        // Not answers of a refund request (only of the abnormal-refund action).
        e @ (RefundError::NotAbnormal(_) | RefundError::Provider(_)) => {
            ApiError::new(StatusCode::CONFLICT, "order_not_refundable", e.to_string())
        }
        RefundError::Db(e) => ApiError::internal(e),
        RefundError::Account(e) => ApiError::internal(e),
    }
}

/// An order's refunds.
#[utoipa::path(get, path = "/orders/{id}/refunds", tag = "refunds",
    params(schema::OrderPath),
    responses(
        (status = 200, description = "Oldest first", body = RefundList),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such order of yours", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
    ))]
pub async fn list_refunds(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(OrderPath { id }): Path<OrderPath>,
) -> Result<Json<RefundList>, ApiError> {
    let order = merchant_order(&state, &caller, &id).await?;
    let list = refunds::for_order(&state.payments, &caller.merchant_id, &order.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(RefundList {
        object: "list".into(),
        data: list.iter().map(RefundObject::of).collect(),
        has_more: false,
    }))
}
