//! Fault injection: what a sandbox trade (or the whole sandbox) does wrong on purpose, so
//! ScanPay's callback processing and risk controls can be seen to hold. Written as a list,
//! e.g. `drop` or `duplicates=5,out_of_order` or `latency_ms=200,error_pct=10`.

use std::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Send no notification at all (only an active query finds the payment).
    pub drop: bool,
    /// Send this many extra copies of the notification, all due at once (so concurrently).
    pub duplicates: u32,
    /// Wait this long before the first notification.
    pub delay_ms: u64,
    /// After the paid notification, send a stale unpaid one (WAIT_BUYER_PAY / NOTPAY).
    pub out_of_order: bool,
    /// Sign notifications wrongly.
    pub bad_signature: bool,
    /// Notify one fen more than was paid (properly signed).
    pub wrong_amount: bool,
    /// WeChat: a notification timestamp 10 minutes old.
    pub stale_timestamp: bool,
    /// API side: added latency on every gateway call.
    pub latency_ms: u64,
    /// API side: the share (percent) of calls answered 500.
    pub error_pct: u32,
    /// API side: the share (percent) of calls that hang for a minute.
    pub timeout_pct: u32,
    /// Refunds: the first answer to each refund is "unknown" (Alipay `20000` /
    /// `ACQ.SYSTEM_ERROR`, WeChat `500 SYSTEM_ERROR`) although the refund was made.
    pub refund_unknown: bool,
    /// Refunds: accepted but not done yet (Alipay `fund_change=N`, WeChat `PROCESSING`); the
    /// refund query (and WeChat's refund notification) says `SUCCESS` a minute later, scaled.
    pub refund_slow: bool,
    /// Refunds, WeChat: the refund goes `ABNORMAL` (the buyer's card is gone) until the
    /// merchant applies for the abnormal refund.
    pub refund_abnormal: bool,
    /// Refunds: the first answer to each refund is cut off half-way (the refund was made).
    pub refund_cut: bool,
    /// Refunds: refused for good (Alipay `ACQ.TRADE_NOT_ALLOW_REFUND`, WeChat `NOT_ENOUGH`).
    pub refund_refused: bool,
}

/// The most extra copies of one notification the sandbox sends.
pub const MAX_DUPLICATES: u32 = 100;
/// The longest wait the sandbox adds (before a notification, or to a gateway call).
pub const MAX_WAIT_MS: u64 = 10 * 60 * 1000;

impl Faults {
    /// These faults within the sandbox's limits, whoever asked for them (a wallet form is
    /// anyone's to post).
    pub fn capped(mut self) -> Faults {
        self.duplicates = self.duplicates.min(MAX_DUPLICATES);
        self.delay_ms = self.delay_ms.min(MAX_WAIT_MS);
        self.latency_ms = self.latency_ms.min(MAX_WAIT_MS);
        self
    }

    pub fn parse(s: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            };
            let number = |v: Option<&str>| -> Result<u64, String> {
                v.ok_or_else(|| format!("{name} needs a value ({name}=N)"))?
                    .parse()
                    .map_err(|_| format!("{name}: not a whole number"))
            };
            let pct = |v: Option<&str>| -> Result<u32, String> {
                let n = number(v)?;
                (n <= 100)
                    .then_some(n as u32)
                    .ok_or_else(|| format!("{name}: a percentage from 0 to 100"))
            };
            match name {
                "drop" => f.drop = true,
                "duplicates" => f.duplicates = number(value)?.min(u64::from(MAX_DUPLICATES)) as u32,
                "delay_ms" => f.delay_ms = number(value)?,
                "out_of_order" => f.out_of_order = true,
                "bad_signature" => f.bad_signature = true,
                "wrong_amount" => f.wrong_amount = true,
                "stale_timestamp" => f.stale_timestamp = true,
                "latency_ms" => f.latency_ms = number(value)?,
                "error_pct" => f.error_pct = pct(value)?,
                "timeout_pct" => f.timeout_pct = pct(value)?,
                "refund_unknown" => f.refund_unknown = true,
                "refund_slow" => f.refund_slow = true,
                "refund_abnormal" => f.refund_abnormal = true,
                "refund_cut" => f.refund_cut = true,
                "refund_refused" => f.refund_refused = true,
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(f.capped())
    }

    /// These faults and `other`'s together.
    pub fn merged(mut self, other: &Faults) -> Faults {
        self.drop |= other.drop;
        self.duplicates = self.duplicates.max(other.duplicates);
        self.delay_ms = self.delay_ms.max(other.delay_ms);
        self.out_of_order |= other.out_of_order;
        self.bad_signature |= other.bad_signature;
        self.wrong_amount |= other.wrong_amount;
        self.stale_timestamp |= other.stale_timestamp;
        self.latency_ms = self.latency_ms.max(other.latency_ms);
        self.error_pct = self.error_pct.max(other.error_pct);
        self.timeout_pct = self.timeout_pct.max(other.timeout_pct);
        self.refund_unknown |= other.refund_unknown;
        self.refund_slow |= other.refund_slow;
        self.refund_abnormal |= other.refund_abnormal;
        self.refund_cut |= other.refund_cut;
        self.refund_refused |= other.refund_refused;
        self
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let flags = [
            (self.drop, "drop"),
            (self.out_of_order, "out_of_order"),
            (self.bad_signature, "bad_signature"),
            (self.wrong_amount, "wrong_amount"),
            (self.stale_timestamp, "stale_timestamp"),
            (self.refund_unknown, "refund_unknown"),
            (self.refund_slow, "refund_slow"),
            (self.refund_abnormal, "refund_abnormal"),
            (self.refund_cut, "refund_cut"),
            (self.refund_refused, "refund_refused"),
        ];
        parts.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| n.to_string()),
        );
        for (n, v) in [
            ("duplicates", self.duplicates as u64),
            ("delay_ms", self.delay_ms),
            ("latency_ms", self.latency_ms),
        ] {
            if v > 0 {
                parts.push(format!("{n}={v}"));
            }
        }
        for (n, v) in [
            ("error_pct", self.error_pct),
            ("timeout_pct", self.timeout_pct),
        ] {
            if v > 0 {
                parts.push(format!("{n}={v}"));
            }
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_print_and_merge() {
        let f = Faults::parse(
            "drop, duplicates=3,out_of_order,latency_ms=20,error_pct=10,refund_unknown,refund_slow",
        )
        .expect("valid");
        assert!(f.drop && f.out_of_order && f.refund_unknown && f.refund_slow);
        assert!(!f.refund_abnormal && !f.refund_cut && !f.refund_refused);
        assert_eq!((f.duplicates, f.latency_ms, f.error_pct), (3, 20, 10));
        assert_eq!(Faults::parse(&f.to_string()).expect("round trip"), f);
        assert!(Faults::parse("explode").is_err());
        assert!(Faults::parse("error_pct=101").is_err());
        assert!(Faults::parse("duplicates").is_err());
        let m = Faults::parse("wrong_amount")
            .expect("valid")
            .merged(&Faults::parse("duplicates=2").expect("valid"));
        assert!(m.wrong_amount);
        assert_eq!(m.duplicates, 2);
        assert_eq!(Faults::parse("").expect("empty"), Faults::default());
    }
}
