//! Command-line arguments. Only parsing lives here; meaning is given in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lineage",
    version,
    about = "What runs, where it came from, and who fixes it now.",
    long_about = None,
    disable_help_subcommand = true,
    after_help = "Start with `lineage init` in your repository, then `lineage service add`; \
                  `lineage <COMMAND> --help` shows each command's options and examples."
)]
pub struct Cli {
    /// The ledger: an SQLite file (default ./.lineage/lineage.db) or postgres://USER@HOST:PORT/DB.
    // `hide_env_values`: a PostgreSQL URL may carry a password, and `--help` must not show it.
    #[arg(
        long,
        global = true,
        env = "LINEAGE_STORE",
        value_name = "PATH|URL",
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub store: Option<String>,

    /// Settings file (default: the nearest lineage.toml up to the repository root).
    #[arg(
        long,
        global = true,
        env = "LINEAGE_CONFIG",
        value_name = "PATH",
        help_heading = GLOBAL
    )]
    pub config: Option<PathBuf>,

    /// Output format: human or json everywhere; gate commands also sarif, github, plain,
    /// codequality;
    /// `report stale` also plain, markdown, html, slack.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = FormatChoice::Human,
        value_name = "FORMAT",
        help_heading = GLOBAL
    )]
    pub format: FormatChoice,

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN",
        help_heading = GLOBAL
    )]
    pub color: ColorChoice,

    /// No progress bars on stderr.
    #[arg(long, short = 'q', global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// Seconds to wait for a registry to connect and to answer each request (default:
    /// `[registry] timeout` in lineage.toml, else 30).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=3600),
        help_heading = GLOBAL
    )]
    pub registry_timeout: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

/// The help heading global options are listed under, apart from each command's own.
const GLOBAL: &str = "Global options";

/// `--format` as given. Every command prints `human` or `json`; a few print more (see
/// [`Command::formats`]), and any other choice is refused before the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatChoice {
    /// For people; colour on a terminal.
    Human,
    /// Versioned JSON (`"schema": 1`); errors are JSON on stderr too.
    Json,
    /// SARIF 2.1.0 (gate commands), for code-scanning UIs.
    Sarif,
    /// GitHub Actions workflow commands (gate commands).
    Github,
    /// ASCII without colour (gate commands, `report stale`), for CI logs and email.
    Plain,
    /// GitLab code quality JSON (gate commands), for merge requests.
    Codequality,
    /// Markdown (`report stale`).
    Markdown,
    /// A self-contained HTML page (`report stale`).
    Html,
    /// A Slack / Mattermost incoming-webhook payload (`report stale`).
    Slack,
    /// Graphviz DOT of the lineage picture (`trace`).
    Dot,
    /// A Mermaid `flowchart LR` of the lineage picture (`trace`).
    Mermaid,
}

impl FormatChoice {
    /// The format of results and errors that are not a report of their own: JSON only when
    /// JSON was asked for.
    pub fn base(self) -> Format {
        match self {
            FormatChoice::Json => Format::Json,
            _ => Format::Human,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FormatChoice::Human => "human",
            FormatChoice::Json => "json",
            FormatChoice::Sarif => "sarif",
            FormatChoice::Github => "github",
            FormatChoice::Plain => "plain",
            FormatChoice::Codequality => "codequality",
            FormatChoice::Markdown => "markdown",
            FormatChoice::Html => "html",
            FormatChoice::Slack => "slack",
            FormatChoice::Dot => "dot",
            FormatChoice::Mermaid => "mermaid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour, even when piped or NO_COLOR is set.
    Always,
    /// Never colour.
    Never,
}

/// The format of plain results and errors: what every command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// `--server URL`, on the commands a server runs.
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteArgs {
    /// Run this on a Lineage server (`lineage serve`) instead of the local ledger; the token
    /// is LINEAGE_TOKEN.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

// Parsed once per process and matched once, so boxing the large `build` flags would buy
// nothing but noise in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Services and who owns them.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Record builds.
    #[command(subcommand)]
    Build(BuildCmd),
    /// Record deploys.
    #[command(subcommand)]
    Deploy(DeployCmd),
    /// Everything about one image, digest or service on one screen.
    #[command(
        after_help = "Examples:\n  lineage trace api\n  lineage trace ghcr.io/acme/api:1.8.0\n  lineage trace sha256:4f1c…"
    )]
    Trace {
        /// A digest, an image reference (`ghcr.io/acme/api:1.4.2`) or a service name.
        target: String,
        /// Only placements a runtime source (`lineage observe`) sees running now.
        #[arg(long)]
        observed_only: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Every image built on a base, or containing a package or vulnerability, where it runs
    /// now and who owns it.
    #[command(
        after_help = "Examples:\n  lineage affected --base python:3.12-slim\n  lineage affected --base docker.io/library/python@sha256:…\n  lineage affected --cve CVE-2024-5535\n  lineage affected --package 'openssl@<3.0.15'"
    )]
    Affected(crate::vulns::AffectedArgs),
    /// Deploy a digest to the next environment on the promotion path, through the deploy gate.
    Promote(crate::lifecycle::PromoteArgs),
    /// Go back to the last known-good digest of a service in an environment.
    Rollback(crate::lifecycle::RollbackArgs),
    /// Every deploy of a service: where, when, by whom, how it turned out, until when.
    History(crate::lifecycle::HistoryArgs),
    /// Point tags at a recorded build.
    Tag(crate::lifecycle::TagArgs),
    /// What runs in each environment now.
    #[command(
        after_help = "Examples:\n  lineage running\n  lineage running --env production --format json"
    )]
    Running {
        /// Only this environment (default: all).
        #[arg(long)]
        env: Option<String>,
        /// Only placements a runtime source (`lineage observe`) sees running now.
        #[arg(long)]
        observed_only: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Record what runs: a Kubernetes PodList (`kubectl get pods -A -o json`) or an inventory.
    Observe(crate::runtime::ObserveArgs),
    /// Where what runs differs from what the ledger records; `--reconcile` proposes fixes.
    Drift(crate::runtime::DriftArgs),
    /// SBOMs of images: which packages each digest holds.
    #[command(subcommand)]
    Sbom(crate::vulns::SbomCmd),
    /// Vulnerability scans of images (Trivy, Grype).
    #[command(subcommand)]
    Scan(crate::vulns::ScanCmd),
    /// Findings of running images grouped by owner, base apart from app, and what was not
    /// scanned recently.
    Vulns(crate::vulns::VulnsArgs),
    /// Incidents and drills: open one on a base, a CVE or a package, follow each service and
    /// environment until it is fixed, with elapsed times and who to call.
    #[command(subcommand)]
    Incident(crate::incident::IncidentCmd),
    /// Seed a fresh ledger with a small team's story and walk through a CVE morning.
    Demo,
    /// The tamper-evident log: checkpoints, proofs and audits.
    #[command(subcommand)]
    Log(crate::log::LogCmd),
    /// Verify signatures: DSSE envelopes, Sigstore bundles, cosign signatures.
    Verify(crate::verify::VerifyArgs),
    /// Signing keys.
    #[command(subcommand)]
    Key(crate::verify::KeyCmd),
    /// Base images Lineage knows, for recognising builds on them by their layers.
    #[command(subcommand)]
    Base(crate::registry::BaseCmd),
    /// What a registry (or an OCI layout) holds about an image: digests, labels, base
    /// annotations, attestations, signatures and referrers.
    Inspect(crate::registry::InspectArgs),
    /// Attestations: sign and export them in the ledger, push and pull them in registries.
    #[command(subcommand)]
    Attest(crate::gates_admin::AttestAll),
    /// Approve a digest for an environment, as yourself (`[gates] approvals = "recorded"`
    /// accepts only these approvals).
    Approve(crate::gates::ApproveArgs),
    /// Waivers: accept one rule for one service until a date.
    #[command(subcommand)]
    Exception(crate::gates_admin::ExceptionCmd),
    /// Mark a digest as withdrawn: deploy checks refuse it.
    Retire(crate::gates_admin::RetireArgs),
    /// Rego policies for the gates.
    #[command(subcommand)]
    Policy(crate::gates_admin::PolicyCmd),
    /// Reports: services running on outdated base images.
    #[command(subcommand)]
    Report(crate::freshness::ReportCmd),
    /// Run the team server: REST API, dashboard, admission webhook, metrics.
    Serve(crate::serve::ServeArgs),
    /// API tokens for the server (stored hashed; the secret is shown once).
    #[command(subcommand)]
    Token(crate::serve::TokenCmd),
    /// Kubernetes set-up for the admission webhook.
    #[command(subcommand)]
    K8s(crate::serve::K8sCmd),
    /// Ledger administration: copy a ledger between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(crate::store_cmd::StoreCmd),
    /// Set up Lineage in this repository: a commented lineage.toml, an example policy, and the
    /// CI snippet for the CI system found here.
    Init(crate::adopt::InitArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  lineage completions bash > /etc/bash_completion.d/lineage\n  lineage completions zsh > \"${fpath[1]}/_lineage\"\n  lineage completions fish > ~/.config/fish/completions/lineage.fish"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: crate::adopt::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    #[command(
        after_help = "Examples:\n  lineage man | man -l -\n  lineage man --out-dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write `lineage.1`, `lineage-build-record.1`, … here instead of printing `lineage.1`.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Register a service and its owners.
    #[command(
        after_help = "Example:\n  lineage service add api --owner priya@acme.dev --backup-owner jonas@acme.dev \\\n      --repo https://github.com/acme/api --image ghcr.io/acme/api"
    )]
    Add {
        /// The service's name (lowercase letters, digits, `-`).
        name: String,
        #[command(flatten)]
        owners: OwnerArgs,
        /// Source repository URL.
        #[arg(long)]
        repo: Option<String>,
        /// Image repositories this service publishes (repeatable).
        #[arg(long = "image", value_name = "REPOSITORY", num_args = 1..)]
        images: Vec<String>,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Change a service's owner, backup owner or emergency approver.
    SetOwner {
        /// The service.
        name: String,
        #[command(flatten)]
        owners: OwnerArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Show a service, its owners and the history of ownership changes.
    Show {
        /// The service.
        name: String,
    },
    /// List services and owners.
    List,
    /// Import a YAML or CSV table of services.
    Import {
        /// A YAML file (`services:` list) or a CSV table.
        file: PathBuf,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Rename a service; history stays, its placements end.
    Rename(crate::runtime::RenameArgs),
    /// Remove (decommission) a service; history stays, its placements end.
    Remove(crate::runtime::RemoveArgs),
}

#[derive(Debug, Args)]
pub struct OwnerArgs {
    /// Who owns the service and fixes it first.
    #[arg(long, value_name = "IDENTITY")]
    pub owner: Option<String>,
    /// Who fixes it when the owner is away.
    #[arg(long, value_name = "IDENTITY")]
    pub backup_owner: Option<String>,
    /// Who may approve an emergency deploy.
    #[arg(long, value_name = "IDENTITY")]
    pub emergency_approver: Option<String>,
}

#[derive(Debug, Args)]
pub struct ActorArgs {
    /// Who makes the change (default: LINEAGE_ACTOR, then the CI actor, then $USER).
    #[arg(long = "by", value_name = "IDENTITY")]
    pub by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BuildCmd {
    /// Record a build: the image digest, its bases, its source and where it was built.
    #[command(after_help = BUILD_RECORD_EXAMPLES)]
    Record(BuildRecordArgs),
    /// Run the build gate on the same flags (plus CI variables), or on a recorded `--digest`.
    #[command(
        after_help = "Examples:\n  lineage build check --image ghcr.io/acme/api@sha256:… --base python:3.12-slim@sha256:… --dockerfile Dockerfile\n  lineage build check --digest sha256:… --format sarif -o lineage.sarif"
    )]
    Check(BuildArgs),
    /// What changed between two builds of a service; `--expect base-only` checks a rebuild.
    Diff(crate::freshness::DiffArgs),
}

const BUILD_RECORD_EXAMPLES: &str = "Examples:
  # in CI, after the push (commit, branch and CI run come from the CI's variables)
  lineage build record --image ghcr.io/acme/api:1.8.0@sha256:… --base python:3.12-slim@sha256:…
  # from what the builder wrote
  docker buildx build --push --metadata-file meta.json -t ghcr.io/acme/api:1.8.0 .
  lineage build record --image ghcr.io/acme/api:1.8.0 --buildx-metadata meta.json
  lineage build record --image ghcr.io/acme/api:1.8.0 --digest-file digest.txt   # kaniko, buildah";

/// `build record`: the build's flags, and `--server`.
#[derive(Debug, Args)]
pub struct BuildRecordArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The built image, pinned: `REPOSITORY@sha256:…` (a tag may be included).
    #[arg(long)]
    pub image: Option<String>,
    /// The image digest, when `--image` has none.
    #[arg(long)]
    pub digest: Option<String>,
    /// Tags pushed for this digest (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// The service (default: the service that lists the image repository).
    #[arg(long)]
    pub service: Option<String>,
    /// A base image `NAME[:TAG][@DIGEST]`, once per `FROM`; the last is the final stage.
    #[arg(long = "base")]
    pub bases: Vec<String>,
    /// When each base was pulled (once, or once per `--base`).
    #[arg(long = "base-pulled-at", value_name = "TIME")]
    pub base_pulled_at: Vec<String>,
    /// Source repository URL (default: from the CI's variables).
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Branch or ref.
    #[arg(long)]
    pub branch: Option<String>,
    /// Full commit id.
    #[arg(long)]
    pub commit: Option<String>,
    /// When the build started (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub started_at: Option<String>,
    /// When the build finished (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub finished_at: Option<String>,
    /// The CI system (default: detected from its variables, e.g. `github-actions`).
    #[arg(long, value_name = "NAME")]
    pub ci_system: Option<String>,
    /// The CI job or workflow (default: detected).
    #[arg(long, value_name = "NAME")]
    pub ci_job: Option<String>,
    /// The CI run's id (default: detected).
    #[arg(long, value_name = "ID")]
    pub ci_run_id: Option<String>,
    /// A link to the CI run (default: detected).
    #[arg(long, value_name = "URL")]
    pub ci_url: Option<String>,
    /// The identity that built the image (CI identity or person).
    #[arg(long)]
    pub builder: Option<String>,
    /// `os/arch[/variant]`.
    #[arg(long)]
    pub platform: Option<String>,
    /// Path to the Dockerfile; its SHA-256 is recorded.
    #[arg(long)]
    pub dockerfile: Option<PathBuf>,
    /// Show what was detected from the CI environment and flags, and write nothing.
    #[arg(long)]
    pub print_detected: bool,
    /// `--from-registry REF` and `--insecure-registry HOST`.
    #[command(flatten)]
    pub registry: crate::registry::FromRegistryArgs,
    /// `--buildx-metadata FILE` and `--digest-file FILE`.
    #[command(flatten)]
    pub builder_files: crate::adopt::BuilderFileArgs,
    /// `--env`, `--output`, `--policy-dir`, `--allow-failures`, `--sign-key`.
    #[command(flatten)]
    pub gate: crate::gates::BuildGateArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeployCmd {
    /// Record that a digest was deployed to an environment.
    #[command(
        after_help = "Example:\n  lineage deploy record --image ghcr.io/acme/api@sha256:… --env production \\\n      --by jonas@acme.dev --approved-by maya@acme.dev --ticket https://tracker.acme.dev/CHG-1042"
    )]
    Record {
        /// The deployed image, pinned: `REPOSITORY@sha256:…`.
        #[arg(long)]
        image: String,
        /// The environment it was deployed to.
        #[arg(long)]
        env: String,
        /// Who deployed.
        #[arg(long, value_name = "IDENTITY")]
        by: String,
        /// Who approved the deploy.
        #[arg(long, value_name = "IDENTITY")]
        approved_by: Option<String>,
        /// Change ticket URL.
        #[arg(long, value_name = "URL")]
        ticket: Option<String>,
        /// When (default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// A deliberate rollback to an older build (rule D013 lets it pass).
        #[arg(long)]
        rollback: bool,
        /// `--config-file FILE`, `--config-digest [NAME=]DIGEST`: the release's configuration.
        #[command(flatten)]
        config: crate::lifecycle::ConfigArgs,
        /// `--output`, `--policy-dir` for the deploy gate this runs first.
        #[command(flatten)]
        check: crate::gates::CheckArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Run the deploy gate: owner, environment, approval, pinning, provenance, policies.
    #[command(
        after_help = "Example:\n  lineage deploy check --image ghcr.io/acme/api@sha256:… --env production --approved-by maya@acme.dev"
    )]
    Check(crate::gates::DeployCheckArgs),
    /// Record that a service no longer runs in an environment.
    End(crate::runtime::EndArgs),
    /// Record how a deploy turned out: healthy, degraded or failed.
    Outcome(crate::lifecycle::OutcomeArgs),
}

/// The formats every command prints.
const BASE_FORMATS: &[FormatChoice] = &[FormatChoice::Human, FormatChoice::Json];
/// The gate commands' formats.
const GATE_FORMATS: &[FormatChoice] = &[
    FormatChoice::Human,
    FormatChoice::Json,
    FormatChoice::Sarif,
    FormatChoice::Github,
    FormatChoice::Plain,
    FormatChoice::Codequality,
];
/// `report stale`'s formats.
const REPORT_FORMATS: &[FormatChoice] = &[
    FormatChoice::Human,
    FormatChoice::Json,
    FormatChoice::Plain,
    FormatChoice::Markdown,
    FormatChoice::Html,
    FormatChoice::Slack,
];
/// `trace`'s formats: the lineage picture too.
const TRACE_FORMATS: &[FormatChoice] = &[
    FormatChoice::Human,
    FormatChoice::Json,
    FormatChoice::Dot,
    FormatChoice::Mermaid,
];

impl Command {
    /// The `--format` values this command prints: the one table of them.
    pub fn formats(&self) -> &'static [FormatChoice] {
        match self {
            Command::Build(BuildCmd::Record(_) | BuildCmd::Check(_))
            | Command::Deploy(DeployCmd::Record { .. } | DeployCmd::Check(_))
            | Command::Promote(_)
            | Command::Rollback(_) => GATE_FORMATS,
            Command::Report(_) => REPORT_FORMATS,
            Command::Trace { .. } => TRACE_FORMATS,
            _ => BASE_FORMATS,
        }
    }

    /// `--server URL`, on the commands that take it.
    pub fn server(&self) -> Option<&str> {
        let remote = match self {
            Command::Build(BuildCmd::Record(r)) => &r.remote,
            Command::Deploy(DeployCmd::Record { remote, .. }) => remote,
            Command::Deploy(DeployCmd::End(e)) => &e.remote,
            Command::Approve(a) => &a.remote,
            Command::Affected(a) => &a.remote,
            Command::Trace { remote, .. } | Command::Running { remote, .. } => remote,
            _ => return None,
        };
        remote.server.as_deref()
    }
}

/// The commands `--server` works with, as a user types them.
pub const REMOTE_COMMANDS: &str =
    "`build record`, `deploy record`, `deploy end`, `approve`, `trace`, `affected` and `running`";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command, argument and option has a description (and clap's own checks pass).
    #[test]
    fn every_command_and_option_is_described() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "lineage", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() && path != "lineage" {
            missing.push(path.to_string());
        }
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
}
