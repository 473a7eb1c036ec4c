//! Processing a verified provider notification: does it name one of our attempts, with the
//! order's amount and currency and our account at the provider? Then a paid state is recorded
//! through [`Payments::record_payment`], and any other state is only written to the timeline.
//!
//! Signature, timestamp and decryption checks happened before (`PaymentProvider::
//! verify_notification`); this decides what a genuine notification means for our tables.

use super::{PaymentError, Payments, Recorded};
use crate::orders;
use crate::providers::{NotifyOutcome, TradeState, VerifiedNotification};

/// Why a verified notification is still refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("no payment attempt is called {0}")]
    UnknownTrade(String),
    #[error("the notification came for {got} but the attempt is {expected}")]
    WrongChannel { got: String, expected: String },
    #[error("amount {got} fen differs from the order's {expected} fen")]
    Amount { got: i64, expected: i64 },
    #[error("currency {0} is not the order's CNY")]
    Currency(String),
    #[error("the notification names another account ({0})")]
    ForeignAccount(String),
}

impl Mismatch {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Mismatch::UnknownTrade(_) => "unknown_trade",
            Mismatch::WrongChannel { .. } => "wrong_channel",
            Mismatch::Amount { .. } => "amount_mismatch",
            Mismatch::Currency(_) => "currency_mismatch",
            Mismatch::ForeignAccount(_) => "foreign_account",
        }
    }
}

/// Decides and applies a verified notification; the outcome picks the provider's reply.
pub async fn process(payments: &Payments, n: &VerifiedNotification) -> NotifyOutcome {
    match apply(payments, n).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(channel = %n.channel, out_trade_no = %n.out_trade_no, error = %e, "notification not processed; asking for redelivery");
            NotifyOutcome::RetryLater
        }
    }
}

async fn apply(
    payments: &Payments,
    n: &VerifiedNotification,
) -> Result<NotifyOutcome, PaymentError> {
    let Some(attempt) = payments.attempt(&n.out_trade_no).await? else {
        return Ok(refuse(
            payments,
            None,
            n,
            Mismatch::UnknownTrade(n.out_trade_no.clone()),
        )
        .await);
    };
    let order = orders::get(payments.db(), &attempt.order_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound(attempt.order_id.clone()))?;
    let identity = payments.providers().get(n.channel).map(|p| p.identity());
    let mismatch = if attempt.channel != n.channel {
        Some(Mismatch::WrongChannel {
            got: n.channel.to_string(),
            expected: attempt.channel.to_string(),
        })
    } else if n.amount != order.amount {
        Some(Mismatch::Amount {
            got: n.amount.fen(),
            expected: order.amount.fen(),
        })
    } else if n.currency != "CNY" {
        Some(Mismatch::Currency(n.currency.clone()))
    } else {
        match identity {
            None => Some(Mismatch::ForeignAccount(n.app_id.clone())),
            Some(id) if id.app_id != n.app_id => Some(Mismatch::ForeignAccount(n.app_id.clone())),
            Some(id)
                if id
                    .merchant_account
                    .as_ref()
                    .is_some_and(|m| *m != n.merchant_account) =>
            {
                Some(Mismatch::ForeignAccount(n.merchant_account.clone()))
            }
            Some(_) => None,
        }
    };
    if let Some(m) = mismatch {
        return Ok(refuse(payments, Some(&attempt.order_id), n, m).await);
    }
    if n.state != TradeState::Paid {
        orders::add_event(
            payments.db(),
            &attempt.order_id,
            "notification.not_paid",
            &serde_json::json!({
                "channel": n.channel,
                "out_trade_no": n.out_trade_no,
                "provider_state": n.provider_state,
                "notification_id": n.notification_id,
            }),
        )
        .await?;
        return Ok(NotifyOutcome::Accepted);
    }
    let recorded = payments
        .record_payment(
            &n.out_trade_no,
            n.provider_trade_no.as_deref(),
            serde_json::json!({
                "source": "notification",
                "provider_state": n.provider_state,
                "notification_id": n.notification_id,
            }),
        )
        .await?;
    tracing::info!(channel = %n.channel, out_trade_no = %n.out_trade_no, ?recorded, "payment notification accepted");
    if recorded == Recorded::Extra {
        tracing::warn!(order = %attempt.order_id, "a second payment arrived for a paid order");
    }
    Ok(NotifyOutcome::Accepted)
}

/// Records why a genuine notification was refused (in the order's timeline when there is an
/// order), counts it, and answers `Rejected`.
async fn refuse(
    payments: &Payments,
    order_id: Option<&str>,
    n: &VerifiedNotification,
    why: Mismatch,
) -> NotifyOutcome {
    tracing::warn!(channel = %n.channel, out_trade_no = %n.out_trade_no, reason = %why, "notification refused");
    ::metrics::counter!("notifications_rejected_total", "channel" => n.channel.as_str(), "reason" => why.label())
        .increment(1);
    if let Some(order_id) = order_id {
        let detail = serde_json::json!({
            "channel": n.channel,
            "out_trade_no": n.out_trade_no,
            "reason": why.to_string(),
            "notification_id": n.notification_id,
        });
        if let Err(e) = orders::add_event(
            payments.db(),
            order_id,
            &format!("risk.{}", why.label()),
            &detail,
        )
        .await
        {
            tracing::error!(error = %e, "cannot record the refused notification");
            return NotifyOutcome::RetryLater;
        }
    }
    NotifyOutcome::Rejected
}
