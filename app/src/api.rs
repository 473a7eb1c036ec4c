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

/// The aggregate code `/q/:token`, and every way back to it (a wallet's OAuth, a cashier's
/// return). Where it goes depends on the browser: a wallet's own (Alipay `AlipayClient`,
/// WeChat `MicroMessenger`) signs in silently and pays in the page; a plain phone browser
/// chooses a wallet and goes to its mobile cashier; a desktop gets the checkout's QR code.
/// `search` is the page's query string as the browser sent it. Served at `POST /api/aggregate`.
#[server(endpoint = "aggregate")]
pub async fn open_aggregate(token: String, search: String) -> Result<AggregateAnswer, AppError> {
    let services = crate::services::use_services()?;
    let parts = leptos::prelude::use_context::<http::request::Parts>();
    let user_agent = parts
        .as_ref()
        .and_then(|p| {
            p.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let client_ip = parts
        .as_ref()
        .and_then(|p| p.extensions.get::<crate::model::checkout::ClientAddr>())
        .map(|a| a.0.clone());
    let query = parse_query(&search);
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let request = AggregateRequest {
        token,
        pay: get("pay")
            .as_deref()
            .and_then(crate::channel::Channel::parse),
        user_agent,
        code: get("code").or_else(|| get("auth_code")),
        state: get("state"),
        back: get("back")
            .as_deref()
            .and_then(crate::channel::Channel::parse),
        client_ip,
        query,
    };
    let answer = services
        .aggregate(request)
        .await
        .map_err(crate::services::to_server_error)?;
    if let AggregateAnswer::Redirect(url) = &answer {
        redirect_page_or_call(url);
    }
    Ok(answer)
}

/// A shop's fixed code `/p/:code` (`None`: no such code). Served at `POST /api/shop_code`.
#[server(endpoint = "shop_code")]
pub async fn open_shop_code(code: String) -> Result<Option<ShopCodeView>, AppError> {
    crate::services::use_services()?
        .shop_code(code)
        .await
        .map_err(crate::services::to_server_error)
}

/// The fixed code's form (a plain form post, so it works before and without the WASM):
/// makes the order and sends the phone to its aggregate code, which takes it on to the
/// wallet; a mistake sends it back to the form saying what to correct. Served at
/// `POST /api/shop_pay`.
#[server(endpoint = "shop_pay")]
pub async fn shop_pay(code: String, amount: String, note: String) -> Result<(), AppError> {
    let services = crate::services::use_services()?;
    let to = match services.shop_pay(code.clone(), amount.clone(), note).await {
        Ok(path) => path,
        Err(crate::services::ServiceError::Invalid(why)) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("error", &why)
                .append_pair("amount", &amount)
                .finish();
            let code: String = form_urlencoded::byte_serialize(code.as_bytes()).collect();
            format!("/p/{code}?{query}")
        }
        Err(e) => return Err(crate::services::to_server_error(e)),
    };
    redirect_page_or_call(&to);
    Ok(())
}

/// A query string (`a=1&b=x%20y`, with or without its `?`) as pairs, each decoded once.
#[cfg(feature = "ssr")]
pub fn parse_query(search: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(search.trim_start_matches('?').as_bytes())
        .into_owned()
        .collect()
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
