//! The tamper-evident log end to end: the real binary, a real ledger, and the real `sqlite3`
//! command-line tool editing the file behind Lineage's back. Every tamper case must make
//! `lineage log verify` exit 1 and name the first bad leaf and its record.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const NOW: &str = "2026-11-17T09:12:00Z";

struct Ledger {
    dir: tempfile::TempDir,
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
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

    fn db(&self) -> PathBuf {
        self.path("ledger.db")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.db())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lineage {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `lineage --format json log verify`: the exit code and the report.
    fn verify(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--format", "json", "log", "verify"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap(), report)
    }

    /// Edits the ledger with the real `sqlite3` tool. Missing tool = failed test, not a skip.
    fn sqlite(&self, sql: &str) {
        let out = Command::new("sqlite3")
            .arg(self.db())
            .arg(sql)
            .output()
            .expect("the `sqlite3` command-line tool is required (apt install sqlite3)");
        assert!(
            out.status.success(),
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reads one integer with the `sqlite3` tool.
    fn query(&self, sql: &str) -> u64 {
        let out = Command::new("sqlite3")
            .arg(self.db())
            .arg(sql)
            .output()
            .expect("the `sqlite3` command-line tool is required (apt install sqlite3)");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// The SQLite row id (leaf index + 1) of the build of `label`.
    fn build_row(&self, label: &str) -> u64 {
        self.query(&format!(
            "SELECT entry FROM builds WHERE digest = '{}'",
            digest(label)
        ))
    }

    /// The SQLite row id of the newest deploy to `env`.
    fn deploy_row(&self, env: &str) -> u64 {
        self.query(&format!(
            "SELECT max(entry) FROM deploys WHERE env = '{env}'"
        ))
    }

    fn last_row(&self) -> u64 {
        self.query("SELECT max(idx) FROM entries")
    }

    fn build(&self, service: &str, label: &str) {
        self.ok(&[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/{service}@{}", digest(label)),
            "--commit",
            "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
            "--base",
            &format!("python:3.12-slim@{}", digest("py")),
            // A complete CI build, so that the build gates have nothing to refuse.
            "--base-pulled-at",
            "2026-11-17T09:00:00Z",
            "--repo",
            &format!("https://github.com/acme/{service}"),
            "--branch",
            "main",
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            label,
            "--builder",
            "sa:ci",
        ]);
    }
}

/// Services api and web, builds api-1, api-2 and web-1, deploys of api-1 to staging and
/// api-2 to dev. Other records (gate results, say) may sit between them, so tests look rows
/// up rather than assume positions.
fn scenario() -> Ledger {
    let l = Ledger::new();
    for s in ["api", "web"] {
        l.ok(&[
            "service",
            "add",
            s,
            "--owner",
            "priya@acme.dev",
            "--image",
            &format!("ghcr.io/acme/{s}"),
        ]);
    }
    l.build("api", "api-1");
    l.build("api", "api-2");
    l.build("web", "web-1");
    for (label, env) in [("api-1", "staging"), ("api-2", "dev")] {
        l.ok(&[
            "deploy",
            "record",
            "--image",
            &format!("ghcr.io/acme/api@{}", digest(label)),
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
        ]);
    }
    let (code, report) = l.verify(&[]);
    assert_eq!(code, 0, "a fresh ledger verifies: {report:#}");
    assert_eq!(report["entries"], l.last_row());
    l
}

/// Asserts that verify fails and names `leaf` with the given problem code and record kind.
fn assert_caught(l: &Ledger, code: &str, leaf: u64, kind: &str, digest_label: Option<&str>) {
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(report["verified"], false);
    let first = &report["problems"][0];
    assert_eq!(first["code"], code, "{report:#}");
    assert_eq!(first["leaf"], leaf, "{report:#}");
    assert_eq!(first["record"]["kind"], kind, "{report:#}");
    if let Some(label) = digest_label {
        assert_eq!(first["record"]["digest"], digest(label), "{report:#}");
    }
    // The human form names the leaf too.
    let out = l.run(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("FAILED: "), "{text}");
    assert!(text.contains(&format!("leaf {leaf}: {kind}")), "{text}");
}

#[test]
fn an_edited_field_is_caught() {
    let l = scenario();
    // Rewrite who built api-2: change the commit in the stored body.
    let row = l.build_row("api-2");
    l.sqlite(&format!(
        "UPDATE entries SET body = replace(body, '4f2a9c1e', '00000000') WHERE idx = {row}"
    ));
    assert_caught(&l, "record-altered", row - 1, "build", Some("api-2"));
}

#[test]
fn a_deleted_row_is_caught() {
    let l = scenario();
    let row = l.build_row("api-2");
    l.sqlite(&format!("DELETE FROM entries WHERE idx = {row}"));
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1);
    let first = &report["problems"][0];
    assert_eq!(first["code"], "record-missing", "{report:#}");
    assert_eq!(first["leaf"], row - 1, "{report:#}");
}

#[test]
fn a_deleted_last_row_is_caught() {
    let l = scenario();
    let row = l.last_row();
    l.sqlite(&format!("DELETE FROM entries WHERE idx = {row}"));
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1);
    let first = &report["problems"][0];
    assert_eq!(first["code"], "record-missing", "{report:#}");
    assert_eq!(first["leaf"], row - 1, "{report:#}");
}

#[test]
fn two_swapped_rows_are_caught() {
    let l = scenario();
    let (a, b) = (l.build_row("api-1"), l.build_row("api-2"));
    l.sqlite(&format!(
        "UPDATE entries SET body = CASE idx WHEN {a} THEN (SELECT body FROM entries WHERE idx = {b})
                                        ELSE (SELECT body FROM entries WHERE idx = {a}) END
         WHERE idx IN ({a}, {b})"
    ));
    // api-1's leaf now holds api-2's build.
    assert_caught(&l, "record-altered", a - 1, "build", Some("api-2"));
}

#[test]
fn a_row_appended_behind_lineages_back_is_caught() {
    let l = scenario();
    let row = l.deploy_row("dev");
    assert_eq!(row, l.last_row());
    l.sqlite(&format!(
        "INSERT INTO entries (kind, body, recorded_at)
         SELECT kind, replace(body, '\"dev\"', '\"staging\"'), recorded_at FROM entries WHERE idx = {row}"
    ));
    assert_caught(&l, "record-added", row, "deploy", Some("api-2"));
    // And Lineage refuses to write on top of it.
    let out = l.run(&[
        "deploy",
        "record",
        "--image",
        &format!("ghcr.io/acme/api@{}", digest("api-1")),
        "--env",
        "dev",
        "--by",
        "jonas@acme.dev",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
}

#[test]
fn an_edited_projection_row_is_caught() {
    let l = scenario();
    // Make `trace` say dev runs api-1, without touching the journal.
    let row = l.deploy_row("dev");
    l.sqlite(&format!(
        "UPDATE deploys SET digest = '{}' WHERE entry = {row}",
        digest("api-1")
    ));
    assert_caught(&l, "projection-altered", row - 1, "deploy", Some("api-2"));
}

#[test]
fn rewritten_log_hashes_are_caught() {
    let l = scenario();
    l.sqlite("UPDATE log_hashes SET hash = zeroblob(32) WHERE idx = 0");
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1);
    assert_eq!(report["problems"][0]["leaf"], 0, "{report:#}");
    // Issue 13, item 19: the records still match the signed checkpoint, so the log table is
    // what was edited, not a record.
    assert_eq!(
        report["problems"][0]["code"], "log-hash-altered",
        "{report:#}"
    );
}

/// Issue 13, item 19: a log table cut short is not "a record added".
#[test]
fn a_truncated_log_table_is_named_as_such() {
    let l = scenario();
    // Three stored hashes hold exactly two leaves (leaf 0, leaf 1, their parent).
    l.sqlite("DELETE FROM log_hashes WHERE idx >= 3");
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(report["problems"][0]["code"], "log-truncated", "{report:#}");
    assert_eq!(report["problems"][0]["leaf"], 2, "{report:#}");
}

/// Issue 13, item 19: every problem line says something, and `--since` with a file that is
/// no checkpoint at all is bad input (exit 2), not a failed audit.
#[test]
fn verify_output_has_no_empty_lines_and_a_bad_since_file_is_an_error() {
    let l = scenario();
    l.sqlite("UPDATE checkpoints SET text = replace(text, '— ', '— X')");
    let out = l.run(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.trim_start().starts_with('[')) {
        let rest = line
            .trim_start()
            .split_once(']')
            .map(|(_, r)| r.trim())
            .unwrap_or("");
        assert!(!rest.is_empty(), "an empty problem line in:\n{text}");
    }
    let scenario_ok = scenario();
    std::fs::write(scenario_ok.path("garbage.txt"), "not a checkpoint\n").unwrap();
    let out = scenario_ok.run(&["log", "verify", "--since", "garbage.txt"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a signed checkpoint"));
}

fn copy_to(from: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

/// Runs the binary in an empty directory with no ledger configured: what an auditor has.
fn auditor(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn an_auditor_checks_a_proof_with_only_the_file_and_the_public_key() {
    let l = scenario();
    let audit = tempfile::tempdir().unwrap();
    let bundle = audit.path().join("proof.json");
    l.ok(&[
        "log",
        "prove",
        &digest("api-2"),
        "--output",
        bundle.to_str().unwrap(),
    ]);
    let key = copy_to(&l.path("log.pub"), audit.path(), "log.pub");
    let (api2, size) = (l.build_row("api-2"), l.last_row());
    drop(l); // The ledger is gone.
    let out = auditor(
        audit.path(),
        &["log", "verify-proof", "proof.json", "--key", "log.pub"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "verified: leaf {} is in the tree of {size} leaves",
        api2 - 1
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(
        !audit.path().join(".lineage").exists(),
        "an audit creates no ledger"
    );

    // The leaf is covered exactly: one flipped byte in the record fails with the reason.
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    b["leaf"] = Value::String(base64_flip(b["leaf"].as_str().unwrap()));
    std::fs::write(&bundle, b.to_string()).unwrap();
    let out = auditor(
        audit.path(),
        &[
            "--format",
            "json",
            "log",
            "verify-proof",
            "proof.json",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "leaf-or-proof-altered", "{v:#}");
}

/// Flips a bit in the first byte of a base64 string's decoded value (re-encoded).
fn base64_flip(s: &str) -> String {
    // 'A' <-> 'B' changes the first sextet, hence the first decoded byte.
    let mut chars: Vec<char> = s.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn an_old_saved_checkpoint_is_consistent_with_the_current_log() {
    let l = Ledger::new();
    l.ok(&[
        "service",
        "add",
        "api",
        "--owner",
        "priya@acme.dev",
        "--image",
        "ghcr.io/acme/api",
    ]);
    l.build("api", "api-1");
    let saved = l.path("saved-checkpoint");
    std::fs::write(&saved, l.ok(&["log", "checkpoint"])).unwrap();
    let saved_size = l.last_row();
    l.build("api", "api-2");
    l.build("api", "api-3");
    let (exit, report) = l.verify(&["--since", saved.to_str().unwrap()]);
    assert_eq!(exit, 0, "{report:#}");
    let size = l.last_row();
    assert_eq!(report["since"]["size"], saved_size);
    assert_eq!(report["checkpoint"]["size"], size);

    // The same, as a bundle an outsider can check.
    let out = l.path("consistency.json");
    l.ok(&[
        "log",
        "consistency",
        &saved_size.to_string(),
        &size.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let text = l.ok(&[
        "log",
        "verify-proof",
        out.to_str().unwrap(),
        "--key",
        "log.pub",
    ]);
    let expected = format!("verified: the tree of {size} leaves");
    assert!(text.starts_with(&expected), "{text}");

    // The stored hashes of the saved tree rewritten: the saved root no longer matches them.
    l.sqlite("UPDATE log_hashes SET hash = zeroblob(32)");
    let (exit, report) = l.verify(&["--since", saved.to_str().unwrap()]);
    assert_eq!(exit, 1, "{report:#}");
    let codes: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"since-inconsistent"), "{codes:?}");
}

/// Issue 22 item 5: `--since` re-reads only the entries after the saved checkpoint (and says
/// so), catches a tampered one among them, and leaves the ones before it to a full verify.
#[test]
fn since_verifies_only_what_is_new() {
    let l = Ledger::new();
    l.ok(&[
        "service",
        "add",
        "api",
        "--owner",
        "priya@acme.dev",
        "--image",
        "ghcr.io/acme/api",
    ]);
    l.build("api", "api-1");
    let saved = l.path("saved-checkpoint");
    std::fs::write(&saved, l.ok(&["log", "checkpoint"])).unwrap();
    let saved_size = l.last_row();
    l.build("api", "api-2");
    l.build("api", "api-3");
    let size = l.last_row();
    let since = ["--since", saved.to_str().unwrap()];
    let (exit, report) = l.verify(&since);
    assert_eq!(exit, 0, "{report:#}");
    assert_eq!(report["verified_range"]["from"], saved_size, "{report:#}");
    assert_eq!(report["verified_range"]["to"], size, "{report:#}");
    assert_eq!(report["projections_checked"], false, "{report:#}");
    let (exit, full) = l.verify(&[]);
    assert_eq!(exit, 0, "{full:#}");
    assert_eq!(full["verified_range"]["from"], 0, "{full:#}");
    assert_eq!(full["verified_range"]["to"], size, "{full:#}");
    assert_eq!(full["projections_checked"], true, "{full:#}");

    // An entry after the saved checkpoint edited: `--since` names it.
    let after = saved_size + 1; // `idx` is 1-based: the first entry after the checkpoint.
    l.sqlite(&format!(
        "UPDATE entries SET body = body || ' ' WHERE idx = {after}"
    ));
    let (exit, report) = l.verify(&since);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(
        report["problems"][0]["code"], "record-altered",
        "{report:#}"
    );
    assert_eq!(report["problems"][0]["leaf"], saved_size, "{report:#}");
    l.sqlite(&format!(
        "UPDATE entries SET body = substr(body, 1, length(body) - 1) WHERE idx = {after}"
    ));
    assert_eq!(l.verify(&since).0, 0);

    // An entry before it edited: outside `--since`'s scope, caught by a full verify.
    l.sqlite("UPDATE entries SET body = replace(body, 'priya', 'mallo') WHERE idx = 1");
    let (exit, report) = l.verify(&since);
    assert_eq!(exit, 0, "{report:#}");
    assert_eq!(report["verified_range"]["from"], saved_size, "{report:#}");
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(
        report["problems"][0]["code"], "record-altered",
        "{report:#}"
    );
    assert_eq!(report["problems"][0]["leaf"], 0, "{report:#}");
}

#[test]
fn checkpoints_are_written_for_witnesses() {
    let l = Ledger::new();
    std::fs::write(
        l.path("lineage.toml"),
        "[log]\norigin = \"ci.acme.dev/ledger\"\ncheckpoint_dir = \"witness\"\n",
    )
    .unwrap();
    l.ok(&[
        "service",
        "add",
        "api",
        "--owner",
        "priya@acme.dev",
        "--image",
        "ghcr.io/acme/api",
    ]);
    l.build("api", "api-1");
    let latest = std::fs::read_to_string(l.path("witness/latest")).unwrap();
    assert_eq!(latest, l.ok(&["log", "checkpoint"]));
    let size = l.last_row();
    assert!(
        latest.starts_with(&format!("ci.acme.dev/ledger\n{size}\n")),
        "{latest}"
    );
    assert!(l.path(&format!("witness/{size}")).exists());
    assert!(
        latest.contains("\n\n\u{2014} ci.acme.dev/ledger "),
        "{latest}"
    );
    // One file per signed size: the service's and the build's.
    assert!(l.path("witness/1").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(l.path("log.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The verifier-key form works as well as the PEM.
    let (exit, _) = l.verify(&["--key", "log.vkey"]);
    assert_eq!(exit, 0);
    // A bad origin in the settings is reported with its position.
    std::fs::write(l.path("lineage.toml"), "[log]\norigin = \"a b\"\n").unwrap();
    let out = l.run(&[
        "build",
        "record",
        "--image",
        &format!("ghcr.io/acme/api@{}", digest("api-3")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lineage.toml:2:10"));
    std::fs::remove_file(l.path("lineage.toml")).unwrap();
    let (_, report) = l.verify(&[]);
    assert_eq!(report["entries"], size, "nothing was recorded");
}

#[test]
fn wrong_keys_other_sizes_and_bad_files_are_reported() {
    let l = scenario();
    let proof = l.path("proof.json");
    l.ok(&["log", "prove", "2", "--output", proof.to_str().unwrap()]);
    let other = scenario(); // Another ledger, another key.
    let json = |args: &[&str]| -> (i32, Value) {
        let mut all = vec!["--format", "json", "log", "verify-proof"];
        all.extend_from_slice(args);
        let out = auditor(l.dir.path(), &all);
        (
            out.status.code().unwrap(),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    };
    let other_key = other.path("log.pub");
    let (exit, v) = json(&["proof.json", "--key", other_key.to_str().unwrap()]);
    assert_eq!((exit, v["code"].as_str()), (1, Some("wrong-key")), "{v:#}");

    // A proof for another tree size than its checkpoint's.
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    b["tree_size"] = Value::from(6);
    std::fs::write(l.path("resized.json"), b.to_string()).unwrap();
    let (exit, v) = json(&["resized.json", "--key", "log.pub"]);
    assert_eq!(
        (exit, v["code"].as_str()),
        (1, Some("tree-size-mismatch")),
        "{v:#}"
    );
    assert!(
        v["reason"].as_str().unwrap().contains("tree size 6"),
        "{v:#}"
    );

    // A malformed checkpoint.
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    b["checkpoint"] = Value::String("lineage.local/ledger\nseven\n".into());
    std::fs::write(l.path("malformed.json"), b.to_string()).unwrap();
    let (exit, v) = json(&["malformed.json", "--key", "log.pub"]);
    assert_eq!(
        (exit, v["code"].as_str()),
        (1, Some("malformed-checkpoint")),
        "{v:#}"
    );

    // Missing and corrupt files cannot be judged: exit 2.
    let out = auditor(
        l.dir.path(),
        &["log", "verify-proof", "nope.json", "--key", "log.pub"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: cannot read proof bundle"));
    std::fs::write(
        l.path("corrupt.json"),
        "{\"kind\": \"inclusion\", \"schema\": 1",
    )
    .unwrap();
    let out = auditor(
        l.dir.path(),
        &["log", "verify-proof", "corrupt.json", "--key", "log.pub"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a readable proof bundle"));
    let out = auditor(
        l.dir.path(),
        &["log", "verify-proof", "proof.json", "--key", "nope.pub"],
    );
    assert_eq!(out.status.code(), Some(2));

    // `log verify` with another ledger's key: every checkpoint is rejected.
    let (exit, report) = l.verify(&["--key", other_key.to_str().unwrap()]);
    assert_eq!(exit, 1);
    assert_eq!(
        report["problems"][0]["code"], "checkpoint-invalid",
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Who signs, and with which key.
// ---------------------------------------------------------------------------------------------

impl Ledger {
    fn store(&self) -> Box<dyn lineage_store::Store> {
        lineage_store::open(&lineage_store::StoreLocation::Sqlite(self.db()), false).unwrap()
    }

    /// The journal and the checkpoints, row for row, as the `sqlite3` tool prints them.
    fn dump(&self) -> String {
        let out = Command::new("sqlite3")
            .arg(self.db())
            .arg("SELECT * FROM entries; SELECT '--'; SELECT * FROM checkpoints;")
            .output()
            .expect("the `sqlite3` command-line tool is required (apt install sqlite3)");
        String::from_utf8(out.stdout).unwrap()
    }

    fn checkpoint_sizes(&self) -> Vec<u64> {
        self.store()
            .checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect()
    }

    /// Appends a retirement through the store library, as a process without the log key
    /// would: the tail is not covered by any checkpoint.
    fn append_unsigned(&self, label: &str) -> u64 {
        let at = lineage_model::Timestamp::parse(NOW).unwrap();
        let retire = lineage_model::Record::Retire(lineage_model::Retirement {
            digest: lineage_model::Digest::parse(&digest(label)).unwrap(),
            reason: "appended without the log key".into(),
            by: lineage_model::Identity::parse("mallory@acme.dev").unwrap(),
            at,
        });
        self.store().record_facts(&[retire], at, None).unwrap()[0]
    }

    fn deploy(&self, label: &str, env: &str) -> Output {
        self.run(&[
            "deploy",
            "record",
            "--image",
            &format!("ghcr.io/acme/api@{}", digest(label)),
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
        ])
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every command that only reads, over the scenario's ledger.
fn read_only_commands(l: &Ledger) -> Vec<Vec<String>> {
    let proof = l.path("read-only-proof.json").display().to_string();
    let (api1, api2) = (digest("api-1"), digest("api-2"));
    let signed = l.checkpoint_sizes();
    let (first, last) = (signed[0].to_string(), signed[signed.len() - 1].to_string());
    let image = format!("ghcr.io/acme/api@{api1}");
    [
        vec!["trace", "api"],
        vec!["trace", &api1],
        vec!["affected", "--base", "python:3.12-slim"],
        vec!["running"],
        vec!["running", "--env", "dev"],
        vec!["service", "show", "api"],
        vec!["service", "list"],
        vec!["log", "checkpoint"],
        vec!["log", "prove", "0"],
        vec!["log", "prove", &api2, "--output", &proof],
        vec!["log", "verify-proof", &proof, "--key", "log.pub"],
        vec!["log", "consistency", &first, &last],
        vec!["log", "verify"],
        vec!["--format", "json", "log", "verify"],
        vec!["exception", "list"],
        vec!["key", "list"],
        vec!["policy", "rules"],
        vec!["report", "stale"],
        vec!["base", "history", "python:3.12-slim"],
        vec!["build", "diff", &api1, &api2],
        vec!["build", "check", "--digest", &api1],
        vec!["deploy", "check", "--image", &image, "--env", "staging"],
        vec!["attest", "export", &api1],
        vec!["token", "list"],
        vec!["build", "record", "--image", &image, "--print-detected"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect()
}

#[test]
fn read_only_commands_never_sign_or_write() {
    let l = scenario();
    let appended = l.append_unsigned("unsigned-1");
    assert_eq!(
        l.checkpoint_sizes().last(),
        Some(&appended),
        "the tail is unsigned"
    );
    let before = l.dump();
    for args in read_only_commands(&l) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = l.run(&args);
        assert_ne!(
            out.status.code(),
            Some(2),
            "lineage {args:?}: {}",
            stderr(&out)
        );
        assert_eq!(l.dump(), before, "lineage {args:?} changed the ledger");
    }
    // Without the key, reading still works and still signs nothing; no key appears.
    std::fs::remove_file(l.path("log.key")).unwrap();
    for args in read_only_commands(&l) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = l.run(&args);
        assert_ne!(
            out.status.code(),
            Some(2),
            "lineage {args:?}: {}",
            stderr(&out)
        );
        assert_eq!(l.dump(), before, "lineage {args:?} changed the ledger");
        assert!(!l.path("log.key").exists(), "lineage {args:?} made a key");
    }
}

#[test]
fn a_writer_without_the_ledgers_key_refuses_and_writes_nothing() {
    let l = scenario();
    // The ledger copied without its key.
    let copy = Ledger::new();
    std::fs::copy(l.db(), copy.db()).unwrap();
    let before = copy.dump();
    let out = copy.deploy("api-1", "dev");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let key = copy.path("log.key").display().to_string();
    assert!(
        err.starts_with(&format!(
            "error: this ledger's checkpoints are signed, but its log key `{key}` is missing"
        )),
        "{err}"
    );
    assert!(err.contains("hint: restore the key from a backup"), "{err}");
    assert!(
        err.contains("lineage log rotate-key --old-key-lost"),
        "{err}"
    );
    assert_eq!(copy.dump(), before, "nothing was written");
    assert!(!copy.path("log.key").exists(), "no key was made");

    // Where `[log] key` points, the error names the setting.
    std::fs::write(
        copy.path("lineage.toml"),
        "[log]\nkey = \"keys/ledger.key\"\n",
    )
    .unwrap();
    let err = stderr(&copy.deploy("api-1", "dev"));
    assert!(
        err.contains("keys/ledger.key` (`[log] key` in lineage.toml) is missing"),
        "{err}"
    );
    std::fs::remove_file(copy.path("lineage.toml")).unwrap();

    // Another ledger's key is refused too: it did not sign this ledger's checkpoints.
    let other = scenario();
    std::fs::copy(other.path("log.key"), copy.path("log.key")).unwrap();
    let out = copy.deploy("api-1", "dev");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("did not sign this ledger's latest checkpoint"),
        "{err}"
    );
    assert!(err.contains("lineage log rotate-key"), "{err}");
    assert_eq!(copy.dump(), before, "nothing was written");

    // With its own key back, the copy takes writes again.
    std::fs::copy(l.path("log.key"), copy.path("log.key")).unwrap();
    assert_eq!(copy.deploy("api-1", "dev").status.code(), Some(0));
    assert_eq!(copy.verify(&[]).0, 0);
}

#[test]
fn a_new_ledgers_key_is_private_and_written_whole() {
    let l = Ledger::new();
    l.ok(&["service", "add", "api", "--owner", "priya@acme.dev"]);
    let pem = std::fs::read_to_string(l.path("log.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(l.path("log.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(l.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    // An unsigned ledger whose key is missing is not refused: nothing is signed yet.
    let l = Ledger::new();
    l.append_unsigned_service();
    assert!(l.checkpoint_sizes().is_empty());
    l.ok(&["service", "add", "web", "--owner", "priya@acme.dev"]);
    assert_eq!(l.checkpoint_sizes(), vec![2]);
}

impl Ledger {
    /// Creates the ledger through the store library with one service and no checkpoint.
    fn append_unsigned_service(&self) {
        let mut store =
            lineage_store::open(&lineage_store::StoreLocation::Sqlite(self.db()), true).unwrap();
        let change = lineage_model::ServiceChange {
            service: lineage_model::Service {
                name: lineage_model::ServiceName::parse("api").unwrap(),
                owner: None,
                backup_owner: None,
                emergency_approver: None,
                source_repo: None,
                images: vec![],
            },
            by: lineage_model::Identity::parse("maya@acme.dev").unwrap(),
            at: lineage_model::Timestamp::parse(NOW).unwrap(),
        };
        store
            .record_service_change(&change, lineage_model::Timestamp::parse(NOW).unwrap())
            .unwrap();
    }
}

#[test]
fn serve_refuses_a_ledger_whose_key_is_missing() {
    let l = scenario();
    std::fs::remove_file(l.path("log.key")).unwrap();
    let before = l.dump();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(l.dir.path())
        .env_clear()
        .env("LINEAGE_STORE", l.db())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit by itself; a server that started anyway is stopped and fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("lineage serve started on a ledger without its log key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    let key = l.path("log.key").display().to_string();
    assert!(
        err.starts_with(&format!(
            "error: this ledger's checkpoints are signed, but its log key `{key}` is missing"
        )),
        "{err}"
    );
    assert_eq!(l.dump(), before);
    assert!(!l.path("log.key").exists());
}

/// Generates an Ed25519 PKCS#8 key with the real `openssl` tool.
fn openssl_key(path: &Path) {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(path)
        .output()
        .expect("the `openssl` command-line tool is required");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Signs a checkpoint over the current log head with `pem`, behind Lineage's back.
fn sign_behind_lineages_back(l: &Ledger, pem: &str) {
    use lineage_store::lineage_log::checkpoint::Checkpoint;
    use lineage_store::lineage_log::keys::LogKey;
    let origin = "lineage.local/ledger";
    let key = LogKey::from_pkcs8_pem(origin, pem).unwrap();
    let mut store = l.store();
    let head = store.log_head().unwrap();
    let text = Checkpoint::new(origin, head.size, head.root).sign(&key);
    store
        .save_checkpoint(
            head.size,
            &text,
            lineage_model::Timestamp::parse(NOW).unwrap(),
        )
        .unwrap();
}

#[test]
fn rotate_key_records_the_new_key_and_verify_follows_the_chain() {
    let l = scenario();
    let old_pem = std::fs::read_to_string(l.path("log.key")).unwrap();
    copy_to(&l.path("log.pub"), l.dir.path(), "old.pub");
    openssl_key(&l.path("new.key"));
    let out: Value = serde_json::from_str(&l.ok(&[
        "--format",
        "json",
        "log",
        "rotate-key",
        "--new-key",
        "new.key",
        "--reason",
        "yearly rotation",
    ]))
    .unwrap();
    let index = out["index"].as_u64().unwrap();
    assert_eq!(index + 1, l.last_row(), "{out:#}");
    assert_eq!(out["checkpoint_size"], index + 1, "{out:#}");
    assert_eq!(out["old_key_lost"], false);
    assert_eq!(out["sealed_by"], out["old_key_id"], "the old key seals it");
    assert_eq!(
        l.query(&format!(
            "SELECT count(*) FROM entries WHERE kind = 'log_key_rotation' AND idx = {}",
            index + 1
        )),
        1
    );
    // The new key is installed: the same key as new.key, and the public files follow it.
    let installed = std::fs::read_to_string(l.path("log.key")).unwrap();
    assert_ne!(installed, old_pem);
    let new_pub = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(l.path("new.key"))
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        std::fs::read_to_string(l.path("log.pub")).unwrap(),
        String::from_utf8(new_pub).unwrap()
    );

    // Later writes are signed by the new key; the audit follows the chain from either key.
    assert_eq!(l.deploy("api-1", "dev").status.code(), Some(0));
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 0, "{report:#}");
    assert_eq!(report["keys"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(report["keys"][1]["introduced_at"], index);
    assert_eq!(report["keys"][1]["trusted"], true);
    let (exit, report) = l.verify(&["--key", "old.pub"]);
    assert_eq!(exit, 0, "{report:#}");
    assert_eq!(report["keys"][0]["trusted"], true);
    let text = l.ok(&["log", "verify"]);
    assert!(text.contains("rotated in at entry"), "{text}");

    // A checkpoint signed by the retired key, after the rotation, fails.
    l.append_unsigned("late-1");
    sign_behind_lineages_back(&l, &old_pem);
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(report["problems"][0]["code"], "checkpoint-invalid");
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("which the log retired at entry {index}")),
        "{message}"
    );
    // And so does one signed by a key the log never introduced.
    let stranger = l.path("stranger.key");
    openssl_key(&stranger);
    l.append_unsigned("late-2");
    sign_behind_lineages_back(&l, &std::fs::read_to_string(stranger).unwrap());
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 1, "{report:#}");
    let messages: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("which the log never introduced")),
        "{messages:?}"
    );
}

#[test]
fn a_lost_key_is_rotated_on_the_record_and_verify_reports_it() {
    let l = scenario();
    copy_to(&l.path("log.pub"), l.dir.path(), "old.pub");
    std::fs::remove_file(l.path("log.key")).unwrap();
    let before = l.dump();
    // Without the key, a plain rotation is refused and points at `--old-key-lost`.
    let out = l.run(&["log", "rotate-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--old-key-lost"), "{}", stderr(&out));
    // `--old-key-lost` needs a reason.
    let out = l.run(&["log", "rotate-key", "--old-key-lost"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(l.dump(), before, "nothing was written");

    let text = l.ok(&[
        "log",
        "rotate-key",
        "--old-key-lost",
        "--reason",
        "the laptop holding the key was stolen",
    ]);
    assert!(text.contains("the old key was lost"), "{text}");
    assert!(l.path("log.key").exists());
    assert_eq!(l.deploy("api-1", "dev").status.code(), Some(0));

    // Trusting the new key, the audit passes and says the chain was broken on purpose.
    let (exit, report) = l.verify(&[]);
    assert_eq!(exit, 0, "{report:#}");
    assert_eq!(
        report["warnings"][0]["code"], "key-rotated-without-old-key",
        "{report:#}"
    );
    assert!(report["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("the laptop holding the key was stolen"));
    assert_eq!(report["keys"][1]["old_key_lost"], true);
    let human = l.ok(&["log", "verify"]);
    assert!(
        human.contains("warning [key-rotated-without-old-key]"),
        "{human}"
    );
    // Trusting only the old key, nothing after the rotation can be vouched for.
    let (exit, report) = l.verify(&["--key", "old.pub"]);
    assert_eq!(exit, 1, "{report:#}");
    assert_eq!(
        report["problems"][0]["code"], "key-rotation-unattested",
        "{report:#}"
    );

    // With the key present, `--old-key-lost` is refused: rotate with the key instead.
    let out = l.run(&["log", "rotate-key", "--old-key-lost", "--reason", "oops"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is present and is this ledger's current key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_migrated_ledger_is_written_and_verified_with_the_source_key() {
    let l = scenario();
    let target = Ledger::new();
    let text = l.ok(&[
        "store",
        "migrate",
        "--from",
        l.db().to_str().unwrap(),
        "--to",
        target.db().to_str().unwrap(),
    ]);
    let from = l.path("log.key").display().to_string();
    let to = target.path("log.key").display().to_string();
    assert!(text.contains(&format!("copy `{from}` to `{to}`")), "{text}");
    // Until the key is there, the copy takes no writes.
    assert_eq!(target.deploy("api-1", "dev").status.code(), Some(2));
    std::fs::copy(&from, &to).unwrap();
    assert_eq!(target.deploy("api-1", "dev").status.code(), Some(0));
    // `log verify` finds the public key through the log key (no `log.pub` was copied).
    let (exit, report) = target.verify(&[]);
    assert_eq!(exit, 0, "{report:#}");
}
