//! `lineage log …`: the ledger's tamper-evident log (RFC 6962 / RFC 9162 Merkle tree with
//! C2SP signed checkpoints). Also [`Writer`], the ledger opened for writing: the only way the
//! binary writes to a ledger, it checks the log key before the command writes and seals a
//! checkpoint over what the command appended when the command is done. Read-only commands
//! open the ledger with `commands::open` and never sign.
//!
//! `verify-proof` is the auditor's command: it needs only the proof file and the public key,
//! never the ledger.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use lineage_core::ledger_log::{self, LogSettings, RotationReport, VerifyReport};
use lineage_model::{Digest, Timestamp};
use lineage_store::lineage_log::keys::{LogKey, Verifier};
use lineage_store::lineage_log::proof::{self, Outcome as ProofOutcome, ProofBundle, Verified};
use lineage_store::Store;

use crate::args::{ActorArgs, Format};
use crate::commands::open;
use crate::settings::Settings;
use crate::{CliError, Outcome};

#[derive(Debug, Subcommand)]
pub enum LogCmd {
    /// Print the latest signed checkpoint (C2SP signed note).
    Checkpoint,
    /// Write an inclusion proof bundle for a record: its ledger index, or a build's digest.
    Prove {
        /// A ledger index (`12`) or an image digest (`sha256:…`) of a recorded build.
        target: String,
        /// Write the bundle here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write a consistency proof bundle from one tree size to a later signed one.
    Consistency {
        /// The earlier tree size (a signed checkpoint's).
        old_size: u64,
        /// The later tree size.
        new_size: u64,
        /// Write the bundle here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a proof bundle with only the file and the log's public key (no ledger needed).
    VerifyProof {
        /// The proof bundle (`log prove` or `log consistency` wrote it).
        file: PathBuf,
        /// The log's public key: PEM (`log.pub`) or a verifier key (`log.vkey`).
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
    },
    /// Recompute the log from the stored records and check it against the signed checkpoints.
    Verify {
        /// A checkpoint saved earlier; the ledger must be consistent with it.
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        /// The public key you trust (default: `[log] public_key`, else `log.pub` beside the
        /// log key, else the log key's public half). Checkpoints may be signed by any key the
        /// log's rotation records chain to it.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
    },
    /// Replace the log key on the record: a rotation entry, sealed by the old key, names the
    /// new key, which signs from then on. Stop other writers and servers first.
    RotateKey {
        /// Switch to this Ed25519 PKCS#8 PEM key instead of generating one.
        #[arg(long, value_name = "PATH")]
        new_key: Option<PathBuf>,
        /// The old key is gone: record the rotation without its seal (`log verify` reports it).
        #[arg(long, requires = "reason")]
        old_key_lost: bool,
        /// Why the key changes (one line; required with `--old-key-lost`).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

pub fn run(cmd: LogCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        LogCmd::Checkpoint => checkpoint(s),
        LogCmd::Prove { target, output } => prove(s, &target, output.as_deref()),
        LogCmd::Consistency {
            old_size,
            new_size,
            output,
        } => {
            let store = open(s, false)?;
            let bundle = ledger_log::consistency(store.as_ref(), old_size, new_size)?;
            write_bundle(
                s.format,
                &ProofBundle::Consistency(bundle),
                output.as_deref(),
                &format!("consistency proof from tree size {old_size} to {new_size}"),
            )
        }
        LogCmd::VerifyProof { file, key } => verify_proof(s.format, &file, &key),
        LogCmd::Verify { since, key } => verify(s, since.as_deref(), key.as_deref()),
        LogCmd::RotateKey {
            new_key,
            old_key_lost,
            reason,
            actor,
        } => rotate_key(s, new_key.as_deref(), old_key_lost, reason, &actor),
    }
}

/// The ledger opened for writing, with the log key that will sign what is written. Opening
/// checks the key before anything is written (a ledger with checkpoints and no matching key is
/// refused); when the writer goes out of scope, a checkpoint is sealed over what it appended.
/// Build one with `commands::open_write`.
pub struct Writer {
    store: Box<dyn Store>,
    key: LogKey,
    settings: LogSettings,
    now: Timestamp,
    format: Format,
    /// The log's size when opened: a writer that appended nothing signs nothing.
    opened_at: u64,
}

impl Writer {
    pub(crate) fn open(s: &Settings, create: bool) -> Result<Writer, CliError> {
        // `[log]` and the key's place are checked before the ledger is touched.
        let settings = s.toml.log.clone();
        let key_file = settings.writer_key_file(&s.store)?;
        let store = lineage_store::open(&s.store, create)?;
        let key = ledger_log::writer_key(Some(store.as_ref()), &settings, &key_file)?;
        let opened_at = store.log_head()?.size;
        Ok(Writer {
            store,
            key,
            settings,
            now: s.now,
            format: s.format,
            opened_at,
        })
    }

    /// Signs a checkpoint over the log's head if this writer appended anything.
    fn seal(&mut self) -> Result<(), CliError> {
        if self.store.log_head()?.size > self.opened_at {
            ledger_log::seal(self.store.as_mut(), &self.key, &self.settings, self.now)?;
        }
        Ok(())
    }
}

impl AsRef<dyn Store> for Writer {
    fn as_ref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

impl AsMut<dyn Store> for Writer {
    fn as_mut(&mut self) -> &mut (dyn Store + 'static) {
        self.store.as_mut()
    }
}

impl std::ops::Deref for Writer {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.store.as_mut()
    }
}

impl Drop for Writer {
    /// Sealing here ties it to the write open itself, so no command can forget it. The records
    /// are durable already, so a failure is a warning (the next write signs them), not an error.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = self.seal() {
            let hint = e.hint.as_deref().unwrap_or_default();
            match self.format {
                Format::Json => eprintln!(
                    "{}",
                    serde_json::json!({"schema": 1, "warning": {
                        "message": format!("written, but no checkpoint was signed: {}", e.message),
                        "hint": hint,
                    }})
                ),
                Format::Human => {
                    eprintln!(
                        "warning: written, but no checkpoint was signed: {}",
                        e.message
                    );
                    eprintln!("  hint: {hint}");
                }
            }
        }
    }
}

fn checkpoint(s: &Settings) -> Result<Outcome, CliError> {
    let store = open(s, false)?;
    let Some(latest) = store.latest_checkpoint()? else {
        return Err(CliError::new(
            "the ledger has no signed checkpoint yet",
            "record something first (`lineage service add …`); each write signs one",
        ));
    };
    match s.format {
        Format::Human => print!("{}", latest.text),
        Format::Json => {
            // Through a `Value`, so the keys come out sorted, as the API sends them.
            let report = serde_json::to_value(ledger_log::CheckpointReport::of(&latest))
                .expect("reports serialise");
            println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        }
    }
    Ok(Outcome::Ok)
}

fn prove(s: &Settings, target: &str, output: Option<&Path>) -> Result<Outcome, CliError> {
    let index = if !target.is_empty() && target.chars().all(|c| c.is_ascii_digit()) {
        Some(target.parse::<u64>().map_err(|_| {
            CliError::new(
                format!("ledger index `{target}` is too large"),
                "pass an index from `lineage trace`",
            )
        })?)
    } else {
        None
    };
    let digest = match index {
        Some(_) => None,
        None => Some(Digest::parse(target).map_err(|e| e.in_field("RECORD|DIGEST"))?),
    };
    let store = open(s, false)?;
    let index = match (index, digest) {
        (Some(i), _) => i,
        (None, Some(d)) => match store.build_index(&d)? {
            Some(i) => i,
            None => {
                crate::render::not_found(s.format, &format!("no build recorded for `{d}`"));
                return Ok(Outcome::NotFound);
            }
        },
        (None, None) => unreachable!("one of index or digest is parsed"),
    };
    let bundle = ledger_log::prove(store.as_ref(), index)?;
    let what = format!(
        "inclusion proof for ledger entry {index} in tree size {}",
        bundle.tree_size
    );
    write_bundle(s.format, &ProofBundle::Inclusion(bundle), output, &what)
}

fn write_bundle(
    format: Format,
    bundle: &ProofBundle,
    output: Option<&Path>,
    what: &str,
) -> Result<Outcome, CliError> {
    let json = bundle.to_json();
    match output {
        None => print!("{json}"),
        Some(path) => {
            std::fs::write(path, json).map_err(|e| {
                CliError::new(
                    format!("cannot write `{}`: {e}", path.display()),
                    "pass a writable path to `--output`",
                )
            })?;
            match format {
                Format::Human => println!("wrote {what} to {}", path.display()),
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"schema": 1, "wrote": what, "output": path.display().to_string()})
                ),
            }
        }
    }
    Ok(Outcome::Ok)
}

/// A key, checkpoint or proof: small files, read under a 4 MiB limit.
fn read_file(path: &Path, what: &str) -> Result<String, CliError> {
    crate::input::read_text(path, 4 << 20).map_err(|mut e| {
        e.message = match e.message.strip_prefix("cannot read ") {
            Some(rest) => format!("cannot read {what} {rest}"),
            None => format!("{what}: {}", e.message),
        };
        e
    })
}

fn read_key(path: &Path) -> Result<Verifier, CliError> {
    let text = read_file(path, "public key")?;
    Verifier::parse(&text).map_err(|e| {
        CliError::new(
            format!("`{}` is not a usable public key: {e}", path.display()),
            "pass the log's `log.pub` (PEM) or `log.vkey` file",
        )
    })
}

fn verify_proof(format: Format, file: &Path, key: &Path) -> Result<Outcome, CliError> {
    let text = read_file(file, "proof bundle")?;
    let bundle = ProofBundle::from_json(&text).map_err(|e| {
        CliError::new(
            format!("`{}` is not a readable proof bundle: {e}", file.display()),
            "pass a file written by `lineage log prove` or `lineage log consistency`",
        )
    })?;
    let key = read_key(key)?;
    let outcome = proof::verify_bundle(&bundle, &key);
    let kind = match &bundle {
        ProofBundle::Inclusion(_) => "inclusion",
        ProofBundle::Consistency(_) => "consistency",
    };
    match (&outcome, format) {
        (ProofOutcome::Verified(v), Format::Human) => println!("verified: {}", describe(v)),
        (ProofOutcome::Failed(f), Format::Human) => {
            println!("failed ({}): {f}", f.code())
        }
        (ProofOutcome::Verified(v), Format::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": 1, "kind": kind, "verified": true, "statement": describe(v),
            }))
            .expect("json")
        ),
        (ProofOutcome::Failed(f), Format::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": 1, "kind": kind, "verified": false, "code": f.code(), "reason": f.to_string(),
            }))
            .expect("json")
        ),
    }
    Ok(if outcome.is_verified() {
        Outcome::Ok
    } else {
        Outcome::NotFound
    })
}

fn describe(v: &Verified) -> String {
    match v {
        Verified::Inclusion {
            origin,
            leaf_index,
            tree_size,
            signer,
            ..
        } => format!(
            "leaf {leaf_index} is in the tree of {tree_size} leaves of log `{origin}`, signed by `{signer}`"
        ),
        Verified::Consistency { origin, old, new } => {
            let signed = |r: &proof::CheckedRoot| match &r.signer {
                Some(s) => format!("signed by `{s}`"),
                None => "bare root; compare it with a checkpoint you saved".into(),
            };
            format!(
                "the tree of {} leaves{} extends the tree of {} leaves (new: {}; old: {})",
                new.size,
                origin
                    .as_ref()
                    .map(|o| format!(" of log `{o}`"))
                    .unwrap_or_default(),
                old.size,
                signed(new),
                signed(old)
            )
        }
    }
}

fn verify(s: &Settings, since: Option<&Path>, key: Option<&Path>) -> Result<Outcome, CliError> {
    let since_path = since;
    let since = since
        .map(|p| read_file(p, "saved checkpoint"))
        .transpose()?;
    // A file that is not a checkpoint at all is bad input (exit 2), not a failed audit.
    if let (Some(text), Some(path)) = (&since, since_path) {
        if let Err(e) = lineage_store::lineage_log::checkpoint::parse_signed_checkpoint(text) {
            return Err(CliError::new(
                format!(
                    "--since `{}` is not a signed checkpoint: {e}",
                    path.display()
                ),
                "pass a checkpoint saved from `lineage log checkpoint` (the whole signed note)",
            ));
        }
    }
    let key = match key {
        Some(path) => read_key(path)?,
        None => ledger_log::public_key(&s.toml.log, &s.store)?,
    };
    let store = open(s, false)?;
    let bars = crate::progress::Bars::new(s);
    let report = ledger_log::verify_with_progress(store.as_ref(), &key, since.as_deref(), &bars);
    drop(bars);
    let report = report?;
    render_verify(s.format, &report);
    Ok(if report.verified {
        Outcome::Ok
    } else {
        Outcome::NotFound
    })
}

fn render_verify(format: Format, r: &VerifyReport) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("reports serialise")
        );
        return;
    }
    if r.verified {
        println!(
            "verified: {} records, log of {} leaves, root {}",
            r.entries, r.log_size, r.root
        );
    } else {
        let first = &r.problems[0];
        println!("FAILED: {}", first.message);
    }
    if let Some(cp) = &r.checkpoint {
        println!(
            "  checkpoint  `{}` size {} ({} checked)",
            cp.origin, cp.size, r.checkpoints_checked
        );
    }
    if r.keys.len() > 1 {
        for k in &r.keys {
            let from = match k.introduced_at {
                None => "the log's first key".to_string(),
                Some(i) if k.old_key_lost => {
                    format!("rotated in at entry {i} WITHOUT the old key")
                }
                Some(i) => format!("rotated in at entry {i}, sealed by the old key"),
            };
            let trusted = if k.trusted { ", the key you trust" } else { "" };
            println!(
                "  key         {} signs from size {} ({from}{trusted})",
                k.key_id, k.signs_from
            );
        }
    }
    if let Some(since) = &r.since {
        let bad = r.problems.iter().any(|p| p.code.starts_with("since"));
        println!(
            "  since       size {}: {}",
            since.size,
            if bad { "NOT consistent" } else { "consistent" }
        );
    }
    if !r.projections_checked && r.since.is_some() {
        println!(
            "  re-hashed   leaves {}..{} only: entries before the saved checkpoint are vouched for by its root; query tables not compared (run without `--since` for both)",
            r.verified_range.from, r.verified_range.to
        );
    }
    for w in &r.warnings {
        println!("  warning [{}] {}", w.code, w.message);
    }
    for p in &r.problems {
        // Every problem line says something: where (leaf and record) when it has a place,
        // else its message.
        let place = match (p.leaf, &p.record) {
            (Some(l), Some(rec)) => format!("leaf {l}: {rec}"),
            (Some(l), None) => format!("leaf {l}"),
            (None, Some(rec)) => rec.to_string(),
            (None, None) => p.message.clone(),
        };
        println!("  [{}] {place}", p.code);
        if !std::ptr::eq(p, &r.problems[0]) && place != p.message {
            println!("    {}", p.message);
        }
    }
}

fn rotate_key(
    s: &Settings,
    new_key: Option<&Path>,
    old_key_lost: bool,
    reason: Option<String>,
    actor: &ActorArgs,
) -> Result<Outcome, CliError> {
    let settings = s.toml.log.clone();
    let key_file = settings.writer_key_file(&s.store)?;
    let by = s.actor(actor.by.as_deref())?;
    let new_key = new_key
        .map(|path| {
            let pem = read_file(path, "new log key")?;
            LogKey::from_pkcs8_pem(&settings.origin, &pem).map_err(|e| {
                CliError::new(
                    format!("`--new-key` `{}` is not a usable log key: {e}", path.display()),
                    "pass an Ed25519 private key in PKCS#8 PEM, e.g. from `openssl genpkey -algorithm ed25519`",
                )
            })
        })
        .transpose()?;
    // The one writer that does not go through `open_write`: it replaces the key that
    // `open_write` checks, so `rotate_key` checks the old key itself and seals with it.
    let mut store = open(s, false)?;
    let report = ledger_log::rotate_key(
        store.as_mut(),
        &settings,
        &key_file,
        ledger_log::Rotation {
            new_key,
            old_key_lost,
            reason,
            by,
        },
        s.now,
    )?;
    render_rotation(s.format, &report);
    Ok(Outcome::Ok)
}

fn render_rotation(format: Format, r: &RotationReport) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("reports serialise")
        );
        return;
    }
    println!(
        "rotated the log key: key id {} -> key id {} (ledger entry {})",
        r.old_key_id, r.new_key_id, r.index
    );
    let size = r
        .checkpoint_size
        .map(|n| format!(" (checkpoint size {n})"))
        .unwrap_or_default();
    if r.old_key_lost {
        println!("  the old key was lost: the new key sealed the rotation{size}, and `lineage log verify` reports it");
    } else {
        println!("  sealed by the old key{size}, which vouches for the new one");
    }
    println!("  new key     {}", r.key_file);
    println!("  public key  {}", r.new_public_key);
    println!(
        "  give every other writer and `lineage serve` replica the new key, then restart them"
    );
}
