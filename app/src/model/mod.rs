//! The data types the UI and the server exchange, apart from the functions that carry them,
//! so that the seam (`services.rs`) and the server functions (`api.rs`, `merchant.rs`) both
//! depend on them and not on each other.

pub mod checkout;
pub mod error;
pub mod merchant;
