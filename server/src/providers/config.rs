//! Builds the enabled providers from their settings at start-up: reads each key file once,
//! parses it into a signer or verifier, and shares one HTTP client. A bad key stops start-up
//! with a message naming the setting.

use super::alipay::{Alipay, AlipayAccount};
use super::crypto::{RsaSigner, RsaVerifier};
use super::keys::{self, KeyError};
use super::wechat::{WechatAccount, WechatPay};
use super::{http_client, Channel, PaymentProvider};
use crate::infra::clock::SystemClock;
use crate::infra::secret::Secret;
use crate::merchants::MerchantId;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Alipay credentials. Key files are read and parsed at start-up (below).
#[derive(Debug, Clone)]
pub struct AlipaySettings {
    pub gateway: String,
    pub app_id: String,
    pub seller_id: String,
    pub private_key_file: PathBuf,
    pub public_key_file: PathBuf,
}

/// WeChat Pay credentials. Key files are read and parsed at start-up (below).
#[derive(Debug, Clone)]
pub struct WechatSettings {
    pub api_base: String,
    pub appid: String,
    pub mchid: String,
    pub private_key_file: PathBuf,
    pub cert_serial: String,
    pub public_key_file: PathBuf,
    pub public_key_id: String,
    pub apiv3_key_file: PathBuf,
    /// The official account's AppSecret (OAuth for JSAPI); `None`: no in-WeChat payment.
    pub app_secret_file: Option<PathBuf>,
}

/// How long a provider call may take: connect, and in all.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("a {0} sub-merchant has no keys of its own: the operator's account acts for it")]
    SubMerchant(&'static str),
    #[error("{setting}: {source}")]
    Key {
        setting: &'static str,
        source: KeyError,
    },
    #[error(
        "{setting}: the APIv3 key must be exactly 32 ASCII characters, the file holds {length}"
    )]
    ApiV3KeyLength {
        setting: &'static str,
        length: usize,
    },
}

/// The providers this process can use. `None`: disabled (no credentials).
#[derive(Clone, Default)]
pub struct Providers {
    pub alipay: Option<Arc<dyn PaymentProvider>>,
    pub wechat: Option<Arc<dyn PaymentProvider>>,
    /// Live posture: the channels the sandbox serves take no order of a live merchant.
    sandbox_only_for_demo: Vec<Channel>,
}

impl Providers {
    /// Marks channels the sandbox serves in the live posture: they serve the demo merchant
    /// alone, so a sandbox "payment" can never pay a live merchant's order. (In the demo
    /// posture no channel is marked.)
    pub fn sandbox_only_for_demo(mut self, sandboxed: &[Channel]) -> Providers {
        self.sandbox_only_for_demo = sandboxed.to_vec();
        self
    }

    /// Whether `channel` may take a payment for an order of `merchant_id`.
    pub fn takes_orders_of(&self, channel: Channel, merchant_id: &MerchantId) -> bool {
        self.get(channel).is_some()
            && (!self.sandbox_only_for_demo.contains(&channel)
                || *merchant_id == crate::merchants::DEMO_MERCHANT_ID)
    }

    /// The provider of a channel, when enabled.
    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn PaymentProvider>> {
        match channel {
            Channel::Alipay => self.alipay.as_ref(),
            Channel::Wechat => self.wechat.as_ref(),
        }
    }

    /// The enabled channels, Alipay first.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| self.get(*c).is_some())
            .collect()
    }

    /// The channels that take orders of `merchant_id`, Alipay first.
    pub fn channels_for(&self, merchant_id: &MerchantId) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| self.takes_orders_of(*c, merchant_id))
            .collect()
    }

    /// The providers whose settings are given (`Config::alipay`, `Config::wechat`).
    pub fn from_settings(
        alipay_settings: Option<&AlipaySettings>,
        wechat_settings: Option<&WechatSettings>,
    ) -> Result<Providers, ProviderSetupError> {
        let http = http_client(CONNECT_TIMEOUT, CALL_TIMEOUT);
        let alipay = alipay_settings
            .map(|s| alipay(s, http.clone()))
            .transpose()?;
        let wechat = wechat_settings
            .map(|s| wechat(s, http.clone()))
            .transpose()?;
        match &alipay {
            Some(_) => {
                tracing::info!(gateway = %alipay_settings.map(|s| s.gateway.as_str()).unwrap_or_default(), "Alipay enabled")
            }
            None => tracing::info!("Alipay disabled: no credentials (SCANPAY_ALIPAY_APP_ID, …)"),
        }
        match &wechat {
            Some(_) => {
                tracing::info!(api = %wechat_settings.map(|s| s.api_base.as_str()).unwrap_or_default(), "WeChat Pay enabled")
            }
            None => tracing::info!("WeChat Pay disabled: no credentials (SCANPAY_WECHAT_MCHID, …)"),
        }
        Ok(Providers {
            alipay,
            wechat,
            sandbox_only_for_demo: Vec::new(),
        })
    }
}

fn signer(setting: &'static str, text: &str) -> Result<RsaSigner, ProviderSetupError> {
    keys::private_key_from_text(text).map_err(|source| ProviderSetupError::Key { setting, source })
}

fn verifier(setting: &'static str, text: &str) -> Result<RsaVerifier, ProviderSetupError> {
    keys::public_key_from_text(text).map_err(|source| ProviderSetupError::Key { setting, source })
}

fn read(setting: &'static str, path: &Path) -> Result<String, ProviderSetupError> {
    keys::read_key_file(path).map_err(|source| ProviderSetupError::Key { setting, source })
}

/// The names a key is known by in errors: the global settings' variables, or a command's
/// flags for a merchant's own account.
#[derive(Clone, Copy, Debug)]
pub struct KeyNames {
    pub private_key: &'static str,
    pub public_key: &'static str,
    pub apiv3_key: &'static str,
}

/// The global settings' names.
pub const SETTING_NAMES_ALIPAY: KeyNames = KeyNames {
    private_key: "SCANPAY_ALIPAY_PRIVATE_KEY_FILE",
    public_key: "SCANPAY_ALIPAY_PUBLIC_KEY_FILE",
    apiv3_key: "",
};
pub const SETTING_NAMES_WECHAT: KeyNames = KeyNames {
    private_key: "SCANPAY_WECHAT_PRIVATE_KEY_FILE",
    public_key: "SCANPAY_WECHAT_PUBLIC_KEY_FILE",
    apiv3_key: "SCANPAY_WECHAT_APIV3_KEY_FILE",
};

fn alipay(
    s: &AlipaySettings,
    http: reqwest::Client,
) -> Result<Arc<dyn PaymentProvider>, ProviderSetupError> {
    let names = SETTING_NAMES_ALIPAY;
    let account = AlipayAccount {
        gateway: s.gateway.clone(),
        app_id: s.app_id.clone(),
        seller_id: Some(s.seller_id.clone()),
    };
    alipay_with_keys(
        account,
        &read(names.private_key, &s.private_key_file)?,
        &read(names.public_key, &s.public_key_file)?,
        names,
        http,
    )
}

/// An Alipay client from key texts (PEM or bare base64).
pub fn alipay_with_keys(
    account: AlipayAccount,
    private_key: &str,
    public_key: &str,
    names: KeyNames,
    http: reqwest::Client,
) -> Result<Arc<dyn PaymentProvider>, ProviderSetupError> {
    Ok(Arc::new(Alipay::new(
        account,
        Arc::new(signer(names.private_key, private_key)?),
        Arc::new(verifier(names.public_key, public_key)?),
        http,
        CALL_TIMEOUT,
    )))
}

fn wechat(
    s: &WechatSettings,
    http: reqwest::Client,
) -> Result<Arc<dyn PaymentProvider>, ProviderSetupError> {
    let names = SETTING_NAMES_WECHAT;
    let account = WechatAccount {
        api_base: s.api_base.clone(),
        appid: s.appid.clone(),
        mchid: s.mchid.clone(),
        cert_serial: s.cert_serial.clone(),
        wechat_key_id: s.public_key_id.clone(),
        app_secret: s
            .app_secret_file
            .as_ref()
            .map(|f| {
                read("SCANPAY_WECHAT_APP_SECRET_FILE", f).map(|t| Secret::new(t.trim().to_string()))
            })
            .transpose()?,
    };
    wechat_with_keys(
        account,
        &read(names.private_key, &s.private_key_file)?,
        &read(names.public_key, &s.public_key_file)?,
        &read(names.apiv3_key, &s.apiv3_key_file)?,
        names,
        http,
    )
}

/// The APIv3 key from its file's text: exactly 32 ASCII characters (a final newline aside).
pub fn apiv3_key(raw: &str, setting: &'static str) -> Result<[u8; 32], ProviderSetupError> {
    let trimmed = raw.trim_end_matches(['\r', '\n']);
    trimmed
        .as_bytes()
        .try_into()
        .map_err(|_| ProviderSetupError::ApiV3KeyLength {
            setting,
            length: trimmed.len(),
        })
}

/// A WeChat Pay client from key texts.
pub fn wechat_with_keys(
    account: WechatAccount,
    private_key: &str,
    public_key: &str,
    apiv3: &str,
    names: KeyNames,
    http: reqwest::Client,
) -> Result<Arc<dyn PaymentProvider>, ProviderSetupError> {
    let key = apiv3_key(apiv3, names.apiv3_key)?;
    Ok(Arc::new(WechatPay::new(
        account,
        Arc::new(signer(names.private_key, private_key)?),
        Arc::new(verifier(names.public_key, public_key)?),
        Secret::new(key),
        http,
        CALL_TIMEOUT,
        Arc::new(SystemClock),
    )))
}
