//! Sigstore bundles, v0.1 to v0.3 (protobuf-specs `sigstore_bundle.proto`, message `Bundle`,
//! in its canonical protobuf JSON mapping).
//!
//! Parsing is structural only: base64 is decoded and certificates are parsed, but nothing is
//! trusted here. Facts that decide verification (the number of DSSE signatures, whether an
//! inclusion proof is present) are kept as they are found so that [`crate::verify_bundle`] can
//! reject them with a precise reason instead of the parser silently picking one.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::keys::b64;
use crate::trusted_root::{RawCertChain, RawLogId};
use crate::x509::Certificate;

/// The bundle format versions this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum BundleVersion {
    V0_1,
    V0_2,
    V0_3,
}

impl BundleVersion {
    /// Map a bundle `mediaType` to its version. v0.3 has two spellings: the one the spec
    /// settled on (`bundle.v0.3+json`) and the parameter form earlier drafts and some clients
    /// wrote (`bundle+json;version=0.3`).
    pub fn from_media_type(media_type: &str) -> Option<BundleVersion> {
        match media_type {
            "application/vnd.dev.sigstore.bundle+json;version=0.1" => Some(BundleVersion::V0_1),
            "application/vnd.dev.sigstore.bundle+json;version=0.2" => Some(BundleVersion::V0_2),
            "application/vnd.dev.sigstore.bundle.v0.3+json"
            | "application/vnd.dev.sigstore.bundle+json;version=0.3" => Some(BundleVersion::V0_3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BundleVersion::V0_1 => "0.1",
            BundleVersion::V0_2 => "0.2",
            BundleVersion::V0_3 => "0.3",
        }
    }
}

/// Who signed, as the bundle claims it (not yet verified).
#[derive(Debug, Clone)]
pub enum VerificationMaterial {
    /// `x509CertificateChain` (v0.1/v0.2): the leaf first. Only the leaf is used; the
    /// intermediates a bundle carries are never trusted (trust comes from the trusted root).
    CertificateChain(Vec<Certificate>),
    /// `certificate` (v0.3): the leaf alone.
    Certificate(Box<Certificate>),
    /// `publicKey.hint` (managed keys): an opaque hint; the key comes from the caller.
    PublicKey { hint: String },
}

impl VerificationMaterial {
    /// The signing certificate, if this is keyless material.
    pub fn leaf(&self) -> Option<&Certificate> {
        match self {
            VerificationMaterial::CertificateChain(chain) => chain.first(),
            VerificationMaterial::Certificate(c) => Some(c),
            VerificationMaterial::PublicKey { .. } => None,
        }
    }
}

/// `InclusionProof`: a Merkle path against the signed checkpoint of the log shard.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    /// The index *within the shard* (tree) that the proof is for. Rekor v1 entries also have a
    /// global `logIndex` across shards; the proof must use this one.
    pub log_index: u64,
    pub root_hash: Vec<u8>,
    pub tree_size: u64,
    pub hashes: Vec<Vec<u8>>,
    /// The signed note (C2SP tlog-checkpoint) text, if present.
    pub checkpoint: Option<String>,
}

/// `TransparencyLogEntry`.
#[derive(Debug, Clone)]
pub struct TlogEntry {
    /// The global log index (what the SET signs for Rekor v1).
    pub log_index: u64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub version: String,
    /// Seconds since the epoch; absent (or 0) for Rekor v2, which has no SET.
    pub integrated_time: Option<i64>,
    /// `inclusionPromise.signedEntryTimestamp`.
    pub signed_entry_timestamp: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: Vec<u8>,
}

/// One DSSE signature.
#[derive(Debug, Clone)]
pub struct DsseSignature {
    pub sig: Vec<u8>,
    pub keyid: Option<String>,
}

/// A DSSE envelope as carried in a bundle (or a cosign `.att` layer).
#[derive(Debug, Clone)]
pub struct DsseEnvelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<DsseSignature>,
}

/// What was signed.
#[derive(Debug, Clone)]
pub enum Content {
    /// `messageSignature`: a signature over the artifact bytes.
    MessageSignature {
        /// `messageDigest` (algorithm name, bytes); optional in the spec.
        digest: Option<(String, Vec<u8>)>,
        signature: Vec<u8>,
    },
    /// `dsseEnvelope`.
    Dsse(DsseEnvelope),
}

/// A parsed (unverified) bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub media_type: String,
    pub version: BundleVersion,
    pub material: VerificationMaterial,
    pub tlog_entries: Vec<TlogEntry>,
    /// DER `TimeStampResp`/token bytes from `timestampVerificationData.rfc3161Timestamps`.
    pub rfc3161_timestamps: Vec<Vec<u8>>,
    pub content: Content,
}

/// Why a bundle could not be judged: bytes that are not a usable bundle, or (from
/// [`crate::verify_bundle_json`]) a policy that cannot judge the bundle's signer.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown bundle media type `{0}`")]
    UnknownMediaType(String),
    #[error("malformed bundle: `{field}` {problem}")]
    Malformed {
        field: &'static str,
        problem: String,
    },
    #[error(
        "bundle field `{field}`: algorithm `{found}` is not supported (supported: {supported})"
    )]
    UnsupportedAlgorithm {
        field: &'static str,
        found: String,
        supported: &'static str,
    },
    #[error(transparent)]
    Policy(#[from] crate::PolicyError),
}

fn malformed(field: &'static str, problem: impl ToString) -> BundleError {
    BundleError::Malformed {
        field,
        problem: problem.to_string(),
    }
}

/// protobuf JSON writes int64 as a string but parsers must also accept numbers.
pub(crate) fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(de::Error::custom),
    }
}

fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    media_type: String,
    verification_material: RawMaterial,
    message_signature: Option<RawMessageSignature>,
    dsse_envelope: Option<RawEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    x509_certificate_chain: Option<RawCertChain>,
    certificate: Option<crate::trusted_root::RawCert>,
    public_key: Option<RawKeyHint>,
    #[serde(default)]
    tlog_entries: Vec<RawEntry>,
    timestamp_verification_data: Option<RawTsData>,
}

#[derive(Deserialize)]
struct RawKeyHint {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTsData {
    #[serde(default)]
    rfc3161_timestamps: Vec<RawTs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTs {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    log_id: RawLogId,
    kind_version: RawKindVersion,
    #[serde(default, deserialize_with = "opt_int64")]
    integrated_time: Option<i64>,
    inclusion_promise: Option<RawPromise>,
    inclusion_proof: Option<RawProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
struct RawKindVersion {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProof {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    root_hash: String,
    #[serde(deserialize_with = "int64")]
    tree_size: i64,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<RawCheckpoint>,
}

#[derive(Deserialize)]
struct RawCheckpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct RawDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawEnvelope {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    #[serde(default)]
    pub(crate) signatures: Vec<RawSig>,
}

#[derive(Deserialize)]
pub(crate) struct RawSig {
    pub(crate) sig: String,
    pub(crate) keyid: Option<String>,
}

fn non_negative(v: i64, field: &'static str) -> Result<u64, BundleError> {
    u64::try_from(v).map_err(|_| malformed(field, "is negative"))
}

impl DsseEnvelope {
    /// Parse a DSSE envelope JSON (`envelope.md`); signatures are standard base64.
    pub fn from_json(data: &[u8]) -> Result<DsseEnvelope, BundleError> {
        let raw: RawEnvelope = serde_json::from_slice(data)?;
        DsseEnvelope::from_raw(raw)
    }

    pub(crate) fn from_raw(raw: RawEnvelope) -> Result<DsseEnvelope, BundleError> {
        let payload = b64(&raw.payload).map_err(|e| malformed("dsseEnvelope.payload", e))?;
        let signatures = raw
            .signatures
            .into_iter()
            .map(|s| {
                Ok(DsseSignature {
                    sig: b64(&s.sig).map_err(|e| malformed("dsseEnvelope.signatures.sig", e))?,
                    keyid: s.keyid.filter(|k| !k.is_empty()),
                })
            })
            .collect::<Result<_, BundleError>>()?;
        Ok(DsseEnvelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }
}

impl Bundle {
    /// Parse a bundle's JSON.
    pub fn from_json(data: &[u8]) -> Result<Bundle, BundleError> {
        let raw: RawBundle = serde_json::from_slice(data)?;
        let version = BundleVersion::from_media_type(&raw.media_type)
            .ok_or_else(|| BundleError::UnknownMediaType(raw.media_type.clone()))?;
        let m = raw.verification_material;
        let material = match (m.x509_certificate_chain, m.certificate, m.public_key) {
            (Some(chain), None, None) => {
                let certs = crate::trusted_root::chain(&chain, "x509CertificateChain")
                    .map_err(|e| malformed("verificationMaterial.x509CertificateChain", e))?;
                if certs.is_empty() {
                    return Err(malformed(
                        "verificationMaterial.x509CertificateChain",
                        "is empty",
                    ));
                }
                VerificationMaterial::CertificateChain(certs)
            }
            (None, Some(cert), None) => {
                let der = b64(&cert.raw_bytes)
                    .map_err(|e| malformed("verificationMaterial.certificate", e))?;
                let cert = Certificate::from_der(&der)
                    .map_err(|e| malformed("verificationMaterial.certificate", e))?;
                VerificationMaterial::Certificate(Box::new(cert))
            }
            (None, None, Some(key)) => VerificationMaterial::PublicKey { hint: key.hint },
            (None, None, None) => {
                return Err(malformed(
                    "verificationMaterial",
                    "has no certificate, chain or public key",
                ))
            }
            _ => {
                // The proto declares these as a oneof: two at once is not a valid bundle.
                return Err(malformed(
                    "verificationMaterial",
                    "has more than one of certificate, chain and public key",
                ));
            }
        };
        let tlog_entries = m
            .tlog_entries
            .into_iter()
            .map(entry)
            .collect::<Result<Vec<_>, _>>()?;
        let rfc3161_timestamps = m
            .timestamp_verification_data
            .map(|t| t.rfc3161_timestamps)
            .unwrap_or_default()
            .into_iter()
            .map(|t| b64(&t.signed_timestamp).map_err(|e| malformed("rfc3161Timestamps", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let content = match (raw.message_signature, raw.dsse_envelope) {
            (Some(ms), None) => Content::MessageSignature {
                digest: ms
                    .message_digest
                    .map(|d| {
                        // An algorithm this crate cannot compute is "could not decide", not a
                        // bad signature.
                        if crate::keys::Hash::from_name(&d.algorithm).is_none() {
                            return Err(BundleError::UnsupportedAlgorithm {
                                field: "messageSignature.messageDigest.algorithm",
                                found: d.algorithm,
                                supported: crate::keys::SUPPORTED_HASHES,
                            });
                        }
                        b64(&d.digest)
                            .map(|bytes| (d.algorithm, bytes))
                            .map_err(|e| malformed("messageSignature.messageDigest.digest", e))
                    })
                    .transpose()?,
                signature: b64(&ms.signature)
                    .map_err(|e| malformed("messageSignature.signature", e))?,
            },
            (None, Some(env)) => Content::Dsse(DsseEnvelope::from_raw(env)?),
            (None, None) => {
                return Err(malformed(
                    "content",
                    "has neither messageSignature nor dsseEnvelope",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(malformed(
                    "content",
                    "has both messageSignature and dsseEnvelope",
                ))
            }
        };
        Ok(Bundle {
            media_type: raw.media_type,
            version,
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }
}

fn entry(raw: RawEntry) -> Result<TlogEntry, BundleError> {
    let inclusion_proof = raw
        .inclusion_proof
        .map(|p| {
            Ok::<_, BundleError>(InclusionProof {
                log_index: non_negative(p.log_index, "inclusionProof.logIndex")?,
                root_hash: b64(&p.root_hash)
                    .map_err(|e| malformed("inclusionProof.rootHash", e))?,
                tree_size: non_negative(p.tree_size, "inclusionProof.treeSize")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| b64(h).map_err(|e| malformed("inclusionProof.hashes", e)))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.map(|c| c.envelope),
            })
        })
        .transpose()?;
    Ok(TlogEntry {
        log_index: non_negative(raw.log_index, "tlogEntries.logIndex")?,
        log_id: b64(&raw.log_id.key_id).map_err(|e| malformed("tlogEntries.logId.keyId", e))?,
        kind: raw.kind_version.kind,
        version: raw.kind_version.version,
        // protobuf JSON omits zero values, and Rekor v2 entries carry none: 0 means absent.
        integrated_time: raw.integrated_time.filter(|t| *t != 0),
        signed_entry_timestamp: raw
            .inclusion_promise
            .map(|p| {
                b64(&p.signed_entry_timestamp)
                    .map_err(|e| malformed("inclusionPromise.signedEntryTimestamp", e))
            })
            .transpose()?,
        inclusion_proof,
        canonicalized_body: b64(&raw.canonicalized_body)
            .map_err(|e| malformed("tlogEntries.canonicalizedBody", e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_versions() {
        assert_eq!(
            BundleVersion::from_media_type("application/vnd.dev.sigstore.bundle+json;version=0.3"),
            Some(BundleVersion::V0_3)
        );
        assert_eq!(
            BundleVersion::from_media_type("application/vnd.dev.sigstore.bundle.v0.3+json"),
            Some(BundleVersion::V0_3)
        );
        assert_eq!(
            BundleVersion::from_media_type("application/vnd.dev.sigstore.bundle.v0.4+json"),
            None
        );
    }

    #[test]
    fn int64_accepts_strings_and_numbers() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "int64")]
            v: i64,
        }
        let a: T = serde_json::from_str(r#"{"v":"42"}"#).unwrap();
        let b: T = serde_json::from_str(r#"{"v":42}"#).unwrap();
        assert_eq!((a.v, b.v), (42, 42));
        assert!(serde_json::from_str::<T>(r#"{"v":"4x"}"#).is_err());
    }
}
