use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_readme_tables_are_generated_from_the_key_table() {
    let readme = include_str!("../../../README.md");
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
    let file = format!("listen = \"0.0.0.0:8080\"\ncluster_secret = \"{secret}\"\ndemo = false\n");
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
    let c = from_file("database_max_connections = 7\nshutdown_grace_secs = 0\n").expect("integers");
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
    let c = from_file("sandbox_time_scale = 0.001\nwebhook_time_scale = 0.5\n").expect("floats");
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

    let err = Config::from_sources(None, &env(&[("SCANPAY_ALIPAY_APP_ID", "2021000000000000")]))
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
    assert!(Config::from_sources(None, &env(&[("SCANPAY_PUBLIC_URL", "https://x/?a=1")])).is_err());
}
