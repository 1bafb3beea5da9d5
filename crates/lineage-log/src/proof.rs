//! Versioned JSON proof bundles that an auditor checks with only the file and a public key.
//!
//! An *inclusion* bundle carries a record's canonical bytes (the leaf), its RFC 9162 §2.1.3
//! audit path, and the signed checkpoint the path leads to. A *consistency* bundle carries an
//! RFC 9162 §2.1.4 consistency proof between two tree sizes, with each side's root given as a
//! signed checkpoint or as a bare root hash.
//!
//! Reading a bundle that is not valid JSON, has the wrong shape, an unknown `schema` or bad
//! base64 is an `Err` ([`BundleError`]): the file is corrupt and nothing can be judged.
//! Everything after that — a wrong key, an altered checkpoint, a proof for another tree size,
//! an altered leaf — is an [`Outcome`] with a precise [`Failure`].

use crate::checkpoint::{verify_checkpoint, Checkpoint, CheckpointVerification};
use crate::keys::Verifier;
use crate::merkle::{self, Hash, ProofError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The only bundle schema version this code writes and reads.
pub const SCHEMA: u32 = 1;

/// Why a bundle file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("proof bundle is not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    #[error("proof bundle has schema {0}; only schema 1 is supported")]
    UnsupportedSchema(u32),
}

/// Bytes as standard base64 in JSON.
mod b64 {
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s)
            .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
    }

    pub mod list {
        use super::*;
        use serde::ser::SerializeSeq;

        pub fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for i in items {
                seq.serialize_element(&B64.encode(i))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            // `null` is accepted as an empty proof, as the RFC 6962 test vectors write it.
            let items = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
            items
                .into_iter()
                .map(|s| {
                    B64.decode(s)
                        .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
                })
                .collect()
        }
    }

    pub mod opt {
        use super::*;

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(b) => s.serialize_str(&B64.encode(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    B64.decode(s)
                        .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
                })
                .transpose()
        }
    }
}

/// An inclusion proof bundle (`"kind": "inclusion"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionBundle {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The log's origin, as in the checkpoint.
    pub origin: String,
    /// The leaf's index in the log.
    pub leaf_index: u64,
    /// The tree size the proof is for; must equal the checkpoint's size.
    pub tree_size: u64,
    /// The record's canonical bytes; the leaf hash is `SHA-256(0x00 || leaf)`.
    #[serde(with = "b64")]
    pub leaf: Vec<u8>,
    /// The audit path, leaf side first.
    #[serde(with = "b64::list")]
    pub proof: Vec<Vec<u8>>,
    /// The signed checkpoint (C2SP signed note) for `tree_size`.
    pub checkpoint: String,
}

/// A consistency proof bundle (`"kind": "consistency"`). Each side's root comes from its
/// signed checkpoint, its bare root, or both (then they must agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyBundle {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The log's origin, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub old_size: u64,
    pub new_size: u64,
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub old_root: Option<Vec<u8>>,
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub new_root: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_checkpoint: Option<String>,
    /// The consistency proof (RFC 9162 §2.1.4.1).
    #[serde(with = "b64::list")]
    pub proof: Vec<Vec<u8>>,
}

/// Either bundle, told apart by its `kind` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProofBundle {
    Inclusion(InclusionBundle),
    Consistency(ConsistencyBundle),
}

impl ProofBundle {
    /// Reads a bundle file's contents, checking the schema version.
    pub fn from_json(text: &str) -> Result<Self, BundleError> {
        let bundle: ProofBundle = serde_json::from_str(text)?;
        let schema = match &bundle {
            ProofBundle::Inclusion(b) => b.schema,
            ProofBundle::Consistency(b) => b.schema,
        };
        if schema != SCHEMA {
            return Err(BundleError::UnsupportedSchema(schema));
        }
        Ok(bundle)
    }

    /// The pretty-printed JSON form, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("bundles always serialize");
        s.push('\n');
        s
    }
}

impl InclusionBundle {
    /// The JSON form, with `"kind": "inclusion"`.
    pub fn to_json(&self) -> String {
        ProofBundle::Inclusion(self.clone()).to_json()
    }

    /// A bundle for leaf `leaf_index` of the tree described by `signed_checkpoint`, whose size
    /// and origin are taken from it (unverified: the writer signed it itself).
    pub fn new(
        leaf_index: u64,
        leaf: &[u8],
        proof: &[Hash],
        signed_checkpoint: &str,
    ) -> Result<Self, CheckpointVerification> {
        let (cp, _) = crate::checkpoint::parse_signed_checkpoint(signed_checkpoint)?;
        Ok(InclusionBundle {
            schema: SCHEMA,
            origin: cp.origin,
            leaf_index,
            tree_size: cp.size,
            leaf: leaf.to_vec(),
            proof: proof.iter().map(|h| h.to_vec()).collect(),
            checkpoint: signed_checkpoint.to_string(),
        })
    }
}

impl ConsistencyBundle {
    /// The JSON form, with `"kind": "consistency"`.
    pub fn to_json(&self) -> String {
        ProofBundle::Consistency(self.clone()).to_json()
    }

    /// A bundle from a proof between two signed checkpoints.
    pub fn between_checkpoints(
        old_checkpoint: &str,
        new_checkpoint: &str,
        proof: &[Hash],
    ) -> Result<Self, CheckpointVerification> {
        let (old, _) = crate::checkpoint::parse_signed_checkpoint(old_checkpoint)?;
        let (new, _) = crate::checkpoint::parse_signed_checkpoint(new_checkpoint)?;
        Ok(ConsistencyBundle {
            schema: SCHEMA,
            origin: Some(new.origin),
            old_size: old.size,
            new_size: new.size,
            old_root: None,
            new_root: None,
            old_checkpoint: Some(old_checkpoint.to_string()),
            new_checkpoint: Some(new_checkpoint.to_string()),
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// A bundle from a bare old root (for example one the log computed for an old size it never
    /// signed) to a signed new checkpoint.
    pub fn from_root_to_checkpoint(
        old_size: u64,
        old_root: &Hash,
        new_checkpoint: &str,
        proof: &[Hash],
    ) -> Result<Self, CheckpointVerification> {
        let (new, _) = crate::checkpoint::parse_signed_checkpoint(new_checkpoint)?;
        Ok(ConsistencyBundle {
            schema: SCHEMA,
            origin: Some(new.origin),
            old_size,
            new_size: new.size,
            old_root: Some(old_root.to_vec()),
            new_root: None,
            old_checkpoint: None,
            new_checkpoint: Some(new_checkpoint.to_string()),
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        })
    }
}

/// Which side of a consistency proof a failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Old,
    New,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Old => "old",
            Side::New => "new",
        })
    }
}

/// A root a consistency check used, and whether a signature vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRoot {
    pub size: u64,
    pub root: Hash,
    /// The signer, when the root came from a checkpoint signed by the given key.
    pub signer: Option<String>,
}

/// What a successful check proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The leaf is at `leaf_index` in the tree of `tree_size` leaves that `signer` signed.
    Inclusion {
        origin: String,
        leaf_index: u64,
        tree_size: u64,
        root: Hash,
        leaf_hash: Hash,
        signer: String,
    },
    /// The new tree extends the old one. A side without `signer` was a bare root: compare it
    /// with a checkpoint you saved.
    Consistency {
        origin: Option<String>,
        old: CheckedRoot,
        new: CheckedRoot,
    },
}

/// Why a bundle did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The checkpoint is not signed by the given key, its signature is bad, or it is malformed.
    Checkpoint {
        side: Option<Side>,
        outcome: CheckpointVerification,
    },
    /// The proof is for another tree size than the checkpoint's.
    TreeSizeMismatch {
        side: Option<Side>,
        bundle: u64,
        checkpoint: u64,
    },
    /// The bundle's origin is not the checkpoint's.
    OriginMismatch { bundle: String, checkpoint: String },
    /// A bare root and a checkpoint for the same side disagree.
    RootDisagreesWithCheckpoint { side: Side },
    /// A side has neither a checkpoint nor a root.
    MissingRoot { side: Side },
    /// Neither side of a consistency bundle is signed, so the key vouches for nothing.
    NothingSigned,
    /// The Merkle proof does not verify (for inclusion: the leaf or the proof was altered).
    Proof(ProofError),
}

impl Failure {
    /// A stable, machine-readable code for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Checkpoint { outcome, .. } => match outcome {
                CheckpointVerification::NoSignatureFromKey { .. } => "wrong-key",
                CheckpointVerification::BadSignature { .. } => "bad-checkpoint-signature",
                CheckpointVerification::MalformedNote(_)
                | CheckpointVerification::MalformedCheckpoint(_) => "malformed-checkpoint",
                CheckpointVerification::Verified { .. } => "verified",
            },
            Failure::TreeSizeMismatch { .. } => "tree-size-mismatch",
            Failure::OriginMismatch { .. } => "origin-mismatch",
            Failure::RootDisagreesWithCheckpoint { .. } => "root-mismatch",
            Failure::MissingRoot { .. } => "missing-root",
            Failure::NothingSigned => "nothing-signed",
            Failure::Proof(ProofError::RootMismatch { .. }) => "leaf-or-proof-altered",
            Failure::Proof(_) => "invalid-proof",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |s: &Option<Side>| s.map(|s| format!("{s} ")).unwrap_or_default();
        match self {
            Failure::Checkpoint { side: s, outcome } => write!(f, "{}{outcome}", side(s)),
            Failure::TreeSizeMismatch { side: s, bundle, checkpoint } => write!(
                f,
                "proof is for tree size {bundle} but the {}checkpoint is for tree size {checkpoint}",
                side(s)
            ),
            Failure::OriginMismatch { bundle, checkpoint } => {
                write!(f, "bundle is for log `{bundle}` but the checkpoint is for log `{checkpoint}`")
            }
            Failure::RootDisagreesWithCheckpoint { side } => {
                write!(f, "the {side} root differs from the {side} checkpoint's root")
            }
            Failure::MissingRoot { side } => write!(f, "the {side} side has neither a checkpoint nor a root"),
            Failure::NothingSigned => {
                write!(f, "neither side carries a signed checkpoint, so the key vouches for nothing")
            }
            Failure::Proof(e @ ProofError::RootMismatch { .. }) => {
                write!(f, "the leaf or the proof was altered: {e}")
            }
            Failure::Proof(e) => write!(f, "invalid proof: {e}"),
        }
    }
}

/// The result of checking a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified(Verified),
    Failed(Failure),
}

impl Outcome {
    /// True when the bundle verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Outcome::Verified(_))
    }
}

fn checked_checkpoint(
    signed: &str,
    key: &Verifier,
    side: Option<Side>,
) -> Result<(Checkpoint, String), Failure> {
    match verify_checkpoint(signed, key) {
        CheckpointVerification::Verified {
            checkpoint, signer, ..
        } => Ok((checkpoint, signer)),
        outcome => Err(Failure::Checkpoint { side, outcome }),
    }
}

fn to_hashes(proof: &[Vec<u8>]) -> Result<Vec<Hash>, Failure> {
    merkle::hashes_from_slices(proof).map_err(Failure::Proof)
}

/// Checks an inclusion bundle: the checkpoint's signature by `key`, that the checkpoint is for
/// the bundle's log and tree size, and the leaf's audit path to the checkpoint root.
pub fn verify_inclusion_bundle(bundle: &InclusionBundle, key: &Verifier) -> Outcome {
    match inclusion(bundle, key) {
        Ok(v) => Outcome::Verified(v),
        Err(f) => Outcome::Failed(f),
    }
}

fn inclusion(b: &InclusionBundle, key: &Verifier) -> Result<Verified, Failure> {
    let (cp, signer) = checked_checkpoint(&b.checkpoint, key, None)?;
    if cp.origin != b.origin {
        return Err(Failure::OriginMismatch {
            bundle: b.origin.clone(),
            checkpoint: cp.origin,
        });
    }
    if cp.size != b.tree_size {
        return Err(Failure::TreeSizeMismatch {
            side: None,
            bundle: b.tree_size,
            checkpoint: cp.size,
        });
    }
    let proof = to_hashes(&b.proof)?;
    let leaf_hash = merkle::leaf_hash(&b.leaf);
    merkle::verify_inclusion(&leaf_hash, b.leaf_index, b.tree_size, &proof, &cp.root)
        .map_err(Failure::Proof)?;
    Ok(Verified::Inclusion {
        origin: cp.origin,
        leaf_index: b.leaf_index,
        tree_size: b.tree_size,
        root: cp.root,
        leaf_hash,
        signer,
    })
}

/// Checks a consistency bundle: each side's checkpoint signature by `key` (at least one side
/// must be signed), sizes and origins, and the consistency proof between the two roots.
pub fn verify_consistency_bundle(bundle: &ConsistencyBundle, key: &Verifier) -> Outcome {
    match consistency(bundle, key) {
        Ok(v) => Outcome::Verified(v),
        Err(f) => Outcome::Failed(f),
    }
}

fn side_root(
    side: Side,
    size: u64,
    root: &Option<Vec<u8>>,
    checkpoint: &Option<String>,
    origin: &Option<String>,
    key: &Verifier,
) -> Result<CheckedRoot, Failure> {
    let bare = match root {
        Some(r) => Some(merkle::hash_from_slice(r).map_err(Failure::Proof)?),
        None => None,
    };
    match checkpoint {
        Some(signed) => {
            let (cp, signer) = checked_checkpoint(signed, key, Some(side))?;
            if let Some(o) = origin {
                if o != &cp.origin {
                    return Err(Failure::OriginMismatch {
                        bundle: o.clone(),
                        checkpoint: cp.origin,
                    });
                }
            }
            if cp.size != size {
                return Err(Failure::TreeSizeMismatch {
                    side: Some(side),
                    bundle: size,
                    checkpoint: cp.size,
                });
            }
            if bare.is_some_and(|r| r != cp.root) {
                return Err(Failure::RootDisagreesWithCheckpoint { side });
            }
            Ok(CheckedRoot {
                size,
                root: cp.root,
                signer: Some(signer),
            })
        }
        None => match bare {
            Some(root) => Ok(CheckedRoot {
                size,
                root,
                signer: None,
            }),
            None => Err(Failure::MissingRoot { side }),
        },
    }
}

fn consistency(b: &ConsistencyBundle, key: &Verifier) -> Result<Verified, Failure> {
    let old = side_root(
        Side::Old,
        b.old_size,
        &b.old_root,
        &b.old_checkpoint,
        &b.origin,
        key,
    )?;
    let new = side_root(
        Side::New,
        b.new_size,
        &b.new_root,
        &b.new_checkpoint,
        &b.origin,
        key,
    )?;
    if old.signer.is_none() && new.signer.is_none() {
        return Err(Failure::NothingSigned);
    }
    let proof = to_hashes(&b.proof)?;
    merkle::verify_consistency(b.old_size, b.new_size, &proof, &old.root, &new.root)
        .map_err(Failure::Proof)?;
    Ok(Verified::Consistency {
        origin: b.origin.clone(),
        old,
        new,
    })
}

/// Checks either kind of bundle.
pub fn verify_bundle(bundle: &ProofBundle, key: &Verifier) -> Outcome {
    match bundle {
        ProofBundle::Inclusion(b) => verify_inclusion_bundle(b, key),
        ProofBundle::Consistency(b) => verify_consistency_bundle(b, key),
    }
}
