//! The real checkpoints in `checkpoint/`: Rekor v1 (ECDSA P-256), Rekor v2 (Ed25519), the
//! conformance test log, and the two C2SP spec examples.

use crate::fixture;
use lineage_log::checkpoint::{verify_checkpoint, Checkpoint, CheckpointVerification, Verifier};
use lineage_log::note::Note;

fn verifier(rel: &str) -> Verifier {
    Verifier::parse(&fixture(rel)).unwrap_or_else(|e| panic!("key {rel}: {e}"))
}

/// Replaces the tree-size line (line 2) of a signed checkpoint.
fn with_size(note: &str, size: &str) -> String {
    let mut lines: Vec<&str> = note.split('\n').collect();
    lines[1] = size;
    lines.join("\n")
}

#[test]
fn rekor_v1_checkpoints_verify_with_the_production_key() {
    let key = verifier("checkpoint/rekor.sigstore.dev.pub.pem");
    for (file, size) in [
        (
            "rekor.sigstore.dev.tree-2452216574.checkpoint",
            2452216574u64,
        ),
        ("rekor.sigstore.dev.tree-46800506.checkpoint", 46800506),
    ] {
        let text = fixture(&format!("checkpoint/{file}"));
        match verify_checkpoint(&text, &key) {
            CheckpointVerification::Verified {
                checkpoint,
                signer,
                key_id,
            } => {
                assert_eq!(checkpoint.size, size, "{file}");
                assert_eq!(
                    checkpoint.origin,
                    "rekor.sigstore.dev - 1193050959916656506"
                );
                assert_eq!(signer, "rekor.sigstore.dev");
                assert_eq!(hex::encode(key_id), "c0d23d6a");
            }
            other => panic!("{file}: {other}"),
        }
        // Changing the size line breaks the signature.
        let altered = with_size(&text, &(size + 1).to_string());
        assert!(
            matches!(
                verify_checkpoint(&altered, &key),
                CheckpointVerification::BadSignature { .. }
            ),
            "{file} with altered size: {}",
            verify_checkpoint(&altered, &key)
        );
        // A size line with a leading zero is malformed before any signature check.
        let padded = with_size(&text, &format!("0{size}"));
        assert!(matches!(
            verify_checkpoint(&padded, &key),
            CheckpointVerification::MalformedCheckpoint(_)
        ));
    }
}

#[test]
fn rekor_v2_checkpoint_verifies_with_pem_and_vkey() {
    let text = fixture("checkpoint/log2025-alpha1.rekor.sigstage.dev.tree-646.checkpoint");
    let pem = verifier("checkpoint/log2025-alpha1.rekor.sigstage.dev.pub.pem");
    let vkey = verifier("checkpoint/log2025-alpha1.rekor.sigstage.dev.vkey");
    assert_eq!(vkey.name(), Some("log2025-alpha1.rekor.sigstage.dev"));
    assert_eq!(
        vkey.key(),
        pem.key(),
        "the .vkey and .pub.pem hold the same key"
    );
    for key in [&pem, &vkey] {
        match verify_checkpoint(&text, key) {
            CheckpointVerification::Verified {
                checkpoint, key_id, ..
            } => {
                assert_eq!(checkpoint.size, 646);
                assert_eq!(hex::encode(key_id), "f30d5a99");
            }
            other => panic!("{other}"),
        }
    }
    // Our vkey rendering reproduces the fixture's string exactly.
    assert_eq!(
        pem.to_vkey("log2025-alpha1.rekor.sigstage.dev").unwrap(),
        fixture("checkpoint/log2025-alpha1.rekor.sigstage.dev.vkey").trim()
    );
    let altered = with_size(&text, "647");
    assert!(matches!(
        verify_checkpoint(&altered, &vkey),
        CheckpointVerification::BadSignature { .. }
    ));
}

#[test]
fn conformance_checkpoint_verifies_only_with_its_own_key() {
    let text = fixture("checkpoint/rekor.test.tree-1.checkpoint");
    let own = verifier("checkpoint/rekor.test.pub.pem");
    match verify_checkpoint(&text, &own) {
        CheckpointVerification::Verified {
            checkpoint, key_id, ..
        } => {
            assert_eq!(
                (checkpoint.origin.as_str(), checkpoint.size),
                ("rekor.test", 1)
            );
            assert_eq!(hex::encode(key_id), "7ffb1794");
        }
        other => panic!("{other}"),
    }
    let production = verifier("checkpoint/rekor.sigstore.dev.pub.pem");
    let outcome = verify_checkpoint(&text, &production);
    assert!(
        matches!(outcome, CheckpointVerification::NoSignatureFromKey { .. }),
        "production key must not verify the test log: {outcome}"
    );
    assert!(outcome.to_string().contains("wrong key"), "{outcome}");
    // An Ed25519 key does not verify an ECDSA-signed checkpoint either.
    let ed = verifier("checkpoint/log2025-alpha1.rekor.sigstage.dev.vkey");
    assert!(matches!(
        verify_checkpoint(&text, &ed),
        CheckpointVerification::NoSignatureFromKey { .. }
    ));
}

#[test]
fn spec_examples_parse_with_the_signature_block_after_the_last_blank_line() {
    let note = Note::parse(&fixture("checkpoint/c2sp-signed-note.spec-example.note")).unwrap();
    assert_eq!(
        note.text(),
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n"
    );
    assert_eq!(note.signatures().len(), 1);
    assert_eq!(note.signatures()[0].name, "quasimodo.example/salvatore");
    // Formatting the parsed note gives back the exact bytes.
    assert_eq!(
        note.to_string(),
        fixture("checkpoint/c2sp-signed-note.spec-example.note")
    );

    let text = fixture("checkpoint/c2sp-tlog-checkpoint.spec-example.checkpoint");
    let note = Note::parse(&text).unwrap();
    let cp = Checkpoint::parse(note.text()).unwrap();
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20852163);
    assert!(cp.extensions.is_empty());
    assert_eq!(note.signatures()[0].name, "example.com/behind-the-sofa");
    assert_eq!(cp.to_text(), note.text());
}
