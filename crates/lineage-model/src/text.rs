//! Free text: the fields that are not names, digests or times (a branch, a CI job, a
//! platform, a Dockerfile path, a URL) and how any text is shown on a terminal.
//!
//! Free text is checked when it is written ([`check_free_text`]): bounded, no control
//! characters, so a record cannot carry a screen clear, an OSC 8 link or a forged line.
//! Text that reached the ledger another way (an older record, a document) is made inert
//! when it is printed ([`inert`]).

use std::borrow::Cow;

use crate::ParseError;

/// Characters that change how a terminal shows what follows: C0 and C1 controls (escape,
/// carriage return, newline, …) and the Unicode bidirectional overrides, which can make a
/// line read differently from the bytes it holds.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Refuses `value` for `field` when it is longer than `max` bytes or holds a character that
/// [`is_unsafe_char`]. Empty text is refused too: an absent value is `None`, not `""`.
pub fn check_free_text(field: &'static str, value: &str, max: usize) -> Result<(), ParseError> {
    let hint = || format!("give at most {max} printable characters, on one line");
    if value.is_empty() {
        return Err(ParseError::new(
            field,
            value,
            "is empty",
            "leave it out instead",
        ));
    }
    if value.len() > max {
        return Err(ParseError::new(
            field,
            value,
            format!("is {} bytes long; at most {max} are accepted", value.len()),
            hint(),
        ));
    }
    if let Some(c) = value.chars().find(|c| is_unsafe_char(*c)) {
        return Err(ParseError::new(
            field,
            value,
            format!("holds the control character U+{:04X}", c as u32),
            hint(),
        ));
    }
    Ok(())
}

/// `text` with every [`is_unsafe_char`] written as a visible escape (`\u{1b}`, `\n`), so
/// that printing it cannot move the cursor, clear the screen or start a new line.
pub fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_refused_with_the_field_and_the_limit() {
        for (value, problem) in [
            ("main\u{1b}[2J", "U+001B"),
            ("main\nerror: forged line", "U+000A"),
            ("main\r", "U+000D"),
            (
                "\u{1b}]8;;https://evil.example\u{7}x\u{1b}]8;;\u{7}",
                "U+001B",
            ),
            ("a\u{202e}b", "U+202E"),
        ] {
            let e = check_free_text("--branch", value, 256).unwrap_err();
            assert_eq!(e.field, "--branch");
            assert!(e.problem.contains(problem), "{value:?}: {}", e.problem);
            // The message itself quotes the value inertly.
            assert!(!e.to_string().chars().any(is_unsafe_char), "{e}");
        }
        let e = check_free_text("--ci-url", &"x".repeat(3000), 2048).unwrap_err();
        assert!(e.problem.contains("at most 2048"), "{}", e.problem);
        assert!(check_free_text("--branch", "", 10).is_err());
        check_free_text("--branch", "release/2.4", 256).unwrap();
        check_free_text("--ci-job", "build (linux, ünïcode)", 256).unwrap();
    }

    #[test]
    fn inert_text_cannot_drive_a_terminal() {
        assert_eq!(inert("main"), "main");
        assert_eq!(inert("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(inert("x\nowner attacker"), "x\\nowner attacker");
        assert_eq!(inert("\u{9b}31m"), "\\u{9b}31m");
        assert!(!inert("\u{202e}txt.exe").contains('\u{202e}'));
    }
}
