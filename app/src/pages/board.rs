//! `/board`: the merchant's live order board. The frame is here; orders, filters and the
//! live feed arrive with the merchant area.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn BoardPage() -> impl IntoView {
    view! {
        <Title text="Order board"/>
        <section class="board">
            <h1>"Order board"</h1>
            <table class="orders" aria-label="Orders, newest first">
                <thead>
                    <tr>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Order"</th>
                        <th scope="col">"Subject"</th>
                        <th scope="col" class="num">"Amount"</th>
                        <th scope="col">"Channel"</th>
                        <th scope="col">"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    <tr class="empty">
                        <td colspan="6">"No orders yet. New orders appear here as they are created."</td>
                    </tr>
                </tbody>
            </table>
        </section>
    }
}
