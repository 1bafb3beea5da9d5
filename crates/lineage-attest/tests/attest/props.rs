//! Property tests: any change to payload, payload type or signature bytes makes verification
//! fail, and an untouched envelope always verifies.

use std::sync::OnceLock;

use lineage_attest::dsse::{self, TrustedKey, VerifyOptions};
use lineage_attest::{KeyKind, PrivateKey};
use proptest::prelude::*;

fn keys() -> &'static [(PrivateKey, TrustedKey); 2] {
    static KEYS: OnceLock<[(PrivateKey, TrustedKey); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [KeyKind::EcdsaP256, KeyKind::Ed25519].map(|k| {
            let key = PrivateKey::generate(k).unwrap();
            let trusted = TrustedKey::new(key.public_key().clone());
            (key, trusted)
        })
    })
}

/// 256 cases in the test suite; `LINEAGE_FUZZ_CASES=N` for a long run.
fn fuzz_cases() -> u32 {
    std::env::var("LINEAGE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

#[derive(Debug, Clone)]
enum Tamper {
    Payload { index: usize, xor: u8 },
    AppendPayload(u8),
    PayloadType { index: usize, xor: u8 },
    Signature { index: usize, xor: u8 },
    TruncateSignature(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(index, xor)| Tamper::Payload { index, xor }),
        any::<u8>().prop_map(Tamper::AppendPayload),
        (any::<usize>(), 1..=127u8).prop_map(|(index, xor)| Tamper::PayloadType { index, xor }),
        (any::<usize>(), 1..=255u8).prop_map(|(index, xor)| Tamper::Signature { index, xor }),
        (1..8usize).prop_map(Tamper::TruncateSignature),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_change_breaks_verification(
        which in 0..2usize,
        payload in proptest::collection::vec(any::<u8>(), 1..200),
        payload_type in "[a-z/+.-]{1,40}",
        change in tamper(),
    ) {
        let (key, trusted) = &keys()[which];
        let envelope = dsse::sign(&payload_type, &payload, &[key]).unwrap();
        let opts = VerifyOptions::default();
        prop_assert!(dsse::verify(&envelope, std::slice::from_ref(trusted), &opts).is_verified());

        let mut bad = envelope.clone();
        match change {
            Tamper::Payload { index, xor } => {
                let i = index % bad.payload.len();
                bad.payload[i] ^= xor;
            }
            Tamper::AppendPayload(b) => bad.payload.push(b),
            Tamper::PayloadType { index, xor } => {
                // XOR with 1..=127 keeps an ASCII byte ASCII (and so the string valid UTF-8)
                // while changing it.
                let mut bytes = bad.payload_type.into_bytes();
                let i = index % bytes.len();
                bytes[i] ^= xor;
                bad.payload_type = String::from_utf8(bytes).unwrap();
            }
            Tamper::Signature { index, xor } => {
                let sig = &mut bad.signatures[0].sig;
                let i = index % sig.len();
                sig[i] ^= xor;
            }
            Tamper::TruncateSignature(n) => {
                let sig = &mut bad.signatures[0].sig;
                sig.truncate(sig.len() - n);
            }
        }
        let outcome = dsse::verify(&bad, std::slice::from_ref(trusted), &opts);
        prop_assert!(!outcome.is_verified(), "tampered envelope verified: {:?}", bad);
        prop_assert!(outcome.failure.is_some());
        // The serialized form of the tampered envelope fails too.
        prop_assert!(!dsse::verify_json(bad.to_json().as_bytes(), std::slice::from_ref(trusted), &opts).is_verified());
    }

    #[test]
    fn envelope_json_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..100), t in "\\PC{1,20}") {
        let (key, _) = &keys()[1];
        let envelope = dsse::sign(&t, &payload, &[key]).unwrap();
        prop_assert_eq!(lineage_attest::Envelope::from_json(envelope.to_json().as_bytes()).unwrap(), envelope);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (_, trusted) = &keys()[1];
        let _ = dsse::verify_json(&bytes, std::slice::from_ref(trusted), &VerifyOptions::default());
        let _ = lineage_attest::Statement::from_json(&bytes);
        let _ = lineage_attest::slsa::summarize_json(&bytes);
        let _ = lineage_attest::PublicKey::from_spki_der(&bytes);
    }
}
