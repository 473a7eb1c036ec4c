//! A shop's fixed code (#18): the permanent `/p/<code>` at the counter. The customer types
//! the amount on the phone page; that makes an ordinary order of the shop tagged with the
//! code, which pays through the same ways as the aggregate code. Disabled codes take nothing.

use crate::common::phone::{bridge, open, sign_in_and_answer, WECHAT_UA};
use crate::common::{sandbox_config, wait_for, TestApp, TestDb};
use server::merchants::DEMO_MERCHANT_ID;
use server::orders::OrderStatus;
use server::shop_codes;

on_both_engines!(
    a_fixed_code_takes_a_typed_amount_and_pays_through_the_wallet,
    a_fixed_code_refuses_bad_amounts_and_stops_when_disabled,
    the_shops_logo_is_on_its_customers_pages,
);

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(sandbox_config(db)).await
}

/// The phone page's plain form, posted as a browser does.
async fn pay(app: &TestApp, code: &str, amount: &str, note: &str) -> String {
    let r = app
        .client
        .post(app.url("/api/shop_pay"))
        .header("accept", "text/html")
        .header("user-agent", WECHAT_UA)
        .form(&[("code", code), ("amount", amount), ("note", note)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

async fn orders_of_code(app: &TestApp, code: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM orders WHERE shop_code = $1 ORDER BY created_at")
        .bind(code)
        .fetch_all(app.db.pool())
        .await
        .expect("orders")
}

async fn a_fixed_code_takes_a_typed_amount_and_pays_through_the_wallet(db: TestDb) {
    let app = app(&db).await;
    let code = shop_codes::create(&app.db, &DEMO_MERCHANT_ID.into(), "Counter 1")
        .await
        .expect("code");
    let page = open(&app, &format!("/p/{}", code.code), WECHAT_UA, None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("ScanPay Demo Shop") && html.contains("Counter 1"),
        "{html}"
    );
    assert!(html.contains("action=\"/api/shop_pay\""), "a plain form");

    let to = pay(&app, &code.code, "12.5", "table 4").await;
    assert!(to.starts_with("/q/"), "on to the aggregate code: {to}");
    let ids = orders_of_code(&app, &code.code).await;
    assert_eq!(ids.len(), 1);
    let order = server::orders::get(&app.db, &crate::common::oid(&ids[0]))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(order.amount.fen(), 1250);
    assert_eq!(order.subject, "Counter 1 · table 4");
    assert_eq!(order.shop_code.as_deref(), Some(code.code.as_str()));
    assert_eq!(order.merchant_id.as_str(), DEMO_MERCHANT_ID);

    // The wallet's own browser then signs in and pays in the page, as from any order's code.
    let token = to.trim_start_matches("/q/");
    let answer = sign_in_and_answer(&app, token, WECHAT_UA).await;
    let params = answer["InApp"]["call"]["Wechat"].clone();
    let ok = bridge(&app, "/sandbox/wechat/bridge/pay", &params).await;
    assert_eq!(ok["err_msg"], "get_brand_wcpay_request:ok", "{ok}");
    wait_for(&app, &ids[0], OrderStatus::Paid).await;

    // The code stays: a second customer pays through it too.
    let again = pay(&app, &code.code, "3", "").await;
    assert_ne!(again, to, "a new order each time");
    assert_eq!(orders_of_code(&app, &code.code).await.len(), 2);

    // Its printable card: the QR of its link, the shop, the wallets.
    let card = app.get(&format!("/p/{}/card", code.code)).await;
    assert_eq!(card.status(), 200);
    let card = card.text().await.expect("html");
    assert!(
        card.contains("<svg") && card.contains("ScanPay Demo Shop") && card.contains("Counter 1")
    );
    assert!(card.contains(&format!("/p/{}", code.code)));
    app.stop().await.expect("stop");
}

async fn a_fixed_code_refuses_bad_amounts_and_stops_when_disabled(db: TestDb) {
    let app = app(&db).await;
    let merchant = DEMO_MERCHANT_ID.into();
    let code = shop_codes::create(&app.db, &merchant, "Table 7")
        .await
        .expect("code");
    for amount in ["", "abc", "0", "0.001", "-5", "100000.01"] {
        let back = pay(&app, &code.code, amount, "").await;
        assert!(
            back.starts_with(&format!("/p/{}?error=", code.code)),
            "{amount:?}: {back}"
        );
    }
    let long_note = "n".repeat(61);
    let back = pay(&app, &code.code, "5", &long_note).await;
    assert!(back.contains("error="), "{back}");
    assert!(
        orders_of_code(&app, &code.code).await.is_empty(),
        "nothing made"
    );
    // The error is on the page, in the customer's language, with what was typed.
    assert_eq!(back, format!("/p/{}?error=note&amount=5", code.code));
    let page = app
        .client
        .get(app.url(&format!("/p/{}?error=amount&amount=abc", code.code)))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .expect("page");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("请输入 0.01 至 100000 元之间的金额"),
        "{html}"
    );
    assert!(
        html.contains("value=\"abc\""),
        "what was typed stays: {html}"
    );

    assert!(
        shop_codes::create(&app.db, &merchant, "  ").await.is_err(),
        "a name is required"
    );
    assert!(shop_codes::disable(&app.db, &merchant, &code.code)
        .await
        .expect("disable"));
    assert!(
        !shop_codes::disable(&app.db, &"someone-else".into(), &code.code)
            .await
            .expect("disable")
    );
    let page = app.get(&format!("/p/{}", code.code)).await;
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("data-testid=\"shop-disabled\""));
    let back = pay(&app, &code.code, "5", "").await;
    assert!(back.contains("error="), "{back}");
    assert!(orders_of_code(&app, &code.code).await.is_empty());
    let card = app
        .get(&format!("/p/{}/card", code.code))
        .await
        .text()
        .await
        .expect("html");
    assert!(card.contains("card-disabled"));
    let unknown = app.get("/p/AAAAAAAAAAAAAAAA").await;
    assert_eq!(unknown.status(), 404);
    app.stop().await.expect("stop");
}

/// A logo set on the board shows beside the shop's name on its customers' pages; a URL that
/// is not a plain https image link is refused and changes nothing.
async fn the_shops_logo_is_on_its_customers_pages(db: TestDb) {
    use app::merchant::Setting;
    let app = app(&db).await;
    let merchant = DEMO_MERCHANT_ID.into();
    let set = |url: &str| {
        server::board::setting(
            &app.payments,
            &app.webhooks,
            &merchant,
            Setting::SetLogo { url: url.into() },
        )
    };
    for bad in [
        "http://shop.example/logo.png",
        "https://shop.example/\"x.png",
        "javascript:x",
    ] {
        assert!(set(bad).await.is_err(), "{bad}");
    }
    let before = server::merchants::get(&app.db, &merchant)
        .await
        .expect("read")
        .expect("shop");
    assert_eq!(before.logo_url, None, "refusals changed nothing");
    set("https://shop.example/logo.png").await.expect("saved");
    let logo = "src=\"https://shop.example/logo.png\"";
    let order = crate::common::new_order(&app, 100).await;
    let token = order.aggregate_token.clone().expect("token");
    let code = shop_codes::create(&app.db, &merchant, "Counter")
        .await
        .expect("code");
    for (path, ua) in [
        (
            format!("/checkout/{}", order.id),
            "Mozilla/5.0 (X11; Linux x86_64)",
        ),
        (format!("/q/{token}"), crate::common::phone::PHONE_UA),
        (format!("/p/{}", code.code), crate::common::phone::PHONE_UA),
    ] {
        let html = crate::common::phone::open(&app, &path, ua, None)
            .await
            .text()
            .await
            .expect("html");
        assert!(html.contains(logo), "{path}: {html}");
    }
    set("").await.expect("removed");
    let html = app
        .get(&format!("/checkout/{}", order.id))
        .await
        .text()
        .await
        .expect("html");
    assert!(!html.contains("shop-logo-img"), "removed");
    app.stop().await.expect("stop");
}
