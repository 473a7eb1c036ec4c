//! Webhooks to the merchant: every outbox event (`order.paid`, `order.expired`,
//! `order.closed`, later refunds) is POSTed to the merchant's endpoint as JSON
//! `{id, type, created, data}`, signed with the merchant's secret:
//!
//! ```text
//! ScanPay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! A 2xx answer ends it. Anything else (or no answer within 10 s) is retried after
//! [`SCHEDULE_SECS`] (about 24 hours in all, multiplied by `SCANPAY_WEBHOOK_TIME_SCALE`),
//! then the event is given up as `failed`. Every attempt is logged with its answer
//! (`webhook_attempts`); a person can redeliver any event by hand.
//!
//! Safe with several workers (nodes): a round claims due events with a lease
//! (`outbox.claimed_until`) in one conditional `UPDATE … RETURNING`.

use crate::infra::db::Db;
use crate::merchants::MerchantId;
use crate::outbound::{Outbound, SendError, TargetError};
use crate::outbox::OutboxEvent;
pub use app::status::Delivery;
use sqlx::Row;
use std::time::{Duration, Instant};

/// Waits before the 2nd, 3rd… attempt: 10 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h,
/// 8 h — the last attempt about 24 hours after the first.
pub const SCHEDULE_SECS: &[u64] = &[10, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800];
/// How often the worker looks for due events.
pub const TICK: Duration = Duration::from_millis(500);
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed event is left to its worker.
const LEASE_MS: i64 = 60_000;
/// How many events one round sends at most.
const BATCH: i64 = 20;
/// Events waiting for their (next) delivery that no worker holds.
const CLAIM: crate::workers::Claim = crate::workers::Claim {
    table: "outbox",
    key: "id",
    due: "delivery = 'pending' AND next_attempt_at <= $2 \
          AND (claimed_until IS NULL OR claimed_until <= $2)",
    order_by: "id",
    set: "claimed_until = $1",
    returning: "id",
};
/// How much of a receiver's answer is kept in the log.
const RESPONSE_KEPT: usize = 500;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "ScanPay-Signature";

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &message);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The JSON body of an event.
pub fn body(event: &OutboxEvent) -> String {
    serde_json::json!({
        "id": event.event_id,
        "type": event.topic,
        "created": event.created_at / 1000,
        "data": event.payload,
    })
    .to_string()
}

/// A new webhook secret: `whsec_` and 32 random alphanumerics.
fn new_secret() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "whsec_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
    )
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the endpoint is refused: {0}")]
    Url(#[from] TargetError),
    #[error("no merchant {0}")]
    NoMerchant(String),
    #[error("no event {0}")]
    NoEvent(String),
    #[error("the merchant has no webhook endpoint")]
    NoEndpoint,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Sets a merchant's endpoint; creates its secret if it has none. Returns the secret, to be
/// shown to the merchant (the only way they learn it). The URL must pass the guarded
/// client's check (`outbound`): a public http(s) address, or one the operator allows.
pub async fn set_endpoint(
    db: &Db,
    outbound: &Outbound,
    merchant_id: &MerchantId,
    url: &str,
) -> Result<String, WebhookError> {
    outbound.check_url(url).await?;
    let done = sqlx::query(
        "UPDATE merchants SET webhook_url = $1, webhook_secret = COALESCE(webhook_secret, $2) WHERE id = $3",
    )
    .bind(url)
    .bind(new_secret())
    .bind(merchant_id)
    .execute(db.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(WebhookError::NoMerchant(merchant_id.to_string()));
    }
    secret_of(db, merchant_id).await
}

/// Replaces a merchant's secret; returns the new one. Events signed from now on use it.
pub async fn rotate_secret(db: &Db, merchant_id: &MerchantId) -> Result<String, WebhookError> {
    let done = sqlx::query("UPDATE merchants SET webhook_secret = $1 WHERE id = $2")
        .bind(new_secret())
        .bind(merchant_id)
        .execute(db.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(WebhookError::NoMerchant(merchant_id.to_string()));
    }
    secret_of(db, merchant_id).await
}

async fn secret_of(db: &Db, merchant_id: &MerchantId) -> Result<String, WebhookError> {
    let secret: Option<String> = sqlx::query("SELECT webhook_secret FROM merchants WHERE id = $1")
        .bind(merchant_id)
        .fetch_one(db.pool())
        .await?
        .try_get("webhook_secret")?;
    secret.ok_or_else(|| WebhookError::NoMerchant(merchant_id.to_string()))
}

/// One logged delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub manual: bool,
    pub at: i64,
    pub url: String,
    pub status: Option<i64>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// An event's delivery state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryState {
    pub delivery: Delivery,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
}

pub async fn state(db: &Db, event_id: &str) -> Result<DeliveryState, WebhookError> {
    let row = sqlx::query(
        "SELECT delivery, attempts, next_attempt_at, delivered_at FROM outbox WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| WebhookError::NoEvent(event_id.to_string()))?;
    Ok(DeliveryState {
        delivery: Delivery::parse(&row.try_get::<String, _>("delivery")?)
            .ok_or_else(|| sqlx::Error::Decode("outbox.delivery".into()))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

/// The delivery log of an event, oldest first.
pub async fn log(db: &Db, event_id: &str) -> Result<Vec<DeliveryAttempt>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.attempt, a.manual, a.at, a.url, a.status, a.response, a.error, a.duration_ms \
         FROM webhook_attempts a JOIN outbox o ON o.id = a.outbox_id WHERE o.event_id = $1 ORDER BY a.id",
    )
    .bind(event_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryAttempt {
                attempt: r.try_get("attempt")?,
                manual: r.try_get::<i64, _>("manual")? == 1,
                at: r.try_get("at")?,
                url: r.try_get("url")?,
                status: r.try_get("status")?,
                response: r.try_get("response")?,
                error: r.try_get("error")?,
                duration_ms: r.try_get("duration_ms")?,
            })
        })
        .collect()
}

/// The webhook sender of this node.
#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    http: Outbound,
    time_scale: f64,
}

#[derive(Clone, Copy)]
enum EventKey<'a> {
    Row(i64),
    Public(&'a str),
}

/// What one send found.
struct Sent {
    ok: bool,
    status: Option<i64>,
    response: Option<String>,
    error: Option<String>,
    at: i64,
    duration_ms: i64,
}

impl Webhooks {
    pub fn new(db: Db, policy: crate::outbound::Policy, time_scale: f64) -> Webhooks {
        Webhooks {
            db,
            http: Outbound::new(policy, Duration::from_secs(3), TIMEOUT),
            time_scale,
        }
    }

    /// Sets a merchant's endpoint through this sender's guarded client ([`set_endpoint`]).
    pub async fn set_endpoint(
        &self,
        merchant_id: &MerchantId,
        url: &str,
    ) -> Result<String, WebhookError> {
        set_endpoint(&self.db, &self.http, merchant_id, url).await
    }

    /// Runs [`Webhooks::run_once`] every `tick` until the task is dropped.
    pub fn spawn(self, tick: Duration) -> tokio::task::JoinHandle<()> {
        crate::workers::every(tick, "webhooks", move || {
            let this = self.clone();
            async move { this.run_once().await }
        })
    }

    /// One round: claims due events and sends them. Returns how many were delivered.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let now = crate::infra::clock::now_ms();
        let claimed: Vec<i64> = CLAIM
            .take(&self.db, now + LEASE_MS, now, BATCH)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut delivered = 0;
        for id in claimed {
            match self.deliver_scheduled(id).await {
                Ok(true) => delivered += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(outbox = id, error = %e, "webhook round failed for an event")
                }
            }
        }
        Ok(delivered)
    }

    /// An event (by outbox row id, or by public event id), its attempts so far, and its
    /// merchant's endpoint and secret.
    async fn event_and_endpoint(
        &self,
        key: EventKey<'_>,
    ) -> Result<Option<(OutboxEvent, i64, Option<(String, String)>)>, sqlx::Error> {
        let sql = |condition: &str| {
            format!(
                "SELECT o.id, o.event_id, o.dedupe_key, o.merchant_id, o.order_id, o.topic, o.payload, \
                 o.created_at, o.attempts, m.webhook_url, m.webhook_secret \
                 FROM outbox o JOIN merchants m ON m.id = o.merchant_id WHERE {condition}"
            )
        };
        let row = match key {
            EventKey::Row(id) => {
                sqlx::query(&sql("o.id = $1"))
                    .bind(id)
                    .fetch_optional(self.db.pool())
                    .await?
            }
            EventKey::Public(event_id) => {
                sqlx::query(&sql("o.event_id = $1"))
                    .bind(event_id)
                    .fetch_optional(self.db.pool())
                    .await?
            }
        };
        let Some(r) = row else { return Ok(None) };
        let event = crate::outbox::from_row(&r)?;
        let endpoint = match (
            r.try_get::<Option<String>, _>("webhook_url")?,
            r.try_get::<Option<String>, _>("webhook_secret")?,
        ) {
            (Some(u), Some(s)) => Some((u, s)),
            _ => None,
        };
        Ok(Some((event, r.try_get("attempts")?, endpoint)))
    }

    /// Sends a claimed event and schedules what follows. `Ok(true)`: delivered.
    async fn deliver_scheduled(&self, id: i64) -> Result<bool, sqlx::Error> {
        let Some((event, attempts, endpoint)) = self.event_and_endpoint(EventKey::Row(id)).await?
        else {
            return Ok(false);
        };
        let Some((url, secret)) = endpoint else {
            sqlx::query(
                "UPDATE outbox SET delivery = 'no_endpoint', claimed_until = NULL WHERE id = $1",
            )
            .bind(id)
            .execute(self.db.pool())
            .await?;
            return Ok(false);
        };
        let attempt = attempts + 1;
        let sent = self.send(&event, &url, &secret).await;
        let (delivery, next_at) = if sent.ok {
            ("delivered", sent.at)
        } else {
            match SCHEDULE_SECS.get(attempts as usize) {
                Some(wait) => (
                    "pending",
                    sent.at + (*wait as f64 * 1000.0 * self.time_scale).round() as i64,
                ),
                None => ("failed", sent.at),
            }
        };
        let mut tx = self.db.pool().begin().await?;
        log_attempt(&mut tx, id, attempt, false, &url, &sent).await?;
        sqlx::query(
            "UPDATE outbox SET delivery = $1, attempts = $2, next_attempt_at = $3, claimed_until = NULL, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END WHERE id = $5",
        )
        .bind(delivery)
        .bind(attempt)
        .bind(next_at)
        .bind(sent.at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        ::metrics::counter!("webhook_deliveries_total", "outcome" => if sent.ok { "delivered" } else { "failed_attempt" })
            .increment(1);
        if delivery == "failed" {
            tracing::warn!(event = %event.event_id, merchant = %event.merchant_id, attempts = attempt, "webhook given up after the whole schedule");
        }
        Ok(sent.ok)
    }

    /// Sends an event again now, by hand, whatever its state; a 2xx marks it delivered. The
    /// merchant's id scopes it: another merchant's event is "no event".
    pub async fn redeliver(
        &self,
        merchant_id: &MerchantId,
        event_id: &str,
    ) -> Result<bool, WebhookError> {
        let Some((event, attempts, endpoint)) = self
            .event_and_endpoint(EventKey::Public(event_id))
            .await?
            .filter(|(e, _, _)| e.merchant_id == *merchant_id)
        else {
            return Err(WebhookError::NoEvent(event_id.to_string()));
        };
        let (url, secret) = endpoint.ok_or(WebhookError::NoEndpoint)?;
        let sent = self.send(&event, &url, &secret).await;
        let mut tx = self.db.pool().begin().await?;
        log_attempt(&mut tx, event.id, attempts + 1, true, &url, &sent).await?;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, \
             delivery = CASE WHEN $1 = 1 THEN 'delivered' ELSE delivery END, \
             delivered_at = CASE WHEN $1 = 1 THEN $2 ELSE delivered_at END WHERE id = $3",
        )
        .bind(i64::from(sent.ok))
        .bind(sent.at)
        .bind(event.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sent.ok)
    }

    async fn send(&self, event: &OutboxEvent, url: &str, secret: &str) -> Sent {
        let body = body(event);
        let at = crate::infra::clock::now_ms();
        let started = Instant::now();
        let signature = signature(secret, at / 1000, body.as_bytes());
        let answer = self
            .http
            .post(
                url,
                &[
                    ("content-type", "application/json"),
                    (SIGNATURE_HEADER, &signature),
                    ("ScanPay-Event-Id", &event.event_id),
                ],
                body,
            )
            .await;
        let (status, response, error) = match answer {
            Ok(a) => (
                Some(i64::from(a.status)),
                Some(a.body.chars().take(RESPONSE_KEPT).collect()),
                None,
            ),
            Err(SendError::Target(t)) => (None, None, Some(format!("refused: {t}"))),
            Err(SendError::Transport(e)) => (None, None, Some(e)),
        };
        Sent {
            ok: status.is_some_and(|s| (200..300).contains(&s)),
            status,
            response,
            error,
            at,
            duration_ms: started.elapsed().as_millis() as i64,
        }
    }
}

async fn log_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    outbox_id: i64,
    attempt: i64,
    manual: bool,
    url: &str,
    sent: &Sent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_attempts (outbox_id, attempt, manual, at, url, status, response, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(outbox_id)
    .bind(attempt)
    .bind(i64::from(manual))
    .bind(sent.at)
    .bind(url)
    .bind(sent.status)
    .bind(sent.response.as_deref())
    .bind(sent.error.as_deref())
    .bind(sent.duration_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body_in_hex() {
        // Computed independently: Python's hmac.new(b"key", b"1.{}", sha256).hexdigest().
        assert_eq!(
            super::signature("key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(
            super::signature("key", 1, b"{}"),
            super::signature("key2", 1, b"{}")
        );
    }
}
