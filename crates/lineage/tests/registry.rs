//! The registry commands end to end: the real `lineage` binary against a real registry
//! (Debian's `docker-registry` 2.8, which has no Referrers API) started by lineage-testkit,
//! with images built by umoci, skopeo and buildah; and `lineage inspect --layout` on the
//! shared fixture layouts. A missing component fails the test with what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lineage_model::{Digest, ImageRef, Record};
use lineage_registry::{fallback_tag, media, Client, ClientConfig, Credentials, Reference};
use lineage_store::{Store, StoreLocation};
use lineage_testkit::{fixture, fixtures_dir, ImageFormat, Pushed, Registry, World};
use serde_json::{json, Value};

const NOW: &str = "2026-11-17T09:12:00Z";

/// A temporary ledger and home directory; commands run with a cleared environment, so the
/// machine's docker config, proxies and CI variables never leak in.
struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev")
            .env("LINEAGE_KEY_PASSWORD", "test-passphrase");
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "lineage {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
    }

    /// Runs a command that must fail with exit code `code`; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.output(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "lineage {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn open(&self) -> Box<dyn Store> {
        lineage_store::open(&StoreLocation::Sqlite(self.store()), false).unwrap()
    }

    fn entries(&self) -> u64 {
        self.open().len().unwrap()
    }

    fn service(&self, name: &str, repository: &str) {
        self.ok(&[
            "service",
            "add",
            name,
            "--owner",
            "priya@acme.dev",
            "--image",
            repository,
        ]);
    }
}

fn repo_of(reference: &str) -> &str {
    reference.rsplit_once(':').map_or(reference, |(r, _)| r)
}

fn client() -> Client {
    Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(5),
        retry_base_delay: Duration::from_millis(20),
        ..ClientConfig::default()
    })
    .unwrap()
}

/// A two-layer base image built with umoci and pushed with skopeo.
fn push_base(world: &World, registry: &Registry, name: &str) -> Pushed {
    world.umoci_image(
        &registry.reference(name),
        &[
            &[("etc/os-release", "ID=lineage-test\n")],
            &[("usr/share/base/marker", name)],
        ],
        &[("org.example.base", name)],
    )
}

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// Multi-stage, `ARG` in `FROM`, `FROM` by tag, `COPY --from`, `LABEL`.
fn app_dockerfile(base: &str) -> String {
    format!(
        "ARG BASE={base}\nFROM ${{BASE}} AS build\nCOPY app.txt /build/app.txt\n\n\
         FROM {base}\nLABEL org.opencontainers.image.source=https://github.com/acme/app \
         org.opencontainers.image.revision={REVISION} com.example.team=payments\n\
         COPY --from=build /build/app.txt /app.txt\n"
    )
}

fn base_facts(ledger: &Ledger) -> Vec<lineage_model::BaseSeen> {
    ledger
        .open()
        .facts("base", None)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) => Some(b),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// build record --from-registry

#[test]
fn builds_are_recorded_from_the_registry_with_bases_by_annotation_and_by_layer_match() {
    let registry = Registry::start();
    let world = World::new();
    let ledger = Ledger::new();
    let base = push_base(&world, &registry, "base:1");
    let app_ref = registry.reference("app:1");
    world.buildah_build(
        &app_dockerfile(&base.reference),
        &[("app.txt", "hello")],
        &app_ref,
        &[],
    );
    let app = world.buildah_push(&app_ref, ImageFormat::Oci);
    ledger.service("app", repo_of(&app_ref));

    // A flag that contradicts the image's label: an error naming both, nothing written.
    let before = ledger.entries();
    let other = "fedcba9876543210fedcba9876543210fedcba98";
    let err = ledger.fails(
        2,
        &[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &app_ref,
            "--commit",
            other,
        ],
    );
    assert!(err.contains(other) && err.contains(REVISION), "{err}");
    assert_eq!(ledger.entries(), before);

    // `--print-detected` shows what the registry filled in and writes nothing.
    let shown = ledger.json(&[
        "build",
        "record",
        "--from-registry",
        &app_ref,
        "--print-detected",
    ]);
    assert_eq!(shown["build"]["digest"], app.digest, "{shown:#}");
    assert_eq!(shown["build"]["bases"][0]["digest"], base.digest);
    assert_eq!(shown["base_detection"]["method"], "annotation");
    assert_eq!(ledger.entries(), before);
    assert!(base_facts(&ledger).is_empty());

    // The OCI push carries buildah's base annotations: the base is exact.
    let out = ledger.json(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &app_ref,
    ]);
    assert_eq!(out["outcome"], "recorded", "{out:#}");
    assert_eq!(out["digest"], app.digest);
    assert_eq!(out["base_detection"]["method"], "annotation", "{out:#}");
    assert_eq!(out["base_detection"]["summary"], "exact (annotation)");
    let build = ledger
        .open()
        .build(&Digest::parse(&app.digest).unwrap())
        .unwrap()
        .expect("recorded");
    assert_eq!(
        build.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["1"]
    );
    assert_eq!(build.commit.as_ref().unwrap().as_str(), REVISION);
    assert_eq!(
        build.source_repo.as_ref().unwrap().as_str(),
        "https://github.com/acme/app"
    );
    assert!(build.finished_at.is_some(), "created fills --finished-at");
    assert_eq!(build.bases.len(), 1);
    assert_eq!(
        build.bases[0].digest.as_ref().unwrap().to_string(),
        base.digest
    );
    assert_eq!(build.bases[0].name.to_string(), repo_of(&base.reference));
    // The base was recorded with its layers, so later copies without annotations match it.
    let seen = base_facts(&ledger);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].digest.to_string(), base.digest);
    assert_eq!(seen[0].layers.len(), 2);

    // skopeo copy to Docker v2 schema 2 drops the annotations: the base is found by its layers.
    let copy = world.skopeo_copy(
        &app_ref,
        &registry.reference("app:copy"),
        ImageFormat::Docker,
    );
    let human = ledger.ok(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &copy.reference,
    ]);
    assert!(
        human.contains(&format!(
            "base found by layer match (2 of 3 layers): {}",
            base.pinned().replace("base@", "base:1@")
        )),
        "{human}"
    );
    let build = ledger
        .open()
        .build(&Digest::parse(&copy.digest).unwrap())
        .unwrap()
        .expect("recorded");
    assert_eq!(
        build.bases[0].digest.as_ref().unwrap().to_string(),
        base.digest
    );
    assert_eq!(
        base_facts(&ledger).len(),
        1,
        "a layer match records no new base"
    );

    // A base taught with `lineage base add`, and an image built FROM it by digest and pushed
    // as v2s2 by buildah (no annotations).
    let base2 = push_base(&world, &registry, "base2:7");
    let added = ledger.json(&["base", "add", &base2.reference]);
    assert_eq!(added["outcome"], "recorded");
    assert_eq!(added["digest"], base2.digest);
    assert_eq!(added["layers"], 2);
    let again = ledger.json(&["base", "add", &base2.reference]);
    assert_eq!(again["outcome"], "unchanged");
    let svc_ref = registry.reference("svc:2");
    world.buildah_build(
        &format!(
            "FROM {}\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
            base2.pinned()
        ),
        &[("a.txt", "a"), ("b.txt", "b")],
        &svc_ref,
        &[],
    );
    let svc = world.buildah_push(&svc_ref, ImageFormat::Docker);
    ledger.service("svc", repo_of(&svc_ref));
    let out = ledger.json(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &svc_ref,
    ]);
    assert_eq!(out["base_detection"]["method"], "layer-match", "{out:#}");
    assert_eq!(
        out["base_detection"]["summary"],
        "layer match (2 of 3 layers)"
    );
    let build = ledger
        .open()
        .build(&Digest::parse(&svc.digest).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        build.bases[0].digest.as_ref().unwrap().to_string(),
        base2.digest
    );
    assert_eq!(build.bases[0].tag.as_ref().unwrap().as_str(), "7");

    // An image on a base nobody taught Lineage: `unknown`, recorded without a base.
    let stray = push_base(&world, &registry, "stray:1");
    let copy = world.skopeo_copy(
        &stray.reference,
        &registry.reference("svc:stray"),
        ImageFormat::Docker,
    );
    let out = ledger.json(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &copy.reference,
    ]);
    assert_eq!(out["base_detection"]["method"], "unknown", "{out:#}");
    let build = ledger
        .open()
        .build(&Digest::parse(&copy.digest).unwrap())
        .unwrap()
        .unwrap();
    assert!(build.bases.is_empty());
}

// ---------------------------------------------------------------------------------------
// inspect

fn fixture_filters(text: &str) -> String {
    text.replace(&fixtures_dir().display().to_string(), "[FIXTURES]")
}

#[test]
fn inspect_decodes_the_fixture_layouts() {
    let ledger = Ledger::new();
    let regclient = fixture("oci/regclient-testrepo");
    let regclient = regclient.to_str().unwrap();
    let human = ledger.ok(&["inspect", "--layout", regclient, "v2"]);
    insta::assert_snapshot!("inspect_regclient_human", fixture_filters(&human));
    let json = ledger.json(&["inspect", "--layout", regclient, "v2"]);
    assert_eq!(json["has_provenance"], false);
    assert_eq!(
        json["image"]["facts"]["base_digest"]["value"],
        "sha256:f91e00c1c151c75243a87073297efc68b8fe83a3dd82142ef6fb9f51dddb6a37"
    );
    assert_eq!(json["referrers"].as_array().unwrap().len(), 2);
    assert_eq!(json["referrers"][0]["via"], "tag-schema");

    let cosign = fixture("cosign/slsa-verifier-container-att-layout");
    let cosign = cosign.to_str().unwrap();
    let image = "sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2";
    let human = ledger.ok(&["inspect", "--layout", cosign, image]);
    insta::assert_snapshot!("inspect_cosign_att_human", fixture_filters(&human));
    let json = ledger.json(&["inspect", "--layout", cosign, image]);
    assert_eq!(json["has_provenance"], true);
    let att = &json["cosign"][0];
    assert_eq!(att["kind"], "attestation");
    let p = &att["layers"][0]["statement"]["provenance"];
    assert_eq!(p["slsa_version"], "v0.2");
    assert_eq!(p["invocation_id"], "2801118579-2");
    assert_eq!(
        p["source_repo"],
        "https://github.com/slsa-framework/example-package"
    );
    assert_eq!(
        p["source_revision"],
        "450428f4a68587015e502b9173a9fc017a1f7245"
    );

    // Bad input: a malformed digest names the field; a missing layout says what one is.
    let err = ledger.fails(2, &["inspect", "--layout", cosign, "sha256:nothex"]);
    assert!(
        err.contains("REF") && err.contains("sha256:nothex"),
        "{err}"
    );
    let err = ledger.fails(2, &["inspect", "--layout", "/nonexistent/layout", "v1"]);
    assert!(
        err.contains("hint: pass a directory with an OCI image layout"),
        "{err}"
    );
    assert!(!ledger.store().exists(), "inspect never creates a ledger");
}

#[test]
fn inspect_decodes_buildkit_attestations_in_a_registry_and_flags_a_bare_image() {
    let registry = Registry::start();
    let world = World::new();
    let ledger = Ledger::new();
    let client = client();
    let base = push_base(&world, &registry, "app:1");
    let r = ImageRef::parse(&base.reference).unwrap();
    let repo = r.repository.clone();

    // A bare image: exit 0, but a red flag, and `has_provenance: false`.
    let human = ledger.ok(&["inspect", &base.reference]);
    assert!(
        human.contains("RED FLAG    no provenance attestation"),
        "{human}"
    );
    let json = ledger.json(&["inspect", &base.reference]);
    assert_eq!(json["has_provenance"], false);
    assert_eq!(json["digest"], base.digest);
    assert_eq!(json["image"]["labels"]["org.example.base"], "app:1");

    // A BuildKit-style index: the image plus one attestation manifest per fixture statement
    // (SLSA v1 from the BuildKit docs, SLSA v0.2 from the Docker docs).
    let platform = client.resolve(&r).unwrap();
    let read = |p: &str| std::fs::read(fixture(p)).unwrap();
    let config = read("buildkit/attestation-storage.example-config.json");
    let config_digest = client.push_blob(&repo, &config).unwrap();
    let mut entries = vec![json!({
        "mediaType": platform.media_type, "digest": platform.digest.to_string(), "size": platform.size,
        "platform": {"architecture": "amd64", "os": "linux"},
    })];
    for (file, predicate) in [
        (
            "buildkit/slsa-provenance.v1.max.example.json",
            "https://slsa.dev/provenance/v1",
        ),
        (
            "buildkit/docker-docs.slsa-provenance.v0.2.min.example.json",
            "https://slsa.dev/provenance/v0.2",
        ),
    ] {
        // The fixtures are about the upstream images; aim their subject at this one, as
        // BuildKit does for the image it builds.
        let mut st: Value = serde_json::from_slice(&read(file)).unwrap();
        let hex = platform
            .digest
            .to_string()
            .trim_start_matches("sha256:")
            .to_string();
        st["subject"] = json!([{ "name": "app", "digest": { "sha256": hex } }]);
        let statement = serde_json::to_vec(&st).unwrap();
        let layer = client.push_blob(&repo, &statement).unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": media::IN_TOTO, "digest": layer.to_string(), "size": statement.len(),
                        "annotations": {"in-toto.io/predicate-type": predicate}}],
        }))
        .unwrap();
        let d = lineage_registry::digest_of(lineage_model::Algorithm::Sha256, &manifest);
        client
            .push_manifest(
                &repo,
                &Reference::Digest(d.clone()),
                media::OCI_MANIFEST,
                &manifest,
            )
            .unwrap();
        entries.push(json!({
            "mediaType": media::OCI_MANIFEST, "digest": d.to_string(), "size": manifest.len(),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": platform.digest.to_string()},
        }));
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let tag = lineage_model::Tag::parse("multi").unwrap();
    let pushed = client
        .push_manifest(&repo, &Reference::Tag(tag), media::OCI_INDEX, &index)
        .unwrap();

    let multi = registry.reference("app:multi");
    let json = ledger.json(&["inspect", &multi, "--platform", "linux/amd64"]);
    assert_eq!(json["digest"], pushed.digest.to_string());
    assert_eq!(json["has_provenance"], true);
    assert_eq!(json["warnings"], json!([]));
    assert_eq!(json["image"]["platforms"].as_array().unwrap().len(), 1);
    let atts = json["buildkit_attestations"].as_array().unwrap();
    assert_eq!(atts.len(), 2);
    assert!(atts
        .iter()
        .all(|a| a["attests"] == platform.digest.to_string()));
    let v1 = &atts[0]["layers"][0]["statement"]["provenance"];
    assert_eq!(v1["slsa_version"], "v1");
    assert_eq!(v1["invocation_id"], "46ue2x93k3xj5l463dektwldw");
    assert_eq!(
        v1["materials"][0]["uri"],
        "pkg:docker/alpine@latest?platform=linux%2Famd64"
    );
    let v02 = &atts[1]["layers"][0]["statement"]["provenance"];
    assert_eq!(v02["slsa_version"], "v0.2");
    assert_eq!(v02["invocation_id"], "c4a87v0sxhliuewig10gnsb6v");
    assert_eq!(
        v02["source_revision"],
        "a9ba846486420e07d30db1107411ac3697ecab68"
    );
    assert_eq!(
        v02["materials"][1]["uri"],
        "pkg:docker/golang@1.19.4-alpine?platform=linux%2Farm64"
    );
    let human = ledger.ok(&["inspect", &multi]);
    assert!(
        human.contains("provenance  yes") && !human.contains("RED FLAG"),
        "{human}"
    );
    assert!(
        human.contains("material   pkg:docker/alpine@latest"),
        "{human}"
    );

    // A platform the index lacks: still a report, with a warning naming what it has.
    let json = ledger.json(&["inspect", &multi, "--platform", "linux/s390x"]);
    assert_eq!(json["image"], Value::Null);
    let warning = json["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("linux/s390x") && warning.contains("it has: linux/amd64"),
        "{warning}"
    );
}

// ---------------------------------------------------------------------------------------
// attest push | pull

#[test]
fn attest_push_and_pull_round_trip_through_the_tag_fallback_keeping_another_tools_referrer() {
    let registry = Registry::start();
    let world = World::new();
    let ledger = Ledger::new();
    let client = client();
    let image = push_base(&world, &registry, "app:1");
    ledger.service("app", repo_of(&image.reference));
    ledger.ok(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &image.reference,
        "--builder",
        "ci@acme.dev",
    ]);
    let digest = Digest::parse(&image.digest).unwrap();

    // No attestation in the ledger yet: exit 1 with the command that makes one.
    let err = ledger.fails(1, &["attest", "push", &image.reference]);
    assert!(
        err.contains(&format!(
            "hint: sign it first: `lineage attest sign {} --key KEY`",
            image.digest
        )),
        "{err}"
    );

    // Signed provenance in the ledger, made by the real CLI.
    let keys = ledger.dir.path().join("keys");
    let keys = keys.to_str().unwrap();
    ledger.ok(&[
        "key",
        "generate",
        "--name",
        "ci",
        "--algorithm",
        "ed25519",
        "--dir",
        keys,
    ]);
    ledger.ok(&[
        "attest",
        "sign",
        &image.digest,
        "--key",
        &format!("{keys}/ci.key"),
    ]);
    let facts = ledger
        .open()
        .facts("attestation", Some(&image.digest))
        .unwrap();
    assert_eq!(facts.len(), 1);
    let Record::Attestation(attestation) = facts[0].record.clone() else {
        panic!("an attestation")
    };
    assert_eq!(attestation.digest, digest);

    // Another tool's referrer, already in the fallback index, with a field Lineage does not model.
    let r = ImageRef::parse(&image.reference).unwrap();
    let repo = r.repository.clone();
    let subject = client.resolve(&r).unwrap();
    let config = client.push_blob(&repo, b"{}").unwrap();
    let layer = client.push_blob(&repo, b"an sbom").unwrap();
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": media::OCI_EMPTY, "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": layer.to_string(), "size": 7}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    }))
    .unwrap();
    let sbom_digest = lineage_registry::digest_of(lineage_model::Algorithm::Sha256, &sbom);
    client
        .push_manifest(
            &repo,
            &Reference::Digest(sbom_digest.clone()),
            media::OCI_MANIFEST,
            &sbom,
        )
        .unwrap();
    let foreign = json!({
        "mediaType": media::OCI_MANIFEST, "digest": sbom_digest.to_string(), "size": sbom.len(),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example.tool": "sbom-maker"}, "x-other-tool-field": [1, 2, 3],
    });
    let fallback = fallback_tag(&subject.digest);
    client
        .push_manifest(
            &repo,
            &Reference::Tag(fallback.clone()),
            media::OCI_INDEX,
            &serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [foreign.clone()]})).unwrap(),
        )
        .unwrap();

    let pushed = ledger.json(&["attest", "push", &image.reference]);
    assert_eq!(pushed["digest"], image.digest);
    let ours = &pushed["pushed"][0];
    assert_eq!(
        ours["via"], "tag-schema",
        "distribution 2.8 has no Referrers API: {pushed:#}"
    );
    assert_eq!(ours["fallback_tag"], fallback.as_str());
    assert_eq!(ours["predicate_type"], "https://slsa.dev/provenance/v1");

    let stored = client
        .fetch_manifest(&repo, &Reference::Tag(fallback))
        .unwrap();
    let stored: Value = serde_json::from_slice(&stored.bytes).unwrap();
    let entries = stored["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{stored:#}");
    assert_eq!(
        entries[0], foreign,
        "the other tool's entry is kept verbatim"
    );
    assert_eq!(entries[1]["digest"], ours["manifest"]);
    assert_eq!(
        entries[1]["artifactType"],
        "application/vnd.lineage.provenance.v1+json"
    );
    assert_eq!(
        entries[1]["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v1"
    );

    // Pushing again replaces our entry rather than adding a second one.
    ledger.json(&["attest", "push", &image.reference]);
    let again = client
        .fetch_manifest(&repo, &Reference::Tag(fallback_tag(&subject.digest)))
        .unwrap();
    let again: Value = serde_json::from_slice(&again.bytes).unwrap();
    assert_eq!(again["manifests"].as_array().unwrap().len(), 2);

    // Another ledger (a consumer of the image) pulls it back and records it.
    let consumer = Ledger::new();
    let pulled = consumer.json(&["attest", "pull", &image.reference]);
    let found = pulled["attestations"].as_array().unwrap();
    assert_eq!(
        found.len(),
        1,
        "only Lineage's artifact, not the SBOM: {pulled:#}"
    );
    assert_eq!(found[0]["names_image"], true);
    assert_eq!(found[0]["via"], "tag-schema");
    assert_eq!(
        found[0]["envelope"],
        serde_json::from_str::<Value>(&attestation.envelope).unwrap()
    );
    assert!(
        !consumer.store().exists(),
        "pull without --record writes nothing"
    );
    let recorded = consumer.json(&["attest", "pull", &image.reference, "--record"]);
    assert_eq!(recorded["recorded"].as_array().unwrap().len(), 1);
    let facts = consumer
        .open()
        .facts("attestation", Some(&image.digest))
        .unwrap();
    let Record::Attestation(copy) = &facts[0].record else {
        panic!("an attestation")
    };
    assert_eq!(copy.envelope, attestation.envelope);
    assert_eq!(copy.predicate_type, attestation.predicate_type);
    let twice = consumer.json(&["attest", "pull", &image.reference, "--record"]);
    assert_eq!(twice["unchanged"], 1);
    assert_eq!(consumer.entries(), 1);
}

// ---------------------------------------------------------------------------------------
// Faults: each a specific error, and the ledger unchanged

/// Pushes a one-layer image with `client` (which may carry credentials), since skopeo in the
/// testkit pushes anonymously.
fn push_tiny_image(client: &Client, reference: &str) -> Digest {
    let r = ImageRef::parse(reference).unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"org.opencontainers.image.revision": REVISION}},
    }))
    .unwrap();
    let config_digest = client.push_blob(&r.repository, &config).unwrap();
    let layer_digest = client.push_blob(&r.repository, b"a layer").unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest.to_string(), "size": 7}],
    }))
    .unwrap();
    let tag = lineage_model::Tag::parse(r.tag.as_ref().unwrap().as_str()).unwrap();
    client
        .push_manifest(
            &r.repository,
            &Reference::Tag(tag),
            media::OCI_MANIFEST,
            &manifest,
        )
        .unwrap()
        .digest
}

fn docker_config(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    let auth = base64(format!("{user}:{password}").as_bytes());
    let path = dir.join("docker");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(
        path.join("config.json"),
        serde_json::to_vec(&json!({"auths": {host: {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    path
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn registry_faults_are_specific_and_record_nothing() {
    let ledger = Ledger::new();
    let secured = Registry::start_with_htpasswd("ci", "s3cret");
    let (user, password) = secured.credentials().unwrap();
    let pusher = client().with_credentials(secured.host(), Credentials::new(user, password));
    let reference = secured.reference("app:1");
    let digest = push_tiny_image(&pusher, &reference);
    ledger.service("app", repo_of(&reference));
    let before = ledger.entries();
    let bases_before = base_facts(&ledger).len();

    // Connection refused: a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("127.0.0.1:{port}/app:1");
    let err = ledger.fails(
        2,
        &[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &refused,
        ],
    );
    assert!(
        err.contains(&format!(
            "error: registry `127.0.0.1:{port}` refused the connection"
        )),
        "{err}"
    );
    assert!(err.contains("hint: check that a registry listens"), "{err}");

    // 401 without credentials (HOME has no docker config).
    let err = ledger.fails(
        2,
        &[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &reference,
        ],
    );
    assert!(
        err.contains("requires credentials") && err.contains("hint: log in first"),
        "{err}"
    );
    let err = ledger.fails(2, &["--format", "json", "inspect", &reference]);
    let v: Value = serde_json::from_str(err.trim()).unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requires credentials"));

    // Wrong credentials in a docker config: rejected, with the file named.
    let wrong = docker_config(ledger.dir.path(), secured.host(), user, "wrong");
    let err = ledger
        .cmd(&[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &reference,
        ])
        .env("DOCKER_CONFIG", &wrong)
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
    let err = String::from_utf8(err.stderr).unwrap();
    assert!(
        err.contains("rejected the credentials") && err.contains("config.json"),
        "{err}"
    );

    // An unknown tag.
    let right = docker_config(ledger.dir.path(), secured.host(), user, password);
    let unknown = secured.reference("app:nope");
    let out = ledger
        .cmd(&[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &unknown,
        ])
        .env("DOCKER_CONFIG", &right)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("has no manifest `nope`") && err.contains("hint: check the tag"),
        "{err}"
    );

    // Bad input is refused before the registry is asked.
    let err = ledger.fails(
        2,
        &[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            "127.0.0.1:5000/app:",
        ],
    );
    assert!(err.contains("--from-registry"), "{err}");
    let err = ledger.fails(
        2,
        &["inspect", &reference, "--insecure-registry", "http://x"],
    );
    assert!(err.contains("--insecure-registry `http://x`"), "{err}");

    assert_eq!(ledger.entries(), before, "no fault wrote anything");
    assert_eq!(base_facts(&ledger).len(), bases_before);

    // The same command with the right credentials from a temporary docker config succeeds.
    let out = ledger
        .cmd(&[
            "--format",
            "json",
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            &reference,
        ])
        .env("DOCKER_CONFIG", &right)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], digest.to_string());
    assert_eq!(v["base_detection"]["method"], "unknown");
    assert!(
        ledger.entries() > before,
        "the build (and its gate result) recorded"
    );
    let build = ledger.open().build(&digest).unwrap().unwrap();
    assert_eq!(build.commit.unwrap().as_str(), REVISION);
}

/// Issue 13, items 12 and 13: a base named only by digest is named from the bases Lineage
/// knows (and a digest nobody taught it is said so); a mirror and its origin that match the
/// same layers are both listed, never chosen between silently.
#[test]
fn digest_only_annotations_are_named_and_ambiguous_matches_are_said() {
    let registry = Registry::start();
    let world = World::new();
    let ledger = Ledger::new();
    let base = push_base(&world, &registry, "base:1");
    // The same image under a second name: same digest, same layers.
    let mirror = world.skopeo_copy(
        &base.reference,
        &registry.reference("mirror:1"),
        ImageFormat::Oci,
    );
    assert_eq!(mirror.digest, base.digest);
    for r in [&base.reference, &mirror.reference] {
        ledger.json(&["base", "add", r]);
    }
    ledger.service("app", repo_of(&registry.reference("app:1")));
    let detect = |reference: &str| {
        ledger.json(&[
            "build",
            "record",
            "--env",
            "dev",
            "--from-registry",
            reference,
            "--print-detected",
        ])
    };

    // Only `org.opencontainers.image.base.digest`, as buildah writes for `FROM ${BASE}`.
    let app1 = world.umoci_image(
        &registry.reference("app:1"),
        &[&[("app.txt", "one")]],
        &[("org.opencontainers.image.base.digest", base.digest.as_str())],
    );
    let shown = detect(&app1.reference);
    let d = &shown["base_detection"];
    assert_eq!(d["method"], "annotation", "{shown:#}");
    assert_eq!(
        d["summary"],
        "exact (digest annotation, named from a known base)"
    );
    assert_eq!(
        shown["build"]["bases"][0]["digest"], base.digest,
        "{shown:#}"
    );
    let warning = d["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("known under 2 names")
            && warning.contains(repo_of(&base.reference))
            && warning.contains(repo_of(&mirror.reference)),
        "{shown:#}"
    );

    // A digest no known base has: said, with the way to teach it.
    let unknown = format!("sha256:{}", "f".repeat(64));
    let app2 = world.umoci_image(
        &registry.reference("app:2"),
        &[&[("app.txt", "two")]],
        &[("org.opencontainers.image.base.digest", unknown.as_str())],
    );
    let shown = detect(&app2.reference);
    let d = &shown["base_detection"];
    assert_ne!(d["method"], "annotation", "{shown:#}");
    let warning = d["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("only by digest") && warning.contains("lineage base add"),
        "{shown:#}"
    );

    // No annotations, and the layers of both names match: both are listed.
    let app3 = world.skopeo_copy(
        &base.reference,
        &registry.reference("app:3"),
        ImageFormat::Docker,
    );
    let shown = detect(&app3.reference);
    let d = &shown["base_detection"];
    assert_eq!(d["method"], "layer-match", "{shown:#}");
    let warning = d["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("ambiguous layer match")
            && warning.contains(repo_of(&base.reference))
            && warning.contains(repo_of(&mirror.reference)),
        "{shown:#}"
    );
}

/// Issue 13, item 11: an image whose labels name one base while its layers are another known
/// base's is recorded on the base its layers show, and the contradiction is said.
#[test]
fn layers_win_over_an_annotation_they_contradict() {
    let registry = Registry::start();
    let world = World::new();
    let ledger = Ledger::new();
    let old = push_base(&world, &registry, "base:1.0");
    let new = push_base(&world, &registry, "base:1.1");
    for r in [&old.reference, &new.reference] {
        ledger.json(&["base", "add", r]);
    }
    let app_ref = registry.reference("app:5");
    // Built on 1.1, labelled 1.0 (a stale label copied from an older Dockerfile), pushed as
    // Docker v2s2 so that only the labels speak for the base.
    world.buildah_build(
        &format!(
            "FROM {}\nLABEL org.opencontainers.image.base.name={} org.opencontainers.image.base.digest={}\nCOPY a.txt /a.txt\n",
            new.pinned(),
            old.reference,
            old.digest
        ),
        &[("a.txt", "a")],
        &app_ref,
        &[],
    );
    world.buildah_push(&app_ref, ImageFormat::Docker);
    ledger.service("app", repo_of(&app_ref));
    let shown = ledger.json(&[
        "build",
        "record",
        "--env",
        "dev",
        "--from-registry",
        &app_ref,
        "--print-detected",
    ]);
    let d = &shown["base_detection"];
    assert_eq!(d["method"], "layer-match", "{shown:#}");
    assert_eq!(
        shown["build"]["bases"][0]["digest"], new.digest,
        "{shown:#}"
    );
    let warning = d["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("annotations say") && warning.contains(&old.digest),
        "{shown:#}"
    );
}
