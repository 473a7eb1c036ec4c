//! Steps 2 to 4: asking the provider again, settling exactly once, notifications, the
//! abnormal refund's bank-card retry, and the worker.

use super::*;
use crate::merchants::MerchantId;

/// Asks the provider about a pending refund (the refund query once the provider accepted
/// it, else the same idempotent refund request) and settles it or schedules the next question.
pub(super) async fn ask(payments: &Payments, id: &str) -> Result<(), RefundError> {
    let Some(refund) = get(payments, id).await? else {
        return Ok(());
    };
    if refund.status != RefundStatus::Pending {
        return Ok(());
    }
    let (account, provider) =
        super::client_for_trade(payments, &refund.out_trade_no, refund.channel).await?;
    let order = orders::get(payments.db(), &refund.order_id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| RefundError::NotFound(refund.order_id.to_string()))?;
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
        answer =
            match crate::infra::failpoints::hit("refund.ask_provider", refund.order_id.as_str()) {
                Err(e) => Err(ProviderError::Connect(e.to_string())),
                Ok(()) => {
                    provider
                        .refund(&RefundRequest {
                            out_trade_no: refund.out_trade_no.clone(),
                            out_refund_no: refund.id.clone(),
                            refund: refund.amount,
                            total: order.amount,
                            reason: refund.reason.clone(),
                            notify_url: Some(payments.notify_url(refund.channel, &account)),
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
    .bind(crate::infra::clock::now_ms())
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
    let now = crate::infra::clock::now_ms();
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

/// Applies a verified refund notification about `order_id`'s trade `out_trade_no`.
/// `Ok(Ok(true))`: it settled the refund; `Ok(Ok(false))`: nothing to change (a copy, a
/// state the refund already has or moved past, "still processing", or an ABNORMAL about a
/// pending refund, which only makes it due for the query); `Ok(Err(why))`: it
/// names no refund of ours, or not as we made it (refused, recorded as a risk event).
pub async fn apply_notice(
    payments: &Payments,
    order_id: &OrderId,
    out_trade_no: &OutTradeNo,
    notice: &crate::providers::RefundNotice,
) -> Result<Result<bool, String>, RefundError> {
    let Some(refund) = get(payments, &notice.out_refund_no).await? else {
        return Ok(Err(format!("no refund is called {}", notice.out_refund_no)));
    };
    if refund.order_id != *order_id || refund.out_trade_no != *out_trade_no {
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
    if notice.state == RefundState::Abnormal && before == RefundStatus::Pending {
        // WeChat retries a notification for hours, so an ABNORMAL one can arrive after the
        // merchant sent the refund to the bank card and it became pending again. Only the
        // refund query says what is true now: the refund is made due at once instead.
        sqlx::query(
            "UPDATE refunds SET next_try_at = CASE WHEN next_try_at > $1 THEN $1 ELSE next_try_at END \
             WHERE id = $2 AND status = 'pending'",
        )
        .bind(crate::infra::clock::now_ms())
        .bind(&refund.id)
        .execute(payments.db().pool())
        .await?;
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
    merchant_id: &MerchantId,
    refund_id: &str,
) -> Result<Refund, RefundError> {
    let refund = get(payments, refund_id)
        .await?
        .filter(|r| r.merchant_id == *merchant_id)
        .ok_or_else(|| RefundError::NotFound(refund_id.to_string()))?;
    let (RefundStatus::Abnormal, Some(provider_no)) =
        (refund.status, refund.provider_refund_no.clone())
    else {
        return Err(RefundError::NotAbnormal(refund_id.to_string()));
    };
    let (_, provider) =
        super::client_for_trade(payments, &refund.out_trade_no, refund.channel).await?;
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
    let now = crate::infra::clock::now_ms();
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
    crate::workers::every(tick, "refunds", move || {
        let payments = payments.clone();
        async move { run_once(&payments).await }
    })
}

/// One round: claims the pending refunds that are due and asks their providers again.
/// Returns how many it asked about.
pub async fn run_once(payments: &Payments) -> Result<usize, sqlx::Error> {
    let now = crate::infra::clock::now_ms();
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
