//! Fault points: named places on the payment path where a test makes ScanPay fail on purpose,
//! to prove that what a crash or a database fault leaves behind is recovered by the provider's
//! redelivery. Unarmed (always, in normal operation) a point costs one atomic load.
//!
//! Points: `record_payment.before_commit` (inside the paying transaction, before `COMMIT`),
//! `notify.before_reply` (after processing, before the provider hears the answer),
//! `refund.after_save` (a refund saved, the request going no further) and
//! `refund.ask_provider` (the provider unreachable for a refund). Each is hit with a key (the
//! trade number, or the order id for refunds), so an in-process test can arm a point for its
//! own order only. Actions: `abort` (the process dies as in a crash) or `error` (a transient
//! fault: the provider is asked to send again), optionally for the first N hits (`error*1`).
//!
//! A whole process can be armed at start-up with `SCANPAY_FAILPOINTS`, e.g.
//! `notify.before_reply=abort` (any key); `scanpay serve` logs a warning when it is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `std::process::abort()`: no destructor, no reply, no commit.
    Abort,
    /// The caller returns [`Injected`], which it treats as a transient fault.
    Error,
    /// The caller waits this many milliseconds (at [`pause`] points): a slow node.
    Delay(u64),
}

#[derive(Debug)]
struct Armed {
    point: String,
    key: Option<String>,
    action: Action,
    /// How many more hits fire; `None`: every hit.
    remaining: Option<u32>,
}

static ANY: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

/// The error an `error` fault point returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected fault at {0}")]
pub struct Injected(pub String);

/// Arms `point` for hits with `key` (any key when `None`), for `times` hits (every hit when
/// `None`).
pub fn arm(point: &str, key: Option<&str>, action: Action, times: Option<u32>) {
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    armed.push(Armed {
        point: point.to_string(),
        key: key.map(str::to_string),
        action,
        remaining: times,
    });
    ANY.store(true, Ordering::Release);
}

/// Arms points from a specification such as `notify.before_reply=abort,x=error*2`.
pub fn arm_from_spec(spec: &str) -> Result<usize, String> {
    let mut count = 0;
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (point, what) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected point=abort or point=error[*N]"))?;
        let (action, times) = match what.split_once('*') {
            Some((a, n)) => (
                a,
                Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("{item:?}: {n:?} is not a count"))?,
                ),
            ),
            None => (what, None),
        };
        let action = match action {
            "abort" => Action::Abort,
            "error" => Action::Error,
            other => match other.strip_prefix("delay:").map(str::parse::<u64>) {
                Some(Ok(ms)) => Action::Delay(ms),
                _ => return Err(format!("{item:?}: unknown action {other:?}")),
            },
        };
        arm(point.trim(), None, action, times);
        count += 1;
    }
    Ok(count)
}

/// Passes through `point` with `key`: nothing happens unless a matching point is armed.
pub fn hit(point: &str, key: &str) -> Result<(), Injected> {
    match fired(point, key) {
        None | Some(Action::Delay(_)) => Ok(()),
        Some(Action::Abort) => std::process::abort(),
        Some(Action::Error) => Err(Injected(point.to_string())),
    }
}

/// A point where an armed `delay:<ms>` makes the caller wait (points: `flow.start`, before a
/// node runs a payment flow).
pub async fn pause(point: &str, key: &str) {
    if let Some(Action::Delay(ms)) = fired(point, key) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

fn fired(point: &str, key: &str) -> Option<Action> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    let action = {
        let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
        let found = armed.iter_mut().find(|a| {
            a.point == point && a.key.as_deref().is_none_or(|k| k == key) && a.remaining != Some(0)
        });
        match found {
            None => return None,
            Some(a) => {
                if let Some(n) = a.remaining.as_mut() {
                    *n -= 1;
                }
                a.action
            }
        }
    };
    if !matches!(action, Action::Delay(_)) {
        tracing::warn!(point, key, ?action, "fault point fired");
    }
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fires_for_its_key_and_count_only() {
        assert_eq!(hit("test.point_a", "k1"), Ok(()));
        arm("test.point_a", Some("k1"), Action::Error, Some(2));
        assert_eq!(hit("test.point_a", "k2"), Ok(()), "another key");
        assert_eq!(hit("test.point_b", "k1"), Ok(()), "another point");
        assert!(hit("test.point_a", "k1").is_err());
        assert!(hit("test.point_a", "k1").is_err());
        assert_eq!(hit("test.point_a", "k1"), Ok(()), "spent after two hits");
    }

    #[test]
    fn specifications_parse_or_say_why_not() {
        assert_eq!(arm_from_spec("test.spec_a=error*1"), Ok(1));
        assert!(hit("test.spec_a", "any").is_err());
        assert_eq!(hit("test.spec_a", "any"), Ok(()));
        assert!(arm_from_spec("nonsense").is_err());
        assert!(arm_from_spec("p=explode").is_err());
        assert!(arm_from_spec("p=error*x").is_err());
        assert_eq!(arm_from_spec("test.spec_b=delay:5"), Ok(1));
        assert_eq!(fired("test.spec_b", "any"), Some(Action::Delay(5)));
        assert_eq!(hit("test.spec_b", "any"), Ok(()), "a delay is not an error");
        assert!(arm_from_spec("p=delay:soon").is_err());
    }
}
