//! Server selection's arithmetic, free of I/O so the simulation benchmark runs the very same
//! code: a peak-EWMA latency estimate, a short error window, the cost of a node, and the
//! power-of-two-choices pick.
//!
//! - **Peak EWMA** (Finagle's `PeakEwma`, tower's `tower::load::PeakEwma`): a new sample above
//!   the estimate replaces it at once (a node that turns slow is seen slow at once); below it,
//!   the estimate decays towards the samples with a time constant ([`DECAY`]), so a node that
//!   recovers is trusted again over seconds, not instantly.
//! - **Cost** = latency estimate × (requests in flight + 1) × (1 + [`ERROR_PENALTY`] × error
//!   rate): the expected wait of one more request, with failures made expensive.
//! - **Power of two choices** (Mitzenmacher; Envoy's least-request balancer, Finagle's P2C):
//!   two distinct candidates at random, the cheaper wins. Exponentially better than random,
//!   without the herding of "always the least loaded" when many choosers share stale load.

use std::time::{Duration, Instant};

/// How fast the latency estimate forgets a past peak.
pub const DECAY: Duration = Duration::from_secs(10);
/// The estimate of a node never observed: optimistic, so new nodes are tried.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);
/// How much a node's error rate inflates its cost (an erroring node at 10% costs 2×).
pub const ERROR_PENALTY: f64 = 10.0;
/// The error rate is taken over this window.
pub const ERROR_WINDOW: Duration = Duration::from_secs(10);

/// A peak-sensitive exponentially weighted moving average of latency.
#[derive(Clone, Debug)]
pub struct PeakEwma {
    estimate_ns: f64,
    at: Option<Instant>,
}

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma {
            estimate_ns: DEFAULT_LATENCY.as_nanos() as f64,
            at: None,
        }
    }
}

impl PeakEwma {
    /// Adds a sample taken at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        match self.at {
            None => self.estimate_ns = rtt,
            Some(_) if rtt > self.estimate_ns => self.estimate_ns = rtt,
            Some(at) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let w = (-elapsed / DECAY.as_secs_f64()).exp();
                self.estimate_ns = self.estimate_ns * w + rtt * (1.0 - w);
            }
        }
        self.at = Some(now);
    }

    pub fn estimate(&self) -> Duration {
        Duration::from_nanos(self.estimate_ns.max(0.0) as u64)
    }

    /// Whether it has seen a sample.
    pub fn observed(&self) -> bool {
        self.at.is_some()
    }
}

/// Outcomes over the last [`ERROR_WINDOW`].
#[derive(Clone, Debug, Default)]
pub struct ErrorWindow {
    outcomes: std::collections::VecDeque<(Instant, bool)>,
}

impl ErrorWindow {
    pub fn record(&mut self, ok: bool, now: Instant) {
        self.outcomes.push_back((now, ok));
        self.trim(now);
    }

    fn trim(&mut self, now: Instant) {
        while self
            .outcomes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > ERROR_WINDOW)
        {
            self.outcomes.pop_front();
        }
        // Bounded whatever the rate.
        while self.outcomes.len() > 10_000 {
            self.outcomes.pop_front();
        }
    }

    /// The share of failures in the window (0 when empty).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.trim(now);
        if self.outcomes.is_empty() {
            return 0.0;
        }
        let failed = self.outcomes.iter().filter(|(_, ok)| !ok).count();
        failed as f64 / self.outcomes.len() as f64
    }
}

/// What selection knows of a candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    pub latency: Duration,
    pub in_flight: u64,
    pub error_rate: f64,
}

/// The expected cost of sending one more flow to a node.
pub fn cost(load: &Load) -> f64 {
    let latency = load.latency.max(Duration::from_micros(100)).as_secs_f64();
    latency
        * (load.in_flight as f64 + 1.0)
        * (1.0 + ERROR_PENALTY * load.error_rate.clamp(0.0, 1.0))
}

/// Power of two choices over `loads`: the indices of two distinct random candidates, cheaper
/// first (one index when there is one candidate, none when there are none). `random(n)` gives
/// a uniform integer below `n`.
pub fn two_choices(loads: &[Load], mut random: impl FnMut(usize) -> usize) -> Vec<usize> {
    match loads.len() {
        0 => vec![],
        1 => vec![0],
        n => {
            let a = random(n);
            let mut b = random(n - 1);
            if b >= a {
                b += 1;
            }
            if cost(&loads[b]) < cost(&loads[a]) {
                vec![b, a]
            } else {
                vec![a, b]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_is_taken_at_once_and_forgotten_slowly() {
        let t0 = Instant::now();
        let mut e = PeakEwma::default();
        e.observe(Duration::from_millis(10), t0);
        assert_eq!(e.estimate(), Duration::from_millis(10));
        e.observe(Duration::from_millis(200), t0 + Duration::from_millis(1));
        assert_eq!(
            e.estimate(),
            Duration::from_millis(200),
            "a peak counts at once"
        );
        e.observe(Duration::from_millis(10), t0 + Duration::from_secs(1));
        let one_second = e.estimate();
        assert!(one_second > Duration::from_millis(180), "{one_second:?}");
        e.observe(Duration::from_millis(10), t0 + Duration::from_secs(60));
        assert!(
            e.estimate() < Duration::from_millis(12),
            "{:?}",
            e.estimate()
        );
    }

    #[test]
    fn errors_count_within_the_window_only() {
        let t0 = Instant::now();
        let mut w = ErrorWindow::default();
        w.record(false, t0);
        w.record(true, t0);
        assert_eq!(w.rate(t0), 0.5);
        assert_eq!(w.rate(t0 + ERROR_WINDOW + Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn the_cheaper_of_two_distinct_candidates_comes_first() {
        let fast = Load {
            latency: Duration::from_millis(10),
            in_flight: 0,
            error_rate: 0.0,
        };
        let busy = Load {
            in_flight: 9,
            ..fast
        };
        let failing = Load {
            error_rate: 0.5,
            ..fast
        };
        assert!(cost(&busy) > cost(&fast) && cost(&failing) > cost(&fast));
        let loads = [busy, fast];
        // Every pair of random draws gives two distinct indices, the fast one first.
        for (a, b) in [(0, 0), (1, 0)] {
            let mut draws = [a, b].into_iter();
            assert_eq!(
                two_choices(&loads, |_| draws.next().unwrap_or(0)),
                vec![1, 0]
            );
        }
        assert_eq!(two_choices(&loads[..1], |_| 0), vec![0]);
        assert!(two_choices(&[], |_| 0).is_empty());
    }
}
