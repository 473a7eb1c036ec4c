//! The sandbox's stand-in for the wallets' JS bridges (#18): `GET /bridge.js` defines
//! `WeixinJSBridge` / `AlipayJSBridge` only in those wallets' user agents and only where
//! nothing defines them; it pays through `POST /wechat/bridge/pay` (the `paySign` verified
//! with the merchant's key) and `POST /alipay/bridge/trade-pay`. The `sandbox_wallet=cancel`
//! cookie is the buyer closing the wallet's pay sheet: the wallets' cancel answers
//! (`get_brand_wcpay_request:cancel`, `6001`), nothing paid.

use super::inapp::cookie;
use super::Sandbox;
use crate::providers::crypto::Verifier;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/bridge.js", get(bridge_js))
        .route("/wechat/bridge/pay", post(wechat_bridge_pay))
        .route("/alipay/bridge/trade-pay", post(alipay_bridge_pay))
}

/// The stand-in for the wallets' JS bridges, for pages of the demo posture and the sandbox.
async fn bridge_js() -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        BRIDGE_JS,
    )
        .into_response()
}

const BRIDGE_JS: &str = include_str!("bridge.js");

/// The buyer closes the wallet's pay sheet (the `sandbox_wallet=cancel` cookie).
fn cancels(headers: &HeaderMap) -> bool {
    cookie(headers, "sandbox_wallet").as_deref() == Some("cancel")
}

fn bridge_answer(v: Value) -> Response {
    (
        [(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        axum::Json(v),
    )
        .into_response()
}

/// `getBrandWCPayRequest`: the trade behind `package`, paid when `paySign` verifies with the
/// key of the merchant that ordered it over `appId\ntimeStamp\nnonceStr\npackage\n`, and
/// `appId` is the ordering app.
async fn wechat_bridge_pay(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fail = |why: &str| {
        bridge_answer(json!({ "err_msg": "get_brand_wcpay_request:fail", "err_desc": why }))
    };
    if cancels(&headers) {
        return bridge_answer(json!({ "err_msg": "get_brand_wcpay_request:cancel" }));
    }
    let Ok(p) = serde_json::from_slice::<HashMap<String, String>>(&body) else {
        return fail("参数错误");
    };
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("signType") != "RSA" {
        return fail("signType 须为 RSA");
    }
    let Some(trade_id) = get("package")
        .strip_prefix("prepay_id=wx")
        .filter(|id| !id.is_empty())
    else {
        return fail("package 参数错误");
    };
    let trade = match sb.trade(trade_id).await {
        Ok(Some(t)) if t.channel == "wechat" && t.trade_type == "JSAPI" => t,
        Ok(_) => return fail("prepay_id 无效"),
        Err(_) => return fail("系统错误"),
    };
    let signer = sb.signer_of(&trade);
    let message = crate::providers::wechat::wire::pay_sign_message(
        get("appId"),
        get("timeStamp"),
        get("nonceStr"),
        get("package"),
    );
    // `appId` is the app the payer signed in to (partner mode: maybe the sub-merchant's).
    if trade.payer_app.as_deref() != Some(get("appId"))
        || !get("timeStamp").bytes().all(|b| b.is_ascii_digit())
        || !signer
            .keys
            .wechat_merchant
            .verify_base64(message.as_bytes(), get("paySign"))
    {
        return fail("支付验证签名失败");
    }
    match sb.pay_by_id(&trade.id, &Default::default()).await {
        Ok(true) => bridge_answer(json!({ "err_msg": "get_brand_wcpay_request:ok" })),
        Ok(false) => fail("订单已支付或已关闭"),
        Err(_) => fail("系统错误"),
    }
}

/// `tradePay`: the trade named by `tradeNO` (case-sensitive), made by `alipay.trade.create`.
async fn alipay_bridge_pay(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = |code: &str| bridge_answer(json!({ "resultCode": code }));
    if cancels(&headers) {
        return result("6001");
    }
    let Ok(p) = serde_json::from_slice::<HashMap<String, String>>(&body) else {
        return result("4000");
    };
    let Some(trade_no) = p.get("tradeNO") else {
        return result("4000");
    };
    let trade: Option<super::Trade> = match sqlx::query_as(
        "SELECT * FROM sandbox_trades WHERE channel = 'alipay' AND trade_no = ?1 AND trade_type = 'CREATE'",
    )
    .bind(trade_no)
    .fetch_optional(&sb.pool)
    .await
    {
        Ok(t) => t,
        Err(_) => return result("6002"),
    };
    let Some(trade) = trade else {
        return result("4000");
    };
    match sb.pay_by_id(&trade.id, &Default::default()).await {
        Ok(true) => result("9000"),
        Ok(false) => result("4000"),
        Err(_) => result("6004"),
    }
}
