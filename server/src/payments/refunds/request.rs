//! Step 1: a refund admitted in one transaction, then asked for the first time.

use super::settle::ask;
use super::*;
use crate::merchants::MerchantId;

/// Refunds `amount` of a merchant's order; returns the refund as the provider left it
/// (`succeeded`, `failed`, `abnormal`, or `pending` when the provider must be asked again).
pub async fn request(
    payments: &Payments,
    merchant_id: &MerchantId,
    order_id: &OrderId,
    amount: Amount,
    reason: Option<&str>,
) -> Result<Refund, RefundError> {
    request_of(payments, merchant_id, order_id, None, amount, reason).await
}

/// Refunds what is left of a second payment of a merchant's order (the customer paid
/// through two codes): the trade `out_trade_no`, not the one that paid the order.
pub async fn refund_extra_payment(
    payments: &Payments,
    merchant_id: &MerchantId,
    order_id: &OrderId,
    out_trade_no: &OutTradeNo,
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
    merchant_id: &MerchantId,
    order_id: &OrderId,
    extra_trade: Option<&OutTradeNo>,
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
        .filter(|o| o.merchant_id == *merchant_id)
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
    let out_trade_no: OutTradeNo = paid.try_get("out_trade_no")?;
    let channel = Channel::parse(&paid.try_get::<String, _>("channel")?)
        .ok_or_else(|| sqlx::Error::Decode("payment_attempts.channel".into()))?;
    // Refunded through the account that took the money, which must still be there.
    super::client_for_trade(payments, &out_trade_no, channel).await?;
    let id = format!("rf_{}", orders::random_token());
    let now = crate::infra::clock::now_ms();
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
        order_id: order_id.clone(),
        merchant_id: merchant_id.clone(),
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
    if let Err(e) = crate::infra::failpoints::hit("refund.after_save", order_id.as_str()) {
        tracing::warn!(refund = %id, error = %e, "refund saved; the worker will ask the provider");
        return Ok(saved);
    }
    if let Err(e) = ask(payments, &id).await {
        tracing::warn!(refund = %id, error = %e, "refund saved; the worker will ask the provider");
    }
    Ok(get(payments, &id).await.ok().flatten().unwrap_or(saved))
}
