//! The merchant API `/api/v1` over HTTP, on SQLite and PostgreSQL: every endpoint, the error
//! format, idempotency (replay, conflict, concurrency), isolation between merchants, refunds
//! against the sandbox, and the per-key rate limit.

use crate::common::{pay_in_wallet, sandbox_config, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::merchants::MerchantId;
use server::merchants::DEMO_MERCHANT_ID;
use sqlx::Row;
use std::time::Duration;

on_both_engines!(
    orders_are_created_read_listed_and_closed,
    errors_are_json_and_name_the_field,
    idempotency_replays_refuses_reuse_and_never_creates_two_orders,
    merchants_never_see_each_others_orders,
    refunds_through_the_api,
    each_key_is_rate_limited,
    limits_kept_in_the_database_are_atomic,
    the_openapi_document_describes_the_real_answers,
    the_api_asks_for_a_pay_method,
);

async fn app_with(db: &TestDb, rate: u32) -> TestApp {
    let mut config = sandbox_config(db);
    config.api_rate_per_minute = rate;
    TestApp::spawn_with(config).await
}

async fn app(db: &TestDb) -> TestApp {
    app_with(db, 10_000).await
}

async fn key_for(app: &TestApp, merchant: &str) -> String {
    sqlx::query("INSERT INTO merchants (id, name, created_at) VALUES ($1, $1, 0) ON CONFLICT (id) DO NOTHING")
        .bind(merchant)
        .execute(app.db.pool())
        .await
        .expect("merchant");
    server::api_keys::create(&app.db, &merchant.into(), "test")
        .await
        .expect("key")
        .1
}

struct Api<'a> {
    app: &'a TestApp,
    key: String,
}

impl Api<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        idempotency: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(&format!("/api/v1{path}")))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        if let Some(k) = idempotency {
            req = req.header("idempotency-key", k);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.text().await.expect("body"))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(reqwest::Method::POST, path, Some(&body.to_string()), None)
            .await;
        (s, serde_json::from_str(&b).expect("JSON"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.send(reqwest::Method::GET, path, None, None).await;
        (s, serde_json::from_str(&b).expect("JSON"))
    }
}

fn tea(amount: i64) -> Value {
    json!({ "amount": amount, "currency": "CNY", "subject": "Tieguanyin" })
}

async fn count_orders(app: &TestApp, merchant: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM orders WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(app.db.pool())
        .await
        .expect("count")
        .try_get(0)
        .expect("n")
}

async fn orders_are_created_read_listed_and_closed(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    let mut body = tea(1_234);
    body["metadata"] = json!({ "sku": "TGY-50g" });
    body["return_url"] = json!("https://shop.example/thanks");
    body["expires_in"] = json!(600);
    let (status, order) = api.post("/orders", body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_string();
    assert_eq!(order["status"], "created");
    assert_eq!(order["amount"], 1_234);
    assert_eq!(order["currency"], "CNY");
    assert_eq!(order["metadata"]["sku"], "TGY-50g");
    assert_eq!(
        order["expires_at"].as_i64().expect("expires_at")
            - order["created_at"].as_i64().expect("created"),
        600
    );
    let checkout = order["checkout_url"].as_str().expect("checkout_url");
    assert!(checkout.ends_with(&format!("/checkout/{id}")));
    assert_eq!(
        app.client
            .get(checkout)
            .send()
            .await
            .expect("page")
            .status(),
        200
    );
    let aggregate = order["aggregate_url"].as_str().expect("aggregate_url");
    assert!(aggregate.contains("/q/"));
    assert!(order.get("code_url").is_none(), "no code without a channel");
    assert_eq!(
        api.get(&format!("/orders/{id}")).await,
        (StatusCode::OK, order.clone())
    );

    // With a channel: the prepay result comes back at once.
    let mut body = tea(500);
    body["channel"] = json!("wechat");
    let (status, with_code) = api.post("/orders", body).await;
    assert_eq!(status, StatusCode::CREATED, "{with_code}");
    assert!(
        with_code["code_url"]
            .as_str()
            .is_some_and(|u| u.contains("/sandbox/")),
        "{with_code}"
    );
    assert_eq!(with_code["status"], "pending");

    // Listing: newest first, cursor paging, status filter.
    api.post("/orders", tea(700)).await;
    let (_, page1) = api.get("/orders?limit=2").await;
    assert_eq!(page1["data"].as_array().expect("data").len(), 2);
    assert_eq!(page1["has_more"], true);
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let (_, page2) = api
        .get(&format!("/orders?limit=2&starting_after={cursor}"))
        .await;
    let ids: Vec<&str> = page1["data"]
        .as_array()
        .into_iter()
        .chain(page2["data"].as_array())
        .flatten()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids.last(),
        Some(&id.as_str()),
        "the first order is the oldest"
    );
    assert_eq!(page2["has_more"], false);
    let (_, pending) = api.get("/orders?status=pending").await;
    assert_eq!(pending["data"].as_array().expect("data").len(), 1);

    // Closing: the code is closed at the provider, the order is closed; again is the same.
    let wid = with_code["id"].as_str().expect("id");
    let (status, closed) = api.post(&format!("/orders/{wid}/close"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    let (status, again) = api.post(&format!("/orders/{wid}/close"), json!({})).await;
    assert_eq!(
        (status, again["status"].clone()),
        (StatusCode::OK, json!("closed"))
    );
    app.stop().await.expect("stop");
}

async fn errors_are_json_and_name_the_field(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    // Authentication.
    for auth in [None, Some("Bearer sk_not_a_key"), Some("Basic abc")] {
        let mut req = app.client.get(app.url("/api/v1/orders"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // Validation names the field, and creates nothing.
    let cases = [
        (
            json!({ "amount": "12.34", "currency": "CNY", "subject": "x" }),
            "amount",
        ),
        (
            json!({ "amount": 0, "currency": "CNY", "subject": "x" }),
            "amount",
        ),
        (
            json!({ "amount": 100, "currency": "USD", "subject": "x" }),
            "currency",
        ),
        (
            json!({ "amount": 100, "currency": "CNY", "subject": "" }),
            "subject",
        ),
        (
            json!({ "amount": 100, "currency": "CNY", "subject": "x", "expires_in": 1 }),
            "expires_in",
        ),
        (
            json!({ "amount": 100, "currency": "CNY", "subject": "x", "return_url": "ftp://x" }),
            "return_url",
        ),
        (
            json!({ "amount": 100, "currency": "CNY", "subject": "x", "channel": "paypal" }),
            "channel",
        ),
        (
            json!({ "amount": 100, "currency": "CNY", "subject": "x", "metadata": [1] }),
            "metadata",
        ),
    ];
    for (body, field) in cases {
        let (status, error) = api.post("/orders", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        assert_eq!(error["error"]["field"], field, "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{error}"
        );
    }
    let (status, _, text) = api
        .send(reqwest::Method::POST, "/orders", Some("{not json"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid_json"), "{text}");
    assert_eq!(count_orders(&app, DEMO_MERCHANT_ID).await, 0);
    // Unknown things are JSON 404s.
    let (status, error) = api.get("/orders/20261127000000NOSUCHORDER1").await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, error) = api.get("/nothing/here").await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, error) = api.get("/orders?limit=1000").await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("limit"))
    );
    let (status, error) = api
        .get("/orders?starting_after=20261127000000NOSUCHORDER1")
        .await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("starting_after"))
    );
    let (status, error) = api.get("/orders?status=lost").await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("status"))
    );
    // A revoked key stops working; another key of the merchant goes on.
    let other = key_for(&app, DEMO_MERCHANT_ID).await;
    let keys = server::api_keys::list(&app.db, &MerchantId::demo())
        .await
        .expect("keys");
    let first = keys
        .iter()
        .find(|k| api.key.starts_with(&k.prefix))
        .expect("listed");
    assert!(
        server::api_keys::revoke(&app.db, &MerchantId::demo(), &first.id)
            .await
            .expect("revoke")
    );
    assert_eq!(api.get("/orders").await.0, StatusCode::UNAUTHORIZED);
    let still = Api {
        app: &app,
        key: other,
    };
    assert_eq!(still.get("/orders").await.0, StatusCode::OK);
    app.stop().await.expect("stop");
}

async fn idempotency_replays_refuses_reuse_and_never_creates_two_orders(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    let body = tea(888).to_string();
    let post = |key: &'static str, body: String| {
        let api = &api;
        async move {
            api.send(reqwest::Method::POST, "/orders", Some(&body), Some(key))
                .await
        }
    };
    let (s1, h1, first) = post("order-1", body.clone()).await;
    let (s2, h2, second) = post("order-1", body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second, "replayed byte for byte");
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(count_orders(&app, DEMO_MERCHANT_ID).await, 1);
    // The same key with another body: refused, nothing created.
    let (s3, _, reused) = post("order-1", tea(889).to_string()).await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert!(reused.contains("idempotency_key_reused"), "{reused}");
    // A request that fails validation stores nothing: the key is still free.
    let (s4, _, _) = post("order-2", json!({ "amount": -1 }).to_string()).await;
    assert_eq!(s4, StatusCode::BAD_REQUEST);
    let (s5, _, _) = post("order-2", body.clone()).await;
    assert_eq!(s5, StatusCode::CREATED);
    assert_eq!(count_orders(&app, DEMO_MERCHANT_ID).await, 2);
    // Ten at once under one key: one order.
    let answers = futures::future::join_all((0..10).map(|_| post("order-3", body.clone()))).await;
    let created: Vec<&String> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .map(|(_, _, b)| b)
        .collect();
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| *b == created[0]),
        "every success is the same order"
    );
    for (s, _, b) in &answers {
        assert!(
            *s == StatusCode::CREATED
                || (*s == StatusCode::CONFLICT && b.contains("request_in_progress")),
            "{s} {b}"
        );
    }
    assert_eq!(count_orders(&app, DEMO_MERCHANT_ID).await, 3);
    // After 24 hours a key is free again: the same key with another body creates anew.
    sqlx::query("UPDATE idempotency_keys SET created_at = $1 WHERE key = 'order-1'")
        .bind(server::infra::clock::now_ms() - 25 * 3600 * 1000)
        .execute(app.db.pool())
        .await
        .expect("age");
    let (s6, h6, _) = post("order-1", tea(889).to_string()).await;
    assert_eq!(s6, StatusCode::CREATED);
    assert!(h6.get("idempotent-replayed").is_none());
    assert_eq!(count_orders(&app, DEMO_MERCHANT_ID).await, 4);
    app.stop().await.expect("stop");
}

async fn merchants_never_see_each_others_orders(db: TestDb) {
    let app = app(&db).await;
    let a = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    let b = Api {
        key: key_for(&app, "mer_b").await,
        app: &app,
    };
    let (_, order) = a.post("/orders", tea(100)).await;
    let id = order["id"].as_str().expect("id");
    assert_eq!(
        b.get(&format!("/orders/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get(&format!("/orders/{id}/refunds")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("/orders/{id}/close"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post(&format!("/orders/{id}/refunds"), json!({ "amount": 1 }))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Not even as a paging cursor.
    assert_eq!(
        b.get(&format!("/orders?starting_after={id}")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, listed) = b.get("/orders").await;
    assert_eq!(listed["data"], json!([]));
    // …and the order is untouched.
    assert_eq!(a.get(&format!("/orders/{id}")).await.1["status"], "created");
    app.stop().await.expect("stop");
}

async fn refunds_through_the_api(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    let mut body = tea(1_000);
    body["channel"] = json!("alipay");
    let (_, order) = api.post("/orders", body).await;
    let id = order["id"].as_str().expect("id").to_string();
    // Refunding an unpaid order is a conflict.
    let (status, error) = api
        .post(&format!("/orders/{id}/refunds"), json!({ "amount": 1 }))
        .await;
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("order_not_refundable"))
    );
    pay_in_wallet(&app, order["code_url"].as_str().expect("code"), "").await;
    for _ in 0..200 {
        if api.get(&format!("/orders/{id}")).await.1["status"] == "paid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, refund) = api
        .post(
            &format!("/orders/{id}/refunds"),
            json!({ "amount": 300, "reason": "one cup short" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["status"], "succeeded");
    assert_eq!(refund["amount"], 300);
    let (status, error) = api
        .post(&format!("/orders/{id}/refunds"), json!({ "amount": 701 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["field"], "amount");
    assert_eq!(error["error"]["refundable"], 700);
    let (_, list) = api.get(&format!("/orders/{id}/refunds")).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    let (_, now) = api.get(&format!("/orders/{id}")).await;
    assert_eq!(
        (now["status"].clone(), now["refunded_amount"].clone()),
        (json!("partially_refunded"), json!(300))
    );
    app.stop().await.expect("stop");
}

async fn each_key_is_rate_limited(db: TestDb) {
    let app = app_with(&db, 3).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    for _ in 0..3 {
        assert_eq!(api.get("/orders").await.0, StatusCode::OK);
    }
    let (status, headers, body) = api.send(reqwest::Method::GET, "/orders", None, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(body.contains("rate_limited"));
    // Another key has its own allowance.
    let other = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    assert_eq!(other.get("/orders").await.0, StatusCode::OK);
    app.stop().await.expect("stop");
}

/// The database form of the limits (what every PostgreSQL deployment uses), run on both
/// engines so its SQL is checked on each: take, check, charge, give back, forget, the
/// housekeeping of idle keys, and concurrent takes that never exceed the burst.
async fn limits_kept_in_the_database_are_atomic(db: TestDb) {
    use server::limits::{LimitError, Limiter, Rate};
    // The pool the shared limiter uses in production: on PostgreSQL its commits do not wait
    // for the disk.
    let store = server::infra::db::Db::connect_relaxed(&db.url, 8)
        .await
        .expect("db");
    store.migrate().await.expect("migrate");
    if db.engine() == server::config::Engine::Postgres {
        let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(store.pool())
            .await
            .expect("setting");
        assert_eq!(setting, "off");
    }
    let limiter = std::sync::Arc::new(Limiter::Shared(store.clone()));
    let rate = Rate {
        count: 5,
        per: Duration::from_secs(600),
    };
    let takes = (0..20).map(|_| {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.take("api:burst", rate).await })
    });
    let mut allowed = 0;
    for take in futures::future::join_all(takes).await {
        match take.expect("task") {
            Ok(()) => allowed += 1,
            Err(LimitError::Limited(wait)) => {
                // One interval (120 s), give or take the rounding up of the moment each began.
                assert!((119..=121).contains(&wait.retry_after_secs), "{wait:?}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(allowed, 5, "twenty at once, exactly the burst goes");
    assert!(matches!(
        limiter.check("api:burst", rate).await,
        Err(LimitError::Limited(_))
    ));
    limiter.check("api:other", rate).await.expect("another key");
    limiter
        .give_back("api:burst", rate)
        .await
        .expect("give back");
    limiter
        .take("api:burst", rate)
        .await
        .expect("the one given back");
    limiter.forget("api:burst").await.expect("forget");
    for _ in 0..5 {
        limiter
            .take("api:burst", rate)
            .await
            .expect("the burst again");
    }
    for _ in 0..3 {
        limiter.charge("login-email:x", rate).await.expect("charge");
    }
    limiter
        .check("login-email:x", rate)
        .await
        .expect("two left");
    // Housekeeping leaves keys still limiting and drops the rest.
    sqlx::query("INSERT INTO rate_limits (key, tat) VALUES ('idle', 1)")
        .execute(store.pool())
        .await
        .expect("an idle key");
    assert_eq!(server::limits::forget_idle(&store).await.expect("sweep"), 1);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits ORDER BY key")
        .fetch_all(store.pool())
        .await
        .expect("keys");
    assert_eq!(keys, vec!["api:burst", "login-email:x"]);
    store.close().await;
}

/// Two nodes on one PostgreSQL database share each key's allowance: the configured rate is
/// the cluster's, not each node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_the_clusters_not_each_nodes() {
    let db = TestDb::postgres().await;
    let one = app_with(&db, 4).await;
    let two = app_with(&db, 4).await;
    let key = key_for(&one, DEMO_MERCHANT_ID).await;
    for app in [&one, &two, &one, &two] {
        let api = Api {
            key: key.clone(),
            app,
        };
        assert_eq!(api.get("/orders").await.0, StatusCode::OK);
    }
    for app in [&one, &two] {
        let api = Api {
            key: key.clone(),
            app,
        };
        let (status, headers, _) = api.send(reqwest::Method::GET, "/orders", None, None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "on either node");
        assert!(headers.contains_key("retry-after"));
    }
    one.stop().await.expect("stop");
    two.stop().await.expect("stop");
}

/// The served OpenAPI document, checked by an independent validator (Ajv, JSON Schema
/// 2020-12) against real answers of every endpoint, success and error alike.
async fn the_openapi_document_describes_the_real_answers(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    // Public, and generated from the code: every route of the API is in it.
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    let document: Value = r.json().await.expect("JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    let mut routes: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .expect("ops")
                .keys()
                .map(move |m| format!("{} {p}", m.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /orders",
            "GET /orders/{id}",
            "GET /orders/{id}/refunds",
            "POST /orders",
            "POST /orders/{id}/close",
            "POST /orders/{id}/refunds",
        ]
    );

    let params: Vec<(String, String)> = document["paths"]["/orders/{id}/close"]["post"]
        ["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["in"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        params,
        [
            ("id".to_string(), "path".to_string()),
            ("Idempotency-Key".to_string(), "header".to_string())
        ]
    );

    let mut samples = Vec::new();
    let mut sample = |method: &str, path: &str, (status, body): (StatusCode, Value)| {
        samples.push(
            json!({ "method": method, "path": path, "status": status.as_u16(), "body": body }),
        );
        body_of(&samples)
    };
    fn body_of(samples: &[Value]) -> Value {
        samples
            .last()
            .map(|s| s["body"].clone())
            .unwrap_or_default()
    }
    let mut with_meta = tea(1_000);
    with_meta["metadata"] = json!({ "sku": "A1" });
    with_meta["channel"] = json!("alipay");
    let order = sample("POST", "/orders", api.post("/orders", with_meta).await);
    let id = order["id"].as_str().expect("id").to_string();
    let plain = sample("POST", "/orders", api.post("/orders", tea(200)).await);
    let plain_id = plain["id"].as_str().expect("id").to_string();
    sample(
        "POST",
        "/orders",
        api.post(
            "/orders",
            json!({ "amount": "12.34", "currency": "CNY", "subject": "x" }),
        )
        .await,
    );
    sample(
        "GET",
        "/orders/{id}",
        api.get(&format!("/orders/{id}")).await,
    );
    sample("GET", "/orders/{id}", api.get("/orders/ord_nope").await);
    sample("GET", "/orders", api.get("/orders?limit=1").await);
    sample("GET", "/orders", api.get("/orders?status=gone").await);
    sample(
        "POST",
        "/orders/{id}/close",
        api.post(&format!("/orders/{plain_id}/close"), json!({}))
            .await,
    );
    sample(
        "POST",
        "/orders/{id}/refunds",
        api.post(
            &format!("/orders/{plain_id}/refunds"),
            json!({ "amount": 1 }),
        )
        .await,
    );
    pay_in_wallet(&app, order["code_url"].as_str().expect("code"), "").await;
    crate::common::wait_for(&app, &id, server::orders::OrderStatus::Paid).await;
    sample(
        "POST",
        "/orders/{id}/close",
        api.post(&format!("/orders/{id}/close"), json!({})).await,
    );
    sample(
        "POST",
        "/orders/{id}/refunds",
        api.post(
            &format!("/orders/{id}/refunds"),
            json!({ "amount": 400, "reason": "spilt" }),
        )
        .await,
    );
    sample(
        "POST",
        "/orders/{id}/refunds",
        api.post(&format!("/orders/{id}/refunds"), json!({ "amount": 601 }))
            .await,
    );
    sample(
        "GET",
        "/orders/{id}/refunds",
        api.get(&format!("/orders/{id}/refunds")).await,
    );
    sample(
        "GET",
        "/orders/{id}",
        api.get(&format!("/orders/{id}")).await,
    );
    let stranger = Api {
        key: "sk_not_a_key".into(),
        app: &app,
    };
    sample("GET", "/orders", stranger.get("/orders").await);
    let statuses: Vec<u64> = samples
        .iter()
        .map(|s| s["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [201, 201, 400, 200, 404, 200, 400, 200, 409, 409, 201, 400, 200, 200, 401]
    );

    let verdicts = crate::common::node(
        json!({ "op": "openapi.validate", "document": document, "samples": samples }),
    );
    for (s, v) in samples.iter().zip(verdicts.as_array().expect("verdicts")) {
        assert_eq!(
            v["ok"], true,
            "{} {} → {}: {} in {}",
            s["method"], s["path"], s["status"], v["errors"], s["body"]
        );
    }
    // The validator does fail: an amount as a string, a missing field, an unknown status.
    let mut wrong = samples[3].clone();
    wrong["body"]["amount"] = json!("10.00");
    let mut missing = samples[3].clone();
    missing["body"]
        .as_object_mut()
        .expect("object")
        .remove("checkout_url");
    let mut unknown = samples[3].clone();
    unknown["body"]["status"] = json!("teleported");
    let verdicts = crate::common::node(
        json!({ "op": "openapi.validate", "document": document, "samples": [wrong, missing, unknown] }),
    );
    for v in verdicts.as_array().expect("verdicts") {
        assert_eq!(v["ok"], false, "{v}");
    }
    app.stop().await.expect("stop");
}

/// `method` on `POST /orders` (with `channel`): the cashier of a phone browser (`h5`, `wap`)
/// or the in-app payment of a payer (`jsapi`, with the bridge's `pay_params`); each answer
/// as the OpenAPI document describes it, and each missing requirement named.
async fn the_api_asks_for_a_pay_method(db: TestDb) {
    let app = app(&db).await;
    let api = Api {
        key: key_for(&app, DEMO_MERCHANT_ID).await,
        app: &app,
    };
    let order = |extra: Value| {
        let mut body = tea(600);
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let (status, h5) = api
        .post(
            "/orders",
            order(json!({ "channel": "wechat", "method": "h5", "payer_client_ip": "203.0.113.9" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{h5}");
    assert_eq!(h5["method"], "h5");
    let link = h5["code_url"].as_str().expect("code_url");
    assert!(
        link.contains("h5=1") && link.contains("redirect_url="),
        "{link}"
    );
    let (status, wap) = api
        .post(
            "/orders",
            order(json!({ "channel": "alipay", "method": "wap" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{wap}");
    assert!(
        wap["code_url"]
            .as_str()
            .is_some_and(|u| u.contains("alipay.trade.wap.pay")),
        "{wap}"
    );
    // Who pays must be known to the wallet: a made-up openid is refused by WeChat.
    let (status, refused) = api
        .post(
            "/orders",
            order(json!({ "channel": "wechat", "method": "jsapi", "payer_id": "oNobodyKnowsMe" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
    for (extra, field) in [
        (
            json!({ "channel": "wechat", "method": "jsapi" }),
            "payer_id",
        ),
        (
            json!({ "channel": "wechat", "method": "h5" }),
            "payer_client_ip",
        ),
        (
            json!({ "channel": "wechat", "method": "h5", "payer_client_ip": "not an ip" }),
            "payer_client_ip",
        ),
        (json!({ "channel": "wechat", "method": "wap" }), "method"),
        (
            json!({ "channel": "alipay", "method": "h5", "payer_client_ip": "203.0.113.9" }),
            "method",
        ),
        (json!({ "method": "native" }), "method"),
        (
            json!({ "channel": "alipay", "payer_id": "2088000000000001" }),
            "payer_id",
        ),
    ] {
        let before = count_orders(&app, DEMO_MERCHANT_ID).await;
        let (status, body) = api.post("/orders", order(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra} → {body}");
        assert_eq!(body["error"]["field"], field, "{extra} → {body}");
        assert_eq!(
            count_orders(&app, DEMO_MERCHANT_ID).await,
            before,
            "nothing stored"
        );
    }
    let document: Value = app
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("JSON");
    assert!(
        document["components"]["schemas"]["CreateOrderRequest"]["properties"]["method"].is_object()
    );
    let samples = json!([
        { "method": "POST", "path": "/orders", "status": 201, "body": h5 },
        { "method": "POST", "path": "/orders", "status": 201, "body": wap },
    ]);
    let verdicts = crate::common::node(
        json!({ "op": "openapi.validate", "document": document, "samples": samples }),
    );
    for v in verdicts.as_array().expect("verdicts") {
        assert_eq!(v["ok"], true, "{v}");
    }
    app.stop().await.expect("stop");
}
