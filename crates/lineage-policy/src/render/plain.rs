//! A renderer for CI logs (GitLab and the like): ASCII only, no colour, one finding per
//! block, each line readable on its own when the log viewer wraps or greps it.

use std::fmt::Write;

use super::{counts_phrase, gate_name, label, location_text, summary_rows, waiver_text};
use crate::report::Report;

pub fn plain(report: &Report) -> String {
    let mut out = String::new();
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "lineage {} check: {verdict}", gate_name(report));
    for (key, value) in summary_rows(report) {
        let _ = writeln!(out, "  {key}: {value}");
    }
    for d in &report.diagnostics {
        let _ = writeln!(
            out,
            "[{}] {} {}: {}",
            label(d).to_ascii_uppercase(),
            d.code,
            d.name,
            d.message
        );
        if let Some(loc) = location_text(d) {
            let _ = writeln!(out, "    at: {loc}");
        }
        if !d.why.is_empty() {
            let _ = writeln!(out, "    why: {}", d.why);
        }
        if let Some(w) = waiver_text(d) {
            let _ = writeln!(out, "    {w}");
        }
        if !d.hint.is_empty() {
            let _ = writeln!(out, "    hint: {}", d.hint);
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "[NOTE] {note}");
    }
    let _ = writeln!(
        out,
        "result: {}: {}",
        verdict.to_ascii_lowercase(),
        counts_phrase(report)
    );
    out
}
