//! `/`: what ScanPay is, where to go next, and a live check of the server.

use crate::api::{GetServerInfo, ServerInfo};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text=""/>
        <section class="hero">
            <h1>"Take Alipay and WeChat Pay by QR code"</h1>
            <p class="lead">
                "ScanPay is a self-hosted scan-to-pay platform. Your customer opens a checkout \
                 page, scans the code with Alipay or WeChat, and the page turns paid by itself. \
                 You watch orders arrive and turn paid on a live board."
            </p>
            <p class="actions">
                <a class="button primary" href="/board">"Open the order board"</a>
                <a class="button" href="/checkout/demo">"See a checkout page"</a>
            </p>
        </section>
        <ServerStatus/>
    }
}

/// Asks the server for its version and database on a click: a server-function round trip
/// that only works once the page is hydrated.
#[component]
fn ServerStatus() -> impl IntoView {
    let check = ServerAction::<GetServerInfo>::new();
    let result = check.value();
    let pending = check.pending();
    view! {
        <section class="card server-status" aria-labelledby="server-status-title">
            <h2 id="server-status-title">"Server"</h2>
            <p>"Ask the running server which version and database it uses."</p>
            <button
                type="button"
                data-testid="check-server"
                disabled=move || pending.get()
                on:click=move |_| {
                    check.dispatch(GetServerInfo {});
                }
            >
                "Check server"
            </button>
            <output data-testid="server-info" aria-live="polite">
                {move || match result.get() {
                    None => view! { <span class="muted">"Not checked yet."</span> }.into_any(),
                    Some(Ok(info)) => view! { <ServerInfoView info/> }.into_any(),
                    Some(Err(_)) => {
                        view! { <span class="error">"The server could not be reached. Try again."</span> }
                            .into_any()
                    }
                }}
            </output>
        </section>
    }
}

#[component]
fn ServerInfoView(info: ServerInfo) -> impl IntoView {
    let database = if info.database_ok {
        "reachable"
    } else {
        "NOT reachable"
    };
    view! {
        <dl class="facts">
            <dt>"Version"</dt>
            <dd data-testid="server-version">{info.version}</dd>
            <dt>"Database"</dt>
            <dd data-testid="server-database">{info.database_engine} " (" {database} ")"</dd>
        </dl>
    }
}
