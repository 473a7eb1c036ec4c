//! Asynchronous callback processing and its risk controls, on SQLite and PostgreSQL: the
//! real application with its built-in sandbox, and notifications the test signs itself with
//! the sandbox gateways' keys (as the provider would), so every field can be chosen or forged.

use crate::common::{
    self, pay_in_wallet, sandbox_config, scanpay_command, status_of, wait_for, TestApp, TestDb,
};
use crate::common::{oid, otn};
use app::money::Amount;
use futures::StreamExt;
use serde_json::json;
use server::orders::{self, OrderStatus};
use server::payments::{expiry, inbox, AttemptStatus};
use server::providers::alipay::wire as alipay_wire;
use server::providers::Channel;
use server::risk::{self, Scope};
use server::sandbox::deliver::{sign_alipay_notification, sign_wechat_notification, Outgoing};
use server::sandbox::keys::SandboxKeys;
use server::sandbox::{ALIPAY_APP_ID, ALIPAY_SELLER_ID, WECHAT_APPID, WECHAT_MCHID};
use sqlx::Row;
use std::collections::BTreeMap;
use std::time::Duration;

on_both_engines!(
    a_hundred_copies_twenty_at_a_time_pay_once,
    forgeries_are_refused_recorded_and_change_nothing,
    unreadable_bodies_get_a_clear_4xx_and_only_the_raw_record,
    a_stale_unpaid_notification_after_paid_changes_nothing,
    alipay_refund_echoes_never_pay_or_close,
    a_failure_reply_is_followed_by_a_redelivery_that_pays,
    expiry_racing_a_payment_ends_paid_never_expired,
    a_late_payment_is_kept_flagged_and_recorded_as_risk,
    crash_after_commit_then_redelivery_is_a_no_op_success,
    crash_before_commit_then_redelivery_pays_once,
);

/// The application with its sandbox (time scaled ×1000), its own data directory, and the
/// keys the sandbox signs notifications with.
struct Rig {
    app: TestApp,
    keys: SandboxKeys,
    dir: tempfile::TempDir,
}

async fn rig(db: &TestDb) -> Rig {
    let dir = tempfile::tempdir().expect("data dir");
    let mut config = sandbox_config(db);
    config.data_dir = dir.path().to_path_buf();
    let app = TestApp::spawn_with(config).await;
    let keys = SandboxKeys::load_or_create(&dir.path().join("sandbox/keys")).expect("keys");
    Rig { app, keys, dir }
}

/// A new order with a live code in `channel`; returns (order id, out_trade_no).
async fn order_with_code(rig: &Rig, fen: i64, channel: Channel) -> (String, String) {
    let (order, attempt) = common::order_with_code(&rig.app, fen, channel).await;
    (
        order.id.as_str().to_string(),
        attempt.out_trade_no.into_string(),
    )
}

/// The fields of a genuine Alipay trade notification.
fn alipay_fields(out_trade_no: &str, fen: i64, status: &str) -> BTreeMap<String, String> {
    let amount = alipay_wire::format_amount(Amount::from_fen(fen).expect("amount"));
    [
        ("notify_time", "2026-11-27 10:00:00"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2026112700222100000012345678"),
        ("app_id", ALIPAY_APP_ID),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("trade_no", "2026112722001400000000000001"),
        ("out_trade_no", out_trade_no),
        ("seller_id", ALIPAY_SELLER_ID),
        ("trade_status", status),
        ("total_amount", &amount),
        ("subject", "Oolong tea"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The transaction of a genuine WeChat Pay notification.
fn wechat_transaction(out_trade_no: &str, fen: i64, state: &str) -> serde_json::Value {
    let mut t = json!({
        "appid": WECHAT_APPID,
        "mchid": WECHAT_MCHID,
        "out_trade_no": out_trade_no,
        "trade_type": "NATIVE",
        "trade_state": state,
        "amount": { "total": fen, "currency": "CNY" },
    });
    if state == "SUCCESS" {
        t["transaction_id"] = json!("4200002026112700000000000001");
        t["success_time"] = json!("2026-11-27T18:00:00+08:00");
    }
    t
}

fn now_secs() -> i64 {
    server::infra::clock::now_ms() / 1000
}

impl Rig {
    fn alipay(&self, fields: BTreeMap<String, String>) -> Outgoing {
        sign_alipay_notification(&self.keys.alipay_gateway, fields, false)
    }

    fn wechat(&self, transaction: &serde_json::Value, ts: i64, nonce: &str) -> Outgoing {
        sign_wechat_notification(
            &self.keys.wechat_gateway,
            &self.keys.wechat_apiv3_key,
            "EV-2026112700000001",
            transaction,
            ts,
            nonce,
            false,
        )
    }

    /// Posts a notification; returns the status and body of the reply.
    async fn post(&self, channel: Channel, n: &Outgoing) -> (u16, String) {
        post_to(
            &self.app.client,
            &self.app.url(&format!("/notify/{channel}")),
            n,
        )
        .await
        .expect("reply")
    }

    async fn count(&self, sql: &str, key: &str) -> i64 {
        sqlx::query(sql)
            .bind(key)
            .fetch_one(self.app.db.pool())
            .await
            .expect("count")
            .try_get::<i64, _>(0)
            .expect("n")
    }

    async fn paid_events(&self, id: &str) -> i64 {
        self.count(
            "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND kind = 'status.paid'",
            id,
        )
        .await
    }

    async fn outbox_rows(&self, id: &str, topic: &str) -> usize {
        server::outbox::for_order(&self.app.db, &oid(id))
            .await
            .expect("outbox")
            .iter()
            .filter(|e| e.topic == topic)
            .count()
    }

    async fn risk_kinds(&self, id: &str) -> Vec<String> {
        risk::for_order(&self.app.db, &oid(id))
            .await
            .expect("risk")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

async fn post_to(
    client: &reqwest::Client,
    url: &str,
    n: &Outgoing,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = client.post(url).body(n.body.clone());
    for (k, v) in &n.headers {
        req = req.header(*k, v);
    }
    let answer = req.send().await?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await?))
}

fn accepted(channel: Channel, reply: &(u16, String)) -> bool {
    match channel {
        Channel::Alipay => reply.0 == 200 && reply.1 == "success",
        Channel::Wechat => reply.0 == 204 || reply.0 == 200,
    }
}

async fn a_hundred_copies_twenty_at_a_time_pay_once(db: TestDb) {
    let rig = rig(&db).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (id, trade) = order_with_code(&rig, 4_321, channel).await;
        let n = match channel {
            Channel::Alipay => rig.alipay(alipay_fields(&trade, 4_321, "TRADE_SUCCESS")),
            Channel::Wechat => rig.wechat(
                &wechat_transaction(&trade, 4_321, "SUCCESS"),
                now_secs(),
                "NONCE0123456789ABCDEF0123456789AB",
            ),
        };
        let url = rig.app.url(&format!("/notify/{channel}"));
        let replies: Vec<(u16, String)> = futures::stream::iter(0..100)
            .map(|_| {
                let (client, url, n) = (rig.app.client.clone(), url.clone(), &n);
                async move { post_to(&client, &url, n).await.expect("reply") }
            })
            .buffer_unordered(20)
            .collect()
            .await;
        assert_eq!(replies.len(), 100);
        for r in &replies {
            assert!(
                accepted(channel, r),
                "{channel}: every copy answered success: {r:?}"
            );
        }
        assert_eq!(
            status_of(&rig.app, &id).await,
            OrderStatus::Paid,
            "{channel}"
        );
        assert_eq!(rig.paid_events(&id).await, 1, "{channel}: one paid event");
        assert_eq!(
            rig.outbox_rows(&id, "order.paid").await,
            1,
            "{channel}: one outbox row"
        );
        let stored = inbox::for_trade(&rig.app.db, &otn(&trade))
            .await
            .expect("inbox");
        assert_eq!(stored.len(), 100, "{channel}: every copy stored raw");
        let outcomes = |o: &str| stored.iter().filter(|s| s.outcome_name() == o).count();
        assert_eq!(outcomes("accepted"), 1, "{channel}");
        assert_eq!(outcomes("duplicate"), 99, "{channel}");
        assert!(rig.risk_kinds(&id).await.is_empty(), "{channel}: no risk");
        let attempts = rig
            .app
            .payments
            .attempts(&oid(&id))
            .await
            .expect("attempts");
        assert_eq!(attempts[0].status, AttemptStatus::Paid);
    }
    rig.app.stop().await.expect("stop");
}

async fn forgeries_are_refused_recorded_and_change_nothing(db: TestDb) {
    let rig = rig(&db).await;
    let (a_id, a_trade) = order_with_code(&rig, 1_000, Channel::Alipay).await;
    let (w_id, w_trade) = order_with_code(&rig, 1_000, Channel::Wechat).await;
    let with = |mut f: BTreeMap<String, String>, k: &str, v: &str| {
        f.insert(k.into(), v.into());
        f
    };
    let good = alipay_fields(&a_trade, 1_000, "TRADE_SUCCESS");
    // The body of a genuine notification with one field changed after signing.
    let changed_after_signing = {
        let n = rig.alipay(good.clone());
        let body = String::from_utf8(n.body)
            .expect("utf8")
            .replace("subject=Oolong+tea", "subject=Oolong+tea+x2");
        Outgoing {
            headers: n.headers,
            body: body.into_bytes(),
        }
    };
    // Signed over everything but `sign`: `sign_type` included, which Alipay never does.
    let signed_with_sign_type = {
        let content = alipay_wire::sign_content(&good, &["sign"]);
        let mut f = good.clone();
        use server::providers::crypto::Signer;
        f.insert(
            "sign".into(),
            rig.keys
                .alipay_gateway
                .sign_base64(content.as_bytes())
                .expect("sign"),
        );
        Outgoing {
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
            body: form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&f)
                .finish()
                .into_bytes(),
        }
    };
    let mut missing = good.clone();
    missing.remove("total_amount");
    let alipay_cases: Vec<(&str, Outgoing, &str)> = vec![
        (
            "bad signature",
            sign_alipay_notification(&rig.keys.alipay_gateway, good.clone(), true),
            "bad_signature",
        ),
        ("changed field", changed_after_signing, "bad_signature"),
        (
            "amount + 1 fen",
            rig.alipay(with(good.clone(), "total_amount", "10.01")),
            "amount_mismatch",
        ),
        (
            "amount - 1 fen",
            rig.alipay(with(good.clone(), "total_amount", "9.99")),
            "amount_mismatch",
        ),
        (
            "other app_id",
            rig.alipay(with(good.clone(), "app_id", "9021000000009999")),
            "foreign_account",
        ),
        (
            "other seller_id",
            rig.alipay(with(good.clone(), "seller_id", "2088000000009999")),
            "foreign_account",
        ),
        (
            "signed with sign_type",
            signed_with_sign_type,
            "bad_signature",
        ),
        ("missing total_amount", rig.alipay(missing), "missing_field"),
    ];
    for (what, n, kind) in alipay_cases {
        let before = rig.risk_kinds(&a_id).await.len();
        let reply = rig.post(Channel::Alipay, &n).await;
        assert_eq!(reply, (400, "fail".to_string()), "alipay {what}");
        assert_eq!(
            status_of(&rig.app, &a_id).await,
            OrderStatus::Pending,
            "alipay {what}"
        );
        let kinds = rig.risk_kinds(&a_id).await;
        assert_eq!(kinds.len(), before + 1, "alipay {what}: one risk event");
        assert_eq!(
            kinds.last().map(String::as_str),
            Some(kind),
            "alipay {what}"
        );
    }
    assert_eq!(
        rig.count(
            "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND kind LIKE 'risk.%'",
            &a_id
        )
        .await,
        8,
        "each refusal is in the order's timeline"
    );

    // An unknown out_trade_no, properly signed: only the global list can show it.
    let unknown = rig.alipay(alipay_fields(
        "20261127000000UNKNOWN00001",
        1_000,
        "TRADE_SUCCESS",
    ));
    assert_eq!(rig.post(Channel::Alipay, &unknown).await.1, "fail");
    let global = risk::recent(&rig.app.db, Scope::WithoutOrder, 10)
        .await
        .expect("global list");
    assert!(
        global.iter().any(|e| e.kind == "unknown_order"
            && e.out_trade_no.as_deref() == Some("20261127000000UNKNOWN00001")
            && e.remote_addr
                .as_deref()
                .is_some_and(|a| a.starts_with("127.0.0.1:"))),
        "{global:?}"
    );

    // The operator's view of the same list.
    let listed = scanpay_command()
        .env("SCANPAY_DATABASE_URL", db.url.url.expose())
        .env("SCANPAY_DATA_DIR", rig.dir.path())
        .args(["risk", "--unknown-orders", "--json"])
        .output()
        .expect("scanpay risk");
    assert!(listed.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["kind"], "unknown_order");
    assert_eq!(lines[0]["out_trade_no"], "20261127000000UNKNOWN00001");

    // WeChat Pay.
    let now = now_secs();
    let paid = wechat_transaction(&w_trade, 1_000, "SUCCESS");
    let mut other_mchid = paid.clone();
    other_mchid["mchid"] = json!("1900009999");
    let mut more = paid.clone();
    more["amount"]["total"] = json!(1_001);
    let mut probe = rig.wechat(&paid, now, "NONCEPROBE");
    for (k, v) in probe.headers.iter_mut() {
        if *k == "wechatpay-signature" {
            *v = format!("WECHATPAY/SIGNTEST/{v}");
        }
    }
    let wechat_cases: Vec<(&str, Outgoing, &str)> = vec![
        (
            "bad signature",
            sign_wechat_notification(
                &rig.keys.wechat_gateway,
                &rig.keys.wechat_apiv3_key,
                "EV-1",
                &paid,
                now,
                "NONCEBAD",
                true,
            ),
            "bad_signature",
        ),
        (
            "timestamp 301 s old",
            rig.wechat(&paid, now - 301, "NONCEOLD"),
            "stale_timestamp",
        ),
        ("SIGNTEST probe", probe, "probe_signature"),
        (
            "other mchid",
            rig.wechat(&other_mchid, now, "NONCEMCH"),
            "foreign_account",
        ),
        (
            "amount + 1 fen",
            rig.wechat(&more, now, "NONCEAMT"),
            "amount_mismatch",
        ),
    ];
    for (what, n, kind) in wechat_cases {
        let before = rig.risk_kinds(&w_id).await.len();
        let (status, body) = rig.post(Channel::Wechat, &n).await;
        assert_eq!(status, 400, "wechat {what}");
        let fail: serde_json::Value = serde_json::from_str(&body).expect("JSON reply");
        assert_eq!(fail["code"], "FAIL", "wechat {what}");
        assert_eq!(
            status_of(&rig.app, &w_id).await,
            OrderStatus::Pending,
            "wechat {what}"
        );
        let kinds = rig.risk_kinds(&w_id).await;
        assert_eq!(kinds.len(), before + 1, "wechat {what}: one risk event");
        assert_eq!(
            kinds.last().map(String::as_str),
            Some(kind),
            "wechat {what}"
        );
    }

    // A reused nonce: the first notification (not paid) is taken; another one under the same
    // nonce is a replay, even though its own signature is good.
    let first = rig.wechat(
        &wechat_transaction(&w_trade, 1_000, "NOTPAY"),
        now,
        "NONCEREUSED",
    );
    assert!(accepted(
        Channel::Wechat,
        &rig.post(Channel::Wechat, &first).await
    ));
    let replay = rig.wechat(&paid, now, "NONCEREUSED");
    assert_eq!(rig.post(Channel::Wechat, &replay).await.0, 400);
    assert_eq!(
        status_of(&rig.app, &w_id).await,
        OrderStatus::Pending,
        "replay"
    );
    assert_eq!(
        rig.risk_kinds(&w_id).await.last().map(String::as_str),
        Some("replay")
    );
    // …while the identical copy of the first is still answered success.
    assert!(accepted(
        Channel::Wechat,
        &rig.post(Channel::Wechat, &first).await
    ));

    // The refusals are counted in /metrics by reason.
    let metrics = rig.app.get("/metrics").await.text().await.expect("metrics");
    for kind in [
        "bad_signature",
        "amount_mismatch",
        "replay",
        "stale_timestamp",
        "unknown_order",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("risk_events_total")
                    && l.contains(&format!("kind=\"{kind}\""))),
            "risk_events_total{{kind={kind}}} missing"
        );
    }
    // Nothing was paid, and no outbox event was written.
    assert_eq!(rig.outbox_rows(&a_id, "order.paid").await, 0);
    assert_eq!(rig.outbox_rows(&w_id, "order.paid").await, 0);

    // Finally the genuine notifications still pay.
    assert!(accepted(
        Channel::Alipay,
        &rig.post(Channel::Alipay, &rig.alipay(good)).await
    ));
    let genuine = rig.wechat(&paid, now_secs(), "NONCEGENUINE");
    assert!(accepted(
        Channel::Wechat,
        &rig.post(Channel::Wechat, &genuine).await
    ));
    assert_eq!(status_of(&rig.app, &a_id).await, OrderStatus::Paid);
    assert_eq!(status_of(&rig.app, &w_id).await, OrderStatus::Paid);
    rig.app.stop().await.expect("stop");
}

async fn unreadable_bodies_get_a_clear_4xx_and_only_the_raw_record(db: TestDb) {
    let rig = rig(&db).await;
    let risk_before = risk::recent(&rig.app.db, Scope::All, 100)
        .await
        .expect("risk")
        .len();
    for channel in [Channel::Alipay, Channel::Wechat] {
        let not_utf8 = Outgoing {
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
            body: b"out_trade_no=\xff\xfe&trade_status=TRADE_SUCCESS".to_vec(),
        };
        let (status, _) = rig.post(channel, &not_utf8).await;
        assert_eq!(status, 400, "{channel}: not UTF-8");
        let oversized = Outgoing {
            headers: vec![("content-type", "application/json".into())],
            body: vec![b'a'; 70 * 1024],
        };
        let (status, body) = rig.post(channel, &oversized).await;
        assert_eq!(status, 413, "{channel}: oversized");
        if channel == Channel::Wechat {
            assert!(body.contains("64 KiB"), "{body}");
        }
    }
    let stored = inbox::recent(&rig.app.db, 10).await.expect("inbox");
    assert_eq!(stored.len(), 4, "each unreadable body has its raw record");
    for s in &stored {
        assert_eq!(s.outcome, Some(inbox::Outcome::Rejected));
        assert!(s.out_trade_no.is_none() && s.order_id.is_none());
        if s.body_size > 64 * 1024 {
            assert_eq!(s.body_size, 70 * 1024);
            assert_eq!(s.body.len(), 64 * 1024, "the kept part is capped");
            assert!(s.reason.as_deref().is_some_and(|r| r.contains("larger")));
        } else {
            assert!(
                s.body.starts_with(b"out_trade_no=\xff\xfe"),
                "kept byte for byte"
            );
            assert!(s.reason.as_deref().is_some_and(|r| r.contains("UTF-8")));
        }
    }
    let risk_after = risk::recent(&rig.app.db, Scope::All, 100)
        .await
        .expect("risk")
        .len();
    assert_eq!(
        risk_after, risk_before,
        "nothing stored beyond the raw record"
    );
    // After the retention period a refused body is dropped; the record of it stays.
    assert_eq!(
        inbox::forget_old_refused_bodies(&rig.app.db)
            .await
            .expect("purge"),
        0,
        "nothing is old yet"
    );
    sqlx::query("UPDATE notifications SET received_at = $1")
        .bind(server::infra::clock::now_ms() - (inbox::REFUSED_BODY_DAYS * 24 * 3600 + 60) * 1000)
        .execute(rig.app.db.pool())
        .await
        .expect("age");
    assert_eq!(
        inbox::forget_old_refused_bodies(&rig.app.db)
            .await
            .expect("purge"),
        4
    );
    for s in inbox::recent(&rig.app.db, 10).await.expect("inbox") {
        assert!(s.body.is_empty(), "{s:?}");
        assert!(
            s.body_size > 0 && s.reason.is_some(),
            "the record stays: {s:?}"
        );
    }
    rig.app.stop().await.expect("stop");
}

async fn a_stale_unpaid_notification_after_paid_changes_nothing(db: TestDb) {
    let rig = rig(&db).await;
    let (a_id, a_trade) = order_with_code(&rig, 700, Channel::Alipay).await;
    let (w_id, w_trade) = order_with_code(&rig, 700, Channel::Wechat).await;
    let paid_a = rig.alipay(alipay_fields(&a_trade, 700, "TRADE_SUCCESS"));
    let stale_a = rig.alipay(alipay_fields(&a_trade, 700, "WAIT_BUYER_PAY"));
    let paid_w = rig.wechat(
        &wechat_transaction(&w_trade, 700, "SUCCESS"),
        now_secs(),
        "N1",
    );
    let stale_w = rig.wechat(
        &wechat_transaction(&w_trade, 700, "NOTPAY"),
        now_secs(),
        "N2",
    );
    for (channel, id, paid, stale) in [
        (Channel::Alipay, &a_id, paid_a, stale_a),
        (Channel::Wechat, &w_id, paid_w, stale_w),
    ] {
        assert!(accepted(channel, &rig.post(channel, &paid).await));
        let before = orders::get(&rig.app.db, &oid(id))
            .await
            .expect("read")
            .expect("order");
        assert!(
            accepted(channel, &rig.post(channel, &stale).await),
            "{channel}: answered success"
        );
        let after = orders::get(&rig.app.db, &oid(id))
            .await
            .expect("read")
            .expect("order");
        assert_eq!(
            after, before,
            "{channel}: the stale notification changed nothing"
        );
        assert_eq!(after.status, OrderStatus::Paid);
        assert_eq!(rig.paid_events(id).await, 1);
        let stored = inbox::for_order(&rig.app.db, &oid(id))
            .await
            .expect("inbox");
        let last = stored.last().expect("stored");
        assert_eq!(last.outcome, Some(inbox::Outcome::Accepted));
        assert!(
            last.reason
                .as_deref()
                .is_some_and(|r| r.contains("not a payment")),
            "{last:?}"
        );
    }
    rig.app.stop().await.expect("stop");
}

async fn alipay_refund_echoes_never_pay_or_close(db: TestDb) {
    let rig = rig(&db).await;
    // Alipay's trade_status_sync after a refund carries refund_fee / gmt_refund / out_biz_no:
    // an echo of our own refund. TRADE_SUCCESS in it is not a payment, TRADE_CLOSED (after a
    // full refund) not a close.
    let echo = |trade: &str, status: &str| {
        let mut f = alipay_fields(trade, 500, status);
        f.insert("refund_fee".into(), "5.00".into());
        f.insert("gmt_refund".into(), "2026-11-27 10:05:00.123".into());
        f.insert("out_biz_no".into(), "rf_0123456789".into());
        f.insert("notify_id".into(), format!("echo-{trade}-{status}"));
        rig.alipay(f)
    };
    // An unpaid order: an echo naming it pays nothing.
    let (unpaid, unpaid_trade) = order_with_code(&rig, 500, Channel::Alipay).await;
    assert!(accepted(
        Channel::Alipay,
        &rig.post(Channel::Alipay, &echo(&unpaid_trade, "TRADE_SUCCESS"))
            .await
    ));
    let o = orders::get(&rig.app.db, &oid(&unpaid))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(o.status, OrderStatus::Pending, "an echo is never a payment");
    assert_eq!(rig.outbox_rows(&unpaid, "order.paid").await, 0);
    // A paid order: echoes of either kind change nothing.
    let (paid, paid_trade) = order_with_code(&rig, 500, Channel::Alipay).await;
    let pay = rig.alipay(alipay_fields(&paid_trade, 500, "TRADE_SUCCESS"));
    assert!(accepted(
        Channel::Alipay,
        &rig.post(Channel::Alipay, &pay).await
    ));
    let before = orders::get(&rig.app.db, &oid(&paid))
        .await
        .expect("read")
        .expect("order");
    for status in ["TRADE_SUCCESS", "TRADE_CLOSED"] {
        assert!(accepted(
            Channel::Alipay,
            &rig.post(Channel::Alipay, &echo(&paid_trade, status)).await
        ));
        let after = orders::get(&rig.app.db, &oid(&paid))
            .await
            .expect("read")
            .expect("order");
        assert_eq!(after, before, "{status}");
        let last = inbox::for_order(&rig.app.db, &oid(&paid))
            .await
            .expect("inbox")
            .pop()
            .expect("stored");
        assert!(
            last.reason
                .as_deref()
                .is_some_and(|r| r.contains("refund echo")),
            "{status}: {last:?}"
        );
    }
    rig.app.stop().await.expect("stop");
}

async fn a_failure_reply_is_followed_by_a_redelivery_that_pays(db: TestDb) {
    let rig = rig(&db).await;
    for channel in [Channel::Wechat, Channel::Alipay] {
        let (id, trade) = order_with_code(&rig, 880, channel).await;
        // Our own transient fault on the first delivery: the transaction does not commit.
        server::infra::failpoints::arm(
            "record_payment.before_commit",
            Some(&trade),
            server::infra::failpoints::Action::Error,
            Some(1),
        );
        let attempt = rig
            .app
            .payments
            .attempt(&otn(&trade))
            .await
            .expect("read")
            .expect("attempt");
        pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "").await;
        // The sandbox hears the failure and redelivers on the provider's (scaled) schedule.
        let mut stored = Vec::new();
        for _ in 0..400 {
            stored = inbox::for_trade(&rig.app.db, &otn(&trade))
                .await
                .expect("inbox");
            if stored
                .iter()
                .any(|s| s.outcome == Some(inbox::Outcome::Accepted))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            stored.first().and_then(|s| s.outcome),
            Some(inbox::Outcome::Retry),
            "{channel}: {stored:?}"
        );
        assert!(
            stored
                .iter()
                .any(|s| s.outcome == Some(inbox::Outcome::Accepted)),
            "{channel}: redelivered: {stored:?}"
        );
        assert_eq!(
            status_of(&rig.app, &id).await,
            OrderStatus::Paid,
            "{channel}"
        );
        assert_eq!(rig.paid_events(&id).await, 1);
        assert_eq!(rig.outbox_rows(&id, "order.paid").await, 1);
    }
    rig.app.stop().await.expect("stop");
}

async fn expiry_racing_a_payment_ends_paid_never_expired(db: TestDb) {
    let rig = rig(&db).await;
    for channel in [Channel::Alipay, Channel::Wechat] {
        for round in 0..3 {
            let (id, trade) = order_with_code(&rig, 990, channel).await;
            let attempt = rig
                .app
                .payments
                .attempt(&otn(&trade))
                .await
                .expect("read")
                .expect("attempt");
            // Paid at the provider; the notification is on its way while the order runs out
            // of time and the expiry worker closes it.
            let faults = format!("delay_ms={}", round * 20);
            let pay = pay_in_wallet(
                &rig.app,
                attempt.code_url.as_deref().expect("code"),
                &faults,
            );
            tokio::join!(pay, async {
                sqlx::query("UPDATE orders SET expires_at = $1 WHERE id = $2")
                    .bind(server::infra::clock::now_ms() - 1)
                    .bind(&id)
                    .execute(rig.app.db.pool())
                    .await
                    .expect("expire");
            });
            let (a, b) = tokio::join!(
                expiry::run_once(&rig.app.payments),
                expiry::run_once(&rig.app.payments)
            );
            a.expect("expiry round");
            b.expect("expiry round");
            wait_for(&rig.app, &id, OrderStatus::Paid).await;
            let order = orders::get(&rig.app.db, &oid(&id))
                .await
                .expect("read")
                .expect("order");
            assert_eq!(order.status, OrderStatus::Paid, "{channel} round {round}");
            assert!(
                !order.late,
                "{channel} round {round}: never expired, so not late"
            );
            assert_eq!(
                rig.count(
                    "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND kind = 'status.expired'",
                    &id
                )
                .await,
                0,
                "{channel} round {round}"
            );
            assert_eq!(rig.outbox_rows(&id, "order.expired").await, 0);
            assert_eq!(rig.outbox_rows(&id, "order.paid").await, 1);
        }
    }
    rig.app.stop().await.expect("stop");
}

async fn a_late_payment_is_kept_flagged_and_recorded_as_risk(db: TestDb) {
    let rig = rig(&db).await;
    let (id, trade) = order_with_code(&rig, 1_500, Channel::Alipay).await;
    // The order expired (and its code was closed) as far as ScanPay knows…
    orders::transition(
        &rig.app.db,
        &oid(&id),
        OrderStatus::Expired,
        json!({ "reason": "test" }),
    )
    .await
    .expect("expired");
    // …then the provider reports the money arrived anyway.
    let n = rig.alipay(alipay_fields(&trade, 1_500, "TRADE_SUCCESS"));
    assert!(accepted(
        Channel::Alipay,
        &rig.post(Channel::Alipay, &n).await
    ));
    let order = orders::get(&rig.app.db, &oid(&id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(order.status, OrderStatus::Paid);
    assert!(order.late);
    assert_eq!(rig.risk_kinds(&id).await, vec!["late_payment".to_string()]);
    let paid = server::outbox::for_order(&rig.app.db, &oid(&id))
        .await
        .expect("outbox");
    let paid = paid
        .iter()
        .find(|e| e.topic == "order.paid")
        .expect("order.paid event");
    assert_eq!(paid.payload["late"], json!(true));
    assert_eq!(paid.payload["amount"], json!(1_500));
    rig.app.stop().await.expect("stop");
}

/// The `scanpay` binary serving `rig`'s database and data directory, with fault points set.
struct Process {
    child: std::process::Child,
    url: String,
}

fn start_process(db: &TestDb, dir: &std::path::Path, failpoints: Option<&str>) -> Process {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut cmd = scanpay_command();
    cmd.env("SCANPAY_DATABASE_URL", db.url.url.expose())
        .env("SCANPAY_DATA_DIR", dir)
        .env("SCANPAY_LISTEN", "127.0.0.1:0")
        .env("SCANPAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(f) = failpoints {
        cmd.env("SCANPAY_FAILPOINTS", f);
    }
    let mut child = cmd.spawn().expect("scanpay starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    Process { child, url }
}

impl Process {
    async fn post(&self, channel: Channel, n: &Outgoing) -> Result<(u16, String), reqwest::Error> {
        post_to(
            &reqwest::Client::new(),
            &format!("{}/notify/{channel}", self.url),
            n,
        )
        .await
    }

    /// Waits for the process to have died (it aborted).
    fn wait_dead(mut self) -> std::process::ExitStatus {
        for _ in 0..400 {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("the process did not die");
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Creates a paid-at-the-provider notification for a fresh order, then stops the in-process
/// application so only the binary serves the database.
async fn crash_rig(db: &TestDb, channel: Channel) -> (tempfile::TempDir, String, Outgoing) {
    let rig = rig(db).await;
    let (id, trade) = order_with_code(&rig, 2_468, channel).await;
    let n = match channel {
        Channel::Alipay => rig.alipay(alipay_fields(&trade, 2_468, "TRADE_SUCCESS")),
        Channel::Wechat => rig.wechat(
            &wechat_transaction(&trade, 2_468, "SUCCESS"),
            now_secs(),
            "NONCECRASH0123456789",
        ),
    };
    let Rig { app, dir, .. } = rig;
    app.stop().await.expect("stop");
    (dir, id, n)
}

async fn paid_once(db: &TestDb, id: &str) {
    let pool = server::infra::db::Db::connect(&db.url, 1)
        .await
        .expect("connect");
    let order = orders::get(&pool, &oid(id))
        .await
        .expect("read")
        .expect("order");
    assert_eq!(order.status, OrderStatus::Paid);
    let events: i64 = sqlx::query(
        "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND kind = 'status.paid'",
    )
    .bind(id)
    .fetch_one(pool.pool())
    .await
    .expect("count")
    .try_get(0)
    .expect("n");
    assert_eq!(events, 1);
    let outbox = server::outbox::for_order(&pool, &oid(id))
        .await
        .expect("outbox");
    assert_eq!(outbox.iter().filter(|e| e.topic == "order.paid").count(), 1);
    pool.close().await;
}

async fn crash_after_commit_then_redelivery_is_a_no_op_success(db: TestDb) {
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (dir, id, n) = crash_rig(&db, channel).await;
        let p = start_process(&db, dir.path(), Some("notify.before_reply=abort"));
        assert!(
            p.post(channel, &n).await.is_err(),
            "{channel}: no reply: the process died"
        );
        assert!(!p.wait_dead().success());
        // The payment was committed before the crash.
        paid_once(&db, &id).await;
        let p = start_process(&db, dir.path(), None);
        let reply = p.post(channel, &n).await.expect("reply");
        assert!(accepted(channel, &reply), "{channel}: {reply:?}");
        p.stop();
        paid_once(&db, &id).await;
    }
}

async fn crash_before_commit_then_redelivery_pays_once(db: TestDb) {
    for channel in [Channel::Alipay, Channel::Wechat] {
        let (dir, id, n) = crash_rig(&db, channel).await;
        let p = start_process(&db, dir.path(), Some("record_payment.before_commit=abort"));
        assert!(
            p.post(channel, &n).await.is_err(),
            "{channel}: no reply: the process died"
        );
        assert!(!p.wait_dead().success());
        let pool = server::infra::db::Db::connect(&db.url, 1)
            .await
            .expect("connect");
        let order = orders::get(&pool, &oid(&id))
            .await
            .expect("read")
            .expect("order");
        assert_eq!(order.status, OrderStatus::Pending, "{channel}: rolled back");
        pool.close().await;
        let p = start_process(&db, dir.path(), None);
        let reply = p.post(channel, &n).await.expect("reply");
        assert!(accepted(channel, &reply), "{channel}: {reply:?}");
        let again = p.post(channel, &n).await.expect("reply");
        assert!(accepted(channel, &again), "{channel}: {again:?}");
        p.stop();
        paid_once(&db, &id).await;
    }
}
