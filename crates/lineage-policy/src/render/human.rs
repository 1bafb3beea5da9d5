//! The terminal renderer: a summary screen, then each finding with its code, why and `hint:`.

use std::fmt::Write;

use super::{counts_phrase, gate_name, label, location_text, summary_rows, waiver_text};
use crate::report::Report;

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[1;32m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Renders for a person. `colour` is the caller's decision (a terminal, `NO_COLOR`,
/// `--color`); this function only obeys it.
pub fn human(report: &Report, colour: bool) -> String {
    let paint = |style: &str, text: &str| {
        if colour {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let verdict = if report.passed {
        paint(GREEN, "passed")
    } else {
        paint(RED, "failed")
    };
    let _ = writeln!(out, "{} check {verdict}", gate_name(report));
    for (key, value) in summary_rows(report) {
        // Pad before painting so escape codes do not count towards the column width.
        let _ = writeln!(out, "  {}{value}", paint(DIM, &format!("{key:<12}")));
    }
    for d in &report.diagnostics {
        out.push('\n');
        let style = match label(d) {
            "error" => RED,
            "warning" => YELLOW,
            _ => CYAN,
        };
        let _ = writeln!(
            out,
            "{}{} {}",
            paint(style, &format!("{}[{}]", label(d), d.code)),
            paint(BOLD, ":"),
            d.message
        );
        if let Some(loc) = location_text(d) {
            let _ = writeln!(out, "  --> {loc}");
        }
        let _ = writeln!(out, "  = rule: {}", d.name);
        if !d.why.is_empty() {
            let _ = writeln!(out, "  = why: {}", d.why);
        }
        if let Some(w) = waiver_text(d) {
            let _ = writeln!(out, "  = {}", paint(CYAN, &w));
        }
        if !d.hint.is_empty() {
            let _ = writeln!(out, "  {} {}", paint(GREEN, "hint:"), d.hint);
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "\n{} {note}", paint(BOLD, "note:"));
    }
    let _ = writeln!(out, "\nresult: {verdict}: {}", counts_phrase(report));
    out
}
