//! The ledger's tamper-evident log as a use case: the `[log]` settings, the Ed25519 log key and
//! where it lives, the key a writer may sign with (`writer_key`), signing a checkpoint after a
//! write (`seal`), deliberate key rotation (`rotate_key`), proof bundles, and the full audit
//! (`verify`). The CLI seals when a command that opened the ledger for writing is done; the
//! server seals after each batch.
//!
//! Checkpoints are C2SP signed notes (<https://c2sp.org/tlog-checkpoint>,
//! <https://c2sp.org/signed-note>) over the RFC 6962 / RFC 9162 tree the store maintains.
//! The key is a dedicated Ed25519 log key, kept as PKCS#8 PEM: beside an SQLite ledger, or
//! where `[log] key` says (the only place for a PostgreSQL ledger).
//!
//! Key rules. A key is created only for a log with no checkpoint. After that, a writer whose
//! key is missing, or is not the key that signed the latest checkpoint (or that the latest
//! rotation installed), is refused before it writes: a new key would not verify the older
//! checkpoints. Changing the key is an explicit, logged act: a `log_key_rotation` record,
//! sealed by the old key, names the new one, so `verify` can follow the chain of keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use lineage_model::{Identity, LogKeyRotation, Record, Timestamp};
use lineage_store::lineage_log::checkpoint::{
    parse_signed_checkpoint, verify_checkpoint, Checkpoint, CheckpointVerification,
};
use lineage_store::lineage_log::keys::{LogKey, Verifier};
use lineage_store::lineage_log::merkle::{self, Frontier, Hash};
use lineage_store::lineage_log::proof::{ConsistencyBundle, InclusionBundle};
use lineage_store::{Store, StoreLocation, StoredCheckpoint};
use serde::Serialize;

use crate::Error;

/// The origin a ledger's log uses when `[log] origin` is not set.
pub const DEFAULT_ORIGIN: &str = "lineage.local/ledger";
/// File names of the log key and its public forms, in the key's directory.
pub const KEY_FILE: &str = "log.key";
pub const PUBLIC_KEY_FILE: &str = "log.pub";
pub const VKEY_FILE: &str = "log.vkey";
/// The record kind of a log key rotation, and the fact key every rotation is filed under.
pub const ROTATION_KIND: &str = "log_key_rotation";
const ROTATION_FACT_KEY: &str = "log";

/// The `[log]` section of `lineage.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The checkpoint origin line, also the key's signer name. Fixed for the life of a log.
    pub origin: String,
    /// The private key file; default `log.key` beside an SQLite ledger. Required for
    /// PostgreSQL.
    pub key: Option<PathBuf>,
    /// The public key `log verify` trusts when no `--key` is given; default: `log.pub` beside
    /// the key, else the public half of the key itself.
    pub public_key: Option<PathBuf>,
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
            public_key: None,
            checkpoint_dir: None,
            checkpoint_file: None,
        }
    }
}

/// `[log]`'s keys, here and in the whole-document check (`config_keys`).
pub(crate) const SECTION: lineage_toml::Field = lineage_toml::Field {
    name: "log",
    shape: lineage_toml::Shape::Table(&[
        lineage_toml::value("origin"),
        lineage_toml::value("key"),
        lineage_toml::value("public_key"),
        lineage_toml::value("checkpoint_dir"),
        lineage_toml::value("checkpoint_file"),
    ]),
};

impl LogSettings {
    /// Parses the `[log]` section of a standalone `lineage.toml` text (tests, tools), named
    /// `file` in errors; relative paths are relative to `base`, the file's directory. Lineage
    /// itself reads the file once, through `LineageToml::parse`.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<LogSettings, Error> {
        Ok(LogSettings::from_document(
            &lineage_toml::Document::parse(text, file)?,
            base,
        )?)
    }

    /// Reads `[log]`; relative paths are relative to `base`, the file's directory.
    pub fn from_document(
        doc: &lineage_toml::Document,
        base: &Path,
    ) -> Result<LogSettings, lineage_toml::ConfigError> {
        let Some(section) = doc.section("log") else {
            return Ok(LogSettings::default());
        };
        let log = section.table()?;
        log.deny_unknown_fields(SECTION.keys())?;
        let origin = match log.get("origin") {
            None => DEFAULT_ORIGIN.to_string(),
            Some(entry) => {
                let o = entry.string("\"lineage.acme.dev/ledger\"")?;
                // C2SP: the origin is the key name too, so it has no spaces or `+`.
                let ok = !o.is_empty()
                    && !o
                        .chars()
                        .any(|c| c.is_whitespace() || c == '+' || c.is_control());
                if !ok {
                    return Err(entry.error(
                        format!(
                            "`log.origin` `{}` must be non-empty, without spaces or `+` (e.g. `lineage.acme.dev/ledger`)",
                            lineage_model::inert(o)
                        ),
                        "write `origin = \"lineage.acme.dev/ledger\"`: a host and path naming this ledger",
                    ));
                }
                o.to_string()
            }
        };
        let path =
            |key: &str, example: &str| -> Result<Option<PathBuf>, lineage_toml::ConfigError> {
                log.get(key)
                    .map(|e| e.string(example).map(|p| base.join(p)))
                    .transpose()
            };
        Ok(LogSettings {
            origin,
            key: path("key", "\"/etc/lineage/log.key\"")?,
            public_key: path("public_key", "\"log.pub\"")?,
            checkpoint_dir: path("checkpoint_dir", "\"witness/\"")?,
            checkpoint_file: path("checkpoint_file", "\"checkpoint.txt\"")?,
        })
    }

    /// The log key file of the ledger at `store`: `[log] key`, else `log.key` beside an SQLite
    /// ledger. `None` for a PostgreSQL ledger without `[log] key`: a database has no directory,
    /// and a default relative to wherever a command runs would give each process its own key.
    pub fn key_file(&self, store: &StoreLocation) -> Option<PathBuf> {
        if let Some(key) = &self.key {
            return Some(key.clone());
        }
        match store {
            StoreLocation::Sqlite(p) => Some(
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .join(KEY_FILE),
            ),
            StoreLocation::Postgres(_) => None,
        }
    }

    /// [`LogSettings::key_file`] for a writer: a PostgreSQL ledger without `[log] key` is an
    /// error that says where the key must be configured.
    pub fn writer_key_file(&self, store: &StoreLocation) -> Result<PathBuf, Error> {
        self.key_file(store).ok_or_else(|| {
            Error::Invalid(
                format!("the PostgreSQL ledger `{store}` takes its log key from `[log] key` in lineage.toml, which is not set; nothing was written"),
                "add `[log]` with `key = \"/etc/lineage/log.key\"` to lineage.toml: the path of the key that signs this ledger's checkpoints (the first write creates it there); every process writing to the database needs the same file".into(),
            )
        })
    }

    /// How messages name the key file: its full path, and where that path was configured.
    fn place(&self, key_file: &Path) -> String {
        if self.key.as_deref() == Some(key_file) {
            format!("`{}` (`[log] key` in lineage.toml)", shown(key_file))
        } else {
            format!("`{}`", shown(key_file))
        }
    }
}

/// A path as messages show it: absolute, so it does not depend on where the command ran.
fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn io_error(what: &str, path: &Path, e: std::io::Error, hint: &str) -> Error {
    Error::Invalid(
        format!("cannot {what} `{}`: {e}", path.display()),
        hint.to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Key files.
// ---------------------------------------------------------------------------------------------

const KEY_FILE_HINT: &str =
    "check the permissions of the key's directory, or set `[log] key` in lineage.toml";

/// Reads the log key at `path` (signing under `origin`); `None` when there is no file.
pub fn load_key(path: &Path, origin: &str) -> Result<Option<LogKey>, Error> {
    match std::fs::read_to_string(path) {
        Ok(pem) => LogKey::from_pkcs8_pem(origin, &pem).map(Some).map_err(|e| {
            Error::Invalid(
                format!("log key `{}` is unusable: {e}", path.display()),
                "restore the key from backup; a new key would not match the signed checkpoints"
                    .into(),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, e, KEY_FILE_HINT)),
    }
}

/// A file name beside `path` that no other process uses: `.<name>.<pid>.<tag>.tmp`.
fn temporary(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{tag}.tmp", std::process::id()))
}

/// Writes `bytes` to a new file at `path` with permission bits `mode`, synced to disk.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a rename or link in `path`'s directory durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, so a reader (or a
/// crash) sees the old file or the new one, never a partial or empty one.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temporary(path, "new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Creates the log key at `path` unless a key is there already, which then wins: two
/// processes starting on a new ledger at once end up with the same key.
fn create_key(path: &Path, origin: &str) -> Result<LogKey, Error> {
    let key = LogKey::generate(origin).map_err(|e| {
        Error::Invalid(
            format!("cannot generate a log key: {e}"),
            KEY_FILE_HINT.into(),
        )
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e, KEY_FILE_HINT))?;
    }
    let tmp = temporary(path, "key");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, key.to_pkcs8_pem().as_bytes(), 0o600)
        .map_err(|e| io_error("write", &tmp, e, KEY_FILE_HINT))?;
    // A hard link publishes the complete file under its name, and fails if one exists.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path).map_err(|e| io_error("sync", path, e, KEY_FILE_HINT))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_key(path, origin)?.ok_or_else(|| io_error("read", path, e, KEY_FILE_HINT))
        }
        Err(e) => Err(io_error("write", path, e, KEY_FILE_HINT)),
    }
}

/// Writes `log.pub` and `log.vkey` beside the key when they are missing or do not match it.
fn write_public_files(key_file: &Path, key: &LogKey) -> Result<(), Error> {
    let dir = key_file.parent().unwrap_or(Path::new("."));
    for (name, text) in [
        (PUBLIC_KEY_FILE, key.public_key_pem()),
        (VKEY_FILE, format!("{}\n", key.vkey())),
    ] {
        let p = dir.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
            replace_file(&p, text.as_bytes(), 0o644)
                .map_err(|e| io_error("write", &p, e, KEY_FILE_HINT))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Which key the log expects.
// ---------------------------------------------------------------------------------------------

/// The key the log says must sign its next checkpoint.
enum Current {
    /// No checkpoint and no rotation yet: the log has no key.
    Unkeyed,
    /// The key that signed this, the latest checkpoint.
    Signed(StoredCheckpoint),
    /// The key the rotation at ledger entry `index` installed.
    Rotated { index: u64, vkey: String },
}

fn current_key(store: &dyn Store) -> Result<Current, Error> {
    let latest_rotation = store
        .facts(ROTATION_KIND, Some(ROTATION_FACT_KEY))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::LogKeyRotation(r) => Some((e.index, r)),
            _ => None,
        })
        .next_back();
    if let Some((index, r)) = latest_rotation {
        return Ok(Current::Rotated {
            index,
            vkey: r.new_public_key,
        });
    }
    Ok(match store.latest_checkpoint()? {
        Some(cp) => Current::Signed(cp),
        None => Current::Unkeyed,
    })
}

/// The key ids (hex) on a signed note's signature lines.
fn signer_ids(text: &str) -> Vec<String> {
    parse_signed_checkpoint(text)
        .map(|(_, note)| {
            note.signatures()
                .iter()
                .map(|s| hex::encode(s.key_id))
                .collect()
        })
        .unwrap_or_default()
}

fn vkey_id(vkey: &str) -> String {
    vkey.split('+').nth(1).unwrap_or_default().to_string()
}

impl Current {
    /// Whether `key` is the log's current key.
    fn accepts(&self, key: &LogKey) -> bool {
        match self {
            Current::Unkeyed => true,
            Current::Signed(cp) => verify_checkpoint(&cp.text, &key.verifier()).is_verified(),
            Current::Rotated { vkey, .. } => {
                Verifier::from_vkey(vkey).is_ok_and(|v| v.key() == &key.public_key())
            }
        }
    }

    /// Why `key` is not the current key, as the end of a sentence about it.
    fn mismatch(&self, key: &LogKey) -> String {
        let id = hex::encode(key.key_id());
        match self {
            Current::Unkeyed => String::new(),
            Current::Signed(cp) => format!(
                "(key id {id}) did not sign this ledger's latest checkpoint (size {}, signed by key id {})",
                cp.size,
                signer_ids(&cp.text).join(", ")
            ),
            Current::Rotated { index, vkey } => format!(
                "(key id {id}) is not the key this ledger's log rotated to at entry {index} (key id {})",
                vkey_id(vkey)
            ),
        }
    }
}

/// Refuses settings whose `[log] origin` differs from the one the log's checkpoints carry.
fn check_origin(store: &dyn Store, settings: &LogSettings) -> Result<(), Error> {
    let Some(latest) = store.latest_checkpoint()? else {
        return Ok(());
    };
    if let Ok(cp) = Checkpoint::parse(checkpoint_body(&latest.text)) {
        if cp.origin != settings.origin {
            return Err(Error::Invalid(
                format!(
                    "the ledger's log origin is `{}` but lineage.toml sets `[log] origin` to `{}`",
                    cp.origin, settings.origin
                ),
                format!(
                    "a log keeps its origin for life; set `origin = \"{}\"` under [log]",
                    cp.origin
                ),
            ));
        }
    }
    Ok(())
}

fn missing_key(settings: &LogSettings, key_file: &Path) -> Error {
    Error::Invalid(
        format!(
            "this ledger's checkpoints are signed, but its log key {} is missing; nothing was written",
            settings.place(key_file)
        ),
        format!(
            "restore the key from a backup to `{}` (a new key would not verify the signed checkpoints); if it is lost for good, replace it on the record: `lineage log rotate-key --old-key-lost --reason TEXT`",
            shown(key_file)
        ),
    )
}

fn wrong_key(settings: &LogSettings, key_file: &Path, current: &Current, key: &LogKey) -> Error {
    Error::Invalid(
        format!(
            "the log key {} {}; nothing was written",
            settings.place(key_file),
            current.mismatch(key)
        ),
        format!(
            "put this ledger's log key at `{}`; to change keys deliberately, run `lineage log rotate-key` with the current key in place",
            shown(key_file)
        ),
    )
}

/// The key a writer signs with, decided before it writes anything. `store` is `None` when the
/// ledger does not exist yet.
///
/// A log with no checkpoint and no rotation has no key yet: the key at `key_file` is used, or
/// created there (mode 0600, written atomically). Otherwise the key at `key_file` must be the
/// log's current key: the one that signed the latest checkpoint, or the one the latest
/// rotation installed. A missing or different key is refused; replacing it is
/// [`rotate_key`]'s job, never a side effect of a write.
pub fn writer_key(
    store: Option<&dyn Store>,
    settings: &LogSettings,
    key_file: &Path,
) -> Result<LogKey, Error> {
    let current = match store {
        Some(store) => {
            check_origin(store, settings)?;
            current_key(store)?
        }
        None => Current::Unkeyed,
    };
    let key = match (load_key(key_file, &settings.origin)?, &current) {
        (Some(key), _) => key,
        (None, Current::Unkeyed) => create_key(key_file, &settings.origin)?,
        (None, _) => return Err(missing_key(settings, key_file)),
    };
    if !current.accepts(&key) {
        return Err(wrong_key(settings, key_file, &current, &key));
    }
    // The public forms are derived; keep them beside the key for auditors and `log verify`.
    write_public_files(key_file, &key)?;
    Ok(key)
}

/// The public key `log verify` trusts when not given one: `[log] public_key`, else `log.pub`
/// beside the log key, else the public half of the log key itself.
pub fn public_key(settings: &LogSettings, store: &StoreLocation) -> Result<Verifier, Error> {
    if let Some(path) = &settings.public_key {
        return read_public_key(path, "`[log] public_key` in lineage.toml");
    }
    let Some(key_file) = settings.key_file(store) else {
        return Err(Error::Invalid(
            format!("cannot tell which key verifies the PostgreSQL ledger `{store}`: `[log] key` is not set in lineage.toml"),
            "pass the log's public key with `--key log.pub`, or set `[log] key` (or `[log] public_key`) in lineage.toml".into(),
        ));
    };
    let public = key_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(PUBLIC_KEY_FILE);
    if public.exists() {
        return read_public_key(&public, "the log's public key");
    }
    match load_key(&key_file, &settings.origin)? {
        Some(key) => Ok(key.verifier()),
        None => Err(Error::Invalid(
            format!(
                "cannot find the log's public key: neither `{}` nor the log key {} exists",
                public.display(),
                settings.place(&key_file)
            ),
            "pass the log's public key with `--key log.pub`, or set `[log] public_key` in lineage.toml".into(),
        )),
    }
}

/// Reads a public key: PEM (`log.pub`) or a note verifier key (`log.vkey`).
pub fn read_public_key(path: &Path, what: &str) -> Result<Verifier, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Invalid(
            format!("cannot read public key `{}` ({what}): {e}", path.display()),
            "check the path".into(),
        )
    })?;
    Verifier::parse(&text).map_err(|e| {
        Error::Invalid(
            format!("`{}` is not a usable public key: {e}", path.display()),
            "pass the log's `log.pub` (PEM) or `log.vkey` file".into(),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Sealing and rotating.
// ---------------------------------------------------------------------------------------------

/// Signs a checkpoint for the log's current size if none covers it yet, keeps it in the
/// store, and writes it where `[log]` says witnesses pick it up. Returns the new checkpoint.
/// Refuses a key that is not the log's current key, so a retired key never signs again.
pub fn seal(
    store: &mut dyn Store,
    key: &LogKey,
    settings: &LogSettings,
    now: Timestamp,
) -> Result<Option<StoredCheckpoint>, Error> {
    check_origin(store, settings)?;
    let current = current_key(store)?;
    if !current.accepts(key) {
        return Err(Error::Invalid(
            format!(
                "the log key {}; no checkpoint was signed",
                current.mismatch(key)
            ),
            "give this process the ledger's current log key (after `lineage log rotate-key`, restart servers with the new key)".into(),
        ));
    }
    sign_head(store, key, settings, now)
}

/// Signs the log's head with `key` unless a checkpoint covers it already.
fn sign_head(
    store: &mut dyn Store,
    key: &LogKey,
    settings: &LogSettings,
    now: Timestamp,
) -> Result<Option<StoredCheckpoint>, Error> {
    let head = store.log_head()?;
    let covered = store.latest_checkpoint()?.map_or(0, |c| c.size);
    if head.size == 0 || covered >= head.size {
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

/// What `lineage log rotate-key` is asked to do.
pub struct Rotation {
    /// The key to switch to; `None` generates one.
    pub new_key: Option<LogKey>,
    /// The old key is gone: record the rotation without its seal.
    pub old_key_lost: bool,
    pub reason: Option<String>,
    pub by: Identity,
}

/// What a rotation did (`"schema": 1`).
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    pub schema: u32,
    /// The ledger entry that records the rotation.
    pub index: u64,
    pub old_key_id: String,
    pub new_key_id: String,
    /// The new key as a note verifier key.
    pub new_public_key: String,
    pub old_key_lost: bool,
    /// The key id that signed the checkpoint covering the rotation (the old key unless lost).
    pub sealed_by: String,
    /// The tree size of that checkpoint.
    pub checkpoint_size: Option<u64>,
    /// Where the new key now is.
    pub key_file: String,
}

/// Replaces the log key on the record. The rotation is a `log_key_rotation` entry naming the
/// old and the new key; the old key seals it (so it vouches for its successor), then the new
/// key is installed at `key_file` and signs from then on. With `old_key_lost`, the entry is
/// sealed by the new key instead and `verify` reports the break in the chain.
///
/// The new key is written to a synced temporary file before the entry is appended, so it is
/// never lost once the log names it. Other writers of the ledger should be stopped meanwhile.
pub fn rotate_key(
    store: &mut dyn Store,
    settings: &LogSettings,
    key_file: &Path,
    rotation: Rotation,
    now: Timestamp,
) -> Result<RotationReport, Error> {
    check_origin(store, settings)?;
    let current = current_key(store)?;
    if let Current::Unkeyed = current {
        return Err(Error::Invalid(
            "this ledger's log has no key to rotate yet: nothing is signed".into(),
            format!(
                "the first write creates the key at `{}`; to start with a key of your own, put it there first",
                shown(key_file)
            ),
        ));
    }
    let reason = match rotation.reason.as_deref().map(str::trim) {
        Some(r) if r.is_empty() || r.len() > 1000 || r.chars().any(char::is_control) => {
            return Err(Error::Invalid(
                "--reason must be one line of up to 1000 characters".into(),
                "say why, e.g. `--reason \"the laptop holding the key was lost\"`".into(),
            ))
        }
        Some(r) => Some(r.to_string()),
        None if rotation.old_key_lost => {
            return Err(Error::Invalid(
                "a rotation without the old key needs a reason".into(),
                "say why, e.g. `--reason \"the laptop holding the key was lost\"`".into(),
            ))
        }
        None => None,
    };
    // Without the old key, whatever is in the key file (nothing, garbage, a stray key) goes.
    let present = if rotation.old_key_lost {
        load_key(key_file, &settings.origin).ok().flatten()
    } else {
        load_key(key_file, &settings.origin)?
    }
    .filter(|k| current.accepts(k));
    let (old_key, old_key_id, old_public_key) = match (present, rotation.old_key_lost) {
        (Some(_), true) => {
            return Err(Error::Invalid(
                format!(
                    "the log key {} is present and is this ledger's current key",
                    settings.place(key_file)
                ),
                "rotate with it: `lineage log rotate-key` (without `--old-key-lost`)".into(),
            ))
        }
        (Some(old), false) => {
            let (id, vkey) = (hex::encode(old.key_id()), old.vkey());
            (Some(old), id, Some(vkey))
        }
        (None, false) => {
            return Err(match load_key(key_file, &settings.origin)? {
                Some(other) => wrong_key(settings, key_file, &current, &other),
                None => missing_key(settings, key_file),
            })
        }
        (None, true) => {
            let (id, vkey) = lost_key(&current, settings, key_file);
            (None, id, vkey)
        }
    };
    let new_key = match rotation.new_key {
        Some(k) => k,
        None => LogKey::generate(&settings.origin).map_err(|e| {
            Error::Invalid(
                format!("cannot generate a log key: {e}"),
                KEY_FILE_HINT.into(),
            )
        })?,
    };
    if old_public_key.as_deref() == Some(new_key.vkey().as_str()) {
        return Err(Error::Invalid(
            "the new key is the log's current key".into(),
            "pass a different key to `--new-key`, or leave it out to generate one".into(),
        ));
    }
    // The new key is on disk before the log names it.
    if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e, KEY_FILE_HINT))?;
    }
    let staged = temporary(key_file, "rotated");
    let _ = std::fs::remove_file(&staged);
    write_new(&staged, new_key.to_pkcs8_pem().as_bytes(), 0o600)
        .map_err(|e| io_error("write", &staged, e, KEY_FILE_HINT))?;
    let record = LogKeyRotation {
        old_key_id: old_key_id.clone(),
        old_public_key,
        new_public_key: new_key.vkey(),
        old_key_lost: rotation.old_key_lost,
        reason,
        by: rotation.by.clone(),
        at: now,
    };
    let index = match store.record_facts(&[Record::LogKeyRotation(record)], now, Some(&rotation.by))
    {
        Ok(indexes) => indexes[0],
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e.into());
        }
    };
    // The old key vouches for its successor by signing the tree that names it.
    let sealer = old_key.as_ref().unwrap_or(&new_key);
    let sealed = sign_head(store, sealer, settings, now);
    let installed = std::fs::rename(&staged, key_file)
        .and_then(|()| sync_dir(key_file))
        .map_err(|e| {
            Error::Invalid(
                format!(
                    "the rotation is recorded (ledger entry {index}) but the new key could not be moved into place: {e}"
                ),
                format!(
                    "move `{}` to `{}` by hand; it is the key the log now expects",
                    staged.display(),
                    shown(key_file)
                ),
            )
        });
    installed?;
    write_public_files(key_file, &new_key)?;
    let checkpoint = sealed?;
    Ok(RotationReport {
        schema: 1,
        index,
        old_key_id,
        new_key_id: hex::encode(new_key.key_id()),
        new_public_key: new_key.vkey(),
        old_key_lost: rotation.old_key_lost,
        sealed_by: hex::encode(sealer.key_id()),
        checkpoint_size: checkpoint.map(|c| c.size),
        key_file: shown(key_file),
    })
}

/// The id and, when it can be found, the public key of a lost log key: from the rotation
/// that installed it, or a public key file (`[log] public_key`, `log.pub`, `log.vkey`) that
/// verifies the latest checkpoint.
fn lost_key(
    current: &Current,
    settings: &LogSettings,
    key_file: &Path,
) -> (String, Option<String>) {
    match current {
        Current::Rotated { vkey, .. } => (vkey_id(vkey), Some(vkey.clone())),
        Current::Unkeyed => (String::new(), None),
        Current::Signed(cp) => {
            let dir = key_file.parent().unwrap_or(Path::new("."));
            let candidates = settings
                .public_key
                .iter()
                .cloned()
                .chain([dir.join(PUBLIC_KEY_FILE), dir.join(VKEY_FILE)]);
            for path in candidates {
                let Ok(v) = read_public_key(&path, "") else {
                    continue;
                };
                if let CheckpointVerification::Verified { key_id, .. } =
                    verify_checkpoint(&cp.text, &v)
                {
                    return (hex::encode(key_id), v.to_vkey(&settings.origin));
                }
            }
            let id = signer_ids(&cp.text).into_iter().next().unwrap_or_default();
            (id, None)
        }
    }
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
    replace_file(path, text.as_bytes(), 0o644).map_err(|e| io_error("write", path, e, hint))
}

/// The latest signed checkpoint as `lineage log checkpoint`, `GET /api/v1/log/checkpoint` and
/// the dashboard's log page show it: the one reading of its origin and root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    pub schema: u32,
    /// `None` when the stored text does not parse as a checkpoint (`log verify` says why).
    pub origin: Option<String>,
    pub size: u64,
    /// The signed root hash, lowercase hex.
    pub root: Option<String>,
    pub created: Timestamp,
    /// The signed note, exactly as stored.
    pub checkpoint: String,
}

impl CheckpointReport {
    pub fn of(latest: &StoredCheckpoint) -> CheckpointReport {
        let parsed = Checkpoint::parse(checkpoint_body(&latest.text)).ok();
        CheckpointReport {
            schema: 1,
            origin: parsed.as_ref().map(|c| c.origin.clone()),
            size: latest.size,
            root: parsed.as_ref().map(|c| hex::encode(c.root)),
            created: latest.created,
            checkpoint: latest.text.clone(),
        }
    }
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
                "the next write signs a checkpoint that covers it; until then, prove an earlier entry".into()
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
    /// The leaves whose records were re-read and re-hashed: all of them, or with `--since`
    /// only those after the saved checkpoint (the ones before are vouched for by its root).
    pub verified_range: VerifiedRange,
    /// Whether the query tables were rebuilt from the journal and compared (not with
    /// `--since`).
    pub projections_checked: bool,
    /// Problems, the earliest leaf first.
    pub problems: Vec<Problem>,
    /// The log's keys in the order they signed, as its rotation records chain them.
    pub keys: Vec<KeySummary>,
    /// Findings that do not fail the audit but must not pass unnoticed (a key rotated without
    /// the old key's signature, checkpoints whose lost key cannot be checked).
    pub warnings: Vec<Problem>,
}

/// One key in the log's chain of keys.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    /// The C2SP note key id (8 hex digits).
    pub key_id: String,
    /// The smallest tree size this key signs checkpoints for.
    pub signs_from: u64,
    /// The ledger entry of the rotation that installed it; `None` for the log's first key.
    pub introduced_at: Option<u64>,
    /// True when the rotation that installed it was not sealed by the old key.
    pub old_key_lost: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True for the key the audit was given to trust.
    pub trusted: bool,
}

/// Leaves `from..to` (ledger indexes).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VerifiedRange {
    pub from: u64,
    pub to: u64,
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

/// Journal rows and stored hashes are read in pages of this many, so the audit's memory does
/// not grow with the ledger.
const PAGE: u64 = 10_000;

/// The stored log hashes, read page by page in storage order.
struct StoredHashes<'a> {
    store: &'a dyn Store,
    page: Vec<Hash>,
    start: u64,
    /// Set when a page came back short: the readable sequence ends there.
    ended: bool,
}

impl<'a> StoredHashes<'a> {
    fn new(store: &'a dyn Store) -> Self {
        StoredHashes {
            store,
            page: Vec::new(),
            start: 0,
            ended: false,
        }
    }

    /// The stored hash at position `i`; positions are asked for in increasing order.
    fn get(&mut self, i: u64) -> Result<Option<Hash>, Error> {
        let end = self.start + self.page.len() as u64;
        if i >= self.start && i < end {
            return Ok(Some(self.page[(i - self.start) as usize]));
        }
        if self.ended && i >= end {
            return Ok(None);
        }
        let want = 2 * PAGE;
        self.page = self.store.log_hash_range(i, i + want)?;
        self.start = i;
        self.ended = (self.page.len() as u64) < want;
        Ok(self.page.first().copied())
    }
}

/// Stored hashes by position, for seeding a frontier from storage (`popcount(size)` reads).
struct HashesAt<'a>(&'a dyn Store);

impl merkle::HashReader for HashesAt<'_> {
    type Error = lineage_store::StoreError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            out.extend(self.0.log_hash_range(i, i + 1)?);
        }
        Ok(out)
    }
}

/// What one streaming pass over the journal found.
struct Pass {
    /// The tree over every leaf re-hashed (and, with `--since`, the saved prefix).
    frontier: Frontier,
    /// Journal rows accounted for (the saved prefix counts as read).
    rows: u64,
    /// The first leaf at which the journal skips a stored position.
    gap: Option<u64>,
    rotations: Vec<(u64, LogKeyRotation)>,
    first_mismatch: Option<merkle::StoredMismatch>,
    /// Recomputed roots at the tree sizes asked for.
    roots: std::collections::BTreeMap<u64, Hash>,
}

impl Pass {
    /// The recomputed root over the first `size` leaves, when the pass noted it.
    fn root_at(&self, size: u64) -> Option<Hash> {
        if size == self.frontier.size() {
            return Some(self.frontier.root());
        }
        self.roots.get(&size).copied()
    }
}

/// Re-hashes the journal from `frontier.size()` on, page by page, folding the leaves into
/// `frontier` and checking every stored hash they imply as it goes (what `merkle::recompute`
/// does over a whole tree, without holding the tree). Notes the roots at the sizes in `wanted`.
fn rehash(
    store: &dyn Store,
    mut frontier: Frontier,
    log_size: u64,
    wanted: &std::collections::BTreeSet<u64>,
    progress: &dyn lineage_model::Progress,
) -> Result<Pass, Error> {
    let first = frontier.size();
    let mut stored = StoredHashes::new(store);
    let mut at = merkle::stored_hash_count(first);
    let mut pass = Pass {
        frontier: Frontier::new(),
        rows: first,
        gap: None,
        rotations: Vec::new(),
        first_mismatch: None,
        roots: Default::default(),
    };
    if wanted.contains(&first) {
        pass.roots.insert(first, frontier.root());
    }
    let total = log_size.max(store.len()?);
    let mut from = first;
    loop {
        let chunk = store.raw_entries(from, from + PAGE)?;
        if chunk.is_empty() && from >= log_size.max(store.len()?) {
            break;
        }
        for e in &chunk {
            if pass.gap.is_none() && e.index != pass.rows {
                pass.gap = Some(pass.rows);
            }
            // The chain of keys comes from the journal itself, which the tree covers.
            if e.kind == ROTATION_KIND {
                if let Ok(Record::LogKeyRotation(r)) = serde_json::from_str(&e.body) {
                    pass.rotations.push((pass.rows, r));
                }
            }
            let index = frontier.size();
            let new = frontier.append(merkle::leaf_hash(e.body.as_bytes()));
            if pass.first_mismatch.is_none() {
                for h in new {
                    let s = stored.get(at)?;
                    if s != Some(h) {
                        pass.first_mismatch = Some(merkle::StoredMismatch {
                            leaf_index: index,
                            stored_index: at,
                            recomputed: Some(h),
                            stored: s,
                        });
                        break;
                    }
                    at += 1;
                }
            }
            pass.rows += 1;
            if wanted.contains(&pass.rows) {
                pass.roots.insert(pass.rows, frontier.root());
            }
        }
        from += PAGE;
        progress.update("rehashing records", pass.rows, Some(total.max(pass.rows)));
    }
    if pass.first_mismatch.is_none() {
        if let Some(s) = stored.get(at)? {
            pass.first_mismatch = Some(merkle::StoredMismatch {
                leaf_index: frontier.size(),
                stored_index: at,
                recomputed: None,
                stored: Some(s),
            });
        }
    }
    pass.frontier = frontier;
    Ok(pass)
}

/// Recomputes the whole tree from the journal bodies and checks it against the stored hashes,
/// every stored checkpoint (signature and root), the projections, and, with `since`, a
/// checkpoint saved earlier (RFC 9162 §2.1.4 consistency). `key` is the key the caller
/// trusts; each checkpoint must be signed by the key the log's chain of keys names for its
/// size, and the trusted key must be in that chain.
pub fn verify(
    store: &dyn Store,
    key: &Verifier,
    since: Option<&str>,
) -> Result<VerifyReport, Error> {
    verify_with_progress(store, key, since, &())
}

/// [`verify`], telling `progress` how far it is. The journal and the stored hashes are
/// streamed in pages, so memory does not grow with the ledger.
///
/// With `since` (a checkpoint saved earlier), only what is new is verified: the saved
/// checkpoint's signature and root (against the stored hashes of its tree), the RFC 9162
/// consistency proof from it to the current log, the entries after it (re-hashed and folded
/// onto the saved tree), the checkpoints signed since, and the rotation records before it (by
/// inclusion proofs against the saved root). Entries before it and the projections are not
/// re-read: `verified_range` and `projections_checked` in the report say so.
pub fn verify_with_progress(
    store: &dyn Store,
    key: &Verifier,
    since: Option<&str>,
    progress: &dyn lineage_model::Progress,
) -> Result<VerifyReport, Error> {
    match since {
        Some(text) => verify_since(store, key, text, progress),
        None => verify_all(store, key, progress),
    }
}

fn verify_all(
    store: &dyn Store,
    key: &Verifier,
    progress: &dyn lineage_model::Progress,
) -> Result<VerifyReport, Error> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let log_size = store.log_head()?.size;
    let checkpoints = store.checkpoints()?;
    // 1. Leaf hashes from the bodies, in stored order, checked against the stored hashes as
    // they are computed; the roots at every checkpoint's size are noted on the way.
    let mut wanted: std::collections::BTreeSet<u64> = [log_size].into();
    for c in &checkpoints {
        wanted.insert(c.size);
        if let Ok((cp, _)) = parse_signed_checkpoint(&c.text) {
            wanted.insert(cp.size);
        }
    }
    let pass = rehash(store, Frontier::new(), log_size, &wanted, progress)?;
    let entries = pass.rows;
    let gap = pass.gap;
    let rotations = pass.rotations.clone();
    let recomputed_root = pass.frontier.root();
    let nth = |n: u64| nth_record(store, n, entries.max(log_size));
    // Whether the journal itself still matches the newest stored checkpoint: then a mismatch
    // is in the stored log hashes, not in the records (signatures are checked below).
    let journal_matches_checkpoint = || -> Option<u64> {
        let newest = checkpoints.last()?;
        let (cp, _) = parse_signed_checkpoint(&newest.text).ok()?;
        if cp.size == 0 || cp.size > entries {
            return None;
        }
        (pass.root_at(cp.size)? == cp.root).then_some(cp.size)
    };
    if let Some(m) = &pass.first_mismatch {
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
        } else if let Some(size) =
            journal_matches_checkpoint().filter(|&size| m.stored.is_none() && leaf < size)
        {
            (
                "log-truncated",
                format!("the stored log hashes stop before leaf {leaf}, but the records match the signed checkpoint of {size} leaves: the log table was cut, the records are intact"),
            )
        } else if m.stored.is_none() {
            (
                "record-added",
                format!(
                    "ledger entry {leaf} is not in the log: it was added behind Lineage's back"
                ),
            )
        } else if let Some(size) = journal_matches_checkpoint().filter(|&size| leaf < size) {
            (
                "log-hash-altered",
                format!("the stored log hash for leaf {leaf} was changed, but the records match the signed checkpoint of {size} leaves: the log table was edited, the records are intact"),
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

    // 2. The chain of keys, and every stored checkpoint: signed by the key the chain names
    // for its size, and its root is the recomputed root.
    let chain = key_chain(&rotations, key, &checkpoints, &mut problems, &mut warnings);
    let latest_summary = check_checkpoints(
        &chain,
        &checkpoints,
        0,
        &pass,
        &nth,
        &mut problems,
        &mut warnings,
    )?;
    if checkpoints.is_empty() && log_size > 0 {
        problems.push(Problem {
            code: "no-checkpoint",
            message: "the log has never been signed".into(),
            leaf: None,
            record: None,
        });
    }

    // 3. Projections.
    for m in store.check_projections_with_progress(3, progress)? {
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
        Found {
            entries,
            log_size,
            root: recomputed_root,
            checkpoint: latest_summary,
            checked: checkpoints.len(),
            since: None,
            range: VerifiedRange {
                from: 0,
                to: entries,
            },
            projections: true,
        },
        problems,
        &chain,
        warnings,
    ))
}

/// `verify --since`: the saved checkpoint, the consistency of the log with it, and what was
/// appended after it (see [`verify_with_progress`]).
fn verify_since(
    store: &dyn Store,
    key: &Verifier,
    text: &str,
    progress: &dyn lineage_model::Progress,
) -> Result<VerifyReport, Error> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let log_size = store.log_head()?.size;
    let journal = store.len()?;
    let checkpoints = store.checkpoints()?;
    let invalid = |why: String| Problem {
        code: "since-invalid",
        message: format!("the saved checkpoint does not verify: {why}"),
        leaf: None,
        record: None,
    };
    // Rotations before the saved size come from the `facts` projection and are each proved
    // against the saved root below; the ones after it, from re-hashing the new entries.
    let (saved, _) = match parse_signed_checkpoint(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(invalid(e.to_string()));
            let chain = key_chain(&[], key, &checkpoints, &mut problems, &mut warnings);
            return Ok(report(Found::nothing(log_size), problems, &chain, warnings));
        }
    };
    let mut rotations: Vec<(u64, LogKeyRotation)> = store
        .facts(ROTATION_KIND, Some(ROTATION_FACT_KEY))?
        .into_iter()
        .filter(|e| e.index < saved.size)
        .filter_map(|e| match e.record {
            Record::LogKeyRotation(r) => Some((e.index, r)),
            _ => None,
        })
        .collect();
    let beyond = |problems: &mut Vec<Problem>| {
        problems.push(Problem {
            code: "since-beyond-log",
            message: format!(
                "the saved checkpoint has {} leaves but the journal only {}: history was truncated",
                saved.size,
                journal.min(log_size)
            ),
            leaf: Some(journal.min(log_size)),
            record: None,
        });
    };
    let inconsistent = |problems: &mut Vec<Problem>| {
        problems.push(Problem {
            code: "since-inconsistent",
            message: format!(
                "the ledger is not consistent with the saved checkpoint of size {}: history before it was rewritten",
                saved.size
            ),
            leaf: None,
            record: None,
        });
    };
    // The saved tree, rebuilt from the stored hashes and held to the saved root: from here
    // on, the stored prefix is as good as the signature on the saved checkpoint.
    let start = if saved.size > journal.min(log_size) {
        beyond(&mut problems);
        None
    } else {
        match Frontier::from_reader(saved.size, &HashesAt(store)) {
            Ok(f) if f.root() == saved.root => Some(f),
            _ => {
                inconsistent(&mut problems);
                None
            }
        }
    };
    let Some(start) = start else {
        let chain = key_chain(&rotations, key, &checkpoints, &mut problems, &mut warnings);
        if let Err(why) = chain.check(text) {
            problems.push(invalid(why));
        }
        let mut found = Found::nothing(log_size);
        found.since = Some(summary(&saved));
        return Ok(report(found, problems, &chain, warnings));
    };
    let mut wanted: std::collections::BTreeSet<u64> = [log_size].into();
    for c in checkpoints.iter().filter(|c| c.size >= saved.size) {
        wanted.insert(c.size);
        if let Ok((cp, _)) = parse_signed_checkpoint(&c.text) {
            wanted.insert(cp.size);
        }
    }
    let pass = rehash(store, start, log_size, &wanted, progress)?;
    let entries = pass.rows;
    let nth = |n: u64| nth_record(store, n, entries.max(log_size));
    rotations.extend(pass.rotations.iter().cloned());
    if let Some(m) = &pass.first_mismatch {
        let leaf = pass
            .gap
            .filter(|&g| g <= m.leaf_index)
            .unwrap_or(m.leaf_index);
        let (code, message) = if pass.gap.is_some_and(|g| g <= m.leaf_index) {
            (
                "record-missing",
                format!("ledger entry {leaf} was deleted: the journal skips it"),
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
        problems.push(Problem {
            code,
            message,
            leaf: Some(leaf),
            record: nth(leaf)?,
        });
    }
    // Each rotation before the saved size must be the record the saved tree holds there.
    for (index, _) in rotations.iter().filter(|(i, _)| *i < saved.size) {
        let body = store.raw_entries(*index, index + 1)?;
        let proved = body.first().is_some_and(|e| {
            store
                .inclusion_proof(*index, saved.size)
                .ok()
                .is_some_and(|p| {
                    merkle::verify_inclusion(
                        &merkle::leaf_hash(e.body.as_bytes()),
                        *index,
                        saved.size,
                        &p,
                        &saved.root,
                    )
                    .is_ok()
                })
        });
        if !proved {
            problems.push(Problem {
                code: "record-altered",
                message: format!("ledger entry {index} (a log key rotation) is not the record the saved checkpoint holds at that leaf"),
                leaf: Some(*index),
                record: nth(*index)?,
            });
        }
    }
    let chain = key_chain(&rotations, key, &checkpoints, &mut problems, &mut warnings);
    let since_summary = match chain.check(text) {
        Err(why) => {
            problems.push(invalid(why));
            None
        }
        Ok(_) => {
            // Prove it the way an outside party would: a consistency proof from the stored
            // hashes, checked against the saved root and the recomputed root.
            let to = log_size.min(entries);
            let proof_ok = pass.root_at(to).is_some_and(|new_root| {
                store
                    .consistency_proof(saved.size, to)
                    .ok()
                    .is_some_and(|p| {
                        merkle::verify_consistency(saved.size, to, &p, &saved.root, &new_root)
                            .is_ok()
                    })
            });
            if !proof_ok {
                inconsistent(&mut problems);
            }
            Some(summary(&saved))
        }
    };
    let newer: Vec<StoredCheckpoint> = checkpoints
        .iter()
        .filter(|c| c.size >= saved.size)
        .cloned()
        .collect();
    let latest_summary = check_checkpoints(
        &chain,
        &newer,
        saved.size,
        &pass,
        &nth,
        &mut problems,
        &mut warnings,
    )?;
    problems.sort_by_key(|p| p.leaf.unwrap_or(u64::MAX));
    Ok(report(
        Found {
            entries,
            log_size,
            root: pass.frontier.root(),
            checkpoint: latest_summary,
            checked: newer.len(),
            since: since_summary,
            range: VerifiedRange {
                from: saved.size,
                to: entries,
            },
            projections: false,
        },
        problems,
        &chain,
        warnings,
    ))
}

/// The n-th journal row in stored order, whatever index it claims (`rows`: an upper bound
/// on the stored positions).
fn nth_record(store: &dyn Store, n: u64, rows: u64) -> Result<Option<RecordRef>, Error> {
    let mut seen = 0;
    let mut from = 0;
    loop {
        let chunk = store.raw_entries(from, from + PAGE)?;
        if chunk.is_empty() && from >= rows + PAGE {
            return Ok(None);
        }
        if seen + chunk.len() as u64 > n {
            let e = &chunk[(n - seen) as usize];
            return Ok(Some(record_ref(&e.kind, &e.body)));
        }
        seen += chunk.len() as u64;
        from += PAGE;
    }
}

/// The chain of keys the rotation records name; flags rotations no checkpoint of the old
/// key seals.
fn key_chain(
    rotations: &[(u64, LogKeyRotation)],
    key: &Verifier,
    checkpoints: &[StoredCheckpoint],
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> KeyChain {
    let origin = checkpoints
        .iter()
        .rev()
        .find_map(|c| parse_signed_checkpoint(&c.text).ok())
        .map(|(c, _)| c.origin)
        .or_else(|| key.name().map(str::to_string))
        .unwrap_or_else(|| DEFAULT_ORIGIN.to_string());
    let chain = KeyChain::new(rotations, key, &origin, problems, warnings);
    for (index, r) in rotations {
        // The old key vouches for the new one by signing the tree that ends with the rotation.
        if !r.old_key_lost && !checkpoints.iter().any(|c| c.size == index + 1) {
            problems.push(Problem {
                code: "key-rotation-unsealed",
                message: format!(
                    "ledger entry {index} rotates the log key to key id {}, but no checkpoint signed by the old key covers it",
                    vkey_id(&r.new_public_key)
                ),
                leaf: Some(*index),
                record: None,
            });
        }
    }
    chain
}

/// Checks `checkpoints` (smallest first, none below `from`) against the chain of keys and
/// the roots the pass recomputed; returns the newest one that verified.
fn check_checkpoints(
    chain: &KeyChain,
    checkpoints: &[StoredCheckpoint],
    from: u64,
    pass: &Pass,
    nth: &dyn Fn(u64) -> Result<Option<RecordRef>, Error>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Result<Option<CheckpointSummary>, Error> {
    let mut latest_summary = None;
    let mut good_size = from;
    let mut unverifiable: Vec<(u64, String)> = Vec::new();
    for stored_cp in checkpoints {
        let cp = match chain.check(&stored_cp.text) {
            Ok(Checked::Verified(cp)) => cp,
            Ok(Checked::Unverifiable(cp, key_id)) => {
                unverifiable.push((cp.size, key_id));
                cp
            }
            Err(why) => {
                problems.push(Problem {
                    code: "checkpoint-invalid",
                    message: format!("stored checkpoint for size {}: {why}", stored_cp.size),
                    leaf: None,
                    record: None,
                });
                continue;
            }
        };
        latest_summary = Some(summary(&cp));
        if cp.size > pass.rows {
            problems.push(Problem {
                code: "checkpoint-beyond-journal",
                message: format!(
                    "checkpoint size {} is beyond the journal's {} records: records were deleted",
                    cp.size, pass.rows
                ),
                leaf: Some(pass.rows),
                record: None,
            });
            break;
        }
        if pass.root_at(cp.size) != Some(cp.root) {
            // The stored hashes may have been rewritten to match; the signed roots still
            // bound where the change is.
            if pass.first_mismatch.is_none() {
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
    if let (Some((first, key_id)), Some((last, _))) = (unverifiable.first(), unverifiable.last()) {
        warnings.push(Problem {
            code: "checkpoint-unverifiable",
            message: format!(
                "{} checkpoints (sizes {first} to {last}) are signed by key id {key_id}, which was lost before the log recorded its public key: their signatures cannot be checked, only their roots",
                unverifiable.len()
            ),
            leaf: None,
            record: None,
        });
    }
    Ok(latest_summary)
}

/// What the audit measured, for the report.
struct Found {
    entries: u64,
    log_size: u64,
    root: Hash,
    checkpoint: Option<CheckpointSummary>,
    checked: usize,
    since: Option<CheckpointSummary>,
    range: VerifiedRange,
    projections: bool,
}

impl Found {
    /// Nothing re-read: the audit stopped before its pass.
    fn nothing(log_size: u64) -> Found {
        Found {
            entries: 0,
            log_size,
            root: merkle::empty_root(),
            checkpoint: None,
            checked: 0,
            since: None,
            range: VerifiedRange { from: 0, to: 0 },
            projections: false,
        }
    }
}

fn report(
    found: Found,
    problems: Vec<Problem>,
    chain: &KeyChain,
    warnings: Vec<Problem>,
) -> VerifyReport {
    VerifyReport {
        schema: 1,
        verified: problems.is_empty(),
        entries: found.entries,
        log_size: found.log_size,
        root: hex::encode(found.root),
        checkpoint: found.checkpoint,
        checkpoints_checked: found.checked as u64,
        since: found.since,
        verified_range: found.range,
        projections_checked: found.projections,
        problems,
        keys: chain.summaries(),
        warnings,
    }
}

/// The span of tree sizes one key signs.
struct Epoch {
    key_id: String,
    /// `None` when the key was lost before the log recorded its public key.
    verifier: Option<Verifier>,
    /// The smallest tree size it signs.
    starts: u64,
    /// The rotation that installed it: ledger entry and record.
    rotation: Option<(u64, LogKeyRotation)>,
}

/// The log's keys, in order, as its rotation records chain them, and which one the audit
/// trusts. A rotation at entry `r` sealed by the old key leaves sizes up to `r + 1` to the old
/// key; a rotation whose old key was lost hands size `r + 1` to the new key.
///
/// Trust runs backwards freely: a checkpoint by the trusted key commits to the whole tree,
/// which holds every earlier rotation record and so every earlier public key. It runs forwards
/// only through rotations the old key sealed.
struct KeyChain {
    epochs: Vec<Epoch>,
    trusted: Option<usize>,
}

/// A checkpoint that passed [`KeyChain::check`].
enum Checked {
    Verified(Checkpoint),
    /// Signed by a lost key whose public key the log never recorded (key id).
    Unverifiable(Checkpoint, String),
}

impl KeyChain {
    fn new(
        rotations: &[(u64, LogKeyRotation)],
        trusted: &Verifier,
        origin: &str,
        problems: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
    ) -> KeyChain {
        let trusted_id = hex::encode(trusted.key().note_key_id(trusted.name().unwrap_or(origin)));
        let first = match rotations.first() {
            None => Epoch {
                key_id: trusted_id.clone(),
                verifier: Some(trusted.clone()),
                starts: 0,
                rotation: None,
            },
            Some((_, r)) => Epoch {
                key_id: r.old_key_id.clone(),
                verifier: r
                    .old_public_key
                    .as_deref()
                    .and_then(|v| Verifier::from_vkey(v).ok()),
                starts: 0,
                rotation: None,
            },
        };
        let mut epochs = vec![first];
        for (index, r) in rotations {
            let previous = &epochs[epochs.len() - 1].key_id;
            if &r.old_key_id != previous {
                problems.push(Problem {
                    code: "key-chain-broken",
                    message: format!(
                        "ledger entry {index} rotates away key id {}, but the log's key then was key id {previous}",
                        r.old_key_id
                    ),
                    leaf: Some(*index),
                    record: None,
                });
            }
            let verifier = Verifier::from_vkey(&r.new_public_key).ok();
            if verifier.is_none() {
                problems.push(Problem {
                    code: "key-chain-broken",
                    message: format!(
                        "ledger entry {index} rotates to a key that does not parse: `{}`",
                        r.new_public_key
                    ),
                    leaf: Some(*index),
                    record: None,
                });
            }
            epochs.push(Epoch {
                key_id: vkey_id(&r.new_public_key),
                verifier,
                starts: index + if r.old_key_lost { 1 } else { 2 },
                rotation: Some((*index, r.clone())),
            });
        }
        let at = epochs.iter().position(|e| match &e.verifier {
            Some(v) => v.key() == trusted.key(),
            None => e.key_id == trusted_id,
        });
        if let Some(a) = at {
            // A lost key's public half may be exactly what the auditor brought.
            epochs[a].verifier.get_or_insert_with(|| trusted.clone());
        }
        let chain = KeyChain {
            epochs,
            trusted: at,
        };
        let Some(a) = at else {
            problems.push(Problem {
                code: "key-unknown",
                message: format!(
                    "the key given to verify with (key id {trusted_id}) is not one this log introduced; its keys are key ids {}",
                    chain.ids().join(", ")
                ),
                leaf: None,
                record: None,
            });
            return chain;
        };
        for (i, e) in chain.epochs.iter().enumerate() {
            let Some((index, r)) = &e.rotation else {
                continue;
            };
            if !r.old_key_lost {
                continue;
            }
            let reason = r.reason.as_deref().unwrap_or("no reason given");
            if i > a {
                problems.push(Problem {
                    code: "key-rotation-unattested",
                    message: format!(
                        "ledger entry {index} replaced the log key with key id {} without the old key ({reason:?}): the key given to verify with (key id {trusted_id}) cannot vouch for checkpoints after it; verify with the new key",
                        e.key_id
                    ),
                    leaf: Some(*index),
                    record: None,
                });
            } else {
                warnings.push(Problem {
                    code: "key-rotated-without-old-key",
                    message: format!(
                        "ledger entry {index} replaced the lost log key {} with key id {} without the old key's signature ({reason:?}, by {} at {})",
                        r.old_key_id, e.key_id, r.by, r.at
                    ),
                    leaf: Some(*index),
                    record: None,
                });
            }
        }
        chain
    }

    fn ids(&self) -> Vec<String> {
        self.epochs.iter().map(|e| e.key_id.clone()).collect()
    }

    /// The position of the key that must sign a checkpoint of `size` leaves.
    fn epoch_for(&self, size: u64) -> usize {
        self.epochs
            .iter()
            .rposition(|e| e.starts <= size)
            .unwrap_or(0)
    }

    /// Checks a signed checkpoint against the key the chain names for its size; the error
    /// says which key signed it instead, when the log knows that key.
    fn check(&self, text: &str) -> Result<Checked, String> {
        let size = match parse_signed_checkpoint(text) {
            Ok((cp, _)) => cp.size,
            Err(e) => return Err(e.to_string()),
        };
        let at = self.epoch_for(size);
        let epoch = &self.epochs[at];
        let Some(verifier) = &epoch.verifier else {
            let (cp, _) = parse_signed_checkpoint(text).map_err(|e| e.to_string())?;
            return Ok(Checked::Unverifiable(cp, epoch.key_id.clone()));
        };
        let other = match verify_checkpoint(text, verifier) {
            CheckpointVerification::Verified { checkpoint, .. } => {
                return Ok(Checked::Verified(checkpoint))
            }
            other => other,
        };
        if self.epochs.len() == 1 {
            return Err(other.to_string());
        }
        let signer = self.epochs.iter().enumerate().find(|(_, e)| {
            e.verifier
                .as_ref()
                .is_some_and(|v| verify_checkpoint(text, v).is_verified())
        });
        let must = &epoch.key_id;
        Err(match signer {
            Some((j, e)) if j < at => format!(
                "signed by key id {}, which the log retired at entry {} (key id {must} must sign it)",
                e.key_id,
                self.epochs[j + 1].rotation.as_ref().map_or(0, |(i, _)| *i)
            ),
            Some((_, e)) => format!(
                "signed by key id {}, which the log introduces only at entry {} (key id {must} must sign it)",
                e.key_id,
                e.rotation.as_ref().map_or(0, |(i, _)| *i)
            ),
            None => format!(
                "signed by key id {}, which the log never introduced (key id {must} must sign it)",
                signer_ids(text).join(", ")
            ),
        })
    }

    fn summaries(&self) -> Vec<KeySummary> {
        self.epochs
            .iter()
            .enumerate()
            .map(|(i, e)| KeySummary {
                key_id: e.key_id.clone(),
                signs_from: e.starts.max(1),
                introduced_at: e.rotation.as_ref().map(|(i, _)| *i),
                old_key_lost: e.rotation.as_ref().is_some_and(|(_, r)| r.old_key_lost),
                reason: e.rotation.as_ref().and_then(|(_, r)| r.reason.clone()),
                trusted: self.trusted == Some(i),
            })
            .collect()
    }
}

fn summary(cp: &Checkpoint) -> CheckpointSummary {
    CheckpointSummary {
        origin: cp.origin.clone(),
        size: cp.size,
        root: hex::encode(cp.root),
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
    fn the_chain_of_keys_hands_tree_sizes_from_key_to_key() {
        let [a, b, c, stranger] =
            ["a", "b", "c", "s"].map(|_| LogKey::generate(DEFAULT_ORIGIN).unwrap());
        let rotation = |index: u64, old: &LogKey, new: &LogKey, lost: bool| {
            let record = LogKeyRotation {
                old_key_id: hex::encode(old.key_id()),
                old_public_key: Some(old.vkey()),
                new_public_key: new.vkey(),
                old_key_lost: lost,
                reason: lost.then(|| "lost".to_string()),
                by: Identity::parse("maya@acme.dev").unwrap(),
                at: Timestamp::parse("2026-11-17T09:12:00Z").unwrap(),
            };
            (index, record)
        };
        // Entry 4 rotates a -> b, sealed by a; entry 9 rotates b -> c, b lost.
        let rotations = [rotation(4, &a, &b, false), rotation(9, &b, &c, true)];
        let chain = |trusted: &LogKey| {
            let (mut problems, mut warnings) = (Vec::new(), Vec::new());
            let chain = KeyChain::new(
                &rotations,
                &trusted.verifier(),
                DEFAULT_ORIGIN,
                &mut problems,
                &mut warnings,
            );
            let codes = |v: &[Problem]| v.iter().map(|p| p.code).collect::<Vec<_>>();
            (chain, codes(&problems), codes(&warnings))
        };
        let (keys, problems, warnings) = chain(&c);
        // a signs the tree that ends with its rotation (size 5); c signs the tree ending with
        // the rotation that b could not seal (size 10).
        assert_eq!(
            [1, 5, 6, 9, 10, 11].map(|n| keys.epoch_for(n)),
            [0, 0, 1, 1, 2, 2]
        );
        assert_eq!(
            (problems, warnings),
            (vec![], vec!["key-rotated-without-old-key"])
        );
        // Trusting a, nothing vouches for c.
        let (_, problems, _) = chain(&a);
        assert_eq!(problems, vec!["key-rotation-unattested"]);
        // A key the log never introduced is not trusted at all.
        let (_, problems, _) = chain(&stranger);
        assert_eq!(problems, vec!["key-unknown"]);
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
