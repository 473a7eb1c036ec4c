//! The foundation, end to end over HTTP, on SQLite and on PostgreSQL: storage and
//! migrations, operational endpoints, server-rendered pages with real 404s, the server
//! function round trip, request ids, metrics and graceful shutdown.

use crate::common;

use common::{TestApp, TestDb};
use server::config::Engine;
use server::infra::db::Db;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_engines!(
    migrations_apply_once_and_are_idempotent,
    money_and_times_round_trip_as_exact_integers,
    healthz_and_readyz_answer,
    home_page_is_server_rendered_with_the_hydration_bundle,
    unknown_routes_and_unknown_checkouts_are_real_404s,
    server_function_reports_version_and_database,
    every_response_carries_a_request_id,
    metrics_count_requests_by_route_pattern,
    shutdown_lets_an_in_flight_request_finish,
);

async fn migrations_apply_once_and_are_idempotent(db: TestDb) {
    let conn = Db::connect(&db.url, 2).await.expect("connect");
    assert_eq!(
        conn.schema_version().await.ok(),
        None,
        "no migration table before migrating"
    );
    conn.migrate().await.expect("first migration");
    let v1 = conn.schema_version().await.expect("version");
    conn.migrate().await.expect("second migration is a no-op");
    assert_eq!(conn.schema_version().await.expect("version"), v1);
    assert_eq!(v1, common::newest_migration(), "every migration applied");
    let pg_count = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("dir")
        .count();
    let sqlite_count = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("dir")
        .count();
    assert_eq!(
        pg_count, sqlite_count,
        "both engines have the same numbered steps"
    );
    assert_eq!(conn.engine(), db.engine());
}

async fn money_and_times_round_trip_as_exact_integers(db: TestDb) {
    let conn = Db::connect(&db.url, 2).await.expect("connect");
    conn.migrate().await.expect("migrate");
    // The largest instant ScanPay stores fits BIGINT exactly; so does any fen amount.
    let created_at: i64 = 4_102_444_800_123; // 2100-01-01T00:00:00.123Z in ms
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind("mch_test")
        .bind("测试商户 Test Shop")
        .bind(created_at)
        .execute(conn.pool())
        .await
        .expect("insert");
    let (name, at): (String, i64) =
        sqlx::query_as("SELECT name, created_at FROM merchants WHERE id = $1")
            .bind("mch_test")
            .fetch_one(conn.pool())
            .await
            .expect("select");
    assert_eq!(name, "测试商户 Test Shop");
    assert_eq!(at, created_at);
    let dup = sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind("mch_test")
        .bind("x")
        .bind(0_i64)
        .execute(conn.pool())
        .await;
    assert!(
        dup.is_err(),
        "the primary key refuses a second row with the same id"
    );
    let empty = sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind("mch_empty")
        .bind("")
        .bind(0_i64)
        .execute(conn.pool())
        .await;
    assert!(
        empty.is_err(),
        "an empty merchant name is refused by the schema"
    );
    // Money: the largest amount an order may hold, and a refund total beside it, come back
    // to the fen as integers (never through a float).
    let order = server::orders::create(
        &conn,
        &server::orders::NewOrder {
            merchant_id: "mch_test".into(),
            amount: app::money::Amount::MAX,
            subject: "Largest order".into(),
            expires_in_secs: 900,
            return_url: None,
        },
        None,
    )
    .await
    .expect("order");
    let almost_all = app::money::Amount::MAX.fen() - 1;
    sqlx::query("UPDATE orders SET refunded_amount = $1 WHERE id = $2")
        .bind(almost_all)
        .bind(order.id.as_str())
        .execute(conn.pool())
        .await
        .expect("update");
    let (amount, refunded, expires_at): (i64, i64, i64) =
        sqlx::query_as("SELECT amount, refunded_amount, expires_at FROM orders WHERE id = $1")
            .bind(order.id.as_str())
            .fetch_one(conn.pool())
            .await
            .expect("select order");
    assert_eq!(amount, 10_000_000_000, "¥100,000,000.00 to the fen");
    assert_eq!(refunded, 9_999_999_999);
    assert_eq!(expires_at, order.expires_at);
    let stored = server::orders::get(&conn, &order.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.amount, app::money::Amount::MAX);
}

async fn healthz_and_readyz_answer(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "ok");
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], db.engine().display_name());
    app.stop().await.expect("clean stop");
}

async fn home_page_is_server_rendered_with_the_hydration_bundle(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let html = res.text().await.expect("body");
    assert!(
        html.contains("Take Alipay and WeChat Pay by QR code"),
        "SSR content missing"
    );
    assert!(html.contains("/pkg/scanpay.js"), "hydration script missing");
    assert!(html.contains("/pkg/scanpay.css"), "style sheet missing");
    assert!(html.contains(r#"data-testid="check-server""#));
    // The board needs a session: without one it sends the browser to sign in.
    let board = app.get("/board").await;
    assert_eq!(board.status(), 303);
    assert_eq!(board.headers()["location"], "/login?next=%2Fboard");
    let login = app.get("/login?next=%2Fboard").await;
    assert_eq!(login.status(), 200);
    assert!(login
        .text()
        .await
        .expect("body")
        .contains("Sign in to the order board"));
    app.stop().await.expect("clean stop");
}

async fn unknown_routes_and_unknown_checkouts_are_real_404s(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.expect("body");
    assert!(html.contains("Page not found"), "the 404 view is rendered");
    assert!(
        html.contains("/pkg/scanpay.js"),
        "the 404 page hydrates like any other"
    );

    let res = app.get("/checkout/ORD_does_not_exist").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.expect("body");
    assert!(html.contains("Payment not found"));
    assert!(html.contains("ORD_does_not_exist"));

    let res = app
        .get("/checkout/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(res.status(), 404);
    assert!(
        !res.text().await.expect("body").contains("<script>alert(1)"),
        "the id is escaped"
    );
    app.stop().await.expect("clean stop");
}

async fn server_function_reports_version_and_database(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let res = app
        .client
        .post(app.url("/api/info"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let info: app::api::ServerInfo = res.json().await.expect("ServerInfo JSON");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.database_engine, db.engine().display_name());
    assert!(info.database_ok);
    app.stop().await.expect("clean stop");
}

async fn every_response_carries_a_request_id(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let a = app.get("/healthz").await;
    let b = app.get("/healthz").await;
    let id_a = a.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let id_b = b.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(id_a.len(), 36, "a UUID: {id_a}");
    assert_ne!(id_a, id_b, "each request gets its own id");
    let given = app
        .client
        .get(app.url("/no/such/page"))
        .header("x-request-id", "from-the-load-balancer-42")
        .send()
        .await
        .expect("request");
    assert_eq!(
        given.headers()["x-request-id"],
        "from-the-load-balancer-42",
        "an incoming id is kept"
    );
    app.stop().await.expect("clean stop");
}

async fn metrics_count_requests_by_route_pattern(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    for _ in 0..3 {
        assert_eq!(app.get("/checkout/ORD_metrics_probe").await.status(), 404);
    }
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = res.text().await.expect("body");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(r#"route="/checkout/{order_id}""#)
                && l.contains(r#"status="404""#)
        })
        .unwrap_or_else(|| panic!("no counter for the checkout route pattern in:\n{text}"));
    let count: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(count >= 3, "at least this test's three requests: {line}");
    assert!(
        !text.contains("ORD_metrics_probe"),
        "raw paths never become labels"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "a latency histogram"
    );
    app.stop().await.expect("clean stop");
}

async fn shutdown_lets_an_in_flight_request_finish(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let addr = app.addr;
    // Start a request and leave it unfinished: the head is sent but not its last line.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: scanpay\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(app.stop());
    // New connections are refused once shutdown began (however slowly a loaded machine gets
    // there)…
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener is still open 10 s into shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …while the request already in flight completes.
    stream
        .write_all(b"Connection: close\r\n\r\n")
        .await
        .expect("finish request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    stopping
        .await
        .expect("join")
        .expect("the server stops cleanly");
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    let db = TestDb::sqlite();
    assert_eq!(db.engine(), Engine::Sqlite);
    let conn = Db::connect(&db.url, 2).await.expect("connect");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(conn.pool())
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(conn.pool())
        .await
        .expect("pragma");
    assert_eq!(timeout, 5000);
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(conn.pool())
        .await
        .expect("pragma");
    assert_eq!(fk, 1);
}

/// A second application starting in a process that already serves pages must not stall
/// them. Building an application used to generate the route list each time, which raises a
/// process-wide "suppress resource loads" flag (leptos_server): a page whose `Resource`
/// was first polled under it never answered. That was the suite's hang: any test fetching a
/// page while another test in the same binary started its app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_keep_rendering_while_another_application_starts() {
    let db = TestDb::sqlite();
    let app = std::sync::Arc::new(TestApp::spawn(&db).await);
    let starting = tokio::spawn(async move {
        for _ in 0..25 {
            let other_db = TestDb::sqlite();
            let other = TestApp::spawn(&other_db).await;
            other.stop().await.expect("clean stop");
        }
    });
    // Pages fetched side by side while the others start, each with a shorter limit than the
    // suite's: a stalled page fails here in seconds.
    let mut readers = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        let starting = starting.abort_handle();
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut served = 0u32;
            while !starting.is_finished() {
                let res = client
                    .get(app.url("/"))
                    .send()
                    .await
                    .expect("the home page answers while another application starts");
                assert_eq!(res.status(), 200);
                let html = res
                    .text()
                    .await
                    .expect("the whole page arrives while another application starts");
                assert!(html.contains("</html>"), "the page was cut short");
                served += 1;
            }
            served
        }));
    }
    let mut served = 0;
    for reader in readers {
        served += reader.await.expect("every page answered");
    }
    starting
        .await
        .expect("the other applications start and stop");
    assert!(served > 0, "no page was fetched while the others started");
    std::sync::Arc::into_inner(app)
        .expect("the readers are done")
        .stop()
        .await
        .expect("clean stop");
}
