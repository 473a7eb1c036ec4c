//! What the customer pages show: the checkout of an order, the aggregate code's answer, and
//! the QR codes, drawn here on the server so the browser bundle carries no QR encoder.

use crate::infra::db::Db;
use crate::merchants;
use crate::merchants::MerchantId;
use crate::orders::{self, NewOrder, Order, OrderError, OrderId, OrderStatus};
use crate::payments::{AttemptStatus, PaymentError, Payments, StartPayment};
use app::api::{CheckoutView, Choice, CodeProblem, PayCode};
use app::channel::Channel;
use app::services::ServiceError;
use std::sync::Arc;

/// The customer-facing flows of one node.
#[derive(Clone)]
pub struct Checkout {
    pub payments: Payments,
    /// Module 2's entry point: this node's [`Payments`] today, the cluster's selector later.
    pub start: Arc<dyn StartPayment>,
    /// `http(s)://host[:port]` without a trailing slash: aggregate-code links are built on it.
    pub public_url: String,
    /// Demo posture: the sandbox's stand-in for the wallets' JS bridges, put on the in-app
    /// payment page (the real bridges exist only inside the wallets). `None` when live.
    pub bridge_script: Option<String>,
}

fn internal(e: impl std::fmt::Display + 'static) -> ServiceError {
    crate::service_error::fault(e)
}

impl Checkout {
    pub(crate) fn db(&self) -> &Db {
        self.payments.db()
    }

    /// The link in an order's aggregate code.
    pub fn aggregate_url(&self, order: &Order) -> Option<String> {
        order
            .aggregate_token
            .as_ref()
            .map(|t| format!("{}/q/{t}", self.public_url))
    }

    pub async fn view(
        &self,
        order_id: &OrderId,
        choice: Option<Choice>,
    ) -> Result<Option<CheckoutView>, ServiceError> {
        let Some(order) = orders::get(self.db(), order_id).await.map_err(internal)? else {
            return Ok(None);
        };
        let mut code = None;
        let mut problem = None;
        if order.is_payable(crate::infra::clock::now_ms()) {
            let choice = match choice {
                Some(c) => c,
                None => match self
                    .payments
                    .live_attempt(order_id)
                    .await
                    .map_err(internal)?
                {
                    Some(a) if a.status == AttemptStatus::Open => Choice::Wallet(a.channel),
                    _ => Choice::Any,
                },
            };
            match choice {
                Choice::Any => {
                    code = self.aggregate_url(&order).map(|url| PayCode {
                        choice,
                        svg: qr_svg(&url),
                        url,
                        renew_at: None,
                    })
                }
                Choice::Wallet(channel) => {
                    match self.start.start_payment(order_id, channel).await {
                        Ok(attempt) => {
                            // Renewed by the open page before the provider's code dies, when
                            // that comes before the order's end.
                            let renew_at = attempt.code_dies_at()
                                - crate::payments::CODE_RENEW_BEFORE.as_millis() as i64;
                            let renew_at =
                                (attempt.code_dies_at() < order.expires_at).then_some(renew_at);
                            code = attempt.code_url.map(|url| PayCode {
                                choice,
                                svg: qr_svg(&url),
                                url,
                                renew_at,
                            })
                        }
                        Err(PaymentError::ChannelDisabled(c)) => {
                            problem = Some(CodeProblem::Disabled(c))
                        }
                        Err(PaymentError::Provider { channel, .. }) => {
                            problem = Some(CodeProblem::Unavailable(channel))
                        }
                        Err(PaymentError::Busy) => problem = Some(CodeProblem::Busy),
                        // Paid or expired meanwhile: the view below shows it.
                        Err(PaymentError::NotPayable(_)) => {}
                        Err(PaymentError::NotFound(_)) => return Ok(None),
                        Err(
                            e @ (PaymentError::Db(_)
                            | PaymentError::Injected(_)
                            | PaymentError::Account(_)),
                        ) => return Err(internal(e)),
                    }
                }
            }
        }
        // Read again: starting a payment moves the order to pending, or it changed meanwhile.
        let Some(order) = orders::get(self.db(), order_id).await.map_err(internal)? else {
            return Ok(None);
        };
        if !order.is_payable(crate::infra::clock::now_ms()) {
            code = None;
        }
        let (merchant_name, logo_url) = self.shop_of(&order.merchant_id).await?;
        Ok(Some(CheckoutView {
            order_id: order.id.as_str().to_string(),
            merchant_name,
            logo_url,
            subject: order.subject,
            amount: order.amount,
            status: order.status,
            late: order.late,
            expires_at: order.expires_at,
            server_now: crate::infra::clock::now_ms(),
            paid_at: order.paid_at,
            paid_channel: order.paid_channel,
            channels: self.channels_for(&order.merchant_id).await?,
            return_url: order.return_url,
            code,
            problem,
        }))
    }

    /// A shop as its customers' pages show it: its name and logo.
    pub(crate) async fn shop_of(
        &self,
        merchant: &MerchantId,
    ) -> Result<(String, Option<String>), ServiceError> {
        Ok(merchants::get(self.db(), merchant)
            .await
            .map_err(internal)?
            .map(|m| (m.name, m.logo_url))
            .unwrap_or_default())
    }

    /// The wallets a merchant's orders can be paid with: its own accounts, else the
    /// operator's where that may take them.
    async fn channels_for(&self, merchant: &MerchantId) -> Result<Vec<Channel>, ServiceError> {
        self.payments
            .book()
            .channels_for(merchant)
            .await
            .map_err(internal)
    }

    /// A new order like an expired one: same shop, amount, subject, return link and lifetime.
    /// One per expired order: asking again answers the same new order, so anyone holding a
    /// checkout link cannot make orders without end (the new one can be renewed in turn once
    /// it has expired).
    pub async fn renew(&self, order_id: &OrderId) -> Result<String, ServiceError> {
        let refused = || ServiceError::Invalid("This payment cannot be renewed.".into());
        let old = orders::get(self.db(), order_id)
            .await
            .map_err(internal)?
            .ok_or_else(refused)?;
        if old.status != OrderStatus::Expired {
            return Err(refused());
        }
        let renewed = orders::events(self.db(), order_id)
            .await
            .map_err(internal)?
            .into_iter()
            .find(|(_, kind, _)| kind == "order.renewed")
            .and_then(|(_, _, detail)| detail["new_order_id"].as_str().map(str::to_string));
        if let Some(new_id) = renewed {
            return Ok(new_id);
        }
        let lifetime = ((old.expires_at - old.created_at) / 1000)
            .clamp(orders::MIN_EXPIRY_SECS, orders::MAX_EXPIRY_SECS);
        let new = self
            .payments
            .create_order(
                &NewOrder {
                    merchant_id: old.merchant_id.clone(),
                    amount: old.amount,
                    subject: old.subject.clone(),
                    expires_in_secs: lifetime,
                    return_url: old.return_url.clone(),
                },
                None,
            )
            .await
            .map_err(internal)?;
        orders::add_event(
            self.db(),
            order_id,
            "order.renewed",
            &serde_json::json!({ "new_order_id": new.id.as_str() }),
        )
        .await
        .map_err(internal)?;
        Ok(new.id.as_str().to_string())
    }
}

/// An order typed in by a person: the demo shop's form on `/` (for the demo merchant) or the
/// board's counter form (for the signed-in merchant). Errors name the form's field.
pub async fn create_counter_order(
    payments: &Payments,
    merchant_id: &MerchantId,
    amount: app::money::Amount,
    subject: String,
    expires_in_secs: i64,
) -> Result<String, ServiceError> {
    let order = payments
        .create_order(
            &NewOrder {
                merchant_id: merchant_id.clone(),
                amount,
                subject,
                expires_in_secs,
                return_url: None,
            },
            None,
        )
        .await
        .map_err(|e| match e {
            OrderError::ZeroAmount => ServiceError::Invalid("Amount: at least 0.01 yuan.".into()),
            OrderError::Subject => ServiceError::Invalid("Subject: 1 to 127 characters.".into()),
            OrderError::Expiry => ServiceError::Invalid(format!(
                "Valid for: {} to {} seconds.",
                orders::MIN_EXPIRY_SECS,
                orders::MAX_EXPIRY_SECS
            )),
            other => internal(other),
        })?;
    Ok(order.id.as_str().to_string())
}

/// An SVG QR code of `data`: medium error correction, a quiet zone, a `viewBox` so it scales
/// crisply to any size, and no XML declaration (it is inlined into HTML).
pub fn qr_svg(data: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            match svg.find("<svg") {
                Some(start) => svg[start..].to_string(),
                None => svg,
            }
        }
        // Only data beyond a QR code's capacity (~2 KB) fails; code URLs are far shorter.
        Err(e) => {
            tracing::error!(error = %e, len = data.len(), "cannot draw a QR code");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_codes_are_inline_svg_that_scales() {
        let svg = super::qr_svg("https://qr.alipay.com/bax03431ljhokirwl38f00a7");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("viewBox"));
        assert!(svg.contains("crispEdges"));
        assert_ne!(super::qr_svg("a"), super::qr_svg("b"));
    }
}
