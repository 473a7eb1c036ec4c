//! ScanPay's user interface: the Leptos app that the server renders and the browser hydrates.
//!
//! This crate is compiled twice: natively with `ssr` (linked into the `scanpay` server) and
//! to WASM with `hydrate` (the bundle the browser loads). It never links database, crypto or
//! HTTP-client code: server functions reach the server's services through the
//! [`services::AppServices`] trait object that the server puts into the Leptos context.
//! See `docs/architecture.md` for the whole map.

pub mod api;
pub mod channel;
pub mod clock;
pub mod i18n;
mod layout;
pub mod live;
pub mod merchant;
pub mod model;
pub mod money;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod services;
pub mod status;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = i18n::initial();
    // The demo posture says so on every page, outside the hydrated app (after it, so
    // hydration never meets it).
    #[cfg(feature = "ssr")]
    let no_real_money = use_context::<std::sync::Arc<dyn services::AppServices>>()
        .is_some_and(|s| s.no_real_money());
    #[cfg(not(feature = "ssr"))]
    let no_real_money = false;
    let banner = no_real_money.then(|| {
        view! {
            <div class="sandbox-banner" role="note" data-testid="sandbox-banner">
                {lang.pick(
                    "Sandbox: no real money. Payments here are simulated.",
                    "沙箱环境：不涉及真实资金，此处的支付均为模拟。",
                )}
            </div>
        }
    });
    view! {
        <!DOCTYPE html>
        <html lang=lang.tag()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
                {banner}
            </body>
        </html>
    }
}

/// The routed application: the same tree on the server and in the browser.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let lang = i18n::initial();
    provide_context(RwSignal::new(lang));
    remember_requested_language(lang);
    view! {
        <Stylesheet id="scanpay-css" href="/pkg/scanpay.css"/>
        <Title formatter=|page: String| if page.is_empty() { "ScanPay".to_string() } else { format!("{page} · ScanPay") }/>
        <Router>
            <layout::Layout>
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/") view=pages::HomePage/>
                    <Route path=path!("/checkout/:order_id") view=pages::CheckoutPage ssr=SsrMode::Async/>
                    <Route path=path!("/q/:token") view=pages::AggregatePage ssr=SsrMode::Async/>
                    <Route path=path!("/p/:code") view=pages::ShopCodePage ssr=SsrMode::Async/>
                    <Route path=path!("/board") view=pages::BoardPage/>
                    <Route path=path!("/board/orders/:order_id") view=pages::OrderPage/>
                    <Route path=path!("/board/cluster") view=pages::ClusterPage/>
                    <Route path=path!("/board/developers") view=pages::DevelopersPage/>
                    <Route path=path!("/login") view=pages::LoginPage/>
                </Routes>
            </layout::Layout>
        </Router>
    }
}

/// When the page was asked for with `?lang=`, the server keeps that choice in a cookie.
fn remember_requested_language(lang: i18n::Lang) {
    #[cfg(feature = "ssr")]
    {
        let asked = use_context::<http::request::Parts>()
            .and_then(|p| i18n::requested(&p))
            .is_some();
        if let (true, Some(response)) = (asked, use_context::<leptos_axum::ResponseOptions>()) {
            if let Ok(cookie) = http::HeaderValue::from_str(&format!(
                "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                i18n::COOKIE,
                lang.tag()
            )) {
                response.append_header(http::header::SET_COOKIE, cookie);
            }
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = lang;
}

/// The WASM entry point: hydrates the server-rendered page, then marks the document so
/// tests (and scripts) know the page is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        // Best effort: a failure here only affects test synchronisation, never the page.
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
