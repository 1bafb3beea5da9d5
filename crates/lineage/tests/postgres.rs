//! The PostgreSQL backend end to end, through the real binary: a ledger migrated from SQLite
//! answers exactly as the original, several processes appending at once keep the log
//! gapless and verifiable, and bad or unreachable locations fail clearly.
//!
//! Needs a PostgreSQL server: `LINEAGE_TEST_PG` is the URL of a fresh database on it
//! (`cargo xtask test` sets it). Each test creates and drops databases of its own there,
//! named after that database plus a suffix.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

const NOW: &str = "2026-11-17T09:12:00Z";

fn admin_url() -> String {
    std::env::var("LINEAGE_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "LINEAGE_TEST_PG is not set: these tests need PostgreSQL. Run `cargo xtask test`, \
             or create a database and export \
             LINEAGE_TEST_PG=postgres://postgres@127.0.0.1:5432/lineage_dev"
        )
    })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let host_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[host_end..].find('/') {
        Some(i) => &base[..host_end + i],
        None => base,
    };
    format!("{prefix}/{name}{query}")
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .expect("psql (the PostgreSQL client) must be installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh database, dropped when the test ends.
struct Db {
    url: String,
    name: String,
}

impl Db {
    fn fresh() -> Db {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = admin_url();
        let base = lineage_store::PgLocation::parse(&admin).unwrap().database();
        let name = format!(
            "{base}_c{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        psql(&admin, &format!("CREATE DATABASE \"{name}\""));
        Db {
            url: with_database(&admin, &name),
            name,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &admin_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn lineage(dir: &Path, store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("LINEAGE_STORE", store)
        .env("LINEAGE_NOW", NOW)
        .env("LINEAGE_ACTOR", "maya@acme.dev")
        .output()
        .unwrap()
}

fn ok(dir: &Path, store: &str, args: &[&str]) -> String {
    let out = lineage(dir, store, args);
    assert!(
        out.status.success(),
        "lineage {args:?} on {store} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Points `[log] key` at `log.key` in `dir`: where every process working in `dir` finds the
/// database's log key.
fn shared_key(dir: &Path) {
    std::fs::write(dir.join("lineage.toml"), "[log]\nkey = \"log.key\"\n").unwrap();
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

#[test]
fn the_demo_ledger_migrates_to_postgres_with_identical_roots_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = format!("sqlite:{}", d.join("demo.db").display());
    ok(d, &sqlite, &["demo"]);
    let db = Db::fresh();

    let report: Value = serde_json::from_str(&ok(
        d,
        &sqlite,
        &[
            "store", "migrate", "--from", &sqlite, "--to", &db.url, "--format", "json",
        ],
    ))
    .unwrap();
    assert_eq!(report["identical"], true, "{report:#}");
    assert_eq!(report["source"], report["target"], "{report:#}");
    assert!(report["copied"].as_u64().unwrap() > 20, "{report:#}");
    // The copy's checkpoints are signed with the demo's key; the report says how a writer of
    // the database finds it: `[log] key` in lineage.toml.
    let key_file = d.join("log.key").display().to_string();
    assert_eq!(report["log_key"]["action"], "configure", "{report:#}");
    let toml = report["log_key"]["toml"].as_str().unwrap();
    assert_eq!(toml, format!("[log]\nkey = \"{key_file}\""), "{report:#}");
    // Until then neither writing nor auditing the copy can find the key.
    let out = lineage(
        d,
        &db.url,
        &["service", "add", "billing", "--owner", "ana@acme.dev"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`[log] key` in lineage.toml, which is not set"),
        "{err}"
    );
    assert_eq!(
        lineage(d, &db.url, &["log", "verify"]).status.code(),
        Some(2)
    );
    std::fs::write(d.join("lineage.toml"), format!("{toml}\n")).unwrap();
    let verified = ok(d, &db.url, &["log", "verify"]);
    assert!(verified.starts_with("verified"), "{verified}");

    // The same signed checkpoint and the same answers from both ledgers.
    for args in [
        &["log", "checkpoint"][..],
        &["log", "checkpoint", "--format", "json"],
        &["trace", "api", "--format", "json"],
        &["affected", "--base", "python:3.12-slim", "--format", "json"],
        &["running", "--format", "json"],
        &["service", "list", "--format", "json"],
        &["incident", "show", "1", "--format", "json"],
        &["incident", "list", "--format", "json"],
    ] {
        assert_eq!(
            ok(d, &db.url, args),
            ok(d, &sqlite, args),
            "lineage {args:?} differs"
        );
    }
    // The audit passes on the copy with the original log key.
    let key = d.join("log.pub").display().to_string();
    ok(d, &db.url, &["log", "verify", "--key", &key]);

    // Migrating again finds everything there already; the human report shows both sides.
    let human = ok(
        d,
        &sqlite,
        &["store", "migrate", "--from", &sqlite, "--to", &db.url],
    );
    assert!(human.contains("copied 0 entries"), "{human}");
    assert!(human.contains("identical"), "{human}");

    // A target that diverged is refused with exit 2, and nothing is written.
    let other = tempfile::tempdir().unwrap();
    let other_store = format!("sqlite:{}", other.path().join("other.db").display());
    ok(
        other.path(),
        &other_store,
        &["service", "add", "billing", "--owner", "ana@acme.dev"],
    );
    let db2 = Db::fresh();
    ok(
        d,
        &sqlite,
        &["store", "migrate", "--from", &other_store, "--to", &db2.url],
    );
    let before = psql(&db2.url, "SELECT count(*) FROM entries");
    let out = lineage(
        d,
        &sqlite,
        &["store", "migrate", "--from", &sqlite, "--to", &db2.url],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a prefix of the source"), "{err}");
    assert_eq!(psql(&db2.url, "SELECT count(*) FROM entries"), before);

    // And back again: PostgreSQL to a fresh SQLite file.
    let back = format!("sqlite:{}", d.join("back.db").display());
    let report: Value = serde_json::from_str(&ok(
        d,
        &sqlite,
        &[
            "store", "migrate", "--from", &db.url, "--to", &back, "--format", "json",
        ],
    ))
    .unwrap();
    assert_eq!(report["identical"], true, "{report:#}");

    // The database takes writes signed with the same key, and still verifies.
    ok(
        d,
        &db.url,
        &["service", "add", "billing", "--owner", "ana@acme.dev"],
    );
    let verified = ok(d, &db.url, &["log", "verify"]);
    assert!(verified.starts_with("verified"), "{verified}");
}

#[test]
fn several_processes_append_at_once_without_gaps_or_duplicates() {
    const PROCESSES: usize = 4;
    const EACH: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let db = Db::fresh();
    let url = db.url.clone();
    shared_key(&d);
    // The first write creates the ledger and the log key every process then signs with.
    ok(
        &d,
        &url,
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
    let workers: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let (d, url) = (d.clone(), url.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..EACH {
                    let label = format!("p{p}-{i}");
                    let image = format!("ghcr.io/acme/api@{}", digest(&label));
                    let out = lineage(
                        &d,
                        &url,
                        &build_flags(&image, &label, &format!("{p}{i}"))
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>(),
                    );
                    if out.status.success() {
                        acknowledged.push(("build", label.clone()));
                    } else {
                        panic!("build {label}: {}", String::from_utf8_lossy(&out.stderr));
                    }
                    let out = lineage(
                        &d,
                        &url,
                        &[
                            "deploy",
                            "record",
                            "--image",
                            &image,
                            "--env",
                            ["dev", "staging"][p % 2],
                            "--by",
                            "jonas@acme.dev",
                            "--at",
                            &format!("2026-11-16T10:{i:02}:{p:02}Z"),
                        ],
                    );
                    if out.status.success() {
                        acknowledged.push(("deploy", label));
                    } else {
                        panic!("deploy {label}: {}", String::from_utf8_lossy(&out.stderr));
                    }
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<(&str, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(
        acknowledged.len(),
        PROCESSES * EACH * 2,
        "every write succeeded"
    );

    audit_concurrent_writes(&d, &url, &acknowledged, PROCESSES * EACH);
}

#[test]
fn unreachable_and_malformed_databases_fail_with_exit_2_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = lineage(
        dir.path(),
        "postgres://lineage:s3cret@127.0.0.1:1/ledger?connect_timeout=2",
        &["service", "list"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    let out = lineage(
        dir.path(),
        "postgres://lineage:s3cret@db/ledger?sslmode=sometimes",
        &["service", "list"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sslmode=sometimes"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// A `lineage serve` replica on the shared database, stopped with SIGTERM when dropped.
struct Replica {
    child: std::process::Child,
    url: String,
}

impl Replica {
    fn start(dir: &Path, store: &str) -> Replica {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(["serve", "--listen", "127.0.0.1:0", "--poll-interval", "100"])
            .current_dir(dir)
            .env_clear()
            .env("LINEAGE_STORE", store)
            .env("LINEAGE_NOW", NOW)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("lineage serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from lineage serve: {line:?}"))
            .to_string();
        Replica { child, url }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `lineage ARGS --server URL` with a token.
fn remote(dir: &Path, server: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .args(["--server", server])
        .current_dir(dir)
        .env_clear()
        .env("LINEAGE_TOKEN", token)
        .env("LINEAGE_NOW", NOW)
        .output()
        .unwrap()
}

#[test]
fn two_server_replicas_on_one_database_keep_the_log_gapless() {
    const WRITERS: usize = 4;
    const EACH: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let db = Db::fresh();
    let url = db.url.clone();
    shared_key(&d);
    // The first write creates the ledger and the log key both replicas sign with.
    ok(
        &d,
        &url,
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
    let created: Value = serde_json::from_str(&ok(
        &d,
        &url,
        &[
            "--format",
            "json",
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "build:write",
            "--scope",
            "deploy:write",
            "--scope",
            "read",
            // The deploy bot records who pressed the button (`--by`), so it may act for them.
            "--scope",
            "act-as",
        ],
    ))
    .unwrap();
    let token = created["token"]
        .as_str()
        .expect("the secret is shown once")
        .to_string();
    let replicas = [Replica::start(&d, &url), Replica::start(&d, &url)];
    for r in &replicas {
        // `trace` answers "nothing found" (exit 1) once the replica serves requests.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while remote(&d, &r.url, &token, &["trace", "api"]).status.code() != Some(1) {
            assert!(
                std::time::Instant::now() < deadline,
                "replica {} never answered",
                r.url
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let workers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (d, urls, token) = (d.clone(), urls.clone(), token.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0..EACH {
                    // Writers alternate between the replicas.
                    let server = &urls[(w + i) % 2];
                    let label = format!("r{w}-{i}");
                    let image = format!("ghcr.io/acme/api@{}", digest(&label));
                    let out = remote(
                        &d,
                        server,
                        &token,
                        &build_flags(&image, &label, &format!("{w}{i}"))
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>(),
                    );
                    assert!(
                        out.status.success(),
                        "build {label} via {server}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    acknowledged.push(("build", label.clone()));
                    let out = remote(
                        &d,
                        server,
                        &token,
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
                            &format!("2026-11-16T10:{i:02}:{w:02}Z"),
                        ],
                    );
                    assert!(
                        out.status.success(),
                        "deploy {label} via {server}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    acknowledged.push(("deploy", label));
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<(&str, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(acknowledged.len(), WRITERS * EACH * 2);
    drop(replicas);

    audit_concurrent_writes(&d, &url, &acknowledged, WRITERS * EACH);
}

/// `build record` flags with enough provenance to pass the build gate.
fn build_flags(image: &str, label: &str, run_id: &str) -> Vec<String> {
    [
        "build",
        "record",
        "--image",
        image,
        "--tag",
        label,
        "--base",
        &format!("python:3.12-slim@{}", digest("py")),
        "--base-pulled-at",
        "2026-11-16T09:00:00Z",
        "--commit",
        &"c".repeat(40),
        "--repo",
        "https://github.com/acme/api",
        "--branch",
        "main",
        "--ci-system",
        "github-actions",
        "--ci-run-id",
        run_id,
    ]
    .map(str::to_string)
    .to_vec()
}

/// The audit after concurrent writers: `log verify` passes with the shared key, the journal
/// indexes are 0..n each once, the counts are right (`writes` builds and as many deploys),
/// every acknowledged record is present, and the query tables match the journal.
fn audit_concurrent_writes(d: &Path, url: &str, acknowledged: &[(&str, String)], writes: usize) {
    // The audit passes: every leaf hashes to the signed roots (the key is `[log] key`).
    let verify = ok(d, url, &["log", "verify"]);
    assert!(verify.contains("verified"), "{verify}");

    // Every acknowledged record is in the journal, and the indexes are 0..n, each once.
    let store =
        lineage_store::open(&lineage_store::StoreLocation::parse(url).unwrap(), false).unwrap();
    let entries = store.entries(0, u64::MAX >> 1).unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(
        indexes,
        (0..entries.len() as u64).collect::<Vec<_>>(),
        "no gap"
    );
    let counts = store.kind_counts().unwrap();
    assert_eq!(counts.get("build"), Some(&(writes as u64)));
    assert_eq!(counts.get("deploy"), Some(&(writes as u64)));
    let distinct: std::collections::BTreeSet<i64> = psql(url, "SELECT idx FROM entries")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(distinct.len(), entries.len(), "no index twice");
    for (kind, label) in acknowledged {
        let found = entries.iter().any(|e| match &e.record {
            lineage_model::Record::Build(b) if *kind == "build" => {
                b.digest.to_string() == digest(label)
            }
            lineage_model::Record::Deploy(dep) if *kind == "deploy" => {
                dep.digest.to_string() == digest(label)
            }
            _ => false,
        });
        assert!(found, "acknowledged {kind} {label} is missing");
    }
    assert_eq!(store.check_projections(10).unwrap(), vec![]);
}

/// Runs `lineage serve` and waits for it to exit on its own, as a refused start does; one
/// that starts serving anyway is stopped and fails the test.
fn serve_refused(dir: &Path, store: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_clear()
        .env("LINEAGE_STORE", store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("lineage serve started without the database's log key");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_database_ledger_keeps_its_log_key_where_lineage_toml_says() {
    let db = Db::fresh();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let add = ["service", "add", "api", "--owner", "priya@acme.dev"];
    // No `[log] key`: the first writer is refused before it touches the database.
    let out = lineage(d, &db.url, &add);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("takes its log key from `[log] key` in lineage.toml, which is not set"),
        "{err}"
    );
    assert!(err.contains("hint: add `[log]` with `key = "), "{err}");
    assert_eq!(
        psql(
            &db.url,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'entries'"
        ),
        "0\n",
        "nothing was written"
    );
    assert!(
        !d.join(".lineage").exists(),
        "no key beside the working directory"
    );

    // With it, the first write creates the key there, and every command finds it.
    std::fs::write(d.join("lineage.toml"), "[log]\nkey = \"keys/ledger.key\"\n").unwrap();
    ok(d, &db.url, &add);
    assert!(d.join("keys/ledger.key").exists());
    let verified = ok(d, &db.url, &["log", "verify"]);
    assert!(verified.starts_with("verified: 1 records"), "{verified}");

    // A process somewhere else, without the setting, can neither audit nor serve nor write.
    let elsewhere = tempfile::tempdir().unwrap();
    let e = elsewhere.path();
    let out = lineage(e, &db.url, &["log", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("pass the log's public key with `--key log.pub`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = serve_refused(e, &db.url);
    assert!(
        err.contains("`[log] key` in lineage.toml, which is not set"),
        "{err}"
    );
    // With the setting but not the file, the refusal names the file and the setting.
    std::fs::write(e.join("lineage.toml"), "[log]\nkey = \"log.key\"\n").unwrap();
    let before = psql(&db.url, "SELECT count(*) FROM entries");
    let expected = format!(
        "error: this ledger's checkpoints are signed, but its log key `{}` (`[log] key` in lineage.toml) is missing",
        e.join("log.key").display()
    );
    let out = lineage(
        e,
        &db.url,
        &["service", "add", "web", "--owner", "ana@acme.dev"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&expected), "{err}");
    let err = serve_refused(e, &db.url);
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(psql(&db.url, "SELECT count(*) FROM entries"), before);
    assert!(!e.join("log.key").exists());
}
