//! Secrets at rest: AES-256-GCM under the operator's master key.
//!
//! The master key file (`SCANPAY_MASTER_KEY_FILE`) holds one or more keys, one per line, each
//! 32 random bytes in base64; `#` starts a comment. The first key seals; every key opens what
//! it sealed. Rotation: put a new key on the first line, keep the old ones below, run
//! `scanpay merchant credentials reseal` (everything is sealed again under the first key),
//! then drop the old lines. A sealed value names the key that sealed it (its id: the first
//! 16 hex digits of a SHA-256 of the key), never the key itself.
//!
//! Each value is sealed with a fresh 96-bit nonce and with associated data that says what it
//! is (the merchant and the channel, say), so a sealed value copied into another row does not
//! open there.

use super::secret::Secret;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read the master key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the master key file {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("the master key file {path}, line {line}: a key is 32 random bytes in base64 (44 characters; `openssl rand -base64 32` makes one)")]
    BadKey { path: String, line: usize },
    #[error("the master key file {0} holds no key")]
    Empty(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Sealed under a key this keyring does not hold (rotated away too early?).
    #[error("sealed under master key {0}, which the master key file does not hold")]
    UnknownKey(String),
    /// Not ours, cut, altered, or moved to another row.
    #[error("a sealed value does not open: altered, or not for this place")]
    Corrupt,
}

/// The operator's master keys; the first one seals.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Secret<[u8; 32]>)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

fn key_id(key: &[u8; 32]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"scanpay master key\0");
    h.update(key);
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Keyring {
    /// Keys from the text of a master key file (`path` names it in errors).
    pub fn from_text(text: &str, path: &str) -> Result<Keyring, KeyringError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let key: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(line)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or(KeyringError::BadKey {
                    path: path.to_string(),
                    line: n + 1,
                })?;
            keys.push((key_id(&key), Secret::new(key)));
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty(path.to_string()));
        }
        Ok(Keyring { keys })
    }

    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyringError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Keyring::from_text(&text, &path.display().to_string())
    }

    /// Loads the file, creating it with one new key (mode 0600) if it does not exist: the
    /// demo posture's default, `<data dir>/master.key`.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyringError> {
        if !path.exists() {
            let write = |e: std::io::Error| KeyringError::Write {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            let text = format!(
                "# ScanPay master key: it opens every merchant's provider credentials. Keep a copy.\n{}\n",
                Keyring::new_key_text()
            );
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(write)?;
            }
            std::fs::write(path, text).map_err(write)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(write)?;
            }
        }
        Keyring::load(path)
    }

    /// A new random key, as a line of a master key file.
    pub fn new_key_text() -> String {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// `plain` sealed under the first key, with `context` bound to it: `(key id, sealed)`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> (String, String) {
        use rand::RngCore;
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(key.expose().into());
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        (
            id.clone(),
            base64::engine::general_purpose::STANDARD.encode(out),
        )
    }

    /// Opens what [`Keyring::seal`] sealed under `key_id` with the same `context`.
    pub fn open(&self, key_id: &str, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SealError::Corrupt)?;
        if raw.len() < 12 + 16 {
            return Err(SealError::Corrupt);
        }
        let (nonce, body) = raw.split_at(12);
        Aes256Gcm::new(key.expose().into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::from_text(&lines.join("\n"), "test").expect("keyring")
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let a = Keyring::new_key_text();
        let b = Keyring::new_key_text();
        let one = ring(&[&a]);
        let (id, sealed) = one.seal("mer_a|wechat", b"-----BEGIN PRIVATE KEY-----");
        assert_eq!(id, one.current_id());
        assert!(!sealed.contains("PRIVATE"), "{sealed}");
        assert_eq!(
            one.open(&id, "mer_a|wechat", &sealed).expect("opens"),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // Moved to another merchant's row: refused.
        assert_eq!(
            one.open(&id, "mer_b|wechat", &sealed),
            Err(SealError::Corrupt)
        );
        // Another key: refused by id; a flipped byte: refused.
        let other = ring(&[&b]);
        assert!(matches!(
            other.open(&id, "mer_a|wechat", &sealed),
            Err(SealError::UnknownKey(_))
        ));
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .expect("b64");
        raw[20] ^= 1;
        let flipped = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(
            one.open(&id, "mer_a|wechat", &flipped),
            Err(SealError::Corrupt)
        );
        // Rotation: a new first key seals, the old one still opens.
        let rotated = ring(&[&b, "# old", &a]);
        assert_ne!(rotated.current_id(), id);
        assert!(rotated.open(&id, "mer_a|wechat", &sealed).is_ok());
    }

    #[test]
    fn bad_key_files_are_refused_with_the_line() {
        let Err(e) = Keyring::from_text("# c\n\nnot-base64\n", "/etc/scanpay/master.key") else {
            panic!("a line that is not base64 is refused");
        };
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(Keyring::from_text("# nothing\n", "x").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(Keyring::from_text(&short, "x").is_err());
        let k = ring(&[&Keyring::new_key_text()]);
        assert!(!format!("{k:?}").contains('='), "{k:?}");
    }
}
