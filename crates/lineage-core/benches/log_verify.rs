//! `lineage log verify` at scale (issue 22 item 5).
//!
//! Fills a ledger with the project's fleet generator (services, builds, and every build's
//! deploys: about three entries per build) until it holds N entries, signs one checkpoint,
//! then times, in alternating rounds:
//!
//! - the reference: a plain re-hash, reading every entry body in pages and SHA-256-ing it with
//!   the RFC 6962 leaf prefix, nothing else;
//! - `ledger_log::verify`, the whole audit `lineage log verify` runs (leaves, stored hashes,
//!   checkpoints, every projection rebuilt and compared);
//! - `verify --since` a checkpoint signed at 90% of the ledger.
//!
//! Also the audit's peak RSS (VmHWM, reset through `/proc/self/clear_refs` before it runs)
//! and the bytes it wrote to disk (`write_bytes` of `/proc/self/io`: the scratch), next to the
//! ledger's size. Figures are medians; the ratio to the same-run re-hash is the one to compare.
//!
//! `cargo bench -p lineage-core --bench log_verify`; LINEAGE_BENCH_ENTRIES=N (default 200,000).

mod common;

use std::time::Instant;

use lineage_core::ledger_log;
use lineage_model::Timestamp;
use lineage_store::lineage_log::checkpoint::Checkpoint;
use lineage_store::lineage_log::keys::LogKey;
use lineage_store::lineage_log::merkle;
use lineage_store::{Store, StoreLocation};

use common::*;

const ROUNDS: usize = 3;
const ORIGIN: &str = "lineage.local/ledger";

fn proc_field(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak RSS (Linux: writing 5 to `clear_refs`); false when it cannot.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn sign(store: &mut dyn Store, key: &LogKey, size: u64) -> String {
    let root = store.log_root(size).unwrap();
    let text = Checkpoint::new(ORIGIN, size, root).sign(key);
    store
        .save_checkpoint(size, &text, Timestamp::from_unix(1_760_000_000))
        .unwrap();
    text
}

fn main() {
    let entries: u64 = std::env::var("LINEAGE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut store = lineage_store::open(&StoreLocation::Sqlite(path.clone()), true).unwrap();
    let key = LogKey::generate(ORIGIN).unwrap();
    let fill = Instant::now();
    seed_services(store.as_mut());
    // About three entries per build (the build and its deploys).
    let builds = ((entries.saturating_sub(SERVICES as u64)) / 3).max(1) as usize;
    load_fleet(store.as_mut(), builds, Timestamp::from_unix(1_760_000_000));
    let size = store.log_head().unwrap().size;
    let since_size = size * 9 / 10;
    let saved = sign(store.as_mut(), &key, since_size);
    sign(store.as_mut(), &key, size);
    let ledger_bytes = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "ledger: {size} entries ({builds} builds with their deploys, {SERVICES} services), {:.0} MB, filled in {:.1} s",
        ledger_bytes as f64 / 1e6,
        fill.elapsed().as_secs_f64()
    );
    drop(store);

    let store = lineage_store::open(&StoreLocation::Sqlite(path.clone()), false).unwrap();
    let verifier = key.verifier();
    let (mut rehash, mut full, mut since) = (Vec::new(), Vec::new(), Vec::new());
    let (mut peak_kb, mut written) = (None, 0u64);
    for _ in 0..ROUNDS {
        // The reference: read every body, hash it as an RFC 6962 leaf.
        let t = Instant::now();
        let mut from = 0;
        let mut acc = 0u8;
        while from < size {
            for e in store.raw_entries(from, from + 10_000).unwrap() {
                acc ^= merkle::leaf_hash(e.body.as_bytes())[0];
            }
            from += 10_000;
        }
        std::hint::black_box(acc);
        rehash.push(t.elapsed().as_secs_f64());

        let can_reset = reset_peak();
        let io_before = proc_field("/proc/self/io", "write_bytes:").unwrap_or(0);
        let t = Instant::now();
        let report = ledger_log::verify(store.as_ref(), &verifier, None).unwrap();
        full.push(t.elapsed().as_secs_f64());
        assert!(report.verified, "{:?}", report.problems);
        written = proc_field("/proc/self/io", "write_bytes:").unwrap_or(0) - io_before;
        if can_reset {
            peak_kb = proc_field("/proc/self/status", "VmHWM:");
        }

        let t = Instant::now();
        let report = ledger_log::verify(store.as_ref(), &verifier, Some(&saved)).unwrap();
        since.push(t.elapsed().as_secs_f64());
        assert!(report.verified, "{:?}", report.problems);
        assert_eq!(report.verified_range.from, since_size);
    }
    let (rehash, full, since) = (median(rehash), median(full), median(since));
    println!("medians of {ROUNDS} rounds over {size} entries:");
    println!("  plain re-hash (reference)          {rehash:>8.2} s   1.00");
    println!(
        "  log verify                          {full:>8.2} s  {:>5.2}x   (goal <= 5x)",
        full / rehash
    );
    println!(
        "  log verify --since (last {:>7})   {since:>8.2} s  {:>5.2}x",
        size - since_size,
        since / rehash
    );
    match peak_kb {
        Some(kb) => println!(
            "  log verify peak RSS {:.0} MB; wrote {:.0} MB to disk (the ledger is {:.0} MB)",
            kb as f64 / 1024.0,
            written as f64 / 1e6,
            ledger_bytes as f64 / 1e6
        ),
        None => println!(
            "  log verify wrote {:.0} MB to disk (the ledger is {:.0} MB); peak RSS not measurable here",
            written as f64 / 1e6,
            ledger_bytes as f64 / 1e6
        ),
    }
}
