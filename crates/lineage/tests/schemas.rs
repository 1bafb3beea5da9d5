//! The JSON formats, held to their schemas (issue 13 item 8): every document Lineage prints
//! is validated against its JSON Schema under `docs/schemas/`, and every field the README's
//! "JSON formats" section lists must be in the schema of its document, so the README, the
//! schemas and the output cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const NOW: &str = "2026-12-03T13:00:00Z";
const CONFIG: &str = "[admission]\nnamespaces = { prod = \"production\", stage = \"staging\" }\n";

/// Schemas that only hold shapes other schemas refer to; no command prints them alone.
const SHARED: &[&str] = &[
    "common.json",
    "placement.json",
    "build-record.json",
    "base-detection.json",
];

/// Schemas of ledger records (the `record` of an entry's `{"kind", "record"}` body): records,
/// not printed documents, so they carry no `schema` field.
const RECORDS: &[&str] = &["sbom-record.json", "incident-record.json"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schemas_dir() -> PathBuf {
    workspace().join("docs/schemas")
}

fn fixtures() -> PathBuf {
    std::env::var_os("LINEAGE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validator for `docs/schemas/NAME`; relative `$ref`s resolve to the files beside it.
fn validator(name: &str) -> jsonschema::Validator {
    let path = schemas_dir().join(name).canonicalize().unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_base_uri(format!("file://{}", path.display()))
        .build(&read_json(&path))
        .unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect()
}

struct Ledger {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ledger {
    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `lineage --format json ARGS`, which must exit `code`; the document from stdout (from
    /// stderr for exit 2, where errors go).
    fn json(&self, code: i32, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        assert_eq!(
            r.code, code,
            "lineage {args:?}:\n{}\n{}",
            r.stdout, r.stderr
        );
        let text = if code == 2 { &r.stderr } else { &r.stdout };
        serde_json::from_str(text).unwrap_or_else(|e| panic!("lineage {args:?}: {e}: {text}"))
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// A pod as `kubectl get pods -A -o json` prints it, running `repo@digest`.
fn pod(namespace: &str, name: &str, repo: &str, digest: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": format!("{name}-6c9f8d7b5-x7k2p"), "namespace": namespace,
                      "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": true,
                                            "name": format!("{name}-6c9f8d7b5"), "uid": "0b6a1f2e" }] },
        "spec": { "containers": [{ "name": name, "image": format!("{repo}:live") }] },
        "status": { "phase": "Running", "containerStatuses": [{
            "name": name, "image": format!("{repo}:live"), "ready": true, "restartCount": 0,
            "imageID": format!("docker-pullable://{repo}@{digest}"),
            "state": { "running": { "startedAt": "2026-12-03T08:00:00Z" } } }] },
    })
}

/// Runs the demo's story and then every other command with `--format json`, and returns
/// each document with the schema it must match.
fn documents() -> Vec<(&'static str, String, Value)> {
    let l = Ledger {
        dir: tempfile::tempdir().unwrap(),
    };
    let demo = l.run(&["demo", "--store", l.store().to_str().unwrap()]);
    assert_eq!(demo.code, 0, "{}\n{}", demo.stdout, demo.stderr);
    std::fs::write(l.dir.path().join("lineage.toml"), CONFIG).unwrap();

    let mut docs: Vec<(&'static str, String, Value)> = Vec::new();
    let mut add = |schema: &'static str, code: i32, args: &[&str]| -> Value {
        let v = l.json(code, args);
        docs.push((schema, args.join(" "), v.clone()));
        v
    };

    let trace = add("trace.json", 0, &["trace", "api"]);
    let api = "ghcr.io/acme/api";
    let newest = trace["digest"].as_str().unwrap().to_string();
    let older = trace["previous"][0]["digest"].as_str().unwrap().to_string();
    let prod = add("running.json", 0, &["running", "--env", "production"]);
    let prod_api = prod["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "api")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let image = |d: &str| format!("{api}@{d}");

    add("running.json", 0, &["running"]);
    add(
        "affected.json",
        0,
        &["affected", "--base", "docker.io/library/python:3.12-slim"],
    );
    add(
        "affected-packages.json",
        0,
        &["affected", "--package", "libssl3@<3.0.15-1~deb12u1"],
    );
    add(
        "affected-packages.json",
        1,
        &["affected", "--cve", "CVE-2099-0001"],
    );
    add("vulns.json", 0, &["vulns", "--env", "production"]);
    add("incident.json", 0, &["incident", "show", "1"]);
    add(
        "incident.json",
        0,
        &[
            "incident",
            "open",
            "--cve",
            "CVE-2026-0451",
            "--title",
            "openssl",
        ],
    );
    add("incident-list.json", 0, &["incident", "list"]);
    add("service-show.json", 0, &["service", "show", "worker"]);
    add("history.json", 0, &["history", "api"]);
    add(
        "history.json",
        0,
        &["history", "api", "--env", "production"],
    );
    add("report-stale.json", 0, &["report", "stale"]);
    add(
        "build-diff.json",
        0,
        &["build", "diff", &image(&older), &image(&newest)],
    );
    add(
        "build-detected.json",
        0,
        &[
            "build",
            "record",
            "--image",
            &image(&newest),
            "--print-detected",
        ],
    );
    add(
        "gate-report.json",
        1,
        &[
            "build",
            "check",
            "--image",
            &format!("{api}@sha256:{}", "5".repeat(64)),
        ],
    );
    add(
        "gate-report.json",
        1,
        &[
            "deploy",
            "check",
            "--image",
            &image(&newest),
            "--env",
            "production",
        ],
    );
    add(
        "gate-report.json",
        1,
        &[
            "deploy",
            "record",
            "--image",
            &image(&newest),
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
        ],
    );

    // Writes: each answers with its own result document.
    add("tag.json", 0, &["tag", &image(&newest), "stable"]);
    add("tag.json", 0, &["tag", &image(&newest), "stable"]);
    add(
        "approve.json",
        0,
        &[
            "approve",
            "--env",
            "production",
            &image(&newest),
            "--reason",
            "reviewed",
        ],
    );
    add(
        "record-result.json",
        0,
        &[
            "deploy",
            "record",
            "--image",
            &image(&newest),
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "priya@acme.dev",
            "--ticket",
            "https://tickets.acme.dev/7",
        ],
    );
    add(
        "deploy-outcome.json",
        0,
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "production",
            "--status",
            "degraded",
            "--detail",
            "p99 doubled",
        ],
    );
    add(
        "record-result.json",
        0,
        &["retire", &image(&prod_api), "--reason", "leaks memory"],
    );
    add("trace.json", 0, &["trace", &image(&newest)]);
    add(
        "rollback.json",
        1,
        &["rollback", "api", "--env", "production", "--dry-run"],
    );
    add(
        "rollback.json",
        0,
        &["rollback", "api", "--env", "staging", "--dry-run"],
    );
    add("rollback.json", 0, &["rollback", "api", "--env", "staging"]);
    add("history.json", 0, &["history", "api"]);

    let sbom = fixtures().join("sbom-cyclonedx/syft.TestCycloneDxImageEncoder.golden.cdx-1.6.json");
    add(
        "sbom-add.json",
        0,
        &["sbom", "add", &image(&newest), sbom.to_str().unwrap()],
    );
    add(
        "sbom-add.json",
        0,
        &["sbom", "add", &image(&newest), sbom.to_str().unwrap()],
    );

    // Runtime truth: production runs api and an image nobody recorded.
    let pods = json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "" }, "items": [
        pod("prod", "api", api, &newest),
        pod("prod", "stray", "ghcr.io/acme/stray", &format!("sha256:{}", "7".repeat(64))),
        pod("kube-system", "dns", "registry.k8s.io/coredns", &format!("sha256:{}", "8".repeat(64))),
    ]});
    let pods = l.write("pods.json", &pods.to_string());
    add(
        "observe.json",
        0,
        &["observe", &pods, "--cluster", "prod-eu-1"],
    );
    add("running.json", 0, &["running"]);
    add("trace.json", 0, &["trace", "api"]);
    add(
        "affected.json",
        0,
        &["affected", "--base", "docker.io/library/python:3.12-slim"],
    );
    add("report-stale.json", 0, &["report", "stale"]);
    add("drift.json", 0, &["drift"]);
    add("drift.json", 0, &["drift", "--reconcile"]);

    add(
        "deploy-end.json",
        0,
        &[
            "deploy",
            "end",
            "--service",
            "web",
            "--env",
            "production",
            "--reason",
            "moved",
        ],
    );
    add(
        "service-remove.json",
        0,
        &["service", "rename", "worker", "jobs", "--reason", "clearer"],
    );
    add(
        "service-remove.json",
        0,
        &["service", "remove", "web", "--reason", "retired"],
    );
    add("service-show.json", 0, &["service", "show", "web"]);
    let services = l.write("services.yaml", "services:\n  - service: billing\n    owner: bo@acme.dev\n    images: [ghcr.io/acme/billing]\n");
    add("service-import.json", 0, &["service", "import", &services]);

    let dsse = fixtures().join("dsse");
    add(
        "verify.json",
        0,
        &[
            "verify",
            dsse.join("dsse-spec-hello-world.envelope.json")
                .to_str()
                .unwrap(),
            "--key",
            dsse.join("dsse-spec-hello-world.pub.pem").to_str().unwrap(),
            "--any-payload",
        ],
    );
    add("log-rotate-key.json", 0, &["log", "rotate-key"]);
    add("log-verify.json", 0, &["log", "verify"]);

    add("not-found.json", 1, &["trace", "nothing-here"]);
    add("not-found.json", 1, &["incident", "show", "99"]);
    add("error.json", 2, &["trace", "sha256:00"]);

    // `inspect` reads OCI layouts offline: an index with referrers, and an image whose
    // config blob is missing (`image: null`, a warning) with a cosign SLSA attestation.
    let regclient = fixtures().join("oci/regclient-testrepo");
    add(
        "inspect.json",
        0,
        &["inspect", "--layout", regclient.to_str().unwrap(), "v2"],
    );
    let cosign = fixtures().join("cosign/slsa-verifier-container-att-layout");
    add(
        "inspect.json",
        0,
        &[
            "inspect",
            "--layout",
            cosign.to_str().unwrap(),
            "sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2",
        ],
    );

    // `init` in repositories on GitHub Actions (with an origin), on GitLab CI, and on nothing.
    let repo = |name: &str, files: &[(&str, &str)]| -> String {
        let root = l.dir.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root.display().to_string()
    };
    let github = repo(
        "payments-api",
        &[
            (
                ".git/config",
                "[remote \"origin\"]\n\turl = git@github.com:acme/payments-api.git\n",
            ),
            (".github/workflows/build.yml", "on: push\n"),
            ("Dockerfile", "FROM debian:12\n"),
            ("svc/Dockerfile", "FROM debian:12\n"),
        ],
    );
    add("init.json", 0, &["init", "--dir", &github]);
    let gitlab = repo(
        "web",
        &[
            (".git/HEAD", "ref: refs/heads/main\n"),
            (".gitlab-ci.yml", "stages: [build]\n"),
            ("Containerfile", "FROM alpine:3.20\n"),
        ],
    );
    add("init.json", 0, &["init", "--dir", &gitlab]);
    let plain = repo("plain", &[("README.md", "plain\n")]);
    add("init.json", 0, &["init", "--dir", &plain]);

    // Ledger records: the `record` of each entry body (`{"kind": ..., "record": {...}}`).
    let store =
        lineage_store::open(&lineage_store::StoreLocation::Sqlite(l.store()), false).unwrap();
    for (kind, schema) in [
        ("sbom", "sbom-record.json"),
        ("incident_opened", "incident-record.json"),
    ] {
        let entries = store.facts(kind, None).unwrap();
        assert!(!entries.is_empty(), "the ledger holds no `{kind}` record");
        for e in entries {
            let body: Value = serde_json::from_str(&e.body).unwrap();
            assert_eq!(body["kind"], kind, "{body}");
            docs.push((
                schema,
                format!("(ledger entry {}, kind {kind})", e.index),
                body["record"].clone(),
            ));
        }
    }
    docs
}

/// Every top-level `required` field of a schema, following a root `$ref`.
fn required(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_document_matches_its_schema_and_a_broken_one_does_not() {
    let docs = documents();
    let mut validators: BTreeMap<&str, jsonschema::Validator> = BTreeMap::new();
    let mut failures = Vec::new();
    for (schema, args, doc) in &docs {
        let v = validators
            .entry(schema)
            .or_insert_with(|| validator(schema));
        for p in problems(v, doc) {
            failures.push(format!("`lineage {args}` against {schema}: {p}"));
        }
        // The schema must be able to say no: an undocumented field, a missing required one.
        let mut extra = doc.clone();
        extra["undocumented"] = json!(1);
        if v.is_valid(&extra) {
            failures.push(format!(
                "{schema} accepts an undocumented field (`lineage {args}`)"
            ));
        }
        let root = read_json(&schemas_dir().join(schema));
        for field in required(&root) {
            let mut broken = doc.clone();
            broken.as_object_mut().unwrap().remove(&field);
            if v.is_valid(&broken) {
                failures.push(format!(
                    "{schema} accepts a document without `{field}` (`lineage {args}`)"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Placements keep `null` for what every placement has: dropping one is refused.
    let trace = &docs.iter().find(|(s, _, _)| *s == "trace.json").unwrap().2;
    let mut broken = trace.clone();
    broken["elsewhere"][0]
        .as_object_mut()
        .unwrap()
        .remove("approved_by");
    assert!(!validators["trace.json"].is_valid(&broken), "{broken}");

    // Build results from `--from-registry` (which needs a registry, see tests/registry.rs)
    // carry `base_detection`, as registry.rs asserts it; a wrong one is refused.
    let base = |n: &str| format!("registry.example/base:{n}@sha256:{}", n.repeat(64));
    let detections = [
        json!({ "method": "annotation", "summary": "exact (annotation)",
                "base": base("1"), "image_layers": 3 }),
        json!({ "method": "layer-match", "summary": "layer match (2 of 3 layers)",
                "base": base("2"), "matched_layers": 2, "image_layers": 3 }),
        json!({ "method": "unknown", "summary": "unknown", "image_layers": 2,
                "warning": "no known base matches" }),
    ];
    for schema in ["record-result.json", "build-detected.json"] {
        let doc = &docs.iter().find(|(s, _, _)| *s == schema).unwrap().2;
        for detection in &detections {
            let mut with = doc.clone();
            with["base_detection"] = detection.clone();
            assert_eq!(problems(&validators[schema], &with), Vec::<String>::new());
            for (field, bad) in [("method", json!("guessed")), ("undocumented", json!(1))] {
                let mut broken = with.clone();
                broken["base_detection"][field] = bad;
                assert!(!validators[schema].is_valid(&broken), "{broken}");
            }
        }
    }

    // Every schema is exercised by some command.
    let used: BTreeSet<&str> = docs.iter().map(|(s, _, _)| *s).collect();
    let unused: Vec<String> = schema_files()
        .into_iter()
        .filter(|f| !used.contains(f.as_str()) && !SHARED.contains(&f.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "schemas no test document checks: {unused:?}"
    );
}

fn schema_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(schemas_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema_with_a_schema_version() {
    for file in schema_files() {
        let schema = read_json(&schemas_dir().join(&file));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}"
        );
        validator(&file);
        if RECORDS.contains(&file.as_str()) {
            assert!(
                schema["properties"].get("schema").is_none(),
                "{file}: a ledger record has no `schema` field"
            );
        } else if !SHARED.contains(&file.as_str()) {
            let text = schema.to_string();
            assert!(
                text.contains(r#""schema":{"const":1}"#),
                "{file} does not pin `schema` to 1"
            );
        }
    }
}

// -------------------------------------------------------------------------------------------
// The README's field lists
// -------------------------------------------------------------------------------------------

/// README label (the bold text opening a bullet, or a bullet's first words) → the schemas that
/// hold its fields, and words in backticks that are not fields (commands named in passing).
const README_DOCS: &[(&str, &[&str], &[&str])] = &[
    (
        "Build record",
        &["build-record.json", "build-detected.json"],
        &["trace"],
    ),
    ("Placement", &["placement.json"], &[]),
    (
        "Placements also carry",
        &["placement.json", "report-stale.json"],
        &[],
    ),
    ("`trace`", &["trace.json"], &[]),
    ("`history`", &["history.json"], &[]),
    ("`rollback`", &["rollback.json"], &[]),
    ("`deploy outcome`", &["deploy-outcome.json"], &[]),
    ("`tag`", &["tag.json"], &[]),
    ("`affected`", &["affected.json"], &[]),
    (
        "`affected --package/--purl/--cve`",
        &["affected-packages.json"],
        &[],
    ),
    ("`vulns`", &["vulns.json"], &["not_scanned"]),
    ("`sbom add` / `scan add`", &["sbom-add.json"], &[]),
    ("SBOM record", &["sbom-record.json"], &[]),
    ("`incident open` / `incident show`", &["incident.json"], &[]),
    ("`incident list`", &["incident-list.json"], &[]),
    (
        "Incident record",
        &["incident-record.json"],
        &["incident_opened"],
    ),
    ("`running`", &["running.json"], &[]),
    ("`service show`", &["service-show.json"], &[]),
    ("`service import`", &["service-import.json"], &[]),
    (
        "`service rename` / `service remove`",
        &["service-remove.json"],
        &[],
    ),
    ("`deploy end`", &["deploy-end.json"], &[]),
    ("`observe`", &["observe.json"], &[]),
    ("`drift`", &["drift.json"], &[]),
    ("record results", &["record-result.json"], &[]),
    ("gate report", &["gate-report.json"], &[]),
    ("`approve`", &["approve.json"], &[]),
    ("`verify`", &["verify.json"], &[]),
    ("`config`", &["common.json"], &[]),
    // `base_detection` is in build results (record-result.json, build-detected.json).
    ("`inspect`", &["inspect.json", "record-result.json"], &[]),
    ("`report stale`", &["report-stale.json"], &[]),
    ("`build diff`", &["build-diff.json"], &[]),
    ("`log verify`", &["log-verify.json"], &[]),
    ("`log rotate-key`", &["log-rotate-key.json"], &[]),
    ("`init`", &["init.json"], &[]),
    ("errors", &["error.json"], &[]),
    (
        "not found",
        &["not-found.json"],
        &["history", "rollback", "affected", "running", "vulns"],
    ),
];

/// The "## JSON formats" section, as (label, text) per documented document.
fn readme_documents() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("\n## JSON formats\n")
        .expect("README has `## JSON formats`");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut bullets: Vec<String> = Vec::new();
    for line in section[..end].lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            bullets.push(rest.to_string());
        } else if line.starts_with("  ") && !bullets.is_empty() {
            let last = bullets.last_mut().unwrap();
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    // One bullet may hold several documents, each opened by a bold label.
    let mut docs = Vec::new();
    for bullet in bullets {
        if !bullet.starts_with("**") {
            let label = README_DOCS
                .iter()
                .map(|(l, _, _)| *l)
                .filter(|l| bullet.starts_with(l))
                .max_by_key(|l| l.len())
                .unwrap_or_else(|| panic!("README bullet without a label: {bullet}"));
            docs.push((label.to_string(), bullet.clone()));
            continue;
        }
        let mut rest = bullet.as_str();
        while let Some(open) = rest.find("**") {
            let after = &rest[open + 2..];
            let close = after.find("**").expect("closed bold label");
            let label = after[..close].to_string();
            let body = &after[close + 2..];
            let next = body.find("**").unwrap_or(body.len());
            docs.push((label, body[..next].to_string()));
            rest = &body[next..];
        }
    }
    docs
}

/// Backticked words that look like field names (`name`, `rows[]`); commands, flags, values
/// with punctuation and JSON fragments are not fields.
fn field_words(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|w| w.trim_end_matches("[]"))
        .filter(|w| {
            !w.is_empty()
                && w.chars().next().unwrap().is_ascii_lowercase()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(String::from)
        .collect()
}

/// Property names and documented values (`enum`, `const`, `examples`) of a schema and every
/// schema it refers to.
fn vocabulary(files: &[&str]) -> BTreeSet<String> {
    fn walk(v: &Value, words: &mut BTreeSet<String>, refs: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    match k.as_str() {
                        "properties" => {
                            for (name, s) in x.as_object().unwrap() {
                                words.insert(name.clone());
                                walk(s, words, refs);
                            }
                        }
                        "enum" | "examples" => words.extend(
                            x.as_array()
                                .unwrap()
                                .iter()
                                .filter_map(|s| s.as_str().map(String::from)),
                        ),
                        "const" => {
                            if let Some(s) = x.as_str() {
                                words.insert(s.to_string());
                            }
                        }
                        "$ref" => {
                            let file = x.as_str().unwrap().split('#').next().unwrap();
                            if !file.is_empty() {
                                refs.push(file.to_string());
                            }
                        }
                        _ => walk(x, words, refs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, words, refs)),
            _ => {}
        }
    }
    let mut words = BTreeSet::new();
    let mut todo: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    let mut seen = BTreeSet::new();
    while let Some(file) = todo.pop() {
        if seen.insert(file.clone()) {
            walk(
                &read_json(&schemas_dir().join(&file)),
                &mut words,
                &mut todo,
            );
        }
    }
    words
}

#[test]
fn every_field_the_readme_lists_is_in_its_schema() {
    let docs = readme_documents();
    assert!(
        docs.len() >= 30,
        "found only {} documents in the README",
        docs.len()
    );
    let mut missing = Vec::new();
    let mut labels = BTreeSet::new();
    for (label, text) in &docs {
        labels.insert(label.as_str());
        let Some((_, files, prose)) = README_DOCS.iter().find(|(l, _, _)| l == label) else {
            missing.push(format!(
                "README documents {label}, which has no schema: add it to README_DOCS"
            ));
            continue;
        };
        let words = vocabulary(files);
        for field in field_words(text) {
            if !words.contains(&field) && !prose.contains(&field.as_str()) {
                missing.push(format!("{label}: `{field}` is not in {files:?}"));
            }
        }
    }
    for (label, _, _) in README_DOCS {
        if !labels.contains(label) {
            missing.push(format!(
                "{label} is mapped to a schema but no longer in the README"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    // The check can fail: a field no schema has is reported.
    assert!(!vocabulary(&["trace.json"]).contains("no_such_field"));
    assert_eq!(
        field_words("`owner`, `rows[]`, `--dry-run`, `name:tag`"),
        ["owner", "rows"]
    );
}
