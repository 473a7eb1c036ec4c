//! The seam between the UI and the server: what server functions may ask of the server.
//!
//! The server implements [`AppServices`] and provides an `Arc<dyn AppServices>` in the Leptos
//! context for every request, so this crate needs no database, crypto or HTTP-client code.

use futures::future::BoxFuture;
use leptos::prelude::*;
use std::sync::Arc;

/// Services the server offers to server functions. Each later area (orders, board, …) adds
/// its methods here, implemented in `server`.
pub trait AppServices: Send + Sync + 'static {
    /// The running program's version.
    fn version(&self) -> &'static str;
    /// A human name of the storage engine (`SQLite`, `PostgreSQL`).
    fn database_engine(&self) -> &'static str;
    /// A cheap round trip to the database. The error is for the server's log only.
    fn ping_database(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The services of the current request, or a server-function error if the server forgot to
/// provide them (a bug, reported without internals).
pub fn use_services() -> Result<Arc<dyn AppServices>, ServerFnError> {
    use_context::<Arc<dyn AppServices>>()
        .ok_or_else(|| ServerFnError::new("the server is not fully started"))
}
