//! Lineage's signed-provenance core: keys, DSSE envelopes, in-toto Statements, SLSA
//! provenance, Lineage's own predicates, and the trust policy that says which key may sign
//! what.
//!
//! This crate does no IO: callers read files and pass bytes or strings in, and get values out.
//! A bad signature or an untrusted key is an outcome value ([`dsse::Verification`],
//! [`trust::TrustOutcome`]) with a precise reason; `Err` means the question could not be
//! decided (unreadable key, unsupported algorithm).

pub mod dsse;
pub mod keys;
pub mod predicates;
pub mod slsa;
pub mod statement;
pub mod trust;

pub use dsse::{
    pae, sign, verify, verify_json, Envelope, EnvelopeError, Failure, PayloadTypes, SigEncoding,
    SignError, Signature, SignatureCheck, SignatureResult, TrustedKey, Verification, VerifyOptions,
    IN_TOTO_PAYLOAD_TYPE,
};
pub use keys::{KeyAlgorithm, KeyError, KeyKind, PrivateKey, PublicKey, RsaScheme};
pub use statement::{Statement, StatementError, Subject};
pub use trust::{evaluate, Role, TrustConfig, TrustOutcome, TrustPolicy, Untrusted};
