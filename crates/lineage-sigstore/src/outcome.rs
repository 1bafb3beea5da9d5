//! The result of a verification: every check that ran, in order, and the stable reason code of
//! the first one that failed.
//!
//! Verification stops at the first failed check, so the reason names *the* problem rather
//! than its consequences (a forged signature also breaks the log binding; the report says
//! "signature-invalid"). A failed check is an outcome, never an `Err`.

use serde::Serialize;
use time::OffsetDateTime;

/// Why a verification failed. The kebab-case codes are stable: they are what the CLI prints
/// and what gates match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Nothing to verify: no signature or attestation was found.
    NoSignature,
    /// The bundle's `mediaType` is not a Sigstore bundle version this verifier knows.
    UnknownMediaType,
    /// The bundle or signature material is structurally broken (bad base64, bad DER, ...).
    MalformedBundle,
    /// A Sigstore DSSE envelope must carry exactly one signature.
    WrongSignatureCount,
    /// The bundle needs a key that the policy does not supply, or the reverse.
    KeyRequired,
    /// The artifact (or its digest) is not the one that was signed.
    ArtifactMismatch,
    /// The signature does not verify with the signer's key.
    SignatureInvalid,
    /// The bundle has no transparency-log entry.
    MissingTlogEntry,
    /// The entry names a log that is not in the trusted root.
    UnknownLog,
    /// The log's key was not valid at the entry's time.
    LogKeyNotValid,
    /// The log entry does not contain this bundle's signature, signer or digest
    /// (CVE-2022-36056).
    TlogEntryMismatch,
    /// The signed entry timestamp does not verify.
    SetInvalid,
    /// Neither a SET nor an inclusion proof proves the entry was logged, or a v0.2+ bundle
    /// lacks the inclusion proof it must have.
    MissingInclusionProof,
    /// The Merkle inclusion proof does not reach the checkpoint's root.
    InclusionProofInvalid,
    /// The checkpoint is malformed or its signature does not verify with the log key.
    CheckpointInvalid,
    /// An RFC 3161 time-stamp is malformed, for another signature, or not trusted.
    TimestampInvalid,
    /// No verified time at which the certificate could be checked.
    NoSigningTime,
    /// The certificate does not chain to a trusted certificate authority.
    UntrustedCertificate,
    /// The certificate had expired at signing time.
    CertificateExpired,
    /// The certificate was not yet valid at signing time.
    CertificateNotYetValid,
    /// The signing certificate carries no SCT that a CT log of the trusted root signed
    /// (RFC 6962): its issuance was not proven public.
    SctInvalid,
    /// The certificate's subject alternative name does not match the required identity.
    IdentityMismatch,
    /// The certificate's OIDC issuer does not match the required issuer.
    IssuerMismatch,
    /// The signed payload is not what it must be (not a simple-signing document, not a
    /// Statement).
    PayloadInvalid,
    /// cosign: `docker-manifest-digest` is not the image being verified.
    ImageDigestMismatch,
    /// The in-toto Statement's subjects do not include the expected digest.
    SubjectMismatch,
}

impl Reason {
    /// The stable code, e.g. `tlog-entry-mismatch`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoSignature => "no-signature",
            Reason::UnknownMediaType => "unknown-media-type",
            Reason::MalformedBundle => "malformed-bundle",
            Reason::WrongSignatureCount => "wrong-signature-count",
            Reason::KeyRequired => "key-required",
            Reason::ArtifactMismatch => "artifact-mismatch",
            Reason::SignatureInvalid => "signature-invalid",
            Reason::MissingTlogEntry => "missing-tlog-entry",
            Reason::UnknownLog => "unknown-log",
            Reason::LogKeyNotValid => "log-key-not-valid",
            Reason::TlogEntryMismatch => "tlog-entry-mismatch",
            Reason::SetInvalid => "set-invalid",
            Reason::MissingInclusionProof => "missing-inclusion-proof",
            Reason::InclusionProofInvalid => "inclusion-proof-invalid",
            Reason::CheckpointInvalid => "checkpoint-invalid",
            Reason::TimestampInvalid => "timestamp-invalid",
            Reason::NoSigningTime => "no-signing-time",
            Reason::UntrustedCertificate => "untrusted-certificate",
            Reason::CertificateExpired => "certificate-expired",
            Reason::CertificateNotYetValid => "certificate-not-yet-valid",
            Reason::SctInvalid => "sct-invalid",
            Reason::IdentityMismatch => "identity-mismatch",
            Reason::IssuerMismatch => "issuer-mismatch",
            Reason::PayloadInvalid => "payload-invalid",
            Reason::ImageDigestMismatch => "image-digest-mismatch",
            Reason::SubjectMismatch => "subject-mismatch",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable check name, e.g. `set`, `inclusion-proof`, `certificate-chain`.
    pub name: &'static str,
    pub ok: bool,
    /// Set exactly when `ok` is false.
    pub reason: Option<Reason>,
    /// A sentence for humans: what was compared, or why it differed.
    pub detail: String,
}

/// Who signed, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Signer {
    /// A Fulcio certificate: its SAN values and OIDC issuer.
    Certificate {
        identities: Vec<String>,
        issuer: Option<String>,
    },
    /// A managed key, by the hex SHA-256 of its SPKI DER.
    Key { key_id: String },
}

/// The outcome of verifying one bundle or cosign signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub verified: bool,
    pub checks: Vec<Check>,
    pub signer: Option<Signer>,
    /// The verified time the certificate was checked at (the earliest, if several).
    #[serde(with = "time::serde::rfc3339::option")]
    pub signing_time: Option<OffsetDateTime>,
    /// The DSSE payload as JSON (an in-toto Statement), once its signature verified.
    pub statement: Option<serde_json::Value>,
}

impl Verification {
    /// The first failed check, if any.
    pub fn failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }

    /// The reason verification failed, if it did.
    pub fn reason(&self) -> Option<Reason> {
        self.failure().and_then(|c| c.reason)
    }

    /// The check with this name, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A failed check has been recorded; stop.
#[derive(Debug)]
pub(crate) struct Stop;

/// Accumulates checks while a verification runs.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub checks: Vec<Check>,
    pub signer: Option<Signer>,
    pub signing_time: Option<OffsetDateTime>,
    pub statement: Option<serde_json::Value>,
}

impl Run {
    pub fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok: true,
            reason: None,
            detail: detail.into(),
        });
    }

    pub fn fail(&mut self, name: &'static str, reason: Reason, detail: impl Into<String>) -> Stop {
        self.checks.push(Check {
            name,
            ok: false,
            reason: Some(reason),
            detail: detail.into(),
        });
        Stop
    }

    pub fn finish(self) -> Verification {
        let verified = !self.checks.is_empty() && self.checks.iter().all(|c| c.ok);
        Verification {
            verified,
            checks: self.checks,
            signer: self.signer,
            signing_time: self.signing_time,
            // A statement whose signature did not verify is not returned: callers must not
            // act on unauthenticated content.
            statement: if verified { self.statement } else { None },
        }
    }
}
