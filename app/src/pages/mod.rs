//! One module per page; `App` in `lib.rs` maps routes to them.

mod board;
mod checkout;
mod home;
mod not_found;

pub use board::BoardPage;
pub use checkout::CheckoutPage;
pub use home::HomePage;
pub use not_found::{NotFound, NotFoundMessage};
