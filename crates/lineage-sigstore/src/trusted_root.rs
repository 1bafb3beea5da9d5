//! `trusted_root.json`: the Sigstore trust anchors (protobuf-specs `sigstore_trustroot.proto`,
//! message `TrustedRoot`, media type `application/vnd.dev.sigstore.trustedroot+json;version=0.1`).
//!
//! The protobuf JSON mapping writes bytes as standard base64 and int64 as strings. Entries are
//! parsed once into checked types here; a tlog or CT log whose key this crate cannot use is kept
//! (with no key) rather than failing the whole root, because a root names logs we never consult.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::{b64, VerifyingKey};
use crate::x509::Certificate;

/// A `[start, end]` window from `TimeRange`; an absent end means "still valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidFor {
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
}

impl ValidFor {
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at <= e)
    }
}

/// A transparency log (Rekor) or certificate transparency log entry.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    pub base_url: String,
    /// `logId.keyId`: for Rekor v1 the SHA-256 of the SPKI DER, for Rekor v2 the C2SP key ID
    /// `SHA-256(origin || 0x0A || 0x01 || pubkey)`.
    pub log_id: Vec<u8>,
    pub key_details: String,
    /// `None` when the key is in a form this crate cannot use (e.g. PKCS#1 RSA CT keys).
    pub key: Option<VerifyingKey>,
    pub valid_for: ValidFor,
}

impl TransparencyLog {
    /// The checkpoint origin of this log: the base URL without its scheme, which is what
    /// Rekor v2 logs use as their signed-note name.
    pub fn origin(&self) -> &str {
        self.base_url
            .strip_prefix("https://")
            .or_else(|| self.base_url.strip_prefix("http://"))
            .unwrap_or(&self.base_url)
            .trim_end_matches('/')
    }
}

/// A certificate authority (Fulcio) or timestamp authority with its chain.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub uri: String,
    /// Issuer first, trust anchor last, as `CertificateAuthority.certChain` orders them.
    pub chain: Vec<Certificate>,
    pub valid_for: ValidFor,
}

/// The parsed trusted root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub tlogs: Vec<TransparencyLog>,
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub ctlogs: Vec<TransparencyLog>,
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

/// Why a trusted root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustedRootError {
    #[error("trusted root is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("trusted root has unsupported media type `{0}`")]
    MediaType(String),
    #[error("trusted root field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawPublicKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: Option<String>,
    #[serde(default)]
    key_details: String,
    valid_for: Option<RawTimeRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawLogId {
    pub(crate) key_id: String,
}

#[derive(Deserialize)]
struct RawTimeRange {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: RawCertChain,
    valid_for: Option<RawTimeRange>,
}

#[derive(Deserialize)]
pub(crate) struct RawCertChain {
    #[serde(default)]
    pub(crate) certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawCert {
    pub(crate) raw_bytes: String,
}

fn field(field: &'static str, problem: impl ToString) -> TrustedRootError {
    TrustedRootError::Field {
        field,
        problem: problem.to_string(),
    }
}

fn parse_time(s: &str, name: &'static str) -> Result<OffsetDateTime, TrustedRootError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| field(name, format!("`{s}`: {e}")))
}

/// A `TimeRange` (protobuf-specs `sigstore_common.proto`): `start` is required, `end` is not.
/// A range without a start is a malformed root, never an unbounded window: reading it as
/// "valid since forever" would trust a key for times before it existed. An absent `validFor`
/// stays unbounded, as the spec leaves it optional.
fn valid_for(raw: Option<RawTimeRange>, owner: &str) -> Result<ValidFor, TrustedRootError> {
    let Some(raw) = raw else {
        return Ok(ValidFor {
            start: None,
            end: None,
        });
    };
    let Some(start) = raw.start else {
        return Err(field(
            "validFor.start",
            format!("is missing for `{owner}` (a validity window must say when it starts)"),
        ));
    };
    Ok(ValidFor {
        start: Some(parse_time(&start, "validFor.start")?),
        end: raw
            .end
            .map(|s| parse_time(&s, "validFor.end"))
            .transpose()?,
    })
}

fn log(raw: RawLog) -> Result<TransparencyLog, TrustedRootError> {
    let log_id = b64(&raw.log_id.key_id).map_err(|e| field("logId.keyId", e))?;
    let key = match &raw.public_key.raw_bytes {
        Some(bytes) => {
            let der = b64(bytes).map_err(|e| field("publicKey.rawBytes", e))?;
            crate::keys::from_spki_der(&der).ok()
        }
        None => None,
    };
    let valid_for = valid_for(raw.public_key.valid_for, &raw.base_url)?;
    Ok(TransparencyLog {
        base_url: raw.base_url,
        log_id,
        key_details: raw.public_key.key_details,
        key,
        valid_for,
    })
}

pub(crate) fn chain(raw: &RawCertChain, name: &'static str) -> Result<Vec<Certificate>, String> {
    raw.certificates
        .iter()
        .map(|c| {
            let der = b64(&c.raw_bytes).map_err(|e| format!("{name}: {e}"))?;
            Certificate::from_der(&der).map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

fn ca(raw: RawCa) -> Result<CertificateAuthority, TrustedRootError> {
    let chain = chain(&raw.cert_chain, "certChain").map_err(|e| field("certChain", e))?;
    if chain.is_empty() {
        return Err(field("certChain", "is empty"));
    }
    let valid_for = valid_for(raw.valid_for, &raw.uri)?;
    Ok(CertificateAuthority {
        uri: raw.uri,
        chain,
        valid_for,
    })
}

impl TrustedRoot {
    /// Parse a `trusted_root.json`.
    pub fn from_json(data: &[u8]) -> Result<TrustedRoot, TrustedRootError> {
        let raw: RawRoot = serde_json::from_slice(data)?;
        if let Some(mt) = &raw.media_type {
            if !mt.starts_with("application/vnd.dev.sigstore.trustedroot") {
                return Err(TrustedRootError::MediaType(mt.clone()));
            }
        }
        Ok(TrustedRoot {
            tlogs: raw.tlogs.into_iter().map(log).collect::<Result<_, _>>()?,
            certificate_authorities: raw
                .certificate_authorities
                .into_iter()
                .map(ca)
                .collect::<Result<_, _>>()?,
            ctlogs: raw.ctlogs.into_iter().map(log).collect::<Result<_, _>>()?,
            timestamp_authorities: raw
                .timestamp_authorities
                .into_iter()
                .map(ca)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The transparency log with this `logId`.
    pub fn tlog(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_window_is_inclusive_and_open_ended() {
        let t = |s| OffsetDateTime::parse(s, &Rfc3339).unwrap();
        let w = ValidFor {
            start: Some(t("2022-01-01T00:00:00Z")),
            end: None,
        };
        assert!(w.contains(t("2022-01-01T00:00:00Z")));
        assert!(w.contains(t("2099-01-01T00:00:00Z")));
        assert!(!w.contains(t("2021-12-31T23:59:59Z")));
    }

    #[test]
    fn rejects_foreign_media_type_and_bad_base64() {
        let r = TrustedRoot::from_json(br#"{"mediaType":"application/json"}"#);
        assert!(matches!(r, Err(TrustedRootError::MediaType(_))));
        let r = TrustedRoot::from_json(
            br#"{"tlogs":[{"publicKey":{"rawBytes":"AA=="},"logId":{"keyId":"***"}}]}"#,
        );
        assert!(matches!(r, Err(TrustedRootError::Field { .. })));
    }
}
