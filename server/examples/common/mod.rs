//! Start-up shared by the benchmarks: the whole application on loopback, with its in-process
//! sandbox gateways and a temporary data directory.

use server::config::{Config, SandboxMode};

/// A running application.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub db: server::infra::db::Db,
    #[allow(dead_code)] // not every benchmark runs payments itself
    pub payments: server::payments::Payments,
    #[allow(dead_code)] // not every benchmark measures the rate limits
    pub limiter: std::sync::Arc<server::limits::Limiter>,
    /// The data directory (embedded database, sandbox keys); removed on drop.
    dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the application; `tune` adjusts the configuration first (the database, say).
pub async fn start(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SCANPAY_LISTEN", "127.0.0.1:0".to_string()),
        ("SCANPAY_DATA_DIR", dir.path().display().to_string()),
        ("SCANPAY_LOG", "error".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut config = Config::from_sources(None, &env).expect("settings");
    config.sandbox = SandboxMode::Auto;
    tune(&mut config);
    let app = server::Application::build(config).await.expect("start");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    Running {
        base: app.public_url().to_string(),
        db: app.db().clone(),
        payments: app.payments().clone(),
        limiter: app.limiter().clone(),
        dir,
        stop,
        server: tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        })),
    }
}

impl Running {
    /// The data directory (the sandbox's keys are in `sandbox/keys`).
    #[allow(dead_code)] // not every benchmark plays the provider
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
