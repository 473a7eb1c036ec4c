//! The error view for anything that does not exist. During server rendering it sets the
//! HTTP status to 404, so crawlers, scripts and tests see a real "not found".

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
    view! {
        <NotFoundMessage
            title="Page not found"
            detail="There is nothing at this address. Check the link, or start from the home page."
        />
    }
}

/// A "not found" page with a specific message, for routes whose object does not exist.
#[component]
pub fn NotFoundMessage(title: &'static str, #[prop(into)] detail: String) -> impl IntoView {
    set_not_found_status();
    view! {
        <Title text=title/>
        <section class="card not-found" data-testid="not-found">
            <p class="status-code" aria-hidden="true">"404"</p>
            <h1>{title}</h1>
            <p>{detail}</p>
            <p><a href="/">"Back to ScanPay"</a></p>
        </section>
    }
}
