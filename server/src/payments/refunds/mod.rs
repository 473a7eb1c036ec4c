//! Refunds, full or partial, through the provider that took the payment.
//!
//! 1. *Admitted* in one transaction: a conditional `UPDATE orders` reserves the amount in
//!    `refund_pending` only while `refunded_amount + refund_pending + amount <= amount` and
//!    the order is paid or partially refunded, and the `pending` refund row is written. So
//!    concurrent refunds can never add up to more than was paid.
//!    The refund is saved due and leased to the request: from then on the worker owns it. If
//!    the request dies (crash, hang-up, database fault), the worker asks once the lease ends.
//! 2. *Asked* of the provider with the refund id as its idempotency key (Alipay
//!    `out_request_no`, WeChat `out_refund_no`): asking again can never refund twice. Once
//!    the provider has accepted it, the refund query is asked instead (Alipay
//!    `alipay.trade.fastpay.refund.query`, WeChat `GET /v3/refund/domestic/refunds/{no}`);
//!    when the query knows no such refund, the refund request is sent again.
//! 3. *Settled* only on a definitive answer, in one transaction: `succeeded` (Alipay
//!    `fund_change=Y` or `REFUND_SUCCESS`, WeChat `SUCCESS`: money moves from
//!    `refund_pending` to `refunded_amount`, the order becomes `partially_refunded` or
//!    `refunded`) or `failed` (WeChat `CLOSED`, or a refusal both providers document as
//!    definitive: the reservation is released); a timeline event and an outbox event
//!    (`refund.succeeded` / `refund.failed`) go with it. Anything else (a timeout, a 5xx,
//!    `SYSTEM_ERROR`, an answer cut off or unverifiable, an unknown code, `fund_change=N`,
//!    `PROCESSING`) leaves it `pending`, asked again with backoff (claiming rows with a
//!    lease, safe on several nodes): the provider may have refunded, so it is never failed.
//! 4. WeChat `ABNORMAL` is `abnormal`: the amount stays reserved, the merchant is told what
//!    to do, and [`retry_abnormal`] sends the money to the merchant's bank card instead,
//!    after which the refund is pending again. WeChat's refund notifications
//!    ([`apply_notice`]) settle a refund the same way, never moving it backwards.
//!
//! The rooms: this file holds the refund, its states and its reads; `request.rs` admits a
//! refund (step 1) and asks for it the first time; `settle.rs` asks again, settles (steps 2
//! to 4), applies notifications and runs the worker.

mod request;
mod settle;

pub use request::{refund_extra_payment, request};
pub use settle::{apply_notice, retry_abnormal, run_once, spawn};

use crate::merchants::MerchantId;
use crate::orders::{self, OrderId, OrderStatus};
use crate::payments::Payments;
pub use crate::providers::RefundStatus as ProviderRefundStatus;
use crate::providers::{Channel, OutTradeNo, ProviderError, RefundRequest, RefundState};
use app::money::Amount;
use sqlx::Row;
use std::time::Duration;

/// How often the worker looks for refunds to ask about again.
pub const TICK: Duration = Duration::from_secs(1);
/// The first wait before asking again; it doubles up to [`MAX_WAIT_MS`].
const FIRST_WAIT_MS: i64 = 10_000;
const MAX_WAIT_MS: i64 = 600_000;
const LEASE_MS: i64 = 60_000;
const BATCH: i64 = 20;
/// Pending refunds due to be asked about again that no worker holds.
const CLAIM: crate::workers::Claim = crate::workers::Claim {
    table: "refunds",
    key: "id",
    due: "status = 'pending' AND next_try_at <= $2 \
          AND (claimed_until IS NULL OR claimed_until <= $2)",
    order_by: "next_try_at",
    set: "claimed_until = $1",
    returning: "id",
};
/// The longest reason a provider accepts (Alipay 256, WeChat 80 characters).
pub const MAX_REASON_CHARS: usize = 80;

/// Where a refund stands (shared with the board).
pub use app::status::RefundStatus;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub order_id: OrderId,
    pub merchant_id: MerchantId,
    pub out_trade_no: OutTradeNo,
    pub channel: Channel,
    pub amount: Amount,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub provider_refund_no: Option<String>,
    /// The provider's own last word about it (`fund_change=N`, `PROCESSING`, `ABNORMAL`…).
    pub provider_state: Option<String>,
    pub error: Option<String>,
    /// It returns a second payment (the trade `out_trade_no`), not the order's.
    pub extra: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// Also for another merchant's order: its existence is not revealed.
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("an order that is {0} cannot be refunded")]
    NotRefundable(OrderStatus),
    #[error("at most {available} fen can still be refunded")]
    TooMuch { available: i64 },
    #[error("the reason must be at most {MAX_REASON_CHARS} characters")]
    Reason,
    #[error("a refund is at least 0.01 yuan")]
    Zero,
    #[error("{0} is not enabled on this server")]
    ChannelDisabled(Channel),
    /// Only an abnormal refund can be sent to the merchant's bank card.
    #[error("the refund {0} is not abnormal")]
    NotAbnormal(String),
    #[error("the provider did not take it: {0}")]
    Provider(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The merchant's own account cannot be opened (no or the wrong master key).
    #[error(transparent)]
    Account(#[from] crate::credentials::CredentialsError),
}

/// The account the trade `out_trade_no` was paid through and its client: refunds go back
/// through the account that took the money.
pub(crate) async fn client_for_trade(
    payments: &Payments,
    out_trade_no: &OutTradeNo,
    channel: Channel,
) -> Result<
    (
        crate::credentials::Account,
        std::sync::Arc<dyn crate::providers::PaymentProvider>,
    ),
    RefundError,
> {
    let account = payments
        .attempt(out_trade_no)
        .await?
        .map(|a| a.account())
        .ok_or(RefundError::ChannelDisabled(channel))?;
    let client = payments
        .book()
        .client(&account, channel)
        .await?
        .ok_or(RefundError::ChannelDisabled(channel))?;
    Ok((account, client))
}

const COLUMNS: &str = "id, order_id, merchant_id, out_trade_no, channel, amount, reason, status, \
                       provider_refund_no, provider_state, error, extra, created_at, updated_at";

/// What the merchant is told to do about an abnormal refund.
pub const ABNORMAL_ADVICE: &str = "WeChat could not return the money to the buyer's original \
    account (a cancelled or frozen card). Send it to your bank card with \"Refund to bank card\", \
    or handle it in the WeChat Pay merchant platform (交易中心 → 退款管理).";

pub async fn get(payments: &Payments, id: &str) -> Result<Option<Refund>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM refunds WHERE id = $1"))
        .bind(id)
        .fetch_optional(payments.db().pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A merchant's refunds of one order, oldest first (none for another merchant's order).
pub async fn for_order(
    payments: &Payments,
    merchant_id: &MerchantId,
    order_id: &OrderId,
) -> Result<Vec<Refund>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM refunds WHERE order_id = $1 AND merchant_id = $2 ORDER BY created_at, id"
    ))
    .bind(order_id)
    .bind(merchant_id)
    .fetch_all(payments.db().pool())
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Refund, sqlx::Error> {
    let corrupt = |what: &str| sqlx::Error::Decode(format!("refunds.{what}").into());
    Ok(Refund {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        merchant_id: r.try_get("merchant_id")?,
        out_trade_no: r.try_get("out_trade_no")?,
        channel: Channel::parse(&r.try_get::<String, _>("channel")?)
            .ok_or_else(|| corrupt("channel"))?,
        amount: Amount::from_fen(r.try_get("amount")?).map_err(|_| corrupt("amount"))?,
        reason: r.try_get("reason")?,
        status: RefundStatus::parse(&r.try_get::<String, _>("status")?)
            .ok_or_else(|| corrupt("status"))?,
        provider_refund_no: r.try_get("provider_refund_no")?,
        provider_state: r.try_get("provider_state")?,
        error: r.try_get("error")?,
        extra: r.try_get::<i64, _>("extra")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}
