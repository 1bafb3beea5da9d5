//! The incident drill: `incident open`, `incident show` and `incident list`.
//!
//! Opening an incident asks the `affected` question (a base, a vulnerability or a package)
//! and keeps its answer, production first, in one `incident_opened` ledger record. Nothing
//! else is ever written for an incident: its progress is computed from the builds, deploys
//! and placement ends recorded after that entry, so it cannot disagree with them.
//!
//! A (service, environment) of the snapshot is *fixed* once nothing runs there any more, or
//! what runs there is known to be clean: `affected` no longer answers it, and the ledger can
//! tell (a build record that names its bases, for a base; a scan of the digest, for a
//! vulnerability; an SBOM or a scan, for a package). A digest the ledger cannot judge leaves
//! the place *unverified*, never fixed. It was fixed at the time of the deploy (or end) that
//! began the run of clean placements; the incident closes at the first moment every place is
//! fixed, and stays closed. A service's first fixed build is its first build recorded after
//! the opening that is known to be clean. Every elapsed time counts from the opening.

use std::collections::{BTreeMap, HashMap};

use lineage_model::{
    check_free_text, Digest, EnvName, Identity, IncidentOpened, IncidentQuery, IncidentTarget,
    Purl, Record, Repository, ServiceName, Timestamp,
};
use lineage_store::{BaseFilter, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::query::{self, Owners};
use crate::vulns::{self, NotScanned, PackageQuery};
use crate::{Config, Error};

/// The record kind of an opening, and the key every opening is filed under.
pub const KIND: &str = "incident_opened";

/// What an incident is opened on, as the user gave it (`--base`, `--cve`, `--package`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Base,
    Cve,
    Package,
}

impl QueryKind {
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Base => "base",
            QueryKind::Cve => "cve",
            QueryKind::Package => "package",
        }
    }

    fn parse(kind: &str) -> Option<QueryKind> {
        match kind {
            "base" => Some(QueryKind::Base),
            "cve" => Some(QueryKind::Cve),
            "package" => Some(QueryKind::Package),
            _ => None,
        }
    }
}

/// An incident to open.
#[derive(Debug, Clone)]
pub struct OpenInput {
    pub title: String,
    pub kind: QueryKind,
    pub value: String,
    pub drill: bool,
    pub by: Identity,
}

/// Checks a title: one line of printable text, at most [`IncidentOpened::MAX_TITLE`] bytes.
pub fn check_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    check_free_text("--title", title, IncidentOpened::MAX_TITLE)?;
    Ok(title.to_string())
}

/// Checks a query's form without a ledger, so that bad input is refused before anything is
/// opened. A base digest prefix passes; the ledger resolves it.
pub fn check_query(kind: QueryKind, value: &str) -> Result<(), Error> {
    match kind {
        QueryKind::Base => query::check_base_query(value),
        QueryKind::Cve => PackageQuery::vuln(value).map(drop),
        QueryKind::Package => package_query(value).map(drop),
    }
}

/// `--package`: a purl with its version, or `name@version|range`. A package without a
/// version would match every image that still holds it, fixed or not, so it is refused.
fn package_query(value: &str) -> Result<PackageQuery, Error> {
    let value = value.trim();
    let query = if value
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkg:"))
    {
        PackageQuery::Purl(Purl::parse(value).map_err(|e| e.in_field("--package"))?)
    } else {
        PackageQuery::package(value)?
    };
    let versioned = match &query {
        PackageQuery::Name { version, .. } => version.is_some(),
        PackageQuery::Purl(p) => p.version().is_some(),
        PackageQuery::Vuln(_) => true,
    };
    if !versioned {
        return Err(Error::Invalid(
            format!("--package `{value}` names no version, so an incident on it could never close: a fixed image still holds the package"),
            "name the affected version or range: `--package 'openssl@<3.0.15'` or `--package pkg:deb/debian/openssl@3.0.11-1~deb12u2`".into(),
        ));
    }
    Ok(query)
}

/// An incident's question, parsed.
enum Question {
    Base(BaseFilter),
    Package(PackageQuery),
}

/// Whether a digest is affected, as far as the ledger can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    Affected,
    Clean,
    /// The ledger holds nothing that could tell (no build record with bases, no scan).
    Unknown,
}

impl Question {
    /// Reads a stored query back. Openings store whole digests and checked forms, so this
    /// needs no ledger.
    fn parse(query: &IncidentQuery) -> Result<Question, Error> {
        match QueryKind::parse(&query.kind) {
            Some(QueryKind::Base) => Ok(Question::Base(query::base_filter(&query.value)?)),
            Some(QueryKind::Cve) => Ok(Question::Package(PackageQuery::vuln(&query.value)?)),
            Some(QueryKind::Package) => Ok(Question::Package(package_query(&query.value)?)),
            None => Err(Error::Invalid(
                format!(
                    "an incident asks a `{}` question, which this lineage does not know",
                    query.kind
                ),
                "upgrade lineage".into(),
            )),
        }
    }

    /// What `lineage affected` answers now: each place an affected digest runs, production
    /// first, and (for scans) the production digests nobody can vouch for.
    fn answer(
        &self,
        store: &dyn Store,
        config: &Config,
        now: Timestamp,
    ) -> Result<(Vec<IncidentTarget>, Vec<NotScanned>), Error> {
        let mut places = Vec::new();
        // The reports carry names and digests as text; they parse, having come from the ledger.
        let mut add = |service: &str, env: &str, digest: &str, since: Timestamp| {
            places.push(IncidentTarget {
                service: ServiceName::parse(service)?,
                env: EnvName::parse(env)?,
                digest: Digest::parse(digest)?,
                since,
            });
            Ok::<(), Error>(())
        };
        let not_scanned = match self {
            Question::Base(filter) => {
                for s in query::affected(store, config, filter)?.services {
                    for p in &s.running {
                        add(&s.service, &p.env, &p.digest, p.since)?;
                    }
                }
                Vec::new()
            }
            Question::Package(q) => {
                let report = vulns::affected(store, config, q, now)?;
                for s in &report.services {
                    for p in &s.running {
                        let p = &p.placement;
                        add(&s.service, &p.env, &p.digest, p.since)?;
                    }
                }
                report.not_scanned
            }
        };
        // Production first; within an environment, in the order `affected` ranks services.
        places.sort_by_key(|p| config.env_rank(&p.env));
        Ok((places, not_scanned))
    }

    fn judge(&self, store: &dyn Store, digest: &Digest) -> Result<Judgement, Error> {
        let known = match self {
            Question::Base(filter) => match store.build(digest)? {
                Some(b) if !b.bases.is_empty() => Some(query::built_on(&b, filter)),
                _ => None,
            },
            Question::Package(q) => vulns::digest_matches(store, digest, q)?,
        };
        Ok(match known {
            Some(true) => Judgement::Affected,
            Some(false) => Judgement::Clean,
            None => Judgement::Unknown,
        })
    }

    /// Why a digest cannot be judged, and the command that records what would tell.
    fn unknown_note(&self, image: &Repository, digest: &Digest) -> String {
        let pinned = format!("{image}@{digest}");
        match self {
            Question::Base(_) => format!(
                "no build record names its bases; record its build: `lineage build record --image {pinned} --base BASE`"
            ),
            Question::Package(PackageQuery::Vuln(_)) => {
                format!("not scanned; import its scan: `lineage scan add {pinned} FILE`")
            }
            Question::Package(_) => format!(
                "no SBOM or scan; import one: `lineage sbom add {pinned} FILE`"
            ),
        }
    }
}

/// Judgements of digests, each asked once per report.
struct Judge<'a> {
    store: &'a dyn Store,
    question: &'a Question,
    seen: HashMap<Digest, Judgement>,
}

impl Judge<'_> {
    fn of(&mut self, digest: &Digest) -> Result<Judgement, Error> {
        if let Some(j) = self.seen.get(digest) {
            return Ok(*j);
        }
        let j = self.question.judge(self.store, digest)?;
        self.seen.insert(digest.clone(), j);
        Ok(j)
    }
}

// ---------------------------------------------------------------------------------------
// Reports.

/// How far an incident got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub services: usize,
    pub services_fixed: usize,
    pub envs: usize,
    pub envs_fixed: usize,
}

/// `incident open` and `incident show`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IncidentReport {
    pub schema: u32,
    /// The incident's number: its position among the ledger's incidents, from 1.
    pub id: u64,
    /// The ledger entry of the opening.
    pub index: u64,
    pub title: String,
    pub drill: bool,
    pub query: IncidentQuery,
    pub opened_at: Timestamp,
    pub opened_by: String,
    /// `open` or `closed`.
    pub status: String,
    pub closed_at: Option<Timestamp>,
    /// Seconds from the opening to the closing, or to now while open.
    pub elapsed_secs: i64,
    pub counts: Counts,
    /// Each affected service, in the order of the snapshot (production first).
    pub services: Vec<ServiceProgress>,
    /// What happened, oldest first.
    pub timeline: Vec<TimelineEvent>,
    /// When opening: running production digests the answer cannot vouch for (not scanned
    /// recently), which the snapshot may be missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<NotScanned>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceProgress {
    pub service: String,
    /// `open` or `fixed`.
    pub status: String,
    /// Who to call while it is open: the service's owners now.
    pub owners: Owners,
    pub first_fixed_build: Option<FixedBuild>,
    /// When its last environment was fixed.
    pub fixed_at: Option<Timestamp>,
    pub elapsed_secs: Option<i64>,
    pub envs: Vec<EnvProgress>,
}

/// The first build of a service, recorded after the opening, known to be clean.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FixedBuild {
    pub digest: String,
    /// When the ledger recorded it.
    pub at: Timestamp,
    pub elapsed_secs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvProgress {
    pub env: String,
    /// The affected digest that ran there when the incident was opened.
    pub affected_digest: String,
    /// `affected`, `unverified` (replaced by a digest the ledger cannot judge) or `fixed`.
    pub status: String,
    /// What runs there now (when the incident closed, for a closed one); null when nothing
    /// does.
    pub running: Option<String>,
    pub fixed_at: Option<Timestamp>,
    /// The clean digest deployed when it was fixed; null when it was fixed by ending the
    /// placement.
    pub fixed_by: Option<String>,
    pub elapsed_secs: Option<i64>,
    /// Why an unverified digest cannot be judged, and what to record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One step of an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimelineEvent {
    pub at: Timestamp,
    pub elapsed_secs: i64,
    /// `opened`, `first_fixed_build`, `env_fixed` or `closed`.
    pub event: String,
    pub service: Option<String>,
    pub env: Option<String>,
    /// The fixed build, or the clean digest deployed when the environment was fixed (null
    /// when its placement ended).
    pub digest: Option<String>,
}

/// One line of `incident list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IncidentSummary {
    pub id: u64,
    pub index: u64,
    pub title: String,
    pub drill: bool,
    pub query: IncidentQuery,
    pub status: String,
    pub opened_at: Timestamp,
    pub opened_by: String,
    pub closed_at: Option<Timestamp>,
    pub elapsed_secs: i64,
    pub counts: Counts,
}

/// `incident list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IncidentList {
    pub schema: u32,
    /// Newest first.
    pub incidents: Vec<IncidentSummary>,
}

// ---------------------------------------------------------------------------------------
// Use cases.

/// What `incident open` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Opened(Box<IncidentReport>),
    /// The question answers nothing running now; nothing was written.
    NothingAffected {
        query: IncidentQuery,
        not_scanned: Vec<NotScanned>,
    },
}

/// `lineage incident open`: asks the question now and records the answer as one
/// `incident_opened` entry. Nothing is written when nothing is affected.
pub fn open(
    store: &mut dyn Store,
    config: &Config,
    input: OpenInput,
    now: Timestamp,
) -> Result<Opened, Error> {
    let title = check_title(&input.title)?;
    check_query(input.kind, &input.value)?;
    // A digest prefix is resolved once, here, so the stored question means one base forever.
    let value = match input.kind {
        QueryKind::Base => match query::resolve_base_filter(store, &input.value)? {
            Some(filter) => query::base_text(&filter),
            None => {
                return Ok(Opened::NothingAffected {
                    query: IncidentQuery {
                        kind: input.kind.name().into(),
                        value: input.value.trim().to_string(),
                    },
                    not_scanned: Vec::new(),
                })
            }
        },
        // As `PackageQuery::vuln` reads it back.
        QueryKind::Cve => input.value.trim().to_ascii_uppercase(),
        QueryKind::Package => input.value.trim().to_string(),
    };
    let asked = IncidentQuery {
        kind: input.kind.name().into(),
        value,
    };
    let question = Question::parse(&asked)?;
    let (affected, not_scanned) = question.answer(store, config, now)?;
    if affected.is_empty() {
        return Ok(Opened::NothingAffected {
            query: asked,
            not_scanned,
        });
    }
    let opened = IncidentOpened {
        title,
        query: asked,
        drill: input.drill,
        affected,
        by: input.by.clone(),
        at: now,
    };
    let index = store.append(
        &[Record::IncidentOpened(opened.clone())],
        now,
        Some(&input.by),
    )?[0];
    let id = incidents(store)?
        .iter()
        .position(|(i, _)| *i == index)
        .map_or(0, |p| p as u64 + 1);
    let mut report = progress(store, config, id, index, &opened, &Events::default(), now)?;
    report.not_scanned = not_scanned;
    Ok(Opened::Opened(Box::new(report)))
}

/// `lineage incident show ID`. `Ok(None)`: no incident has that number.
pub fn show(
    store: &dyn Store,
    config: &Config,
    id: u64,
    now: Timestamp,
) -> Result<Option<IncidentReport>, Error> {
    let all = incidents(store)?;
    let Some((index, opened)) = id
        .checked_sub(1)
        .and_then(|i| all.get(usize::try_from(i).ok()?))
    else {
        return Ok(None);
    };
    let events = Events::load(store, *index)?;
    progress(store, config, id, *index, opened, &events, now).map(Some)
}

/// `lineage incident list`: every incident, newest first.
pub fn list(store: &dyn Store, config: &Config, now: Timestamp) -> Result<IncidentList, Error> {
    let all = incidents(store)?;
    let events = match all.first() {
        Some((index, _)) => Events::load(store, *index)?,
        None => Events::default(),
    };
    let mut incidents = Vec::new();
    for (i, (index, opened)) in all.iter().enumerate() {
        let r = progress(store, config, i as u64 + 1, *index, opened, &events, now)?;
        incidents.push(IncidentSummary {
            id: r.id,
            index: r.index,
            title: r.title,
            drill: r.drill,
            query: r.query,
            status: r.status,
            opened_at: r.opened_at,
            opened_by: r.opened_by,
            closed_at: r.closed_at,
            elapsed_secs: r.elapsed_secs,
            counts: r.counts,
        });
    }
    incidents.reverse();
    Ok(IncidentList {
        schema: 1,
        incidents,
    })
}

/// Every opening in ledger order, with its entry index; an incident's number is its
/// position here, from 1.
fn incidents(store: &dyn Store) -> Result<Vec<(u64, IncidentOpened)>, Error> {
    Ok(store
        .facts(KIND, None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::IncidentOpened(o) => Some((e.index, o)),
            _ => None,
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Progress.

/// A deploy or a placement end, as far as incidents care.
#[derive(Debug, Clone)]
struct PlacementEvent {
    index: u64,
    service: ServiceName,
    env: EnvName,
    at: Timestamp,
    /// `None` for an end.
    digest: Option<Digest>,
}

#[derive(Debug, Clone)]
struct BuildEvent {
    index: u64,
    service: ServiceName,
    digest: Digest,
    recorded_at: Timestamp,
}

/// The builds, deploys and ends recorded after an entry.
#[derive(Debug, Default)]
struct Events {
    placements: Vec<PlacementEvent>,
    builds: Vec<BuildEvent>,
}

impl Events {
    /// Reads the journal after entry `after`, parsing only the kinds that move an incident.
    fn load(store: &dyn Store, after: u64) -> Result<Events, Error> {
        const CHUNK: u64 = 2_000;
        let mut events = Events::default();
        let end = store.len()?;
        let mut from = after + 1;
        while from < end {
            let to = (from + CHUNK).min(end);
            for raw in store.raw_entries(from, to)? {
                if !matches!(raw.kind.as_str(), "build" | "deploy" | "deploy_end") {
                    continue;
                }
                let record: Record =
                    serde_json::from_str(&raw.body).map_err(|e| StoreError::Corrupt {
                        index: raw.index,
                        detail: e.to_string(),
                    })?;
                match record {
                    Record::Deploy(d) => events.placements.push(PlacementEvent {
                        index: raw.index,
                        service: d.service,
                        env: d.env,
                        at: d.at,
                        digest: Some(d.digest),
                    }),
                    Record::DeployEnd(e) => events.placements.push(PlacementEvent {
                        index: raw.index,
                        service: e.service,
                        env: e.env,
                        at: e.at,
                        digest: None,
                    }),
                    Record::Build(b) => {
                        // CI's own times are claims; the incident clock counts from when the
                        // ledger learnt of the build.
                        let Some(entry) = store.entries(raw.index, raw.index + 1)?.pop() else {
                            continue;
                        };
                        events.builds.push(BuildEvent {
                            index: raw.index,
                            service: b.service,
                            digest: b.digest,
                            recorded_at: entry.recorded_at,
                        })
                    }
                    _ => {}
                }
            }
            from = to;
        }
        Ok(events)
    }
}

/// One place of the snapshot while its events are replayed, with the `current` projection's
/// rules: a deploy replaces what runs unless it is older, or older than an end; an end
/// removes what runs unless that is newer.
struct Place {
    running: Option<(Digest, Timestamp)>,
    ended_at: Option<Timestamp>,
    judgement: Judgement,
    /// When the present run of clean placements began, and what was placed then (`None`
    /// when the placement ended).
    clean_since: Option<(Timestamp, Option<Digest>)>,
}

impl Place {
    fn apply(&mut self, event: &PlacementEvent, judge: &mut Judge<'_>) -> Result<(), Error> {
        match &event.digest {
            Some(digest) => {
                if self.ended_at.is_some_and(|e| e > event.at)
                    || self.running.as_ref().is_some_and(|(_, s)| event.at < *s)
                {
                    return Ok(());
                }
                self.running = Some((digest.clone(), event.at));
                self.judgement = judge.of(digest)?;
            }
            None => {
                if self.running.as_ref().is_some_and(|(_, s)| *s <= event.at) {
                    self.running = None;
                    self.judgement = Judgement::Clean;
                }
                self.ended_at = Some(self.ended_at.map_or(event.at, |e| e.max(event.at)));
            }
        }
        if self.judgement == Judgement::Clean {
            let placed = self.running.as_ref().map(|(d, _)| d.clone());
            self.clean_since.get_or_insert((event.at, placed));
        } else {
            self.clean_since = None;
        }
        Ok(())
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> i64 {
    (to.unix() - from.unix()).max(0)
}

/// Computes an incident's state from its opening and the events after it.
fn progress(
    store: &dyn Store,
    config: &Config,
    id: u64,
    index: u64,
    opened: &IncidentOpened,
    events: &Events,
    now: Timestamp,
) -> Result<IncidentReport, Error> {
    let question = Question::parse(&opened.query)?;
    let mut judge = Judge {
        store,
        question: &question,
        seen: HashMap::new(),
    };
    let t0 = opened.at;
    let mut places: Vec<Place> = opened
        .affected
        .iter()
        .map(|t| Place {
            running: Some((t.digest.clone(), t.since)),
            ended_at: None,
            judgement: Judgement::Affected,
            clean_since: None,
        })
        .collect();
    let slot: HashMap<(&ServiceName, &EnvName), usize> = opened
        .affected
        .iter()
        .enumerate()
        .map(|(i, t)| ((&t.service, &t.env), i))
        .collect();

    // Replay what happened, in the order of the placements' own times, until every place is
    // clean: that moment closes the incident for good.
    let mut moves: Vec<&PlacementEvent> = events
        .placements
        .iter()
        .filter(|e| e.index > index && slot.contains_key(&(&e.service, &e.env)))
        .collect();
    moves.sort_by_key(|e| (e.at, e.index));
    let mut closed_at = None;
    for event in moves {
        places[slot[&(&event.service, &event.env)]].apply(event, &mut judge)?;
        if places.iter().all(|p| p.clean_since.is_some()) {
            closed_at = Some(event.at.max(t0));
            break;
        }
    }

    // Still open: each place as it is now, as `lineage affected` answers it.
    let mut notes: Vec<Option<String>> = vec![None; places.len()];
    if closed_at.is_none() {
        let (answered, _) = question.answer(store, config, now)?;
        for (i, t) in opened.affected.iter().enumerate() {
            let now_running = store
                .running(Some(&t.env), Some(&t.service))?
                .into_iter()
                .next();
            let place = &mut places[i];
            let still = answered
                .iter()
                .any(|a| a.service == t.service && a.env == t.env);
            let judgement = match &now_running {
                _ if still => Judgement::Affected,
                None => Judgement::Clean,
                Some(r) => judge.of(&r.deploy.digest)?,
            };
            if judgement == Judgement::Unknown {
                if let Some(r) = &now_running {
                    notes[i] = Some(question.unknown_note(&r.deploy.image, &r.deploy.digest));
                }
            }
            if judgement == Judgement::Clean && place.clean_since.is_none() {
                // Clean without a replayed move (its scan changed, say): clean since what
                // runs there was placed, or since the opening.
                place.clean_since = Some(match &now_running {
                    Some(r) => (r.deploy.at, Some(r.deploy.digest.clone())),
                    None => (t0, None),
                });
            }
            if judgement != Judgement::Clean {
                place.clean_since = None;
            }
            place.judgement = judgement;
            place.running = now_running.map(|r| (r.deploy.digest, r.deploy.at));
        }
        if places.iter().all(|p| p.clean_since.is_some()) {
            closed_at = places
                .iter()
                .filter_map(|p| p.clean_since.as_ref().map(|(t, _)| *t))
                .max()
                .map(|t| t.max(t0));
        }
    }

    // Per service, in the order of the snapshot.
    let mut order: Vec<&ServiceName> = Vec::new();
    for t in &opened.affected {
        if !order.contains(&&t.service) {
            order.push(&t.service);
        }
    }
    let mut first_builds: BTreeMap<&ServiceName, &BuildEvent> = BTreeMap::new();
    let mut builds: Vec<&BuildEvent> = events
        .builds
        .iter()
        .filter(|b| b.index > index && order.contains(&&b.service))
        .filter(|b| closed_at.is_none_or(|c| b.recorded_at <= c))
        .collect();
    builds.sort_by_key(|b| (b.recorded_at, b.index));
    for b in builds {
        if !first_builds.contains_key(&b.service) && judge.of(&b.digest)? == Judgement::Clean {
            first_builds.insert(&b.service, b);
        }
    }

    let mut timeline = vec![TimelineEvent {
        at: t0,
        elapsed_secs: 0,
        event: "opened".into(),
        service: None,
        env: None,
        digest: None,
    }];
    let mut services = Vec::new();
    let mut counts = Counts {
        services: order.len(),
        services_fixed: 0,
        envs: places.len(),
        envs_fixed: 0,
    };
    for service in order {
        let first_fixed_build = first_builds.get(service).map(|b| FixedBuild {
            digest: b.digest.to_string(),
            at: b.recorded_at.max(t0),
            elapsed_secs: seconds(t0, b.recorded_at),
        });
        if let Some(b) = &first_fixed_build {
            timeline.push(TimelineEvent {
                at: b.at,
                elapsed_secs: b.elapsed_secs,
                event: "first_fixed_build".into(),
                service: Some(service.to_string()),
                env: None,
                digest: Some(b.digest.clone()),
            });
        }
        let mut envs = Vec::new();
        for (i, t) in opened.affected.iter().enumerate() {
            if t.service != *service {
                continue;
            }
            let place = &places[i];
            let fixed_at = place.clean_since.as_ref().map(|(c, _)| (*c).max(t0));
            let fixed_by = place
                .clean_since
                .as_ref()
                .and_then(|(_, d)| d.as_ref())
                .map(|d| d.to_string());
            let running = place.running.as_ref().map(|(d, _)| d.to_string());
            if let Some(at) = fixed_at {
                counts.envs_fixed += 1;
                timeline.push(TimelineEvent {
                    at,
                    elapsed_secs: seconds(t0, at),
                    event: "env_fixed".into(),
                    service: Some(service.to_string()),
                    env: Some(t.env.to_string()),
                    digest: fixed_by.clone(),
                });
            }
            envs.push(EnvProgress {
                env: t.env.to_string(),
                affected_digest: t.digest.to_string(),
                status: match (fixed_at, place.judgement) {
                    (Some(_), _) => "fixed",
                    (None, Judgement::Unknown) => "unverified",
                    (None, _) => "affected",
                }
                .into(),
                running,
                fixed_at,
                fixed_by,
                elapsed_secs: fixed_at.map(|at| seconds(t0, at)),
                note: notes[i].take(),
            });
        }
        let fixed_at = if envs.iter().all(|e| e.fixed_at.is_some()) {
            counts.services_fixed += 1;
            envs.iter().filter_map(|e| e.fixed_at).max()
        } else {
            None
        };
        services.push(ServiceProgress {
            service: service.to_string(),
            status: if fixed_at.is_some() { "fixed" } else { "open" }.into(),
            owners: Owners::of(store.service(service)?.as_ref()),
            first_fixed_build,
            fixed_at,
            elapsed_secs: fixed_at.map(|at| seconds(t0, at)),
            envs,
        });
    }
    if let Some(at) = closed_at {
        timeline.push(TimelineEvent {
            at,
            elapsed_secs: seconds(t0, at),
            event: "closed".into(),
            service: None,
            env: None,
            digest: None,
        });
    }
    // Oldest first; at one time, the opening, builds, environments, then the closing.
    let rank = |e: &TimelineEvent| match e.event.as_str() {
        "opened" => 0,
        "first_fixed_build" => 1,
        "env_fixed" => 2,
        _ => 3,
    };
    timeline.sort_by_key(|e| (e.at, rank(e)));
    Ok(IncidentReport {
        schema: 1,
        id,
        index,
        title: opened.title.clone(),
        drill: opened.drill,
        query: opened.query.clone(),
        opened_at: t0,
        opened_by: opened.by.to_string(),
        status: if closed_at.is_some() {
            "closed"
        } else {
            "open"
        }
        .into(),
        closed_at,
        elapsed_secs: seconds(t0, closed_at.unwrap_or(now)),
        counts,
        services,
        timeline,
        not_scanned: Vec::new(),
    })
}

/// `1d 4h 30m`: every non-zero unit, so the figure is exact to the second.
pub fn duration(secs: i64) -> String {
    if secs <= 0 {
        return "0s".into();
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_model::{BaseImage, BuildRecord, DeployRecord, PlacementEnd};
    use lineage_store::StoreLocation;

    fn digest(label: &str) -> Digest {
        use sha2::Digest as _;
        Digest::parse(&format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(label.as_bytes()))
        ))
        .unwrap()
    }

    /// 2026-11-17T09:00:00Z plus `minutes`.
    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_unix(1_794_906_000 + minutes * 60)
    }

    struct Ledger {
        _dir: tempfile::TempDir,
        store: Box<dyn Store>,
        config: Config,
    }

    impl Ledger {
        /// `api` built on the bad base and running it in staging and production.
        fn new() -> Ledger {
            let dir = tempfile::tempdir().unwrap();
            let store =
                lineage_store::open(&StoreLocation::Sqlite(dir.path().join("l.db")), true).unwrap();
            let mut l = Ledger {
                _dir: dir,
                store,
                config: Config::default(),
            };
            l.build("api-1", "bad", Some(-600));
            l.deploy("api-1", "staging", -500);
            l.deploy("api-1", "production", -400);
            l
        }

        fn build(&mut self, label: &str, base: &str, minutes: Option<i64>) {
            let b = BuildRecord {
                service: ServiceName::parse("api").unwrap(),
                image: Repository::parse("ghcr.io/acme/api").unwrap(),
                digest: digest(label),
                tags: vec![],
                bases: vec![BaseImage {
                    name: Repository::parse("python").unwrap(),
                    tag: None,
                    digest: Some(digest(base)),
                    pulled_at: None,
                    final_stage: true,
                }],
                source_repo: None,
                git_ref: None,
                commit: None,
                started_at: None,
                finished_at: None,
                ci: None,
                builder: None,
                platform: None,
                dockerfile: None,
            };
            let when = minutes.map_or_else(|| self.last(), at);
            self.store.record_builds(&[b], when, None).unwrap();
        }

        fn last(&self) -> Timestamp {
            let n = self.store.len().unwrap();
            self.store.entries(n - 1, n).unwrap()[0].recorded_at
        }

        fn deploy(&mut self, label: &str, env: &str, minutes: i64) {
            let d = DeployRecord {
                config: Vec::new(),
                service: ServiceName::parse("api").unwrap(),
                image: Repository::parse("ghcr.io/acme/api").unwrap(),
                digest: digest(label),
                env: EnvName::parse(env).unwrap(),
                by: Identity::parse("jonas@acme.dev").unwrap(),
                approved_by: None,
                ticket: None,
                at: at(minutes),
                rollback: false,
            };
            let when = at(minutes).max(self.last());
            self.store.record_deploys(&[d], when, None).unwrap();
        }

        fn end(&mut self, env: &str, minutes: i64) {
            let e = PlacementEnd {
                service: ServiceName::parse("api").unwrap(),
                env: EnvName::parse(env).unwrap(),
                digest: None,
                reason: None,
                by: Identity::parse("jonas@acme.dev").unwrap(),
                at: at(minutes),
            };
            self.store
                .append(&[Record::DeployEnd(e)], at(minutes), None)
                .unwrap();
        }

        fn open(&mut self) -> IncidentReport {
            let input = OpenInput {
                title: "bad base".into(),
                kind: QueryKind::Base,
                value: digest("bad").to_string(),
                drill: false,
                by: Identity::parse("maya@acme.dev").unwrap(),
            };
            match open(self.store.as_mut(), &self.config, input, at(0)).unwrap() {
                Opened::Opened(r) => *r,
                other => panic!("{other:?}"),
            }
        }

        fn show(&self, minutes: i64) -> IncidentReport {
            show(self.store.as_ref(), &self.config, 1, at(minutes))
                .unwrap()
                .unwrap()
        }
    }

    /// (env, status, elapsed minutes) per environment of the one service.
    fn envs(r: &IncidentReport) -> Vec<(String, String, Option<i64>)> {
        r.services[0]
            .envs
            .iter()
            .map(|e| {
                (
                    e.env.clone(),
                    e.status.clone(),
                    e.elapsed_secs.map(|s| s / 60),
                )
            })
            .collect()
    }

    fn row(env: &str, status: &str, minutes: Option<i64>) -> (String, String, Option<i64>) {
        (env.into(), status.into(), minutes)
    }

    #[test]
    fn a_rollback_to_the_affected_digest_restarts_the_clock() {
        let mut l = Ledger::new();
        let opened = l.open();
        assert_eq!(opened.counts.envs, 2);
        assert_eq!(
            opened.services[0].envs[0].env, "production",
            "production first"
        );
        l.build("api-2", "good", Some(10));
        l.deploy("api-2", "production", 20);
        l.deploy("api-1", "production", 30);
        l.deploy("api-2", "production", 45);
        // Another clean deploy later does not move the fixed time.
        l.build("api-3", "good", Some(50));
        l.deploy("api-3", "production", 60);
        let r = l.show(70);
        assert_eq!(
            envs(&r),
            [
                row("production", "fixed", Some(45)),
                row("staging", "affected", None)
            ]
        );
        assert_eq!(
            r.services[0].envs[0].fixed_by,
            Some(digest("api-2").to_string())
        );
        assert_eq!(
            r.services[0].envs[0].running,
            Some(digest("api-3").to_string())
        );
        let first = r.services[0].first_fixed_build.as_ref().unwrap();
        assert_eq!(
            (first.digest.clone(), first.elapsed_secs),
            (digest("api-2").to_string(), 600)
        );
        assert_eq!((r.status.as_str(), r.elapsed_secs), ("open", 70 * 60));
    }

    #[test]
    fn an_unjudged_digest_is_unverified_and_an_end_fixes() {
        let mut l = Ledger::new();
        l.open();
        // Deployed without a build record: its bases are not known.
        l.deploy("mystery", "production", 15);
        l.end("staging", 25);
        let r = l.show(30);
        assert_eq!(
            envs(&r),
            [
                row("production", "unverified", None),
                row("staging", "fixed", Some(25))
            ]
        );
        let note = r.services[0].envs[0].note.as_deref().unwrap();
        assert!(note.contains("lineage build record"), "{note}");
        assert_eq!(r.services[0].envs[1].running, None);
        assert_eq!(r.status, "open");
        // Once its build is known to be clean, the deploy is what fixed it.
        l.build("mystery", "good", None);
        let r = l.show(40);
        assert_eq!(
            envs(&r),
            [
                row("production", "fixed", Some(15)),
                row("staging", "fixed", Some(25))
            ]
        );
        assert_eq!((r.status.as_str(), r.elapsed_secs), ("closed", 25 * 60));
        assert_eq!(r.closed_at, Some(at(25)));
    }

    #[test]
    fn a_closed_incident_stays_closed_and_a_late_backdated_deploy_does_not_fix() {
        let mut l = Ledger::new();
        l.open();
        l.build("api-2", "good", Some(5));
        // Dated before the affected deploy it would replace: `running` keeps api-1.
        l.deploy("api-2", "production", -450);
        let r = l.show(6);
        assert_eq!(envs(&r)[0], row("production", "affected", None));
        l.deploy("api-2", "production", 10);
        l.deploy("api-2", "staging", 20);
        assert_eq!(l.show(21).closed_at, Some(at(20)));
        // Someone deploys the affected digest again: a new exposure, not this incident.
        l.deploy("api-1", "staging", 90);
        let r = l.show(100);
        assert_eq!((r.status.as_str(), r.elapsed_secs), ("closed", 20 * 60));
        let events: Vec<(&str, i64)> = r
            .timeline
            .iter()
            .map(|e| (e.event.as_str(), e.elapsed_secs / 60))
            .collect();
        assert_eq!(
            events,
            [
                ("opened", 0),
                ("first_fixed_build", 5),
                ("env_fixed", 10),
                ("env_fixed", 20),
                ("closed", 20)
            ]
        );
    }

    #[test]
    fn nothing_affected_writes_nothing_and_bad_questions_are_refused() {
        let mut l = Ledger::new();
        let before = l.store.len().unwrap();
        let input = OpenInput {
            title: "other base".into(),
            kind: QueryKind::Base,
            value: digest("other").to_string(),
            drill: true,
            by: Identity::parse("maya@acme.dev").unwrap(),
        };
        let r = open(l.store.as_mut(), &l.config, input, at(0)).unwrap();
        assert!(matches!(r, Opened::NothingAffected { .. }), "{r:?}");
        assert_eq!(l.store.len().unwrap(), before);
        assert!(check_query(QueryKind::Package, "openssl").is_err());
        assert!(check_query(QueryKind::Package, "pkg:deb/debian/openssl").is_err());
        check_query(QueryKind::Package, "pkg:deb/debian/openssl@3.0.11-1").unwrap();
        check_query(QueryKind::Package, "openssl@<3.0.15").unwrap();
        assert!(check_query(QueryKind::Cve, "not an id").is_err());
        assert!(check_title("").is_err());
        assert!(check_title("a\u{1b}[2Jb").is_err());
        assert!(check_title(&"x".repeat(201)).is_err());
        assert_eq!(check_title("  OpenSSL  ").unwrap(), "OpenSSL");
    }
}
