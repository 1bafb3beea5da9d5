//! The embedded SQLite backend: one file, WAL mode, `synchronous = FULL` so that a record is
//! on disk before the call that wrote it returns.
//!
//! The Merkle log lives in `log_hashes` (see `0002_log.sql`). The writer keeps the tree's
//! right frontier in memory, so an append hashes O(1) amortized nodes and reads nothing.

use std::path::{Path, PathBuf};

use lineage_log::merkle::{self, Frontier, Hash, HashReader, TreeError};
use lineage_model::{
    canonical_json, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record,
    Repository, Service, ServiceChange, ServiceName, SourceRepo, Tag, Timestamp,
};
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, Transaction};

use crate::api::{
    outcome_of_recorded, parse_entry, recorded_time, BaseFilter, BaseTagUse, BaseUsage,
    BuildOutcome, DigestRole, Entry, JobRange, LogHead, ObservedRow, PlacementRow,
    ProjectionMismatch, RawEntry, RunningImage, RunningInventory, SbomFindingRow, SbomHit,
    SbomImportRow, SbomPackageRow, SbomQuery, SourceState, Store, StoreError, StoredCheckpoint,
};
use crate::projection::{self, Row, Value};
use crate::SCHEMA_VERSION;

/// `PRAGMA application_id` of a Lineage ledger ("LNAG"), so that we never migrate someone
/// else's SQLite file.
const APPLICATION_ID: i64 = 0x4C4E_4147;

/// Append-only migrations; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/0001_initial.sql"),
    include_str!("sqlite/0002_log.sql"),
    include_str!("sqlite/0003_facts.sql"),
    include_str!("sqlite/0004_runtime.sql"),
    include_str!("sqlite/0005_sbom.sql"),
    include_str!("sqlite/0006_history.sql"),
    include_str!("sqlite/0007_build_lookups.sql"),
];

pub struct SqliteStore {
    conn: Connection,
    /// The log's right frontier as of the last commit this handle saw.
    frontier: Frontier,
    /// While a group commit is open ([`Store::begin_group`]): the frontier it started from,
    /// to go back to if the group is rolled back.
    group: Option<Frontier>,
    /// While a step of a group is open ([`Store::begin_step`]): the frontier it started from.
    step: Option<Frontier>,
}

impl SqliteStore {
    pub fn open(path: &Path, create: bool) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let exists = path.exists();
        if !exists && !create {
            return Err(StoreError::Missing(shown));
        }
        if !exists {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            create_atomically(path)?;
        }
        // Check what the file is before anything can write to it (even switching the
        // journal mode writes).
        check_file(path)?;
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        // A write runs more distinct statements than rusqlite caches by default (16): a
        // cache that thrashes parses SQL on every write (13% of the server's write path).
        conn.set_prepared_statement_cache_capacity(128);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(backend)?;
        let mut store = SqliteStore {
            conn,
            frontier: Frontier::new(),
            group: None,
            step: None,
        };
        store.migrate(&shown)?;
        store.frontier = load_frontier(&store.conn)?;
        Ok(store)
    }

    /// Opens an existing ledger for reading. When the normal open fails on the file system
    /// (a full disk has no room for the `-shm` file a WAL read needs) and no write-ahead log
    /// holds unmerged pages, the main file alone is the whole ledger, and it is read as
    /// immutable: a full disk stops writes, never reads.
    pub fn open_read(path: &Path) -> Result<SqliteStore, StoreError> {
        match SqliteStore::open(path, false) {
            Err(StoreError::Io { detail }) => {
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                let wal_empty = std::fs::metadata(Path::new(&wal)).map_or(true, |m| m.len() == 0);
                if !wal_empty {
                    return Err(StoreError::Io { detail });
                }
                SqliteStore::open_immutable(path).map_err(|_| StoreError::Io { detail })
            }
            other => other,
        }
    }

    fn open_immutable(path: &Path) -> Result<SqliteStore, StoreError> {
        let absolute = std::path::absolute(path).map_err(|e| StoreError::Io {
            detail: e.to_string(),
        })?;
        let mut uri = String::from("file:");
        for c in absolute.to_string_lossy().chars() {
            match c {
                '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
                c => uri.push(c),
            }
        }
        uri.push_str("?immutable=1");
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(backend)?;
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(backend)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if app != APPLICATION_ID || version != SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "`{}` cannot be read as it stands (application_id {app}, schema {version})",
                path.display()
            )));
        }
        let frontier = load_frontier(&conn)?;
        Ok(SqliteStore {
            conn,
            frontier,
            group: None,
            step: None,
        })
    }

    fn migrate(&mut self, shown: &str) -> Result<(), StoreError> {
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        // Only a migration writes; it takes the write lock first, so that processes opening
        // a new ledger at once migrate one after the other (the version is read again below).
        let tx = if current < SCHEMA_VERSION {
            write_transaction(&mut self.conn)?
        } else {
            self.conn.transaction().map_err(backend)?
        };
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: shown.to_string(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(backend)?;
            if i == 1 {
                // A ledger from before the log: its journal becomes the log's first leaves.
                backfill_log(&tx)?;
            }
            if i == 6 {
                backfill_build_lookups(&tx)?;
            }
            tx.execute_batch(&format!(
                "PRAGMA user_version = {}; PRAGMA application_id = {APPLICATION_ID};",
                i + 1
            ))
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

/// Makes a new, fully migrated ledger at `path` without ever showing a partial one: it is
/// built under a temporary name beside `path` and published with a hard link, which fails
/// when a ledger is already there. A crash leaves no ledger (only a stray temporary file),
/// and processes creating the same ledger at once all end up opening the one that won.
fn create_atomically(path: &Path) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = path.with_file_name(format!(".{name}.{}.{nanos}.creating", std::process::id()));
    let cleanup = |tmp: &Path| {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = tmp.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(Path::new(&p));
        }
    };
    let built = (|| {
        // A rollback journal, not WAL, while building: when the last commit returns, the
        // main file alone holds everything, so linking that one file publishes it whole.
        let conn = Connection::open(&tmp).map_err(backend)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(backend)?;
        let mut store = SqliteStore {
            conn,
            frontier: Frontier::new(),
            group: None,
            step: None,
        };
        store.migrate(&path.display().to_string())?;
        drop(store);
        Ok::<(), StoreError>(())
    })();
    if let Err(e) = built {
        cleanup(&tmp);
        return Err(e);
    }
    let linked = std::fs::hard_link(&tmp, path).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Ok(());
        }
        // A file system without hard links: a rename, checked first (not atomic against
        // a second creator, but never over an existing ledger we saw).
        if path.exists() {
            Ok(())
        } else {
            std::fs::rename(&tmp, path)
        }
    });
    cleanup(&tmp);
    linked.map_err(|e| {
        StoreError::Backend(format!(
            "cannot create the ledger `{}`: {e}",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Backend(format!("cannot sync `{}`: {e}", dir.display())))?;
    }
    Ok(())
}

/// Refuses files that are not Lineage ledgers, or are from a newer Lineage, without writing.
fn check_file(path: &Path) -> Result<(), StoreError> {
    let shown = path.display().to_string();
    let not_lineage = |detail: &str| StoreError::NotLineage {
        path: shown.clone(),
        detail: detail.to_string(),
    };
    match std::fs::metadata(path) {
        // `/dev/null` would be "opened" as an empty database, with a journal beside it.
        Ok(m) if !m.is_file() => {
            return Err(not_lineage(
                "it is not a regular file (a device, a FIFO or a directory)",
            ))
        }
        Ok(m) if m.len() == 0 => return Ok(()), // An empty file is a new database.
        _ => {}
    }
    // An I/O failure (a full disk cannot hold the `-shm` file a read needs) is not a verdict
    // on the file: only "not a database" is.
    let judged = |e: rusqlite::Error| {
        if is_io(&e) {
            backend(e)
        } else {
            not_lineage(&e.to_string())
        }
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(judged)?;
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(judged)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(judged)?;
    if app != APPLICATION_ID {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| not_lineage(&e.to_string()))?;
        if tables > 0 || app != 0 {
            return Err(not_lineage(&format!(
                "it is an SQLite database of another application (application_id {app}, {tables} tables)"
            )));
        }
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: shown,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A
/// deferred transaction that reads first and writes later cannot wait for the lock when
/// another process committed in between (SQLite returns "database is locked" at once, busy
/// timeout or not); an immediate one waits its turn, which serialises concurrent writers.
fn write_transaction(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)
}

fn backend(e: rusqlite::Error) -> StoreError {
    if is_io(&e) {
        return StoreError::Io {
            detail: e.to_string(),
        };
    }
    StoreError::Backend(e.to_string())
}

/// The file system failed, as opposed to the file not being a database.
fn is_io(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DiskFull | SystemIoFailure | CannotOpen | ReadOnly | PermissionDenied)
    )
}

/// Appends one journal entry with its log leaf and writes the rows its record projects to;
/// returns its 0-based index, which is also its leaf index.
fn insert(
    tx: &Connection,
    record: &Record,
    recorded_at: Timestamp,
    recorded_by: Option<&Identity>,
    frontier: &mut Frontier,
) -> Result<u64, StoreError> {
    let index = frontier.size();
    let rows = projection::rows(record, index as i64 + 1, recorded_at)?;
    let body = canonical_json(record);
    tx.prepare_cached(
        "INSERT INTO entries (idx, kind, body, recorded_at, recorded_by)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(backend)?
    .execute(params![
        index as i64 + 1,
        record.kind(),
        body,
        recorded_at.to_string(),
        projection::author(record, recorded_by).map(|i| i.as_str())
    ])
    .map_err(backend)?;
    // RFC 6962 §2.1: the leaf hash covers exactly the stored canonical bytes.
    let start = merkle::stored_hash_count(index);
    let new = frontier.append(merkle::leaf_hash(body.as_bytes()));
    let mut hashes = tx
        .prepare_cached("INSERT INTO log_hashes (idx, hash) VALUES (?1, ?2)")
        .map_err(backend)?;
    for (i, h) in new.iter().enumerate() {
        hashes
            .execute(params![(start + i as u64) as i64, &h[..]])
            .map_err(backend)?;
    }
    apply(tx, &rows)?;
    Ok(index)
}

/// Writes projection rows, one statement each, in order.
fn apply(tx: &Connection, rows: &[Row]) -> Result<(), StoreError> {
    for row in rows {
        apply_row(tx, row)?;
    }
    Ok(())
}

/// Writes one projection row.
fn apply_row(tx: &Connection, row: &Row) -> Result<(), StoreError> {
    tx.prepare_cached(statement(row))
        .map_err(backend)?
        .execute(rusqlite::params_from_iter(row.columns()))
        .map_err(backend)?;
    Ok(())
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Int(n) => ToSqlOutput::from(n),
            Value::Text(t) => ToSqlOutput::from(t),
            Value::Bool(b) => ToSqlOutput::from(b),
        })
    }
}

/// The statement that writes `row`, its parameters in [`Row::columns`] order. The `ON
/// CONFLICT` clauses are the tables' merge rules (see `projection`).
fn statement(row: &Row) -> &'static str {
    match row {
        Row::Build(_) => "INSERT INTO builds (digest, service, image, entry) VALUES (?1, ?2, ?3, ?4)",
        Row::BuildTag(_) => "INSERT INTO build_tags (image, tag, entry) VALUES (?1, ?2, ?3)",
        Row::BuildBase(_) => {
            "INSERT INTO build_bases (digest, base_name, base_tag, base_digest, final_stage)
             VALUES (?1, ?2, ?3, ?4, ?5)"
        }
        Row::BaseUsage(_) => {
            "INSERT INTO base_usage (service, base_name, base_tag, base_digest, builds, latest_entry)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (service, base_name, base_tag, base_digest)
             DO UPDATE SET builds = builds + excluded.builds,
                 latest_entry = max(latest_entry, excluded.latest_entry)"
        }
        Row::BaseTagDigest(_) => {
            "INSERT INTO base_tag_digests (base_name, base_tag, base_digest, first_used, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (base_name, base_tag, base_digest)
             DO UPDATE SET first_used = min(first_used, excluded.first_used),
                 last_used = max(last_used, excluded.last_used)"
        }
        Row::BuildCommit(_) => {
            "INSERT INTO build_commits (source_repo, commit_id, service, digest)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"
        }
        Row::LatestBuild(_) => {
            "INSERT INTO service_latest_build (service, ci_job, entry) VALUES (?1, ?2, ?3)
             ON CONFLICT (service) DO UPDATE SET ci_job = excluded.ci_job, entry = excluded.entry
             WHERE excluded.entry > service_latest_build.entry"
        }
        Row::Deploy(_) => {
            "INSERT INTO deploys (entry, service, env, digest, at) VALUES (?1, ?2, ?3, ?4, ?5)"
        }
        Row::Current(_) => {
            "INSERT INTO current (service, env, entry, digest, at)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (
                 SELECT 1 FROM placement_ends p WHERE p.service = ?1 AND p.env = ?2 AND p.at > ?5)
             ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry,
                 digest = excluded.digest, at = excluded.at
             WHERE excluded.at >= current.at"
        }
        Row::Fact(_) => "INSERT INTO facts (kind, key, entry) VALUES (?1, ?2, ?3)",
        Row::EndCurrent { .. } => "DELETE FROM current WHERE service = ?1 AND env = ?2 AND at <= ?3",
        Row::PlacementEnd(_) => {
            "INSERT INTO placement_ends (service, env, entry, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry, at = excluded.at
             WHERE excluded.at >= placement_ends.at"
        }
        Row::Service(_) => {
            "INSERT INTO services (name, entry) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET entry = excluded.entry"
        }
        Row::DropService { .. } => "DELETE FROM services WHERE name = ?1",
        Row::ServiceChange(_) => "INSERT INTO service_changes (service, entry) VALUES (?1, ?2)",
        Row::ClearServiceImages { .. } => "DELETE FROM service_images WHERE service = ?1",
        Row::ClearServiceRepo { .. } => "DELETE FROM service_repos WHERE service = ?1",
        Row::ServiceRepo(_) => "INSERT INTO service_repos (service, source_repo) VALUES (?1, ?2)",
        Row::ServiceImage(_) => {
            "INSERT INTO service_images (image, service) VALUES (?1, ?2)
             ON CONFLICT (image) DO UPDATE SET service = excluded.service"
        }
        Row::ObservationSource(_) => {
            "INSERT INTO observation_sources (source, entry, at, complete) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET entry = excluded.entry, at = excluded.at,
                 complete = excluded.complete"
        }
        Row::ObservationEnv(_) => {
            "INSERT INTO observation_envs (source, env, entry) VALUES (?1, ?2, ?3)
             ON CONFLICT (source, env) DO UPDATE SET entry = excluded.entry"
        }
        Row::Observation(_) => {
            "INSERT INTO observations (source, env, image, digest, last_seen, entry, workload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, env, image, digest) DO UPDATE SET
                 last_seen = max(observations.last_seen, excluded.last_seen),
                 entry = excluded.entry, workload = excluded.workload"
        }
        Row::SbomImport(_) => {
            "INSERT INTO sbom_imports (digest, kind, format, entry, scanned_at, document, layers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (digest, kind, format) DO UPDATE SET entry = excluded.entry,
                 scanned_at = excluded.scanned_at, document = excluded.document,
                 layers = excluded.layers
             WHERE excluded.scanned_at > sbom_imports.scanned_at
                OR (excluded.scanned_at = sbom_imports.scanned_at
                    AND excluded.entry > sbom_imports.entry)"
        }
        Row::SbomPackage(_) => {
            "INSERT INTO sbom_packages (entry, pkg, digest, name_key, purl, layer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        }
        Row::SbomFinding(_) => {
            "INSERT INTO sbom_findings (entry, finding, alias, vuln_id, id, pkg, digest, severity, fixed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        }
    }
}

/// The log size implied by the stored hashes, and the frontier rebuilt from them.
fn load_frontier(conn: &Connection) -> Result<Frontier, StoreError> {
    let count: i64 = conn
        .query_row(
            "SELECT coalesce(max(idx) + 1, 0) FROM log_hashes",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
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
    Frontier::from_reader(size, &SqlHashes(conn)).map_err(tree_error)
}

/// Starts a write: checks that the journal and the log agree on the next index, picking up
/// appends another process made since this handle last looked.
fn check_next_index(tx: &Connection, frontier: &mut Frontier) -> Result<(), StoreError> {
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

fn journal_len(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .query_row("SELECT coalesce(max(idx), 0) FROM entries", [], |r| {
            r.get(0)
        })
        .map_err(backend)?;
    Ok(n as u64)
}

/// Hashes a pre-log journal into the log (migration 2).
fn backfill_log(tx: &Connection) -> Result<(), StoreError> {
    let mut frontier = Frontier::new();
    let mut stmt = tx
        .prepare("SELECT idx, body FROM entries ORDER BY idx")
        .map_err(backend)?;
    let mut rows = stmt.query([]).map_err(backend)?;
    let mut insert = tx
        .prepare("INSERT INTO log_hashes (idx, hash) VALUES (?1, ?2)")
        .map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let idx: i64 = row.get(0).map_err(backend)?;
        let body: String = row.get(1).map_err(backend)?;
        if idx as u64 != frontier.size() + 1 {
            return Err(StoreError::LogMismatch(format!(
                "journal entry {} is missing",
                frontier.size()
            )));
        }
        let start = merkle::stored_hash_count(frontier.size());
        for (i, h) in frontier
            .append(merkle::leaf_hash(body.as_bytes()))
            .iter()
            .enumerate()
        {
            insert
                .execute(params![(start + i as u64) as i64, &h[..]])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// Stored log hashes read through one connection.
struct SqlHashes<'a>(&'a Connection);

impl HashReader for SqlHashes<'_> {
    type Error = StoreError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT hash FROM log_hashes WHERE idx = ?1")
            .map_err(backend)?;
        indexes
            .iter()
            .map(|&i| {
                let raw: Option<Vec<u8>> = stmt
                    .query_row([i as i64], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                let raw = raw.ok_or_else(|| {
                    StoreError::LogMismatch(format!("stored log hash {i} is missing"))
                })?;
                merkle::hash_from_slice(&raw).map_err(|_| {
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

impl SqliteStore {
    fn record_at(&self, index: u64) -> Result<Record, StoreError> {
        let body: String = self
            .conn
            .prepare_cached("SELECT body FROM entries WHERE idx = ?1")
            .map_err(backend)?
            .query_row([index as i64 + 1], |r| r.get(0))
            .map_err(backend)?;
        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
            index,
            detail: e.to_string(),
        })
    }

    fn build_at(&self, index: u64) -> Result<BuildRecord, StoreError> {
        match self.record_at(index)? {
            Record::Build(b) => Ok(b),
            other => Err(StoreError::Corrupt {
                index,
                detail: format!("expected a build, found a {}", other.kind()),
            }),
        }
    }

    fn deploy_at(&self, index: u64) -> Result<DeployRecord, StoreError> {
        match self.record_at(index)? {
            Record::Deploy(d) => Ok(d),
            other => Err(StoreError::Corrupt {
                index,
                detail: format!("expected a deploy, found a {}", other.kind()),
            }),
        }
    }

    fn indexes(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<u64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(backend)?;
        let rows = stmt
            .query_map(args, |r| r.get::<_, i64>(0))
            .map_err(backend)?;
        rows.map(|r| r.map(|i| i as u64 - 1).map_err(backend))
            .collect()
    }

    fn running_from(&self, entries: Vec<u64>) -> Result<Vec<RunningImage>, StoreError> {
        entries
            .into_iter()
            .map(|i| {
                let deploy = self.deploy_at(i)?;
                let build = self.build(&deploy.digest)?;
                Ok(RunningImage { deploy, build })
            })
            .collect()
    }
}

/// Fills the gates' lookup tables from the builds of a ledger made before they existed.
fn backfill_build_lookups(tx: &Connection) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare(
            "SELECT e.idx, e.body, e.recorded_at FROM builds b JOIN entries e ON e.idx = b.entry",
        )
        .map_err(backend)?;
    let mut rows = stmt.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let idx: i64 = row.get(0).map_err(backend)?;
        let body: String = row.get(1).map_err(backend)?;
        let at: String = row.get(2).map_err(backend)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            index: idx as u64 - 1,
            detail,
        };
        let Record::Build(build) =
            serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?
        else {
            return Err(corrupt(
                "a `builds` row points at an entry that is not a build".into(),
            ));
        };
        let at = Timestamp::parse(&at).map_err(|e| corrupt(e.to_string()))?;
        let mut lookups = Vec::new();
        projection::build_lookups(&build, idx, at, &mut lookups);
        apply(tx, &lookups)?;
    }
    Ok(())
}

/// The last journal entry's recorded time, if any.
fn last_recorded_at(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT idx, recorded_at FROM entries ORDER BY idx DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    last.map(|(idx, at)| {
        Timestamp::parse(&at).map_err(|e| StoreError::Corrupt {
            index: idx as u64 - 1,
            detail: e.to_string(),
        })
    })
    .transpose()
}

impl SqliteStore {
    /// Runs one write transaction: checks that the journal and the log agree, decides the
    /// time the entries are recorded at (never before the last entry's; see
    /// [`recorded_time`]), lets `f` append to a copy of the frontier at that time, and adopts
    /// the copy only once the transaction commits.
    fn write<T>(
        &mut self,
        recorded_at: Timestamp,
        f: impl FnOnce(&Connection, &mut Frontier, Timestamp) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.group.is_some() {
            // Inside a group commit: a savepoint, so this write fails alone, and the
            // group's transaction (already holding the write lock) commits it with the rest.
            // SQLite ends a transaction itself on some errors (a full disk); a savepoint
            // then would be a transaction of its own, durable outside the group.
            if self.conn.is_autocommit() {
                return Err(StoreError::Backend(
                    "the group commit was rolled back by an earlier error; nothing was written"
                        .into(),
                ));
            }
            let sp = self.conn.savepoint().map_err(backend)?;
            let out = Self::append_checked(&sp, &mut self.frontier, recorded_at, f)?;
            sp.commit().map_err(backend)?;
            return Ok(out);
        }
        let tx = write_transaction(&mut self.conn)?;
        check_next_index(&tx, &mut self.frontier)?;
        let mut frontier = self.frontier.clone();
        let out = Self::append_checked(&tx, &mut frontier, recorded_at, f)?;
        tx.commit().map_err(backend)?;
        self.frontier = frontier;
        Ok(out)
    }

    /// The body of [`SqliteStore::write`], in a transaction or savepoint `tx` that dropping
    /// rolls back: `frontier` is updated only when `f` succeeds.
    fn append_checked<T>(
        tx: &Connection,
        frontier: &mut Frontier,
        recorded_at: Timestamp,
        f: impl FnOnce(&Connection, &mut Frontier, Timestamp) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Read under the write lock (`BEGIN IMMEDIATE`): no writer can append between this
        // read and the commit.
        let (at, behind) = match recorded_time(recorded_at, last_recorded_at(tx)?) {
            Ok(at) => (at, None),
            Err(e) => (recorded_at, Some(e)),
        };
        let mut next = frontier.clone();
        let out = f(tx, &mut next, at)?;
        // Only a write that appends is refused: re-recording an identical build is a no-op
        // whatever its time.
        if let Some(e) = behind {
            if next.size() != frontier.size() {
                return Err(e);
            }
        }
        *frontier = next;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn begin_group(&mut self) -> Result<(), StoreError> {
        if self.group.is_some() {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(backend)?;
        if let Err(e) = check_next_index(&self.conn, &mut self.frontier) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        self.group = Some(self.frontier.clone());
        Ok(())
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        self.step = None;
        let Some(start) = self.group.take() else {
            return Ok(());
        };
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A failed COMMIT may leave the transaction open; nothing of it is durable.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.frontier = start;
            return Err(backend(e));
        }
        Ok(())
    }

    fn rollback_group(&mut self) {
        self.step = None;
        if let Some(start) = self.group.take() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.frontier = start;
        }
    }

    fn begin_step(&mut self) -> Result<(), StoreError> {
        if self.group.is_none() {
            return Ok(());
        }
        self.conn
            .execute_batch("SAVEPOINT lineage_step")
            .map_err(backend)?;
        self.step = Some(self.frontier.clone());
        Ok(())
    }

    fn end_step(&mut self, keep: bool) -> Result<(), StoreError> {
        let Some(start) = self.step.take() else {
            return Ok(());
        };
        if keep {
            return self
                .conn
                .execute_batch("RELEASE lineage_step")
                .map_err(backend);
        }
        self.frontier = start;
        self.conn
            .execute_batch("ROLLBACK TO lineage_step; RELEASE lineage_step")
            .map_err(backend)
    }

    fn append(
        &mut self,
        records: &[Record],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<u64>, StoreError> {
        self.write(recorded_at, |tx, frontier, recorded_at| {
            records
                .iter()
                .map(|r| insert(tx, r, recorded_at, recorded_by, frontier))
                .collect()
        })
    }

    fn facts(&self, kind: &str, key: Option<&str>) -> Result<Vec<Entry>, StoreError> {
        let found = match key {
            Some(key) => self.indexes(
                "SELECT entry FROM facts WHERE kind = ?1 AND key = ?2 ORDER BY entry",
                &[&kind, &key],
            )?,
            None => self.indexes(
                "SELECT entry FROM facts WHERE kind = ?1 ORDER BY entry",
                &[&kind],
            )?,
        };
        found
            .into_iter()
            .map(|i| {
                let (body, at, by): (String, String, Option<String>) = self
                    .conn
                    .prepare_cached(
                        "SELECT body, recorded_at, recorded_by FROM entries WHERE idx = ?1",
                    )
                    .map_err(backend)?
                    .query_row([i as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(backend)?;
                parse_entry(i, body, at, by)
            })
            .collect()
    }

    fn record_builds(
        &mut self,
        builds: &[BuildRecord],
        recorded_at: Timestamp,
        recorded_by: Option<&Identity>,
    ) -> Result<Vec<BuildOutcome>, StoreError> {
        self.write(recorded_at, |tx, frontier, recorded_at| {
            let mut outcomes = Vec::with_capacity(builds.len());
            for build in builds {
                let existing: Option<i64> = tx
                    .prepare_cached("SELECT entry FROM builds WHERE digest = ?1")
                    .map_err(backend)?
                    .query_row([build.digest.to_string()], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                let outcome = match existing {
                    None => BuildOutcome::Recorded {
                        index: insert(
                            tx,
                            &Record::Build(build.clone()),
                            recorded_at,
                            recorded_by,
                            frontier,
                        )?,
                    },
                    Some(entry) => {
                        let index = entry as u64 - 1;
                        let body: String = tx
                            .query_row("SELECT body FROM entries WHERE idx = ?1", [entry], |r| {
                                r.get(0)
                            })
                            .map_err(backend)?;
                        let existing =
                            serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                                index,
                                detail: e.to_string(),
                            })?;
                        outcome_of_recorded(build, index, existing)?
                    }
                };
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }

    fn service(&self, name: &ServiceName) -> Result<Option<Service>, StoreError> {
        let entry: Option<i64> = self
            .conn
            .prepare_cached("SELECT entry FROM services WHERE name = ?1")
            .map_err(backend)?
            .query_row([name.as_str()], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        match entry {
            None => Ok(None),
            Some(e) => match self.record_at(e as u64 - 1)? {
                Record::Service(c) => Ok(Some(c.service)),
                other => Err(StoreError::Corrupt {
                    index: e as u64 - 1,
                    detail: format!("expected a service, found a {}", other.kind()),
                }),
            },
        }
    }

    fn services(&self) -> Result<Vec<Service>, StoreError> {
        let indexes = self.indexes("SELECT entry FROM services ORDER BY name", &[])?;
        indexes
            .into_iter()
            .map(|i| match self.record_at(i)? {
                Record::Service(c) => Ok(c.service),
                other => Err(StoreError::Corrupt {
                    index: i,
                    detail: format!("expected a service, found a {}", other.kind()),
                }),
            })
            .collect()
    }

    fn service_history(&self, name: &ServiceName) -> Result<Vec<ServiceChange>, StoreError> {
        let indexes = self.indexes(
            "SELECT entry FROM service_changes WHERE service = ?1 ORDER BY entry",
            &[&name.as_str()],
        )?;
        indexes
            .into_iter()
            .map(|i| match self.record_at(i)? {
                Record::Service(c) => Ok(c),
                other => Err(StoreError::Corrupt {
                    index: i,
                    detail: format!("expected a service, found a {}", other.kind()),
                }),
            })
            .collect()
    }

    fn service_for_image(&self, image: &Repository) -> Result<Option<ServiceName>, StoreError> {
        let name: Option<String> = self
            .conn
            .prepare_cached("SELECT service FROM service_images WHERE image = ?1")
            .map_err(backend)?
            .query_row([image.to_string()], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        name.map(|n| {
            ServiceName::parse(&n).map_err(|e| StoreError::Corrupt {
                index: 0,
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    fn build(&self, digest: &Digest) -> Result<Option<BuildRecord>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM builds WHERE digest = ?1",
            &[&digest.to_string()],
        )?;
        found.first().map(|&i| self.build_at(i)).transpose()
    }

    fn builds_of_service(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM builds WHERE service = ?1 ORDER BY entry DESC LIMIT ?2",
            &[&service.as_str(), &(limit as i64)],
        )?;
        found.into_iter().map(|i| self.build_at(i)).collect()
    }

    fn build_by_tag(
        &self,
        image: &Repository,
        tag: &Tag,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM build_tags WHERE image = ?1 AND tag = ?2 ORDER BY entry DESC LIMIT 1",
            &[&image.to_string(), &tag.as_str()],
        )?;
        found.first().map(|&i| self.build_at(i)).transpose()
    }

    fn services_built_from(
        &self,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<ServiceName>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT service FROM build_commits WHERE source_repo = ?1 AND commit_id = ?2",
            )
            .map_err(backend)?
            .query_map(params![repo.to_string(), commit.to_string()], |r| r.get(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        crate::api::service_names(rows)
    }

    fn builds_from(
        &self,
        service: &ServiceName,
        repo: &SourceRepo,
        commit: &CommitId,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        let found = self.indexes(
            "SELECT b.entry FROM build_commits c JOIN builds b ON b.digest = c.digest
             WHERE c.source_repo = ?1 AND c.commit_id = ?2 AND c.service = ?3
             ORDER BY b.entry DESC",
            &[&repo.to_string(), &commit.to_string(), &service.as_str()],
        )?;
        found.into_iter().map(|i| self.build_at(i)).collect()
    }

    fn other_ci_jobs(&self, excluding: &str) -> Result<Option<JobRange>, StoreError> {
        let mut ends = Vec::new();
        for order in ["ASC", "DESC"] {
            let rows: Vec<(String, String)> = self
                .conn
                .prepare_cached(&format!(
                    "SELECT service, ci_job FROM service_latest_build ORDER BY ci_job {order} LIMIT 2"
                ))
                .map_err(backend)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            ends.push(rows);
        }
        Ok(crate::api::job_range(ends, excluding))
    }

    fn services_with_repo(&self, repo: &SourceRepo) -> Result<Vec<ServiceName>, StoreError> {
        let rows = self
            .conn
            .prepare_cached("SELECT service FROM service_repos WHERE source_repo = ?1")
            .map_err(backend)?
            .query_map([repo.to_string()], |r| r.get(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        crate::api::service_names(rows)
    }

    fn base_tags(&self) -> Result<Vec<(Repository, Tag)>, StoreError> {
        let rows = self
            .conn
            .prepare_cached("SELECT DISTINCT base_name, base_tag FROM base_tag_digests")
            .map_err(backend)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        crate::api::base_tags(rows)
    }

    fn base_tag_uses(&self, name: &Repository, tag: &Tag) -> Result<Vec<BaseTagUse>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT base_digest, first_used, last_used FROM base_tag_digests
                 WHERE base_name = ?1 AND base_tag = ?2",
            )
            .map_err(backend)?
            .query_map(params![name.to_string(), tag.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        crate::api::base_tag_uses(rows)
    }

    fn base_usage(&self, filter: &BaseFilter) -> Result<Vec<BaseUsage>, StoreError> {
        let (sql, args) = base_usage_query(filter);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let args: Vec<&dyn rusqlite::ToSql> =
            args.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
        let rows = stmt
            .query_map(args.as_slice(), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        let corrupt = |e: lineage_model::ParseError| StoreError::Corrupt {
            index: 0,
            detail: e.to_string(),
        };
        rows.into_iter()
            .map(|(service, builds, entry, bases)| {
                // One `name TAB tag TAB digest` line per matching base, from GROUP_CONCAT.
                let mut parsed = Vec::new();
                for line in bases.lines() {
                    let mut parts = line.split('\t');
                    let (name, tag, digest) = (
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                    );
                    parsed.push((
                        Repository::parse(name).map_err(corrupt)?,
                        non_empty(tag)
                            .map(Tag::parse)
                            .transpose()
                            .map_err(corrupt)?,
                        non_empty(digest)
                            .map(Digest::parse)
                            .transpose()
                            .map_err(corrupt)?,
                    ));
                }
                parsed.sort();
                Ok(BaseUsage {
                    service: ServiceName::parse(&service).map_err(corrupt)?,
                    bases: parsed,
                    builds: builds as u64,
                    latest_build: self.build_at(entry as u64 - 1)?,
                })
            })
            .collect()
    }

    fn running(
        &self,
        env: Option<&EnvName>,
        service: Option<&ServiceName>,
    ) -> Result<Vec<RunningImage>, StoreError> {
        let select = "SELECT entry FROM current";
        let entries = match (env, service) {
            (None, None) => self.indexes(&format!("{select} ORDER BY service, env"), &[])?,
            (Some(e), None) => self.indexes(
                &format!("{select} WHERE env = ?1 ORDER BY service"),
                &[&e.as_str()],
            )?,
            (None, Some(s)) => self.indexes(
                &format!("{select} WHERE service = ?1 ORDER BY env"),
                &[&s.as_str()],
            )?,
            (Some(e), Some(s)) => self.indexes(
                &format!("{select} WHERE service = ?1 AND env = ?2"),
                &[&s.as_str(), &e.as_str()],
            )?,
        };
        self.running_from(entries)
    }

    fn running_on_base(&self, filter: &BaseFilter) -> Result<Vec<RunningImage>, StoreError> {
        let entries = match filter {
            BaseFilter::Digest(d) => self.indexes(
                "SELECT DISTINCT c.entry FROM build_bases b JOIN current c ON c.digest = b.digest
                 WHERE b.base_digest = ?1 ORDER BY c.service, c.env",
                &[&d.to_string()],
            )?,
            BaseFilter::Name { name, tag: None } => self.indexes(
                "SELECT DISTINCT c.entry FROM current c CROSS JOIN build_bases b ON b.digest = c.digest
                 WHERE b.base_name = ?1 ORDER BY c.service, c.env",
                &[&name.to_string()],
            )?,
            BaseFilter::Name { name, tag: Some(tag) } => self.indexes(
                "SELECT DISTINCT c.entry FROM current c CROSS JOIN build_bases b ON b.digest = c.digest
                 WHERE b.base_name = ?1 AND b.base_tag = ?2 ORDER BY c.service, c.env",
                &[&name.to_string(), &tag.as_str()],
            )?,
        };
        self.running_from(entries)
    }

    fn digests_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(Digest, DigestRole)>, StoreError> {
        // A range on the indexed column: hex sorts below `g` in SQLite's binary collation.
        let upper = format!("{prefix}g");
        let mut rows = Vec::new();
        for (sql, role) in [
            ("SELECT DISTINCT digest FROM builds WHERE digest >= ?1 AND digest < ?2 LIMIT ?3", DigestRole::Build),
            ("SELECT DISTINCT digest FROM deploys WHERE digest >= ?1 AND digest < ?2 LIMIT ?3", DigestRole::Deploy),
            ("SELECT DISTINCT base_digest FROM build_bases WHERE base_digest >= ?1 AND base_digest < ?2 LIMIT ?3", DigestRole::Base),
        ] {
            let mut stmt = self.conn.prepare_cached(sql).map_err(backend)?;
            let found = stmt
                .query_map(params![prefix, upper, limit as i64], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            for d in found {
                rows.push((d.map_err(backend)?, role));
            }
        }
        Ok(crate::api::digest_roles(rows))
    }

    fn deploys_of_digest(&self, digest: &Digest) -> Result<Vec<DeployRecord>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM deploys WHERE digest = ?1 ORDER BY at DESC, entry DESC",
            &[&digest.to_string()],
        )?;
        found.into_iter().map(|i| self.deploy_at(i)).collect()
    }

    fn deploys_of_service(
        &self,
        service: &ServiceName,
        env: Option<&EnvName>,
    ) -> Result<Vec<DeployRecord>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM deploys WHERE service = ?1 AND (?2 IS NULL OR env = ?2)
             ORDER BY at DESC, entry DESC",
            &[&service.as_str(), &env.map(EnvName::as_str)],
        )?;
        found.into_iter().map(|i| self.deploy_at(i)).collect()
    }

    fn placements(&self, env: Option<&EnvName>) -> Result<Vec<PlacementRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT service, env, digest, at, entry FROM current
                 WHERE ?1 IS NULL OR env = ?1 ORDER BY service, env",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([env.map(EnvName::as_str)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(service, env, digest, at, entry)| {
                let index = entry as u64 - 1;
                let corrupt = |e: lineage_model::ParseError| StoreError::Corrupt {
                    index,
                    detail: e.to_string(),
                };
                Ok(PlacementRow {
                    service: ServiceName::parse(&service).map_err(corrupt)?,
                    env: EnvName::parse(&env).map_err(corrupt)?,
                    digest: Digest::parse(&digest).map_err(corrupt)?,
                    since: Timestamp::from_unix(at),
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
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.source, o.env, o.image, o.digest, o.last_seen, o.entry,
                        (o.entry = s.entry OR s.complete = 0), o.workload, si.service, b.service
                 FROM observations o JOIN observation_sources s ON s.source = o.source
                 LEFT JOIN service_images si ON si.image = o.image
                 LEFT JOIN builds b ON b.digest = o.digest
                 WHERE (?1 IS NULL OR o.env = ?1) AND (?2 IS NULL OR o.digest = ?2)
                 ORDER BY o.env, o.digest, o.source, o.image",
            )
            .map_err(backend)?;
        let digest = digest.map(|d| d.to_string());
        let rows = stmt
            .query_map(params![env.map(EnvName::as_str), digest], |r| {
                Ok(crate::api::RawObserved {
                    source: r.get(0)?,
                    env: r.get(1)?,
                    image: r.get(2)?,
                    digest: r.get(3)?,
                    last_seen: r.get(4)?,
                    entry: r.get(5)?,
                    current: r.get(6)?,
                    workload: r.get(7)?,
                    owner: r.get(8)?,
                    built_for: r.get(9)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(crate::api::RawObserved::parse)
            .collect()
    }

    fn observation_sources(&self) -> Result<Vec<SourceState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT s.source, s.entry, s.at, s.complete, coalesce(group_concat(e.env, ' '), '')
                 FROM observation_sources s
                 LEFT JOIN observation_envs e ON e.source = s.source AND e.entry = s.entry
                 GROUP BY s.source ORDER BY s.source",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(source, entry, at, complete, envs)| {
                crate::api::source_state(source, entry, at, complete, &envs)
            })
            .collect()
    }

    fn sbom_packages(&self, query: &SbomQuery) -> Result<Vec<SbomHit<SbomPackageRow>>, StoreError> {
        let cols = "p.entry, p.pkg, p.digest, p.purl, p.layer";
        let (sql, arg) = match query {
            SbomQuery::RunningName(key) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_packages p
                     JOIN sbom_imports i ON i.entry = p.entry
                     JOIN current c ON c.digest = p.digest
                     WHERE p.name_key = ?1 ORDER BY c.service, c.env, p.entry, p.pkg"
                ),
                key.clone(),
            ),
            SbomQuery::RunningId(id) => (
                format!(
                    "SELECT DISTINCT c.service, c.env, {cols} FROM sbom_findings f
                     JOIN sbom_imports i ON i.entry = f.entry
                     JOIN sbom_packages p ON p.entry = f.entry AND p.pkg = f.pkg
                     JOIN current c ON c.digest = f.digest
                     WHERE f.vuln_id = ?1 ORDER BY c.service, c.env, p.entry, p.pkg"
                ),
                id.to_ascii_uppercase(),
            ),
            SbomQuery::Digest(d) => (
                format!(
                    "SELECT NULL, NULL, {cols} FROM sbom_imports i
                     JOIN sbom_packages p ON p.entry = i.entry
                     WHERE i.digest = ?1 ORDER BY p.entry, p.pkg"
                ),
                d.to_string(),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(service, env, entry, pkg, digest, purl, layer)| {
                let row = crate::sbom::package_row(entry, pkg, &digest, &purl, &layer)?;
                Ok(SbomHit {
                    running: crate::sbom::running(row.entry, service, env)?,
                    row,
                })
            })
            .collect()
    }

    fn sbom_findings(&self, query: &SbomQuery) -> Result<Vec<SbomHit<SbomFindingRow>>, StoreError> {
        let cols = "p.entry, p.pkg, p.digest, p.purl, p.layer, f.id, f.severity, f.fixed";
        let joins = "JOIN sbom_imports i ON i.entry = f.entry
                     JOIN sbom_packages p ON p.entry = f.entry AND p.pkg = f.pkg";
        let (sql, arg) = match query {
            SbomQuery::RunningName(key) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_findings f {joins}
                     JOIN current c ON c.digest = f.digest
                     WHERE p.name_key = ?1 AND f.alias = 0
                     ORDER BY c.service, c.env, f.entry, f.finding"
                ),
                key.clone(),
            ),
            SbomQuery::RunningId(id) => (
                format!(
                    "SELECT c.service, c.env, {cols} FROM sbom_findings f {joins}
                     JOIN current c ON c.digest = f.digest
                     WHERE f.vuln_id = ?1 ORDER BY c.service, c.env, f.entry, f.finding"
                ),
                id.to_ascii_uppercase(),
            ),
            SbomQuery::Digest(d) => (
                format!(
                    "SELECT NULL, NULL, {cols} FROM sbom_findings f {joins}
                     WHERE i.digest = ?1 AND f.alias = 0 ORDER BY f.entry, f.finding"
                ),
                d.to_string(),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map([arg], |r| {
                Ok((
                    (
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ),
                    (
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, String>(9)?,
                    ),
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(
                |((service, env, entry, pkg, digest, purl, layer), (id, severity, fixed))| {
                    let package = crate::sbom::package_row(entry, pkg, &digest, &purl, &layer)?;
                    Ok(SbomHit {
                        running: crate::sbom::running(package.entry, service, env)?,
                        row: crate::sbom::finding_row(package, id, severity, fixed),
                    })
                },
            )
            .collect()
    }

    fn sbom_imports(&self, digest: &Digest) -> Result<Vec<SbomImportRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT entry, kind, format, scanned_at, document, layers FROM sbom_imports
                 WHERE digest = ?1 ORDER BY kind, format",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([digest.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(entry, kind, format, at, document, layers)| {
                let entry = entry as u64 - 1;
                Ok(SbomImportRow {
                    entry,
                    digest: digest.clone(),
                    kind,
                    format,
                    scanned_at: Timestamp::from_unix(at),
                    document: Digest::parse(&document).map_err(|e| StoreError::Corrupt {
                        index: entry,
                        detail: e.to_string(),
                    })?,
                    layers: crate::sbom::layers(entry, &layers)?,
                })
            })
            .collect()
    }

    fn running_inventory(&self, kind: Option<&str>) -> Result<Vec<RunningInventory>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.service, c.env, c.digest,
                     (SELECT max(i.scanned_at) FROM sbom_imports i WHERE i.digest = c.digest AND (?1 IS NULL OR i.kind = ?1))
                 FROM current c ORDER BY c.service, c.env",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([kind], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(service, env, digest, newest)| {
                let corrupt = |e: lineage_model::ParseError| StoreError::Corrupt {
                    index: 0,
                    detail: e.to_string(),
                };
                Ok(RunningInventory {
                    service: ServiceName::parse(&service).map_err(corrupt)?,
                    env: EnvName::parse(&env).map_err(corrupt)?,
                    digest: Digest::parse(&digest).map_err(corrupt)?,
                    newest: newest.map(Timestamp::from_unix),
                })
            })
            .collect()
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, body, recorded_at, recorded_by FROM entries
                 WHERE idx > ?1 AND idx <= ?2 ORDER BY idx",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([from as i64, to as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(idx, body, at, by)| parse_entry(idx as u64 - 1, body, at, by))
            .collect()
    }

    fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            // The journal is gapless from 1, so its largest index is its length: an index
            // lookup, where `count(*)` scans the whole table on every poll.
            .query_row("SELECT coalesce(max(idx), 0) FROM entries", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn build_index(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let found = self.indexes(
            "SELECT entry FROM builds WHERE digest = ?1",
            &[&digest.to_string()],
        )?;
        Ok(found.first().copied())
    }

    fn log_head(&self) -> Result<LogHead, StoreError> {
        // Another process may have appended since this handle last wrote.
        let frontier = load_frontier(&self.conn)?;
        Ok(LogHead {
            size: frontier.size(),
            root: frontier.root(),
        })
    }

    fn log_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size)?;
        merkle::tree_hash(size, &SqlHashes(&self.conn)).map_err(tree_error)
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        merkle::inclusion_proof(index, size, &SqlHashes(&self.conn)).map_err(tree_error)
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new)?;
        merkle::consistency_proof(old, new, &SqlHashes(&self.conn)).map_err(tree_error)
    }

    fn log_hashes(&self) -> Result<Vec<Hash>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, hash FROM log_hashes ORDER BY idx")
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let idx: i64 = row.get(0).map_err(backend)?;
            let raw: Vec<u8> = row.get(1).map_err(backend)?;
            // A gap or a malformed hash ends the readable sequence; the audit then reports
            // the first leaf whose hashes are missing or wrong.
            if idx as usize != out.len() {
                break;
            }
            match merkle::hash_from_slice(&raw) {
                Ok(h) => out.push(h),
                Err(_) => out.push([0; 32]),
            }
        }
        Ok(out)
    }

    fn log_hash_range(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, hash FROM log_hashes WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )
            .map_err(backend)?;
        let (from, to) = (
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        let mut rows = stmt.query([from, to]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let idx: i64 = row.get(0).map_err(backend)?;
            if idx != from + out.len() as i64 {
                break;
            }
            let raw = row.get_ref(1).map_err(backend)?;
            // A malformed hash is a wrong hash: the audit names the leaf that wrote it.
            out.push(merkle::hash_from_slice(raw.as_bytes().unwrap_or(&[])).unwrap_or([0; 32]));
        }
        Ok(out)
    }

    fn raw_entries(&self, from: u64, to: u64) -> Result<Vec<RawEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, kind, CAST(body AS BLOB) FROM entries
                 WHERE idx > ?1 AND idx <= ?2 ORDER BY idx",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([from as i64, to as i64], |r| {
                Ok(RawEntry {
                    index: r.get::<_, i64>(0)? as u64 - 1,
                    kind: r.get(1)?,
                    // Read as bytes: a tampered body need not be valid UTF-8.
                    body: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(2)?).into_owned(),
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn check_projections_with_progress(
        &self,
        limit: usize,
        progress: &dyn lineage_model::Progress,
    ) -> Result<Vec<ProjectionMismatch>, StoreError> {
        self.rebuild_and_compare(limit, progress)
    }

    fn save_checkpoint(
        &mut self,
        size: u64,
        text: &str,
        created: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints (size, text, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT (size) DO NOTHING",
                params![size as i64, text, created.to_string()],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.checkpoints_where("ORDER BY size DESC LIMIT 1", &[])
            .map(|mut v| v.pop())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.checkpoints_where("WHERE size = ?1", &[&(size as i64)])
            .map(|mut v| v.pop())
    }

    fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.checkpoints_where("ORDER BY size", &[])
    }
}

impl SqliteStore {
    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let head = load_frontier(&self.conn)?.size();
        if size > head {
            return Err(StoreError::LogMismatch(format!(
                "tree size {size} is beyond the log's {head} leaves"
            )));
        }
        Ok(())
    }

    fn checkpoints_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT size, text, created FROM checkpoints {clause}"
            ))
            .map_err(backend)?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(size, text, created)| {
                Ok(StoredCheckpoint {
                    size: size as u64,
                    text,
                    created: Timestamp::parse(&created).map_err(|e| StoreError::Corrupt {
                        index: size as u64,
                        detail: format!("checkpoint time: {e}"),
                    })?,
                })
            })
            .collect()
    }

    /// Replays the journal into a scratch database with the same projection code the writer
    /// uses, then compares every projection table with the ledger's, both ways. Any row edited,
    /// added or deleted behind Lineage's back shows up as a difference.
    ///
    /// The scratch database holds the projection tables only (the replay writes no journal
    /// rows), so it is smaller than the ledger. Each table is first compared by a keyed digest
    /// of its rows on both sides (one streaming read each, see `audit`); only a table whose
    /// digests differ is compared row by row with `EXCEPT`, which names the rows.
    ///
    /// The first pass does not write the rows of the append-only tables ([`STREAMED`]) to the
    /// scratch database at all: their replayed rows are digested as they come, which gives
    /// the digest the written table would have. Only when some table differs is the journal
    /// replayed again with every row written, so that `EXCEPT` can name the rows.
    fn rebuild_and_compare(
        &self,
        limit: usize,
        progress: &dyn lineage_model::Progress,
    ) -> Result<Vec<ProjectionMismatch>, StoreError> {
        let key = crate::audit::AuditKey::generate()?;
        if let Some(found) = self.audit_projections(&key, true, limit, progress)? {
            return Ok(found);
        }
        Ok(self
            .audit_projections(&key, false, limit, progress)?
            .unwrap_or_default())
    }

    /// One audit pass (see [`Self::rebuild_and_compare`]). With `stream`, the rows of the
    /// [`STREAMED`] tables are digested instead of written, and the pass gives up (`None`) at
    /// the first table that differs.
    ///
    /// Where the ledger can be opened a second time, two helper threads read it: one parses
    /// the journal and computes the rows (and the streamed rows' MACs) a page ahead of the
    /// writes, one digests the ledger's tables. Written pages go back to the first to be
    /// freed, so that memory is freed by the thread that allocated it (glibc's arenas
    /// otherwise contend).
    fn audit_projections(
        &self,
        key: &crate::audit::AuditKey,
        stream: bool,
        limit: usize,
        progress: &dyn lineage_model::Progress,
    ) -> Result<Option<Vec<ProjectionMismatch>>, StoreError> {
        let mut shadow = open_shadow()?;
        // Streaming holds only while the streamed tables have the columns `streamed_mac` gives.
        let stream = stream && streamed_tables_match(&shadow)?;
        let columns = projection::TABLES
            .iter()
            .map(|(table, _)| table_columns(&shadow, table))
            .collect::<Result<Vec<_>, _>>()?;
        let end = journal_len(&self.conn)?;
        let path = self.conn.path().unwrap_or_default().to_string();
        let readers = [self.second_reader(), self.second_reader()];
        let mut streams = [crate::audit::TableDigest::default(); STREAMED.len()];
        let stored = std::thread::scope(|s| -> Result<_, StoreError> {
            let [pages_reader, tables_reader] = readers;
            let stored = tables_reader.map(|conn| {
                let columns = &columns;
                s.spawn(move || table_digests(&conn, columns, key))
            });
            let pages = pages_reader.map(|conn| {
                let (send, receive) = std::sync::mpsc::sync_channel(1);
                let (give_back, written) = std::sync::mpsc::channel::<Vec<Vec<Replayed>>>();
                s.spawn(move || {
                    let mut from = 0;
                    while from < end {
                        let page = replay_page(&conn, from, stream.then_some(key));
                        let failed = page.is_err();
                        if send.send(page).is_err() || failed {
                            break;
                        }
                        from += PAGE;
                        written.try_iter().for_each(drop);
                    }
                    written.iter().for_each(drop);
                });
                (receive, give_back)
            });
            let mut from = 0;
            while from < end {
                let page = match &pages {
                    Some((receive, _)) => receive
                        .recv()
                        .map_err(|_| StoreError::Backend("the journal reader stopped".into()))??,
                    None => replay_page(&self.conn, from, stream.then_some(key))?,
                };
                let tx = shadow.transaction().map_err(backend)?;
                write_page(&tx, &page, &mut streams)?;
                tx.commit().map_err(backend)?;
                if let Some((_, give_back)) = &pages {
                    let _ = give_back.send(page);
                }
                from += PAGE;
                progress.update("rebuilding projections", from.min(end), Some(end));
            }
            drop(pages);
            match stored {
                Some(handle) => handle
                    .join()
                    .map_err(|_| StoreError::Backend("the ledger digest panicked".into()))?
                    .map(Some),
                None => Ok(None),
            }
        })?;
        let stored = match stored {
            Some(stored) => stored,
            None => table_digests(&self.conn, &columns, key)?,
        };
        shadow
            .execute("ATTACH DATABASE ?1 AS ledger", [path])
            .map_err(backend)?;
        let mut out = Vec::new();
        for (done, ((table, entry_col), cols)) in
            projection::TABLES.iter().zip(&columns).enumerate()
        {
            progress.update(
                "comparing projections",
                done as u64,
                Some(projection::TABLES.len() as u64),
            );
            let list = cols.join(", ");
            let streamed = STREAMED.iter().position(|(t, _)| t == table);
            let expected = match streamed {
                Some(i) if stream => streams[i],
                _ => table_digest(&shadow, table, cols, key)?,
            };
            if stored[done] == expected {
                continue;
            }
            if stream {
                return Ok(None);
            }
            let order = entry_col.unwrap_or(cols[0].as_str());
            for (stored_side, a, b) in [(true, "ledger", "main"), (false, "main", "ledger")] {
                let sql = format!(
                    "SELECT * FROM (SELECT {list} FROM {a}.{table} EXCEPT SELECT {list} FROM {b}.{table})
                     ORDER BY {order} LIMIT {limit}"
                );
                let mut stmt = shadow.prepare(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map([], |r| {
                        let mut parts = Vec::new();
                        let mut entry = None;
                        for (i, c) in cols.iter().enumerate() {
                            let v: rusqlite::types::Value = r.get(i)?;
                            let shown = match &v {
                                rusqlite::types::Value::Null => "NULL".to_string(),
                                rusqlite::types::Value::Integer(n) => n.to_string(),
                                rusqlite::types::Value::Real(x) => x.to_string(),
                                rusqlite::types::Value::Text(t) => format!("'{t}'"),
                                rusqlite::types::Value::Blob(b) => format!("x'{}'", hex(b)),
                            };
                            if Some(c.as_str()) == *entry_col {
                                if let rusqlite::types::Value::Integer(n) = v {
                                    entry = u64::try_from(n - 1).ok();
                                }
                            }
                            parts.push(format!("{c}={shown}"));
                        }
                        Ok((parts.join(", "), entry))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (text, entry) = row.map_err(backend)?;
                    out.push(ProjectionMismatch {
                        table: table.to_string(),
                        stored: stored_side.then(|| text.clone()),
                        expected: (!stored_side).then_some(text),
                        entry,
                    });
                }
            }
        }
        // First by the entry they concern, so the report names the earliest record.
        out.sort_by_key(|m| m.entry.unwrap_or(u64::MAX));
        out.truncate(limit);
        Ok(Some(out))
    }

    /// Another read-only connection to this ledger, for the audit's helper threads; `None`
    /// when there is none to be had (the audit then reads on this one).
    fn second_reader(&self) -> Option<Connection> {
        let path = self.conn.path().filter(|p| !p.is_empty())?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
        // It must see this ledger as this handle does.
        let len = journal_len(&conn).ok()?;
        (len == journal_len(&self.conn).ok()?).then_some(conn)
    }
}

/// Journal entries per page of the audit's replay.
const PAGE: u64 = 10_000;

/// What one journal entry projects to, as the audit's replay writes it.
enum Replayed {
    /// A row to write to the scratch database.
    Row(Row),
    /// A row of a [`STREAMED`] table, digested instead (the table's position there).
    Streamed(usize, crate::audit::RowMac),
}

/// Reads the journal entries after `from` (a page of them) and replays each with the writer's
/// projection code; with `stream`, rows of the [`STREAMED`] tables come as their MACs.
fn replay_page(
    conn: &Connection,
    from: u64,
    stream: Option<&crate::audit::AuditKey>,
) -> Result<Vec<Vec<Replayed>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT idx, CAST(body AS BLOB), recorded_at FROM entries
             WHERE idx > ?1 AND idx <= ?2 ORDER BY idx",
        )
        .map_err(backend)?;
    let mut rows = stmt
        .query([from as i64, (from + PAGE) as i64])
        .map_err(backend)?;
    let mut page = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let idx = row.get::<_, i64>(0).map_err(backend)?;
        // Bodies that do not parse are the leaf check's business; they project nothing here.
        let bytes = row.get_ref(1).map_err(backend)?.as_bytes().unwrap_or(&[]);
        let body = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let at: Option<&str> = row.get_ref(2).map_err(backend)?.as_str().ok();
        let Some(projected) = projection::replay(idx, &body, at) else {
            continue;
        };
        page.push(
            projected
                .into_iter()
                .map(|row| match stream.and_then(|key| streamed_mac(&row, key)) {
                    Some((table, mac)) => Replayed::Streamed(table, mac),
                    None => Replayed::Row(row),
                })
                .collect(),
        );
    }
    Ok(page)
}

/// Writes a page of replayed entries to the scratch database one row at a time, as the
/// writer does, adding the streamed rows to `streams`.
fn write_page(
    tx: &Connection,
    page: &[Vec<Replayed>],
    streams: &mut [crate::audit::TableDigest; STREAMED.len()],
) -> Result<(), StoreError> {
    for entry in page {
        for item in entry {
            match item {
                Replayed::Streamed(table, mac) => streams[*table].add_mac(*mac),
                // A duplicate (say, a build copied behind Lineage's back) cannot be projected
                // twice: its first row fails, the rest of its record is not written (as
                // `apply` stops), and the comparison reports what the ledger has instead.
                Replayed::Row(row) => match apply_row(tx, row) {
                    Err(StoreError::Backend(_)) => break,
                    other => other?,
                },
            }
        }
    }
    Ok(())
}

/// The digest of every projection table of the database `conn` reads as its main schema,
/// `columns[i]` being the columns of `projection::TABLES[i]`.
fn table_digests(
    conn: &Connection,
    columns: &[Vec<String>],
    key: &crate::audit::AuditKey,
) -> Result<Vec<crate::audit::TableDigest>, StoreError> {
    projection::TABLES
        .iter()
        .zip(columns)
        .map(|((table, _), cols)| table_digest(conn, table, cols, key))
        .collect()
}

/// The digest of `table`'s rows (see `audit`), reading `cols`.
fn table_digest(
    conn: &Connection,
    table: &str,
    cols: &[String],
    key: &crate::audit::AuditKey,
) -> Result<crate::audit::TableDigest, StoreError> {
    use crate::audit::Value;
    use rusqlite::types::ValueRef;
    let mut d = crate::audit::TableDigest::default();
    let mut stmt = conn
        .prepare(&format!("SELECT {} FROM main.{table}", cols.join(", ")))
        .map_err(backend)?;
    let mut rows = stmt.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let mut values = Vec::with_capacity(cols.len());
        for i in 0..cols.len() {
            values.push(match row.get_ref(i).map_err(backend)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(x) => Value::Real(x),
                ValueRef::Text(t) => Value::Text(t),
                ValueRef::Blob(b) => Value::Blob(b),
            });
        }
        d.add(key, &values);
    }
    Ok(d)
}

/// The projection tables whose replayed rows the audit digests instead of writing, with their
/// columns in table order. Each is only ever appended to, and no constraint can refuse a
/// replayed row of it: `deploys` and `service_changes` are keyed by the entry (one row each),
/// `build_tags`, `build_bases` and `facts` have no key, and a `build_commits` row names its
/// build's digest and follows that build's `builds` row, which fails for a digest seen before.
/// So the table the replay would write holds exactly the rows it gave, and its digest is theirs.
const STREAMED: &[(&str, &[&str])] = &[
    ("service_changes", &["service", "entry"]),
    ("build_tags", &["image", "tag", "entry"]),
    (
        "build_bases",
        &[
            "digest",
            "base_name",
            "base_tag",
            "base_digest",
            "final_stage",
        ],
    ),
    (
        "build_commits",
        &["source_repo", "commit_id", "service", "digest"],
    ),
    ("deploys", &["entry", "service", "env", "digest", "at"]),
    ("facts", &["kind", "key", "entry"]),
];

/// The table (its position in [`STREAMED`]) and MAC of `row` when its table is one of
/// [`STREAMED`], with the values SQLite would store (a boolean is an integer).
fn streamed_mac(row: &Row, key: &crate::audit::AuditKey) -> Option<(usize, crate::audit::RowMac)> {
    use crate::audit::RowMac;
    use crate::audit::Value::{Integer, Text};
    Some(match row {
        Row::ServiceChange(r) => (
            0,
            RowMac::of(key, &[Text(r.service.as_bytes()), Integer(r.entry)]),
        ),
        Row::BuildTag(r) => (
            1,
            RowMac::of(
                key,
                &[
                    Text(r.image.as_bytes()),
                    Text(r.tag.as_bytes()),
                    Integer(r.entry),
                ],
            ),
        ),
        Row::BuildBase(r) => (
            2,
            RowMac::of(
                key,
                &[
                    Text(r.digest.as_bytes()),
                    Text(r.base_name.as_bytes()),
                    Text(r.base_tag.as_bytes()),
                    Text(r.base_digest.as_bytes()),
                    Integer(i64::from(r.final_stage)),
                ],
            ),
        ),
        Row::BuildCommit(r) => (
            3,
            RowMac::of(
                key,
                &[
                    Text(r.source_repo.as_bytes()),
                    Text(r.commit_id.as_bytes()),
                    Text(r.service.as_bytes()),
                    Text(r.digest.as_bytes()),
                ],
            ),
        ),
        Row::Deploy(r) => (
            4,
            RowMac::of(
                key,
                &[
                    Integer(r.entry),
                    Text(r.service.as_bytes()),
                    Text(r.env.as_bytes()),
                    Text(r.digest.as_bytes()),
                    Integer(r.at),
                ],
            ),
        ),
        Row::Fact(r) => (
            5,
            RowMac::of(
                key,
                &[
                    Text(r.kind.as_bytes()),
                    Text(r.key.as_bytes()),
                    Integer(r.entry),
                ],
            ),
        ),
        _ => return None,
    })
}

/// Whether the scratch database's [`STREAMED`] tables have exactly the columns listed there
/// (a later migration that adds one turns streaming off until the list follows).
fn streamed_tables_match(shadow: &Connection) -> Result<bool, StoreError> {
    for (table, cols) in STREAMED {
        if table_columns(shadow, table)? != *cols {
            return Ok(false);
        }
    }
    Ok(true)
}

fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .map_err(backend)?
        .query_map([], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// The secondary indexes the replay's statements read through (`DELETE FROM service_images
/// WHERE service = ?`); the scratch database keeps only these and the tables' keys.
const REPLAY_INDEXES: &[&str] = &["service_images_by_service"];

/// A private scratch database with the projection tables, for the audit's replay.
///
/// An empty path is a private temporary database on disk, so a large ledger does not have to
/// fit in memory; a fixed page cache keeps memory flat and spills less. The shadow has no
/// journal rows, so the projections' foreign keys to it are off (the bundled SQLite turns
/// them on by default). The ledger's secondary indexes serve its queries, not the replay,
/// and are dropped (comparing tables never reads them); keys and conflict targets stay.
fn open_shadow() -> Result<Connection, StoreError> {
    let shadow = Connection::open("").map_err(backend)?;
    // The replay cycles through every projection statement, as the writer does (see `open`).
    shadow.set_prepared_statement_cache_capacity(128);
    shadow
        .execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -32768;
             PRAGMA foreign_keys = OFF;",
        )
        .map_err(backend)?;
    for sql in MIGRATIONS {
        shadow.execute_batch(sql).map_err(backend)?;
    }
    let indexes: Vec<String> = shadow
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .map_err(backend)?
        .query_map([], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for index in indexes {
        if !REPLAY_INDEXES.contains(&index.as_str()) {
            shadow
                .execute_batch(&format!("DROP INDEX {index}"))
                .map_err(backend)?;
        }
    }
    Ok(shadow)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn base_usage_query(filter: &BaseFilter) -> (String, Vec<String>) {
    // Aggregated per service in SQL, so a popular base costs one build load per service.
    let select = "SELECT service, sum(builds), max(latest_entry),
                  group_concat(base_name || char(9) || base_tag || char(9) || base_digest, char(10))
                  FROM base_usage";
    let (filter, args) = match filter {
        BaseFilter::Digest(d) => ("base_digest = ?1", vec![d.to_string()]),
        BaseFilter::Name { name, tag: None } => ("base_name = ?1", vec![name.to_string()]),
        BaseFilter::Name {
            name,
            tag: Some(tag),
        } => (
            "base_name = ?1 AND base_tag = ?2",
            vec![name.to_string(), tag.to_string()],
        ),
    };
    (
        format!("{select} WHERE {filter} GROUP BY service ORDER BY service"),
        args,
    )
}

/// Whether the audit's first pass (the [`STREAMED`] tables digested, not written) finds every
/// projection of the SQLite ledger at `path` as its journal says. For tests: a ledger nobody
/// tampered with must never need the second pass.
#[doc(hidden)]
///
/// `Err` when the streamed tables no longer have the columns the stream digests (the first
/// pass would then write every row, and the test would prove nothing about streaming).
pub fn audit_first_pass_agrees(path: &Path) -> Result<bool, StoreError> {
    if !streamed_tables_match(&open_shadow()?)? {
        return Err(StoreError::Backend(
            "the streamed tables' columns changed: the audit does not stream them".into(),
        ));
    }
    let store = SqliteStore::open(path, false)?;
    let key = crate::audit::AuditKey::generate()?;
    // `None`: the streaming pass gave up at a difference; `Some(empty)`: it agreed.
    match store.audit_projections(&key, true, 10, &())? {
        None => Ok(false),
        Some(found) if found.is_empty() => Ok(true),
        Some(found) => Err(StoreError::Backend(format!(
            "the streaming pass reported rows instead of giving up: {found:?}"
        ))),
    }
}

/// A plain connection to a ledger file, for the raw-insert benchmark reference and tamper
/// tests.
pub fn raw_connection(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open(PathBuf::from(path))
}
