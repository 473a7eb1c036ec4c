//! Payment order generation (module 2 of the design) and the one path by which an order
//! becomes paid.
//!
//! - [`StartPayment::start_payment`] is the seam the cluster's server selection calls: given an
//!   order and a wallet, return a live payment attempt with the provider's code URL. The local
//!   implementation, [`Payments`], reuses a live attempt for the same wallet, closes one for the
//!   other wallet at its provider first, and otherwise runs the provider's prepay.
//! - [`Payments::record_payment`] is where every "the provider says paid" ends — a
//!   notification, an active query, or a close that found the trade paid: one transaction moves
//!   the order to `paid` (or late-paid), stores the provider trade number and marks the attempt,
//!   so a second report of the same payment changes nothing.
//!
//! Attempts: closing a trade at a provider burns its `out_trade_no`, so each attempt has its
//! own: the order id for the first, `<order id>_<seq>` after it. A unique partial index keeps
//! at most one attempt per order live (`opening` or `open`), across processes and nodes.

pub mod expiry;
pub mod inbox;
pub mod live;
pub mod notify;
pub mod paid;
pub mod query;

use crate::db::Db;
use crate::orders::{self, Order, OrderStatus};
use crate::providers::config::Providers;
use crate::providers::{Channel, PrepayRequest, ProviderError, TradeState};
use crate::risk::RiskEvent;
use async_trait::async_trait;
use live::LiveHub;
use sqlx::Row;
use std::time::Duration;

/// What an attempt is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// The prepay call is running.
    Opening,
    /// The provider gave a code; the customer can pay it.
    Open,
    /// Closed at the provider (switched wallet, expiry): it can no longer be paid there.
    Closed,
    /// The prepay failed; nobody received a code.
    Failed,
    /// The provider reported this attempt paid.
    Paid,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Opening => "opening",
            AttemptStatus::Open => "open",
            AttemptStatus::Closed => "closed",
            AttemptStatus::Failed => "failed",
            AttemptStatus::Paid => "paid",
        }
    }

    fn parse(s: &str) -> Option<AttemptStatus> {
        [
            AttemptStatus::Opening,
            AttemptStatus::Open,
            AttemptStatus::Closed,
            AttemptStatus::Failed,
            AttemptStatus::Paid,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One trade at one provider for an order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub out_trade_no: String,
    pub order_id: String,
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
}

/// How long a provider's code can be paid: two hours at both providers (Alipay precreate's
/// `qr_code`, WeChat Native's `code_url`), whatever the order's own time.
pub const CODE_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// A code with less than this left is not handed out again: a fresh attempt is opened (and
/// an open checkout renews its code this long before it dies).
pub const CODE_RENEW_BEFORE: Duration = Duration::from_secs(10 * 60);

impl Attempt {
    /// When its code stops working at the provider (attempts made before this was recorded:
    /// [`CODE_LIFETIME`] after they were made).
    pub fn code_dies_at(&self) -> i64 {
        self.payable_until
            .unwrap_or(self.created_at + CODE_LIFETIME.as_millis() as i64)
    }

    /// Whether its code still has long enough to live to be shown to a customer.
    pub fn code_is_fresh(&self, now: i64) -> bool {
        now + (CODE_RENEW_BEFORE.as_millis() as i64) < self.code_dies_at()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("the order can no longer be paid (it is {0})")]
    NotPayable(OrderStatus),
    #[error("{0} is not enabled on this server")]
    ChannelDisabled(Channel),
    #[error("{channel} could not create a code: {source}")]
    Provider {
        channel: Channel,
        #[source]
        source: ProviderError,
    },
    #[error("another request is still creating a code for this order")]
    Busy,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Injected(#[from] crate::failpoints::Injected),
}

/// Why [`Payments::close_for_merchant`] closed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("the order is {0}; only an unpaid order can be closed")]
    NotClosable(OrderStatus),
    /// The provider could not close the code, a code is being created, or a database fault.
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

impl From<orders::OrderError> for PaymentError {
    fn from(e: orders::OrderError) -> Self {
        match e {
            orders::OrderError::NotFound(id) => PaymentError::NotFound(id),
            orders::OrderError::Forbidden { from, .. } => PaymentError::NotPayable(from),
            orders::OrderError::Db(e) => PaymentError::Db(e),
            other => PaymentError::Db(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

/// Module 2's entry point: a live attempt with a code URL for `order_id` in `channel`.
/// [`Payments`] runs it on this node; cluster mode puts a selector in front that may run it on
/// another node (same contract, same database).
#[async_trait]
pub trait StartPayment: Send + Sync {
    async fn start_payment(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Attempt, PaymentError>;
}

/// What closing an attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Closing {
    Closed,
    /// The provider says the trade was paid meanwhile (its query answer, not checked yet).
    FoundPaid(crate::providers::TradeStatus),
}

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

/// The most attempts (each a prepay call) one order may have.
pub const MAX_ATTEMPTS_PER_ORDER: i64 = 20;

/// The payment flows of this node: prepay, switch, close, record.
#[derive(Clone)]
pub struct Payments {
    db: Db,
    providers: Providers,
    /// `<public url>/notify`: where providers send notifications.
    notify_base: String,
    live: LiveHub,
    /// How long after a code is shown the provider is first asked about it.
    query_after: Duration,
    /// The node this process is, recorded on the attempts whose prepay it runs.
    node_id: std::sync::Arc<str>,
    /// A node whose heartbeat is older than this has stopped.
    node_ttl: Duration,
}

/// An attempt still `opening` after this was abandoned whatever its node says: a prepay call
/// times out after 10 s.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// How long a request waits for a concurrent prepay of the same order before giving up.
const OPENING_WAIT: Duration = Duration::from_secs(15);

impl Payments {
    pub fn new(
        db: Db,
        providers: Providers,
        public_url: &str,
        live: LiveHub,
        query_after: Duration,
    ) -> Payments {
        Payments {
            db,
            providers,
            notify_base: format!("{}/notify", public_url.trim_end_matches('/')),
            live,
            query_after,
            node_id: "local".into(),
            node_ttl: Duration::from_secs(5),
        }
    }

    /// The same, recording `node_id` on the attempts it opens (cluster mode); a node whose
    /// heartbeat is older than `node_ttl` is taken to have stopped.
    pub fn on_node(mut self, node_id: &str, node_ttl: Duration) -> Payments {
        self.node_id = node_id.into();
        self.node_ttl = node_ttl;
        self
    }

    /// Sets aside an `opening` attempt whose node stopped before it finished (its heartbeat
    /// is older than the TTL, or it is a previous run of this process), or that has been
    /// opening for longer than any prepay call can take. Its code was never shown to anyone;
    /// the attempt becomes `failed` and the order can open a new one. `true` when it did.
    async fn take_over_abandoned(&self, attempt: &Attempt) -> Result<bool, PaymentError> {
        if attempt.status != AttemptStatus::Opening {
            return Ok(false);
        }
        const ABANDONED: &str = "out_trade_no = $1 AND status = 'opening' AND (created_at < $2 OR \
             (node_id IS NOT NULL AND node_id <> $3 AND NOT EXISTS \
              (SELECT 1 FROM nodes n WHERE n.id = payment_attempts.node_id AND n.heartbeat_at > $4)))";
        let now = orders::now_ms();
        let (old, stale) = (
            now - ABANDONED_AFTER.as_millis() as i64,
            now - self.node_ttl.as_millis() as i64,
        );
        // A read first: while the other request is alive (nearly always) no write lock is taken.
        let abandoned = sqlx::query(&format!(
            "SELECT 1 AS one FROM payment_attempts WHERE {ABANDONED}"
        ))
        .bind(&attempt.out_trade_no)
        .bind(old)
        .bind(&*self.node_id)
        .bind(stale)
        .fetch_optional(self.db.pool())
        .await?
        .is_some();
        if !abandoned {
            return Ok(false);
        }
        let mut tx = self.db.pool().begin().await?;
        let taken = sqlx::query(&format!(
            "UPDATE payment_attempts SET status = 'failed', closed_at = $5, \
             error = 'abandoned: the node opening it stopped' WHERE {ABANDONED}"
        ))
        .bind(&attempt.out_trade_no)
        .bind(old)
        .bind(&*self.node_id)
        .bind(stale)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 1 {
            orders::insert_event(
                &mut tx,
                &attempt.order_id,
                "attempt.abandoned",
                &serde_json::json!({ "out_trade_no": attempt.out_trade_no, "channel": attempt.channel }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Sets when the active-query worker next asks about an attempt: the first wait, doubled
    /// for each question already asked, at most `query::MAX_WAIT`.
    pub async fn schedule_query(&self, out_trade_no: &str, asked: i64) -> Result<(), sqlx::Error> {
        let first = self.query_after.as_millis() as i64;
        let wait = first
            .saturating_mul(1_i64 << asked.clamp(0, 20))
            .min(query::MAX_WAIT.as_millis() as i64);
        sqlx::query("UPDATE payment_attempts SET next_query_at = $1 WHERE out_trade_no = $2")
            .bind(orders::now_ms() + wait)
            .bind(out_trade_no)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Where `channel` sends its notifications to this deployment.
    pub fn notify_url(&self, channel: Channel) -> String {
        format!("{}/{}", self.notify_base, channel.as_str())
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    /// Creates an order (with the merchant's optional metadata) and tells its merchant's board.
    pub async fn create_order(
        &self,
        new: &orders::NewOrder,
        metadata: Option<&serde_json::Value>,
    ) -> Result<orders::Order, orders::OrderError> {
        let order = orders::create_with_metadata(&self.db, new, metadata).await?;
        self.live
            .publish(&order.merchant_id, order.id.as_str(), order.status);
        Ok(order)
    }

    /// The attempts matching `condition` (an SQL condition on `$1`), in `seq` order.
    async fn attempts_where(
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
    pub async fn live_attempt(&self, order_id: &str) -> Result<Option<Attempt>, sqlx::Error> {
        let mut live = self
            .attempts_where("order_id = $1 AND status IN ('opening', 'open')", order_id)
            .await?;
        Ok(live.pop())
    }

    /// Every attempt of an order, oldest first.
    pub async fn attempts(&self, order_id: &str) -> Result<Vec<Attempt>, sqlx::Error> {
        self.attempts_where("order_id = $1", order_id).await
    }

    pub async fn attempt(&self, out_trade_no: &str) -> Result<Option<Attempt>, sqlx::Error> {
        Ok(self
            .attempts_where("out_trade_no = $1", out_trade_no)
            .await?
            .pop())
    }

    async fn payable_order(&self, order_id: &str) -> Result<Order, PaymentError> {
        let order = orders::get(&self.db, order_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(order_id.to_string()))?;
        if !order.is_payable(orders::now_ms()) {
            let status = match order.status {
                OrderStatus::Created | OrderStatus::Pending => OrderStatus::Expired,
                s => s,
            };
            return Err(PaymentError::NotPayable(status));
        }
        Ok(order)
    }

    /// Runs the provider's prepay for a new attempt. The `opening` row is inserted first: the
    /// unique index on live attempts makes a concurrent second insert fail, so two requests
    /// never create two codes for one order.
    async fn open_attempt(
        &self,
        order: &Order,
        channel: Channel,
    ) -> Result<Option<Attempt>, PaymentError> {
        let provider = self
            .providers
            .get(channel)
            .ok_or(PaymentError::ChannelDisabled(channel))?;
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM payment_attempts WHERE order_id = $1",
        )
        .bind(order.id.as_str())
        .fetch_one(self.db.pool())
        .await?
        .try_get("next")?;
        let out_trade_no = trade_no(order.id.as_str(), seq);
        let now = orders::now_ms();
        // The code dies with the order or after its two hours, whichever is first; the
        // provider is told so (time_expire), so an old code cannot be paid by itself.
        let payable_until = order
            .expires_at
            .min(now + CODE_LIFETIME.as_millis() as i64)
            .div_euclid(1000)
            * 1000;
        let inserted = sqlx::query(
            "INSERT INTO payment_attempts (out_trade_no, order_id, seq, channel, status, created_at, node_id, payable_until) \
             VALUES ($1, $2, $3, $4, 'opening', $5, $6, $7)",
        )
        .bind(&out_trade_no)
        .bind(order.id.as_str())
        .bind(seq)
        .bind(channel.as_str())
        .bind(now)
        .bind(&*self.node_id)
        .bind(payable_until)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => {}
            // Another request opened an attempt (or took this seq) first: look again.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let request = PrepayRequest {
            out_trade_no: out_trade_no.clone(),
            amount: order.amount,
            subject: order.subject.clone(),
            expires_at: payable_until.div_euclid(1000),
            notify_url: self.notify_url(channel),
        };
        let started = std::time::Instant::now();
        let result = provider.create_prepay(&request).await;
        ::metrics::histogram!("prepay_duration_seconds", "channel" => channel.as_str(), "ok" => result.is_ok().to_string())
            .record(started.elapsed().as_secs_f64());
        let mut tx = self.db.pool().begin().await?;
        match result {
            Ok(prepay) => {
                sqlx::query(
                    "UPDATE payment_attempts SET status = 'open', code_url = $1, next_query_at = $2 \
                     WHERE out_trade_no = $3 AND status = 'opening'",
                )
                .bind(&prepay.code_url)
                .bind(orders::now_ms() + self.query_after.as_millis() as i64)
                .bind(&out_trade_no)
                .execute(&mut *tx)
                .await?;
                orders::insert_event(
                    &mut tx,
                    order.id.as_str(),
                    "attempt.opened",
                    &serde_json::json!({ "channel": channel, "out_trade_no": out_trade_no }),
                )
                .await?;
                let moved = orders::transition_in(
                    &mut tx,
                    order.id.as_str(),
                    OrderStatus::Pending,
                    serde_json::json!({ "channel": channel }),
                )
                .await?;
                tx.commit().await?;
                if moved.is_some() {
                    self.live
                        .publish(&order.merchant_id, order.id.as_str(), OrderStatus::Pending);
                }
                Ok(self.attempt(&out_trade_no).await?)
            }
            Err(source) => {
                tracing::warn!(order = %order.id.as_str(), %channel, error = %source, "prepay failed");
                sqlx::query(
                    "UPDATE payment_attempts SET status = 'failed', error = $1, closed_at = $2 WHERE out_trade_no = $3",
                )
                .bind(source.to_string())
                .bind(orders::now_ms())
                .bind(&out_trade_no)
                .execute(&mut *tx)
                .await?;
                orders::insert_event(
                    &mut tx,
                    order.id.as_str(),
                    "attempt.failed",
                    &serde_json::json!({ "channel": channel, "out_trade_no": out_trade_no, "error": source.to_string() }),
                )
                .await?;
                tx.commit().await?;
                Err(PaymentError::Provider { channel, source })
            }
        }
    }

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
            .ok_or_else(|| PaymentError::NotFound(attempt.order_id.clone()))?;
        let identity = self.providers.get(attempt.channel).map(|p| p.identity());
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
            .bind(m.label())
            .fetch_optional(self.db.pool())
            .await?;
            if seen.is_none() {
                crate::risk::record(
                    &self.db,
                    &RiskEvent {
                        kind: m.label(),
                        reason: format!(
                            "the {source} answer says paid ({}): {m}",
                            status.provider_state
                        ),
                        ..risk_about(attempt)
                    },
                )
                .await?;
            }
            return Ok(None);
        }
        let recorded = self
            .record_payment(
                &attempt.out_trade_no,
                status.provider_trade_no.as_deref(),
                serde_json::json!({ "source": source, "provider_state": status.provider_state }),
            )
            .await?;
        Ok(Some(recorded))
    }

    /// Ends an unpaid order as `to` (`Expired`, or `Closed` by its merchant): its live
    /// attempt is closed at the provider first, so no code can be paid after; if the provider
    /// says it was paid meanwhile, the payment is recorded instead. `Ok(false)`: the order was
    /// paid, or ended by someone else, meanwhile.
    pub async fn end_unpaid(
        &self,
        order_id: &str,
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
        merchant_id: &str,
        order_id: &str,
        via: &str,
    ) -> Result<Order, CloseError> {
        // The order, if it is this merchant's.
        let mine = async || -> Result<Order, CloseError> {
            orders::get(&self.db, order_id)
                .await
                .map_err(PaymentError::from)?
                .filter(|o| o.merchant_id == merchant_id)
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
    async fn close_attempt(
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
            .providers
            .get(channel)
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
        .bind(orders::now_ms())
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

    /// Records that the provider reports the trade `out_trade_no` paid. Idempotent: a second
    /// report of the same trade is a `Duplicate` and changes nothing. An order that expired or
    /// was closed becomes paid with its late flag (the money arrived; it is never dropped).
    pub async fn record_payment(
        &self,
        out_trade_no: &str,
        provider_trade_no: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<Recorded, PaymentError> {
        let attempt = self
            .attempt(out_trade_no)
            .await?
            .ok_or_else(|| PaymentError::NotFound(out_trade_no.to_string()))?;
        let order_id = attempt.order_id.as_str();
        let mut detail = detail;
        detail["channel"] = serde_json::json!(attempt.channel);
        detail["out_trade_no"] = serde_json::json!(out_trade_no);
        detail["provider_trade_no"] = serde_json::json!(provider_trade_no);
        let now = orders::now_ms();
        let mut risk_event = None;
        let mut tx = self.db.pool().begin().await?;
        let moved =
            orders::transition_in(&mut tx, order_id, OrderStatus::Paid, detail.clone()).await?;
        let mut paid_merchant = String::new();
        let outcome = match moved {
            Some(t) => {
                paid_merchant = t.merchant_id;
                sqlx::query(
                    "UPDATE orders SET provider_trade_no = $1, paid_channel = $2 WHERE id = $3",
                )
                .bind(provider_trade_no)
                .bind(attempt.channel.as_str())
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
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
                    Some(t) if t == out_trade_no => Recorded::Duplicate,
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
                    let (merchant_id, amount): (String, i64) =
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
                        out_trade_no,
                        &payment,
                    )
                    .await?;
                    risk_event = Some(RiskEvent {
                        kind: "second_payment",
                        reason: format!(
                            "a second payment of {amount} fen through {out_trade_no} for an order already paid; refund it"
                        ),
                        ..risk_about(&attempt)
                    });
                }
            }
            Recorded::Duplicate => {}
        }
        if let Recorded::Paid { late: true } = outcome {
            risk_event = Some(RiskEvent {
                kind: "late_payment",
                reason: "paid after the order had expired or was closed".to_string(),
                ..risk_about(&attempt)
            });
        }
        if let Some(event) = &risk_event {
            crate::risk::record_in(&mut tx, event).await?;
        }
        crate::failpoints::hit("record_payment.before_commit", out_trade_no)?;
        tx.commit().await?;
        if let Some(event) = &risk_event {
            crate::risk::count(event);
        }
        if let Recorded::Paid { late } = outcome {
            ::metrics::counter!("payments_recorded_total", "channel" => attempt.channel.as_str(), "late" => late.to_string())
                .increment(1);
            self.live
                .publish(&paid_merchant, order_id, OrderStatus::Paid);
            // Another wallet's code of this order may still be live: close it so the customer
            // cannot pay twice. Best effort; a payment that still arrives is recorded as extra
            // when its notification comes.
            if let Ok(Some(other)) = self.live_attempt(order_id).await {
                match self.close_attempt(&other, "order paid").await {
                    Ok(Closing::Closed) => {}
                    Ok(Closing::FoundPaid(_)) => {
                        tracing::warn!(order = order_id, out_trade_no = %other.out_trade_no, "a second attempt of a paid order is paid too")
                    }
                    Err(e) => {
                        tracing::warn!(order = order_id, error = %e, "could not close the other live attempt")
                    }
                }
            }
        }
        Ok(outcome)
    }
}

impl Payments {
    /// Each new attempt is a prepay call: switching wallets back and forth must not make a
    /// provider call per click without end. `Busy` once the order has had
    /// [`MAX_ATTEMPTS_PER_ORDER`].
    async fn may_open_another(&self, order_id: &str) -> Result<(), PaymentError> {
        let made: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM payment_attempts WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(self.db.pool())
                .await?;
        if made >= MAX_ATTEMPTS_PER_ORDER {
            tracing::warn!(
                order = order_id,
                made,
                "attempt limit reached: no new prepay"
            );
            return Err(PaymentError::Busy);
        }
        Ok(())
    }
}

#[async_trait]
impl StartPayment for Payments {
    async fn start_payment(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Attempt, PaymentError> {
        let deadline = tokio::time::Instant::now() + OPENING_WAIT;
        loop {
            let order = self.payable_order(order_id).await?;
            if !self.providers.takes_orders_of(channel, &order.merchant_id) {
                return Err(PaymentError::ChannelDisabled(channel));
            }
            match self.live_attempt(order_id).await? {
                Some(a)
                    if a.status == AttemptStatus::Open
                        && a.channel == channel
                        && a.code_is_fresh(orders::now_ms()) =>
                {
                    return Ok(a)
                }
                Some(a) if a.status == AttemptStatus::Open && a.channel == channel => {
                    // Its code is about to die (two hours at the provider): a fresh one.
                    self.may_open_another(order_id).await?;
                    if self.close_or_record(&a, "code about to die").await? {
                        return Err(PaymentError::NotPayable(OrderStatus::Paid));
                    }
                }
                Some(a) if a.status == AttemptStatus::Open => {
                    // Checked before closing: a refused switch leaves the open code usable.
                    self.may_open_another(order_id).await?;
                    if self.close_or_record(&a, "switched wallet").await? {
                        return Err(PaymentError::NotPayable(OrderStatus::Paid));
                    }
                }
                Some(a) => {
                    // Another request is opening one: wait for it to finish, unless the node
                    // running it stopped (then nobody ever saw its code: it is set aside).
                    if self.take_over_abandoned(&a).await? {
                        continue;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(PaymentError::Busy);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => {
                    self.may_open_another(order_id).await?;
                    if let Some(a) = self.open_attempt(&order, channel).await? {
                        return Ok(a);
                    }
                }
            }
        }
    }
}

/// Runs a background worker's round every `tick` until the task is dropped; a failed round
/// is logged and the next one tries again.
pub(crate) fn every<F, Fut>(
    tick: Duration,
    name: &'static str,
    round: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, sqlx::Error>> + Send,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = round().await {
                tracing::warn!(worker = name, error = %e, "round failed; trying again next round");
            }
        }
    })
}

/// A risk event about an attempt's order.
pub(crate) fn risk_about(attempt: &Attempt) -> RiskEvent {
    RiskEvent {
        channel: Some(attempt.channel),
        order_id: Some(attempt.order_id.clone()),
        out_trade_no: Some(attempt.out_trade_no.clone()),
        ..RiskEvent::default()
    }
}

/// How a background worker claims its due rows (a lease), so several workers — several
/// nodes — never handle one row at once.
pub(crate) struct Claim {
    pub table: &'static str,
    /// The row key the subquery selects by.
    pub key: &'static str,
    /// SQL over `$2` (now): the rows that are due and not claimed.
    pub due: &'static str,
    pub order_by: &'static str,
    /// SQL over `$1` (the lease's end) that takes a row out of `due` until then.
    pub set: &'static str,
    pub returning: &'static str,
}

impl Claim {
    /// Claims up to `batch` due rows in one conditional `UPDATE … RETURNING`. The outer
    /// `WHERE` repeats `due`: of two workers racing for a row, the second finds it no longer
    /// due (PostgreSQL re-checks the row after the first commits; SQLite has one writer), so
    /// only one gets it. A worker that dies leaves its rows to the lease's end.
    pub async fn take(
        &self,
        db: &Db,
        lease_until: i64,
        now: i64,
        batch: i64,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let Claim {
            table,
            key,
            due,
            order_by,
            set,
            returning,
        } = self;
        sqlx::query(&format!(
            "UPDATE {table} SET {set} \
             WHERE {key} IN (SELECT {key} FROM {table} WHERE {due} ORDER BY {order_by} LIMIT $3) \
               AND {due} RETURNING {returning}"
        ))
        .bind(lease_until)
        .bind(now)
        .bind(batch)
        .fetch_all(db.pool())
        .await
    }
}

/// The provider trade number of an order's `seq`-th attempt.
pub fn trade_no(order_id: &str, seq: i64) -> String {
    if seq == 1 {
        order_id.to_string()
    } else {
        format!("{order_id}_{seq}")
    }
}

const ATTEMPT_COLUMNS: &str =
    "out_trade_no, order_id, seq, channel, status, code_url, provider_trade_no, error, created_at, closed_at, \
     payable_until";

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
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn attempt_trade_numbers_fit_both_providers() {
        let id = "20261127093000abcdefABCDEF";
        assert_eq!(super::trade_no(id, 1), id);
        let later = super::trade_no(id, 99_999);
        assert!(later.len() <= 32, "{later}");
        assert!(crate::orders::OrderId::parse(&later).is_some());
    }
}
