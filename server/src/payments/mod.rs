//! Payment order generation (module 2 of the design) and the one path by which an order
//! becomes paid.
//!
//! - [`StartPayment::start_payment`] is the seam the cluster's server selection calls: given an
//!   order and a wallet, return a live payment attempt with the provider's code URL. The local
//!   implementation, [`Payments`], reuses a live attempt for the same wallet, closes one for the
//!   other wallet at its provider first, and otherwise runs the provider's prepay.
//! - [`Payments::record_payment`] is where every "the provider says paid" ends — a
//!   notification, an active query, or a close that found the trade paid: one transaction moves
//!   the order to `paid` (or late-paid), stores the provider trade number and marks the attempt,
//!   so a second report of the same payment changes nothing.
//!
//! Attempts: closing a trade at a provider burns its `out_trade_no`, so each attempt has its
//! own: the order id for the first, `<order id>_<seq>` after it. A unique partial index keeps
//! at most one attempt per order live (`opening` or `open`), across processes and nodes.
//!
//! The rooms: `attempts` (the attempt and reading it), `start` (prepay, switch, take-over),
//! `close` (closing codes and orders), `record` (recording a payment); the workers that drive
//! them are `expiry`, `query` and `notify` (with its `inbox`), and `live` tells the pages.
//! `refunds` returns money of a payment (its own rooms and worker).

mod attempts;
mod close;
pub mod expiry;
pub mod inbox;
pub mod live;
pub mod notify;
pub mod paid;
pub mod query;
mod record;
pub mod refunds;
mod start;

pub use attempts::{trade_no, Attempt, AttemptStatus, CODE_LIFETIME, CODE_RENEW_BEFORE};
pub use record::Recorded;
pub use start::MAX_ATTEMPTS_PER_ORDER;

use crate::credentials::{Account, Book, CredentialsError, Gateways};
use crate::infra::db::Db;
use crate::infra::sealed::Keyring;
use crate::orders::{self, OrderId, OrderStatus};
use crate::providers::config::Providers;
use crate::providers::{Channel, OutTradeNo, PaymentProvider, ProviderError};
use crate::risk::{RiskEvent, RiskKind};
use async_trait::async_trait;
use live::LiveHub;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("the order can no longer be paid (it is {0})")]
    NotPayable(OrderStatus),
    #[error("{0} is not enabled on this server")]
    ChannelDisabled(Channel),
    #[error("{channel} could not create a code: {source}")]
    Provider {
        channel: Channel,
        #[source]
        source: ProviderError,
    },
    #[error("another request is still creating a code for this order")]
    Busy,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Injected(#[from] crate::infra::failpoints::Injected),
    /// A merchant's own account could not be opened (no or the wrong master key).
    #[error(transparent)]
    Account(#[from] CredentialsError),
}

/// Why [`Payments::close_for_merchant`] closed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("the order is {0}; only an unpaid order can be closed")]
    NotClosable(OrderStatus),
    /// The provider could not close the code, a code is being created, or a database fault.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<orders::OrderError> for PaymentError {
    fn from(e: orders::OrderError) -> Self {
        match e {
            orders::OrderError::NotFound(id) => PaymentError::NotFound(id),
            orders::OrderError::Forbidden { from, .. } => PaymentError::NotPayable(from),
            orders::OrderError::Db(e) => PaymentError::Db(e),
            other => PaymentError::Db(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

/// Module 2's entry point: a live attempt with a code URL for `order_id` in `channel`.
/// [`Payments`] runs it on this node; cluster mode puts a selector in front that may run it on
/// another node (same contract, same database).
#[async_trait]
pub trait StartPayment: Send + Sync {
    /// Starts (or reuses) a payment of the order in `way`.
    async fn start_with(&self, order_id: &OrderId, way: &PayWay) -> Result<Attempt, PaymentError>;

    /// A code on a screen: the wallet's native QR code.
    async fn start_payment(
        &self,
        order_id: &OrderId,
        channel: Channel,
    ) -> Result<Attempt, PaymentError> {
        self.start_with(order_id, &PayWay::native(channel)).await
    }
}

/// How a customer pays: the wallet, the wallet's method, and what that method needs (who
/// pays for jsapi, the payer's address for H5, the return page for H5 and WAP).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayWay {
    pub channel: Channel,
    #[serde(default)]
    pub method: crate::providers::PayMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<crate::providers::Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
}

impl PayWay {
    pub fn native(channel: Channel) -> PayWay {
        PayWay {
            channel,
            method: crate::providers::PayMethod::Native,
            payer: None,
            client_ip: None,
            return_url: None,
        }
    }

    /// Whether an open attempt can be handed out again for this way: same wallet, method and
    /// payer (a JSAPI prepay is bound to its payer), and a cashier link (H5, WAP) only while
    /// it is young: WeChat's H5 link dies after 5 minutes, and a WAP link carries the signed
    /// timestamp of when it was made.
    pub fn reuses(&self, attempt: &Attempt, now: i64) -> bool {
        use crate::providers::PayMethod;
        attempt.channel == self.channel
            && attempt.method == self.method
            && attempt.payer == self.payer
            && (!matches!(self.method, PayMethod::H5 | PayMethod::Wap)
                || now < attempt.created_at + attempts::H5_LINK_LIFETIME.as_millis() as i64)
    }
}

/// The payment flows of this node: prepay, switch, close, record.
#[derive(Clone)]
pub struct Payments {
    db: Db,
    /// The operator's providers and the merchants' own accounts.
    book: Book,
    /// `<public url>/notify`: where providers send notifications.
    notify_base: String,
    live: LiveHub,
    /// How long after a code is shown the provider is first asked about it.
    query_after: Duration,
    /// The node this process is, recorded on the attempts whose prepay it runs.
    node_id: std::sync::Arc<str>,
    /// A node whose heartbeat is older than this has stopped.
    node_ttl: Duration,
}

impl Payments {
    pub fn new(
        db: Db,
        providers: Providers,
        public_url: &str,
        live: LiveHub,
        query_after: Duration,
    ) -> Payments {
        Payments {
            book: Book::new(db.clone(), providers, None),
            db,
            notify_base: format!("{}/notify", public_url.trim_end_matches('/')),
            live,
            query_after,
            node_id: "local".into(),
            node_ttl: Duration::from_secs(5),
        }
    }

    /// The same, recording `node_id` on the attempts it opens (cluster mode); a node whose
    /// heartbeat is older than `node_ttl` is taken to have stopped.
    pub fn on_node(mut self, node_id: &str, node_ttl: Duration) -> Payments {
        self.node_id = node_id.into();
        self.node_ttl = node_ttl;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The same, opening merchants' own accounts with `keyring` (the master key).
    /// `gateways`: which gateways their accounts may use (the posture).
    pub fn with_keyring(mut self, keyring: Option<Keyring>, gateways: Gateways) -> Payments {
        self.book = Book::new(self.db.clone(), self.book.operator().clone(), keyring)
            .with_gateways(gateways);
        self
    }

    /// Where `channel` sends the notifications of `account` to this deployment:
    /// `/notify/<channel>` for the operator's, `/notify/<channel>/<merchant>` for a
    /// merchant's own, so each is verified with that account's keys.
    pub fn notify_url(&self, channel: Channel, account: &Account) -> String {
        format!(
            "{}/{}{}",
            self.notify_base,
            channel.as_str(),
            account.notify_suffix()
        )
    }

    /// The operator's providers (the global settings).
    pub fn providers(&self) -> &Providers {
        self.book.operator()
    }

    /// The operator's providers and the merchants' own accounts.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The client of the account `attempt` was made through; `None`: that account is gone
    /// (the channel disabled, or the merchant's credentials removed).
    pub async fn client_of(
        &self,
        attempt: &Attempt,
    ) -> Result<Option<Arc<dyn PaymentProvider>>, PaymentError> {
        self.book
            .client(&attempt.account(), attempt.channel)
            .await
            .map_err(PaymentError::from)
    }

    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    /// Creates an order (with the merchant's optional metadata) and tells its merchant's board.
    pub async fn create_order(
        &self,
        new: &orders::NewOrder,
        metadata: Option<&serde_json::Value>,
    ) -> Result<orders::Order, orders::OrderError> {
        let order = orders::create(&self.db, new, metadata).await?;
        self.announce(&order);
        Ok(order)
    }

    /// Tells the merchant's live board (and anyone watching the order) of a new order.
    pub fn announce(&self, order: &orders::Order) {
        self.live
            .publish(&order.merchant_id, &order.id, order.status);
    }
}

/// A risk event about an attempt's order.
pub(crate) fn risk_about(attempt: &Attempt, kind: RiskKind, reason: String) -> RiskEvent {
    RiskEvent {
        kind,
        reason,
        channel: Some(attempt.channel),
        order_id: Some(attempt.order_id.clone()),
        out_trade_no: Some(attempt.out_trade_no.clone()),
        notification_ref: None,
        remote_addr: None,
    }
}
