//! One order in full: attempts, refunds, webhooks and a timeline merged from the order's
//! events, its provider notifications and its webhook deliveries.

use super::{internal, rows_of};
use crate::merchants::MerchantId;
use crate::orders::{self, OrderId, OrderStatus};
use crate::payments::inbox::Outcome;
use crate::payments::refunds;
use crate::payments::Payments;
use app::merchant::{
    AttemptRow, OrderDetail, RefundRow, TimelineEntry, TimelineSource, Tone, WebhookRow,
};
use app::money::Amount;
use app::services::ServiceError;
use sqlx::Row;

/// One of the merchant's orders in full; `None` for no such order or another merchant's.
pub async fn detail(
    payments: &Payments,
    public_url: &str,
    merchant_id: &MerchantId,
    order_id: &OrderId,
) -> Result<Option<OrderDetail>, ServiceError> {
    let db = payments.db();
    let Some(order) = orders::get(db, order_id)
        .await
        .map_err(internal)?
        .filter(|o| o.merchant_id == *merchant_id)
    else {
        return Ok(None);
    };
    let pending: i64 = sqlx::query("SELECT refund_pending FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(db.pool())
        .await
        .and_then(|r| r.try_get("refund_pending"))
        .map_err(internal)?;
    let pending = Amount::from_fen(pending.max(0)).map_err(internal)?;
    let now = crate::infra::clock::now_ms();
    let refundable = if matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) {
        // What was paid, less what was refunded and what refunds in flight hold.
        order
            .amount
            .checked_sub(order.refunded_amount)
            .and_then(|left| left.checked_sub(pending))
            .unwrap_or(Amount::ZERO)
    } else {
        Amount::ZERO
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
                .find(|(t, _)| *t == a.out_trade_no.as_str())
                .map(|(_, left)| Amount::from_fen((*left).max(0)).unwrap_or(Amount::ZERO)),
            out_trade_no: a.out_trade_no.into_string(),
            channel: a.channel,
            status: a.status,
            created_at: a.created_at,
            closed_at: a.closed_at,
            error: a.error,
            method: a.method,
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
            status: r.status,
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
                source: TimelineSource::Webhook,
                what: format!("{} → {answer}", event.topic),
                detail: format!(
                    "{} attempt {}{}, {} ms: {}",
                    a.url,
                    a.attempt,
                    if a.manual { " (by hand)" } else { "" },
                    a.duration_ms,
                    a.response.clone().unwrap_or_default()
                ),
                tone: if ok { Tone::Ok } else { Tone::Warn },
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
                Tone::Bad
            } else if kind == "status.paid" || kind == "refund.succeeded" {
                Tone::Ok
            } else {
                Tone::Info
            };
        timeline.push(TimelineEntry {
            at,
            source: TimelineSource::Order,
            what: kind,
            detail: summary(&detail),
            tone,
        });
    }
    for n in crate::payments::inbox::for_order(db, order_id)
        .await
        .map_err(internal)?
    {
        let tone = match n.outcome {
            Some(Outcome::Accepted) => Tone::Ok,
            Some(Outcome::Duplicate) => Tone::Info,
            Some(Outcome::Retry) | None => Tone::Warn,
            Some(Outcome::Rejected) => Tone::Bad,
        };
        timeline.push(TimelineEntry {
            at: n.received_at,
            source: TimelineSource::Notification,
            what: format!("{} {}", n.channel, n.outcome_name()),
            detail: format!(
                "{}{} bytes from {}",
                n.reason.map(|r| format!("{r}; ")).unwrap_or_default(),
                n.body_size,
                n.remote_addr.unwrap_or_else(|| "?".into())
            ),
            tone,
        });
    }
    timeline.sort_by_key(|e| e.at);
    let closable = matches!(order.status, OrderStatus::Created | OrderStatus::Pending);
    let row = rows_of(db, vec![order.clone()])
        .await
        .map_err(internal)?
        .pop()
        .ok_or_else(|| internal("the order vanished"))?;
    let shop_code = match &order.shop_code {
        Some(code) => Some((
            crate::shop_codes::get(db, code)
                .await
                .map_err(internal)?
                .map(|c| c.name)
                .unwrap_or_default(),
            code.clone(),
        )),
        None => None,
    };
    Ok(Some(OrderDetail {
        shop_code,
        row,
        expires_at: order.expires_at,
        paid_at: order.paid_at,
        provider_trade_no: order.provider_trade_no.clone(),
        checkout_url: format!("{public_url}/checkout/{order_id}"),
        aggregate_url,
        qr_svg,
        refundable,
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
