//! The incident questions: `trace`, `affected` and `running`.
//!
//! Each returns a versioned report (`"schema": 1`). Reports never contain internal types:
//! their JSON form is documented in README.md and is the public format.

use lineage_model::{
    BaseImage, BuildRecord, DeployRecord, Digest, EnvName, ImageRef, Repository, Service,
    ServiceName, Tag, Timestamp,
};
use lineage_store::{BaseFilter, RunningImage, Store};
use serde::{Deserialize, Serialize};

use crate::{Config, Error};

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
    /// Environments where this digest runs now, production first.
    pub running: Vec<Placement>,
    /// Environments where the service runs another digest now.
    pub elsewhere: Vec<Placement>,
    /// Earlier builds of the service, newest first.
    pub previous: Vec<PreviousBuild>,
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
    let Some((service, digest, image)) = resolve_trace_target(store, config, query)? else {
        return Ok(None);
    };
    let build = store.build(&digest)?;
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
    Ok(Some(TraceReport {
        schema: 1,
        query: query.to_string(),
        service: service.to_string(),
        owners: Owners::of(service_record.as_ref()),
        image: image.to_string(),
        digest: digest.to_string(),
        build,
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
    if query.starts_with("sha256:") || query.starts_with("sha512:") {
        let digest = Digest::parse(query)?;
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
        return Ok(store
            .build_by_tag(&image.repository, tag)?
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedReport {
    pub schema: u32,
    pub base: String,
    pub services: Vec<AffectedService>,
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

/// Answers "who is built on this base, and where does it run now".
///
/// Only services that ever built on the base can run it, so what runs is looked up per such
/// service (at most services × environments rows), not by scanning every build on the base.
pub fn affected(
    store: &dyn Store,
    config: &Config,
    filter: &BaseFilter,
) -> Result<AffectedReport, Error> {
    let usage = store.base_usage(filter)?;
    let mut services: Vec<AffectedService> = Vec::new();
    for u in usage {
        let bases = u
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
        let running = store
            .running(None, Some(&u.service))?
            .into_iter()
            .filter(|r| {
                r.build
                    .as_ref()
                    .is_some_and(|b| b.bases.iter().any(|base| base_matches(filter, base)))
            })
            .map(|r| Placement::of(&r.deploy, r.build.as_ref()))
            .collect();
        services.push(AffectedService {
            service: u.service.to_string(),
            owners: Owners::of(store.service(&u.service)?.as_ref()),
            bases,
            builds: u.builds,
            latest_digest: u.latest_build.digest.to_string(),
            latest_commit: u.latest_build.commit.as_ref().map(|c| c.to_string()),
            running,
        });
    }
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
        (best, s.service.clone())
    });
    Ok(AffectedReport {
        schema: 1,
        base: match filter {
            BaseFilter::Digest(d) => d.to_string(),
            BaseFilter::Name { name, tag: Some(t) } => format!("{name}:{t}"),
            BaseFilter::Name { name, tag: None } => name.to_string(),
        },
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
    let mut rows = Vec::new();
    for r in store.running(env, None)? {
        let owner = store
            .service(&r.deploy.service)?
            .and_then(|s| s.owner)
            .map(|o| o.to_string());
        rows.push(RunningRow {
            service: r.deploy.service.to_string(),
            placement: Placement::of(&r.deploy, r.build.as_ref()),
            owner,
        });
    }
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
