//! Sigstore bundle verification throughput next to a raw ECDSA P-256 verify, in the same run.
//!
//! Alternating timed rounds of
//!   raw      aws-lc-rs `verify_sig` of the bundle's signature over the artifact: the floor;
//!   v0.3     `verify_bundle_json` of sigstore-python's v0.3 bundle (signature, SET, checkpoint,
//!            inclusion proof, RFC 3161 time-stamp, Fulcio chain, SCT, identity);
//!   rekor v2 the same for the staging Rekor v2 bundle (Ed25519 checkpoint, no SET);
//!   cert     parsing the Fulcio leaf certificate (DER);
//!   root     parsing the public-good `trusted_root.json`;
//! reporting the median rate of each and its ratio to raw (the ratio is what compares across
//! runs on this shared machine).
//!
//! Run: `cargo bench -p lineage-sigstore --bench bundle_verify` (env `BENCH_ROUNDS`,
//! `BENCH_MS`; `LINEAGE_FIXTURES` for the shared fixtures).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
use lineage_sigstore::{
    verify_bundle_json, Artifact, Bundle, IdentityPolicy, Matcher, TrustedRoot,
};

fn fixtures() -> PathBuf {
    std::env::var_os("LINEAGE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/fixtures"
            ))
        })
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

fn rate(mut f: impl FnMut() -> bool, budget: Duration) -> f64 {
    for _ in 0..8 {
        assert!(f());
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..8 {
            assert!(black_box(f()));
        }
        n += 8;
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

fn policy(identity: &str, issuer: &str) -> IdentityPolicy {
    IdentityPolicy {
        identity: Some(Matcher::exact(identity)),
        issuer: Some(Matcher::exact(issuer)),
        ..IdentityPolicy::default()
    }
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
    let root_json = read("sigstore-bundle/sigstore-public-good.trusted_root.json");
    let root = TrustedRoot::from_json(&root_json).unwrap();
    let staging =
        TrustedRoot::from_json(&read("sigstore-bundle/sigstore-staging.trusted_root.json"))
            .unwrap();
    let v03 = read("sigstore-bundle/sigstore-python.new_bundle.txt.sigstore.json");
    let v03_artifact = read("sigstore-bundle/sigstore-python.new_bundle.txt");
    let v03_policy = policy("aryadeeptade@gmail.com", "https://github.com/login/oauth");
    let v2 = read("sigstore-bundle/sigstore-python.staging-rekor-v2.txt.sigstore.json");
    let v2_artifact = read("sigstore-bundle/sigstore-python.staging-rekor-v2.txt");
    let v2_policy = policy("jku@goto.fi", "https://github.com/login/oauth");
    // The raw floor: the leaf's key and the bundle's signature, as aws-lc-rs wants them.
    let bundle = Bundle::from_json(&v03).unwrap();
    let leaf = bundle.material.leaf().unwrap().clone();
    let leaf_der = leaf.der().to_vec();
    let point = leaf.public_key().unwrap().raw_key().to_vec();
    let signature = match &bundle.content {
        lineage_sigstore::bundle::Content::MessageSignature { signature, .. } => signature.clone(),
        _ => unreachable!("the v0.3 fixture is a message signature"),
    };
    let raw_key = UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, point);

    let check = |json: &[u8], artifact: &[u8], root: &TrustedRoot, p: &IdentityPolicy| {
        verify_bundle_json(json, Artifact::Bytes(artifact), root, p)
            .unwrap()
            .verified
    };
    assert!(check(&v03, &v03_artifact, &root, &v03_policy));
    assert!(
        check(&v2, &v2_artifact, &staging, &v2_policy),
        "{:#?}",
        verify_bundle_json(&v2, Artifact::Bytes(&v2_artifact), &staging, &v2_policy)
    );

    println!(
        "Sigstore bundle verify vs raw aws-lc-rs P-256 verify; {rounds} rounds x {} ms; medians",
        budget.as_millis()
    );
    let mut r = [(); 5].map(|_| Vec::new());
    for _ in 0..rounds {
        r[0].push(rate(
            || raw_key.verify(&v03_artifact, &signature).is_ok(),
            budget,
        ));
        r[1].push(rate(
            || check(&v03, &v03_artifact, &root, &v03_policy),
            budget,
        ));
        r[2].push(rate(
            || check(&v2, &v2_artifact, &staging, &v2_policy),
            budget,
        ));
        r[3].push(rate(
            || lineage_sigstore::x509::Certificate::from_der(&leaf_der).is_ok(),
            budget,
        ));
        r[4].push(rate(|| TrustedRoot::from_json(&root_json).is_ok(), budget));
    }
    let m = r.map(median);
    let raw = m[0];
    println!("  raw aws-lc-rs P-256 verify            {raw:>10.0} /s   1.000x");
    for (name, v) in [
        ("verify_bundle_json v0.3 (hashedrekord)", m[1]),
        ("verify_bundle_json Rekor v2 (staging)", m[2]),
        ("Fulcio leaf certificate parse", m[3]),
        ("trusted_root.json parse (public good)", m[4]),
    ] {
        println!("  {name:<38}{v:>10.0} /s   {:.3}x", v / raw);
    }
}
