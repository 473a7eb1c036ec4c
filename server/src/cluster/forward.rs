//! Running a flow: here, or on the peer that selection picks, over a signed internal call
//! whose answer is believed only as far as the shared database bears it out.

use super::{internal, lock, select, Cluster, NodeState, NodeView};
use crate::ids::OrderId;
use crate::payments::{Attempt, PayWay, PaymentError, StartPayment};
use async_trait::async_trait;
use select::Load;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

impl Cluster {
    /// Runs a flow on this node, counting it in this node's load.
    pub async fn run_local(
        &self,
        order_id: &OrderId,
        way: &PayWay,
    ) -> Result<Attempt, PaymentError> {
        // Counted until this returns or is dropped (a client that hangs up mid-flow).
        let _in_flight = Counted::enter(&self.inner.in_flight);
        self.inner.flows_total.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        crate::infra::failpoints::pause("flow.start", order_id.as_str()).await;
        let result = self.inner.payments.start_with(order_id, way).await;
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
    /// shown: its code, for this order, wallet and method. An answer the database does not bear out
    /// is treated like no answer (the flow runs elsewhere).
    async fn believed(
        &self,
        answer: Result<Attempt, PaymentError>,
        order_id: &OrderId,
        way: &PayWay,
    ) -> Forwarded {
        let claimed = match answer {
            Ok(a) => a,
            other => return Forwarded::Done(Box::new(other)),
        };
        match self.inner.payments.attempt(&claimed.out_trade_no).await {
            Ok(Some(stored))
                if stored.order_id == *order_id
                    && stored.channel == way.channel
                    && stored.method == way.method =>
            {
                if stored.code_url != claimed.code_url {
                    tracing::warn!(order = %order_id, "a forwarded flow's answer named another code than the database; the stored one is shown");
                }
                Forwarded::Done(Box::new(Ok(stored)))
            }
            Ok(_) => {
                tracing::warn!(order = %order_id, out_trade_no = %claimed.out_trade_no, "a forwarded flow's answer names no attempt of this order: refused");
                Forwarded::Unreachable("an answer the shared database does not bear out".into())
            }
            Err(e) => Forwarded::Unreachable(format!("cannot check the answer: {e}")),
        }
    }

    async fn forward(&self, peer: &NodeView, order_id: &OrderId, way: &PayWay) -> Forwarded {
        let Some(secret) = &self.inner.settings.secret else {
            return Forwarded::Unreachable("no cluster secret".into());
        };
        let outstanding = Outstanding::enter(self, &peer.id);
        let started = Instant::now();
        let body = serde_json::to_string(&internal::StartRequest {
            order_id: order_id.as_str().to_string(),
            way: way.clone(),
        })
        .unwrap_or_default();
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
                Ok(answer) => self.believed(answer.into_result(), order_id, way).await,
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
    Done(Box<Result<Attempt, PaymentError>>),
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

/// The payment-flow entry point of a node: selection in front of [`Payments`].
#[derive(Clone)]
pub struct ClusterStart {
    pub cluster: Cluster,
}

#[async_trait]
impl StartPayment for ClusterStart {
    async fn start_with(&self, order_id: &OrderId, way: &PayWay) -> Result<Attempt, PaymentError> {
        let cluster = &self.cluster;
        let candidates = cluster.candidates();
        if candidates.len() == 1 {
            ::metrics::counter!("cluster_flows_total", "via" => "local").increment(1);
            return cluster.run_local(order_id, way).await;
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
                    return cluster.run_local(order_id, way).await;
                }
                Some(peer) => match cluster.forward(peer, order_id, way).await {
                    Forwarded::Done(result) => {
                        ::metrics::counter!("cluster_flows_total", "via" => via).increment(1);
                        return *result;
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
        cluster.run_local(order_id, way).await
    }
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
}
