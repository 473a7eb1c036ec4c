//! `/`: what ScanPay is, where to go next, and a live check of the server.

use crate::api::{demo_enabled, CreateDemoOrder, GetServerInfo, ServerInfo};
use crate::i18n::T;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text=""/>
        <section class="hero">
            <h1><T en="Take Alipay and WeChat Pay by QR code" zh="用二维码收取支付宝和微信支付"/></h1>
            <p class="lead">
                <T
                    en="ScanPay is a self-hosted scan-to-pay platform. Your customer opens a checkout page, scans the code with Alipay or WeChat, and the page turns paid by itself. You watch orders arrive and turn paid on a live board."
                    zh="ScanPay 是可自行部署的扫码支付平台。顾客打开收银页，用支付宝或微信扫码，页面会自动显示支付成功；您在实时看板上看到订单到来并变为已支付。"
                />
            </p>
            <p class="actions">
                <a class="button" href="/board"><T en="Open the order board" zh="打开订单看板"/></a>
            </p>
        </section>
        <NewPayment/>
        <ServerStatus/>
    }
}

/// The demo shop's "new payment" form: amount and subject, then straight to the checkout.
/// A plain form post without the WASM; an action with a client-side redirect once hydrated.
#[component]
fn NewPayment() -> impl IntoView {
    let enabled = Resource::new(|| (), |_| demo_enabled());
    let create = ServerAction::<CreateDemoOrder>::new();
    let error = move || match create.value().get() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                (enabled.await == Ok(true)).then(|| view! {
                    <section class="card new-payment" aria-labelledby="new-payment-title">
                        <h2 id="new-payment-title"><T en="New payment (demo shop)" zh="新建付款（演示商户）"/></h2>
                        <p class="muted"><T en="Create a test order and pay it with the sandbox wallet: no real money moves." zh="创建一笔测试订单，并用沙箱钱包付款：不涉及真实资金。"/></p>
                        <ActionForm action=create attr:class="form">
                            <label>
                                <span><T en="Amount (yuan)" zh="金额（元）"/></span>
                                <input name="amount" inputmode="decimal" required placeholder="12.34" data-testid="amount-input"/>
                            </label>
                            <label>
                                <span><T en="What is it for?" zh="商品说明"/></span>
                                <input name="subject" required maxlength="127" placeholder="Coffee" data-testid="subject-input"/>
                            </label>
                            <label>
                                <span><T en="Valid for" zh="有效期"/></span>
                                <select name="expires_in" data-testid="expires-input">
                                    <option value="900" selected><T en="15 minutes" zh="15 分钟"/></option>
                                    <option value="60"><T en="1 minute" zh="1 分钟"/></option>
                                    <option value="3600"><T en="1 hour" zh="1 小时"/></option>
                                    <option value="5"><T en="5 seconds (to try expiry)" zh="5 秒（体验过期）"/></option>
                                </select>
                            </label>
                            <button type="submit" class="primary" data-testid="create-payment" disabled=move || create.pending().get()>
                                <T en="Create and open the checkout" zh="创建并打开收银台"/>
                            </button>
                            <p class="error" role="alert" data-testid="create-error">{error}</p>
                        </ActionForm>
                    </section>
                })
            })}
        </Suspense>
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
            <h2 id="server-status-title"><T en="Server" zh="服务器"/></h2>
            <p><T en="Ask the running server which version and database it uses." zh="查询正在运行的服务器的版本和所用数据库。"/></p>
            <button
                type="button"
                data-testid="check-server"
                disabled=move || pending.get()
                on:click=move |_| {
                    check.dispatch(GetServerInfo {});
                }
            >
                <T en="Check server" zh="检查服务器"/>
            </button>
            <output data-testid="server-info" aria-live="polite">
                {move || match result.get() {
                    None => view! { <span class="muted"><T en="Not checked yet." zh="尚未检查。"/></span> }.into_any(),
                    Some(Ok(info)) => view! { <ServerInfoView info/> }.into_any(),
                    Some(Err(_)) => {
                        view! { <span class="error"><T en="The server could not be reached. Try again." zh="无法连接服务器，请重试。"/></span> }
                            .into_any()
                    }
                }}
            </output>
        </section>
    }
}

#[component]
fn ServerInfoView(info: ServerInfo) -> impl IntoView {
    let lang = crate::i18n::use_lang();
    let ok = info.database_ok;
    let database = move || match ok {
        true => lang.get().pick("reachable", "可连接"),
        false => lang.get().pick("NOT reachable", "无法连接"),
    };
    view! {
        <dl class="facts">
            <dt><T en="Version" zh="版本"/></dt>
            <dd data-testid="server-version">{info.version}</dd>
            <dt><T en="Database" zh="数据库"/></dt>
            <dd data-testid="server-database">{info.database_engine} " (" {database} ")"</dd>
        </dl>
    }
}
