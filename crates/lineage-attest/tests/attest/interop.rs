//! Interop with the Python reference implementation, securesystemslib (and pyca/cryptography
//! for key files). The harness provides a Python with `securesystemslib`, `in-toto` and
//! `cryptography` installed, named by `LINEAGE_TEST_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use lineage_attest::dsse::{self, TrustedKey, VerifyOptions};
use lineage_attest::{Envelope, KeyKind, PrivateKey, PublicKey, Statement};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sslib_interop.py");

fn python() -> PathBuf {
    match std::env::var_os("LINEAGE_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "LINEAGE_TEST_PYTHON is not set. This interop test needs a Python with securesystemslib, \
             in-toto and cryptography; run it through the harness, or by hand: \
             `python3 -m venv /tmp/pyenv && /tmp/pyenv/bin/pip install securesystemslib in-toto cryptography` \
             then `LINEAGE_TEST_PYTHON=/tmp/pyenv/bin/python cargo test -p lineage-attest`"
        ),
    }
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let mut cmd = Command::new(python());
    cmd.arg(SCRIPT);
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "could not run LINEAGE_TEST_PYTHON ({}): {e}",
            python().display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && out.status.code() != Some(1) {
        panic!(
            "python interop script failed ({}):\n{}\n{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), stdout)
}

#[test]
fn securesystemslib_signs_lineage_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run(&[&"sign", &dir.path()]);
    assert!(ok, "{out}");
    for name in ["ecdsa", "ed25519"] {
        let json = std::fs::read(dir.path().join(format!("{name}.envelope.json"))).unwrap();
        let pem = std::fs::read_to_string(dir.path().join(format!("{name}.pub.pem"))).unwrap();
        let key = PublicKey::from_pem(&pem).unwrap();
        let outcome = dsse::verify_json(
            &json,
            &[TrustedKey::new(key.clone())],
            &VerifyOptions::default(),
        );
        assert!(outcome.is_verified(), "{name}: {outcome:?}");
        let statement = Statement::from_json(&Envelope::from_json(&json).unwrap().payload).unwrap();
        assert_eq!(statement.predicate["signedBy"], "securesystemslib");
        // A different key must not verify it.
        let other = PrivateKey::generate(KeyKind::EcdsaP256).unwrap();
        let wrong = dsse::verify_json(
            &json,
            &[TrustedKey::new(other.public_key().clone())],
            &VerifyOptions::default(),
        );
        assert!(!wrong.is_verified(), "{name}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn lineage_signs_securesystemslib_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
        let key = PrivateKey::generate(kind).unwrap();
        let statement =
            lineage_attest::slsa::provenance_statement(&crate::provenance::build_record()).unwrap();
        let envelope =
            dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &statement.to_json(), &[&key]).unwrap();
        let env_path = write(dir.path(), "env.json", &envelope.to_json());
        let pem_path = write(dir.path(), "pub.pem", &key.public_key().to_pem());
        let (ok, out) = run(&[&"verify", &env_path, &pem_path, &key.key_id()]);
        assert!(
            ok,
            "{kind:?}: securesystemslib rejected our envelope: {out}"
        );
        assert!(out.contains(key.key_id()), "{out}");

        // The reference implementation must reject a tampered one (so the check is real).
        let mut bad = envelope.clone();
        bad.payload[10] ^= 1;
        let bad_path = write(dir.path(), "bad.json", &bad.to_json());
        let (ok, out) = run(&[&"verify", &bad_path, &pem_path, &key.key_id()]);
        assert!(
            !ok,
            "{kind:?}: securesystemslib accepted a tampered envelope: {out}"
        );
    }
}

#[test]
fn encrypted_lineage_key_is_readable_by_pyca_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
        let key = PrivateKey::generate(kind).unwrap();
        let pem = write(
            dir.path(),
            "key.pem",
            &key.to_encrypted_pem(b"s3cret passphrase").unwrap(),
        );
        let (ok, out) = run(&[&"load-key", &pem, &"s3cret passphrase"]);
        assert!(ok, "{out}");
        // Python signed with our key; we verify with our public key.
        let outcome = dsse::verify_json(
            out.trim().as_bytes(),
            &[TrustedKey::new(key.public_key().clone())],
            &VerifyOptions::default(),
        );
        assert!(outcome.is_verified(), "{kind:?}: {outcome:?}");
    }
}
