//! DSSE protocol vectors, the protocol.md hello-world example, and in-toto envelopes.

use lineage_attest::dsse::{self, Failure, PayloadTypes, SigEncoding, TrustedKey, VerifyOptions};
use lineage_attest::{Envelope, PrivateKey, PublicKey, Statement, StatementError};
use serde_json::Value;

use crate::{fixture, fixture_str};

/// The failure each must-reject vector has to give, by vector id. A reject vector missing
/// here fails the test, so new vectors get an explicit expectation.
fn expected_failure(id: &str) -> Option<&'static str> {
    match id {
        "payload-type-swapped" => Some("dsse-no-trusted-signature"),
        "empty-payload-type" => Some("dsse-unsupported-payload-type"),
        "threshold-two-one-key-twice" => Some("dsse-threshold-not-met"),
        _ => None,
    }
}

#[test]
fn all_protocol_vectors_reproduce_pae_and_outcome() {
    let doc: Value = serde_json::from_slice(&fixture("dsse/dsse-testvectors.json")).unwrap();
    let keys = doc["keys"].as_object().expect("keys map");
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 9, "SOURCES.md promises nine vectors");
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let envelope = Envelope::from_json(v["envelope"].to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{id}: envelope does not parse: {e}"));
        // `pae` is what the vector's signer signed. For accepted vectors that is the PAE of
        // the envelope as given; for a swapped payload type it is the PAE under the original
        // type, and the mismatch is what a verifier must catch.
        let given_pae = hex::decode(v["pae"].as_str().unwrap()).unwrap();
        let expect_accept = v["expect"] == "accept";
        if expect_accept || id != "payload-type-swapped" {
            assert_eq!(
                hex::encode(envelope.pae()),
                v["pae"].as_str().unwrap(),
                "{id}: PAE differs"
            );
        } else {
            let original = dsse::pae(dsse::IN_TOTO_PAYLOAD_TYPE, &envelope.payload);
            assert_eq!(
                original, given_pae,
                "{id}: PAE under the original type differs"
            );
            assert_ne!(
                envelope.pae(),
                given_pae,
                "{id}: the type swap must change the PAE"
            );
        }
        let trusted: Vec<TrustedKey> = v["trustedKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                let name = name.as_str().unwrap();
                let raw = hex::decode(keys[name]["public"].as_str().unwrap()).unwrap();
                TrustedKey::with_id(name, PublicKey::ed25519_from_raw(&raw).unwrap())
            })
            .collect();
        let options = VerifyOptions {
            threshold: v["threshold"].as_u64().unwrap() as usize,
            payload_types: PayloadTypes::Only(
                v["supportedPayloadTypes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            ),
            sig_encoding: SigEncoding::Base64,
        };
        let outcome = dsse::verify(&envelope, &trusted, &options);
        match v["expect"].as_str().unwrap() {
            "accept" => assert!(outcome.is_verified(), "{id}: rejected: {outcome:?}"),
            "reject" => {
                let want = expected_failure(id).unwrap_or_else(|| {
                    panic!("{id}: no expected failure recorded for this vector")
                });
                let got = outcome.failure.as_ref().map(Failure::code);
                assert_eq!(got, Some(want), "{id}: {outcome:?}");
            }
            other => panic!("{id}: unknown expectation {other}"),
        }
        // The JSON path gives the same answer.
        let via_json = dsse::verify_json(v["envelope"].to_string().as_bytes(), &trusted, &options);
        assert_eq!(via_json, outcome, "{id}: verify_json differs from verify");
    }
}

#[test]
fn signing_with_vector_seeds_reproduces_vector_signatures() {
    // Ed25519 is deterministic (RFC 8032 §5.1.6), so our signer must give the vectors' bytes.
    let doc: Value = serde_json::from_slice(&fixture("dsse/dsse-testvectors.json")).unwrap();
    let seed = hex::decode(doc["keys"]["A"]["seed"].as_str().unwrap()).unwrap();
    let key = PrivateKey::ed25519_from_seed(&seed).unwrap();
    let public = hex::decode(doc["keys"]["A"]["public"].as_str().unwrap()).unwrap();
    assert_eq!(
        key.public_key(),
        &PublicKey::ed25519_from_raw(&public).unwrap()
    );
    let mut checked = 0;
    for v in doc["vectors"].as_array().unwrap() {
        if v["expect"] != "accept" || v["envelope"]["signatures"].as_array().unwrap().len() != 1 {
            continue;
        }
        let given = Envelope::from_json(v["envelope"].to_string().as_bytes()).unwrap();
        let ours = dsse::sign(&given.payload_type, &given.payload, &[&key]).unwrap();
        assert_eq!(
            ours.signatures[0].sig, given.signatures[0].sig,
            "{}",
            v["id"]
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected several single-signature vectors, found {checked}"
    );
}

#[test]
fn hello_world_example_verifies_with_raw_r_s_signature() {
    let envelope =
        Envelope::from_json(&fixture("dsse/dsse-spec-hello-world.envelope.json")).unwrap();
    assert_eq!(
        envelope.pae(),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(
        envelope.signatures[0].sig.len(),
        64,
        "the example is raw r||s"
    );
    let key = PublicKey::from_pem(&fixture_str("dsse/dsse-spec-hello-world.pub.pem")).unwrap();
    let outcome = dsse::verify(
        &envelope,
        &[TrustedKey::new(key.clone())],
        &VerifyOptions::default(),
    );
    assert!(outcome.is_verified(), "{outcome:?}");
    assert_eq!(outcome.verified_keys, vec![key.key_id().to_string()]);
    // The same signature re-encoded as DER also verifies.
    let der = raw_to_der(&envelope.signatures[0].sig);
    assert!(key.verify(&envelope.pae(), &der));
}

/// Encodes a raw r||s P-256 signature as an ASN.1 `ECDSA-Sig-Value` (RFC 3279 §2.2.3).
pub fn raw_to_der(raw: &[u8]) -> Vec<u8> {
    fn int(x: &[u8]) -> Vec<u8> {
        let mut x = x
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>();
        if x.first().is_none_or(|b| b & 0x80 != 0) {
            x.insert(0, 0);
        }
        let mut out = vec![0x02, x.len() as u8];
        out.extend(x);
        out
    }
    let body = [int(&raw[..32]), int(&raw[32..])].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn rsa_key(name: &str) -> TrustedKey {
    TrustedKey::new(PublicKey::from_pem(&fixture_str(&format!("dsse/{name}"))).unwrap())
}

#[test]
fn in_toto_golang_link_verifies_with_rsa_pss_but_is_not_a_statement() {
    let json = fixture("dsse/in-toto-golang.clone-dsse.776a00e2.link.json");
    let key = rsa_key("in-toto-demo.776a00e2.pub.pem");
    assert_eq!(
        key.key.algorithm(),
        lineage_attest::KeyAlgorithm::RsaPssSha256
    );
    let outcome = dsse::verify_json(&json, &[key], &VerifyOptions::default());
    assert!(outcome.is_verified(), "{outcome:?}");
    let envelope = Envelope::from_json(&json).unwrap();
    match Statement::from_json(&envelope.payload) {
        Err(StatementError::NotAStatement(why)) => assert!(why.contains("`link`"), "{why}"),
        other => panic!("expected 'not an in-toto Statement', got {other:?}"),
    }
    let wrong = dsse::verify_json(
        &json,
        &[rsa_key("in-toto-golang.dan.wrong-key.pub.pem")],
        &VerifyOptions::default(),
    );
    assert_eq!(
        wrong.failure.as_ref().map(Failure::code),
        Some("dsse-no-trusted-signature")
    );
}

#[test]
fn hex_signature_link_fails_strictly_and_passes_in_legacy_mode() {
    let json = fixture("dsse/in-toto-python.write-code.776a00e2.hexsig.link.json");
    let key = rsa_key("in-toto-demo.776a00e2.pub.pem");
    let strict = dsse::verify_json(&json, std::slice::from_ref(&key), &VerifyOptions::default());
    assert_eq!(
        strict.failure.as_ref().map(Failure::code),
        Some("dsse-no-trusted-signature"),
        "{strict:?}"
    );
    let legacy = VerifyOptions {
        sig_encoding: SigEncoding::HexLegacy,
        ..VerifyOptions::default()
    };
    let outcome = dsse::verify_json(&json, std::slice::from_ref(&key), &legacy);
    assert!(outcome.is_verified(), "{outcome:?}");
    let wrong = dsse::verify_json(
        &json,
        &[rsa_key("in-toto-golang.dan.wrong-key.pub.pem")],
        &legacy,
    );
    assert!(!wrong.is_verified());
}

#[test]
fn malformed_envelopes_give_specific_reasons() {
    let key = PrivateKey::generate(lineage_attest::KeyKind::Ed25519).unwrap();
    let trusted = [TrustedKey::new(key.public_key().clone())];
    let opts = VerifyOptions::default();
    let check = |json: &str, code: &str| {
        let outcome = dsse::verify_json(json.as_bytes(), &trusted, &opts);
        assert_eq!(
            outcome.failure.as_ref().map(Failure::code),
            Some(code),
            "{json}: {outcome:?}"
        );
    };
    check("{", "dsse-malformed-envelope");
    check(
        r#"{"payloadType":"x","signatures":[]}"#,
        "dsse-malformed-envelope",
    );
    check(
        r#"{"payload":"a$b=","payloadType":"x","signatures":[]}"#,
        "dsse-invalid-encoding",
    );
    check(
        r#"{"payload":"aGk=","payloadType":"x","signatures":[{"sig":"A"}]}"#,
        "dsse-invalid-encoding",
    );
    check(
        r#"{"payload":"aGk=","payloadType":"x","signatures":[{"sig":"ab+_"}]}"#,
        "dsse-invalid-encoding",
    );
    check(
        r#"{"payload":"aGk=","payloadType":"x","signatures":[]}"#,
        "dsse-no-signatures",
    );
    check(
        r#"{"payload":"aGk=","payloadType":"x","signatures":[{"sig":"AAAA"}]}"#,
        "dsse-no-trusted-signature",
    );
    let none = dsse::verify_json(
        br#"{"payload":"aGk=","payloadType":"x","signatures":[{"sig":"AAAA"}]}"#,
        &[],
        &opts,
    );
    assert_eq!(none.failure, Some(Failure::NoTrustedKeys));
}

#[test]
fn lineage_signed_statement_verifies_and_one_flipped_byte_fails() {
    let key = PrivateKey::generate(lineage_attest::KeyKind::EcdsaP256).unwrap();
    let body = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, body, &[&key]).unwrap();
    let json = envelope.to_json();
    let trusted = [TrustedKey::new(key.public_key().clone())];
    let ok = dsse::verify_json(json.as_bytes(), &trusted, &VerifyOptions::default());
    assert!(ok.is_verified(), "{ok:?}");
    assert_eq!(ok.verified_keys, vec![key.key_id().to_string()]);
    // Flip one bit of the payload inside the serialized envelope.
    let mut tampered = envelope.clone();
    tampered.payload[5] ^= 0x01;
    let bad = dsse::verify_json(
        tampered.to_json().as_bytes(),
        &trusted,
        &VerifyOptions::default(),
    );
    assert_eq!(
        bad.failure.as_ref().map(|f| f.to_string()),
        Some("none of the envelope's 1 signature(s) verifies with a trusted key".to_string())
    );
}
