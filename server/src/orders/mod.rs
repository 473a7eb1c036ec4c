//! Orders: the model, ids that fit both providers, creation, and the one function that changes
//! an order's status ([`transition`]).
//!
//! A transition is a single conditional `UPDATE … WHERE status IN (<allowed predecessors>)`
//! plus an `order_events` row (and, for paid / expired / closed, an `outbox` event), in one
//! transaction. Two nodes, or two copies of a callback, racing to make the same change cannot
//! both win: the second finds no row to update.
//!
//! The rooms: this file holds the model, creation and the reads; `search.rs` the one order
//! search (board, CSV, API); `transition.rs` the timeline and the status changes.

mod search;
mod transition;

pub use search::{list, Search};
pub use transition::{add_event, events, transition, Transitioned};
pub(crate) use transition::{insert_event, pay_in, transition_in, PaidBy};

pub use app::status::{self, OrderStatus};

pub use crate::ids::{OrderId, ORDER_ID_PATTERN};
use crate::infra::clock::now_ms;
use crate::infra::db::Db;
pub use crate::merchants::MerchantId;
use app::money::Amount;
use sqlx::Row;

/// How long an order can be paid when its creator does not say: 15 minutes.
pub const DEFAULT_EXPIRY_SECS: i64 = 15 * 60;
/// The shortest life an order may be given (short enough to try expiry by hand).
pub const MIN_EXPIRY_SECS: i64 = 5;
/// The longest: one day.
pub const MAX_EXPIRY_SECS: i64 = 24 * 60 * 60;
/// The longest subject, in characters (WeChat's limit for a description).
pub const MAX_SUBJECT_CHARS: usize = 127;
/// The longest return URL, in bytes.
pub const MAX_RETURN_URL: usize = 512;
/// A return URL: absolute http(s), a host name or IPv4 address, an optional port, then only
/// the characters a URL may hold unescaped (RFC 3986's reserved and unreserved, and `%`).
/// The merchant API's document states the same pattern.
pub const RETURN_URL_PATTERN: &str =
    r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?$";

/// An order as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub merchant_id: MerchantId,
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
    /// The shop's fixed code it was paid through (`/p/<code>`), if any.
    pub shop_code: Option<String>,
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
    pub merchant_id: MerchantId,
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
    #[error("the subject must be 1 to {MAX_SUBJECT_CHARS} characters")]
    Subject,
    #[error("an order must be payable for {min} seconds to {max} seconds", min = MIN_EXPIRY_SECS, max = MAX_EXPIRY_SECS)]
    Expiry,
    #[error(
        "the return URL must be an absolute http:// or https:// URL of at most {MAX_RETURN_URL} characters"
    )]
    ReturnUrl,
    #[error("the order {0} does not exist")]
    NotFound(String),
    #[error("an order cannot go from {from} to {to}")]
    Forbidden { from: OrderStatus, to: OrderStatus },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Stores an order in status `created`, with its first timeline event and the merchant's
/// own key/value data if any (a JSON object, checked by the caller). Storage only: the
/// merchant's live board hears of it through `Payments::create_order`, which the checkout,
/// the board and the API use.
pub async fn create(
    db: &Db,
    new: &NewOrder,
    metadata: Option<&serde_json::Value>,
) -> Result<Order, OrderError> {
    create_tagged(db, new, metadata, None).await
}

/// [`create`], tagged with the shop's fixed code it is paid through.
pub async fn create_tagged(
    db: &Db,
    new: &NewOrder,
    metadata: Option<&serde_json::Value>,
    shop_code: Option<&str>,
) -> Result<Order, OrderError> {
    if new.amount.fen() < 1 {
        return Err(OrderError::ZeroAmount);
    }
    if !(1..=MAX_SUBJECT_CHARS).contains(&new.subject.chars().count()) {
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
         expires_at, created_at, updated_at, aggregate_token, metadata, shop_code) \
         VALUES ($1, $2, $3, 'CNY', $4, 'created', $5, 0, $6, $7, $8, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&new.merchant_id)
    .bind(new.amount.fen())
    .bind(&new.subject)
    .bind(0_i64)
    .bind(new.return_url.as_deref())
    .bind(now + new.expires_in_secs * 1000)
    .bind(now)
    .bind(&token)
    .bind(metadata.map(|m| m.to_string()))
    .bind(shop_code)
    .execute(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        &id,
        "status.created",
        &match shop_code {
            Some(code) => serde_json::json!({ "amount": new.amount.fen(), "shop_code": code }),
            None => serde_json::json!({ "amount": new.amount.fen() }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &id)
        .await?
        .ok_or_else(|| OrderError::NotFound(id.to_string()))
}

/// Whether a return URL is acceptable: [`RETURN_URL_PATTERN`], at most
/// [`MAX_RETURN_URL`] bytes.
pub fn valid_return_url(url: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(RETURN_URL_PATTERN).expect("RETURN_URL_PATTERN is a regex")
    });
    url.len() <= MAX_RETURN_URL && PATTERN.is_match(url)
}

/// 128 random bits as 22 URL-safe characters: an unguessable token.
pub(crate) fn random_token() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 22)
}

const ORDER_COLUMNS: &str =
    "id, merchant_id, amount, subject, status, late, refunded_amount, provider_trade_no, \
     paid_channel, return_url, aggregate_token, expires_at, paid_at, created_at, metadata, shop_code";

pub async fn get(db: &Db, id: &OrderId) -> Result<Option<Order>, OrderError> {
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
        id: r.try_get("id")?,
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
        shop_code: r.try_get("shop_code")?,
    })
}
