//! From a stored account to a provider client: which account pays a merchant's orders, and
//! the client for an account an attempt was made through.

use super::{open, row, AccountIds, Credentials, CredentialsError};
use crate::infra::db::Db;
use crate::infra::sealed::Keyring;
use crate::infra::secret::Secret;
use crate::merchants::MerchantId;
use crate::providers::alipay::AlipayAccount;
use crate::providers::alipay::Isv;
use crate::providers::config::{self, KeyNames, ProviderSetupError, Providers};
use crate::providers::wechat::WechatAccount;
use crate::providers::{
    Channel, OutTradeNo, PaymentProvider, ProviderError, SubMerchant, TradeState,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whose provider account a payment goes through.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The operator's own: the global settings.
    Operator,
    /// A merchant's own (direct mode).
    Merchant(MerchantId),
}

impl Account {
    /// As stored on an attempt (`payment_attempts.account`): NULL for the operator's.
    pub fn stored(&self) -> Option<&str> {
        match self {
            Account::Operator => None,
            Account::Merchant(m) => Some(m.as_str()),
        }
    }

    /// The path segment of its notification URL, after `/notify/<channel>`.
    pub fn notify_suffix(&self) -> String {
        match self {
            Account::Operator => String::new(),
            Account::Merchant(m) => format!("/{m}"),
        }
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Operator => f.write_str("the operator's account"),
            Account::Merchant(m) => write!(f, "{m}'s own account"),
        }
    }
}

/// The operator's providers and the merchants' own accounts, with the clients built from the
/// latter cached until their row changes.
#[derive(Clone)]
pub struct Book {
    db: Db,
    operator: Providers,
    keyring: Option<Keyring>,
    http: reqwest::Client,
    cache: Arc<Mutex<Clients>>,
    /// Which gateways own accounts may use (the posture).
    gateways: super::Gateways,
}

/// (merchant, channel) → (the row's version, its client).
type Clients = HashMap<(MerchantId, Channel), (String, Arc<dyn PaymentProvider>)>;

/// The names a merchant's key is known by: the command's flags.
pub const FLAG_NAMES: KeyNames = KeyNames {
    private_key: "--private-key-file",
    public_key: "--public-key-file",
    apiv3_key: "--apiv3-key-file",
};

impl Book {
    pub fn new(db: Db, operator: Providers, keyring: Option<Keyring>) -> Book {
        Book {
            db,
            operator,
            keyring,
            http: crate::providers::http_client(config::CONNECT_TIMEOUT, config::CALL_TIMEOUT),
            cache: Arc::default(),
            gateways: super::Gateways::Any,
        }
    }

    /// The same, refusing own accounts whose gateway the posture does not allow.
    pub fn with_gateways(mut self, gateways: super::Gateways) -> Book {
        self.gateways = gateways;
        self
    }

    /// The operator's providers (the global settings).
    pub fn operator(&self) -> &Providers {
        &self.operator
    }

    /// The account that takes `merchant`'s payments in `channel` and its client: the
    /// merchant's own when it has one, else the operator's when that may take them; `None`:
    /// the channel is not available to this merchant.
    pub async fn for_merchant(
        &self,
        merchant: &MerchantId,
        channel: Channel,
    ) -> Result<Option<(Account, Arc<dyn PaymentProvider>)>, CredentialsError> {
        if let Some(own) = self.own(merchant, channel).await? {
            return Ok(Some((Account::Merchant(merchant.clone()), own)));
        }
        Ok(self
            .operator
            .takes_orders_of(channel, merchant)
            .then(|| self.operator.get(channel).cloned())
            .flatten()
            .map(|p| (Account::Operator, p)))
    }

    /// The client of `account` in `channel` (the one an attempt was made through); `None`:
    /// that account no longer exists.
    pub async fn client(
        &self,
        account: &Account,
        channel: Channel,
    ) -> Result<Option<Arc<dyn PaymentProvider>>, CredentialsError> {
        match account {
            Account::Operator => Ok(self.operator.get(channel).cloned()),
            Account::Merchant(m) => self.own(m, channel).await,
        }
    }

    /// The channels `merchant` can be paid through, Alipay first.
    pub async fn channels_for(
        &self,
        merchant: &MerchantId,
    ) -> Result<Vec<Channel>, CredentialsError> {
        let mut out = Vec::new();
        for channel in Channel::ALL {
            if self.for_merchant(merchant, channel).await?.is_some() {
                out.push(channel);
            }
        }
        Ok(out)
    }

    async fn own(
        &self,
        merchant: &MerchantId,
        channel: Channel,
    ) -> Result<Option<Arc<dyn PaymentProvider>>, CredentialsError> {
        let Some(stored) = row(&self.db, merchant, channel).await? else {
            return Ok(None);
        };
        let version = format!("{}|{}", stored.updated_at, stored.key_id);
        let key = (merchant.clone(), channel);
        if let Some((v, client)) = self.cache.lock().expect("cache").get(&key) {
            if *v == version {
                return Ok(Some(client.clone()));
            }
        }
        let keyring = self.keyring.as_ref().ok_or(CredentialsError::NoMasterKey)?;
        let creds = open(keyring, merchant, channel, &stored)?;
        let client = self
            .client_from(&creds)
            .map_err(|reason| CredentialsError::Corrupt {
                merchant: merchant.clone(),
                channel,
                reason,
            })?;
        self.cache
            .lock()
            .expect("cache")
            .insert(key, (version, client.clone()));
        Ok(Some(client))
    }
}

impl Book {
    /// The client of credentials: built from their keys, or for a sub-merchant, the
    /// operator's service-provider account acting for it.
    pub fn client_from(&self, creds: &Credentials) -> Result<Arc<dyn PaymentProvider>, String> {
        if let Some(why) = self.gateways.refuses(&creds.ids) {
            return Err(why);
        }
        match sub_merchant(creds) {
            Some(sub) => self
                .operator
                .get(creds.ids.channel())
                .and_then(|operator| operator.for_sub_merchant(&sub))
                .ok_or_else(|| {
                    format!(
                        "a {} sub-merchant needs the operator's own service-provider account \
                         (the global settings)",
                        creds.ids.channel()
                    )
                }),
            None => build(creds, self.http.clone()).map_err(|e| e.to_string()),
        }
    }

    /// Saves a merchant's credentials sealed under this book's master key.
    pub async fn save(
        &self,
        merchant: &MerchantId,
        creds: &Credentials,
        checked_at: Option<i64>,
    ) -> Result<(), CredentialsError> {
        let keyring = self.keyring.as_ref().ok_or(CredentialsError::NoMasterKey)?;
        super::save(&self.db, keyring, merchant, creds, checked_at).await
    }

    /// [`check`] for credentials of either mode.
    pub async fn check(&self, creds: &Credentials) -> Result<(), String> {
        check_client(self.client_from(creds)?.as_ref()).await
    }
}

/// What a sub-merchant's credentials make the operator's account act for.
fn sub_merchant(creds: &Credentials) -> Option<SubMerchant> {
    match &creds.ids {
        AccountIds::WechatPartner {
            sub_mchid,
            sub_appid,
        } => Some(SubMerchant::Wechat {
            sub_mchid: sub_mchid.clone(),
            sub_app: sub_appid.as_ref().and_then(|appid| {
                let secret = creds.keys.expose().app_secret.clone()?;
                Some(crate::providers::SubApp {
                    appid: appid.clone(),
                    secret: Secret::new(secret),
                })
            }),
        }),
        AccountIds::AlipayPartner {
            auth_app_id,
            seller_id,
        } => Some(SubMerchant::Alipay(Isv {
            app_auth_token: Secret::new(
                creds
                    .keys
                    .expose()
                    .app_auth_token
                    .clone()
                    .unwrap_or_default(),
            ),
            auth_app_id: auth_app_id.clone(),
            seller_id: seller_id.clone(),
        })),
        _ => None,
    }
}

/// A provider client from credentials of a merchant's own keys (direct mode).
pub fn build(
    creds: &Credentials,
    http: reqwest::Client,
) -> Result<Arc<dyn PaymentProvider>, ProviderSetupError> {
    let keys = creds.keys.expose();
    match &creds.ids {
        AccountIds::Alipay {
            gateway,
            app_id,
            seller_id,
        } => config::alipay_with_keys(
            AlipayAccount {
                gateway: gateway.clone(),
                app_id: app_id.clone(),
                seller_id: Some(seller_id.clone()),
            },
            &keys.private_key,
            &keys.public_key,
            FLAG_NAMES,
            http,
        ),
        AccountIds::Wechat {
            api_base,
            appid,
            mchid,
            cert_serial,
            public_key_id,
        } => config::wechat_with_keys(
            WechatAccount {
                api_base: api_base.clone(),
                appid: appid.clone(),
                mchid: mchid.clone(),
                cert_serial: cert_serial.clone(),
                wechat_key_id: public_key_id.clone(),
                app_secret: keys
                    .app_secret
                    .clone()
                    .map(crate::infra::secret::Secret::new),
            },
            &keys.private_key,
            &keys.public_key,
            keys.apiv3_key.as_deref().unwrap_or_default(),
            FLAG_NAMES,
            http,
        ),
        AccountIds::WechatPartner { .. } | AccountIds::AlipayPartner { .. } => Err(
            ProviderSetupError::SubMerchant(creds.ids.channel().as_str()),
        ),
    }
}

/// Proves credentials with a signed call: a query for a trade number that cannot exist. A
/// verified "no such trade" means the provider took our signature and we could verify its
/// answer with the public key given. (WeChat's APIv3 key only decrypts notifications; no
/// call proves it, so only its length is checked.)
pub async fn check(creds: &Credentials) -> Result<(), String> {
    let http = crate::providers::http_client(config::CONNECT_TIMEOUT, config::CALL_TIMEOUT);
    let client = build(creds, http).map_err(|e| e.to_string())?;
    check_client(client.as_ref()).await
}

async fn check_client(client: &dyn PaymentProvider) -> Result<(), String> {
    let probe = {
        use rand::distributions::{Alphanumeric, DistString};
        let tail = Alphanumeric.sample_string(&mut rand::thread_rng(), 16);
        OutTradeNo::new(format!("scanpay_check_{tail}"))
    };
    match client.query(&probe).await {
        // Alipay: the query of an unknown trade answers (signed) ACQ.TRADE_NOT_EXIST.
        Ok(s) if s.state == TradeState::Pending && s.provider_trade_no.is_none() => Ok(()),
        Ok(s) => Err(format!(
            "the provider answered about a trade that cannot exist ({})",
            s.provider_state
        )),
        // WeChat Pay: a signed 404 ORDER_NOT_EXIST.
        Err(ProviderError::Business { code, .. }) if code == "ORDER_NOT_EXIST" => Ok(()),
        Err(e) => Err(format!("the provider refused the check: {e}")),
    }
}
