//! The sandbox's trades and refunds: what its gateways create, move, refund and settle.

use super::*;

/// One trade as the sandbox stores it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Trade {
    pub id: String,
    pub channel: String,
    pub out_trade_no: String,
    pub account: String,
    pub amount: i64,
    pub subject: String,
    pub notify_url: String,
    pub request_digest: String,
    pub state: String,
    pub trade_no: String,
    pub refunded: i64,
    pub faults: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    /// The service provider that made it for `account` (partner mode); `None`: its own.
    pub via: Option<String>,
    /// The product that made it: WeChat `NATIVE`, `JSAPI`, `MWEB`; Alipay `NATIVE`
    /// (precreate), `CREATE`, `WAP`.
    pub trade_type: String,
    /// The buyer it was made for (JSAPI, alipay.trade.create).
    pub payer: Option<String>,
    /// The app that payer signed in to (WeChat JSAPI): the page pays under that appId.
    pub payer_app: Option<String>,
    /// Where the cashier sends the buyer back (H5 `redirect_url`, WAP `return_url`).
    pub return_url: Option<String>,
}

impl Sandbox {
    pub(crate) async fn trade_by_out_no(
        &self,
        channel: &str,
        out_trade_no: &str,
    ) -> Result<Option<Trade>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM sandbox_trades WHERE channel = ?1 AND out_trade_no = ?2")
            .bind(channel)
            .bind(out_trade_no)
            .fetch_optional(&self.pool)
            .await
    }

    pub(crate) async fn trade(&self, id: &str) -> Result<Option<Trade>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM sandbox_trades WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Creates a trade, or returns the existing one when the same order is sent again.
    /// `Err(None)` when the out_trade_no is taken by a different order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_trade(
        &self,
        channel: &str,
        out_trade_no: &str,
        account: &str,
        via: Option<&str>,
        amount: i64,
        subject: &str,
        notify_url: &str,
        digest: &str,
        expires_at: Option<i64>,
    ) -> Result<Result<Trade, Option<Trade>>, sqlx::Error> {
        if let Some(t) = self.trade_by_out_no(channel, out_trade_no).await? {
            return Ok(if t.request_digest == digest && t.account == account {
                Ok(t)
            } else {
                Err(Some(t))
            });
        }
        let trade_no = match channel {
            "alipay" => {
                format!("2026{}", &now_ms().to_string()[..10]) + &token(14).to_ascii_uppercase()
            }
            _ => format!("4200{}", now_ms()) + &token(10).to_ascii_uppercase(),
        };
        let inserted = sqlx::query(
            "INSERT INTO sandbox_trades (id, channel, out_trade_no, account, amount, subject, notify_url, request_digest, \
             state, trade_no, expires_at, created_at, via) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'created', ?9, ?10, ?11, ?12) \
             ON CONFLICT (channel, out_trade_no) DO NOTHING",
        )
        .bind(token(24))
        .bind(channel)
        .bind(out_trade_no)
        .bind(account)
        .bind(amount)
        .bind(subject)
        .bind(notify_url)
        .bind(digest)
        .bind(trade_no)
        .bind(expires_at)
        .bind(now_ms())
        .bind(via)
        .execute(&self.pool)
        .await?;
        let t = self
            .trade_by_out_no(channel, out_trade_no)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        // Lost a race with an identical or different concurrent create: judge as a repeat.
        if inserted.rows_affected() == 0 && t.request_digest != digest {
            return Ok(Err(Some(t)));
        }
        Ok(Ok(t))
    }

    /// Moves a trade from one of `from` to `to`; false when it was in no such state.
    pub(crate) async fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
    ) -> Result<bool, sqlx::Error> {
        let placeholders = (0..from.len())
            .map(|i| format!("?{}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE sandbox_trades SET state = ?1, paid_at = CASE WHEN ?1 = 'paid' THEN ?2 ELSE paid_at END \
             WHERE id = ?{} AND state IN ({placeholders})",
            from.len() + 3
        );
        let mut q = sqlx::query(&sql).bind(to).bind(now_ms());
        for f in from {
            q = q.bind(*f);
        }
        Ok(q.bind(id).execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Records a refund once per idempotency key and counts the answer given about it;
    /// `None` when it would exceed what was paid. A new refund is `SUCCESS` at once, or
    /// `PROCESSING` / `ABNORMAL` as the trade's faults say; with a `notify_url` (WeChat) its
    /// refund notification is scheduled for when it is final.
    pub(crate) async fn refund(
        &self,
        trade: &Trade,
        out_refund_no: &str,
        amount: i64,
        notify_url: Option<&str>,
    ) -> Result<Option<SandboxRefund>, sqlx::Error> {
        // Read, then write: take the write lock at BEGIN (waiting out the busy timeout). A
        // deferred transaction that reads first fails at once with SQLITE_BUSY when another
        // connection wrote meanwhile.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<RefundRow> = sqlx::query_as(
            "SELECT out_refund_no, refund_id, amount, status, answers, settles_at \
             FROM sandbox_refunds WHERE channel = ?1 AND out_refund_no = ?2",
        )
        .bind(&trade.channel)
        .bind(out_refund_no)
        .fetch_optional(&mut *tx)
        .await?;
        let existing = existing.map(SandboxRefund::from);
        if let Some(r) = existing {
            sqlx::query(
                "UPDATE sandbox_refunds SET answers = answers + 1 WHERE channel = ?1 AND out_refund_no = ?2",
            )
            .bind(&trade.channel)
            .bind(out_refund_no)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Some(self.settled(&trade.channel, r).await?));
        }
        let updated = sqlx::query(
            "UPDATE sandbox_trades SET refunded = refunded + ?1 WHERE id = ?2 AND state = 'paid' AND refunded + ?1 <= amount",
        )
        .bind(amount)
        .bind(&trade.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(None);
        }
        let faults = self.faults_for(&trade.faults);
        let (status, settles_at) = if faults.refund_abnormal && trade.channel == "wechat" {
            ("ABNORMAL", None)
        } else if faults.refund_slow {
            ("PROCESSING", Some(now_ms() + self.slow_refund_ms()))
        } else {
            ("SUCCESS", None)
        };
        let refund_id = format!("50{}", now_ms()) + &token(8);
        sqlx::query(
            "INSERT INTO sandbox_refunds (channel, out_refund_no, trade_id, amount, refund_id, created_at, \
             status, answers, settles_at, notify_url) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
        )
        .bind(&trade.channel)
        .bind(out_refund_no)
        .bind(&trade.id)
        .bind(amount)
        .bind(&refund_id)
        .bind(now_ms())
        .bind(status)
        .bind(settles_at)
        .bind(notify_url)
        .execute(&mut *tx)
        .await?;
        if notify_url.is_some() && !faults.drop {
            enqueue_refund_notice(
                &mut tx,
                trade,
                out_refund_no,
                settles_at.unwrap_or(now_ms()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(SandboxRefund {
            out_refund_no: out_refund_no.to_string(),
            refund_id,
            amount,
            status: status.to_string(),
            answers: 0,
            settles_at,
            fresh: true,
        }))
    }

    /// A refund as the refund query sees it (a processing one done once its time came).
    pub(crate) async fn refund_by_no(
        &self,
        channel: &str,
        out_refund_no: &str,
    ) -> Result<Option<(SandboxRefund, String)>, sqlx::Error> {
        let row: Option<RefundRowOfTrade> = sqlx::query_as(
            "SELECT out_refund_no, refund_id, amount, status, answers, settles_at, trade_id \
             FROM sandbox_refunds WHERE channel = ?1 AND out_refund_no = ?2",
        )
        .bind(channel)
        .bind(out_refund_no)
        .fetch_optional(&self.pool)
        .await?;
        let Some((out_refund_no, refund_id, amount, status, answers, settles_at, trade_id)) = row
        else {
            return Ok(None);
        };
        let r = SandboxRefund::from((
            out_refund_no,
            refund_id,
            amount,
            status,
            answers,
            settles_at,
        ));
        Ok(Some((self.settled(channel, r).await?, trade_id)))
    }

    /// `r`, done if it was processing and its time has come.
    async fn settled(
        &self,
        channel: &str,
        mut r: SandboxRefund,
    ) -> Result<SandboxRefund, sqlx::Error> {
        if r.status == "PROCESSING" && r.settles_at.is_some_and(|t| t <= now_ms()) {
            sqlx::query(
                "UPDATE sandbox_refunds SET status = 'SUCCESS' WHERE channel = ?1 AND out_refund_no = ?2 AND status = 'PROCESSING'",
            )
            .bind(channel)
            .bind(&r.out_refund_no)
            .execute(&self.pool)
            .await?;
            r.status = "SUCCESS".into();
        }
        Ok(r)
    }

    /// WeChat's abnormal-refund application: an `ABNORMAL` refund goes to the merchant's bank
    /// card, `PROCESSING` until it is done. False when the refund is not abnormal.
    pub(crate) async fn retry_abnormal(
        &self,
        refund_id: &str,
    ) -> Result<Option<SandboxRefund>, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT out_refund_no, trade_id FROM sandbox_refunds WHERE channel = 'wechat' AND refund_id = ?1 AND status = 'ABNORMAL'",
        )
        .bind(refund_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((out_refund_no, trade_id)) = row else {
            return Ok(None);
        };
        let settles_at = now_ms() + self.slow_refund_ms();
        sqlx::query(
            "UPDATE sandbox_refunds SET status = 'PROCESSING', settles_at = ?1 WHERE channel = 'wechat' AND out_refund_no = ?2",
        )
        .bind(settles_at)
        .bind(&out_refund_no)
        .execute(&mut *tx)
        .await?;
        let has_url: Option<(Option<String>,)> =
            sqlx::query_as("SELECT notify_url FROM sandbox_refunds WHERE channel = 'wechat' AND out_refund_no = ?1")
                .bind(&out_refund_no)
                .fetch_optional(&mut *tx)
                .await?;
        if has_url.is_some_and(|(u,)| u.is_some()) {
            sqlx::query(
                "INSERT INTO sandbox_deliveries (trade_id, notify_id, stale, next_at, created_at, out_refund_no) \
                 VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            )
            .bind(&trade_id)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(settles_at)
            .bind(now_ms())
            .bind(&out_refund_no)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(self
            .refund_by_no("wechat", &out_refund_no)
            .await?
            .map(|(r, _)| r))
    }

    /// How long a slow refund takes: a minute, time-scaled.
    fn slow_refund_ms(&self) -> i64 {
        (SLOW_REFUND_MS as f64 * self.settings.time_scale).round() as i64
    }
}

/// How long a `refund_slow` refund stays processing (before the time scale).
const SLOW_REFUND_MS: i64 = 60_000;

/// Schedules WeChat's refund notification for `out_refund_no`, due at `due`.
async fn enqueue_refund_notice(
    tx: &mut sqlx::SqliteConnection,
    trade: &Trade,
    out_refund_no: &str,
    due: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sandbox_deliveries (trade_id, notify_id, stale, next_at, created_at, out_refund_no) \
         VALUES (?1, ?2, 0, ?3, ?4, ?5)",
    )
    .bind(&trade.id)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(due)
    .bind(now_ms())
    .bind(out_refund_no)
    .execute(tx)
    .await?;
    Ok(())
}

type RefundRow = (String, String, i64, String, i64, Option<i64>);
/// A refund row and its trade's id.
type RefundRowOfTrade = (String, String, i64, String, i64, Option<i64>, String);

impl From<RefundRow> for SandboxRefund {
    fn from(
        (out_refund_no, refund_id, amount, status, answers, settles_at): RefundRow,
    ) -> SandboxRefund {
        SandboxRefund {
            out_refund_no,
            refund_id,
            amount,
            status,
            answers,
            settles_at,
            fresh: false,
        }
    }
}

/// One refund as the sandbox keeps it.
#[derive(Debug, Clone)]
pub(crate) struct SandboxRefund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub amount: i64,
    /// `PROCESSING`, `SUCCESS`, `ABNORMAL` or `CLOSED` (WeChat's words).
    pub status: String,
    /// How many refund calls were answered about it before this one.
    pub answers: i64,
    pub settles_at: Option<i64>,
    /// Made by this call (not a repeat).
    pub fresh: bool,
}
