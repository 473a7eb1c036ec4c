//! The registry: each node's heartbeat row (its load, written every [`HEARTBEAT`]), the
//! view of the others read back in the same round, draining and leaving, and the overview
//! the cluster page shows.

use super::{lock, Cluster, NodeState, NodeView, HEARTBEAT};
use crate::infra::db::Db;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Cluster {
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
            heartbeat_at: crate::infra::clock::now_ms(),
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
}

fn ppm(x: f64) -> i64 {
    (x.clamp(0.0, 1000.0) * 1_000_000.0) as i64
}

/// The columns of a `nodes` row that [`view_of`] reads.
const NODE_COLUMNS: &str =
    "id, url, state, started_at, heartbeat_at, in_flight, latency_us, error_ppm, cpu_ppm, pool_ppm, flows_total";

fn view_of(r: &sqlx::any::AnyRow) -> Result<NodeView, sqlx::Error> {
    let ratio = |v: i64| v as f64 / 1_000_000.0;
    Ok(NodeView {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        state: NodeState::parse(&r.try_get::<String, _>("state")?).unwrap_or(NodeState::Starting),
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
    let now = crate::infra::clock::now_ms();
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

/// The process's CPU use since the last sample, as a share of the machine's cores, from
/// `/proc/self/stat` (Linux; 0 elsewhere).
#[derive(Default)]
pub(super) struct CpuSampler {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_from_proc() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(CpuSampler::ticks().is_some());
        }
    }
}
