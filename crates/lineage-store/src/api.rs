//! The backend-neutral store API.

use std::path::PathBuf;

use lineage_model::{
    BuildRecord, DeployRecord, Digest, EnvName, Identity, Record, Repository, Service,
    ServiceChange, ServiceName, Tag, Timestamp,
};

/// Where a ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// Parses `sqlite:PATH` or a plain path.
    pub fn parse(input: &str) -> StoreLocation {
        let path = input.strip_prefix("sqlite:").unwrap_or(input);
        StoreLocation::Sqlite(PathBuf::from(path))
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "{}", p.display()),
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
    #[error("ledger backend error: {0}")]
    Backend(String),
    #[error("cannot create the ledger directory `{path}`: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
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

/// A digest running in an environment now, with the deploy that put it there and its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningImage {
    pub deploy: DeployRecord,
    pub build: Option<BuildRecord>,
}

/// The ledger. Every write appends journal entries and updates projections atomically, and is
/// durable when the call returns.
pub trait Store: Send {
    /// Appends a service change (add, owner change, import row).
    fn record_service_change(
        &mut self,
        change: &ServiceChange,
        recorded_at: Timestamp,
    ) -> Result<u64, StoreError>;

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
    ) -> Result<Vec<u64>, StoreError>;

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

    /// What runs now, per (service, environment), optionally for one environment and/or one
    /// service.
    fn running(
        &self,
        env: Option<&EnvName>,
        service: Option<&ServiceName>,
    ) -> Result<Vec<RunningImage>, StoreError>;
    /// What runs now and was built on a matching base (any stage).
    fn running_on_base(&self, filter: &BaseFilter) -> Result<Vec<RunningImage>, StoreError>;
    /// Every deploy of a digest, newest first.
    fn deploys_of_digest(&self, digest: &Digest) -> Result<Vec<DeployRecord>, StoreError>;

    /// Journal entries with index in `from..to`, in order.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError>;
    /// Number of journal entries.
    fn len(&self) -> Result<u64, StoreError>;
}
