//! The versioned result of a gate: a subject summary, coded diagnostics and counts.
//!
//! This is the wire type the CLI prints (through `render`) and the server returns; it is the
//! only thing in this crate that is serialised, and it carries `"schema": 1` so readers can
//! tell versions apart. Add fields, never rename them.

use serde::{Deserialize, Serialize};

use crate::rules::{Gate, RuleId};

/// The schema version written into every report.
pub const REPORT_SCHEMA: u32 = 1;

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails the check.
    Error,
    /// Reported, does not fail.
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// Where a finding came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A built-in rule of this crate.
    Builtin,
    /// A `deny` or `warn` rule of a Rego policy file.
    Policy { file: String, package: String },
}

/// A place in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// An exception that turned an error or warning into an accepted finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiver {
    pub approved_by: String,
    /// RFC 3339.
    pub expires: String,
    pub reason: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable code: `B003`, `D001`, or whatever a policy file chose.
    pub code: String,
    /// Kebab-case rule name for built-ins; the package path for policies.
    pub name: String,
    pub level: Level,
    /// Lowercase, no trailing period, offending value in backticks.
    pub message: String,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// The exact fix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub origin: Origin,
    /// Set when an exception accepted this finding; a waived finding never fails the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waiver>,
}

impl Diagnostic {
    pub(crate) fn builtin(rule: RuleId, level: Level, message: String, hint: String) -> Diagnostic {
        let info = rule.info();
        Diagnostic {
            code: info.code.to_string(),
            name: info.name.to_string(),
            level,
            message,
            why: info.why.to_string(),
            hint,
            location: None,
            origin: Origin::Builtin,
            waived: None,
        }
    }

    /// Whether this finding fails the check.
    pub fn is_failure(&self) -> bool {
        self.level == Level::Error && self.waived.is_none()
    }
}

/// What was checked: the one screen a team wants at release time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub production: bool,
    /// The image as given, with digest when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// `name:tag@digest` of the final stage's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployer: Option<String>,
    /// Who approved, for deploys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Where the build ran (`github-actions run 123`), for builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
}

/// Totals, so that consumers need not recount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Unwaived errors: these fail the check.
    pub errors: usize,
    /// Unwaived warnings.
    pub warnings: usize,
    /// Findings accepted by an exception.
    pub waived: usize,
}

/// The outcome of one gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub gate: Gate,
    pub subject: Subject,
    pub diagnostics: Vec<Diagnostic>,
    /// Things the reader should know that are not findings, e.g. an expired exception that
    /// was ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub counts: Counts,
    pub passed: bool,
    /// Which settings the gate judged by (`file`, `how`, `policy_dir`, …), as the caller
    /// found them; `file` is null when no lineage.toml was found and the defaults applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl Report {
    pub(crate) fn new(gate: Gate, subject: Subject) -> Report {
        Report {
            schema: REPORT_SCHEMA,
            gate,
            subject,
            diagnostics: Vec::new(),
            notes: Vec::new(),
            counts: Counts::default(),
            passed: true,
            config: None,
        }
    }

    /// Recomputes `counts` and `passed` from the diagnostics; called after every change so
    /// the two can never disagree.
    pub(crate) fn tally(&mut self) {
        let mut counts = Counts::default();
        for d in &self.diagnostics {
            match (d.waived.is_some(), d.level) {
                (true, _) => counts.waived += 1,
                (false, Level::Error) => counts.errors += 1,
                (false, Level::Warning) => counts.warnings += 1,
            }
        }
        self.counts = counts;
        self.passed = counts.errors == 0;
    }

    /// Adds findings from elsewhere (e.g. a Rego policy evaluated by the caller) and
    /// recounts.
    pub fn extend(&mut self, diagnostics: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(diagnostics);
        self.tally();
    }

    /// Diagnostics with the given code, for callers and tests that look for one rule.
    pub fn with_code<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        self.diagnostics.iter().filter(move |d| d.code == code)
    }
}
