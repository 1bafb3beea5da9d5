//! Registry commands: `build record --from-registry`, `base add`, `inspect` and
//! `attest push|pull`.
//!
//! The registry is read through `lineage-registry`; this module only turns flags into checked
//! values, maps registry faults to errors a user can act on, and renders the answers. Every
//! registry question is asked before anything is written, so a fault (refused connection,
//! missing credentials, unknown tag, tampered content) leaves the ledger as it was.
//!
//! `build record --from-registry` works by filling the build flags that were not given from
//! what the registry says (digest, tag, `org.opencontainers.image.*` labels and annotations),
//! and then letting the ordinary `build record` path check and record them. That keeps one
//! way of recording a build. This module is the adapter: it reads the image (and, through
//! the `BaseImages` port, the annotated base) from the registry; which flags are filled, which
//! contradict the registry and what the base is are decided by `lineage_core::detect`. Its
//! answer is returned to `build record`, which renders how the base was found and records a
//! newly seen base as a `base` fact in the build's own transaction, so a refused build
//! writes nothing.
//!
//! `attest push` and `attest pull` are adapters the same way: this module resolves the image,
//! attaches through the `Attach` port and pulls the attached artifacts; which stored
//! attestations are pushed, how a pulled one is judged and what `--record` writes are decided
//! by `lineage_core::attest_registry`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Subcommand};
use lineage_core::attest_registry::{self, Attach, PushError, Recorded};
use lineage_core::detect::{self, BaseImages, FromRegistry, Given};
use lineage_model::{BaseSeen, Digest, ImageRef, Repository, Tag};
use lineage_registry::{
    attach, inspect as inspect_source, pull_attached, read_image, Artifact, Attached, Client,
    ClientConfig, DockerConfig, Error as RegistryError, ImageDetails, Inspection, OciLayout,
    Platform, Progress, ProgressFn, Reference, ReferrersVia, RemoteRepository, Statement,
    LINEAGE_PROVENANCE_ARTIFACT_TYPE,
};
use lineage_store::StoreError;
use serde::Serialize;

use crate::args::{ActorArgs, BuildArgs, Format};
use crate::settings::{self, Settings};
use crate::{CliError, Outcome};

// ---------------------------------------------------------------------------------------
// Arguments

/// How to reach registries; every registry command takes these.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryOpts {
    /// A registry (`HOST` or `HOST:PORT`) that may be reached over plain HTTP (repeatable).
    /// Loopback registries always may; everything else needs TLS.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

/// The `build record` flags that read the pushed image from its registry.
#[derive(Debug, Clone, Default, Args)]
pub struct FromRegistryArgs {
    /// Read the digest, tag, labels and base annotations of this pushed image from its
    /// registry; flags that are given must agree with it.
    #[arg(long = "from-registry", value_name = "REF")]
    pub from_registry: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Debug, Subcommand)]
pub enum BaseCmd {
    /// Read a base image from its registry and remember its layers, so that images built on
    /// it are recognised by layer match.
    Add {
        /// The base image, e.g. `docker.io/library/python:3.12-slim`.
        reference: String,
        /// The platform to read from a multi-platform image (default linux/amd64).
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        #[command(flatten)]
        registry: RegistryOpts,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// `base refresh` and `base history` (crate::freshness).
    #[command(flatten)]
    Freshness(crate::freshness::BaseFreshnessCmd),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image (`registry/repository:tag` or `…@sha256:…`); with `--layout`, a tag or a
    /// digest inside the layout.
    pub reference: String,
    /// Read an on-disk OCI image layout instead of a registry.
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// The platform to read from a multi-platform image (default linux/amd64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
}

#[derive(Debug, Subcommand)]
pub enum AttestCmd {
    /// Attach the ledger's attestations for an image's digest to the image in its registry,
    /// as OCI 1.1 artifacts that refer to it.
    Push {
        /// The image; it is resolved to its digest first.
        reference: String,
        #[command(flatten)]
        registry: RegistryOpts,
    },
    /// Fetch the Lineage attestations attached to an image and print them.
    Pull {
        /// The image; it is resolved to its digest first.
        reference: String,
        /// Also store them in the ledger as attestations of the digest.
        #[arg(long)]
        record: bool,
        #[command(flatten)]
        registry: RegistryOpts,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

// ---------------------------------------------------------------------------------------
// Checked inputs and the client

fn parse_ref(input: &str, field: &'static str) -> Result<ImageRef, CliError> {
    ImageRef::parse(input).map_err(|e| CliError::from(e.in_field(field)))
}

pub(crate) fn parse_platform(input: Option<&str>) -> Result<Platform, CliError> {
    match input {
        None => Ok(Platform::linux_amd64()),
        Some(p) => Platform::parse(p).ok_or_else(|| {
            CliError::new(
                format!("--platform `{p}` is not `os/arch[/variant]`"),
                "write e.g. `linux/amd64` or `linux/arm64/v8`",
            )
        }),
    }
}

pub(crate) fn parse_insecure(opts: &RegistryOpts) -> Result<Vec<String>, CliError> {
    opts.insecure_registries
        .iter()
        .map(|h| {
            let ok = !h.is_empty()
                && !h.contains("://")
                && !h.contains('/')
                && !h.contains('@')
                && h.chars().all(|c| c.is_ascii_graphic());
            if ok {
                Ok(h.to_ascii_lowercase())
            } else {
                Err(CliError::new(
                    format!("--insecure-registry `{h}` is not a registry host"),
                    "write the host and port only, e.g. `--insecure-registry registry.internal:5000`",
                ))
            }
        })
        .collect()
}

/// A client for one registry plus what error hints need to know.
pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) docker_config: String,
    /// Whether this connection's progress line is on the terminal now.
    drawn: Arc<AtomicBool>,
}

/// `HOST[:PORT]` names this machine (`localhost`, `127.0.0.0/8`, `::1`): the one place that
/// may be spoken to without TLS (registries, `--server`, the SMTP relay).
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if registry.matches(':').count() > 1 {
        registry
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The proxy for `registry` from the captured environment, unless NO_PROXY exempts it.
/// Loopback registries never go through a proxy.
fn proxy_for(s: &Settings, registry: &str) -> Option<String> {
    if is_loopback(registry) {
        return None;
    }
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| s.env.get(*n).filter(|v| !v.is_empty()).cloned())
    };
    let host = registry.split(':').next().unwrap_or(registry);
    if let Some(no_proxy) = get(&[settings::ENV_NO_PROXY, settings::ENV_NO_PROXY_LOWER]) {
        let exempt = no_proxy.split(',').map(str::trim).any(|entry| {
            let entry = entry.trim_start_matches('.');
            entry == "*"
                || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
        });
        if exempt {
            return None;
        }
    }
    get(&[
        settings::ENV_HTTPS_PROXY,
        settings::ENV_HTTPS_PROXY_LOWER,
        settings::ENV_HTTP_PROXY,
        settings::ENV_HTTP_PROXY_LOWER,
    ])
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as docker looks them up.
fn docker_config_path(s: &Settings) -> Option<PathBuf> {
    if let Some(dir) = s
        .env
        .get(settings::ENV_DOCKER_CONFIG)
        .filter(|d| !d.is_empty())
    {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    s.env
        .get(settings::ENV_HOME)
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

pub(crate) fn connect(
    s: &Settings,
    insecure: &[String],
    registry: &str,
) -> Result<Connection, CliError> {
    let config = ClientConfig {
        insecure_registries: insecure.to_vec(),
        proxy: proxy_for(s, registry),
        connect_timeout: s.registry_timeout,
        request_timeout: s.registry_timeout,
        ..ClientConfig::default()
    };
    let mut client = Client::new(config).map_err(|e| registry_error(e, ""))?;
    let mut shown = "(none: no DOCKER_CONFIG or HOME)".to_string();
    if let Some(path) = docker_config_path(s) {
        shown = path.display().to_string();
        let docker = DockerConfig::load(&path).map_err(|e| registry_error(e, &shown))?;
        client = client.with_docker_config(docker);
    }
    let drawn = Arc::new(AtomicBool::new(false));
    if let Some(progress) = progress_for(s, drawn.clone()) {
        client = client.with_progress(progress);
    }
    Ok(Connection {
        client,
        docker_config: shown,
        drawn,
    })
}

/// Maps a registry fault to an error with the fix: each fault gets its own hint.
pub(crate) fn registry_error(e: RegistryError, docker_config: &str) -> CliError {
    use RegistryError as E;
    let hint = match &e {
        E::ConnectionRefused { registry } => format!(
            "check that a registry listens on `{registry}` and that the host and port are right"
        ),
        E::Unreachable { .. } => "check the registry host name and the network (and HTTPS_PROXY, if one is needed)".into(),
        E::Timeout { .. } => "the registry may be overloaded or behind a firewall; retry, check the network, or wait longer with `--registry-timeout SECONDS` (or `[registry] timeout` in lineage.toml)".into(),
        E::Tls { registry, .. } => format!(
            "if `{registry}` serves plain HTTP, pass `--insecure-registry {registry}`; otherwise check its certificate"
        ),
        E::InsecureNotAllowed { registry } => {
            format!("pass `--insecure-registry {registry}` if it really has no TLS")
        }
        E::AuthenticationRequired { registry, .. } => format!(
            "log in first (`docker login {registry}`); credentials are read from {docker_config}"
        ),
        E::CredentialsRejected { registry, .. } => format!(
            "check the credentials for `{registry}` in {docker_config} (`docker login {registry}` again)"
        ),
        E::Denied { registry, .. } => {
            format!("log in with an account that may read this repository (`docker login {registry}`)")
        }
        E::ManifestUnknown { repository, .. } => format!(
            "check the tag (`skopeo list-tags docker://{repository}`) or pin the digest the push reported"
        ),
        E::NameUnknown { .. } => "check the repository name; it has never been pushed to this registry".into(),
        E::BlobUnknown { .. } => "the registry lost content of this image; push it again".into(),
        E::MalformedManifest { .. } => "the registry serves a manifest that is not valid JSON of the expected shape; push the image again".into(),
        E::UnsupportedMediaType { .. } => "push the image as an OCI or Docker v2 schema 2 manifest (e.g. `skopeo copy --format oci`)".into(),
        E::DigestMismatch { .. } => "the registry or a proxy on the way serves tampered or corrupt content; do not trust this image until that is explained".into(),
        E::TooLarge { .. } => "this is not a manifest Lineage expects; check the reference".into(),
        E::Http { .. } => "check the registry's logs; the request failed on its side".into(),
        E::DockerConfig { .. } => "fix the file, or point DOCKER_CONFIG at a directory with a valid config.json".into(),
        E::CredentialHelper { helper, .. } => {
            format!("check that `docker-credential-{helper}` is installed and logged in")
        }
        E::Token { .. } => "the registry's token service refused or failed; check the credentials".into(),
        E::MalformedAttestation { .. } => "the attachment does not decode; it was not made by Lineage or is corrupt".into(),
        E::Layout { .. } => "pass a directory with an OCI image layout (`index.json` and `blobs/`)".into(),
        E::PlatformNotFound { .. } => "pass `--platform` with one of the listed platforms".into(),
        E::Transport { .. } => "check the registry address and the network".into(),
    };
    CliError::new(e.to_string(), hint)
}

// ---------------------------------------------------------------------------------------
// Progress: drawn on a terminal only, never under JSON or when stderr is piped

fn progress_for(s: &Settings, drawn: Arc<AtomicBool>) -> Option<ProgressFn> {
    if !s.progress() {
        return None;
    }
    Some(Arc::new(move |p: &Progress| {
        let line = match p.total {
            Some(total) if total > 0 => {
                let width = 24u64;
                let filled = (p.done.min(total) * width / total) as usize;
                format!(
                    "{:<12} [{}{}] {}/{}",
                    p.task,
                    "#".repeat(filled),
                    ".".repeat(width as usize - filled),
                    p.done,
                    total
                )
            }
            _ => format!("{:<12} {}", p.task, p.done),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        drawn.store(true, Ordering::Relaxed);
    }))
}

impl Connection {
    /// Clears this connection's progress line, if one was drawn, before a result is printed.
    pub(crate) fn end_progress(&self) {
        if self.drawn.swap(false, Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

// ---------------------------------------------------------------------------------------
// build record --from-registry

/// The annotated base's registry, for `lineage_core::detect`: read for the build's platform.
struct RegistryBases<'a> {
    conn: &'a Connection,
    platform: &'a Platform,
}

impl BaseImages for RegistryBases<'_> {
    fn read(&self, base: &Repository, digest: &Digest) -> Result<ImageDetails, RegistryError> {
        let source = RemoteRepository::new(&self.conn.client, base.clone());
        let read = read_image(&source, &Reference::Digest(digest.clone()), self.platform);
        self.conn.end_progress();
        read
    }
}

/// Fills the `build record` flags that were not given from the image in the registry
/// (`lineage_core::detect::from_registry` decides; this reads the registry and the known
/// bases). Without `--from-registry`, returns the flags as they are and `None`. Writes
/// nothing: the base fact found is recorded with the build, in its transaction.
pub fn fill_from_registry(
    mut args: BuildArgs,
    s: &Settings,
) -> Result<(BuildArgs, Option<FromRegistry>), CliError> {
    let Some(raw) = args.registry.from_registry.clone() else {
        return Ok((args, None));
    };
    let reference = parse_ref(&raw, "--from-registry")?;
    let platform = parse_platform(args.platform.as_deref())?;
    let insecure = parse_insecure(&args.registry.registry)?;
    let given_image = args
        .image
        .as_deref()
        .map(|i| parse_ref(i, "--image"))
        .transpose()?;
    if let Some(given) = &given_image {
        if given.repository != reference.repository {
            return Err(CliError::new(
                format!(
                    "`--image` names `{}` but `--from-registry` names `{}`",
                    given.repository, reference.repository
                ),
                "drop `--image`: `--from-registry` says which image was built",
            ));
        }
    }
    let given_digest = args
        .digest
        .as_deref()
        .map(|d| Digest::parse(d).map_err(|e| CliError::from(e.in_field("--digest"))))
        .transpose()?;
    let given = Given {
        image: given_image,
        digest: given_digest,
        platform: args.platform.clone(),
        repo: args.repo.clone(),
        commit: args.commit.clone(),
        finished_at: args.finished_at.clone(),
        base: args.bases.last().cloned(),
    };

    let conn = connect(s, &insecure, reference.repository.registry())?;
    let source = RemoteRepository::new(&conn.client, reference.repository.clone());
    let image = read_image(&source, &Reference::of(&reference), &platform)
        .map_err(|e| registry_error(e, &conn.docker_config));
    conn.end_progress();
    let image = image?;
    let known = known_bases(s)?;
    let bases = RegistryBases {
        conn: &conn,
        platform: &platform,
    };
    let found = detect::from_registry(&reference, &given, &image, &known, &bases, s.now)
        .map_err(|c| CliError::new(c.to_string(), c.hint()))?;

    let filled = &found.filled;
    args.image = Some(filled.image.to_string());
    let fill = |flag: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *flag = Some(v.clone());
        }
    };
    fill(&mut args.platform, &filled.platform);
    fill(&mut args.repo, &filled.repo);
    fill(&mut args.commit, &filled.commit);
    if let Some(t) = filled.finished_at {
        args.finished_at = Some(t.to_string());
    }
    if let Some(base) = &filled.base {
        args.bases.push(base.to_string());
    }
    Ok((args, Some(found)))
}

/// The bases the ledger knows with their layers, oldest first. No ledger: none.
fn known_bases(s: &Settings) -> Result<Vec<BaseSeen>, CliError> {
    let store = match lineage_store::open_read(&s.store) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(detect::known_bases(store.as_ref())?)
}

// ---------------------------------------------------------------------------------------
// base add

#[derive(Serialize)]
struct BaseReport {
    schema: u32,
    outcome: &'static str,
    kind: &'static str,
    index: Option<u64>,
    name: String,
    tag: Option<String>,
    digest: String,
    layers: usize,
    created: Option<String>,
}

pub fn base(cmd: BaseCmd, s: &Settings) -> Result<Outcome, CliError> {
    let BaseCmd::Add {
        reference,
        platform,
        registry,
        actor,
    } = cmd
    else {
        unreachable!("commands.rs sends `base refresh` and `base history` to crate::freshness")
    };
    let reference = parse_ref(&reference, "REF")?;
    let platform = parse_platform(platform.as_deref())?;
    let insecure = parse_insecure(&registry)?;
    let by = s.actor(actor.by.as_deref())?;
    let conn = connect(s, &insecure, reference.repository.registry())?;
    let source = RemoteRepository::new(&conn.client, reference.repository.clone());
    let details = read_image(&source, &Reference::of(&reference), &platform)
        .map_err(|e| registry_error(e, &conn.docker_config));
    conn.end_progress();
    let details = details?;
    let fact = detect::base_seen(&reference, &details, s.now);
    let mut store = crate::commands::open_write(s, true)?;
    let (outcome, index) = match detect::add_base(store.as_mut(), &fact, &by, s.now)? {
        detect::BaseAdded::Recorded(i) => ("recorded", Some(i)),
        detect::BaseAdded::Unchanged(i) => ("unchanged", Some(i)),
    };
    let report = BaseReport {
        schema: 1,
        outcome,
        kind: "base",
        index,
        name: fact.name.to_string(),
        tag: fact.tag.as_ref().map(|t| t.to_string()),
        digest: fact.digest.to_string(),
        layers: fact.layers.len(),
        created: fact.created.map(|c| c.to_string()),
    };
    match s.format {
        Format::Json => crate::render::json(&report),
        Format::Human => println!(
            "{outcome} base {}{}@{} ({} layers) (ledger entry {})",
            report.name,
            report
                .tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default(),
            report.digest,
            report.layers,
            index.map(|i| i.to_string()).unwrap_or_default()
        ),
    }
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------------------------------
// inspect

pub fn inspect(args: InspectArgs, s: &Settings) -> Result<Outcome, CliError> {
    let platform = parse_platform(args.platform.as_deref())?;
    let insecure = parse_insecure(&args.registry)?;
    let report = match &args.layout {
        Some(dir) => {
            let reference = layout_reference(&args.reference)?;
            let layout = OciLayout::open(dir).map_err(|e| registry_error(e, ""))?;
            let report = inspect_source(&layout, &reference, &platform);
            report.map_err(|e| registry_error(e, ""))?
        }
        None => {
            let reference = parse_ref(&args.reference, "REF")?;
            let conn = connect(s, &insecure, reference.repository.registry())?;
            let source = RemoteRepository::new(&conn.client, reference.repository.clone());
            let report = inspect_source(&source, &Reference::of(&reference), &platform);
            conn.end_progress();
            let mut report = report.map_err(|e| registry_error(e, &conn.docker_config))?;
            // Show what the user typed, normalised, rather than the bare tag.
            report.reference = reference.to_string();
            report
        }
    };
    match s.format {
        Format::Json => crate::render::json(&report),
        Format::Human => print!("{}", inspection_text(&report)),
    }
    Ok(Outcome::Ok)
}

/// A tag or a digest inside an OCI layout.
fn layout_reference(input: &str) -> Result<Reference, CliError> {
    if input.contains(':') {
        return Digest::parse(input)
            .map(Reference::Digest)
            .map_err(|e| CliError::from(e.in_field("REF")));
    }
    Tag::parse(input)
        .map(Reference::Tag)
        .map_err(|e| CliError::from(e.in_field("REF")))
}

fn inspection_text(r: &Inspection) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "image       {} in {}", r.reference, r.source);
    let _ = writeln!(out, "digest      {} ({})", r.digest, r.media_type);
    if let Some(img) = &r.image {
        for (i, p) in img.platforms.iter().enumerate() {
            let head = if i == 0 { "platforms" } else { "" };
            let _ = writeln!(out, "{head:<11} {:<14} {}", p.platform, p.digest);
        }
        if let Some(p) = &img.platform {
            let _ = writeln!(out, "platform    {p}: manifest {}", img.manifest_digest);
        }
        let _ = writeln!(out, "config      {}", img.config_digest);
        let _ = writeln!(out, "layers      {}", img.layers.len());
        for (i, (k, v)) in img.labels.iter().enumerate() {
            let head = if i == 0 { "labels" } else { "" };
            let _ = writeln!(out, "{head:<11} {k}={v}");
        }
        let f = &img.facts;
        for (name, fact) in [
            ("base name", &f.base_name),
            ("base digest", &f.base_digest),
            ("source", &f.source),
            ("revision", &f.revision),
            ("version", &f.version),
            ("created", &f.created),
        ] {
            if let Some(fact) = fact {
                let origin = serde_json::to_value(fact.origin)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let _ = writeln!(out, "{name:<11} {} ({origin})", fact.value);
            }
        }
        if f.base_digest.is_none() {
            let _ = writeln!(out, "base        not annotated");
        }
    }
    if r.buildkit_attestations.is_empty() {
        let _ = writeln!(out, "buildkit    no attestation manifests");
    }
    for a in &r.buildkit_attestations {
        let attests = a
            .attests
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(out, "buildkit    attestation {} for {attests}", a.manifest);
        for l in &a.layers {
            layer_text(&mut out, &l.media_type, l.statement.as_ref());
        }
    }
    if r.cosign.is_empty() {
        let _ = writeln!(out, "cosign      no .sig or .att tags");
    }
    for c in &r.cosign {
        let _ = writeln!(out, "cosign      {} {} ({})", c.kind, c.tag, c.manifest);
        for l in &c.layers {
            layer_text(&mut out, &l.media_type, l.statement.as_ref());
        }
    }
    if r.referrers.is_empty() {
        let _ = writeln!(out, "referrers   none");
    }
    for x in &r.referrers {
        let via = match x.via {
            ReferrersVia::Api => "referrers API",
            ReferrersVia::TagSchema => "referrers tag schema",
        };
        let _ = writeln!(
            out,
            "referrer    {} {} of {} (via {via})",
            x.digest,
            x.artifact_type.as_deref().unwrap_or(&x.media_type),
            x.subject
        );
        for l in &x.layers {
            layer_text(&mut out, &l.media_type, l.statement.as_ref());
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning     {w}");
    }
    if r.has_provenance {
        let _ = writeln!(out, "provenance  yes");
    } else {
        let _ = writeln!(
            out,
            "RED FLAG    no provenance attestation: nothing attached says how or from what this image was built; a lookalike published under a familiar name usually has none"
        );
    }
    out
}

fn layer_text(out: &mut String, media_type: &str, statement: Option<&Statement>) {
    use std::fmt::Write as _;
    let Some(st) = statement else {
        let _ = writeln!(out, "              layer {media_type}");
        return;
    };
    let _ = writeln!(out, "              statement {}", st.predicate_type);
    for s in &st.subjects {
        let digests: Vec<String> = s.digest.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let _ = writeln!(
            out,
            "                subject    {} {}",
            s.uri,
            digests.join(" ")
        );
    }
    let Some(p) = &st.provenance else { return };
    let _ = writeln!(out, "                SLSA       {}", p.slsa_version);
    let rows = [
        ("builder", &p.builder_id),
        ("build type", &p.build_type),
        ("invocation", &p.invocation_id),
        ("source", &p.source_repo),
        ("revision", &p.source_revision),
        ("started", &p.started_on),
        ("finished", &p.finished_on),
    ];
    for (name, value) in rows {
        if let Some(v) = value {
            let _ = writeln!(out, "                {name:<10} {v}");
        }
    }
    for m in &p.materials {
        let digests: Vec<String> = m.digest.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let _ = writeln!(
            out,
            "                material   {} {}",
            m.uri,
            digests.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------
// attest push | pull

/// The image's registry, for `lineage_core::attest_registry::push`: attaches to the image
/// pinned by its digest, so that a tag moved meanwhile cannot redirect the attachment.
struct RegistryReferrers<'a> {
    conn: &'a Connection,
    pinned: &'a ImageRef,
}

impl Attach for RegistryReferrers<'_> {
    fn attach(&self, artifact: &Artifact) -> Result<Attached, RegistryError> {
        let done = attach(&self.conn.client, self.pinned, artifact);
        self.conn.end_progress();
        done
    }
}

pub fn attest(cmd: AttestCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        AttestCmd::Push {
            reference,
            registry,
        } => push(&reference, &registry, s),
        AttestCmd::Pull {
            reference,
            record,
            registry,
            actor,
        } => pull(&reference, record, &registry, actor.by.as_deref(), s),
    }
}

fn push(reference: &str, registry: &RegistryOpts, s: &Settings) -> Result<Outcome, CliError> {
    let reference = parse_ref(reference, "REF")?;
    let insecure = parse_insecure(registry)?;
    let store = crate::commands::open(s, false)?;
    let conn = connect(s, &insecure, reference.repository.registry())?;
    let subject = conn
        .client
        .resolve(&reference)
        .map_err(|e| registry_error(e, &conn.docker_config))?;
    let pinned = reference.with_digest(subject.digest.clone());
    let port = RegistryReferrers {
        conn: &conn,
        pinned: &pinned,
    };
    let pushed =
        attest_registry::push(store.as_ref(), &subject.digest, &port).map_err(|e| match e {
            PushError::Ledger(e) => CliError::from(e),
            PushError::Registry(e) => registry_error(e, &conn.docker_config),
        })?;
    if pushed.is_empty() {
        let message = format!(
            "the ledger holds no attestation for `{}` ({})",
            subject.digest, reference
        );
        let hint = format!(
            "sign it first: `lineage attest sign {} --key KEY`",
            subject.digest
        );
        match s.format {
            Format::Json => crate::render::json(&serde_json::json!({
                "schema": 1, "found": false, "message": message, "hint": hint,
            })),
            Format::Human => {
                eprintln!("{message}");
                eprintln!("  hint: {hint}");
            }
        }
        return Ok(Outcome::NotFound);
    }
    match s.format {
        Format::Json => crate::render::json(&serde_json::json!({
            "schema": 1,
            "image": reference.to_string(),
            "digest": subject.digest.to_string(),
            "artifact_type": LINEAGE_PROVENANCE_ARTIFACT_TYPE,
            "pushed": pushed,
        })),
        Format::Human => {
            println!(
                "attached {} attestation(s) to {}@{}",
                pushed.len(),
                reference.repository,
                subject.digest
            );
            for p in &pushed {
                let via = match (&p.via, &p.fallback_tag) {
                    (ReferrersVia::Api, _) => "indexed by the referrers API".to_string(),
                    (ReferrersVia::TagSchema, Some(t)) => {
                        format!("listed in the referrers tag `{t}`")
                    }
                    (ReferrersVia::TagSchema, None) => "listed in the referrers tag".to_string(),
                };
                println!(
                    "  {} {} (ledger entry {}), {via}",
                    p.manifest, p.predicate_type, p.ledger_entry
                );
            }
        }
    }
    Ok(Outcome::Ok)
}

fn pull(
    reference: &str,
    record: bool,
    registry: &RegistryOpts,
    by: Option<&str>,
    s: &Settings,
) -> Result<Outcome, CliError> {
    let reference = parse_ref(reference, "REF")?;
    let insecure = parse_insecure(registry)?;
    let by = if record { Some(s.actor(by)?) } else { None };
    let conn = connect(s, &insecure, reference.repository.registry())?;
    let subject = conn
        .client
        .resolve(&reference)
        .map_err(|e| registry_error(e, &conn.docker_config))?;
    let pinned = reference.with_digest(subject.digest.clone());
    let pulled = pull_attached(&conn.client, &pinned, LINEAGE_PROVENANCE_ARTIFACT_TYPE);
    conn.end_progress();
    let pulled = pulled.map_err(|e| registry_error(e, &conn.docker_config))?;
    let reports = attest_registry::judge(&subject.digest, &pulled, s.now);

    let mut recorded = Recorded::default();
    if record {
        let to_record = attest_registry::to_record(&reports)
            .map_err(|u| CliError::new(u.to_string(), u.hint()))?;
        if !to_record.is_empty() {
            let mut store = crate::commands::open_write(s, true)?;
            recorded = attest_registry::record(&mut *store, to_record, s.now, by.as_ref())?;
        }
    }

    match s.format {
        Format::Json => {
            let mut body = serde_json::json!({
                "schema": 1,
                "image": reference.to_string(),
                "digest": subject.digest.to_string(),
                "artifact_type": LINEAGE_PROVENANCE_ARTIFACT_TYPE,
                "attestations": reports,
            });
            if record {
                body["recorded"] = serde_json::json!(recorded.recorded);
                body["unchanged"] = serde_json::json!(recorded.unchanged);
            }
            crate::render::json(&body);
        }
        Format::Human => {
            println!(
                "{} Lineage attestation(s) on {}@{}",
                reports.len(),
                reference.repository,
                subject.digest
            );
            for r in &reports {
                println!(
                    "  {} {}{}",
                    r.manifest,
                    r.predicate_type.as_deref().unwrap_or("(undecodable)"),
                    r.problem
                        .as_deref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default()
                );
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r.envelope).expect("serialises")
                );
            }
            if record {
                println!(
                    "recorded {} attestation(s), {} already in the ledger",
                    recorded.recorded.len(),
                    recorded.unchanged
                );
            }
        }
    }
    Ok(if reports.is_empty() {
        Outcome::NotFound
    } else {
        Outcome::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_recognised_in_every_spelling() {
        for r in ["127.0.0.1:5000", "localhost", "[::1]:5000", "127.9.9.9"] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["registry.example.com", "10.0.0.1:5000", "ghcr.io"] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn insecure_registries_are_hosts_only() {
        let ok = RegistryOpts {
            insecure_registries: vec!["Build.Internal:5000".into()],
        };
        assert_eq!(parse_insecure(&ok).unwrap(), ["build.internal:5000"]);
        for bad in ["http://x:5000", "x/y", "", "a b"] {
            let opts = RegistryOpts {
                insecure_registries: vec![bad.into()],
            };
            assert!(parse_insecure(&opts).is_err(), "{bad}");
        }
    }
}
