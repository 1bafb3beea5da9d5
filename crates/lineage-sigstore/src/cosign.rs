//! cosign's own formats: `.sig` layers (simple-signing payloads), `.att` layers (DSSE
//! envelopes), the legacy `cosign sign-blob --bundle` file, and images saved with
//! `cosign save` as an OCI image layout.
//!
//! A cosign layer carries its evidence in annotations: `dev.cosignproject.cosign/signature`
//! (base64 signature; empty for attestations, whose signature is inside the envelope),
//! `dev.sigstore.cosign/certificate` and `…/chain` (PEM), and `dev.sigstore.cosign/bundle`
//! (Rekor's `bundle.RekorBundle`: a SET and the entry it covers, without inclusion proof).
//! The chain annotation is never trusted: the path is built from the trusted root only.
//!
//! The simple-signing payload (containers/image `docs/containers-signature.5.md`, "JSON Data
//! Format") names the image by `critical.image.docker-manifest-digest`; a signature for
//! another image must fail even though it verifies, which is why the expected digest is an
//! argument and not something read from the payload.

use std::collections::BTreeMap;
use std::path::Path;

use lineage_model::Digest;
use serde::Deserialize;

use crate::bundle::{DsseEnvelope, TlogEntry};
use crate::keys::b64;
use crate::outcome::{Reason, Run, Verification};
use crate::policy::{IdentityPolicy, PolicyError};
use crate::trusted_root::TrustedRoot;
use crate::verify::{verify_evidence, Artifact, Evidence, Signed};
use crate::x509::Certificate;

/// Annotation holding the base64 signature of a `.sig` layer.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Annotation holding the PEM leaf certificate.
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
/// Annotation holding the PEM chain (informational only).
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
/// Annotation holding the legacy Rekor bundle JSON.
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of a cosign simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// Layer media type of cosign attestations.
pub const DSSE_LAYER_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// One cosign layer: its blob and the annotation values that matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct CosignSignature<'a> {
    /// The layer blob: a simple-signing payload (`.sig`) or a DSSE envelope (`.att`).
    pub blob: &'a [u8],
    /// `dev.cosignproject.cosign/signature`.
    pub signature_b64: Option<&'a str>,
    /// `dev.sigstore.cosign/certificate`: the keyless leaf, PEM.
    pub certificate_pem: Option<&'a str>,
    /// `dev.sigstore.cosign/chain`: ignored for trust, kept for completeness.
    pub chain_pem: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle`: the legacy Rekor bundle JSON.
    pub rekor_bundle: Option<&'a str>,
}

impl<'a> CosignSignature<'a> {
    /// Take the values from a layer descriptor's annotations.
    pub fn from_annotations(
        blob: &'a [u8],
        annotations: &'a BTreeMap<String, String>,
    ) -> CosignSignature<'a> {
        let get = |k: &str| {
            annotations
                .get(k)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        CosignSignature {
            blob,
            signature_b64: get(ANNOTATION_SIGNATURE),
            certificate_pem: get(ANNOTATION_CERTIFICATE),
            chain_pem: get(ANNOTATION_CHAIN),
            rekor_bundle: get(ANNOTATION_BUNDLE),
        }
    }
}

/// Could not decide: an unreadable layout or file, JSON of the wrong shape, or a policy that
/// cannot judge a certificate signer.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{what}` is not JSON of the expected shape: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{0}` is not a valid digest")]
    Digest(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

#[derive(Deserialize)]
struct RawRekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RawRekorPayload,
}

#[derive(Deserialize)]
struct RawRekorPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: u64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Turn a legacy Rekor bundle (`bundle.RekorBundle`) into a log entry. Its kind and version
/// are read from the body itself, which the SET covers.
pub fn parse_rekor_bundle(json: &str) -> Result<TlogEntry, String> {
    let raw: RawRekorBundle =
        serde_json::from_str(json).map_err(|e| format!("Rekor bundle is not JSON: {e}"))?;
    let body = b64(&raw.payload.body).map_err(|e| format!("Rekor bundle body: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("Rekor bundle body is not JSON: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or(format!("Rekor bundle body has no `{k}`"))
    };
    Ok(TlogEntry {
        log_index: raw.payload.log_index,
        log_id: hex::decode(&raw.payload.log_id).map_err(|e| format!("logID is not hex: {e}"))?,
        kind: field("kind")?,
        version: field("apiVersion")?,
        integrated_time: Some(raw.payload.integrated_time),
        signed_entry_timestamp: Some(b64(&raw.set).map_err(|e| format!("SET: {e}"))?),
        inclusion_proof: None,
        canonicalized_body: body,
    })
}

/// Parse the optional certificate and Rekor bundle of a layer; a malformed one fails `run`.
fn layer_material(
    run: &mut Run,
    sig: &CosignSignature<'_>,
) -> Option<(Option<Certificate>, Vec<TlogEntry>)> {
    let leaf = match sig.certificate_pem.map(Certificate::from_pem).transpose() {
        Ok(c) => c,
        Err(e) => {
            run.fail(
                "signer",
                Reason::MalformedBundle,
                format!("certificate annotation: {e}"),
            );
            return None;
        }
    };
    let entries = match sig.rekor_bundle.map(parse_rekor_bundle).transpose() {
        Ok(e) => e.into_iter().collect(),
        Err(e) => {
            run.fail("tlog-entry", Reason::MalformedBundle, e);
            return None;
        }
    };
    Some((leaf, entries))
}

/// Verify a cosign `.sig` layer (simple signing) for the image `expected_image_digest`.
///
/// Keyless layers need the certificate and Rekor bundle annotations, and a policy naming both
/// the identity and the issuer (else `Err`); key-based layers need `policy.key`, and their
/// Rekor bundle is verified when present.
pub fn verify_cosign_simple_signing(
    sig: &CosignSignature<'_>,
    expected_image_digest: &Digest,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Verification, PolicyError> {
    let mut run = Run::default();
    simple_signing(&mut run, sig, expected_image_digest, root, policy)?;
    Ok(run.finish())
}

/// `Err` when the policy cannot judge the signer; a failed check is recorded in `run`.
fn simple_signing(
    run: &mut Run,
    sig: &CosignSignature<'_>,
    expected: &Digest,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<(), PolicyError> {
    let Some(sig_b64) = sig.signature_b64 else {
        run.fail(
            "signature",
            Reason::MalformedBundle,
            "the layer has no signature annotation",
        );
        return Ok(());
    };
    let signature = match b64(sig_b64.trim()) {
        Ok(s) => s,
        Err(e) => {
            run.fail(
                "signature",
                Reason::MalformedBundle,
                format!("signature annotation: {e}"),
            );
            return Ok(());
        }
    };
    let Some((leaf, entries)) = layer_material(run, sig) else {
        return Ok(());
    };
    let evidence = Evidence {
        leaf: leaf.as_ref(),
        signed: Signed::Message {
            signature: &signature,
            claimed_digest: None,
        },
        entries: &entries,
        timestamps: &[],
        require_inclusion_proof: false,
        require_tlog: leaf.is_some(),
    };
    if verify_evidence(run, &evidence, Artifact::Bytes(sig.blob), root, policy)?.is_err() {
        return Ok(());
    }
    signed_image(run, sig.blob, expected);
    Ok(())
}

/// Check what an authenticated simple-signing payload claims: its type and the image.
fn signed_image(run: &mut Run, blob: &[u8], expected: &Digest) {
    // The payload is authenticated now; read what it claims.
    let payload: serde_json::Value = match serde_json::from_slice(blob) {
        Ok(v) => v,
        Err(e) => {
            run.fail(
                "payload",
                Reason::PayloadInvalid,
                format!("simple-signing payload is not JSON: {e}"),
            );
            return;
        }
    };
    let ty = payload.pointer("/critical/type").and_then(|v| v.as_str());
    if ty != Some(SIMPLE_SIGNING_TYPE) {
        run.fail(
            "payload",
            Reason::PayloadInvalid,
            format!("`critical.type` is {ty:?}, not `{SIMPLE_SIGNING_TYPE}`"),
        );
        return;
    }
    let signed_digest = payload
        .pointer("/critical/image/docker-manifest-digest")
        .and_then(|v| v.as_str());
    let reference = payload
        .pointer("/critical/identity/docker-reference")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match signed_digest {
        Some(d) if d == expected.to_string() => {
            run.pass(
                "image-digest",
                format!("the payload signs {d} (docker-reference `{reference}`)"),
            );
            run.statement = Some(payload);
        }
        other => {
            run.fail(
                "image-digest",
                Reason::ImageDigestMismatch,
                format!(
                    "the payload signs {}, not the image being verified {expected}",
                    other.unwrap_or("no docker-manifest-digest")
                ),
            );
        }
    }
}

/// Verify a cosign `.att` layer (a DSSE envelope with an in-toto Statement) for the image
/// `expected_image_digest`: the Statement's subject must name that digest. `Err` as for
/// [`verify_cosign_simple_signing`].
pub fn verify_cosign_attestation(
    att: &CosignSignature<'_>,
    expected_image_digest: &Digest,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Verification, PolicyError> {
    let mut run = Run::default();
    attestation(&mut run, att, expected_image_digest, root, policy)?;
    Ok(run.finish())
}

/// `Err` when the policy cannot judge the signer; a failed check is recorded in `run`.
fn attestation(
    run: &mut Run,
    att: &CosignSignature<'_>,
    expected: &Digest,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<(), PolicyError> {
    let envelope = match DsseEnvelope::from_json(att.blob) {
        Ok(e) => e,
        Err(e) => {
            run.fail(
                "signature",
                Reason::MalformedBundle,
                format!("DSSE layer: {e}"),
            );
            return Ok(());
        }
    };
    let Some((leaf, entries)) = layer_material(run, att) else {
        return Ok(());
    };
    let evidence = Evidence {
        leaf: leaf.as_ref(),
        signed: Signed::Dsse {
            envelope: &envelope,
            raw: Some(att.blob),
        },
        entries: &entries,
        timestamps: &[],
        require_inclusion_proof: false,
        require_tlog: leaf.is_some(),
    };
    let _ = verify_evidence(run, &evidence, Artifact::Digest(expected), root, policy)?;
    Ok(())
}

#[derive(Deserialize)]
struct RawLegacyBlobBundle {
    #[serde(rename = "base64Signature")]
    signature: String,
    cert: Option<String>,
    #[serde(rename = "rekorBundle")]
    rekor_bundle: Option<serde_json::Value>,
}

/// Verify a legacy `cosign sign-blob --bundle` file (`base64Signature`, base64-encoded PEM
/// `cert`, `rekorBundle`) over `artifact`. A `cert` needs a policy naming both the identity
/// and the issuer ([`CosignError::Policy`]).
pub fn verify_legacy_cosign_bundle(
    json: &[u8],
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Verification, CosignError> {
    let raw: RawLegacyBlobBundle = serde_json::from_slice(json).map_err(|e| CosignError::Json {
        what: "legacy cosign bundle".into(),
        source: e,
    })?;
    let mut run = Run::default();
    legacy(&mut run, &raw, artifact, root, policy)?;
    Ok(run.finish())
}

/// `Err` when the policy cannot judge the signer; a failed check is recorded in `run`.
fn legacy(
    run: &mut Run,
    raw: &RawLegacyBlobBundle,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<(), PolicyError> {
    let signature = match b64(&raw.signature) {
        Ok(s) => s,
        Err(e) => {
            run.fail(
                "signature",
                Reason::MalformedBundle,
                format!("base64Signature: {e}"),
            );
            return Ok(());
        }
    };
    let leaf = match raw.cert.as_deref().map(|c| {
        let pem = b64(c).map_err(|e| e.to_string())?;
        let pem = String::from_utf8(pem).map_err(|_| "not UTF-8".to_string())?;
        Certificate::from_pem(&pem).map_err(|e| e.to_string())
    }) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            run.fail("signer", Reason::MalformedBundle, format!("cert: {e}"));
            return Ok(());
        }
    };
    let entries: Vec<TlogEntry> = match &raw.rekor_bundle {
        None => Vec::new(),
        Some(v) => match parse_rekor_bundle(&v.to_string()) {
            Ok(e) => vec![e],
            Err(e) => {
                run.fail("tlog-entry", Reason::MalformedBundle, e);
                return Ok(());
            }
        },
    };
    let evidence = Evidence {
        leaf: leaf.as_ref(),
        signed: Signed::Message {
            signature: &signature,
            claimed_digest: None,
        },
        entries: &entries,
        timestamps: &[],
        require_inclusion_proof: false,
        require_tlog: true,
    };
    let _ = verify_evidence(run, &evidence, artifact, root, policy)?;
    Ok(())
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawDescriptor>,
}

/// cosign save's `kind` annotation values.
const KIND_ATTS: &str = "dev.cosignproject.cosign/atts";
const KIND_SIGS: &str = "dev.cosignproject.cosign/sigs";

pub(crate) fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>, CosignError> {
    // Parsing first keeps the path to `blobs/<alg>/<hex>`: no traversal via the index.
    let d = Digest::parse(digest).map_err(|_| CosignError::Digest(digest.to_string()))?;
    let path = dir.join("blobs").join(d.algorithm().as_str()).join(d.hex());
    std::fs::read(&path).map_err(|source| CosignError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn content_matches(blob: &[u8], digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex::encode(crate::keys::sha256(blob)) == hex)
}

/// Verify the cosign signatures and attestations stored in an OCI image layout on disk (as
/// written by `cosign save`) for the image `expected_image_digest`.
///
/// Every `.sig` and `.att` manifest in `index.json` is tried, layer by layer; the result is
/// the first layer that verifies, or else the first failure. Blobs whose content does not hash
/// to their digest fail as malformed. A keyless layer reached under a policy that does not name
/// both the identity and the issuer stops the search with [`CosignError::Policy`].
pub fn verify_oci_layout(
    dir: &Path,
    expected_image_digest: &Digest,
    policy: &IdentityPolicy,
    root: &TrustedRoot,
) -> Result<Verification, CosignError> {
    let index_path = dir.join("index.json");
    let index_bytes = std::fs::read(&index_path).map_err(|source| CosignError::Io {
        path: index_path.display().to_string(),
        source,
    })?;
    let index: RawIndex = serde_json::from_slice(&index_bytes).map_err(|e| CosignError::Json {
        what: "index.json".into(),
        source: e,
    })?;
    let mut first_failure: Option<Verification> = None;
    for m in &index.manifests {
        let kind = m.annotations.get("kind").map(String::as_str);
        let is_att = kind == Some(KIND_ATTS);
        let is_sig = kind == Some(KIND_SIGS);
        if !is_att && !is_sig {
            continue;
        }
        let manifest_bytes = read_blob(dir, &m.digest)?;
        if !content_matches(&manifest_bytes, &m.digest) {
            let mut run = Run::default();
            run.fail(
                "layout",
                Reason::MalformedBundle,
                format!("manifest blob does not hash to {}", m.digest),
            );
            first_failure.get_or_insert(run.finish());
            continue;
        }
        let manifest: RawManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| CosignError::Json {
                what: m.digest.clone(),
                source: e,
            })?;
        for layer in &manifest.layers {
            let blob = read_blob(dir, &layer.digest)?;
            let v = if !content_matches(&blob, &layer.digest) {
                let mut run = Run::default();
                run.fail(
                    "layout",
                    Reason::MalformedBundle,
                    format!("layer blob does not hash to {}", layer.digest),
                );
                run.finish()
            } else {
                let sig = CosignSignature::from_annotations(&blob, &layer.annotations);
                if is_att && layer.media_type == DSSE_LAYER_MEDIA_TYPE {
                    verify_cosign_attestation(&sig, expected_image_digest, root, policy)?
                } else if is_sig {
                    verify_cosign_simple_signing(&sig, expected_image_digest, root, policy)?
                } else {
                    continue;
                }
            };
            if v.verified {
                return Ok(v);
            }
            first_failure.get_or_insert(v);
        }
    }
    Ok(first_failure.unwrap_or_else(|| {
        let mut run = Run::default();
        run.fail(
            "layout",
            Reason::NoSignature,
            "the layout holds no cosign signature or attestation",
        );
        run.finish()
    }))
}
