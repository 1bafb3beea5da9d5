//! The store story: one suite of behaviour every backend must pass. Each test takes a fresh
//! store from `backends()`, so adding a backend means adding one line there.

use lineage_model::{
    BaseImage, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record, Repository,
    Service, ServiceChange, ServiceName, Tag, Timestamp,
};
use lineage_store::{BaseFilter, BuildOutcome, Store, StoreError, StoreLocation};

/// Fresh stores of every backend, with a guard that keeps their files alive.
fn backends() -> Vec<(&'static str, Box<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("ledger.db"));
    vec![("sqlite", lineage_store::open(&location, true).unwrap(), dir)]
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
        service: ServiceName::parse(name).unwrap(),
        image: Repository::parse(&format!("ghcr.io/acme/{name}")).unwrap(),
        digest: digest(label),
        env: EnvName::parse(env).unwrap(),
        by: id("jonas@acme.dev"),
        approved_by: Some(id("maya@acme.dev")),
        ticket: None,
        at: t(at),
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
fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("ledger.db"));
    {
        let mut store = lineage_store::open(&location, true).unwrap();
        seed(store.as_mut());
    }
    let store = lineage_store::open(&location, false).unwrap();
    assert_eq!(store.len().unwrap(), 2);
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
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("ledger.db"));
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
    assert_eq!(head.size, 4);
    assert_eq!(head.root, memory_log(store.as_ref()).root());
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
        .execute_batch("DROP TABLE facts; DROP TABLE log_hashes; DROP TABLE checkpoints; PRAGMA user_version = 1;")
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
    }
}
