//! Test harness: a fresh database per test (a temporary SQLite file, or a PostgreSQL
//! database created on the local server and dropped afterwards) and a whole ScanPay
//! application on port 0.

pub mod phone;

use server::config::{Config, DatabaseUrl, Engine, LogFormat};
use server::infra::secret::Secret;
use server::Application;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The PostgreSQL server the tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("SCANPAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: DatabaseUrl,
    /// The test's data directory (the SQLite file, the sandbox's keys and database); removed
    /// on drop. Each test has its own, so concurrent tests' sandboxes never share a database.
    dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop on drop.
    pg_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("scanpay.db").display()
        );
        TestDb {
            url: DatabaseUrl {
                engine: Engine::Sqlite,
                url: Secret::new(url),
            },
            dir: Some(dir),
            pg_name: None,
        }
    }

    /// Creates a fresh database on the local PostgreSQL server. Fails the test (never skips
    /// it) when PostgreSQL is unreachable, saying how to start it.
    pub async fn postgres() -> TestDb {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is not reachable at {admin}: {err}\n\
                 The PostgreSQL tests need a local server (trust auth, user postgres). Start it with\n\
                 \x20   pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
                 or point SCANPAY_TEST_POSTGRES_URL at another server."
            )
        });
        let name = format!("scanpay_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: DatabaseUrl {
                engine: Engine::Postgres,
                url: Secret::new(format!("{base}/{name}")),
            },
            dir: Some(tempfile::tempdir().expect("temporary directory")),
            pg_name: Some(name),
        }
    }

    pub fn engine(&self) -> Engine {
        self.url.engine
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(std::env::temp_dir)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime; use a thread with its own runtime.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// A configuration for tests: port 0 on loopback, the given database, quiet logs.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_listen: None,
        database: db.url.clone(),
        database_max_connections: 5,
        public_url: None,
        log: "warn".to_string(),
        log_format: LogFormat::Text,
        data_dir: db.data_dir(),
        master_key_file: None,
        shutdown_grace_secs: 5,
        alipay: None,
        wechat: None,
        sandbox: server::config::SandboxMode::Off,
        sandbox_time_scale: 1.0,
        sandbox_faults: Default::default(),
        demo: true,
        unsafe_sandbox_beside_live: false,
        order_expiry_secs: 900,
        active_query_after_secs: 20,
        webhook_time_scale: 1.0,
        api_rate_per_minute: 600,
        node_id: None,
        node_url: None,
        cluster_secret: None,
        node_ttl_secs: 5,
        trusted_proxies: Default::default(),
        // The tests' webhook receivers listen on loopback.
        allow_private_targets: server::infra::net::Networks::parse("127.0.0.0/8,::1")
            .expect("networks"),
    }
}

/// [`test_config`] with the in-process sandbox serving both providers, its notification
/// redelivery waits scaled ×0.001.
pub fn sandbox_config(db: &TestDb) -> Config {
    let mut config = test_config(db);
    config.sandbox = server::config::SandboxMode::Auto;
    config.sandbox_time_scale = 0.001;
    config
}

/// The `scanpay` binary, run from the repository root (where `Leptos.toml` is, as `make run`
/// does), with none of this environment's `SCANPAY_*` settings.
pub fn scanpay_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scanpay"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (k, _) in std::env::vars() {
        if k.starts_with("SCANPAY_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A new order of the demo merchant: `fen`, 15 minutes to pay, a return URL.
pub async fn new_order(app: &TestApp, fen: i64) -> server::orders::Order {
    server::orders::create(
        &app.db,
        &server::orders::NewOrder {
            merchant_id: server::merchants::DEMO_MERCHANT_ID.into(),
            amount: app::money::Amount::from_fen(fen).expect("amount"),
            subject: "Flat white".into(),
            expires_in_secs: 900,
            return_url: Some("https://shop.example/thanks".into()),
        },
        None,
    )
    .await
    .expect("order")
}

/// A new order with a live code in `channel`.
pub async fn order_with_code(
    app: &TestApp,
    fen: i64,
    channel: server::providers::Channel,
) -> (server::orders::Order, server::payments::Attempt) {
    use server::payments::StartPayment;
    let order = new_order(app, fen).await;
    let attempt = app
        .payments
        .start_payment(&order.id, channel)
        .await
        .expect("prepay");
    (order, attempt)
}

/// Presses "Pay" in the sandbox wallet behind a code URL, with optional faults.
pub async fn pay_in_wallet(app: &TestApp, code_url: &str, faults: &str) {
    let page = app
        .client
        .post(code_url)
        .form(&[("action", "pay"), ("faults", faults)])
        .send()
        .await
        .expect("wallet");
    assert!(
        page.status().is_success() || page.status().is_redirection(),
        "{}",
        page.status()
    );
}

/// Refunds `fen` of an order and waits (up to 5 s) for it to settle; its status then.
pub async fn refund_settles(
    app: &TestApp,
    merchant: &server::merchants::MerchantId,
    order: &server::orders::OrderId,
    fen: i64,
) -> server::payments::refunds::RefundStatus {
    use server::payments::refunds::{self, RefundStatus};
    let refund = refunds::request(
        &app.payments,
        merchant,
        order,
        app::money::Amount::from_fen(fen).expect("amount"),
        None,
    )
    .await
    .expect("refund");
    let mut settled = refund.status;
    for _ in 0..200 {
        if settled == RefundStatus::Succeeded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        settled = refunds::get(&app.payments, &refund.id)
            .await
            .expect("read")
            .expect("refund")
            .status;
    }
    settled
}

/// An order id a test holds as text (from JSON, a page, a constant), as the domain takes it.
pub fn oid(id: &str) -> server::orders::OrderId {
    server::orders::OrderId::parse(id).unwrap_or_else(|| panic!("{id:?} is not an order id"))
}

/// A trade number a test holds as text.
pub fn otn(no: &str) -> server::providers::OutTradeNo {
    server::providers::OutTradeNo::new(no)
}

pub async fn status_of(app: &TestApp, id: &str) -> server::orders::OrderStatus {
    server::orders::get(&app.db, &oid(id))
        .await
        .expect("read")
        .expect("exists")
        .status
}

/// What the provider says of `attempt`'s trade now, asked through the attempt's own account.
pub async fn state_at_provider(
    app: &TestApp,
    attempt: &server::payments::Attempt,
) -> server::providers::TradeState {
    let client = app
        .payments
        .client_of(attempt)
        .await
        .expect("client")
        .expect("account");
    client
        .query(&attempt.out_trade_no)
        .await
        .expect("query")
        .state
}

/// Waits for an order to reach a status (the notification arrives asynchronously).
pub async fn wait_for(app: &TestApp, id: &str, want: server::orders::OrderStatus) {
    for _ in 0..200 {
        if status_of(app, id).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "order {id} is {} after 5 s, not {want}",
        status_of(app, id).await
    );
}

/// A running application and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: server::infra::db::Db,
    pub providers: server::providers::config::Providers,
    pub payments: server::payments::Payments,
    pub webhooks: server::webhooks::Webhooks,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> TestApp {
        TestApp::spawn_with(test_config(db)).await
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        server::infra::telemetry::init_tracing("warn", LogFormat::Text);
        let app = Application::build(config)
            .await
            .expect("application starts");
        let addr = app.local_addr();
        let handle_db = app.db().clone();
        let providers = app.providers().clone();
        let payments = app.payments().clone();
        let webhooks = app.webhooks().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            client: test_client(),
            db: handle_db,
            providers,
            payments,
            webhooks,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Signals shutdown and waits for the server to finish: at most [`STOP_WITHIN`], after
    /// which the test fails saying so (the server's own grace period is 5 s).
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => tokio::time::timeout(STOP_WITHIN, h)
                .await
                .unwrap_or_else(|_| panic!("the application did not stop within {STOP_WITHIN:?}"))
                .expect("server task"),
            None => Ok(()),
        }
    }
}

/// How long a test waits for its application to stop.
pub const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);
/// How long any one test request may take before it fails the test.
pub const REQUEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The tests' HTTP client: no redirects followed, and a time limit on every request, so a
/// request that never gets an answer fails its test instead of hanging the suite.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_WITHIN)
        .build()
        .expect("client")
}

/// Generates one test per engine from `async fn name(db: TestDb)` functions:
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::postgres().await).await
                }
            )*
        }
    };
}

/// Runs one command in the Node interop peer (`end2end/interop/peer.cjs`, the official
/// provider SDKs) and returns its JSON answer.
pub fn node(cmd: serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    assert!(
        std::path::Path::new(&format!("{repo}/end2end/node_modules/alipay-sdk")).exists(),
        "the Node SDKs are not installed: run scripts/tools.sh (or `make test`)"
    );
    let mut child = Command::new("node")
        .arg(format!("{repo}/end2end/interop/peer.cjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js) must be installed: scripts/tools.sh installs it");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(cmd.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("node ran");
    assert!(
        out.status.success(),
        "node peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON answer")
}

/// The number of the newest migration in the repository (the same for both engines).
pub fn newest_migration() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("migrations folder")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .split('_')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .expect("at least one migration")
}

/// The path of a file from the known-answer vectors (`server/tests/vectors`, see its README).
pub fn vector_path(name: &str) -> String {
    format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A file from the known-answer vectors (`server/tests/vectors`).
pub fn vector(name: &str) -> String {
    let path = vector_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the known-answer vector {path}: {e}"))
}

/// A clock stopped at a given Unix second, for checking signed timestamps.
pub struct FixedClock(pub i64);

impl server::infra::clock::Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0 * 1000
    }
}

/// The APIv3 key of the WeChat test client (32 ASCII bytes).
pub const TEST_APIV3_KEY: &str = "ScanPayTestAPIv3Key0123456789abc";

/// A WeChat Pay client with the vectors' merchant key, trusting the vectors' public key under
/// `key_id`, with its clock stopped at `now`. It never sends a request (nothing listens on 9).
pub fn wechat_test_client(now: i64, key_id: &str) -> server::providers::wechat::WechatPay {
    use server::providers::keys::{private_key_from_text, public_key_from_text};
    use server::providers::wechat::{WechatAccount, WechatPay};
    use std::sync::Arc;
    WechatPay::new(
        WechatAccount {
            api_base: "http://127.0.0.1:9".into(),
            appid: "wxd678efh567hg6787".into(),
            mchid: "1230000109".into(),
            cert_serial: "MERCHANTSERIAL".into(),
            wechat_key_id: key_id.into(),
            app_secret: None,
        },
        Arc::new(private_key_from_text(&vector("wechat/test-private-key-pkcs8.pem")).expect("key")),
        Arc::new(public_key_from_text(&vector("wechat/test-public-key.pem")).expect("key")),
        Secret::new(TEST_APIV3_KEY.as_bytes().try_into().expect("32 bytes")),
        reqwest::Client::new(),
        std::time::Duration::from_secs(1),
        Arc::new(FixedClock(now)),
    )
}
