//! Refunds, full or partial, through the provider that took the payment.
//!
//! 1. *Admitted* in one transaction: a conditional `UPDATE orders` reserves the amount in
//!    `refund_pending` only while `refunded_amount + refund_pending + amount <= amount` and
//!    the order is paid or partially refunded, and the `pending` refund row is written. So
//!    concurrent refunds can never add up to more than was paid.
//!    The refund is saved due and leased to the request: from then on the worker owns it. If
//!    the request dies (crash, hang-up, database fault), the worker asks once the lease ends.
//! 2. *Asked* of the provider with the refund id as its idempotency key (Alipay
//!    `out_request_no`, WeChat `out_refund_no`): asking again can never refund twice. Once
//!    the provider has accepted it, the refund query is asked instead (Alipay
//!    `alipay.trade.fastpay.refund.query`, WeChat `GET /v3/refund/domestic/refunds/{no}`);
//!    when the query knows no such refund, the refund request is sent again.
//! 3. *Settled* only on a definitive answer, in one transaction: `succeeded` (Alipay
//!    `fund_change=Y` or `REFUND_SUCCESS`, WeChat `SUCCESS`: money moves from
//!    `refund_pending` to `refunded_amount`, the order becomes `partially_refunded` or
//!    `refunded`) or `failed` (WeChat `CLOSED`, or a refusal both providers document as
//!    definitive: the reservation is released); a timeline event and an outbox event
//!    (`refund.succeeded` / `refund.failed`) go with it. Anything else (a timeout, a 5xx,
//!    `SYSTEM_ERROR`, an answer cut off or unverifiable, an unknown code, `fund_change=N`,
//!    `PROCESSING`) leaves it `pending`, asked again with backoff (claiming rows with a
//!    lease, safe on several nodes): the provider may have refunded, so it is never failed.
//! 4. WeChat `ABNORMAL` is `abnormal`: the amount stays reserved, the merchant is told what
//!    to do, and [`retry_abnormal`] sends the money to the merchant's bank card instead,
//!    after which the refund is pending again. WeChat's refund notifications
//!    ([`apply_notice`]) settle a refund the same way, never moving it backwards.

use crate::orders::{self, OrderStatus};
use crate::payments::Payments;
pub use crate::providers::RefundStatus as ProviderRefundStatus;
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
    /// WeChat `ABNORMAL`: waiting for the merchant to send the money another way.
    Abnormal,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Abnormal => "abnormal",
        }
    }

    fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
            RefundStatus::Abnormal,
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
    /// The provider's own last word about it (`fund_change=N`, `PROCESSING`, `ABNORMAL`…).
    pub provider_state: Option<String>,
    pub error: Option<String>,
    /// It returns a second payment (the trade `out_trade_no`), not the order's.
    pub extra: bool,
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
    /// Only an abnormal refund can be sent to the merchant's bank card.
    #[error("the refund {0} is not abnormal")]
    NotAbnormal(String),
    #[error("the provider did not take it: {0}")]
    Provider(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Refunds `amount` of a merchant's order; returns the refund as the provider left it
/// (`succeeded`, `failed`, `abnormal`, or `pending` when the provider must be asked again).
pub async fn request(
    payments: &Payments,
    merchant_id: &str,
    order_id: &str,
    amount: Amount,
    reason: Option<&str>,
) -> Result<Refund, RefundError> {
    request_of(payments, merchant_id, order_id, None, amount, reason).await
}

/// Refunds what is left of a second payment of a merchant's order (the customer paid
/// through two codes): the trade `out_trade_no`, not the one that paid the order.
pub async fn refund_extra_payment(
    payments: &Payments,
    merchant_id: &str,
    order_id: &str,
    out_trade_no: &str,
    reason: Option<&str>,
) -> Result<Refund, RefundError> {
    let left: Option<i64> = sqlx::query_scalar(
        "SELECT o.amount - a.refund_reserved FROM payment_attempts a JOIN orders o ON o.id = a.order_id \
         WHERE a.out_trade_no = $1 AND a.order_id = $2 AND o.merchant_id = $3 AND a.status = 'paid'",
    )
    .bind(out_trade_no)
    .bind(order_id)
    .bind(merchant_id)
    .fetch_optional(payments.db().pool())
    .await?;
    let left = left.ok_or_else(|| RefundError::NotFound(out_trade_no.to_string()))?;
    let amount = Amount::from_fen(left.max(0)).map_err(|_| RefundError::Zero)?;
    if amount.fen() == 0 {
        return Err(RefundError::TooMuch { available: 0 });
    }
    request_of(
        payments,
        merchant_id,
        order_id,
        Some(out_trade_no),
        amount,
        reason,
    )
    .await
}

async fn request_of(
    payments: &Payments,
    merchant_id: &str,
    order_id: &str,
    extra_trade: Option<&str>,
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
    // The attempt whose trade paid the order, or the second payment asked for.
    let paid = match extra_trade {
        None => {
            sqlx::query(
                "SELECT a.out_trade_no, a.channel FROM payment_attempts a JOIN orders o ON o.id = a.order_id \
                 WHERE a.order_id = $1 AND a.status = 'paid' \
                 ORDER BY CASE WHEN a.provider_trade_no = o.provider_trade_no THEN 0 ELSE 1 END, a.seq LIMIT 1",
            )
            .bind(order_id)
            .fetch_optional(db.pool())
            .await?
        }
        Some(trade) => {
            sqlx::query(
                "SELECT a.out_trade_no, a.channel FROM payment_attempts a JOIN orders o ON o.id = a.order_id \
                 WHERE a.order_id = $1 AND a.out_trade_no = $2 AND a.status = 'paid' \
                   AND a.provider_trade_no IS NOT NULL AND a.provider_trade_no <> o.provider_trade_no",
            )
            .bind(order_id)
            .bind(trade)
            .fetch_optional(db.pool())
            .await?
        }
    };
    let Some(paid) = paid else {
        return Err(match extra_trade {
            Some(trade) => RefundError::NotFound(trade.to_string()),
            None => RefundError::NotRefundable(order.status),
        });
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
    // Reserved by one conditional UPDATE: on the order, or on the second payment's attempt.
    let admitted = match extra_trade {
        None => {
            sqlx::query(
                "UPDATE orders SET refund_pending = refund_pending + $1, updated_at = $2 \
                 WHERE id = $3 AND status IN ('paid', 'partially_refunded') \
                   AND refunded_amount + refund_pending + $1 <= amount",
            )
            .bind(amount.fen())
            .bind(now)
            .bind(order_id)
            .execute(&mut *tx)
            .await?
        }
        Some(_) => {
            sqlx::query(
                "UPDATE payment_attempts SET refund_reserved = refund_reserved + $1 \
                 WHERE out_trade_no = $2 AND status = 'paid' AND refund_reserved + $1 <= $3",
            )
            .bind(amount.fen())
            .bind(&out_trade_no)
            .bind(order.amount.fen())
            .execute(&mut *tx)
            .await?
        }
    };
    if admitted.rows_affected() == 0 {
        drop(tx);
        if extra_trade.is_some() {
            let left: i64 = sqlx::query_scalar(
                "SELECT $1 - refund_reserved FROM payment_attempts WHERE out_trade_no = $2",
            )
            .bind(order.amount.fen())
            .bind(&out_trade_no)
            .fetch_one(db.pool())
            .await?;
            return Err(RefundError::TooMuch {
                available: left.max(0),
            });
        }
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
    // Saved due now and leased to this request: if the request goes no further, the worker
    // asks once the lease is over.
    sqlx::query(
        "INSERT INTO refunds (id, order_id, merchant_id, out_trade_no, channel, amount, reason, status, \
         created_at, updated_at, next_try_at, claimed_until, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8, $8, $9, $10)",
    )
    .bind(&id)
    .bind(order_id)
    .bind(merchant_id)
    .bind(&out_trade_no)
    .bind(channel.as_str())
    .bind(amount.fen())
    .bind(reason)
    .bind(now)
    .bind(now + LEASE_MS)
    .bind(i64::from(extra_trade.is_some()))
    .execute(&mut *tx)
    .await?;
    orders::insert_event(
        &mut tx,
        order_id,
        "refund.requested",
        &serde_json::json!({ "refund": id, "amount": amount.fen(), "reason": reason, "second_payment": extra_trade }),
    )
    .await?;
    tx.commit().await?;
    let saved = Refund {
        id: id.clone(),
        order_id: order_id.to_string(),
        merchant_id: merchant_id.to_string(),
        out_trade_no,
        channel,
        amount,
        reason: reason.map(str::to_string),
        status: RefundStatus::Pending,
        provider_refund_no: None,
        provider_state: None,
        error: None,
        extra: extra_trade.is_some(),
        created_at: now,
        updated_at: now,
    };
    // From here the refund exists and the worker will finish it: whatever goes wrong with
    // this fast path, the caller gets the pending refund, never an error that invites a
    // second refund.
    if let Err(e) = crate::failpoints::hit("refund.after_save", order_id) {
        tracing::warn!(refund = %id, error = %e, "refund saved; the worker will ask the provider");
        return Ok(saved);
    }
    if let Err(e) = ask(payments, &id).await {
        tracing::warn!(refund = %id, error = %e, "refund saved; the worker will ask the provider");
    }
    Ok(get(payments, &id).await.ok().flatten().unwrap_or(saved))
}

/// Asks the provider about a pending refund (the refund query once the provider accepted
/// it, else the same idempotent refund request) and settles it or schedules the next question.
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
    let mut answer = Err(ProviderError::Connect(String::new()));
    let mut asked_request = false;
    if refund.provider_refund_no.is_some() {
        answer = provider
            .refund_query(&refund.out_trade_no, &refund.id)
            .await;
    }
    let not_found = matches!(&answer, Ok(s) if s.state == RefundState::NotFound);
    if refund.provider_refund_no.is_none() || not_found {
        asked_request = true;
        answer = match crate::failpoints::hit("refund.ask_provider", &refund.order_id) {
            Err(e) => Err(ProviderError::Connect(e.to_string())),
            Ok(()) => {
                provider
                    .refund(&RefundRequest {
                        out_trade_no: refund.out_trade_no.clone(),
                        out_refund_no: refund.id.clone(),
                        refund: refund.amount,
                        total: order.amount,
                        reason: refund.reason.clone(),
                        notify_url: Some(payments.notify_url(refund.channel)),
                    })
                    .await
            }
        };
    }
    ::metrics::counter!("refund_calls_total", "channel" => refund.channel.as_str(), "ok" => answer.is_ok().to_string())
        .increment(1);
    match answer {
        Ok(s) => apply_state(payments, &refund, s, "answer").await,
        // Refused for good: only a refusal of the refund request itself ends it.
        Err(e) if asked_request && e.refund_refused() => {
            settle(
                payments,
                &refund,
                Settled::Failed,
                None,
                Some(e.to_string()),
            )
            .await
        }
        Err(e) => schedule(payments, &refund, None, None, Some(e.to_string())).await,
    }
}

/// Acts on what the provider says about a refund (an answer or a verified notification).
async fn apply_state(
    payments: &Payments,
    refund: &Refund,
    s: crate::providers::RefundStatus,
    source: &str,
) -> Result<(), RefundError> {
    let state = Some(s.provider_state.clone());
    match s.state {
        RefundState::Succeeded => {
            settle(
                payments,
                refund,
                Settled::Succeeded,
                s.provider_refund_no,
                None,
            )
            .await
        }
        RefundState::Failed => {
            let why = format!("the provider says {} ({source})", s.provider_state);
            settle(
                payments,
                refund,
                Settled::Failed,
                s.provider_refund_no,
                Some(why),
            )
            .await
        }
        RefundState::Abnormal => {
            settle(
                payments,
                refund,
                Settled::Abnormal,
                s.provider_refund_no,
                None,
            )
            .await
        }
        RefundState::Pending | RefundState::NotFound => {
            schedule(payments, refund, s.provider_refund_no, state, None).await
        }
    }
}

/// Leaves a refund pending and due again after the backoff; keeps what the provider said.
async fn schedule(
    payments: &Payments,
    refund: &Refund,
    provider_refund_no: Option<String>,
    provider_state: Option<String>,
    error: Option<String>,
) -> Result<(), RefundError> {
    sqlx::query(
        "UPDATE refunds SET attempts = attempts + 1, error = $1, updated_at = $2, claimed_until = NULL, \
         next_try_at = $2 + CASE WHEN attempts >= 6 THEN $3 ELSE $4 * (1 << CAST(attempts AS INTEGER)) END, \
         provider_refund_no = COALESCE($6, provider_refund_no), provider_state = COALESCE($7, provider_state) \
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(error)
    .bind(orders::now_ms())
    .bind(MAX_WAIT_MS)
    .bind(FIRST_WAIT_MS)
    .bind(&refund.id)
    .bind(provider_refund_no)
    .bind(provider_state)
    .execute(payments.db().pool())
    .await?;
    Ok(())
}

/// A definitive outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    Succeeded,
    Failed,
    Abnormal,
}

/// Settles a pending refund, once: the conditional update on its status makes a second
/// settlement (another node, a repeated answer) a no-op.
async fn settle(
    payments: &Payments,
    refund: &Refund,
    outcome: Settled,
    provider_refund_no: Option<String>,
    error: Option<String>,
) -> Result<(), RefundError> {
    let now = orders::now_ms();
    let (status, provider_state) = match outcome {
        Settled::Succeeded => (RefundStatus::Succeeded, "SUCCESS"),
        Settled::Failed => (RefundStatus::Failed, "FAILED"),
        Settled::Abnormal => (RefundStatus::Abnormal, "ABNORMAL"),
    };
    let mut tx = payments.db().pool().begin().await?;
    // Pending (or abnormal, which may still succeed or close) → a definitive state, once.
    let from = if outcome == Settled::Abnormal {
        "status = 'pending'"
    } else {
        "status IN ('pending', 'abnormal')"
    };
    let done = sqlx::query(&format!(
        "UPDATE refunds SET status = $1, provider_refund_no = COALESCE($2, provider_refund_no), error = $3, \
         updated_at = $4, attempts = attempts + 1, next_try_at = NULL, claimed_until = NULL, provider_state = $6 \
         WHERE id = $5 AND {from}"
    ))
    .bind(status.as_str())
    .bind(provider_refund_no.as_deref())
    .bind(error.as_deref())
    .bind(now)
    .bind(&refund.id)
    .bind(provider_state)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    let fen = refund.amount.fen();
    if outcome == Settled::Abnormal {
        // Nothing moves: the amount stays reserved while the money waits at the provider.
        let detail = serde_json::json!({
            "refund": refund.id,
            "amount": fen,
            "provider_refund_no": provider_refund_no,
            "what_to_do": ABNORMAL_ADVICE,
        });
        orders::insert_event(&mut tx, &refund.order_id, "refund.abnormal", &detail).await?;
        let mut payload = detail;
        payload["order_id"] = serde_json::json!(refund.order_id);
        payload["currency"] = serde_json::json!("CNY");
        crate::outbox::insert(
            &mut tx,
            &refund.merchant_id,
            &refund.order_id,
            "refund.abnormal",
            &refund.id,
            &payload,
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let succeeded = outcome == Settled::Succeeded;
    let mut moved = None;
    let detail = if refund.extra {
        // A second payment's refund: reserved on its attempt, released if it failed; the
        // order (paid once) does not change.
        if !succeeded {
            sqlx::query(
                "UPDATE payment_attempts SET refund_reserved = refund_reserved - $1 WHERE out_trade_no = $2",
            )
            .bind(fen)
            .bind(&refund.out_trade_no)
            .execute(&mut *tx)
            .await?;
        }
        serde_json::json!({
            "refund": refund.id,
            "amount": fen,
            "second_payment": refund.out_trade_no,
            "provider_refund_no": provider_refund_no,
            "error": error,
        })
    } else {
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
        detail
    };
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
                       provider_refund_no, provider_state, error, extra, created_at, updated_at";

/// What the merchant is told to do about an abnormal refund.
pub const ABNORMAL_ADVICE: &str = "WeChat could not return the money to the buyer's original \
    account (a cancelled or frozen card). Send it to your bank card with \"Refund to bank card\", \
    or handle it in the WeChat Pay merchant platform (交易中心 → 退款管理).";

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
        provider_state: r.try_get("provider_state")?,
        error: r.try_get("error")?,
        extra: r.try_get::<i64, _>("extra")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Applies a verified refund notification about `order_id`'s trade `out_trade_no`.
/// `Ok(Ok(true))`: it settled the refund; `Ok(Ok(false))`: nothing to change (a copy, a
/// state the refund already has or moved past, or "still processing"); `Ok(Err(why))`: it
/// names no refund of ours, or not as we made it (refused, recorded as a risk event).
pub async fn apply_notice(
    payments: &Payments,
    order_id: &str,
    out_trade_no: &str,
    notice: &crate::providers::RefundNotice,
) -> Result<Result<bool, String>, RefundError> {
    let Some(refund) = get(payments, &notice.out_refund_no).await? else {
        return Ok(Err(format!("no refund is called {}", notice.out_refund_no)));
    };
    if refund.order_id != order_id || refund.out_trade_no != out_trade_no {
        return Ok(Err(format!(
            "refund {} belongs to another trade",
            notice.out_refund_no
        )));
    }
    if refund.amount != notice.refund {
        return Ok(Err(format!(
            "refund amount {} fen differs from the refund's {} fen",
            notice.refund.fen(),
            refund.amount.fen()
        )));
    }
    let before = refund.status;
    if !matches!(before, RefundStatus::Pending | RefundStatus::Abnormal) {
        return Ok(Ok(false));
    }
    apply_state(
        payments,
        &refund,
        ProviderRefundStatus {
            state: notice.state,
            provider_state: notice.provider_state.clone(),
            provider_refund_no: notice.provider_refund_no.clone(),
        },
        "notification",
    )
    .await?;
    let after = get(payments, &refund.id).await?.map(|r| r.status);
    Ok(Ok(after != Some(before)))
}

/// Sends an abnormal refund to the merchant's bank card (WeChat's abnormal-refund call); the
/// refund is pending again and finished by the worker. Returns it as it is now.
pub async fn retry_abnormal(
    payments: &Payments,
    merchant_id: &str,
    refund_id: &str,
) -> Result<Refund, RefundError> {
    let refund = get(payments, refund_id)
        .await?
        .filter(|r| r.merchant_id == merchant_id)
        .ok_or_else(|| RefundError::NotFound(refund_id.to_string()))?;
    let (RefundStatus::Abnormal, Some(provider_no)) =
        (refund.status, refund.provider_refund_no.clone())
    else {
        return Err(RefundError::NotAbnormal(refund_id.to_string()));
    };
    let provider = payments
        .providers()
        .get(refund.channel)
        .ok_or(RefundError::ChannelDisabled(refund.channel))?;
    let answer = provider
        .apply_abnormal_refund(&provider_no, &refund.id)
        .await;
    if let Err(e) = &answer {
        if e.refund_refused() || matches!(e, ProviderError::Unsupported(_)) {
            return Err(RefundError::Provider(e.to_string()));
        }
    }
    // Taken, or unknown: pending again either way. The worker's refund query tells which
    // (still ABNORMAL puts it back).
    let now = orders::now_ms();
    let mut tx = payments.db().pool().begin().await?;
    let reopened = sqlx::query(
        "UPDATE refunds SET status = 'pending', next_try_at = $1, claimed_until = NULL, updated_at = $2, \
         provider_state = 'MERCHANT_BANK_CARD', error = NULL WHERE id = $3 AND status = 'abnormal'",
    )
    .bind(now + FIRST_WAIT_MS)
    .bind(now)
    .bind(&refund.id)
    .execute(&mut *tx)
    .await?;
    if reopened.rows_affected() == 1 {
        orders::insert_event(
            &mut tx,
            &refund.order_id,
            "refund.to_bank_card",
            &serde_json::json!({ "refund": refund.id, "amount": refund.amount.fen() }),
        )
        .await?;
    }
    tx.commit().await?;
    if let (true, Ok(s)) = (reopened.rows_affected() == 1, answer) {
        if let Some(pending) = get(payments, &refund.id).await? {
            apply_state(payments, &pending, s, "answer").await?;
        }
    }
    get(payments, &refund.id)
        .await?
        .ok_or_else(|| RefundError::NotFound(refund_id.to_string()))
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
