//! Live order changes: every committed status change is published here, and each open
//! checkout and board listens. A message is only a "ping": listeners re-read the
//! order, so a lost or coalesced message never shows a wrong state — the next ping, or the
//! re-read on reconnect, brings the truth.
//!
//! Today the hub is in-process (one node). Cluster mode feeds it from PostgreSQL
//! `LISTEN/NOTIFY` as well, so a callback handled on another node reaches this node's pages.

use crate::ids::OrderId;
use crate::merchants::MerchantId;
use app::api::LivePing;
use app::status::OrderStatus;
use futures::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A committed change of one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderChange {
    /// Every listener re-reads (this node may have missed changes made elsewhere).
    pub all: bool,
    pub merchant_id: Arc<str>,
    pub order_id: Arc<str>,
    pub status: OrderStatus,
}

/// How often an idle stream says it is still alive, so proxies keep it open and the browser
/// notices a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct LiveHub {
    tx: broadcast::Sender<OrderChange>,
    /// Where this node's own changes also go, for the other nodes (cluster mode).
    outward: Option<tokio::sync::mpsc::UnboundedSender<OrderChange>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveHub {
    pub fn new() -> LiveHub {
        let (tx, _) = broadcast::channel(1024);
        LiveHub { tx, outward: None }
    }

    /// A hub whose own changes are also sent to `outward` (the cluster's live bridge).
    pub fn with_outward(outward: tokio::sync::mpsc::UnboundedSender<OrderChange>) -> LiveHub {
        LiveHub {
            outward: Some(outward),
            ..LiveHub::new()
        }
    }

    /// Announces a committed change (a new order is a change to `created`). Never fails: with
    /// no listener the change is simply not heard (pages re-read on connect).
    pub fn publish(&self, merchant_id: &MerchantId, order_id: &OrderId, status: OrderStatus) {
        let merchant_id = merchant_id.as_str();
        let change = OrderChange {
            all: false,
            merchant_id: merchant_id.into(),
            order_id: order_id.as_str().into(),
            status,
        };
        if let Some(out) = &self.outward {
            let _ = out.send(change.clone());
        }
        let _ = self.tx.send(change);
    }

    /// A change made on another node: told to this node's pages only.
    /// From another node (the live bridge's wire carries the id as text).
    pub fn publish_local(&self, merchant_id: &str, order_id: &str, status: OrderStatus) {
        let _ = self.tx.send(OrderChange {
            all: false,
            merchant_id: merchant_id.into(),
            order_id: order_id.into(),
            status,
        });
    }

    /// Makes every page on this node re-read (after changes elsewhere may have been missed).
    pub fn resync_all(&self) {
        let _ = self.tx.send(OrderChange {
            all: true,
            merchant_id: "".into(),
            order_id: "".into(),
            status: OrderStatus::Created,
        });
    }

    /// Every change, for listeners that want them all.
    pub fn subscribe(&self) -> broadcast::Receiver<OrderChange> {
        self.tx.subscribe()
    }

    /// The pings for one order's page (the checkout).
    pub fn watch(&self, order_id: String) -> BoxStream<'static, LivePing> {
        self.pings(move |c| *c.order_id == *order_id)
    }

    /// The pings for one merchant's board: any change of any of its orders.
    pub fn watch_merchant(&self, merchant_id: String) -> BoxStream<'static, LivePing> {
        self.pings(move |c| *c.merchant_id == *merchant_id)
    }

    /// `Sync` at once (so a reconnecting page re-reads), on each change that `concerns` the
    /// listener and whenever it fell behind and may have missed one; `Heartbeat` when nothing
    /// happened for [`HEARTBEAT`].
    fn pings(
        &self,
        concerns: impl Fn(&OrderChange) -> bool + Send + Sync + 'static,
    ) -> BoxStream<'static, LivePing> {
        let rx = self.tx.subscribe();
        let concerns = Arc::new(concerns);
        let changes = futures::stream::unfold(rx, move |mut rx| {
            let concerns = concerns.clone();
            async move {
                loop {
                    match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                        Err(_) => return Some((LivePing::Heartbeat, rx)),
                        Ok(Ok(change)) if change.all || concerns(&change) => {
                            return Some((LivePing::Sync, rx))
                        }
                        Ok(Ok(_)) => continue,
                        // Missed messages: make the page re-read.
                        Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                            return Some((LivePing::Sync, rx))
                        }
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    }
                }
            }
        });
        futures::stream::once(async { LivePing::Sync })
            .chain(changes)
            .boxed()
    }
}
