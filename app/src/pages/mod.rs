//! One module per page; `App` in `lib.rs` maps routes to them.

mod accounts;
mod aggregate;
mod board;
mod checkout;
mod cluster;
mod codes;
mod developers;
mod home;
mod inapp;
mod login;
mod not_found;
mod order;
mod shop_code;

pub use aggregate::AggregatePage;
pub use board::BoardPage;
pub use checkout::CheckoutPage;
pub use cluster::ClusterPage;
pub use developers::DevelopersPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::{NotFound, NotFoundMessage};
pub use order::OrderPage;
pub use shop_code::ShopCodePage;
