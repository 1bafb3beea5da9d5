//! The incident drill end to end, with the real binary: an incident opened on a base, a CVE
//! or a package snapshots what runs it; builds, deploys and scans recorded later at later
//! `LINEAGE_NOW` times move it, with exact elapsed times, until it closes.

use std::path::PathBuf;
use std::process::Command;

use lineage_store::StoreLocation;
use serde_json::{json, Value};

/// Set-up happens a week before the incident.
const SETUP: &str = "2026-11-10T09:00:00Z";
const OPEN: &str = "2026-11-17T09:00:00Z";
const CONFIG: &str = "[gates]\napproval = \"off\"\n";

struct Ledger {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ledger {
    fn new() -> Ledger {
        let l = Ledger {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(l.dir.path().join("lineage.toml"), CONFIG).unwrap();
        l
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// Runs `lineage ARGS` with the clock at `now`.
    fn run_at(&self, now: &str, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", now)
            .env("LINEAGE_ACTOR", "maya@acme.dev")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok_at(&self, now: &str, args: &[&str]) -> String {
        let r = self.run_at(now, args);
        assert_eq!(r.code, 0, "lineage {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    fn json_at(&self, now: &str, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let out = self.ok_at(now, &all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Exit code, stdout and stderr, for a snapshot.
    fn snapshot_at(&self, now: &str, args: &[&str]) -> String {
        let r = self.run_at(now, args);
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            r.code, r.stdout, r.stderr
        )
    }

    /// How many entries the ledger holds.
    fn entries(&self) -> u64 {
        lineage_store::open(&StoreLocation::Sqlite(self.store()), false)
            .unwrap()
            .len()
            .unwrap()
    }

    fn service(&self, name: &str, owner: &str, backup: &str) {
        self.ok_at(
            SETUP,
            &[
                "service",
                "add",
                name,
                "--owner",
                owner,
                "--backup-owner",
                backup,
                "--image",
                &format!("ghcr.io/acme/{name}"),
            ],
        );
    }

    /// A build of `ghcr.io/acme/SERVICE@digest(label)` on python `base`, recorded at `now`.
    fn build(&self, now: &str, service: &str, label: &str, base: &str) {
        self.ok_at(
            now,
            &[
                "build",
                "record",
                "--image",
                &format!("ghcr.io/acme/{service}@{}", digest(label)),
                "--base",
                &format!("python:3.12-slim@{}", digest(base)),
                "--base-pulled-at",
                now,
                "--repo",
                &format!("https://github.com/acme/{service}"),
                "--branch",
                "main",
                "--commit",
                &"c".repeat(40),
                "--finished-at",
                now,
                "--ci-system",
                "github-actions",
                "--ci-run-id",
                label,
                "--allow-failures",
            ],
        );
    }

    /// A deploy at `now` (the deploy's own time defaults to it).
    fn deploy(&self, now: &str, service: &str, label: &str, env: &str) {
        self.ok_at(
            now,
            &[
                "deploy",
                "record",
                "--image",
                &format!("ghcr.io/acme/{service}@{}", digest(label)),
                "--env",
                env,
                "--by",
                "jonas@acme.dev",
            ],
        );
    }

    fn write(&self, name: &str, value: &Value) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path.display().to_string()
    }

    /// Imports a Trivy scan of `service@digest(label)` finding `cves` in libssl3.
    fn scan(&self, now: &str, service: &str, label: &str, cves: &[&str]) {
        let file = self.write(&format!("{label}.json"), &trivy(&digest(label), now, cves));
        self.ok_at(
            now,
            &[
                "scan",
                "add",
                &format!("ghcr.io/acme/{service}@{}", digest(label)),
                &file,
                "--by",
                "sa:scanner",
            ],
        );
    }
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

/// A Trivy report (SchemaVersion 2) of an image whose libssl3 has the given findings (none:
/// the fixed version, nothing found).
fn trivy(subject: &str, created: &str, cves: &[&str]) -> Value {
    let layers = [
        digest(&format!("layer base {subject}")),
        digest(&format!("layer app {subject}")),
    ];
    let vulns: Vec<Value> = cves
        .iter()
        .map(|id| {
            json!({
                "VulnerabilityID": id, "PkgName": "libssl3", "InstalledVersion": "3.0.11-1~deb12u2",
                "PkgIdentifier": {"PURL": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2"},
                "FixedVersion": "3.0.15-1~deb12u1", "Severity": "CRITICAL",
                "Layer": {"DiffID": layers[0]},
            })
        })
        .collect();
    let version = if cves.is_empty() {
        "3.0.15-1~deb12u1"
    } else {
        "3.0.11-1~deb12u2"
    };
    json!({
        "SchemaVersion": 2, "CreatedAt": created, "ArtifactName": format!("ghcr.io/acme/x@{subject}"),
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [format!("ghcr.io/acme/x@{subject}")], "DiffIDs": layers},
        "Results": [{
            "Target": "x (debian 12.8)", "Class": "os-pkgs", "Type": "debian",
            "Packages": [{
                "Name": "libssl3", "Version": version,
                "Identifier": {"PURL": format!("pkg:deb/debian/libssl3@{version}")},
                "Layer": {"DiffID": layers[0]},
            }],
            "Vulnerabilities": vulns,
        }],
    })
}

/// api and worker, both built on the bad python digest, running it in staging and production.
fn fleet() -> Ledger {
    let l = Ledger::new();
    l.service("api", "priya@acme.dev", "jonas@acme.dev");
    l.service("worker", "sam@acme.dev", "lee@acme.dev");
    for service in ["api", "worker"] {
        let label = format!("{service}-1");
        l.build(SETUP, service, &label, "py-bad");
        for env in ["staging", "production"] {
            l.deploy(SETUP, service, &label, env);
        }
    }
    l
}

/// (env, status, elapsed seconds) per environment of a service in `incident show` JSON.
fn envs(report: &Value, service: &str) -> Vec<(String, String, Option<i64>)> {
    let s = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service}: {report:#}"));
    s["envs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["env"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
                e["elapsed_secs"].as_i64(),
            )
        })
        .collect()
}

fn row(env: &str, status: &str, secs: Option<i64>) -> (String, String, Option<i64>) {
    (env.into(), status.into(), secs)
}

#[test]
fn a_base_incident_tracks_every_environment_until_the_last_is_fixed() {
    let l = fleet();
    let before = l.entries();
    // A digest prefix is resolved once, at the opening.
    let prefix = &digest("py-bad")[..19];
    let opened = l.json_at(
        OPEN,
        &[
            "incident",
            "open",
            "--title",
            "OpenSSL in our python base",
            "--base",
            prefix,
        ],
    );
    assert_eq!(l.entries(), before + 1, "one ledger record");
    assert_eq!(opened["schema"], 1);
    assert_eq!(
        (opened["id"].as_u64(), opened["drill"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(
        opened["query"],
        json!({"kind": "base", "value": digest("py-bad")})
    );
    assert_eq!(
        (opened["status"].as_str(), opened["elapsed_secs"].as_i64()),
        (Some("open"), Some(0))
    );
    assert_eq!(
        opened["counts"],
        json!({"services": 2, "services_fixed": 0, "envs": 4, "envs_fixed": 0})
    );
    assert_eq!(
        envs(&opened, "api"),
        [
            row("production", "affected", None),
            row("staging", "affected", None)
        ],
        "production first"
    );
    assert_eq!(
        opened["services"][0]["envs"][0]["affected_digest"],
        digest("api-1")
    );

    // The fix, over the next three hours.
    l.build("2026-11-17T09:20:00Z", "api", "api-2", "py-good");
    l.deploy("2026-11-17T09:45:00Z", "api", "api-2", "staging");
    l.build("2026-11-17T10:05:00Z", "worker", "worker-2", "py-good");
    l.deploy("2026-11-17T10:30:00Z", "worker", "worker-2", "staging");
    l.deploy("2026-11-17T11:00:00Z", "api", "api-2", "production");

    let mid = l.json_at("2026-11-17T11:10:00Z", &["incident", "show", "1"]);
    assert_eq!(
        (mid["status"].as_str(), mid["elapsed_secs"].as_i64()),
        (Some("open"), Some(7800))
    );
    assert_eq!(mid["closed_at"], Value::Null);
    assert_eq!(
        mid["counts"],
        json!({"services": 2, "services_fixed": 1, "envs": 4, "envs_fixed": 3})
    );
    assert_eq!(
        envs(&mid, "api"),
        [
            row("production", "fixed", Some(7200)),
            row("staging", "fixed", Some(2700))
        ]
    );
    assert_eq!(
        envs(&mid, "worker"),
        [
            row("production", "affected", None),
            row("staging", "fixed", Some(5400))
        ]
    );
    let worker = &mid["services"][1];
    assert_eq!(worker["status"], "open");
    assert_eq!(worker["owners"]["owner"], "sam@acme.dev", "who to call");
    assert_eq!(worker["owners"]["backup_owner"], "lee@acme.dev");
    assert_eq!(worker["envs"][0]["running"], digest("worker-1"));
    assert_eq!(
        worker["first_fixed_build"],
        json!({"digest": digest("worker-2"), "at": "2026-11-17T10:05:00Z", "elapsed_secs": 3900})
    );
    let api = &mid["services"][0];
    assert_eq!(
        (api["status"].as_str(), api["elapsed_secs"].as_i64()),
        (Some("fixed"), Some(7200))
    );
    assert_eq!(api["first_fixed_build"]["elapsed_secs"], 1200);
    assert_eq!(api["envs"][0]["fixed_by"], digest("api-2"));

    // The last environment closes the incident.
    l.deploy("2026-11-17T12:15:00Z", "worker", "worker-2", "production");
    let done = l.json_at("2026-11-17T15:00:00Z", &["incident", "show", "1"]);
    assert_eq!(
        (
            done["status"].as_str(),
            done["closed_at"].as_str(),
            done["elapsed_secs"].as_i64()
        ),
        (Some("closed"), Some("2026-11-17T12:15:00Z"), Some(11700)),
        "elapsed to the closing, not to now"
    );
    assert_eq!(
        envs(&done, "worker"),
        [
            row("production", "fixed", Some(11700)),
            row("staging", "fixed", Some(5400))
        ]
    );
    let timeline: Vec<(String, String, String, i64)> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            (
                s("event"),
                s("service"),
                s("env"),
                e["elapsed_secs"].as_i64().unwrap(),
            )
        })
        .collect();
    let step = |event: &str, service: &str, env: &str, secs: i64| {
        (
            event.to_string(),
            service.to_string(),
            env.to_string(),
            secs,
        )
    };
    assert_eq!(
        timeline,
        [
            step("opened", "-", "-", 0),
            step("first_fixed_build", "api", "-", 1200),
            step("env_fixed", "api", "staging", 2700),
            step("first_fixed_build", "worker", "-", 3900),
            step("env_fixed", "worker", "staging", 5400),
            step("env_fixed", "api", "production", 7200),
            step("env_fixed", "worker", "production", 11700),
            step("closed", "-", "-", 11700),
        ]
    );

    let list = l.json_at("2026-11-17T15:00:00Z", &["incident", "list"]);
    assert_eq!(list["schema"], 1);
    let one = &list["incidents"][0];
    assert_eq!(
        (
            one["id"].as_u64(),
            one["status"].as_str(),
            one["elapsed_secs"].as_i64()
        ),
        (Some(1), Some("closed"), Some(11700))
    );
    assert_eq!(one["opened_at"], OPEN);
    assert_eq!(one["counts"]["envs_fixed"], 4);

    insta::assert_snapshot!(
        "incident_show_closed",
        l.snapshot_at("2026-11-17T15:00:00Z", &["incident", "show", "1"])
    );
    insta::assert_snapshot!(
        "incident_list",
        l.snapshot_at("2026-11-17T15:00:00Z", &["incident", "list"])
    );
    // The opening is in the log like every record, and the audit accepts it.
    let verified = l.json_at("2026-11-17T15:00:00Z", &["log", "verify"]);
    assert_eq!(verified["verified"], true, "{verified:#}");
}

#[test]
fn a_drill_is_marked_as_one_everywhere_and_open_services_name_who_to_call() {
    let l = fleet();
    let human = l.ok_at(
        OPEN,
        &[
            "incident",
            "open",
            "--drill",
            "--title",
            "Quarterly drill",
            "--base",
            "python:3.12-slim",
            "--by",
            "lee@acme.dev",
        ],
    );
    assert!(
        human.starts_with("opened incident 1 (drill): Quarterly drill"),
        "{human}"
    );
    assert!(
        human.contains("call priya@acme.dev (backup jonas@acme.dev)"),
        "{human}"
    );
    l.build("2026-11-17T09:30:00Z", "api", "api-2", "py-good");
    l.deploy("2026-11-17T10:00:00Z", "api", "api-2", "staging");
    let show = l.json_at("2026-11-17T10:30:00Z", &["incident", "show", "1"]);
    assert_eq!(show["drill"], true);
    assert_eq!(show["opened_by"], "lee@acme.dev");
    assert_eq!(
        show["query"],
        json!({"kind": "base", "value": "docker.io/library/python:3.12-slim"})
    );
    // The question names the tag, not a digest: a rebuild on the same tag is still affected.
    assert_eq!(
        envs(&show, "api"),
        [
            row("production", "affected", None),
            row("staging", "affected", None)
        ]
    );
    assert_eq!(show["services"][0]["first_fixed_build"], Value::Null);
    insta::assert_snapshot!(
        "incident_show_drill_open",
        l.snapshot_at("2026-11-17T10:30:00Z", &["incident", "show", "1"])
    );
    // A second, real incident: the list tells them apart, newest first.
    l.ok_at(
        "2026-11-17T10:40:00Z",
        &[
            "incident",
            "open",
            "--title",
            "Real one",
            "--base",
            &digest("py-bad"),
        ],
    );
    let list = l.json_at("2026-11-17T11:00:00Z", &["incident", "list"]);
    let rows: Vec<(u64, bool, i64)> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_u64().unwrap(),
                i["drill"].as_bool().unwrap(),
                i["elapsed_secs"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [(2, false, 1200), (1, true, 7200)]);
    let human = l.ok_at("2026-11-17T11:00:00Z", &["incident", "list"]);
    let kinds: Vec<&str> = human
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(kinds, ["incident", "drill"], "{human}");
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let l = fleet();
    let before = l.entries();
    let bad_title = "a\u{1b}[2Jb";
    let long_title = "x".repeat(201);
    let bad_base = format!("python:3.12-slim@{}", digest("py-bad"));
    let unused = digest("py-unused");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["incident", "open", "--title", "t"],
            2,
            "`--base`, `--cve` or `--package`",
        ),
        (
            vec![
                "incident",
                "open",
                "--title",
                "t",
                "--base",
                &bad_base,
                "--cve",
                "CVE-2026-1",
            ],
            2,
            "`--base` and `--cve` were given",
        ),
        (
            vec!["incident", "open", "--title", "", "--base", &bad_base],
            2,
            "--title",
        ),
        (
            vec![
                "incident", "open", "--title", bad_title, "--base", &bad_base,
            ],
            2,
            "U+001B",
        ),
        (
            vec![
                "incident",
                "open",
                "--title",
                &long_title,
                "--base",
                &bad_base,
            ],
            2,
            "at most 200",
        ),
        (
            vec!["incident", "open", "--title", "t", "--package", "libssl3"],
            2,
            "names no version",
        ),
        (
            vec!["incident", "open", "--title", "t", "--cve", "not-a-cve!"],
            2,
            "not a vulnerability id",
        ),
        (
            vec!["incident", "open", "--title", "t", "--base", "python:"],
            2,
            "empty tag",
        ),
        (
            vec!["incident", "open", "--title", "t", "--base", &unused],
            1,
            "no incident was opened (nothing written)",
        ),
        (
            vec!["incident", "show", "7"],
            1,
            "no incident 7 is recorded",
        ),
        (
            vec!["incident", "show", "seven"],
            2,
            "not an incident number",
        ),
        (vec!["incident", "show", "0"], 2, "not an incident number"),
        (vec!["incident", "list"], 1, "no incidents are recorded"),
    ];
    for (args, code, message) in &cases {
        let r = l.run_at(OPEN, args);
        assert_eq!(
            r.code, *code,
            "lineage {args:?}:\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.contains(message),
            "lineage {args:?}: expected `{message}` in:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains('\u{1b}'),
            "raw escape on the terminal: {:?}",
            r.stderr
        );
        assert_eq!(l.entries(), before, "lineage {args:?} wrote something");
    }
    // Under --format json, errors and "nothing found" are JSON too.
    let r = l.run_at(
        OPEN,
        &["--format", "json", "incident", "open", "--title", "t"],
    );
    assert_eq!(r.code, 2);
    let e: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--package"),
        "{e}"
    );
    let r = l.run_at(
        OPEN,
        &[
            "--format",
            "json",
            "incident",
            "open",
            "--title",
            "t",
            "--base",
            &digest("py-unused"),
        ],
    );
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["found"], false);
    let r = l.run_at(OPEN, &["--format", "json", "incident", "show", "3"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap()["found"],
        false
    );
    assert_eq!(l.entries(), before);
    assert_eq!(l.json_at(OPEN, &["log", "verify"])["verified"], true);
}

#[test]
fn cve_and_package_incidents_close_once_every_replacement_is_scanned_clean() {
    let l = Ledger::new();
    l.service("api", "priya@acme.dev", "jonas@acme.dev");
    l.build(SETUP, "api", "api-1", "py-bad");
    l.deploy(SETUP, "api", "api-1", "staging");
    l.deploy(SETUP, "api", "api-1", "production");
    l.scan("2026-11-16T02:00:00Z", "api", "api-1", &["CVE-2026-1001"]);

    let cve = l.json_at(
        OPEN,
        &[
            "incident",
            "open",
            "--title",
            "CVE-2026-1001 in libssl3",
            "--cve",
            "cve-2026-1001",
        ],
    );
    assert_eq!(
        cve["query"],
        json!({"kind": "cve", "value": "CVE-2026-1001"})
    );
    assert_eq!(
        envs(&cve, "api"),
        [
            row("production", "affected", None),
            row("staging", "affected", None)
        ]
    );
    let package = l.json_at(
        "2026-11-17T09:05:00Z",
        &[
            "incident",
            "open",
            "--title",
            "libssl3 before the fix",
            "--package",
            "libssl3@<3.0.15-1~deb12u1",
        ],
    );
    assert_eq!(package["id"], 2);
    assert_eq!(package["counts"]["envs"], 2);

    // The rebuild runs in staging before anyone scanned it: not known to be clean.
    l.build("2026-11-17T09:30:00Z", "api", "api-2", "py-good");
    l.deploy("2026-11-17T10:00:00Z", "api", "api-2", "staging");
    let r = l.json_at("2026-11-17T10:10:00Z", &["incident", "show", "1"]);
    assert_eq!(
        envs(&r, "api"),
        [
            row("production", "affected", None),
            row("staging", "unverified", None)
        ]
    );
    let note = r["services"][0]["envs"][1]["note"].as_str().unwrap();
    assert_eq!(
        note,
        format!(
            "not scanned; import its scan: `lineage scan add ghcr.io/acme/api@{} FILE`",
            digest("api-2")
        )
    );
    assert_eq!(r["services"][0]["first_fixed_build"], Value::Null);
    let human = l.ok_at("2026-11-17T10:10:00Z", &["incident", "show", "1"]);
    assert!(
        human.contains("    staging     unverified: runs sha256:"),
        "{human}"
    );

    // Its scan finds nothing: staging was fixed when the deploy happened.
    l.scan("2026-11-17T10:20:00Z", "api", "api-2", &[]);
    let r = l.json_at("2026-11-17T10:25:00Z", &["incident", "show", "1"]);
    assert_eq!(
        envs(&r, "api"),
        [
            row("production", "affected", None),
            row("staging", "fixed", Some(3600))
        ]
    );
    assert_eq!(r["services"][0]["first_fixed_build"]["elapsed_secs"], 1800);

    l.deploy("2026-11-17T11:30:00Z", "api", "api-2", "production");
    let cve = l.json_at("2026-11-17T12:00:00Z", &["incident", "show", "1"]);
    assert_eq!(
        (cve["status"].as_str(), cve["elapsed_secs"].as_i64()),
        (Some("closed"), Some(9000))
    );
    let package = l.json_at("2026-11-17T12:00:00Z", &["incident", "show", "2"]);
    assert_eq!(
        (package["status"].as_str(), package["elapsed_secs"].as_i64()),
        (Some("closed"), Some(8700)),
        "counted from its own opening"
    );
    assert_eq!(
        envs(&package, "api"),
        [
            row("production", "fixed", Some(8700)),
            row("staging", "fixed", Some(3300))
        ]
    );
}

/// The demo ends with the drill Maya opened nine days before: api fixed, worker still open.
#[test]
fn the_demo_ends_with_a_drill_and_the_time_each_service_took() {
    let l = Ledger::new();
    let demo = l.ok_at("2026-11-17T09:12:00Z", &["demo"]);
    assert!(demo.contains("$ lineage incident open --drill"), "{demo}");
    assert!(demo.contains("$ lineage incident show 1"), "{demo}");
    let r = l.json_at("2026-11-17T09:12:00Z", &["incident", "show", "1"]);
    assert_eq!(r["drill"], true);
    assert_eq!(r["opened_at"], "2026-11-08T10:00:00Z");
    assert_eq!(
        (r["status"].as_str(), r["elapsed_secs"].as_i64()),
        (Some("open"), Some(774_720))
    );
    let api = &r["services"][0];
    assert_eq!(api["service"], "api");
    assert_eq!(
        (api["status"].as_str(), api["elapsed_secs"].as_i64()),
        (Some("fixed"), Some(280_800))
    );
    assert_eq!(api["first_fixed_build"]["elapsed_secs"], 100_800);
    assert_eq!(
        envs(&r, "api"),
        [
            row("production", "fixed", Some(280_800)),
            row("staging", "fixed", Some(108_000))
        ]
    );
    let worker = &r["services"][1];
    assert_eq!(
        (
            worker["status"].as_str(),
            worker["owners"]["owner"].as_str()
        ),
        (Some("open"), Some("sam@acme.dev"))
    );
    assert_eq!(worker["first_fixed_build"]["elapsed_secs"], 360_000);
    assert_eq!(envs(&r, "worker"), [row("production", "affected", None)]);
}
