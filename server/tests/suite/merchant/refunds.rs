//! Refunds through the sandbox providers, on SQLite and PostgreSQL: partial refunds that sum
//! up to the paid amount and never beyond (also when concurrent), the order's status, the
//! outbox events, and a refund the provider could not take at once, finished by the worker.

use crate::common::oid;
use crate::common::{order_with_code, pay_in_wallet, sandbox_config, wait_for, TestApp, TestDb};
use app::money::Amount;
use server::merchants::MerchantId;
use server::merchants::DEMO_MERCHANT_ID;
use server::orders::{self, NewOrder, OrderStatus};
use server::payments::refunds::{self, RefundError, RefundStatus};
use server::providers::Channel;

on_both_engines!(
    partial_refunds_sum_up_to_the_paid_amount_and_never_beyond,
    concurrent_refunds_never_exceed_the_paid_amount,
    unpaid_foreign_or_malformed_refunds_are_refused_and_change_nothing,
    a_refund_the_provider_cannot_take_now_is_finished_by_the_worker,
);

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(sandbox_config(db)).await
}

fn fen(n: i64) -> Amount {
    Amount::from_fen(n).expect("amount")
}

/// An order of `total` fen paid in the sandbox wallet through `channel`.
async fn paid_order(app: &TestApp, total: i64, channel: Channel) -> String {
    let (order, attempt) = order_with_code(app, total, channel).await;
    let id = order.id.as_str().to_string();
    pay_in_wallet(app, attempt.code_url.as_deref().expect("code"), "").await;
    wait_for(app, &id, OrderStatus::Paid).await;
    id
}

async fn order_of(app: &TestApp, id: &str) -> orders::Order {
    orders::get(&app.db, &oid(id))
        .await
        .expect("read")
        .expect("order")
}

async fn outbox_topics(app: &TestApp, id: &str) -> Vec<String> {
    server::outbox::for_order(&app.db, &oid(id))
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| e.topic)
        .collect()
}

async fn partial_refunds_sum_up_to_the_paid_amount_and_never_beyond(db: TestDb) {
    let app = app(&db).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let id = paid_order(&app, 1_000, channel).await;
        let first = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(300),
            Some("one cup short"),
        )
        .await
        .expect("refund");
        assert_eq!(
            first.status,
            RefundStatus::Succeeded,
            "{channel}: {first:?}"
        );
        assert!(first.provider_refund_no.is_some());
        let order = order_of(&app, &id).await;
        assert_eq!(order.status, OrderStatus::PartiallyRefunded);
        assert_eq!(order.refunded_amount, fen(300));
        // More than what is left: refused, nothing changes.
        match refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(701),
            None,
        )
        .await
        {
            Err(RefundError::TooMuch { available }) => assert_eq!(available, 700),
            other => panic!("{channel}: {other:?}"),
        }
        assert_eq!(order_of(&app, &id).await, order);
        let rest = refunds::request(
            &app.payments,
            &MerchantId::demo(),
            &oid(&id),
            fen(700),
            None,
        )
        .await
        .expect("refund");
        assert_eq!(rest.status, RefundStatus::Succeeded);
        let order = order_of(&app, &id).await;
        assert_eq!(order.status, OrderStatus::Refunded);
        assert_eq!(order.refunded_amount, fen(1_000));
        match refunds::request(&app.payments, &MerchantId::demo(), &oid(&id), fen(1), None).await {
            Err(RefundError::NotRefundable(OrderStatus::Refunded)) => {}
            other => panic!("{channel}: {other:?}"),
        }
        let listed = refunds::for_order(&app.payments, &MerchantId::demo(), &oid(&id))
            .await
            .expect("refunds");
        assert_eq!(
            listed.iter().map(|r| r.amount.fen()).collect::<Vec<_>>(),
            vec![300, 700]
        );
        assert_eq!(listed[0].reason.as_deref(), Some("one cup short"));
        let topics = outbox_topics(&app, &id).await;
        assert_eq!(
            topics.iter().filter(|t| *t == "refund.succeeded").count(),
            2,
            "{topics:?}"
        );
    }
    app.stop().await.expect("stop");
}

async fn concurrent_refunds_never_exceed_the_paid_amount(db: TestDb) {
    let app = app(&db).await;
    let id = paid_order(&app, 1_000, Channel::Wechat).await;
    let demo = MerchantId::demo();
    let id = oid(&id);
    let results = futures::future::join_all(
        (0..8).map(|_| refunds::request(&app.payments, &demo, &id, fen(300), None)),
    )
    .await;
    // A provider may answer one of them with a transient fault (the sandbox's own SQLite can
    // be busy under this burst): that refund stays pending, its amount reserved, and the
    // worker finishes it.
    let admitted: Vec<&refunds::Refund> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(RefundError::TooMuch { .. })))
        .count();
    assert_eq!((admitted.len(), refused), (3, 5), "{results:?}");
    for _ in 0..20 {
        let pending: Vec<&&refunds::Refund> = admitted
            .iter()
            .filter(|r| r.status == RefundStatus::Pending)
            .collect();
        if pending.is_empty() {
            break;
        }
        sqlx::query("UPDATE refunds SET next_try_at = $1 WHERE status = 'pending'")
            .bind(server::infra::clock::now_ms() - 1)
            .execute(app.db.pool())
            .await
            .expect("due");
        refunds::run_once(&app.payments).await.expect("round");
        let mut done = true;
        for r in &pending {
            let now = refunds::get(&app.payments, &r.id)
                .await
                .expect("read")
                .expect("refund");
            done &= now.status == RefundStatus::Succeeded;
        }
        if done {
            break;
        }
    }
    for r in &admitted {
        let now = refunds::get(&app.payments, &r.id)
            .await
            .expect("read")
            .expect("refund");
        assert_eq!(now.status, RefundStatus::Succeeded, "{now:?}");
    }
    let order = order_of(&app, id.as_str()).await;
    assert_eq!(order.refunded_amount, fen(900));
    assert_eq!(order.status, OrderStatus::PartiallyRefunded);
    app.stop().await.expect("stop");
}

async fn unpaid_foreign_or_malformed_refunds_are_refused_and_change_nothing(db: TestDb) {
    let app = app(&db).await;
    let unpaid = orders::create(
        &app.db,
        &NewOrder {
            merchant_id: DEMO_MERCHANT_ID.into(),
            amount: fen(500),
            subject: "Unpaid".into(),
            expires_in_secs: 900,
            return_url: None,
        },
        None,
    )
    .await
    .expect("order");
    match refunds::request(&app.payments, &MerchantId::demo(), &unpaid.id, fen(1), None).await {
        Err(RefundError::NotRefundable(OrderStatus::Created)) => {}
        other => panic!("{other:?}"),
    }
    let paid = paid_order(&app, 500, Channel::Alipay).await;
    // Another merchant's order is "not found", never "forbidden".
    match refunds::request(
        &app.payments,
        &MerchantId::from("mer_other"),
        &oid(&paid),
        fen(1),
        None,
    )
    .await
    {
        Err(RefundError::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
    // A refund of nothing is the caller's mistake (a field error), not a server fault.
    match refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&paid),
        fen(0),
        None,
    )
    .await
    {
        Err(RefundError::Zero) => {}
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(refunds::MAX_REASON_CHARS + 1);
    match refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&paid),
        fen(1),
        Some(&long),
    )
    .await
    {
        Err(RefundError::Reason) => {}
        other => panic!("{other:?}"),
    }
    let order = order_of(&app, &paid).await;
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.refunded_amount, fen(0));
    assert!(
        refunds::for_order(&app.payments, &MerchantId::demo(), &oid(&paid))
            .await
            .expect("refunds")
            .is_empty()
    );
    app.stop().await.expect("stop");
}

async fn a_refund_the_provider_cannot_take_now_is_finished_by_the_worker(db: TestDb) {
    let app = app(&db).await;
    let id = paid_order(&app, 800, Channel::Alipay).await;
    // The provider is unreachable for the first call.
    server::infra::failpoints::arm(
        "refund.ask_provider",
        Some(&id),
        server::infra::failpoints::Action::Error,
        Some(1),
    );
    let refund = refunds::request(
        &app.payments,
        &MerchantId::demo(),
        &oid(&id),
        fen(800),
        None,
    )
    .await
    .expect("admitted");
    assert_eq!(refund.status, RefundStatus::Pending);
    assert!(refund
        .error
        .as_deref()
        .is_some_and(|e| e.contains("injected")));
    let order = order_of(&app, &id).await;
    assert_eq!(order.status, OrderStatus::Paid, "nothing refunded yet");
    // The amount is reserved: no second refund can take it meanwhile.
    assert!(matches!(
        refunds::request(&app.payments, &MerchantId::demo(), &oid(&id), fen(1), None).await,
        Err(RefundError::TooMuch { available: 0 })
    ));
    // Make it due now, as the backoff would later.
    sqlx::query("UPDATE refunds SET next_try_at = $1 WHERE id = $2")
        .bind(server::infra::clock::now_ms() - 1)
        .bind(&refund.id)
        .execute(app.db.pool())
        .await
        .expect("due");
    assert_eq!(refunds::run_once(&app.payments).await.expect("round"), 1);
    let done = refunds::get(&app.payments, &refund.id)
        .await
        .expect("read")
        .expect("refund");
    assert_eq!(done.status, RefundStatus::Succeeded);
    let order = order_of(&app, &id).await;
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(order.refunded_amount, fen(800));
    app.stop().await.expect("stop");
}
