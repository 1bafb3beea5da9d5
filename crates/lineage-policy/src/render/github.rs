//! GitHub Actions: workflow commands that annotate the run, and a Markdown job summary.
//!
//! Workflow command escaping follows the Actions toolkit (`@actions/core`, `command.ts`):
//! the message escapes `%`, `\r` and `\n`; property values additionally escape `:` and `,`,
//! which would otherwise end the property.

use std::fmt::Write;

use super::{counts_phrase, gate_name, label, summary_rows, waiver_text};
use crate::report::{Diagnostic, Report};

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn command(d: &Diagnostic) -> &'static str {
    match label(d) {
        "error" => "error",
        "warning" => "warning",
        _ => "notice",
    }
}

/// One `::error`/`::warning`/`::notice` line per finding (waived findings are notices), then
/// one `::notice` per note.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        let mut props = vec![format!(
            "title={}",
            escape_property(&format!("{} {}", d.code, d.name))
        )];
        if let Some(loc) = &d.location {
            props.push(format!("file={}", escape_property(&loc.file)));
            if let Some(line) = loc.line {
                props.push(format!("line={line}"));
            }
            if let Some(col) = loc.column {
                props.push(format!("col={col}"));
            }
        }
        let mut message = d.message.clone();
        if let Some(w) = waiver_text(d) {
            message.push('\n');
            message.push_str(&w);
        }
        if !d.hint.is_empty() {
            message.push_str("\nhint: ");
            message.push_str(&d.hint);
        }
        let _ = writeln!(
            out,
            "::{} {}::{}",
            command(d),
            props.join(","),
            escape_data(&message)
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "::notice title=lineage::{}", escape_data(note));
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The Markdown job summary the CLI appends to `$GITHUB_STEP_SUMMARY`.
pub fn github_summary(report: &Report) -> String {
    let mut out = String::new();
    let (icon, verdict) = if report.passed {
        (":white_check_mark:", "passed")
    } else {
        (":x:", "failed")
    };
    let _ = writeln!(
        out,
        "### {icon} Lineage {} check {verdict}\n",
        gate_name(report)
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    for (key, value) in summary_rows(report) {
        let _ = writeln!(out, "| {key} | `{}` |", cell(&value));
    }
    if !report.diagnostics.is_empty() {
        let _ = writeln!(out, "\n| | Code | Finding | Fix |\n|---|---|---|---|");
        for d in &report.diagnostics {
            let mut finding = cell(&d.message);
            if let Some(w) = waiver_text(d) {
                finding.push_str(&format!("<br>_{}_", cell(&w)));
            }
            let _ = writeln!(
                out,
                "| {} | `{}` {} | {finding} | {} |",
                label(d),
                d.code,
                d.name,
                cell(&d.hint)
            );
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "\n> **Note:** {}", cell(note));
    }
    let _ = writeln!(out, "\n**Result:** {verdict}: {}", counts_phrase(report));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_actions_toolkit() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}
