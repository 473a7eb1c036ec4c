//! `/login`: signing in to the order board. A plain HTML form that posts to `/auth/login`
//! (it works before the WASM loads, and the password never passes through the app's state).
//! `?error=` says why the last attempt failed; `?next=` is where to go afterwards (a board
//! path only). With the demo on, one button opens the demo shop's board.

use crate::api::demo_enabled;
use crate::i18n::{use_lang, T};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let lang = use_lang();
    let query = use_query_map();
    let next = query
        .read_untracked()
        .get("next")
        .filter(|n| n.starts_with("/board"))
        .unwrap_or_else(|| "/board".into());
    let error = query.read_untracked().get("error");
    let demo = Resource::new(|| (), |_| demo_enabled());
    let message = error.map(|e| {
        let (en, zh) = match e.as_str() {
            "link" => (
                "That sign-in link is unknown, used or expired. Ask for a new one.",
                "该登录链接无效、已使用或已过期，请重新获取。",
            ),
            "password" => (
                "Choose a password of 10 to 256 characters.",
                "请设置 10 到 256 个字符的密码。",
            ),
            "demo" => (
                "The demo is switched off on this server.",
                "本服务器未开启演示。",
            ),
            _ => ("Wrong email or password.", "邮箱或密码错误。"),
        };
        view! { <p class="error" role="alert" data-testid="login-error"><T en zh/></p> }
    });
    let demo_next = next.clone();
    view! {
        <Title text=lang.get_untracked().pick("Sign in", "登录")/>
        <section class="card login">
            <h1><T en="Sign in to the order board" zh="登录订单看板"/></h1>
            {message}
            <form method="post" action="/auth/login" class="form" data-testid="login-form">
                <input type="hidden" name="next" value=next/>
                <label>
                    <span><T en="Email" zh="邮箱"/></span>
                    <input type="email" name="email" autocomplete="username" required data-testid="login-email"/>
                </label>
                <label>
                    <span><T en="Password" zh="密码"/></span>
                    <input type="password" name="password" autocomplete="current-password" required data-testid="login-password"/>
                </label>
                <button type="submit" class="primary" data-testid="login-submit"><T en="Sign in" zh="登录"/></button>
            </form>
            <Suspense fallback=|| ()>
                {move || {
                    let next = demo_next.clone();
                    Suspend::new(async move {
                        (demo.await == Ok(true)).then(|| view! {
                            <form method="post" action="/auth/demo" class="demo-login">
                                <input type="hidden" name="next" value=next/>
                                <p class="muted"><T en="Just looking? The demo shop needs no password." zh="只是看看？演示商户无需密码。"/></p>
                                <button type="submit" data-testid="login-demo"><T en="Open the demo shop's board" zh="打开演示商户的看板"/></button>
                            </form>
                        })
                    })
                }}
            </Suspense>
        </section>
    }
}
