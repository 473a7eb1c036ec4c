//! The seam between the UI and the server: what server functions may ask of the server.
//!
//! The server implements [`AppServices`] and provides an `Arc<dyn AppServices>` in the Leptos
//! context for every request, so this crate needs no database, crypto or HTTP-client code.

use crate::model::checkout::{
    AggregateAnswer, AggregateRequest, CheckoutView, Choice, LivePing, ShopCodeView,
};
use crate::model::error::AppError;
use crate::model::merchant::{BoardData, BoardFilter, Change, OrderDetail, SignedIn};
use crate::money::Amount;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use leptos::prelude::*;
use std::sync::Arc;

/// A failure a service reports: `Invalid` is meant for the person (it names the field and
/// what is wrong), `Internal` only for the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    Invalid(String),
    /// The server cannot take it now (a saturated database pool); the detail is for its log.
    Busy(String),
    Internal(String),
}

/// Services the server offers to server functions. Each area adds its methods here,
/// implemented in `server`.
pub trait AppServices: Send + Sync + 'static {
    /// The running program's version.
    fn version(&self) -> &'static str;
    /// A human name of the storage engine (`SQLite`, `PostgreSQL`).
    fn database_engine(&self) -> &'static str;
    /// A cheap round trip to the database. The error is for the server's log only.
    fn ping_database(&self) -> BoxFuture<'_, Result<(), String>>;
    /// The checkout of an order; with a choice, the payment in that wallet is started (or the
    /// live one reused). `None`: no such order.
    fn checkout(
        &self,
        order_id: String,
        choice: Option<Choice>,
    ) -> BoxFuture<'_, Result<Option<CheckoutView>, ServiceError>>;
    /// The live pings of one order (see `api::LivePing`).
    fn watch(&self, order_id: String) -> BoxStream<'static, LivePing>;
    /// A fresh order like an expired one; its id.
    fn renew(&self, order_id: String) -> BoxFuture<'_, Result<String, ServiceError>>;
    /// Whether the demo shop and its form exist.
    fn demo_enabled(&self) -> bool;
    /// The demo posture: every provider is the sandbox, and every page says so.
    fn no_real_money(&self) -> bool;
    /// A demo-shop order; its id.
    fn create_demo_order(
        &self,
        amount: Amount,
        subject: String,
        expires_in_secs: Option<i64>,
    ) -> BoxFuture<'_, Result<String, ServiceError>>;
    /// Where the aggregate code sends the phone that made `request`.
    fn aggregate(
        &self,
        request: AggregateRequest,
    ) -> BoxFuture<'_, Result<AggregateAnswer, ServiceError>>;
    /// A shop's fixed code (`None`: no such code).
    fn shop_code(&self, code: String) -> BoxFuture<'_, Result<Option<ShopCodeView>, ServiceError>>;
    /// A customer's payment through a fixed code: the path of the new order's aggregate code
    /// (which takes the phone on to its wallet). `Invalid` names what to correct.
    fn shop_pay(
        &self,
        code: String,
        amount: String,
        note: String,
    ) -> BoxFuture<'_, Result<String, ServiceError>>;
    /// Who holds the session of this cookie token (`None`: no live session).
    fn session(&self, token: String) -> BoxFuture<'_, Result<Option<SignedIn>, ServiceError>>;
    /// One page of a merchant's board.
    fn board(
        &self,
        merchant_id: String,
        filter: BoardFilter,
        after: Option<String>,
    ) -> BoxFuture<'_, Result<BoardData, ServiceError>>;
    /// One of a merchant's orders in full (`None`: not theirs, or no such order).
    fn board_order(
        &self,
        merchant_id: String,
        order_id: String,
    ) -> BoxFuture<'_, Result<Option<OrderDetail>, ServiceError>>;
    /// A change to a merchant's orders; a sentence for the person (a new order: its id).
    fn board_action(
        &self,
        merchant_id: String,
        action: Change,
    ) -> BoxFuture<'_, Result<String, ServiceError>>;
    /// The live pings of a merchant's board.
    fn watch_merchant(&self, merchant_id: String) -> BoxStream<'static, LivePing>;
    /// A merchant's API keys and webhook endpoint.
    fn developers(
        &self,
        merchant_id: String,
    ) -> BoxFuture<'_, Result<crate::model::merchant::DevelopersView, ServiceError>>;
    /// A change to a merchant's API keys or webhook endpoint.
    fn setting(
        &self,
        merchant_id: String,
        change: crate::model::merchant::Setting,
    ) -> BoxFuture<'_, Result<crate::model::merchant::SettingDone, ServiceError>>;
    /// The nodes of the cluster and their load (for operators).
    fn cluster(&self) -> BoxFuture<'_, Result<crate::model::merchant::ClusterView, ServiceError>>;
}

/// The services of the current request, or a server-function error if the server forgot to
/// provide them (a bug, reported without internals).
pub fn use_services() -> Result<Arc<dyn AppServices>, AppError> {
    use_context::<Arc<dyn AppServices>>().ok_or_else(|| fail(AppError::Busy))
}

/// A service error as the browser sees it: the message of an `Invalid`, a generic sentence
/// for an `Internal` (whose detail goes to the server's log).
pub fn to_server_error(err: ServiceError) -> AppError {
    match err {
        ServiceError::Invalid(message) => fail(AppError::Invalid(message)),
        ServiceError::Busy(detail) => {
            tracing_error(&detail);
            fail(AppError::Busy)
        }
        ServiceError::Internal(detail) => {
            tracing_error(&detail);
            fail(AppError::Internal)
        }
    }
}

/// Sets the server-function response's status to match `e` (401, 403, 404, 400, 503, 500),
/// and returns it.
pub fn fail(e: AppError) -> AppError {
    let status = match e {
        AppError::SignedOut => http::StatusCode::UNAUTHORIZED,
        AppError::Stale => http::StatusCode::FORBIDDEN,
        AppError::NotFound => http::StatusCode::NOT_FOUND,
        AppError::Invalid(_) => http::StatusCode::BAD_REQUEST,
        AppError::Busy => http::StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal | AppError::Transport(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
    e
}

fn tracing_error(detail: &str) {
    leptos::logging::error!("server function failed: {detail}");
}
