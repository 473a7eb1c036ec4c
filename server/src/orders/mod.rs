//! Orders: the model, ids that fit both providers, creation, and the one function that changes
//! an order's status ([`transition`]).
//!
//! A transition is a single conditional `UPDATE … WHERE status IN (<allowed predecessors>)`
//! plus an `order_events` row (and, for paid / expired / closed, an `outbox` event), in one
//! transaction. Two nodes, or two copies of a callback, racing to make the same change cannot
//! both win: the second finds no row to update.

pub use app::status::{self, OrderStatus};

use crate::db::Db;
use app::money::Amount;
use sqlx::Row;

/// An order id: 6–32 characters of `[0-9A-Za-z_]`, so it is valid as Alipay's and WeChat
/// Pay's `out_trade_no` without a mapping table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(s: &str) -> Option<OrderId> {
        let ok = (6..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| OrderId(s.to_string()))
    }

    /// A new id: the UTC time to the second (so ids sort by creation) and 12 random
    /// alphanumerics (71 bits: not guessable). 26 characters.
    pub fn generate() -> OrderId {
        use rand::distributions::{Alphanumeric, DistString};
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        OrderId(stamp + &Alphanumeric.sample_string(&mut rand::thread_rng(), 12))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long an order can be paid when its creator does not say: 15 minutes.
pub const DEFAULT_EXPIRY_SECS: i64 = 15 * 60;
/// The shortest life an order may be given (short enough to try expiry by hand).
pub const MIN_EXPIRY_SECS: i64 = 5;
/// The longest: one day.
pub const MAX_EXPIRY_SECS: i64 = 24 * 60 * 60;

/// An order as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub merchant_id: String,
    pub amount: Amount,
    pub subject: String,
    pub status: OrderStatus,
    pub late: bool,
    pub refunded_amount: Amount,
    pub provider_trade_no: Option<String>,
    /// The wallet the order was paid with.
    pub paid_channel: Option<app::channel::Channel>,
    pub return_url: Option<String>,
    /// The token of the order's aggregate code, `/q/<token>`: 128 random bits.
    pub aggregate_token: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    /// The merchant's own key/value data (a JSON object), when given.
    pub metadata: Option<serde_json::Value>,
}

impl Order {
    /// Whether a customer can still be offered a code: not paid, closed or expired, and
    /// before `expires_at`.
    pub fn is_payable(&self, now_ms: i64) -> bool {
        matches!(self.status, OrderStatus::Created | OrderStatus::Pending)
            && now_ms < self.expires_at
    }
}

/// What creating an order needs.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub merchant_id: String,
    pub amount: Amount,
    pub subject: String,
    /// How long the order can be paid, in seconds.
    pub expires_in_secs: i64,
    pub return_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("an order amount must be at least 0.01 yuan")]
    ZeroAmount,
    #[error("the subject must be 1 to 127 characters")]
    Subject,
    #[error("an order must be payable for {min} seconds to {max} seconds", min = MIN_EXPIRY_SECS, max = MAX_EXPIRY_SECS)]
    Expiry,
    #[error(
        "the return URL must be an absolute http:// or https:// URL of at most 512 characters"
    )]
    ReturnUrl,
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("an order cannot go from {from} to {to}")]
    Forbidden { from: OrderStatus, to: OrderStatus },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Creates an order in status `created`, with its first timeline event.
pub async fn create(db: &Db, new: &NewOrder) -> Result<Order, OrderError> {
    create_with_metadata(db, new, None).await
}

/// [`create`] with the merchant's own key/value data (a JSON object, checked by the caller).
pub async fn create_with_metadata(
    db: &Db,
    new: &NewOrder,
    metadata: Option<&serde_json::Value>,
) -> Result<Order, OrderError> {
    if new.amount.fen() < 1 {
        return Err(OrderError::ZeroAmount);
    }
    if !(1..=127).contains(&new.subject.chars().count()) {
        return Err(OrderError::Subject);
    }
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&new.expires_in_secs) {
        return Err(OrderError::Expiry);
    }
    if new
        .return_url
        .as_deref()
        .is_some_and(|u| !valid_return_url(u))
    {
        return Err(OrderError::ReturnUrl);
    }
    let id = OrderId::generate();
    let token = random_token();
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO orders (id, merchant_id, amount, currency, subject, status, late, refunded_amount, return_url, \
         expires_at, created_at, updated_at, aggregate_token, metadata) \
         VALUES ($1, $2, $3, 'CNY', $4, 'created', $5, 0, $6, $7, $8, $8, $9, $10)",
    )
    .bind(id.as_str())
    .bind(&new.merchant_id)
    .bind(new.amount.fen())
    .bind(&new.subject)
    .bind(0_i64)
    .bind(new.return_url.as_deref())
    .bind(now + new.expires_in_secs * 1000)
    .bind(now)
    .bind(&token)
    .bind(metadata.map(|m| m.to_string()))
    .execute(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        id.as_str(),
        "status.created",
        &serde_json::json!({ "amount": new.amount.fen() }),
    )
    .await?;
    tx.commit().await?;
    get(db, id.as_str())
        .await?
        .ok_or_else(|| OrderError::NotFound(id.0.clone()))
}

/// Whether a return URL is acceptable: absolute http(s), at most 512 characters.
pub fn valid_return_url(url: &str) -> bool {
    url.len() <= 512
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url.parse::<http::Uri>().is_ok()
}

/// Which of a merchant's orders to list; every field narrows the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub status: Option<OrderStatus>,
    /// Paid with this wallet, or (unpaid) offered a code of it.
    pub channel: Option<app::channel::Channel>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_before: Option<i64>,
    pub min_amount: Option<Amount>,
    pub max_amount: Option<Amount>,
    /// Part of the subject or order id (any case), or a provider trade number.
    pub text: Option<String>,
    /// The cursor: only orders after this one (an order id of the merchant). New orders
    /// arriving meanwhile never shift the pages after it.
    pub starting_after: Option<String>,
}

/// A merchant's orders matching `search`, newest first (by creation time, then id), at most
/// `limit`.
pub async fn list(
    db: &Db,
    merchant_id: &str,
    search: &Search,
    limit: i64,
) -> Result<Vec<Order>, OrderError> {
    enum Arg {
        S(String),
        I(i64),
    }
    let mut args = vec![Arg::S(merchant_id.to_string())];
    let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1");
    let arg = |args: &mut Vec<Arg>, a: Arg| {
        args.push(a);
        format!("${}", args.len())
    };
    if let Some(s) = search.status {
        let n = arg(&mut args, Arg::S(s.as_str().into()));
        sql.push_str(&format!(" AND status = {n}"));
    }
    if let Some(c) = search.channel {
        let n = arg(&mut args, Arg::S(c.as_str().into()));
        sql.push_str(&format!(
            " AND (paid_channel = {n} OR (paid_channel IS NULL AND EXISTS \
             (SELECT 1 FROM payment_attempts a WHERE a.order_id = orders.id AND a.channel = {n})))"
        ));
    }
    if let Some(t) = search.created_from {
        let n = arg(&mut args, Arg::I(t));
        sql.push_str(&format!(" AND created_at >= {n}"));
    }
    if let Some(t) = search.created_before {
        let n = arg(&mut args, Arg::I(t));
        sql.push_str(&format!(" AND created_at < {n}"));
    }
    if let Some(a) = search.min_amount {
        let n = arg(&mut args, Arg::I(a.fen()));
        sql.push_str(&format!(" AND amount >= {n}"));
    }
    if let Some(a) = search.max_amount {
        let n = arg(&mut args, Arg::I(a.fen()));
        sql.push_str(&format!(" AND amount <= {n}"));
    }
    if let Some(text) = search
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let like = arg(&mut args, Arg::S(format!("%{escaped}%")));
        let exact = arg(&mut args, Arg::S(text.to_string()));
        sql.push_str(&format!(
            " AND (LOWER(subject) LIKE {like} ESCAPE '\\' OR LOWER(id) LIKE {like} ESCAPE '\\' \
             OR provider_trade_no = {exact})"
        ));
    }
    if let Some(c) = &search.starting_after {
        let n = arg(&mut args, Arg::S(c.clone()));
        let at = format!("(SELECT created_at FROM orders WHERE id = {n})");
        sql.push_str(&format!(
            " AND (created_at < {at} OR (created_at = {at} AND id < {n}))"
        ));
    }
    let n = arg(&mut args, Arg::I(limit));
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {n}"));
    let mut q = sqlx::query(&sql);
    for a in args {
        q = match a {
            Arg::S(s) => q.bind(s),
            Arg::I(i) => q.bind(i),
        };
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(order_from_row).collect()
}

/// 128 random bits as 22 URL-safe characters: an unguessable token.
pub(crate) fn random_token() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 22)
}

/// Adds an event to an order's timeline inside the caller's transaction.
pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    order_id: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_events (order_id, kind, detail, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(kind)
    .bind(detail.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const ORDER_COLUMNS: &str =
    "id, merchant_id, amount, subject, status, late, refunded_amount, provider_trade_no, \
     paid_channel, return_url, aggregate_token, expires_at, paid_at, created_at, metadata";

/// An order's timeline, oldest first: `(time, kind, detail)`.
pub async fn events(
    db: &Db,
    order_id: &str,
) -> Result<Vec<(i64, String, serde_json::Value)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, kind, detail FROM order_events WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let detail: Option<String> = r.try_get("detail")?;
            Ok((
                r.try_get("created_at")?,
                r.try_get("kind")?,
                detail
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(serde_json::Value::Null),
            ))
        })
        .collect()
}

/// Adds an event to an order's timeline on its own.
pub async fn add_event(
    db: &Db,
    order_id: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    insert_event(&mut tx, order_id, kind, detail).await?;
    tx.commit().await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Order>, OrderError> {
    let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| order_from_row(&r)).transpose()
}

/// The order whose aggregate code is `/q/<token>`.
pub async fn by_aggregate_token(db: &Db, token: &str) -> Result<Option<Order>, OrderError> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE aggregate_token = $1"
    ))
    .bind(token)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| order_from_row(&r)).transpose()
}

fn order_from_row(r: &sqlx::any::AnyRow) -> Result<Order, OrderError> {
    let corrupt =
        |what: &str| sqlx::Error::Decode(format!("orders.{what} holds an impossible value").into());
    Ok(Order {
        id: OrderId(r.try_get("id")?),
        merchant_id: r.try_get("merchant_id")?,
        amount: Amount::from_fen(r.try_get("amount")?).map_err(|_| corrupt("amount"))?,
        subject: r.try_get("subject")?,
        status: OrderStatus::parse(&r.try_get::<String, _>("status")?)
            .ok_or_else(|| corrupt("status"))?,
        late: r.try_get::<i64, _>("late")? == 1,
        refunded_amount: Amount::from_fen(r.try_get("refunded_amount")?)
            .map_err(|_| corrupt("refunded_amount"))?,
        provider_trade_no: r.try_get("provider_trade_no")?,
        paid_channel: match r.try_get::<Option<String>, _>("paid_channel")? {
            None => None,
            Some(c) => {
                Some(app::channel::Channel::parse(&c).ok_or_else(|| corrupt("paid_channel"))?)
            }
        },
        return_url: r.try_get("return_url")?,
        aggregate_token: r.try_get("aggregate_token")?,
        expires_at: r.try_get("expires_at")?,
        paid_at: r.try_get("paid_at")?,
        created_at: r.try_get("created_at")?,
        metadata: match r.try_get::<Option<String>, _>("metadata")? {
            None => None,
            Some(m) => Some(serde_json::from_str(&m).map_err(|_| corrupt("metadata"))?),
        },
    })
}

/// The outcome of a transition that was allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transitioned {
    pub to: OrderStatus,
    /// The order's merchant (whose board hears of the change).
    pub merchant_id: String,
    /// A payment that reached an expired or closed order.
    pub late: bool,
}

/// Moves an order to `to` if its current status allows it, recording `detail` in the
/// timeline, all in one transaction. `Forbidden` (with the status found) when it does not:
/// then nothing changed.
pub async fn transition(
    db: &Db,
    id: &str,
    to: OrderStatus,
    detail: serde_json::Value,
) -> Result<Transitioned, OrderError> {
    let mut tx = db.pool().begin().await?;
    match transition_in(&mut tx, id, to, detail).await? {
        Some(done) => {
            tx.commit().await?;
            Ok(done)
        }
        None => {
            drop(tx);
            Err(refusal(db, id, to).await)
        }
    }
}

/// [`transition`] inside the caller's transaction, so other writes (the attempt, the provider
/// trade number) commit or roll back with it. `None`: the status does not allow it (or the
/// order is missing); nothing was written.
pub(crate) async fn transition_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    to: OrderStatus,
    detail: serde_json::Value,
) -> Result<Option<Transitioned>, OrderError> {
    let from_set = to.predecessors();
    if from_set.is_empty() {
        return Ok(None);
    }
    let now = now_ms();
    // Placeholders $5.. hold the allowed predecessors.
    let list = (0..from_set.len())
        .map(|i| format!("${}", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE orders SET status = $1, updated_at = $2, \
         late = CASE WHEN $1 = 'paid' AND status IN ('expired', 'closed') THEN $3 ELSE late END, \
         paid_at = CASE WHEN $1 = 'paid' THEN $2 ELSE paid_at END \
         WHERE id = $4 AND status IN ({list}) RETURNING late, merchant_id, amount"
    );
    let mut q = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(now)
        .bind(1_i64)
        .bind(id);
    for s in from_set {
        q = q.bind(s.as_str());
    }
    let Some(row) = q.fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let late = row.try_get::<i64, _>("late")? == 1;
    let mut detail = detail;
    if late && to == OrderStatus::Paid {
        detail["late"] = serde_json::json!(true);
    }
    insert_event(tx, id, &format!("status.{to}"), &detail).await?;
    let merchant_id: String = row.try_get("merchant_id")?;
    if let Some(topic) = outbox_topic(to) {
        let payload = serde_json::json!({
            "order_id": id,
            "status": to,
            "amount": row.try_get::<i64, _>("amount")?,
            "currency": "CNY",
            "late": late && to == OrderStatus::Paid,
            "at": now,
            "detail": detail,
        });
        crate::outbox::insert_for_order(tx, &merchant_id, id, topic, &payload).await?;
    }
    Ok(Some(Transitioned {
        to,
        merchant_id,
        late: late && to == OrderStatus::Paid,
    }))
}

/// The merchant-visible transitions: each writes one outbox event (webhook, live push).
fn outbox_topic(to: OrderStatus) -> Option<&'static str> {
    match to {
        OrderStatus::Paid => Some("order.paid"),
        OrderStatus::Expired => Some("order.expired"),
        OrderStatus::Closed => Some("order.closed"),
        _ => None,
    }
}

/// Why a transition to `to` was not made: the order is missing, or its status (read after
/// the fact) does not allow it.
pub(crate) async fn refusal(db: &Db, id: &str, to: OrderStatus) -> OrderError {
    match get(db, id).await {
        Ok(Some(current)) => OrderError::Forbidden {
            from: current.status,
            to,
        },
        Ok(None) => OrderError::NotFound(id.to_string()),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::OrderId;

    #[test]
    fn generated_ids_fit_both_providers_and_differ() {
        let a = OrderId::generate();
        let b = OrderId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 26);
        assert_eq!(OrderId::parse(a.as_str()), Some(a));
        assert!(OrderId::parse("short").is_none());
        assert!(OrderId::parse(&"x".repeat(33)).is_none());
        assert!(OrderId::parse("has-dash1").is_none());
        assert!(OrderId::parse("ORD_2026_ok").is_some());
    }
}
