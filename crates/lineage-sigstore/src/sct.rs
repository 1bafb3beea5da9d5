//! Signed certificate timestamps (RFC 6962 §3.2-3.3) embedded in Fulcio certificates.
//!
//! Fulcio submits each certificate, as a precertificate, to a certificate-transparency log
//! before issuing it and embeds the log's SCT in the certificate (extension
//! 1.3.6.1.4.1.11129.2.4.2). Checking the SCT against the trusted root's `ctlogs` proves the
//! certificate was made public, so a mis-issued one can be found by monitors. The signed data
//! is the precertificate's TBSCertificate, i.e. the leaf's TBSCertificate without the SCT
//! extension, re-encoded in DER, together with the SHA-256 of the issuer's SubjectPublicKeyInfo.
//!
//! The certificate is decoded and re-encoded, and the TLS-encoded SCT list (RFC 6962 §3.3)
//! parsed, with the `x509-cert` crate (its `sct` feature); what is built here is only the
//! signed data and the choice of log.

use ::der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::ext::pkix::sct::{
    HashAlgorithm, SignedCertificateTimestamp, SignedCertificateTimestampList,
};

use crate::keys::{sha256, Hash};
use crate::trusted_root::TransparencyLog;
use crate::x509::fmt_time;

/// `id-ce-embeddedSCTList` (RFC 6962 §3.3).
pub const OID_SCT_LIST: ::der::oid::ObjectIdentifier =
    ::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One SCT, as RFC 6962 §3.2 serializes it (version 1 only).
pub type Sct = SignedCertificateTimestamp;

/// Parse a `SignedCertificateTimestampList` extension value (the DER OCTET STRING around the
/// TLS-encoded list).
pub fn parse_list(extn_value: &[u8]) -> Result<Vec<Sct>, String> {
    let list = SignedCertificateTimestampList::from_der(extn_value)
        .map_err(|e| format!("the SCT extension is not an OCTET STRING: {e}"))?;
    list.parse_timestamps()
        .map_err(|e| format!("malformed SCT list: {e:?}"))?
        .iter()
        .map(|s| {
            s.parse_timestamp()
                .map_err(|e| format!("malformed SCT: {e:?}"))
        })
        .collect()
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
    let list = parse_list(ext.extn_value.as_bytes())?;
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
    let extensions = sct.extensions.as_slice();
    m.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    m.extend_from_slice(extensions);
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
        let id = hex::encode(&sct.log_id.key_id[..4]);
        let Some(log) = ctlogs
            .iter()
            .find(|l| l.log_id[..] == sct.log_id.key_id[..])
        else {
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
        let hash = match sct.signature.algorithm.hash {
            HashAlgorithm::Sha256 => Hash::Sha256,
            HashAlgorithm::Sha384 => Hash::Sha384,
            HashAlgorithm::Sha512 => Hash::Sha512,
            ref other => {
                why.push(format!(
                    "SCT uses unsupported hash algorithm {other:?} (supported: sha256, sha384, sha512)"
                ));
                continue;
            }
        };
        let data = signed_data(sct, issuer_spki_der, &precert_tbs);
        if key.verify_with(hash, &data, sct.signature.signature.as_slice()) {
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
    fn malformed_lists_are_errors() {
        // OCTET STRING wrappers around truncated TLS lists.
        for input in [
            &b""[..],
            &[4, 5, 0, 3, 0, 0, 0],
            &[4, 4, 0, 2, 0, 9],
            &[4, 1, 0],
        ] {
            assert!(parse_list(input).is_err(), "{input:?}");
        }
        assert_eq!(parse_list(&[4, 2, 0, 0]).unwrap(), Vec::new());
    }
}
