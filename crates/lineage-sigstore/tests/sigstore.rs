//! Conformance of the Sigstore/cosign verifier against the shared fixtures, with the outcome
//! and reason `shared/fixtures/SOURCES.md` states for each, plus mutations that must each fail
//! for their own specific reason.

use std::path::PathBuf;

use lineage_model::Digest;
use lineage_sigstore::{
    verify_bundle, verify_bundle_json, verify_cosign_simple_signing, verify_legacy_cosign_bundle,
    verify_oci_layout, Artifact, Bundle, BundleError, CosignError, CosignSignature, IdentityPolicy,
    Matcher, PolicyError, Reason, TrustedRoot, Verification, VerifyingKey,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    match std::env::var_os("LINEAGE_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures"
        )),
    }
}

fn read(rel: &str) -> Vec<u8> {
    let p = fixtures().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
}

fn text(rel: &str) -> String {
    String::from_utf8(read(rel)).unwrap()
}

fn root(rel: &str) -> TrustedRoot {
    TrustedRoot::from_json(&read(rel)).expect("trusted root parses")
}

fn public_good() -> TrustedRoot {
    root("sigstore-bundle/sigstore-public-good.trusted_root.json")
}

fn staging() -> TrustedRoot {
    root("sigstore-bundle/sigstore-staging.trusted_root.json")
}

const NEW_BUNDLE: &str = "sigstore-bundle/sigstore-python.new_bundle.txt.sigstore.json";
const NEW_BUNDLE_ARTIFACT: &str = "sigstore-bundle/sigstore-python.new_bundle.txt";
const STAGING_BUNDLE: &str = "sigstore-bundle/sigstore-python.staging-rekor-v2.txt.sigstore.json";
const STAGING_ARTIFACT: &str = "sigstore-bundle/sigstore-python.staging-rekor-v2.txt";
const NPM_BUNDLE: &str = "sigstore-bundle/npm.sigstore-3.1.0.slsa-v1.v0.2.sigstore.json";
const RS_DSSE: &str = "sigstore-bundle/sigstore-rs.dsse.v0.1.sigstore.json";
const RS_DSSE_2SIGS: &str = "sigstore-bundle/sigstore-rs.dsse-2sigs.v0.1.sigstore.json";
const KUBEWARDEN: &str = "sigstore-bundle/sigstore-rs.bundle_v03.cosign-sign-v1.dsse.sigstore.json";
const MANAGED: &str =
    "sigstore-bundle/conformance.intoto-canonical-log-entry.managed-key.sigstore.json";
const MANAGED_KEY: &str = "sigstore-bundle/conformance.intoto-canonical-log-entry.key.pub";
const MANAGED_ROOT: &str =
    "sigstore-bundle/conformance.intoto-canonical-log-entry.trusted_root.json";
const CVE: &str = "cosign/conformance.cve-2022-36056-swapped-tlog-entry.legacy-bundle.json";
const KEYLESS_SIG: &str = "cosign/containers-image-keyless-sig";
const ATT_LAYOUT: &str = "cosign/slsa-verifier-container-att-layout";

const KUBEWARDEN_IDENTITY: &str =
    "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";

// Who signed each keyless fixture: the leaf certificate's SAN and Fulcio issuer extension
// (`shared/fixtures/SOURCES.md` states those it names). Keyless verification needs both.

fn signed_by(identity: &str, issuer: &str) -> IdentityPolicy {
    IdentityPolicy::keyless(Matcher::exact(identity), Matcher::exact(issuer))
}

fn new_bundle_signer() -> IdentityPolicy {
    signed_by("aryadeeptade@gmail.com", GITHUB_OAUTH)
}

fn staging_signer() -> IdentityPolicy {
    signed_by("jku@goto.fi", GITHUB_OAUTH)
}

fn npm_signer() -> IdentityPolicy {
    signed_by(
        "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main",
        GITHUB_ISSUER,
    )
}

fn rs_dsse_signer() -> IdentityPolicy {
    signed_by("brian@dehamer.com", GITHUB_OAUTH)
}

fn kubewarden_signer() -> IdentityPolicy {
    signed_by(KUBEWARDEN_IDENTITY, GITHUB_ISSUER)
}

fn cve_signer() -> IdentityPolicy {
    signed_by("w.vollprecht@gmail.com", GITHUB_OAUTH)
}

fn keyless_sig_signer() -> IdentityPolicy {
    signed_by("mitr@redhat.com", GITHUB_OAUTH)
}

fn att_layout_signer() -> IdentityPolicy {
    signed_by(
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/heads/main",
        GITHUB_ISSUER,
    )
}

/// No identity, no issuer, no key: what `lineage verify` builds when given no policy flags.
fn no_policy() -> IdentityPolicy {
    IdentityPolicy::default()
}

/// Assert the verification passed, printing its checks otherwise.
#[track_caller]
fn assert_verified(v: &Verification) {
    assert!(v.verified, "expected success, got: {:#?}", v.checks);
    assert_eq!(v.reason(), None);
}

/// Assert the verification failed for exactly `reason`.
#[track_caller]
fn assert_fails(v: &Verification, reason: Reason) {
    assert!(
        !v.verified,
        "expected {reason}, but it verified: {:#?}",
        v.checks
    );
    assert_eq!(v.reason(), Some(reason), "checks: {:#?}", v.checks);
    assert!(
        v.statement.is_none(),
        "a failed verification must not hand out its payload"
    );
}

fn verify_json(
    json: &[u8],
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    p: &IdentityPolicy,
) -> Verification {
    verify_bundle_json(json, artifact, root, p).expect("bundle JSON is decidable")
}

/// [`verify_bundle`] under a policy that can judge the bundle's signer.
fn bundle(
    b: &Bundle,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    p: &IdentityPolicy,
) -> Verification {
    verify_bundle(b, artifact, root, p).expect("the policy can judge this signer")
}

/// [`verify_cosign_simple_signing`] under a policy that can judge the layer's signer.
fn simple_signing(
    sig: &CosignSignature<'_>,
    image: &Digest,
    root: &TrustedRoot,
    p: &IdentityPolicy,
) -> Verification {
    verify_cosign_simple_signing(sig, image, root, p).expect("the policy can judge this signer")
}

/// Edit a bundle's JSON and serialize it back.
fn mutate(rel: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&read(rel)).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Flip one bit in the middle of a base64 field's decoded bytes.
fn flip_b64(v: &mut Value) {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    let mut bytes = e.decode(v.as_str().unwrap()).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    *v = Value::String(e.encode(bytes));
}

fn entry0(v: &mut Value) -> &mut Value {
    &mut v["verificationMaterial"]["tlogEntries"][0]
}

// ---- sigstore-bundle/: the stated outcomes ----

#[test]
fn new_bundle_v03_hashedrekord_verifies_with_its_artifact() {
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_verified(&v);
    // The proof is checked at the shard-local index, not the global one.
    let proof = v.check("inclusion-proof").unwrap();
    assert!(proof.detail.contains("2452216565"), "{}", proof.detail);
    for name in [
        "set",
        "checkpoint",
        "timestamp",
        "certificate-chain",
        "identity",
        "issuer",
    ] {
        assert!(v.check(name).is_some_and(|c| c.ok), "missing check {name}");
    }
    match v.signer.as_ref().unwrap() {
        lineage_sigstore::Signer::Certificate { identities, issuer } => {
            assert_eq!(identities, &vec!["aryadeeptade@gmail.com".to_string()]);
            assert_eq!(issuer.as_deref(), Some("https://github.com/login/oauth"));
        }
        other => panic!("unexpected signer {other:?}"),
    }
}

#[test]
fn new_bundle_verifies_from_the_digest_alone() {
    let digest_hex = hex::encode(lineage_sigstore::keys::sha256(&read(NEW_BUNDLE_ARTIFACT)));
    let digest = Digest::sha256_from_hex(&digest_hex).unwrap();
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Digest(&digest),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_verified(&v);
}

#[test]
fn staging_rekor_v2_verifies_without_a_set() {
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &read(STAGING_BUNDLE),
        Artifact::Bytes(&artifact),
        &staging(),
        &staging_signer(),
    );
    assert_verified(&v);
    let set = v.check("set").unwrap();
    assert!(set.ok && set.detail.contains("absent"), "{set:?}");
    // The only time source is the RFC 3161 time-stamp.
    assert!(v.check("timestamp").is_some_and(|c| c.ok));
    assert!(v.signing_time.is_some());
}

#[test]
fn npm_v02_dsse_slsa_v1_verifies() {
    let v = verify_json(
        &read(NPM_BUNDLE),
        Artifact::Any,
        &public_good(),
        &npm_signer(),
    );
    assert_verified(&v);
    let st = v.statement.as_ref().unwrap();
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
}

#[test]
fn sigstore_rs_v01_dsse_verifies_with_set_only() {
    let v = verify_json(
        &read(RS_DSSE),
        Artifact::Any,
        &public_good(),
        &rs_dsse_signer(),
    );
    assert_verified(&v);
    let proof = v.check("inclusion-proof").unwrap();
    assert!(proof.detail.contains("absent"), "{proof:?}");
}

#[test]
fn two_signature_dsse_bundle_is_rejected() {
    let v = verify_json(
        &read(RS_DSSE_2SIGS),
        Artifact::Any,
        &public_good(),
        &rs_dsse_signer(),
    );
    assert_fails(&v, Reason::WrongSignatureCount);
}

fn kubewarden_digest() -> Digest {
    Digest::parse("sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172")
        .unwrap()
}

#[test]
fn cosign_v03_dsse_bundle_verifies_with_identity_and_issuer() {
    let p = IdentityPolicy::keyless(
        Matcher::exact(KUBEWARDEN_IDENTITY),
        Matcher::exact(GITHUB_ISSUER),
    );
    let d = kubewarden_digest();
    let v = verify_json(&read(KUBEWARDEN), Artifact::Digest(&d), &public_good(), &p);
    assert_verified(&v);
    let re = IdentityPolicy::keyless(
        Matcher::regex(r"^https://github\.com/kubewarden/").unwrap(),
        Matcher::regex(r"^https://token\.actions\.githubusercontent\.com$").unwrap(),
    );
    assert_verified(&verify_json(
        &read(KUBEWARDEN),
        Artifact::Digest(&d),
        &public_good(),
        &re,
    ));
}

#[test]
fn cosign_v03_dsse_bundle_rejects_wrong_identity() {
    let p = IdentityPolicy::keyless(
        Matcher::exact(KUBEWARDEN_IDENTITY.replace("v1.34.0", "v1.35.0")),
        Matcher::exact(GITHUB_ISSUER),
    );
    let v = verify_json(
        &read(KUBEWARDEN),
        Artifact::Digest(&kubewarden_digest()),
        &public_good(),
        &p,
    );
    assert_fails(&v, Reason::IdentityMismatch);
    let re = IdentityPolicy::keyless(
        Matcher::regex("^https://github.com/evil/").unwrap(),
        Matcher::exact(GITHUB_ISSUER),
    );
    let v = verify_json(
        &read(KUBEWARDEN),
        Artifact::Digest(&kubewarden_digest()),
        &public_good(),
        &re,
    );
    assert_fails(&v, Reason::IdentityMismatch);
}

#[test]
fn cosign_v03_dsse_bundle_rejects_wrong_issuer() {
    let p = IdentityPolicy::keyless(
        Matcher::exact(KUBEWARDEN_IDENTITY),
        Matcher::exact("https://accounts.google.com"),
    );
    let v = verify_json(
        &read(KUBEWARDEN),
        Artifact::Digest(&kubewarden_digest()),
        &public_good(),
        &p,
    );
    assert_fails(&v, Reason::IssuerMismatch);
}

#[test]
fn cosign_v03_dsse_bundle_rejects_another_subject() {
    let other = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let v = verify_json(
        &read(KUBEWARDEN),
        Artifact::Digest(&other),
        &public_good(),
        &kubewarden_signer(),
    );
    assert_fails(&v, Reason::SubjectMismatch);
}

#[test]
fn managed_key_bundle_verifies_with_its_key_and_root() {
    let key = VerifyingKey::from_pem(&text(MANAGED_KEY)).unwrap();
    let v = verify_json(
        &read(MANAGED),
        Artifact::Any,
        &root(MANAGED_ROOT),
        &IdentityPolicy::key(key),
    );
    assert_verified(&v);
    assert!(matches!(
        v.signer,
        Some(lineage_sigstore::Signer::Key { .. })
    ));
}

#[test]
fn managed_key_bundle_needs_the_key_and_the_right_root() {
    let v = verify_json(
        &read(MANAGED),
        Artifact::Any,
        &root(MANAGED_ROOT),
        &no_policy(),
    );
    assert_fails(&v, Reason::KeyRequired);
    let key = VerifyingKey::from_pem(&text(MANAGED_KEY)).unwrap();
    let v = verify_json(
        &read(MANAGED),
        Artifact::Any,
        &public_good(),
        &IdentityPolicy::key(key),
    );
    assert_fails(&v, Reason::UnknownLog);
}

#[test]
fn managed_key_bundle_rejects_another_key() {
    // The Rekor key of the public-good root is a valid P-256 key, but not the signer.
    let other = public_good().tlogs[0].key.clone().unwrap();
    let v = verify_json(
        &read(MANAGED),
        Artifact::Any,
        &root(MANAGED_ROOT),
        &IdentityPolicy::key(other),
    );
    assert_fails(&v, Reason::SignatureInvalid);
}

#[test]
fn unknown_media_type_is_rejected_with_its_reason() {
    let json = mutate(NEW_BUNDLE, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.9+json".into()
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::UnknownMediaType);
}

#[test]
fn v03_media_type_parameter_spelling_is_accepted() {
    let json = mutate(NEW_BUNDLE, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.3".into()
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    assert_verified(&verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    ));
}

// ---- mutations of a valid bundle, each with its own reason ----

#[test]
fn flipped_artifact_byte_fails_as_artifact_mismatch() {
    let mut artifact = read(NEW_BUNDLE_ARTIFACT);
    artifact[0] ^= 0x01;
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::ArtifactMismatch);
}

#[test]
fn flipped_signature_byte_fails_as_signature_invalid() {
    let json = mutate(NEW_BUNDLE, |v| {
        flip_b64(&mut v["messageSignature"]["signature"])
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::SignatureInvalid);
    // The same for a DSSE signature.
    let json = mutate(NPM_BUNDLE, |v| {
        flip_b64(&mut v["dsseEnvelope"]["signatures"][0]["sig"])
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &npm_signer());
    assert_fails(&v, Reason::SignatureInvalid);
}

#[test]
fn flipped_inclusion_proof_hash_fails_as_inclusion_proof_invalid() {
    let json = mutate(NEW_BUNDLE, |v| {
        flip_b64(&mut entry0(v)["inclusionProof"]["hashes"][3])
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::InclusionProofInvalid);
}

#[test]
fn global_log_index_in_the_proof_fails_as_inclusion_proof_invalid() {
    // Using the entry's global index (as a naive verifier would) must not verify.
    let json = mutate(NEW_BUNDLE, |v| {
        let global = entry0(v)["logIndex"].clone();
        entry0(v)["inclusionProof"]["logIndex"] = global;
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::InclusionProofInvalid);
}

#[test]
fn flipped_proof_root_fails_as_inclusion_proof_invalid() {
    let json = mutate(NEW_BUNDLE, |v| {
        flip_b64(&mut entry0(v)["inclusionProof"]["rootHash"])
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::InclusionProofInvalid);
}

#[test]
fn flipped_checkpoint_root_fails_as_checkpoint_invalid() {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    for (bundle, root, artifact, signer) in [
        (
            NEW_BUNDLE,
            public_good(),
            NEW_BUNDLE_ARTIFACT,
            new_bundle_signer(),
        ),
        (
            STAGING_BUNDLE,
            staging(),
            STAGING_ARTIFACT,
            staging_signer(),
        ),
    ] {
        let json = mutate(bundle, |v| {
            let cp = entry0(v)["inclusionProof"]["checkpoint"]["envelope"]
                .as_str()
                .unwrap()
                .to_string();
            let lines: Vec<&str> = cp.split('\n').collect();
            let mut h = e.decode(lines[2]).unwrap();
            h[0] ^= 0x01;
            let flipped = e.encode(&h);
            let cp = cp.replacen(lines[2], &flipped, 1);
            entry0(v)["inclusionProof"]["checkpoint"]["envelope"] = cp.into();
            // Keep the proof pointing at the (forged) checkpoint root, so that only the
            // checkpoint signature can catch it.
            entry0(v)["inclusionProof"]["rootHash"] = flipped.into();
        });
        let a = read(artifact);
        let v = verify_json(&json, Artifact::Bytes(&a), &root, &signer);
        assert_fails(&v, Reason::CheckpointInvalid);
    }
}

#[test]
fn flipped_set_fails_as_set_invalid() {
    let json = mutate(RS_DSSE, |v| {
        flip_b64(&mut entry0(v)["inclusionPromise"]["signedEntryTimestamp"])
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &rs_dsse_signer());
    assert_fails(&v, Reason::SetInvalid);
    // Moving the integrated time breaks the SET too.
    let json = mutate(RS_DSSE, |v| {
        entry0(v)["integratedTime"] = "1668034837".into()
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &rs_dsse_signer());
    assert_fails(&v, Reason::SetInvalid);
}

#[test]
fn v02_bundle_without_inclusion_proof_is_rejected() {
    let json = mutate(NPM_BUNDLE, |v| {
        entry0(v).as_object_mut().unwrap().remove("inclusionProof");
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &npm_signer());
    assert_fails(&v, Reason::MissingInclusionProof);
}

#[test]
fn bundle_without_tlog_entry_is_rejected() {
    let json = mutate(NPM_BUNDLE, |v| {
        v["verificationMaterial"]["tlogEntries"] = Value::Array(vec![]);
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &npm_signer());
    assert_fails(&v, Reason::MissingTlogEntry);
}

#[test]
fn production_root_does_not_trust_the_staging_bundle() {
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &read(STAGING_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &staging_signer(),
    );
    assert_fails(&v, Reason::UnknownLog);
}

#[test]
fn staging_root_does_not_trust_a_production_certificate() {
    // Same log key trusted, but the Fulcio CA is staging's: the chain must fail. Build a root
    // with production's Rekor and TSA and staging's Fulcio.
    let mut mixed = public_good();
    mixed.certificate_authorities = staging().certificate_authorities;
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &mixed,
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::UntrustedCertificate);
}

#[test]
fn certificate_outside_its_validity_at_the_signing_time_fails() {
    let parsed = Bundle::from_json(&read(NEW_BUNDLE)).unwrap();
    let leaf = parsed.material.leaf().unwrap().clone();
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let after = leaf.not_after() + time::Duration::minutes(1);
    let v = bundle(
        &parsed,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer().at_time(after),
    );
    assert_fails(&v, Reason::CertificateExpired);
    let before = leaf.not_before() - time::Duration::minutes(1);
    let v = bundle(
        &parsed,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer().at_time(before),
    );
    assert_fails(&v, Reason::CertificateNotYetValid);
    // Inside the window it still verifies, so the two failures above are about time only.
    let inside = leaf.not_before() + time::Duration::minutes(1);
    assert_verified(&bundle(
        &parsed,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer().at_time(inside),
    ));
}

#[test]
fn swapped_certificate_fails_as_signature_invalid() {
    // Replace the npm bundle's certificate with the sigstore-rs one: the DSSE signature then
    // fails first, proving the signature is checked with the bundle's own key.
    let other = {
        let v: Value = serde_json::from_slice(&read(RS_DSSE)).unwrap();
        v["verificationMaterial"]["x509CertificateChain"]["certificates"][0].clone()
    };
    let json = mutate(NPM_BUNDLE, |v| {
        v["verificationMaterial"]["x509CertificateChain"]["certificates"][0] = other;
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &npm_signer());
    assert_fails(&v, Reason::SignatureInvalid);
}

#[test]
fn tlog_entry_from_another_bundle_fails_as_tlog_entry_mismatch() {
    // A genuine entry (with genuine SET) of another DSSE signing, grafted onto this bundle.
    let foreign = {
        let v: Value = serde_json::from_slice(&read(RS_DSSE)).unwrap();
        v["verificationMaterial"]["tlogEntries"][0].clone()
    };
    let json = mutate(NPM_BUNDLE, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1".into();
        v["verificationMaterial"]["tlogEntries"][0] = foreign;
    });
    let v = verify_json(&json, Artifact::Any, &public_good(), &npm_signer());
    assert_fails(&v, Reason::TlogEntryMismatch);
}

#[test]
fn malformed_base64_is_a_reasoned_failure_and_not_json_is_an_error() {
    let json = mutate(NEW_BUNDLE, |v| {
        v["messageSignature"]["signature"] = "MEQC!!".into()
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::MalformedBundle);
    assert!(verify_bundle_json(
        b"{not json",
        Artifact::Any,
        &public_good(),
        &new_bundle_signer()
    )
    .is_err());
}

#[test]
fn truncated_bundles_never_panic() {
    let full = read(NEW_BUNDLE);
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let root = public_good();
    for cut in (0..full.len()).step_by(97) {
        let _ = verify_bundle_json(
            &full[..cut],
            Artifact::Bytes(&artifact),
            &root,
            &new_bundle_signer(),
        );
    }
}

// ---- cosign/ ----

fn a_txt_digest() -> Digest {
    // The conformance suite's a.txt, named by the managed-key bundle's (signed) Statement.
    let key = VerifyingKey::from_pem(&text(MANAGED_KEY)).unwrap();
    let v = verify_json(
        &read(MANAGED),
        Artifact::Any,
        &root(MANAGED_ROOT),
        &IdentityPolicy::key(key),
    );
    assert_verified(&v);
    let hex = v.statement.unwrap()["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    Digest::sha256_from_hex(&hex).unwrap()
}

#[test]
fn cve_2022_36056_swapped_entry_fails_as_tlog_entry_mismatch() {
    let d = a_txt_digest();
    let v = verify_legacy_cosign_bundle(
        &read(CVE),
        Artifact::Digest(&d),
        &public_good(),
        &cve_signer(),
    )
    .unwrap();
    assert_fails(&v, Reason::TlogEntryMismatch);
    // The signature itself was fine: the failure is the log binding, as the advisory says.
    assert!(
        v.check("signature").is_some_and(|c| c.ok),
        "{:#?}",
        v.checks
    );
}

fn keyless_sig_parts() -> (Vec<u8>, String, String, String, String) {
    (
        read(&format!("{KEYLESS_SIG}/simplesigning-payload.json")),
        text(&format!("{KEYLESS_SIG}/signature.b64")),
        text(&format!("{KEYLESS_SIG}/fulcio-cert.pem")),
        text(&format!("{KEYLESS_SIG}/fulcio-chain.pem")),
        text(&format!("{KEYLESS_SIG}/rekor-bundle-annotation.json")),
    )
}

const KEYLESS_DIGEST: &str =
    "sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f";

#[test]
fn containers_image_keyless_sig_verifies_for_its_digest() {
    let (payload, sig, cert, chain, bundle) = keyless_sig_parts();
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        certificate_pem: Some(&cert),
        chain_pem: Some(&chain),
        rekor_bundle: Some(&bundle),
    };
    let p = IdentityPolicy::keyless(
        Matcher::exact("mitr@redhat.com"),
        Matcher::exact("https://github.com/login/oauth"),
    );
    let d = Digest::parse(KEYLESS_DIGEST).unwrap();
    let v = simple_signing(&layer, &d, &public_good(), &p);
    assert_verified(&v);
    assert!(v.check("image-digest").is_some_and(|c| c.ok));
}

#[test]
fn containers_image_keyless_sig_rejects_another_digest() {
    let (payload, sig, cert, chain, bundle) = keyless_sig_parts();
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        certificate_pem: Some(&cert),
        chain_pem: Some(&chain),
        rekor_bundle: Some(&bundle),
    };
    let other = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
    let v = simple_signing(&layer, &other, &public_good(), &keyless_sig_signer());
    assert_fails(&v, Reason::ImageDigestMismatch);
}

#[test]
fn containers_image_keyless_sig_rejects_tampering() {
    let (mut payload, sig, cert, chain, bundle) = keyless_sig_parts();
    let d = Digest::parse(KEYLESS_DIGEST).unwrap();
    // A payload edited to name the image differently no longer verifies.
    let pos = payload.iter().position(|b| *b == b'a').unwrap();
    payload[pos] = b'b';
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        certificate_pem: Some(&cert),
        chain_pem: Some(&chain),
        rekor_bundle: Some(&bundle),
    };
    assert_fails(
        &simple_signing(&layer, &d, &public_good(), &keyless_sig_signer()),
        Reason::SignatureInvalid,
    );
    // Without the Rekor bundle there is no signing time and no log evidence.
    let (payload, ..) = keyless_sig_parts();
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        certificate_pem: Some(&cert),
        chain_pem: Some(&chain),
        rekor_bundle: None,
    };
    assert_fails(
        &simple_signing(&layer, &d, &public_good(), &keyless_sig_signer()),
        Reason::MissingTlogEntry,
    );
}

#[test]
fn att_layout_verifies_for_the_image_digest() {
    let d =
        Digest::parse("sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2")
            .unwrap();
    let p = IdentityPolicy::keyless(
        Matcher::regex(r"^https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/generator_container_slsa3\.yml@refs/heads/main$").unwrap(),
        Matcher::exact(GITHUB_ISSUER),
    );
    let v = verify_oci_layout(&fixtures().join(ATT_LAYOUT), &d, &p, &public_good()).unwrap();
    assert_verified(&v);
    assert_eq!(
        v.statement.as_ref().unwrap()["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
}

#[test]
fn att_layout_rejects_another_image_digest() {
    let other = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
    let v = verify_oci_layout(
        &fixtures().join(ATT_LAYOUT),
        &other,
        &att_layout_signer(),
        &public_good(),
    )
    .unwrap();
    assert_fails(&v, Reason::SubjectMismatch);
}

// ---- key-based cosign signatures (a key made here: no private key ships in the fixtures) ----

struct TestKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    public: VerifyingKey,
}

fn test_key() -> TestKey {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for id-ecPublicKey / prime256v1 (RFC 5480) around the point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(pair.public_key().as_ref());
    let public = VerifyingKey::from_spki_der(&spki).unwrap();
    TestKey { pair, public }
}

fn sign_b64(key: &TestKey, message: &[u8]) -> String {
    use base64::Engine;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = key.pair.sign(&rng, message).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
}

fn simple_signing_payload(digest: &str, ty: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"registry.example/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{ty}"}},"optional":null}}"#
    )
    .into_bytes()
}

#[test]
fn key_based_simple_signing_verifies_and_checks_the_digest() {
    let key = test_key();
    let d = Digest::parse(KEYLESS_DIGEST).unwrap();
    let payload = simple_signing_payload(KEYLESS_DIGEST, "cosign container image signature");
    let sig = sign_b64(&key, &payload);
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        ..CosignSignature::default()
    };
    let p = IdentityPolicy::key(key.public.clone());
    let v = simple_signing(&layer, &d, &public_good(), &p);
    assert_verified(&v);
    assert!(matches!(
        v.signer,
        Some(lineage_sigstore::Signer::Key { .. })
    ));

    let other = Digest::parse(&format!("sha256:{}", "2".repeat(64))).unwrap();
    assert_fails(
        &simple_signing(&layer, &other, &public_good(), &p),
        Reason::ImageDigestMismatch,
    );

    let stranger = test_key();
    let v = simple_signing(
        &layer,
        &d,
        &public_good(),
        &IdentityPolicy::key(stranger.public),
    );
    assert_fails(&v, Reason::SignatureInvalid);

    // Keyless policy for a key-signed layer: the key must be supplied.
    assert_fails(
        &simple_signing(&layer, &d, &public_good(), &no_policy()),
        Reason::KeyRequired,
    );
}

#[test]
fn key_based_simple_signing_rejects_a_payload_of_another_type() {
    let key = test_key();
    let d = Digest::parse(KEYLESS_DIGEST).unwrap();
    let payload = simple_signing_payload(KEYLESS_DIGEST, "atomic container signature");
    let sig = sign_b64(&key, &payload);
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        ..CosignSignature::default()
    };
    let v = simple_signing(&layer, &d, &public_good(), &IdentityPolicy::key(key.public));
    assert_fails(&v, Reason::PayloadInvalid);
}

// ---- time sources and trust windows ----

/// Issue 16: a time-stamp that does not verify (here: another signing's) is set aside when the
/// verified times meet the threshold (the SET), as the reference clients do; when it is the
/// only time source left, the bundle fails for it.
#[test]
fn timestamp_from_another_signing_is_set_aside_unless_it_is_needed() {
    let foreign = {
        let v: Value = serde_json::from_slice(&read(KUBEWARDEN)).unwrap();
        v["verificationMaterial"]["timestampVerificationData"].clone()
    };
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let json = mutate(NEW_BUNDLE, |v| {
        v["verificationMaterial"]["timestampVerificationData"] = foreign.clone();
    });
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_verified(&v);
    assert!(
        v.checks
            .iter()
            .any(|c| c.name == "timestamp" && c.detail.contains("set aside")),
        "{:#?}",
        v.checks
    );

    // The staging Rekor v2 bundle has no SET: its own time-stamp is what counts, and a
    // foreign one beside it is set aside.
    let staging_artifact = read(STAGING_ARTIFACT);
    let json = mutate(STAGING_BUNDLE, |v| {
        let own =
            v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0].clone();
        let theirs = foreign["rfc3161Timestamps"][0].clone();
        v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
            serde_json::json!([theirs, own]);
    });
    let v = verify_json(
        &json,
        Artifact::Bytes(&staging_artifact),
        &staging(),
        &staging_signer(),
    );
    assert_verified(&v);

    // Alone, the foreign time-stamp leaves no verified time.
    let json = mutate(STAGING_BUNDLE, |v| {
        v["verificationMaterial"]["timestampVerificationData"] = foreign.clone();
    });
    let v = verify_json(
        &json,
        Artifact::Bytes(&staging_artifact),
        &staging(),
        &staging_signer(),
    );
    assert_fails(&v, Reason::TimestampInvalid);
}

#[test]
fn timestamp_without_a_trusted_authority_fails() {
    let mut root = staging();
    root.timestamp_authorities.clear();
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &read(STAGING_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &staging_signer(),
    );
    assert_fails(&v, Reason::TimestampInvalid);
}

#[test]
fn rekor_v2_without_any_time_source_has_no_signing_time() {
    let json = mutate(STAGING_BUNDLE, |v| {
        v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
            Value::Array(vec![]);
    });
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &staging(),
        &staging_signer(),
    );
    assert_fails(&v, Reason::NoSigningTime);
}

#[test]
fn rekor_v2_log_key_outside_its_window_fails() {
    let mut root = staging();
    let log = root
        .tlogs
        .iter_mut()
        .find(|l| l.base_url.contains("log2025-alpha1"))
        .unwrap();
    log.valid_for.end = Some(log.valid_for.start.unwrap());
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &read(STAGING_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &staging_signer(),
    );
    assert_fails(&v, Reason::LogKeyNotValid);
}

#[test]
fn fulcio_ca_outside_its_window_is_not_trusted() {
    let mut root = public_good();
    for ca in &mut root.certificate_authorities {
        ca.valid_for.end = Some(time::macros::datetime!(2023-01-01 00:00 UTC));
    }
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::UntrustedCertificate);
    assert!(
        v.failure()
            .unwrap()
            .detail
            .contains("no certificate authority"),
        "{:?}",
        v.failure()
    );
}

// ---- the report is a serializable value with stable codes ----

#[test]
fn verification_serializes_with_stable_reason_codes() {
    let d = a_txt_digest();
    let v = verify_legacy_cosign_bundle(
        &read(CVE),
        Artifact::Digest(&d),
        &public_good(),
        &cve_signer(),
    )
    .unwrap();
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["verified"], false);
    let failed: Vec<&Value> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "tlog-entry-mismatch");
    assert_eq!(failed[0]["name"], "tlog-entry");
}

// ---- OCI layout integrity ----

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let mut perm = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&target, perm).unwrap();
        }
    }
}

#[test]
fn att_layout_with_a_tampered_blob_fails() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(ATT_LAYOUT), tmp.path());
    let layer = tmp
        .path()
        .join("blobs/sha256/a2ece3a040c3cc7a511e60ef56bc2bfac79118e207e6297aaeaf9aa8fec5c015");
    let mut bytes = std::fs::read(&layer).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    std::fs::write(&layer, bytes).unwrap();
    let d =
        Digest::parse("sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2")
            .unwrap();
    let v = verify_oci_layout(tmp.path(), &d, &att_layout_signer(), &public_good()).unwrap();
    assert_fails(&v, Reason::MalformedBundle);
}

#[test]
fn layout_without_cosign_manifests_has_nothing_to_verify() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let d = Digest::parse(KEYLESS_DIGEST).unwrap();
    let v = verify_oci_layout(tmp.path(), &d, &no_policy(), &public_good()).unwrap();
    assert_fails(&v, Reason::NoSignature);
    assert!(verify_oci_layout(
        &tmp.path().join("missing"),
        &d,
        &no_policy(),
        &public_good()
    )
    .is_err());
}

#[test]
fn two_signature_bundle_parses_but_does_not_verify() {
    let b = Bundle::from_json(&read(RS_DSSE_2SIGS)).unwrap();
    match &b.content {
        lineage_sigstore::bundle::Content::Dsse(env) => assert_eq!(env.signatures.len(), 2),
        other => panic!("unexpected content {other:?}"),
    }
    assert_fails(
        &bundle(&b, Artifact::Any, &public_good(), &rs_dsse_signer()),
        Reason::WrongSignatureCount,
    );
}

// ---- keyless verification needs an identity policy ----

fn identity_only(p: IdentityPolicy) -> IdentityPolicy {
    IdentityPolicy { issuer: None, ..p }
}

fn issuer_only(p: IdentityPolicy) -> IdentityPolicy {
    IdentityPolicy {
        identity: None,
        ..p
    }
}

/// A verifier under test, with its "could not decide" narrowed to the policy's refusal.
type Verifier<'a> = Box<dyn Fn(&IdentityPolicy) -> Result<Verification, PolicyError> + 'a>;

fn bundle_refusal(r: Result<Verification, BundleError>) -> Result<Verification, PolicyError> {
    match r {
        Err(BundleError::Policy(e)) => Err(e),
        other => Ok(other.expect("decidable apart from the policy")),
    }
}

fn cosign_refusal(r: Result<Verification, CosignError>) -> Result<Verification, PolicyError> {
    match r {
        Err(CosignError::Policy(e)) => Err(e),
        other => Ok(other.expect("decidable apart from the policy")),
    }
}

fn bundle_verifier<'a>(
    rel: &'static str,
    artifact: Artifact<'a>,
    root: &'a TrustedRoot,
) -> Verifier<'a> {
    Box::new(move |p| bundle_refusal(verify_bundle_json(&read(rel), artifact, root, p)))
}

#[test]
fn every_certificate_signed_format_refuses_a_policy_without_identity_and_issuer() {
    let root = public_good();
    let new_artifact = read(NEW_BUNDLE_ARTIFACT);
    let kubewarden = kubewarden_digest();
    let a_txt = a_txt_digest();
    let (payload, sig, cert, chain, rekor) = keyless_sig_parts();
    let layer = CosignSignature {
        blob: &payload,
        signature_b64: Some(&sig),
        certificate_pem: Some(&cert),
        chain_pem: Some(&chain),
        rekor_bundle: Some(&rekor),
    };
    let image = Digest::parse(KEYLESS_DIGEST).unwrap();
    let att_image =
        Digest::parse("sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2")
            .unwrap();
    let cases: Vec<(&str, IdentityPolicy, Verifier<'_>)> = vec![
        (
            "bundle v0.3 message signature",
            new_bundle_signer(),
            bundle_verifier(NEW_BUNDLE, Artifact::Bytes(&new_artifact), &root),
        ),
        (
            "bundle v0.3 DSSE",
            kubewarden_signer(),
            bundle_verifier(KUBEWARDEN, Artifact::Digest(&kubewarden), &root),
        ),
        (
            "bundle v0.2 certificate chain",
            npm_signer(),
            bundle_verifier(NPM_BUNDLE, Artifact::Any, &root),
        ),
        (
            "bundle v0.1 certificate chain",
            rs_dsse_signer(),
            bundle_verifier(RS_DSSE, Artifact::Any, &root),
        ),
        (
            "cosign sign-blob --bundle",
            cve_signer(),
            Box::new(|p| {
                let d = Artifact::Digest(&a_txt);
                cosign_refusal(verify_legacy_cosign_bundle(&read(CVE), d, &root, p))
            }),
        ),
        (
            "cosign .sig layer",
            keyless_sig_signer(),
            Box::new(|p| verify_cosign_simple_signing(&layer, &image, &root, p)),
        ),
        (
            "cosign save layout with an .att layer",
            att_layout_signer(),
            Box::new(|p| {
                let dir = fixtures().join(ATT_LAYOUT);
                cosign_refusal(verify_oci_layout(&dir, &att_image, p, &root))
            }),
        ),
    ];
    for (what, full, verify) in cases {
        // The fixture's own signer is decidable (the CVE case then fails on its log entry).
        assert!(verify(&full).is_ok(), "{what}: the full policy must decide");
        assert_eq!(
            verify(&no_policy()).map(|v| v.checks),
            Err(PolicyError::MissingIdentityAndIssuer),
            "{what}"
        );
        assert_eq!(
            verify(&identity_only(full.clone())).map(|v| v.checks),
            Err(PolicyError::MissingIssuer),
            "{what}"
        );
        assert_eq!(
            verify(&issuer_only(full.clone())).map(|v| v.checks),
            Err(PolicyError::MissingIdentity),
            "{what}"
        );
    }
}

#[test]
fn key_signed_material_needs_no_identity_policy_and_a_wrong_identity_is_a_failure() {
    // A managed key decides alone: no identity, no issuer, and a half policy is not consulted.
    let key = VerifyingKey::from_pem(&text(MANAGED_KEY)).unwrap();
    for p in [
        IdentityPolicy::key(key.clone()),
        identity_only(IdentityPolicy {
            key: Some(key.clone()),
            ..new_bundle_signer()
        }),
    ] {
        assert_verified(&verify_json(
            &read(MANAGED),
            Artifact::Any,
            &root(MANAGED_ROOT),
            &p,
        ));
    }
    // Without its key the key-signed bundle is a failed verification, not a policy error.
    let v = verify_bundle_json(
        &read(MANAGED),
        Artifact::Any,
        &root(MANAGED_ROOT),
        &no_policy(),
    );
    assert_fails(&v.unwrap(), Reason::KeyRequired);
    // A complete policy naming someone else decides: a failed verification, never `Err`.
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_bundle_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &signed_by("mallory@example.com", GITHUB_OAUTH),
    );
    assert_fails(&v.unwrap(), Reason::IdentityMismatch);
    // The half policy that names the right signer is still refused: both halves are needed.
    let v = verify_bundle_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &identity_only(new_bundle_signer()),
    );
    assert!(
        matches!(v, Err(BundleError::Policy(PolicyError::MissingIssuer))),
        "{v:?}"
    );
}

// ---- issue 16: what the reference clients accept ----

/// npm provenance names its subject by sha512 only; the README lists sha512 digests as
/// accepted. Before, any non-sha256 `--artifact-digest` was refused.
#[test]
fn sha512_artifact_digest_matches_an_npm_subject() {
    let statement: Value = serde_json::from_slice(&read(
        "slsa/npm.sigstore-3.1.0.statement-v1.slsa-v1.github-actions.json",
    ))
    .unwrap();
    let sha512 = statement["subject"][0]["digest"]["sha512"]
        .as_str()
        .unwrap();
    let digest = Digest::parse(&format!("sha512:{sha512}")).unwrap();
    let v = verify_json(
        &read(NPM_BUNDLE),
        Artifact::Digest(&digest),
        &public_good(),
        &npm_signer(),
    );
    assert_verified(&v);
    assert!(v.check("subject").unwrap().detail.contains("sha512:"));

    let other = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
    let v = verify_json(
        &read(NPM_BUNDLE),
        Artifact::Digest(&other),
        &public_good(),
        &npm_signer(),
    );
    assert_fails(&v, Reason::SubjectMismatch);
}

/// A private deployment names its logs as it likes: the checkpoint's origin is bound by the
/// trusted root's log entry (its key, and for C2SP logs the key ID over the name), never by
/// the `baseUrl`. Before, any `baseUrl` whose host was not the origin failed the checkpoint.
#[test]
fn checkpoint_origin_comes_from_the_log_entry_not_the_base_url() {
    let mut root = public_good();
    for log in &mut root.tlogs {
        log.base_url = "https://transparency.internal.example:8443/rekor".into();
    }
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &new_bundle_signer(),
    );
    assert_verified(&v);

    let mut root = staging();
    for log in &mut root.tlogs {
        log.base_url = "https://tlog.private.example".into();
    }
    let artifact = read(STAGING_ARTIFACT);
    let v = verify_json(
        &read(STAGING_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &staging_signer(),
    );
    assert_verified(&v);

    // The name still binds for a C2SP log: a checkpoint whose origin line differs from the
    // name its signature is under fails.
    let json = mutate(STAGING_BUNDLE, |v| {
        let cp = entry0(v)["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap()
            .replacen(
                "log2025-alpha1.rekor.sigstage.dev\n",
                "rekor.elsewhere.example\n",
                1,
            );
        entry0(v)["inclusionProof"]["checkpoint"]["envelope"] = cp.into();
    });
    let v = verify_json(
        &json,
        Artifact::Bytes(&artifact),
        &staging(),
        &staging_signer(),
    );
    assert_fails(&v, Reason::CheckpointInvalid);
}

/// A P-384 certificate that signed a SHA-256 digest (the bundle says `SHA2_256`): the hash is
/// the bundle's, not the key's usual one. The conformance case `bundle-with-root-cert_fail`
/// is such a bundle; before, its signature was reported invalid.
#[test]
fn p384_certificate_signature_uses_the_bundles_digest_algorithm() {
    let dir = "sigstore-conformance/bundle-verify/bundle-with-root-cert_fail";
    let artifact = read(&format!("{dir}/artifact"));
    let v = verify_json(
        &read(&format!("{dir}/bundle.sigstore.json")),
        Artifact::Bytes(&artifact),
        &public_good(),
        &signed_by("x", "y"),
    );
    assert!(
        v.check("signer").unwrap().detail.contains("p384"),
        "{:#?}",
        v.checks
    );
    assert!(
        v.check("signature").is_some_and(|c| c.ok),
        "{:#?}",
        v.checks
    );
    // The bundle still fails, for its inclusion proof that no checkpoint vouches for.
    assert_fails(&v, Reason::CheckpointInvalid);
}

/// An algorithm the verifier cannot compute is "could not decide", listing the supported
/// ones, never a bad signature.
#[test]
fn unsupported_message_digest_algorithm_is_an_error_naming_the_supported_ones() {
    let json = mutate(NEW_BUNDLE, |v| {
        v["messageSignature"]["messageDigest"]["algorithm"] = "SHA3_256".into();
    });
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let e = verify_bundle_json(
        &json,
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    )
    .unwrap_err();
    assert!(matches!(e, BundleError::UnsupportedAlgorithm { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "bundle field `messageSignature.messageDigest.algorithm`: algorithm `SHA3_256` is not supported (supported: SHA2_256, SHA2_384, SHA2_512)"
    );
}

/// A `validFor` without its required `start` is a malformed trusted root, not an unbounded
/// window (conformance `trust-root-tlog-missing-validity-start_fail`).
#[test]
fn trusted_root_time_range_without_start_is_refused() {
    let mut v: Value =
        serde_json::from_slice(&read("sigstore-bundle/sigstore-staging.trusted_root.json"))
            .unwrap();
    v["tlogs"][1]["publicKey"]["validFor"]
        .as_object_mut()
        .unwrap()
        .remove("start");
    let e = TrustedRoot::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(e.to_string().contains("validFor.start"), "{e}");
    assert!(e.to_string().contains("log2025-alpha1"), "{e}");
}

/// The trusted root's CT logs are used: a leaf whose SCT no listed CT log signed fails
/// (conformance `invalid-ct-key_fail`), and one whose SCT verifies says which log signed it.
#[test]
fn embedded_scts_are_checked_against_the_trusted_roots_ct_logs() {
    let artifact = read(NEW_BUNDLE_ARTIFACT);
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &public_good(),
        &new_bundle_signer(),
    );
    assert_verified(&v);
    assert!(
        v.check("sct").unwrap().detail.contains("ctfe.sigstore.dev"),
        "{:#?}",
        v.checks
    );
    let mut root = public_good();
    root.ctlogs = staging().ctlogs;
    let v = verify_json(
        &read(NEW_BUNDLE),
        Artifact::Bytes(&artifact),
        &root,
        &new_bundle_signer(),
    );
    assert_fails(&v, Reason::SctInvalid);
}

// ---- fuzzing: every parser of untrusted input, on mutated real material ----
//
// cargo-fuzz needs a nightly toolchain, which this project does not use; these proptest
// properties are the fuzz targets instead. Each starts from real material (bundles, trusted
// roots, certificates, RFC 3161 tokens, SCT lists, Rekor bodies, checkpoints), applies random
// byte edits, insertions and truncations, and requires the parser (and the verifier behind it)
// to return, never panic; a short run is part of the test suite. A long run:
// `LINEAGE_FUZZ_CASES=200000 cargo test -p lineage-sigstore --test sigstore fuzz_`.

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn cases() -> u32 {
        std::env::var("LINEAGE_FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200)
    }

    /// One edit: overwrite, insert or delete a byte at a position (taken modulo the length),
    /// or cut the input there.
    #[derive(Debug, Clone)]
    enum Edit {
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
    }

    fn edits() -> impl Strategy<Value = Vec<Edit>> {
        prop::collection::vec(
            prop_oneof![
                4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
                2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
                2 => any::<usize>().prop_map(Edit::Delete),
                1 => any::<usize>().prop_map(Edit::Truncate),
            ],
            1..6,
        )
    }

    fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for e in edits {
            let n = v.len().max(1);
            match *e {
                Edit::Set(i, b) if !v.is_empty() => v[i % n] = b,
                Edit::Insert(i, b) => v.insert(i % (v.len() + 1), b),
                Edit::Delete(i) if !v.is_empty() => {
                    v.remove(i % n);
                }
                Edit::Truncate(i) => v.truncate(i % n),
                _ => {}
            }
        }
        v
    }

    struct Seeds {
        bundles: Vec<Vec<u8>>,
        root: Vec<u8>,
        certs: Vec<Vec<u8>>,
        tokens: Vec<Vec<u8>>,
        scts: Vec<Vec<u8>>,
        bodies: Vec<(Vec<u8>, String, String)>,
        checkpoints: Vec<Vec<u8>>,
    }

    fn seeds() -> &'static Seeds {
        static SEEDS: OnceLock<Seeds> = OnceLock::new();
        SEEDS.get_or_init(|| {
            let bundles: Vec<Vec<u8>> =
                [NEW_BUNDLE, STAGING_BUNDLE, NPM_BUNDLE, KUBEWARDEN, MANAGED]
                    .iter()
                    .map(|b| read(b))
                    .collect();
            let parsed: Vec<Bundle> = bundles
                .iter()
                .map(|b| Bundle::from_json(b).unwrap())
                .collect();
            let certs: Vec<Vec<u8>> = parsed
                .iter()
                .filter_map(|b| b.material.leaf().map(|c| c.der().to_vec()))
                .collect();
            let scts = certs
                .iter()
                .filter_map(|c| {
                    lineage_sigstore::x509::Certificate::from_der(c)
                        .unwrap()
                        .extension("1.3.6.1.4.1.11129.2.4.2")
                        .map(|e| e.value.clone())
                })
                .collect();
            let tokens = parsed
                .iter()
                .flat_map(|b| b.rfc3161_timestamps.clone())
                .collect();
            let bodies = parsed
                .iter()
                .flat_map(|b| b.tlog_entries.clone())
                .map(|e| (e.canonicalized_body, e.kind, e.version))
                .collect();
            let checkpoints = parsed
                .iter()
                .flat_map(|b| b.tlog_entries.clone())
                .filter_map(|e| e.inclusion_proof.and_then(|p| p.checkpoint))
                .map(String::into_bytes)
                .collect();
            Seeds {
                bundles,
                root: read("sigstore-bundle/sigstore-public-good.trusted_root.json"),
                certs,
                tokens,
                scts,
                bodies,
                checkpoints,
            }
        })
    }

    fn pick<T>(v: &[T], i: usize) -> &T {
        &v[i % v.len()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        /// Bundles: parsing and full verification of mutated bundles never panic.
        #[test]
        fn fuzz_bundles(i in any::<usize>(), e in edits()) {
            let json = apply(&pick::<Vec<u8>>(&seeds().bundles, i)[..], &e);
            let artifact = read(NEW_BUNDLE_ARTIFACT);
            let _ = verify_bundle_json(&json, Artifact::Bytes(&artifact), &public_good(), &new_bundle_signer());
            let _ = verify_bundle_json(&json, Artifact::Any, &staging(), &staging_signer());
        }

        /// Trusted roots.
        #[test]
        fn fuzz_trusted_roots(e in edits()) {
            let _ = TrustedRoot::from_json(&apply(&seeds().root, &e));
        }

        /// Certificates (x509-cert), and the path validation and extensions read from them.
        #[test]
        fn fuzz_certificates(i in any::<usize>(), e in edits()) {
            let der = apply(&pick::<Vec<u8>>(&seeds().certs, i)[..], &e);
            if let Ok(c) = lineage_sigstore::x509::Certificate::from_der(&der) {
                let _ = c.subject_alt_names();
                let _ = c.fulcio_issuer();
                let _ = c.public_key();
                let root = public_good();
                for ca in &root.certificate_authorities {
                    let _ = lineage_sigstore::x509::validate_path(
                        &c, &ca.chain, c.not_before(), lineage_sigstore::x509::Purpose::CodeSigning);
                }
                let _ = lineage_sigstore::sct::verify(&der, c.der(), &root.ctlogs);
            }
        }

        /// SCT lists (x509-cert's TLS decoding).
        #[test]
        fn fuzz_sct_lists(i in any::<usize>(), e in edits()) {
            let _ = lineage_sigstore::sct::parse_list(&apply(&pick::<Vec<u8>>(&seeds().scts, i)[..], &e));
        }

        /// RFC 3161 tokens (cms, x509-tsp) and their verification.
        #[test]
        fn fuzz_timestamps(i in any::<usize>(), e in edits()) {
            if let Ok(t) = lineage_sigstore::tsa::TimestampToken::parse(&apply(&pick::<Vec<u8>>(&seeds().tokens, i)[..], &e)) {
                let _ = t.verify(&public_good());
            }
        }

        /// Rekor entry bodies.
        #[test]
        fn fuzz_rekor_bodies(i in any::<usize>(), e in edits()) {
            let (body, kind, version) = pick(&seeds().bodies, i);
            let _ = lineage_sigstore::rekor::EntryBody::parse(&apply(body, &e), kind, version);
        }

        /// Checkpoints and signed notes (lineage-log), and their verification by a trusted log.
        #[test]
        fn fuzz_checkpoints(i in any::<usize>(), e in edits()) {
            let bytes = apply(&pick::<Vec<u8>>(&seeds().checkpoints, i)[..], &e);
            let _ = lineage_log::note::Note::parse_bytes(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = lineage_log::checkpoint::Checkpoint::parse(text);
                for log in public_good().tlogs.iter().chain(staging().tlogs.iter()) {
                    let _ = lineage_sigstore::checkpoint::verify(text, log);
                }
            }
        }

        /// Notation JWS envelopes and trust policies.
        #[test]
        fn fuzz_notation(which in 0usize..5, e in edits()) {
            use lineage_sigstore::notation::{verify_notation, Subject, TrustPolicyDocument, TrustStore, JWS_MEDIA_TYPE};
            static STORE: OnceLock<TrustStore> = OnceLock::new();
            let store = STORE.get_or_init(|| TrustStore::from_dir(&fixtures().join("notation/truststore")).unwrap());
            let file = [
                "notation-go.ca_valid_sig_env.jws.json",
                "notation-go.timestampBeforeNotBefore.jws.sig",
                "notation-go.ca_expired_sig_env.jws.json",
                "notation-go.coseWithTimestamp.sig",
                "notation-go.example_localVerify.cose.sig",
            ][which];
            let media_type = if which >= 3 { "application/cose" } else { JWS_MEDIA_TYPE };
            let policy = br#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict","verifyTimestamp":"always"},"trustStores":["ca:valid-trust-store","tsa:test-timestamp"],"trustedIdentities":["*"]}]}"#;
            let doc = TrustPolicyDocument::from_json(policy).unwrap();
            let _ = TrustPolicyDocument::from_json(&apply(policy, &e));
            let envelope = apply(&read(&format!("notation/{file}")), &e);
            let _ = verify_notation(&envelope, media_type, Subject { repository: "r", digest: "sha256:00" }, &doc, store, time::OffsetDateTime::now_utc());
        }

        /// Arbitrary bytes into every parser.
        #[test]
        fn fuzz_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Bundle::from_json(&bytes);
            let _ = TrustedRoot::from_json(&bytes);
            let _ = lineage_sigstore::x509::Certificate::from_der(&bytes);
            let _ = lineage_sigstore::tsa::TimestampToken::parse(&bytes);
            let _ = lineage_sigstore::sct::parse_list(&bytes);
            let _ = lineage_sigstore::keys::from_spki_der(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = lineage_sigstore::keys::from_pem(s);
                let _ = lineage_sigstore::x509::Certificate::all_from_pem(s);
            }
        }
    }
}

/// Found by `fuzz_arbitrary_bytes`: `x509-cert` 0.2.5's `load_pem_chain` panics (integer
/// underflow) on empty input; certificate PEM is read block by block instead.
#[test]
fn empty_or_blockless_certificate_pem_is_an_error_not_a_panic() {
    use lineage_sigstore::x509::Certificate;
    for input in ["", "\n", "-----BEGIN CERTIFICATE-----", "no pem here"] {
        assert!(Certificate::all_from_pem(input).is_err(), "{input:?}");
    }
    let chain = text("cosign/containers-image-keyless-sig/fulcio-chain.pem");
    assert!(Certificate::all_from_pem(&chain).unwrap().len() >= 2);
}

// ---- Notation (Notary Project) signatures: notation/README.md's outcome table ----

mod notation {
    use super::*;
    use lineage_sigstore::notation::{
        verify_notation, NotationVerification, Subject, TrustPolicyDocument, TrustStore,
        JWS_MEDIA_TYPE,
    };
    use serde_json::json;

    const P1_REPO: &str = "registry.acme-rockets.io/software/net-monitor";
    const P1_DIGEST: &str =
        "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
    const P3_DIGEST: &str =
        "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda";
    const ROOT_SUBJECT: &str = "x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US";

    fn store() -> TrustStore {
        TrustStore::from_dir(&fixtures().join("notation/truststore")).unwrap()
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    /// A one-policy document.
    fn policy(
        level: &str,
        stores: &[&str],
        identities: &[&str],
        extra: Value,
    ) -> TrustPolicyDocument {
        let mut verification = json!({ "level": level });
        if let Value::Object(m) = extra {
            verification.as_object_mut().unwrap().extend(m);
        }
        let doc = json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "test",
                "registryScopes": [P1_REPO, "*"],
                "signatureVerification": verification,
                "trustStores": stores,
                "trustedIdentities": identities,
            }]
        });
        TrustPolicyDocument::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    fn p1(level: &str) -> TrustPolicyDocument {
        policy(
            level,
            &["ca:valid-trust-store", "signingAuthority:valid-trust-store"],
            &[ROOT_SUBJECT],
            json!({}),
        )
    }

    fn p3(stores: &[&str]) -> TrustPolicyDocument {
        policy(
            "strict",
            stores,
            &["*"],
            json!({ "verifyTimestamp": "always" }),
        )
    }

    fn verify(file: &str, digest: &str, doc: &TrustPolicyDocument) -> NotationVerification {
        verify_notation(
            &read(&format!("notation/{file}")),
            JWS_MEDIA_TYPE,
            Subject {
                repository: P1_REPO,
                digest,
            },
            doc,
            &store(),
            now(),
        )
        .unwrap()
    }

    fn outcome(v: &NotationVerification, step: &str) -> (&'static str, Option<&'static str>) {
        let c = v
            .checks
            .iter()
            .find(|c| serde_json::to_value(c.step).unwrap() == step)
            .unwrap_or_else(|| panic!("no {step} check: {v:#?}"));
        (c.outcome, c.reason)
    }

    #[test]
    fn ca_valid_passes_p1_and_fails_with_another_store_or_identity() {
        let v = verify(
            "notation-go.ca_valid_sig_env.jws.json",
            P1_DIGEST,
            &p1("strict"),
        );
        assert!(v.verified, "{v:#?}");
        assert!(v.checks.iter().all(|c| c.outcome == "pass"), "{v:#?}");

        let untrusted = policy(
            "strict",
            &["ca:valid-trust-store-2"],
            &[ROOT_SUBJECT],
            json!({}),
        );
        let v = verify(
            "notation-go.ca_valid_sig_env.jws.json",
            P1_DIGEST,
            &untrusted,
        );
        assert!(!v.verified);
        assert_eq!(
            outcome(&v, "authenticity"),
            ("fail", Some("untrusted-certificate"))
        );
        assert!(v
            .failure()
            .unwrap()
            .detail
            .contains("does not contain any trusted certificate"));
        // At `audit`, authenticity is only logged.
        let audit = policy(
            "audit",
            &["ca:valid-trust-store-2"],
            &[ROOT_SUBJECT],
            json!({}),
        );
        let v = verify("notation-go.ca_valid_sig_env.jws.json", P1_DIGEST, &audit);
        assert!(v.verified, "{v:#?}");
        assert_eq!(
            outcome(&v, "authenticity"),
            ("logged", Some("untrusted-certificate"))
        );

        let other = policy(
            "strict",
            &["ca:valid-trust-store"],
            &["x509.subject:CN=LOL,O=DummyOrg,L=Hyderabad,ST=TG,C=IN"],
            json!({}),
        );
        let v = verify("notation-go.ca_valid_sig_env.jws.json", P1_DIGEST, &other);
        assert_eq!(
            outcome(&v, "authenticity"),
            ("fail", Some("identity-mismatch"))
        );

        // A signature for another artifact fails integrity.
        let v = verify(
            "notation-go.ca_valid_sig_env.jws.json",
            P3_DIGEST,
            &p1("strict"),
        );
        assert_eq!(
            outcome(&v, "integrity"),
            ("fail", Some("artifact-mismatch"))
        );
    }

    #[test]
    fn ca_invalid_fails_integrity_at_every_level_but_skip() {
        for level in ["strict", "permissive", "audit"] {
            let v = verify(
                "notation-go.ca_invalid_sig_env.jws.json",
                P1_DIGEST,
                &p1(level),
            );
            assert!(!v.verified, "{level}");
            assert_eq!(outcome(&v, "integrity").0, "fail", "{level}: {v:#?}");
        }
        let v = verify(
            "notation-go.ca_invalid_sig_env.jws.json",
            P1_DIGEST,
            &p1("skip"),
        );
        assert!(v.verified);
        assert!(v.checks.iter().all(|c| c.outcome == "skipped"));
    }

    #[test]
    fn ca_expired_fails_expiry_at_strict_and_is_logged_below() {
        let v = verify(
            "notation-go.ca_expired_sig_env.jws.json",
            P1_DIGEST,
            &p1("strict"),
        );
        assert_eq!(outcome(&v, "expiry"), ("fail", Some("signature-expired")));
        assert!(v.failure().unwrap().detail.contains("2022-07-29T23:59:00Z"));
        for level in ["permissive", "audit"] {
            let v = verify(
                "notation-go.ca_expired_sig_env.jws.json",
                P1_DIGEST,
                &p1(level),
            );
            assert!(v.verified, "{level}: {v:#?}");
            assert_eq!(outcome(&v, "expiry"), ("logged", Some("signature-expired")));
        }
    }

    #[test]
    fn p3_timestamps_before_not_before_and_missing_fail() {
        let v = verify(
            "notation-go.timestampBeforeNotBefore.jws.sig",
            P3_DIGEST,
            &p3(&["ca:valid-trust-store", "tsa:test-timestamp"]),
        );
        assert_eq!(
            outcome(&v, "authenticTimestamp"),
            ("fail", Some("certificate-not-yet-valid")),
            "{v:#?}"
        );
        assert!(v.failure().unwrap().detail.contains("2099-09-18"));
        // The same token under the wrong TSA root (DigiCert) is not trusted.
        let v = verify(
            "notation-go.timestampBeforeNotBefore.jws.sig",
            P3_DIGEST,
            &p3(&["ca:valid-trust-store", "tsa:test-mismatch"]),
        );
        assert_eq!(
            outcome(&v, "authenticTimestamp"),
            ("fail", Some("timestamp-untrusted")),
            "{v:#?}"
        );

        let v = verify(
            "notation-go.withoutTimestamp.jws.sig",
            P3_DIGEST,
            &p3(&["ca:valid-trust-store", "tsa:test-timestamp"]),
        );
        assert_eq!(
            outcome(&v, "authenticTimestamp"),
            ("fail", Some("timestamp-missing"))
        );
        assert_eq!(
            v.failure().unwrap().detail,
            "no timestamp countersignature was found in the signature envelope"
        );
        // Without a `tsa` store, the same envelope is judged at the verification time.
        let v = verify(
            "notation-go.withoutTimestamp.jws.sig",
            P3_DIGEST,
            &p3(&["ca:valid-trust-store"]),
        );
        assert!(v.verified, "{v:#?}");
    }

    fn verify_cose(
        file: &str,
        repository: &str,
        digest: &str,
        doc: &TrustPolicyDocument,
        store: &TrustStore,
    ) -> NotationVerification {
        verify_notation(
            &read(&format!("notation/{file}")),
            "application/cose",
            Subject { repository, digest },
            doc,
            store,
            now(),
        )
        .unwrap()
    }

    /// COSE_Sign1 envelopes: the P2 example, and the P3 time-stamped ones (README table).
    #[test]
    fn cose_envelopes_give_their_stated_outcomes() {
        let p2 = policy(
            "strict",
            &["ca:example-local-verify"],
            &["*"],
            json!({"override": {"revocation": "skip"}}),
        );
        let v = verify_cose(
            "notation-go.example_localVerify.cose.sig",
            "example/software",
            "sha256:c0d488a800e4127c334ad20d61d7bc21b4097540327217dfab52262adc02380c",
            &p2,
            &store(),
        );
        assert!(v.verified, "{v:#?}");
        assert_eq!(outcome(&v, "revocation").0, "skipped");

        let with_tsa = p3(&["ca:valid-trust-store", "tsa:test-timestamp"]);
        let v = verify_cose(
            "notation-go.coseWithTimestamp.sig",
            P1_REPO,
            P3_DIGEST,
            &with_tsa,
            &store(),
        );
        assert!(v.verified, "{v:#?}");
        assert_eq!(outcome(&v, "authenticTimestamp"), ("pass", None));
        let mismatch = p3(&["ca:valid-trust-store", "tsa:test-mismatch"]);
        let v = verify_cose(
            "notation-go.coseWithTimestamp.sig",
            P1_REPO,
            P3_DIGEST,
            &mismatch,
            &store(),
        );
        assert_eq!(
            outcome(&v, "authenticTimestamp"),
            ("fail", Some("timestamp-untrusted")),
            "{v:#?}"
        );

        // The expired signing certificate is rescued by the time-stamp. It is in no copied
        // store, so trust its own x5chain[0], as the README says.
        use ciborium::value::Value as C;
        let bytes = read("notation/notation-go.coseExpiredWithTimestamp.sig");
        let C::Tag(18, inner) = ciborium::from_reader::<C, _>(bytes.as_slice()).unwrap() else {
            panic!("not a COSE_Sign1")
        };
        let items = inner.as_array().unwrap().clone();
        let x5c0 = items[1]
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_integer() == Some(33.into()))
            .map(|(_, v)| match v {
                C::Array(a) => a[0].as_bytes().unwrap().clone(),
                other => other.as_bytes().unwrap().clone(),
            })
            .unwrap();
        let mut own = store();
        own.add(
            lineage_sigstore::notation::StoreKind::Ca,
            "expired-signer",
            vec![lineage_sigstore::x509::Certificate::from_der(&x5c0).unwrap()],
        );
        let expired = "notation-go.coseExpiredWithTimestamp.sig";
        let rescued = p3(&["ca:expired-signer", "tsa:test-timestamp"]);
        let v = verify_cose(expired, P1_REPO, P3_DIGEST, &rescued, &own);
        assert!(v.verified, "{v:#?}");
        let v = verify_cose(
            expired,
            P1_REPO,
            P3_DIGEST,
            &p3(&["ca:expired-signer"]),
            &own,
        );
        assert_eq!(
            outcome(&v, "authenticTimestamp"),
            ("fail", Some("certificate-expired")),
            "{v:#?}"
        );
        assert!(
            v.failure().unwrap().detail.contains("2024-06-18T07:30:31Z"),
            "{v:#?}"
        );
    }

    #[test]
    fn unknown_algorithms_are_errors_not_failures() {
        let mut env: Value =
            serde_json::from_slice(&read("notation/notation-go.ca_valid_sig_env.jws.json"))
                .unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut protected: Value =
            serde_json::from_slice(&b64.decode(env["protected"].as_str().unwrap()).unwrap())
                .unwrap();
        protected["alg"] = "RS256".into();
        env["protected"] = b64.encode(serde_json::to_vec(&protected).unwrap()).into();
        let e = verify_notation(
            &serde_json::to_vec(&env).unwrap(),
            JWS_MEDIA_TYPE,
            Subject {
                repository: P1_REPO,
                digest: P1_DIGEST,
            },
            &p1("strict"),
            &store(),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the envelope uses signature algorithm `RS256` (supported: PS256, PS384, PS512, ES256, ES384, ES512)"
        );
    }

    #[test]
    fn trust_policy_documents_are_checked() {
        for (doc, words) in [
            (
                json!({"version": "2.0", "trustPolicies": []}),
                "version `2.0`",
            ),
            (
                json!({"version": "1.0", "trustPolicies": [{"name": "a", "registryScopes": ["*"],
                    "signatureVerification": {"level": "lenient"}, "trustStores": ["ca:x"], "trustedIdentities": ["*"]}]}),
                "level `lenient`",
            ),
            (
                json!({"version": "1.0", "trustPolicies": [{"name": "a", "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"}, "trustStores": ["x509:x"], "trustedIdentities": ["*"]}]}),
                "trust store `x509:x`",
            ),
        ] {
            let e = TrustPolicyDocument::from_json(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
            assert!(e.to_string().contains(words), "{e}");
        }
    }
}
