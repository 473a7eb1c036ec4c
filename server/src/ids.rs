//! The ids that cross the domain, as types: an order's id and a provider attempt's trade
//! number (a merchant's id is `MerchantId`, in `merchants.rs`). Text becomes one of these only
//! at the edges (input, a database row, a provider's wire), so a function that wants an order
//! cannot be handed a trade number, a merchant or a refund by mistake. Nothing here imports
//! the domain: orders, payments and providers all use it.

/// An id that is text inside: the struct (binds and reads as text, serialises as a string)
/// with `as_str`, `into_string`, `Display`, and comparison with text (for tests and the
/// edges). Its other constructors are its own.
macro_rules! text_id {
    ($(#[$doc:meta])* $vis:vis struct $t:ident;) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        $vis struct $t(String);

        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}
pub(crate) use text_id;

text_id! {
    /// An order id: 6–32 characters of `[0-9A-Za-z_]`, so it is valid as Alipay's and WeChat
    /// Pay's `out_trade_no` without a mapping table.
    ///
    /// Made from text only at the edges: [`OrderId::parse`] for input, a database row (it binds
    /// and reads as text), the UI seam's `String`.
    pub struct OrderId;
}

/// What [`OrderId::parse`] takes, for the API's document.
pub const ORDER_ID_PATTERN: &str = "^[A-Za-z0-9_]{6,32}$";

impl OrderId {
    /// An id of 6 to 32 ASCII letters, digits and `_` ([`ORDER_ID_PATTERN`]).
    pub fn parse(s: &str) -> Option<OrderId> {
        let ok = (6..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| OrderId(s.to_string()))
    }

    /// A new id: the UTC time to the second (so ids sort by creation) and 12 random
    /// alphanumerics (71 bits: not guessable). 26 characters.
    pub fn generate() -> OrderId {
        use rand::distributions::{Alphanumeric, DistString};
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        OrderId(stamp + &Alphanumeric.sample_string(&mut rand::thread_rng(), 12))
    }
}

text_id! {
    /// Our number for one payment attempt at a provider (`out_trade_no`): the order id and the
    /// attempt's sequence number (`payments::attempts::trade_no`). Made from text only at the
    /// edges: a database row (it binds and reads as text) and a provider's answer or
    /// notification, whose adapter wraps what the wire carried.
    pub struct OutTradeNo;
}

impl OutTradeNo {
    pub fn new(no: impl Into<String>) -> OutTradeNo {
        OutTradeNo(no.into())
    }
}

impl From<&str> for OutTradeNo {
    fn from(no: &str) -> OutTradeNo {
        OutTradeNo::new(no)
    }
}

#[cfg(test)]
mod tests {
    use super::OrderId;

    #[test]
    fn generated_ids_fit_both_providers_and_differ() {
        let a = OrderId::generate();
        let b = OrderId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 26);
        assert_eq!(OrderId::parse(a.as_str()), Some(a));
        assert!(OrderId::parse("short").is_none());
        assert!(OrderId::parse(&"x".repeat(33)).is_none());
        assert!(OrderId::parse("has-dash1").is_none());
        assert!(OrderId::parse("ORD_2026_ok").is_some());
    }

    #[test]
    fn the_documented_id_pattern_is_what_parse_takes() {
        let pattern = regex::Regex::new(super::ORDER_ID_PATTERN).expect("pattern");
        let generated = OrderId::generate();
        let long = "x".repeat(33);
        for id in [
            generated.as_str(),
            "short",
            "sixsix",
            long.as_str(),
            &long[1..],
            "has-dash1",
            "ORD_2026_ok",
            "",
            "caf\u{e9}_order",
            "line\nbreak",
        ] {
            assert_eq!(pattern.is_match(id), OrderId::parse(id).is_some(), "{id:?}");
        }
    }
}
