//! Property tests for the Alipay amount codec: every fen value round-trips through the
//! `"12.30"` string exactly, and strings that are not canonical amounts never parse to
//! something else. Integers only; no float anywhere.

use app::money::Amount;
use proptest::prelude::*;
use server::providers::alipay::wire::{format_amount, parse_amount};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn every_fen_value_round_trips(fen in 1i64..=10_000_000_000) {
        let amount = Amount::from_fen(fen).expect("in range");
        let s = format_amount(amount);
        let (int, frac) = s.split_once('.').expect("a point");
        prop_assert_eq!(frac.len(), 2);
        prop_assert_eq!(int.parse::<i64>().expect("digits") * 100 + frac.parse::<i64>().expect("digits"), fen);
        prop_assert_eq!(parse_amount(&s), Some(amount));
    }

    #[test]
    fn anything_that_parses_is_the_value_it_spells(s in "[0-9.+eE -]{0,14}") {
        if let Some(a) = parse_amount(&s) {
            // Parsed strings are digits with at most one point and two decimals…
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            // …and mean exactly what the canonical form says.
            let canonical = format_amount(a);
            let padded = match s.split_once('.') {
                Some((i, f)) => format!("{i}.{f:0<2}"),
                None => format!("{s}.00"),
            };
            prop_assert_eq!(canonical, padded);
        }
    }
}

#[test]
fn the_extremes_and_just_beyond() {
    assert_eq!(parse_amount("0.01").map(Amount::fen), Some(1));
    assert_eq!(
        parse_amount("100000000.00").map(Amount::fen),
        Some(10_000_000_000)
    );
    assert_eq!(parse_amount("100000000.01"), None);
    assert!(Amount::from_fen(10_000_000_001).is_err());
    assert!(Amount::from_fen(-1).is_err());
}
