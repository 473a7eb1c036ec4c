//! Payment flows end to end: payment order generation and the checkout (`checkout`),
//! asynchronous callback processing with its risk controls (`callbacks`), the money edges
//! (`money_edges`) and the postures (`posture`).

mod callbacks;
mod checkout;
mod money_edges;
mod phone;
mod posture;
mod shop_codes;
