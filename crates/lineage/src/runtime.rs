//! Runtime truth at the edge: `observe`, `drift [--reconcile [--apply]]`, `deploy end`,
//! `service rename` and `service remove`. Decisions live in `lineage_core::{observe, drift,
//! placements, services}`; this module parses flags, reads input, calls them and prints.

use std::io::Read as _;
use std::path::Path;

use clap::Args;
use lineage_core::drift::{self, DriftKind, DriftOptions, DriftReport, ReconcileReport};
use lineage_core::observe::{self, InputFormat, ObserveOptions, ObserveReport};
use lineage_core::placements::{self, EndReport};
use lineage_core::query::View;
use lineage_core::services::{self, RemoveReport};
use lineage_model::{Identity, ServiceName, Timestamp};
use serde::Serialize;

use crate::args::{ActorArgs, Format};
use crate::render::{json, short};
use crate::settings::Settings;
use crate::{CliError, Outcome};

/// How queries look at runtime truth from the CLI: now, and `--observed-only`.
pub fn view(s: &Settings, observed_only: bool) -> View {
    View {
        now: Some(s.now),
        observed_only,
    }
}

// -------------------------------------------------------------------------------------------
// observe
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// The inventory: a file, or `-` for standard input (`kubectl get pods -A -o json | lineage
    /// observe - --cluster prod-eu-1`).
    pub input: String,
    /// The cluster or inventory this input describes; its newest batch is what runs there.
    #[arg(long, alias = "source", value_name = "NAME")]
    pub cluster: Option<String>,
    /// `kubernetes`, `jsonl` or `csv` (default: detected from the content).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// When the inventory was taken (default: now); lines may carry their own `seen_at`.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// Reads the input, refusing more than the limit (named in the error) before parsing.
fn read_input(input: &str) -> Result<(String, String), CliError> {
    let limit = observe::MAX_INPUT_BYTES;
    if input == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}"), "pipe the inventory in, e.g. `kubectl get pods -A -o json | lineage observe - --cluster NAME`"))?;
        if buf.len() as u64 > limit {
            return Err(CliError::new(
                format!("standard input is larger than the limit of {limit} bytes"),
                "split the inventory by cluster or namespace and record each part with its own `--cluster`",
            ));
        }
        let text = String::from_utf8(buf).map_err(|_| {
            CliError::new("standard input is not UTF-8 text", "pass JSON or CSV text")
        })?;
        return Ok((text, "stdin".into()));
    }
    let text = crate::commands::read_limited(Path::new(input), limit)?;
    Ok((text, input.to_string()))
}

pub fn observe(args: ObserveArgs, s: &Settings) -> Result<Outcome, CliError> {
    let Some(source) = args.cluster.clone() else {
        return Err(CliError::new(
            "`--cluster` is required",
            "name the cluster or inventory the input describes, e.g. `--cluster prod-eu-1`; its newest batch is what runs there",
        ));
    };
    observe::check_source(&source)?;
    let format = args
        .input_format
        .as_deref()
        .map(InputFormat::parse)
        .transpose()?;
    let seen_at = match &args.at {
        Some(t) => {
            let t = Timestamp::parse(t).map_err(|e| e.in_field("--at"))?;
            lineage_core::gate::check_event_time("--at", t, s.now)?;
            t
        }
        None => s.now,
    };
    let by = s.actor(args.actor.by.as_deref())?;
    let admission = s.toml.admission.clone();
    let (text, name) = read_input(&args.input)?;
    // The whole input is checked before the ledger is opened: bad input writes nothing.
    let parsed = observe::parse(
        &text,
        &ObserveOptions {
            source,
            format,
            namespaces: &admission.namespaces,
            config: &s.toml.config,
            seen_at,
            by,
            name,
        },
    )?;
    drop(text);
    let mut store = crate::commands::open_write(s, true)?;
    let report = observe::record(store.as_mut(), parsed, s.now)?;
    show_observe(s.format, &report);
    Ok(Outcome::Ok)
}

fn show_observe(format: Format, r: &ObserveReport) {
    if format == Format::Json {
        return json(r);
    }
    println!(
        "recorded what `{}` runs ({}): {} container(s), {} digest(s) in {} (ledger entry {})",
        r.source,
        r.format,
        r.containers,
        r.digests,
        if r.envs.is_empty() {
            "no environment".to_string()
        } else {
            r.envs.join(", ")
        },
        r.index
    );
    for u in &r.unmapped_namespaces {
        println!(
            "  not recorded: namespace `{}` ({} pod(s)) maps to no environment; add it under `[admission] namespaces` in lineage.toml",
            u.namespace, u.pods
        );
    }
    for k in &r.skipped {
        println!("  skipped {}: {}", k.at, k.reason);
    }
}

// -------------------------------------------------------------------------------------------
// drift
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Exit 1 when drift of these kinds is found: `recorded-not-observed`,
    /// `older-than-recorded`, `observed-not-recorded`, `no-build-record`, `retired`, or `all`.
    #[arg(long, value_name = "KIND,…")]
    pub fail_on: Option<String>,
    /// Propose the `deploy end` / `deploy record` entries that resolve the drift.
    #[arg(long)]
    pub reconcile: bool,
    /// Write what `--reconcile` proposes (deploys through the deploy gate).
    #[arg(long, requires = "reconcile")]
    pub apply: bool,
    /// The approver of the deploys `--reconcile --apply` records.
    #[arg(long, requires = "reconcile", value_name = "IDENTITY")]
    pub approved_by: Option<String>,
    /// `--output`, `--policy-dir` for the deploy gate reconciliation runs.
    #[command(flatten)]
    pub check: crate::gates::CheckArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Serialize)]
struct Reconciled<'a> {
    schema: u32,
    drift: &'a DriftReport,
    reconcile: &'a ReconcileReport,
}

pub fn drift(args: DriftArgs, s: &Settings) -> Result<Outcome, CliError> {
    let env = args
        .env
        .as_deref()
        .map(|e| s.toml.config.environment(e))
        .transpose()?;
    let fail_on = args
        .fail_on
        .as_deref()
        .map(DriftKind::parse_list)
        .transpose()?
        .unwrap_or_default();
    let admission = s.toml.admission.clone();
    let options = DriftOptions {
        env,
        fail_on,
        allow: admission.allow,
    };
    if !args.reconcile {
        let store = crate::commands::open(s, false)?;
        let report = drift::drift(store.as_ref(), &s.toml.config, &options, s.now)?;
        show_drift(s.format, &report);
        return Ok(if report.failed {
            Outcome::NotFound
        } else {
            Outcome::Ok
        });
    }
    let reconcile = drift::ReconcileOptions {
        by: s.actor(args.actor.by.as_deref())?,
        approved_by: args
            .approved_by
            .as_deref()
            .map(|a| Identity::parse(a).map_err(|e| e.in_field("--approved-by")))
            .transpose()?,
        apply: args.apply,
    };
    let setup = crate::gates::setup(&args.check, s)?;
    let (report, result) = if args.apply {
        let mut store = crate::commands::open_write(s, false)?;
        let report = drift::drift(store.as_ref(), &s.toml.config, &options, s.now)?;
        let result = drift::reconcile(store.as_mut(), &setup.gate, &report, &reconcile, s.now)?;
        (report, result)
    } else {
        // A dry run opens the ledger read-only: it cannot write, and it signs nothing.
        let store = crate::commands::open(s, false)?;
        let report = drift::drift(store.as_ref(), &s.toml.config, &options, s.now)?;
        let result = dry_run(store, &setup.gate, &report, &reconcile, s.now)?;
        (report, result)
    };
    match s.format {
        Format::Json => json(&Reconciled {
            schema: 1,
            drift: &report,
            reconcile: &result,
        }),
        Format::Human => {
            show_drift(s.format, &report);
            show_reconcile(&result);
        }
    }
    Ok(if report.failed || (result.applied && result.refused > 0) {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}

/// Reconciliation without `--apply`, on a ledger opened for reading only.
fn dry_run(
    mut store: Box<dyn lineage_store::Store>,
    setup: &lineage_core::gate::Setup,
    report: &DriftReport,
    options: &drift::ReconcileOptions,
    now: Timestamp,
) -> Result<ReconcileReport, CliError> {
    Ok(drift::reconcile(
        store.as_mut(),
        setup,
        report,
        options,
        now,
    )?)
}

fn show_drift(format: Format, r: &DriftReport) {
    if format == Format::Json {
        return json(r);
    }
    if r.sources.is_empty() {
        println!("no runtime observations are recorded, so nothing was compared; record what runs with `kubectl get pods -A -o json | lineage observe - --cluster NAME`");
        return;
    }
    let sources: Vec<String> = r
        .sources
        .iter()
        .map(|s| {
            format!(
                "`{}` at {}{}",
                s.source,
                s.at,
                if s.complete {
                    format!(" ({})", s.envs.join(", "))
                } else {
                    " (admitted only)".into()
                }
            )
        })
        .collect();
    println!("compared with {}", sources.join("; "));
    if !r.unwatched.is_empty() {
        println!(
            "not compared: no source reports on {}",
            r.unwatched.join(", ")
        );
    }
    if r.items.is_empty() {
        println!("no drift");
    } else {
        let counts: Vec<String> = r
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!("drift: {}", counts.join(", "));
    }
    for i in &r.items {
        println!();
        println!(
            "{}  {}  {}  {}",
            i.env,
            i.service.as_deref().unwrap_or("(no service)"),
            i.kind,
            short(&i.digest)
        );
        println!("  {}", i.message);
        if !i.workloads.is_empty() {
            println!("  runs as  {}", i.workloads.join(", "));
        }
        println!("  fix      {}", i.fix);
    }
    if r.third_party > 0 {
        println!();
        println!(
            "{} third-party image(s) allowed by `[admission] allow` left out",
            r.third_party
        );
    }
}

fn show_reconcile(r: &ReconcileReport) {
    println!();
    if r.proposals.is_empty() {
        println!("nothing to reconcile");
    } else if r.applied {
        println!(
            "reconciled: {} written, {} refused by the deploy gate",
            r.written, r.refused
        );
    } else {
        println!("dry run, nothing written; add `--apply` to write these:");
    }
    for p in &r.proposals {
        let status = match (p.status.as_str(), p.refused_by.is_empty()) {
            ("refused", false) => format!("refused ({})", p.refused_by.join(", ")),
            (s, _) => s.to_string(),
        };
        println!("  {:<8}  {}", status, p.command);
    }
    if r.left > 0 {
        println!(
            "{} item(s) need a person (no build record, retired, or no service)",
            r.left
        );
    }
}

// -------------------------------------------------------------------------------------------
// deploy end
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct EndArgs {
    /// The service that no longer runs there.
    #[arg(long)]
    pub service: String,
    /// The environment it no longer runs in.
    #[arg(long)]
    pub env: String,
    /// Why (kept in the ledger), e.g. `decommissioned, CHG-2210`.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
    #[command(flatten)]
    pub remote: crate::args::RemoteArgs,
}

/// The body of `POST /api/v1/deploys/end`, checked here so bad input never reaches a server.
pub fn end_body(args: &EndArgs, s: &Settings) -> Result<serde_json::Value, CliError> {
    ServiceName::parse(&args.service).map_err(|e| e.in_field("--service"))?;
    s.toml.config.environment(&args.env)?;
    if let Some(b) = &args.actor.by {
        Identity::parse(b).map_err(|e| e.in_field("--by"))?;
    }
    placements::check_reason(args.reason.as_deref())?;
    Ok(serde_json::json!({
        "service": args.service, "env": args.env, "by": args.actor.by, "reason": args.reason,
    }))
}

pub fn end(args: EndArgs, s: &Settings) -> Result<Outcome, CliError> {
    let input = placements::EndInput {
        service: ServiceName::parse(&args.service).map_err(|e| e.in_field("--service"))?,
        env: s.toml.config.environment(&args.env)?.to_string(),
        by: s.actor(args.actor.by.as_deref())?,
        reason: placements::check_reason(args.reason.as_deref())?,
    };
    let (service, env) = (input.service.to_string(), input.env.clone());
    let mut store = crate::commands::open_write(s, false)?;
    match placements::end(store.as_mut(), &s.toml.config, input, None, s.now)? {
        Some(report) => {
            show_end(s, &report);
            Ok(Outcome::Ok)
        }
        None => {
            crate::render::not_found(
                s.format,
                &format!("nothing is recorded as running for `{service}` in `{env}`"),
            );
            Ok(Outcome::NotFound)
        }
    }
}

pub fn show_end(s: &Settings, r: &EndReport) {
    match s.format {
        Format::Json => json(r),
        Format::Human => println!(
            "ended {} in {} (was {}) (ledger entry {})",
            r.service,
            r.env,
            short(&r.digest),
            r.index
        ),
    }
}

// -------------------------------------------------------------------------------------------
// service rename / remove
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The service's current name.
    pub old: String,
    /// Its new name.
    pub new: String,
    /// Why (kept in the ledger).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The service to decommission.
    pub name: String,
    /// Why (kept in the ledger), e.g. `decommissioned, CHG-2210`.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

pub fn rename(args: RenameArgs, s: &Settings) -> Result<Outcome, CliError> {
    let old = ServiceName::parse(&args.old).map_err(|e| e.in_field("OLD"))?;
    let new = ServiceName::parse(&args.new).map_err(|e| e.in_field("NEW"))?;
    let reason = placements::check_reason(args.reason.as_deref())?;
    let by = s.actor(args.actor.by.as_deref())?;
    let mut store = crate::commands::open_write(s, false)?;
    let report = services::rename(store.as_mut(), &old, new, reason, by, s.now)?;
    show_removed(s.format, &report);
    Ok(Outcome::Ok)
}

pub fn remove(args: RemoveArgs, s: &Settings) -> Result<Outcome, CliError> {
    let name = ServiceName::parse(&args.name).map_err(|e| e.in_field("NAME"))?;
    let reason = placements::check_reason(args.reason.as_deref())?;
    let by = s.actor(args.actor.by.as_deref())?;
    let mut store = crate::commands::open_write(s, false)?;
    let report = services::remove(store.as_mut(), &name, reason, by, s.now)?;
    show_removed(s.format, &report);
    Ok(Outcome::Ok)
}

fn show_removed(format: Format, r: &RemoveReport) {
    if format == Format::Json {
        return json(r);
    }
    match &r.renamed_to {
        Some(new) => println!(
            "renamed service {} to {new} (ledger entry {}); its history stays under both names",
            r.service, r.index
        ),
        None => println!(
            "removed service {} (ledger entry {}); its history stays (`lineage service show {}`)",
            r.service, r.index, r.service
        ),
    }
    for e in &r.ended {
        println!("  ended {} in {} ({})", e.service, e.env, short(&e.digest));
        if let Some(new) = &r.renamed_to {
            println!(
                "    if {new} runs it now, record that: {}",
                format_args!(
                    "lineage deploy record --image {} --env {} --by EMAIL",
                    placements::shell_quote(&format!("{}@{}", e.image, e.digest)),
                    placements::shell_quote(&e.env)
                )
            );
        }
    }
}
