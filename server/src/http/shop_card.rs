//! `GET /p/{code}/card`: the printable card of a shop's fixed code: the QR code of its
//! `/p/<code>` URL, the shop's name, where it hangs and the wallets it takes, on one A6-sized
//! card in both languages (a counter serves everyone). Public: it shows only what the
//! printed card shows anyway.

use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;

pub fn router() -> Router<AppState> {
    Router::new().route("/p/{code}/card", get(card))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn card(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let shop = match crate::shop_codes::get(&state.db, &code).await {
        Ok(Some(s)) => s,
        Ok(None) => return (StatusCode::NOT_FOUND, "No such code.\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "shop card: storage failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let merchant = crate::merchants::get(&state.db, &shop.merchant_id)
        .await
        .ok()
        .flatten()
        .map(|m| m.name)
        .unwrap_or_default();
    let channels = state
        .payments
        .book()
        .channels_for(&shop.merchant_id)
        .await
        .unwrap_or_default();
    let wallets = channels
        .iter()
        .map(|c| match c {
            app::channel::Channel::Alipay => "支付宝 Alipay",
            app::channel::Channel::Wechat => "微信支付 WeChat Pay",
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let url = format!("{}/p/{}", state.settings.public_url, shop.code);
    let disabled = shop
        .disabled_at
        .map(|_| "<p class=off data-testid=card-disabled>已停用 · No longer in use</p>");
    Html(format!(
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{merchant} · 收款码</title><style>{STYLE}</style></head><body>\
         <main class=card data-testid=shop-card><h1>{merchant}</h1><p class=where>{name}</p>\
         <div class=qr data-url=\"{url_attr}\">{qr}</div>\
         <p class=scan>扫码付款 · Scan to pay</p><p class=wallets>{wallets}</p>{disabled}\
         <p class=url>{url_text}</p></main>\
         <p class=print><button onclick=\"window.print()\">打印 · Print</button></p></body></html>",
        merchant = esc(&merchant),
        name = esc(&shop.name),
        url_attr = esc(&url),
        url_text = esc(&url),
        qr = crate::checkout::qr_svg(&url),
        disabled = disabled.unwrap_or_default(),
    ))
    .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;color:#111}\
.card{width:105mm;min-height:148mm;margin:0 auto;border:1px solid #ccc;border-radius:6mm;padding:8mm;\
box-sizing:border-box;text-align:center}h1{font-size:1.6rem;margin:.2rem 0}.where{color:#555;margin:0 0 4mm}\
.qr svg{width:70mm;height:70mm}.scan{font-size:1.3rem;font-weight:700;margin:3mm 0 1mm}\
.wallets{margin:0}.url{font-size:.7rem;color:#777;word-break:break-all}.off{color:#b00;font-weight:700}\
.print{text-align:center}@media print{.print{display:none}body{padding:0}.card{border:none}}";
