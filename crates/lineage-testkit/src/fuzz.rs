//! Mutations of valid documents for property-based fuzzing of parsers: cuts, insertions of
//! structural and control characters, and repeats, placed anywhere in the document. Shared by
//! the fuzz targets of every crate, so they all attack input the same way.

use proptest::prelude::*;

/// One edit of a document: where (as a fraction of its length) and what.
#[derive(Debug, Clone)]
pub enum Edit {
    Cut(u16, u16),
    Insert(u16, String),
    Repeat(u16, u16, u8),
}

/// Any one edit.
pub fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("\n".to_string()),
        Just("- ".to_string()),
        Just("\u{1b}[2J".to_string()),
        Just("\u{0}".to_string()),
        Just("\u{202e}".to_string()),
        Just("sha256:".to_string()),
        Just("@".to_string()),
        Just("1e999".to_string()),
        Just("-1".to_string()),
        Just("null".to_string()),
        ".{0,12}",
    ];
    prop_oneof![
        (any::<u16>(), 0u16..64).prop_map(|(a, n)| Edit::Cut(a, n)),
        (any::<u16>(), piece).prop_map(|(a, p)| Edit::Insert(a, p)),
        (any::<u16>(), 1u16..40, 1u8..50).prop_map(|(a, n, k)| Edit::Repeat(a, n, k)),
    ]
}

/// `seed` with `edits` applied in order.
pub fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    let at = |a: u16, len: usize| (a as usize * (len + 1)) / (u16::MAX as usize + 1);
    for e in edits {
        match e {
            Edit::Cut(a, n) => {
                let i = at(*a, text.len());
                let end = (i + *n as usize).min(text.len());
                text.drain(i..end);
            }
            Edit::Insert(a, p) => {
                let i = at(*a, text.len());
                text.splice(i..i, p.chars());
            }
            Edit::Repeat(a, n, k) => {
                let i = at(*a, text.len());
                let end = (i + *n as usize).min(text.len());
                let piece: Vec<char> = text[i..end].to_vec();
                for _ in 0..*k {
                    text.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    text.into_iter().collect()
}

/// `seed` with up to five random edits.
pub fn mutated(seed: String) -> impl Strategy<Value = String> {
    proptest::collection::vec(edit(), 0..6).prop_map(move |edits| apply(&seed, &edits))
}
