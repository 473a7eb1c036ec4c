//! The order state machine on SQLite and PostgreSQL: every allowed transition happens (status,
//! timeline event) and every forbidden one changes nothing; concurrent attempts at one
//! transition succeed exactly once; a payment after expiry is kept and flagged late.

use crate::common;
use crate::common::oid;

use app::money::Amount;
use common::TestDb;
use server::infra::db::Db;
use server::orders::{self, NewOrder, OrderError, OrderStatus};

on_both_engines!(
    every_transition_is_allowed_or_refused_as_the_state_machine_says,
    concurrent_attempts_at_one_transition_succeed_once,
    a_payment_after_expiry_is_kept_and_flagged_late,
    orders_are_created_with_an_id_both_providers_accept,
);

async fn setup(db: &TestDb) -> Db {
    let conn = Db::connect(&db.url, 8).await.expect("connect");
    conn.migrate().await.expect("migrate");
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind("mch_test")
        .bind("Test shop")
        .bind(0_i64)
        .execute(conn.pool())
        .await
        .expect("merchant");
    conn
}

/// A 15-minute order of `fen` for `merchant`.
fn order_of(merchant: &str, fen: i64) -> NewOrder {
    NewOrder {
        merchant_id: merchant.into(),
        amount: Amount::from_fen(fen).expect("amount"),
        subject: "测试订单 Test".into(),
        expires_in_secs: 900,
        return_url: None,
    }
}

async fn new_order(conn: &Db) -> orders::Order {
    orders::create(conn, &order_of("mch_test", 1234), None)
        .await
        .expect("create")
}

async fn events(conn: &Db, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM order_events WHERE order_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(conn.pool())
        .await
        .expect("events")
}

/// Test set-up only: puts an order straight into a status, bypassing the state machine.
async fn force_status(conn: &Db, id: &str, status: OrderStatus) {
    sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(id)
        .execute(conn.pool())
        .await
        .expect("force");
}

async fn every_transition_is_allowed_or_refused_as_the_state_machine_says(db: TestDb) {
    let conn = setup(&db).await;
    let mut allowed = 0;
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            let order = new_order(&conn).await;
            let id = order.id.as_str().to_string();
            force_status(&conn, &id, from).await;
            let before = events(&conn, &id).await;
            let result =
                orders::transition(&conn, &oid(&id), to, serde_json::json!({"by": "test"})).await;
            let after = orders::get(&conn, &oid(&id))
                .await
                .expect("get")
                .expect("exists");
            if to.predecessors().contains(&from) {
                allowed += 1;
                let t = result.unwrap_or_else(|e| panic!("{from} → {to} must be allowed: {e}"));
                assert_eq!(t.to, to);
                assert_eq!(after.status, to, "{from} → {to}");
                assert_eq!(
                    events(&conn, &id).await.last().map(String::as_str),
                    Some(format!("status.{to}").as_str())
                );
                assert_eq!(
                    events(&conn, &id).await.len(),
                    before.len() + 1,
                    "one event per transition"
                );
            } else {
                match result {
                    Err(OrderError::Forbidden {
                        from: found,
                        to: asked,
                    }) => assert_eq!((found, asked), (from, to)),
                    other => panic!("{from} → {to} must be refused, got {other:?}"),
                }
                assert_eq!(after.status, from, "{from} → {to} changed nothing");
                assert_eq!(
                    events(&conn, &id).await,
                    before,
                    "{from} → {to} wrote no event"
                );
            }
        }
    }
    assert_eq!(allowed, 11, "the eleven arrows of the state machine");
    assert!(matches!(
        orders::transition(
            &conn,
            &oid("NO_SUCH_ORDER"),
            OrderStatus::Paid,
            serde_json::json!({})
        )
        .await,
        Err(OrderError::NotFound(_))
    ));
}

async fn concurrent_attempts_at_one_transition_succeed_once(db: TestDb) {
    let conn = setup(&db).await;
    let order = new_order(&conn).await;
    let id = order.id.as_str().to_string();
    orders::transition(
        &conn,
        &oid(&id),
        OrderStatus::Pending,
        serde_json::json!({}),
    )
    .await
    .expect("pending");
    let attempts = (0..16).map(|_| {
        let conn = conn.clone();
        let id = id.clone();
        tokio::spawn(async move {
            orders::transition(&conn, &oid(&id), OrderStatus::Paid, serde_json::json!({})).await
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "exactly one of 16 concurrent payments wins: {results:?}"
    );
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(
                r,
                Err(OrderError::Forbidden {
                    from: OrderStatus::Paid,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    let paid_events = events(&conn, &id)
        .await
        .iter()
        .filter(|k| *k == "status.paid")
        .count();
    assert_eq!(paid_events, 1);
    let o = orders::get(&conn, &oid(&id))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(o.status, OrderStatus::Paid);
    assert!(o.paid_at.is_some());
}

async fn a_payment_after_expiry_is_kept_and_flagged_late(db: TestDb) {
    let conn = setup(&db).await;
    let order = new_order(&conn).await;
    let id = order.id.as_str().to_string();
    orders::transition(
        &conn,
        &oid(&id),
        OrderStatus::Pending,
        serde_json::json!({}),
    )
    .await
    .expect("pending");
    orders::transition(
        &conn,
        &oid(&id),
        OrderStatus::Expired,
        serde_json::json!({}),
    )
    .await
    .expect("expired");
    let t = orders::transition(
        &conn,
        &oid(&id),
        OrderStatus::Paid,
        serde_json::json!({"trade_no": "T1"}),
    )
    .await
    .expect("late pay");
    assert!(t.late);
    let o = orders::get(&conn, &oid(&id))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((o.status, o.late), (OrderStatus::Paid, true));
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM order_events WHERE order_id = $1 AND kind = 'status.paid'",
    )
    .bind(&id)
    .fetch_one(conn.pool())
    .await
    .expect("event");
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(
        (detail["late"].as_bool(), detail["trade_no"].as_str()),
        (Some(true), Some("T1"))
    );

    // An on-time payment is not late.
    let other = new_order(&conn).await;
    orders::transition(
        &conn,
        &other.id,
        OrderStatus::Pending,
        serde_json::json!({}),
    )
    .await
    .expect("pending");
    let t = orders::transition(&conn, &other.id, OrderStatus::Paid, serde_json::json!({}))
        .await
        .expect("pay");
    assert!(!t.late);
    assert!(
        !orders::get(&conn, &other.id)
            .await
            .expect("get")
            .expect("exists")
            .late
    );
}

async fn orders_are_created_with_an_id_both_providers_accept(db: TestDb) {
    let conn = setup(&db).await;
    let order = new_order(&conn).await;
    assert!(server::orders::OrderId::parse(order.id.as_str()).is_some());
    assert_eq!(order.status, OrderStatus::Created);
    assert_eq!(order.amount.fen(), 1234);
    assert_eq!(order.subject, "测试订单 Test");
    assert!(order.expires_at - order.created_at >= 900_000);
    assert_eq!(
        events(&conn, order.id.as_str()).await,
        vec!["status.created".to_string()]
    );
    let bad = orders::create(&conn, &order_of("mch_test", 0), None).await;
    assert!(matches!(bad, Err(OrderError::ZeroAmount)));
    let no_subject = orders::create(
        &conn,
        &NewOrder {
            subject: String::new(),
            ..order_of("mch_test", 1)
        },
        None,
    )
    .await;
    assert!(matches!(no_subject, Err(OrderError::Subject)));
    let long_subject = orders::create(
        &conn,
        &NewOrder {
            subject: "字".repeat(128),
            ..order_of("mch_test", 1)
        },
        None,
    )
    .await;
    assert!(
        matches!(long_subject, Err(OrderError::Subject)),
        "128 characters is one too many"
    );
    let unknown_merchant = orders::create(&conn, &order_of("mch_nobody", 1), None).await;
    assert!(
        unknown_merchant.is_err(),
        "the foreign key refuses an order of no merchant"
    );
}
