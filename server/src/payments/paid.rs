//! The one check every provider answer that says "paid" passes before it can pay an order:
//! a notification, an active query, the query after a refused close (switch, merchant close,
//! expiry). It must be about this attempt (channel and our trade number), for the order's
//! amount in CNY, and — where the answer names them — addressed to our account. An answer
//! that fails is refused and kept as a risk event; it never pays.

use super::Attempt;
use crate::orders::Order;
use crate::providers::{Channel, OutTradeNo, ProviderIdentity};
use crate::risk::RiskKind;
use app::money::Amount;

/// Why an answer that says "paid" is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("no payment attempt is called {0}")]
    UnknownOrder(String),
    #[error("the notification came for {got} but the attempt is {expected}")]
    WrongChannel { got: String, expected: String },
    #[error("the answer is about trade {got}, not {expected}")]
    AnotherTrade { got: String, expected: String },
    #[error("amount {got} fen differs from the order's {expected} fen")]
    Amount { got: i64, expected: i64 },
    #[error("the answer says paid but names no amount")]
    NoAmount,
    #[error("currency {0} is not the order's CNY")]
    Currency(String),
    #[error("the notification names another account ({0})")]
    ForeignAccount(String),
    #[error("nonce {0} was already used by a different notification")]
    Replay(String),
    /// Verified with one account's keys about an attempt made through another (merchant A's
    /// keys, merchant B's order).
    #[error("the notification came signed by {got}, but the attempt was made through {expected}")]
    OtherAccount { got: String, expected: String },
}

impl Mismatch {
    /// The risk event it is recorded as (and its metrics label).
    pub fn kind(&self) -> RiskKind {
        match self {
            Mismatch::UnknownOrder(_) => RiskKind::UnknownOrder,
            Mismatch::WrongChannel { .. } => RiskKind::WrongChannel,
            Mismatch::AnotherTrade { .. } => RiskKind::AnotherTrade,
            Mismatch::Amount { .. } | Mismatch::NoAmount => RiskKind::AmountMismatch,
            Mismatch::Currency(_) => RiskKind::CurrencyMismatch,
            Mismatch::ForeignAccount(_) | Mismatch::OtherAccount { .. } => RiskKind::ForeignAccount,
            Mismatch::Replay(_) => RiskKind::Replay,
        }
    }
}

/// What a provider answer claims about a trade it says is paid.
#[derive(Clone, Debug)]
pub struct PaidAnswer<'a> {
    pub channel: Channel,
    /// Our trade number as the answer names it.
    pub out_trade_no: &'a OutTradeNo,
    pub amount: Option<Amount>,
    /// `None` where the answer has no currency field (queries: CNY by the API's definition).
    pub currency: Option<&'a str>,
    /// Alipay `app_id` / WeChat `appid`, where the answer names it.
    pub app_id: Option<&'a str>,
    /// Alipay `seller_id` / WeChat `mchid`, where the answer names it.
    pub merchant_account: Option<&'a str>,
}

/// The check; `identity` is who we are at the attempt's provider (`None`: not configured).
pub fn check(
    attempt: &Attempt,
    order: &Order,
    identity: Option<&ProviderIdentity>,
    answer: &PaidAnswer<'_>,
) -> Result<(), Mismatch> {
    if attempt.channel != answer.channel {
        return Err(Mismatch::WrongChannel {
            got: answer.channel.to_string(),
            expected: attempt.channel.to_string(),
        });
    }
    if *answer.out_trade_no != attempt.out_trade_no {
        return Err(Mismatch::AnotherTrade {
            got: answer.out_trade_no.to_string(),
            expected: attempt.out_trade_no.to_string(),
        });
    }
    match answer.amount {
        None => return Err(Mismatch::NoAmount),
        Some(a) if a != order.amount => {
            return Err(Mismatch::Amount {
                got: a.fen(),
                expected: order.amount.fen(),
            })
        }
        Some(_) => {}
    }
    if let Some(c) = answer.currency.filter(|c| *c != "CNY") {
        return Err(Mismatch::Currency(c.to_string()));
    }
    let Some(id) = identity else {
        return Err(Mismatch::ForeignAccount(
            answer.app_id.unwrap_or("?").to_string(),
        ));
    };
    if let Some(app) = answer.app_id.filter(|a| *a != id.app_id) {
        return Err(Mismatch::ForeignAccount(app.to_string()));
    }
    if let (Some(ours), Some(named)) = (&id.merchant_account, answer.merchant_account) {
        if ours != named {
            return Err(Mismatch::ForeignAccount(named.to_string()));
        }
    }
    Ok(())
}
