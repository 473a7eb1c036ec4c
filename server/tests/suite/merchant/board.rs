//! The order board's server side over HTTP, on SQLite and PostgreSQL: accounts (one-time
//! links, passwords, sessions, sign-in limit, the cross-origin guard, sign-out), the board's
//! server functions scoped to the signed-in merchant and guarded by the CSRF token, filters,
//! today's totals, refunds and closing from the board, the CSV export, and the live pings a
//! board hears.

use crate::common::oid;
use crate::common::{pay_in_wallet, sandbox_config, wait_for, TestApp, TestDb};
use app::money::Amount;
use futures::{FutureExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::orders::{NewOrder, OrderStatus};
use server::payments::StartPayment;
use server::providers::Channel;

on_both_engines!(
    links_passwords_sessions_and_the_guard,
    board_functions_act_only_for_the_signed_in_merchant,
    filters_totals_and_the_csv_export,
    a_board_hears_only_its_merchants_changes,
    nodes_starting_together_seed_one_demo_user,
    the_developers_page_manages_keys_and_the_webhook_endpoint,
    behind_a_trusted_proxy_the_sign_in_limit_is_per_client,
    a_link_token_flood_is_refused_before_hashing,
    the_developers_page_saves_a_checked_payment_account_and_never_shows_its_keys,
);

/// The process's count of password hashes, from `/metrics`.
async fn password_hashes(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find(|l| l.starts_with("board_password_hashes_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The attack: `POST /auth/link/{token}` ran argon2 (19 MiB, tens of milliseconds) before
/// looking the token up, without a limit. Now an unknown token costs one indexed read and
/// no hash, and one address gets ten tries a minute.
async fn a_link_token_flood_is_refused_before_hashing(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let before = password_hashes(&app).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = app
            .client
            .post(app.url(&format!("/auth/link/guessedtoken{i:04}")))
            .form(&[("password", "correct horse battery staple")])
            .send()
            .await
            .expect("request");
        statuses.push(r.status().as_u16());
        if r.status() != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(location(&r), "/login?error=link");
        }
    }
    assert_eq!(&statuses[..10], &[303; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    assert_eq!(
        password_hashes(&app).await,
        before,
        "no password was hashed for a token that does not exist"
    );
    app.stop().await.expect("stop");
}

/// The session token a response sets, if any.
fn session_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("scanpay_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .filter(|t| !t.is_empty())
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A merchant with a user whose password is set through the one-time link; its session.
async fn merchant(app: &TestApp, name: &str, email: &str) -> (String, String) {
    let made = server::accounts::create_merchant(&app.db, name, email, false)
        .await
        .expect("merchant");
    let r = app
        .client
        .post(app.url(&format!("/auth/link/{}", made.login_token)))
        .form(&[("password", "a long enough password")])
        .send()
        .await
        .expect("link");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    (
        made.merchant_id.into_string(),
        session_of(&r).expect("session cookie"),
    )
}

/// Calls a board server function as the holder of `session`.
async fn call(
    app: &TestApp,
    session: Option<&str>,
    endpoint: &str,
    body: Value,
) -> (StatusCode, String) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/board/{endpoint}")))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("cookie", format!("scanpay_session={s}"));
    }
    let r = req.send().await.expect("server function");
    (r.status(), r.text().await.expect("body"))
}

async fn load_order(app: &TestApp, session: &str, id: &str) -> (StatusCode, String) {
    let r = app
        .client
        .post(app.url("/api/board/order"))
        .header("cookie", format!("scanpay_session={session}"))
        .form(&[("order_id", id)])
        .send()
        .await
        .expect("load");
    (r.status(), r.text().await.expect("body"))
}

async fn csrf_of(app: &TestApp, session: &str) -> String {
    let r = app
        .client
        .post(app.url("/api/board/user"))
        .header("cookie", format!("scanpay_session={session}"))
        .send()
        .await
        .expect("user");
    let user: Value = r.json().await.expect("JSON");
    user["csrf"].as_str().expect("signed in").to_string()
}

async fn order_of(app: &TestApp, merchant_id: &str, fen: i64, subject: &str) -> String {
    app.payments
        .create_order(
            &NewOrder {
                merchant_id: merchant_id.into(),
                amount: Amount::from_fen(fen).expect("amount"),
                subject: subject.into(),
                expires_in_secs: 900,
                return_url: None,
            },
            None,
        )
        .await
        .expect("order")
        .id
        .as_str()
        .to_string()
}

async fn paid_order(
    app: &TestApp,
    merchant_id: &str,
    fen: i64,
    subject: &str,
    channel: Channel,
) -> String {
    let id = order_of(app, merchant_id, fen, subject).await;
    let attempt = app
        .payments
        .start_payment(&oid(&id), channel)
        .await
        .expect("prepay");
    pay_in_wallet(app, attempt.code_url.as_deref().expect("code"), "").await;
    wait_for(app, &id, OrderStatus::Paid).await;
    id
}

async fn links_passwords_sessions_and_the_guard(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let made = server::accounts::create_merchant(&app.db, "Tea House", "Ann@Tea.example", false)
        .await
        .expect("merchant");
    assert!(matches!(
        server::accounts::create_merchant(&app.db, "Copy", "ann@tea.example", false).await,
        Err(server::accounts::AccountError::EmailTaken(_))
    ));
    let link = format!("/auth/link/{}", made.login_token);
    let page = app.get(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let english = page.text().await.expect("page");
    assert!(english.contains("name=password") && english.contains("<html lang=en>"));
    // In the person's language, like every page.
    let chinese = app
        .client
        .get(app.url(&link))
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    assert!(
        chinese.contains("<html lang=zh-CN>") && chinese.contains("设置密码"),
        "{chinese}"
    );
    // A short password is refused and the link stays usable.
    let short = app
        .client
        .post(app.url(&link))
        .form(&[("password", "short")])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&short), "/login?error=password");
    assert!(session_of(&short).is_none());
    let ok = app
        .client
        .post(app.url(&link))
        .form(&[("password", "correct horse battery")])
        .send()
        .await
        .expect("post");
    assert_eq!(
        (ok.status(), location(&ok).as_str()),
        (StatusCode::SEE_OTHER, "/board")
    );
    let cookie = ok
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http: no Secure flag ({cookie})"
    );
    let session = session_of(&ok).expect("session");
    // The link works once.
    let again = app
        .client
        .post(app.url(&link))
        .form(&[("password", "another long password")])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&again), "/login?error=link");
    assert_eq!(location(&app.get(&link).await), "/login?error=link");

    // The board: redirected to sign in without a session, shown with one.
    let anonymous = app.get("/board?status=paid").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/login?next=%2Fboard%3Fstatus%3Dpaid");
    let board = app
        .client
        .get(app.url("/board"))
        .header("cookie", format!("scanpay_session={session}"))
        .send()
        .await
        .expect("board");
    assert_eq!(board.status(), StatusCode::OK);
    assert!(board.text().await.expect("html").contains("Tea House"));

    // Password sign-in: a wrong password goes back to the form, the right one signs in.
    let sign_in = |password: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .form(&[
                ("email", "ann@tea.example"),
                ("password", password),
                ("next", "/board?q=tea"),
            ])
            .send()
    };
    let wrong = sign_in("not the password").await.expect("post");
    assert!(
        location(&wrong).starts_with("/login?error=bad"),
        "{}",
        location(&wrong)
    );
    assert!(session_of(&wrong).is_none());
    let right = sign_in("correct horse battery").await.expect("post");
    assert_eq!(location(&right), "/board?q=tea");
    assert!(session_of(&right).is_some());
    // An open redirect is not followed.
    let away = app
        .client
        .post(app.url("/auth/login"))
        .form(&[
            ("email", "ann@tea.example"),
            ("password", "correct horse battery"),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&away), "/board");

    // Five failures stop the email, even with the right password, and say when to return.
    for _ in 0..server::accounts::FAILURES_PER_EMAIL {
        let r = sign_in("wrong again, sorry").await.expect("post");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let limited = sign_in("correct horse battery").await.expect("post");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert!(session_of(&limited).is_none());

    // Another site cannot post our forms.
    let forged = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", "x@y.example"), ("password", "whatever it is")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let csrf = csrf_of(&app, &session).await;
    let cross = app
        .client
        .post(app.url("/api/board/action"))
        .header("cookie", format!("scanpay_session={session}"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(
            json!({ "csrf": csrf, "action": { "NewOrder": { "amount": "1.00", "subject": "x" } } })
                .to_string(),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    // Signing out needs the session's token, then the session is gone.
    let bad_out = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("scanpay_session={session}"))
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(bad_out.status(), StatusCode::FORBIDDEN);
    let out = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("scanpay_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(location(&out), "/login");
    assert!(server::accounts::session(&app.db, &session)
        .await
        .expect("read")
        .is_none());
    let (status, _) = call(
        &app,
        Some(&session),
        "orders",
        json!({ "filter": {}, "after": null }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The demo shop's board opens without a password while the demo is on.
    let demo = app
        .client
        .post(app.url("/auth/demo"))
        .form(&[("next", "/board")])
        .send()
        .await
        .expect("demo");
    assert_eq!(location(&demo), "/board");
    let demo_session = session_of(&demo).expect("demo session");
    let who = server::accounts::session(&app.db, &demo_session)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(who.merchant_id, server::merchants::DEMO_MERCHANT_ID);
    app.stop().await.expect("stop");
}

async fn board_functions_act_only_for_the_signed_in_merchant(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (a, a_session) = merchant(&app, "Shop A", "a@shop.example").await;
    let (_b, b_session) = merchant(&app, "Shop B", "b@shop.example").await;
    let unpaid = order_of(&app, &a, 1_500, "Oolong").await;
    // A later millisecond: within one, newest-first falls back to the (random) id order.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let paid = paid_order(&app, &a, 2_000, "Pu-erh", Channel::Alipay).await;

    // A sees its orders; B sees none of them; nobody signed out sees anything.
    let (status, page) = call(
        &app,
        Some(&a_session),
        "orders",
        json!({ "filter": {}, "after": null }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let page: Value = serde_json::from_str(&page).expect("JSON");
    let ids: Vec<&str> = page["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![paid.as_str(), unpaid.as_str()], "newest first");
    let (_, b_page) = call(
        &app,
        Some(&b_session),
        "orders",
        json!({ "filter": {}, "after": null }),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&b_page).expect("JSON")["rows"],
        json!([])
    );
    let (status, body) = call(&app, None, "orders", json!({ "filter": {}, "after": null })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The page receives the kind, not a sentence to search: it shows "sign in again".
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON error"),
        json!("SignedOut"),
        "{body}"
    );
    let csrf = csrf_of(&app, &b_session).await;
    let (status, body) = call(
        &app,
        Some(&b_session),
        "action",
        json!({ "csrf": format!("{csrf}x"), "action": { "NewOrder": { "amount": "1.00", "subject": "x" } } }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON error"),
        json!("Stale")
    );
    let (status, body) = call(
        &app,
        Some(&b_session),
        "action",
        json!({ "csrf": csrf, "action": { "NewOrder": { "amount": "lots", "subject": "x" } } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let invalid = serde_json::from_str::<Value>(&body).expect("JSON error");
    assert!(
        invalid["Invalid"]
            .as_str()
            .is_some_and(|m| m.contains("Amount")),
        "{body}"
    );
    let (status, body) = load_order(&app, &b_session, &paid).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "null"),
        "another merchant's order is not found"
    );

    // The detail: timeline with the payment and its notification, the refundable amount.
    let (status, detail) = load_order(&app, &a_session, &paid).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let detail: Value = serde_json::from_str(&detail).expect("JSON");
    assert_eq!(detail["refundable"], 2_000);
    let whats: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["what"].as_str().unwrap_or_default())
        .collect();
    assert!(whats.contains(&"status.paid"), "{whats:?}");
    assert!(whats.contains(&"alipay accepted"), "{whats:?}");
    assert_eq!(detail["webhooks"][0]["topic"], "order.paid");

    let a_csrf = csrf_of(&app, &a_session).await;
    let b_csrf = csrf_of(&app, &b_session).await;
    let act = |session: &str, csrf: &str, action: Value| {
        let (session, body) = (
            session.to_string(),
            json!({ "csrf": csrf, "action": action }),
        );
        let app = &app;
        async move { call(app, Some(&session), "action", body).await }
    };
    // Without the session's CSRF token nothing changes.
    let (status, _) = act(
        &a_session,
        "forged",
        json!({ "Close": { "order_id": unpaid } }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // B cannot touch A's orders, even with its own valid token.
    let (status, body) = act(
        &b_session,
        &b_csrf,
        json!({ "Close": { "order_id": unpaid } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = act(
        &b_session,
        &b_csrf,
        json!({ "Refund": { "order_id": paid, "amount": "1.00", "reason": "" } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        crate::common::status_of(&app, &unpaid).await,
        OrderStatus::Created
    );
    assert_eq!(
        crate::common::status_of(&app, &paid).await,
        OrderStatus::Paid
    );

    // A closes its unpaid order and refunds part of the paid one; too much is refused.
    let (status, body) = act(
        &a_session,
        &a_csrf,
        json!({ "Close": { "order_id": unpaid } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        crate::common::status_of(&app, &unpaid).await,
        OrderStatus::Closed
    );
    let (status, body) = act(
        &a_session,
        &a_csrf,
        json!({ "Refund": { "order_id": paid, "amount": "5.00", "reason": "chipped cup" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("succeeded"), "{body}");
    let (status, body) = act(
        &a_session,
        &a_csrf,
        json!({ "Refund": { "order_id": paid, "amount": "15.01", "reason": "" } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Refund amount") && body.contains("¥15.00"),
        "{body}"
    );
    let order = server::orders::get(&app.db, &oid(&paid))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(
        (order.status, order.refunded_amount.fen()),
        (OrderStatus::PartiallyRefunded, 500)
    );
    let (_, detail) = load_order(&app, &a_session, &paid).await;
    let detail: Value = serde_json::from_str(&detail).expect("JSON");
    assert_eq!(detail["refundable"], 1_500);
    assert_eq!(detail["refunds"][0]["status"], "succeeded");
    assert_eq!(detail["refunds"][0]["reason"], "chipped cup");
    // The order's own payment is no second payment, and no attempt row says so.
    assert!(detail["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .all(|a| a["extra_refundable"].is_null()));
    let refund_id = detail["refunds"][0]["id"].as_str().expect("id").to_string();
    // The abnormal-refund and second-payment actions: B cannot reach A's; A's own are refused
    // with a reason when they do not apply (a refund that is not abnormal, the order's own
    // payment), and nothing changes.
    for (who, csrf, action) in [
        (
            &b_session,
            &b_csrf,
            json!({ "RefundToBankCard": { "refund_id": refund_id } }),
        ),
        (
            &a_session,
            &a_csrf,
            json!({ "RefundToBankCard": { "refund_id": refund_id } }),
        ),
        (
            &b_session,
            &b_csrf,
            json!({ "RefundExtraPayment": { "order_id": paid, "out_trade_no": paid } }),
        ),
        (
            &a_session,
            &a_csrf,
            json!({ "RefundExtraPayment": { "order_id": paid, "out_trade_no": paid } }),
        ),
    ] {
        let (status, body) = act(who, csrf, action.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}: {body}");
    }
    let (_, detail) = load_order(&app, &a_session, &paid).await;
    let detail: Value = serde_json::from_str(&detail).expect("JSON");
    assert_eq!(detail["refundable"], 1_500);
    assert_eq!(detail["refunds"].as_array().map(Vec::len), Some(1));

    // The counter: a new order of A's, whose id comes back.
    let (status, body) = act(
        &a_session,
        &a_csrf,
        json!({ "NewOrder": { "amount": "8.80", "subject": "Counter sale" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_id: String = serde_json::from_str(&body).expect("id");
    let new = server::orders::get(&app.db, &oid(&new_id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(
        (new.merchant_id.as_str(), new.amount.fen()),
        (a.as_str(), 880)
    );
    let (status, body) = act(
        &a_session,
        &a_csrf,
        json!({ "NewOrder": { "amount": "8.888", "subject": "x" } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Amount"), "{body}");
    app.stop().await.expect("stop");
}

async fn filters_totals_and_the_csv_export(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (a, session) = merchant(&app, "Shop A", "a@shop.example").await;
    let (b, b_session) = merchant(&app, "Shop B", "b@shop.example").await;
    let green = paid_order(&app, &a, 1_234, "Green tea, \"Longjing\"", Channel::Wechat).await;
    let _black = paid_order(&app, &a, 5_000, "=cmd|' /C calc'!A0", Channel::Alipay).await;
    let open = order_of(&app, &a, 990, "Jasmine").await;
    order_of(&app, &b, 7_777, "B's secret order").await;

    let rows = |filter: Value| {
        let app = &app;
        let session = session.clone();
        async move {
            let (status, page) = call(
                app,
                Some(&session),
                "orders",
                json!({ "filter": filter, "after": null }),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let page: Value = serde_json::from_str(&page).expect("JSON");
            page
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect()
    };
    let all = rows(json!({})).await;
    assert_eq!(ids(&all).len(), 3);
    assert_eq!(ids(&rows(json!({ "status": "pending" })).await).len(), 0);
    assert_eq!(
        ids(&rows(json!({ "status": "created" })).await),
        vec![open.clone()]
    );
    assert_eq!(
        ids(&rows(json!({ "channel": "wechat" })).await),
        vec![green.clone()]
    );
    assert_eq!(
        ids(&rows(json!({ "q": "LONGJING" })).await),
        vec![green.clone()]
    );
    assert_eq!(
        ids(&rows(json!({ "q": "100%" })).await).len(),
        0,
        "% is a character, not a wildcard"
    );
    assert_eq!(
        ids(&rows(json!({ "min": "10", "max": "20" })).await),
        vec![green.clone()]
    );
    let today = app::clock::beijing(server::infra::clock::now_ms())[..10].to_string();
    assert_eq!(
        ids(&rows(json!({ "from": today, "to": today })).await).len(),
        3
    );
    assert_eq!(ids(&rows(json!({ "to": "2020-01-01" })).await).len(), 0);
    let (status, body) = call(
        &app,
        Some(&session),
        "orders",
        json!({ "filter": { "min": "1.234" }, "after": null }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Min amount"), "{body}");

    // Today's totals: one payment per wallet; nothing late, no risk.
    let totals: Vec<(String, i64, i64)> = all["today"]
        .as_array()
        .expect("today")
        .iter()
        .map(|t| {
            (
                t["channel"].as_str().expect("c").to_string(),
                t["count"].as_i64().expect("n"),
                t["amount"].as_i64().expect("fen"),
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![("alipay".into(), 1, 5_000), ("wechat".into(), 1, 1_234)]
    );
    assert_eq!(
        (all["today_late"].as_i64(), all["today_risk"].as_i64()),
        (Some(0), Some(0))
    );

    // Paging by cursor: a row created meanwhile does not shift the second page.
    let (_, first) = call(
        &app,
        Some(&session),
        "orders",
        json!({ "filter": {}, "after": null }),
    )
    .await;
    let first: Value = serde_json::from_str(&first).expect("JSON");
    let last = ids(&first).last().cloned().expect("rows");
    order_of(&app, &a, 100, "Arrived meanwhile").await;
    let (_, after_last) = call(
        &app,
        Some(&session),
        "orders",
        json!({ "filter": {}, "after": last }),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&after_last).expect("JSON")["rows"],
        json!([])
    );

    // The export: every matching order, yuan with two places, formulas defused, quoted.
    let csv = |query: &str, session: &str| {
        app.client
            .get(app.url(&format!("/board/orders.csv{query}")))
            .header("cookie", format!("scanpay_session={session}"))
            .send()
    };
    let r = csv("?status=paid", &session).await.expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment"));
    let text = r.text().await.expect("text");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], server::board::CSV_HEADER.trim_end());
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{green},"))
            && l.contains(",\"Green tea, \"\"Longjing\"\"\",12.34,0.00,CNY,paid,false,wechat,")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",'=cmd|' /C calc'!A0,50.00,")),
        "{text}"
    );
    assert!(
        !text.contains("B's secret"),
        "another merchant's order leaked"
    );
    let all_csv = csv("", &session)
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert_eq!(all_csv.lines().count(), 1 + 4);
    let b_csv = csv("", &b_session)
        .await
        .expect("csv")
        .text()
        .await
        .expect("text");
    assert_eq!(b_csv.lines().count(), 2);
    assert!(b_csv.contains("B's secret order,77.77"));
    let anonymous = app.get("/board/orders.csv").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad = csv("?max=lots", &session).await.expect("csv");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    app.stop().await.expect("stop");
}

async fn a_board_hears_only_its_merchants_changes(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let mut board = app.payments.live().watch_merchant("mer_a".into());
    assert_eq!(
        board.next().await,
        Some(app::api::LivePing::Sync),
        "a board re-reads on connect"
    );
    for m in ["mer_a", "mer_b"] {
        sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $1, 0)")
            .bind(m)
            .execute(app.db.pool())
            .await
            .expect("merchant");
    }
    // Another merchant's new order: published before create_order returns, and not heard.
    order_of(&app, "mer_b", 100, "B").await;
    tokio::task::yield_now().await;
    assert_eq!(
        board.next().now_or_never(),
        None,
        "B's order reached A's board"
    );
    // Its own: a new order, then its payment.
    let id = order_of(&app, "mer_a", 100, "A").await;
    assert_eq!(board.next().await, Some(app::api::LivePing::Sync));
    let attempt = app
        .payments
        .start_payment(&oid(&id), Channel::Wechat)
        .await
        .expect("prepay");
    assert_eq!(
        board.next().await,
        Some(app::api::LivePing::Sync),
        "pending"
    );
    pay_in_wallet(&app, attempt.code_url.as_deref().expect("code"), "").await;
    assert_eq!(board.next().await, Some(app::api::LivePing::Sync), "paid");
    wait_for(&app, &id, OrderStatus::Paid).await;
    app.stop().await.expect("stop");
}

/// Several nodes starting at once against one fresh database each seed the demo merchant and
/// its user: every one of them succeeds (CI once saw a node die on the users primary key), one
/// row results, and a demo user from before the admin flag is upgraded, not duplicated.
async fn nodes_starting_together_seed_one_demo_user(db: TestDb) {
    let store = server::infra::db::Db::connect(&db.url, 8)
        .await
        .expect("db");
    store.migrate().await.expect("migrate");
    // The race is narrow (two inserts between their primary-key and email index entries), so
    // it is run many times over.
    for round in 0..25 {
        sqlx::query("DELETE FROM users")
            .execute(store.pool())
            .await
            .expect("clear");
        let starts = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                server::merchants::ensure_demo(&store).await?;
                server::accounts::ensure_demo_user(&store).await
            })
        });
        for start in futures::future::join_all(starts).await {
            let seeded = start.expect("task");
            assert_eq!(
                seeded.as_deref().map_err(|e| format!("round {round}: {e}")),
                Ok(server::accounts::DEMO_USER_ID)
            );
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, CAST(admin AS BIGINT) FROM users")
                .fetch_all(store.pool())
                .await
                .expect("users");
        assert_eq!(rows, vec![(server::accounts::DEMO_USER_ID.to_string(), 1)]);
    }
    sqlx::query("UPDATE users SET admin = 0")
        .execute(store.pool())
        .await
        .expect("demote");
    server::accounts::ensure_demo_user(&store)
        .await
        .expect("again");
    let admin: i64 = sqlx::query_scalar("SELECT CAST(admin AS BIGINT) FROM users WHERE id = $1")
        .bind(server::accounts::DEMO_USER_ID)
        .fetch_one(store.pool())
        .await
        .expect("admin");
    assert_eq!(admin, 1, "the demo user is an admin again");
    store.close().await;
}

/// The developers page: a merchant creates an API key (shown once, and it works), cannot
/// touch another merchant's, revokes it (it stops working); sets a webhook endpoint (its
/// secret shown once), changes it (the secret stays), rotates the secret (events are signed
/// with the new one). Bad input changes nothing and names the field; a stale CSRF token is
/// refused; the other merchant's page shows none of it.
async fn the_developers_page_manages_keys_and_the_webhook_endpoint(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (a, a_session) = merchant(&app, "Tea House", "ann@tea.example").await;
    let (_b, b_session) = merchant(&app, "Noodle Bar", "bo@noodle.example").await;
    let (a_csrf, b_csrf) = (
        csrf_of(&app, &a_session).await,
        csrf_of(&app, &b_session).await,
    );
    let page = |session: &str| {
        let (app, session) = (&app, session.to_string());
        async move {
            let (status, body) = call(app, Some(&session), "developers", json!({})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<Value>(&body).expect("JSON")
        }
    };
    let set = |session: &str, csrf: &str, change: Value| {
        let (app, session) = (&app, session.to_string());
        let body = json!({ "csrf": csrf, "change": change });
        async move { call(app, Some(&session), "settings", body).await }
    };
    let api_status = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/v1/orders"))
                .bearer_auth(key)
                .send()
                .await
                .expect("api")
                .status()
        }
    };
    let keys_before = page(&a_session).await["keys"]
        .as_array()
        .expect("keys")
        .len();

    // A new key: refused with a stale token or no name (nothing made), then made and shown once.
    let (status, _) = set(
        &a_session,
        "stale",
        json!({ "CreateKey": { "name": "web shop" } }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "CreateKey": { "name": "  " } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Key name"), "{body}");
    assert_eq!(
        page(&a_session).await["keys"].as_array().map(Vec::len),
        Some(keys_before)
    );
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "CreateKey": { "name": "web shop" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done: Value = serde_json::from_str(&body).expect("JSON");
    let key = done["secret"]
        .as_str()
        .expect("the key, shown once")
        .to_string();
    assert!(key.starts_with("sk_"), "{key}");
    assert_eq!(api_status(key.clone()).await, StatusCode::OK);
    let listed = page(&a_session).await;
    let row = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "web shop")
        .expect("listed")
        .clone();
    assert_eq!(row["revoked"], false);
    assert!(key.starts_with(row["prefix"].as_str().expect("prefix")));
    assert!(
        !listed.to_string().contains(&key),
        "the page never shows a key again"
    );
    let key_id = row["id"].as_str().expect("id").to_string();

    // The other merchant sees none of it and cannot revoke it.
    let b_page = page(&b_session).await;
    assert!(!b_page.to_string().contains(&key_id), "{b_page}");
    let (status, body) = set(
        &b_session,
        &b_csrf,
        json!({ "RevokeKey": { "key_id": key_id } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api_status(key.clone()).await, StatusCode::OK);
    // Its owner can.
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "RevokeKey": { "key_id": key_id } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api_status(key).await, StatusCode::UNAUTHORIZED);
    let row = page(&a_session).await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .expect("still listed")
        .clone();
    assert_eq!(row["revoked"], true);

    // The webhook endpoint.
    let (status, body) = set(&a_session, &a_csrf, json!("RotateSecret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no endpoint yet: {body}");
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "SetWebhook": { "url": "ftp://shop.example/x" } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Webhook URL"), "{body}");
    assert_eq!(page(&a_session).await["webhook_url"], Value::Null);
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "SetWebhook": { "url": "https://tea.example/scanpay" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: Value = serde_json::from_str(&body).expect("JSON");
    let first_secret = first["secret"].as_str().expect("shown once").to_string();
    let stored = || {
        let app = &app;
        let a = a.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT webhook_secret FROM merchants WHERE id = $1",
            )
            .bind(a)
            .fetch_one(app.db.pool())
            .await
            .expect("secret")
            .expect("set")
        }
    };
    assert_eq!(stored().await, first_secret);
    let (status, body) = set(
        &a_session,
        &a_csrf,
        json!({ "SetWebhook": { "url": "https://tea.example/scanpay/v2" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        again["secret"],
        Value::Null,
        "an unchanged secret is not shown again"
    );
    let listed = page(&a_session).await;
    assert_eq!(listed["webhook_url"], "https://tea.example/scanpay/v2");
    assert_eq!(listed["has_secret"], true);
    assert!(!listed.to_string().contains(&first_secret));
    let (status, body) = set(&a_session, &a_csrf, json!("RotateSecret")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated: Value = serde_json::from_str(&body).expect("JSON");
    let new_secret = rotated["secret"]
        .as_str()
        .expect("the new secret")
        .to_string();
    assert_ne!(new_secret, first_secret);
    assert_eq!(stored().await, new_secret);
    assert_eq!(page(&b_session).await["webhook_url"], Value::Null);

    // Signed out: nothing.
    let (status, _) = call(&app, None, "developers", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await.expect("stop");
}

/// Behind our own load balancer (`SCANPAY_TRUSTED_PROXIES`) every connection comes from the
/// balancer, so the per-address sign-in limit must count the client it names in
/// `X-Forwarded-For`: one client's failures stop that client only (not everyone), and a
/// client cannot dodge the limit by writing its own header.
async fn behind_a_trusted_proxy_the_sign_in_limit_is_per_client(db: TestDb) {
    let mut config = sandbox_config(&db);
    config.trusted_proxies =
        server::infra::client_addr::TrustedProxies::parse("127.0.0.1,::1").expect("list");
    let app = TestApp::spawn_with(config).await;
    let sign_in = |email: String, forwarded_for: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", forwarded_for)
                .form(&[("email", email.as_str()), ("password", "not the password")])
                .send()
                .await
                .expect("post")
                .status()
        }
    };
    for i in 0..server::accounts::FAILURES_PER_ADDRESS {
        let status = sign_in(format!("guess{i}@shop.example"), "203.0.113.7").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "failure {i} is let through");
    }
    assert_eq!(
        sign_in("guess-more@shop.example".into(), "203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS,
        "that client has used its attempts"
    );
    assert_eq!(
        sign_in(
            "guess-more@shop.example".into(),
            "198.51.100.4, 203.0.113.7"
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "a made-up address left of the balancer's entry changes nothing"
    );
    assert_eq!(
        sign_in("someone@shop.example".into(), "203.0.113.8").await,
        StatusCode::SEE_OTHER,
        "another client behind the same balancer is not stopped"
    );
    app.stop().await.expect("stop");
}

/// The developers page's payment accounts: a merchant enters its own WeChat Pay account; keys
/// that the provider refuses are not saved; checked ones are saved, listed by their ids only
/// (never the keys, on this page or the other merchant's), pay the merchant's orders, and can
/// be removed.
async fn the_developers_page_saves_a_checked_payment_account_and_never_shows_its_keys(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (a, a_session) = merchant(&app, "Tea House", "ann@tea.example").await;
    let (_b, b_session) = merchant(&app, "Noodle Bar", "bo@noodle.example").await;
    let a_csrf = csrf_of(&app, &a_session).await;
    let admin = server::sandbox::Sandbox::open(server::sandbox::SandboxSettings {
        dir: db.data_dir().join("sandbox"),
        base_url: app.url("/sandbox"),
        time_scale: 0.001,
        faults: Default::default(),
    })
    .await
    .expect("sandbox");
    let shop = admin.add_account("tea-house").expect("account");
    let (_, w) = server::sandbox::settings_of(&shop, &app.url("/sandbox"));
    let (_, stranger) =
        server::sandbox::settings_of(&admin.default_account(), &app.url("/sandbox"));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("key");
    let form = |private_key: String| {
        json!({ "SetAccount": { "channel": "wechat", "fields": [
            ["mchid", w.mchid], ["appid", w.appid], ["cert_serial", w.cert_serial],
            ["public_key_id", w.public_key_id], ["api_base", w.api_base],
            ["private_key", private_key], ["public_key", read(&w.public_key_file)],
            ["apiv3_key", read(&w.apiv3_key_file)],
        ] } })
    };
    let set = |change: Value| {
        let body = json!({ "csrf": a_csrf, "change": change });
        let (app, session) = (&app, a_session.clone());
        async move { call(app, Some(&session), "settings", body).await }
    };
    let page = |session: String| {
        let app = &app;
        async move {
            let (status, body) = call(app, Some(&session), "developers", json!({})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    // Another merchant's private key: the provider refuses the signed check; nothing saved.
    let (status, body) = set(form(read(&stranger.private_key_file))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Not saved"), "{body}");
    let listed: Value = serde_json::from_str(&page(a_session.clone()).await).expect("JSON");
    assert_eq!(listed["accounts"], json!([]));
    // A missing field is named.
    let (status, body) =
        set(json!({ "SetAccount": { "channel": "wechat", "fields": [["mchid", w.mchid]] } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("appid"), "{body}");
    // The right keys: checked and saved; listed by ids, the keys nowhere.
    let (status, body) = set(form(read(&w.private_key_file))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Saved"), "{body}");
    let shown = page(a_session.clone()).await;
    let listed: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(listed["accounts"][0]["channel"], "wechat", "{shown}");
    assert!(shown.contains(&w.mchid), "{shown}");
    let apiv3 = read(&w.apiv3_key_file);
    let private = read(&w.private_key_file);
    let private_line = private
        .lines()
        .find(|l| l.len() > 20 && !l.starts_with("-----"))
        .expect("a key line");
    for text in [shown.as_str(), body.as_str()] {
        assert!(
            !text.contains(apiv3.trim()) && !text.contains(private_line),
            "a key is shown"
        );
    }
    let other: Value = serde_json::from_str(&page(b_session.clone()).await).expect("JSON");
    assert_eq!(other["accounts"], json!([]));
    // The merchant's orders go through it.
    let merchant = server::merchants::MerchantId::new(a.clone());
    let order = app
        .payments
        .create_order(
            &NewOrder {
                merchant_id: merchant.clone(),
                amount: Amount::from_fen(1_500).expect("amount"),
                subject: "Jasmine".into(),
                expires_in_secs: 900,
                return_url: None,
            },
            None,
        )
        .await
        .expect("order");
    let attempt = app
        .payments
        .start_payment(&order.id, Channel::Wechat)
        .await
        .expect("prepay");
    assert_eq!(attempt.account.as_ref(), Some(&merchant));
    pay_in_wallet(&app, attempt.code_url.as_deref().expect("code"), "").await;
    wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    // Removed: listed no more; new orders go through the operator's account.
    let (status, body) = set(json!({ "RemoveAccount": { "channel": "wechat" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Value = serde_json::from_str(&page(a_session.clone()).await).expect("JSON");
    assert_eq!(listed["accounts"], json!([]));
    // As a sub-merchant of the operator's service-provider account, with its own official
    // account: the AppID without its AppSecret is refused and nothing saved; with it, saved
    // and listed by the AppID, the AppSecret nowhere.
    let app_secret = read(
        w.app_secret_file
            .as_deref()
            .expect("the sandbox account's AppSecret"),
    );
    let partner = |secret: Option<&str>| {
        let mut fields = vec![json!(["sub_mchid", w.mchid]), json!(["sub_appid", w.appid])];
        fields.extend(secret.map(|s| json!(["app_secret", s])));
        json!({ "SetAccount": { "channel": "wechat", "fields": fields } })
    };
    let (status, body) = set(partner(None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("app_secret"), "{body}");
    let listed: Value = serde_json::from_str(&page(a_session.clone()).await).expect("JSON");
    assert_eq!(listed["accounts"], json!([]));
    let (status, body) = set(partner(Some(&app_secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown = page(a_session.clone()).await;
    assert!(
        shown.contains(&w.appid) && shown.contains(&w.mchid),
        "{shown}"
    );
    assert!(!shown.contains(app_secret.trim()), "the AppSecret is shown");
    app.stop().await.expect("stop");
}
