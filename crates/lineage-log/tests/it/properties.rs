//! Property tests on random trees: stored-hash proofs verify, any single flipped bit breaks
//! them, and the incremental hasher agrees with the stored-hash tree and with a direct
//! recursive RFC 9162 reference.

use lineage_log::merkle::{self, Frontier, Hash, MemoryHashStore};
use proptest::prelude::*;

/// MTH(D[n]) computed straight from RFC 9162 §2.1.1, independent of the stored layout.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| merkle::leaf_hash(format!("{seed}:{i}").as_bytes()))
        .collect()
}

/// Builds a store twice: via `stored_hashes_for_record` reading back from itself, and via the
/// frontier in `MemoryHashStore`; both must be identical.
fn build(leaves: &[Hash]) -> MemoryHashStore {
    let mut mem = MemoryHashStore::new();
    let mut flat: Vec<Hash> = Vec::new();
    for (i, l) in leaves.iter().enumerate() {
        let new = merkle::stored_hashes_for_record(i as u64, *l, &flat).unwrap();
        flat.extend(new);
        mem.append_leaf_hash(*l);
        assert_eq!(flat.len() as u64, merkle::stored_hash_count(i as u64 + 1));
    }
    assert_eq!(flat.as_slice(), mem.hashes());
    mem
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

#[test]
fn stored_hash_layout_matches_go_tlog() {
    // Level 0 leaves and the perfect subtrees they complete, in write order.
    let expect = [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (0, 2, 3),
        (0, 3, 4),
        (1, 1, 5),
        (2, 0, 6),
        (0, 4, 7),
    ];
    for (level, n, index) in expect {
        assert_eq!(
            merkle::stored_hash_index(level, n),
            index,
            "level {level} n {n}"
        );
    }
    assert_eq!(
        (0..=8).map(merkle::stored_hash_count).collect::<Vec<_>>(),
        vec![0, 1, 3, 4, 7, 8, 10, 11, 15]
    );
    for i in 0..200u64 {
        let leaf = merkle::stored_hash_leaf(i);
        assert!(merkle::stored_hash_count(leaf) <= i && i < merkle::stored_hash_count(leaf + 1));
    }
}

#[test]
fn every_proof_of_every_small_tree_verifies() {
    let l = leaves(70, 7);
    let store = build(&l);
    for size in 1..=l.len() as u64 {
        let root = merkle::tree_hash(size, &store).unwrap();
        assert_eq!(root, reference_root(&l[..size as usize]), "size {size}");
        for index in 0..size {
            let proof = merkle::inclusion_proof(index, size, &store).unwrap();
            merkle::verify_inclusion(&l[index as usize], index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion {index}/{size}: {e}"));
        }
        for old in 0..=size {
            let proof = merkle::consistency_proof(old, size, &store).unwrap();
            let old_root = merkle::tree_hash(old, &store).unwrap();
            merkle::verify_consistency(old, size, &proof, &old_root, &root)
                .unwrap_or_else(|e| panic!("consistency {old}->{size}: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn incremental_root_equals_stored_tree_hash(n in 0usize..400, seed in any::<u64>()) {
        let l = leaves(n, seed);
        let store = build(&l);
        let mut frontier = Frontier::new();
        for (i, leaf) in l.iter().enumerate() {
            frontier.append(*leaf);
            prop_assert_eq!(frontier.root(), merkle::tree_hash(i as u64 + 1, &store).unwrap());
        }
        prop_assert_eq!(frontier.root(), reference_root(&l));
        // Rebuilding the frontier from storage gives the same state.
        prop_assert_eq!(&Frontier::from_reader(n as u64, &store).unwrap(), &frontier);
        let again = merkle::recompute(l.iter().copied(), store.hashes());
        prop_assert_eq!(again.root, frontier.root());
        prop_assert_eq!(again.first_mismatch, None);
    }

    #[test]
    fn inclusion_proofs_verify_and_any_bit_flip_fails(
        n in 1u64..300, idx in any::<u64>(), sz in any::<u64>(), bit in 0usize..256, which in any::<u64>(), seed in any::<u64>()
    ) {
        let l = leaves(n as usize, seed);
        let store = build(&l);
        let size = 1 + sz % n;
        let index = idx % size;
        let root = merkle::tree_hash(size, &store).unwrap();
        let proof = merkle::inclusion_proof(index, size, &store).unwrap();
        let leaf = l[index as usize];
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &root).is_ok());

        prop_assert!(merkle::verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = (which % proof.len() as u64) as usize;
            bad[k] = flip(&bad[k], bit);
            prop_assert!(merkle::verify_inclusion(&leaf, index, size, &bad, &root).is_err());
        }
        // Another leaf of the same tree at this position fails. (The size is deliberately not
        // tested here: RFC 9162 verification does not bind it when two sizes give the same
        // path shape, e.g. index 0 in sizes 5 and 6; bundles bind it to the signed checkpoint.)
        if size > 1 {
            let other = l[((index + 1) % size) as usize];
            prop_assert!(merkle::verify_inclusion(&other, index, size, &proof, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_any_bit_flip_fails(
        n in 1u64..300, a in any::<u64>(), b in any::<u64>(), bit in 0usize..256, which in any::<u64>(), seed in any::<u64>()
    ) {
        let l = leaves(n as usize, seed);
        let store = build(&l);
        let new = 1 + b % n;
        let old = a % (new + 1);
        let (r1, r2) = (merkle::tree_hash(old, &store).unwrap(), merkle::tree_hash(new, &store).unwrap());
        let proof = merkle::consistency_proof(old, new, &store).unwrap();
        prop_assert!(merkle::verify_consistency(old, new, &proof, &r1, &r2).is_ok());
        if old > 0 {
            // With old == 0 any root is consistent: the empty tree has no content to rewrite.
            prop_assert!(merkle::verify_consistency(old, new, &proof, &flip(&r1, bit), &r2).is_err());
            prop_assert!(merkle::verify_consistency(old, new, &proof, &r1, &flip(&r2, bit)).is_err());
        }
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = (which % proof.len() as u64) as usize;
            bad[k] = flip(&bad[k], bit);
            prop_assert!(merkle::verify_consistency(old, new, &bad, &r1, &r2).is_err());
            let mut longer = proof.clone();
            longer.push(proof[0]);
            prop_assert!(merkle::verify_consistency(old, new, &longer, &r1, &r2).is_err());
        }
    }

    #[test]
    fn recompute_names_the_first_tampered_leaf(
        n in 2usize..300, a in any::<usize>(), b in any::<usize>(), kind in 0u8..4, seed in any::<u64>()
    ) {
        let l = leaves(n, seed);
        let store = build(&l);
        let (i, j) = { let (x, y) = (a % n, b % n); (x.min(y), x.max(y)) };
        let mut tampered = l.clone();
        let expected_first = match kind {
            0 => { tampered[i] = merkle::leaf_hash(b"edited"); i }             // one record edited
            1 => { tampered.remove(i); i }                                       // a row deleted
            2 => { if i == j { return Ok(()); } tampered.swap(i, j); i }         // two rows swapped
            _ => { tampered.push(merkle::leaf_hash(b"sneaked in")); n }          // a row appended
        };
        let out = merkle::recompute(tampered.iter().copied(), store.hashes());
        let m = out.first_mismatch.expect("tampering must be detected");
        prop_assert_eq!(m.leaf_index as usize, expected_first);
        prop_assert_eq!(merkle::stored_hash_leaf(m.stored_index) as usize, expected_first);
    }
}
