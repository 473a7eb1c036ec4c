//! Storage: one sqlx pool per process over SQLite (embedded default) or PostgreSQL.
//!
//! Both engines go through sqlx's `Any` driver with the same runtime-checked queries, so no
//! database is needed at compile time. Queries use `$1` placeholders, which both engines
//! accept; money is `BIGINT` minor units and times are `BIGINT` Unix milliseconds, which the
//! `Any` driver carries losslessly. Each engine has its own migrations folder (the DDL differs
//! in places) with the same numbered steps; they run at start-up and by `scanpay migrate`.

use crate::infra::secret::Secret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn display_name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// A validated database URL. The URL itself is secret (it may carry a password).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub engine: Engine,
    pub url: Secret<String>,
}

impl DatabaseUrl {
    /// `sqlite:` (the file is created when missing) or `postgres://` / `postgresql://`.
    pub fn parse(s: &str) -> Option<DatabaseUrl> {
        let (engine, s) = if s.starts_with("sqlite:") {
            (Engine::Sqlite, sqlite_url_creating_file(s))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            (Engine::Postgres, s.to_string())
        } else {
            return None;
        };
        Some(DatabaseUrl {
            engine,
            url: Secret::new(s),
        })
    }
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for the lock before failing with "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {engine}: {source}")]
    Connect {
        engine: &'static str,
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "another scanpay node is serving {path}: an embedded SQLite database serves one node; \
         for several nodes use PostgreSQL (SCANPAY_DATABASE_URL=postgres://…)"
    )]
    SecondNode { path: String },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// Holds the lock that makes an SQLite database single-node while it lives.
#[derive(Debug)]
pub struct NodeLock(#[allow(dead_code)] Option<std::fs::File>);

/// Takes the single-node lock of an SQLite database file (`<file>.node-lock`, an exclusive
/// OS lock, released when the process ends however it ends). PostgreSQL and in-memory
/// databases need none.
pub fn lock_single_node(url: &DatabaseUrl) -> Result<NodeLock, DbError> {
    let raw = url.url.expose();
    let Some(file) = (url.engine == Engine::Sqlite)
        .then(|| sqlite_file(raw))
        .flatten()
    else {
        return Ok(NodeLock(None));
    };
    create_parent_dir(file)?;
    let path = format!("{file}.node-lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DbError::Lock {
            path: path.clone(),
            source,
        })?;
    match lock_file.try_lock() {
        Ok(()) => Ok(NodeLock(Some(lock_file))),
        Err(std::fs::TryLockError::WouldBlock) => Err(DbError::SecondNode {
            path: file.to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(DbError::Lock { path, source }),
    }
}

/// The process's database handle. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
}

impl Db {
    /// Opens the pool. For SQLite, creates the file's directory, and sets WAL mode, a busy
    /// timeout and foreign keys on every connection.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Db, DbError> {
        Self::open(url, max_connections, false).await
    }

    /// A pool for state a crash may lose without harm (the rate limits' arrival times): on
    /// PostgreSQL its commits do not wait for the write-ahead log to reach the disk
    /// (`synchronous_commit = off`), which halves a small write's time; the database stays
    /// consistent, only the last fraction of a second of such writes can be lost. On SQLite
    /// it is the same as [`Db::connect`].
    pub async fn connect_relaxed(url: &DatabaseUrl, max_connections: u32) -> Result<Db, DbError> {
        Self::open(url, max_connections, true).await
    }

    async fn open(url: &DatabaseUrl, max_connections: u32, relaxed: bool) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let engine = url.engine;
        let raw = url.url.expose();
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if engine == Engine::Sqlite {
            if let Some(file) = sqlite_file(raw) {
                create_parent_dir(file)?;
            }
            if sqlite_file(raw).is_none() {
                // An in-memory database lives as long as its one connection.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(
                        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str(),
                    )
                    .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        if relaxed && engine == Engine::Postgres {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET synchronous_commit = off").await?;
                    Ok(())
                })
            });
        }
        let options = AnyConnectOptions::from_str(raw).map_err(|source| DbError::Connect {
            engine: engine.display_name(),
            source,
        })?;
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                engine: engine.display_name(),
                source,
            })?;
        Ok(Db { pool, engine })
    }

    /// Applies every migration not yet applied. Safe to run again: applied steps are skipped,
    /// and a changed applied step is an error rather than a silent divergence.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The newest applied migration, or 0 before the first.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; for shutdown and tests.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file path of a `sqlite:` URL, or `None` for an in-memory database.
/// Creates the folder an SQLite database file lives in, when it is missing (a fresh clone
/// has no `data/`).
fn create_parent_dir(file: &str) -> Result<(), DbError> {
    match Path::new(file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// An `sqlite:` URL that creates its file when missing: without a `mode` parameter sqlx opens
/// an existing file only (`unable to open database file`), which nobody writing
/// `sqlite:///var/lib/scanpay/scanpay.db` expects. An explicit `mode` is kept.
pub fn sqlite_url_creating_file(url: &str) -> String {
    if sqlite_file(url).is_none() {
        return url.to_string();
    }
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    if query.split('&').any(|kv| kv.starts_with("mode=")) {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    let in_memory = path.is_empty() || path == ":memory:" || url.contains("mode=memory");
    (!in_memory).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn sqlite_urls_without_a_mode_create_their_file() {
        use super::sqlite_url_creating_file as f;
        assert_eq!(
            f("sqlite:///var/lib/scanpay/scanpay.db"),
            "sqlite:///var/lib/scanpay/scanpay.db?mode=rwc"
        );
        assert_eq!(
            f("sqlite://x.db?cache=shared"),
            "sqlite://x.db?cache=shared&mode=rwc"
        );
        assert_eq!(f("sqlite://x.db?mode=ro"), "sqlite://x.db?mode=ro");
        assert_eq!(f("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn sqlite_urls_name_their_file_or_memory() {
        assert_eq!(
            sqlite_file("sqlite://data/scanpay.db?mode=rwc"),
            Some("data/scanpay.db")
        );
        assert_eq!(sqlite_file("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_file("sqlite:x.db"), Some("x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
