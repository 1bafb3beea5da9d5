//! After the deploy: how it turned out (outcomes), each service's history, rollback to the
//! last known-good digest, tags added to a recorded build, and the release id (a digest with
//! its configuration). Promotion is rule D014 of the deploy gate (`gate::deploy_facts`).

use std::collections::BTreeMap;

use lineage_model::{
    ConfigFile, DeployOutcome, DeployRecord, Digest, EnvName, Identity, ImageRef, OutcomeStatus,
    Record, Retirement, ServiceName, Tag, TagAdded, Timestamp,
};
use lineage_store::Store;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::gate::{self, check_event_time, Setup};
use crate::record::DeployInput;
use crate::{Config, Error};

/// The release a deploy made: `rel-` and 16 hex of SHA-256 over the digest and each
/// configuration file's path and hash. The same digest with other configuration is another
/// release; with no configuration the release is the digest's alone.
pub fn release_id(digest: &Digest, config: &[ConfigFile]) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(digest.to_string().as_bytes());
    for c in config {
        hasher.update(b"\n");
        hasher.update(c.path.as_bytes());
        hasher.update(b" ");
        hasher.update(c.sha256.as_bytes());
    }
    format!("rel-{}", &hex::encode(hasher.finalize())[..16])
}

/// A retirement as reports show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetiredMark {
    pub reason: String,
    pub by: String,
    pub at: Timestamp,
}

impl RetiredMark {
    pub fn of(r: &Retirement) -> RetiredMark {
        RetiredMark {
            reason: r.reason.clone(),
            by: r.by.to_string(),
            at: r.at,
        }
    }
}

/// An outcome as reports show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutcomeMark {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub by: String,
    pub at: Timestamp,
}

impl OutcomeMark {
    pub fn of(o: &DeployOutcome) -> OutcomeMark {
        OutcomeMark {
            status: o.status.as_str().to_string(),
            detail: o.detail.clone(),
            by: o.by.to_string(),
            at: o.at,
        }
    }
}

/// The newest retirement of `digest`.
pub fn retirement(store: &dyn Store, digest: &Digest) -> Result<Option<Retirement>, Error> {
    Ok(retirements(store, std::slice::from_ref(digest))?.remove(digest))
}

/// Every recorded outcome of `service`, oldest first.
pub fn outcomes(store: &dyn Store, service: &ServiceName) -> Result<Vec<DeployOutcome>, Error> {
    Ok(outcomes_of(store, std::slice::from_ref(service))?
        .remove(service)
        .unwrap_or_default())
}

/// [`outcomes`] of many services in one store read.
pub fn outcomes_of(
    store: &dyn Store,
    services: &[ServiceName],
) -> Result<BTreeMap<ServiceName, Vec<DeployOutcome>>, Error> {
    let keys: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let mut out: BTreeMap<ServiceName, Vec<DeployOutcome>> = BTreeMap::new();
    for e in store.facts_of("outcome", &keys)? {
        if let Record::Outcome(o) = e.record {
            out.entry(o.service.clone()).or_default().push(o);
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|o| o.at);
    }
    Ok(out)
}

/// The newest retirement of each of `digests` that has one, in one store read.
pub fn retirements(
    store: &dyn Store,
    digests: &[Digest],
) -> Result<BTreeMap<Digest, Retirement>, Error> {
    let keys: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
    let mut out = BTreeMap::new();
    // Oldest first: a later retirement of the same digest replaces an earlier one.
    for e in store.facts_of("retire", &keys)? {
        if let Record::Retire(r) = e.record {
            out.insert(r.digest.clone(), r);
        }
    }
    Ok(out)
}

/// The newest outcome of `digest` in `env` among `list` (oldest first), not before `since`:
/// how the placement that began at `since` is doing. Every report and page asks this.
pub fn newest_outcome<'a>(
    list: &'a [DeployOutcome],
    env: &EnvName,
    digest: &Digest,
    since: Timestamp,
) -> Option<&'a DeployOutcome> {
    list.iter()
        .rev()
        .find(|o| o.env == *env && o.digest == *digest && o.at >= since)
}

/// A kind of risk the fleet shows: each finding is one of these, so a page can count, sort
/// and filter them, and say each in words (never colour alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// A production deploy nobody approved.
    Unapproved,
    /// A production deploy approved by the one who deployed it.
    SelfApproved,
    /// A running digest with no build record: where it came from is unknown.
    NoBuild,
    /// A running digest whose build failed the build gate.
    FailedGate,
    /// Provenance not signed.
    Unsigned,
    /// Provenance signed by a key the trust policy does not trust.
    Untrusted,
    /// A retired digest still running.
    Retired,
    /// The newest outcome of a deploy is `failed` or `degraded`.
    BadOutcome,
    /// What runs differs from what the ledger records.
    Drift,
    /// The final-stage base is behind its tag.
    StaleBase,
    /// Critical or high findings in a running digest.
    Vulnerable,
}

impl Risk {
    /// Every kind, in the order pages list them.
    pub const ALL: &'static [Risk] = &[
        Risk::Unapproved,
        Risk::SelfApproved,
        Risk::NoBuild,
        Risk::FailedGate,
        Risk::Unsigned,
        Risk::Untrusted,
        Risk::Retired,
        Risk::BadOutcome,
        Risk::Drift,
        Risk::StaleBase,
        Risk::Vulnerable,
    ];

    /// The name in URLs and JSON (`?risk=self_approved`).
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Unapproved => "unapproved",
            Risk::SelfApproved => "self_approved",
            Risk::NoBuild => "no_build",
            Risk::FailedGate => "failed_gate",
            Risk::Unsigned => "unsigned",
            Risk::Untrusted => "untrusted",
            Risk::Retired => "retired",
            Risk::BadOutcome => "bad_outcome",
            Risk::Drift => "drift",
            Risk::StaleBase => "stale_base",
            Risk::Vulnerable => "vulnerable",
        }
    }

    /// The kind in words, for a count's label.
    pub fn label(self) -> &'static str {
        match self {
            Risk::Unapproved => "without approval",
            Risk::SelfApproved => "self-approved",
            Risk::NoBuild => "no build record",
            Risk::FailedGate => "failed build gate",
            Risk::Unsigned => "unsigned provenance",
            Risk::Untrusted => "untrusted provenance",
            Risk::Retired => "retired digest running",
            Risk::BadOutcome => "deploy failed or degraded",
            Risk::Drift => "drift",
            Risk::StaleBase => "stale base",
            Risk::Vulnerable => "critical or high findings",
        }
    }

    pub fn parse(name: &str) -> Option<Risk> {
        Risk::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

/// One thing that needs attention, in words, with its kind and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub risk: Risk,
    /// The environment it is about, when it is about one placement.
    pub env: Option<String>,
    /// Whether it is about production.
    pub production: bool,
    /// For people: `production: self-approved`.
    pub text: String,
}

/// What needs attention about one placement: a deploy recorded as running, judged with the
/// gate's facts of its digest (`gate::digest_facts`, which the server keeps in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    pub findings: Vec<Finding>,
    /// The newest outcome since the deploy, when it is not `healthy`.
    pub outcome: Option<DeployOutcome>,
}

/// What is wrong with a deploy's approval, in production only (as the deploy gate's approval
/// rules apply by default): none at all, or the deployer's own.
pub fn approval_risk(
    config: &Config,
    env: &EnvName,
    by: &str,
    approved_by: Option<&str>,
) -> Option<Risk> {
    if !config.is_production(env) {
        return None;
    }
    match approved_by {
        None => Some(Risk::Unapproved),
        // The deploy gate's rule: the same identity in another case is the same person.
        Some(a) if Identity::same(a, by) => Some(Risk::SelfApproved),
        Some(_) => None,
    }
}

/// Judges a placement for the fleet view. Approval findings apply to production only, as the
/// deploy gate's do by default.
pub fn attention(config: &Config, deploy: &DeployRecord, facts: &gate::DigestFacts) -> Attention {
    let production = config.is_production(&deploy.env);
    let mut findings = Vec::new();
    let mut found = |risk: Risk, what: &str| {
        findings.push(Finding {
            risk,
            env: Some(deploy.env.to_string()),
            production,
            text: format!("{}: {what}", deploy.env),
        })
    };
    if facts.build.is_none() {
        found(Risk::NoBuild, "no build record");
    }
    if facts.check.as_ref().is_some_and(|c| !c.passed) {
        found(Risk::FailedGate, "build failed its gate");
    }
    if facts.retired.is_some() {
        found(Risk::Retired, "retired digest running");
    }
    match facts.signature_for(Some(&deploy.env)) {
        lineage_policy::SignatureStatus::Untrusted { .. } => {
            found(Risk::Untrusted, "provenance signed by an untrusted key")
        }
        lineage_policy::SignatureStatus::Unsigned => found(Risk::Unsigned, "provenance not signed"),
        _ => {}
    }
    match approval_risk(
        config,
        &deploy.env,
        deploy.by.as_str(),
        deploy.approved_by.as_ref().map(Identity::as_str),
    ) {
        Some(Risk::Unapproved) => found(Risk::Unapproved, "deployed without approval"),
        Some(risk) => found(risk, "self-approved"),
        None => {}
    }
    let outcome = newest_outcome(&facts.outcomes, &deploy.env, &deploy.digest, deploy.at)
        .filter(|o| o.status != OutcomeStatus::Healthy)
        .cloned();
    if let Some(o) = &outcome {
        found(Risk::BadOutcome, &format!("deploy {}", o.status.as_str()));
    }
    Attention { findings, outcome }
}

// -------------------------------------------------------------------------------------------
// Outcomes
// -------------------------------------------------------------------------------------------

/// `lineage deploy outcome`, `POST /api/v1/outcomes`.
#[derive(Debug, Clone)]
pub struct OutcomeInput {
    pub service: ServiceName,
    pub env: String,
    pub status: OutcomeStatus,
    /// The digest the outcome is about; default: the one running there.
    pub digest: Option<Digest>,
    pub detail: Option<String>,
    pub by: Identity,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutcomeReport {
    pub schema: u32,
    pub outcome: String,
    pub kind: String,
    pub index: u64,
    pub service: String,
    pub env: String,
    pub digest: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub by: String,
    pub at: Timestamp,
}

/// Records how a deploy turned out. `Ok(None)`: nothing is recorded as running for the
/// service there (and no digest was named), so there is nothing to judge; nothing written.
pub fn record_outcome(
    store: &mut dyn Store,
    config: &Config,
    input: OutcomeInput,
    recorded_by: Option<&Identity>,
    now: Timestamp,
) -> Result<Option<OutcomeReport>, Error> {
    let env = config.environment(&input.env)?;
    if store.service(&input.service)?.is_none() {
        return Err(Error::UnknownService(input.service.to_string()));
    }
    if let Some(d) = &input.detail {
        lineage_model::check_free_text("detail", d, 1000)?;
    }
    check_event_time("at", input.at, now)?;
    let digest = match input.digest {
        Some(d) => {
            let deployed = store
                .deploys_of_service(&input.service, Some(&env))?
                .iter()
                .any(|x| x.digest == d);
            if !deployed {
                return Err(Error::Invalid(
                    format!("`{d}` was never deployed to `{env}` as `{}`", input.service),
                    format!(
                        "an outcome follows a deploy: `lineage history {} --env {env}` lists what ran there",
                        input.service
                    ),
                ));
            }
            d
        }
        None => match store.running(Some(&env), Some(&input.service))?.pop() {
            Some(r) => r.deploy.digest,
            None => return Ok(None),
        },
    };
    let record = DeployOutcome {
        service: input.service,
        env,
        digest,
        status: input.status,
        detail: input.detail,
        by: input.by,
        at: input.at,
    };
    let index = store.append(
        &[Record::Outcome(record.clone())],
        now,
        Some(recorded_by.unwrap_or(&record.by)),
    )?[0];
    Ok(Some(OutcomeReport {
        schema: 1,
        outcome: "recorded".into(),
        kind: "outcome".into(),
        index,
        service: record.service.to_string(),
        env: record.env.to_string(),
        digest: record.digest.to_string(),
        status: record.status.as_str().into(),
        detail: record.detail,
        by: record.by.to_string(),
        at: record.at,
    }))
}

// -------------------------------------------------------------------------------------------
// History
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryReport {
    pub schema: u32,
    pub service: String,
    /// The `--env` filter, or null: present in every history, as in `running`.
    #[serde(default)]
    pub env: Option<String>,
    /// Newest first.
    pub rows: Vec<HistoryRow>,
}

/// One placement: a deploy and how long it lasted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub env: String,
    pub digest: String,
    pub image: String,
    pub release: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigFile>,
    pub at: Timestamp,
    pub by: String,
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    pub commit: Option<String>,
    /// `running`, `replaced` (a later deploy there) or `ended` (`deploy end`).
    pub state: String,
    /// When it was replaced or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// The newest outcome recorded while it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeMark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<RetiredMark>,
}

/// `lineage history SERVICE [--env ENV]`: every placement of the service, newest first.
pub fn history(
    store: &dyn Store,
    config: &Config,
    service: &ServiceName,
    env: Option<&EnvName>,
) -> Result<Option<HistoryReport>, Error> {
    let deploys = store.deploys_of_service(service, env)?;
    if deploys.is_empty() && store.service(service)?.is_none() {
        return Ok(None);
    }
    let mut rows = placements(store, service, &deploys)?;
    rows.sort_by(|a, b| {
        b.at.cmp(&a.at).then_with(|| {
            let rank = |e: &str| EnvName::parse(e).map_or(usize::MAX, |e| config.env_rank(&e));
            rank(&a.env).cmp(&rank(&b.env))
        })
    });
    Ok(Some(HistoryReport {
        schema: 1,
        service: service.to_string(),
        env: env.map(|e| e.to_string()),
        rows,
    }))
}

/// Turns deploys (newest first) into placements with their ends, outcomes and retirements.
fn placements(
    store: &dyn Store,
    service: &ServiceName,
    deploys: &[DeployRecord],
) -> Result<Vec<HistoryRow>, Error> {
    let ends: Vec<lineage_model::PlacementEnd> = store
        .facts("deploy_end", Some(service.as_str()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::DeployEnd(x) => Some(x),
            _ => None,
        })
        .collect();
    let outcomes = outcomes(store, service)?;
    let mut rows = Vec::with_capacity(deploys.len());
    for (i, d) in deploys.iter().enumerate() {
        // The next deploy to the same environment (deploys are newest first).
        let next = deploys[..i]
            .iter()
            .rev()
            .find(|n| n.env == d.env)
            .map(|n| n.at);
        let ended = ends
            .iter()
            .filter(|x| x.env == d.env && x.at >= d.at && next.is_none_or(|n| x.at < n))
            .map(|x| x.at)
            .min();
        let (state, until) = match (ended, next) {
            (Some(at), _) => ("ended", Some(at)),
            (None, Some(at)) => ("replaced", Some(at)),
            (None, None) => ("running", None),
        };
        let outcome = outcomes
            .iter()
            .rev()
            .find(|o| {
                o.env == d.env
                    && o.digest == d.digest
                    && o.at >= d.at
                    && until.is_none_or(|u| o.at <= u)
            })
            .map(OutcomeMark::of);
        rows.push(HistoryRow {
            env: d.env.to_string(),
            digest: d.digest.to_string(),
            image: format!("{}@{}", d.image, d.digest),
            release: release_id(&d.digest, &d.config),
            config: d.config.clone(),
            at: d.at,
            by: d.by.to_string(),
            approved_by: d.approved_by.as_ref().map(|a| a.to_string()),
            rollback: d.rollback,
            commit: store
                .build(&d.digest)?
                .and_then(|b| b.commit)
                .map(|c| c.to_string()),
            state: state.into(),
            until,
            outcome,
            retired: retirement(store, &d.digest)?.as_ref().map(RetiredMark::of),
        });
    }
    Ok(rows)
}

// -------------------------------------------------------------------------------------------
// Retire
// -------------------------------------------------------------------------------------------

/// What `retire` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetireReport {
    pub index: u64,
    /// The service of the digest's build, when a build is recorded.
    pub service: Option<ServiceName>,
    pub retirement: Retirement,
}

/// `lineage retire DIGEST --reason …`: withdraws a digest, so the deploy gate refuses it and
/// rollback skips it. The reason is one line ([`gate::required_reason`]); the ledger must hold
/// a build or a deploy of the digest, else nothing is written.
pub fn retire(
    store: &mut dyn Store,
    digest: &Digest,
    reason: &str,
    by: &Identity,
    now: Timestamp,
) -> Result<RetireReport, Error> {
    let reason = gate::required_reason(reason, RETIRE_REASON_HINT)?;
    let build = store.build(digest)?;
    if build.is_none() && store.deploys_of_digest(digest)?.is_empty() {
        return Err(Error::Invalid(
            format!("`{digest}` has no build or deploy in the ledger"),
            "check the digest: `lineage trace SERVICE` lists recorded digests".into(),
        ));
    }
    let retirement = Retirement {
        digest: digest.clone(),
        reason,
        by: by.clone(),
        at: now,
    };
    let index = store.record_facts(&[Record::Retire(retirement.clone())], now, Some(by))?[0];
    Ok(RetireReport {
        index,
        service: build.map(|b| b.service),
        retirement,
    })
}

/// What a good retirement reason looks like.
pub const RETIRE_REASON_HINT: &str = "say why, e.g. `--reason \"CVE-2026-1234 in openssl\"`";

// -------------------------------------------------------------------------------------------
// Rollback
// -------------------------------------------------------------------------------------------

/// `lineage rollback SERVICE --env ENV [--to DIGEST]`.
#[derive(Debug, Clone)]
pub struct RollbackInput {
    pub service: ServiceName,
    pub env: String,
    pub to: Option<Digest>,
    pub by: Identity,
    pub approved_by: Option<Identity>,
    pub ticket: Option<String>,
    pub at: Timestamp,
}

/// The rollback Lineage chose, and the lines a team runs to carry it out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RollbackPlan {
    pub schema: u32,
    pub service: String,
    pub env: String,
    /// What runs there now.
    pub from: Option<String>,
    /// The known-good digest, as `REPOSITORY@DIGEST`.
    pub to: String,
    pub digest: String,
    pub release: String,
    /// Why this digest: when it ran there, and its outcome.
    pub why: String,
    /// `kubectl set image` and `helm upgrade` lines, quoted for a POSIX shell.
    pub commands: Vec<String>,
}

/// Why a digest is not a known-good target, or `None` when it is: it ran in `env` before,
/// is not retired, passed its build gate, and its newest outcome there is not `failed`.
fn not_known_good(
    store: &dyn Store,
    outcomes: &[DeployOutcome],
    d: &DeployRecord,
) -> Result<Option<String>, Error> {
    if let Some(r) = retirement(store, &d.digest)? {
        return Ok(Some(format!("it is retired ({})", r.reason)));
    }
    match gate::latest_check(store, &d.digest)? {
        Some(c) if c.passed => {}
        Some(_) => return Ok(Some("its build failed the build gate".into())),
        None => return Ok(Some("its build has no recorded build-gate result".into())),
    }
    if let Some(o) = newest_outcome(outcomes, &d.env, &d.digest, d.at) {
        if o.status == OutcomeStatus::Failed {
            return Ok(Some(format!("it failed there at {}", o.at)));
        }
    }
    Ok(None)
}

/// Picks the rollback target: the newest digest that ran in `env` before what runs now and
/// is known-good, or the one `to` names (refused, with the reason, when it is not).
/// `Ok(None)`: nothing ran there before that qualifies.
pub fn plan_rollback(
    store: &dyn Store,
    config: &Config,
    input: &RollbackInput,
) -> Result<Option<(RollbackPlan, DeployRecord)>, Error> {
    let env = config.environment(&input.env)?;
    if store.service(&input.service)?.is_none() {
        return Err(Error::UnknownService(input.service.to_string()));
    }
    let running = store
        .running(Some(&env), Some(&input.service))?
        .pop()
        .map(|r| r.deploy.digest);
    let deploys = store.deploys_of_service(&input.service, Some(&env))?;
    let outcomes = outcomes(store, &input.service)?;
    let chosen = match &input.to {
        Some(to) => {
            let Some(d) = deploys.iter().find(|d| d.digest == *to) else {
                return Err(Error::Refused(
                    format!("`{to}` never ran in `{env}` as `{}`, so it is not a known-good rollback target", input.service),
                    format!("`lineage history {} --env {env}` lists what ran there; deploy another digest with `deploy record`", input.service),
                ));
            };
            if running.as_ref() == Some(to) {
                return Err(Error::Refused(
                    format!("`{to}` is what runs in `{env}` now"),
                    "name an earlier digest, or leave `--to` out to take the last known-good one"
                        .into(),
                ));
            }
            if let Some(why) = not_known_good(store, &outcomes, d)? {
                return Err(Error::Refused(
                    format!("`{to}` is not a known-good rollback target: {why}"),
                    "leave `--to` out to take the last known-good digest, or deploy it deliberately with `lineage deploy record --rollback`".to_string(),
                ));
            }
            d.clone()
        }
        None => {
            let mut found = None;
            for d in deploys
                .iter()
                .filter(|d| Some(&d.digest) != running.as_ref())
            {
                if not_known_good(store, &outcomes, d)?.is_none() {
                    found = Some(d.clone());
                    break;
                }
            }
            match found {
                Some(d) => d,
                None => return Ok(None),
            }
        }
    };
    let outcome = newest_outcome(&outcomes, &env, &chosen.digest, chosen.at)
        .map(|o| format!(", {} at {}", o.status.as_str(), o.at))
        .unwrap_or_default();
    let image = format!("{}@{}", chosen.image, chosen.digest);
    let quote = crate::placements::shell_quote;
    let name = input.service.as_str();
    let commands = vec![
        format!(
            "kubectl set image deployment/{} {}={}",
            quote(name),
            quote(name),
            quote(&image)
        ),
        format!(
            "helm upgrade {} CHART --reuse-values --set image.repository={} --set image.digest={}",
            quote(name),
            quote(&chosen.image.to_string()),
            quote(&chosen.digest.to_string())
        ),
    ];
    let plan = RollbackPlan {
        schema: 1,
        service: name.to_string(),
        env: env.to_string(),
        from: running.map(|d| d.to_string()),
        to: image,
        digest: chosen.digest.to_string(),
        release: release_id(&chosen.digest, &chosen.config),
        why: format!(
            "the newest known-good digest in `{env}`: deployed there {} by {}{outcome}; not retired; build gate passed",
            chosen.at, chosen.by
        ),
        commands,
    };
    Ok(Some((plan, chosen)))
}

/// The deploy a rollback records: the chosen digest with its configuration, as a rollback.
pub fn rollback_input(input: &RollbackInput, chosen: &DeployRecord) -> Result<DeployInput, Error> {
    Ok(DeployInput {
        image: ImageRef::parse(&format!("{}@{}", chosen.image, chosen.digest))?,
        env: input.env.clone(),
        by: input.by.clone(),
        approved_by: input.approved_by.clone(),
        ticket: input.ticket.clone(),
        at: input.at,
        rollback: true,
        config: chosen.config.clone(),
    })
}

/// What `rollback` concluded.
#[derive(Debug)]
pub enum RollbackOutcome {
    /// Nothing ran there before that is known-good; nothing was checked or written.
    NoTarget,
    /// `--dry-run`: the plan and what the deploy gate would say; nothing was written.
    DryRun {
        plan: RollbackPlan,
        gate: lineage_policy::Report,
    },
    /// The plan and the deploy gate's decision: recorded, or refused with nothing written.
    Decided {
        plan: RollbackPlan,
        decision: gate::Decision<crate::record::RecordReport>,
    },
}

/// `lineage rollback SERVICE --env ENV [--to DIGEST] [--dry-run]`: picks the target
/// ([`plan_rollback`]), then either asks the deploy gate what it would say (`dry_run`: the
/// store is only read) or records the rollback through the gate ([`record_rollback`]).
pub fn rollback(
    store: &mut dyn Store,
    setup: &Setup,
    input: &RollbackInput,
    dry_run: bool,
    now: Timestamp,
) -> Result<RollbackOutcome, Error> {
    let Some((plan, chosen)) = plan_rollback(store, &setup.config, input)? else {
        return Ok(RollbackOutcome::NoTarget);
    };
    if dry_run {
        // The gate the real rollback runs (`gate_deploy` only reads), so a dry run that passes
        // is a rollback that records.
        let gate = match gate::gate_deploy(store, setup, rollback_input(input, &chosen)?, now)? {
            gate::Decision::Recorded { gate, .. } | gate::Decision::Refused { gate } => gate,
        };
        return Ok(RollbackOutcome::DryRun { plan, gate });
    }
    let decision = record_rollback(store, setup, input, &chosen, now)?;
    Ok(RollbackOutcome::Decided { plan, decision })
}

/// Runs the deploy gate on a rollback and records it when the gate lets it through.
pub fn record_rollback(
    store: &mut dyn Store,
    setup: &Setup,
    input: &RollbackInput,
    chosen: &DeployRecord,
    now: Timestamp,
) -> Result<gate::Decision<crate::record::RecordReport>, Error> {
    gate::record_deploy(store, setup, rollback_input(input, chosen)?, None, now)
}

// -------------------------------------------------------------------------------------------
// Tags
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TagReport {
    pub schema: u32,
    /// `recorded`, or `unchanged` when every tag already pointed at the digest.
    pub outcome: String,
    pub kind: String,
    pub index: Option<u64>,
    pub image: String,
    pub digest: String,
    pub tags: Vec<String>,
}

/// `lineage tag IMAGE@DIGEST TAG…`: tags a recorded build, as a record. A tag that already
/// points at this digest is left out; the others move here (a tag names one digest: the
/// newest record that gave it).
pub fn add_tags(
    store: &mut dyn Store,
    image: &ImageRef,
    tags: Vec<Tag>,
    by: Identity,
    now: Timestamp,
) -> Result<TagReport, Error> {
    let Some(digest) = image.digest.clone() else {
        return Err(Error::Invalid(
            format!("image `{image}` is not pinned by digest"),
            format!(
                "tag a recorded build by digest: `lineage tag {}@sha256:<64 hex> TAG`",
                image.repository
            ),
        ));
    };
    let Some(build) = store.build(&digest)? else {
        return Err(Error::Invalid(
            format!("`{digest}` has no recorded build, so it cannot be tagged"),
            "record the build first (`lineage build record`)".into(),
        ));
    };
    if build.image != image.repository {
        return Err(Error::Invalid(
            format!(
                "`{digest}` was built as `{}`, not `{}`",
                build.image, image.repository
            ),
            format!(
                "tag it under its own repository: `lineage tag {}@{digest} …`",
                build.image
            ),
        ));
    }
    let mut new = Vec::new();
    for tag in tags {
        let current = resolve_tag(store, &build.image, &tag)?;
        if current.as_ref() != Some(&digest) && !new.contains(&tag) {
            new.push(tag);
        }
    }
    if new.is_empty() {
        return Ok(TagReport {
            schema: 1,
            outcome: "unchanged".into(),
            kind: "tag".into(),
            index: None,
            image: build.image.to_string(),
            digest: digest.to_string(),
            tags: Vec::new(),
        });
    }
    let record = TagAdded {
        image: build.image.clone(),
        digest: digest.clone(),
        tags: new.clone(),
        by: by.clone(),
        at: now,
    };
    let index = store.append(&[Record::Tag(record)], now, Some(&by))?[0];
    Ok(TagReport {
        schema: 1,
        outcome: "recorded".into(),
        kind: "tag".into(),
        index: Some(index),
        image: build.image.to_string(),
        digest: digest.to_string(),
        tags: new.iter().map(Tag::to_string).collect(),
    })
}

/// The digest `image:tag` names now: the newer of the newest build recorded with the tag and
/// the newest `lineage tag` record that gave it.
pub fn resolve_tag(
    store: &dyn Store,
    image: &lineage_model::Repository,
    tag: &Tag,
) -> Result<Option<Digest>, Error> {
    let built = match store.build_by_tag(image, tag)? {
        Some(b) => store.build_index(&b.digest)?.map(|i| (i, b.digest)),
        None => None,
    };
    let tagged = store
        .facts("tag", None)?
        .into_iter()
        .rev()
        .find_map(|e| match e.record {
            Record::Tag(t) if t.image == *image && t.tags.contains(tag) => {
                Some((e.index, t.digest))
            }
            _ => None,
        });
    Ok(match (built, tagged) {
        (Some(b), Some(t)) => Some(if t.0 > b.0 { t.1 } else { b.1 }),
        (b, t) => b.or(t).map(|x| x.1),
    })
}

/// Tags given to `digest` after its build was recorded, oldest first.
pub fn tags_added(store: &dyn Store, digest: &Digest) -> Result<Vec<TagAdded>, Error> {
    Ok(store
        .facts("tag", Some(&digest.to_string()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Tag(t) => Some(t),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_approval_is_judged_as_the_deploy_gate_judges_it() {
        let config = Config::default();
        let production = EnvName::parse("production").unwrap();
        let risk = |by, approved| approval_risk(&config, &production, by, approved);
        // The gate treats these as one person; the fleet must too.
        assert_eq!(
            risk("Maya@acme.dev", Some("maya@acme.dev")),
            Some(Risk::SelfApproved)
        );
        assert_eq!(risk("jonas@acme.dev", Some("maya@acme.dev")), None);
        assert_eq!(risk("jonas@acme.dev", None), Some(Risk::Unapproved));
        let dev = EnvName::parse("dev").unwrap();
        assert_eq!(approval_risk(&config, &dev, "a@b.c", None), None);
    }

    #[test]
    fn a_release_is_the_digest_with_its_configuration() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let none = release_id(&d, &[]);
        let one = vec![ConfigFile {
            path: "k8s/api.yaml".into(),
            sha256: "b".repeat(64),
        }];
        let other = vec![ConfigFile {
            path: "k8s/api.yaml".into(),
            sha256: "c".repeat(64),
        }];
        assert!(none.starts_with("rel-") && none.len() == 20, "{none}");
        assert_ne!(none, release_id(&d, &one));
        assert_ne!(release_id(&d, &one), release_id(&d, &other));
        assert_eq!(release_id(&d, &one), release_id(&d, &one.clone()));
    }
}
