//! Postures. The demo: no real credentials, both providers served by the sandbox, the demo
//! shop, and a banner on every page. Live: any real credential turns the sandbox and the
//! demo off unless asked for, a mix refuses to start unless unsafely allowed, and even then
//! a sandbox-served wallet never takes an order of a live merchant. Each attack named here
//! worked before the postures existed.

use crate::common::oid;
use crate::common::{
    order_with_code, pay_in_wallet, sandbox_config, status_of, vector_path, TestApp, TestDb,
};
use server::config::Config;
use server::orders::{NewOrder, OrderStatus};
use server::payments::{PaymentError, StartPayment};
use server::providers::Channel;
use std::collections::BTreeMap;
use std::time::Duration;

/// What an operator gets who configures real Alipay credentials and says nothing else (the
/// gateway is never called here), plus `extra` settings.
fn live_config(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let data_dir = db.data_dir().display().to_string();
    let mut env: BTreeMap<String, String> = [
        ("SCANPAY_LISTEN", "127.0.0.1:0"),
        ("SCANPAY_DATABASE_URL", db.url.url.expose().as_str()),
        ("SCANPAY_DATA_DIR", data_dir.as_str()),
        ("SCANPAY_LOG", "warn"),
        ("SCANPAY_ALIPAY_APP_ID", "2021000000000001"),
        ("SCANPAY_ALIPAY_SELLER_ID", "2088000000000001"),
        ("SCANPAY_ALIPAY_GATEWAY", "http://127.0.0.1:9/gateway.do"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert(
        "SCANPAY_ALIPAY_PRIVATE_KEY_FILE".into(),
        vector_path("alipay/app-private-key-pkcs1.pem"),
    );
    env.insert(
        "SCANPAY_ALIPAY_PUBLIC_KEY_FILE".into(),
        vector_path("alipay/response-sign-public-key.pem"),
    );
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Config::from_sources(None, &env).expect("configuration")
}

/// A merchant other than the demo shop, and one of its orders.
async fn live_merchant_order(app: &TestApp) -> String {
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ('mer_live', 'Tea House', 0)")
        .execute(app.db.pool())
        .await
        .expect("merchant");
    let order = server::orders::create(
        &app.db,
        &NewOrder {
            merchant_id: "mer_live".into(),
            amount: app::money::Amount::from_fen(99_900).expect("amount"),
            subject: "Tea set".into(),
            expires_in_secs: 900,
            return_url: None,
        },
        None,
    )
    .await
    .expect("order");
    order.id.as_str().to_string()
}

/// The attack: with real Alipay credentials and nothing else said, WeChat Pay was served by
/// the sandbox; anyone pressed Pay on the sandbox wallet and a ¥999 order turned paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_payment_cannot_pay_a_live_merchants_order() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with(live_config(&db, &[])).await;
    let order_id = live_merchant_order(&app).await;
    match app
        .payments
        .start_payment(&oid(&order_id), Channel::Wechat)
        .await
    {
        Err(PaymentError::ChannelDisabled(Channel::Wechat)) => {}
        Ok(attempt) => {
            if let Some(code) = &attempt.code_url {
                pay_in_wallet(&app, code, "").await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            panic!(
                "WeChat Pay served a live merchant's order through the sandbox (code {:?}; the \
                 order is now {})",
                attempt.code_url,
                status_of(&app, &order_id).await
            );
        }
        Err(other) => panic!("unexpected: {other}"),
    }
    assert_eq!(
        app.get("/sandbox/").await.status(),
        404,
        "no sandbox is mounted in the live posture"
    );
    let checkout: serde_json::Value = app
        .client
        .post(app.url("/api/checkout"))
        .form(&[("order_id", order_id.as_str())])
        .send()
        .await
        .expect("checkout")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        checkout["channels"],
        serde_json::json!(["alipay"]),
        "the checkout offers the real wallet only: {checkout}"
    );
    assert_eq!(status_of(&app, &order_id).await, OrderStatus::Created);
    app.stop().await.expect("stop");
}

/// Even with the sandbox forced on beside real credentials (and the unsafe override), a
/// sandbox-served wallet takes the demo shop's orders only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsafe_mix_still_keeps_the_sandbox_off_live_merchants_orders() {
    let db = TestDb::sqlite();
    let config = live_config(
        &db,
        &[
            ("SCANPAY_SANDBOX", "on"),
            ("SCANPAY_DEMO", "on"),
            ("SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE", "true"),
            ("SCANPAY_SANDBOX_TIME_SCALE", "0.001"),
        ],
    );
    let app = TestApp::spawn_with(config).await;
    let order_id = live_merchant_order(&app).await;
    assert!(matches!(
        app.payments
            .start_payment(&oid(&order_id), Channel::Wechat)
            .await,
        Err(PaymentError::ChannelDisabled(Channel::Wechat))
    ));
    // The demo shop's order may use the sandbox: that is what the override is for.
    let (demo_order, attempt) = order_with_code(&app, 100, Channel::Wechat).await;
    let code = attempt.code_url.expect("a sandbox code");
    assert!(code.contains("/sandbox/"), "{code}");
    pay_in_wallet(&app, &code, "").await;
    crate::common::wait_for(&app, demo_order.id.as_str(), OrderStatus::Paid).await;
    app.stop().await.expect("stop");
}

/// A mix refuses to start, naming the keys, unless the unsafe override is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_configuration_refuses_to_start_naming_the_keys() {
    for (extra, named) in [
        (vec![("SCANPAY_DEMO", "on")], "SCANPAY_DEMO"),
        (vec![("SCANPAY_SANDBOX", "on")], "SCANPAY_SANDBOX"),
    ] {
        let db = TestDb::sqlite();
        let err = match server::Application::build(live_config(&db, &extra)).await {
            Ok(_) => panic!("{extra:?} beside real credentials started"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("refusing to start"), "{err}");
        assert!(err.contains(named), "{err}");
        assert!(err.contains("SCANPAY_ALIPAY_APP_ID"), "{err}");
        assert!(err.contains("SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE"), "{err}");
    }
    // The sandbox behind an https public URL: a real site taking pretend payments.
    let db = TestDb::sqlite();
    let mut config = sandbox_config(&db);
    config.public_url = Some("https://pay.example.com".into());
    let err = match server::Application::build(config).await {
        Ok(_) => panic!("the sandbox started behind an https public URL"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("SCANPAY_PUBLIC_URL"), "{err}");
    // With the override, it starts.
    let db = TestDb::sqlite();
    let config = live_config(
        &db,
        &[
            ("SCANPAY_DEMO", "on"),
            ("SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE", "true"),
        ],
    );
    let app = TestApp::spawn_with(config).await;
    app.stop().await.expect("stop");
}

/// The attack: `POST /auth/demo` without an Origin header gave anyone an admin session of
/// the demo merchant, beside real credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sign_in_is_refused_in_the_live_posture() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with(live_config(&db, &[])).await;
    let res = app
        .client
        .post(app.url("/auth/demo"))
        .send()
        .await
        .expect("request");
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session: {:?}",
        res.headers()
    );
    assert_eq!(res.headers()["location"], "/login?error=demo");
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(app.db.pool())
        .await
        .expect("count");
    assert_eq!(users, 0, "no demo user exists in the live posture");
    let home = app.get("/").await.text().await.expect("home");
    assert!(
        !home.contains("sandbox-banner"),
        "no sandbox banner in the live posture"
    );
    app.stop().await.expect("stop");
}

/// The demo posture says so on every page a customer, a wallet user or a merchant sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_posture_shows_the_sandbox_banner_on_every_page() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (order, attempt) = order_with_code(&app, 1_200, Channel::Alipay).await;
    let checkout = format!("/checkout/{}", order.id.as_str());
    for path in [
        "/",
        checkout.as_str(),
        "/login",
        "/no/such/page",
        "/sandbox/",
    ] {
        let html = app.get(path).await.text().await.expect("page");
        assert!(
            html.contains(r#"data-testid="sandbox-banner""#)
                || html.contains("data-testid=sandbox-banner"),
            "{path} has no sandbox banner"
        );
        assert!(html.contains("no real money"), "{path}");
    }
    let wallet = app
        .client
        .get(attempt.code_url.expect("code"))
        .send()
        .await
        .expect("wallet")
        .text()
        .await
        .expect("page");
    assert!(wallet.contains("data-testid=sandbox-banner"), "{wallet}");
    let zh = app.get("/?lang=zh").await.text().await.expect("page");
    assert!(
        zh.contains("不涉及真实资金"),
        "the banner speaks Chinese too"
    );
    app.stop().await.expect("stop");
}

/// The attack: the sandbox wallet's `duplicates` field was unbounded; one POST could make
/// the sandbox insert billions of deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_caps_the_duplicates_anyone_can_ask_for() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (order, attempt) = order_with_code(&app, 300, Channel::Wechat).await;
    let answered = app
        .client
        .post(attempt.code_url.expect("code"))
        .form(&[("action", "pay"), ("duplicates", "1000000000")])
        .send()
        .await
        .expect("the wallet answers at once");
    assert!(
        answered.status().is_success() || answered.status().is_redirection(),
        "{}",
        answered.status()
    );
    crate::common::wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    // Let every copy arrive, then count them.
    let mut last = -1;
    for _ in 0..100 {
        let seen: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE order_id = $1")
                .bind(order.id.as_str())
                .fetch_one(app.db.pool())
                .await
                .expect("count");
        if seen == last {
            break;
        }
        last = seen;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cap = i64::from(server::sandbox::faults::MAX_DUPLICATES) + 1;
    assert!(
        (1..=cap).contains(&last),
        "{last} notifications for one payment (at most {cap})"
    );
    app.stop().await.expect("stop");
}

/// The attack: every anonymous POST to `/notify/*` stored up to 64 KiB with three writes; a
/// flood starved real payments on SQLite. Now a flood from one address is answered 429 past
/// its burst, and a real payment arriving meanwhile is applied as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_flood_on_notify_leaves_a_real_payment_applied() {
    let db = TestDb::sqlite();
    let mut config = sandbox_config(&db);
    // The flood comes through "our load balancer" on loopback from one outside address.
    config.trusted_proxies =
        server::infra::client_addr::TrustedProxies::parse("127.0.0.1").expect("proxies");
    let app = TestApp::spawn_with(config).await;
    let junk = "x".repeat(64 * 1024);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut flood = Vec::new();
    for _ in 0..6 {
        let client = app.client.clone();
        let url = app.url("/notify/wechat");
        let junk = junk.clone();
        flood.push(tokio::spawn(async move {
            let (mut limited, mut other) = (0u32, 0u32);
            while tokio::time::Instant::now() < deadline {
                match client
                    .post(&url)
                    .header("x-forwarded-for", "203.0.113.9")
                    .header("content-type", "application/json")
                    .body(junk.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 429 => limited += 1,
                    _ => other += 1,
                }
            }
            (limited, other)
        }));
    }
    // Meanwhile a customer pays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (order, attempt) = order_with_code(&app, 2_000, Channel::Wechat).await;
    pay_in_wallet(&app, &attempt.code_url.expect("code"), "").await;
    crate::common::wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    let (mut limited, mut other) = (0, 0);
    for f in flood {
        let (l, o) = f.await.expect("flood task");
        limited += l;
        other += o;
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE order_id IS NULL")
            .fetch_one(app.db.pool())
            .await
            .expect("count");
    assert!(
        limited > 0,
        "the flood was never limited ({other} answered)"
    );
    assert!(
        stored <= 330,
        "{stored} junk bodies stored (a burst of 300 and a few refills at most); {limited} \
         answered 429"
    );
    app.stop().await.expect("stop");
}
