//! Key generation, PKCS#8 round trips, encrypted keys, and signature forms.

use lineage_attest::{KeyAlgorithm, KeyError, KeyKind, PrivateKey, PublicKey};
use sha2::{Digest, Sha256};

use crate::{dsse_conformance::raw_to_der, fixture_str};

#[test]
fn generated_keys_sign_and_verify_and_round_trip_through_pem() {
    for (kind, alg) in [
        (KeyKind::EcdsaP256, KeyAlgorithm::EcdsaP256Sha256),
        (KeyKind::Ed25519, KeyAlgorithm::Ed25519),
    ] {
        let key = PrivateKey::generate(kind).unwrap();
        assert_eq!(key.kind(), kind);
        assert_eq!(key.public_key().algorithm(), alg);
        let sig = key.sign(b"message").unwrap();
        assert!(key.public_key().verify(b"message", &sig), "{kind:?}");
        assert!(!key.public_key().verify(b"messagE", &sig), "{kind:?}");

        let again = PrivateKey::from_pem(&key.to_pkcs8_pem(), None).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(&public, key.public_key());
        // The key id is the SHA-256 of the SPKI DER.
        assert_eq!(
            public.key_id(),
            hex::encode(Sha256::digest(public.spki_der()))
        );
        // Two generated keys differ.
        assert_ne!(PrivateKey::generate(kind).unwrap().key_id(), key.key_id());
    }
}

#[test]
fn encrypted_pkcs8_round_trips_and_rejects_wrong_passphrase() {
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
        let key = PrivateKey::generate(kind).unwrap();
        let pem = key.to_encrypted_pem(b"correct horse").unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{pem}"
        );
        let back = PrivateKey::from_pem(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        assert!(matches!(
            PrivateKey::from_pem(&pem, Some(b"wrong horse")),
            Err(KeyError::WrongPassphrase)
        ));
        assert!(matches!(
            PrivateKey::from_pem(&pem, None),
            Err(KeyError::PassphraseRequired)
        ));
        assert_eq!(
            KeyError::WrongPassphrase.to_string(),
            "wrong passphrase: the encrypted private key could not be decrypted with it"
        );
    }
}

#[test]
fn openssl_reads_our_encrypted_key_and_we_read_openssls() {
    // OpenSSL is the reference reader of PKCS#8 / PBES2; cosign and most tools share it.
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyKind::EcdsaP256).unwrap();
    let ours = dir.path().join("ours.pem");
    std::fs::write(&ours, key.to_encrypted_pem(b"pw-1").unwrap()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-passin", "pass:pw-1", "-in"])
        .arg(&ours)
        .output()
        .expect("`openssl` must be installed (apt-get install openssl) for this test");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(public.key_id(), key.key_id());

    // And the other way: an OpenSSL-encrypted PBKDF2 key (openssl's default PBES2) reads here.
    let plain = dir.path().join("plain.pem");
    std::fs::write(&plain, key.to_pkcs8_pem().as_bytes()).unwrap();
    let theirs = dir.path().join("theirs.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:pw-2",
            "-in",
        ])
        .arg(&plain)
        .arg("-out")
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(status.success());
    let read =
        PrivateKey::from_pem(&std::fs::read_to_string(&theirs).unwrap(), Some(b"pw-2")).unwrap();
    assert_eq!(read.key_id(), key.key_id());
}

#[test]
fn ecdsa_verifies_der_and_raw_r_s() {
    let key = PrivateKey::generate(KeyKind::EcdsaP256).unwrap();
    let der = key.sign(b"m").unwrap();
    assert_eq!(der[0], 0x30, "we write ASN.1 DER");
    let raw = der_to_raw(&der);
    assert!(key.public_key().verify(b"m", &der));
    assert!(key.public_key().verify(b"m", &raw));
    assert_eq!(raw_to_der(&raw), der);
    let mut bad = raw.clone();
    bad[63] ^= 1;
    assert!(!key.public_key().verify(b"m", &bad));
}

fn der_to_raw(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

#[test]
fn reads_fixture_keys_of_every_algorithm() {
    let p256 = PublicKey::from_pem(&fixture_str("dsse/dsse-spec-hello-world.pub.pem")).unwrap();
    assert_eq!(p256.algorithm(), KeyAlgorithm::EcdsaP256Sha256);
    let rsa = PublicKey::from_pem(&fixture_str("dsse/in-toto-demo.776a00e2.pub.pem")).unwrap();
    assert_eq!(rsa.algorithm(), KeyAlgorithm::RsaPssSha256);
    let pkcs1 = PublicKey::from_pem_with(
        &fixture_str("dsse/in-toto-demo.776a00e2.pub.pem"),
        lineage_attest::RsaScheme::Pkcs1Sha256,
    )
    .unwrap();
    assert_eq!(pkcs1.algorithm(), KeyAlgorithm::RsaPkcs1Sha256);
    assert_eq!(
        pkcs1.key_id(),
        rsa.key_id(),
        "the id depends on the key, not the scheme"
    );
    let ed = PublicKey::from_pem(&fixture_str(
        "checkpoint/log2025-alpha1.rekor.sigstage.dev.pub.pem",
    ))
    .unwrap();
    assert_eq!(ed.algorithm(), KeyAlgorithm::Ed25519);
}

#[test]
fn bad_key_input_is_an_error_not_a_panic() {
    assert!(matches!(
        PublicKey::from_pem("nothing"),
        Err(lineage_log::keys::KeyError::Pem(_))
    ));
    let private = PrivateKey::generate(KeyKind::Ed25519).unwrap();
    assert!(matches!(
        PublicKey::from_pem(&private.to_pkcs8_pem()),
        Err(lineage_log::keys::KeyError::WrongPemLabel { .. })
    ));
    assert!(PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    assert!(PublicKey::ed25519_from_raw(&[0; 31]).is_err());
    assert!(PrivateKey::from_pkcs8_der(b"garbage").is_err());
}

/// Issue 16: ECDSA P-384 (SHA-384) and P-521 (SHA-512) keys verify DSSE envelopes, in DER and
/// in fixed-width r||s; before, their SPKIs were refused as unsupported curves.
#[test]
fn p384_and_p521_keys_verify_dsse_envelopes() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair};
    use lineage_attest::dsse::{self, TrustedKey, VerifyOptions};
    use pkcs8::der::Encode;

    let rng = SystemRandom::new();
    for (der_alg, fixed_alg, oid, width, want) in [
        (
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            "1.3.132.0.34",
            96,
            KeyAlgorithm::EcdsaP384Sha384,
        ),
        (
            &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
            &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
            "1.3.132.0.35",
            132,
            KeyAlgorithm::EcdsaP521Sha512,
        ),
    ] {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(der_alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(der_alg, pkcs8.as_ref()).unwrap();
        let fixed_pair = EcdsaKeyPair::from_pkcs8(fixed_alg, pkcs8.as_ref()).unwrap();
        // The SPKI as cosign and OpenSSL write it: id-ecPublicKey with the named curve.
        let spki = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
                parameters: Some(spki::ObjectIdentifier::new_unwrap(oid).into()),
            },
            subject_public_key: spki::der::asn1::BitString::from_bytes(pair.public_key().as_ref())
                .unwrap(),
        }
        .to_der()
        .unwrap();
        let key = PublicKey::from_spki_der(&spki).unwrap();
        assert_eq!(key.algorithm(), want);

        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let pae = dsse::pae("application/vnd.in-toto+json", payload);
        for signature in [
            pair.sign(&rng, &pae).unwrap().as_ref().to_vec(),
            fixed_pair.sign(&rng, &pae).unwrap().as_ref().to_vec(),
        ] {
            assert!(key.verify(&pae, &signature));
            let envelope = dsse::Envelope {
                payload_type: "application/vnd.in-toto+json".into(),
                payload: payload.to_vec(),
                signatures: vec![dsse::Signature {
                    keyid: None,
                    sig: signature.clone(),
                }],
            };
            let v = dsse::verify(
                &envelope,
                &[TrustedKey::new(key.clone())],
                &VerifyOptions::default(),
            );
            assert!(v.is_verified(), "{want:?}: {:?}", v.failure);
        }
        let mut wrong = fixed_pair.sign(&rng, &pae).unwrap().as_ref().to_vec();
        wrong[width / 2] ^= 1;
        assert!(!key.verify(&pae, &wrong));
    }
}

#[test]
fn keys_that_cannot_sign_or_old_encryption_are_named_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("`openssl` must be installed (apt-get install openssl) for this test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // An RSA private key: readable, but not a signing key here, and the message says so.
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa.pem",
    ]);
    let e = PrivateKey::from_pem(
        &std::fs::read_to_string(dir.path().join("rsa.pem")).unwrap(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("RSA keys cannot sign here"), "{e}");
    assert!(e.contains("lineage key generate"), "{e}");
    // A P-384 key likewise.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "p384.pem",
    ]);
    let e = PrivateKey::from_pem(
        &std::fs::read_to_string(dir.path().join("p384.pem")).unwrap(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("ECDSA P-384 keys cannot sign here"), "{e}");
    // A key encrypted with PBES1 (openssl's `-v1`): named as such, with the command to fix it.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "p256.pem",
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v1",
        "PBE-SHA1-3DES",
        "-passout",
        "pass:pw",
        "-in",
        "p256.pem",
        "-out",
        "old.pem",
    ]);
    let e = PrivateKey::from_pem(
        &std::fs::read_to_string(dir.path().join("old.pem")).unwrap(),
        Some(b"pw"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("PBES1"), "{e}");
    assert!(e.contains("openssl pkcs8 -topk8 -v2 aes-256-cbc"), "{e}");
    assert!(!e.contains("not valid DER"), "{e}");
}
