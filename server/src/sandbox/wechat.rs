//! The sandbox WeChat Pay API v3 under `/sandbox/wechat`: every request must carry a valid
//! `WECHATPAY2-SHA256-RSA2048` Authorization from the registered merchant (serial, mchid,
//! ±300 s timestamp, signature over method, URL with query, timestamp, nonce and body), or it
//! gets `401 SIGN_ERROR`; every response is signed with the sandbox's WeChat Pay key and
//! carries the `Wechatpay-*` headers.

use super::wechat_auth::Req;
use super::{digest, now_ms, Sandbox, Trade};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/wechat/v3/pay/transactions/native", post(native))
        .route("/wechat/v3/pay/partner/transactions/native", post(native))
        .route("/wechat/v3/pay/transactions/jsapi", post(native))
        .route("/wechat/v3/pay/partner/transactions/jsapi", post(native))
        .route("/wechat/v3/pay/transactions/h5", post(native))
        .route("/wechat/v3/pay/partner/transactions/h5", post(native))
        .route(
            "/wechat/v3/pay/partner/transactions/out-trade-no/{out_trade_no}",
            get(query),
        )
        .route(
            "/wechat/v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close",
            post(close),
        )
        .route(
            "/wechat/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(query),
        )
        .route(
            "/wechat/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(close),
        )
        .route("/wechat/v3/refund/domestic/refunds", post(refund))
        .route(
            "/wechat/v3/refund/domestic/refunds/{out_refund_no}",
            get(refund_query),
        )
        .route(
            "/wechat/v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund",
            post(apply_abnormal_refund),
        )
}

/// The path and query as the merchant signed them: the whole request path, as received.
fn signed_uri(uri: &http::Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string()
}

fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b))
}

/// A transaction as WeChat Pay shows it: a partner trade names the service provider and the
/// sub-merchant instead of the merchant.
pub(super) fn transaction_json(sb: &Sandbox, t: &Trade, state: &str) -> Value {
    let owner = match &t.via {
        Some(_) => {
            let sp = sb.signer_of(t);
            json!({ "sp_appid": sp.wechat_appid, "sp_mchid": sp.wechat_mchid, "sub_mchid": t.account })
        }
        None => {
            let account = sb.account_of(t);
            json!({ "appid": account.wechat_appid, "mchid": account.wechat_mchid })
        }
    };
    let mut v = json!({
        "out_trade_no": t.out_trade_no,
        "trade_type": t.trade_type,
        "trade_state": state,
        "trade_state_desc": match state { "SUCCESS" => "支付成功", "CLOSED" => "已关闭", _ => "未支付" },
        "amount": { "total": t.amount, "currency": "CNY" },
    });
    for (k, value) in owner.as_object().into_iter().flatten() {
        v[k] = value.clone();
    }
    if state == "SUCCESS" || state == "REFUND" {
        v["transaction_id"] = json!(t.trade_no);
        v["bank_type"] = json!("OTHERS");
        v["success_time"] = json!(rfc3339(t.paid_at.unwrap_or(t.created_at)));
        // Partner mode names the payer by the app it signed in to (and that app, when it
        // is the sub-merchant's own).
        let openid = t.payer.as_deref().unwrap_or("oSandbox0000000000000000001");
        v["payer"] = match (&t.via, &t.payer_app) {
            (None, _) => json!({ "openid": openid }),
            (Some(_), Some(app)) if *app != sb.signer_of(t).wechat_appid => {
                v["sub_appid"] = json!(app);
                json!({ "sub_openid": openid })
            }
            (Some(_), _) => json!({ "sp_openid": openid }),
        };
        v["amount"] = json!({ "total": t.amount, "payer_total": t.amount, "currency": "CNY", "payer_currency": "CNY" });
    }
    v
}

pub(super) fn trade_state(t: &Trade) -> &'static str {
    match t.state.as_str() {
        "paid" if t.refunded > 0 => "REFUND",
        "paid" => "SUCCESS",
        "closed" => "CLOSED",
        _ => "NOTPAY",
    }
}

pub(super) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+8))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Admits the request or returns its refusal; from here on `$sb` is the [`Req`] of the
/// account that signed it.
macro_rules! admit {
    ($sb:ident, $method:expr, $uri:expr, $headers:expr, $body:expr) => {
        let $sb = match $sb
            .admit(&$method, &signed_uri(&$uri), &$headers, $body)
            .await
        {
            Ok(account) => Req {
                sb: $sb.clone(),
                account,
            },
            Err(refusal) => return refusal,
        };
    };
}

fn storage_failed(sb: &Req, e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "sandbox wechat: storage failed");
    sb.wechat_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "SYSTEM_ERROR",
        "系统错误",
    )
}

async fn native(
    State(sb): State<Arc<Sandbox>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admit!(sb, Method::POST, uri, headers, &body);
    let bad = |msg: &str| sb.wechat_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", msg);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return bad("请求体不是合法的 JSON");
    };
    let s = |k: &str| req.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    // The partner API: the service provider (sp_*) orders for a sub-merchant.
    let partner = uri.path().contains("/partner/");
    let (appid_key, mchid_key) = match partner {
        true => ("sp_appid", "sp_mchid"),
        false => ("appid", "mchid"),
    };
    let (Some(appid), Some(mchid), Some(description), Some(out_trade_no), Some(notify_url)) = (
        s(appid_key),
        s(mchid_key),
        s("description"),
        s("out_trade_no"),
        s("notify_url"),
    ) else {
        return bad("缺少必填参数 appid / mchid / description / out_trade_no / notify_url");
    };
    if appid != sb.account.wechat_appid || mchid != sb.account.wechat_mchid {
        return sb.wechat_error(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid 和 mchid 不匹配",
        );
    }
    // Partner mode: the sub-merchant's own official account, when the order names one.
    let mut sub_appid = None;
    let (owner, via) = match partner {
        true => match s("sub_mchid").and_then(|m| sb.by_mchid(m)) {
            Some(sub) => {
                if let Some(named) = s("sub_appid") {
                    if named != sub.wechat_appid {
                        return sb.wechat_error(
                            StatusCode::BAD_REQUEST,
                            "INVALID_REQUEST",
                            "sub_appid 与 sub_mchid 不匹配",
                        );
                    }
                    sub_appid = Some(named);
                }
                (sub.wechat_mchid.clone(), Some(mchid.to_string()))
            }
            None => {
                return sb.wechat_error(
                    StatusCode::BAD_REQUEST,
                    "PARAM_ERROR",
                    "sub_mchid 无效，或未与服务商建立关系",
                )
            }
        },
        false => (mchid.to_string(), None),
    };
    if !valid_out_trade_no(out_trade_no) {
        return bad("out_trade_no 长度须为 6-32 位，只能是数字、大小写字母、_-|*");
    }
    if description.chars().count() > 127 {
        return bad("description 超过 127 个字符");
    }
    if notify_url.contains('?')
        || !(notify_url.starts_with("https://") || notify_url.starts_with("http://"))
    {
        return bad("notify_url 须为不带参数的 URL");
    }
    let total = req.pointer("/amount/total").and_then(Value::as_i64);
    let Some(total) = total.filter(|t| (1..=10_000_000_000).contains(t)) else {
        return bad("amount.total 须为 1 到 10000000000 之间的整数（分）");
    };
    if req
        .pointer("/amount/currency")
        .and_then(Value::as_str)
        .is_some_and(|c| c != "CNY")
    {
        return bad("amount.currency 只支持 CNY");
    }
    let expires_at = s("time_expire").and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    });
    if let Some(e) = expires_at {
        if e.unix_timestamp() < now_ms() / 1000 + 60 {
            return bad("time_expire 须至少在 1 分钟之后");
        }
    }
    // JSAPI: a payer this app met through a sign-in; H5: the payer's address and the
    // scene. The product is part of what the order was made with.
    let trade_type = match uri.path().rsplit('/').next() {
        Some("jsapi") => "JSAPI",
        Some("h5") => "MWEB",
        _ => "NATIVE",
    };
    let openid = match sb
        .wechat_method_checks(&req, trade_type, partner, appid, sub_appid)
        .await
    {
        Err(e) => return storage_failed(&sb, e),
        Ok(Err(why)) => return bad(why),
        Ok(Ok(openid)) => openid,
    };
    let d = digest(&[
        out_trade_no,
        &total.to_string(),
        description,
        notify_url,
        trade_type,
        openid.as_ref().map(|(o, _)| *o).unwrap_or_default(),
    ]);
    let expires_ms = expires_at.map(|e| e.unix_timestamp() * 1000);
    match sb
        .create_trade(
            "wechat",
            out_trade_no,
            &owner,
            via.as_deref(),
            total,
            description,
            notify_url,
            &d,
            expires_ms,
        )
        .await
    {
        Err(e) => storage_failed(&sb, e),
        Ok(Ok(t)) if t.state == "paid" => {
            sb.wechat_error(StatusCode::BAD_REQUEST, "ORDERPAID", "该订单已支付")
        }
        Ok(Ok(t)) if t.state == "closed" => {
            sb.wechat_error(StatusCode::BAD_REQUEST, "ORDER_CLOSED", "订单已关闭")
        }
        Ok(Ok(t)) => {
            let payer = openid.as_ref().map(|(o, app)| (*o, Some(app.as_str())));
            if let Err(e) = sb.set_trade_kind(&t.id, trade_type, payer, None).await {
                return storage_failed(&sb, e);
            }
            let answer = match trade_type {
                "JSAPI" => json!({ "prepay_id": format!("wx{}", t.id) }),
                "MWEB" => json!({ "h5_url": format!("{}?h5=1", sb.wallet_url(&t.id)) }),
                _ => json!({ "code_url": sb.wallet_url(&t.id) }),
            };
            sb.wechat_signed(StatusCode::OK, answer.to_string())
        }
        Ok(Err(_)) => sb.wechat_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "商户订单号重复，且订单内容不一致",
        ),
    }
}

async fn query(
    State(sb): State<Arc<Sandbox>>,
    Path(out_trade_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    admit!(sb, Method::GET, uri, headers, b"");
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let partner = uri.path().contains("/partner/");
    let owner_key = if partner { "sp_mchid" } else { "mchid" };
    if params.get(owner_key) != Some(&sb.account.wechat_mchid)
        || (partner && !params.contains_key("sub_mchid"))
    {
        return sb.wechat_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "缺少 mchid 参数");
    }
    let sub = params.get("sub_mchid").filter(|_| partner);
    if let Some(refusal) = sb.unknown_sub(sub.map(String::as_str)) {
        return refusal;
    }
    match sb.own_trade(&out_trade_no, sub.map(String::as_str)).await {
        Err(e) => storage_failed(&sb, e),
        Ok(None) => sb.wechat_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
        Ok(Some(t)) => {
            let mut answer = transaction_json(&sb, &t, trade_state(&t));
            // The wrong_amount fault spoils every answer that says paid, queries too.
            if sb.faults_for(&t.faults).wrong_amount && answer.get("amount").is_some() {
                answer["amount"]["total"] = json!(t.amount + 1);
                answer["amount"]["payer_total"] = json!(t.amount + 1);
            }
            sb.wechat_signed(StatusCode::OK, answer.to_string())
        }
    }
}

async fn close(
    State(sb): State<Arc<Sandbox>>,
    Path(out_trade_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admit!(sb, Method::POST, uri, headers, &body);
    let partner = uri.path().contains("/partner/");
    let req = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let field = |k: &str| req.get(k).and_then(Value::as_str);
    let owner_key = if partner { "sp_mchid" } else { "mchid" };
    let sub = field("sub_mchid").filter(|_| partner);
    if field(owner_key) != Some(sb.account.wechat_mchid.as_str()) || (partner && sub.is_none()) {
        return sb.wechat_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "mchid 不正确");
    }
    if let Some(refusal) = sb.unknown_sub(sub) {
        return refusal;
    }
    let trade = match sb.own_trade(&out_trade_no, sub).await {
        Err(e) => return storage_failed(&sb, e),
        Ok(None) => return sb.wechat_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
        Ok(Some(t)) => t,
    };
    match sb
        .transition(&trade.id, &["created", "scanned"], "closed")
        .await
    {
        Err(e) => storage_failed(&sb, e),
        Ok(true) => sb.wechat_signed(StatusCode::NO_CONTENT, String::new()),
        Ok(false) if trade.state == "closed" => {
            sb.wechat_signed(StatusCode::NO_CONTENT, String::new())
        }
        Ok(false) => sb.wechat_error(StatusCode::BAD_REQUEST, "ORDERPAID", "订单已支付，不能关闭"),
    }
}

async fn refund(
    State(sb): State<Arc<Sandbox>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admit!(sb, Method::POST, uri, headers, &body);
    let bad = |msg: &str| sb.wechat_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", msg);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return bad("请求体不是合法的 JSON");
    };
    let (Some(out_trade_no), Some(out_refund_no)) = (
        req.get("out_trade_no").and_then(Value::as_str),
        req.get("out_refund_no").and_then(Value::as_str),
    ) else {
        return bad("缺少 out_trade_no 或 out_refund_no");
    };
    let (Some(amount), Some(total)) = (
        req.pointer("/amount/refund")
            .and_then(Value::as_i64)
            .filter(|a| *a >= 1),
        req.pointer("/amount/total").and_then(Value::as_i64),
    ) else {
        return bad("amount.refund / amount.total 不合法");
    };
    let sub = req.get("sub_mchid").and_then(Value::as_str);
    if let Some(refusal) = sb.unknown_sub(sub) {
        return refusal;
    }
    let trade = match sb.own_trade(out_trade_no, sub).await {
        Err(e) => return storage_failed(&sb, e),
        Ok(None) => {
            return sb.wechat_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在")
        }
        Ok(Some(t)) => t,
    };
    if total != trade.amount {
        return bad("amount.total 与订单金额不一致");
    }
    if trade.state != "paid" {
        return sb.wechat_error(StatusCode::FORBIDDEN, "NOT_ENOUGH", "订单未支付，不能退款");
    }
    let faults = sb.faults_for(&trade.faults);
    if faults.refund_refused {
        return sb.wechat_error(StatusCode::FORBIDDEN, "NOT_ENOUGH", "基本账户余额不足");
    }
    let notify_url = req.get("notify_url").and_then(Value::as_str);
    match sb.refund(&trade, out_refund_no, amount, notify_url).await {
        Err(e) => storage_failed(&sb, e),
        Ok(None) => sb.wechat_error(StatusCode::FORBIDDEN, "NOT_ENOUGH", "退款金额超过可退金额"),
        // The refund is made; the first answer about it is lost as the faults say.
        Ok(Some(r)) if r.answers == 0 && faults.refund_unknown => sb.wechat_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SYSTEM_ERROR",
            "系统超时，请使用相同参数重新调用",
        ),
        Ok(Some(r)) => {
            let answer = sb.wechat_signed(StatusCode::OK, refund_json(&trade, &r).to_string());
            if r.answers == 0 && faults.refund_cut {
                cut_off(answer).await
            } else {
                answer
            }
        }
    }
}

/// A response with the second half of its body missing (the signature headers stay).
async fn cut_off(answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let mut r = Response::from_parts(parts, axum::body::Body::from(half));
    r.headers_mut().remove(http::header::CONTENT_LENGTH);
    r
}

pub(super) fn refund_json(t: &Trade, r: &super::SandboxRefund) -> Value {
    let mut v = json!({
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": t.trade_no,
        "out_trade_no": t.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(now_ms()),
        "status": r.status,
        "funds_account": "AVAILABLE",
        "amount": { "total": t.amount, "refund": r.amount, "payer_total": t.amount, "payer_refund": r.amount, "currency": "CNY" },
    });
    if r.status == "SUCCESS" {
        v["success_time"] = json!(rfc3339(now_ms()));
    }
    v
}

/// `POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund`: an abnormal refund
/// goes to the merchant's bank card (`MERCHANT_BANK_CARD`; a buyer's card needs encrypted
/// card details the sandbox has no use for).
async fn apply_abnormal_refund(
    State(sb): State<Arc<Sandbox>>,
    Path(refund_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admit!(sb, Method::POST, uri, headers, &body);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return sb.wechat_error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "请求体不是合法的 JSON",
        );
    };
    match req.get("type").and_then(Value::as_str) {
        Some("MERCHANT_BANK_CARD") => {}
        Some("USER_BANK_CARD") => {
            return sb.wechat_error(
                StatusCode::BAD_REQUEST,
                "PARAM_ERROR",
                "沙箱仅支持 MERCHANT_BANK_CARD",
            )
        }
        _ => return sb.wechat_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "type 不合法"),
    }
    let retried = match sb.retry_abnormal(&refund_id).await {
        Err(e) => return storage_failed(&sb, e),
        Ok(None) => {
            return sb.wechat_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "退款单状态不是异常",
            )
        }
        Ok(Some(r)) => r,
    };
    match sb.refund_by_no("wechat", &retried.out_refund_no).await {
        Ok(Some((r, trade_id))) => match sb.trade(&trade_id).await {
            Ok(Some(t)) => sb.wechat_signed(StatusCode::OK, refund_json(&t, &r).to_string()),
            Ok(None) => sb.wechat_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在"),
            Err(e) => storage_failed(&sb, e),
        },
        Ok(None) => sb.wechat_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在"),
        Err(e) => storage_failed(&sb, e),
    }
}

async fn refund_query(
    State(sb): State<Arc<Sandbox>>,
    Path(out_refund_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    admit!(sb, Method::GET, uri, headers, b"");
    match sb.refund_by_no("wechat", &out_refund_no).await {
        Err(e) => storage_failed(&sb, e),
        Ok(None) => sb.wechat_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在"),
        Ok(Some((r, trade_id))) => match sb.trade(&trade_id).await {
            Ok(Some(t)) => sb.wechat_signed(StatusCode::OK, refund_json(&t, &r).to_string()),
            Ok(None) => sb.wechat_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在"),
            Err(e) => storage_failed(&sb, e),
        },
    }
}
