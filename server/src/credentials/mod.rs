//! Each merchant's own provider account (direct mode): the money of a merchant's orders goes
//! to its own Alipay app / WeChat Pay merchant number, never to a pooled one (pooling other
//! shops' money is 二清, unlicensed secondary clearing; `shared/docs/providers.md` §1.13).
//!
//! A merchant's credentials are the global settings' fields (`scanpay merchant credentials
//! set` takes the same names as flags). What is not secret (gateway, app id, seller id /
//! mchid, certificate serial, key id) is stored as JSON; the keys are sealed with AES-256-GCM
//! under the operator's master key (`infra::sealed`), bound to the merchant and channel. They
//! are never shown again after saving: [`AccountView`] is all the board and the command line
//! print. `book.rs` turns a stored account into a provider client, cached until it changes.
//!
//! A merchant without its own account for a channel is paid through the operator's (the global
//! settings): a one-shop install changes nothing.

pub mod book;
mod posture;

pub use book::{check, Account, Book};
pub use posture::Gateways;

use crate::infra::clock::now_ms;
use crate::infra::db::Db;
use crate::infra::sealed::{Keyring, SealError};
use crate::infra::secret::Secret;
use crate::merchants::MerchantId;
use app::channel::Channel;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// The ids of an account: nothing here is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountIds {
    Alipay {
        gateway: String,
        app_id: String,
        seller_id: String,
    },
    Wechat {
        api_base: String,
        appid: String,
        mchid: String,
        cert_serial: String,
        public_key_id: String,
    },
    /// Service-provider mode: a sub-merchant of the operator's WeChat Pay service-provider
    /// account (the global settings); calls are signed with the operator's keys. With its
    /// own official account (`sub_appid`, its AppSecret sealed with the keys), payers sign in
    /// to that account instead of the operator's.
    WechatPartner {
        sub_mchid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_appid: Option<String>,
    },
    /// Third-party application mode: the merchant authorised the operator's Alipay app (the
    /// global settings); its `app_auth_token` is sealed with the keys.
    AlipayPartner {
        /// The merchant's own app.
        auth_app_id: String,
        /// The merchant's PID, 2088….
        seller_id: String,
    },
}

impl AccountIds {
    pub fn channel(&self) -> Channel {
        match self {
            AccountIds::Alipay { .. } | AccountIds::AlipayPartner { .. } => Channel::Alipay,
            AccountIds::Wechat { .. } | AccountIds::WechatPartner { .. } => Channel::Wechat,
        }
    }

    /// Whether it is a sub-merchant of the operator's account (service-provider mode).
    pub fn is_partner(&self) -> bool {
        matches!(
            self,
            AccountIds::WechatPartner { .. } | AccountIds::AlipayPartner { .. }
        )
    }
}

/// The keys of an account, sealed at rest. `Debug` prints none of them.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountKeys {
    /// Our private key (PEM, PKCS#1 or PKCS#8, or bare base64); empty for a sub-merchant
    /// (the operator's keys sign).
    #[serde(default)]
    pub private_key: String,
    /// The provider's public key (Alipay's public key / the WeChat Pay public key).
    #[serde(default)]
    pub public_key: String,
    /// WeChat Pay's APIv3 key (32 characters); absent for Alipay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiv3_key: Option<String>,
    /// Alipay third-party mode: the merchant's `app_auth_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_auth_token: Option<String>,
    /// WeChat: the official account's AppSecret, for the silent sign-in (`snsapi_base`) that
    /// JSAPI payment needs inside WeChat; absent: WeChat's browser scans the code on a screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
}

impl std::fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKeys([redacted])")
    }
}

/// A merchant's credentials at one provider.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub ids: AccountIds,
    pub keys: Secret<AccountKeys>,
}

/// The default gateway of Alipay's OpenAPI, and WeChat Pay's API base.
pub const ALIPAY_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
pub const WECHAT_API_BASE: &str = "https://api.mch.weixin.qq.com";

/// Credentials from named fields, the global settings' names without their prefix
/// (`app_id`, `seller_id`, `gateway`, `private_key`, `public_key`; `appid`, `mchid`,
/// `cert_serial`, `public_key_id`, `api_base`, `apiv3_key`, `app_secret`; a sub-merchant:
/// `sub_mchid` (with its own official account: `sub_appid` and `app_secret`), or
/// `app_auth_token` with `auth_app_id` and `seller_id`). The command line reads them from its
/// flags (the keys from files), the board from its form. The error names the missing field.
pub fn from_fields(
    channel: Channel,
    field: impl Fn(&str) -> Option<String>,
) -> Result<Credentials, String> {
    let get = |name: &str| {
        field(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let need = |name: &str| get(name).ok_or_else(|| format!("{channel} needs {name}"));
    let key = |name: &str| {
        field(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{channel} needs {name}"))
    };
    let (ids, keys) = match channel {
        Channel::Wechat => match get("sub_mchid") {
            Some(sub_mchid) => {
                let (sub_appid, app_secret) = (get("sub_appid"), get("app_secret"));
                if sub_appid.is_some() != app_secret.is_some() {
                    return Err(format!(
                        "{channel} sub_appid and app_secret go together: the sub-merchant's own \
                         official account and its AppSecret"
                    ));
                }
                (
                    AccountIds::WechatPartner {
                        sub_mchid,
                        sub_appid,
                    },
                    AccountKeys {
                        app_secret,
                        ..AccountKeys::default()
                    },
                )
            }
            None => (
                AccountIds::Wechat {
                    api_base: get("api_base")
                        .unwrap_or_else(|| WECHAT_API_BASE.into())
                        .trim_end_matches('/')
                        .to_string(),
                    appid: need("appid")?,
                    mchid: need("mchid")?,
                    cert_serial: need("cert_serial")?,
                    public_key_id: need("public_key_id")?,
                },
                AccountKeys {
                    private_key: key("private_key")?,
                    public_key: key("public_key")?,
                    apiv3_key: Some(key("apiv3_key")?),
                    app_auth_token: None,
                    app_secret: get("app_secret"),
                },
            ),
        },
        Channel::Alipay => match get("app_auth_token") {
            Some(token) => (
                AccountIds::AlipayPartner {
                    auth_app_id: need("auth_app_id")?,
                    seller_id: need("seller_id")?,
                },
                AccountKeys {
                    app_auth_token: Some(token),
                    ..AccountKeys::default()
                },
            ),
            None => (
                AccountIds::Alipay {
                    gateway: get("gateway").unwrap_or_else(|| ALIPAY_GATEWAY.into()),
                    app_id: need("app_id")?,
                    seller_id: need("seller_id")?,
                },
                AccountKeys {
                    private_key: key("private_key")?,
                    public_key: key("public_key")?,
                    apiv3_key: None,
                    app_auth_token: None,
                    app_secret: None,
                },
            ),
        },
    };
    Ok(Credentials {
        ids,
        keys: Secret::new(keys),
    })
}

/// What is shown of a stored account: its ids, never its keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub merchant_id: MerchantId,
    pub ids: AccountIds,
    /// The master key it is sealed under.
    pub key_id: String,
    /// When a signed call to the provider last proved the keys (Unix ms).
    pub checked_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no merchant {0}")]
    NoMerchant(MerchantId),
    #[error("merchant credentials need the master key (SCANPAY_MASTER_KEY_FILE)")]
    NoMasterKey,
    #[error("the stored {channel} credentials of {merchant}: {source}")]
    Sealed {
        merchant: MerchantId,
        channel: Channel,
        source: SealError,
    },
    #[error("the stored {channel} credentials of {merchant} are unreadable: {reason}")]
    Corrupt {
        merchant: MerchantId,
        channel: Channel,
        reason: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the sealed keys are bound to: a sealed value copied into another merchant's row (or
/// the other channel's) does not open.
fn context(merchant: &MerchantId, channel: Channel) -> String {
    format!("scanpay provider account v1|{merchant}|{channel}")
}

/// Saves (or replaces) a merchant's credentials for the channel of `creds.ids`.
pub async fn save(
    db: &Db,
    keyring: &Keyring,
    merchant: &MerchantId,
    creds: &Credentials,
    checked_at: Option<i64>,
) -> Result<(), CredentialsError> {
    if crate::merchants::get(db, merchant).await?.is_none() {
        return Err(CredentialsError::NoMerchant(merchant.clone()));
    }
    let channel = creds.ids.channel();
    let plain = serde_json::to_vec(creds.keys.expose()).expect("keys serialize");
    let (key_id, sealed) = keyring.seal(&context(merchant, channel), &plain);
    let ids = serde_json::to_string(&creds.ids).expect("ids serialize");
    let now = now_ms();
    sqlx::query(
        "INSERT INTO provider_accounts (merchant_id, channel, ids, sealed, key_id, checked_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (merchant_id, channel) DO UPDATE SET ids = $3, sealed = $4, key_id = $5, \
         checked_at = $6, updated_at = $7",
    )
    .bind(merchant)
    .bind(channel.as_str())
    .bind(ids)
    .bind(sealed)
    .bind(key_id)
    .bind(checked_at)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A stored row, still sealed.
pub(crate) struct StoredAccount {
    pub ids: AccountIds,
    pub sealed: String,
    pub key_id: String,
    pub checked_at: Option<i64>,
    pub updated_at: i64,
}

pub(crate) async fn row(
    db: &Db,
    merchant: &MerchantId,
    channel: Channel,
) -> Result<Option<StoredAccount>, CredentialsError> {
    let Some(r) = sqlx::query(
        "SELECT ids, sealed, key_id, checked_at, updated_at FROM provider_accounts \
         WHERE merchant_id = $1 AND channel = $2",
    )
    .bind(merchant)
    .bind(channel.as_str())
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let ids: String = r.try_get("ids")?;
    let ids = serde_json::from_str(&ids).map_err(|e| CredentialsError::Corrupt {
        merchant: merchant.clone(),
        channel,
        reason: e.to_string(),
    })?;
    Ok(Some(StoredAccount {
        ids,
        sealed: r.try_get("sealed")?,
        key_id: r.try_get("key_id")?,
        checked_at: r.try_get("checked_at")?,
        updated_at: r.try_get("updated_at")?,
    }))
}

/// Opens a stored row's keys.
pub(crate) fn open(
    keyring: &Keyring,
    merchant: &MerchantId,
    channel: Channel,
    row: &StoredAccount,
) -> Result<Credentials, CredentialsError> {
    let plain = keyring
        .open(&row.key_id, &context(merchant, channel), &row.sealed)
        .map_err(|source| CredentialsError::Sealed {
            merchant: merchant.clone(),
            channel,
            source,
        })?;
    let keys: AccountKeys =
        serde_json::from_slice(&plain).map_err(|e| CredentialsError::Corrupt {
            merchant: merchant.clone(),
            channel,
            reason: e.to_string(),
        })?;
    Ok(Credentials {
        ids: row.ids.clone(),
        keys: Secret::new(keys),
    })
}

/// A merchant's credentials for `channel`, opened; `None` when it has no account there.
pub async fn load(
    db: &Db,
    keyring: &Keyring,
    merchant: &MerchantId,
    channel: Channel,
) -> Result<Option<Credentials>, CredentialsError> {
    match row(db, merchant, channel).await? {
        Some(r) => open(keyring, merchant, channel, &r).map(Some),
        None => Ok(None),
    }
}

/// A merchant's accounts as they may be shown (no keys), Alipay first.
pub async fn list(db: &Db, merchant: &MerchantId) -> Result<Vec<AccountView>, CredentialsError> {
    let mut out = Vec::new();
    for channel in Channel::ALL {
        if let Some(r) = row(db, merchant, channel).await? {
            out.push(AccountView {
                merchant_id: merchant.clone(),
                ids: r.ids,
                key_id: r.key_id,
                checked_at: r.checked_at,
                updated_at: r.updated_at,
            });
        }
    }
    Ok(out)
}

/// Removes a merchant's account for `channel` (its orders go through the operator's account
/// again). Attempts made through it keep pointing at it: their queries and refunds fail
/// until it is set again, which the worker logs and retries.
pub async fn remove(
    db: &Db,
    merchant: &MerchantId,
    channel: Channel,
) -> Result<bool, CredentialsError> {
    let done = sqlx::query("DELETE FROM provider_accounts WHERE merchant_id = $1 AND channel = $2")
        .bind(merchant)
        .bind(channel.as_str())
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Seals every stored account again under the keyring's first key (after a new master key
/// was put first in the file). Returns how many were sealed again; each row changes only if
/// it is still what was read (a concurrent `set` wins).
pub async fn reseal(db: &Db, keyring: &Keyring) -> Result<usize, CredentialsError> {
    let rows = sqlx::query("SELECT merchant_id, channel FROM provider_accounts")
        .fetch_all(db.pool())
        .await?;
    let mut done = 0;
    for r in rows {
        let merchant: MerchantId = r.try_get("merchant_id")?;
        let channel_text: String = r.try_get("channel")?;
        let Some(channel) = Channel::parse(&channel_text) else {
            continue;
        };
        let Some(stored) = row(db, &merchant, channel).await? else {
            continue;
        };
        if stored.key_id == keyring.current_id() {
            continue;
        }
        let creds = open(keyring, &merchant, channel, &stored)?;
        let plain = serde_json::to_vec(creds.keys.expose()).expect("keys serialize");
        let (key_id, sealed) = keyring.seal(&context(&merchant, channel), &plain);
        let changed = sqlx::query(
            "UPDATE provider_accounts SET sealed = $1, key_id = $2 \
             WHERE merchant_id = $3 AND channel = $4 AND sealed = $5",
        )
        .bind(sealed)
        .bind(key_id)
        .bind(&merchant)
        .bind(channel.as_str())
        .bind(&stored.sealed)
        .execute(db.pool())
        .await?;
        done += changed.rows_affected() as usize;
    }
    Ok(done)
}

/// Every stored account's ids, to judge them all at start-up.
pub async fn all(db: &Db) -> Result<Vec<(MerchantId, AccountIds)>, CredentialsError> {
    let rows = sqlx::query("SELECT merchant_id, ids FROM provider_accounts ORDER BY merchant_id")
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let merchant: MerchantId = r.try_get("merchant_id")?;
        let ids: String = r.try_get("ids")?;
        if let Ok(ids) = serde_json::from_str(&ids) {
            out.push((merchant, ids));
        }
    }
    Ok(out)
}

/// Whether any merchant has its own account (then the master key is needed at start-up).
pub async fn any(db: &Db) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM provider_accounts")
        .fetch_one(db.pool())
        .await?;
    Ok(n > 0)
}
