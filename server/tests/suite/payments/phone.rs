//! The scanning phone (#18), end to end in one process against the built-in sandbox (real
//! HTTP, real signatures), on SQLite and PostgreSQL: a wallet's own browser signs in and
//! pays in the page (WeChat JSAPI, Alipay `alipay.trade.create` + `tradePay`), a plain phone
//! browser pays through the mobile cashiers (Alipay WAP, WeChat H5), a desktop keeps the QR
//! code; every failure before a payment is a clear page and never a payment; and every
//! method's attempt is queried, closed, refunded and expired like a native one.

use crate::common::phone::{
    answer, bridge, bridge_with, location, open, search_of, sign_in, ALIPAY_UA, DESKTOP_UA,
    PHONE_UA, WECHAT_UA,
};
use crate::common::{
    new_order, node, refund_settles, sandbox_config, state_at_provider, status_of, wait_for,
    TestApp, TestDb,
};
use serde_json::Value;
use server::orders::OrderStatus;
use server::payments::{expiry, refunds, Attempt, AttemptStatus};
use server::providers::{Channel, PayMethod, Payer, TradeState};

on_both_engines!(
    a_wechat_phone_signs_in_and_pays_in_the_page,
    an_alipay_phone_signs_in_and_pays_by_trade_pay,
    an_alipay_app_of_the_user_id_scheme_is_sent_buyer_id,
    sign_in_failures_give_a_clear_page_and_never_a_payment,
    a_plain_phone_pays_through_the_alipay_wap_cashier,
    a_plain_phone_pays_through_the_wechat_h5_cashier,
    a_return_without_payment_pays_nothing,
    a_desktop_keeps_the_qr_code,
    every_method_is_queried_refunded_and_expired_like_native,
);

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(sandbox_config(db)).await
}

async fn live(app: &TestApp, order: &server::orders::Order) -> Attempt {
    app.payments
        .live_attempt(&order.id)
        .await
        .expect("read")
        .expect("a live attempt")
}

/// The sandbox merchant's public key file text (`wechat-merchant`, `alipay-merchant`).
fn merchant_public_key(db: &TestDb, name: &str) -> String {
    let path = db
        .data_dir()
        .join("sandbox/keys")
        .join(format!("{name}-public.pem"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn a_wechat_phone_signs_in_and_pays_in_the_page(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 4200).await;
    let token = order.aggregate_token.clone().expect("token");
    // The aggregate code sends WeChat's browser to the silent sign-in, at the real path.
    let authorize = location(&open(&app, &format!("/q/{token}"), WECHAT_UA, None).await);
    assert!(
        authorize.contains("/sandbox/wechat/connect/oauth2/authorize?"),
        "{authorize}"
    );
    for part in [
        "scope=snsapi_base",
        "response_type=code",
        "state=",
        "appid=wx",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    assert!(authorize.ends_with("#wechat_redirect"), "{authorize}");
    assert_eq!(
        status_of(&app, order.id.as_str()).await,
        OrderStatus::Created,
        "no order yet"
    );
    let back = location(
        &open(
            &app,
            authorize.split('#').next().unwrap_or_default(),
            WECHAT_UA,
            None,
        )
        .await,
    );
    assert!(
        back.contains(&format!("/q/{token}?code=")),
        "the code before any #: {back}"
    );

    let first = answer(&app, &token, &search_of(&back), WECHAT_UA).await;
    let view = &first["InApp"];
    assert_eq!(view["status"], "pending", "{first}");
    let params = &view["call"]["Wechat"];
    let attempt = live(&app, &order).await;
    assert_eq!(attempt.method, PayMethod::Jsapi);
    assert!(matches!(&attempt.payer, Some(Payer::WechatOpenId(id)) if id.starts_with('o')));
    assert_eq!(
        params["package"],
        attempt.code_url.clone().expect("package").as_str()
    );
    assert!(params["package"]
        .as_str()
        .unwrap_or_default()
        .starts_with("prepay_id=wx"));
    assert_eq!(params["signType"], "RSA");
    assert!(params["timeStamp"]
        .as_str()
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit())));
    assert!(
        view["bridge_script"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/sandbox/bridge.js"),
        "demo: the stand-in"
    );

    // WeChat's SDK checks paySign with the merchant's public key.
    let checked = node(serde_json::json!({
        "op": "wechat.verifyPaySign",
        "params": params,
        "publicKey": merchant_public_key(&db, "wechat-merchant"),
    }));
    assert_eq!(checked["valid"], true, "{checked}");
    let mut tampered = params.clone();
    tampered["package"] = Value::from("prepay_id=wx0000");
    let refused = node(serde_json::json!({
        "op": "wechat.verifyPaySign",
        "params": tampered,
        "publicKey": merchant_public_key(&db, "wechat-merchant"),
    }));
    assert_eq!(refused["valid"], false);

    // The bridge (the sandbox's stand-in) refuses a changed request and pays the signed one.
    let bad = bridge(
        &app,
        "/sandbox/wechat/bridge/pay",
        &serde_json::json!({
            "appId": params["appId"], "timeStamp": params["timeStamp"], "nonceStr": "X",
            "package": params["package"], "signType": "RSA", "paySign": params["paySign"],
        }),
    )
    .await;
    assert_eq!(bad["err_msg"], "get_brand_wcpay_request:fail", "{bad}");
    // The buyer closes the pay sheet: WeChat's cancel, nothing paid, the same call pays later.
    let cancelled = bridge_with(
        &app,
        "/sandbox/wechat/bridge/pay",
        params,
        "sandbox_wallet=cancel",
    )
    .await;
    assert_eq!(cancelled["err_msg"], "get_brand_wcpay_request:cancel");
    assert_eq!(state_at_provider(&app, &attempt).await, TradeState::Pending);
    let ok = bridge(&app, "/sandbox/wechat/bridge/pay", params).await;
    assert_eq!(ok["err_msg"], "get_brand_wcpay_request:ok", "{ok}");
    wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    let paid = app
        .payments
        .attempt(&attempt.out_trade_no)
        .await
        .expect("read")
        .expect("attempt");
    assert_eq!(paid.status, AttemptStatus::Paid);
    // The provider says how it was paid.
    assert_eq!(state_at_provider(&app, &paid).await, TradeState::Paid);

    // A reload of the way back after paying: the receipt; nothing more is made.
    let again = answer(&app, &token, &search_of(&back), WECHAT_UA).await;
    assert_eq!(again["InApp"]["status"], "paid", "{again}");
    assert!(again["InApp"]["call"].is_null());
    assert_eq!(
        app.payments.attempts(&order.id).await.expect("read").len(),
        1
    );
    app.stop().await.expect("stop");
}

async fn an_alipay_phone_signs_in_and_pays_by_trade_pay(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 1999).await;
    let token = order.aggregate_token.clone().expect("token");
    let authorize = location(&open(&app, &format!("/q/{token}"), ALIPAY_UA, None).await);
    assert!(
        authorize.contains("/sandbox/alipay/oauth2/publicAppAuthorize.htm?"),
        "{authorize}"
    );
    assert!(authorize.contains("scope=auth_base"), "{authorize}");
    let back = location(&open(&app, &authorize, ALIPAY_UA, None).await);
    assert!(
        back.contains("auth_code=") && back.contains("source=alipay_wallet"),
        "{back}"
    );
    let answer = answer(&app, &token, &search_of(&back), ALIPAY_UA).await;
    let trade_no = answer["InApp"]["call"]["Alipay"]["trade_no"]
        .as_str()
        .unwrap_or_else(|| panic!("a tradePay call: {answer}"))
        .to_string();
    let attempt = live(&app, &order).await;
    assert_eq!(attempt.method, PayMethod::Jsapi);
    // An app of the OpenID scheme: the buyer is an open_id, sent as buyer_open_id.
    assert!(
        matches!(&attempt.payer, Some(Payer::AlipayOpenId(_))),
        "{:?}",
        attempt.payer
    );
    assert_eq!(attempt.code_url.as_deref(), Some(trade_no.as_str()));
    let wrong = bridge(
        &app,
        "/sandbox/alipay/bridge/trade-pay",
        &serde_json::json!({ "tradeNo": trade_no }),
    )
    .await;
    assert_eq!(wrong["resultCode"], "4000", "tradeNO is case-sensitive");
    let cancelled = bridge_with(
        &app,
        "/sandbox/alipay/bridge/trade-pay",
        &serde_json::json!({ "tradeNO": trade_no }),
        "sandbox_wallet=cancel",
    )
    .await;
    assert_eq!(cancelled["resultCode"], "6001", "the buyer's cancel");
    assert_eq!(state_at_provider(&app, &attempt).await, TradeState::Pending);
    let paid = bridge(
        &app,
        "/sandbox/alipay/bridge/trade-pay",
        &serde_json::json!({ "tradeNO": trade_no }),
    )
    .await;
    assert_eq!(paid["resultCode"], "9000");
    wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    app.stop().await.expect("stop");
}

async fn an_alipay_app_of_the_user_id_scheme_is_sent_buyer_id(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 500).await;
    let token = order.aggregate_token.clone().expect("token");
    let back = sign_in(&app, &token, ALIPAY_UA, Some("sandbox_oauth=user_id_app")).await;
    let answer = answer(&app, &token, &search_of(&back), ALIPAY_UA).await;
    assert!(
        answer["InApp"]["call"]["Alipay"]["trade_no"].is_string(),
        "{answer}"
    );
    let attempt = live(&app, &order).await;
    assert!(
        matches!(&attempt.payer, Some(Payer::AlipayUserId(id)) if id.starts_with("2088") && id.len() == 16),
        "{:?}",
        attempt.payer
    );
    app.stop().await.expect("stop");
}

/// Each failure before a payment: the page names it, in the customer's language, and the
/// order stays unpaid with no payment open for anyone.
async fn sign_in_failures_give_a_clear_page_and_never_a_payment(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 4200).await;
    let token = order.aggregate_token.clone().expect("token");
    let kind = |v: &Value| {
        v["Problem"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // A changed state, and another order's state: refused before the code is used.
    let back = sign_in(&app, &token, WECHAT_UA, None).await;
    let tampered = back.replace("state=", "state=X");
    assert_eq!(
        kind(&answer(&app, &token, &search_of(&tampered), WECHAT_UA).await),
        "SignInInvalid"
    );
    let other = new_order(&app, 100).await;
    let other_token = other.aggregate_token.clone().expect("token");
    assert_eq!(
        kind(&answer(&app, &other_token, &search_of(&back), WECHAT_UA).await),
        "SignInInvalid",
        "a state is bound to its code"
    );
    // The code used twice (a double redirect): WeChat's 40163.
    let first = answer(&app, &token, &search_of(&back), WECHAT_UA).await;
    assert!(first["InApp"]["call"].is_object(), "{first}");
    // The way back opened again (a reload before paying): the sign-in is spent.
    let html = open(&app, &back, WECHAT_UA, None)
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("data-kind=\"SignInUsed\""), "{html}");
    let again = sign_in(&app, &token, WECHAT_UA, None).await;
    let old_code = search_of(&back)
        .split('&')
        .find(|p| p.starts_with("code="))
        .expect("code")
        .to_string();
    let reused = search_of(&again)
        .split('&')
        .map(|p| {
            if p.starts_with("code=") {
                old_code.clone()
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        kind(&answer(&app, &token, &reused, WECHAT_UA).await),
        "SignInUsed"
    );
    // An expired code; an openid of another app (WeChat refuses the order); a buyer Alipay
    // does not know (ACQ.BUYER_NOT_EXIST).
    for (ua, fault, want) in [
        (WECHAT_UA, "code_expired", "SignInUsed"),
        (WECHAT_UA, "invalid_openid", "PayerRefused"),
        (ALIPAY_UA, "buyer_not_found", "PayerRefused"),
    ] {
        let cookie = format!("sandbox_oauth={fault}");
        let back = sign_in(&app, &token, ua, Some(&cookie)).await;
        let got = answer(&app, &token, &search_of(&back), ua).await;
        assert_eq!(kind(&got), want, "{fault}: {got}");
    }
    // The page itself, in Chinese for a Chinese phone.
    let page = app
        .client
        .get(&tampered)
        .header("user-agent", WECHAT_UA)
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("此链接无效") && html.contains("未发生扣款"),
        "{html}"
    );

    // Nothing was paid; the only attempts that opened are the one good sign-in's, closed
    // when the next payer came.
    assert_ne!(status_of(&app, order.id.as_str()).await, OrderStatus::Paid);
    for a in app.payments.attempts(&order.id).await.expect("read") {
        assert_ne!(a.status, AttemptStatus::Paid, "{a:?}");
    }
    app.stop().await.expect("stop");
}

async fn a_plain_phone_pays_through_the_alipay_wap_cashier(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 3300).await;
    let token = order.aggregate_token.clone().expect("token");
    // The page offers both wallets; choosing Alipay goes to its WAP cashier.
    let page = open(&app, &format!("/q/{token}"), PHONE_UA, None).await;
    assert_eq!(page.status(), 200);
    let wap = location(&open(&app, &format!("/q/{token}?pay=alipay"), PHONE_UA, None).await);
    assert!(wap.contains("/sandbox/alipay/gateway.do?"), "{wap}");
    let params: std::collections::BTreeMap<String, String> = url::Url::parse(&wap)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["method"], "alipay.trade.wap.pay");
    assert!(params["return_url"].ends_with(&format!("/q/{token}?back=alipay")));
    assert!(
        params["biz_content"].contains("QUICK_WAP_WAY")
            && params["biz_content"].contains("quit_url")
    );
    // Alipay's SDK verifies the link's signature with the merchant's public key.
    let checked = node(serde_json::json!({
        "op": "alipay.verify",
        "params": params,
        "publicKey": merchant_public_key(&db, "alipay-merchant"),
        "anyPrivateKey": std::fs::read_to_string(db.data_dir().join("sandbox/keys/alipay-merchant-private.pem")).expect("key"),
    }));
    assert_eq!(checked["valid"], true, "{checked}");
    let attempt = live(&app, &order).await;
    assert_eq!(attempt.method, PayMethod::Wap);
    // Chosen again at once: the same link. Five minutes on, its signed timestamp is stale: a
    // fresh attempt with a fresh link (the old one closed, never both payable).
    let again = location(&open(&app, &format!("/q/{token}?pay=alipay"), PHONE_UA, None).await);
    assert_eq!(again, wap);
    sqlx::query(
        "UPDATE payment_attempts SET created_at = created_at - 300000 WHERE out_trade_no = $1",
    )
    .bind(&attempt.out_trade_no)
    .execute(app.db.pool())
    .await
    .expect("age");
    let wap = location(&open(&app, &format!("/q/{token}?pay=alipay"), PHONE_UA, None).await);
    let attempt = live(&app, &order).await;
    assert!(
        wap.contains(&format!("{}_2", order.id)),
        "a new trade number: {wap}"
    );
    assert_eq!(attempt.code_url.as_deref(), Some(wap.as_str()));

    // The gateway shows its cashier; paying sends the phone back with the signed return.
    let cashier = location(&open(&app, &wap, PHONE_UA, None).await);
    assert!(cashier.contains("/sandbox/pay/"), "{cashier}");
    let back = app
        .client
        .post(&cashier)
        .form(&[("action", "pay")])
        .send()
        .await
        .expect("pay");
    let back = location(&back);
    assert!(
        back.contains(&format!("/q/{token}?back=alipay&")) && back.contains("sign="),
        "{back}"
    );
    let returned = open(&app, &back, PHONE_UA, None).await;
    assert_eq!(returned.status(), 200);
    assert!(returned
        .text()
        .await
        .expect("html")
        .contains("data-testid=\"inapp\""));
    wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    app.stop().await.expect("stop");
}

async fn a_plain_phone_pays_through_the_wechat_h5_cashier(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 880).await;
    let token = order.aggregate_token.clone().expect("token");
    let h5 = location(&open(&app, &format!("/q/{token}?pay=wechat"), PHONE_UA, None).await);
    assert!(h5.contains("/sandbox/pay/") && h5.contains("h5=1"), "{h5}");
    assert!(
        h5.contains("redirect_url="),
        "our return page rides on the link: {h5}"
    );
    let attempt = live(&app, &order).await;
    assert_eq!(attempt.method, PayMethod::H5);
    assert_eq!(open(&app, &h5, PHONE_UA, None).await.status(), 200);
    let cashier = h5.split('?').next().unwrap_or_default().to_string();
    let back = app
        .client
        .post(&cashier)
        .form(&[("action", "pay")])
        .send()
        .await
        .expect("pay");
    let back = location(&back);
    assert!(back.ends_with(&format!("/q/{token}?back=wechat")), "{back}");
    assert_eq!(open(&app, &back, PHONE_UA, None).await.status(), 200);
    wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
    app.stop().await.expect("stop");
}

/// A visit to the return page is never a payment: a forged Alipay return (or a real one
/// before paying) shows the order as it is.
async fn a_return_without_payment_pays_nothing(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 1200).await;
    let token = order.aggregate_token.clone().expect("token");
    let wap = location(&open(&app, &format!("/q/{token}?pay=alipay"), PHONE_UA, None).await);
    let attempt = live(&app, &order).await;
    let forged = format!(
        "/q/{token}?back=alipay&out_trade_no={}&method=alipay.trade.wap.pay.return&total_amount=12.00&trade_no=2026X&sign=AAAA&sign_type=RSA2",
        attempt.out_trade_no
    );
    let page = answer(&app, &token, &search_of(&forged), PHONE_UA).await;
    assert_eq!(page["InApp"]["returned"], true, "{page}");
    assert_eq!(page["InApp"]["status"], "pending");
    assert!(page["InApp"]["call"].is_null());
    // The cashier opened, then the phone came back without paying.
    let _ = open(&app, &wap, PHONE_UA, None).await;
    let plain = answer(&app, &token, "back=wechat", PHONE_UA).await;
    assert_eq!(plain["InApp"]["status"], "pending");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        status_of(&app, order.id.as_str()).await,
        OrderStatus::Pending
    );
    app.stop().await.expect("stop");
}

async fn a_desktop_keeps_the_qr_code(db: TestDb) {
    let app = app(&db).await;
    let order = new_order(&app, 700).await;
    let token = order.aggregate_token.clone().expect("token");
    let page = open(&app, &format!("/q/{token}"), DESKTOP_UA, None).await;
    assert_eq!(page.status(), 200, "the page that explains");
    let to = location(&open(&app, &format!("/q/{token}?pay=wechat"), DESKTOP_UA, None).await);
    assert_eq!(to, format!("/checkout/{}?wallet=wechat", order.id));
    assert!(
        app.payments
            .live_attempt(&order.id)
            .await
            .expect("read")
            .is_none(),
        "no cashier for a desktop"
    );
    app.stop().await.expect("stop");
}

/// Opens an attempt of each method for its own order; returns (order, attempt).
async fn opened(
    app: &TestApp,
    method: PayMethod,
    channel: Channel,
) -> (server::orders::Order, Attempt) {
    let order = new_order(app, 1000).await;
    let token = order.aggregate_token.clone().expect("token");
    match method {
        PayMethod::Jsapi => {
            let ua = match channel {
                Channel::Wechat => WECHAT_UA,
                Channel::Alipay => ALIPAY_UA,
            };
            let back = sign_in(app, &token, ua, None).await;
            let a = answer(app, &token, &search_of(&back), ua).await;
            assert!(a["InApp"]["call"].is_object(), "{a}");
        }
        _ => {
            let _ = open(app, &format!("/q/{token}?pay={channel}"), PHONE_UA, None).await;
        }
    }
    let attempt = live(app, &order).await;
    assert_eq!((attempt.method, attempt.channel), (method, channel));
    (order, attempt)
}

async fn every_method_is_queried_refunded_and_expired_like_native(db: TestDb) {
    let app = app(&db).await;
    let ways = [
        (PayMethod::Jsapi, Channel::Wechat),
        (PayMethod::Jsapi, Channel::Alipay),
        (PayMethod::H5, Channel::Wechat),
        (PayMethod::Wap, Channel::Alipay),
    ];
    for (method, channel) in ways {
        // Paid, queried and refunded through the attempt's own method-agnostic calls.
        let (order, attempt) = opened(&app, method, channel).await;
        let paid = match (method, channel) {
            (PayMethod::Jsapi, Channel::Alipay) => {
                let t = attempt.code_url.clone().expect("trade_no");
                bridge(
                    &app,
                    "/sandbox/alipay/bridge/trade-pay",
                    &serde_json::json!({ "tradeNO": t }),
                )
                .await
            }
            _ => Value::Null,
        };
        if paid.is_null() {
            pay_any(&app, &attempt).await;
        } else {
            assert_eq!(paid["resultCode"], "9000", "{paid}");
        }
        wait_for(&app, order.id.as_str(), OrderStatus::Paid).await;
        assert_eq!(
            state_at_provider(&app, &attempt).await,
            TradeState::Paid,
            "{method} {channel}"
        );
        let settled = refund_settles(&app, &order.merchant_id, &order.id, 300).await;
        assert_eq!(
            settled,
            refunds::RefundStatus::Succeeded,
            "{method} {channel}"
        );

        // Unpaid: expiry closes it at the provider, then the order expires.
        let (order, attempt) = opened(&app, method, channel).await;
        sqlx::query("UPDATE orders SET expires_at = $1 WHERE id = $2")
            .bind(server::infra::clock::now_ms() - 1000)
            .bind(order.id.as_str())
            .execute(app.db.pool())
            .await
            .expect("due");
        expiry::run_once(&app.payments).await.expect("expiry");
        assert_eq!(
            status_of(&app, order.id.as_str()).await,
            OrderStatus::Expired,
            "{method} {channel}"
        );
        let closed = app
            .payments
            .attempt(&attempt.out_trade_no)
            .await
            .expect("read")
            .expect("attempt");
        assert_eq!(closed.status, AttemptStatus::Closed, "{method} {channel}");
    }
    app.stop().await.expect("stop");
}

/// Pays an attempt of any method the way its cashier would: H5 and WAP on the sandbox's
/// cashier page, WeChat JSAPI through the bridge with a freshly signed call.
async fn pay_any(app: &TestApp, attempt: &Attempt) {
    match (attempt.method, attempt.channel) {
        (PayMethod::Jsapi, Channel::Wechat) => {
            let client = app
                .payments
                .client_of(attempt)
                .await
                .expect("client")
                .expect("account");
            let call = client
                .wallet_call(attempt.code_url.as_deref().expect("package"))
                .expect("call");
            let params = serde_json::to_value(&call).expect("json");
            let ok = bridge(app, "/sandbox/wechat/bridge/pay", &params["Wechat"]).await;
            assert_eq!(ok["err_msg"], "get_brand_wcpay_request:ok", "{ok}");
        }
        (PayMethod::H5, _) => {
            let url = attempt.code_url.clone().expect("h5_url");
            let cashier = url.split('?').next().unwrap_or_default().to_string();
            let r = app
                .client
                .post(&cashier)
                .form(&[("action", "pay")])
                .send()
                .await
                .expect("pay");
            assert!(r.status().is_redirection(), "{}", r.status());
        }
        (PayMethod::Wap, _) => {
            let url = attempt.code_url.clone().expect("wap url");
            let cashier = location(&open(app, &url, PHONE_UA, None).await);
            let r = app
                .client
                .post(&cashier)
                .form(&[("action", "pay")])
                .send()
                .await
                .expect("pay");
            assert!(r.status().is_redirection(), "{}", r.status());
        }
        other => panic!("{other:?}"),
    }
}
