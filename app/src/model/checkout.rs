//! What the customer's pages carry between the browser and the server: the checkout, its
//! live pings, the aggregate code (the server functions are in `api.rs`).

use crate::channel::Channel;
use crate::money::Amount;
use crate::status::OrderStatus;
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
