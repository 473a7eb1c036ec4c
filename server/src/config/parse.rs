//! The typed configuration, built from the layered values.

use super::*;

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
        let master_key_file = layers.parse(
            "master_key_file",
            "a file path",
            || None,
            |s| (!s.is_empty()).then(|| Some(PathBuf::from(s))),
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
            DatabaseUrl::parse,
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
                app_secret_file: layers
                    .get("wechat_app_secret_file")
                    .map(|(v, _)| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from),
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
            crate::infra::client_addr::TrustedProxies::parse,
        )?;

        let allow_private_targets = layers.parse(
            "allow_private_targets",
            "comma-separated IP addresses or networks, such as 10.20.0.0/16,127.0.0.1",
            Default::default,
            crate::infra::net::Networks::parse,
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
            master_key_file,
            shutdown_grace_secs,
        })
    }
}

fn parse_public_url(s: &str) -> Option<String> {
    let uri: http::Uri = s.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let no_query = uri.query().is_none();
    (scheme_ok && uri.authority().is_some() && no_query)
        .then(|| s.trim_end_matches('/').to_string())
}
