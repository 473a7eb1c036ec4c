//! The sandbox Alipay gateway, `POST|GET /sandbox/alipay/gateway.do`: merges query and form
//! parameters, checks every one of them against the merchant's signature (RSA2 only), checks
//! required fields, amounts and `out_trade_no`, and answers signed the real way: the `sign`
//! after the raw `*_response` object, `/` escaped as `\/`.

use super::{digest, Sandbox, SandboxAccount, Trade};
use crate::providers::alipay::{china_time, wire};
use crate::providers::crypto::{Signer, Verifier};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new().route("/alipay/gateway.do", any(gateway))
}

/// A business answer: the fields of the `*_response` object.
type Answer = Map<String, Value>;

/// A private mark on an answer: send it cut off half-way (never sent itself).
const CUT: &str = "__cut";

fn success(fields: Value) -> Answer {
    let mut m = Map::new();
    m.insert("code".into(), json!("10000"));
    m.insert("msg".into(), json!("Success"));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    m
}

fn failure(code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> Answer {
    let mut m = Map::new();
    m.insert("code".into(), json!(code));
    m.insert("msg".into(), json!(msg));
    m.insert("sub_code".into(), json!(sub_code));
    m.insert("sub_msg".into(), json!(sub_msg));
    m
}

fn business(sub_code: &str, sub_msg: &str) -> Answer {
    failure("40004", "Business Failed", sub_code, sub_msg)
}

fn missing(name: &str) -> Answer {
    failure(
        "40001",
        "Missing Required Arguments",
        &format!("isv.missing-{name}"),
        &format!("缺少必选参数 {name}"),
    )
}

fn invalid(sub_code: &str, sub_msg: &str) -> Answer {
    failure("40002", "Invalid Arguments", sub_code, sub_msg)
}

impl Sandbox {
    /// `{"<key>":{…},"sign":"…"}`, signed over the exact object text; cut off half-way when
    /// the answer carries the private `__cut` mark (the `refund_cut` fault).
    fn alipay_signed(&self, account: &SandboxAccount, key: &str, mut answer: Answer) -> Response {
        let cut = answer.remove(CUT).is_some();
        let object = serde_json::to_string(&answer)
            .unwrap_or_default()
            .replace('/', "\\/");
        let sign = account
            .keys
            .alipay_gateway
            .sign_base64(object.as_bytes())
            .unwrap_or_default();
        let mut body = format!(r#"{{"{key}":{object},"sign":"{sign}"}}"#);
        if cut {
            let mut half = body.len() / 2;
            while !body.is_char_boundary(half) {
                half -= 1;
            }
            body.truncate(half);
        }
        (
            [(http::header::CONTENT_TYPE, "text/html;charset=utf-8")],
            body,
        )
            .into_response()
    }
}

async fn gateway(
    State(sb): State<Arc<Sandbox>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(fault) = sb.api_faults().await {
        return fault;
    }
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .chain(form_urlencoded::parse(&body))
    {
        params.insert(k.into_owned(), v.into_owned());
    }
    let method = params.get("method").cloned().unwrap_or_default();
    let key = if method.is_empty() {
        "error_response".to_string()
    } else {
        format!("{}_response", method.replace('.', "_"))
    };
    // The app the request names answers, signed with its own key; an unknown app is
    // refused in the default account's name.
    let account = params
        .get("app_id")
        .and_then(|id| sb.by_app_id(id))
        .unwrap_or_else(|| sb.default_account());
    let answer = match check_request(&account, &params) {
        Err(answer) => answer,
        Ok(biz) => match dispatch(&sb, &account, &method, &params, &biz).await {
            // An app_auth_token that no merchant gave: refused like Alipay does.
            Ok(a) if a.get(NO_SUCH_TOKEN).is_some() => failure(
                "20001",
                "Insufficient Token Permissions",
                "aop.invalid-app-auth-token",
                "无效的应用授权令牌",
            ),
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "sandbox alipay: storage failed");
                failure(
                    "20000",
                    "Service Currently Unavailable",
                    "isp.unknow-error",
                    "系统繁忙",
                )
            }
        },
    };
    // The WAP page call answers with the cashier (HTML), not JSON: here, its page.
    if method == "alipay.trade.wap.pay" {
        return match answer.get(WAP_TRADE).and_then(Value::as_str) {
            Some(id) => axum::response::Redirect::to(&sb.wallet_url(id)).into_response(),
            None => (
                http::StatusCode::BAD_REQUEST,
                [(http::header::CONTENT_TYPE, "text/html;charset=utf-8")],
                format!(
                    "<!doctype html><meta charset=utf-8><h1 data-testid=gateway-error>{}</h1>",
                    answer
                        .get("sub_msg")
                        .and_then(Value::as_str)
                        .unwrap_or("错误")
                        .replace('<', "&lt;")
                ),
            )
                .into_response(),
        };
    }
    sb.alipay_signed(&account, &key, answer)
}

/// The private mark of a WAP call's answer: the trade whose cashier the browser is sent to.
const WAP_TRADE: &str = "__wap_trade";

/// The checks every call gets, in the gateway's order; returns the parsed `biz_content`.
fn check_request(
    account: &SandboxAccount,
    p: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, Answer> {
    for name in [
        "app_id",
        "method",
        "sign_type",
        "sign",
        "timestamp",
        "version",
    ] {
        if p.get(name).is_none_or(|v| v.is_empty()) {
            return Err(missing(name));
        }
    }
    if p["app_id"] != account.alipay_app_id {
        return Err(invalid("isv.invalid-app-id", "无效的AppID参数"));
    }
    if p["sign_type"] != "RSA2" {
        return Err(invalid("isv.invalid-signature-type", "无效的签名类型"));
    }
    if !account
        .keys
        .alipay_merchant
        .verify_base64(wire::sign_content(p, &["sign"]).as_bytes(), &p["sign"])
    {
        return Err(invalid(
            "isv.invalid-signature",
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
        ));
    }
    // The sign-in exchange takes its parameters at the top level.
    if p["method"] == "alipay.system.oauth.token" {
        return Ok(Map::new());
    }
    let biz = p.get("biz_content").ok_or_else(|| missing("biz_content"))?;
    match serde_json::from_str::<Value>(biz) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid(
            "isv.invalid-biz-content",
            "biz_content 不是合法的 JSON",
        )),
    }
}

fn text<'a>(biz: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    biz.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn valid_out_trade_no(s: &str) -> bool {
    s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The private mark of an answer to an unknown `app_auth_token`.
const NO_SUCH_TOKEN: &str = "__no_such_token";

/// Whose trades a call is about: the calling app's own, or (with an `app_auth_token`, the
/// third-party mode) those of the merchant that authorised it, made via the calling app.
struct Acting {
    /// The app id the trades are under.
    app_id: String,
    /// The calling app, when it acts for another merchant.
    via: Option<String>,
}

async fn dispatch(
    sb: &Sandbox,
    account: &SandboxAccount,
    method: &str,
    params: &BTreeMap<String, String>,
    biz: &Map<String, Value>,
) -> Result<Answer, sqlx::Error> {
    let acting = match params.get("app_auth_token").filter(|t| !t.is_empty()) {
        Some(token) => match sb.by_app_auth_token(token) {
            Some(merchant) => Acting {
                app_id: merchant.alipay_app_id.clone(),
                via: Some(account.alipay_app_id.clone()),
            },
            None => {
                let mut answer = Answer::new();
                answer.insert(NO_SUCH_TOKEN.into(), Value::Bool(true));
                return Ok(answer);
            }
        },
        None => Acting {
            app_id: account.alipay_app_id.clone(),
            via: None,
        },
    };
    match method {
        "alipay.trade.precreate" => return precreate(sb, &acting, params, biz, "NATIVE").await,
        "alipay.trade.create" => return precreate(sb, &acting, params, biz, "CREATE").await,
        "alipay.trade.wap.pay" => return precreate(sb, &acting, params, biz, "WAP").await,
        "alipay.system.oauth.token" => {
            return super::inapp::alipay_oauth_token(sb, &account.alipay_app_id, params).await
        }
        _ => {}
    }
    if !matches!(
        method,
        "alipay.trade.query"
            | "alipay.trade.close"
            | "alipay.trade.refund"
            | "alipay.trade.fastpay.refund.query"
    ) {
        return Ok(invalid("isv.invalid-method", "不存在的方法名"));
    }
    let trade: Option<Trade> = match (text(biz, "out_trade_no"), text(biz, "trade_no")) {
        (Some(o), _) => sb.trade_by_out_no("alipay", o).await?,
        (None, Some(t)) => {
            sqlx::query_as(
                "SELECT * FROM sandbox_trades WHERE channel = 'alipay' AND trade_no = ?1",
            )
            .bind(t)
            .fetch_optional(&sb.pool)
            .await?
        }
        (None, None) => return Ok(missing("out_trade_no")),
    };
    // Before a wallet has opened a precreated code, the trade does not exist at Alipay yet,
    // as with the real face-to-face flow (alipay.trade.create makes it at once, with its
    // buyer). Another app's trade does not exist for this one.
    let Some(t) = trade.filter(|t| {
        (t.state != "created" || t.trade_type == "CREATE")
            && t.account == acting.app_id
            && t.via == acting.via
    }) else {
        return Ok(business("ACQ.TRADE_NOT_EXIST", "交易不存在"));
    };
    match method {
        "alipay.trade.query" => Ok(query(&t, sb.faults_for(&t.faults).wrong_amount)),
        "alipay.trade.close" => close(sb, t).await,
        "alipay.trade.fastpay.refund.query" => refund_query(sb, t, biz).await,
        _ => refund(sb, t, biz).await,
    }
}

/// The orders: precreate (`NATIVE`, a QR code), create (`CREATE`, for `tradePay`, with a
/// buyer this app met through a sign-in, in the field of its kind) and the WAP page call
/// (`WAP`: the answer carries the trade's id for the gateway's redirect to the cashier).
async fn precreate(
    sb: &Sandbox,
    acting: &Acting,
    params: &BTreeMap<String, String>,
    biz: &Map<String, Value>,
    trade_type: &str,
) -> Result<Answer, sqlx::Error> {
    let Some(out_trade_no) = text(biz, "out_trade_no") else {
        return Ok(missing("out_trade_no"));
    };
    if !valid_out_trade_no(out_trade_no) {
        return Ok(invalid(
            "isv.invalid-out-trade-no",
            "out_trade_no 长度或字符不合法",
        ));
    }
    let Some(total) = text(biz, "total_amount") else {
        return Ok(missing("total_amount"));
    };
    let Some(amount) = wire::parse_amount(total).filter(|a| a.fen() >= 1) else {
        return Ok(invalid(
            "isv.invalid-total-amount",
            "total_amount 取值范围 [0.01,100000000]",
        ));
    };
    let Some(subject) = text(biz, "subject") else {
        return Ok(missing("subject"));
    };
    if subject.chars().count() > 256 {
        return Ok(invalid("isv.invalid-subject", "subject 超长"));
    }
    let notify_url = params.get("notify_url").cloned().unwrap_or_default();
    let expires_at = text(biz, "time_expire").and_then(parse_china_time);
    let buyer = match (text(biz, "buyer_id"), text(biz, "buyer_open_id")) {
        (Some(id), _) => Some((id, "user_id")),
        (None, Some(id)) => Some((id, "open_id")),
        (None, None) => None,
    };
    if trade_type == "CREATE" {
        let known = match buyer {
            Some((id, kind)) => {
                sb.knows_payer(
                    "alipay",
                    acting.via.as_deref().unwrap_or(&acting.app_id),
                    id,
                    kind,
                )
                .await?
            }
            None => false,
        };
        if !known {
            return Ok(business("ACQ.BUYER_NOT_EXIST", "买家不存在"));
        }
    }
    let d = digest(&[
        out_trade_no,
        total,
        subject,
        &notify_url,
        trade_type,
        buyer.map(|b| b.0).unwrap_or_default(),
    ]);
    match sb
        .create_trade(
            "alipay",
            out_trade_no,
            &acting.app_id,
            acting.via.as_deref(),
            amount.fen(),
            subject,
            &notify_url,
            &d,
            expires_at,
        )
        .await?
    {
        Ok(t) if t.state == "paid" => Ok(business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")),
        Ok(t) if t.state == "closed" => Ok(business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")),
        Ok(t) => {
            sb.set_trade_kind(
                &t.id,
                trade_type,
                buyer.map(|b| (b.0, None)),
                params.get("return_url").map(String::as_str),
            )
            .await?;
            Ok(success(match trade_type {
                "CREATE" => json!({ "out_trade_no": t.out_trade_no, "trade_no": t.trade_no }),
                "WAP" => json!({ "out_trade_no": t.out_trade_no, WAP_TRADE: t.id }),
                _ => json!({ "out_trade_no": t.out_trade_no, "qr_code": sb.wallet_url(&t.id) }),
            }))
        }
        Err(_) => Ok(business(
            "ACQ.CONTEXT_INCONSISTENT",
            "交易信息被篡改：同一 out_trade_no 的订单内容不一致",
        )),
    }
}

/// `yyyy-MM-dd HH:mm:ss` (GMT+8) → Unix ms.
fn parse_china_time(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(s, fmt)
        .ok()?
        .assume_offset(time::macros::offset!(+8));
    Some(t.unix_timestamp() * 1000)
}

fn status_word(t: &Trade) -> &'static str {
    match t.state.as_str() {
        "paid" => "TRADE_SUCCESS",
        "closed" => "TRADE_CLOSED",
        _ => "WAIT_BUYER_PAY",
    }
}

/// `wrong_amount`: the fault that spoils every answer that says paid, queries too.
fn query(t: &Trade, wrong_amount: bool) -> Answer {
    let amount = app::money::Amount::from_fen(t.amount + i64::from(wrong_amount))
        .map(wire::format_amount)
        .unwrap_or_default();
    let mut fields = json!({
        "trade_no": t.trade_no,
        "out_trade_no": t.out_trade_no,
        "buyer_logon_id": "san***@sandbox.scanpay",
        "trade_status": status_word(t),
        "total_amount": amount,
        "buyer_user_id": "2088102177846880",
    });
    if t.state == "paid" {
        fields["receipt_amount"] = json!(amount);
        fields["buyer_pay_amount"] = json!(amount);
        let paid =
            time::OffsetDateTime::from_unix_timestamp(t.paid_at.unwrap_or(t.created_at) / 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        fields["send_pay_date"] = json!(china_time(paid));
    }
    success(fields)
}

async fn close(sb: &Sandbox, t: Trade) -> Result<Answer, sqlx::Error> {
    if sb.transition(&t.id, &["scanned"], "closed").await? || t.state == "closed" {
        return Ok(success(
            json!({ "trade_no": t.trade_no, "out_trade_no": t.out_trade_no }),
        ));
    }
    Ok(business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"))
}

async fn refund(sb: &Sandbox, t: Trade, biz: &Map<String, Value>) -> Result<Answer, sqlx::Error> {
    let Some(raw) = text(biz, "refund_amount") else {
        return Ok(missing("refund_amount"));
    };
    let Some(amount) = wire::parse_amount(raw).filter(|a| a.fen() >= 1) else {
        return Ok(invalid("isv.invalid-refund-amount", "refund_amount 不合法"));
    };
    if t.state != "paid" {
        return Ok(business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"));
    }
    let faults = sb.faults_for(&t.faults);
    if faults.refund_refused {
        return Ok(business("ACQ.TRADE_NOT_ALLOW_REFUND", "当前交易不允许退款"));
    }
    let request_no = text(biz, "out_request_no")
        .unwrap_or(&t.out_trade_no)
        .to_string();
    let Some(r) = sb.refund(&t, &request_no, amount.fen(), None).await? else {
        return Ok(business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"));
    };
    // The refund is made; the first answer about it is lost as the faults say.
    if r.answers == 0 && faults.refund_unknown {
        return Ok(failure(
            "20000",
            "Service Currently Unavailable",
            "ACQ.SYSTEM_ERROR",
            "系统错误",
        ));
    }
    let refunded: (i64,) = sqlx::query_as("SELECT refunded FROM sandbox_trades WHERE id = ?1")
        .bind(&t.id)
        .fetch_one(&sb.pool)
        .await?;
    // Y only for money moved by this very call; a repeat, or a refund still processing, is
    // N: "confirm with the refund query".
    let moved = r.fresh && r.status == "SUCCESS";
    let mut answer = success(json!({
        "trade_no": t.trade_no,
        "out_trade_no": t.out_trade_no,
        "buyer_logon_id": "san***@sandbox.scanpay",
        "fund_change": if moved { "Y" } else { "N" },
        "refund_fee": app::money::Amount::from_fen(refunded.0).map(wire::format_amount).unwrap_or_default(),
        "gmt_refund_pay": china_time(time::OffsetDateTime::now_utc()),
        "send_back_fee": raw,
    }));
    if r.answers == 0 && faults.refund_cut {
        answer.insert(CUT.into(), json!(true));
    }
    Ok(answer)
}

/// `alipay.trade.fastpay.refund.query`: `refund_status` is `REFUND_SUCCESS` once the refund
/// is done, and absent while it is processing or was never received.
async fn refund_query(
    sb: &Sandbox,
    t: Trade,
    biz: &Map<String, Value>,
) -> Result<Answer, sqlx::Error> {
    let request_no = text(biz, "out_request_no").unwrap_or(&t.out_trade_no);
    let amount = |fen: i64| {
        app::money::Amount::from_fen(fen)
            .map(wire::format_amount)
            .unwrap_or_default()
    };
    let mut fields = json!({
        "trade_no": t.trade_no,
        "out_trade_no": t.out_trade_no,
        "out_request_no": request_no,
        "total_amount": amount(t.amount),
    });
    if let Some((r, trade_id)) = sb.refund_by_no("alipay", request_no).await? {
        if trade_id == t.id {
            fields["refund_amount"] = json!(amount(r.amount));
            if r.status == "SUCCESS" {
                fields["refund_status"] = json!("REFUND_SUCCESS");
                fields["gmt_refund_pay"] = json!(china_time(time::OffsetDateTime::now_utc()));
            }
        }
    }
    Ok(success(fields))
}
