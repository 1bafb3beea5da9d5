//! RFC 3161 time-stamp tokens, as Sigstore bundles carry them in
//! `timestampVerificationData.rfc3161Timestamps[].signedTimestamp`.
//!
//! A token is CMS `SignedData` (RFC 5652 §5) whose content is a `TSTInfo` (RFC 3161 §2.4.2).
//! Sigstore time-stamps the *signature* bytes, so the token's `messageImprint` must be the hash
//! of this bundle's signature; otherwise a token from any other signing would lend its time.
//! The token is verified against the trusted root's timestamp authorities: the CMS signature
//! over the signed attributes (RFC 5652 §5.4: re-encoded with the SET OF tag), the
//! `messageDigest` attribute against the `TSTInfo`, and the TSA certificate path at `genTime`.

use time::OffsetDateTime;

use crate::der::{self, tag, Reader, Tlv};
use crate::keys::Hash;
use crate::trusted_root::TrustedRoot;
use crate::x509::{self, Certificate, Purpose};

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";

/// A parsed token (signature not yet checked).
#[derive(Debug, Clone)]
pub struct TimestampToken {
    pub gen_time: OffsetDateTime,
    pub imprint_hash: Hash,
    pub imprint: Vec<u8>,
    tst_info: Vec<u8>,
    signer: SignerInfo,
    embedded_certs: Vec<Certificate>,
}

#[derive(Debug, Clone)]
struct SignerInfo {
    digest: Hash,
    signed_attrs: Option<Vec<u8>>,
    signature_hash: Hash,
    signature: Vec<u8>,
}

fn hash_from_oid(oid: &str) -> Result<Hash, String> {
    match oid {
        "2.16.840.1.101.3.4.2.1" | "1.2.840.10045.4.3.2" => Ok(Hash::Sha256),
        "2.16.840.1.101.3.4.2.2" | "1.2.840.10045.4.3.3" => Ok(Hash::Sha384),
        "2.16.840.1.101.3.4.2.3" | "1.2.840.10045.4.3.4" => Ok(Hash::Sha512),
        other => Err(format!("unsupported hash or signature algorithm {other}")),
    }
}

fn digest(hash: Hash, data: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest as d;
    let alg = match hash {
        Hash::Sha256 => &d::SHA256,
        Hash::Sha384 => &d::SHA384,
        Hash::Sha512 => &d::SHA512,
    };
    d::digest(alg, data).as_ref().to_vec()
}

fn alg_oid(tlv: Tlv<'_>) -> Result<String, String> {
    der::read_oid(&mut tlv.reader(), "AlgorithmIdentifier").map_err(|e| e.to_string())
}

impl TimestampToken {
    /// Parse a DER `TimeStampResp` (RFC 3161 §2.4.2) or a bare `TimeStampToken`.
    pub fn parse(data: &[u8]) -> Result<TimestampToken, String> {
        let e = |e: der::DerError| e.to_string();
        let outer = der::parse_single(data, tag::SEQUENCE, "TimeStampResp").map_err(e)?;
        let mut r = outer.reader();
        let first = r.read().map_err(e)?;
        let content_info = if first.tag == tag::SEQUENCE {
            // TimeStampResp: PKIStatusInfo then the token.
            let status = first.reader().expect(tag::INTEGER, "status").map_err(e)?;
            if !(status.contents == [0] || status.contents == [1]) {
                return Err("time-stamp response status is not granted".into());
            }
            let token = r.expect(tag::SEQUENCE, "timeStampToken").map_err(e)?;
            r.finish("TimeStampResp").map_err(e)?;
            token
        } else {
            outer
        };
        let mut ci = content_info.reader();
        if der::read_oid(&mut ci, "contentType").map_err(e)? != OID_SIGNED_DATA {
            return Err("time-stamp token is not CMS SignedData".into());
        }
        let explicit = ci.expect(0xa0, "content").map_err(e)?;
        let sd = der::parse_single(explicit.contents, tag::SEQUENCE, "SignedData").map_err(e)?;
        let mut s = sd.reader();
        s.expect(tag::INTEGER, "version").map_err(e)?;
        s.expect(tag::SET, "digestAlgorithms").map_err(e)?;
        let encap = s.expect(tag::SEQUENCE, "encapContentInfo").map_err(e)?;
        let mut enc = encap.reader();
        if der::read_oid(&mut enc, "eContentType").map_err(e)? != OID_TST_INFO {
            return Err("time-stamp token content is not TSTInfo".into());
        }
        let econtent = enc.expect(0xa0, "eContent").map_err(e)?;
        let tst_info = der::parse_single(econtent.contents, tag::OCTET_STRING, "eContent")
            .map_err(e)?
            .contents;
        let mut embedded_certs = Vec::new();
        if let Some(certs) = s.optional(0xa0).map_err(e)? {
            let mut cr = certs.reader();
            while !cr.is_empty() {
                let c = cr.read().map_err(e)?;
                if c.tag == tag::SEQUENCE {
                    if let Ok(cert) = Certificate::from_der(c.raw) {
                        embedded_certs.push(cert);
                    }
                }
            }
        }
        s.optional(0xa1).map_err(e)?;
        let infos = s.expect(tag::SET, "signerInfos").map_err(e)?;
        s.finish("SignedData").map_err(e)?;
        let mut ir = infos.reader();
        let info = ir.expect(tag::SEQUENCE, "SignerInfo").map_err(e)?;
        if !ir.is_empty() {
            return Err("time-stamp token has more than one signer".into());
        }
        let signer = signer_info(info)?;

        // TSTInfo (RFC 3161 §2.4.2).
        let tst = der::parse_single(tst_info, tag::SEQUENCE, "TSTInfo").map_err(e)?;
        let mut t = tst.reader();
        t.expect(tag::INTEGER, "version").map_err(e)?;
        t.expect(tag::OID, "policy").map_err(e)?;
        let imprint = t.expect(tag::SEQUENCE, "messageImprint").map_err(e)?;
        let mut ir = imprint.reader();
        let imprint_hash = hash_from_oid(&alg_oid(
            ir.expect(tag::SEQUENCE, "hashAlgorithm").map_err(e)?,
        )?)?;
        let imprint_value = ir.expect(tag::OCTET_STRING, "hashedMessage").map_err(e)?;
        t.expect(tag::INTEGER, "serialNumber").map_err(e)?;
        let gen = t.expect(tag::GENERALIZED_TIME, "genTime").map_err(e)?;
        let gen_time = der::parse_time(&gen).map_err(e)?;
        Ok(TimestampToken {
            gen_time,
            imprint_hash,
            imprint: imprint_value.contents.to_vec(),
            tst_info: tst_info.to_vec(),
            signer,
            embedded_certs,
        })
    }

    /// Whether the token time-stamps `signature` (its imprint is the hash of those bytes).
    pub fn covers(&self, signature: &[u8]) -> bool {
        digest(self.imprint_hash, signature) == self.imprint
    }

    /// Verify the token's CMS signature against the trusted root's timestamp authorities.
    /// Returns the URI of the authority that verified it.
    pub fn verify(&self, root: &TrustedRoot) -> Result<String, String> {
        // RFC 5652 §5.4: with signed attributes, the signature covers their DER with the
        // SET OF tag, and the messageDigest attribute must equal the content's hash.
        let message = match &self.signer.signed_attrs {
            Some(attrs) => {
                let md = message_digest_attr(attrs)?;
                if md != digest(self.signer.digest, &self.tst_info) {
                    return Err("the token's messageDigest does not match its TSTInfo".into());
                }
                let mut m = attrs.clone();
                m[0] = tag::SET;
                m
            }
            None => self.tst_info.clone(),
        };
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
                if !key.verify_with(self.signer.signature_hash, &message, &self.signer.signature) {
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

fn signer_info(info: Tlv<'_>) -> Result<SignerInfo, String> {
    let e = |e: der::DerError| e.to_string();
    let mut r: Reader<'_> = info.reader();
    r.expect(tag::INTEGER, "version").map_err(e)?;
    r.read().map_err(e)?; // sid: IssuerAndSerialNumber or [0] SubjectKeyIdentifier
    let digest = hash_from_oid(&alg_oid(
        r.expect(tag::SEQUENCE, "digestAlgorithm").map_err(e)?,
    )?)?;
    let signed_attrs = r.optional(0xa0).map_err(e)?.map(|t| t.raw.to_vec());
    let sig_alg = alg_oid(r.expect(tag::SEQUENCE, "signatureAlgorithm").map_err(e)?)?;
    // A bare id-ecPublicKey / rsaEncryption names no hash: use the digest algorithm's.
    let signature_hash = hash_from_oid(&sig_alg).unwrap_or(digest);
    let signature = r
        .expect(tag::OCTET_STRING, "signature")
        .map_err(e)?
        .contents
        .to_vec();
    Ok(SignerInfo {
        digest,
        signed_attrs,
        signature_hash,
        signature,
    })
}

fn message_digest_attr(attrs: &[u8]) -> Result<Vec<u8>, String> {
    let e = |e: der::DerError| e.to_string();
    let set = der::parse_single(attrs, 0xa0, "signedAttrs").map_err(e)?;
    let mut r = set.reader();
    let mut found = None;
    let mut content_type_ok = false;
    while !r.is_empty() {
        let attr = r.expect(tag::SEQUENCE, "Attribute").map_err(e)?;
        let mut a = attr.reader();
        let oid = der::read_oid(&mut a, "attrType").map_err(e)?;
        let values = a.expect(tag::SET, "attrValues").map_err(e)?;
        let mut v = values.reader();
        if oid == OID_MESSAGE_DIGEST {
            found = Some(
                v.expect(tag::OCTET_STRING, "messageDigest")
                    .map_err(e)?
                    .contents
                    .to_vec(),
            );
        } else if oid == OID_CONTENT_TYPE {
            content_type_ok = der::read_oid(&mut v, "contentType").map_err(e)? == OID_TST_INFO;
        }
    }
    if !content_type_ok {
        return Err("the token's signed contentType is not TSTInfo".into());
    }
    found.ok_or_else(|| "the token has no messageDigest attribute".into())
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
