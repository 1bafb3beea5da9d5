//! SARIF 2.1.0 (OASIS, "Static Analysis Results Interchange Format Version 2.1.0"), for
//! code-scanning UIs such as GitHub's.
//!
//! Each distinct code in the report becomes a `reportingDescriptor` in `tool.driver.rules`
//! (id = code, name = rule name, help = why and fix); each finding a `result` pointing at its
//! rule by id and index. Waived findings stay in the log with an accepted `suppression`
//! (§3.35), so a UI shows them as dismissed rather than forgetting them.

use serde_json::{json, Value};

use super::waiver_text;
use crate::report::{Diagnostic, Level, Origin, Report};
use crate::rules::RuleId;

/// What SARIF needs that a report does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SarifOptions {
    /// Written as `tool.driver.version`.
    pub tool_version: String,
    /// Where to point findings that have no file of their own (e.g. `lineage.toml` or the
    /// workflow file). GitHub code scanning drops results without a physical location.
    pub fallback_uri: Option<String>,
}

fn level(d: &Diagnostic) -> &'static str {
    match d.level {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn descriptor(d: &Diagnostic) -> Value {
    match RuleId::lookup(&d.code).filter(|_| d.origin == Origin::Builtin) {
        Some(rule) => {
            let info = rule.info();
            json!({
                "id": info.code,
                "name": info.name,
                "shortDescription": { "text": info.summary },
                "fullDescription": { "text": info.why },
                "helpUri": info.doc_url(),
                "help": {
                    "text": format!("{}\nSee {} for an example failure and the fix.", info.why, info.doc_url()),
                    "markdown": format!("{}\n\nSee [`{}`]({}) for an example failure and the fix.", info.why, info.code, info.doc_url()),
                },
                "defaultConfiguration": {
                    "level": if info.default_production == crate::rules::Severity::Error { "error" } else { "warning" },
                },
            })
        }
        None => {
            let file = match &d.origin {
                Origin::Policy { file, .. } => file.as_str(),
                Origin::Builtin => "",
            };
            json!({
                "id": d.code,
                "name": d.name,
                "shortDescription": { "text": format!("custom policy `{}`", d.name) },
                "help": { "text": format!("defined in {file}") },
            })
        }
    }
}

/// Renders the report as one SARIF log with one run.
pub fn sarif(report: &Report, options: &SarifOptions) -> String {
    let mut rules: Vec<Value> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    for d in &report.diagnostics {
        if !ids.contains(&d.code.as_str()) {
            ids.push(&d.code);
            rules.push(descriptor(d));
        }
    }
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if !d.hint.is_empty() {
                text.push_str("\nhint: ");
                text.push_str(&d.hint);
            }
            let mut result = json!({
                "ruleId": d.code,
                "ruleIndex": ids.iter().position(|id| *id == d.code).unwrap_or(0),
                "level": level(d),
                "message": { "text": text },
            });
            let location = d
                .location
                .as_ref()
                .map(|l| (l.file.clone(), l.line, l.column))
                .or_else(|| options.fallback_uri.clone().map(|f| (f, None, None)));
            if let Some((uri, line, column)) = location {
                let mut physical = json!({ "artifactLocation": { "uri": uri } });
                if let Some(line) = line {
                    let mut region = json!({ "startLine": line });
                    if let Some(c) = column {
                        region["startColumn"] = json!(c);
                    }
                    physical["region"] = region;
                }
                result["locations"] = json!([{ "physicalLocation": physical }]);
            }
            if let Some(w) = waiver_text(d) {
                result["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": w,
                }]);
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "lineage",
                    "version": options.tool_version,
                    "rules": rules,
                }
            },
            "results": results,
            "properties": {
                "gate": report.gate,
                "passed": report.passed,
                "subject": report.subject,
            },
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).expect("json values serialise");
    s.push('\n');
    s
}
