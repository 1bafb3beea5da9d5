//! Drift: where what runs differs from what the ledger records, per service and environment,
//! and the explicit reconciliation that turns observations into `deploy end` / `deploy
//! record` entries.
//!
//! Five kinds, each with the command that resolves it:
//! - `recorded-not-observed`: a placement whose environment a complete source reports on, but
//!   whose service runs nothing there now (a stale placement; `deploy end`);
//! - `observed-not-recorded`: a digest of a service runs where no deploy of it is recorded;
//! - `older-than-recorded`: it runs, and was built before the recorded digest (a manual
//!   rollback);
//! - `no-build-record`: a digest runs that no build record describes;
//! - `retired`: a retired digest runs.
//!
//! A digest is a service's by its image repository (the service that lists it), else by its
//! build record. Images of repositories no service owns that `[admission] allow` lets run are
//! third-party and not drift.

use std::collections::{BTreeMap, BTreeSet};

use lineage_model::{
    BuildRecord, Digest, EnvName, Identity, ImageRef, Record, ServiceName, Timestamp,
};
use lineage_policy::Report;
use lineage_store::{ObservedRow, PlacementRow, Store};
use serde::{Deserialize, Serialize};

use crate::admission::AllowPattern;
use crate::gate::{self, Decision, Setup};
use crate::observe::{ObservedState, Truth};
use crate::placements::{end_command, shell_quote};
use crate::{record, Config, Error};

/// The kinds of drift, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    RecordedNotObserved,
    OlderThanRecorded,
    ObservedNotRecorded,
    NoBuildRecord,
    Retired,
}

impl DriftKind {
    pub const ALL: [DriftKind; 5] = [
        DriftKind::RecordedNotObserved,
        DriftKind::OlderThanRecorded,
        DriftKind::ObservedNotRecorded,
        DriftKind::NoBuildRecord,
        DriftKind::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::RecordedNotObserved => "recorded-not-observed",
            DriftKind::OlderThanRecorded => "older-than-recorded",
            DriftKind::ObservedNotRecorded => "observed-not-recorded",
            DriftKind::NoBuildRecord => "no-build-record",
            DriftKind::Retired => "retired",
        }
    }

    /// Parses `--fail-on`: kinds separated by commas, or `all`.
    pub fn parse_list(input: &str) -> Result<Vec<DriftKind>, Error> {
        let mut out = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                return Ok(DriftKind::ALL.to_vec());
            }
            match DriftKind::ALL.iter().find(|k| k.as_str() == part) {
                Some(k) => out.push(*k),
                None => {
                    let names: Vec<&str> = DriftKind::ALL.iter().map(|k| k.as_str()).collect();
                    let close = crate::closest(part, &names);
                    return Err(Error::Invalid(
                        format!("drift kind `{part}` is not one Lineage knows"),
                        match close {
                            Some(c) => {
                                format!("did you mean `{c}`? kinds: {}, or `all`", names.join(", "))
                            }
                            None => format!("kinds: {}, or `all`", names.join(", ")),
                        },
                    ));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The placement a drift item is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recorded {
    pub digest: String,
    pub since: Timestamp,
    /// The ledger index of the deploy.
    pub index: u64,
}

/// One difference between the ledger and what runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DriftItem {
    pub kind: String,
    /// `null` for an image no service owns and no build record names.
    pub service: Option<String>,
    pub env: String,
    /// The image repository observed, or the one the placement was recorded with.
    pub image: Option<String>,
    /// The observed digest; for `recorded-not-observed`, the recorded one.
    pub digest: String,
    /// What the ledger records as running for the service there.
    pub recorded: Option<Recorded>,
    /// What runtime sources say about `digest` there.
    pub observed: ObservedState,
    /// Workloads it runs as (`Deployment/api`), when the source says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
    pub message: String,
    /// The command that resolves it, shell-quoted.
    pub fix: String,
}

/// A runtime source, as a drift report names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    pub source: String,
    /// When its newest batch was taken, and its ledger entry.
    pub at: Timestamp,
    pub index: u64,
    pub complete: bool,
    pub envs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DriftReport {
    pub schema: u32,
    pub generated_at: Timestamp,
    pub env: Option<String>,
    /// Where the observations came from: every answer says what it was compared with.
    pub sources: Vec<SourceInfo>,
    /// Environments with placements that no source reports on: not compared, not clean.
    pub unwatched: Vec<String>,
    pub items: Vec<DriftItem>,
    /// Items per kind, every kind listed.
    pub counts: BTreeMap<String, usize>,
    /// Third-party images `[admission] allow` lets run, left out.
    pub third_party: usize,
    pub fail_on: Vec<String>,
    /// True when an item's kind is in `fail_on` (the CLI exits 1).
    pub failed: bool,
}

/// What `drift` compares with and fails on.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    pub env: Option<EnvName>,
    pub fail_on: Vec<DriftKind>,
    /// `[admission] allow`: third-party images that are not drift.
    pub allow: Vec<AllowPattern>,
}

/// A digest's service: the one listing its repository, else the one its build names.
fn service_of(row: &ObservedRow) -> Option<&ServiceName> {
    row.owner.as_ref().or(row.built_for.as_ref())
}

/// When a build happened, for "older than".
fn built_at(b: &BuildRecord) -> Option<Timestamp> {
    b.finished_at.or(b.started_at)
}

/// `lineage drift`: compares placements with what runtime sources observe.
pub fn drift(
    store: &dyn Store,
    config: &Config,
    options: &DriftOptions,
    now: Timestamp,
) -> Result<DriftReport, Error> {
    let truth = Truth::load(store, options.env.as_ref(), None, Some(now))?.unwrap_or_default();
    let placements: Vec<PlacementRow> = store.placements(options.env.as_ref())?;
    let retired: BTreeSet<String> = store
        .facts("retire", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Retire(r) => Some(r.digest.to_string()),
            _ => None,
        })
        .collect();
    let mut builds: BTreeMap<Digest, Option<BuildRecord>> = BTreeMap::new();
    let mut build = |d: &Digest| -> Result<Option<BuildRecord>, Error> {
        if let Some(b) = builds.get(d) {
            return Ok(b.clone());
        }
        let b = store.build(d)?;
        builds.insert(d.clone(), b.clone());
        Ok(b)
    };
    let mut by_pair: BTreeMap<(EnvName, ServiceName), &PlacementRow> = BTreeMap::new();
    for p in &placements {
        by_pair.insert((p.env.clone(), p.service.clone()), p);
    }
    let mut items = Vec::new();
    let mut third_party = 0;
    let mut envs: BTreeSet<EnvName> = truth.envs();
    envs.extend(placements.iter().map(|p| p.env.clone()));
    if let Some(e) = &options.env {
        envs.retain(|x| x == e);
    }
    let mut unwatched = BTreeSet::new();
    for env in &envs {
        // What runs now in `env`, per service (None: unowned), digest → rows.
        let mut running: BTreeMap<Option<ServiceName>, BTreeMap<&Digest, Vec<&ObservedRow>>> =
            BTreeMap::new();
        for (digest, rows) in truth.digests_in(env) {
            for row in rows.iter().filter(|r| truth.runs_now(r)) {
                running
                    .entry(service_of(row).cloned())
                    .or_default()
                    .entry(digest)
                    .or_default()
                    .push(row);
            }
        }
        // Placements: recorded, but is the service seen running at all?
        for p in placements.iter().filter(|p| p.env == *env) {
            if !truth.watches(env) {
                unwatched.insert(env.to_string());
                continue;
            }
            if !truth.covers(env) || running.contains_key(&Some(p.service.clone())) {
                continue;
            }
            let state = truth.state(env, &p.digest);
            let since = match state.last_seen {
                Some(t) => format!("not observed since {t}"),
                None => "never observed".into(),
            };
            let sources = covering_sources(&truth, env);
            items.push(DriftItem {
                kind: DriftKind::RecordedNotObserved.as_str().into(),
                service: Some(p.service.to_string()),
                env: env.to_string(),
                image: None,
                digest: p.digest.to_string(),
                recorded: Some(Recorded {
                    digest: p.digest.to_string(),
                    since: p.since,
                    index: p.index,
                }),
                message: format!(
                    "`{}` is recorded as running `{}` in `{env}` since {}, but {} reports nothing of it ({since})",
                    p.service,
                    p.digest,
                    p.since,
                    sources.join(", ")
                ),
                fix: end_command(
                    p.service.as_str(),
                    env.as_str(),
                    &format!("{since} by {}", sources.join(", ")),
                ),
                observed: state,
                workloads: Vec::new(),
            });
        }
        // What runs: is each digest the recorded one, and is it known and allowed?
        for (service, digests) in &running {
            let placement = service
                .as_ref()
                .and_then(|s| by_pair.get(&(env.clone(), s.clone())).copied());
            for (digest, rows) in digests {
                let image = rows[0].image.clone();
                let mut workloads: Vec<String> =
                    rows.iter().filter_map(|r| r.workload.clone()).collect();
                workloads.sort();
                workloads.dedup();
                let state = truth.state(env, digest);
                let pinned = format!("{image}@{digest}");
                let recorded = placement.map(|p| Recorded {
                    digest: p.digest.to_string(),
                    since: p.since,
                    index: p.index,
                });
                let item = |kind: DriftKind, message: String, fix: String| DriftItem {
                    kind: kind.as_str().into(),
                    service: service.as_ref().map(ToString::to_string),
                    env: env.to_string(),
                    image: Some(image.to_string()),
                    digest: digest.to_string(),
                    recorded: recorded.clone(),
                    observed: state.clone(),
                    workloads: workloads.clone(),
                    message,
                    fix,
                };
                let this_build = build(digest)?;
                if service.is_none() && this_build.is_none() {
                    let parsed = ImageRef::parse(&pinned).ok();
                    if parsed.is_some_and(|r| options.allow.iter().any(|a| a.matches(&r))) {
                        third_party += 1;
                        continue;
                    }
                }
                if this_build.is_none() {
                    items.push(item(
                        DriftKind::NoBuildRecord,
                        format!(
                            "`{pinned}` runs in `{env}` but no build record describes it, so its source and base are unknown"
                        ),
                        match service {
                            Some(_) => format!(
                                "lineage build record --image {} …  # or find who deployed it: `lineage trace {}`",
                                shell_quote(&pinned),
                                shell_quote(&pinned)
                            ),
                            None => format!(
                                "lineage service add NAME --owner EMAIL --image {}  # or allow it: `[admission] allow = [\"{image}@*\"]`",
                                shell_quote(&image.to_string())
                            ),
                        },
                    ));
                }
                if retired.contains(&digest.to_string()) {
                    items.push(item(
                        DriftKind::Retired,
                        format!("`{pinned}` runs in `{env}` but is retired"),
                        format!(
                            "deploy a newer build; `lineage trace {}` lists recent digests",
                            shell_quote(
                                &service
                                    .as_ref()
                                    .map_or(image.to_string(), |s| s.to_string())
                            )
                        ),
                    ));
                }
                let Some(service) = service else {
                    continue;
                };
                let record_cmd = |rollback: bool| {
                    format!(
                        "lineage deploy record --image {} --env {} --by EMAIL{}",
                        shell_quote(&pinned),
                        shell_quote(env.as_str()),
                        if rollback { " --rollback" } else { "" }
                    )
                };
                match placement {
                    Some(p) if p.digest == **digest => {}
                    Some(p) => {
                        let older = match (this_build.as_ref(), build(&p.digest)?) {
                            (Some(mine), Some(theirs)) => {
                                matches!((built_at(mine), built_at(&theirs)), (Some(a), Some(b)) if a < b)
                            }
                            _ => false,
                        };
                        if older {
                            items.push(item(
                                DriftKind::OlderThanRecorded,
                                format!(
                                    "`{service}` runs `{digest}` in `{env}`, built before the recorded `{}` (a rollback nobody recorded)",
                                    p.digest
                                ),
                                record_cmd(true),
                            ));
                        } else {
                            items.push(item(
                                DriftKind::ObservedNotRecorded,
                                format!(
                                    "`{service}` runs `{digest}` in `{env}`, but `{}` is recorded there",
                                    p.digest
                                ),
                                record_cmd(false),
                            ));
                        }
                    }
                    None => items.push(item(
                        DriftKind::ObservedNotRecorded,
                        format!(
                            "`{service}` runs `{digest}` in `{env}`, where no deploy of it is recorded"
                        ),
                        record_cmd(false),
                    )),
                }
            }
        }
    }
    let rank = |env: &str| {
        EnvName::parse(env)
            .map(|e| config.env_rank(&e))
            .unwrap_or(usize::MAX)
    };
    let order = |kind: &str| DriftKind::ALL.iter().position(|k| k.as_str() == kind);
    items.sort_by(|a, b| {
        rank(&a.env)
            .cmp(&rank(&b.env))
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| order(&a.kind).cmp(&order(&b.kind)))
            .then_with(|| a.digest.cmp(&b.digest))
    });
    let mut counts: BTreeMap<String, usize> = DriftKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    for i in &items {
        *counts.entry(i.kind.clone()).or_default() += 1;
    }
    let failed = options
        .fail_on
        .iter()
        .any(|k| counts.get(k.as_str()).is_some_and(|n| *n > 0));
    Ok(DriftReport {
        schema: 1,
        generated_at: now,
        env: options.env.as_ref().map(ToString::to_string),
        sources: truth
            .sources
            .iter()
            .map(|s| SourceInfo {
                source: s.source.clone(),
                at: s.at,
                index: s.index,
                complete: s.complete,
                envs: s.envs.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        unwatched: unwatched.into_iter().collect(),
        items,
        counts,
        third_party,
        fail_on: options.fail_on.iter().map(|k| k.as_str().into()).collect(),
        failed,
    })
}

/// The complete sources whose newest batch speaks for `env`.
fn covering_sources(truth: &Truth, env: &EnvName) -> Vec<String> {
    truth
        .sources
        .iter()
        .filter(|s| s.complete && s.envs.contains(env))
        .map(|s| format!("`{}`", s.source))
        .collect()
}

// -------------------------------------------------------------------------------------------
// Reconciliation
// -------------------------------------------------------------------------------------------

/// One entry reconciliation proposes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proposal {
    /// `deploy_end` or `deploy`.
    pub kind: String,
    /// The drift kind it resolves.
    pub resolves: String,
    pub service: String,
    pub env: String,
    pub digest: String,
    /// The command that writes the same entry by hand.
    pub command: String,
    /// `proposed` (dry run), `written`, or `refused` (by the deploy gate).
    pub status: String,
    /// The deploy gate's failing codes, when refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileReport {
    pub schema: u32,
    /// False for a dry run: nothing was written.
    pub applied: bool,
    pub proposals: Vec<Proposal>,
    pub written: usize,
    pub refused: usize,
    /// Drift items reconciliation leaves to people (no build record, retired).
    pub left: usize,
    /// Ledger indexes of what was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<u64>,
    /// The gate reports of refused deploys, in proposal order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Report>,
}

/// Who reconciles, and whether to write.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub by: Identity,
    /// The approver of the deploys it records (`--approved-by`), for `[gates] approval`.
    pub approved_by: Option<Identity>,
    pub apply: bool,
}

/// `lineage drift --reconcile [--apply]`: proposes a `deploy end` for each stale placement
/// and a `deploy record` for each digest that runs unrecorded (an unrecorded rollback as a
/// rollback). Without `apply` nothing is written. With it, every end and every deploy the
/// deploy gate passes is written in one transaction; refused deploys are reported with the
/// gate's codes and written nowhere.
pub fn reconcile(
    store: &mut dyn Store,
    setup: &Setup,
    report: &DriftReport,
    options: &ReconcileOptions,
    now: Timestamp,
) -> Result<ReconcileReport, Error> {
    let mut proposals = Vec::new();
    let mut records = Vec::new();
    let mut gates = Vec::new();
    let mut left = 0;
    for item in &report.items {
        let kind = DriftKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == item.kind);
        let Some(service) = &item.service else {
            left += 1;
            continue;
        };
        match kind {
            Some(DriftKind::RecordedNotObserved) => {
                let service = ServiceName::parse(service)?;
                let env = EnvName::parse(&item.env)?;
                let reason = match item.observed.last_seen {
                    Some(t) => format!("not observed since {t}"),
                    None => "never observed".to_string(),
                };
                let (ends, _) = crate::placements::ends_of(
                    &*store,
                    &service,
                    None,
                    Some(format!("reconciled: {reason}")),
                    &options.by,
                    now,
                )?;
                records.extend(
                    ends.into_iter()
                        .filter(|r| matches!(r, Record::DeployEnd(e) if e.env == env)),
                );
                proposals.push(Proposal {
                    kind: "deploy_end".into(),
                    resolves: item.kind.clone(),
                    service: service.to_string(),
                    env: item.env.clone(),
                    digest: item.digest.clone(),
                    command: item.fix.clone(),
                    status: if options.apply { "written" } else { "proposed" }.into(),
                    refused_by: Vec::new(),
                });
            }
            Some(k @ (DriftKind::ObservedNotRecorded | DriftKind::OlderThanRecorded)) => {
                let image = ImageRef::parse(&format!(
                    "{}@{}",
                    item.image.as_deref().unwrap_or_default(),
                    item.digest
                ))?;
                let input = record::DeployInput {
                    image,
                    env: item.env.clone(),
                    by: options.by.clone(),
                    approved_by: options.approved_by.clone(),
                    ticket: None,
                    at: now,
                    rollback: k == DriftKind::OlderThanRecorded,
                    config: Vec::new(),
                };
                let mut proposal = Proposal {
                    kind: "deploy".into(),
                    resolves: item.kind.clone(),
                    service: service.clone(),
                    env: item.env.clone(),
                    digest: item.digest.clone(),
                    command: item.fix.replace(
                        "--by EMAIL",
                        &format!("--by {}", shell_quote(options.by.as_str())),
                    ),
                    status: "proposed".into(),
                    refused_by: Vec::new(),
                };
                match gate::gate_deploy(&*store, setup, input, now)? {
                    Decision::Recorded { result, .. } => {
                        if options.apply {
                            proposal.status = "written".into();
                            records.push(Record::Deploy(result));
                        }
                    }
                    Decision::Refused { gate } => {
                        proposal.status = "refused".into();
                        proposal.refused_by = gate::failed_codes(&gate);
                        gates.push(gate);
                    }
                }
                proposals.push(proposal);
            }
            _ => left += 1,
        }
    }
    let indexes = if options.apply && !records.is_empty() {
        store.append(&records, now, Some(&options.by))?
    } else {
        Vec::new()
    };
    let refused = proposals.iter().filter(|p| p.status == "refused").count();
    let written = proposals.iter().filter(|p| p.status == "written").count();
    Ok(ReconcileReport {
        schema: 1,
        applied: options.apply,
        proposals,
        written,
        refused,
        left,
        indexes,
        gates,
    })
}
