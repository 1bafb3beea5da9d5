//! Lineage's tamper-evident log core: an RFC 6962 / RFC 9162 Merkle tree over every record,
//! inclusion and consistency proofs, and C2SP signed-note checkpoints.
//!
//! This crate does no IO. Storage sits behind [`merkle::HashReader`]; keys and notes come in
//! and go out as bytes and strings. Failed verifications are outcome values with a precise
//! reason; `Err` means the input could not be judged at all.
//!
//! - [`merkle`]: hashing, the append-only stored-hash layout, proofs and their verification.
//! - [`keys`]: public keys (PEM SPKI, Go verifier-key strings) and the Ed25519 log key.
//! - [`note`]: C2SP signed notes.
//! - [`checkpoint`]: C2SP tlog checkpoints, signing and verification.
//! - [`proof`]: versioned JSON inclusion and consistency proof bundles for offline audit.

pub mod checkpoint;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod proof;
