//! The one clock. Stored times are Unix milliseconds (`i64`), read with [`now_ms`]; what
//! must be checked at a chosen time (WeChat's signed-timestamp window, `scanpay notify
//! verify --at`) takes a [`Clock`], which a test or a tool pins with [`Fixed`].

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time, injectable.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Whole seconds since the Unix epoch (what providers sign).
    fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The process clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock stopped at a Unix millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed(pub i64);

impl Fixed {
    /// Stopped at a Unix second.
    pub fn at_unix(secs: i64) -> Fixed {
        Fixed(secs.saturating_mul(1000))
    }
}

impl Clock for Fixed {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_reads_its_second_and_the_system_clock_moves_on() {
        let at = Fixed::at_unix(1_700_000_000);
        assert_eq!(
            (at.now_unix(), at.now_ms()),
            (1_700_000_000, 1_700_000_000_000)
        );
        // Before 1970 a second is still the floor of the millisecond.
        assert_eq!(Fixed(-1).now_unix(), -1);
        let before = now_ms();
        let system = SystemClock.now_ms();
        assert!(
            system >= before && before > 1_700_000_000_000,
            "{before} {system}"
        );
    }
}
