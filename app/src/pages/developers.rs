//! `/board/developers`: how the merchant's shop connects. API keys (create one and copy it
//! this once, revoke one) and the webhook endpoint (set its URL, rotate its signing secret),
//! with a pointer to the API's OpenAPI document. Every change carries the session's CSRF token.

use super::accounts::ProviderAccounts;
use super::board::{server_message, SignedOut};
use super::codes::{ShopCodes, ShopLogo};
use super::order::copy;
use crate::clock::beijing;
use crate::i18n::{use_lang, T};
use crate::merchant::{
    load_developers, who_am_i, AppError, ChangeSetting, DevelopersView, KeyRow, Setting,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn DevelopersPage() -> impl IntoView {
    let lang = use_lang();
    let refresh = RwSignal::new(0u32);
    let data = Resource::new(move || refresh.get(), |_| load_developers());
    let user = Resource::new(|| (), |_| who_am_i());
    // One action for the page, so its answer (and a secret shown once) survives the re-read.
    let act = ServerAction::<ChangeSetting>::new();
    Effect::new(move |_| {
        if act.version().get() > 0 {
            refresh.update(|n| *n = n.wrapping_add(1));
        }
    });
    let answer = move || {
        match act.value().get() {
        Some(Ok(done)) => {
            let secret = done.secret.map(|secret| {
                let copied = RwSignal::new(false);
                let to_copy = secret.clone();
                view! {
                    <p class="secret">
                        <code data-testid="shown-secret">{secret}</code> " "
                        <button type="button" data-testid="copy-secret" on:click=move |_| {
                            copy(&to_copy);
                            copied.set(true);
                        }>
                            {move || if copied.get() { lang.get().pick("Copied", "已复制") } else { lang.get().pick("Copy", "复制") }}
                        </button>
                    </p>
                }
            });
            Some(
                view! {
                    <div class="notice" role="status" data-testid="setting-done">
                        <p>{done.message}</p>
                        {secret}
                    </div>
                }
                .into_any(),
            )
        }
        Some(Err(e)) => Some(
            view! { <p class="error" role="alert" data-testid="setting-error">{server_message(&e)}</p> }
                .into_any(),
        ),
        None => None,
    }
    };
    view! {
        <Title text=lang.get_untracked().pick("Developers", "开发者")/>
        <p><A href="/board"><T en="← Order board" zh="← 订单看板"/></A></p>
        <h1><T en="Developers" zh="开发者"/></h1>
        {answer}
        <Transition fallback=move || view! { <p class="muted"><T en="Loading…" zh="加载中…"/></p> }>
            {move || Suspend::new(async move {
                let csrf = user.await.ok().flatten().map(|u| u.csrf).unwrap_or_default();
                match data.await {
                    Ok(v) => view! { <Settings v csrf act/> }.into_any(),
                    Err(AppError::SignedOut) => view! { <SignedOut/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{server_message(&e)}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Settings(v: DevelopersView, csrf: String, act: ServerAction<ChangeSetting>) -> impl IntoView {
    let send = {
        let csrf = csrf.clone();
        move |change: Setting| {
            act.dispatch(ChangeSetting {
                csrf: csrf.clone(),
                change,
            });
        }
    };
    let rows = v
        .keys
        .into_iter()
        .map(|k| view! { <Key k send=send.clone() act/> })
        .collect_view();
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(v.webhook_url.clone().unwrap_or_default());
    let create = send.clone();
    let save = send.clone();
    let rotate = v.webhook_url.is_some().then(|| {
        let send = send.clone();
        view! {
            <button type="button" data-testid="rotate-secret" disabled=move || act.pending().get() on:click=move |_| {
                send(Setting::RotateSecret);
            }>
                <T en="Rotate signing secret" zh="更换签名密钥"/>
            </button>
        }
    });
    view! {
        <div class="developers">
        <section class="card" data-testid="api-keys">
            <h2><T en="API keys" zh="API 密钥"/></h2>
            <p class="muted">
                <T en="Your shop calls " zh="您的网店以 "/> <code>"Authorization: Bearer sk_…"</code>
                <T en=" on " zh=" 调用 "/> <code>"/api/v1"</code>
                <T en=" (described in " zh="（接口说明见 "/>
                <a href="/docs/api.html" rel="external" data-testid="api-reference-link"><T en="the API reference" zh="API 参考"/></a>
                ", "
                <a href="/api/v1/openapi.json" rel="external">"openapi.json"</a>
                <T en="). A key is shown once, when it is created." zh="）。密钥仅在创建时显示一次。"/>
            </p>
            <super::CardTable label=("API keys", "API 密钥") heads=KEY_HEADS>{rows}</super::CardTable>
            <form class="inline" on:submit=move |ev| {
                ev.prevent_default();
                create(Setting::CreateKey { name: name.get_untracked() });
                name.set(String::new());
            }>
                <label>
                    <span><T en="New key's name" zh="新密钥名称"/></span>
                    <input required maxlength="64" data-testid="key-name" bind:value=name/>
                </label>
                <button type="submit" class="primary" data-testid="create-key" disabled=move || act.pending().get()>
                    <T en="Create key" zh="创建密钥"/>
                </button>
            </form>
        </section>
        <section class="card" data-testid="webhook-settings">
            <h2><T en="Webhook endpoint" zh="Webhook 地址"/></h2>
            <p class="muted">
                <T en="Events (order.paid, order.expired, order.closed, order.extra_payment, refund.succeeded, refund.failed, refund.abnormal) are POSTed here with " zh="事件（order.paid、order.expired、order.closed、order.extra_payment、refund.succeeded、refund.failed、refund.abnormal）以 POST 发送到此地址，并带有 "/>
                <code>"ScanPay-Signature: t=…,v1=…"</code>
                <T en=" (HMAC-SHA256 of \"t.body\" with the signing secret), retried for about a day until a 2xx." zh="（用签名密钥对 \"t.body\" 做 HMAC-SHA256），在收到 2xx 之前重试约一天。"/>
            </p>
            <p data-testid="webhook-current">
                {match v.webhook_url.clone() {
                    Some(u) => view! { <code>{u}</code> }.into_any(),
                    None => view! { <span class="muted"><T en="No endpoint yet: events are not sent." zh="尚未设置：事件不会发送。"/></span> }.into_any(),
                }}
            </p>
            <form class="inline" on:submit=move |ev| {
                ev.prevent_default();
                save(Setting::SetWebhook { url: url.get_untracked() });
            }>
                <label>
                    <span>"URL"</span>
                    <input type="url" required maxlength="512" size="48" placeholder="https://shop.example/scanpay/events" data-testid="webhook-url" bind:value=url/>
                </label>
                <button type="submit" class="primary" data-testid="save-webhook" disabled=move || act.pending().get()>
                    <T en="Save" zh="保存"/>
                </button>
            </form>
            {rotate}
        </section>
        <ProviderAccounts accounts=v.accounts.clone() send=send.clone() act/>
        <ShopLogo logo_url=v.logo_url.clone() send=send.clone() act/>
        <ShopCodes codes=v.codes.clone() send=send.clone() act/>
        </div>
    }
}

#[component]
fn Key<F>(k: KeyRow, send: F, act: ServerAction<ChangeSetting>) -> impl IntoView
where
    F: Fn(Setting) + Clone + Send + Sync + 'static,
{
    let revoke = (!k.revoked).then(|| {
        let key_id = k.id.clone();
        view! {
            <button type="button" data-testid="revoke-key" disabled=move || act.pending().get() on:click=move |_| {
                send(Setting::RevokeKey { key_id: key_id.clone() });
            }>
                <T en="Revoke" zh="吊销"/>
            </button>
        }
    });
    view! {
        <tr data-testid="key-row" data-key=k.id.clone() data-revoked=k.revoked.to_string() class:revoked=k.revoked>
            <td>{k.name.clone()}</td>
            <td><code>{format!("{}…", k.prefix)}</code></td>
            <td>{beijing(k.created_at)}</td>
            <td>
                {if k.revoked {
                    view! { <span class="badge"><T en="revoked" zh="已吊销"/></span> }.into_any()
                } else {
                    view! { <span class="badge ok"><T en="live" zh="有效"/></span> }.into_any()
                }}
            </td>
            <td>{revoke}</td>
        </tr>
    }
}

/// The API keys' columns.
const KEY_HEADS: &[(&str, &str)] = &[
    ("Name", "名称"),
    ("Key", "密钥"),
    ("Created", "创建时间"),
    ("State", "状态"),
    ("", ""),
];
