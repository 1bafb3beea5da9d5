//! `attest push` and `attest pull`: the ledger's attestations of an image attached to it in
//! its registry, and the Lineage attestations attached there read back and recorded.
//!
//! These are the decisions only. The caller (the adapter) resolves the image to its digest
//! first, so a tag moved meanwhile cannot redirect anything; it attaches through the
//! [`Attach`] port and pulls the attached artifacts itself. What is pushed is every stored
//! attestation of the digest, oldest first; what is pulled is judged by whether its DSSE
//! payload decodes to an in-toto statement that names the digest as a subject. Signatures are
//! not judged here: a pulled attestation is recorded as attached, and `verify DIGEST`
//! (`provenance::verify_digest`) judges stored attestations against the trust policy.
//! Recording refuses the whole pull when one attachment has a problem, and writes in one
//! transaction only the attestations the ledger does not already hold.

use std::collections::BTreeMap;

use lineage_model::{Attestation, Digest, Identity, Record, Timestamp};
use lineage_registry::{
    decode_dsse_payload, decode_statement, keys, Artifact, Attached, PulledArtifact, ReferrersVia,
    Statement,
};
use lineage_store::{Store, StoreError};
use serde::Serialize;

// ---------------------------------------------------------------------------------------
// push

/// The port to the image's registry: attaches an artifact as a referrer of the image (pinned
/// by its digest).
pub trait Attach {
    fn attach(&self, artifact: &Artifact) -> Result<Attached, lineage_registry::Error>;
}

/// A stored attestation, as the artifact that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToPush {
    /// The ledger entry that holds the attestation.
    pub ledger_entry: u64,
    pub predicate_type: String,
    /// The DSSE envelope as a Lineage provenance artifact, annotated with its creation time
    /// and predicate type.
    pub artifact: Artifact,
}

/// The ledger's attestations of `digest`, oldest first, each as the artifact to attach. None
/// stored: empty.
pub fn to_push(store: &dyn Store, digest: &Digest) -> Result<Vec<ToPush>, StoreError> {
    Ok(store
        .facts("attestation", Some(&digest.to_string()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Attestation(a) => Some(to_artifact(e.index, a)),
            _ => None,
        })
        .collect())
}

fn to_artifact(ledger_entry: u64, a: Attestation) -> ToPush {
    let mut artifact = Artifact::lineage_provenance(a.envelope.into_bytes());
    // The predicate type as BuildKit puts it on layers, copied into a tag-schema index too.
    artifact.annotations = BTreeMap::from([
        (keys::CREATED.to_string(), a.at.to_string()),
        (
            keys::IN_TOTO_PREDICATE_TYPE.to_string(),
            a.predicate_type.clone(),
        ),
    ]);
    ToPush {
        ledger_entry,
        predicate_type: a.predicate_type,
        artifact,
    }
}

/// One attestation attached to the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pushed {
    /// The artifact manifest's digest.
    pub manifest: String,
    pub predicate_type: String,
    pub ledger_entry: u64,
    pub via: ReferrersVia,
    /// The referrers tag-schema index, when the registry has no Referrers API.
    pub fallback_tag: Option<String>,
}

/// Why `attest push` stopped: the ledger could not be read, or the registry refused an
/// attachment (those before it stay attached).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Ledger(#[from] StoreError),
    #[error(transparent)]
    Registry(lineage_registry::Error),
}

/// `attest push`: attaches every stored attestation of `digest` through `registry`, oldest
/// first. Nothing stored: an empty report, and the registry is not asked.
pub fn push(
    store: &dyn Store,
    digest: &Digest,
    registry: &dyn Attach,
) -> Result<Vec<Pushed>, PushError> {
    let mut pushed = Vec::new();
    for p in to_push(store, digest)? {
        let done = registry.attach(&p.artifact).map_err(PushError::Registry)?;
        pushed.push(Pushed {
            manifest: done.manifest.to_string(),
            predicate_type: p.predicate_type,
            ledger_entry: p.ledger_entry,
            via: done.via,
            fallback_tag: done.fallback_tag.map(|t| t.to_string()),
        });
    }
    Ok(pushed)
}

// ---------------------------------------------------------------------------------------
// pull

/// A Lineage attestation attached to the image, as read back and judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pulled {
    /// The artifact manifest's digest.
    pub manifest: String,
    pub via: ReferrersVia,
    pub payload_media_type: String,
    /// The statement's predicate type; `None` when the payload does not decode.
    pub predicate_type: Option<String>,
    /// Whether the statement's subjects include the image digest.
    pub names_image: bool,
    /// The DSSE envelope as attached (a JSON string when it is not JSON).
    pub envelope: serde_json::Value,
    /// Why it cannot be recorded: it does not decode, or does not name the digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What `--record` writes for it; `None` exactly when there is a problem.
    #[serde(skip)]
    pub attestation: Option<Attestation>,
}

/// Whether the statement's subjects include `digest` (hex compared in any case).
fn names_digest(statement: &Statement, digest: &Digest) -> bool {
    statement.subjects.iter().any(|m| {
        m.digest
            .get(digest.algorithm().as_str())
            .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    })
}

/// Judges the artifacts pulled from the image `subject` (its digest), in order: each one's
/// statement must decode and name `subject`. `now` is the time a recorded one is stamped with.
pub fn judge(subject: &Digest, pulled: &[PulledArtifact], now: Timestamp) -> Vec<Pulled> {
    pulled.iter().map(|a| judge_one(subject, a, now)).collect()
}

fn judge_one(subject: &Digest, a: &PulledArtifact, now: Timestamp) -> Pulled {
    let envelope = serde_json::from_slice::<serde_json::Value>(&a.payload).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&a.payload).into_owned())
    });
    let decoded = decode_dsse_payload(&a.payload).and_then(|(_, bytes)| decode_statement(&bytes));
    let (predicate_type, names_image, problem) = match &decoded {
        Ok(st) => {
            let names = names_digest(st, subject);
            let problem =
                (!names).then(|| format!("the statement does not name `{subject}` as a subject"));
            (Some(st.predicate_type.clone()), names, problem)
        }
        Err(e) => (None, false, Some(e.to_string())),
    };
    let attestation = match (&problem, &predicate_type) {
        (None, Some(predicate_type)) => Some(Attestation {
            digest: subject.clone(),
            predicate_type: predicate_type.clone(),
            envelope: String::from_utf8_lossy(&a.payload).into_owned(),
            at: now,
        }),
        _ => None,
    };
    Pulled {
        manifest: a.manifest.to_string(),
        via: a.via,
        payload_media_type: a.payload_media_type.clone(),
        predicate_type,
        names_image,
        envelope,
        problem,
        attestation,
    }
}

/// An attachment `--record` refuses: nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attachment {manifest} cannot be recorded: {problem}")]
pub struct Unrecordable {
    pub manifest: String,
    pub problem: String,
}

impl Unrecordable {
    pub fn hint(&self) -> &'static str {
        "pull without `--record` to look at it; nothing was recorded"
    }
}

/// What `attest pull --record` writes: every judged attestation, or the first one with a
/// problem, which refuses them all.
pub fn to_record(pulled: &[Pulled]) -> Result<Vec<Attestation>, Unrecordable> {
    pulled
        .iter()
        .map(|p| match (&p.problem, &p.attestation) {
            (None, Some(a)) => Ok(a.clone()),
            (problem, _) => Err(Unrecordable {
                manifest: p.manifest.clone(),
                problem: problem.clone().unwrap_or_default(),
            }),
        })
        .collect()
}

/// What `attest pull --record` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The ledger entries written, in order.
    pub recorded: Vec<u64>,
    /// Attestations the ledger already held (the same envelope for the same digest).
    pub unchanged: usize,
}

/// Records the attestations the ledger does not hold yet, in one transaction; one whose
/// envelope is already stored for its digest is counted as unchanged. Nothing new: nothing is
/// written.
pub fn record(
    store: &mut dyn Store,
    attestations: Vec<Attestation>,
    now: Timestamp,
    by: Option<&Identity>,
) -> Result<Recorded, StoreError> {
    let mut existing: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut unchanged = 0;
    let mut fresh = Vec::new();
    for a in attestations {
        if !existing.contains_key(&a.digest) {
            let stored = store
                .facts("attestation", Some(&a.digest.to_string()))?
                .into_iter()
                .filter_map(|e| match e.record {
                    Record::Attestation(a) => Some(a.envelope),
                    _ => None,
                })
                .collect();
            existing.insert(a.digest.clone(), stored);
        }
        let known = existing.get_mut(&a.digest).expect("inserted above");
        if known.contains(&a.envelope) {
            unchanged += 1;
        } else {
            // The same envelope twice in one pull is one attestation.
            known.push(a.envelope.clone());
            fresh.push(Record::Attestation(a));
        }
    }
    let recorded = if fresh.is_empty() {
        Vec::new()
    } else {
        store.record_facts(&fresh, now, by)?
    };
    Ok(Recorded {
        recorded,
        unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    /// An unsigned DSSE envelope around an in-toto statement naming `subjects`.
    fn envelope(subjects: &[&str]) -> String {
        let subjects: Vec<serde_json::Value> = subjects
            .iter()
            .map(|hex| serde_json::json!({"name": "app", "digest": {"sha256": hex}}))
            .collect();
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": subjects,
            "predicate": {},
        });
        serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": lineage_attest::dsse::encode_base64(statement.to_string().as_bytes()),
            "signatures": [],
        })
        .to_string()
    }

    fn artifact(manifest: char, payload: &str) -> PulledArtifact {
        PulledArtifact {
            manifest: digest(manifest),
            artifact_type: lineage_registry::LINEAGE_PROVENANCE_ARTIFACT_TYPE.into(),
            annotations: BTreeMap::new(),
            payload_media_type: "application/vnd.dsse.envelope.v1+json".into(),
            payload: payload.as_bytes().to_vec(),
            via: ReferrersVia::Api,
        }
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-01T00:00:00Z").unwrap()
    }

    #[test]
    fn a_statement_naming_the_digest_is_recordable_as_attached() {
        let subject = digest('a');
        // The hex in any case, among other subjects.
        let payload = envelope(&[&"b".repeat(64), &"A".repeat(64)]);
        let judged = judge(&subject, &[artifact('1', &payload)], now());
        let p = &judged[0];
        assert!(p.names_image);
        assert_eq!(p.problem, None);
        assert_eq!(
            p.predicate_type.as_deref(),
            Some("https://slsa.dev/provenance/v1")
        );
        assert_eq!(
            p.envelope,
            serde_json::from_str::<serde_json::Value>(&payload).unwrap()
        );
        // Unsigned, it is still recorded as attached: signatures are judged by `verify`.
        let expected = Attestation {
            digest: subject,
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            envelope: payload,
            at: now(),
        };
        assert_eq!(p.attestation.as_ref(), Some(&expected));
        assert_eq!(to_record(&judged), Ok(vec![expected]));
    }

    #[test]
    fn a_statement_that_does_not_name_the_digest_is_refused() {
        let subject = digest('a');
        let good = artifact('1', &envelope(&[&"a".repeat(64)]));
        let other = artifact('2', &envelope(&[&"b".repeat(64)]));
        let judged = judge(&subject, &[good, other], now());
        let p = &judged[1];
        assert!(!p.names_image);
        assert_eq!(p.attestation, None);
        let problem = format!("the statement does not name `{subject}` as a subject");
        assert_eq!(p.problem.as_deref(), Some(problem.as_str()));
        // One bad attachment refuses them all.
        let refused = to_record(&judged).unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!("attachment {} cannot be recorded: {problem}", digest('2'))
        );
    }

    #[test]
    fn an_undecodable_attachment_is_shown_as_attached_and_refused() {
        let judged = judge(&digest('a'), &[artifact('1', "not json")], now());
        let p = &judged[0];
        assert_eq!(p.predicate_type, None);
        assert!(!p.names_image);
        assert_eq!(p.envelope, serde_json::Value::String("not json".into()));
        assert!(p.problem.as_deref().unwrap().contains("not JSON"), "{p:?}");
        assert_eq!(
            to_record(&judged).unwrap_err().manifest,
            digest('1').to_string()
        );
        // The serialized report keeps the problem and never the attestation.
        let json = serde_json::to_value(p).unwrap();
        assert!(json.get("attestation").is_none());
        assert!(json["problem"].is_string());
    }

    #[test]
    fn nothing_pulled_is_nothing_to_record() {
        assert!(judge(&digest('a'), &[], now()).is_empty());
        assert_eq!(to_record(&[]), Ok(Vec::new()));
    }
}
