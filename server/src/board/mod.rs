//! The order board's queries: a merchant's orders by the board's filters, today's totals, one
//! order in full (attempts, refunds, webhooks and a timeline merged from the order's events,
//! its provider notifications and its webhook deliveries), the board's changes, and the
//! developers page (API keys, the webhook endpoint). Every function takes the merchant's id
//! and touches nothing of another merchant's.
//!
//! Rooms: this file (filters, pages, totals), `detail`, `actions` (the board's changes), `csv`
//! (the export's lines), `developers` (keys and webhook settings).

mod actions;
mod csv;
mod detail;
mod developers;

pub use actions::change;
pub use csv::{csv_lines, CSV_HEADER, EXPORT_BATCH};
pub use detail::detail;
pub use developers::{developers, setting};

use crate::infra::db::Db;
use crate::merchants::MerchantId;
use crate::orders::{self, Order, OrderStatus, Search};
use app::channel::Channel;
use app::merchant::{BoardData, BoardFilter, BoardRow, ChannelTotal};
use app::money::Amount;
use app::services::ServiceError;
use sqlx::Row;

/// Orders per board page.
pub const PAGE: i64 = 50;
/// The business day's offset from UTC: China time, no daylight saving.
const DAY_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

fn internal(e: impl std::fmt::Display + 'static) -> ServiceError {
    crate::service_error::fault(e)
}

/// Midnight (China time) starting the day `YYYY-MM-DD`, in Unix ms.
fn day_start(date: &str, field: &str) -> Result<i64, ServiceError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date.trim(), &format)
        .map_err(|_| invalid(format!("{field}: a date like 2026-11-27")))?;
    Ok(day.midnight().assume_utc().unix_timestamp() * 1000 - DAY_OFFSET_MS)
}

/// The start of today (China time) in Unix ms.
pub fn today_start(now_ms: i64) -> i64 {
    (now_ms + DAY_OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - DAY_OFFSET_MS
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The board's filters as a search; a bad field is named.
pub fn search_of(filter: &BoardFilter) -> Result<Search, ServiceError> {
    let status = given(&filter.status)
        .map(|s| OrderStatus::parse(s).ok_or_else(|| invalid(format!("Status: {s:?} is unknown"))))
        .transpose()?;
    let channel = given(&filter.channel)
        .map(|c| Channel::parse(c).ok_or_else(|| invalid(format!("Wallet: {c:?} is unknown"))))
        .transpose()?;
    let amount = |v: &Option<String>, field: &str| {
        given(v)
            .map(|a| Amount::parse_yuan(a).map_err(|e| invalid(format!("{field}: {e}"))))
            .transpose()
    };
    let search = Search {
        status,
        channel,
        created_from: given(&filter.from)
            .map(|d| day_start(d, "From"))
            .transpose()?,
        created_before: given(&filter.to)
            .map(|d| day_start(d, "To").map(|t| t + DAY_MS))
            .transpose()?,
        min_amount: amount(&filter.min, "Min amount")?,
        max_amount: amount(&filter.max, "Max amount")?,
        text: given(&filter.q).map(|q| q.chars().take(100).collect()),
        starting_after: None,
    };
    Ok(search)
}

/// The board rows of orders: the wallet (paid with, or of the latest code) and the risk flag,
/// read for all of them in one query.
pub(super) async fn rows_of(db: &Db, orders: Vec<Order>) -> Result<Vec<BoardRow>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let ids = (1..=orders.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT o.id, \
         (SELECT a.channel FROM payment_attempts a WHERE a.order_id = o.id ORDER BY a.seq DESC LIMIT 1) AS channel, \
         (SELECT COUNT(*) FROM risk_events r WHERE r.order_id = o.id) AS risks \
         FROM orders o WHERE o.id IN ({ids})"
    );
    let mut q = sqlx::query(&sql);
    for o in &orders {
        q = q.bind(o.id.as_str());
    }
    let mut extra = std::collections::HashMap::new();
    for r in q.fetch_all(db.pool()).await? {
        let id: String = r.try_get("id")?;
        let latest: Option<String> = r.try_get("channel")?;
        let risks: i64 = r.try_get("risks")?;
        extra.insert(id, (latest, risks));
    }
    Ok(orders
        .into_iter()
        .map(|o| {
            let (latest, risks) = extra.remove(o.id.as_str()).unwrap_or((None, 0));
            BoardRow {
                id: o.id.as_str().to_string(),
                created_at: o.created_at,
                subject: o.subject,
                amount: o.amount,
                refunded: o.refunded_amount,
                status: o.status,
                late: o.late,
                channel: o
                    .paid_channel
                    .or_else(|| latest.as_deref().and_then(Channel::parse)),
                risky: risks > 0,
            }
        })
        .collect())
}

/// One page of a merchant's board.
pub async fn page(
    db: &Db,
    merchant_id: &MerchantId,
    filter: &BoardFilter,
    after: Option<String>,
) -> Result<BoardData, ServiceError> {
    let mut search = search_of(filter)?;
    if let Some(a) = &after {
        // A cursor must be one of the merchant's orders; anything else pages from the start.
        let ok = match orders::OrderId::parse(a) {
            Some(id) => orders::get(db, &id)
                .await
                .map_err(internal)?
                .is_some_and(|o| o.merchant_id == *merchant_id),
            None => false,
        };
        search.starting_after = ok.then(|| a.clone());
    }
    let mut found = orders::list(db, merchant_id, &search, PAGE + 1)
        .await
        .map_err(internal)?;
    let more = found.len() as i64 > PAGE;
    found.truncate(PAGE as usize);
    let next_after = more
        .then(|| found.last().map(|o| o.id.as_str().to_string()))
        .flatten();
    let rows = rows_of(db, found).await.map_err(internal)?;
    let now = crate::infra::clock::now_ms();
    let since = today_start(now);
    let totals = sqlx::query(
        "SELECT paid_channel, COUNT(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total FROM orders \
         WHERE merchant_id = $1 AND paid_at >= $2 AND paid_channel IS NOT NULL GROUP BY paid_channel",
    )
    .bind(merchant_id)
    .bind(since)
    .fetch_all(db.pool())
    .await
    .map_err(internal)?;
    let mut today = Vec::new();
    for c in Channel::ALL {
        let row = totals.iter().find(|r| {
            r.try_get::<String, _>("paid_channel")
                .is_ok_and(|p| p == c.as_str())
        });
        let (count, fen) = match row {
            Some(r) => (
                r.try_get::<i64, _>("n").map_err(internal)?,
                r.try_get::<i64, _>("total").map_err(internal)?,
            ),
            None => (0, 0),
        };
        today.push(ChannelTotal {
            channel: c,
            count,
            amount: Amount::from_fen(fen).unwrap_or(Amount::ZERO),
        });
    }
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM orders WHERE merchant_id = $1 AND late = 1 AND paid_at >= $2) AS late, \
         (SELECT COUNT(*) FROM risk_events r JOIN orders o ON o.id = r.order_id \
          WHERE o.merchant_id = $1 AND r.created_at >= $2) AS risk",
    )
    .bind(merchant_id)
    .bind(since)
    .fetch_one(db.pool())
    .await
    .map_err(internal)?;
    Ok(BoardData {
        rows,
        next_after,
        today,
        today_late: counts.try_get("late").map_err(internal)?,
        today_risk: counts.try_get("risk").map_err(internal)?,
        server_now: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_midnight_china_time() {
        // 2026-11-27 00:00 +08:00 = 2026-11-26 16:00 UTC.
        let start = day_start("2026-11-27", "From").expect("date");
        assert_eq!(start, 1_795_737_600_000 - 8 * 3600 * 1000);
        assert_eq!(today_start(start + 5), start);
        assert_eq!(today_start(start - 1), start - DAY_MS);
        assert!(day_start("27/11/2026", "From").is_err());
    }

    #[test]
    fn filters_name_the_bad_field() {
        let bad = |f: BoardFilter| match search_of(&f) {
            Err(ServiceError::Invalid(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        };
        assert!(bad(BoardFilter {
            min: Some("1.234".into()),
            ..Default::default()
        })
        .starts_with("Min amount"));
        assert!(bad(BoardFilter {
            status: Some("gone".into()),
            ..Default::default()
        })
        .starts_with("Status"));
        assert!(bad(BoardFilter {
            to: Some("tomorrow".into()),
            ..Default::default()
        })
        .starts_with("To"));
        let s = search_of(&BoardFilter {
            status: Some("paid".into()),
            channel: Some(String::new()),
            max: Some("12.50".into()),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(s.status, Some(OrderStatus::Paid));
        assert_eq!(s.channel, None);
        assert_eq!(s.max_amount.map(|a| a.fen()), Some(1250));
    }
}
