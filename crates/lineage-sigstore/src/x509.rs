//! X.509 certificates (RFC 5280) as far as Sigstore needs them: Fulcio leaves, their CA
//! chains from the trusted root, and RFC 3161 TSA certificates.
//!
//! Certificates are decoded with RustCrypto's `x509-cert`, and paths are validated by
//! `rustls-webpki` (RFC 5280 §6.1 as the Web PKI profiles it: signatures, CA basic constraints
//! and path lengths, name chaining, validity of every certificate at the given time, extended
//! key usage, unknown critical extensions). Sigstore's use differs from TLS in two ways that
//! stay here: the path is the leaf plus one `certChain` of the trusted root (never certificates
//! the bundle supplies), and it is validated at the *signing* time rather than now (Fulcio
//! leaves live ten minutes). What no crate knows is hand-written and small: Fulcio's private
//! issuer extensions (`fulcio_issuer`) and the rule that an expiry is only reported for a
//! chain that is otherwise trusted.

use std::time::Duration;

use ::der::asn1::Utf8StringRef;
use ::der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName as SanExtension};

use crate::keys::{KeyError, VerifyingKey};

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SAN: &str = "2.5.29.17";
const OID_EKU: &str = "2.5.29.37";
/// `id-kp-codeSigning` (RFC 5280 §4.2.1.12), as the DER contents webpki takes.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// `id-kp-timeStamping` (RFC 3161 §2.3).
const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// Fulcio "OIDC issuer" (deprecated form): the raw issuer string, not DER-wrapped.
pub const OID_FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio "OIDC issuer (v2)": a DER UTF8String.
pub const OID_FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// One extension, kept raw so callers can read Fulcio's private OIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub oid: String,
    pub critical: bool,
    pub value: Vec<u8>,
}

/// A subject alternative name Sigstore cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    Email(String),
    Uri(String),
    /// An `otherName` with a UTF8String value (Fulcio's username SAN).
    Other(String),
}

impl SubjectAltName {
    pub fn value(&self) -> &str {
        match self {
            SubjectAltName::Email(s) | SubjectAltName::Uri(s) | SubjectAltName::Other(s) => s,
        }
    }
}

/// A parsed certificate. Only fields used in verification are kept.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    spki: Vec<u8>,
    /// Parsed on first use: a trusted root holds many certificates whose keys a verification
    /// never touches, and parsing a key (point validation) is the costly part.
    public_key: std::sync::OnceLock<Result<VerifyingKey, KeyError>>,
    extensions: Vec<Extension>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

/// Why a certificate could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("malformed certificate: {0}")]
    Der(String),
    #[error("certificate PEM: {0}")]
    Pem(String),
}

fn der_err(e: ::der::Error) -> CertError {
    CertError::Der(e.to_string())
}

fn to_time(t: x509_cert::time::Time) -> Result<OffsetDateTime, CertError> {
    let secs = t.to_unix_duration().as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| CertError::Der("validity time out of range".into()))
}

impl Certificate {
    /// Parse one DER certificate (RFC 5280 §4.1); trailing bytes are an error.
    pub fn from_der(data: &[u8]) -> Result<Certificate, CertError> {
        let cert = x509_cert::Certificate::from_der(data).map_err(der_err)?;
        let tbs = &cert.tbs_certificate;
        if tbs.signature != cert.signature_algorithm {
            // RFC 5280 §4.1.1.2: the two algorithm fields must be identical.
            return Err(CertError::Der("signature algorithm fields differ".into()));
        }
        let mut extensions: Vec<Extension> = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            let oid = ext.extn_id.to_string();
            if extensions.iter().any(|e| e.oid == oid) {
                // RFC 5280 §4.2: a certificate must not include an extension twice.
                return Err(CertError::Der(format!("duplicate extension {oid}")));
            }
            extensions.push(Extension {
                oid,
                critical: ext.critical,
                value: ext.extn_value.as_bytes().to_vec(),
            });
        }
        let spki = tbs.subject_public_key_info.to_der().map_err(der_err)?;
        Ok(Certificate {
            der: data.to_vec(),
            subject: tbs.subject.to_der().map_err(der_err)?,
            not_before: to_time(tbs.validity.not_before)?,
            not_after: to_time(tbs.validity.not_after)?,
            spki,
            public_key: std::sync::OnceLock::new(),
            extensions,
        })
    }

    /// Parse every `CERTIFICATE` block of a PEM text, in order (RFC 7468, each block decoded
    /// by `pem-rfc7468` through `lineage_log::keys::pem_block`). Not `x509-cert`'s
    /// `load_pem_chain`: it panics on empty input (found by `fuzz_arbitrary_bytes`).
    pub fn all_from_pem(pem: &str) -> Result<Vec<Certificate>, CertError> {
        let mut out = Vec::new();
        let mut rest = pem;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let end = block
                .find("-----END ")
                .and_then(|e| block[e + 9..].find("-----").map(|c| e + 9 + c + 5))
                .ok_or_else(|| {
                    CertError::Pem("a `-----BEGIN` line without its `-----END`".into())
                })?;
            let (label, der) = lineage_log::keys::pem_block(&block[..end])
                .map_err(|e| CertError::Pem(e.to_string()))?;
            if label != "CERTIFICATE" {
                return Err(CertError::Pem(format!(
                    "expected `CERTIFICATE` blocks, found `{label}`"
                )));
            }
            out.push(Certificate::from_der(&der)?);
            rest = &block[end..];
        }
        if out.is_empty() {
            return Err(CertError::Pem("no CERTIFICATE block".into()));
        }
        Ok(out)
    }

    /// Parse a PEM text holding exactly one certificate.
    pub fn from_pem(pem: &str) -> Result<Certificate, CertError> {
        let mut all = Certificate::all_from_pem(pem)?;
        if all.len() != 1 {
            return Err(CertError::Pem(format!(
                "expected one certificate, found {}",
                all.len()
            )));
        }
        Ok(all.remove(0))
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Whether the certificate carries the extension with this OID.
    pub fn has_extension(&self, oid: &str) -> bool {
        self.extension(oid).is_some()
    }

    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject as RFC 4514 text, for messages (`CN=sigstore-intermediate,O=sigstore.dev`).
    pub fn subject_text(&self) -> String {
        x509_cert::name::Name::from_der(&self.subject)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "(unreadable subject)".into())
    }

    pub fn public_key(&self) -> Result<&VerifyingKey, &KeyError> {
        self.public_key
            .get_or_init(|| crate::keys::from_spki_der(&self.spki))
            .as_ref()
    }

    pub fn extension(&self, oid: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.oid == oid)
    }

    /// Whether `at` falls inside `[notBefore, notAfter]` (RFC 5280 §4.1.2.5: both inclusive).
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The subject alternative names Sigstore uses (RFC 5280 §4.2.1.6): email, URI, and an
    /// `otherName` holding a UTF8String.
    pub fn subject_alt_names(&self) -> Vec<SubjectAltName> {
        let Some(ext) = self.extension(OID_SAN) else {
            return Vec::new();
        };
        let Ok(names) = SanExtension::from_der(&ext.value) else {
            return Vec::new();
        };
        names
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::Rfc822Name(s) => Some(SubjectAltName::Email(s.to_string())),
                GeneralName::UniformResourceIdentifier(s) => {
                    Some(SubjectAltName::Uri(s.to_string()))
                }
                GeneralName::OtherName(o) => o
                    .value
                    .decode_as::<Utf8StringRef<'_>>()
                    .ok()
                    .map(|s| SubjectAltName::Other(s.as_str().to_string())),
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer Fulcio embedded, preferring the v2 extension (a DER UTF8String) over
    /// the deprecated v1 one (the raw string). No crate knows these private extensions.
    pub fn fulcio_issuer(&self) -> Option<String> {
        if let Some(ext) = self.extension(OID_FULCIO_ISSUER_V2) {
            if let Ok(s) = Utf8StringRef::from_der(&ext.value) {
                return Some(s.as_str().to_string());
            }
        }
        self.extension(OID_FULCIO_ISSUER_V1)
            .and_then(|e| String::from_utf8(e.value.clone()).ok())
    }

    /// Whether the certificate's extended key usage lists `oid` (DER contents).
    fn has_eku(&self, oid: &[u8]) -> bool {
        self.extension(OID_EKU).is_some_and(|ext| {
            ExtendedKeyUsage::from_der(&ext.value)
                .is_ok_and(|eku| eku.0.iter().any(|o| o.as_bytes() == oid))
        })
    }

    /// Whether the certificate's key usage, if stated, allows `digitalSignature`
    /// (RFC 5280 §4.2.1.3). webpki leaves an end entity's key usage to the application.
    fn may_sign(&self) -> bool {
        match self.extension(OID_KEY_USAGE) {
            None => true,
            Some(ext) => KeyUsage::from_der(&ext.value)
                .is_ok_and(|ku| ku.0.contains(KeyUsages::DigitalSignature)),
        }
    }
}

/// What a certificate path is used for, which decides the leaf's required EKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Fulcio signing certificates: `digitalSignature` + `id-kp-codeSigning`.
    CodeSigning,
    /// RFC 3161 TSA certificates: `id-kp-timeStamping` (RFC 3161 §2.3).
    TimeStamping,
    /// Notary Project signing certificates: `id-kp-codeSigning` when the certificate states
    /// extended key usages at all.
    NotarySigning,
}

/// Why a certificate path was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The leaf's validity window ends before `at` (and the chain is otherwise trusted).
    LeafExpired { not_after: OffsetDateTime },
    /// The leaf's validity window starts after `at` (and the chain is otherwise trusted).
    LeafNotYetValid { not_before: OffsetDateTime },
    /// Anything else: a broken signature, a non-CA issuer, a CA outside its window, ...
    Untrusted(String),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::LeafExpired { not_after } => {
                write!(f, "the certificate expired at {}", fmt_time(*not_after))
            }
            PathError::LeafNotYetValid { not_before } => {
                write!(
                    f,
                    "the certificate is valid only from {}",
                    fmt_time(*not_before)
                )
            }
            PathError::Untrusted(why) => f.write_str(why),
        }
    }
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_timestamp()).unwrap_or(0),
    ))
}

/// A sentence for a webpki refusal.
fn describe(e: &webpki::Error, purpose: Purpose) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "no certificate of the trusted chain issued it (unknown issuer)".into(),
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a signature in the path does not verify with its issuer's key".into()
        }
        E::UnsupportedSignatureAlgorithmContext(_) => {
            "a certificate in the path uses an unsupported signature algorithm".into()
        }
        E::CaUsedAsEndEntity => "the leaf is a CA certificate".into(),
        E::EndEntityUsedAsCa => "an issuer in the trusted chain is not a CA".into(),
        E::PathLenConstraintViolated => "CA path length constraint exceeded".into(),
        E::UnsupportedCriticalExtension => {
            "a certificate in the path has an unknown critical extension".into()
        }
        E::RequiredEkuNotFoundContext(_) => match purpose {
            Purpose::CodeSigning | Purpose::NotarySigning => {
                "the leaf lacks the codeSigning extended key usage".into()
            }
            Purpose::TimeStamping => {
                "the TSA certificate lacks the timeStamping extended key usage".into()
            }
        },
        E::CertExpired { .. } | E::CertNotValidYet { .. } => {
            "a CA certificate of the trusted chain is not valid at that time".into()
        }
        other => format!("the path is not valid: {other:?}"),
    }
}

/// Validate `leaf` against `chain` (issuer first, trust anchor last) at time `at`.
pub fn validate_path(
    leaf: &Certificate,
    chain: &[Certificate],
    at: OffsetDateTime,
    purpose: Purpose,
) -> Result<(), PathError> {
    let untrusted = |m: String| Err(PathError::Untrusted(m));
    let Some((anchor, intermediates)) = chain.split_last() else {
        return untrusted("the trusted chain is empty".into());
    };
    if purpose == Purpose::CodeSigning && !leaf.may_sign() {
        return untrusted("leaf key usage lacks digitalSignature".into());
    }
    let anchor_der = CertificateDer::from(anchor.der());
    let anchor = match webpki::anchor_from_trusted_cert(&anchor_der) {
        Ok(a) => a,
        Err(e) => return untrusted(format!("the trust anchor is unusable: {e:?}")),
    };
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.der());
    let ee = match webpki::EndEntityCert::try_from(&leaf_der) {
        Ok(ee) => ee,
        Err(e) => return untrusted(format!("the certificate is unusable: {e:?}")),
    };
    // webpki applies one EKU rule to every certificate of the path, and its "required" form
    // refuses a CA without an EKU extension, which RFC 5280 §4.2.1.12 reads as "any purpose"
    // (GlobalSign's timestamping CA has none). So the path gets "required if present", and
    // the leaf's own EKU is required here.
    let (eku, required) = match purpose {
        Purpose::CodeSigning => (EKU_CODE_SIGNING, true),
        Purpose::TimeStamping => (EKU_TIME_STAMPING, true),
        Purpose::NotarySigning => (EKU_CODE_SIGNING, false),
    };
    if required && !leaf.has_eku(eku) {
        return untrusted(match purpose {
            Purpose::TimeStamping => {
                "the TSA certificate lacks the timeStamping extended key usage".into()
            }
            _ => "the leaf lacks the codeSigning extended key usage".into(),
        });
    }
    let usage = webpki::KeyUsage::required_if_present(eku);
    let anchors = [anchor];
    let check = |t: OffsetDateTime| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            unix(t),
            usage,
            None,
            None,
        )
        .map(|_| ())
    };
    match check(at) {
        Ok(()) => Ok(()),
        Err(e) if !leaf.valid_at(at) => {
            // An expiry is only reported for a chain that is otherwise trusted: "expired" must
            // mean "trusted, but not at that time", so check the path inside the leaf's window.
            if let Err(e) = check(leaf.not_before) {
                return untrusted(describe(&e, purpose));
            }
            let _ = e;
            if at > leaf.not_after {
                Err(PathError::LeafExpired {
                    not_after: leaf.not_after,
                })
            } else {
                Err(PathError::LeafNotYetValid {
                    not_before: leaf.not_before,
                })
            }
        }
        Err(e) => untrusted(describe(&e, purpose)),
    }
}

/// RFC 3339 rendering for reason details.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            &[0x30],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            &[0xff; 40],
        ] {
            assert!(Certificate::from_der(input).is_err());
        }
    }
}
