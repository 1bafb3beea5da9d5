//! Lineage's ledger storage.
//!
//! The ledger is an append-only journal of records ([`lineage_model::Record`]), each stored as
//! canonical JSON with its position (its future log leaf index). Query tables (services, builds,
//! bases, deploys, what runs now) are projections of that journal, written in the same
//! transaction as the journal entry, so a reader never sees one without the other. Which rows
//! a record projects to is computed once, for both backends and for the audit's replay, by
//! `projection`; a backend only writes them.
//!
//! Every journal entry is also a leaf of an RFC 6962 / RFC 9162 Merkle log (see
//! `lineage_log`): the writer hashes incrementally with a [`lineage_log::merkle::Frontier`]
//! and appends the new stored hashes in the entry's own transaction, so a batch of records is
//! one commit (group commit) and the log never lags the journal.
//!
//! All SQL lives in this crate, behind the backend-neutral [`Store`] API. Callers never see a
//! row, a connection or a dialect.

mod api;
mod audit;
#[doc(hidden)]
pub mod bench;
mod copy;
mod postgres;
mod projection;
mod sbom;
mod sqlite;

pub use api::{
    BaseFilter, BaseTagUse, BaseUsage, BuildOutcome, DigestRole, Entry, JobRange, LogHead,
    ObservedRow, PlacementRow, ProjectionMismatch, RawEntry, RunningImage, RunningInventory,
    SbomFindingRow, SbomHit, SbomImportRow, SbomPackageRow, SbomQuery, SourceState, Store,
    StoreError, StoreLocation, StoredCheckpoint, CLOCK_SKEW_TOLERANCE_SECS,
};
pub use copy::{copy_ledger, copy_ledger_with_progress, CopyReport};
pub use lineage_log::merkle::Hash;
pub use postgres::{PgLocation, CHANNEL as PG_NOTIFY_CHANNEL, PG_SCHEMA_VERSION};

/// The projection tables, for tests that compare them across backends. Not part of the store
/// API.
#[doc(hidden)]
pub fn projection_tables() -> impl Iterator<Item = &'static str> {
    projection::TABLES.iter().map(|(table, _)| *table)
}

/// Raw SQLite access for tamper tests and the raw-insert benchmark reference. Not part of
/// the store API: nothing else may write behind the journal's back.
#[doc(hidden)]
pub use rusqlite::Connection as RawConnection;
#[doc(hidden)]
pub use sqlite::{audit_first_pass_agrees, raw_connection};

/// The SQLite schema version this build of Lineage writes. A store with a newer version is
/// refused. PostgreSQL numbers its migrations separately ([`PG_SCHEMA_VERSION`]).
pub const SCHEMA_VERSION: i64 = 7;

/// Opens an existing store at `location` for a command that only reads. Like [`open`] without
/// `create`, except that an SQLite ledger on a full disk is still read (see
/// `SqliteStore::open_read`).
pub fn open_read(location: &StoreLocation) -> Result<Box<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open_read(path)?)),
        StoreLocation::Postgres(pg) => Ok(Box::new(postgres::PgStore::open(pg, false)?)),
    }
}

/// Opens the store at `location`, creating and migrating it if `create` is set.
pub fn open(location: &StoreLocation, create: bool) -> Result<Box<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path, create)?)),
        StoreLocation::Postgres(pg) => Ok(Box::new(postgres::PgStore::open(pg, create)?)),
    }
}

/// The log library the store hashes with, re-exported so that use cases over the store build
/// on the same types (`Hash`, `LogKey`, proofs) without a second dependency path.
pub use lineage_log;
