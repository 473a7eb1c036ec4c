//! Benchmark (not a test): asynchronous callback processing, verified callbacks per second.
//!
//! For each engine (embedded SQLite in a temporary directory; a fresh database on the local
//! PostgreSQL) it starts the whole application with its in-process sandbox, opens a code for
//! N orders per provider, pre-signs one paid notification per order with the sandbox
//! gateway's key (as Alipay / WeChat Pay would), then posts them over loopback, first one at a
//! time, then 16 in flight. Each callback is the whole path: raw storage, signature check
//! (WeChat: and AES-GCM decryption and the nonce), the order checks, and the paying
//! transaction (conditional transition, timeline, outbox), then the inbox outcome.
//!
//! The reference is the `rsa` crate's SHA256withRSA verify rate on one core, measured in the
//! same run: one verification per callback is the cryptographic floor.
//!
//! Run with `make bench` (release build). Prints a Markdown table for docs/benchmarks.md.

mod common;

use app::money::Amount;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use server::config::{DatabaseUrl, Engine};
use server::infra::secret::Secret;
use server::orders::{self, NewOrder};
use server::payments::StartPayment;
use server::providers::alipay::wire as alipay_wire;
use server::providers::crypto::{RsaVerifier, Verifier};
use server::providers::Channel;
use server::sandbox::deliver::{sign_alipay_notification, sign_wechat_notification, Outgoing};
use server::sandbox::keys::SandboxKeys;
use std::time::{Duration, Instant};

/// Orders per provider and engine; half are posted one at a time, half 16 in flight.
const N: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn verify_rate() -> f64 {
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("key");
    let der = key
        .to_public_key()
        .to_public_key_der()
        .expect("der")
        .into_vec();
    let verifier = RsaVerifier::from_der(&der).expect("verifier");
    let message = b"timestamp\nnonce\n{\"id\":\"EV-1\",\"resource\":{}}\n".repeat(8);
    let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let signature = signing.sign(&message).to_vec();
    for _ in 0..50 {
        assert!(verifier.verify(&message, &signature));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        assert!(verifier.verify(&message, &signature));
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn post(client: &reqwest::Client, url: &str, n: &Outgoing) -> Duration {
    let t = Instant::now();
    let mut req = client.post(url).body(n.body.clone());
    for (k, v) in &n.headers {
        req = req.header(*k, v);
    }
    let answer = req.send().await.expect("reply");
    let status = answer.status().as_u16();
    let body = answer.text().await.expect("body");
    assert!(
        status == 204 || (status == 200 && body == "success"),
        "refused: {status} {body}"
    );
    t.elapsed()
}

async fn run(
    engine: &str,
    channel: Channel,
    client: &reqwest::Client,
    url: &str,
    notes: &[Outgoing],
    in_flight: usize,
    verify_per_sec: f64,
) {
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(notes.len());
    for chunk in notes.chunks(in_flight) {
        let calls = chunk.iter().map(|n| post(client, url, n));
        latencies.extend(futures::future::join_all(calls).await);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let rate = notes.len() as f64 / elapsed.as_secs_f64();
    println!(
        "| {engine} | {channel} | {in_flight} | {rate:.0} /s | {:.2} ms | {:.2} ms | {:.2} |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        rate / verify_per_sec,
    );
}

async fn bench_engine(engine: Engine, url: String, verify_per_sec: f64) {
    let app = common::start(|config| {
        config.database = DatabaseUrl {
            engine,
            url: Secret::new(url),
        };
        // No worker asks the sandbox about these orders while the benchmark runs.
        config.active_query_after_secs = 3600;
    })
    .await;
    let (base, db, payments) = (app.base.clone(), app.db.clone(), app.payments.clone());
    let keys = SandboxKeys::load_or_create(&app.data_dir().join("sandbox/keys")).expect("keys");
    let client = reqwest::Client::new();
    let name = match engine {
        Engine::Sqlite => "SQLite",
        Engine::Postgres => "PostgreSQL",
    };
    for channel in [Channel::Alipay, Channel::Wechat] {
        let mut notes = Vec::with_capacity(N);
        for i in 0..N {
            let order = orders::create(
                &db,
                &NewOrder {
                    merchant_id: server::merchants::DEMO_MERCHANT_ID.into(),
                    amount: Amount::from_fen(1_234).expect("amount"),
                    subject: "Benchmark oolong".into(),
                    expires_in_secs: 3600,
                    return_url: None,
                },
                None,
            )
            .await
            .expect("order");
            let trade = payments
                .start_payment(&order.id, channel)
                .await
                .expect("prepay")
                .out_trade_no;
            notes.push(match channel {
                Channel::Alipay => {
                    let fields = [
                        ("notify_time", "2026-11-27 10:00:00".to_string()),
                        ("notify_type", "trade_status_sync".into()),
                        ("notify_id", format!("bench{i}")),
                        ("app_id", server::sandbox::ALIPAY_APP_ID.into()),
                        ("charset", "utf-8".into()),
                        ("version", "1.0".into()),
                        ("sign_type", "RSA2".into()),
                        ("trade_no", format!("2026112722001400000{i:09}")),
                        ("out_trade_no", trade.into_string()),
                        ("seller_id", server::sandbox::ALIPAY_SELLER_ID.into()),
                        ("trade_status", "TRADE_SUCCESS".into()),
                        (
                            "total_amount",
                            alipay_wire::format_amount(Amount::from_fen(1_234).expect("amount")),
                        ),
                        ("subject", "Benchmark oolong".into()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                    sign_alipay_notification(&keys.alipay_gateway, fields, false)
                }
                Channel::Wechat => sign_wechat_notification(
                    &keys.wechat_gateway,
                    &keys.wechat_apiv3_key,
                    &format!("EV-bench-{i}"),
                    &serde_json::json!({
                        "appid": server::sandbox::WECHAT_APPID,
                        "mchid": server::sandbox::WECHAT_MCHID,
                        "out_trade_no": trade,
                        "transaction_id": format!("42000020261127{i:014}"),
                        "trade_type": "NATIVE",
                        "trade_state": "SUCCESS",
                        "amount": { "total": 1_234, "currency": "CNY" },
                    }),
                    server::infra::clock::now_ms() / 1000,
                    &format!("BENCHNONCE{i:022}"),
                    false,
                ),
            });
        }
        let url = format!("{base}/notify/{channel}");
        let (one, many) = notes.split_at(N / 2);
        run(name, channel, &client, &url, one, 1, verify_per_sec).await;
        run(name, channel, &client, &url, many, 16, verify_per_sec).await;
    }
    app.stop().await;
}

#[tokio::main]
async fn main() {
    let verify_per_sec = verify_rate();
    println!("Reference: rsa crate SHA256withRSA-2048 verify, one thread: {verify_per_sec:.0} /s");
    println!();
    println!("| engine | provider | in flight | callbacks | p50 | p99 | ÷ verify rate |");
    println!("|---|---|---|---|---|---|---|");
    let sqlite_dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        sqlite_dir.path().join("bench.db").display()
    );
    bench_engine(Engine::Sqlite, sqlite, verify_per_sec).await;

    let admin = std::env::var("SCANPAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
        println!("(PostgreSQL not reachable at {admin}: skipped)");
        return;
    };
    let name = format!("scanpay_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    bench_engine(Engine::Postgres, format!("{base}/{name}"), verify_per_sec).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop database");
}
