//! The provider clients against a local HTTP peer that plays the gateway: requests arrive
//! signed correctly (the peer checks), good responses are believed, and every kind of bad
//! answer (timeout, 5xx, truncated JSON, bad or missing signature, business refusal,
//! unreachable) is a typed error, never a panic and never a payment.

use crate::common;
use crate::common::otn;

use app::money::Amount;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use server::infra::clock::SystemClock;
use server::infra::secret::Secret;
use server::providers::alipay::{wire as alipay_wire, Alipay, AlipayAccount};
use server::providers::crypto::{RsaSigner, RsaVerifier, Signer, Verifier};
use server::providers::keys::{private_key_from_text, public_key_from_text};
use server::providers::wechat::{wire as wechat_wire, WechatAccount, WechatPay};
use server::providers::{http_client, PaymentProvider, PrepayRequest, ProviderError, TradeState};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(500);

/// Our merchant key pair (the client signs with it; the peer verifies).
fn merchant_signer() -> RsaSigner {
    private_key_from_text(&common::vector("alipay/app-private-key-pkcs1.pem")).expect("key")
}
fn merchant_verifier() -> RsaVerifier {
    public_key_from_text(&common::vector("alipay/app-public-key.pem")).expect("key")
}
/// The gateway's key pair (the peer signs responses; the client verifies).
fn gateway_signer() -> RsaSigner {
    private_key_from_text(&common::vector("wechat/test-private-key-pkcs8.pem")).expect("key")
}
fn gateway_verifier() -> RsaVerifier {
    public_key_from_text(&common::vector("wechat/test-public-key.pem")).expect("key")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Slow,
    Status500,
    Truncated,
    BadSignature,
    Unsigned,
    Business,
    /// A correctly signed WeChat answer stamped `i64::MIN` seconds: the skew check once
    /// computed `(now - ts).abs()`, which overflows (a panic in debug builds).
    FarPast,
    /// A correctly signed answer about another trade than the one asked about.
    OtherTrade,
}

struct Peer {
    mode: Mutex<Mode>,
    /// Whether each request's signature verified with the merchant's public key.
    request_signature_ok: Mutex<Vec<bool>>,
    /// The last request's parameters (Alipay) or body (WeChat).
    last: Mutex<BTreeMap<String, String>>,
    gateway: RsaSigner,
    merchant: RsaVerifier,
}

async fn spawn_peer() -> (SocketAddr, Arc<Peer>) {
    let peer = Arc::new(Peer {
        mode: Mutex::new(Mode::Ok),
        request_signature_ok: Mutex::new(Vec::new()),
        last: Mutex::new(BTreeMap::new()),
        gateway: gateway_signer(),
        merchant: merchant_verifier(),
    });
    let app = Router::new()
        .route("/gateway.do", post(alipay_gateway))
        .route("/v3/pay/transactions/native", post(wechat_native))
        .route("/v3/pay/transactions/out-trade-no/{id}", get(wechat_query))
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, peer)
}

fn mode(peer: &Peer) -> Mode {
    *peer.mode.lock().expect("lock")
}

async fn alipay_gateway(
    State(peer): State<Arc<Peer>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(&body))
    {
        params.insert(k.into_owned(), v.into_owned());
    }
    let ok = params.get("sign").is_some_and(|s| {
        peer.merchant
            .verify_base64(alipay_wire::sign_content(&params, &["sign"]).as_bytes(), s)
    });
    peer.request_signature_ok.lock().expect("lock").push(ok);
    *peer.last.lock().expect("lock") = params.clone();
    let method = params.get("method").cloned().unwrap_or_default();
    let asked: serde_json::Value = params
        .get("biz_content")
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let named = if mode(&peer) == Mode::OtherTrade {
        "ORD_OTHER".to_string()
    } else {
        asked["out_trade_no"]
            .as_str()
            .unwrap_or("ORD_1")
            .to_string()
    };
    let object = match (mode(&peer), method.as_str()) {
        (Mode::Business, _) => r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TOTAL_FEE_EXCEED","sub_msg":"订单金额超限"}"#.to_string(),
        (_, "alipay.trade.query") => format!(
            r#"{{"code":"10000","msg":"Success","trade_no":"2026112722001400001","out_trade_no":"{named}","trade_status":"TRADE_SUCCESS","total_amount":"12.30"}}"#
        ),
        _ => r#"{"code":"10000","msg":"Success","out_trade_no":"ORD_1","qr_code":"https:\/\/qr.alipay.com\/bax08861"}"#.to_string(),
    };
    let key = format!("{}_response", method.replace('.', "_"));
    let sign = match mode(&peer) {
        Mode::BadSignature => merchant_signer()
            .sign_base64(object.as_bytes())
            .expect("sign"),
        _ => peer.gateway.sign_base64(object.as_bytes()).expect("sign"),
    };
    match mode(&peer) {
        Mode::Slow => {
            tokio::time::sleep(TIMEOUT * 4).await;
            "late".into_response()
        }
        Mode::Status500 => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        Mode::Truncated => format!(r#"{{"{key}":{}"#, &object[..20]).into_response(),
        Mode::Unsigned => format!(r#"{{"{key}":{object}}}"#).into_response(),
        _ => format!(r#"{{"{key}":{object},"sign":"{sign}"}}"#).into_response(),
    }
}

fn wechat_request_ok(
    peer: &Peer,
    method: &str,
    uri: &str,
    headers: &HeaderMap,
    body: &str,
) -> bool {
    let Some(fields) = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(wechat_wire::parse_authorization)
    else {
        return false;
    };
    let ts: i64 = fields
        .get("timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let msg = wechat_wire::request_message(method, uri, ts, &fields["nonce_str"], body);
    fields["mchid"] == "1230000109"
        && peer
            .merchant
            .verify_base64(msg.as_bytes(), &fields["signature"])
}

fn wechat_signed(peer: &Peer, status: StatusCode, body: String) -> Response {
    let ts = if mode(peer) == Mode::FarPast {
        i64::MIN.to_string()
    } else {
        time::OffsetDateTime::now_utc().unix_timestamp().to_string()
    };
    let nonce = "PEERNONCE";
    let signer = if mode(peer) == Mode::BadSignature {
        merchant_signer()
    } else {
        gateway_signer()
    };
    let sig = signer
        .sign_base64(&wechat_wire::response_message(&ts, nonce, body.as_bytes()))
        .expect("sign");
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("wechatpay-timestamp", ts.parse().expect("h"));
    h.insert("wechatpay-nonce", nonce.parse().expect("h"));
    h.insert("wechatpay-signature", sig.parse().expect("h"));
    h.insert(
        "wechatpay-serial",
        "PUB_KEY_ID_0112345678".parse().expect("h"),
    );
    h.insert(
        "wechatpay-signature-type",
        "WECHATPAY2-SHA256-RSA2048".parse().expect("h"),
    );
    r
}

async fn wechat_native(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let ok = wechat_request_ok(
        &peer,
        "POST",
        "/v3/pay/transactions/native",
        &headers,
        &body,
    );
    peer.request_signature_ok.lock().expect("lock").push(ok);
    peer.last.lock().expect("lock").insert("body".into(), body);
    match mode(&peer) {
        Mode::Slow => {
            tokio::time::sleep(TIMEOUT * 4).await;
            "late".into_response()
        }
        Mode::Status500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"code":"SYSTEM_ERROR"}"#,
        )
            .into_response(),
        Mode::Unsigned => (
            StatusCode::OK,
            r#"{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}"#,
        )
            .into_response(),
        Mode::Truncated => {
            wechat_signed(&peer, StatusCode::OK, r#"{"code_url":"weixin://wxp"#.into())
        }
        Mode::Business => wechat_signed(
            &peer,
            StatusCode::BAD_REQUEST,
            r#"{"code":"PARAM_ERROR","message":"time_expire too early"}"#.into(),
        ),
        _ => wechat_signed(
            &peer,
            StatusCode::OK,
            r#"{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}"#.into(),
        ),
    }
}

async fn wechat_query(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Response {
    let ok = wechat_request_ok(&peer, "GET", &uri.to_string(), &headers, "");
    peer.request_signature_ok.lock().expect("lock").push(ok);
    wechat_signed(
        &peer,
        StatusCode::OK,
        r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"ORD_1","transaction_id":"4200000001","trade_state":"SUCCESS","amount":{"total":1230,"currency":"CNY"}}"#.into(),
    )
}

fn alipay_client(gateway: String) -> Alipay {
    Alipay::new(
        AlipayAccount {
            gateway,
            app_id: "2021000000000001".into(),
            seller_id: Some("2088000000000001".into()),
        },
        Arc::new(merchant_signer()),
        Arc::new(gateway_verifier()),
        http_client(TIMEOUT, TIMEOUT),
        TIMEOUT,
    )
}

fn wechat_client(api_base: String) -> WechatPay {
    WechatPay::new(
        WechatAccount {
            api_base,
            appid: "wxd678efh567hg6787".into(),
            mchid: "1230000109".into(),
            cert_serial: "MERCHANTSERIAL".into(),
            wechat_key_id: "PUB_KEY_ID_0112345678".into(),
            app_secret: None,
        },
        Arc::new(merchant_signer()),
        Arc::new(gateway_verifier()),
        Secret::new(*b"ScanPayTestAPIv3Key0123456789abc"),
        http_client(TIMEOUT, TIMEOUT),
        TIMEOUT,
        Arc::new(SystemClock),
    )
}

fn order() -> PrepayRequest {
    PrepayRequest {
        out_trade_no: "ORD_1".into(),
        amount: Amount::from_fen(1230).expect("amount"),
        subject: "测试 Test order".into(),
        expires_at: server::infra::clock::now_ms() + 900_000,
        notify_url: "https://pay.example.com/notify/alipay".into(),
        method: server::providers::PayMethod::Native,
        payer: None,
        client_ip: None,
        return_url: None,
    }
}

#[tokio::test]
async fn alipay_prepay_is_signed_and_its_answer_verified() {
    let (addr, peer) = spawn_peer().await;
    let client = alipay_client(format!("http://{addr}/gateway.do"));
    let prepay = client.create_prepay(&order()).await.expect("prepay");
    assert_eq!(
        prepay.code_url, "https://qr.alipay.com/bax08861",
        "the \\/ escapes are decoded only after verifying"
    );
    assert_eq!(
        *peer.request_signature_ok.lock().expect("lock"),
        vec![true],
        "the gateway accepted our signature"
    );
    let last = peer.last.lock().expect("lock").clone();
    assert_eq!(last["method"], "alipay.trade.precreate");
    assert_eq!(last["sign_type"], "RSA2");
    assert_eq!(last["notify_url"], "https://pay.example.com/notify/alipay");
    let biz: serde_json::Value =
        serde_json::from_str(&last["biz_content"]).expect("biz_content JSON");
    assert_eq!(biz["total_amount"], "12.30");
    assert_eq!(biz["subject"], "测试 Test order");
}

#[tokio::test]
async fn an_alipay_query_answer_about_another_trade_is_refused() {
    let (addr, peer) = spawn_peer().await;
    let client = alipay_client(format!("http://{addr}/gateway.do"));
    let paid = client.query(&otn("ORD_1")).await.expect("query");
    assert_eq!(paid.state, TradeState::Paid);
    assert_eq!(paid.amount, Some(Amount::from_fen(1230).expect("amount")));
    // Signed by the gateway, but about another trade: never taken as ours.
    *peer.mode.lock().expect("lock") = Mode::OtherTrade;
    let err = client
        .query(&otn("ORD_1"))
        .await
        .expect_err("an answer about another trade");
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}

/// What every provider client must make of a broken gateway, besides a business refusal.
type Check = fn(&ProviderError) -> bool;
fn transport_failures() -> Vec<(Mode, Check)> {
    vec![
        (Mode::Slow, |e| matches!(e, ProviderError::Timeout(_))),
        (Mode::Status500, |e| {
            matches!(e, ProviderError::Status { status: 500 })
        }),
        (Mode::Truncated, |e| {
            matches!(e, ProviderError::Malformed(_))
        }),
        (Mode::BadSignature, |e| {
            matches!(e, ProviderError::BadSignature)
        }),
        (Mode::Unsigned, |e| matches!(e, ProviderError::Unsigned)),
    ]
}

#[tokio::test]
async fn alipay_failures_are_typed_errors() {
    let (addr, peer) = spawn_peer().await;
    let client = alipay_client(format!("http://{addr}/gateway.do"));
    let mut checks = transport_failures();
    checks.push((
            Mode::Business,
            |e| matches!(e, ProviderError::Business { code, sub_code: Some(s), .. } if code == "40004" && s == "ACQ.TOTAL_FEE_EXCEED"),
        ));
    for (m, check) in checks {
        *peer.mode.lock().expect("lock") = m;
        let err = client.create_prepay(&order()).await.expect_err("must fail");
        assert!(check(&err), "{m:?} gave {err:?}");
    }
    let unreachable = alipay_client("http://127.0.0.1:9/gateway.do".into());
    let err = unreachable
        .create_prepay(&order())
        .await
        .expect_err("nothing listens on port 9");
    assert!(
        matches!(err, ProviderError::Connect(_)) && err.is_transient(),
        "{err:?}"
    );
}

#[tokio::test]
async fn wechat_native_order_and_query_are_signed_and_verified() {
    let (addr, peer) = spawn_peer().await;
    let client = wechat_client(format!("http://{addr}"));
    let prepay = client.create_prepay(&order()).await.expect("prepay");
    assert_eq!(prepay.code_url, "weixin://wxpay/bizpayurl?pr=abc");
    let body: serde_json::Value =
        serde_json::from_str(&peer.last.lock().expect("lock")["body"]).expect("json");
    assert_eq!(body["amount"]["total"], 1230, "integer fen, never yuan");
    assert_eq!(body["amount"]["currency"], "CNY");
    assert!(body["time_expire"]
        .as_str()
        .expect("time_expire")
        .ends_with("+08:00"));
    let status = client.query(&otn("ORD_1")).await.expect("query");
    assert_eq!(status.state, TradeState::Paid);
    assert_eq!(status.amount, Some(Amount::from_fen(1230).expect("amount")));
    assert_eq!(
        *peer.request_signature_ok.lock().expect("lock"),
        vec![true, true],
        "both signatures verified, the query string included in the signed URL"
    );
}

#[tokio::test]
async fn wechat_failures_are_typed_errors() {
    let (addr, peer) = spawn_peer().await;
    let client = wechat_client(format!("http://{addr}"));
    let mut checks = transport_failures();
    checks.push((
        Mode::Business,
        |e| matches!(e, ProviderError::Business { code, .. } if code == "PARAM_ERROR"),
    ));
    checks.push((Mode::FarPast, |e| matches!(e, ProviderError::BadSignature)));
    for (m, check) in checks {
        *peer.mode.lock().expect("lock") = m;
        let err = client.create_prepay(&order()).await.expect_err("must fail");
        assert!(check(&err), "{m:?} gave {err:?}");
    }
    let err = client.query(&otn("ORD/../x")).await.expect_err("unsafe id");
    assert!(matches!(err, ProviderError::Malformed(_)));
}
