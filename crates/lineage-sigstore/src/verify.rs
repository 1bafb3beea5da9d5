//! Offline verification of a signature and its transparency evidence against a trusted root.
//!
//! The order follows what each step needs: the signature first (with the key the material
//! names), then the log evidence (which yields the verified signing time), then the
//! certificate chain *at* that time, then the identity policy. The steps are those of the
//! Sigstore client specification ("Verification") and sigstore-go's verifier:
//!
//! 1. signer material and the message signature or DSSE envelope;
//! 2. per transparency-log entry: the log is trusted, the entry body contains this signature,
//!    signer and digest, the SET verifies (Rekor v1), the inclusion proof reaches the root of a
//!    checkpoint signed by the log (RFC 6962 §2.1.1, C2SP signed-note);
//! 3. RFC 3161 time-stamps over the signature, verified against the timestamp authorities;
//! 4. the Fulcio chain at every verified time (RFC 5280 §6.1);
//! 5. the identity and issuer policy.
//!
//! Before any of these, the signer material and the policy decide who must have signed; a
//! certificate signer with a policy that lacks the identity or the issuer is refused there
//! ([`IdentityPolicy::certificate_matchers`]), so nothing is verified under a policy that could
//! not judge the result.

use lineage_log::merkle;
use lineage_model::{Algorithm, Digest};
use time::OffsetDateTime;

use crate::bundle::{Bundle, BundleVersion, Content, DsseEnvelope, TlogEntry};
use crate::checkpoint;
use crate::keys::{b64_encode, sha256, Hash, VerifyingKey, SUPPORTED_HASHES};
use crate::outcome::{Reason, Run, Signer, Stop, Verification};
use crate::policy::{IdentityPolicy, Matcher, PolicyError};
use crate::rekor::{self, EntryBody, LoggedVerifier};
use crate::sct;
use crate::trusted_root::{TransparencyLog, TrustedRoot};
use crate::tsa::TimestampToken;
use crate::x509::{self, fmt_time, Certificate, PathError, Purpose};

/// The in-toto payload type (in-toto attestation framework, `envelope.md`).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// What the signature is claimed to be over.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes: its digests are computed here.
    Bytes(&'a [u8]),
    /// Only the artifact's digest (sha256 or sha512).
    Digest(&'a Digest),
    /// For DSSE bundles only: accept any Statement subject; the caller inspects
    /// [`Verification::statement`]. A message signature cannot be verified this way.
    Any,
}

impl Artifact<'_> {
    /// The artifact's digest under `hash`, when it can be known: computed from the bytes, or
    /// the given digest when it is of that algorithm.
    pub(crate) fn digest(&self, hash: Hash) -> Option<Vec<u8>> {
        match self {
            Artifact::Bytes(b) => Some(hash.digest(b)),
            Artifact::Digest(d) => {
                let given = match d.algorithm() {
                    Algorithm::Sha256 => Hash::Sha256,
                    Algorithm::Sha512 => Hash::Sha512,
                };
                (given == hash).then(|| hex::decode(d.hex()).expect("a checked digest is hex"))
            }
            Artifact::Any => None,
        }
    }
}

/// What was signed, borrowed from a bundle or a cosign layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signed<'a> {
    Message {
        signature: &'a [u8],
        /// The bundle's `messageDigest`, which must agree with the artifact.
        claimed_digest: Option<(&'a str, &'a [u8])>,
    },
    Dsse {
        envelope: &'a DsseEnvelope,
        /// The envelope exactly as stored (a cosign `.att` layer), needed for `intoto` 0.0.1
        /// entries, which log only the hash of those bytes.
        raw: Option<&'a [u8]>,
    },
}

impl Signed<'_> {
    fn signature(&self) -> Option<&[u8]> {
        match self {
            Signed::Message { signature, .. } => Some(signature),
            Signed::Dsse { envelope, .. } => envelope.signatures.first().map(|s| &s.sig[..]),
        }
    }
}

/// Everything a verification looks at, independent of the container format.
pub(crate) struct Evidence<'a> {
    /// The Fulcio leaf, or `None` for a managed-key signature.
    pub leaf: Option<&'a Certificate>,
    pub signed: Signed<'a>,
    pub entries: &'a [TlogEntry],
    pub timestamps: &'a [Vec<u8>],
    /// Bundles v0.2+ must carry inclusion proofs (the bundle spec's requirement).
    pub require_inclusion_proof: bool,
    /// Whether at least one log entry is required.
    pub require_tlog: bool,
}

/// Verify a parsed bundle. `Err` when the bundle is signed by a certificate and the policy
/// does not name both the identity and the issuer.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Verification, PolicyError> {
    let mut run = Run::default();
    run.pass(
        "media-type",
        format!(
            "Sigstore bundle v{} (`{}`)",
            bundle.version.as_str(),
            bundle.media_type
        ),
    );
    let signed = match &bundle.content {
        Content::MessageSignature { digest, signature } => Signed::Message {
            signature,
            claimed_digest: digest.as_ref().map(|(a, d)| (a.as_str(), &d[..])),
        },
        Content::Dsse(envelope) => Signed::Dsse {
            envelope,
            raw: None,
        },
    };
    let evidence = Evidence {
        leaf: bundle.material.leaf(),
        signed,
        entries: &bundle.tlog_entries,
        timestamps: &bundle.rfc3161_timestamps,
        require_inclusion_proof: bundle.version >= BundleVersion::V0_2,
        require_tlog: true,
    };
    let _ = verify_evidence(&mut run, &evidence, artifact, root, policy)?;
    Ok(run.finish())
}

/// Parse and verify a bundle's JSON. Structural problems (an unknown media type, bad base64,
/// a broken certificate) are failed verifications with a reason; `Err` only when the bytes
/// are not JSON of a bundle's shape at all, or when the policy cannot judge the signer
/// ([`BundleError::Policy`](crate::BundleError::Policy)).
pub fn verify_bundle_json(
    json: &[u8],
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Verification, crate::BundleError> {
    match Bundle::from_json(json) {
        Ok(bundle) => Ok(verify_bundle(&bundle, artifact, root, policy)?),
        Err(crate::BundleError::UnknownMediaType(mt)) => {
            let mut run = Run::default();
            run.fail(
                "media-type",
                Reason::UnknownMediaType,
                format!("unknown bundle media type `{mt}`"),
            );
            Ok(run.finish())
        }
        Err(e @ crate::BundleError::Malformed { .. }) => {
            let mut run = Run::default();
            run.fail("bundle", Reason::MalformedBundle, e.to_string());
            Ok(run.finish())
        }
        Err(e) => Err(e),
    }
}

/// Who must have signed, decided from the signer material and the policy before anything is
/// checked.
enum Signing<'a> {
    /// A Fulcio certificate, judged against both matchers.
    Certificate {
        leaf: &'a Certificate,
        identity: &'a Matcher,
        issuer: &'a Matcher,
    },
    /// The managed key the policy names.
    Key(&'a VerifyingKey),
    /// The material and the policy disagree about the kind of signer: a failed verification.
    Mismatch(&'static str),
}

/// Verify the evidence. The outer `Err` is "could not decide" (the policy cannot judge a
/// certificate signer) and leaves `run` untouched; the inner `Err` is a failed check, already
/// recorded in `run`.
pub(crate) fn verify_evidence(
    run: &mut Run,
    ev: &Evidence<'_>,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    policy: &IdentityPolicy,
) -> Result<Result<(), Stop>, PolicyError> {
    let signing = match (ev.leaf, &policy.key) {
        (Some(leaf), None) => {
            let (identity, issuer) = policy.certificate_matchers()?;
            Signing::Certificate {
                leaf,
                identity,
                issuer,
            }
        }
        (None, Some(key)) => Signing::Key(key),
        (Some(_), Some(_)) => Signing::Mismatch(
            "the signature is by a certificate, but the policy requires a managed key",
        ),
        (None, None) => {
            Signing::Mismatch("the signature is by a managed key; supply its public key")
        }
    };
    Ok(check_evidence(run, ev, &signing, artifact, root, policy.at))
}

fn check_evidence(
    run: &mut Run,
    ev: &Evidence<'_>,
    signing: &Signing<'_>,
    artifact: Artifact<'_>,
    root: &TrustedRoot,
    at: Option<OffsetDateTime>,
) -> Result<(), Stop> {
    // 1. Who claims to have signed.
    let (key, logged_signer): (&VerifyingKey, LoggedVerifier) = match *signing {
        Signing::Certificate { leaf, .. } => match leaf.public_key() {
            Ok(k) => (k, LoggedVerifier::Certificate(leaf.der().to_vec())),
            Err(e) => {
                return Err(run.fail(
                    "signer",
                    Reason::UntrustedCertificate,
                    format!("the signing certificate's key is unusable: {e}"),
                ))
            }
        },
        Signing::Key(k) => (k, LoggedVerifier::PublicKey(k.spki_der().to_vec())),
        Signing::Mismatch(detail) => return Err(run.fail("signer", Reason::KeyRequired, detail)),
    };
    run.pass(
        "signer",
        match ev.leaf {
            Some(_) => format!("certificate with {} key", key.algorithm().as_str()),
            None => format!("managed {} key", key.algorithm().as_str()),
        },
    );

    // 1b. The signature over the artifact or envelope.
    verify_signed(run, ev.signed, artifact, key)?;

    // 2. Transparency-log entries.
    if ev.entries.is_empty() {
        if ev.require_tlog {
            return Err(run.fail(
                "tlog-entry",
                Reason::MissingTlogEntry,
                "no transparency-log entry: the signature was never proven to be logged",
            ));
        }
        run.pass("tlog-entry", "none required for a managed-key signature");
    }
    let mut times: Vec<OffsetDateTime> = Vec::new();
    let mut logs_without_time: Vec<&TransparencyLog> = Vec::new();
    for entry in ev.entries {
        match verify_entry(run, entry, ev, &logged_signer, artifact, root)? {
            (_, Some(t)) => times.push(t),
            (log, None) => logs_without_time.push(log),
        }
    }

    // 3. RFC 3161 time-stamps. As in the reference clients, a bundle needs enough verified
    // times (threshold 1, SETs included), not every time-stamp to verify: one that does not
    // (another authority's, another signing's) is set aside and named, never trusted.
    let mut set_aside: Vec<String> = Vec::new();
    for (i, ts) in ev.timestamps.iter().enumerate() {
        match verify_timestamp(ts, ev.signed.signature().unwrap_or_default(), root) {
            Ok((at, tsa)) => {
                run.pass(
                    "timestamp",
                    format!("time-stamp #{i}: {} by {tsa}", fmt_time(at)),
                );
                times.push(at);
            }
            Err(why) => set_aside.push(format!("time-stamp #{i} {why}")),
        }
    }
    if !set_aside.is_empty() {
        let needs_time = matches!(signing, Signing::Certificate { .. }) && at.is_none();
        if times.is_empty() && needs_time {
            return Err(run.fail(
                "timestamp",
                Reason::TimestampInvalid,
                format!("no verified time (threshold 1): {}", set_aside.join("; ")),
            ));
        }
        run.pass(
            "timestamp",
            format!(
                "set aside, not trusted ({} verified time(s) suffice): {}",
                times.len(),
                set_aside.join("; ")
            ),
        );
    }
    // Rekor v2 entries have no integrated time: their log key must be valid at the
    // time-stamp's time instead.
    for log in logs_without_time {
        if let Some(t) = times.iter().find(|t| !log.valid_for.contains(**t)) {
            return Err(run.fail(
                "tlog-entry",
                Reason::LogKeyNotValid,
                format!(
                    "the key of log {} is not valid at {}",
                    log.base_url,
                    fmt_time(*t)
                ),
            ));
        }
    }

    // 4. Signing time and the certificate chain.
    let check_times: Vec<OffsetDateTime> = match at {
        Some(at) => vec![at],
        None => times,
    };
    run.signing_time = check_times.iter().min().copied();

    match *signing {
        Signing::Certificate {
            leaf,
            identity,
            issuer,
        } => {
            if check_times.is_empty() {
                return Err(run.fail(
                    "signing-time",
                    Reason::NoSigningTime,
                    "no verified signing time (no SET and no trusted time-stamp)",
                ));
            }
            let mut distinct = check_times.clone();
            distinct.sort();
            distinct.dedup();
            let mut issuer_cert = None;
            for t in &distinct {
                issuer_cert = Some(verify_chain(run, leaf, *t, root)?);
            }
            let issuer_cert = issuer_cert.expect("at least one signing time");
            run.pass(
                "certificate-chain",
                format!(
                    "chains to a trusted Fulcio CA and is valid at {}",
                    distinct
                        .iter()
                        .map(|t| fmt_time(*t))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            verify_sct(run, leaf, issuer_cert, root)?;
            verify_identity(run, leaf, identity, issuer)?;
        }
        Signing::Key(_) | Signing::Mismatch(_) => {
            run.signer = Some(Signer::Key {
                key_id: hex::encode(key.spki_sha256()),
            });
        }
    }
    Ok(())
}

/// Verify one RFC 3161 time-stamp over `signature`: its time and the authority's URI, or why
/// it cannot be trusted.
fn verify_timestamp(
    der: &[u8],
    signature: &[u8],
    root: &TrustedRoot,
) -> Result<(OffsetDateTime, String), String> {
    let token = TimestampToken::parse(der).map_err(|e| format!("is malformed: {e}"))?;
    if !token.covers(signature) {
        return Err("is for another signature (its message imprint differs)".into());
    }
    let tsa = token
        .verify(root)
        .map_err(|e| format!("is not trusted: {e}"))?;
    Ok((token.gen_time, tsa))
}

/// Verify the signature over the artifact or the envelope, and that the artifact is the one
/// signed (the bundle's message digest, or a Statement subject).
fn verify_signed(
    run: &mut Run,
    signed: Signed<'_>,
    artifact: Artifact<'_>,
    key: &VerifyingKey,
) -> Result<(), Stop> {
    match signed {
        Signed::Message {
            signature,
            claimed_digest,
        } => {
            // The hash is the one the bundle says the signer used (a P-384 certificate may
            // sign SHA-256 digests), and the key's usual hash only when the bundle says none.
            let hash = match claimed_digest {
                Some((alg, _)) => match Hash::from_name(alg) {
                    Some(h) => h,
                    None => {
                        return Err(run.fail(
                            "artifact",
                            Reason::MalformedBundle,
                            format!(
                                "message digest algorithm `{alg}` is not supported (supported: {SUPPORTED_HASHES})"
                            ),
                        ))
                    }
                },
                None => key.default_hash(),
            };
            let Some(digest) = artifact.digest(hash) else {
                let detail = match artifact {
                    Artifact::Digest(d) => format!(
                        "the bundle signed a {} digest, and `{d}` is {}: pass the artifact itself or its {} digest",
                        hash.as_str(),
                        d.algorithm().as_str(),
                        hash.as_str()
                    ),
                    _ => "a message signature can only be checked against the artifact or its digest".into(),
                };
                return Err(run.fail("artifact", Reason::ArtifactMismatch, detail));
            };
            let shown = format!("{}:{}", hash.as_str(), hex::encode(&digest));
            if let Some((_, claimed)) = claimed_digest {
                if claimed != &digest[..] {
                    return Err(run.fail(
                        "artifact",
                        Reason::ArtifactMismatch,
                        format!(
                            "the artifact is {shown}, but the bundle signed {}:{}",
                            hash.as_str(),
                            hex::encode(claimed)
                        ),
                    ));
                }
            }
            run.pass("artifact", shown);
            let ok = match artifact {
                Artifact::Bytes(b) => key.verify_with(hash, b, signature),
                _ => key.verify_prehashed(hash, &digest, signature),
            };
            if !ok {
                return Err(run.fail(
                    "signature",
                    Reason::SignatureInvalid,
                    "the signature does not verify over the artifact with the signer's key",
                ));
            }
            run.pass("signature", "verifies over the artifact");
        }
        Signed::Dsse { envelope, .. } => {
            if envelope.signatures.len() != 1 {
                return Err(run.fail(
                    "signature",
                    Reason::WrongSignatureCount,
                    format!(
                        "a Sigstore DSSE envelope must carry exactly one signature, this one has {}",
                        envelope.signatures.len()
                    ),
                ));
            }
            let pae = lineage_attest::dsse::pae(&envelope.payload_type, &envelope.payload);
            if !key.verify(&pae, &envelope.signatures[0].sig) {
                return Err(run.fail(
                    "signature",
                    Reason::SignatureInvalid,
                    "the DSSE signature does not verify over the envelope's PAE with the signer's key",
                ));
            }
            run.pass("signature", "DSSE signature verifies over the PAE");
            if envelope.payload_type == IN_TOTO_PAYLOAD_TYPE {
                let statement: serde_json::Value = serde_json::from_slice(&envelope.payload)
                    .map_err(|e| {
                        run.fail(
                            "statement",
                            Reason::PayloadInvalid,
                            format!("the in-toto payload is not JSON: {e}"),
                        )
                    })?;
                if statement.get("_type").and_then(|t| t.as_str()).is_none() {
                    return Err(run.fail(
                        "statement",
                        Reason::PayloadInvalid,
                        "the in-toto payload is not a Statement (no `_type`)",
                    ));
                }
                check_subject(run, &statement, artifact)?;
                run.statement = Some(statement);
            } else if !matches!(artifact, Artifact::Any) {
                return Err(run.fail(
                    "subject",
                    Reason::PayloadInvalid,
                    format!(
                        "payload type `{}` is not an in-toto Statement, so it names no subject",
                        envelope.payload_type
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether one of the Statement's subjects names the artifact, under any digest algorithm
/// both sides have (npm provenance names packages by sha512 only).
fn check_subject(
    run: &mut Run,
    statement: &serde_json::Value,
    artifact: Artifact<'_>,
) -> Result<(), Stop> {
    if matches!(artifact, Artifact::Any) {
        run.pass(
            "subject",
            "not checked: no artifact given; the caller inspects the Statement",
        );
        return Ok(());
    }
    let mut named = Vec::new();
    for subject in statement
        .get("subject")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        for (alg, value) in subject
            .get("digest")
            .and_then(|d| d.as_object())
            .into_iter()
            .flatten()
        {
            let (Some(hash), Some(value)) = (Hash::from_name(alg), value.as_str()) else {
                continue;
            };
            let shown = format!("{}:{value}", hash.as_str());
            if artifact
                .digest(hash)
                .is_some_and(|d| hex::encode(d).eq_ignore_ascii_case(value))
            {
                run.pass("subject", format!("the Statement names {shown}"));
                return Ok(());
            }
            named.push(shown);
        }
    }
    let ours = match artifact {
        Artifact::Digest(d) => d.to_string(),
        _ => format!(
            "sha256:{}",
            hex::encode(artifact.digest(Hash::Sha256).unwrap_or_default())
        ),
    };
    Err(run.fail(
        "subject",
        Reason::SubjectMismatch,
        format!(
            "the Statement's subjects ({}) do not include {ours}",
            if named.is_empty() {
                "none with a supported digest".to_string()
            } else {
                named.join(", ")
            }
        ),
    ))
}

/// Verify one log entry; returns its log and its verified integrated time (SET), if any.
fn verify_entry<'r>(
    run: &mut Run,
    entry: &TlogEntry,
    ev: &Evidence<'_>,
    logged_signer: &LoggedVerifier,
    artifact: Artifact<'_>,
    root: &'r TrustedRoot,
) -> Result<(&'r TransparencyLog, Option<OffsetDateTime>), Stop> {
    let Some(log) = root.tlog(&entry.log_id) else {
        return Err(run.fail(
            "tlog-entry",
            Reason::UnknownLog,
            format!(
                "the entry is in log {}, which the trusted root does not list",
                hex::encode(&entry.log_id)
            ),
        ));
    };
    let body =
        EntryBody::parse(&entry.canonicalized_body, &entry.kind, &entry.version).map_err(|e| {
            run.fail(
                "tlog-entry",
                Reason::TlogEntryMismatch,
                format!("unusable log entry body: {e}"),
            )
        })?;
    bind(&body, logged_signer, ev.signed, artifact).map_err(|e| {
        run.fail(
            "tlog-entry",
            Reason::TlogEntryMismatch,
            format!("the log entry does not contain this signature: {e}"),
        )
    })?;
    run.pass(
        "tlog-entry",
        format!(
            "{} {} entry {} in {} contains this signature and signer",
            entry.kind, entry.version, entry.log_index, log.base_url
        ),
    );

    let key = log.key.as_ref();
    let mut integrated = None;
    match (&entry.signed_entry_timestamp, entry.integrated_time) {
        (Some(set), Some(t)) => {
            let Some(key) = key else {
                return Err(run.fail(
                    "set",
                    Reason::UnknownLog,
                    format!("the key of log {} is not usable", log.base_url),
                ));
            };
            if !rekor::verify_set(
                key,
                set,
                &entry.canonicalized_body,
                t,
                &entry.log_id,
                entry.log_index,
            ) {
                return Err(run.fail(
                    "set",
                    Reason::SetInvalid,
                    "the signed entry timestamp does not verify with the log's key",
                ));
            }
            let at = OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| run.fail("set", Reason::SetInvalid, "integrated time out of range"))?;
            if !log.valid_for.contains(at) {
                return Err(run.fail(
                    "set",
                    Reason::LogKeyNotValid,
                    format!(
                        "the key of log {} is not valid at {}",
                        log.base_url,
                        fmt_time(at)
                    ),
                ));
            }
            run.pass("set", format!("log promised inclusion at {}", fmt_time(at)));
            integrated = Some(at);
        }
        (Some(_), None) => {
            return Err(run.fail(
                "set",
                Reason::SetInvalid,
                "a signed entry timestamp without an integrated time cannot be checked",
            ))
        }
        (None, _) => run.pass(
            "set",
            "absent (Rekor v2 entries carry none); the inclusion proof is required",
        ),
    }

    match &entry.inclusion_proof {
        Some(proof) => {
            let leaf = merkle::leaf_hash(&entry.canonicalized_body);
            let fail = |run: &mut Run, detail: String| {
                run.fail("inclusion-proof", Reason::InclusionProofInvalid, detail)
            };
            let root_hash: [u8; 32] = proof.root_hash[..].try_into().map_err(|_| {
                fail(
                    run,
                    format!(
                        "the proof's root hash is {} bytes, not 32",
                        proof.root_hash.len()
                    ),
                )
            })?;
            let hashes = merkle::hashes_from_slices(&proof.hashes)
                .map_err(|e| fail(run, format!("malformed proof: {e}")))?;
            let reach = |root: &[u8; 32]| {
                // The shard-local index: Rekor v1's global `logIndex` spans all shards and
                // would describe a different path.
                merkle::verify_inclusion(&leaf, proof.log_index, proof.tree_size, &hashes, root)
            };
            let Some(cp_text) = proof.checkpoint.as_deref() else {
                // Nothing vouches for the proof's root; still, a proof for another entry or
                // tree is reported as what it is.
                reach(&root_hash).map_err(|e| {
                    fail(
                        run,
                        format!("the inclusion proof does not reach its own root hash: {e}"),
                    )
                })?;
                return Err(run.fail(
                    "checkpoint",
                    Reason::CheckpointInvalid,
                    "the inclusion proof has no signed checkpoint, so nothing vouches for its root",
                ));
            };
            let cp = checkpoint::verify(cp_text, log)
                .map_err(|e| run.fail("checkpoint", Reason::CheckpointInvalid, e))?;
            run.pass(
                "checkpoint",
                format!("`{}` size {} signed by the log", cp.origin, cp.size),
            );
            if proof.tree_size != cp.size || root_hash[..] != cp.root[..] {
                return Err(fail(
                    run,
                    format!(
                        "the proof is for tree size {} root {}, the checkpoint is size {} root {}",
                        proof.tree_size,
                        b64_encode(&proof.root_hash),
                        cp.size,
                        b64_encode(&cp.root)
                    ),
                ));
            }
            reach(&cp.root).map_err(|e| {
                fail(
                    run,
                    format!("the inclusion proof does not reach the checkpoint root: {e}"),
                )
            })?;
            run.pass(
                "inclusion-proof",
                format!(
                    "leaf {} of {} reaches the checkpoint root",
                    proof.log_index, proof.tree_size
                ),
            );
        }
        None => {
            if ev.require_inclusion_proof || entry.signed_entry_timestamp.is_none() {
                return Err(run.fail(
                    "inclusion-proof",
                    Reason::MissingInclusionProof,
                    "the entry has no inclusion proof",
                ));
            }
            run.pass(
                "inclusion-proof",
                "absent; the SET is the log's promise of inclusion (bundle v0.1 / cosign)",
            );
        }
    }
    Ok((log, integrated))
}

fn same_signer(logged: &LoggedVerifier, ours: &LoggedVerifier) -> bool {
    logged == ours
}

/// The candidate serializations of a DSSE envelope whose SHA-256 a `dsse` 0.0.1 entry logs as
/// `envelopeHash`: Rekor canonicalizes the submitted envelope (RFC 8785), with the optional
/// `keyid` present or not depending on the client.
fn dsse_envelope_hashes(env: &DsseEnvelope) -> Vec<[u8; 32]> {
    let s = |v: &str| serde_json::to_string(v).expect("strings serialize");
    let payload = s(&b64_encode(&env.payload));
    let pt = s(&env.payload_type);
    let sig = env
        .signatures
        .first()
        .map(|x| s(&b64_encode(&x.sig)))
        .unwrap_or_default();
    let keyid = env
        .signatures
        .first()
        .and_then(|x| x.keyid.clone())
        .unwrap_or_default();
    let with_keyid = format!(
        r#"{{"payload":{payload},"payloadType":{pt},"signatures":[{{"keyid":{},"sig":{sig}}}]}}"#,
        s(&keyid)
    );
    let without =
        format!(r#"{{"payload":{payload},"payloadType":{pt},"signatures":[{{"sig":{sig}}}]}}"#);
    vec![sha256(with_keyid.as_bytes()), sha256(without.as_bytes())]
}

/// The algorithm of a logged digest, which must be one this crate computes.
fn logged_hash(digest: &crate::rekor::LoggedHash) -> Result<Hash, String> {
    Hash::from_name(&digest.algorithm)
        .filter(|h| h.digest(b"").len() == digest.value.len())
        .ok_or_else(|| {
            format!(
                "the entry's digest uses `{}` (supported: {SUPPORTED_HASHES})",
                digest.algorithm
            )
        })
}

/// Whether the entry body records exactly this signing (CVE-2022-36056).
fn bind(
    body: &EntryBody,
    signer: &LoggedVerifier,
    signed: Signed<'_>,
    artifact: Artifact<'_>,
) -> Result<(), String> {
    match (body, signed) {
        (
            EntryBody::HashedRekord { digest, signature },
            Signed::Message {
                signature: ours, ..
            },
        ) => {
            let hash = logged_hash(digest)?;
            match artifact.digest(hash) {
                Some(ad) if digest.value != ad => {
                    return Err(format!(
                        "the entry is for artifact {h}:{}, not {h}:{}",
                        hex::encode(&digest.value),
                        hex::encode(ad),
                        h = hash.as_str()
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "the entry records the artifact's {} digest, which is not known here",
                        hash.as_str()
                    ))
                }
            }
            if signature.signature.as_deref() != Some(ours) {
                return Err("the entry logs a different signature".into());
            }
            if !same_signer(&signature.verifier, signer) {
                return Err("the entry logs a different certificate or key".into());
            }
            Ok(())
        }
        // Rekor v2 logs a DSSE envelope as a `hashedrekord` 0.0.2 entry over the digest of
        // its PAE (rekor-tiles "hashedrekord-over-DSSE"): the logged digest must be that of
        // this envelope's PAE, and the logged signature this envelope's one signature.
        (EntryBody::HashedRekord { digest, signature }, Signed::Dsse { envelope, .. }) => {
            let hash = logged_hash(digest)?;
            let pae = lineage_attest::dsse::pae(&envelope.payload_type, &envelope.payload);
            if digest.value != hash.digest(&pae) {
                return Err(
                    "the entry's digest is not the digest of this envelope's PAE (another envelope was logged)"
                        .into(),
                );
            }
            let ours = envelope.signatures.first().map(|s| &s.sig[..]);
            if signature.signature.as_deref() != ours {
                return Err("the entry logs a different envelope signature".into());
            }
            if !same_signer(&signature.verifier, signer) {
                return Err("the entry logs a different certificate or key".into());
            }
            Ok(())
        }
        (
            EntryBody::Dsse {
                kind,
                version,
                envelope_hash,
                payload_hash,
                payload_type,
                signatures,
            },
            Signed::Dsse { envelope, raw },
        ) => {
            if let Some(ph) = payload_hash {
                if !ph.is_sha256() || ph.value != sha256(&envelope.payload) {
                    return Err("the entry's payload hash is not the hash of this payload".into());
                }
            } else {
                return Err("the entry has no payload hash".into());
            }
            if let Some(pt) = payload_type {
                if pt != &envelope.payload_type {
                    return Err(format!("the entry logs payload type `{pt}`"));
                }
            }
            match (kind.as_str(), version.as_str()) {
                ("intoto", "0.0.1") => {
                    let Some(raw) = raw else {
                        return Err(
                            "an intoto 0.0.1 entry logs only the envelope's hash, and the envelope's exact bytes are not available".into(),
                        );
                    };
                    match envelope_hash {
                        Some(h) if h.is_sha256() && h.value == sha256(raw) => {}
                        _ => {
                            return Err(
                                "the entry's envelope hash is not the hash of this envelope".into(),
                            )
                        }
                    }
                }
                ("dsse", "0.0.1") => match envelope_hash {
                    Some(h)
                        if h.is_sha256()
                            && dsse_envelope_hashes(envelope).iter().any(|c| h.value == c) => {}
                    _ => {
                        return Err(
                            "the entry's envelope hash is not the hash of this envelope".into()
                        )
                    }
                },
                // intoto 0.0.2 hashes Rekor's own re-serialization of the envelope, which a
                // client cannot reproduce; the signature and signer comparison below binds it.
                _ => {}
            }
            let ours = envelope.signatures.first().map(|s| &s.sig[..]);
            let found = signatures.iter().any(|s| {
                same_signer(&s.verifier, signer)
                    && match &s.signature {
                        Some(sig) => Some(&sig[..]) == ours,
                        None => true,
                    }
            });
            if !found {
                return Err("the entry logs a different signature or signer".into());
            }
            Ok(())
        }
        (EntryBody::Dsse { kind, .. }, Signed::Message { .. }) => Err(format!(
            "a `{kind}` entry cannot record a message signature"
        )),
    }
}

/// Certificate transparency: the leaf must carry an SCT from a CT log of the trusted root
/// (threshold 1, as the reference clients default to). A root that lists no CT logs (a
/// private deployment without one) cannot check SCTs, and the check says so.
fn verify_sct(
    run: &mut Run,
    leaf: &Certificate,
    issuer: &Certificate,
    root: &TrustedRoot,
) -> Result<(), Stop> {
    if root.ctlogs.is_empty() {
        run.pass("sct", "not checked: the trusted root lists no CT logs");
        return Ok(());
    }
    let Ok(issuer_key) = issuer.public_key() else {
        return Err(run.fail(
            "sct",
            Reason::SctInvalid,
            "the issuing CA's key is unusable",
        ));
    };
    match sct::verify(leaf.der(), issuer_key.spki_der(), &root.ctlogs) {
        Ok(detail) => {
            run.pass("sct", detail);
            Ok(())
        }
        Err(why) => Err(run.fail(
            "sct",
            Reason::SctInvalid,
            format!("the signing certificate has no SCT from a trusted CT log: {why}"),
        )),
    }
}

/// Validate the leaf against the trusted root's certificate authorities at `at`; returns the
/// certificate that issued the leaf.
fn verify_chain<'r>(
    run: &mut Run,
    leaf: &Certificate,
    at: OffsetDateTime,
    root: &'r TrustedRoot,
) -> Result<&'r Certificate, Stop> {
    let mut expired = None;
    let mut not_yet = None;
    let mut other = None;
    let mut any_ca = false;
    for ca in root
        .certificate_authorities
        .iter()
        .filter(|ca| ca.valid_for.contains(at))
    {
        any_ca = true;
        match x509::validate_path(leaf, &ca.chain, at, Purpose::CodeSigning) {
            Ok(()) => return Ok(&ca.chain[0]),
            Err(PathError::LeafExpired { not_after }) => expired = Some(not_after),
            Err(PathError::LeafNotYetValid { not_before }) => not_yet = Some(not_before),
            Err(PathError::Untrusted(m)) => other = Some(m),
        }
    }
    // An expiry is only reported when the chain itself was trusted.
    if let Some(not_after) = expired {
        return Err(run.fail(
            "certificate-chain",
            Reason::CertificateExpired,
            format!(
                "the certificate expired at {}, before the signing time {}",
                fmt_time(not_after),
                fmt_time(at)
            ),
        ));
    }
    if let Some(not_before) = not_yet {
        return Err(run.fail(
            "certificate-chain",
            Reason::CertificateNotYetValid,
            format!(
                "the certificate is valid only from {}, after the signing time {}",
                fmt_time(not_before),
                fmt_time(at)
            ),
        ));
    }
    let detail = match (any_ca, other) {
        (false, _) => format!(
            "no certificate authority in the trusted root is valid at {}",
            fmt_time(at)
        ),
        (true, Some(m)) => format!("the certificate does not chain to a trusted CA: {m}"),
        (true, None) => "the certificate does not chain to a trusted CA".into(),
    };
    Err(run.fail("certificate-chain", Reason::UntrustedCertificate, detail))
}

fn verify_identity(
    run: &mut Run,
    leaf: &Certificate,
    identity: &Matcher,
    issuer_matcher: &Matcher,
) -> Result<(), Stop> {
    let identities: Vec<String> = leaf
        .subject_alt_names()
        .iter()
        .map(|s| s.value().to_string())
        .collect();
    let issuer = leaf.fulcio_issuer();
    run.signer = Some(Signer::Certificate {
        identities: identities.clone(),
        issuer: issuer.clone(),
    });
    let shown = if identities.is_empty() {
        "none".to_string()
    } else {
        identities
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !identities.iter().any(|i| identity.matches(i)) {
        return Err(run.fail(
            "identity",
            Reason::IdentityMismatch,
            format!(
                "certificate identity {shown} does not match {}",
                identity.describe()
            ),
        ));
    }
    run.pass(
        "identity",
        format!("{shown} matches {}", identity.describe()),
    );
    let m = issuer_matcher;
    match &issuer {
        None => {
            return Err(run.fail(
                "issuer",
                Reason::IssuerMismatch,
                format!(
                    "the certificate has no OIDC issuer extension; required {}",
                    m.describe()
                ),
            ))
        }
        Some(i) if !m.matches(i) => {
            return Err(run.fail(
                "issuer",
                Reason::IssuerMismatch,
                format!("certificate issuer `{i}` does not match {}", m.describe()),
            ))
        }
        Some(i) => run.pass("issuer", format!("`{i}` matches {}", m.describe())),
    }
    Ok(())
}
