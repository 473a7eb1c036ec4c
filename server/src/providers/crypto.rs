//! The three cryptographic seams of the provider clients, small and separate (as in
//! wechatpay-go's `core/auth`): a [`Signer`] (our private key), a [`Verifier`] (the provider's
//! public key) and the AEAD decryption of WeChat Pay resources.
//!
//! Why two RSA crates: the `rsa` crate carries RUSTSEC-2023-0071 (a timing side channel in
//! *private-key* operations, no fixed release), and anyone can make us sign by creating
//! orders. So private-key signing uses `ring`, whose RSA signing is constant-time, while
//! `rsa` only parses public keys and verifies (public-key operations hold no secret).
//! Both are SHA256withRSA, PKCS#1 v1.5: deterministic, so two correct signers agree.

use super::keys::KeyError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use std::fmt;

/// Signs messages with SHA256withRSA (PKCS#1 v1.5) under our private key.
pub trait Signer: Send + Sync {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError>;

    fn sign_base64(&self, message: &[u8]) -> Result<String, CryptoError> {
        self.sign(message).map(|s| B64.encode(s))
    }
}

/// Checks SHA256withRSA (PKCS#1 v1.5) signatures under a provider's public key.
pub trait Verifier: Send + Sync {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;

    /// A signature that is not valid base64 simply does not verify.
    fn verify_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        match B64.decode(signature_b64.as_bytes()) {
            Ok(sig) => self.verify(message, &sig),
            Err(_) => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("signing failed")]
    Sign,
    #[error("the AEAD key must be 16 or 32 bytes, got {0}")]
    AeadKeyLength(usize),
    #[error("the AEAD nonce must be 12 bytes, got {0}")]
    AeadNonceLength(usize),
    #[error("the ciphertext is not base64")]
    CiphertextEncoding,
    #[error("decryption failed: wrong key, nonce, associated data, or a modified ciphertext")]
    Decrypt,
}

/// Our private key, in `ring`'s constant-time RSA implementation.
pub struct RsaSigner {
    key: ring::rsa::KeyPair,
    rng: ring::rand::SystemRandom,
}

impl RsaSigner {
    /// From PKCS#8 or PKCS#1 DER.
    pub fn from_der(der: &[u8]) -> Result<RsaSigner, KeyError> {
        let key = ring::rsa::KeyPair::from_pkcs8(der)
            .or_else(|_| ring::rsa::KeyPair::from_der(der))
            .map_err(|_| KeyError::NotAPrivateKey)?;
        Ok(RsaSigner {
            key,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    pub fn modulus_bits(&self) -> usize {
        self.key.public().modulus_len() * 8
    }
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaSigner([redacted], {} bits)", self.modulus_bits())
    }
}

impl Signer for RsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                message,
                &mut signature,
            )
            .map_err(|_| CryptoError::Sign)?;
        Ok(signature)
    }
}

/// A provider's public key, for verification only.
#[derive(Clone, Debug)]
pub struct RsaVerifier {
    key: rsa::pkcs1v15::VerifyingKey<sha2::Sha256>,
}

impl RsaVerifier {
    /// From SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) DER.
    pub fn from_der(der: &[u8]) -> Result<RsaVerifier, KeyError> {
        let key = rsa::RsaPublicKey::from_public_key_der(der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
            .map_err(|_| KeyError::NotAPublicKey)?;
        Ok(RsaVerifier {
            key: rsa::pkcs1v15::VerifyingKey::new(key),
        })
    }
}

impl Verifier for RsaVerifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match rsa::pkcs1v15::Signature::try_from(signature) {
            Ok(sig) => self.key.verify(message, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// AES-GCM decryption as WeChat Pay uses it (AEAD_AES_256_GCM): `ciphertext_b64` is
/// base64(ciphertext ‖ 16-byte tag). A 16-byte key selects AES-128-GCM (same construction;
/// only test vectors use it), a 32-byte key AES-256-GCM.
pub fn aes_gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext_b64: &str,
) -> Result<Vec<u8>, CryptoError> {
    if nonce.len() != 12 {
        return Err(CryptoError::AeadNonceLength(nonce.len()));
    }
    let data = B64
        .decode(ciphertext_b64.as_bytes())
        .map_err(|_| CryptoError::CiphertextEncoding)?;
    let nonce = Nonce::from_slice(nonce);
    let payload = Payload { msg: &data, aad };
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .map_err(|_| CryptoError::AeadKeyLength(16))?
            .decrypt(nonce, payload),
        32 => Aes256Gcm::new_from_slice(key)
            .map_err(|_| CryptoError::AeadKeyLength(32))?
            .decrypt(nonce, payload),
        n => return Err(CryptoError::AeadKeyLength(n)),
    }
    .map_err(|_| CryptoError::Decrypt)
}

/// The inverse of [`aes_gcm_decrypt`] with a 32-byte key: what the sandbox gateway uses to
/// encrypt notification resources.
pub fn aes_256_gcm_encrypt(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<String, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::AeadKeyLength(32))?;
    let data = cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(B64.encode(data))
}
