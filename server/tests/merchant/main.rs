//! The merchant side, in one test binary (one link instead of three): the merchant API
//! (`api`), refunds (`refunds`) and webhooks to the merchant (`webhooks`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod refunds;
mod webhooks;
