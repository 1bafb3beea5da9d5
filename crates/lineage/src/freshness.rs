//! `lineage base refresh`, `lineage base history`, `lineage report stale` and
//! `lineage build diff`: base-image freshness at the edge. The decisions live in
//! `lineage_core::freshness`; this module parses flags, talks to registries and webhooks, and
//! prints what `freshness_render` renders.

use std::cell::RefCell;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use lineage_core::freshness::{self, BaseTag, StaleOptions};
use lineage_registry::{ImageDetails, Platform};

use crate::args::{ActorArgs, Format, FormatChoice};
use crate::freshness_render;
use crate::registry::RegistryOpts;
use crate::settings::{self, Settings};
use crate::{CliError, Outcome};

/// `lineage base refresh` and `lineage base history` (flattened into `lineage base`).
#[derive(Debug, Subcommand)]
pub enum BaseFreshnessCmd {
    /// Resolve every base tag used by recorded builds in its registry now, and record the
    /// digest each points at. A tag that cannot be resolved is reported and skipped.
    Refresh {
        #[command(flatten)]
        registry: RegistryOpts,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Every digest a base tag has pointed at, newest first.
    History {
        /// The base tag, `NAME:TAG` (e.g. `python:3.12-slim`).
        base: String,
    },
}

/// `lineage report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Services running on an outdated base image, with owners and the rebuild command.
    Stale(StaleArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lineage report stale --min-days 7\n  lineage report stale --format markdown -o stale.md\n  lineage report stale --format slack --post https://hooks.slack.com/services/…\n  lineage report stale --email-to team@acme.dev --smtp smtp://mail.acme.dev:587"
)]
pub struct StaleArgs {
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Leave out services fewer than N days behind.
    #[arg(long, value_name = "N")]
    pub min_days: Option<String>,
    /// Exit 1 when anything is more than N days behind, or could not be assessed.
    #[arg(long, value_name = "N")]
    pub fail_after: Option<String>,
    /// With `--fail-after`: do not fail on images whose base could not be assessed.
    #[arg(long, requires = "fail_after")]
    pub allow_unassessed: bool,
    /// Only placements a runtime source (`lineage observe`) sees running now.
    #[arg(long)]
    pub observed_only: bool,
    /// Write the report (in `--format`) to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Send the Slack/Mattermost payload to this incoming-webhook URL.
    #[arg(long, value_name = "URL")]
    pub post: Option<String>,
    /// Email the report (plain text, with the Markdown table as an alternative) to these
    /// addresses (repeatable).
    #[arg(long = "email-to", value_name = "ADDR", num_args = 1..)]
    pub email_to: Vec<String>,
    /// The SMTP relay: `smtp://[USER@]HOST[:PORT]` (STARTTLS, except to loopback) or
    /// `smtps://…`; the password is LINEAGE_SMTP_PASSWORD.
    #[arg(long, value_name = "URL", default_value = crate::email::DEFAULT_SMTP, requires = "email_to")]
    pub smtp: String,
    /// The sender of the emailed report.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "lineage@localhost",
        requires = "email_to"
    )]
    pub email_from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expect {
    /// Only the base digests changed: same commit, Dockerfile and base tags.
    BaseOnly,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier build: a digest or a pinned or tagged image reference.
    pub old: String,
    /// The later build.
    pub new: String,
    /// Exit 1 unless the change is of this kind.
    #[arg(long, value_enum)]
    pub expect: Option<Expect>,
}

/// Pretty JSON with a final newline, as `json` prints it.
fn pretty<T: serde::Serialize>(value: &T) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("reports serialise")
    )
}

pub fn base(cmd: BaseFreshnessCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        BaseFreshnessCmd::Refresh { registry, actor } => refresh(registry, actor, s),
        BaseFreshnessCmd::History { base } => {
            let tag = BaseTag::parse(&base)?;
            let store = crate::commands::open(s, false)?;
            let report = freshness::history(store.as_ref(), &tag)?;
            if s.format == Format::Json {
                crate::render::json(&report);
            } else if report.digests.is_empty() {
                eprintln!("nothing known about `{}`", report.base);
            } else {
                println!("{}", report.base);
                match report.last_refresh {
                    Some(t) => println!("  registry last checked {t}"),
                    None => println!("  never checked in a registry; history from builds only"),
                }
                for e in &report.digests {
                    let created = e
                        .created
                        .map_or("created unknown".to_string(), |c| format!("created {c}"));
                    println!(
                        "  {}  first seen {}  {created}  (seen by {})",
                        e.digest,
                        e.first_seen,
                        e.seen_by.join(", ")
                    );
                }
            }
            Ok(if report.digests.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
    }
}

/// Platform used to read a base's config and layers when its builds name none.
const DEFAULT_PLATFORM: &str = "linux/amd64";

/// The registries `lineage base refresh` asks: one client per registry host, connected on the
/// first tag of that host. Tokens are cached per client, and a registry that is down (or
/// cannot be connected to) fails once per tag rather than stopping the others.
struct Registries<'a> {
    settings: &'a Settings,
    insecure: &'a [String],
    platform: Platform,
    clients: RefCell<Vec<(String, Result<crate::registry::Connection, String>)>>,
}

impl Registries<'_> {
    /// Clears each connection's progress line before the report is printed.
    fn end_progress(&self) {
        for conn in self
            .clients
            .borrow()
            .iter()
            .filter_map(|(_, c)| c.as_ref().ok())
        {
            conn.end_progress();
        }
    }
}

impl freshness::TagResolver for Registries<'_> {
    fn resolve(&self, tag: &BaseTag) -> Result<ImageDetails, String> {
        let host = tag.name.registry().to_string();
        let mut clients = self.clients.borrow_mut();
        if !clients.iter().any(|(h, _)| *h == host) {
            let conn = crate::registry::connect(self.settings, self.insecure, &host)
                .map_err(|e| e.message);
            clients.push((host.clone(), conn));
        }
        let (_, conn) = clients
            .iter()
            .find(|(h, _)| *h == host)
            .expect("inserted above");
        match conn {
            Err(e) => Err(e.clone()),
            Ok(conn) => conn
                .client
                .read_image(&tag.image_ref(), &self.platform)
                .map_err(|e| e.to_string()),
        }
    }
}

fn refresh(registry: RegistryOpts, actor: ActorArgs, s: &Settings) -> Result<Outcome, CliError> {
    let insecure = crate::registry::parse_insecure(&registry)?;
    let by = s.actor(actor.by.as_deref())?;
    let mut store = crate::commands::open_write(s, false)?;
    let registries = Registries {
        settings: s,
        insecure: &insecure,
        platform: Platform::parse(DEFAULT_PLATFORM).expect("constant platform"),
        clients: RefCell::new(Vec::new()),
    };
    let bars = crate::progress::Bars::new(s);
    let report = freshness::refresh(store.as_mut(), &registries, &bars, Some(&by), s.now);
    drop(bars);
    registries.end_progress();
    let report = report?;
    if s.format == Format::Json {
        crate::render::json(&report);
    } else {
        if report.tags.is_empty() {
            println!("no base tags to refresh: no recorded build names a base by tag");
        }
        for t in &report.tags {
            match t.status {
                "new" => println!(
                    "new        {}  {}{}",
                    t.base,
                    t.digest.as_deref().unwrap_or(""),
                    t.previous
                        .as_ref()
                        .map_or(String::new(), |p| format!("  (was {p})"))
                ),
                "unchanged" => println!(
                    "unchanged  {}  {}",
                    t.base,
                    t.digest.as_deref().unwrap_or("")
                ),
                _ => {}
            }
        }
        for t in report.tags.iter().filter(|t| t.status == "failed") {
            eprintln!(
                "warning: cannot refresh {}: {}",
                t.base,
                t.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
    // A tag that could not be checked is not an all-clear: the refresh failed for it (the
    // others' answers are recorded).
    Ok(if report.tags.iter().any(|t| t.status == "failed") {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}

/// Parses a whole number of days, naming the flag and showing the right form.
fn days(value: Option<&str>, flag: &str) -> Result<Option<u32>, CliError> {
    value
        .map(|v| {
            v.parse::<u32>().map_err(|_| {
                CliError::new(
                    format!("{flag} `{v}` is not a whole number of days"),
                    format!("write a number of days, e.g. `{flag} 7`"),
                )
            })
        })
        .transpose()
}

/// Checks a webhook URL. Plain HTTP is allowed only to loopback: a webhook URL is a secret,
/// and on plain HTTP anyone on the path could read and reuse it.
fn webhook_url(url: &str) -> Result<String, CliError> {
    let bad = |problem: &str| {
        CliError::new(
            format!("--post `{url}` {problem}"),
            "pass the incoming-webhook URL, e.g. `--post https://hooks.slack.com/services/T000/B000/XXXX`",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host_only = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    if host_only.is_empty() {
        return Err(bad("has no host"));
    }
    match scheme {
        "https" => Ok(url.to_string()),
        "http" => {
            let loopback = host_only == "localhost"
                || host_only
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(url.to_string())
            } else {
                Err(bad("uses plain HTTP, which is allowed only to loopback"))
            }
        }
        _ => Err(bad("is neither https:// nor http://")),
    }
}

pub fn report(cmd: ReportCmd, s: &Settings) -> Result<Outcome, CliError> {
    let ReportCmd::Stale(args) = cmd;
    let options = StaleOptions {
        env: args
            .env
            .as_deref()
            .map(|e| s.toml.config.environment(e))
            .transpose()?,
        min_days: days(args.min_days.as_deref(), "--min-days")?.unwrap_or(0),
        fail_after: days(args.fail_after.as_deref(), "--fail-after")?,
        allow_unassessed: args.allow_unassessed,
        observed_only: args.observed_only,
    };
    let post = args.post.as_deref().map(webhook_url).transpose()?;
    let relay = if args.email_to.is_empty() {
        None
    } else {
        crate::email::check_addresses(&args.email_from, &args.email_to)?;
        Some(crate::email::parse_relay(&args.smtp)?)
    };
    crate::gates::refuse_format_as_file(args.output.as_deref())?;
    let store = crate::commands::open(s, false)?;
    let report = freshness::stale(store.as_ref(), &s.toml.config, &options, s.now)?;
    let payload = freshness_render::slack_payload(&report);
    let text = match s.format_choice {
        FormatChoice::Markdown => freshness_render::render_markdown(&report),
        FormatChoice::Json => pretty(&report),
        FormatChoice::Html => freshness_render::render_html(&report),
        FormatChoice::Slack => pretty(&payload),
        // The text report has no colour: `human` and `plain` are the same.
        _ => freshness_render::render_text(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, &text).map_err(|e| {
            CliError::new(
                format!("cannot write the report to `{}`: {e}", path.display()),
                "pass a writable path to `-o`",
            )
        })?,
        None => print!("{text}"),
    }
    if let Some(url) = post {
        let status = post_json(s, &url, &payload.to_string())?;
        if !(200..300).contains(&status) {
            return Err(CliError::new(
                format!("posting the report to `{url}` failed: HTTP {status}"),
                "check the webhook URL and that the webhook is still enabled",
            ));
        }
        eprintln!("posted the report to {url} (HTTP {status})");
    }
    if let Some(relay) = relay {
        crate::email::send(
            &relay,
            s.env.get(settings::ENV_SMTP_PASSWORD).map(String::as_str),
            crate::email::Mail {
                from: &args.email_from,
                to: &args.email_to,
                subject: freshness_render::email_subject(&report),
                text: freshness_render::render_text(&report),
                markdown: freshness_render::render_markdown(&report),
            },
        )?;
        eprintln!(
            "emailed the report to {} through {}:{}",
            args.email_to.join(", "),
            relay.host,
            relay.port
        );
    }
    Ok(if report.fails {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}

/// POSTs `body` as JSON and returns the HTTP status. Uses the same ureq + rustls stack as
/// the registry client, so it adds nothing to compile.
fn post_json(s: &Settings, url: &str, body: &str) -> Result<u16, CliError> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(provider)
        .build();
    // The proxy comes from the variables settings declares, never from ureq's own lookup.
    let proxy = [settings::ENV_HTTPS_PROXY, settings::ENV_HTTPS_PROXY_LOWER]
        .iter()
        .find_map(|n| s.env.get(*n).filter(|v| !v.is_empty()))
        .filter(|_| url.starts_with("https://"))
        .map(|p| ureq::Proxy::new(p))
        .transpose()
        .map_err(|e| CliError::new(format!("bad HTTPS_PROXY: {e}"), "fix or unset HTTPS_PROXY"))?;
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .proxy(proxy)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| {
            CliError::new(
                format!("posting the report to `{url}` failed: {e}"),
                "check the webhook URL and the network",
            )
        })?;
    Ok(response.status().as_u16())
}

pub fn build_diff(args: DiffArgs, s: &Settings) -> Result<Outcome, CliError> {
    let old = freshness::BuildRef::parse(&args.old, "OLD")?;
    let new = freshness::BuildRef::parse(&args.new, "NEW")?;
    let store = crate::commands::open(s, false)?;
    let diff = freshness::diff_refs(store.as_ref(), &old, &new)?;
    let expect = args.expect == Some(Expect::BaseOnly);
    if s.format == Format::Json {
        crate::render::json(&diff);
    } else {
        print!("{}", freshness_render::render_diff_text(&diff, expect));
    }
    Ok(if expect && !diff.base_only.holds {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}
