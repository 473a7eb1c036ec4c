//! The sandbox wallet page behind every QR code (`/sandbox/pay/{id}`), mobile first, in
//! Chinese or English: merchant, subject and amount, "Pay" and "Cancel", and the faults a
//! tester may choose for this payment. Opening it is "scanning" (for Alipay, the trade now
//! exists); "Pay" marks the trade paid and starts notification delivery. `/sandbox/` lists
//! the trades and every notification attempt with the merchant's answer.

use super::{faults::Faults, now_ms, Sandbox, Trade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/", get(overview))
        .route("/pay/{id}", get(page).post(act))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    Zh,
    En,
}

fn lang(q: &HashMap<String, String>, headers: &HeaderMap) -> Lang {
    match q.get("lang").map(String::as_str) {
        Some("en") => Lang::En,
        Some("zh") => Lang::Zh,
        _ => {
            let accept = headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.trim_start().to_ascii_lowercase().starts_with("zh") {
                Lang::Zh
            } else {
                Lang::En
            }
        }
    }
}

fn t(l: Lang, zh: &'static str, en: &'static str) -> &'static str {
    if l == Lang::Zh {
        zh
    } else {
        en
    }
}

fn expired(trade: &Trade) -> bool {
    trade.expires_at.is_some_and(|e| e <= now_ms())
}

/// Every sandbox page says that no real money moves here.
fn banner(l: Lang) -> String {
    format!(
        "<div class=sandbox-banner role=note data-testid=sandbox-banner>{}</div>",
        t(
            l,
            "沙箱环境：不涉及真实资金，此处的支付均为模拟。",
            "Sandbox: no real money. Payments here are simulated."
        )
    )
}

const STYLE: &str = ".sandbox-banner{background:#fff3c4;color:#5c4400;border-bottom:1px solid #e0c25c;padding:8px 16px;text-align:center;font-weight:600}\
body{margin:0;font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;background:#f2f3f5;color:#14171f}\
main{max-width:420px;margin:0 auto;padding:24px 16px}.card{background:#fff;border-radius:14px;padding:24px;text-align:center}\
.brand{font-weight:700;color:#fff;padding:10px;border-radius:10px;margin-bottom:16px}.alipay{background:#0958d9}.wechat{background:#067a3d}\
.amount{font-size:2.4rem;font-weight:700;margin:8px 0}.muted{color:#5b6270}button{width:100%;min-height:48px;font-size:1.05rem;border-radius:10px;border:0;margin-top:12px;cursor:pointer}\
.pay{background:#0958d9;color:#fff}.wechat-pay{background:#067a3d;color:#fff}.cancel{background:#e8eaee}details{text-align:left;margin-top:18px}\
label{display:block;padding:4px 0}.state{font-size:1.3rem;font-weight:700;margin-top:12px}table{border-collapse:collapse;width:100%;background:#fff}\
td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left;font-size:.85rem;vertical-align:top}";

async fn page(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let l = lang(&q, &headers);
    let trade = match sb.trade(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return (StatusCode::NOT_FOUND, Html(format!("<!doctype html><meta charset=utf-8><style>{STYLE}</style><main><div class=card><h1>{}</h1></div></main>", t(l, "二维码无效", "Unknown code")))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "sandbox wallet: storage failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // H5: the merchant added its return page to the cashier's link.
    if let (Some(back), "MWEB") = (q.get("redirect_url"), trade.trade_type.as_str()) {
        if back.starts_with("http://") || back.starts_with("https://") {
            let _ = sb.set_trade_kind(&trade.id, "MWEB", None, Some(back)).await;
        }
    }
    // Opening the code is scanning it.
    if trade.state == "created" && !expired(&trade) {
        let _ = sb.transition(&trade.id, &["created"], "scanned").await;
    }
    let alipay = trade.channel == "alipay";
    let brand = if alipay {
        t(l, "支付宝 · 沙箱", "Alipay · Sandbox")
    } else {
        t(l, "微信支付 · 沙箱", "WeChat Pay · Sandbox")
    };
    let amount = app::money::Amount::from_fen(trade.amount)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let faults = q.get("faults").cloned().unwrap_or_default();
    let body = match trade.state.as_str() {
        "paid" => format!(
            "<p class=state data-state=paid>✓ {}</p>",
            t(l, "支付成功", "Paid")
        ),
        "closed" => format!(
            "<p class=state data-state=closed>{}</p>",
            t(l, "交易已关闭", "This payment is closed")
        ),
        _ if expired(&trade) => format!(
            "<p class=state data-state=expired>{}</p>",
            t(l, "二维码已过期", "This code has expired")
        ),
        _ => {
            let checks = [
                ("drop", t(l, "不发送通知", "Send no notification")),
                (
                    "out_of_order",
                    t(
                        l,
                        "随后发送过期状态通知",
                        "Then send a stale unpaid notification",
                    ),
                ),
                ("bad_signature", t(l, "错误签名", "Wrong signature")),
                ("wrong_amount", t(l, "金额多 1 分", "Amount one fen higher")),
                (
                    "stale_timestamp",
                    t(l, "过期时间戳（微信）", "Stale timestamp (WeChat)"),
                ),
                (
                    "refund_unknown",
                    t(l, "退款首次应答未知", "Refunds: first answer unknown"),
                ),
                (
                    "refund_slow",
                    t(l, "退款处理中，稍后成功", "Refunds: processing, done later"),
                ),
                (
                    "refund_abnormal",
                    t(l, "退款异常（微信）", "Refunds: abnormal (WeChat)"),
                ),
                ("refund_refused", t(l, "拒绝退款", "Refunds: refused")),
            ]
            .iter()
            .map(|(k, label)| {
                format!("<label><input type=checkbox name=fault value={k}> {label}</label>")
            })
            .collect::<String>();
            format!(
                "<form method=post><input type=hidden name=faults value=\"{faults}\"><input type=hidden name=lang value={lang_code}>\
                 <button class=\"{pay_class}\" name=action value=pay data-testid=wallet-pay>{pay}</button>\
                 <button class=cancel name=action value=cancel>{cancel}</button>\
                 <details><summary>{fi}</summary>{checks}\
                 <label>{dup} <input type=number name=duplicates min=0 max=100 value=0 style=width:5em></label>\
                 <label>{delay} <input type=number name=delay_ms min=0 value=0 style=width:7em></label></details></form>",
                faults = esc(&faults),
                lang_code = if l == Lang::Zh { "zh" } else { "en" },
                pay_class = if alipay { "pay" } else { "wechat-pay" },
                pay = t(l, "确认付款", "Pay"),
                cancel = t(l, "取消", "Cancel"),
                fi = t(l, "故障注入", "Fault injection"),
                dup = t(l, "重复通知份数", "Duplicate notifications"),
                delay = t(l, "通知延迟（毫秒）", "Notification delay (ms)"),
            )
        }
    };
    Html(format!(
        "<!doctype html><html lang={lang}><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{brand}</title><style>{STYLE}</style></head><body>{banner}<main><div class=card>\
         <div class=\"brand {cls}\">{brand}</div><p class=muted>{merchant}</p>\
         <p data-testid=wallet-subject>{subject}</p><p class=amount data-testid=wallet-amount>{amount}</p>{body}</div></main></body></html>",
        lang = if l == Lang::Zh { "zh-CN" } else { "en" },
        cls = if alipay { "alipay" } else { "wechat" },
        banner = banner(l),
        merchant = t(l, "ScanPay 沙箱商户", "ScanPay sandbox merchant"),
        subject = esc(&trade.subject),
    ))
    .into_response()
}

async fn act(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut faults = Faults::parse(get("faults")).unwrap_or_default();
    for (k, v) in &form {
        if k == "fault" {
            faults = faults.merged(&Faults::parse(v).unwrap_or_default());
        }
    }
    faults.duplicates = faults
        .duplicates
        .max(get("duplicates").parse().unwrap_or(0));
    faults.delay_ms = faults.delay_ms.max(get("delay_ms").parse().unwrap_or(0));
    let faults = faults.capped();
    let trade = match sb.trade(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if get("action") == "pay" && !expired(&trade) {
        match sb.pay(&trade, &faults).await {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "sandbox wallet: payment failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    }
    // A phone browser's cashier sends the buyer back to the merchant, paid or not: WeChat H5
    // to its redirect_url, Alipay WAP to its return_url with the signed return.
    let back = match trade.trade_type.as_str() {
        "MWEB" => trade.return_url.clone(),
        "WAP" => super::inapp::alipay_return_url(&sb, &trade),
        _ => None,
    };
    if let Some(back) = back {
        return Redirect::to(&back).into_response();
    }
    // Back to the page, in the language it was shown in.
    let lang = match get("lang") {
        "zh" => "?lang=zh",
        "en" => "?lang=en",
        _ => "",
    };
    Redirect::to(&format!(
        "{}/pay/{id}{lang}",
        sb.settings.base_url.trim_end_matches('/')
    ))
    .into_response()
}

impl Sandbox {
    /// The buyer pays: the trade becomes paid (once) and its notifications are scheduled.
    pub async fn pay_by_id(&self, id: &str, faults: &Faults) -> Result<bool, sqlx::Error> {
        match self.trade(id).await? {
            Some(t) if !expired(&t) => self.pay(&t, faults).await,
            _ => Ok(false),
        }
    }

    async fn pay(&self, trade: &Trade, faults: &Faults) -> Result<bool, sqlx::Error> {
        sqlx::query("UPDATE sandbox_trades SET faults = ?1 WHERE id = ?2 AND state IN ('created', 'scanned')")
            .bind(faults.to_string())
            .bind(&trade.id)
            .execute(&self.pool)
            .await?;
        if !self
            .transition(&trade.id, &["created", "scanned"], "paid")
            .await?
        {
            return Ok(false);
        }
        let paid = self
            .trade(&trade.id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        self.enqueue_notifications(&paid, &self.faults_for(&paid.faults))
            .await?;
        Ok(true)
    }
}

async fn overview(State(sb): State<Arc<Sandbox>>) -> Response {
    let trades: Vec<Trade> =
        match sqlx::query_as("SELECT * FROM sandbox_trades ORDER BY created_at DESC LIMIT 100")
            .fetch_all(&sb.pool)
            .await
        {
            Ok(t) => t,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    let attempts: Vec<(String, String, i64, i64, Option<i64>, String)> = sqlx::query_as(
        "SELECT d.trade_id, d.notify_id, a.attempt, a.at, a.status, a.body FROM sandbox_attempts a \
         JOIN sandbox_deliveries d ON d.id = a.delivery_id ORDER BY a.at DESC LIMIT 500",
    )
    .fetch_all(&sb.pool)
    .await
    .unwrap_or_default();
    let mut rows = String::new();
    for tr in &trades {
        let amount = app::money::Amount::from_fen(tr.amount)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let tries = attempts
            .iter()
            .filter(|a| a.0 == tr.id)
            .map(|a| {
                format!(
                    "#{} {} → {} {}<br>",
                    a.2,
                    super::wechat::rfc3339(a.3),
                    a.4.map(|s| s.to_string())
                        .unwrap_or_else(|| "no answer".into()),
                    esc(&a.5.chars().take(80).collect::<String>())
                )
            })
            .collect::<String>();
        rows.push_str(&format!(
            "<tr><td>{} {}{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&tr.channel),
            esc(&tr.account),
            tr.via
                .as_deref()
                .map(|v| format!(" via {}", esc(v)))
                .unwrap_or_default(),
            esc(&sb.wallet_url(&tr.id)),
            esc(&tr.out_trade_no),
            amount,
            esc(&tr.state),
            esc(&tr.faults),
            tries
        ));
    }
    Html(format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>ScanPay sandbox</title>\
         <style>{STYLE}</style>{banner}<main style=max-width:1100px><h1>ScanPay sandbox gateways</h1>\
         <p class=muted>Trades and notification deliveries (attempt, time, the merchant's answer). Newest first.</p>\
         <table><tr><th>Provider</th><th>Order</th><th>Amount</th><th>State</th><th>Faults</th><th>Notifications</th></tr>{rows}</table></main>",
        banner = banner(Lang::En),
    ))
    .into_response()
}
