//! Recording a payment: the one path by which an order becomes paid.

use super::close::Closing;
use super::*;
use crate::merchants::MerchantId;
use crate::orders::{self, OrderStatus};
use sqlx::Row;

/// How a reported payment was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// This report made the order paid.
    Paid { late: bool },
    /// The order was already paid by this same trade: nothing changed.
    Duplicate,
    /// The order was already paid by another trade: a second payment, recorded for the
    /// merchant to refund.
    Extra,
}

impl Payments {
    /// Records an answer to a trade query that says paid (the active query, the query after a
    /// refused close), after [`paid::check`]. `None`: refused (a risk event says why).
    pub(crate) async fn record_paid_answer(
        &self,
        attempt: &Attempt,
        status: &crate::providers::TradeStatus,
        source: &str,
    ) -> Result<Option<Recorded>, PaymentError> {
        let order = orders::get(&self.db, &attempt.order_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(attempt.order_id.to_string()))?;
        let identity = self.client_of(attempt).await?.map(|p| p.identity());
        let answer = paid::PaidAnswer {
            channel: attempt.channel,
            out_trade_no: &attempt.out_trade_no,
            amount: status.amount,
            currency: None,
            app_id: None,
            merchant_account: None,
        };
        if let Err(m) = paid::check(attempt, &order, identity.as_ref(), &answer) {
            // Once per trade and reason: the same answer comes back on every question.
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM risk_events WHERE out_trade_no = $1 AND kind = $2 LIMIT 1",
            )
            .bind(&attempt.out_trade_no)
            .bind(m.kind().as_str())
            .fetch_optional(self.db.pool())
            .await?;
            if seen.is_none() {
                crate::risk::record(
                    &self.db,
                    &risk_about(
                        attempt,
                        m.kind(),
                        format!(
                            "the {source} answer says paid ({}): {m}",
                            status.provider_state
                        ),
                    ),
                )
                .await?;
            }
            return Ok(None);
        }
        let recorded = self
            .record_payment(
                attempt,
                status.provider_trade_no.as_deref(),
                serde_json::json!({ "source": source, "provider_state": status.provider_state }),
            )
            .await?;
        Ok(Some(recorded))
    }

    /// Records that the provider reports `attempt`'s trade paid (the caller has read and
    /// checked the attempt; it is not read again). Idempotent: a second report of the same
    /// trade is a `Duplicate` and changes nothing. An order that expired or was closed becomes
    /// paid with its late flag (the money arrived; it is never dropped).
    pub async fn record_payment(
        &self,
        attempt: &Attempt,
        provider_trade_no: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<Recorded, PaymentError> {
        let out_trade_no = &attempt.out_trade_no;
        let order_id = &attempt.order_id;
        let mut detail = detail;
        detail["channel"] = serde_json::json!(attempt.channel);
        detail["out_trade_no"] = serde_json::json!(out_trade_no);
        detail["provider_trade_no"] = serde_json::json!(provider_trade_no);
        let now = crate::infra::clock::now_ms();
        let mut risk_event = None;
        let mut tx = self.db.pool().begin().await?;
        let by = orders::PaidBy {
            channel: attempt.channel,
            provider_trade_no,
        };
        let moved = orders::pay_in(&mut tx, order_id, by, detail.clone()).await?;
        let mut paid_merchant = None;
        let outcome = match moved {
            Some(t) => {
                paid_merchant = Some(t.merchant_id);
                Recorded::Paid { late: t.late }
            }
            None => {
                let paid_by: Option<String> = sqlx::query(
                    "SELECT out_trade_no FROM payment_attempts WHERE order_id = $1 AND status = 'paid'",
                )
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("out_trade_no"))
                .transpose()?;
                match paid_by {
                    Some(t) if *out_trade_no == t.as_str() => Recorded::Duplicate,
                    Some(_) => Recorded::Extra,
                    None => {
                        // Not paid and not payable (e.g. refunded already, or missing): the
                        // report changes nothing, but it is kept in the timeline.
                        Recorded::Duplicate
                    }
                }
            }
        };
        match outcome {
            Recorded::Paid { .. } => {
                sqlx::query(
                    "UPDATE payment_attempts SET status = 'paid', provider_trade_no = $1, closed_at = $2 WHERE out_trade_no = $3",
                )
                .bind(provider_trade_no)
                .bind(now)
                .bind(out_trade_no)
                .execute(&mut *tx)
                .await?;
            }
            Recorded::Extra => {
                let changed = sqlx::query(
                    "UPDATE payment_attempts SET status = 'paid', provider_trade_no = $1, closed_at = $2 \
                     WHERE out_trade_no = $3 AND status <> 'paid'",
                )
                .bind(provider_trade_no)
                .bind(now)
                .bind(out_trade_no)
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() == 1 {
                    // A payment of its own: in the timeline, to the merchant's webhook as
                    // its own event, and on the board with its own refund.
                    let (merchant_id, amount): (MerchantId, i64) =
                        sqlx::query_as("SELECT merchant_id, amount FROM orders WHERE id = $1")
                            .bind(order_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    let payment = serde_json::json!({
                        "order_id": order_id,
                        "out_trade_no": out_trade_no,
                        "provider_trade_no": provider_trade_no,
                        "channel": attempt.channel,
                        "amount": amount,
                        "currency": "CNY",
                    });
                    orders::insert_event(&mut tx, order_id, "payment.extra", &payment).await?;
                    crate::outbox::insert(
                        &mut tx,
                        &merchant_id,
                        order_id,
                        "order.extra_payment",
                        out_trade_no.as_str(),
                        &payment,
                    )
                    .await?;
                    let reason = format!(
                        "a second payment of {amount} fen through {out_trade_no} for an order \
                         already paid; refund it"
                    );
                    risk_event = Some(risk_about(attempt, RiskKind::SecondPayment, reason));
                }
            }
            Recorded::Duplicate => {}
        }
        if let Recorded::Paid { late: true } = outcome {
            risk_event = Some(risk_about(
                attempt,
                RiskKind::LatePayment,
                "paid after the order had expired or was closed".to_string(),
            ));
        }
        if let Some(event) = &risk_event {
            crate::risk::record_in(&mut tx, event).await?;
        }
        crate::infra::failpoints::hit("record_payment.before_commit", out_trade_no.as_str())?;
        tx.commit().await?;
        if let Some(event) = &risk_event {
            crate::risk::count(event);
        }
        if let Recorded::Paid { late } = outcome {
            ::metrics::counter!("payments_recorded_total", "channel" => attempt.channel.as_str(), "late" => late.to_string())
                .increment(1);
            if let Some(merchant) = &paid_merchant {
                self.live.publish(merchant, order_id, OrderStatus::Paid);
            }
            // Another wallet's code of this order may still be live: close it so the customer
            // cannot pay twice. Best effort; a payment that still arrives is recorded as extra
            // when its notification comes.
            if let Ok(Some(other)) = self.live_attempt(order_id).await {
                match self.close_attempt(&other, "order paid").await {
                    Ok(Closing::Closed) => {}
                    Ok(Closing::FoundPaid(_)) => {
                        tracing::warn!(order = %order_id, out_trade_no = %other.out_trade_no, "a second attempt of a paid order is paid too")
                    }
                    Err(e) => {
                        tracing::warn!(order = %order_id, error = %e, "could not close the other live attempt")
                    }
                }
            }
        }
        Ok(outcome)
    }
}
