//! `incident open`, `incident show` and `incident list`: the arguments and the renderers.
//! What is affected, what counts as fixed and when an incident closes are decided in
//! `lineage_core::incident`.

use clap::{Args, Subcommand};
use lineage_core::incident::{
    self, duration, IncidentList, IncidentReport, OpenInput, Opened, QueryKind, ServiceProgress,
};
use lineage_core::query::Owners;
use lineage_model::inert;

use crate::args::{ActorArgs, Format};
use crate::render::{json, short};
use crate::settings::Settings;
use crate::{CliError, Outcome};

#[derive(Debug, Subcommand)]
pub enum IncidentCmd {
    /// Open an incident (or a drill) on a base, a vulnerability or a package: records which
    /// services and environments run it now, production first.
    #[command(
        after_help = "Exactly one of --base, --cve, --package.\n\nExamples:\n  lineage incident open --title 'OpenSSL in python:3.12-slim' --base docker.io/library/python@sha256:…\n  lineage incident open --title 'CVE-2024-5535' --cve CVE-2024-5535\n  lineage incident open --title 'libssl3 drill' --package 'libssl3@<3.0.15-1~deb12u1' --drill"
    )]
    Open(OpenArgs),
    /// An incident's timeline: opened, first fixed build per service, each environment
    /// fixed, closed; elapsed times, and who to call for what is still open.
    #[command(after_help = "Example:\n  lineage incident show 3 --format json")]
    Show {
        /// The incident's number, as `incident open` and `incident list` show it.
        id: String,
    },
    /// Every incident, newest first: open or closed, when it was opened, how long it took.
    List,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// What the incident is about, one line (kept in the ledger).
    #[arg(long)]
    pub title: String,
    /// A base digest, or a base name with an optional tag, as `lineage affected --base` takes.
    #[arg(long, value_name = "DIGEST|NAME[:TAG]")]
    pub base: Option<String>,
    /// A vulnerability id as scanners report it: `CVE-2024-5535`, `GHSA-…`.
    #[arg(long, value_name = "ID")]
    pub cve: Option<String>,
    /// A package with the affected version or range: a purl
    /// (`pkg:deb/debian/libssl3@3.0.11-1~deb12u2`) or `NAME@VERSION|RANGE`.
    #[arg(long, value_name = "PURL|NAME@RANGE")]
    pub package: Option<String>,
    /// A rehearsal: shown as a drill everywhere.
    #[arg(long)]
    pub drill: bool,
    #[command(flatten)]
    pub actor: ActorArgs,
}

pub fn run(cmd: IncidentCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        IncidentCmd::Open(args) => open(args, s),
        IncidentCmd::Show { id } => {
            let id = parse_id(&id)?;
            let store = crate::commands::open(s, false)?;
            match incident::show(store.as_ref(), &s.toml.config, id, s.now)? {
                Some(report) => {
                    show(s.format, &report);
                    Ok(Outcome::Ok)
                }
                None => {
                    crate::render::not_found(
                        s.format,
                        &format!(
                            "no incident {id} is recorded; `lineage incident list` shows them"
                        ),
                    );
                    Ok(Outcome::NotFound)
                }
            }
        }
        IncidentCmd::List => {
            let store = crate::commands::open(s, false)?;
            let list = incident::list(store.as_ref(), &s.toml.config, s.now)?;
            render_list(s.format, &list);
            Ok(if list.incidents.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
    }
}

fn parse_id(id: &str) -> Result<u64, CliError> {
    match id.trim().trim_start_matches('#').parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(CliError::new(
            format!("incident `{}` is not an incident number", inert(id)),
            "give the number `incident open` printed, e.g. `lineage incident show 3`; `lineage incident list` shows them",
        )),
    }
}

fn open(args: OpenArgs, s: &Settings) -> Result<Outcome, CliError> {
    let given: Vec<(QueryKind, &String)> = [
        (QueryKind::Base, &args.base),
        (QueryKind::Cve, &args.cve),
        (QueryKind::Package, &args.package),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let [(kind, value)] = given[..] else {
        return Err(CliError::new(
            if given.is_empty() {
                "an incident needs one question: `--base`, `--cve` or `--package`".to_string()
            } else {
                format!(
                    "an incident answers one question, and {} were given",
                    given
                        .iter()
                        .map(|(k, _)| format!("`--{}`", k.name()))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            },
            "give exactly one of `--base DIGEST|NAME:TAG`, `--cve ID` or `--package PURL`; open another incident for another question",
        ));
    };
    // Everything is checked before the ledger is opened: bad input writes nothing.
    let input = OpenInput {
        title: incident::check_title(&args.title)?,
        kind,
        value: value.clone(),
        drill: args.drill,
        by: s.actor(args.actor.by.as_deref())?,
    };
    incident::check_query(kind, value)?;
    let mut store = crate::commands::open_write(s, false)?;
    match incident::open(store.as_mut(), &s.toml.config, input, s.now)? {
        Opened::Opened(report) => {
            opened(s.format, &report);
            Ok(Outcome::Ok)
        }
        Opened::NothingAffected { query, not_scanned } => {
            let mut message = format!(
                "`lineage affected --{} {}` answers nothing running now, so no incident was opened (nothing written)",
                query.kind,
                inert(&query.value)
            );
            if !not_scanned.is_empty() {
                message.push_str(&format!(
                    "; {} production placement(s) have no recent scan and are not known to be clean (`lineage vulns`)",
                    not_scanned.len()
                ));
            }
            crate::render::not_found(s.format, &message);
            Ok(Outcome::NotFound)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

fn name(r: &IncidentReport) -> String {
    format!(
        "incident {}{}: {}",
        r.id,
        if r.drill { " (drill)" } else { "" },
        inert(&r.title)
    )
}

fn asked(r: &IncidentReport) -> String {
    format!("--{} {}", r.query.kind, inert(&r.query.value))
}

fn call(owners: &Owners) -> String {
    let mut out = owners.owner.clone().unwrap_or_else(|| "(no owner)".into());
    let mut others = Vec::new();
    if let Some(b) = &owners.backup_owner {
        others.push(format!("backup {b}"));
    }
    if let Some(e) = &owners.emergency_approver {
        others.push(format!("emergency approver {e}"));
    }
    if !others.is_empty() {
        out.push_str(&format!(" ({})", others.join(", ")));
    }
    out
}

fn opened(format: Format, r: &IncidentReport) {
    if format == Format::Json {
        return json(r);
    }
    println!("opened {} (ledger entry {})", name(r), r.index);
    println!("  asked     lineage affected {}", asked(r));
    println!(
        "  affected  {} environment(s) of {} service(s), production first:",
        r.counts.envs, r.counts.services
    );
    let rows: Vec<[String; 3]> = r
        .services
        .iter()
        .map(|s| {
            [
                format!("    {}", s.service),
                s.envs
                    .iter()
                    .map(|e| format!("{} ({})", e.env, short(&e.affected_digest)))
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("call {}", call(&s.owners)),
            ]
        })
        .collect();
    print!("{}", crate::render::aligned(&rows));
    for n in &r.not_scanned {
        println!(
            "  not checked: {} in {} runs {} ({}): not known to be clean",
            n.service,
            n.env,
            short(&n.digest),
            n.reason
        );
    }
    println!("  follow it with `lineage incident show {}`", r.id);
}

fn show(format: Format, r: &IncidentReport) {
    if format == Format::Json {
        return json(r);
    }
    println!("{}", name(r));
    println!("  asked     lineage affected {}", asked(r));
    println!("  opened    {} by {}", r.opened_at, r.opened_by);
    let progress = format!(
        "{} of {} environment(s) fixed, {} of {} service(s)",
        r.counts.envs_fixed, r.counts.envs, r.counts.services_fixed, r.counts.services
    );
    match r.closed_at {
        Some(at) => println!(
            "  status    closed at {at}, {} after opening; {progress}",
            duration(r.elapsed_secs)
        ),
        None => println!(
            "  status    open for {}; {progress}",
            duration(r.elapsed_secs)
        ),
    }
    println!();
    println!("timeline");
    let rows: Vec<[String; 3]> = r
        .timeline
        .iter()
        .map(|e| {
            let service = e.service.as_deref().unwrap_or_default();
            let what = match e.event.as_str() {
                "opened" => format!(
                    "opened: {} environment(s) of {} service(s) affected",
                    r.counts.envs, r.counts.services
                ),
                "first_fixed_build" => format!(
                    "{service}: first fixed build {}",
                    short(e.digest.as_deref().unwrap_or_default())
                ),
                "env_fixed" => format!(
                    "{service}: {} fixed{}",
                    e.env.as_deref().unwrap_or_default(),
                    match &e.digest {
                        Some(d) => format!(" by {}", short(d)),
                        None => " (placement ended)".into(),
                    }
                ),
                "closed" => "closed: every environment fixed".into(),
                other => other.to_string(),
            };
            [
                format!("  +{}", duration(e.elapsed_secs)),
                e.at.to_string(),
                what,
            ]
        })
        .collect();
    print!("{}", crate::render::aligned(&rows));
    println!();
    println!("services");
    for s in &r.services {
        service(s);
    }
}

fn service(s: &ServiceProgress) {
    match s.elapsed_secs {
        Some(secs) => println!("  {}  fixed in {}", s.service, duration(secs)),
        None => println!("  {}  open: call {}", s.service, call(&s.owners)),
    }
    let mut rows: Vec<[String; 2]> = Vec::new();
    if let Some(b) = &s.first_fixed_build {
        rows.push([
            "    first fixed build".into(),
            format!("{} at +{}", short(&b.digest), duration(b.elapsed_secs)),
        ]);
    }
    for e in &s.envs {
        let running = match &e.running {
            Some(d) => format!("runs {}", short(d)),
            None => "placement ended".into(),
        };
        let state = match e.elapsed_secs {
            Some(secs) => match &e.fixed_by {
                Some(by) if e.running.as_ref() == Some(by) => {
                    format!("fixed at +{} by {}", duration(secs), short(by))
                }
                Some(by) => format!(
                    "fixed at +{} by {} ({running} now)",
                    duration(secs),
                    short(by)
                ),
                None => format!("fixed at +{} (placement ended)", duration(secs)),
            },
            None if e.status == "unverified" => format!(
                "unverified: {running}; {}",
                e.note.as_deref().unwrap_or("not known to be clean")
            ),
            None if e.running.as_deref() == Some(e.affected_digest.as_str()) => {
                format!("affected: {running}, as at the opening")
            }
            None => format!(
                "affected: {running} (was {} at the opening)",
                short(&e.affected_digest)
            ),
        };
        rows.push([format!("    {}", e.env), state]);
    }
    print!("{}", crate::render::aligned(&rows));
}

fn render_list(format: Format, list: &IncidentList) {
    if format == Format::Json {
        return json(list);
    }
    if list.incidents.is_empty() {
        eprintln!("no incidents are recorded; open one with `lineage incident open --title TEXT --base|--cve|--package …`");
        return;
    }
    let rows: Vec<[String; 7]> = list
        .incidents
        .iter()
        .map(|i| {
            [
                i.id.to_string(),
                i.status.clone(),
                if i.drill { "drill" } else { "incident" }.into(),
                i.opened_at.to_string(),
                duration(i.elapsed_secs),
                format!("{}/{}", i.counts.envs_fixed, i.counts.envs),
                inert(&i.title).into_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::render::table(
            &["ID", "STATUS", "KIND", "OPENED", "ELAPSED", "FIXED", "TITLE"],
            &rows
        )
    );
}
