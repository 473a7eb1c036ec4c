//! Attempts: one trade at one provider for an order, its code's lifetime, and reading them.

use super::*;
use crate::credentials::Account;
use crate::merchants::MerchantId;
use crate::orders::OrderId;
use crate::providers::{Channel, OutTradeNo, PayMethod, Payer};
use sqlx::Row;
use std::time::Duration;

/// What an attempt is doing (shared with the board).
pub use app::status::AttemptStatus;

/// One trade at one provider for an order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub out_trade_no: OutTradeNo,
    pub order_id: OrderId,
    pub seq: i64,
    pub channel: Channel,
    pub status: AttemptStatus,
    pub code_url: Option<String>,
    pub provider_trade_no: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    /// The last moment its code can be paid at the provider (Unix ms): the order's expiry,
    /// or [`CODE_LIFETIME`] after it was made, whichever comes first.
    #[serde(default)]
    pub payable_until: Option<i64>,
    /// The merchant whose own provider account it was made through; `None`: the operator's.
    #[serde(default)]
    pub account: Option<MerchantId>,
    /// How it is paid; attempts made before methods were recorded are native.
    #[serde(default)]
    pub method: PayMethod,
    /// Who pays a jsapi attempt, as the wallet named them.
    #[serde(default)]
    pub payer: Option<Payer>,
    /// When the code it hands out now was issued (`None`: when it was made); a WeChat code
    /// renewed by the same-parameters re-call has a later one.
    #[serde(default)]
    pub code_at: Option<i64>,
}

/// How long a provider's code can be paid: two hours at both providers (Alipay precreate's
/// `qr_code`, WeChat Native's `code_url`), whatever the order's own time.
pub const CODE_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// How long a cashier link is handed out again: WeChat's H5 link works 5 minutes, and an
/// Alipay WAP link is signed with the time it was made; after this a fresh attempt is made
/// rather than handing out a dead or stale link.
pub const H5_LINK_LIFETIME: Duration = Duration::from_secs(4 * 60);
/// A code with less than this left is not handed out again: a fresh attempt is opened (and
/// an open checkout renews its code this long before it dies).
pub const CODE_RENEW_BEFORE: Duration = Duration::from_secs(10 * 60);

impl Attempt {
    /// When its code stops working at the provider (attempts made before this was recorded:
    /// [`CODE_LIFETIME`] after they were made).
    pub fn code_dies_at(&self) -> i64 {
        let issued = self.code_at.unwrap_or(self.created_at) + CODE_LIFETIME.as_millis() as i64;
        self.payable_until.map_or(issued, |until| until.min(issued))
    }

    /// Whether its code is renewed by repeating the order call with the same parameters
    /// (WeChat Native and JSAPI: the same trade, a fresh code; providers.md part two §2.9),
    /// rather than by a new attempt with its own trade number (Alipay: §1.10).
    pub fn renews_in_place(&self) -> bool {
        renews_in_place(self.channel, self.method)
    }

    /// The provider account it was made through (and is queried, closed and refunded
    /// through; its notifications must come signed by it).
    pub fn account(&self) -> Account {
        match &self.account {
            None => Account::Operator,
            Some(m) => Account::Merchant(m.clone()),
        }
    }

    /// Whether its code still has long enough to live to be shown to a customer.
    pub fn code_is_fresh(&self, now: i64) -> bool {
        now + (CODE_RENEW_BEFORE.as_millis() as i64) < self.code_dies_at()
    }
}

/// [`Attempt::renews_in_place`] for a wallet and method.
pub fn renews_in_place(channel: Channel, method: PayMethod) -> bool {
    channel == Channel::Wechat && matches!(method, PayMethod::Native | PayMethod::Jsapi)
}

impl Payments {
    /// The attempts matching `condition` (an SQL condition on `$1`), in `seq` order.
    pub(super) async fn attempts_where(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Vec<Attempt>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM payment_attempts WHERE {condition} ORDER BY seq"
        ))
        .bind(value)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// The order's live attempt (`opening` or `open`), if any (the unique index allows one).
    pub async fn live_attempt(&self, order_id: &OrderId) -> Result<Option<Attempt>, sqlx::Error> {
        let mut live = self
            .attempts_where(
                "order_id = $1 AND status IN ('opening', 'open')",
                order_id.as_str(),
            )
            .await?;
        Ok(live.pop())
    }

    /// Every attempt of an order, oldest first.
    pub async fn attempts(&self, order_id: &OrderId) -> Result<Vec<Attempt>, sqlx::Error> {
        self.attempts_where("order_id = $1", order_id.as_str())
            .await
    }

    pub async fn attempt(&self, out_trade_no: &OutTradeNo) -> Result<Option<Attempt>, sqlx::Error> {
        Ok(self
            .attempts_where("out_trade_no = $1", out_trade_no.as_str())
            .await?
            .pop())
    }
}

/// The provider trade number of an order's `seq`-th attempt.
pub fn trade_no(order_id: &OrderId, seq: i64) -> OutTradeNo {
    if seq == 1 {
        OutTradeNo::new(order_id.as_str())
    } else {
        OutTradeNo::new(format!("{order_id}_{seq}"))
    }
}

const ATTEMPT_COLUMNS: &str =
    "out_trade_no, order_id, seq, channel, status, code_url, provider_trade_no, error, created_at, closed_at, \
     payable_until, account, method, payer, code_at";

fn attempt_from_row(r: &sqlx::any::AnyRow) -> Result<Attempt, sqlx::Error> {
    let corrupt = |what: &str| {
        sqlx::Error::Decode(format!("payment_attempts.{what} holds an impossible value").into())
    };
    Ok(Attempt {
        out_trade_no: r.try_get("out_trade_no")?,
        order_id: r.try_get("order_id")?,
        seq: r.try_get("seq")?,
        channel: Channel::parse(&r.try_get::<String, _>("channel")?)
            .ok_or_else(|| corrupt("channel"))?,
        status: AttemptStatus::parse(&r.try_get::<String, _>("status")?)
            .ok_or_else(|| corrupt("status"))?,
        code_url: r.try_get("code_url")?,
        provider_trade_no: r.try_get("provider_trade_no")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        closed_at: r.try_get("closed_at")?,
        payable_until: r.try_get("payable_until")?,
        account: r.try_get("account")?,
        method: PayMethod::parse(&r.try_get::<String, _>("method")?)
            .ok_or_else(|| corrupt("method"))?,
        payer: match r.try_get::<Option<String>, _>("payer")? {
            Some(p) => Some(Payer::parse(&p).ok_or_else(|| corrupt("payer"))?),
            None => None,
        },
        code_at: r.try_get("code_at")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn attempt_trade_numbers_fit_both_providers() {
        let id = crate::orders::OrderId::parse("20261127093000abcdefABCDEF").expect("an id");
        assert_eq!(super::trade_no(&id, 1), id.as_str());
        let later = super::trade_no(&id, 99_999);
        assert!(later.as_str().len() <= 32, "{later}");
        assert!(crate::orders::OrderId::parse(later.as_str()).is_some());
    }
}
