//! Cluster mode, module 1 of the design: server selection. Each node keeps a heartbeat row
//! with its load; for every payment flow the receiving node picks the node to run it by power
//! of two choices over a peak-EWMA cost, forwards it over a signed internal call, and falls
//! back to the other choice, then to itself. Live status crosses nodes through PostgreSQL
//! `LISTEN/NOTIFY`. See `docs/architecture.md` ("Cluster mode") for the policy and its sources.
//!
//! - [`Cluster`] is the node: its identity and state (`starting`, `ready`, `draining`), its own
//!   load, its view of the others (heartbeats, plus what it observed of its own forwards), and
//!   the heartbeat and live-bridge tasks.
//! - [`ClusterStart`] implements [`StartPayment`]: the checkout and the API call it exactly as
//!   they would call [`Payments`]; with one node it is [`Payments`] plus two atomic updates.
//! - [`internal`] signs and verifies the internal calls.
//!
//! The rooms: `registry.rs` (the heartbeat row, draining and leaving, the cluster page's
//! overview, the CPU sampler), `forward.rs` (running a flow here or forwarding it, and what
//! is believed of a peer's answer), `select.rs` (the selection policy, pure),
//! `live_bridge.rs` (live pings across nodes), `internal.rs` (signed internal calls).

mod forward;
pub mod internal;
mod live_bridge;
mod registry;
pub mod select;

pub use forward::ClusterStart;
pub use live_bridge::spawn_live_bridge;
pub use registry::overview;

use crate::infra::db::{Db, Engine};
use crate::infra::secret::Secret;
use crate::payments::Payments;
use registry::CpuSampler;
use select::{ErrorWindow, PeakEwma};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often a node writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a forwarded flow may take before the caller gives up on that node.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(12);
/// The PostgreSQL channel of live pings.
pub const LIVE_CHANNEL: &str = "scanpay_live";

/// A node's state as the others see it (shared with the cluster page).
pub use app::status::NodeState;

/// What configures this node in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub node_id: String,
    /// The URL the other nodes reach this one at.
    pub node_url: String,
    /// Signs and checks internal calls; without it this node neither forwards nor accepts
    /// forwarded flows.
    pub secret: Option<Secret<String>>,
    /// A heartbeat older than this is out.
    pub ttl: Duration,
}

/// Another node as its heartbeat (and this node's own observations) describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub url: String,
    pub state: NodeState,
    pub heartbeat_at: i64,
    pub started_at: i64,
    pub in_flight: u64,
    pub latency: Duration,
    pub error_rate: f64,
    pub cpu: f64,
    pub pool: f64,
    pub flows_total: u64,
}

/// What this node saw of its own forwards to one peer: they count between heartbeats.
#[derive(Debug, Default)]
struct Observed {
    latency: PeakEwma,
    errors: ErrorWindow,
    outstanding: u64,
    suspect_until: Option<Instant>,
}

struct Inner {
    settings: ClusterSettings,
    db: Db,
    payments: Payments,
    http: reqwest::Client,
    forwarding: bool,
    state: Mutex<NodeState>,
    started_at: i64,
    in_flight: AtomicU64,
    flows_total: AtomicU64,
    local: Mutex<(PeakEwma, ErrorWindow)>,
    peers: RwLock<Vec<NodeView>>,
    observed: Mutex<HashMap<String, Observed>>,
    cpu: Mutex<CpuSampler>,
}

/// This node of the cluster (a cheap handle).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl Cluster {
    pub fn new(settings: ClusterSettings, db: Db, payments: Payments) -> Cluster {
        let forwarding = settings.secret.is_some() && db.engine() == Engine::Postgres;
        Cluster {
            inner: Arc::new(Inner {
                settings,
                db,
                payments,
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(FORWARD_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default(),
                forwarding,
                state: Mutex::new(NodeState::Starting),
                started_at: crate::infra::clock::now_ms(),
                in_flight: AtomicU64::new(0),
                flows_total: AtomicU64::new(0),
                local: Mutex::new((PeakEwma::default(), ErrorWindow::default())),
                peers: RwLock::new(Vec::new()),
                observed: Mutex::new(HashMap::new()),
                cpu: Mutex::new(CpuSampler::default()),
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.settings.node_id
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// Whether flows may go to other nodes (PostgreSQL and a cluster secret).
    pub fn forwarding(&self) -> bool {
        self.inner.forwarding
    }

    pub fn state(&self) -> NodeState {
        *lock(&self.inner.state)
    }

    fn set_state(&self, s: NodeState) {
        *lock(&self.inner.state) = s;
    }

    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// The live nodes other than this one, as of the last heartbeat round.
    pub fn peers(&self) -> Vec<NodeView> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// This node's own prepay latency estimate and error rate at `now`.
    fn local_load(&self, now: Instant) -> (Duration, f64) {
        let mut l = lock(&self.inner.local);
        (l.0.estimate(), l.1.rate(now))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
