//! DSSE verification throughput next to the raw aws-lc-rs signature rate, in the same run.
//!
//! For each key type: sign one SLSA provenance envelope, then alternate timed rounds of
//!   raw    `ParsedPublicKey::verify_sig(PAE, sig)`: the crypto floor on the same bytes;
//!   dsse   `dsse::verify(&envelope, ..)`: PAE construction, key search, threshold logic;
//!   json   `dsse::verify_json(bytes, ..)`: the above plus JSON and base64 decoding.
//! and report the median rate of each and the ratios to raw (issue 5's goal: dsse >= 0.8x).
//!
//! When `LINEAGE_TEST_PYTHON` names a Python with securesystemslib, the same envelopes are
//! verified by `tests/python/sslib_interop.py bench` for the peer ratio.
//!
//! Run: `cargo bench -p lineage-attest --bench dsse_verify` (env `BENCH_ROUNDS`, `BENCH_MS`
//! tune the rounds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey};
use lineage_attest::dsse::{self, TrustedKey, VerifyOptions};
use lineage_attest::{slsa, KeyKind, PrivateKey};

fn rate(mut f: impl FnMut() -> bool, budget: Duration) -> f64 {
    // Warm up, then count calls until the budget is spent, checking the clock every 64 calls.
    for _ in 0..64 {
        assert!(f());
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..64 {
            assert!(black_box(f()));
        }
        n += 64;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn build_record() -> lineage_model::BuildRecord {
    serde_json::from_value(serde_json::json!({
        "service": "api",
        "image": "registry.example.com/team/api",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "bases": [{"name": "docker.io/library/golang", "tag": "1.22",
                   "digest": format!("sha256:{}", "11".repeat(32)), "final_stage": true}],
        "source_repo": "https://github.com/acme/api",
        "git_ref": "refs/heads/main",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "started_at": "2026-03-01T10:00:00Z",
        "finished_at": "2026-03-01T10:04:30Z",
        "ci": {"system": "github-actions", "url": "https://github.com/acme/api/actions/runs/991"},
        "builder": "sa:ci-builder",
        "dockerfile": {"path": "Dockerfile"}
    }))
    .expect("bench record parses")
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400),
    );
    let statement = slsa::provenance_statement(&build_record()).unwrap();
    let payload = statement.to_json();
    println!(
        "DSSE verify vs raw aws-lc-rs verify; payload {} bytes; {rounds} rounds x {} ms; medians",
        payload.len(),
        budget.as_millis()
    );
    let python = std::env::var_os("LINEAGE_TEST_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    for (kind, alg) in [
        (
            KeyKind::EcdsaP256,
            &sig::ECDSA_P256_SHA256_ASN1 as &'static dyn sig::VerificationAlgorithm,
        ),
        (KeyKind::Ed25519, &sig::ED25519),
    ] {
        let key = PrivateKey::generate(kind).unwrap();
        let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &payload, &[&key]).unwrap();
        let json = envelope.to_json();
        let trusted = [TrustedKey::new(key.public_key().clone())];
        let opts = VerifyOptions::default();
        let pae = envelope.pae();
        let signature = envelope.signatures[0].sig.clone();
        // The raw baseline gets the key in the form aws-lc-rs wants: the point / raw key bytes.
        let spki = spki_key_bytes(key.public_key().spki_der());
        let raw_key = ParsedPublicKey::new(alg, spki).unwrap();

        let (mut raw, mut env, mut js) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            raw.push(rate(
                || raw_key.verify_sig(&pae, &signature).is_ok(),
                budget,
            ));
            env.push(rate(
                || dsse::verify(&envelope, &trusted, &opts).is_verified(),
                budget,
            ));
            js.push(rate(
                || dsse::verify_json(json.as_bytes(), &trusted, &opts).is_verified(),
                budget,
            ));
        }
        let (raw, env, js) = (median(raw), median(env), median(js));
        println!("{kind:?}:");
        println!("  raw aws-lc-rs verify      {raw:>10.0} /s");
        println!(
            "  dsse::verify (envelope)   {env:>10.0} /s   {:.3}x raw",
            env / raw
        );
        println!(
            "  dsse::verify_json (bytes) {js:>10.0} /s   {:.3}x raw",
            js / raw
        );

        match &python {
            None => println!("  python securesystemslib   (set LINEAGE_TEST_PYTHON to measure)"),
            Some(py) => {
                let env_path = dir.path().join("env.json");
                let pem_path = dir.path().join("pub.pem");
                std::fs::write(&env_path, &json).unwrap();
                std::fs::write(&pem_path, key.public_key().to_pem()).unwrap();
                let out = std::process::Command::new(py)
                    .arg(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/python/sslib_interop.py"
                    ))
                    .arg("bench")
                    .arg(&env_path)
                    .arg(&pem_path)
                    .arg(key.key_id())
                    .arg(format!("{}", (budget.as_secs_f64() * 5.0).max(2.0)))
                    .output()
                    .expect("run python");
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                        panic!(
                            "python bench failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                    });
                let py_rate = v["per_sec"].as_f64().unwrap();
                println!(
                    "  python securesystemslib   {py_rate:>10.0} /s   lineage json path is {:.1}x python",
                    js / py_rate
                );
            }
        }
    }
}

/// The BIT STRING contents of an SPKI: the uncompressed EC point or the raw Ed25519 key.
fn spki_key_bytes(spki: &[u8]) -> Vec<u8> {
    // Both SPKIs here end with the key bytes; their lengths are fixed by the algorithm.
    let len = if spki.len() == 91 { 65 } else { 32 };
    spki[spki.len() - len..].to_vec()
}
