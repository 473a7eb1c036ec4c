//! Interoperability with independent implementations: Alipay's official Node SDK
//! (`alipay-sdk`) and `wechatpay-axios-plugin`, run through `end2end/interop/peer.cjs`.
//! (a) they verify signatures our code made, (b) our code accepts what they sign or encrypt,
//! (c) our code refuses their output once one byte of a signed field or the amount changes.
//! Needs Node.js and `end2end/node_modules` (scripts/tools.sh installs both).

use crate::common;

use app::money::Amount;
use common::node;
use serde_json::json;
use server::providers::alipay::{wire, Alipay, AlipayAccount};
use server::providers::crypto::{Signer, Verifier};
use server::providers::keys::{private_key_from_text, public_key_from_text};
use server::providers::wechat::{wire as wechat_wire, WechatPay};
use server::providers::{NotificationError, PaymentProvider, TradeState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn alipay() -> Alipay {
    Alipay::new(
        AlipayAccount {
            gateway: "http://127.0.0.1:9/gateway.do".into(),
            app_id: "2021000000000001".into(),
            seller_id: None,
        },
        Arc::new(
            private_key_from_text(&common::vector("alipay/app-private-key-pkcs1.pem"))
                .expect("key"),
        ),
        // As if Alipay's key were our app key: lets our verifier check what the SDK signs with it.
        Arc::new(public_key_from_text(&common::vector("alipay/app-public-key.pem")).expect("key")),
        reqwest::Client::new(),
        Duration::from_secs(1),
    )
}

#[test]
fn alipay_sdk_verifies_our_request_signatures_and_refuses_a_changed_byte() {
    let params = alipay()
        .signed_params(
            "alipay.trade.precreate",
            r#"{"out_trade_no":"ORD_1","total_amount":"12.30","subject":"测试 / test & more"}"#,
            Some("https://pay.example.com/notify/alipay"),
            time::OffsetDateTime::now_utc(),
        )
        .expect("signed");
    let ask = |params: &BTreeMap<String, String>| {
        node(json!({
            "op": "alipay.verify",
            "params": params,
            "publicKey": common::vector("alipay/app-public-key.pem"),
            "anyPrivateKey": common::vector("alipay/app-private-key-pkcs1.pem"),
        }))["valid"]
            .as_bool()
            .expect("bool")
    };
    assert!(ask(&params), "the official SDK verifies our signature");
    let mut changed = params.clone();
    changed.insert(
        "biz_content".into(),
        params["biz_content"].replace("12.30", "12.31"),
    );
    assert!(!ask(&changed), "and refuses it when the amount changed");
}

#[test]
fn our_code_accepts_requests_the_alipay_sdk_signs_and_refuses_changed_ones() {
    let answer = node(json!({
        "op": "alipay.signRequest",
        "method": "alipay.trade.precreate",
        "appId": "2021000000000001",
        "bizContent": {"out_trade_no": "ORD_1", "total_amount": "0.01", "subject": "中文 subject/with & symbols"},
        "notifyUrl": "https://pay.example.com/notify/alipay",
        "privateKey": common::vector("alipay/app-private-key-pkcs1.pem"),
    }));
    let params: BTreeMap<String, String> = answer["params"]
        .as_object()
        .expect("params")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect();
    let verifier = public_key_from_text(&common::vector("alipay/app-public-key.pem")).expect("key");
    let content = wire::sign_content(&params, &["sign"]);
    assert!(
        verifier.verify_base64(content.as_bytes(), &params["sign"]),
        "the SDK's request verifies with our rules"
    );
    let mut changed = params.clone();
    changed.insert(
        "biz_content".into(),
        params["biz_content"].replace("0.01", "0.02"),
    );
    assert!(!verifier.verify_base64(
        wire::sign_content(&changed, &["sign"]).as_bytes(),
        &params["sign"]
    ));
}

#[test]
fn alipay_sdk_verifies_notifications_signed_by_our_rules() {
    // What the sandbox gateway will send: signed over everything but sign and sign_type.
    let signer =
        private_key_from_text(&common::vector("alipay/app-private-key-pkcs1.pem")).expect("key");
    let mut fields: BTreeMap<String, String> = [
        ("notify_id", "N1"),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", "ORD_1"),
        ("trade_no", "2026112722001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "12.30"),
        ("app_id", "2021000000000001"),
        ("seller_id", "2088000000000001"),
        ("subject", "100% 测试"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sign = signer
        .sign_base64(wire::sign_content(&fields, &["sign", "sign_type"]).as_bytes())
        .expect("sign");
    fields.insert("sign".into(), sign);
    let valid = node(json!({
        "op": "alipay.verify",
        "params": fields,
        "publicKey": common::vector("alipay/app-public-key.pem"),
        "anyPrivateKey": common::vector("alipay/app-private-key-pkcs1.pem"),
    }))["valid"]
        .as_bool()
        .expect("bool");
    assert!(valid);
    // And our own notification path accepts it, refusing it with the amount changed.
    let body = |f: &BTreeMap<String, String>| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(f)
            .finish()
    };
    let n = alipay()
        .verify_notification(&http::HeaderMap::new(), body(&fields).as_bytes())
        .expect("ours");
    assert_eq!(n.amount.fen(), 1230);
    let mut forged = fields.clone();
    forged.insert("total_amount".into(), "12.31".into());
    assert_eq!(
        alipay().verify_notification(&http::HeaderMap::new(), body(&forged).as_bytes()),
        Err(NotificationError::BadSignature)
    );
}

const APIV3_KEY: &str = common::TEST_APIV3_KEY;

fn wechat(now: i64) -> WechatPay {
    common::wechat_test_client(now, "PUB_KEY_ID_0112345678")
}

#[test]
fn wechatpay_plugin_verifies_our_authorization_signature() {
    let client = wechat(1_800_000_000);
    let uri = "/v3/pay/transactions/out-trade-no/ORD_1?mchid=1230000109";
    let auth = client
        .authorization("GET", uri, "", 1_800_000_000, "NONCE123")
        .expect("auth");
    let fields = wechat_wire::parse_authorization(&auth).expect("ours");
    let ask = |method: &str, uri: &str| {
        node(json!({
            "op": "wechat.verifyRequest", "method": method, "uri": uri, "timestamp": 1_800_000_000,
            "nonce": "NONCE123", "body": "", "signature": fields["signature"],
            "publicKey": common::vector("wechat/test-public-key.pem"),
        }))["valid"]
            .as_bool()
            .expect("bool")
    };
    assert!(ask("GET", uri));
    assert!(
        !ask(
            "GET",
            "/v3/pay/transactions/out-trade-no/ORD_1?mchid=1230000108"
        ),
        "the query string is signed"
    );
}

#[test]
fn our_code_accepts_a_notification_the_wechatpay_plugin_signs_and_encrypts() {
    let now = 1_800_000_000;
    let transaction = json!({
        "appid": "wxd678efh567hg6787", "mchid": "1230000109", "out_trade_no": "ORD_1",
        "transaction_id": "4200000001202611270001", "trade_type": "NATIVE", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "OTHERS", "success_time": "2026-11-27T10:00:00+08:00",
        "payer": {"openid": "o1"}, "amount": {"total": 1230, "payer_total": 1230, "currency": "CNY", "payer_currency": "CNY"}
    });
    let made = node(json!({
        "op": "wechat.notification", "id": "EV-1", "plaintext": transaction.to_string(), "apiv3Key": APIV3_KEY,
        "nonce": "fdasflkja484", "aad": "transaction", "timestamp": now.to_string(), "headerNonce": "HNONCE",
        "privateKey": common::vector("wechat/test-private-key-pkcs8.pem"),
    }));
    let body = made["body"].as_str().expect("body").to_string();
    let headers = |sig: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("wechatpay-timestamp", now.to_string().parse().expect("h"));
        h.insert("wechatpay-nonce", "HNONCE".parse().expect("h"));
        h.insert("wechatpay-signature", sig.parse().expect("h"));
        h.insert(
            "wechatpay-serial",
            "PUB_KEY_ID_0112345678".parse().expect("h"),
        );
        h
    };
    let sig = made["signature"].as_str().expect("sig");
    let n = wechat(now + 5)
        .verify_notification(&headers(sig), body.as_bytes())
        .expect("accepted");
    assert_eq!(n.notification_id, "EV-1");
    assert_eq!(n.out_trade_no, "ORD_1");
    assert_eq!(n.amount, Amount::from_fen(1230).expect("amount"));
    assert_eq!(n.state, TradeState::Paid);
    assert_eq!(n.merchant_account, "1230000109");

    // One changed byte of the signed body (here inside the ciphertext) is refused.
    let mut changed = body.clone().into_bytes();
    let pos = body.find("\"ciphertext\":\"").expect("ciphertext") + 15;
    changed[pos] = if changed[pos] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        wechat(now).verify_notification(&headers(sig), &changed),
        Err(NotificationError::BadSignature)
    );
    // And a notification the plugin encrypted with another amount but we signed nothing of is
    // refused for its signature, not believed for its amount.
    let other = node(json!({
        "op": "wechat.notification", "id": "EV-1",
        "plaintext": transaction.to_string().replace("\"total\":1230", "\"total\":1"),
        "apiv3Key": APIV3_KEY, "nonce": "fdasflkja484", "aad": "transaction", "timestamp": now.to_string(),
        "headerNonce": "HNONCE", "privateKey": common::vector("wechat/test-private-key-pkcs8.pem"),
    }));
    let other_body = other["body"].as_str().expect("body");
    assert_eq!(
        wechat(now).verify_notification(&headers(sig), other_body.as_bytes()),
        Err(NotificationError::BadSignature)
    );
    let own = wechat(now).verify_notification(
        &headers(other["signature"].as_str().expect("sig")),
        other_body.as_bytes(),
    );
    assert_eq!(
        own.expect("properly signed").amount.fen(),
        1,
        "the amount is reported as notified; the order check compares it"
    );
}
