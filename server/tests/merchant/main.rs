//! The merchant side, in one test binary (one link instead of four): the merchant API
//! (`api`), the order board and its accounts (`board`), refunds (`refunds`) and webhooks to
//! the merchant (`webhooks`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod board;
mod refund_outcomes;
mod refunds;
mod webhooks;
