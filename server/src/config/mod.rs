//! ScanPay's configuration: defaults, then an optional `scanpay.toml`, then `SCANPAY_*`
//! environment variables, each layer overriding the one before.
//!
//! Every value is parsed once here into a typed field; a bad value stops start-up with a
//! message that names the key, where it came from and what was expected. Values that may hold
//! credentials are wrapped in [`Secret`].
//!
//! The rooms: `keys.rs` is the table that names every key once (file key, variable, type,
//! default, meaning: the README's tables and `scanpay config` come from it); `layers.rs`
//! layers the raw values (defaults, file, environment) and parses one value with its error;
//! `parse.rs` builds the typed [`Config`] from them.

mod keys;
mod layers;
mod parse;

/// The database's types belong to `db`; they are named here too, where the settings are.
pub use crate::infra::db::{DatabaseUrl, Engine};
pub use crate::infra::telemetry::LogFormat;
/// The providers' settings belong to `providers::config`, which reads their key files.
pub use crate::providers::config::{AlipaySettings, WechatSettings};
pub use keys::{settings_markdown, Group};
use keys::{Key, KEYS};
use layers::Layers;

use crate::infra::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file read when no `--config` / `SCANPAY_CONFIG` names another one. It is optional.
pub const DEFAULT_CONFIG_FILE: &str = "scanpay.toml";

/// The running configuration, fully parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`SCANPAY_LISTEN`).
    pub listen: SocketAddr,
    /// Where `/metrics` is served instead of the main address (`SCANPAY_METRICS_LISTEN`),
    /// so a private address can carry it; `None`: on the main address.
    pub metrics_listen: Option<SocketAddr>,
    /// The database (`SCANPAY_DATABASE_URL`): `sqlite:…` (embedded) or `postgres://…`.
    pub database: DatabaseUrl,
    /// How many database connections this process may hold at most.
    pub database_max_connections: u32,
    /// The address customers and providers reach this server at (`SCANPAY_PUBLIC_URL`),
    /// without a trailing slash. Checkout links and notify URLs are built from it. `None`:
    /// `http://` + the address the server actually bound (see `Application::public_url`).
    pub public_url: Option<String>,
    /// The log filter (`SCANPAY_LOG`), in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// Log line format (`SCANPAY_LOG_FORMAT`): `text` for people, `json` for collectors.
    pub log_format: LogFormat,
    /// Where the embedded database and generated keys live (`SCANPAY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The master key file that seals merchants' own credentials (`SCANPAY_MASTER_KEY_FILE`);
    /// `None`: `<data dir>/master.key` in the demo posture (made on first use), none in the
    /// live one. See [`Config::keyring`].
    pub master_key_file: Option<PathBuf>,
    /// How long shutdown waits for in-flight requests before giving up (seconds).
    pub shutdown_grace_secs: u64,
    /// Alipay, when its credentials are configured; `None`: disabled.
    pub alipay: Option<AlipaySettings>,
    /// WeChat Pay, when its credentials are configured; `None`: disabled.
    pub wechat: Option<WechatSettings>,
    /// When the built-in sandbox gateways serve a provider (`SCANPAY_SANDBOX`).
    pub sandbox: SandboxMode,
    /// Multiplies the sandbox's notification redelivery waits (`SCANPAY_SANDBOX_TIME_SCALE`).
    pub sandbox_time_scale: f64,
    /// Faults the sandbox applies to every trade (`SCANPAY_SANDBOX_FAULTS`).
    pub sandbox_faults: crate::sandbox::Faults,
    /// Whether the demo merchant and the "new payment" form on `/` exist (`SCANPAY_DEMO`;
    /// by default on in the demo posture, off in the live one).
    pub demo: bool,
    /// Lets the sandbox or the demo run beside real credentials, or the sandbox behind an
    /// https public URL (`SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE`). Off: such a mix refuses to
    /// start (see [`Config::posture`]).
    pub unsafe_sandbox_beside_live: bool,
    /// How long an order can be paid when its creator does not say (`SCANPAY_ORDER_EXPIRY_SECS`).
    pub order_expiry_secs: i64,
    /// How long after a code is shown the provider is first asked about it, if no
    /// notification came (`SCANPAY_ACTIVE_QUERY_AFTER_SECS`); later waits double.
    pub active_query_after_secs: u64,
    /// Multiplies the merchant webhook retry waits (`SCANPAY_WEBHOOK_TIME_SCALE`; tests and
    /// demos shrink the 24-hour schedule).
    pub webhook_time_scale: f64,
    /// Requests per minute one merchant API key may make, across the cluster
    /// (`SCANPAY_API_RATE_PER_MINUTE`).
    pub api_rate_per_minute: u32,
    /// This node's name in the cluster (`SCANPAY_NODE_ID`; generated when not set).
    pub node_id: Option<String>,
    /// The URL the other nodes reach this one at (`SCANPAY_NODE_URL`; the public URL when
    /// not set).
    pub node_url: Option<String>,
    /// Signs the calls between nodes (`SCANPAY_CLUSTER_SECRET`); without it a node never
    /// forwards nor accepts forwarded flows.
    pub cluster_secret: Option<Secret<String>>,
    /// A node whose heartbeat is older than this is out (`SCANPAY_NODE_TTL_SECS`).
    pub node_ttl_secs: u64,
    /// Our own proxies (a load balancer in front of the nodes), whose `X-Forwarded-For`
    /// tells the client's address to the sign-in limiter (`SCANPAY_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::infra::client_addr::TrustedProxies,
    /// Private networks that merchant-supplied URLs (webhooks) may reach
    /// (`SCANPAY_ALLOW_PRIVATE_TARGETS`); by default only public addresses are.
    pub allow_private_targets: crate::infra::net::Networks,
}

/// `auto`: the sandbox serves both providers when no real credentials are configured (the
/// demo posture), none otherwise; `on`: it serves each provider that has no real credentials
/// (beside real ones only with `SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE`), never replacing real
/// credentials; `off`: never (a provider without credentials is disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    Auto,
    On,
    Off,
}

/// What a deployment is for. Derived from the credentials: none configured is the demo (the
/// sandbox gateways and the demo shop, no real money), any real one is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posture {
    Demo,
    Live,
}

impl Config {
    /// The master keys that seal merchants' own credentials: the file named, else in the
    /// demo posture `<data dir>/master.key` (made on first use), else none.
    pub fn keyring(
        &self,
        posture: Posture,
    ) -> Result<Option<crate::infra::sealed::Keyring>, crate::infra::sealed::KeyringError> {
        use crate::infra::sealed::Keyring;
        match (&self.master_key_file, posture) {
            (Some(path), _) => Keyring::load(path).map(Some),
            (None, Posture::Demo) => {
                Keyring::load_or_create(&self.data_dir.join("master.key")).map(Some)
            }
            (None, Posture::Live) => Ok(None),
        }
    }

    /// Which gateways merchants' own accounts may use: sandboxes only in the demo posture,
    /// real providers only in the live one (any with `unsafe_sandbox_beside_live`).
    pub fn merchant_gateways(&self, posture: Posture) -> crate::credentials::Gateways {
        use crate::credentials::Gateways;
        match (self.unsafe_sandbox_beside_live, posture) {
            (true, _) => Gateways::Any,
            (false, Posture::Demo) => Gateways::SandboxOnly,
            (false, Posture::Live) => Gateways::RealOnly,
        }
    }

    /// The posture, or why this configuration mixes real money with the sandbox or the demo:
    /// the demo beside real credentials, the sandbox forced on beside them, or the sandbox
    /// served behind an https public URL (a real site). Each is refused unless
    /// `unsafe_sandbox_beside_live` is set.
    pub fn posture(&self) -> Result<Posture, ConfigError> {
        let real: Vec<&str> = [
            self.alipay.as_ref().map(|_| "SCANPAY_ALIPAY_APP_ID"),
            self.wechat.as_ref().map(|_| "SCANPAY_WECHAT_MCHID"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let posture = if real.is_empty() {
            Posture::Demo
        } else {
            Posture::Live
        };
        if self.unsafe_sandbox_beside_live {
            return Ok(posture);
        }
        let mixed = |what: String, fix| Err(ConfigError::Mixed { what, fix });
        let beside = || format!("beside real credentials ({})", real.join(", "));
        if posture == Posture::Live && self.demo {
            return mixed(
                format!("SCANPAY_DEMO is on {}", beside()),
                "Remove SCANPAY_DEMO (it is off by default in the live posture)",
            );
        }
        if posture == Posture::Live && self.sandbox == SandboxMode::On {
            return mixed(
                format!(
                    "SCANPAY_SANDBOX=on would serve the unconfigured provider {}",
                    beside()
                ),
                "Remove SCANPAY_SANDBOX, or configure both providers",
            );
        }
        let public_https = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        if posture == Posture::Demo && self.sandbox != SandboxMode::Off && public_https {
            return mixed(
                "the sandbox gateways would take \"payments\" at an https public URL \
                 (SCANPAY_PUBLIC_URL), where customers expect real ones"
                    .to_string(),
                "Configure real credentials, or set SCANPAY_SANDBOX=off",
            );
        }
        Ok(posture)
    }

    /// Whether the in-process sandbox serves `channel`: in the demo posture both (unless
    /// `off`); in the live posture only a provider without credentials, and only when
    /// `SCANPAY_SANDBOX=on` was allowed beside real ones. Never in place of real credentials.
    pub fn sandbox_serves(&self, channel: crate::providers::Channel) -> bool {
        use crate::providers::Channel;
        let configured = match channel {
            Channel::Alipay => self.alipay.is_some(),
            Channel::Wechat => self.wechat.is_some(),
        };
        let no_credentials = self.alipay.is_none() && self.wechat.is_none();
        match self.sandbox {
            SandboxMode::Off => false,
            SandboxMode::Auto => no_credentials,
            SandboxMode::On => !configured,
        }
    }

    /// What merchant-supplied URLs may reach.
    pub fn outbound_policy(&self) -> crate::outbound::Policy {
        crate::outbound::Policy {
            allow_private: self.allow_private_targets.clone(),
        }
    }
}

/// Why the configuration could not be loaded. The message is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} (from {origin}): expected {expected}, got {value:?}")]
    Invalid {
        key: &'static str,
        origin: Source,
        expected: &'static str,
        value: String,
    },
    #[error("{key} (from {origin}): expected {expected}")]
    InvalidSecret {
        key: &'static str,
        origin: Source,
        expected: &'static str,
    },
    #[error("cannot read the configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: unknown setting {key:?}; known settings are {known}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("{path}: setting {key:?} must be a string, a number or a boolean")]
    NotScalar { path: PathBuf, key: String },
    #[error(
        "refusing to start: {what}. In front of real money the sandbox and the demo stay \
         off. {fix}, or set SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE=true to run this mix anyway \
         (never where customers pay)"
    )]
    Mixed { what: String, fix: &'static str },
    #[error("{provider} is partly configured: {missing} is missing (set all of {required}, or none to disable it)")]
    Incomplete {
        provider: &'static str,
        missing: &'static str,
        required: String,
    },
}

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One setting as `scanpay config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub env: &'static str,
    pub file: &'static str,
    /// The value (the default as the README says it when unset); a secret's is never shown.
    pub value: String,
    pub source: Source,
}

impl Config {
    /// Loads the configuration from the process environment and the file it names
    /// (`SCANPAY_CONFIG`) or `scanpay.toml` in the working directory, if present.
    pub fn load(config_file: Option<&Path>) -> Result<Config, ConfigError> {
        let (file, env) = read_sources(config_file)?;
        Self::from_sources(file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &env)
    }

    /// Every setting's value and where it came from (secrets never shown), as `scanpay
    /// config` prints it, after checking that the whole configuration is valid.
    pub fn settings(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<Setting>, ConfigError> {
        Self::from_sources(file, env)?;
        let layers = Layers::from_sources(file, env)?;
        Ok(KEYS
            .iter()
            .map(|k| match layers.get(k.file) {
                Some((raw, source)) => Setting {
                    env: k.env,
                    file: k.file,
                    value: if k.secret {
                        "(set, secret)".to_string()
                    } else {
                        raw.trim().to_string()
                    },
                    source: source.clone(),
                },
                None => Setting {
                    env: k.env,
                    file: k.file,
                    value: k.default.replace('`', ""),
                    source: Source::Default,
                },
            })
            .collect())
    }

    /// [`Config::settings`] from the process environment and the configuration file, found
    /// as [`Config::load`] finds it.
    pub fn describe(config_file: Option<&Path>) -> Result<Vec<Setting>, ConfigError> {
        let (file, env) = read_sources(config_file)?;
        Self::settings(file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &env)
    }
}

/// The configuration file (path and text), if any, and the process environment.
type Sources = (Option<(PathBuf, String)>, BTreeMap<String, String>);

fn read_sources(config_file: Option<&Path>) -> Result<Sources, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (path, required) = match config_file {
        Some(p) => (p.to_path_buf(), true),
        None => match env.get("SCANPAY_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        },
    };
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => Some((path, text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
        Err(e) => {
            return Err(ConfigError::File {
                path,
                reason: e.to_string(),
            })
        }
    };
    Ok((file, env))
}

#[cfg(test)]
mod tests;
