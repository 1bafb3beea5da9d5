//! The CLI end to end: the real binary against a temporary ledger. Output is snapshotted as
//! exit code + stdout + stderr, human and JSON side by side.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

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

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev");
        cmd
    }

    /// Runs and renders `exit: N`, stdout and stderr for a snapshot.
    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        let text = format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.replace(&self.dir.path().display().to_string(), "[TMP]")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "lineage {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

const COMMIT: &str = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39";

/// A small ledger: api with two builds on two python digests, deployed to staging and production.
fn scenario() -> Ledger {
    let l = Ledger::new();
    l.ok(&[
        "service",
        "add",
        "api",
        "--owner",
        "priya@acme.dev",
        "--backup-owner",
        "jonas@acme.dev",
        "--emergency-approver",
        "maya@acme.dev",
        "--repo",
        "https://github.com/acme/api",
        "--image",
        "ghcr.io/acme/api",
    ]);
    for (label, base, commit, at) in [
        (
            "a1",
            "py1",
            "1111111111111111111111111111111111111111",
            "2026-11-10T14:00:00Z",
        ),
        ("a2", "py2", COMMIT, "2026-11-14T14:00:00Z"),
    ] {
        l.ok(&[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/api:{label}@{}", digest(label)),
            "--base",
            &format!("python:3.12-slim@{}", digest(base)),
            "--base-pulled-at",
            at,
            "--repo",
            "https://github.com/acme/api",
            "--branch",
            "main",
            "--commit",
            commit,
            "--finished-at",
            at,
            "--ci-system",
            "github-actions",
            "--ci-job",
            "release/image",
            "--ci-run-id",
            "7",
            "--builder",
            "sa:ci",
        ]);
    }
    for (label, env, at, approver) in [
        (
            "a1",
            "production",
            "2026-11-11T10:00:00Z",
            Some("maya@acme.dev"),
        ),
        ("a2", "staging", "2026-11-15T10:00:00Z", None),
    ] {
        let image = format!("ghcr.io/acme/api@{}", digest(label));
        let mut args = vec![
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
            "--at",
            at,
        ];
        if let Some(a) = approver {
            args.extend(["--approved-by", a]);
        }
        l.ok(&args);
    }
    l
}

/// Every entry the CLI writes names who wrote it: a deploy's is its deployer (it was recorded
/// anonymously before), a build's the actor.
#[test]
fn every_ledger_entry_names_its_author() {
    let l = scenario();
    let store = lineage_store::open_read(&lineage_store::StoreLocation::Sqlite(l.store())).unwrap();
    let size = store.log_head().unwrap().size;
    let entries = store.entries(0, size).unwrap();
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(
            e.recorded_by.is_some(),
            "entry {} has no author: {:?}",
            e.index,
            e.record
        );
        if let lineage_model::Record::Deploy(_) = &e.record {
            assert_eq!(
                e.recorded_by.as_ref().unwrap().to_string(),
                "jonas@acme.dev"
            );
        }
    }
}

#[test]
fn queries_human_and_json() {
    let l = scenario();
    insta::assert_snapshot!("trace_human", l.run(&["trace", "api"]));
    insta::assert_snapshot!("trace_json", l.run(&["--format", "json", "trace", "api"]));
    insta::assert_snapshot!(
        "affected_human",
        l.run(&["affected", "--base", "python:3.12-slim"])
    );
    insta::assert_snapshot!(
        "affected_json",
        l.run(&["--format", "json", "affected", "--base", &digest("py1")])
    );
    insta::assert_snapshot!("running_human", l.run(&["running"]));
    insta::assert_snapshot!(
        "running_json",
        l.run(&["--format", "json", "running", "--env", "production"])
    );
    insta::assert_snapshot!("service_show", l.run(&["service", "show", "api"]));
    insta::assert_snapshot!("service_list", l.run(&["service", "list"]));
}

#[test]
fn nothing_found_exits_1() {
    let l = scenario();
    insta::assert_snapshot!("trace_unknown", l.run(&["trace", &digest("nope")]));
    let out = l
        .cmd(&["affected", "--base", "alpine:3.20"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_input_exits_2_names_the_field_and_writes_nothing() {
    let l = scenario();
    let before = std::fs::read(l.store()).unwrap();
    let a1 = digest("a1");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "bad_uppercase_repo",
            vec!["trace".into(), "ghcr.io/Acme/API:1".into()],
        ),
        (
            "bad_short_digest",
            vec![
                "deploy".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/api@{}", &a1[..70]),
                "--env".into(),
                "production".into(),
                "--by".into(),
                "jonas@acme.dev".into(),
            ],
        ),
        (
            "bad_env",
            vec![
                "deploy".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/api@{a1}"),
                "--env".into(),
                "prod".into(),
                "--by".into(),
                "jonas@acme.dev".into(),
            ],
        ),
        (
            "bad_unknown_service",
            vec![
                "deploy".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/billing@{a1}"),
                "--env".into(),
                "production".into(),
                "--by".into(),
                "jonas@acme.dev".into(),
            ],
        ),
        (
            "bad_short_commit",
            vec![
                "build".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/api@{}", digest("a9")),
                "--commit".into(),
                "4f2a9c1".into(),
            ],
        ),
        (
            "bad_time",
            vec![
                "deploy".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/api@{a1}"),
                "--env".into(),
                "production".into(),
                "--by".into(),
                "jonas@acme.dev".into(),
                "--at".into(),
                "2026-11-17 10:00".into(),
            ],
        ),
        (
            "bad_unpinned_deploy",
            vec![
                "deploy".into(),
                "record".into(),
                "--image".into(),
                "ghcr.io/acme/api:latest".into(),
                "--env".into(),
                "production".into(),
                "--by".into(),
                "jonas@acme.dev".into(),
            ],
        ),
        (
            "bad_conflicting_build",
            vec![
                "build".into(),
                "record".into(),
                "--image".into(),
                format!("ghcr.io/acme/api@{a1}"),
                "--commit".into(),
                COMMIT.into(),
            ],
        ),
        (
            "bad_json_error",
            vec![
                "--format".into(),
                "json".into(),
                "trace".into(),
                "sha256:abc".into(),
            ],
        ),
    ];
    // A deploy the deploy gate can judge is refused by it (exit 1, the coded finding), as
    // `deploy check` and the server would; everything else is bad input (exit 2).
    let gated = ["bad_env", "bad_unknown_service", "bad_unpinned_deploy"];
    for (name, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = l.run(&args);
        let code = if gated.contains(&name) { 1 } else { 2 };
        assert!(out.starts_with(&format!("exit: {code}\n")), "{name}: {out}");
        insta::assert_snapshot!(name, out);
    }
    assert_eq!(
        std::fs::read(l.store()).unwrap(),
        before,
        "bad input must not change the ledger"
    );
}

#[test]
fn store_errors_are_clear_and_leave_files_alone() {
    let l = Ledger::new();
    // No ledger yet: queries say so and create nothing.
    insta::assert_snapshot!("no_ledger", l.run(&["running"]));
    assert!(!l.store().exists());
    std::fs::write(l.store(), "not a database\n".repeat(100)).unwrap();
    insta::assert_snapshot!(
        "not_a_ledger",
        l.run(&["service", "add", "api", "--owner", "a@b.dev"])
    );
    assert_eq!(
        std::fs::read_to_string(l.store()).unwrap(),
        "not a database\n".repeat(100)
    );
}

#[test]
fn recording_twice_is_a_no_op() {
    let l = scenario();
    let a2 = format!("ghcr.io/acme/api:a2@{}", digest("a2"));
    let out = l.json(&[
        "build",
        "record",
        "--image",
        &a2,
        "--base",
        &format!("python:3.12-slim@{}", digest("py2")),
        "--base-pulled-at",
        "2026-11-14T14:00:00Z",
        "--repo",
        "https://github.com/acme/api",
        "--branch",
        "main",
        "--commit",
        COMMIT,
        "--finished-at",
        "2026-11-14T14:00:00Z",
        "--ci-system",
        "github-actions",
        "--ci-job",
        "release/image",
        "--ci-run-id",
        "7",
        "--builder",
        "sa:ci",
    ]);
    assert_eq!(out["outcome"], "unchanged");
}

#[test]
fn ci_detection_fills_the_record_and_flags_win() {
    let l = scenario();
    let image = format!("ghcr.io/acme/api@{}", digest("a7"));
    let out = l
        .cmd(&[
            "--format",
            "json",
            "build",
            "record",
            "--image",
            &image,
            "--print-detected",
            "--branch",
            "release",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/api")
        .env("GITHUB_RUN_ID", "912")
        .env("GITHUB_WORKFLOW", "release")
        .env("GITHUB_JOB", "image")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_SHA", COMMIT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ci"]["system"], "github-actions");
    assert_eq!(v["build"]["commit"], COMMIT);
    assert_eq!(
        v["build"]["git_ref"], "release",
        "an explicit flag wins over CI"
    );
    assert_eq!(
        v["build"]["ci"]["url"],
        "https://github.com/acme/api/actions/runs/912"
    );
    assert_eq!(v["build"]["source_repo"], "https://github.com/acme/api");
    // --print-detected writes nothing.
    let trace = l.cmd(&["trace", &digest("a7")]).output().unwrap();
    assert_eq!(trace.status.code(), Some(1));
}

#[test]
fn service_import_yaml_and_csv() {
    let l = Ledger::new();
    let yaml = l.dir.path().join("services.yaml");
    std::fs::write(
        &yaml,
        "services:\n  - service: api\n    owner: priya@acme.dev\n    backup_owner: jonas@acme.dev\n    source_repo: https://github.com/acme/api\n    images: [ghcr.io/acme/api]\n    emergency_approver: maya@acme.dev\n",
    )
    .unwrap();
    let out = l.json(&["service", "import", yaml.to_str().unwrap()]);
    assert_eq!(out["added"], serde_json::json!(["api"]));
    let csv = l.dir.path().join("services.csv");
    std::fs::write(
        &csv,
        "service,owner,backup owner,source repo,image repositories,emergency approver\napi,sam@acme.dev,jonas@acme.dev,https://github.com/acme/api,ghcr.io/acme/api,maya@acme.dev\nweb,ana@acme.dev,,https://github.com/acme/web,ghcr.io/acme/web ghcr.io/acme/web-static,maya@acme.dev\n",
    )
    .unwrap();
    let out = l.json(&["service", "import", csv.to_str().unwrap()]);
    assert_eq!(out["added"], serde_json::json!(["web"]));
    assert_eq!(out["updated"], serde_json::json!(["api"]));
    let show = l.json(&["service", "show", "api"]);
    let owners: Vec<&str> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["field"] == "owner")
        .map(|h| h["new"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["priya@acme.dev", "sam@acme.dev"]);

    // A bad row anywhere writes nothing at all.
    let bad = l.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "service,owner\nbilling,ben@acme.dev\nAPI2,x@acme.dev\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "import_bad_row",
        l.run(&["service", "import", bad.to_str().unwrap()])
    );
    assert_eq!(
        l.cmd(&["service", "show", "billing"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// The demo story answers the four incident questions exactly.
#[test]
fn demo_answers_the_four_questions() {
    let l = Ledger::new();
    let demo_store = l.dir.path().join("demo.db");
    let out = l
        .cmd(&["demo"])
        .env("LINEAGE_STORE", &demo_store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("$ lineage affected --base docker.io/library/python:3.12-slim@sha256:"),
        "the demo shows its commands"
    );

    let q = |args: &[&str]| -> Value {
        let out = l
            .cmd(&[&["--format", "json"], args].concat())
            .env("LINEAGE_STORE", &demo_store)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let cve_base = format!("docker.io/library/python@{}", digest("base python-new"));
    // 1. Which services use that base digest?
    let affected = q(&["affected", "--base", &cve_base]);
    let services: Vec<&str> = affected["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        ["api", "worker"],
        "api runs it in production, so it comes first"
    );
    // 2. Which digest runs in production?
    let api = &affected["services"][0];
    assert_eq!(api["running"][0]["env"], "production");
    assert_eq!(api["running"][0]["digest"], digest("api-3"));
    // 3. Which commit built it?
    let commit = |label: &str| {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(format!("commit {label}").as_bytes()))[..40].to_string()
    };
    assert_eq!(api["running"][0]["commit"], commit("api-3"));
    // 4. Who approved the deploy, and who owns the fix?
    assert_eq!(api["running"][0]["approved_by"], "maya@acme.dev");
    assert_eq!(api["running"][0]["deployed_by"], "jonas@acme.dev");
    assert_eq!(api["owners"]["owner"], "priya@acme.dev");
    assert_eq!(api["owners"]["backup_owner"], "jonas@acme.dev");
    // The worker runs the vulnerable base only in staging; production is on the older digest.
    let worker = &affected["services"][1];
    let envs: Vec<&str> = worker["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["staging"]);
    assert_eq!(
        worker["owners"]["owner"], "sam@acme.dev",
        "after the ownership rotation"
    );

    let trace = q(&["trace", "api"]);
    assert_eq!(trace["digest"], digest("api-3"));
    assert_eq!(trace["build"]["commit"], commit("api-3"));
    assert_eq!(trace["running"][0]["approved_by"], "maya@acme.dev");
    let history = q(&["service", "show", "worker"]);
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            last["field"].as_str(),
            last["old"].as_str(),
            last["new"].as_str()
        ),
        (Some("owner"), Some("jonas@acme.dev"), Some("sam@acme.dev"))
    );
    // web is on other bases and must not appear.
    let by_name = q(&["affected", "--base", "python:3.12-slim"]);
    assert_eq!(by_name["services"].as_array().unwrap().len(), 2);
}

/// ARCHITECTURE.md, "every write path goes through the gate": the front ends (this binary and
/// the server) record builds and deploys only through `lineage_core::gate`, never through the
/// ungated use cases or the store's write methods.
#[test]
fn front_ends_write_builds_and_deploys_only_through_the_gate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let forbidden = [
        "record::build(",
        "record::deploy(",
        "record::resolve_deploy(",
        ".record_builds(",
        ".record_deploys(",
    ];
    let mut found = Vec::new();
    for dir in ["crates/lineage/src", "crates/lineage-server/src"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (n, line) in text.lines().enumerate() {
                        if forbidden.iter().any(|f| line.contains(f)) {
                            found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "ungated writes:\n{}", found.join("\n"));
}

/// Issue 13, item 6: output piped into a reader that stops early (`| head -1`) ends quietly,
/// never with a panic about a broken pipe.
#[test]
fn a_closed_pipe_ends_the_process_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // More output than a pipe holds (64 KiB), so the writer is still writing when the
    // reader leaves.
    let mut csv = String::from(
        "service,owner,backup owner,source repo,image repositories,emergency approver\n",
    );
    for i in 0..3000 {
        csv.push_str(&format!(
            "svc-{i},owner-{i}@acme.dev,,,ghcr.io/acme/svc-{i},\n"
        ));
    }
    std::fs::write(dir.path().join("services.csv"), csv).unwrap();
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["service", "import", "services.csv", "--by", "ops@acme.dev"])
        .env("LINEAGE_STORE", dir.path().join("l.db"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lineage"))
        .arg("service")
        .arg("list")
        .env("LINEAGE_STORE", dir.path().join("l.db"))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone; the rest of the output has nowhere to go.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

/// Issue 13, item 5: the 12-hex digests human output shows are accepted back, as any unique
/// prefix of at least 12 hex characters; an ambiguous one says so; a bare 64-hex string is a
/// digest; and tracing a base digest points at `affected --base`.
#[test]
fn short_digests_are_accepted_where_they_are_unique() {
    let l = scenario();
    let a1 = digest("a1");
    let a2 = digest("a2");
    let short = &a1[..7 + 12];
    let t = l.json(&["trace", short]);
    assert_eq!(t["digest"], a1.as_str(), "{t}");
    let bare = a1.strip_prefix("sha256:").unwrap();
    assert_eq!(l.json(&["trace", bare])["digest"], a1.as_str());
    assert_eq!(l.json(&["trace", &bare[..12]])["digest"], a1.as_str());
    // `build diff` takes them too.
    let d = l.json(&["build", "diff", &a1[..7 + 12], &a2[..7 + 14]]);
    assert!(d["fields"].is_array(), "{d}");
    // A base digest: `affected` takes its prefix; `trace` says where to ask.
    let py1 = digest("py1");
    let a = l.json(&["affected", "--base", &py1[..7 + 12]]);
    assert_eq!(a["services"][0]["service"], "api", "{a}");
    let out = l.run(&["trace", &py1[..7 + 12]]);
    assert!(
        out.starts_with("exit: 2\n") && out.contains("lineage affected --base"),
        "{out}"
    );
    // Too short, or not found.
    let out = l.run(&["trace", "sha256:1234"]);
    assert!(
        out.starts_with("exit: 2\n") && out.contains("at least 12"),
        "{out}"
    );
    let out = l.run(&["trace", "sha256:000000000000"]);
    assert!(out.starts_with("exit: 1\n"), "{out}");
}

/// Two digests sharing their first 12 hex characters: the prefix is ambiguous, and the error
/// lists both.
#[test]
fn an_ambiguous_digest_prefix_lists_the_candidates() {
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
    let one = format!("sha256:abcdef012345{}", "1".repeat(52));
    let two = format!("sha256:abcdef012345{}", "2".repeat(52));
    for d in [&one, &two] {
        l.ok(&[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/api@{d}"),
            "--env",
            "dev",
            "--builder",
            "sa:ci",
        ]);
    }
    let out = l.run(&["trace", "sha256:abcdef012345"]);
    assert!(out.starts_with("exit: 2\n"), "{out}");
    assert!(
        out.contains("ambiguous") && out.contains(&one) && out.contains(&two),
        "{out}"
    );
    assert_eq!(l.json(&["trace", &one[..7 + 13]])["digest"], one.as_str());
}

/// Issue 13, items 10 and 17: a base never checked in its registry is "not assessed", never
/// "up to date", and `--fail-after` fails on it unless `--allow-unassessed`; rows only
/// filtered out by `--min-days` are not reported as "no stale base images".
#[test]
fn an_unchecked_base_is_not_an_all_clear() {
    let l = scenario();
    // Staging runs a2 on the newest python digest any build used, but no registry was asked:
    // not assessed. Production runs a1, two days behind that digest (known from builds).
    let report = l.json(&["report", "stale"]);
    assert_eq!(report["up_to_date"], 0, "{report}");
    assert_eq!(report["not_assessed"][0]["env"], "staging", "{report}");
    assert_eq!(report["rows"][0]["env"], "production", "{report}");
    let staging = ["report", "stale", "--env", "staging", "--fail-after", "0"];
    let out = l.run(&staging);
    assert!(out.starts_with("exit: 1\n"), "{out}");
    assert!(
        out.contains("Nothing could be assessed in staging")
            && out.contains("never checked in its registry"),
        "{out}"
    );
    assert!(!out.contains("No stale base images"), "{out}");
    let mut allowed = staging.to_vec();
    allowed.push("--allow-unassessed");
    let out = l.run(&allowed);
    assert!(out.starts_with("exit: 0\n"), "{out}");
    // Filtered out by `--min-days` is not "no stale base images".
    let out = l.run(&["report", "stale", "--env", "production", "--min-days", "5"]);
    assert!(
        out.contains("No base image more than 5 days behind in production")
            && out.contains("1 image fewer days behind left out"),
        "{out}"
    );
}

/// Issue 13, item 14: a registry that accepts the connection and never answers gives a clear
/// error after `--registry-timeout`, not a five-minute hang.
#[test]
fn a_silent_registry_times_out_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let l = Ledger::new();
    let mut child = l
        .cmd(&[
            "--registry-timeout",
            "1",
            "inspect",
            &format!("127.0.0.1:{port}/app:1"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A guard against a hang, not a measurement: far above the timeout given.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("lineage did not give up on a silent registry");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--registry-timeout"), "{stderr}");
}

/// Issue 13, item 7: an image that used a base only in a build stage is marked as such in
/// `affected`, and listed after images that ship the base.
#[test]
fn build_stage_only_usage_is_marked() {
    let l = Ledger::new();
    for s in ["api", "tool"] {
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
    let golang = format!("golang:1.23@{}", digest("go"));
    let python = format!("python:3.12-slim@{}", digest("py"));
    // api: golang builds, python ships. tool: golang ships.
    for (svc, label, bases) in [
        ("api", "a1", vec![&golang, &python]),
        ("tool", "t1", vec![&golang]),
    ] {
        let image = format!("ghcr.io/acme/{svc}@{}", digest(label));
        let mut args = vec![
            "build",
            "record",
            "--image",
            &image,
            "--env",
            "dev",
            "--builder",
            "sa:ci",
        ];
        for b in &bases {
            args.extend(["--base", b.as_str()]);
        }
        l.ok(&args);
        l.ok(&[
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "dev",
            "--by",
            "jonas@acme.dev",
        ]);
    }
    let report = l.json(&["affected", "--base", &golang]);
    let services: Vec<(&str, bool)> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["build_stage_only"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(services, vec![("tool", false), ("api", true)], "{report}");
    let human = l.ok(&["affected", "--base", &golang]);
    assert!(human.contains("build stage  only"), "{human}");
    assert_eq!(
        l.json(&["affected", "--base", &python])["services"][0]["build_stage_only"],
        false
    );
}
/// `lineage … --help` for a command path.
fn help(path: &[&str]) -> String {
    let l = Ledger::new();
    let mut args: Vec<&str> = path.to_vec();
    args.push("--help");
    l.ok(&args)
}

/// The subcommands a help page lists under `Commands:`.
fn subcommands(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in page.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            inside = line == "Commands:";
            continue;
        }
        if inside && line.starts_with("  ") && !line.starts_with("   ") {
            if let Some(name) = line.split_whitespace().next() {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Entries of the argument and option sections with no description, in clap's two layouts
/// (description on the same line, or on the next, more indented, line).
fn undescribed(page: &str) -> Vec<String> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = Vec::new();
    let mut inside = false;
    for (i, line) in lines.iter().enumerate() {
        if line.ends_with(':') && !line.starts_with(' ') {
            inside = line.contains("Options") || *line == "Arguments:" || *line == "Commands:";
            continue;
        }
        let entry =
            line.starts_with("  ") && !line.starts_with("      ") || line.starts_with("      --");
        if !inside || !entry || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        // Same line: the name, then two or more spaces, then the description.
        let same_line = trimmed
            .split_once("  ")
            .is_some_and(|(_, rest)| !rest.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|n| {
            let t = n.trim_start();
            !t.is_empty() && n.len() - t.len() > indent
        });
        if !same_line && !next_line {
            out.push(line.trim().to_string());
        }
    }
    out
}

/// Done when (issue 20): `--help` has no empty description; a walk over every command.
#[test]
fn every_command_help_describes_every_option_and_shows_global_options_apart() {
    // The page reader finds an empty description in both of clap's layouts.
    let same_line = "Options:\n      --repo <URL>\n      --branch <B>  Branch or ref\n";
    assert_eq!(undescribed(same_line), ["--repo <URL>"]);
    let next_line = "Options:\n      --repo <URL>\n\n      --branch <B>\n          Branch or ref\n";
    assert_eq!(undescribed(next_line), ["--repo <URL>"]);
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    let mut missing = Vec::new();
    let mut pages = 0;
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let page = help(&args);
        pages += 1;
        for entry in undescribed(&page) {
            missing.push(format!("lineage {} {entry}", path.join(" ")));
        }
        for sub in subcommands(&page) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        if !path.is_empty() {
            // Global options are listed apart from the command's own.
            assert!(page.contains("Global options:"), "{path:?}:\n{page}");
            let own = page.split("Global options:").next().unwrap();
            assert!(
                !own.contains("--store <"),
                "{path:?}: --store among its own options"
            );
        }
        // `--server` only where a server runs the command.
        let remote = [
            "build record",
            "deploy record",
            "deploy end",
            "approve",
            "trace",
            "affected",
            "running",
        ];
        let name = path.join(" ");
        assert_eq!(
            page.contains("--server <URL>"),
            remote.contains(&name.as_str()),
            "`lineage {name} --help` and --server"
        );
    }
    assert!(pages > 40, "walked only {pages} help pages");
    assert!(
        missing.is_empty(),
        "no description:\n{}",
        missing.join("\n")
    );
}

/// Done when (issue 20): old spellings are refused with the new one named, and nothing runs.
#[test]
fn old_option_spellings_name_the_new_ones() {
    let l = scenario();
    let refused = |args: &[&str], new: &str| {
        let out = l.cmd(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(new),
            "{args:?} should name `{new}`: {stderr}"
        );
    };
    let image = format!("ghcr.io/acme/api@{}", digest("a2"));
    refused(
        &["build", "check", "--image", &image, "--output", "sarif"],
        "--format sarif",
    );
    refused(
        &[
            "deploy", "check", "--image", &image, "--env", "staging", "--output", "json",
        ],
        "--format json",
    );
    refused(&["report", "stale", "--output", "text"], "--format plain");
    refused(
        &["report", "stale", "--output", "markdown"],
        "--format markdown",
    );
    refused(
        &["--server", "http://127.0.0.1:9", "trace", "api"],
        "lineage trace api --server URL",
    );
    refused(
        &["service", "list", "--server", "http://127.0.0.1:9"],
        "--server",
    );
    // A format the command does not print.
    refused(&["trace", "api", "--format", "sarif"], "`human`, `json`");
    refused(
        &["build", "check", "--image", &image, "--format", "slack"],
        "`sarif`",
    );
}

/// `-o FILE` writes a gate report to the file, in `--format`, and stdout stays empty.
#[test]
fn gate_reports_go_to_the_output_file_in_the_chosen_format() {
    let l = scenario();
    let image = format!("ghcr.io/acme/api@{}", digest("a2"));
    let out = l
        .cmd(&[
            "build", "check", "--image", &image, "--format", "sarif", "-o", "r.sarif",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(l.dir.path().join("r.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
}

/// `--color always|never|auto` and NO_COLOR.
#[test]
fn colour_follows_the_color_option_and_no_color() {
    let l = scenario();
    let image = format!("ghcr.io/acme/api@{}", digest("a2"));
    let check = |extra: &[&str], no_color: bool| {
        let mut args = vec!["build", "check", "--image", &image];
        args.extend_from_slice(extra);
        let mut cmd = l.cmd(&args);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains('\u{1b}')
    };
    assert!(check(&["--color", "always"], false));
    // An explicit `--color always` wins over NO_COLOR; `auto` honours it.
    assert!(check(&["--color", "always"], true));
    assert!(!check(&["--color", "never"], false));
    // Piped, `auto` never colours.
    assert!(!check(&[], false));
}

/// Completion scripts for every shell, and man pages.
#[test]
fn completions_and_man_pages_are_generated() {
    let l = Ledger::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = l.ok(&["completions", shell]);
        for word in ["build", "record", "buildx-metadata", "format"] {
            assert!(script.contains(word), "{shell} completion lacks `{word}`");
        }
    }
    // Bash parses its script and completes a subcommand from it.
    let script = l.dir.path().join("lineage.bash");
    std::fs::write(&script, l.ok(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(lineage bui); COMP_CWORD=1; COMP_LINE='lineage bui'; COMP_POINT=11; _lineage lineage bui lineage; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "build");

    let page = l.ok(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH lineage"),
        "{}",
        &page[..200.min(page.len())]
    );
    let dir = l.dir.path().join("man");
    l.ok(&["man", "--out-dir", dir.to_str().unwrap()]);
    for page in [
        "lineage.1",
        "lineage-build-record.1",
        "lineage-report-stale.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} not written");
    }
    // Neither needs a ledger or settings.
    assert!(!l.store().exists());
}

/// `lineage init` in a repository: a settings file that loads, an example policy whose tests
/// pass, the CI snippet for the CI it finds, and nothing overwritten on a second run.
#[test]
fn init_sets_up_a_repository_for_its_ci() {
    let l = Ledger::new();
    let repo = l.dir.path().join("payments-api");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    std::fs::create_dir_all(repo.join("svc")).unwrap();
    std::fs::write(
        repo.join(".git/config"),
        "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@github.com:acme/payments-api.git\n",
    )
    .unwrap();
    std::fs::write(repo.join(".github/workflows/build.yml"), "on: push\n").unwrap();
    std::fs::write(repo.join("Dockerfile"), "FROM debian:12\n").unwrap();

    let mut cmd = l.cmd(&["init"]);
    cmd.current_dir(repo.join("svc"));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("GitHub Actions found"), "{stdout}");
    assert!(
        stdout.contains("buildx-metadata: buildx-metadata.json"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lineage service add payments-api --owner YOU@EXAMPLE.COM --repo https://github.com/acme/payments-api"),
        "{stdout}"
    );
    let toml = std::fs::read_to_string(repo.join("lineage.toml")).unwrap();
    assert!(toml.contains("# Source: https://github.com/acme/payments-api"));

    // The written files work: discovered from a subdirectory, the policy's tests pass.
    let mut test = l.cmd(&["--format", "json", "policy", "test"]);
    test.current_dir(repo.join("svc"));
    let out = test.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["config"]["how"], "discovered", "{report:#}");

    // A second init writes nothing and says why.
    std::fs::write(repo.join("lineage.toml"), "# mine\n").unwrap();
    let mut again = l.cmd(&["init"]);
    again.current_dir(&repo);
    let out = again.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists; nothing was written") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("lineage.toml")).unwrap(),
        "# mine\n"
    );

    // Elsewhere (no CI files): the plain shell snippet.
    let plain = l.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let out = l.json(&["init", "--dir", plain.to_str().unwrap()]);
    assert_eq!(out["facts"]["ci"], Value::Null);
    assert!(out["ci_snippet"]
        .as_str()
        .unwrap()
        .contains("--digest-file"));
}

/// `build record --buildx-metadata` and `--digest-file` fill what the builder wrote, and a
/// flag that contradicts the file is refused naming both.
#[test]
fn builder_files_fill_the_build_record() {
    let l = scenario();
    let d = digest("from-buildx");
    let base = digest("py3");
    let meta = serde_json::json!({
        "containerimage.digest": d,
        "image.name": "ghcr.io/acme/api:1.9.0",
        "buildx.build.provenance": {
            "buildType": "https://mobyproject.org/buildkit@v1",
            "materials": [{
                "uri": "pkg:docker/python@3.12-slim?platform=linux%2Famd64",
                "digest": {"sha256": base.trim_start_matches("sha256:")}
            }],
            "metadata": {
                "buildStartedOn": "2026-11-16T10:00:00Z",
                "buildFinishedOn": "2026-11-16T10:03:00Z",
                "https://mobyproject.org/buildkit@v1#metadata": {
                    "vcs": {"source": "https://github.com/acme/api", "revision": COMMIT}
                }
            }
        }
    });
    std::fs::write(l.dir.path().join("meta.json"), meta.to_string()).unwrap();
    let shown = l.json(&[
        "build",
        "record",
        "--buildx-metadata",
        "meta.json",
        "--print-detected",
    ]);
    let build = &shown["build"];
    assert_eq!(build["digest"], d.as_str());
    assert_eq!(build["tags"], serde_json::json!(["1.9.0"]));
    assert_eq!(build["commit"], COMMIT);
    assert_eq!(build["bases"][0]["digest"], base.as_str());
    assert_eq!(build["bases"][0]["name"], "docker.io/library/python");
    assert_eq!(build["started_at"], "2026-11-16T10:00:00Z");

    let contradicts = l
        .cmd(&[
            "build",
            "record",
            "--buildx-metadata",
            "meta.json",
            "--digest",
            &digest("other"),
        ])
        .output()
        .unwrap();
    assert_eq!(contradicts.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&contradicts.stderr);
    assert!(
        stderr.contains("`--digest` says") && stderr.contains("`--buildx-metadata` says"),
        "{stderr}"
    );

    // kaniko / buildah: the digest file, recorded for real.
    let k = digest("from-kaniko");
    std::fs::write(l.dir.path().join("digest.txt"), &k).unwrap();
    let recorded = l.json(&[
        "build",
        "record",
        "--image",
        "ghcr.io/acme/api:1.9.1",
        "--digest-file",
        "digest.txt",
        "--base",
        &format!("python:3.12-slim@{base}"),
        "--commit",
        COMMIT,
        "--repo",
        "https://github.com/acme/api",
        "--env",
        "staging",
    ]);
    assert_eq!(recorded["digest"], k.as_str());
    std::fs::write(l.dir.path().join("bad.txt"), "latest\n").unwrap();
    let bad = l
        .cmd(&[
            "build",
            "record",
            "--image",
            "ghcr.io/acme/api",
            "--digest-file",
            "bad.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`bad.txt` does not hold an image digest")
    );
}

/// Progress bars: on a terminal (a pseudo-terminal from util-linux `script`), gone with
/// `--quiet`, never when stderr is piped.
#[test]
fn progress_bars_are_drawn_on_a_terminal_only_and_quiet_silences_them() {
    let l = scenario();
    let under_pty = |extra: &str| {
        let line = format!("{} log verify {extra}", env!("CARGO_BIN_EXE_lineage"));
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(l.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TERM", "xterm")
            .env("LINEAGE_STORE", l.store())
            .env("LINEAGE_NOW", NOW)
            .output()
            .expect("`script` (Debian package bsdutils) runs the command on a pseudo-terminal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(under_pty("").contains("rehashing records"));
    assert!(!under_pty("--quiet").contains("rehashing records"));
    let piped = l.cmd(&["log", "verify"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("rehashing"));
}
