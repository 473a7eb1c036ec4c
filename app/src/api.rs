//! Server functions and the types they carry between the browser and the server.
//!
//! Each function runs on the server and reaches the server's services through the
//! [`crate::services::AppServices`] context value; the browser only sees the typed result.
//! Internal failures are logged on the server and reach the browser as a generic message.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the server says about itself: shown on `/` after a click, which proves that the
/// page is hydrated and that a server function round-trips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The `scanpay` package version.
    pub version: String,
    /// The storage engine in use: `SQLite` or `PostgreSQL`.
    pub database_engine: String,
    /// Whether the database answered a ping just now.
    pub database_ok: bool,
}

/// Asks the server for its version and database engine, pinging the database on the way.
/// Served at `POST /api/info`.
#[server(endpoint = "info")]
pub async fn get_server_info() -> Result<ServerInfo, ServerFnError> {
    let services = crate::services::use_services()?;
    let database_ok = match services.ping_database().await {
        Ok(()) => true,
        Err(err) => {
            leptos::logging::error!("database ping failed: {err}");
            false
        }
    };
    Ok(ServerInfo {
        version: services.version().to_string(),
        database_engine: services.database_engine().to_string(),
        database_ok,
    })
}

use crate::channel::Channel;
use crate::money::Amount;
use crate::status::OrderStatus;

/// Which code the checkout shows: one wallet's, or the aggregate code any wallet can scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Choice {
    Any,
    Wallet(Channel),
}

impl Choice {
    /// `any`, `alipay`, `wechat`: the checkout's `?wallet=` values.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Any => "any",
            Choice::Wallet(c) => c.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Choice> {
        match s {
            "any" => Some(Choice::Any),
            other => Channel::parse(other).map(Choice::Wallet),
        }
    }
}

/// A code to scan: the URL it holds and the server-made SVG of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayCode {
    pub choice: Choice,
    pub url: String,
    pub svg: String,
    /// When the open page fetches a fresh code (Unix ms): a provider's code dies two hours
    /// after it was made, before a long-lived order does. `None`: it lives as long as the
    /// order (our own aggregate code, or an order that ends first).
    #[serde(default)]
    pub renew_at: Option<i64>,
}

/// Why no code of the chosen wallet could be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeProblem {
    /// The provider did not answer or refused: try again, or use another wallet.
    Unavailable(Channel),
    /// This server does not take that wallet.
    Disabled(Channel),
    /// Another request is still creating a code: try again in a moment.
    Busy,
}

/// Everything the checkout page shows, as of `server_now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub order_id: String,
    pub merchant_name: String,
    pub subject: String,
    pub amount: Amount,
    pub status: OrderStatus,
    pub late: bool,
    /// Unix milliseconds.
    pub expires_at: i64,
    pub server_now: i64,
    pub paid_at: Option<i64>,
    pub paid_channel: Option<Channel>,
    pub return_url: Option<String>,
    /// The wallets this server takes.
    pub channels: Vec<Channel>,
    /// The code on show; `None` when the order cannot be paid (any more), or on a problem.
    pub code: Option<PayCode>,
    pub problem: Option<CodeProblem>,
}

/// What the live channel says: re-read the order now, or "still here".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LivePing {
    Sync,
    Heartbeat,
}

/// The first (and only) message a page sends on the live channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub order_id: String,
}

/// What a phone that scanned the aggregate code sees when its browser is not a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateView {
    pub token: String,
    pub order_id: String,
    pub merchant_name: String,
    pub subject: String,
    pub amount: Amount,
    pub status: OrderStatus,
    pub payable: bool,
    pub channels: Vec<Channel>,
}

/// Where the aggregate code sends a phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateAnswer {
    /// To the wallet's payment (a redirect).
    Redirect(String),
    /// The page that explains and offers both wallets.
    Page(AggregateView),
    NotFound,
}

/// The checkout of an order, starting (or reusing) a payment in `wallet` when one is chosen.
/// `Ok(None)`: no such order. Served at `POST /api/checkout`.
#[server(endpoint = "checkout")]
pub async fn get_checkout(
    order_id: String,
    wallet: Option<String>,
) -> Result<Option<CheckoutView>, ServerFnError> {
    let services = crate::services::use_services()?;
    let choice = wallet.as_deref().and_then(Choice::parse);
    services
        .checkout(order_id, choice)
        .await
        .map_err(crate::services::to_server_error)
}

/// The live channel of one order's page: the page sends one [`WatchRequest`], the server
/// answers with [`LivePing`]s. Served as a WebSocket at `/api/watch`.
#[server(protocol = leptos::server_fn::Websocket<leptos::server_fn::codec::JsonEncoding, leptos::server_fn::codec::JsonEncoding>, endpoint = "watch")]
pub async fn watch_order(
    input: leptos::server_fn::BoxedStream<WatchRequest, ServerFnError>,
) -> Result<leptos::server_fn::BoxedStream<LivePing, ServerFnError>, ServerFnError> {
    use futures::StreamExt;
    let services = crate::services::use_services()?;
    // The socket is only opened once this returns, so the request is read inside the stream.
    let mut input: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<WatchRequest, ServerFnError>> + Send>,
    > = input.into();
    let pings = futures::stream::once(async move {
        match input.next().await {
            Some(Ok(request)) => services.watch(request.order_id),
            _ => futures::stream::empty().boxed(),
        }
    })
    .flatten()
    .map(Ok);
    Ok(pings.into())
}

/// A new order like the expired `order_id` (same shop, amount and subject), for the "get a
/// new code" action. Answers the new order's id. Served at `POST /api/renew`.
#[server(endpoint = "renew")]
pub async fn renew_order(order_id: String) -> Result<String, ServerFnError> {
    let services = crate::services::use_services()?;
    let id = services
        .renew(order_id)
        .await
        .map_err(crate::services::to_server_error)?;
    leptos_axum::redirect(&format!("/checkout/{id}"));
    Ok(id)
}

/// Creates a demo-shop order from the form on `/` and sends the browser to its checkout.
/// `amount` is in yuan (`12.34`); `expires_in` in seconds. Served at `POST /api/demo_order`.
#[server(endpoint = "demo_order")]
pub async fn create_demo_order(
    amount: String,
    subject: String,
    expires_in: Option<String>,
) -> Result<String, ServerFnError> {
    let services = crate::services::use_services()?;
    let invalid = |message: String| {
        crate::services::to_server_error(crate::services::ServiceError::Invalid(message))
    };
    let amount = Amount::parse_yuan(amount.trim()).map_err(|e| invalid(format!("Amount: {e}")))?;
    let expires_in = match expires_in.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| invalid("Valid for: a number of seconds".into()))?,
        ),
    };
    let id = services
        .create_demo_order(amount, subject.trim().to_string(), expires_in)
        .await
        .map_err(crate::services::to_server_error)?;
    leptos_axum::redirect(&format!("/checkout/{id}"));
    Ok(id)
}

/// Whether the demo shop's "new payment" form is on. Served at `POST /api/demo`.
#[server(endpoint = "demo")]
pub async fn demo_enabled() -> Result<bool, ServerFnError> {
    Ok(crate::services::use_services()?.demo_enabled())
}

/// The aggregate code `/q/:token`. A wallet's own browser (Alipay `AlipayClient`, WeChat
/// `MicroMessenger`), or `pay` naming a wallet, is redirected to that wallet's payment;
/// anyone else gets the page that explains and offers both. /// Served at `POST /api/aggregate`.
#[server(endpoint = "aggregate")]
pub async fn open_aggregate(
    token: String,
    pay: Option<String>,
) -> Result<AggregateAnswer, ServerFnError> {
    let services = crate::services::use_services()?;
    let user_agent = leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|p| {
            p.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let wallet = pay
        .as_deref()
        .and_then(Channel::parse)
        .or_else(|| wallet_of_user_agent(&user_agent));
    let answer = services
        .aggregate(token, wallet)
        .await
        .map_err(crate::services::to_server_error)?;
    if let AggregateAnswer::Redirect(url) = &answer {
        redirect_page_or_call(url);
    }
    Ok(answer)
}

/// Sends the browser to `url`: a real `302` while rendering a page (a wallet's in-app browser
/// may not say it accepts HTML), the server-function redirect header for a call.
#[cfg(feature = "ssr")]
fn redirect_page_or_call(url: &str) {
    let parts = leptos::prelude::use_context::<http::request::Parts>();
    let is_call = parts.is_some_and(|p| p.uri.path().starts_with("/api/"));
    match leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        Some(response) if !is_call => {
            if let Ok(location) = http::HeaderValue::from_str(url) {
                response.set_status(http::StatusCode::FOUND);
                response.insert_header(http::header::LOCATION, location);
            }
        }
        _ => leptos_axum::redirect(url),
    }
}

/// The wallet whose in-app browser sent a request, by its user agent.
pub fn wallet_of_user_agent(user_agent: &str) -> Option<Channel> {
    if user_agent.contains("AlipayClient") {
        Some(Channel::Alipay)
    } else if user_agent.contains("MicroMessenger") {
        Some(Channel::Wechat)
    } else {
        None
    }
}
