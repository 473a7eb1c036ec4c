//! The order board's queries: a merchant's orders by the board's filters, today's totals, one
//! order in full (attempts, refunds, webhooks and a timeline merged from the order's events,
//! its provider notifications and its webhook deliveries), the board's changes, and the
//! developers page (API keys, the webhook endpoint). Every function takes the merchant's id
//! and touches nothing of another merchant's.

use crate::db::Db;
use crate::orders::{self, Order, OrderStatus, Search};
use crate::payments::{CloseError, PaymentError, Payments};
use crate::refunds::{self, RefundError};
use crate::webhooks::{WebhookError, Webhooks};
use app::channel::Channel;
use app::merchant::{
    AttemptRow, BoardData, BoardFilter, BoardRow, Change, ChannelTotal, DevelopersView, KeyRow,
    OrderDetail, RefundRow, Setting, SettingDone, TimelineEntry, WebhookRow,
};
use app::money::Amount;
use app::services::ServiceError;
use sqlx::Row;

/// Orders per board page.
pub const PAGE: i64 = 50;
/// Orders fetched per round trip by the CSV export.
pub const EXPORT_BATCH: i64 = 500;
/// The business day's offset from UTC: China time, no daylight saving.
const DAY_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
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
async fn rows_of(db: &Db, orders: Vec<Order>) -> Result<Vec<BoardRow>, sqlx::Error> {
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
    merchant_id: &str,
    filter: &BoardFilter,
    after: Option<String>,
) -> Result<BoardData, ServiceError> {
    let mut search = search_of(filter)?;
    if let Some(a) = &after {
        // A cursor must be one of the merchant's orders; anything else pages from the start.
        let ok = orders::get(db, a)
            .await
            .map_err(internal)?
            .is_some_and(|o| o.merchant_id == merchant_id);
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
    let now = orders::now_ms();
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

/// One of the merchant's orders in full; `None` for no such order or another merchant's.
pub async fn detail(
    payments: &Payments,
    public_url: &str,
    merchant_id: &str,
    order_id: &str,
) -> Result<Option<OrderDetail>, ServiceError> {
    let db = payments.db();
    let Some(order) = orders::get(db, order_id)
        .await
        .map_err(internal)?
        .filter(|o| o.merchant_id == merchant_id)
    else {
        return Ok(None);
    };
    let pending: i64 = sqlx::query("SELECT refund_pending FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(db.pool())
        .await
        .and_then(|r| r.try_get("refund_pending"))
        .map_err(internal)?;
    let now = orders::now_ms();
    let refundable = if matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) {
        order.amount.fen() - order.refunded_amount.fen() - pending
    } else {
        0
    };
    let aggregate_url = order
        .aggregate_token
        .as_ref()
        .map(|t| format!("{public_url}/q/{t}"));
    let qr_svg = aggregate_url
        .as_deref()
        .filter(|_| order.is_payable(now))
        .map(crate::checkout::qr_svg);
    // Second payments: paid attempts whose trade is not the one that paid the order.
    let extras: Vec<(String, i64)> = sqlx::query_as(
        "SELECT a.out_trade_no, o.amount - a.refund_reserved FROM payment_attempts a JOIN orders o ON o.id = a.order_id \
         WHERE a.order_id = $1 AND a.status = 'paid' AND a.provider_trade_no IS NOT NULL \
           AND a.provider_trade_no <> o.provider_trade_no",
    )
    .bind(order_id)
    .fetch_all(payments.db().pool())
    .await
    .map_err(internal)?;
    let attempts = payments
        .attempts(order_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|a| AttemptRow {
            extra_refundable: extras
                .iter()
                .find(|(t, _)| *t == a.out_trade_no)
                .map(|(_, left)| Amount::from_fen((*left).max(0)).unwrap_or(Amount::ZERO)),
            out_trade_no: a.out_trade_no,
            channel: a.channel,
            status: a.status.as_str().to_string(),
            created_at: a.created_at,
            closed_at: a.closed_at,
            error: a.error,
        })
        .collect();
    let refunds = refunds::for_order(payments, merchant_id, order_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|r| RefundRow {
            id: r.id,
            amount: r.amount,
            reason: r.reason,
            status: r.status.as_str().to_string(),
            created_at: r.created_at,
            error: r.error,
        })
        .collect();
    let mut timeline = Vec::new();
    let mut webhooks = Vec::new();
    for event in crate::outbox::for_order(db, order_id)
        .await
        .map_err(internal)?
    {
        let state = crate::webhooks::state(db, &event.event_id)
            .await
            .map_err(internal)?;
        let log = crate::webhooks::log(db, &event.event_id)
            .await
            .map_err(internal)?;
        for a in &log {
            let answer = a
                .status
                .map(|s| s.to_string())
                .or_else(|| a.error.clone())
                .unwrap_or_default();
            let ok = a.status.is_some_and(|s| (200..300).contains(&s));
            timeline.push(TimelineEntry {
                at: a.at,
                source: "webhook".into(),
                what: format!("{} → {answer}", event.topic),
                detail: format!(
                    "{} attempt {}{}, {} ms: {}",
                    a.url,
                    a.attempt,
                    if a.manual { " (by hand)" } else { "" },
                    a.duration_ms,
                    a.response.clone().unwrap_or_default()
                ),
                tone: if ok { "ok" } else { "warn" }.into(),
            });
        }
        webhooks.push(WebhookRow {
            event_id: event.event_id.clone(),
            topic: event.topic.clone(),
            delivery: state.delivery,
            attempts: state.attempts,
            last_answer: log.last().map(|a| {
                a.status
                    .map(|s| s.to_string())
                    .or_else(|| a.error.clone())
                    .unwrap_or_default()
            }),
        });
    }
    for (at, kind, detail) in orders::events(db, order_id).await.map_err(internal)? {
        let tone =
            if kind.starts_with("risk.") || kind == "refund.failed" || kind == "refund.abnormal" {
                "bad"
            } else if kind == "status.paid" || kind == "refund.succeeded" {
                "ok"
            } else {
                "info"
            };
        timeline.push(TimelineEntry {
            at,
            source: "order".into(),
            what: kind,
            detail: summary(&detail),
            tone: tone.into(),
        });
    }
    for n in crate::payments::inbox::for_order(db, order_id)
        .await
        .map_err(internal)?
    {
        let tone = match n.outcome.as_str() {
            "accepted" => "ok",
            "duplicate" => "info",
            "retry" | "received" => "warn",
            _ => "bad",
        };
        timeline.push(TimelineEntry {
            at: n.received_at,
            source: "notification".into(),
            what: format!("{} {}", n.channel, n.outcome),
            detail: format!(
                "{}{} bytes from {}",
                n.reason.map(|r| format!("{r}; ")).unwrap_or_default(),
                n.body_size,
                n.remote_addr.unwrap_or_else(|| "?".into())
            ),
            tone: tone.into(),
        });
    }
    timeline.sort_by_key(|e| e.at);
    let closable = matches!(order.status, OrderStatus::Created | OrderStatus::Pending);
    let row = rows_of(db, vec![order.clone()])
        .await
        .map_err(internal)?
        .pop()
        .ok_or_else(|| internal("the order vanished"))?;
    Ok(Some(OrderDetail {
        row,
        expires_at: order.expires_at,
        paid_at: order.paid_at,
        provider_trade_no: order.provider_trade_no.clone(),
        checkout_url: format!("{public_url}/checkout/{order_id}"),
        aggregate_url,
        qr_svg,
        refundable: Amount::from_fen(refundable.max(0)).unwrap_or(Amount::ZERO),
        closable,
        attempts,
        refunds,
        webhooks,
        timeline,
    }))
}

/// A timeline event's detail as one line: `key: value` pairs of its JSON object.
fn summary(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A change made on the board; a sentence for the person (a new order: its id).
pub async fn change(
    payments: &Payments,
    webhooks: &Webhooks,
    merchant_id: &str,
    default_expiry_secs: i64,
    action: Change,
) -> Result<String, ServiceError> {
    match action {
        Change::Refund {
            order_id,
            amount,
            reason,
        } => {
            let amount = Amount::parse_yuan(amount.trim())
                .map_err(|e| invalid(format!("Refund amount: {e}")))?;
            let refund = refunds::request(
                payments,
                merchant_id,
                &order_id,
                amount,
                Some(reason.as_str()),
            )
            .await
            .map_err(|e| match e {
                RefundError::Db(e) => internal(e),
                RefundError::Zero => invalid("Refund amount: at least 0.01 yuan."),
                RefundError::TooMuch { available } => invalid(format!(
                    "Refund amount: at most {} can still be refunded.",
                    Amount::from_fen(available).unwrap_or(Amount::ZERO)
                )),
                other => invalid(format!("Refund: {other}.")),
            })?;
            Ok(format!(
                "Refund {} of {}: {}.",
                refund.id,
                refund.amount,
                refund.status.as_str()
            ))
        }
        Change::Close { order_id } => {
            match payments
                .close_for_merchant(merchant_id, &order_id, "board")
                .await
            {
                Ok(_) => Ok("The order is closed.".into()),
                Err(CloseError::NotFound(_)) => Err(invalid(format!("No order {order_id}."))),
                Err(e @ CloseError::NotClosable(_)) => Err(invalid(format!("{e}."))),
                Err(CloseError::Payment(PaymentError::Provider { channel, source })) => {
                    Err(invalid(format!(
                        "{channel} could not close the code ({source}); nothing changed, try again."
                    )))
                }
                Err(CloseError::Payment(PaymentError::Busy)) => Err(invalid(
                    "A code for this order is being created; try again in a moment.",
                )),
                Err(CloseError::Payment(e)) => Err(internal(e)),
            }
        }
        Change::Redeliver { event_id } => match webhooks.redeliver(merchant_id, &event_id).await {
            Ok(true) => Ok("Delivered.".into()),
            Ok(false) => Ok("Sent; the endpoint did not answer 2xx (see the log).".into()),
            Err(WebhookError::NoEndpoint) => {
                Err(invalid("No webhook endpoint is set (scanpay webhook set)."))
            }
            Err(WebhookError::NoEvent(_)) => Err(invalid(format!("No event {event_id}."))),
            Err(e) => Err(internal(e)),
        },
        Change::RefundExtraPayment {
            order_id,
            out_trade_no,
        } => {
            match refunds::refund_extra_payment(
                payments,
                merchant_id,
                &order_id,
                &out_trade_no,
                Some("second payment"),
            )
            .await
            {
                Ok(r) => Ok(format!(
                    "Refund {} of the second payment ({}): {}.",
                    r.id,
                    r.amount,
                    r.status.as_str()
                )),
                Err(RefundError::Db(e)) => Err(internal(e)),
                Err(RefundError::TooMuch { .. }) => {
                    Err(invalid("That payment is refunded already."))
                }
                Err(other) => Err(invalid(format!("Refund: {other}."))),
            }
        }
        Change::RefundToBankCard { refund_id } => {
            match refunds::retry_abnormal(payments, merchant_id, &refund_id).await {
                Ok(r) => Ok(format!(
                    "Refund {} is on its way to your bank card: {}.",
                    r.id,
                    r.status.as_str()
                )),
                Err(RefundError::Db(e)) => Err(internal(e)),
                Err(RefundError::NotFound(_)) => Err(invalid(format!("No refund {refund_id}."))),
                Err(other) => Err(invalid(format!("{other}."))),
            }
        }
        Change::NewOrder { amount, subject } => {
            let amount =
                Amount::parse_yuan(amount.trim()).map_err(|e| invalid(format!("Amount: {e}")))?;
            crate::checkout::create_counter_order(
                payments,
                merchant_id,
                amount,
                subject.trim().to_string(),
                default_expiry_secs,
            )
            .await
        }
    }
}

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@` (a spreadsheet
/// formula) defused with a `'`, since subjects come from shops' customers.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The CSV export's header line.
pub const CSV_HEADER: &str = "order_id,created_at,subject,amount,refunded,currency,status,late,channel,paid_at,provider_trade_no\r\n";

/// Orders as CSV lines (money as yuan with two places, times in China time).
pub fn csv_lines(orders: &[Order]) -> String {
    let mut out = String::new();
    for o in orders {
        let fields = [
            o.id.as_str().to_string(),
            app::clock::beijing(o.created_at),
            o.subject.clone(),
            o.amount.yuan_string(),
            o.refunded_amount.yuan_string(),
            "CNY".to_string(),
            o.status.as_str().to_string(),
            o.late.to_string(),
            o.paid_channel
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            o.paid_at.map(app::clock::beijing).unwrap_or_default(),
            o.provider_trade_no.clone().unwrap_or_default(),
        ];
        out.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// The developers page of a merchant: its API keys (live first, then revoked) and its
/// webhook endpoint.
pub async fn developers(db: &Db, merchant_id: &str) -> Result<DevelopersView, ServiceError> {
    let mut keys: Vec<KeyRow> = crate::api_keys::list(db, merchant_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            revoked: k.revoked_at.is_some(),
        })
        .collect();
    keys.sort_by_key(|k| k.revoked); // stable: newest first within each group
    let (webhook_url, has_secret) = webhook_endpoint(db, merchant_id).await?;
    Ok(DevelopersView {
        keys,
        webhook_url,
        has_secret,
    })
}

/// A merchant's webhook URL, and whether its signing secret exists.
async fn webhook_endpoint(
    db: &Db,
    merchant_id: &str,
) -> Result<(Option<String>, bool), ServiceError> {
    let row = sqlx::query(
        "SELECT webhook_url, CAST(CASE WHEN webhook_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_secret \
         FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(db.pool())
    .await
    .map_err(internal)?;
    match row {
        Some(r) => Ok((
            r.try_get::<Option<String>, _>("webhook_url")
                .map_err(internal)?,
            r.try_get::<i64, _>("has_secret").map_err(internal)? == 1,
        )),
        None => Ok((None, false)),
    }
}

/// A change on a merchant's developers page. A new key or secret is answered this once.
pub async fn setting(
    db: &Db,
    webhooks: &Webhooks,
    merchant_id: &str,
    change: Setting,
) -> Result<SettingDone, ServiceError> {
    let done = |message: String, secret: Option<String>| Ok(SettingDone { message, secret });
    match change {
        Setting::CreateKey { name } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(invalid("Key name: 1 to 64 characters, e.g. \"web shop\"."));
            }
            let (key, secret) = crate::api_keys::create(db, merchant_id, name)
                .await
                .map_err(internal)?;
            tracing::info!(merchant = merchant_id, key = %key.id, "API key created on the board");
            done(
                format!(
                    "API key \"{}\" created. Copy it now: it is not shown again.",
                    key.name
                ),
                Some(secret),
            )
        }
        Setting::RevokeKey { key_id } => {
            if !crate::api_keys::revoke(db, merchant_id, &key_id)
                .await
                .map_err(internal)?
            {
                return Err(invalid("No such live API key."));
            }
            tracing::info!(merchant = merchant_id, key = %key_id, "API key revoked on the board");
            done(
                "API key revoked: requests with it now get 401.".into(),
                None,
            )
        }
        Setting::SetWebhook { url } => {
            let (_, had_secret) = webhook_endpoint(db, merchant_id).await?;
            let secret = webhooks
                .set_endpoint(merchant_id, url.trim())
                .await
                .map_err(|e| match e {
                    WebhookError::Url(why) => invalid(format!("Webhook URL: {why}.")),
                    other => internal(other),
                })?;
            if had_secret {
                done(
                    "Webhook endpoint saved; its signing secret is unchanged.".into(),
                    None,
                )
            } else {
                done(
                    "Webhook endpoint saved. Copy its signing secret now: it is not shown again."
                        .into(),
                    Some(secret),
                )
            }
        }
        Setting::RotateSecret => {
            if webhook_endpoint(db, merchant_id).await?.0.is_none() {
                return Err(invalid("Set a webhook endpoint first."));
            }
            let secret = crate::webhooks::rotate_secret(db, merchant_id)
                .await
                .map_err(internal)?;
            done(
                "New signing secret: events are signed with it from now on. Copy it now: it is not shown again."
                    .into(),
                Some(secret),
            )
        }
    }
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

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("tea"), "tea");
        assert_eq!(csv_field("tea, green"), "\"tea, green\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1+1,x"), "\"'-1+1,x\"");
    }
}
