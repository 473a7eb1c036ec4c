//! The background workers' kit: a round every tick, and the claim (a lease) by which several
//! workers, on several nodes, never handle one row at once.

use crate::infra::db::Db;
use std::time::Duration;

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
