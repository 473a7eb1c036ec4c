//! The one order search: the board, the CSV export and `GET /api/v1/orders` share it.

use super::*;
use crate::merchants::MerchantId;

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
    merchant_id: &MerchantId,
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
