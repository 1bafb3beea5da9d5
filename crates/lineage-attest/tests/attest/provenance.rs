//! SLSA provenance: reading other tools' predicates and generating Lineage's own, and the
//! Lineage predicates for deploys, approvals and ownership changes.

use lineage_attest::dsse::{self, TrustedKey, VerifyOptions};
use lineage_attest::predicates::{
    self, APPROVAL_PREDICATE_V1, DEPLOY_PREDICATE_V1, OWNERSHIP_PREDICATE_V1,
};
use lineage_attest::slsa::{self, SlsaVersion, LINEAGE_BUILD_TYPE, SLSA_PROVENANCE_V1};
use lineage_attest::{KeyKind, PrivateKey, Statement};
use lineage_model::{BuildRecord, DeployRecord, Digest, ServiceChange};

use crate::{fixture, fixtures_dir};

struct Expect {
    version: SlsaVersion,
    builder: &'static str,
    invocation: Option<&'static str>,
    source: Option<(&'static str, Option<&'static str>)>,
    materials: usize,
}

fn expectation(file: &str) -> Option<Expect> {
    use SlsaVersion::*;
    let e = |version, builder, invocation, source, materials| Expect {
        version,
        builder,
        invocation,
        source,
        materials,
    };
    Some(match file {
        "slsa/npm.sigstore-3.1.0.statement-v1.slsa-v1.github-actions.json" => e(
            V1,
            "https://github.com/actions/runner/github-hosted",
            Some("https://github.com/sigstore/sigstore-js/actions/runs/13144357684/attempts/1"),
            Some(("https://github.com/sigstore/sigstore-js", Some("06cd267cbdc2eeaa04294995622db9f6ad2fa7cf"))),
            1,
        ),
        "slsa/npm.slsa-provenance-0.0.7.statement-v0.1.slsa-v0.2.json" => e(
            V0_2,
            "https://github.com/npm/slsa-provenance@0.0.1",
            Some("3024091546-4"),
            Some(("https://github.com/github/slsa-provenance", Some("29cff3dd65f780c3601bd457acb6fe4e5931c825"))),
            1,
        ),
        "slsa/slsa-github-generator.container.statement-v0.1.slsa-v0.2.json" => e(
            V0_2,
            "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/heads/main",
            Some("2801118579-2"),
            Some(("https://github.com/slsa-framework/example-package", Some("450428f4a68587015e502b9173a9fc017a1f7245"))),
            1,
        ),
        "slsa/sigstore-python.slsa_predicate_v1_0.json" => e(
            V1,
            "https://github.com/octo-org/octo-repo/.github/workflows/docker.yaml@refs/heads/development",
            Some("https://github.com/octo-org/octo-repo/actions/runs/10313983218/attempts/2"),
            Some(("https://github.com/octo-org/octo-repo", Some("1ac93ce21ee526b36fd154b9058d97dfaa424c50"))),
            1,
        ),
        "slsa/sigstore-rs.statement-v1.minimal.json" => {
            e(V1, "https://example.com/builder", None, None, 0)
        }
        "buildkit/slsa-provenance.v1.min.example.json" => {
            e(V1, "", Some("yirbp1aosi1vqjmi3z6bc75nb"), None, 1)
        }
        "buildkit/slsa-provenance.v1.max.example.json" => {
            e(V1, "", Some("46ue2x93k3xj5l463dektwldw"), None, 1)
        }
        "buildkit/docker-docs.slsa-provenance.v0.2.min.example.json" => e(
            V0_2,
            "",
            Some("c4a87v0sxhliuewig10gnsb6v"),
            Some(("git@github.com:<org>/<repo>.git", Some("a9ba846486420e07d30db1107411ac3697ecab68"))),
            2,
        ),
        _ => return None,
    })
}

#[test]
fn every_slsa_and_buildkit_provenance_fixture_summarises() {
    let mut files = Vec::new();
    for (dir, filter) in [("slsa", ""), ("buildkit", "provenance")] {
        for entry in std::fs::read_dir(fixtures_dir().join(dir)).expect("fixture dir") {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.contains(filter) {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    for file in files {
        let want = expectation(&file).unwrap_or_else(|| panic!("{file}: no expectation recorded"));
        let got = slsa::summarize_json(&fixture(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.version, want.version, "{file}");
        assert_eq!(got.builder_id, want.builder, "{file}");
        assert_eq!(got.invocation_id.as_deref(), want.invocation, "{file}");
        assert_eq!(
            got.source
                .as_ref()
                .map(|s| (s.repository.as_str(), s.revision.as_deref())),
            want.source,
            "{file}"
        );
        assert_eq!(got.materials.len(), want.materials, "{file}");
    }
}

#[test]
fn build_invocation_id_is_read_in_both_spellings() {
    for key in ["buildInvocationId", "buildInvocationID"] {
        let p = serde_json::json!({
            "builder": {"id": "https://b"}, "buildType": "https://t",
            "metadata": {key: "run-7"}
        });
        let s = slsa::summarize("https://slsa.dev/provenance/v0.2", &p).unwrap();
        assert_eq!(s.invocation_id.as_deref(), Some("run-7"), "{key}");
    }
    assert!(slsa::summarize("https://example.com/other", &serde_json::json!({})).is_err());
}

pub fn build_record() -> BuildRecord {
    serde_json::from_value(serde_json::json!({
        "service": "api",
        "image": "registry.example.com/team/api",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "tags": ["1.4.2"],
        "bases": [
            {"name": "docker.io/library/golang", "tag": "1.22", "digest": format!("sha256:{}", "11".repeat(32))},
            {"name": "gcr.io/distroless/static", "tag": "nonroot", "digest": format!("sha256:{}", "22".repeat(32)), "final_stage": true}
        ],
        "source_repo": "https://github.com/acme/api",
        "git_ref": "refs/heads/main",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "started_at": "2026-03-01T10:00:00Z",
        "finished_at": "2026-03-01T10:04:30Z",
        "ci": {"system": "github-actions", "job": "build", "run_id": "991", "url": "https://github.com/acme/api/actions/runs/991"},
        "builder": "sa:ci-builder",
        "platform": "linux/amd64",
        "dockerfile": {"path": "deploy/Dockerfile"}
    }))
    .expect("test build record parses")
}

#[test]
fn build_record_becomes_slsa_v1_statement() {
    let build = build_record();
    let statement = slsa::provenance_statement(&build).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&statement.to_json()).unwrap();
    assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(v["predicateType"], SLSA_PROVENANCE_V1);
    assert_eq!(v["subject"][0]["name"], "registry.example.com/team/api");
    assert_eq!(v["subject"][0]["digest"]["sha256"], "ab".repeat(32));
    let bd = &v["predicate"]["buildDefinition"];
    assert_eq!(bd["buildType"], LINEAGE_BUILD_TYPE);
    assert_eq!(
        bd["externalParameters"]["repository"],
        "https://github.com/acme/api"
    );
    assert_eq!(bd["externalParameters"]["ref"], "refs/heads/main");
    assert_eq!(bd["externalParameters"]["dockerfile"], "deploy/Dockerfile");
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 3);
    assert_eq!(
        deps[0]["uri"],
        "git+https://github.com/acme/api@0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        deps[0]["digest"]["gitCommit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(deps[1]["uri"], "pkg:docker/docker.io/library/golang@1.22");
    assert_eq!(deps[1]["digest"]["sha256"], "11".repeat(32));
    assert_eq!(deps[2]["digest"]["sha256"], "22".repeat(32));
    let rd = &v["predicate"]["runDetails"];
    assert_eq!(
        rd["builder"]["id"],
        "https://lineage.dev/builders/identity/sa:ci-builder"
    );
    assert_eq!(
        rd["metadata"]["invocationId"],
        "https://github.com/acme/api/actions/runs/991"
    );
    assert_eq!(rd["metadata"]["startedOn"], "2026-03-01T10:00:00Z");
    assert_eq!(rd["metadata"]["finishedOn"], "2026-03-01T10:04:30Z");

    // Our own output reads back through the generic reader.
    let parsed = Statement::from_json(&statement.to_json()).unwrap();
    assert!(parsed.has_subject_digest(&build.digest));
    assert!(
        !parsed.has_subject_digest(&Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap())
    );
    let summary = slsa::summarize_statement(&parsed).unwrap();
    assert_eq!(
        summary.source.unwrap().revision.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(summary.materials.len(), 3);
}

#[test]
fn build_without_builder_or_ci_cannot_become_provenance() {
    let mut build = build_record();
    build.builder = None;
    assert_eq!(
        slsa::provenance_v1(&build).unwrap().run_details.builder.id,
        "https://lineage.dev/builders/ci/github-actions"
    );
    build.ci = None;
    assert_eq!(
        slsa::provenance_v1(&build),
        Err(slsa::ProvenanceError::NoBuilder)
    );
}

#[test]
fn signed_build_provenance_verifies_end_to_end() {
    let key = PrivateKey::generate(KeyKind::EcdsaP256).unwrap();
    let statement = slsa::provenance_statement(&build_record()).unwrap();
    let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &statement.to_json(), &[&key]).unwrap();
    let outcome = dsse::verify_json(
        envelope.to_json().as_bytes(),
        &[TrustedKey::new(key.public_key().clone())],
        &VerifyOptions::default(),
    );
    assert!(outcome.is_verified(), "{outcome:?}");
    assert_eq!(Statement::from_json(&envelope.payload).unwrap(), statement);
}

#[test]
fn deploy_approval_and_ownership_statements() {
    let deploy: DeployRecord = serde_json::from_value(serde_json::json!({
        "service": "api", "image": "registry.example.com/team/api",
        "digest": format!("sha256:{}", "ab".repeat(32)), "env": "production",
        "by": "sa:deploy-bot", "approved_by": "maya@acme.dev", "ticket": "CHG-12",
        "at": "2026-03-02T08:00:00Z"
    }))
    .unwrap();
    let s = predicates::deploy_statement(&deploy);
    assert_eq!(s.predicate_type, DEPLOY_PREDICATE_V1);
    assert_eq!(s.predicate["environment"], "production");
    assert_eq!(s.predicate["deployedBy"], "sa:deploy-bot");
    assert!(s.has_subject_digest(&deploy.digest));
    let a = predicates::approval_statement(&deploy).unwrap();
    assert_eq!(a.predicate_type, APPROVAL_PREDICATE_V1);
    assert_eq!(a.predicate["approvedBy"], "maya@acme.dev");
    let mut unapproved = deploy.clone();
    unapproved.approved_by = None;
    assert!(predicates::approval_statement(&unapproved).is_none());

    let change: ServiceChange = serde_json::from_value(serde_json::json!({
        "service": {"name": "api", "owner": "maya@acme.dev"},
        "by": "lee@acme.dev", "at": "2026-03-03T09:00:00Z"
    }))
    .unwrap();
    let o = predicates::ownership_statement(&change);
    assert_eq!(o.predicate_type, OWNERSHIP_PREDICATE_V1);
    assert_eq!(o.subject[0].name, "lineage:service/api");
    assert_eq!(o.predicate["owner"], "maya@acme.dev");
    // The subject digest pins the new state: a different owner gives a different digest.
    let mut other = change.clone();
    other.service.owner = None;
    assert_ne!(
        predicates::ownership_statement(&other).subject[0].digest,
        o.subject[0].digest
    );
    // All of them are valid Statements.
    for st in [s, a, o] {
        Statement::from_json(&st.to_json()).unwrap();
    }
}
