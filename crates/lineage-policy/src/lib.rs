//! Lineage's build and deploy gates, with no IO.
//!
//! Facts in, a [`Report`] out. The caller (the CLI or the server) reads `lineage.toml`, the
//! store, the Dockerfile and the CI environment, and hands this crate plain values:
//!
//! 1. [`PolicyConfig::from_document`] validates the `[rules]`, `[allowlist]`, `[gates]` and
//!    `[exceptions]` sections of the parsed `lineage.toml`, with `file:line:column` in every
//!    error;
//! 2. [`Policies::load`] parses `policies/*.rego`;
//! 3. [`check_build`] / [`check_deploy`] run the built-in rules, the Rego policies and the
//!    exceptions, and return a [`Report`];
//! 4. [`render`] turns the report into human, JSON, SARIF, GitHub Actions or plain text.
//!
//! A denial is a diagnostic in the report, never an `Err`. `Err` means the gate could not
//! decide: a bad config or a broken policy.

pub mod build;
pub mod config;
pub mod deploy;
pub mod dockerfile;
pub mod exception;
pub mod facts;
pub mod rego;
pub mod render;
pub mod report;
pub mod rules;

use lineage_model::Timestamp;

pub use config::{
    Allowlist, Approvals, ConfigError, EnvGates, ExceptionRules, Gates, PolicyConfig, Scope,
    DEFAULT_EXCEPTION_MAX_DAYS, DEFAULT_STALE_BASE_DAYS,
};
pub use dockerfile::{parse_dockerfile, parse_dockerfile_with_args, Dockerfile};
pub use exception::{apply_exceptions, Exception};
pub use facts::{
    BaseFacts, BuildContext, BuildFacts, DeployFacts, PromotionFacts, RunningDigest,
    SignatureStatus, StaleBase,
};
pub use rego::{build_input, deploy_input, policy_test, Policies, RegoError, TestReport};
pub use report::{Counts, Diagnostic, Level, Location, Origin, Report, Subject, Waiver};
pub use rules::{validate_rule_code, Gate, RuleId, Severity, UnknownRule};

/// Everything a gate needs besides the facts: the validated config, the recorded
/// exceptions, the loaded policies (if any) and the time to judge expiry by.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    pub config: &'a PolicyConfig,
    pub exceptions: &'a [Exception],
    pub policies: Option<&'a Policies>,
    pub now: Timestamp,
}

/// The whole build gate: built-in rules, then Rego policies, then exceptions.
pub fn check_build(
    ev: &Evaluation,
    facts: &BuildFacts,
    cx: &BuildContext,
) -> Result<Report, RegoError> {
    let mut report = build::evaluate_build(ev.config, facts, cx);
    if let Some(policies) = ev.policies {
        let input = build_input(facts, cx, ev.exceptions, ev.now);
        report.extend(policies.evaluate(&input)?);
    }
    apply_exceptions(&mut report, ev.exceptions, ev.now);
    Ok(report)
}

/// The whole deploy gate: built-in rules, then Rego policies, then exceptions.
pub fn check_deploy(ev: &Evaluation, facts: &DeployFacts) -> Result<Report, RegoError> {
    let mut report = deploy::evaluate_deploy(ev.config, facts);
    if let Some(policies) = ev.policies {
        let input = deploy_input(facts, ev.exceptions, ev.now);
        report.extend(policies.evaluate(&input)?);
    }
    apply_exceptions(&mut report, ev.exceptions, ev.now);
    Ok(report)
}
