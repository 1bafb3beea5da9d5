//! Base-image freshness end to end, on real components: a real registry on loopback, base
//! images made with umoci and pushed with skopeo, application images built on them with
//! buildah, and the real `lineage` binary with an injected clock (LINEAGE_NOW), never a sleep.
//!
//! The story: `base:3.20` is re-pushed with new content on day 3 and day 6. `api` (built on
//! day 0) and `worker` (built on day 4) stay on old bases in production; `api` is rebuilt on
//! day 7 from the same commit and runs fresh in staging; `web` runs on a base that never
//! moved; `legacy`'s base tag disappears from the registry. The report must list exactly api
//! (6 days, 2 digests behind) and worker (3 days, 1 digest behind) in production, in every
//! format, and keep rendering when the registry is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread::JoinHandle;

use lineage_testkit::{require, ImageFormat, Registry, World};
use serde_json::Value;

const C1: &str = "1111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222";

/// Day N of the story, 09:00 UTC.
fn day(n: u32) -> String {
    format!("2026-11-{:02}T09:00:00Z", n + 1)
}

struct Ledger {
    dir: tempfile::TempDir,
    /// (text to hide, label) pairs applied to every snapshot: digests, ports, paths.
    redactions: Vec<(String, String)>,
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        // This team builds `FROM` base tags and rebuilds with `--pull`; the stale report, not
        // digest pinning, is how it keeps bases fresh. So an unpinned FROM only warns.
        std::fs::write(
            dir.path().join("lineage.toml"),
            "[rules]\nunpinned-dockerfile-from = \"warn\"\n",
        )
        .unwrap();
        Ledger {
            dir,
            redactions: Vec::new(),
        }
    }

    fn run_at(&self, now: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.dir.path().join("ledger.db"))
            .env("LINEAGE_NOW", now)
            .env("LINEAGE_ACTOR", "ci@acme.dev")
            .output()
            .unwrap()
    }

    fn ok_at(&self, now: &str, args: &[&str]) -> String {
        let out = self.run_at(now, args);
        assert!(
            out.status.success(),
            "lineage {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Names a digest (and its 12-hex short form) in snapshots.
    fn name(&mut self, digest: &str, label: &str) {
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        self.redactions
            .push((digest.to_string(), format!("[{label}]")));
        self.redactions
            .push((digest[..19].to_string(), format!("[{label}]")));
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.replace(&self.dir.path().display().to_string(), "[TMP]");
        for (from, to) in &self.redactions {
            text = text.replace(from, to);
        }
        text
    }

    /// `exit: N`, stdout and stderr, redacted, for a snapshot.
    fn snap_at(&self, now: &str, args: &[&str]) -> String {
        let out = self.run_at(now, args);
        self.redact(&format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Writes a Dockerfile under `src/<service>/` and returns its path relative to the ledger
    /// directory, which is the working directory of every command.
    fn source(&self, service: &str, dockerfile: &str) -> String {
        let dir = self.dir.path().join("src").join(service);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        format!("src/{service}/Dockerfile")
    }
}

/// The `org.opencontainers.image.base.digest` annotation buildah wrote on a pushed image:
/// the base digest the build really pulled.
fn base_annotation(reference: &str) -> String {
    let out = Command::new(require("skopeo", "skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    manifest["annotations"]["org.opencontainers.image.base.digest"]
        .as_str()
        .unwrap_or_else(|| {
            panic!("buildah wrote no base digest annotation on {reference}: {manifest}")
        })
        .to_string()
}

/// Builds `FROM <base>` plus one file with buildah, pushes it as OCI, and returns
/// (image digest, base digest from the annotation).
fn build_app(
    world: &World,
    registry: &Registry,
    name: &str,
    base: &str,
    app: &str,
) -> (String, String) {
    let tag = registry.reference(name);
    world.buildah_build(
        &format!(
            "FROM {}\nCOPY app.txt /app/app.txt\n",
            registry.reference(base)
        ),
        &[("app.txt", app)],
        &tag,
        &[],
    );
    let pushed = world.buildah_push(&tag, ImageFormat::Oci);
    (pushed.digest, base_annotation(&tag))
}

/// Pushes `name` (e.g. `base:3.20`) made with umoci, with `content` in /etc/os-release.
fn push_base(world: &World, registry: &Registry, name: &str, content: &str) -> String {
    world
        .umoci_image(
            &registry.reference(name),
            &[&[("etc/os-release", content)]],
            &[],
        )
        .digest
}

/// A CI run id that is stable across test runs: `api-1` for `api:1`.
fn repo_tag(image: &str) -> String {
    image.replace(':', "-")
}

/// Records a build of `service` with its final-stage base, at `when`.
#[allow(clippy::too_many_arguments)]
fn record_build(
    l: &Ledger,
    host: &str,
    image: &str,
    digest: &str,
    base: &str,
    base_digest: &str,
    commit: &str,
    dockerfile: &str,
    when: &str,
) {
    let (repo, tag) = image.split_once(':').unwrap();
    l.ok_at(
        when,
        &[
            "build",
            "record",
            "--image",
            &format!("{host}/{repo}:{tag}@{digest}"),
            "--base",
            &format!("{host}/{base}@{base_digest}"),
            "--base-pulled-at",
            when,
            "--repo",
            &format!("https://git.acme.dev/acme/{repo}"),
            "--branch",
            "main",
            "--commit",
            commit,
            "--finished-at",
            when,
            "--builder",
            "ci@acme.dev",
            "--platform",
            "linux/amd64",
            "--dockerfile",
            dockerfile,
            "--ci-system",
            "gitlab-ci",
            "--ci-run-id",
            &repo_tag(image),
            "--ci-url",
            &format!(
                "https://git.acme.dev/acme/{repo}/-/pipelines/{}",
                repo_tag(image)
            ),
        ],
    );
}

fn deploy(l: &Ledger, registry: &Registry, repo: &str, digest: &str, env: &str, when: &str) {
    l.ok_at(
        when,
        &[
            "deploy",
            "record",
            "--image",
            &format!("{}@{digest}", registry.reference(repo)),
            "--env",
            env,
            "--by",
            "deploy-bot@acme.dev",
            "--approved-by",
            "maya@acme.dev",
            "--at",
            when,
        ],
    );
}

/// A one-shot HTTP receiver on loopback: accepts one request, answers `status`, and returns
/// the request line and body.
fn receiver(status: u16) -> (String, JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/stale", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = Some(v.trim().parse::<usize>().unwrap());
                }
            }
        }
        let length = length.expect("the webhook request has a Content-Length");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        .unwrap();
        (
            request_line.trim_end().to_string(),
            String::from_utf8(body).unwrap(),
        )
    });
    (url, handle)
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({filters => vec![
        // umoci stamps base configs with the real clock; only its presence matters.
        (r"created \d{4}-\d\d-\d\dT[0-9:.]+Z", "created [CREATED]"),
        (r#""created": "[^"]+""#, r#""created": "[CREATED]""#),
    ]}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn stale_base_story() {
    let registry = Registry::start();
    let world = World::new();
    let mut l = Ledger::new();
    let host = registry.host().to_string();
    l.redactions.push((host.clone(), "[REGISTRY]".to_string()));

    // Day 0: three bases; services with owners; builds on the first digest of each.
    let v1 = push_base(&world, &registry, "base:3.20", "v1");
    let old = push_base(&world, &registry, "base:3.19", "old");
    let other = push_base(&world, &registry, "other:1", "other");
    l.name(&v1, "base:3.20 v1");
    l.name(&old, "base:3.19");
    l.name(&other, "other:1");
    for (service, owner, backup) in [
        ("api", "priya@acme.dev", Some("jonas@acme.dev")),
        ("worker", "sam@acme.dev", None),
        ("web", "lee@acme.dev", Some("priya@acme.dev")),
        ("legacy", "ops@acme.dev", None),
    ] {
        let image = registry.reference(service);
        let mut args = vec![
            "service", "add", service, "--owner", owner, "--image", &image,
        ];
        if let Some(b) = backup {
            args.extend(["--backup-owner", b]);
        }
        l.ok_at(&day(0), &args);
    }
    let refreshed = l.ok_at(&day(0), &["base", "refresh"]);
    assert_eq!(
        refreshed,
        "no base tags to refresh: no recorded build names a base by tag\n"
    );

    let api_df = l.source("api", "FROM base:3.20\nCOPY app.txt /app/app.txt\n");
    let (api1, api1_base) = build_app(&world, &registry, "api:1", "base:3.20", "api v1");
    assert_eq!(api1_base, v1, "buildah built api:1 on base v1");
    l.name(&api1, "api:1");
    record_build(
        &l,
        &host,
        "api:1",
        &api1,
        "base:3.20",
        &api1_base,
        C1,
        &api_df,
        &day(0),
    );
    let web_df = l.source("web", "FROM other:1\nCOPY app.txt /app/app.txt\n");
    let (web1, web1_base) = build_app(&world, &registry, "web:1", "other:1", "web v1");
    l.name(&web1, "web:1");
    record_build(
        &l,
        &host,
        "web:1",
        &web1,
        "other:1",
        &web1_base,
        C1,
        &web_df,
        &day(0),
    );
    let legacy_df = l.source("legacy", "FROM base:3.19\nCOPY app.txt /app/app.txt\n");
    let (legacy1, legacy1_base) = build_app(&world, &registry, "legacy:1", "base:3.19", "legacy");
    l.name(&legacy1, "legacy:1");
    record_build(
        &l,
        &host,
        "legacy:1",
        &legacy1,
        "base:3.19",
        &legacy1_base,
        C1,
        &legacy_df,
        &day(0),
    );
    deploy(&l, &registry, "api", &api1, "staging", &day(0));
    deploy(&l, &registry, "api", &api1, "production", &day(0));
    deploy(&l, &registry, "web", &web1, "production", &day(0));
    deploy(&l, &registry, "legacy", &legacy1, "production", &day(0));
    l.ok_at(&day(0), &["base", "refresh"]);

    // Day 3: base:3.20 moves to v2.
    let v2 = push_base(&world, &registry, "base:3.20", "v2");
    l.name(&v2, "base:3.20 v2");
    snapshot("refresh_day3", &l.snap_at(&day(3), &["base", "refresh"]));

    // Day 4: worker is built on v2 and deployed.
    let worker_df = l.source("worker", "FROM base:3.20\nCOPY app.txt /app/app.txt\n");
    let (worker1, worker1_base) = build_app(&world, &registry, "worker:1", "base:3.20", "worker");
    assert_eq!(
        worker1_base, v2,
        "buildah pulled the new base v2 for worker"
    );
    l.name(&worker1, "worker:1");
    record_build(
        &l,
        &host,
        "worker:1",
        &worker1,
        "base:3.20",
        &worker1_base,
        C1,
        &worker_df,
        &day(4),
    );
    deploy(&l, &registry, "worker", &worker1, "production", &day(4));

    // Day 6: base:3.20 moves to v3; base:3.19 is deleted from the registry.
    let v3 = push_base(&world, &registry, "base:3.20", "v3");
    l.name(&v3, "base:3.20 v3");
    l.ok_at(&day(6), &["base", "refresh"]);
    let deleted = Command::new(require("skopeo", "skopeo"))
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}", registry.reference("base:3.19")))
        .output()
        .unwrap();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );

    // Day 7: api is rebuilt from the same commit on v3 (deployed to staging), and built again
    // from a new commit (recorded only).
    let (api2, api2_base) = build_app(&world, &registry, "api:2", "base:3.20", "api v1");
    assert_eq!(
        api2_base, v3,
        "buildah --pull picked up base v3 for the rebuild"
    );
    l.name(&api2, "api:2");
    record_build(
        &l,
        &host,
        "api:2",
        &api2,
        "base:3.20",
        &api2_base,
        C1,
        &api_df,
        &day(7),
    );
    deploy(&l, &registry, "api", &api2, "staging", &day(7));
    let (api3, api3_base) = build_app(&world, &registry, "api:3", "base:3.20", "api v2");
    l.name(&api3, "api:3");
    record_build(
        &l,
        &host,
        "api:3",
        &api3,
        "base:3.20",
        &api3_base,
        C2,
        &api_df,
        &day(7),
    );

    // Day 9: the daily refresh; the vanished tag is reported on its own, the others recorded.
    snapshot("refresh_day9", &l.snap_at(&day(9), &["base", "refresh"]));
    snapshot(
        "refresh_day9_json",
        &l.snap_at(&day(9), &["--format", "json", "base", "refresh"]),
    );
    let base320 = registry.reference("base:3.20");
    snapshot(
        "history",
        &l.snap_at(&day(9), &["base", "history", &base320]),
    );

    // The report, in every format.
    for (name, format) in [
        ("text", "human"),
        ("markdown", "markdown"),
        ("json", "json"),
        ("html", "html"),
        ("slack", "slack"),
    ] {
        snapshot(
            &format!("report_{name}"),
            &l.snap_at(&day(9), &["report", "stale", "--format", format]),
        );
    }
    let report: Value =
        serde_json::from_str(&l.ok_at(&day(9), &["report", "stale", "--format", "json"])).unwrap();
    let rows: Vec<(String, String, i64, i64, String)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["env"].as_str().unwrap().to_string(),
                r["days_behind"].as_i64().unwrap(),
                r["digests_behind"].as_i64().unwrap(),
                r["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "api".into(),
                "production".into(),
                6,
                2,
                "priya@acme.dev".into()
            ),
            (
                "worker".into(),
                "production".into(),
                3,
                1,
                "sam@acme.dev".into()
            ),
        ],
        "exactly the stale services, with their day counts and owners"
    );
    assert_eq!(
        report["up_to_date"], 3,
        "api in staging, web and legacy are fresh"
    );
    let html = l.ok_at(&day(9), &["report", "stale", "--format", "html"]);
    assert!(
        !html.contains("http://") && !html.contains("<link") && !html.contains("<script"),
        "the HTML page must be self-contained"
    );

    // Filters and thresholds.
    snapshot(
        "report_min_days_4",
        &l.snap_at(&day(9), &["report", "stale", "--min-days", "4"]),
    );
    snapshot(
        "report_env_staging",
        &l.snap_at(&day(9), &["report", "stale", "--env", "staging"]),
    );
    assert_eq!(
        l.run_at(&day(9), &["report", "stale", "--fail-after", "5"])
            .status
            .code(),
        Some(1),
        "api is 6 days behind, more than 5"
    );
    assert_eq!(
        l.run_at(&day(9), &["report", "stale", "--fail-after", "6"])
            .status
            .code(),
        Some(0),
        "nothing is more than 6 days behind"
    );

    // --post: the receiver gets exactly the Slack payload.
    let payload = l.ok_at(&day(9), &["report", "stale", "--format", "slack"]);
    let (url, received) = receiver(200);
    let out = l.run_at(
        &day(9),
        &["report", "stale", "--format", "json", "--post", &url],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (request_line, body) = received.join().unwrap();
    assert_eq!(request_line, "POST /hooks/stale HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::from_str::<Value>(&payload).unwrap()
    );
    let (url, received) = receiver(500);
    let out = l.run_at(&day(9), &["report", "stale", "--post", &url]);
    received.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "a failed post exits non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: posting the report to `{url}` failed: HTTP 500\n"
        )),
        "{stderr}"
    );

    // The rebuild diff.
    snapshot(
        "diff_base_only",
        &l.snap_at(
            &day(9),
            &["build", "diff", &api1, &api2, "--expect", "base-only"],
        ),
    );
    snapshot(
        "diff_commit_changed",
        &l.snap_at(
            &day(9),
            &["build", "diff", &api1, &api3, "--expect", "base-only"],
        ),
    );
    let diff: Value = serde_json::from_str(&l.ok_at(
        &day(9),
        &["--format", "json", "build", "diff", &api1, &api3],
    ))
    .unwrap();
    assert_eq!(diff["base_only"]["also_changed"][0], "commit");

    // The registry goes away: refresh reports each tag and exits 1 (nothing was checked); the report
    // renders from what is known and says when each tag was last checked.
    drop(registry);
    snapshot(
        "refresh_unreachable",
        &l.snap_at(&day(10), &["base", "refresh"]),
    );
    snapshot(
        "report_after_outage",
        &l.snap_at(&day(10), &["report", "stale"]),
    );

    // Still without a registry, CI records a build on a newer `other:1`: the tag's history
    // grows from the build alone, and web (running on the old one) is now behind.
    let other2 = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"other v2"))
    );
    let web2 = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"web 2"))
    );
    l.name(&other2, "other:1 v2");
    l.name(&web2, "web:2");
    record_build(
        &l,
        &host,
        "web:2",
        &web2,
        "other:1",
        &other2,
        C1,
        &web_df,
        &day(11),
    );
    let other1 = format!("{host}/other:1");
    snapshot(
        "history_from_builds",
        &l.snap_at(&day(12), &["base", "history", &other1]),
    );
    snapshot(
        "report_from_builds",
        &l.snap_at(
            &day(12),
            &["report", "stale", "--env", "production", "--min-days", "1"],
        ),
    );
}

#[test]
fn bad_input_is_refused_before_the_ledger_is_opened() {
    let l = Ledger::new();
    snapshot(
        "bad_min_days",
        &l.snap_at(&day(0), &["report", "stale", "--min-days", "abc"]),
    );
    snapshot(
        "bad_fail_after",
        &l.snap_at(&day(0), &["report", "stale", "--fail-after", "1.5"]),
    );
    snapshot(
        "bad_post_url",
        &l.snap_at(
            &day(0),
            &["report", "stale", "--post", "http://hooks.example.com/x"],
        ),
    );
    snapshot(
        "bad_history_tag",
        &l.snap_at(&day(0), &["base", "history", "python"]),
    );
    assert!(
        !PathBuf::from(l.dir.path()).join("ledger.db").exists(),
        "bad input must not create a ledger"
    );
}
