//! The notification inbox: every provider notification stored exactly as it arrived (the
//! headers that matter, the body bytes, the remote address, the time) before anything else is
//! done with it, then marked with what processing decided. A row still `received` was
//! interrupted (a crash between storing and deciding); the provider's redelivery decides it.

use crate::ids::{OrderId, OutTradeNo};
use crate::infra::db::Db;
use crate::providers::Channel;
use sqlx::Row;

/// The headers kept with a notification: the signature headers, what identifies the sender
/// and a proxy's forwarding headers. Anything else (cookies, say) is not stored.
pub const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-real-ip",
    "request-id",
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-signature",
    "wechatpay-serial",
    "wechatpay-signature-type",
];

/// A notification as it arrived.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub channel: Channel,
    pub remote_addr: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// The body, cut at the size limit when it was larger.
    pub body: &'a [u8],
    /// The size received (larger than `body.len()` when cut).
    pub body_size: u64,
}

impl Received<'_> {
    pub fn truncated(&self) -> bool {
        self.body_size > self.body.len() as u64
    }
}

/// What processing decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: it paid the order, or was a state to record.
    Accepted,
    /// A copy of one taken already: answered success, changed nothing.
    Duplicate,
    /// Refused (forged, malformed, not ours): a risk event says why.
    Rejected,
    /// Our own transient fault: the provider was asked to send it again.
    Retry,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Rejected,
        Outcome::Retry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Retry => "retry",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What the inbox stores before processing has decided.
pub const RECEIVED: &str = "received";

/// The decision on one stored notification: the one record of what happened, from which
/// both the inbox row and the reply to the provider follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub notification_id: Option<String>,
    pub out_trade_no: Option<OutTradeNo>,
    pub order_id: Option<OrderId>,
    /// Refused before it could be read: the HTTP status and sentence of the reply (413 too
    /// large, 400 not UTF-8) instead of the provider's own refusal format.
    pub unreadable: Option<(u16, &'static str)>,
}

impl Decision {
    pub fn new(outcome: Outcome, reason: impl Into<Option<String>>) -> Decision {
        Decision {
            outcome,
            reason: reason.into(),
            notification_id: None,
            out_trade_no: None,
            order_id: None,
            unreadable: None,
        }
    }
}

/// A stored notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub channel: Channel,
    pub received_at: i64,
    pub remote_addr: Option<String>,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub body_size: i64,
    /// `None` while it is only received (processing did not decide yet).
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub notification_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub order_id: Option<String>,
}

/// How long a refused notification keeps its body. The row (headers, size, reason, time)
/// stays; only the body, which anyone on the internet can make up to 64 KiB long, is dropped.
/// Accepted notifications keep theirs: they are the record of money received.
pub const REFUSED_BODY_DAYS: i64 = 30;

/// Drops the bodies of refused notifications older than [`REFUSED_BODY_DAYS`]; returns how
/// many.
pub async fn forget_old_refused_bodies(db: &Db) -> Result<usize, sqlx::Error> {
    let cutoff = crate::infra::clock::now_ms() - REFUSED_BODY_DAYS * 24 * 3600 * 1000;
    let done = sqlx::query(
        "UPDATE notifications SET body = $1 WHERE outcome = 'rejected' AND received_at < $2 \
         AND body_size > 0 AND processed_at IS NOT NULL",
    )
    .bind(Vec::<u8>::new())
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() as usize)
}

/// Stores a notification as received; returns its row id.
pub async fn store(db: &Db, r: &Received<'_>) -> Result<i64, sqlx::Error> {
    let mut headers = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = r.headers.get(*name) {
            headers.insert(
                (*name).to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            );
        }
    }
    sqlx::query(
        "INSERT INTO notifications (channel, received_at, remote_addr, headers, body, body_size) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(r.channel.as_str())
    .bind(crate::infra::clock::now_ms())
    .bind(r.remote_addr)
    .bind(serde_json::Value::Object(headers).to_string())
    .bind(r.body.to_vec())
    .bind(r.body_size as i64)
    .fetch_one(db.pool())
    .await?
    .try_get("id")
}

/// Records what processing decided about notification `id`.
pub async fn decide(db: &Db, id: i64, d: &Decision) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET outcome = $1, reason = $2, notification_id = $3, out_trade_no = $4, \
         order_id = $5, processed_at = $6 WHERE id = $7",
    )
    .bind(d.outcome.as_str())
    .bind(d.reason.as_deref())
    .bind(d.notification_id.as_deref())
    .bind(d.out_trade_no.as_ref())
    .bind(d.order_id.as_ref())
    .bind(crate::infra::clock::now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, channel, received_at, remote_addr, headers, body, body_size, outcome, \
                       reason, notification_id, out_trade_no, order_id";

/// The notifications about one order (or naming one trade number), oldest first.
pub async fn for_trade(db: &Db, out_trade_no: &OutTradeNo) -> Result<Vec<Stored>, sqlx::Error> {
    select(db, "out_trade_no = $1", out_trade_no.as_str()).await
}

/// The notifications that were decided for one order, oldest first.
pub async fn for_order(db: &Db, order_id: &OrderId) -> Result<Vec<Stored>, sqlx::Error> {
    select(db, "order_id = $1", order_id.as_str()).await
}

/// The newest `limit` notifications, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Stored>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit.clamp(1, 10_000))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

async fn select(db: &Db, condition: &str, value: &str) -> Result<Vec<Stored>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE {condition} ORDER BY id"
    ))
    .bind(value)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

impl Stored {
    /// The outcome's name, `received` while undecided.
    pub fn outcome_name(&self) -> &'static str {
        self.outcome.map_or(RECEIVED, Outcome::as_str)
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Stored, sqlx::Error> {
    let corrupt = |what: &str| sqlx::Error::Decode(format!("notifications.{what}").into());
    let headers: String = r.try_get("headers")?;
    let outcome: String = r.try_get("outcome")?;
    Ok(Stored {
        id: r.try_get("id")?,
        channel: Channel::parse(&r.try_get::<String, _>("channel")?)
            .ok_or_else(|| corrupt("channel"))?,
        received_at: r.try_get("received_at")?,
        remote_addr: r.try_get("remote_addr")?,
        headers: serde_json::from_str(&headers).map_err(|e| sqlx::Error::Decode(e.into()))?,
        body: r.try_get("body")?,
        body_size: r.try_get("body_size")?,
        outcome: match Outcome::parse(&outcome) {
            Some(o) => Some(o),
            None if outcome == RECEIVED => None,
            None => return Err(corrupt("outcome")),
        },
        reason: r.try_get("reason")?,
        notification_id: r.try_get("notification_id")?,
        out_trade_no: r.try_get("out_trade_no")?,
        order_id: r.try_get("order_id")?,
    })
}
