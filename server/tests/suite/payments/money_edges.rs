//! Codes and payments at the edges, through the sandbox, on SQLite and PostgreSQL: no code
//! older than its two hours is shown again; an unscanned Alipay code closed on our side only
//! is still watched until it dies; a second payment is a payment of its own (event, refund);
//! a provider answer that pays is checked the same way on every path.

use crate::common::oid;
use crate::common::{pay_in_wallet, sandbox_config, wait_for, TestApp, TestDb};
use app::money::Amount;
use server::merchants::MerchantId;
use server::merchants::DEMO_MERCHANT_ID;
use server::orders::{self, NewOrder, OrderStatus};
use server::payments::refunds::{self, RefundStatus};
use server::payments::{AttemptStatus, StartPayment};
use server::providers::Channel;

on_both_engines!(
    no_code_older_than_its_two_hours_is_shown_again,
    an_unscanned_alipay_code_closed_on_our_side_is_watched_until_it_dies,
    a_second_payment_is_a_payment_of_its_own_with_its_own_refund,
    a_paid_answer_after_a_refused_close_is_checked_like_a_notification,
);

async fn order(app: &TestApp, fen: i64, expires_in_secs: i64) -> String {
    orders::create(
        &app.db,
        &NewOrder {
            merchant_id: DEMO_MERCHANT_ID.into(),
            amount: Amount::from_fen(fen).expect("amount"),
            subject: "Long-lived".into(),
            expires_in_secs,
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

/// The sandbox's own record of a trade: (state, expires_at ms).
async fn sandbox_trade(db: &TestDb, out_trade_no: &str) -> (String, Option<i64>) {
    use sqlx::Connection;
    let path = db.data_dir().join("sandbox").join("sandbox.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("sandbox database");
    sqlx::query_as("SELECT state, expires_at FROM sandbox_trades WHERE out_trade_no = ?1")
        .bind(out_trade_no)
        .fetch_one(&mut conn)
        .await
        .expect("sandbox trade")
}

/// Makes an attempt's active query due now and runs rounds until `done` (the background
/// worker may take the round instead).
async fn query_until(app: &TestApp, out_trade_no: &str, order_id: &str, want: OrderStatus) {
    for _ in 0..100 {
        sqlx::query("UPDATE payment_attempts SET next_query_at = $1 WHERE out_trade_no = $2 AND next_query_at IS NOT NULL")
            .bind(server::infra::clock::now_ms() - 1)
            .bind(out_trade_no)
            .execute(app.db.pool())
            .await
            .expect("due");
        server::payments::query::run_once(&app.payments)
            .await
            .expect("round");
        if crate::common::status_of(app, order_id).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "order {order_id} is {}, not {want}",
        crate::common::status_of(app, order_id).await
    );
}

/// An order whose customer opened an Alipay code, did not scan it, and switched to WeChat:
/// (order id, the Alipay attempt, the WeChat attempt).
async fn alipay_then_wechat(
    app: &TestApp,
    fen: i64,
) -> (String, server::payments::Attempt, server::payments::Attempt) {
    let id = order(app, fen, 900).await;
    let alipay = app
        .payments
        .start_payment(&oid(&id), Channel::Alipay)
        .await
        .expect("code");
    let wechat = app
        .payments
        .start_payment(&oid(&id), Channel::Wechat)
        .await
        .expect("code");
    (id, alipay, wechat)
}

/// How many amount mismatches the order's risk events name.
async fn mismatches(app: &TestApp, id: &str) -> usize {
    server::risk::for_order(&app.db, &oid(id))
        .await
        .expect("risk")
        .into_iter()
        .filter(|r| r.kind == "amount_mismatch")
        .count()
}

async fn no_code_older_than_its_two_hours_is_shown_again(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        // Payable for a day; its codes for two hours each.
        let id = order(&app, 1_200, 24 * 3600).await;
        let first = app
            .payments
            .start_payment(&oid(&id), channel)
            .await
            .expect("code");
        let (_, expires) = sandbox_trade(&db, first.out_trade_no.as_str()).await;
        let two_hours_on = server::infra::clock::now_ms() + 2 * 3600 * 1000;
        match channel {
            // Alipay: each code is a trade of its own, told to end with the code.
            Channel::Alipay => assert!(
                expires.is_some_and(|e| e <= two_hours_on),
                "{channel}: the provider was told the code lives until {expires:?}, past its two hours"
            ),
            // WeChat: the trade lasts as long as the order (time_expire); its code is
            // renewed in place by the same order call.
            _ => assert_eq!(
                expires.map(|e| e / 1000),
                first.payable_until.map(|p| p / 1000),
                "{channel}: time_expire is the order's end"
            ),
        }
        assert!(
            first.code_dies_at() <= two_hours_on,
            "{channel}: the code itself lives two hours"
        );
        // Still fresh: the same code again.
        let again = app
            .payments
            .start_payment(&oid(&id), channel)
            .await
            .expect("code");
        assert_eq!(again.out_trade_no, first.out_trade_no, "{channel}");
        // An hour and fifty-five minutes later it would die within minutes: a fresh code.
        let aged = 115 * 60 * 1000;
        let aging = match channel {
            Channel::Alipay => "UPDATE payment_attempts SET created_at = created_at - $1, payable_until = payable_until - $1 \
                 WHERE out_trade_no = $2",
            _ => "UPDATE payment_attempts SET created_at = created_at - $1 WHERE out_trade_no = $2",
        };
        sqlx::query(aging)
            .bind(aged)
            .bind(&first.out_trade_no)
            .execute(app.db.pool())
            .await
            .expect("age the code");
        let fresh = app
            .payments
            .start_payment(&oid(&id), channel)
            .await
            .expect("code");
        let old = app
            .payments
            .attempt(&first.out_trade_no)
            .await
            .expect("read")
            .expect("attempt");
        match channel {
            // A new trade with its own number; the old one closed at Alipay.
            Channel::Alipay => {
                assert_ne!(
                    fresh.out_trade_no, first.out_trade_no,
                    "{channel}: a dying code was shown"
                );
                assert_ne!(fresh.code_url, first.code_url, "{channel}");
                assert_eq!(old.status, AttemptStatus::Closed, "{channel}");
            }
            // The same trade, asked again with the same parameters: a code with its two
            // hours ahead, and no second trade that could be paid.
            _ => {
                assert_eq!(fresh.out_trade_no, first.out_trade_no, "{channel}");
                assert_eq!(old.status, AttemptStatus::Open, "{channel}");
                assert!(fresh.code_at.is_some(), "{channel}: renewed");
                assert!(
                    fresh.code_is_fresh(server::infra::clock::now_ms()),
                    "{channel}: the renewed code has its time ahead"
                );
                assert_eq!(
                    app.payments.attempts(&oid(&id)).await.expect("read").len(),
                    1,
                    "{channel}: one trade"
                );
            }
        }
        // The checkout page renews it by itself before it dies, and still counts down the
        // order's own time.
        let page = app
            .get(&format!("/checkout/{id}?wallet={}", channel.as_str()))
            .await
            .text()
            .await
            .expect("page");
        assert!(
            page.contains("data-renew-at=\""),
            "{channel}: no renewal time on the page"
        );
        assert!(
            page.contains(fresh.code_url.as_deref().expect("code")),
            "{channel}"
        );
    }
    app.stop().await.expect("stop");
}

async fn an_unscanned_alipay_code_closed_on_our_side_is_watched_until_it_dies(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    // The customer switches to WeChat before scanning: Alipay has no trade to close yet
    // (ACQ.TRADE_NOT_EXIST), so the Alipay code is closed on our side only.
    let (id, alipay, wechat) = alipay_then_wechat(&app, 880).await;
    assert_ne!(wechat.out_trade_no, alipay.out_trade_no);
    let closed = app
        .payments
        .attempt(&alipay.out_trade_no)
        .await
        .expect("read")
        .expect("attempt");
    assert_eq!(closed.status, AttemptStatus::Closed);
    // ... and still payable at Alipay until its time: the customer pays it after all, and
    // the notification is lost.
    pay_in_wallet(&app, alipay.code_url.as_deref().expect("code"), "drop").await;
    assert_eq!(
        sandbox_trade(&db, alipay.out_trade_no.as_str()).await.0,
        "paid"
    );
    // The active query still asks about it and finds the payment.
    query_until(&app, alipay.out_trade_no.as_str(), &id, OrderStatus::Paid).await;
    let o = orders::get(&app.db, &oid(&id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(o.paid_channel, Some(Channel::Alipay));
    app.stop().await.expect("stop");
}

async fn a_second_payment_is_a_payment_of_its_own_with_its_own_refund(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (id, alipay, wechat) = alipay_then_wechat(&app, 650).await;
    // Paid through the WeChat code, then through the (unscanned, so still payable) Alipay code.
    pay_in_wallet(&app, wechat.code_url.as_deref().expect("code"), "").await;
    wait_for(&app, &id, OrderStatus::Paid).await;
    pay_in_wallet(&app, alipay.code_url.as_deref().expect("code"), "").await;
    let mut second = None;
    for _ in 0..200 {
        second = server::outbox::for_order(&app.db, &oid(&id))
            .await
            .expect("outbox")
            .into_iter()
            .find(|e| e.topic == "order.extra_payment");
        if second.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let second = second.expect("the second payment is its own webhook event");
    assert_eq!(second.payload["out_trade_no"], alipay.out_trade_no.as_str());
    assert_eq!(second.payload["amount"], 650);
    assert_eq!(second.payload["channel"], "alipay");
    assert!(second.payload["provider_trade_no"].is_string());
    // The order was paid once, by WeChat.
    let o = orders::get(&app.db, &oid(&id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(o.status, OrderStatus::Paid);
    assert_eq!(o.paid_channel, Some(Channel::Wechat));
    // The second payment is refunded on its own, in full, through Alipay.
    let refund = refunds::refund_extra_payment(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        &alipay.out_trade_no,
        Some("paid twice"),
    )
    .await
    .expect("refund");
    assert_eq!(refund.status, RefundStatus::Succeeded, "{refund:?}");
    assert_eq!(refund.amount, Amount::from_fen(650).expect("amount"));
    assert_eq!(refund.out_trade_no, alipay.out_trade_no);
    // Not twice; and the order's own payment is untouched.
    assert!(refunds::refund_extra_payment(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        &alipay.out_trade_no,
        None
    )
    .await
    .is_err());
    let o = orders::get(&app.db, &oid(&id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(o.status, OrderStatus::Paid);
    assert_eq!(o.refunded_amount, Amount::ZERO);
    // The order's own payment can still be refunded in full.
    let own = refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        Amount::from_fen(650).expect("amount"),
        None,
    )
    .await
    .expect("refund");
    assert_eq!(own.out_trade_no, wechat.out_trade_no);
    assert_eq!(own.status, RefundStatus::Succeeded);
    app.stop().await.expect("stop");
}

async fn a_paid_answer_after_a_refused_close_is_checked_like_a_notification(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let id = order(&app, 990, 900).await;
        let attempt = app
            .payments
            .start_payment(&oid(&id), channel)
            .await
            .expect("code");
        // Paid at the provider with another amount than the order's, the notification lost.
        pay_in_wallet(
            &app,
            attempt.code_url.as_deref().expect("code"),
            "drop,wrong_amount",
        )
        .await;
        // The merchant closes the order: the provider refuses (paid), its query says paid —
        // but not for the order's amount. That answer never pays: the order closes unpaid and
        // a person is told (once, however often the provider is asked).
        let closed = app
            .payments
            .close_for_merchant(&MerchantId::demo(), &oid(&id), "test")
            .await
            .expect("closed");
        assert_eq!(closed.status, OrderStatus::Closed, "{channel}");
        let o = orders::get(&app.db, &oid(&id))
            .await
            .expect("read")
            .expect("order");
        assert_eq!(o.status, OrderStatus::Closed, "{channel}");
        assert!(o.paid_at.is_none(), "{channel}");
        assert_eq!(mismatches(&app, &id).await, 1, "{channel}");
        // Nobody keeps asking about it: another round of the active query adds nothing.
        server::payments::query::run_once(&app.payments)
            .await
            .expect("round");
        assert_eq!(mismatches(&app, &id).await, 1, "{channel}");
    }
    app.stop().await.expect("stop");
}
