//! `make soak`: the load and fault suite (not part of `make test`). ScanPay runs as real
//! processes (`target/debug/scanpay`): the standalone sandbox gateways, and one node on SQLite
//! or two nodes sharing a fresh PostgreSQL database. For `--seconds`, `--customers` concurrent
//! customers create orders through the merchant API and pay them in the sandbox wallet with
//! faults (duplicate, dropped, delayed and out-of-order notifications; refunds whose answers
//! are unknown, cut off or slow), the merchant refunds part of some, while the suite kill -9s
//! a node and restarts it, on PostgreSQL also terminates the servers' connections
//! (`pg_terminate_backend`), and floods `/notify` with junk. Then it lets everything settle
//! and compares the sandbox's records (the providers' truth) with ScanPay's:
//!
//! - lost: a trade paid at the sandbox whose attempt is not paid in ScanPay, or anything at
//!   the sandbox without a ScanPay record;
//! - paid twice: an order with more paid attempts than paid trades, or two `order.paid` events;
//! - refunded twice: a refund settled at the sandbox that is not exactly one succeeded
//!   ScanPay refund of the same amount, or an order whose refunded amount differs from the
//!   sandbox's;
//! - webhooks: every outbox event delivered at least once under its one event id.
//!
//! It prints a table and appends it to `docs/benchmarks.md`.
//!
//! `cargo run -p server --example soak -- --engine sqlite|postgres [--seconds 120]
//! [--customers 6] [--bin target/debug/scanpay]`

use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

struct Args {
    engine: Engine,
    seconds: u64,
    customers: usize,
    bin: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        engine: Engine::Sqlite,
        seconds: 120,
        customers: 6,
        bin: PathBuf::from("target/debug/scanpay"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--engine" => {
                a.engine = match value.as_str() {
                    "postgres" => Engine::Postgres,
                    _ => Engine::Sqlite,
                }
            }
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--customers" => a.customers = value.parse().unwrap_or(a.customers),
            "--bin" => a.bin = PathBuf::from(value),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One ScanPay process that can be killed and started again with the same settings.
struct Proc {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        for (k, _) in std::env::vars() {
            if k.starts_with("SCANPAY_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", self.name)));
    }

    /// SIGKILL: no shutdown, no flush, no reply.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} did not become ready");
}

/// What the suite did, and what it found.
#[derive(Default)]
struct Tally {
    orders: AtomicU64,
    paid_in_wallet: AtomicU64,
    refunds_asked: AtomicU64,
    faults: AtomicU64,
    kills: AtomicU64,
    connection_kills: AtomicU64,
    junk: AtomicU64,
}

const PAY_FAULTS: &[&str] = &[
    "",
    "",
    "duplicates=3",
    "drop",
    "delay_ms=400",
    "out_of_order",
    "duplicates=2,out_of_order",
    "refund_unknown",
    "refund_cut",
    "refund_slow",
];

#[tokio::main]
async fn main() {
    let a = args();
    let started = Instant::now();
    let run_id = format!(
        "{}-{}",
        match a.engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        },
        std::process::id()
    );
    let dir = std::env::current_dir()
        .expect("cwd")
        .join("target/soak")
        .join(&run_id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("soak dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    // The providers: the standalone sandbox, redelivery waits ×0.01.
    let sandbox_port = free_port();
    let mut sandbox = Proc {
        name: "sandbox".into(),
        bin: a.bin.clone(),
        args: vec![
            "sandbox".into(),
            "--listen".into(),
            format!("127.0.0.1:{sandbox_port}"),
        ],
        env: vec![
            (
                "SCANPAY_DATA_DIR".into(),
                dir.join("sandbox").display().to_string(),
            ),
            ("SCANPAY_LOG".into(), "warn".into()),
            ("SCANPAY_SANDBOX_TIME_SCALE".into(), "0.01".into()),
        ],
        log: dir.join("sandbox.out"),
        child: None,
    };
    sandbox.start();
    let settings = read_settings(&dir.join("sandbox.out")).await;

    // ScanPay's database.
    let (database_url, pg_name) = match a.engine {
        Engine::Sqlite => (
            format!("sqlite://{}?mode=rwc", dir.join("scanpay.db").display()),
            None,
        ),
        Engine::Postgres => {
            let name = format!("scanpay_soak_{}", std::process::id());
            let admin = "postgres://postgres@127.0.0.1:5432/postgres";
            let pool = sqlx::PgPool::connect(admin).await.expect("PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&pool)
                .await
                .expect("drop");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create");
            (
                format!("postgres://postgres@127.0.0.1:5432/{name}"),
                Some(name),
            )
        }
    };
    let node_count = if a.engine == Engine::Postgres { 2 } else { 1 };
    let secret: String = (0..32)
        .map(|_| rand::thread_rng().sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let mut nodes: Vec<Proc> = Vec::new();
    let mut bases = Vec::new();
    for n in 1..=node_count {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = settings.clone();
        env.extend(
            [
                ("SCANPAY_DATABASE_URL", database_url.clone()),
                ("SCANPAY_LISTEN", format!("127.0.0.1:{port}")),
                ("SCANPAY_PUBLIC_URL", base.clone()),
                (
                    "SCANPAY_DATA_DIR",
                    dir.join(format!("node-{n}")).display().to_string(),
                ),
                ("SCANPAY_LOG", "warn".into()),
                ("SCANPAY_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8".into()),
                ("SCANPAY_TRUSTED_PROXIES", "127.0.0.1/32".into()),
                ("SCANPAY_ACTIVE_QUERY_AFTER_SECS", "3".into()),
                ("SCANPAY_WEBHOOK_TIME_SCALE", "0.01".into()),
                ("SCANPAY_API_RATE_PER_MINUTE", "100000".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        if node_count > 1 {
            env.push(("SCANPAY_NODE_ID".into(), format!("node-{n}")));
            env.push(("SCANPAY_CLUSTER_SECRET".into(), secret.clone()));
        }
        let mut p = Proc {
            name: format!("node-{n}"),
            bin: a.bin.clone(),
            args: vec!["serve".into()],
            env,
            log: dir.join(format!("node-{n}.out")),
            child: None,
        };
        p.start();
        wait_ready(&http, &base).await;
        nodes.push(p);
        bases.push(base);
    }

    // The merchant, its API key and its webhook endpoint (a receiver in this process).
    let created = Command::new(&a.bin)
        .args([
            "merchant",
            "create",
            "--name",
            "Soak shop",
            "--email",
            "soak@shop.example",
            "--json",
        ])
        .envs(nodes[0].env.iter().cloned())
        .output()
        .expect("merchant create");
    let created: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("merchant create --json");
    let merchant = created["merchant_id"]
        .as_str()
        .expect("merchant")
        .to_string();
    let api_key = created["api_key"].as_str().expect("api key").to_string();
    let received: Arc<Mutex<HashMap<String, (usize, String)>>> = Arc::default();
    let hook_port = spawn_receiver(received.clone()).await;
    let set = Command::new(&a.bin)
        .args([
            "webhook",
            "set",
            "--merchant",
            &merchant,
            "--url",
            &format!("http://127.0.0.1:{hook_port}/hook"),
        ])
        .envs(nodes[0].env.iter().cloned())
        .output()
        .expect("webhook set");
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let bases = Arc::new(bases);

    // Customers.
    let mut load = Vec::new();
    for c in 0..a.customers {
        let (http, bases, key, tally, stop) = (
            http.clone(),
            bases.clone(),
            api_key.clone(),
            tally.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            customer(c, &http, &bases, &key, &tally, &stop).await
        }));
    }
    // Junk at /notify, from an address of its own (through the trusted proxy header).
    {
        let (http, bases, tally, stop) = (http.clone(), bases.clone(), tally.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let base = &bases[rand::thread_rng().gen_range(0..bases.len())];
                let which = if rand::random::<bool>() {
                    "alipay"
                } else {
                    "wechat"
                };
                let body: Vec<u8> = (0..rand::thread_rng().gen_range(0..2048))
                    .map(|_| rand::random::<u8>())
                    .collect();
                let _ = http
                    .post(format!("{base}/notify/{which}"))
                    .header("x-forwarded-for", "203.0.113.9")
                    .body(body)
                    .send()
                    .await;
                tally.junk.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // Chaos: kill -9 a node and start it again; on PostgreSQL, cut its connections.
    let mut next_kill = Instant::now() + Duration::from_secs(15);
    let mut next_cut = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if Instant::now() >= next_kill {
            let i = rand::thread_rng().gen_range(0..nodes.len());
            nodes[i].kill9();
            tally.kills.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(2)).await;
            nodes[i].start();
            wait_ready(&http, &bases[i]).await;
            next_kill = Instant::now() + Duration::from_secs(25);
        }
        if let (Some(name), true) = (&pg_name, Instant::now() >= next_cut) {
            let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
                .await
                .expect("PostgreSQL");
            let cut = sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .fetch_all(&admin)
            .await
            .map(|r| r.len())
            .unwrap_or(0);
            admin.close().await;
            tally
                .connection_kills
                .fetch_add(cut as u64, Ordering::Relaxed);
            next_cut = Instant::now() + Duration::from_secs(20);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.await;
    }
    let load_secs = started.elapsed().as_secs_f64();

    // Let it settle, then compare the two sides of the truth.
    sqlx::any::install_default_drivers();
    let scanpay = sqlx::AnyPool::connect(&database_url)
        .await
        .expect("ScanPay's database");
    let sandbox_db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.join("sandbox/sandbox/sandbox.db").display()
    ))
    .await
    .expect("the sandbox's database");
    let settle_started = Instant::now();
    let mut report = check(&scanpay, &sandbox_db, &received).await;
    while !report.converged() && settle_started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        report = check(&scanpay, &sandbox_db, &received).await;
    }
    let converge_secs = settle_started.elapsed().as_secs_f64();
    drop(nodes);
    drop(sandbox);
    scanpay.close().await;
    if let Some(name) = pg_name {
        if let Ok(pool) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
        }
    }

    let engine = match a.engine {
        Engine::Sqlite => "SQLite, 1 node",
        Engine::Postgres => "PostgreSQL, 2 nodes",
    };
    let t = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let row = format!(
        "| {engine} | {:.0} s × {} customers | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |",
        load_secs,
        a.customers,
        t(&tally.orders),
        t(&tally.paid_in_wallet),
        report.paid_orders,
        t(&tally.faults),
        t(&tally.kills),
        t(&tally.connection_kills),
        t(&tally.junk),
        report.refunds_settled,
        report.events_delivered,
        report.lost,
        report.paid_twice,
        report.refunded_twice,
        report.undelivered,
        converge_secs,
    );
    let header = "| engine | load | orders | paid in wallet | paid in ScanPay | payments with faults | node kills / connections cut | junk notifications | refunds settled | webhook events delivered | lost | paid twice | refunded twice | undelivered events | seconds to converge |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
    println!("{header}\n{row}");
    for problem in &report.problems {
        println!("  ! {problem}");
    }
    append_to_benchmarks(&row, header);
    if !report.converged() {
        eprintln!("soak: NOT converged; see {}", dir.display());
        std::process::exit(1);
    }
}

async fn read_settings(out: &Path) -> Vec<(String, String)> {
    for _ in 0..600 {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.contains("SCANPAY_WECHAT_APIV3_KEY_FILE=") {
            return text
                .lines()
                .filter(|l| l.starts_with("SCANPAY_"))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sandbox printed no settings");
}

/// A webhook receiver: event id → (times received, body).
async fn spawn_receiver(received: Arc<Mutex<HashMap<String, (usize, String)>>>) -> u16 {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let received = received.clone();
            async move {
                let id = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
                let e = r.entry(id).or_insert((0, body.clone()));
                e.0 += 1;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// One customer: order, pay (with faults) or leave it, and sometimes a partial refund.
async fn customer(
    c: usize,
    http: &reqwest::Client,
    bases: &[String],
    key: &str,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let base = &bases[(c + n as usize) % bases.len()];
        let amount: i64 = rand::thread_rng().gen_range(100..50_000);
        let channel = if rand::random::<bool>() {
            "alipay"
        } else {
            "wechat"
        };
        let created = http
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(key)
            .header("idempotency-key", format!("soak-{c}-{n}"))
            .json(&serde_json::json!({
                "amount": amount, "currency": "CNY", "subject": "Soak", "channel": channel,
                "expires_in": 600,
            }))
            .send()
            .await;
        let Ok(created) = created else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let Ok(order) = created.json::<serde_json::Value>().await else {
            continue;
        };
        let (Some(id), Some(code)) = (order["id"].as_str(), order["code_url"].as_str()) else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        tally.orders.fetch_add(1, Ordering::Relaxed);
        // One in ten is never paid.
        if rand::thread_rng().gen_range(0..10) == 0 {
            continue;
        }
        let fault = PAY_FAULTS[rand::thread_rng().gen_range(0..PAY_FAULTS.len())];
        let paid = http
            .post(code)
            .form(&[("action", "pay"), ("faults", fault)])
            .send()
            .await
            .is_ok_and(|r| r.status().is_success() || r.status().is_redirection());
        if !paid {
            continue;
        }
        tally.paid_in_wallet.fetch_add(1, Ordering::Relaxed);
        if !fault.is_empty() {
            tally.faults.fetch_add(1, Ordering::Relaxed);
        }
        // Two in five get a partial refund once ScanPay shows them paid.
        if rand::thread_rng().gen_range(0..5) < 2 {
            for _ in 0..40 {
                let status = http
                    .get(format!("{base}/api/v1/orders/{id}"))
                    .bearer_auth(key)
                    .send()
                    .await;
                let paid = match status {
                    Ok(r) => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|o| o["status"] == "paid"),
                    Err(_) => false,
                };
                if paid {
                    let asked = http
                        .post(format!("{base}/api/v1/orders/{id}/refunds"))
                        .bearer_auth(key)
                        .header("idempotency-key", format!("soak-refund-{c}-{n}"))
                        .json(&serde_json::json!({ "amount": amount / 3 }))
                        .send()
                        .await;
                    // A lost answer is asked again under the same key: never a second refund.
                    if asked.is_err() {
                        let _ = http
                            .post(format!("{base}/api/v1/orders/{id}/refunds"))
                            .bearer_auth(key)
                            .header("idempotency-key", format!("soak-refund-{c}-{n}"))
                            .json(&serde_json::json!({ "amount": amount / 3 }))
                            .send()
                            .await;
                    }
                    tally.refunds_asked.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[derive(Default)]
struct Report {
    paid_orders: u64,
    refunds_settled: u64,
    events_delivered: u64,
    lost: u64,
    paid_twice: u64,
    refunded_twice: u64,
    undelivered: u64,
    /// Still pending (refunds, webhook events) or unmatched: not converged yet.
    unsettled: u64,
    problems: Vec<String>,
}

impl Report {
    fn converged(&self) -> bool {
        self.lost == 0
            && self.paid_twice == 0
            && self.refunded_twice == 0
            && self.undelivered == 0
            && self.unsettled == 0
    }
}

async fn check(
    scanpay: &sqlx::AnyPool,
    sandbox: &sqlx::SqlitePool,
    received: &Mutex<HashMap<String, (usize, String)>>,
) -> Report {
    let mut r = Report::default();
    // The sandbox's truth: trades and refunds.
    let trades: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT out_trade_no, state, amount, refunded FROM sandbox_trades")
            .fetch_all(sandbox)
            .await
            .unwrap_or_default();
    let sandbox_refunds: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT out_refund_no, amount, status FROM sandbox_refunds")
            .fetch_all(sandbox)
            .await
            .unwrap_or_default();
    // ScanPay's records, read in full or not at all: a read that fails is "not settled yet",
    // never an empty table that looks clean.
    let read = async {
        Ok::<_, sqlx::Error>((
            rows::<(String, String, String)>(
                scanpay,
                "SELECT out_trade_no, order_id, status FROM payment_attempts",
            )
            .await?,
            rows::<(String, String, i64, String, i64)>(
                scanpay,
                "SELECT id, order_id, amount, status, extra FROM refunds",
            )
            .await?,
            rows::<(String, String, i64)>(scanpay, "SELECT id, status, refunded_amount FROM orders")
                .await?,
            rows::<(String, i64)>(
                scanpay,
                "SELECT order_id, COUNT(*) AS n FROM outbox WHERE topic = 'order.paid' GROUP BY order_id",
            )
            .await?,
            rows::<(String, String)>(scanpay, "SELECT event_id, delivery FROM outbox").await?,
        ))
    };
    let (attempts, refunds, orders, paid_events, events) = match read.await {
        Ok(all) => all,
        Err(e) => {
            r.unsettled += 1;
            r.problems.push(format!("ScanPay database: {e}"));
            return r;
        }
    };
    let attempts: HashMap<String, (String, String)> = attempts
        .into_iter()
        .map(|(trade, order, status)| (trade, (order, status)))
        .collect();
    let refunds: HashMap<String, (String, i64, String, i64)> = refunds
        .into_iter()
        .map(|(id, order, amount, status, extra)| (id, (order, amount, status, extra)))
        .collect();
    let orders: HashMap<String, (String, i64)> = orders
        .into_iter()
        .map(|(id, status, refunded)| (id, (status, refunded)))
        .collect();
    // Paid exactly once; nothing paid at the sandbox without a record here.
    let mut sandbox_paid_per_order: BTreeMap<String, i64> = BTreeMap::new();
    let mut sandbox_refunded_per_order: BTreeMap<String, i64> = BTreeMap::new();
    for (out_trade_no, state, _amount, refunded) in &trades {
        let Some((order_id, status)) = attempts.get(out_trade_no) else {
            r.lost += 1;
            r.problems.push(format!(
                "the sandbox has trade {out_trade_no}; ScanPay has no attempt"
            ));
            continue;
        };
        if state == "paid" {
            *sandbox_paid_per_order.entry(order_id.clone()).or_default() += 1;
            *sandbox_refunded_per_order
                .entry(order_id.clone())
                .or_default() += refunded;
            if status != "paid" {
                r.lost += 1;
                r.problems.push(format!(
                    "trade {out_trade_no} is paid at the sandbox, {status} in ScanPay"
                ));
            }
        }
    }
    for (order_id, paid_trades) in &sandbox_paid_per_order {
        let paid_here = attempts
            .values()
            .filter(|(o, s)| o == order_id && s == "paid")
            .count() as i64;
        if paid_here > *paid_trades {
            r.paid_twice += 1;
            r.problems.push(format!(
                "order {order_id}: {paid_here} paid attempts, {paid_trades} paid trades"
            ));
        }
        match orders.get(order_id) {
            Some((status, _))
                if ["paid", "partially_refunded", "refunded"].contains(&status.as_str()) =>
            {
                r.paid_orders += 1
            }
            other => {
                r.lost += 1;
                r.problems.push(format!(
                    "order {order_id} was paid at the sandbox; ScanPay: {other:?}"
                ));
            }
        }
    }
    for (order_id, n) in paid_events {
        if n > 1 {
            r.paid_twice += 1;
            r.problems
                .push(format!("order {order_id}: {n} order.paid events"));
        }
    }
    // Refunds: each made at the sandbox is one succeeded refund here, of the same amount.
    for (no, amount, status) in &sandbox_refunds {
        match refunds.get(no) {
            None => {
                r.lost += 1;
                r.problems.push(format!(
                    "the sandbox made refund {no}; ScanPay has no such refund"
                ));
            }
            Some((_, a, s, _)) if status == "SUCCESS" && s == "succeeded" && a == amount => {
                r.refunds_settled += 1
            }
            Some((_, _, s, _)) if s == "failed" => {
                r.refunded_twice += 1;
                r.problems.push(format!(
                    "refund {no}: made at the sandbox, failed in ScanPay"
                ));
            }
            Some(_) => r.unsettled += 1,
        }
    }
    for (id, (_, _, status, _)) in &refunds {
        if status == "pending" || status == "abnormal" {
            r.unsettled += 1;
        } else if status == "succeeded" && !sandbox_refunds.iter().any(|(no, _, _)| no == id) {
            r.refunded_twice += 1;
            r.problems.push(format!(
                "refund {id}: succeeded in ScanPay, unknown at the sandbox"
            ));
        }
    }
    for (order_id, refunded_there) in &sandbox_refunded_per_order {
        let extra_here: i64 = refunds
            .values()
            .filter(|(o, _, s, extra)| o == order_id && s == "succeeded" && *extra == 1)
            .map(|(_, a, _, _)| a)
            .sum();
        let here = orders.get(order_id).map(|(_, n)| *n).unwrap_or(0) + extra_here;
        if here != *refunded_there && r.unsettled == 0 {
            r.refunded_twice += 1;
            r.problems.push(format!(
                "order {order_id}: refunded {here} fen in ScanPay, {refunded_there} at the sandbox"
            ));
        }
    }
    // Webhooks: every event delivered, received under its one id.
    let got = received.lock().unwrap_or_else(|p| p.into_inner());
    for (event_id, delivery) in &events {
        match (delivery.as_str(), got.get(event_id)) {
            ("delivered", Some(_)) => r.events_delivered += 1,
            ("pending", _) => r.unsettled += 1,
            (other, seen) => {
                if seen.is_none() {
                    r.undelivered += 1;
                    r.problems
                        .push(format!("event {event_id} is {other}, never received"));
                } else {
                    r.events_delivered += 1;
                }
            }
        }
    }
    r
}

/// Every row of `sql` as `T`.
async fn rows<T>(pool: &sqlx::AnyPool, sql: &str) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    sqlx::query_as::<_, T>(sql).fetch_all(pool).await
}

fn append_to_benchmarks(row: &str, header: &str) {
    let path = Path::new("docs/benchmarks.md");
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let title = "## Soak: load and faults (`make soak`)";
    let machine = format!(
        "{}, {} cores",
        std::env::consts::ARCH,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let entry = row.to_string();
    let text = if let Some(start) = text.find(title) {
        // The new row goes at the end of the section's table.
        let after = start + title.len();
        let end = text[after..]
            .find("\n## ")
            .map(|i| after + i)
            .unwrap_or(text.len());
        let body_end = text[..end].trim_end_matches('\n').len();
        let mut t = text.clone();
        t.insert_str(body_end, &format!("\n{entry}"));
        t
    } else {
        format!(
            "{}\n\n{title}\nEach row is one run of `make soak` ({machine}; debug build; processes on loopback; sandbox redelivery ×0.01). Lost, paid twice, refunded twice and undelivered must be 0.\n\n{header}\n{entry}\n",
            text.trim_end()
        )
    };
    let _ = std::fs::write(path, text);
}
