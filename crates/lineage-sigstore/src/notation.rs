//! Notary Project (Notation) signatures: JWS envelopes judged against a trust store and a
//! `trustpolicy.json`, following the Notary Project specification's "Trust store and trust
//! policy" and "Signature verification" documents.
//!
//! Verification runs the spec's five checks and applies the trust policy's level to each:
//!
//! | check | strict | permissive | audit | skip |
//! | --- | --- | --- | --- | --- |
//! | integrity | enforced | enforced | enforced | skipped |
//! | authenticity | enforced | enforced | logged | skipped |
//! | authentic timestamp | enforced | logged | logged | skipped |
//! | expiry | enforced | logged | logged | skipped |
//! | revocation | enforced | logged | logged | skipped |
//!
//! A logged failure is reported but does not fail the verification. Revocation is checked
//! offline: a signing certificate without CRL or OCSP locations passes; one with them cannot be
//! checked here and is "unknown", which the strict level refuses.
//!
//! The JWS signing input is the literal `protected || '.' || payload` text (RFC 7515 §5.2), so
//! an envelope whose payload text was altered (even to an equivalent base64) does not verify.
//! Certificates, paths and RFC 3161 countersignatures use the same crates as Sigstore
//! verification ([`crate::x509`], [`crate::tsa`]). [`TrustStore::from_dir`] reads a trust store
//! directory: with [`crate::verify_oci_layout`], one of the two functions of this crate that do
//! IO. JWS envelopes (`application/jose+json`) and COSE_Sign1 envelopes (`application/cose`,
//! decoded with `ciborium`) are both read.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::{Hash, KeyAlgorithm, PublicKey};
use crate::tsa::TimestampToken;
use crate::x509::{self, fmt_time, Certificate, Purpose};

/// The artifact type of a Notation signature manifest (an OCI referrer of the image).
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a JWS envelope layer.
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
/// The media type of a COSE envelope layer.
pub const COSE_MEDIA_TYPE: &str = "application/cose";
/// The Notary payload content type.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SUPPORTED_ALGS: &str = "PS256, PS384, PS512, ES256, ES384, ES512";
/// CRL distribution points (RFC 5280 §4.2.1.13) and authority information access (§4.2.2.1).
const OID_CRL_DP: &str = "2.5.29.31";
const OID_AIA: &str = "1.3.6.1.5.5.7.1.1";

/// Why a trust store, a policy or an envelope could not be used at all ("could not decide").
#[derive(Debug, thiserror::Error)]
pub enum NotationError {
    #[error("trust store `{path}`: {problem}")]
    TrustStore { path: String, problem: String },
    #[error("trust policy: {0}")]
    Policy(String),
    #[error("no trust policy in the document applies to `{0}`")]
    NoPolicy(String),
    #[error("the envelope uses signature algorithm `{0}` (supported: {SUPPORTED_ALGS})")]
    UnsupportedAlgorithm(String),
    #[error("OCI layout: {0}")]
    Layout(String),
}

/// The kinds of trust store (`truststore/x509/<kind>/<name>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StoreKind {
    Ca,
    SigningAuthority,
    Tsa,
}

impl StoreKind {
    fn parse(s: &str) -> Option<StoreKind> {
        match s {
            "ca" => Some(StoreKind::Ca),
            "signingAuthority" => Some(StoreKind::SigningAuthority),
            "tsa" => Some(StoreKind::Tsa),
            _ => None,
        }
    }
}

/// Named trust stores of certificates, as `truststore/x509/{ca,signingAuthority,tsa}/NAME/`.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    stores: BTreeMap<(StoreKind, String), Vec<Certificate>>,
}

impl TrustStore {
    /// Add certificates to the store `kind:name`.
    pub fn add(&mut self, kind: StoreKind, name: &str, certs: Vec<Certificate>) {
        self.stores
            .entry((kind, name.to_string()))
            .or_default()
            .extend(certs);
    }

    /// The certificates of `kind:name`, if that store exists.
    pub fn get(&self, kind: StoreKind, name: &str) -> Option<&[Certificate]> {
        self.stores
            .get(&(kind, name.to_string()))
            .map(Vec::as_slice)
    }

    /// Read a trust store directory laid out as Notation writes it: `DIR/x509/<kind>/<name>/`
    /// (DIR may also be the `x509` folder itself), each file a PEM (one or more certificates)
    /// or a DER certificate.
    pub fn from_dir(dir: &Path) -> Result<TrustStore, NotationError> {
        let err = |path: &Path, problem: String| NotationError::TrustStore {
            path: path.display().to_string(),
            problem,
        };
        let x509 = if dir.join("x509").is_dir() {
            dir.join("x509")
        } else {
            dir.to_path_buf()
        };
        let mut store = TrustStore::default();
        let list = |p: &Path| -> Result<Vec<std::path::PathBuf>, NotationError> {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .map_err(|e| err(p, e.to_string()))?
                .flatten()
                .map(|e| e.path())
                .collect();
            v.sort();
            Ok(v)
        };
        for kind_dir in list(&x509)?.into_iter().filter(|p| p.is_dir()) {
            let kind_name = kind_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(kind) = StoreKind::parse(&kind_name) else {
                return Err(err(
                    &kind_dir,
                    "is not `ca`, `signingAuthority` or `tsa`".into(),
                ));
            };
            for store_dir in list(&kind_dir)?.into_iter().filter(|p| p.is_dir()) {
                let name = store_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut certs = Vec::new();
                for file in list(&store_dir)?.into_iter().filter(|p| p.is_file()) {
                    let bytes = std::fs::read(&file).map_err(|e| err(&file, e.to_string()))?;
                    let parsed = match std::str::from_utf8(&bytes) {
                        Ok(text) if text.contains("-----BEGIN") => {
                            Certificate::all_from_pem(text).map_err(|e| e.to_string())
                        }
                        _ => Certificate::from_der(&bytes)
                            .map(|c| vec![c])
                            .map_err(|e| e.to_string()),
                    };
                    certs.extend(parsed.map_err(|e| err(&file, e))?);
                }
                store.add(kind, &name, certs);
            }
        }
        Ok(store)
    }
}

/// A verification level (`signatureVerification.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

/// The checks of the spec, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    Integrity,
    Authenticity,
    AuthenticTimestamp,
    Expiry,
    Revocation,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Integrity => "integrity",
            Step::Authenticity => "authenticity",
            Step::AuthenticTimestamp => "authenticTimestamp",
            Step::Expiry => "expiry",
            Step::Revocation => "revocation",
        }
    }
}

/// What a level does with a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

/// `verifyTimestamp` of a trust policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyTimestamp {
    Always,
    AfterCertExpiry,
}

/// One trust policy of a `trustpolicy.json`.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub name: String,
    pub registry_scopes: Vec<String>,
    pub level: Level,
    actions: [Action; 5],
    pub verify_timestamp: VerifyTimestamp,
    pub trust_stores: Vec<(StoreKind, String)>,
    /// `None` for `"*"`; else the required subject attributes of each trusted identity.
    pub trusted_identities: Option<Vec<Vec<(String, String)>>>,
}

impl TrustPolicy {
    /// What this policy does with a failure of `step`.
    pub fn action(&self, step: Step) -> Action {
        self.actions[step as usize]
    }
}

/// A parsed `trustpolicy.json` (Notary Project trust policy, version 1.0).
#[derive(Debug, Clone)]
pub struct TrustPolicyDocument {
    pub policies: Vec<TrustPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDocument {
    version: String,
    trust_policies: Vec<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicy {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: RawVerification,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVerification {
    level: String,
    #[serde(default)]
    r#override: BTreeMap<String, String>,
    verify_timestamp: Option<String>,
}

fn level_actions(level: Level) -> [Action; 5] {
    use Action::*;
    match level {
        Level::Strict => [Enforce; 5],
        Level::Permissive => [Enforce, Enforce, Log, Log, Log],
        Level::Audit => [Enforce, Log, Log, Log, Log],
        Level::Skip => [Skip; 5],
    }
}

/// Parse an `x509.subject:` value into its attributes (RFC 4514 text, `,` separated).
fn subject_attributes(dn: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = dn
        .split(',')
        .filter_map(|part| {
            let (k, val) = part.split_once('=')?;
            Some((k.trim().to_ascii_uppercase(), val.trim().to_string()))
        })
        .collect();
    v.sort();
    v
}

impl TrustPolicyDocument {
    /// Parse and check a `trustpolicy.json`.
    pub fn from_json(bytes: &[u8]) -> Result<TrustPolicyDocument, NotationError> {
        let bad = |m: String| NotationError::Policy(m);
        let raw: RawDocument = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if raw.version != "1.0" {
            return Err(bad(format!(
                "version `{}` is not supported (supported: 1.0)",
                raw.version
            )));
        }
        let mut policies = Vec::new();
        for p in raw.trust_policies {
            let level = match p.signature_verification.level.as_str() {
                "strict" => Level::Strict,
                "permissive" => Level::Permissive,
                "audit" => Level::Audit,
                "skip" => Level::Skip,
                other => {
                    return Err(bad(format!(
                        "policy `{}`: level `{other}` is not strict, permissive, audit or skip",
                        p.name
                    )))
                }
            };
            let mut actions = level_actions(level);
            for (check, action) in &p.signature_verification.r#override {
                let step = match check.as_str() {
                    "authenticity" => Step::Authenticity,
                    "authenticTimestamp" => Step::AuthenticTimestamp,
                    "expiry" => Step::Expiry,
                    "revocation" => Step::Revocation,
                    other => {
                        return Err(bad(format!(
                            "policy `{}`: override of `{other}` (integrity cannot be overridden; write authenticity, authenticTimestamp, expiry or revocation)",
                            p.name
                        )))
                    }
                };
                actions[step as usize] = match action.as_str() {
                    "enforce" => Action::Enforce,
                    "log" => Action::Log,
                    "skip" => Action::Skip,
                    other => {
                        return Err(bad(format!(
                            "policy `{}`: override action `{other}` is not enforce, log or skip",
                            p.name
                        )))
                    }
                };
            }
            let verify_timestamp = match p.signature_verification.verify_timestamp.as_deref() {
                None | Some("always") => VerifyTimestamp::Always,
                Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
                Some(other) => {
                    return Err(bad(format!(
                        "policy `{}`: verifyTimestamp `{other}` is not always or afterCertExpiry",
                        p.name
                    )))
                }
            };
            let trust_stores = p
                .trust_stores
                .iter()
                .map(|s| {
                    let (kind, name) = s.split_once(':').unwrap_or(("", s));
                    StoreKind::parse(kind).map(|k| (k, name.to_string())).ok_or_else(|| {
                        bad(format!(
                            "policy `{}`: trust store `{s}` is not `ca:NAME`, `signingAuthority:NAME` or `tsa:NAME`",
                            p.name
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let trusted_identities = if p.trusted_identities.iter().any(|i| i == "*") {
                None
            } else {
                Some(
                    p.trusted_identities
                        .iter()
                        .map(|i| {
                            i.strip_prefix("x509.subject:")
                                .map(subject_attributes)
                                .ok_or_else(|| {
                                    bad(format!(
                                        "policy `{}`: trusted identity `{i}` is not `*` or `x509.subject:...`",
                                        p.name
                                    ))
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            if level != Level::Skip && (trust_stores.is_empty() || p.trusted_identities.is_empty())
            {
                return Err(bad(format!(
                    "policy `{}`: a level other than skip needs trustStores and trustedIdentities",
                    p.name
                )));
            }
            policies.push(TrustPolicy {
                name: p.name,
                registry_scopes: p.registry_scopes,
                level,
                actions,
                verify_timestamp,
                trust_stores,
                trusted_identities,
            });
        }
        Ok(TrustPolicyDocument { policies })
    }

    /// The policy for `repository` (`registry/path`): the one naming it exactly, else the
    /// one with the `*` scope.
    pub fn select(&self, repository: &str) -> Option<&TrustPolicy> {
        self.policies
            .iter()
            .find(|p| p.registry_scopes.iter().any(|s| s == repository))
            .or_else(|| {
                self.policies
                    .iter()
                    .find(|p| p.registry_scopes.iter().any(|s| s == "*"))
            })
    }
}

/// One check as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct NotationCheck {
    pub step: Step,
    /// `pass`, `fail` (enforced), `logged` (failed, but the level only logs it) or `skipped`.
    pub outcome: &'static str,
    /// Stable code when the check did not pass.
    pub reason: Option<&'static str>,
    pub detail: String,
}

/// The outcome of verifying one Notation signature.
#[derive(Debug, Clone, Serialize)]
pub struct NotationVerification {
    pub verified: bool,
    pub policy: String,
    pub level: Level,
    pub checks: Vec<NotationCheck>,
    /// The signing certificate's subject, once integrity passed.
    pub signer: Option<String>,
    /// The signed target artifact's digest.
    pub target: Option<String>,
}

impl NotationVerification {
    /// The first enforced failure.
    pub fn failure(&self) -> Option<&NotationCheck> {
        self.checks.iter().find(|c| c.outcome == "fail")
    }
}

struct Report {
    policy: String,
    level: Level,
    actions: [Action; 5],
    checks: Vec<NotationCheck>,
    signer: Option<String>,
    target: Option<String>,
}

/// An enforced failure was recorded; stop.
struct Stop;

impl Report {
    fn pass(&mut self, step: Step, detail: impl Into<String>) {
        self.checks.push(NotationCheck {
            step,
            outcome: "pass",
            reason: None,
            detail: detail.into(),
        });
    }

    /// Record a failure; `Err(Stop)` when the level enforces it.
    fn fail(
        &mut self,
        step: Step,
        reason: &'static str,
        detail: impl Into<String>,
    ) -> Result<(), Stop> {
        let action = self.actions[step as usize];
        let outcome = match action {
            Action::Enforce => "fail",
            Action::Log => "logged",
            Action::Skip => "skipped",
        };
        self.checks.push(NotationCheck {
            step,
            outcome,
            reason: Some(reason),
            detail: detail.into(),
        });
        if action == Action::Enforce {
            Err(Stop)
        } else {
            Ok(())
        }
    }

    fn skipped(&self, step: Step) -> bool {
        self.actions[step as usize] == Action::Skip
    }

    fn finish(mut self) -> NotationVerification {
        for step in [
            Step::Integrity,
            Step::Authenticity,
            Step::AuthenticTimestamp,
            Step::Expiry,
            Step::Revocation,
        ] {
            if self.skipped(step) && !self.checks.iter().any(|c| c.step == step) {
                self.checks.push(NotationCheck {
                    step,
                    outcome: "skipped",
                    reason: None,
                    detail: format!("the policy skips {}", step.as_str()),
                });
            }
        }
        NotationVerification {
            verified: !self.checks.iter().any(|c| c.outcome == "fail"),
            policy: self.policy,
            level: self.level,
            checks: self.checks,
            signer: self.signer,
            target: self.target,
        }
    }
}

/// The artifact a signature must be for: its repository (for the policy's scope) and digest.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub repository: &'a str,
    pub digest: &'a str,
}

/// A signature envelope, JWS or COSE, reduced to what verification reads.
struct Envelope {
    /// The JWS `alg` name, or the COSE algorithm mapped to it (-37 is `PS256`, ...).
    alg: String,
    crit: Vec<String>,
    content_type: Option<String>,
    signing_scheme: Option<String>,
    expiry: Option<OffsetDateTime>,
    /// The exact bytes the signature covers: the JWS signing input, or the COSE
    /// `Sig_structure` (RFC 9052 §4.4).
    signing_input: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<Certificate>,
    timestamp: Option<Vec<u8>>,
}

fn b64url(field: &str, s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("`{field}` is not unpadded base64url: {e}"))
}

fn certificates(ders: Vec<Vec<u8>>) -> Result<Vec<Certificate>, String> {
    let chain = ders
        .iter()
        .map(|der| Certificate::from_der(der).map_err(|e| format!("`x5c` entry: {e}")))
        .collect::<Result<Vec<_>, String>>()?;
    if chain.is_empty() {
        return Err("the `x5c` certificate chain is empty".into());
    }
    Ok(chain)
}

/// Parse a JWS envelope (flattened JSON serialization, RFC 7515 §7.2.2).
fn parse_jws(bytes: &[u8]) -> Result<Envelope, String> {
    #[derive(Deserialize)]
    struct Raw {
        protected: String,
        payload: String,
        signature: String,
        #[serde(default)]
        header: serde_json::Map<String, serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a JWS envelope: {e}"))?;
    let protected: serde_json::Value =
        serde_json::from_slice(&b64url("protected", &raw.protected)?)
            .map_err(|e| format!("the protected header is not JSON: {e}"))?;
    let std = base64::engine::general_purpose::STANDARD;
    let ders = raw
        .header
        .get("x5c")
        .and_then(|v| v.as_array())
        .ok_or("the unprotected header has no `x5c` certificate chain")?
        .iter()
        .map(|c| {
            std.decode(c.as_str().unwrap_or_default())
                .map_err(|e| format!("`x5c` entry is not base64: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let timestamp = match raw.header.get("io.cncf.notary.timestampSignature") {
        None => None,
        Some(v) => Some(
            std.decode(v.as_str().unwrap_or_default())
                .map_err(|e| format!("the timestamp countersignature is not base64: {e}"))?,
        ),
    };
    let text = |k: &str| protected[k].as_str().map(str::to_string);
    Ok(Envelope {
        alg: text("alg").unwrap_or_default(),
        crit: protected["crit"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
        content_type: text("cty"),
        signing_scheme: text("io.cncf.notary.signingScheme"),
        expiry: protected
            .get("io.cncf.notary.expiry")
            .map(|v| rfc3339(v).ok_or("`io.cncf.notary.expiry` is not an RFC 3339 time"))
            .transpose()?,
        signing_input: format!("{}.{}", raw.protected, raw.payload).into_bytes(),
        payload: b64url("payload", &raw.payload)?,
        signature: b64url("signature", &raw.signature)?,
        chain: certificates(ders)?,
        timestamp,
    })
}

/// Parse a COSE_Sign1 envelope (RFC 9052 §4.2, CBOR tag 18) with `ciborium`.
fn parse_cose(bytes: &[u8]) -> Result<Envelope, String> {
    use ciborium::value::Value as C;
    let value: C = ciborium::from_reader(bytes).map_err(|e| format!("not CBOR: {e}"))?;
    let items = match value {
        C::Tag(18, inner) => match *inner {
            C::Array(a) => a,
            _ => return Err("COSE_Sign1 is not an array".into()),
        },
        C::Array(a) => a,
        _ => return Err("not a COSE_Sign1 (CBOR tag 18)".into()),
    };
    let [C::Bytes(protected_bytes), C::Map(unprotected), C::Bytes(payload), C::Bytes(signature)] =
        items.as_slice()
    else {
        return Err("COSE_Sign1 is not [protected, unprotected, payload, signature]".into());
    };
    let protected: Vec<(C, C)> = match ciborium::from_reader(protected_bytes.as_slice()) {
        Ok(C::Map(m)) => m,
        _ => return Err("the protected header is not a CBOR map".into()),
    };
    let get = |m: &[(C, C)], key: &C| m.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let label = |i: i64| C::Integer(i.into());
    let text = |s: &str| C::Text(s.to_string());
    let alg = match get(&protected, &label(1)) {
        Some(C::Integer(i)) => match i128::from(i) {
            -37 => "PS256",
            -38 => "PS384",
            -39 => "PS512",
            -7 => "ES256",
            -35 => "ES384",
            -36 => "ES512",
            _ => "unknown COSE algorithm",
        }
        .to_string(),
        _ => String::new(),
    };
    let crit = match get(&protected, &label(2)) {
        Some(C::Array(a)) => a
            .into_iter()
            .map(|c| match c {
                C::Text(t) => t,
                C::Integer(i) => i128::from(i).to_string(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let content_type = match get(&protected, &label(3)) {
        Some(C::Text(t)) => Some(t),
        _ => None,
    };
    let signing_scheme = match get(&protected, &text("io.cncf.notary.signingScheme")) {
        Some(C::Text(t)) => Some(t),
        _ => None,
    };
    // Times are CBOR tag 1 (epoch seconds).
    let expiry = match get(&protected, &text("io.cncf.notary.expiry")) {
        None => None,
        Some(C::Tag(1, t)) => match *t {
            C::Integer(i) => OffsetDateTime::from_unix_timestamp(i128::from(i) as i64).ok(),
            _ => None,
        }
        .ok_or("`io.cncf.notary.expiry` is not an epoch time")
        .map(Some)?,
        Some(_) => return Err("`io.cncf.notary.expiry` is not an epoch time".into()),
    };
    let ders = match get(unprotected, &label(33)) {
        Some(C::Array(a)) => a
            .into_iter()
            .map(|c| match c {
                C::Bytes(b) => Ok(b),
                _ => Err("`x5chain` entry is not a byte string".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(C::Bytes(b)) => vec![b],
        _ => return Err("the unprotected header has no `x5chain` certificate chain".into()),
    };
    let timestamp = match get(unprotected, &text("io.cncf.notary.timestampSignature")) {
        Some(C::Bytes(b)) => Some(b),
        None => None,
        Some(_) => return Err("the timestamp countersignature is not a byte string".into()),
    };
    // Sig_structure = ["Signature1", body_protected, external_aad, payload] (RFC 9052 §4.4).
    let mut signing_input = Vec::new();
    ciborium::into_writer(
        &C::Array(vec![
            C::Text("Signature1".into()),
            C::Bytes(protected_bytes.clone()),
            C::Bytes(Vec::new()),
            C::Bytes(payload.clone()),
        ]),
        &mut signing_input,
    )
    .map_err(|e| format!("cannot encode the Sig_structure: {e}"))?;
    Ok(Envelope {
        alg,
        crit,
        content_type,
        signing_scheme,
        expiry,
        signing_input,
        payload: payload.clone(),
        signature: signature.clone(),
        chain: certificates(ders)?,
        timestamp,
    })
}

fn rfc3339(v: &serde_json::Value) -> Option<OffsetDateTime> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// Verify a Notation signature envelope for `subject` under the trust policy that applies to
/// its repository. `Err` when nothing can be decided: no policy applies, or the envelope names
/// an unsupported algorithm.
pub fn verify_notation(
    envelope: &[u8],
    media_type: &str,
    subject: Subject<'_>,
    policies: &TrustPolicyDocument,
    store: &TrustStore,
    now: OffsetDateTime,
) -> Result<NotationVerification, NotationError> {
    let policy = policies
        .select(subject.repository)
        .ok_or_else(|| NotationError::NoPolicy(subject.repository.to_string()))?;
    let mut r = Report {
        policy: policy.name.clone(),
        level: policy.level,
        actions: policy.actions,
        checks: Vec::new(),
        signer: None,
        target: None,
    };
    if policy.level == Level::Skip {
        return Ok(r.finish());
    }
    // The algorithm is read before anything is judged: an unsupported one is "could not
    // decide", never a bad signature.
    let parsed = if media_type == COSE_MEDIA_TYPE {
        parse_cose(envelope)
    } else {
        parse_jws(envelope)
    };
    let jws = match parsed {
        Ok(j) => j,
        Err(e) => {
            let _ = r.fail(Step::Integrity, "envelope-malformed", e);
            return Ok(r.finish());
        }
    };
    let alg = jws.alg.clone();
    let hash = match alg.as_str() {
        "PS256" | "ES256" => Hash::Sha256,
        "PS384" | "ES384" => Hash::Sha384,
        "PS512" | "ES512" => Hash::Sha512,
        _ => return Err(NotationError::UnsupportedAlgorithm(alg)),
    };
    let _ = run(&mut r, &jws, &alg, hash, subject, policy, store, now);
    Ok(r.finish())
}

#[allow(clippy::too_many_arguments)]
fn run(
    r: &mut Report,
    jws: &Envelope,
    alg: &str,
    hash: Hash,
    subject: Subject<'_>,
    policy: &TrustPolicy,
    store: &TrustStore,
    now: OffsetDateTime,
) -> Result<(), Stop> {
    let leaf = &jws.chain[0];
    // 1. Integrity: the signature over the literal signing input, the critical headers, the
    //    payload, and that it is for this artifact.
    let key = if alg.starts_with("PS") {
        PublicKey::from_spki_der_with(leaf.spki_der(), lineage_log::keys::RsaScheme::PssSha256)
    } else {
        PublicKey::from_spki_der(leaf.spki_der())
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            return r.fail(
                Step::Integrity,
                "signature-invalid",
                format!("the signing certificate's key is unusable: {e}"),
            )
        }
    };
    let key_matches = match alg {
        "PS256" | "PS384" | "PS512" => key.algorithm() == KeyAlgorithm::RsaPssSha256,
        "ES256" => key.algorithm() == KeyAlgorithm::EcdsaP256Sha256,
        "ES384" => key.algorithm() == KeyAlgorithm::EcdsaP384Sha384,
        _ => key.algorithm() == KeyAlgorithm::EcdsaP521Sha512,
    };
    if !key_matches || !key.verify_with(hash, &jws.signing_input, &jws.signature) {
        return r.fail(
            Step::Integrity,
            "signature-invalid",
            format!("the {alg} signature does not verify with the signing certificate's key"),
        );
    }
    let known = [
        "io.cncf.notary.signingScheme",
        "io.cncf.notary.expiry",
        "io.cncf.notary.authenticSigningTime",
        "io.cncf.notary.verificationPlugin",
        "io.cncf.notary.verificationPluginMinVersion",
    ];
    {
        // COSE marks its own labels critical by number (3: content type); those are known.
        if let Some(unknown) = jws
            .crit
            .iter()
            .find(|c| !known.contains(&c.as_str()) && c.parse::<i64>().is_err())
        {
            return r.fail(
                Step::Integrity,
                "unknown-critical-header",
                format!("critical header `{unknown}` is not understood"),
            );
        }
    }
    let scheme = jws.signing_scheme.as_deref().unwrap_or_default();
    let store_kind = match scheme {
        "notary.x509" => StoreKind::Ca,
        "notary.x509.signingAuthority" => StoreKind::SigningAuthority,
        other => {
            return r.fail(
                Step::Integrity,
                "signing-scheme-invalid",
                format!(
                    "signing scheme `{other}` is not notary.x509 or notary.x509.signingAuthority"
                ),
            )
        }
    };
    if jws.content_type.as_deref() != Some(PAYLOAD_CONTENT_TYPE) {
        return r.fail(
            Step::Integrity,
            "payload-invalid",
            format!("the payload content type is not `{PAYLOAD_CONTENT_TYPE}`"),
        );
    }
    let payload: serde_json::Value = match serde_json::from_slice(&jws.payload) {
        Ok(p) => p,
        Err(e) => {
            return r.fail(
                Step::Integrity,
                "payload-invalid",
                format!("the payload is not JSON: {e}"),
            )
        }
    };
    let target = payload["targetArtifact"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    r.target = Some(target.clone());
    if target != subject.digest {
        return r.fail(
            Step::Integrity,
            "artifact-mismatch",
            format!("the signature is for `{target}`, not `{}`", subject.digest),
        );
    }
    r.signer = Some(leaf.subject_text());
    r.pass(
        Step::Integrity,
        format!(
            "{alg} signature by `{}` over `{target}`",
            leaf.subject_text()
        ),
    );

    // 2. Authenticity: a certificate of the chain is in one of the policy's stores of the
    //    scheme's kind, the chain links up to it, and the leaf is a trusted identity.
    let anchors: Vec<&Certificate> = policy
        .trust_stores
        .iter()
        .filter(|(k, _)| *k == store_kind)
        .filter_map(|(k, n)| store.get(*k, n))
        .flatten()
        .collect();
    let trusted: Vec<&Certificate> = jws
        .chain
        .iter()
        .filter(|c| anchors.iter().any(|a| a.der() == c.der()))
        .collect();
    let authentic = if trusted.is_empty() {
        Err(
            "the signature's certificate chain does not contain any trusted certificate"
                .to_string(),
        )
    } else if trusted.iter().any(|t| t.der() == leaf.der()) {
        Ok(())
    } else {
        let intermediates: Vec<Certificate> = jws.chain[1..]
            .iter()
            .filter(|c| !trusted.iter().any(|t| t.der() == c.der()))
            .cloned()
            .collect();
        // The path's shape and trust, checked inside the leaf's window; when it was valid is
        // the authentic-timestamp check.
        trusted
            .iter()
            .map(|anchor| {
                let mut chain = intermediates.clone();
                chain.push((*anchor).clone());
                x509::validate_path(leaf, &chain, leaf.not_before(), Purpose::NotarySigning)
            })
            .find(|res| res.is_ok())
            .unwrap_or_else(|| {
                Err(x509::PathError::Untrusted(
                    "the certificate chain does not link up to the trusted certificate".into(),
                ))
            })
            .map_err(|e| e.to_string())
    };
    let identity = match &policy.trusted_identities {
        None => Ok(()),
        Some(ids) => {
            let have = subject_attributes(&leaf.subject_text());
            if ids.iter().any(|want| want.iter().all(|a| have.contains(a))) {
                Ok(())
            } else {
                Err(format!(
                    "signing certificate subject `{}` is not a trusted identity",
                    leaf.subject_text()
                ))
            }
        }
    };
    match (authentic, identity) {
        (Err(e), _) => r.fail(Step::Authenticity, "untrusted-certificate", e)?,
        (Ok(()), Err(e)) => r.fail(Step::Authenticity, "identity-mismatch", e)?,
        (Ok(()), Ok(())) => r.pass(
            Step::Authenticity,
            format!(
                "chain reaches the `{}` trust store; the identity is trusted",
                match store_kind {
                    StoreKind::Ca => "ca",
                    StoreKind::SigningAuthority => "signingAuthority",
                    StoreKind::Tsa => "tsa",
                }
            ),
        ),
    }

    // 3. Authentic timestamp: the chain was valid when signed, as an RFC 3161 countersignature
    //    from a `tsa` store proves, or else now.
    let tsa: Vec<Certificate> = policy
        .trust_stores
        .iter()
        .filter(|(k, _)| *k == StoreKind::Tsa)
        .filter_map(|(k, n)| store.get(*k, n))
        .flatten()
        .cloned()
        .collect();
    let expired_now = jws.chain.iter().any(|c| !c.valid_at(now));
    let use_timestamp =
        !tsa.is_empty() && (policy.verify_timestamp == VerifyTimestamp::Always || expired_now);
    let at = if use_timestamp {
        match &jws.timestamp {
            None => {
                r.fail(
                    Step::AuthenticTimestamp,
                    "timestamp-missing",
                    "no timestamp countersignature was found in the signature envelope",
                )?;
                None
            }
            Some(der) => match TimestampToken::parse(der) {
                Err(e) => {
                    r.fail(
                        Step::AuthenticTimestamp,
                        "timestamp-invalid",
                        format!("the timestamp countersignature is malformed: {e}"),
                    )?;
                    None
                }
                Ok(token) if !token.covers(&jws.signature) => {
                    r.fail(
                        Step::AuthenticTimestamp,
                        "timestamp-invalid",
                        "the timestamp countersignature is for another signature",
                    )?;
                    None
                }
                Ok(token) => match token.verify_with_anchors(&tsa) {
                    Err(e) => {
                        r.fail(
                            Step::AuthenticTimestamp,
                            "timestamp-untrusted",
                            format!("the timestamp countersignature is not trusted: {e}"),
                        )?;
                        None
                    }
                    Ok(_) => Some((token.gen_time, "the timestamp's time")),
                },
            },
        }
    } else {
        Some((now, "the verification time"))
    };
    if let Some((t, what)) = at {
        match jws.chain.iter().find(|c| !c.valid_at(t)) {
            Some(c) if t < c.not_before() => r.fail(
                Step::AuthenticTimestamp,
                "certificate-not-yet-valid",
                format!(
                    "{what} {} is before certificate `{}` is valid (from {})",
                    fmt_time(t),
                    c.subject_text(),
                    fmt_time(c.not_before())
                ),
            )?,
            Some(c) => r.fail(
                Step::AuthenticTimestamp,
                "certificate-expired",
                format!(
                    "{what} {} is after certificate `{}` expired at {}",
                    fmt_time(t),
                    c.subject_text(),
                    fmt_time(c.not_after())
                ),
            )?,
            None => r.pass(
                Step::AuthenticTimestamp,
                format!("the certificate chain is valid at {what} {}", fmt_time(t)),
            ),
        }
    }

    // 4. Expiry of the signature itself.
    if !r.skipped(Step::Expiry) {
        match jws.expiry {
            Some(expiry) if now > expiry => r.fail(
                Step::Expiry,
                "signature-expired",
                format!("digital signature has expired on {}", fmt_time(expiry)),
            )?,
            Some(expiry) => r.pass(Step::Expiry, format!("valid until {}", fmt_time(expiry))),
            None => r.pass(Step::Expiry, "the signature states no expiry"),
        }
    }

    // 5. Revocation, offline.
    if !r.skipped(Step::Revocation) {
        match jws.chain.iter().find(|c| c.has_extension(OID_CRL_DP) || c.has_extension(OID_AIA)) {
            Some(c) => r.fail(Step::Revocation, "revocation-unknown", format!("certificate `{}` names CRL or OCSP locations, which an offline verification cannot consult", c.subject_text()))?,
            None => r.pass(Step::Revocation, "no certificate of the chain names a CRL or OCSP location"),
        }
    }
    Ok(())
}

/// Verify the Notation signatures stored in an OCI image layout for `subject`: every manifest
/// of `index.json` whose `artifactType` (or config media type) is [`ARTIFACT_TYPE`] and whose
/// `subject` is the image is an OCI referrer carrying one envelope layer. The result is the
/// first signature that verifies, else the first one that did not; `Ok(None)` when the layout
/// holds no Notation signature for the image. Every blob is checked against its digest.
pub fn verify_notation_layout(
    dir: &Path,
    subject: Subject<'_>,
    policies: &TrustPolicyDocument,
    store: &TrustStore,
    now: OffsetDateTime,
) -> Result<Option<NotationVerification>, NotationError> {
    let layout = |e: crate::CosignError| NotationError::Layout(e.to_string());
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("index.json"))
            .map_err(|e| NotationError::Layout(format!("cannot read `index.json`: {e}")))?,
    )
    .map_err(|e| NotationError::Layout(format!("`index.json` is not JSON: {e}")))?;
    let mut envelopes = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = m["digest"].as_str() else {
            continue;
        };
        let bytes = crate::cosign::read_blob(dir, digest).map_err(layout)?;
        if !crate::cosign::content_matches(&bytes, digest) {
            return Err(NotationError::Layout(format!(
                "blob `{digest}` does not hash to its digest"
            )));
        }
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let artifact_type = manifest["artifactType"]
            .as_str()
            .or(manifest["config"]["mediaType"].as_str());
        if artifact_type != Some(ARTIFACT_TYPE)
            || manifest["subject"]["digest"].as_str() != Some(subject.digest)
        {
            continue;
        }
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let (Some(media_type), Some(ld)) =
                (layer["mediaType"].as_str(), layer["digest"].as_str())
            else {
                continue;
            };
            let envelope = crate::cosign::read_blob(dir, ld).map_err(layout)?;
            if !crate::cosign::content_matches(&envelope, ld) {
                return Err(NotationError::Layout(format!(
                    "blob `{ld}` does not hash to its digest"
                )));
            }
            envelopes.push((media_type.to_string(), envelope));
        }
    }
    verify_notation_envelopes(envelopes, subject, policies, store, now)
}

/// Verify several Notation signatures of one artifact (its referrers, wherever they were read
/// from): the first that verifies, else the first that did not; `Ok(None)` for none.
pub fn verify_notation_envelopes(
    envelopes: impl IntoIterator<Item = (String, Vec<u8>)>,
    subject: Subject<'_>,
    policies: &TrustPolicyDocument,
    store: &TrustStore,
    now: OffsetDateTime,
) -> Result<Option<NotationVerification>, NotationError> {
    let mut first_failure = None;
    for (media_type, envelope) in envelopes {
        let v = verify_notation(&envelope, &media_type, subject, policies, store, now)?;
        if v.verified {
            return Ok(Some(v));
        }
        first_failure.get_or_insert(v);
    }
    Ok(first_failure)
}
