//! The active-query worker: asks the provider about attempts still open some time after their
//! code was shown, so a payment whose notifications were all lost is still found — and about
//! attempts closed on our side only (an unscanned Alipay code cannot be closed there) until
//! their code is dead. A paid answer goes through the same [`super::paid::check`] and
//! [`Payments::record_payment`] as a notification; a closed one closes the attempt; anything
//! else is asked again later, with the wait doubling up to [`MAX_WAIT`].
//!
//! Safe with several workers (several nodes): a round claims due attempts by moving their
//! `next_query_at` forward in one conditional `UPDATE … RETURNING` (a lease), so only one
//! worker asks about an attempt at a time; a crashed worker's lease simply runs out.

use super::{AttemptStatus, PaymentError, Payments};
use crate::providers::{OutTradeNo, TradeState};
use sqlx::Row;
use std::time::Duration;

/// How often the worker looks for due attempts.
pub const TICK: Duration = Duration::from_secs(1);
/// The longest wait between two questions about one attempt.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a claimed attempt is left alone if its worker dies mid-question.
const LEASE_MS: i64 = 60_000;
/// How long after its code died a locally closed attempt is asked about one last time.
const AFTER_DEATH_MS: i64 = 60_000;
/// How many attempts one round asks about at most.
const BATCH: i64 = 20;
/// Open attempts whose question is due; claiming one moves its next question a lease ahead.
const CLAIM: crate::workers::Claim = crate::workers::Claim {
    table: "payment_attempts",
    key: "out_trade_no",
    due: "status IN ('open', 'closed') AND next_query_at <= $2",
    order_by: "next_query_at",
    set: "next_query_at = $1, query_count = query_count + 1",
    returning: "out_trade_no, query_count",
};

/// Runs [`run_once`] every `tick` until the task is dropped.
pub fn spawn(payments: Payments, tick: Duration) -> tokio::task::JoinHandle<()> {
    crate::workers::every(tick, "active query", move || {
        let payments = payments.clone();
        async move { run_once(&payments).await }
    })
}

/// One round: claims the due open attempts and asks their providers. Returns how many
/// turned out paid.
pub async fn run_once(payments: &Payments) -> Result<usize, sqlx::Error> {
    let now = crate::infra::clock::now_ms();
    let claimed: Vec<(OutTradeNo, i64)> = CLAIM
        .take(payments.db(), now + LEASE_MS, now, BATCH)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("out_trade_no")?, r.try_get("query_count")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let mut paid = 0;
    for (out_trade_no, count) in claimed {
        match ask(payments, &out_trade_no, count).await {
            Ok(true) => paid += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%out_trade_no, error = %e, "active query failed; asking again later")
            }
        }
    }
    Ok(paid)
}

/// Asks about one claimed attempt; `Ok(true)` when it was found paid.
async fn ask(
    payments: &Payments,
    out_trade_no: &OutTradeNo,
    count: i64,
) -> Result<bool, PaymentError> {
    let Some(attempt) = payments.attempt(out_trade_no).await? else {
        return Ok(false);
    };
    let Some(provider) = payments.client_of(&attempt).await? else {
        return Ok(false);
    };
    let answer = provider.query(out_trade_no).await;
    ::metrics::counter!("active_queries_total", "channel" => attempt.channel.as_str(), "ok" => answer.is_ok().to_string())
        .increment(1);
    match answer {
        Ok(status) if status.state == TradeState::Paid => {
            if payments
                .record_paid_answer(&attempt, &status, "query")
                .await?
                .is_some()
            {
                return Ok(true);
            }
            // Paid, but not as the order was made: the same answer would come back on every
            // question; the risk event is for a person.
            stop_asking(payments, out_trade_no).await?;
            Ok(false)
        }
        Ok(status) if status.state == TradeState::Closed => {
            payments
                .mark_closed(
                    &attempt,
                    serde_json::json!({ "reason": "closed at the provider", "provider_state": status.provider_state }),
                    false,
                )
                .await?;
            stop_asking(payments, out_trade_no).await?;
            Ok(false)
        }
        // Closed on our side and its code is dead: this unpaid answer is the last word.
        Ok(_)
            if attempt.status == AttemptStatus::Closed
                && crate::infra::clock::now_ms() > attempt.code_dies_at() + AFTER_DEATH_MS =>
        {
            stop_asking(payments, out_trade_no).await?;
            Ok(false)
        }
        _ => {
            payments.schedule_query(out_trade_no, count).await?;
            Ok(false)
        }
    }
}

async fn stop_asking(payments: &Payments, out_trade_no: &OutTradeNo) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payment_attempts SET next_query_at = NULL WHERE out_trade_no = $1")
        .bind(out_trade_no)
        .execute(payments.db().pool())
        .await?;
    Ok(())
}
