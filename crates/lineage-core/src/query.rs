//! The incident questions: `trace`, `affected` and `running`.
//!
//! Each returns a versioned report (`"schema": 1`). Reports never contain internal types:
//! their JSON form is documented in README.md and is the public format.

use lineage_model::DigestQuery;
use lineage_model::{
    BaseImage, BuildRecord, DeployRecord, Digest, EnvName, ImageRef, Repository, Service,
    ServiceName, Tag, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet};

use lineage_store::{BaseFilter, DigestRole, RunningImage, Store};
use serde::{Deserialize, Serialize};

use crate::observe::{ObservedState, Truth};
use crate::{Config, Error};

/// How a query looks at runtime truth: the time it is asked at (for "observed 3 min ago"),
/// and whether to keep only placements a runtime source saw running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct View {
    pub now: Option<Timestamp>,
    /// Keep only placements whose digest a runtime source observes running now.
    pub observed_only: bool,
}

impl View {
    /// Adds the observed state to each placement and drops unobserved ones when asked.
    /// Without any observation in the ledger, placements carry no state, and
    /// `observed_only` keeps nothing: nothing was seen running.
    fn apply(&self, truth: Option<&Truth>, list: &mut Vec<Placement>) {
        for p in list.iter_mut() {
            if let (Some(t), Ok(env), Ok(digest)) =
                (truth, EnvName::parse(&p.env), Digest::parse(&p.digest))
            {
                p.observed = Some(t.state(&env, &digest));
            }
        }
        if self.observed_only {
            list.retain(|p| p.observed.as_ref().is_some_and(ObservedState::is_observed));
        }
    }
}
/// Owners to call, as every report shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owners {
    pub owner: Option<String>,
    pub backup_owner: Option<String>,
    pub emergency_approver: Option<String>,
}

impl Owners {
    pub(crate) fn of(service: Option<&Service>) -> Owners {
        let s = |v: Option<&lineage_model::Identity>| v.map(|i| i.to_string());
        Owners {
            owner: service
                .and_then(|s| s.owner.as_ref())
                .map(|i| i.to_string()),
            backup_owner: s(service.and_then(|s| s.backup_owner.as_ref())),
            emergency_approver: s(service.and_then(|s| s.emergency_approver.as_ref())),
        }
    }
}

/// Where a digest runs now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Placement {
    pub env: String,
    pub digest: String,
    pub since: Timestamp,
    pub deployed_by: String,
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The commit that built the running digest, when its build is recorded.
    pub commit: Option<String>,
    /// The final-stage base digest of the running digest, when known.
    pub base_digest: Option<String>,
    /// Whether a runtime source saw it running, and when; absent when the ledger holds no
    /// observations at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedState>,
    /// The release, when the deploy recorded its configuration (`deploy record --config-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The newest outcome recorded for this placement (`lineage deploy outcome`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<crate::lifecycle::OutcomeMark>,
    /// Set when the running digest was retired: it runs though it must not be deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<crate::lifecycle::RetiredMark>,
}

/// Adds each placement's outcome and retirement (when the ledger holds any).
pub(crate) fn mark(
    store: &dyn Store,
    service: &ServiceName,
    list: &mut [Placement],
) -> Result<(), Error> {
    mark_all(store, list.iter_mut().map(|p| (service, p)))
}

/// [`mark`] for placements of many services, reading outcomes and retirements once for all.
pub(crate) fn mark_all<'a>(
    store: &dyn Store,
    list: impl IntoIterator<Item = (&'a ServiceName, &'a mut Placement)>,
) -> Result<(), Error> {
    let list: Vec<(&ServiceName, &mut Placement)> = list.into_iter().collect();
    if list.is_empty() {
        return Ok(());
    }
    let mut services: Vec<ServiceName> = list.iter().map(|(s, _)| (*s).clone()).collect();
    services.sort();
    services.dedup();
    let digests: Vec<Digest> = list
        .iter()
        .filter_map(|(_, p)| Digest::parse(&p.digest).ok())
        .collect();
    let outcomes = crate::lifecycle::outcomes_of(store, &services)?;
    let retired = crate::lifecycle::retirements(store, &digests)?;
    for (service, p) in list {
        let (Ok(env), Ok(digest)) = (EnvName::parse(&p.env), Digest::parse(&p.digest)) else {
            continue;
        };
        let of_service = outcomes.get(service).map(Vec::as_slice).unwrap_or(&[]);
        p.outcome = crate::lifecycle::newest_outcome(of_service, &env, &digest, p.since)
            .map(crate::lifecycle::OutcomeMark::of);
        p.retired = retired.get(&digest).map(crate::lifecycle::RetiredMark::of);
    }
    Ok(())
}

impl Placement {
    pub(crate) fn of(deploy: &DeployRecord, build: Option<&BuildRecord>) -> Placement {
        Placement {
            env: deploy.env.to_string(),
            digest: deploy.digest.to_string(),
            since: deploy.at,
            deployed_by: deploy.by.to_string(),
            approved_by: deploy.approved_by.as_ref().map(|i| i.to_string()),
            ticket: deploy.ticket.clone(),
            commit: build.and_then(|b| b.commit.as_ref()).map(|c| c.to_string()),
            base_digest: build
                .and_then(|b| b.final_base())
                .and_then(|b| b.digest.as_ref())
                .map(|d| d.to_string()),
            observed: None,
            release: (!deploy.config.is_empty())
                .then(|| crate::lifecycle::release_id(&deploy.digest, &deploy.config)),
            outcome: None,
            retired: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviousBuild {
    pub digest: String,
    pub tags: Vec<String>,
    pub commit: Option<String>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceReport {
    pub schema: u32,
    pub query: String,
    pub service: String,
    pub owners: Owners,
    pub image: String,
    pub digest: String,
    /// The build record of the digest; `None` when it was deployed without one.
    pub build: Option<BuildRecord>,
    /// When the ledger recorded the build: the build time to go by when the pipeline gave
    /// none (`build.finished_at` absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_recorded_at: Option<Timestamp>,
    /// Environments where this digest runs now, production first.
    pub running: Vec<Placement>,
    /// Environments where the service runs another digest now.
    pub elsewhere: Vec<Placement>,
    /// Earlier builds of the service, newest first.
    pub previous: Vec<PreviousBuild>,
    /// Set when this digest was retired (it must not be deployed; where it runs, it is flagged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<crate::lifecycle::RetiredMark>,
    /// Tags given to this digest after its build was recorded (`lineage tag`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_added: Vec<lineage_model::TagAdded>,
}

/// How many earlier builds `trace` lists.
const PREVIOUS: usize = 5;

/// Answers "what is this, where did it come from, who owns it, where does it run".
/// `Ok(None)` means nothing matches.
pub fn trace(
    store: &dyn Store,
    config: &Config,
    query: &str,
) -> Result<Option<TraceReport>, Error> {
    trace_with(store, config, query, &View::default())
}

/// [`trace`], with each placement's observed state.
pub fn trace_with(
    store: &dyn Store,
    config: &Config,
    query: &str,
    view: &View,
) -> Result<Option<TraceReport>, Error> {
    let Some((service, digest, image)) = resolve_trace_target(store, config, query)? else {
        return Ok(None);
    };
    let build = store.build(&digest)?;
    let build_recorded_at = match store.build_index(&digest)? {
        Some(i) => store.entries(i, i + 1)?.pop().map(|e| e.recorded_at),
        None => None,
    };
    let service_record = store.service(&service)?;
    let mut running = Vec::new();
    let mut elsewhere = Vec::new();
    for r in store.running(None, Some(&service))? {
        let placement = Placement::of(&r.deploy, r.build.as_ref());
        if r.deploy.digest == digest {
            running.push(placement);
        } else {
            elsewhere.push(placement);
        }
    }
    let truth = Truth::load(store, None, None, view.now)?;
    view.apply(truth.as_ref(), &mut running);
    view.apply(truth.as_ref(), &mut elsewhere);
    mark_all(
        store,
        running
            .iter_mut()
            .chain(elsewhere.iter_mut())
            .map(|p| (&service, p)),
    )?;
    sort_placements(config, &mut running);
    sort_placements(config, &mut elsewhere);
    let previous = store
        .builds_of_service(&service, PREVIOUS + 1)?
        .into_iter()
        .filter(|b| b.digest != digest)
        .take(PREVIOUS)
        .map(|b| PreviousBuild {
            digest: b.digest.to_string(),
            tags: b.tags.iter().map(Tag::to_string).collect(),
            commit: b.commit.map(|c| c.to_string()),
            finished_at: b.finished_at,
        })
        .collect();
    let retired = crate::lifecycle::retirement(store, &digest)?
        .as_ref()
        .map(crate::lifecycle::RetiredMark::of);
    let tags_added = crate::lifecycle::tags_added(store, &digest)?;
    Ok(Some(TraceReport {
        retired,
        tags_added,
        schema: 1,
        query: query.to_string(),
        service: service.to_string(),
        owners: Owners::of(service_record.as_ref()),
        image: image.to_string(),
        digest: digest.to_string(),
        build,
        build_recorded_at,
        running,
        elsewhere,
        previous,
    }))
}

pub(crate) fn sort_placements(config: &Config, list: &mut [Placement]) {
    list.sort_by_key(|p| {
        let env = EnvName::parse(&p.env).ok();
        (
            env.map_or(usize::MAX, |e| config.env_rank(&e)),
            p.env.clone(),
        )
    });
}

/// Finds the (service, digest, image) a trace query names: a digest, an image reference
/// (pinned, tagged or bare), or a service name.
fn resolve_trace_target(
    store: &dyn Store,
    config: &Config,
    query: &str,
) -> Result<Option<(ServiceName, Digest, Repository)>, Error> {
    if let Some(parsed) = DigestQuery::parse(query) {
        let parsed = parsed?;
        let Some(digest) = resolve_digest(
            store,
            query,
            &parsed,
            &[DigestRole::Build, DigestRole::Deploy],
        )?
        else {
            // A base is not traced; the question about it is which images use it.
            if resolve_digest(store, query, &parsed, &[DigestRole::Base])?.is_some() {
                return Err(Error::Invalid(
                    format!(
                        "`{query}` is a base image digest, not an image Lineage built or deployed"
                    ),
                    format!("ask which images are built on it: `lineage affected --base {query}`"),
                ));
            }
            return Ok(None);
        };
        return Ok(by_digest(store, &digest)?.map(|(s, i)| (s, digest, i)));
    }
    if !query.contains(['/', ':', '@', '.']) {
        if let Ok(name) = ServiceName::parse(query) {
            if let Some(service) = store.service(&name)? {
                return current_of_service(store, config, &service);
            }
        }
    }
    let image = ImageRef::parse(query)?;
    if let Some(digest) = &image.digest {
        return Ok(by_digest(store, digest)?.map(|(s, i)| (s, digest.clone(), i)));
    }
    if let Some(tag) = &image.tag {
        // A tag names the digest its newest record gave it: a build, or `lineage tag`.
        let Some(digest) = crate::lifecycle::resolve_tag(store, &image.repository, tag)? else {
            return Ok(None);
        };
        return Ok(store
            .build(&digest)?
            .map(|b| (b.service, b.digest, b.image)));
    }
    match store.service_for_image(&image.repository)? {
        Some(name) => match store.service(&name)? {
            Some(service) => current_of_service(store, config, &service),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

fn by_digest(
    store: &dyn Store,
    digest: &Digest,
) -> Result<Option<(ServiceName, Repository)>, Error> {
    if let Some(b) = store.build(digest)? {
        return Ok(Some((b.service, b.image)));
    }
    Ok(store
        .deploys_of_digest(digest)?
        .into_iter()
        .next()
        .map(|d| (d.service, d.image)))
}

/// For a service, the digest that matters most: the one in the highest environment, else the
/// newest build.
fn current_of_service(
    store: &dyn Store,
    config: &Config,
    service: &Service,
) -> Result<Option<(ServiceName, Digest, Repository)>, Error> {
    let mut running: Vec<RunningImage> = store.running(None, Some(&service.name))?;
    running.sort_by_key(|r| config.env_rank(&r.deploy.env));
    if let Some(r) = running.first() {
        return Ok(Some((
            service.name.clone(),
            r.deploy.digest.clone(),
            r.deploy.image.clone(),
        )));
    }
    Ok(store
        .builds_of_service(&service.name, 1)?
        .into_iter()
        .next()
        .map(|b| (b.service, b.digest, b.image)))
}

/// Parses an `affected --base` argument: a digest, or a name with an optional tag.
/// The digest `input` names, among the ledger's digests in `roles`: itself when whole, the
/// one digest a prefix matches, `None` when none does, and an error listing the candidates
/// when several do (as git does for short commit ids).
pub fn resolve_digest(
    store: &dyn Store,
    input: &str,
    query: &DigestQuery,
    roles: &[DigestRole],
) -> Result<Option<Digest>, Error> {
    let prefix = match query {
        DigestQuery::Full(d) => return Ok(Some(d.clone())),
        DigestQuery::Prefix(p) => p,
    };
    let mut found: Vec<Digest> = store
        .digests_with_prefix(prefix, 3)?
        .into_iter()
        .filter(|(_, role)| roles.contains(role))
        .map(|(d, _)| d)
        .collect();
    found.dedup();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Invalid(
            format!(
                "digest prefix `{input}` is ambiguous: it matches {}",
                found
                    .iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "give more hex characters, or the whole digest".into(),
        )),
    }
}

/// A base query with its digest prefix resolved against the bases builds used. `Ok(None)`
/// when a prefix matches no base.
pub fn resolve_base_filter(store: &dyn Store, input: &str) -> Result<Option<BaseFilter>, Error> {
    if let Some(parsed) = DigestQuery::parse(input) {
        let parsed = parsed.map_err(|e| e.in_field("--base"))?;
        return Ok(
            resolve_digest(store, input, &parsed, &[DigestRole::Base])?.map(BaseFilter::Digest)
        );
    }
    base_filter(input).map(Some)
}

/// `affected --base INPUT`: the base named by a digest, a digest prefix or a name, resolved
/// against the ledger; a prefix no base has gives an empty report.
pub fn affected_by(
    store: &dyn Store,
    config: &Config,
    input: &str,
    view: &View,
) -> Result<AffectedReport, Error> {
    match resolve_base_filter(store, input)? {
        Some(filter) => affected_with(store, config, &filter, view),
        None => Ok(AffectedReport {
            schema: 1,
            base: input.to_string(),
            services: Vec::new(),
        }),
    }
}

/// Checks a base query's form without a ledger (a digest prefix passes; the ledger resolves
/// it).
pub fn check_base_query(input: &str) -> Result<(), Error> {
    match DigestQuery::parse(input) {
        Some(parsed) => parsed
            .map(drop)
            .map_err(|e| Error::Parse(e.in_field("--base"))),
        None => base_filter(input).map(drop),
    }
}

pub fn base_filter(input: &str) -> Result<BaseFilter, Error> {
    if input.starts_with("sha256:") || input.starts_with("sha512:") {
        return Ok(BaseFilter::Digest(
            Digest::parse(input).map_err(|e| e.in_field("--base"))?,
        ));
    }
    let image = ImageRef::parse(input).map_err(|e| e.in_field("--base"))?;
    Ok(match image.digest {
        Some(d) => BaseFilter::Digest(d),
        None => BaseFilter::Name {
            name: image.repository,
            tag: image.tag,
        },
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedService {
    pub service: String,
    pub owners: Owners,
    /// The bases that matched, as `name:tag@digest`.
    pub bases: Vec<String>,
    /// Recorded builds of the service on a matching base.
    pub builds: u64,
    pub latest_digest: String,
    pub latest_commit: Option<String>,
    /// Where a digest built on a matching base runs now, production first.
    pub running: Vec<Placement>,
    /// True when the base was used only in a build stage: it is not in the running image
    /// (its tools built the app, its files did not ship), so the risk is lower.
    #[serde(default)]
    pub build_stage_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedReport {
    pub schema: u32,
    pub base: String,
    pub services: Vec<AffectedService>,
}

/// The name a service goes by now: itself, or where renames took it (`service rename`).
fn current_name(store: &dyn Store, name: &ServiceName) -> Result<ServiceName, Error> {
    let mut name = name.clone();
    // A chain of renames is short; the bound only guards against a cycle.
    for _ in 0..16 {
        if store.service(&name)?.is_some() {
            break;
        }
        let renamed = store
            .facts("service_removed", Some(name.as_str()))?
            .into_iter()
            .rev()
            .find_map(|e| match e.record {
                lineage_model::Record::ServiceRemoved(r) => Some(r.renamed_to),
                _ => None,
            })
            .flatten();
        match renamed {
            Some(next) => name = next,
            None => break,
        }
    }
    Ok(name)
}

/// Whether `base` is one the filter names.
fn base_matches(filter: &BaseFilter, base: &BaseImage) -> bool {
    match filter {
        BaseFilter::Digest(d) => base.digest.as_ref() == Some(d),
        BaseFilter::Name { name, tag } => {
            base.name == *name && (tag.is_none() || base.tag.as_ref() == tag.as_ref())
        }
    }
}

/// Whether a build was built on a base the filter names, in any stage: what makes a running
/// digest affected for `affected --base`.
pub fn built_on(build: &BuildRecord, filter: &BaseFilter) -> bool {
    build.bases.iter().any(|base| base_matches(filter, base))
}

/// A base filter as `affected` reports it and `base_filter` reads it back: the digest, or
/// `name[:tag]`.
pub fn base_text(filter: &BaseFilter) -> String {
    match filter {
        BaseFilter::Digest(d) => d.to_string(),
        BaseFilter::Name { name, tag: Some(t) } => format!("{name}:{t}"),
        BaseFilter::Name { name, tag: None } => name.to_string(),
    }
}

/// Answers "who is built on this base, and where does it run now".
///
/// Only services that ever built on the base can run it, so what runs is looked up per such
/// service (at most services × environments rows), not by scanning every build on the base.
pub fn affected(
    store: &dyn Store,
    config: &Config,
    filter: &BaseFilter,
) -> Result<AffectedReport, Error> {
    affected_with(store, config, filter, &View::default())
}

/// [`affected`], with each placement's observed state.
pub fn affected_with(
    store: &dyn Store,
    config: &Config,
    filter: &BaseFilter,
    view: &View,
) -> Result<AffectedReport, Error> {
    let truth = Truth::load(store, None, None, view.now)?;
    let usage = store.base_usage(filter)?;
    // Every read below asks about all the services at once: on PostgreSQL each store call
    // is a round trip, and an answer must not cost one per service.
    let mut recorded_as: Vec<ServiceName> = usage.iter().map(|u| u.service.clone()).collect();
    recorded_as.sort();
    recorded_as.dedup();
    let registered: BTreeSet<ServiceName> = store
        .services_named(&recorded_as)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let images: Vec<Repository> = usage.iter().map(|u| u.latest_build.image.clone()).collect();
    let image_owner: BTreeMap<Repository, ServiceName> =
        store.services_for_images(&images)?.into_iter().collect();
    // Builds are filed under the service that recorded them. A service renamed since runs
    // under its new name, and a repository moved to another service runs there: their
    // usage is counted for the service that runs it now.
    struct Usage {
        bases: BTreeSet<String>,
        builds: u64,
        latest: BuildRecord,
        /// Listed even when it runs nothing (it built on the base itself).
        own: bool,
    }
    let mut by_service: BTreeMap<ServiceName, Usage> = BTreeMap::new();
    for u in usage {
        let bases: BTreeSet<String> = u
            .bases
            .into_iter()
            .map(|(name, tag, digest)| {
                BaseImage {
                    name,
                    tag,
                    digest,
                    pulled_at: None,
                    final_stage: false,
                }
                .display()
            })
            .collect();
        let primary = if registered.contains(&u.service) {
            u.service.clone()
        } else {
            current_name(store, &u.service)?
        };
        let mut targets = vec![(primary, true)];
        if let Some(owner) = image_owner.get(&u.latest_build.image) {
            if *owner != targets[0].0 {
                targets.push((owner.clone(), false));
            }
        }
        for (target, own) in targets {
            let entry = by_service.entry(target).or_insert_with(|| Usage {
                bases: BTreeSet::new(),
                builds: 0,
                latest: u.latest_build.clone(),
                own,
            });
            entry.bases.extend(bases.iter().cloned());
            entry.own |= own;
            if own {
                entry.builds += u.builds;
            }
            if u.latest_build.finished_at > entry.latest.finished_at {
                entry.latest = u.latest_build.clone();
            }
        }
    }
    let names: Vec<ServiceName> = by_service.keys().cloned().collect();
    let mut runs_of: BTreeMap<ServiceName, Vec<RunningImage>> = BTreeMap::new();
    for r in store.running_of(&names)? {
        if r.build.as_ref().is_some_and(|b| built_on(b, filter)) {
            runs_of.entry(r.deploy.service.clone()).or_default().push(r);
        }
    }
    let owners: BTreeMap<ServiceName, Service> = store
        .services_named(&names)?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut services: Vec<AffectedService> = Vec::new();
    let mut listed: Vec<ServiceName> = Vec::new();
    for (service, u) in by_service {
        let runs = runs_of.remove(&service).unwrap_or_default();
        // Whether any build that matters (running, or the newest) ships the base in its
        // final stage.
        let in_final = |b: &BuildRecord| {
            b.bases
                .iter()
                .any(|base| base.final_stage && base_matches(filter, base))
        };
        let build_stage_only = !(runs.iter().any(|r| r.build.as_ref().is_some_and(in_final))
            || (runs.is_empty() && in_final(&u.latest)));
        let mut running: Vec<Placement> = runs
            .iter()
            .map(|r| Placement::of(&r.deploy, r.build.as_ref()))
            .collect();
        if running.is_empty() && !u.own {
            continue;
        }
        view.apply(truth.as_ref(), &mut running);
        listed.push(service.clone());
        services.push(AffectedService {
            service: service.to_string(),
            owners: Owners::of(owners.get(&service)),
            bases: u.bases.into_iter().collect(),
            builds: u.builds,
            latest_digest: u.latest.digest.to_string(),
            latest_commit: u.latest.commit.as_ref().map(|c| c.to_string()),
            running,
            build_stage_only,
        });
    }
    mark_all(
        store,
        listed
            .iter()
            .zip(services.iter_mut())
            .flat_map(|(name, s)| s.running.iter_mut().map(move |p| (name, p))),
    )?;
    for s in &mut services {
        sort_placements(config, &mut s.running);
    }
    // Production first: services ranked by the highest environment they run in.
    services.sort_by_key(|s| {
        let best = s
            .running
            .iter()
            .filter_map(|p| EnvName::parse(&p.env).ok())
            .map(|e| config.env_rank(&e))
            .min()
            .unwrap_or(usize::MAX);
        // Within an environment, images that ship the base before those that only built
        // with it.
        (best, s.build_stage_only, s.service.clone())
    });
    Ok(AffectedReport {
        schema: 1,
        base: base_text(filter),
        services,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunningRow {
    pub service: String,
    #[serde(flatten)]
    pub placement: Placement,
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunningReport {
    pub schema: u32,
    pub env: Option<String>,
    pub rows: Vec<RunningRow>,
}

/// Answers "what runs where, since when, deployed and approved by whom".
pub fn running(
    store: &dyn Store,
    config: &Config,
    env: Option<&EnvName>,
) -> Result<RunningReport, Error> {
    running_with(store, config, env, &View::default())
}

/// [`running`], with each placement's observed state.
pub fn running_with(
    store: &dyn Store,
    config: &Config,
    env: Option<&EnvName>,
    view: &View,
) -> Result<RunningReport, Error> {
    let truth = Truth::load(store, env, None, view.now)?;
    // Each placement with its observed state; under `--observed-only`, only those seen.
    let running: Vec<(RunningImage, Placement)> = store
        .running(env, None)?
        .into_iter()
        .filter_map(|r| {
            let mut one = vec![Placement::of(&r.deploy, r.build.as_ref())];
            view.apply(truth.as_ref(), &mut one);
            one.pop().map(|p| (r, p))
        })
        .collect();
    let (running, mut placements): (Vec<RunningImage>, Vec<Placement>) =
        running.into_iter().unzip();
    // Marks and owners for the whole fleet in a few reads, not a few per row.
    mark_all(
        store,
        running
            .iter()
            .map(|r| &r.deploy.service)
            .zip(placements.iter_mut()),
    )?;
    let mut names: Vec<ServiceName> = running.iter().map(|r| r.deploy.service.clone()).collect();
    names.sort();
    names.dedup();
    let owners: BTreeMap<ServiceName, Option<String>> = store
        .services_named(&names)?
        .into_iter()
        .map(|s| (s.name, s.owner.map(|o| o.to_string())))
        .collect();
    let rows: Vec<RunningRow> = running
        .iter()
        .zip(placements)
        .map(|(r, placement)| RunningRow {
            service: r.deploy.service.to_string(),
            placement,
            owner: owners.get(&r.deploy.service).cloned().flatten(),
        })
        .collect();
    let mut rows = rows;
    rows.sort_by_key(|r| {
        (
            r.service.clone(),
            config.env_rank(&EnvName::parse(&r.placement.env).expect("stored names are valid")),
        )
    });
    Ok(RunningReport {
        schema: 1,
        env: env.map(|e| e.to_string()),
        rows,
    })
}
