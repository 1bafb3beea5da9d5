//! Public and private signing keys.
//!
//! Public keys are `lineage_log::keys::PublicKey`, Lineage's one public-key type (re-exported
//! here): PEM `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7), the form cosign, OpenSSL and
//! securesystemslib all write. A key's Lineage id is the lowercase hex SHA-256 of its SPKI DER,
//! so the same key has the same id whichever tool exported it.
//!
//! Private keys are PKCS#8 (RFC 5208 / RFC 5958), optionally wrapped in an
//! `EncryptedPrivateKeyInfo` with PBES2 (RFC 8018 §6.2): scrypt (RFC 7914) as the key derivation
//! and AES-256-CBC as the cipher, which OpenSSL reads with `openssl pkey -in key.pem`. ECDSA
//! P-256 with SHA-256 is the default, as in cosign; Ed25519 (RFC 8032) is the alternative.
//!
//! All primitives come from `aws-lc-rs`. Public keys are parsed once, on construction, so a
//! verification does no key decoding (this is what keeps DSSE verification close to the raw
//! signature rate, see `benches/dsse_verify.rs`).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, ObjectIdentifier, PrivateKeyInfo};
use zeroize::Zeroizing;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// PEM label of an unencrypted PKCS#8 key (RFC 7468 §10).
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of a PKCS#8 `EncryptedPrivateKeyInfo` (RFC 7468 §11).
pub const ENCRYPTED_PRIVATE_KEY_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// PEM label of a `SubjectPublicKeyInfo` (RFC 7468 §13).
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Why a key could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the PEM text is malformed: {0}")]
    Pem(String),
    #[error("expected a PEM block labelled `{expected}`, found `{found}`")]
    WrongPemLabel { expected: String, found: String },
    #[error("the key is not valid DER: {0}")]
    Der(String),
    #[error("unsupported key algorithm `{0}`; Lineage reads ECDSA P-256, P-384 and P-521, Ed25519 and RSA keys")]
    UnsupportedAlgorithm(String),
    /// A private key Lineage can verify with but not sign with.
    #[error("{0} keys cannot sign here: Lineage signs with ECDSA P-256 or Ed25519 keys (`lineage key generate` makes one); {0} public keys are accepted for verifying")]
    UnsupportedSigningKey(String),
    #[error("the key material was rejected: {0}")]
    Rejected(String),
    #[error("the private key is encrypted; a passphrase is needed to read it")]
    PassphraseRequired,
    #[error("wrong passphrase: the encrypted private key could not be decrypted with it")]
    WrongPassphrase,
    #[error("encrypted key uses an unsupported protection scheme: {0}")]
    UnsupportedEncryption(String),
    #[error("the system random generator failed")]
    Random,
    #[error("signing failed")]
    Signing,
}

pub use lineage_log::keys::{KeyAlgorithm, PublicKey, RsaScheme};

impl From<lineage_log::keys::KeyError> for KeyError {
    fn from(e: lineage_log::keys::KeyError) -> KeyError {
        use lineage_log::keys::KeyError as K;
        match e {
            K::NotPem => KeyError::Pem("no `PUBLIC KEY` block".into()),
            K::Pem(m) => KeyError::Pem(m),
            K::WrongPemLabel { expected, found } => KeyError::WrongPemLabel { expected, found },
            K::MalformedSpki(m) => KeyError::Der(m),
            K::UnsupportedAlgorithm(m) => KeyError::UnsupportedAlgorithm(m),
            K::Rejected(m) => KeyError::Rejected(m),
            other => KeyError::Rejected(other.to_string()),
        }
    }
}

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA P-256 / SHA-256, the default, usable by cosign.
    #[default]
    EcdsaP256,
    Ed25519,
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<KeyKind, String> {
        match s {
            "ecdsa-p256" | "ecdsa" | "p256" | "p-256" => Ok(KeyKind::EcdsaP256),
            "ed25519" => Ok(KeyKind::Ed25519),
            other => Err(format!(
                "unknown key kind `{other}`; write `ecdsa-p256` or `ed25519`"
            )),
        }
    }
}

enum Signer {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A signing key, held with its PKCS#8 (v1) encoding.
pub struct PrivateKey {
    signer: Signer,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind())
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

/// Cost parameters for scrypt when encrypting a key: N = 2^14, r = 8, p = 1 (16 MiB), the
/// values `openssl pkcs8 -scrypt` uses. N = 2^15 would need exactly OpenSSL's default 32 MiB
/// memory limit plus overhead, and OpenSSL then refuses to read the key.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

impl PrivateKey {
    /// Generates a fresh key from the system random source.
    pub fn generate(kind: KeyKind) -> Result<PrivateKey, KeyError> {
        let rng = SystemRandom::new();
        let doc = match kind {
            KeyKind::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            // v1 (RFC 5208) rather than v2: every PKCS#8 reader understands v1.
            KeyKind::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&rng),
        }
        .map_err(|_| KeyError::Random)?;
        PrivateKey::from_pkcs8_der(doc.as_ref())
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 §5.1.5), as in the DSSE test vectors.
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<PrivateKey, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let doc = pair.to_pkcs8v1().map_err(|_| KeyError::Signing)?;
        PrivateKey::from_pkcs8_der(doc.as_ref())
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo` (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = PrivateKeyInfo::from_der(der).map_err(|e| KeyError::Der(e.to_string()))?;
        let oid = info.algorithm.oid;
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected(e.to_string());
        let (signer, pkcs8) = if oid == OID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyError::Der(format!("EC key without a named curve: {e}")))?;
            if curve != OID_P256 {
                let name = match curve.to_string().as_str() {
                    "1.3.132.0.34" => "ECDSA P-384".to_string(),
                    "1.3.132.0.35" => "ECDSA P-521".to_string(),
                    other => format!("EC (curve {other})"),
                };
                return Err(KeyError::UnsupportedSigningKey(name));
            }
            let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                .map_err(rejected)?;
            let v1 = pair.to_pkcs8v1().map_err(|_| KeyError::Signing)?;
            (Signer::P256(pair), v1.as_ref().to_vec())
        } else if oid == OID_ED25519 {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
            let v1 = pair.to_pkcs8v1().map_err(|_| KeyError::Signing)?;
            (Signer::Ed25519(pair), v1.as_ref().to_vec())
        } else if oid.to_string() == "1.2.840.113549.1.1.1" {
            return Err(KeyError::UnsupportedSigningKey("RSA".into()));
        } else {
            return Err(KeyError::UnsupportedAlgorithm(oid.to_string()));
        };
        let spki = match &signer {
            Signer::P256(p) => p.public_key().as_der(),
            Signer::Ed25519(p) => p.public_key().as_der(),
        }
        .map_err(|_| KeyError::Rejected("could not encode the public key".into()))?;
        let public = PublicKey::from_spki_der(spki.as_ref())?;
        Ok(PrivateKey {
            signer,
            pkcs8: Zeroizing::new(pkcs8),
            public,
        })
    }

    /// Reads a PEM private key: `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `passphrase`.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<PrivateKey, KeyError> {
        let (label, der) = decode_pem(pem)?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            PRIVATE_KEY_LABEL => PrivateKey::from_pkcs8_der(&der),
            ENCRYPTED_PRIVATE_KEY_LABEL => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                PrivateKey::from_encrypted_pkcs8_der(&der, passphrase)
            }
            _ => Err(KeyError::WrongPemLabel {
                expected: format!("{PRIVATE_KEY_LABEL}` or `{ENCRYPTED_PRIVATE_KEY_LABEL}"),
                found: label,
            }),
        }
    }

    /// Reads a DER `EncryptedPrivateKeyInfo` (PBES2, RFC 8018 §6.2).
    pub fn from_encrypted_pkcs8_der(der: &[u8], passphrase: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = EncryptedPrivateKeyInfo::from_der(der).map_err(|e| {
            if is_pbes1(der) {
                KeyError::UnsupportedEncryption(
                    "PBES1, an old password-based scheme (DES or RC2 with MD5 or SHA-1); re-encrypt the key with PBES2: `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD.pem -out NEW.pem`".into(),
                )
            } else {
                KeyError::Der(e.to_string())
            }
        })?;
        use pkcs8::pkcs5::Error as P5;
        let plain = match info.decrypt(passphrase) {
            Ok(doc) => doc,
            // Parameters we cannot use are "unsupported"; every other failure comes from
            // decrypting with the wrong key: CBC unpadding fails (pkcs5 0.7 reports that as
            // `EncryptFailed`), or, about 1 time in 256, unpadding succeeds and the plaintext is
            // not DER.
            Err(pkcs8::Error::EncryptedPrivateKey(
                e @ (P5::AlgorithmParametersInvalid { .. }
                | P5::UnsupportedAlgorithm { .. }
                | P5::NoPbes1CryptSupport),
            )) => return Err(KeyError::UnsupportedEncryption(e.to_string())),
            Err(_) => return Err(KeyError::WrongPassphrase),
        };
        match PrivateKey::from_pkcs8_der(plain.as_bytes()) {
            Err(KeyError::Der(_)) => Err(KeyError::WrongPassphrase),
            other => other,
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self.signer {
            Signer::P256(_) => KeyKind::EcdsaP256,
            Signer::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Same as `self.public_key().key_id()`.
    pub fn key_id(&self) -> &str {
        self.public.key_id()
    }

    /// Signs `message`. ECDSA signatures are ASN.1 DER (what cosign and securesystemslib
    /// write and expect); Ed25519 signatures are the 64-byte RFC 8032 form.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.signer {
            Signer::P256(p) => p
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Signer::Ed25519(p) => Ok(p.sign(message).as_ref().to_vec()),
        }
    }

    /// The unencrypted PKCS#8 v1 DER. Handle with care: this is the secret.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The unencrypted PKCS#8 as a `-----BEGIN PRIVATE KEY-----` PEM block.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(
            pkcs8::der::pem::encode_string(PRIVATE_KEY_LABEL, LineEnding::LF, &self.pkcs8)
                .expect("a PEM encoding of bytes we hold cannot fail"),
        )
    }

    /// The key encrypted under `passphrase` (PBES2: scrypt + AES-256-CBC), DER.
    pub fn to_encrypted_pkcs8_der(&self, passphrase: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        rng.fill(&mut salt).map_err(|_| KeyError::Random)?;
        rng.fill(&mut iv).map_err(|_| KeyError::Random)?;
        let params = pkcs8::pkcs5::scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
            .map_err(|e| KeyError::UnsupportedEncryption(e.to_string()))?;
        let pbes2 = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(params, &salt, &iv)
            .map_err(|e| KeyError::UnsupportedEncryption(e.to_string()))?;
        let info =
            PrivateKeyInfo::from_der(&self.pkcs8).map_err(|e| KeyError::Der(e.to_string()))?;
        let doc = info
            .encrypt_with_params(pbes2, passphrase)
            .map_err(|e| KeyError::UnsupportedEncryption(e.to_string()))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// The key encrypted under `passphrase`, as `-----BEGIN ENCRYPTED PRIVATE KEY-----` PEM.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, KeyError> {
        let der = self.to_encrypted_pkcs8_der(passphrase)?;
        pkcs8::der::pem::encode_string(ENCRYPTED_PRIVATE_KEY_LABEL, LineEnding::LF, &der)
            .map_err(|e| KeyError::Pem(e.to_string()))
    }
}

/// Decodes the first PEM block in `text`, ignoring any explanatory text around it (RFC 7468
/// §5.2 allows it, and tools such as `openssl x509 -text` write it).
pub(crate) fn decode_pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    Ok(lineage_log::keys::pem_block(text)?)
}

/// Whether an `EncryptedPrivateKeyInfo` names a PBES1 scheme (RFC 8018 §6.1, OIDs
/// 1.2.840.113549.1.5.{1,3,4,6,10,11}) or a PKCS#12 password-based one
/// (1.2.840.113549.1.12.1.*), which older tools still write: its algorithm OID is the first
/// OID in the structure.
fn is_pbes1(der: &[u8]) -> bool {
    const PKCS5: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
    const PKCS12_PBE: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
    // The length of a DER header (tag and length octets) at the start of `b`.
    let header = |b: &[u8]| -> Option<usize> {
        let first = *b.get(1)?;
        Some(if first < 0x80 {
            2
        } else {
            2 + usize::from(first & 0x7f)
        })
    };
    let Some(outer) = header(der).filter(|_| der.first() == Some(&0x30)) else {
        return false;
    };
    let rest = &der[outer.min(der.len())..];
    let Some(inner) = header(rest).filter(|_| rest.first() == Some(&0x30)) else {
        return false;
    };
    let rest = &rest[inner.min(rest.len())..];
    if rest.first() != Some(&0x06) {
        return false;
    }
    let len = rest.get(1).copied().unwrap_or(0) as usize;
    let Some(oid) = rest.get(2..2 + len) else {
        return false;
    };
    (oid.len() == 9 && oid[..8] == PKCS5 && matches!(oid[8], 1 | 3 | 4 | 6 | 10 | 11))
        || (oid.len() == 10 && oid[..9] == PKCS12_PBE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::der::Encode;

    /// Encrypts `plaintext` as an `EncryptedPrivateKeyInfo` under `pw`.
    fn encrypt_raw(plaintext: &[u8], pw: &[u8]) -> Vec<u8> {
        let params = pkcs8::pkcs5::scrypt::Params::new(10, 8, 1, 32).unwrap();
        let pbes2 =
            pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(params, &[7; 16], &[9; 16]).unwrap();
        let ciphertext = pbes2.encrypt(pw, plaintext).unwrap();
        EncryptedPrivateKeyInfo {
            encryption_algorithm: pbes2.into(),
            encrypted_data: &ciphertext,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn plaintext_that_is_not_pkcs8_reads_as_wrong_passphrase() {
        // What a wrong passphrase yields when CBC unpadding happens to succeed.
        for garbage in [
            &b"\x01\x02 not DER"[..],
            &[0x30, 0x03, 0x02, 0x01, 0x00][..],
        ] {
            let der = encrypt_raw(garbage, b"pw");
            assert!(matches!(
                PrivateKey::from_encrypted_pkcs8_der(&der, b"pw"),
                Err(KeyError::WrongPassphrase)
            ));
        }
    }

    #[test]
    fn wrong_passphrases_are_always_reported_as_such() {
        let key = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let der = encrypt_raw(&key.to_pkcs8_der(), b"right");
        assert_eq!(
            PrivateKey::from_encrypted_pkcs8_der(&der, b"right")
                .unwrap()
                .key_id(),
            key.key_id()
        );
        for i in 0..300 {
            let wrong = format!("wrong-{i}");
            assert!(
                matches!(
                    PrivateKey::from_encrypted_pkcs8_der(&der, wrong.as_bytes()),
                    Err(KeyError::WrongPassphrase)
                ),
                "{wrong}"
            );
        }
    }
}
