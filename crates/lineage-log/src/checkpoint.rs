//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! A checkpoint is the text of a signed note (see [`crate::note`]):
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <base64 of the 32-byte RFC 6962 root hash>
//! [extension lines, each non-empty]
//! ```
//!
//! Every line ends in a newline. Parsing is strict, so that one checkpoint has exactly one
//! byte encoding and an altered size or root is caught before any signature check.

pub use crate::keys::{KeyId, LogKey, PublicKey, Verifier};
use crate::merkle::Hash;
use crate::note::{Note, NoteError, NoteVerification};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use std::fmt;

/// Why a checkpoint body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint does not end with a newline")]
    NoFinalNewline,
    #[error("checkpoint has {0} lines; it needs an origin, a tree size and a root hash")]
    TooFewLines(usize),
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    #[error("checkpoint tree size `{0}` is not a decimal number without leading zeros")]
    BadSize(String),
    #[error("checkpoint root hash `{0}` is not base64")]
    RootNotBase64(String),
    #[error("checkpoint root hash is {0} bytes, not 32")]
    RootWrongLength(usize),
    #[error("checkpoint extension line {0} is empty")]
    EmptyExtension(usize),
    #[error("checkpoint contains the control character U+{0:04X}")]
    ControlCharacter(u32),
}

/// A parsed (not yet trusted) checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin string (for Rekor v1 it includes the tree ID).
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 6962 root hash of the first `size` leaves.
    pub root: Hash,
    /// Optional extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Self {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Parses a checkpoint body (the note text, with its final newline).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if let Some(c) = text.chars().find(|&c| c < ' ' && c != '\n') {
            return Err(CheckpointError::ControlCharacter(c as u32));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines(lines.len()));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(lines[1])?;
        let raw = B64
            .decode(lines[2])
            .map_err(|_| CheckpointError::RootNotBase64(lines[2].to_string()))?;
        let root: Hash = raw
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::RootWrongLength(raw.len()))?;
        let mut extensions = Vec::new();
        for (i, ext) in lines[3..].iter().enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension(i + 1));
            }
            extensions.push(ext.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint body: the text a log signs.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Signs the checkpoint with the log key and returns the signed note text.
    pub fn sign(&self, key: &LogKey) -> String {
        let mut note =
            Note::new(&self.to_text()).expect("a formatted checkpoint is valid note text");
        note.sign(key);
        note.to_string()
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::BadSize(s.to_string());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// The outcome of checking a signed checkpoint against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointVerification {
    /// The key signed this checkpoint.
    Verified {
        checkpoint: Checkpoint,
        signer: String,
        key_id: KeyId,
    },
    /// The signed note around the checkpoint is malformed.
    MalformedNote(NoteError),
    /// The note is well formed but its text is not a valid checkpoint.
    MalformedCheckpoint(CheckpointError),
    /// The checkpoint carries no signature from this key (a different log, or the wrong key).
    NoSignatureFromKey {
        expected_name: Option<String>,
        signers: Vec<(String, KeyId)>,
    },
    /// A signature from this key does not verify: the checkpoint was altered.
    BadSignature { name: String, key_id: KeyId },
}

impl CheckpointVerification {
    /// The verified checkpoint, if any.
    pub fn verified(&self) -> Option<&Checkpoint> {
        match self {
            CheckpointVerification::Verified { checkpoint, .. } => Some(checkpoint),
            _ => None,
        }
    }

    /// True for [`CheckpointVerification::Verified`].
    pub fn is_verified(&self) -> bool {
        self.verified().is_some()
    }
}

impl fmt::Display for CheckpointVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointVerification::Verified { checkpoint, signer, key_id } => write!(
                f,
                "checkpoint `{}` size {} signed by `{signer}` (key id {})",
                checkpoint.origin,
                checkpoint.size,
                hex::encode(key_id)
            ),
            CheckpointVerification::MalformedNote(e) => write!(f, "malformed checkpoint: {e}"),
            CheckpointVerification::MalformedCheckpoint(e) => write!(f, "malformed checkpoint: {e}"),
            CheckpointVerification::NoSignatureFromKey { expected_name, signers } => write!(
                f,
                "checkpoint is not signed by the given key (wrong key?): {}",
                NoteVerification::NoSignatureFromKey {
                    expected_name: expected_name.clone(),
                    signers: signers.clone()
                }
            ),
            CheckpointVerification::BadSignature { name, key_id } => write!(
                f,
                "checkpoint signature by `{name}` (key id {}) does not verify: the checkpoint was altered",
                hex::encode(key_id)
            ),
        }
    }
}

/// Parses a signed checkpoint note and checks it against a trusted key (Ed25519 or ECDSA
/// P-256, from PEM or a verifier key string).
pub fn verify_checkpoint(signed_note: &str, verifier: &Verifier) -> CheckpointVerification {
    let note = match Note::parse(signed_note) {
        Ok(n) => n,
        Err(e) => return CheckpointVerification::MalformedNote(e),
    };
    let checkpoint = match Checkpoint::parse(note.text()) {
        Ok(c) => c,
        Err(e) => return CheckpointVerification::MalformedCheckpoint(e),
    };
    match note.verify(verifier) {
        NoteVerification::Verified { name, key_id } => CheckpointVerification::Verified {
            checkpoint,
            signer: name,
            key_id,
        },
        NoteVerification::NoSignatureFromKey {
            expected_name,
            signers,
        } => CheckpointVerification::NoSignatureFromKey {
            expected_name,
            signers,
        },
        NoteVerification::BadSignature { name, key_id } => {
            CheckpointVerification::BadSignature { name, key_id }
        }
        NoteVerification::Malformed(e) => CheckpointVerification::MalformedNote(e),
    }
}

/// Parses a signed checkpoint without checking any signature (for display, or to learn which
/// size to ask a proof for before verifying).
pub fn parse_signed_checkpoint(
    signed_note: &str,
) -> Result<(Checkpoint, Note), CheckpointVerification> {
    let note = Note::parse(signed_note).map_err(CheckpointVerification::MalformedNote)?;
    let checkpoint =
        Checkpoint::parse(note.text()).map_err(CheckpointVerification::MalformedCheckpoint)?;
    Ok((checkpoint, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_size_parsing() {
        let root = B64.encode([7u8; 32]);
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
        for bad in ["01", "", "-1", "+1", "1 ", "18446744073709551616"] {
            assert_eq!(
                Checkpoint::parse(&format!("o\n{bad}\n{root}\n")),
                Err(CheckpointError::BadSize(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn strict_root_and_lines() {
        assert_eq!(
            Checkpoint::parse("o\n1\nAAAA\n"),
            Err(CheckpointError::RootWrongLength(3))
        );
        assert!(matches!(
            Checkpoint::parse("o\n1\n@@\n"),
            Err(CheckpointError::RootNotBase64(_))
        ));
        let root = B64.encode([7u8; 32]);
        assert_eq!(
            Checkpoint::parse(&format!("o\n1\n{root}")),
            Err(CheckpointError::NoFinalNewline)
        );
        assert_eq!(
            Checkpoint::parse("o\n1\n"),
            Err(CheckpointError::TooFewLines(2))
        );
        assert_eq!(
            Checkpoint::parse(&format!("\n1\n{root}\n")),
            Err(CheckpointError::EmptyOrigin)
        );
        assert_eq!(
            Checkpoint::parse(&format!("o\n1\n{root}\n\nx\n")),
            Err(CheckpointError::EmptyExtension(1))
        );
        let cp = Checkpoint::parse(&format!("o\n1\n{root}\next a\n")).unwrap();
        assert_eq!(cp.extensions, vec!["ext a".to_string()]);
        assert_eq!(cp.to_text(), format!("o\n1\n{root}\next a\n"));
    }
}
