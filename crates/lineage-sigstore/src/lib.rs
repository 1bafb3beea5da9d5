//! Offline verification of Sigstore bundles (v0.1, v0.2, v0.3) and cosign container
//! signatures against a `trusted_root.json`.
//!
//! Everything here is pure: bytes in, a [`Verification`] out. A failed verification is an
//! outcome with a stable [`Reason`] code and the list of [`Check`]s that ran; `Err` means the
//! input could not be judged at all (not JSON, an unreadable trusted root, an IO error in
//! [`verify_oci_layout`], the one function that reads files, or a [`PolicyError`]: a
//! certificate signer and a policy that does not name both its identity and its issuer).
//!
//! - [`bundle`]: the bundle JSON model (protobuf-specs `sigstore_bundle.proto`).
//! - [`trusted_root`]: `trusted_root.json` (protobuf-specs `sigstore_trustroot.proto`).
//! - [`verify_bundle`]: the verifier (signature, log entry binding, SET, inclusion proof and
//!   checkpoint, RFC 3161 time-stamps, Fulcio chain at signing time, identity policy).
//! - [`cosign`]: cosign simple-signing `.sig` layers, legacy `--bundle` files, `.att` layers
//!   and OCI image layouts.
//!
//! Lower layers ([`x509`], [`keys`], [`rekor`], [`checkpoint`], [`tsa`], [`sct`]) are public
//! for reuse and testing but are not needed to verify. DER, X.509, CMS, RFC 3161, SCT lists,
//! SPKI and PEM are decoded by RustCrypto's `der`, `x509-cert`, `cms`, `x509-tsp` and `spki`,
//! and certificate paths validated by `rustls-webpki`.

pub mod bundle;
pub mod checkpoint;
pub mod cosign;
pub mod keys;
pub mod notation;
mod outcome;
mod policy;
pub mod rekor;
pub mod sct;
pub mod trusted_root;
pub mod tsa;
mod verify;
pub mod x509;

pub use bundle::{Bundle, BundleError, BundleVersion};
pub use cosign::{
    verify_cosign_attestation, verify_cosign_simple_signing, verify_legacy_cosign_bundle,
    verify_oci_layout, CosignError, CosignSignature,
};
pub use keys::VerifyingKey;
pub use outcome::{Check, Reason, Signer, Verification};
pub use policy::{IdentityPolicy, Matcher, PolicyError};
pub use trusted_root::{TrustedRoot, TrustedRootError};
pub use verify::{verify_bundle, verify_bundle_json, Artifact, IN_TOTO_PAYLOAD_TYPE};
