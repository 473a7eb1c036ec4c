//! Server functions and the types they carry between the browser and the server.
//!
//! Each function runs on the server and reaches the server's services through the
//! [`crate::services::AppServices`] context value; the browser only sees the typed result.
//! Internal failures are logged on the server and reach the browser as a generic message.

use leptos::prelude::*;

pub use crate::model::checkout::*;
pub use crate::model::error::AppError;

/// Asks the server for its version and database engine, pinging the database on the way.
/// Served at `POST /api/info`.
#[server(endpoint = "info")]
pub async fn get_server_info() -> Result<ServerInfo, AppError> {
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

/// The checkout of an order, starting (or reusing) a payment in `wallet` when one is chosen.
/// `Ok(None)`: no such order. Served at `POST /api/checkout`.
#[server(endpoint = "checkout")]
pub async fn get_checkout(
    order_id: String,
    wallet: Option<String>,
) -> Result<Option<CheckoutView>, AppError> {
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
pub async fn renew_order(order_id: String) -> Result<String, AppError> {
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
) -> Result<String, AppError> {
    let services = crate::services::use_services()?;
    let invalid = |message: String| {
        crate::services::to_server_error(crate::services::ServiceError::Invalid(message))
    };
    let amount = crate::money::Amount::parse_yuan(amount.trim())
        .map_err(|e| invalid(format!("Amount: {e}")))?;
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
pub async fn demo_enabled() -> Result<bool, AppError> {
    Ok(crate::services::use_services()?.demo_enabled())
}

/// The aggregate code `/q/:token`. A wallet's own browser (Alipay `AlipayClient`, WeChat
/// `MicroMessenger`), or `pay` naming a wallet, is redirected to that wallet's payment;
/// anyone else gets the page that explains and offers both. /// Served at `POST /api/aggregate`.
#[server(endpoint = "aggregate")]
pub async fn open_aggregate(
    token: String,
    pay: Option<String>,
) -> Result<AggregateAnswer, AppError> {
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
