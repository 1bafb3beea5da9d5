//! Property-based fuzzing of every parser of untrusted input outside the verification code
//! (which has its own targets in lineage-sigstore and lineage-attest): service tables, runtime
//! inventories, SBOMs and scans, builder output files, Dockerfiles. Each target starts from a
//! small valid document and mutates it (cuts, insertions of structural and control
//! characters, repeats); every result must be a value or an error, never a panic, and an
//! error must say something. `PROPTEST_CASES` makes a run longer; the suite runs a short one.

use std::collections::BTreeMap;

use lineage_core::observe::{self, ObserveOptions};
use lineage_core::{builder_output, sbom, services, Config};
use lineage_model::{EnvName, Identity, Timestamp};
use lineage_testkit::fuzz::mutated;
use proptest::prelude::*;

const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

const SERVICES_YAML: &str = "services:\n  - service: api\n    owner: priya@acme.dev\n    backup_owner: jonas@acme.dev\n    images: [ghcr.io/acme/api]\n  - service: web\n    owner: maya@acme.dev\n    images:\n      - ghcr.io/acme/web\n";
const SERVICES_CSV: &str = "service,owner,backup_owner,emergency_approver,source_repo,images\napi,priya@acme.dev,jonas@acme.dev,,https://github.com/acme/api,ghcr.io/acme/api\nweb,\"maya@acme.dev\",,,,ghcr.io/acme/web;ghcr.io/acme/web2\n";

fn pod_list() -> String {
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","items":[{{"metadata":{{"name":"api-7d9f-x2","namespace":"prod","ownerReferences":[{{"kind":"ReplicaSet","name":"api-7d9f"}}]}},"spec":{{"containers":[{{"name":"api","image":"ghcr.io/acme/api:1.4"}}]}},"status":{{"containerStatuses":[{{"name":"api","image":"ghcr.io/acme/api:1.4","imageID":"docker-pullable://ghcr.io/acme/api@{D}"}}]}}}}]}}"#
    )
}

fn inventory_csv() -> String {
    format!("env,workload,container,image\nproduction,api,api,ghcr.io/acme/api@{D}\n")
}

fn cyclonedx() -> String {
    r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"openssl","version":"3.0.13","purl":"pkg:deb/debian/openssl@3.0.13?arch=amd64"},{"type":"library","name":"flask","version":"3.0.0","purl":"pkg:pypi/flask@3.0.0"}],"vulnerabilities":[{"id":"CVE-2024-5535","affects":[{"ref":"pkg:deb/debian/openssl@3.0.13?arch=amd64"}]}]}"#.to_string()
}

fn spdx() -> String {
    r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"img","packages":[{"SPDXID":"SPDXRef-p1","name":"zlib","versionInfo":"1.3","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/zlib@1.3"}]}]}"#.to_string()
}

fn trivy() -> String {
    r#"{"SchemaVersion":2,"ArtifactName":"ghcr.io/acme/api","Results":[{"Target":"os","Class":"os-pkgs","Type":"debian","Packages":[{"Name":"openssl","Version":"3.0.13","Identifier":{"PURL":"pkg:deb/debian/openssl@3.0.13"},"Layer":{"DiffID":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}],"Vulnerabilities":[{"VulnerabilityID":"CVE-2024-5535","PkgName":"openssl","InstalledVersion":"3.0.13","Severity":"HIGH","PkgIdentifier":{"PURL":"pkg:deb/debian/openssl@3.0.13"}}]}]}"#.to_string()
}

fn grype() -> String {
    r#"{"matches":[{"vulnerability":{"id":"CVE-2024-5535","severity":"High"},"artifact":{"name":"openssl","version":"3.0.13","type":"deb","purl":"pkg:deb/debian/openssl@3.0.13","locations":[{"path":"/var/lib/dpkg/status","layerID":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}]}}],"source":{"type":"image","target":{"userInput":"ghcr.io/acme/api"}},"descriptor":{"name":"grype"}}"#.to_string()
}

fn buildx() -> String {
    format!(
        r#"{{"containerimage.digest":"{D}","image.name":"ghcr.io/acme/api:1.4,ghcr.io/acme/api:latest","buildx.build.provenance":{{"buildType":"https://mobyproject.org/buildkit@v1"}}}}"#
    )
}

const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\nARG BASE=python:3.12-slim\nFROM ${BASE} AS build\nRUN pip install -r requirements.txt\nFROM --platform=linux/amd64 gcr.io/distroless/python3@sha256:1111111111111111111111111111111111111111111111111111111111111111\nCOPY --from=build /app /app\n";

/// 256 cases in the suite; `PROPTEST_CASES=N` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn said_something(e: &lineage_core::Error) -> bool {
    !e.to_string().trim().is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn service_tables(
        text in prop_oneof![mutated(SERVICES_YAML.into()), mutated(SERVICES_CSV.into())],
        yaml in any::<bool>(),
    ) {
        let name = if yaml { "services.yaml" } else { "services.csv" };
        if let Err(e) = services::parse_import(&text, name) {
            prop_assert!(said_something(&e));
        }
    }

    #[test]
    fn runtime_inventories(text in prop_oneof![mutated(pod_list()), mutated(inventory_csv())]) {
        let mut namespaces = BTreeMap::new();
        namespaces.insert("prod".to_string(), EnvName::parse("production").unwrap());
        let config = Config::default();
        let opts = ObserveOptions {
            source: "fuzz".into(),
            format: None,
            namespaces: &namespaces,
            config: &config,
            seen_at: Timestamp::parse("2026-11-17T09:00:00Z").unwrap(),
            by: Identity::parse("sa:fuzz").unwrap(),
            name: "input".into(),
        };
        if let Err(e) = observe::parse(&text, &opts) {
            prop_assert!(said_something(&e));
        }
    }

    #[test]
    fn sboms_and_scans(
        text in prop_oneof![mutated(cyclonedx()), mutated(spdx()), mutated(trivy()), mutated(grype())],
    ) {
        if let Err(e) = sbom::read_document(text.as_bytes(), "doc.json", None) {
            prop_assert!(said_something(&e));
        }
    }

    #[test]
    fn builder_output_files(text in prop_oneof![mutated(buildx()), mutated(D.into())]) {
        if let Err(e) = builder_output::parse_buildx_metadata(&text, "metadata.json") {
            prop_assert!(said_something(&e));
        }
        if let Err(e) = builder_output::parse_digest_file(&text, "digest") {
            prop_assert!(said_something(&e));
        }
    }

    #[test]
    fn dockerfiles(text in mutated(DOCKERFILE.into())) {
        let parsed = lineage_policy::dockerfile::parse_dockerfile(&text);
        // What the parser returns is consistent: every stage points at a base it listed or
        // an earlier stage, and names a line of the text.
        let lines = text.lines().count() as u32;
        for (i, stage) in parsed.stages.iter().enumerate() {
            prop_assert!(stage.line >= 1 && stage.line <= lines.max(1), "{stage:?}");
            match stage.source {
                lineage_policy::dockerfile::StageSource::External(b) => {
                    prop_assert!(b < parsed.bases.len(), "{stage:?}")
                }
                lineage_policy::dockerfile::StageSource::Stage(s) => prop_assert!(s < i, "{stage:?}"),
                lineage_policy::dockerfile::StageSource::Scratch => {}
            }
        }
    }
}

#[test]
fn deeply_nested_yaml_is_refused_before_it_is_parsed() {
    for text in [
        format!("services: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("services:\n{}", "- ".repeat(50_000)),
    ] {
        let e = services::parse_import(&text, "services.yaml").unwrap_err();
        assert!(e.to_string().contains("nests deeper than 16 levels"), "{e}");
    }
}
