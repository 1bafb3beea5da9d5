//! The fleet benchmark on both backends, side by side: SQLite (a file in a temporary
//! directory) and PostgreSQL (LINEAGE_BENCH_PG, the URL of an empty database it may fill).
//!
//! Per backend, in one run:
//! - ingest builds/s through the store API next to that engine's raw batched INSERT of the
//!   same rows into the same schema (medians of alternating rounds);
//! - `affected --base` p50/p99 and `trace` p50/p99 on a fleet of LINEAGE_BENCH_BUILDS builds
//!   (default 200,000; the 1M figure takes long on PostgreSQL here), through lineage_core::query;
//! - durable log appends/s: one record per commit, and 100 per commit (group commit);
//! - throughput with two writer processes against one (this binary re-run as children).
//!
//! `LINEAGE_BENCH_PG=postgres://postgres@127.0.0.1:5432/lineage_bench cargo bench -p lineage-core --bench pg_fleet`

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use lineage_core::{query, Config};
use lineage_model::{BuildRecord, Timestamp};
use lineage_store::bench::RawBuild;
use lineage_store::{BaseFilter, StoreLocation};

use common::*;

const INGEST_ROUND: usize = 20_000;
const ROUNDS: usize = 3;
const QUERIES: usize = 1_000;
const APPENDS: usize = 500;
/// Builds each writer process records in the two-writer measurement.
const WRITER_BUILDS: usize = 20_000;
/// Builds per call in the two-writer measurement (a server's batch of a few requests).
const WRITER_BATCH: usize = 100;
const CHILD_ENV: &str = "LINEAGE_BENCH_WRITER";

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One backend: how to get a fresh, empty ledger, and its raw-insert reference.
trait Backend {
    fn name(&self) -> &'static str;
    /// A fresh, empty ledger location named `label`.
    fn fresh(&mut self, label: &str) -> StoreLocation;
    fn raw_insert(&self, location: &StoreLocation, rows: &[RawBuild]);
    /// After the bulk load, what the engine's own housekeeping would have done by the time
    /// queries arrive.
    fn settle(&self, _location: &StoreLocation) {}
}

struct Sqlite(tempfile::TempDir);

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn fresh(&mut self, label: &str) -> StoreLocation {
        StoreLocation::Sqlite(self.0.path().join(format!("{label}.db")))
    }
    fn raw_insert(&self, location: &StoreLocation, rows: &[RawBuild]) {
        let StoreLocation::Sqlite(path) = location else {
            unreachable!()
        };
        lineage_store::bench::raw_insert_builds(path, rows, BATCH).unwrap();
    }
}

/// Fresh databases on the server of LINEAGE_BENCH_PG, named after its database plus a
/// label, dropped again at the end.
struct Postgres {
    admin: String,
    created: Vec<String>,
}

impl Postgres {
    fn url(&self, name: &str) -> String {
        let (base, query) = self.admin.split_once('?').unwrap_or((&self.admin, ""));
        let cut = base.rfind('/').unwrap();
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{}/{name}{query}", &base[..cut])
    }
    fn psql(&self, sql: &str) {
        let ok = Command::new("psql")
            .args([&self.admin, "-qc", sql])
            .env("PGOPTIONS", "--client-min-messages=warning")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "psql {sql} failed (is psql installed?)");
    }
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn fresh(&mut self, label: &str) -> StoreLocation {
        let base = lineage_store::PgLocation::parse(&self.admin)
            .unwrap()
            .database();
        let name = format!("{base}_{label}");
        self.psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        self.created.push(name.clone());
        StoreLocation::parse(&self.url(&name)).unwrap()
    }
    fn raw_insert(&self, location: &StoreLocation, rows: &[RawBuild]) {
        let StoreLocation::Postgres(pg) = location else {
            unreachable!()
        };
        lineage_store::bench::raw_insert_builds_pg(pg, rows, BATCH).unwrap();
    }
    fn settle(&self, location: &StoreLocation) {
        self.vacuum(location);
    }
}

impl Postgres {
    /// `VACUUM ANALYZE` the fleet database: the bulk load leaves `current` and `base_usage`
    /// full of dead row versions and the planner without statistics, which autovacuum fixes
    /// within a minute on a normal server (this machine's test server runs with it off).
    fn vacuum(&self, location: &StoreLocation) {
        let StoreLocation::Postgres(pg) = location else {
            unreachable!()
        };
        let ok = Command::new("psql")
            .args([pg.url(), "-qc", "VACUUM ANALYZE"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "VACUUM ANALYZE failed");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for name in &self.created {
            let _ = Command::new("psql")
                .args([
                    &self.admin,
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ])
                .status();
        }
    }
}

/// A child process: records WRITER_BUILDS builds into the ledger and exits.
fn writer_child(spec: &str) {
    let (seed, location) = spec.split_once(' ').unwrap();
    let mut store = lineage_store::open(&StoreLocation::parse(location).unwrap(), false).unwrap();
    let now = Timestamp::from_unix(1_800_000_000);
    let builds: Vec<BuildRecord> = (0..WRITER_BUILDS)
        .map(|i| build(seed, i, WRITER_BUILDS))
        .collect();
    for chunk in builds.chunks(WRITER_BATCH) {
        store.record_builds(chunk, now, None).unwrap();
    }
}

/// Builds/s of `writers` processes writing at once into one ledger.
fn writers(location: &StoreLocation, writers: usize, round: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let url = match location {
        StoreLocation::Sqlite(p) => format!("sqlite:{}", p.display()),
        StoreLocation::Postgres(pg) => pg.url().to_string(),
    };
    let t = Instant::now();
    let children: Vec<_> = (0..writers)
        .map(|w| {
            Command::new(&exe)
                .env(CHILD_ENV, format!("w{round}x{w} {url}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer process failed");
    }
    (writers * WRITER_BUILDS) as f64 / t.elapsed().as_secs_f64()
}

fn run(backend: &mut dyn Backend, total: usize) {
    let name = backend.name();
    let now = Timestamp::from_unix(1_800_000_000);
    println!("== {name}");

    let (mut api_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let builds: Vec<BuildRecord> = (0..INGEST_ROUND)
            .map(|i| build(&format!("api{r}"), i, INGEST_ROUND))
            .collect();
        let location = backend.fresh(&format!("api{r}"));
        let mut store = lineage_store::open(&location, true).unwrap();
        seed_services(store.as_mut());
        let t = Instant::now();
        for chunk in builds.chunks(BATCH) {
            store.record_builds(chunk, now, None).unwrap();
        }
        api_rates.push(INGEST_ROUND as f64 / t.elapsed().as_secs_f64());
        drop(store);

        let rows: Vec<RawBuild> = (0..INGEST_ROUND)
            .map(|i| RawBuild::new(&build(&format!("raw{r}"), i, INGEST_ROUND)))
            .collect();
        let location = backend.fresh(&format!("raw{r}"));
        drop(lineage_store::open(&location, true).unwrap());
        let t = Instant::now();
        backend.raw_insert(&location, &rows);
        raw_rates.push(INGEST_ROUND as f64 / t.elapsed().as_secs_f64());
    }
    let (api, raw) = (median(api_rates), median(raw_rates));
    println!("ingest ({INGEST_ROUND} builds per round, {ROUNDS} rounds, {BATCH} per transaction, durable commits)");
    println!("  store API         {api:>9.0} builds/s");
    println!("  raw batched INSERT{raw:>9.0} builds/s");
    println!("  ratio             {:>9.2}x  (goal >= 0.5x)", api / raw);

    // Durable appends, one per commit and 100 per commit.
    let location = backend.fresh("appends");
    let mut store = lineage_store::open(&location, true).unwrap();
    seed_services(store.as_mut());
    let mut latencies = Vec::new();
    let t = Instant::now();
    for i in 0..APPENDS {
        let one = [build("single", i, APPENDS)];
        let s = Instant::now();
        store.record_builds(&one, now, None).unwrap();
        latencies.push(s.elapsed());
    }
    let single = APPENDS as f64 / t.elapsed().as_secs_f64();
    let grouped: Vec<BuildRecord> = (0..APPENDS * 20)
        .map(|i| build("grouped", i, APPENDS * 20))
        .collect();
    let t = Instant::now();
    for chunk in grouped.chunks(100) {
        store.record_builds(chunk, now, None).unwrap();
    }
    let group = (APPENDS * 20) as f64 / t.elapsed().as_secs_f64();
    println!("log appends (build records, each commit durable)");
    println!(
        "  1 per commit      {single:>9.0} appends/s  (commit p50 {}, p99 {})",
        ms(percentile(&mut latencies, 0.5)),
        ms(percentile(&mut latencies, 0.99))
    );
    println!("  100 per commit    {group:>9.0} appends/s");
    drop(store);

    // Writer processes: one, then two at once, each its own ledger of equal start.
    let one = {
        let location = backend.fresh("writers1");
        seed_services(lineage_store::open(&location, true).unwrap().as_mut());
        writers(&location, 1, 1)
    };
    let two = {
        let location = backend.fresh("writers2");
        seed_services(lineage_store::open(&location, true).unwrap().as_mut());
        writers(&location, 2, 2)
    };
    println!("writer processes ({WRITER_BUILDS} builds each, {WRITER_BATCH} per call)");
    println!("  one writer        {one:>9.0} builds/s");
    println!(
        "  two writers       {two:>9.0} builds/s  ({:.2}x one)",
        two / one
    );

    // The fleet, then the incident queries.
    let location = backend.fresh("fleet");
    let mut store = lineage_store::open(&location, true).unwrap();
    seed_services(store.as_mut());
    let t = Instant::now();
    let deploys = load_fleet(store.as_mut(), total, now);
    let loaded = t.elapsed().as_secs_f64();
    backend.settle(&location);
    println!(
        "fleet: {total} builds, {deploys} deploys (loaded in {loaded:.0} s, {:.0} records/s)",
        (total + deploys) as f64 / loaded
    );
    let config = Config::default();
    let mut rng = Lcg(7);
    let mut by_digest = Vec::new();
    for _ in 0..QUERIES {
        let filter = BaseFilter::Digest(base_digest(rng.next(BASES), rng.next(DIGESTS_PER_BASE)));
        let t = Instant::now();
        query::affected(store.as_ref(), &config, &filter).unwrap();
        by_digest.push(t.elapsed());
    }
    let mut by_name = Vec::new();
    for _ in 0..QUERIES / 10 {
        let filter = BaseFilter::Name {
            name: base_name(rng.next(BASES)),
            tag: None,
        };
        let t = Instant::now();
        query::affected(store.as_ref(), &config, &filter).unwrap();
        by_name.push(t.elapsed());
    }
    let mut trace_digest = Vec::new();
    for _ in 0..QUERIES {
        let q = digest(&format!("fleet {}", rng.next(total))).to_string();
        let t = Instant::now();
        query::trace(store.as_ref(), &config, &q)
            .unwrap()
            .expect("recorded");
        trace_digest.push(t.elapsed());
    }
    let mut trace_service = Vec::new();
    for _ in 0..QUERIES {
        let q = format!("svc-{}", rng.next(SERVICES));
        let t = Instant::now();
        query::trace(store.as_ref(), &config, &q)
            .unwrap()
            .expect("recorded");
        trace_service.push(t.elapsed());
    }
    println!(
        "queries at {total} builds ({QUERIES} each; by name {})",
        QUERIES / 10
    );
    for (label, v) in [
        ("affected --base DIGEST", &mut by_digest),
        ("affected --base NAME  ", &mut by_name),
        ("trace DIGEST          ", &mut trace_digest),
        ("trace SERVICE         ", &mut trace_service),
    ] {
        println!(
            "  {label}  p50 {}  p99 {}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99))
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        writer_child(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let total: usize = std::env::var("LINEAGE_BENCH_BUILDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let Ok(admin) = std::env::var("LINEAGE_BENCH_PG") else {
        eprintln!(
            "error: LINEAGE_BENCH_PG is not set\n  hint: export LINEAGE_BENCH_PG=postgres://postgres@127.0.0.1:5432/lineage_bench (an existing database; the benchmark creates and drops siblings of it)"
        );
        std::process::exit(2);
    };
    let mut backends: Vec<Box<dyn Backend>> = vec![
        Box::new(Sqlite(tempfile::tempdir().unwrap())),
        Box::new(Postgres {
            admin,
            created: Vec::new(),
        }),
    ];
    if let Ok(only) = std::env::var("LINEAGE_BENCH_ONLY") {
        backends.retain(|b| b.name() == only);
    }
    println!(
        "fleet benchmark: {SERVICES} services, {BASES} bases x {DIGESTS_PER_BASE} digests, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in &mut backends {
        run(backend.as_mut(), total);
    }
}
