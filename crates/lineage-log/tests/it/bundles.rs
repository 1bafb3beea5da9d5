//! Our own signed checkpoints and proof bundles: round trips, and every failure reason an
//! auditor can meet.

use lineage_log::checkpoint::{
    verify_checkpoint, Checkpoint, CheckpointVerification, LogKey, Verifier,
};
use lineage_log::merkle::{self, MemoryHashStore};
use lineage_log::proof::{
    verify_bundle, ConsistencyBundle, Failure, InclusionBundle, Outcome, ProofBundle, Verified,
};

const ORIGIN: &str = "lineage.example/log";

fn log_with(n: u64) -> MemoryHashStore {
    let mut store = MemoryHashStore::new();
    for i in 0..n {
        store.append(format!("{{\"record\":{i}}}").as_bytes());
    }
    store
}

fn signed(store: &MemoryHashStore, size: u64, key: &LogKey) -> String {
    let root = merkle::tree_hash(size, store).unwrap();
    Checkpoint::new(ORIGIN, size, root).sign(key)
}

#[test]
fn own_checkpoint_round_trips_with_every_key_form() {
    let key = LogKey::generate(ORIGIN).unwrap();
    let store = log_with(10);
    let note = signed(&store, 10, &key);
    for verifier in [
        key.verifier(),
        Verifier::parse(&key.public_key_pem()).unwrap(),
        Verifier::parse(&key.vkey()).unwrap(),
    ] {
        let out = verify_checkpoint(&note, &verifier);
        assert_eq!(
            out.verified().map(|c| (c.size, c.root)),
            Some((10, store.root())),
            "{out}"
        );
    }
    // The key survives a PKCS#8 export and import.
    let again = LogKey::from_pkcs8_der(ORIGIN, &key.to_pkcs8_der()).unwrap();
    assert!(verify_checkpoint(&signed(&store, 10, &again), &key.verifier()).is_verified());
}

#[test]
fn wrong_key_fails_with_a_reason() {
    let key = LogKey::generate(ORIGIN).unwrap();
    let other = LogKey::generate(ORIGIN).unwrap();
    let note = signed(&log_with(3), 3, &key);
    let out = verify_checkpoint(&note, &other.verifier());
    assert!(
        matches!(out, CheckpointVerification::NoSignatureFromKey { .. }),
        "{out}"
    );
    assert!(
        out.to_string().contains("not signed by the given key"),
        "{out}"
    );
    // Same key, different name: the C2SP key ID differs, so it is not our signature either.
    let renamed = LogKey::from_pkcs8_der("other.example/log", &key.to_pkcs8_der()).unwrap();
    assert!(!verify_checkpoint(&note, &renamed.verifier()).is_verified());
}

fn inclusion_bundle(
    store: &MemoryHashStore,
    key: &LogKey,
    index: u64,
    size: u64,
) -> InclusionBundle {
    let proof = merkle::inclusion_proof(index, size, store).unwrap();
    let leaf = format!("{{\"record\":{index}}}");
    InclusionBundle::new(index, leaf.as_bytes(), &proof, &signed(store, size, key)).unwrap()
}

fn check(bundle: &ProofBundle, key: &LogKey) -> Outcome {
    // Always go through the file form, as an auditor does.
    let read = ProofBundle::from_json(&bundle.to_json()).unwrap();
    assert_eq!(&read, bundle);
    verify_bundle(&read, &Verifier::parse(&key.public_key_pem()).unwrap())
}

fn failure_code(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Verified(_) => "verified",
        Outcome::Failed(f) => f.code(),
    }
}

#[test]
fn inclusion_bundle_verifies_and_names_each_failure() {
    let key = LogKey::generate(ORIGIN).unwrap();
    let store = log_with(37);
    let good = inclusion_bundle(&store, &key, 21, 37);
    let json = good.to_json();
    assert!(
        json.contains("\"kind\": \"inclusion\"") && json.contains("\"schema\": 1"),
        "{json}"
    );
    match check(&ProofBundle::Inclusion(good.clone()), &key) {
        Outcome::Verified(Verified::Inclusion {
            leaf_index,
            tree_size,
            root,
            ..
        }) => {
            assert_eq!((leaf_index, tree_size, root), (21, 37, store.root()));
        }
        other => panic!("{other:?}"),
    }

    let other_key = LogKey::generate(ORIGIN).unwrap();
    assert_eq!(
        failure_code(&check(&ProofBundle::Inclusion(good.clone()), &other_key)),
        "wrong-key"
    );

    let mut altered_leaf = good.clone();
    altered_leaf.leaf = b"{\"record\":99}".to_vec();
    let out = check(&ProofBundle::Inclusion(altered_leaf), &key);
    assert_eq!(failure_code(&out), "leaf-or-proof-altered");
    assert!(
        matches!(&out, Outcome::Failed(f) if f.to_string().contains("leaf or the proof was altered"))
    );

    // A proof for size 30 packaged with the size-37 checkpoint.
    let mut other_size = inclusion_bundle(&store, &key, 21, 30);
    other_size.checkpoint = good.checkpoint.clone();
    let out = check(&ProofBundle::Inclusion(other_size), &key);
    assert!(
        matches!(
            out,
            Outcome::Failed(Failure::TreeSizeMismatch {
                bundle: 30,
                checkpoint: 37,
                ..
            })
        ),
        "{out:?}"
    );

    let mut malformed = good.clone();
    malformed.checkpoint = malformed.checkpoint.replacen("\n37\n", "\n037\n", 1);
    assert_eq!(
        failure_code(&check(&ProofBundle::Inclusion(malformed), &key)),
        "malformed-checkpoint"
    );

    let mut resigned_size = good.clone();
    resigned_size.checkpoint = resigned_size.checkpoint.replacen("\n37\n", "\n38\n", 1);
    resigned_size.tree_size = 38;
    assert_eq!(
        failure_code(&check(&ProofBundle::Inclusion(resigned_size), &key)),
        "bad-checkpoint-signature"
    );

    let mut short = good.clone();
    short.proof.pop();
    assert_eq!(
        failure_code(&check(&ProofBundle::Inclusion(short), &key)),
        "invalid-proof"
    );

    let mut origin = good;
    origin.origin = "someone.else/log".into();
    assert_eq!(
        failure_code(&check(&ProofBundle::Inclusion(origin), &key)),
        "origin-mismatch"
    );
}

#[test]
fn consistency_bundle_between_checkpoints_and_from_a_bare_root() {
    let key = LogKey::generate(ORIGIN).unwrap();
    let store = log_with(50);
    let (old_cp, new_cp) = (signed(&store, 13, &key), signed(&store, 50, &key));
    let proof = merkle::consistency_proof(13, 50, &store).unwrap();
    let both = ConsistencyBundle::between_checkpoints(&old_cp, &new_cp, &proof).unwrap();
    assert!(both.to_json().contains("\"kind\": \"consistency\""));
    match check(&ProofBundle::Consistency(both.clone()), &key) {
        Outcome::Verified(Verified::Consistency { old, new, .. }) => {
            assert!(old.signer.is_some() && new.signer.is_some());
            assert_eq!((old.size, new.size), (13, 50));
        }
        other => panic!("{other:?}"),
    }

    let old_root = merkle::tree_hash(13, &store).unwrap();
    let bare = ConsistencyBundle::from_root_to_checkpoint(13, &old_root, &new_cp, &proof).unwrap();
    match check(&ProofBundle::Consistency(bare.clone()), &key) {
        Outcome::Verified(Verified::Consistency { old, new, .. }) => {
            assert!(old.signer.is_none() && new.signer.is_some());
            assert_eq!(old.root, old_root);
        }
        other => panic!("{other:?}"),
    }

    // A rewritten history: the old root of a different log of the same size.
    let forged_root = merkle::tree_hash(13, &log_with(14)).unwrap();
    let mut forged = bare.clone();
    forged.old_root = Some(merkle::leaf_hash(&forged_root).to_vec());
    assert_eq!(
        failure_code(&check(&ProofBundle::Consistency(forged), &key)),
        "invalid-proof"
    );

    let mut unsigned = bare;
    unsigned.new_checkpoint = None;
    unsigned.new_root = Some(store.root().to_vec());
    assert_eq!(
        failure_code(&check(&ProofBundle::Consistency(unsigned), &key)),
        "nothing-signed"
    );

    let mut swapped = both;
    std::mem::swap(&mut swapped.old_checkpoint, &mut swapped.new_checkpoint);
    assert_eq!(
        failure_code(&check(&ProofBundle::Consistency(swapped), &key)),
        "tree-size-mismatch"
    );
}

#[test]
fn corrupt_bundle_files_are_errors_not_outcomes() {
    assert!(ProofBundle::from_json("").is_err());
    assert!(ProofBundle::from_json("{\"schema\":1,\"kind\":\"nope\"}").is_err());
    let key = LogKey::generate(ORIGIN).unwrap();
    let good = inclusion_bundle(&log_with(4), &key, 1, 4).to_json();
    assert!(ProofBundle::from_json(&good.replace("\"schema\": 1", "\"schema\": 2")).is_err());
    let bad_b64 = good.replacen("\"leaf\": \"", "\"leaf\": \"!", 1);
    assert!(ProofBundle::from_json(&bad_b64).is_err());
}
