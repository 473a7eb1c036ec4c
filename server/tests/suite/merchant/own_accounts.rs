//! Each merchant's own provider account (#17, direct mode): its orders are prepaid, paid,
//! queried and refunded through it, notifications are verified with its keys and may speak
//! only of its own attempts, and its keys are sealed at rest under the master key.

use crate::common::phone::{bridge, location, open, sign_in_and_answer, WECHAT_UA};
use crate::common::{
    node, pay_in_wallet, refund_settles, sandbox_config, state_at_provider, wait_for, TestApp,
    TestDb,
};
use app::money::Amount;
use server::credentials::{self, AccountIds, AccountKeys, Credentials};
use server::infra::sealed::Keyring;
use server::infra::secret::Secret;
use server::merchants::MerchantId;
use server::orders::{NewOrder, OrderStatus};
use server::payments::refunds::RefundStatus;
use server::payments::StartPayment;
use server::providers::config::{AlipaySettings, WechatSettings};
use server::providers::{alipay::wire as alipay_wire, Channel, TradeState};
use server::sandbox::deliver::{sign_alipay_notification, Outgoing};
use server::sandbox::{Sandbox, SandboxAccount, SandboxSettings};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;

on_both_engines!(
    each_merchant_is_prepaid_paid_queried_and_refunded_through_its_own_account,
    a_notification_signed_by_one_merchant_about_anothers_order_is_refused_and_recorded,
    credentials_are_sealed_at_rest_and_rotation_keeps_merchants_paid,
    the_command_saves_only_proven_keys_and_never_prints_them,
    a_sub_merchant_is_paid_into_its_own_account_through_the_operators_partner_access,
    the_workers_ask_and_close_through_the_attempts_account,
    inside_wechat_a_merchant_is_paid_through_its_own_official_account,
    inside_wechat_a_sub_merchant_is_paid_through_its_own_or_the_operators_official_account,
);

/// The application with its in-process sandbox, and two more sandbox merchants.
struct Rig {
    app: TestApp,
    dir: tempfile::TempDir,
    base: String,
    a: Arc<SandboxAccount>,
    b: Arc<SandboxAccount>,
}

async fn rig(db: &TestDb, master_key_file: Option<std::path::PathBuf>) -> Rig {
    let dir = tempfile::tempdir().expect("data dir");
    let mut config = sandbox_config(db);
    config.data_dir = dir.path().to_path_buf();
    config.master_key_file = master_key_file;
    let app = TestApp::spawn_with(config).await;
    let base = app.url("/sandbox");
    // A second instance over the same directory registers the accounts, as `scanpay sandbox`
    // in another process would; the running one reads them when it first meets their ids.
    let admin = Sandbox::open(SandboxSettings {
        dir: dir.path().join("sandbox"),
        base_url: base.clone(),
        time_scale: 0.001,
        faults: Default::default(),
    })
    .await
    .expect("sandbox");
    let a = admin.add_account("shop-a").expect("account a");
    let b = admin.add_account("shop-b").expect("account b");
    assert_ne!(a.alipay_app_id, b.alipay_app_id);
    assert_ne!(a.wechat_mchid, b.wechat_mchid);
    Rig {
        app,
        dir,
        base,
        a,
        b,
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("key file")
}

/// A sandbox account's credentials at `channel`, as an operator would enter them.
fn credentials_of(account: &SandboxAccount, base: &str, channel: Channel) -> Credentials {
    let (alipay, wechat): (AlipaySettings, WechatSettings) =
        server::sandbox::settings_of(account, base);
    match channel {
        Channel::Alipay => Credentials {
            ids: AccountIds::Alipay {
                gateway: alipay.gateway,
                app_id: alipay.app_id,
                seller_id: alipay.seller_id,
            },
            keys: Secret::new(AccountKeys {
                private_key: read(&alipay.private_key_file),
                public_key: read(&alipay.public_key_file),
                apiv3_key: None,
                app_auth_token: None,
                app_secret: None,
            }),
        },
        Channel::Wechat => Credentials {
            ids: AccountIds::Wechat {
                api_base: wechat.api_base,
                appid: wechat.appid,
                mchid: wechat.mchid,
                cert_serial: wechat.cert_serial,
                public_key_id: wechat.public_key_id,
            },
            keys: Secret::new(AccountKeys {
                private_key: read(&wechat.private_key_file),
                public_key: read(&wechat.public_key_file),
                apiv3_key: Some(read(&wechat.apiv3_key_file)),
                app_auth_token: None,
                app_secret: wechat.app_secret_file.as_deref().map(read),
            }),
        },
    }
}

async fn merchant(app: &TestApp, name: &str) -> MerchantId {
    server::accounts::create_merchant(
        &app.db,
        name,
        &format!("{}@shop.example", name.to_lowercase().replace(' ', "-")),
        false,
    )
    .await
    .expect("merchant")
    .merchant_id
}

fn keyring(rig: &Rig) -> Keyring {
    Keyring::load(&rig.dir.path().join("master.key")).expect("the demo's master key")
}

/// Saves the account's credentials at both providers for `merchant`.
async fn give_accounts(rig: &Rig, keys: &Keyring, merchant: &MerchantId, account: &SandboxAccount) {
    for channel in Channel::ALL {
        let creds = credentials_of(account, &rig.base, channel);
        credentials::check(&creds)
            .await
            .unwrap_or_else(|e| panic!("{channel} check of {}: {e}", account.name));
        credentials::save(&rig.app.db, keys, merchant, &creds, Some(1))
            .await
            .expect("save");
    }
}

async fn order_of(app: &TestApp, merchant: &MerchantId, fen: i64) -> server::orders::Order {
    app.payments
        .create_order(
            &NewOrder {
                merchant_id: merchant.clone(),
                amount: Amount::from_fen(fen).expect("amount"),
                subject: "Own account".into(),
                expires_in_secs: 900,
                return_url: None,
            },
            None,
        )
        .await
        .expect("order")
}

/// Whether the sandbox's overview (`/sandbox/`) lists trade `out_trade_no` under account `id`.
async fn sandbox_shows(app: &TestApp, channel: Channel, id: &str, out_trade_no: &str) -> bool {
    let page = app
        .client
        .get(app.url("/sandbox/"))
        .send()
        .await
        .expect("overview")
        .text()
        .await
        .expect("page");
    page.lines().any(|l| {
        l.contains(&format!("<td>{channel} {id}</td>"))
            && l.contains(&format!(">{out_trade_no}</a>"))
    })
}

async fn each_merchant_is_prepaid_paid_queried_and_refunded_through_its_own_account(db: TestDb) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    let ma = merchant(&rig.app, "Shop A").await;
    let mb = merchant(&rig.app, "Shop B").await;
    give_accounts(&rig, &keys, &ma, &rig.a).await;
    give_accounts(&rig, &keys, &mb, &rig.b).await;
    let demo = MerchantId::demo();
    for channel in Channel::ALL {
        for (merchant, account) in [(&ma, Some(&rig.a)), (&mb, Some(&rig.b)), (&demo, None)] {
            let order = order_of(&rig.app, merchant, 1_200).await;
            let attempt = rig
                .app
                .payments
                .start_payment(&order.id, channel)
                .await
                .expect("prepay");
            // The attempt records whose account it went through; the sandbox shows it.
            let expect_account = account.map(|_| merchant.clone());
            assert_eq!(attempt.account, expect_account, "{channel} {merchant}");
            let shown = match (account, channel) {
                (Some(a), Channel::Alipay) => a.alipay_app_id.clone(),
                (Some(a), Channel::Wechat) => a.wechat_mchid.clone(),
                (None, Channel::Alipay) => server::sandbox::ALIPAY_APP_ID.to_string(),
                (None, Channel::Wechat) => server::sandbox::WECHAT_MCHID.to_string(),
            };
            let code = attempt.code_url.clone().expect("code");
            assert!(
                sandbox_shows(&rig.app, channel, &shown, attempt.out_trade_no.as_str()).await,
                "{channel} {merchant}: the sandbox lists the trade under {shown}"
            );
            // Paid: the notification came to the account's own URL and verified with its keys.
            pay_in_wallet(&rig.app, &code, "").await;
            wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
            // Queried through its account; the operator's account does not know the trade.
            assert_eq!(
                state_at_provider(&rig.app, &attempt).await,
                TradeState::Paid,
                "{channel} {merchant}"
            );
            if account.is_some() {
                let operator = rig.app.providers.get(channel).expect("operator").clone();
                let theirs = operator.query(&attempt.out_trade_no).await;
                assert!(
                    !matches!(&theirs, Ok(s) if s.state == TradeState::Paid),
                    "the operator's account must not see {merchant}'s trade: {theirs:?}"
                );
            }
            // Refunded through the account that took the money.
            let settled = refund_settles(&rig.app, merchant, &order.id, 200).await;
            assert_eq!(settled, RefundStatus::Succeeded, "{channel} {merchant}");
        }
    }
    rig.app.stop().await.expect("stop");
}

async fn a_notification_signed_by_one_merchant_about_anothers_order_is_refused_and_recorded(
    db: TestDb,
) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    let ma = merchant(&rig.app, "Shop A").await;
    let mb = merchant(&rig.app, "Shop B").await;
    give_accounts(&rig, &keys, &ma, &rig.a).await;
    give_accounts(&rig, &keys, &mb, &rig.b).await;
    let order = order_of(&rig.app, &mb, 3_300).await;
    let attempt = rig
        .app
        .payments
        .start_payment(&order.id, Channel::Alipay)
        .await
        .expect("prepay");
    // "Paid", about B's trade, signed with A's Alipay key and naming A's app.
    let amount = alipay_wire::format_amount(Amount::from_fen(3_300).expect("amount"));
    let fields: BTreeMap<String, String> = [
        ("notify_time", "2026-12-03 10:00:00"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2026120300222100000099999999"),
        ("app_id", rig.a.alipay_app_id.as_str()),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("sign_type", "RSA2"),
        ("trade_no", "2026120322001400000000000099"),
        ("out_trade_no", attempt.out_trade_no.as_str()),
        ("seller_id", rig.a.alipay_seller_id.as_str()),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", &amount),
        ("subject", "Own account"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let forged = sign_alipay_notification(&rig.a.keys.alipay_gateway, fields, false);
    // To A's URL: it verifies with A's keys, but B's attempt was not made through A.
    let (status, body) = post(&rig.app, &format!("/notify/alipay/{ma}"), &forged).await;
    assert_eq!((status, body.as_str()), (400, "fail"), "refused");
    // To B's URL and to the operator's: A's signature does not verify with their keys.
    for path in [format!("/notify/alipay/{mb}"), "/notify/alipay".to_string()] {
        let (status, body) = post(&rig.app, &path, &forged).await;
        assert_eq!((status, body.as_str()), (400, "fail"), "{path} refused");
    }
    // Nothing changed, and each refusal is on record under B's order.
    let now = server::orders::get(&rig.app.db, &order.id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(now.status, OrderStatus::Pending);
    let events = server::risk::for_order(&rig.app.db, &order.id)
        .await
        .expect("risk");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"foreign_account"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "bad_signature").count(),
        2,
        "{kinds:?}"
    );
    let foreign = events
        .iter()
        .find(|e| e.kind == "foreign_account")
        .expect("event");
    assert!(foreign.reason.contains(ma.as_str()), "{}", foreign.reason);
    // B's own, genuine payment still pays it.
    pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "").await;
    wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
    rig.app.stop().await.expect("stop");
}

async fn post(app: &TestApp, path: &str, n: &Outgoing) -> (u16, String) {
    let mut req = app.client.post(app.url(path)).body(n.body.clone());
    for (k, v) in &n.headers {
        req = req.header(*k, v);
    }
    let answer = req.send().await.expect("reply");
    let status = answer.status().as_u16();
    (status, answer.text().await.expect("body"))
}

async fn credentials_are_sealed_at_rest_and_rotation_keeps_merchants_paid(db: TestDb) {
    // The master key file holds a new key first and the old one below (mid-rotation).
    let keys_dir = tempfile::tempdir().expect("dir");
    let old_key = Keyring::new_key_text();
    let new_key = Keyring::new_key_text();
    let file = keys_dir.path().join("master.key");
    std::fs::write(&file, format!("{new_key}\n# old\n{old_key}\n")).expect("write");
    let rig = rig(&db, Some(file.clone())).await;
    let old = Keyring::from_text(&old_key, "old").expect("old");
    let both = Keyring::load(&file).expect("both");
    let ma = merchant(&rig.app, "Shop A").await;
    // Sealed under the old key before the rotation.
    give_accounts(&rig, &old, &ma, &rig.a).await;
    let creds = credentials_of(&rig.a, &rig.base, Channel::Wechat);
    let secret_texts = {
        let k = creds.keys.expose();
        [
            k.private_key.clone(),
            k.public_key.clone(),
            k.apiv3_key.clone().expect("apiv3"),
        ]
    };
    // At rest: the raw rows hold none of the keys, and name the key that sealed them.
    let rows =
        sqlx::query("SELECT ids, sealed, key_id FROM provider_accounts WHERE merchant_id = $1")
            .bind(&ma)
            .fetch_all(rig.app.db.pool())
            .await
            .expect("rows");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let raw = format!(
            "{}{}",
            r.get::<String, _>("ids"),
            r.get::<String, _>("sealed")
        );
        for secret in &secret_texts {
            let body_line = secret
                .lines()
                .find(|l| l.len() > 20 && !l.starts_with("-----"))
                .unwrap_or(secret);
            assert!(!raw.contains(body_line), "a key is readable at rest");
        }
        assert!(!raw.contains("PRIVATE KEY"));
        assert_eq!(r.get::<String, _>("key_id"), old.current_id());
    }
    // Without the master key they do not open; with it they do.
    let stranger = Keyring::from_text(&Keyring::new_key_text(), "x").expect("keyring");
    assert!(
        credentials::load(&rig.app.db, &stranger, &ma, Channel::Wechat)
            .await
            .is_err()
    );
    let opened = credentials::load(&rig.app.db, &old, &ma, Channel::Wechat)
        .await
        .expect("opens")
        .expect("stored");
    assert_eq!(opened.ids, creds.ids);
    // Never printed: Debug of the credentials and what `show` lists hold no key.
    let shown = format!(
        "{opened:?} {}",
        serde_json::to_string(&credentials::list(&rig.app.db, &ma).await.expect("list"))
            .expect("json")
    );
    for secret in &secret_texts {
        let line = secret.lines().find(|l| l.len() > 20).unwrap_or(secret);
        assert!(!shown.contains(line), "a key is printed: {shown}");
    }
    // Paid before and after resealing under the new key.
    for round in 0..2 {
        if round == 1 {
            let n = credentials::reseal(&rig.app.db, &both)
                .await
                .expect("reseal");
            assert_eq!(n, 2);
            assert!(
                credentials::load(&rig.app.db, &old, &ma, Channel::Alipay)
                    .await
                    .is_err(),
                "resealed under the new key only"
            );
        }
        for channel in Channel::ALL {
            let order = order_of(&rig.app, &ma, 900 + round).await;
            let attempt = rig
                .app
                .payments
                .start_payment(&order.id, channel)
                .await
                .expect("prepay");
            assert_eq!(attempt.account.as_ref(), Some(&ma));
            pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "").await;
            wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
        }
    }
    rig.app.stop().await.expect("stop");
}

/// `scanpay merchant credentials …` against this test's database and data directory.
fn cli<S: AsRef<std::ffi::OsStr>>(db: &TestDb, rig: &Rig, args: &[S]) -> (bool, String) {
    let out = crate::common::scanpay_command()
        .env("SCANPAY_DATABASE_URL", db.url.url.expose())
        .env("SCANPAY_DATA_DIR", rig.dir.path())
        .env("SCANPAY_LOG", "debug")
        .args(["merchant", "credentials"])
        .args(args)
        .output()
        .expect("scanpay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn the_command_saves_only_proven_keys_and_never_prints_them(db: TestDb) {
    let rig = rig(&db, None).await;
    let ma = merchant(&rig.app, "Shop A").await;
    let (_, w) = server::sandbox::settings_of(&rig.a, &rig.base);
    let (_, other) = server::sandbox::settings_of(&rig.b, &rig.base);
    let path = |p: &std::path::Path| p.display().to_string();
    let set = |private: String| {
        vec![
            "set".to_string(),
            "--merchant".into(),
            ma.to_string(),
            "--provider".into(),
            "wechat".into(),
            "--api-base".into(),
            w.api_base.clone(),
            "--appid".into(),
            w.appid.clone(),
            "--mchid".into(),
            w.mchid.clone(),
            "--cert-serial".into(),
            w.cert_serial.clone(),
            "--public-key-id".into(),
            w.public_key_id.clone(),
            "--private-key-file".into(),
            private,
            "--public-key-file".into(),
            path(&w.public_key_file),
            "--apiv3-key-file".into(),
            path(&w.apiv3_key_file),
        ]
    };
    // Real Alipay credentials on a demo-posture server: refused before any call.
    let (ok, text) = cli(
        &db,
        &rig,
        &[
            "set",
            "--merchant",
            ma.as_str(),
            "--provider",
            "alipay",
            "--app-id",
            "2021000000000001",
            "--seller-id",
            "2088000000000001",
            "--private-key-file",
            &path(&w.private_key_file),
            "--public-key-file",
            &path(&w.public_key_file),
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("demo posture"), "{text}");
    // Another merchant's private key: the sandbox refuses the signed check; nothing saved.
    let wrong = set(path(&other.private_key_file));
    let (ok, text) = cli(&db, &rig, &wrong);
    assert!(!ok, "{text}");
    assert!(text.contains("not saved"), "{text}");
    assert!(credentials::list(&rig.app.db, &ma)
        .await
        .expect("list")
        .is_empty());
    // The right keys: checked, saved, and never echoed.
    let right = set(path(&w.private_key_file));
    let (ok, text) = cli(&db, &rig, &right);
    assert!(ok, "{text}");
    assert!(text.contains("checked with a signed call"), "{text}");
    let (ok, shown) = cli(&db, &rig, &["show", "--merchant", ma.as_str()]);
    assert!(ok, "{shown}");
    assert!(shown.contains(&w.mchid), "{shown}");
    for file in [&w.private_key_file, &w.apiv3_key_file] {
        let secret = read(file);
        let line = secret
            .lines()
            .find(|l| l.len() > 20 && !l.starts_with("-----"))
            .unwrap_or(&secret)
            .trim()
            .to_string();
        assert!(
            !text.contains(&line) && !shown.contains(&line),
            "a key was printed"
        );
    }
    // And the merchant is paid through it.
    let order = order_of(&rig.app, &ma, 4_200).await;
    let attempt = rig
        .app
        .payments
        .start_payment(&order.id, Channel::Wechat)
        .await
        .expect("prepay");
    assert_eq!(attempt.account.as_ref(), Some(&ma));
    pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "").await;
    wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
    rig.app.stop().await.expect("stop");
}

/// A sub-merchant of the operator's (service-provider) accounts: WeChat `sub_mchid`, and
/// the operator's Alipay app acting with the merchant's `app_auth_token`.
fn partner_of(account: &SandboxAccount, channel: Channel) -> Credentials {
    match channel {
        Channel::Wechat => Credentials {
            ids: AccountIds::WechatPartner {
                sub_mchid: account.wechat_mchid.clone(),
                sub_appid: None,
            },
            keys: Secret::new(AccountKeys::default()),
        },
        Channel::Alipay => Credentials {
            ids: AccountIds::AlipayPartner {
                auth_app_id: account.alipay_app_id.clone(),
                seller_id: account.alipay_seller_id.clone(),
            },
            keys: Secret::new(AccountKeys {
                app_auth_token: Some(account.alipay_app_auth_token.clone()),
                ..AccountKeys::default()
            }),
        },
    }
}

async fn a_sub_merchant_is_paid_into_its_own_account_through_the_operators_partner_access(
    db: TestDb,
) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    // C is the operator's sub-merchant at both providers (sandbox account b); D another
    // (sandbox account a).
    let mc = merchant(&rig.app, "Shop C").await;
    let md = merchant(&rig.app, "Shop D").await;
    for (m, account) in [(&mc, &rig.b), (&md, &rig.a)] {
        for channel in Channel::ALL {
            let creds = partner_of(account, channel);
            rig.app
                .payments
                .book()
                .check(&creds)
                .await
                .unwrap_or_else(|e| panic!("{channel} partner check: {e}"));
            credentials::save(&rig.app.db, &keys, m, &creds, Some(1))
                .await
                .expect("save");
        }
    }
    // A sub-merchant the operator has no relation with is refused by the check.
    let stranger = Credentials {
        ids: AccountIds::WechatPartner {
            sub_mchid: "1999999999".into(),
            sub_appid: None,
        },
        keys: Secret::new(AccountKeys::default()),
    };
    assert!(rig.app.payments.book().check(&stranger).await.is_err());
    let operator = rig
        .app
        .providers
        .get(Channel::Wechat)
        .expect("wechat")
        .identity();
    let mut wechat_order = None;
    for channel in Channel::ALL {
        let order = order_of(&rig.app, &mc, 2_500).await;
        let attempt = rig
            .app
            .payments
            .start_payment(&order.id, channel)
            .await
            .expect("prepay");
        assert_eq!(attempt.account.as_ref(), Some(&mc));
        // The money is the sub-merchant's; the operator's account made the trade.
        let (own, via) = match channel {
            Channel::Alipay => (
                rig.b.alipay_app_id.clone(),
                server::sandbox::ALIPAY_APP_ID.to_string(),
            ),
            Channel::Wechat => (
                rig.b.wechat_mchid.clone(),
                server::sandbox::WECHAT_MCHID.to_string(),
            ),
        };
        assert!(
            sandbox_shows(
                &rig.app,
                channel,
                &format!("{own} via {via}"),
                attempt.out_trade_no.as_str()
            )
            .await,
            "{channel}: the sandbox lists the trade under {own} via {via}"
        );
        pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "").await;
        wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
        assert_eq!(
            state_at_provider(&rig.app, &attempt).await,
            TradeState::Paid
        );
        let settled = refund_settles(&rig.app, &mc, &order.id, 500).await;
        assert_eq!(settled, RefundStatus::Succeeded, "{channel}");
        if channel == Channel::Wechat {
            wechat_order = Some(());
            // WeChat also notifies the refund (naming sp_mchid and sub_mchid): accepted, like
            // the payment's notification; nothing about this order was refused.
            use server::payments::inbox::{self, Outcome};
            let mut decided = Vec::new();
            for _ in 0..200 {
                decided = inbox::for_order(&rig.app.db, &order.id)
                    .await
                    .expect("inbox")
                    .into_iter()
                    .filter_map(|n| n.outcome)
                    .collect();
                if decided.len() >= 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            assert!(
                decided.len() >= 2,
                "the payment's and the refund's: {decided:?}"
            );
            assert!(
                decided
                    .iter()
                    .all(|o| matches!(o, Outcome::Accepted | Outcome::Duplicate)),
                "{decided:?}"
            );
        }
    }
    assert!(wechat_order.is_some());
    // D's sub_mchid on C's order, signed and encrypted with the operator's real keys.
    let order = order_of(&rig.app, &mc, 3_100).await;
    let attempt = rig
        .app
        .payments
        .start_payment(&order.id, Channel::Wechat)
        .await
        .expect("prepay");
    let sandbox_keys =
        server::sandbox::keys::SandboxKeys::load_or_create(&rig.dir.path().join("sandbox/keys"))
            .expect("keys");
    let transaction = serde_json::json!({
        "sp_appid": operator.app_id,
        "sp_mchid": server::sandbox::WECHAT_MCHID,
        "sub_mchid": rig.a.wechat_mchid,
        "out_trade_no": attempt.out_trade_no.as_str(),
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "transaction_id": "4200002026120300000000000042",
        "success_time": "2026-12-03T10:00:00+08:00",
        "amount": { "total": 3_100, "currency": "CNY" },
    });
    for (path, nonce) in [
        (
            format!("/notify/wechat/{mc}"),
            "nonce-c-0000000000000000000000001",
        ),
        (
            format!("/notify/wechat/{md}"),
            "nonce-d-0000000000000000000000001",
        ),
    ] {
        let forged = server::sandbox::deliver::sign_wechat_notification(
            &sandbox_keys.wechat_gateway,
            &sandbox_keys.wechat_apiv3_key,
            "EV-2026120300000042",
            &transaction,
            server::infra::clock::now_ms() / 1000,
            nonce,
            false,
        );
        let (status, _) = post(&rig.app, &path, &forged).await;
        assert!(status >= 400, "{path}: refused, not {status}");
    }
    let now = server::orders::get(&rig.app.db, &order.id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(now.status, OrderStatus::Pending);
    let events = server::risk::for_order(&rig.app.db, &order.id)
        .await
        .expect("risk");
    let foreign = events
        .iter()
        .filter(|e| e.kind == "foreign_account")
        .count();
    assert_eq!(foreign, 2, "{events:?}");
    rig.app.stop().await.expect("stop");
}

/// The active query (a payment whose notification was lost) and the close both go through
/// the account the attempt was made through: the operator's account does not know the trade.
async fn the_workers_ask_and_close_through_the_attempts_account(db: TestDb) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    let ma = merchant(&rig.app, "Shop A").await;
    give_accounts(&rig, &keys, &ma, &rig.a).await;
    for channel in Channel::ALL {
        // Paid, but its notification is dropped: the active query finds it through A.
        let order = order_of(&rig.app, &ma, 1_800).await;
        let attempt = rig
            .app
            .payments
            .start_payment(&order.id, channel)
            .await
            .expect("prepay");
        pay_in_wallet(&rig.app, attempt.code_url.as_deref().expect("code"), "drop").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = server::orders::get(&rig.app.db, &order.id)
            .await
            .expect("read")
            .expect("order");
        assert_eq!(
            now.status,
            OrderStatus::Pending,
            "{channel}: nothing arrived"
        );
        sqlx::query("UPDATE payment_attempts SET next_query_at = 0 WHERE out_trade_no = $1")
            .bind(attempt.out_trade_no.as_str())
            .execute(rig.app.db.pool())
            .await
            .expect("due");
        server::payments::query::run_once(&rig.app.payments)
            .await
            .expect("round");
        wait_for(&rig.app, order.id.as_str(), OrderStatus::Paid).await;
    }
    // Closed by the merchant: the code is closed at A's account.
    let order = order_of(&rig.app, &ma, 1_900).await;
    let attempt = rig
        .app
        .payments
        .start_payment(&order.id, Channel::Wechat)
        .await
        .expect("prepay");
    rig.app
        .payments
        .close_for_merchant(&ma, &order.id, "test")
        .await
        .expect("closed");
    assert_eq!(
        state_at_provider(&rig.app, &attempt).await,
        TradeState::Closed
    );
    rig.app.stop().await.expect("stop");
}

/// Inside WeChat the payer signs in to the merchant's own official account (its AppSecret is
/// sealed with its keys) and pays its own mchid; a merchant whose account has no AppSecret
/// gets a page that says to scan the code on a screen instead, and nothing is made.
async fn inside_wechat_a_merchant_is_paid_through_its_own_official_account(db: TestDb) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    let with_secret = merchant(&rig.app, "Tea House").await;
    give_accounts(&rig, &keys, &with_secret, &rig.a).await;
    let without = merchant(&rig.app, "Noodle Bar").await;
    let mut creds = credentials_of(&rig.b, &rig.base, Channel::Wechat);
    let mut plain = creds.keys.expose().clone();
    assert!(plain.app_secret.is_some(), "the sandbox account has one");
    plain.app_secret = None;
    creds.keys = Secret::new(plain);
    credentials::save(&rig.app.db, &keys, &without, &creds, Some(1))
        .await
        .expect("save");
    let app = &rig.app;
    pays_inside_wechat(
        &rig,
        &with_secret,
        &rig.a.wechat_appid,
        None,
        &rig.a.wechat_mchid,
    )
    .await;

    let order = order_of(app, &without, 880).await;
    let token = order.aggregate_token.clone().expect("token");
    let page = open(app, &format!("/q/{token}"), WECHAT_UA, None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("data-kind=\"NotInThisApp\""), "{html}");
    assert!(app
        .payments
        .live_attempt(&order.id)
        .await
        .expect("read")
        .is_none());
    rig.app.stop().await.expect("stop");
}

/// Service-provider mode inside WeChat (providers.md §2.12): a sub-merchant that gave its own
/// official account (`sub_appid` and its AppSecret) has its payers sign in to that account
/// and ordered as `sub_openid` beside `sub_appid`, the page paying under that appId; one that
/// gave none has them sign in to the operator's (`sp_openid`). Either way the money is the
/// sub-merchant's and the operator's key signs.
async fn inside_wechat_a_sub_merchant_is_paid_through_its_own_or_the_operators_official_account(
    db: TestDb,
) {
    let rig = rig(&db, None).await;
    let keys = keyring(&rig);
    let app = &rig.app;
    let own_secret = credentials_of(&rig.b, &rig.base, Channel::Wechat)
        .keys
        .expose()
        .app_secret
        .clone()
        .expect("the sandbox account has an AppSecret");
    // The two go together: an AppID without its AppSecret (or the reverse) is refused.
    for (appid, secret) in [
        (Some(rig.b.wechat_appid.clone()), None),
        (None, Some(own_secret.clone())),
    ] {
        let refused = credentials::from_fields(Channel::Wechat, |name| match name {
            "sub_mchid" => Some(rig.b.wechat_mchid.clone()),
            "sub_appid" => appid.clone(),
            "app_secret" => secret.clone(),
            _ => None,
        });
        assert!(refused.is_err(), "{appid:?} / {}", secret.is_some());
    }
    let creds = credentials::from_fields(Channel::Wechat, |name| match name {
        "sub_mchid" => Some(rig.b.wechat_mchid.clone()),
        "sub_appid" => Some(rig.b.wechat_appid.clone()),
        "app_secret" => Some(own_secret.clone()),
        _ => None,
    })
    .expect("a sub-merchant with its own official account");
    let with_own = merchant(app, "Shop F").await;
    app.payments
        .book()
        .check(&creds)
        .await
        .expect("partner check");
    credentials::save(&app.db, &keys, &with_own, &creds, Some(1))
        .await
        .expect("save");
    let without_own = merchant(app, "Shop G").await;
    credentials::save(
        &app.db,
        &keys,
        &without_own,
        &partner_of(&rig.a, Channel::Wechat),
        Some(1),
    )
    .await
    .expect("save");

    for (shop, account, pay_appid) in [
        (&with_own, &rig.b, rig.b.wechat_appid.as_str()),
        (&without_own, &rig.a, server::sandbox::WECHAT_APPID),
    ] {
        // The sandbox takes the order only with the payer in the field of the app that
        // issued it (appid和openid不匹配 otherwise), and pays only a page of that appId,
        // signed with the operator's merchant key whichever appId it names.
        let operator_key = read(
            &rig.dir
                .path()
                .join("sandbox/keys/wechat-merchant-public.pem"),
        );
        let listed_as = format!(
            "{} via {}",
            account.wechat_mchid,
            server::sandbox::WECHAT_MCHID
        );
        pays_inside_wechat(&rig, shop, pay_appid, Some(&operator_key), &listed_as).await;
    }
    rig.app.stop().await.expect("stop");
}

/// Pays a new order of `shop` from inside WeChat: the sign-in is at `pay_appid` and the page
/// pays under it (its paySign checked by WeChat's SDK when `signer_key`, a public key PEM, is
/// given); the attempt is the shop's and the sandbox lists the trade under `listed_as`.
async fn pays_inside_wechat(
    rig: &Rig,
    shop: &MerchantId,
    pay_appid: &str,
    signer_key: Option<&str>,
    listed_as: &str,
) {
    let app = &rig.app;
    let order = order_of(app, shop, 1_288).await;
    let token = order.aggregate_token.clone().expect("token");
    let authorize = location(&open(app, &format!("/q/{token}"), WECHAT_UA, None).await);
    assert!(
        authorize.contains(&format!("appid={pay_appid}&")),
        "signed in to {pay_appid}: {authorize}"
    );
    let answer = sign_in_and_answer(app, &token, WECHAT_UA).await;
    let params = answer["InApp"]["call"]["Wechat"].clone();
    assert_eq!(params["appId"], pay_appid, "{answer}");
    if let Some(key) = signer_key {
        let checked = node(serde_json::json!({
            "op": "wechat.verifyPaySign",
            "params": params,
            "publicKey": key,
        }));
        assert_eq!(checked["valid"], true, "{checked}");
    }
    let ok = bridge(app, "/sandbox/wechat/bridge/pay", &params).await;
    assert_eq!(ok["err_msg"], "get_brand_wcpay_request:ok", "{ok}");
    wait_for(app, order.id.as_str(), OrderStatus::Paid).await;
    let attempt = app
        .payments
        .attempts(&order.id)
        .await
        .expect("read")
        .pop()
        .expect("attempt");
    assert_eq!(attempt.account.as_ref(), Some(shop));
    assert!(
        sandbox_shows(
            app,
            Channel::Wechat,
            listed_as,
            attempt.out_trade_no.as_str()
        )
        .await,
        "the sandbox lists {} under {listed_as}",
        attempt.out_trade_no
    );
}
