//! The merchant side: the merchant API (`api`), the order board and its accounts
//! (`board`), refunds and their outcomes (`refunds`, `refund_outcomes`) and webhooks to the
//! merchant (`webhooks`).

mod api;
mod board;
mod own_accounts;
mod refund_outcomes;
mod refunds;
mod webhooks;
