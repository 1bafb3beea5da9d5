//! Public keys as Sigstore carries them: DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), in PEM
//! (RFC 7468) or raw. The key type is Lineage's one [`PublicKey`] (`lineage_log::keys`), so a
//! key verifies the same in a bundle, a DSSE envelope and a checkpoint.
//!
//! The algorithm is fixed by the key (and, for ECDSA, its curve) and never by a field in the
//! signed data, so a signature cannot pick a weaker check; the ECDSA hash defaults to
//! Sigstore's `PublicKeyDetails` pairing (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512), and a
//! message signature uses the hash its bundle states. RSA keys are RSASSA-PKCS1-v1_5, as
//! Sigstore's and cosign's are.

use base64::Engine;

pub use lineage_log::keys::{Hash, KeyAlgorithm, KeyError, PublicKey, SUPPORTED_HASHES};

/// The name this crate's API has always used for a key.
pub type VerifyingKey = PublicKey;

/// Parse a DER SubjectPublicKeyInfo as a Sigstore key (RSA as PKCS#1 v1.5).
pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
    PublicKey::from_spki_der_with(der, lineage_log::keys::RsaScheme::Pkcs1Sha256)
}

/// Parse a `-----BEGIN PUBLIC KEY-----` PEM block as a Sigstore key.
pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
    PublicKey::from_pem_with(pem, lineage_log::keys::RsaScheme::Pkcs1Sha256)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Hash::Sha256.digest(data));
    out
}

/// Decode standard base64 (RFC 4648 §4) with padding, as the protobuf JSON mapping writes it.
/// Line breaks are skipped, as Go's decoder (which wrote and reads most bundles) skips them:
/// a time-stamp wrapped at 76 columns is the same bytes.
pub fn b64(input: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if input.contains(['\n', '\r']) {
        let joined: String = input
            .chars()
            .filter(|c| !matches!(c, '\n' | '\r'))
            .collect();
        return base64::engine::general_purpose::STANDARD.decode(joined.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.decode(input.as_bytes())
}

/// Encode standard base64.
pub fn b64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7pBlkILi/WN1X8FiQTlZBK2/GlQD
Ol9bn1iDaSE8B5Eu+uccNndQid2Nmgp8mrTWhT2XhZbshUGMDSDx/6jwvw==
-----END PUBLIC KEY-----
";

    #[test]
    fn parses_p256_pem() {
        let key = from_pem(P256_PEM).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
        assert_eq!(key.raw_key().len(), 65);
        assert_eq!(key.raw_key()[0], 0x04);
    }

    #[test]
    fn rejects_garbage_and_signature_mismatch() {
        assert!(from_pem("nope").is_err());
        let key = from_pem(P256_PEM).unwrap();
        assert!(!key.verify(b"message", &[0x30, 0x00]));
        assert!(!key.verify_prehashed(Hash::Sha256, &[0; 31], &[0x30, 0x00]));
    }

    #[test]
    fn base64_skips_line_breaks_only() {
        assert_eq!(b64("aGVs\nbG8=").unwrap(), b"hello");
        assert!(b64("aGVs bG8=").is_err());
    }
}
