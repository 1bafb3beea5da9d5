//! Public keys that verify note signatures, and the Ed25519 log key that signs checkpoints.
//!
//! [`PublicKey`] is Lineage's one public-key type: `lineage-attest` (DSSE, trust policy) and
//! `lineage-sigstore` (certificates, logs, CT logs) use it too, so a key is parsed, identified
//! and verified the same way everywhere. Keys come as PEM `PUBLIC KEY` (X.509
//! SubjectPublicKeyInfo, RFC 5280 §4.1.2.7; decoded with RustCrypto's `spki` and
//! `pem-rfc7468`): ECDSA P-256/P-384/P-521 (RFC 5480), Ed25519 (RFC 8410), RSA (RFC 8017).
//! Note verifiers also come as a Go `note` verifier-key string
//! `<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`.
//!
//! Key IDs follow C2SP signed-note: Ed25519 uses `SHA-256(name || 0x0A || 0x01 || key)[:4]`;
//! ECDSA (signature type 0x02, and Rekor v1 checkpoints) uses the first four bytes of
//! `SHA-256(SPKI DER)`, which does not depend on the signer's name.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{self as sig, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use spki::der::pem::LineEnding;
use spki::der::Decode;
use spki::ObjectIdentifier;

/// A 4-byte note key ID (C2SP signed-note, big-endian `uint32` on the wire).
pub type KeyId = [u8; 4];

/// C2SP signed-note signature type byte for Ed25519.
pub const SIG_TYPE_ED25519: u8 = 0x01;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// PEM label of a `SubjectPublicKeyInfo` (RFC 7468 §13).
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// The key algorithms Lineage verifies with, for errors that refuse another one.
pub const SUPPORTED_KEYS: &str = "ECDSA P-256, P-384 and P-521, Ed25519, RSA (2048-8192 bits)";

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM `PUBLIC KEY` block")]
    NotPem,
    #[error("the PEM text is malformed: {0}")]
    Pem(String),
    #[error("expected a PEM block labelled `{expected}`, found `{found}`")]
    WrongPemLabel { expected: String, found: String },
    #[error("malformed SubjectPublicKeyInfo: {0}")]
    MalformedSpki(String),
    #[error("unsupported key algorithm `{0}` (supported: {SUPPORTED_KEYS})")]
    UnsupportedAlgorithm(String),
    #[error("the key material was rejected: {0}")]
    Rejected(String),
    #[error("malformed verifier key `{0}`: expected `<name>+<hex key id>+<base64 key>`")]
    MalformedVkey(String),
    #[error("verifier key `{name}` has key id {stated} but its key hashes to {computed}")]
    VkeyIdMismatch {
        name: String,
        stated: String,
        computed: String,
    },
    #[error("invalid key name `{0}`: must be non-empty, without spaces or `+`")]
    BadName(String),
    #[error("private key is not a valid Ed25519 PKCS#8 document")]
    BadPrivateKey,
    #[error("key generation failed")]
    Generation,
}

/// The signature algorithm a public key is used with. The algorithm is fixed by the key (and
/// for ECDSA its curve), never by a field in the signed data, so a signature cannot pick a
/// weaker check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256 (FIPS 186-5); signatures in ASN.1 DER or raw r||s.
    EcdsaP256Sha256,
    /// ECDSA over NIST P-384 with SHA-384, as cosign and Sigstore pair them.
    EcdsaP384Sha384,
    /// ECDSA over NIST P-521 with SHA-512.
    EcdsaP521Sha512,
    /// Ed25519 (RFC 8032 §5.1).
    Ed25519,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256 (RFC 8017 §8.1), securesystemslib's
    /// `rsassa-pss-sha256`, which in-toto uses.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2), what Sigstore and cosign RSA keys use.
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

    /// The hash this algorithm signs with by default.
    pub fn default_hash(self) -> Hash {
        match self {
            KeyAlgorithm::EcdsaP384Sha384 => Hash::Sha384,
            KeyAlgorithm::EcdsaP521Sha512 => Hash::Sha512,
            _ => Hash::Sha256,
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Hash algorithms a signature may be computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The digest algorithms Lineage computes, as protobuf-specs `HashAlgorithm` names them; an
/// error that refuses another one lists these.
pub const SUPPORTED_HASHES: &str = "SHA2_256, SHA2_384, SHA2_512";

impl Hash {
    /// Parse a digest algorithm name as Sigstore bundles and Rekor entries write it
    /// (protobuf-specs `SHA2_256`, Rekor v1's `sha256`).
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

    fn digest_algorithm(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Hash::Sha256 => &aws_lc_rs::digest::SHA256,
            Hash::Sha384 => &aws_lc_rs::digest::SHA384,
            Hash::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }

    /// The digest of `data` under this algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest(self.digest_algorithm(), data).as_ref().to_vec()
    }
}

/// A parsed verification key: the one public-key type of Lineage (DSSE and Lineage keys,
/// Sigstore certificates, logs and CT logs, note verifiers). The SPKI is decoded by the `spki`
/// crate and the key parsed once into aws-lc-rs form, so a verification does no key decoding.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    /// The `subjectPublicKey` BIT STRING contents: an uncompressed EC point, a PKCS#1
    /// RSAPublicKey, or 32 raw Ed25519 bytes.
    raw: Vec<u8>,
    key_id: String,
    /// The key bound to its main verification algorithm (ASN.1 DER for ECDSA).
    primary: ParsedPublicKey,
    /// For ECDSA only: the same key bound to fixed-width r||s signatures.
    fixed: Option<ParsedPublicKey>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Decode the first PEM block of `text` (RFC 7468, via `pem-rfc7468`): its label and bytes.
/// Text around the block (comments, other lines) is ignored, as OpenSSL does.
pub fn pem_block(text: &str) -> Result<(String, Vec<u8>), KeyError> {
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
    match spki::der::pem::decode_vec(block.trim().as_bytes()) {
        Ok((label, der)) => Ok((label.to_string(), der)),
        // `pem-rfc7468` reads the strict form (64-column lines). RFC 7468 §3 asks parsers to
        // be lax, and Go (which writes Rekor's logged PEM) emits and accepts one long line:
        // re-wrap the body at 64 columns and decode again, with the crate, once.
        Err(strict) => {
            let rewrapped = rewrap(block).ok_or_else(|| KeyError::Pem(strict.to_string()))?;
            let (label, der) = spki::der::pem::decode_vec(rewrapped.as_bytes())
                .map_err(|e| KeyError::Pem(e.to_string()))?;
            Ok((label.to_string(), der))
        }
    }
}

/// The block with its base64 body re-wrapped at 64 columns and no stray whitespace.
fn rewrap(block: &str) -> Option<String> {
    let block = block.trim();
    let first_end = block.find('\n')?;
    let last_start = block.rfind("-----END ")?;
    let (begin, end) = (block[..first_end].trim(), block[last_start..].trim());
    let body: String = block[first_end..last_start]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let mut out = format!("{begin}\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).ok()?);
        out.push('\n');
    }
    out.push_str(end);
    out.push('\n');
    Some(out)
}

/// Encode `der` as one PEM block with LF line endings.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    spki::der::pem::encode_string(label, LineEnding::LF, der)
        .expect("PEM-encoding bytes we hold cannot fail")
}

impl PublicKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM block. RSA keys are taken as RSASSA-PSS
    /// SHA-256 keys; see [`PublicKey::from_pem_with`].
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_pem_with(pem, RsaScheme::default())
    }

    /// Reads a PEM SPKI; `rsa` says which scheme an `rsaEncryption` key signs with.
    pub fn from_pem_with(pem: &str, rsa: RsaScheme) -> Result<PublicKey, KeyError> {
        let (label, der) = pem_block(pem)?;
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
            .map_err(|e| KeyError::MalformedSpki(e.to_string()))?;
        let oid = spki.algorithm.oid;
        let bits = spki.subject_public_key.as_bytes().ok_or_else(|| {
            KeyError::MalformedSpki("public key BIT STRING has unused bits".into())
        })?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected(e.to_string());
        let (algorithm, primary, fixed) = if oid == OID_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters_oid().map_err(|e| {
                KeyError::MalformedSpki(format!("EC key without a named curve: {e}"))
            })?;
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
            // Both bindings parse the point; the fixed one accepts the raw r||s form used by
            // the DSSE protocol.md example.
            let primary = ParsedPublicKey::new(asn1, bits).map_err(rejected)?;
            let fixed = ParsedPublicKey::new(fixed, bits).map_err(rejected)?;
            (algorithm, primary, Some(fixed))
        } else if oid == OID_ED25519 {
            if spki.algorithm.parameters.is_some() {
                return Err(KeyError::MalformedSpki(
                    "Ed25519 takes no algorithm parameters".into(),
                ));
            }
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
            key_id: hex::encode(digest(&SHA256, der).as_ref()),
            spki_der: der.to_vec(),
            raw: bits.to_vec(),
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
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(raw);
        PublicKey::from_spki_der(&der)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Lowercase hex SHA-256 of the SPKI DER: Lineage's key id, Rekor v1's log ID and
    /// Sigstore's managed-key hint.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// SHA-256 of the SPKI DER, as bytes.
    pub fn spki_sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, &self.spki_der).as_ref());
        out
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The raw key inside the SPKI (the point, the PKCS#1 key, or the Ed25519 bytes).
    pub fn raw_key(&self) -> &[u8] {
        &self.raw
    }

    /// The 32 Ed25519 key bytes, for an Ed25519 key.
    pub fn ed25519_bytes(&self) -> Option<[u8; 32]> {
        (self.algorithm == KeyAlgorithm::Ed25519)
            .then(|| self.raw.as_slice().try_into().ok())
            .flatten()
    }

    /// The hash this key signs with by default (P-384: SHA-384, P-521: SHA-512, else SHA-256).
    pub fn default_hash(&self) -> Hash {
        self.algorithm.default_hash()
    }

    /// The key as a `-----BEGIN PUBLIC KEY-----` PEM block (LF line endings).
    pub fn to_pem(&self) -> String {
        pem_encode(PUBLIC_KEY_LABEL, &self.spki_der)
    }

    /// The C2SP note key ID this key has when signing under `name`: Ed25519 per C2SP
    /// signed-note, any other key the first four bytes of SHA-256(SPKI) (Rekor v1).
    pub fn note_key_id(&self, name: &str) -> KeyId {
        match self.ed25519_bytes() {
            Some(k) => ed25519_key_id(name, &k),
            None => spki_key_id(&self.spki_der),
        }
    }

    /// Whether `signature` is a valid signature of `message` under this key, with its default
    /// hash.
    ///
    /// ECDSA signatures are accepted in ASN.1 DER (what cosign, Rekor and securesystemslib
    /// write) and as raw fixed-width r||s (the DSSE protocol.md example). Trying both is safe:
    /// each form is checked against the same (r, s) equation, so neither admits a forgery the
    /// other rejects.
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

    /// The aws-lc-rs algorithm for this key under an explicit hash (X.509 and Sigstore
    /// message signatures name one); `None` for a combination that does not exist.
    fn with_hash(&self, hash: Hash) -> Option<&'static dyn sig::VerificationAlgorithm> {
        Some(match (self.algorithm, hash) {
            (KeyAlgorithm::EcdsaP256Sha256, Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP256Sha256, Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP256Sha256, Hash::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
            (KeyAlgorithm::EcdsaP384Sha384, Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP384Sha384, Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP384Sha384, Hash::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
            (KeyAlgorithm::EcdsaP521Sha512, Hash::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP521Sha512, Hash::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP521Sha512, Hash::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
            (KeyAlgorithm::RsaPkcs1Sha256, Hash::Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (KeyAlgorithm::RsaPkcs1Sha256, Hash::Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (KeyAlgorithm::RsaPkcs1Sha256, Hash::Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
            (KeyAlgorithm::RsaPssSha256, Hash::Sha256) => &sig::RSA_PSS_2048_8192_SHA256,
            (KeyAlgorithm::RsaPssSha256, Hash::Sha384) => &sig::RSA_PSS_2048_8192_SHA384,
            (KeyAlgorithm::RsaPssSha256, Hash::Sha512) => &sig::RSA_PSS_2048_8192_SHA512,
            (KeyAlgorithm::Ed25519, _) => &sig::ED25519,
        })
    }

    /// Verify `sig` over `message` with an explicit hash; the key's own hash takes the
    /// pre-parsed fast path.
    pub fn verify_with(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        if hash == self.default_hash() || self.algorithm == KeyAlgorithm::Ed25519 {
            return self.primary.verify_sig(message, signature).is_ok();
        }
        match self.with_hash(hash) {
            Some(alg) => sig::UnparsedPublicKey::new(alg, &self.raw)
                .verify(message, signature)
                .is_ok(),
            None => false,
        }
    }

    /// Verify `sig` over a message of which only the `hash` digest is known (a Sigstore
    /// hashedrekord with only the artifact digest at hand). Ed25519 cannot verify a prehash.
    pub fn verify_prehashed(&self, hash: Hash, digest_bytes: &[u8], signature: &[u8]) -> bool {
        if self.algorithm == KeyAlgorithm::Ed25519 {
            return false;
        }
        let Some(alg) = self.with_hash(hash) else {
            return false;
        };
        let Ok(d) =
            aws_lc_rs::digest::Digest::import_less_safe(digest_bytes, hash.digest_algorithm())
        else {
            return false;
        };
        sig::UnparsedPublicKey::new(alg, &self.raw)
            .verify_digest(&d, signature)
            .is_ok()
    }
}

/// A public key with the signer name it is trusted for, if known. Keys read from PEM carry no
/// name and accept any signer name whose key ID matches; a verifier key string fixes the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: Option<String>,
    key: PublicKey,
}

/// True when `name` is a valid C2SP note key name: non-empty, no Unicode spaces, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Ed25519 note key ID: `SHA-256(name || 0x0A || 0x01 || key)[:4]` (C2SP signed-note).
pub fn ed25519_key_id(name: &str, key: &[u8; 32]) -> KeyId {
    let mut buf = Vec::with_capacity(name.len() + 2 + 32);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(SIG_TYPE_ED25519);
    buf.extend_from_slice(key);
    first4(digest(&SHA256, &buf).as_ref())
}

/// ECDSA note key ID: the first four bytes of `SHA-256(SPKI DER)` (C2SP signature type 0x02;
/// also Rekor v1's checkpoint key hint).
pub fn spki_key_id(spki_der: &[u8]) -> KeyId {
    first4(digest(&SHA256, spki_der).as_ref())
}

fn first4(b: &[u8]) -> KeyId {
    [b[0], b[1], b[2], b[3]]
}

impl Verifier {
    /// A verifier for `key`, optionally bound to one signer name.
    pub fn new(name: Option<String>, key: PublicKey) -> Result<Self, KeyError> {
        if let Some(n) = &name {
            if !is_valid_key_name(n) {
                return Err(KeyError::BadName(n.clone()));
            }
        }
        Ok(Verifier { name, key })
    }

    /// Reads a PEM `PUBLIC KEY` (no name binding).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Ok(Verifier {
            name: None,
            key: PublicKey::from_pem(pem)?,
        })
    }

    /// Reads a DER SubjectPublicKeyInfo (no name binding), e.g. a Sigstore trusted root's
    /// `publicKey.rawBytes`.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        Ok(Verifier {
            name: None,
            key: PublicKey::from_spki_der(der)?,
        })
    }

    /// Reads a Go `note` verifier key `<name>+<hex key id>+<base64(0x01 || key)>`, checking
    /// that the stated key ID is the one the name and key hash to.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let vkey = vkey.trim();
        let bad = || KeyError::MalformedVkey(vkey.to_string());
        let mut parts = vkey.splitn(3, '+');
        let (name, id_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return Err(bad()),
        };
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_string()));
        }
        let id = hex::decode(id_hex).map_err(|_| bad())?;
        if id.len() != 4 {
            return Err(bad());
        }
        let raw = B64.decode(key_b64).map_err(|_| bad())?;
        let key: [u8; 32] = match raw.split_first() {
            Some((&SIG_TYPE_ED25519, rest)) => rest.try_into().map_err(|_| bad())?,
            Some((t, _)) => {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "note signature type {t:#04x}"
                )))
            }
            None => return Err(bad()),
        };
        let computed = ed25519_key_id(name, &key);
        if computed[..] != id[..] {
            return Err(KeyError::VkeyIdMismatch {
                name: name.to_string(),
                stated: id_hex.to_string(),
                computed: hex::encode(computed),
            });
        }
        Ok(Verifier {
            name: Some(name.to_string()),
            key: PublicKey::ed25519_from_raw(&key)?,
        })
    }

    /// Reads either form: a PEM block (starts with `-----BEGIN`) or a verifier key string.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_vkey(text)
        }
    }

    /// The signer name this verifier is bound to, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// True when a signature line with this name and key ID was made by this key (C2SP: the
    /// name and the ID must both match; an unbound key accepts any name whose ID matches).
    pub fn matches(&self, name: &str, key_id: &KeyId) -> bool {
        if let Some(n) = &self.name {
            if n != name {
                return false;
            }
        }
        &self.key.note_key_id(name) == key_id
    }

    /// The Go verifier-key string for this key under `name`; `None` for non-Ed25519 keys,
    /// which that format cannot express.
    pub fn to_vkey(&self, name: &str) -> Option<String> {
        self.key.ed25519_bytes().map(|k| vkey_string(name, &k))
    }
}

fn vkey_string(name: &str, key: &[u8; 32]) -> String {
    let mut raw = vec![SIG_TYPE_ED25519];
    raw.extend_from_slice(key);
    format!(
        "{name}+{}+{}",
        hex::encode(ed25519_key_id(name, key)),
        B64.encode(raw)
    )
}

/// The Ed25519 key a log signs its checkpoints with, and the signer name it signs under
/// (normally the log's origin).
pub struct LogKey {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("LogKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id()))
            .finish()
    }
}

impl LogKey {
    /// A fresh random key.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
        Ok(LogKey {
            name: name.to_string(),
            pair,
        })
    }

    /// Imports a PKCS#8 (v1 or v2) DER Ed25519 private key.
    pub fn from_pkcs8_der(name: &str, der: &[u8]) -> Result<Self, KeyError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| KeyError::BadPrivateKey)?;
        Ok(LogKey {
            name: name.to_string(),
            pair,
        })
    }

    /// Imports a PEM `PRIVATE KEY` block (PKCS#8).
    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(name, &pem_decode(pem, "PRIVATE KEY")?)
    }

    /// Exports the private key as PKCS#8 v1 DER (RFC 8410 form, readable by OpenSSL).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.pair
            .to_pkcs8v1()
            .expect("serializing an Ed25519 key that was parsed or generated cannot fail")
            .as_ref()
            .to_vec()
    }

    /// Exports the private key as a PEM `PRIVATE KEY` block.
    pub fn to_pkcs8_pem(&self) -> String {
        pem_encode("PRIVATE KEY", &self.to_pkcs8_der())
    }

    /// The signer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 public keys are 32 bytes")
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::ed25519_from_raw(&self.public_key_bytes())
            .expect("an Ed25519 key pair's public key is 32 bytes")
    }

    /// The public key as a PEM SPKI block.
    pub fn public_key_pem(&self) -> String {
        self.public_key().to_pem()
    }

    /// The Go verifier-key string `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub fn vkey(&self) -> String {
        vkey_string(&self.name, &self.public_key_bytes())
    }

    /// A verifier bound to this key's name.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: Some(self.name.clone()),
            key: self.public_key(),
        }
    }

    /// The note key ID.
    pub fn key_id(&self) -> KeyId {
        ed25519_key_id(&self.name, &self.public_key_bytes())
    }

    /// Signs `message` (RFC 8032 Ed25519).
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(KeyError::BadName(name.to_string()))
    }
}

/// Decode a PEM block that must carry `label`.
fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let (found, der) = pem_block(pem)?;
    if found != label {
        return Err(KeyError::WrongPemLabel {
            expected: label.into(),
            found,
        });
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_with_one_long_line_is_read_as_go_writes_it() {
        let key = LogKey::generate("example.com/log").unwrap();
        let pem = key.public_key_pem();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let long = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
        assert_eq!(PublicKey::from_pem(&long).unwrap(), key.public_key());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn ed25519_spki_round_trips() {
        let key = LogKey::generate("example.com/log").unwrap();
        let pem = key.public_key_pem();
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), key.public_key());
    }

    #[test]
    fn vkey_round_trips_and_rejects_a_wrong_id() {
        let key = LogKey::generate("example.com/log").unwrap();
        let v = Verifier::from_vkey(&key.vkey()).unwrap();
        assert_eq!(v.name(), Some("example.com/log"));
        assert_eq!(v.key(), &key.public_key());
        let mut bad = key.vkey();
        let plus = bad.find('+').unwrap() + 1;
        let flipped = if &bad[plus..plus + 1] == "0" {
            "1"
        } else {
            "0"
        };
        bad.replace_range(plus..plus + 1, flipped);
        assert!(matches!(
            Verifier::from_vkey(&bad),
            Err(KeyError::VkeyIdMismatch { .. })
        ));
    }

    #[test]
    fn pkcs8_round_trips() {
        let key = LogKey::generate("log").unwrap();
        let again = LogKey::from_pkcs8_pem("log", &key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(again.public_key().verify(b"m", &key.sign_raw(b"m")));
    }

    #[test]
    fn names_with_spaces_or_plus_are_rejected() {
        assert!(LogKey::generate("a b").is_err());
        assert!(LogKey::generate("a+b").is_err());
        assert!(LogKey::generate("").is_err());
    }
}
