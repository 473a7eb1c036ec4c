//! The scanning phone (#18): where an aggregate code (`/q/<token>`) takes the phone that
//! scanned it, by its browser.
//!
//! - A wallet's own browser signs in silently (WeChat `snsapi_base`, Alipay `auth_base`)
//!   with a `state` we keep (random, bound to the code and the wallet, used once, 10 min),
//!   comes back with a one-time code, which names the payer; the order is made for that payer
//!   (WeChat JSAPI, Alipay `alipay.trade.create`) and the page pays through the wallet's JS
//!   bridge. The bridge's answer is a hint: the page turns paid from the order.
//! - A plain phone browser chooses a wallet and goes to its mobile cashier (Alipay WAP,
//!   WeChat H5) with our return page, which proves nothing: it shows the order and has the
//!   attempt asked about at once.
//! - A desktop browser keeps the QR code: the checkout page.
//!
//! Every failure before a payment is a [`PayProblem`] page in the customer's language.

use crate::checkout::Checkout;
use crate::orders::{self, Order};
use crate::payments::{Attempt, PayWay, PaymentError};
use crate::providers::{Channel, PayMethod, PaymentProvider, ProviderError};
use app::api::{AggregateAnswer, AggregateRequest, AggregateView, InAppView, PayProblem};
use app::channel::Browser;
use app::model::checkout::PayProblemKind;
use app::services::ServiceError;
use std::sync::Arc;

/// How long a sign-in's `state` is honoured.
const STATE_LIFETIME_MS: i64 = 10 * 60 * 1000;

fn internal(e: impl std::fmt::Display + 'static) -> ServiceError {
    crate::service_error::fault(e)
}

impl Checkout {
    /// Where the aggregate code sends the phone that made `req`.
    pub async fn aggregate(&self, req: AggregateRequest) -> Result<AggregateAnswer, ServiceError> {
        let token = req.token.as_str();
        let valid =
            (16..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Ok(AggregateAnswer::NotFound);
        }
        let Some(order) = orders::by_aggregate_token(self.db(), token)
            .await
            .map_err(internal)?
        else {
            return Ok(AggregateAnswer::NotFound);
        };
        let payable = order.is_payable(crate::infra::clock::now_ms());
        let problem = |kind| {
            Ok(AggregateAnswer::Problem(PayProblem {
                kind,
                token: token.to_string(),
            }))
        };
        if let Some(channel) = req.back {
            self.returned(&order, channel, &req.query).await?;
            return self.in_app(&order, token, None, true).await;
        }
        if let (Some(code), Some(state)) = (&req.code, &req.state) {
            // Paid (or ended) meanwhile, e.g. the page reloaded after paying: the receipt.
            if !payable {
                return self.in_app(&order, token, None, false).await;
            }
            let channel = match self.take_state(state, token).await? {
                Ok(channel) => channel,
                Err(kind) => return problem(kind),
            };
            return match self.pay_in_app(&order, channel, code).await? {
                Ok(attempt) => {
                    let call = self.call_of(&attempt).await?;
                    self.in_app(&order, token, call, false).await
                }
                Err(kind) => problem(kind),
            };
        }
        let channels = self.channels_of(&order).await?;
        match Browser::of_user_agent(&req.user_agent) {
            Browser::InApp(channel) if payable && channels.contains(&channel) => {
                let Some((_, client)) = self.client_for(&order, channel).await? else {
                    return self.page(order, token, payable).await;
                };
                if !client.signs_in() {
                    return problem(PayProblemKind::NotInThisApp);
                }
                let state = self.new_state(token, channel).await?;
                match client.authorize_url(&format!("{}/q/{token}", self.public_url), &state) {
                    Some(url) => Ok(AggregateAnswer::Redirect(url)),
                    // No sign-in for this account (WeChat without the AppSecret): the page
                    // says to scan the code from a screen.
                    None => problem(PayProblemKind::NotInThisApp),
                }
            }
            Browser::Mobile => match req.pay.filter(|c| payable && channels.contains(c)) {
                Some(channel) => {
                    let way = PayWay {
                        channel,
                        method: PayMethod::mobile_web(channel),
                        payer: None,
                        client_ip: req.client_ip.clone(),
                        return_url: Some(format!(
                            "{}/q/{token}?back={}",
                            self.public_url,
                            channel.as_str()
                        )),
                    };
                    match self.start.start_with(&order.id, &way).await {
                        Ok(Attempt {
                            code_url: Some(url),
                            ..
                        }) => Ok(AggregateAnswer::Redirect(url)),
                        Ok(_) | Err(PaymentError::NotPayable(_)) => {
                            self.page(order, token, payable).await
                        }
                        Err(e) => self.refused(&order, channel, e, token),
                    }
                }
                None => self.page(order, token, payable).await,
            },
            Browser::Desktop => match req.pay {
                Some(channel) => Ok(AggregateAnswer::Redirect(format!(
                    "/checkout/{}?wallet={}",
                    order.id,
                    channel.as_str()
                ))),
                None => self.page(order, token, payable).await,
            },
            Browser::InApp(_) => self.page(order, token, payable).await,
        }
    }

    async fn channels_of(&self, order: &Order) -> Result<Vec<Channel>, ServiceError> {
        self.payments
            .book()
            .channels_for(&order.merchant_id)
            .await
            .map_err(internal)
    }

    async fn client_for(
        &self,
        order: &Order,
        channel: Channel,
    ) -> Result<Option<(crate::credentials::Account, Arc<dyn PaymentProvider>)>, ServiceError> {
        self.payments
            .book()
            .for_merchant(&order.merchant_id, channel)
            .await
            .map_err(internal)
    }

    /// A new sign-in `state` for the code `token` and `channel`'s wallet.
    async fn new_state(&self, token: &str, channel: Channel) -> Result<String, ServiceError> {
        use rand::distributions::{Alphanumeric, DistString};
        let state = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let now = crate::infra::clock::now_ms();
        sqlx::query(
            "INSERT INTO pay_states (state, token, channel, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&state)
        .bind(token)
        .bind(channel.as_str())
        .bind(now)
        .execute(self.db().pool())
        .await
        .map_err(internal)?;
        // Forgotten a day after they were made.
        sqlx::query("DELETE FROM pay_states WHERE created_at < $1")
            .bind(now - 24 * 3600 * 1000)
            .execute(self.db().pool())
            .await
            .map_err(internal)?;
        Ok(state)
    }

    /// Uses up a sign-in `state` made for `token`: its wallet; `SignInUsed` when it was used
    /// already (a reload) or is too old, `SignInInvalid` when it is not one of ours for this
    /// code (made up, changed, or another order's).
    async fn take_state(
        &self,
        state: &str,
        token: &str,
    ) -> Result<Result<Channel, PayProblemKind>, ServiceError> {
        let now = crate::infra::clock::now_ms();
        let channel: Option<String> = sqlx::query_scalar(
            "UPDATE pay_states SET used_at = $1 \
             WHERE state = $2 AND token = $3 AND used_at IS NULL AND created_at > $4 \
             RETURNING channel",
        )
        .bind(now)
        .bind(state)
        .bind(token)
        .bind(now - STATE_LIFETIME_MS)
        .fetch_optional(self.db().pool())
        .await
        .map_err(internal)?;
        if let Some(channel) = channel.as_deref().and_then(Channel::parse) {
            return Ok(Ok(channel));
        }
        let known: Option<String> =
            sqlx::query_scalar("SELECT channel FROM pay_states WHERE state = $1 AND token = $2")
                .bind(state)
                .bind(token)
                .fetch_optional(self.db().pool())
                .await
                .map_err(internal)?;
        Ok(Err(match known {
            Some(_) => PayProblemKind::SignInUsed,
            None => PayProblemKind::SignInInvalid,
        }))
    }

    /// The payer behind the sign-in's `code`, then the order made for them.
    async fn pay_in_app(
        &self,
        order: &Order,
        channel: Channel,
        code: &str,
    ) -> Result<Result<Attempt, PayProblemKind>, ServiceError> {
        let Some((_, client)) = self.client_for(order, channel).await? else {
            return Ok(Err(PayProblemKind::Unavailable));
        };
        let payer = match client.payer_of_code(code).await {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(order = %order.id, %channel, error = %e, "wallet sign-in refused");
                return Ok(Err(match e {
                    ProviderError::Business { .. } => PayProblemKind::SignInUsed,
                    _ => PayProblemKind::Unavailable,
                }));
            }
        };
        let way = PayWay {
            channel,
            method: PayMethod::Jsapi,
            payer: Some(payer),
            client_ip: None,
            return_url: None,
        };
        match self.start.start_with(&order.id, &way).await {
            Ok(a) => Ok(Ok(a)),
            Err(PaymentError::NotPayable(_)) => Ok(Err(PayProblemKind::NotPayable)),
            Err(e) => match self.refused(order, channel, e, "")? {
                AggregateAnswer::Problem(p) => Ok(Err(p.kind)),
                _ => Ok(Err(PayProblemKind::Unavailable)),
            },
        }
    }

    /// A failed start as the customer is told it: the wallet refusing the payer (an
    /// `openid` of another app, a buyer it does not know) or the wallet being unavailable.
    fn refused(
        &self,
        order: &Order,
        channel: Channel,
        e: PaymentError,
        token: &str,
    ) -> Result<AggregateAnswer, ServiceError> {
        let kind = match &e {
            PaymentError::Db(_) | PaymentError::Injected(_) | PaymentError::Account(_) => {
                return Err(internal(e))
            }
            PaymentError::Provider {
                source:
                    ProviderError::Business {
                        code,
                        sub_code,
                        message,
                    },
                ..
            } if payer_refused(code, sub_code.as_deref(), message) => PayProblemKind::PayerRefused,
            PaymentError::NotPayable(_) => PayProblemKind::NotPayable,
            _ => PayProblemKind::Unavailable,
        };
        tracing::warn!(order = %order.id, %channel, error = %e, "no payment started for a phone");
        Ok(AggregateAnswer::Problem(PayProblem {
            kind,
            token: token.to_string(),
        }))
    }

    /// The wallet's in-page call for a jsapi attempt, signed now.
    async fn call_of(
        &self,
        attempt: &Attempt,
    ) -> Result<Option<app::api::WalletCall>, ServiceError> {
        let (Some(code), PayMethod::Jsapi) = (&attempt.code_url, attempt.method) else {
            return Ok(None);
        };
        let Some(client) = self.payments.client_of(attempt).await.map_err(internal)? else {
            return Ok(None);
        };
        client.wallet_call(code).map(Some).map_err(internal)
    }

    /// Back from a cashier. Alipay's return is signed: verified, it names the attempt to ask
    /// about at once (a forged or foreign one is only logged). WeChat's names nothing: the
    /// order's live attempt is asked about. Never a payment by itself.
    async fn returned(
        &self,
        order: &Order,
        channel: Channel,
        query: &[(String, String)],
    ) -> Result<(), ServiceError> {
        let attempts = self.payments.attempts(&order.id).await.map_err(internal)?;
        let named = match channel {
            Channel::Alipay => {
                let claimed = query.iter().find(|(k, _)| k == "out_trade_no");
                let attempt = claimed
                    .and_then(|(_, no)| attempts.iter().find(|a| a.out_trade_no == *no.as_str()));
                match attempt {
                    Some(a) => match self.payments.client_of(a).await.map_err(internal)? {
                        Some(client) => match client.verify_return(query) {
                            Ok(no) if no == a.out_trade_no => Some(a),
                            other => {
                                tracing::warn!(order = %order.id, verdict = ?other.err(), "a cashier return that does not verify");
                                None
                            }
                        },
                        None => None,
                    },
                    None => None,
                }
            }
            Channel::Wechat => attempts
                .iter()
                .rev()
                .find(|a| a.channel == Channel::Wechat && a.method == PayMethod::H5),
        };
        if let Some(a) = named {
            self.payments
                .ask_soon(&a.out_trade_no)
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    async fn in_app(
        &self,
        order: &Order,
        token: &str,
        call: Option<app::api::WalletCall>,
        returned: bool,
    ) -> Result<AggregateAnswer, ServiceError> {
        // Read again: starting a payment moved the order to pending.
        let order = orders::get(self.db(), &order.id)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("the order is gone"))?;
        let (merchant_name, logo_url) = self.shop_of(&order.merchant_id).await?;
        Ok(AggregateAnswer::InApp(InAppView {
            token: token.to_string(),
            order_id: order.id.as_str().to_string(),
            merchant_name,
            logo_url,
            subject: order.subject,
            amount: order.amount,
            status: order.status,
            bridge_script: self.bridge_script.clone().filter(|_| call.is_some()),
            call,
            returned,
        }))
    }

    async fn page(
        &self,
        order: Order,
        token: &str,
        payable: bool,
    ) -> Result<AggregateAnswer, ServiceError> {
        let (merchant_name, logo_url) = self.shop_of(&order.merchant_id).await?;
        Ok(AggregateAnswer::Page(AggregateView {
            token: token.to_string(),
            order_id: order.id.as_str().to_string(),
            merchant_name,
            logo_url,
            channels: self.channels_of(&order).await?,
            subject: order.subject,
            amount: order.amount,
            status: order.status,
            payable,
        }))
    }
}

/// The answers that mean the wallet does not accept who is paying: WeChat's `PARAM_ERROR`
/// "appid和openid不匹配" (an openid of another app), Alipay's buyer it does not know (often a
/// `user_id` sent where the app gets `open_id`s, or the reverse).
fn payer_refused(code: &str, sub_code: Option<&str>, message: &str) -> bool {
    (code == "PARAM_ERROR" && message.contains("openid"))
        || matches!(
            sub_code,
            Some("ACQ.BUYER_NOT_EXIST" | "ACQ.INVALID_BUYER" | "isv.invalid-buyer-open-id")
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_refusals_of_the_payer_are_told_as_such() {
        assert!(super::payer_refused(
            "PARAM_ERROR",
            None,
            "appid和openid不匹配"
        ));
        assert!(super::payer_refused(
            "40004",
            Some("ACQ.BUYER_NOT_EXIST"),
            "买家不存在"
        ));
        assert!(!super::payer_refused(
            "PARAM_ERROR",
            None,
            "amount.total 须为整数"
        ));
        assert!(!super::payer_refused("40004", Some("ACQ.SYSTEM_ERROR"), ""));
        assert!(!super::payer_refused("SYSTEMERROR", None, "openid"));
    }
}
