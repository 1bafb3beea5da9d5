//! Rekor transparency-log entries: the canonicalized entry bodies of the kinds Sigstore bundles
//! and cosign carry, and the Signed Entry Timestamp (SET).
//!
//! Entry bodies are Rekor's `pkg/types` schemas: `hashedrekord` 0.0.1 and 0.0.2 (the Rekor v2
//! `HashedRekordLogEntryV002`), `intoto` 0.0.1 and 0.0.2, `dsse` 0.0.1 and 0.0.2. A body is
//! reduced to what must be compared with the bundle: the logged signature(s), the logged
//! verifier (certificate or key) and the logged hashes. Comparing them is what defeats
//! CVE-2022-36056 (GHSA-8gw7-4j42-w388): a genuine SET for some *other* entry proves nothing
//! about this signature unless the entry it covers contains this signature and this signer.

use serde::Serialize;
use serde_json::Value;

use crate::keys::{b64, b64_encode, VerifyingKey};

/// The signer as the log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedVerifier {
    /// DER certificate.
    Certificate(Vec<u8>),
    /// DER SubjectPublicKeyInfo.
    PublicKey(Vec<u8>),
}

/// One logged signature with its verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedSignature {
    /// Absent for `intoto` 0.0.1, which logs only hashes of the envelope.
    pub signature: Option<Vec<u8>>,
    pub verifier: LoggedVerifier,
}

/// A hash as an entry states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedHash {
    /// Lowercase algorithm name as written (`sha256`, `SHA2_256`).
    pub algorithm: String,
    pub value: Vec<u8>,
}

impl LoggedHash {
    pub fn is_sha256(&self) -> bool {
        matches!(self.algorithm.as_str(), "sha256" | "SHA2_256") && self.value.len() == 32
    }
}

/// What an entry body says, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// `hashedrekord`: a signature over an artifact with this digest.
    HashedRekord {
        digest: LoggedHash,
        signature: LoggedSignature,
    },
    /// `intoto` / `dsse`: a DSSE envelope.
    Dsse {
        kind: String,
        version: String,
        /// `intoto` 0.0.1/0.0.2 `hash` or `dsse` 0.0.1 `envelopeHash`.
        envelope_hash: Option<LoggedHash>,
        payload_hash: Option<LoggedHash>,
        /// `intoto` 0.0.2 logs the payload type inside the envelope.
        payload_type: Option<String>,
        signatures: Vec<LoggedSignature>,
    },
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn get_str<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    get(v, path)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{}`", path.join(".")))
}

fn hex_hash(v: &Value, path: &[&str]) -> Result<LoggedHash, String> {
    let algorithm = get_str(v, &[path, &["algorithm"]].concat())?.to_string();
    let value = hex::decode(get_str(v, &[path, &["value"]].concat())?)
        .map_err(|e| format!("`{}.value` is not hex: {e}", path.join(".")))?;
    Ok(LoggedHash { algorithm, value })
}

fn b64_hash(v: &Value, path: &[&str]) -> Result<LoggedHash, String> {
    let algorithm = get_str(v, &[path, &["algorithm"]].concat())?.to_string();
    let value = b64(get_str(v, &[path, &["digest"]].concat())?)
        .map_err(|e| format!("`{}.digest` is not base64: {e}", path.join(".")))?;
    Ok(LoggedHash { algorithm, value })
}

/// A base64-encoded PEM certificate or public key, as v0.0.1 bodies log verifiers.
fn pem_verifier(b64_pem: &str) -> Result<LoggedVerifier, String> {
    let pem = b64(b64_pem).map_err(|e| format!("verifier is not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "verifier is not UTF-8 PEM".to_string())?;
    if pem.matches("-----BEGIN ").count() != 1 {
        return Err("verifier is not exactly one PEM block".into());
    }
    let (label, der) = lineage_log::keys::pem_block(&pem).map_err(|e| e.to_string())?;
    match label.as_str() {
        "CERTIFICATE" => Ok(LoggedVerifier::Certificate(der)),
        "PUBLIC KEY" => Ok(LoggedVerifier::PublicKey(der)),
        other => Err(format!(
            "verifier is a PEM `{other}`, neither a certificate nor a public key"
        )),
    }
}

/// A protobuf `Verifier` (Rekor v2 bodies): `x509Certificate.rawBytes` or `publicKey.rawBytes`.
fn proto_verifier(v: &Value) -> Result<LoggedVerifier, String> {
    if let Some(raw) = get(v, &["x509Certificate", "rawBytes"]).and_then(Value::as_str) {
        return b64(raw)
            .map(LoggedVerifier::Certificate)
            .map_err(|e| format!("verifier certificate is not base64: {e}"));
    }
    if let Some(raw) = get(v, &["publicKey", "rawBytes"]).and_then(Value::as_str) {
        return b64(raw)
            .map(LoggedVerifier::PublicKey)
            .map_err(|e| format!("verifier key is not base64: {e}"));
    }
    Err("verifier has neither x509Certificate nor publicKey".into())
}

impl EntryBody {
    /// Parse a canonicalized body. `kind`/`version` are the bundle's `kindVersion`; they must
    /// agree with the body's own `kind`/`apiVersion`, since the SET and the Merkle leaf cover
    /// the body, not the bundle's label.
    pub fn parse(body: &[u8], kind: &str, version: &str) -> Result<EntryBody, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let body_kind = get_str(&v, &["kind"])?;
        let body_version = get_str(&v, &["apiVersion"])?;
        if body_kind != kind || body_version != version {
            return Err(format!(
                "body is `{body_kind}` {body_version} but the bundle says `{kind}` {version}"
            ));
        }
        let spec = v.get("spec").ok_or("missing `spec`")?;
        match (kind, version) {
            ("hashedrekord", "0.0.1") => Ok(EntryBody::HashedRekord {
                digest: hex_hash(spec, &["data", "hash"])?,
                signature: LoggedSignature {
                    signature: Some(
                        b64(get_str(spec, &["signature", "content"])?)
                            .map_err(|e| format!("signature is not base64: {e}"))?,
                    ),
                    verifier: pem_verifier(get_str(spec, &["signature", "publicKey", "content"])?)?,
                },
            }),
            ("hashedrekord", "0.0.2") => {
                let s = spec
                    .get("hashedRekordV002")
                    .ok_or("missing `hashedRekordV002`")?;
                Ok(EntryBody::HashedRekord {
                    digest: b64_hash(s, &["data"])?,
                    signature: LoggedSignature {
                        signature: Some(
                            b64(get_str(s, &["signature", "content"])?)
                                .map_err(|e| format!("signature is not base64: {e}"))?,
                        ),
                        verifier: proto_verifier(
                            get(s, &["signature", "verifier"]).ok_or("missing verifier")?,
                        )?,
                    },
                })
            }
            ("intoto", "0.0.1") => Ok(EntryBody::Dsse {
                kind: kind.into(),
                version: version.into(),
                envelope_hash: Some(hex_hash(spec, &["content", "hash"])?),
                payload_hash: Some(hex_hash(spec, &["content", "payloadHash"])?),
                payload_type: None,
                signatures: vec![LoggedSignature {
                    signature: None,
                    verifier: pem_verifier(get_str(spec, &["publicKey"])?)?,
                }],
            }),
            ("intoto", "0.0.2") => {
                let env = get(spec, &["content", "envelope"]).ok_or("missing envelope")?;
                let sigs = env
                    .get("signatures")
                    .and_then(Value::as_array)
                    .ok_or("missing envelope signatures")?;
                let signatures = sigs
                    .iter()
                    .map(|s| {
                        // intoto 0.0.2 stores the envelope's base64 `sig` text base64-encoded
                        // once more.
                        let outer = b64(get_str(s, &["sig"])?)
                            .map_err(|e| format!("sig is not base64: {e}"))?;
                        let inner = std::str::from_utf8(&outer)
                            .ok()
                            .and_then(|t| b64(t).ok())
                            .ok_or("sig is not base64 of base64")?;
                        Ok(LoggedSignature {
                            signature: Some(inner),
                            verifier: pem_verifier(get_str(s, &["publicKey"])?)?,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok(EntryBody::Dsse {
                    kind: kind.into(),
                    version: version.into(),
                    envelope_hash: hex_hash(spec, &["content", "hash"]).ok(),
                    payload_hash: Some(hex_hash(spec, &["content", "payloadHash"])?),
                    payload_type: env
                        .get("payloadType")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    signatures,
                })
            }
            ("dsse", "0.0.1") => {
                let sigs = spec
                    .get("signatures")
                    .and_then(Value::as_array)
                    .ok_or("missing signatures")?;
                let signatures = sigs
                    .iter()
                    .map(|s| {
                        Ok(LoggedSignature {
                            signature: Some(
                                b64(get_str(s, &["signature"])?)
                                    .map_err(|e| format!("signature is not base64: {e}"))?,
                            ),
                            verifier: pem_verifier(get_str(s, &["verifier"])?)?,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok(EntryBody::Dsse {
                    kind: kind.into(),
                    version: version.into(),
                    envelope_hash: Some(hex_hash(spec, &["envelopeHash"])?),
                    payload_hash: Some(hex_hash(spec, &["payloadHash"])?),
                    payload_type: None,
                    signatures,
                })
            }
            ("dsse", "0.0.2") => {
                let s = spec.get("dsseV002").ok_or("missing `dsseV002`")?;
                let sigs = s
                    .get("signatures")
                    .and_then(Value::as_array)
                    .ok_or("missing signatures")?;
                let signatures = sigs
                    .iter()
                    .map(|sig| {
                        Ok(LoggedSignature {
                            signature: Some(
                                b64(get_str(sig, &["content"])?)
                                    .map_err(|e| format!("signature is not base64: {e}"))?,
                            ),
                            verifier: proto_verifier(
                                sig.get("verifier").ok_or("missing verifier")?,
                            )?,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok(EntryBody::Dsse {
                    kind: kind.into(),
                    version: version.into(),
                    envelope_hash: None,
                    payload_hash: Some(b64_hash(s, &["payloadHash"])?),
                    payload_type: None,
                    signatures,
                })
            }
            _ => Err(format!("unsupported entry kind `{kind}` {version}")),
        }
    }
}

/// The JSON the SET signs: Rekor's `bundle.RekorPayload`, canonicalized (RFC 8785: keys sorted,
/// no whitespace). Field order below *is* the sorted order, and serde_json writes integers and
/// plain strings exactly as RFC 8785 does.
#[derive(Serialize)]
struct SetPayload<'a> {
    body: &'a str,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: &'a str,
    #[serde(rename = "logIndex")]
    log_index: u64,
}

/// The exact bytes a SET signs.
pub fn set_message(body: &[u8], integrated_time: i64, log_id: &[u8], log_index: u64) -> Vec<u8> {
    let body = b64_encode(body);
    let log_id = hex::encode(log_id);
    serde_json::to_vec(&SetPayload {
        body: &body,
        integrated_time,
        log_id: &log_id,
        log_index,
    })
    .expect("serializing plain strings and integers cannot fail")
}

/// Verify a SET (Rekor's "inclusion promise") with the log's key. `log_index` is the *global*
/// index, as Rekor v1 signs it.
pub fn verify_set(
    log_key: &VerifyingKey,
    set: &[u8],
    body: &[u8],
    integrated_time: i64,
    log_id: &[u8],
    log_index: u64,
) -> bool {
    log_key.verify(&set_message(body, integrated_time, log_id, log_index), set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_message_is_canonical_json() {
        let m = set_message(b"{}", 5, &[0xab, 0xcd], 7);
        assert_eq!(
            String::from_utf8(m).unwrap(),
            r#"{"body":"e30=","integratedTime":5,"logID":"abcd","logIndex":7}"#
        );
    }

    #[test]
    fn body_kind_must_match_label() {
        let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#;
        let err = EntryBody::parse(body, "intoto", "0.0.1").unwrap_err();
        assert!(err.contains("bundle says"), "{err}");
        assert!(EntryBody::parse(body, "hashedrekord", "0.0.1").is_err());
    }
}
