//! The merchant API's objects and its OpenAPI 3.1 document (`GET /api/v1/openapi.json`).
//!
//! The response types here are what the handlers serialise, so the document and the answers
//! come from the same code; the request types describe what the (hand-written, field-naming)
//! parsers accept. `server/tests/merchant/api.rs` validates real answers against the document
//! with an independent JSON Schema validator.

use crate::orders::Order;
use crate::refunds::{Refund, RefundStatus};
use app::channel::Channel;
use app::status::OrderStatus;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

fn string_enum(values: Vec<&'static str>, nullable: bool) -> ObjectBuilder {
    let t = if nullable {
        utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
    } else {
        utoipa::openapi::schema::SchemaType::Type(Type::String)
    };
    let mut values: Vec<serde_json::Value> = values.into_iter().map(Into::into).collect();
    if nullable {
        values.push(serde_json::Value::Null);
    }
    ObjectBuilder::new()
        .schema_type(t)
        .enum_values(Some(values))
}

fn status_schema() -> ObjectBuilder {
    string_enum(OrderStatus::ALL.iter().map(|s| s.as_str()).collect(), false)
}

fn channel_schema() -> ObjectBuilder {
    string_enum(Channel::ALL.iter().map(|c| c.as_str()).collect(), true)
}

fn refund_status_schema() -> ObjectBuilder {
    string_enum(
        [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
            RefundStatus::Abnormal,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect(),
        false,
    )
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// An order. Money is an integer of fen (`1234` is ¥12.34); times are Unix seconds.
#[derive(Serialize, ToSchema)]
pub struct OrderObject {
    pub id: String,
    /// Always `order`.
    #[schema(pattern = "^order$")]
    pub object: String,
    #[schema(schema_with = status_schema)]
    pub status: OrderStatus,
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(pattern = "^CNY$")]
    pub currency: String,
    pub subject: String,
    /// Paid after it had expired or been closed.
    pub late: bool,
    #[schema(minimum = 0)]
    pub refunded_amount: i64,
    #[schema(schema_with = channel_schema)]
    pub paid_channel: Option<Channel>,
    pub provider_trade_no: Option<String>,
    /// The customer's payment page.
    pub checkout_url: String,
    /// The code any wallet can scan (`/q/<token>`).
    pub aggregate_url: Option<String>,
    pub return_url: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    /// The merchant's own string values.
    #[schema(value_type = Object, additional_properties = true)]
    pub metadata: serde_json::Value,
    /// The wallet's payment URL, when the order was created with a `channel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_url: Option<String>,
}

impl OrderObject {
    pub fn of(o: &Order, base: &str) -> OrderObject {
        let id = o.id.as_str();
        OrderObject {
            id: id.to_string(),
            object: "order".into(),
            status: o.status,
            amount: o.amount.fen(),
            currency: "CNY".into(),
            subject: o.subject.clone(),
            late: o.late,
            refunded_amount: o.refunded_amount.fen(),
            paid_channel: o.paid_channel,
            provider_trade_no: o.provider_trade_no.clone(),
            checkout_url: format!("{base}/checkout/{id}"),
            aggregate_url: o.aggregate_token.as_ref().map(|t| format!("{base}/q/{t}")),
            return_url: o.return_url.clone(),
            expires_at: secs(o.expires_at),
            paid_at: o.paid_at.map(secs),
            created_at: secs(o.created_at),
            metadata: o.metadata.clone().unwrap_or_else(|| serde_json::json!({})),
            code_url: None,
        }
    }
}

/// A page of orders, newest first.
#[derive(Serialize, ToSchema)]
pub struct OrderList {
    /// Always `list`.
    #[schema(pattern = "^list$")]
    pub object: String,
    pub data: Vec<OrderObject>,
    pub has_more: bool,
    /// Pass as `starting_after` for the next page.
    pub next_cursor: Option<String>,
}

/// A refund of (part of) a paid order.
#[derive(Serialize, ToSchema)]
pub struct RefundObject {
    pub id: String,
    /// Always `refund`.
    #[schema(pattern = "^refund$")]
    pub object: String,
    pub order_id: String,
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(pattern = "^CNY$")]
    pub currency: String,
    pub reason: Option<String>,
    #[schema(schema_with = refund_status_schema)]
    pub status: String,
    pub provider_refund_no: Option<String>,
    /// Why it failed, when it did; for an `abnormal` refund (WeChat could not return the
    /// money to the buyer's account), what to do.
    pub failure: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RefundObject {
    pub fn of(r: &Refund) -> RefundObject {
        RefundObject {
            id: r.id.clone(),
            object: "refund".into(),
            order_id: r.order_id.clone(),
            amount: r.amount.fen(),
            currency: "CNY".into(),
            reason: r.reason.clone(),
            status: r.status.as_str().into(),
            provider_refund_no: r.provider_refund_no.clone(),
            failure: match r.status {
                RefundStatus::Failed => r.error.clone(),
                RefundStatus::Abnormal => Some(crate::refunds::ABNORMAL_ADVICE.into()),
                _ => None,
            },
            created_at: secs(r.created_at),
            updated_at: secs(r.updated_at),
        }
    }
}

/// An order's refunds, oldest first.
#[derive(Serialize, ToSchema)]
pub struct RefundList {
    #[schema(pattern = "^list$")]
    pub object: String,
    pub data: Vec<RefundObject>,
    pub has_more: bool,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `invalid_request`, `invalid_json`, `not_found`, `unauthorized`,
    /// `rate_limited`, `idempotency_key_reused`, `request_in_progress`, `order_not_closable`,
    /// `order_not_refundable`, `channel_disabled`, `provider_unavailable`, `internal`.
    pub code: String,
    /// For a person.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The order that was created although its code could not be (`provider_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// What can still be refunded, in fen (an `amount` too large for a refund).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refundable: Option<i64>,
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `POST /orders`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CreateOrderRequest {
    /// Fen, 1 to 10,000,000,000.
    #[schema(minimum = 1, maximum = 10_000_000_000_i64)]
    pub amount: i64,
    #[schema(pattern = "^CNY$")]
    pub currency: String,
    /// 1 to 127 characters.
    pub subject: String,
    /// Seconds the order can be paid (5 to 86,400; default 900).
    pub expires_in: Option<i64>,
    /// Where the customer is sent after paying.
    pub return_url: Option<String>,
    /// Create the wallet's code at once (the answer then holds `code_url`).
    #[schema(schema_with = channel_schema)]
    pub channel: Option<String>,
    /// Up to 20 string values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// `POST /orders/{id}/refunds`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CreateRefundRequest {
    /// Fen; at most what is still refundable.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// Up to 80 characters.
    pub reason: Option<String>,
}

/// The order a route is about.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order id.
    pub id: String,
}

/// A POST's idempotency key.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Idempotency {
    /// Replays the first answer for 24 h; another body under the key is a 409.
    #[param(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`sk_…`) from `scanpay apikey create` or `scanpay merchant create`."))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ScanPay merchant API",
        version = "1",
        description = "Orders, their closing and refunds. Money in fen, times in Unix seconds. \
                       POSTs take an `Idempotency-Key` (24 h, Stripe semantics)."
    ),
    servers((url = "/api/v1")),
    paths(
        super::create_order,
        super::list_orders,
        super::get_order,
        super::close_order,
        super::create_refund,
        super::list_refunds
    ),
    components(schemas(
        OrderObject,
        OrderList,
        RefundObject,
        RefundList,
        ErrorBody,
        ErrorDetail,
        CreateOrderRequest,
        CreateRefundRequest
    )),
    modifiers(&BearerKey),
    security(("api_key" = []))
)]
pub struct ApiDoc;
