//! Trust policy parsing and evaluation.

use lineage_attest::trust::{
    evaluate, Role, TrustConfig, TrustConfigError, TrustOutcome, Untrusted,
};
use lineage_attest::{dsse, KeyKind, PrivateKey};
use lineage_model::{EnvName, Timestamp};

const CONFIG: &str = r#"
[server]
listen = "ignored by the trust parser"

[[trust.keys]]
id = "ci-2025"
public_key_file = "keys/ci-2025.pem"
roles = ["builder"]
not_before = "2025-01-01T00:00:00Z"
not_after = 2025-12-31T23:59:59Z
revoked_at = "2025-06-01T00:00:00Z"

[[trust.keys]]
id = "ci-2026"
public_key_file = "keys/ci-2026.pem"
roles = ["builder"]
not_before = "2025-12-01T00:00:00Z"

[[trust.keys]]
id = "deployer-staging"
public_key_file = "keys/deployer.pem"
roles = ["deployer"]
environments = ["staging"]
"#;

struct World {
    keys: Vec<(String, PrivateKey)>,
    policy: lineage_attest::TrustPolicy,
}

fn world() -> World {
    let keys: Vec<(String, PrivateKey)> =
        ["keys/ci-2025.pem", "keys/ci-2026.pem", "keys/deployer.pem"]
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    PrivateKey::generate(KeyKind::EcdsaP256).unwrap(),
                )
            })
            .collect();
    let config = TrustConfig::from_toml_str(CONFIG).unwrap();
    assert_eq!(config.keys.len(), 3);
    let policy = config
        .resolve(|path| {
            keys.iter()
                .find(|(p, _)| std::path::Path::new(p) == path)
                .map(|(_, k)| k.public_key().to_pem())
                .ok_or("no such file")
        })
        .unwrap();
    World { keys, policy }
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn reason(outcome: TrustOutcome) -> String {
    match outcome {
        TrustOutcome::Untrusted { reasons } => reasons
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        TrustOutcome::Trusted { key } => format!("trusted by {key}"),
    }
}

#[test]
fn policy_decisions_give_precise_reasons() {
    let w = world();
    let prod = EnvName::parse("production").unwrap();
    let staging = EnvName::parse("staging").unwrap();
    let ids = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // (role, environment, signing time, verified key ids, expected verdict)
    type Case<'a> = (Role, Option<&'a EnvName>, &'a str, Vec<String>, &'a str);
    let cases: Vec<Case> = vec![
        (Role::Builder, None, "2025-03-01T00:00:00Z", ids(&["ci-2025"]), "trusted by ci-2025"),
        (Role::Builder, None, "2025-07-01T00:00:00Z", ids(&["ci-2025"]),
         "key `ci-2025` was revoked at 2025-06-01T00:00:00Z; signature made at 2025-07-01T00:00:00Z after revocation"),
        (Role::Builder, None, "2024-07-01T00:00:00Z", ids(&["ci-2025"]),
         "key `ci-2025` is valid from 2025-01-01T00:00:00Z; signature made at 2024-07-01T00:00:00Z, before that"),
        (Role::Builder, None, "2025-11-01T00:00:00Z", ids(&["ci-2026"]),
         "key `ci-2026` is valid from 2025-12-01T00:00:00Z; signature made at 2025-11-01T00:00:00Z, before that"),
        // Rotation: the old key revoked, the new one valid, either signature suffices.
        (Role::Builder, None, "2026-01-10T00:00:00Z", ids(&["ci-2025", "ci-2026"]), "trusted by ci-2026"),
        (Role::Deployer, Some(&prod), "2026-01-10T00:00:00Z", ids(&["deployer-staging"]),
         "signed by key `deployer-staging`, which is not trusted for production (only for `staging`)"),
        (Role::Deployer, Some(&staging), "2026-01-10T00:00:00Z", ids(&["deployer-staging"]), "trusted by deployer-staging"),
        (Role::Deployer, Some(&staging), "2026-01-10T00:00:00Z", ids(&["ci-2026"]),
         "signed by key `ci-2026`, which is not trusted as deployer (its roles: `builder`)"),
        (Role::Builder, None, "2026-01-10T00:00:00Z", ids(&["stranger"]),
         "signed by key `stranger`, which is not in the trust policy"),
        (Role::Builder, None, "2026-01-10T00:00:00Z", ids(&[]),
         "no signature verified with any key in the trust policy"),
    ];
    for (role, env, at, verified, want) in cases {
        let got = reason(evaluate(&w.policy, role, env, t(at), &verified));
        assert_eq!(got, want, "{role} {env:?} {at} {verified:?}");
    }
}

#[test]
fn dsse_verification_feeds_the_policy() {
    // The flow the CLI follows: verify against every policy key, then evaluate.
    let w = world();
    let deployer = &w.keys[2].1;
    let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, b"{}", &[deployer]).unwrap();
    let verification = dsse::verify(
        &envelope,
        &w.policy.trusted_keys(),
        &dsse::VerifyOptions::default(),
    );
    assert_eq!(
        verification.verified_keys,
        vec!["deployer-staging".to_string()]
    );
    let prod = EnvName::parse("production").unwrap();
    let outcome = evaluate(
        &w.policy,
        Role::Deployer,
        Some(&prod),
        t("2026-01-01T00:00:00Z"),
        &verification.verified_keys,
    );
    match outcome {
        TrustOutcome::Untrusted { reasons } => {
            assert_eq!(reasons[0].code(), "trust-wrong-environment")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Untrusted::NoVerifiedSignature.code(),
        "trust-no-verified-signature"
    ));
}

#[test]
fn bad_trust_config_is_rejected_with_the_entry_named() {
    let cases = [
        ("[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = []\n", "trust key `k`: `roles` is empty"),
        ("[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = [\"pilot\"]\n", "unknown variant"),
        ("[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = [\"builder\"]\nrevoked_at = \"yesterday\"\n", "`revoked_at`"),
        ("[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = [\"builder\"]\nenviron = [\"x\"]\n", "unknown field"),
        ("[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = [\"builder\"]\n[[trust.keys]]\nid = \"k\"\npublic_key_file = \"g\"\nroles = [\"builder\"]\n", "listed twice"),
    ];
    for (text, want) in cases {
        let err = TrustConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}\n=> {err}");
    }
    assert!(TrustConfig::from_toml_str("").unwrap().keys.is_empty());
    let missing = TrustConfig::from_toml_str(
        "[[trust.keys]]\nid = \"k\"\npublic_key_file = \"f\"\nroles = [\"builder\"]\n",
    )
    .unwrap()
    .resolve(|_| Err("not found"));
    assert!(matches!(missing, Err(TrustConfigError::Load { .. })));
}
