//! The frame shared by every page: brand, navigation and footer.

use crate::i18n::{switch_to, use_lang, T};
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let lang = use_lang();
    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"▣"</span>
                " ScanPay"
            </A>
            <nav aria-label="Main">
                <A href="/"><T en="Home" zh="首页"/></A>
                <A href="/board"><T en="Order board" zh="订单看板"/></A>
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
            <p><T en="ScanPay · self-hosted scan-to-pay for Alipay and WeChat Pay" zh="ScanPay · 自托管的支付宝和微信扫码支付"/></p>
        </footer>
    }
}
