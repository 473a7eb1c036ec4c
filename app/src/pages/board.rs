//! `/board`: the merchant's live order board.
//!
//! Orders newest first, re-read whenever the live channel says one of the merchant's orders
//! changed (a new order appears, pending turns paid, expired greys out); a reconnect re-reads.
//! The filters live in the query string (so a reload, a shared link and the CSV export see the
//! same list). Paging is by cursor (`?after=<order id>`): rows arriving meanwhile go on the
//! first page and never shift a later one.

use crate::channel::Channel;
use crate::clock;
use crate::i18n::{use_lang, Lang, T};
use crate::live::{self, LiveState};
use crate::merchant::{
    list_board, who_am_i, AppError, BoardData, BoardFilter, BoardRow, BoardUser, Change,
    ChangeOrder,
};
use crate::status::OrderStatus;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Form, A};
use leptos_router::hooks::{use_navigate, use_query_map};

#[component]
pub fn BoardPage() -> impl IntoView {
    let lang = use_lang();
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        let q = query.read();
        BoardFilter {
            status: q.get("status"),
            channel: q.get("channel"),
            from: q.get("from"),
            to: q.get("to"),
            min: q.get("min"),
            max: q.get("max"),
            q: q.get("q"),
        }
    });
    let after = Memo::new(move |_| query.read().get("after").filter(|a| !a.is_empty()));
    let refresh = RwSignal::new(0u32);
    let live_state = RwSignal::new(LiveState::Connecting);
    let data = Resource::new(
        move || (filter.get(), after.get(), refresh.get()),
        |(f, a, _)| list_board(f, a),
    );
    let user = Resource::new(|| (), |_| who_am_i());
    live::watch_board(refresh, live_state);
    view! {
        <Title text=lang.get_untracked().pick("Order board", "订单看板")/>
        <section class="board" data-testid="board">
            <header class="board-head">
                <h1><T en="Order board" zh="订单看板"/></h1>
                <p class="live" data-testid="board-live" role="status" aria-live="polite" data-live=move || live_state.get().as_str()>
                    {move || match live_state.get() {
                        LiveState::Live => lang.get().pick("● Live", "● 实时"),
                        LiveState::Connecting => lang.get().pick("Connecting…", "正在连接…"),
                        LiveState::Reconnecting => lang.get().pick("Reconnecting…", "正在重新连接…"),
                    }}
                </p>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        user.await.ok().flatten().map(|u| view! { <Account user=u/> })
                    })}
                </Suspense>
            </header>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    user.await.ok().flatten().map(|u| view! { <Counter csrf=u.csrf/> })
                })}
            </Suspense>
            <Filters filter/>
            <Transition fallback=move || view! { <p class="muted"><T en="Loading…" zh="加载中…"/></p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(d) => view! { <Board data=d filter=filter.get_untracked()/> }.into_any(),
                        Err(AppError::SignedOut) => view! { <SignedOut/> }.into_any(),
                        Err(e) => view! {
                            <p class="error" role="alert" data-testid="board-error">{server_message(&e)}</p>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The person's message of a server-function error.
pub(crate) fn server_message(e: &AppError) -> String {
    e.to_string()
}

#[component]
pub(crate) fn SignedOut() -> impl IntoView {
    view! {
        <p class="card" role="alert" data-testid="signed-out">
            <T en="Your session has ended." zh="您的登录已过期。"/> " "
            <a href="/login?next=/board" rel="external"><T en="Sign in again" zh="重新登录"/></a>
        </p>
    }
}

/// Who is signed in, and the sign-out form (a plain POST carrying the CSRF token).
#[component]
fn Account(user: BoardUser) -> impl IntoView {
    view! {
        <div class="account">
            <span class="merchant-name" data-testid="merchant-name">{user.merchant_name}</span>
            <span class="muted">{user.email}</span>
            <A href="/board/developers" attr:data-testid="developers-link"><T en="Developers" zh="开发者"/></A>
            {user.admin.then(|| view! { <A href="/board/cluster" attr:data-testid="cluster-link"><T en="Cluster" zh="集群"/></A> })}
            <form method="post" action="/auth/logout">
                <input type="hidden" name="csrf" value=user.csrf/>
                <button type="submit" class="link" data-testid="sign-out"><T en="Sign out" zh="退出登录"/></button>
            </form>
        </div>
    }
}

/// The counter: type an amount, and the checkout opens for the customer to scan.
#[component]
fn Counter(csrf: String) -> impl IntoView {
    let amount = RwSignal::new(String::new());
    let subject = RwSignal::new(String::new());
    let create = ServerAction::<ChangeOrder>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = create.value().get() {
            navigate(&format!("/checkout/{id}"), Default::default());
        }
    });
    let error = move || match create.value().get() {
        Some(Err(e)) => Some(server_message(&e)),
        _ => None,
    };
    view! {
        <form class="card counter" on:submit=move |ev| {
            ev.prevent_default();
            create.dispatch(ChangeOrder {
                csrf: csrf.clone(),
                action: Change::NewOrder { amount: amount.get_untracked(), subject: subject.get_untracked() },
            });
        }>
            <h2><T en="Counter" zh="收银"/></h2>
            <label>
                <span><T en="Amount (yuan)" zh="金额（元）"/></span>
                <input inputmode="decimal" required placeholder="12.34" data-testid="counter-amount"
                    bind:value=amount/>
            </label>
            <label>
                <span><T en="For" zh="商品说明"/></span>
                <input required maxlength="127" placeholder="Coffee" data-testid="counter-subject"
                    bind:value=subject/>
            </label>
            <button type="submit" class="primary" data-testid="counter-create" disabled=move || create.pending().get()>
                <T en="Show the code to the customer" zh="向顾客展示收款码"/>
            </button>
            <p class="error" role="alert">{error}</p>
        </form>
    }
}

/// The filter form: a GET form, so the filters are the page's query string.
#[component]
fn Filters(filter: Memo<BoardFilter>) -> impl IntoView {
    let lang = use_lang();
    let f = filter.get_untracked();
    let selected = |current: &Option<String>, value: &str| current.as_deref() == Some(value);
    let status_options = OrderStatus::ALL
        .into_iter()
        .map(|s| {
            let sel = selected(&f.status, s.as_str());
            view! { <option value=s.as_str() selected=sel>{move || lang.get().status(s)}</option> }
        })
        .collect_view();
    let channel_options = Channel::ALL
        .into_iter()
        .map(|c| {
            let sel = selected(&f.channel, c.as_str());
            view! { <option value=c.as_str() selected=sel>{move || lang.get().wallet(c)}</option> }
        })
        .collect_view();
    view! {
        <Form method="GET" action="/board" attr:class="filters" attr:data-testid="filters">
            <label>
                <span><T en="Status" zh="状态"/></span>
                <select name="status" data-testid="filter-status">
                    <option value=""><T en="Any" zh="全部"/></option>
                    {status_options}
                </select>
            </label>
            <label>
                <span><T en="Wallet" zh="渠道"/></span>
                <select name="channel" data-testid="filter-channel">
                    <option value=""><T en="Any" zh="全部"/></option>
                    {channel_options}
                </select>
            </label>
            <label>
                <span><T en="From" zh="起始日期"/></span>
                <input type="date" name="from" value=f.from.clone().unwrap_or_default()/>
            </label>
            <label>
                <span><T en="To" zh="截止日期"/></span>
                <input type="date" name="to" value=f.to.clone().unwrap_or_default()/>
            </label>
            <label>
                <span><T en="Min ¥" zh="最低金额"/></span>
                <input name="min" inputmode="decimal" size="7" value=f.min.clone().unwrap_or_default()/>
            </label>
            <label>
                <span><T en="Max ¥" zh="最高金额"/></span>
                <input name="max" inputmode="decimal" size="7" value=f.max.clone().unwrap_or_default()/>
            </label>
            <label class="grow">
                <span><T en="Search" zh="搜索"/></span>
                <input type="search" name="q" data-testid="filter-text"
                    placeholder=move || lang.get().pick("Subject, order or trade no.", "商品、订单号或交易号")
                    value=f.q.clone().unwrap_or_default()/>
            </label>
            <button type="submit" data-testid="filter-apply"><T en="Filter" zh="筛选"/></button>
            <a href="/board" class="button link"><T en="Clear" zh="清除"/></a>
        </Form>
    }
}

#[component]
fn Board(data: BoardData, filter: BoardFilter) -> impl IntoView {
    let lang = use_lang();
    let qs = filter.query_string();
    let export = if qs.is_empty() {
        "/board/orders.csv".to_string()
    } else {
        format!("/board/orders.csv?{qs}")
    };
    let next = data.next_after.clone().map(|after| {
        let sep = if qs.is_empty() { "" } else { "&" };
        format!("/board?{qs}{sep}after={after}")
    });
    let first = if qs.is_empty() {
        "/board".to_string()
    } else {
        format!("/board?{qs}")
    };
    let totals = data
        .today
        .into_iter()
        .map(|t| {
            let (c, n) = (t.channel, t.count);
            view! {
                <div class="total" data-testid=format!("today-{}", c.as_str())>
                    <span class="label">{move || lang.get().wallet(c)}</span>
                    <span class="value">{t.amount.to_string()}</span>
                    <span class="muted">{move || count_text(lang.get(), n)}</span>
                </div>
            }
        })
        .collect_view();
    let count = data.rows.len();
    let (late, risk) = (data.today_late, data.today_risk);
    let (late_alert, risk_alert) = (late > 0, risk > 0);
    let rows = data
        .rows
        .into_iter()
        .map(|row| view! { <Row row/> })
        .collect_view();
    view! {
        <section class="today" aria-label=move || lang.get().pick("Today (UTC+8)", "今日（北京时间）")>
            <h2><T en="Today" zh="今日"/></h2>
            {totals}
            <div class="total" class:alert=late_alert data-testid="today-late">
                <span class="label"><T en="Late payments" zh="逾期付款"/></span>
                <span class="value">{late}</span>
            </div>
            <div class="total" class:alert=risk_alert data-testid="today-risk">
                <span class="label"><T en="Risk events" zh="风险事件"/></span>
                <span class="value">{risk}</span>
            </div>
        </section>
        <p class="board-tools">
            <a href=export rel="external" download="orders.csv" class="button" data-testid="export-csv">
                <T en="Export CSV" zh="导出 CSV"/>
            </a>
        </p>
        // A wide table scrolls sideways on a phone: the region takes the keyboard focus.
        <div class="table-wrap" tabindex="0" role="region" aria-label=move || lang.get().pick("Orders", "订单")>
            <table class="orders" aria-label=move || lang.get().pick("Orders, newest first", "订单（最新在前）")>
                <thead>
                    <tr>
                        <th scope="col"><T en="Created" zh="创建时间"/></th>
                        <th scope="col"><T en="Order" zh="订单号"/></th>
                        <th scope="col"><T en="Subject" zh="商品"/></th>
                        <th scope="col" class="num"><T en="Amount" zh="金额"/></th>
                        <th scope="col"><T en="Wallet" zh="渠道"/></th>
                        <th scope="col"><T en="Status" zh="状态"/></th>
                    </tr>
                </thead>
                <tbody data-testid="orders">
                    {(count == 0).then(|| view! {
                        <tr class="empty">
                            <td colspan="6"><T en="No orders match. New orders appear here as they are created." zh="没有符合条件的订单。新订单创建后会出现在这里。"/></td>
                        </tr>
                    })}
                    {rows}
                </tbody>
            </table>
        </div>
        <nav class="paging" aria-label="Pages">
            <A href=first><T en="Newest" zh="最新"/></A>
            {next.map(|href| view! { <A href=href attr:data-testid="older"><T en="Older →" zh="更早 →"/></A> })}
        </nav>
    }
}

fn count_text(lang: Lang, n: i64) -> String {
    match lang {
        Lang::En if n == 1 => "1 payment".into(),
        Lang::En => format!("{n} payments"),
        Lang::Zh => format!("{n} 笔"),
    }
}

#[component]
fn Row(row: BoardRow) -> impl IntoView {
    let lang = use_lang();
    let status = row.status;
    let channel = row.channel;
    let href = format!("/board/orders/{}", row.id);
    let id = row.id.clone();
    let refunded = (row.refunded.fen() > 0).then(|| format!("−{}", row.refunded));
    view! {
        <tr
            class=format!("status-{}", status.as_str())
            class:late=row.late
            class:risky=row.risky
            data-testid="order-row"
            data-order=row.id.clone()
            data-status=status.as_str()
        >
            <td>{clock::beijing(row.created_at)}</td>
            <td><A href=href><code>{id}</code></A></td>
            <td>{row.subject}</td>
            <td class="num">{row.amount.to_string()} {refunded.map(|r| view! { <small class="refunded">" " {r}</small> })}</td>
            <td>{move || channel.map(|c| lang.get().wallet(c)).unwrap_or("—")}</td>
            <td>
                <span class="badge">{move || lang.get().status(status)}</span>
                {row.late.then(|| view! { <span class="badge warn" title="Paid after it had expired or been closed"><T en="late" zh="逾期"/></span> })}
                {row.risky.then(|| view! { <span class="badge bad"><T en="risk" zh="风险"/></span> })}
            </td>
        </tr>
    }
}
