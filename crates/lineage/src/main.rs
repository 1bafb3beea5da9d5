//! The `lineage` binary: parses arguments, resolves settings once, runs a command from
//! `commands`, renders its report, and maps the outcome to an exit code:
//! 0 ok, 1 nothing found or a check failed, 2 error.

mod adopt;
mod args;
mod commands;
mod demo;
mod email;
mod freshness;
mod freshness_render;
mod gates;
mod gates_admin;
mod incident;
mod input;
mod lifecycle;
mod log;
mod picture;
mod progress;
mod registry;
mod render;
mod runtime;
mod serve;
mod settings;
mod store_cmd;
mod verify;
mod vulns;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Format};

/// An error as the user sees it: a message and what to do about it.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl From<lineage_core::Error> for CliError {
    fn from(e: lineage_core::Error) -> CliError {
        CliError {
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

impl From<lineage_model::ParseError> for CliError {
    fn from(e: lineage_model::ParseError) -> CliError {
        CliError::from(lineage_core::Error::Parse(e))
    }
}

impl From<lineage_store::StoreError> for CliError {
    fn from(e: lineage_store::StoreError) -> CliError {
        if let lineage_store::StoreError::Unavailable { .. } = e {
            return CliError::new(
                e.to_string(),
                "check that the database server runs and that the URL's host, port, user and password are right",
            );
        }
        CliError::from(lineage_core::Error::Store(e))
    }
}

/// What a command concluded.
pub enum Outcome {
    /// Done; exit 0.
    Ok,
    /// Nothing found, or a check failed; exit 1.
    NotFound,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    run(args)
}

/// Runs one invocation. The demo calls this too, so what it shows is what a user gets.
pub fn run(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(moved) = moved_option(&e, &args) {
                print_error(Format::Human, &moved);
                return ExitCode::from(2);
            }
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // A reader that goes away (`lineage affected … | head -1`) ends the process quietly, as
    // with any Unix filter: Rust ignores SIGPIPE, which turns the closed pipe into a panic in
    // `println!`. The server keeps ignoring it: a client hanging up must not stop it.
    #[cfg(unix)]
    if !matches!(cli.command, args::Command::Serve(_)) {
        // SAFETY: restores the default disposition of one signal, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let format = cli.format.base();
    if let Err(e) = check_format(&cli) {
        print_error(format, &e);
        return ExitCode::from(2);
    }
    // Commands that need neither settings nor a ledger.
    match &cli.command {
        args::Command::Completions { shell } => {
            adopt::completions(*shell);
            return ExitCode::SUCCESS;
        }
        args::Command::Man { out_dir } => {
            return match adopt::man(out_dir.as_deref()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    print_error(format, &e);
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
    // A command that writes opens the ledger with `commands::open_write`, which checks the log
    // key first and seals a checkpoint when the command is done; one that only reads never
    // signs.
    let result = settings::Settings::resolve(&cli).and_then(|s| commands::run(cli.command, &s));
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(e) => {
            print_error(format, &e);
            ExitCode::from(2)
        }
    }
}

/// `--format` must be one the command prints; refused before anything runs.
fn check_format(cli: &Cli) -> Result<(), CliError> {
    let accepted = cli.command.formats();
    if accepted.contains(&cli.format) {
        return Ok(());
    }
    let names: Vec<String> = accepted.iter().map(|f| format!("`{}`", f.name())).collect();
    Err(CliError::new(
        format!(
            "this command does not print `--format {}`",
            cli.format.name()
        ),
        format!("use {}", names.join(", ")),
    ))
}

/// Options whose place or meaning changed get an error that names the new spelling, instead
/// of clap's generic "unexpected argument".
fn moved_option(e: &clap::Error, args: &[String]) -> Option<CliError> {
    use clap::error::{ContextKind, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let invalid = e.get(ContextKind::InvalidArg).map(|v| v.to_string())?;
    if invalid.starts_with("--server") {
        return Some(CliError::new(
            "`--server` is an option of the commands a server runs, after the command's name",
            format!(
                "write e.g. `lineage trace api --server URL`; it works with {}",
                args::REMOTE_COMMANDS
            ),
        ));
    }
    let _ = args;
    None
}

fn print_error(format: Format, e: &CliError) {
    match format {
        Format::Json => {
            let body = serde_json::json!({
                "schema": 1,
                "error": { "message": e.message, "hint": e.hint },
            });
            eprintln!("{body}");
        }
        Format::Human => {
            // Messages quote input (a flag, a line of an import file); whatever slipped
            // through unescaped is made inert here, line by line, so it cannot drive the
            // terminal. Our own line breaks stay.
            let shown = |text: &str| {
                text.split('\n')
                    .map(|line| lineage_model::inert(line).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            eprintln!("error: {}", shown(&e.message));
            if let Some(hint) = &e.hint {
                eprintln!("  hint: {}", shown(hint));
            }
        }
    }
}
