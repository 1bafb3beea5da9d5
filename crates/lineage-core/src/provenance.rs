//! Signed provenance in the ledger: sign a build into an in-toto SLSA v1 attestation, and
//! judge a digest's stored attestations against the trust policy.
//!
//! The signing time used for rotation and revocation is when the ledger recorded the
//! attestation, not a time inside the statement: the statement's own time is asserted by the
//! very key being judged, so a stolen key could backdate it; the ledger's time is covered by
//! the signed log.

use lineage_attest::{dsse, evaluate, PrivateKey, Role, TrustOutcome, TrustPolicy, VerifyOptions};
use lineage_model::{
    Attestation, BuildRecord, Digest, EnvName, Identity, Record, ServiceName, Timestamp,
};
use lineage_policy::SignatureStatus;
use lineage_store::Store;

use crate::Error;

/// The in-toto predicate type Lineage signs builds with.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// Signs `build`'s SLSA v1 provenance with `key`, as an attestation ready to record.
pub fn sign_build(
    build: &BuildRecord,
    key: &PrivateKey,
    at: Timestamp,
) -> Result<Attestation, Error> {
    let statement = lineage_attest::slsa::provenance_statement(build).map_err(|e| {
        Error::Invalid(
            format!("cannot make provenance for `{}`: {e}", build.digest),
            "record the builder (`--builder`) or the CI system (`--ci-system`)".into(),
        )
    })?;
    let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &statement.to_json(), &[key])
        .map_err(|e| Error::Invalid(format!("cannot sign: {e}"), "check the signing key".into()))?;
    Ok(Attestation {
        digest: build.digest.clone(),
        predicate_type: SLSA_PROVENANCE_V1.into(),
        envelope: envelope.to_json(),
        at,
    })
}

/// The provenance signature status of `digest` for a deploy to `env`.
///
/// With no trusted keys configured, nothing is checked ([`SignatureStatus::NotChecked`]).
/// Otherwise every stored provenance attestation of the digest is verified against every
/// configured key and then judged by the policy for the builder role in `env`; the first
/// trusted one wins, else the reasons of the best candidate are reported.
pub fn status(
    store: &dyn Store,
    policy: &TrustPolicy,
    env: Option<&EnvName>,
    digest: &Digest,
) -> Result<SignatureStatus, Error> {
    if policy.keys.is_empty() {
        return Ok(SignatureStatus::NotChecked);
    }
    let trusted = policy.trusted_keys();
    let mut reasons = Vec::new();
    let mut any = false;
    for Stored {
        index,
        recorded_at,
        attestation: att,
    } in stored(store, digest)?
    {
        any = true;
        let verification =
            dsse::verify_json(att.envelope.as_bytes(), &trusted, &VerifyOptions::default());
        if let Some(failure) = &verification.failure {
            reasons.push(format!("attestation at ledger entry {}: {failure}", index));
            continue;
        }
        let envelope = dsse::Envelope::from_json(att.envelope.as_bytes()).map_err(|e| {
            Error::Invalid(
                format!("ledger entry {} holds a malformed envelope: {e}", index),
                "run `lineage log verify`".into(),
            )
        })?;
        match lineage_attest::Statement::from_json(&envelope.payload) {
            Ok(st) if st.has_subject_digest(digest) => {}
            Ok(_) => {
                reasons.push(format!(
                    "attestation at ledger entry {} names another digest",
                    index
                ));
                continue;
            }
            Err(e) => {
                reasons.push(format!("attestation at ledger entry {}: {e}", index));
                continue;
            }
        }
        match evaluate(
            policy,
            Role::Builder,
            env,
            recorded_at,
            &verification.verified_keys,
        ) {
            TrustOutcome::Trusted { key } => return Ok(SignatureStatus::Verified { key }),
            TrustOutcome::Untrusted { reasons: why } => {
                reasons.extend(why.iter().map(|r| r.to_string()));
            }
        }
    }
    if !any {
        return Ok(SignatureStatus::Unsigned);
    }
    Ok(SignatureStatus::Untrusted {
        reason: reasons.join("; "),
    })
}

/// The ledger's answer to `lineage verify DIGEST`: the digest's stored provenance judged
/// against the trust policy ([`status`]), and when it is not verified, why, as a stable code
/// and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerVerdict {
    /// A stored attestation for the digest is signed by this trusted key.
    Verified { key: String },
    /// Not verified. `code` is `untrusted` (signed, but no signature is trusted for it),
    /// `unsigned` (a recorded build without signed provenance) or `unknown-digest` (the
    /// ledger holds neither a build nor provenance for it).
    NotVerified { code: &'static str, message: String },
}

/// Judges `digest` for `lineage verify DIGEST` (in `env`, when given): verified by a trusted
/// key, or not, with the code that says why.
pub fn verify_digest(
    store: &dyn Store,
    policy: &TrustPolicy,
    env: Option<&EnvName>,
    digest: &Digest,
) -> Result<LedgerVerdict, Error> {
    Ok(match status(store, policy, env, digest)? {
        SignatureStatus::Verified { key } => LedgerVerdict::Verified { key },
        SignatureStatus::Untrusted { reason } => LedgerVerdict::NotVerified {
            code: "untrusted",
            message: reason,
        },
        SignatureStatus::Unsigned | SignatureStatus::NotChecked => {
            if store.build(digest)?.is_some() {
                LedgerVerdict::NotVerified {
                    code: "unsigned",
                    message: format!("the ledger holds no signed provenance for `{digest}`; sign it with `lineage attest sign {digest} --key KEY`"),
                }
            } else {
                LedgerVerdict::NotVerified {
                    code: "unknown-digest",
                    message: format!("the ledger holds no build and no provenance for `{digest}`"),
                }
            }
        }
    })
}

// -------------------------------------------------------------------------------------------
// The stored provenance of a digest, and `attest sign`
// -------------------------------------------------------------------------------------------

/// A provenance attestation as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its ledger entry.
    pub index: u64,
    /// When the ledger recorded it: the signing time trust is judged by.
    pub recorded_at: Timestamp,
    pub attestation: Attestation,
}

/// The SLSA v1 provenance attestations stored for `digest`, oldest first: what [`status`]
/// judges and what [`newest`] picks from.
pub fn stored(store: &dyn Store, digest: &Digest) -> Result<Vec<Stored>, Error> {
    Ok(store
        .facts("attestation", Some(&digest.to_string()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Attestation(a) if a.predicate_type == SLSA_PROVENANCE_V1 => Some(Stored {
                index: e.index,
                recorded_at: e.recorded_at,
                attestation: a,
            }),
            _ => None,
        })
        .collect())
}

/// The newest stored SLSA v1 provenance attestation of `digest` (`attest export`).
pub fn newest(store: &dyn Store, digest: &Digest) -> Result<Option<Attestation>, Error> {
    Ok(stored(store, digest)?.pop().map(|s| s.attestation))
}

/// What `attest sign` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignReport {
    pub index: u64,
    /// The service of the signed build.
    pub service: ServiceName,
    pub attestation: Attestation,
    /// The signing key's id.
    pub key_id: String,
}

/// `lineage attest sign DIGEST --key KEY`: signs the recorded build's SLSA v1 provenance and
/// records the attestation. A digest with no recorded build is refused, nothing written.
pub fn attest_recorded(
    store: &mut dyn Store,
    digest: &Digest,
    key: &PrivateKey,
    by: Option<&Identity>,
    now: Timestamp,
) -> Result<SignReport, Error> {
    let Some(build) = store.build(digest)? else {
        return Err(Error::Invalid(
            format!("no build is recorded for `{digest}`"),
            "record the build first: `lineage build record --image REF@DIGEST … --sign-key KEY`"
                .into(),
        ));
    };
    let attestation = sign_build(&build, key, now)?;
    let index = store.record_facts(&[Record::Attestation(attestation.clone())], now, by)?[0];
    Ok(SignReport {
        index,
        service: build.service,
        attestation,
        key_id: key.key_id().to_string(),
    })
}
