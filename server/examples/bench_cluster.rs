//! A simulation (not a test) of server selection: three nodes of unequal speed behind three
//! entry nodes, under Poisson arrivals at a steady load, with the selection policy of cluster
//! mode (`server::cluster::select`: power of two choices over peak-EWMA cost, from a heartbeat
//! view a second old plus each entry node's own observations) against round-robin and random.
//! Virtual time, so the figures do not depend on the machine; the same seed gives the same
//! figures. Prints p50/p99 flow latency and the share of flows per node.
//!
//! `cargo run --release -p server --example bench_cluster` (part of `make bench`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::cluster::select::{two_choices, ErrorWindow, Load, PeakEwma};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// Mean service time of each node (ms): the third is three times slower.
const SERVICE_MS: [f64; 3] = [20.0, 20.0, 60.0];
/// Flows a node works on at once (its worker slots); more wait in its queue.
const SLOTS: usize = 4;
const FLOWS: usize = 30_000;
/// Entry nodes that choose (each with its own observations).
const CHOOSERS: usize = 3;
const HEARTBEAT_MS: f64 = 1_000.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    RoundRobin,
    Random,
    P2cPeakEwma,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::Random => "random",
            Policy::P2cPeakEwma => "P2C + peak EWMA (ScanPay)",
        }
    }
}

#[derive(Default)]
struct Node {
    busy: usize,
    queue: VecDeque<(u64, usize)>,
    ewma: PeakEwma,
    errors: ErrorWindow,
    served: usize,
}

/// What one entry node knows: the last heartbeat of each node and its own observations.
#[derive(Clone, Default)]
struct View {
    heartbeat: Vec<(u64, Duration)>,
    outstanding: Vec<u64>,
    observed: Vec<PeakEwma>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival,
    Done {
        node: usize,
        chooser: usize,
        arrived: u64,
        started: u64,
    },
    Heartbeat,
}

fn run(policy: Policy, load: f64, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = Instant::now();
    let at = |ns: u64| base + Duration::from_nanos(ns);
    let capacity_per_ms: f64 = SERVICE_MS.iter().map(|m| SLOTS as f64 / m).sum();
    let mean_gap_ms = 1.0 / (capacity_per_ms * load);
    let mut nodes: Vec<Node> = (0..SERVICE_MS.len()).map(|_| Node::default()).collect();
    let mut views = vec![
        View {
            heartbeat: vec![(0, Duration::from_millis(50)); nodes.len()],
            outstanding: vec![0; nodes.len()],
            observed: vec![PeakEwma::default(); nodes.len()],
        };
        CHOOSERS
    ];
    let mut events: BinaryHeap<Reverse<(u64, Event)>> = BinaryHeap::new();
    let ms = |x: f64| (x * 1e6) as u64;
    let exp = |rng: &mut StdRng, mean: f64| -mean * (1.0 - rng.gen::<f64>()).ln();
    events.push(Reverse((0, Event::Arrival)));
    events.push(Reverse((ms(HEARTBEAT_MS), Event::Heartbeat)));
    let (mut arrived, mut rr) = (0usize, 0usize);
    let mut latencies = Vec::with_capacity(FLOWS);
    let start = |nodes: &mut Vec<Node>,
                 events: &mut BinaryHeap<Reverse<(u64, Event)>>,
                 rng: &mut StdRng,
                 n: usize,
                 chooser: usize,
                 arrived_at: u64,
                 now: u64| {
        nodes[n].busy += 1;
        let service = exp(rng, SERVICE_MS[n]);
        events.push(Reverse((
            now + ms(service),
            Event::Done {
                node: n,
                chooser,
                arrived: arrived_at,
                started: now,
            },
        )));
    };
    while let Some(Reverse((now, event))) = events.pop() {
        match event {
            Event::Heartbeat => {
                let snapshot: Vec<(u64, Duration)> = nodes
                    .iter()
                    .map(|n| ((n.busy + n.queue.len()) as u64, n.ewma.estimate()))
                    .collect();
                for v in &mut views {
                    v.heartbeat = snapshot.clone();
                }
                if latencies.len() < FLOWS {
                    events.push(Reverse((now + ms(HEARTBEAT_MS), Event::Heartbeat)));
                }
            }
            Event::Arrival => {
                let chooser = arrived % CHOOSERS;
                let target = match policy {
                    Policy::RoundRobin => {
                        rr += 1;
                        rr % nodes.len()
                    }
                    Policy::Random => rng.gen_range(0..nodes.len()),
                    Policy::P2cPeakEwma => {
                        let v = &views[chooser];
                        let loads: Vec<Load> = (0..nodes.len())
                            .map(|i| Load {
                                latency: if v.observed[i].observed() {
                                    v.observed[i].estimate().max(v.heartbeat[i].1)
                                } else {
                                    v.heartbeat[i].1
                                },
                                in_flight: v.heartbeat[i].0 + v.outstanding[i],
                                error_rate: 0.0,
                            })
                            .collect();
                        two_choices(&loads, |n| rng.gen_range(0..n))[0]
                    }
                };
                views[chooser].outstanding[target] += 1;
                if nodes[target].busy < SLOTS {
                    start(&mut nodes, &mut events, &mut rng, target, chooser, now, now);
                } else {
                    nodes[target].queue.push_back((now, chooser));
                }
                arrived += 1;
                if arrived < FLOWS {
                    events.push(Reverse((
                        now + ms(exp(&mut rng, mean_gap_ms)),
                        Event::Arrival,
                    )));
                }
            }
            Event::Done {
                node,
                chooser,
                arrived: arrived_at,
                started,
            } => {
                let total = Duration::from_nanos(now - arrived_at);
                latencies.push(total.as_secs_f64() * 1000.0);
                let n = &mut nodes[node];
                n.busy -= 1;
                n.served += 1;
                // The node's own EWMA is of its service (what its heartbeat reports); the
                // chooser's of the whole round trip it saw.
                n.ewma.observe(Duration::from_nanos(now - started), at(now));
                n.errors.record(true, at(now));
                let v = &mut views[chooser];
                v.outstanding[node] = v.outstanding[node].saturating_sub(1);
                v.observed[node].observe(total, at(now));
                if let Some((queued_at, queued_chooser)) = nodes[node].queue.pop_front() {
                    start(
                        &mut nodes,
                        &mut events,
                        &mut rng,
                        node,
                        queued_chooser,
                        queued_at,
                        now,
                    );
                }
            }
        }
    }
    (latencies, nodes.iter().map(|n| n.served).collect())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    println!(
        "Simulated cluster: nodes with mean service {SERVICE_MS:?} ms, {SLOTS} slots each, \
         {CHOOSERS} entry nodes, heartbeat every {HEARTBEAT_MS} ms, {FLOWS} flows, Poisson arrivals."
    );
    println!();
    println!("| load | policy | p50 ms | p99 ms | share A / B / C (slow) |");
    println!("|---|---|---|---|---|");
    for load in [0.3, 0.5, 0.7, 0.85] {
        for policy in [Policy::RoundRobin, Policy::Random, Policy::P2cPeakEwma] {
            let (mut lat, served) = run(policy, load, 7);
            lat.sort_by(|a, b| a.total_cmp(b));
            let total: usize = served.iter().sum();
            let share: Vec<String> = served
                .iter()
                .map(|s| format!("{:.0}%", 100.0 * *s as f64 / total as f64))
                .collect();
            println!(
                "| {:.0}% | {} | {:.1} | {:.1} | {} |",
                load * 100.0,
                policy.name(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                share.join(" / ")
            );
        }
    }
}
