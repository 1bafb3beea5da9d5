//! Proof and hashing benchmarks on a 1M-leaf in-memory tree; prints medians.
//!
//! Run with `cargo bench -p lineage-log --bench proofs`. `LINEAGE_BENCH_LEAVES` changes the
//! tree size (default 1,048,576).

use lineage_log::merkle::{self, Hash, MemoryHashStore};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A small deterministic generator, so runs are comparable without a `rand` dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Runs `f` (which performs `ops` operations) `rounds` times; returns the median per-op time.
fn per_op(rounds: usize, ops: usize, mut f: impl FnMut()) -> Duration {
    let samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() / ops as f64
        })
        .collect();
    Duration::from_secs_f64(median(samples))
}

fn record(i: u64) -> Vec<u8> {
    // About the size of a canonical build record.
    format!(
        "{{\"schema\":1,\"kind\":\"build\",\"image\":\"registry.example.com/svc-{}@sha256:{:064x}\",\"commit\":\"{:040x}\",\"at\":\"2026-01-01T00:00:00Z\"}}",
        i % 97,
        i,
        i.wrapping_mul(2654435761)
    )
    .into_bytes()
}

fn main() {
    let n: u64 = std::env::var("LINEAGE_BENCH_LEAVES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    println!("lineage-log proof benchmarks: {n} leaves, medians");

    // Reference: raw SHA-256 interior-node hashes per second.
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let node = per_op(5, 1_000_000, || {
        let mut h = a;
        for _ in 0..1_000_000 {
            h = merkle::node_hash(black_box(&h), black_box(&b));
        }
        black_box(h);
    });
    println!(
        "sha256 node hash:            {:>10.0} hashes/s ({:.3} µs/hash)",
        1.0 / node.as_secs_f64(),
        node.as_secs_f64() * 1e6
    );

    // Build the tree (in-memory appends: leaf hash + stored hashes via the frontier).
    let records: Vec<Vec<u8>> = (0..n).map(record).collect();
    let t = Instant::now();
    let mut store = MemoryHashStore::new();
    for r in &records {
        store.append(r);
    }
    let build = t.elapsed();
    println!(
        "build tree (hash + append):  {:>10.0} leaves/s ({:.2} s for {n}; {} stored hashes)",
        n as f64 / build.as_secs_f64(),
        build.as_secs_f64(),
        store.hashes().len()
    );
    let root = store.root();
    let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();

    let mut rng = Lcg(42);
    let indexes: Vec<u64> = (0..1000).map(|_| rng.next() % n).collect();
    let proofs: Vec<Vec<Hash>> = indexes
        .iter()
        .map(|&i| merkle::inclusion_proof(i, n, &store).unwrap())
        .collect();

    let gen = per_op(11, indexes.len(), || {
        for &i in &indexes {
            black_box(merkle::inclusion_proof(black_box(i), n, &store).unwrap());
        }
    });
    println!(
        "inclusion proof generation:  {:>10.2} µs/proof ({} hashes each)",
        gen.as_secs_f64() * 1e6,
        proofs[0].len()
    );

    let verify = per_op(11, indexes.len(), || {
        for (k, &i) in indexes.iter().enumerate() {
            merkle::verify_inclusion(&leaves[i as usize], i, n, &proofs[k], &root).unwrap();
        }
    });
    println!(
        "inclusion proof verification:{:>10.2} µs/proof",
        verify.as_secs_f64() * 1e6
    );

    let olds: Vec<u64> = (0..1000).map(|_| 1 + rng.next() % (n - 1)).collect();
    let cons = per_op(11, olds.len(), || {
        for &o in &olds {
            black_box(merkle::consistency_proof(black_box(o), n, &store).unwrap());
        }
    });
    println!(
        "consistency proof generation:{:>10.2} µs/proof",
        cons.as_secs_f64() * 1e6
    );

    let tree_hash = per_op(11, 1000, || {
        for &o in &olds {
            black_box(merkle::tree_hash(black_box(o), &store).unwrap());
        }
    });
    println!(
        "tree_hash (any size):        {:>10.2} µs",
        tree_hash.as_secs_f64() * 1e6
    );

    // `log verify` core: recompute the whole tree from leaf hashes, checking every stored hash.
    let recompute = per_op(5, 1, || {
        let r = merkle::recompute(leaves.iter().copied(), store.hashes());
        assert_eq!(r.root, root);
        assert!(r.first_mismatch.is_none());
    });
    println!(
        "recompute root, {n} leaves: {:>10.3} s (from leaf hashes, every stored hash compared)",
        recompute.as_secs_f64()
    );

    let full = per_op(5, 1, || {
        let r = merkle::recompute(records.iter().map(|r| merkle::leaf_hash(r)), store.hashes());
        assert_eq!(r.root, root);
    });
    println!(
        "recompute incl. leaf hashing:{:>10.3} s (from ~{}-byte records)",
        full.as_secs_f64(),
        records[0].len()
    );
}
