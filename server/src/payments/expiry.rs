//! The expiry worker: an order whose `expires_at` has passed is closed at its provider first
//! (so the code can no longer be paid), then marked expired. If the provider says the trade
//! was paid meanwhile, the order becomes paid instead — never expired.
//!
//! Safe with several workers at once (several nodes): a round claims due orders with a lease
//! (`expiry_claimed_until`, moved forward in one conditional `UPDATE … RETURNING`), the status
//! change is conditional, a second close of a closed trade is recognised, and an order whose
//! attempt is still being opened is left for a later round.

use super::{PaymentError, Payments};
use crate::orders::{OrderId, OrderStatus};
use sqlx::Row;
use std::time::Duration;

/// How often the worker looks for expired orders.
pub const TICK: Duration = Duration::from_secs(1);
/// How many orders one round handles at most.
const BATCH: i64 = 100;
/// How long a claimed order is left to its worker (which may have died, or met a provider
/// fault) before another round tries it again.
const LEASE_MS: i64 = 10_000;
/// Unpaid orders past their time that no worker holds.
const CLAIM: crate::workers::Claim = crate::workers::Claim {
    table: "orders",
    key: "id",
    due: "status IN ('created', 'pending') AND expires_at <= $2 \
          AND (expiry_claimed_until IS NULL OR expiry_claimed_until <= $2)",
    order_by: "expires_at",
    set: "expiry_claimed_until = $1",
    returning: "id",
};

/// Runs [`run_once`] every `tick` until the task is dropped.
pub fn spawn(payments: Payments, tick: Duration) -> tokio::task::JoinHandle<()> {
    crate::workers::every(tick, "expiry", move || {
        let payments = payments.clone();
        async move { run_once(&payments).await }
    })
}

/// One round: expires every due order it can. Returns how many it expired.
pub async fn run_once(payments: &Payments) -> Result<usize, sqlx::Error> {
    let now = crate::infra::clock::now_ms();
    let due: Vec<OrderId> = CLAIM
        .take(payments.db(), now + LEASE_MS, now, BATCH)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut expired = 0;
    for id in due {
        match expire(payments, &id).await {
            Ok(true) => expired += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(order = %id, error = %e, "cannot expire the order yet");
                // Free the claim so the next round (on any node) tries again.
                sqlx::query("UPDATE orders SET expiry_claimed_until = NULL WHERE id = $1")
                    .bind(&id)
                    .execute(payments.db().pool())
                    .await?;
            }
        }
    }
    Ok(expired)
}

/// Expires one due order. `Ok(false)`: it was paid, or expired by someone else, meanwhile.
async fn expire(payments: &Payments, id: &OrderId) -> Result<bool, PaymentError> {
    payments
        .end_unpaid(
            id,
            OrderStatus::Expired,
            serde_json::json!({ "reason": "not paid before expires_at" }),
        )
        .await
}
