//! C2SP signed notes (<https://c2sp.org/signed-note>): parse, format, sign and verify.
//!
//! A signed note is UTF-8 text ending in a newline, then a blank line, then one or more
//! signature lines `— <key name> <base64(4-byte key ID || signature)>` (U+2014 em dash).
//! The text may itself contain blank lines: the signatures start after the *last* one.
//! No ASCII control character other than newline may appear anywhere.
//!
//! Verification follows the spec's rules: a signature line belongs to a key only when both
//! its name and its key ID match; lines from other keys are ignored; a matching line whose
//! signature does not verify rejects the whole note.

use crate::keys::{KeyId, LogKey, Verifier};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use std::fmt;

/// The em dash that starts every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// The most signature lines accepted (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Why a note is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is not valid UTF-8")]
    NotUtf8,
    #[error("note contains the control character U+{0:04X} (only newline is allowed)")]
    ControlCharacter(u32),
    #[error("note does not end with a newline")]
    NoFinalNewline,
    #[error("note has no blank line separating the text from the signatures")]
    NoSignatureBlock,
    #[error("note has no signatures")]
    NoSignatures,
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("signature line {line} does not start with `— ` (em dash, space)")]
    NoEmDash { line: usize },
    #[error("signature line {line} is not `— <name> <base64 signature>`")]
    MalformedSignatureLine { line: usize },
    #[error("signature line {line} has an invalid key name `{name}`")]
    BadKeyName { line: usize, name: String },
    #[error("signature line {line} is not valid base64")]
    BadBase64 { line: usize },
    #[error("signature line {line} is shorter than a key ID and one signature byte")]
    SignatureTooShort { line: usize },
    #[error("note text is empty")]
    EmptyText,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 4-byte key ID (hint).
    pub key_id: KeyId,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A parsed signed note: the signed text and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

fn check_chars(s: &str) -> Result<(), NoteError> {
    match s.chars().find(|&c| c < ' ' && c != '\n') {
        Some(c) => Err(NoteError::ControlCharacter(c as u32)),
        None => Ok(()),
    }
}

impl Note {
    /// Parses a signed note from bytes (which must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, NoteError> {
        Self::parse(std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?)
    }

    /// Parses a signed note.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        check_chars(s)?;
        if !s.ends_with('\n') {
            return Err(NoteError::NoFinalNewline);
        }
        // The text keeps its final newline; the separating blank line belongs to neither part.
        let split = s.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let text = &s[..split + 1];
        let block = &s[split + 2..];
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let text_lines = text.matches('\n').count() + 1;
        let mut signatures = Vec::new();
        for (i, line) in block
            .strip_suffix('\n')
            .unwrap_or(block)
            .split('\n')
            .enumerate()
        {
            let line_no = text_lines + 1 + i;
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature_line(line, line_no)?);
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// An unsigned note over `text`, which must be non-empty, end in a newline, and hold no
    /// control characters other than newline.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_chars(text)?;
        if text.is_empty() {
            return Err(NoteError::EmptyText);
        }
        if !text.ends_with('\n') {
            return Err(NoteError::NoFinalNewline);
        }
        Ok(Note {
            text: text.to_string(),
            signatures: Vec::new(),
        })
    }

    /// The signed text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line.
    pub fn push_signature(&mut self, signature: NoteSignature) {
        self.signatures.push(signature);
    }

    /// Signs the text with an Ed25519 log key and appends the signature line.
    pub fn sign(&mut self, key: &LogKey) {
        let signature = key.sign_raw(self.text.as_bytes());
        self.signatures.push(NoteSignature {
            name: key.name().to_string(),
            key_id: key.key_id(),
            signature,
        });
    }

    /// Checks the note against one trusted key (C2SP signed-note §Signatures).
    pub fn verify(&self, verifier: &Verifier) -> NoteVerification {
        let mut verified = None;
        for sig in &self.signatures {
            if !verifier.matches(&sig.name, &sig.key_id) {
                continue;
            }
            if !verifier.key().verify(self.text.as_bytes(), &sig.signature) {
                // A known key's bad signature rejects the whole note, even if another line
                // from the same key verifies.
                return NoteVerification::BadSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                };
            }
            verified.get_or_insert((sig.name.clone(), sig.key_id));
        }
        match verified {
            Some((name, key_id)) => NoteVerification::Verified { name, key_id },
            None => NoteVerification::NoSignatureFromKey {
                expected_name: verifier.name().map(str::to_string),
                signers: self
                    .signatures
                    .iter()
                    .map(|s| (s.name.clone(), s.key_id))
                    .collect(),
            },
        }
    }
}

fn parse_signature_line(line: &str, line_no: usize) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(NoteError::NoEmDash { line: line_no })?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(NoteError::MalformedSignatureLine { line: line_no })?;
    if !crate::keys::is_valid_key_name(name) {
        return Err(NoteError::BadKeyName {
            line: line_no,
            name: name.to_string(),
        });
    }
    if b64.is_empty() || b64.contains(' ') {
        return Err(NoteError::MalformedSignatureLine { line: line_no });
    }
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::BadBase64 { line: line_no })?;
    if raw.len() < 5 {
        return Err(NoteError::SignatureTooShort { line: line_no });
    }
    Ok(NoteSignature {
        name: name.to_string(),
        key_id: [raw[0], raw[1], raw[2], raw[3]],
        signature: raw[4..].to_vec(),
    })
}

impl fmt::Display for Note {
    /// The wire form: text, blank line, one line per signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            let mut raw = s.key_id.to_vec();
            raw.extend_from_slice(&s.signature);
            writeln!(f, "{SIG_PREFIX}{} {}", s.name, B64.encode(raw))?;
        }
        Ok(())
    }
}

/// The outcome of checking a note against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteVerification {
    /// A signature line from the key verified, and none from it failed.
    Verified { name: String, key_id: KeyId },
    /// No signature line has this key's name and key ID.
    NoSignatureFromKey {
        /// The name the key is bound to, if any.
        expected_name: Option<String>,
        /// Every (name, key ID) that did sign.
        signers: Vec<(String, KeyId)>,
    },
    /// A line from this key has a signature that does not verify over the text: the text or
    /// the signature was altered.
    BadSignature { name: String, key_id: KeyId },
    /// The note could not be parsed.
    Malformed(NoteError),
}

impl NoteVerification {
    /// True for [`NoteVerification::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self, NoteVerification::Verified { .. })
    }
}

impl fmt::Display for NoteVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteVerification::Verified { name, key_id } => {
                write!(f, "signed by `{name}` (key id {})", hex::encode(key_id))
            }
            NoteVerification::NoSignatureFromKey {
                expected_name,
                signers,
            } => {
                let list: Vec<String> = signers
                    .iter()
                    .map(|(n, id)| format!("`{n}` ({})", hex::encode(id)))
                    .collect();
                match expected_name {
                    Some(n) => write!(
                        f,
                        "no signature from the given key `{n}`; signed by {}",
                        list.join(", ")
                    ),
                    None => write!(
                        f,
                        "no signature from the given key; signed by {}",
                        list.join(", ")
                    ),
                }
            }
            NoteVerification::BadSignature { name, key_id } => write!(
                f,
                "signature by `{name}` (key id {}) does not verify: the note was altered",
                hex::encode(key_id)
            ),
            NoteVerification::Malformed(e) => write!(f, "malformed note: {e}"),
        }
    }
}

/// Parses and checks a signed note in one step; a malformed note is an outcome, not an error.
pub fn verify_note(text: &str, verifier: &Verifier) -> NoteVerification {
    match Note::parse(text) {
        Ok(note) => note.verify(verifier),
        Err(e) => NoteVerification::Malformed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parse_round_trip() {
        let key = LogKey::generate("example.com/log").unwrap();
        let mut note = Note::new("hello\n\nworld\n").unwrap();
        note.sign(&key);
        let wire = note.to_string();
        let again = Note::parse(&wire).unwrap();
        assert_eq!(again, note);
        assert_eq!(again.text(), "hello\n\nworld\n");
        assert!(again.verify(&key.verifier()).is_verified());
    }

    #[test]
    fn rejects_malformed_notes() {
        assert_eq!(Note::parse("a\n\n"), Err(NoteError::NoSignatures));
        assert_eq!(Note::parse("a\n"), Err(NoteError::NoSignatureBlock));
        assert_eq!(
            Note::parse("a\n\n\u{2014} n AAAAAAA="),
            Err(NoteError::NoFinalNewline)
        );
        assert_eq!(
            Note::parse("a\n\n- n AAAAAAA=\n"),
            Err(NoteError::NoEmDash { line: 3 })
        );
        assert_eq!(
            Note::parse("a\n\n\u{2014} n AAAA\n"),
            Err(NoteError::SignatureTooShort { line: 3 })
        );
        assert_eq!(
            Note::parse("a\n\n\u{2014} n !!!!\n"),
            Err(NoteError::BadBase64 { line: 3 })
        );
        assert_eq!(
            Note::parse("a\r\n\n\u{2014} n AAAAAAA=\n"),
            Err(NoteError::ControlCharacter(0x0d))
        );
        assert!(matches!(
            Note::parse("a\n\n\u{2014} a+b AAAAAAA=\n"),
            Err(NoteError::BadKeyName { .. })
        ));
    }

    #[test]
    fn a_bad_signature_from_the_key_rejects_even_with_a_good_one() {
        let key = LogKey::generate("log").unwrap();
        let mut note = Note::new("text\n").unwrap();
        note.sign(&key);
        let mut bad = note.signatures()[0].clone();
        bad.signature[0] ^= 1;
        note.push_signature(bad);
        assert!(matches!(
            note.verify(&key.verifier()),
            NoteVerification::BadSignature { .. }
        ));
    }
}
