//! DSSE, the Dead Simple Signing Envelope (secure-systems-lab/dsse, `protocol.md` and
//! `envelope.md`, v1.0).
//!
//! A signature covers the pre-authentication encoding (PAE) of the payload type and the
//! payload, never the JSON envelope, so the envelope's layout cannot change what was signed.
//! Verification follows protocol.md: decode, compute the PAE, verify each signature against the
//! trusted keys, count *distinct* keys that verified against the threshold, and only then look
//! at the (now authenticated) payload type.
//!
//! A failed verification is a [`Verification`] with a [`Failure`], not an `Err`.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, PrivateKey, PublicKey};

/// The `payloadType` of in-toto attestations (in-toto attestation spec, `envelope.md`).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Pre-authentication encoding, protocol.md:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where LEN is the byte length in
/// ASCII decimal with no leading zeros. `payload_type` is counted in UTF-8 bytes, not
/// characters, and an empty body still gets its separating space.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let t = payload_type.as_bytes();
    let mut out = Vec::with_capacity(7 + 2 * 20 + 3 + t.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(t.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(t);
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// How the `sig` fields of an envelope are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigEncoding {
    /// Base64, standard or URL-safe alphabet, padding optional (envelope.md). The default, and
    /// the only encoding the DSSE spec allows.
    #[default]
    Base64,
    /// Compatibility with older securesystemslib / in-toto-python, which wrote `sig` as
    /// lowercase hex: a `sig` made only of hex digits (even length) is read as hex, anything
    /// else as base64. Opt-in only, because hex text is also valid base64 and a strict verifier
    /// must not guess.
    HexLegacy,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Unauthenticated hint naming the key (protocol.md: "KEYID ... optional").
    pub keyid: Option<String>,
    pub sig: Vec<u8>,
}

/// A DSSE envelope with decoded payload and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// Why bytes are not a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a DSSE envelope: {0}")]
    Json(String),
    #[error("`{field}` is not valid base64: {reason}")]
    InvalidBase64 { field: String, reason: String },
    #[error("`{field}` is not valid hex: {reason}")]
    InvalidHex { field: String, reason: String },
}

#[derive(Deserialize, Serialize)]
struct RawEnvelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize, Serialize)]
struct RawSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
    sig: String,
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet (envelope.md: "either standard or URL-safe encoding"),
/// with or without padding; a mix of both alphabets is rejected.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(text)
    } else {
        STANDARD_LENIENT.decode(text)
    }
}

/// Standard base64 with padding, the encoding Lineage writes.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len() & 1 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Envelope {
    /// Parses an envelope with base64 signatures (strict DSSE).
    pub fn from_json(json: &[u8]) -> Result<Envelope, EnvelopeError> {
        Envelope::from_json_with(json, SigEncoding::Base64)
    }

    /// Parses an envelope, reading `sig` per `encoding`.
    pub fn from_json_with(json: &[u8], encoding: SigEncoding) -> Result<Envelope, EnvelopeError> {
        let raw: RawEnvelope =
            serde_json::from_slice(json).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        Envelope::from_raw(raw, encoding)
    }

    /// Parses an envelope from an already-parsed JSON value (e.g. inside a Sigstore bundle).
    pub fn from_value(
        value: serde_json::Value,
        encoding: SigEncoding,
    ) -> Result<Envelope, EnvelopeError> {
        let raw: RawEnvelope =
            serde_json::from_value(value).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        Envelope::from_raw(raw, encoding)
    }

    fn from_raw(raw: RawEnvelope, encoding: SigEncoding) -> Result<Envelope, EnvelopeError> {
        let payload = decode_base64(&raw.payload).map_err(|e| EnvelopeError::InvalidBase64 {
            field: "payload".into(),
            reason: e.to_string(),
        })?;
        let mut signatures = Vec::with_capacity(raw.signatures.len());
        for (i, s) in raw.signatures.into_iter().enumerate() {
            let field = format!("signatures[{i}].sig");
            let sig = if encoding == SigEncoding::HexLegacy && is_hex(&s.sig) {
                hex::decode(&s.sig).map_err(|e| EnvelopeError::InvalidHex {
                    field,
                    reason: e.to_string(),
                })?
            } else {
                decode_base64(&s.sig).map_err(|e| EnvelopeError::InvalidBase64 {
                    field,
                    reason: e.to_string(),
                })?
            };
            signatures.push(Signature {
                keyid: s.keyid,
                sig,
            });
        }
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }

    fn to_raw(&self, encoding: SigEncoding) -> RawEnvelope {
        RawEnvelope {
            payload: encode_base64(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| RawSignature {
                    keyid: s.keyid.clone(),
                    sig: match encoding {
                        SigEncoding::Base64 => encode_base64(&s.sig),
                        SigEncoding::HexLegacy => hex::encode(&s.sig),
                    },
                })
                .collect(),
        }
    }

    /// The envelope as DSSE JSON (standard base64, padded).
    pub fn to_json(&self) -> String {
        self.to_json_with(SigEncoding::Base64)
    }

    /// The envelope as JSON with `sig` in `encoding` (hex only for old in-toto consumers).
    pub fn to_json_with(&self, encoding: SigEncoding) -> String {
        serde_json::to_string(&self.to_raw(encoding)).expect("envelopes serialise")
    }

    /// This envelope's PAE, the bytes every signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw(SigEncoding::Base64).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Envelope, D::Error> {
        let raw = RawEnvelope::deserialize(d)?;
        Envelope::from_raw(raw, SigEncoding::Base64).map_err(serde::de::Error::custom)
    }
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no signing key given")]
    NoSigners,
    #[error("the payload type is empty; DSSE verifiers reject an empty payloadType")]
    EmptyPayloadType,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Signs `payload` with every key in `signers`, one signature each, `keyid` = the key's
/// Lineage id (hex SHA-256 of its SPKI).
pub fn sign(
    payload_type: &str,
    payload: &[u8],
    signers: &[&PrivateKey],
) -> Result<Envelope, SignError> {
    if signers.is_empty() {
        return Err(SignError::NoSigners);
    }
    if payload_type.is_empty() {
        return Err(SignError::EmptyPayloadType);
    }
    let message = pae(payload_type, payload);
    let signatures = signers
        .iter()
        .map(|k| {
            Ok(Signature {
                keyid: Some(k.key_id().to_string()),
                sig: k.sign(&message)?,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(Envelope {
        payload_type: payload_type.to_string(),
        payload: payload.to_vec(),
        signatures,
    })
}

/// A key the verifier trusts, with the name it is reported under.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The name used in outcomes and matched against `keyid` hints: a trust-policy entry id, a
    /// test-vector name, or by default the key's Lineage id.
    pub id: String,
    pub key: PublicKey,
}

impl TrustedKey {
    /// Trusts `key` under its Lineage id.
    pub fn new(key: PublicKey) -> TrustedKey {
        TrustedKey {
            id: key.key_id().to_string(),
            key,
        }
    }

    pub fn with_id(id: impl Into<String>, key: PublicKey) -> TrustedKey {
        TrustedKey { id: id.into(), key }
    }

    fn named_by(&self, hint: &str) -> bool {
        self.id == hint || self.key.key_id() == hint
    }
}

/// Which payload types a verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PayloadTypes {
    /// Any non-empty payload type.
    #[default]
    Any,
    /// Exactly these.
    Only(Vec<String>),
}

/// What a verification demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// How many distinct trusted keys must have signed; 0 is treated as 1.
    pub threshold: usize,
    pub payload_types: PayloadTypes,
    /// Only used by [`verify_json`].
    pub sig_encoding: SigEncoding,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            threshold: 1,
            payload_types: PayloadTypes::Any,
            sig_encoding: SigEncoding::Base64,
        }
    }
}

impl VerifyOptions {
    pub fn threshold(threshold: usize) -> VerifyOptions {
        VerifyOptions {
            threshold,
            ..VerifyOptions::default()
        }
    }
}

/// What happened to one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum SignatureResult {
    /// Verified with this trusted key.
    Verified { key: String },
    /// Verified with a key that an earlier signature already counted; it does not count twice
    /// toward the threshold (protocol.md, "Threshold").
    DuplicateKey { key: String },
    /// No trusted key verifies it.
    NoTrustedKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    #[serde(flatten)]
    pub result: SignatureResult,
}

/// Why an envelope failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Failure {
    /// Not JSON, or fields missing or of the wrong type.
    MalformedEnvelope {
        reason: String,
    },
    /// A `payload` or `sig` is not valid base64 (or hex, in legacy mode).
    InvalidEncoding {
        field: String,
        reason: String,
    },
    NoSignatures,
    NoTrustedKeys,
    /// Signatures exist but none verifies with a trusted key.
    NoTrustedSignature {
        signatures: usize,
    },
    /// Fewer distinct trusted keys verified than required.
    ThresholdNotMet {
        required: usize,
        verified: usize,
        duplicate_signatures: usize,
    },
    /// The signatures are good, but the payload type is empty or not accepted.
    UnsupportedPayloadType {
        payload_type: String,
    },
}

impl Failure {
    /// A stable code for reports and snapshots.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::MalformedEnvelope { .. } => "dsse-malformed-envelope",
            Failure::InvalidEncoding { .. } => "dsse-invalid-encoding",
            Failure::NoSignatures => "dsse-no-signatures",
            Failure::NoTrustedKeys => "dsse-no-trusted-keys",
            Failure::NoTrustedSignature { .. } => "dsse-no-trusted-signature",
            Failure::ThresholdNotMet { .. } => "dsse-threshold-not-met",
            Failure::UnsupportedPayloadType { .. } => "dsse-unsupported-payload-type",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MalformedEnvelope { reason } => write!(f, "not a DSSE envelope: {reason}"),
            Failure::InvalidEncoding { field, reason } => {
                write!(f, "`{field}` is not correctly encoded: {reason}")
            }
            Failure::NoSignatures => write!(f, "the envelope has no signatures"),
            Failure::NoTrustedKeys => write!(f, "no trusted keys were given to verify with"),
            Failure::NoTrustedSignature { signatures } => write!(
                f,
                "none of the envelope's {signatures} signature(s) verifies with a trusted key"
            ),
            Failure::ThresholdNotMet {
                required,
                verified,
                duplicate_signatures,
            } => {
                write!(
                    f,
                    "{verified} distinct trusted key(s) signed, {required} required"
                )?;
                if *duplicate_signatures > 0 {
                    write!(
                        f,
                        " ({duplicate_signatures} signature(s) came from a key already counted)"
                    )?;
                }
                Ok(())
            }
            Failure::UnsupportedPayloadType { payload_type } if payload_type.is_empty() => {
                write!(f, "the payload type is empty")
            }
            Failure::UnsupportedPayloadType { payload_type } => {
                write!(f, "payload type `{payload_type}` is not supported")
            }
        }
    }
}

/// The outcome of verifying an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Distinct trusted key ids whose signatures verified, in signature order.
    pub verified_keys: Vec<String>,
    pub signatures: Vec<SignatureCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Verification {
    pub fn is_verified(&self) -> bool {
        self.failure.is_none()
    }

    fn failed(failure: Failure) -> Verification {
        Verification {
            verified_keys: Vec::new(),
            signatures: Vec::new(),
            failure: Some(failure),
        }
    }
}

/// Verifies `envelope` against `trusted` keys (DSSE protocol.md, "Protocol" steps 1-4).
///
/// The `keyid` hint only orders the search: keys it names are tried first, then all others,
/// because other tools compute key ids differently and the hint is unauthenticated.
pub fn verify(
    envelope: &Envelope,
    trusted: &[TrustedKey],
    options: &VerifyOptions,
) -> Verification {
    if trusted.is_empty() {
        return Verification::failed(Failure::NoTrustedKeys);
    }
    if envelope.signatures.is_empty() {
        return Verification::failed(Failure::NoSignatures);
    }
    let message = envelope.pae();
    let mut verified_keys: Vec<String> = Vec::new();
    let mut checks = Vec::with_capacity(envelope.signatures.len());
    let mut duplicates = 0;
    for (index, signature) in envelope.signatures.iter().enumerate() {
        let hinted = signature
            .keyid
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| trusted.iter().position(|k| k.named_by(h)));
        let first = hinted.flatten();
        let order = first
            .into_iter()
            .chain((0..trusted.len()).filter(|i| Some(*i) != first));
        let mut result = SignatureResult::NoTrustedKey;
        for i in order {
            let key = &trusted[i];
            if key.key.verify(&message, &signature.sig) {
                result = if verified_keys.contains(&key.id) {
                    duplicates += 1;
                    SignatureResult::DuplicateKey {
                        key: key.id.clone(),
                    }
                } else {
                    verified_keys.push(key.id.clone());
                    SignatureResult::Verified {
                        key: key.id.clone(),
                    }
                };
                break;
            }
        }
        checks.push(SignatureCheck {
            index,
            keyid: signature.keyid.clone(),
            result,
        });
    }
    let required = options.threshold.max(1);
    let failure = if verified_keys.is_empty() {
        Some(Failure::NoTrustedSignature {
            signatures: envelope.signatures.len(),
        })
    } else if verified_keys.len() < required {
        Some(Failure::ThresholdNotMet {
            required,
            verified: verified_keys.len(),
            duplicate_signatures: duplicates,
        })
    } else if envelope.payload_type.is_empty()
        || matches!(&options.payload_types, PayloadTypes::Only(list) if !list.contains(&envelope.payload_type))
    {
        Some(Failure::UnsupportedPayloadType {
            payload_type: envelope.payload_type.clone(),
        })
    } else {
        None
    };
    Verification {
        verified_keys,
        signatures: checks,
        failure,
    }
}

/// Parses and verifies envelope JSON; malformed input is a [`Failure`], not an error.
pub fn verify_json(json: &[u8], trusted: &[TrustedKey], options: &VerifyOptions) -> Verification {
    match Envelope::from_json_with(json, options.sig_encoding) {
        Ok(envelope) => verify(&envelope, trusted, options),
        Err(EnvelopeError::Json(reason)) => {
            Verification::failed(Failure::MalformedEnvelope { reason })
        }
        Err(EnvelopeError::InvalidBase64 { field, reason })
        | Err(EnvelopeError::InvalidHex { field, reason }) => {
            Verification::failed(Failure::InvalidEncoding { field, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_counts_bytes_and_keeps_the_space_before_an_empty_body() {
        assert_eq!(pae("ä", b""), "DSSEv1 2 ä 0 ".as_bytes());
        assert_eq!(pae("t", b"hi"), b"DSSEv1 1 t 2 hi".to_vec());
    }

    #[test]
    fn base64_accepts_both_alphabets_with_or_without_padding_but_not_mixed() {
        assert_eq!(
            decode_base64("-_-_Pj8=").unwrap(),
            [0xfb, 0xff, 0xbf, 0x3e, 0x3f]
        );
        assert_eq!(
            decode_base64("-_-_Pj8").unwrap(),
            [0xfb, 0xff, 0xbf, 0x3e, 0x3f]
        );
        assert_eq!(
            decode_base64("+/+/Pj8=").unwrap(),
            [0xfb, 0xff, 0xbf, 0x3e, 0x3f]
        );
        assert!(decode_base64("+_+/").is_err());
        assert!(decode_base64("A").is_err());
    }

    #[test]
    fn hex_is_only_read_in_legacy_mode() {
        let json = br#"{"payload":"","payloadType":"t","signatures":[{"sig":"abcd"}]}"#;
        let strict = Envelope::from_json(json).unwrap();
        let legacy = Envelope::from_json_with(json, SigEncoding::HexLegacy).unwrap();
        assert_eq!(legacy.signatures[0].sig, [0xab, 0xcd]);
        assert_eq!(strict.signatures[0].sig, [0x69, 0xb7, 0x1d]);
    }
}
