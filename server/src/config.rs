//! ScanPay's configuration: defaults, then an optional `scanpay.toml`, then `SCANPAY_*`
//! environment variables, each layer overriding the one before.
//!
//! Every value is parsed once here into a typed field; a bad value stops start-up with a
//! message that names the key, where it came from and what was expected. Values that may hold
//! credentials are wrapped in [`Secret`].

use crate::secret::Secret;
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
    pub trusted_proxies: crate::http::client_addr::TrustedProxies,
    /// Private networks that merchant-supplied URLs (webhooks) may reach
    /// (`SCANPAY_ALLOW_PRIVATE_TARGETS`); by default only public addresses are.
    pub allow_private_targets: crate::net::Networks,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A validated database URL. The URL itself is secret (it may carry a password).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub engine: Engine,
    pub url: Secret<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Config {
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

impl Engine {
    pub fn display_name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
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

/// One setting: its name in `scanpay.toml`, its environment variable, whether its value is
/// secret (never echoed in an error or by `scanpay config`), and what the README and
/// `scanpay config` say about it. This table names every key once; the README's tables are
/// generated from it (`settings_markdown`, checked by a test).
struct Key {
    file: &'static str,
    env: &'static str,
    secret: bool,
    group: Group,
    /// The value's type as a person reads it (`integer`, `number`, `boolean`, `path`…).
    kind: &'static str,
    /// The default as the README shows it.
    default: &'static str,
    about: &'static str,
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

/// The README's table of one group of settings, generated from the key table.
pub fn settings_markdown(group: Group) -> String {
    let mut out = String::from("| Variable | Type | Default | Meaning |\n|---|---|---|---|\n");
    for k in KEYS.iter().filter(|k| k.group == group) {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.env, k.kind, k.default, k.about
        ));
    }
    if group == Group::General {
        out.push_str(
            "| `SCANPAY_CONFIG` | path | `scanpay.toml` | The configuration file (optional unless named) |\n",
        );
    }
    out
}

/// Which README table a key is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    General,
    Provider,
    Sandbox,
}

const KEYS: &[Key] = &[
    Key {
        file: "listen",
        env: "SCANPAY_LISTEN",
        secret: false,
        group: Group::General,
        kind: "address",
        default: "`127.0.0.1:3000`",
        about: "Address and port the HTTP server binds",
    },
    Key {
        file: "metrics_listen",
        env: "SCANPAY_METRICS_LISTEN",
        secret: false,
        group: Group::General,
        kind: "address",
        default: "none",
        about: "Serve `/metrics` on this address (e.g. a private `10.0.0.2:9300`) instead of the main one",
    },
    Key {
        file: "database_url",
        env: "SCANPAY_DATABASE_URL",
        secret: true,
        group: Group::General,
        kind: "URL",
        default: "`sqlite://<data dir>/scanpay.db?mode=rwc`",
        about: "`sqlite:…` (embedded; the file and its folder are created when missing) or `postgres://user:pass@host/db`; never logged",
    },
    Key {
        file: "database_max_connections",
        env: "SCANPAY_DATABASE_MAX_CONNECTIONS",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`2` on SQLite, `10` on PostgreSQL",
        about: "Pool size of this process (1–1000); SQLite has one writer at a time, and more connections only make writers wait on each other (docs/benchmarks.md)",
    },
    Key {
        file: "public_url",
        env: "SCANPAY_PUBLIC_URL",
        secret: false,
        group: Group::General,
        kind: "URL",
        default: "`http://<bound address>`",
        about: "The address customers and providers reach this server at",
    },
    Key {
        file: "log",
        env: "SCANPAY_LOG",
        secret: false,
        group: Group::General,
        kind: "text",
        default: "`info`",
        about: "Log filter, e.g. `info,sqlx=warn,server=debug`",
    },
    Key {
        file: "log_format",
        env: "SCANPAY_LOG_FORMAT",
        secret: false,
        group: Group::General,
        kind: "text",
        default: "`text`",
        about: "`text` or `json` (one JSON object per line)",
    },
    Key {
        file: "data_dir",
        env: "SCANPAY_DATA_DIR",
        secret: false,
        group: Group::General,
        kind: "path",
        default: "`data`",
        about: "Where the embedded database (and later generated keys) live",
    },
    Key {
        file: "shutdown_grace_secs",
        env: "SCANPAY_SHUTDOWN_GRACE_SECS",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`20`",
        about: "How long SIGTERM / Ctrl-C waits for in-flight requests",
    },
    Key {
        file: "alipay_gateway",
        env: "SCANPAY_ALIPAY_GATEWAY",
        secret: false,
        group: Group::Provider,
        kind: "URL",
        default: "`https://openapi.alipay.com/gateway.do`",
        about: "Alipay gateway",
    },
    Key {
        file: "alipay_app_id",
        env: "SCANPAY_ALIPAY_APP_ID",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "Your Alipay application id",
    },
    Key {
        file: "alipay_seller_id",
        env: "SCANPAY_ALIPAY_SELLER_ID",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "Your seller id (`2088…`); notifications must name it",
    },
    Key {
        file: "alipay_private_key_file",
        env: "SCANPAY_ALIPAY_PRIVATE_KEY_FILE",
        secret: false,
        group: Group::Provider,
        kind: "path",
        default: "none",
        about: "Your application private key (RSA2)",
    },
    Key {
        file: "alipay_public_key_file",
        env: "SCANPAY_ALIPAY_PUBLIC_KEY_FILE",
        secret: false,
        group: Group::Provider,
        kind: "path",
        default: "none",
        about: "Alipay's public key, for responses and notifications",
    },
    Key {
        file: "wechat_api_base",
        env: "SCANPAY_WECHAT_API_BASE",
        secret: false,
        group: Group::Provider,
        kind: "URL",
        default: "`https://api.mch.weixin.qq.com`",
        about: "WeChat Pay API",
    },
    Key {
        file: "wechat_appid",
        env: "SCANPAY_WECHAT_APPID",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "The appid bound to your merchant account",
    },
    Key {
        file: "wechat_mchid",
        env: "SCANPAY_WECHAT_MCHID",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "Your merchant id",
    },
    Key {
        file: "wechat_private_key_file",
        env: "SCANPAY_WECHAT_PRIVATE_KEY_FILE",
        secret: false,
        group: Group::Provider,
        kind: "path",
        default: "none",
        about: "Your merchant API private key (`apiclient_key.pem`)",
    },
    Key {
        file: "wechat_cert_serial",
        env: "SCANPAY_WECHAT_CERT_SERIAL",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "The serial number of your merchant API certificate",
    },
    Key {
        file: "wechat_public_key_file",
        env: "SCANPAY_WECHAT_PUBLIC_KEY_FILE",
        secret: false,
        group: Group::Provider,
        kind: "path",
        default: "none",
        about: "The WeChat Pay public key (or a platform certificate's public key)",
    },
    Key {
        file: "wechat_public_key_id",
        env: "SCANPAY_WECHAT_PUBLIC_KEY_ID",
        secret: false,
        group: Group::Provider,
        kind: "text",
        default: "none",
        about: "Its id: `PUB_KEY_ID_…`, or the platform certificate serial",
    },
    Key {
        file: "wechat_apiv3_key_file",
        env: "SCANPAY_WECHAT_APIV3_KEY_FILE",
        secret: false,
        group: Group::Provider,
        kind: "path",
        default: "none",
        about: "A file holding your 32-character APIv3 key",
    },
    Key {
        file: "sandbox",
        env: "SCANPAY_SANDBOX",
        secret: false,
        group: Group::Sandbox,
        kind: "auto/on/off",
        default: "`auto`",
        about: "`auto`: the sandbox serves both providers in the demo posture, none in the live one; `on`: it serves each provider without credentials (beside real ones only with the unsafe override; never in place of real credentials); `off`: never",
    },
    Key {
        file: "sandbox_time_scale",
        env: "SCANPAY_SANDBOX_TIME_SCALE",
        secret: false,
        group: Group::Sandbox,
        kind: "number",
        default: "`1`",
        about: "Multiplies the redelivery waits (`0.001` runs Alipay's 25-hour schedule in 90 s)",
    },
    Key {
        file: "sandbox_faults",
        env: "SCANPAY_SANDBOX_FAULTS",
        secret: false,
        group: Group::Sandbox,
        kind: "text",
        default: "none",
        about: "Faults for every trade, e.g. `duplicates=3,out_of_order` (below)",
    },
    Key {
        file: "demo",
        env: "SCANPAY_DEMO",
        secret: false,
        group: Group::General,
        kind: "on/off",
        default: "`on` in the demo posture, `off` in the live one",
        about: "`on`: the demo shop exists and `/` has its \"new payment\" form",
    },
    Key {
        file: "unsafe_sandbox_beside_live",
        env: "SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE",
        secret: false,
        group: Group::General,
        kind: "boolean",
        default: "`false`",
        about: "`true`: start a configuration that mixes the sandbox or the demo with real credentials (see Postures)",
    },
    Key {
        file: "order_expiry_secs",
        env: "SCANPAY_ORDER_EXPIRY_SECS",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`900`",
        about: "How long an order can be paid when its creator does not say (60–86400)",
    },
    Key {
        file: "active_query_after_secs",
        env: "SCANPAY_ACTIVE_QUERY_AFTER_SECS",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`20`",
        about: "When no notification came, ask the provider about an open code this long after showing it; later waits double, up to 5 min",
    },
    Key {
        file: "webhook_time_scale",
        env: "SCANPAY_WEBHOOK_TIME_SCALE",
        secret: false,
        group: Group::General,
        kind: "number",
        default: "`1`",
        about: "Multiplies the merchant webhook retry waits (about 24 h in all); above 0, at most 1 — for tests and demos",
    },
    Key {
        file: "api_rate_per_minute",
        env: "SCANPAY_API_RATE_PER_MINUTE",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`600`",
        about: "Merchant API requests per minute per API key (for the whole cluster; a burst of as many); beyond it 429 with `Retry-After`",
    },
    Key {
        file: "node_id",
        env: "SCANPAY_NODE_ID",
        secret: false,
        group: Group::General,
        kind: "text",
        default: "generated (`node-xxxxxxxx`)",
        about: "This node's name in a cluster",
    },
    Key {
        file: "node_url",
        env: "SCANPAY_NODE_URL",
        secret: false,
        group: Group::General,
        kind: "URL",
        default: "the public URL",
        about: "Where the other nodes reach this one",
    },
    Key {
        file: "cluster_secret",
        env: "SCANPAY_CLUSTER_SECRET",
        secret: true,
        group: Group::General,
        kind: "text",
        default: "none",
        about: "Signs calls between nodes (16+ characters, the same on every node); without it a node runs every flow itself",
    },
    Key {
        file: "trusted_proxies",
        env: "SCANPAY_TRUSTED_PROXIES",
        secret: false,
        group: Group::General,
        kind: "networks",
        default: "none",
        about: "Your own proxies or load balancer (IPs or networks, e.g. `10.0.0.0/8`): from them, the per-address limits count the client named in `X-Forwarded-For` instead of the proxy. A reverse proxy on the same host must be listed (`127.0.0.1`), or in the live posture every client shares its limits",
    },
    Key {
        file: "allow_private_targets",
        env: "SCANPAY_ALLOW_PRIVATE_TARGETS",
        secret: false,
        group: Group::General,
        kind: "networks",
        default: "none",
        about: "Private networks merchant webhooks may reach (e.g. `10.20.0.0/16` for an on-premise shop); by default webhooks go to public addresses only",
    },
    Key {
        file: "node_ttl_secs",
        env: "SCANPAY_NODE_TTL_SECS",
        secret: false,
        group: Group::General,
        kind: "integer",
        default: "`5`",
        about: "A node whose heartbeat is older is out of the cluster (2–300)",
    },
];

/// Alipay credentials. Key files are read and parsed at start-up (`providers::config`).
#[derive(Debug, Clone)]
pub struct AlipaySettings {
    pub gateway: String,
    pub app_id: String,
    pub seller_id: String,
    pub private_key_file: PathBuf,
    pub public_key_file: PathBuf,
}

/// WeChat Pay credentials. Key files are read and parsed at start-up (`providers::config`).
#[derive(Debug, Clone)]
pub struct WechatSettings {
    pub api_base: String,
    pub appid: String,
    pub mchid: String,
    pub private_key_file: PathBuf,
    pub cert_serial: String,
    pub public_key_file: PathBuf,
    pub public_key_id: String,
    pub apiv3_key_file: PathBuf,
}

/// Raw string values by file key, with their source, after layering.
struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// The raw values of the file (checked to be known keys and scalars), then the
    /// environment over them.
    fn from_sources(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Layers, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some((path, text)) = file {
            let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            for (name, value) in table {
                let Some(key) = KEYS.iter().find(|k| k.file == name) else {
                    return Err(ConfigError::UnknownKey {
                        path: path.to_path_buf(),
                        known: KEYS.iter().map(|k| k.file).collect::<Vec<_>>().join(", "),
                        key: name,
                    });
                };
                let raw = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    // Each key's own parser judges the value (`demo = false`,
                    // `sandbox_time_scale = 0.001`).
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(ConfigError::NotScalar {
                            path: path.to_path_buf(),
                            key: name,
                        })
                    }
                };
                values.insert(key.file, (raw, Source::File(path.to_path_buf())));
            }
        }
        for key in KEYS {
            if let Some(v) = env.get(key.env) {
                values.insert(key.file, (v.clone(), Source::Env(key.env)));
            }
        }
        Ok(Layers { values })
    }

    /// The settings of one provider: `None` when none of `required` is set, all of them when
    /// all are, and an error naming the first missing one otherwise.
    fn provider(
        &self,
        provider: &'static str,
        required: &[&'static str],
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let values: Vec<Option<&String>> = required
            .iter()
            .map(|k| self.get(k).map(|(v, _)| v).filter(|v| !v.trim().is_empty()))
            .collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        if let Some(i) = values.iter().position(Option::is_none) {
            return Err(ConfigError::Incomplete {
                provider,
                missing: key_named(required[i]).env,
                required: required
                    .iter()
                    .map(|k| key_named(k).env)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Some(
            values
                .into_iter()
                .flatten()
                .map(|v| v.trim().to_string())
                .collect(),
        ))
    }

    fn get(&self, file_key: &str) -> Option<&(String, Source)> {
        self.values.get(file_key)
    }

    fn parse<T>(
        &self,
        file_key: &'static str,
        expected: &'static str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let Some((raw, source)) = self.get(file_key) else {
            return Ok(default());
        };
        let key = key_named(file_key);
        parse(raw.trim()).ok_or_else(|| {
            if key.secret {
                ConfigError::InvalidSecret {
                    key: key.env,
                    origin: source.clone(),
                    expected,
                }
            } else {
                ConfigError::Invalid {
                    key: key.env,
                    origin: source.clone(),
                    expected,
                    value: raw.clone(),
                }
            }
        })
    }
}

fn key_named(file_key: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.file == file_key)
        .unwrap_or_else(|| unreachable!("every parsed key is listed in KEYS: {file_key}"))
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

impl Config {
    /// Builds the configuration from an optional file (path and text) and an environment
    /// map. Pure: tests call it directly.
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let layers = Layers::from_sources(file, env)?;

        let listen = layers.parse(
            "listen",
            "a socket address such as 127.0.0.1:3000",
            || SocketAddr::from(([127, 0, 0, 1], 3000)),
            |s| s.parse().ok(),
        )?;
        let metrics_listen = layers.parse(
            "metrics_listen",
            "a socket address such as 127.0.0.1:9300",
            || None,
            |s| s.parse().ok().map(Some),
        )?;
        let data_dir = layers.parse(
            "data_dir",
            "a directory path",
            || PathBuf::from("data"),
            |s| (!s.is_empty()).then(|| PathBuf::from(s)),
        )?;
        let database = layers.parse(
            "database_url",
            "a URL starting with sqlite: or postgres:// (or postgresql://)",
            || DatabaseUrl {
                engine: Engine::Sqlite,
                url: Secret::new(format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("scanpay.db").display()
                )),
            },
            parse_database_url,
        )?;
        // SQLite has one writer at a time: more connections only make writers wait on each
        // other's locks (busy-timeout sleeps). Two keep a reader beside the writer; measured
        // in docs/benchmarks.md (16 concurrent callbacks: 2.5-3.5x the throughput of 10).
        let default_connections = match database.engine {
            Engine::Sqlite => 2,
            Engine::Postgres => 10,
        };
        let database_max_connections = layers.parse(
            "database_max_connections",
            "a whole number from 1 to 1000",
            || default_connections,
            |s| s.parse().ok().filter(|n| (1..=1000).contains(n)),
        )?;
        let public_url = layers.parse(
            "public_url",
            "an absolute http:// or https:// URL such as https://pay.example.com",
            || None,
            |s| parse_public_url(s).map(Some),
        )?;
        let log = layers.parse(
            "log",
            "a log filter such as info or scanpay=debug,tower_http=info",
            || "info".to_string(),
            |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .ok()
                    .map(|_| s.to_string())
            },
        )?;
        let log_format = layers.parse(
            "log_format",
            "text or json",
            || LogFormat::Text,
            |s| match s {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            },
        )?;
        let shutdown_grace_secs = layers.parse(
            "shutdown_grace_secs",
            "a whole number of seconds from 0 to 3600",
            || 20,
            |s| s.parse().ok().filter(|n| *n <= 3600),
        )?;

        let url_setting = |key: &'static str, default: &str| {
            layers.parse(
                key,
                "an absolute http:// or https:// URL",
                || default.to_string(),
                |s| parse_public_url(s).map(|_| s.to_string()),
            )
        };
        let alipay_gateway =
            url_setting("alipay_gateway", "https://openapi.alipay.com/gateway.do")?;
        let alipay = layers
            .provider(
                "Alipay",
                &[
                    "alipay_app_id",
                    "alipay_seller_id",
                    "alipay_private_key_file",
                    "alipay_public_key_file",
                ],
            )?
            .map(|v| AlipaySettings {
                gateway: alipay_gateway,
                app_id: v[0].clone(),
                seller_id: v[1].clone(),
                private_key_file: PathBuf::from(&v[2]),
                public_key_file: PathBuf::from(&v[3]),
            });
        let wechat_api_base = url_setting("wechat_api_base", "https://api.mch.weixin.qq.com")?;
        let wechat = layers
            .provider(
                "WeChat Pay",
                &[
                    "wechat_appid",
                    "wechat_mchid",
                    "wechat_private_key_file",
                    "wechat_cert_serial",
                    "wechat_public_key_file",
                    "wechat_public_key_id",
                    "wechat_apiv3_key_file",
                ],
            )?
            .map(|v| WechatSettings {
                api_base: wechat_api_base.trim_end_matches('/').to_string(),
                appid: v[0].clone(),
                mchid: v[1].clone(),
                private_key_file: PathBuf::from(&v[2]),
                cert_serial: v[3].clone(),
                public_key_file: PathBuf::from(&v[4]),
                public_key_id: v[5].clone(),
                apiv3_key_file: PathBuf::from(&v[6]),
            });

        let sandbox = layers.parse(
            "sandbox",
            "auto, on or off",
            || SandboxMode::Auto,
            |s| match s {
                "auto" => Some(SandboxMode::Auto),
                "on" => Some(SandboxMode::On),
                "off" => Some(SandboxMode::Off),
                _ => None,
            },
        )?;
        let sandbox_time_scale = layers.parse(
            "sandbox_time_scale",
            "a number above 0 and at most 1000, such as 1 or 0.001",
            || 1.0,
            |s| s.parse::<f64>().ok().filter(|f| *f > 0.0 && *f <= 1000.0),
        )?;
        let sandbox_faults = layers.parse(
            "sandbox_faults",
            "a fault list such as drop or duplicates=3,out_of_order (see the README)",
            crate::sandbox::Faults::default,
            |s| crate::sandbox::Faults::parse(s).ok(),
        )?;

        let unsafe_sandbox_beside_live = layers.parse(
            "unsafe_sandbox_beside_live",
            "true or false",
            || false,
            |s| match s {
                "true" | "on" => Some(true),
                "false" | "off" => Some(false),
                _ => None,
            },
        )?;
        // The demo shop is there by default only where no real credentials are.
        let demo_default = alipay.is_none() && wechat.is_none();
        let demo = layers.parse(
            "demo",
            "on or off",
            || demo_default,
            |s| match s {
                "on" | "true" => Some(true),
                "off" | "false" => Some(false),
                _ => None,
            },
        )?;
        let order_expiry_secs = layers.parse(
            "order_expiry_secs",
            "a whole number of seconds from 60 to 86400",
            || crate::orders::DEFAULT_EXPIRY_SECS,
            |s| {
                s.parse::<i64>()
                    .ok()
                    .filter(|n| (60..=crate::orders::MAX_EXPIRY_SECS).contains(n))
            },
        )?;

        let active_query_after_secs = layers.parse(
            "active_query_after_secs",
            "a whole number of seconds from 1 to 3600",
            || 20,
            |s| s.parse::<u64>().ok().filter(|n| (1..=3600).contains(n)),
        )?;

        let webhook_time_scale = layers.parse(
            "webhook_time_scale",
            "a number above 0 and at most 1, such as 1 or 0.001",
            || 1.0,
            |s| s.parse::<f64>().ok().filter(|f| *f > 0.0 && *f <= 1.0),
        )?;

        let api_rate_per_minute = layers.parse(
            "api_rate_per_minute",
            "a whole number of requests per minute from 1 to 1000000",
            || 600,
            |s| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            },
        )?;

        let node_id = layers.parse(
            "node_id",
            "1 to 64 characters of letters, digits, '-' and '_'",
            || None,
            |s| {
                let ok = (1..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| Some(s.to_string()))
            },
        )?;
        let node_url = layers.parse(
            "node_url",
            "an absolute http:// or https:// URL such as http://10.0.0.2:3000",
            || None,
            |s| parse_public_url(s).map(Some),
        )?;
        let cluster_secret = layers.parse(
            "cluster_secret",
            "at least 16 characters, the same on every node",
            || None,
            |s| (s.len() >= 16).then(|| Some(Secret::new(s.to_string()))),
        )?;
        let node_ttl_secs = layers.parse(
            "node_ttl_secs",
            "a whole number of seconds from 2 to 300",
            || 5,
            |s| s.parse::<u64>().ok().filter(|n| (2..=300).contains(n)),
        )?;

        let trusted_proxies = layers.parse(
            "trusted_proxies",
            "comma-separated IP addresses or networks, such as 10.0.0.0/8,127.0.0.1",
            Default::default,
            crate::http::client_addr::TrustedProxies::parse,
        )?;

        let allow_private_targets = layers.parse(
            "allow_private_targets",
            "comma-separated IP addresses or networks, such as 10.20.0.0/16,127.0.0.1",
            Default::default,
            crate::net::Networks::parse,
        )?;

        Ok(Config {
            metrics_listen,
            allow_private_targets,
            trusted_proxies,
            node_id,
            node_url,
            cluster_secret,
            node_ttl_secs,
            demo,
            unsafe_sandbox_beside_live,
            webhook_time_scale,
            api_rate_per_minute,
            order_expiry_secs,
            active_query_after_secs,
            sandbox,
            sandbox_time_scale,
            sandbox_faults,
            alipay,
            wechat,
            listen,
            database,
            database_max_connections,
            public_url,
            log,
            log_format,
            data_dir,
            shutdown_grace_secs,
        })
    }
}

fn parse_database_url(s: &str) -> Option<DatabaseUrl> {
    let (engine, s) = if s.starts_with("sqlite:") {
        (Engine::Sqlite, crate::db::sqlite_url_creating_file(s))
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

fn parse_public_url(s: &str) -> Option<String> {
    let uri: http::Uri = s.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let no_query = uri.query().is_none();
    (scheme_ok && uri.authority().is_some() && no_query)
        .then(|| s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_readme_tables_are_generated_from_the_key_table() {
        let readme = include_str!("../../README.md");
        for group in [Group::General, Group::Provider, Group::Sandbox] {
            let table = settings_markdown(group);
            assert!(
                readme.contains(&table),
                "README.md must hold this table ({group:?}); regenerate it with `scanpay config --markdown`:\n{table}"
            );
        }
        // Every key is in exactly one table, under its own name once.
        for k in KEYS {
            assert_eq!(
                readme.matches(&format!("| `{}` |", k.env)).count(),
                1,
                "{}",
                k.env
            );
        }
    }

    #[test]
    fn settings_show_each_value_with_its_source_and_never_a_secret() {
        let secret = "a-cluster-secret-of-32-characters!!";
        let file =
            format!("listen = \"0.0.0.0:8080\"\ncluster_secret = \"{secret}\"\ndemo = false\n");
        let path = Path::new("/etc/scanpay/scanpay.toml");
        let settings = Config::settings(
            Some((path, file.as_str())),
            &env(&[
                ("SCANPAY_LOG", "debug"),
                ("SCANPAY_SANDBOX_TIME_SCALE", "0.5"),
            ]),
        )
        .expect("valid");
        assert_eq!(settings.len(), KEYS.len());
        let get = |name: &str| {
            settings
                .iter()
                .find(|s| s.env == name)
                .unwrap_or_else(|| panic!("{name}"))
                .clone()
        };
        assert_eq!(get("SCANPAY_LISTEN").value, "0.0.0.0:8080");
        assert_eq!(
            get("SCANPAY_LISTEN").source,
            Source::File(path.to_path_buf())
        );
        assert_eq!(get("SCANPAY_DEMO").value, "false");
        assert_eq!(get("SCANPAY_LOG").value, "debug");
        assert_eq!(get("SCANPAY_LOG").source, Source::Env("SCANPAY_LOG"));
        assert_eq!(get("SCANPAY_SANDBOX_TIME_SCALE").value, "0.5");
        assert_eq!(get("SCANPAY_DATA_DIR").value, "data");
        assert_eq!(get("SCANPAY_DATA_DIR").source, Source::Default);
        assert_eq!(get("SCANPAY_CLUSTER_SECRET").value, "(set, secret)");
        assert!(
            !format!("{settings:?}").contains(secret),
            "the secret leaked"
        );
        // An invalid configuration is an error, not a listing.
        assert!(Config::settings(None, &env(&[("SCANPAY_LISTEN", "nowhere")])).is_err());
    }

    #[test]
    fn defaults_are_an_embedded_sqlite_on_localhost_3000() {
        let c = Config::from_sources(None, &env(&[])).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database.engine, Engine::Sqlite);
        assert_eq!(c.database.url.expose(), "sqlite://data/scanpay.db?mode=rwc");
        assert_eq!(
            c.public_url, None,
            "derived from the bound address at start-up"
        );
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let file = "listen = \"0.0.0.0:8080\"\nlog = \"debug\"\ndatabase_max_connections = 4\n";
        let c = Config::from_sources(
            Some((Path::new("scanpay.toml"), file)),
            &env(&[
                ("SCANPAY_LISTEN", "127.0.0.1:9000"),
                ("SCANPAY_DATA_DIR", "/tmp/x"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000", "env beats file");
        assert_eq!(c.log, "debug", "file beats default");
        assert_eq!(c.database_max_connections, 4);
        assert_eq!(
            c.database.url.expose(),
            "sqlite:///tmp/x/scanpay.db?mode=rwc",
            "data dir moves the default database"
        );
    }

    fn from_file(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some((Path::new("scanpay.toml"), text)), &env(&[]))
    }

    #[test]
    fn the_file_takes_a_string_where_a_key_wants_text() {
        let c = from_file("listen = \"127.0.0.1:8081\"\nlog_format = \"json\"\n").expect("strings");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn the_file_takes_an_integer_where_a_key_wants_a_whole_number() {
        let c =
            from_file("database_max_connections = 7\nshutdown_grace_secs = 0\n").expect("integers");
        assert_eq!(c.database_max_connections, 7);
        assert_eq!(c.shutdown_grace_secs, 0);
        // The key's own range still applies to a number of the right type.
        let err = from_file("database_max_connections = 0\n").expect_err("below the range");
        assert!(
            err.to_string().contains("SCANPAY_DATABASE_MAX_CONNECTIONS"),
            "{err}"
        );
    }

    #[test]
    fn the_file_takes_a_float_where_a_key_wants_a_number() {
        let c =
            from_file("sandbox_time_scale = 0.001\nwebhook_time_scale = 0.5\n").expect("floats");
        assert_eq!(c.sandbox_time_scale, 0.001);
        assert_eq!(c.webhook_time_scale, 0.5);
        let c = from_file("sandbox_time_scale = 2e-3\n").expect("exponent form");
        assert_eq!(c.sandbox_time_scale, 0.002);
        let err = from_file("webhook_time_scale = 1.5\n").expect_err("above the range");
        assert!(
            err.to_string().contains("SCANPAY_WEBHOOK_TIME_SCALE"),
            "{err}"
        );
    }

    #[test]
    fn the_file_takes_a_boolean_where_a_key_is_a_switch() {
        let c = from_file("demo = false\n").expect("false");
        assert!(!c.demo);
        let c = from_file("demo = true\nunsafe_sandbox_beside_live = false\n").expect("true");
        assert!(c.demo);
        assert!(!c.unsafe_sandbox_beside_live);
        // A switch given where a number is wanted is refused, naming the key.
        let err = from_file("sandbox_time_scale = true\n").expect_err("not a number");
        assert!(
            err.to_string().contains("SCANPAY_SANDBOX_TIME_SCALE"),
            "{err}"
        );
    }

    #[test]
    fn the_file_refuses_tables_and_arrays_naming_the_key() {
        for text in ["listen = [\"a\", \"b\"]\n", "[log]\nlevel = \"info\"\n"] {
            let err = from_file(text).expect_err("not a single value");
            let msg = err.to_string();
            assert!(msg.contains("listen") || msg.contains("log"), "{msg}");
            assert!(matches!(err, ConfigError::NotScalar { .. }), "{msg}");
        }
    }

    #[test]
    fn a_bad_value_names_the_key_its_source_and_what_was_expected() {
        let err = Config::from_sources(None, &env(&[("SCANPAY_LISTEN", "localhost")]))
            .expect_err("not a socket address");
        let msg = err.to_string();
        assert!(msg.contains("SCANPAY_LISTEN"), "{msg}");
        assert!(msg.contains("environment variable"), "{msg}");
        assert!(msg.contains("socket address"), "{msg}");
        assert!(msg.contains("\"localhost\""), "{msg}");

        let err = Config::from_sources(
            Some((Path::new("my.toml"), "public_url = \"ftp://x\"")),
            &env(&[]),
        )
        .expect_err("ftp is not http");
        assert!(
            err.to_string()
                .contains("SCANPAY_PUBLIC_URL (from my.toml)"),
            "{err}"
        );

        for (k, v) in [
            ("SCANPAY_LOG_FORMAT", "xml"),
            ("SCANPAY_DATABASE_MAX_CONNECTIONS", "0"),
            ("SCANPAY_LOG", "info,[[["),
            ("SCANPAY_SHUTDOWN_GRACE_SECS", "-1"),
        ] {
            let err = Config::from_sources(None, &env(&[(k, v)])).expect_err(k);
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }

    #[test]
    fn a_bad_database_url_is_refused_without_echoing_it() {
        let err = Config::from_sources(
            None,
            &env(&[("SCANPAY_DATABASE_URL", "mysql://u:hunter2@h/db")]),
        )
        .expect_err("mysql is not supported");
        let msg = err.to_string();
        assert!(msg.contains("SCANPAY_DATABASE_URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "the secret leaked: {msg}");
        let ok = Config::from_sources(
            None,
            &env(&[("SCANPAY_DATABASE_URL", "postgres://u:hunter2@h/db")]),
        )
        .expect("postgres is supported");
        assert_eq!(ok.database.engine, Engine::Postgres);
        assert!(
            !format!("{ok:?}").contains("hunter2"),
            "Debug must not print the URL"
        );
    }

    #[test]
    fn unknown_file_keys_and_tables_are_refused() {
        let err = Config::from_sources(Some((Path::new("s.toml"), "lisen = \"x\"")), &env(&[]))
            .expect_err("typo");
        assert!(
            err.to_string().contains("unknown setting \"lisen\""),
            "{err}"
        );
        let err = Config::from_sources(Some((Path::new("s.toml"), "[listen]\na = 1")), &env(&[]))
            .expect_err("table");
        assert!(
            err.to_string()
                .contains("must be a string, a number or a boolean"),
            "{err}"
        );
    }

    #[test]
    fn a_provider_is_disabled_without_credentials_and_refused_when_half_configured() {
        let c = Config::from_sources(None, &env(&[])).expect("valid");
        assert!(
            c.alipay.is_none() && c.wechat.is_none(),
            "no credentials: both disabled"
        );

        let err =
            Config::from_sources(None, &env(&[("SCANPAY_ALIPAY_APP_ID", "2021000000000000")]))
                .expect_err("half configured");
        let msg = err.to_string();
        assert!(msg.contains("Alipay is partly configured"), "{msg}");
        assert!(msg.contains("SCANPAY_ALIPAY_SELLER_ID is missing"), "{msg}");

        let c = Config::from_sources(
            None,
            &env(&[
                ("SCANPAY_ALIPAY_APP_ID", "2021000000000000"),
                ("SCANPAY_ALIPAY_SELLER_ID", "2088000000000000"),
                ("SCANPAY_ALIPAY_PRIVATE_KEY_FILE", "/k/app.pem"),
                ("SCANPAY_ALIPAY_PUBLIC_KEY_FILE", "/k/alipay.pem"),
                (
                    "SCANPAY_ALIPAY_GATEWAY",
                    "http://127.0.0.1:3000/sandbox/alipay/gateway.do",
                ),
            ]),
        )
        .expect("complete");
        let a = c.alipay.expect("enabled");
        assert_eq!(a.gateway, "http://127.0.0.1:3000/sandbox/alipay/gateway.do");
        assert_eq!(a.private_key_file, PathBuf::from("/k/app.pem"));
        assert!(c.wechat.is_none());

        let err = Config::from_sources(None, &env(&[("SCANPAY_WECHAT_API_BASE", "not a url")]))
            .expect_err("bad URL");
        assert!(
            err.to_string().starts_with("SCANPAY_WECHAT_API_BASE"),
            "{err}"
        );
    }

    #[test]
    fn public_url_loses_its_trailing_slash_and_refuses_queries() {
        let c = Config::from_sources(
            None,
            &env(&[("SCANPAY_PUBLIC_URL", "https://pay.example.com/")]),
        )
        .expect("valid");
        assert_eq!(c.public_url.as_deref(), Some("https://pay.example.com"));
        assert!(
            Config::from_sources(None, &env(&[("SCANPAY_PUBLIC_URL", "https://x/?a=1")])).is_err()
        );
    }
}
