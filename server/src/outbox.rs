//! The transactional outbox: one row per merchant-visible change (`order.paid`,
//! `order.expired`, `order.closed`; refunds later), written in the same transaction as the
//! change itself, so a change is never committed without its event nor an event without its
//! change. The merchant webhook (`webhooks.rs`) delivers from here; the cross-node live push
//! will too.
//!
//! Each row has a `dedupe_key` (`order.paid:<order id>`): the unique key makes a second
//! insert of the same change a no-op, whatever raced to make it.

use crate::ids::OrderId;
use crate::infra::db::Db;
use crate::merchants::MerchantId;
use sqlx::Row;

/// A stored outbox event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: i64,
    /// The event's public id (what a webhook receiver deduplicates by).
    pub event_id: String,
    pub dedupe_key: String,
    pub merchant_id: MerchantId,
    pub order_id: Option<String>,
    pub topic: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// Adds the event `topic` for `order_id` inside the caller's transaction, once: a second
/// call for the same topic and order changes nothing (`Ok(false)`).
pub async fn insert_for_order(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    merchant_id: &MerchantId,
    order_id: &OrderId,
    topic: &str,
    payload: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    insert(tx, merchant_id, order_id, topic, order_id.as_str(), payload).await
}

/// Adds the event `topic` about `subject` (a refund id, say) of `order_id`, once per topic and
/// subject.
pub async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    merchant_id: &MerchantId,
    order_id: &OrderId,
    topic: &str,
    subject: &str,
    payload: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO outbox (event_id, dedupe_key, merchant_id, order_id, topic, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(format!("evt_{}", uuid::Uuid::new_v4().simple()))
    .bind(format!("{topic}:{subject}"))
    .bind(merchant_id)
    .bind(order_id)
    .bind(topic)
    .bind(payload.to_string())
    .bind(crate::infra::clock::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The events of one order, oldest first.
pub async fn for_order(db: &Db, order_id: &OrderId) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_id, dedupe_key, merchant_id, order_id, topic, payload, created_at \
         FROM outbox WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// An event from a row holding the outbox columns.
pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<OutboxEvent, sqlx::Error> {
    let payload: String = r.try_get("payload")?;
    Ok(OutboxEvent {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        dedupe_key: r.try_get("dedupe_key")?,
        merchant_id: r.try_get("merchant_id")?,
        order_id: r.try_get("order_id")?,
        topic: r.try_get("topic")?,
        payload: serde_json::from_str(&payload).map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: r.try_get("created_at")?,
    })
}
