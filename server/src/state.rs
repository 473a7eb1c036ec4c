//! What every request handler can reach: one value, cloned per request (all fields are
//! shared handles).

use crate::infra::db::Db;
use crate::providers::config::Providers;
use app::services::AppServices;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, FromRef)]
pub struct AppState {
    /// The Leptos site settings, which the page and file handlers need.
    pub leptos_options: LeptosOptions,
    /// The process's one database pool.
    pub db: Db,
    /// What server functions may use; the same services behind a trait object.
    pub services: Arc<dyn AppServices>,
    /// The enabled payment providers (keys parsed once at start-up).
    pub providers: Providers,
    /// This node's payment flows (prepay, close, record) and its live hub.
    pub payments: crate::payments::Payments,
    /// This node of the cluster (a cluster of one on SQLite).
    pub cluster: crate::cluster::Cluster,
    /// Where a payment flow starts: selection in front of `payments`.
    pub start: Arc<dyn crate::payments::StartPayment>,
    /// The in-process sandbox gateways, when they serve a provider (mounted at `/sandbox`).
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
    /// What handlers read from the configuration.
    pub settings: HttpSettings,
    /// The rate limits (the API's per key, sign-in attempts): the whole cluster's on
    /// PostgreSQL.
    pub limiter: Arc<crate::limits::Limiter>,
    /// Set when shutdown begins, so `/readyz` turns away new traffic while in-flight
    /// requests finish.
    shutting_down: Arc<AtomicBool>,
}

/// The settings handlers read, from the configuration.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The URL customers and providers reach this server at (no trailing slash).
    pub public_url: String,
    /// How long an order can be paid when its creator does not say.
    pub default_expiry_secs: i64,
    /// Requests per minute one API key may make (for the whole cluster).
    pub api_rate_per_minute: u32,
    /// Whether the demo shop (and its password-less board sign-in) is on.
    pub demo: bool,
    /// Proxies whose `X-Forwarded-For` names the client (for the sign-in limiter).
    pub trusted_proxies: crate::infra::client_addr::TrustedProxies,
}

impl AppState {
    #[allow(clippy::too_many_arguments)] // one per shared handle; built once, in lib.rs
    pub fn new(
        leptos_options: LeptosOptions,
        db: Db,
        services: Arc<dyn AppServices>,
        providers: Providers,
        payments: crate::payments::Payments,
        cluster: crate::cluster::Cluster,
        start: Arc<dyn crate::payments::StartPayment>,
        sandbox: Option<Arc<crate::sandbox::Sandbox>>,
        settings: HttpSettings,
        limiter: Arc<crate::limits::Limiter>,
    ) -> Self {
        Self {
            leptos_options,
            db,
            services,
            providers,
            payments,
            cluster,
            start,
            sandbox,
            settings: HttpSettings {
                public_url: settings.public_url.trim_end_matches('/').to_string(),
                ..settings
            },
            limiter,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }
}
