//! `/q/:token`: the aggregate code, one QR any wallet can scan. A wallet's own browser signs
//! in silently and comes back here to pay in the page (`inapp.rs`); any other phone browser
//! lands here, learns how to pay, and chooses a wallet, whose mobile cashier it is sent to (a
//! full page load, so the server can redirect); a desktop browser is sent to the checkout's
//! QR code when it chooses (see `api::open_aggregate`).

use super::inapp::{InAppPay, ProblemPage};
use super::NotFoundMessage;
use crate::api::{open_aggregate, AggregateAnswer, AggregateView};
use crate::i18n::{use_lang, Lang, T};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_location, use_params_map};

#[component]
pub fn AggregatePage() -> impl IntoView {
    let params = use_params_map();
    let location = use_location();
    let lang = use_lang();
    let answer = Resource::new(
        move || {
            (
                params.read().get("token").unwrap_or_default(),
                location.search.get(),
            )
        },
        |(token, search)| open_aggregate(token, search),
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match answer.await {
                    Ok(AggregateAnswer::Page(view)) => view! { <Explain view/> }.into_any(),
                    Ok(AggregateAnswer::InApp(view)) => view! { <InAppPay view/> }.into_any(),
                    Ok(AggregateAnswer::Problem(problem)) => view! { <ProblemPage problem/> }.into_any(),
                    Ok(AggregateAnswer::Redirect(url)) => view! {
                        <section class="card">
                            <p><T en="Opening your wallet…" zh="正在打开钱包…"/></p>
                            <p><a href=url rel="external"><T en="Continue" zh="继续"/></a></p>
                        </section>
                    }
                    .into_any(),
                    Ok(AggregateAnswer::NotFound) => view! {
                        <NotFoundMessage
                            title=lang.get_untracked().pick("Payment not found", "未找到该付款")
                            detail=lang.get_untracked().pick(
                                "This code does not belong to any payment. Ask the shop for a new one.",
                                "此二维码不对应任何付款，请向商户索取新的二维码。",
                            )
                        />
                    }
                    .into_any(),
                    Err(_) => view! {
                        <p class="card error" role="alert">
                            <T en="We could not load this payment. Reload the page to try again." zh="无法加载此付款，请刷新页面重试。"/>
                        </p>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Explain(view: AggregateView) -> impl IntoView {
    let lang = use_lang();
    let amount = view.amount.to_string();
    let merchant = view.merchant_name.clone();
    let headline = {
        let (amount, merchant) = (amount.clone(), merchant.clone());
        move || match lang.get() {
            Lang::En => format!("Pay {amount} to {merchant}"),
            Lang::Zh => format!("向{merchant}支付 {amount}"),
        }
    };
    let token = view.token.clone();
    let buttons = view
        .channels
        .iter()
        .copied()
        .map(|c| {
            view! {
                <a
                    class="button primary"
                    rel="external"
                    href=format!("/q/{token}?pay={}", c.as_str())
                    data-testid=format!("pay-{}", c.as_str())
                >
                    {move || format!("{} {}", lang.get().pick("Pay with", "使用"), lang.get().wallet(c))}
                </a>
            }
        })
        .collect_view();
    let body = if view.payable {
        view! {
            <p><T en="Choose your wallet to pay:" zh="请选择付款钱包："/></p>
            <div class="wallet-buttons">{buttons}</div>
        }
        .into_any()
    } else {
        view! {
            <p data-testid="not-payable"><T en="This payment can no longer be paid with this code. Ask the shop for a new one." zh="此付款码已失效，请向商户索取新的付款码。"/></p>
        }
        .into_any()
    };
    view! {
        // A plain string (see the checkout's title).
        <Title text=headline()/>
        <section class="card aggregate" data-testid="aggregate" data-status=view.status.as_str()>
            {view.logo_url.clone().map(|src| view! { <img class="shop-logo" src=src alt="" data-testid="shop-logo-img"/> })}
            <h1>{headline}</h1>
            <p class="subject">{view.subject.clone()}</p>
            {body}
        </section>
    }
}
