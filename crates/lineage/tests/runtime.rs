//! Runtime truth end to end, with the real binary: observing what runs (kubectl-shaped
//! PodLists and inventories), drift and reconciliation, placements that end, and the stories
//! of issue 17 (a renamed service, a moved image repository, a decommissioned service, a
//! manual rollback) giving the right `running`, `affected` and stale answers.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

const NOW: &str = "2026-11-17T09:12:00Z";
const CONFIG: &str = "[admission]\nnamespaces = { prod = \"production\", stage = \"staging\" }\nallow = [\"docker.io/library/nginx@*\"]\n\n[gates]\napproval = \"off\"\n";

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

    fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "lineage {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let r = self.run(&all);
        assert!(
            r.code == 0 || r.code == 1,
            "lineage {args:?}:\n{}\n{}",
            r.stdout,
            r.stderr
        );
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        name.to_string()
    }

    /// How many entries the ledger holds.
    fn entries(&self) -> u64 {
        let v = self.json(&["log", "checkpoint"]);
        v["size"].as_u64().unwrap()
    }

    fn service(&self, name: &str, image: &str, owner: &str) {
        self.ok(&["service", "add", name, "--owner", owner, "--image", image]);
    }

    /// A complete build of `repo@digest(label)`, finished at `at`, on base `py` of python.
    fn build(&self, repo: &str, label: &str, base: &str, at: &str) {
        self.ok(&[
            "build",
            "record",
            "--image",
            &format!("{repo}@{}", digest(label)),
            "--base",
            &format!("python:3.12-slim@{}", digest(base)),
            "--base-pulled-at",
            at,
            "--repo",
            "https://github.com/acme/app",
            "--branch",
            "main",
            "--commit",
            &"c".repeat(40),
            "--finished-at",
            at,
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            label,
            "--allow-failures",
        ]);
    }

    fn deploy(&self, repo: &str, label: &str, env: &str, at: &str) {
        self.ok(&[
            "deploy",
            "record",
            "--image",
            &format!("{repo}@{}", digest(label)),
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "maya@acme.dev",
            "--at",
            at,
        ]);
    }

    /// `running --format json` as (service, env, digest label) triples.
    fn running(&self, extra: &[&str]) -> Vec<(String, String, String)> {
        let mut args = vec!["running"];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["env"].as_str().unwrap().to_string(),
                    label_of(r["digest"].as_str().unwrap()),
                )
            })
            .collect()
    }

    /// Services `affected` says run the base now.
    fn affected_running(&self, base: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["affected", "--base", base];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["running"].as_array().unwrap().is_empty())
            .map(|s| s["service"].as_str().unwrap().to_string())
            .collect()
    }

    /// Who the stale report pages: (service, env, owner).
    fn stale(&self, extra: &[&str]) -> Vec<(String, String, String)> {
        let mut args = vec!["report", "stale"];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["env"].as_str().unwrap().to_string(),
                    r["owner"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

const LABELS: &[&str] = &[
    "a1", "a2", "w1", "w2", "b1", "g1", "p1", "p2", "r1", "x1", "n1", "k1", "d1",
];

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

fn label_of(d: &str) -> String {
    LABELS
        .iter()
        .find(|l| digest(l) == d)
        .map_or(d.to_string(), |l| l.to_string())
}

fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// A pod as `kubectl get pods -A -o json` prints it: owned by a Deployment's ReplicaSet,
/// the image written with a tag and resolved by the runtime (`docker-pullable://`).
fn pod(namespace: &str, deployment: &str, repo: &str, label: &str) -> Value {
    let hash = "6c9f8d7b5";
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{deployment}-{hash}-x7k2p"),
            "namespace": namespace,
            "labels": { "app": deployment, "pod-template-hash": hash },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": true,
                                  "name": format!("{deployment}-{hash}"), "uid": "0b6a1f2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b" }],
        },
        "spec": { "containers": [{ "name": deployment, "image": format!("{repo}:live") }] },
        "status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": deployment, "image": format!("{repo}:live"), "ready": true, "restartCount": 0,
                "imageID": format!("docker-pullable://{repo}@{}", digest(label)),
                "state": { "running": { "startedAt": "2026-11-17T08:00:00Z" } },
            }],
        },
    })
}

fn pod_list(pods: Vec<Value>) -> String {
    serde_json::to_string_pretty(&json!({ "apiVersion": "v1", "kind": "List", "items": pods, "metadata": { "resourceVersion": "" } })).unwrap()
}

const API: &str = "ghcr.io/acme/api";
const WEB: &str = "ghcr.io/acme/web";
const BILLING: &str = "ghcr.io/acme/billing";
const WORKER: &str = "ghcr.io/acme/worker";
const OLD: &str = "ghcr.io/acme/legacy-report";

/// Five services on python, all running in production, with the python base moved on since.
fn fleet() -> Ledger {
    let l = Ledger::new();
    l.service("api", API, "priya@acme.dev");
    l.service("web", WEB, "ana@acme.dev");
    l.service("billing", BILLING, "bo@acme.dev");
    l.service("legacy", WORKER, "lee@acme.dev");
    l.service("report", OLD, "rita@acme.dev");
    l.service("worker", "ghcr.io/acme/worker-ng", "wu@acme.dev");
    for (repo, label) in [
        (API, "a1"),
        (WEB, "w1"),
        (BILLING, "b1"),
        (WORKER, "k1"),
        (OLD, "r1"),
    ] {
        l.build(repo, label, "p1", "2026-11-01T10:00:00Z");
        l.deploy(repo, label, "production", "2026-11-02T10:00:00Z");
    }
    // A newer python digest under the same tag: every service is behind.
    l.build(API, "a2", "p2", "2026-11-10T10:00:00Z");
    l
}

#[test]
fn rename_move_and_decommission_give_the_right_answers() {
    let l = fleet();
    let base = digest("p1");
    assert_eq!(l.affected_running(&base, &[]).len(), 5);

    // A service renamed: the old name stops running; the renamed service's next deploy
    // is recorded under the new name.
    let out = l.ok(&[
        "service", "rename", "billing", "payments", "--reason", "CHG-7",
    ]);
    assert!(out.contains("renamed service billing to payments"), "{out}");
    assert!(out.contains("lineage deploy record --image"), "{out}");
    l.deploy(BILLING, "b1", "production", "2026-11-17T09:00:00Z");
    // An image repository moved to another service: the old owner's placement of it ends.
    l.write(
        "services.csv",
        "service,owner,image repositories\nlegacy,lee@acme.dev,\nworker,wu@acme.dev,ghcr.io/acme/worker ghcr.io/acme/worker-ng\n",
    );
    let out = l.ok(&["service", "import", "services.csv"]);
    assert!(out.contains("ended legacy in production"), "{out}");
    l.deploy(WORKER, "k1", "production", "2026-11-17T09:00:00Z");
    // A decommissioned service.
    l.ok(&[
        "service",
        "remove",
        "report",
        "--reason",
        "decommissioned, CHG-9",
    ]);

    assert_eq!(
        l.running(&[]),
        triples(&[
            ("api", "production", "a1"),
            ("payments", "production", "b1"),
            ("web", "production", "w1"),
            ("worker", "production", "k1"),
        ])
    );
    let mut now_running = l.affected_running(&base, &[]);
    now_running.sort();
    assert_eq!(now_running, vec!["api", "payments", "web", "worker"]);
    let paged: Vec<String> = l.stale(&[]).into_iter().map(|r| r.2).collect();
    assert!(!paged.contains(&"lee@acme.dev".to_string()), "{paged:?}");
    assert!(!paged.contains(&"rita@acme.dev".to_string()), "{paged:?}");
    assert!(paged.contains(&"bo@acme.dev".to_string()), "{paged:?}");
    assert_eq!(paged.len(), 4, "{paged:?}");

    // History stays: the removed and the renamed service can still be shown.
    let shown = l.json(&["service", "show", "report"]);
    assert_eq!(shown["removed"]["reason"], "decommissioned, CHG-9");
    let shown = l.json(&["service", "show", "payments"]);
    let fields: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"name"), "{shown}");
    // The ledger still verifies, projections included.
    l.ok(&["log", "verify"]);
}

#[test]
fn observed_state_shows_on_every_query_and_observed_only_keeps_the_truth() {
    let l = fleet();
    // Without observations, queries say nothing about runtime.
    let v = l.json(&["running"]);
    assert!(v["rows"][0].get("observed").is_none(), "{v}");
    // One cluster runs api and web only; billing, legacy and report are not seen.
    let pods = pod_list(vec![
        pod("prod", "api", API, "a1"),
        pod("prod", "web", WEB, "w1"),
    ]);
    l.write("pods.json", &pods);
    let out = l.ok(&["observe", "pods.json", "--cluster", "prod-eu-1"]);
    assert!(
        out.contains("2 container(s), 2 digest(s) in production"),
        "{out}"
    );

    let v = l.json(&["running", "--env", "production"]);
    let states: Vec<(String, String)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["observed"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("api".into(), "observed".into()),
            ("billing".into(), "never_observed".into()),
            ("legacy".into(), "never_observed".into()),
            ("report".into(), "never_observed".into()),
            ("web".into(), "observed".into()),
        ]
    );
    assert_eq!(v["rows"][0]["observed"]["sources"][0], "prod-eu-1");
    assert_eq!(v["rows"][0]["observed"]["age_seconds"], 0);
    let human = l.ok(&["running"]);
    assert!(
        human.contains("OBSERVED")
            && human.contains("observed just now")
            && human.contains("never observed"),
        "{human}"
    );

    assert_eq!(
        l.running(&["--observed-only"]),
        triples(&[("api", "production", "a1"), ("web", "production", "w1")])
    );
    let mut observed = l.affected_running(&digest("p1"), &["--observed-only"]);
    observed.sort();
    assert_eq!(observed, vec!["api", "web"]);
    let stale: Vec<String> = l
        .stale(&["--observed-only"])
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(stale, vec!["api", "web"]);
    let trace = l.json(&["trace", "api"]);
    assert_eq!(trace["running"][0]["observed"]["status"], "observed");
    let trace = l.ok(&["trace", "billing"]);
    assert!(trace.contains("never observed"), "{trace}");

    // A later batch without web: web is no longer observed, since the first batch.
    l.write("pods2.json", &pod_list(vec![pod("prod", "api", API, "a1")]));
    l.ok(&[
        "observe",
        "pods2.json",
        "--cluster",
        "prod-eu-1",
        "--at",
        "2026-11-17T09:10:00Z",
    ]);
    let v = l.json(&["running", "--env", "production"]);
    let web = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "web")
        .unwrap();
    assert_eq!(web["observed"]["status"], "not_observed");
    assert_eq!(web["observed"]["last_seen"], NOW);
    // Staging is not reported on by any source.
    l.deploy(API, "a1", "staging", "2026-11-03T10:00:00Z");
    let v = l.json(&["running", "--env", "staging"]);
    assert_eq!(v["rows"][0]["observed"]["status"], "unwatched");
}

#[test]
fn every_drift_kind_is_found_and_fail_on_sets_the_exit_code() {
    let l = Ledger::new();
    l.service("api", API, "priya@acme.dev");
    l.service("web", WEB, "ana@acme.dev");
    l.service("ghost", "ghcr.io/acme/ghost", "gus@acme.dev");
    l.build(API, "a1", "p1", "2026-11-01T10:00:00Z");
    l.build(API, "a2", "p1", "2026-11-05T10:00:00Z");
    l.build(WEB, "w2", "p1", "2026-11-05T10:00:00Z");
    l.build("ghcr.io/acme/ghost", "g1", "p1", "2026-11-01T10:00:00Z");
    l.deploy(API, "a2", "production", "2026-11-06T10:00:00Z");
    l.deploy(
        "ghcr.io/acme/ghost",
        "g1",
        "production",
        "2026-11-06T10:00:00Z",
    );
    l.deploy(WEB, "w2", "staging", "2026-11-06T10:00:00Z");
    l.ok(&["retire", &digest("w2"), "--reason", "CVE-2026-4242"]);

    let nothing = l.json(&["drift"]);
    assert!(nothing["sources"].as_array().unwrap().is_empty());
    assert!(l.ok(&["drift"]).contains("nothing was compared"));

    let redis = "docker.io/library/redis";
    let nginx = "docker.io/library/nginx";
    let pods = pod_list(vec![
        // api runs a1, older than the recorded a2: a manual rollback.
        pod("prod", "api", API, "a1"),
        // web runs in production, where nobody recorded it; and w2 is retired.
        pod("prod", "web", WEB, "w2"),
        // An image no service owns and no build describes; nginx is allowed third-party.
        pod("prod", "cache", redis, "x1"),
        pod("prod", "proxy", nginx, "n1"),
        // ghost runs nowhere: recorded but not observed.
    ]);
    l.write("pods.json", &pods);
    l.ok(&["observe", "pods.json", "--cluster", "prod-eu-1"]);

    let report = l.json(&["drift", "--env", "production"]);
    let items: Vec<(String, String, String)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["service"].as_str().unwrap_or("-").to_string(),
                label_of(i["digest"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        items,
        triples(&[
            ("no-build-record", "-", "x1"),
            ("older-than-recorded", "api", "a1"),
            ("recorded-not-observed", "ghost", "g1"),
            ("observed-not-recorded", "web", "w2"),
            ("retired", "web", "w2"),
        ])
    );
    assert_eq!(report["third_party"], 1);
    let ghost = &report["items"][2];
    assert_eq!(ghost["observed"]["status"], "never_observed");
    assert_eq!(
        ghost["fix"],
        "lineage deploy end --service ghost --env production --reason 'never observed by `prod-eu-1`'"
    );
    assert!(report["items"][1]["fix"]
        .as_str()
        .unwrap()
        .ends_with("--rollback"));
    assert_eq!(report["items"][3]["workloads"][0], "Deployment/web");

    // Exit codes: 0 without `--fail-on` or when no listed kind is found, 1 otherwise.
    assert_eq!(l.run(&["drift"]).code, 0);
    assert_eq!(l.run(&["drift", "--fail-on", "retired"]).code, 1);
    assert_eq!(
        l.run(&["drift", "--env", "staging", "--fail-on", "all"])
            .code,
        0
    );
    let bad = l.run(&["drift", "--fail-on", "retierd"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("did you mean `retired`?"),
        "{}",
        bad.stderr
    );
    let human = l.ok(&["drift", "--env", "production"]);
    assert!(human.contains("compared with `prod-eu-1`"), "{human}");
    assert!(!human.contains("not compared"), "{human}");
    // web is recorded in staging, which no source reports on: not compared, not clean.
    let all = l.json(&["drift"]);
    assert_eq!(all["unwatched"], json!(["staging"]));
    let human = l.ok(&["drift"]);
    assert!(
        human.contains("not compared: no source reports on staging"),
        "{human}"
    );

    // The deploy gate says the same about the rolled-back digest (D013), unless it is a
    // recorded rollback.
    let check = |extra: &[&str]| {
        let mut args = vec!["--format", "json", "deploy", "check", "--image"];
        let image = format!("{API}@{}", digest("a1"));
        args.push(&image);
        args.extend(["--env", "production", "--by", "jonas@acme.dev"]);
        args.extend_from_slice(extra);
        let r = l.run(&args);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(check(&[]).contains(&"D013".to_string()));
    assert!(!check(&["--rollback"]).contains(&"D013".to_string()));
}

#[test]
fn reconcile_proposes_without_writing_and_applies_through_the_gate() {
    let l = Ledger::new();
    l.service("api", API, "priya@acme.dev");
    l.service("web", WEB, "ana@acme.dev");
    l.service("ghost", "ghcr.io/acme/ghost", "gus@acme.dev");
    l.build(API, "a1", "p1", "2026-11-01T10:00:00Z");
    l.build(API, "a2", "p1", "2026-11-05T10:00:00Z");
    l.build(WEB, "w2", "p1", "2026-11-05T10:00:00Z");
    l.build("ghcr.io/acme/ghost", "g1", "p1", "2026-11-01T10:00:00Z");
    l.deploy(API, "a2", "production", "2026-11-06T10:00:00Z");
    l.deploy(
        "ghcr.io/acme/ghost",
        "g1",
        "production",
        "2026-11-06T10:00:00Z",
    );
    l.write(
        "pods.json",
        &pod_list(vec![
            pod("prod", "api", API, "a1"),
            pod("prod", "web", WEB, "w2"),
        ]),
    );
    l.ok(&["observe", "pods.json", "--cluster", "prod-eu-1"]);
    let entries = l.entries();
    let bytes = std::fs::read(l.store()).unwrap();

    let dry = l.json(&["drift", "--reconcile"]);
    assert_eq!(dry["reconcile"]["applied"], false);
    let proposals: Vec<(String, String, String)> = dry["reconcile"]["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["service"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        proposals,
        triples(&[
            ("deploy", "api", "proposed"),
            ("deploy_end", "ghost", "proposed"),
            ("deploy", "web", "proposed"),
        ])
    );
    let human = l.ok(&["drift", "--reconcile"]);
    assert!(human.contains("dry run, nothing written"), "{human}");
    // The dry run wrote nothing, not even a checkpoint.
    assert_eq!(l.entries(), entries);
    assert_eq!(std::fs::read(l.store()).unwrap(), bytes);

    let applied = l.json(&["drift", "--reconcile", "--apply", "--by", "sre@acme.dev"]);
    assert_eq!(applied["reconcile"]["written"], 3, "{applied}");
    assert_eq!(l.entries(), entries + 3);
    assert_eq!(
        l.running(&[]),
        triples(&[("api", "production", "a1"), ("web", "production", "w2")])
    );
    let after = l.json(&["drift"]);
    assert!(after["items"].as_array().unwrap().is_empty(), "{after}");
    // The recorded rollback says so.
    let trace = l.json(&["trace", &format!("{API}@{}", digest("a1"))]);
    assert_eq!(trace["running"][0]["deployed_by"], "sre@acme.dev");
    l.ok(&["log", "verify"]);
}

#[test]
fn deploy_end_ends_one_placement() {
    let l = fleet();
    let r = l.json(&[
        "deploy",
        "end",
        "--service",
        "report",
        "--env",
        "production",
        "--reason",
        "moved to the data team",
    ]);
    assert_eq!(r["outcome"], "ended");
    assert_eq!(r["digest"], digest("r1"));
    assert!(!l.running(&[]).iter().any(|t| t.0 == "report"));
    // Nothing more to end: exit 1, nothing written.
    let before = l.entries();
    let again = l.run(&[
        "deploy",
        "end",
        "--service",
        "report",
        "--env",
        "production",
    ]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again
        .stderr
        .contains("nothing is recorded as running for `report` in `production`"));
    assert_eq!(l.entries(), before);
    // A typo in the service is an error.
    let typo = l.run(&[
        "deploy",
        "end",
        "--service",
        "reprot",
        "--env",
        "production",
    ]);
    assert_eq!(typo.code, 2);
    // A new deploy starts a new placement.
    l.deploy(OLD, "r1", "production", NOW);
    assert!(l.running(&[]).iter().any(|t| t.0 == "report"));
}

#[test]
fn malformed_or_oversized_input_exits_2_naming_where_and_writes_nothing() {
    let l = fleet();
    let before = l.entries();
    let mut list = json!({ "kind": "List", "items": [pod("prod", "api", API, "a1"), pod("prod", "web", WEB, "w1")] });
    list["items"][1]["status"]["containerStatuses"][0]["imageID"] =
        json!("docker-pullable://ghcr.io/acme/web@sha256:12");
    l.write("bad.json", &list.to_string());
    let r = l.run(&["observe", "bad.json", "--cluster", "prod-eu-1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: `bad.json`: items[1].status.containerStatuses[0].imageID: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    l.write(
        "bad.csv",
        &format!("production,{API}@{}\nproduction,{API}:1.0\n", digest("a1")),
    );
    let r = l.run(&["observe", "bad.csv", "--cluster", "vms"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 2: field `image`"), "{}", r.stderr);
    let r = l.run(&["observe", "bad.csv"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("`--cluster` is required"), "{}", r.stderr);
    // A file over the limit is refused before it is read.
    let big = std::fs::File::create(l.dir.path().join("big.json")).unwrap();
    big.set_len((256 << 20) + 1).unwrap();
    let r = l.run(&["observe", "big.json", "--cluster", "prod-eu-1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("the limit is 268435456"), "{}", r.stderr);
    assert_eq!(l.entries(), before);
}

#[test]
fn inventories_from_stdin_and_unmapped_namespaces_are_reported() {
    let l = fleet();
    let mut pods = vec![
        pod("prod", "api", API, "a1"),
        pod(
            "kube-system",
            "coredns",
            "registry.k8s.io/coredns/coredns",
            "d1",
        ),
    ];
    pods[0]["spec"]["initContainers"] =
        json!([{ "name": "migrate", "image": format!("{API}@{}", digest("a1")) }]);
    pods[0]["status"]["initContainerStatuses"] = json!([{ "name": "migrate", "imageID": format!("{API}@{}", digest("a1")), "ready": true, "restartCount": 0 }]);
    let mut child = l
        .cmd(&["--format", "json", "observe", "-", "--cluster", "prod-eu-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pod_list(pods).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["containers"], 2);
    assert_eq!(r["digests"], 1);
    assert_eq!(
        r["unmapped_namespaces"],
        json!([{ "namespace": "kube-system", "pods": 1 }])
    );
    let human = {
        l.write(
            "inv.jsonl",
            &format!(
                "{{\"env\": \"staging\", \"image\": \"{WEB}@{}\", \"host\": \"vm-3\"}}\n",
                digest("w1")
            ),
        );
        l.ok(&["observe", "inv.jsonl", "--cluster", "vms"])
    };
    assert!(
        human.contains("recorded what `vms` runs (jsonl): 1 container(s), 1 digest(s) in staging"),
        "{human}"
    );
}
