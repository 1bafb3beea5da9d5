//! Checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes, as Rekor v1
//! (ECDSA P-256) and Rekor v2 (Ed25519) sign them. Parsing and signature checks are
//! `lineage-log`'s; this module adds what Sigstore's trusted root implies.
//!
//! Key hints differ by log generation but both equal the first four bytes of the trusted
//! root's `logId.keyId`: Rekor v1 uses SHA-256 of the SPKI DER (which is its log ID), and
//! Rekor v2 uses the C2SP key ID `SHA-256(name || 0x0A || 0x01 || pubkey)`, which its
//! trusted-root `logId` is in full. For Ed25519 the full hash is recomputed from the signer
//! name, so the name the log signed under is bound too, not only four bytes of it; the
//! checkpoint's origin must be that name.

use lineage_log::checkpoint::{verify_checkpoint, CheckpointVerification, Verifier};
use lineage_log::merkle::Hash;

use crate::keys::sha256;
use crate::trusted_root::TransparencyLog;

/// A checkpoint whose signature by a trusted log verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Verify a signed checkpoint note against `log` from the trusted root.
pub fn verify(note: &str, log: &TransparencyLog) -> Result<VerifiedCheckpoint, String> {
    // The trusted root's key is Lineage's one key type: the checkpoint verifier uses it as is.
    let key = log.key.as_ref().ok_or("the log's key is not usable")?;
    let verifier = Verifier::new(None, key.clone()).map_err(|e| e.to_string())?;
    let (checkpoint, signer) = match verify_checkpoint(note, &verifier) {
        CheckpointVerification::Verified {
            checkpoint, signer, ..
        } => (checkpoint, signer),
        other => return Err(other.to_string()),
    };
    if let Some(raw) = key.ed25519_bytes() {
        let mut id = signer.as_bytes().to_vec();
        id.extend_from_slice(&[0x0a, 0x01]);
        id.extend_from_slice(&raw);
        if sha256(&id)[..] != log.log_id[..] {
            return Err(format!(
                "the checkpoint is signed under name `{signer}`, which is not the trusted log's key ID"
            ));
        }
        // A C2SP log signs under its origin, and the trusted root's log ID binds that name to
        // the key: the origin comes from the trusted root's entry, whatever its `baseUrl`
        // (private deployments name their logs as they like).
        if checkpoint.origin != signer {
            return Err(format!(
                "checkpoint origin `{}` is not `{signer}`, the name the trusted log signs under",
                checkpoint.origin
            ));
        }
    } else if key.note_key_id(&signer)[..] != log.log_id[..log.log_id.len().min(4)] {
        return Err("the checkpoint's key hint is not the trusted log's ID".into());
    }
    // Rekor v1 (ECDSA) checkpoints name the log `<host> - <tree ID>`, and the trusted root
    // binds no name to the key; the key is what is trusted, so the origin is not compared with
    // the `baseUrl` (which a private deployment need not make its origin).
    Ok(VerifiedCheckpoint {
        origin: checkpoint.origin,
        size: checkpoint.size,
        root: checkpoint.root,
    })
}
