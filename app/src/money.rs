//! Money: an integer number of minor units (fen) in a newtype. Never a float; the decimal
//! yuan strings of the Alipay wire format are made and parsed at the provider edge only.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A non-negative amount of CNY in fen (1/100 yuan), at most 100,000,000 yuan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("an amount cannot be negative")]
    Negative,
    #[error("an amount cannot exceed 100,000,000.00 yuan")]
    TooLarge,
    #[error("write the amount in yuan with at most two decimals, such as 12.34")]
    Syntax,
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    /// The largest amount either provider accepts for one order: 100,000,000 yuan.
    pub const MAX: Amount = Amount(10_000_000_000);

    pub fn from_fen(fen: i64) -> Result<Amount, AmountError> {
        if fen < 0 {
            Err(AmountError::Negative)
        } else if fen > Self::MAX.0 {
            Err(AmountError::TooLarge)
        } else {
            Ok(Amount(fen))
        }
    }

    pub fn fen(self) -> i64 {
        self.0
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_sub(other.0)
            .and_then(|f| Amount::from_fen(f).ok())
    }

    /// Parses yuan as people type them: `12`, `12.3`, `12.34` (no sign, no exponent, no
    /// thousands separators, at most two decimals).
    pub fn parse_yuan(s: &str) -> Result<Amount, AmountError> {
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 12
            || !digits(whole)
            || frac.len() > 2
            || !digits(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(AmountError::Syntax);
        }
        let whole: i64 = whole.parse().map_err(|_| AmountError::Syntax)?;
        let frac: i64 = format!("{frac:0<2}")
            .parse()
            .map_err(|_| AmountError::Syntax)?;
        whole
            .checked_mul(100)
            .and_then(|f| f.checked_add(frac))
            .ok_or(AmountError::TooLarge)
            .and_then(Amount::from_fen)
    }

    /// `12.34`: yuan with exactly two decimals.
    pub fn yuan_string(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl TryFrom<i64> for Amount {
    type Error = AmountError;
    fn try_from(fen: i64) -> Result<Self, Self::Error> {
        Amount::from_fen(fen)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> i64 {
        a.0
    }
}

/// `¥12.34`, as a customer reads it.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", self.yuan_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{Amount, AmountError};

    #[test]
    fn yuan_as_people_type_it() {
        assert_eq!(Amount::parse_yuan("12.34").map(Amount::fen), Ok(1234));
        assert_eq!(Amount::parse_yuan("12.3").map(Amount::fen), Ok(1230));
        assert_eq!(Amount::parse_yuan("12").map(Amount::fen), Ok(1200));
        assert_eq!(Amount::parse_yuan("0.01").map(Amount::fen), Ok(1));
        assert_eq!(
            Amount::parse_yuan("100000000").map(Amount::fen),
            Ok(10_000_000_000)
        );
        assert_eq!(
            Amount::parse_yuan("100000000.01"),
            Err(AmountError::TooLarge)
        );
        for bad in [
            "", ".5", "12.", "12.345", "-1", "1e3", "1,000", " 1", "¥1", "1.2.3",
        ] {
            assert_eq!(Amount::parse_yuan(bad), Err(AmountError::Syntax), "{bad:?}");
        }
    }
}
