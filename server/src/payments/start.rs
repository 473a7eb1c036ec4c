//! Starting a payment (module 2): reuse a live attempt, switch wallets, or run the provider's
//! prepay; and taking over an attempt whose node stopped.

use super::*;
use crate::orders::{self, Order, OrderStatus};
use crate::providers::{PayMethod, PrepayRequest};
use async_trait::async_trait;
use sqlx::Row;
use std::time::Duration;

/// The most attempts (each a prepay call) one order may have.
pub const MAX_ATTEMPTS_PER_ORDER: i64 = 20;

/// An attempt still `opening` after this was abandoned whatever its node says: a prepay call
/// times out after 10 s.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// How long a request waits for a concurrent prepay of the same order before giving up.
const OPENING_WAIT: Duration = Duration::from_secs(15);

impl Payments {
    /// Sets aside an `opening` attempt whose node stopped before it finished (its heartbeat
    /// is older than the TTL, or it is a previous run of this process), or that has been
    /// opening for longer than any prepay call can take. Its code was never shown to anyone;
    /// the attempt becomes `failed` and the order can open a new one. `true` when it did.
    pub(super) async fn take_over_abandoned(
        &self,
        attempt: &Attempt,
    ) -> Result<bool, PaymentError> {
        if attempt.status != AttemptStatus::Opening {
            return Ok(false);
        }
        const ABANDONED: &str = "out_trade_no = $1 AND status = 'opening' AND (created_at < $2 OR \
             (node_id IS NOT NULL AND node_id <> $3 AND NOT EXISTS \
              (SELECT 1 FROM nodes n WHERE n.id = payment_attempts.node_id AND n.heartbeat_at > $4)))";
        let now = crate::infra::clock::now_ms();
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

    /// Has the active-query worker ask about an attempt in its next round (a customer is
    /// back from a cashier).
    pub async fn ask_soon(&self, out_trade_no: &OutTradeNo) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE payment_attempts SET next_query_at = $1 \
             WHERE out_trade_no = $2 AND status IN ('open', 'closed')",
        )
        .bind(crate::infra::clock::now_ms())
        .bind(out_trade_no)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Sets when the active-query worker next asks about an attempt: the first wait, doubled
    /// for each question already asked, at most `query::MAX_WAIT`.
    pub async fn schedule_query(
        &self,
        out_trade_no: &OutTradeNo,
        asked: i64,
    ) -> Result<(), sqlx::Error> {
        let first = self.query_after.as_millis() as i64;
        let wait = first
            .saturating_mul(1_i64 << asked.clamp(0, 20))
            .min(query::MAX_WAIT.as_millis() as i64);
        sqlx::query("UPDATE payment_attempts SET next_query_at = $1 WHERE out_trade_no = $2")
            .bind(crate::infra::clock::now_ms() + wait)
            .bind(out_trade_no)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    pub(super) async fn payable_order(&self, order_id: &OrderId) -> Result<Order, PaymentError> {
        let order = orders::get(&self.db, order_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(order_id.to_string()))?;
        if !order.is_payable(crate::infra::clock::now_ms()) {
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
    pub(super) async fn open_attempt(
        &self,
        order: &Order,
        way: &PayWay,
    ) -> Result<Option<Attempt>, PaymentError> {
        let channel = way.channel;
        // The merchant's own account when it has one, else the operator's.
        let (account, provider) = self
            .book
            .for_merchant(&order.merchant_id, channel)
            .await?
            .ok_or(PaymentError::ChannelDisabled(channel))?;
        let seq: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM payment_attempts WHERE order_id = $1",
        )
        .bind(order.id.as_str())
        .fetch_one(self.db.pool())
        .await?
        .try_get("next")?;
        let out_trade_no = trade_no(&order.id, seq);
        let now = crate::infra::clock::now_ms();
        // The code dies with the order or after its two hours, whichever is first; the
        // provider is told so (time_expire), so an old code cannot be paid by itself. A
        // WeChat trade is payable until the order's end: its code is renewed in place.
        let payable_until = match attempts::renews_in_place(channel, way.method) {
            true => order.expires_at,
            false => order.expires_at.min(now + CODE_LIFETIME.as_millis() as i64),
        }
        .div_euclid(1000)
            * 1000;
        let inserted = sqlx::query(
            "INSERT INTO payment_attempts (out_trade_no, order_id, seq, channel, status, created_at, node_id, payable_until, account, method, payer) \
             VALUES ($1, $2, $3, $4, 'opening', $5, $6, $7, $8, $9, $10)",
        )
        .bind(&out_trade_no)
        .bind(order.id.as_str())
        .bind(seq)
        .bind(channel.as_str())
        .bind(now)
        .bind(&*self.node_id)
        .bind(payable_until)
        .bind(account.stored())
        .bind(way.method.as_str())
        .bind(way.payer.as_ref().map(|p| p.stored()))
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
            expires_at: payable_until,
            notify_url: self.notify_url(channel, &account),
            method: way.method,
            payer: way.payer.clone(),
            client_ip: way.client_ip.clone(),
            return_url: way.return_url.clone(),
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
                .bind(crate::infra::clock::now_ms() + self.query_after.as_millis() as i64)
                .bind(&out_trade_no)
                .execute(&mut *tx)
                .await?;
                orders::insert_event(
                    &mut tx,
                    &order.id,
                    "attempt.opened",
                    &serde_json::json!({ "channel": channel, "method": way.method, "out_trade_no": out_trade_no }),
                )
                .await?;
                let moved = orders::transition_in(
                    &mut tx,
                    &order.id,
                    OrderStatus::Pending,
                    serde_json::json!({ "channel": channel }),
                )
                .await?;
                tx.commit().await?;
                if moved.is_some() {
                    self.live
                        .publish(&order.merchant_id, &order.id, OrderStatus::Pending);
                }
                Ok(self.attempt(&out_trade_no).await?)
            }
            Err(source) => {
                tracing::warn!(order = %&order.id, %channel, error = %source, "prepay failed");
                sqlx::query(
                    "UPDATE payment_attempts SET status = 'failed', error = $1, closed_at = $2 WHERE out_trade_no = $3",
                )
                .bind(source.to_string())
                .bind(crate::infra::clock::now_ms())
                .bind(&out_trade_no)
                .execute(&mut *tx)
                .await?;
                orders::insert_event(
                    &mut tx,
                    &order.id,
                    "attempt.failed",
                    &serde_json::json!({ "channel": channel, "out_trade_no": out_trade_no, "error": source.to_string() }),
                )
                .await?;
                tx.commit().await?;
                Err(PaymentError::Provider { channel, source })
            }
        }
    }
}

impl Payments {
    /// Renews a WeChat attempt's code by repeating its order call with the same parameters
    /// (same trade number, amount, description, `time_expire`, notify URL and payer): a fresh
    /// `code_url` / `prepay_id` for the same trade, so no second trade can be paid.
    /// `Ok(None)`: the trade ends within the renewal window, or the attempt is no longer open.
    async fn renew_in_place(
        &self,
        order: &Order,
        attempt: &Attempt,
    ) -> Result<Option<Attempt>, PaymentError> {
        let now = crate::infra::clock::now_ms();
        let Some(until) = attempt.payable_until else {
            return Ok(None);
        };
        if until <= now + CODE_RENEW_BEFORE.as_millis() as i64 {
            return Ok(None);
        }
        let Some(provider) = self.client_of(attempt).await? else {
            return Ok(None);
        };
        let request = PrepayRequest {
            out_trade_no: attempt.out_trade_no.clone(),
            amount: order.amount,
            subject: order.subject.clone(),
            expires_at: until,
            notify_url: self.notify_url(attempt.channel, &attempt.account()),
            method: attempt.method,
            payer: attempt.payer.clone(),
            client_ip: None,
            return_url: None,
        };
        let prepay =
            provider
                .create_prepay(&request)
                .await
                .map_err(|source| PaymentError::Provider {
                    channel: attempt.channel,
                    source,
                })?;
        let renewed = sqlx::query(
            "UPDATE payment_attempts SET code_url = $1, code_at = $2 \
             WHERE out_trade_no = $3 AND status = 'open'",
        )
        .bind(&prepay.code_url)
        .bind(now)
        .bind(&attempt.out_trade_no)
        .execute(self.db.pool())
        .await?;
        if renewed.rows_affected() != 1 {
            return Ok(None);
        }
        orders::add_event(
            &self.db,
            &order.id,
            "attempt.renewed",
            &serde_json::json!({ "out_trade_no": attempt.out_trade_no, "channel": attempt.channel }),
        )
        .await?;
        Ok(self.attempt(&attempt.out_trade_no).await?)
    }

    /// Each new attempt is a prepay call: switching wallets back and forth must not make a
    /// provider call per click without end. `Busy` once the order has had
    /// [`MAX_ATTEMPTS_PER_ORDER`].
    async fn may_open_another(&self, order_id: &OrderId) -> Result<(), PaymentError> {
        let made: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM payment_attempts WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(self.db.pool())
                .await?;
        if made >= MAX_ATTEMPTS_PER_ORDER {
            tracing::warn!(
                order = %order_id,
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
    async fn start_with(&self, order_id: &OrderId, way: &PayWay) -> Result<Attempt, PaymentError> {
        let channel = way.channel;
        if !way.method.offered_by(channel)
            || (way.method == PayMethod::Jsapi
                && way.payer.as_ref().map(|p| p.channel()) != Some(channel))
        {
            return Err(PaymentError::ChannelDisabled(channel));
        }
        let deadline = tokio::time::Instant::now() + OPENING_WAIT;
        loop {
            let order = self.payable_order(order_id).await?;
            if self
                .book
                .for_merchant(&order.merchant_id, channel)
                .await?
                .is_none()
            {
                return Err(PaymentError::ChannelDisabled(channel));
            }
            match self.live_attempt(order_id).await? {
                Some(a)
                    if a.status == AttemptStatus::Open
                        && way.reuses(&a, crate::infra::clock::now_ms())
                        && a.code_is_fresh(crate::infra::clock::now_ms()) =>
                {
                    return Ok(a)
                }
                Some(a)
                    if a.status == AttemptStatus::Open
                        && way.reuses(&a, crate::infra::clock::now_ms())
                        && a.renews_in_place() =>
                {
                    // WeChat: the same order call again gives a fresh code for this trade.
                    match self.renew_in_place(&order, &a).await {
                        Ok(Some(renewed)) => return Ok(renewed),
                        // Ended meanwhile, or the provider would not renew it: close it
                        // (or record its payment) and open another.
                        Ok(None) | Err(PaymentError::Provider { .. }) => {
                            self.may_open_another(order_id).await?;
                            if self
                                .close_or_record(&a, "code could not be renewed")
                                .await?
                            {
                                return Err(PaymentError::NotPayable(OrderStatus::Paid));
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Some(a)
                    if a.status == AttemptStatus::Open
                        && way.reuses(&a, crate::infra::clock::now_ms()) =>
                {
                    // Its code is about to die (two hours at the provider): a fresh one.
                    self.may_open_another(order_id).await?;
                    if self.close_or_record(&a, "code about to die").await? {
                        return Err(PaymentError::NotPayable(OrderStatus::Paid));
                    }
                }
                Some(a) if a.status == AttemptStatus::Open => {
                    // Another wallet, method or payer. Checked before closing: a refused
                    // switch leaves the open code usable.
                    self.may_open_another(order_id).await?;
                    let why = if a.channel == channel {
                        "switched payment method"
                    } else {
                        "switched wallet"
                    };
                    if self.close_or_record(&a, why).await? {
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
                    if let Some(a) = self.open_attempt(&order, way).await? {
                        return Ok(a);
                    }
                }
            }
        }
    }
}
