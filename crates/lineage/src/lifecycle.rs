//! `promote`, `rollback`, `history`, `tag`, `deploy outcome`, and the configuration of a
//! deploy (`--config-file`, `--config-digest`): parse, call `lineage_core::lifecycle` or the
//! deploy gate, render.

use std::path::PathBuf;

use clap::Args;
use lineage_core::gate;
use lineage_core::lifecycle::{
    self, HistoryReport, OutcomeInput, RollbackInput, RollbackOutcome, RollbackPlan,
};
use lineage_model::{
    inert, ConfigFile, Digest, Identity, ImageRef, OutcomeStatus, ServiceName, Tag, Timestamp,
};
use sha2::Digest as _;

use crate::args::{ActorArgs, Format};
use crate::render::{json, short};
use crate::settings::Settings;
use crate::{CliError, Outcome};

/// Configuration files are manifests and values files; a bigger one is a mistake.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// `--config-file FILE` and `--config-digest [PATH=]sha256:HEX` of `deploy record`.
#[derive(Debug, Args, Default)]
pub struct ConfigArgs {
    /// A configuration file deployed with the image (a Kubernetes manifest, Helm values);
    /// its SHA-256 is recorded, and with the digest it makes the release (repeatable).
    #[arg(long = "config-file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The SHA-256 of configuration rendered elsewhere, `[NAME=]sha256:<64 hex>` (repeatable).
    #[arg(long = "config-digest", value_name = "[NAME=]DIGEST")]
    pub digests: Vec<String>,
}

impl ConfigArgs {
    /// The files' contents hashed, and the digests given, as the deploy records them.
    pub fn read(&self) -> Result<Vec<ConfigFile>, CliError> {
        let mut out = Vec::new();
        for path in &self.files {
            let bytes = crate::input::read_bytes(path, MAX_CONFIG_FILE_BYTES)?;
            out.push(ConfigFile {
                path: path.display().to_string(),
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
            });
        }
        for given in &self.digests {
            let (name, digest) = match given.rsplit_once('=') {
                Some((name, d)) => (name.to_string(), d),
                None => ("-".to_string(), given.as_str()),
            };
            let digest = Digest::parse(digest).map_err(|e| e.in_field("--config-digest"))?;
            let Some(hex) = digest
                .to_string()
                .strip_prefix("sha256:")
                .map(str::to_string)
            else {
                return Err(CliError::new(
                    format!("--config-digest `{}` is not a SHA-256 digest", inert(given)),
                    "give `[NAME=]sha256:<64 hex>`, e.g. `helm-values=sha256:…`",
                ));
            };
            out.push(ConfigFile {
                path: name,
                sha256: hex,
            });
        }
        Ok(out)
    }
}

// -------------------------------------------------------------------------------------------
// deploy outcome
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  lineage deploy outcome --service api --env staging --status healthy --detail 'smoke tests passed'"
)]
pub struct OutcomeArgs {
    /// The service.
    #[arg(long)]
    pub service: String,
    /// The environment it was deployed to.
    #[arg(long)]
    pub env: String,
    /// `healthy`, `degraded` or `failed`.
    #[arg(long)]
    pub status: String,
    /// The digest the outcome is about, `REPOSITORY@sha256:…` (default: what runs there now).
    #[arg(long)]
    pub image: Option<String>,
    /// What was seen (at most 1000 characters), e.g. a link to the dashboard or the alert.
    #[arg(long)]
    pub detail: Option<String>,
    /// When it was seen (default: now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

pub fn outcome(args: OutcomeArgs, s: &Settings) -> Result<Outcome, CliError> {
    let digest = match &args.image {
        Some(i) => {
            let image = ImageRef::parse(i).map_err(|e| e.in_field("--image"))?;
            Some(image.digest.clone().ok_or_else(|| {
                CliError::new(
                    format!("--image `{image}` is not pinned by digest"),
                    "give `REPOSITORY@sha256:<64 hex>`, or leave `--image` out for what runs there",
                )
            })?)
        }
        None => None,
    };
    let input = OutcomeInput {
        service: ServiceName::parse(&args.service).map_err(|e| e.in_field("--service"))?,
        env: s.toml.config.environment(&args.env)?.to_string(),
        status: OutcomeStatus::parse(&args.status).map_err(|e| e.in_field("--status"))?,
        digest,
        detail: args.detail.clone(),
        by: s.actor(args.actor.by.as_deref())?,
        at: match &args.at {
            Some(t) => Timestamp::parse(t).map_err(|e| e.in_field("--at"))?,
            None => s.now,
        },
    };
    if let Some(d) = &input.detail {
        lineage_model::check_free_text("--detail", d, 1000)?;
    }
    let mut store = crate::commands::open_write(s, false)?;
    match lifecycle::record_outcome(store.as_mut(), &s.toml.config, input, None, s.now)? {
        Some(r) => {
            match s.format {
                Format::Json => json(&r),
                Format::Human => println!(
                    "recorded {} for {} in {} ({}) (ledger entry {})",
                    r.status,
                    r.service,
                    r.env,
                    short(&r.digest),
                    r.index
                ),
            }
            Ok(Outcome::Ok)
        }
        None => {
            crate::render::not_found(
                s.format,
                &format!(
                    "nothing is recorded as running for `{}` in `{}`, so there is no deploy to judge",
                    args.service, args.env
                ),
            );
            Ok(Outcome::NotFound)
        }
    }
}

// -------------------------------------------------------------------------------------------
// history
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lineage history api\n  lineage history api --env production --format json"
)]
pub struct HistoryArgs {
    /// The service.
    pub service: String,
    /// Only this environment (default: all).
    #[arg(long)]
    pub env: Option<String>,
}

pub fn history(args: HistoryArgs, s: &Settings) -> Result<Outcome, CliError> {
    let service = ServiceName::parse(&args.service).map_err(|e| e.in_field("SERVICE"))?;
    let env = args
        .env
        .as_deref()
        .map(|e| s.toml.config.environment(e))
        .transpose()?;
    let store = crate::commands::open(s, false)?;
    let Some(report) = lifecycle::history(store.as_ref(), &s.toml.config, &service, env.as_ref())?
    else {
        crate::render::not_found(
            s.format,
            &format!("no service `{service}` and no deploys of it"),
        );
        return Ok(Outcome::NotFound);
    };
    render_history(s.format, &report);
    // Like every query over a list: an empty answer exits 1 (the document still prints).
    Ok(if report.rows.is_empty() {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}

fn render_history(format: Format, r: &HistoryReport) {
    if format == Format::Json {
        return json(r);
    }
    match &r.env {
        Some(env) => println!("history of {} in {env}", r.service),
        None => println!("history of {}", r.service),
    }
    if r.rows.is_empty() {
        println!("  no deploys recorded");
        return;
    }
    for row in &r.rows {
        let mut line = format!(
            "  {}  {:<12} {}  {:<8}",
            row.at,
            row.env,
            short(&row.digest),
            row.state.to_uppercase()
        );
        if let Some(u) = row.until {
            line.push_str(&format!(" until {u}"));
        }
        line.push_str(&format!("  by {}", row.by));
        match &row.approved_by {
            Some(a) => line.push_str(&format!(", approved by {a}")),
            None => line.push_str(", not approved"),
        }
        if row.rollback {
            line.push_str("  ROLLBACK");
        }
        if let Some(o) = &row.outcome {
            line.push_str(&format!("  outcome {}", o.status.to_uppercase()));
            if let Some(d) = &o.detail {
                line.push_str(&format!(" ({})", inert(d)));
            }
        }
        if let Some(ret) = &row.retired {
            line.push_str(&format!("  RETIRED by {} ({})", ret.by, inert(&ret.reason)));
        }
        if !row.config.is_empty() {
            line.push_str(&format!("  release {}", row.release));
        }
        println!("{line}");
    }
}

// -------------------------------------------------------------------------------------------
// rollback
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lineage rollback api --env production --dry-run\n  lineage rollback api --env production --approved-by maya@acme.dev"
)]
pub struct RollbackArgs {
    /// The service.
    pub service: String,
    /// The environment to roll back.
    #[arg(long)]
    pub env: String,
    /// The digest to go back to (default: the newest known-good one that ran there).
    #[arg(long, value_name = "DIGEST")]
    pub to: Option<String>,
    /// Who approved the rollback.
    #[arg(long, value_name = "IDENTITY")]
    pub approved_by: Option<String>,
    /// Change ticket URL.
    #[arg(long, value_name = "URL")]
    pub ticket: Option<String>,
    /// Show the target, the gate's answer and the commands; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// `--output`, `--policy-dir` for the deploy gate.
    #[command(flatten)]
    pub check: crate::gates::CheckArgs,
}

pub fn rollback(args: RollbackArgs, s: &Settings) -> Result<Outcome, CliError> {
    let setup = crate::gates::setup(&args.check, s)?;
    let input = RollbackInput {
        service: ServiceName::parse(&args.service).map_err(|e| e.in_field("SERVICE"))?,
        env: s.toml.config.environment(&args.env)?.to_string(),
        to: args
            .to
            .as_deref()
            .map(|d| Digest::parse(d).map_err(|e| e.in_field("--to")))
            .transpose()?,
        by: s.actor(args.actor.by.as_deref())?,
        approved_by: args
            .approved_by
            .as_deref()
            .map(|a| Identity::parse(a).map_err(|e| e.in_field("--approved-by")))
            .transpose()?,
        ticket: args.ticket.clone(),
        at: s.now,
    };
    // A dry run only reads: it never opens the ledger for writing.
    let outcome = if args.dry_run {
        let mut store = crate::commands::open(s, false)?;
        lifecycle::rollback(store.as_mut(), &setup.gate, &input, true, s.now)?
    } else {
        let mut store = crate::commands::open_write(s, false)?;
        lifecycle::rollback(store.as_mut(), &setup.gate, &input, false, s.now)?
    };
    match outcome {
        RollbackOutcome::NoTarget => {
            crate::render::not_found(
                s.format,
                &format!(
                    "no known-good digest to roll `{}` back to in `{}`: nothing else ran there that is not retired, passed its build gate and did not fail there",
                    input.service, input.env
                ),
            );
            Ok(Outcome::NotFound)
        }
        RollbackOutcome::DryRun { plan, gate: report } => {
            match s.format {
                Format::Json => json(&serde_json::json!({
                    "schema": 1, "dry_run": true, "plan": plan, "gate": report,
                })),
                Format::Human => {
                    show_plan(&plan, true);
                    crate::gates::show_report(&setup, &report, s)?;
                }
            }
            Ok(if report.passed {
                Outcome::Ok
            } else {
                Outcome::NotFound
            })
        }
        RollbackOutcome::Decided { plan, decision } => match (s.format, decision) {
            (Format::Json, gate::Decision::Recorded { result, gate }) => {
                json(&serde_json::json!({
                    "schema": 1, "dry_run": false, "plan": plan, "recorded": result, "gate": gate,
                }));
                Ok(Outcome::Ok)
            }
            (Format::Human, decision @ gate::Decision::Recorded { .. }) => {
                show_plan(&plan, false);
                crate::gates::show_deploy(&setup, decision, s)
            }
            (_, decision) => crate::gates::show_deploy(&setup, decision, s),
        },
    }
}

fn show_plan(plan: &RollbackPlan, dry_run: bool) {
    let verb = if dry_run {
        "would roll back"
    } else {
        "rolling back"
    };
    println!(
        "{verb} {} in {}: {} -> {}",
        plan.service,
        plan.env,
        plan.from
            .as_deref()
            .map_or("(nothing running)".to_string(), short),
        plan.to
    );
    println!("  why       {}", plan.why);
    println!("  release   {}", plan.release);
    println!("  run");
    for c in &plan.commands {
        println!("    {c}");
    }
}

// -------------------------------------------------------------------------------------------
// promote
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  lineage promote ghcr.io/acme/api@sha256:… --to production --approved-by maya@acme.dev"
)]
pub struct PromoteArgs {
    /// The image to promote, pinned: `REPOSITORY@sha256:…`.
    pub image: String,
    /// The environment to promote it to; `[promotion] path` says where it must come from.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Who approved the promotion.
    #[arg(long, value_name = "IDENTITY")]
    pub approved_by: Option<String>,
    /// Change ticket URL.
    #[arg(long, value_name = "URL")]
    pub ticket: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// `--output`, `--policy-dir` for the deploy gate.
    #[command(flatten)]
    pub check: crate::gates::CheckArgs,
}

/// A deploy to the next environment, through the deploy gate (rule D014 included).
pub fn promote(args: PromoteArgs, s: &Settings) -> Result<Outcome, CliError> {
    let input = lineage_core::record::DeployInput {
        image: ImageRef::parse(&args.image).map_err(|e| e.in_field("IMAGE"))?,
        env: s.toml.config.environment(&args.to)?.to_string(),
        by: s.actor(args.actor.by.as_deref())?,
        approved_by: args
            .approved_by
            .as_deref()
            .map(|a| Identity::parse(a).map_err(|e| e.in_field("--approved-by")))
            .transpose()?,
        ticket: args.ticket.clone(),
        at: s.now,
        rollback: false,
        config: args.config.read()?,
    };
    let setup = crate::gates::setup(&args.check, s)?;
    crate::gates::record_deploy(&setup, input, s)
}

// -------------------------------------------------------------------------------------------
// tag
// -------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  lineage tag ghcr.io/acme/api@sha256:… stable 1.8")]
pub struct TagArgs {
    /// The recorded build, pinned: `REPOSITORY@sha256:…`.
    pub image: String,
    /// Tags to point at it (a tag moves here from the digest it named before).
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

pub fn tag(args: TagArgs, s: &Settings) -> Result<Outcome, CliError> {
    let image = ImageRef::parse(&args.image).map_err(|e| e.in_field("IMAGE"))?;
    let tags = args
        .tags
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| CliError::from(e.in_field("TAG"))))
        .collect::<Result<Vec<_>, _>>()?;
    let by = s.actor(args.actor.by.as_deref())?;
    let mut store = crate::commands::open_write(s, false)?;
    let r = lifecycle::add_tags(store.as_mut(), &image, tags, by, s.now)?;
    match s.format {
        Format::Json => json(&r),
        Format::Human => match r.index {
            Some(i) => println!(
                "tagged {}@{} {} (ledger entry {i})",
                r.image,
                short(&r.digest),
                r.tags.join(", ")
            ),
            None => println!(
                "unchanged: every tag already names {}@{}",
                r.image,
                short(&r.digest)
            ),
        },
    }
    Ok(Outcome::Ok)
}
