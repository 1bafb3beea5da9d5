//! The backend-neutral store API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lineage_log::merkle::Hash;

pub use crate::postgres::PgLocation;

use lineage_model::{
    BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Purl, Record, Repository,
    Service, ServiceChange, ServiceName, SourceRepo, Tag, Timestamp,
};

/// Where a ledger lives.
///
/// `Debug` and `Display` never show a database password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by any number of Lineage processes.
    Postgres(PgLocation),
}

impl StoreLocation {
    /// Parses `postgres://…` / `postgresql://…` (a PostgreSQL database), `sqlite:PATH` or a
    /// plain path (an SQLite file).
    pub fn parse(input: &str) -> Result<StoreLocation, StoreError> {
        if input.starts_with("postgres://") || input.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(PgLocation::parse(input)?));
        }
        if let Some((scheme, _)) = input.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(StoreError::BadLocation {
                    input: crate::postgres::redact(input),
                    problem: format!("`{scheme}://` is not a ledger backend Lineage knows"),
                });
            }
        }
        let path = input.strip_prefix("sqlite:").unwrap_or(input);
        Ok(StoreLocation::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "{}", p.display()),
            StoreLocation::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no ledger at `{0}`")]
    Missing(String),
    #[error("`{path}` is not a Lineage ledger ({detail})")]
    NotLineage { path: String, detail: String },
    #[error("`{path}` has ledger schema version {found}, newer than this lineage understands ({supported})")]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("the ledger holds a record that does not parse (entry {index}): {detail}")]
    Corrupt { index: u64, detail: String },
    #[error("the ledger's log does not match its journal: {0}")]
    LogMismatch(String),
    #[error("ledger backend error: {0}")]
    Backend(String),
    #[error("the target ledger is not a prefix of the source, so nothing was copied: {0}")]
    TargetDiverges(String),
    #[error("`{input}` is not a ledger location: {problem}")]
    BadLocation { input: String, problem: String },
    /// The database server could not be reached or refused the connection. Retrying later
    /// may succeed; nothing was written.
    #[error("the ledger database `{location}` is unavailable (server {server}): {detail}")]
    Unavailable {
        location: String,
        server: String,
        detail: String,
    },
    /// The write is dated before the ledger's last entry, by more than
    /// [`CLOCK_SKEW_TOLERANCE_SECS`]. Recorded times never go backwards, because trust judges
    /// when a signature was made by its entry's time; nothing was written.
    #[error("this write is dated `{given}`, before the ledger's last entry (recorded at `{last}`); recorded times never go backwards, so nothing was written")]
    RecordedBeforeLast { given: Timestamp, last: Timestamp },
    /// The file system under an SQLite ledger failed (full, read-only, I/O error). Nothing
    /// was written; on a full disk, reads still work.
    #[error("the ledger's storage failed: {detail}")]
    Io { detail: String },
    #[error("cannot create the ledger directory `{path}`: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

/// How far (in seconds) a write may be dated before the ledger's last entry and still be
/// accepted, recorded at the last entry's time instead of its own.
///
/// Server replicas and CI runners share one ledger with their own clocks, and "now" is taken
/// in whole seconds, so a writer whose clock is a moment behind another's would otherwise be
/// refused at random. Recording it at the last entry's time keeps the journal's times in
/// order; it gives a writer nothing it could not get anyway, since writing at the last entry's
/// exact time is always allowed. Anything further behind is a wrong clock or a stale
/// `LINEAGE_NOW`, and is refused.
pub const CLOCK_SKEW_TOLERANCE_SECS: i64 = 2;

/// The time a write is recorded at, given the ledger's last entry's time: its own, or the
/// last entry's when it is behind by at most [`CLOCK_SKEW_TOLERANCE_SECS`]; further behind is
/// refused. Both backends call this inside their write transaction, under the writer lock.
pub(crate) fn recorded_time(
    given: Timestamp,
    last: Option<Timestamp>,
) -> Result<Timestamp, StoreError> {
    match last {
        Some(last) if given < last => {
            if given.plus(time::Duration::seconds(CLOCK_SKEW_TOLERANCE_SECS)) >= last {
                Ok(last)
            } else {
                Err(StoreError::RecordedBeforeLast { given, last })
            }
        }
        _ => Ok(given),
    }
}

/// One journal entry: a record and where it sits in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 0-based position; also the record's log leaf index.
    pub index: u64,
    pub record: Record,
    /// The exact canonical bytes stored, which the log leaf hash covers.
    pub body: String,
    pub recorded_at: Timestamp,
    pub recorded_by: Option<Identity>,
}

/// A journal row read back: its body parsed, its recording time and author checked.
pub(crate) fn parse_entry(
    index: u64,
    body: String,
    recorded_at: String,
    recorded_by: Option<String>,
) -> Result<Entry, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { index, detail };
    let record: Record = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
    let recorded_at = Timestamp::parse(&recorded_at).map_err(|e| corrupt(e.to_string()))?;
    let recorded_by = recorded_by
        .map(|s| Identity::parse(&s))
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Entry {
        index,
        record,
        body,
        recorded_at,
        recorded_by,
    })
}

/// What happened when a build was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    Recorded {
        index: u64,
    },
    /// An identical record for this digest exists; nothing was written.
    AlreadyRecorded {
        index: u64,
    },
    /// A different record for this digest exists; nothing was written.
    Conflict {
        existing: Box<BuildRecord>,
    },
}

/// What recording `build` comes to when the ledger already holds `existing` for its digest,
/// at `index`: nothing is written either way, and two different records are a conflict.
pub(crate) fn outcome_of_recorded(
    build: &BuildRecord,
    index: u64,
    existing: Record,
) -> Result<BuildOutcome, StoreError> {
    match existing {
        Record::Build(old) if old == *build => Ok(BuildOutcome::AlreadyRecorded { index }),
        Record::Build(old) => Ok(BuildOutcome::Conflict {
            existing: Box::new(old),
        }),
        other => Err(StoreError::Corrupt {
            index,
            detail: format!("expected a build, found a {}", other.kind()),
        }),
    }
}

/// Which base images a query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseFilter {
    Digest(Digest),
    Name { name: Repository, tag: Option<Tag> },
}

/// How one service used the matching base images, aggregated over its builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUsage {
    pub service: ServiceName,
    /// Each matching base the service was built on: name, tag and digest where known.
    pub bases: Vec<(Repository, Option<Tag>, Option<Digest>)>,
    /// How many recorded builds of the service used a matching base.
    pub builds: u64,
    /// The newest of those builds.
    pub latest_build: BuildRecord,
}

/// One digest of a base tag as recorded builds used it (any stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseTagUse {
    pub digest: Digest,
    /// The earliest and latest time a build used it (`BuildRecord::base_seen_at`).
    pub first_used: Timestamp,
    pub last_used: Timestamp,
}

/// A digest running in an environment now, with the deploy that put it there and its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningImage {
    pub deploy: DeployRecord,
    pub build: Option<BuildRecord>,
}

/// What runs now in one (service, environment), as the `current` projection holds it: cheap
/// to read for a whole fleet, without the deploy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRow {
    pub service: ServiceName,
    pub env: EnvName,
    pub digest: Digest,
    /// When the deploy that put it there happened.
    pub since: Timestamp,
    /// The ledger index of that deploy.
    pub index: u64,
}

/// One (source, environment, image, digest) a runtime source observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRow {
    pub source: String,
    pub env: EnvName,
    pub image: Repository,
    pub digest: Digest,
    /// The newest time it was seen.
    pub last_seen: Timestamp,
    /// The ledger index of the newest batch that held it.
    pub index: u64,
    /// True when that batch is its source's newest complete one, or the source's batches are
    /// not complete (admission): as far as the source knows, it runs now.
    pub current: bool,
    /// One workload it ran as (`Deployment/api`), when known.
    pub workload: Option<String>,
    /// The service that lists the image repository, if any.
    pub owner: Option<ServiceName>,
    /// The service the digest's build record names, if there is one.
    pub built_for: Option<ServiceName>,
}

/// A runtime source and its newest batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub source: String,
    /// The ledger index of its newest batch.
    pub index: u64,
    pub at: Timestamp,
    pub complete: bool,
    /// The environments its newest batch speaks for.
    pub envs: Vec<EnvName>,
}

/// An observed row as a backend reads it, before parsing.
pub(crate) struct RawObserved {
    pub source: String,
    pub env: String,
    pub image: String,
    pub digest: String,
    pub last_seen: i64,
    pub entry: i64,
    pub current: bool,
    pub workload: String,
    pub owner: Option<String>,
    pub built_for: Option<String>,
}

impl RawObserved {
    pub(crate) fn parse(self) -> Result<ObservedRow, StoreError> {
        let index = self.entry as u64 - 1;
        let corrupt = |e: lineage_model::ParseError| StoreError::Corrupt {
            index,
            detail: e.to_string(),
        };
        let name = |n: Option<String>| {
            n.map(|n| ServiceName::parse(&n).map_err(corrupt))
                .transpose()
        };
        Ok(ObservedRow {
            env: EnvName::parse(&self.env).map_err(corrupt)?,
            image: Repository::parse(&self.image).map_err(corrupt)?,
            digest: Digest::parse(&self.digest).map_err(corrupt)?,
            last_seen: Timestamp::from_unix(self.last_seen),
            index,
            current: self.current,
            workload: (!self.workload.is_empty()).then_some(self.workload),
            owner: name(self.owner)?,
            built_for: name(self.built_for)?,
            source: self.source,
        })
    }
}

pub(crate) fn source_state(
    source: String,
    entry: i64,
    at: i64,
    complete: bool,
    envs: &str,
) -> Result<SourceState, StoreError> {
    let index = entry as u64 - 1;
    let mut envs = envs
        .split(' ')
        .filter(|e| !e.is_empty())
        .map(|e| {
            EnvName::parse(e).map_err(|e| StoreError::Corrupt {
                index,
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    envs.sort();
    Ok(SourceState {
        source,
        index,
        at: Timestamp::from_unix(at),
        complete,
        envs,
    })
}

/// The log's current state: how many leaves it has and its RFC 9162 §2.1.1 root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    pub size: u64,
    pub root: Hash,
}

/// A signed checkpoint as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it commits to.
    pub size: u64,
    /// The C2SP signed note, exactly as signed.
    pub text: String,
    pub created: Timestamp,
}

/// A raw journal entry, unparsed: what the log leaf hash covers. Audits read these rather
/// than [`Entry`], because a tampered body may no longer parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The position the backend stores the row at (0-based). In an untampered journal it is
    /// the row's position in the sequence; a gap means a row was deleted.
    pub index: u64,
    pub kind: String,
    pub body: String,
}

/// A projection row that does not match what the journal says it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionMismatch {
    /// The projection table (`builds`, `deploys`, `current`, ...).
    pub table: String,
    /// The row as stored, or `None` when an expected row is missing.
    pub stored: Option<String>,
    /// The row the journal implies, or `None` when a stored row has no source.
    pub expected: Option<String>,
    /// The journal entry (leaf index) the row points at or comes from, when known.
    pub entry: Option<u64>,
}

/// Which packages or findings of imported SBOMs and scans a query is about. Only the newest
/// import of each kind and format of a digest is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbomQuery {
    /// Packages whose name key ([`lineage_model::name_key`]) is this, in digests that run now.
    RunningName(String),
    /// Findings with this id or alias (compared in uppercase), in digests that run now.
    RunningId(String),
    /// Everything of one digest, running or not.
    Digest(Digest),
}

/// One package of an imported document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomPackageRow {
    /// The import's ledger index.
    pub entry: u64,
    /// The package's position in the import.
    pub pkg: u32,
    pub digest: Digest,
    pub purl: Purl,
    /// The blob digest and/or diff id of the layer that holds it; empty when not known.
    pub layer: Vec<Digest>,
}

/// A finding of an imported scan, with its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomFindingRow {
    pub package: SbomPackageRow,
    /// The finding's own id, as the scanner wrote it.
    pub id: String,
    pub severity: String,
    pub fixed: Option<String>,
}

/// A package or finding row, and where its digest runs now (for the running queries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomHit<T> {
    pub running: Option<(ServiceName, EnvName)>,
    pub row: T,
}

/// The newest import of one kind and format of a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomImportRow {
    pub entry: u64,
    pub digest: Digest,
    pub kind: String,
    pub format: String,
    /// The document's own time, or its recording time when it gives none or a later one.
    pub scanned_at: Timestamp,
    pub document: Digest,
    /// Every layer id the document names.
    pub layers: Vec<Digest>,
}

/// A digest running now and its newest import of a kind (`None`: never imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningInventory {
    pub service: ServiceName,
    pub env: EnvName,
    pub digest: Digest,
    pub newest: Option<Timestamp>,
}

/// Where a digest appears in the ledger, for resolving a prefix the user typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DigestRole {
    /// The digest of a recorded build.
    Build,
    /// A digest deployed somewhere (with or without a build record).
    Deploy,
    /// A base image some build was built on.
    Base,
}

/// The lowest and the highest CI job of a set of services (`None`: a build that named none).
pub type JobRange = (Option<String>, Option<String>);

/// The lowest and highest CI job of services other than `excluding`, from the two lowest and
/// the two highest `(service, ci_job)` rows of `service_latest_build` (`''`: none named).
pub(crate) fn job_range(ends: Vec<Vec<(String, String)>>, excluding: &str) -> Option<JobRange> {
    let pick = |rows: &Vec<(String, String)>| {
        rows.iter()
            .find(|(service, _)| service != excluding)
            .map(|(_, job)| (!job.is_empty()).then(|| job.clone()))
    };
    Some((pick(ends.first()?)?, pick(ends.get(1)?)?))
}

/// Reads `service` rows, sorted.
pub(crate) fn service_names(rows: Vec<String>) -> Result<Vec<ServiceName>, StoreError> {
    let mut out = rows
        .iter()
        .map(|s| {
            ServiceName::parse(s).map_err(|e| StoreError::Corrupt {
                index: 0,
                detail: format!("build_commits: {e}"),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

/// Reads `(name, tag)` rows of `base_tag_digests`, sorted.
pub(crate) fn base_tags(rows: Vec<(String, String)>) -> Result<Vec<(Repository, Tag)>, StoreError> {
    let corrupt = |e: lineage_model::ParseError| StoreError::Corrupt {
        index: 0,
        detail: format!("base_tag_digests: {e}"),
    };
    let mut out = rows
        .into_iter()
        .map(|(name, tag)| {
            Ok((
                Repository::parse(&name).map_err(corrupt)?,
                Tag::parse(&tag).map_err(corrupt)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads `(digest, first_used, last_used)` rows of `base_tag_digests`, oldest first.
pub(crate) fn base_tag_uses(rows: Vec<(String, i64, i64)>) -> Result<Vec<BaseTagUse>, StoreError> {
    let mut out = rows
        .into_iter()
        .map(|(digest, first, last)| {
            Ok(BaseTagUse {
                digest: Digest::parse(&digest).map_err(|e| StoreError::Corrupt {
                    index: 0,
                    detail: format!("base_tag_digests: {e}"),
                })?,
                first_used: Timestamp::from_unix(first),
                last_used: Timestamp::from_unix(last),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort_by(|a, b| (a.first_used, &a.digest).cmp(&(b.first_used, &b.digest)));
    Ok(out)
}

/// Reads `(digest, role)` rows whose digest is well-formed; a malformed one would be a
/// tampered projection, which `log verify` reports.
pub(crate) fn digest_roles(rows: Vec<(String, DigestRole)>) -> Vec<(Digest, DigestRole)> {
    let mut out: Vec<(Digest, DigestRole)> = rows
        .into_iter()
        .filter_map(|(d, role)| Digest::parse(&d).ok().map(|d| (d, role)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The ledger. Every write appends journal entries and updates projections atomically, and is
/// durable when the call returns.
pub trait Store: Send {
    /// Appends a service change (add, owner change, import row).
    fn record_service_change(
        &mut self,
        change: &ServiceChange,
        recorded_at: Timestamp,
    ) -> Result<u64, StoreError> {
        let record = Record::Service(change.clone());
        Ok(self.append(&[record], recorded_at, None)?[0])
    }

    /// Records builds in one transaction. Each outcome is per build, in order.
    fn record_builds(
        &mut self,
        builds: &[BuildRecord],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<BuildOutcome>, StoreError>;

    /// Records deploys in one transaction, returning their indexes.
    fn record_deploys(
        &mut self,
        deploys: &[DeployRecord],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        let records: Vec<Record> = deploys.iter().cloned().map(Record::Deploy).collect();
        self.append(&records, recorded_at, recorded_by)
    }

    fn service(&self, name: &ServiceName) -> Result<Option<Service>, StoreError>;
    fn services(&self) -> Result<Vec<Service>, StoreError>;
    /// Every change to the service, oldest first.
    fn service_history(&self, name: &ServiceName) -> Result<Vec<ServiceChange>, StoreError>;
    fn service_for_image(&self, image: &Repository) -> Result<Option<ServiceName>, StoreError>;

    fn build(&self, digest: &Digest) -> Result<Option<BuildRecord>, StoreError>;
    /// The service's builds, newest first, at most `limit`.
    fn builds_of_service(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, StoreError>;
    /// The newest build of `image` tagged `tag`.
    fn build_by_tag(
        &self,
        image: &Repository,
        tag: &Tag,
    ) -> Result<Option<BuildRecord>, StoreError>;
    /// Per service, how its builds used the matching bases.
    fn base_usage(&self, filter: &BaseFilter) -> Result<Vec<BaseUsage>, StoreError>;

    // --- Batched reads: one answer about many services or digests. A backend where each
    // call is a network round trip (PostgreSQL) answers each in one query; the defaults ask
    // one at a time, which costs an embedded database nothing. ---

    /// The registered services among `names`, sorted by name.
    fn services_named(&self, names: &[ServiceName]) -> Result<Vec<Service>, StoreError> {
        let mut out = Vec::new();
        for name in names {
            out.extend(self.service(name)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }
    /// The service listing each of `images`, for those one lists.
    fn services_for_images(
        &self,
        images: &[Repository],
    ) -> Result<Vec<(Repository, ServiceName)>, StoreError> {
        let mut out = Vec::new();
        for image in images {
            if let Some(s) = self.service_for_image(image)? {
                out.push((image.clone(), s));
            }
        }
        Ok(out)
    }
    /// What runs now for each of `services`, ordered by service and environment.
    fn running_of(&self, services: &[ServiceName]) -> Result<Vec<RunningImage>, StoreError> {
        let mut names = services.to_vec();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for s in &names {
            out.extend(self.running(None, Some(s))?);
        }
        Ok(out)
    }
    /// Facts of `kind` filed under any of `keys`, oldest first.
    fn facts_of(&self, kind: &str, keys: &[String]) -> Result<Vec<Entry>, StoreError> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for k in &keys {
            out.extend(self.facts(kind, Some(k))?);
        }
        out.sort_by_key(|e| e.index);
        Ok(out)
    }
    /// The services with a recorded build of `commit` from `repo`, sorted.
    fn services_built_from(
        &self,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<ServiceName>, StoreError>;
    /// The recorded builds of `service` made from `commit` of `repo`, newest first.
    fn builds_from(
        &self,
        service: &ServiceName,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<BuildRecord>, StoreError>;
    /// Among services other than `excluding` that have builds, the lowest and the highest CI
    /// job of their newest builds (`None` inside: a build that named none); `None` when no
    /// other service has builds. Equal ends mean every other service reports that job.
    fn other_ci_jobs(&self, excluding: &str) -> Result<Option<JobRange>, StoreError>;
    /// The registered services whose source repository is `repo`, sorted.
    fn services_with_repo(&self, repo: &SourceRepo) -> Result<Vec<ServiceName>, StoreError>;
    /// Every base tag recorded builds used with a digest, sorted.
    fn base_tags(&self) -> Result<Vec<(Repository, Tag)>, StoreError>;
    /// Every digest recorded builds used under `name:tag`, with when; one indexed read.
    fn base_tag_uses(&self, name: &Repository, tag: &Tag) -> Result<Vec<BaseTagUse>, StoreError>;

    /// What runs now, per (service, environment), optionally for one environment and/or one
    /// service.
    fn running(
        &self,
        env: Option<&EnvName>,
        service: Option<&ServiceName>,
    ) -> Result<Vec<RunningImage>, StoreError>;
    /// What runs now and was built on a matching base (any stage).
    fn running_on_base(&self, filter: &BaseFilter) -> Result<Vec<RunningImage>, StoreError>;
    /// Digests starting with `prefix` (`sha256:4f2a9c1e8b7d`) and where each appears: at most
    /// `limit` per role, enough to tell a unique prefix from an ambiguous one.
    fn digests_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(Digest, DigestRole)>, StoreError>;
    /// Every deploy of a digest, newest first.
    fn deploys_of_digest(&self, digest: &Digest) -> Result<Vec<DeployRecord>, StoreError>;
    /// Every deploy of a service, optionally to one environment, newest first.
    fn deploys_of_service(
        &self,
        service: &ServiceName,
        env: Option<&EnvName>,
    ) -> Result<Vec<DeployRecord>, StoreError>;
    /// The placements that run now (the `current` rows), optionally for one environment,
    /// ordered by service and environment.
    fn placements(&self, env: Option<&EnvName>) -> Result<Vec<PlacementRow>, StoreError>;
    /// What runtime sources observed, optionally for one environment and/or one digest,
    /// ordered by environment, digest and source.
    fn observed(
        &self,
        env: Option<&EnvName>,
        digest: Option<&Digest>,
    ) -> Result<Vec<ObservedRow>, StoreError>;
    /// Every runtime source with its newest batch, by source name.
    fn observation_sources(&self) -> Result<Vec<SourceState>, StoreError>;

    /// Appends facts (bases seen, exceptions, retirements, attestations, gate results) in one
    /// transaction. Builds, deploys and service changes have their own methods.
    fn record_facts(
        &mut self,
        facts: &[Record],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        // Refused before anything is written: a batch with a non-fact writes nothing.
        if let Some(bad) = facts.iter().find(|f| f.fact_key().is_none()) {
            return Err(crate::projection::not_a_fact(bad));
        }
        self.append(facts, recorded_at, recorded_by)
    }
    /// Appends records of any kind in one transaction: what one user action writes (a build
    /// with its gate result and its signed provenance; a deploy with its facts) commits
    /// together or not at all. A build must be new: a digest already recorded makes the whole
    /// call fail and write nothing (callers check for an identical record first).
    fn append(
        &mut self,
        records: &[Record],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError>;
    /// Opens a group commit: the writes until [`Store::commit_group`] become durable together,
    /// with one disk sync, while each still succeeds or fails on its own (a failed write
    /// leaves the group's others in place). Reads through this handle see the group's writes;
    /// other handles see them at the commit. A backend without groups writes each at once.
    fn begin_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Makes every write of the group durable; on an error, none of them is.
    fn commit_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Drops every write of the group.
    fn rollback_group(&mut self) {}
    /// Inside a group, starts one user action's writes, which [`Store::end_step`] keeps or
    /// drops together: a request that fails or panics leaves nothing in the group.
    fn begin_step(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Ends the step begun last: keeps its writes, or drops them all.
    fn end_step(&mut self, keep: bool) -> Result<(), StoreError> {
        let _ = keep;
        Ok(())
    }
    /// Facts of `kind` (`Record::kind`), filed under `key` (`Record::fact_key`) or all of them,
    /// oldest first.
    fn facts(&self, kind: &str, key: Option<&str>) -> Result<Vec<Entry>, StoreError>;

    /// Packages of imported SBOMs and scans (the newest import of each kind and format).
    fn sbom_packages(&self, query: &SbomQuery) -> Result<Vec<SbomHit<SbomPackageRow>>, StoreError>;
    /// Findings of imported scans (the newest import of each kind and format). For
    /// [`SbomQuery::RunningName`], the findings of packages with that name key.
    fn sbom_findings(&self, query: &SbomQuery) -> Result<Vec<SbomHit<SbomFindingRow>>, StoreError>;
    /// The newest import of each kind and format of `digest`.
    fn sbom_imports(&self, digest: &Digest) -> Result<Vec<SbomImportRow>, StoreError>;
    /// Every (service, environment) running now, with its digest and the time of its newest
    /// import of `kind` (`sbom` or `scan`; `None`: of any kind).
    fn running_inventory(&self, kind: Option<&str>) -> Result<Vec<RunningInventory>, StoreError>;

    /// Journal entries with index in `from..to`, in order.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError>;
    /// Number of journal entries.
    fn len(&self) -> Result<u64, StoreError>;
    /// Whether the journal is empty.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    /// The ledger index of the build record of `digest`.
    fn build_index(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    // --- The Merkle log (RFC 6962 / RFC 9162). Every write above appends one leaf per
    // journal entry, in the same transaction. ---

    /// The log's size and root, as maintained incrementally by the writer.
    fn log_head(&self) -> Result<LogHead, StoreError>;
    /// The root of the tree's first `size` leaves (`size` <= the log size).
    fn log_root(&self, size: u64) -> Result<Hash, StoreError>;
    /// The RFC 9162 §2.1.3 inclusion proof of leaf `index` in the tree of `size` leaves.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError>;
    /// The RFC 9162 §2.1.4 consistency proof from the tree of `old` leaves to that of `new`.
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError>;
    /// Every stored log hash, in storage order (audit of small logs and tests; the audit
    /// reads [`Store::log_hash_range`] page by page).
    fn log_hashes(&self) -> Result<Vec<Hash>, StoreError>;
    /// The stored log hashes at storage positions `from..to`, in order, stopping early at the
    /// first position that is missing (audit: a short page ends the readable sequence).
    fn log_hash_range(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError>;
    /// Raw journal rows with stored position in `from..to`, in order (audit).
    fn raw_entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>, StoreError>;
    /// Rebuilds every projection from the journal and returns the rows that differ, first
    /// ones first, at most `limit` (audit).
    fn check_projections(&self, limit: usize) -> Result<Vec<ProjectionMismatch>, StoreError> {
        self.check_projections_with_progress(limit, &())
    }
    /// [`Store::check_projections`], telling `progress` how far the rebuild is.
    fn check_projections_with_progress(
        &self,
        limit: usize,
        progress: &dyn lineage_model::Progress,
    ) -> Result<Vec<ProjectionMismatch>, StoreError>;

    /// Keeps a signed checkpoint for `size`.
    fn save_checkpoint(
        &mut self,
        size: u64,
        text: &str,
        created: Timestamp,
    ) -> Result<(), StoreError>;
    /// The checkpoint with the largest size.
    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// The checkpoint for exactly `size` leaves.
    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Every stored checkpoint, smallest size first.
    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// How many journal entries there are of each kind (`Record::kind`).
    fn kind_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        let (mut from, end) = (0, self.len()?);
        while from < end {
            for raw in self.raw_entries(from, from + 10_000)? {
                *counts.entry(raw.kind).or_insert(0) += 1;
            }
            from += 10_000;
        }
        Ok(counts)
    }

    /// Waits until the log has more than `seen` leaves, or `timeout` has passed, and returns
    /// the log size then. A server calls it in a loop to refresh what it caches when another
    /// process (another replica) writes. This default polls; PostgreSQL overrides it with
    /// `LISTEN`/`NOTIFY`, so a change is seen within milliseconds.
    fn wait_for_change(&self, seen: u64, timeout: Duration) -> Result<u64, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let size = self.log_head()?.size;
            let now = Instant::now();
            if size > seen || now >= deadline {
                return Ok(size);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
        }
    }
}
