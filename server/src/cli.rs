//! The `scanpay` command line: `serve` (the default) and `migrate`.

use crate::config::Config;
use crate::db::Db;
use crate::{telemetry, Application, StartupError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "scanpay",
    version,
    about = "Self-hosted scan-to-pay for Alipay and WeChat Pay"
)]
struct Cli {
    /// Configuration file (default: ./scanpay.toml if present; also SCANPAY_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database and serve HTTP (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

/// Parses the command line, runs the command, and turns any start-up error into a clear
/// message and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("scanpay: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(&config.log, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("scanpay: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "scanpay stopped");
            eprintln!("scanpay: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), StartupError> {
    let engine = config.database.engine.display_name();
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), database = engine, "scanpay is listening");
    println!(
        "ScanPay is running: open {}  (Ctrl-C stops it)",
        app.public_url()
    );
    app.run_until(crate::shutdown_signal())
        .await
        .map_err(StartupError::Serve)?;
    tracing::info!("scanpay stopped cleanly");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), StartupError> {
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let version = db.schema_version().await?;
    println!(
        "{} schema is at migration {version}",
        db.engine().display_name()
    );
    db.close().await;
    Ok(())
}
