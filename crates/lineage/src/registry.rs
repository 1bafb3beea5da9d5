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
//! way of recording a build. How the base was found is kept aside for the renderer, and a
//! base resolved from the registry is recorded as a `base` fact only after the build itself
//! was recorded, so a refused build writes nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use lineage_model::{
    Attestation, BaseSeen, CommitId, Digest, ImageRef, Record, SourceRepo, Tag, Timestamp,
};
use lineage_registry::{
    attach, decode_dsse_payload, decode_statement, inspect as inspect_source, layer_match,
    pull_attached, read_image, Artifact, Client, ClientConfig, DockerConfig,
    Error as RegistryError, Fact, ImageDetails, Inspection, OciLayout, Platform, Progress,
    ProgressFn, Reference, ReferrersVia, RemoteRepository, Statement,
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
    if let Some(progress) = progress_for(s) {
        client = client.with_progress(progress);
    }
    Ok(Connection {
        client,
        docker_config: shown,
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

static PROGRESS_DRAWN: AtomicBool = AtomicBool::new(false);

fn progress_for(s: &Settings) -> Option<ProgressFn> {
    if !s.progress() {
        return None;
    }
    Some(Arc::new(|p: &Progress| {
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
        PROGRESS_DRAWN.store(true, Ordering::Relaxed);
    }))
}

/// Clears the progress line, if one was drawn, before the result is printed.
pub(crate) fn end_progress() {
    if PROGRESS_DRAWN.swap(false, Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

// ---------------------------------------------------------------------------------------
// build record --from-registry

/// How the base of a build read from the registry was found.
#[derive(Debug, Clone, Serialize)]
pub struct BaseDetection {
    /// `annotation`, `layer-match` or `unknown`.
    pub method: &'static str,
    /// `exact (annotation)`, `layer match (k of n layers)` or `unknown`.
    pub summary: String,
    /// The base as recorded: `name[:tag]@digest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_layers: Option<usize>,
    pub image_layers: usize,
    /// Something that went wrong without stopping the build (e.g. the base's layers could
    /// not be read, so later layer matches will not find it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What `--from-registry` leaves for the renderer and for after the build is recorded.
#[derive(Default)]
struct Pending {
    detection: Option<BaseDetection>,
    base_fact: Option<BaseSeen>,
}

/// One command runs per process, so one slot is enough; it is taken when used.
static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<Pending>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

fn contradiction(flag: &str, given: &str, what: &str, found: &str) -> CliError {
    CliError::new(
        format!("`{flag}` says `{given}` but the registry's {what} says `{found}`"),
        format!("drop `{flag}` to use the registry's value, or check that `--from-registry` names the image this build pushed"),
    )
}

fn fact_value(f: &Option<Fact>) -> Option<&str> {
    f.as_ref().map(|f| f.value.as_str())
}

/// Fills the `build record` flags that were not given from the image in the registry. Does
/// nothing without `--from-registry`. Writes nothing: a base resolved here is recorded by
/// [`after_build`] once the build is.
pub fn fill_from_registry(mut args: BuildArgs, s: &Settings) -> Result<BuildArgs, CliError> {
    let Some(raw) = args.registry.from_registry.clone() else {
        return Ok(args);
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

    let conn = connect(s, &insecure, reference.repository.registry())?;
    let source = RemoteRepository::new(&conn.client, reference.repository.clone());
    let details = read_image(&source, &Reference::of(&reference), &platform)
        .map_err(|e| registry_error(e, &conn.docker_config));
    end_progress();
    let details = details?;
    let digest = details.digest.clone();

    // The digest: the registry's, which `--image` and `--digest` must agree with.
    if let Some(d) = given_image.as_ref().and_then(|i| i.digest.as_ref()) {
        if *d != digest {
            return Err(contradiction(
                "--image",
                &d.to_string(),
                "digest for the reference",
                &digest.to_string(),
            ));
        }
    }
    if let Some(d) = &args.digest {
        let parsed = Digest::parse(d).map_err(|e| CliError::from(e.in_field("--digest")))?;
        if parsed != digest {
            return Err(contradiction(
                "--digest",
                d,
                "digest for the reference",
                &digest.to_string(),
            ));
        }
    }
    let tag = reference
        .tag
        .clone()
        .or_else(|| given_image.as_ref().and_then(|i| i.tag.clone()));
    let image = ImageRef {
        repository: reference.repository.clone(),
        tag: tag.clone(),
        digest: Some(digest.clone()),
    };
    args.image = Some(image.to_string());
    if let Some(p) = &details.platform {
        match &args.platform {
            Some(given)
                if Platform::parse(given).map(|g| g.to_string())
                    != Platform::parse(p).map(|x| x.to_string()) =>
            {
                return Err(contradiction("--platform", given, "chosen platform", p));
            }
            Some(_) => {}
            None => args.platform = Some(p.clone()),
        }
    }

    // Source and revision: labels or annotations fill the flags; given flags must agree.
    let facts = &details.facts;
    if let Some(found) = fact_value(&facts.source) {
        match &args.repo {
            Some(given) => {
                let same = match (SourceRepo::parse(given), SourceRepo::parse(found)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => given == found,
                };
                if !same {
                    return Err(contradiction(
                        "--repo",
                        given,
                        "`org.opencontainers.image.source`",
                        found,
                    ));
                }
            }
            None => args.repo = Some(found.to_string()),
        }
    }
    if let Some(found) = fact_value(&facts.revision) {
        match &args.commit {
            Some(given) => {
                let same = match (CommitId::parse(given), CommitId::parse(found)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => given == found,
                };
                if !same {
                    return Err(contradiction(
                        "--commit",
                        given,
                        "`org.opencontainers.image.revision`",
                        found,
                    ));
                }
            }
            None => args.commit = Some(found.to_string()),
        }
    }
    if args.finished_at.is_none() {
        // Only a fallback: an unreadable `created` is not worth failing a build record for.
        if let Some(t) = fact_value(&facts.created).and_then(|c| Timestamp::parse(c).ok()) {
            args.finished_at = Some(t.to_string());
        }
    }

    // The base: by annotation, else by layer match against the bases the ledger knows.
    let known = known_bases(s)?;
    let (detection, base_fact, base_ref) = detect_base(&details, &known, &conn, &platform, s.now)?;
    if let Some(found) = &base_ref {
        match args.bases.last() {
            Some(given) => {
                let given_ref = parse_ref(given, "--base")?;
                if detection.method == "annotation" {
                    if let Some(d) = &given_ref.digest {
                        if Some(d) != found.digest.as_ref() {
                            return Err(contradiction(
                                "--base",
                                given,
                                "`org.opencontainers.image.base.digest`",
                                &found
                                    .digest
                                    .as_ref()
                                    .map(|d| d.to_string())
                                    .unwrap_or_default(),
                            ));
                        }
                    }
                }
            }
            None => args.bases.push(found.to_string()),
        }
    }
    *pending() = Some(Pending {
        detection: Some(detection),
        base_fact: if args.print_detected { None } else { base_fact },
    });
    Ok(args)
}

/// The bases the ledger knows with their layers, oldest first. No ledger: none.
fn known_bases(s: &Settings) -> Result<Vec<BaseSeen>, CliError> {
    let store = match lineage_store::open_read(&s.store) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(store
        .facts("base", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) => Some(b),
            _ => None,
        })
        .collect())
}

type Detected = (BaseDetection, Option<BaseSeen>, Option<ImageRef>);

/// The known base whose layers are the longest prefix of `layers`; among equals, the most
/// recently recorded.
fn best_layer_match<'a>(known: &'a [BaseSeen], layers: &[Digest]) -> Option<(usize, &'a BaseSeen)> {
    let mut best: Option<(usize, &BaseSeen)> = None;
    for b in known {
        if let Some((k, _)) = layer_match(layers, &b.layers) {
            if best.is_none_or(|(bk, _)| k >= bk) {
                best = Some((k, b));
            }
        }
    }
    best
}

/// A known base as messages name it: `name:tag@digest`.
fn shown(b: &BaseSeen) -> String {
    ImageRef {
        repository: b.name.clone(),
        tag: b.tag.clone(),
        digest: Some(b.digest.clone()),
    }
    .to_string()
}

fn detect_base(
    details: &ImageDetails,
    known: &[BaseSeen],
    conn: &Connection,
    platform: &Platform,
    now: Timestamp,
) -> Result<Detected, CliError> {
    let n = details.layers.len();
    let mut warning = None;
    // A digest-only annotation (buildah writes one for `FROM ${BASE}` with a digest ARG) is
    // named from the bases Lineage knows with that digest.
    let mut digest_only = false;
    let annotated = match (
        fact_value(&details.facts.base_name),
        fact_value(&details.facts.base_digest),
    ) {
        (None, Some(digest)) => match Digest::parse(digest) {
            Ok(d) => {
                let named: Vec<&BaseSeen> = known.iter().filter(|k| k.digest == d).collect();
                let mut names: Vec<String> = named.iter().map(|k| shown(k)).collect();
                names.sort();
                names.dedup();
                match named.iter().max_by_key(|k| k.seen_at) {
                    Some(k) => {
                        if names.len() > 1 {
                            warning = Some(format!(
                                "the base digest is known under {} names ({}); recorded the most recently seen, `{}`",
                                names.len(),
                                names.join(", "),
                                shown(k)
                            ));
                        }
                        digest_only = true;
                        Some(ImageRef {
                            repository: k.name.clone(),
                            tag: k.tag.clone(),
                            digest: Some(d),
                        })
                    }
                    None => {
                        warning = Some(format!(
                            "the image names its base only by digest (`org.opencontainers.image.base.digest` = `{d}`), and no base Lineage knows has it; teach it with `lineage base add NAME:TAG`; fell back to layer match"
                        ));
                        None
                    }
                }
            }
            Err(_) => {
                warning = Some(format!(
                    "the base annotation `{}` is not a digest; fell back to layer match",
                    lineage_model::inert(digest)
                ));
                None
            }
        },
        (Some(name), Some(digest)) => match (ImageRef::parse(name), Digest::parse(digest)) {
            (Ok(r), Ok(d)) if r.digest.as_ref().is_none_or(|x| *x == d) => Some(ImageRef {
                digest: Some(d),
                ..r
            }),
            _ => {
                warning = Some(format!(
                    "the base annotations `{name}` / `{digest}` do not form an image reference; fell back to layer match"
                ));
                None
            }
        },
        _ => None,
    };
    if let Some(base) = annotated {
        let digest = base.digest.clone().expect("set above");
        // Read the base for its layers, so that later images copied without annotations
        // are still matched to it. Failing to read it does not make the build wrong.
        let base_source = RemoteRepository::new(&conn.client, base.repository.clone());
        let read = read_image(&base_source, &Reference::Digest(digest.clone()), platform);
        end_progress();
        let (layers, created) = match read {
            Ok(b) => (
                b.layers,
                fact_value(&b.facts.created).and_then(|c| Timestamp::parse(c).ok()),
            ),
            Err(e) => {
                warning = Some(format!(
                    "could not read the base's layers ({e}); later layer matches will not find it"
                ));
                (Vec::new(), None)
            }
        };
        // The annotation is a claim and the layers are evidence: when the annotated base's
        // layers are not under the image but a known base's are, the layers win, and the
        // contradiction is said.
        if !layers.is_empty() && layer_match(&details.layers, &layers).is_none() {
            if let Some((k, b)) = best_layer_match(known, &details.layers) {
                if b.digest != digest {
                    let by_layers = ImageRef {
                        repository: b.name.clone(),
                        tag: b.tag.clone(),
                        digest: Some(b.digest.clone()),
                    };
                    let detection = BaseDetection {
                        method: "layer-match",
                        summary: format!("layer match ({k} of {n} layers)"),
                        base: Some(by_layers.to_string()),
                        matched_layers: Some(k),
                        image_layers: n,
                        warning: Some(format!(
                            "the image's annotations say its base is `{base}`, but its layers are those of `{by_layers}`; recorded the layer evidence"
                        )),
                    };
                    return Ok((detection, None, Some(by_layers)));
                }
            }
        }
        let already = known.iter().any(|k| {
            k.name == base.repository
                && k.tag == base.tag
                && k.digest == digest
                && (k.layers == layers || layers.is_empty())
        });
        let fact = (!already).then(|| BaseSeen {
            name: base.repository.clone(),
            tag: base.tag.clone(),
            digest: digest.clone(),
            layers,
            created,
            seen_at: now,
        });
        let detection = BaseDetection {
            method: "annotation",
            summary: if digest_only {
                "exact (digest annotation, named from a known base)".into()
            } else {
                "exact (annotation)".into()
            },
            base: Some(base.to_string()),
            matched_layers: None,
            image_layers: n,
            warning,
        };
        return Ok((detection, fact, Some(base)));
    }
    let best = best_layer_match(known, &details.layers);
    // A mirror and its origin share layers: an equal match under another name is said, not
    // hidden.
    if let Some((k, b)) = best {
        let mut names: Vec<String> = known
            .iter()
            .filter(|o| layer_match(&details.layers, &o.layers).is_some_and(|(ok, _)| ok == k))
            .map(shown)
            .collect();
        names.sort();
        names.dedup();
        if names.len() > 1 {
            let note = format!(
                "ambiguous layer match: the layers of {} known bases match equally ({}); recorded the most recently seen, `{}`",
                names.len(),
                names.join(", "),
                shown(b)
            );
            warning = Some(match warning {
                Some(w) => format!("{w}; {note}"),
                None => note,
            });
        }
    }
    Ok(match best {
        Some((k, b)) => {
            let base = ImageRef {
                repository: b.name.clone(),
                tag: b.tag.clone(),
                digest: Some(b.digest.clone()),
            };
            (
                BaseDetection {
                    method: "layer-match",
                    summary: format!("layer match ({k} of {n} layers)"),
                    base: Some(base.to_string()),
                    matched_layers: Some(k),
                    image_layers: n,
                    warning,
                },
                None,
                Some(base),
            )
        }
        None => (
            BaseDetection {
                method: "unknown",
                summary: "unknown".into(),
                base: None,
                matched_layers: None,
                image_layers: n,
                warning,
            },
            None,
            None,
        ),
    })
}

/// Records the base resolved by `--from-registry`, once the build was recorded.
pub fn after_build(outcome: Outcome, s: &Settings) -> Result<Outcome, CliError> {
    let fact = pending().as_mut().and_then(|p| p.base_fact.take());
    if let (Outcome::Ok, Some(fact)) = (&outcome, fact) {
        let mut store = crate::commands::open_write(s, false)?;
        store.record_facts(&[Record::Base(fact)], s.now, None)?;
    }
    Ok(outcome)
}

/// Called first by the renderers of build results. Under JSON, prints `value` with a
/// `base_detection` field and returns true (the caller prints nothing more); for humans,
/// prints the detection line and returns false. Without `--from-registry`, does nothing.
pub fn render_note<T: Serialize>(format: Format, value: &T) -> bool {
    let Some(detection) = pending().as_mut().and_then(|p| p.detection.take()) else {
        return false;
    };
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(value).expect("reports serialise");
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "base_detection".into(),
                    serde_json::to_value(&detection).expect("serialises"),
                );
            }
            println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            true
        }
        Format::Human => {
            match &detection.base {
                Some(base) => println!("base found by {}: {base}", detection.summary),
                None => println!("base: unknown (no base annotations, and no known base matches the layers; `lineage base add REF` teaches one)"),
            }
            if let Some(w) = &detection.warning {
                println!("  warning: {w}");
            }
            false
        }
    }
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
    end_progress();
    let details = details?;
    let fact = BaseSeen {
        name: reference.repository.clone(),
        tag: reference.tag.clone(),
        digest: details.digest.clone(),
        layers: details.layers.clone(),
        created: fact_value(&details.facts.created).and_then(|c| Timestamp::parse(c).ok()),
        seen_at: s.now,
    };
    let mut store = crate::commands::open_write(s, true)?;
    let same = store
        .facts("base", Some(&fact.name.to_string()))?
        .into_iter()
        .find(|e| match &e.record {
            Record::Base(b) => {
                b.tag == fact.tag && b.digest == fact.digest && b.layers == fact.layers
            }
            _ => false,
        });
    let (outcome, index) = match same {
        Some(e) => ("unchanged", Some(e.index)),
        None => (
            "recorded",
            store
                .record_facts(&[Record::Base(fact.clone())], s.now, Some(&by))?
                .first()
                .copied(),
        ),
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
            end_progress();
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

/// The annotation carrying an attachment's predicate type, as BuildKit puts it on layers.
const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";

#[derive(Serialize)]
struct PushedReport {
    manifest: String,
    predicate_type: String,
    ledger_entry: u64,
    via: ReferrersVia,
    fallback_tag: Option<String>,
}

#[derive(Serialize)]
struct PulledReport {
    manifest: String,
    via: ReferrersVia,
    payload_media_type: String,
    predicate_type: Option<String>,
    /// Whether the statement's subjects include the image digest.
    names_image: bool,
    /// The DSSE envelope as attached.
    envelope: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
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
    let atts: Vec<(u64, Attestation)> = store
        .facts("attestation", Some(&subject.digest.to_string()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Attestation(a) => Some((e.index, a)),
            _ => None,
        })
        .collect();
    if atts.is_empty() {
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
    // Pin the subject so that a tag moved meanwhile cannot redirect the attachment.
    let pinned = reference.with_digest(subject.digest.clone());
    let mut pushed = Vec::new();
    for (index, att) in &atts {
        let mut artifact = Artifact::lineage_provenance(att.envelope.clone().into_bytes());
        artifact.annotations = BTreeMap::from([
            (
                "org.opencontainers.image.created".to_string(),
                att.at.to_string(),
            ),
            (
                PREDICATE_TYPE_ANNOTATION.to_string(),
                att.predicate_type.clone(),
            ),
        ]);
        let done = attach(&conn.client, &pinned, &artifact);
        end_progress();
        let done = done.map_err(|e| registry_error(e, &conn.docker_config))?;
        pushed.push(PushedReport {
            manifest: done.manifest.to_string(),
            predicate_type: att.predicate_type.clone(),
            ledger_entry: *index,
            via: done.via,
            fallback_tag: done.fallback_tag.map(|t| t.to_string()),
        });
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

fn names_digest(statement: &Statement, digest: &Digest) -> bool {
    statement.subjects.iter().any(|m| {
        m.digest
            .get(digest.algorithm().as_str())
            .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    })
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
    end_progress();
    let pulled = pulled.map_err(|e| registry_error(e, &conn.docker_config))?;

    let mut reports = Vec::new();
    let mut to_record = Vec::new();
    for a in &pulled {
        let envelope =
            serde_json::from_slice::<serde_json::Value>(&a.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&a.payload).into_owned())
            });
        let decoded =
            decode_dsse_payload(&a.payload).and_then(|(_, bytes)| decode_statement(&bytes));
        let (predicate_type, names_image, problem) = match &decoded {
            Ok(st) => {
                let names = names_digest(st, &subject.digest);
                let problem = (!names).then(|| {
                    format!(
                        "the statement does not name `{}` as a subject",
                        subject.digest
                    )
                });
                (Some(st.predicate_type.clone()), names, problem)
            }
            Err(e) => (None, false, Some(e.to_string())),
        };
        if record {
            if let Some(problem) = &problem {
                return Err(CliError::new(
                    format!("attachment {} cannot be recorded: {problem}", a.manifest),
                    "pull without `--record` to look at it; nothing was recorded",
                ));
            }
            to_record.push(Attestation {
                digest: subject.digest.clone(),
                predicate_type: predicate_type.clone().unwrap_or_default(),
                envelope: String::from_utf8_lossy(&a.payload).into_owned(),
                at: s.now,
            });
        }
        reports.push(PulledReport {
            manifest: a.manifest.to_string(),
            via: a.via,
            payload_media_type: a.payload_media_type.clone(),
            predicate_type,
            names_image,
            envelope,
            problem,
        });
    }

    let mut recorded: Vec<u64> = Vec::new();
    let mut unchanged = 0usize;
    if record && !to_record.is_empty() {
        let mut store = crate::commands::open_write(s, true)?;
        let existing: Vec<String> = store
            .facts("attestation", Some(&subject.digest.to_string()))?
            .into_iter()
            .filter_map(|e| match e.record {
                Record::Attestation(a) => Some(a.envelope),
                _ => None,
            })
            .collect();
        let fresh: Vec<Record> = to_record
            .into_iter()
            .filter(|a| {
                let known = existing.contains(&a.envelope);
                unchanged += usize::from(known);
                !known
            })
            .map(Record::Attestation)
            .collect();
        if !fresh.is_empty() {
            recorded = store.record_facts(&fresh, s.now, by.as_ref())?;
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
                body["recorded"] = serde_json::json!(recorded);
                body["unchanged"] = serde_json::json!(unchanged);
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
                    recorded.len(),
                    unchanged
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
