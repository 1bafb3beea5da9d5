//! The one error type of this crate: a value that does not parse.
//!
//! Every parser here reports the field it was parsing, the offending value, what is wrong with
//! it, and an example of the right form. The CLI prints these as
//! `error: <field> `<value>` <problem>` followed by `hint: ...`.

use std::fmt;

/// A value that failed to parse into a checked type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was being parsed, e.g. `image reference` or `digest`.
    pub field: &'static str,
    /// The input exactly as given (truncated to keep messages readable).
    pub value: String,
    /// What is wrong, as a lowercase phrase without a trailing period.
    pub problem: String,
    /// An example of the right form, or what to type instead.
    pub hint: String,
}

impl ParseError {
    pub(crate) fn new(
        field: &'static str,
        value: &str,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> ParseError {
        ParseError {
            field,
            value: shorten(value),
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    /// Re-labels the error with the name of the flag or column it came from, so that
    /// `--base-digest` errors say `--base-digest` rather than `digest`.
    pub fn in_field(mut self, field: &'static str) -> ParseError {
        self.field = field;
        self
    }
}

/// Values longer than this are cut in messages; a 10 kB "tag" should not flood a terminal.
const MAX_QUOTED: usize = 200;

/// The value as quoted in a message: cut to [`MAX_QUOTED`] characters and made inert, so a
/// refused value cannot drive the terminal that shows the refusal.
fn shorten(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED {
        return crate::inert(value).into_owned();
    }
    let cut: String = value.chars().take(MAX_QUOTED).collect();
    format!("{}…", crate::inert(&cut))
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}` {}", self.field, self.value, self.problem)
    }
}

impl std::error::Error for ParseError {}
