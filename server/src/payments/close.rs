//! Closing attempts and orders at their provider: a switch, an expiry, the merchant's close.

use super::*;
use crate::merchants::MerchantId;
use crate::orders::{self, Order, OrderStatus};
use crate::providers::TradeState;

/// What closing an attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    Closed,
    /// The provider says the trade was paid meanwhile (its query answer, not checked yet).
    FoundPaid(crate::providers::TradeStatus),
}

impl Payments {
    /// Closes a live attempt at its provider so it can no longer be paid, and records a paid
    /// trade instead if the provider says it was paid meanwhile (`Ok(true)`: the order is paid).
    pub async fn close_or_record(
        &self,
        attempt: &Attempt,
        reason: &str,
    ) -> Result<bool, PaymentError> {
        match self.close_attempt(attempt, reason).await? {
            Closing::Closed => Ok(false),
            Closing::FoundPaid(status) => {
                match self.record_paid_answer(attempt, &status, "close").await? {
                    Some(_) => Ok(true),
                    // Paid, says the provider, but not as the order was made: it never pays
                    // the order. Asking again gives the same answer, so the code is closed on
                    // our side and the order ends; a person looks at the risk event.
                    None => {
                        self.mark_closed(
                            attempt,
                            serde_json::json!({
                                "reason": reason,
                                "provider_said": "paid, but not as the order was made (see the risk events)",
                            }),
                            false,
                        )
                        .await?;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// Ends an unpaid order as `to` (`Expired`, or `Closed` by its merchant): its live
    /// attempt is closed at the provider first, so no code can be paid after; if the provider
    /// says it was paid meanwhile, the payment is recorded instead. `Ok(false)`: the order was
    /// paid, or ended by someone else, meanwhile.
    pub async fn end_unpaid(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        detail: serde_json::Value,
    ) -> Result<bool, PaymentError> {
        if let Some(attempt) = self.live_attempt(order_id).await? {
            let reason = if to == OrderStatus::Expired {
                "expired"
            } else {
                "closed by the merchant"
            };
            if self.close_or_record(&attempt, reason).await? {
                return Ok(false);
            }
        }
        match orders::transition(&self.db, order_id, to, detail).await {
            Ok(t) => {
                self.live.publish(&t.merchant_id, order_id, to);
                Ok(true)
            }
            Err(orders::OrderError::Forbidden { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes one of `merchant_id`'s unpaid orders for its merchant (the API's close, the
    /// board's): its live code first, at the provider. A closed order closes again without
    /// error; another merchant's order is `NotFound`. `via` says where it was asked for.
    pub async fn close_for_merchant(
        &self,
        merchant_id: &MerchantId,
        order_id: &OrderId,
        via: &str,
    ) -> Result<Order, CloseError> {
        // The order, if it is this merchant's.
        let mine = async || -> Result<Order, CloseError> {
            orders::get(&self.db, order_id)
                .await
                .map_err(PaymentError::from)?
                .filter(|o| o.merchant_id == *merchant_id)
                .ok_or_else(|| CloseError::NotFound(order_id.to_string()))
        };
        let order = mine().await?;
        match order.status {
            OrderStatus::Closed => return Ok(order),
            OrderStatus::Created | OrderStatus::Pending => {}
            other => return Err(CloseError::NotClosable(other)),
        }
        let detail = serde_json::json!({ "reason": "closed by the merchant", "via": via });
        self.end_unpaid(order_id, OrderStatus::Closed, detail)
            .await?;
        let now = mine().await?;
        match now.status {
            OrderStatus::Closed => Ok(now),
            // Paid (or expired) meanwhile.
            other => Err(CloseError::NotClosable(other)),
        }
    }

    /// Closes a live attempt at its provider. A transient provider failure is an error: the
    /// attempt stays live and nothing else is opened. If the provider says the trade is paid,
    /// nothing is closed and the caller hears it.
    pub(super) async fn close_attempt(
        &self,
        attempt: &Attempt,
        reason: &str,
    ) -> Result<Closing, PaymentError> {
        let channel = attempt.channel;
        if attempt.status == AttemptStatus::Opening {
            // Nobody has its code yet; the request running the prepay will finish it.
            return Err(PaymentError::Busy);
        }
        let provider = self
            .client_of(attempt)
            .await?
            .ok_or(PaymentError::ChannelDisabled(channel))?;
        let closed = provider.close(&attempt.out_trade_no).await;
        let mut note = serde_json::json!({ "channel": channel, "out_trade_no": attempt.out_trade_no, "reason": reason });
        if let Err(close_err) = closed {
            // Paid meanwhile? Closed already? Ask before deciding.
            match provider.query(&attempt.out_trade_no).await {
                Ok(status) if status.state == TradeState::Paid => {
                    return Ok(Closing::FoundPaid(status));
                }
                Ok(status) if !close_err.is_transient() => {
                    // The provider has nothing to close under this number: closed there
                    // already, or (Alipay) never scanned, so it does not exist there yet
                    // while its code can still be paid until it dies. Closed on our side; the
                    // active query keeps asking until the code is dead, and a payment that
                    // still arrives is recorded as late, never lost.
                    note["provider_said"] = serde_json::json!(close_err.to_string());
                    let still_payable = status.state != TradeState::Closed;
                    self.mark_closed(attempt, note, still_payable).await?;
                    return Ok(Closing::Closed);
                }
                _ => {
                    return Err(PaymentError::Provider {
                        channel,
                        source: close_err,
                    })
                }
            }
        }
        self.mark_closed(attempt, note, false).await?;
        Ok(Closing::Closed)
    }

    /// Marks an open attempt closed, with a timeline event. `still_payable`: closed on our
    /// side only (its code may still be paid until it dies), so the active query keeps asking
    /// about it; otherwise it is closed at the provider and nobody asks again.
    pub async fn mark_closed(
        &self,
        attempt: &Attempt,
        note: serde_json::Value,
        still_payable: bool,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE payment_attempts SET status = 'closed', closed_at = $1, \
             next_query_at = CASE WHEN $3 = 1 THEN next_query_at ELSE NULL END \
             WHERE out_trade_no = $2 AND status = 'open'",
        )
        .bind(crate::infra::clock::now_ms())
        .bind(&attempt.out_trade_no)
        .bind(i64::from(still_payable))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            let mut note = note;
            note["channel"] = serde_json::json!(attempt.channel);
            note["out_trade_no"] = serde_json::json!(attempt.out_trade_no);
            orders::insert_event(&mut tx, &attempt.order_id, "attempt.closed", &note).await?;
        }
        tx.commit().await
    }
}
