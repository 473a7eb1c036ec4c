//! The frame shared by every page: brand, navigation and footer.

use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"▣"</span>
                " ScanPay"
            </A>
            <nav aria-label="Main">
                <A href="/">"Home"</A>
                <A href="/board">"Order board"</A>
            </nav>
        </header>
        <main class="site-main">{children()}</main>
        <footer class="site-footer">
            <p>"ScanPay · self-hosted scan-to-pay for Alipay and WeChat Pay"</p>
        </footer>
    }
}
