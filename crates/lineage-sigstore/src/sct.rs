//! Signed certificate timestamps (RFC 6962 §3.2-3.3) embedded in Fulcio certificates.
//!
//! Fulcio submits each certificate, as a precertificate, to a certificate-transparency log
//! before issuing it and embeds the log's SCT in the certificate (extension
//! 1.3.6.1.4.1.11129.2.4.2). Checking the SCT against the trusted root's `ctlogs` proves the
//! certificate was made public, so a mis-issued one can be found by monitors. The signed data
//! is the precertificate's TBSCertificate, i.e. the leaf's TBSCertificate without the SCT
//! extension, re-encoded in DER, together with the SHA-256 of the issuer's SubjectPublicKeyInfo.
//!
//! The certificate is decoded and re-encoded with the `x509-cert` crate; only the TLS
//! presentation-language structures of the SCT list (RFC 5246 §4, RFC 6962 §3.3), which no
//! maintained crate parses, are read here, with bounds checked on every length.

use ::der::asn1::OctetString;
use ::der::{Decode, Encode};
use time::OffsetDateTime;

use crate::keys::{sha256, Hash};
use crate::trusted_root::TransparencyLog;
use crate::x509::fmt_time;

/// `id-ce-embeddedSCTList` (RFC 6962 §3.3).
pub const OID_SCT_LIST: ::der::oid::ObjectIdentifier =
    ::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One SCT, as RFC 6962 §3.2 serializes it (version 1 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    pub extensions: Vec<u8>,
    /// TLS `HashAlgorithm` (4 = sha256, 5 = sha384, 6 = sha512).
    pub hash: u8,
    /// TLS `SignatureAlgorithm` (1 = rsa, 3 = ecdsa).
    pub signature_algorithm: u8,
    pub signature: Vec<u8>,
}

/// A bounds-checked reader over TLS-encoded bytes.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated SCT data: {n} bytes needed, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A `<0..2^(8n)-1>` vector with an `n`-byte length prefix.
    fn vector(&mut self, n: usize) -> Result<&'a [u8], String> {
        let len = self.uint(n)? as usize;
        self.take(len)
    }
}

/// Parse a `SignedCertificateTimestampList` (RFC 6962 §3.3), the TLS-encoded contents of the
/// extension's inner OCTET STRING.
pub fn parse_list(data: &[u8]) -> Result<Vec<Sct>, String> {
    let mut outer = Tls(data);
    let list = outer.vector(2)?;
    if !outer.0.is_empty() {
        return Err("trailing bytes after the SCT list".into());
    }
    let mut r = Tls(list);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let mut s = Tls(r.vector(2)?);
        let version = s.uint(1)?;
        if version != 0 {
            return Err(format!("unsupported SCT version {version}"));
        }
        let mut log_id = [0u8; 32];
        log_id.copy_from_slice(s.take(32)?);
        let timestamp = s.uint(8)?;
        let extensions = s.vector(2)?.to_vec();
        let hash = s.uint(1)? as u8;
        let signature_algorithm = s.uint(1)? as u8;
        let signature = s.vector(2)?.to_vec();
        if !s.0.is_empty() {
            return Err("trailing bytes after an SCT".into());
        }
        out.push(Sct {
            log_id,
            timestamp,
            extensions,
            hash,
            signature_algorithm,
            signature,
        });
    }
    Ok(out)
}

/// The certificate's SCTs and its precertificate TBS (the TBSCertificate without the SCT
/// extension), or why they cannot be had.
pub fn embedded(leaf_der: &[u8]) -> Result<(Vec<Sct>, Vec<u8>), String> {
    let cert = x509_cert::Certificate::from_der(leaf_der)
        .map_err(|e| format!("the certificate cannot be decoded: {e}"))?;
    let mut tbs = cert.tbs_certificate;
    let exts = tbs.extensions.take().unwrap_or_default();
    let (scts, rest): (Vec<_>, Vec<_>) = exts.into_iter().partition(|e| e.extn_id == OID_SCT_LIST);
    let [ext] = scts.as_slice() else {
        return Err(if scts.is_empty() {
            "the certificate carries no embedded SCT".into()
        } else {
            "the certificate carries the SCT extension twice".into()
        });
    };
    let inner = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| format!("the SCT extension is not an OCTET STRING: {e}"))?;
    let list = parse_list(inner.as_bytes())?;
    tbs.extensions = if rest.is_empty() { None } else { Some(rest) };
    let precert_tbs = tbs
        .to_der()
        .map_err(|e| format!("the precertificate cannot be re-encoded: {e}"))?;
    Ok((list, precert_tbs))
}

/// The bytes an SCT for a precertificate signs (RFC 6962 §3.2, `digitally-signed struct`).
pub fn signed_data(sct: &Sct, issuer_spki_der: &[u8], precert_tbs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(precert_tbs.len() + 64);
    m.push(0); // sct_version v1
    m.push(0); // signature_type certificate_timestamp
    m.extend_from_slice(&sct.timestamp.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    m.extend_from_slice(&sha256(issuer_spki_der));
    let len = precert_tbs.len() as u32;
    m.extend_from_slice(&len.to_be_bytes()[1..]);
    m.extend_from_slice(precert_tbs);
    m.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
    m.extend_from_slice(&sct.extensions);
    m
}

/// Verify that at least one embedded SCT is signed by a CT log of the trusted root whose key
/// was valid at the SCT's time. Returns a sentence naming the log, or why none verified.
pub fn verify(
    leaf_der: &[u8],
    issuer_spki_der: &[u8],
    ctlogs: &[TransparencyLog],
) -> Result<String, String> {
    let (scts, precert_tbs) = embedded(leaf_der)?;
    let mut why = Vec::new();
    for sct in &scts {
        let id = hex::encode(&sct.log_id[..4]);
        let Some(log) = ctlogs.iter().find(|l| l.log_id[..] == sct.log_id[..]) else {
            why.push(format!(
                "SCT from log {id}… is from no CT log of the trusted root"
            ));
            continue;
        };
        let Some(key) = &log.key else {
            why.push(format!(
                "the key of CT log {} is not usable ({})",
                log.base_url, log.key_details
            ));
            continue;
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(sct.timestamp) * 1_000_000)
            .map_err(|_| "SCT timestamp out of range".to_string())?;
        if !log.valid_for.contains(at) {
            why.push(format!(
                "the key of CT log {} is not valid at the SCT's time {}",
                log.base_url,
                fmt_time(at)
            ));
            continue;
        }
        let hash = match sct.hash {
            4 => Hash::Sha256,
            5 => Hash::Sha384,
            6 => Hash::Sha512,
            other => {
                why.push(format!("SCT uses unsupported TLS hash algorithm {other}"));
                continue;
            }
        };
        let data = signed_data(sct, issuer_spki_der, &precert_tbs);
        if key.verify_with(hash, &data, &sct.signature) {
            return Ok(format!(
                "SCT from CT log {} at {} verifies",
                log.base_url,
                fmt_time(at)
            ));
        }
        why.push(format!(
            "the SCT from CT log {} does not verify with the log's key",
            log.base_url
        ));
    }
    Err(if why.is_empty() {
        "the certificate's SCT list is empty".into()
    } else {
        why.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_lists_are_errors() {
        for input in [&b""[..], &[0, 5, 0, 3, 0], &[0, 2, 0, 9], &[0, 0, 1]] {
            assert!(parse_list(input).is_err(), "{input:?}");
        }
        assert_eq!(parse_list(&[0, 0]).unwrap(), Vec::new());
    }
}
