//! What the merchant's pages carry between the browser and the server: the board, an
//! order's detail, the developers page, the cluster page (the server functions are in
//! `merchant.rs`).

use crate::channel::Channel;
use crate::money::Amount;
use crate::status::{named, AttemptStatus, Delivery, NodeState, OrderStatus, RefundStatus};
use serde::{Deserialize, Serialize};

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

named! {
    /// Where a timeline line comes from.
    pub enum TimelineSource {
        /// The order's own events (status changes, refunds, risk).
        Order = "order",
        /// A provider's notification as the inbox received it.
        Notification = "notification",
        /// A webhook delivery to the merchant.
        Webhook = "webhook",
    }
}

named! {
    /// How a timeline line is coloured.
    pub enum Tone {
        Ok = "ok",
        Warn = "warn",
        Bad = "bad",
        Info = "info",
    }
}

/// One line of an order's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix ms.
    pub at: i64,
    /// Where it comes from.
    pub source: TimelineSource,
    /// What happened, short: `status.paid`, `accepted`, `bad_signature`, `order.paid → 200`…
    pub what: String,
    /// The detail, for a person.
    pub detail: String,
    /// How the line is coloured.
    pub tone: Tone,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub out_trade_no: String,
    pub channel: Channel,
    pub status: AttemptStatus,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub error: Option<String>,
    /// A second payment (the order was already paid through another code): what of it can
    /// still be refunded, `None` for every other attempt.
    pub extra_refundable: Option<Amount>,
    /// How it is paid (native QR, in-app, a phone browser's cashier).
    #[serde(default)]
    pub method: crate::channel::PayMethod,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRow {
    pub id: String,
    pub amount: Amount,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub created_at: i64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRow {
    pub event_id: String,
    pub topic: String,
    pub delivery: Delivery,
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
    /// The shop's fixed code it was paid through: its name and code.
    #[serde(default)]
    pub shop_code: Option<(String, String)>,
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
    /// The merchant's own provider accounts (none: paid through the operator's).
    #[serde(default)]
    pub accounts: Vec<AccountRow>,
    /// The shop's fixed codes (`/p/<code>`), those in use first.
    #[serde(default)]
    pub codes: Vec<ShopCodeRow>,
    /// The shop's logo on its customers' pages.
    #[serde(default)]
    pub logo_url: Option<String>,
}

/// One of the shop's fixed codes as the board lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopCodeRow {
    pub code: String,
    pub name: String,
    /// The URL the printed QR code holds.
    pub url: String,
    pub active: bool,
    /// Unix ms.
    pub created_at: i64,
}

/// One of the merchant's own provider accounts as the board shows it: its ids, never its
/// keys (they are not shown again after saving).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub channel: Channel,
    /// A sub-merchant of the operator's service-provider account (the operator's keys sign).
    pub sub_merchant: bool,
    /// Its ids as (name, value): app id, seller id, mchid…
    pub ids: Vec<(String, String)>,
    /// When a signed call last proved it (Unix ms).
    pub checked_at: Option<i64>,
}

/// A provider account entered on the board: the fields the command line takes as flags
/// (`app_id`, `private_key`…; keys as PEM text). `Debug` names the fields, never their values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountForm {
    pub channel: Channel,
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for AccountForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("AccountForm")
            .field("channel", &self.channel)
            .field("fields", &names)
            .finish()
    }
}

/// A change on the developers page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
    CreateKey {
        name: String,
    },
    RevokeKey {
        key_id: String,
    },
    SetWebhook {
        url: String,
    },
    RotateSecret,
    /// Save the merchant's own provider account (checked by a signed call first).
    SetAccount(AccountForm),
    /// Remove it: new orders go through the operator's account again.
    RemoveAccount {
        channel: Channel,
    },
    /// A new fixed code for the counter, named for where it hangs.
    CreateCode {
        name: String,
    },
    /// Stop a fixed code taking payments (printed copies then say so).
    DisableCode {
        code: String,
    },
    /// The shop's logo on its customers' pages (an https image URL; empty removes it).
    SetLogo {
        url: String,
    },
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

/// One node on the cluster page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: String,
    pub url: String,
    pub state: NodeState,
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
