//! The sandbox gateways: protocol-faithful simulators of Alipay's OpenAPI gateway and the
//! WeChat Pay v3 API, so a merchant can try ScanPay, and our tests can run, with no provider
//! account and no internet. They are a separate system from ScanPay: their own keys
//! (`keys.rs`), their own SQLite file (`data/sandbox/sandbox.db`), their own HTTP endpoints
//! under `/sandbox` (in-process) or on their own port (`scanpay sandbox`). ScanPay reaches
//! them over HTTP through the same provider clients it uses in production.
//!
//! - `alipay.rs`: `POST /sandbox/alipay/gateway.do` (precreate, query, close, refund).
//! - `wechat.rs`: `/sandbox/wechat/v3/…` (native, query, close, refund, refund query).
//! - `wallet.rs`: the page behind every QR code (`/sandbox/pay/{id}`), and `/sandbox/`, a page
//!   listing trades and notification deliveries.
//! - `deliver.rs`: signed notifications on the real redelivery schedules, time-scaled,
//!   persisted, with fault injection (`Faults`).
//! - `store.rs`: its trades and refunds (creating, moving, refunding, settling).

mod alipay;
pub mod deliver;
pub mod faults;
pub mod keys;
mod store;
mod wallet;
mod wechat;

pub use faults::Faults;
pub(crate) use store::{SandboxRefund, Trade};

use axum::Router;
use keys::SandboxKeys;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The merchant identities the sandbox knows (its "registered" merchant).
pub const ALIPAY_APP_ID: &str = "9021000000000001";
pub const ALIPAY_SELLER_ID: &str = "2088000000000001";
pub const WECHAT_APPID: &str = "wx8888888888888888";
pub const WECHAT_MCHID: &str = "1900000001";
/// The serial of the merchant's API certificate, as WeChat Pay knows it.
pub const WECHAT_MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD00000001";
/// The id of the sandbox's "WeChat Pay public key".
pub const WECHAT_KEY_ID: &str = "PUB_KEY_ID_0119000000012026112700000000000001";

static SANDBOX_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sandbox");

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Keys(#[from] keys::SandboxKeyError),
    #[error("sandbox database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("sandbox database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Settings of one sandbox instance.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Its directory: keys and database.
    pub dir: PathBuf,
    /// The URL its endpoints are reached at, ending in `/sandbox`.
    pub base_url: String,
    /// Multiplies every redelivery wait (0.001: the whole 25 h schedule in 90 s).
    pub time_scale: f64,
    /// Faults applied to every trade, besides those chosen per trade.
    pub faults: Faults,
}

pub struct Sandbox {
    pool: SqlitePool,
    keys: SandboxKeys,
    settings: SandboxSettings,
    /// For notification delivery (a merchant must answer within 5 s).
    http: reqwest::Client,
}

/// The one clock (the sandbox keeps no time of its own).
pub(crate) use crate::infra::clock::now_ms;

/// A random token for ids the sandbox makes up.
pub(crate) fn token(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

impl Sandbox {
    /// Opens (creating on first start) the sandbox in `settings.dir`.
    pub async fn open(settings: SandboxSettings) -> Result<Arc<Sandbox>, SandboxError> {
        let keys = SandboxKeys::load_or_create(&settings.dir.join("keys"))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(settings.dir.join("sandbox.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        SANDBOX_MIGRATIONS.run(&pool).await?;
        let http = crate::providers::http_client(Duration::from_secs(3), Duration::from_secs(5));
        Ok(Arc::new(Sandbox {
            pool,
            keys,
            settings,
            http,
        }))
    }

    /// The routes, to be served under `/sandbox`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .merge(alipay::routes())
            .merge(wechat::routes())
            .merge(wallet::routes())
            .with_state(self.clone())
    }

    /// Starts the notification delivery loop; it stops when the returned handle is aborted.
    pub fn spawn_delivery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(deliver::run(self.clone()))
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    pub fn keys_dir(&self) -> &Path {
        &self.keys.dir
    }

    /// The URL of the wallet page for a trade: what the QR code encodes.
    fn wallet_url(&self, trade_id: &str) -> String {
        format!("{}/pay/{trade_id}", self.settings.base_url)
    }

    /// The faults in force for a trade: global ones plus its own.
    fn faults_for(&self, own: &str) -> Faults {
        self.settings
            .faults
            .clone()
            .merged(&Faults::parse(own).unwrap_or_default())
    }

    /// API-side faults: added latency, and whether this call fails (5xx) or hangs (timeout).
    async fn api_faults(&self) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        let f = &self.settings.faults;
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
        }
        let roll = rand::random::<u32>() % 100;
        if roll < f.timeout_pct {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        if roll < f.timeout_pct + f.error_pct {
            return Some(
                (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"code":"SYSTEM_ERROR","message":"injected"}"#,
                )
                    .into_response(),
            );
        }
        None
    }
}

/// A digest of what an order was created with, to tell a repeat from a conflicting reuse.
pub(crate) fn digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a ScanPay node needs to use a sandbox as its providers: the same settings an operator
/// would write for the real ones, pointing at the sandbox's URLs and generated keys.
pub fn provider_settings(
    keys_dir: &Path,
    gateway_base: &str,
) -> (
    crate::providers::config::AlipaySettings,
    crate::providers::config::WechatSettings,
) {
    let alipay = crate::providers::config::AlipaySettings {
        gateway: format!("{gateway_base}/alipay/gateway.do"),
        app_id: ALIPAY_APP_ID.into(),
        seller_id: ALIPAY_SELLER_ID.into(),
        private_key_file: keys::pair(keys_dir, "alipay-merchant").private,
        public_key_file: keys::pair(keys_dir, "alipay-gateway").public,
    };
    let wechat = crate::providers::config::WechatSettings {
        api_base: format!("{gateway_base}/wechat"),
        appid: WECHAT_APPID.into(),
        mchid: WECHAT_MCHID.into(),
        private_key_file: keys::pair(keys_dir, "wechat-merchant").private,
        cert_serial: WECHAT_MERCHANT_SERIAL.into(),
        public_key_file: keys::pair(keys_dir, "wechat-gateway").public,
        public_key_id: WECHAT_KEY_ID.into(),
        apiv3_key_file: keys::apiv3_key_file(keys_dir),
    };
    (alipay, wechat)
}
