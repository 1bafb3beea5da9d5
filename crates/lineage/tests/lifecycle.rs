//! The release lifecycle (issue 19): one service walked through dev → staging → production
//! with a soak time and a required healthy outcome, a failed outcome, a rollback, a
//! retirement, a re-tag and a release with its configuration, asserting every answer.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

struct Team {
    dir: tempfile::TempDir,
}

const T0: &str = "2026-11-17T09:00:00Z";

/// `T0` plus `minutes`.
fn at(minutes: i64) -> String {
    let base = 1_794_906_000; // 2026-11-17T09:00:00Z
    let t = time::OffsetDateTime::from_unix_timestamp(base + minutes * 60).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Team {
    fn new(toml: &str) -> Team {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lineage.toml"), toml).unwrap();
        Team { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn run_at(&self, now: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", now)
            .env("LINEAGE_ACTOR", "jonas@acme.dev")
            .output()
            .unwrap()
    }

    fn ok_at(&self, now: &str, args: &[&str]) -> String {
        let out = self.run_at(now, args);
        assert!(
            out.status.success(),
            "lineage {args:?} failed ({:?}):\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json_at(&self, now: &str, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok_at(now, &all)).unwrap()
    }

    fn entries(&self) -> u64 {
        let v = self.json_at(&at(10_000), &["log", "verify"]);
        v["entries"].as_u64().unwrap_or_else(|| panic!("{v}"))
    }

    fn build(&self, label: &str, now: &str) -> String {
        let image = format!("ghcr.io/acme/api@{}", digest(label));
        self.ok_at(
            now,
            &[
                "build",
                "record",
                "--image",
                &image,
                "--base",
                &format!("python:3.12-slim@{}", digest("py")),
                "--base-pulled-at",
                now,
                "--repo",
                "https://github.com/acme/api",
                "--branch",
                "main",
                "--commit",
                &commit(label),
                "--finished-at",
                now,
                "--ci-system",
                "github-actions",
                "--ci-job",
                "release",
                "--ci-run-id",
                "7",
                "--builder",
                "sa:ci",
            ],
        );
        image
    }
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

fn commit(label: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(format!("commit {label}").as_bytes()))[..40].to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const PROMOTION: &str = "[promotion]\npath = [\"dev\", \"staging\", \"production\"]\nsoak_minutes = { staging = 60 }\nrequire_healthy = true\n";

#[test]
fn one_service_through_promotion_outcomes_rollback_retirement_and_tags() {
    let t = Team::new(PROMOTION);
    t.ok_at(
        T0,
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
    );
    let a1 = t.build("a1", T0);
    let approve = ["--approved-by", "maya@acme.dev"];

    // Skipping dev: refused by D014, nothing written.
    let before = t.entries();
    let out = t.run_at(&at(1), &["promote", &a1, "--to", "staging"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("D014") || stderr(&out).contains("D014"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("never ran in `dev`"),
        "{}",
        stdout(&out)
    );
    assert_eq!(t.entries(), before);

    t.ok_at(&at(1), &["promote", &a1, "--to", "dev"]);
    // `require_healthy` holds at every step.
    let out = t.run_at(&at(2), &["promote", &a1, "--to", "staging"]);
    assert!(
        stdout(&out).contains("has no healthy outcome in `dev`"),
        "{}",
        stdout(&out)
    );
    t.ok_at(
        &at(2),
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "dev",
            "--status",
            "healthy",
        ],
    );
    t.ok_at(&at(2), &["promote", &a1, "--to", "staging"]);
    // Before the soak time is up.
    let out = t.run_at(
        &at(32),
        &["promote", &a1, "--to", "production", approve[0], approve[1]],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("for 30 of the 60 minutes"),
        "{}",
        stdout(&out)
    );
    // Soaked, but no healthy outcome yet.
    let out = t.run_at(
        &at(70),
        &["promote", &a1, "--to", "production", approve[0], approve[1]],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("has no healthy outcome in `staging`"),
        "{}",
        stdout(&out)
    );
    let o = t.json_at(
        &at(71),
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "staging",
            "--status",
            "healthy",
            "--detail",
            "smoke tests passed",
        ],
    );
    assert_eq!(o["status"], "healthy");
    assert_eq!(o["digest"], digest("a1"));
    std::fs::write(t.dir.path().join("api.yaml"), "replicas: 3\n").unwrap();
    t.ok_at(
        &at(72),
        &[
            "promote",
            &a1,
            "--to",
            "production",
            approve[0],
            approve[1],
            "--config-file",
            "api.yaml",
        ],
    );
    let running = t.json_at(&at(73), &["running", "--env", "production"]);
    let row = &running["rows"][0];
    assert_eq!(row["digest"], digest("a1"));
    let release = row["release"]
        .as_str()
        .expect("a release with configuration")
        .to_string();
    assert!(release.starts_with("rel-"), "{release}");

    // a2 fails in staging: it does not go on.
    let a2 = t.build("a2", &at(100));
    t.ok_at(&at(101), &["promote", &a2, "--to", "dev"]);
    t.ok_at(
        &at(101),
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "dev",
            "--status",
            "healthy",
        ],
    );
    t.ok_at(&at(102), &["promote", &a2, "--to", "staging"]);
    t.ok_at(
        &at(110),
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "staging",
            "--status",
            "failed",
            "--detail",
            "error rate 12%",
        ],
    );
    let out = t.run_at(
        &at(200),
        &["promote", &a2, "--to", "production", approve[0], approve[1]],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("failed in `staging`"),
        "{}",
        stdout(&out)
    );
    let trace = t.json_at(&at(201), &["trace", &a2]);
    let staging = trace["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["env"] == "staging")
        .unwrap();
    assert_eq!(staging["outcome"]["status"], "failed");
    assert_eq!(staging["outcome"]["detail"], "error rate 12%");

    // An exception lets a hotfix through; then it fails in production and is rolled back.
    t.ok_at(
        &at(202),
        &[
            "exception",
            "add",
            "--rule",
            "D014",
            "--service",
            "api",
            "--reason",
            "hotfix for INC-7",
            "--approved-by",
            "maya@acme.dev",
            "--expires",
            &at(2000),
        ],
    );
    t.ok_at(
        &at(203),
        &["promote", &a2, "--to", "production", approve[0], approve[1]],
    );
    t.ok_at(
        &at(210),
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "production",
            "--status",
            "failed",
        ],
    );
    let dry = t.json_at(
        &at(211),
        &[
            "rollback",
            "api",
            "--env",
            "production",
            "--dry-run",
            approve[0],
            approve[1],
        ],
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["plan"]["digest"], digest("a1"));
    assert_eq!(dry["plan"]["from"], digest("a2"));
    assert_eq!(
        dry["plan"]["release"],
        release.as_str(),
        "the rollback restores the release"
    );
    assert_eq!(dry["gate"]["passed"], true, "{dry:#}");
    let cmds = dry["plan"]["commands"].as_array().unwrap();
    assert!(
        cmds[0]
            .as_str()
            .unwrap()
            .starts_with("kubectl set image deployment/api api=ghcr.io/acme/api@sha256:"),
        "{cmds:?}"
    );
    // --dry-run wrote nothing.
    let still = t.json_at(&at(212), &["running", "--env", "production"]);
    assert_eq!(still["rows"][0]["digest"], digest("a2"));
    let done = t.json_at(
        &at(213),
        &[
            "rollback",
            "api",
            "--env",
            "production",
            approve[0],
            approve[1],
        ],
    );
    assert_eq!(done["recorded"]["outcome"], "recorded", "{done:#}");
    let now = t.json_at(&at(214), &["running", "--env", "production"]);
    assert_eq!(now["rows"][0]["digest"], digest("a1"));
    assert_eq!(now["rows"][0]["release"], release.as_str());

    // History: newest first, with states, outcomes and the rollback.
    let h = t.json_at(&at(215), &["history", "api", "--env", "production"]);
    let rows = h["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{h:#}");
    assert_eq!(rows[0]["digest"], digest("a1"));
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["rollback"], true);
    assert_eq!(rows[1]["digest"], digest("a2"));
    assert_eq!(rows[1]["state"], "replaced");
    assert_eq!(rows[1]["until"], at(213));
    assert_eq!(rows[1]["outcome"]["status"], "failed");
    assert_eq!(rows[2]["state"], "replaced");
    assert_eq!(rows[2]["config"][0]["path"], "api.yaml");

    // Nothing else is known-good now: a2 failed there.
    let out = t.run_at(&at(216), &["rollback", "api", "--env", "production"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Naming a failed digest is refused with the reason.
    let out = t.run_at(
        &at(216),
        &[
            "rollback",
            "api",
            "--env",
            "production",
            "--to",
            &digest("a2"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("it failed there"), "{}", stderr(&out));

    // Retirement is in sight everywhere the digest runs.
    t.ok_at(
        &at(220),
        &["retire", &a1, "--reason", "CVE-2026-1234 in the base"],
    );
    let trace = t.json_at(&at(221), &["trace", &a1]);
    assert_eq!(trace["retired"]["reason"], "CVE-2026-1234 in the base");
    let prod = trace["running"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["env"] == "production")
        .unwrap();
    assert_eq!(prod["retired"]["by"], "jonas@acme.dev");
    let running = t.ok_at(&at(221), &["running", "--env", "production"]);
    assert!(running.contains("RETIRED"), "{running}");
    let history = t.ok_at(&at(221), &["history", "api"]);
    assert!(history.contains("RETIRED by jonas@acme.dev"), "{history}");

    // Tags later: `stable` moves from a1 to a2, and trace follows it.
    t.ok_at(&at(230), &["tag", &a1, "stable"]);
    assert_eq!(
        t.json_at(&at(231), &["trace", "ghcr.io/acme/api:stable"])["digest"],
        digest("a1")
    );
    let again = t.json_at(&at(232), &["tag", &a1, "stable"]);
    assert_eq!(again["outcome"], "unchanged");
    t.ok_at(&at(233), &["tag", &a2, "stable", "2.0"]);
    let trace = t.json_at(&at(234), &["trace", "ghcr.io/acme/api:stable"]);
    assert_eq!(trace["digest"], digest("a2"));
    assert_eq!(
        trace["tags_added"][0]["tags"],
        serde_json::json!(["stable", "2.0"])
    );
    let out = t.run_at(
        &at(235),
        &["tag", &format!("ghcr.io/acme/api@{}", digest("nope")), "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no recorded build"),
        "{}",
        stderr(&out)
    );

    // The log holds all of it.
    t.ok_at(&at(240), &["log", "verify"]);
}

#[test]
fn bad_promotion_settings_and_outcomes_are_refused_clearly() {
    for (toml, expect) in [
        (
            "[promotion]\npath = [\"dev\", \"qa\", \"production\"]\n",
            "`qa` in `[promotion]` is not a configured environment",
        ),
        (
            "[promotion]\npath = [\"dev\", \"staging\", \"dev\"]\n",
            "appears twice in `[promotion] path`",
        ),
        (
            "[promotion]\npath = [\"production\"]\n",
            "needs at least two environments",
        ),
        (
            "[promotion]\nsoak_minutes = { production = 5 }\n",
            "promotes to no later environment",
        ),
        (
            "[promotion]\nsoak_minute = 5\n",
            "did you mean `soak_minutes`",
        ),
    ] {
        let t = Team::new(toml);
        let out = t.run_at(T0, &["service", "add", "api", "--owner", "priya@acme.dev"]);
        assert_eq!(out.status.code(), Some(2), "{toml}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{toml}: {}", stderr(&out));
        assert!(stderr(&out).contains("lineage.toml:"), "{}", stderr(&out));
        assert!(!t.store().exists());
    }
    let t = Team::new(PROMOTION);
    t.ok_at(
        T0,
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
    );
    // Nothing runs: nothing to judge.
    let out = t.run_at(
        T0,
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "staging",
            "--status",
            "healthy",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = t.run_at(
        T0,
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "staging",
            "--status",
            "fine",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--status `fine`"), "{}", stderr(&out));
    let out = t.run_at(T0, &["rollback", "api", "--env", "production"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = t.run_at(T0, &["history", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(
        &t.run_at(T0, &["--format", "json", "history", "nobody"]),
    ))
    .unwrap();
    assert_eq!(v["found"], false, "{v}");
    // A service never deployed: its (empty) history, and exit 1.
    let out = t.run_at(T0, &["--format", "json", "history", "api"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["rows"], serde_json::json!([]), "{v}");
}
