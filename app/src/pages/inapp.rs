//! What a phone sees after the aggregate code when it pays in the page: inside a wallet's
//! own browser (the wallet's JS bridge: WeChat `getBrandWCPayRequest`, Alipay `tradePay`),
//! or back from a wallet's cashier. The wallet's answer is only a hint; the page turns paid
//! from the order (the live channel re-reads it), and shows the receipt.

use super::checkout::PaidState;
use crate::api::{get_checkout, InAppView, PayProblem, PayProblemKind};
use crate::i18n::{use_lang, Lang, T};
use crate::live::{self, LiveState};
use crate::status::OrderStatus;
use leptos::prelude::*;
use leptos_meta::Title;

/// What the wallet's bridge said; a hint only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum Hint {
    Waiting,
    /// "ok" / `9000`: confirming with the shop.
    Ok,
    Cancelled,
    Failed,
    /// No bridge in this browser.
    NoBridge,
}

#[component]
pub fn InAppPay(view: InAppView) -> impl IntoView {
    let lang = use_lang();
    let id = view.order_id.clone();
    let order_id = Memo::new(move |_| id.clone());
    let refresh = RwSignal::new(0u32);
    let live_state = RwSignal::new(LiveState::Connecting);
    live::watch(order_id, refresh, live_state);
    // Re-read on every live ping; the first value is the one rendered with the page.
    let current = Resource::new(
        move || refresh.get(),
        move |n| async move {
            match n {
                0 => None,
                _ => get_checkout(order_id.get_untracked(), Some("any".into()))
                    .await
                    .ok()
                    .flatten(),
            }
        },
    );
    let hint = RwSignal::new(Hint::Waiting);
    let call = view.call.clone();
    let pay = {
        let call = call.clone();
        move || {
            if let Some(call) = call.clone() {
                hint.set(Hint::Waiting);
                bridge::invoke(call, move |h| hint.set(h));
            }
        }
    };
    // Pays as soon as the page can: once, after hydration.
    {
        let pay = pay.clone();
        let payable = matches!(view.status, OrderStatus::Created | OrderStatus::Pending);
        Effect::new(move |done: Option<()>| {
            if done.is_none() && payable {
                pay();
            }
        });
    }
    let amount = view.amount.to_string();
    let merchant = view.merchant_name.clone();
    let title = format!("{} · {merchant}", lang.get_untracked().pick("Pay", "付款"));
    let token = view.token.clone();
    let has_call = call.is_some();
    let returned = view.returned;
    let initial_status = view.status;
    let status = move || {
        current
            .get()
            .flatten()
            .map(|v| v.status)
            .unwrap_or(initial_status)
    };
    let body = move || {
        let paid = matches!(
            status(),
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        );
        if paid {
            return match current.get().flatten() {
                Some(v) => view! { <PaidState view=v/> }.into_any(),
                None => view! {
                    <section class="state paid" role="status" data-testid="paid">
                        <p class="state-mark" aria-hidden="true">"✓"</p>
                        <h2><T en="Paid" zh="支付成功"/></h2>
                    </section>
                }
                .into_any(),
            };
        }
        match status() {
            OrderStatus::Expired | OrderStatus::Closed => view! {
                <p class="state" data-testid="not-payable">
                    <T en="This payment can no longer be paid. Nothing was charged; ask the shop for a new code." zh="此付款已无法支付，未发生扣款。请向商户索取新的付款码。"/>
                </p>
            }
            .into_any(),
            _ if has_call => {
                let pay = pay.clone();
                view! {
                    <button type="button" class="primary" data-testid="inapp-pay" on:click=move |_| pay()>
                        <T en="Pay" zh="立即付款"/>
                    </button>
                    <p class="muted" role="status" data-testid="inapp-hint" data-hint=move || format!("{:?}", hint.get()).to_lowercase()>
                        {move || match hint.get() {
                            Hint::Waiting => lang.get().pick("Confirm the payment in your wallet.", "请在钱包中确认付款。"),
                            Hint::Ok => lang.get().pick("Confirming your payment with the shop…", "正在向商户确认付款…"),
                            Hint::Cancelled => lang.get().pick("Payment cancelled. Tap Pay to try again.", "已取消付款。点击“立即付款”重试。"),
                            Hint::Failed => lang.get().pick("Your wallet could not pay. Tap Pay to try again.", "钱包未能完成付款。点击“立即付款”重试。"),
                            Hint::NoBridge => lang.get().pick("Open this code in the Alipay or WeChat app to pay.", "请在支付宝或微信中打开此付款码付款。"),
                        }}
                    </p>
                }
                .into_any()
            }
            _ => view! {
                <section data-testid="returned" data-returned=returned.to_string()>
                    <p role="status"><T en="We have not received this payment yet. If you have just paid, this page turns paid by itself in a moment." zh="尚未收到此付款。如您刚刚完成付款，本页面稍后会自动显示支付成功。"/></p>
                    <p><a class="button" rel="external" href=format!("/q/{token}") data-testid="pay-again"><T en="Not paid? Pay now" zh="未付款？立即付款"/></a></p>
                </section>
            }
            .into_any(),
        }
    };
    view! {
        <Title text=title/>
        {view.bridge_script.clone().map(|src| view! { <script src=src></script> })}
        <article class="card checkout inapp" data-testid="inapp" data-status=move || status().as_str()>
            <super::checkout::OrderHead logo_url=view.logo_url.clone() merchant=merchant.clone() amount=amount.clone() subject=view.subject.clone() order_id=view.order_id.clone()/>
            {body}
        </article>
    }
}

/// A clear page for what went wrong before any payment, with the way to start again.
#[component]
pub fn ProblemPage(problem: PayProblem) -> impl IntoView {
    let lang = use_lang();
    let (title, detail) = match problem.kind {
        PayProblemKind::SignInUsed => (
            ("This link has already been used", "此链接已使用过"),
            ("Nothing was charged. Scan the code again to pay.", "未发生扣款。请重新扫码付款。"),
        ),
        PayProblemKind::SignInInvalid => (
            ("This link is not valid", "此链接无效"),
            ("It was changed, or it is not from this shop. Nothing was charged. Scan the shop's code again.", "链接已被修改或并非来自本商户，未发生扣款。请重新扫描商户的付款码。"),
        ),
        PayProblemKind::PayerRefused => (
            ("Your wallet could not identify you", "钱包无法确认您的身份"),
            ("Nothing was charged. Scan the code again, or pay with the other wallet.", "未发生扣款。请重新扫码，或使用另一个钱包付款。"),
        ),
        PayProblemKind::Unavailable => (
            ("This wallet is not available right now", "此钱包暂不可用"),
            ("Nothing was charged. Try again in a moment, or pay with the other wallet.", "未发生扣款。请稍后重试，或使用另一个钱包付款。"),
        ),
        PayProblemKind::NotInThisApp => (
            ("This app cannot pay here", "无法在此应用内付款"),
            ("Scan the shop's code on its screen with the app's scanner, or open this link in your phone's browser. Nothing was charged.", "请用应用的“扫一扫”扫描商户屏幕上的付款码，或在手机浏览器中打开此链接。未发生扣款。"),
        ),
        PayProblemKind::NotPayable => (
            ("This payment can no longer be paid", "此付款已无法支付"),
            ("Nothing was charged. Ask the shop for a new code.", "未发生扣款。请向商户索取新的付款码。"),
        ),
    };
    let pick = move |(en, zh): (&'static str, &'static str)| {
        move || match lang.get() {
            Lang::En => en,
            Lang::Zh => zh,
        }
    };
    let again = (!problem.token.is_empty()
        && !matches!(problem.kind, PayProblemKind::NotPayable | PayProblemKind::NotInThisApp))
        .then(|| view! {
            <p><a class="button primary" rel="external" href=format!("/q/{}", problem.token) data-testid="start-again"><T en="Start again" zh="重新开始"/></a></p>
        });
    view! {
        <Title text=lang.get_untracked().pick(title.0, title.1)/>
        <section class="card problem" role="alert" data-testid="pay-problem" data-kind=format!("{:?}", problem.kind)>
            <h1>{pick(title)}</h1>
            <p>{pick(detail)}</p>
            {again}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod bridge {
    //! The wallets' JS bridges, called from WASM once they are ready.
    use super::Hint;
    use crate::api::WalletCall;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    fn set(o: &js_sys::Object, k: &str, v: &str) {
        let _ = js_sys::Reflect::set(o, &k.into(), &v.into());
    }

    fn get_str(o: &JsValue, k: &str) -> String {
        js_sys::Reflect::get(o, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    }

    /// Calls the wallet's bridge now, or when it says it is ready.
    pub fn invoke(call: WalletCall, done: impl Fn(Hint) + 'static) {
        let done = std::rc::Rc::new(done);
        let (name, ready) = match &call {
            WalletCall::Wechat(_) => ("WeixinJSBridge", "WeixinJSBridgeReady"),
            WalletCall::Alipay { .. } => ("AlipayJSBridge", "AlipayJSBridgeReady"),
        };
        let run = {
            let done = done.clone();
            move || -> bool {
                let Some(window) = web_sys::window() else {
                    return false;
                };
                let bridge = match js_sys::Reflect::get(&window, &name.into()) {
                    Ok(b) if !b.is_undefined() && !b.is_null() => b,
                    _ => return false,
                };
                let params = js_sys::Object::new();
                let (method, function) = match &call {
                    WalletCall::Wechat(p) => {
                        set(&params, "appId", &p.app_id);
                        set(&params, "timeStamp", &p.time_stamp);
                        set(&params, "nonceStr", &p.nonce_str);
                        set(&params, "package", &p.package);
                        set(&params, "signType", &p.sign_type);
                        set(&params, "paySign", &p.pay_sign);
                        ("getBrandWCPayRequest", "invoke")
                    }
                    WalletCall::Alipay { trade_no } => {
                        set(&params, "tradeNO", trade_no);
                        ("tradePay", "call")
                    }
                };
                let Ok(f) = js_sys::Reflect::get(&bridge, &function.into())
                    .and_then(|f| f.dyn_into::<js_sys::Function>())
                else {
                    return false;
                };
                let done = done.clone();
                let callback = Closure::once_into_js(move |res: JsValue| {
                    let wechat = get_str(&res, "err_msg");
                    let alipay = get_str(&res, "resultCode");
                    done(match (wechat.as_str(), alipay.as_str()) {
                        ("get_brand_wcpay_request:ok", _) | (_, "9000" | "8000") => Hint::Ok,
                        ("get_brand_wcpay_request:cancel", _) | (_, "6001") => Hint::Cancelled,
                        _ => Hint::Failed,
                    })
                });
                f.call3(&bridge, &method.into(), &params, &callback).is_ok()
            }
        };
        if run() {
            return;
        }
        let Some(document) = web_sys::window().and_then(|w| w.document()) else {
            done(Hint::NoBridge);
            return;
        };
        let on_ready = Closure::once_into_js(move || {
            run();
        });
        let _ = document.add_event_listener_with_callback(ready, on_ready.unchecked_ref());
        // Outside a wallet nothing ever says "ready".
        done(Hint::NoBridge);
    }
}

#[cfg(not(feature = "hydrate"))]
mod bridge {
    use super::Hint;
    use crate::api::WalletCall;

    /// Bridges exist only in the browser.
    pub fn invoke(_call: WalletCall, _done: impl Fn(Hint) + 'static) {}
}
