//! Public keys as Sigstore carries them: DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), in PEM
//! (RFC 7468) or raw, verified with aws-lc-rs.
//!
//! The algorithm is fixed by the key (and, for ECDSA, its curve) and never by a field in the
//! signed data, so a signature cannot pick a weaker check. The ECDSA hash follows Sigstore's
//! `PublicKeyDetails`: P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;

use crate::der::{self, tag};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// The key algorithms this crate verifies with, for errors that refuse another one.
pub const SUPPORTED_KEYS: &str = "ECDSA P-256, P-384, P-521, RSA, Ed25519";

/// The kind of a public key, which decides how it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::EcdsaP521 => "ECDSA P-521",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// Hash algorithms a signature may be computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The message digest algorithms this crate verifies, as protobuf-specs `HashAlgorithm` names
/// them; an error that refuses another one lists these.
pub const SUPPORTED_HASHES: &str = "SHA2_256, SHA2_384, SHA2_512";

impl Hash {
    /// Parse a digest algorithm name as bundles and Rekor entries write it: protobuf-specs
    /// `HashAlgorithm` (`SHA2_256`) or Rekor v1's lowercase form (`sha256`).
    pub fn from_name(name: &str) -> Option<Hash> {
        match name {
            "SHA2_256" | "sha256" => Some(Hash::Sha256),
            "SHA2_384" | "sha384" => Some(Hash::Sha384),
            "SHA2_512" | "sha512" => Some(Hash::Sha512),
            _ => None,
        }
    }

    /// The lowercase name used in digests (`sha256:…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    /// The digest of `data` under this algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }
}

/// A parsed public key: the SPKI DER it came from plus what is needed to verify with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kind: KeyKind,
    spki_der: Vec<u8>,
    /// The `subjectPublicKey` BIT STRING contents: an uncompressed EC point, a PKCS#1
    /// RSAPublicKey, or 32 raw Ed25519 bytes, which is what aws-lc-rs expects for each.
    key_bytes: Vec<u8>,
}

/// Why a key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key: {0}")]
    Pem(String),
    #[error("malformed SubjectPublicKeyInfo: {0}")]
    Der(#[from] der::DerError),
    #[error("unsupported key algorithm `{0}` (supported: {SUPPORTED_KEYS})")]
    Unsupported(String),
}

impl VerifyingKey {
    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<VerifyingKey, KeyError> {
        let outer = der::parse_single(spki, tag::SEQUENCE, "SubjectPublicKeyInfo")?;
        let mut r = outer.reader();
        let alg = r.expect(tag::SEQUENCE, "AlgorithmIdentifier")?;
        let bits = r.expect(tag::BIT_STRING, "subjectPublicKey")?;
        r.finish("SubjectPublicKeyInfo")?;
        let mut ar = alg.reader();
        let oid = der::read_oid(&mut ar, "algorithm")?;
        let kind = match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = der::read_oid(&mut ar, "namedCurve")?;
                match curve.as_str() {
                    OID_P256 => KeyKind::EcdsaP256,
                    OID_P384 => KeyKind::EcdsaP384,
                    OID_P521 => KeyKind::EcdsaP521,
                    other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
                }
            }
            OID_RSA => KeyKind::Rsa,
            OID_ED25519 => KeyKind::Ed25519,
            other => return Err(KeyError::Unsupported(other.to_string())),
        };
        let key_bytes = der::bit_string_bytes(&bits)?.to_vec();
        if kind == KeyKind::Ed25519 && key_bytes.len() != 32 {
            return Err(KeyError::Unsupported("Ed25519 key of wrong length".into()));
        }
        Ok(VerifyingKey {
            kind,
            spki_der: spki.to_vec(),
            key_bytes,
        })
    }

    /// Parse a `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
        let blocks = pem_blocks(pem, "PUBLIC KEY").map_err(KeyError::Pem)?;
        match blocks.as_slice() {
            [one] => VerifyingKey::from_spki_der(one),
            [] => Err(KeyError::Pem("no PUBLIC KEY block".into())),
            _ => Err(KeyError::Pem("more than one PUBLIC KEY block".into())),
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The raw key bytes inside the SPKI (the Ed25519 key for C2SP key IDs).
    pub fn raw_key(&self) -> &[u8] {
        &self.key_bytes
    }

    /// SHA-256 of the SPKI DER: Rekor v1's log ID and Sigstore's managed-key hint.
    pub fn spki_sha256(&self) -> [u8; 32] {
        sha256(&self.spki_der)
    }

    /// The hash Sigstore pairs with this key for ECDSA message signatures.
    pub fn default_hash(&self) -> Hash {
        match self.kind {
            KeyKind::EcdsaP384 => Hash::Sha384,
            KeyKind::EcdsaP521 => Hash::Sha512,
            _ => Hash::Sha256,
        }
    }

    fn algorithm(&self, hash: Hash) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match (self.kind, hash) {
            (KeyKind::EcdsaP256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcdsaP256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (KeyKind::EcdsaP384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (KeyKind::EcdsaP384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcdsaP521, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
            (KeyKind::Rsa, Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, _) => &signature::ED25519,
            _ => return None,
        })
    }

    /// Verify `sig` over `message` with the key's default hash. ECDSA signatures are ASN.1 DER,
    /// as Sigstore, Rekor and cosign produce them.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        self.verify_with(self.default_hash(), message, sig)
    }

    /// Verify `sig` over `message` with an explicit hash (X.509 signature algorithms name one).
    pub fn verify_with(&self, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
        match self.algorithm(hash) {
            Some(alg) => UnparsedPublicKey::new(alg, &self.key_bytes)
                .verify(message, sig)
                .is_ok(),
            None => false,
        }
    }

    /// Verify `sig` over a message of which only the `hash` digest is known (hashedrekord
    /// with only the artifact digest at hand). Ed25519 cannot verify a prehash: always false.
    pub fn verify_prehashed(&self, hash: Hash, digest_bytes: &[u8], sig: &[u8]) -> bool {
        if self.kind == KeyKind::Ed25519 {
            return false;
        }
        let Some(alg) = self.algorithm(hash) else {
            return false;
        };
        let Ok(d) = digest::Digest::import_less_safe(digest_bytes, hash.digest_algorithm()) else {
            return false;
        };
        UnparsedPublicKey::new(alg, &self.key_bytes)
            .verify_digest(&d, sig)
            .is_ok()
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The DER bodies of every PEM block labelled `label` (RFC 7468), in order.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else {
            return Err(format!("`{begin}` without `{end}`"));
        };
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("bad base64 in PEM: {e}"))?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(out)
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
        let key = VerifyingKey::from_pem(P256_PEM).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        assert_eq!(key.raw_key().len(), 65);
        assert_eq!(key.raw_key()[0], 0x04);
    }

    #[test]
    fn rejects_garbage_and_signature_mismatch() {
        assert!(VerifyingKey::from_pem("nope").is_err());
        let key = VerifyingKey::from_pem(P256_PEM).unwrap();
        assert!(!key.verify(b"message", &[0x30, 0x00]));
        assert!(!key.verify_prehashed(Hash::Sha256, &[0; 31], &[0x30, 0x00]));
    }
}
