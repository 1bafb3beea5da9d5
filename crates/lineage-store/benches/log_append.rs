//! Durable log appends: records committed with `synchronous = FULL`, their RFC 6962 leaves
//! and stored hashes written in the same transaction, and a C2SP checkpoint signed (Ed25519)
//! and stored after every commit, as the CLI and the server do. Group commit is a batch:
//! one `record_builds` call is one transaction.
//!
//! For each batch size (1, 10, 100, 1000) it reports entries/s and the p99 commit latency
//! (append + sign + store the checkpoint), next to a raw fsync'd `INSERT` of the same rows
//! with no log hashing and no checkpoint (the ratio is the cost of the log). Figures are
//! medians over rounds. Then it fills a ledger with N records (default 1,000,000) through the
//! store API in large batches and times the audit: re-hashing every body and comparing with
//! the stored hashes (`recompute`), and rebuilding and comparing the projections.
//!
//! `cargo bench -p lineage-store --bench log_append [-- RECORDS]`

use std::time::{Duration, Instant};

use lineage_log::checkpoint::{Checkpoint, LogKey};
use lineage_log::merkle;
use lineage_model::{BaseImage, BuildRecord, Digest, Repository, ServiceName, Tag, Timestamp};
use lineage_store::bench::{raw_insert_builds, RawBuild};
use lineage_store::{Store, StoreLocation};

const ROUNDS: usize = 3;
const ORIGIN: &str = "lineage.local/ledger";

fn digest(seed: &str, i: usize) -> Digest {
    // Distinct, well-formed digests: the seed's bytes and the index, as hex.
    let seed: u128 = seed
        .bytes()
        .fold(0, |acc, b| acc.wrapping_mul(131) + b as u128);
    Digest::parse(&format!("sha256:{seed:032x}{i:032x}")).unwrap()
}

fn build(seed: &str, i: usize) -> BuildRecord {
    let s = i % 100;
    BuildRecord {
        service: ServiceName::parse(&format!("svc-{s}")).unwrap(),
        image: Repository::parse(&format!("ghcr.io/acme/svc-{s}")).unwrap(),
        digest: digest(seed, i),
        tags: vec![Tag::parse(&format!("1.{i}")).unwrap()],
        bases: vec![BaseImage {
            name: Repository::parse("python").unwrap(),
            tag: Some(Tag::parse("3.12-slim").unwrap()),
            digest: Some(digest("base", i % 20)),
            pulled_at: None,
            final_stage: true,
        }],
        source_repo: None,
        git_ref: Some("main".into()),
        commit: None,
        started_at: None,
        finished_at: Some(Timestamp::from_unix(1_760_000_000 + i as i64)),
        ci: None,
        builder: None,
        platform: Some("linux/amd64".into()),
        dockerfile: None,
    }
}

fn fresh(dir: &tempfile::TempDir, name: &str) -> (Box<dyn Store>, std::path::PathBuf) {
    let path = dir.path().join(name);
    (
        lineage_store::open(&StoreLocation::Sqlite(path.clone()), true).unwrap(),
        path,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// One round at `batch`: (entries/s, p99 commit latency).
fn log_round(batch: usize, commits: usize, round: usize, key: &LogKey) -> (f64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = fresh(&dir, "log.db");
    let seed = format!("r{round}b{batch}");
    let records: Vec<BuildRecord> = (0..batch * commits).map(|i| build(&seed, i)).collect();
    let at = Timestamp::from_unix(1_760_000_000);
    let mut latencies = Vec::with_capacity(commits);
    let start = Instant::now();
    for chunk in records.chunks(batch) {
        let t = Instant::now();
        store.record_builds(chunk, at, None).unwrap();
        let head = store.log_head().unwrap();
        let text = Checkpoint::new(ORIGIN, head.size, head.root).sign(key);
        store.save_checkpoint(head.size, &text, at).unwrap();
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    assert_eq!(store.log_head().unwrap().size, records.len() as u64);
    (records.len() as f64 / elapsed.as_secs_f64(), p99(latencies))
}

/// The reference: the same rows, same schema and durability, plain `INSERT`s, no log.
fn raw_round(batch: usize, commits: usize, round: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = fresh(&dir, "raw.db");
    drop(store);
    let seed = format!("raw{round}b{batch}");
    let rows: Vec<RawBuild> = (0..batch * commits)
        .map(|i| RawBuild::new(&build(&seed, i)))
        .collect();
    let start = Instant::now();
    raw_insert_builds(&path, &rows, batch).unwrap();
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let records: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let key = LogKey::generate(ORIGIN).unwrap();

    println!("durable appends, checkpoint signed per commit (medians of {ROUNDS} rounds)");
    println!(
        "{:>6} {:>8} {:>14} {:>14} {:>14} {:>8}",
        "batch", "commits", "log entries/s", "p99 commit", "raw entries/s", "ratio"
    );
    for (batch, commits) in [(1, 400), (10, 200), (100, 100), (1000, 20)] {
        let mut rates = Vec::new();
        let mut p99s = Vec::new();
        let mut raws = Vec::new();
        for round in 0..ROUNDS {
            let (rate, p) = log_round(batch, commits, round, &key);
            rates.push(rate);
            p99s.push(p.as_secs_f64() * 1e3);
            raws.push(raw_round(batch, commits, round));
        }
        let (rate, p, raw) = (median(rates), median(p99s), median(raws));
        println!(
            "{batch:>6} {commits:>8} {rate:>14.0} {p:>11.2} ms {raw:>14.0} {:>8.2}",
            rate / raw
        );
    }

    // The audit at scale.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = fresh(&dir, "audit.db");
    let at = Timestamp::from_unix(1_760_000_000);
    let fill = Instant::now();
    const FILL_BATCH: usize = 10_000;
    let mut i = 0;
    while i < records {
        let n = FILL_BATCH.min(records - i);
        let batch: Vec<BuildRecord> = (i..i + n).map(|j| build("audit", j)).collect();
        store.record_builds(&batch, at, None).unwrap();
        i += n;
    }
    let head = store.log_head().unwrap();
    store
        .save_checkpoint(
            head.size,
            &Checkpoint::new(ORIGIN, head.size, head.root).sign(&key),
            at,
        )
        .unwrap();
    println!(
        "\nfilled {records} records through the store API in {:.1} s ({:.0} entries/s, batches of {FILL_BATCH})",
        fill.elapsed().as_secs_f64(),
        records as f64 / fill.elapsed().as_secs_f64()
    );

    // The leaf audit: what `lineage log verify` does before its checkpoint checks.
    let t = Instant::now();
    let mut leaves = Vec::with_capacity(records);
    let mut from = 0;
    while from < head.size {
        for e in store.raw_entries(from, from + 50_000).unwrap() {
            leaves.push(merkle::leaf_hash(e.body.as_bytes()));
        }
        from += 50_000;
    }
    let stored = store.log_hashes().unwrap();
    let recomputed = merkle::recompute(leaves, &stored);
    assert!(recomputed.first_mismatch.is_none());
    assert_eq!(recomputed.root, head.root);
    let leaf_audit = t.elapsed();
    let t = Instant::now();
    assert!(store.check_projections(3).unwrap().is_empty());
    let projection_audit = t.elapsed();
    println!(
        "log verify over {records} records: {:.1} s (re-hash + compare stored hashes {:.1} s, rebuild + compare projections {:.1} s)",
        (leaf_audit + projection_audit).as_secs_f64(),
        leaf_audit.as_secs_f64(),
        projection_audit.as_secs_f64()
    );
}
