//! The frame shared by every page: brand, navigation and footer. A customer's pages (the
//! checkout, the aggregate code and what follows it) belong to the shop: they carry no
//! ScanPay navigation, only the language switch.

use crate::i18n::{switch_to, use_lang, T};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

/// Whether `path` is one of a customer's pages.
pub fn is_customer_page(path: &str) -> bool {
    ["/checkout/", "/q/", "/p/"]
        .iter()
        .any(|p| path.starts_with(p))
}

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let lang = use_lang();
    let location = use_location();
    let customer = Memo::new(move |_| is_customer_page(&location.pathname.get()));
    view! {
        <header class="site-header" class:customer=move || customer.get()>
            <Show when=move || !customer.get()>
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"▣"</span>
                    " ScanPay"
                </A>
            </Show>
            <nav aria-label="Main">
                <Show when=move || !customer.get()>
                    <A href="/"><T en="Home" zh="首页"/></A>
                    <A href="/board"><T en="Order board" zh="订单看板"/></A>
                </Show>
                <a
                    href=move || format!("?lang={}", lang.get().other().tag())
                    hreflang=move || lang.get().other().tag()
                    data-testid="switch-lang"
                    on:click=move |ev| {
                        ev.prevent_default();
                        switch_to(lang, lang.get_untracked().other());
                    }
                >
                    {move || lang.get().other().own_name()}
                </a>
            </nav>
        </header>
        <main class="site-main">{children()}</main>
        <footer class="site-footer">
            <Show
                when=move || !customer.get()
                fallback=|| view! { <p><T en="Secure payment by Alipay and WeChat Pay" zh="由支付宝和微信支付提供安全支付"/></p> }
            >
                <p><T en="ScanPay · self-hosted scan-to-pay for Alipay and WeChat Pay" zh="ScanPay · 自托管的支付宝和微信扫码支付"/></p>
            </Show>
        </footer>
    }
}
