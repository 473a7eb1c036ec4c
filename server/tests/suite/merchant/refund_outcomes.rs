//! Refund outcomes at the edges, against the sandbox's refund faults, on SQLite and
//! PostgreSQL: an answer that does not say (unknown, cut off) is pending and asked again,
//! never failed; a refund saved but not asked is finished by the worker and never made twice;
//! Alipay `fund_change=N` waits for the refund query; WeChat `ABNORMAL` keeps the money
//! reserved until the merchant sends it to the bank card; WeChat's refund notifications
//! settle refunds and never move one backwards; only a definitive refusal fails a refund.

use crate::common::oid;
use crate::common::{order_with_code, pay_in_wallet, sandbox_config, wait_for, TestApp, TestDb};
use app::money::Amount;
use server::merchants::MerchantId;
use server::orders::{self, OrderStatus};
use server::payments::refunds::{self, Refund, RefundError, RefundStatus};
use server::providers::{Channel, RefundNotice, RefundState};
use std::time::Duration;

on_both_engines!(
    an_answer_that_does_not_say_leaves_the_refund_pending_until_asked_again,
    a_refund_saved_but_never_asked_is_finished_by_the_worker_and_made_once,
    the_api_answers_a_saved_refund_as_pending_and_its_retry_makes_no_second,
    alipay_fund_change_n_waits_for_the_refund_query,
    a_wechat_abnormal_refund_keeps_the_money_reserved_until_sent_to_the_bank_card,
    wechat_refund_notifications_settle_a_refund_without_asking,
    only_a_definitive_refusal_fails_a_refund_and_releases_the_amount,
);

fn fen(n: i64) -> Amount {
    Amount::from_fen(n).expect("amount")
}

/// An order of `total` fen paid in the sandbox wallet through `channel`, the sandbox told to
/// treat its refunds with `faults`. Returns (order id, out_trade_no).
async fn paid_order(app: &TestApp, total: i64, channel: Channel, faults: &str) -> (String, String) {
    let (order, attempt) = order_with_code(app, total, channel).await;
    let id = order.id.as_str().to_string();
    pay_in_wallet(app, attempt.code_url.as_deref().expect("code"), faults).await;
    wait_for(app, &id, OrderStatus::Paid).await;
    (id, attempt.out_trade_no.into_string())
}

async fn order_of(app: &TestApp, id: &str) -> orders::Order {
    orders::get(&app.db, &oid(id))
        .await
        .expect("read")
        .expect("order")
}

async fn refund_of(app: &TestApp, id: &str) -> Refund {
    refunds::get(&app.payments, id)
        .await
        .expect("read")
        .expect("refund")
}

/// What the sandbox (the provider's side of the truth) has refunded of a trade, in fen.
async fn refunded_at_sandbox(db: &TestDb, out_trade_no: &str) -> i64 {
    use sqlx::Connection;
    let path = db.data_dir().join("sandbox").join("sandbox.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("sandbox database");
    let (refunded,): (i64,) =
        sqlx::query_as("SELECT refunded FROM sandbox_trades WHERE out_trade_no = ?1")
            .bind(out_trade_no)
            .fetch_one(&mut conn)
            .await
            .expect("sandbox trade");
    refunded
}

/// Makes a pending refund due now (as its backoff or lease would later) and runs worker
/// rounds until it is no longer pending; the background worker may take the round instead.
async fn ask_again_until_settled(app: &TestApp, id: &str) -> Refund {
    for _ in 0..100 {
        sqlx::query(
            "UPDATE refunds SET next_try_at = $1, claimed_until = NULL WHERE id = $2 AND status = 'pending'",
        )
        .bind(server::infra::clock::now_ms() - 1)
        .bind(id)
        .execute(app.db.pool())
        .await
        .expect("due");
        refunds::run_once(&app.payments).await.expect("round");
        let r = refund_of(app, id).await;
        if r.status != RefundStatus::Pending {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "refund {id} is still pending: {:?}",
        refund_of(app, id).await
    );
}

async fn an_answer_that_does_not_say_leaves_the_refund_pending_until_asked_again(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    // The sandbox makes each refund, then loses or spoils its first answer: Alipay 20000 /
    // ACQ.SYSTEM_ERROR, WeChat 500 SYSTEM_ERROR, or the answer cut off half-way.
    for (channel, fault) in [
        (Channel::Alipay, "refund_unknown"),
        (Channel::Alipay, "refund_cut"),
        (Channel::Wechat, "refund_unknown"),
        (Channel::Wechat, "refund_cut"),
    ] {
        let (id, trade) = paid_order(&app, 1_000, channel, fault).await;
        let refund = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(400),
            None,
        )
        .await
        .expect("admitted");
        assert_eq!(
            refund.status,
            RefundStatus::Pending,
            "{channel} {fault}: the provider may have refunded: {refund:?}"
        );
        assert_eq!(
            refunded_at_sandbox(&db, &trade).await,
            400,
            "{channel} {fault}"
        );
        // Still reserved: the merchant cannot refund the same money again meanwhile.
        assert!(
            matches!(
                refunds::request(
                    &app.payments,
                    &MerchantId::demo(),
                    &oid(&id),
                    fen(601),
                    None
                )
                .await,
                Err(RefundError::TooMuch { available: 600 })
            ),
            "{channel} {fault}"
        );
        let order = order_of(&app, &id).await;
        assert_eq!(order.status, OrderStatus::Paid, "{channel} {fault}");
        // Asked again with the same refund number: settled once.
        let done = ask_again_until_settled(&app, &refund.id).await;
        assert_eq!(
            done.status,
            RefundStatus::Succeeded,
            "{channel} {fault}: {done:?}"
        );
        let order = order_of(&app, &id).await;
        assert_eq!(
            order.status,
            OrderStatus::PartiallyRefunded,
            "{channel} {fault}"
        );
        assert_eq!(order.refunded_amount, fen(400), "{channel} {fault}");
        assert_eq!(
            refunded_at_sandbox(&db, &trade).await,
            400,
            "{channel} {fault}"
        );
    }
    app.stop().await.expect("stop");
}

async fn a_refund_saved_but_never_asked_is_finished_by_the_worker_and_made_once(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (id, trade) = paid_order(&app, 900, channel, "").await;
        // The request goes no further than saving the refund (a crash, a hang-up, a database
        // fault after the commit).
        server::infra::failpoints::arm(
            "refund.after_save",
            Some(&id),
            server::infra::failpoints::Action::Error,
            Some(1),
        );
        let refund = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(900),
            None,
        )
        .await
        .expect("a saved refund is the caller's answer, not an error");
        assert_eq!(refund.status, RefundStatus::Pending, "{channel}");
        assert_eq!(
            refunded_at_sandbox(&db, &trade).await,
            0,
            "{channel}: not asked yet"
        );
        // The worker owns it: once the request's lease is over it asks.
        let done = ask_again_until_settled(&app, &refund.id).await;
        assert_eq!(done.status, RefundStatus::Succeeded, "{channel}: {done:?}");
        assert_eq!(order_of(&app, &id).await.status, OrderStatus::Refunded);
        assert_eq!(refunded_at_sandbox(&db, &trade).await, 900, "{channel}");
    }
    app.stop().await.expect("stop");
}

async fn the_api_answers_a_saved_refund_as_pending_and_its_retry_makes_no_second(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let key = server::api_keys::create(&app.db, &MerchantId::demo(), "test")
        .await
        .expect("key")
        .1;
    let (id, trade) = paid_order(&app, 700, Channel::Alipay, "").await;
    server::infra::failpoints::arm(
        "refund.after_save",
        Some(&id),
        server::infra::failpoints::Action::Error,
        Some(1),
    );
    let post = || async {
        let r = app
            .client
            .post(app.url(&format!("/api/v1/orders/{id}/refunds")))
            .bearer_auth(&key)
            .header("idempotency-key", "refund-once")
            .json(&serde_json::json!({ "amount": 700 }))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let (status, first) = post().await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "pending", "{first}");
    // The shop retries with the same key: the same refund, not a second one.
    let (status, again) = post().await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], first["id"]);
    let all = refunds::for_order(&app.payments, &MerchantId::demo(), &oid(&id))
        .await
        .expect("refunds");
    assert_eq!(all.len(), 1, "{all:?}");
    let done = ask_again_until_settled(&app, &all[0].id).await;
    assert_eq!(done.status, RefundStatus::Succeeded);
    assert_eq!(refunded_at_sandbox(&db, &trade).await, 700);
    app.stop().await.expect("stop");
}

async fn alipay_fund_change_n_waits_for_the_refund_query(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    // Accepted but not done: Alipay answers 10000 with fund_change=N; its refund query says
    // REFUND_SUCCESS a (scaled) minute later.
    let (id, trade) = paid_order(&app, 500, Channel::Alipay, "refund_slow").await;
    let refund = refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        fen(200),
        None,
    )
    .await
    .expect("admitted");
    assert_eq!(refund.status, RefundStatus::Pending, "{refund:?}");
    assert_eq!(
        refund.provider_state.as_deref(),
        Some("fund_change=N"),
        "{refund:?}"
    );
    assert_eq!(order_of(&app, &id).await.refunded_amount, fen(0));
    let done = ask_again_until_settled(&app, &refund.id).await;
    assert_eq!(done.status, RefundStatus::Succeeded, "{done:?}");
    assert_eq!(done.provider_state.as_deref(), Some("SUCCESS"));
    let order = order_of(&app, &id).await;
    assert_eq!(order.refunded_amount, fen(200));
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    assert_eq!(refunded_at_sandbox(&db, &trade).await, 200);
    app.stop().await.expect("stop");
}

async fn a_wechat_abnormal_refund_keeps_the_money_reserved_until_sent_to_the_bank_card(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    let (id, trade) = paid_order(&app, 800, Channel::Wechat, "refund_abnormal").await;
    let refund = refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        fen(800),
        None,
    )
    .await
    .expect("admitted");
    assert_eq!(refund.status, RefundStatus::Abnormal, "{refund:?}");
    assert!(refund.provider_refund_no.is_some());
    // Neither refunded nor released: the money waits at WeChat.
    let order = order_of(&app, &id).await;
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.refunded_amount, fen(0));
    assert!(matches!(
        refunds::request(&app.payments, &MerchantId::demo(), &oid(&id), fen(1), None).await,
        Err(RefundError::TooMuch { available: 0 })
    ));
    let events: Vec<String> = orders::events(&app.db, &oid(&id))
        .await
        .expect("events")
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert!(events.iter().any(|k| k == "refund.abnormal"), "{events:?}");
    let topics: Vec<String> = server::outbox::for_order(&app.db, &oid(&id))
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| e.topic)
        .collect();
    assert!(topics.iter().any(|t| t == "refund.abnormal"), "{topics:?}");
    // Another merchant cannot act on it; a refund that is not abnormal cannot be sent.
    assert!(matches!(
        refunds::retry_abnormal(&app.payments, &MerchantId::from("mer_other"), &refund.id).await,
        Err(RefundError::NotFound(_))
    ));
    // The merchant sends it to the bank card: pending again (WeChat answers PROCESSING), then
    // done (the notification or the worker's query, whichever comes first).
    let sent = refunds::retry_abnormal(&app.payments, &MerchantId::demo(), &refund.id)
        .await
        .expect("sent to the bank card");
    assert_eq!(sent.status, RefundStatus::Pending, "{sent:?}");
    // A notification WeChat sent before the application still says ABNORMAL and may arrive
    // after it (the sandbox's own one raced the application in CI): it is a reason to ask,
    // never a way back to abnormal.
    let stale = RefundNotice {
        out_refund_no: refund.id.clone(),
        provider_refund_no: refund.provider_refund_no.clone(),
        state: RefundState::Abnormal,
        provider_state: "ABNORMAL".into(),
        refund: fen(800),
    };
    let applied = refunds::apply_notice(&app.payments, &oid(&id), &refund.out_trade_no, &stale)
        .await
        .expect("applied");
    assert_eq!(applied, Ok(false));
    let after = refund_of(&app, &refund.id).await;
    assert_ne!(after.status, RefundStatus::Abnormal, "{after:?}");
    let done = ask_again_until_settled(&app, &refund.id).await;
    assert_eq!(done.status, RefundStatus::Succeeded, "{done:?}");
    assert!(matches!(
        refunds::retry_abnormal(&app.payments, &MerchantId::demo(), &refund.id).await,
        Err(RefundError::NotAbnormal(_))
    ));
    let order = order_of(&app, &id).await;
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(order.refunded_amount, fen(800));
    assert_eq!(refunded_at_sandbox(&db, &trade).await, 800);
    app.stop().await.expect("stop");
}

async fn wechat_refund_notifications_settle_a_refund_without_asking(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    // PROCESSING at first; WeChat's REFUND.SUCCESS notification arrives a (scaled) minute
    // later at /notify/wechat. The worker's next question is 10 s away: only the
    // notification can settle it within this wait.
    let (id, _) = paid_order(&app, 600, Channel::Wechat, "refund_slow").await;
    let refund = refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        fen(600),
        None,
    )
    .await
    .expect("admitted");
    assert_eq!(refund.status, RefundStatus::Pending, "{refund:?}");
    assert_eq!(refund.provider_state.as_deref(), Some("PROCESSING"));
    let mut settled = refund_of(&app, &refund.id).await;
    for _ in 0..200 {
        if settled.status != RefundStatus::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        settled = refund_of(&app, &refund.id).await;
    }
    assert_eq!(settled.status, RefundStatus::Succeeded, "{settled:?}");
    let order = order_of(&app, &id).await;
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(order.refunded_amount, fen(600));
    // The notification is in the inbox, accepted, about this order. The inbox row is marked
    // just after the refund settles (the reply comes last), so it may take a moment.
    let mut decided = None;
    for _ in 0..200 {
        decided = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT outcome, reason FROM notifications WHERE order_id = $1 AND reason LIKE 'refund %' ORDER BY id DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(app.db.pool())
        .await
        .expect("inbox");
        if decided.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (outcome, reason) = decided.expect("the refund notification was stored and decided");
    assert_eq!(outcome, "accepted", "{reason:?}");
    assert_eq!(
        server::outbox::for_order(&app.db, &oid(&id))
            .await
            .expect("outbox")
            .iter()
            .filter(|e| e.topic == "refund.succeeded")
            .count(),
        1
    );
    app.stop().await.expect("stop");
}

async fn only_a_definitive_refusal_fails_a_refund_and_releases_the_amount(db: TestDb) {
    let app = TestApp::spawn_with(sandbox_config(&db)).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (id, trade) = paid_order(&app, 300, channel, "refund_refused").await;
        let refund = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(300),
            None,
        )
        .await
        .expect("admitted");
        assert_eq!(refund.status, RefundStatus::Failed, "{channel}: {refund:?}");
        assert!(refund.error.is_some());
        let order = order_of(&app, &id).await;
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.refunded_amount, fen(0));
        assert_eq!(refunded_at_sandbox(&db, &trade).await, 0);
        // Released: the amount can be asked for again (under a new refund number).
        let again = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(300),
            None,
        )
        .await
        .expect("admitted again");
        assert_ne!(again.id, refund.id);
    }
    app.stop().await.expect("stop");
}
