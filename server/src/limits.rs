//! Rate limits that hold for the whole deployment: the merchant API's per-key limit and the
//! board's sign-in limiter.
//!
//! Each limit is GCRA, the generic cell rate algorithm: a token bucket of `count` tokens
//! refilled over `per`, kept as one number per key, the theoretical arrival time (`tat`) of
//! the next request. A request at `now` may go when `max(tat, now) + interval - per <= now`
//! (interval = per / count), and then `tat` becomes `max(tat, now) + interval`; a key idle
//! for `per` has its whole burst back. One number per key makes the shared form a single
//! conditional upsert.
//!
//! Where it is kept follows the engine. SQLite is one node by construction (the file is
//! locked), so the numbers live in this process. On PostgreSQL every node of a cluster uses
//! the `rate_limits` table, so N nodes allow the configured rate, not N times it, and a
//! restart forgets nothing (through a pool of its own whose commits skip the wait for the
//! disk: half the cost, and a crash can only forget the last moments of a limit).

use crate::infra::clock::now_ms;
use crate::infra::db::{DatabaseUrl, Engine};
use crate::infra::db::{Db, DbError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// `count` requests per `per`, all of them at once if the key was idle for `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub fn per_minute(count: u32) -> Rate {
        Rate {
            count: count.max(1),
            per: Duration::from_secs(60),
        }
    }

    fn per_ms(&self) -> i64 {
        i64::try_from(self.per.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Milliseconds one request uses up (at least one: a rate above one per millisecond
    /// is held to that, with its whole burst).
    fn interval_ms(&self) -> i64 {
        (self.per_ms() / i64::from(self.count.max(1))).max(1)
    }
}

/// The key must wait this many whole seconds (at least one) before its next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("rate limited; retry in {} s", .0.retry_after_secs)]
    Limited(Limited),
    #[error("rate limit store: {0}")]
    Store(#[from] sqlx::Error),
}

impl Limited {
    fn from_ms(ms: i64) -> Limited {
        Limited {
            retry_after_secs: u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1000),
        }
    }
}

/// One step of GCRA for a key whose theoretical arrival time is `tat` (`None`: never seen
/// or forgotten): the new `tat` if a request at `now` may go, else the milliseconds to wait.
pub fn step(tat: Option<i64>, now: i64, rate: Rate) -> Result<i64, i64> {
    let next = tat.map_or(now, |t| t.max(now)) + rate.interval_ms();
    let wait = next - rate.per_ms() - now;
    if wait <= 0 {
        Ok(next)
    } else {
        Err(wait)
    }
}

/// Where the limits are kept: in this process (one node) or in the shared database.
pub enum Limiter {
    Local(Mutex<HashMap<String, i64>>),
    Shared(Db),
}

/// Local keys kept before idle ones are dropped (an idle key is the same as a missing one).
const LOCAL_KEYS: usize = 10_000;

/// Connections of the shared limiter's own pool.
const SHARED_POOL: u32 = 4;

impl Limiter {
    /// The limiter of a deployment on `url`: on PostgreSQL shared, through a small pool of
    /// its own whose commits do not wait for the disk ([`Db::connect_relaxed`]: a crash may
    /// forget the last moments of a limit, which costs nothing); local on SQLite.
    pub async fn for_deployment(url: &DatabaseUrl) -> Result<Limiter, DbError> {
        Ok(match url.engine {
            Engine::Postgres => Limiter::Shared(Db::connect_relaxed(url, SHARED_POOL).await?),
            Engine::Sqlite => Limiter::local(),
        })
    }

    pub fn local() -> Limiter {
        Limiter::Local(Mutex::new(HashMap::new()))
    }

    fn with_local<T>(
        map: &Mutex<HashMap<String, i64>>,
        f: impl FnOnce(&mut HashMap<String, i64>) -> T,
    ) -> T {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > LOCAL_KEYS {
            let now = now_ms();
            map.retain(|_, tat| *tat > now);
        }
        f(&mut map)
    }

    /// Takes one request's worth for `key`, or says how long to wait (taking nothing). Atomic
    /// across nodes: concurrent requests never take more than the rate allows.
    pub async fn take(&self, key: &str, rate: Rate) -> Result<(), LimitError> {
        let now = now_ms();
        match self {
            Limiter::Local(map) => Self::with_local(map, |map| {
                let next = step(map.get(key).copied(), now, rate)
                    .map_err(|ms| LimitError::Limited(Limited::from_ms(ms)))?;
                map.insert(key.to_string(), next);
                Ok(())
            }),
            Limiter::Shared(db) => {
                // The same step as `step`, done by the database under the row's lock.
                let taken: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
                     ON CONFLICT (key) DO UPDATE \
                     SET tat = (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3 \
                     WHERE (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3 - $4 <= $2 \
                     RETURNING tat",
                )
                .bind(key)
                .bind(now)
                .bind(rate.interval_ms())
                .bind(rate.per_ms())
                .fetch_optional(db.pool())
                .await?;
                if taken.is_some() {
                    return Ok(());
                }
                let tat = stored(db, key).await?;
                match step(tat, now, rate) {
                    Ok(_) => Ok(()), // freed between the two statements: let it go
                    Err(ms) => Err(LimitError::Limited(Limited::from_ms(ms))),
                }
            }
        }
    }

    /// Whether `key` may make a request now, taking nothing.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<(), LimitError> {
        let now = now_ms();
        let tat = match self {
            Limiter::Local(map) => Self::with_local(map, |map| map.get(key).copied()),
            Limiter::Shared(db) => stored(db, key).await?,
        };
        step(tat, now, rate)
            .map(|_| ())
            .map_err(|ms| LimitError::Limited(Limited::from_ms(ms)))
    }

    /// Counts one request against `key` whether or not it is within the rate (a failed
    /// sign-in that already happened).
    pub async fn charge(&self, key: &str, rate: Rate) -> Result<(), sqlx::Error> {
        let now = now_ms();
        match self {
            Limiter::Local(map) => {
                Self::with_local(map, |map| {
                    let base = map.get(key).copied().map_or(now, |t| t.max(now));
                    map.insert(key.to_string(), base + rate.interval_ms());
                });
                Ok(())
            }
            Limiter::Shared(db) => {
                sqlx::query(
                    "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
                     ON CONFLICT (key) DO UPDATE \
                     SET tat = (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3",
                )
                .bind(key)
                .bind(now)
                .bind(rate.interval_ms())
                .execute(db.pool())
                .await?;
                Ok(())
            }
        }
    }

    /// Returns one request's worth taken by [`Limiter::take`] (it turned out not to count).
    pub async fn give_back(&self, key: &str, rate: Rate) -> Result<(), sqlx::Error> {
        match self {
            Limiter::Local(map) => {
                Self::with_local(map, |map| {
                    if let Some(tat) = map.get_mut(key) {
                        *tat -= rate.interval_ms();
                    }
                });
                Ok(())
            }
            Limiter::Shared(db) => {
                sqlx::query("UPDATE rate_limits SET tat = tat - $2 WHERE key = $1")
                    .bind(key)
                    .bind(rate.interval_ms())
                    .execute(db.pool())
                    .await?;
                Ok(())
            }
        }
    }

    /// Gives `key` its whole burst back.
    pub async fn forget(&self, key: &str) -> Result<(), sqlx::Error> {
        match self {
            Limiter::Local(map) => {
                Self::with_local(map, |map| map.remove(key));
                Ok(())
            }
            Limiter::Shared(db) => {
                sqlx::query("DELETE FROM rate_limits WHERE key = $1")
                    .bind(key)
                    .execute(db.pool())
                    .await?;
                Ok(())
            }
        }
    }
}

async fn stored(db: &Db, key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1")
        .bind(key)
        .fetch_optional(db.pool())
        .await
}

/// Drops the shared rows of keys idle long enough to have their whole burst back (a row whose
/// `tat` has passed means the same as no row). Returns how many went.
pub async fn forget_idle(db: &Db) -> Result<usize, sqlx::Error> {
    let gone = sqlx::query("DELETE FROM rate_limits WHERE tat <= $1")
        .bind(now_ms())
        .execute(db.pool())
        .await?;
    Ok(gone.rows_affected() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_request_per_interval() {
        let rate = Rate::per_minute(3);
        let now = 1_000_000;
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(step(tat, now, rate).expect("within the burst"));
        }
        assert_eq!(
            step(tat, now, rate),
            Err(20_000),
            "the fourth waits one interval"
        );
        assert_eq!(step(tat, now + 19_999, rate), Err(1));
        let after = step(tat, now + 20_000, rate).expect("one more after an interval");
        assert_eq!(step(Some(after), now + 20_000, rate), Err(20_000));
        // Idle for the whole period: the burst is back.
        let mut tat = Some(after);
        for _ in 0..3 {
            tat = Some(step(tat, now + 80_000, rate).expect("burst again"));
        }
        assert!(step(tat, now + 80_000, rate).is_err());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(Limited::from_ms(1).retry_after_secs, 1);
        assert_eq!(Limited::from_ms(1_000).retry_after_secs, 1);
        assert_eq!(Limited::from_ms(1_001).retry_after_secs, 2);
        assert_eq!(Limited::from_ms(-5).retry_after_secs, 1);
    }

    #[tokio::test]
    async fn the_local_limiter_takes_checks_charges_and_forgets() {
        let l = Limiter::local();
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(600),
        };
        l.take("k", rate).await.expect("first");
        l.check("k", rate).await.expect("one left");
        l.take("k", rate).await.expect("second");
        let Err(LimitError::Limited(wait)) = l.take("k", rate).await else {
            panic!("the third is limited");
        };
        assert_eq!(wait.retry_after_secs, 300);
        assert!(l.check("other", rate).await.is_ok(), "keys are separate");
        l.forget("k").await.expect("forget");
        l.take("k", rate).await.expect("the burst is back");
        l.charge("k", rate).await.expect("charge");
        l.charge("k", rate).await.expect("charged beyond the rate");
        let Err(LimitError::Limited(wait)) = l.check("k", rate).await else {
            panic!("limited after charges");
        };
        assert_eq!(
            wait.retry_after_secs, 600,
            "each charge beyond the rate adds its interval"
        );
    }
}
