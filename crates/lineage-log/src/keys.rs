//! Public keys that verify note signatures, and the Ed25519 log key that signs checkpoints.
//!
//! Public keys come as PEM `PUBLIC KEY` (X.509 SubjectPublicKeyInfo, RFC 5280 §4.1.2.7) for
//! Ed25519 (RFC 8410) or ECDSA P-256 (RFC 5480), or as a Go `note` verifier-key string
//! `<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`.
//!
//! Key IDs follow C2SP signed-note: Ed25519 uses `SHA-256(name || 0x0A || 0x01 || key)[:4]`;
//! ECDSA (signature type 0x02, and Rekor v1 checkpoints) uses the first four bytes of
//! `SHA-256(SPKI DER)`, which does not depend on the signer's name.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};

/// A 4-byte note key ID (C2SP signed-note, big-endian `uint32` on the wire).
pub type KeyId = [u8; 4];

/// C2SP signed-note signature type byte for Ed25519.
pub const SIG_TYPE_ED25519: u8 = 0x01;

// DER object identifiers (content bytes only).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70]; // 1.3.101.112, RFC 8410
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]; // 1.2.840.10045.2.1
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]; // 1.2.840.10045.3.1.7

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM `PUBLIC KEY` block")]
    NotPem,
    #[error("PEM body is not valid base64")]
    PemBase64,
    #[error("malformed SubjectPublicKeyInfo: {0}")]
    MalformedSpki(&'static str),
    #[error("unsupported public key algorithm (only Ed25519 and ECDSA P-256 are supported)")]
    UnsupportedAlgorithm,
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

/// A public key that can check note signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 key (RFC 8032), 32 bytes.
    Ed25519([u8; 32]),
    /// An ECDSA P-256 key: the SPKI DER (for the key ID) and the SEC1 point (for verifying).
    EcdsaP256 { spki_der: Vec<u8>, point: Vec<u8> },
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

impl PublicKey {
    /// Reads a DER SubjectPublicKeyInfo holding an Ed25519 or P-256 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (alg, bits) = parse_spki(der)?;
        if alg.0 == OID_ED25519 {
            if alg.1.is_some() {
                return Err(KeyError::MalformedSpki(
                    "Ed25519 takes no algorithm parameters",
                ));
            }
            let key: [u8; 32] = bits
                .try_into()
                .map_err(|_| KeyError::MalformedSpki("Ed25519 key is not 32 bytes"))?;
            Ok(PublicKey::Ed25519(key))
        } else if alg.0 == OID_EC_PUBLIC_KEY && alg.1 == Some(OID_P256) {
            match bits.first() {
                Some(0x04) if bits.len() == 65 => {}
                Some(0x02 | 0x03) if bits.len() == 33 => {}
                _ => return Err(KeyError::MalformedSpki("P-256 point has the wrong length")),
            }
            Ok(PublicKey::EcdsaP256 {
                spki_der: der.to_vec(),
                point: bits.to_vec(),
            })
        } else {
            Err(KeyError::UnsupportedAlgorithm)
        }
    }

    /// Reads a PEM `PUBLIC KEY` block.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_spki_der(&pem_decode(pem, "PUBLIC KEY")?)
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => {
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(k);
                der
            }
            PublicKey::EcdsaP256 { spki_der, .. } => spki_der.clone(),
        }
    }

    /// The PEM `PUBLIC KEY` block of this key.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der())
    }

    /// The note key ID this key has when signing under `name`.
    pub fn key_id(&self, name: &str) -> KeyId {
        match self {
            PublicKey::Ed25519(k) => ed25519_key_id(name, k),
            PublicKey::EcdsaP256 { spki_der, .. } => spki_key_id(spki_der),
        }
    }

    /// Checks a raw signature over `message`: Ed25519 per RFC 8032, or ECDSA P-256 with
    /// SHA-256 and an ASN.1 DER signature (as Rekor v1 signs checkpoints).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => UnparsedPublicKey::new(&ED25519, k)
                .verify(message, signature)
                .is_ok(),
            PublicKey::EcdsaP256 { point, .. } => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }

    /// A short name of the algorithm, for messages.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::EcdsaP256 { .. } => "ECDSA P-256",
        }
    }
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
            Some(_) => return Err(KeyError::UnsupportedAlgorithm),
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
            key: PublicKey::Ed25519(key),
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
        &self.key.key_id(name) == key_id
    }

    /// The Go verifier-key string for this key under `name`; `None` for non-Ed25519 keys,
    /// which that format cannot express.
    pub fn to_vkey(&self, name: &str) -> Option<String> {
        match &self.key {
            PublicKey::Ed25519(k) => Some(vkey_string(name, k)),
            PublicKey::EcdsaP256 { .. } => None,
        }
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
        PublicKey::Ed25519(self.public_key_bytes())
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

// ---------------------------------------------------------------------------------------------
// PEM (RFC 7468) and the little DER needed for SubjectPublicKeyInfo.
// ---------------------------------------------------------------------------------------------

fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or(KeyError::NotPem)? + begin.len();
    let stop = pem[start..].find(&end).ok_or(KeyError::NotPem)? + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(body).map_err(|_| KeyError::PemBase64)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads one DER TLV with the given tag; returns (contents, rest).
fn der_take(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeyError> {
    let err = KeyError::MalformedSpki;
    let (&t, rest) = input.split_first().ok_or(err("truncated"))?;
    if t != tag {
        return Err(err("unexpected tag"));
    }
    let (&l0, rest) = rest.split_first().ok_or(err("truncated"))?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return Err(err("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(err("truncated"));
    }
    Ok(rest.split_at(len))
}

type AlgId<'a> = (&'a [u8], Option<&'a [u8]>);

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
fn parse_spki(der: &[u8]) -> Result<(AlgId<'_>, &[u8]), KeyError> {
    let (spki, trailing) = der_take(der, 0x30)?;
    if !trailing.is_empty() {
        return Err(KeyError::MalformedSpki("trailing bytes"));
    }
    let (alg, rest) = der_take(spki, 0x30)?;
    let (oid, params) = der_take(alg, 0x06)?;
    let param_oid = if params.is_empty() {
        None
    } else {
        let (p, extra) = der_take(params, 0x06)?;
        if !extra.is_empty() {
            return Err(KeyError::MalformedSpki("unexpected algorithm parameters"));
        }
        Some(p)
    };
    let (bits, extra) = der_take(rest, 0x03)?;
    if !extra.is_empty() {
        return Err(KeyError::MalformedSpki("trailing bytes"));
    }
    match bits.split_first() {
        Some((0, key)) => Ok(((oid, param_oid), key)),
        _ => Err(KeyError::MalformedSpki("bit string with unused bits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
