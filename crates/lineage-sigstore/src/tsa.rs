//! RFC 3161 time-stamp tokens, as Sigstore bundles carry them in
//! `timestampVerificationData.rfc3161Timestamps[].signedTimestamp`.
//!
//! A token is CMS `SignedData` (RFC 5652 §5) whose content is a `TSTInfo` (RFC 3161 §2.4.2).
//! Sigstore time-stamps the *signature* bytes, so the token's `messageImprint` must be the hash
//! of this bundle's signature; otherwise a token from any other signing would lend its time.
//! The token is verified against the trusted root's timestamp authorities: the CMS signature
//! over the signed attributes (RFC 5652 §5.4: re-encoded with the SET OF tag), the
//! `messageDigest` attribute against the `TSTInfo`, and the TSA certificate path at `genTime`.
//! The CMS and TSTInfo structures are decoded by RustCrypto's `cms` and `x509-tsp`; what stays
//! here is the RFC 5652 §5.4 signature check and the choice of authority.

use ::der::asn1::{ObjectIdentifier, OctetString};
use ::der::{Decode, Encode};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use time::OffsetDateTime;
use x509_tsp::{TimeStampResp, TstInfo};

use crate::keys::Hash;
use crate::trusted_root::TrustedRoot;
use crate::x509::{self, Certificate, Purpose};

const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");

/// A parsed token (signature not yet checked).
#[derive(Debug, Clone)]
pub struct TimestampToken {
    pub gen_time: OffsetDateTime,
    pub imprint_hash: Hash,
    pub imprint: Vec<u8>,
    tst_info: Vec<u8>,
    signer: Signer,
    embedded_certs: Vec<Certificate>,
}

#[derive(Debug, Clone)]
struct Signer {
    digest: Hash,
    /// The signed attributes re-encoded as the SET OF they are signed as (RFC 5652 §5.4), with
    /// the `messageDigest` they carry and whether their `contentType` is TSTInfo.
    signed_attrs: Option<SignedAttrs>,
    signature_hash: Hash,
    signature: Vec<u8>,
}

#[derive(Debug, Clone)]
struct SignedAttrs {
    der: Vec<u8>,
    message_digest: Option<Vec<u8>>,
    content_type_is_tst_info: bool,
}

fn hash_from_oid(oid: &ObjectIdentifier) -> Result<Hash, String> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" | "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => {
            Ok(Hash::Sha256)
        }
        "2.16.840.1.101.3.4.2.2" | "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => {
            Ok(Hash::Sha384)
        }
        "2.16.840.1.101.3.4.2.3" | "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => {
            Ok(Hash::Sha512)
        }
        other => Err(format!(
            "unsupported hash or signature algorithm {other} (supported: SHA-256, SHA-384, SHA-512 with ECDSA or RSA)"
        )),
    }
}

fn der_err(what: &'static str) -> impl Fn(::der::Error) -> String {
    move |e| format!("{what}: {e}")
}

impl TimestampToken {
    /// Parse a DER `TimeStampResp` (RFC 3161 §2.4.2) or a bare `TimeStampToken`, with the
    /// `cms` and `x509-tsp` crates.
    pub fn parse(data: &[u8]) -> Result<TimestampToken, String> {
        let content_info = match TimeStampResp::from_der(data) {
            Ok(resp) => {
                use cmpv2::status::PkiStatus;
                if !matches!(
                    resp.status.status,
                    PkiStatus::Accepted | PkiStatus::GrantedWithMods
                ) {
                    return Err("time-stamp response status is not granted".into());
                }
                resp.time_stamp_token
                    .ok_or("time-stamp response carries no token")?
            }
            Err(_) => ContentInfo::from_der(data).map_err(der_err("TimeStampToken"))?,
        };
        if content_info.content_type != OID_SIGNED_DATA {
            return Err("time-stamp token is not CMS SignedData".into());
        }
        let sd: SignedData = content_info
            .content
            .decode_as()
            .map_err(der_err("SignedData"))?;
        if sd.encap_content_info.econtent_type != OID_TST_INFO {
            return Err("time-stamp token content is not TSTInfo".into());
        }
        let tst_info = sd
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or("time-stamp token has no content")?
            .decode_as::<OctetString>()
            .map_err(der_err("eContent"))?
            .as_bytes()
            .to_vec();
        let embedded_certs = sd
            .certificates
            .iter()
            .flat_map(|set| set.0.iter())
            .filter_map(|c| match c {
                CertificateChoices::Certificate(c) => c.to_der().ok(),
                CertificateChoices::Other(_) => None,
            })
            .filter_map(|der| Certificate::from_der(&der).ok())
            .collect();
        let [info] = sd.signer_infos.0.as_slice() else {
            return Err("time-stamp token must have exactly one signer".into());
        };
        let signer = signer(info)?;
        let tst = TstInfo::from_der(&tst_info).map_err(der_err("TSTInfo"))?;
        let imprint_hash = hash_from_oid(&tst.message_imprint.hash_algorithm.oid)?;
        let secs = tst.gen_time.to_unix_duration().as_secs();
        let gen_time = i64::try_from(secs)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or("genTime out of range")?;
        Ok(TimestampToken {
            gen_time,
            imprint_hash,
            imprint: tst.message_imprint.hashed_message.as_bytes().to_vec(),
            tst_info,
            signer,
            embedded_certs,
        })
    }

    /// Whether the token time-stamps `signature` (its imprint is the hash of those bytes).
    pub fn covers(&self, signature: &[u8]) -> bool {
        self.imprint_hash.digest(signature) == self.imprint
    }

    /// Verify the token's CMS signature against the trusted root's timestamp authorities.
    /// Returns the URI of the authority that verified it.
    pub fn verify(&self, root: &TrustedRoot) -> Result<String, String> {
        let message = self.signed_message()?;
        self.verify_message(&message, root)
    }

    /// Verify the token against bare trust anchors (a Notary Project `tsa` trust store): the
    /// signer is a certificate embedded in the token whose path, through the other embedded
    /// certificates, reaches one of `anchors` at `genTime`. Returns the signer's subject.
    pub fn verify_with_anchors(&self, anchors: &[Certificate]) -> Result<String, String> {
        let message = self.signed_message()?;
        let signer = self
            .embedded_certs
            .iter()
            .find(|c| {
                c.public_key().is_ok_and(|k| {
                    k.verify_with(self.signer.signature_hash, &message, &self.signer.signature)
                })
            })
            .ok_or("the time-stamp signature does not verify with any certificate it carries")?;
        let mut last = "the tsa trust store is empty".to_string();
        for anchor in anchors {
            let mut chain: Vec<Certificate> = self
                .embedded_certs
                .iter()
                .filter(|c| *c != signer && *c != anchor)
                .cloned()
                .collect();
            chain.push(anchor.clone());
            match x509::validate_path(signer, &chain, self.gen_time, Purpose::TimeStamping) {
                Ok(()) => return Ok(signer.subject_text()),
                Err(e) => last = format!("certificate `{}`: {e}", signer.subject_text()),
            }
        }
        Err(last)
    }

    fn signed_message(&self) -> Result<Vec<u8>, String> {
        // RFC 5652 §5.4: with signed attributes, the signature covers their DER with the
        // SET OF tag, and the messageDigest attribute must equal the content's hash.
        let message = match &self.signer.signed_attrs {
            Some(attrs) => {
                if !attrs.content_type_is_tst_info {
                    return Err("the token's signed contentType is not TSTInfo".into());
                }
                let md = attrs
                    .message_digest
                    .as_ref()
                    .ok_or("the token has no messageDigest attribute")?;
                if md[..] != self.signer.digest.digest(&self.tst_info)[..] {
                    return Err("the token's messageDigest does not match its TSTInfo".into());
                }
                attrs.der.clone()
            }
            None => self.tst_info.clone(),
        };
        Ok(message)
    }

    fn verify_message(&self, message: &[u8], root: &TrustedRoot) -> Result<String, String> {
        let mut last = "no timestamp authority in the trusted root".to_string();
        for ta in &root.timestamp_authorities {
            if !ta.valid_for.contains(self.gen_time) {
                last = format!(
                    "timestamp authority {} is not valid at the time-stamp",
                    ta.uri
                );
                continue;
            }
            // The signer is the first certificate of the authority's chain, or a certificate
            // embedded in the token that chains to the authority.
            let mut candidates: Vec<(&Certificate, &[Certificate])> =
                vec![(&ta.chain[0], &ta.chain[1..])];
            for c in &self.embedded_certs {
                candidates.push((c, &ta.chain[..]));
            }
            for (leaf, chain) in candidates {
                let Ok(key) = leaf.public_key() else { continue };
                if !key.verify_with(self.signer.signature_hash, message, &self.signer.signature) {
                    last =
                        "the time-stamp signature does not verify with the authority's key".into();
                    continue;
                }
                if !chain.is_empty() {
                    if let Err(e) =
                        x509::validate_path(leaf, chain, self.gen_time, Purpose::TimeStamping)
                    {
                        last = format!("TSA certificate `{}`: {e}", leaf.subject_text());
                        continue;
                    }
                }
                return Ok(ta.uri.clone());
            }
        }
        Err(last)
    }
}

fn signer(info: &SignerInfo) -> Result<Signer, String> {
    let digest = hash_from_oid(&info.digest_alg.oid)?;
    // A bare id-ecPublicKey / rsaEncryption names no hash: use the digest algorithm's.
    let signature_hash = hash_from_oid(&info.signature_algorithm.oid).unwrap_or(digest);
    let signed_attrs = match &info.signed_attrs {
        None => None,
        Some(attrs) => {
            let mut message_digest = None;
            let mut content_type_is_tst_info = false;
            for attr in attrs.iter() {
                let Some(value) = attr.values.iter().next() else {
                    continue;
                };
                if attr.oid == OID_MESSAGE_DIGEST {
                    message_digest = Some(
                        value
                            .decode_as::<OctetString>()
                            .map_err(der_err("messageDigest"))?
                            .as_bytes()
                            .to_vec(),
                    );
                } else if attr.oid == OID_CONTENT_TYPE {
                    content_type_is_tst_info =
                        value.decode_as::<ObjectIdentifier>().ok() == Some(OID_TST_INFO);
                }
            }
            Some(SignedAttrs {
                // RFC 5652 §5.4: the signature covers the DER of the attributes with the
                // SET OF tag, not the [0] IMPLICIT tag they are carried under.
                der: attrs.to_der().map_err(der_err("signedAttrs"))?,
                message_digest,
                content_type_is_tst_info,
            })
        }
    };
    Ok(Signer {
        digest,
        signed_attrs,
        signature_hash,
        signature: info.signature.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_tokens_are_errors() {
        for input in [&b""[..], &[0x30, 0x00], &[0x30, 0x03, 0x02, 0x01, 0x02]] {
            assert!(TimestampToken::parse(input).is_err());
        }
    }
}
