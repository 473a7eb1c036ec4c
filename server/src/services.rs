//! The server's side of the UI seam: implements `app::services::AppServices` over the
//! process's database and other services, for server functions to use.

use crate::db::Db;
use app::services::AppServices;
use futures::future::BoxFuture;
use futures::FutureExt;

pub struct Services {
    db: Db,
}

impl Services {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl AppServices for Services {
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    fn database_engine(&self) -> &'static str {
        self.db.engine().display_name()
    }

    fn ping_database(&self) -> BoxFuture<'_, Result<(), String>> {
        async move { self.db.ping().await.map_err(|e| e.to_string()) }.boxed()
    }
}
