//! `sbom add`, `scan add`, `vulns`, and `affected --package/--purl/--cve`: the arguments, the
//! registry reads of `--from-registry`, and the renderers. What a document means, which
//! attachments hold one, base or app, and who is affected are decided in
//! `lineage_core::{sbom, sbom_registry, vulns}`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use lineage_core::sbom::{self, ImportResult, Kind, Target};
use lineage_core::sbom_registry::{self, AttachedBlobs, FromRegistry, FromRegistryError};
use lineage_core::vulns::{self, AffectedPackagesReport, PackageQuery, VulnsReport};
use lineage_model::{Digest, ImageRef, Repository};
use lineage_registry::{Manifest, Reference};
use serde::Serialize;

use crate::args::{ActorArgs, Format};
use crate::registry::RegistryOpts;
use crate::settings::Settings;
use crate::{CliError, Outcome};

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Subcommand)]
pub enum SbomCmd {
    /// Import an SBOM of an image: SPDX 2.2/2.3 or CycloneDX 1.4–1.6 JSON, bare or as an
    /// in-toto attestation; or, with `--from-registry`, the SBOM attestations attached to it.
    Add(ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScanCmd {
    /// Import a vulnerability scan of an image: Trivy JSON (SchemaVersion 2), Grype JSON or
    /// CycloneDX with `vulnerabilities`; or, with `--from-registry`, the vulnerability
    /// attestations attached to it.
    Add(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The image the document describes, pinned: `REPOSITORY@sha256:…`.
    #[arg(value_name = "IMAGE@DIGEST", required_unless_present = "from_registry")]
    pub image: Option<String>,
    /// The document; `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present = "from_registry")]
    pub file: Option<PathBuf>,
    /// Check that the document is this format: `spdx`, `cyclonedx`, `trivy` or `grype`
    /// (default: detected from the document).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// Read the attestations attached to this image in its registry (BuildKit attestations
    /// in the index, OCI referrers, cosign `.att`) and import the SBOMs (or scans) among them.
    #[arg(long = "from-registry", value_name = "REF", conflicts_with_all = ["image", "file"])]
    pub from_registry: Option<String>,
    /// The platform to read from a multi-platform image (default linux/amd64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// `lineage affected`: exactly one of a base, a package, a purl or a vulnerability.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["base", "package", "purl", "cve"])))]
pub struct AffectedArgs {
    /// A base digest, or a base name with an optional tag (`python:3.12-slim`).
    #[arg(long)]
    pub base: Option<String>,
    /// A package in running images, with an optional version or range: `openssl`,
    /// `openssl@3.0.11-1~deb12u2`, `openssl@<3.0.15`, `@angular/core@>=16.0.0,<16.2.0`.
    #[arg(long, value_name = "NAME[@VERSION|@RANGE]")]
    pub package: Option<String>,
    /// A package URL: `pkg:deb/debian/openssl@3.0.11-1~deb12u2` (without a version: every version).
    #[arg(long, value_name = "PURL")]
    pub purl: Option<String>,
    /// A vulnerability id as scanners report it: `CVE-2024-5535`, `GHSA-…`.
    #[arg(long, value_name = "ID")]
    pub cve: Option<String>,
    /// Only placements a runtime source (`lineage observe`) sees running now (`--base`).
    #[arg(long)]
    pub observed_only: bool,
    #[command(flatten)]
    pub remote: crate::args::RemoteArgs,
}

#[derive(Debug, Args)]
pub struct VulnsArgs {
    /// Only images running in this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only these severities: `critical,high` (critical, high, medium, low, negligible, unknown).
    #[arg(long, value_name = "SEVERITY[,SEVERITY]")]
    pub severity: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Import

pub fn sbom(cmd: SbomCmd, s: &Settings) -> Result<Outcome, CliError> {
    let SbomCmd::Add(args) = cmd;
    import(Kind::Sbom, args, s)
}

pub fn scan(cmd: ScanCmd, s: &Settings) -> Result<Outcome, CliError> {
    let ScanCmd::Add(args) = cmd;
    import(Kind::Scan, args, s)
}

fn import(kind: Kind, args: ImportArgs, s: &Settings) -> Result<Outcome, CliError> {
    let by = s.actor(args.actor.by.as_deref())?;
    let forced = args
        .input_format
        .as_deref()
        .map(sbom::Format::parse)
        .transpose()?;
    if let Some(reference) = &args.from_registry {
        return import_registry(kind, reference, &args, by, s);
    }
    let (Some(image), Some(file)) = (&args.image, &args.file) else {
        return Err(CliError::new(
            "an image and a document are required",
            "write `lineage sbom add IMAGE@sha256:<64 hex> FILE`, or `--from-registry REF`",
        ));
    };
    let image = ImageRef::parse(image).map_err(|e| e.in_field("IMAGE"))?;
    let Some(digest) = image.digest.clone() else {
        return Err(CliError::new(
            format!("image `{image}` is not pinned by digest"),
            format!(
                "an SBOM or scan describes one digest: `{}@sha256:<64 hex>`",
                image.repository
            ),
        ));
    };
    let shown = file.display().to_string();
    // Everything is read and checked before the ledger is opened: bad input writes nothing.
    let mut doc = if shown == "-" {
        sbom::read_document(std::io::stdin().lock(), "standard input", forced)?
    } else {
        // Checked against the SBOM limit first, for its own wording; then opened through
        // the one reader, which refuses devices and FIFOs and stops at the limit.
        if let Ok(meta) = std::fs::metadata(file) {
            sbom::check_size(&shown, meta.len())?;
        }
        let f = crate::input::open(file, sbom::MAX_DOCUMENT_BYTES)?;
        sbom::read_document(f, &shown, forced)?
    };
    let notes = std::mem::take(&mut doc.notes);
    let target = Target {
        image: image.repository.clone(),
        digest,
        kind,
        origin: "file".into(),
        aliases: Vec::new(),
        by: by.clone(),
        at: s.now,
    };
    let record = sbom::to_record(doc, &target, &shown)?;
    let mut store = crate::commands::open_write(s, true)?;
    let results = sbom::record_imports(store.as_mut(), vec![(record, notes)], &by, s.now)?;
    render_import(s.format, &results[0]);
    Ok(Outcome::Ok)
}

/// The `--from-registry` answer.
#[derive(Debug, Serialize)]
struct RegistryImport {
    schema: u32,
    reference: String,
    digest: String,
    imports: Vec<ImportResult>,
    /// Attachments that were read but are not of this command's kind.
    skipped: Vec<String>,
}

/// The image's repository, for `lineage_core::sbom_registry::from_attachments`.
struct Attachments<'a> {
    conn: &'a crate::registry::Connection,
    repository: &'a Repository,
}

impl AttachedBlobs for Attachments<'_> {
    fn manifest(&self, digest: &Digest) -> Result<Manifest, lineage_registry::Error> {
        let fetched = self
            .conn
            .client
            .fetch_manifest(self.repository, &Reference::Digest(digest.clone()))?;
        Ok(fetched.manifest)
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>, lineage_registry::Error> {
        self.conn.client.fetch_blob(self.repository, digest)
    }
}

fn import_registry(
    kind: Kind,
    raw: &str,
    args: &ImportArgs,
    by: lineage_model::Identity,
    s: &Settings,
) -> Result<Outcome, CliError> {
    let reference = ImageRef::parse(raw).map_err(|e| e.in_field("--from-registry"))?;
    let platform = crate::registry::parse_platform(args.platform.as_deref())?;
    let insecure = crate::registry::parse_insecure(&args.registry)?;
    let conn = crate::registry::connect(s, &insecure, reference.repository.registry())?;
    let inspected = conn.client.inspect(&reference, &platform);
    conn.end_progress();
    let report = inspected.map_err(|e| crate::registry::registry_error(e, &conn.docker_config))?;
    // Which attachments are read, and what is imported for which digest, is decided in core.
    let port = Attachments {
        conn: &conn,
        repository: &reference.repository,
    };
    let FromRegistry { imports, skipped } =
        sbom_registry::from_attachments(kind, &reference.repository, &report, &port, &by, s.now)
            .map_err(|e| match e {
                FromRegistryError::Registry(e) => {
                    crate::registry::registry_error(e, &conn.docker_config)
                }
                FromRegistryError::Document(e) => e.into(),
            })?;
    if imports.is_empty() {
        let what = match kind {
            Kind::Sbom => "SBOM",
            Kind::Scan => "vulnerability",
        };
        crate::render::not_found(
            s.format,
            &format!(
                "no {what} attestations are attached to `{reference}` ({} BuildKit attestation manifest(s), {} cosign artifact(s), {} referrer(s) read){}",
                report.buildkit_attestations.len(),
                report.cosign.len(),
                report.referrers.len(),
                if skipped.is_empty() { String::new() } else { format!("; skipped: {}", skipped.join("; ")) }
            ),
        );
        return Ok(Outcome::NotFound);
    }
    let mut store = crate::commands::open_write(s, true)?;
    let results = sbom::record_imports(store.as_mut(), imports, &by, s.now)?;
    let answer = RegistryImport {
        schema: 1,
        reference: reference.to_string(),
        digest: report.digest.to_string(),
        imports: results,
        skipped,
    };
    match s.format {
        Format::Json => crate::render::json(&answer),
        Format::Human => {
            println!("{} ({})", answer.reference, answer.digest);
            for r in &answer.imports {
                render_import(Format::Human, r);
            }
            for k in &answer.skipped {
                println!("  skipped {k}");
            }
        }
    }
    Ok(Outcome::Ok)
}

fn render_import(format: Format, r: &ImportResult) {
    if format == Format::Json {
        return crate::render::json(r);
    }
    println!(
        "{} {} {} for {}@{} (ledger entry {})",
        r.outcome,
        r.kind,
        r.format,
        r.image,
        crate::render::short(&r.digest),
        r.index
    );
    println!(
        "  {} package(s), {} finding(s), {} layer(s); document {} ({} bytes){}",
        r.packages,
        r.findings,
        r.layers,
        crate::render::short(&r.document),
        r.size,
        r.origin
            .as_deref()
            .filter(|o| *o != "file")
            .map(|o| format!(" from {o}"))
            .unwrap_or_default()
    );
    for n in &r.notes {
        println!("  note: {n}");
    }
}

// ---------------------------------------------------------------------------------------
// Queries

/// `lineage affected`: by base (the existing report) or by package, purl or vulnerability.
pub fn affected(args: AffectedArgs, s: &Settings) -> Result<Outcome, CliError> {
    if let Some(base) = &args.base {
        lineage_core::query::check_base_query(base)?;
        let store = crate::commands::open(s, false)?;
        let view = crate::runtime::view(s, args.observed_only);
        let report = lineage_core::query::affected_by(store.as_ref(), &s.toml.config, base, &view)?;
        crate::render::affected(s.format, &report);
        return Ok(if report.services.is_empty() {
            Outcome::NotFound
        } else {
            Outcome::Ok
        });
    }
    let query = package_query(&args)?;
    let store = crate::commands::open(s, false)?;
    let report = vulns::affected(store.as_ref(), &s.toml.config, &query, s.now)?;
    Ok(show_affected(s.format, &report))
}

/// The package, purl or vulnerability `affected` asks about (not `--base`).
pub(crate) fn package_query(args: &AffectedArgs) -> Result<PackageQuery, CliError> {
    Ok(match (&args.package, &args.purl, &args.cve) {
        (Some(p), _, _) => PackageQuery::package(p)?,
        (_, Some(p), _) => PackageQuery::purl(p)?,
        (_, _, Some(c)) => PackageQuery::vuln(c)?,
        _ => {
            return Err(CliError::new(
                "nothing to look for",
                "pass one of `--base`, `--package`, `--purl` or `--cve`",
            ))
        }
    })
}

/// The API path that answers `affected` with these arguments.
pub(crate) fn affected_path(args: &AffectedArgs) -> Result<String, CliError> {
    use crate::serve::encode;
    if let Some(base) = &args.base {
        lineage_core::query::check_base_query(base)?;
        let observed = if args.observed_only {
            "&observed_only=true"
        } else {
            ""
        };
        return Ok(format!(
            "/api/v1/affected?base={}{observed}",
            encode(base, false)
        ));
    }
    package_query(args)?;
    let (key, value) = match (&args.package, &args.purl, &args.cve) {
        (Some(p), _, _) => ("package", p),
        (_, Some(p), _) => ("purl", p),
        (_, _, Some(c)) => ("cve", c),
        _ => unreachable!("checked by package_query"),
    };
    Ok(format!("/api/v1/affected?{key}={}", encode(value, false)))
}

/// Renders what the server answered to [`affected_path`].
pub(crate) fn show_remote_affected(
    args: &AffectedArgs,
    value: serde_json::Value,
    s: &Settings,
) -> Result<Outcome, CliError> {
    if args.base.is_some() {
        let report: lineage_core::query::AffectedReport = crate::serve::typed(value)?;
        crate::render::affected(s.format, &report);
        return Ok(if report.services.is_empty() {
            Outcome::NotFound
        } else {
            Outcome::Ok
        });
    }
    let report: AffectedPackagesReport = crate::serve::typed(value)?;
    Ok(show_affected(s.format, &report))
}

fn show_affected(format: Format, r: &AffectedPackagesReport) -> Outcome {
    render_affected(format, r);
    if r.services.is_empty() {
        Outcome::NotFound
    } else {
        Outcome::Ok
    }
}

fn commit(c: Option<&str>) -> &str {
    c.map_or("(none)", |c| &c[..12.min(c.len())])
}

fn asked(r: &AffectedPackagesReport) -> String {
    let q = &r.query;
    match (&q.package, &q.version, &q.purl, &q.cve) {
        (Some(p), Some(v), _, _) => format!("package {p}@{v}"),
        (Some(p), None, _, _) => format!("package {p}"),
        (_, _, Some(p), _) => format!("purl {p}"),
        (_, _, _, Some(c)) => c.clone(),
        _ => "query".into(),
    }
}

fn render_not_scanned(list: &[vulns::NotScanned], max_age: &str) {
    if list.is_empty() {
        return;
    }
    println!();
    println!("not scanned recently (max age {max_age}): unknown, not clean");
    for n in list {
        println!(
            "  {:<12} {:<12} {}  owner {}  {}",
            n.service,
            n.env,
            crate::render::short(&n.digest),
            n.owner.as_deref().unwrap_or("(none)"),
            n.reason
        );
    }
}

fn render_affected(format: Format, r: &AffectedPackagesReport) {
    if format == Format::Json {
        return crate::render::json(r);
    }
    let what = asked(r);
    if r.services.is_empty() {
        println!("no running image contains {what} (as far as imported SBOMs and scans say)");
    } else {
        println!("{what}: {} service(s) run it now", r.services.len());
    }
    for s in &r.services {
        println!();
        println!(
            "{}  owner {}  backup {}  emergency {}",
            s.service,
            s.owners.owner.as_deref().unwrap_or("(none)"),
            s.owners.backup_owner.as_deref().unwrap_or("(none)"),
            s.owners.emergency_approver.as_deref().unwrap_or("(none)")
        );
        for p in &s.running {
            let pl = &p.placement;
            println!(
                "  {:<12} {}  commit {}  since {}  approved by {}",
                pl.env,
                crate::render::short(&pl.digest),
                commit(pl.commit.as_deref()),
                pl.since,
                pl.approved_by.as_deref().unwrap_or("(none)")
            );
            for m in &p.packages {
                println!(
                    "    {} {} ({})  {}: {}",
                    m.name,
                    m.version.as_deref().unwrap_or("?"),
                    m.ecosystem,
                    m.origin,
                    m.origin_evidence
                );
                for f in &m.findings {
                    println!(
                        "      {} {}, {}",
                        f.id,
                        f.severity,
                        f.fixed
                            .as_deref()
                            .map_or("no fixed version known".to_string(), |v| format!(
                                "fixed in {v}"
                            ))
                    );
                }
            }
            if let Some(cmd) = &p.rebuild {
                println!("    fix (base): {cmd}");
            }
            if p.packages.iter().any(|m| m.origin == "app") {
                println!(
                    "    fix (app): {} upgrades the package in the service's source",
                    s.owners.owner.as_deref().unwrap_or("the owner")
                );
            }
        }
    }
    render_not_scanned(&r.not_scanned, &r.max_age);
}

/// `lineage vulns`.
pub fn vulns_cmd(args: VulnsArgs, s: &Settings) -> Result<Outcome, CliError> {
    let env = args
        .env
        .as_deref()
        .map(|e| s.toml.config.environment(e))
        .transpose()?;
    let severities = args
        .severity
        .as_deref()
        .map(vulns::parse_severities)
        .transpose()?
        .unwrap_or_default();
    let store = crate::commands::open(s, false)?;
    let report = vulns::vulns(
        store.as_ref(),
        &s.toml.config,
        env.as_ref(),
        &severities,
        s.now,
    )?;
    render_vulns(s.format, &report);
    Ok(
        if report.owners.is_empty() && report.not_scanned_recently.is_empty() {
            Outcome::NotFound
        } else {
            Outcome::Ok
        },
    )
}

fn render_vulns(format: Format, r: &VulnsReport) {
    if format == Format::Json {
        return crate::render::json(r);
    }
    let counts: Vec<String> = vulns::SEVERITIES
        .iter()
        .filter_map(|s| r.counts.get(*s).map(|n| format!("{n} {s}")))
        .collect();
    println!(
        "findings in running images{} ({}): {}",
        r.env
            .as_ref()
            .map(|e| format!(" in {e}"))
            .unwrap_or_default(),
        r.severities.join(", "),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
    let line = |f: &vulns::VulnFinding| {
        println!(
            "      {:<20} {:<9} {} {}  {}",
            f.id,
            f.severity,
            f.name,
            f.version.as_deref().unwrap_or("?"),
            f.fixed
                .as_deref()
                .map_or("no fix known".to_string(), |v| format!("fixed in {v}"))
        )
    };
    for g in &r.owners {
        println!();
        println!(
            "{}{}",
            g.owner.as_deref().unwrap_or("(no owner)"),
            g.backup_owner
                .as_deref()
                .map(|b| format!("  (backup {b})"))
                .unwrap_or_default()
        );
        for i in &g.images {
            println!(
                "  {}  {}  {}  scanned {}  base {}",
                i.service,
                i.envs.join(","),
                crate::render::short(&i.digest),
                i.scanned_at.map_or("never".to_string(), |t| t.to_string()),
                i.base.as_deref().unwrap_or("(unknown)")
            );
            if !i.base_findings.is_empty() {
                println!(
                    "    base: rebuild on a newer base: {}",
                    i.rebuild
                        .as_deref()
                        .unwrap_or("(commit unknown: rebuild from the running digest's source)")
                );
                i.base_findings.iter().for_each(line);
            }
            if !i.app_findings.is_empty() {
                println!("    app: upgrade these in the service's source");
                i.app_findings.iter().for_each(line);
            }
            if !i.unknown_findings.is_empty() {
                println!(
                    "    base or app unknown: {}",
                    i.unknown_findings[0].origin_evidence
                );
                i.unknown_findings.iter().for_each(line);
            }
        }
    }
    render_not_scanned(&r.not_scanned_recently, &r.max_age);
}
