//! The store story: one suite of behaviour every backend must pass. Each test takes a fresh
//! store from `backends()`, so adding a backend means adding one line there.
//!
//! PostgreSQL is the server `LINEAGE_TEST_PG` names. Without it the suite runs on SQLite
//! alone and says so, except under `cargo xtask test` or `CI=true`, where a missing server
//! fails the suite: CI never leaves a backend out.

use lineage_model::{
    BaseImage, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record, Repository,
    Service, ServiceChange, ServiceName, Tag, Timestamp,
};
use lineage_store::{BaseFilter, BuildOutcome, DigestRole, Store, StoreError, StoreLocation};

/// Fresh stores of every backend, with a guard that keeps their files (or database) alive.
fn backends() -> Vec<(&'static str, Box<dyn Store>, Guard)> {
    locations()
        .into_iter()
        .map(|(name, location, guard)| {
            let store = lineage_store::open(&location, true)
                .unwrap_or_else(|e| panic!("{name}: cannot open a fresh store: {e}"));
            (name, store, guard)
        })
        .collect()
}

/// Fresh, empty ledger locations of every backend: SQLite first, then PostgreSQL when a
/// server is configured.
fn locations() -> Vec<(&'static str, StoreLocation, Guard)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = StoreLocation::Sqlite(dir.path().join("ledger.db"));
    let mut out = vec![("sqlite", sqlite, Guard::Dir(dir))];
    if let Some(db) = pg::fresh_database() {
        let postgres = StoreLocation::parse(&db.url).unwrap();
        out.push(("postgres", postgres, Guard::Db(db)));
    }
    out
}

/// Keeps a backend's storage alive for a test, and removes it afterwards.
#[allow(dead_code)]
enum Guard {
    Dir(tempfile::TempDir),
    Db(pg::TestDb),
}

/// PostgreSQL test databases: one fresh database per use, on the server `LINEAGE_TEST_PG`
/// points at (`cargo xtask test` sets it), named after that database plus a suffix.
mod pg {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    pub struct TestDb {
        pub url: String,
        pub name: String,
        pub admin: String,
    }

    /// The server's URL, or `None` when none is configured and none is required: then the
    /// suite runs on SQLite alone. `cargo xtask test` sets `LINEAGE_TEST_REQUIRE_PG`, and CI
    /// sets `CI=true`; under either, a missing server fails the test rather than skip it.
    pub fn admin_url() -> Option<String> {
        if let Some(url) = std::env::var("LINEAGE_TEST_PG")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Some(url);
        }
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var_os("LINEAGE_TEST_REQUIRE_PG").is_some();
        assert!(
            !required,
            "LINEAGE_TEST_PG is not set, and under CI or `cargo xtask test` the store suite \
             must run on PostgreSQL too. Run `cargo xtask test` (it starts a server), or create \
             a database and export LINEAGE_TEST_PG=postgres://postgres@127.0.0.1:5432/lineage_dev"
        );
        static TOLD: AtomicBool = AtomicBool::new(false);
        if !TOLD.swap(true, Ordering::SeqCst) {
            // Past the test harness's capture, so that a passing run says it too.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: LINEAGE_TEST_PG is not set: the store suite runs on SQLite alone \
                 (`cargo xtask test` runs it on PostgreSQL too)"
            );
        }
        None
    }

    /// `url` with its database replaced by `name`.
    pub fn with_database(url: &str, name: &str) -> String {
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

    pub fn client(url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
    }

    /// A fresh database on the configured server, or `None` when none is configured (see
    /// [`admin_url`]).
    pub fn fresh_database() -> Option<TestDb> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = admin_url()?;
        let base = lineage_store::PgLocation::parse(&admin).unwrap().database();
        let name = format!(
            "{base}_s{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        client(&admin)
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        Some(TestDb {
            url: with_database(&admin, &name),
            name,
            admin,
        })
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            // FORCE: this process's connection pool may still hold connections to it.
            let _ = client(&self.admin).batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn digest(label: &str) -> Digest {
    use std::fmt::Write;
    // A deterministic, well-formed digest per label.
    let mut hex = String::new();
    for (i, b) in label.bytes().cycle().take(32).enumerate() {
        let _ = write!(hex, "{:02x}", b.wrapping_add(i as u8));
    }
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

fn service(name: &str, owner: &str) -> Service {
    Service {
        name: ServiceName::parse(name).unwrap(),
        owner: Some(id(owner)),
        backup_owner: None,
        emergency_approver: None,
        source_repo: None,
        images: vec![Repository::parse(&format!("ghcr.io/acme/{name}")).unwrap()],
    }
}

fn build(name: &str, label: &str, base: &str, base_label: &str) -> BuildRecord {
    let base = lineage_model::ImageRef::parse(base).unwrap();
    BuildRecord {
        service: ServiceName::parse(name).unwrap(),
        image: Repository::parse(&format!("ghcr.io/acme/{name}")).unwrap(),
        digest: digest(label),
        tags: vec![Tag::parse(label).unwrap()],
        bases: vec![BaseImage {
            name: base.repository,
            tag: base.tag,
            digest: Some(digest(base_label)),
            pulled_at: None,
            final_stage: true,
        }],
        source_repo: None,
        git_ref: Some("main".into()),
        commit: Some(CommitId::parse(&"a".repeat(40)).unwrap()),
        started_at: None,
        finished_at: Some(t("2026-11-01T10:00:00Z")),
        ci: None,
        builder: None,
        platform: None,
        dockerfile: None,
    }
}

fn deploy(name: &str, label: &str, env: &str, at: &str) -> DeployRecord {
    DeployRecord {
        config: Vec::new(),
        service: ServiceName::parse(name).unwrap(),
        image: Repository::parse(&format!("ghcr.io/acme/{name}")).unwrap(),
        digest: digest(label),
        env: EnvName::parse(env).unwrap(),
        by: id("jonas@acme.dev"),
        approved_by: Some(id("maya@acme.dev")),
        ticket: None,
        at: t(at),
        rollback: false,
    }
}

fn seed(store: &mut dyn Store) {
    let at = t("2026-11-01T09:00:00Z");
    for (name, owner) in [("api", "priya@acme.dev"), ("web", "ana@acme.dev")] {
        let change = ServiceChange {
            service: service(name, owner),
            by: id("maya@acme.dev"),
            at,
        };
        store.record_service_change(&change, at).unwrap();
    }
}

#[test]
fn services_and_history() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let api = ServiceName::parse("api").unwrap();
        assert_eq!(
            store.service(&api).unwrap().unwrap().owner,
            Some(id("priya@acme.dev")),
            "{backend}"
        );
        let mut changed = service("api", "sam@acme.dev");
        changed.backup_owner = Some(id("lee@acme.dev"));
        let at = t("2026-11-05T09:00:00Z");
        store
            .record_service_change(
                &ServiceChange {
                    service: changed.clone(),
                    by: id("maya@acme.dev"),
                    at,
                },
                at,
            )
            .unwrap();
        assert_eq!(store.service(&api).unwrap().unwrap(), changed, "{backend}");
        let history = store.service_history(&api).unwrap();
        assert_eq!(history.len(), 2, "{backend}");
        assert_eq!(
            history[0].service.owner,
            Some(id("priya@acme.dev")),
            "{backend}"
        );
        assert_eq!(
            history[1].service.owner,
            Some(id("sam@acme.dev")),
            "{backend}"
        );
        let names: Vec<String> = store
            .services()
            .unwrap()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["api", "web"], "{backend}");
        assert_eq!(
            store
                .service_for_image(&Repository::parse("ghcr.io/acme/web").unwrap())
                .unwrap(),
            Some(ServiceName::parse("web").unwrap()),
            "{backend}"
        );
        assert_eq!(
            store
                .service_for_image(&Repository::parse("ghcr.io/acme/x").unwrap())
                .unwrap(),
            None
        );
    }
}

#[test]
fn builds_are_idempotent_and_conflicts_are_reported() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        let b = build("api", "a1", "python:3.12-slim", "py1");
        let first = store
            .record_builds(std::slice::from_ref(&b), at, None)
            .unwrap();
        assert_eq!(
            first,
            vec![BuildOutcome::Recorded { index: 2 }],
            "{backend}"
        );
        let again = store
            .record_builds(std::slice::from_ref(&b), at, None)
            .unwrap();
        assert_eq!(
            again,
            vec![BuildOutcome::AlreadyRecorded { index: 2 }],
            "{backend}"
        );
        let mut other = b.clone();
        other.git_ref = Some("hotfix".into());
        match &store.record_builds(&[other], at, None).unwrap()[0] {
            BuildOutcome::Conflict { existing } => assert_eq!(**existing, b, "{backend}"),
            o => panic!("{backend}: expected a conflict, got {o:?}"),
        }
        assert_eq!(
            store.len().unwrap(),
            3,
            "{backend}: a conflict writes nothing"
        );
        assert_eq!(
            store.build(&b.digest).unwrap(),
            Some(b.clone()),
            "{backend}"
        );
        let tag = Tag::parse("a1").unwrap();
        assert_eq!(
            store.build_by_tag(&b.image, &tag).unwrap(),
            Some(b),
            "{backend}"
        );
    }
}

#[test]
fn current_state_follows_deploy_time_not_record_order() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        store
            .record_builds(
                &[
                    build("api", "a1", "python:3.12-slim", "py1"),
                    build("api", "a2", "python:3.12-slim", "py2"),
                ],
                at,
                None,
            )
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a2", "production", "2026-11-03T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        // Recorded later, but happened earlier: must not displace a2.
        store
            .record_deploys(
                &[deploy("api", "a1", "production", "2026-11-02T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a1", "staging", "2026-11-02T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        let prod = EnvName::parse("production").unwrap();
        let running = store.running(Some(&prod), None).unwrap();
        assert_eq!(running.len(), 1, "{backend}");
        assert_eq!(running[0].deploy.digest, digest("a2"), "{backend}");
        assert!(running[0].build.is_some(), "{backend}");
        assert_eq!(store.running(None, None).unwrap().len(), 2, "{backend}");
        let web = ServiceName::parse("web").unwrap();
        assert!(
            store.running(None, Some(&web)).unwrap().is_empty(),
            "{backend}"
        );
        let history = store.deploys_of_digest(&digest("a1")).unwrap();
        assert_eq!(history.len(), 2, "{backend}");
    }
}

#[test]
fn base_queries() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        store
            .record_builds(
                &[
                    build("api", "a1", "python:3.12-slim", "py1"),
                    build("api", "a2", "python:3.12-slim", "py2"),
                    build("api", "a3", "python:3.12-slim", "py2"),
                    build("web", "w1", "nginx:1.27", "ng1"),
                ],
                at,
                None,
            )
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a2", "production", "2026-11-03T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        store
            .record_deploys(
                &[deploy("web", "w1", "production", "2026-11-03T10:00:00Z")],
                at,
                None,
            )
            .unwrap();

        let by_digest = BaseFilter::Digest(digest("py2"));
        let usage = store.base_usage(&by_digest).unwrap();
        assert_eq!(usage.len(), 1, "{backend}");
        assert_eq!(
            (usage[0].builds, usage[0].latest_build.digest.clone()),
            (2, digest("a3")),
            "{backend}"
        );
        let running = store.running_on_base(&by_digest).unwrap();
        assert_eq!(running.len(), 1, "{backend}");
        assert_eq!(running[0].deploy.digest, digest("a2"), "{backend}");
        assert!(
            store
                .running_on_base(&BaseFilter::Digest(digest("py1")))
                .unwrap()
                .is_empty(),
            "{backend}"
        );

        let by_name = BaseFilter::Name {
            name: Repository::parse("python").unwrap(),
            tag: None,
        };
        let usage = store.base_usage(&by_name).unwrap();
        assert_eq!(usage.len(), 1, "{backend}: one row per service");
        assert_eq!((usage[0].builds, usage[0].bases.len()), (3, 2), "{backend}");
        assert_eq!(usage[0].latest_build.digest, digest("a3"), "{backend}");
        let by_tag = BaseFilter::Name {
            name: Repository::parse("python").unwrap(),
            tag: Some(Tag::parse("3.11").unwrap()),
        };
        assert!(store.base_usage(&by_tag).unwrap().is_empty(), "{backend}");
        assert_eq!(
            store.running_on_base(&by_name).unwrap().len(),
            1,
            "{backend}"
        );
    }
}

/// The gates' lookups: per base tag, when builds first and last used each digest; the
/// services built from a commit; each service's newest CI job. Kept as builds are recorded,
/// and filled from the builds of a ledger made before the tables existed.
#[test]
fn build_lookups_are_kept_and_filled_on_upgrade() {
    for (backend, location, _guard) in locations() {
        let mut store = lineage_store::open(&location, true).unwrap();
        seed(store.as_mut());
        let pulled = |mut b: BuildRecord, at: &str| {
            b.bases[0].pulled_at = Some(t(at));
            b
        };
        let repo = lineage_model::SourceRepo::parse("https://github.com/acme/app").unwrap();
        let from_ci = |mut b: BuildRecord, job: &str| {
            b.source_repo = Some(repo.clone());
            b.ci = Some(lineage_model::CiRun {
                system: "github-actions".into(),
                job: Some(job.into()),
                run_id: None,
                url: None,
            });
            b
        };
        let builds = [
            // No pull time: the build's finish time (2026-11-01T10:00:00Z) counts.
            from_ci(build("api", "a1", "python:3.12-slim", "py1"), "old"),
            from_ci(
                pulled(
                    build("api", "a2", "python:3.12-slim", "py2"),
                    "2026-11-05T00:00:00Z",
                ),
                "release",
            ),
            pulled(
                build("web", "w2", "python:3.12-slim", "py2"),
                "2026-11-02T00:00:00Z",
            ),
            build("web", "w1", "nginx:1.27", "ng1"),
            // Another tag of the same repository is another history.
            build("web", "w3", "python:3.13", "py3"),
        ];
        for b in &builds {
            store
                .record_builds(std::slice::from_ref(b), t("2026-11-06T00:00:00Z"), None)
                .unwrap();
        }
        let python = Repository::parse("python").unwrap();
        let slim = Tag::parse("3.12-slim").unwrap();
        let expected = vec![
            (
                digest("py1"),
                t("2026-11-01T10:00:00Z"),
                t("2026-11-01T10:00:00Z"),
            ),
            (
                digest("py2"),
                t("2026-11-02T00:00:00Z"),
                t("2026-11-05T00:00:00Z"),
            ),
        ];
        let uses = |store: &dyn Store| -> Vec<(Digest, Timestamp, Timestamp)> {
            store
                .base_tag_uses(&python, &slim)
                .unwrap()
                .into_iter()
                .map(|u| (u.digest, u.first_used, u.last_used))
                .collect()
        };
        // api is registered from `repo`; its newest build names job `release`, web's none.
        let mut api = service("api", "priya@acme.dev");
        api.source_repo = Some(repo.clone());
        let change = ServiceChange {
            service: api,
            by: id("maya@acme.dev"),
            at: t("2026-11-06T00:00:00Z"),
        };
        store
            .record_service_change(&change, t("2026-11-06T00:00:00Z"))
            .unwrap();
        let lookups = |store: &dyn Store| {
            let commit = CommitId::parse(&"a".repeat(40)).unwrap();
            (
                store.services_built_from(&repo, &commit).unwrap(),
                store.other_ci_jobs("nobody").unwrap(),
                store.other_ci_jobs("web").unwrap(),
                store.services_with_repo(&repo).unwrap(),
                store
                    .builds_from(&ServiceName::parse("api").unwrap(), &repo, &commit)
                    .unwrap()
                    .into_iter()
                    .map(|b| b.digest)
                    .collect::<Vec<_>>(),
            )
        };
        let expected_lookups = (
            vec![ServiceName::parse("api").unwrap()],
            Some((None, Some("release".to_string()))),
            Some((Some("release".to_string()), Some("release".to_string()))),
            vec![ServiceName::parse("api").unwrap()],
            vec![digest("a2"), digest("a1")],
        );
        assert_eq!(uses(store.as_ref()), expected, "{backend}");
        assert_eq!(lookups(store.as_ref()), expected_lookups, "{backend}");
        let tags: Vec<String> = store
            .base_tags()
            .unwrap()
            .iter()
            .map(|(n, t)| format!("{n}:{t}"))
            .collect();
        assert_eq!(
            tags,
            [
                "docker.io/library/nginx:1.27",
                "docker.io/library/python:3.12-slim",
                "docker.io/library/python:3.13"
            ],
            "{backend}"
        );
        assert!(store.check_projections(10).unwrap().is_empty(), "{backend}");
        drop(store);
        // Back to the schema before the table; opening migrates and fills it again.
        match &location {
            StoreLocation::Sqlite(path) => rusqlite_open(path)
                .execute_batch(
                    "DROP TABLE base_tag_digests; DROP TABLE build_commits;
                     DROP TABLE service_latest_build; DROP TABLE service_repos;
                     PRAGMA user_version = 6;",
                )
                .unwrap(),
            StoreLocation::Postgres(_) => {
                let Guard::Db(db) = &_guard else {
                    unreachable!()
                };
                pg::client(&db.url)
                    .batch_execute(
                        "DROP TABLE base_tag_digests; DROP TABLE build_commits;
                         DROP TABLE service_latest_build; DROP TABLE service_repos;
                         UPDATE lineage_meta SET value = '5' WHERE key = 'schema_version'",
                    )
                    .unwrap();
            }
        }
        let store = lineage_store::open(&location, false).unwrap();
        assert_eq!(uses(store.as_ref()), expected, "{backend} after upgrade");
        assert_eq!(
            lookups(store.as_ref()),
            expected_lookups,
            "{backend} after upgrade"
        );
    }
}

/// Group commit (issue 22): on SQLite, the writes between `begin_group` and `commit_group`
/// become visible and durable together, a failed write is left out alone, and a rolled-back
/// group leaves nothing (the log goes on where it was). PostgreSQL has no groups: each write
/// is durable at once, and the calls change nothing.
#[test]
fn a_group_commits_its_writes_together_and_leaves_a_failed_one_out() {
    for (backend, location, _guard) in locations() {
        let mut store = lineage_store::open(&location, true).unwrap();
        seed(store.as_mut());
        let other = lineage_store::open(&location, false).unwrap();
        // The ledger's size before the group; on SQLite it grows by the kept step below.
        let mut before = store.len().unwrap();
        let at = t("2026-11-01T10:00:00Z");
        let a = build("api", "a1", "python:3.12-slim", "py1");
        store.begin_group().unwrap();
        store
            .record_builds(std::slice::from_ref(&a), at, None)
            .unwrap();
        // A build recorded twice in one call fails and writes nothing; the group goes on.
        assert!(store
            .append(
                &[
                    Record::Build(build("web", "w9", "nginx:1.27", "ng1")),
                    Record::Build(a.clone())
                ],
                at,
                None
            )
            .is_err());
        store
            .record_builds(&[build("web", "w1", "nginx:1.27", "ng1")], at, None)
            .unwrap();
        if backend == "sqlite" {
            // A step (one request) that is not kept leaves none of its writes; one that is
            // kept stays in the group.
            for (label, keep) in [("w8", false), ("w7", true)] {
                store.begin_step().unwrap();
                store
                    .record_builds(&[build("web", label, "nginx:1.27", "ng1")], at, None)
                    .unwrap();
                store.end_step(keep).unwrap();
            }
            assert!(store.build(&digest("w8")).unwrap().is_none(), "{backend}");
            assert!(store.build(&digest("w7")).unwrap().is_some(), "{backend}");
            before += 1;
        }
        assert_eq!(
            store.len().unwrap(),
            before + 2,
            "{backend}: the group reads itself"
        );
        let grouped = backend == "sqlite";
        let seen_early = other.len().unwrap();
        assert_eq!(
            seen_early,
            if grouped { before - 1 } else { before + 2 },
            "{backend}: others see the group at its commit"
        );
        store.commit_group().unwrap();
        assert_eq!(other.len().unwrap(), before + 2, "{backend}");
        assert_eq!(
            other.log_head().unwrap(),
            store.log_head().unwrap(),
            "{backend}"
        );

        store.begin_group().unwrap();
        store
            .record_builds(&[build("web", "w2", "nginx:1.27", "ng1")], at, None)
            .unwrap();
        store.rollback_group();
        let kept = if grouped { before + 2 } else { before + 3 };
        assert_eq!(store.len().unwrap(), kept, "{backend}");
        assert_eq!(other.len().unwrap(), kept, "{backend}");
        // The next write appends where the log is, and the log and projections agree.
        store
            .record_builds(&[build("web", "w3", "nginx:1.27", "ng1")], at, None)
            .unwrap();
        assert_eq!(store.log_head().unwrap().size, kept + 1, "{backend}");
        assert_eq!(
            other.log_head().unwrap(),
            store.log_head().unwrap(),
            "{backend}"
        );
        assert!(store.check_projections(10).unwrap().is_empty(), "{backend}");
        if grouped {
            assert!(store.build(&digest("w2")).unwrap().is_none(), "{backend}");
        }
    }
}

/// The batched reads (one query each on PostgreSQL) answer what the one-at-a-time reads
/// answer, on every backend.
#[test]
fn batched_reads_answer_like_one_at_a_time() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        store
            .record_builds(
                &[
                    build("api", "a1", "python:3.12-slim", "py1"),
                    build("web", "w1", "nginx:1.27", "ng1"),
                ],
                at,
                None,
            )
            .unwrap();
        for (name, label, env) in [
            ("api", "a1", "production"),
            ("web", "w1", "staging"),
            ("api", "a1", "staging"),
        ] {
            store
                .record_deploys(
                    &[deploy(name, label, env, "2026-11-03T10:00:00Z")],
                    at,
                    None,
                )
                .unwrap();
        }
        let retire = |label: &str| {
            Record::Retire(lineage_model::Retirement {
                digest: digest(label),
                reason: format!("retired {label}"),
                by: id("maya@acme.dev"),
                at,
            })
        };
        store
            .record_facts(&[retire("a1"), retire("w1"), retire("a1")], at, None)
            .unwrap();
        let names: Vec<ServiceName> = ["web", "api", "nobody", "api"]
            .iter()
            .map(|n| ServiceName::parse(n).unwrap())
            .collect();
        let one_by_one: Vec<Service> = {
            let mut v: Vec<Service> = ["api", "web"]
                .iter()
                .filter_map(|n| store.service(&ServiceName::parse(n).unwrap()).unwrap())
                .collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        assert_eq!(
            store.services_named(&names).unwrap(),
            one_by_one,
            "{backend}"
        );
        let images: Vec<Repository> = ["ghcr.io/acme/api", "ghcr.io/acme/web", "ghcr.io/acme/none"]
            .iter()
            .map(|i| Repository::parse(i).unwrap())
            .collect();
        let mut owners = store.services_for_images(&images).unwrap();
        owners.sort();
        let mut expected: Vec<(Repository, ServiceName)> = images
            .iter()
            .filter_map(|i| Some((i.clone(), store.service_for_image(i).unwrap()?)))
            .collect();
        expected.sort();
        assert_eq!(owners, expected, "{backend}");
        assert_eq!(owners.len(), 2, "{backend}");
        let mut running = Vec::new();
        for n in ["api", "web"] {
            running.extend(
                store
                    .running(None, Some(&ServiceName::parse(n).unwrap()))
                    .unwrap(),
            );
        }
        assert_eq!(store.running_of(&names).unwrap(), running, "{backend}");
        assert_eq!(running.len(), 3, "{backend}");
        let keys = vec![digest("w1").to_string(), digest("a1").to_string()];
        let mut each: Vec<u64> = keys
            .iter()
            .flat_map(|k| store.facts("retire", Some(k)).unwrap())
            .map(|e| e.index)
            .collect();
        each.sort();
        let batched: Vec<u64> = store
            .facts_of("retire", &keys)
            .unwrap()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(batched, each, "{backend}: oldest first");
        assert_eq!(batched.len(), 3, "{backend}");
    }
}

#[test]
fn journal_holds_every_record_in_order() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        store
            .record_builds(
                &[build("api", "a1", "python:3.12-slim", "py1")],
                at,
                Some(&id("sa:ci")),
            )
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a1", "dev", "2026-11-02T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        let entries = store.entries(0, 100).unwrap();
        let kinds: Vec<&str> = entries.iter().map(|e| e.record.kind()).collect();
        assert_eq!(
            kinds,
            ["service", "service", "build", "deploy"],
            "{backend}"
        );
        assert_eq!(
            entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "{backend}"
        );
        assert_eq!(entries[2].recorded_by, Some(id("sa:ci")), "{backend}");
        // The body is the canonical form of the record.
        assert_eq!(
            entries[2].body,
            lineage_model::canonical_json(&entries[2].record),
            "{backend}"
        );
        assert!(matches!(entries[3].record, Record::Deploy(_)), "{backend}");
        assert_eq!(store.entries(1, 2).unwrap().len(), 1, "{backend}");
    }
}

#[test]
fn recorded_times_never_go_backwards() {
    for (backend, mut store, _guard) in backends() {
        // seed: two service changes recorded at 09:00.
        seed(store.as_mut());
        let head = store.log_head().unwrap();
        let last = t("2026-11-01T09:00:00Z");

        // A day behind the last entry: refused, naming both times, and nothing is written, on
        // every write method.
        let behind = t("2026-10-31T09:00:00Z");
        let refused = |r: Result<(), StoreError>| match r {
            Err(StoreError::RecordedBeforeLast { given, last: l }) => {
                assert_eq!((given, l), (behind, last), "{backend}")
            }
            other => panic!("{backend}: {other:?}"),
        };
        refused(
            store
                .record_builds(
                    &[build("api", "b1", "python:3.12-slim", "py1")],
                    behind,
                    None,
                )
                .map(drop),
        );
        refused(
            store
                .record_deploys(
                    &[deploy("api", "b1", "dev", "2026-10-31T09:00:00Z")],
                    behind,
                    None,
                )
                .map(drop),
        );
        let change = ServiceChange {
            service: service("late", "priya@acme.dev"),
            by: id("maya@acme.dev"),
            at: behind,
        };
        refused(store.record_service_change(&change, behind).map(drop));
        let retire = Record::Retire(lineage_model::Retirement {
            digest: digest("b1"),
            reason: "withdrawn".into(),
            by: id("maya@acme.dev"),
            at: behind,
        });
        refused(
            store
                .record_facts(std::slice::from_ref(&retire), behind, None)
                .map(drop),
        );
        assert_eq!(store.log_head().unwrap(), head, "{backend}");
        assert_eq!(store.len().unwrap(), 2, "{backend}");
        assert_eq!(store.build(&digest("b1")).unwrap(), None, "{backend}");
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
        let err = store
            .record_facts(std::slice::from_ref(&retire), behind, None)
            .unwrap_err();
        assert!(
            err.to_string().contains("`2026-10-31T09:00:00Z`")
                && err.to_string().contains("`2026-11-01T09:00:00Z`"),
            "{backend}: {err}"
        );

        // The same time as the last entry is fine.
        let i = store
            .record_facts(std::slice::from_ref(&retire), last, None)
            .unwrap()[0];
        assert_eq!(
            store.entries(i, i + 1).unwrap()[0].recorded_at,
            last,
            "{backend}"
        );

        // A clock up to CLOCK_SKEW_TOLERANCE_SECS behind (another replica's) is recorded at
        // the last entry's time; one second further is refused.
        let tolerance = lineage_store::CLOCK_SKEW_TOLERANCE_SECS;
        let skewed = t("2026-11-01T08:59:58Z");
        assert_eq!(tolerance, 2, "{backend}: the times below assume 2 s");
        let i = store
            .record_builds(
                &[build("api", "b2", "python:3.12-slim", "py1")],
                skewed,
                None,
            )
            .unwrap();
        let BuildOutcome::Recorded { index } = i[0] else {
            panic!("{backend}: {i:?}")
        };
        assert_eq!(
            store.entries(index, index + 1).unwrap()[0].recorded_at,
            last,
            "{backend}"
        );
        assert!(
            matches!(
                store.record_facts(
                    std::slice::from_ref(&retire),
                    t("2026-11-01T08:59:57Z"),
                    None
                ),
                Err(StoreError::RecordedBeforeLast { .. })
            ),
            "{backend}"
        );

        // Re-recording an identical build writes nothing, so its time does not matter.
        let again = store
            .record_builds(
                &[build("api", "b2", "python:3.12-slim", "py1")],
                behind,
                None,
            )
            .unwrap();
        assert!(
            matches!(again[0], BuildOutcome::AlreadyRecorded { .. }),
            "{backend}"
        );

        // Later writes go on as usual.
        store
            .record_facts(&[retire], t("2026-11-02T09:00:00Z"), None)
            .unwrap();
        assert_eq!(store.len().unwrap(), 5, "{backend}");
    }
}

#[test]
fn records_survive_reopening() {
    for (backend, location, _guard) in locations() {
        {
            let mut store = lineage_store::open(&location, true).unwrap();
            seed(store.as_mut());
        }
        let store = lineage_store::open(&location, false).unwrap();
        assert_eq!(store.len().unwrap(), 2, "{backend}");
    }
}

#[test]
fn refuses_foreign_and_newer_files_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = StoreLocation::Sqlite(dir.path().join("none.db"));
    assert!(matches!(
        lineage_store::open(&missing, false),
        Err(StoreError::Missing(_))
    ));
    assert!(
        !dir.path().join("none.db").exists(),
        "a failed open creates nothing"
    );

    let text = dir.path().join("notes.db");
    std::fs::write(&text, "these are my notes, not a database\n".repeat(200)).unwrap();
    let before = std::fs::read(&text).unwrap();
    let err = lineage_store::open(&StoreLocation::Sqlite(text.clone()), true)
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotLineage { .. }), "{err}");
    assert_eq!(std::fs::read(&text).unwrap(), before);

    let other = dir.path().join("other.db");
    let conn = rusqlite_open(&other);
    conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&other).unwrap();
    let err = lineage_store::open(&StoreLocation::Sqlite(other.clone()), true)
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotLineage { .. }), "{err}");
    assert_eq!(std::fs::read(&other).unwrap(), before);

    let newer = dir.path().join("newer.db");
    drop(lineage_store::open(&StoreLocation::Sqlite(newer.clone()), true).unwrap());
    rusqlite_open(&newer)
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let before = std::fs::read(&newer).unwrap();
    let err = lineage_store::open(&StoreLocation::Sqlite(newer.clone()), true)
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&newer).unwrap(), before);
}

fn rusqlite_open(path: &std::path::Path) -> lineage_store::RawConnection {
    lineage_store::raw_connection(path).unwrap()
}

/// Runs `sql` on a ledger's database directly, behind the store's back.
fn behind_the_ledger(location: &StoreLocation, guard: &Guard, sql: &str) {
    match (location, guard) {
        (StoreLocation::Sqlite(path), _) => rusqlite_open(path).execute_batch(sql).unwrap(),
        (_, Guard::Db(db)) => pg::client(&db.url).batch_execute(sql).unwrap(),
        _ => unreachable!("a PostgreSQL ledger has a database guard"),
    }
}

// ---------------------------------------------------------------------------------------------
// The Merkle log (RFC 6962 / RFC 9162) kept beside the journal.
// ---------------------------------------------------------------------------------------------

/// A ledger with services, a batch of builds and a batch of deploys: 2 + 5 + 3 entries.
fn seed_log(store: &mut dyn Store) {
    seed(store);
    let at = t("2026-11-01T10:00:00Z");
    let builds: Vec<BuildRecord> = (0..5)
        .map(|i| build("api", &format!("b{i}"), "python:3.12-slim", "py1"))
        .collect();
    store.record_builds(&builds, at, None).unwrap();
    let deploys: Vec<DeployRecord> = (0..3)
        .map(|i| {
            deploy(
                "api",
                &format!("b{i}"),
                "dev",
                &format!("2026-11-0{}T10:00:00Z", i + 2),
            )
        })
        .collect();
    store.record_deploys(&deploys, at, None).unwrap();
}

fn memory_log(store: &dyn Store) -> lineage_log::merkle::MemoryHashStore {
    let mut log = lineage_log::merkle::MemoryHashStore::new();
    for e in store.entries(0, u64::MAX >> 1).unwrap() {
        log.append(e.body.as_bytes());
    }
    log
}

#[test]
fn every_entry_is_a_log_leaf_over_its_canonical_bytes() {
    for (backend, mut store, _guard) in backends() {
        assert_eq!(store.log_head().unwrap().size, 0, "{backend}");
        assert_eq!(
            store.log_head().unwrap().root,
            lineage_log::merkle::empty_root(),
            "{backend}"
        );
        seed_log(store.as_mut());
        let expected = memory_log(store.as_ref());
        let head = store.log_head().unwrap();
        assert_eq!(head.size, 10, "{backend}");
        assert_eq!(head.root, expected.root(), "{backend}");
        assert_eq!(store.log_hashes().unwrap(), expected.hashes(), "{backend}");
        for size in 1..=head.size {
            assert_eq!(
                store.log_root(size).unwrap(),
                lineage_log::merkle::tree_hash(size, &expected).unwrap(),
                "{backend} size {size}"
            );
        }
    }
}

#[test]
fn log_proofs_verify_against_the_roots() {
    use lineage_log::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    for (backend, mut store, _guard) in backends() {
        seed_log(store.as_mut());
        let bodies: Vec<String> = store
            .entries(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.body)
            .collect();
        let n = store.log_head().unwrap().size;
        for size in 1..=n {
            let root = store.log_root(size).unwrap();
            for index in 0..size {
                let proof = store.inclusion_proof(index, size).unwrap();
                let leaf = leaf_hash(bodies[index as usize].as_bytes());
                verify_inclusion(&leaf, index, size, &proof, &root)
                    .unwrap_or_else(|e| panic!("{backend} {index}/{size}: {e}"));
                // The proof is for that leaf only.
                let other = leaf_hash(bodies[(index as usize + 1) % bodies.len()].as_bytes());
                assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
            }
            for old in 1..=size {
                let proof = store.consistency_proof(old, size).unwrap();
                let old_root = store.log_root(old).unwrap();
                verify_consistency(old, size, &proof, &old_root, &root)
                    .unwrap_or_else(|e| panic!("{backend} {old}->{size}: {e}"));
            }
        }
        assert!(store.inclusion_proof(0, n + 1).is_err(), "{backend}");
    }
}

#[test]
fn the_log_survives_reopening_and_follows_other_writers() {
    for (backend, location, _guard) in locations() {
        let mut a = lineage_store::open(&location, true).unwrap();
        let mut b = lineage_store::open(&location, false).unwrap();
        seed(a.as_mut());
        // `b` opened before `a` wrote; its next append must still land at the right leaf.
        let at = t("2026-11-01T10:00:00Z");
        b.record_builds(&[build("api", "x1", "python:3.12-slim", "py1")], at, None)
            .unwrap();
        a.record_builds(&[build("api", "x2", "python:3.12-slim", "py1")], at, None)
            .unwrap();
        drop((a, b));
        let store = lineage_store::open(&location, false).unwrap();
        let head = store.log_head().unwrap();
        assert_eq!(head.size, 4, "{backend}");
        assert_eq!(head.root, memory_log(store.as_ref()).root(), "{backend}");
    }
}

#[test]
fn checkpoints_are_kept_by_size() {
    for (backend, mut store, _guard) in backends() {
        assert_eq!(store.latest_checkpoint().unwrap(), None, "{backend}");
        let at = t("2026-11-01T10:00:00Z");
        store.save_checkpoint(2, "two\n", at).unwrap();
        store.save_checkpoint(5, "five\n", at).unwrap();
        store.save_checkpoint(3, "three\n", at).unwrap();
        // Saving a size twice keeps the first: a signed checkpoint is never replaced.
        store.save_checkpoint(5, "other\n", at).unwrap();
        let latest = store.latest_checkpoint().unwrap().unwrap();
        assert_eq!(
            (latest.size, latest.text.as_str()),
            (5, "five\n"),
            "{backend}"
        );
        assert_eq!(store.checkpoint(3).unwrap().unwrap().text, "three\n");
        assert_eq!(store.checkpoint(4).unwrap(), None, "{backend}");
        let sizes: Vec<u64> = store
            .checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, [2, 3, 5], "{backend}");
    }
}

#[test]
fn projections_are_checked_against_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let location = StoreLocation::Sqlite(path.clone());
    let mut store = lineage_store::open(&location, true).unwrap();
    seed_log(store.as_mut());
    assert_eq!(store.check_projections(10).unwrap(), vec![]);
    drop(store);
    // Point a deploy row at another environment, behind the store's back.
    rusqlite_open(&path)
        .execute_batch("UPDATE deploys SET env = 'production' WHERE entry = 9")
        .unwrap();
    let store = lineage_store::open(&location, false).unwrap();
    let found = store.check_projections(10).unwrap();
    assert!(!found.is_empty());
    assert_eq!(found[0].table, "deploys");
    assert_eq!(found[0].entry, Some(8), "{found:?}");
}

#[test]
fn a_pre_log_ledger_is_hashed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let location = StoreLocation::Sqlite(path.clone());
    let mut store = lineage_store::open(&location, true).unwrap();
    seed_log(store.as_mut());
    let before = store.log_head().unwrap();
    drop(store);
    // Turn the file back into a version-1 ledger.
    rusqlite_open(&path)
        .execute_batch("DROP TABLE facts; DROP TABLE log_hashes; DROP TABLE checkpoints; DROP TABLE placement_ends; DROP TABLE observation_sources; DROP TABLE observation_envs; DROP TABLE observations; PRAGMA user_version = 1;")
        .unwrap();
    // Tables of later versions go too.
    rusqlite_open(&path)
        .execute_batch(
            "DROP TABLE sbom_findings; DROP TABLE sbom_packages; DROP TABLE sbom_imports; DROP INDEX deploys_by_service; DROP INDEX service_images_by_service; DROP TABLE base_tag_digests; DROP TABLE build_commits; DROP TABLE service_latest_build; DROP TABLE service_repos;",
        )
        .unwrap();
    let store = lineage_store::open(&location, false).unwrap();
    assert_eq!(store.log_head().unwrap(), before);
}

#[test]
fn writes_are_refused_when_the_journal_and_log_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let location = StoreLocation::Sqlite(path.clone());
    let mut store = lineage_store::open(&location, true).unwrap();
    seed(store.as_mut());
    drop(store);
    rusqlite_open(&path)
        .execute_batch(
            "INSERT INTO entries (kind, body, recorded_at) SELECT kind, body, recorded_at FROM entries WHERE idx = 1",
        )
        .unwrap();
    let mut store = lineage_store::open(&location, false).unwrap();
    let err = store
        .record_builds(
            &[build("api", "z", "python:3.12-slim", "py1")],
            t("2026-11-01T10:00:00Z"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::LogMismatch(_)), "{err}");
    assert_eq!(store.len().unwrap(), 3, "nothing was written");
}

#[test]
fn facts_are_filed_by_key_and_logged() {
    use lineage_model::{Exception, Retirement};
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-02T10:00:00Z");
        let exception = Record::Exception(Exception {
            rule: "B003".into(),
            service: "api".into(),
            reason: "base digest comes from the vendor next week".into(),
            approved_by: id("maya@acme.dev"),
            expires: t("2026-12-01T00:00:00Z"),
            by: id("priya@acme.dev"),
            at,
        });
        let retire = Record::Retire(Retirement {
            digest: digest("a1"),
            reason: "CVE".into(),
            by: id("maya@acme.dev"),
            at,
        });
        let indexes = store
            .record_facts(&[exception.clone(), retire.clone()], at, None)
            .unwrap();
        assert_eq!(indexes, vec![2, 3], "{backend}");
        let found = store.facts("exception", Some("api")).unwrap();
        assert_eq!(found.len(), 1, "{backend}");
        assert_eq!(found[0].record, exception, "{backend}");
        assert!(
            store.facts("exception", Some("web")).unwrap().is_empty(),
            "{backend}"
        );
        let retired = store
            .facts("retire", Some(&digest("a1").to_string()))
            .unwrap();
        assert_eq!(retired[0].record, retire, "{backend}");
        assert_eq!(store.facts("retire", None).unwrap().len(), 1, "{backend}");
        // Builds are not facts.
        let b = Record::Build(build("api", "a9", "python:3.12-slim", "py1"));
        assert!(store.record_facts(&[b], at, None).is_err(), "{backend}");
        assert_eq!(
            store.len().unwrap(),
            4,
            "{backend}: a refused batch writes nothing"
        );
        // A log key rotation is a fact too, filed under `log`, so a writer finds the current
        // key without reading the journal.
        let rotation = Record::LogKeyRotation(lineage_model::LogKeyRotation {
            old_key_id: "0a0b0c0d".into(),
            old_public_key: None,
            new_public_key: "lineage.local/ledger+01020304+AQ==".into(),
            old_key_lost: true,
            reason: Some("the key was lost".into()),
            by: id("maya@acme.dev"),
            at,
        });
        assert_eq!(
            store
                .record_facts(std::slice::from_ref(&rotation), at, None)
                .unwrap(),
            vec![4],
            "{backend}"
        );
        let rotations = store.facts("log_key_rotation", Some("log")).unwrap();
        assert_eq!(rotations.len(), 1, "{backend}");
        assert_eq!(rotations[0].record, rotation, "{backend}");
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
    }
}

// ---------------------------------------------------------------------------------------------
// Several writers, change notification, and the same log on both backends.
// ---------------------------------------------------------------------------------------------

#[test]
fn concurrent_writers_append_gapless_and_in_order() {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 15;
    for (backend, location, _guard) in locations() {
        let mut first = lineage_store::open(&location, true).unwrap();
        seed(first.as_mut());
        drop(first);
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let location = location.clone();
                std::thread::spawn(move || {
                    // Each writer has its own handle (its own frontier), as a replica would.
                    let mut store = lineage_store::open(&location, false).unwrap();
                    let at = t("2026-11-01T10:00:00Z");
                    let mut acknowledged = Vec::new();
                    for r in 0..ROUNDS {
                        let label = format!("w{w}r{r}");
                        let builds = [
                            build("api", &format!("{label}a"), "python:3.12-slim", "py1"),
                            build("web", &format!("{label}b"), "node:22", "nd1"),
                        ];
                        for o in store.record_builds(&builds, at, None).unwrap() {
                            match o {
                                BuildOutcome::Recorded { index } => acknowledged.push(index),
                                o => panic!("{o:?}"),
                            }
                        }
                        let when = format!("2026-11-02T10:{:02}:{:02}Z", w, r);
                        acknowledged.extend(
                            store
                                .record_deploys(
                                    &[deploy("api", &format!("{label}a"), "dev", &when)],
                                    at,
                                    None,
                                )
                                .unwrap(),
                        );
                    }
                    acknowledged
                })
            })
            .collect();
        let mut acknowledged: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        acknowledged.sort();
        let n = (WRITERS * ROUNDS * 3) as u64;
        // Every acknowledged index is distinct, and together with the seed they fill 0..len.
        assert_eq!(acknowledged, (2..2 + n).collect::<Vec<_>>(), "{backend}");
        let store = lineage_store::open(&location, false).unwrap();
        let entries = store.entries(0, u64::MAX >> 1).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            (0..2 + n).collect::<Vec<_>>(),
            "{backend}"
        );
        let head = store.log_head().unwrap();
        let expected = memory_log(store.as_ref());
        assert_eq!(
            (head.size, head.root),
            (2 + n, expected.root()),
            "{backend}"
        );
        assert_eq!(store.log_hashes().unwrap(), expected.hashes(), "{backend}");
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
    }
}

#[test]
fn waiting_readers_learn_of_other_writers_within_a_second() {
    use std::time::{Duration, Instant};
    for (backend, location, _guard) in locations() {
        let mut writer = lineage_store::open(&location, true).unwrap();
        seed(writer.as_mut());
        let reader = lineage_store::open(&location, false).unwrap();
        // Nothing new: the wait ends at the timeout with the size it saw.
        let start = Instant::now();
        assert_eq!(
            reader
                .wait_for_change(2, Duration::from_millis(300))
                .unwrap(),
            2,
            "{backend}"
        );
        assert!(start.elapsed() >= Duration::from_millis(300), "{backend}");
        let write = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let at = t("2026-11-01T10:00:00Z");
            writer
                .record_builds(&[build("api", "n1", "python:3.12-slim", "py1")], at, None)
                .unwrap();
            Instant::now()
        });
        let size = reader.wait_for_change(2, Duration::from_secs(10)).unwrap();
        let seen = Instant::now();
        let written = write.join().unwrap();
        assert_eq!(size, 3, "{backend}");
        assert!(
            seen.saturating_duration_since(written) < Duration::from_secs(1),
            "{backend}: the change was seen {:?} after the commit",
            seen.saturating_duration_since(written)
        );
        // Already past `seen`: returns at once.
        assert_eq!(
            reader.wait_for_change(0, Duration::from_secs(10)).unwrap(),
            3,
            "{backend}"
        );
    }
}

#[test]
fn the_same_records_give_the_same_log_on_every_backend() {
    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    let mut _guards = Vec::new();
    for (backend, mut store, guard) in backends() {
        seed_log(store.as_mut());
        heads.push((backend, store.log_head().unwrap()));
        bodies.push(
            store
                .entries(0, 100)
                .unwrap()
                .into_iter()
                .map(|e| e.body)
                .collect::<Vec<_>>(),
        );
        _guards.push(guard);
    }
    assert!(heads.windows(2).all(|w| w[0].1 == w[1].1), "{heads:?}");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

/// Records that touch every projection table, written the ways a front end writes them: one
/// at a time, and several in one call (which PostgreSQL merges before writing), with records
/// that delete rows among them.
fn record_everything(store: &mut dyn Store) {
    seed_log(store);
    let at = t("2026-11-03T10:00:00Z");
    let mut app = service("app", "ana@acme.dev");
    app.source_repo =
        Some(lineage_model::SourceRepo::parse("https://github.com/acme/app").unwrap());
    app.images
        .push(Repository::parse("ghcr.io/acme/app-worker").unwrap());
    let change = |service: Service| {
        Record::Service(ServiceChange {
            service,
            by: id("maya@acme.dev"),
            at,
        })
    };
    let from_ci = |label: &str, job: &str, pulled: &str| {
        let mut b = build("app", label, "python:3.12-slim", "py1");
        b.source_repo = app.source_repo.clone();
        b.bases[0].pulled_at = Some(t(pulled));
        b.ci = Some(lineage_model::CiRun {
            system: "github-actions".into(),
            job: Some(job.into()),
            run_id: None,
            url: None,
        });
        b
    };
    let scan = |created: &str| {
        sbom(
            "p1",
            "scan",
            created,
            &[("pkg:deb/debian/libssl3@3.0.11-1", Some(0))],
            &[("CVE-2024-0001", 0, "GHSA-xxxx")],
        )
    };
    store
        .append(
            &[
                change(app.clone()),
                // Two builds of one service on one base, and two deploys to one environment:
                // keyed rows that merge.
                Record::Build(from_ci("p1", "build", "2026-11-03T08:00:00Z")),
                Record::Build(from_ci("p2", "release", "2026-11-02T08:00:00Z")),
                Record::Deploy(deploy("app", "p2", "prod", "2026-11-03T09:00:00Z")),
                Record::Deploy(deploy("app", "p1", "prod", "2026-11-03T08:00:00Z")),
                Record::Deploy(deploy("web", "p1", "prod", "2026-11-03T08:00:00Z")),
                Record::Sbom(scan("2026-11-01T00:00:00Z")),
                Record::Sbom(scan("2026-11-02T00:00:00Z")),
                batch(
                    "prod-eu",
                    true,
                    "2026-11-03T09:00:00Z",
                    vec![
                        seen(
                            "prod",
                            "app",
                            "p2",
                            "2026-11-03T09:00:00Z",
                            "Deployment/app",
                        ),
                        seen("prod", "app", "p2", "2026-11-03T09:30:00Z", "Deployment/a"),
                    ],
                ),
                batch(
                    "prod-eu",
                    false,
                    "2026-11-03T09:45:00Z",
                    vec![seen(
                        "prod",
                        "web",
                        "p1",
                        "2026-11-03T09:45:00Z",
                        "Deployment/web",
                    )],
                ),
                // Deletes in the middle of a batch.
                end("web", "prod", "2026-11-03T09:50:00Z"),
                Record::Deploy(deploy("web", "p1", "prod", "2026-11-03T09:40:00Z")),
                Record::Retire(lineage_model::Retirement {
                    digest: digest("b1"),
                    reason: "CVE".into(),
                    by: id("maya@acme.dev"),
                    at,
                }),
            ],
            at,
            Some(&id("ci@acme.dev")),
        )
        .unwrap();
    // The service changes again (its images and repository are replaced), another is removed.
    app.images.pop();
    app.source_repo =
        Some(lineage_model::SourceRepo::parse("https://github.com/acme/app-next").unwrap());
    store
        .append(
            &[
                change(app),
                Record::ServiceRemoved(lineage_model::ServiceRemoval {
                    service: ServiceName::parse("web").unwrap(),
                    renamed_to: None,
                    reason: None,
                    by: id("maya@acme.dev"),
                    at,
                }),
                change(service("api", "ana@acme.dev")),
            ],
            at,
            None,
        )
        .unwrap();
    store
        .record_builds(&[build("app", "p3", "node:22", "nd1")], at, None)
        .unwrap();
}

/// Every row of every projection table, as `column=value` text, sorted; booleans as 0 or 1,
/// which is how SQLite stores them.
fn projection_rows(
    location: &StoreLocation,
    guard: &Guard,
) -> std::collections::BTreeMap<&'static str, Vec<String>> {
    let shown = |v: serde_json::Value| match v {
        serde_json::Value::Bool(b) => u8::from(b).to_string(),
        serde_json::Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    let mut out = std::collections::BTreeMap::new();
    for table in lineage_store::projection_tables() {
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = match (location, guard) {
            (StoreLocation::Sqlite(path), _) => {
                let conn = rusqlite_open(path);
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
                let names: Vec<String> =
                    stmt.column_names().iter().map(|n| n.to_string()).collect();
                stmt.query_map([], |r| {
                    let mut object = serde_json::Map::new();
                    for (i, name) in names.iter().enumerate() {
                        let value = match r.get::<_, rusqlite::types::Value>(i)? {
                            rusqlite::types::Value::Integer(n) => n.into(),
                            rusqlite::types::Value::Text(s) => s.into(),
                            other => panic!("{table}.{name} holds {other:?}"),
                        };
                        object.insert(name.clone(), value);
                    }
                    Ok(object)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            (_, Guard::Db(db)) => pg::client(&db.url)
                .query(&format!("SELECT to_jsonb(t)::text FROM {table} t"), &[])
                .unwrap()
                .iter()
                .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
                .collect(),
            _ => unreachable!("a PostgreSQL ledger has a database guard"),
        };
        let mut rows: Vec<String> = objects
            .into_iter()
            .map(|o| {
                o.into_iter()
                    .map(|(k, v)| format!("{k}={}", shown(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

/// One projection (`lineage_store::projection`) for both backends: the same records give the
/// same rows in every table, row for row, and the audit's replay agrees with them.
#[test]
fn every_backend_projects_the_same_rows() {
    let mut all = Vec::new();
    for (backend, location, guard) in locations() {
        let mut store = lineage_store::open(&location, true).unwrap();
        record_everything(store.as_mut());
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
        drop(store);
        let rows = projection_rows(&location, &guard);
        let empty: Vec<&str> = rows
            .iter()
            .filter(|(_, r)| r.is_empty())
            .map(|(t, _)| *t)
            .collect();
        assert!(empty.is_empty(), "{backend}: no rows in {empty:?}");
        all.push((backend, rows));
    }
    let (first, expected) = &all[0];
    for (backend, rows) in &all[1..] {
        for (table, want) in expected {
            assert_eq!(&rows[table], want, "{table}: {first} and {backend} differ");
        }
    }
}

#[test]
fn the_audit_digests_append_only_tables_without_writing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut store = lineage_store::open(&StoreLocation::Sqlite(path.clone()), true).unwrap();
    record_everything(store.as_mut());
    drop(store);
    // The rows the replay gives for `deploys`, `facts`, … digest as the written tables would.
    assert!(lineage_store::audit_first_pass_agrees(&path).unwrap());
    rusqlite_open(&path)
        .execute_batch("UPDATE facts SET key = key || 'x' WHERE rowid = 1")
        .unwrap();
    assert!(!lineage_store::audit_first_pass_agrees(&path).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Copying a ledger between backends (`lineage store migrate`).
// ---------------------------------------------------------------------------------------------

#[test]
fn a_ledger_copies_between_backends_with_identical_roots() {
    let mut all = locations();
    let (_, sqlite_location, _sqlite_guard) = all.remove(0);
    // PostgreSQL, or a second SQLite ledger when no server is configured.
    let (_, pg_location, _pg_guard) = all.pop().unwrap_or_else(|| locations().remove(0));
    let mut source = lineage_store::open(&sqlite_location, true).unwrap();
    seed_log(source.as_mut());
    let at = t("2026-11-03T10:00:00Z");
    source
        .record_facts(
            &[Record::Retire(lineage_model::Retirement {
                digest: digest("b1"),
                reason: "CVE".into(),
                by: id("maya@acme.dev"),
                at,
            })],
            at,
            Some(&id("maya@acme.dev")),
        )
        .unwrap();
    source.save_checkpoint(11, "eleven\n", at).unwrap();
    let mut target = lineage_store::open(&pg_location, true).unwrap();
    let report = lineage_store::copy_ledger(source.as_ref(), target.as_mut()).unwrap();
    assert!(report.identical(), "{report:?}");
    assert_eq!((report.copied, report.source_size), (11, 11));
    assert_eq!(report.checkpoints_copied, 1);
    assert_eq!(report.target_counts.get("build"), Some(&5));
    assert_eq!(
        target.entries(0, 100).unwrap(),
        source.entries(0, 100).unwrap()
    );
    assert_eq!(target.check_projections(10).unwrap(), vec![]);
    assert_eq!(
        target.running(None, None).unwrap(),
        source.running(None, None).unwrap()
    );

    // A target that is a prefix of the source gets the rest.
    source
        .record_builds(&[build("web", "w9", "node:22", "nd1")], at, None)
        .unwrap();
    let report = lineage_store::copy_ledger(source.as_ref(), target.as_mut()).unwrap();
    assert!(report.identical(), "{report:?}");
    assert_eq!((report.already_present, report.copied), (11, 1));

    // A target that went its own way is refused, and nothing is written to it.
    target
        .record_builds(&[build("web", "only-here", "node:22", "nd1")], at, None)
        .unwrap();
    source
        .record_builds(&[build("web", "only-there", "node:22", "nd1")], at, None)
        .unwrap();
    let before = target.log_head().unwrap();
    let err = lineage_store::copy_ledger(source.as_ref(), target.as_mut()).unwrap_err();
    assert!(matches!(err, StoreError::TargetDiverges(_)), "{err}");
    assert_eq!(target.log_head().unwrap(), before);
    // And back: the PostgreSQL ledger copies into a fresh SQLite file just as well.
    let dir = tempfile::tempdir().unwrap();
    let mut back =
        lineage_store::open(&StoreLocation::Sqlite(dir.path().join("b.db")), true).unwrap();
    let report = lineage_store::copy_ledger(target.as_ref(), back.as_mut()).unwrap();
    assert!(report.identical(), "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: what the SQLite file checks above do for a database.
// ---------------------------------------------------------------------------------------------

#[test]
fn postgres_refuses_foreign_newer_and_missing_databases_without_touching_them() {
    let tables = |url: &str| -> i64 {
        pg::client(url)
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    // An empty database is not a ledger yet: reading it creates nothing.
    let Some(empty) = pg::fresh_database() else {
        return;
    };
    let location = StoreLocation::parse(&empty.url).unwrap();
    assert!(matches!(
        lineage_store::open(&location, false),
        Err(StoreError::Missing(_))
    ));
    assert_eq!(tables(&empty.url), 0, "a failed open creates nothing");

    // A database that does not exist is missing too.
    let gone = pg::with_database(&empty.admin, "lineage_no_such_database_here");
    assert!(matches!(
        lineage_store::open(&StoreLocation::parse(&gone).unwrap(), true),
        Err(StoreError::Missing(_))
    ));

    // Someone else's tables: refused, untouched.
    let other = pg::fresh_database().unwrap();
    pg::client(&other.url)
        .batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let err = lineage_store::open(&StoreLocation::parse(&other.url).unwrap(), true)
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotLineage { .. }), "{err}");
    assert_eq!(tables(&other.url), 1);

    // A ledger migrated by a newer Lineage: refused with both versions named.
    let newer = pg::fresh_database().unwrap();
    let location = StoreLocation::parse(&newer.url).unwrap();
    drop(lineage_store::open(&location, true).unwrap());
    pg::client(&newer.url)
        .batch_execute("UPDATE lineage_meta SET value = '99' WHERE key = 'schema_version'")
        .unwrap();
    let err = lineage_store::open(&location, true).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported: lineage_store::PG_SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("newer than this lineage understands"),
        "{err}"
    );
}

#[test]
fn postgres_unreachable_is_named_by_host_and_port_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let location =
        StoreLocation::parse("postgres://lineage:s3cret@127.0.0.1:1/ledger?connect_timeout=2")
            .unwrap();
    let err = lineage_store::open(&location, true).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!format!("{location:?}").contains("s3cret"));
}

#[test]
fn postgres_replicas_starting_together_migrate_once() {
    let Some(db) = pg::fresh_database() else {
        return;
    };
    let location = StoreLocation::parse(&db.url).unwrap();
    // Separate processes would each have their own pool; threads here share one, so each
    // thread opens a URL that differs in an option, which gives it a pool of its own.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{}?application_name=replica{i}", db.url);
            std::thread::spawn(move || {
                let location = StoreLocation::parse(&url).unwrap();
                lineage_store::open(&location, true).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let version: String = pg::client(&db.url)
        .query_one(
            "SELECT value FROM lineage_meta WHERE key = 'schema_version'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, lineage_store::PG_SCHEMA_VERSION.to_string());
    assert_eq!(
        lineage_store::open(&location, false)
            .unwrap()
            .len()
            .unwrap(),
        0
    );
}

#[test]
fn postgres_projections_are_checked_against_the_journal() {
    let Some(db) = pg::fresh_database() else {
        return;
    };
    let location = StoreLocation::parse(&db.url).unwrap();
    let mut store = lineage_store::open(&location, true).unwrap();
    seed_log(store.as_mut());
    assert_eq!(store.check_projections(10).unwrap(), vec![]);
    // Point a deploy row at another environment, behind the store's back.
    pg::client(&db.url)
        .batch_execute("UPDATE deploys SET env = 'production' WHERE entry = 9")
        .unwrap();
    let found = store.check_projections(10).unwrap();
    assert!(!found.is_empty());
    assert_eq!(found[0].table, "deploys");
    assert_eq!(found[0].entry, Some(8), "{found:?}");
    // The audit leaves no trace: its scratch tables are gone, the ledger unchanged.
    assert_eq!(store.check_projections(10).unwrap(), found);
}

#[test]
fn postgres_writes_are_refused_when_the_journal_and_log_disagree() {
    let Some(db) = pg::fresh_database() else {
        return;
    };
    let location = StoreLocation::parse(&db.url).unwrap();
    let mut store = lineage_store::open(&location, true).unwrap();
    seed(store.as_mut());
    pg::client(&db.url)
        .batch_execute(
            "INSERT INTO entries (idx, kind, body, recorded_at)
             SELECT 3, kind, body, recorded_at FROM entries WHERE idx = 1",
        )
        .unwrap();
    let err = store
        .record_builds(
            &[build("api", "z", "python:3.12-slim", "py1")],
            t("2026-11-01T10:00:00Z"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::LogMismatch(_)), "{err}");
    assert_eq!(store.len().unwrap(), 3, "nothing was written");
}

#[test]
fn store_locations_parse_by_scheme() {
    assert_eq!(
        StoreLocation::parse("sqlite:/tmp/l.db").unwrap(),
        StoreLocation::Sqlite("/tmp/l.db".into())
    );
    assert_eq!(
        StoreLocation::parse("ledger.db").unwrap(),
        StoreLocation::Sqlite("ledger.db".into())
    );
    assert!(matches!(
        StoreLocation::parse("postgresql://u:pw@db/ledger").unwrap(),
        StoreLocation::Postgres(_)
    ));
    let err = StoreLocation::parse("mysql://u:pw@db/ledger").unwrap_err();
    assert!(matches!(err, StoreError::BadLocation { .. }), "{err}");
    assert!(err.to_string().contains("`mysql://`"), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[test]
fn digest_prefixes_resolve_to_builds_deploys_and_bases() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-01T10:00:00Z");
        store
            .record_builds(&[build("api", "a1", "python:3.12-slim", "py1")], at, None)
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a1", "production", "2026-11-03T10:00:00Z")],
                at,
                None,
            )
            .unwrap();
        let a1 = digest("a1").to_string();
        let found = store.digests_with_prefix(&a1[..7 + 12], 3).unwrap();
        assert_eq!(
            found,
            vec![
                (digest("a1"), DigestRole::Build),
                (digest("a1"), DigestRole::Deploy)
            ],
            "{backend}"
        );
        let py1 = digest("py1").to_string();
        assert_eq!(
            store.digests_with_prefix(&py1[..7 + 12], 3).unwrap(),
            vec![(digest("py1"), DigestRole::Base)],
            "{backend}"
        );
        assert!(
            store
                .digests_with_prefix("sha256:ffffffffffff0000", 3)
                .unwrap()
                .is_empty(),
            "{backend}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime truth: placements end, services are removed, observations are projected.
// ---------------------------------------------------------------------------------------------

fn end(name: &str, env: &str, at: &str) -> Record {
    Record::DeployEnd(lineage_model::PlacementEnd {
        service: ServiceName::parse(name).unwrap(),
        env: EnvName::parse(env).unwrap(),
        digest: None,
        reason: Some("decommissioned".into()),
        by: id("maya@acme.dev"),
        at: t(at),
    })
}

fn seen(env: &str, name: &str, label: &str, at: &str, workload: &str) -> lineage_model::Observed {
    lineage_model::Observed {
        env: EnvName::parse(env).unwrap(),
        image: Repository::parse(&format!("ghcr.io/acme/{name}")).unwrap(),
        digest: digest(label),
        namespace: Some("prod".into()),
        workload: Some(workload.into()),
        container: Some(name.into()),
        container_kind: None,
        host: None,
        seen_at: t(at),
    }
}

fn batch(source: &str, complete: bool, at: &str, items: Vec<lineage_model::Observed>) -> Record {
    let mut envs: Vec<EnvName> = items.iter().map(|i| i.env.clone()).collect();
    envs.sort();
    envs.dedup();
    Record::Observation(lineage_model::ObservationBatch {
        source: source.into(),
        format: "kubernetes".into(),
        complete,
        envs,
        items,
        unmapped_namespaces: vec!["kube-system".into()],
        by: id("sa:inventory"),
        at: t(at),
    })
}

/// (source, env, image, last seen, current, owner, built for) of an observed row.
type ObservedView = (
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
);

fn running_pairs(store: &dyn Store) -> Vec<(String, String, String)> {
    store
        .placements(None)
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.service.to_string(),
                p.env.to_string(),
                p.digest.to_string(),
            )
        })
        .collect()
}

#[test]
fn ended_placements_leave_current_and_late_deploys_do_not_bring_them_back() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-02T00:00:00Z");
        store
            .append(
                &[
                    Record::Build(build("api", "a1", "python:3.12", "py1")),
                    Record::Build(build("web", "w1", "python:3.12", "py1")),
                    Record::Deploy(deploy("api", "a1", "production", "2026-11-01T12:00:00Z")),
                    Record::Deploy(deploy("web", "w1", "production", "2026-11-01T12:00:00Z")),
                    Record::Deploy(deploy("api", "a1", "staging", "2026-11-01T11:00:00Z")),
                ],
                at,
                None,
            )
            .unwrap();
        // An end, and in the same transaction a deploy dated before it (recorded late):
        // the placement stays ended.
        store
            .append(
                &[
                    end("api", "production", "2026-11-02T00:00:00Z"),
                    Record::Deploy(deploy("api", "a1", "production", "2026-11-01T18:00:00Z")),
                ],
                at,
                None,
            )
            .unwrap();
        assert_eq!(
            running_pairs(store.as_ref()),
            vec![
                ("api".into(), "staging".into(), digest("a1").to_string()),
                ("web".into(), "production".into(), digest("w1").to_string()),
            ],
            "{backend}"
        );
        assert!(
            store
                .running(
                    Some(&EnvName::parse("production").unwrap()),
                    Some(&ServiceName::parse("api").unwrap())
                )
                .unwrap()
                .is_empty(),
            "{backend}"
        );
        // A later deploy starts a new placement.
        store
            .append(
                &[Record::Deploy(deploy(
                    "api",
                    "a1",
                    "production",
                    "2026-11-02T01:00:00Z",
                ))],
                t("2026-11-02T01:00:00Z"),
                None,
            )
            .unwrap();
        assert_eq!(
            store
                .placements(Some(&EnvName::parse("production").unwrap()))
                .unwrap()
                .len(),
            2,
            "{backend}"
        );
        // A removed service leaves `services` and frees its images; its history stays.
        let web = ServiceName::parse("web").unwrap();
        store
            .append(
                &[
                    end("web", "production", "2026-11-02T01:00:00Z"),
                    Record::ServiceRemoved(lineage_model::ServiceRemoval {
                        service: web.clone(),
                        renamed_to: None,
                        reason: None,
                        by: id("maya@acme.dev"),
                        at: t("2026-11-02T01:00:00Z"),
                    }),
                ],
                t("2026-11-02T01:00:00Z"),
                None,
            )
            .unwrap();
        assert_eq!(store.service(&web).unwrap(), None, "{backend}");
        assert_eq!(
            store
                .service_for_image(&Repository::parse("ghcr.io/acme/web").unwrap())
                .unwrap(),
            None,
            "{backend}"
        );
        assert_eq!(store.service_history(&web).unwrap().len(), 1, "{backend}");
        assert_eq!(
            store.facts("deploy_end", Some("api")).unwrap().len(),
            1,
            "{backend}"
        );
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
    }
}

#[test]
fn observations_are_projected_per_source_with_the_newest_batch_current() {
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let at = t("2026-11-02T00:00:00Z");
        store
            .append(
                &[Record::Build(build("api", "a1", "python:3.12", "py1"))],
                at,
                None,
            )
            .unwrap();
        store
            .append(
                &[batch(
                    "prod-eu",
                    true,
                    "2026-11-02T00:00:00Z",
                    vec![
                        seen(
                            "production",
                            "api",
                            "a1",
                            "2026-11-02T00:00:00Z",
                            "Deployment/api",
                        ),
                        // The same digest twice (two replicas): one row, the newest time.
                        seen(
                            "production",
                            "api",
                            "a1",
                            "2026-11-01T23:00:00Z",
                            "Deployment/api",
                        ),
                        seen(
                            "production",
                            "web",
                            "w9",
                            "2026-11-02T00:00:00Z",
                            "Deployment/web",
                        ),
                    ],
                )],
                at,
                None,
            )
            .unwrap();
        let later = t("2026-11-02T01:00:00Z");
        store
            .append(
                &[
                    batch(
                        "prod-eu",
                        true,
                        "2026-11-02T01:00:00Z",
                        vec![seen(
                            "production",
                            "api",
                            "a1",
                            "2026-11-02T01:00:00Z",
                            "Deployment/api",
                        )],
                    ),
                    batch(
                        "admission",
                        false,
                        "2026-11-02T00:30:00Z",
                        vec![seen(
                            "staging",
                            "api",
                            "a1",
                            "2026-11-02T00:30:00Z",
                            "ReplicaSet/api-1",
                        )],
                    ),
                ],
                later,
                None,
            )
            .unwrap();
        let rows = store.observed(None, None).unwrap();
        let shown: Vec<ObservedView> = rows
            .iter()
            .map(|r| {
                (
                    r.source.clone(),
                    r.env.to_string(),
                    r.image.to_string(),
                    r.last_seen.to_string(),
                    r.current,
                    r.owner.as_ref().map(ToString::to_string),
                    r.built_for.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        let mut expected = vec![
            (
                "prod-eu".to_string(),
                "production".to_string(),
                "ghcr.io/acme/api".to_string(),
                "2026-11-02T01:00:00Z".to_string(),
                true,
                Some("api".to_string()),
                Some("api".to_string()),
            ),
            // Left out of the source's newest batch: no longer running there.
            (
                "prod-eu".into(),
                "production".into(),
                "ghcr.io/acme/web".into(),
                "2026-11-02T00:00:00Z".into(),
                false,
                Some("web".into()),
                None,
            ),
            // Admission batches are not complete: what they saw stays current.
            (
                "admission".into(),
                "staging".into(),
                "ghcr.io/acme/api".into(),
                "2026-11-02T00:30:00Z".into(),
                true,
                Some("api".into()),
                Some("api".into()),
            ),
        ];
        let mut shown_sorted = shown.clone();
        shown_sorted.sort();
        expected.sort();
        assert_eq!(shown_sorted, expected, "{backend}");
        assert_eq!(
            rows.iter()
                .find(|r| r.env.as_str() == "staging")
                .unwrap()
                .workload
                .as_deref(),
            Some("ReplicaSet/api-1"),
            "{backend}"
        );
        assert_eq!(
            store
                .observed(Some(&EnvName::parse("staging").unwrap()), None)
                .unwrap()
                .len(),
            1,
            "{backend}"
        );
        assert_eq!(
            store.observed(None, Some(&digest("w9"))).unwrap().len(),
            1,
            "{backend}"
        );
        let sources: Vec<(String, bool, Vec<String>)> = store
            .observation_sources()
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.source,
                    s.complete,
                    s.envs.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            sources,
            vec![
                ("admission".into(), false, vec!["staging".into()]),
                ("prod-eu".into(), true, vec!["production".into()]),
            ],
            "{backend}"
        );
        assert_eq!(
            store.facts("observation", Some("prod-eu")).unwrap().len(),
            2,
            "{backend}"
        );
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
    }
}

#[test]
fn tampered_runtime_projections_are_found_on_both_backends() {
    for (backend, location, guard) in locations() {
        let mut store = lineage_store::open(&location, true).unwrap();
        seed(store.as_mut());
        let at = t("2026-11-02T00:00:00Z");
        store
            .append(
                &[
                    Record::Deploy(deploy("api", "a1", "production", "2026-11-01T12:00:00Z")),
                    end("api", "production", "2026-11-02T00:00:00Z"),
                    batch(
                        "prod-eu",
                        true,
                        "2026-11-02T00:00:00Z",
                        vec![seen(
                            "production",
                            "api",
                            "a1",
                            "2026-11-02T00:00:00Z",
                            "Deployment/api",
                        )],
                    ),
                ],
                at,
                None,
            )
            .unwrap();
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
        // Bring the ended placement back, and pretend a digest was seen later, behind
        // Lineage's back: `log verify` must find both.
        let sql = "INSERT INTO current (service, env, entry, digest, at) SELECT service, env, entry, digest, at FROM deploys;
                   UPDATE observations SET last_seen = last_seen + 3600";
        behind_the_ledger(&location, &guard, sql);
        let found = store.check_projections(10).unwrap();
        let tables: std::collections::BTreeSet<&str> =
            found.iter().map(|m| m.table.as_str()).collect();
        assert_eq!(
            tables,
            ["current", "observations"].into_iter().collect(),
            "{backend}: {found:?}"
        );
    }
}

fn sbom(
    label: &str,
    kind: &str,
    created: &str,
    packages: &[(&str, Option<u32>)],
    findings: &[(&str, u32, &str)],
) -> lineage_model::SbomImport {
    lineage_model::SbomImport {
        image: Repository::parse("ghcr.io/acme/api").unwrap(),
        digest: digest(label),
        kind: kind.into(),
        format: if kind == "scan" {
            "trivy".into()
        } else {
            "spdx-2.3".into()
        },
        document: digest(&format!("doc {label} {created}")),
        size: 1234,
        tool: None,
        created: Some(t(created)),
        origin: Some("file".into()),
        layers: vec![
            lineage_model::SbomLayer {
                digest: Some(digest("blob 1")),
                diff_id: Some(digest("diff 1")),
            },
            lineage_model::SbomLayer {
                digest: None,
                diff_id: Some(digest("diff 2")),
            },
        ],
        packages: packages
            .iter()
            .map(|(p, layer)| lineage_model::SbomPackage {
                purl: lineage_model::Purl::parse(p).unwrap(),
                layer: *layer,
            })
            .collect(),
        findings: findings
            .iter()
            .map(|(id, package, alias)| lineage_model::SbomFinding {
                id: id.to_string(),
                aliases: if alias.is_empty() {
                    vec![]
                } else {
                    vec![alias.to_string()]
                },
                package: *package,
                severity: "high".into(),
                fixed: Some("3.0.15-1".into()),
            })
            .collect(),
        by: id("sec@acme.dev"),
        at: t("2026-11-02T10:00:00Z"),
    }
}

#[test]
fn sbom_imports_project_packages_and_findings_of_the_newest_scan() {
    use lineage_store::SbomQuery;
    for (backend, mut store, _guard) in backends() {
        seed(store.as_mut());
        let b = build("api", "a1", "python:3.12-slim", "py1");
        store
            .record_builds(&[b], t("2026-11-01T10:00:00Z"), None)
            .unwrap();
        store
            .record_deploys(
                &[deploy("api", "a1", "production", "2026-11-01T11:00:00Z")],
                t("2026-11-01T11:00:00Z"),
                None,
            )
            .unwrap();
        let at = t("2026-11-02T10:00:00Z");
        let old = sbom(
            "a1",
            "scan",
            "2026-11-01T12:00:00Z",
            &[
                ("pkg:deb/debian/libssl3@3.0.11-1", Some(0)),
                ("pkg:pypi/Flask_Login@0.6.0", Some(1)),
            ],
            &[
                ("CVE-2024-0001", 0, ""),
                ("GHSA-xxxx-yyyy-zzzz", 1, "CVE-2024-0002"),
            ],
        );
        let new = sbom(
            "a1",
            "scan",
            "2026-11-02T09:00:00Z",
            &[("pkg:deb/debian/libssl3@3.0.15-1", Some(0))],
            &[],
        );
        // The newer document is recorded first; the older one recorded later stays old.
        store
            .append(&[Record::Sbom(new.clone())], at, Some(&id("sec@acme.dev")))
            .unwrap();
        store
            .append(&[Record::Sbom(old.clone())], at, Some(&id("sec@acme.dev")))
            .unwrap();
        let imports = store.sbom_imports(&digest("a1")).unwrap();
        assert_eq!(imports.len(), 1, "{backend}");
        assert_eq!(imports[0].document, new.document, "{backend}");
        assert_eq!(
            imports[0].scanned_at,
            t("2026-11-02T09:00:00Z"),
            "{backend}"
        );
        assert_eq!(
            imports[0].layers.len(),
            3,
            "{backend}: blob 1, diff 1, diff 2"
        );
        // Only the newest scan's packages and findings count.
        let running = store
            .sbom_packages(&SbomQuery::RunningName("libssl3".into()))
            .unwrap();
        assert_eq!(running.len(), 1, "{backend}");
        assert_eq!(running[0].row.purl.version(), Some("3.0.15-1"), "{backend}");
        assert_eq!(
            running[0].row.layer,
            vec![digest("blob 1"), digest("diff 1")],
            "{backend}"
        );
        assert_eq!(
            running[0].running.as_ref().unwrap().1.as_str(),
            "production",
            "{backend}"
        );
        assert!(
            store
                .sbom_findings(&SbomQuery::RunningId("cve-2024-0001".into()))
                .unwrap()
                .is_empty(),
            "{backend}"
        );

        // A newer scan with findings replaces it; findings are found by id and by alias.
        let newest = sbom(
            "a1",
            "scan",
            "2026-11-03T09:00:00Z",
            &[
                ("pkg:deb/debian/libssl3@3.0.11-1", Some(0)),
                ("pkg:pypi/flask-login@0.6.0", Some(1)),
            ],
            &[
                ("CVE-2024-0001", 0, ""),
                ("GHSA-xxxx-yyyy-zzzz", 1, "CVE-2024-0002"),
            ],
        );
        store
            .append(&[Record::Sbom(newest)], t("2026-11-03T10:00:00Z"), None)
            .unwrap();
        let by_alias = store
            .sbom_findings(&SbomQuery::RunningId("CVE-2024-0002".into()))
            .unwrap();
        assert_eq!(by_alias.len(), 1, "{backend}");
        assert_eq!(by_alias[0].row.id, "GHSA-xxxx-yyyy-zzzz", "{backend}");
        assert_eq!(
            by_alias[0].row.package.purl.name(),
            "flask-login",
            "{backend}"
        );
        assert_eq!(
            by_alias[0].row.fixed.as_deref(),
            Some("3.0.15-1"),
            "{backend}"
        );
        // Name keys fold PyPI spellings.
        let flask = store
            .sbom_packages(&SbomQuery::RunningName("flask-login".into()))
            .unwrap();
        assert_eq!(flask.len(), 1, "{backend}");
        let by_name = store
            .sbom_findings(&SbomQuery::RunningName("libssl3".into()))
            .unwrap();
        assert_eq!(by_name.len(), 1, "{backend}");
        assert_eq!(
            store
                .sbom_findings(&SbomQuery::Digest(digest("a1")))
                .unwrap()
                .len(),
            2,
            "{backend}"
        );
        assert_eq!(
            store
                .sbom_packages(&SbomQuery::RunningId("CVE-2024-0001".into()))
                .unwrap()
                .len(),
            1,
            "{backend}"
        );

        // An SBOM is its own kind: it does not replace the scan.
        store
            .append(
                &[Record::Sbom(sbom(
                    "a1",
                    "sbom",
                    "2026-11-04T09:00:00Z",
                    &[("pkg:deb/debian/zlib1g@1.2.13", None)],
                    &[],
                ))],
                t("2026-11-04T10:00:00Z"),
                None,
            )
            .unwrap();
        assert_eq!(
            store.sbom_imports(&digest("a1")).unwrap().len(),
            2,
            "{backend}"
        );
        let inventory = store.running_inventory(Some("scan")).unwrap();
        assert_eq!(inventory.len(), 1, "{backend}");
        assert_eq!(
            inventory[0].newest,
            Some(t("2026-11-03T09:00:00Z")),
            "{backend}"
        );
        // Imports are facts filed under the digest, and the audit rebuilds their rows.
        assert_eq!(
            store
                .facts("sbom", Some(&digest("a1").to_string()))
                .unwrap()
                .len(),
            4,
            "{backend}"
        );
        assert_eq!(store.check_projections(10).unwrap(), vec![], "{backend}");
    }
}

#[test]
fn a_document_dated_after_its_recording_counts_as_recorded() {
    for (backend, mut store, _guard) in backends() {
        let s = sbom("a9", "scan", "2030-01-01T00:00:00Z", &[], &[]);
        store
            .append(&[Record::Sbom(s)], t("2026-11-02T10:00:00Z"), None)
            .unwrap();
        let imports = store.sbom_imports(&digest("a9")).unwrap();
        assert_eq!(
            imports[0].scanned_at,
            t("2026-11-02T10:00:00Z"),
            "{backend}"
        );
    }
}

#[test]
fn sbom_rows_edited_behind_the_ledger_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let location = StoreLocation::Sqlite(path.clone());
    let mut store = lineage_store::open(&location, true).unwrap();
    let s = sbom(
        "a1",
        "scan",
        "2026-11-01T12:00:00Z",
        &[("pkg:deb/debian/libssl3@3.0.11-1", Some(0))],
        &[("CVE-2024-0001", 0, "")],
    );
    store
        .append(&[Record::Sbom(s)], t("2026-11-02T10:00:00Z"), None)
        .unwrap();
    assert_eq!(store.check_projections(10).unwrap(), vec![]);
    drop(store);
    // Someone "fixes" the finding by deleting it.
    rusqlite_open(&path)
        .execute_batch("DELETE FROM sbom_findings")
        .unwrap();
    let store = lineage_store::open(&location, false).unwrap();
    let found = store.check_projections(10).unwrap();
    assert_eq!(found[0].table, "sbom_findings", "{found:?}");
    assert_eq!(found[0].entry, Some(0), "{found:?}");
}
