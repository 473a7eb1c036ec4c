//! Key material as operators get it from the providers: PEM with any armour, a bare base64
//! body, or PEM squeezed onto one line; PKCS#1 or PKCS#8 private keys; SPKI (or PKCS#1)
//! public keys. Keys are parsed once at start-up into the signer / verifier that uses them.

use super::crypto::{RsaSigner, RsaVerifier};
use base64::Engine as _;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not PEM or base64 ({0})")]
    Encoding(String),
    #[error("encrypted PEM keys are not supported: decrypt it first (openssl rsa -in key.pem -out plain.pem)")]
    Encrypted,
    #[error(
        "this is a certificate, not a public key: extract the key with \
         `openssl x509 -pubkey -noout -in cert.pem`"
    )]
    Certificate,
    #[error("not an RSA private key in PKCS#1 or PKCS#8 form")]
    NotAPrivateKey,
    #[error("not an RSA public key in SPKI or PKCS#1 form")]
    NotAPublicKey,
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// The DER bytes inside PEM armour, or of a bare base64 body.
pub fn der_from_text(text: &str) -> Result<Vec<u8>, KeyError> {
    if text.contains("BEGIN CERTIFICATE") {
        return Err(KeyError::Certificate);
    }
    if text.contains("ENCRYPTED") || text.contains("Proc-Type:") {
        return Err(KeyError::Encrypted);
    }
    // Drop armour lines wherever they are (also when everything is on one line).
    let mut body = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----") {
        body.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        rest = match after.find("-----") {
            Some(end) => &after[end + 5..],
            None => return Err(KeyError::Encoding("unterminated PEM armour".into())),
        };
    }
    body.push_str(rest);
    body.retain(|c| !c.is_ascii_whitespace());
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| KeyError::Encoding(e.to_string()))
}

pub fn private_key_from_text(text: &str) -> Result<RsaSigner, KeyError> {
    RsaSigner::from_der(&der_from_text(text)?)
}

pub fn public_key_from_text(text: &str) -> Result<RsaVerifier, KeyError> {
    RsaVerifier::from_der(&der_from_text(text)?)
}

pub fn read_key_file(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

    fn vector(path: &str) -> String {
        std::fs::read_to_string(format!("{VECTORS}/{path}"))
            .unwrap_or_else(|e| panic!("cannot read {VECTORS}/{path}: {e}"))
    }

    #[test]
    fn pkcs1_and_pkcs8_private_keys_parse() {
        private_key_from_text(&vector("alipay/app-private-key-pkcs1.pem")).expect("PKCS#1");
        private_key_from_text(&vector("wechat/test-private-key-pkcs8.pem")).expect("PKCS#8");
    }

    #[test]
    fn public_keys_parse_with_or_without_armour() {
        let pem = vector("alipay/app-public-key.pem");
        public_key_from_text(&pem).expect("SPKI PEM");
        let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        public_key_from_text(&bare).expect("bare base64, as Alipay's console shows it");
        let one_line = pem.replace('\n', "");
        public_key_from_text(&one_line).expect("PEM on one line");
    }

    #[test]
    fn wrong_kinds_of_key_material_are_refused_with_a_reason() {
        let public = vector("alipay/app-public-key.pem");
        assert!(matches!(
            private_key_from_text(&public),
            Err(KeyError::NotAPrivateKey)
        ));
        assert!(matches!(
            public_key_from_text("not a key!"),
            Err(KeyError::Encoding(_))
        ));
        assert!(matches!(
            public_key_from_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            Err(KeyError::Certificate)
        ));
        assert!(matches!(
            private_key_from_text(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----"
            ),
            Err(KeyError::Encrypted)
        ));
    }
}
