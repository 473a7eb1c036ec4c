//! A change made on the board: close, refund, abnormal-refund actions.

use super::{internal, invalid};
use crate::ids::{OrderId, OutTradeNo};
use crate::merchants::MerchantId;
use crate::payments::refunds::{self, RefundError};
use crate::payments::{CloseError, PaymentError, Payments};
use crate::webhooks::{WebhookError, Webhooks};
use app::merchant::Change;
use app::money::Amount;
use app::services::ServiceError;

/// A change made on the board; a sentence for the person (a new order: its id).
pub async fn change(
    payments: &Payments,
    webhooks: &Webhooks,
    merchant_id: &MerchantId,
    default_expiry_secs: i64,
    action: Change,
) -> Result<String, ServiceError> {
    // The board names orders as text; one that cannot be an id of ours does not exist.
    let order = |id: &str| {
        OrderId::parse(id).ok_or_else(|| invalid(format!("Refund: the order {id} does not exist.")))
    };
    match action {
        Change::Refund {
            order_id,
            amount,
            reason,
        } => {
            let amount = Amount::parse_yuan(amount.trim())
                .map_err(|e| invalid(format!("Refund amount: {e}")))?;
            let order_id = order(&order_id)?;
            let refund = refunds::request(
                payments,
                merchant_id,
                &order_id,
                amount,
                Some(reason.as_str()),
            )
            .await
            .map_err(|e| match e {
                RefundError::Db(e) => internal(e),
                RefundError::Zero => invalid("Refund amount: at least 0.01 yuan."),
                RefundError::TooMuch { available } => invalid(format!(
                    "Refund amount: at most {} can still be refunded.",
                    Amount::from_fen(available).unwrap_or(Amount::ZERO)
                )),
                other => invalid(format!("Refund: {other}.")),
            })?;
            Ok(format!(
                "Refund {} of {}: {}.",
                refund.id,
                refund.amount,
                refund.status.as_str()
            ))
        }
        Change::Close { order_id } => {
            let Some(order_id) = OrderId::parse(&order_id) else {
                return Err(invalid(format!("No order {order_id}.")));
            };
            match payments
                .close_for_merchant(merchant_id, &order_id, "board")
                .await
            {
                Ok(_) => Ok("The order is closed.".into()),
                Err(CloseError::NotFound(_)) => Err(invalid(format!("No order {order_id}."))),
                Err(e @ CloseError::NotClosable(_)) => Err(invalid(format!("{e}."))),
                Err(CloseError::Payment(PaymentError::Provider { channel, source })) => {
                    Err(invalid(format!(
                        "{channel} could not close the code ({source}); nothing changed, try again."
                    )))
                }
                Err(CloseError::Payment(PaymentError::Busy)) => Err(invalid(
                    "A code for this order is being created; try again in a moment.",
                )),
                Err(CloseError::Payment(e)) => Err(internal(e)),
            }
        }
        Change::Redeliver { event_id } => match webhooks.redeliver(merchant_id, &event_id).await {
            Ok(true) => Ok("Delivered.".into()),
            Ok(false) => Ok("Sent; the endpoint did not answer 2xx (see the log).".into()),
            Err(WebhookError::NoEndpoint) => {
                Err(invalid("No webhook endpoint is set (scanpay webhook set)."))
            }
            Err(WebhookError::NoEvent(_)) => Err(invalid(format!("No event {event_id}."))),
            Err(e) => Err(internal(e)),
        },
        Change::RefundExtraPayment {
            order_id,
            out_trade_no,
        } => {
            let order_id = order(&order_id)?;
            match refunds::refund_extra_payment(
                payments,
                merchant_id,
                &order_id,
                &OutTradeNo::new(out_trade_no),
                Some("second payment"),
            )
            .await
            {
                Ok(r) => Ok(format!(
                    "Refund {} of the second payment ({}): {}.",
                    r.id,
                    r.amount,
                    r.status.as_str()
                )),
                Err(RefundError::Db(e)) => Err(internal(e)),
                Err(RefundError::TooMuch { .. }) => {
                    Err(invalid("That payment is refunded already."))
                }
                Err(other) => Err(invalid(format!("Refund: {other}."))),
            }
        }
        Change::RefundToBankCard { refund_id } => {
            match refunds::retry_abnormal(payments, merchant_id, &refund_id).await {
                Ok(r) => Ok(format!(
                    "Refund {} is on its way to your bank card: {}.",
                    r.id,
                    r.status.as_str()
                )),
                Err(RefundError::Db(e)) => Err(internal(e)),
                Err(RefundError::NotFound(_)) => Err(invalid(format!("No refund {refund_id}."))),
                Err(other) => Err(invalid(format!("{other}."))),
            }
        }
        Change::NewOrder { amount, subject } => {
            let amount =
                Amount::parse_yuan(amount.trim()).map_err(|e| invalid(format!("Amount: {e}")))?;
            crate::checkout::create_counter_order(
                payments,
                merchant_id,
                amount,
                subject.trim().to_string(),
                default_expiry_secs,
            )
            .await
        }
    }
}
