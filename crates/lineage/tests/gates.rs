//! The build and deploy gates and signed provenance, end to end: the real binary on a
//! temporary ledger, with CI variables, lineage.toml, Rego policies and keys written into the
//! temporary directory at test time. One test per "Done when" line of issues 4 and 5, plus
//! snapshots of the human, JSON and SARIF reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NOW: &str = "2026-11-17T09:12:00Z";
const COMMIT: &str = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39";
const PASSWORD: &str = "correct horse battery staple";

/// GitHub Actions' variables for a release job of `acme/api`.
const GITHUB_ENV: [(&str, &str); 7] = [
    ("GITHUB_ACTIONS", "true"),
    ("GITHUB_REPOSITORY", "acme/api"),
    ("GITHUB_RUN_ID", "912"),
    ("GITHUB_WORKFLOW", "release"),
    ("GITHUB_JOB", "image"),
    ("GITHUB_REF_NAME", "main"),
    ("GITHUB_SHA", COMMIT),
];

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

/// The shared fixtures' sibling: the repository's `examples/policies`.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// `exit: N`, stdout and stderr, for snapshots.
    fn text(&self, tmp: &Path) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
        .replace(&tmp.display().to_string(), "[TMP]")
    }
}

struct World {
    dir: tempfile::TempDir,
}

impl World {
    /// A ledger with `api` (owned, with its repository) and `orphan` (no owner).
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        w.ok(&[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--repo",
            "https://github.com/acme/api",
            "--image",
            "ghcr.io/acme/api",
        ]);
        w.ok(&[
            "service",
            "add",
            "orphan",
            "--repo",
            "https://github.com/acme/orphan",
            "--image",
            "ghcr.io/acme/orphan",
        ]);
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_in(self.dir.path(), args, env)
    }

    /// Runs in `cwd` (a subdirectory, say) with the same ledger and variables.
    fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("LINEAGE_STORE", self.path("ledger.db"))
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev")
            .env("LINEAGE_KEY_PASSWORD", PASSWORD);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "lineage {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r
    }

    fn snap(&self, r: &Run) -> String {
        r.text(self.dir.path())
    }

    fn ledger_bytes(&self) -> Vec<u8> {
        std::fs::read(self.path("ledger.db")).unwrap()
    }
}

/// `build record|check` flags of a complete CI build of `service`, on `base`.
fn build_args(verb: &str, service: &str, label: &str, base: &str) -> Vec<String> {
    [
        "build",
        verb,
        "--image",
        &format!("ghcr.io/acme/{service}:1.8.0@{}", digest(label)),
        "--base",
        base,
        "--base-pulled-at",
        "2026-11-17T08:00:00Z",
        "--repo",
        &format!("https://github.com/acme/{service}"),
        "--ci-job",
        &format!("release/{service}"),
    ]
    .map(str::to_string)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn pinned_base() -> String {
    format!("python:3.12-slim@{}", digest("py"))
}

fn codes(report: &Value, level: &str) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["level"] == level && d["waived"].is_null())
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

/// Done when (issue 4): a CI-like build with a missing base digest fails with its code and
/// hint; the same build with full metadata passes.
#[test]
fn ci_build_without_base_digest_fails_and_with_full_metadata_passes() {
    let w = World::new();
    let mut args = build_args("check", "api", "a1", "python:3.12-slim");
    args.extend(["--format".into(), "json".into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    assert_eq!(report["passed"], false);
    // Everything else came from the GitHub Actions variables, so B003 is the only error.
    assert_eq!(codes(&report, "error"), vec!["B003"], "{report:#}");
    let b003 = &report["diagnostics"][0];
    assert_eq!(
        b003["message"],
        "base image `docker.io/library/python:3.12-slim` has no digest"
    );
    assert!(
        b003["hint"]
            .as_str()
            .unwrap()
            .contains("docker buildx imagetools inspect docker.io/library/python:3.12-slim"),
        "{b003:#}"
    );
    assert_eq!(report["subject"]["commit"], COMMIT);
    assert_eq!(report["subject"]["ci"], "github-actions run 912");

    // The same build, with the base pinned, passes with nothing to say.
    let mut args = build_args("check", "api", "a1", &pinned_base());
    args.extend(["--format".into(), "json".into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    assert_eq!(report["passed"], true);
    assert_eq!(report["diagnostics"], Value::Array(vec![]), "{report:#}");
}

/// `build record` runs the same gate: the failing production build is refused and nothing
/// is written; `--allow-failures` records it, and the failure with it, which a later
/// production deploy check then sees.
#[test]
fn build_record_refuses_a_failing_production_build_unless_allowed() {
    let w = World::new();
    let before = w.ledger_bytes();
    let failing = build_args("record", "api", "a1", "python:3.12-slim");
    let r = w.run_with(&strs(&failing), &GITHUB_ENV);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("error[B003]"), "{}", r.stdout);
    assert!(
        r.stderr.starts_with("error: refused: the build of"),
        "{}",
        r.stderr
    );
    assert_eq!(w.ledger_bytes(), before, "a refused build writes nothing");

    // A staging build has B003 as a warning: recorded, and the check passed.
    let mut staging = build_args("record", "api", "s1", "python:3.12-slim");
    staging.extend(["--env".into(), "staging".into()]);
    let r = w.run_with(&strs(&staging), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("warning[B003]"), "{}", r.stderr);

    let mut allowed = failing.clone();
    allowed.push("--allow-failures".into());
    let r = w.run_with(&strs(&allowed), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("recorded build"), "{}", r.stdout);

    let image = format!("ghcr.io/acme/api@{}", digest("a1"));
    let deploy = [
        "deploy",
        "check",
        "--image",
        &image,
        "--env",
        "production",
        "--by",
        "jonas@acme.dev",
        "--approved-by",
        "maya@acme.dev",
        "--format",
        "json",
    ];
    let r = w.run(&deploy);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(codes(&r.json(), "error"), vec!["D007"]);
    // The staging build's check passed, so its deploy is clean.
    let image = format!("ghcr.io/acme/api@{}", digest("s1"));
    let mut deploy = deploy;
    deploy[3] = &image;
    let r = w.run(&deploy);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// Done when (issue 4): a production deploy of a service without an owner is refused.
#[test]
fn production_deploy_of_a_service_without_owner_is_refused() {
    let w = World::new();
    let r = w.run_with(
        &strs(&build_args("record", "orphan", "o1", &pinned_base())),
        &GITHUB_ENV,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let image = format!("ghcr.io/acme/orphan@{}", digest("o1"));
    let deploy = |verb: &'static str| {
        vec![
            "deploy",
            verb,
            "--image",
            image.as_str(),
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "maya@acme.dev",
        ]
    };
    let r = w.run(&deploy("check"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    insta::assert_snapshot!("deploy_check_no_owner_human", w.snap(&r));

    let before = w.ledger_bytes();
    let r = w.run(&deploy("record"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("error[D001]"), "{}", r.stdout);
    assert!(
        r.stderr.contains("error: refused: the deploy of"),
        "{}",
        r.stderr
    );
    assert_eq!(w.ledger_bytes(), before, "a refused deploy writes nothing");
    assert_eq!(w.run(&["running", "--env", "production"]).code, 1);

    // With an owner the same deploy goes through.
    w.ok(&["service", "set-owner", "orphan", "--owner", "sam@acme.dev"]);
    w.ok(&deploy("record"));
    assert_eq!(w.run(&["running", "--env", "production"]).code, 0);
}

/// Done when (issue 4): an exception waives a rule until it expires.
#[test]
fn an_exception_waives_a_rule_until_it_expires() {
    let w = World::new();
    let mut check = build_args("check", "api", "a1", "python:3.12-slim");
    check.extend(["--format".into(), "json".into()]);
    assert_eq!(w.run_with(&strs(&check), &GITHUB_ENV).code, 1);

    // Unknown codes are refused with the list of valid ones, and nothing is written.
    let before = w.ledger_bytes();
    let r = w.run(&[
        "exception",
        "add",
        "--rule",
        "B033",
        "--service",
        "api",
        "--reason",
        "vendor base, SEC-142",
        "--approved-by",
        "sam@acme.dev",
        "--expires",
        "2026-12-01",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "error: unknown rule `B033`; valid rules are: B001 (final-digest-missing), "
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("D010 (provenance-unsigned)"),
        "{}",
        r.stderr
    );
    assert_eq!(w.ledger_bytes(), before);

    w.ok(&[
        "exception",
        "add",
        "--rule",
        "base-digest-missing",
        "--service",
        "api",
        "--reason",
        "vendor base, SEC-142",
        "--approved-by",
        "sam@acme.dev",
        "--expires",
        "2026-12-01",
    ]);

    // Before the expiry: waived, shown, and the check passes.
    let r = w.run_with(&strs(&check), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    let b003 = &report["diagnostics"][0];
    assert_eq!(b003["code"], "B003");
    assert_eq!(b003["waived"]["approved_by"], "sam@acme.dev");
    assert_eq!(report["counts"]["waived"], 1);
    let mut human = check.clone();
    human.truncate(human.len() - 2);
    let r = w.run_with(&strs(&human), &GITHUB_ENV);
    assert!(
        r.stdout
            .contains("waived by sam@acme.dev until 2026-12-01: vendor base, SEC-142"),
        "{}",
        r.stdout
    );

    // At the expiry instant and after: ignored, with a note saying so.
    let later = [("LINEAGE_NOW", "2026-12-01T00:00:00Z")];
    let env: Vec<(&str, &str)> = GITHUB_ENV.iter().copied().chain(later).collect();
    let r = w.run_with(&strs(&check), &env);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    assert_eq!(codes(&report, "error"), vec!["B003"]);
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("expired on 2026-12-01 and was ignored"),
        "{report:#}"
    );

    insta::assert_snapshot!(
        "exception_list_later",
        w.snap(&w.run_with(&["exception", "list"], &later))
    );
    insta::assert_snapshot!(
        "exception_list_json",
        w.snap(&w.run(&["--format", "json", "exception", "list"]))
    );
}

/// Writes lineage.toml and copies the example policies (with their tests) beside it.
fn with_example_policies(w: &World) {
    w.write(
        "lineage.toml",
        "[environments]\nnames = [\"dev\", \"staging\", \"production\"]\n",
    );
    for entry in std::fs::read_dir(examples()).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        w.write(
            &format!("policies/{name}"),
            &std::fs::read_to_string(&p).unwrap(),
        );
    }
}

/// Done when (issue 4): a Rego policy adds its own denial. The example policies' own tests
/// pass through `lineage policy test`.
#[test]
fn a_rego_policy_adds_its_own_denial() {
    let w = World::new();
    // Without policies the complete build passes.
    let args = build_args("check", "api", "a1", &pinned_base());
    assert_eq!(w.run_with(&strs(&args), &GITHUB_ENV).code, 0);

    with_example_policies(&w);
    let mut json = args.clone();
    json.extend(["--format".into(), "json".into()]);
    let r = w.run_with(&strs(&json), &GITHUB_ENV);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    assert_eq!(codes(&report, "error"), vec!["ACME001"], "{report:#}");
    let d = &report["diagnostics"][0];
    assert_eq!(
        d["message"],
        "base image `docker.io/library/python` is not from registry.acme.dev"
    );
    assert_eq!(d["origin"]["kind"], "policy");
    assert_eq!(d["origin"]["file"], "policies/registry.rego");

    // The base mirrored into our registry passes the policy.
    let mirrored = format!("registry.acme.dev/mirror/python:3.12-slim@{}", digest("py"));
    let r = w.run_with(
        &strs(&build_args("check", "api", "a1", &mirrored)),
        &GITHUB_ENV,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // A policy's code can be waived like a built-in one.
    w.ok(&[
        "exception",
        "add",
        "--rule",
        "ACME001",
        "--service",
        "api",
        "--reason",
        "mirror pending, INFRA-9",
        "--approved-by",
        "sam@acme.dev",
        "--expires",
        "2026-11-20",
    ]);
    assert_eq!(w.run_with(&strs(&args), &GITHUB_ENV).code, 0);

    let r = w.run(&["policy", "test"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.ends_with("8 passed, 0 failed\n"), "{}", r.stdout);
    insta::assert_snapshot!("policy_test_examples", w.snap(&r));

    // A failing policy test fails the command.
    w.write(
        "policies/broken_test.rego",
        "package lineage.broken_test\n\ntest_never if { 1 == 2 }\n",
    );
    let r = w.run(&["policy", "test"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.ends_with("8 passed, 1 failed\n"), "{}", r.stdout);
}

/// A soak policy on the deploy side: the deploy input carries the first staging deploy.
#[test]
fn the_staging_soak_policy_sees_the_first_staging_deploy() {
    let w = World::new();
    with_example_policies(&w);
    let mirrored = format!("registry.acme.dev/mirror/python:3.12-slim@{}", digest("py"));
    let r = w.run_with(
        &strs(&build_args("record", "api", "a1", &mirrored)),
        &GITHUB_ENV,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let image = format!("ghcr.io/acme/api@{}", digest("a1"));
    let prod = [
        "deploy",
        "check",
        "--image",
        &image,
        "--env",
        "production",
        "--by",
        "jonas@acme.dev",
        "--approved-by",
        "maya@acme.dev",
        "--format",
        "json",
    ];
    let r = w.run(&prod);
    assert_eq!(r.code, 1);
    assert_eq!(codes(&r.json(), "error"), vec!["ACME002"]);
    w.ok(&[
        "deploy",
        "record",
        "--image",
        &image,
        "--env",
        "staging",
        "--by",
        "sa:deploy-bot",
        "--at",
        "2026-11-16T09:00:00Z",
    ]);
    // 24 hours and 12 minutes later.
    let r = w.run(&prod);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = w.run_with(&prod, &[("LINEAGE_NOW", "2026-11-16T10:00:00Z")]);
    assert_eq!(r.code, 1);
    assert!(r.json()["diagnostics"][0]["message"]
        .as_str()
        .unwrap()
        .contains("soaked in staging for 1 hours"));
}

/// Done when (issue 4): SARIF output is accepted by a SARIF consumer (serde-sarif's typed
/// model of the 2.1.0 schema); plus snapshots of the human, JSON and SARIF reports.
#[test]
fn check_output_human_json_sarif_github() {
    let w = World::new();
    let mut args = build_args("check", "api", "a1", "python:3.12-slim");
    args[3] = format!("ghcr.io/acme/api:latest@{}", digest("a1"));
    // A laptop build: no CI variables, an abbreviated commit, a Dockerfile with an unpinned FROM.
    args.extend([
        "--commit".into(),
        "4f2a9c1".into(),
        "--branch".into(),
        "main".into(),
    ]);
    w.write(
        "Dockerfile",
        "ARG PY=3.12-slim\nFROM --platform=$BUILDPLATFORM python:${PY} AS build\nRUN pip wheel .\nFROM gcr.io/distroless/python3@sha256:0000000000000000000000000000000000000000000000000000000000000000\nCOPY --from=build /w /w\n",
    );
    args.extend(["--dockerfile".into(), "Dockerfile".into()]);

    let r = w.run(&strs(&args));
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("build_check_human", w.snap(&r));

    let mut json = args.clone();
    json.splice(0..0, ["--format".to_string(), "json".to_string()]);
    let r = w.run(&strs(&json));
    assert_eq!(r.code, 1);
    assert_eq!(
        codes(&r.json(), "error"),
        // B014: the record names `python:3.12-slim`, the Dockerfile's final stage distroless.
        vec!["B003", "B005", "B007", "B009", "B014"]
    );
    insta::assert_snapshot!("build_check_json", w.snap(&r));

    let mut sarif = args.clone();
    sarif.extend(["--format".into(), "sarif".into()]);
    let r = w.run(&strs(&sarif));
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("build_check_sarif", w.snap(&r));
    let log: serde_sarif::sarif::Sarif = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not SARIF 2.1.0 ({e}):\n{}", r.stdout));
    let run = &log.runs[0];
    assert_eq!(run.tool.driver.name, "lineage");
    let results = run.results.as_ref().unwrap();
    assert_eq!(results.len(), 5);
    let rules = run.tool.driver.rules.as_ref().unwrap();
    for result in results {
        let id = result.rule_id.as_deref().unwrap();
        let index = result.rule_index.unwrap() as usize;
        assert_eq!(rules[index].id, id, "ruleIndex points at its rule");
        // Every result has a location, or GitHub code scanning drops it.
        assert!(result.locations.as_ref().is_some_and(|l| !l.is_empty()));
    }

    // GitHub Actions: workflow commands on stdout, the job summary appended to the file.
    let summary = w.path("summary.md");
    std::fs::write(&summary, "# before\n").unwrap();
    let mut github = args.clone();
    github.extend(["--format".into(), "github".into()]);
    let r = w.run_with(
        &strs(&github),
        &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .starts_with("::error title=B003 base-digest-missing::"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("::error title=B009 unpinned-dockerfile-from,file=Dockerfile,line=2,col=1::"),
        "{}",
        r.stdout
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("# before\n"), "appended, not overwritten");
    assert!(md.contains("B003"), "{md}");

    let mut plain = args.clone();
    plain.extend(["--format".into(), "plain".into()]);
    let r = w.run(&strs(&plain));
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.starts_with("lineage build check: FAILED\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.is_ascii());
}

/// Configuration the gate cannot use exits 2, pointing at file, line and column, and
/// writes nothing.
#[test]
fn bad_config_and_bad_rego_exit_2_with_positions() {
    let w = World::new();
    let args = build_args("record", "api", "a1", &pinned_base());
    let before = w.ledger_bytes();

    w.write("lineage.toml", "[rules]\nB003 = \"warn\"\nB099 = \"off\"\n");
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    insta::assert_snapshot!("bad_rule_in_config", w.snap(&r));

    w.write("lineage.toml", "[rules]\nB003 = \"loud\"\n");
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: lineage.toml:2:8: severity `loud`"),
        "{}",
        r.stderr
    );

    w.write("lineage.toml", "");
    w.write(
        "policies/bad.rego",
        "package lineage.bad\n\ndeny contains msg if {\n  msg := \n}\n",
    );
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with("error: policies/bad.rego:"),
        "{}",
        r.stderr
    );
    let position: Vec<&str> = r.stderr.split(':').skip(2).take(2).collect();
    assert!(
        position
            .iter()
            .all(|p| p.parse::<u32>().is_ok_and(|n| n > 0)),
        "{}",
        r.stderr
    );
    assert_eq!(w.ledger_bytes(), before);
}

/// Generates an encrypted key pair `keys/NAME.{key,pub}` with `lineage key generate`.
fn key(w: &World, name: &str) {
    w.ok(&["key", "generate", "--name", name, "--dir", "keys"]);
}

fn trust(w: &World, entries: &[(&str, &str)]) {
    let mut toml = String::new();
    for (name, envs) in entries {
        toml.push_str(&format!(
            "[[trust.keys]]\nid = \"{name}\"\npublic_key_file = \"keys/{name}.pub\"\nroles = [\"builder\"]\n{envs}\n"
        ));
    }
    w.write("lineage.toml", &toml);
}

/// Done when (issue 5): a build recorded and signed by Lineage verifies, by digest against
/// the ledger and `[trust]`, and as an exported envelope against the public key; the same
/// envelope with one byte flipped fails with a precise reason.
#[test]
fn a_signed_build_verifies_and_a_flipped_byte_does_not() {
    let w = World::new();
    key(&w, "ci");
    trust(&w, &[("ci", "")]);
    let mut args = build_args("record", "api", "a1", &pinned_base());
    args.extend(["--sign-key".into(), "keys/ci.key".into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("signed provenance (SLSA v1) with key"),
        "{}",
        r.stdout
    );

    let d = digest("a1");
    let r = w.run(&["--format", "json", "verify", &d]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(
        (v["verified"].clone(), v["signers"][0].clone()),
        (Value::Bool(true), Value::from("ci"))
    );
    // By pinned image too.
    w.ok(&["verify", &format!("ghcr.io/acme/api@{d}")]);

    let envelope = w.ok(&["attest", "export", &d]).stdout;
    w.write("envelope.json", &envelope);
    let r = w.run(&[
        "--format",
        "json",
        "verify",
        "envelope.json",
        "--key",
        "keys/ci.pub",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(
        v["statement"]["predicate_type"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(
        v["statement"]["subjects"][0],
        format!("ghcr.io/acme/api@{d}")
    );

    // Flip one byte of the payload: swap one base64 character for another mid-string, so
    // the envelope still parses and only the signed bytes differ.
    let mut json: Value = serde_json::from_str(&envelope).unwrap();
    let payload = json["payload"].as_str().unwrap().to_string();
    let mut bytes = payload.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    json["payload"] = Value::from(String::from_utf8(bytes).unwrap());
    w.write("flipped.json", &json.to_string());
    let r = w.run(&[
        "--format",
        "json",
        "verify",
        "flipped.json",
        "--key",
        "keys/ci.pub",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["verified"], false);
    assert_eq!(v["reason"]["code"], "dsse-no-trusted-signature");
    assert_eq!(
        v["reason"]["message"],
        "none of the envelope's 1 signature(s) verifies with a trusted key"
    );

    // A digest the ledger has no signature for: exit 1 with the reason.
    let unsigned = build_args("record", "api", "a2", &pinned_base());
    assert_eq!(w.run_with(&strs(&unsigned), &GITHUB_ENV).code, 0);
    let r = w.run(&["verify", &digest("a2")]);
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("verify_unsigned_digest", w.snap(&r));

    // A digest the ledger has never heard of: no build and no provenance.
    let never = digest("never-recorded");
    let r = w.run(&["--format", "json", "verify", &never]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["reason"]["code"], "unknown-digest");
    assert_eq!(
        r.json()["reason"]["message"],
        format!("the ledger holds no build and no provenance for `{never}`")
    );
}

/// Done when (issue 5): a deploy check refuses a digest whose provenance was signed by an
/// untrusted key (a key not in `[trust]`, or one trusted only for staging) with D009.
#[test]
fn a_deploy_check_refuses_provenance_signed_by_an_untrusted_key() {
    let w = World::new();
    key(&w, "ci");
    key(&w, "rogue");
    key(&w, "stage");
    trust(&w, &[("ci", ""), ("stage", "environments = [\"staging\"]")]);
    for (label, signer) in [("good", "ci"), ("bad", "rogue"), ("st", "stage")] {
        let mut args = build_args("record", "api", label, &pinned_base());
        args.extend(["--sign-key".into(), format!("keys/{signer}.key")]);
        let r = w.run_with(&strs(&args), &GITHUB_ENV);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    }
    let check = |label: &str, env: &str| {
        let image = format!("ghcr.io/acme/api@{}", digest(label));
        w.run(&[
            "--format",
            "json",
            "deploy",
            "check",
            "--image",
            &image,
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "maya@acme.dev",
        ])
    };
    let r = check("good", "production");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let r = check("bad", "production");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    assert_eq!(codes(&report, "error"), vec!["D009"], "{report:#}");
    assert!(
        report["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("verifies with a trusted key"),
        "{report:#}"
    );

    // Trusted for staging only: fine in staging, D009 in production.
    assert_eq!(check("st", "staging").code, 0);
    let r = check("st", "production");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(codes(&r.json(), "error"), vec!["D009"]);
    insta::assert_snapshot!("deploy_check_staging_key_in_production", w.snap(&r));

    // `lineage verify` agrees and says why; `deploy record` refuses.
    let r = w.run(&["verify", &digest("st"), "--env", "production"]);
    assert_eq!(r.code, 1);
    let before = w.ledger_bytes();
    let image = format!("ghcr.io/acme/api@{}", digest("bad"));
    let r = w.run(&[
        "deploy",
        "record",
        "--image",
        &image,
        "--env",
        "production",
        "--by",
        "jonas@acme.dev",
        "--approved-by",
        "maya@acme.dev",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("error[D009]"), "{}", r.stdout);
    assert_eq!(w.ledger_bytes(), before);

    // `attest sign` adds a trusted signature to the rogue-signed build; then it may ship.
    w.ok(&["attest", "sign", &digest("bad"), "--key", "keys/ci.key"]);
    assert_eq!(check("bad", "production").code, 0);
}

// ---- `lineage verify` on Sigstore material: keyless needs an identity policy ----

const PUBLIC_GOOD: &str = "sigstore-bundle/sigstore-public-good.trusted_root.json";
/// sigstore-python's v0.3 bundle and its artifact, signed by `aryadeeptade@gmail.com` via
/// GitHub's OAuth issuer (shared/fixtures/SOURCES.md).
const NEW_BUNDLE: &str = "sigstore-bundle/sigstore-python.new_bundle.txt.sigstore.json";
const NEW_BUNDLE_ARTIFACT: &str = "sigstore-bundle/sigstore-python.new_bundle.txt";
const NEW_BUNDLE_IDENTITY: &str = "aryadeeptade@gmail.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";

fn fixture(rel: &str) -> String {
    lineage_testkit::fixture(rel).display().to_string()
}

/// Copies the v0.3 bundle, its artifact and the public-good root into the world, so output
/// names them by short relative paths.
fn new_bundle(w: &World) {
    for (from, to) in [
        (NEW_BUNDLE, "new_bundle.sigstore.json"),
        (NEW_BUNDLE_ARTIFACT, "new_bundle.txt"),
        (PUBLIC_GOOD, "trusted_root.json"),
    ] {
        std::fs::copy(fixture(from), w.path(to)).unwrap();
    }
}

/// `lineage verify` of the copied v0.3 bundle over its artifact, plus `policy` flags.
fn verify_new_bundle(w: &World, policy: &[&str]) -> Run {
    let mut args = vec![
        "verify",
        "new_bundle.sigstore.json",
        "--trusted-root",
        "trusted_root.json",
        "--artifact",
        "new_bundle.txt",
    ];
    args.extend_from_slice(policy);
    w.run(&args)
}

/// Done when (issue 12): every kind of keyless material is refused with exit 2 and the flags to
/// add when no identity and issuer are given, before anything is verified; key-signed material
/// still verifies with `--key` alone.
#[test]
fn keyless_verify_without_an_identity_policy_is_refused_and_key_signed_needs_none() {
    let w = World::new();
    new_bundle(&w);
    let r = verify_new_bundle(&w, &[]);
    insta::assert_snapshot!("verify_keyless_without_identity", w.snap(&r));

    // The same refusal for a legacy `cosign sign-blob --bundle` file and a `cosign save`
    // layout, in JSON too: the error on stderr, nothing on stdout. (The legacy bundle's log
    // entry is from another signing, so it could only fail: the refusal comes first.)
    let root = fixture(PUBLIC_GOOD);
    let cve = fixture("cosign/conformance.cve-2022-36056-swapped-tlog-entry.legacy-bundle.json");
    let layout = fixture("cosign/slsa-verifier-container-att-layout");
    let image = "sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2";
    let any_digest = digest("a.txt");
    for (target, extra) in [
        (&cve, ["--artifact-digest", any_digest.as_str()]),
        (&layout, ["--image-digest", image]),
    ] {
        let mut args = vec![
            "--format",
            "json",
            "verify",
            target,
            "--trusted-root",
            &root,
        ];
        args.extend(extra);
        let r = w.run(&args);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, ""),
            "{target}: {}",
            r.stderr
        );
        let e: Value = serde_json::from_str(&r.stderr).unwrap();
        assert_eq!(
            e["error"]["message"],
            format!("`{target}` is signed keyless: `--certificate-identity` and `--certificate-oidc-issuer` are required (without them any Sigstore user's signature would verify)")
        );
        assert!(
            e["error"]["hint"].as_str().unwrap().starts_with(
                "add `--certificate-identity https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main --certificate-oidc-issuer https://token.actions.githubusercontent.com`"
            ),
            "{e}"
        );
    }

    // With the signer's identity and issuer, the same bundle verifies.
    let r = verify_new_bundle(
        &w,
        &[
            "--certificate-identity",
            NEW_BUNDLE_IDENTITY,
            "--certificate-oidc-issuer",
            GITHUB_OAUTH,
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // Key-signed material needs no identity policy: the conformance managed-key bundle
    // verifies with its key alone.
    let r = w.run(&[
        "--format",
        "json",
        "verify",
        &fixture(
            "sigstore-bundle/conformance.intoto-canonical-log-entry.managed-key.sigstore.json",
        ),
        "--trusted-root",
        &fixture("sigstore-bundle/conformance.intoto-canonical-log-entry.trusted_root.json"),
        "--key",
        &fixture("sigstore-bundle/conformance.intoto-canonical-log-entry.key.pub"),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.json()["signers"][0].as_str().unwrap().starts_with("key "),
        "{}",
        r.stdout
    );
}

/// Done when (issue 12): half a policy (an identity without an issuer, or the reverse, exact or
/// regexp) is refused with exit 2 naming the missing flag, as is an invalid regexp; a complete
/// policy naming someone else is a failed verification (exit 1), not an error.
#[test]
fn keyless_verify_with_half_a_policy_is_refused_and_a_wrong_identity_fails() {
    let w = World::new();
    new_bundle(&w);
    let refused = |policy: &[&str], missing: &str| {
        let r = verify_new_bundle(&w, policy);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, ""),
            "{policy:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!(
                "error: `new_bundle.sigstore.json` is signed keyless: `{missing}` is required"
            )) && r.stderr.contains(&format!("hint: add `{missing} https://")),
            "{policy:?}: {}",
            r.stderr
        );
        r
    };
    let r = refused(
        &["--certificate-identity", NEW_BUNDLE_IDENTITY],
        "--certificate-oidc-issuer",
    );
    insta::assert_snapshot!("verify_keyless_identity_without_issuer", w.snap(&r));
    refused(
        &["--certificate-identity-regexp", "@gmail\\.com$"],
        "--certificate-oidc-issuer",
    );
    let r = refused(
        &["--certificate-oidc-issuer", GITHUB_OAUTH],
        "--certificate-identity",
    );
    insta::assert_snapshot!("verify_keyless_issuer_without_identity", w.snap(&r));
    refused(
        &["--certificate-oidc-issuer-regexp", "^https://github\\.com/"],
        "--certificate-identity",
    );

    // An invalid regexp names its flag, whatever else is given.
    let r = verify_new_bundle(
        &w,
        &[
            "--certificate-identity-regexp",
            "[",
            "--certificate-oidc-issuer",
            GITHUB_OAUTH,
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: --certificate-identity-regexp `[` is not a valid regular expression: unclosed character class\n"),
        "{}",
        r.stderr
    );

    // A complete policy that names another signer decides: not verified, exit 1.
    let r = verify_new_bundle(
        &w,
        &[
            "--format",
            "json",
            "--certificate-identity",
            "mallory@example.com",
            "--certificate-oidc-issuer",
            GITHUB_OAUTH,
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(
        (v["verified"].clone(), v["reason"]["code"].clone()),
        (Value::Bool(false), Value::from("identity-mismatch"))
    );
}

/// The `config` part of a JSON report: which settings file, found how, and its policies.
fn config_of(r: &Run) -> (Value, Value, Value) {
    let c = &r.json()["config"];
    (c["how"].clone(), c["file"].clone(), c["policy_dir"].clone())
}

/// Issue 12: `lineage.toml` is found by walking up from the working directory, and stops at
/// the repository root; `policies/` is the one beside the file found. The same check gives the
/// same answer from a subdirectory, and says which file it read.
#[test]
fn settings_are_found_above_the_working_directory_up_to_the_repository_root() {
    let w = World::new();
    let root = w.dir.path().canonicalize().unwrap();
    w.write("lineage.toml", "[rules]\nB003 = \"off\"\n");
    for f in ["registry.rego", "registry_test.rego"] {
        w.write(
            &format!("policies/{f}"),
            &std::fs::read_to_string(examples().join(f)).unwrap(),
        );
    }
    let sub = w.path("svc/api");
    std::fs::create_dir_all(&sub).unwrap();
    let unpinned = build_args("check", "api", "a1", "python:3.12-slim");
    let mut check = strs(&unpinned);
    check.extend(["--format", "json"]);

    // From a subdirectory: the project's file and its policies.
    let r = w.run_in(&sub, &check, &GITHUB_ENV);
    assert_eq!(codes(&r.json(), "error"), vec!["ACME001"], "{}", r.stdout);
    for args in [
        &["--format", "json", "key", "list"][..],
        &["--format", "json", "policy", "test"],
    ] {
        let r = w.run_in(&sub, args, &[]);
        assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(
            config_of(&r),
            (
                Value::from("discovered"),
                Value::from(root.join("lineage.toml").to_str().unwrap()),
                Value::from(root.join("policies").to_str().unwrap())
            ),
            "{args:?}"
        );
        assert_eq!(
            r.json()["config"]["searched_from"],
            sub.canonicalize().unwrap().to_str().unwrap()
        );
    }
    let r = w.run_in(&sub, &["policy", "test"], &[]);
    assert_eq!(
        r.stderr.replace(&root.display().to_string(), "[TMP]"),
        "configuration: [TMP]/lineage.toml (found from [TMP]/svc/api); policies: [TMP]/policies\n"
    );

    // Below a repository root (`.git`, here a directory) the walk stops there.
    let repo = w.path("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("svc")).unwrap();
    let r = w.run_in(&repo.join("svc"), &check, &GITHUB_ENV);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(codes(&r.json(), "error"), vec!["B003"], "{}", r.stdout);
    let r = w.run_in(&repo.join("svc"), &["--format", "json", "key", "list"], &[]);
    assert_eq!(
        config_of(&r),
        (Value::from("none"), Value::Null, Value::Null)
    );
    assert_eq!(
        r.json()["config"]["searched_to"],
        root.join("repo").to_str().unwrap()
    );
}

/// Issue 12: `--config` wins over LINEAGE_CONFIG, which wins over discovery.
#[test]
fn the_config_flag_and_lineage_config_win_over_discovery() {
    let w = World::new();
    let root = w.dir.path().canonicalize().unwrap();
    w.write("lineage.toml", "");
    w.write("ci/ci.toml", "");
    w.write("ci/other.toml", "");
    let list = ["--format", "json", "key", "list"];
    let file = |name: &str| Value::from(root.join(name).to_str().unwrap());

    let r = w.run(&list);
    assert_eq!(config_of(&r).0, "discovered");
    let with_flag = ["--config", "ci/ci.toml", "--format", "json", "key", "list"];
    let r = w.run(&with_flag);
    assert_eq!(
        config_of(&r),
        (Value::from("flag"), file("ci/ci.toml"), Value::Null)
    );
    let r = w.run_with(&list, &[("LINEAGE_CONFIG", "ci/other.toml")]);
    assert_eq!(
        config_of(&r),
        (Value::from("env"), file("ci/other.toml"), Value::Null)
    );
    let r = w.run_with(&with_flag, &[("LINEAGE_CONFIG", "ci/other.toml")]);
    assert_eq!(
        config_of(&r),
        (Value::from("flag"), file("ci/ci.toml"), Value::Null)
    );
    let r = w.run_with(&["key", "list"], &[("LINEAGE_CONFIG", "ci/other.toml")]);
    assert_eq!(
        r.stderr.replace(&root.display().to_string(), "[TMP]"),
        "configuration: [TMP]/ci/other.toml (from LINEAGE_CONFIG); no policies/ beside it\n"
    );
}

/// Issue 12: with no settings file anywhere up to `/`, every judging command says that it used
/// the built-in defaults, in human and in JSON output.
#[test]
fn with_no_settings_file_the_judging_commands_say_so() {
    let w = World::new();
    let root = w.dir.path().canonicalize().unwrap();
    let none = format!(
        "configuration: none found from {} up to /; built-in defaults",
        root.display()
    );
    for f in ["registry.rego", "registry_test.rego"] {
        w.write(
            &format!("rego/{f}"),
            &std::fs::read_to_string(examples().join(f)).unwrap(),
        );
    }

    let r = w.ok(&["key", "list"]);
    assert_eq!(r.stderr, format!("{none}\n"));
    let r = w.ok(&["--format", "json", "key", "list"]);
    assert_eq!(
        config_of(&r),
        (Value::from("none"), Value::Null, Value::Null)
    );
    assert_eq!(r.json()["config"]["searched_to"], "/");

    let r = w.ok(&["policy", "test", "--policy-dir", "rego"]);
    assert_eq!(r.stderr, format!("{none}\n"));
    let r = w.ok(&["--format", "json", "policy", "test", "--policy-dir", "rego"]);
    assert_eq!(
        config_of(&r),
        (Value::from("none"), Value::Null, Value::Null)
    );
    assert_eq!(r.json()["passed"], 4);
    let r = w.run(&["policy", "test"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(&none), "{}", r.stderr);

    // Without a file there are no trusted keys: `verify` cannot decide, and says why.
    let d = digest("a1");
    let r = w.run(&["verify", &d, "--env", "production"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(&format!(
            "error: no trusted keys to verify `{d}` with ({none})\n"
        )),
        "{}",
        r.stderr
    );
    let r = w.run(&["--format", "json", "verify", &d]);
    assert_eq!(r.code, 2);
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains(&none),
        "{e:#}"
    );
}

/// Issue 12: a misspelt section or an unknown key in lineage.toml is an error at its line and
/// column with the closest valid name, for every command, and nothing is written.
#[test]
fn unknown_sections_and_keys_are_errors_with_the_closest_name() {
    let w = World::new();
    let before = w.ledger_bytes();
    let cases = [
        (
            "[enviroments]\nnames = [\"dev\", \"production\"]\n",
            "error: lineage.toml:1:2: unknown section `[enviroments]`\n  hint: did you mean `[environments]`?\n",
        ),
        (
            "[gates]\nfour_eye = \"all\"\n",
            "error: lineage.toml:2:1: unknown key `four_eye` in `[gates]`\n  hint: did you mean `four_eyes`?\n",
        ),
        (
            "[log]\norign = \"acme.dev/ledger\"\n",
            "error: lineage.toml:2:1: unknown key `orign` in `[log]`\n  hint: did you mean `origin`?\n",
        ),
        (
            "[admission]\nnamespace = { prod = \"production\" }\n",
            "error: lineage.toml:2:1: unknown key `namespace` in `[admission]`\n  hint: did you mean `namespaces`?\n",
        ),
        (
            "[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"keys/ci.pub\"\nroles = [\"builder\"]\nrevoke_at = \"2026-01-01T00:00:00Z\"\n",
            "error: lineage.toml:5:1: unknown key `revoke_at` in `[[trust.keys]]`\n  hint: did you mean `revoked_at`?\n",
        ),
        (
            "[log]\nwitnesses = 2\n",
            "error: lineage.toml:2:1: unknown key `witnesses` in `[log]`\n  hint: valid keys in `[log]`: `origin`, `key`, `public_key`, `checkpoint_dir`, `checkpoint_file`\n",
        ),
    ];
    for (text, expected) in cases {
        w.write("lineage.toml", text);
        for args in [
            &["service", "list"][..],
            &["service", "add", "web", "--owner", "ana@acme.dev"],
        ] {
            let r = w.run(args);
            assert_eq!((r.code, r.stderr.as_str()), (2, expected), "{text}{args:?}");
        }
        assert_eq!(w.ledger_bytes(), before, "{text}");
    }
    let r = w.run(&["--format", "json", "service", "list"]);
    let e: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(
        e["error"]["hint"],
        "valid keys in `[log]`: `origin`, `key`, `public_key`, `checkpoint_dir`, `checkpoint_file`"
    );
}

/// Issue 15: lineage.toml is read once, every section at start-up, so a bad value in a section
/// a command does not use still stops it (at its line and column, with the right form), and
/// nothing is written.
#[test]
fn a_bad_value_in_any_section_stops_every_command_at_its_position() {
    let w = World::new();
    let before = w.ledger_bytes();
    let cases = [
        (
            "[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"keys/ci.pub\"\nroles = [\"pilot\"]\n",
            "error: lineage.toml:4:10: trust key `ci`: unknown variant `pilot` in `roles`\n  hint: a role is `builder`, `deployer` or `approver`: write `roles = [\"builder\"]`\n",
        ),
        (
            "[registry]\ntimeout = 0\n",
            "error: lineage.toml:2:11: `[registry] timeout` is `0`\n  hint: write a whole number of seconds from 1 to 3600, e.g. `timeout = 30`\n",
        ),
        (
            "[admission]\nmode = \"strict\"\n",
            "error: lineage.toml:2:8: `admission.mode` is `strict`; write `\"enforce\"` or `\"audit\"`\n  hint: write `mode = \"enforce\"` or `mode = \"audit\"`\n",
        ),
        (
            "[gates]\nfour_eyes = true\n",
            "error: lineage.toml:2:13: `gates.four_eyes` is `true`, not a string\n  hint: write `four_eyes = \"production\"`\n",
        ),
    ];
    for (text, expected) in cases {
        w.write("lineage.toml", text);
        for args in [
            &["service", "list"][..],
            &["service", "add", "web", "--owner", "ana@acme.dev"],
        ] {
            let r = w.run(args);
            assert_eq!((r.code, r.stderr.as_str()), (2, expected), "{text}{args:?}");
        }
        assert_eq!(w.ledger_bytes(), before, "{text}");
    }
}

/// Issue 12: a file with every section and key Lineage reads passes the key check, and is
/// read from a subdirectory (its trusted key, its `[log]` checkpoint directory).
#[test]
fn a_settings_file_with_every_section_passes() {
    let w = World::new();
    key(&w, "ci");
    w.write(
        "lineage.toml",
        r#"[environments]
names = ["dev", "staging", "production", "customer-eu"]
production = ["production", "customer-eu"]

[rules]
B004 = "warn"
shared-ci-job = "off"
[rules.production]
B004 = "error"

[allowlist]
registries = ["registry.acme.dev"]
base_images = ["docker.io/library/debian", "gcr.io/distroless/*"]

[gates]
four_eyes = "production"
approval = "production"
approvals = "recorded"
stale_base_days = 30
[gates.environments.staging]
four_eyes = true
approval = false

[exceptions]
max_days = 30
[exceptions.approvers]
B004 = ["sec@acme.dev"]

[[trust.keys]]
id = "ci"
public_key_file = "keys/ci.pub"
roles = ["builder"]
environments = ["staging", "production"]
not_before = "2026-01-01T00:00:00Z"
not_after = "2027-01-01T00:00:00Z"
revoked_at = "2026-12-01T12:00:00Z"

[log]
origin = "lineage.local/ledger"
key = "log.key"
checkpoint_dir = "witness/"
checkpoint_file = "checkpoint.txt"

[admission]
namespaces = { prod = "production", default = "dev" }
mode = "enforce"
when_not_ready = "deny"
allow = ["registry.k8s.io/pause@*"]
"#,
    );
    let sub = w.path("web");
    std::fs::create_dir_all(&sub).unwrap();
    let r = w.run_in(
        &sub,
        &["service", "add", "web", "--owner", "ana@acme.dev"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(w.path("witness/latest").exists());
    let r = w.run_in(&sub, &["--format", "json", "key", "list"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["trusted"][0]["id"], "ci");
    assert_eq!(r.json()["config"]["how"], "discovered");
}

/// Issue 12: recorded times never go backwards. With `ci` revoked at T and the ledger's last
/// entry at T + 1 day, signing with the clock set to T - 1 day is refused (exit 2, nothing
/// written), so the revoked key cannot pass for one used before its revocation.
#[test]
fn a_write_dated_before_the_last_entry_is_refused() {
    let w = World::new();
    key(&w, "ci");
    let revoked = "2026-11-18T00:00:00Z";
    trust(&w, &[("ci", &format!("revoked_at = \"{revoked}\""))]);
    let (day_after, day_before) = ("2026-11-19T00:00:00Z", "2026-11-17T00:00:00Z");
    let args = build_args("record", "api", "a1", &pinned_base());
    let env: Vec<(&str, &str)> = GITHUB_ENV
        .iter()
        .copied()
        .chain([("LINEAGE_NOW", day_after)])
        .collect();
    let r = w.run_with(&strs(&args), &env);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let d = digest("a1");
    let before = w.ledger_bytes();
    let r = w.run_with(
        &["attest", "sign", &d, "--key", "keys/ci.key"],
        &[("LINEAGE_NOW", day_before)],
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: this write is dated `{day_before}`, before the ledger's last entry (recorded at `{day_after}`); recorded times never go backwards, so nothing was written\n  hint: check this machine's clock; if LINEAGE_NOW is set, set it to `{day_after}` or later, or unset it\n"
        )
    );
    assert_eq!(w.ledger_bytes(), before);

    let now = [("LINEAGE_NOW", day_after)];
    let r = w.run_with(
        &["--format", "json", "verify", &d, "--env", "production"],
        &now,
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["verified"], false);
    assert_eq!(r.json()["reason"]["code"], "unsigned");

    // Signed at the ledger's time, the signature is what it is: made after the revocation.
    let r = w.run_with(&["attest", "sign", &d, "--key", "keys/ci.key"], &now);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = w.run_with(
        &["--format", "json", "verify", &d, "--env", "production"],
        &now,
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["reason"]["code"], "untrusted", "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// Issue 12: the ways around the gates, closed.
// ---------------------------------------------------------------------------------------------

/// Records a complete CI build of api `label` (finished at `finished`).
fn record_api(w: &World, label: &str, finished: &str) {
    let mut args = build_args("record", "api", label, &pinned_base());
    args.extend(["--finished-at".into(), finished.into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn an_exception_needs_a_second_person_a_horizon_and_the_named_approvers() {
    let w = World::new();
    w.write(
        "lineage.toml",
        "[exceptions]\nmax_days = 30\n[exceptions.approvers]\nD004 = [\"sec@acme.dev\"]\n",
    );
    let before = std::fs::read(w.path("ledger.db")).unwrap();
    let add = |rule: &str, approved_by: &str, by: &str, expires: &str| {
        w.run_with(
            &[
                "exception",
                "add",
                "--rule",
                rule,
                "--service",
                "api",
                "--reason",
                "SEC-142",
                "--approved-by",
                approved_by,
                "--by",
                by,
                "--expires",
                expires,
            ],
            &[],
        )
    };
    // Waiving four-eyes for yourself, for ever: the reproduction from the issue.
    let r = add("D004", "li@acme.dev", "li@acme.dev", "2999-01-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("more than 30 days away"), "{}", r.stderr);
    let r = add("B003", "li@acme.dev", "li@acme.dev", "2026-12-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot approve their own exception"),
        "{}",
        r.stderr
    );
    let r = add("D004", "maya@acme.dev", "li@acme.dev", "2026-12-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("may not approve exceptions for D004")
            && r.stderr.contains("`sec@acme.dev`"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(w.path("ledger.db")).unwrap(),
        before,
        "a refused exception wrote"
    );
    // Within the rules: recorded.
    let r = add("D004", "sec@acme.dev", "li@acme.dev", "2026-12-01");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = add("B003", "maya@acme.dev", "li@acme.dev", "2026-12-17");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The default horizon is 90 days.
    std::fs::remove_file(w.path("lineage.toml")).unwrap();
    let r = add("B004", "maya@acme.dev", "li@acme.dev", "2027-03-01");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("90 days"), "{}", r.stderr);
}

#[test]
fn event_times_in_the_future_or_before_the_build_are_refused() {
    let w = World::new();
    record_api(&w, "t1", "2026-11-17T09:00:00Z");
    let before = std::fs::read(w.path("ledger.db")).unwrap();
    let image = format!("ghcr.io/acme/api@{}", digest("t1"));
    for (at, says) in [
        // A typo for 2026 that would hide every real deploy after it.
        ("2027-11-17T09:00:00Z", "in the future"),
        ("2026-11-17T08:00:00Z", "before its build finished"),
    ] {
        let r = w.run_with(
            &[
                "deploy",
                "record",
                "--image",
                &image,
                "--env",
                "dev",
                "--by",
                "jonas@acme.dev",
                "--at",
                at,
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{at}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{at}: {}", r.stderr);
    }
    let mut args = build_args("record", "api", "t2", &pinned_base());
    args.extend(["--finished-at".into(), "2027-01-01T00:00:00Z".into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`finished_at` is `2027-01-01T00:00:00Z`, in the future"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(w.path("ledger.db")).unwrap(),
        before,
        "a refused record wrote"
    );
    // Five minutes of clock skew are fine.
    let r = w.run_with(
        &[
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "dev",
            "--by",
            "jonas@acme.dev",
            "--at",
            "2026-11-17T09:15:00Z",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn recorded_approvals_are_acts_and_a_name_is_not_enough() {
    let w = World::new();
    w.write("lineage.toml", "[gates]\napprovals = \"recorded\"\n");
    record_api(&w, "r1", "2026-11-17T09:00:00Z");
    let image = format!("ghcr.io/acme/api@{}", digest("r1"));
    let deploy = |approved_by: Option<&str>| {
        let mut args = vec![
            "--format",
            "json",
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "--format",
            "json",
        ];
        if let Some(a) = approved_by {
            args.extend(["--approved-by", a]);
        }
        w.run_with(&args, &[])
    };
    // Naming an approver who approved nothing: refused.
    let r = deploy(Some("maya@acme.dev"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(codes(&r.json(), "error"), vec!["D003"], "{}", r.stdout);
    assert!(
        r.stdout.contains("has recorded no approval"),
        "{}",
        r.stdout
    );
    // The deployer approving their own deploy: four-eyes.
    let r = w.run_with(
        &[
            "approve",
            &image,
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = deploy(None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(codes(&r.json(), "error"), vec!["D004"], "{}", r.stdout);
    // Maya approves, as herself: the deploy passes and names her approval.
    let r = w.run_with(
        &["--format", "json", "approve", &image, "--env", "production"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        (r.json()["outcome"].clone(), r.json()["by"].clone()),
        (Value::from("recorded"), Value::from("maya@acme.dev"))
    );
    let r = w.run_with(&["approve", &image, "--env", "production"], &[]);
    assert!(r.stdout.starts_with("unchanged approval"), "{}", r.stdout);
    let r = deploy(None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let running = w
        .ok(&["--format", "json", "running", "--env", "production"])
        .json();
    assert_eq!(
        running["rows"][0]["approved_by"], "maya@acme.dev",
        "{running}"
    );
    // An approval is for a recorded digest, under the repository it was built for.
    let r = w.run_with(
        &[
            "approve",
            &format!("ghcr.io/acme/orphan@{}", digest("r1")),
            "--env",
            "production",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = w.run_with(
        &[
            "approve",
            &format!("ghcr.io/acme/api@{}", digest("zz")),
            "--env",
            "production",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn every_gate_report_names_the_settings_it_judged_by() {
    let w = World::new();
    record_api(&w, "c1", "2026-11-17T09:00:00Z");
    let image = format!("ghcr.io/acme/api@{}", digest("c1"));
    let check = [
        "--format", "json", "deploy", "check", "--image", &image, "--env", "dev",
    ];
    let r = w.run_with(&check, &[]);
    assert_eq!(r.json()["config"]["how"], "none", "{}", r.stdout);
    let r = w.run_with(&["deploy", "check", "--image", &image, "--env", "dev"], &[]);
    assert!(
        r.stdout
            .contains("config      none found (built-in defaults)"),
        "{}",
        r.stdout
    );
    w.write("lineage.toml", "[rules]\nD006 = \"error\"\n");
    std::fs::create_dir_all(w.path("policies")).unwrap();
    let r = w.run_with(&check, &[]);
    let config = &r.json()["config"];
    assert_eq!(config["how"], "discovered", "{}", r.stdout);
    assert!(config["file"].as_str().unwrap().ends_with("lineage.toml"));
    assert!(config["policy_dir"].as_str().unwrap().ends_with("policies"));
    let mut build = build_args("check", "api", "c2", &pinned_base());
    build.splice(0..0, ["--format".to_string(), "json".to_string()]);
    let r = w.run_with(&strs(&build), &GITHUB_ENV);
    assert_eq!(r.json()["config"]["how"], "discovered", "{}", r.stdout);
}

/// Issue 13, items 1–3: Azure Pipelines on a Microsoft-hosted agent records its builds, with
/// the branch as people write it, and a build with no time given shows when it was recorded.
#[test]
fn azure_and_jenkins_builds_record_with_normalised_builders_and_branches() {
    let w = World::new();
    let azure = [
        ("TF_BUILD", "True"),
        ("AGENT_NAME", "Azure Pipelines 3"),
        ("BUILD_SOURCEBRANCH", "refs/heads/release/2.4"),
        ("BUILD_SOURCEBRANCHNAME", "2.4"),
        ("BUILD_BUILDID", "44"),
        ("BUILD_SOURCEVERSION", COMMIT),
        ("BUILD_REPOSITORY_URI", "https://github.com/acme/api"),
    ];
    let image = format!("ghcr.io/acme/api@{}", digest("az"));
    let base = pinned_base();
    let args = [
        "build",
        "record",
        "--image",
        &image,
        "--base",
        &base,
        "--base-pulled-at",
        "2026-11-17T08:00:00Z",
        "--env",
        "dev",
    ];
    let r = w.run_with(&args, &azure);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let t = w.ok(&["--format", "json", "trace", &image]).json();
    assert_eq!(
        t["build"]["builder"], "sa:azure-agent:Azure-Pipelines-3",
        "{t}"
    );
    assert_eq!(t["build"]["git_ref"], "release/2.4", "{t}");
    assert_eq!(t["build_recorded_at"], NOW, "{t}");
    let human = w.ok(&["trace", &image]).stdout;
    assert!(
        human.contains(&format!("built     {NOW} (recorded; no build time given)")),
        "{human}"
    );
    // Jenkins: a node name with spaces, and the remote-tracking branch.
    let jenkins = [
        ("JENKINS_URL", "https://ci.acme.dev/"),
        ("NODE_NAME", "build node 7"),
        ("GIT_BRANCH", "origin/main"),
        ("BUILD_NUMBER", "31"),
        ("GIT_COMMIT", COMMIT),
    ];
    let image = format!("ghcr.io/acme/api@{}", digest("jk"));
    let r = w.run_with(
        &[
            "build", "record", "--image", &image, "--base", &base, "--env", "dev",
        ],
        &jenkins,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let t = w.ok(&["--format", "json", "trace", &image]).json();
    assert_eq!(t["build"]["git_ref"], "main", "{t}");
    assert_eq!(
        t["build"]["builder"], "https://ci.acme.dev/computer/build%20node%207",
        "{t}"
    );
    // A detected value that still does not parse names the variable it came from.
    let bad = [("GITLAB_CI", "true"), ("CI_COMMIT_SHA", "4f2a9c1")];
    let r = w.run_with(
        &["build", "record", "--image", &image, "--env", "dev"],
        &bad,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("detected from CI_COMMIT_SHA"),
        "{}",
        r.stderr
    );
}

/// Issue 13, items 20 and 23: small ways a setting went wrong silently.
#[test]
fn settings_mistakes_are_named_and_secrets_stay_out_of_help() {
    let w = World::new();
    // `--help` never shows the PostgreSQL password in LINEAGE_STORE.
    let r = w.run_with(
        &["--help"],
        &[("LINEAGE_STORE", "postgres://lineage:s3cret-pw@db:5432/l")],
    );
    assert_eq!(r.code, 0);
    assert!(
        !r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"),
        "{}",
        r.stdout
    );
    // A threshold of zero would accept an unsigned envelope.
    w.write("e.json", "{}");
    let r = w.run_with(&["verify", "e.json", "--threshold", "0"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A misspelt environment on a trusted key would trust it nowhere.
    w.ok(&["key", "generate", "--name", "ci", "--dir", "keys"]);
    w.write(
        "lineage.toml",
        "[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"keys/ci.pub\"\nroles = [\"builder\"]\nenvironments = [\"prodution\"]\n",
    );
    let r = w.run_with(
        &[
            "deploy",
            "check",
            "--image",
            &format!("ghcr.io/acme/api@{}", digest("x")),
            "--env",
            "dev",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`prodution` is not configured") && r.stderr.contains("production"),
        "{}",
        r.stderr
    );
    // A settings error points at the README, not at a command that does not exist.
    w.write(
        "lineage.toml",
        "[environments]\nnames = [\"dev\", \"Prod\"]\n",
    );
    let r = w.run_with(&["running"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("help config"), "{}", r.stderr);
}

/// Issue 13, item 17: `--image x:latest --digest D` is as pinned as `x:latest@D`, and an
/// uppercase digest is reported as such, not as someone else's source repository.
#[test]
fn a_digest_given_apart_pins_the_build_and_a_bad_digest_keeps_its_service() {
    let w = World::new();
    let d = digest("p1");
    let base = pinned_base();
    let mut apart = build_args("check", "api", "p1", &base);
    apart[3] = "ghcr.io/acme/api:latest".into();
    apart.extend([
        "--digest".into(),
        d.clone(),
        "--format".into(),
        "json".into(),
    ]);
    let r = w.run_with(&strs(&apart), &GITHUB_ENV);
    assert!(
        !codes(&r.json(), "error").contains(&"B008".to_string()),
        "{}",
        r.stdout
    );
    let mut upper = build_args("check", "api", "p1", &base);
    upper[3] = format!(
        "ghcr.io/acme/api@{}",
        d.to_uppercase().replace("SHA256", "sha256")
    );
    upper.extend(["--format".into(), "json".into()]);
    let r = w.run_with(&strs(&upper), &GITHUB_ENV);
    let report = r.json();
    assert!(
        !codes(&report, "error").contains(&"B012".to_string()),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("<service>"), "{}", r.stdout);
    assert_eq!(report["subject"]["service"], "api", "{}", r.stdout);
}

/// Issue 13, item 18: an `attest sign` error names `--key`, the flag it was given.
#[test]
fn attest_sign_errors_name_its_own_flag() {
    let w = World::new();
    let mut args = build_args("record", "api", "k1", &pinned_base());
    args.extend(["--env".into(), "dev".into()]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}", r.stderr);
    w.write(
        "bad.key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let r = w.run_with(&["attest", "sign", &digest("k1"), "--key", "bad.key"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--key `bad.key`") && !r.stderr.contains("--sign-key"),
        "{}",
        r.stderr
    );
}

/// Issue 13, item 4: with `--dockerfile` and no `--base`, the bases come from the Dockerfile
/// (`ARG` defaults resolved); a `--base` that contradicts a pinned `FROM` is B014.
#[test]
fn the_record_follows_its_dockerfile() {
    let w = World::new();
    let pinned = format!("sha256:{}", "b".repeat(64));
    w.write(
        "Dockerfile",
        &format!("ARG BASE=alpine:3.20@{pinned}\nFROM ${{BASE}}\nCOPY . /app\n"),
    );
    let mut args = build_args("record", "api", "df1", "ignored");
    // Drop `--base ignored` and its pull time's pairing stays one value for all bases.
    let i = args.iter().position(|a| a == "--base").unwrap();
    args.drain(i..i + 2);
    args.extend([
        "--dockerfile".into(),
        "Dockerfile".into(),
        "--env".into(),
        "dev".into(),
    ]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let t = w
        .ok(&[
            "--format",
            "json",
            "trace",
            &format!("ghcr.io/acme/api@{}", digest("df1")),
        ])
        .json();
    assert_eq!(
        t["build"]["bases"][0]["name"], "docker.io/library/alpine",
        "{t}"
    );
    assert_eq!(t["build"]["bases"][0]["tag"], "3.20", "{t}");
    assert_eq!(t["build"]["bases"][0]["digest"], pinned.as_str(), "{t}");
    // A `--base` the Dockerfile contradicts.
    let mut args = build_args(
        "check",
        "api",
        "df2",
        &format!("alpine:3.20@sha256:{}", "9".repeat(64)),
    );
    args.extend([
        "--dockerfile".into(),
        "Dockerfile".into(),
        "--format".into(),
        "json".into(),
    ]);
    let r = w.run_with(&strs(&args), &GITHUB_ENV);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        codes(&r.json(), "error").contains(&"B014".to_string()),
        "{}",
        r.stdout
    );
}

/// B010 and B011 read other services' builds through the ledger's lookups (issue 22): a
/// commit another service was built from, and a CI job every other service's newest build
/// reports. Both follow the ledger as it changes.
#[test]
fn copied_source_metadata_is_found_across_services() {
    let w = World::new();
    let commit = "c".repeat(40);
    let build = |verb: &str, service: &str, label: &str, commit: &str, job: &str| {
        let image = format!("ghcr.io/acme/{service}:1.8.0@{}", digest(label));
        let base = pinned_base();
        let args = [
            "--format",
            "json",
            "build",
            verb,
            "--image",
            &image,
            "--base",
            &base,
            "--base-pulled-at",
            "2026-11-17T08:00:00Z",
            "--repo",
            "https://github.com/acme/mono",
            "--commit",
            commit,
            "--ci-system",
            "github-actions",
            "--ci-job",
            job,
            "--ci-run-id",
            "7",
            "--branch",
            "main",
        ];
        let r = w.run(&args);
        assert_eq!(r.code, 0, "{args:?}:\n{}\n{}", r.stdout, r.stderr);
        let report: Value = serde_json::from_str(&r.stdout).unwrap();
        match verb {
            "check" => codes(&report, "warning"),
            _ => Vec::new(),
        }
    };
    // The first build of the fleet: nothing to share with.
    let first = build("check", "orphan", "o1", &commit, "release");
    assert!(!first.contains(&"B010".to_string()), "{first:?}");
    assert!(!first.contains(&"B011".to_string()), "{first:?}");
    build("record", "orphan", "o1", &commit, "release");
    // api from the same commit and job: both found, naming the other service.
    let shared = build("check", "api", "a1", &commit, "release");
    assert!(shared.contains(&"B010".to_string()), "{shared:?}");
    assert!(shared.contains(&"B011".to_string()), "{shared:?}");
    // Another commit and job: neither.
    let own = build("check", "api", "a1", &"d".repeat(40), "api-release");
    assert!(!own.contains(&"B010".to_string()), "{own:?}");
    assert!(!own.contains(&"B011".to_string()), "{own:?}");
    // orphan's newest build moves to its own job: the job is no longer shared by all, but
    // orphan was still built from the commit once.
    build("record", "orphan", "o2", &"e".repeat(40), "orphan-release");
    let later = build("check", "api", "a1", &commit, "release");
    assert!(later.contains(&"B010".to_string()), "{later:?}");
    assert!(!later.contains(&"B011".to_string()), "{later:?}");
    // B012: api claiming the repository registered for orphan; its own is fine.
    let claim = |repo: &str| {
        let image = format!("ghcr.io/acme/api:1.8.0@{}", digest("a3"));
        let base = pinned_base();
        let r = w.run(&[
            "--format",
            "json",
            "build",
            "check",
            "--image",
            &image,
            "--base",
            &base,
            "--base-pulled-at",
            "2026-11-17T08:00:00Z",
            "--repo",
            repo,
            "--commit",
            &commit,
            "--ci-system",
            "github-actions",
            "--ci-job",
            "api",
            "--ci-run-id",
            "7",
            "--branch",
            "main",
        ]);
        let report: Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}", r.stderr));
        report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let foreign = claim("https://github.com/acme/orphan");
    assert!(foreign.contains(&"B012".to_string()), "{foreign:?}");
    let own = claim("https://github.com/acme/api");
    assert!(!own.contains(&"B012".to_string()), "{own:?}");
}

/// Issue 15, item 1: `build check` and `build record` read the flags by the same rules, so
/// what `build record` refuses as ambiguous (pull times that cannot be paired with the bases,
/// two digests) `build check` refuses alike, exit 2 naming the flags, instead of judging a
/// guess. (Before, `build check` paired what it could and judged `--digest` over `--image`.)
#[test]
fn check_and_record_refuse_the_same_ambiguous_flags() {
    let w = World::new();
    for verb in ["check", "record"] {
        let mut args = build_args(verb, "api", "q1", &pinned_base());
        args.extend(["--base-pulled-at".into(), "2026-11-17T08:01:00Z".into()]);
        let r = w.run_with(&strs(&args), &GITHUB_ENV);
        assert_eq!(r.code, 2, "{verb}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("error: 2 `--base-pulled-at` values for 1 base images"),
            "{verb}: {}",
            r.stderr
        );
        let mut args = build_args(verb, "api", "q1", &pinned_base());
        args.extend(["--digest".into(), digest("q2")]);
        let r = w.run_with(&strs(&args), &GITHUB_ENV);
        assert_eq!(r.code, 2, "{verb}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "error: `--image` says `{}` but `--digest` says `{}`",
                digest("q1"),
                digest("q2")
            )),
            "{verb}: {}",
            r.stderr
        );
    }
}
