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
    /// The shop's logo (an https image URL), when it gave one.
    #[serde(default)]
    pub logo_url: Option<String>,
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
    /// The shop's logo (an https image URL), when it gave one.
    #[serde(default)]
    pub logo_url: Option<String>,
    pub subject: String,
    pub amount: Amount,
    pub status: OrderStatus,
    pub payable: bool,
    pub channels: Vec<Channel>,
}

/// Where the aggregate code sends a phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateAnswer {
    /// Elsewhere first (a redirect): the wallet's OAuth, Alipay's WAP cashier, WeChat's H5
    /// cashier, or the checkout page with its QR code on a desktop.
    Redirect(String),
    /// The page that explains and offers both wallets.
    Page(AggregateView),
    /// Paying inside a wallet's browser, or back from a wallet's cashier.
    InApp(InAppView),
    /// Something went wrong before any payment: what, in words the customer can act on.
    Problem(PayProblem),
    NotFound,
}

/// A phone paying an order inside a wallet's browser (or back from a cashier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InAppView {
    pub token: String,
    pub order_id: String,
    pub merchant_name: String,
    /// The shop's logo (an https image URL), when it gave one.
    #[serde(default)]
    pub logo_url: Option<String>,
    pub subject: String,
    pub amount: Amount,
    pub status: OrderStatus,
    /// What the page hands to the wallet's JS bridge; `None` on a return page or when the
    /// order cannot be paid any more.
    pub call: Option<WalletCall>,
    /// Back from a cashier (Alipay WAP `return_url`, WeChat H5 `redirect_url`): the visit
    /// itself proves nothing; the page shows what the order says.
    pub returned: bool,
    /// Demo posture only: the sandbox's stand-in for the wallet's JS bridge, loaded by the
    /// page (inside the real wallets the bridge is the wallet's own).
    pub bridge_script: Option<String>,
}

/// The in-page payment call of a wallet. The wallet's answer to it is only a hint: the page
/// turns paid from the order, as every page does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalletCall {
    /// `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`: the signed parameters.
    Wechat(WechatPayParams),
    /// `AlipayJSBridge.call('tradePay', {tradeNO})`.
    Alipay { trade_no: String },
}

/// The parameters of `getBrandWCPayRequest`, all strings, signed by the merchant
/// (`appId\ntimeStamp\nnonceStr\npackage\n`, SHA256withRSA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WechatPayParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// Why a phone could not be shown a payment. Nothing was paid; each says what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayProblemKind {
    /// The wallet's sign-in link was already used (a reload) or is too old: scan again.
    SignInUsed,
    /// The sign-in link was not ours or was changed (a tampered or foreign `state`).
    SignInInvalid,
    /// The wallet did not accept who is paying (an `openid` of another app, a buyer the
    /// wallet does not know).
    PayerRefused,
    /// The wallet cannot take this payment now.
    Unavailable,
    /// The order cannot be paid any more.
    NotPayable,
    /// This wallet's browser cannot pay here (WeChat without the official account's
    /// AppSecret): scan the code shown on a screen, or open the link in another browser.
    NotInThisApp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayProblem {
    pub kind: PayProblemKind,
    /// The aggregate code to start again from.
    pub token: String,
}

/// Everything a request to the aggregate code carries that decides where it goes.
#[derive(Clone, Debug, Default)]
pub struct AggregateRequest {
    pub token: String,
    /// The wallet the customer chose (`?pay=`).
    pub pay: Option<Channel>,
    pub user_agent: String,
    /// Back from a wallet's OAuth: WeChat `code`, Alipay `auth_code`, and our `state`.
    pub code: Option<String>,
    pub state: Option<String>,
    /// Back from a cashier (`?back=alipay|wechat`), with every query parameter as sent.
    pub back: Option<Channel>,
    pub query: Vec<(String, String)>,
    /// The payer's address as the trusted-proxy rule reads it (WeChat H5 needs it).
    pub client_ip: Option<String>,
}

/// The client's address as the server's trusted-proxy rule read it, put into each request's
/// extensions by the server (the app cannot read the connection itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub String);

/// A shop's fixed code as the phone that scanned it sees it (`/p/<code>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopCodeView {
    pub code: String,
    pub shop_name: String,
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Where it hangs ("Counter 1").
    pub name: String,
    /// Disabled by the shop: it takes no payment.
    pub active: bool,
    pub channels: Vec<Channel>,
}
