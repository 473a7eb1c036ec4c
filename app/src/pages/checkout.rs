//! `/checkout/:order_id`: the customer's payment page.
//!
//! Orders are not stored yet (the checkout area adds them), so every id is unknown and the
//! page answers a real 404 with a message a customer understands.

use super::NotFoundMessage;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn CheckoutPage() -> impl IntoView {
    let params = use_params_map();
    let order_id = params.read_untracked().get("order_id").unwrap_or_default();
    view! {
        <NotFoundMessage
            title="Payment not found"
            detail=format!(
                "We could not find a payment with the reference \u{201c}{order_id}\u{201d}. \
                 Ask the shop for a new payment link."
            )
        />
    }
}
