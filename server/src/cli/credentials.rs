//! `scanpay merchant credentials`: a merchant's own provider account, or its place as a
//! sub-merchant of the operator's. The flags are the global settings' names without their prefix
//! (`SCANPAY_ALIPAY_APP_ID` → `--app-id`), so an operator moves a shop's account over as is.

use super::*;
use crate::credentials::{self, Credentials};
use crate::merchants::MerchantId;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Provider {
    Alipay,
    Wechat,
}

impl Provider {
    fn channel(self) -> crate::providers::Channel {
        match self {
            Provider::Alipay => crate::providers::Channel::Alipay,
            Provider::Wechat => crate::providers::Channel::Wechat,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum CredentialsCommand {
    /// Save a merchant's own account at a provider, sealed under the master key, after a
    /// signed call proves the keys (a query for a trade number that cannot exist). The keys
    /// are never shown again.
    Set(Box<SetArgs>),
    /// The merchant's own accounts: ids and when they were checked, never keys.
    Show {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a merchant's own account: its new orders go through the operator's again.
    Remove {
        #[arg(long)]
        merchant: String,
        #[arg(long, value_enum)]
        provider: Provider,
    },
    /// Seal every merchant's credentials again under the first key of the master key file
    /// (after putting a new key first; the old ones may be removed afterwards).
    Reseal,
}

/// What `set` takes.
#[derive(Debug, clap::Args)]
pub(super) struct SetArgs {
    #[arg(long)]
    merchant: String,
    #[arg(long, value_enum)]
    provider: Provider,
    /// Alipay: the gateway (`SCANPAY_ALIPAY_GATEWAY`).
    #[arg(long, default_value = credentials::ALIPAY_GATEWAY)]
    gateway: String,
    /// Alipay: the app id.
    #[arg(long)]
    app_id: Option<String>,
    /// Alipay: the seller (merchant) id, 2088….
    #[arg(long)]
    seller_id: Option<String>,
    /// WeChat Pay: the API base (`SCANPAY_WECHAT_API_BASE`).
    #[arg(long, default_value = credentials::WECHAT_API_BASE)]
    api_base: String,
    /// WeChat Pay: the app id (wx…).
    #[arg(long)]
    appid: Option<String>,
    /// WeChat Pay: the merchant number.
    #[arg(long)]
    mchid: Option<String>,
    /// WeChat Pay: the serial number of the merchant API certificate.
    #[arg(long)]
    cert_serial: Option<String>,
    /// WeChat Pay: the id of the WeChat Pay public key (PUB_KEY_ID_…).
    #[arg(long)]
    public_key_id: Option<String>,
    /// Our private key (PEM).
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// The provider's public key (PEM): Alipay's public key, the WeChat Pay public key.
    #[arg(long)]
    public_key_file: Option<PathBuf>,
    /// WeChat Pay service-provider mode: the merchant is this sub-merchant of the operator's
    /// service-provider account (the global settings sign); no keys of its own.
    #[arg(long)]
    sub_mchid: Option<String>,
    /// WeChat Pay service-provider mode: the sub-merchant's own official account (with
    /// `--app-secret-file` holding its AppSecret): customers inside WeChat sign in to it and
    /// pay as its users (`sub_openid`). Without it they sign in to the operator's.
    #[arg(long)]
    sub_appid: Option<String>,
    /// Alipay third-party mode: the file holding the `app_auth_token` the merchant's
    /// authorisation of the operator's app gave (with `--auth-app-id` and `--seller-id`).
    #[arg(long)]
    app_auth_token_file: Option<PathBuf>,
    /// Alipay third-party mode: the merchant's own app id.
    #[arg(long)]
    auth_app_id: Option<String>,
    /// WeChat Pay: the APIv3 key (32 characters).
    #[arg(long)]
    apiv3_key_file: Option<PathBuf>,
    /// WeChat Pay: the AppSecret of the official account `--appid` (or, for a sub-merchant,
    /// `--sub-appid`) (optional): with it, customers inside WeChat sign in silently and pay
    /// in the page (JSAPI).
    #[arg(long)]
    app_secret_file: Option<PathBuf>,
    /// Save without the signed check (a provider that cannot be reached from here yet).
    #[arg(long)]
    skip_check: bool,
}

fn read(flag: &str, path: &Path) -> Result<String, StartupError> {
    std::fs::read_to_string(path)
        .map_err(|e| StartupError::Command(format!("{flag} {}: {e}", path.display())))
}

/// The credentials the flags of `set` describe (the key files read).
fn credentials_of(args: SetArgs) -> Result<Credentials, StartupError> {
    let mut fields: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut put = |name, value: Option<String>| {
        if let Some(v) = value {
            fields.insert(name, v);
        }
    };
    put("gateway", Some(args.gateway));
    put("api_base", Some(args.api_base));
    put("app_id", args.app_id);
    put("seller_id", args.seller_id);
    put("appid", args.appid);
    put("mchid", args.mchid);
    put("cert_serial", args.cert_serial);
    put("public_key_id", args.public_key_id);
    put("sub_mchid", args.sub_mchid);
    put("sub_appid", args.sub_appid);
    put("auth_app_id", args.auth_app_id);
    for (name, flag, path) in [
        ("private_key", "--private-key-file", args.private_key_file),
        ("public_key", "--public-key-file", args.public_key_file),
        ("apiv3_key", "--apiv3-key-file", args.apiv3_key_file),
        ("app_secret", "--app-secret-file", args.app_secret_file),
        (
            "app_auth_token",
            "--app-auth-token-file",
            args.app_auth_token_file,
        ),
    ] {
        if let Some(path) = path {
            fields.insert(name, read(flag, &path)?);
        }
    }
    credentials::from_fields(args.provider.channel(), |name| fields.get(name).cloned())
        // The error names the field; the command's flag is the same name, dashed.
        .map_err(|why| {
            StartupError::Command(format!(
                "{} (the flag --{}{})",
                why,
                why.rsplit(' ').next().unwrap_or_default().replace('_', "-"),
                if why.ends_with("key") || why.ends_with("token") {
                    "-file"
                } else {
                    ""
                }
            ))
        })
}

pub(super) async fn run(config: Config, command: CredentialsCommand) -> Result<(), StartupError> {
    let posture = config.posture()?;
    let db = Db::connect(&config.database, 1).await?;
    db.migrate().await?;
    let failed = |e: credentials::CredentialsError| StartupError::Command(e.to_string());
    let keyring = || -> Result<_, StartupError> {
        config.keyring(posture)?.ok_or_else(|| {
            StartupError::Command(
                "merchant credentials are sealed under a master key: set SCANPAY_MASTER_KEY_FILE \
                 (one line: `openssl rand -base64 32`)"
                    .into(),
            )
        })
    };
    let result = match command {
        CredentialsCommand::Set(args) => {
            let merchant = MerchantId::new(args.merchant.clone());
            let skip_check = args.skip_check;
            let keyring = keyring()?;
            let creds = credentials_of(*args)?;
            // The operator's own accounts act for a sub-merchant: the settings', or where the
            // server's built-in sandbox serves a provider, the sandbox's default account.
            let server = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen));
            let (sandbox_alipay, sandbox_wechat) = crate::sandbox::provider_settings(
                &config.data_dir.join("sandbox").join("keys"),
                &format!("{}/sandbox", server.trim_end_matches('/')),
            );
            let keys_made = config.data_dir.join("sandbox").join("keys").exists();
            let serves = |c| keys_made && config.sandbox_serves(c);
            let operator = crate::providers::config::Providers::from_settings(
                config
                    .alipay
                    .as_ref()
                    .or(serves(crate::providers::Channel::Alipay).then_some(&sandbox_alipay)),
                config
                    .wechat
                    .as_ref()
                    .or(serves(crate::providers::Channel::Wechat).then_some(&sandbox_wechat)),
            )?;
            let book = credentials::Book::new(db.clone(), operator, Some(keyring.clone()))
                .with_gateways(config.merchant_gateways(posture));
            // Building the client (parsing the keys) is part of the check; a bad key or a
            // sub-merchant without a service-provider account never gets saved.
            book.client_from(&creds)
                .map_err(|e| StartupError::Command(format!("not saved: {e}")))?;
            let checked_at = if skip_check {
                None
            } else {
                book.check(&creds)
                    .await
                    .map_err(|why| StartupError::Command(format!("not saved: {why}")))?;
                Some(crate::infra::clock::now_ms())
            };
            credentials::save(&db, &keyring, &merchant, &creds, checked_at)
                .await
                .map_err(failed)?;
            let channel = creds.ids.channel();
            let kind = if creds.ids.is_partner() {
                "account as the operator's sub-merchant"
            } else {
                "own account"
            };
            println!(
                "saved {merchant}'s {channel} {kind} ({}); its new orders are paid into it",
                if skip_check {
                    "not checked"
                } else {
                    "checked with a signed call"
                }
            );
            Ok(())
        }
        CredentialsCommand::Show { merchant, json } => {
            let merchant = MerchantId::new(merchant);
            let accounts = credentials::list(&db, &merchant).await.map_err(failed)?;
            if json {
                println!("{}", serde_json::to_string(&accounts).unwrap_or_default());
            } else if accounts.is_empty() {
                println!("{merchant} has no account of its own: paid through the operator's");
            }
            if !json {
                for a in &accounts {
                    let checked = match a.checked_at {
                        Some(_) => "checked",
                        None => "not checked",
                    };
                    println!(
                        "{}  {}  sealed under {}  {checked}",
                        a.ids.channel(),
                        serde_json::to_string(&a.ids).unwrap_or_default(),
                        a.key_id
                    );
                }
            }
            Ok(())
        }
        CredentialsCommand::Remove { merchant, provider } => {
            let merchant = MerchantId::new(merchant);
            match credentials::remove(&db, &merchant, provider.channel()).await {
                Ok(true) => {
                    println!("removed; {merchant}'s new orders go through the operator's account");
                    Ok(())
                }
                Ok(false) => Err(StartupError::Command(format!(
                    "{merchant} has no own {} account",
                    provider.channel()
                ))),
                Err(e) => Err(failed(e)),
            }
        }
        CredentialsCommand::Reseal => {
            let keyring = keyring()?;
            let n = credentials::reseal(&db, &keyring).await.map_err(failed)?;
            println!(
                "{n} account(s) sealed again under master key {}",
                keyring.current_id()
            );
            Ok(())
        }
    };
    db.close().await;
    result
}
