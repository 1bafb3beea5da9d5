//! Command-line arguments. Only parsing lives here; meaning is given in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lineage",
    version,
    about = "What runs, where it came from, and who fixes it now.",
    long_about = None,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The ledger: an SQLite file path (default ./.lineage/lineage.db).
    // `hide_env_values`: a PostgreSQL URL may carry a password, and `--help` must not show it.
    #[arg(
        long,
        global = true,
        env = "LINEAGE_STORE",
        value_name = "PATH",
        hide_env_values = true
    )]
    pub store: Option<String>,

    /// Settings file (default ./lineage.toml when it exists).
    #[arg(long, global = true, env = "LINEAGE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Send `build record`, `deploy record`, `trace`, `affected` and `running` to a Lineage
    /// server (`lineage serve`) instead of the local ledger; the token is LINEAGE_TOKEN.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Seconds to wait for a registry to connect and to answer each request (default:
    /// `[registry] timeout` in lineage.toml, else 30).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub registry_timeout: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
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
    Trace {
        /// A digest, an image reference (`ghcr.io/acme/api:1.4.2`) or a service name.
        target: String,
        /// Only placements a runtime source (`lineage observe`) sees running now.
        #[arg(long)]
        observed_only: bool,
    },
    /// Every image built on a base, or containing a package or vulnerability, where it runs
    /// now and who owns it.
    Affected(crate::vulns::AffectedArgs),
    /// What runs in each environment now.
    Running {
        #[arg(long)]
        env: Option<String>,
        /// Only placements a runtime source (`lineage observe`) sees running now.
        #[arg(long)]
        observed_only: bool,
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
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Register a service and its owners.
    Add {
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
        name: String,
        #[command(flatten)]
        owners: OwnerArgs,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Show a service, its owners and the history of ownership changes.
    Show { name: String },
    /// List services and owners.
    List,
    /// Import a YAML or CSV table of services.
    Import {
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
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub backup_owner: Option<String>,
    #[arg(long)]
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
    Record(BuildArgs),
    /// Run the build gate on the same flags (plus CI variables), or on a recorded `--digest`.
    Check(BuildArgs),
    /// What changed between two builds of a service; `--expect base-only` checks a rebuild.
    Diff(crate::freshness::DiffArgs),
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
    #[arg(long = "base-pulled-at")]
    pub base_pulled_at: Vec<String>,
    #[arg(long)]
    pub repo: Option<String>,
    /// Branch or ref.
    #[arg(long)]
    pub branch: Option<String>,
    /// Full commit id.
    #[arg(long)]
    pub commit: Option<String>,
    #[arg(long)]
    pub started_at: Option<String>,
    #[arg(long)]
    pub finished_at: Option<String>,
    #[arg(long)]
    pub ci_system: Option<String>,
    #[arg(long)]
    pub ci_job: Option<String>,
    #[arg(long)]
    pub ci_run_id: Option<String>,
    #[arg(long)]
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
    /// `--env`, `--output`, `--policy-dir`, `--allow-failures`, `--sign-key`.
    #[command(flatten)]
    pub gate: crate::gates::BuildGateArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeployCmd {
    /// Record that a digest was deployed to an environment.
    Record {
        /// The deployed image, pinned: `REPOSITORY@sha256:…`.
        #[arg(long)]
        image: String,
        #[arg(long)]
        env: String,
        /// Who deployed.
        #[arg(long)]
        by: String,
        #[arg(long)]
        approved_by: Option<String>,
        /// Change ticket URL.
        #[arg(long)]
        ticket: Option<String>,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
        /// A deliberate rollback to an older build (rule D013 lets it pass).
        #[arg(long)]
        rollback: bool,
        /// `--output`, `--policy-dir` for the deploy gate this runs first.
        #[command(flatten)]
        check: crate::gates::CheckArgs,
    },
    /// Run the deploy gate: owner, environment, approval, pinning, provenance, policies.
    Check(crate::gates::DeployCheckArgs),
    /// Record that a service no longer runs in an environment.
    End(crate::runtime::EndArgs),
}
