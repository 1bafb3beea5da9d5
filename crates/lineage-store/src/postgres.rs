//! The PostgreSQL backend: the same journal, projections and Merkle log as SQLite, in a
//! database that any number of Lineage processes (server replicas, CLI runs) share.
//!
//! **One sequencer.** Every write transaction first takes one transaction-scoped advisory lock
//! (`pg_advisory_xact_lock(LOG_LOCK)`), so writers append one after another. Under the lock
//! the writer reads the journal's length; if another process appended since this handle last
//! wrote, it rebuilds its in-memory log frontier from the stored hashes (`popcount(size)`
//! reads) before appending. Journal rows, projection rows and log hashes go in with one
//! multi-row statement per table, and the lock is released by the commit. So indexes are
//! gapless and ordered whatever the number of writers, and a write is durable when the call
//! returns (`synchronous_commit = on` for every write transaction).
//!
//! **Change notification.** Each write transaction sends `NOTIFY lineage_ledger, '<size>'`,
//! which PostgreSQL delivers on commit; `wait_for_change` listens on its own connection.
//!
//! **Migrations** run under another advisory lock, so replicas that start together migrate
//! once; a schema from a newer Lineage is refused before anything is written.

mod connect;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use lineage_log::merkle::{self, Frontier, Hash, HashReader, TreeError};
use lineage_model::{
    canonical_json, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record,
    Repository, Service, ServiceChange, ServiceName, SourceRepo, Tag, Timestamp,
};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};

pub(crate) use connect::redact;
pub use connect::PgLocation;

use crate::api::{
    ci_job, recorded_time, BaseFilter, BaseTagUse, BaseUsage, BuildOutcome, DigestRole, Entry,
    JobRange, LogHead, ObservedRow, PlacementRow, ProjectionMismatch, RawEntry, RunningImage,
    RunningInventory, SbomFindingRow, SbomHit, SbomImportRow, SbomPackageRow, SbomQuery,
    SourceState, Store, StoreError, StoredCheckpoint,
};

/// The schema version this build writes to PostgreSQL (its own numbering, not SQLite's).
pub const PG_SCHEMA_VERSION: i64 = 6;

/// Append-only migrations; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_autovacuum.sql"),
    include_str!("postgres/0004_runtime.sql"),
    include_str!("postgres/0005_sbom.sql"),
    include_str!("postgres/0006_history.sql"),
    include_str!("postgres/0007_build_lookups.sql"),
];

/// Advisory lock keys ("LNAG" and "LNAM"): the log sequencer and the migration lock.
const LOG_LOCK: i64 = 0x4C4E_4147;
const MIGRATE_LOCK: i64 = 0x4C4E_414D;

/// The `LISTEN`/`NOTIFY` channel writers announce new log sizes on.
pub const CHANNEL: &str = "lineage_ledger";

/// The projection tables `check_projections` rebuilds and compares, and the column that
/// points at the journal entry a row came from (if any).
const PROJECTIONS: &[(&str, Option<&str>)] = &[
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

type Conn = r2d2::PooledConnection<connect::Manager>;
type Param<'a> = (&'a (dyn ToSql + Sync), Type);

pub struct PgStore {
    location: PgLocation,
    pool: connect::Pool,
    /// The log's right frontier as of the last commit this handle saw.
    frontier: Frontier,
    /// A connection of its own that `LISTEN`s, opened by the first `wait_for_change`.
    listener: RefCell<Option<postgres::Client>>,
}

impl PgStore {
    pub fn open(location: &PgLocation, create: bool) -> Result<PgStore, StoreError> {
        let (pool, fresh) = connect::pool(location)?;
        if fresh {
            // Connect once directly: an unreachable server or a missing database is reported
            // now, naming host and port, instead of as a pool time-out.
            let checked = connect::connect(location)
                .and_then(|mut client| check_and_migrate(&mut client, location, create));
            if let Err(e) = checked {
                connect::forget_pool(location);
                return Err(e);
            }
        } else {
            let mut conn = get(&pool, location)?;
            check_and_migrate(&mut *conn, location, create)?;
        }
        let mut store = PgStore {
            location: location.clone(),
            pool,
            frontier: Frontier::new(),
            listener: RefCell::new(None),
        };
        let mut conn = store.conn()?;
        store.frontier = load_frontier(&mut *conn)?;
        drop(conn);
        Ok(store)
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        get(&self.pool, &self.location)
    }

    /// Runs `write` in a transaction holding the log sequencer lock, with a frontier that is
    /// current for the database and the time the entries are recorded at (never before the
    /// last entry's; see [`recorded_time`]); adopts the new frontier once the commit succeeded.
    fn write<T>(
        &mut self,
        recorded_at: Timestamp,
        write: impl FnOnce(
            &mut postgres::Transaction<'_>,
            &mut Frontier,
            Timestamp,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = get(&self.pool, &self.location)?;
        let mut tx = conn.transaction().map_err(pg)?;
        tx.batch_execute(&format!(
            "SET LOCAL synchronous_commit = on; SELECT pg_advisory_xact_lock({LOG_LOCK})"
        ))
        .map_err(pg)?;
        check_next_index(&mut tx, &mut self.frontier)?;
        // Read under the sequencer lock: no writer can append between this read and the
        // commit, so two replicas cannot both pass the check with out-of-order times.
        let (at, behind) = match recorded_time(recorded_at, last_recorded_at(&mut tx)?) {
            Ok(at) => (at, None),
            Err(e) => (recorded_at, Some(e)),
        };
        let mut frontier = self.frontier.clone();
        let out = write(&mut tx, &mut frontier, at)?;
        // Only a write that appends is refused: re-recording an identical build is a no-op
        // whatever its time. Dropping `tx` rolls the appended rows back.
        if let Some(e) = behind {
            if frontier.size() != self.frontier.size() {
                return Err(e);
            }
        }
        if frontier.size() != self.frontier.size() {
            let size = frontier.size().to_string();
            tx.execute_typed(
                "SELECT pg_notify($1, $2)",
                &[(&CHANNEL, Type::TEXT), (&size, Type::TEXT)],
            )
            .map_err(pg)?;
        }
        tx.commit().map_err(pg)?;
        self.frontier = frontier;
        Ok(out)
    }
}

fn get(pool: &connect::Pool, location: &PgLocation) -> Result<Conn, StoreError> {
    pool.get().map_err(|e| StoreError::Unavailable {
        location: location.redacted(),
        server: location.server(),
        detail: e.to_string(),
    })
}

/// Refuses databases that are not Lineage ledgers or are from a newer Lineage, then runs the
/// missing migrations, all under the migration lock so concurrent start-ups migrate once.
fn check_and_migrate(
    client: &mut impl GenericClient,
    location: &PgLocation,
    create: bool,
) -> Result<(), StoreError> {
    let shown = location.redacted();
    let mut tx = client.transaction().map_err(pg)?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATE_LOCK})"))
        .map_err(pg)?;
    let has_meta: bool = tx
        .query_one("SELECT to_regclass('lineage_meta') IS NOT NULL", &[])
        .map_err(pg)?
        .get(0);
    let version: i64 = if has_meta {
        let rows = tx
            .query(
                "SELECT key, value FROM lineage_meta WHERE key IN ('application', 'schema_version')",
                &[],
            )
            .map_err(pg)?;
        let meta: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if meta.get("application").map(String::as_str) != Some("lineage") {
            return Err(StoreError::NotLineage {
                path: shown,
                detail: "its `lineage_meta` table does not name Lineage".into(),
            });
        }
        meta.get("schema_version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::NotLineage {
                path: shown.clone(),
                detail: "its `lineage_meta` table has no schema version".into(),
            })?
    } else {
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
                &[],
            )
            .map_err(pg)?
            .get(0);
        if tables > 0 {
            return Err(StoreError::NotLineage {
                path: shown,
                detail: format!(
                    "its schema already holds {tables} tables of another application; \
                     use an empty database"
                ),
            });
        }
        if !create {
            return Err(StoreError::Missing(shown));
        }
        0
    };
    if version > PG_SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: shown,
            found: version,
            supported: PG_SCHEMA_VERSION,
        });
    }
    if version == PG_SCHEMA_VERSION {
        return Ok(()); // Dropping the transaction rolls back; nothing was written.
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).map_err(pg)?;
        if i == 5 {
            backfill_build_lookups(&mut tx)?;
        }
    }
    tx.execute(
        "INSERT INTO lineage_meta (key, value) VALUES ('application', 'lineage'), ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&PG_SCHEMA_VERSION.to_string()],
    )
    .map_err(pg)?;
    tx.commit().map_err(pg)
}

/// Fills the gates' lookup tables from the builds of a ledger made before they existed.
fn backfill_build_lookups(tx: &mut postgres::Transaction<'_>) -> Result<(), StoreError> {
    // In pages, so a large ledger's builds are never all in memory at once.
    let mut after = 0i64;
    loop {
        let rows = tx
            .query(
                "SELECT e.idx, e.body, e.recorded_at FROM builds b JOIN entries e ON e.idx = b.entry
                 WHERE e.idx > $1 ORDER BY e.idx LIMIT 10000",
                &[&after],
            )
            .map_err(pg)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get(0);
        let mut batch = Batch::new(Log::Replay);
        for r in &rows {
            let index = r.get::<_, i64>(0) as u64 - 1;
            let corrupt = |detail: String| StoreError::Corrupt { index, detail };
            let Record::Build(build) =
                serde_json::from_str(r.get(1)).map_err(|e| corrupt(e.to_string()))?
            else {
                return Err(corrupt(
                    "a `builds` row points at an entry that is not a build".into(),
                ));
            };
            let at = Timestamp::parse(r.get(2)).map_err(|e| corrupt(e.to_string()))?;
            batch.build_lookups(&build, at, index as i64 + 1);
        }
        batch.flush(tx)?;
    }
}

/// A database error with its message (the client's own `Display` says only "db error").
fn pg(e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        return StoreError::Backend(text);
    }
    StoreError::Backend(connect::error_chain(&e))
}

/// Runs a statement with typed parameters: one round trip, no statement to prepare.
fn query(
    c: &mut impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row>, StoreError> {
    c.query_typed(sql, params).map_err(pg)
}

fn execute(c: &mut impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
    c.execute_typed(sql, params).map_err(pg)
}

// ---------------------------------------------------------------------------------------------
// The log.
// ---------------------------------------------------------------------------------------------

/// Stored log hashes read through one connection or transaction.
struct PgHashes<'a, C: GenericClient>(RefCell<&'a mut C>);

impl<C: GenericClient> HashReader for PgHashes<'_, C> {
    type Error = StoreError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let wanted: Vec<i64> = indexes.iter().map(|&i| i as i64).collect();
        let mut client = self.0.borrow_mut();
        let rows = query(
            &mut **client,
            "SELECT idx, hash FROM log_hashes WHERE idx = ANY($1)",
            &[(&wanted, Type::INT8_ARRAY)],
        )?;
        let found: HashMap<i64, Vec<u8>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        indexes
            .iter()
            .map(|&i| {
                let raw = found.get(&(i as i64)).ok_or_else(|| {
                    StoreError::LogMismatch(format!("stored log hash {i} is missing"))
                })?;
                merkle::hash_from_slice(raw).map_err(|_| {
                    StoreError::LogMismatch(format!("stored log hash {i} is not 32 bytes"))
                })
            })
            .collect()
    }
}

fn tree_error(e: TreeError) -> StoreError {
    match e {
        TreeError::Storage(inner) => match inner.downcast::<StoreError>() {
            Ok(store) => *store,
            Err(other) => StoreError::Backend(other.to_string()),
        },
        other => StoreError::LogMismatch(other.to_string()),
    }
}

/// The log size implied by the stored hashes.
fn log_size(c: &mut impl GenericClient) -> Result<u64, StoreError> {
    let count: i64 = query(c, "SELECT coalesce(max(idx) + 1, 0) FROM log_hashes", &[])?[0].get(0);
    let count = count as u64;
    let size = if count == 0 {
        0
    } else {
        merkle::stored_hash_leaf(count)
    };
    if merkle::stored_hash_count(size) != count {
        return Err(StoreError::LogMismatch(format!(
            "{count} stored log hashes is not a whole number of leaves"
        )));
    }
    Ok(size)
}

/// The frontier rebuilt from the stored hashes.
fn load_frontier(c: &mut impl GenericClient) -> Result<Frontier, StoreError> {
    let size = log_size(c)?;
    Frontier::from_reader(size, &PgHashes(RefCell::new(c))).map_err(tree_error)
}

fn journal_len(c: &mut impl GenericClient) -> Result<u64, StoreError> {
    let n: i64 = query(c, "SELECT coalesce(max(idx), 0) FROM entries", &[])?[0].get(0);
    Ok(n as u64)
}

/// The last journal entry's recorded time, if any.
fn last_recorded_at(c: &mut impl GenericClient) -> Result<Option<Timestamp>, StoreError> {
    let rows = query(
        c,
        "SELECT idx, recorded_at FROM entries ORDER BY idx DESC LIMIT 1",
        &[],
    )?;
    rows.first()
        .map(|r| {
            let index = r.get::<_, i64>(0) as u64 - 1;
            Timestamp::parse(r.get::<_, &str>(1)).map_err(|e| corrupt(index)(e.to_string()))
        })
        .transpose()
}

/// Under the sequencer lock: checks that the journal and the log agree on the next index,
/// picking up appends other writers made since this handle last looked.
fn check_next_index(
    tx: &mut postgres::Transaction<'_>,
    frontier: &mut Frontier,
) -> Result<(), StoreError> {
    let journal = journal_len(tx)?;
    if journal != frontier.size() {
        *frontier = load_frontier(tx)?;
    }
    if journal != frontier.size() {
        return Err(StoreError::LogMismatch(format!(
            "the journal has {journal} entries but the log has {} leaves; \
             nothing was written (run `lineage log verify`)",
            frontier.size()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Writing: journal entries and their projections, one multi-row statement per table.
// ---------------------------------------------------------------------------------------------

/// Where appended entries go.
enum Log<'a> {
    /// A real write: each entry becomes the next log leaf.
    Writer(&'a mut Frontier),
    /// Rebuilding projections for an audit: entries keep their stored index; no log hashes.
    Replay,
}

/// The rows a batch of journal entries adds, gathered in memory and written by `flush`.
#[derive(Default)]
struct Rows {
    entries: Vec<(i64, &'static str, String, String, Option<String>)>,
    hashes: Vec<(i64, Vec<u8>)>,
    builds: Vec<(String, String, String, i64)>,
    build_tags: Vec<(String, String, i64)>,
    build_bases: Vec<(String, String, String, String, bool)>,
    /// Per (service, base name, tag, digest): builds added and the newest entry. Aggregated
    /// here because one multi-row upsert may not touch a row twice.
    base_usage: BTreeMap<(String, String, String, String), (i64, i64)>,
    /// Per (base name, tag, digest): the first and last use, folded like `base_usage`.
    base_tags: BTreeMap<(String, String, String), (i64, i64)>,
    /// (source repository, commit, service) of builds with both.
    build_commits: BTreeSet<(String, String, String, String)>,
    /// Per service: the CI job ('' for none) and entry of its newest build in the batch.
    latest_builds: BTreeMap<String, (String, i64)>,
    deploys: Vec<(i64, String, String, String, i64)>,
    /// Per (service, env): the deploy this batch would leave current, folded in record
    /// order with the same rule the upsert applies (a later-or-equal `at` wins).
    current: BTreeMap<(String, String), (i64, String, i64)>,
    facts: Vec<(String, String, i64)>,
    /// Per (digest, kind, format): the newest import this batch would leave, folded with the
    /// upsert's own rule (a later document time wins; equal times go to the later entry).
    sbom_imports: BTreeMap<ImportKey, ImportRow>,
    sbom_packages: Vec<(i64, i64, String, String, String, String)>,
    sbom_findings: Vec<FindingRow>,
}

/// `sbom_imports` key: (digest, kind, format).
type ImportKey = (String, String, String);
/// `sbom_imports` values: (entry, scanned_at, document, layers).
type ImportRow = (i64, i64, String, String);
/// `sbom_findings` columns: (entry, finding, alias, vuln_id, id, pkg, digest, severity, fixed).
type FindingRow = (i64, i64, i64, String, String, i64, String, String, String);

struct Batch<'a> {
    log: Log<'a>,
    rows: Rows,
}

impl<'a> Batch<'a> {
    fn new(log: Log<'a>) -> Batch<'a> {
        Batch {
            log,
            rows: Rows::default(),
        }
    }

    /// Appends a journal entry (and, for a real write, its log leaf); returns its index.
    fn entry(
        &mut self,
        stored_index: u64,
        record: &Record,
        at: Timestamp,
        by: Option<&Identity>,
    ) -> u64 {
        if let Log::Replay = self.log {
            // The audit's shadow holds projections only: no projection reads the journal,
            // and a second copy of every body would make the scratch as large as the ledger.
            return stored_index;
        }
        let body = canonical_json(record);
        let index = match &mut self.log {
            Log::Writer(frontier) => {
                let index = frontier.size();
                // RFC 6962 §2.1: the leaf hash covers exactly the stored canonical bytes.
                let start = merkle::stored_hash_count(index);
                for (i, h) in frontier
                    .append(merkle::leaf_hash(body.as_bytes()))
                    .into_iter()
                    .enumerate()
                {
                    self.rows
                        .hashes
                        .push(((start + i as u64) as i64, h.to_vec()));
                }
                index
            }
            Log::Replay => stored_index,
        };
        self.rows.entries.push((
            index as i64 + 1,
            record.kind(),
            body,
            at.to_string(),
            by.map(|i| i.as_str().to_string()),
        ));
        index
    }

    fn build(
        &mut self,
        build: &BuildRecord,
        at: Timestamp,
        by: Option<&Identity>,
        stored: u64,
    ) -> u64 {
        let index = self.entry(stored, &Record::Build(build.clone()), at, by);
        let entry = index as i64 + 1;
        let (digest, image, service) = (
            build.digest.to_string(),
            build.image.to_string(),
            build.service.to_string(),
        );
        for tag in &build.tags {
            self.rows
                .build_tags
                .push((image.clone(), tag.as_str().to_string(), entry));
        }
        for base in &build.bases {
            let key = (
                service.clone(),
                base.name.to_string(),
                opt_str(base.tag.as_ref()),
                opt_str(base.digest.as_ref()),
            );
            self.rows.build_bases.push((
                digest.clone(),
                key.1.clone(),
                key.2.clone(),
                key.3.clone(),
                base.final_stage,
            ));
            let usage = self.rows.base_usage.entry(key).or_insert((0, entry));
            usage.0 += 1;
            usage.1 = usage.1.max(entry);
        }
        self.build_lookups(build, at, entry);
        self.rows.builds.push((digest, service, image, entry));
        index
    }

    /// The gates' lookup rows of `build` (stored at `entry`): the first and last use of each
    /// tagged, pinned base, its source commit, and its service's newest CI job.
    fn build_lookups(&mut self, build: &BuildRecord, recorded_at: Timestamp, entry: i64) {
        if let (Some(repo), Some(commit)) = (&build.source_repo, &build.commit) {
            self.rows.build_commits.insert((
                repo.to_string(),
                commit.to_string(),
                build.service.to_string(),
                build.digest.to_string(),
            ));
        }
        let latest = self
            .rows
            .latest_builds
            .entry(build.service.to_string())
            .or_insert((String::new(), i64::MIN));
        if entry > latest.1 {
            *latest = (ci_job(build).to_string(), entry);
        }
        for base in &build.bases {
            let (Some(tag), Some(digest)) = (&base.tag, &base.digest) else {
                continue;
            };
            let at = build.base_seen_at(base, recorded_at).unix();
            let key = (base.name.to_string(), tag.to_string(), digest.to_string());
            let span = self.rows.base_tags.entry(key).or_insert((at, at));
            span.0 = span.0.min(at);
            span.1 = span.1.max(at);
        }
    }

    fn deploy(
        &mut self,
        deploy: &DeployRecord,
        at: Timestamp,
        by: Option<&Identity>,
        stored: u64,
    ) -> u64 {
        let index = self.entry(stored, &Record::Deploy(deploy.clone()), at, by);
        let entry = index as i64 + 1;
        let (service, env, digest) = (
            deploy.service.to_string(),
            deploy.env.to_string(),
            deploy.digest.to_string(),
        );
        // Times are stored as unix seconds so that ordering does not depend on string formats.
        let when = deploy.at.unix();
        self.rows
            .deploys
            .push((entry, service.clone(), env.clone(), digest.clone(), when));
        // A deploy recorded late (with an earlier `--at`) does not displace a newer one.
        let slot = self.rows.current.entry((service, env));
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((entry, digest, when));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if when >= o.get().2 {
                    o.insert((entry, digest, when));
                }
            }
        }
        index
    }

    fn fact(
        &mut self,
        tx: &mut impl GenericClient,
        record: &Record,
        at: Timestamp,
        by: Option<&Identity>,
        stored: u64,
    ) -> Result<u64, StoreError> {
        let Some(key) = record.fact_key() else {
            return Err(not_a_fact(record));
        };
        let index = self.entry(stored, record, at, by);
        let entry = index as i64 + 1;
        self.rows
            .facts
            .push((record.kind().to_string(), key, entry));
        // These facts change projections that later records in the batch read (what runs,
        // which services exist), so they are written at once, after what the batch holds.
        match record {
            Record::DeployEnd(end) => {
                self.flush(tx)?;
                let (service, env, when) = (end.service.as_str(), end.env.as_str(), end.at.unix());
                execute(
                    tx,
                    "DELETE FROM current WHERE service = $1 AND env = $2 AND at <= $3",
                    &[
                        (&service, Type::TEXT),
                        (&env, Type::TEXT),
                        (&when, Type::INT8),
                    ],
                )?;
                execute(
                    tx,
                    "INSERT INTO placement_ends (service, env, entry, at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry, at = excluded.at
                     WHERE excluded.at >= placement_ends.at",
                    &[
                        (&service, Type::TEXT),
                        (&env, Type::TEXT),
                        (&entry, Type::INT8),
                        (&when, Type::INT8),
                    ],
                )?;
            }
            Record::ServiceRemoved(removal) => {
                self.flush(tx)?;
                let name = removal.service.as_str();
                execute(
                    tx,
                    "DELETE FROM services WHERE name = $1",
                    &[(&name, Type::TEXT)],
                )?;
                execute(
                    tx,
                    "DELETE FROM service_images WHERE service = $1",
                    &[(&name, Type::TEXT)],
                )?;
                execute(
                    tx,
                    "DELETE FROM service_repos WHERE service = $1",
                    &[(&name, Type::TEXT)],
                )?;
            }
            Record::Observation(batch) => {
                self.flush(tx)?;
                let source = batch.source.as_str();
                let when = batch.at.unix();
                execute(
                    tx,
                    "INSERT INTO observation_sources (source, entry, at, complete) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source) DO UPDATE SET entry = excluded.entry, at = excluded.at,
                         complete = excluded.complete",
                    &[
                        (&source, Type::TEXT),
                        (&entry, Type::INT8),
                        (&when, Type::INT8),
                        (&batch.complete, Type::BOOL),
                    ],
                )?;
                let envs: Vec<String> = batch.envs.iter().map(ToString::to_string).collect();
                execute(
                    tx,
                    "INSERT INTO observation_envs (source, env, entry)
                     SELECT $1, e, $2 FROM unnest($3::text[]) AS e
                     ON CONFLICT (source, env) DO UPDATE SET entry = excluded.entry",
                    &[
                        (&source, Type::TEXT),
                        (&entry, Type::INT8),
                        (&envs, Type::TEXT_ARRAY),
                    ],
                )?;
                let (mut v, mut i, mut d, mut t, mut w) = (vec![], vec![], vec![], vec![], vec![]);
                for ((env, image, digest), (seen, workload)) in crate::api::observation_rows(batch)
                {
                    v.push(env);
                    i.push(image);
                    d.push(digest);
                    t.push(seen);
                    w.push(workload);
                }
                execute(
                    tx,
                    "INSERT INTO observations (source, env, image, digest, last_seen, entry, workload)
                     SELECT $1, u.env, u.image, u.digest, u.seen, $2, u.workload
                     FROM unnest($3::text[], $4::text[], $5::text[], $6::int8[], $7::text[])
                         AS u(env, image, digest, seen, workload)
                     ON CONFLICT (source, env, image, digest) DO UPDATE SET
                         last_seen = greatest(observations.last_seen, excluded.last_seen),
                         entry = excluded.entry, workload = excluded.workload",
                    &[
                        (&source, Type::TEXT),
                        (&entry, Type::INT8),
                        (&v, Type::TEXT_ARRAY),
                        (&i, Type::TEXT_ARRAY),
                        (&d, Type::TEXT_ARRAY),
                        (&t, Type::INT8_ARRAY),
                        (&w, Type::TEXT_ARRAY),
                    ],
                )?;
            }
            _ => {}
        }
        Ok(index)
    }

    /// An SBOM or scan import: a fact, plus its `sbom_*` rows.
    fn sbom(
        &mut self,
        tx: &mut impl GenericClient,
        record: &Record,
        import: &lineage_model::SbomImport,
        at: Timestamp,
        by: Option<&Identity>,
        stored: u64,
    ) -> Result<u64, StoreError> {
        let index = self.fact(tx, record, at, by, stored)?;
        let entry = index as i64 + 1;
        let rows = crate::sbom::rows(import, at);
        let i = rows.import;
        let key = (i.digest.clone(), i.kind, i.format);
        let newer = self
            .rows
            .sbom_imports
            .get(&key)
            .is_none_or(|old| (i.scanned_at, entry) > (old.1, old.0));
        if newer {
            self.rows
                .sbom_imports
                .insert(key, (entry, i.scanned_at, i.document, i.layers));
        }
        for p in rows.packages {
            self.rows.sbom_packages.push((
                entry,
                p.pkg,
                i.digest.clone(),
                p.name_key,
                p.purl,
                p.layer,
            ));
        }
        for f in rows.findings {
            self.rows.sbom_findings.push((
                entry,
                f.finding,
                f.alias,
                f.vuln_id,
                f.id,
                f.pkg,
                i.digest.clone(),
                f.severity,
                f.fixed,
            ));
        }
        Ok(index)
    }

    /// A service change: its projection replaces rows, so it is written at once, after
    /// whatever the batch holds so far.
    fn service_change(
        &mut self,
        tx: &mut impl GenericClient,
        change: &ServiceChange,
        at: Timestamp,
        stored: u64,
    ) -> Result<u64, StoreError> {
        let index = self.entry(
            stored,
            &Record::Service(change.clone()),
            at,
            Some(&change.by),
        );
        self.flush(tx)?;
        let entry = index as i64 + 1;
        let name = change.service.name.as_str();
        execute(
            tx,
            "INSERT INTO services (name, entry) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET entry = excluded.entry",
            &[(&name, Type::TEXT), (&entry, Type::INT8)],
        )?;
        execute(
            tx,
            "INSERT INTO service_changes (service, entry) VALUES ($1, $2)",
            &[(&name, Type::TEXT), (&entry, Type::INT8)],
        )?;
        execute(
            tx,
            "DELETE FROM service_images WHERE service = $1",
            &[(&name, Type::TEXT)],
        )?;
        execute(
            tx,
            "DELETE FROM service_repos WHERE service = $1",
            &[(&name, Type::TEXT)],
        )?;
        if let Some(repo) = &change.service.source_repo {
            execute(
                tx,
                "INSERT INTO service_repos (service, source_repo) VALUES ($1, $2)",
                &[(&name, Type::TEXT), (&repo.to_string(), Type::TEXT)],
            )?;
        }
        let mut images: Vec<String> = change
            .service
            .images
            .iter()
            .map(|i| i.to_string())
            .collect();
        // One upsert may not touch a row twice; a repeated image is one row anyway.
        images.sort();
        images.dedup();
        execute(
            tx,
            "INSERT INTO service_images (image, service) SELECT unnest($1::text[]), $2
             ON CONFLICT (image) DO UPDATE SET service = excluded.service",
            &[(&images, Type::TEXT_ARRAY), (&name, Type::TEXT)],
        )?;
        Ok(index)
    }

    /// Writes the gathered rows: journal first (the projections reference it), then the log
    /// hashes and every projection, one statement per table.
    fn flush(&mut self, tx: &mut impl GenericClient) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut self.rows);
        if !rows.entries.is_empty() {
            let (mut idx, mut kind, mut body, mut at, mut by) =
                (vec![], vec![], vec![], vec![], vec![]);
            for (i, k, b, a, w) in rows.entries {
                idx.push(i);
                kind.push(k);
                body.push(b);
                at.push(a);
                by.push(w);
            }
            execute(
                tx,
                "INSERT INTO entries (idx, kind, body, recorded_at, recorded_by)
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[])",
                &[
                    (&idx, Type::INT8_ARRAY),
                    (&kind, Type::TEXT_ARRAY),
                    (&body, Type::TEXT_ARRAY),
                    (&at, Type::TEXT_ARRAY),
                    (&by, Type::TEXT_ARRAY),
                ],
            )?;
        }
        if !rows.hashes.is_empty() {
            let (idx, hash): (Vec<i64>, Vec<Vec<u8>>) = rows.hashes.into_iter().unzip();
            execute(
                tx,
                "INSERT INTO log_hashes (idx, hash) SELECT * FROM unnest($1::int8[], $2::bytea[])",
                &[(&idx, Type::INT8_ARRAY), (&hash, Type::BYTEA_ARRAY)],
            )?;
        }
        if !rows.builds.is_empty() {
            let (mut d, mut s, mut i, mut e) = (vec![], vec![], vec![], vec![]);
            for (a, b, c, x) in rows.builds {
                d.push(a);
                s.push(b);
                i.push(c);
                e.push(x);
            }
            execute(
                tx,
                "INSERT INTO builds (digest, service, image, entry)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])",
                &[
                    (&d, Type::TEXT_ARRAY),
                    (&s, Type::TEXT_ARRAY),
                    (&i, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.build_tags.is_empty() {
            let (mut i, mut t, mut e) = (vec![], vec![], vec![]);
            for (a, b, c) in rows.build_tags {
                i.push(a);
                t.push(b);
                e.push(c);
            }
            execute(
                tx,
                "INSERT INTO build_tags (image, tag, entry)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])",
                &[
                    (&i, Type::TEXT_ARRAY),
                    (&t, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.build_bases.is_empty() {
            let (mut d, mut n, mut t, mut bd, mut f) = (vec![], vec![], vec![], vec![], vec![]);
            for (a, b, c, x, y) in rows.build_bases {
                d.push(a);
                n.push(b);
                t.push(c);
                bd.push(x);
                f.push(y);
            }
            execute(
                tx,
                "INSERT INTO build_bases (digest, base_name, base_tag, base_digest, final_stage)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])",
                &[
                    (&d, Type::TEXT_ARRAY),
                    (&n, Type::TEXT_ARRAY),
                    (&t, Type::TEXT_ARRAY),
                    (&bd, Type::TEXT_ARRAY),
                    (&f, Type::BOOL_ARRAY),
                ],
            )?;
        }
        if !rows.base_usage.is_empty() {
            let (mut s, mut n, mut t, mut d, mut c, mut e) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for ((a, b, x, y), (count, entry)) in rows.base_usage {
                s.push(a);
                n.push(b);
                t.push(x);
                d.push(y);
                c.push(count);
                e.push(entry);
            }
            execute(
                tx,
                "INSERT INTO base_usage (service, base_name, base_tag, base_digest, builds, latest_entry)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])
                 ON CONFLICT (service, base_name, base_tag, base_digest)
                 DO UPDATE SET builds = base_usage.builds + excluded.builds,
                     latest_entry = greatest(base_usage.latest_entry, excluded.latest_entry)",
                &[
                    (&s, Type::TEXT_ARRAY),
                    (&n, Type::TEXT_ARRAY),
                    (&t, Type::TEXT_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                    (&c, Type::INT8_ARRAY),
                    (&e, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.base_tags.is_empty() {
            let (mut n, mut t, mut d, mut f, mut l) = (vec![], vec![], vec![], vec![], vec![]);
            for ((a, b, c), (first, last)) in rows.base_tags {
                n.push(a);
                t.push(b);
                d.push(c);
                f.push(first);
                l.push(last);
            }
            execute(
                tx,
                "INSERT INTO base_tag_digests (base_name, base_tag, base_digest, first_used, last_used)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])
                 ON CONFLICT (base_name, base_tag, base_digest)
                 DO UPDATE SET first_used = least(base_tag_digests.first_used, excluded.first_used),
                     last_used = greatest(base_tag_digests.last_used, excluded.last_used)",
                &[
                    (&n, Type::TEXT_ARRAY),
                    (&t, Type::TEXT_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                    (&f, Type::INT8_ARRAY),
                    (&l, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.build_commits.is_empty() {
            let (mut r, mut c, mut v, mut d) = (vec![], vec![], vec![], vec![]);
            for (a, b, x, y) in rows.build_commits {
                r.push(a);
                c.push(b);
                v.push(x);
                d.push(y);
            }
            execute(
                tx,
                "INSERT INTO build_commits (source_repo, commit_id, service, digest)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT DO NOTHING",
                &[
                    (&r, Type::TEXT_ARRAY),
                    (&c, Type::TEXT_ARRAY),
                    (&v, Type::TEXT_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                ],
            )?;
        }
        if !rows.latest_builds.is_empty() {
            let (mut v, mut j, mut e) = (vec![], vec![], vec![]);
            for (service, (job, entry)) in rows.latest_builds {
                v.push(service);
                j.push(job);
                e.push(entry);
            }
            execute(
                tx,
                "INSERT INTO service_latest_build (service, ci_job, entry)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
                 ON CONFLICT (service) DO UPDATE SET ci_job = excluded.ci_job, entry = excluded.entry
                 WHERE excluded.entry > service_latest_build.entry",
                &[
                    (&v, Type::TEXT_ARRAY),
                    (&j, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.deploys.is_empty() {
            let (mut e, mut s, mut v, mut d, mut a) = (vec![], vec![], vec![], vec![], vec![]);
            for (x, b, c, y, z) in rows.deploys {
                e.push(x);
                s.push(b);
                v.push(c);
                d.push(y);
                a.push(z);
            }
            execute(
                tx,
                "INSERT INTO deploys (entry, service, env, digest, at)
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[])",
                &[
                    (&e, Type::INT8_ARRAY),
                    (&s, Type::TEXT_ARRAY),
                    (&v, Type::TEXT_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                    (&a, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.current.is_empty() {
            let (mut s, mut v, mut e, mut d, mut a) = (vec![], vec![], vec![], vec![], vec![]);
            for ((x, y), (entry, digest, at)) in rows.current {
                s.push(x);
                v.push(y);
                e.push(entry);
                d.push(digest);
                a.push(at);
            }
            execute(
                tx,
                "INSERT INTO current (service, env, entry, digest, at)
                 SELECT u.* FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
                     AS u(service, env, entry, digest, at)
                 WHERE NOT EXISTS (SELECT 1 FROM placement_ends p
                     WHERE p.service = u.service AND p.env = u.env AND p.at > u.at)
                 ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry,
                     digest = excluded.digest, at = excluded.at
                 WHERE excluded.at >= current.at",
                &[
                    (&s, Type::TEXT_ARRAY),
                    (&v, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                    (&a, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.facts.is_empty() {
            let (mut k, mut y, mut e) = (vec![], vec![], vec![]);
            for (a, b, c) in rows.facts {
                k.push(a);
                y.push(b);
                e.push(c);
            }
            execute(
                tx,
                "INSERT INTO facts (kind, key, entry)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])",
                &[
                    (&k, Type::TEXT_ARRAY),
                    (&y, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                ],
            )?;
        }
        if !rows.sbom_imports.is_empty() {
            let (mut d, mut k, mut f, mut e, mut t, mut doc, mut l) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for ((digest, kind, format), (entry, at, document, layers)) in rows.sbom_imports {
                d.push(digest);
                k.push(kind);
                f.push(format);
                e.push(entry);
                t.push(at);
                doc.push(document);
                l.push(layers);
            }
            execute(
                tx,
                "INSERT INTO sbom_imports (digest, kind, format, entry, scanned_at, document, layers)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
                 ON CONFLICT (digest, kind, format) DO UPDATE SET entry = excluded.entry,
                     scanned_at = excluded.scanned_at, document = excluded.document, layers = excluded.layers
                 WHERE (excluded.scanned_at, excluded.entry) > (sbom_imports.scanned_at, sbom_imports.entry)",
                &[
                    (&d, Type::TEXT_ARRAY),
                    (&k, Type::TEXT_ARRAY),
                    (&f, Type::TEXT_ARRAY),
                    (&e, Type::INT8_ARRAY),
                    (&t, Type::INT8_ARRAY),
                    (&doc, Type::TEXT_ARRAY),
                    (&l, Type::TEXT_ARRAY),
                ],
            )?;
        }
        if !rows.sbom_packages.is_empty() {
            let (mut e, mut p, mut d, mut n, mut u, mut l) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for (entry, pkg, digest, name_key, purl, layer) in rows.sbom_packages {
                e.push(entry);
                p.push(pkg);
                d.push(digest);
                n.push(name_key);
                u.push(purl);
                l.push(layer);
            }
            execute(
                tx,
                "INSERT INTO sbom_packages (entry, pkg, digest, name_key, purl, layer)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[])",
                &[
                    (&e, Type::INT8_ARRAY),
                    (&p, Type::INT8_ARRAY),
                    (&d, Type::TEXT_ARRAY),
                    (&n, Type::TEXT_ARRAY),
                    (&u, Type::TEXT_ARRAY),
                    (&l, Type::TEXT_ARRAY),
                ],
            )?;
        }
        if !rows.sbom_findings.is_empty() {
            type Cols = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<String>, Vec<String>);
            let mut cols: Cols = (vec![], vec![], vec![], vec![], vec![]);
            let mut more: (Vec<i64>, Vec<String>, Vec<String>, Vec<String>) =
                (vec![], vec![], vec![], vec![]);
            for (entry, finding, alias, vuln_id, id, pkg, digest, severity, fixed) in
                rows.sbom_findings
            {
                cols.0.push(entry);
                cols.1.push(finding);
                cols.2.push(alias);
                cols.3.push(vuln_id);
                cols.4.push(id);
                more.0.push(pkg);
                more.1.push(digest);
                more.2.push(severity);
                more.3.push(fixed);
            }
            execute(
                tx,
                "INSERT INTO sbom_findings (entry, finding, alias, vuln_id, id, pkg, digest, severity, fixed)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[])",
                &[
                    (&cols.0, Type::INT8_ARRAY),
                    (&cols.1, Type::INT8_ARRAY),
                    (&cols.2, Type::INT8_ARRAY),
                    (&cols.3, Type::TEXT_ARRAY),
                    (&cols.4, Type::TEXT_ARRAY),
                    (&more.0, Type::INT8_ARRAY),
                    (&more.1, Type::TEXT_ARRAY),
                    (&more.2, Type::TEXT_ARRAY),
                    (&more.3, Type::TEXT_ARRAY),
                ],
            )?;
        }
        Ok(())
    }
}

fn not_a_fact(record: &Record) -> StoreError {
    StoreError::Backend(format!(
        "a {} is recorded through its own method, not as a fact",
        record.kind()
    ))
}

fn opt_str<T: ToString>(v: Option<&T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

// ---------------------------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------------------------

fn corrupt(index: u64) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupt { index, detail }
}

fn parse_record(index: u64, body: &str) -> Result<Record, StoreError> {
    serde_json::from_str(body).map_err(|e| corrupt(index)(e.to_string()))
}

fn parse_entry(
    index: u64,
    body: String,
    recorded_at: String,
    recorded_by: Option<String>,
) -> Result<Entry, StoreError> {
    let record = parse_record(index, &body)?;
    let recorded_at = Timestamp::parse(&recorded_at).map_err(|e| corrupt(index)(e.to_string()))?;
    let recorded_by = recorded_by
        .map(|s| Identity::parse(&s))
        .transpose()
        .map_err(|e| corrupt(index)(e.to_string()))?;
    Ok(Entry {
        index,
        record,
        body,
        recorded_at,
        recorded_by,
    })
}

/// The records at ledger `indexes`, in that order, read with one query.
fn records_at(c: &mut impl GenericClient, indexes: &[u64]) -> Result<Vec<Record>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<i64> = indexes.iter().map(|&i| i as i64 + 1).collect();
    let rows = query(
        c,
        "SELECT idx, body FROM entries WHERE idx = ANY($1)",
        &[(&wanted, Type::INT8_ARRAY)],
    )?;
    let bodies: HashMap<i64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    indexes
        .iter()
        .map(|&i| {
            let body = bodies
                .get(&(i as i64 + 1))
                .ok_or_else(|| corrupt(i)("the journal entry is missing".into()))?;
            parse_record(i, body)
        })
        .collect()
}

fn expect_build(index: u64, record: Record) -> Result<BuildRecord, StoreError> {
    match record {
        Record::Build(b) => Ok(b),
        other => Err(corrupt(index)(format!(
            "expected a build, found a {}",
            other.kind()
        ))),
    }
}

fn expect_deploy(index: u64, record: Record) -> Result<DeployRecord, StoreError> {
    match record {
        Record::Deploy(d) => Ok(d),
        other => Err(corrupt(index)(format!(
            "expected a deploy, found a {}",
            other.kind()
        ))),
    }
}

fn expect_service(index: u64, record: Record) -> Result<ServiceChange, StoreError> {
    match record {
        Record::Service(c) => Ok(c),
        other => Err(corrupt(index)(format!(
            "expected a service, found a {}",
            other.kind()
        ))),
    }
}

fn builds_at(c: &mut impl GenericClient, indexes: &[u64]) -> Result<Vec<BuildRecord>, StoreError> {
    let records = records_at(c, indexes)?;
    indexes
        .iter()
        .zip(records)
        .map(|(&i, r)| expect_build(i, r))
        .collect()
}

fn changes_at(
    c: &mut impl GenericClient,
    indexes: &[u64],
) -> Result<Vec<ServiceChange>, StoreError> {
    let records = records_at(c, indexes)?;
    indexes
        .iter()
        .zip(records)
        .map(|(&i, r)| expect_service(i, r))
        .collect()
}

/// Ledger indexes from a query whose first column is a 1-based entry.
fn indexes(
    c: &mut impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<u64>, StoreError> {
    Ok(query(c, sql, params)?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64 - 1)
        .collect())
}

/// What runs now (rows of `current`, filtered and ordered by `clause`), with each deploy and
/// the build of its digest, in one round trip: `affected` asks once per service.
fn running_where(
    c: &mut impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<RunningImage>, StoreError> {
    let sql = format!(
        "SELECT c.entry, de.body, be.idx, be.body FROM current c
         JOIN entries de ON de.idx = c.entry
         LEFT JOIN builds b ON b.digest = c.digest
         LEFT JOIN entries be ON be.idx = b.entry
         {clause}"
    );
    query(c, &sql, params)?
        .iter()
        .map(|r| {
            let index = r.get::<_, i64>(0) as u64 - 1;
            let deploy = expect_deploy(index, parse_record(index, r.get(1))?)?;
            let build = match r.get::<_, Option<i64>>(2) {
                Some(idx) => {
                    let index = idx as u64 - 1;
                    Some(expect_build(index, parse_record(index, r.get(3))?)?)
                }
                None => None,
            };
            Ok(RunningImage { deploy, build })
        })
        .collect()
}

fn checkpoints_where(
    c: &mut impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let rows = query(
        c,
        &format!("SELECT size, text, created FROM checkpoints {clause}"),
        params,
    )?;
    rows.iter()
        .map(|r| {
            let size = r.get::<_, i64>(0) as u64;
            Ok(StoredCheckpoint {
                size,
                text: r.get(1),
                created: Timestamp::parse(r.get(2))
                    .map_err(|e| corrupt(size)(format!("checkpoint time: {e}")))?,
            })
        })
        .collect()
}

impl PgStore {
    fn check_size(&self, c: &mut impl GenericClient, size: u64) -> Result<(), StoreError> {
        let head = log_size(c)?;
        if size > head {
            return Err(StoreError::LogMismatch(format!(
                "tree size {size} is beyond the log's {head} leaves"
            )));
        }
        Ok(())
    }
}

impl Store for PgStore {
    fn record_service_change(
        &mut self,
        change: &ServiceChange,
        recorded_at: Timestamp,
    ) -> Result<u64, StoreError> {
        self.write(recorded_at, |tx, frontier, recorded_at| {
            let mut batch = Batch::new(Log::Writer(frontier));
            batch.service_change(tx, change, recorded_at, 0)
        })
    }

    fn record_builds(
        &mut self,
        builds: &[BuildRecord],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<BuildOutcome>, StoreError> {
        if builds.is_empty() {
            return Ok(Vec::new());
        }
        self.write(recorded_at, |tx, frontier, recorded_at| {
            // Which digests the ledger has already, with their records: one query.
            let digests: Vec<String> = builds.iter().map(|b| b.digest.to_string()).collect();
            let rows = query(
                tx,
                "SELECT b.digest, e.idx, e.body FROM builds b JOIN entries e ON e.idx = b.entry
                 WHERE b.digest = ANY($1)",
                &[(&digests, Type::TEXT_ARRAY)],
            )?;
            let mut known: HashMap<String, (u64, Result<Record, StoreError>)> = HashMap::new();
            for r in &rows {
                let index = r.get::<_, i64>(1) as u64 - 1;
                known.insert(r.get(0), (index, parse_record(index, r.get(2))));
            }
            let mut batch = Batch::new(Log::Writer(frontier));
            // Builds new in this batch, so that a digest given twice is recorded once.
            let mut added: HashMap<String, (u64, &BuildRecord)> = HashMap::new();
            let mut outcomes = Vec::with_capacity(builds.len());
            for (build, digest) in builds.iter().zip(digests) {
                let outcome = if let Some((index, record)) = known.get(&digest) {
                    let index = *index;
                    match record {
                        Ok(Record::Build(old)) if old == build => {
                            BuildOutcome::AlreadyRecorded { index }
                        }
                        Ok(Record::Build(old)) => BuildOutcome::Conflict {
                            existing: Box::new(old.clone()),
                        },
                        Ok(other) => {
                            return Err(corrupt(index)(format!(
                                "expected a build, found a {}",
                                other.kind()
                            )))
                        }
                        Err(e) => return Err(corrupt(index)(e.to_string())),
                    }
                } else if let Some((index, old)) = added.get(&digest) {
                    if *old == build {
                        BuildOutcome::AlreadyRecorded { index: *index }
                    } else {
                        BuildOutcome::Conflict {
                            existing: Box::new((*old).clone()),
                        }
                    }
                } else {
                    let index = batch.build(build, recorded_at, recorded_by, 0);
                    added.insert(digest, (index, build));
                    BuildOutcome::Recorded { index }
                };
                outcomes.push(outcome);
            }
            batch.flush(tx)?;
            Ok(outcomes)
        })
    }

    fn record_deploys(
        &mut self,
        deploys: &[DeployRecord],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        if deploys.is_empty() {
            return Ok(Vec::new());
        }
        self.write(recorded_at, |tx, frontier, recorded_at| {
            let mut batch = Batch::new(Log::Writer(frontier));
            let indexes = deploys
                .iter()
                .map(|d| batch.deploy(d, recorded_at, recorded_by, 0))
                .collect();
            batch.flush(tx)?;
            Ok(indexes)
        })
    }

    fn service(&self, name: &ServiceName) -> Result<Option<Service>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT e.idx, e.body FROM services s JOIN entries e ON e.idx = s.entry
             WHERE s.name = $1",
            &[(&name.as_str(), Type::TEXT)],
        )?;
        rows.first()
            .map(|r| {
                let index = r.get::<_, i64>(0) as u64 - 1;
                Ok(expect_service(index, parse_record(index, r.get(1))?)?.service)
            })
            .transpose()
    }

    fn services_named(&self, names: &[ServiceName]) -> Result<Vec<Service>, StoreError> {
        let mut c = self.conn()?;
        let names: Vec<&str> = names.iter().map(ServiceName::as_str).collect();
        let rows = query(
            &mut *c,
            "SELECT e.idx, e.body FROM services s JOIN entries e ON e.idx = s.entry
             WHERE s.name = ANY($1) ORDER BY s.name COLLATE \"C\"",
            &[(&names, Type::TEXT_ARRAY)],
        )?;
        rows.iter()
            .map(|r| {
                let index = r.get::<_, i64>(0) as u64 - 1;
                Ok(expect_service(index, parse_record(index, r.get(1))?)?.service)
            })
            .collect()
    }

    fn services_for_images(
        &self,
        images: &[Repository],
    ) -> Result<Vec<(Repository, ServiceName)>, StoreError> {
        let mut c = self.conn()?;
        let names: Vec<String> = images.iter().map(ToString::to_string).collect();
        let rows = query(
            &mut *c,
            "SELECT image, service FROM service_images WHERE image = ANY($1)",
            &[(&names, Type::TEXT_ARRAY)],
        )?;
        rows.iter()
            .map(|r| {
                let image = Repository::parse(r.get(0)).map_err(|e| corrupt(0)(e.to_string()))?;
                let service =
                    ServiceName::parse(r.get(1)).map_err(|e| corrupt(0)(e.to_string()))?;
                Ok((image, service))
            })
            .collect()
    }

    fn running_of(&self, services: &[ServiceName]) -> Result<Vec<RunningImage>, StoreError> {
        let mut c = self.conn()?;
        let names: Vec<&str> = services.iter().map(ServiceName::as_str).collect();
        running_where(
            &mut *c,
            "WHERE c.service = ANY($1) ORDER BY c.service COLLATE \"C\", c.env COLLATE \"C\"",
            &[(&names, Type::TEXT_ARRAY)],
        )
    }

    fn facts_of(&self, kind: &str, keys: &[String]) -> Result<Vec<Entry>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT e.idx, e.body, e.recorded_at, e.recorded_by FROM facts f
             JOIN entries e ON e.idx = f.entry WHERE f.kind = $1 AND f.key = ANY($2)
             ORDER BY f.entry",
            &[(&kind, Type::TEXT), (&keys, Type::TEXT_ARRAY)],
        )?;
        rows.iter()
            .map(|r| parse_entry(r.get::<_, i64>(0) as u64 - 1, r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    fn services(&self) -> Result<Vec<Service>, StoreError> {
        let mut c = self.conn()?;
        // `COLLATE "C"`: byte order, as SQLite sorts, whatever the database's locale.
        let found = indexes(
            &mut *c,
            "SELECT entry FROM services ORDER BY name COLLATE \"C\"",
            &[],
        )?;
        Ok(changes_at(&mut *c, &found)?
            .into_iter()
            .map(|c| c.service)
            .collect())
    }

    fn service_history(&self, name: &ServiceName) -> Result<Vec<ServiceChange>, StoreError> {
        let mut c = self.conn()?;
        let found = indexes(
            &mut *c,
            "SELECT entry FROM service_changes WHERE service = $1 ORDER BY entry",
            &[(&name.as_str(), Type::TEXT)],
        )?;
        changes_at(&mut *c, &found)
    }

    fn service_for_image(&self, image: &Repository) -> Result<Option<ServiceName>, StoreError> {
        let mut c = self.conn()?;
        let image = image.to_string();
        let rows = query(
            &mut *c,
            "SELECT service FROM service_images WHERE image = $1",
            &[(&image, Type::TEXT)],
        )?;
        rows.first()
            .map(|r| ServiceName::parse(r.get(0)).map_err(|e| corrupt(0)(e.to_string())))
            .transpose()
    }

    fn build(&self, digest: &Digest) -> Result<Option<BuildRecord>, StoreError> {
        let mut c = self.conn()?;
        let digest = digest.to_string();
        let rows = query(
            &mut *c,
            "SELECT e.idx, e.body FROM builds b JOIN entries e ON e.idx = b.entry WHERE b.digest = $1",
            &[(&digest, Type::TEXT)],
        )?;
        rows.first()
            .map(|r| {
                let index = r.get::<_, i64>(0) as u64 - 1;
                expect_build(index, parse_record(index, r.get(1))?)
            })
            .transpose()
    }

    fn builds_of_service(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        let mut c = self.conn()?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let found = indexes(
            &mut *c,
            "SELECT entry FROM builds WHERE service = $1 ORDER BY entry DESC LIMIT $2",
            &[(&service.as_str(), Type::TEXT), (&limit, Type::INT8)],
        )?;
        builds_at(&mut *c, &found)
    }

    fn build_by_tag(
        &self,
        image: &Repository,
        tag: &Tag,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let mut c = self.conn()?;
        let image = image.to_string();
        let found = indexes(
            &mut *c,
            "SELECT entry FROM build_tags WHERE image = $1 AND tag = $2 ORDER BY entry DESC LIMIT 1",
            &[(&image, Type::TEXT), (&tag.as_str(), Type::TEXT)],
        )?;
        Ok(builds_at(&mut *c, &found)?.pop())
    }

    fn services_built_from(
        &self,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<ServiceName>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT DISTINCT service FROM build_commits WHERE source_repo = $1 AND commit_id = $2",
            &[
                (&repo.to_string(), Type::TEXT),
                (&commit.to_string(), Type::TEXT),
            ],
        )?;
        crate::api::service_names(rows.iter().map(|r| r.get(0)).collect())
    }

    fn builds_from(
        &self,
        service: &ServiceName,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        let mut c = self.conn()?;
        let found = indexes(
            &mut *c,
            "SELECT b.entry FROM build_commits c JOIN builds b ON b.digest = c.digest
             WHERE c.source_repo = $1 AND c.commit_id = $2 AND c.service = $3
             ORDER BY b.entry DESC",
            &[
                (&repo.to_string(), Type::TEXT),
                (&commit.to_string(), Type::TEXT),
                (&service.as_str(), Type::TEXT),
            ],
        )?;
        builds_at(&mut *c, &found)
    }

    fn other_ci_jobs(&self, excluding: &str) -> Result<Option<JobRange>, StoreError> {
        let mut c = self.conn()?;
        let mut ends = Vec::new();
        for order in ["ASC", "DESC"] {
            let rows = query(
                &mut *c,
                &format!(
                    "SELECT service, ci_job FROM service_latest_build
                     ORDER BY ci_job COLLATE \"C\" {order} LIMIT 2"
                ),
                &[],
            )?;
            ends.push(rows.iter().map(|r| (r.get(0), r.get(1))).collect());
        }
        Ok(crate::api::job_range(ends, excluding))
    }

    fn services_with_repo(&self, repo: &SourceRepo) -> Result<Vec<ServiceName>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT service FROM service_repos WHERE source_repo = $1",
            &[(&repo.to_string(), Type::TEXT)],
        )?;
        crate::api::service_names(rows.iter().map(|r| r.get(0)).collect())
    }

    fn base_tags(&self) -> Result<Vec<(Repository, Tag)>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT DISTINCT base_name, base_tag FROM base_tag_digests",
            &[],
        )?;
        crate::api::base_tags(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn base_tag_uses(&self, name: &Repository, tag: &Tag) -> Result<Vec<BaseTagUse>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT base_digest, first_used, last_used FROM base_tag_digests
             WHERE base_name = $1 AND base_tag = $2",
            &[(&name.to_string(), Type::TEXT), (&tag.as_str(), Type::TEXT)],
        )?;
        crate::api::base_tag_uses(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        )
    }

    fn base_usage(&self, filter: &BaseFilter) -> Result<Vec<BaseUsage>, StoreError> {
        let mut c = self.conn()?;
        // Aggregated per service in SQL, so a popular base costs one build load per service.
        let select = "SELECT service, sum(builds)::int8, max(latest_entry),
                      string_agg(base_name || chr(9) || base_tag || chr(9) || base_digest, chr(10))
                      FROM base_usage";
        let group = "GROUP BY service ORDER BY service COLLATE \"C\"";
        let rows = match filter {
            BaseFilter::Digest(d) => query(
                &mut *c,
                &format!("{select} WHERE base_digest = $1 {group}"),
                &[(&d.to_string(), Type::TEXT)],
            )?,
            BaseFilter::Name { name, tag: None } => query(
                &mut *c,
                &format!("{select} WHERE base_name = $1 {group}"),
                &[(&name.to_string(), Type::TEXT)],
            )?,
            BaseFilter::Name {
                name,
                tag: Some(tag),
            } => query(
                &mut *c,
                &format!("{select} WHERE base_name = $1 AND base_tag = $2 {group}"),
                &[(&name.to_string(), Type::TEXT), (&tag.as_str(), Type::TEXT)],
            )?,
        };
        let latest: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(2) as u64 - 1).collect();
        let builds = builds_at(&mut *c, &latest)?;
        let bad = |e: lineage_model::ParseError| corrupt(0)(e.to_string());
        rows.iter()
            .zip(builds)
            .map(|(r, latest_build)| {
                // One `name TAB tag TAB digest` line per matching base, from string_agg.
                let mut parsed = Vec::new();
                for line in r.get::<_, &str>(3).lines() {
                    let mut parts = line.split('\t');
                    let (name, tag, digest) = (
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                    );
                    parsed.push((
                        Repository::parse(name).map_err(bad)?,
                        non_empty(tag).map(Tag::parse).transpose().map_err(bad)?,
                        non_empty(digest)
                            .map(Digest::parse)
                            .transpose()
                            .map_err(bad)?,
                    ));
                }
                parsed.sort();
                Ok(BaseUsage {
                    service: ServiceName::parse(r.get(0)).map_err(bad)?,
                    bases: parsed,
                    builds: r.get::<_, i64>(1) as u64,
                    latest_build,
                })
            })
            .collect()
    }

    fn running(
        &self,
        env: Option<&EnvName>,
        service: Option<&ServiceName>,
    ) -> Result<Vec<RunningImage>, StoreError> {
        let mut c = self.conn()?;
        match (env, service) {
            (None, None) => running_where(
                &mut *c,
                "ORDER BY c.service COLLATE \"C\", c.env COLLATE \"C\"",
                &[],
            ),
            (Some(e), None) => running_where(
                &mut *c,
                "WHERE c.env = $1 ORDER BY c.service COLLATE \"C\"",
                &[(&e.as_str(), Type::TEXT)],
            ),
            (None, Some(s)) => running_where(
                &mut *c,
                "WHERE c.service = $1 ORDER BY c.env COLLATE \"C\"",
                &[(&s.as_str(), Type::TEXT)],
            ),
            (Some(e), Some(s)) => running_where(
                &mut *c,
                "WHERE c.service = $1 AND c.env = $2",
                &[(&s.as_str(), Type::TEXT), (&e.as_str(), Type::TEXT)],
            ),
        }
    }

    fn running_on_base(&self, filter: &BaseFilter) -> Result<Vec<RunningImage>, StoreError> {
        let mut c = self.conn()?;
        let exists = "WHERE EXISTS (SELECT 1 FROM build_bases bb WHERE bb.digest = c.digest AND";
        let order = ") ORDER BY c.service COLLATE \"C\", c.env COLLATE \"C\"";
        match filter {
            BaseFilter::Digest(d) => running_where(
                &mut *c,
                &format!("{exists} bb.base_digest = $1 {order}"),
                &[(&d.to_string(), Type::TEXT)],
            ),
            BaseFilter::Name { name, tag: None } => running_where(
                &mut *c,
                &format!("{exists} bb.base_name = $1 {order}"),
                &[(&name.to_string(), Type::TEXT)],
            ),
            BaseFilter::Name {
                name,
                tag: Some(tag),
            } => running_where(
                &mut *c,
                &format!("{exists} bb.base_name = $1 AND bb.base_tag = $2 {order}"),
                &[(&name.to_string(), Type::TEXT), (&tag.as_str(), Type::TEXT)],
            ),
        }
    }

    fn digests_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(Digest, DigestRole)>, StoreError> {
        let mut c = self.conn()?;
        let limit = limit as i64;
        let mut rows = Vec::new();
        // `left(…) =` is exact whatever the database's collation (a range would depend on it).
        for (sql, role) in [
            ("SELECT DISTINCT digest FROM builds WHERE left(digest, length($1)) = $1 LIMIT $2", DigestRole::Build),
            ("SELECT DISTINCT digest FROM deploys WHERE left(digest, length($1)) = $1 LIMIT $2", DigestRole::Deploy),
            ("SELECT DISTINCT base_digest FROM build_bases WHERE left(base_digest, length($1)) = $1 LIMIT $2", DigestRole::Base),
        ] {
            for r in query(&mut *c, sql, &[(&prefix, Type::TEXT), (&limit, Type::INT8)])? {
                rows.push((r.get::<_, String>(0), role));
            }
        }
        Ok(crate::api::digest_roles(rows))
    }

    fn sbom_packages(
        &self,
        query_: &SbomQuery,
    ) -> Result<Vec<SbomHit<SbomPackageRow>>, StoreError> {
        let cols = "p.entry, p.pkg, p.digest, p.purl, p.layer";
        let (sql, arg) = match query_ {
            SbomQuery::RunningName(key) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_packages p
                     JOIN sbom_imports i ON i.entry = p.entry
                     JOIN current c ON c.digest = p.digest
                     WHERE p.name_key = $1 ORDER BY c.service, c.env, p.entry, p.pkg"
                ),
                key.clone(),
            ),
            SbomQuery::RunningId(id) => (
                format!(
                    "SELECT DISTINCT c.service, c.env, {cols} FROM sbom_findings f
                     JOIN sbom_imports i ON i.entry = f.entry
                     JOIN sbom_packages p ON p.entry = f.entry AND p.pkg = f.pkg
                     JOIN current c ON c.digest = f.digest
                     WHERE f.vuln_id = $1 ORDER BY c.service, c.env, p.entry, p.pkg"
                ),
                id.to_ascii_uppercase(),
            ),
            SbomQuery::Digest(d) => (
                format!(
                    "SELECT NULL::text, NULL::text, {cols} FROM sbom_imports i
                     JOIN sbom_packages p ON p.entry = i.entry
                     WHERE i.digest = $1 ORDER BY p.entry, p.pkg"
                ),
                d.to_string(),
            ),
        };
        let mut c = self.conn()?;
        query(&mut *c, &sql, &[(&arg, Type::TEXT)])?
            .iter()
            .map(|r| {
                let row =
                    crate::sbom::package_row(r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))?;
                Ok(SbomHit {
                    running: crate::sbom::running(row.entry, r.get(0), r.get(1))?,
                    row,
                })
            })
            .collect()
    }

    fn sbom_findings(
        &self,
        query_: &SbomQuery,
    ) -> Result<Vec<SbomHit<SbomFindingRow>>, StoreError> {
        let cols = "p.entry, p.pkg, p.digest, p.purl, p.layer, f.id, f.severity, f.fixed";
        let joins = "JOIN sbom_imports i ON i.entry = f.entry
                     JOIN sbom_packages p ON p.entry = f.entry AND p.pkg = f.pkg";
        let (sql, arg) = match query_ {
            SbomQuery::RunningName(key) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_findings f {joins}
                     JOIN current c ON c.digest = f.digest
                     WHERE p.name_key = $1 AND f.alias = 0
                     ORDER BY c.service, c.env, f.entry, f.finding"
                ),
                key.clone(),
            ),
            SbomQuery::RunningId(id) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_findings f {joins}
                     JOIN current c ON c.digest = f.digest
                     WHERE f.vuln_id = $1 ORDER BY c.service, c.env, f.entry, f.finding"
                ),
                id.to_ascii_uppercase(),
            ),
            SbomQuery::Digest(d) => (
                format!(
                    "SELECT NULL::text, NULL::text, {cols} FROM sbom_findings f {joins}
                     WHERE i.digest = $1 AND f.alias = 0 ORDER BY f.entry, f.finding"
                ),
                d.to_string(),
            ),
        };
        let mut c = self.conn()?;
        query(&mut *c, &sql, &[(&arg, Type::TEXT)])?
            .iter()
            .map(|r| {
                let package =
                    crate::sbom::package_row(r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))?;
                Ok(SbomHit {
                    running: crate::sbom::running(package.entry, r.get(0), r.get(1))?,
                    row: crate::sbom::finding_row(package, r.get(7), r.get(8), r.get(9)),
                })
            })
            .collect()
    }

    fn sbom_imports(&self, digest: &Digest) -> Result<Vec<SbomImportRow>, StoreError> {
        let mut c = self.conn()?;
        query(
            &mut *c,
            "SELECT entry, kind, format, scanned_at, document, layers FROM sbom_imports
             WHERE digest = $1 ORDER BY kind, format",
            &[(&digest.to_string(), Type::TEXT)],
        )?
        .iter()
        .map(|r| {
            let entry = r.get::<_, i64>(0) as u64 - 1;
            Ok(SbomImportRow {
                entry,
                digest: digest.clone(),
                kind: r.get(1),
                format: r.get(2),
                scanned_at: Timestamp::from_unix(r.get(3)),
                document: Digest::parse(r.get(4)).map_err(|e| corrupt(entry)(e.to_string()))?,
                layers: crate::sbom::layers(entry, r.get(5))?,
            })
        })
        .collect()
    }

    fn running_inventory(&self, kind: Option<&str>) -> Result<Vec<RunningInventory>, StoreError> {
        let mut c = self.conn()?;
        query(
            &mut *c,
            "SELECT c.service, c.env, c.digest,
                 (SELECT max(i.scanned_at) FROM sbom_imports i WHERE i.digest = c.digest AND ($1::text IS NULL OR i.kind = $1))
             FROM current c ORDER BY c.service, c.env",
            &[(&kind, Type::TEXT)],
        )?
        .iter()
        .map(|r| {
            let bad = |e: lineage_model::ParseError| corrupt(0)(e.to_string());
            Ok(RunningInventory {
                service: ServiceName::parse(r.get(0)).map_err(bad)?,
                env: EnvName::parse(r.get(1)).map_err(bad)?,
                digest: Digest::parse(r.get(2)).map_err(bad)?,
                newest: r.get::<_, Option<i64>>(3).map(Timestamp::from_unix),
            })
        })
        .collect()
    }

    fn deploys_of_digest(&self, digest: &Digest) -> Result<Vec<DeployRecord>, StoreError> {
        let mut c = self.conn()?;
        let found = indexes(
            &mut *c,
            "SELECT entry FROM deploys WHERE digest = $1 ORDER BY at DESC, entry DESC",
            &[(&digest.to_string(), Type::TEXT)],
        )?;
        let records = records_at(&mut *c, &found)?;
        found
            .iter()
            .zip(records)
            .map(|(&i, r)| expect_deploy(i, r))
            .collect()
    }

    fn deploys_of_service(
        &self,
        service: &ServiceName,
        env: Option<&EnvName>,
    ) -> Result<Vec<DeployRecord>, StoreError> {
        let mut c = self.conn()?;
        let env = env.map(EnvName::as_str);
        let found = indexes(
            &mut *c,
            "SELECT entry FROM deploys WHERE service = $1 AND ($2::text IS NULL OR env = $2)
             ORDER BY at DESC, entry DESC",
            &[(&service.as_str(), Type::TEXT), (&env, Type::TEXT)],
        )?;
        let records = records_at(&mut *c, &found)?;
        found
            .iter()
            .zip(records)
            .map(|(&i, r)| expect_deploy(i, r))
            .collect()
    }

    fn placements(&self, env: Option<&EnvName>) -> Result<Vec<PlacementRow>, StoreError> {
        let mut c = self.conn()?;
        let env = env.map(EnvName::as_str);
        let rows = query(
            &mut *c,
            "SELECT service, env, digest, at, entry FROM current
             WHERE $1::text IS NULL OR env = $1
             ORDER BY service COLLATE \"C\", env COLLATE \"C\"",
            &[(&env, Type::TEXT)],
        )?;
        rows.iter()
            .map(|r| {
                let index = r.get::<_, i64>(4) as u64 - 1;
                let bad = |e: lineage_model::ParseError| corrupt(index)(e.to_string());
                Ok(PlacementRow {
                    service: ServiceName::parse(r.get(0)).map_err(bad)?,
                    env: EnvName::parse(r.get(1)).map_err(bad)?,
                    digest: Digest::parse(r.get(2)).map_err(bad)?,
                    since: Timestamp::from_unix(r.get(3)),
                    index,
                })
            })
            .collect()
    }

    fn observed(
        &self,
        env: Option<&EnvName>,
        digest: Option<&Digest>,
    ) -> Result<Vec<ObservedRow>, StoreError> {
        let mut c = self.conn()?;
        let env = env.map(EnvName::as_str);
        let digest = digest.map(|d| d.to_string());
        let rows = query(
            &mut *c,
            "SELECT o.source, o.env, o.image, o.digest, o.last_seen, o.entry,
                    (o.entry = s.entry OR NOT s.complete), o.workload, si.service, b.service
             FROM observations o JOIN observation_sources s ON s.source = o.source
             LEFT JOIN service_images si ON si.image = o.image
             LEFT JOIN builds b ON b.digest = o.digest
             WHERE ($1::text IS NULL OR o.env = $1) AND ($2::text IS NULL OR o.digest = $2)
             ORDER BY o.env COLLATE \"C\", o.digest COLLATE \"C\", o.source COLLATE \"C\",
                 o.image COLLATE \"C\"",
            &[(&env, Type::TEXT), (&digest, Type::TEXT)],
        )?;
        rows.iter()
            .map(|r| {
                crate::api::RawObserved {
                    source: r.get(0),
                    env: r.get(1),
                    image: r.get(2),
                    digest: r.get(3),
                    last_seen: r.get(4),
                    entry: r.get(5),
                    current: r.get(6),
                    workload: r.get(7),
                    owner: r.get(8),
                    built_for: r.get(9),
                }
                .parse()
            })
            .collect()
    }

    fn observation_sources(&self) -> Result<Vec<SourceState>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT s.source, s.entry, s.at, s.complete,
                    coalesce(string_agg(e.env, ' '), '')
             FROM observation_sources s
             LEFT JOIN observation_envs e ON e.source = s.source AND e.entry = s.entry
             GROUP BY s.source, s.entry, s.at, s.complete ORDER BY s.source COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|r| crate::api::source_state(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
    }

    fn append(
        &mut self,
        records: &[Record],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.write(recorded_at, |tx, frontier, recorded_at| {
            let mut batch = Batch::new(Log::Writer(frontier));
            let mut indexes = Vec::with_capacity(records.len());
            for r in records {
                indexes.push(match r {
                    Record::Build(b) => batch.build(b, recorded_at, recorded_by, 0),
                    Record::Deploy(d) => batch.deploy(d, recorded_at, recorded_by, 0),
                    Record::Service(c) => batch.service_change(tx, c, recorded_at, 0)?,
                    Record::Sbom(i) => batch.sbom(tx, r, i, recorded_at, recorded_by, 0)?,
                    fact => batch.fact(tx, fact, recorded_at, recorded_by, 0)?,
                });
            }
            // A build already recorded violates the `builds` key: the whole call fails.
            batch.flush(tx)?;
            Ok(indexes)
        })
    }

    fn record_facts(
        &mut self,
        facts: &[Record],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        // Refused before the transaction starts: a batch with a non-fact writes nothing.
        if let Some(bad) = facts.iter().find(|f| f.fact_key().is_none()) {
            return Err(not_a_fact(bad));
        }
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        self.write(recorded_at, |tx, frontier, recorded_at| {
            let mut batch = Batch::new(Log::Writer(frontier));
            let mut indexes = Vec::with_capacity(facts.len());
            for f in facts {
                indexes.push(match f {
                    Record::Sbom(i) => batch.sbom(tx, f, i, recorded_at, recorded_by, 0)?,
                    _ => batch.fact(tx, f, recorded_at, recorded_by, 0)?,
                });
            }
            batch.flush(tx)?;
            Ok(indexes)
        })
    }

    fn facts(&self, kind: &str, key: Option<&str>) -> Result<Vec<Entry>, StoreError> {
        let mut c = self.conn()?;
        let select = "SELECT e.idx, e.body, e.recorded_at, e.recorded_by FROM facts f
                      JOIN entries e ON e.idx = f.entry WHERE f.kind = $1";
        let rows = match key {
            Some(key) => query(
                &mut *c,
                &format!("{select} AND f.key = $2 ORDER BY f.entry"),
                &[(&kind, Type::TEXT), (&key, Type::TEXT)],
            )?,
            None => query(
                &mut *c,
                &format!("{select} ORDER BY f.entry"),
                &[(&kind, Type::TEXT)],
            )?,
        };
        rows.iter()
            .map(|r| parse_entry(r.get::<_, i64>(0) as u64 - 1, r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let mut c = self.conn()?;
        let (from, to) = (
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        let rows = query(
            &mut *c,
            "SELECT idx, body, recorded_at, recorded_by FROM entries
             WHERE idx > $1 AND idx <= $2 ORDER BY idx",
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )?;
        rows.iter()
            .map(|r| parse_entry(r.get::<_, i64>(0) as u64 - 1, r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    fn len(&self) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        // The journal is gapless from 1, so its largest index is its length: an index
        // lookup, where `count(*)` scans the whole table on every poll.
        let n: i64 = query(&mut *c, "SELECT coalesce(max(idx), 0) FROM entries", &[])?[0].get(0);
        Ok(n as u64)
    }

    fn build_index(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let mut c = self.conn()?;
        Ok(indexes(
            &mut *c,
            "SELECT entry FROM builds WHERE digest = $1",
            &[(&digest.to_string(), Type::TEXT)],
        )?
        .first()
        .copied())
    }

    fn log_head(&self) -> Result<LogHead, StoreError> {
        // Another process may have appended since this handle last wrote.
        let mut c = self.conn()?;
        let frontier = load_frontier(&mut *c)?;
        Ok(LogHead {
            size: frontier.size(),
            root: frontier.root(),
        })
    }

    fn log_root(&self, size: u64) -> Result<Hash, StoreError> {
        let mut c = self.conn()?;
        self.check_size(&mut *c, size)?;
        merkle::tree_hash(size, &PgHashes(RefCell::new(&mut *c))).map_err(tree_error)
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let mut c = self.conn()?;
        self.check_size(&mut *c, size)?;
        merkle::inclusion_proof(index, size, &PgHashes(RefCell::new(&mut *c))).map_err(tree_error)
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        let mut c = self.conn()?;
        self.check_size(&mut *c, new)?;
        merkle::consistency_proof(old, new, &PgHashes(RefCell::new(&mut *c))).map_err(tree_error)
    }

    fn log_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let mut c = self.conn()?;
        let mut out = Vec::new();
        let rows = c
            .query_raw(
                "SELECT idx, hash FROM log_hashes ORDER BY idx",
                std::iter::empty::<i64>(),
            )
            .map_err(pg)?;
        use postgres::fallible_iterator::FallibleIterator;
        let mut rows = rows;
        while let Some(row) = rows.next().map_err(pg)? {
            let idx: i64 = row.get(0);
            // A gap ends the readable sequence; the audit then reports the first leaf whose
            // hashes are missing or wrong.
            if idx as usize != out.len() {
                break;
            }
            out.push(merkle::hash_from_slice(row.get(1)).unwrap_or([0; 32]));
        }
        Ok(out)
    }

    fn log_hash_range(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let mut c = self.conn()?;
        let (from, to) = (
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        let rows = query(
            &mut *c,
            "SELECT idx, hash FROM log_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            // A gap ends the readable sequence; a malformed hash is a wrong hash.
            if row.get::<_, i64>(0) != from + out.len() as i64 {
                break;
            }
            out.push(merkle::hash_from_slice(row.get(1)).unwrap_or([0; 32]));
        }
        Ok(out)
    }

    fn raw_entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>, StoreError> {
        let mut c = self.conn()?;
        let (from, to) = (
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        let rows = query(
            &mut *c,
            "SELECT idx, kind, body FROM entries WHERE idx > $1 AND idx <= $2 ORDER BY idx",
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )?;
        Ok(rows
            .iter()
            .map(|r| RawEntry {
                index: r.get::<_, i64>(0) as u64 - 1,
                kind: r.get(1),
                body: r.get(2),
            })
            .collect())
    }

    fn check_projections_with_progress(
        &self,
        limit: usize,
        progress: &dyn lineage_model::Progress,
    ) -> Result<Vec<ProjectionMismatch>, StoreError> {
        let mut c = self.conn()?;
        rebuild_and_compare(&mut *c, limit, progress)
    }

    fn save_checkpoint(
        &mut self,
        size: u64,
        text: &str,
        created: Timestamp,
    ) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        let (size, created) = (size as i64, created.to_string());
        execute(
            &mut *c,
            "INSERT INTO checkpoints (size, text, created) VALUES ($1, $2, $3)
             ON CONFLICT (size) DO NOTHING",
            &[
                (&size, Type::INT8),
                (&text, Type::TEXT),
                (&created, Type::TEXT),
            ],
        )?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut c = self.conn()?;
        Ok(checkpoints_where(&mut *c, "ORDER BY size DESC LIMIT 1", &[])?.pop())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut c = self.conn()?;
        let size = size.min(i64::MAX as u64) as i64;
        Ok(checkpoints_where(&mut *c, "WHERE size = $1", &[(&size, Type::INT8)])?.pop())
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut c = self.conn()?;
        checkpoints_where(&mut *c, "ORDER BY size", &[])
    }

    fn kind_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut c = self.conn()?;
        let rows = query(
            &mut *c,
            "SELECT kind, count(*) FROM entries GROUP BY kind",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    fn wait_for_change(&self, seen: u64, timeout: Duration) -> Result<u64, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.listener.borrow_mut();
        if slot.is_none() {
            let mut client = connect::connect(&self.location)?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pg)?;
            *slot = Some(client);
        }
        let client = slot.as_mut().expect("listener set above");
        // Listening already, so no commit after this read goes unannounced.
        let mut size = match log_size(client) {
            Ok(size) => size,
            Err(e) => {
                *slot = None; // Reconnect on the next call.
                return Err(e);
            }
        };
        while size <= seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            use postgres::fallible_iterator::FallibleIterator;
            let next = client.notifications().timeout_iter(left).next();
            match next {
                Ok(Some(n)) => {
                    size = size.max(n.payload().parse().unwrap_or(0));
                }
                Ok(None) => break,
                Err(e) => {
                    *slot = None;
                    return Err(pg(e));
                }
            }
        }
        Ok(size)
    }
}

// ---------------------------------------------------------------------------------------------
// Audit: replay the journal into temporary tables and compare.
// ---------------------------------------------------------------------------------------------

/// Replays the journal with the writer's own projection code into temporary tables (which
/// shadow the ledger's tables on this connection only, and vanish with the transaction),
/// then compares every projection table with the ledger's, both ways. The replay writes no
/// journal rows, so the temporary tables are smaller than the ledger. Each table is first
/// compared by a keyed digest of its rows on both sides (one streaming read each, see
/// `audit`); only a table whose digests differ is compared row by row with `EXCEPT ALL`.
fn rebuild_and_compare(
    c: &mut impl GenericClient,
    limit: usize,
    progress: &dyn lineage_model::Progress,
) -> Result<Vec<ProjectionMismatch>, StoreError> {
    let mut tx = c.transaction().map_err(pg)?;
    let schema: String = query(&mut tx, "SELECT current_schema()", &[])?[0].get(0);
    let schema = quote_ident(&schema);
    for table in std::iter::once("entries").chain(PROJECTIONS.iter().map(|(t, _)| *t)) {
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {table} (LIKE {schema}.{table} INCLUDING DEFAULTS INCLUDING INDEXES)
             ON COMMIT DROP"
        ))
        .map_err(pg)?;
    }
    const CHUNK: i64 = 10_000;
    let end: i64 = query(
        &mut tx,
        &format!("SELECT coalesce(max(idx), 0) FROM {schema}.entries"),
        &[],
    )?[0]
        .get(0);
    let mut seen_builds = HashSet::new();
    let mut from = 0;
    while from < end {
        let to = from + CHUNK;
        let rows = query(
            &mut tx,
            &format!(
                "SELECT idx, body, recorded_at, recorded_by FROM {schema}.entries
                 WHERE idx > $1 AND idx <= $2 ORDER BY idx"
            ),
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )?;
        let mut batch = Batch::new(Log::Replay);
        for r in &rows {
            let index = r.get::<_, i64>(0) as u64 - 1;
            // Bodies that do not parse are the leaf check's business; they project nothing.
            let Ok(record) = serde_json::from_str::<Record>(r.get(1)) else {
                continue;
            };
            let at = Timestamp::parse(r.get(2)).unwrap_or(Timestamp::from_unix(0));
            let by = r
                .get::<_, Option<String>>(3)
                .and_then(|b| Identity::parse(&b).ok());
            match &record {
                Record::Build(b) => {
                    // A duplicate (a build copied behind Lineage's back) cannot be projected
                    // twice; the comparison reports what the ledger has instead.
                    if seen_builds.insert(b.digest.to_string()) {
                        batch.build(b, at, by.as_ref(), index);
                    }
                }
                Record::Deploy(d) => {
                    batch.deploy(d, at, by.as_ref(), index);
                }
                Record::Service(change) => {
                    batch.service_change(&mut tx, change, at, index)?;
                }
                Record::Sbom(i) => {
                    batch.sbom(&mut tx, &record, i, at, by.as_ref(), index)?;
                }
                fact => {
                    // Only a record with no fact key fails here, and it projects nothing.
                    if fact.fact_key().is_some() {
                        batch.fact(&mut tx, fact, at, by.as_ref(), index)?;
                    }
                }
            }
        }
        batch.flush(&mut tx)?;
        from = to;
        progress.update(
            "rebuilding projections",
            from.min(end) as u64,
            Some(end as u64),
        );
    }
    let key = crate::audit::AuditKey::generate()?;
    let mut out = Vec::new();
    for (done, (table, entry_col)) in PROJECTIONS.iter().enumerate() {
        progress.update(
            "comparing projections",
            done as u64,
            Some(PROJECTIONS.len() as u64),
        );
        let cols: Vec<String> = query(
            &mut tx,
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[(table, Type::TEXT)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let list = cols.join(", ");
        let order = entry_col.unwrap_or(cols[0].as_str());
        let shown: Vec<String> = cols
            .iter()
            .map(|c| format!("coalesce(quote_literal({c}), 'NULL')"))
            .collect();
        let shown = shown.join(", ");
        // Each row as one text value: equal rows give equal text.
        let row_text: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
        let row_text = format!("ROW({})::text", row_text.join(", "));
        let mut digests = Vec::new();
        for side in [format!("{schema}.{table}"), format!("pg_temp.{table}")] {
            let mut d = crate::audit::TableDigest::default();
            let sql = format!("SELECT {row_text} FROM {side} t");
            let mut rows = tx
                .query_raw(sql.as_str(), std::iter::empty::<i64>())
                .map_err(pg)?;
            use postgres::fallible_iterator::FallibleIterator;
            while let Some(row) = rows.next().map_err(pg)? {
                let text: &str = row.get(0);
                d.add(&key, &[crate::audit::Value::Text(text.as_bytes())]);
            }
            digests.push(d);
        }
        if digests[0] == digests[1] {
            continue;
        }
        for (stored_side, a, b) in [
            (
                true,
                format!("{schema}.{table}"),
                format!("pg_temp.{table}"),
            ),
            (
                false,
                format!("pg_temp.{table}"),
                format!("{schema}.{table}"),
            ),
        ] {
            let sql = format!(
                "SELECT {shown} FROM (SELECT {list} FROM {a} EXCEPT ALL SELECT {list} FROM {b}) d
                 ORDER BY {order} LIMIT {limit}"
            );
            for row in query(&mut tx, &sql, &[])? {
                let mut parts = Vec::new();
                let mut entry = None;
                for (i, col) in cols.iter().enumerate() {
                    let value: String = row.get(i);
                    if Some(col.as_str()) == *entry_col {
                        entry = value
                            .trim_matches('\'')
                            .parse::<i64>()
                            .ok()
                            .and_then(|n| u64::try_from(n - 1).ok());
                    }
                    parts.push(format!("{col}={value}"));
                }
                let text = parts.join(", ");
                out.push(ProjectionMismatch {
                    table: table.to_string(),
                    stored: stored_side.then(|| text.clone()),
                    expected: (!stored_side).then_some(text),
                    entry,
                });
            }
        }
    }
    // The temporary tables go with the transaction; nothing else was written.
    tx.rollback().map_err(pg)?;
    // First by the entry they concern, so the report names the earliest record.
    out.sort_by_key(|m| m.entry.unwrap_or(u64::MAX));
    out.truncate(limit);
    Ok(out)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The benchmark's raw-insert reference (see `bench::raw_insert_builds_pg`).
pub(crate) fn raw_insert_builds(
    location: &PgLocation,
    rows: &[crate::bench::RawBuild],
    batch: usize,
) -> Result<(), StoreError> {
    let mut client = connect::connect(location)?;
    let mut next: i64 = query(
        &mut client,
        "SELECT coalesce(max(idx), 0) FROM entries",
        &[],
    )?[0]
        .get(0);
    for chunk in rows.chunks(batch) {
        let mut tx = client.transaction().map_err(pg)?;
        tx.batch_execute("SET LOCAL synchronous_commit = on")
            .map_err(pg)?;
        let mut r = Rows::default();
        for row in chunk {
            let p = row.parts();
            next += 1;
            r.entries.push((
                next,
                "build",
                p.body.to_string(),
                "2026-11-01T00:00:00Z".to_string(),
                None,
            ));
            r.builds.push((
                p.digest.to_string(),
                p.service.to_string(),
                p.image.to_string(),
                next,
            ));
            for t in p.tags {
                r.build_tags.push((p.image.to_string(), t.clone(), next));
            }
            if let Some((repo, commit)) = p.commit {
                r.build_commits.insert((
                    repo.clone(),
                    commit.clone(),
                    p.service.to_string(),
                    p.digest.to_string(),
                ));
            }
            r.latest_builds
                .insert(p.service.to_string(), (p.ci_job.to_string(), next));
            for ((name, tag, digest, final_stage), at) in p.bases.iter().zip(p.base_seen) {
                if !tag.is_empty() && !digest.is_empty() {
                    let span = r
                        .base_tags
                        .entry((name.clone(), tag.clone(), digest.clone()))
                        .or_insert((*at, *at));
                    span.0 = span.0.min(*at);
                    span.1 = span.1.max(*at);
                }
                r.build_bases.push((
                    p.digest.to_string(),
                    name.clone(),
                    tag.clone(),
                    digest.clone(),
                    *final_stage,
                ));
                let usage = r
                    .base_usage
                    .entry((
                        p.service.to_string(),
                        name.clone(),
                        tag.clone(),
                        digest.clone(),
                    ))
                    .or_insert((0, next));
                usage.0 += 1;
                usage.1 = next;
            }
        }
        let mut batch = Batch::new(Log::Replay);
        batch.rows = r;
        batch.flush(&mut tx)?;
        tx.commit().map_err(pg)?;
    }
    Ok(())
}
