//! Risk events: every refused notification (bad signature, stale timestamp, replay, amount
//! mismatch, foreign account, unknown order…) and every payment that needs a person's eye
//! (late, second payment), with its reason.
//!
//! Each is a `risk_events` row; one about one of our orders is also a `risk.<kind>` event in
//! that order's timeline, written in the same transaction. Events naming no order of ours
//! are only in the global list ([`recent`]). Each is counted in `/metrics` as
//! `risk_events_total{kind}`.

use crate::infra::db::Db;
use crate::orders::{self, OrderId};
use crate::providers::{Channel, NotificationError, OutTradeNo};
use sqlx::Row;

/// What a risk event is about: a refused notification's reason, or a payment that needs a
/// person's eye. Its name is stored, counted (`risk_events_total{kind}`) and put in the
/// order's timeline as `risk.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RiskKind {
    Malformed,
    MissingField,
    BadSignature,
    ProbeSignature,
    UnknownKey,
    StaleTimestamp,
    Decrypt,
    UnknownOrder,
    WrongChannel,
    AnotherTrade,
    AmountMismatch,
    CurrencyMismatch,
    ForeignAccount,
    Replay,
    UnknownRefund,
    LatePayment,
    SecondPayment,
}

impl RiskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::Malformed => "malformed",
            RiskKind::MissingField => "missing_field",
            RiskKind::BadSignature => "bad_signature",
            RiskKind::ProbeSignature => "probe_signature",
            RiskKind::UnknownKey => "unknown_key",
            RiskKind::StaleTimestamp => "stale_timestamp",
            RiskKind::Decrypt => "decrypt",
            RiskKind::UnknownOrder => "unknown_order",
            RiskKind::WrongChannel => "wrong_channel",
            RiskKind::AnotherTrade => "another_trade",
            RiskKind::AmountMismatch => "amount_mismatch",
            RiskKind::CurrencyMismatch => "currency_mismatch",
            RiskKind::ForeignAccount => "foreign_account",
            RiskKind::Replay => "replay",
            RiskKind::UnknownRefund => "unknown_refund",
            RiskKind::LatePayment => "late_payment",
            RiskKind::SecondPayment => "second_payment",
        }
    }
}

impl From<&NotificationError> for RiskKind {
    fn from(e: &NotificationError) -> RiskKind {
        match e {
            NotificationError::Malformed(_) | NotificationError::BadAmount(_) => {
                RiskKind::Malformed
            }
            NotificationError::MissingField(_) => RiskKind::MissingField,
            NotificationError::BadSignature => RiskKind::BadSignature,
            NotificationError::ProbeSignature => RiskKind::ProbeSignature,
            NotificationError::UnknownSerial { .. } => RiskKind::UnknownKey,
            NotificationError::StaleTimestamp { .. } => RiskKind::StaleTimestamp,
            NotificationError::Decrypt => RiskKind::Decrypt,
        }
    }
}

/// A risk event about to be recorded.
#[derive(Clone, Debug)]
pub struct RiskEvent {
    pub kind: RiskKind,
    /// What happened, for a person.
    pub reason: String,
    pub channel: Option<Channel>,
    /// Our order, when the event is about one.
    pub order_id: Option<OrderId>,
    /// The trade number the notification named (claimed, when it did not verify).
    pub out_trade_no: Option<OutTradeNo>,
    /// The raw notification (`notifications.id`) the event comes from.
    pub notification_ref: Option<i64>,
    pub remote_addr: Option<String>,
}

/// A recorded risk event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredRiskEvent {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub reason: String,
    pub channel: Option<String>,
    pub order_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub notification_ref: Option<i64>,
    pub remote_addr: Option<String>,
}

/// Records `event` inside the caller's transaction: the `risk_events` row and, for an order of
/// ours, its timeline event. Call [`count`] once the transaction committed.
pub async fn record_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &RiskEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO risk_events (created_at, kind, reason, channel, order_id, out_trade_no, notification_ref, remote_addr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::infra::clock::now_ms())
    .bind(event.kind.as_str())
    .bind(&event.reason)
    .bind(event.channel.map(Channel::as_str))
    .bind(event.order_id.as_ref())
    .bind(event.out_trade_no.as_ref())
    .bind(event.notification_ref)
    .bind(event.remote_addr.as_deref())
    .execute(&mut **tx)
    .await?;
    if let Some(order_id) = &event.order_id {
        let detail = serde_json::json!({
            "reason": event.reason,
            "channel": event.channel,
            "out_trade_no": event.out_trade_no,
            "notification": event.notification_ref,
        });
        orders::insert_event(
            tx,
            order_id,
            &format!("risk.{}", event.kind.as_str()),
            &detail,
        )
        .await?;
    }
    Ok(())
}

/// Records `event` in its own transaction and counts it.
pub async fn record(db: &Db, event: &RiskEvent) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    record_in(&mut tx, event).await?;
    tx.commit().await?;
    count(event);
    Ok(())
}

/// Counts a committed event in `/metrics`.
pub fn count(event: &RiskEvent) {
    tracing::warn!(kind = event.kind.as_str(), reason = %event.reason, order = ?event.order_id, out_trade_no = ?event.out_trade_no, "risk event");
    ::metrics::counter!("risk_events_total", "kind" => event.kind.as_str()).increment(1);
}

/// Which risk events to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    /// Only those naming no order of ours (unknown trade numbers, unreadable forgeries).
    WithoutOrder,
}

/// The newest risk events first, at most `limit`.
pub async fn recent(
    db: &Db,
    scope: Scope,
    limit: i64,
) -> Result<Vec<StoredRiskEvent>, sqlx::Error> {
    let filter = match scope {
        Scope::All => "",
        Scope::WithoutOrder => "WHERE order_id IS NULL",
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM risk_events {filter} ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit.clamp(1, 10_000))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The risk events of one order, oldest first.
pub async fn for_order(db: &Db, order_id: &OrderId) -> Result<Vec<StoredRiskEvent>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM risk_events WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

const COLUMNS: &str =
    "id, created_at, kind, reason, channel, order_id, out_trade_no, notification_ref, remote_addr";

fn from_row(r: &sqlx::any::AnyRow) -> Result<StoredRiskEvent, sqlx::Error> {
    Ok(StoredRiskEvent {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        kind: r.try_get("kind")?,
        reason: r.try_get("reason")?,
        channel: r.try_get("channel")?,
        order_id: r.try_get("order_id")?,
        out_trade_no: r.try_get("out_trade_no")?,
        notification_ref: r.try_get("notification_ref")?,
        remote_addr: r.try_get("remote_addr")?,
    })
}
