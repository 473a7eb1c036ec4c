//! Benchmark (not a test): the server's time to render the checkout page.
//!
//! Starts the whole application (release build, embedded SQLite in a temporary directory,
//! in-process sandbox gateways), creates a demo order with a live Alipay attempt, then fetches
//! `/checkout/<id>` over loopback: 500 times one at a time, and 2,000 times 8 at a time.
//! Each render reads the order, its live attempt and the merchant, draws the QR code as SVG
//! and renders the Leptos page with its serialised resource. Prints a Markdown table for
//! docs/benchmarks.md.
//!
//! Run with `make bench`.

mod common;

use app::money::Amount;
use server::orders::{self, NewOrder};
use server::payments::StartPayment;
use server::providers::Channel;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(client: &reqwest::Client, url: &str, total: usize, in_flight: usize) {
    let mut latencies = Vec::with_capacity(total);
    let mut bytes = 0;
    let start = Instant::now();
    for _ in 0..total.div_ceil(in_flight) {
        let calls = (0..in_flight).map(|_| async {
            let t = Instant::now();
            let page = client.get(url).send().await.expect("page");
            assert_eq!(page.status(), 200);
            let body = page.bytes().await.expect("body");
            (t.elapsed(), body.len())
        });
        for (latency, len) in futures::future::join_all(calls).await {
            latencies.push(latency);
            bytes = len;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort();
    println!(
        "| GET /checkout/:id | {in_flight} | {:.0} /s | {:.2} ms | {:.2} ms | {bytes} B |",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let app = common::start(|_| {}).await;
    let (base, db, payments) = (app.base.clone(), app.db.clone(), app.payments.clone());

    let order = orders::create(
        &db,
        &NewOrder {
            merchant_id: server::merchants::DEMO_MERCHANT_ID.into(),
            amount: Amount::from_fen(1234).expect("amount"),
            subject: "Benchmark flat white".into(),
            expires_in_secs: 3600,
            return_url: None,
        },
        None,
    )
    .await
    .expect("order");
    payments
        .start_payment(&order.id, Channel::Alipay)
        .await
        .expect("prepay");
    let url = format!("{base}/checkout/{}", order.id.as_str());
    let client = reqwest::Client::new();
    for _ in 0..20 {
        client.get(&url).send().await.expect("warm-up");
    }
    println!("| page | in flight | throughput | p50 | p99 | HTML size |");
    println!("|---|---|---|---|---|---|");
    run(&client, &url, 500, 1).await;
    run(&client, &url, 2000, 8).await;
    app.stop().await;
}
