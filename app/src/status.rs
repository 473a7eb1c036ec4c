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

/// An enum whose every value has one fixed name: stored in the database, sent between the
/// browser and the server, and shown in `data-` attributes. `parse` is the one way back.
macro_rules! named {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named;

named! {
    /// What a payment attempt (one code at one provider) is doing.
    pub enum AttemptStatus {
        /// The prepay call is running.
        Opening = "opening",
        /// The provider gave a code; the customer can pay it.
        Open = "open",
        /// Closed at the provider (switched wallet, expiry): it can no longer be paid there.
        Closed = "closed",
        /// The prepay failed; nobody received a code.
        Failed = "failed",
        /// The provider reported this attempt paid.
        Paid = "paid",
    }
}

named! {
    /// Where a refund stands.
    pub enum RefundStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
        /// WeChat `ABNORMAL`: waiting for the merchant to send the money another way.
        Abnormal = "abnormal",
    }
}

named! {
    /// Where a webhook event's delivery stands.
    pub enum Delivery {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
        /// Its merchant has no endpoint.
        NoEndpoint = "no_endpoint",
    }
}

named! {
    /// A cluster node's state as the others see it.
    pub enum NodeState {
        Starting = "starting",
        Ready = "ready",
        Draining = "draining",
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
    fn named_states_parse_back_from_their_one_name() {
        use super::{AttemptStatus, Delivery, NodeState, RefundStatus};
        for a in AttemptStatus::ALL {
            assert_eq!(AttemptStatus::parse(a.as_str()), Some(*a));
            let json = serde_json::to_string(a).expect("json");
            assert_eq!(json, format!("\"{a}\""));
        }
        for r in RefundStatus::ALL {
            assert_eq!(RefundStatus::parse(r.as_str()), Some(*r));
        }
        for d in Delivery::ALL {
            assert_eq!(Delivery::parse(d.as_str()), Some(*d));
        }
        for n in NodeState::ALL {
            assert_eq!(NodeState::parse(n.as_str()), Some(*n));
        }
        assert_eq!(Delivery::NoEndpoint.as_str(), "no_endpoint");
        assert_eq!(AttemptStatus::parse("OPEN"), None);
        assert_eq!(RefundStatus::parse(""), None);
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
