//! Benchmark (not a test): the order board's reads and the CSV export with 20,000 orders.
//!
//! Starts the whole application (release build) on the embedded SQLite and, when reachable,
//! on a fresh PostgreSQL database; seeds one merchant with 20,000 orders (two thirds paid,
//! split between the wallets), signs in, then over loopback: the board's first page (50 rows
//! and today's totals), a text search, a page deep behind a cursor, and the CSV export of all
//! orders. Prints a Markdown table for docs/benchmarks.md.
//!
//! Run with `make bench`.

mod common;

use serde_json::json;
use std::time::{Duration, Instant};

const ORDERS: i64 = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn seed(db: &server::db::Db) -> String {
    let made = server::accounts::create_merchant(db, "Bench Tea", "bench@tea.example", false)
        .await
        .expect("merchant");
    let now = server::orders::now_ms();
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
    server::accounts::open_session(db, &user)
        .await
        .expect("session")
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
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

async fn bench(engine: &str, tune: impl FnOnce(&mut server::config::Config)) {
    let app = common::start(tune).await;
    let seeding = Instant::now();
    let session = seed(&app.db).await;
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
    app.stop().await;
}

#[tokio::main]
async fn main() {
    println!("| engine | board read (200 calls, one at a time) | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    bench("SQLite", |_| {}).await;
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
        bench("PostgreSQL", |c| {
            c.database = server::config::DatabaseUrl {
                engine: server::config::Engine::Postgres,
                url: server::secret::Secret::new(url),
            };
            c.database_max_connections = 10;
        })
        .await;
        use sqlx::Connection;
        if let Ok(mut c) = sqlx::PgConnection::connect(&format!("{admin}/postgres")).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
    } else {
        eprintln!("PostgreSQL not reachable: SQLite only");
    }
}
