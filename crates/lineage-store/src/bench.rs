//! The reference the ingest benchmark compares against: the same rows written into the same
//! schema with plain batched `INSERT`s, no validation, no serialisation (bodies are given
//! pre-serialised). Not part of the store API.

use std::path::Path;

use lineage_model::{canonical_json, BuildRecord, Record};
use rusqlite::params;

use crate::projection::Row;

/// A build's rows, prepared outside the timed section.
pub struct RawBuild {
    body: String,
    digest: String,
    service: String,
    image: String,
    tags: Vec<String>,
    bases: Vec<(String, String, String, bool)>,
    /// When the build used each base (unix seconds), for `base_tag_digests`.
    base_seen: Vec<i64>,
    /// (source repository, commit) for `build_commits`, when the build has both.
    commit: Option<(String, String)>,
    /// The CI job for `service_latest_build` ('' for none).
    ci_job: String,
    /// The build's projection rows at entry 0, for the PostgreSQL reference.
    rows: Vec<Row>,
}

/// The recording time the raw references write.
pub(crate) const RAW_RECORDED_AT: &str = "2026-11-01T00:00:00Z";

impl RawBuild {
    pub fn new(b: &BuildRecord) -> RawBuild {
        let recorded = lineage_model::Timestamp::parse(RAW_RECORDED_AT).expect("constant time");
        let record = Record::Build(b.clone());
        RawBuild {
            rows: crate::projection::rows(&record, 0, recorded).expect("a build projects"),
            body: canonical_json(&record),
            digest: b.digest.to_string(),
            service: b.service.to_string(),
            image: b.image.to_string(),
            tags: b.tags.iter().map(|t| t.to_string()).collect(),
            bases: b
                .bases
                .iter()
                .map(|x| {
                    (
                        x.name.to_string(),
                        x.tag.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                        x.digest.as_ref().map(|d| d.to_string()).unwrap_or_default(),
                        x.final_stage,
                    )
                })
                .collect(),
            base_seen: b
                .bases
                .iter()
                .map(|x| b.base_seen_at(x, recorded).unix())
                .collect(),
            commit: b
                .source_repo
                .as_ref()
                .zip(b.commit.as_ref())
                .map(|(r, c)| (r.to_string(), c.to_string())),
            ci_job: b
                .ci
                .as_ref()
                .and_then(|c| c.job.clone())
                .unwrap_or_default(),
        }
    }
}

/// Inserts `rows` into the (already migrated) ledger at `path`, `batch` rows per transaction,
/// with the same durability settings as the store.
pub fn raw_insert_builds(path: &Path, rows: &[RawBuild], batch: usize) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    for chunk in rows.chunks(batch) {
        let tx = conn.transaction()?;
        {
            let mut entry = tx.prepare_cached(
                "INSERT INTO entries (kind, body, recorded_at, recorded_by) VALUES ('build', ?1, '2026-11-01T00:00:00Z', NULL)",
            )?;
            let mut build = tx.prepare_cached(
                "INSERT INTO builds (digest, service, image, entry) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut tag = tx
                .prepare_cached("INSERT INTO build_tags (image, tag, entry) VALUES (?1, ?2, ?3)")?;
            let mut base = tx.prepare_cached(
                "INSERT INTO build_bases (digest, base_name, base_tag, base_digest, final_stage) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut usage = tx.prepare_cached(
                "INSERT INTO base_usage (service, base_name, base_tag, base_digest, builds, latest_entry)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT (service, base_name, base_tag, base_digest)
                 DO UPDATE SET builds = builds + 1, latest_entry = excluded.latest_entry",
            )?;
            let mut seen = tx.prepare_cached(
                "INSERT INTO base_tag_digests (base_name, base_tag, base_digest, first_used, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (base_name, base_tag, base_digest)
                 DO UPDATE SET first_used = min(first_used, excluded.first_used),
                     last_used = max(last_used, excluded.last_used)",
            )?;
            let mut commit = tx.prepare_cached(
                "INSERT INTO build_commits (source_repo, commit_id, service, digest)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?;
            let mut latest = tx.prepare_cached(
                "INSERT INTO service_latest_build (service, ci_job, entry) VALUES (?1, ?2, ?3)
                 ON CONFLICT (service) DO UPDATE SET ci_job = excluded.ci_job, entry = excluded.entry
                 WHERE excluded.entry > service_latest_build.entry",
            )?;
            for r in chunk {
                entry.execute([&r.body])?;
                let e = tx.last_insert_rowid();
                build.execute(params![r.digest, r.service, r.image, e])?;
                if let Some((repo, c)) = &r.commit {
                    commit.execute(params![repo, c, r.service, r.digest])?;
                }
                latest.execute(params![r.service, r.ci_job, e])?;
                for t in &r.tags {
                    tag.execute(params![r.image, t, e])?;
                }
                for ((name, t, d, f), at) in r.bases.iter().zip(&r.base_seen) {
                    base.execute(params![r.digest, name, t, d, f])?;
                    usage.execute(params![r.service, name, t, d, e])?;
                    if !t.is_empty() && !d.is_empty() {
                        seen.execute(params![name, t, d, at])?;
                    }
                }
            }
        }
        tx.commit()?;
    }
    Ok(())
}

/// The PostgreSQL reference: the same rows into the same (already migrated) schema with one
/// multi-row `INSERT … SELECT unnest(…)` per table per transaction of `batch` builds, and
/// durable commits (`synchronous_commit = on`). No validation, serialisation, deduplication
/// or log hashing: what PostgreSQL itself can take.
pub fn raw_insert_builds_pg(
    location: &crate::PgLocation,
    rows: &[RawBuild],
    batch: usize,
) -> Result<(), crate::StoreError> {
    crate::postgres::raw_insert_builds(location, rows, batch)
}

impl RawBuild {
    pub(crate) fn body(&self) -> &str {
        &self.body
    }

    /// The build's projection rows as stored at journal `entry`.
    pub(crate) fn rows_at(&self, entry: i64) -> Vec<Row> {
        let mut rows = self.rows.clone();
        for row in &mut rows {
            match row {
                Row::Build(r) => r.entry = entry,
                Row::BuildTag(r) => r.entry = entry,
                Row::BaseUsage(r) => r.latest_entry = entry,
                Row::LatestBuild(r) => r.entry = entry,
                _ => {}
            }
        }
        rows
    }
}

/// One observed container, prepared outside the timed section.
pub struct RawObserved {
    pub env: String,
    pub image: String,
    pub digest: String,
    pub seen_at: i64,
    pub workload: String,
}

/// The observation reference: the batch's journal row (body pre-serialised) and one
/// `observations` upsert per container, in one transaction, with the store's durability.
/// No parsing, validation, aggregation or log hashing.
pub fn raw_insert_observations(
    path: &Path,
    source: &str,
    body: &str,
    rows: &[RawObserved],
) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    let tx = conn.transaction()?;
    {
        tx.execute(
            "INSERT INTO entries (kind, body, recorded_at, recorded_by) VALUES ('observation', ?1, '2026-11-01T00:00:00Z', NULL)",
            [body],
        )?;
        let e = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO observation_sources (source, entry, at, complete) VALUES (?1, ?2, 0, 1)
             ON CONFLICT (source) DO UPDATE SET entry = excluded.entry",
            params![source, e],
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO observations (source, env, image, digest, last_seen, entry, workload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, env, image, digest) DO UPDATE SET
                 last_seen = max(observations.last_seen, excluded.last_seen),
                 entry = excluded.entry, workload = excluded.workload",
        )?;
        for r in rows {
            upsert.execute(params![
                source, r.env, r.image, r.digest, r.seen_at, e, r.workload
            ])?;
        }
    }
    tx.commit()
}
