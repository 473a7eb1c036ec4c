//! Benchmark (not a test): the cost of payment order generation.
//!
//! 1. Reference rates of the crypto in use, single thread: RSA-2048 SHA256withRSA signing with
//!    `ring` (what ScanPay signs with) and with the `rsa` crate (what it avoids for signing,
//!    RUSTSEC-2023-0071), and verification with `rsa`.
//! 2. Prepay round trips through ScanPay's own provider clients against the sandbox gateways
//!    on loopback, sequential and with 16 in flight: throughput and p50 / p99 latency. Each
//!    round trip is 2 signatures + 2 verifications + one SQLite insert in the sandbox.
//!
//! Run with `make bench` (release build). Prints a Markdown table for docs/benchmarks.md.

use app::money::Amount;
use futures::future::join_all;
use rsa::pkcs8::EncodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use server::providers::config::Providers;
use server::providers::crypto::{RsaSigner, RsaVerifier, Signer, Verifier};
use server::providers::{PaymentProvider, PrepayRequest};
use server::sandbox::{provider_settings, Faults, Sandbox, SandboxSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rate(label: &str, budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    let r = n as f64 / start.elapsed().as_secs_f64();
    println!("| {label} | {r:.0} /s |");
    r
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn round_trips(
    label: &str,
    provider: Arc<dyn PaymentProvider>,
    prefix: &str,
    total: usize,
    in_flight: usize,
) {
    let notify = "https://merchant.example/notify".to_string();
    let mut latencies = Vec::with_capacity(total);
    let start = Instant::now();
    for batch in 0..total.div_ceil(in_flight) {
        let calls = (0..in_flight).map(|i| {
            let provider = provider.clone();
            let req = PrepayRequest {
                out_trade_no: server::providers::OutTradeNo::new(format!("{prefix}{batch}_{i}")),
                amount: Amount::from_fen(1230).expect("amount"),
                subject: "bench".into(),
                expires_at: server::infra::clock::now_ms() + 900_000,
                notify_url: notify.clone(),
                method: server::providers::PayMethod::Native,
                payer: None,
                client_ip: None,
                return_url: None,
            };
            async move {
                let t = Instant::now();
                provider.create_prepay(&req).await.expect("prepay succeeds");
                t.elapsed()
            }
        });
        latencies.extend(join_all(calls).await);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    println!(
        "| {label} | {in_flight} | {:.0} /s | {:.2} ms | {:.2} ms |",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "Machine: {} cores, {cpu}\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    println!("| crypto (RSA-2048, SHA256withRSA, one thread) | rate |\n|---|---|");
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let der = key.to_pkcs8_der().expect("pkcs8");
    let ring_signer = RsaSigner::from_der(der.as_bytes()).expect("ring key");
    let rsa_signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let verifier = RsaVerifier::from_der(
        rsa::pkcs8::EncodePublicKey::to_public_key_der(&key.to_public_key())
            .expect("spki")
            .as_bytes(),
    )
    .expect("verifier");
    let msg = b"app_id=9021000000000001&biz_content={\"out_trade_no\":\"ORD_1\",\"total_amount\":\"12.30\"}&method=alipay.trade.precreate";
    let sig = ring_signer.sign(msg).expect("sign");
    let budget = Duration::from_secs(2);
    let ring_rate = rate("sign, ring (used)", budget, || {
        ring_signer.sign(msg).expect("sign");
    });
    let rsa_rate = rate("sign, rsa crate (reference only)", budget, || {
        let _ = rsa_signer.sign(msg).to_vec();
    });
    rate("verify, rsa crate (used)", budget, || {
        assert!(verifier.verify(msg, &sig));
    });
    println!(
        "\nring signs {:.2}× as fast as the rsa crate.\n",
        ring_rate / rsa_rate
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/sandbox", listener.local_addr().expect("addr"));
    let sandbox = Sandbox::open(SandboxSettings {
        dir: dir.path().join("sandbox"),
        base_url: base.clone(),
        time_scale: 1.0,
        faults: Faults::default(),
    })
    .await
    .expect("sandbox");
    let app = axum::Router::new().nest_service("/sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (a, w) = provider_settings(&sandbox.keys_dir(), &base);
    let providers = Providers::from_settings(Some(&a), Some(&w)).expect("providers");
    let (alipay, wechat) = (
        providers.alipay.expect("alipay"),
        providers.wechat.expect("wechat"),
    );

    println!("| prepay round trip vs sandbox on loopback | in flight | throughput | p50 | p99 |\n|---|---|---|---|---|");
    round_trips("Alipay precreate", alipay.clone(), "A1_", 500, 1).await;
    round_trips("Alipay precreate", alipay, "A16_", 2000, 16).await;
    round_trips("WeChat native", wechat.clone(), "W1_", 500, 1).await;
    round_trips("WeChat native", wechat, "W16_", 2000, 16).await;
}
