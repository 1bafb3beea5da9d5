//! The catalogue of built-in rules: stable codes, kebab-case names, default severities and the
//! "why it matters" text every finding carries.
//!
//! Codes are part of the public interface (exceptions, `[rules]` config, SARIF rule ids and
//! CI dashboards refer to them), so a code is never reused or renumbered: retire a rule by
//! leaving its code out of [`RuleId::ALL`] and never handing it out again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a rule does when it fires: fail the check, report without failing, or stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Off,
    Warn,
    Error,
}

impl Severity {
    /// Parses the spelling used in `lineage.toml`.
    pub fn parse(input: &str) -> Option<Severity> {
        match input {
            "error" => Some(Severity::Error),
            "warn" => Some(Severity::Warn),
            "off" => Some(Severity::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Off => "off",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which gate a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    Build,
    Deploy,
}

/// One built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    FinalDigestMissing,
    BaseNameOrTagMissing,
    BaseDigestMissing,
    BasePullTimeMissing,
    CommitNotFull,
    SourceRepoOrBranchMissing,
    NotBuiltInCi,
    MutableTagOnly,
    UnpinnedDockerfileFrom,
    SharedCommit,
    SharedCiJob,
    ForeignSourceRepo,
    BaseNotAllowlisted,
    OwnerMissing,
    EnvironmentUnknown,
    ApprovalMissing,
    FourEyes,
    ImageNotPinned,
    BuildRecordMissing,
    BuildCheckFailed,
    DigestRetired,
    SignatureUntrusted,
    ProvenanceUnsigned,
    ImageRepositoryMismatch,
    BaseStale,
    DockerfileBaseMismatch,
    OlderThanRunning,
    PromotionSkipped,
}

/// The static facts about a rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    pub code: &'static str,
    pub name: &'static str,
    pub gate: Gate,
    /// One line: what the rule checks.
    pub summary: &'static str,
    /// Why a team should care, shown under each finding.
    pub why: &'static str,
    pub default_production: Severity,
    pub default_other: Severity,
}

/// The rules page in the project's repository (`repository` in the workspace manifest).
pub const RULES_DOC_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/rules.md");

impl RuleInfo {
    /// The absolute link to this rule's section of docs/rules.md: the anchor a Markdown
    /// renderer gives its heading `### B001 final-digest-missing`.
    pub fn doc_url(&self) -> String {
        format!(
            "{RULES_DOC_URL}#{}-{}",
            self.code.to_ascii_lowercase(),
            self.name
        )
    }
}

impl RuleId {
    /// Every rule, in code order.
    pub const ALL: [RuleId; 28] = [
        RuleId::FinalDigestMissing,
        RuleId::BaseNameOrTagMissing,
        RuleId::BaseDigestMissing,
        RuleId::BasePullTimeMissing,
        RuleId::CommitNotFull,
        RuleId::SourceRepoOrBranchMissing,
        RuleId::NotBuiltInCi,
        RuleId::MutableTagOnly,
        RuleId::UnpinnedDockerfileFrom,
        RuleId::SharedCommit,
        RuleId::SharedCiJob,
        RuleId::ForeignSourceRepo,
        RuleId::BaseNotAllowlisted,
        RuleId::DockerfileBaseMismatch,
        RuleId::OwnerMissing,
        RuleId::EnvironmentUnknown,
        RuleId::ApprovalMissing,
        RuleId::FourEyes,
        RuleId::ImageNotPinned,
        RuleId::BuildRecordMissing,
        RuleId::BuildCheckFailed,
        RuleId::DigestRetired,
        RuleId::SignatureUntrusted,
        RuleId::ProvenanceUnsigned,
        RuleId::ImageRepositoryMismatch,
        RuleId::BaseStale,
        RuleId::OlderThanRunning,
        RuleId::PromotionSkipped,
    ];

    pub fn info(self) -> RuleInfo {
        use Severity::{Error, Off, Warn};
        let (code, name, gate, summary, why, default_production, default_other) = match self {
            RuleId::FinalDigestMissing => (
                "B001",
                "final-digest-missing",
                Gate::Build,
                "the built image has no digest",
                "without the digest of what was built, nothing later can prove that the image running is the one this record describes",
                Error,
                Error,
            ),
            RuleId::BaseNameOrTagMissing => (
                "B002",
                "base-name-or-tag-missing",
                Gate::Build,
                "a base image has no name or no tag",
                "when a CVE lands in a base image, the name and tag are how you find every image built on it",
                Error,
                Error,
            ),
            RuleId::BaseDigestMissing => (
                "B003",
                "base-digest-missing",
                Gate::Build,
                "a base image has no digest",
                "a tag can be moved; only the digest says which bytes the image was built on, so an affected base can be traced",
                Error,
                Warn,
            ),
            RuleId::BasePullTimeMissing => (
                "B004",
                "base-pull-time-missing",
                Gate::Build,
                "a base image has no pull time",
                "the pull time shows how stale the base was at build time and which advisories were already public",
                Error,
                Warn,
            ),
            RuleId::CommitNotFull => (
                "B005",
                "commit-not-full",
                Gate::Build,
                "the commit is missing or not a full SHA",
                "an abbreviated or missing commit cannot be checked against the repository, and short ids collide",
                Error,
                Error,
            ),
            RuleId::SourceRepoOrBranchMissing => (
                "B006",
                "source-repo-or-branch-missing",
                Gate::Build,
                "the source repository or branch is missing",
                "a commit id alone does not say where the code lives or which line of work it came from",
                Error,
                Warn,
            ),
            RuleId::NotBuiltInCi => (
                "B007",
                "not-built-in-ci",
                Gate::Build,
                "no CI system or run id: the build did not run in CI",
                "a laptop rebuild has no log, no reviewed pipeline and no way to reproduce it; production images come from CI",
                Error,
                Warn,
            ),
            RuleId::MutableTagOnly => (
                "B008",
                "mutable-tag-only",
                Gate::Build,
                "a production build is referenced only by a mutable tag",
                "a tag such as `latest` can be pushed over at any time, so what it names today is not what was checked",
                Error,
                Off,
            ),
            RuleId::UnpinnedDockerfileFrom => (
                "B009",
                "unpinned-dockerfile-from",
                Gate::Build,
                "a Dockerfile `FROM` is not pinned by digest",
                "an unpinned `FROM` builds on whatever the tag points to that day, so two builds of one commit can differ",
                Error,
                Warn,
            ),
            RuleId::SharedCommit => (
                "B010",
                "shared-commit",
                Gate::Build,
                "the same repository and commit are recorded for different services",
                "identical source metadata on unrelated services usually means a copied pipeline template that reports the wrong source",
                Warn,
                Warn,
            ),
            RuleId::SharedCiJob => (
                "B011",
                "shared-ci-job",
                Gate::Build,
                "one CI job name is shared by every service",
                "a job name every service reports cannot tell builds apart; it is usually a hard-coded default",
                Warn,
                Warn,
            ),
            RuleId::ForeignSourceRepo => (
                "B012",
                "foreign-source-repo",
                Gate::Build,
                "the source label points at another service's repository",
                "provenance that names someone else's repository sends an incident to the wrong team",
                Error,
                Warn,
            ),
            RuleId::BaseNotAllowlisted => (
                "B013",
                "base-not-allowlisted",
                Gate::Build,
                "a base image or its registry is not in the allowlist",
                "bases from unvetted images or registries bypass the patching and scanning the allowlist stands for",
                Error,
                Error,
            ),
            RuleId::DockerfileBaseMismatch => (
                "B014",
                "dockerfile-base-mismatch",
                Gate::Build,
                "a base the record names contradicts the Dockerfile's pinned `FROM`",
                "when the record and the Dockerfile disagree about the base, an incident on one of them finds the wrong images",
                Error,
                Error,
            ),
            RuleId::OwnerMissing => (
                "D001",
                "owner-missing",
                Gate::Deploy,
                "the service has no owner, or the owner is unknown",
                "when this deploy breaks something, someone must be paged; a service without a known owner has nobody",
                Error,
                Error,
            ),
            RuleId::EnvironmentUnknown => (
                "D002",
                "environment-unknown",
                Gate::Deploy,
                "the target environment is missing or not configured",
                "a misspelt environment silently skips the checks and the history of the real one",
                Error,
                Error,
            ),
            RuleId::ApprovalMissing => (
                "D003",
                "approval-missing",
                Gate::Deploy,
                "a deploy that needs approval has no approver",
                "production changes need a second person who agreed to them, for safety and for audits",
                Error,
                Error,
            ),
            RuleId::FourEyes => (
                "D004",
                "four-eyes",
                Gate::Deploy,
                "the approver is the deployer",
                "approving your own change is no approval; four-eyes needs two different people",
                Error,
                Error,
            ),
            RuleId::ImageNotPinned => (
                "D005",
                "image-not-pinned",
                Gate::Deploy,
                "the image is not pinned by digest",
                "a tag can move between check and rollout, so the checked image may not be the one that runs",
                Error,
                Warn,
            ),
            RuleId::BuildRecordMissing => (
                "D006",
                "build-record-missing",
                Gate::Deploy,
                "the digest has no build record",
                "an image with no build record has unknown provenance: nobody can say what source or base it came from",
                Error,
                Warn,
            ),
            RuleId::BuildCheckFailed => (
                "D007",
                "build-check-failed",
                Gate::Deploy,
                "the digest's build failed its build check",
                "the build gate already found this image's record incomplete or unsafe",
                Error,
                Warn,
            ),
            RuleId::DigestRetired => (
                "D008",
                "digest-retired",
                Gate::Deploy,
                "the digest is marked retired",
                "retired images were withdrawn on purpose, usually for a vulnerability or a bad release",
                Error,
                Error,
            ),
            RuleId::SignatureUntrusted => (
                "D009",
                "signature-untrusted",
                Gate::Deploy,
                "the provenance signature does not verify with a trusted key",
                "a provenance record signed by an unknown key, or altered after signing, may be forged",
                Error,
                Error,
            ),
            RuleId::ProvenanceUnsigned => (
                "D010",
                "provenance-unsigned",
                Gate::Deploy,
                "the provenance record is not signed",
                "an unsigned record can be edited by anyone with store access without leaving a trace",
                Warn,
                Off,
            ),
            RuleId::ImageRepositoryMismatch => (
                "D011",
                "image-repository-mismatch",
                Gate::Deploy,
                "the image repository is not the one the digest was built for",
                "a digest deployed under another service's repository is recorded as that service's release, so `running` names the wrong build and `trace` and `affected` never find it",
                Error,
                Error,
            ),
            RuleId::BaseStale => (
                "D012",
                "base-stale",
                Gate::Deploy,
                "the final base is behind a newer digest of its tag for longer than `[gates] stale_base_days`",
                "a base left behind its tag keeps the vulnerabilities the newer digest fixed",
                Warn,
                Warn,
            ),
            RuleId::OlderThanRunning => (
                "D013",
                "older-than-running",
                Gate::Deploy,
                "the digest was built before the one recorded as running there, and the deploy is not a recorded rollback",
                "a hand-made `kubectl set image` to an older build quietly brings back what the newer build fixed, such as a vulnerable base",
                Warn,
                Warn,
            ),
            RuleId::PromotionSkipped => (
                "D014",
                "promotion-skipped",
                Gate::Deploy,
                "the digest did not run in the previous environment of `[promotion] path`, for its soak time, with a healthy outcome where required",
                "an image that skipped staging, or left it before anyone could see it fail, reaches production untested",
                Error,
                Error,
            ),
        };
        RuleInfo {
            code,
            name,
            gate,
            summary,
            why,
            default_production,
            default_other,
        }
    }

    pub fn code(self) -> &'static str {
        self.info().code
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The default severity in a production or a non-production environment.
    pub fn default_severity(self, production: bool) -> Severity {
        let info = self.info();
        if production {
            info.default_production
        } else {
            info.default_other
        }
    }

    /// Finds a rule by code (`B003`, any case) or by name (`base-digest-missing`).
    pub fn lookup(code_or_name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| {
            let info = r.info();
            info.code.eq_ignore_ascii_case(code_or_name) || info.name == code_or_name
        })
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An exception or config names a rule that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule `{given}`; valid rules are: {}", valid_rule_list())]
pub struct UnknownRule {
    pub given: String,
    /// The closest valid code or name, if one is close.
    pub suggestion: Option<String>,
}

impl UnknownRule {
    pub fn hint(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("did you mean `{s}`? run `lineage policy rules` or see docs/rules.md"),
            None => "use a code such as `B003` or a name such as `base-digest-missing`; see docs/rules.md".to_string(),
        }
    }
}

/// `B001 final-digest-missing, B002 ...` for error messages.
pub fn valid_rule_list() -> String {
    RuleId::ALL
        .iter()
        .map(|r| format!("{} ({})", r.code(), r.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the rule of an exception before it is recorded (`lineage exception add --rule`).
/// Accepts a code or a name; returns the rule so the caller can store the canonical code.
pub fn validate_rule_code(code: &str) -> Result<RuleId, UnknownRule> {
    RuleId::lookup(code.trim()).ok_or_else(|| UnknownRule {
        given: code.to_string(),
        suggestion: closest_rule(code),
    })
}

fn closest_rule(given: &str) -> Option<String> {
    let upper = given.to_ascii_uppercase();
    RuleId::ALL
        .iter()
        .flat_map(|r| [r.code(), r.name()])
        .map(|candidate| {
            let target = if candidate.starts_with(['B', 'D']) && candidate.len() == 4 {
                upper.as_str()
            } else {
                given
            };
            (strsim::levenshtein(target, candidate), candidate)
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique_and_well_formed() {
        let mut codes = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for r in RuleId::ALL {
            let info = r.info();
            assert!(codes.insert(info.code), "duplicate code {}", info.code);
            assert!(names.insert(info.name), "duplicate name {}", info.name);
            let prefix = match info.gate {
                Gate::Build => 'B',
                Gate::Deploy => 'D',
            };
            assert!(info.code.starts_with(prefix) && info.code.len() == 4);
            assert!(info
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }

    #[test]
    fn lookup_accepts_code_any_case_and_name() {
        assert_eq!(RuleId::lookup("b003"), Some(RuleId::BaseDigestMissing));
        assert_eq!(
            RuleId::lookup("base-digest-missing"),
            Some(RuleId::BaseDigestMissing)
        );
        assert_eq!(RuleId::lookup("B999"), None);
    }

    #[test]
    fn unknown_rule_lists_valid_codes_and_suggests() {
        let err = validate_rule_code("base-digest-mising").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("base-digest-missing"));
        let text = err.to_string();
        for r in RuleId::ALL {
            assert!(text.contains(r.code()), "{text} lacks {}", r.code());
        }
    }
}
