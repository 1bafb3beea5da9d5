//! Every transparency-dev RFC 6962 vector in `merkle-vectors/` gives its `wantErr` outcome.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use lineage_log::merkle::{self, Hash, ProofError};
use serde_json::Value;

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("base64 string"))
        .expect("valid base64")
}

fn hash(v: &Value) -> Result<Hash, ProofError> {
    merkle::hash_from_slice(&b64(v))
}

fn proof(v: &Value) -> Result<Vec<Hash>, ProofError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            merkle::hashes_from_slices(&items.iter().map(b64).collect::<Vec<_>>())
        }
        other => panic!("proof is neither null nor an array: {other}"),
    }
}

fn run_inclusion(v: &Value) -> Result<(), ProofError> {
    let leaf = hash(&v["leafHash"])?;
    let root = hash(&v["root"])?;
    let proof = proof(&v["proof"])?;
    merkle::verify_inclusion(
        &leaf,
        v["leafIdx"].as_u64().unwrap(),
        v["treeSize"].as_u64().unwrap(),
        &proof,
        &root,
    )
}

fn run_consistency(v: &Value) -> Result<(), ProofError> {
    let root1 = hash(&v["root1"])?;
    let root2 = hash(&v["root2"])?;
    let proof = proof(&v["proof"])?;
    merkle::verify_consistency(
        v["size1"].as_u64().unwrap(),
        v["size2"].as_u64().unwrap(),
        &proof,
        &root1,
        &root2,
    )
}

#[test]
fn every_vector_gives_its_want_err() {
    let dir = crate::fixtures().join("merkle-vectors");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let (mut inclusion, mut consistency) = (0, 0);
    let mut failures = Vec::new();
    for path in &entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().expect("wantErr");
        let got = if name.starts_with("inclusion-") {
            inclusion += 1;
            run_inclusion(&v)
        } else if name.starts_with("consistency-") {
            consistency += 1;
            run_consistency(&v)
        } else {
            panic!("unexpected vector file {name}");
        };
        if got.is_err() != want_err {
            failures.push(format!("{name}: wantErr={want_err}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "vectors disagree:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        (inclusion, consistency),
        (6, 6),
        "expected the 12 vectors of SOURCES.md"
    );
}

/// The precise reasons for the must-error vectors, so a regression that fails for the wrong
/// reason is caught too.
#[test]
fn must_error_vectors_fail_for_the_right_reason() {
    let load = |n: &str| -> Value {
        serde_json::from_str(&crate::fixture(&format!("merkle-vectors/{n}"))).unwrap()
    };
    assert!(matches!(
        run_inclusion(&load("inclusion-3-leafIdx-+-1.json")),
        Err(ProofError::IndexBeyondSize { index: 3, size: 3 })
    ));
    assert!(matches!(
        run_inclusion(&load("inclusion-3-trailing-garbage.json")),
        Err(ProofError::MalformedHash {
            position: Some(1),
            len: 0
        })
    ));
    assert!(matches!(
        run_inclusion(&load("inclusion-1-wrong-leaf.json")),
        Err(ProofError::MalformedHash {
            position: None,
            len: 9
        })
    ));
    assert!(matches!(
        run_inclusion(&load("inclusion-1-treeSize-div-2.json")),
        Err(ProofError::WrongProofLength {
            expected: 2,
            actual: 3
        })
    ));
    assert!(matches!(
        run_consistency(&load("consistency-2-swapped-roots.json")),
        Err(ProofError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        run_consistency(&load("consistency-1-modified-proof[1]-bit-4.json")),
        Err(ProofError::NewRootMismatch { .. })
    ));
}

/// The reference tree of RFC 6962 (leaves "", 00, 10, 2021, …) rebuilt from stored hashes gives
/// the roots and proofs the vectors carry.
#[test]
fn stored_hash_tree_reproduces_the_vectors() {
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let mut store = merkle::MemoryHashStore::new();
    for l in leaves {
        store.append(l);
    }
    for (file, size) in [
        ("consistency-2-happy-path.json", 6u64),
        ("consistency-3-happy-path.json", 2),
    ] {
        let v: Value =
            serde_json::from_str(&crate::fixture(&format!("merkle-vectors/{file}"))).unwrap();
        assert_eq!(
            merkle::tree_hash(size, &store).unwrap(),
            hash(&v["root1"]).unwrap(),
            "{file}"
        );
        let size2 = v["size2"].as_u64().unwrap();
        assert_eq!(
            merkle::tree_hash(size2, &store).unwrap(),
            hash(&v["root2"]).unwrap(),
            "{file}"
        );
        assert_eq!(
            merkle::consistency_proof(size, size2, &store).unwrap(),
            proof(&v["proof"]).unwrap(),
            "{file}"
        );
    }
    let v: Value = serde_json::from_str(&crate::fixture(
        "merkle-vectors/inclusion-1-happy-path.json",
    ))
    .unwrap();
    assert_eq!(
        merkle::inclusion_proof(0, 8, &store).unwrap(),
        proof(&v["proof"]).unwrap()
    );
    assert_eq!(store.root(), hash(&v["root"]).unwrap());
}
