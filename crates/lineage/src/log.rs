//! `lineage log …`: the ledger's tamper-evident log (RFC 6962 / RFC 9162 Merkle tree with
//! C2SP signed checkpoints). Also `seal`, which `main` runs after every successful command so
//! that each write is covered by a freshly signed checkpoint.
//!
//! `verify-proof` is the auditor's command: it needs only the proof file and the public key,
//! never the ledger.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use lineage_core::ledger_log::{self, LogSettings, VerifyReport};
use lineage_model::Digest;
use lineage_store::lineage_log::checkpoint::Checkpoint;
use lineage_store::lineage_log::keys::Verifier;
use lineage_store::lineage_log::proof::{self, Outcome as ProofOutcome, ProofBundle, Verified};
use lineage_store::{StoreError, StoreLocation};

use crate::args::Format;
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
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write a consistency proof bundle from one tree size to a later signed one.
    Consistency {
        old_size: u64,
        new_size: u64,
        /// Write the bundle here instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a proof bundle with only the file and the log's public key (no ledger needed).
    VerifyProof {
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
        /// The public key to check signatures with (default: `log.pub` beside the ledger).
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
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
    }
}

/// The directory a ledger's log key and public keys live in (the CLI and `serve` share it).
pub(crate) fn ledger_dir(location: &StoreLocation) -> PathBuf {
    match location {
        StoreLocation::Sqlite(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        // A database has no directory; the key lives where the default ledger would.
        StoreLocation::Postgres(_) => PathBuf::from(".lineage"),
    }
}

/// The `[log]` section of the settings file (`--config`, else `./lineage.toml` if present).
pub fn settings(config: Option<&Path>) -> Result<LogSettings, CliError> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("lineage.toml"),
    };
    if config.is_none() && !path.exists() {
        return Ok(LogSettings::default());
    }
    // Settings already reported an unreadable file; here a missing one means defaults.
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(LogSettings::default());
    };
    let base = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(LogSettings::from_toml(
        &text,
        &path.display().to_string(),
        base,
    )?)
}

/// Signs a checkpoint for any records no checkpoint covers yet. A ledger that does not exist
/// is left alone. `main` calls this after every successful command.
pub fn seal(s: &Settings, settings: &LogSettings) -> Result<(), CliError> {
    let mut store = match lineage_store::open(&s.store, false) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let head = store.log_head()?;
    if store.latest_checkpoint()?.map(|c| c.size) == Some(head.size) || head.size == 0 {
        return Ok(());
    }
    let key = ledger_log::load_or_create_key(
        &settings.key_path(&ledger_dir(&s.store)),
        &settings.origin,
    )?;
    ledger_log::seal(store.as_mut(), &key, settings, s.now)?;
    Ok(())
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
            let body = latest.text.split_once("\n\n").map_or("", |(b, _)| b);
            let cp = Checkpoint::parse(&format!("{body}\n")).ok();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "schema": 1,
                    "origin": cp.as_ref().map(|c| c.origin.clone()),
                    "size": latest.size,
                    "root": cp.as_ref().map(|c| hex::encode(c.root)),
                    "created": latest.created.to_string(),
                    "checkpoint": latest.text,
                }))
                .expect("json")
            );
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

fn read_file(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            format!("cannot read {what} `{}`: {e}", path.display()),
            "check the path",
        )
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
    let since = since
        .map(|p| read_file(p, "saved checkpoint"))
        .transpose()?;
    let key_path = key
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ledger_dir(&s.store).join(ledger_log::PUBLIC_KEY_FILE));
    let key = read_key(&key_path)?;
    let store = open(s, false)?;
    let report = ledger_log::verify(store.as_ref(), &key, since.as_deref())?;
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
    if let Some(since) = &r.since {
        let bad = r.problems.iter().any(|p| p.code.starts_with("since"));
        println!(
            "  since       size {}: {}",
            since.size,
            if bad { "NOT consistent" } else { "consistent" }
        );
    }
    for p in &r.problems {
        let leaf = p.leaf.map(|l| format!("leaf {l}")).unwrap_or_default();
        let record = p
            .record
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!("  [{}] {leaf}{record}", p.code);
        if !std::ptr::eq(p, &r.problems[0]) {
            println!("    {}", p.message);
        }
    }
}
