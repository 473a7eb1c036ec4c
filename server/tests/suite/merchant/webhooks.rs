//! Webhooks to the merchant, on SQLite and PostgreSQL: events from the outbox POSTed to a
//! local receiver, signed (checked by Node's crypto as a merchant's receiver would), retried on
//! the schedule (time scaled) until the first 2xx or given up, logged, redelivered by hand.

use crate::common::oid;
use crate::common::{order_with_code, sandbox_config, TestApp, TestDb};
use server::merchants::MerchantId;
use server::merchants::DEMO_MERCHANT_ID;
use server::providers::Channel;
use server::webhooks::{self, SCHEDULE_SECS};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_engines!(
    events_are_signed_retried_on_schedule_and_stop_at_the_first_2xx,
    an_endpoint_that_never_answers_2xx_is_given_up_after_the_schedule,
    redelivery_by_hand_uses_the_rotated_secret_and_stays_within_the_merchant,
    a_merchant_without_an_endpoint_gets_nothing_sent,
    a_webhook_to_an_internal_address_is_refused,
);

/// The attack: a merchant (or, through the demo, anyone) set its webhook to an internal
/// service and read the answer in the order timeline. Refused when set, for every form of an
/// internal address and a name resolving to one, and again when sending (a URL stored
/// before, or a name whose address changed).
async fn a_webhook_to_an_internal_address_is_refused(db: TestDb) {
    let mut config = sandbox_config(&db);
    config.webhook_time_scale = 0.001;
    config.allow_private_targets = Default::default();
    let app = TestApp::spawn_with(config).await;
    let hooks = receiver(vec![200]).await;
    let port = hooks
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port");
    for url in [
        hooks.url.clone(),
        format!("http://[::1]:{port}/hooks"),
        format!("http://localhost:{port}/hooks"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::ffff:127.0.0.1]/x".to_string(),
        "http://10.0.0.5/x".to_string(),
        "http://0.0.0.0/x".to_string(),
    ] {
        match app.webhooks.set_endpoint(&MerchantId::demo(), &url).await {
            Err(webhooks::WebhookError::Url(why)) => {
                let why = why.to_string();
                assert!(
                    why.contains("SCANPAY_ALLOW_PRIVATE_TARGETS"),
                    "{url}: {why}"
                );
            }
            other => panic!("{url} was not refused: {other:?}"),
        }
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT webhook_url FROM merchants WHERE id = $1")
            .bind(DEMO_MERCHANT_ID)
            .fetch_one(app.db.pool())
            .await
            .expect("merchant");
    assert_eq!(stored, None, "a refused URL changes nothing");
    // A loopback URL already stored (set before this check existed) is refused when sending.
    sqlx::query("UPDATE merchants SET webhook_url = $1, webhook_secret = 'whsec_x' WHERE id = $2")
        .bind(&hooks.url)
        .bind(DEMO_MERCHANT_ID)
        .execute(app.db.pool())
        .await
        .expect("store");
    let (_, event_id) = paid_order(&app).await;
    let log = {
        let mut log = Vec::new();
        for _ in 0..200 {
            log = webhooks::log(&app.db, &event_id).await.expect("log");
            if !log.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        log
    };
    assert!(!log.is_empty(), "the delivery was tried");
    assert_eq!(log[0].status, None, "{log:?}");
    assert!(
        log[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("refused"),
        "{log:?}"
    );
    assert!(
        hooks.seen().is_empty(),
        "nothing reached the internal address"
    );
    app.stop().await.expect("stop");
}

/// What the receiver saw: the signature header, event id header and body of each request.
#[derive(Clone, Debug)]
struct Seen {
    signature: String,
    event_id: String,
    body: String,
}

/// The receiver's state: what it saw, and its script of answers.
type ReceiverState = (Arc<Mutex<Vec<Seen>>>, Arc<Vec<u16>>);

/// A local HTTP receiver answering each request with the next scripted status (the last one
/// repeats).
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn receiver(script: Vec<u16>) -> Receiver {
    use axum::extract::State;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let state = (seen.clone(), Arc::new(script));
    let app = axum::Router::new()
        .route(
            "/hooks",
            axum::routing::post(
                |State((seen, script)): State<ReceiverState>,
                 headers: http::HeaderMap,
                 body: String| async move {
                    let mut seen = seen.lock().expect("lock");
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    seen.push(Seen {
                        signature: header("scanpay-signature"),
                        event_id: header("scanpay-event-id"),
                        body,
                    });
                    let status = script
                        .get(seen.len() - 1)
                        .or(script.last())
                        .copied()
                        .unwrap_or(200);
                    (
                        http::StatusCode::from_u16(status).expect("status"),
                        format!("answer {}", seen.len()),
                    )
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hooks"),
        seen,
    }
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn app(db: &TestDb, time_scale: f64) -> TestApp {
    let mut config = sandbox_config(db);
    config.webhook_time_scale = time_scale;
    TestApp::spawn_with(config).await
}

/// An order of the demo merchant made paid (its `order.paid` event enters the outbox);
/// returns the order id and the event id.
async fn paid_order(app: &TestApp) -> (String, String) {
    let (order, attempt) = order_with_code(app, 2_580, Channel::Wechat).await;
    let id = order.id.as_str().to_string();
    app.payments
        .record_payment(
            &attempt,
            Some("4200000000000000000000000001"),
            serde_json::json!({ "source": "test" }),
        )
        .await
        .expect("paid");
    let event = server::outbox::for_order(&app.db, &oid(&id))
        .await
        .expect("outbox")
        .into_iter()
        .find(|e| e.topic == "order.paid")
        .expect("order.paid event");
    (id, event.event_id)
}

/// Waits until the event's delivery is `want`.
async fn wait_delivery(app: &TestApp, event_id: &str, want: &str) -> webhooks::DeliveryState {
    let mut state = webhooks::state(&app.db, event_id).await.expect("state");
    for _ in 0..400 {
        if state.delivery.as_str() == want {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        state = webhooks::state(&app.db, event_id).await.expect("state");
    }
    panic!("event {event_id} is {state:?}, not {want}");
}

/// Node's crypto checks the signature header over the body with `secret`.
fn verifies(secret: &str, seen: &Seen) -> bool {
    let answer = crate::common::node(serde_json::json!({
        "op": "webhook.verify",
        "secret": secret,
        "header": seen.signature,
        "body": seen.body,
    }));
    answer["valid"] == serde_json::json!(true)
}

async fn events_are_signed_retried_on_schedule_and_stop_at_the_first_2xx(db: TestDb) {
    let app = app(&db, 0.001).await;
    let hooks = receiver(vec![500, 503, 204]).await;
    let secret = app
        .webhooks
        .set_endpoint(&MerchantId::demo(), &hooks.url)
        .await
        .expect("endpoint");
    assert!(secret.starts_with("whsec_"));
    let (order_id, event_id) = paid_order(&app).await;
    let state = wait_delivery(&app, &event_id, "delivered").await;
    assert_eq!(state.attempts, 3);
    // Nothing more is sent once delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = hooks.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for s in &seen {
        assert_eq!(s.event_id, event_id);
        assert!(verifies(&secret, s), "signature verifies: {s:?}");
        assert!(!verifies("whsec_wrong", s), "and only with the secret");
        let body: serde_json::Value = serde_json::from_str(&s.body).expect("JSON");
        assert_eq!(body["id"], event_id.as_str());
        assert_eq!(body["type"], "order.paid");
        assert_eq!(body["data"]["order_id"], order_id.as_str());
        assert_eq!(body["data"]["amount"], 2_580);
        assert_eq!(body["data"]["currency"], "CNY");
    }
    // A changed body no longer verifies.
    let mut tampered = seen[2].clone();
    tampered.body = tampered.body.replace("2580", "1");
    assert!(!verifies(&secret, &tampered));
    // The log: every attempt with its answer, each retry after the scheduled wait.
    let log = webhooks::log(&app.db, &event_id).await.expect("log");
    let statuses: Vec<Option<i64>> = log.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![Some(500), Some(503), Some(204)]);
    assert_eq!(log[0].response.as_deref(), Some("answer 1"));
    for (i, pair) in log.windows(2).enumerate() {
        let wait_ms = (SCHEDULE_SECS[i] as f64 * 1000.0 * 0.001) as i64;
        assert!(
            pair[1].at - pair[0].at >= wait_ms,
            "attempt {} came {} ms after the previous, before the scheduled {wait_ms} ms",
            i + 2,
            pair[1].at - pair[0].at
        );
    }
    app.stop().await.expect("stop");
}

async fn an_endpoint_that_never_answers_2xx_is_given_up_after_the_schedule(db: TestDb) {
    // The whole ~24-hour schedule in about a second.
    let app = app(&db, 0.000_01).await;
    let hooks = receiver(vec![500]).await;
    app.webhooks
        .set_endpoint(&MerchantId::demo(), &hooks.url)
        .await
        .expect("endpoint");
    let (_, event_id) = paid_order(&app).await;
    let state = wait_delivery(&app, &event_id, "failed").await;
    let expected = SCHEDULE_SECS.len() as i64 + 1;
    assert_eq!(state.attempts, expected);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hooks.seen().len() as i64,
        expected,
        "no attempt after giving up"
    );
    let log = webhooks::log(&app.db, &event_id).await.expect("log");
    assert_eq!(log.len() as i64, expected);
    assert!(log.iter().all(|a| a.status == Some(500) && !a.manual));
    app.stop().await.expect("stop");
}

async fn redelivery_by_hand_uses_the_rotated_secret_and_stays_within_the_merchant(db: TestDb) {
    let app = app(&db, 0.001).await;
    let hooks = receiver(vec![200]).await;
    let old = app
        .webhooks
        .set_endpoint(&MerchantId::demo(), &hooks.url)
        .await
        .expect("endpoint");
    let (_, event_id) = paid_order(&app).await;
    wait_delivery(&app, &event_id, "delivered").await;
    let new = webhooks::rotate_secret(&app.db, &MerchantId::demo())
        .await
        .expect("rotate");
    assert_ne!(old, new);
    let sender = app.webhooks.clone();
    assert!(sender
        .redeliver(&MerchantId::demo(), &event_id)
        .await
        .expect("redeliver"));
    let seen = hooks.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].event_id, event_id, "the same event, again");
    assert!(verifies(&new, &seen[1]) && !verifies(&old, &seen[1]));
    let log = webhooks::log(&app.db, &event_id).await.expect("log");
    assert_eq!(
        log.iter().map(|a| a.manual).collect::<Vec<_>>(),
        vec![false, true]
    );
    // Another merchant cannot redeliver (or learn of) this event.
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ('mer_other', 'Other', 0)")
        .execute(app.db.pool())
        .await
        .expect("merchant");
    assert!(matches!(
        sender
            .redeliver(&MerchantId::from("mer_other"), &event_id)
            .await,
        Err(webhooks::WebhookError::NoEvent(_))
    ));
    assert_eq!(hooks.seen().len(), 2);
    // A bad endpoint URL is refused and changes nothing.
    assert!(matches!(
        app.webhooks
            .set_endpoint(&MerchantId::demo(), "ftp://shop.example/hooks")
            .await,
        Err(webhooks::WebhookError::Url(_))
    ));
    app.stop().await.expect("stop");
}

async fn a_merchant_without_an_endpoint_gets_nothing_sent(db: TestDb) {
    let app = app(&db, 0.001).await;
    let (_, event_id) = paid_order(&app).await;
    let state = wait_delivery(&app, &event_id, "no_endpoint").await;
    assert_eq!(state.attempts, 0);
    assert!(webhooks::log(&app.db, &event_id)
        .await
        .expect("log")
        .is_empty());
    app.stop().await.expect("stop");
}
