//! The fleet benchmark: a synthetic platform team's ledger, and the two incident queries on it.
//!
//! 1,000 services, builds spread over 50 base images (20 digests each, rotating over time),
//! deploys to 3 environments. Reports, each as medians over rounds:
//! - ingest rate through the store API next to a raw batched `INSERT` of the same rows into
//!   the same schema, measured in the same run (the ratio is the figure that matters);
//! - `affected --base` latency p50/p99 (by digest and by name) and `trace` p99, at full size;
//! - `report stale` on the whole fleet next to a hand-written SQL query over the same tables
//!   (issue 22: it reads each base tag's history, never every build);
//! - the build gate's check of one build at 1,000 services next to the same check in a
//!   ledger of one service (issue 22: cross-service rules read indexed lookups).
//!
//! `cargo bench -p lineage-core --bench fleet` runs it; LINEAGE_BENCH_BUILDS changes the
//! fleet size (default 1,000,000).

mod common;

use std::time::{Duration, Instant};

use lineage_core::{query, Config};
use lineage_model::{BuildRecord, Timestamp};
use lineage_store::bench::{raw_insert_builds, RawBuild};
use lineage_store::{BaseFilter, Store, StoreLocation};

use common::*;

/// Builds per ingest round (API and raw each), kept smaller than the fleet so rounds repeat.
const INGEST_ROUND: usize = 100_000;
const ROUNDS: usize = 3;
const QUERIES: usize = 1_000;

fn open_fresh(dir: &std::path::Path, name: &str) -> Box<dyn Store> {
    let path = dir.join(name);
    lineage_store::open(&StoreLocation::Sqlite(path), true).unwrap()
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let total: usize = std::env::var("LINEAGE_BENCH_BUILDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::from_unix(1_800_000_000);

    // Ingest: API versus raw, alternating rounds on fresh ledgers of the same schema.
    let round = INGEST_ROUND.min(total);
    let (mut api_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let builds: Vec<BuildRecord> = (0..round)
            .map(|i| build(&format!("api{r}"), i, round))
            .collect();
        let mut store = open_fresh(dir.path(), &format!("api{r}.db"));
        seed_services(store.as_mut());
        let t = Instant::now();
        for chunk in builds.chunks(BATCH) {
            store.record_builds(chunk, now, None).unwrap();
        }
        api_rates.push(round as f64 / t.elapsed().as_secs_f64());

        let raw_builds: Vec<BuildRecord> = (0..round)
            .map(|i| build(&format!("raw{r}"), i, round))
            .collect();
        let rows: Vec<RawBuild> = raw_builds.iter().map(RawBuild::new).collect();
        let path = dir.path().join(format!("raw{r}.db"));
        drop(lineage_store::open(&StoreLocation::Sqlite(path.clone()), true).unwrap());
        let t = Instant::now();
        raw_insert_builds(&path, &rows, BATCH).unwrap();
        raw_rates.push(round as f64 / t.elapsed().as_secs_f64());
    }
    let (api, raw) = (median(api_rates), median(raw_rates));
    println!("ingest ({round} builds per round, {ROUNDS} rounds, {BATCH} per transaction, synchronous=FULL)");
    println!("  store API        {api:>10.0} builds/s");
    println!("  raw INSERT       {raw:>10.0} builds/s");
    println!("  ratio            {:>10.2}x  (goal >= 0.5x)", api / raw);

    // The full fleet for queries.
    let mut store = open_fresh(dir.path(), "fleet.db");
    seed_services(store.as_mut());
    let t = Instant::now();
    let deploys = load_fleet(store.as_mut(), total, now);
    println!(
        "fleet: {SERVICES} services, {total} builds on {BASES} bases x {DIGESTS_PER_BASE} digests, {deploys} deploys to 3 environments (loaded in {:.0} s)",
        t.elapsed().as_secs_f64()
    );

    let config = Config::default();
    let mut rng = Lcg(7);
    let mut by_digest = Vec::new();
    let mut affected_services = 0usize;
    for _ in 0..QUERIES {
        let filter = BaseFilter::Digest(base_digest(rng.next(BASES), rng.next(DIGESTS_PER_BASE)));
        let t = Instant::now();
        let report = query::affected(store.as_ref(), &config, &filter).unwrap();
        by_digest.push(t.elapsed());
        affected_services += report.services.len();
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
    // `report stale` over the whole fleet, and its hand-written SQL reference: per running
    // placement, its final base and how many digests of that tag were first used later.
    // A registry refresh, after every build, saw a newer digest of every base tag, so every
    // placement is behind and each row is computed in full (owners, rebuild command, a
    // rebuilt digest looked for).
    let later = Timestamp::from_unix(1_900_000_000);
    let seen: Vec<lineage_model::Record> = (0..BASES)
        .map(|b| {
            lineage_model::Record::Base(lineage_model::BaseSeen {
                name: base_name(b),
                tag: Some(lineage_model::Tag::parse("stable").unwrap()),
                digest: base_digest(b, DIGESTS_PER_BASE),
                layers: Vec::new(),
                created: None,
                seen_at: later,
            })
        })
        .collect();
    store.record_facts(&seen, later, None).unwrap();
    let options = lineage_core::freshness::StaleOptions::default();
    let mut stale = Vec::new();
    let mut stale_rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let report =
            lineage_core::freshness::stale(store.as_ref(), &config, &options, later).unwrap();
        stale.push(t.elapsed());
        stale_rows = report.rows.len();
    }
    let raw = lineage_store::raw_connection(&dir.path().join("fleet.db")).unwrap();
    let mut stale_sql = Vec::new();
    let mut sql_rows = 0i64;
    for _ in 0..5 {
        let t = Instant::now();
        sql_rows = raw
            .query_row(
                "SELECT count(*) FROM current c
                 CROSS JOIN build_bases b ON b.digest = c.digest AND b.final_stage = 1
                 CROSS JOIN base_tag_digests m ON m.base_name = b.base_name
                      AND m.base_tag = b.base_tag AND m.base_digest = b.base_digest
                 WHERE EXISTS (SELECT 1 FROM base_tag_digests n WHERE n.base_name = m.base_name
                      AND n.base_tag = m.base_tag AND n.first_used > m.first_used)
                    OR EXISTS (SELECT 1 FROM facts f JOIN entries e ON e.idx = f.entry
                      WHERE f.kind = 'base' AND f.key = b.base_name
                      AND json_extract(e.body, '$.record.digest') != b.base_digest)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        stale_sql.push(t.elapsed());
    }
    // The build gate on one new build, in the fleet and in a ledger of one service.
    let setup = lineage_core::gate::Setup::default();
    let probe = build("probe", 0, total);
    let facts = lineage_policy::BuildFacts::from(&probe);
    let gate_time = |store: &dyn Store| {
        let mut v = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            lineage_core::gate::check_build(Some(store), &setup, &facts, None, None, now).unwrap();
            v.push(t.elapsed());
        }
        percentile(&mut v, 0.5)
    };
    let fleet_gate = gate_time(store.as_ref());
    let mut single = open_fresh(dir.path(), "single.db");
    seed_services_n(single.as_mut(), 1);
    let one: Vec<BuildRecord> = (0..1_000)
        .map(|i| build("single", i * SERVICES, total))
        .collect();
    single.record_builds(&one, now, None).unwrap();
    let single_gate = gate_time(single.as_ref());

    println!("queries at {total} builds (median of {QUERIES} unless noted)");
    println!(
        "  report stale (whole fleet, {stale_rows} rows)  p50 {}  vs hand-written SQL ({sql_rows} rows) p50 {}  ({:.1}x)",
        us(percentile(&mut stale, 0.5)),
        us(percentile(&mut stale_sql, 0.5)),
        percentile(&mut stale, 0.5).as_secs_f64() / percentile(&mut stale_sql, 0.5).as_secs_f64()
    );
    println!(
        "  build gate, one build: {SERVICES} services p50 {}  vs 1 service p50 {}  ({:.2}x, goal <= 1.5x)",
        us(fleet_gate),
        us(single_gate),
        fleet_gate.as_secs_f64() / single_gate.as_secs_f64()
    );
    println!(
        "  affected --base DIGEST   p50 {}  p99 {}  (goal p99 < 10 ms; {:.1} services per answer)",
        us(percentile(&mut by_digest, 0.5)),
        us(percentile(&mut by_digest, 0.99)),
        affected_services as f64 / QUERIES as f64
    );
    println!(
        "  affected --base NAME     p50 {}  p99 {}  ({} queries; every digest of the base)",
        us(percentile(&mut by_name, 0.5)),
        us(percentile(&mut by_name, 0.99)),
        QUERIES / 10
    );
    println!(
        "  trace DIGEST             p50 {}  p99 {}  (goal p99 < 5 ms)",
        us(percentile(&mut trace_digest, 0.5)),
        us(percentile(&mut trace_digest, 0.99))
    );
    println!(
        "  trace SERVICE            p50 {}  p99 {}",
        us(percentile(&mut trace_service, 0.5)),
        us(percentile(&mut trace_service, 0.99))
    );
}
