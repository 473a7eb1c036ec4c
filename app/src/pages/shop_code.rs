//! `/p/:code`: a shop's fixed code, the 收款码 at the counter. The phone that scanned it
//! shows the shop and asks for the amount (and an optional note); "Pay" makes the order and
//! goes on to its wallet's payment like the aggregate code. A plain form: it works before
//! (and without) the WASM, and in any wallet's browser.

use super::NotFoundMessage;
use crate::api::{open_shop_code, ShopCodeView};
use crate::i18n::{use_lang, T};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ShopCodePage() -> impl IntoView {
    let params = use_params_map();
    let lang = use_lang();
    let shop = Resource::new(
        move || params.read().get("code").unwrap_or_default(),
        open_shop_code,
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match shop.await {
                    Ok(Some(view)) => view! { <AmountForm view/> }.into_any(),
                    Ok(None) => view! {
                        <NotFoundMessage
                            title=lang.get_untracked().pick("Code not found", "未找到该收款码")
                            detail=lang.get_untracked().pick(
                                "This code does not belong to any shop. Ask the shop how to pay.",
                                "此二维码不属于任何商户，请向商户询问付款方式。",
                            )
                        />
                    }
                    .into_any(),
                    Err(_) => view! {
                        <p class="card error" role="alert">
                            <T en="We could not load this code. Reload the page to try again." zh="无法加载此收款码，请刷新页面重试。"/>
                        </p>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AmountForm(view: ShopCodeView) -> impl IntoView {
    let lang = use_lang();
    let query = use_query_map();
    // The server names what to correct; the page says it in the customer's language.
    let error = move || {
        let l = lang.get();
        query.read().get("error").map(|kind| match kind.as_str() {
            "amount" => l.pick(
                "Enter an amount from 0.01 to 100000 yuan, e.g. 12.50.",
                "请输入 0.01 至 100000 元之间的金额，例如 12.50。",
            ),
            "note" => l.pick("The note is at most 60 characters.", "备注最多 60 个字。"),
            "disabled" => l.pick(
                "This code is no longer in use. Ask the shop how to pay.",
                "此收款码已停用，请向商户询问付款方式。",
            ),
            _ => l.pick(
                "This code does not belong to any shop.",
                "此二维码不属于任何商户。",
            ),
        })
    };
    let typed = query.read_untracked().get("amount").unwrap_or_default();
    let title = format!(
        "{} · {}",
        lang.get_untracked().pick("Pay", "付款"),
        view.shop_name
    );
    let wallets = {
        let channels = view.channels.clone();
        move || {
            channels
                .iter()
                .map(|c| lang.get().wallet(*c))
                .collect::<Vec<_>>()
                .join(" · ")
        }
    };
    let body = if view.active {
        view! {
            <form method="post" action="/api/shop_pay" class="form" data-testid="shop-form">
                <input type="hidden" name="code" value=view.code.clone()/>
                <label>
                    <span><T en="Amount (yuan)" zh="金额（元）"/></span>
                    <input name="amount" inputmode="decimal" required placeholder="0.00" autocomplete="off" value=typed data-testid="shop-amount"/>
                </label>
                <label>
                    <span><T en="Note (optional)" zh="备注（选填）"/></span>
                    <input name="note" maxlength="60" autocomplete="off" data-testid="shop-note"/>
                </label>
                <p class="error" role="alert" data-testid="shop-error">{error}</p>
                <button type="submit" class="primary" data-testid="shop-pay"><T en="Pay" zh="付款"/></button>
            </form>
            <p class="muted" data-testid="shop-wallets">{wallets}</p>
        }
        .into_any()
    } else {
        view! {
            <p class="state" data-testid="shop-disabled">
                <T en="This code is no longer in use. Ask the shop how to pay." zh="此收款码已停用，请向商户询问付款方式。"/>
            </p>
        }
        .into_any()
    };
    view! {
        <Title text=title/>
        <article class="card checkout shop-code" data-testid="shop-code">
            <header class="checkout-head">
                {view.logo_url.clone().map(|src| view! { <img class="shop-logo" src=src alt="" data-testid="shop-logo-img"/> })}
                <p class="merchant amount-title" data-testid="merchant">{view.shop_name.clone()}</p>
                <p class="subject muted" data-testid="code-name">{view.name.clone()}</p>
            </header>
            {body}
        </article>
    }
}
