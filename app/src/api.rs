//! Server functions and the types they carry between the browser and the server.
//!
//! Each function runs on the server and reaches the server's services through the
//! [`crate::services::AppServices`] context value; the browser only sees the typed result.
//! Internal failures are logged on the server and reach the browser as a generic message.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the server says about itself: shown on `/` after a click, which proves that the
/// page is hydrated and that a server function round-trips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The `scanpay` package version.
    pub version: String,
    /// The storage engine in use: `SQLite` or `PostgreSQL`.
    pub database_engine: String,
    /// Whether the database answered a ping just now.
    pub database_ok: bool,
}

/// Asks the server for its version and database engine, pinging the database on the way.
/// Served at `POST /api/info`.
#[server(endpoint = "info")]
pub async fn get_server_info() -> Result<ServerInfo, ServerFnError> {
    let services = crate::services::use_services()?;
    let database_ok = match services.ping_database().await {
        Ok(()) => true,
        Err(err) => {
            leptos::logging::error!("database ping failed: {err}");
            false
        }
    };
    Ok(ServerInfo {
        version: services.version().to_string(),
        database_engine: services.database_engine().to_string(),
        database_ok,
    })
}
