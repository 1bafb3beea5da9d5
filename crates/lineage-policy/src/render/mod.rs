//! Renderers: pure functions from a [`Report`] to the text a consumer reads.
//!
//! One report, many readers: a person at a terminal ([`human`]), a program ([`json`]), a
//! code-scanning UI ([`sarif`]), GitHub Actions ([`github`] and [`github_summary`]) and CI logs
//! without colour or Unicode, such as GitLab's ([`plain`]), and GitLab merge requests
//! ([`codequality`]). None of them decides anything;
//! they only present what the gate found.

mod codequality;
mod github;
mod human;
mod plain;
mod sarif;

pub use codequality::codequality;
pub use github::{github, github_summary};
pub use human::human;
pub use plain::plain;
pub use sarif::{sarif, SarifOptions};

use crate::report::{Diagnostic, Level, Report};
use crate::rules::Gate;

/// The report as pretty JSON, the versioned wire form (`"schema": 1`).
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("reports serialise");
    s.push('\n');
    s
}

fn gate_name(report: &Report) -> &'static str {
    match report.gate {
        Gate::Build => "build",
        Gate::Deploy => "deploy",
    }
}

/// `error`, `warning` or `waived`, for labels.
fn label(d: &Diagnostic) -> &'static str {
    match (d.waived.is_some(), d.level) {
        (true, _) => "waived",
        (false, Level::Error) => "error",
        (false, Level::Warning) => "warning",
    }
}

/// The "one screen" facts in display order; empty values are shown as `-` so a missing
/// owner or approval is as visible as a present one.
fn summary_rows(report: &Report) -> Vec<(&'static str, String)> {
    let s = &report.subject;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let mut rows = vec![
        ("service", show(&s.service)),
        ("owner", show(&s.owner)),
        ("environment", {
            let mut e = show(&s.environment);
            if s.production && s.environment.as_deref() != Some("production") {
                e.push_str(" (production)");
            }
            e
        }),
        ("image", show(&s.image)),
        ("commit", show(&s.commit)),
        ("base", show(&s.base)),
    ];
    match report.gate {
        Gate::Build => rows.push(("ci", show(&s.ci))),
        Gate::Deploy => {
            rows.push(("deployer", show(&s.deployer)));
            rows.push(("approval", show(&s.approved_by)));
        }
    }
    if let Some(config) = &report.config {
        // "Passed" means something only with the rules it was judged by.
        let file = config["file"].as_str().map_or_else(
            || "none found (built-in defaults)".to_string(),
            str::to_string,
        );
        let policies = config["policy_dir"]
            .as_str()
            .map_or(String::new(), |d| format!("; policies {d}"));
        rows.push(("config", format!("{file}{policies}")));
    }
    rows
}

/// `2 errors, 1 warning, 1 waived`.
fn counts_phrase(report: &Report) -> String {
    let c = report.counts;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {}, {} waived",
        plural(c.errors, "error", "errors"),
        plural(c.warnings, "warning", "warnings"),
        c.waived
    )
}

fn location_text(d: &Diagnostic) -> Option<String> {
    d.location.as_ref().map(|l| match l.line {
        Some(line) => format!("{}:{line}", l.file),
        None => l.file.clone(),
    })
}

fn waiver_text(d: &Diagnostic) -> Option<String> {
    d.waived.as_ref().map(|w| {
        let until = w.expires.get(..10).unwrap_or(&w.expires);
        format!("waived by {} until {until}: {}", w.approved_by, w.reason)
    })
}
