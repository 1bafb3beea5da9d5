//! The fleet at a glance, risk first: every service with what runs where, what needs
//! attention (in words, one [`Risk`] kind each), how far its base is behind and what its
//! scans found; the services with production risks first; a count of each kind of risk.
//!
//! The dashboard's fleet page renders this report; the judgement of a single placement is
//! [`crate::lifecycle::attention`], the base's [`crate::freshness`], drift's [`crate::drift`]
//! and the findings' [`crate::vulns::vulns`], so no front end decides any of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use lineage_model::{DeployRecord, Digest, EnvName, Service, ServiceName, Timestamp};
use lineage_policy::SignatureStatus;
use lineage_store::Store;
use serde::Serialize;

use crate::drift::{DriftOptions, DriftReport};
use crate::freshness::Freshness;
use crate::gate::DigestFacts;
use crate::lifecycle::{self, Finding, Risk};
use crate::observe::{ObservedState, Truth};
use crate::vulns;
use crate::{Config, Error};

/// Which services the page lists; the counts are always of the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetFilter {
    /// Only services with a risk of this kind.
    pub risk: Option<Risk>,
    /// Only services running in this environment.
    pub env: Option<EnvName>,
    /// Only services whose owner or backup contains this text (case-insensitive).
    pub owner: Option<String>,
    /// Only services whose name contains this text (case-insensitive).
    pub service: Option<String>,
}

impl FleetFilter {
    pub fn is_empty(&self) -> bool {
        *self == FleetFilter::default()
    }
}

/// One environment's column of a service: what runs there and what is known about it.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub deploy: DeployRecord,
    pub retired: bool,
    /// The newest outcome since the deploy, when it is not `healthy`.
    pub outcome: Option<lineage_model::DeployOutcome>,
    pub signature: SignatureStatus,
    /// What runtime sources say; `None` when no source ever reported.
    pub observed: Option<ObservedState>,
    pub production: bool,
}

/// What the scans of a service's running digests found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Scans {
    /// Nothing runs.
    NothingRuns,
    /// Critical and high findings in running digests.
    Findings { critical: usize, high: usize },
    /// Every running production digest was scanned recently and none has a critical or high
    /// finding.
    Clean,
    /// A running production digest has no recent scan: unknown, not clean.
    Unknown { reason: String },
}

/// One service's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub service: Service,
    /// One per environment of [`FleetView::envs`], `None` where nothing runs.
    pub cells: Vec<Option<Cell>>,
    pub findings: Vec<Finding>,
    /// The final-stage bases' freshness of the running digests that have a build record.
    pub freshness: Vec<Freshness>,
    /// The most days a running digest's base is behind, and who saw the newer digest.
    pub behind: Option<(i64, Vec<&'static str>)>,
    /// Running digests without a build record: their base is unknown.
    pub without_build: usize,
    pub scans: Scans,
    pub last_deploy: Option<DeployRecord>,
}

impl Row {
    pub fn production_risks(&self) -> usize {
        self.findings.iter().filter(|f| f.production).count()
    }

    pub fn has(&self, risk: Risk) -> bool {
        self.findings.iter().any(|f| f.risk == risk)
    }

    pub fn placements(&self) -> usize {
        self.cells.iter().flatten().count()
    }
}

/// The fleet page's answer.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    pub now: Timestamp,
    /// The filter asked for.
    pub filter: FleetFilter,
    /// The environments in promotion order.
    pub envs: Vec<EnvName>,
    /// The services the filter keeps, risk first: most production risks, then most risks,
    /// then by name.
    pub rows: Vec<Row>,
    /// Services in the whole fleet.
    pub services: usize,
    /// Services with each kind of risk, over the whole fleet (not the filter), every kind
    /// listed.
    pub counts: BTreeMap<Risk, usize>,
    /// Services with no risk found.
    pub clear: usize,
    /// A placement's provenance went unjudged because no key is trusted: said once.
    pub unjudged: bool,
    /// `None` when no runtime source ever reported.
    pub drift: Option<DriftReport>,
}

/// Judges the whole fleet. `facts` answers the gate's facts of a digest (the server keeps
/// them in memory; a CLI reads them with [`crate::gate::digest_facts`]).
pub fn fleet(
    store: &dyn Store,
    config: &Config,
    drift_options: &DriftOptions,
    filter: &FleetFilter,
    facts: &mut dyn FnMut(&Digest) -> Result<Arc<DigestFacts>, Error>,
    now: Timestamp,
) -> Result<FleetView, Error> {
    let mut envs = config.environments.clone();
    envs.sort_by_key(|e| config.env_rank(e));
    let services = store.services()?;
    let mut running: BTreeMap<ServiceName, Vec<lineage_store::RunningImage>> = BTreeMap::new();
    for r in store.running(None, None)? {
        running.entry(r.deploy.service.clone()).or_default().push(r);
    }
    let truth = Truth::load(store, None, None, Some(now))?;
    let drift = if store.observation_sources()?.is_empty() {
        None
    } else {
        Some(crate::drift::drift(store, config, drift_options, now)?)
    };
    let severities = ["critical".to_string(), "high".to_string()];
    let scans = vulns::vulns(store, config, None, &severities, now)?;
    let mut found: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for image in scans.owners.iter().flat_map(|o| &o.images) {
        let entry = found
            .entry((image.service.clone(), image.digest.clone()))
            .or_default();
        for f in image
            .base_findings
            .iter()
            .chain(&image.app_findings)
            .chain(&image.unknown_findings)
        {
            match f.severity.as_str() {
                "critical" => entry.0 += 1,
                _ => entry.1 += 1,
            }
        }
    }
    // The newest scan of what runs in each (service, environment).
    let scanned: BTreeMap<(String, String), Option<Timestamp>> = store
        .running_inventory(Some("scan"))?
        .into_iter()
        .map(|r| ((r.service.to_string(), r.env.to_string()), r.newest))
        .collect();
    let mut unjudged = false;
    let mut rows = Vec::with_capacity(services.len());
    for service in services {
        let placements = running.remove(&service.name).unwrap_or_default();
        let mut row = Row {
            cells: Vec::with_capacity(envs.len()),
            findings: Vec::new(),
            freshness: Vec::new(),
            behind: None,
            without_build: 0,
            scans: Scans::NothingRuns,
            last_deploy: placements
                .iter()
                .map(|r| &r.deploy)
                .max_by_key(|d| d.at)
                .cloned(),
            service,
        };
        let (mut critical, mut high) = (0, 0);
        for env in &envs {
            let Some(r) = placements.iter().find(|r| r.deploy.env == *env) else {
                row.cells.push(None);
                continue;
            };
            let facts = facts(&r.deploy.digest)?;
            let production = config.is_production(env);
            let judged = lifecycle::attention(config, &r.deploy, &facts);
            let signature = facts.signature_for(Some(env));
            unjudged |= signature == SignatureStatus::NotChecked;
            row.findings.extend(judged.findings);
            match &facts.base_freshness {
                Some(f) => row.freshness.push(f.clone()),
                None => row.without_build += 1,
            }
            if let Some(&(c, h)) =
                found.get(&(row.service.name.to_string(), r.deploy.digest.to_string()))
            {
                critical += c;
                high += h;
            }
            row.cells.push(Some(Cell {
                deploy: r.deploy.clone(),
                retired: facts.retired.is_some(),
                outcome: judged.outcome,
                signature,
                observed: truth.as_ref().map(|t| t.state(env, &r.deploy.digest)),
                production,
            }));
        }
        let refs: Vec<&Freshness> = row.freshness.iter().collect();
        row.behind = crate::freshness::worst_behind(&refs, now)
            .map(|(days, source)| (days, source.to_vec()));
        if let Some((days, _)) = row.behind.as_ref().filter(|(d, _)| *d > 0) {
            row.findings.push(Finding {
                risk: Risk::StaleBase,
                env: None,
                production: false,
                text: format!("base {days} days behind its tag"),
            });
        }
        if let Some(report) = &drift {
            for item in report
                .items
                .iter()
                .filter(|i| i.service.as_deref() == Some(row.service.name.as_str()))
            {
                let production = EnvName::parse(&item.env).is_ok_and(|e| config.is_production(&e));
                row.findings.push(Finding {
                    risk: Risk::Drift,
                    env: Some(item.env.clone()),
                    production,
                    text: format!("{}: drift ({})", item.env, item.kind),
                });
            }
        }
        row.scans = if row.placements() == 0 {
            Scans::NothingRuns
        } else if critical + high > 0 {
            let production = row.cells.iter().flatten().any(|c| {
                c.production
                    && found
                        .contains_key(&(row.service.name.to_string(), c.deploy.digest.to_string()))
            });
            row.findings.push(Finding {
                risk: Risk::Vulnerable,
                env: None,
                production,
                text: findings_text(critical, high),
            });
            Scans::Findings { critical, high }
        } else {
            scan_gap(&row, &scanned, config, now)
                .map_or(Scans::Clean, |reason| Scans::Unknown { reason })
        };
        rows.push(row);
    }
    let mut counts: BTreeMap<Risk, usize> = Risk::ALL.iter().map(|r| (*r, 0)).collect();
    let mut clear = 0;
    for row in &rows {
        if row.findings.is_empty() {
            clear += 1;
        }
        for risk in Risk::ALL {
            if row.has(*risk) {
                *counts.entry(*risk).or_default() += 1;
            }
        }
    }
    let total = rows.len();
    rows.retain(|row| keeps(filter, row));
    rows.sort_by(|a, b| {
        (b.production_risks(), b.findings.len())
            .cmp(&(a.production_risks(), a.findings.len()))
            .then_with(|| a.service.name.cmp(&b.service.name))
    });
    Ok(FleetView {
        now,
        filter: filter.clone(),
        envs,
        rows,
        services: total,
        counts,
        clear,
        unjudged,
        drift,
    })
}

fn keeps(filter: &FleetFilter, row: &Row) -> bool {
    let contains = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
    if filter.risk.is_some_and(|r| !row.has(r)) {
        return false;
    }
    if let Some(env) = &filter.env {
        if !row.cells.iter().flatten().any(|c| c.deploy.env == *env) {
            return false;
        }
    }
    if let Some(owner) = &filter.owner {
        let named = [&row.service.owner, &row.service.backup_owner]
            .into_iter()
            .flatten()
            .any(|o| contains(&o.to_string(), owner));
        if !named {
            return false;
        }
    }
    if let Some(name) = &filter.service {
        if !contains(row.service.name.as_str(), name) {
            return false;
        }
    }
    true
}

/// Why a row's findings are unknown: a running digest never scanned, or scanned longer ago
/// than `[vulns] max_age`; `None` when every one was scanned recently.
/// `1 high finding`, `2 critical findings`, `1 critical and 3 high findings`.
fn findings_text(critical: usize, high: usize) -> String {
    let noun = if critical + high == 1 {
        "finding"
    } else {
        "findings"
    };
    match (critical, high) {
        (0, h) => format!("{h} high {noun}"),
        (c, 0) => format!("{c} critical {noun}"),
        (c, h) => format!("{c} critical and {h} high {noun}"),
    }
}

fn scan_gap(
    row: &Row,
    scanned: &BTreeMap<(String, String), Option<Timestamp>>,
    config: &Config,
    now: Timestamp,
) -> Option<String> {
    row.cells.iter().flatten().find_map(|c| {
        let key = (row.service.name.to_string(), c.deploy.env.to_string());
        match scanned.get(&key).copied().flatten() {
            None => Some(format!("{}: never scanned", c.deploy.env)),
            Some(t) if now.unix() - t.unix() > config.vulns.max_age_secs => Some(format!(
                "{}: scanned {} days ago (max age {})",
                c.deploy.env,
                (now.unix() - t.unix()) / 86_400,
                config.vulns.max_age
            )),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::findings_text;

    #[test]
    fn findings_are_counted_in_words_that_agree() {
        assert_eq!(findings_text(0, 1), "1 high finding");
        assert_eq!(findings_text(2, 0), "2 critical findings");
        assert_eq!(findings_text(1, 3), "1 critical and 3 high findings");
    }
}
