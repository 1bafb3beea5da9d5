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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use lineage_log::merkle::{self, Frontier, Hash, HashReader, TreeError};
use lineage_model::{
    canonical_json, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record,
    Repository, Service, ServiceChange, ServiceName, SourceRepo, Tag, Timestamp,
};
use postgres::types::{ToSql, Type};
use postgres::GenericClient;

pub(crate) use connect::redact;
pub use connect::PgLocation;

use crate::api::{
    outcome_of_recorded, parse_entry, recorded_time, BaseFilter, BaseTagUse, BaseUsage,
    BuildOutcome, DigestRole, Entry, JobRange, LogHead, ObservedRow, PlacementRow,
    ProjectionMismatch, RawEntry, RunningImage, RunningInventory, SbomFindingRow, SbomHit,
    SbomImportRow, SbomPackageRow, SbomQuery, SourceState, Store, StoreError, StoredCheckpoint,
};
use crate::projection::{self, Pending, Row, Value};

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
        let mut batch = Batch::replay();
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
            let mut lookups = Vec::new();
            projection::build_lookups(&build, index as i64 + 1, at, &mut lookups);
            batch.rows(tx, lookups)?;
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
) -> Result<Vec<postgres::Row>, StoreError> {
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

/// Journal rows, log hashes and projection rows, gathered and written with one multi-row
/// statement per table.
struct Batch<'a> {
    /// The log's frontier for a real write; `None` when the audit replays projections only
    /// (its scratch tables hold no journal: no projection reads it).
    frontier: Option<&'a mut Frontier>,
    entries: Vec<(i64, &'static str, String, String, Option<String>)>,
    hashes: Vec<(i64, Vec<u8>)>,
    pending: Pending,
}

impl<'a> Batch<'a> {
    fn writer(frontier: &'a mut Frontier) -> Batch<'a> {
        Batch {
            frontier: Some(frontier),
            entries: Vec::new(),
            hashes: Vec::new(),
            pending: Pending::default(),
        }
    }

    fn replay() -> Batch<'static> {
        Batch {
            frontier: None,
            entries: Vec::new(),
            hashes: Vec::new(),
            pending: Pending::default(),
        }
    }

    /// Appends `record` as the next journal entry, with its log leaf and its projection rows;
    /// returns its index.
    fn record(
        &mut self,
        tx: &mut impl GenericClient,
        record: &Record,
        at: Timestamp,
        by: Option<&Identity>,
    ) -> Result<u64, StoreError> {
        let frontier = self
            .frontier
            .as_deref_mut()
            .expect("only a writer's batch appends");
        let index = frontier.size();
        let rows = projection::rows(record, index as i64 + 1, at)?;
        let body = canonical_json(record);
        // RFC 6962 §2.1: the leaf hash covers exactly the stored canonical bytes.
        let start = merkle::stored_hash_count(index);
        for (i, h) in frontier
            .append(merkle::leaf_hash(body.as_bytes()))
            .into_iter()
            .enumerate()
        {
            self.hashes.push(((start + i as u64) as i64, h.to_vec()));
        }
        self.entries.push((
            index as i64 + 1,
            record.kind(),
            body,
            at.to_string(),
            projection::author(record, by).map(|i| i.as_str().to_string()),
        ));
        self.rows(tx, rows)?;
        Ok(index)
    }

    /// Adds the projection rows of one record. A record that deletes rows is written on its
    /// own, after everything gathered before it, so the batch's rows merge as if written one
    /// by one.
    fn rows(&mut self, tx: &mut impl GenericClient, rows: Vec<Row>) -> Result<(), StoreError> {
        let alone = rows.iter().any(Row::deletes);
        if alone {
            self.flush(tx)?;
        }
        for row in rows {
            self.pending.add(row);
        }
        if alone {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Writes what is gathered: the journal first (the projections reference it), then the
    /// log hashes and the projection rows, one statement per table.
    fn flush(&mut self, tx: &mut impl GenericClient) -> Result<(), StoreError> {
        if !self.entries.is_empty() {
            let (mut idx, mut kind, mut body, mut at, mut by) =
                (vec![], vec![], vec![], vec![], vec![]);
            for (i, k, b, a, w) in self.entries.drain(..) {
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
        if !self.hashes.is_empty() {
            let (idx, hash): (Vec<i64>, Vec<Vec<u8>>) = self.hashes.drain(..).unzip();
            execute(
                tx,
                "INSERT INTO log_hashes (idx, hash) SELECT * FROM unnest($1::int8[], $2::bytea[])",
                &[(&idx, Type::INT8_ARRAY), (&hash, Type::BYTEA_ARRAY)],
            )?;
        }
        for table in self.pending.take() {
            apply(tx, &table)?;
        }
        Ok(())
    }
}

/// Writes rows of one table with one statement: each column goes as an array.
fn apply(tx: &mut impl GenericClient, rows: &[Row]) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let values: Vec<Vec<Value<'_>>> = rows.iter().map(Row::columns).collect();
    let arrays: Vec<(Box<dyn ToSql + Sync + '_>, Type)> = (0..values[0].len())
        .map(|c| -> (Box<dyn ToSql + Sync + '_>, Type) {
            let column = values.iter().map(move |row| row[c]);
            match values[0][c] {
                Value::Int(_) => (
                    Box::new(column.map(Value::int).collect::<Vec<i64>>()),
                    Type::INT8_ARRAY,
                ),
                Value::Text(_) => (
                    Box::new(column.map(Value::text).collect::<Vec<&str>>()),
                    Type::TEXT_ARRAY,
                ),
                Value::Bool(_) => (
                    Box::new(column.map(Value::bool).collect::<Vec<bool>>()),
                    Type::BOOL_ARRAY,
                ),
            }
        })
        .collect();
    let params: Vec<Param<'_>> = arrays.iter().map(|(a, t)| (&**a, t.clone())).collect();
    execute(tx, statement(first), &params)?;
    Ok(())
}

/// The statement that writes rows like `row`, one array parameter per column of
/// [`Row::columns`]. The `ON CONFLICT` clauses are the tables' merge rules (see `projection`).
fn statement(row: &Row) -> &'static str {
    match row {
        Row::Build(_) => {
            "INSERT INTO builds (digest, service, image, entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])"
        }
        Row::BuildTag(_) => {
            "INSERT INTO build_tags (image, tag, entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])"
        }
        Row::BuildBase(_) => {
            "INSERT INTO build_bases (digest, base_name, base_tag, base_digest, final_stage)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])"
        }
        Row::BaseUsage(_) => {
            "INSERT INTO base_usage (service, base_name, base_tag, base_digest, builds, latest_entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])
             ON CONFLICT (service, base_name, base_tag, base_digest)
             DO UPDATE SET builds = base_usage.builds + excluded.builds,
                 latest_entry = greatest(base_usage.latest_entry, excluded.latest_entry)"
        }
        Row::BaseTagDigest(_) => {
            "INSERT INTO base_tag_digests (base_name, base_tag, base_digest, first_used, last_used)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])
             ON CONFLICT (base_name, base_tag, base_digest)
             DO UPDATE SET first_used = least(base_tag_digests.first_used, excluded.first_used),
                 last_used = greatest(base_tag_digests.last_used, excluded.last_used)"
        }
        Row::BuildCommit(_) => {
            "INSERT INTO build_commits (source_repo, commit_id, service, digest)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             ON CONFLICT DO NOTHING"
        }
        Row::LatestBuild(_) => {
            "INSERT INTO service_latest_build (service, ci_job, entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
             ON CONFLICT (service) DO UPDATE SET ci_job = excluded.ci_job, entry = excluded.entry
             WHERE excluded.entry > service_latest_build.entry"
        }
        Row::Deploy(_) => {
            "INSERT INTO deploys (entry, service, env, digest, at)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[])"
        }
        Row::Current(_) => {
            "INSERT INTO current (service, env, entry, digest, at)
             SELECT u.* FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
                 AS u(service, env, entry, digest, at)
             WHERE NOT EXISTS (SELECT 1 FROM placement_ends p
                 WHERE p.service = u.service AND p.env = u.env AND p.at > u.at)
             ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry,
                 digest = excluded.digest, at = excluded.at
             WHERE excluded.at >= current.at"
        }
        Row::Fact(_) => {
            "INSERT INTO facts (kind, key, entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])"
        }
        Row::EndCurrent { .. } => {
            "DELETE FROM current c USING unnest($1::text[], $2::text[], $3::int8[])
                 AS u(service, env, at)
             WHERE c.service = u.service AND c.env = u.env AND c.at <= u.at"
        }
        Row::PlacementEnd(_) => {
            "INSERT INTO placement_ends (service, env, entry, at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (service, env) DO UPDATE SET entry = excluded.entry, at = excluded.at
             WHERE excluded.at >= placement_ends.at"
        }
        Row::Service(_) => {
            "INSERT INTO services (name, entry) SELECT * FROM unnest($1::text[], $2::int8[])
             ON CONFLICT (name) DO UPDATE SET entry = excluded.entry"
        }
        Row::DropService { .. } => "DELETE FROM services WHERE name = ANY($1::text[])",
        Row::ServiceChange(_) => {
            "INSERT INTO service_changes (service, entry)
             SELECT * FROM unnest($1::text[], $2::int8[])"
        }
        Row::ClearServiceImages { .. } => {
            "DELETE FROM service_images WHERE service = ANY($1::text[])"
        }
        Row::ClearServiceRepo { .. } => "DELETE FROM service_repos WHERE service = ANY($1::text[])",
        Row::ServiceRepo(_) => {
            "INSERT INTO service_repos (service, source_repo)
             SELECT * FROM unnest($1::text[], $2::text[])"
        }
        Row::ServiceImage(_) => {
            "INSERT INTO service_images (image, service)
             SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (image) DO UPDATE SET service = excluded.service"
        }
        Row::ObservationSource(_) => {
            "INSERT INTO observation_sources (source, entry, at, complete)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bool[])
             ON CONFLICT (source) DO UPDATE SET entry = excluded.entry, at = excluded.at,
                 complete = excluded.complete"
        }
        Row::ObservationEnv(_) => {
            "INSERT INTO observation_envs (source, env, entry)
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
             ON CONFLICT (source, env) DO UPDATE SET entry = excluded.entry"
        }
        Row::Observation(_) => {
            "INSERT INTO observations (source, env, image, digest, last_seen, entry, workload)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
                 $6::int8[], $7::text[])
             ON CONFLICT (source, env, image, digest) DO UPDATE SET
                 last_seen = greatest(observations.last_seen, excluded.last_seen),
                 entry = excluded.entry, workload = excluded.workload"
        }
        Row::SbomImport(_) => {
            "INSERT INTO sbom_imports (digest, kind, format, entry, scanned_at, document, layers)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[],
                 $6::text[], $7::text[])
             ON CONFLICT (digest, kind, format) DO UPDATE SET entry = excluded.entry,
                 scanned_at = excluded.scanned_at, document = excluded.document,
                 layers = excluded.layers
             WHERE (excluded.scanned_at, excluded.entry) > (sbom_imports.scanned_at, sbom_imports.entry)"
        }
        Row::SbomPackage(_) => {
            "INSERT INTO sbom_packages (entry, pkg, digest, name_key, purl, layer)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[],
                 $6::text[])"
        }
        Row::SbomFinding(_) => {
            "INSERT INTO sbom_findings (entry, finding, alias, vuln_id, id, pkg, digest, severity, fixed)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[],
                 $6::int8[], $7::text[], $8::text[], $9::text[])"
        }
    }
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
            let known: HashMap<String, (u64, &str)> = rows
                .iter()
                .map(|r| (r.get(0), (r.get::<_, i64>(1) as u64 - 1, r.get(2))))
                .collect();
            let mut batch = Batch::writer(frontier);
            // Builds new in this batch, so that a digest given twice is recorded once.
            let mut added: HashMap<String, (u64, &BuildRecord)> = HashMap::new();
            let mut outcomes = Vec::with_capacity(builds.len());
            for (build, digest) in builds.iter().zip(digests) {
                let outcome = if let Some(&(index, body)) = known.get(&digest) {
                    outcome_of_recorded(build, index, parse_record(index, body)?)?
                } else if let Some(&(index, old)) = added.get(&digest) {
                    outcome_of_recorded(build, index, Record::Build(old.clone()))?
                } else {
                    let record = Record::Build(build.clone());
                    let index = batch.record(tx, &record, recorded_at, recorded_by)?;
                    added.insert(digest, (index, build));
                    BuildOutcome::Recorded { index }
                };
                outcomes.push(outcome);
            }
            batch.flush(tx)?;
            Ok(outcomes)
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
            let mut batch = Batch::writer(frontier);
            let mut indexes = Vec::with_capacity(records.len());
            for r in records {
                indexes.push(batch.record(tx, r, recorded_at, recorded_by)?);
            }
            // A build already recorded violates the `builds` key: the whole call fails.
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
    for table in std::iter::once("entries").chain(projection::TABLES.iter().map(|(t, _)| *t)) {
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
                "SELECT idx, body, recorded_at FROM {schema}.entries
                 WHERE idx > $1 AND idx <= $2 ORDER BY idx"
            ),
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )?;
        let mut batch = Batch::replay();
        for r in &rows {
            let Some(projected) = projection::replay(r.get(0), r.get(1), r.get(2)) else {
                continue;
            };
            // A duplicate (a build copied behind Lineage's back) cannot be projected twice;
            // the comparison reports what the ledger has instead.
            if let Some(Row::Build(b)) = projected.first() {
                if !seen_builds.insert(b.digest.clone()) {
                    continue;
                }
            }
            batch.rows(&mut tx, projected)?;
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
    for (done, (table, entry_col)) in projection::TABLES.iter().enumerate() {
        progress.update(
            "comparing projections",
            done as u64,
            Some(projection::TABLES.len() as u64),
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
        let mut b = Batch::replay();
        for row in chunk {
            next += 1;
            b.entries.push((
                next,
                "build",
                row.body().to_string(),
                crate::bench::RAW_RECORDED_AT.to_string(),
                None,
            ));
            for r in row.rows_at(next) {
                b.pending.add(r);
            }
        }
        b.flush(&mut tx)?;
        tx.commit().map_err(pg)?;
    }
    Ok(())
}
