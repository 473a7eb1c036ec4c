//! An order's timeline, and the one way its status changes (see the module's notes).

use super::*;
use crate::merchants::MerchantId;

/// Adds an event to an order's timeline inside the caller's transaction.
pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order_id: &OrderId,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_events (order_id, kind, detail, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(kind)
    .bind(detail.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An order's timeline, oldest first: `(time, kind, detail)`.
pub async fn events(
    db: &Db,
    order_id: &OrderId,
) -> Result<Vec<(i64, String, serde_json::Value)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, kind, detail FROM order_events WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let detail: Option<String> = r.try_get("detail")?;
            Ok((
                r.try_get("created_at")?,
                r.try_get("kind")?,
                detail
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(serde_json::Value::Null),
            ))
        })
        .collect()
}

/// Adds an event to an order's timeline on its own.
pub async fn add_event(
    db: &Db,
    order_id: &OrderId,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    insert_event(&mut tx, order_id, kind, detail).await?;
    tx.commit().await
}

/// The outcome of a transition that was allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transitioned {
    pub to: OrderStatus,
    /// The order's merchant (whose board hears of the change).
    pub merchant_id: MerchantId,
    /// A payment that reached an expired or closed order.
    pub late: bool,
}

/// Moves an order to `to` if its current status allows it, recording `detail` in the
/// timeline, all in one transaction. `Forbidden` (with the status found) when it does not:
/// then nothing changed.
pub async fn transition(
    db: &Db,
    id: &OrderId,
    to: OrderStatus,
    detail: serde_json::Value,
) -> Result<Transitioned, OrderError> {
    let mut tx = db.pool().begin().await?;
    match transition_in(&mut tx, id, to, detail).await? {
        Some(done) => {
            tx.commit().await?;
            Ok(done)
        }
        None => {
            drop(tx);
            Err(refusal(db, id, to).await)
        }
    }
}

/// The statuses a payment arrives late in (`'expired', 'closed'`), as SQL: fixed names, not
/// input, built once from [`OrderStatus::payment_is_late`].
static LATE_IN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    OrderStatus::ALL
        .into_iter()
        .filter(|s| s.payment_is_late())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
});

/// What paid an order: the wallet and the provider's trade number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PaidBy<'a> {
    pub channel: crate::providers::Channel,
    pub provider_trade_no: Option<&'a str>,
}

/// [`transition`] inside the caller's transaction, so other writes (the attempt, the outbox)
/// commit or roll back with it. `None`: the status does not allow it (or the order is
/// missing); nothing was written.
pub(crate) async fn transition_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &OrderId,
    to: OrderStatus,
    detail: serde_json::Value,
) -> Result<Option<Transitioned>, OrderError> {
    change_in(tx, id, to, None, detail).await
}

/// The order becomes paid by `by`, inside the caller's transaction: status, late flag, paid
/// time, wallet and provider trade number in one conditional `UPDATE` (the only place a paid
/// order is written), with its timeline and outbox events. `None`: not payable now.
pub(crate) async fn pay_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &OrderId,
    by: PaidBy<'_>,
    detail: serde_json::Value,
) -> Result<Option<Transitioned>, OrderError> {
    change_in(tx, id, OrderStatus::Paid, Some(by), detail).await
}

async fn change_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &OrderId,
    to: OrderStatus,
    paid_by: Option<PaidBy<'_>>,
    detail: serde_json::Value,
) -> Result<Option<Transitioned>, OrderError> {
    let from_set = to.predecessors();
    if from_set.is_empty() {
        return Ok(None);
    }
    let now = now_ms();
    // Placeholders $5.. hold the allowed predecessors.
    let list = (0..from_set.len())
        .map(|i| format!("${}", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let late_in = &*LATE_IN;
    // What paid it, after the predecessors' placeholders.
    let paid_set = match paid_by {
        Some(_) => {
            let n = 5 + from_set.len();
            format!(", paid_channel = ${n}, provider_trade_no = ${}", n + 1)
        }
        None => String::new(),
    };
    let sql = format!(
        "UPDATE orders SET status = $1, updated_at = $2, \
         late = CASE WHEN $1 = 'paid' AND status IN ({late_in}) THEN $3 ELSE late END, \
         paid_at = CASE WHEN $1 = 'paid' THEN $2 ELSE paid_at END{paid_set} \
         WHERE id = $4 AND status IN ({list}) RETURNING late, merchant_id, amount"
    );
    let mut q = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(now)
        .bind(1_i64)
        .bind(id);
    for s in from_set {
        q = q.bind(s.as_str());
    }
    if let Some(by) = paid_by {
        q = q.bind(by.channel.as_str()).bind(by.provider_trade_no);
    }
    let Some(row) = q.fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let late = row.try_get::<i64, _>("late")? == 1;
    let mut detail = detail;
    if late && to == OrderStatus::Paid {
        detail["late"] = serde_json::json!(true);
    }
    insert_event(tx, id, &format!("status.{to}"), &detail).await?;
    let merchant_id: MerchantId = row.try_get("merchant_id")?;
    if let Some(topic) = outbox_topic(to) {
        let payload = serde_json::json!({
            "order_id": id,
            "status": to,
            "amount": row.try_get::<i64, _>("amount")?,
            "currency": "CNY",
            "late": late && to == OrderStatus::Paid,
            "at": now,
            "detail": detail,
        });
        crate::outbox::insert_for_order(tx, &merchant_id, id, topic, &payload).await?;
    }
    Ok(Some(Transitioned {
        to,
        merchant_id,
        late: late && to == OrderStatus::Paid,
    }))
}

/// The merchant-visible transitions: each writes one outbox event (webhook, live push).
fn outbox_topic(to: OrderStatus) -> Option<&'static str> {
    match to {
        OrderStatus::Paid => Some("order.paid"),
        OrderStatus::Expired => Some("order.expired"),
        OrderStatus::Closed => Some("order.closed"),
        _ => None,
    }
}

/// Why a transition to `to` was not made: the order is missing, or its status (read after
/// the fact) does not allow it.
async fn refusal(db: &Db, id: &OrderId, to: OrderStatus) -> OrderError {
    match get(db, id).await {
        Ok(Some(current)) => OrderError::Forbidden {
            from: current.status,
            to,
        },
        Ok(None) => OrderError::NotFound(id.to_string()),
        Err(e) => e,
    }
}
