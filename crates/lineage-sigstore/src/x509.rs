//! X.509 certificates (RFC 5280) as far as Sigstore needs them: Fulcio leaves, their CA
//! chains from the trusted root, and RFC 3161 TSA certificates.
//!
//! Path validation follows RFC 5280 §6.1 in the reduced form Sigstore clients use: the path is
//! the leaf plus one `certChain` of the trusted root (never certificates supplied by the
//! bundle), names are compared as DER bytes (RFC 5280 §7.1 permits binary comparison), every
//! certificate must be valid at the *signing* time rather than now (Fulcio leaves live ten
//! minutes), and an unknown critical extension makes the certificate unusable (§4.2).

use time::OffsetDateTime;

use crate::der::{self, tag};
use crate::keys::{Hash, KeyError, VerifyingKey};

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SAN: &str = "2.5.29.17";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_EKU: &str = "2.5.29.37";
const OID_SKI: &str = "2.5.29.14";
const OID_AKI: &str = "2.5.29.35";
const OID_EKU_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_EKU_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// Fulcio "OIDC issuer" (deprecated form): the raw issuer string, not DER-wrapped.
pub const OID_FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio "OIDC issuer (v2)": a DER UTF8String.
pub const OID_FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// The extensions this module understands, and so may accept when marked critical.
const KNOWN_CRITICAL: &[&str] = &[
    OID_KEY_USAGE,
    OID_SAN,
    OID_BASIC_CONSTRAINTS,
    OID_EKU,
    OID_SKI,
    OID_AKI,
];

/// KeyUsage bits (RFC 5280 §4.2.1.3), numbered from the most significant bit of the first byte.
const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
const KU_KEY_CERT_SIGN: u16 = 1 << 5;

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
    tbs: Vec<u8>,
    signature_algorithm: String,
    signature: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    public_key: Result<VerifyingKey, KeyError>,
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
    Der(#[from] der::DerError),
    #[error("certificate PEM: {0}")]
    Pem(String),
}

impl Certificate {
    /// Parse one DER certificate (RFC 5280 §4.1).
    pub fn from_der(data: &[u8]) -> Result<Certificate, CertError> {
        let cert = der::parse_single(data, tag::SEQUENCE, "Certificate")?;
        let mut r = cert.reader();
        let tbs = r.expect(tag::SEQUENCE, "tbsCertificate")?;
        let sig_alg = r.expect(tag::SEQUENCE, "signatureAlgorithm")?;
        let sig = r.expect(tag::BIT_STRING, "signatureValue")?;
        r.finish("Certificate")?;
        let signature_algorithm = der::read_oid(&mut sig_alg.reader(), "signatureAlgorithm")?;
        let signature = der::bit_string_bytes(&sig)?.to_vec();

        let mut t = tbs.reader();
        if let Some(version) = t.optional(0xa0)? {
            let v = version.reader().expect(tag::INTEGER, "version")?;
            if v.contents != [2] {
                return Err(
                    der::DerError("only X.509 v3 certificates are supported".into()).into(),
                );
            }
        }
        t.expect(tag::INTEGER, "serialNumber")?;
        let inner_alg = t.expect(tag::SEQUENCE, "signature")?;
        if inner_alg.raw != sig_alg.raw {
            // RFC 5280 §4.1.1.2: the two algorithm fields must be identical.
            return Err(der::DerError("signature algorithm fields differ".into()).into());
        }
        let issuer = t.expect(tag::SEQUENCE, "issuer")?;
        let validity = t.expect(tag::SEQUENCE, "validity")?;
        let subject = t.expect(tag::SEQUENCE, "subject")?;
        let spki = t.expect(tag::SEQUENCE, "subjectPublicKeyInfo")?;
        t.optional(0x81)?;
        t.optional(0x82)?;
        let mut extensions = Vec::new();
        if let Some(exts) = t.optional(0xa3)? {
            let seq = der::parse_single(exts.contents, tag::SEQUENCE, "extensions")?;
            let mut er = seq.reader();
            while !er.is_empty() {
                let ext = er.expect(tag::SEQUENCE, "extension")?;
                let mut x = ext.reader();
                let oid = der::read_oid(&mut x, "extnID")?;
                let critical = match x.optional(tag::BOOLEAN)? {
                    Some(b) => b.contents == [0xff],
                    None => false,
                };
                let value = x.expect(tag::OCTET_STRING, "extnValue")?.contents.to_vec();
                x.finish("extension")?;
                if extensions.iter().any(|e: &Extension| e.oid == oid) {
                    // RFC 5280 §4.2: a certificate must not include an extension twice.
                    return Err(der::DerError(format!("duplicate extension {oid}")).into());
                }
                extensions.push(Extension {
                    oid,
                    critical,
                    value,
                });
            }
        }
        t.finish("tbsCertificate")?;

        let mut v = validity.reader();
        let not_before = der::parse_time(&v.read()?)?;
        let not_after = der::parse_time(&v.read()?)?;
        v.finish("validity")?;

        Ok(Certificate {
            der: data.to_vec(),
            tbs: tbs.raw.to_vec(),
            signature_algorithm,
            signature,
            issuer: issuer.raw.to_vec(),
            subject: subject.raw.to_vec(),
            not_before,
            not_after,
            public_key: VerifyingKey::from_spki_der(spki.raw),
            extensions,
        })
    }

    /// Parse every `CERTIFICATE` block of a PEM text, in order.
    pub fn all_from_pem(pem: &str) -> Result<Vec<Certificate>, CertError> {
        let blocks = crate::keys::pem_blocks(pem, "CERTIFICATE").map_err(CertError::Pem)?;
        if blocks.is_empty() {
            return Err(CertError::Pem("no CERTIFICATE block".into()));
        }
        blocks.iter().map(|b| Certificate::from_der(b)).collect()
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

    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject as RFC 4514 text, for messages (`CN=sigstore-intermediate,O=sigstore.dev`).
    pub fn subject_text(&self) -> String {
        use ::der::Decode;
        x509_cert::name::Name::from_der(&self.subject)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "(unreadable subject)".into())
    }

    pub fn public_key(&self) -> Result<&VerifyingKey, &KeyError> {
        self.public_key.as_ref()
    }

    pub fn extension(&self, oid: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.oid == oid)
    }

    /// Whether `at` falls inside `[notBefore, notAfter]` (RFC 5280 §4.1.2.5: both inclusive).
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The subject alternative names this module understands (RFC 5280 §4.2.1.6).
    pub fn subject_alt_names(&self) -> Vec<SubjectAltName> {
        let Some(ext) = self.extension(OID_SAN) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(seq) = der::parse_single(&ext.value, tag::SEQUENCE, "subjectAltName") else {
            return out;
        };
        let mut r = seq.reader();
        while let Ok(name) = r.read() {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
            match name.tag {
                0x81 => out.extend(text(name.contents).map(SubjectAltName::Email)),
                0x86 => out.extend(text(name.contents).map(SubjectAltName::Uri)),
                0xa0 => {
                    // otherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
                    let mut o = name.reader();
                    let _ = der::read_oid(&mut o, "otherName type");
                    if let Ok(v) = o.expect(0xa0, "otherName value") {
                        if let Ok(s) = v.reader().expect(tag::UTF8_STRING, "otherName string") {
                            out.extend(text(s.contents).map(SubjectAltName::Other));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The OIDC issuer Fulcio embedded, preferring the v2 extension (a DER UTF8String) over
    /// the deprecated v1 one (the raw string).
    pub fn fulcio_issuer(&self) -> Option<String> {
        if let Some(ext) = self.extension(OID_FULCIO_ISSUER_V2) {
            if let Ok(s) = der::parse_single(&ext.value, tag::UTF8_STRING, "issuer") {
                return String::from_utf8(s.contents.to_vec()).ok();
            }
        }
        self.extension(OID_FULCIO_ISSUER_V1)
            .and_then(|e| String::from_utf8(e.value.clone()).ok())
    }

    fn basic_constraints(&self) -> Option<(bool, Option<u64>)> {
        let ext = self.extension(OID_BASIC_CONSTRAINTS)?;
        let seq = der::parse_single(&ext.value, tag::SEQUENCE, "basicConstraints").ok()?;
        let mut r = seq.reader();
        let ca = match r.optional(tag::BOOLEAN).ok()? {
            Some(b) => b.contents == [0xff],
            None => false,
        };
        let path_len = match r.optional(tag::INTEGER).ok()? {
            Some(i) if i.contents.len() <= 8 => {
                Some(i.contents.iter().fold(0u64, |a, b| (a << 8) | *b as u64))
            }
            _ => None,
        };
        Some((ca, path_len))
    }

    fn key_usage(&self) -> Option<u16> {
        let ext = self.extension(OID_KEY_USAGE)?;
        let bits = der::parse_single(&ext.value, tag::BIT_STRING, "keyUsage").ok()?;
        let bytes = bits.contents.get(1..)?;
        // Bit 0 is the MSB of the first byte: reverse into a little-endian flag word.
        let mut flags = 0u16;
        for (i, byte) in bytes.iter().take(2).enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    flags |= 1 << (i * 8 + bit);
                }
            }
        }
        Some(flags)
    }

    fn extended_key_usages(&self) -> Option<Vec<String>> {
        let ext = self.extension(OID_EKU)?;
        let seq = der::parse_single(&ext.value, tag::SEQUENCE, "extKeyUsage").ok()?;
        let mut r = seq.reader();
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(der::read_oid(&mut r, "KeyPurposeId").ok()?);
        }
        Some(out)
    }

    fn unknown_critical_extension(&self) -> Option<&str> {
        self.extensions
            .iter()
            .find(|e| e.critical && !KNOWN_CRITICAL.contains(&e.oid.as_str()))
            .map(|e| e.oid.as_str())
    }

    /// Whether `issuer` signed this certificate (names chain and the signature verifies).
    pub fn is_signed_by(&self, issuer: &Certificate) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        let Ok(key) = issuer.public_key() else {
            return false;
        };
        let hash = match self.signature_algorithm.as_str() {
            "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Hash::Sha256,
            "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Hash::Sha384,
            "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Hash::Sha512,
            "1.3.101.112" => Hash::Sha512,
            _ => return false,
        };
        key.verify_with(hash, &self.tbs, &self.signature)
    }
}

/// What a certificate path is used for, which decides the leaf's required EKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Fulcio signing certificates: `digitalSignature` + `id-kp-codeSigning`.
    CodeSigning,
    /// RFC 3161 TSA certificates: `id-kp-timeStamping` (RFC 3161 §2.3).
    TimeStamping,
}

/// Why a certificate path was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The leaf's validity window ends before `at`.
    LeafExpired { not_after: OffsetDateTime },
    /// The leaf's validity window starts after `at`.
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

/// Validate `leaf` against `chain` (issuer first, trust anchor last) at time `at`.
pub fn validate_path(
    leaf: &Certificate,
    chain: &[Certificate],
    at: OffsetDateTime,
    purpose: Purpose,
) -> Result<(), PathError> {
    let untrusted = |m: String| Err(PathError::Untrusted(m));
    if chain.is_empty() {
        return untrusted("the trusted chain is empty".into());
    }
    if let Some(oid) = leaf.unknown_critical_extension() {
        return untrusted(format!("leaf has unknown critical extension {oid}"));
    }
    if matches!(leaf.basic_constraints(), Some((true, _))) {
        return untrusted("leaf is a CA certificate".into());
    }
    match purpose {
        Purpose::CodeSigning => {
            if let Some(ku) = leaf.key_usage() {
                if ku & KU_DIGITAL_SIGNATURE == 0 {
                    return untrusted("leaf key usage lacks digitalSignature".into());
                }
            }
            match leaf.extended_key_usages() {
                Some(ekus) if ekus.iter().any(|e| e == OID_EKU_CODE_SIGNING) => {}
                _ => return untrusted("leaf lacks the codeSigning extended key usage".into()),
            }
        }
        Purpose::TimeStamping => match leaf.extended_key_usages() {
            Some(ekus) if ekus.iter().any(|e| e == OID_EKU_TIME_STAMPING) => {}
            _ => return untrusted("TSA certificate lacks the timeStamping key usage".into()),
        },
    }

    let mut child = leaf;
    for (depth, ca) in chain.iter().enumerate() {
        if !child.is_signed_by(ca) {
            return untrusted(format!(
                "certificate at depth {depth} is not signed by the next certificate of the trusted chain"
            ));
        }
        match ca.basic_constraints() {
            Some((true, path_len)) => {
                // pathLenConstraint counts the CA certificates that may follow below this one.
                if let Some(max) = path_len {
                    if (depth as u64) > max {
                        return untrusted("CA path length constraint exceeded".into());
                    }
                }
            }
            _ => return untrusted("an issuer in the trusted chain is not a CA".into()),
        }
        if let Some(ku) = ca.key_usage() {
            if ku & KU_KEY_CERT_SIGN == 0 {
                return untrusted("an issuer in the trusted chain lacks keyCertSign".into());
            }
        }
        if let Some(oid) = ca.unknown_critical_extension() {
            return untrusted(format!("CA has unknown critical extension {oid}"));
        }
        if !ca.valid_at(at) {
            return untrusted(format!(
                "CA certificate at depth {} is not valid at {} (valid {} to {})",
                depth + 1,
                fmt_time(at),
                fmt_time(ca.not_before),
                fmt_time(ca.not_after)
            ));
        }
        child = ca;
    }
    let anchor = chain.last().expect("chain is not empty");
    if !anchor.is_signed_by(anchor) {
        return untrusted("the trust anchor is not self-signed".into());
    }
    // The leaf window is checked last so that a broken chain is never reported as a mere
    // expiry: "expired" must mean "trusted, but not at that time".
    if at > leaf.not_after {
        return Err(PathError::LeafExpired {
            not_after: leaf.not_after,
        });
    }
    if at < leaf.not_before {
        return Err(PathError::LeafNotYetValid {
            not_before: leaf.not_before,
        });
    }
    Ok(())
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
