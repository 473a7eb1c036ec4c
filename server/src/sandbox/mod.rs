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
mod bridge;
pub mod deliver;
pub mod faults;
mod inapp;
pub mod keys;
mod store;
mod wallet;
mod wechat;
mod wechat_auth;

pub use faults::Faults;
pub(crate) use store::{SandboxRefund, Trade};

use axum::Router;
pub use keys::SandboxAccount;
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
    #[error("a sandbox account name is letters, digits, - and _ (and not \"default\"): {0:?}")]
    AccountName(String),
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
    /// The registered merchants; the first is the default one.
    accounts: std::sync::RwLock<Vec<Arc<SandboxAccount>>>,
    settings: SandboxSettings,
    /// For notification delivery (a merchant must answer within 5 s).
    http: reqwest::Client,
}

/// Reads the accounts under `<keys>/accounts/` that `accounts` does not hold yet.
fn added_accounts(
    keys_dir: &Path,
    accounts: &mut Vec<Arc<SandboxAccount>>,
) -> Result<(), keys::SandboxKeyError> {
    let Ok(dirs) = std::fs::read_dir(keys_dir.join("accounts")) else {
        return Ok(());
    };
    for dir in dirs.flatten() {
        let index = std::fs::read_to_string(dir.path().join("index"))
            .ok()
            .and_then(|i| i.trim().parse::<u32>().ok());
        let name = dir.file_name().to_string_lossy().into_owned();
        if let Some(index) = index.filter(|i| !accounts.iter().any(|a| a.index == *i)) {
            accounts.push(Arc::new(SandboxAccount::load_or_create(
                &name,
                index,
                &dir.path(),
            )?));
        }
    }
    accounts.sort_by_key(|a| a.index);
    Ok(())
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
        let keys_dir = settings.dir.join("keys");
        let mut accounts = vec![Arc::new(SandboxAccount::load_or_create(
            "default", 0, &keys_dir,
        )?)];
        added_accounts(&keys_dir, &mut accounts)?;
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
            accounts: std::sync::RwLock::new(accounts),
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
            .merge(inapp::routes())
            .with_state(self.clone())
    }

    /// Starts the notification delivery loop; it stops when the returned handle is aborted.
    pub fn spawn_delivery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(deliver::run(self.clone()))
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// The default account's keys (`provider_settings` points ScanPay at them).
    pub fn keys_dir(&self) -> PathBuf {
        self.default_account().keys.dir.clone()
    }

    /// The account ScanPay is wired to by default.
    pub fn default_account(&self) -> Arc<SandboxAccount> {
        self.accounts.read().expect("accounts")[0].clone()
    }

    /// Registers another merchant (or returns the one of that name): its own ids and keys in
    /// `keys/accounts/<name>/`. `name` is letters, digits, `-` and `_`.
    pub fn add_account(&self, name: &str) -> Result<Arc<SandboxAccount>, SandboxError> {
        if name.is_empty()
            || name == "default"
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SandboxError::AccountName(name.to_string()));
        }
        let mut accounts = self.accounts.write().expect("accounts");
        if let Some(a) = accounts.iter().find(|a| a.name == name) {
            return Ok(a.clone());
        }
        let index = accounts.iter().map(|a| a.index).max().unwrap_or(0) + 1;
        let dir = self.settings.dir.join("keys").join("accounts").join(name);
        let account = Arc::new(SandboxAccount::load_or_create(name, index, &dir)?);
        std::fs::write(dir.join("index"), index.to_string()).map_err(|e| {
            keys::SandboxKeyError::Io {
                path: dir.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        accounts.push(account.clone());
        Ok(account)
    }

    /// The account with this Alipay app id.
    pub fn by_app_id(&self, app_id: &str) -> Option<Arc<SandboxAccount>> {
        self.find(|a| a.alipay_app_id == app_id)
    }

    /// The account with this WeChat Pay merchant number.
    pub fn by_mchid(&self, mchid: &str) -> Option<Arc<SandboxAccount>> {
        self.find(|a| a.wechat_mchid == mchid)
    }

    /// An account; on a miss, the accounts another process (another sandbox instance over
    /// the same directory) added meanwhile are read first.
    fn find(&self, matches: impl Fn(&SandboxAccount) -> bool) -> Option<Arc<SandboxAccount>> {
        let found =
            |accounts: &[Arc<SandboxAccount>]| accounts.iter().find(|a| matches(a)).cloned();
        if let Some(a) = found(&self.accounts.read().expect("accounts")) {
            return Some(a);
        }
        let mut accounts = self.accounts.write().expect("accounts");
        if let Err(e) = added_accounts(&self.settings.dir.join("keys"), &mut accounts) {
            tracing::warn!(error = %e, "sandbox: cannot read the added accounts");
        }
        found(&accounts)
    }

    /// The account a trade was made under (`Trade.account`: an app id or a mchid); the
    /// default one for a trade of an account since removed.
    pub(crate) fn account_of(&self, t: &Trade) -> Arc<SandboxAccount> {
        self.by_id(&t.account)
    }

    /// The account that signs a trade's answers and notifications: the service provider
    /// that made it (partner mode), else its own.
    pub(crate) fn signer_of(&self, t: &Trade) -> Arc<SandboxAccount> {
        match &t.via {
            Some(via) => self.by_id(via),
            None => self.account_of(t),
        }
    }

    /// The account with this Alipay app id or WeChat mchid (the default one if none).
    fn by_id(&self, id: &str) -> Arc<SandboxAccount> {
        self.by_app_id(id)
            .or_else(|| self.by_mchid(id))
            .unwrap_or_else(|| self.default_account())
    }

    /// The account whose authorisation gave this Alipay `app_auth_token`.
    pub(crate) fn by_app_auth_token(&self, token: &str) -> Option<Arc<SandboxAccount>> {
        self.find(|a| a.alipay_app_auth_token == token)
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
    account_settings(
        ALIPAY_APP_ID,
        ALIPAY_SELLER_ID,
        &[
            WECHAT_APPID,
            WECHAT_MCHID,
            WECHAT_MERCHANT_SERIAL,
            WECHAT_KEY_ID,
        ],
        keys_dir,
        gateway_base,
    )
}

/// The same for any account of the sandbox (its keys in `account.keys.dir`).
pub fn settings_of(
    account: &SandboxAccount,
    gateway_base: &str,
) -> (
    crate::providers::config::AlipaySettings,
    crate::providers::config::WechatSettings,
) {
    account_settings(
        &account.alipay_app_id,
        &account.alipay_seller_id,
        &[
            &account.wechat_appid,
            &account.wechat_mchid,
            &account.wechat_serial,
            &account.wechat_key_id,
        ],
        &account.keys.dir,
        gateway_base,
    )
}

fn account_settings(
    app_id: &str,
    seller_id: &str,
    [appid, mchid, serial, key_id]: &[&str; 4],
    keys_dir: &Path,
    gateway_base: &str,
) -> (
    crate::providers::config::AlipaySettings,
    crate::providers::config::WechatSettings,
) {
    let alipay = crate::providers::config::AlipaySettings {
        gateway: format!("{gateway_base}/alipay/gateway.do"),
        app_id: app_id.to_string(),
        seller_id: seller_id.to_string(),
        private_key_file: keys::pair(keys_dir, "alipay-merchant").private,
        public_key_file: keys::pair(keys_dir, "alipay-gateway").public,
    };
    let wechat = crate::providers::config::WechatSettings {
        api_base: format!("{gateway_base}/wechat"),
        appid: appid.to_string(),
        mchid: mchid.to_string(),
        private_key_file: keys::pair(keys_dir, "wechat-merchant").private,
        cert_serial: serial.to_string(),
        public_key_file: keys::pair(keys_dir, "wechat-gateway").public,
        public_key_id: key_id.to_string(),
        apiv3_key_file: keys::apiv3_key_file(keys_dir),
        app_secret_file: Some(keys::app_secret_file(keys_dir)),
    };
    (alipay, wechat)
}
