//! The sandbox gateways, driven by ScanPay's own provider clients over HTTP exactly as in
//! production: the trade lifecycle answers from the sandbox's own state, requests signed with
//! the wrong key are refused the real way, notifications arrive signed and are redelivered on
//! the (time-scaled) schedule until acknowledged, and every fault does what it says.

use crate::common;
use crate::common::otn;

use app::money::Amount;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use common::node;
use serde_json::json;
use server::config::{AlipaySettings, SandboxMode, WechatSettings};
use server::providers::config::Providers;
use server::providers::{
    NotificationError, PaymentProvider, PrepayRequest, ProviderError, RefundRequest, RefundState,
    TradeState,
};
use server::sandbox::{provider_settings, Faults, Sandbox, SandboxSettings};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running standalone sandbox and provider clients wired to it.
struct Rig {
    sandbox: Arc<Sandbox>,
    alipay: Arc<dyn PaymentProvider>,
    wechat: Arc<dyn PaymentProvider>,
    base: String,
    _dir: tempfile::TempDir,
    receiver: Receiver,
}

/// The merchant's notify endpoint: records what arrives, answers from a script.
#[derive(Clone, Default)]
struct Receiver {
    addr: Option<SocketAddr>,
    seen: Arc<Mutex<Vec<(Instant, HeaderMap, Bytes)>>>,
    /// Answers to give, in order; when empty, success.
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let mut r = Receiver::default();
        let state = r.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state
                    .seen
                    .lock()
                    .expect("lock")
                    .push((Instant::now(), headers, body));
                let next = state.script.lock().expect("lock").pop_front();
                match next {
                    Some((status, body)) => {
                        (http::StatusCode::from_u16(status).expect("status"), body)
                    }
                    None => (http::StatusCode::OK, "success"),
                }
            }
        };
        let app = Router::new().route("/notify/{provider}", post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        r.addr = Some(listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn url(&self, provider: &str) -> String {
        format!("http://{}/notify/{provider}", self.addr.expect("started"))
    }

    fn seen(&self) -> Vec<(Instant, HeaderMap, Bytes)> {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits until `n` notifications arrived (or a generous deadline passes).
    async fn wait_for(&self, n: usize) -> Vec<(Instant, HeaderMap, Bytes)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seen()
    }
}

/// Sandbox keys generated once for this test binary (RSA key generation dominates a rig's
/// start-up) and copied into each rig's own directory.
fn with_template_keys(dir: &std::path::Path) {
    static TEMPLATE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let t = tempfile::tempdir().expect("tempdir");
        server::sandbox::keys::SandboxKeys::load_or_create(t.path()).expect("keys");
        t
    });
    let keys = dir.join("sandbox").join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    for entry in std::fs::read_dir(template.path()).expect("template") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), keys.join(entry.file_name())).expect("copy");
    }
}

async fn rig_with(faults: &str, time_scale: f64) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    with_template_keys(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}/sandbox");
    let sandbox = Sandbox::open(SandboxSettings {
        dir: dir.path().join("sandbox"),
        base_url: base.clone(),
        time_scale,
        faults: Faults::parse(faults).expect("faults"),
    })
    .await
    .expect("sandbox opens");
    sandbox.spawn_delivery();
    let app = Router::new().nest_service("/sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (a, w) = provider_settings(&sandbox.keys_dir(), &base);
    let providers = providers_for(a, w);
    Rig {
        sandbox,
        alipay: providers.alipay.expect("alipay"),
        wechat: providers.wechat.expect("wechat"),
        base,
        _dir: dir,
        receiver: Receiver::start().await,
    }
}

fn providers_for(alipay: AlipaySettings, wechat: WechatSettings) -> Providers {
    Providers::from_settings(Some(&alipay), Some(&wechat)).expect("keys parse")
}

fn order(id: &str, fen: i64, notify_url: String) -> PrepayRequest {
    PrepayRequest {
        out_trade_no: id.into(),
        amount: Amount::from_fen(fen).expect("amount"),
        subject: "沙箱测试 Sandbox test".into(),
        expires_at: server::infra::clock::now_ms() + 900_000,
        notify_url,
        method: server::providers::PayMethod::Native,
        payer: None,
        client_ip: None,
        return_url: None,
    }
}

fn wallet_id(code_url: &str) -> String {
    code_url.rsplit('/').next().expect("id").to_string()
}

#[tokio::test]
async fn alipay_trade_lifecycle_answers_from_the_sandbox_state() {
    let rig = rig_with("", 1.0).await;
    let prepay = rig
        .alipay
        .create_prepay(&order("ORD_A1", 1230, rig.receiver.url("alipay")))
        .await
        .expect("precreate");
    assert!(
        prepay.code_url.starts_with(&format!("{}/pay/", rig.base)),
        "{}",
        prepay.code_url
    );
    // Before a wallet opens the code, the trade does not exist at Alipay: pending.
    let q = rig.alipay.query(&otn("ORD_A1")).await.expect("query");
    assert_eq!(
        (q.state, q.provider_state.as_str()),
        (TradeState::Pending, "ACQ.TRADE_NOT_EXIST")
    );
    // Scan: open the wallet page.
    let page = reqwest::get(&prepay.code_url)
        .await
        .expect("wallet")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("¥12.30") && page.contains("沙箱测试 Sandbox test"),
        "{page}"
    );
    let q = rig.alipay.query(&otn("ORD_A1")).await.expect("query");
    assert_eq!(
        (q.state, q.provider_state.as_str()),
        (TradeState::Pending, "WAIT_BUYER_PAY")
    );
    assert_eq!(q.amount, Some(Amount::from_fen(1230).expect("amount")));
    // The same order again gets the same code; a different one with the same id is refused.
    let again = rig
        .alipay
        .create_prepay(&order("ORD_A1", 1230, rig.receiver.url("alipay")))
        .await
        .expect("repeat");
    assert_eq!(again.code_url, prepay.code_url);
    let err = rig
        .alipay
        .create_prepay(&order("ORD_A1", 1231, rig.receiver.url("alipay")))
        .await
        .expect_err("conflict");
    assert!(
        matches!(&err, ProviderError::Business { sub_code: Some(s), .. } if s == "ACQ.CONTEXT_INCONSISTENT"),
        "{err:?}"
    );
    rig.alipay.close(&otn("ORD_A1")).await.expect("close");
    assert_eq!(
        rig.alipay.query(&otn("ORD_A1")).await.expect("query").state,
        TradeState::Closed
    );
    assert!(
        !rig.sandbox
            .pay_by_id(&wallet_id(&prepay.code_url), &Faults::default())
            .await
            .expect("pay"),
        "a closed trade cannot be paid"
    );
}

#[tokio::test]
async fn wechat_trade_lifecycle_and_refunds() {
    let rig = rig_with("", 1.0).await;
    let prepay = rig
        .wechat
        .create_prepay(&order("ORD_W1", 5000, rig.receiver.url("wechat")))
        .await
        .expect("native");
    let q = rig.wechat.query(&otn("ORD_W1")).await.expect("query");
    assert_eq!(
        (q.state, q.provider_state.as_str()),
        (TradeState::Pending, "NOTPAY")
    );
    assert!(rig
        .sandbox
        .pay_by_id(&wallet_id(&prepay.code_url), &Faults::default())
        .await
        .expect("pay"));
    let q = rig.wechat.query(&otn("ORD_W1")).await.expect("query");
    assert_eq!(q.state, TradeState::Paid);
    assert!(q.provider_trade_no.is_some());
    let refund = |no: &str, fen: i64| RefundRequest {
        out_trade_no: "ORD_W1".into(),
        out_refund_no: no.into(),
        refund: Amount::from_fen(fen).expect("amount"),
        total: Amount::from_fen(5000).expect("amount"),
        reason: Some("测试".into()),
        notify_url: None,
    };
    assert_eq!(
        rig.wechat
            .refund(&refund("R1", 3000))
            .await
            .expect("refund")
            .state,
        RefundState::Succeeded
    );
    assert_eq!(
        rig.wechat
            .refund(&refund("R1", 3000))
            .await
            .expect("same key again")
            .state,
        RefundState::Succeeded
    );
    // The refund query knows it; an unknown refund number is "not found", not a failure.
    let asked = rig
        .wechat
        .refund_query(&otn("ORD_W1"), "R1")
        .await
        .expect("query");
    assert_eq!(asked.state, RefundState::Succeeded);
    assert!(asked.provider_refund_no.is_some());
    assert_eq!(
        rig.wechat
            .refund_query(&otn("ORD_W1"), "R9")
            .await
            .expect("query")
            .state,
        RefundState::NotFound
    );
    let err = rig
        .wechat
        .refund(&refund("R2", 2001))
        .await
        .expect_err("more than is left");
    assert!(
        matches!(&err, ProviderError::Business { code, .. } if code == "NOT_ENOUGH"),
        "{err:?}"
    );
    rig.wechat
        .refund(&refund("R3", 2000))
        .await
        .expect("the rest");
    let err = rig
        .wechat
        .close(&otn("ORD_W1"))
        .await
        .expect_err("paid orders cannot be closed");
    assert!(
        matches!(&err, ProviderError::Business { code, .. } if code == "ORDERPAID"),
        "{err:?}"
    );
    let err = rig
        .wechat
        .create_prepay(&order("ORD_W1", 5001, rig.receiver.url("wechat")))
        .await
        .expect_err("conflict");
    assert!(matches!(&err, ProviderError::Business { .. }), "{err:?}");
}

#[tokio::test]
async fn requests_signed_with_the_wrong_key_are_refused_the_real_way() {
    let rig = rig_with("", 1.0).await;
    let (mut a, mut w) = provider_settings(&rig.sandbox.keys_dir(), &rig.base);
    // Sign with the gateway's key instead of the merchant's.
    a.private_key_file = a
        .public_key_file
        .with_file_name("alipay-gateway-private.pem");
    w.private_key_file = w
        .public_key_file
        .with_file_name("wechat-gateway-private.pem");
    let wrong = providers_for(a, w);
    let err = wrong
        .alipay
        .expect("alipay")
        .create_prepay(&order("ORD_K1", 100, rig.receiver.url("alipay")))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Business { code, sub_code: Some(s), .. } if code == "40002" && s == "isv.invalid-signature"),
        "{err:?}"
    );
    let err = wrong
        .wechat
        .expect("wechat")
        .create_prepay(&order("ORD_K1", 100, rig.receiver.url("wechat")))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Business { code, .. } if code == "SIGN_ERROR"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_exactly_three_deliveries_on_the_scaled_schedule() {
    // 0.001: Alipay's 4 min and 10 min waits become 240 ms and 600 ms.
    let rig = rig_with("", 0.001).await;
    rig.receiver
        .script
        .lock()
        .expect("lock")
        .extend([(200, "fail"), (500, "oops")]);
    let prepay = rig
        .alipay
        .create_prepay(&order("ORD_N1", 1, rig.receiver.url("alipay")))
        .await
        .expect("precreate");
    assert!(rig
        .sandbox
        .pay_by_id(&wallet_id(&prepay.code_url), &Faults::default())
        .await
        .expect("pay"));
    let seen = rig.receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen_after = rig.receiver.seen();
    assert_eq!(seen_after.len(), 3, "fail, fail, success: then no more");
    let gap1 = seen[1].0 - seen[0].0;
    let gap2 = seen[2].0 - seen[1].0;
    assert!(
        gap1 >= Duration::from_millis(240),
        "first wait {gap1:?} follows the 4 min step"
    );
    assert!(
        gap2 >= Duration::from_millis(600),
        "second wait {gap2:?} follows the 10 min step"
    );
    let ids: Vec<_> = seen_after
        .iter()
        .map(|(_, h, b)| {
            rig.alipay
                .verify_notification(h, b)
                .expect("a valid signed notification")
                .notification_id
        })
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "notify_id is stable across redeliveries"
    );
    let n = rig
        .alipay
        .verify_notification(&seen_after[0].1, &seen_after[0].2)
        .expect("valid");
    assert_eq!(
        (n.state, n.amount.fen(), n.out_trade_no.as_str()),
        (TradeState::Paid, 1, "ORD_N1")
    );
}

/// Pays a fresh WeChat or Alipay order with per-trade faults; returns the notifications seen
/// after `settle`.
async fn pay_with(
    rig: &Rig,
    channel: &str,
    id: &str,
    faults: &str,
    expect: usize,
) -> Vec<(Instant, HeaderMap, Bytes)> {
    let provider = if channel == "alipay" {
        &rig.alipay
    } else {
        &rig.wechat
    };
    let prepay = provider
        .create_prepay(&order(id, 777, rig.receiver.url(channel)))
        .await
        .expect("prepay");
    assert!(rig
        .sandbox
        .pay_by_id(
            &wallet_id(&prepay.code_url),
            &Faults::parse(faults).expect("faults")
        )
        .await
        .expect("pay"));
    rig.receiver.wait_for(expect).await;
    // A moment more, for any notification beyond those expected to show up.
    tokio::time::sleep(Duration::from_millis(400)).await;
    rig.receiver.seen()
}

#[tokio::test]
async fn duplicates_arrive_together_with_one_notify_id() {
    let rig = rig_with("", 1.0).await;
    let seen = pay_with(&rig, "alipay", "ORD_F1", "duplicates=4", 5).await;
    assert_eq!(seen.len(), 5, "the notification and four copies");
    let ids: std::collections::HashSet<_> = seen
        .iter()
        .map(|(_, h, b)| {
            rig.alipay
                .verify_notification(h, b)
                .expect("valid")
                .notification_id
        })
        .collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn dropped_notifications_leave_only_the_query() {
    let rig = rig_with("", 1.0).await;
    pay_with(&rig, "wechat", "ORD_F2", "drop", 0).await;
    // A later payment without the fault is delivered; deliveries go out in the order they were
    // scheduled, so had the dropped one been scheduled, it would have arrived first.
    let seen = pay_with(&rig, "wechat", "ORD_F2b", "", 1).await;
    let order_ids: Vec<_> = seen
        .iter()
        .map(|(_, h, b)| {
            rig.wechat
                .verify_notification(h, b)
                .expect("valid")
                .out_trade_no
                .into_string()
        })
        .collect();
    assert_eq!(
        order_ids,
        vec!["ORD_F2b".to_string()],
        "nothing was sent for the dropped one"
    );
    assert_eq!(
        rig.wechat.query(&otn("ORD_F2")).await.expect("query").state,
        TradeState::Paid,
        "the query finds the payment"
    );
}

#[tokio::test]
async fn out_of_order_sends_a_stale_unpaid_state_after_the_paid_one() {
    let rig = rig_with("", 1.0).await;
    let seen = pay_with(&rig, "wechat", "ORD_F3", "out_of_order", 2).await;
    let states: Vec<_> = seen
        .iter()
        .map(|(_, h, b)| rig.wechat.verify_notification(h, b).expect("valid").state)
        .collect();
    assert_eq!(states, vec![TradeState::Paid, TradeState::Pending]);
}

#[tokio::test]
async fn signature_amount_and_timestamp_faults_are_caught_by_our_verifier() {
    let rig = rig_with("", 1.0).await;
    let seen = pay_with(&rig, "alipay", "ORD_F4", "bad_signature", 1).await;
    assert_eq!(
        rig.alipay.verify_notification(&seen[0].1, &seen[0].2),
        Err(NotificationError::BadSignature)
    );

    let rig = rig_with("", 1.0).await;
    let seen = pay_with(&rig, "wechat", "ORD_F5", "wrong_amount", 1).await;
    let n = rig
        .wechat
        .verify_notification(&seen[0].1, &seen[0].2)
        .expect("properly signed");
    assert_eq!(
        n.amount.fen(),
        778,
        "one fen more than the 777 paid: for the amount check to catch"
    );

    let rig = rig_with("", 1.0).await;
    let seen = pay_with(&rig, "wechat", "ORD_F6", "stale_timestamp", 1).await;
    assert!(matches!(
        rig.wechat.verify_notification(&seen[0].1, &seen[0].2),
        Err(NotificationError::StaleTimestamp { .. })
    ));
}

#[tokio::test]
async fn delayed_notifications_wait_at_least_the_delay() {
    let rig = rig_with("", 1.0).await;
    let prepay = rig
        .alipay
        .create_prepay(&order("ORD_F7", 5, rig.receiver.url("alipay")))
        .await
        .expect("prepay");
    let paid_at = Instant::now();
    assert!(rig
        .sandbox
        .pay_by_id(
            &wallet_id(&prepay.code_url),
            &Faults::parse("delay_ms=700").expect("f")
        )
        .await
        .expect("pay"));
    let seen = rig.receiver.wait_for(1).await;
    assert_eq!(seen.len(), 1);
    assert!(seen[0].0 - paid_at >= Duration::from_millis(700));
}

#[tokio::test]
async fn api_faults_answer_500s() {
    let rig = rig_with("error_pct=100", 1.0).await;
    let err = rig
        .alipay
        .create_prepay(&order("ORD_F8", 5, rig.receiver.url("alipay")))
        .await
        .expect_err("injected 500");
    assert!(
        matches!(err, ProviderError::Status { status: 500 }),
        "{err:?}"
    );
    let err = rig
        .wechat
        .query(&otn("ORD_F8"))
        .await
        .expect_err("injected 500");
    assert!(
        matches!(err, ProviderError::Status { status: 500 }) && err.is_transient(),
        "{err:?}"
    );
}

#[tokio::test]
async fn deliveries_survive_a_sandbox_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start().await;
    let settings = |base: String| SandboxSettings {
        dir: dir.path().join("sandbox"),
        base_url: base,
        time_scale: 0.001,
        faults: Faults::default(),
    };
    // First life: the receiver refuses once; the sandbox stops before the retry.
    receiver
        .script
        .lock()
        .expect("lock")
        .push_back((200, "fail"));
    let first = Sandbox::open(settings("http://127.0.0.1:9/sandbox".into()))
        .await
        .expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().nest_service("/sandbox", first.router());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (a, w) = provider_settings(&first.keys_dir(), &format!("http://{addr}/sandbox"));
    let alipay = providers_for(a, w).alipay.expect("alipay");
    let prepay = alipay
        .create_prepay(&order("ORD_R1", 9, receiver.url("alipay")))
        .await
        .expect("prepay");
    let worker = first.spawn_delivery();
    assert!(first
        .pay_by_id(&wallet_id(&prepay.code_url), &Faults::default())
        .await
        .expect("pay"));
    receiver.wait_for(1).await;
    worker.abort();
    server.abort();
    drop(first);
    assert_eq!(receiver.seen().len(), 1);
    // Second life, same directory: the pending redelivery goes out and is acknowledged.
    let second = Sandbox::open(settings("http://127.0.0.1:9/sandbox".into()))
        .await
        .expect("reopen");
    second.spawn_delivery();
    let seen = receiver.wait_for(2).await;
    assert_eq!(seen.len(), 2, "the delivery resumed after the restart");
    assert_eq!(
        alipay
            .verify_notification(&seen[1].1, &seen[1].2)
            .expect("valid")
            .out_trade_no,
        "ORD_R1"
    );
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("key file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_as_clients_get_verified_answers() {
    let rig = rig_with("", 1.0).await;
    let (a, w) = provider_settings(&rig.sandbox.keys_dir(), &rig.base);
    // Alipay's Node SDK: precreate, then query and close, validating every response signature.
    let exec = |method: &str, biz: serde_json::Value| {
        node(json!({
            "op": "alipay.exec", "gateway": a.gateway, "appId": a.app_id, "method": method, "bizContent": biz,
            "privateKey": read(&a.private_key_file), "alipayPublicKey": read(&a.public_key_file),
        }))
    };
    let created = tokio::task::block_in_place(|| {
        exec(
            "alipay.trade.precreate",
            json!({"out_trade_no": "SDK_A1", "total_amount": "88.88", "subject": "SDK"}),
        )
    });
    assert_eq!(created["result"]["code"], "10000", "{created}");
    let code_url = created["result"]["qr_code"]
        .as_str()
        .expect("qr_code")
        .to_string();
    reqwest::get(&code_url).await.expect("scan");
    let queried = tokio::task::block_in_place(|| {
        exec("alipay.trade.query", json!({"out_trade_no": "SDK_A1"}))
    });
    assert_eq!(
        queried["result"]["trade_status"], "WAIT_BUYER_PAY",
        "{queried}"
    );
    assert_eq!(queried["result"]["total_amount"], "88.88");
    let closed = tokio::task::block_in_place(|| {
        exec("alipay.trade.close", json!({"out_trade_no": "SDK_A1"}))
    });
    assert_eq!(closed["result"]["code"], "10000", "{closed}");
    // A request signed with another key is refused the real way, in a signed answer.
    let wrong = tokio::task::block_in_place(|| {
        node(json!({
            "op": "alipay.exec", "gateway": a.gateway, "appId": a.app_id, "method": "alipay.trade.query",
            "bizContent": {"out_trade_no": "SDK_A1"},
            "privateKey": read(&a.public_key_file.with_file_name("alipay-gateway-private.pem")),
            "alipayPublicKey": read(&a.public_key_file),
        }))
    });
    assert_eq!(wrong["result"]["code"], "40002", "{wrong}");
    assert_eq!(wrong["result"]["sub_code"], "isv.invalid-signature");

    // wechatpay-axios-plugin: native order, query and close; it verifies our response headers.
    let call = |call: &str, extra: serde_json::Value| {
        let mut cmd = json!({
            "op": "wechat.call", "call": call, "mchid": w.mchid, "serial": w.cert_serial,
            "privateKey": read(&w.private_key_file), "keyId": w.public_key_id,
            "publicKey": read(&w.public_key_file), "baseURL": format!("{}/", w.api_base),
        });
        cmd.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        node(cmd)
    };
    let native = tokio::task::block_in_place(|| {
        call(
            "native",
            json!({"body": {
                "appid": w.appid, "mchid": w.mchid, "description": "SDK", "out_trade_no": "SDK_W1",
                "notify_url": "https://merchant.example/notify", "amount": {"total": 100, "currency": "CNY"}
            }}),
        )
    });
    assert_eq!(native["status"], 200, "{native}");
    assert!(native["data"]["code_url"]
        .as_str()
        .is_some_and(|u| u.starts_with(&rig.base)));
    let q = tokio::task::block_in_place(|| call("query", json!({"outTradeNo": "SDK_W1"})));
    assert_eq!(q["data"]["trade_state"], "NOTPAY", "{q}");
    let c = tokio::task::block_in_place(|| call("close", json!({"outTradeNo": "SDK_W1"})));
    assert_eq!(c["status"], 204, "{c}");
    let q = tokio::task::block_in_place(|| call("query", json!({"outTradeNo": "SDK_W1"})));
    assert_eq!(q["data"]["trade_state"], "CLOSED", "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_scanpay_serves_both_providers_from_its_built_in_sandbox() {
    let db = common::TestDb::sqlite();
    let mut config = common::test_config(&db);
    config.sandbox = SandboxMode::Auto;
    let app = common::TestApp::spawn_with(config).await;
    let page = app.get("/sandbox/").await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("ScanPay sandbox gateways"));
    // Its keys were generated under the data directory.
    assert!(db
        .data_dir()
        .join("sandbox/keys/alipay-gateway-public.pem")
        .is_file());
    // Both of the application's own provider clients reach it and get verified answers.
    let wallet = format!("http://{}/sandbox/pay/", app.addr);
    for (provider, id) in [
        (&app.providers.alipay, "ORD_AUTO_A"),
        (&app.providers.wechat, "ORD_AUTO_W"),
    ] {
        let provider = provider.as_ref().expect("enabled through the sandbox");
        let prepay = provider
            .create_prepay(&order(id, 100, app.url("/notify/none")))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", provider.channel()));
        assert!(prepay.code_url.starts_with(&wallet), "{}", prepay.code_url);
    }
    // Even a refusal is signed, as Alipay signs it.
    let answer = app
        .client
        .post(app.url("/sandbox/alipay/gateway.do"))
        .body("method=alipay.trade.query")
        .send()
        .await
        .expect("post");
    let text = answer.text().await.expect("body");
    assert!(
        text.starts_with(r#"{"alipay_trade_query_response":{"code":"40001""#),
        "{text}"
    );
    assert!(
        text.contains(r#","sign":""#),
        "error answers are signed too: {text}"
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn api_latency_and_timeouts_are_injected() {
    let rig = rig_with("latency_ms=300", 1.0).await;
    let started = Instant::now();
    rig.alipay
        .create_prepay(&order("ORD_L1", 5, rig.receiver.url("alipay")))
        .await
        .expect("slow but fine");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the call waited the injected latency"
    );

    let rig = rig_with("timeout_pct=100", 1.0).await;
    // A client with a short deadline, to see the hang as a timeout quickly.
    let (a, _) = provider_settings(&rig.sandbox.keys_dir(), &rig.base);
    let client = server::providers::alipay::Alipay::new(
        server::providers::alipay::AlipayAccount {
            gateway: a.gateway,
            app_id: a.app_id,
            seller_id: Some(a.seller_id),
        },
        Arc::new(
            server::providers::keys::private_key_from_text(&read(&a.private_key_file))
                .expect("key"),
        ),
        Arc::new(
            server::providers::keys::public_key_from_text(&read(&a.public_key_file)).expect("key"),
        ),
        server::providers::http_client(Duration::from_millis(500), Duration::from_millis(500)),
        Duration::from_millis(500),
    );
    let err = client
        .create_prepay(&order("ORD_L2", 5, rig.receiver.url("alipay")))
        .await
        .expect_err("hangs");
    assert!(
        matches!(err, ProviderError::Timeout(_)) && err.is_transient(),
        "{err:?}"
    );
}
