//! The operator's commands: `scanpay merchant`, `apikey`, `webhook` and `risk`.

use super::*;
use crate::merchants::MerchantId;

#[derive(Debug, Subcommand)]
pub(super) enum MerchantCommand {
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
    /// The merchant's own provider accounts (its money goes to them, not the operator's).
    Credentials {
        #[command(subcommand)]
        command: super::credentials::CredentialsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ApikeyCommand {
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
pub(super) enum WebhookCommand {
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

pub(super) async fn risk(
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
        .map_err(crate::infra::db::DbError::Query)?;
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

pub(super) async fn merchant(config: Config, command: MerchantCommand) -> Result<(), StartupError> {
    use crate::accounts;
    if let MerchantCommand::Credentials { command } = command {
        return super::credentials::run(config, command).await;
    }
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let base = base.trim_end_matches('/');
    let failed = |e: accounts::AccountError| match e {
        accounts::AccountError::Db(e) => StartupError::Db(crate::infra::db::DbError::Query(e)),
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
        MerchantCommand::Credentials { .. } => unreachable!("handled above"),
    };
    db.close().await;
    result
}

pub(super) async fn apikey(config: Config, command: ApikeyCommand) -> Result<(), StartupError> {
    use crate::api_keys;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let query = |e: sqlx::Error| StartupError::Db(crate::infra::db::DbError::Query(e));
    let result = match command {
        ApikeyCommand::Create { merchant, name } => {
            if crate::merchants::get(&db, &MerchantId::from(merchant.as_str()))
                .await
                .map_err(query)?
                .is_none()
            {
                Err(StartupError::Command(format!("no merchant {merchant}")))
            } else {
                let (listed, key) =
                    api_keys::create(&db, &MerchantId::from(merchant.as_str()), &name)
                        .await
                        .map_err(query)?;
                println!("{}  {key}", listed.id);
                println!("(shown once: store it now; ScanPay keeps only its hash)");
                Ok(())
            }
        }
        ApikeyCommand::List { merchant } => {
            for k in api_keys::list(&db, &MerchantId::from(merchant.as_str()))
                .await
                .map_err(query)?
            {
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
            if api_keys::revoke(&db, &MerchantId::from(merchant.as_str()), &id)
                .await
                .map_err(query)?
            {
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

pub(super) async fn webhook(config: Config, command: WebhookCommand) -> Result<(), StartupError> {
    use crate::webhooks;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let sender = webhooks::Webhooks::new(
        db.clone(),
        config.outbound_policy(),
        config.webhook_time_scale,
    );
    let result = match command {
        WebhookCommand::Set { merchant, url } => sender
            .set_endpoint(&MerchantId::from(merchant.as_str()), &url)
            .await
            .map(|secret| {
                format!("webhook endpoint of {merchant}: {url}\nsigning secret: {secret}")
            }),
        WebhookCommand::RotateSecret { merchant } => {
            webhooks::rotate_secret(&db, &MerchantId::from(merchant.as_str()))
                .await
                .map(|secret| format!("new signing secret of {merchant}: {secret}"))
        }
        WebhookCommand::Redeliver { merchant, event } => {
            match sender
                .redeliver(&MerchantId::from(merchant.as_str()), &event)
                .await
            {
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
