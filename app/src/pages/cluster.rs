//! `/board/cluster`: the nodes of the cluster, their load and the share of payment flows each
//! ran in the last minutes (operators only). Re-read every two seconds while open.

use super::board::server_message;
use crate::i18n::{use_lang, T};
use crate::merchant::{load_cluster, ClusterView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn ClusterPage() -> impl IntoView {
    let lang = use_lang();
    let tick = RwSignal::new(0u32);
    let view = Resource::new(move || tick.get(), |_| load_cluster());
    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || tick.update(|n| *n = n.wrapping_add(1)),
            std::time::Duration::from_secs(2),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    view! {
        <Title text=lang.get_untracked().pick("Cluster", "集群")/>
        <p><A href="/board"><T en="← Order board" zh="← 订单看板"/></A></p>
        <section class="cluster" data-testid="cluster">
            <h1><T en="Cluster" zh="集群"/></h1>
            <Transition fallback=move || view! { <p class="muted"><T en="Loading…" zh="加载中…"/></p> }>
                {move || Suspend::new(async move {
                    match view.await {
                        Ok(v) => view! { <Nodes v/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{server_message(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn percent(ppm: u64) -> String {
    format!("{:.1}%", ppm as f64 / 10_000.0)
}

#[component]
fn Nodes(v: ClusterView) -> impl IntoView {
    let lang = use_lang();
    let total: i64 = v.nodes.iter().map(|n| n.flows).sum();
    let minutes = v.window_secs / 60;
    let this = v.this_node.clone();
    let rows = v
        .nodes
        .into_iter()
        .map(|n| {
            let share = if total > 0 {
                format!("{:.0}%", 100.0 * n.flows as f64 / total as f64)
            } else {
                "—".into()
            };
            let me = n.id == this;
            view! {
                <tr data-testid="node-row" data-node=n.id.clone() data-state=n.state.as_str() class:me=me>
                    <td><code>{n.id.clone()}</code>{me.then_some(" ◀")}</td>
                    <td>{n.url.clone()}</td>
                    <td><span class="badge">{n.state.as_str()}</span></td>
                    <td class="num">{format!("{:.1} s", n.heartbeat_age_ms as f64 / 1000.0)}</td>
                    <td class="num">{n.in_flight}</td>
                    <td class="num">{format!("{:.1} ms", n.latency_us as f64 / 1000.0)}</td>
                    <td class="num">{percent(n.error_ppm)}</td>
                    <td class="num">{percent(n.cpu_ppm)}</td>
                    <td class="num">{percent(n.pool_ppm)}</td>
                    <td class="num">{n.flows}</td>
                    <td class="num" data-testid="node-share">{share}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="muted" data-testid="cluster-mode">
            {if v.forwarding {
                view! { <T en="Payment flows go to the cheaper of two random ready nodes (latency × (in flight + 1), errors penalised)." zh="每笔支付流程交给随机两个就绪节点中成本较低的一个（延迟 ×（进行中 + 1），错误加罚）。"/> }.into_any()
            } else {
                view! { <T en="This node runs every flow it receives (one node, SQLite, or no cluster secret)." zh="本节点自行处理收到的每笔流程（单节点、SQLite 或未设置集群密钥）。"/> }.into_any()
            }}
        </p>
        <div class="table-wrap" tabindex="0" role="region" aria-label=move || lang.get().pick("Nodes", "节点")>
            <table class="orders">
                <thead>
                    <tr>
                        <th><T en="Node" zh="节点"/></th><th>"URL"</th><th><T en="State" zh="状态"/></th>
                        <th class="num"><T en="Heartbeat" zh="心跳"/></th>
                        <th class="num"><T en="In flight" zh="进行中"/></th>
                        <th class="num"><T en="Latency (peak EWMA)" zh="延迟（峰值 EWMA）"/></th>
                        <th class="num"><T en="Errors" zh="错误率"/></th><th class="num">"CPU"</th>
                        <th class="num"><T en="DB pool" zh="连接池"/></th>
                        <th class="num">{format!("{minutes} min")}</th><th class="num"><T en="Share" zh="占比"/></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
