//! `/checkout/:order_id`: the customer's payment page.
//!
//! Rendered completely on the server (amount, subject, shop and QR code are in the HTML), then
//! hydrated. `?wallet=alipay|wechat|any` picks the code; without it the page shows the live
//! attempt's wallet, or the aggregate code any wallet can scan. The picker is made of plain
//! links, so it works before (and without) the WASM; once hydrated, the router swaps the code
//! without a reload. The live channel (`crate::live`) re-reads the order on every change.

use super::NotFoundMessage;
use crate::api::{get_checkout, CheckoutView, Choice, CodeProblem, PayCode, RenewOrder};
use crate::channel::Channel;
use crate::clock;
use crate::i18n::{use_lang, Lang, T};
use crate::live::{self, LiveState};
use crate::status::OrderStatus;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn CheckoutPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let order_id = Memo::new(move |_| params.read().get("order_id").unwrap_or_default());
    let wallet = Memo::new(move |_| query.read().get("wallet"));
    let refresh = RwSignal::new(0u32);
    let live_state = RwSignal::new(LiveState::Connecting);
    let checkout = Resource::new(
        move || (order_id.get(), wallet.get(), refresh.get()),
        |(id, wallet, _)| get_checkout(id, wallet),
    );
    live::watch(order_id, refresh, live_state);
    let lang = use_lang();
    // Paid, expired or cancelled while the page is open is announced through a live region
    // that exists from the start (outside the part that is redrawn), so screen readers say it.
    let announced = RwSignal::new(String::new());
    let last = StoredValue::new(None::<OrderStatus>);
    Effect::new(move |_| {
        if let Some(Ok(Some(v))) = checkout.get() {
            let before = last.get_value();
            last.set_value(Some(v.status));
            if before.is_some_and(|b| b != v.status) {
                let l = lang.get_untracked();
                let text = match v.status {
                    OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
                        l.pick("Paid. Thank you.", "支付成功，谢谢。")
                    }
                    OrderStatus::Expired => l.pick("This payment has expired.", "此付款已过期。"),
                    OrderStatus::Closed => l.pick(
                        "This payment was cancelled by the shop.",
                        "此付款已被商户取消。",
                    ),
                    OrderStatus::Created | OrderStatus::Pending => "",
                };
                announced.set(text.to_string());
            }
        }
    });
    view! {
        <p class="visually-hidden" role="status" aria-live="polite" data-testid="announcer">
            {move || announced.get()}
        </p>
        <Transition fallback=move || view! { <p class="card muted"><T en="Loading…" zh="加载中…"/></p> }>
            {move || Suspend::new(async move {
                match checkout.await {
                    Ok(Some(view)) => view! { <Checkout view live_state refresh/> }.into_any(),
                    Ok(None) => {
                        let reference = order_id.get_untracked();
                        let detail = match lang.get_untracked() {
                            Lang::En => format!(
                                "We could not find a payment with the reference \u{201c}{reference}\u{201d}. \
                                 Ask the shop for a new payment link."
                            ),
                            Lang::Zh => format!("找不到编号为“{reference}”的付款，请向商户索取新的付款链接。"),
                        };
                        view! {
                            <NotFoundMessage
                                title=lang.get_untracked().pick("Payment not found", "未找到该付款")
                                detail
                            />
                        }
                            .into_any()
                    }
                    Err(_) => view! { <LoadFailed refresh/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LoadFailed(refresh: RwSignal<u32>) -> impl IntoView {
    view! {
        <section class="card checkout" role="alert" data-testid="checkout-error">
            <p><T en="We could not load this payment." zh="无法加载此付款。"/></p>
            <button type="button" on:click=move |_| refresh.update(|n| *n += 1)>
                <T en="Try again" zh="重试"/>
            </button>
        </section>
    }
}

#[component]
fn Checkout(
    view: CheckoutView,
    live_state: RwSignal<LiveState>,
    refresh: RwSignal<u32>,
) -> impl IntoView {
    let lang = use_lang();
    let amount = view.amount.to_string();
    let merchant = view.merchant_name.clone();
    // A plain string, not a closure: leptos_meta reads the title after rendering, outside the
    // reactive owner, where reading a signal panics under concurrent requests.
    let title = format!("{} · {merchant}", lang.get_untracked().pick("Pay", "付款"));
    let body = match view.status {
        OrderStatus::Created | OrderStatus::Pending => view! { <Payable view=view.clone() live_state refresh/> }.into_any(),
        OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
            view! { <PaidState view=view.clone()/> }.into_any()
        }
        OrderStatus::Expired => view! { <ExpiredState order_id=view.order_id.clone()/> }.into_any(),
        OrderStatus::Closed => view! {
            <section class="state closed" role="status">
                <h2><T en="This payment was cancelled by the shop" zh="此付款已被商户取消"/></h2>
                <p><T en="Nothing was charged. Ask the shop if you still want to pay." zh="未发生扣款。如仍需付款，请联系商户。"/></p>
            </section>
        }
        .into_any(),
    };
    view! {
        <Title text=title/>
        <article class="card checkout" data-testid="checkout" data-status=view.status.as_str()>
            <OrderHead logo_url=view.logo_url.clone() merchant amount subject=view.subject.clone() order_id=view.order_id.clone()/>
            {body}
        </article>
    }
}

/// The head of a customer's payment page: the shop (its logo when it gave one), the amount,
/// what it is for and the order's reference.
#[component]
pub(super) fn OrderHead(
    logo_url: Option<String>,
    merchant: String,
    amount: String,
    subject: String,
    order_id: String,
) -> impl IntoView {
    view! {
        <header class="checkout-head">
            {logo_url.map(|src| view! { <img class="shop-logo" src=src alt="" data-testid="shop-logo-img"/> })}
            <p class="merchant" data-testid="merchant">{merchant}</p>
            <p class="amount" data-testid="amount">{amount}</p>
            <p class="subject" data-testid="subject">{subject}</p>
            <p class="order-ref muted">
                <T en="Order" zh="订单号"/> " " <code>{order_id}</code>
            </p>
        </header>
    }
}

/// The order can be paid: wallet picker, code (or the problem), countdown, live indicator.
#[component]
fn Payable(
    view: CheckoutView,
    live_state: RwSignal<LiveState>,
    refresh: RwSignal<u32>,
) -> impl IntoView {
    let lang = use_lang();
    let shown = view.code.as_ref().map(|c| c.choice);
    let mut choices = vec![Choice::Any];
    choices.extend(view.channels.iter().copied().map(Choice::Wallet));
    let picker = choices
        .into_iter()
        .map(|choice| {
            let current = shown == Some(choice);
            view! {
                <a
                    class="choice"
                    class:current=current
                    href=format!("?wallet={}", choice.as_str())
                    aria-current=current.then_some("true")
                    data-testid=format!("choose-{}", choice.as_str())
                >
                    {move || choice_name(lang.get(), choice)}
                </a>
            }
        })
        .collect_view();
    let alt_amount = view.amount.to_string();
    let merchant = view.merchant_name.clone();
    let renew_at = view.code.as_ref().and_then(|c| c.renew_at);
    let code = match (view.code.clone(), view.problem) {
        (Some(code), _) => view! { <QrCode code alt_amount merchant/> }.into_any(),
        (None, Some(problem)) => view! { <Problem problem refresh/> }.into_any(),
        (None, None) => view! {
            <p class="muted" role="status"><T en="This payment is closing…" zh="付款即将关闭…"/></p>
        }
        .into_any(),
    };
    view! {
        <nav class="wallets" aria-label=move || lang.get().pick("Pay with", "支付方式")>{picker}</nav>
        {code}
        <RenewCode renew_at server_now=view.server_now refresh/>
        <Countdown expires_at=view.expires_at server_now=view.server_now/>
        <p class="live" data-testid="live" data-live=move || live_state.get().as_str() aria-live="polite">
            {move || match live_state.get() {
                LiveState::Connecting | LiveState::Live => {
                    lang.get().pick("This page updates by itself once you have paid.", "付款后本页会自动更新。")
                }
                LiveState::Reconnecting => lang.get().pick("Reconnecting…", "正在重新连接…"),
            }}
        </p>
    }
}

fn choice_name(lang: Lang, choice: Choice) -> &'static str {
    match choice {
        Choice::Any => lang.pick("Any app", "任意应用"),
        Choice::Wallet(c) => lang.wallet(c),
    }
}

#[component]
fn QrCode(code: PayCode, alt_amount: String, merchant: String) -> impl IntoView {
    let lang = use_lang();
    let choice = code.choice;
    let alt = move || match lang.get() {
        Lang::En => format!("QR code to pay {alt_amount} to {merchant}"),
        Lang::Zh => format!("向{merchant}支付 {alt_amount} 的二维码"),
    };
    let instruction = move || match choice {
        Choice::Any => lang
            .get()
            .pick("Scan with Alipay or WeChat", "请使用支付宝或微信扫码"),
        Choice::Wallet(Channel::Alipay) => {
            lang.get().pick("Scan with Alipay", "请使用支付宝扫一扫")
        }
        Choice::Wallet(Channel::Wechat) => lang.get().pick("Scan with WeChat", "请使用微信扫一扫"),
    };
    let url = code.url.clone();
    let open_in_app = match choice {
        Choice::Wallet(c) => Some(view! {
            <a class="button primary open-app" href=code.url.clone() data-testid="open-in-app">
                {move || format!("{} {}", lang.get().pick("Open in", "打开"), lang.get().wallet(c))}
            </a>
        }),
        Choice::Any => None,
    };
    view! {
        <figure class="qr-block" data-testid="qr" data-choice=choice.as_str() data-code-url=code.url.clone()>
            <div class="qr" role="img" aria-label=alt inner_html=code.svg></div>
            <figcaption>{instruction}</figcaption>
        </figure>
        <div class="phone-actions">
            {open_in_app}
            <CopyLink url/>
        </div>
    }
}

/// The code's link as text, with a copy button (once the page is interactive).
#[component]
fn CopyLink(url: String) -> impl IntoView {
    let lang = use_lang();
    let copied = RwSignal::new(false);
    let to_copy = url.clone();
    view! {
        <label class="copy-link">
            <span class="visually-hidden"><T en="Payment link" zh="付款链接"/></span>
            <input type="text" readonly value=url data-testid="code-link"/>
        </label>
        <button
            type="button"
            on:click=move |_| {
                copy_text(&to_copy);
                copied.set(true);
            }
        >
            {move || if copied.get() { lang.get().pick("Copied", "已复制") } else { lang.get().pick("Copy link", "复制链接") }}
        </button>
    }
}

fn copy_text(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        // navigator.clipboard is not in web-sys's stable API: call it by name.
        use wasm_bindgen::JsCast;
        let navigator = window().navigator();
        if let Ok(clipboard) = js_sys::Reflect::get(&navigator, &"clipboard".into()) {
            if let Ok(write) = js_sys::Reflect::get(&clipboard, &"writeText".into()) {
                if let Some(write) = write.dyn_ref::<js_sys::Function>() {
                    let _ = write.call1(&clipboard, &text.into());
                }
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

#[component]
fn Problem(problem: CodeProblem, refresh: RwSignal<u32>) -> impl IntoView {
    let lang = use_lang();
    let message = move || {
        let l = lang.get();
        match problem {
            CodeProblem::Unavailable(c) => match l {
                Lang::En => format!(
                    "{} is not answering right now. Try again, or choose another app.",
                    l.wallet(c)
                ),
                Lang::Zh => format!("{}暂时无法响应，请重试或选择其他支付方式。", l.wallet(c)),
            },
            CodeProblem::Disabled(c) => match l {
                Lang::En => format!(
                    "This shop does not take {}. Choose another app.",
                    l.wallet(c)
                ),
                Lang::Zh => format!("该商户不支持{}，请选择其他支付方式。", l.wallet(c)),
            },
            CodeProblem::Busy => l
                .pick(
                    "Your code is still being prepared. Try again in a moment.",
                    "付款码正在生成，请稍后重试。",
                )
                .to_string(),
        }
    };
    view! {
        <section class="problem" role="alert" data-testid="problem">
            <p>{message}</p>
            <button type="button" data-testid="retry" on:click=move |_| refresh.update(|n| *n += 1)>
                <T en="Try again" zh="重试"/>
            </button>
        </section>
    }
}

/// Time left to pay, ticking in the browser against the server's clock.
/// Fetches a fresh code when the shown one is about to die at the provider (two hours),
/// while the order lives on; the countdown keeps showing the order's time.
#[component]
fn RenewCode(renew_at: Option<i64>, server_now: i64, refresh: RwSignal<u32>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    if let Some(at) = renew_at {
        let wait = std::time::Duration::from_millis(at.saturating_sub(server_now).max(0) as u64);
        if let Ok(handle) = set_timeout_with_handle(move || refresh.update(|n| *n += 1), wait) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (renew_at, server_now, refresh);
    view! { <span hidden data-testid="code-renew-at" data-renew-at=renew_at.map(|t| t.to_string())></span> }
}

#[component]
fn Countdown(expires_at: i64, server_now: i64) -> impl IntoView {
    let now = RwSignal::new(server_now);
    #[cfg(feature = "hydrate")]
    {
        let skew = server_now - js_sys::Date::now() as i64;
        let tick = move || now.set(js_sys::Date::now() as i64 + skew);
        tick();
        if let Ok(handle) = set_interval_with_handle(tick, std::time::Duration::from_millis(250)) {
            on_cleanup(move || handle.clear());
        }
    }
    view! {
        <p class="countdown" data-testid="countdown">
            <T en="Expires in" zh="剩余时间"/> " "
            <time>{move || clock::remaining(now.get(), expires_at)}</time>
        </p>
    }
}

#[component]
pub(super) fn PaidState(view: CheckoutView) -> impl IntoView {
    let lang = use_lang();
    let paid_at = view.paid_at.map(clock::beijing).unwrap_or_default();
    let wallet = view.paid_channel;
    let back = view.return_url.clone().map(|url| {
        view! {
            <a class="button primary" href=url data-testid="return-link" rel="external">
                <T en="Back to the shop" zh="返回商户"/>
            </a>
        }
    });
    let refunded = matches!(
        view.status,
        OrderStatus::PartiallyRefunded | OrderStatus::Refunded
    );
    view! {
        <section class="state paid" role="status" data-testid="paid">
            <p class="state-mark" aria-hidden="true">"✓"</p>
            <h2><T en="Paid" zh="支付成功"/></h2>
            <p data-testid="paid-at">
                <T en="Paid at" zh="付款时间"/> " " <time>{paid_at.clone()}</time>
                <T en=" (Beijing time)" zh="（北京时间）"/>
                {move || wallet.map(|c| format!(" · {}", lang.get().wallet(c)))}
            </p>
            {refunded.then(|| view! { <p class="muted"><T en="This payment has been refunded in full or in part." zh="此付款已全部或部分退款。"/></p> })}
            {back}
        </section>
    }
}

#[component]
fn ExpiredState(order_id: String) -> impl IntoView {
    let renew = ServerAction::<RenewOrder>::new();
    let failed = move || matches!(renew.value().get(), Some(Err(_)));
    view! {
        <section class="state expired" role="status" data-testid="expired">
            <h2><T en="This code has expired" zh="付款码已过期"/></h2>
            <p><T en="Nothing was charged. Get a new code to pay." zh="未发生扣款。请获取新的付款码后付款。"/></p>
            <ActionForm action=renew>
                <input type="hidden" name="order_id" value=order_id/>
                <button type="submit" class="primary" data-testid="renew" disabled=move || renew.pending().get()>
                    <T en="Get a new code" zh="获取新的付款码"/>
                </button>
            </ActionForm>
            <Show when=failed>
                <p class="error" role="alert"><T en="Could not create a new code. Try again." zh="无法生成新的付款码，请重试。"/></p>
            </Show>
        </section>
    }
}
