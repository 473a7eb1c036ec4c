//! Asynchronous callback processing (module 3 of the design): what happens to a provider
//! notification between the bytes arriving and the reply.
//!
//! 1. The notification is stored raw ([`inbox`]) before anything else. An oversized or
//!    non-UTF-8 body gets a clear 4xx and nothing beyond that raw record.
//! 2. The provider client verifies it: signature (WeChat: serial, ±300 s window, no probe),
//!    decryption. WeChat's nonce must not have been used by another notification within the
//!    window (an identical copy is fine: the provider sends those).
//! 3. It must name one of our attempts, in that provider, with the order's amount and
//!    currency, addressed to our account there.
//! 4. A paid state goes through [`Payments::record_payment`]: one transaction with the
//!    conditional transition, the provider trade number, the timeline event and the outbox
//!    row. Any other state changes nothing. A copy of an accepted notification is a no-op
//!    answered success.
//!
//! Every refusal is a risk event with its reason ([`crate::risk`]). The reply is what the
//! provider expects: accepted → success; refused → failure (4xx); our own fault (database
//! down, say) → 5xx, so the provider sends it again.

use super::inbox::{self, Decision, Outcome, Received};
use super::{PaymentError, Payments, Recorded};
use crate::credentials::Account;
use crate::ids::{OrderId, OutTradeNo};
use crate::infra::failpoints;
use crate::orders;
use crate::providers::{
    Channel, NotificationKind, NotifyOutcome, PaymentProvider, ReplayGuard, TradeState,
    VerifiedNotification,
};
use crate::risk::{self, RiskEvent, RiskKind};
use sqlx::Row;

/// The largest notification body accepted; both providers' are a few kilobytes.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a WeChat nonce is remembered: the ±300 s window on both sides, and a margin.
pub const NONCE_MEMORY_SECS: i64 = 660;

pub use super::paid::Mismatch;

/// How to answer: a processing outcome, or a refusal of an unreadable body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Outcome(NotifyOutcome),
    /// Refused before it could be read: 413 too large, 400 not UTF-8.
    Unreadable {
        status: u16,
        message: &'static str,
    },
}

/// Stores, checks and applies one notification; the answer picks the provider's reply.
pub async fn receive(
    payments: &Payments,
    provider: &dyn PaymentProvider,
    account: &Account,
    r: &Received<'_>,
) -> Answer {
    let id = match inbox::store(payments.db(), r).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(channel = %r.channel, error = %e, "cannot store the notification; asking for redelivery");
            count(r.channel, Outcome::Retry);
            return Answer::Outcome(NotifyOutcome::RetryLater);
        }
    };
    let mut decision = decide(payments, provider, account, r, id).await;
    if let Some(trade) = decision.out_trade_no.clone() {
        // The change (if any) is committed; a crash here loses only the reply.
        if let Err(e) = failpoints::hit("notify.before_reply", trade.as_str()) {
            decision = Decision {
                outcome: Outcome::Retry,
                reason: Some(e.to_string()),
                ..decision
            };
        }
    }
    if let Err(e) = inbox::decide(payments.db(), id, &decision).await {
        tracing::warn!(notification = id, error = %e, "cannot record the notification's outcome");
    }
    count(r.channel, decision.outcome);
    answer_of(&decision)
}

/// The reply a decision calls for: a taken or duplicate notification is acknowledged, a
/// refused one refused (an unreadable one with its own status), and our own fault asks the
/// provider to send it again.
fn answer_of(decision: &Decision) -> Answer {
    if let Some((status, message)) = decision.unreadable {
        return Answer::Unreadable { status, message };
    }
    Answer::Outcome(match decision.outcome {
        Outcome::Accepted | Outcome::Duplicate => NotifyOutcome::Accepted,
        Outcome::Rejected => NotifyOutcome::Rejected,
        Outcome::Retry => NotifyOutcome::RetryLater,
    })
}

fn count(channel: Channel, outcome: Outcome) {
    ::metrics::counter!("notifications_total", "channel" => channel.as_str(), "outcome" => outcome.as_str())
        .increment(1);
}

async fn decide(
    payments: &Payments,
    provider: &dyn PaymentProvider,
    account: &Account,
    r: &Received<'_>,
    id: i64,
) -> Decision {
    let refuse_unreadable = |status, message: &'static str, reason: String, label| {
        tracing::warn!(channel = %r.channel, notification = id, %reason, "unreadable notification refused");
        ::metrics::counter!("notifications_rejected_total", "channel" => r.channel.as_str(), "reason" => label)
            .increment(1);
        Decision {
            unreadable: Some((status, message)),
            ..Decision::new(Outcome::Rejected, reason)
        }
    };
    if r.truncated() {
        return refuse_unreadable(
            413,
            "the body is larger than 64 KiB",
            format!("the body ({} bytes) is larger than {MAX_BODY}", r.body_size),
            "oversized",
        );
    }
    if std::str::from_utf8(r.body).is_err() {
        return refuse_unreadable(
            400,
            "the body is not UTF-8",
            "the body is not UTF-8".to_string(),
            "not_utf8",
        );
    }
    let refusal = Refusal {
        payments,
        channel: r.channel,
        notification_ref: id,
        remote_addr: r.remote_addr,
    };
    let n = match provider.verify_notification(r.headers, r.body) {
        Ok(n) => n,
        Err(e) => {
            // The trade it claims (never trusted) still files the refusal under its order; it
            // is anyone's text, so only a trade-number-sized piece of it is kept.
            let claimed = provider
                .claimed_trade(r.body)
                .map(|t| OutTradeNo::new(t.chars().take(64).collect::<String>()));
            let order_id = order_of(payments, claimed.as_ref()).await;
            return refusal
                .refuse(claimed, order_id, RiskKind::from(&e), e.to_string())
                .await;
        }
    };
    let mut decision = Decision {
        notification_id: Some(n.notification_id.clone()),
        out_trade_no: Some(n.out_trade_no.clone()),
        ..Decision::new(Outcome::Accepted, None)
    };
    let applied = match &n.replay_guard {
        Some(guard) => match remember_nonce(payments, n.channel, guard).await {
            Ok(true) => apply(payments, &refusal, (provider, account), &n).await,
            Ok(false) => {
                let m = Mismatch::Replay(guard.nonce.clone());
                let order_id = order_of(payments, Some(&n.out_trade_no)).await;
                Ok(refusal
                    .refuse(
                        Some(n.out_trade_no.clone()),
                        order_id,
                        m.kind(),
                        m.to_string(),
                    )
                    .await)
            }
            Err(e) => Err(e.into()),
        },
        None => apply(payments, &refusal, (provider, account), &n).await,
    };
    match applied {
        Ok(d) => {
            decision.outcome = d.outcome;
            decision.reason = d.reason;
            decision.order_id = d.order_id;
            decision
        }
        Err(e) => {
            tracing::error!(channel = %n.channel, out_trade_no = %n.out_trade_no, error = %e, "notification not processed; asking for redelivery");
            decision.outcome = Outcome::Retry;
            decision.reason = Some(e.to_string());
            decision
        }
    }
}

/// The order of one of our attempts, if `out_trade_no` names one.
async fn order_of(payments: &Payments, out_trade_no: Option<&OutTradeNo>) -> Option<OrderId> {
    let trade = out_trade_no?;
    payments
        .attempt(trade)
        .await
        .ok()
        .flatten()
        .map(|a| a.order_id)
}

/// Remembers a WeChat nonce. `Ok(true)`: first seen, or seen with this very notification (an
/// identical copy); `Ok(false)`: another notification used it (a replay).
async fn remember_nonce(
    payments: &Payments,
    channel: Channel,
    guard: &ReplayGuard,
) -> Result<bool, sqlx::Error> {
    let pool = payments.db().pool();
    let inserted = sqlx::query(
        "INSERT INTO notification_nonces (channel, nonce, digest, signed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel, nonce) DO NOTHING",
    )
    .bind(channel.as_str())
    .bind(&guard.nonce)
    .bind(&guard.digest)
    .bind(guard.signed_at)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    let seen: String =
        sqlx::query("SELECT digest FROM notification_nonces WHERE channel = $1 AND nonce = $2")
            .bind(channel.as_str())
            .bind(&guard.nonce)
            .fetch_one(pool)
            .await?
            .try_get("digest")?;
    Ok(seen == guard.digest)
}

/// Forgets nonces older than the signature window can accept; returns how many.
pub async fn forget_old_nonces(payments: &Payments) -> Result<usize, sqlx::Error> {
    let cutoff = crate::infra::clock::now_ms() / 1000 - NONCE_MEMORY_SECS;
    let done = sqlx::query("DELETE FROM notification_nonces WHERE signed_at < $1")
        .bind(cutoff)
        .execute(payments.db().pool())
        .await?;
    Ok(done.rows_affected() as usize)
}

/// Checks a verified notification against our attempt and order, then records it.
async fn apply(
    payments: &Payments,
    refusal: &Refusal<'_>,
    (provider, account): (&dyn PaymentProvider, &Account),
    n: &VerifiedNotification,
) -> Result<Decision, PaymentError> {
    let Some(attempt) = payments.attempt(&n.out_trade_no).await? else {
        let m = Mismatch::UnknownOrder(n.out_trade_no.to_string());
        return Ok(refusal
            .refuse(Some(n.out_trade_no.clone()), None, m.kind(), m.to_string())
            .await);
    };
    let order = orders::get(payments.db(), &attempt.order_id)
        .await?
        .ok_or_else(|| PaymentError::NotFound(attempt.order_id.to_string()))?;
    // Verified with one account's keys: it may only speak of attempts made through it.
    if attempt.account() != *account {
        let m = Mismatch::OtherAccount {
            got: account.to_string(),
            expected: attempt.account().to_string(),
        };
        return Ok(refusal
            .refuse(
                Some(n.out_trade_no.clone()),
                Some(attempt.order_id.clone()),
                m.kind(),
                m.to_string(),
            )
            .await);
    }
    let identity = Some(provider.identity());
    let mismatch = super::paid::check(
        &attempt,
        &order,
        identity.as_ref(),
        &super::paid::PaidAnswer {
            channel: n.channel,
            out_trade_no: &n.out_trade_no,
            amount: Some(n.amount),
            currency: Some(&n.currency),
            app_id: Some(&n.app_id),
            merchant_account: Some(&n.merchant_account),
        },
    )
    .err();
    if let Some(m) = mismatch {
        return Ok(refusal
            .refuse(
                Some(n.out_trade_no.clone()),
                Some(attempt.order_id.clone()),
                m.kind(),
                m.to_string(),
            )
            .await);
    }
    let decided = |outcome, reason: Option<String>| Decision {
        order_id: Some(attempt.order_id.clone()),
        ..Decision::new(outcome, reason)
    };
    match &n.kind {
        NotificationKind::Payment => {}
        NotificationKind::RefundEcho => {
            // Our own refund seen from the trade's side: the refund's answer and query are
            // what settle it; the order neither pays again nor closes.
            let reason = format!("provider state {}: a refund echo", n.provider_state);
            return Ok(decided(Outcome::Accepted, Some(reason)));
        }
        NotificationKind::Refund(notice) => {
            let applied = crate::payments::refunds::apply_notice(
                payments,
                &attempt.order_id,
                &n.out_trade_no,
                notice,
            )
            .await
            .map_err(|e| match e {
                crate::payments::refunds::RefundError::Db(e) => PaymentError::Db(e),
                other => PaymentError::Db(sqlx::Error::Protocol(other.to_string())),
            })?;
            return Ok(match applied {
                Err(why) => {
                    refusal
                        .refuse(
                            Some(n.out_trade_no.clone()),
                            Some(attempt.order_id.clone()),
                            RiskKind::UnknownRefund,
                            why,
                        )
                        .await
                }
                Ok(changed) => decided(
                    if changed {
                        Outcome::Accepted
                    } else {
                        Outcome::Duplicate
                    },
                    Some(format!(
                        "refund {} {}",
                        notice.out_refund_no, notice.provider_state
                    )),
                ),
            });
        }
    }
    if n.state != TradeState::Paid {
        // Waiting, closed, failed, or a stale copy arriving after the paid one: recorded in
        // the inbox, never a change of status.
        let reason = format!("provider state {}: not a payment", n.provider_state);
        return Ok(decided(Outcome::Accepted, Some(reason)));
    }
    let recorded = payments
        .record_payment(
            &attempt,
            n.provider_trade_no.as_deref(),
            serde_json::json!({
                "source": "notification",
                "provider_state": n.provider_state,
                "notification_id": n.notification_id,
            }),
        )
        .await?;
    tracing::info!(channel = %n.channel, out_trade_no = %n.out_trade_no, ?recorded, "payment notification accepted");
    let decision = match recorded {
        Recorded::Paid { late: false } => decided(Outcome::Accepted, None),
        Recorded::Paid { late: true } => {
            decided(Outcome::Accepted, Some("late payment".to_string()))
        }
        Recorded::Duplicate => decided(Outcome::Duplicate, None),
        Recorded::Extra => decided(Outcome::Accepted, Some("second payment".to_string())),
    };
    Ok(decision)
}

/// Refuses a notification: a risk event (in the order's timeline when there is an order),
/// counted, and the `Rejected` answer. If even that cannot be written, the provider is asked
/// to send again.
struct Refusal<'a> {
    payments: &'a Payments,
    channel: Channel,
    notification_ref: i64,
    remote_addr: Option<&'a str>,
}

impl Refusal<'_> {
    async fn refuse(
        &self,
        out_trade_no: Option<OutTradeNo>,
        order_id: Option<OrderId>,
        kind: RiskKind,
        reason: String,
    ) -> Decision {
        let payments = self.payments;
        ::metrics::counter!("notifications_rejected_total", "channel" => self.channel.as_str(), "reason" => kind.as_str())
            .increment(1);
        let event = RiskEvent {
            kind,
            reason: reason.clone(),
            channel: Some(self.channel),
            order_id: order_id.clone(),
            out_trade_no: out_trade_no.clone(),
            notification_ref: Some(self.notification_ref),
            remote_addr: self.remote_addr.map(str::to_string),
        };
        let outcome = match risk::record(payments.db(), &event).await {
            Ok(()) => Outcome::Rejected,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the refused notification; asking for redelivery");
                Outcome::Retry
            }
        };
        Decision {
            out_trade_no,
            order_id,
            ..Decision::new(outcome, reason)
        }
    }
}
