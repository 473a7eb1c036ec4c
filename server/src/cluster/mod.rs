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

pub mod internal;
pub mod select;

use crate::config::Engine;
use crate::db::Db;
use crate::payments::live::LiveHub;
use crate::payments::{Attempt, PaymentError, Payments, StartPayment};
use crate::providers::Channel;
use crate::secret::Secret;
use async_trait::async_trait;
use select::{ErrorWindow, Load, PeakEwma};
use serde::{Deserialize, Serialize};
use sqlx::Row;
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

/// A node's state as the others see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Starting,
    Ready,
    Draining,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
        }
    }

    fn parse(s: &str) -> NodeState {
        match s {
            "ready" => NodeState::Ready,
            "draining" => NodeState::Draining,
            _ => NodeState::Starting,
        }
    }
}

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
                started_at: crate::orders::now_ms(),
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

    /// This node's own load now.
    pub fn own_view(&self) -> NodeView {
        let (latency, error_rate) = self.local_load(Instant::now());
        let pool = self.inner.db.pool();
        let max = pool.options().get_max_connections().max(1);
        let busy = pool.size().saturating_sub(pool.num_idle() as u32);
        NodeView {
            id: self.inner.settings.node_id.clone(),
            url: self.inner.settings.node_url.clone(),
            state: self.state(),
            heartbeat_at: crate::orders::now_ms(),
            started_at: self.inner.started_at,
            in_flight: self.in_flight(),
            latency,
            error_rate,
            cpu: lock(&self.inner.cpu).sample(),
            pool: f64::from(busy) / f64::from(max),
            flows_total: self.inner.flows_total.load(Ordering::Relaxed),
        }
    }

    /// Writes this node's heartbeat and reads everyone's: one round of the heartbeat task.
    pub async fn beat(&self) -> Result<(), sqlx::Error> {
        let me = self.own_view();
        sqlx::query(
            "INSERT INTO nodes (id, url, state, started_at, heartbeat_at, in_flight, latency_us, \
             error_ppm, cpu_ppm, pool_ppm, flows_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET url = $2, state = $3, started_at = $4, heartbeat_at = $5, \
             in_flight = $6, latency_us = $7, error_ppm = $8, cpu_ppm = $9, pool_ppm = $10, flows_total = $11",
        )
        .bind(&me.id)
        .bind(&me.url)
        .bind(me.state.as_str())
        .bind(me.started_at)
        .bind(me.heartbeat_at)
        .bind(me.in_flight as i64)
        .bind(me.latency.as_micros() as i64)
        .bind(ppm(me.error_rate))
        .bind(ppm(me.cpu))
        .bind(ppm(me.pool))
        .bind(me.flows_total as i64)
        .execute(self.inner.db.pool())
        .await?;
        let fresh_after = me.heartbeat_at - self.inner.settings.ttl.as_millis() as i64;
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE heartbeat_at > $1 AND id <> $2 ORDER BY id"
        ))
        .bind(fresh_after)
        .bind(&me.id)
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut peers = Vec::with_capacity(rows.len());
        for r in &rows {
            peers.push(view_of(r)?);
        }
        for n in std::iter::once(&me).chain(peers.iter()) {
            let labels = [("node", n.id.clone())];
            ::metrics::gauge!("cluster_node_in_flight", &labels).set(n.in_flight as f64);
            ::metrics::gauge!("cluster_node_latency_seconds", &labels).set(n.latency.as_secs_f64());
            ::metrics::gauge!("cluster_node_error_rate", &labels).set(n.error_rate);
            ::metrics::gauge!("cluster_node_cpu", &labels).set(n.cpu);
            ::metrics::gauge!("cluster_node_pool_saturation", &labels).set(n.pool);
            // Flows the node ran since it started: rate() of it is each node's share.
            ::metrics::gauge!("cluster_node_flows_total", &labels).set(n.flows_total as f64);
            ::metrics::gauge!("cluster_node_ready", &labels).set(if n.state == NodeState::Ready {
                1.0
            } else {
                0.0
            });
        }
        *self.inner.peers.write().unwrap_or_else(|e| e.into_inner()) = peers;
        Ok(())
    }

    /// Marks the node ready and beats every [`HEARTBEAT`] until the task is dropped.
    pub fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        if self.state() == NodeState::Starting {
            self.set_state(NodeState::Ready);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.beat().await {
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                }
            }
        })
    }

    /// Stops taking new flows (others see `draining` at once) and waits for this node's
    /// flows in flight to finish, at most `grace`.
    pub async fn drain(&self, grace: Duration) {
        self.set_state(NodeState::Draining);
        if let Err(e) = self.beat().await {
            tracing::warn!(error = %e, "could not announce draining");
        }
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(in_flight = self.in_flight(), "drained");
    }

    /// Removes this node's row (a clean exit: the others drop it at once, not after the TTL).
    pub async fn leave(&self) {
        let _ = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(&self.inner.settings.node_id)
            .execute(self.inner.db.pool())
            .await;
    }

    /// Runs a flow on this node, counting it in this node's load.
    pub async fn run_local(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Attempt, PaymentError> {
        // Counted until this returns or is dropped (a client that hangs up mid-flow).
        let _in_flight = Counted::enter(&self.inner.in_flight);
        self.inner.flows_total.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        crate::failpoints::pause("flow.start", order_id).await;
        let result = self.inner.payments.start_payment(order_id, channel).await;
        let now = Instant::now();
        {
            let mut l = lock(&self.inner.local);
            l.0.observe(now - started, now);
            l.1.record(!is_node_fault(&result), now);
        }
        result
    }

    /// The candidates of one selection: this node and the ready peers not suspected, with
    /// what is known of their load.
    fn candidates(&self) -> Vec<(Option<NodeView>, Load)> {
        let now = Instant::now();
        if !self.inner.forwarding || self.state() != NodeState::Ready {
            // One node (or no way to forward): itself, without computing anything.
            return vec![(
                None,
                Load {
                    latency: Duration::ZERO,
                    in_flight: 0,
                    error_rate: 0.0,
                },
            )];
        }
        let (latency, error_rate) = self.local_load(now);
        let mut out = vec![(
            None,
            Load {
                latency,
                in_flight: self.in_flight(),
                error_rate,
            },
        )];
        let mut observed = lock(&self.inner.observed);
        for peer in self.peers() {
            if peer.state != NodeState::Ready {
                continue;
            }
            let o = observed.entry(peer.id.clone()).or_default();
            if o.suspect_until.is_some_and(|t| t > now) {
                continue;
            }
            // Between heartbeats, our own forwards tell more than a second-old row.
            let latency = if o.latency.observed() {
                o.latency.estimate().max(peer.latency)
            } else {
                peer.latency
            };
            let error_rate = o.errors.rate(now).max(peer.error_rate);
            out.push((
                Some(peer.clone()),
                Load {
                    latency,
                    in_flight: peer.in_flight + o.outstanding,
                    error_rate,
                },
            ));
        }
        out
    }

    /// A peer's answer as far as the shared database bears it out. Answers are not signed:
    /// anyone on the node network could answer in a peer's place, and a code URL of their
    /// own would send customers' money to them. So a started attempt is read back from the
    /// database (the peer wrote it there before answering) and only what is stored there is
    /// shown: its code, for this order and wallet. An answer the database does not bear out
    /// is treated like no answer (the flow runs elsewhere).
    async fn believed(
        &self,
        answer: Result<Attempt, PaymentError>,
        order_id: &str,
        channel: Channel,
    ) -> Forwarded {
        let claimed = match answer {
            Ok(a) => a,
            other => return Forwarded::Done(other),
        };
        match self.inner.payments.attempt(&claimed.out_trade_no).await {
            Ok(Some(stored))
                if stored.order_id.as_str() == order_id && stored.channel == channel =>
            {
                if stored.code_url != claimed.code_url {
                    tracing::warn!(order = order_id, "a forwarded flow's answer named another code than the database; the stored one is shown");
                }
                Forwarded::Done(Ok(stored))
            }
            Ok(_) => {
                tracing::warn!(order = order_id, out_trade_no = %claimed.out_trade_no, "a forwarded flow's answer names no attempt of this order: refused");
                Forwarded::Unreachable("an answer the shared database does not bear out".into())
            }
            Err(e) => Forwarded::Unreachable(format!("cannot check the answer: {e}")),
        }
    }

    async fn forward(&self, peer: &NodeView, order_id: &str, channel: Channel) -> Forwarded {
        let Some(secret) = &self.inner.settings.secret else {
            return Forwarded::Unreachable("no cluster secret".into());
        };
        let outstanding = Outstanding::enter(self, &peer.id);
        let started = Instant::now();
        let body = serde_json::json!({ "order_id": order_id, "channel": channel }).to_string();
        let headers = internal::sign(
            secret.expose(),
            &self.inner.settings.node_id,
            "POST",
            internal::START_PATH,
            body.as_bytes(),
        );
        let mut request = self
            .inner
            .http
            .post(format!(
                "{}{}",
                peer.url.trim_end_matches('/'),
                internal::START_PATH
            ))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let outcome = match request.send().await {
            Err(e) => Forwarded::Unreachable(e.to_string()),
            Ok(r)
                if r.status().is_server_error() || r.status() == http::StatusCode::UNAUTHORIZED =>
            {
                Forwarded::Unreachable(format!("answered {}", r.status()))
            }
            Ok(r) => match r.json::<internal::StartAnswer>().await {
                Ok(answer) => self.believed(answer.into_result(), order_id, channel).await,
                Err(e) => Forwarded::Unreachable(format!("unreadable answer: {e}")),
            },
        };
        drop(outstanding);
        let now = Instant::now();
        let mut observed = lock(&self.inner.observed);
        let o = observed.entry(peer.id.clone()).or_default();
        match &outcome {
            Forwarded::Done(result) => {
                o.latency.observe(now - started, now);
                o.errors.record(!is_node_fault(result), now);
            }
            Forwarded::Unreachable(_) => {
                o.errors.record(false, now);
                o.suspect_until = Some(now + self.inner.settings.ttl);
            }
        }
        outcome
    }
}

/// One unit of a counter, held while a flow runs and given back when it ends or its future
/// is dropped.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn enter(counter: &'a AtomicU64) -> Counted<'a> {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A forward to `peer` counted in this node's view of it until it ends or is dropped.
struct Outstanding<'a> {
    cluster: &'a Cluster,
    peer: &'a str,
}

impl<'a> Outstanding<'a> {
    fn enter(cluster: &'a Cluster, peer: &'a str) -> Outstanding<'a> {
        lock(&cluster.inner.observed)
            .entry(peer.to_string())
            .or_default()
            .outstanding += 1;
        Outstanding { cluster, peer }
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if let Some(o) = lock(&self.cluster.inner.observed).get_mut(self.peer) {
            o.outstanding = o.outstanding.saturating_sub(1);
        }
    }
}

enum Forwarded {
    /// The node ran the flow (which may have failed for the order's own reasons).
    Done(Result<Attempt, PaymentError>),
    /// The node could not be asked: connect error, timeout, 5xx, draining.
    Unreachable(String),
}

/// Whether a flow's failure counts against the node that ran it (a provider or database
/// fault), rather than against the order (not payable, not found).
fn is_node_fault(result: &Result<Attempt, PaymentError>) -> bool {
    matches!(
        result,
        Err(PaymentError::Provider { .. } | PaymentError::Db(_) | PaymentError::Injected(_))
    )
}

fn ppm(x: f64) -> i64 {
    (x.clamp(0.0, 1000.0) * 1_000_000.0) as i64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The columns of a `nodes` row that [`view_of`] reads.
const NODE_COLUMNS: &str =
    "id, url, state, started_at, heartbeat_at, in_flight, latency_us, error_ppm, cpu_ppm, pool_ppm, flows_total";

fn view_of(r: &sqlx::any::AnyRow) -> Result<NodeView, sqlx::Error> {
    let ratio = |v: i64| v as f64 / 1_000_000.0;
    Ok(NodeView {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        state: NodeState::parse(&r.try_get::<String, _>("state")?),
        started_at: r.try_get("started_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        in_flight: r.try_get::<i64, _>("in_flight")?.max(0) as u64,
        latency: Duration::from_micros(r.try_get::<i64, _>("latency_us")?.max(0) as u64),
        error_rate: ratio(r.try_get("error_ppm")?),
        cpu: ratio(r.try_get("cpu_ppm")?),
        pool: ratio(r.try_get("pool_ppm")?),
        flows_total: r.try_get::<i64, _>("flows_total")?.max(0) as u64,
    })
}

/// All nodes with a heartbeat younger than `ttl`, and how many flows each ran in the last
/// `window` (by the node recorded on each payment attempt), for the cluster page.
pub async fn overview(
    db: &Db,
    ttl: Duration,
    window: Duration,
) -> Result<(Vec<NodeView>, HashMap<String, i64>), sqlx::Error> {
    let now = crate::orders::now_ms();
    let rows = sqlx::query(&format!(
        "SELECT {NODE_COLUMNS} FROM nodes WHERE heartbeat_at > $1 ORDER BY id"
    ))
    .bind(now - ttl.as_millis() as i64)
    .fetch_all(db.pool())
    .await?;
    let nodes = rows.iter().map(view_of).collect::<Result<Vec<_>, _>>()?;
    let shares = sqlx::query(
        "SELECT node_id, COUNT(*) AS n FROM payment_attempts WHERE created_at >= $1 AND node_id IS NOT NULL \
         GROUP BY node_id",
    )
    .bind(now - window.as_millis() as i64)
    .fetch_all(db.pool())
    .await?;
    let mut by_node = HashMap::new();
    for r in &shares {
        by_node.insert(
            r.try_get::<String, _>("node_id")?,
            r.try_get::<i64, _>("n")?,
        );
    }
    Ok((nodes, by_node))
}

/// The payment-flow entry point of a node: selection in front of [`Payments`].
#[derive(Clone)]
pub struct ClusterStart {
    pub cluster: Cluster,
}

#[async_trait]
impl StartPayment for ClusterStart {
    async fn start_payment(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Attempt, PaymentError> {
        let cluster = &self.cluster;
        let candidates = cluster.candidates();
        if candidates.len() == 1 {
            ::metrics::counter!("cluster_flows_total", "via" => "local").increment(1);
            return cluster.run_local(order_id, channel).await;
        }
        let loads: Vec<Load> = candidates.iter().map(|(_, l)| *l).collect();
        let picks = {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            select::two_choices(&loads, |n| rng.gen_range(0..n))
        };
        for (n, index) in picks.into_iter().enumerate() {
            let via = if n == 0 { "chosen" } else { "second_choice" };
            match &candidates[index].0 {
                None => {
                    ::metrics::counter!("cluster_flows_total", "via" => "local").increment(1);
                    return cluster.run_local(order_id, channel).await;
                }
                Some(peer) => match cluster.forward(peer, order_id, channel).await {
                    Forwarded::Done(result) => {
                        ::metrics::counter!("cluster_flows_total", "via" => via).increment(1);
                        return result;
                    }
                    Forwarded::Unreachable(why) => {
                        tracing::warn!(node = %peer.id, %why, "forwarding failed; node suspected");
                        ::metrics::counter!("cluster_forward_failures_total", "node" => peer.id.clone())
                            .increment(1);
                    }
                },
            }
        }
        ::metrics::counter!("cluster_flows_total", "via" => "fallback_local").increment(1);
        cluster.run_local(order_id, channel).await
    }
}

/// The process's CPU use since the last sample, as a share of the machine's cores, from
/// `/proc/self/stat` (Linux; 0 elsewhere).
#[derive(Default)]
struct CpuSampler {
    last: Option<(Instant, u64)>,
    value: f64,
}

impl CpuSampler {
    fn ticks() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let Some(ticks) = Self::ticks() else {
            return 0.0;
        };
        if let Some((at, before)) = self.last {
            let wall = now.duration_since(at).as_secs_f64();
            if wall >= 0.5 {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                // Linux reports in USER_HZ, 100 per second on every mainstream build.
                self.value = ((ticks - before) as f64 / 100.0 / wall / cores).clamp(0.0, 1.0);
                self.last = Some((now, ticks));
            }
        } else {
            self.last = Some((now, ticks));
        }
        self.value
    }
}

/// Carries live pings between nodes: every change this node publishes is sent with
/// `pg_notify`, and changes other nodes send are published to this node's pages. A lost
/// listener connection is re-opened, and every page on this node is told to re-read, since
/// messages may have been missed meanwhile. PostgreSQL only.
pub fn spawn_live_bridge(
    database_url: String,
    db: Db,
    hub: LiveHub,
    node_id: String,
    mut outgoing: tokio::sync::mpsc::UnboundedReceiver<crate::payments::live::OrderChange>,
) -> Vec<tokio::task::JoinHandle<()>> {
    #[derive(Serialize, Deserialize)]
    struct Wire {
        n: String,
        m: String,
        o: String,
        s: app::status::OrderStatus,
    }
    let sender = {
        let node_id = node_id.clone();
        tokio::spawn(async move {
            while let Some(change) = outgoing.recv().await {
                let payload = serde_json::to_string(&Wire {
                    n: node_id.clone(),
                    m: change.merchant_id.to_string(),
                    o: change.order_id.to_string(),
                    s: change.status,
                })
                .unwrap_or_default();
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(LIVE_CHANNEL)
                    .bind(payload)
                    .execute(db.pool())
                    .await
                {
                    tracing::warn!(error = %e, "live ping not sent to the other nodes");
                }
            }
        })
    };
    let listener = tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(LIVE_CHANNEL).await {
                tracing::warn!(error = %e, "live listener cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // After a lost connection, anything sent meanwhile is unknown: every page re-reads.
            // (The first connection is made at start-up, before any page could miss a thing.)
            if !first {
                hub.resync_all();
            }
            first = false;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Ok(w) = serde_json::from_str::<Wire>(n.payload()) {
                            if w.n != node_id {
                                hub.publish_local(&w.m, &w.o, w.s);
                            }
                        }
                    }
                    // The connection was lost and re-opened: messages may be lost.
                    Ok(None) => hub.resync_all(),
                    Err(e) => {
                        tracing::warn!(error = %e, "live listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    vec![sender, listener]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flow_dropped_midway_is_no_longer_counted_in_flight() {
        let in_flight = AtomicU64::new(0);
        let flow = async {
            let _counted = Counted::enter(&in_flight);
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        // The client hangs up: the flow's future is dropped before it finishes.
        let cut = tokio::time::timeout(Duration::from_millis(10), flow).await;
        assert!(cut.is_err(), "the flow was cut short");
        assert_eq!(in_flight.load(Ordering::Acquire), 0);
        {
            let _one = Counted::enter(&in_flight);
            let _two = Counted::enter(&in_flight);
            assert_eq!(in_flight.load(Ordering::Acquire), 2);
        }
        assert_eq!(in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn cpu_ticks_are_read_from_proc() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(CpuSampler::ticks().is_some());
        }
    }
}
