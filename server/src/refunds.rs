//! Refunds, full or partial, through the provider that took the payment.
//!
//! 1. *Admitted* in one transaction: a conditional `UPDATE orders` reserves the amount in
//!    `refund_pending` only while `refunded_amount + refund_pending + amount <= amount` and
//!    the order is paid or partially refunded, and the `pending` refund row is written. So
//!    concurrent refunds can never add up to more than was paid.
//! 2. *Asked* of the provider with the refund id as its idempotency key (Alipay
//!    `out_request_no`, WeChat `out_refund_no`): asking again can never refund twice.
//! 3. *Settled* in one transaction: the refund `succeeded` (money moves from
//!    `refund_pending` to `refunded_amount`, the order becomes `partially_refunded` or
//!    `refunded`) or `failed` (the reservation is released); a timeline event and an outbox
//!    event (`refund.succeeded` / `refund.failed`) go with it. A transient provider fault or
//!    a provider still processing leaves it `pending`: a worker asks again with backoff
//!    (claiming rows with a lease, safe on several nodes).

use crate::orders::{self, OrderStatus};
use crate::payments::Payments;
use crate::providers::{Channel, ProviderError, RefundRequest, RefundState};
use app::money::Amount;
use sqlx::Row;
use std::time::Duration;

/// How often the worker looks for refunds to ask about again.
pub const TICK: Duration = Duration::from_secs(1);
/// The first wait before asking again; it doubles up to [`MAX_WAIT_MS`].
const FIRST_WAIT_MS: i64 = 10_000;
const MAX_WAIT_MS: i64 = 600_000;
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 20;
/// Pending refunds due to be asked about again that no worker holds.
const CLAIM: crate::payments::Claim = crate::payments::Claim {
    table: "refunds",
    key: "id",
    due: "status = 'pending' AND next_try_at <= $2 \
          AND (claimed_until IS NULL OR claimed_until <= $2)",
    order_by: "next_try_at",
    set: "claimed_until = $1",
    returning: "id",
};
/// The longest reason a provider accepts (Alipay 256, WeChat 80 characters).
pub const MAX_REASON_CHARS: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub merchant_id: String,
    pub out_trade_no: String,
    pub channel: Channel,
    pub amount: Amount,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub provider_refund_no: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// Also for another merchant's order: its existence is not revealed.
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("an order that is {0} cannot be refunded")]
    NotRefundable(OrderStatus),
    #[error("at most {available} fen can still be refunded")]
    TooMuch { available: i64 },
    #[error("the reason must be at most {MAX_REASON_CHARS} characters")]
    Reason,
    #[error("a refund is at least 0.01 yuan")]
    Zero,
    #[error("{0} is not enabled on this server")]
    ChannelDisabled(Channel),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Refunds `amount` of a merchant's order; returns the refund as the provider left it
/// (`succeeded`, `failed`, or `pending` when the provider must be asked again).
pub async fn request(
    payments: &Payments,
    merchant_id: &str,
    order_id: &str,
    amount: Amount,
    reason: Option<&str>,
) -> Result<Refund, RefundError> {
    if amount.fen() == 0 {
        return Err(RefundError::Zero);
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(RefundError::Reason);
    }
    let db = payments.db();
    let order = orders::get(db, order_id)
        .await
        .map_err(|e| match e {
            orders::OrderError::Db(e) => RefundError::Db(e),
            other => RefundError::Db(sqlx::Error::Protocol(other.to_string())),
        })?
        .filter(|o| o.merchant_id == merchant_id)
        .ok_or_else(|| RefundError::NotFound(order_id.to_string()))?;
    // The attempt whose trade paid the order (a second payment is refunded on its own).
    let paid = sqlx::query(
        "SELECT a.out_trade_no, a.channel FROM payment_attempts a JOIN orders o ON o.id = a.order_id \
         WHERE a.order_id = $1 AND a.status = 'paid' \
         ORDER BY CASE WHEN a.provider_trade_no = o.provider_trade_no THEN 0 ELSE 1 END, a.seq LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(paid) = paid else {
        return Err(RefundError::NotRefundable(order.status));
    };
    let out_trade_no: String = paid.try_get("out_trade_no")?;
    let channel = Channel::parse(&paid.try_get::<String, _>("channel")?)
        .ok_or_else(|| sqlx::Error::Decode("payment_attempts.channel".into()))?;
    if payments.providers().get(channel).is_none() {
        return Err(RefundError::ChannelDisabled(channel));
    }
    let id = format!("rf_{}", orders::random_token());
    let now = orders::now_ms();
    let mut tx = db.pool().begin().await?;
    let admitted = sqlx::query(
        "UPDATE orders SET refund_pending = refund_pending + $1, updated_at = $2 \
         WHERE id = $3 AND status IN ('paid', 'partially_refunded') \
           AND refunded_amount + refund_pending + $1 <= amount",
    )
    .bind(amount.fen())
    .bind(now)
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    if admitted.rows_affected() == 0 {
        drop(tx);
        let row = sqlx::query(
            "SELECT status, amount - refunded_amount - refund_pending AS available FROM orders WHERE id = $1",
        )
        .bind(order_id)
        .fetch_one(db.pool())
        .await?;
        let status =
            OrderStatus::parse(&row.try_get::<String, _>("status")?).unwrap_or(order.status);
        return Err(match status {
            OrderStatus::Paid | OrderStatus::PartiallyRefunded => RefundError::TooMuch {
                available: row.try_get("available")?,
            },
            other => RefundError::NotRefundable(other),
        });
    }
    sqlx::query(
        "INSERT INTO refunds (id, order_id, merchant_id, out_trade_no, channel, amount, reason, status, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)",
    )
    .bind(&id)
    .bind(order_id)
    .bind(merchant_id)
    .bind(&out_trade_no)
    .bind(channel.as_str())
    .bind(amount.fen())
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    orders::insert_event(
        &mut tx,
        order_id,
        "refund.requested",
        &serde_json::json!({ "refund": id, "amount": amount.fen(), "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    ask(payments, &id).await?;
    get(payments, &id)
        .await?
        .ok_or_else(|| RefundError::NotFound(id.clone()))
}

/// Asks the provider about a pending refund (the same idempotent refund call) and settles it
/// or schedules the next question.
async fn ask(payments: &Payments, id: &str) -> Result<(), RefundError> {
    let Some(refund) = get(payments, id).await? else {
        return Ok(());
    };
    if refund.status != RefundStatus::Pending {
        return Ok(());
    }
    let provider = payments
        .providers()
        .get(refund.channel)
        .ok_or(RefundError::ChannelDisabled(refund.channel))?;
    let order = orders::get(payments.db(), &refund.order_id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| RefundError::NotFound(refund.order_id.clone()))?;
    let answer = match crate::failpoints::hit("refund.ask_provider", &refund.order_id) {
        Err(e) => Err(ProviderError::Connect(e.to_string())),
        Ok(()) => {
            provider
                .refund(&RefundRequest {
                    out_trade_no: refund.out_trade_no.clone(),
                    out_refund_no: refund.id.clone(),
                    refund: refund.amount,
                    total: order.amount,
                    reason: refund.reason.clone(),
                })
                .await
        }
    };
    ::metrics::counter!("refund_calls_total", "channel" => refund.channel.as_str(), "ok" => answer.is_ok().to_string())
        .increment(1);
    match answer {
        Ok(s) if s.state == RefundState::Succeeded => {
            settle(payments, &refund, true, s.provider_refund_no, None).await
        }
        Ok(s) if s.state == RefundState::Failed => {
            let why = format!("the provider says {}", s.provider_state);
            settle(payments, &refund, false, s.provider_refund_no, Some(why)).await
        }
        Ok(_) => schedule(payments, &refund, None).await,
        Err(e) if e.is_transient() => schedule(payments, &refund, Some(e.to_string())).await,
        Err(e) => settle(payments, &refund, false, None, Some(e.to_string())).await,
    }
}

async fn schedule(
    payments: &Payments,
    refund: &Refund,
    error: Option<String>,
) -> Result<(), RefundError> {
    sqlx::query(
        "UPDATE refunds SET attempts = attempts + 1, error = $1, updated_at = $2, claimed_until = NULL, \
         next_try_at = $2 + CASE WHEN attempts >= 6 THEN $3 ELSE $4 * (1 << CAST(attempts AS INTEGER)) END \
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(error)
    .bind(orders::now_ms())
    .bind(MAX_WAIT_MS)
    .bind(FIRST_WAIT_MS)
    .bind(&refund.id)
    .execute(payments.db().pool())
    .await?;
    Ok(())
}

/// Settles a pending refund, once: the conditional update on its status makes a second
/// settlement (another node, a repeated answer) a no-op.
async fn settle(
    payments: &Payments,
    refund: &Refund,
    succeeded: bool,
    provider_refund_no: Option<String>,
    error: Option<String>,
) -> Result<(), RefundError> {
    let now = orders::now_ms();
    let status = if succeeded {
        RefundStatus::Succeeded
    } else {
        RefundStatus::Failed
    };
    let mut tx = payments.db().pool().begin().await?;
    let done = sqlx::query(
        "UPDATE refunds SET status = $1, provider_refund_no = $2, error = $3, updated_at = $4, \
         attempts = attempts + 1, next_try_at = NULL, claimed_until = NULL WHERE id = $5 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(provider_refund_no.as_deref())
    .bind(error.as_deref())
    .bind(now)
    .bind(&refund.id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    let fen = refund.amount.fen();
    let row = sqlx::query(
        "UPDATE orders SET refund_pending = refund_pending - $1, \
         refunded_amount = refunded_amount + CASE WHEN $2 = 1 THEN $1 ELSE 0 END, updated_at = $3 \
         WHERE id = $4 RETURNING refunded_amount, amount",
    )
    .bind(fen)
    .bind(i64::from(succeeded))
    .bind(now)
    .bind(&refund.order_id)
    .fetch_one(&mut *tx)
    .await?;
    let refunded: i64 = row.try_get("refunded_amount")?;
    let total: i64 = row.try_get("amount")?;
    let detail = serde_json::json!({
        "refund": refund.id,
        "amount": fen,
        "refunded_amount": refunded,
        "provider_refund_no": provider_refund_no,
        "error": error,
    });
    let mut moved = None;
    if succeeded {
        let to = if refunded >= total {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        moved = orders::transition_in(&mut tx, &refund.order_id, to, detail.clone())
            .await
            .map_err(|e| match e {
                orders::OrderError::Db(e) => RefundError::Db(e),
                other => RefundError::Db(sqlx::Error::Protocol(other.to_string())),
            })?
            .map(|t| t.to);
    }
    let topic = if succeeded {
        "refund.succeeded"
    } else {
        "refund.failed"
    };
    orders::insert_event(&mut tx, &refund.order_id, topic, &detail).await?;
    let mut payload = detail;
    payload["order_id"] = serde_json::json!(refund.order_id);
    payload["currency"] = serde_json::json!("CNY");
    payload["reason"] = serde_json::json!(refund.reason);
    crate::outbox::insert(
        &mut tx,
        &refund.merchant_id,
        &refund.order_id,
        topic,
        &refund.id,
        &payload,
    )
    .await?;
    tx.commit().await?;
    if let Some(to) = moved {
        payments
            .live()
            .publish(&refund.merchant_id, &refund.order_id, to);
    }
    Ok(())
}

const COLUMNS: &str = "id, order_id, merchant_id, out_trade_no, channel, amount, reason, status, \
                       provider_refund_no, error, created_at, updated_at";

pub async fn get(payments: &Payments, id: &str) -> Result<Option<Refund>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM refunds WHERE id = $1"))
        .bind(id)
        .fetch_optional(payments.db().pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A merchant's refunds of one order, oldest first (none for another merchant's order).
pub async fn for_order(
    payments: &Payments,
    merchant_id: &str,
    order_id: &str,
) -> Result<Vec<Refund>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM refunds WHERE order_id = $1 AND merchant_id = $2 ORDER BY created_at, id"
    ))
    .bind(order_id)
    .bind(merchant_id)
    .fetch_all(payments.db().pool())
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Refund, sqlx::Error> {
    let corrupt = |what: &str| sqlx::Error::Decode(format!("refunds.{what}").into());
    Ok(Refund {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        merchant_id: r.try_get("merchant_id")?,
        out_trade_no: r.try_get("out_trade_no")?,
        channel: Channel::parse(&r.try_get::<String, _>("channel")?)
            .ok_or_else(|| corrupt("channel"))?,
        amount: Amount::from_fen(r.try_get("amount")?).map_err(|_| corrupt("amount"))?,
        reason: r.try_get("reason")?,
        status: RefundStatus::parse(&r.try_get::<String, _>("status")?)
            .ok_or_else(|| corrupt("status"))?,
        provider_refund_no: r.try_get("provider_refund_no")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Runs [`run_once`] every `tick` until the task is dropped.
pub fn spawn(payments: Payments, tick: Duration) -> tokio::task::JoinHandle<()> {
    crate::payments::every(tick, "refunds", move || {
        let payments = payments.clone();
        async move { run_once(&payments).await }
    })
}

/// One round: claims the pending refunds that are due and asks their providers again.
/// Returns how many it asked about.
pub async fn run_once(payments: &Payments) -> Result<usize, sqlx::Error> {
    let now = orders::now_ms();
    let claimed: Vec<String> = CLAIM
        .take(payments.db(), now + LEASE_MS, now, BATCH)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let n = claimed.len();
    for id in claimed {
        if let Err(e) = ask(payments, &id).await {
            tracing::warn!(refund = %id, error = %e, "refund not settled yet; asking again later");
        }
    }
    Ok(n)
}
