//! The server's write path under concurrent writers (issue 22): group commit against the
//! machine's own rate of durable single-row SQLite commits, measured in the same run.
//!
//! Each client is a thread that records builds through `AppState::write` with the build gate
//! (`gate::record_build`), as `POST /api/v1/builds` does after parsing, each build its own
//! write; the server seals a signed checkpoint per commit. HTTP is left out: the admission
//! bench measures it. Figures: writes/s (median of rounds) and p99 latency per client count,
//! on an empty ledger and on one grown to `LINEAGE_BENCH_ENTRIES` entries (default 200,000).
//!
//! Reference: one thread inserting one row per transaction into a WAL SQLite file with
//! `synchronous = FULL` (every commit reaches the disk), the cheapest durable commit there
//! is on this machine.
//!
//! Run: `cargo bench -p lineage-server --bench writes` (`--quick` for one short round).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lineage_core::gate;
use lineage_model::{
    BaseImage, BuildRecord, CiRun, CommitId, Digest, Identity, Repository, Service, ServiceName,
    SourceRepo, Timestamp,
};
use lineage_server::{AdmissionConfig, AppState, DashboardConfig, ServerConfig};
use lineage_store::StoreLocation;

const NOW: &str = "2026-11-20T12:00:00Z";
const SERVICES: u64 = 50;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 3 };
    let phase = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(5)
    };
    let grown: u64 = std::env::var("LINEAGE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 200_000 });
    let dir = tempfile::tempdir().unwrap();

    let mut reference = Vec::new();
    for _ in 0..rounds {
        reference.push(raw_commits(&dir.path().join("raw.db"), phase));
    }
    let raw = median(&mut reference);
    println!(
        "reference: durable single-row SQLite commits, 1 thread: {raw:.0}/s (median of {rounds})"
    );
    println!(
        "{:<14} {:>8} {:>12} {:>8} {:>10}",
        "ledger", "clients", "writes/s", "ratio", "p99 ms"
    );
    let mut next = 0u64;
    for (label, entries) in [("empty", 0u64), ("grown", grown)] {
        let db = dir.path().join(format!("{label}.db"));
        seed(&db, entries);
        let state = server(&db);
        for clients in [1usize, 16, 64] {
            let mut rates = Vec::new();
            let mut p99s = Vec::new();
            for _ in 0..rounds {
                let (rate, p99) = load(&state, clients, phase, &mut next);
                rates.push(rate);
                p99s.push(p99);
            }
            let rate = median(&mut rates);
            println!(
                "{:<14} {:>8} {:>12.0} {:>7.2}× {:>10.1}",
                format!("{label} ({entries})"),
                clients,
                rate,
                rate / raw,
                median(&mut p99s) * 1e3
            );
        }
    }
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One row per durable commit, for `phase`.
fn raw_commits(path: &std::path::Path, phase: Duration) -> f64 {
    let _ = std::fs::remove_file(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    )
    .unwrap();
    let body = "x".repeat(600);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < phase {
        conn.execute("INSERT INTO t (body) VALUES (?1)", [&body])
            .unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn by() -> Identity {
    Identity::parse("ci@acme.dev").unwrap()
}

fn service(i: u64) -> ServiceName {
    ServiceName::parse(&format!("svc{i}")).unwrap()
}

/// A complete CI build that passes the build gate.
fn build(i: u64) -> BuildRecord {
    let s = i % SERVICES;
    BuildRecord {
        service: service(s),
        image: Repository::parse(&format!("ghcr.io/acme/svc{s}")).unwrap(),
        digest: Digest::parse(&format!("sha256:{i:064x}")).unwrap(),
        tags: vec![],
        bases: vec![BaseImage {
            name: Repository::parse("python").unwrap(),
            tag: Some(lineage_model::Tag::parse("3.12-slim").unwrap()),
            digest: Some(Digest::parse(&format!("sha256:{:064x}", 7)).unwrap()),
            pulled_at: Some(Timestamp::parse("2026-11-20T11:00:00Z").unwrap()),
            final_stage: true,
        }],
        source_repo: Some(SourceRepo::parse(&format!("https://github.com/acme/svc{s}")).unwrap()),
        git_ref: Some("main".into()),
        commit: Some(CommitId::parse(&format!("{i:040x}")).unwrap()),
        started_at: None,
        finished_at: Some(Timestamp::parse("2026-11-20T11:30:00Z").unwrap()),
        ci: Some(CiRun {
            system: "github-actions".into(),
            job: Some(format!("release-{s}")),
            run_id: Some(i.to_string()),
            url: None,
        }),
        builder: None,
        platform: None,
        dockerfile: None,
    }
}

/// A ledger with the services and `entries` builds, written in large batches.
fn seed(db: &std::path::Path, entries: u64) {
    let mut store = lineage_store::open(&StoreLocation::Sqlite(db.to_path_buf()), true).unwrap();
    let now = Timestamp::parse(NOW).unwrap();
    for s in 0..SERVICES {
        let svc = Service {
            name: service(s),
            owner: Some(by()),
            backup_owner: None,
            emergency_approver: None,
            source_repo: None,
            images: vec![Repository::parse(&format!("ghcr.io/acme/svc{s}")).unwrap()],
        };
        lineage_core::services::add(store.as_mut(), svc, by(), now).unwrap();
    }
    let mut i = 1u64 << 40;
    let end = i + entries;
    while i < end {
        let chunk: Vec<BuildRecord> = (i..(i + 5_000).min(end)).map(build).collect();
        store.record_builds(&chunk, now, None).unwrap();
        i += chunk.len() as u64;
    }
}

fn server(db: &std::path::Path) -> Arc<AppState> {
    let now = Timestamp::parse(NOW).unwrap();
    let config = lineage_core::Config::default();
    let toml = "[admission]\nnamespaces = { prod = \"production\" }\n";
    let admission = AdmissionConfig::from_toml(toml, "lineage.toml", &config).unwrap();
    let key = lineage_store::lineage_log::keys::LogKey::generate("lineage.bench/ledger").unwrap();
    let state = lineage_server::state(ServerConfig {
        store: StoreLocation::Sqlite(db.to_path_buf()),
        gate: gate::Setup {
            config,
            ..Default::default()
        },
        admission,
        log: Some((Arc::new(key), Default::default())),
        body_limit: 1 << 20,
        request_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(500),
        clock: Arc::new(move || now),
        dashboard: DashboardConfig::default(),
    })
    .unwrap();
    let store = lineage_store::open(&state.cfg.store, false).unwrap();
    state.index.load(store.as_ref(), now).unwrap();
    state
}

/// `clients` threads writing builds back to back for `phase`: (writes/s, p99 seconds).
fn load(state: &Arc<AppState>, clients: usize, phase: Duration, next: &mut u64) -> (f64, f64) {
    let base = *next;
    *next += 10_000_000;
    let start = Instant::now();
    let latencies: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let state = state.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = base + c as u64 * 100_000;
                    while start.elapsed() < phase {
                        let b = build(i);
                        i += 1;
                        let t = Instant::now();
                        let out = state.write(move |s, store| {
                            let now = s.now();
                            Ok(gate::record_build(
                                store,
                                &s.cfg.gate,
                                b,
                                gate::BuildOptions::default(),
                                Some(&by()),
                                now,
                            )?)
                        });
                        match out {
                            Ok(gate::Decision::Recorded { .. }) => {
                                mine.push(t.elapsed().as_secs_f64())
                            }
                            Ok(gate::Decision::Refused { gate }) => {
                                panic!("refused: {:?}", gate.diagnostics)
                            }
                            Err(e) => panic!("{}", e.message),
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = latencies.into_iter().flatten().collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    (all.len() as f64 / elapsed, p99)
}
