//! `/board/orders/:order_id`: one order as its merchant sees it: amounts, attempts, refunds,
//! webhooks, the whole timeline, and what can be done (refund, close, redeliver, show the
//! code). Re-read live like the board.

use super::board::{server_message, SignedOut};
use crate::clock;
use crate::i18n::{use_lang, T};
use crate::live::{self, LiveState};
use crate::merchant::{
    load_order, who_am_i, AppError, Change, ChangeOrder, OrderDetail, RefundRow, TimelineEntry,
    WebhookRow,
};
use crate::status::RefundStatus;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

#[component]
pub fn OrderPage() -> impl IntoView {
    let lang = use_lang();
    let params = use_params_map();
    let order_id = Memo::new(move |_| params.read().get("order_id").unwrap_or_default());
    let refresh = RwSignal::new(0u32);
    let live_state = RwSignal::new(LiveState::Connecting);
    let detail = Resource::new(
        move || (order_id.get(), refresh.get()),
        |(id, _)| load_order(id),
    );
    let user = Resource::new(|| (), |_| who_am_i());
    live::watch_board(refresh, live_state);
    // One action for the page, so its answer survives the re-read it causes.
    let act = ServerAction::<ChangeOrder>::new();
    // What the merchant types into the refund form lives here, not in the detail: a live
    // change (any of the merchant's orders) re-reads and redraws the detail, and must never
    // put the full refundable amount back into a field the merchant has typed into.
    let form = RefundForm {
        amount: RwSignal::new(None),
        reason: RwSignal::new(String::new()),
    };
    Effect::new(move |_| {
        if act.version().get() > 0 {
            form.amount.set(None);
            form.reason.set(String::new());
            refresh.update(|n| *n = n.wrapping_add(1));
        }
    });
    let message = move || {
        match act.value().get() {
        Some(Ok(m)) => Some(view! { <p class="notice" role="status" data-testid="action-done">{m}</p> }.into_any()),
        Some(Err(e)) => Some(view! { <p class="error" role="alert" data-testid="action-error">{server_message(&e)}</p> }.into_any()),
        None => None,
    }
    };
    view! {
        <Title text=lang.get_untracked().pick("Order", "订单")/>
        <p><A href="/board"><T en="← Order board" zh="← 订单看板"/></A></p>
        {message}
        <Transition fallback=move || view! { <p class="muted"><T en="Loading…" zh="加载中…"/></p> }>
            {move || Suspend::new(async move {
                let csrf = user.await.ok().flatten().map(|u| u.csrf).unwrap_or_default();
                match detail.await {
                    Ok(Some(d)) => view! { <Detail d csrf act form/> }.into_any(),
                    Ok(None) => view! {
                        <p class="card" data-testid="order-missing"><T en="No such order." zh="没有这个订单。"/></p>
                    }
                    .into_any(),
                    Err(AppError::SignedOut) => view! { <SignedOut/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{server_message(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The refund form's fields; `amount` is `None` until the merchant types (then the form
/// shows what can still be refunded).
#[derive(Clone, Copy)]
struct RefundForm {
    amount: RwSignal<Option<String>>,
    reason: RwSignal<String>,
}

#[component]
fn Detail(
    d: OrderDetail,
    csrf: String,
    act: ServerAction<ChangeOrder>,
    form: RefundForm,
) -> impl IntoView {
    let lang = use_lang();
    let status = d.row.status;
    let channel = d.row.channel;
    let order_id = d.row.id.clone();
    let refund = (d.refundable.fen() > 0).then(|| {
        let all = d.refundable.yuan_string();
        let (shown, initial) = (all.clone(), all.clone());
        let RefundForm { amount, reason } = form;
        let (csrf, order_id) = (csrf.clone(), order_id.clone());
        view! {
            <form class="card refund" data-testid="refund-form" on:submit=move |ev| {
                ev.prevent_default();
                act.dispatch(ChangeOrder {
                    csrf: csrf.clone(),
                    action: Change::Refund {
                        order_id: order_id.clone(),
                        amount: amount.get_untracked().unwrap_or_else(|| all.clone()),
                        reason: reason.get_untracked(),
                    },
                });
            }>
                <h2><T en="Refund" zh="退款"/></h2>
                <p class="muted">
                    <T en="Up to" zh="最多可退"/> " " <strong data-testid="refundable">{d.refundable.to_string()}</strong>
                </p>
                <label>
                    <span><T en="Amount (yuan)" zh="金额（元）"/></span>
                    <input
                        inputmode="decimal"
                        required
                        data-testid="refund-amount"
                        value=initial
                        prop:value=move || amount.get().unwrap_or_else(|| shown.clone())
                        on:input=move |ev| amount.set(Some(event_target_value(&ev)))
                    />
                </label>
                <label>
                    <span><T en="Reason (optional)" zh="原因（可选）"/></span>
                    <input maxlength="80" data-testid="refund-reason" bind:value=reason/>
                </label>
                <button type="submit" class="primary" data-testid="refund-submit" disabled=move || act.pending().get()>
                    <T en="Refund" zh="退款"/>
                </button>
            </form>
        }
    });
    let close = d.closable.then(|| {
        let (csrf, order_id) = (csrf.clone(), order_id.clone());
        view! {
            <button type="button" data-testid="close-order" disabled=move || act.pending().get() on:click=move |_| {
                act.dispatch(ChangeOrder { csrf: csrf.clone(), action: Change::Close { order_id: order_id.clone() } });
            }>
                <T en="Close this order" zh="关闭订单"/>
            </button>
        }
    });
    let link = d
        .aggregate_url
        .clone()
        .unwrap_or_else(|| d.checkout_url.clone());
    let copy_link = link.clone();
    let copied = RwSignal::new(false);
    let qr = d
        .qr_svg
        .clone()
        .map(|svg| view! { <div class="qr" data-testid="order-qr" inner_html=svg></div> });
    let attempts = d
        .attempts
        .iter()
        .map(|a| {
            let c = a.channel;
            // A second payment: one click refunds what is left of it.
            let extra = a.extra_refundable.map(|left| {
                let (csrf, order_id, trade) = (csrf.clone(), d.row.id.clone(), a.out_trade_no.clone());
                view! {
                    <span class="badge warn" data-testid="extra-payment"><T en="second payment" zh="重复支付"/></span>
                    " "
                    {(left.fen() > 0).then(move || view! {
                        <button type="button" data-testid="refund-extra" on:click=move |_| {
                            act.dispatch(ChangeOrder { csrf: csrf.clone(), action: Change::RefundExtraPayment { order_id: order_id.clone(), out_trade_no: trade.clone() } });
                        }>
                            <T en="Refund " zh="退还 "/>{left.to_string()}
                        </button>
                    })}
                }
            });
            view! {
                <tr>
                    <td><code>{a.out_trade_no.clone()}</code></td>
                    <td>{move || lang.get().wallet(c)} " · " <span data-testid="attempt-method">{a.method.as_str()}</span></td>
                    <td>{a.status.as_str()} " " {extra}</td>
                    <td>{clock::beijing(a.created_at)}</td>
                    <td>{a.error.clone().unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    let refunds = d
        .refunds
        .into_iter()
        .map(|r| view! { <Refund r csrf=csrf.clone() act/> })
        .collect_view();
    let webhooks = d
        .webhooks
        .into_iter()
        .map(|w| view! { <Webhook w csrf=csrf.clone() act/> })
        .collect_view();
    let timeline = d
        .timeline
        .into_iter()
        .map(|e| view! { <Line e/> })
        .collect_view();
    view! {
        <article class="order-detail" data-testid="order-detail" data-status=status.as_str()>
            <header class="card">
                <h1><code>{d.row.id.clone()}</code></h1>
                <p class="amount">{d.row.amount.to_string()}</p>
                <p>{d.row.subject.clone()}</p>
                <dl class="facts">
                    <dt><T en="Status" zh="状态"/></dt>
                    <dd data-testid="detail-status">
                        {move || lang.get().status(status)}
                        {d.row.late.then(|| view! { " " <span class="badge warn"><T en="late" zh="逾期"/></span> })}
                        {d.row.risky.then(|| view! { " " <span class="badge bad"><T en="risk" zh="风险"/></span> })}
                    </dd>
                    <dt><T en="Refunded" zh="已退款"/></dt>
                    <dd data-testid="detail-refunded">{d.row.refunded.to_string()}</dd>
                    <dt><T en="Wallet" zh="渠道"/></dt>
                    <dd>{move || channel.map(|c| lang.get().wallet(c)).unwrap_or("—")}</dd>
                    <dt><T en="Created" zh="创建时间"/></dt>
                    <dd>{clock::beijing(d.row.created_at)}</dd>
                    <dt><T en="Pay before" zh="支付截止"/></dt>
                    <dd>{clock::beijing(d.expires_at)}</dd>
                    <dt><T en="Paid" zh="支付时间"/></dt>
                    <dd>{d.paid_at.map(clock::beijing).unwrap_or_else(|| "—".into())}</dd>
                    <dt><T en="Provider trade no." zh="渠道交易号"/></dt>
                    <dd>{d.provider_trade_no.clone().unwrap_or_else(|| "—".into())}</dd>
                    {d.shop_code.clone().map(|(name, code)| view! {
                        <dt><T en="Shop code" zh="收款码"/></dt>
                        <dd data-testid="order-shop-code">{name} " " <code>{code}</code></dd>
                    })}
                </dl>
            </header>
            <section class="card link">
                <h2><T en="Payment link" zh="付款链接"/></h2>
                <p><input readonly value=link data-testid="order-link" size="48" aria-label=move || lang.get().pick("Payment link", "付款链接")/></p>
                <button type="button" data-testid="copy-link" on:click=move |_| {
                    copy(&copy_link);
                    copied.set(true);
                }>
                    {move || if copied.get() { lang.get().pick("Copied", "已复制") } else { lang.get().pick("Copy link", "复制链接") }}
                </button>
                {qr}
                {close}
            </section>
            {refund}
            <section class="card">
                <h2><T en="Refunds" zh="退款记录"/></h2>
                <table class="small"><tbody data-testid="refunds">{refunds}</tbody></table>
            </section>
            <section class="card wide">
                <h2><T en="Payment attempts" zh="支付尝试"/></h2>
                <table class="small"><tbody>{attempts}</tbody></table>
            </section>
            <section class="card">
                <h2><T en="Webhooks" zh="Webhook 通知"/></h2>
                <table class="small"><tbody data-testid="webhooks">{webhooks}</tbody></table>
            </section>
            <section class="card wide">
                <h2><T en="Timeline" zh="时间线"/></h2>
                <ol class="timeline" data-testid="timeline">{timeline}</ol>
            </section>
        </article>
    }
}

#[component]
fn Refund(r: RefundRow, csrf: String, act: ServerAction<ChangeOrder>) -> impl IntoView {
    let lang = use_lang();
    let refund_id = r.id.clone();
    // An abnormal refund (WeChat could not return the money to the buyer's account) says what
    // to do and offers the bank-card refund; a failed one says why.
    let note = match r.status {
        RefundStatus::Abnormal => Some(view! {
            <span data-testid="refund-advice">
                <T en="WeChat could not return the money to the buyer's account (a cancelled or frozen card). Send it to your bank card, or handle it in the WeChat Pay merchant platform." zh="微信无法原路退回买家账户（银行卡注销或冻结）。可退至商户银行卡，或在微信支付商户平台处理。"/>
                " "
                <button type="button" data-testid="refund-to-bank-card" on:click=move |_| {
                    act.dispatch(ChangeOrder { csrf: csrf.clone(), action: Change::RefundToBankCard { refund_id: refund_id.clone() } });
                }>
                    <T en="Refund to bank card" zh="退至银行卡"/>
                </button>
            </span>
        }
        .into_any()),
        RefundStatus::Failed => r.error.clone().map(|e| view! { <span>{e}</span> }.into_any()),
        _ => None,
    };
    let status = r.status;
    view! {
        <tr data-testid="refund-row" data-status=r.status.as_str()>
            <td><code>{r.id.clone()}</code></td>
            <td class="num">{r.amount.to_string()}</td>
            <td>{move || lang.get().refund_status(status)}</td>
            <td>{r.reason.clone().unwrap_or_default()}</td>
            <td>{clock::beijing(r.created_at)}</td>
            <td>{note}</td>
        </tr>
    }
}

#[component]
fn Webhook(w: WebhookRow, csrf: String, act: ServerAction<ChangeOrder>) -> impl IntoView {
    let event_id = w.event_id.clone();
    view! {
        <tr data-testid="webhook-row" data-delivery=w.delivery.as_str()>
            <td>{w.topic.clone()}</td>
            <td>{w.delivery.as_str()}</td>
            <td>{w.attempts}</td>
            <td>{w.last_answer.clone().unwrap_or_default()}</td>
            <td>
                <button type="button" class="link" on:click=move |_| {
                    act.dispatch(ChangeOrder { csrf: csrf.clone(), action: Change::Redeliver { event_id: event_id.clone() } });
                }>
                    <T en="Send again" zh="重新发送"/>
                </button>
            </td>
        </tr>
    }
}

#[component]
fn Line(e: TimelineEntry) -> impl IntoView {
    view! {
        <li class=format!("tone-{}", e.tone) data-source=e.source.as_str()>
            <time>{clock::beijing(e.at)}</time>
            <span class="source">{e.source.as_str()}</span>
            <strong>{e.what.clone()}</strong>
            <span class="detail">{e.detail.clone()}</span>
        </li>
    }
}

/// Puts text on the clipboard (best effort: a browser may refuse outside a secure context).
pub(crate) fn copy(text: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}
