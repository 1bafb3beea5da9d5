//! The ledger's tamper-evident log as a use case: the `[log]` settings, the Ed25519 log key,
//! signing a checkpoint after each write (`seal`), proof bundles, and the full audit
//! (`verify`). The CLI calls `seal` after every command; the server calls it after each batch.
//!
//! Checkpoints are C2SP signed notes (<https://c2sp.org/tlog-checkpoint>,
//! <https://c2sp.org/signed-note>) over the RFC 6962 / RFC 9162 tree the store maintains.
//! The key is a dedicated Ed25519 log key, kept as PKCS#8 PEM beside the ledger.

use std::path::{Path, PathBuf};

use lineage_model::Timestamp;
use lineage_store::lineage_log::checkpoint::{
    verify_checkpoint, Checkpoint, CheckpointVerification,
};
use lineage_store::lineage_log::keys::{LogKey, Verifier};
use lineage_store::lineage_log::merkle::{self, Frontier, Hash};
use lineage_store::lineage_log::proof::{ConsistencyBundle, InclusionBundle};
use lineage_store::{Store, StoredCheckpoint};
use serde::{Deserialize, Serialize};

use crate::config::line_col;
use crate::Error;

/// The origin a ledger's log uses when `[log] origin` is not set.
pub const DEFAULT_ORIGIN: &str = "lineage.local/ledger";
/// File names of the log key and its public forms, in the key's directory.
pub const KEY_FILE: &str = "log.key";
pub const PUBLIC_KEY_FILE: &str = "log.pub";
pub const VKEY_FILE: &str = "log.vkey";

/// The `[log]` section of `lineage.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The checkpoint origin line, also the key's signer name. Fixed for the life of a log.
    pub origin: String,
    /// The private key file; default `log.key` beside the ledger.
    pub key: Option<PathBuf>,
    /// Where each new checkpoint is also written (`<size>` and `latest`), for witnesses.
    pub checkpoint_dir: Option<PathBuf>,
    /// A single file overwritten with each new checkpoint.
    pub checkpoint_file: Option<PathBuf>,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            origin: DEFAULT_ORIGIN.to_string(),
            key: None,
            checkpoint_dir: None,
            checkpoint_file: None,
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    log: Option<RawLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: Option<toml::Spanned<String>>,
    key: Option<String>,
    checkpoint_dir: Option<String>,
    checkpoint_file: Option<String>,
}

impl LogSettings {
    /// Parses the `[log]` section of `text` (the contents of `file`); relative paths are
    /// relative to `base`, the file's directory. Errors point at line and column.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<LogSettings, Error> {
        let config_error = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            Error::Config {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: Raw = toml::from_str(text)
            .map_err(|e| config_error(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        let Some(log) = raw.log else {
            return Ok(LogSettings::default());
        };
        let origin = match log.origin {
            None => DEFAULT_ORIGIN.to_string(),
            Some(o) => {
                // C2SP: the origin is the key name too, so it has no spaces or `+`.
                let ok = !o.get_ref().is_empty()
                    && !o
                        .get_ref()
                        .chars()
                        .any(|c| c.is_whitespace() || c == '+' || c.is_control());
                if !ok {
                    return Err(config_error(
                        o.span().start,
                        format!(
                            "`log.origin` `{}` must be non-empty, without spaces or `+` (e.g. `lineage.acme.dev/ledger`)",
                            o.get_ref()
                        ),
                    ));
                }
                o.into_inner()
            }
        };
        let path = |p: Option<String>| p.map(|p| base.join(p));
        Ok(LogSettings {
            origin,
            key: path(log.key),
            checkpoint_dir: path(log.checkpoint_dir),
            checkpoint_file: path(log.checkpoint_file),
        })
    }

    /// The private key path for a ledger whose files live in `ledger_dir`.
    pub fn key_path(&self, ledger_dir: &Path) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| ledger_dir.join(KEY_FILE))
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error, hint: &str) -> Error {
    Error::Invalid(
        format!("cannot {what} `{}`: {e}", path.display()),
        hint.to_string(),
    )
}

/// Loads the log key, creating it (mode 0600) with `log.pub` and `log.vkey` beside it on
/// first use. The signer name is the origin.
pub fn load_or_create_key(path: &Path, origin: &str) -> Result<LogKey, Error> {
    let hint = "check the permissions of the ledger directory, or set `[log] key` in lineage.toml";
    let key = match std::fs::read_to_string(path) {
        Ok(pem) => LogKey::from_pkcs8_pem(origin, &pem).map_err(|e| {
            Error::Invalid(
                format!("log key `{}` is unusable: {e}", path.display()),
                "restore the key from backup; a new key would not match the signed checkpoints"
                    .into(),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = LogKey::generate(origin).map_err(|e| {
                Error::Invalid(format!("cannot generate a log key: {e}"), hint.into())
            })?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e, hint))?;
            }
            write_private(path, key.to_pkcs8_pem().as_bytes())
                .map_err(|e| io_error("write", path, e, hint))?;
            key
        }
        Err(e) => return Err(io_error("read", path, e, hint)),
    };
    // The public forms are derived, so (re)write them when missing.
    let dir = path.parent().unwrap_or(Path::new("."));
    for (name, text) in [
        (PUBLIC_KEY_FILE, key.public_key_pem()),
        (VKEY_FILE, format!("{}\n", key.vkey())),
    ] {
        let p = dir.join(name);
        if !p.exists() {
            std::fs::write(&p, text).map_err(|e| io_error("write", &p, e, hint))?;
        }
    }
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Signs a checkpoint for the log's current size if none covers it yet, keeps it in the
/// store, and writes it where `[log]` says witnesses pick it up. Returns the new checkpoint.
pub fn seal(
    store: &mut dyn Store,
    key: &LogKey,
    settings: &LogSettings,
    now: Timestamp,
) -> Result<Option<StoredCheckpoint>, Error> {
    let head = store.log_head()?;
    let latest = store.latest_checkpoint()?;
    if let Some(latest) = &latest {
        if let Ok(cp) = Checkpoint::parse(checkpoint_body(&latest.text)) {
            if cp.origin != settings.origin {
                return Err(Error::Invalid(
                    format!(
                        "the ledger's log origin is `{}` but lineage.toml sets `[log] origin` to `{}`",
                        cp.origin, settings.origin
                    ),
                    format!("a log keeps its origin for life; set `origin = \"{}\"` under [log]", cp.origin),
                ));
            }
        }
        if latest.size >= head.size {
            return Ok(None);
        }
    } else if head.size == 0 {
        return Ok(None);
    }
    let text = Checkpoint::new(&settings.origin, head.size, head.root).sign(key);
    store.save_checkpoint(head.size, &text, now)?;
    publish(settings, head.size, &text)?;
    Ok(Some(StoredCheckpoint {
        size: head.size,
        text,
        created: now,
    }))
}

/// The note text (checkpoint body) of a signed note: everything before the blank line.
fn checkpoint_body(signed: &str) -> &str {
    signed
        .split_once("\n\n")
        .map_or(signed, |(body, _)| &signed[..body.len() + 1])
}

fn publish(settings: &LogSettings, size: u64, text: &str) -> Result<(), Error> {
    let hint = "fix `[log] checkpoint_dir` / `checkpoint_file` in lineage.toml; the checkpoint is kept in the ledger";
    if let Some(dir) = &settings.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e, hint))?;
        write_atomic(&dir.join(size.to_string()), text, hint)?;
        write_atomic(&dir.join("latest"), text, hint)?;
    }
    if let Some(file) = &settings.checkpoint_file {
        write_atomic(file, text, hint)?;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a witness never reads half a checkpoint.
fn write_atomic(path: &Path, text: &str, hint: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| io_error("write", &tmp, e, hint))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("write", path, e, hint))
}

/// An inclusion bundle for ledger entry `index` against the latest checkpoint.
pub fn prove(store: &dyn Store, index: u64) -> Result<InclusionBundle, Error> {
    let latest = latest_or_error(store)?;
    if index >= latest.size {
        let len = store.len()?;
        return Err(Error::Invalid(
            format!(
                "ledger entry {index} is not covered by the latest signed checkpoint (size {})",
                latest.size
            ),
            if index < len {
                "run any lineage command to sign a new checkpoint, then try again".into()
            } else {
                format!("the ledger has entries 0 to {}", len.saturating_sub(1))
            },
        ));
    }
    let raw = store.raw_entries(index, index + 1)?;
    let Some(entry) = raw.into_iter().next() else {
        return Err(Error::Invalid(
            format!("ledger entry {index} is missing"),
            "run `lineage log verify`".into(),
        ));
    };
    let proof = store.inclusion_proof(index, latest.size)?;
    InclusionBundle::new(index, entry.body.as_bytes(), &proof, &latest.text)
        .map_err(|e| stored_checkpoint_error(latest.size, e))
}

/// A consistency bundle from `old` to `new` leaves. `new` must have a stored checkpoint; the
/// old side is its checkpoint when one was signed, else the bare root.
pub fn consistency(store: &dyn Store, old: u64, new: u64) -> Result<ConsistencyBundle, Error> {
    if old > new || old == 0 {
        return Err(Error::Invalid(
            format!("cannot prove consistency from tree size {old} to {new}"),
            "give OLD_SIZE >= 1 and OLD_SIZE <= NEW_SIZE, e.g. `lineage log consistency 10 42`"
                .into(),
        ));
    }
    let Some(new_cp) = store.checkpoint(new)? else {
        let latest = store.latest_checkpoint()?.map(|c| c.size).unwrap_or(0);
        return Err(Error::Invalid(
            format!("no signed checkpoint for tree size {new}"),
            format!("use the size of a signed checkpoint; the latest is {latest} (`lineage log checkpoint`)"),
        ));
    };
    let proof = store.consistency_proof(old, new)?;
    let bundle = match store.checkpoint(old)? {
        Some(old_cp) => ConsistencyBundle::between_checkpoints(&old_cp.text, &new_cp.text, &proof),
        None => {
            let root = store.log_root(old)?;
            ConsistencyBundle::from_root_to_checkpoint(old, &root, &new_cp.text, &proof)
        }
    };
    bundle.map_err(|e| stored_checkpoint_error(new, e))
}

fn latest_or_error(store: &dyn Store) -> Result<StoredCheckpoint, Error> {
    store.latest_checkpoint()?.ok_or_else(|| {
        Error::Invalid(
            "the ledger has no signed checkpoint yet".into(),
            "record something first (`lineage service add …`); each write signs one".into(),
        )
    })
}

fn stored_checkpoint_error(size: u64, e: CheckpointVerification) -> Error {
    Error::Invalid(
        format!("the stored checkpoint for size {size} is unreadable: {e}"),
        "run `lineage log verify`".into(),
    )
}

// ---------------------------------------------------------------------------------------------
// The audit.
// ---------------------------------------------------------------------------------------------

/// What `lineage log verify` found (`"schema": 1`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub schema: u32,
    /// True when nothing below is a problem.
    pub verified: bool,
    /// Journal rows read.
    pub entries: u64,
    /// Leaves the stored log holds.
    pub log_size: u64,
    /// Root recomputed from the journal bodies (hex).
    pub root: String,
    /// The latest signed checkpoint, when there is one.
    pub checkpoint: Option<CheckpointSummary>,
    /// How many stored checkpoints were checked (signature and root).
    pub checkpoints_checked: u64,
    /// The `--since` checkpoint and whether the current log is consistent with it.
    pub since: Option<CheckpointSummary>,
    /// Problems, the earliest leaf first.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    pub root: String,
}

/// One finding, with a stable code.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
    /// The first bad leaf (= ledger index), when the problem is about one.
    pub leaf: Option<u64>,
    /// The record at that leaf, as stored now.
    pub record: Option<RecordRef>,
}

/// Enough of a record to find it: kind and its identifying fields.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl std::fmt::Display for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(d) = &self.digest {
            write!(f, " {d}")?;
        }
        if let Some(s) = &self.service {
            write!(f, " of service {s}")?;
        }
        if let Some(e) = &self.env {
            write!(f, " to {e}")?;
        }
        Ok(())
    }
}

fn record_ref(kind: &str, body: &str) -> RecordRef {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    // Records are `{"kind": ..., "record": {...}}`.
    let inner = v.get("record").unwrap_or(&v);
    let text = |x: Option<&serde_json::Value>| x.and_then(|x| x.as_str()).map(str::to_string);
    let service = text(inner.get("service"))
        .or_else(|| text(inner.get("service").and_then(|s| s.get("name"))));
    RecordRef {
        kind: kind.to_string(),
        service,
        digest: text(inner.get("digest")),
        env: text(inner.get("env")),
    }
}

const CHUNK: u64 = 50_000;

/// Recomputes the whole tree from the journal bodies and checks it against the stored hashes,
/// every stored checkpoint (signature by `key`, and root), the projections, and, with
/// `since`, a checkpoint saved earlier (RFC 9162 §2.1.4 consistency).
pub fn verify(
    store: &dyn Store,
    key: &Verifier,
    since: Option<&str>,
) -> Result<VerifyReport, Error> {
    let mut problems = Vec::new();
    // 1. Leaf hashes from the bodies, in stored order; note the first gap.
    let mut leaves: Vec<Hash> = Vec::new();
    let mut gap: Option<u64> = None;
    let mut from = 0;
    let log_size = store.log_head()?.size;
    loop {
        let chunk = store.raw_entries(from, from + CHUNK)?;
        if chunk.is_empty() && from >= log_size.max(store.len()?) {
            break;
        }
        for e in &chunk {
            if gap.is_none() && e.index != leaves.len() as u64 {
                gap = Some(leaves.len() as u64);
            }
            leaves.push(merkle::leaf_hash(e.body.as_bytes()));
        }
        from += CHUNK;
    }
    let entries = leaves.len() as u64;
    let stored = store.log_hashes()?;
    let recomputed = merkle::recompute(leaves.iter().copied(), &stored);
    let nth = |n: u64| -> Result<Option<RecordRef>, Error> {
        // The n-th row in stored order, whatever index it claims.
        let mut seen = 0;
        let mut from = 0;
        loop {
            let chunk = store.raw_entries(from, from + CHUNK)?;
            if chunk.is_empty() && from >= entries.max(log_size) + CHUNK {
                return Ok(None);
            }
            if seen + chunk.len() as u64 > n {
                let e = &chunk[(n - seen) as usize];
                return Ok(Some(record_ref(&e.kind, &e.body)));
            }
            seen += chunk.len() as u64;
            from += CHUNK;
        }
    };
    if let Some(m) = &recomputed.first_mismatch {
        let leaf = m.leaf_index;
        let (code, message) = if gap.is_some_and(|g| g <= leaf) {
            let g = gap.unwrap_or(leaf);
            (
                "record-missing",
                format!("ledger entry {g} was deleted: the journal skips it"),
            )
        } else if m.recomputed.is_none() {
            (
                "record-missing",
                format!("the log has {log_size} leaves but the journal only {entries} records: entry {leaf} was deleted"),
            )
        } else if m.stored.is_none() {
            (
                "record-added",
                format!(
                    "ledger entry {leaf} is not in the log: it was added behind Lineage's back"
                ),
            )
        } else {
            (
                "record-altered",
                format!("ledger entry {leaf} does not match its log leaf: it was edited, replaced or reordered"),
            )
        };
        let leaf = gap.filter(|&g| g <= leaf).unwrap_or(leaf);
        problems.push(Problem {
            code,
            message,
            leaf: Some(leaf),
            record: nth(leaf)?,
        });
    }

    // 2. Every stored checkpoint: signed by the key, and its root is the recomputed root.
    let checkpoints = store.checkpoints()?;
    let mut frontier = Frontier::new();
    let mut fed = 0usize;
    let mut latest_summary = None;
    let mut good_size = 0;
    for stored_cp in &checkpoints {
        let cp = match verify_checkpoint(&stored_cp.text, key) {
            CheckpointVerification::Verified { checkpoint, .. } => checkpoint,
            other => {
                problems.push(Problem {
                    code: "checkpoint-invalid",
                    message: format!("stored checkpoint for size {}: {other}", stored_cp.size),
                    leaf: None,
                    record: None,
                });
                continue;
            }
        };
        latest_summary = Some(summary(&cp));
        if cp.size as usize > leaves.len() {
            problems.push(Problem {
                code: "checkpoint-beyond-journal",
                message: format!(
                    "checkpoint size {} is beyond the journal's {} records: records were deleted",
                    cp.size,
                    leaves.len()
                ),
                leaf: Some(leaves.len() as u64),
                record: None,
            });
            break;
        }
        while fed < cp.size as usize {
            frontier.append(leaves[fed]);
            fed += 1;
        }
        if frontier.root() != cp.root {
            // The stored hashes may have been rewritten to match; the signed roots still
            // bound where the change is.
            if recomputed.first_mismatch.is_none() {
                problems.push(Problem {
                    code: "root-mismatch",
                    message: format!(
                        "the journal's root at size {} differs from the signed checkpoint: a record in leaves {good_size}..{} was changed (and the stored hashes rewritten)",
                        cp.size,
                        cp.size - 1
                    ),
                    leaf: Some(good_size),
                    record: nth(good_size)?,
                });
            }
            break;
        }
        good_size = cp.size;
    }
    if checkpoints.is_empty() && log_size > 0 {
        problems.push(Problem {
            code: "no-checkpoint",
            message: "the log has never been signed".into(),
            leaf: None,
            record: None,
        });
    }

    // 3. The checkpoint saved earlier.
    let since_summary = match since {
        None => None,
        Some(text) => {
            let cp = match verify_checkpoint(text, key) {
                CheckpointVerification::Verified { checkpoint, .. } => checkpoint,
                other => {
                    problems.push(Problem {
                        code: "since-invalid",
                        message: format!("the saved checkpoint does not verify: {other}"),
                        leaf: None,
                        record: None,
                    });
                    return Ok(report(
                        entries,
                        log_size,
                        &recomputed.root,
                        latest_summary,
                        checkpoints.len(),
                        None,
                        problems,
                    ));
                }
            };
            if cp.size > entries {
                problems.push(Problem {
                    code: "since-beyond-log",
                    message: format!(
                        "the saved checkpoint has {} leaves but the journal only {entries}: history was truncated",
                        cp.size
                    ),
                    leaf: Some(entries),
                    record: None,
                });
            } else {
                // Prove it the way an outside party would: a consistency proof from the
                // stored hashes, checked against the saved root and the recomputed root.
                let root_then =
                    merkle::tree_hash(cp.size, &leaves_store(&leaves[..cp.size as usize]))
                        .map_err(|e| {
                            Error::Invalid(e.to_string(), "run `lineage log verify` again".into())
                        })?;
                let proof_ok = store
                    .consistency_proof(cp.size, log_size.min(entries))
                    .ok()
                    .map(|p| {
                        merkle::verify_consistency(
                            cp.size,
                            log_size.min(entries),
                            &p,
                            &cp.root,
                            &recomputed.root_at(log_size.min(entries), &leaves),
                        )
                        .is_ok()
                    })
                    .unwrap_or(false);
                if root_then != cp.root || !proof_ok {
                    problems.push(Problem {
                        code: "since-inconsistent",
                        message: format!(
                            "the ledger is not consistent with the saved checkpoint of size {}: history before it was rewritten",
                            cp.size
                        ),
                        leaf: None,
                        record: None,
                    });
                }
            }
            Some(summary(&cp))
        }
    };

    // 4. Projections.
    for m in store.check_projections(3)? {
        let record = match m.entry {
            Some(e) if e < entries => nth(e)?,
            _ => None,
        };
        let what = match (&m.stored, &m.expected) {
            (Some(s), _) => format!("row ({s}) in `{}` is not what the journal says", m.table),
            (None, Some(e)) => format!("row ({e}) is missing from `{}`", m.table),
            (None, None) => format!("`{}` differs from the journal", m.table),
        };
        problems.push(Problem {
            code: "projection-altered",
            message: what,
            leaf: m.entry,
            record,
        });
    }
    // Journal and log findings first: a projection row is only as good as its entry, and an
    // added or altered entry disturbs the projections after it.
    problems.sort_by_key(|p| (p.code == "projection-altered", p.leaf.unwrap_or(u64::MAX)));
    Ok(report(
        entries,
        log_size,
        &recomputed.root,
        latest_summary,
        checkpoints.len(),
        since_summary,
        problems,
    ))
}

fn report(
    entries: u64,
    log_size: u64,
    root: &Hash,
    checkpoint: Option<CheckpointSummary>,
    checked: usize,
    since: Option<CheckpointSummary>,
    problems: Vec<Problem>,
) -> VerifyReport {
    VerifyReport {
        schema: 1,
        verified: problems.is_empty(),
        entries,
        log_size,
        root: hex::encode(root),
        checkpoint,
        checkpoints_checked: checked as u64,
        since,
        problems,
    }
}

fn summary(cp: &Checkpoint) -> CheckpointSummary {
    CheckpointSummary {
        origin: cp.origin.clone(),
        size: cp.size,
        root: hex::encode(cp.root),
    }
}

fn leaves_store(leaves: &[Hash]) -> merkle::MemoryHashStore {
    let mut m = merkle::MemoryHashStore::new();
    for l in leaves {
        m.append_leaf_hash(*l);
    }
    m
}

trait RootAt {
    fn root_at(&self, size: u64, leaves: &[Hash]) -> Hash;
}

impl RootAt for merkle::Recomputed {
    /// The recomputed root over the first `size` leaves.
    fn root_at(&self, size: u64, leaves: &[Hash]) -> Hash {
        if size == self.size {
            return self.root;
        }
        let mut f = Frontier::new();
        for l in &leaves[..size as usize] {
            f.append(*l);
        }
        f.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_section_parses_with_positions() {
        let s = LogSettings::from_toml(
            "[log]\norigin = \"ci.acme.dev/ledger\"\ncheckpoint_dir = \"witness\"\n",
            "lineage.toml",
            Path::new("/etc/lineage"),
        )
        .unwrap();
        assert_eq!(s.origin, "ci.acme.dev/ledger");
        assert_eq!(
            s.checkpoint_dir,
            Some(PathBuf::from("/etc/lineage/witness"))
        );
        let err =
            LogSettings::from_toml("[log]\norigin = \"a b\"\n", "lineage.toml", Path::new("."))
                .unwrap_err();
        assert!(err.to_string().starts_with("lineage.toml:2:10:"), "{err}");
        let err = LogSettings::from_toml("[log]\norign = \"x\"\n", "lineage.toml", Path::new("."))
            .unwrap_err();
        assert!(err.to_string().starts_with("lineage.toml:2:1:"), "{err}");
        assert_eq!(
            LogSettings::from_toml("[environments]\nnames = [\"dev\"]\n", "f", Path::new("."))
                .unwrap(),
            LogSettings::default()
        );
    }

    #[test]
    fn record_refs_name_the_record() {
        let r = record_ref(
            "deploy",
            r#"{"kind":"deploy","record":{"service":"api","digest":"sha256:ab","env":"prod"}}"#,
        );
        assert_eq!(r.to_string(), "deploy sha256:ab of service api to prod");
    }
}
