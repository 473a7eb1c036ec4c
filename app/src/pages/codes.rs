//! The developers page's cards of what customers see: the shop's logo on their pages, and
//! its fixed codes (`/p/<code>`, the 收款码 at the counter) with a printable card each, a
//! form for a new one, and disabling.

use crate::clock::beijing;
use crate::i18n::T;
use crate::merchant::{ChangeSetting, Setting, ShopCodeRow};
use leptos::prelude::*;

#[component]
pub fn ShopCodes<F>(
    codes: Vec<ShopCodeRow>,
    send: F,
    act: ServerAction<ChangeSetting>,
) -> impl IntoView
where
    F: Fn(Setting) + Clone + Send + Sync + 'static,
{
    let name = RwSignal::new(String::new());
    let rows = codes
        .into_iter()
        .map(|c| {
            let send = send.clone();
            let code = c.code.clone();
            let disable = c.active.then(|| {
                view! {
                    <button type="button" data-testid="disable-code" disabled=move || act.pending().get() on:click=move |_| {
                        send(Setting::DisableCode { code: code.clone() });
                    }>
                        <T en="Disable" zh="停用"/>
                    </button>
                }
            });
            view! {
                <tr data-testid="code-row" data-code=c.code.clone() data-active=c.active.to_string() class:revoked=!c.active>
                    <td>{c.name.clone()}</td>
                    <td><a href=c.url.clone() rel="external"><code>{c.url.clone()}</code></a></td>
                    <td>{beijing(c.created_at)}</td>
                    <td>
                        {if c.active {
                            view! { <span class="badge ok"><T en="in use" zh="使用中"/></span> }.into_any()
                        } else {
                            view! { <span class="badge"><T en="disabled" zh="已停用"/></span> }.into_any()
                        }}
                    </td>
                    <td>
                        <a class="button" rel="external" target="_blank" href=format!("/p/{}/card", c.code) data-testid="print-code">
                            <T en="Print" zh="打印"/>
                        </a>
                        " "
                        {disable}
                    </td>
                </tr>
            }
        })
        .collect_view();
    let create = send.clone();
    view! {
        <section class="card" data-testid="shop-codes">
            <h2><T en="Shop codes" zh="收款码"/></h2>
            <p class="muted">
                <T en="A fixed QR code for your counter: any wallet or phone camera scans it, the customer types the amount and pays. It never expires; each payment is an order on your board, marked with the code."
                   zh="放在收银台的固定二维码：任意钱包或手机相机扫码，顾客输入金额后付款。收款码长期有效；每笔付款都是看板上的一笔订单，并标明来自哪个收款码。"/>
            </p>
            <super::CardTable label=("Shop codes", "收款码") heads=CODE_HEADS>{rows}</super::CardTable>
            <form class="inline" on:submit=move |ev| {
                ev.prevent_default();
                create(Setting::CreateCode { name: name.get_untracked() });
                name.set(String::new());
            }>
                <label>
                    <span><T en="Where it hangs" zh="放置位置"/></span>
                    <input required maxlength="40" placeholder="Counter 1" data-testid="code-name-input" bind:value=name/>
                </label>
                <button type="submit" class="primary" data-testid="create-code" disabled=move || act.pending().get()>
                    <T en="New code" zh="新建收款码"/>
                </button>
            </form>
        </section>
    }
}

/// The shop's logo on its customers' pages (checkout, codes, receipt).
#[component]
pub fn ShopLogo<F>(
    logo_url: Option<String>,
    send: F,
    act: ServerAction<ChangeSetting>,
) -> impl IntoView
where
    F: Fn(Setting) + Clone + Send + Sync + 'static,
{
    let url = RwSignal::new(logo_url.clone().unwrap_or_default());
    let preview = logo_url
        .map(|src| view! { <img class="shop-logo" src=src alt="" data-testid="logo-preview"/> });
    view! {
        <section class="card" data-testid="shop-logo">
            <h2><T en="Your customers' pages" zh="顾客页面"/></h2>
            <p class="muted">
                <T en="Your checkout, codes and receipts show your shop's name, and this logo beside it when you give one (an https:// image URL)."
                   zh="收银页、收款码页面和付款凭证会显示您的店名；如填写（https:// 图片地址），店名旁还会显示此标志。"/>
            </p>
            {preview}
            <form class="inline" on:submit=move |ev| {
                ev.prevent_default();
                send(Setting::SetLogo { url: url.get_untracked() });
            }>
                <label>
                    <span><T en="Logo URL" zh="标志图片地址"/></span>
                    <input type="url" maxlength="512" size="48" placeholder="https://shop.example/logo.png" data-testid="logo-url" bind:value=url/>
                </label>
                <button type="submit" class="primary" data-testid="save-logo" disabled=move || act.pending().get()>
                    <T en="Save" zh="保存"/>
                </button>
            </form>
        </section>
    }
}

/// The shop codes' columns.
const CODE_HEADS: &[(&str, &str)] = &[
    ("Name", "名称"),
    ("Link", "链接"),
    ("Created", "创建时间"),
    ("State", "状态"),
    ("", ""),
];
