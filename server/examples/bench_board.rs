//! Benchmark (not a test): the order board's reads and the CSV export with 20,000 orders.
//!
//! Starts the whole application (release build) on the embedded SQLite and, when reachable,
//! on a fresh PostgreSQL database; seeds one merchant with 20,000 orders (two thirds paid,
//! split between the wallets), signs in, then over loopback: the board's first page (50 rows
//! and today's totals), a text search, a page deep behind a cursor, and the CSV export of all
//! orders; then the merchant API's `GET /orders/{id}` and, alone, the per-key rate limit every
//! API request takes (in the process on SQLite, an upsert in `rate_limits` on PostgreSQL).
//! Prints Markdown tables for docs/benchmarks.md.
//!
//! Run with `make bench`.

mod common;

use serde_json::json;
use std::time::{Duration, Instant};

const ORDERS: i64 = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The merchant's id and a signed-in session.
async fn seed(db: &server::infra::db::Db) -> (String, String) {
    let made = server::accounts::create_merchant(db, "Bench Tea", "bench@tea.example", false)
        .await
        .expect("merchant");
    let now = server::infra::clock::now_ms();
    let mut tx = db.pool().begin().await.expect("tx");
    for i in 0..ORDERS {
        let paid = i % 3 != 0;
        let channel = if i % 2 == 0 { "alipay" } else { "wechat" };
        let created = now - (ORDERS - i) * 1_000;
        sqlx::query(
            "INSERT INTO orders (id, merchant_id, amount, subject, status, late, refunded_amount, \
             provider_trade_no, paid_channel, expires_at, paid_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $7, $8, $9, $10, $10)",
        )
        .bind(format!("bench{i:021}"))
        .bind(&made.merchant_id)
        .bind(100 + i % 5_000)
        .bind(format!("Oolong {} g, batch {}", 50 + i % 7 * 25, i % 97))
        .bind(if paid { "paid" } else { "expired" })
        .bind(paid.then(|| format!("42{i:026}")))
        .bind(paid.then_some(channel))
        .bind(created + 900_000)
        .bind(paid.then_some(created + 30_000))
        .bind(created)
        .execute(&mut *tx)
        .await
        .expect("order");
    }
    tx.commit().await.expect("commit");
    let user = server::accounts::user_by_email(db, "bench@tea.example")
        .await
        .expect("user")
        .expect("exists")
        .0;
    let session = server::accounts::open_session(db, &user)
        .await
        .expect("session");
    (made.merchant_id.into_string(), session)
}

fn p50_p99(mut lat: Vec<Duration>) -> (Duration, Duration) {
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// The API's `GET /orders/{id}` one call at a time, and the rate limit it takes, alone: one
/// at a time, then 16 tasks at once on one key (the hot row of one busy shop).
async fn api_and_limit(engine: &str, app: &common::Running, merchant: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let key = server::api_keys::create(&app.db, &merchant.into(), "bench")
        .await
        .expect("key")
        .1;
    let ms = |d: Duration| format!("{:.4}", d.as_secs_f64() * 1000.0);
    let mut lat = Vec::with_capacity(500);
    for i in 0..500 {
        let t = Instant::now();
        let r = client
            .get(format!("{}/api/v1/orders/bench{:021}", app.base, i * 7))
            .bearer_auth(&key)
            .send()
            .await
            .expect("api");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.expect("body");
        lat.push(t.elapsed());
    }
    let (api50, api99) = p50_p99(lat);
    let limiter = app.limiter.clone();
    let rate = server::limits::Rate::per_minute(u32::MAX);
    let mut lat = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let t = Instant::now();
        limiter.take("api:bench-one", rate).await.expect("take");
        lat.push(t.elapsed());
    }
    let (take50, take99) = p50_p99(lat);
    let t = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                for _ in 0..250 {
                    limiter.take("api:bench-hot", rate).await.expect("take");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let hot = 4_000.0 / t.elapsed().as_secs_f64();
    vec![
        format!(
            "| {engine} | API `GET /orders/{{id}}` (500 calls, one at a time) | {} | {} | |",
            ms(api50),
            ms(api99)
        ),
        format!(
            "| {engine} | its rate limit alone (2,000 takes, one at a time) | {} | {} | |",
            ms(take50),
            ms(take99)
        ),
        format!("| {engine} | rate-limit takes, 16 at once on one key (4,000) | | | {hot:.0}/s |"),
    ]
}

async fn timed(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    body: serde_json::Value,
    n: usize,
) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/board/orders"))
            .header("cookie", format!("scanpay_session={session}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("board");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.expect("body");
        lat.push(t.elapsed());
    }
    p50_p99(lat)
}

/// The board's rows are printed as they are measured; the API's are returned for a table of
/// their own.
async fn bench(engine: &str, tune: impl FnOnce(&mut server::config::Config)) -> Vec<String> {
    let app = common::start(|c| {
        // The benchmark measures the limit's cost, not its refusals.
        c.api_rate_per_minute = u32::MAX;
        tune(c)
    })
    .await;
    let seeding = Instant::now();
    let (merchant, session) = seed(&app.db).await;
    let seeded = seeding.elapsed();
    let client = reqwest::Client::new();
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let rows = [
        (
            "first page (50 rows + today's totals)",
            json!({ "filter": {}, "after": null }),
        ),
        (
            "text search \"batch 42\"",
            json!({ "filter": { "q": "batch 42" }, "after": null }),
        ),
        (
            "paid, Alipay, ¥10–¥20",
            json!({ "filter": { "status": "paid", "channel": "alipay", "min": "10", "max": "20" }, "after": null }),
        ),
        (
            "page behind the 10,000th order",
            json!({ "filter": {}, "after": format!("bench{:021}", ORDERS / 2) }),
        ),
    ];
    for (what, body) in rows {
        let (p50, p99) = timed(&client, &app.base, &session, body, 200).await;
        println!("| {engine} | {what} | {} | {} |", ms(p50), ms(p99));
    }
    let t = Instant::now();
    let csv = client
        .get(format!("{}/board/orders.csv", app.base))
        .header("cookie", format!("scanpay_session={session}"))
        .send()
        .await
        .expect("csv")
        .bytes()
        .await
        .expect("body");
    let took = t.elapsed();
    let lines = csv.iter().filter(|b| **b == b'\n').count() - 1;
    assert_eq!(lines as i64, ORDERS);
    println!(
        "| {engine} | CSV export of {lines} orders ({:.1} MB) | {} total | {:.0} rows/s |",
        csv.len() as f64 / 1e6,
        ms(took),
        lines as f64 / took.as_secs_f64()
    );
    eprintln!("({engine}: seeding {ORDERS} orders took {seeded:?})");
    let api = api_and_limit(engine, &app, &merchant).await;
    app.stop().await;
    api
}

#[tokio::main]
async fn main() {
    println!("| engine | board read (200 calls, one at a time) | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    let mut api = bench("SQLite", |_| {}).await;
    let admin = std::env::var("SCANPAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("scanpay_bench_{}", std::process::id());
    let created = {
        use sqlx::Connection;
        match sqlx::PgConnection::connect(&format!("{admin}/postgres")).await {
            Ok(mut c) => sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    };
    if created {
        let url = format!("{admin}/{name}");
        api.extend(
            bench("PostgreSQL", |c| {
                c.database = server::config::DatabaseUrl {
                    engine: server::config::Engine::Postgres,
                    url: server::infra::secret::Secret::new(url),
                };
                c.database_max_connections = 10;
            })
            .await,
        );
        use sqlx::Connection;
        if let Ok(mut c) = sqlx::PgConnection::connect(&format!("{admin}/postgres")).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
    } else {
        eprintln!("PostgreSQL not reachable: SQLite only");
    }
    println!();
    println!("| engine | merchant API and its rate limit | p50 ms | p99 ms | throughput |");
    println!("|---|---|---|---|---|");
    for row in api {
        println!("{row}");
    }
}
