//! One module per page; `App` in `lib.rs` maps routes to them.

mod accounts;
mod aggregate;
mod board;
mod checkout;
mod cluster;
mod codes;
mod developers;
mod home;
mod inapp;
mod login;
mod not_found;
mod order;
mod shop_code;

pub use aggregate::AggregatePage;
pub use board::BoardPage;
pub use checkout::CheckoutPage;
pub use cluster::ClusterPage;
pub use developers::DevelopersPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::{NotFound, NotFoundMessage};
pub use order::OrderPage;
pub use shop_code::ShopCodePage;

use crate::i18n::{use_lang, T};
use leptos::prelude::*;

/// A board card's table: a labelled, scrollable region with one row of headings (English,
/// Chinese; an empty pair for a column of actions) over the rows given.
#[component]
fn CardTable(
    label: (&'static str, &'static str),
    heads: &'static [(&'static str, &'static str)],
    children: Children,
) -> impl IntoView {
    let lang = use_lang();
    let heads = heads
        .iter()
        .map(|&(en, zh)| view! { <th><T en=en zh=zh/></th> })
        .collect_view();
    view! {
        <div class="table-wrap" tabindex="0" role="region" aria-label=move || lang.get().pick(label.0, label.1)>
            <table class="orders">
                <thead><tr>{heads}</tr></thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}
