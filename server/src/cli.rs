//! The `scanpay` command line: `serve` (the default), `migrate`, `sandbox`, `notify verify`
//! and `risk`.

use crate::config::Config;
use crate::db::Db;
use crate::{telemetry, Application, StartupError};
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
enum MerchantCommand {
    /// Create a merchant with its first user, a first API key (shown once) and a one-time
    /// sign-in link for the board.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// Print one JSON object (merchant_id, user_id, api_key, login_url).
        #[arg(long)]
        json: bool,
        /// The user may also see the cluster page (an operator).
        #[arg(long)]
        admin: bool,
    },
    /// A new one-time sign-in link for a user (to set or reset their password).
    LoginLink {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the merchant's keys (prefixes only).
    List {
        #[arg(long)]
        merchant: String,
    },
    /// Revoke one key by its id (`key_…`).
    Revoke {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Set the endpoint events are POSTed to; prints the signing secret.
    Set {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        url: String,
    },
    /// Replace the signing secret; prints the new one.
    RotateSecret {
        #[arg(long)]
        merchant: String,
    },
    /// Send an event again now and print the answer.
    Redeliver {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        event: String,
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
        match crate::failpoints::arm_from_spec(&spec) {
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

async fn risk(
    config: Config,
    limit: i64,
    unknown_orders: bool,
    json: bool,
) -> Result<(), StartupError> {
    use crate::risk::{recent, Scope};
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let scope = if unknown_orders {
        Scope::WithoutOrder
    } else {
        Scope::All
    };
    let events = recent(&db, scope, limit)
        .await
        .map_err(crate::db::DbError::Query)?;
    for e in &events {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let at = time::OffsetDateTime::from_unix_timestamp(e.created_at / 1000)
                .map(|t| t.to_string())
                .unwrap_or_default();
            println!(
                "{at}  {:<16} {:<7} {:<32} {}",
                e.kind,
                e.channel.as_deref().unwrap_or("-"),
                e.order_id
                    .as_deref()
                    .or(e.out_trade_no.as_deref())
                    .unwrap_or("-"),
                e.reason
            );
        }
    }
    if events.is_empty() && !json {
        println!("no risk events");
    }
    db.close().await;
    Ok(())
}

async fn merchant(config: Config, command: MerchantCommand) -> Result<(), StartupError> {
    use crate::accounts;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let base = base.trim_end_matches('/');
    let failed = |e: accounts::AccountError| match e {
        accounts::AccountError::Db(e) => StartupError::Db(crate::db::DbError::Query(e)),
        other => StartupError::Command(other.to_string()),
    };
    let result = match command {
        MerchantCommand::Create {
            name,
            email,
            json,
            admin,
        } => match accounts::create_merchant(&db, &name, &email, admin).await {
            Ok(made) => {
                let login_url = format!("{base}/auth/link/{}", made.login_token);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "merchant_id": made.merchant_id,
                            "user_id": made.user_id,
                            "email": accounts::normalise_email(&email),
                            "api_key": made.api_key,
                            "login_url": login_url,
                        })
                    );
                } else {
                    println!("merchant  {}", made.merchant_id);
                    println!("api key   {}  (shown once: store it now)", made.api_key);
                    println!("sign in   {login_url}  (works once, for 24 hours)");
                }
                Ok(())
            }
            Err(e) => Err(failed(e)),
        },
        MerchantCommand::LoginLink { email } => match accounts::user_by_email(&db, &email).await {
            Ok(Some((user_id, _))) => match accounts::login_link(&db, &user_id).await {
                Ok(token) => {
                    println!("{base}/auth/link/{token}  (works once, for 24 hours)");
                    Ok(())
                }
                Err(e) => Err(failed(e)),
            },
            Ok(None) => Err(StartupError::Command(format!(
                "no user with the email {email}"
            ))),
            Err(e) => Err(failed(e)),
        },
    };
    db.close().await;
    result
}

async fn apikey(config: Config, command: ApikeyCommand) -> Result<(), StartupError> {
    use crate::api_keys;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let query = |e: sqlx::Error| StartupError::Db(crate::db::DbError::Query(e));
    let result = match command {
        ApikeyCommand::Create { merchant, name } => {
            if crate::merchants::get(&db, &merchant)
                .await
                .map_err(query)?
                .is_none()
            {
                Err(StartupError::Command(format!("no merchant {merchant}")))
            } else {
                let (listed, key) = api_keys::create(&db, &merchant, &name)
                    .await
                    .map_err(query)?;
                println!("{}  {key}", listed.id);
                println!("(shown once: store it now; ScanPay keeps only its hash)");
                Ok(())
            }
        }
        ApikeyCommand::List { merchant } => {
            for k in api_keys::list(&db, &merchant).await.map_err(query)? {
                println!(
                    "{}  {}…  {}  {}",
                    k.id,
                    k.prefix,
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    },
                    k.name
                );
            }
            Ok(())
        }
        ApikeyCommand::Revoke { merchant, id } => {
            if api_keys::revoke(&db, &merchant, &id).await.map_err(query)? {
                println!("{id} revoked");
                Ok(())
            } else {
                Err(StartupError::Command(format!(
                    "{merchant} has no live key {id}"
                )))
            }
        }
    };
    db.close().await;
    result
}

async fn webhook(config: Config, command: WebhookCommand) -> Result<(), StartupError> {
    use crate::webhooks;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let sender = webhooks::Webhooks::new(
        db.clone(),
        config.outbound_policy(),
        config.webhook_time_scale,
    );
    let result = match command {
        WebhookCommand::Set { merchant, url } => {
            sender.set_endpoint(&merchant, &url).await.map(|secret| {
                format!("webhook endpoint of {merchant}: {url}\nsigning secret: {secret}")
            })
        }
        WebhookCommand::RotateSecret { merchant } => webhooks::rotate_secret(&db, &merchant)
            .await
            .map(|secret| format!("new signing secret of {merchant}: {secret}")),
        WebhookCommand::Redeliver { merchant, event } => {
            match sender.redeliver(&merchant, &event).await {
                Ok(delivered) => {
                    let last = webhooks::log(&db, &event)
                        .await
                        .ok()
                        .and_then(|l| l.last().cloned());
                    Ok(format!(
                        "{event}: {} ({})",
                        if delivered {
                            "delivered"
                        } else {
                            "not delivered"
                        },
                        last.map(|a| match (a.status, a.error) {
                            (Some(s), _) => format!("HTTP {s}"),
                            (None, Some(e)) => e,
                            _ => "no answer".into(),
                        })
                        .unwrap_or_default()
                    ))
                }
                Err(e) => Err(e),
            }
        }
    };
    db.close().await;
    match result {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(e) => Err(StartupError::Command(e.to_string())),
    }
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
    let (a, w) = provider_settings(sandbox.keys_dir(), &format!("{base}/sandbox"));
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
    let delivery = sandbox.spawn_delivery();
    let app = axum::Router::new().nest_service("/sandbox", sandbox.router());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await;
    delivery.abort();
    served.map_err(StartupError::Serve)
}
