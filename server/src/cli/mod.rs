//! The `scanpay` command line: `serve` (the default), `migrate`, `sandbox`, `notify verify`
//! and `risk`; the operator's commands on merchants, API keys and webhooks are in `admin.rs`.

mod admin;
mod credentials;

use crate::config::Config;
use crate::infra::db::Db;
use crate::infra::telemetry;
use crate::{Application, StartupError};
use admin::{apikey, merchant, risk, webhook, ApikeyCommand, MerchantCommand, WebhookCommand};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The version and the git commit the binary was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SCANPAY_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "scanpay",
    version = VERSION,
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
    /// Print the effective configuration: every setting, its value (secrets never shown) and
    /// where it came from (the default, the file, or the environment).
    Config {
        /// Print the README's tables of settings instead (generated from the same key table).
        #[arg(long)]
        markdown: bool,
    },
    /// Migrate the database and serve HTTP (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run only the sandbox gateways (Alipay and WeChat Pay simulators), for several nodes or
    /// load tests; prints the provider settings that point a ScanPay node at it.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3100")]
        listen: std::net::SocketAddr,
        /// The URL phones and nodes reach it at (default: http://<listen address>).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Register another merchant at the sandbox (its own ids and keys, in
    /// `<data dir>/sandbox/keys/accounts/<name>/`) and print the commands that give a
    /// ScanPay merchant that account.
    SandboxAccount {
        /// Letters, digits, `-` and `_`.
        #[arg(long)]
        name: String,
        /// The URL the sandbox is reached at (default: this server's, `<public url>/sandbox`).
        #[arg(long)]
        sandbox_url: Option<String>,
    },
    /// Provider notifications.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Merchants and their board users: create one, or a new sign-in link for a user.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// A merchant's API keys: create (shown once), list, revoke.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// A merchant's webhook endpoint: set it, rotate its secret, redeliver an event.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// List recent risk events: refused notifications, late and second payments.
    Risk {
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only events naming no order of ours (unknown trade numbers, unreadable forgeries).
        #[arg(long)]
        unknown_orders: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Check a raw notification offline: does it verify, why not, what does it say.
    /// Exit status 0 when it verifies, 1 when not, 2 for unusable input.
    Verify(crate::notify_check::VerifyRequest),
}

/// Parses the command line, runs the command, and turns any start-up error into a clear
/// message and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Config { markdown }) = cli.command {
        return print_config(cli.config.as_deref(), markdown);
    }
    // Offline tools need no configuration.
    if let Some(Command::Notify {
        command: NotifyCommand::Verify(request),
    }) = cli.command
    {
        return match crate::notify_check::verify(&request) {
            Ok(v) => {
                print!("{}", v.report);
                if v.verified {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("scanpay: {e}");
                ExitCode::from(2)
            }
        };
    }
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
            Command::Sandbox { listen, public_url } => sandbox(config, listen, public_url).await,
            Command::SandboxAccount { name, sandbox_url } => {
                sandbox_account(config, name, sandbox_url).await
            }
            Command::Risk {
                limit,
                unknown_orders,
                json,
            } => risk(config, limit, unknown_orders, json).await,
            Command::Webhook { command } => webhook(config, command).await,
            Command::Apikey { command } => apikey(config, command).await,
            Command::Merchant { command } => merchant(config, command).await,
            Command::Notify { .. } | Command::Config { .. } => {
                unreachable!("handled before the configuration is read")
            }
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

/// `scanpay config`: the effective settings, or (`--markdown`) the README's tables.
fn print_config(file: Option<&std::path::Path>, markdown: bool) -> ExitCode {
    use crate::config::{settings_markdown, Group};
    if markdown {
        for (title, group) in [
            ("Settings", Group::General),
            ("Payment providers", Group::Provider),
            ("The sandbox gateways", Group::Sandbox),
        ] {
            println!("<!-- {title} -->\n{}", settings_markdown(group));
        }
        return ExitCode::SUCCESS;
    }
    match Config::describe(file) {
        Ok(settings) => {
            let width = settings.iter().map(|s| s.env.len()).max().unwrap_or(0);
            for s in settings {
                println!("{:width$}  {}  ({})", s.env, s.value, s.source);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("scanpay: configuration error: {err}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> Result<(), StartupError> {
    if let Ok(spec) = std::env::var("SCANPAY_FAILPOINTS") {
        match crate::infra::failpoints::arm_from_spec(&spec) {
            Ok(n) => {
                tracing::warn!(%spec, points = n, "SCANPAY_FAILPOINTS is set: this process fails on purpose (a test aid)")
            }
            Err(e) => tracing::error!(error = %e, "SCANPAY_FAILPOINTS is not understood; ignored"),
        }
    }
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

async fn sandbox_account(
    config: Config,
    name: String,
    sandbox_url: Option<String>,
) -> Result<(), StartupError> {
    use crate::sandbox::{settings_of, Sandbox, SandboxSettings};
    let base = sandbox_url.unwrap_or_else(|| {
        let server = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        format!("{}/sandbox", server.trim_end_matches('/'))
    });
    let sandbox = Sandbox::open(SandboxSettings {
        dir: config.data_dir.join("sandbox"),
        base_url: base.clone(),
        time_scale: config.sandbox_time_scale,
        faults: config.sandbox_faults.clone(),
    })
    .await?;
    let account = sandbox.add_account(&name)?;
    let (a, w) = settings_of(&account, base.trim_end_matches('/'));
    println!(
        "Sandbox account {name}: Alipay app {} / WeChat Pay merchant {}",
        a.app_id, w.mchid
    );
    println!("Give a merchant this account with:");
    println!(
        "scanpay merchant credentials set --merchant MERCHANT_ID --provider alipay --gateway {} \\\n  --app-id {} --seller-id {} --private-key-file {} --public-key-file {}",
        a.gateway,
        a.app_id,
        a.seller_id,
        a.private_key_file.display(),
        a.public_key_file.display()
    );
    println!(
        "scanpay merchant credentials set --merchant MERCHANT_ID --provider wechat --api-base {} \\\n  --appid {} --mchid {} --cert-serial {} --public-key-id {} \\\n  --private-key-file {} --public-key-file {} --apiv3-key-file {}{}",
        w.api_base,
        w.appid,
        w.mchid,
        w.cert_serial,
        w.public_key_id,
        w.private_key_file.display(),
        w.public_key_file.display(),
        w.apiv3_key_file.display(),
        w.app_secret_file
            .as_ref()
            .map(|f| format!(" \\\n  --app-secret-file {}", f.display()))
            .unwrap_or_default()
    );
    println!(
        "Or as a sub-merchant of the default sandbox account: --provider wechat --sub-mchid {}",
        w.mchid
    );
    Ok(())
}

async fn sandbox(
    config: Config,
    listen: std::net::SocketAddr,
    public_url: Option<String>,
) -> Result<(), StartupError> {
    use crate::sandbox::{provider_settings, Sandbox, SandboxSettings};
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartupError::Bind {
        addr: listen,
        source,
    })?;
    let base = public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let sandbox = Sandbox::open(SandboxSettings {
        dir: config.data_dir.join("sandbox"),
        base_url: format!("{base}/sandbox"),
        time_scale: config.sandbox_time_scale,
        faults: config.sandbox_faults.clone(),
    })
    .await?;
    let (a, w) = provider_settings(&sandbox.keys_dir(), &format!("{base}/sandbox"));
    println!("ScanPay sandbox gateways: open {base}/sandbox/  (Ctrl-C stops them)");
    println!("Point ScanPay nodes at them with:");
    println!("SCANPAY_SANDBOX=off");
    println!("SCANPAY_ALIPAY_GATEWAY={}", a.gateway);
    println!("SCANPAY_ALIPAY_APP_ID={}", a.app_id);
    println!("SCANPAY_ALIPAY_SELLER_ID={}", a.seller_id);
    println!(
        "SCANPAY_ALIPAY_PRIVATE_KEY_FILE={}",
        a.private_key_file.display()
    );
    println!(
        "SCANPAY_ALIPAY_PUBLIC_KEY_FILE={}",
        a.public_key_file.display()
    );
    println!("SCANPAY_WECHAT_API_BASE={}", w.api_base);
    println!("SCANPAY_WECHAT_APPID={}", w.appid);
    println!("SCANPAY_WECHAT_MCHID={}", w.mchid);
    println!(
        "SCANPAY_WECHAT_PRIVATE_KEY_FILE={}",
        w.private_key_file.display()
    );
    println!("SCANPAY_WECHAT_CERT_SERIAL={}", w.cert_serial);
    println!(
        "SCANPAY_WECHAT_PUBLIC_KEY_FILE={}",
        w.public_key_file.display()
    );
    println!("SCANPAY_WECHAT_PUBLIC_KEY_ID={}", w.public_key_id);
    println!(
        "SCANPAY_WECHAT_APIV3_KEY_FILE={}",
        w.apiv3_key_file.display()
    );
    if let Some(secret) = &w.app_secret_file {
        println!("SCANPAY_WECHAT_APP_SECRET_FILE={}", secret.display());
    }
    let delivery = sandbox.spawn_delivery();
    let app = axum::Router::new().nest_service("/sandbox", sandbox.router());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await;
    delivery.abort();
    served.map_err(StartupError::Serve)
}
