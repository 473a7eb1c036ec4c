//! Live pings across nodes, over PostgreSQL `LISTEN/NOTIFY`.

use super::LIVE_CHANNEL;
use crate::infra::db::Db;
use crate::payments::live::LiveHub;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Carries live pings between nodes: every change this node publishes is sent with
/// `pg_notify`, and changes other nodes send are published to this node's pages. A lost
/// listener connection is re-opened, and every page on this node is told to re-read, since
/// messages may have been missed meanwhile. PostgreSQL only.
pub fn spawn_live_bridge(
    database_url: String,
    db: Db,
    hub: LiveHub,
    node_id: String,
    mut outgoing: tokio::sync::mpsc::UnboundedReceiver<crate::payments::live::OrderChange>,
) -> Vec<tokio::task::JoinHandle<()>> {
    #[derive(Serialize, Deserialize)]
    struct Wire {
        n: String,
        m: String,
        o: String,
        s: app::status::OrderStatus,
    }
    let sender = {
        let node_id = node_id.clone();
        tokio::spawn(async move {
            while let Some(change) = outgoing.recv().await {
                let payload = serde_json::to_string(&Wire {
                    n: node_id.clone(),
                    m: change.merchant_id.to_string(),
                    o: change.order_id.to_string(),
                    s: change.status,
                })
                .unwrap_or_default();
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(LIVE_CHANNEL)
                    .bind(payload)
                    .execute(db.pool())
                    .await
                {
                    tracing::warn!(error = %e, "live ping not sent to the other nodes");
                }
            }
        })
    };
    let listener = tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(LIVE_CHANNEL).await {
                tracing::warn!(error = %e, "live listener cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // After a lost connection, anything sent meanwhile is unknown: every page re-reads.
            // (The first connection is made at start-up, before any page could miss a thing.)
            if !first {
                hub.resync_all();
            }
            first = false;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Ok(w) = serde_json::from_str::<Wire>(n.payload()) {
                            if w.n != node_id {
                                hub.publish_local(&w.m, &w.o, w.s);
                            }
                        }
                    }
                    // The connection was lost and re-opened: messages may be lost.
                    Ok(None) => hub.resync_all(),
                    Err(e) => {
                        tracing::warn!(error = %e, "live listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    vec![sender, listener]
}
