//! SBOMs, scans and the CVE questions end to end: the real `lineage` binary imports the real
//! scanner and SBOM outputs in the shared fixtures, a CycloneDX document the real
//! `cyclonedx-py` writes during the test, and SBOM attestations pushed to a real registry;
//! then `affected --package/--purl/--cve` and `vulns` answer from them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use lineage_model::ImageRef;
use lineage_registry::{media, Artifact, Client, ClientConfig, Reference};
use lineage_store::StoreLocation;
use lineage_testkit::{fixture, Registry, World};
use serde_json::{json, Value};

const NOW: &str = "2026-11-17T09:12:00Z";

struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("ledger.db")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "sec@acme.dev");
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
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }

    /// Runs a command that must exit with `code`; returns stdout and stderr.
    fn fails(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.output(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "lineage {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn entries(&self) -> u64 {
        if !self.store().exists() {
            return 0;
        }
        lineage_store::open(&StoreLocation::Sqlite(self.store()), false)
            .unwrap()
            .len()
            .unwrap()
    }

    fn write(&self, name: &str, value: &Value) -> String {
        let path = self.path(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path.display().to_string()
    }
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

fn fx(relative: &str) -> String {
    fixture(relative).display().to_string()
}

const TRIVY_SUBJECT: &str =
    "sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60";
const GRYPE_SUBJECT: &str =
    "sha256:ca738abb87a8d58f112d3400ebb079b61ceae7dc290beb34bda735be4b1941d5";
const SPDX_SUBJECT: &str =
    "sha256:2731251dc34951c0e50fcc643b4c5f74922dad1a5d98f302b504cf46cd5d9368";

#[test]
fn every_fixture_format_imports_as_one_record() {
    let l = Ledger::new();
    let cases = [
        (
            "scan",
            "trivy/trivy.alpine-310-registry.json",
            TRIVY_SUBJECT.to_string(),
            "trivy",
            2,
            4,
        ),
        (
            "scan",
            "trivy/trivy.cocoapods-repo.json",
            digest("pods"),
            "trivy",
            1,
            1,
        ),
        (
            "scan",
            "grype/grype.TestJsonImgsPresenter.golden.json",
            GRYPE_SUBJECT.to_string(),
            "grype",
            2,
            2,
        ),
        (
            "scan",
            "grype/grype.TestJsonDirsPresenter.golden.json",
            digest("dir"),
            "grype",
            2,
            2,
        ),
        (
            "sbom",
            "sbom-spdx/syft.TestSPDXJSONImageEncoder.golden.spdx.json",
            SPDX_SUBJECT.to_string(),
            "spdx-2.3",
            2,
            0,
        ),
        (
            "sbom",
            "sbom-spdx/cosign.bom-go-mod.spdx-2.2.json",
            digest("spdx22"),
            "spdx-2.2",
            0,
            0,
        ),
        (
            "sbom",
            "sbom-cyclonedx/syft.TestCycloneDxImageEncoder.golden.cdx-1.6.json",
            digest("cdx16"),
            "cyclonedx-1.6",
            2,
            0,
        ),
        (
            "sbom",
            "sbom-cyclonedx/cyclonedx-spec.valid-component-hashes-1.5.json",
            digest("cdx15"),
            "cyclonedx-1.5",
            1,
            0,
        ),
        (
            "sbom",
            "sbom-cyclonedx/cosign.bom-go-mod.cdx-1.4.json",
            digest("cdx14"),
            "cyclonedx-1.4",
            0,
            0,
        ),
    ];
    for (i, (cmd, file, subject, format, packages, findings)) in cases.iter().enumerate() {
        let image = format!("registry.acme.dev/img@{subject}");
        let r = l.json(&[cmd, "add", &image, &fx(file)]);
        assert_eq!(r["outcome"], "recorded", "{file}");
        assert_eq!(r["format"], *format, "{file}");
        assert_eq!(r["packages"], *packages, "{file}");
        assert_eq!(r["findings"], *findings, "{file}");
        assert_eq!(r["index"], i, "{file}: one ledger record per import");
        // The document's SHA-256 is the file's.
        let bytes = std::fs::read(fixture(file)).unwrap();
        let sha = {
            use sha2::Digest as _;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
        };
        assert_eq!(r["document"], sha, "{file}");
        // The same document again is no new record.
        let again = l.json(&[cmd, "add", &image, &fx(file)]);
        assert_eq!(again["outcome"], "unchanged", "{file}");
    }
    assert_eq!(l.entries(), cases.len() as u64);
    // The ledger still verifies: the projections are rebuilt from the records.
    let v = l.json(&["log", "verify"]);
    assert_eq!(v["verified"], true, "{v}");
}

#[test]
fn bad_documents_exit_2_name_the_field_and_write_nothing() {
    let l = Ledger::new();
    let alpine = format!("localhost/alpine@{}", digest("other"));
    // A scan of another digest.
    let (_, err) = l.fails(
        2,
        &[
            "scan",
            "add",
            &alpine,
            &fx("trivy/trivy.alpine-310-registry.json"),
        ],
    );
    assert!(
        err.contains("`Metadata.RepoDigests[0]`") && err.contains(TRIVY_SUBJECT),
        "{err}"
    );
    let (_, err) = l.fails(
        2,
        &[
            "scan",
            "add",
            &alpine,
            &fx("grype/grype.TestJsonImgsPresenter.golden.json"),
        ],
    );
    assert!(err.contains("`source.target.manifestDigest`"), "{err}");
    let (_, err) = l.fails(
        2,
        &[
            "sbom",
            "add",
            &alpine,
            &fx("sbom-spdx/syft.TestSPDXJSONImageEncoder.golden.spdx.json"),
        ],
    );
    assert!(err.contains("`packages[2].externalRefs (purl)`"), "{err}");
    // A schema-invalid hash.
    let (_, err) = l.fails(
        2,
        &[
            "sbom",
            "add",
            &alpine,
            &fx("sbom-cyclonedx/cyclonedx-spec.invalid-hash-sha256-1.5.json"),
        ],
    );
    assert!(
        err.contains("`components[0].hashes[2].content` `foo`"),
        "{err}"
    );
    // Not a document of any format; a scan given to `sbom add`; an SBOM to `scan add`.
    let other = l.write("other.json", &json!({"kind": "something else"}));
    let (_, err) = l.fails(2, &["sbom", "add", &alpine, &other]);
    assert!(
        err.contains("`spdxVersion`") && err.contains("`bomFormat`"),
        "{err}"
    );
    let (_, err) = l.fails(
        2,
        &[
            "sbom",
            "add",
            &alpine,
            &fx("trivy/trivy.cocoapods-repo.json"),
        ],
    );
    assert!(err.contains("lineage scan add"), "{err}");
    let (_, err) = l.fails(
        2,
        &[
            "scan",
            "add",
            &alpine,
            &fx("sbom-cyclonedx/cosign.bom-go-mod.cdx-1.4.json"),
        ],
    );
    assert!(err.contains("lineage sbom add"), "{err}");
    let (_, err) = l.fails(
        2,
        &[
            "scan",
            "add",
            &alpine,
            &fx("trivy/trivy.cocoapods-repo.json"),
            "--input-format",
            "grype",
        ],
    );
    assert!(err.contains("`--input-format` says Grype"), "{err}");
    // A document that breaks off.
    let broken = l.path("broken.json");
    std::fs::write(&broken, b"{\"SchemaVersion\": 2, \"Results\": [").unwrap();
    let (_, err) = l.fails(2, &["scan", "add", &alpine, broken.to_str().unwrap()]);
    assert!(err.contains("is not valid JSON"), "{err}");
    // A 1 GiB file is refused before it is read, with the limit stated.
    let huge = l.path("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (_, err) = l.fails(2, &["scan", "add", &alpine, huge.to_str().unwrap()]);
    assert!(err.contains("1.0 GiB") && err.contains("256 MiB"), "{err}");
    // An image without a digest.
    let (_, err) = l.fails(
        2,
        &[
            "scan",
            "add",
            "localhost/alpine:3.10",
            &fx("trivy/trivy.alpine-310-registry.json"),
        ],
    );
    assert!(err.contains("not pinned by digest"), "{err}");
    assert!(
        !l.store().exists(),
        "nothing was written, not even a ledger"
    );
}

/// A service `api` built on python@py and deployed to production, another (`web`) deployed
/// and never scanned.
fn fleet(l: &Ledger) {
    for (name, owner) in [("api", "priya@acme.dev"), ("web", "ana@acme.dev")] {
        l.ok(&[
            "service",
            "add",
            name,
            "--owner",
            owner,
            "--backup-owner",
            "jonas@acme.dev",
            "--emergency-approver",
            "maya@acme.dev",
            "--image",
            &format!("ghcr.io/acme/{name}"),
        ]);
    }
    for (name, label, base) in [("api", "api-1", "py"), ("web", "web-1", "node")] {
        l.ok(&[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/{name}:1.0@{}", digest(label)),
            "--base",
            &format!(
                "docker.io/library/{}:1@{}",
                if base == "py" { "python" } else { "node" },
                digest(base)
            ),
            "--base-pulled-at",
            "2026-11-10T13:00:00Z",
            "--repo",
            &format!("https://github.com/acme/{name}"),
            "--branch",
            "main",
            "--commit",
            "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
            "--finished-at",
            "2026-11-10T14:00:00Z",
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            "7",
        ]);
        for env in ["staging", "production"] {
            l.ok(&[
                "deploy",
                "record",
                "--image",
                &format!("ghcr.io/acme/{name}@{}", digest(label)),
                "--env",
                env,
                "--by",
                "jonas@acme.dev",
                "--approved-by",
                "maya@acme.dev",
                "--at",
                "2026-11-11T10:00:00Z",
            ]);
        }
    }
}

/// A Trivy report (SchemaVersion 2) of an image with the given layers and findings:
/// `(package, version, purl type, layer index, cve, severity, fixed)`.
fn trivy(
    subject: &str,
    diff_ids: &[String],
    created: &str,
    vulns: &[(&str, &str, &str, usize, &str, &str, &str)],
) -> Value {
    let v: Vec<Value> = vulns
        .iter()
        .map(|(name, version, ty, layer, cve, severity, fixed)| {
            let ns = if *ty == "deb" { "debian/" } else { "" };
            json!({
                "VulnerabilityID": cve, "PkgName": name, "InstalledVersion": version,
                "PkgIdentifier": {"PURL": format!("pkg:{ty}/{ns}{name}@{version}")},
                "FixedVersion": fixed, "Severity": severity,
                "Layer": {"DiffID": diff_ids[*layer]},
            })
        })
        .collect();
    json!({
        "SchemaVersion": 2, "CreatedAt": created, "ArtifactName": format!("ghcr.io/acme/x@{subject}"),
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [format!("ghcr.io/acme/x@{subject}")], "DiffIDs": diff_ids},
        "Results": [{"Target": "x", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": v}],
    })
}

#[test]
fn a_cve_drill_answers_who_runs_it_where_base_or_app_and_who_fixes_it() {
    let l = Ledger::new();
    fleet(&l);
    let base_layers = vec![digest("layer base 1"), digest("layer base 2")];
    let mut app_layers = base_layers.clone();
    app_layers.push(digest("layer app 1"));
    // The base's own scan says which layers are the base's.
    let base = l.write(
        "python.json",
        &trivy(
            &digest("py"),
            &base_layers,
            "2026-11-15T08:00:00Z",
            &[(
                "libssl3",
                "3.0.11-1~deb12u2",
                "deb",
                1,
                "CVE-2026-1001",
                "CRITICAL",
                "3.0.15-1~deb12u1",
            )],
        ),
    );
    l.ok(&[
        "scan",
        "add",
        &format!("docker.io/library/python@{}", digest("py")),
        &base,
    ]);
    let app = l.write(
        "api.json",
        &trivy(
            &digest("api-1"),
            &app_layers,
            "2026-11-16T08:00:00Z",
            &[
                (
                    "libssl3",
                    "3.0.11-1~deb12u2",
                    "deb",
                    1,
                    "CVE-2026-1001",
                    "CRITICAL",
                    "3.0.15-1~deb12u1",
                ),
                (
                    "requests",
                    "2.31.0",
                    "pypi",
                    2,
                    "CVE-2026-2002",
                    "HIGH",
                    "2.32.0",
                ),
            ],
        ),
    );
    l.ok(&[
        "scan",
        "add",
        &format!("ghcr.io/acme/api@{}", digest("api-1")),
        &app,
    ]);

    // The advisory names a CVE: one command answers.
    let r = l.json(&["affected", "--cve", "cve-2026-1001"]);
    assert_eq!(r["query"]["cve"], "CVE-2026-1001");
    let api = &r["services"][0];
    assert_eq!(api["service"], "api");
    assert_eq!(api["owners"]["owner"], "priya@acme.dev");
    assert_eq!(api["owners"]["backup_owner"], "jonas@acme.dev");
    let envs: Vec<&str> = api["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["production", "staging"], "production first");
    let prod = &api["running"][0];
    assert_eq!(prod["digest"], digest("api-1"));
    let pkg = &prod["packages"][0];
    assert_eq!(pkg["name"], "libssl3");
    assert_eq!(pkg["origin"], "base", "{pkg}");
    assert!(
        pkg["origin_evidence"]
            .as_str()
            .unwrap()
            .contains("is a layer of docker.io/library/python:1@"),
        "{pkg}"
    );
    assert_eq!(pkg["fixed"], "3.0.15-1~deb12u1");
    assert!(
        prod["rebuild"]
            .as_str()
            .unwrap()
            .starts_with("git checkout 4f2a9c1e8b7d"),
        "{prod}"
    );
    // web runs in production and was never scanned: unknown, not clean.
    assert_eq!(r["not_scanned"][0]["service"], "web");
    assert_eq!(r["not_scanned"][0]["reason"], "never scanned");

    // The advisory names a package and a range instead.
    let r = l.json(&["affected", "--package", "libssl3@<3.0.15-1~deb12u1"]);
    assert_eq!(
        r["services"][0]["running"][0]["packages"][0]["origin"],
        "base"
    );
    assert_eq!(
        r["services"][0]["running"][0]["packages"][0]["findings"][0]["id"],
        "CVE-2026-1001"
    );
    l.fails(1, &["affected", "--package", "libssl3@>=3.0.15-1~deb12u1"]);
    // An application dependency: the owner patches it, no rebuild helps.
    let r = l.json(&["affected", "--purl", "pkg:pypi/requests@2.31.0"]);
    let prod = &r["services"][0]["running"][0];
    assert_eq!(prod["packages"][0]["origin"], "app", "{prod}");
    assert!(
        prod["packages"][0]["origin_evidence"]
            .as_str()
            .unwrap()
            .contains("is not one of"),
        "{prod}"
    );
    assert_eq!(prod["rebuild"], Value::Null);
    let human = l.ok(&["affected", "--package", "requests"]);
    assert!(human.contains("requests 2.31.0 (pypi)  app:"), "{human}");
    assert!(human.contains("fix (app): priya@acme.dev"), "{human}");
    assert!(human.contains("not scanned recently"), "{human}");

    // `vulns`: by owner, base findings with the rebuild command apart from app findings.
    let v = l.json(&["vulns", "--env", "production"]);
    let group = &v["owners"][0];
    assert_eq!(group["owner"], "priya@acme.dev");
    let image = &group["images"][0];
    assert_eq!(image["service"], "api");
    assert_eq!(image["base_findings"][0]["id"], "CVE-2026-1001");
    assert_eq!(image["app_findings"][0]["id"], "CVE-2026-2002");
    assert!(
        image["rebuild"]
            .as_str()
            .unwrap()
            .contains("docker build --pull"),
        "{image}"
    );
    assert_eq!(v["counts"], json!({"critical": 1, "high": 1}));
    assert_eq!(v["not_scanned_recently"][0]["service"], "web");
    let v = l.json(&["vulns", "--severity", "critical"]);
    assert_eq!(v["owners"][0]["images"][0]["app_findings"], json!([]));
    let human = l.ok(&["vulns"]);
    assert!(
        human.contains("base: rebuild on a newer base: git checkout"),
        "{human}"
    );
    assert!(
        human.contains("app: upgrade these in the service's source"),
        "{human}"
    );

    // A newer scan of the same digest replaces the older one: the CVE is gone.
    let rescanned = l.write(
        "api2.json",
        &trivy(
            &digest("api-1"),
            &app_layers,
            "2026-11-17T08:00:00Z",
            &[(
                "requests",
                "2.31.0",
                "pypi",
                2,
                "CVE-2026-2002",
                "HIGH",
                "2.32.0",
            )],
        ),
    );
    l.ok(&[
        "scan",
        "add",
        &format!("ghcr.io/acme/api@{}", digest("api-1")),
        &rescanned,
    ]);
    l.fails(1, &["affected", "--cve", "CVE-2026-1001"]);
    assert_eq!(l.json(&["log", "verify"])["verified"], true);
}

#[test]
fn an_old_scan_is_not_scanned_recently_never_clean() {
    let l = Ledger::new();
    fleet(&l);
    std::fs::write(l.path("lineage.toml"), "[vulns]\nmax_age = \"3d\"\n").unwrap();
    let layers = vec![digest("l1")];
    for (name, created) in [
        ("api", "2026-11-16T08:00:00Z"),
        ("web", "2026-11-01T08:00:00Z"),
    ] {
        let doc = l.write(
            &format!("{name}.json"),
            &trivy(&digest(&format!("{name}-1")), &layers, created, &[]),
        );
        l.ok(&[
            "scan",
            "add",
            &format!("ghcr.io/acme/{name}@{}", digest(&format!("{name}-1"))),
            &doc,
        ]);
    }
    let v = l.json(&["vulns"]);
    assert_eq!(v["max_age"], "3d");
    assert_eq!(v["owners"], json!([]), "no findings in either");
    let stale = v["not_scanned_recently"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{v}");
    assert_eq!(stale[0]["service"], "web");
    assert_eq!(stale[0]["reason"], "scanned 16 days ago");
    assert_eq!(stale[0]["last"], "2026-11-01T08:00:00Z");
    // Listing something not scanned recently is an answer, not "nothing found".
    let human = l.ok(&["vulns"]);
    assert!(
        human.contains("not scanned recently (max age 3d): unknown, not clean"),
        "{human}"
    );
    // A misspelt key in [vulns] is refused before anything runs.
    std::fs::write(l.path("lineage.toml"), "[vulns]\nmax_ages = 3\n").unwrap();
    let (_, err) = l.fails(2, &["vulns"]);
    assert!(err.contains("did you mean `max_age`?"), "{err}");
}

/// The Python the xtask installs (`LINEAGE_TEST_PYTHON`), whose venv has `cyclonedx-py`.
fn python() -> PathBuf {
    let python = std::env::var_os("LINEAGE_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "LINEAGE_TEST_PYTHON is not set. This test runs the real `cyclonedx-py` (PyPI \
             `cyclonedx-bom`) from the test venv: run `cargo xtask test`, or create one with \
             `python3 -m venv target/test-python && target/test-python/bin/pip install cyclonedx-bom` \
             and export LINEAGE_TEST_PYTHON=target/test-python/bin/python"
        )
    });
    assert!(
        python.exists(),
        "LINEAGE_TEST_PYTHON `{}` does not exist",
        python.display()
    );
    python
}

fn cyclonedx_py(l: &Ledger, spec: &str) -> PathBuf {
    let python = python();
    let tool = python.parent().unwrap().join("cyclonedx-py");
    assert!(
        tool.exists(),
        "`{}` is missing: pip install cyclonedx-bom into the test venv",
        tool.display()
    );
    let out = l.path(&format!("venv.cdx-{spec}.json"));
    let status = Command::new(&tool)
        .args(["environment", "--sv", spec, "--of", "JSON", "-o"])
        .arg(&out)
        .arg(&python)
        .status()
        .unwrap();
    assert!(status.success(), "cyclonedx-py failed");
    out
}

#[test]
fn a_cyclonedx_document_written_by_cyclonedx_py_imports_and_answers() {
    let l = Ledger::new();
    fleet(&l);
    for spec in ["1.4", "1.5", "1.6"] {
        let doc = cyclonedx_py(&l, spec);
        let r = l.json(&[
            "sbom",
            "add",
            &format!("ghcr.io/acme/api@{}", digest("api-1")),
            doc.to_str().unwrap(),
        ]);
        assert_eq!(r["format"], format!("cyclonedx-{spec}"));
        assert!(r["packages"].as_u64().unwrap() >= 3, "{r}");
        assert!(
            r["tool"].as_str().unwrap().starts_with("cyclonedx-py"),
            "{r}"
        );
    }
    // The venv holds cyclonedx-bom itself, under its PyPI purl.
    let r = l.json(&["affected", "--package", "cyclonedx_bom"]);
    let pkg = &r["services"][0]["running"][0]["packages"][0];
    assert_eq!(pkg["ecosystem"], "pypi");
    assert!(
        pkg["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:pypi/cyclonedx-bom@"),
        "{pkg}"
    );
    // No layers and no base SBOM: base or app is unknown, and says why.
    assert_eq!(pkg["origin"], "unknown");
    let r = l.json(&["affected", "--purl", "pkg:pypi/cyclonedx-bom"]);
    assert_eq!(r["services"][0]["service"], "api");
    // Only the newest SBOM of a format counts: the 1.6 one.
    let imports = l.json(&["affected", "--package", "cyclonedx-bom"]);
    assert_eq!(
        imports["services"][0]["running"][0]["packages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn client() -> Client {
    Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(5),
        retry_base_delay: Duration::from_millis(20),
        ..ClientConfig::default()
    })
    .unwrap()
}

/// An in-toto statement about `subject` with an SPDX SBOM predicate.
fn spdx_statement(subject: &str, packages: &[(&str, &str)]) -> Vec<u8> {
    let pkgs: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, (name, version))| {
            json!({"SPDXID": format!("SPDXRef-Package-{i}"), "name": name, "versionInfo": version,
                   "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                     "referenceLocator": format!("pkg:deb/debian/{name}@{version}")}]})
        })
        .collect();
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "app", "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
        "predicate": {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app",
                      "creationInfo": {"created": "2026-11-16T08:00:00Z", "creators": ["Tool: buildkit-syft-scanner"]},
                      "packages": pkgs},
    }))
    .unwrap()
}

#[test]
fn sbom_attestations_pushed_to_a_registry_import_with_from_registry() {
    let registry = Registry::start();
    let world = World::new();
    let l = Ledger::new();
    let client = client();
    let pushed = world.umoci_image(
        &registry.reference("app:1"),
        &[&[("etc/os-release", "ID=lineage-test\n")]],
        &[],
    );
    let r = ImageRef::parse(&pushed.reference).unwrap();
    let repo = r.repository.clone();
    let platform = client.resolve(&r).unwrap();

    // A BuildKit-style index: the image and an attestation manifest holding an SPDX SBOM
    // statement about the platform manifest.
    let statement = spdx_statement(
        &platform.digest.to_string(),
        &[("libssl3", "3.0.11-1~deb12u2"), ("zlib1g", "1.2.13")],
    );
    let layer = client.push_blob(&repo, &statement).unwrap();
    let config = client.push_blob(&repo, b"{}").unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": media::IN_TOTO, "digest": layer.to_string(), "size": statement.len(),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}],
    }))
    .unwrap();
    let att = lineage_registry::digest_of(lineage_model::Algorithm::Sha256, &manifest);
    client
        .push_manifest(
            &repo,
            &Reference::Digest(att.clone()),
            media::OCI_MANIFEST,
            &manifest,
        )
        .unwrap();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [
        {"mediaType": platform.media_type, "digest": platform.digest.to_string(), "size": platform.size,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": media::OCI_MANIFEST, "digest": att.to_string(), "size": manifest.len(),
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": platform.digest.to_string()}},
    ]}))
    .unwrap();
    let multi = client
        .push_manifest(
            &repo,
            &Reference::Tag(lineage_model::Tag::parse("multi").unwrap()),
            media::OCI_INDEX,
            &index,
        )
        .unwrap();

    // The index digest is what gets deployed.
    l.ok(&[
        "service",
        "add",
        "app",
        "--owner",
        "priya@acme.dev",
        "--image",
        &repo.to_string(),
    ]);
    l.ok(&[
        "build",
        "record",
        "--image",
        &format!("{repo}:multi@{}", multi.digest),
        "--base",
        &format!("docker.io/library/debian:12@{}", digest("debian")),
        "--base-pulled-at",
        "2026-11-16T08:00:00Z",
        "--repo",
        "https://github.com/acme/app",
        "--branch",
        "main",
        "--commit",
        "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "--finished-at",
        "2026-11-16T09:00:00Z",
        "--ci-system",
        "github-actions",
        "--ci-run-id",
        "8",
    ]);
    l.ok(&[
        "deploy",
        "record",
        "--image",
        &format!("{repo}@{}", multi.digest),
        "--env",
        "production",
        "--by",
        "jonas@acme.dev",
        "--approved-by",
        "maya@acme.dev",
        "--at",
        "2026-11-16T10:00:00Z",
    ]);
    let out = l.json(&[
        "sbom",
        "add",
        "--from-registry",
        &registry.reference("app:multi"),
    ]);
    assert_eq!(out["digest"], multi.digest.to_string());
    let imports = out["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 1, "{out}");
    assert_eq!(imports[0]["format"], "spdx-2.3");
    assert_eq!(imports[0]["packages"], 2);
    assert_eq!(
        imports[0]["digest"],
        multi.digest.to_string(),
        "recorded for the deployed digest"
    );
    assert!(
        imports[0]["origin"]
            .as_str()
            .unwrap()
            .starts_with("registry buildkit attestation sha256:"),
        "{out}"
    );
    let found = l.json(&["affected", "--package", "libssl3"]);
    assert_eq!(found["services"][0]["service"], "app");
    // Asking again records nothing new.
    let again = l.json(&[
        "sbom",
        "add",
        "--from-registry",
        &registry.reference("app:multi"),
    ]);
    assert_eq!(again["imports"][0]["outcome"], "unchanged");

    // An OCI referrer whose statement names another image: refused, naming the field.
    let other = world.umoci_image(
        &registry.reference("other:1"),
        &[&[("etc/hostname", "other\n")]],
        &[],
    );
    let bogus = spdx_statement(&digest("someone else"), &[("openssl", "1.0")]);
    lineage_registry::attach(
        &client,
        &ImageRef::parse(&other.reference).unwrap(),
        &Artifact {
            artifact_type: media::IN_TOTO.to_string(),
            payload_media_type: media::IN_TOTO.to_string(),
            payload: bogus,
            annotations: Default::default(),
        },
    )
    .unwrap();
    let before = l.entries();
    let (_, err) = l.fails(2, &["sbom", "add", "--from-registry", &other.reference]);
    assert!(err.contains("`subject[0].digest.sha256`"), "{err}");
    assert_eq!(l.entries(), before, "nothing written");
    // No attestation at all: nothing found.
    let bare = world.umoci_image(
        &registry.reference("bare:1"),
        &[&[("etc/hostname", "bare\n")]],
        &[],
    );
    let (out, _) = l.fails(
        1,
        &[
            "--format",
            "json",
            "sbom",
            "add",
            "--from-registry",
            &bare.reference,
        ],
    );
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["found"], false);
}

/// The demo's second drill: the advisory names a package, and one command answers who runs
/// it, where, base or app, and who fixes it.
#[test]
fn the_demo_answers_a_package_advisory_in_one_command() {
    let l = Ledger::new();
    let out = l.output(&["demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("$ lineage affected --package 'libssl3@<3.0.15-1~deb12u1'"),
        "{text}"
    );
    let r = l.json(&["affected", "--package", "libssl3@<3.0.15-1~deb12u1"]);
    let services = r["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{r}");
    let worker = &services[0];
    assert_eq!(worker["service"], "worker");
    assert_eq!(worker["owners"]["owner"], "sam@acme.dev");
    let prod = &worker["running"][0];
    assert_eq!(prod["env"], "production");
    assert_eq!(prod["packages"][0]["origin"], "base");
    assert_eq!(prod["packages"][0]["fixed"], "3.0.15-1~deb12u1");
    assert!(prod["rebuild"]
        .as_str()
        .unwrap()
        .contains("docker build --pull"));
    let v = l.json(&["vulns", "--env", "production"]);
    assert_eq!(
        v["owners"][1]["images"][0]["app_findings"][0]["name"],
        "requests"
    );
    assert_eq!(v["not_scanned_recently"][0]["service"], "web");
}
