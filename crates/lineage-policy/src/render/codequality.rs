//! GitLab code quality: the CodeClimate-style JSON array GitLab reads from a job's
//! `artifacts:reports:codequality` file and shows in merge requests. Each finding has a
//! description, a check name, a severity, a stable fingerprint and a location; findings
//! without a file of their own point at `fallback_path` (the Dockerfile or lineage.toml).
//! Waived findings are left out: they do not need anyone's attention in a merge request.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::report::{Level, Report};

pub fn codequality(report: &Report, fallback_path: &str) -> String {
    let items: Vec<Value> = report
        .diagnostics
        .iter()
        .filter(|d| d.waived.is_none())
        .map(|d| {
            let (path, line) = match &d.location {
                Some(l) => (l.file.clone(), l.line.unwrap_or(1)),
                None => (fallback_path.to_string(), 1),
            };
            // Stable across runs: the same finding at the same place keeps its fingerprint,
            // so GitLab can tell new findings from old ones.
            let fingerprint = hex::encode(Sha256::digest(
                format!("{}\0{}\0{path}\0{line}", d.code, d.message).as_bytes(),
            ));
            let description = if d.hint.is_empty() {
                format!("{} {}: {}", d.code, d.name, d.message)
            } else {
                format!("{} {}: {} (fix: {})", d.code, d.name, d.message, d.hint)
            };
            json!({
                "description": description,
                "check_name": d.code,
                "fingerprint": fingerprint,
                "severity": match d.level { Level::Error => "major", Level::Warning => "minor" },
                "location": { "path": path, "lines": { "begin": line } },
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&items).expect("json");
    s.push('\n');
    s
}
