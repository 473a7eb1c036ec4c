//! Cluster mode with real processes: the standalone sandbox gateways and three `scanpay`
//! nodes on loopback sharing one PostgreSQL database. Payment flows enter through every node;
//! a node slowed by an injected delay takes a clearly smaller share; a node killed with
//! SIGKILL mid-run makes no flow fail and no order paid twice; a checkout watching on one node
//! hears a payment whose notification landed on another; a drained node takes no new flows
//! and exits cleanly; forged, stale and replayed internal calls are refused. Also: a second
//! node on one SQLite file is refused.

use crate::common;
use server::merchants::MerchantId;

use common::TestDb;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "a cluster secret for the tests";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the process when dropped (a failing test leaves nothing running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The standalone sandbox and the settings that point a node at it.
fn start_sandbox(dir: &std::path::Path) -> (Proc, Vec<(String, String)>) {
    let mut child = common::scanpay_command()
        .env("SCANPAY_DATA_DIR", dir)
        .env("SCANPAY_LOG", "warn")
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sandbox");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut settings = Vec::new();
    for _ in 0..16 {
        let mut line = String::new();
        out.read_line(&mut line).expect("line");
        if let Some((k, v)) = line.trim().split_once('=') {
            if k.starts_with("SCANPAY_") {
                settings.push((k.to_string(), v.to_string()));
            }
        }
    }
    // Keep reading so the sandbox never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (Proc(child), settings)
}

struct Node {
    id: String,
    url: String,
    proc: Proc,
}

fn start_node(
    id: &str,
    database_url: &str,
    sandbox: &[(String, String)],
    extra: &[(&str, &str)],
    dir: &std::path::Path,
) -> Node {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = common::scanpay_command();
    cmd.envs(sandbox.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SCANPAY_DATABASE_URL", database_url)
        .env("SCANPAY_CLUSTER_SECRET", SECRET)
        .env("SCANPAY_NODE_ID", id)
        .env("SCANPAY_NODE_TTL_SECS", "2")
        .env("SCANPAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SCANPAY_PUBLIC_URL", &url)
        .env("SCANPAY_DATA_DIR", dir.join(id))
        .env("SCANPAY_LOG", "warn")
        .env("SCANPAY_SHUTDOWN_GRACE_SECS", "10")
        .stdout(Stdio::null())
        .arg("serve");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Node {
        id: id.to_string(),
        url,
        proc: Proc(cmd.spawn().expect("node")),
    }
}

async fn wait_ready(client: &reqwest::Client, node: &Node) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{}/readyz", node.url)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {} did not become ready", node.id);
}

/// Waits until every node sees `n` ready nodes in the registry.
async fn wait_for_nodes(db: &server::infra::db::Db, n: i64, state: &str) {
    for _ in 0..200 {
        let count: i64 = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM nodes WHERE state = $1 AND heartbeat_at > $2",
        )
        .bind(state)
        .bind(server::infra::clock::now_ms() - 2_000)
        .fetch_one(db.pool())
        .await
        .expect("nodes");
        if count == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the registry never showed {n} {state} nodes");
}

/// Creates an order with a WeChat code through `node`; its id and code URL (or the status
/// and body of a failure).
async fn flow(
    client: &reqwest::Client,
    node_url: &str,
    key: &str,
) -> Result<(String, String), String> {
    let r = client
        .post(format!("{node_url}/api/v1/orders"))
        .bearer_auth(key)
        .json(
            &json!({ "amount": 100, "currency": "CNY", "subject": "cluster", "channel": "wechat" }),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 201 {
        return Err(format!("{status}: {body}"));
    }
    Ok((
        body["id"].as_str().unwrap_or_default().to_string(),
        body["code_url"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Runs `n` flows entering through `entries` in turn, `parallel` at a time; all results.
async fn flows(
    client: &reqwest::Client,
    entries: &[String],
    key: &str,
    n: usize,
    parallel: usize,
) -> Vec<Result<(String, String), String>> {
    futures::stream::iter((0..n).map(|i| {
        let url = entries[i % entries.len()].clone();
        async move { flow(client, &url, key).await }
    }))
    .buffer_unordered(parallel)
    .collect()
    .await
}

async fn share_since(db: &server::infra::db::Db, since: i64) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node_id, COUNT(*) FROM payment_attempts WHERE created_at >= $1 AND node_id IS NOT NULL GROUP BY node_id",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await
    .expect("shares");
    rows.into_iter().collect()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next live ping on a watch socket (`"Sync"` or `"Heartbeat"`).
async fn next_ping(socket: &mut Socket) -> String {
    use tokio_tungstenite::tungstenite::Message;
    match socket.next().await.expect("socket open").expect("frame") {
        // server_fn frames: a tag byte (0 = an item, 1 = an error), then the JSON.
        Message::Binary(b) if b.first() == Some(&0) => String::from_utf8_lossy(&b[1..]).to_string(),
        other => panic!("unexpected frame {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_flows_by_load_survive_a_kill_push_live_across_nodes_and_drain() {
    let db = TestDb::postgres().await;
    let database_url = db.url.url.expose().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sandbox, sandbox) = start_sandbox(&dir.path().join("sandbox"));
    let client = common::test_client();
    // Node C runs every flow 300 ms slower (a slow machine, a distant provider route).
    let a = start_node("node-a", &database_url, &sandbox, &[], dir.path());
    let b = start_node("node-b", &database_url, &sandbox, &[], dir.path());
    let mut c = start_node(
        "node-c",
        &database_url,
        &sandbox,
        &[("SCANPAY_FAILPOINTS", "flow.start=delay:300")],
        dir.path(),
    );
    for n in [&a, &b, &c] {
        wait_ready(&client, n).await;
    }
    let store = server::infra::db::Db::connect(&db.url, 2)
        .await
        .expect("db");
    wait_for_nodes(&store, 3, "ready").await;
    // The nodes hold real (sandbox-gateway) credentials: the live posture, no demo shop.
    let key =
        server::accounts::create_merchant(&store, "Cluster Shop", "ops@cluster.example", false)
            .await
            .expect("merchant")
            .api_key;
    let entries: Vec<String> = [&a, &b, &c].iter().map(|n| n.url.clone()).collect();

    // 1. Load-aware: 240 flows through all three nodes; the slow node takes a clearly
    //    smaller share than either fast one.
    let since = server::infra::clock::now_ms();
    let results = flows(&client, &entries, &key, 240, 8).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let share = share_since(&store, since).await;
    eprintln!("flows per node, C 300 ms slower: {share:?}");
    let (sa, sb, sc) = (
        share["node-a"],
        share.get("node-b").copied().unwrap_or(0),
        share.get("node-c").copied().unwrap_or(0),
    );
    assert_eq!(sa + sb + sc, 240, "{share:?}");
    assert!(
        sc < sa && sc < sb,
        "the slow node took {sc} of 240 ({share:?})"
    );
    assert!(
        sc * 6 < 240,
        "the slow node took {sc} of 240, not under a sixth ({share:?})"
    );
    // How A and B split the rest depends on their first samples (a peak counts at once and
    // is forgotten over seconds), so it is not asserted.

    // 2. Forged, stale and replayed internal calls are refused; a signed one runs.
    let (order, _) = flow(&client, &a.url, &key).await.expect("an order");
    let path = server::cluster::internal::START_PATH;
    let body = json!({ "order_id": order, "channel": "alipay" }).to_string();
    let call = |url: String, headers: Vec<(&'static str, String)>, body: String| {
        let client = &client;
        async move {
            let mut r = client
                .post(format!("{url}{path}"))
                .header("content-type", "application/json");
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let r = r.body(body).send().await.expect("internal call");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let now = server::infra::clock::now_ms() / 1000;
    let forged = server::cluster::internal::sign_at(
        "not the secret at all",
        "node-x",
        "POST",
        path,
        body.as_bytes(),
        now,
        "nonce-forged-000000",
    );
    assert_eq!(call(a.url.clone(), forged, body.clone()).await.0, 401);
    let stale = server::cluster::internal::sign_at(
        SECRET,
        "node-x",
        "POST",
        path,
        body.as_bytes(),
        now - 31,
        "nonce-stale-0000000",
    );
    let (status, text) = call(a.url.clone(), stale, body.clone()).await;
    assert_eq!(status, 401);
    assert!(text.contains("stale"), "{text}");
    let good = server::cluster::internal::sign_at(
        SECRET,
        "node-x",
        "POST",
        path,
        body.as_bytes(),
        now,
        "nonce-good-00000000",
    );
    let (status, text) = call(a.url.clone(), good.clone(), body.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"outcome\":\"started\""), "{text}");
    let tampered = call(
        b.url.clone(),
        good.clone(),
        body.replace("alipay", "wechat"),
    )
    .await;
    assert_eq!(tampered.0, 401, "a changed body does not verify");
    for node in [&a, &b] {
        let (status, text) = call(node.url.clone(), good.clone(), body.clone()).await;
        assert_eq!(status, 401, "replayed to {}", node.id);
        assert!(text.contains("replay"), "{text}");
    }

    // 3. Live across nodes: a checkout watching on one node hears the payment whose
    //    notification landed on another (the node that ran the prepay gave its own URL).
    let (order, code_url) = flow(&client, &a.url, &key).await.expect("an order");
    let prepaid_on: String =
        sqlx::query_scalar("SELECT node_id FROM payment_attempts WHERE order_id = $1")
            .bind(&order)
            .fetch_one(store.pool())
            .await
            .expect("attempt");
    let watcher = [&a, &b, &c]
        .into_iter()
        .find(|n| n.id != prepaid_on)
        .expect("another node");
    let ws_url = format!("{}/api/watch", watcher.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("websocket");
    socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            [
                &[0u8][..],
                json!({ "order_id": order }).to_string().as_bytes(),
            ]
            .concat()
            .into(),
        ))
        .await
        .expect("watch request");
    assert_eq!(
        next_ping(&mut socket).await,
        "\"Sync\"",
        "a watcher re-reads on connect"
    );
    let paid = client
        .post(&code_url)
        .form(&[("action", "pay"), ("faults", "")])
        .send()
        .await
        .expect("wallet");
    assert!(paid.status().is_success() || paid.status().is_redirection());
    let ping = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let p = next_ping(&mut socket).await;
            if p != "\"Heartbeat\"" {
                return p;
            }
        }
    })
    .await
    .expect("a ping from the other node");
    assert_eq!(ping, "\"Sync\"");
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(&order)
        .fetch_one(store.pool())
        .await
        .expect("order");
    assert_eq!(
        status, "paid",
        "the watcher was told after the payment was recorded"
    );

    // 4. SIGKILL mid-run: flows keep entering through A and C; B dies under them. No flow
    //    fails (B's own in-flight flows are taken over once its heartbeat is stale).
    let since = server::infra::clock::now_ms();
    let entries_ac = vec![a.url.clone(), c.url.clone()];
    let killer = {
        let pid = b.proc.0.id();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        })
    };
    let results = flows(&client, &entries_ac, &key, 150, 6).await;
    killer.await.expect("killer");
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "flows failed around the kill: {failed:?}"
    );
    let share = share_since(&store, since).await;
    let abandoned: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE kind = 'attempt.abandoned'")
            .fetch_one(store.pool())
            .await
            .expect("events");
    eprintln!("flows per node around the kill: {share:?}; attempts taken over from B: {abandoned}");
    let by_b = share.get("node-b").copied().unwrap_or(0);
    assert!(
        by_b > 0 && by_b < 75,
        "B ran flows until it was killed mid-run ({share:?})"
    );
    // Pay 20 of them (codes opened by a live node: the providers notify the node that
    // opened the code, here its own URL; behind a load balancer any node would do). Each
    // order is paid exactly once.
    let mut paying = 0;
    for (order, code_url) in results.iter().flatten() {
        let opened_by: String = sqlx::query_scalar(
            "SELECT node_id FROM payment_attempts WHERE order_id = $1 AND status = 'open'",
        )
        .bind(order)
        .fetch_one(store.pool())
        .await
        .expect("the order's open attempt");
        if opened_by != "node-b" && paying < 20 {
            client
                .post(code_url)
                .form(&[("action", "pay"), ("faults", "")])
                .send()
                .await
                .expect("wallet");
            paying += 1;
        }
    }
    assert_eq!(paying, 20);
    let mut paid_once = false;
    for _ in 0..200 {
        let (paid, events, outbox): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM orders WHERE status = 'paid'), \
             (SELECT COUNT(*) FROM order_events WHERE kind = 'status.paid'), \
             (SELECT COUNT(*) FROM outbox WHERE topic = 'order.paid')",
        )
        .fetch_one(store.pool())
        .await
        .expect("counts");
        if paid == 21 {
            assert_eq!(
                (events, outbox),
                (21, 21),
                "every paid order is paid exactly once"
            );
            paid_once = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(paid_once, "the 21 payments were all recorded");

    // 5. Drain: SIGTERM to C while flows run through A. C is announced draining, takes no
    //    new flows from then on, finishes what it has, leaves the registry and exits 0.
    wait_for_nodes(&store, 2, "ready").await; // B is gone after its TTL
    let _ = Command::new("kill")
        .args(["-TERM", &c.proc.0.id().to_string()])
        .status();
    let mut drained_at = None;
    for _ in 0..200 {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM nodes WHERE id = 'node-c'")
                .fetch_optional(store.pool())
                .await
                .expect("state");
        if state.as_deref() != Some("ready") {
            drained_at = Some(server::infra::clock::now_ms());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained_at = drained_at.expect("C announced draining or left");
    let results = flows(&client, std::slice::from_ref(&a.url), &key, 40, 4).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let after = share_since(&store, drained_at).await;
    assert_eq!(
        after.get("node-c"),
        None,
        "a draining node took flows: {after:?}"
    );
    let mut exit = None;
    for _ in 0..400 {
        if let Some(status) = c.proc.0.try_wait().expect("wait") {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        exit.expect("C exited").success(),
        "a drained node exits cleanly"
    );
    let left: Option<String> = sqlx::query_scalar("SELECT id FROM nodes WHERE id = 'node-c'")
        .fetch_optional(store.pool())
        .await
        .expect("row");
    assert_eq!(
        left, None,
        "a node leaving cleanly removes its heartbeat row"
    );
    store.close().await;
}

#[tokio::test]
async fn a_second_node_on_one_sqlite_file_is_refused() {
    let db = TestDb::sqlite();
    let config = common::test_config(&db);
    let first = server::Application::build(config.clone())
        .await
        .expect("first node");
    let second = server::Application::build(config).await;
    let err = second
        .err()
        .expect("the second node is refused")
        .to_string();
    assert!(
        err.contains("SQLite database serves one node") && err.contains("PostgreSQL"),
        "{err}"
    );
    drop(first);
}

/// The attack: answers to forwarded flows were not authenticated, so anyone on the node
/// network answering in a peer's place could hand customers a code of their own. Here a
/// "node" registered in the shared database answers every flow with a forged attempt (a real
/// attempt of another order, its code replaced); the customer still only ever sees a code
/// the shared database holds for its own order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_to_a_forwarded_flow_never_reaches_a_customer() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    const EVIL: &str = "weixin://wxpay/bizpayurl?pr=EVILCODE";
    let db = TestDb::postgres().await;
    let mut config = common::sandbox_config(&db);
    config.cluster_secret = Some(server::infra::secret::Secret::new(SECRET.to_string()));
    config.node_id = Some("node-real".into());
    let app = common::TestApp::spawn_with(config).await;
    // A real attempt of another order, to dress the forgery in.
    let (_, template) =
        common::order_with_code(&app, 100, server::providers::Channel::Wechat).await;
    let mut forged = serde_json::to_value(&template).expect("attempt");
    forged["code_url"] = json!(EVIL);
    let asked = Arc::new(AtomicU32::new(0));
    let fake = {
        let asked = asked.clone();
        let answer = json!({ "outcome": "started", "attempt": forged });
        axum::Router::new().route(
            "/internal/v1/payments/start",
            axum::routing::post(move || {
                asked.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                async move { axum::Json(answer) }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, fake).await });
    // The impostor's registry row says it is idle and fast; its heartbeat is kept fresh.
    let beat = {
        let db = app.db.clone();
        tokio::spawn(async move {
            loop {
                let now = server::infra::clock::now_ms();
                let _ = sqlx::query(
                    "INSERT INTO nodes (id, url, state, started_at, heartbeat_at, latency_us) \
                     VALUES ('node-evil', $1, 'ready', $2, $2, 1) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
                )
                .bind(&fake_url)
                .bind(now)
                .execute(db.pool())
                .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await; // the peer list refreshes
    let (_, key) = server::api_keys::create(&app.db, &MerchantId::demo(), "t")
        .await
        .expect("key");
    let client = common::test_client();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (order_id, code) = flow(&client, &format!("http://{}", app.addr), &key)
            .await
            .expect("flow");
        codes.push((order_id, code));
        if asked.load(Ordering::SeqCst) > 0 && codes.len() >= 2 {
            break;
        }
    }
    beat.abort();
    assert!(
        asked.load(Ordering::SeqCst) > 0,
        "the impostor was never asked, so this test proved nothing"
    );
    for (order_id, code) in &codes {
        assert_ne!(
            code, EVIL,
            "a forged code reached the customer of {order_id}"
        );
        let stored: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT code_url FROM payment_attempts WHERE order_id = $1 AND status = 'open'",
        )
        .bind(order_id)
        .fetch_all(app.db.pool())
        .await
        .expect("attempts");
        assert_eq!(
            stored,
            vec![Some(code.clone())],
            "the code shown is the stored one"
        );
    }
    app.stop().await.expect("stop");
}
