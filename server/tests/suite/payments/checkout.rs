//! Payment order generation and the checkout, end to end inside one process: the real
//! application with its built-in sandbox gateways (real HTTP, real signatures), on SQLite and
//! on PostgreSQL.

use crate::common::oid;
use crate::common::phone::{location, open};
use crate::common::{
    new_order, order_with_code, pay_in_wallet, sandbox_config, status_of, wait_for, TestApp, TestDb,
};
use server::orders::{self, OrderStatus};
use server::payments::{expiry, query, AttemptStatus, StartPayment};
use server::providers::{Channel, TradeState};
use std::time::Duration;

on_both_engines!(
    a_payment_attempt_is_opened_once_and_reused,
    switching_wallet_closes_the_previous_attempt_at_its_provider,
    switching_wallet_back_and_forth_stops_at_the_attempt_limit,
    concurrent_requests_open_one_attempt,
    a_paid_notification_makes_the_order_paid_once,
    a_forged_notification_changes_nothing,
    expiry_closes_the_code_at_the_provider_then_expires_the_order,
    expiry_of_an_order_paid_at_the_provider_makes_it_paid,
    the_aggregate_code_sends_each_browser_its_way,
    the_checkout_is_server_rendered_with_its_qr_code,
    an_expired_order_can_be_renewed,
    a_provider_failure_shows_a_retry_and_opens_nothing,
    notifications_with_a_wrong_amount_or_signature_pay_nothing,
    the_active_query_finds_a_payment_whose_notifications_were_lost,
    the_active_query_asks_again_later_while_unpaid,
    pages_render_under_concurrent_requests,
);

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(sandbox_config(db)).await
}

async fn events(app: &TestApp, id: &str, kind: &str) -> usize {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM order_events WHERE order_id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .fetch_one(app.db.pool())
        .await
        .expect("count")
        .try_get::<i64, _>("n")
        .expect("n") as usize
}

async fn a_payment_attempt_is_opened_once_and_reused(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 1234).await;
    let id = order.id.as_str();
    let first = app
        .payments
        .start_payment(&oid(id), Channel::Alipay)
        .await
        .expect("prepay");
    assert_eq!(
        first.out_trade_no, id,
        "the first attempt trades under the order id"
    );
    assert_eq!(first.status, AttemptStatus::Open);
    assert!(first
        .code_url
        .as_deref()
        .is_some_and(|u| u.contains("/sandbox/pay/")));
    assert_eq!(status_of(&app, id).await, OrderStatus::Pending);
    let again = app
        .payments
        .start_payment(&oid(id), Channel::Alipay)
        .await
        .expect("reuse");
    assert_eq!(again, first);
    assert_eq!(
        app.payments
            .attempts(&oid(id))
            .await
            .expect("attempts")
            .len(),
        1
    );
    assert_eq!(events(&app, id, "attempt.opened").await, 1);
    assert_eq!(events(&app, id, "status.pending").await, 1);
    app.stop().await.expect("stop");
}

/// Each switch of wallet is a prepay call; anyone holding the checkout link could make them
/// without end. After `MAX_ATTEMPTS_PER_ORDER` the order takes no new one, and the last
/// code stays usable.
async fn switching_wallet_back_and_forth_stops_at_the_attempt_limit(db: TestDb) {
    use server::payments::{PaymentError, MAX_ATTEMPTS_PER_ORDER};
    let app = app(&db).await;
    let order = new_order(&app, 500).await;
    let id = order.id.as_str();
    let wallets = [Channel::Alipay, Channel::Wechat];
    for n in 0..MAX_ATTEMPTS_PER_ORDER {
        app.payments
            .start_payment(&oid(id), wallets[(n % 2) as usize])
            .await
            .unwrap_or_else(|e| panic!("attempt {}: {e:?}", n + 1));
    }
    let last = wallets[((MAX_ATTEMPTS_PER_ORDER - 1) % 2) as usize];
    let other = wallets[(MAX_ATTEMPTS_PER_ORDER % 2) as usize];
    match app.payments.start_payment(&oid(id), other).await {
        Err(PaymentError::Busy) => {}
        other => panic!("one attempt too many was not refused: {other:?}"),
    }
    let attempts = app.payments.attempts(&oid(id)).await.expect("attempts");
    assert_eq!(attempts.len() as i64, MAX_ATTEMPTS_PER_ORDER);
    // The open code is still there for the customer.
    let again = app
        .payments
        .start_payment(&oid(id), last)
        .await
        .expect("reused");
    assert_eq!(again.status, AttemptStatus::Open);
    assert_eq!(
        app.payments
            .attempts(&oid(id))
            .await
            .expect("attempts")
            .len() as i64,
        MAX_ATTEMPTS_PER_ORDER
    );
    app.stop().await.expect("stop");
}

async fn switching_wallet_closes_the_previous_attempt_at_its_provider(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 500).await;
    let id = order.id.as_str();
    let alipay = app
        .payments
        .start_payment(&oid(id), Channel::Alipay)
        .await
        .expect("alipay");
    // The customer scans the Alipay code (Alipay creates the trade at the first scan; before
    // it, there is nothing to close and the code dies at the order's time_expire).
    let scanned = app
        .client
        .get(alipay.code_url.clone().expect("code"))
        .send()
        .await
        .expect("scan");
    assert_eq!(scanned.status(), 200);
    let wechat = app
        .payments
        .start_payment(&oid(id), Channel::Wechat)
        .await
        .expect("wechat");
    assert_eq!(wechat.out_trade_no.as_str(), format!("{id}_2"));
    assert_eq!(wechat.channel, Channel::Wechat);
    let attempts = app.payments.attempts(&oid(id)).await.expect("attempts");
    assert_eq!(attempts[0].status, AttemptStatus::Closed);
    assert_eq!(attempts[1].status, AttemptStatus::Open);
    // The provider agrees: the Alipay trade is closed and can no longer be paid.
    let at_alipay = app
        .providers
        .alipay
        .as_ref()
        .expect("alipay")
        .query(&alipay.out_trade_no)
        .await
        .expect("query");
    assert_eq!(at_alipay.state, TradeState::Closed);
    // Back to Alipay: a third trade number (the first one is burnt).
    let again = app
        .payments
        .start_payment(&oid(id), Channel::Alipay)
        .await
        .expect("alipay again");
    assert_eq!(again.out_trade_no.as_str(), format!("{id}_3"));
    assert_eq!(events(&app, id, "attempt.closed").await, 2);
    app.stop().await.expect("stop");
}

async fn concurrent_requests_open_one_attempt(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 800).await;
    let id = order.id.as_str().to_string();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let payments = app.payments.clone();
            let id = id.clone();
            tokio::spawn(async move { payments.start_payment(&oid(&id), Channel::Wechat).await })
        })
        .collect();
    let mut codes = std::collections::BTreeSet::new();
    for t in tasks {
        let attempt = t.await.expect("task").expect("attempt");
        codes.insert(attempt.code_url.expect("code"));
    }
    assert_eq!(codes.len(), 1, "every request got the same code");
    assert_eq!(
        app.payments
            .attempts(&oid(&id))
            .await
            .expect("attempts")
            .len(),
        1
    );
    app.stop().await.expect("stop");
}

async fn a_paid_notification_makes_the_order_paid_once(db: TestDb) {
    let app = app(&db).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (order, attempt) = order_with_code(&app, 1999, channel).await;
        let id = order.id.as_str();
        // The sandbox sends the notification three times.
        pay_in_wallet(
            &app,
            attempt.code_url.as_deref().expect("code"),
            "duplicates=3",
        )
        .await;
        wait_for(&app, id, OrderStatus::Paid).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let paid = orders::get(&app.db, &oid(id))
            .await
            .expect("read")
            .expect("order");
        assert_eq!(paid.paid_channel, Some(channel));
        assert!(paid.provider_trade_no.is_some());
        assert!(!paid.late);
        assert_eq!(events(&app, id, "status.paid").await, 1, "{channel}");
        let attempts = app.payments.attempts(&oid(id)).await.expect("attempts");
        assert_eq!(attempts[0].status, AttemptStatus::Paid);
        // The checkout now shows the success state, with the way back to the shop.
        let html = app
            .get(&format!("/checkout/{id}"))
            .await
            .text()
            .await
            .expect("html");
        assert!(
            html.contains("data-testid=\"paid\""),
            "{channel}: paid state"
        );
        assert!(
            html.contains("href=\"https://shop.example/thanks\""),
            "{channel}: return link"
        );
        assert!(
            !html.contains("data-testid=\"qr\""),
            "{channel}: no code once paid"
        );
    }
    app.stop().await.expect("stop");
}

async fn a_forged_notification_changes_nothing(db: TestDb) {
    let app = app(&db).await;
    let (order, _) = order_with_code(&app, 1234, Channel::Alipay).await;
    let id = order.id.as_str();
    let forged = format!(
        "notify_id=x&app_id=9021000000000001&seller_id=2088000000000001&out_trade_no={id}\
         &trade_no=2026&trade_status=TRADE_SUCCESS&total_amount=12.34&sign_type=RSA2&sign=AAAA"
    );
    let answer = app
        .client
        .post(app.url("/notify/alipay"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(forged)
        .send()
        .await
        .expect("notify");
    assert_eq!(answer.text().await.expect("body"), "fail");
    let answer = app
        .client
        .post(app.url("/notify/wechat"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("notify");
    assert!(answer.status().is_client_error(), "{}", answer.status());
    assert_eq!(status_of(&app, id).await, OrderStatus::Pending);
    app.stop().await.expect("stop");
}

/// Sets a time column to just past for one row: `UPDATE … SET <col> = $1 WHERE <key> = $2`.
async fn set_past(app: &TestApp, update: &str, key: &str) {
    sqlx::query(update)
        .bind(server::infra::clock::now_ms() - 1)
        .bind(key)
        .execute(app.db.pool())
        .await
        .expect("update");
}

/// Moves an order's deadline into the past, as if its time had run out.
async fn run_out_of_time(app: &TestApp, id: &str) {
    set_past(app, "UPDATE orders SET expires_at = $1 WHERE id = $2", id).await;
}

async fn expiry_closes_the_code_at_the_provider_then_expires_the_order(db: TestDb) {
    let app = app(&db).await;
    let (order, attempt) = order_with_code(&app, 300, Channel::Wechat).await;
    let id = order.id.as_str();
    run_out_of_time(&app, id).await;
    // The app's own worker may beat us to it and hold the order's lease while it closes the
    // code; either way the order ends expired.
    expiry::run_once(&app.payments).await.expect("expiry round");
    wait_for(&app, id, OrderStatus::Expired).await;
    let at_wechat = app
        .providers
        .wechat
        .as_ref()
        .expect("wechat")
        .query(&attempt.out_trade_no)
        .await
        .expect("query");
    assert_eq!(at_wechat.state, TradeState::Closed);
    // A new code is refused for an expired order.
    assert!(app
        .payments
        .start_payment(&oid(id), Channel::Alipay)
        .await
        .is_err());
    app.stop().await.expect("stop");
}

async fn expiry_of_an_order_paid_at_the_provider_makes_it_paid(db: TestDb) {
    let app = app(&db).await;
    let (order, attempt) = order_with_code(&app, 300, Channel::Alipay).await;
    let id = order.id.as_str();
    // Paid, but every notification is lost.
    pay_in_wallet(&app, attempt.code_url.as_deref().expect("code"), "drop").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_of(&app, id).await, OrderStatus::Pending);
    run_out_of_time(&app, id).await;
    expiry::run_once(&app.payments).await.expect("expiry round");
    wait_for(&app, id, OrderStatus::Paid).await;
    assert_eq!(events(&app, id, "status.expired").await, 0);
    app.stop().await.expect("stop");
}

async fn the_aggregate_code_sends_each_browser_its_way(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 4200).await;
    let token = order.aggregate_token.clone().expect("token");
    assert!(token.len() >= 22);
    let url = format!("/q/{token}");
    // A wallet's own browser signs in first (payments/phone.rs follows it to the payment);
    // nothing is made before the wallet says who pays. A provider's code is never the way.
    for (ua, path) in [
        (
            "Mozilla/5.0 (iPhone) AlipayClient/10.5.0",
            "/sandbox/alipay/oauth2/publicAppAuthorize.htm?",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14) MicroMessenger/8.0.50",
            "/sandbox/wechat/connect/oauth2/authorize?",
        ),
    ] {
        let to = location(&open(&app, &url, ua, None).await);
        assert!(to.contains(path), "{to}");
        assert!(
            app.payments
                .live_attempt(&order.id)
                .await
                .expect("read")
                .is_none(),
            "no code before the sign-in"
        );
    }

    let browser = open(
        &app,
        &url,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Mobile Safari/604.1",
        None,
    )
    .await;
    assert_eq!(browser.status(), 200);
    let html = browser.text().await.expect("html");
    assert!(html.contains("¥42.00"), "amount on the page");
    assert!(html.contains(&format!("/q/{token}?pay=alipay")));
    assert!(html.contains(&format!("/q/{token}?pay=wechat")));

    let unknown = app.get("/q/AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(unknown.status(), 404);
    app.stop().await.expect("stop");
}

async fn the_checkout_is_server_rendered_with_its_qr_code(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 1234).await;
    let id = order.id.as_str();
    let page = app
        .client
        .get(app.url(&format!("/checkout/{id}?wallet=alipay")))
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .expect("checkout");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let live = app
        .payments
        .live_attempt(&oid(id))
        .await
        .expect("read")
        .expect("live");
    for needle in [
        "¥12.34",
        "Flat white",
        "ScanPay Demo Shop",
        "<svg",
        "data-choice=\"alipay\"",
        "lang=\"zh-CN\"",
        "请使用支付宝扫一扫",
        live.code_url.as_deref().expect("code"),
    ] {
        assert!(html.contains(needle), "the HTML lacks {needle:?}");
    }
    // Without a choice the live attempt's wallet is shown again, in English by default.
    let html = app
        .get(&format!("/checkout/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("data-choice=\"alipay\"") && html.contains("Scan with Alipay"));
    // "Any app" shows the aggregate code.
    let html = app
        .get(&format!("/checkout/{id}?wallet=any"))
        .await
        .text()
        .await
        .expect("html");
    let token = order.aggregate_token.as_deref().expect("token");
    assert!(
        html.contains(&format!("/q/{token}")),
        "aggregate link in the page"
    );
    // An unknown order is a real 404.
    assert_eq!(app.get("/checkout/NO_SUCH_ORDER_1").await.status(), 404);
    app.stop().await.expect("stop");
}

/// Posts the renew form for `id` as a browser (`text/html`) or a script (`application/json`).
async fn renew(app: &TestApp, id: &str, accept: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/renew"))
        .form(&[("order_id", id)])
        .header("accept", accept)
        .send()
        .await
        .expect("renew")
}

async fn an_expired_order_can_be_renewed(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 990).await;
    let id = order.id.as_str();
    // A pending order cannot be renewed.
    let refused = renew(&app, id, "application/json").await;
    assert_eq!(refused.status(), 400, "bad input, not a server fault");
    run_out_of_time(&app, id).await;
    // The app's own worker may hold the order's lease meanwhile; either way it ends expired.
    expiry::run_once(&app.payments).await.expect("expiry round");
    wait_for(&app, id, OrderStatus::Expired).await;
    // A plain form post, as a browser without the WASM sends it.
    let renewed = renew(&app, id, "text/html").await;
    assert!(renewed.status().is_redirection(), "{}", renewed.status());
    let location = renewed.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let new_id = location.strip_prefix("/checkout/").expect("checkout link");
    let new = orders::get(&app.db, &oid(new_id))
        .await
        .expect("read")
        .expect("new order");
    assert_eq!(
        (new.amount, new.subject.as_str()),
        (order.amount, "Flat white")
    );
    assert_eq!(new.status, OrderStatus::Created);
    assert_eq!(events(&app, id, "order.renewed").await, 1);
    // Renewing again, as anyone may, gives the same new order: one expired order never
    // becomes an unlimited number of orders.
    for _ in 0..3 {
        let again = renew(&app, id, "text/html").await;
        assert_eq!(again.headers()["location"], location.as_str());
    }
    assert_eq!(events(&app, id, "order.renewed").await, 1);
    app.stop().await.expect("stop");
}

async fn a_provider_failure_shows_a_retry_and_opens_nothing(db: TestDb) {
    let mut config = sandbox_config(&db);
    config.sandbox_faults = server::sandbox::Faults::parse("error_pct=100").expect("faults");
    let app = TestApp::spawn_with(config).await;
    let order = new_order(&app, 1234).await;
    let id = order.id.as_str();
    let html = app
        .get(&format!("/checkout/{id}?wallet=alipay"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("data-testid=\"problem\""),
        "a problem is shown"
    );
    assert!(html.contains("Alipay is not answering right now"));
    assert!(html.contains("data-testid=\"retry\""));
    assert!(!html.contains("data-testid=\"qr\""), "no code is shown");
    let attempts = app.payments.attempts(&oid(id)).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Failed);
    assert!(app
        .payments
        .live_attempt(&oid(id))
        .await
        .expect("read")
        .is_none());
    assert_eq!(status_of(&app, id).await, OrderStatus::Created);
    assert_eq!(events(&app, id, "attempt.failed").await, 1);
    app.stop().await.expect("stop");
}

async fn notifications_with_a_wrong_amount_or_signature_pay_nothing(db: TestDb) {
    let app = app(&db).await;
    for (fault, risk) in [
        ("wrong_amount", Some("risk.amount_mismatch")),
        ("bad_signature", None),
    ] {
        let (order, attempt) = order_with_code(&app, 2500, Channel::Wechat).await;
        let id = order.id.as_str();
        pay_in_wallet(&app, attempt.code_url.as_deref().expect("code"), fault).await;
        // The sandbox delivers (and redelivers) the tampered notification; none may count.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(status_of(&app, id).await, OrderStatus::Pending, "{fault}");
        if let Some(kind) = risk {
            assert!(events(&app, id, kind).await >= 1, "{fault}: a {kind} event");
        }
    }
    // The badly signed one did arrive and was refused (not merely lost on the way).
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let refused = metrics
        .lines()
        .find(|l| {
            l.starts_with("notifications_rejected_total")
                && l.contains("channel=\"wechat\"")
                && l.contains("reason=\"bad_signature\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        refused >= 1.0,
        "no refused bad signature counted:\n{metrics}"
    );
    app.stop().await.expect("stop");
}

/// Makes an attempt due for the active-query worker now.
async fn due_for_query(app: &TestApp, out_trade_no: &str) {
    set_past(
        app,
        "UPDATE payment_attempts SET next_query_at = $1 WHERE out_trade_no = $2",
        out_trade_no,
    )
    .await;
}

async fn next_query_at(app: &TestApp, out_trade_no: &str) -> (i64, i64) {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT next_query_at, query_count FROM payment_attempts WHERE out_trade_no = $1",
    )
    .bind(out_trade_no)
    .fetch_one(app.db.pool())
    .await
    .expect("row");
    (
        row.try_get("next_query_at").expect("at"),
        row.try_get("query_count").expect("count"),
    )
}

async fn the_active_query_finds_a_payment_whose_notifications_were_lost(db: TestDb) {
    let app = app(&db).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (order, attempt) = order_with_code(&app, 1500, channel).await;
        let id = order.id.as_str();
        // Not due yet: the worker leaves it alone.
        let (at, count) = next_query_at(&app, attempt.out_trade_no.as_str()).await;
        assert!(at > server::infra::clock::now_ms() && count == 0);
        pay_in_wallet(&app, attempt.code_url.as_deref().expect("code"), "drop").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            status_of(&app, id).await,
            OrderStatus::Pending,
            "{channel}: nothing arrived"
        );
        due_for_query(&app, attempt.out_trade_no.as_str()).await;
        query::run_once(&app.payments).await.expect("round");
        wait_for(&app, id, OrderStatus::Paid).await;
        use sqlx::Row;
        let detail: String = sqlx::query(
            "SELECT detail FROM order_events WHERE order_id = $1 AND kind = 'status.paid'",
        )
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .expect("event")
        .try_get("detail")
        .expect("detail");
        assert!(detail.contains("\"source\":\"query\""), "{detail}");
    }
    app.stop().await.expect("stop");
}

async fn the_active_query_asks_again_later_while_unpaid(db: TestDb) {
    let app = app(&db).await;
    let (order, attempt) = order_with_code(&app, 1500, Channel::Wechat).await;
    let id = order.id.as_str();
    due_for_query(&app, attempt.out_trade_no.as_str()).await;
    // Two workers at once (two nodes): the attempt is asked about once.
    let (a, b) = tokio::join!(
        query::run_once(&app.payments),
        query::run_once(&app.payments)
    );
    assert_eq!((a.expect("a"), b.expect("b")), (0, 0));
    let (at, count) = next_query_at(&app, attempt.out_trade_no.as_str()).await;
    assert_eq!(count, 1, "claimed once");
    // The second wait is twice the first (20 s): about 40 s from now.
    let wait = at - server::infra::clock::now_ms();
    assert!(
        (35_000..=40_000).contains(&wait),
        "next question in {wait} ms"
    );
    assert_eq!(status_of(&app, id).await, OrderStatus::Pending);
    app.stop().await.expect("stop");
}

async fn pages_render_under_concurrent_requests(db: TestDb) {
    let app = app(&db).await;
    let (order, _) = order_with_code(&app, 1234, Channel::Alipay).await;
    let id = order.id.as_str();
    let token = order.aggregate_token.clone().expect("token");
    let paths = [
        format!("/checkout/{id}"),
        format!("/checkout/{id}?wallet=alipay&lang=zh-CN"),
        format!("/q/{token}"),
    ];
    // Many pages rendered at once, on several threads (the page title is read after
    // rendering; it once read a signal there and panicked under concurrency).
    let requests = (0..48).map(|i| {
        let url = app.url(&paths[i % paths.len()]);
        let client = app.client.clone();
        async move {
            let page = client.get(url).send().await.expect("complete response");
            (page.status(), page.text().await.expect("complete body"))
        }
    });
    for (status, html) in futures::future::join_all(requests).await {
        assert_eq!(status, 200);
        assert!(html.contains("¥12.34") && html.contains("</html>"));
    }
    app.stop().await.expect("stop");
}
