//! Payment flows end to end, in one test binary (one link instead of two): payment order
//! generation and the checkout (`checkout`), and asynchronous callback processing with its
//! risk controls (`callbacks`).

#[path = "../common/mod.rs"]
mod common;

mod callbacks;
mod checkout;
mod money_edges;
mod posture;
