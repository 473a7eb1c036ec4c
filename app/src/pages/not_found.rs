//! The error view for anything that does not exist. During server rendering it sets the
//! HTTP status to 404, so crawlers, scripts and tests see a real "not found".

use crate::i18n::{use_lang, T};
use leptos::prelude::*;
use leptos_meta::Title;

/// Marks the current server response as 404. A no-op in the browser.
pub fn set_not_found_status() {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
}

/// The page for an unknown route.
#[component]
pub fn NotFound() -> impl IntoView {
    let lang = use_lang().get_untracked();
    view! {
        <NotFoundMessage
            title=lang.pick("Page not found", "页面不存在")
            detail=lang.pick(
                "There is nothing at this address. Check the link, or start from the home page.",
                "此地址没有内容。请检查链接，或从首页开始。",
            )
        />
    }
}

/// A "not found" page with a specific message, for routes whose object does not exist.
#[component]
pub fn NotFoundMessage(title: &'static str, #[prop(into)] detail: String) -> impl IntoView {
    set_not_found_status();
    let path = leptos_router::hooks::use_location()
        .pathname
        .get_untracked();
    let customer = crate::layout::is_customer_page(&path);
    view! {
        <Title text=title/>
        <section class="card not-found" data-testid="not-found">
            <p class="status-code" aria-hidden="true">"404"</p>
            <h1>{title}</h1>
            <p>{detail}</p>
            // A customer's page belongs to the shop: no way into ScanPay from there.
            {(!customer).then(|| view! { <p><a href="/"><T en="Back to ScanPay" zh="返回 ScanPay"/></a></p> })}
        </section>
    }
}
