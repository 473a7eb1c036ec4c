//! The browser's side of the live channel: one WebSocket per open order page (the
//! `watch_order` server function) or board (`watch_board`). Each `Sync` ping makes the page re-read the order; when the
//! socket drops, the page reconnects with backoff and the first ping of the new socket
//! re-reads again, so a change made while it was away is never lost.

use leptos::prelude::*;

/// What the page tells the customer about its live connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    Connecting,
    Live,
    Reconnecting,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Connecting => "connecting",
            LiveState::Live => "live",
            LiveState::Reconnecting => "reconnecting",
        }
    }
}

/// Keeps a live channel open for the order in `order_id` while the calling component lives,
/// bumping `refresh` on every `Sync`. Does nothing during server rendering.
pub fn watch(order_id: Memo<String>, refresh: RwSignal<u32>, state: RwSignal<LiveState>) {
    watch_target(
        Memo::new(move |_| Target::Order(order_id.get())),
        refresh,
        state,
    )
}

/// [`watch`] for the signed-in merchant's board: any change of any of its orders.
pub fn watch_board(refresh: RwSignal<u32>, state: RwSignal<LiveState>) {
    watch_target(Memo::new(|_| Target::Board), refresh, state)
}

/// What a live channel follows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Order(String),
    Board,
}

fn watch_target(target: Memo<Target>, refresh: RwSignal<u32>, state: RwSignal<LiveState>) {
    #[cfg(feature = "hydrate")]
    {
        use futures::future::{abortable, AbortHandle};
        let handle: StoredValue<Option<AbortHandle>> = StoredValue::new(None);
        Effect::new(move |_| {
            let id = target.get();
            if let Some(h) = handle.get_value() {
                h.abort();
            }
            let (task, h) = abortable(run(id, refresh, state));
            handle.set_value(Some(h));
            leptos::task::spawn_local(async move {
                let _ = task.await;
            });
        });
        on_cleanup(move || {
            if let Some(h) = handle.get_value() {
                h.abort();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (target, refresh, state);
}

#[cfg(feature = "hydrate")]
async fn run(target: Target, refresh: RwSignal<u32>, state: RwSignal<LiveState>) {
    use crate::api::{watch_order, LivePing, WatchRequest};
    use crate::merchant::watch_board;
    use futures::StreamExt;
    const FIRST_RETRY_MS: u64 = 500;
    const MAX_RETRY_MS: u64 = 5_000;
    let mut retry_ms = FIRST_RETRY_MS;
    loop {
        let order_id = match &target {
            Target::Order(id) => id.clone(),
            Target::Board => String::new(),
        };
        let request = futures::stream::once(std::future::ready(Ok(WatchRequest { order_id })));
        let pings = match target {
            Target::Order(_) => watch_order(request.into()).await,
            Target::Board => watch_board(request.into()).await,
        };
        if let Ok(mut pings) = pings {
            while let Some(ping) = pings.next().await {
                match ping {
                    Ok(LivePing::Sync) => {
                        state.set(LiveState::Live);
                        retry_ms = FIRST_RETRY_MS;
                        refresh.update(|n| *n = n.wrapping_add(1));
                    }
                    Ok(LivePing::Heartbeat) => state.set(LiveState::Live),
                    Err(_) => break,
                }
            }
        }
        state.set(LiveState::Reconnecting);
        sleep_ms(retry_ms).await;
        retry_ms = (retry_ms * 2).min(MAX_RETRY_MS);
    }
}

/// Waits in the browser without blocking it.
#[cfg(feature = "hydrate")]
pub async fn sleep_ms(ms: u64) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = tx.send(());
        },
        std::time::Duration::from_millis(ms),
    );
    let _ = rx.await;
}
