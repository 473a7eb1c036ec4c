//! `scanpay`: the server program. It serves the Leptos checkout and board, the merchant API
//! and the provider callbacks, over one database pool. `main.rs` only calls [`cli::main`];
//! everything lives here so tests can start a whole [`Application`] on port 0.
//!
//! Map: `config` (layered settings) → `db` (pool + migrations) → `state` (what handlers
//! reach) → `http` (routes and layers) → [`Application`] (bind, serve, shut down).
//! See `docs/architecture.md`.

pub mod accounts;
pub mod api_keys;
pub mod board;
pub mod checkout;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod http;
pub mod ids;
pub mod infra;
pub mod limits;
pub mod merchants;
pub mod notify_check;
pub mod orders;
pub mod outbound;
pub mod outbox;
pub mod payments;
pub mod phone;
pub mod providers;
pub mod risk;
pub mod sandbox;
pub mod service_error;
pub mod services;
pub mod shop_codes;
pub mod state;
pub mod webhooks;
pub mod workers;

use crate::config::Config;
use crate::infra::db::Db;
use crate::infra::{db, site, telemetry};
use crate::state::AppState;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the program could not start. Each message is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Site(#[from] site::SiteError),
    #[error(transparent)]
    Providers(#[from] providers::config::ProviderSetupError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    MasterKey(#[from] infra::sealed::KeyringError),
    #[error("merchants have their own provider credentials, sealed under a master key: set SCANPAY_MASTER_KEY_FILE to the file that holds it")]
    NoMasterKey,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Command(String),
}

/// A started (bound, migrated) but not yet serving ScanPay.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own, when configured.
    metrics_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    public_url: String,
    state: AppState,
    webhooks: webhooks::Webhooks,
    shutdown_grace: Duration,
    /// Cluster mode on PostgreSQL: the database URL and this node's outgoing live pings.
    live_bridge: Option<(
        String,
        tokio::sync::mpsc::UnboundedReceiver<payments::live::OrderChange>,
    )>,
    /// SQLite: held while the process runs, so a second node is refused.
    _node_lock: db::NodeLock,
}

impl Application {
    /// Connects to and migrates the database, binds the listen address, opens the sandbox
    /// gateways when they serve a provider, and parses the providers' keys.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        // Before anything opens: a mix of real money and the sandbox or demo stops here.
        let posture = config.posture()?;
        let node_lock = db::lock_single_node(&config.database)?;
        let db = Db::connect(&config.database, config.database_max_connections).await?;
        db.migrate().await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?,
            ),
            None => None,
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let sandboxed: Vec<providers::Channel> = providers::Channel::ALL
            .into_iter()
            .filter(|c| config.sandbox_serves(*c))
            .collect();
        let wired = wire_in_process(&config, &public_url, local_addr).await?;
        let sandbox = wired.sandbox;
        // The wallets' JS bridges exist only inside the wallets: in the demo posture the
        // sandbox's stand-in is put on the in-app payment page so it can be paid.
        let bridge_script = match posture {
            config::Posture::Demo => wired
                .alipay
                .as_ref()
                .and_then(|s| s.gateway.strip_suffix("/alipay/gateway.do"))
                .map(|base| format!("{base}/bridge.js")),
            config::Posture::Live => None,
        };
        let providers = providers::config::Providers::from_settings(
            wired.alipay.as_ref(),
            wired.wechat.as_ref(),
        )?
        .sandbox_only_for_demo(match posture {
            config::Posture::Live => &sandboxed,
            config::Posture::Demo => &[],
        });
        // Merchants' own accounts are opened with the master key; without it (live posture,
        // none named) a merchant with an account could not be paid, so start-up stops.
        let keyring = config.keyring(posture)?;
        if keyring.is_none() && credentials::any(&db).await.map_err(db::DbError::Query)? {
            return Err(StartupError::NoMasterKey);
        }
        // Merchants' own accounts obey the posture too: no real account beside the sandbox,
        // no sandbox account beside real money.
        let gateways = config.merchant_gateways(posture);
        let stored = credentials::all(&db)
            .await
            .map_err(|e| StartupError::Command(e.to_string()))?;
        if let Some((merchant, why)) = stored
            .iter()
            .find_map(|(m, ids)| gateways.refuses(ids).map(|why| (m, why)))
        {
            return Err(StartupError::Config(config::ConfigError::Mixed {
                what: format!("merchant {merchant}'s own account: {why}"),
                fix: "Remove it (scanpay merchant credentials remove), or set \
                      SCANPAY_UNSAFE_SANDBOX_BESIDE_LIVE=true on a test machine",
            }));
        }
        let leptos_options = site::leptos_options(local_addr)?;
        if config.demo {
            merchants::ensure_demo(&db)
                .await
                .map_err(db::DbError::Query)?;
            accounts::ensure_demo_user(&db)
                .await
                .map_err(db::DbError::Query)?;
        }
        let node_id = config.node_id.clone().unwrap_or_else(|| {
            format!("node-{}", &orders::random_token()[..8].to_ascii_lowercase())
        });
        let (live, live_bridge) = if db.engine() == config::Engine::Postgres {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (
                payments::live::LiveHub::with_outward(tx),
                Some((config.database.url.expose().clone(), rx)),
            )
        } else {
            (payments::live::LiveHub::new(), None)
        };
        let payments = payments::Payments::new(
            db.clone(),
            providers.clone(),
            &public_url,
            live,
            Duration::from_secs(config.active_query_after_secs),
        )
        .on_node(&node_id, Duration::from_secs(config.node_ttl_secs))
        .with_keyring(keyring, gateways);
        let cluster = cluster::Cluster::new(
            cluster::ClusterSettings {
                node_id,
                node_url: config
                    .node_url
                    .clone()
                    .unwrap_or_else(|| public_url.clone()),
                secret: config.cluster_secret.clone(),
                ttl: Duration::from_secs(config.node_ttl_secs),
            },
            db.clone(),
            payments.clone(),
        );
        let start: Arc<dyn payments::StartPayment> = Arc::new(cluster::ClusterStart {
            cluster: cluster.clone(),
        });
        let checkout = checkout::Checkout {
            start: start.clone(),
            payments: payments.clone(),
            public_url: public_url.trim_end_matches('/').to_string(),
            bridge_script,
        };
        let webhooks = webhooks::Webhooks::new(
            db.clone(),
            config.outbound_policy(),
            config.webhook_time_scale,
        );
        let services = Arc::new(services::Services::new(
            checkout,
            cluster.clone(),
            webhooks.clone(),
            config.demo,
            posture,
            config.order_expiry_secs,
        ));
        let state = AppState::new(
            leptos_options,
            db,
            services,
            providers,
            payments,
            cluster,
            start,
            sandbox,
            state::HttpSettings {
                public_url: public_url.clone(),
                default_expiry_secs: config.order_expiry_secs,
                api_rate_per_minute: config.api_rate_per_minute,
                demo: config.demo,
                trusted_proxies: config.trusted_proxies.clone(),
            },
            Arc::new(limits::Limiter::for_deployment(&config.database).await?),
        );
        Ok(Application {
            listener,
            metrics_listener,
            local_addr,
            public_url,
            state,
            webhooks,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            live_bridge,
            _node_lock: node_lock,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL a person opens to reach this server.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The payment providers this process uses (real gateways or the sandbox).
    pub fn providers(&self) -> &providers::config::Providers {
        &self.state.providers
    }

    /// This node's merchant webhook sender.
    pub fn webhooks(&self) -> &webhooks::Webhooks {
        &self.webhooks
    }

    /// This node's payment flows.
    pub fn payments(&self) -> &payments::Payments {
        &self.state.payments
    }

    /// The rate limits this process applies.
    pub fn limiter(&self) -> &Arc<limits::Limiter> {
        &self.state.limiter
    }

    /// Serves until `shutdown` completes, then stops accepting connections and lets in-flight
    /// requests finish for up to the configured grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
            webhooks,
            shutdown_grace,
            live_bridge,
            _node_lock,
            ..
        } = self;
        let heartbeat = state.cluster.spawn_heartbeat();
        let bridge = live_bridge
            .map(|(url, rx)| {
                cluster::spawn_live_bridge(
                    url,
                    state.db.clone(),
                    state.payments.live().clone(),
                    state.cluster.node_id().to_string(),
                    rx,
                )
            })
            .unwrap_or_default();
        let metrics = telemetry::metrics();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
        let mut router = http::router(state.clone());
        let metrics_server = match metrics_listener {
            Some(l) => Some(tokio::spawn(
                axum::serve(l, http::metrics_router()).into_future(),
            )),
            None => {
                router = router.merge(http::metrics_router());
                None
            }
        };
        let delivery = state.sandbox.as_ref().map(|s| s.spawn_delivery());
        let expiry = payments::expiry::spawn(state.payments.clone(), payments::expiry::TICK);
        let active_query = payments::query::spawn(state.payments.clone(), payments::query::TICK);
        let nonce_purge = crate::workers::every(Duration::from_secs(60), "inbox housekeeping", {
            let payments = state.payments.clone();
            move || {
                let payments = payments.clone();
                async move {
                    let nonces = payments::notify::forget_old_nonces(&payments).await?;
                    let bodies = payments::inbox::forget_old_refused_bodies(payments.db()).await?;
                    let sessions = accounts::forget_expired(payments.db()).await?;
                    let calls = cluster::internal::forget_old_nonces(payments.db()).await?;
                    let limits = limits::forget_idle(payments.db()).await?;
                    Ok(nonces + bodies + sessions + calls + limits)
                }
            }
        });
        let webhook_sender = webhooks.spawn(webhooks::TICK);
        let refund_worker =
            payments::refunds::spawn(state.payments.clone(), payments::refunds::TICK);
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let stop_state = state.clone();
        let drain_cluster = state.cluster.clone();
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // `/readyz` turns 503 (a load balancer stops sending), no new flows are chosen
            // for this node, and those it runs finish before it stops accepting.
            stop_state.begin_shutdown();
            drain_cluster.drain(shutdown_grace).await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stopping_tx.send(true);
        });
        let grace_expired = async move {
            while !*stopping_rx.borrow_and_update() {
                if stopping_rx.changed().await.is_err() {
                    // The server ended without a shutdown signal; nothing to time out.
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(shutdown_grace).await;
        };
        let result = tokio::select! {
            r = server => r,
            () = grace_expired => {
                tracing::warn!(grace_secs = shutdown_grace.as_secs(), "shutdown grace period over; dropping remaining requests");
                Ok(())
            }
        };
        upkeep.abort();
        expiry.abort();
        active_query.abort();
        nonce_purge.abort();
        webhook_sender.abort();
        refund_worker.abort();
        heartbeat.abort();
        for task in bridge {
            task.abort();
        }
        if let Some(d) = delivery {
            d.abort();
        }
        if let Some(m) = metrics_server {
            m.abort();
        }
        state.cluster.leave().await;
        state.db.close().await;
        result
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The providers' effective settings: the configured ones, or the in-process sandbox's for a
/// channel it serves (then the sandbox to mount).
struct Wired {
    sandbox: Option<Arc<sandbox::Sandbox>>,
    alipay: Option<providers::config::AlipaySettings>,
    wechat: Option<providers::config::WechatSettings>,
}

/// Opens the in-process sandbox when the configuration asks for it, and points each provider
/// it serves at it (over loopback HTTP, like any gateway). The configuration is only read.
async fn wire_in_process(
    config: &Config,
    public_url: &str,
    local_addr: std::net::SocketAddr,
) -> Result<Wired, sandbox::SandboxError> {
    use crate::providers::Channel;
    let mut wired = Wired {
        sandbox: None,
        alipay: config.alipay.clone(),
        wechat: config.wechat.clone(),
    };
    let serve_alipay = config.sandbox_serves(Channel::Alipay);
    let serve_wechat = config.sandbox_serves(Channel::Wechat);
    if !serve_alipay && !serve_wechat {
        return Ok(wired);
    }
    let sandbox = sandbox::Sandbox::open(sandbox::SandboxSettings {
        dir: config.data_dir.join("sandbox"),
        base_url: format!("{public_url}/sandbox"),
        time_scale: config.sandbox_time_scale,
        faults: config.sandbox_faults.clone(),
    })
    .await?;
    // The node reaches its own sandbox on loopback even when it listens on all interfaces.
    let loopback = if local_addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], local_addr.port()))
    } else {
        local_addr
    };
    let (alipay, wechat) =
        sandbox::provider_settings(&sandbox.keys_dir(), &format!("http://{loopback}/sandbox"));
    if serve_alipay {
        wired.alipay = Some(alipay);
        tracing::info!("Alipay is served by the built-in sandbox gateway");
    }
    if serve_wechat {
        wired.wechat = Some(wechat);
        tracing::info!("WeChat Pay is served by the built-in sandbox gateway");
    }
    wired.sandbox = Some(sandbox);
    Ok(wired)
}
