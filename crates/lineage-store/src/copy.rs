//! Copying a whole ledger from one store to another (`lineage store migrate`), through the
//! [`Store`] API only, so that the target projects and hashes every record with its own code
//! and any pair of backends works.

use std::collections::BTreeMap;

use lineage_log::merkle::Hash;
use lineage_model::{Identity, Record, Timestamp};

use crate::api::{BuildOutcome, Entry, Store, StoreError};

/// Entries read from the source per round.
const CHUNK: u64 = 5_000;

/// What a copy did, and how source and target compare afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Entries the target held before the copy (a prefix of the source).
    pub already_present: u64,
    /// Entries appended to the target.
    pub copied: u64,
    /// Checkpoints the target did not have and now has.
    pub checkpoints_copied: u64,
    pub source_size: u64,
    pub target_size: u64,
    pub source_root: Hash,
    pub target_root: Hash,
    /// Journal entries per kind.
    pub source_counts: BTreeMap<String, u64>,
    pub target_counts: BTreeMap<String, u64>,
}

impl CopyReport {
    /// Whether the two ledgers now have the same log (size and root) and the same counts.
    pub fn identical(&self) -> bool {
        self.source_size == self.target_size
            && self.source_root == self.target_root
            && self.source_counts == self.target_counts
    }
}

/// Copies every entry of `from` that `to` lacks, in order, then every checkpoint, and
/// compares the two logs. Refuses (writing nothing) unless `to`'s entries are a prefix of
/// `from`'s, which the log roots decide: equal roots over the first `n` leaves mean equal
/// bodies (RFC 9162 §2.1.1).
pub fn copy_ledger(from: &dyn Store, to: &mut dyn Store) -> Result<CopyReport, StoreError> {
    copy_ledger_with_progress(from, to, &())
}

/// [`copy_ledger`], telling `progress` how many entries the target holds.
pub fn copy_ledger_with_progress(
    from: &dyn Store,
    to: &mut dyn Store,
    progress: &dyn lineage_model::Progress,
) -> Result<CopyReport, StoreError> {
    let source = from.log_head()?;
    let target = to.log_head()?;
    if target.size > source.size {
        return Err(StoreError::TargetDiverges(format!(
            "the target has {} entries, the source only {}",
            target.size, source.size
        )));
    }
    if target.size > 0 && from.log_root(target.size)? != target.root {
        return Err(StoreError::TargetDiverges(format!(
            "the first {} entries differ (the log roots over them are not equal)",
            target.size
        )));
    }
    let mut next = target.size;
    while next < source.size {
        let entries = from.entries(next, (next + CHUNK).min(source.size))?;
        if entries.is_empty() {
            break;
        }
        let mut run: Vec<Entry> = Vec::new();
        for entry in entries {
            if let Some(first) = run.first() {
                if !same_run(first, &entry) {
                    append_run(to, std::mem::take(&mut run))?;
                }
            }
            run.push(entry);
        }
        append_run(to, run)?;
        next = to.log_head()?.size;
        progress.update("copying entries", next, Some(source.size));
    }
    let mut checkpoints_copied = 0;
    for checkpoint in from.checkpoints()? {
        if to.checkpoint(checkpoint.size)?.is_none() {
            to.save_checkpoint(checkpoint.size, &checkpoint.text, checkpoint.created)?;
            checkpoints_copied += 1;
        }
    }
    let after = to.log_head()?;
    let source = from.log_head()?;
    Ok(CopyReport {
        already_present: target.size,
        copied: after.size - target.size,
        checkpoints_copied,
        source_size: source.size,
        target_size: after.size,
        source_root: source.root,
        target_root: after.root,
        source_counts: from.kind_counts()?,
        target_counts: to.kind_counts()?,
    })
}

#[derive(PartialEq, Eq)]
enum Method {
    Build,
    Deploy,
    Service,
    Fact,
}

fn method(record: &Record) -> Method {
    match record {
        Record::Build(_) => Method::Build,
        Record::Deploy(_) => Method::Deploy,
        Record::Service(_) => Method::Service,
        _ => Method::Fact,
    }
}

/// Whether `b` can be written in the same call as `a`: the same write method and the same
/// recorded time and identity (one call takes one of each). Service changes go one by one.
fn same_run(a: &Entry, b: &Entry) -> bool {
    method(&a.record) == method(&b.record)
        && method(&a.record) != Method::Service
        && a.recorded_at == b.recorded_at
        && a.recorded_by == b.recorded_by
}

/// Appends a run of entries with one write call and checks they landed at their source
/// indexes (another writer on the target would shift them).
fn append_run(to: &mut dyn Store, run: Vec<Entry>) -> Result<(), StoreError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let (at, by): (Timestamp, Option<Identity>) = (first.recorded_at, first.recorded_by.clone());
    let expected: Vec<u64> = run.iter().map(|e| e.index).collect();
    let got: Vec<u64> = match method(&first.record) {
        Method::Build => {
            let builds: Vec<_> = run
                .iter()
                .filter_map(|e| match &e.record {
                    Record::Build(b) => Some(b.clone()),
                    _ => None,
                })
                .collect();
            to.record_builds(&builds, at, by.as_ref())?
                .into_iter()
                .map(|o| match o {
                    BuildOutcome::Recorded { index } => Ok(index),
                    other => Err(StoreError::TargetDiverges(format!(
                        "a build the source records once is already in the target ({other:?})"
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        Method::Deploy => {
            let deploys: Vec<_> = run
                .iter()
                .filter_map(|e| match &e.record {
                    Record::Deploy(d) => Some(d.clone()),
                    _ => None,
                })
                .collect();
            to.record_deploys(&deploys, at, by.as_ref())?
        }
        Method::Service => {
            let mut got = Vec::new();
            for e in &run {
                if let Record::Service(change) = &e.record {
                    got.push(to.record_service_change(change, e.recorded_at)?);
                }
            }
            got
        }
        Method::Fact => {
            let facts: Vec<Record> = run.iter().map(|e| e.record.clone()).collect();
            to.record_facts(&facts, at, by.as_ref())?
        }
    };
    if got != expected {
        return Err(StoreError::TargetDiverges(format!(
            "entries {expected:?} of the source landed at {got:?} in the target; \
             is another process writing to it?"
        )));
    }
    Ok(())
}
