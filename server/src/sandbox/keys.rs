//! The sandbox's key material, generated on first start and kept in `<data dir>/sandbox/`:
//! each gateway's own RSA-2048 pair (it signs responses and notifications), and a merchant
//! pair per provider plus a WeChat APIv3 key that ScanPay is wired to automatically. The
//! public halves are what a ScanPay configuration points at, exactly as with real providers.

use crate::providers::crypto::{RsaSigner, RsaVerifier};
use crate::providers::keys::{private_key_from_text, public_key_from_text, KeyError};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SandboxKeyError {
    #[error("cannot write sandbox keys in {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("sandbox key {path}: {source}")]
    Key { path: String, source: KeyError },
}

/// File paths of one key pair.
#[derive(Debug, Clone)]
pub struct PairFiles {
    pub private: PathBuf,
    pub public: PathBuf,
}

/// All sandbox keys, parsed.
pub struct SandboxKeys {
    pub dir: PathBuf,
    pub alipay_gateway: RsaSigner,
    pub alipay_merchant: RsaVerifier,
    pub wechat_gateway: RsaSigner,
    pub wechat_merchant: RsaVerifier,
    pub wechat_apiv3_key: [u8; 32],
    /// The official account's AppSecret (OAuth `sns/oauth2/access_token`).
    pub wechat_app_secret: crate::infra::secret::Secret<String>,
}

pub fn pair(dir: &Path, name: &str) -> PairFiles {
    PairFiles {
        private: dir.join(format!("{name}-private.pem")),
        public: dir.join(format!("{name}-public.pem")),
    }
}

pub fn apiv3_key_file(dir: &Path) -> PathBuf {
    dir.join("wechat-apiv3.key")
}

pub fn app_secret_file(dir: &Path) -> PathBuf {
    dir.join("wechat-appsecret.key")
}

/// Writes 32 random letters and digits to `path` unless it exists.
fn ensure_random(path: &Path) -> Result<(), SandboxKeyError> {
    if path.exists() {
        return Ok(());
    }
    use rand::distributions::{Alphanumeric, DistString};
    write_private(
        path,
        Alphanumeric
            .sample_string(&mut rand::thread_rng(), 32)
            .as_bytes(),
    )
}

fn io(path: &Path, e: impl std::fmt::Display) -> SandboxKeyError {
    SandboxKeyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Creates a key pair unless both files exist.
fn ensure_pair(files: &PairFiles) -> Result<(), SandboxKeyError> {
    if files.private.exists() && files.public.exists() {
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| io(&files.private, e))?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| io(&files.private, e))?;
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| io(&files.public, e))?;
    write_private(&files.private, private.as_bytes())?;
    std::fs::write(&files.public, public).map_err(|e| io(&files.public, e))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SandboxKeyError> {
    std::fs::write(path, bytes).map_err(|e| io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(path, e))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, SandboxKeyError> {
    std::fs::read_to_string(path).map_err(|e| io(path, e))
}

impl SandboxKeys {
    /// Loads the keys from `dir`, generating whatever is missing.
    pub fn load_or_create(dir: &Path) -> Result<SandboxKeys, SandboxKeyError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for name in [
            "alipay-gateway",
            "alipay-merchant",
            "wechat-gateway",
            "wechat-merchant",
        ] {
            ensure_pair(&pair(dir, name))?;
        }
        let apiv3 = apiv3_key_file(dir);
        ensure_random(&apiv3)?;
        let app_secret = app_secret_file(dir);
        ensure_random(&app_secret)?;
        let signer = |name: &str| {
            let p = pair(dir, name).private;
            private_key_from_text(&read(&p)?).map_err(|source| SandboxKeyError::Key {
                path: p.display().to_string(),
                source,
            })
        };
        let verifier = |name: &str| {
            let p = pair(dir, name).public;
            public_key_from_text(&read(&p)?).map_err(|source| SandboxKeyError::Key {
                path: p.display().to_string(),
                source,
            })
        };
        let key_text = read(&apiv3)?;
        let wechat_apiv3_key: [u8; 32] = key_text
            .trim_end()
            .as_bytes()
            .try_into()
            .map_err(|_| io(&apiv3, "the APIv3 key must be 32 characters"))?;
        Ok(SandboxKeys {
            dir: dir.to_path_buf(),
            alipay_gateway: signer("alipay-gateway")?,
            alipay_merchant: verifier("alipay-merchant")?,
            wechat_gateway: signer("wechat-gateway")?,
            wechat_merchant: verifier("wechat-merchant")?,
            wechat_apiv3_key,
            wechat_app_secret: crate::infra::secret::Secret::new(
                read(&app_secret)?.trim_end().to_string(),
            ),
        })
    }
}

/// One merchant registered at the sandbox: its ids at both providers and its keys. The
/// first (index 0, `keys/`) is the one ScanPay is wired to by default; more are added with
/// [`crate::sandbox::Sandbox::add_account`] (`keys/accounts/<name>/`), each with its own
/// keys, so a merchant's own account can be tried without real ones.
pub struct SandboxAccount {
    pub name: String,
    pub index: u32,
    pub alipay_app_id: String,
    pub alipay_seller_id: String,
    pub wechat_appid: String,
    pub wechat_mchid: String,
    /// The serial of its merchant API certificate.
    pub wechat_serial: String,
    /// The id of its "WeChat Pay public key".
    pub wechat_key_id: String,
    /// The `app_auth_token` its authorisation of another account's Alipay app gave: with
    /// it, that app acts for this account (third-party mode).
    pub alipay_app_auth_token: String,
    pub keys: SandboxKeys,
}

impl SandboxAccount {
    /// The account numbered `index` whose keys are in `dir`; index 0 has the ids of
    /// `sandbox::ALIPAY_APP_ID` and the others.
    pub fn load_or_create(
        name: &str,
        index: u32,
        dir: &Path,
    ) -> Result<SandboxAccount, SandboxKeyError> {
        let keys = SandboxKeys::load_or_create(dir)?;
        let token_file = dir.join("alipay-app-auth-token");
        if !token_file.exists() {
            use rand::distributions::{Alphanumeric, DistString};
            let token = format!(
                "202612BB{}",
                Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
            );
            write_private(&token_file, token.as_bytes())?;
        }
        let alipay_app_auth_token = read(&token_file)?.trim().to_string();
        let n = index + 1;
        Ok(SandboxAccount {
            name: name.to_string(),
            index,
            alipay_app_id: format!("90210000000{n:05}"),
            alipay_seller_id: format!("20880000000{n:05}"),
            wechat_appid: if index == 0 {
                super::WECHAT_APPID.to_string()
            } else {
                format!("wx77777777777{n:05}")
            },
            wechat_mchid: format!("19000{n:05}"),
            wechat_serial: format!("3775B6A45ACD588826D15E583A95F5DD{n:08}"),
            wechat_key_id: format!("PUB_KEY_ID_01190000000120261127000000000{n:05}"),
            alipay_app_auth_token,
            keys,
        })
    }
}
