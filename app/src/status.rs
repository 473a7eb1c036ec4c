//! The order state machine. Status only moves forward:
//!
//! ```text
//! created ──► pending ──► paid ──► partially_refunded ──► refunded
//!    │           │          └───────────────────────────────▲
//!    └───────────┴──► expired | closed ──► paid (late: the money arrived anyway)
//! ```
//! A payment that lands after expiry or close is never lost: the order becomes paid with its
//! `late` flag raised, for the merchant to see (and refund if they wish).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Created,
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Expired,
    Closed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Created,
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
        OrderStatus::Expired,
        OrderStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Expired => "expired",
            OrderStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The statuses an order may move to `self` from.
    pub fn predecessors(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Created => &[],
            Pending => &[Created],
            Paid => &[Pending, Expired, Closed],
            PartiallyRefunded => &[Paid],
            Refunded => &[Paid, PartiallyRefunded],
            Expired => &[Created, Pending],
            Closed => &[Created, Pending],
        }
    }

    /// Whether a payment reaching an order in this status is a late one.
    pub fn payment_is_late(self) -> bool {
        matches!(self, OrderStatus::Expired | OrderStatus::Closed)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    fn can_become(from: OrderStatus, to: OrderStatus) -> bool {
        to.predecessors().contains(&from)
    }

    #[test]
    fn statuses_parse_back_and_nothing_moves_backwards() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert!(!can_become(s, s), "{s} → {s} is not a transition");
        }
        assert!(!can_become(Paid, Pending));
        assert!(!can_become(Refunded, Paid));
        assert!(!can_become(Expired, Pending));
        assert!(can_become(Expired, Paid) && Expired.payment_is_late());
        assert!(!Pending.payment_is_late());
        assert_eq!(OrderStatus::parse("PAID"), None);
    }
}
