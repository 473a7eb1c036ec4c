//! The merchant API's objects and its OpenAPI 3.1 document (`GET /api/v1/openapi.json`).
//!
//! The response types here are what the handlers serialise and the request types (in
//! `orders.rs`, `refunds.rs`) are what they parse, so the document and the API come from the
//! same code. The rules serde cannot state (ranges, lengths, patterns) are the functions
//! below, built from the same constants the handlers check. `server/tests/suite/merchant/api.rs`
//! validates real answers against the document with an independent JSON Schema validator,
//! and `scripts/schemathesis.sh` fuzzes the served document against a running server.

use super::idempotency;
use crate::orders::{self, Order};
use crate::payments::refunds::{self, Refund, RefundStatus};
use app::channel::Channel;
use app::money::Amount;
use app::status::OrderStatus;
use serde::Serialize;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// At most this many metadata entries, keys and values this long (characters).
pub const MAX_METADATA_KEYS: usize = 20;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;
/// A page of the order list: at most, and by default.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 20;

/// `t`, or `t` and null for an optional member.
fn of_type(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::Type(t)
    }
}

fn string_enum(values: Vec<&'static str>, nullable: bool) -> ObjectBuilder {
    let t = of_type(Type::String, nullable);
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

/// A request's `amount`: whole fen.
pub fn amount() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(Amount::MAX.fen()))
        .description(Some("Fen (1234 is ¥12.34)."))
}

pub fn currency() -> ObjectBuilder {
    string_enum(vec!["CNY"], false)
}

/// A subject: not only spaces and line breaks.
pub fn subject() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(orders::MAX_SUBJECT_CHARS))
        .pattern(Some("[^ \\t\\r\\n]"))
        .description(Some("What the customer sees."))
}

pub fn expires_in() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::Integer, true))
        .minimum(Some(orders::MIN_EXPIRY_SECS))
        .maximum(Some(orders::MAX_EXPIRY_SECS))
        .description(Some("Seconds the order can be paid (default 900)."))
}

pub fn return_url() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, true))
        .max_length(Some(orders::MAX_RETURN_URL))
        .pattern(Some(orders::RETURN_URL_PATTERN))
        .description(Some("Where the customer is sent after paying."))
}

/// A channel to create the code of at once.
pub fn channel_input() -> ObjectBuilder {
    channel_schema().description(Some(
        "Create this wallet's code at once (the answer then holds `code_url`).",
    ))
}

/// How the wallet is paid.
pub fn method_input() -> ObjectBuilder {
    string_enum(
        app::channel::PayMethod::ALL.iter().map(|m| m.as_str()).collect(),
        true,
    )
    .description(Some(
        "With `channel`: how the customer pays. `native` (default): a QR code for a screen, \
         `code_url` is its link. `jsapi`: inside the wallet's own browser, for the payer in \
         `payer_id`; the answer's `pay_params` go to `WeixinJSBridge.invoke('getBrandWCPayRequest', …)` \
         or `AlipayJSBridge.call('tradePay', …)`. `h5` (WeChat) and `wap` (Alipay): a phone \
         browser's cashier, `code_url` is its link (`h5` needs `payer_client_ip`).",
    ))
}

/// The payer of a `jsapi` payment.
pub fn payer_id_input() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, true))
        .min_length(Some(1))
        .max_length(Some(128))
        .pattern(Some("^[0-9A-Za-z_-]+$"))
        .description(Some(
            "For `jsapi`: the WeChat `openid` of the order's appid, or the Alipay buyer id \
             (`2088` and 12 digits is a `user_id`, anything else an `open_id`).",
        ))
}

/// The payer's address for an `h5` payment.
pub fn payer_client_ip_input() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, true))
        .max_length(Some(45))
        .description(Some(
            "For `h5`: the customer's own IP address (IPv4 or IPv6), as WeChat requires.",
        ))
}

pub fn metadata() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::Object, true))
        .max_properties(Some(MAX_METADATA_KEYS))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_METADATA_KEY_CHARS)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_METADATA_VALUE_CHARS))
                .into(),
        )))
        .description(Some("The merchant's own string values."))
}

pub fn reason() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, true))
        .max_length(Some(refunds::MAX_REASON_CHARS))
        .description(Some("Shown to the buyer by the wallet."))
}

pub fn status_filter() -> ObjectBuilder {
    status_schema()
}

pub fn channel_filter() -> ObjectBuilder {
    string_enum(Channel::ALL.iter().map(|c| c.as_str()).collect(), false)
}

pub fn limit() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_PAGE))
        .default(Some(DEFAULT_PAGE.into()))
}

pub fn idempotency_key() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(idempotency::MAX_KEY))
        .pattern(Some(idempotency::KEY_PATTERN))
}

/// An order id as `OrderId::parse` takes it.
pub fn order_id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::orders::ORDER_ID_PATTERN))
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
    /// How that payment is made (`native`, `jsapi`, `h5`, `wap`), with `code_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(native|jsapi|h5|wap)$")]
    pub method: Option<app::channel::PayMethod>,
    /// `jsapi`: what the page hands the wallet's JS bridge (WeChat: `appId`, `timeStamp`,
    /// `nonceStr`, `package`, `signType`, `paySign`; Alipay: `tradeNO`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, additional_properties = true)]
    pub pay_params: Option<serde_json::Value>,
    /// The shop's fixed code (`/p/<code>`) it was paid through, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shop_code: Option<String>,
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
            method: None,
            pay_params: None,
            shop_code: o.shop_code.clone(),
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
            order_id: r.order_id.to_string(),
            amount: r.amount.fen(),
            currency: "CNY".into(),
            reason: r.reason.clone(),
            status: r.status.as_str().into(),
            provider_refund_no: r.provider_refund_no.clone(),
            failure: match r.status {
                RefundStatus::Failed => r.error.clone(),
                RefundStatus::Abnormal => Some(crate::payments::refunds::ABNORMAL_ADVICE.into()),
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

/// The order a route is about.
/// Handlers extract it too (`Path<OrderPath>`), so the document's parameter is the real one.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Path)]
pub struct OrderPath {
    /// The order id.
    #[param(schema_with = order_id)]
    pub id: String,
}

/// The order list's filters and cursor (read by `orders::list_params`, which names the
/// parameter at fault).
#[derive(utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this status.
    #[param(schema_with = status_filter)]
    pub status: Option<OrderStatus>,
    /// Only this wallet (paid with, or offered a code of).
    #[param(schema_with = channel_filter)]
    pub channel: Option<Channel>,
    /// How many (default 20).
    #[param(schema_with = limit)]
    pub limit: Option<i64>,
    /// A `next_cursor`: the id of one of your orders.
    #[param(schema_with = order_id)]
    pub starting_after: Option<String>,
}

/// A POST's idempotency key.
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Idempotency {
    /// Replays the first answer for 24 h; another body under the key is a 409.
    #[param(rename = "Idempotency-Key", schema_with = idempotency_key)]
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
        super::orders::create_order,
        super::orders::list_orders,
        super::orders::get_order,
        super::orders::close_order,
        super::refunds::create_refund,
        super::refunds::list_refunds
    ),
    components(schemas(
        OrderObject,
        OrderList,
        RefundObject,
        RefundList,
        ErrorBody,
        ErrorDetail,
        super::orders::CreateOrderRequest,
        super::refunds::CreateRefundRequest
    )),
    modifiers(&BearerKey),
    security(("api_key" = []))
)]
pub struct ApiDoc;
