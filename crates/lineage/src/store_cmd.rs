//! `lineage store`: ledger administration across backends.
//!
//! `lineage store migrate --from sqlite:PATH --to postgres://…` copies a whole ledger (either
//! direction) through the store API, so the target projects and hashes every record with its
//! own code, then prints both logs' sizes and roots and the record counts side by side. It
//! exits 0 only when they are identical. The copied checkpoints are signed with the source's
//! log key, and writers of the copy refuse any other key, so it also says where that key must
//! go for the target: a file to copy, or the `[log] key` line for lineage.toml.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use lineage_core::ledger_log::LogSettings;
use lineage_store::{CopyReport, StoreError, StoreLocation};

use crate::args::Format;
use crate::settings::Settings;
use crate::{CliError, Outcome};

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy a whole ledger into another store (SQLite <-> PostgreSQL) and check that both
    /// have the same log root and record counts afterwards.
    ///
    /// The target must be empty, or hold a prefix of the source (then only the rest is
    /// copied); anything else is refused without writing.
    Migrate {
        /// The ledger to copy: `sqlite:PATH`, a file path, or `postgres://…`.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// Where to copy it: `postgres://USER@HOST:5432/DATABASE` or `sqlite:PATH`.
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

pub fn run(cmd: StoreCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        StoreCmd::Migrate { from, to } => migrate(&from, &to, s),
    }
}

fn location(flag: &str, input: &str) -> Result<StoreLocation, CliError> {
    StoreLocation::parse(input).map_err(|e| {
        CliError::new(
            format!("{flag}: {e}"),
            "write `sqlite:PATH` or `postgres://USER@HOST:5432/DATABASE`",
        )
    })
}

fn migrate(from: &str, to: &str, s: &Settings) -> Result<Outcome, CliError> {
    // Both locations are checked before either store is opened.
    let (from, to) = (location("--from", from)?, location("--to", to)?);
    if from == to {
        return Err(CliError::new(
            format!("--from and --to are the same ledger `{from}`"),
            "pass the ledger to copy with --from and a different, empty one with --to",
        ));
    }
    let log = s.toml.log.clone();
    let source = lineage_store::open(&from, false)?;
    let mut target = lineage_store::open(&to, true)?;
    let bars = crate::progress::Bars::new(s);
    let copied = lineage_store::copy_ledger_with_progress(source.as_ref(), target.as_mut(), &bars);
    drop(bars);
    let report = match copied {
        Ok(report) => report,
        Err(e @ StoreError::TargetDiverges(_)) => return Err(CliError::new(
            format!("cannot migrate into `{to}`: {e}"),
            "migrate into an empty database, or into one that holds an earlier copy of this ledger",
        )),
        Err(e) => return Err(e.into()),
    };
    let key = key_move(&log, &from, &to, target.latest_checkpoint()?.is_some());
    match s.format {
        Format::Human => {
            print_human(&from, &to, &report);
            print_key_move(&key);
        }
        Format::Json => {
            let mut body = json(&from, &to, &report);
            body["log_key"] = key_json(&key);
            println!("{}", serde_json::to_string_pretty(&body).expect("json"));
        }
    }
    Ok(if report.identical() {
        Outcome::Ok
    } else {
        Outcome::NotFound
    })
}

fn print_human(from: &StoreLocation, to: &StoreLocation, r: &CopyReport) {
    println!(
        "copied {} entries into `{to}` ({} were there already), {} checkpoints",
        r.copied, r.already_present, r.checkpoints_copied
    );
    println!("from `{from}`");
    println!();
    let kinds: BTreeSet<&String> = r
        .source_counts
        .keys()
        .chain(r.target_counts.keys())
        .collect();
    let mut rows = vec![
        (
            "log size".to_string(),
            r.source_size.to_string(),
            r.target_size.to_string(),
        ),
        (
            "log root".to_string(),
            hex::encode(r.source_root),
            hex::encode(r.target_root),
        ),
    ];
    for kind in kinds {
        let count = |m: &std::collections::BTreeMap<String, u64>| {
            m.get(kind).copied().unwrap_or(0).to_string()
        };
        rows.push((
            format!("{kind} records"),
            count(&r.source_counts),
            count(&r.target_counts),
        ));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let src_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(6);
    println!("{:width$}  {:src_width$}  target", "", "source");
    for (label, a, b) in rows {
        let mark = if a == b { "" } else { "  <- differs" };
        println!("{label:width$}  {a:src_width$}  {b}{mark}");
    }
    println!();
    if r.identical() {
        println!("identical: the log roots and record counts match");
    } else {
        println!("NOT identical: see the rows marked `differs`");
    }
}

fn json(from: &StoreLocation, to: &StoreLocation, r: &CopyReport) -> serde_json::Value {
    serde_json::json!({
        "schema": 1,
        "from": from.to_string(),
        "to": to.to_string(),
        "copied": r.copied,
        "already_present": r.already_present,
        "checkpoints_copied": r.checkpoints_copied,
        "source": {
            "size": r.source_size,
            "root": hex::encode(r.source_root),
            "counts": r.source_counts,
        },
        "target": {
            "size": r.target_size,
            "root": hex::encode(r.target_root),
            "counts": r.target_counts,
        },
        "identical": r.identical(),
    })
}

/// What the copy needs for its log key.
enum KeyMove {
    /// Nothing is signed yet: the copy's first write creates its key.
    Unsigned,
    /// Both ledgers take their key from the same file (`[log] key`).
    Shared(PathBuf),
    /// Copy the source's key file (when known) to the target's default place.
    CopyFile { from: Option<PathBuf>, to: PathBuf },
    /// The target is a PostgreSQL database without `[log] key`: configure it.
    Configure { from: Option<PathBuf> },
}

fn key_move(log: &LogSettings, from: &StoreLocation, to: &StoreLocation, signed: bool) -> KeyMove {
    if !signed {
        return KeyMove::Unsigned;
    }
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let source = log.key_file(from).map(absolute);
    match log.key_file(to).map(absolute) {
        Some(target) if Some(&target) == source.as_ref() => KeyMove::Shared(target),
        Some(target) => KeyMove::CopyFile {
            from: source,
            to: target,
        },
        None => KeyMove::Configure { from: source },
    }
}

/// The lines to add to lineage.toml so a writer of the copy uses `key`.
fn toml_lines(key: Option<&Path>) -> String {
    let path = key.map_or("/path/to/the/source/log.key".to_string(), |k| {
        k.display().to_string()
    });
    format!("[log]\nkey = {}", lineage_toml::quote(&path))
}

fn print_key_move(key: &KeyMove) {
    let shown = |p: &Option<PathBuf>| match p {
        Some(p) => format!("`{}`", p.display()),
        None => "the source's log key (its `[log] key` is not set here)".to_string(),
    };
    println!();
    match key {
        KeyMove::Unsigned => println!(
            "log key: nothing is signed yet; the copy's first write creates its key"
        ),
        KeyMove::Shared(path) => println!(
            "log key: both ledgers use the log key `{}`; nothing to move",
            path.display()
        ),
        KeyMove::CopyFile { from, to } => println!(
            "log key: the copy's checkpoints are signed with the source's key; before writing to the copy, copy {} to `{}`",
            shown(from),
            to.display()
        ),
        KeyMove::Configure { from } => {
            println!(
                "log key: the copy's checkpoints are signed with the source's key {}; before writing to or verifying the copy, add to lineage.toml:",
                shown(from)
            );
            for line in toml_lines(from.as_deref()).lines() {
                println!("  {line}");
            }
        }
    }
}

fn key_json(key: &KeyMove) -> serde_json::Value {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    match key {
        KeyMove::Unsigned => serde_json::json!({"action": "none"}),
        KeyMove::Shared(p) => {
            serde_json::json!({"action": "none", "source": p.display().to_string(), "target": p.display().to_string()})
        }
        KeyMove::CopyFile { from, to } => {
            serde_json::json!({"action": "copy", "source": path(from), "target": to.display().to_string()})
        }
        KeyMove::Configure { from } => {
            serde_json::json!({"action": "configure", "source": path(from), "toml": toml_lines(from.as_deref())})
        }
    }
}
