//! Which projection rows a journal entry produces, computed once for both backends.
//!
//! [`rows`] turns one record, with its journal entry and recording time, into the rows it adds
//! to, changes in or removes from the query tables: named row structs, no SQL. Each backend
//! only writes them, with one `apply` (SQLite a statement per row, PostgreSQL one multi-row
//! statement per table), and the audit behind `log verify` replays the journal through the
//! same function ([`replay`]), so what a writer stores and what the audit expects cannot
//! disagree.
//!
//! A table that keeps one row per key says, on its row struct, how a new row merges with the
//! one already there (its *merge rule*). The backends' `ON CONFLICT` clauses apply that rule
//! against the stored row; [`Pending`] applies the same rule to the rows of one batch before
//! they are written, so that a multi-row statement never touches a key twice.
//!
//! `entry` is the journal row's `idx`: the ledger index plus one.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::mem::{discriminant, Discriminant};

use lineage_model::{
    BuildRecord, DeployRecord, Digest, EnvName, Identity, ObservationBatch, Record, Repository,
    ServiceChange, Timestamp,
};

use crate::api::StoreError;

/// The projection tables, in the order the audit compares them, and the column that points
/// at the journal entry a row came from (if any).
pub(crate) const TABLES: &[(&str, Option<&str>)] = &[
    ("services", Some("entry")),
    ("service_changes", Some("entry")),
    ("service_images", None),
    ("builds", Some("entry")),
    ("build_tags", Some("entry")),
    ("build_bases", None),
    ("base_usage", Some("latest_entry")),
    ("base_tag_digests", None),
    ("build_commits", None),
    ("service_latest_build", Some("entry")),
    ("service_repos", None),
    ("deploys", Some("entry")),
    ("current", Some("entry")),
    ("facts", Some("entry")),
    ("placement_ends", Some("entry")),
    ("observation_sources", Some("entry")),
    ("observation_envs", Some("entry")),
    ("observations", Some("entry")),
    ("sbom_imports", Some("entry")),
    ("sbom_packages", Some("entry")),
    ("sbom_findings", Some("entry")),
];

/// One column value, as both backends bind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Int(i64),
    Text(&'a str),
    Bool(bool),
}

impl<'a> Value<'a> {
    /// The value of an integer column (each column of a table has one type).
    pub(crate) fn int(self) -> i64 {
        match self {
            Value::Int(n) => n,
            other => unreachable!("an integer column holds {other:?}"),
        }
    }

    /// The value of a text column.
    pub(crate) fn text(self) -> &'a str {
        match self {
            Value::Text(t) => t,
            other => unreachable!("a text column holds {other:?}"),
        }
    }

    /// The value of a boolean column.
    pub(crate) fn bool(self) -> bool {
        match self {
            Value::Bool(b) => b,
            other => unreachable!("a boolean column holds {other:?}"),
        }
    }
}

/// `builds`: one row per recorded digest; a digest recorded twice is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildRow {
    pub digest: String,
    pub service: String,
    pub image: String,
    pub entry: i64,
}

/// `build_tags`: one row per tag a build was pushed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildTagRow {
    pub image: String,
    pub tag: String,
    pub entry: i64,
}

/// `build_bases`: one row per base image of a build; an unknown tag or digest is `''`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildBaseRow {
    pub digest: String,
    pub base_name: String,
    pub base_tag: String,
    pub base_digest: String,
    pub final_stage: bool,
}

/// `base_usage`, keyed by (service, base name, tag, digest). Merge: the build counts add
/// up and the larger entry stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUsageRow {
    pub service: String,
    pub base_name: String,
    pub base_tag: String,
    pub base_digest: String,
    pub builds: i64,
    pub latest_entry: i64,
}

/// `base_tag_digests`, keyed by (base name, tag, digest), for bases with both. Merge: the
/// earlier first use and the later last use stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseTagDigestRow {
    pub base_name: String,
    pub base_tag: String,
    pub base_digest: String,
    pub first_used: i64,
    pub last_used: i64,
}

/// `build_commits`, for builds with a source repository and a commit. A set: every column is
/// the key, and a row already there stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildCommitRow {
    pub source_repo: String,
    pub commit_id: String,
    pub service: String,
    pub digest: String,
}

/// `service_latest_build`, keyed by service: the CI job (`''` for none) of its newest build.
/// Merge: the row of the larger entry wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LatestBuildRow {
    pub service: String,
    pub ci_job: String,
    pub entry: i64,
}

/// `deploys`: one row per deploy; `at` in unix seconds, so ordering never depends on a
/// string format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeployRow {
    pub entry: i64,
    pub service: String,
    pub env: String,
    pub digest: String,
    pub at: i64,
}

/// `current`, keyed by (service, environment): what runs there now. Merge: the row with the
/// later or equal `at` wins, so a deploy recorded late does not displace a newer one; and a
/// row is not written at all while `placement_ends` holds a later end for its key, so a late
/// deploy does not bring an ended placement back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentRow {
    pub service: String,
    pub env: String,
    pub entry: i64,
    pub digest: String,
    pub at: i64,
}

/// `facts`: every fact, filed under its kind and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactRow {
    pub kind: String,
    pub key: String,
    pub entry: i64,
}

/// `placement_ends`, keyed by (service, environment): the newest end. Merge: the row with
/// the later or equal `at` wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlacementEndRow {
    pub service: String,
    pub env: String,
    pub entry: i64,
    pub at: i64,
}

/// `services`, keyed by name: the service's newest change. Merge: the new row replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceRow {
    pub name: String,
    pub entry: i64,
}

/// `service_changes`: every change of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceChangeRow {
    pub service: String,
    pub entry: i64,
}

/// `service_repos`: a registered service's source repository (written after the service's
/// old row is cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceRepoRow {
    pub service: String,
    pub source_repo: String,
}

/// `service_images`, keyed by image repository. Merge: the new row replaces, so an image
/// belongs to the service that listed it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceImageRow {
    pub image: String,
    pub service: String,
}

/// `observation_sources`, keyed by source: its newest batch. Merge: the new row replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObservationSourceRow {
    pub source: String,
    pub entry: i64,
    pub at: i64,
    pub complete: bool,
}

/// `observation_envs`, keyed by (source, environment): the newest batch that spoke for the
/// environment. Merge: the new row replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObservationEnvRow {
    pub source: String,
    pub env: String,
    pub entry: i64,
}

/// `observations`, keyed by (source, environment, image, digest). Merge: the later
/// `last_seen` stays; entry and workload are the new row's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObservationRow {
    pub source: String,
    pub env: String,
    pub image: String,
    pub digest: String,
    pub last_seen: i64,
    pub entry: i64,
    /// The first workload in sort order (`''` when unknown).
    pub workload: String,
}

/// `sbom_imports`, keyed by (digest, kind, format): the newest import. Merge: the row with the
/// larger (`scanned_at`, entry) wins: a later document, or at equal times the later entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportRow {
    pub digest: String,
    pub kind: String,
    pub format: String,
    pub entry: i64,
    pub scanned_at: i64,
    pub document: String,
    /// Every layer id the document names, space-separated.
    pub layers: String,
}

/// `sbom_packages`: one row per package of an import; `pkg` is its position in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageRow {
    pub entry: i64,
    pub pkg: i64,
    pub digest: String,
    pub name_key: String,
    pub purl: String,
    pub layer: String,
}

/// `sbom_findings`: one row per finding and id it is known by (`alias` 0 is its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FindingRow {
    pub entry: i64,
    pub finding: i64,
    pub alias: i64,
    pub vuln_id: String,
    pub id: String,
    pub pkg: i64,
    pub digest: String,
    pub severity: String,
    pub fixed: String,
}

/// One thing a record does to the projections: a row to insert or merge (its table's merge
/// rule decides), or rows to delete by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Row {
    Build(BuildRow),
    BuildTag(BuildTagRow),
    BuildBase(BuildBaseRow),
    BaseUsage(BaseUsageRow),
    BaseTagDigest(BaseTagDigestRow),
    BuildCommit(BuildCommitRow),
    LatestBuild(LatestBuildRow),
    Deploy(DeployRow),
    Current(CurrentRow),
    Fact(FactRow),
    /// Deletes the `current` row of (service, env) if it is from `at` or earlier.
    EndCurrent {
        service: String,
        env: String,
        at: i64,
    },
    PlacementEnd(PlacementEndRow),
    Service(ServiceRow),
    /// Deletes the `services` row of `service`.
    DropService {
        service: String,
    },
    ServiceChange(ServiceChangeRow),
    /// Deletes every `service_images` row of `service`.
    ClearServiceImages {
        service: String,
    },
    /// Deletes the `service_repos` row of `service`.
    ClearServiceRepo {
        service: String,
    },
    ServiceRepo(ServiceRepoRow),
    ServiceImage(ServiceImageRow),
    ObservationSource(ObservationSourceRow),
    ObservationEnv(ObservationEnvRow),
    Observation(ObservationRow),
    SbomImport(ImportRow),
    SbomPackage(PackageRow),
    SbomFinding(FindingRow),
}

impl Row {
    /// The row's values, in the order of its table's columns (for a delete: its key).
    pub(crate) fn columns(&self) -> Vec<Value<'_>> {
        use Value::{Bool, Int, Text};
        match self {
            Row::Build(r) => vec![
                Text(&r.digest),
                Text(&r.service),
                Text(&r.image),
                Int(r.entry),
            ],
            Row::BuildTag(r) => vec![Text(&r.image), Text(&r.tag), Int(r.entry)],
            Row::BuildBase(r) => vec![
                Text(&r.digest),
                Text(&r.base_name),
                Text(&r.base_tag),
                Text(&r.base_digest),
                Bool(r.final_stage),
            ],
            Row::BaseUsage(r) => vec![
                Text(&r.service),
                Text(&r.base_name),
                Text(&r.base_tag),
                Text(&r.base_digest),
                Int(r.builds),
                Int(r.latest_entry),
            ],
            Row::BaseTagDigest(r) => vec![
                Text(&r.base_name),
                Text(&r.base_tag),
                Text(&r.base_digest),
                Int(r.first_used),
                Int(r.last_used),
            ],
            Row::BuildCommit(r) => vec![
                Text(&r.source_repo),
                Text(&r.commit_id),
                Text(&r.service),
                Text(&r.digest),
            ],
            Row::LatestBuild(r) => vec![Text(&r.service), Text(&r.ci_job), Int(r.entry)],
            Row::Deploy(r) => vec![
                Int(r.entry),
                Text(&r.service),
                Text(&r.env),
                Text(&r.digest),
                Int(r.at),
            ],
            Row::Current(r) => vec![
                Text(&r.service),
                Text(&r.env),
                Int(r.entry),
                Text(&r.digest),
                Int(r.at),
            ],
            Row::Fact(r) => vec![Text(&r.kind), Text(&r.key), Int(r.entry)],
            Row::EndCurrent { service, env, at } => vec![Text(service), Text(env), Int(*at)],
            Row::PlacementEnd(r) => vec![Text(&r.service), Text(&r.env), Int(r.entry), Int(r.at)],
            Row::Service(r) => vec![Text(&r.name), Int(r.entry)],
            Row::ServiceChange(r) => vec![Text(&r.service), Int(r.entry)],
            Row::DropService { service }
            | Row::ClearServiceImages { service }
            | Row::ClearServiceRepo { service } => vec![Text(service)],
            Row::ServiceRepo(r) => vec![Text(&r.service), Text(&r.source_repo)],
            Row::ServiceImage(r) => vec![Text(&r.image), Text(&r.service)],
            Row::ObservationSource(r) => {
                vec![Text(&r.source), Int(r.entry), Int(r.at), Bool(r.complete)]
            }
            Row::ObservationEnv(r) => vec![Text(&r.source), Text(&r.env), Int(r.entry)],
            Row::Observation(r) => vec![
                Text(&r.source),
                Text(&r.env),
                Text(&r.image),
                Text(&r.digest),
                Int(r.last_seen),
                Int(r.entry),
                Text(&r.workload),
            ],
            Row::SbomImport(r) => vec![
                Text(&r.digest),
                Text(&r.kind),
                Text(&r.format),
                Int(r.entry),
                Int(r.scanned_at),
                Text(&r.document),
                Text(&r.layers),
            ],
            Row::SbomPackage(r) => vec![
                Int(r.entry),
                Int(r.pkg),
                Text(&r.digest),
                Text(&r.name_key),
                Text(&r.purl),
                Text(&r.layer),
            ],
            Row::SbomFinding(r) => vec![
                Int(r.entry),
                Int(r.finding),
                Int(r.alias),
                Text(&r.vuln_id),
                Text(&r.id),
                Int(r.pkg),
                Text(&r.digest),
                Text(&r.severity),
                Text(&r.fixed),
            ],
        }
    }

    /// Whether the row deletes: a record with one is written on its own, after everything
    /// before it and before everything after it.
    pub(crate) fn deletes(&self) -> bool {
        matches!(
            self,
            Row::EndCurrent { .. }
                | Row::DropService { .. }
                | Row::ClearServiceImages { .. }
                | Row::ClearServiceRepo { .. }
        )
    }

    /// The key of a row whose table keeps one row per key (its primary key), else `None`.
    fn key(&self) -> Option<Vec<&str>> {
        Some(match self {
            Row::BaseUsage(r) => vec![&r.service, &r.base_name, &r.base_tag, &r.base_digest],
            Row::BaseTagDigest(r) => vec![&r.base_name, &r.base_tag, &r.base_digest],
            Row::BuildCommit(r) => vec![&r.source_repo, &r.commit_id, &r.service, &r.digest],
            Row::LatestBuild(r) => vec![&r.service],
            Row::Current(r) => vec![&r.service, &r.env],
            Row::PlacementEnd(r) => vec![&r.service, &r.env],
            Row::Service(r) => vec![&r.name],
            Row::ServiceImage(r) => vec![&r.image],
            Row::ObservationSource(r) => vec![&r.source],
            Row::ObservationEnv(r) => vec![&r.source, &r.env],
            Row::Observation(r) => vec![&r.source, &r.env, &r.image, &r.digest],
            Row::SbomImport(r) => vec![&r.digest, &r.kind, &r.format],
            _ => return None,
        })
    }

    /// Merges `later`, a row of the same table and key from the same or a later record, into
    /// this one by the table's merge rule.
    fn absorb(&mut self, later: Row) {
        match (self, later) {
            (Row::BaseUsage(a), Row::BaseUsage(b)) => {
                a.builds += b.builds;
                a.latest_entry = a.latest_entry.max(b.latest_entry);
            }
            (Row::BaseTagDigest(a), Row::BaseTagDigest(b)) => {
                a.first_used = a.first_used.min(b.first_used);
                a.last_used = a.last_used.max(b.last_used);
            }
            (Row::BuildCommit(_), Row::BuildCommit(_)) => {}
            (Row::LatestBuild(a), Row::LatestBuild(b)) => {
                if b.entry > a.entry {
                    *a = b;
                }
            }
            (Row::Current(a), Row::Current(b)) => {
                if b.at >= a.at {
                    *a = b;
                }
            }
            (Row::PlacementEnd(a), Row::PlacementEnd(b)) => {
                if b.at >= a.at {
                    *a = b;
                }
            }
            (Row::Observation(a), Row::Observation(b)) => {
                let last_seen = a.last_seen.max(b.last_seen);
                *a = b;
                a.last_seen = last_seen;
            }
            (Row::SbomImport(a), Row::SbomImport(b)) => {
                if (b.scanned_at, b.entry) > (a.scanned_at, a.entry) {
                    *a = b;
                }
            }
            (Row::Service(a), Row::Service(b)) => *a = b,
            (Row::ServiceImage(a), Row::ServiceImage(b)) => *a = b,
            (Row::ObservationSource(a), Row::ObservationSource(b)) => *a = b,
            (Row::ObservationEnv(a), Row::ObservationEnv(b)) => *a = b,
            (a, b) => unreachable!("rows of different tables or without a key: {a:?}, {b:?}"),
        }
    }
}

/// A record that is not a fact was passed where only facts go.
pub(crate) fn not_a_fact(record: &Record) -> StoreError {
    StoreError::Backend(format!(
        "a {} is recorded through its own method, not as a fact",
        record.kind()
    ))
}

/// Who the journal names as the author of `record`: a service change names its own author,
/// any other record the writer's identity.
pub(crate) fn author<'a>(record: &'a Record, by: Option<&'a Identity>) -> Option<&'a Identity> {
    match record {
        Record::Service(change) => Some(&change.by),
        _ => by,
    }
}

/// The rows `record`, stored at journal `entry` and recorded at `recorded_at`, projects to,
/// in the order a backend that writes row by row applies them. A record of a kind that is
/// neither a build, a deploy, a service change nor a fact is an error.
pub(crate) fn rows(
    record: &Record,
    entry: i64,
    recorded_at: Timestamp,
) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::new();
    match record {
        Record::Build(build) => {
            build_rows(build, entry, &mut out);
            build_lookups(build, entry, recorded_at, &mut out);
        }
        Record::Deploy(deploy) => deploy_rows(deploy, entry, &mut out),
        Record::Service(change) => service_rows(change, entry, &mut out),
        fact => {
            let key = fact.fact_key().ok_or_else(|| not_a_fact(fact))?;
            out.push(Row::Fact(FactRow {
                kind: fact.kind().to_string(),
                key,
                entry,
            }));
            match fact {
                Record::DeployEnd(end) => {
                    let (service, env, at) =
                        (end.service.to_string(), end.env.to_string(), end.at.unix());
                    out.push(Row::EndCurrent {
                        service: service.clone(),
                        env: env.clone(),
                        at,
                    });
                    out.push(Row::PlacementEnd(PlacementEndRow {
                        service,
                        env,
                        entry,
                        at,
                    }));
                }
                Record::ServiceRemoved(removal) => {
                    let service = removal.service.to_string();
                    out.push(Row::DropService {
                        service: service.clone(),
                    });
                    out.push(Row::ClearServiceImages {
                        service: service.clone(),
                    });
                    out.push(Row::ClearServiceRepo { service });
                }
                Record::Observation(batch) => observation_rows(batch, entry, &mut out),
                Record::Sbom(import) => crate::sbom::rows(import, entry, recorded_at, &mut out),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// What journal row `entry`, as stored (its body and recording time), projects to when the
/// audit replays it: `None` for a body that does not parse (the log's leaf check reports it)
/// or a record that projects nothing. A recording time that does not parse counts as the
/// epoch, so the rows that depend on it differ and are reported.
pub(crate) fn replay(entry: i64, body: &str, recorded_at: Option<&str>) -> Option<Vec<Row>> {
    let record: Record = serde_json::from_str(body).ok()?;
    let at = recorded_at
        .and_then(|a| Timestamp::parse(a).ok())
        .unwrap_or(Timestamp::from_unix(0));
    rows(&record, entry, at).ok()
}

fn opt_str<T: ToString>(v: Option<&T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn build_rows(build: &BuildRecord, entry: i64, out: &mut Vec<Row>) {
    let (digest, service, image) = (
        build.digest.to_string(),
        build.service.to_string(),
        build.image.to_string(),
    );
    // First: a backend that meets a digest twice fails here, before anything else is written.
    out.push(Row::Build(BuildRow {
        digest: digest.clone(),
        service: service.clone(),
        image: image.clone(),
        entry,
    }));
    for tag in &build.tags {
        out.push(Row::BuildTag(BuildTagRow {
            image: image.clone(),
            tag: tag.to_string(),
            entry,
        }));
    }
    for base in &build.bases {
        let (base_name, base_tag, base_digest) = (
            base.name.to_string(),
            opt_str(base.tag.as_ref()),
            opt_str(base.digest.as_ref()),
        );
        out.push(Row::BuildBase(BuildBaseRow {
            digest: digest.clone(),
            base_name: base_name.clone(),
            base_tag: base_tag.clone(),
            base_digest: base_digest.clone(),
            final_stage: base.final_stage,
        }));
        out.push(Row::BaseUsage(BaseUsageRow {
            service: service.clone(),
            base_name,
            base_tag,
            base_digest,
            builds: 1,
            latest_entry: entry,
        }));
    }
}

/// The CI job of `build` as the lookup tables keep it: `''` when it named none.
fn ci_job(build: &BuildRecord) -> &str {
    build
        .ci
        .as_ref()
        .and_then(|c| c.job.as_deref())
        .unwrap_or_default()
}

/// The gates' lookup rows of `build`: its source commit, its service's newest CI job, and
/// when it used each tagged, pinned base. Also what a migration fills for older builds.
pub(crate) fn build_lookups(
    build: &BuildRecord,
    entry: i64,
    recorded_at: Timestamp,
    out: &mut Vec<Row>,
) {
    if let (Some(repo), Some(commit)) = (&build.source_repo, &build.commit) {
        out.push(Row::BuildCommit(BuildCommitRow {
            source_repo: repo.to_string(),
            commit_id: commit.to_string(),
            service: build.service.to_string(),
            digest: build.digest.to_string(),
        }));
    }
    out.push(Row::LatestBuild(LatestBuildRow {
        service: build.service.to_string(),
        ci_job: ci_job(build).to_string(),
        entry,
    }));
    for base in &build.bases {
        let (Some(tag), Some(digest)) = (&base.tag, &base.digest) else {
            continue;
        };
        let at = build.base_seen_at(base, recorded_at).unix();
        out.push(Row::BaseTagDigest(BaseTagDigestRow {
            base_name: base.name.to_string(),
            base_tag: tag.to_string(),
            base_digest: digest.to_string(),
            first_used: at,
            last_used: at,
        }));
    }
}

fn deploy_rows(deploy: &DeployRecord, entry: i64, out: &mut Vec<Row>) {
    let (service, env, digest, at) = (
        deploy.service.to_string(),
        deploy.env.to_string(),
        deploy.digest.to_string(),
        deploy.at.unix(),
    );
    out.push(Row::Deploy(DeployRow {
        entry,
        service: service.clone(),
        env: env.clone(),
        digest: digest.clone(),
        at,
    }));
    out.push(Row::Current(CurrentRow {
        service,
        env,
        entry,
        digest,
        at,
    }));
}

/// A service change becomes the service's newest and replaces its image and repository rows.
fn service_rows(change: &ServiceChange, entry: i64, out: &mut Vec<Row>) {
    let name = change.service.name.to_string();
    out.push(Row::Service(ServiceRow {
        name: name.clone(),
        entry,
    }));
    out.push(Row::ServiceChange(ServiceChangeRow {
        service: name.clone(),
        entry,
    }));
    out.push(Row::ClearServiceImages {
        service: name.clone(),
    });
    out.push(Row::ClearServiceRepo {
        service: name.clone(),
    });
    if let Some(repo) = &change.service.source_repo {
        out.push(Row::ServiceRepo(ServiceRepoRow {
            service: name.clone(),
            source_repo: repo.to_string(),
        }));
    }
    // A repeated image is one row.
    let mut images: Vec<String> = change
        .service
        .images
        .iter()
        .map(|i| i.to_string())
        .collect();
    images.sort();
    images.dedup();
    for image in images {
        out.push(Row::ServiceImage(ServiceImageRow {
            image,
            service: name.clone(),
        }));
    }
}

/// A batch becomes its source's newest, speaks for its environments, and each (environment,
/// image, digest) it holds is seen again: at its newest time in the batch, as the first
/// workload in sort order.
fn observation_rows(batch: &ObservationBatch, entry: i64, out: &mut Vec<Row>) {
    let source = batch.source.clone();
    out.push(Row::ObservationSource(ObservationSourceRow {
        source: source.clone(),
        entry,
        at: batch.at.unix(),
        complete: batch.complete,
    }));
    let mut envs: Vec<&EnvName> = batch.envs.iter().collect();
    envs.sort();
    envs.dedup();
    for env in envs {
        out.push(Row::ObservationEnv(ObservationEnvRow {
            source: source.clone(),
            env: env.to_string(),
            entry,
        }));
    }
    // Aggregated by reference first: a batch holds many containers of few digests.
    let mut seen: BTreeMap<(&EnvName, &Repository, &Digest), (i64, &str)> = BTreeMap::new();
    for item in &batch.items {
        let workload = item.workload.as_deref().unwrap_or_default();
        let at = item.seen_at.unix();
        seen.entry((&item.env, &item.image, &item.digest))
            .and_modify(|(s, w)| {
                *s = (*s).max(at);
                if workload < *w {
                    *w = workload;
                }
            })
            .or_insert((at, workload));
    }
    for ((env, image, digest), (last_seen, workload)) in seen {
        out.push(Row::Observation(ObservationRow {
            source: source.clone(),
            env: env.to_string(),
            image: image.to_string(),
            digest: digest.to_string(),
            last_seen,
            entry,
            workload: workload.to_string(),
        }));
    }
}

/// Rows of several records gathered for one multi-row write per table: a keyed row merges
/// into the batch's row of its key by its table's merge rule, which gives what writing them
/// one by one would.
///
/// Only records without deletes may share a batch (see [`Row::deletes`]); the one projection
/// that reads another table (`current` reads `placement_ends`) reads one that only such
/// records write.
#[derive(Default)]
pub(crate) struct Pending {
    /// Per table, in the order its first row came, its rows.
    tables: Vec<(Discriminant<Row>, Vec<Row>)>,
    /// Where the row of each key is: (table, key) → (table position, row position).
    keyed: HashMap<(Discriminant<Row>, Vec<String>), (usize, usize)>,
}

impl Pending {
    pub(crate) fn add(&mut self, row: Row) {
        let table = discriminant(&row);
        let t = match self.tables.iter().position(|(d, _)| *d == table) {
            Some(t) => t,
            None => {
                self.tables.push((table, Vec::new()));
                self.tables.len() - 1
            }
        };
        let Some(key) = row.key() else {
            self.tables[t].1.push(row);
            return;
        };
        let key = key.into_iter().map(str::to_string).collect();
        match self.keyed.entry((table, key)) {
            Slot::Occupied(o) => {
                let (t, r) = *o.get();
                self.tables[t].1[r].absorb(row);
            }
            Slot::Vacant(v) => {
                v.insert((t, self.tables[t].1.len()));
                self.tables[t].1.push(row);
            }
        }
    }

    /// Takes the gathered rows, one non-empty list per table, tables in the order their
    /// first row came (so a record written alone keeps its rows' order: deletes before the
    /// rows that replace them).
    pub(crate) fn take(&mut self) -> Vec<Vec<Row>> {
        self.keyed.clear();
        std::mem::take(&mut self.tables)
            .into_iter()
            .map(|(_, rows)| rows)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(service: &str, entry: i64, at: i64) -> Row {
        Row::Current(CurrentRow {
            service: service.into(),
            env: "prod".into(),
            entry,
            digest: format!("d{entry}"),
            at,
        })
    }

    #[test]
    fn a_batch_merges_keyed_rows_by_their_tables_rule() {
        let mut p = Pending::default();
        p.add(current("api", 1, 10));
        p.add(current("web", 2, 10));
        // Recorded later but dated earlier: the newer deploy stays.
        p.add(current("api", 3, 5));
        // Dated the same: the later entry wins.
        p.add(current("web", 4, 10));
        for (entry, usage) in [(5, 1), (6, 1)] {
            p.add(Row::BaseUsage(BaseUsageRow {
                service: "api".into(),
                base_name: "node".into(),
                base_tag: "22".into(),
                base_digest: String::new(),
                builds: usage,
                latest_entry: entry,
            }));
        }
        p.add(Row::Fact(FactRow {
            kind: "retire".into(),
            key: "k".into(),
            entry: 7,
        }));
        p.add(Row::Fact(FactRow {
            kind: "retire".into(),
            key: "k".into(),
            entry: 8,
        }));
        let tables = p.take();
        assert!(p.take().is_empty());
        assert_eq!(tables.len(), 3);
        assert_eq!(
            tables[0],
            vec![current("api", 1, 10), current("web", 4, 10)]
        );
        assert!(
            matches!(&tables[1][..], [Row::BaseUsage(u)] if u.builds == 2 && u.latest_entry == 6)
        );
        // Rows without a key are never merged.
        assert_eq!(tables[2].len(), 2);
    }

    #[test]
    fn only_records_that_delete_are_written_alone() {
        let end = Record::DeployEnd(lineage_model::PlacementEnd {
            service: lineage_model::ServiceName::parse("api").unwrap(),
            env: EnvName::parse("prod").unwrap(),
            digest: None,
            reason: None,
            by: Identity::parse("maya@acme.dev").unwrap(),
            at: Timestamp::from_unix(100),
        });
        let rows = rows(&end, 3, Timestamp::from_unix(200)).unwrap();
        assert!(rows.iter().any(Row::deletes));
        assert!(
            matches!(&rows[..], [Row::Fact(_), Row::EndCurrent { at: 100, .. }, Row::PlacementEnd(p)] if p.entry == 3)
        );
    }
}
