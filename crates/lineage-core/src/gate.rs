//! The build and deploy gates' one home.
//!
//! Every front end asks here: `build check`/`deploy check`, `build record`/`deploy record`
//! (local or `--server`), `POST /api/v1/builds|deploys`, and the admission webhook. This
//! module gathers the facts a gate judges (from a [`Store`], or from any [`DeployLedger`], such
//! as the server's in-memory admission index), runs `lineage-policy` (built-in rules, `[rules]`
//! severities, Rego policies, exceptions) and, for the record use cases, writes the record
//! and everything derived from it in one transaction, or nothing when the gate refuses.
//!
//! A refusal is an outcome ([`Decision::Refused`] carrying the gate report), never an `Err`;
//! `Err` means the gate could not decide (a broken policy, an unreadable ledger) or the input
//! could not be recorded at all (an unknown service, a time in the future).

use lineage_attest::TrustPolicy;
use lineage_model::{
    Approval, Attestation, BaseSeen, BuildRecord, CheckResult, CommitId, DeployOutcome,
    DeployRecord, Digest, EnvName, Identity, ImageRef, Record, Repository, Retirement, Service,
    ServiceName, SourceRepo, Timestamp,
};
use lineage_policy::{
    Approvals, BaseFacts, BuildContext, BuildFacts, DeployFacts, Evaluation, Exception, Policies,
    PolicyConfig, Report, RunningDigest, SignatureStatus, StaleBase,
};
use lineage_store::Store;
use serde::Serialize;

use crate::record::{self, RecordReport};
use crate::{provenance, Config, Error};

/// How far in the future an event time may lie (clock skew between CI runners and the
/// ledger's writer); anything later is a typo or a forgery.
pub const MAX_FUTURE_SECONDS: i64 = 5 * 60;

/// Everything a gate judges by besides the facts, loaded once by the front end: the
/// environments, the gate sections of lineage.toml, the Rego policies and the trust policy.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub config: Config,
    pub policy: PolicyConfig,
    pub policies: Option<Policies>,
    pub trust: TrustPolicy,
    /// Where these settings came from, named in every report.
    pub source: Option<crate::ConfigSource>,
}

impl Setup {
    /// Names the settings a report was judged by.
    fn stamp(&self, mut report: Report) -> Report {
        report.config = self
            .source
            .as_ref()
            .map(|s| serde_json::to_value(s).expect("sources serialise"));
        report
    }

    fn evaluation<'a>(&'a self, exceptions: &'a [Exception], now: Timestamp) -> Evaluation<'a> {
        Evaluation {
            config: &self.policy,
            exceptions,
            policies: self.policies.as_ref(),
            now,
        }
    }
}

/// What a gated write did.
#[derive(Debug, Clone)]
pub enum Decision<T> {
    /// Written (durably) with the gate report, which may hold warnings and waivers.
    Recorded { result: T, gate: Report },
    /// The gate failed; nothing was written.
    Refused { gate: Report },
}

impl<T> Decision<T> {
    pub fn gate(&self) -> &Report {
        match self {
            Decision::Recorded { gate, .. } | Decision::Refused { gate } => gate,
        }
    }
}

// -------------------------------------------------------------------------------------------
// Facts about one digest
// -------------------------------------------------------------------------------------------

/// What the ledger says about one digest, as the deploy gate needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestFacts {
    pub build: Option<BuildRecord>,
    /// The newest build-gate result.
    pub check: Option<CheckResult>,
    pub retired: Option<Retirement>,
    /// Provenance signature status per environment asked for (`None`: no environment).
    pub signature: Vec<(Option<EnvName>, SignatureStatus)>,
    /// Recorded approvals of the digest, oldest first, every environment.
    pub approvals: Vec<Approval>,
    /// Recorded deploys of the digest, newest first.
    pub deploys: Vec<DeployRecord>,
    /// How fresh the build's final-stage base is (`None` without a build record).
    pub base_freshness: Option<crate::freshness::Freshness>,
    /// Recorded outcomes of the digest, oldest first, every environment.
    pub outcomes: Vec<DeployOutcome>,
}

impl DigestFacts {
    pub fn signature_for(&self, env: Option<&EnvName>) -> SignatureStatus {
        self.signature
            .iter()
            .find(|(e, _)| e.as_ref() == env)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// The final base (`name:tag@digest`) and since when a newer digest of its tag is known.
    pub fn stale_base(&self) -> Option<(String, Timestamp)> {
        self.base_freshness.as_ref()?.behind()
    }

    /// The newest recorded deploy of this digest to `env`.
    pub fn deployed_to(&self, env: &EnvName) -> Option<&DeployRecord> {
        self.deploys.iter().find(|d| d.env == *env)
    }
}

/// Reads everything the deploy gate needs about `digest`, with the signature judged for each
/// of `envs`. The server calls this once per digest and keeps the answer in memory.
pub fn digest_facts(
    store: &dyn Store,
    trust: &TrustPolicy,
    envs: &[Option<EnvName>],
    digest: &Digest,
) -> Result<DigestFacts, Error> {
    let key = digest.to_string();
    let build = store.build(digest)?;
    let check = latest_check(store, digest)?;
    let retired = crate::lifecycle::retirement(store, digest)?;
    let mut signature = Vec::with_capacity(envs.len());
    for env in envs {
        signature.push((
            env.clone(),
            provenance::status(store, trust, env.as_ref(), digest)?,
        ));
    }
    let approvals = store
        .facts("approval", Some(&key))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Approval(a) => Some(a),
            _ => None,
        })
        .collect();
    let deploys = store.deploys_of_digest(digest)?;
    // Outcomes are filed under their service: the build's, else the deploys'.
    let mut services: Vec<&ServiceName> = build
        .iter()
        .map(|b| &b.service)
        .chain(deploys.iter().map(|d| &d.service))
        .collect();
    services.sort();
    services.dedup();
    let mut outcomes = Vec::new();
    for service in services {
        outcomes.extend(
            crate::lifecycle::outcomes(store, service)?
                .into_iter()
                .filter(|o| o.digest == *digest),
        );
    }
    outcomes.sort_by_key(|o| o.at);
    let base_freshness = build
        .as_ref()
        .map(|b| crate::freshness::assess_build(store, b))
        .transpose()?;
    Ok(DigestFacts {
        build,
        check,
        retired,
        signature,
        approvals,
        deploys,
        base_freshness,
        outcomes,
    })
}

/// The newest recorded build-gate result of `digest`.
pub fn latest_check(store: &dyn Store, digest: &Digest) -> Result<Option<CheckResult>, Error> {
    Ok(store
        .facts("check", Some(&digest.to_string()))?
        .into_iter()
        .rev()
        .find_map(|e| match e.record {
            Record::Check(c) if c.gate == "build" => Some(c),
            _ => None,
        }))
}

/// The exceptions recorded in the ledger, as the gate reads them.
pub fn exceptions(store: &dyn Store) -> Result<Vec<Exception>, Error> {
    Ok(store
        .facts("exception", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Exception(x) => Some(as_policy(&x)),
            _ => None,
        })
        .collect())
}

/// A recorded exception as `lineage-policy` judges it.
fn as_policy(x: &lineage_model::Exception) -> Exception {
    Exception {
        rule: x.rule.clone(),
        service: x.service.clone(),
        reason: x.reason.clone(),
        approved_by: x.approved_by.to_string(),
        expires: x.expires,
    }
}

// -------------------------------------------------------------------------------------------
// The deploy gate
// -------------------------------------------------------------------------------------------

/// What the deploy gate reads from the ledger. Every [`Store`] is one (through
/// [`StoreLedger`]); the server's admission index is another, answering from memory so
/// that nothing on the admission path waits for a disk or a network.
pub trait DeployLedger {
    fn service(&self, name: &ServiceName) -> Result<Option<Service>, Error>;
    fn service_for_image(&self, image: &Repository) -> Result<Option<ServiceName>, Error>;
    /// Facts of `digest`, with the signature judged for `env`.
    fn digest(&self, digest: &Digest, env: Option<&EnvName>) -> Result<DigestFacts, Error>;
    fn exceptions(&self) -> Result<Vec<Exception>, Error>;
    /// The digest recorded as running for `service` in `env` now (its placement), with when
    /// its build finished, for rule D013.
    fn running(&self, service: &ServiceName, env: &EnvName)
        -> Result<Option<RunningDigest>, Error>;
}

/// The placement of `service` in `env` as rule D013 reads it, from a store.
pub fn running_digest(
    store: &dyn Store,
    service: &ServiceName,
    env: &EnvName,
) -> Result<Option<RunningDigest>, Error> {
    Ok(store
        .running(Some(env), Some(service))?
        .into_iter()
        .next()
        .map(|r| RunningDigest {
            digest: r.deploy.digest.to_string(),
            since: r.deploy.at,
            built_at: r.build.and_then(|b| b.finished_at.or(b.started_at)),
        }))
}

/// A [`Store`] as the deploy gate reads it.
pub struct StoreLedger<'a> {
    pub store: &'a dyn Store,
    pub trust: &'a TrustPolicy,
}

impl DeployLedger for StoreLedger<'_> {
    fn service(&self, name: &ServiceName) -> Result<Option<Service>, Error> {
        Ok(self.store.service(name)?)
    }
    fn service_for_image(&self, image: &Repository) -> Result<Option<ServiceName>, Error> {
        Ok(self.store.service_for_image(image)?)
    }
    fn digest(&self, digest: &Digest, env: Option<&EnvName>) -> Result<DigestFacts, Error> {
        digest_facts(self.store, self.trust, &[env.cloned()], digest)
    }
    fn exceptions(&self) -> Result<Vec<Exception>, Error> {
        exceptions(self.store)
    }
    fn running(
        &self,
        service: &ServiceName,
        env: &EnvName,
    ) -> Result<Option<RunningDigest>, Error> {
        running_digest(self.store, service, env)
    }
}

/// A deploy as the user describes it, unvalidated: the gate turns a bad value into a coded
/// finding (an unpinned image is D005, a misspelt environment D002).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployRequest {
    pub image: String,
    pub env: Option<String>,
    pub deployer: Option<String>,
    pub approver: Option<String>,
    /// The deployer declares the deploy a rollback to an older build (rule D013).
    pub rollback: bool,
}

/// Gathers the facts of a deploy. `image`, `env`, the deployer and the approver are taken as
/// given; the rest comes from the ledger.
pub fn deploy_facts(
    ledger: &dyn DeployLedger,
    setup: &Setup,
    req: &DeployRequest,
    now: Timestamp,
) -> Result<DeployFacts, Error> {
    let parsed = ImageRef::parse(req.image.trim()).ok();
    let mut facts = DeployFacts {
        image: Some(req.image.clone()),
        environment: req.env.clone(),
        configured_environments: setup
            .config
            .environments
            .iter()
            .map(ToString::to_string)
            .collect(),
        deployer: req.deployer.clone(),
        approver: req.approver.clone(),
        rollback: req.rollback,
        ..DeployFacts::default()
    };
    let env = req
        .env
        .as_deref()
        .and_then(|e| EnvName::parse(e.trim()).ok())
        .filter(|e| setup.config.environments.contains(e));
    facts.production = env.as_ref().is_some_and(|e| setup.config.is_production(e));
    let digest = parsed.as_ref().and_then(|r| r.digest.clone());
    let known = match &digest {
        Some(d) => Some(ledger.digest(d, env.as_ref())?),
        None => None,
    };
    // The service is the one owning the image repository; a digest built for another
    // repository still names its own service (and rule D011 says so).
    let owner_of_repo = match &parsed {
        Some(r) => ledger.service_for_image(&r.repository)?,
        None => None,
    };
    let service_name = owner_of_repo.or_else(|| {
        known
            .as_ref()
            .and_then(|k| k.build.as_ref())
            .map(|b| b.service.clone())
    });
    match service_name {
        Some(name) => {
            facts.service = ledger.service(&name)?;
            facts.owner_known = facts.service.as_ref().is_some_and(|s| s.owner.is_some());
            facts.service_name = Some(name.to_string());
        }
        None => {
            facts.service_name = parsed
                .as_ref()
                .map(|r| r.repository.short_name().to_string())
        }
    }
    if let (Some(name), Some(env), Some(d)) = (&facts.service_name, &env, &digest) {
        if let Ok(name) = ServiceName::parse(name) {
            facts.running = ledger
                .running(&name, env)?
                .filter(|r| r.digest != d.to_string());
        }
    }
    let Some(known) = known else {
        return Ok(facts);
    };
    facts.build_check_passed = known.check.as_ref().map(|c| c.passed);
    facts.retired = known.retired.as_ref().map(|r| r.reason.clone());
    facts.signature = known.signature_for(env.as_ref());
    facts.recorded_approvals = match &env {
        Some(env) => known
            .approvals
            .iter()
            .filter(|a| a.env == *env)
            .map(|a| a.by.to_string())
            .collect(),
        None => Vec::new(),
    };
    facts.first_staging_deploy = known
        .deploys
        .iter()
        .filter(|d| d.env.as_str() == "staging")
        .map(|d| d.at)
        .min();
    if let (Some(env), Some(promotion)) = (&env, &setup.config.promotion) {
        facts.promotion = promotion
            .previous(env)
            .map(|from| promotion_facts(promotion, &known, from, env, now));
    }
    facts.stale_base = known.stale_base().map(|(base, since)| StaleBase {
        base,
        since,
        days: since.days_until(now),
    });
    facts.build = known.build;
    Ok(facts)
}

/// Where a digest stands on the promotion path before going to `to` (rule D014).
fn promotion_facts(
    promotion: &crate::config::Promotion,
    known: &DigestFacts,
    from: &EnvName,
    to: &EnvName,
    now: Timestamp,
) -> lineage_policy::PromotionFacts {
    let reached_at = known
        .deploys
        .iter()
        .filter(|d| d.env == *from)
        .map(|d| d.at)
        .min();
    lineage_policy::PromotionFacts {
        from: from.to_string(),
        reached_at,
        soaked_minutes: reached_at.map(|at| (now.unix() - at.unix()).max(0) / 60),
        soak_minutes: promotion.soak_minutes.get(from).copied().unwrap_or(0),
        outcome: known
            .outcomes
            .iter()
            .rev()
            .find(|o| o.env == *from)
            .map(|o| o.status.as_str().to_string()),
        require_healthy: promotion.require_healthy,
        ran_in_target: known.deploys.iter().any(|d| d.env == *to),
    }
}

/// The whole deploy gate over a ledger: facts, built-in rules, Rego, exceptions.
pub fn check_deploy(
    ledger: &dyn DeployLedger,
    setup: &Setup,
    req: &DeployRequest,
    now: Timestamp,
) -> Result<Report, Error> {
    Ok(judge_deploy(ledger, setup, req, now)?.1)
}

/// The deploy gate's facts and its report: the one judgement behind `check_deploy` and
/// `gate_deploy`.
fn judge_deploy(
    ledger: &dyn DeployLedger,
    setup: &Setup,
    req: &DeployRequest,
    now: Timestamp,
) -> Result<(DeployFacts, Report), Error> {
    let facts = deploy_facts(ledger, setup, req, now)?;
    let exceptions = ledger.exceptions()?;
    let report = lineage_policy::check_deploy(&setup.evaluation(&exceptions, now), &facts)?;
    Ok((facts, setup.stamp(report)))
}

/// `deploy record`, `POST /api/v1/deploys`: the deploy gate, then the record. A refused
/// deploy writes nothing. Under `[gates] approvals = "recorded"` the record names the
/// approver whose recorded approval let it through.
pub fn record_deploy(
    store: &mut dyn Store,
    setup: &Setup,
    input: record::DeployInput,
    recorded_by: Option<&Identity>,
    now: Timestamp,
) -> Result<Decision<RecordReport>, Error> {
    match gate_deploy(&*store, setup, input, now)? {
        Decision::Refused { gate } => Ok(Decision::Refused { gate }),
        Decision::Recorded { result, gate } => {
            let result = record::deploy(store, result, now, recorded_by)?;
            Ok(Decision::Recorded { result, gate })
        }
    }
}

/// The deploy gate and the record it would write, writing nothing: `record_deploy` writes
/// it at once; `drift --reconcile` writes several with placement ends in one transaction.
pub fn gate_deploy(
    store: &dyn Store,
    setup: &Setup,
    input: record::DeployInput,
    now: Timestamp,
) -> Result<Decision<DeployRecord>, Error> {
    let req = DeployRequest {
        image: input.image.to_string(),
        env: Some(input.env.clone()),
        deployer: Some(input.by.to_string()),
        approver: input.approved_by.as_ref().map(ToString::to_string),
        rollback: input.rollback,
    };
    check_event_time("at", input.at, now)?;
    let ledger = StoreLedger {
        store,
        trust: &setup.trust,
    };
    let (facts, gate) = judge_deploy(&ledger, setup, &req, now)?;
    if !gate.passed {
        return Ok(Decision::Refused { gate });
    }
    let mut deploy = record::resolve_deploy(store, &setup.config, input)?;
    if let Some(finished) = facts.build.as_ref().and_then(|b| b.finished_at) {
        if deploy.at < finished {
            return Err(Error::Refused(
                format!(
                    "the deploy is dated `{}`, before its build finished (`{finished}`)",
                    deploy.at
                ),
                "give the time the deploy happened (`--at`, RFC 3339), or leave it out for now"
                    .into(),
            ));
        }
    }
    if setup.policy.gates.approvals == Approvals::Recorded && deploy.approved_by.is_none() {
        // The approval that let the deploy through: the first one not by the deployer.
        deploy.approved_by = facts
            .recorded_approvals
            .iter()
            .find(|a| !Identity::same(a, deploy.by.as_str()))
            .and_then(|a| Identity::parse(a).ok());
    }
    Ok(Decision::Recorded {
        result: deploy,
        gate,
    })
}

/// 2000-01-01T00:00:00Z. Container images are younger; a year-0 time is a typo or a zeroed
/// field, and it would sort before every real event.
pub const EARLIEST_EVENT_UNIX: i64 = 946_684_800;

/// Refuses an event time before [`EARLIEST_EVENT_UNIX`] or more than [`MAX_FUTURE_SECONDS`] ahead of `now`: a deploy dated
/// next year would hide every real deploy after it.
pub fn check_event_time(field: &str, at: Timestamp, now: Timestamp) -> Result<(), Error> {
    if at.unix() < EARLIEST_EVENT_UNIX {
        return Err(Error::Refused(
            format!(
                "`{field}` is `{at}`, before `{}`, the earliest time Lineage accepts for a build or deploy",
                Timestamp::from_unix(EARLIEST_EVENT_UNIX)
            ),
            "give the time it happened (RFC 3339, e.g. `2026-11-17T09:30:00Z`), or leave it out for now".into(),
        ));
    }
    if at.unix() > now.unix() + MAX_FUTURE_SECONDS {
        return Err(Error::Refused(
            format!("`{field}` is `{at}`, in the future (now is `{now}`)"),
            format!(
                "give the time it happened (RFC 3339, at most {} minutes ahead of this clock), or leave it out for now",
                MAX_FUTURE_SECONDS / 60
            ),
        ));
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Approvals
// -------------------------------------------------------------------------------------------

/// An approval to record.
#[derive(Debug, Clone)]
pub struct ApprovalInput {
    pub image: ImageRef,
    pub env: String,
    pub by: Identity,
    pub reason: Option<String>,
}

/// The result of `lineage approve`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ApprovalReport {
    pub schema: u32,
    /// `recorded`, or `unchanged` when the same person already approved it for that
    /// environment.
    pub outcome: String,
    pub kind: String,
    pub index: u64,
    pub digest: String,
    pub service: String,
    pub env: String,
    pub by: String,
}

/// `lineage approve`, `POST /api/v1/approvals`: records that `by` agrees the digest may run
/// in `env`. Only recorded builds can be approved: an approval is for a known artefact.
pub fn approve(
    store: &mut dyn Store,
    config: &Config,
    input: ApprovalInput,
    recorded_by: Option<&Identity>,
    now: Timestamp,
) -> Result<ApprovalReport, Error> {
    let env = config.environment(&input.env)?;
    let Some(digest) = input.image.digest.clone() else {
        return Err(Error::Invalid(
            format!("image reference `{}` is not pinned by digest", input.image),
            format!(
                "approve a digest: `lineage approve {}@sha256:<64 hex> --env {env}`",
                input.image.repository
            ),
        ));
    };
    let Some(build) = store.build(&digest)? else {
        return Err(Error::Invalid(
            format!("no build is recorded for `{digest}`"),
            "approve a digest your pipeline recorded (`lineage trace SERVICE` lists them)".into(),
        ));
    };
    if build.image != input.image.repository {
        return Err(Error::Invalid(
            format!(
                "`{digest}` was built as `{}`, not `{}`",
                build.image, input.image.repository
            ),
            format!("approve `{}@{digest}`", build.image),
        ));
    }
    if let Some(reason) = &input.reason {
        if reason.len() > 1000 || reason.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "the reason must be one line of up to 1000 characters".into(),
                "say what was checked, e.g. `--reason \"CHG-1042 reviewed\"`".into(),
            ));
        }
    }
    let report = |outcome: &str, index| ApprovalReport {
        schema: 1,
        outcome: outcome.to_string(),
        kind: "approval".to_string(),
        index,
        digest: digest.to_string(),
        service: build.service.to_string(),
        env: env.to_string(),
        by: input.by.to_string(),
    };
    let existing = store
        .facts("approval", Some(&digest.to_string()))?
        .into_iter()
        .find(|e| matches!(&e.record, Record::Approval(a) if a.env == env && a.by == input.by));
    if let Some(e) = existing {
        return Ok(report("unchanged", e.index));
    }
    let approval = Approval {
        digest: digest.clone(),
        env: env.clone(),
        by: input.by.clone(),
        reason: input.reason.clone(),
        at: now,
    };
    let index = store.append(&[Record::Approval(approval)], now, recorded_by)?[0];
    Ok(report("recorded", index))
}

// -------------------------------------------------------------------------------------------
// Exceptions
// -------------------------------------------------------------------------------------------

/// `exception add`: records a waiver, within `[exceptions]`: someone other than the
/// requester approves it, it lapses within `max_days`, and for rules with named approvers
/// only they may approve. A refused exception writes nothing.
///
/// `input.rule` is canonical already (a built-in code, or a code a loaded Rego policy emits);
/// `input.at` is set to `now`.
pub fn add_exception(
    store: &mut dyn Store,
    setup: &Setup,
    input: lineage_model::Exception,
    now: Timestamp,
) -> Result<(u64, lineage_model::Exception), Error> {
    let rules = &setup.policy.exceptions;
    let reason = required_reason(
        &input.reason,
        "say why the risk is accepted and where it is tracked, e.g. `--reason \"vendor base, SEC-142\"`",
    )?;
    if input.expires <= now {
        return Err(Error::Refused(
            format!(
                "`expires` is `{}`, not in the future (now is `{now}`)",
                input.expires
            ),
            "an exception must lapse later than now, e.g. `--expires 2026-12-31`".into(),
        ));
    }
    let latest = Timestamp::from_unix(now.unix() + rules.max_days * 86_400);
    if input.expires > latest {
        return Err(Error::Refused(
            format!(
                "`expires` is `{}`, more than {} days away (`[exceptions] max_days`)",
                input.expires, rules.max_days
            ),
            format!("pick a date no later than `{}`, and renew the exception then if it is still needed", latest.date()),
        ));
    }
    if input.approved_by == input.by {
        return Err(Error::Refused(
            format!("`{}` cannot approve their own exception", input.by),
            "an exception needs a second person: pass `--approved-by` with someone else's identity"
                .into(),
        ));
    }
    if let Some(allowed) = rules.approvers_for(&input.rule) {
        if !allowed.iter().any(|a| *a == input.approved_by.as_str()) {
            return Err(Error::Refused(
                format!(
                    "`{}` may not approve exceptions for {} (`[exceptions.approvers]`)",
                    input.approved_by, input.rule
                ),
                format!(
                    "ask one of: {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if input.service != "*" {
        let name = ServiceName::parse(&input.service)?;
        if store.service(&name)?.is_none() {
            return Err(Error::UnknownService(input.service));
        }
    }
    let record = lineage_model::Exception {
        reason,
        at: now,
        ..input
    };
    let index = store.append(&[Record::Exception(record.clone())], now, Some(&record.by))?[0];
    Ok((index, record))
}

/// The longest reason a waiver or a retirement keeps.
pub const MAX_REASON: usize = 1000;

/// A reason that must be given (`exception add`, `retire`): trimmed, one line of up to
/// [`MAX_REASON`] characters. `hint` says what a good reason looks like for the command.
pub fn required_reason(given: &str, hint: &str) -> Result<String, Error> {
    let reason = given.trim();
    if reason.is_empty() || reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(Error::Invalid(
            format!("the reason must be one line of up to {MAX_REASON} characters"),
            hint.into(),
        ));
    }
    Ok(reason.to_string())
}

/// The canonical rule an exception waives: a built-in rule's code (given as its code or its
/// name), or a code one of `policy_files` (`(path, text)` of the Rego policies) emits,
/// written as the policy writes it. Anything else is refused with the valid codes; a policy
/// that does not load is an error, since waiving a code from a broken file would hide the
/// breakage.
pub fn canonical_rule(given: &str, policy_files: &[(String, String)]) -> Result<String, Error> {
    let builtin = lineage_policy::validate_rule_code(given);
    let err = match builtin {
        Ok(rule) => return Ok(rule.code().to_string()),
        Err(err) => err,
    };
    if !policy_files.is_empty() {
        Policies::load(policy_files)?;
    }
    let mut codes: Vec<String> = policy_files
        .iter()
        .flat_map(|(_, text)| policy_codes(text))
        .collect();
    codes.sort();
    codes.dedup();
    if let Some(code) = codes.iter().find(|c| c.eq_ignore_ascii_case(given.trim())) {
        return Ok(code.clone());
    }
    let mut message = err.to_string();
    if !codes.is_empty() {
        message.push_str(&format!(
            "; codes of your Rego policies: {}",
            codes.join(", ")
        ));
    }
    Err(Error::Invalid(message, err.hint()))
}

/// The `"code": "…"` string literals of a Rego file: the codes its `deny`/`warn` entries can
/// carry. A textual scan is enough here, because it only widens what may be waived.
pub fn policy_codes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"code\"") {
        rest = &rest[i + 6..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let after = after.trim_start();
        let Some(after) = after.strip_prefix('"') else {
            continue;
        };
        if let Some(end) = after.find('"') {
            let code = &after[..end];
            if !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                out.push(code.to_string());
            }
        }
    }
    out
}

/// One row of `exception list`: a recorded exception, its ledger entry, and whether it
/// holds at `now` (by the gate's own rule, `lineage_policy::Exception::is_active`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExceptionRow {
    pub index: u64,
    pub active: bool,
    #[serde(flatten)]
    pub exception: lineage_model::Exception,
}

/// `exception list`: every recorded exception, in ledger order, active and expired.
pub fn exception_list(store: &dyn Store, now: Timestamp) -> Result<Vec<ExceptionRow>, Error> {
    Ok(store
        .facts("exception", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Exception(x) => Some(ExceptionRow {
                index: e.index,
                active: as_policy(&x).is_active(now),
                exception: x,
            }),
            _ => None,
        })
        .collect())
}

// -------------------------------------------------------------------------------------------
// The build gate
// -------------------------------------------------------------------------------------------

/// What the build gate looks up in the ledger: the service, and other services' builds for
/// the copied-metadata rules (B010, B011, B012). Without a ledger there is no context.
pub fn build_context(
    store: Option<&dyn Store>,
    facts: &BuildFacts,
    env: Option<&EnvName>,
    production: bool,
    dockerfile: Option<String>,
) -> Result<BuildContext, Error> {
    let mut cx = BuildContext {
        environment: env.map(ToString::to_string),
        production,
        dockerfile,
        ..BuildContext::default()
    };
    let Some(store) = store else {
        return Ok(cx);
    };
    let name = facts.service.as_deref().unwrap_or_default();
    if let Ok(n) = ServiceName::parse(name) {
        cx.service = store.service(&n)?;
    }
    // Each fact below is one indexed read, so the check costs the same in a fleet of one
    // service or of thousands.
    let repo = facts
        .source_repo
        .as_deref()
        .and_then(|r| SourceRepo::parse(r).ok());
    if let Some(repo) = &repo {
        cx.other_service_repos = store
            .services_with_repo(repo)?
            .into_iter()
            .filter(|s| s.as_str() != name)
            .map(|s| (s.to_string(), repo.to_string()))
            .collect();
    }
    let commit = facts
        .commit
        .as_deref()
        .and_then(|c| CommitId::parse(&c.to_ascii_lowercase()).ok());
    if let (Some(repo), Some(commit)) = (&repo, &commit) {
        cx.same_commit_services = store
            .services_built_from(repo, commit)?
            .into_iter()
            .filter(|s| s.as_str() != name)
            .map(|s| s.to_string())
            .collect();
    }
    let others = store.other_ci_jobs(name)?;
    cx.ci_job_shared_by_all = facts.ci_job.is_some()
        && others.is_some_and(|(low, high)| low == facts.ci_job && high == facts.ci_job);
    Ok(cx)
}

/// The facts `build check` judges, read leniently from a build as the user describes it: a
/// value that does not parse (an abbreviated commit, a base without a digest) reaches the gate
/// as typed and comes back as a coded finding. The rules of [`record::assemble`] (tag order,
/// base pairing, final stage, the Dockerfile's bases, the service, CI filling gaps) are the
/// same functions, so `build check` judges what `build record` would record. `Err` only for
/// what is not a fact but an ambiguous description: pull times that cannot be paired with the
/// bases, or `--image` and `--digest` naming two digests.
pub fn build_facts(
    input: &record::BuildInput,
    store: Option<&dyn Store>,
) -> Result<BuildFacts, Error> {
    use record::Gap;
    // A malformed digest (uppercase, say) is the gate's to report; the repository before
    // it still names the service.
    let parsed = input.image.as_deref().and_then(|i| {
        ImageRef::parse(i)
            .ok()
            .or_else(|| i.split_once('@').and_then(|(r, _)| ImageRef::parse(r).ok()))
    });
    let pinned = input.image_digest().and_then(|d| Digest::parse(d).ok());
    let flag = input.digest.as_deref().and_then(|d| Digest::parse(d).ok());
    record::one_digest(pinned.as_ref(), flag.as_ref())?;
    let digest = input
        .digest
        .clone()
        .or_else(|| input.image_digest().map(str::to_string));
    let image_tag = parsed
        .as_ref()
        .and_then(|p| p.tag.as_ref())
        .map(ToString::to_string);
    let tags = record::with_image_tag(input.tags.clone(), image_tag.as_ref());
    let mut bases: Vec<BaseFacts> = match input.stages() {
        record::Stages::Flags(refs) => refs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut base = BaseFacts::from_reference(b);
                // Normalise a name that parses (`python` → `docker.io/library/python`), so
                // flags and a stored record give policies the same input; a bad one stays.
                if let Some(repo) = base.name.as_deref().and_then(|n| Repository::parse(n).ok()) {
                    base.name = Some(repo.to_string());
                }
                base.final_stage = record::final_stage(i, refs.len());
                base
            })
            .collect(),
        record::Stages::Dockerfile(found) => found
            .iter()
            .map(|b| BaseFacts {
                name: Some(b.name.to_string()),
                tag: b.tag.as_ref().map(ToString::to_string),
                digest: b.digest.as_ref().map(ToString::to_string),
                pulled_at: None,
                final_stage: b.final_stage,
            })
            .collect(),
    };
    let times = record::pull_times(&input.base_pulled_at, bases.len())?;
    for (base, t) in bases.iter_mut().zip(times) {
        base.pulled_at = t.cloned();
    }
    let service = input.service.clone().or_else(|| {
        let repo = &parsed.as_ref()?.repository;
        let claimed = store.and_then(|st| st.service_for_image(repo).ok().flatten());
        Some(claimed.map_or_else(
            || record::implied_service(repo).to_string(),
            |n| n.to_string(),
        ))
    });
    Ok(BuildFacts {
        service,
        image: input.image.clone(),
        digest,
        tags,
        bases,
        source_repo: input.raw(Gap::SourceRepo),
        branch: input.raw(Gap::GitRef),
        commit: input.raw(Gap::Commit),
        ci_system: input.raw(Gap::System),
        ci_job: input.raw(Gap::Job),
        ci_run_id: input.raw(Gap::RunId),
        ci_url: input.raw(Gap::Url),
        builder: input.raw(Gap::Builder),
        dockerfile_path: input.dockerfile.as_ref().map(|d| d.path.clone()),
    })
}

/// The environment a build is judged for: production's severities when none is given,
/// because a build can be promoted anywhere.
pub fn build_class(setup: &Setup, env: Option<&EnvName>) -> bool {
    env.is_none_or(|e| setup.config.is_production(e))
}

/// The whole build gate on facts (`build check`).
pub fn check_build(
    store: Option<&dyn Store>,
    setup: &Setup,
    facts: &BuildFacts,
    env: Option<&EnvName>,
    dockerfile: Option<String>,
    now: Timestamp,
) -> Result<Report, Error> {
    let cx = build_context(store, facts, env, build_class(setup, env), dockerfile)?;
    let exceptions = match store {
        Some(st) => exceptions(st)?,
        None => Vec::new(),
    };
    let report = lineage_policy::check_build(&setup.evaluation(&exceptions, now), facts, &cx)?;
    Ok(setup.stamp(report))
}

/// How a build is recorded, besides the record itself.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The environment the build is for; production's severities when `None`.
    pub env: Option<EnvName>,
    /// The Dockerfile's text, for the `FROM` rules.
    pub dockerfile: Option<String>,
    /// Record a build that fails the production gate; the failure is recorded with it.
    pub allow_failures: bool,
    /// A DSSE envelope of the build's provenance, signed by the caller (a key never leaves
    /// the machine that holds it, so the server only stores what CI signed).
    pub provenance: Option<String>,
    /// A base the image's registry annotations named and the ledger does not know yet
    /// (`detect::FromRegistry::base_fact`), recorded as a `base` fact with the build.
    pub base_seen: Option<BaseSeen>,
}

/// What recording a build did besides the record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BuildRecorded {
    #[serde(flatten)]
    pub record: RecordReport,
    /// The ledger index of the stored provenance attestation, when one was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance_index: Option<u64>,
}

/// `build record`, `POST /api/v1/builds`: the build gate, then the build, its gate result,
/// its signed provenance and a base newly seen in its registry in one transaction. A failing
/// production build is refused unless `allow_failures` (and then nothing is written); an
/// identical build recorded again is a no-op (its gate result is recorded again only when the
/// verdict moved).
pub fn record_build(
    store: &mut dyn Store,
    setup: &Setup,
    build: BuildRecord,
    options: BuildOptions,
    recorded_by: Option<&Identity>,
    now: Timestamp,
) -> Result<Decision<BuildRecorded>, Error> {
    if store.service(&build.service)?.is_none() {
        return Err(Error::UnknownService(build.service.to_string()));
    }
    build.check_free_text()?;
    for (field, t) in [
        ("started_at", build.started_at),
        ("finished_at", build.finished_at),
    ] {
        if let Some(t) = t {
            check_event_time(field, t, now)?;
        }
    }
    for base in &build.bases {
        if let Some(t) = base.pulled_at {
            check_event_time("bases.pulled_at", t, now)?;
        }
    }
    let existing = store.build(&build.digest)?;
    if let Some(existing) = &existing {
        if *existing != build {
            return Err(Error::BuildConflict {
                digest: build.digest.to_string(),
                fields: record::diff(existing, &build),
            });
        }
    }
    let attestation = options
        .provenance
        .as_deref()
        .map(|envelope| provenance_attestation(&build.digest, envelope, now))
        .transpose()?;
    let production = build_class(setup, options.env.as_ref());
    let facts = BuildFacts::from(&build);
    let cx = build_context(
        Some(&*store),
        &facts,
        options.env.as_ref(),
        production,
        options.dockerfile,
    )?;
    let exceptions = exceptions(&*store)?;
    let gate = setup.stamp(lineage_policy::check_build(
        &setup.evaluation(&exceptions, now),
        &facts,
        &cx,
    )?);
    if !gate.passed && production && !options.allow_failures {
        return Ok(Decision::Refused { gate });
    }
    let check = CheckResult {
        digest: build.digest.clone(),
        gate: "build".into(),
        passed: gate.passed,
        failed_rules: failed_codes(&gate),
        allowed_failures: !gate.passed && options.allow_failures,
        by: recorded_by.cloned(),
        at: now,
    };
    let mut records = Vec::new();
    let new = existing.is_none();
    if new {
        records.push(Record::Build(build.clone()));
    }
    // Re-recording an identical build is a no-op; so is its check, unless the verdict moved.
    let same_as_last = latest_check(&*store, &build.digest)?.is_some_and(|c| {
        (c.passed, &c.failed_rules, c.allowed_failures)
            == (check.passed, &check.failed_rules, check.allowed_failures)
    });
    if new || !same_as_last {
        records.push(Record::Check(check));
    }
    // Recording an identical build again does not pile up signatures: a digest that
    // already has provenance keeps it.
    let with_provenance = match attestation {
        Some(att)
            if new
                || store
                    .facts("attestation", Some(&build.digest.to_string()))?
                    .is_empty() =>
        {
            records.push(Record::Attestation(att));
            true
        }
        _ => false,
    };
    let provenance_at = with_provenance.then(|| records.len() - 1);
    // Last, so that the build's own entries keep their places.
    if let Some(base) = options.base_seen {
        records.push(Record::Base(base));
    }
    let indexes = if records.is_empty() {
        Vec::new()
    } else {
        store.append(&records, now, recorded_by)?
    };
    let index = match (new, indexes.first()) {
        (true, Some(i)) => *i,
        _ => store.build_index(&build.digest)?.unwrap_or_default(),
    };
    Ok(Decision::Recorded {
        result: BuildRecorded {
            record: RecordReport {
                schema: 1,
                outcome: if new { "recorded" } else { "unchanged" },
                kind: "build",
                index,
                digest: build.digest.to_string(),
                service: build.service.to_string(),
            },
            provenance_index: provenance_at.and_then(|i| indexes.get(i).copied()),
        },
        gate,
    })
}

/// Checks that `envelope` is a DSSE envelope of an in-toto statement about `digest`, and
/// wraps it as the attestation to store. Its signature is judged later, by the trust policy,
/// at every deploy; here only its shape and subject are checked, so that a mislabelled
/// envelope is refused at the door.
fn provenance_attestation(
    digest: &Digest,
    envelope: &str,
    now: Timestamp,
) -> Result<Attestation, Error> {
    let bad = |why: String| {
        Error::Invalid(
            format!("the provenance envelope for `{digest}` {why}"),
            "send the DSSE envelope `lineage attest sign` or `build record --sign-key` makes"
                .into(),
        )
    };
    let parsed = lineage_attest::dsse::Envelope::from_json(envelope.as_bytes())
        .map_err(|e| bad(format!("is not a DSSE envelope: {e}")))?;
    let statement = lineage_attest::Statement::from_json(&parsed.payload)
        .map_err(|e| bad(format!("holds no in-toto statement: {e}")))?;
    if !statement.has_subject_digest(digest) {
        return Err(bad("names another subject".into()));
    }
    Ok(Attestation {
        digest: digest.clone(),
        predicate_type: statement.predicate_type,
        envelope: envelope.to_string(),
        at: now,
    })
}

/// The bases a Dockerfile builds on, one per `FROM` of an external image (with `ARG` defaults
/// and `build_args` resolved), the final stage's marked: what `build record --dockerfile`
/// records when no `--base` is given. References that do not parse are left to the gate.
pub fn bases_from_dockerfile(
    text: &str,
    build_args: &std::collections::BTreeMap<String, String>,
) -> Vec<lineage_model::BaseImage> {
    let df = lineage_policy::parse_dockerfile_with_args(text, build_args);
    df.bases
        .iter()
        .filter(|b| b.used_by == lineage_policy::dockerfile::ImageUse::From)
        .filter_map(|b| {
            Some(lineage_model::BaseImage {
                name: b.name.clone()?,
                tag: b.tag.clone(),
                digest: b.digest.clone(),
                pulled_at: None,
                final_stage: b.final_stage,
            })
        })
        .collect()
}

/// Codes of the findings that fail the gate.
pub fn failed_codes(report: &Report) -> Vec<String> {
    let mut codes: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_failure())
        .map(|d| d.code.clone())
        .collect();
    codes.dedup();
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_policy::{validate_rule_code, RuleId};

    #[test]
    fn finds_the_codes_a_policy_emits() {
        let text = "deny contains {\n\t\"code\": \"ACME001\",\n\t\"msg\": \"x\"} if { true }\nwarn contains {\"code\" : \"ACME-2\", \"msg\": \"y\"} if { true }\nx := {\"code\": sprintf(\"%s\", [a])}";
        assert_eq!(policy_codes(text), vec!["ACME001", "ACME-2"]);
    }

    #[test]
    fn rule_lookup_covers_every_builtin() {
        for r in RuleId::ALL {
            assert_eq!(validate_rule_code(r.name()).unwrap().code(), r.code());
        }
    }

    const POLICY: &str = "package lineage.acme\n\ndeny contains {\"code\": \"ACME001\", \"msg\": \"no\"} if { false }\n";

    #[test]
    fn the_canonical_rule_of_a_builtin_name_or_a_rego_code() {
        let files = vec![("acme.rego".to_string(), POLICY.to_string())];
        assert_eq!(canonical_rule("base-digest-missing", &[]).unwrap(), "B003");
        assert_eq!(canonical_rule(" b003 ", &files).unwrap(), "B003");
        assert_eq!(canonical_rule("acme001", &files).unwrap(), "ACME001");
        let err = canonical_rule("ACME002", &files).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("; codes of your Rego policies: ACME001"),
            "{err}"
        );
        assert!(canonical_rule("ACME001", &[]).is_err());
    }

    #[test]
    fn a_broken_policy_waives_nothing() {
        let files = vec![(
            "bad.rego".to_string(),
            "package x\n\"code\": \"X1\" {".to_string(),
        )];
        assert!(matches!(
            canonical_rule("X1", &files),
            Err(Error::Policy(_))
        ));
    }

    #[test]
    fn a_reason_is_one_line() {
        assert_eq!(required_reason("  why  ", "h").unwrap(), "why");
        for bad in ["", "   ", "two\nlines", &"x".repeat(MAX_REASON + 1)] {
            let err = required_reason(bad, "say why").unwrap_err();
            assert_eq!(err.hint().as_deref(), Some("say why"));
        }
    }
}
