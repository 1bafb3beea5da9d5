//! The build and deploy gates on the command line: `build check`, `deploy check`, `build
//! record`, `deploy record` and `approve`. The gates themselves live in
//! `lineage_core::gate`; this module loads what they judge by (lineage.toml's gate
//! sections, the Rego files, the trust policy, the signing key), turns flags into facts, and
//! renders the reports.
//!
//! Gathering facts from flags is lenient on purpose: an abbreviated commit or a base without
//! a digest must reach the gate as a value, so that it comes back as a coded finding with a
//! fix rather than as a parse error. Everything that is *not* a fact is parsed strictly
//! before the ledger is opened, and a problem with it exits 2: the gate could not decide.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use clap::Args;
use lineage_core::detect::{BaseDetection, FromRegistry};
use lineage_core::gate::{self, BuildOptions, Decision, DeployRequest, StoreLedger};
use lineage_core::provenance;
use lineage_model::{BuildRecord, Digest, EnvName, ImageRef};
use lineage_policy::render::SarifOptions;
use lineage_policy::{BuildFacts, Policies, Report};
use lineage_store::{Store, StoreError};

use crate::args::{BuildArgs, Format, FormatChoice};
use crate::settings::{Settings, ENV_GITHUB_STEP_SUMMARY};
use crate::{CliError, Outcome};

/// How a gate report is printed: the `--format` choices gate commands accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// For a person; colour on a terminal.
    Human,
    /// The versioned report (`"schema": 1`).
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// GitHub Actions workflow commands (`::error title=…::…`).
    Github,
    /// ASCII without colour, for GitLab and other CI logs.
    Plain,
    /// GitLab code quality JSON.
    Codequality,
}

/// Options every gate command shares.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Write the gate report (in `--format`) to this file instead of stdout; record commands
    /// write it whether the gate passes or refuses.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A directory of Rego policies (`*.rego`), in addition to `policies/` beside lineage.toml.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
}

/// `--output` names a file now; a format name there is the old spelling of `--format`.
pub fn refuse_format_as_file(output: Option<&Path>) -> Result<(), CliError> {
    let Some(name) = output.and_then(|p| p.to_str()) else {
        return Ok(());
    };
    let formats = [
        "human",
        "json",
        "sarif",
        "github",
        "plain",
        "codequality",
        "text",
        "markdown",
        "html",
        "slack",
    ];
    if formats.contains(&name) {
        let new = if name == "text" { "plain" } else { name };
        return Err(CliError::new(
            format!("`--output {name}` names a format, but `--output` is a file now"),
            format!("write `--format {new}` (and `-o FILE` to write the report to a file)"),
        ));
    }
    Ok(())
}

/// The gate options of `build check` and `build record`.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildGateArgs {
    /// The environment the build is for; it picks the rule severities (default: production's).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub check: CheckArgs,
    /// `build record`: record a build that fails the production build check; the failure is
    /// recorded with it.
    #[arg(long)]
    pub allow_failures: bool,
    /// `build record`: sign SLSA v1 provenance with this private key (PEM; the passphrase
    /// comes from LINEAGE_KEY_PASSWORD or a prompt).
    #[arg(long, value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
}

/// `lineage deploy check`.
#[derive(Debug, Args)]
pub struct DeployCheckArgs {
    /// The image to deploy, ideally pinned: `REPOSITORY@sha256:…`.
    #[arg(long)]
    pub image: String,
    /// The target environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Who deploys (default: LINEAGE_ACTOR, then the CI actor, then $USER).
    #[arg(long, value_name = "IDENTITY")]
    pub by: Option<String>,
    /// Who approved the deploy.
    #[arg(long, value_name = "IDENTITY")]
    pub approved_by: Option<String>,
    /// Judge it as a deliberate rollback to an older build (rule D013 lets it pass).
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// Rego files larger than this are refused; policies are small.
const MAX_POLICY_BYTES: u64 = 1 << 20;
const MAX_DOCKERFILE_BYTES: u64 = 1 << 20;

/// How a gate report is shown: chosen by the flags, nothing to do with the decision.
pub struct Present {
    output: Output,
    /// `-o FILE`: the report goes there, whatever the decision.
    file: Option<PathBuf>,
    /// Whether the report format was asked for beyond the default human/JSON result (record
    /// commands then show a passing gate's findings in it).
    output_explicit: bool,
    /// Where SARIF results without a file of their own point.
    fallback_uri: Option<String>,
}

/// What a gate judges by, loaded and checked before the ledger is opened, and how its report
/// is shown.
pub struct Setup {
    pub gate: gate::Setup,
    pub present: Present,
}

pub fn setup(check: &CheckArgs, s: &Settings) -> Result<Setup, CliError> {
    refuse_format_as_file(check.output.as_deref())?;
    Ok(Setup {
        gate: gate_setup(s, check.policy_dir.as_deref())?,
        present: present(check, s),
    })
}

fn present(check: &CheckArgs, s: &Settings) -> Present {
    let output = match s.format_choice {
        FormatChoice::Json => Output::Json,
        FormatChoice::Sarif => Output::Sarif,
        FormatChoice::Github => Output::Github,
        FormatChoice::Plain => Output::Plain,
        FormatChoice::Codequality => Output::Codequality,
        // `check_format` refuses the stale report's formats for gate commands.
        _ => Output::Human,
    };
    Present {
        output,
        file: check.output.clone(),
        output_explicit: check.output.is_some()
            || matches!(
                output,
                Output::Sarif | Output::Github | Output::Plain | Output::Codequality
            ),
        fallback_uri: s.config_path.as_ref().map(|_| config_name(s)),
    }
}

/// What every gate judges by: `[environments]`, the gate sections of lineage.toml, the Rego
/// policies (`policies/` beside lineage.toml, plus `extra`) and `[trust]`. The server loads
/// the same through this function, so a local check and the server decide alike.
pub fn gate_setup(s: &Settings, extra: Option<&Path>) -> Result<gate::Setup, CliError> {
    let files = policy_files(s, extra, false)?;
    let policies = if files.is_empty() {
        None
    } else {
        Some(Policies::load(&files).map_err(rego_error)?)
    };
    Ok(gate::Setup {
        config: s.toml.config.clone(),
        policy: s.toml.policy.clone(),
        policies,
        trust: s.trust_policy()?,
        source: Some(s.config_source.clone()),
    })
}

/// The settings file's name as the user knows it, for positions in errors.
pub fn config_name(s: &Settings) -> String {
    s.config_path
        .as_ref()
        .map_or_else(|| "lineage.toml".to_string(), |p| p.display().to_string())
}

pub fn rego_error(e: lineage_policy::RegoError) -> CliError {
    CliError::from(lineage_core::Error::Policy(e))
}

/// The policy directories: `policies/` beside lineage.toml (when there is one) and `extra`.
pub fn policy_dirs(s: &Settings, extra: Option<&Path>) -> Result<Vec<PathBuf>, CliError> {
    let mut dirs = Vec::new();
    if let Some(dir) = &s.config_dir {
        let beside = dir.join("policies");
        if beside.is_dir() {
            dirs.push(beside);
        }
    }
    if let Some(extra) = extra {
        if !extra.is_dir() {
            return Err(CliError::new(
                format!("--policy-dir `{}` is not a directory", extra.display()),
                "pass the directory that holds your `*.rego` files, e.g. `--policy-dir policies`",
            ));
        }
        let same = dirs.iter().any(|d| {
            d.canonicalize().ok().is_some() && d.canonicalize().ok() == extra.canonicalize().ok()
        });
        if !same {
            dirs.push(extra.to_path_buf());
        }
    }
    Ok(dirs)
}

/// `(path, text)` of every `*.rego` file in the policy directories, sorted per directory so
/// evaluation order (and output) does not depend on the file system. Tests (`*_test.rego`)
/// are included only when asked for.
pub fn policy_files(
    s: &Settings,
    extra: Option<&Path>,
    with_tests: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for dir in policy_dirs(s, extra)? {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            CliError::new(
                format!("cannot read policy directory `{}`: {e}", dir.display()),
                "check the path and its permissions",
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
            .filter(|p| with_tests || !p.to_string_lossy().ends_with("_test.rego"))
            .collect();
        paths.sort();
        for p in paths {
            let text = read_limited(&p, MAX_POLICY_BYTES)?;
            let shown = p.display().to_string();
            let shown = shown.strip_prefix("./").unwrap_or(&shown).to_string();
            out.push((shown, text));
        }
    }
    Ok(out)
}

pub use crate::commands::read_limited;

/// Opens the ledger for reading if it exists. A check never creates one: with no ledger
/// there is simply no context (no exceptions, no other services).
fn open_existing(s: &Settings) -> Result<Option<Box<dyn Store>>, CliError> {
    match lineage_store::open_read(&s.store) {
        Ok(store) => Ok(Some(store)),
        Err(StoreError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `--env` of a build, checked against `[environments]`.
fn build_env(gate: &BuildGateArgs, s: &Settings) -> Result<Option<EnvName>, CliError> {
    Ok(gate
        .env
        .as_deref()
        .map(|e| s.toml.config.environment(e))
        .transpose()?)
}

fn read_dockerfile(path: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    path.map(|p| read_limited(p, MAX_DOCKERFILE_BYTES))
        .transpose()
}

/// `lineage build check`: the build gate on flags plus CI variables, or on a recorded build
/// (`--digest D` without `--image`).
pub fn build_check(args: BuildArgs, s: &Settings) -> Result<Outcome, CliError> {
    let options = &args.gate;
    if options.allow_failures || options.sign_key.is_some() || args.print_detected {
        return Err(CliError::new(
            "`--allow-failures`, `--sign-key` and `--print-detected` belong to `build record`",
            "drop them from `build check`; it only reports and never writes",
        ));
    }
    let setup = setup(&options.check, s)?;
    let env = build_env(options, s)?;
    let input = crate::commands::build_input(&args, s)?;
    let dockerfile = input.dockerfile.as_ref().map(|d| d.text.clone());
    let (facts, store) = if args.image.is_none() && args.digest.is_some() {
        let raw = args.digest.as_deref().unwrap_or_default();
        let digest = Digest::parse(raw).map_err(|e| CliError::from(e.in_field("--digest")))?;
        let store = crate::commands::open(s, false)?;
        let Some(build) = store.build(&digest)? else {
            return Err(CliError::new(
                format!("no build is recorded for `{digest}`"),
                "check a build before recording it with the same flags as `build record` (`--image REF@DIGEST …`)",
            ));
        };
        let mut facts = BuildFacts::from(&build);
        if let Some(p) = &args.dockerfile {
            facts.dockerfile_path = Some(p.display().to_string());
        }
        (facts, Some(store))
    } else {
        let store = open_existing(s)?;
        (gate::build_facts(&input, store.as_deref())?, store)
    };
    let report = gate::check_build(
        store.as_deref(),
        &setup.gate,
        &facts,
        env.as_ref(),
        dockerfile,
        s.now,
    )?;
    emit(&setup.present, &report, s, false)?;
    Ok(verdict(&report))
}

fn verdict(report: &Report) -> Outcome {
    if report.passed {
        Outcome::Ok
    } else {
        Outcome::NotFound
    }
}

/// The build gate as `build record` runs it: everything parsed before the ledger opens.
pub struct BuildGate {
    pub setup: Setup,
    pub env: Option<EnvName>,
    pub dockerfile: Option<String>,
    pub key: Option<lineage_attest::PrivateKey>,
    pub allow_failures: bool,
}

pub fn prepare_build(args: &BuildArgs, s: &Settings) -> Result<BuildGate, CliError> {
    let key = args
        .gate
        .sign_key
        .as_deref()
        .map(|p| crate::gates_admin::load_private_key(p, "--sign-key", s))
        .transpose()?;
    Ok(BuildGate {
        setup: setup(&args.gate.check, s)?,
        env: build_env(&args.gate, s)?,
        dockerfile: read_dockerfile(args.dockerfile.as_ref())?,
        key,
        allow_failures: args.gate.allow_failures,
    })
}

impl BuildGate {
    /// The options `lineage_core::gate::record_build` takes, with the provenance signed here:
    /// the key never leaves this machine, also when the record goes to a server.
    pub fn options(&self, build: &BuildRecord, s: &Settings) -> Result<BuildOptions, CliError> {
        let provenance = match &self.key {
            Some(key) => {
                let att = provenance::sign_build(build, key, s.now)?;
                Some(att.envelope)
            }
            None => None,
        };
        Ok(BuildOptions {
            env: self.env.clone(),
            dockerfile: self.dockerfile.clone(),
            allow_failures: self.allow_failures,
            provenance,
            base_seen: None,
        })
    }
}

/// `build record` on the local ledger: the core use case, then the report. With
/// `--from-registry`, a base newly seen in the registry is recorded in the build's
/// transaction, and the report says how the base was found.
pub fn record_build(
    gate: BuildGate,
    build: BuildRecord,
    from_registry: Option<FromRegistry>,
    store: &mut dyn Store,
    s: &Settings,
) -> Result<Outcome, CliError> {
    let mut options = gate.options(&build, s)?;
    let detection = from_registry.map(|f| {
        options.base_seen = f.base_fact;
        f.detection
    });
    let actor = s.actor(None).ok();
    let decision = gate::record_build(
        store,
        &gate.setup.gate,
        build,
        options,
        actor.as_ref(),
        s.now,
    )?;
    show_build(&gate, decision, detection.as_ref(), s)
}

/// Renders what recording a build did, the same for the local ledger and `--server`.
pub fn show_build(
    gate: &BuildGate,
    decision: Decision<gate::BuildRecorded>,
    detection: Option<&BaseDetection>,
    s: &Settings,
) -> Result<Outcome, CliError> {
    match decision {
        Decision::Refused { gate: report } => {
            emit(&gate.setup.present, &report, s, false)?;
            refuse(
                s.format,
                format!(
                    "the build of `{}` fails the production build check ({}); nothing was recorded",
                    report.subject.image.as_deref().unwrap_or("the image"),
                    errors_phrase(&report)
                ),
                "fix the findings above and build again, or pass `--allow-failures` to record it anyway (the failure is recorded with it)",
            );
            Ok(Outcome::NotFound)
        }
        Decision::Recorded {
            result,
            gate: report,
        } => {
            show_findings(&gate.setup.present, &report, s)?;
            crate::render::record(s.format, &result.record, detection);
            if let (Some(key), Some(index), Format::Human) =
                (&gate.key, result.provenance_index, s.format)
            {
                println!(
                    "signed provenance (SLSA v1) with key {} (ledger entry {index})",
                    key.key_id()
                );
            }
            Ok(Outcome::Ok)
        }
    }
}

fn errors_phrase(report: &Report) -> String {
    let n = report.counts.errors;
    let codes = gate::failed_codes(report).join(", ");
    format!("{n} error{}: {codes}", if n == 1 { "" } else { "s" })
}

/// `lineage deploy check`.
pub fn deploy_check(args: DeployCheckArgs, s: &Settings) -> Result<Outcome, CliError> {
    let setup = setup(&args.check, s)?;
    let deployer = match args.by {
        Some(b) => Some(b),
        None => s.actor(None).ok().map(|i| i.to_string()),
    };
    let store = crate::commands::open(s, false)?;
    let ledger = StoreLedger {
        store: store.as_ref(),
        trust: &setup.gate.trust,
    };
    let req = DeployRequest {
        image: args.image,
        env: args.env,
        deployer,
        approver: args.approved_by,
        rollback: args.rollback,
    };
    let report = gate::check_deploy(&ledger, &setup.gate, &req, s.now)?;
    emit(&setup.present, &report, s, false)?;
    Ok(verdict(&report))
}

/// Prints a gate report the way `deploy check` does.
pub fn show_report(setup: &Setup, report: &Report, s: &Settings) -> Result<(), CliError> {
    emit(&setup.present, report, s, false)
}

/// `deploy record` on the local ledger.
pub fn record_deploy(
    setup: &Setup,
    input: lineage_core::record::DeployInput,
    s: &Settings,
) -> Result<Outcome, CliError> {
    let mut store = crate::commands::open_write(s, false)?;
    // The ledger entry's author is the deployer, as a build's is its actor and a server
    // write's is the token's identity: no entry is anonymous.
    let author = input.by.clone();
    let decision = gate::record_deploy(store.as_mut(), &setup.gate, input, Some(&author), s.now)?;
    show_deploy(setup, decision, s)
}

/// Renders what recording a deploy did, the same for the local ledger and `--server`.
pub fn show_deploy(
    setup: &Setup,
    decision: Decision<lineage_core::record::RecordReport>,
    s: &Settings,
) -> Result<Outcome, CliError> {
    match decision {
        Decision::Recorded {
            result,
            gate: report,
        } => {
            show_findings(&setup.present, &report, s)?;
            crate::render::record(s.format, &result, None);
            Ok(Outcome::Ok)
        }
        Decision::Refused { gate: report } => {
            emit(&setup.present, &report, s, false)?;
            refuse(
                s.format,
                format!(
                    "the deploy of `{}` to `{}` fails the deploy check ({}); nothing was recorded",
                    report.subject.image.as_deref().unwrap_or("the image"),
                    report.subject.environment.as_deref().unwrap_or("?"),
                    errors_phrase(&report)
                ),
                "fix the findings above, or have an approver record an exception: `lineage exception add --rule CODE --service NAME --reason TEXT --approved-by ID --expires DATE`",
            );
            Ok(Outcome::NotFound)
        }
    }
}

/// `lineage approve IMAGE@DIGEST --env ENV`.
pub fn approve(args: ApproveArgs, s: &Settings) -> Result<Outcome, CliError> {
    let input = gate::ApprovalInput {
        image: ImageRef::parse(&args.image).map_err(|e| e.in_field("IMAGE"))?,
        env: args.env,
        by: s.actor(args.actor.by.as_deref())?,
        reason: args.reason,
    };
    let mut store = crate::commands::open_write(s, false)?;
    let by = input.by.clone();
    let report = gate::approve(store.as_mut(), &s.toml.config, input, Some(&by), s.now)?;
    show_approval(&report, s);
    Ok(Outcome::Ok)
}

pub fn show_approval(report: &gate::ApprovalReport, s: &Settings) {
    match s.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialise")
        ),
        Format::Human => println!(
            "{} approval of {} ({}) for {} by {} (ledger entry {})",
            report.outcome, report.digest, report.service, report.env, report.by, report.index
        ),
    }
}

/// `lineage approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The image to approve, pinned: `REPOSITORY@sha256:…`.
    pub image: String,
    /// The environment it may run in.
    #[arg(long)]
    pub env: String,
    /// What was checked (one line).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: crate::args::ActorArgs,
    #[command(flatten)]
    pub remote: crate::args::RemoteArgs,
}

/// A record command wrote nothing because its gate failed: exit 1 with a reason on stderr.
fn refuse(format: Format, message: String, hint: &str) {
    match format {
        Format::Json => eprintln!(
            "{}",
            serde_json::json!({"schema": 1, "error": {"message": format!("refused: {message}"), "hint": hint}})
        ),
        Format::Human => {
            eprintln!("error: refused: {message}");
            eprintln!("  hint: {hint}");
        }
    }
}

/// A record command that passed its gate shows warnings, waivers and notes on stderr, so
/// stdout keeps carrying only the record result. Under `--format json` they are left to
/// `build check`/`deploy check`, unless `--output` asks for them.
fn show_findings(present: &Present, report: &Report, s: &Settings) -> Result<(), CliError> {
    let quiet = report.diagnostics.is_empty() && report.notes.is_empty();
    if present.file.is_some() {
        // Asked for in a file: written whatever it holds (an empty SARIF run is an answer).
        return emit(present, report, s, true);
    }
    if quiet || (s.format == Format::Json && !present.output_explicit) {
        append_step_summary(report, s);
        return Ok(());
    }
    emit(present, report, s, true)
}

/// Prints the report in the chosen format (to `-o FILE` when given) and appends the job
/// summary in GitHub Actions.
fn emit(present: &Present, report: &Report, s: &Settings, to_stderr: bool) -> Result<(), CliError> {
    let terminal = present.file.is_none()
        && if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
    let colour = s.colour(terminal);
    let text = match present.output {
        Output::Human => lineage_policy::render::human(report, colour),
        Output::Json => lineage_policy::render::json(report),
        Output::Sarif => lineage_policy::render::sarif(
            report,
            &SarifOptions {
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                fallback_uri: report
                    .diagnostics
                    .iter()
                    .find_map(|d| d.location.as_ref().map(|l| l.file.clone()))
                    .or_else(|| present.fallback_uri.clone()),
            },
        ),
        Output::Github => lineage_policy::render::github(report),
        Output::Plain => lineage_policy::render::plain(report),
        Output::Codequality => lineage_policy::render::codequality(
            report,
            present.fallback_uri.as_deref().unwrap_or("Dockerfile"),
        ),
    };
    if let Some(path) = &present.file {
        std::fs::write(path, text).map_err(|e| {
            CliError::new(
                format!("cannot write the gate report to `{}`: {e}", path.display()),
                "pass a writable path to `-o`",
            )
        })?;
    } else if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    append_step_summary(report, s);
    Ok(())
}

/// Appends the Markdown summary to `$GITHUB_STEP_SUMMARY`. A summary that cannot be written
/// must not change the verdict, so a failure is a warning, not an error.
fn append_step_summary(report: &Report, s: &Settings) {
    let Some(path) = s.env.get(ENV_GITHUB_STEP_SUMMARY).filter(|p| !p.is_empty()) else {
        return;
    };
    let result = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(lineage_policy::render::github_summary(report).as_bytes()));
    if let Err(e) = result {
        match s.format {
            Format::Json => eprintln!(
                "{}",
                serde_json::json!({"schema": 1, "warning": format!("cannot append the job summary to `{path}`: {e}")})
            ),
            Format::Human => {
                eprintln!("warning: cannot append the job summary to `{path}`: {e}")
            }
        }
    }
}
