//! Exceptions (waivers): a named person accepts one rule for one service until a date.
//!
//! A waiver never deletes a finding: the finding stays in the report, marked "waived by X
//! until DATE: reason", so the accepted risk stays visible at every release. It only stops
//! the finding from failing the check. Expiry is evaluated against a `now` the caller
//! passes, which keeps evaluation deterministic and testable.

use lineage_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::report::{Report, Waiver};
use crate::rules::RuleId;

/// One recorded exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// A rule code (`B003`), a rule name, or a code a Rego policy emits.
    pub rule: String,
    /// The service it applies to; `*` applies to every service.
    pub service: String,
    pub reason: String,
    pub approved_by: String,
    pub expires: Timestamp,
}

impl Exception {
    fn matches_rule(&self, code: &str, name: &str) -> bool {
        if self.rule.eq_ignore_ascii_case(code) || self.rule == name {
            return true;
        }
        // An exception written with a built-in rule's name matches its code and back.
        RuleId::lookup(&self.rule).is_some_and(|r| r.code() == code)
    }

    fn matches_service(&self, service: Option<&str>) -> bool {
        self.service == "*" || service == Some(self.service.as_str())
    }

    /// Whether the exception still holds at `now`; it lapses at the instant of `expires`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.expires
    }
}

/// Marks the report's matching findings as waived and notes expired exceptions that would
/// have matched, then recounts.
pub fn apply_exceptions(report: &mut Report, exceptions: &[Exception], now: Timestamp) {
    let service = report.subject.service.clone();
    let mut notes = Vec::new();
    for d in &mut report.diagnostics {
        let mut matching = exceptions
            .iter()
            .filter(|e| e.matches_service(service.as_deref()) && e.matches_rule(&d.code, &d.name));
        // The active exception that lasts longest wins, so the report shows the real horizon.
        let (active, expired): (Vec<_>, Vec<_>) = matching.by_ref().partition(|e| e.is_active(now));
        if let Some(e) = active.iter().max_by_key(|e| e.expires) {
            d.waived = Some(Waiver {
                approved_by: e.approved_by.clone(),
                expires: e.expires.to_string(),
                reason: e.reason.clone(),
            });
        } else {
            for e in expired {
                let note = format!(
                    "exception for {} on `{}` approved by {} expired on {} and was ignored: {}",
                    d.code,
                    e.service,
                    e.approved_by,
                    e.expires.date(),
                    e.reason
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    report.notes.extend(notes);
    report.tally();
}
