//! Live order changes: every committed status change is published here, and each open
//! checkout and board listens. A message is only a "ping": listeners re-read the
//! order, so a lost or coalesced message never shows a wrong state — the next ping, or the
//! re-read on reconnect, brings the truth.
//!
//! Today the hub is in-process (one node). Cluster mode feeds it from PostgreSQL
//! `LISTEN/NOTIFY` as well, so a callback handled on another node reaches this node's pages.

use app::api::LivePing;
use app::status::OrderStatus;
use futures::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A committed change of one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderChange {
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
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveHub {
    pub fn new() -> LiveHub {
        let (tx, _) = broadcast::channel(1024);
        LiveHub { tx }
    }

    /// Announces a committed change (a new order is a change to `created`). Never fails: with
    /// no listener the change is simply not heard (pages re-read on connect).
    pub fn publish(&self, merchant_id: &str, order_id: &str, status: OrderStatus) {
        let _ = self.tx.send(OrderChange {
            merchant_id: merchant_id.into(),
            order_id: order_id.into(),
            status,
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
                        Ok(Ok(change)) if concerns(&change) => return Some((LivePing::Sync, rx)),
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
