//! Public and private signing keys.
//!
//! Public keys are read from PEM `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7), the form cosign,
//! OpenSSL and securesystemslib all write. A key's Lineage id is the lowercase hex SHA-256 of
//! its SPKI DER, so the same key has the same id whichever tool exported it.
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
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, ObjectIdentifier, PrivateKeyInfo};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

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

/// The signature algorithm a public key is used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256 (FIPS 186-5); signatures in ASN.1 DER or raw r||s.
    EcdsaP256Sha256,
    /// ECDSA over NIST P-384 with SHA-384, as cosign and sigstore pair them.
    EcdsaP384Sha384,
    /// ECDSA over NIST P-521 with SHA-512.
    EcdsaP521Sha512,
    /// Ed25519 (RFC 8032 §5.1).
    Ed25519,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256 (RFC 8017 §8.1), securesystemslib's
    /// `rsassa-pss-sha256`, which in-toto uses.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2).
    RsaPkcs1Sha256,
}

impl KeyAlgorithm {
    /// A short stable name for output (`ecdsa-p256-sha256`, `ed25519`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            KeyAlgorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            KeyAlgorithm::EcdsaP521Sha512 => "ecdsa-p521-sha512",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::RsaPssSha256 => "rsa-pss-sha256",
            KeyAlgorithm::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which RSA signature scheme to use for an `rsaEncryption` key, whose SPKI does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaScheme {
    /// RSASSA-PSS with SHA-256, the in-toto / securesystemslib default.
    #[default]
    PssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Pkcs1Sha256,
}

/// A parsed verification key.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    key_id: String,
    /// The key bound to its main verification algorithm (ASN.1 ECDSA for P-256).
    primary: ParsedPublicKey,
    /// For ECDSA only: the same key bound to fixed-width r||s signatures.
    fixed: Option<ParsedPublicKey>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && self.spki_der == other.spki_der
    }
}
impl Eq for PublicKey {}

impl PublicKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM block. RSA keys are taken as RSASSA-PSS
    /// SHA-256 keys; see [`PublicKey::from_pem_with`].
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_pem_with(pem, RsaScheme::default())
    }

    /// Reads a PEM SPKI; `rsa` says which scheme an `rsaEncryption` key signs with.
    pub fn from_pem_with(pem: &str, rsa: RsaScheme) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(pem)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(KeyError::WrongPemLabel {
                expected: PUBLIC_KEY_LABEL.into(),
                found: label,
            });
        }
        PublicKey::from_spki_der_with(&der, rsa)
    }

    /// Reads a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        PublicKey::from_spki_der_with(der, RsaScheme::default())
    }

    /// Reads a DER `SubjectPublicKeyInfo`; `rsa` as in [`PublicKey::from_pem_with`].
    pub fn from_spki_der_with(der: &[u8], rsa: RsaScheme) -> Result<PublicKey, KeyError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| KeyError::Der(e.to_string()))?;
        let oid = spki.algorithm.oid;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Der("public key BIT STRING has unused bits".into()))?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected(e.to_string());
        let (algorithm, primary, fixed) = if oid == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyError::Der(format!("EC key without a named curve: {e}")))?;
            // Each curve with the hash its size calls for (FIPS 186-5, and cosign's pairing).
            let (algorithm, asn1, fixed) = if curve == OID_P256 {
                (
                    KeyAlgorithm::EcdsaP256Sha256,
                    &sig::ECDSA_P256_SHA256_ASN1,
                    &sig::ECDSA_P256_SHA256_FIXED,
                )
            } else if curve == OID_P384 {
                (
                    KeyAlgorithm::EcdsaP384Sha384,
                    &sig::ECDSA_P384_SHA384_ASN1,
                    &sig::ECDSA_P384_SHA384_FIXED,
                )
            } else if curve == OID_P521 {
                (
                    KeyAlgorithm::EcdsaP521Sha512,
                    &sig::ECDSA_P521_SHA512_ASN1,
                    &sig::ECDSA_P521_SHA512_FIXED,
                )
            } else {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "EC key on curve {curve}"
                )));
            };
            // Both bindings parse the uncompressed point; the fixed one accepts the raw
            // r||s form used by the DSSE protocol.md example.
            let primary = ParsedPublicKey::new(asn1, bits).map_err(rejected)?;
            let fixed = ParsedPublicKey::new(fixed, bits).map_err(rejected)?;
            (algorithm, primary, Some(fixed))
        } else if oid == OID_ED25519 {
            let primary = ParsedPublicKey::new(&sig::ED25519, bits).map_err(rejected)?;
            (KeyAlgorithm::Ed25519, primary, None)
        } else if oid == OID_RSA_ENCRYPTION || oid == OID_RSASSA_PSS {
            // The BIT STRING holds a PKCS#1 RSAPublicKey for both OIDs. An id-RSASSA-PSS key
            // is PSS-only by definition (RFC 4055 §1.2); we assume SHA-256 parameters.
            let scheme = if oid == OID_RSASSA_PSS {
                RsaScheme::PssSha256
            } else {
                rsa
            };
            let (algorithm, params) = match scheme {
                RsaScheme::PssSha256 => {
                    (KeyAlgorithm::RsaPssSha256, &sig::RSA_PSS_2048_8192_SHA256)
                }
                RsaScheme::Pkcs1Sha256 => (
                    KeyAlgorithm::RsaPkcs1Sha256,
                    &sig::RSA_PKCS1_2048_8192_SHA256,
                ),
            };
            let primary = ParsedPublicKey::new(params, bits).map_err(rejected)?;
            (algorithm, primary, None)
        } else {
            return Err(KeyError::UnsupportedAlgorithm(oid.to_string()));
        };
        Ok(PublicKey {
            algorithm,
            key_id: hex::encode(Sha256::digest(der)),
            spki_der: der.to_vec(),
            primary,
            fixed,
        })
    }

    /// Builds an Ed25519 key from its raw 32 bytes (RFC 8032 §5.1.5 encoding).
    pub fn ed25519_from_raw(raw: &[u8]) -> Result<PublicKey, KeyError> {
        if raw.len() != 32 {
            return Err(KeyError::Rejected(format!(
                "an Ed25519 public key is 32 bytes, got {}",
                raw.len()
            )));
        }
        // SPKI for Ed25519 (RFC 8410 §4): a fixed 12-byte prefix, then the key.
        let mut der = hex::decode("302a300506032b6570032100").expect("constant hex");
        der.extend_from_slice(raw);
        PublicKey::from_spki_der(&der)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Lowercase hex SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM block (LF line endings).
    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string(PUBLIC_KEY_LABEL, LineEnding::LF, &self.spki_der)
            .expect("a PEM encoding of bytes we hold cannot fail")
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    ///
    /// ECDSA signatures are accepted in ASN.1 DER (what cosign and securesystemslib write) and
    /// as raw 64-byte r||s (the DSSE protocol.md example). Trying both is safe: each form is
    /// checked against the same (r, s) equation, so neither admits a forgery the other rejects.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if let Some(fixed) = &self.fixed {
            let width = match self.algorithm {
                KeyAlgorithm::EcdsaP384Sha384 => 96,
                KeyAlgorithm::EcdsaP521Sha512 => 132,
                _ => 64,
            };
            if signature.len() == width && fixed.verify_sig(message, signature).is_ok() {
                return true;
            }
        }
        self.primary.verify_sig(message, signature).is_ok()
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
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "EC key on curve {curve}"
                )));
            }
            let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                .map_err(rejected)?;
            let v1 = pair.to_pkcs8v1().map_err(|_| KeyError::Signing)?;
            (Signer::P256(pair), v1.as_ref().to_vec())
        } else if oid == OID_ED25519 {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
            let v1 = pair.to_pkcs8v1().map_err(|_| KeyError::Signing)?;
            (Signer::Ed25519(pair), v1.as_ref().to_vec())
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
        let info =
            EncryptedPrivateKeyInfo::from_der(der).map_err(|e| KeyError::Der(e.to_string()))?;
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
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| KeyError::Pem("no `-----BEGIN` line".into()))?;
    let rest = &text[start..];
    let end_marker = rest
        .find("-----END ")
        .ok_or_else(|| KeyError::Pem("no `-----END` line".into()))?;
    let after_end = &rest[end_marker + "-----END ".len()..];
    let close = after_end
        .find("-----")
        .ok_or_else(|| KeyError::Pem("unterminated `-----END` line".into()))?;
    let block = &rest[..end_marker + "-----END ".len() + close + "-----".len()];
    let (label, der) = pkcs8::der::pem::decode_vec(block.trim().as_bytes())
        .map_err(|e| KeyError::Pem(e.to_string()))?;
    Ok((label.to_string(), der))
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
