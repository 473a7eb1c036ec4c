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

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_add(other.0)
            .and_then(|f| Amount::from_fen(f).ok())
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0
            .checked_sub(other.0)
            .and_then(|f| Amount::from_fen(f).ok())
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
