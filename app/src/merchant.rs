//! The merchant's side of the UI: what the order board shows and does, and the server
//! functions behind it.
//!
//! Every function here first finds the signed-in user from the session cookie and acts only
//! on that user's merchant: another merchant's order is "not found", never "forbidden".
//! Changes (refund, close, redeliver, new order) also carry the session's CSRF token.

use crate::channel::Channel;
use crate::money::Amount;
use crate::status::OrderStatus;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// The session cookie (HttpOnly; set by `POST /auth/login`).
pub const SESSION_COOKIE: &str = "scanpay_session";

/// The signed-in person, as the board shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardUser {
    pub email: String,
    pub merchant_name: String,
    /// Sent back with every change (and the sign-out form).
    pub csrf: String,
    /// May see the cluster page.
    pub admin: bool,
}

/// A valid session: whose merchant it acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub merchant_id: String,
    pub user: BoardUser,
}

/// The board's filters, as the browser sends them (the query string of `/board` and of the
/// CSV export): every field optional, an empty one means "any". The server parses them and
/// names the field of a bad one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardFilter {
    pub status: Option<String>,
    pub channel: Option<String>,
    /// `YYYY-MM-DD`, China time (UTC+8), inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Yuan, e.g. `12.50`.
    pub min: Option<String>,
    pub max: Option<String>,
    pub q: Option<String>,
}

impl BoardFilter {
    /// The filter as a query string (without `?`), for links and the CSV export.
    pub fn query_string(&self) -> String {
        let pairs = [
            ("status", &self.status),
            ("channel", &self.channel),
            ("from", &self.from),
            ("to", &self.to),
            ("min", &self.min),
            ("max", &self.max),
            ("q", &self.q),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| {
                v.as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| format!("{k}={}", encode(v.trim())))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One order on the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardRow {
    pub id: String,
    /// Unix ms.
    pub created_at: i64,
    pub subject: String,
    pub amount: Amount,
    pub refunded: Amount,
    pub status: OrderStatus,
    /// Paid after it had expired or been closed.
    pub late: bool,
    /// The wallet it was paid with, or (unpaid) the wallet of its latest code.
    pub channel: Option<Channel>,
    /// Risk events were recorded about it.
    pub risky: bool,
}

/// Today's paid orders of one wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTotal {
    pub channel: Channel,
    pub count: i64,
    pub amount: Amount,
}

/// One page of the board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardData {
    pub rows: Vec<BoardRow>,
    /// The cursor of the next (older) page, when there is one.
    pub next_after: Option<String>,
    /// Today (UTC+8): paid orders per wallet, late payments, risk events.
    pub today: Vec<ChannelTotal>,
    pub today_late: i64,
    pub today_risk: i64,
    pub server_now: i64,
}

/// One line of an order's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix ms.
    pub at: i64,
    /// Where it comes from: `order`, `notification`, `risk`, `webhook`, `refund`.
    pub source: String,
    /// What happened, short: `status.paid`, `accepted`, `bad_signature`, `order.paid → 200`…
    pub what: String,
    /// The detail, for a person.
    pub detail: String,
    /// `ok`, `warn`, `bad` or `info`: how the line is coloured.
    pub tone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub out_trade_no: String,
    pub channel: Channel,
    pub status: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub error: Option<String>,
    /// A second payment (the order was already paid through another code): what of it can
    /// still be refunded, `None` for every other attempt.
    pub extra_refundable: Option<Amount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRow {
    pub id: String,
    pub amount: Amount,
    pub reason: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRow {
    pub event_id: String,
    pub topic: String,
    /// `pending`, `delivered`, `failed` or `no_endpoint`.
    pub delivery: String,
    pub attempts: i64,
    /// The last answer: `200`, `500`, or the connection error.
    pub last_answer: Option<String>,
}

/// Everything the order page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetail {
    pub row: BoardRow,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub provider_trade_no: Option<String>,
    pub checkout_url: String,
    pub aggregate_url: Option<String>,
    /// The aggregate code as SVG, while the order can be paid.
    pub qr_svg: Option<String>,
    /// What can still be refunded (paid minus refunded minus refunds in flight).
    pub refundable: Amount,
    pub closable: bool,
    pub attempts: Vec<AttemptRow>,
    pub refunds: Vec<RefundRow>,
    pub webhooks: Vec<WebhookRow>,
    pub timeline: Vec<TimelineEntry>,
}

/// A change the board makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `amount` in yuan; the reason is optional.
    Refund {
        order_id: String,
        amount: String,
        reason: String,
    },
    Close {
        order_id: String,
    },
    Redeliver {
        event_id: String,
    },
    /// Refund what is left of a second payment (the trade `out_trade_no`) in one click.
    RefundExtraPayment {
        order_id: String,
        out_trade_no: String,
    },
    /// WeChat's abnormal refund: send the money to the merchant's bank card instead.
    RefundToBankCard {
        refund_id: String,
    },
    /// The counter: the merchant types an amount and shows the customer the code.
    NewOrder {
        amount: String,
        subject: String,
    },
}

/// The signed-in user of this request, or a "sign in again" error (401).
#[cfg(feature = "ssr")]
pub async fn signed_in(
    services: &std::sync::Arc<dyn crate::services::AppServices>,
) -> Result<SignedIn, ServerFnError> {
    let token = use_context::<http::request::Parts>()
        .and_then(|p| cookie(&p.headers, SESSION_COOKIE))
        .unwrap_or_default();
    match services.session(token).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::UNAUTHORIZED);
            }
            Err(ServerFnError::new(SIGNED_OUT))
        }
        Err(e) => Err(crate::services::to_server_error(e)),
    }
}

/// The error text of a request without a valid session.
pub const SIGNED_OUT: &str = "signed_out";

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
pub async fn who_am_i() -> Result<Option<BoardUser>, ServerFnError> {
    let services = crate::services::use_services()?;
    match signed_in(&services).await {
        Ok(s) => Ok(Some(s.user)),
        Err(e) if e.to_string().contains(SIGNED_OUT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One page of the board. Served at `POST /api/board/orders`.
#[server(endpoint = "board/orders", input = Json)]
pub async fn list_board(
    filter: BoardFilter,
    after: Option<String>,
) -> Result<BoardData, ServerFnError> {
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
pub async fn load_order(order_id: String) -> Result<Option<OrderDetail>, ServerFnError> {
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
pub async fn change_order(csrf: String, action: Change) -> Result<String, ServerFnError> {
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
fn check_csrf(who: &SignedIn, csrf: &str) -> Result<(), ServerFnError> {
    use subtle::ConstantTimeEq;
    if bool::from(csrf.as_bytes().ct_eq(who.user.csrf.as_bytes())) {
        return Ok(());
    }
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    Err(ServerFnError::new(
        "This page is out of date (its security token did not match). Reload it and try again.",
    ))
}

/// One API key as the board lists it (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    /// The key's first characters, e.g. `sk_Ab12Cd3`.
    pub prefix: String,
    /// Unix ms.
    pub created_at: i64,
    pub revoked: bool,
}

/// The developers page: how the merchant's shop connects (API keys, the webhook endpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevelopersView {
    pub keys: Vec<KeyRow>,
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret exists (it is shown only when set or rotated).
    pub has_secret: bool,
}

/// A change on the developers page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
    CreateKey { name: String },
    RevokeKey { key_id: String },
    SetWebhook { url: String },
    RotateSecret,
}

/// What a change on the developers page answers: a sentence, and a secret shown this once
/// (a new API key, or the webhook signing secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDone {
    pub message: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for SettingDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingDone")
            .field("message", &self.message)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The signed-in merchant's API keys and webhook endpoint. Served at
/// `POST /api/board/developers`.
#[server(endpoint = "board/developers", input = Json)]
pub async fn load_developers() -> Result<DevelopersView, ServerFnError> {
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
pub async fn change_setting(csrf: String, change: Setting) -> Result<SettingDone, ServerFnError> {
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

/// One node on the cluster page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: String,
    pub url: String,
    /// `starting`, `ready` or `draining`.
    pub state: String,
    pub heartbeat_age_ms: i64,
    pub in_flight: u64,
    pub latency_us: u64,
    /// Parts per million: error rate, CPU share of the machine, database pool in use.
    pub error_ppm: u64,
    pub cpu_ppm: u64,
    pub pool_ppm: u64,
    /// Payment flows (prepay calls) it ran in the window.
    pub flows: i64,
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub this_node: String,
    /// Whether flows may go to other nodes (PostgreSQL and a cluster secret).
    pub forwarding: bool,
    pub window_secs: i64,
    pub nodes: Vec<NodeRow>,
}

/// The cluster page's figures; for operators only (others get "not found"). Served at
/// `POST /api/board/cluster`.
#[server(endpoint = "board/cluster")]
pub async fn load_cluster() -> Result<ClusterView, ServerFnError> {
    let services = crate::services::use_services()?;
    let who = signed_in(&services).await?;
    if !who.user.admin {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
        return Err(ServerFnError::new("No such page."));
    }
    services
        .cluster()
        .await
        .map_err(crate::services::to_server_error)
}
