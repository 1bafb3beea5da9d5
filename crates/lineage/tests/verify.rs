//! `lineage verify` against the reference clients' own test material, through the real binary.
//!
//! The Sigstore conformance suite (`sigstore-conformance/bundle-verify`, 70 cases) is the suite
//! every Sigstore client runs: a folder ending in `_fail` must not verify, any other must. The
//! table below also pins *why* each failing case fails (the stable reason code, or for input
//! Lineage refuses to judge, exit 2 and the words that name the bad input), so a case cannot
//! start passing its outcome for the wrong reason unnoticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What a case must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exit 0.
    Verified,
    /// Exit 1 with this reason code.
    Fails(&'static str),
    /// Exit 2 (could not decide: bad input), with an error containing these words.
    Refused(&'static str),
}

use Expect::{Fails, Refused, Verified};

/// Every case of the suite and its outcome. The reason is Lineage's first failed check.
const CASES: &[(&str, Expect)] = &[
    (
        "bundle-empty-certificate-chain_fail",
        Fails("malformed-bundle"),
    ),
    ("bundle-from-wrong-instance_fail", Fails("unknown-log")),
    (
        "bundle-invalid-base64-signature_fail",
        Fails("malformed-bundle"),
    ),
    ("bundle-malformed-json_fail", Refused("is not JSON")),
    ("bundle-negative-log-index_fail", Fails("malformed-bundle")),
    ("bundle-unknown-version_fail", Fails("unknown-media-type")),
    // A P-384 certificate signing a SHA-256 digest: the signature verifies (the hash is the
    // bundle's, not the key's), and the v0.1 inclusion proof has no checkpoint to vouch for it.
    ("bundle-with-root-cert_fail", Fails("checkpoint-invalid")),
    ("bundle-with-sct-with-extensions", Verified),
    ("checkpoint-bad-keyhint_fail", Fails("checkpoint-invalid")),
    (
        "checkpoint-wrong-roothash_fail",
        Fails("inclusion-proof-invalid"),
    ),
    ("dsse-invalid-sig_fail", Fails("signature-invalid")),
    ("dsse-mismatch-envelope_fail", Fails("tlog-entry-mismatch")),
    ("dsse-mismatch-sig_fail", Fails("tlog-entry-mismatch")),
    ("happy-path-intoto-in-dsse-v3", Verified),
    ("happy-path-v0.1", Verified),
    ("happy-path-v0.2", Verified),
    ("happy-path-v0.3-new-mediaType", Verified),
    ("happy-path-v0.3", Verified),
    (
        "inclusion-proof-corrupted-hash_fail",
        Fails("inclusion-proof-invalid"),
    ),
    ("incorrect-public-key_fail", Fails("tlog-entry-mismatch")),
    (
        "integrated-time-in-future_fail",
        Fails("certificate-expired"),
    ),
    (
        "intoto-expired-certificate_fail",
        Fails("certificate-not-yet-valid"),
    ),
    (
        "intoto-log-entry-mismatch_fail",
        Fails("tlog-entry-mismatch"),
    ),
    (
        "intoto-missing-inclusion-proof_fail",
        Fails("missing-inclusion-proof"),
    ),
    (
        "intoto-set-outside-signing-cert-validity_fail",
        Fails("certificate-expired"),
    ),
    (
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        Fails("certificate-expired"),
    ),
    // sigstore-python 4.5.1 gets this one wrong; the folder name is the outcome.
    ("intoto-with-custom-trust-root", Verified),
    (
        "invalid-checkpoint-signature_fail",
        Fails("checkpoint-invalid"),
    ),
    ("invalid-ct-key_fail", Fails("sct-invalid")),
    (
        "invalid-inclusion-proof_fail",
        Fails("inclusion-proof-invalid"),
    ),
    ("managed-key-and-trusted-root", Verified),
    ("managed-key-happy-path", Verified),
    ("managed-key-no-key_fail", Fails("key-required")),
    ("managed-key-wrong-key_fail", Refused("--key")),
    ("message-digest-mismatch_fail", Fails("artifact-mismatch")),
    ("rekor2-checkpoint-cosigned", Verified),
    (
        "rekor2-checkpoint-missing-log-signature_fail",
        Fails("checkpoint-invalid"),
    ),
    (
        "rekor2-checkpoint-missing-origin_fail",
        Fails("checkpoint-invalid"),
    ),
    (
        "rekor2-checkpoint-missing-root-hash_fail",
        Fails("checkpoint-invalid"),
    ),
    (
        "rekor2-checkpoint-missing-size_fail",
        Fails("checkpoint-invalid"),
    ),
    ("rekor2-checkpoint-multiple-cosigs", Verified),
    (
        "rekor2-checkpoint-no-matching-signature_fail",
        Fails("checkpoint-invalid"),
    ),
    ("rekor2-checkpoint-origin-not-first", Verified),
    ("rekor2-checkpoint-two-sigs-cosigned", Verified),
    ("rekor2-checkpoint-two-sigs-from-origin", Verified),
    ("rekor2-dsse-happy-path", Verified),
    ("rekor2-dsse-invalid-sig_fail", Fails("signature-invalid")),
    (
        "rekor2-dsse-mismatch-envelope_fail",
        Fails("tlog-entry-mismatch"),
    ),
    (
        "rekor2-dsse-mismatch-sig_fail",
        Fails("tlog-entry-mismatch"),
    ),
    ("rekor2-happy-path", Verified),
    (
        "rekor2-no-inclusion-proof_fail",
        Fails("missing-inclusion-proof"),
    ),
    ("rekor2-no-timestamp_fail", Fails("no-signing-time")),
    (
        "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
        Fails("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-outside-tsa-cert-validity_fail",
        Fails("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-payload-mismatch_fail",
        Fails("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
        Fails("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
        Fails("timestamp-invalid"),
    ),
    ("rekor2-timestamp-with-embedded-cert", Verified),
    ("rekor2-timestamp-with-expired-cert-chain", Verified),
    // The time-stamp is base64 wrapped at 76 columns (Go reads it); its time is after the
    // certificate expired.
    (
        "rekor2-timestamp-with-incorrect-time_fail",
        Fails("certificate-expired"),
    ),
    ("rekor2-timestamp-without-embedded-cert", Verified),
    ("set-invalid-signature_fail", Fails("set-invalid")),
    ("signature-mismatch_fail", Fails("signature-invalid")),
    (
        "trust-root-tlog-missing-validity-start_fail",
        Refused("validFor.start"),
    ),
    ("trust-root-tlog-validity-end-inclusive", Verified),
    // sigstore-python 4.5.1 gets this one wrong too.
    ("trust-root-tsa-validity-end-inclusive", Verified),
    (
        "wrong-hashedrekord-artifact_fail",
        Fails("tlog-entry-mismatch"),
    ),
    (
        "wrong-hashedrekord-cert-and-sig_fail",
        Fails("tlog-entry-mismatch"),
    ),
    (
        "wrong-hashedrekord-entry_fail",
        Fails("tlog-entry-mismatch"),
    ),
    ("wrong-material_fail", Fails("artifact-mismatch")),
];

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    lineage_testkit::fixture("sigstore-conformance/bundle-verify")
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

/// The `lineage verify` arguments for a case, by the suite's conventions (its README).
fn case_args(dir: &Path) -> Vec<String> {
    let or = |name: &str, fallback: PathBuf| {
        let p = dir.join(name);
        if p.exists() {
            p
        } else {
            fallback
        }
    };
    let path = |p: PathBuf| p.display().to_string();
    let mut args = vec![
        "--format".into(),
        "json".into(),
        "verify".into(),
        path(dir.join("bundle.sigstore.json")),
        "--trusted-root".into(),
        path(or(
            "trusted_root.json",
            lineage_testkit::fixture("sigstore-bundle/sigstore-public-good.trusted_root.json"),
        )),
        "--artifact".into(),
        path(or("artifact", suite().join("a.txt"))),
    ];
    if dir.join("key.pub").exists() {
        args.extend(["--key".into(), path(dir.join("key.pub"))]);
    } else {
        let identity = dir.join("identity");
        let issuer = dir.join("issuer");
        args.extend([
            "--certificate-identity".into(),
            if identity.exists() {
                text(&identity)
            } else {
                DEFAULT_IDENTITY.into()
            },
            "--certificate-oidc-issuer".into(),
            if issuer.exists() {
                text(&issuer)
            } else {
                DEFAULT_ISSUER.into()
            },
        ]);
    }
    args
}

/// What a run gave, in the table's terms.
fn outcome(code: i32, stdout: &str, stderr: &str) -> Result<Expect, String> {
    match code {
        0 => Ok(Verified),
        1 => {
            let v: Value = serde_json::from_str(stdout).map_err(|e| format!("{e}: {stdout}"))?;
            let code = v["reason"]["code"]
                .as_str()
                .ok_or(format!("no reason code: {stdout}"))?;
            Ok(Fails(Box::leak(code.to_string().into_boxed_str())))
        }
        2 => Ok(Refused(Box::leak(stderr.to_string().into_boxed_str()))),
        other => Err(format!("exit {other}: {stderr}")),
    }
}

fn agrees(want: Expect, got: Expect) -> bool {
    match (want, got) {
        (Refused(words), Refused(stderr)) => stderr.contains(words),
        _ => want == got,
    }
}

/// Done when (issue 16): all 70 conformance cases reproduce their stated outcome, each for its
/// stated reason, through the real binary.
#[test]
fn every_sigstore_conformance_case_reproduces_its_outcome() {
    let mut folders: Vec<String> = std::fs::read_dir(suite())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        folders, listed,
        "the table must list exactly the suite's cases"
    );
    assert_eq!(folders.len(), 70);

    let mut wrong = Vec::new();
    for (name, want) in CASES {
        // The folder name is the outcome; the table must agree with it.
        assert_eq!(
            name.ends_with("_fail"),
            *want != Verified,
            "{name}: the table contradicts the folder name"
        );
        let dir = suite().join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(case_args(&dir))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        match outcome(out.status.code().unwrap_or(-1), &stdout, &stderr) {
            Ok(got) if agrees(*want, got) => {}
            Ok(got) => wrong.push(format!("{name}: want {want:?}, got {got:?}\n{stdout}")),
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 70 cases disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

// ---- Notation signatures through the CLI ----

const NET_MONITOR: &str = "registry.acme-rockets.io/software/net-monitor";
const NET_MONITOR_DIGEST: &str =
    "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";

/// `trustpolicy.json` P1 of `notation/README.md`, at `level`.
fn write_policy(dir: &Path, level: &str) -> PathBuf {
    let path = dir.join(format!("trustpolicy-{level}.json"));
    let doc = serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": "net-monitor",
            "registryScopes": [NET_MONITOR],
            "signatureVerification": {"level": level},
            "trustStores": ["ca:valid-trust-store"],
            "trustedIdentities": ["x509.subject:CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"],
        }]
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// An OCI layout whose only manifest is a Notation signature referrer of the image, holding
/// `envelope` as its layer, as `notation sign` + `oras copy --to-oci-layout` write it.
fn notation_layout(dir: &Path, envelope: &[u8]) -> PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (env_digest, env_size) = put(envelope);
    let (cfg_digest, cfg_size) = put(b"{}");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/jose+json", "digest": env_digest, "size": env_size}],
        "subject": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": NET_MONITOR_DIGEST, "size": 528},
    }))
    .unwrap();
    let (m_digest, m_size) = put(&manifest);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_digest, "size": m_size, "artifactType": "application/vnd.cncf.notary.signature"}],
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

fn notation_verify(target: &Path, policy: &Path) -> (i32, Value, String) {
    notation_verify_at(target, policy, None)
}

/// `notation_verify` with the clock pinned by `LINEAGE_NOW` when `now` is given.
fn notation_verify_at(target: &Path, policy: &Path, now: Option<&str>) -> (i32, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
    if let Some(now) = now {
        cmd.env("LINEAGE_NOW", now);
    }
    let out = cmd
        .args(["--format", "json", "verify"])
        .arg(target)
        .arg("--trust-policy")
        .arg(policy)
        .arg("--trust-store")
        .arg(lineage_testkit::fixture("notation/truststore"))
        .args([
            "--artifact-ref",
            &format!("{NET_MONITOR}@{NET_MONITOR_DIGEST}"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Done when (issue 16): `lineage verify` reads Notation signatures from an OCI layout (the
/// referrer of the image) and from an envelope file, judged by trustpolicy.json and the trust
/// store at each verification level.
#[test]
fn notation_signatures_verify_from_a_layout_and_an_envelope_by_level() {
    let dir = tempfile::tempdir().unwrap();
    let strict = write_policy(dir.path(), "strict");
    let audit = write_policy(dir.path(), "audit");
    let valid = std::fs::read(lineage_testkit::fixture(
        "notation/notation-go.ca_valid_sig_env.jws.json",
    ))
    .unwrap();

    let layout = notation_layout(dir.path(), &valid);
    let (code, v, err) = notation_verify(&layout, &strict);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["kind"], "notation-oci-layout");
    assert!(
        v["signers"][0]
            .as_str()
            .unwrap()
            .starts_with("CN=Notation Test Root"),
        "{v}"
    );

    let expired = lineage_testkit::fixture("notation/notation-go.ca_expired_sig_env.jws.json");
    let (code, v, _) = notation_verify(&expired, &strict);
    assert_eq!(
        (code, v["reason"]["code"].as_str()),
        (1, Some("signature-expired")),
        "{v}"
    );
    let (code, v, _) = notation_verify(&expired, &audit);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["logged"][0]["code"], "signature-expired", "{v}");
    // Expiry is judged at the settings' clock, as every other time: pinned to the day before
    // the envelope's `io.cncf.notary.expiry` (2022-07-29T23:59:00Z), it has not expired yet.
    let (code, v, err) = notation_verify_at(&expired, &strict, Some("2022-07-29T00:00:00Z"));
    assert_eq!(code, 0, "{v}\n{err}");

    let invalid = lineage_testkit::fixture("notation/notation-go.ca_invalid_sig_env.jws.json");
    let (code, v, _) = notation_verify(&invalid, &audit);
    assert_eq!(code, 1, "integrity is enforced at audit: {v}");
    assert!(
        v["reason"]["message"]
            .as_str()
            .unwrap()
            .starts_with("integrity:"),
        "{v}"
    );

    // A COSE_Sign1 envelope (the Notation example), under its own policy P2.
    let p2 = dir.path().join("trustpolicy-p2.json");
    std::fs::write(
        &p2,
        serde_json::to_vec(&serde_json::json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "example",
                "registryScopes": ["example/software"],
                "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
                "trustStores": ["ca:example-local-verify"],
                "trustedIdentities": ["*"],
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["--format", "json", "verify"])
        .arg(lineage_testkit::fixture("notation/notation-go.example_localVerify.cose.sig"))
        .arg("--trust-policy")
        .arg(&p2)
        .arg("--trust-store")
        .arg(lineage_testkit::fixture("notation/truststore"))
        .args([
            "--artifact-ref",
            "example/software@sha256:c0d488a800e4127c334ad20d61d7bc21b4097540327217dfab52262adc02380c",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A repository no policy covers is "could not decide": exit 2 with the scope to add.
    let (code, _, err) = notation_verify(&expired, &p2);
    assert_eq!(code, 2);
    assert!(err.contains("registryScopes"), "{err}");
}

/// Done when (issue 16): `lineage verify REGISTRY/REPO@DIGEST` with a trust policy reads the
/// image's Notation signatures as its OCI referrers (artifact type
/// `application/vnd.cncf.notary.signature`), through the registry client's referrers support,
/// and judges them. The fixture signs another digest, so here the real registry carries a
/// genuine signature that must fail integrity as "for another artifact"; an image without
/// one has no signature.
#[test]
fn notation_signatures_are_read_from_a_registry_as_referrers() {
    use lineage_registry::{Client, ClientConfig, Reference};
    let registry = lineage_testkit::Registry::start();
    let client = Client::new(ClientConfig::default()).unwrap();
    let push_image = |name: &str, label: &str| -> String {
        let repo = lineage_model::Repository::parse(&registry.reference(name)).unwrap();
        let config = format!(r#"{{"label":"{label}"}}"#);
        let config_digest = client.push_blob(&repo, config.as_bytes()).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
            "layers": [],
        }))
        .unwrap();
        client
            .push_manifest(
                &repo,
                &Reference::Tag(lineage_model::Tag::parse("1").unwrap()),
                "application/vnd.oci.image.manifest.v1+json",
                &manifest,
            )
            .unwrap();
        format!(
            "{}@sha256:{}",
            registry.reference(name),
            sha256_hex(&manifest)
        )
    };
    let signed = push_image("notary/net-monitor", "signed");
    let unsigned = push_image("notary/other", "unsigned");
    let envelope = std::fs::read(lineage_testkit::fixture(
        "notation/notation-go.ca_valid_sig_env.jws.json",
    ))
    .unwrap();
    lineage_registry::attach(
        &client,
        &lineage_model::ImageRef::parse(&signed).unwrap(),
        &lineage_registry::Artifact {
            artifact_type: "application/vnd.cncf.notary.signature".into(),
            payload_media_type: "application/jose+json".into(),
            payload: envelope,
            annotations: Default::default(),
        },
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("trustpolicy.json");
    std::fs::write(
        &policy,
        serde_json::to_vec(&serde_json::json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "all",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:valid-trust-store"],
                "trustedIdentities": ["*"],
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    let run = |image: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(["--format", "json", "verify", image, "--trust-policy"])
            .arg(&policy)
            .arg("--trust-store")
            .arg(lineage_testkit::fixture("notation/truststore"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = run(&signed);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["kind"], "notation-registry");
    assert_eq!(v["reason"]["code"], "artifact-mismatch", "{v}");
    assert!(
        v["reason"]["message"]
            .as_str()
            .unwrap()
            .contains(NET_MONITOR_DIGEST),
        "{v}"
    );
    let (code, v) = run(&unsigned);
    assert_eq!(
        (code, v["reason"]["code"].as_str()),
        (Some(1), Some("no-signature")),
        "{v}"
    );
}
