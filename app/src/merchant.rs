//! The merchant's side of the UI: what the order board shows and does, and the server
//! functions behind it.
//!
//! Every function here first finds the signed-in user from the session cookie and acts only
//! on that user's merchant: another merchant's order is "not found", never "forbidden".
//! Changes (refund, close, redeliver, new order) also carry the session's CSRF token.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// The session cookie (HttpOnly; set by `POST /auth/login`).
pub const SESSION_COOKIE: &str = "scanpay_session";

pub use crate::model::error::AppError;
pub use crate::model::merchant::*;

/// The signed-in user of this request, or a "sign in again" error (401).
#[cfg(feature = "ssr")]
pub async fn signed_in(
    services: &std::sync::Arc<dyn crate::services::AppServices>,
) -> Result<SignedIn, AppError> {
    let token = use_context::<http::request::Parts>()
        .and_then(|p| cookie(&p.headers, SESSION_COOKIE))
        .unwrap_or_default();
    match services.session(token).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(crate::services::fail(AppError::SignedOut)),
        Err(e) => Err(crate::services::to_server_error(e)),
    }
}

/// A cookie's value from request headers.
#[cfg(feature = "ssr")]
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

/// The signed-in user (`None` when signed out). Served at `POST /api/board/user`.
#[server(endpoint = "board/user")]
pub async fn who_am_i() -> Result<Option<BoardUser>, AppError> {
    let services = crate::services::use_services()?;
    match signed_in(&services).await {
        Ok(s) => Ok(Some(s.user)),
        Err(AppError::SignedOut) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One page of the board. Served at `POST /api/board/orders`.
#[server(endpoint = "board/orders", input = Json)]
pub async fn list_board(filter: BoardFilter, after: Option<String>) -> Result<BoardData, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    services
        .board(who.merchant_id, filter, after)
        .await
        .map_err(crate::services::to_server_error)
}

/// One order of the signed-in merchant (`None`: no such order of theirs). Served at
/// `POST /api/board/order`.
#[server(endpoint = "board/order")]
pub async fn load_order(order_id: String) -> Result<Option<OrderDetail>, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    services
        .board_order(who.merchant_id, order_id)
        .await
        .map_err(crate::services::to_server_error)
}

/// Makes a change; answers a sentence for the person (for a new order: its id). Served at
/// `POST /api/board/action`.
#[server(endpoint = "board/action", input = Json)]
pub async fn change_order(csrf: String, action: Change) -> Result<String, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    check_csrf(&who, &csrf)?;
    services
        .board_action(who.merchant_id, action)
        .await
        .map_err(crate::services::to_server_error)
}

/// A change's CSRF token must be its session's (compared in constant time); otherwise 403.
#[cfg(feature = "ssr")]
fn check_csrf(who: &SignedIn, csrf: &str) -> Result<(), AppError> {
    use subtle::ConstantTimeEq;
    if bool::from(csrf.as_bytes().ct_eq(who.user.csrf.as_bytes())) {
        return Ok(());
    }
    Err(crate::services::fail(AppError::Stale))
}

/// The signed-in merchant's API keys and webhook endpoint. Served at
/// `POST /api/board/developers`.
#[server(endpoint = "board/developers", input = Json)]
pub async fn load_developers() -> Result<DevelopersView, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    services
        .developers(who.merchant_id)
        .await
        .map_err(crate::services::to_server_error)
}

/// Creates or revokes an API key, sets the webhook endpoint or rotates its secret, for the
/// signed-in merchant. Served at `POST /api/board/settings`.
#[server(endpoint = "board/settings", input = Json)]
pub async fn change_setting(csrf: String, change: Setting) -> Result<SettingDone, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    check_csrf(&who, &csrf)?;
    services
        .setting(who.merchant_id, change)
        .await
        .map_err(crate::services::to_server_error)
}

/// The board's live channel: a `Sync` whenever any of the merchant's orders changes (and on
/// connect). Served as a WebSocket at `/api/board/watch`.
#[server(protocol = leptos::server_fn::Websocket<leptos::server_fn::codec::JsonEncoding, leptos::server_fn::codec::JsonEncoding>, endpoint = "board/watch")]
pub async fn watch_board(
    input: leptos::server_fn::BoxedStream<crate::api::WatchRequest, ServerFnError>,
) -> Result<leptos::server_fn::BoxedStream<crate::api::LivePing, ServerFnError>, ServerFnError> {
    use futures::StreamExt;
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    drop(input);
    Ok(services.watch_merchant(who.merchant_id).map(Ok).into())
}

/// The cluster page's figures; for operators only (others get "not found"). Served at
/// `POST /api/board/cluster`.
#[server(endpoint = "board/cluster")]
pub async fn load_cluster() -> Result<ClusterView, AppError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    if !who.user.admin {
        return Err(crate::services::fail(AppError::NotFound));
    }
    services
        .cluster()
        .await
        .map_err(crate::services::to_server_error)
}
