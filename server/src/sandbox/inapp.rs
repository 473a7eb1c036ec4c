//! The sandbox's wallets inside their own browsers and in phone browsers (#18), at the real
//! paths under its prefix so a client written for the providers works against it:
//!
//! - `GET /wechat/connect/oauth2/authorize` and `GET /alipay/oauth2/publicAppAuthorize.htm`:
//!   silent sign-ins (`snsapi_base`, `auth_base`) that send the browser back with a
//!   one-time code; `GET /wechat/sns/oauth2/access_token` and Alipay's
//!   `alipay.system.oauth.token` exchange it for the buyer's id (Alipay: an `open_id`, as
//!   for apps made since 2023; `user_id` with the `user_id_app` fault).
//! - The JS bridges' stand-in is in `bridge.rs`.
//!
//! Faults come from the browser's `sandbox_oauth` cookie: `code_expired` (the code is dead
//! on arrival), `invalid_openid` (the openid of another app), `buyer_not_found` (a buyer the
//! app never met), `user_id_app` (an app still given `user_id`s), `refuse` (the sign-in
//! page refuses).

use super::{digest, now_ms, token, Sandbox, SandboxAccount};
use crate::providers::crypto::Signer;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// How long a sign-in code lives unused (WeChat: 5 minutes).
const CODE_LIFETIME_MS: i64 = 5 * 60 * 1000;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/wechat/connect/oauth2/authorize", get(wechat_authorize))
        .route("/wechat/sns/oauth2/access_token", get(wechat_access_token))
        .route(
            "/alipay/oauth2/publicAppAuthorize.htm",
            get(alipay_authorize),
        )
        .merge(super::bridge::routes())
}

/// Why a sign-in code cannot be exchanged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CodeRefused {
    Unknown,
    Used,
    Expired,
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A stable id of `buyer` (the `sandbox_buyer` cookie, else one buyer) at `app`.
fn buyer_id(app: &str, buyer: &str, len: usize) -> String {
    digest(&[app, buyer])[..len].to_string()
}

/// `url` with `pairs` added to its query, before any `#` (as WeChat does).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(f) => format!("{base}{sep}{query}#{f}"),
        None => format!("{base}{sep}{query}"),
    }
}

fn refusal_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>Sandbox sign-in</title><main><h1 data-testid=oauth-refused>{}</h1></main>",
            message.replace('<', "&lt;")
        )),
    )
        .into_response()
}

fn redirect_target(q: &HashMap<String, String>) -> Option<&str> {
    q.get("redirect_uri")
        .map(String::as_str)
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

impl Sandbox {
    /// A one-time code for `payer` (of `kind`) at `app`.
    async fn issue_code(
        &self,
        channel: &str,
        app: &str,
        payer: &str,
        kind: &str,
        expired: bool,
    ) -> Result<String, sqlx::Error> {
        let code = token(32);
        let created = now_ms() - if expired { 2 * CODE_LIFETIME_MS } else { 0 };
        sqlx::query(
            "INSERT INTO sandbox_oauth_codes (code, channel, app_id, payer, kind, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&code)
        .bind(channel)
        .bind(app)
        .bind(payer)
        .bind(kind)
        .bind(created)
        .execute(&self.pool)
        .await?;
        Ok(code)
    }

    /// Uses up a code of `app`: the payer and its kind. The payer becomes known to `app`
    /// (unless the fault that made the code gave a foreign one).
    pub(super) async fn redeem_code(
        &self,
        channel: &str,
        app: &str,
        code: &str,
    ) -> Result<Result<(String, String), CodeRefused>, sqlx::Error> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "UPDATE sandbox_oauth_codes SET used_at = ?1 \
             WHERE code = ?2 AND channel = ?3 AND app_id = ?4 AND used_at IS NULL \
             RETURNING payer, kind, created_at",
        )
        .bind(now_ms())
        .bind(code)
        .bind(channel)
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        let Some((payer, kind, created)) = row else {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM sandbox_oauth_codes WHERE code = ?1 AND app_id = ?2",
            )
            .bind(code)
            .bind(app)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(Err(match exists {
                Some(_) => CodeRefused::Used,
                None => CodeRefused::Unknown,
            }));
        };
        if now_ms() - created > CODE_LIFETIME_MS {
            return Ok(Err(CodeRefused::Expired));
        }
        if let Some(kind) = kind.strip_suffix("-foreign") {
            return Ok(Ok((payer, kind.to_string())));
        }
        sqlx::query(
            "INSERT INTO sandbox_payers (channel, app_id, payer, kind) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(channel)
        .bind(app)
        .bind(&payer)
        .bind(&kind)
        .execute(&self.pool)
        .await?;
        Ok(Ok((payer, kind)))
    }

    /// Whether `app` met buyer `payer` of `kind` through a sign-in.
    pub(super) async fn knows_payer(
        &self,
        channel: &str,
        app: &str,
        payer: &str,
        kind: &str,
    ) -> Result<bool, sqlx::Error> {
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sandbox_payers WHERE channel = ?1 AND app_id = ?2 AND payer = ?3 AND kind = ?4",
        )
        .bind(channel)
        .bind(app)
        .bind(payer)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(known.is_some())
    }

    /// Records what made a trade and for whom (set once, right after it is created).
    pub(super) async fn set_trade_kind(
        &self,
        id: &str,
        trade_type: &str,
        payer: Option<(&str, Option<&str>)>,
        return_url: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sandbox_trades SET trade_type = ?1, payer = COALESCE(?2, payer), \
             payer_app = COALESCE(?3, payer_app), return_url = COALESCE(?4, return_url) \
             WHERE id = ?5",
        )
        .bind(trade_type)
        .bind(payer.map(|p| p.0))
        .bind(payer.and_then(|p| p.1))
        .bind(return_url)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What a WeChat order of `trade_type` needs beyond a Native one: JSAPI a payer that
    /// signed in to the app named for it (partner mode: `sub_openid` of `sub_appid`, or
    /// `sp_openid` of the service provider's appid; else `openid` of `appid`), H5 the
    /// payer's address and scene. `Ok(Ok(Some((openid, its app))))`, or `Ok(Err(why))` for
    /// PARAM_ERROR.
    pub(super) async fn wechat_method_checks<'a>(
        &self,
        req: &'a Value,
        trade_type: &str,
        partner: bool,
        appid: &str,
        sub_appid: Option<&str>,
    ) -> Result<Result<Option<(&'a str, String)>, &'static str>, sqlx::Error> {
        let payer = |k: &str| {
            req.pointer(&format!("/payer/{k}"))
                .and_then(Value::as_str)
                .filter(|o| !o.is_empty())
        };
        let (openid, payer_app) = match (partner, payer("sub_openid"), sub_appid) {
            (true, Some(_), None) => return Ok(Err("传入 sub_openid 时 sub_appid 必填")),
            (true, Some(o), Some(sub)) => (Some(o), sub),
            (true, None, _) => (payer("sp_openid"), appid),
            (false, _, _) => (payer("openid"), appid),
        };
        match trade_type {
            "JSAPI" => match openid {
                None => return Ok(Err("JSAPI 下单 payer.openid 必填")),
                Some(o) => {
                    if !self.knows_payer("wechat", payer_app, o, "openid").await? {
                        return Ok(Err("appid和openid不匹配"));
                    }
                }
            },
            "MWEB" => {
                let ip = req
                    .pointer("/scene_info/payer_client_ip")
                    .and_then(Value::as_str)
                    .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
                let h5_type = req
                    .pointer("/scene_info/h5_info/type")
                    .and_then(Value::as_str);
                if ip.is_none() || h5_type.is_none() {
                    return Ok(Err(
                        "H5 下单 scene_info.payer_client_ip 与 scene_info.h5_info.type 必填",
                    ));
                }
            }
            _ => {}
        }
        Ok(Ok(openid.map(|o| (o, payer_app.to_string()))))
    }

    fn by_wechat_appid(&self, appid: &str) -> Option<Arc<SandboxAccount>> {
        self.find(|a| a.wechat_appid == appid)
    }
}

async fn wechat_authorize(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fault = cookie(&headers, "sandbox_oauth").unwrap_or_default();
    let appid = q.get("appid").cloned().unwrap_or_default();
    if sb.by_wechat_appid(&appid).is_none() {
        return refusal_page("appid 参数错误 (10003)");
    }
    let Some(target) = redirect_target(&q) else {
        return refusal_page("redirect_uri 参数错误");
    };
    if !matches!(
        q.get("scope").map(String::as_str),
        Some("snsapi_base" | "snsapi_userinfo")
    ) || q.get("response_type").map(String::as_str) != Some("code")
    {
        return refusal_page("scope 参数错误或没有 scope 权限");
    }
    if fault == "refuse" {
        return refusal_page("该公众号没有网页授权权限 (10005)");
    }
    let buyer = cookie(&headers, "sandbox_buyer").unwrap_or_else(|| "buyer".into());
    let (openid, kind) = match fault.as_str() {
        "invalid_openid" => (
            format!("o{}", buyer_id("wx_another_app", &buyer, 27)),
            "openid-foreign",
        ),
        _ => (format!("o{}", buyer_id(&appid, &buyer, 27)), "openid"),
    };
    let code = match sb
        .issue_code("wechat", &appid, &openid, kind, fault == "code_expired")
        .await
    {
        Ok(c) => c,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&with_query(target, &[("code", &code), ("state", &state)])).into_response()
}

async fn wechat_access_token(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let err = |code: i64, msg: &str| {
        axum::Json(json!({ "errcode": code, "errmsg": msg })).into_response()
    };
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let Some(account) = sb.by_wechat_appid(get("appid")) else {
        return err(40013, "invalid appid");
    };
    if get("grant_type") != "authorization_code" {
        return err(40002, "invalid grant_type");
    }
    if get("secret") != account.keys.wechat_app_secret.expose().as_str() {
        return err(40125, "invalid appsecret");
    }
    match sb.redeem_code("wechat", get("appid"), get("code")).await {
        Err(_) => err(-1, "system error"),
        Ok(Err(CodeRefused::Used)) => err(40163, "code been used"),
        Ok(Err(CodeRefused::Unknown | CodeRefused::Expired)) => err(40029, "invalid code"),
        Ok(Ok((openid, _))) => axum::Json(json!({
            "access_token": token(40),
            "expires_in": 7200,
            "refresh_token": token(40),
            "openid": openid,
            "scope": "snsapi_base",
        }))
        .into_response(),
    }
}

async fn alipay_authorize(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fault = cookie(&headers, "sandbox_oauth").unwrap_or_default();
    let app_id = q.get("app_id").cloned().unwrap_or_default();
    if sb.by_app_id(&app_id).is_none() {
        return refusal_page("应用不存在 (invalid app_id)");
    }
    let Some(target) = redirect_target(&q) else {
        return refusal_page("redirect_uri 与应用授权回调地址不一致");
    };
    if !matches!(
        q.get("scope").map(String::as_str),
        Some("auth_base" | "auth_user")
    ) {
        return refusal_page("scope 参数错误");
    }
    if fault == "refuse" {
        return refusal_page("应用未开通网页授权 (refused)");
    }
    let buyer = cookie(&headers, "sandbox_buyer").unwrap_or_else(|| "buyer".into());
    let (payer, kind) = match fault.as_str() {
        "user_id_app" => (
            format!("2088{}", &numeric(&buyer_id(&app_id, &buyer, 24))[..12]),
            "user_id",
        ),
        "buyer_not_found" => (
            format!("0{}", buyer_id("another_app", &buyer, 40)),
            "open_id-foreign",
        ),
        _ => (format!("0{}", buyer_id(&app_id, &buyer, 40)), "open_id"),
    };
    let code = match sb
        .issue_code("alipay", &app_id, &payer, kind, fault == "code_expired")
        .await
    {
        Ok(c) => c,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&with_query(
        target,
        &[
            ("app_id", &app_id),
            ("source", "alipay_wallet"),
            ("scope", "auth_base"),
            ("auth_code", &code),
            ("state", &state),
        ],
    ))
    .into_response()
}

/// Hex digits as decimal digits (for a `2088…` user id).
fn numeric(hex: &str) -> String {
    hex.bytes().map(|b| char::from(b'0' + b % 10)).collect()
}

/// `alipay.system.oauth.token`: the buyer behind an `auth_code` (top-level parameters,
/// no `biz_content`). New apps get only `open_id`.
pub(super) async fn alipay_oauth_token(
    sb: &Sandbox,
    app_id: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<serde_json::Map<String, Value>, sqlx::Error> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let fail = |sub: &str, msg: &str| {
        let mut m = serde_json::Map::new();
        m.insert("code".into(), json!("40002"));
        m.insert("msg".into(), json!("Invalid Arguments"));
        m.insert("sub_code".into(), json!(sub));
        m.insert("sub_msg".into(), json!(msg));
        m
    };
    if get("grant_type") != "authorization_code" {
        return Ok(fail("isv.grant-type-invalid", "grant_type 参数不正确"));
    }
    let (payer, kind) = match sb.redeem_code("alipay", app_id, get("code")).await? {
        Ok(p) => p,
        Err(_) => {
            return Ok(fail(
                "isv.code-invalid",
                "授权码(auth_code)错误、状态不对或过期了",
            ))
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("code".into(), json!("10000"));
    m.insert("msg".into(), json!("Success"));
    m.insert(kind.clone(), json!(payer));
    m.insert(
        "access_token".into(),
        json!(format!("authbse{}", token(32))),
    );
    m.insert("expires_in".into(), json!(1296000));
    m.insert(
        "refresh_token".into(),
        json!(format!("authbse{}", token(32))),
    );
    m.insert("re_expires_in".into(), json!(2592000));
    m.insert("auth_start".into(), json!(super::wechat::rfc3339(now_ms())));
    Ok(m)
}

/// The signed return of Alipay's WAP cashier to the merchant's `return_url`, as observed:
/// `method=alipay.trade.wap.pay.return`, no trade state.
pub(super) fn alipay_return_url(sb: &Sandbox, t: &super::Trade) -> Option<String> {
    let target = t.return_url.as_deref()?;
    let account = sb.account_of(t);
    let signer = sb.signer_of(t);
    let amount = app::money::Amount::from_fen(t.amount).ok()?;
    let mut fields: std::collections::BTreeMap<String, String> = [
        ("charset", "utf-8".to_string()),
        ("out_trade_no", t.out_trade_no.clone()),
        ("method", "alipay.trade.wap.pay.return".into()),
        (
            "total_amount",
            crate::providers::alipay::wire::format_amount(amount),
        ),
        ("trade_no", t.trade_no.clone()),
        ("auth_app_id", account.alipay_app_id.clone()),
        ("version", "1.0".into()),
        ("app_id", signer.alipay_app_id.clone()),
        ("sign_type", "RSA2".into()),
        ("seller_id", account.alipay_seller_id.clone()),
        (
            "timestamp",
            crate::providers::alipay::china_time(time::OffsetDateTime::now_utc()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let content = crate::providers::alipay::wire::sign_content(&fields, &["sign", "sign_type"]);
    let sign = signer
        .keys
        .alipay_gateway
        .sign_base64(content.as_bytes())
        .ok()?;
    fields.insert("sign".into(), sign);
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Some(with_query(target, &pairs))
}
