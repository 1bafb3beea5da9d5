//! Importing SBOMs and vulnerability scans: SPDX 2.2/2.3 JSON, CycloneDX 1.4–1.6 JSON, Trivy
//! JSON (`SchemaVersion` 2) and Grype JSON, bare or wrapped in an in-toto statement (a
//! BuildKit or cosign attestation), itself bare or in a DSSE envelope.
//!
//! A document is read once, as a stream: the bytes pass through a reader that hashes them
//! (the record keeps the document's SHA-256) and stops at [`MAX_DOCUMENT_BYTES`], into serde
//! types that keep only the fields Lineage records; everything else is skipped as it streams
//! past. The format is recognised by the top-level keys that only it has, all in that one
//! pass. What comes out is one [`SbomImport`] record: purls, the layer each package is in
//! where the document says, and the scanner's findings.
//!
//! A document that names the image it describes (Trivy `Metadata.RepoDigests`, Grype
//! `source.target.manifestDigest`/`repoDigests`, an attestation's `subject`, an SBOM root
//! component pinned by digest) must name the digest it is imported for; otherwise the import
//! is refused, naming the field, and nothing is written.

use std::collections::HashMap;
use std::io::Read;

use lineage_model::{
    Digest, Identity, Purl, Repository, SbomFinding, SbomImport, SbomLayer, SbomPackage, Timestamp,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// The largest document imported. A 100 MB CycloneDX document (about 100,000 components) is
/// well inside it; anything near a gigabyte is not an SBOM of one image.
pub const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

/// What a command imports: package inventories (`sbom add`) or scanner findings (`scan add`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sbom,
    Scan,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sbom => "sbom",
            Kind::Scan => "scan",
        }
    }
}

/// A document format, when the user names it (`--input-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Spdx,
    CycloneDx,
    Trivy,
    Grype,
}

impl Format {
    pub fn parse(input: &str) -> Result<Format, Error> {
        match input.to_ascii_lowercase().as_str() {
            "spdx" | "spdx-json" => Ok(Format::Spdx),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(Format::CycloneDx),
            "trivy" => Ok(Format::Trivy),
            "grype" => Ok(Format::Grype),
            _ => Err(Error::Invalid(
                format!("--input-format `{input}` is not a format Lineage imports"),
                "write `spdx`, `cyclonedx`, `trivy` or `grype`, or leave it out to detect the format".into(),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Spdx => "SPDX",
            Format::CycloneDx => "CycloneDX",
            Format::Trivy => "Trivy",
            Format::Grype => "Grype",
        }
    }
}

/// A digest the document says it describes, and the field that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub field: String,
    pub digest: Digest,
}

/// A parsed document, before it becomes a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub format: Format,
    /// `spdx-2.3`, `cyclonedx-1.6`, `trivy`, `grype`.
    pub label: String,
    /// Whether it carries vulnerability findings (a scanner report, or a CycloneDX document
    /// with a `vulnerabilities` list).
    pub has_findings: bool,
    pub sha256: Digest,
    pub size: u64,
    pub tool: Option<String>,
    pub created: Option<Timestamp>,
    pub subjects: Vec<Subject>,
    pub layers: Vec<SbomLayer>,
    pub packages: Vec<SbomPackage>,
    pub findings: Vec<SbomFinding>,
    /// What was accepted with a change (a purl that does not parse, recorded as generic).
    pub notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Reading: one streaming pass that hashes, counts and limits.

struct Tap<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("document over the size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Shows a byte count the way the size error states it.
pub fn human_size(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (MIB * 1024.0))
    } else if bytes >= 1 << 20 {
        format!("{:.0} MiB", bytes as f64 / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn too_large(name: &str, size: Option<u64>, limit: u64) -> Error {
    let size = size.map_or_else(
        || "larger".to_string(),
        |s| format!("{} ({s} bytes)", human_size(s)),
    );
    Error::Invalid(
        format!(
            "`{name}` is {size}; documents over {} ({limit} bytes) are refused",
            human_size(limit)
        ),
        "import the SBOM or scan of one image; a document this large is not one (split a multi-image report per image)".into(),
    )
}

/// Checks a known size before reading (a file's length), so a huge file is refused at once.
pub fn check_size(name: &str, size: u64) -> Result<(), Error> {
    if size > MAX_DOCUMENT_BYTES {
        return Err(too_large(name, Some(size), MAX_DOCUMENT_BYTES));
    }
    Ok(())
}

/// Reads one document from `reader` (named `name` in messages), streaming, and parses it.
pub fn read_document(
    reader: impl Read,
    name: &str,
    forced: Option<Format>,
) -> Result<Document, Error> {
    read_limited(reader, name, forced, MAX_DOCUMENT_BYTES)
}

/// [`read_document`] with another limit (tests).
pub fn read_limited(
    reader: impl Read,
    name: &str,
    forced: Option<Format>,
    limit: u64,
) -> Result<Document, Error> {
    let mut tap = Tap {
        inner: reader,
        hasher: Sha256::new(),
        count: 0,
        limit,
        exceeded: false,
    };
    let parsed = {
        let buffered = std::io::BufReader::with_capacity(1 << 16, &mut tap);
        let mut de = serde_json::Deserializer::from_reader(buffered);
        deserialize(&mut de, name)
    };
    if tap.exceeded {
        return Err(too_large(name, None, limit));
    }
    let raw = parsed?;
    let sha256 = Digest::sha256_from_hex(&hex::encode(tap.hasher.finalize()))
        .expect("a SHA-256 is 64 hex digits");
    convert(raw, name, forced, sha256, tap.count)
}

/// Parses a document held in memory (a registry blob or a DSSE payload).
pub fn parse_bytes(bytes: &[u8], name: &str, forced: Option<Format>) -> Result<Document, Error> {
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(too_large(
            name,
            Some(bytes.len() as u64),
            MAX_DOCUMENT_BYTES,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw = deserialize(&mut de, name)?;
    let sha256 = Digest::sha256_from_hex(&hex::encode(Sha256::digest(bytes)))
        .expect("a SHA-256 is 64 hex digits");
    convert(raw, name, forced, sha256, bytes.len() as u64)
}

/// One document from `de`, with nothing after it; a shape error names the path it is at.
fn deserialize<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    name: &str,
) -> Result<Raw, Error> {
    match serde_path_to_error::deserialize::<_, Raw>(&mut *de) {
        Ok(raw) => de
            .end()
            .map(|()| raw)
            .map_err(|e| not_json(name, String::new(), e)),
        Err(e) => {
            let path = e.path().to_string();
            Err(not_json(name, path, e.into_inner()))
        }
    }
}

fn not_json(name: &str, path: String, inner: serde_json::Error) -> Error {
    let at = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    let what = if inner.is_syntax() || inner.is_eof() {
        "is not valid JSON"
    } else {
        "does not have the shape of an SBOM or scan report"
    };
    Error::Invalid(
        format!("`{name}` {what}{at}: {inner}"),
        "pass the scanner's JSON output: `trivy image --format json`, `grype -o json`, `syft -o spdx-json` or `-o cyclonedx-json`".into(),
    )
}

// ---------------------------------------------------------------------------------------
// The shapes read: every format's top-level keys in one struct (they do not collide), each
// holding only what is recorded.

#[derive(Deserialize, Default)]
struct Raw {
    // SPDX 2.x
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<String>,
    #[serde(rename = "creationInfo")]
    creation_info: Option<SpdxCreation>,
    packages: Option<Vec<SpdxPackage>>,
    relationships: Option<Vec<SpdxRelationship>>,
    #[serde(rename = "documentDescribes")]
    document_describes: Option<Vec<String>>,
    // CycloneDX
    #[serde(rename = "bomFormat")]
    bom_format: Option<String>,
    #[serde(rename = "specVersion")]
    spec_version: Option<String>,
    metadata: Option<CdxMetadata>,
    components: Option<Vec<CdxComponent>>,
    vulnerabilities: Option<Vec<CdxVulnerability>>,
    // Trivy
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<serde_json::Number>,
    #[serde(rename = "ArtifactName")]
    artifact_name: Option<String>,
    #[serde(rename = "CreatedAt")]
    created_at: Option<String>,
    #[serde(rename = "Metadata")]
    trivy_metadata: Option<TrivyMetadata>,
    #[serde(rename = "Results")]
    results: Option<Vec<TrivyResult>>,
    // Grype
    matches: Option<Vec<GrypeMatch>>,
    source: Option<GrypeSource>,
    descriptor: Option<GrypeDescriptor>,
    // An in-toto statement, a DSSE envelope, or cosign's vulnerability predicate.
    #[serde(rename = "_type")]
    statement_type: Option<String>,
    subject: Option<Vec<InTotoSubject>>,
    #[serde(rename = "predicateType")]
    predicate_type: Option<String>,
    predicate: Option<Box<Raw>>,
    payload: Option<String>,
    scanner: Option<CosignScanner>,
}

#[derive(Deserialize)]
struct SpdxCreation {
    created: Option<String>,
    #[serde(default)]
    creators: Vec<String>,
}

#[derive(Deserialize)]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "versionInfo")]
    version_info: Option<String>,
    #[serde(rename = "externalRefs", default)]
    external_refs: Vec<SpdxExternalRef>,
    #[serde(rename = "primaryPackagePurpose")]
    purpose: Option<String>,
}

#[derive(Deserialize)]
struct SpdxExternalRef {
    #[serde(rename = "referenceType")]
    reference_type: Option<String>,
    #[serde(rename = "referenceLocator")]
    reference_locator: Option<String>,
}

#[derive(Deserialize)]
struct SpdxRelationship {
    #[serde(rename = "spdxElementId")]
    element: Option<String>,
    #[serde(rename = "relatedSpdxElement")]
    related: Option<String>,
    #[serde(rename = "relationshipType")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct CdxMetadata {
    timestamp: Option<String>,
    tools: Option<CdxTools>,
    component: Option<CdxComponent>,
}

/// `metadata.tools`: a list of tools (1.4) or `{components, services}` (1.5+).
#[derive(Deserialize)]
#[serde(untagged)]
enum CdxTools {
    List(Vec<CdxTool>),
    Object {
        #[serde(default)]
        components: Vec<CdxTool>,
    },
}

#[derive(Deserialize)]
struct CdxTool {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct CdxComponent {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    group: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    hashes: Vec<CdxHash>,
    #[serde(default)]
    properties: Vec<CdxProperty>,
    #[serde(default)]
    components: Vec<CdxComponent>,
}

#[derive(Deserialize)]
struct CdxHash {
    alg: String,
    content: String,
}

#[derive(Deserialize)]
struct CdxProperty {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct CdxVulnerability {
    id: Option<String>,
    #[serde(default)]
    ratings: Vec<CdxRating>,
    #[serde(default)]
    affects: Vec<CdxAffects>,
    #[serde(default)]
    references: Vec<CdxReference>,
}

#[derive(Deserialize)]
struct CdxRating {
    severity: Option<String>,
}

#[derive(Deserialize)]
struct CdxAffects {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct CdxReference {
    id: Option<String>,
}

#[derive(Deserialize)]
struct TrivyMetadata {
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Vec<String>,
    #[serde(rename = "DiffIDs", default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct TrivyResult {
    #[serde(rename = "Type")]
    ty: Option<String>,
    #[serde(rename = "Packages", default)]
    packages: Vec<TrivyPackage>,
    #[serde(rename = "Vulnerabilities", default)]
    vulnerabilities: Vec<TrivyVulnerability>,
}

#[derive(Deserialize)]
struct TrivyPackage {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Version")]
    version: Option<String>,
    #[serde(rename = "Identifier")]
    identifier: Option<TrivyIdentifier>,
    #[serde(rename = "Layer")]
    layer: Option<TrivyLayer>,
}

#[derive(Deserialize)]
struct TrivyIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct TrivyLayer {
    #[serde(rename = "Digest")]
    digest: Option<String>,
    #[serde(rename = "DiffID")]
    diff_id: Option<String>,
}

#[derive(Deserialize)]
struct TrivyVulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "PkgName")]
    pkg_name: Option<String>,
    #[serde(rename = "PkgIdentifier")]
    pkg_identifier: Option<TrivyIdentifier>,
    #[serde(rename = "InstalledVersion")]
    installed_version: Option<String>,
    #[serde(rename = "FixedVersion")]
    fixed_version: Option<String>,
    #[serde(rename = "Severity")]
    severity: Option<String>,
    #[serde(rename = "Layer")]
    layer: Option<TrivyLayer>,
}

#[derive(Deserialize)]
struct GrypeMatch {
    vulnerability: GrypeVulnerability,
    #[serde(rename = "relatedVulnerabilities", default)]
    related: Vec<GrypeRelated>,
    artifact: GrypeArtifact,
}

#[derive(Deserialize)]
struct GrypeVulnerability {
    id: String,
    severity: Option<String>,
    fix: Option<GrypeFix>,
}

#[derive(Deserialize)]
struct GrypeFix {
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct GrypeRelated {
    id: String,
}

#[derive(Deserialize)]
struct GrypeArtifact {
    name: String,
    version: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    locations: Vec<GrypeLocation>,
}

#[derive(Deserialize)]
struct GrypeLocation {
    #[serde(rename = "layerID")]
    layer_id: Option<String>,
}

#[derive(Deserialize)]
struct GrypeSource {
    /// An object for images, a string for directories and files.
    target: Option<GrypeTarget>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GrypeTarget {
    Image {
        #[serde(rename = "manifestDigest")]
        manifest_digest: Option<String>,
        #[serde(rename = "repoDigests", default)]
        repo_digests: Vec<String>,
        #[serde(default)]
        layers: Vec<GrypeTargetLayer>,
    },
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct GrypeTargetLayer {
    digest: Option<String>,
}

#[derive(Deserialize)]
struct GrypeDescriptor {
    name: Option<String>,
    version: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct InTotoSubject {
    #[serde(default)]
    digest: HashMap<String, String>,
}

#[derive(Deserialize)]
struct CosignScanner {
    result: Option<Box<Raw>>,
}

// ---------------------------------------------------------------------------------------
// Building the record's lists.

/// Packages and layers, each listed once, with the positions findings and packages refer to.
#[derive(Default)]
struct Inventory {
    layers: Vec<SbomLayer>,
    packages: Vec<SbomPackage>,
    by_package: HashMap<(Purl, Option<u32>), u32>,
    findings: Vec<SbomFinding>,
    notes: Vec<String>,
    bad_purls: usize,
}

impl Inventory {
    /// The position of the layer with these ids, adding it (or filling in the id it lacked).
    fn layer(&mut self, digest: Option<Digest>, diff_id: Option<Digest>) -> Option<u32> {
        if digest.is_none() && diff_id.is_none() {
            return None;
        }
        let found = self.layers.iter().position(|l| {
            (diff_id.is_some() && l.diff_id == diff_id) || (digest.is_some() && l.digest == digest)
        });
        Some(match found {
            Some(i) => {
                let l = &mut self.layers[i];
                if l.digest.is_none() {
                    l.digest = digest;
                }
                if l.diff_id.is_none() {
                    l.diff_id = diff_id;
                }
                i as u32
            }
            None => {
                self.layers.push(SbomLayer { digest, diff_id });
                (self.layers.len() - 1) as u32
            }
        })
    }

    fn package(&mut self, purl: Purl, layer: Option<u32>) -> u32 {
        let key = (purl, layer);
        if let Some(&i) = self.by_package.get(&key) {
            return i;
        }
        let i = self.packages.len() as u32;
        self.packages.push(SbomPackage {
            purl: key.0.clone(),
            layer,
        });
        self.by_package.insert(key, i);
        i
    }

    /// The package's purl: the document's, else one made from its ecosystem, name and version.
    fn purl(
        &mut self,
        given: Option<&str>,
        ty: &str,
        name: &str,
        version: Option<&str>,
    ) -> Option<Purl> {
        if let Some(p) = given.map(str::trim).filter(|p| !p.is_empty()) {
            match Purl::parse(p) {
                Ok(purl) => return Some(purl),
                Err(_) => {
                    self.bad_purls += 1;
                    if self.bad_purls == 1 {
                        self.notes.push(format!(
                            "`{p}` (package `{name}`) is not a package URL; recorded as `{}`",
                            Purl::of(ty, None, name, version)
                                .map(|x| x.to_string())
                                .unwrap_or_default()
                        ));
                    }
                }
            }
        }
        Purl::of(ty, None, name, version).ok()
    }

    fn finish(mut self) -> Inventory {
        if self.bad_purls > 1 {
            self.notes.push(format!(
                "{} packages had a purl that does not parse; each was recorded by ecosystem, name and version",
                self.bad_purls
            ));
        }
        self
    }
}

fn digest_opt(value: Option<&str>) -> Option<Digest> {
    value.and_then(|v| Digest::parse(v.trim()).ok())
}

/// `repo@sha256:…` → the digest.
fn repo_digest(value: &str) -> Option<Digest> {
    value
        .rsplit_once('@')
        .and_then(|(_, d)| Digest::parse(d).ok())
}

fn time_opt(value: Option<&str>) -> Option<Timestamp> {
    value.and_then(|v| Timestamp::parse(v).ok())
}

/// Lowercase severities, with the scanners' spellings folded into one set.
pub fn severity(value: Option<&str>) -> String {
    match value.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("critical") => "critical",
        Some("high") | Some("important") => "high",
        Some("medium") | Some("moderate") => "medium",
        Some("low") => "low",
        Some("negligible") | Some("none") | Some("info") => "negligible",
        _ => "unknown",
    }
    .to_string()
}

/// The purl type of a scanner's package type, for scanners that print no purl.
fn purl_type(scanner_type: Option<&str>) -> &'static str {
    match scanner_type.unwrap_or("").to_ascii_lowercase().as_str() {
        "alpine" | "apk" | "wolfi" | "chainguard" => "apk",
        "debian" | "ubuntu" | "deb" | "distroless" => "deb",
        "redhat" | "centos" | "rocky" | "alma" | "amazon" | "oracle" | "fedora" | "photon"
        | "suse" | "opensuse" | "cbl-mariner" | "rpm" => "rpm",
        "pip" | "pipenv" | "poetry" | "python-pkg" | "python" | "uv" => "pypi",
        "npm" | "yarn" | "pnpm" | "node-pkg" | "bun" => "npm",
        "gomod" | "gobinary" | "go-module" => "golang",
        "jar" | "pom" | "gradle" | "java-archive" | "sbt" => "maven",
        "cargo" | "rustbinary" | "rust-crate" => "cargo",
        "composer" | "php-composer" => "composer",
        "bundler" | "gemspec" | "gem" => "gem",
        "nuget" | "dotnet-core" | "dotnet" => "nuget",
        "cocoapods" | "pod" => "cocoapods",
        "conan" | "conan-lock" => "conan",
        "hex" => "hex",
        "pub" | "dart-pub" => "pub",
        "swift" => "swift",
        _ => "generic",
    }
}

// ---------------------------------------------------------------------------------------
// Conversion.

fn unknown_document(name: &str) -> Error {
    Error::Invalid(
        format!(
            "`{name}` is not an SBOM or scan report Lineage imports: it has none of `spdxVersion` (SPDX), `bomFormat` (CycloneDX), `SchemaVersion` (Trivy) or `matches` (Grype)"
        ),
        "pass SPDX 2.2/2.3 JSON, CycloneDX 1.4–1.6 JSON, Trivy JSON (`trivy image --format json`) or Grype JSON (`grype -o json`)".into(),
    )
}

fn bad_field(name: &str, field: &str, value: &str, problem: &str, hint: &str) -> Error {
    Error::Invalid(
        format!("`{name}`: `{field}` `{value}` {problem}"),
        hint.to_string(),
    )
}

fn convert(
    raw: Raw,
    name: &str,
    forced: Option<Format>,
    sha256: Digest,
    size: u64,
) -> Result<Document, Error> {
    let mut subjects = Vec::new();
    let raw = unwrap_envelopes(raw, name, &mut subjects)?;
    let detected = if raw.spdx_version.is_some() {
        Format::Spdx
    } else if raw.bom_format.is_some() {
        Format::CycloneDx
    } else if raw.schema_version.is_some() {
        Format::Trivy
    } else if raw.matches.is_some() {
        Format::Grype
    } else {
        return Err(unknown_document(name));
    };
    if let Some(f) = forced {
        if f != detected {
            return Err(Error::Invalid(
                format!(
                    "`{name}` is {} but `--input-format` says {}",
                    detected.name(),
                    f.name()
                ),
                "drop `--input-format`; the format is detected from the document".into(),
            ));
        }
    }
    let mut doc = match detected {
        Format::Spdx => spdx(raw, name)?,
        Format::CycloneDx => cyclonedx(raw, name)?,
        Format::Trivy => trivy(raw, name)?,
        Format::Grype => grype(raw)?,
    };
    doc.subjects.extend(subjects);
    doc.sha256 = sha256;
    doc.size = size;
    Ok(doc)
}

/// Opens a DSSE envelope and an in-toto statement (keeping its subjects), and cosign's
/// vulnerability predicate, down to the document inside.
fn unwrap_envelopes(mut raw: Raw, name: &str, subjects: &mut Vec<Subject>) -> Result<Raw, Error> {
    for _ in 0..3 {
        if let Some(payload) = raw.payload.take() {
            let bytes = lineage_attest::dsse::decode_base64(&payload).map_err(|e| {
                bad_field(
                    name,
                    "payload",
                    "…",
                    &format!("is not base64 ({e})"),
                    "pass the DSSE envelope as the attestation tool wrote it",
                )
            })?;
            drop(payload);
            let mut de = serde_json::Deserializer::from_slice(&bytes);
            raw = deserialize(&mut de, &format!("{name} (DSSE payload)"))?;
            continue;
        }
        if raw.statement_type.is_some() || raw.predicate_type.is_some() {
            for (i, s) in raw.subject.take().unwrap_or_default().iter().enumerate() {
                if let Some(hex) = s.digest.get("sha256") {
                    let d = Digest::sha256_from_hex(hex).map_err(|_| {
                        bad_field(
                            name,
                            &format!("subject[{i}].digest.sha256"),
                            hex,
                            "is not a SHA-256 digest",
                            "the attestation's subject must be the image's digest",
                        )
                    })?;
                    subjects.push(Subject {
                        field: format!("subject[{i}].digest.sha256"),
                        digest: d,
                    });
                }
            }
            let Some(predicate) = raw.predicate.take() else {
                return Err(bad_field(
                    name,
                    "predicate",
                    "",
                    "is missing",
                    "an SBOM attestation carries the SBOM as its predicate",
                ));
            };
            raw = *predicate;
            continue;
        }
        if let Some(scanner) = raw.scanner.take() {
            let Some(result) = scanner.result else {
                return Err(bad_field(
                    name,
                    "scanner.result",
                    "",
                    "is missing",
                    "a vulnerability attestation carries the scanner's report as `scanner.result`",
                ));
            };
            raw = *result;
            continue;
        }
        break;
    }
    Ok(raw)
}

fn empty(format: Format, label: String) -> Document {
    Document {
        format,
        label,
        has_findings: false,
        sha256: Digest::sha256_from_hex(&"0".repeat(64)).expect("valid"),
        size: 0,
        tool: None,
        created: None,
        subjects: Vec::new(),
        layers: Vec::new(),
        packages: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    }
}

fn fill(doc: &mut Document, inv: Inventory) {
    let inv = inv.finish();
    doc.layers = inv.layers;
    doc.packages = inv.packages;
    doc.findings = inv.findings;
    doc.notes.extend(inv.notes);
}

fn spdx(raw: Raw, name: &str) -> Result<Document, Error> {
    let version = raw.spdx_version.unwrap_or_default();
    let label = match version.as_str() {
        "SPDX-2.2" => "spdx-2.2",
        "SPDX-2.3" => "spdx-2.3",
        other => {
            return Err(bad_field(
                name,
                "spdxVersion",
                other,
                "is not supported (SPDX-2.2 and SPDX-2.3 are)",
                "export SPDX 2.3 JSON, e.g. `syft IMAGE -o spdx-json`",
            ))
        }
    };
    let mut doc = empty(Format::Spdx, label.into());
    if let Some(c) = &raw.creation_info {
        doc.created = time_opt(c.created.as_deref());
        doc.tool = c
            .creators
            .iter()
            .find_map(|c| c.strip_prefix("Tool:"))
            .map(|t| t.trim().to_string());
    }
    // The packages the document describes are the image itself, not its contents.
    let mut described: Vec<String> = raw.document_describes.unwrap_or_default();
    for r in raw.relationships.unwrap_or_default() {
        match (r.kind.as_deref(), r.element.as_deref(), r.related) {
            (Some("DESCRIBES"), Some("SPDXRef-DOCUMENT"), Some(rel)) => described.push(rel),
            (Some("DESCRIBED_BY"), Some(el), Some(rel)) if rel == "SPDXRef-DOCUMENT" => {
                described.push(el.to_string())
            }
            _ => {}
        }
    }
    let mut inv = Inventory::default();
    for (i, p) in raw.packages.unwrap_or_default().into_iter().enumerate() {
        let purl_ref = p
            .external_refs
            .iter()
            .find(|r| r.reference_type.as_deref() == Some("purl"))
            .and_then(|r| r.reference_locator.clone());
        let is_described = p.spdx_id.as_ref().is_some_and(|id| described.contains(id));
        let oci = purl_ref
            .as_deref()
            .and_then(|p| Purl::parse(p).ok())
            .filter(|p| matches!(p.ty(), "oci" | "docker"));
        if is_described && (p.purpose.as_deref() == Some("CONTAINER") || oci.is_some()) {
            if let Some(d) = oci.as_ref().and_then(|o| digest_opt(o.version())) {
                subjects::push(
                    &mut doc.subjects,
                    format!("packages[{i}].externalRefs (purl)"),
                    d,
                );
            } else if let Some(d) = digest_opt(p.version_info.as_deref()) {
                subjects::push(&mut doc.subjects, format!("packages[{i}].versionInfo"), d);
            }
            continue;
        }
        let Some(pkg_name) = p.name.filter(|n| !n.trim().is_empty()) else {
            continue;
        };
        if let Some(purl) = inv.purl(
            purl_ref.as_deref(),
            "generic",
            &pkg_name,
            p.version_info.as_deref(),
        ) {
            inv.package(purl, None);
        }
    }
    fill(&mut doc, inv);
    Ok(doc)
}

/// Subjects found in SBOM root components.
mod subjects {
    use super::{Digest, Subject};

    pub fn push(list: &mut Vec<Subject>, field: String, digest: Digest) {
        if !list.iter().any(|s| s.digest == digest) {
            list.push(Subject { field, digest });
        }
    }
}

/// Checks CycloneDX hash values against their algorithm (the schema's patterns).
fn check_hashes(name: &str, path: &str, hashes: &[CdxHash]) -> Result<(), Error> {
    for (j, h) in hashes.iter().enumerate() {
        let len = match h.alg.as_str() {
            "MD5" => Some(32),
            "SHA-1" => Some(40),
            "SHA-256" | "SHA3-256" | "BLAKE2b-256" => Some(64),
            "SHA-384" | "SHA3-384" | "BLAKE2b-384" => Some(96),
            "SHA-512" | "SHA3-512" | "BLAKE2b-512" => Some(128),
            "BLAKE3" | "Streebog-256" | "Streebog-512" => None,
            other => {
                return Err(bad_field(
                    name,
                    &format!("{path}.hashes[{j}].alg"),
                    other,
                    "is not a CycloneDX hash algorithm",
                    "fix the generator's output; the CycloneDX schema lists MD5, SHA-1, SHA-256, SHA-384, SHA-512, SHA3-*, BLAKE2b-* and BLAKE3",
                ))
            }
        };
        let hex = !h.content.is_empty() && h.content.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || len.is_some_and(|n| h.content.len() != n) {
            return Err(bad_field(
                name,
                &format!("{path}.hashes[{j}].content"),
                &h.content,
                &match len {
                    Some(n) => format!("is not a {} hash ({n} hex digits)", h.alg),
                    None => format!("is not a {} hash (hex digits)", h.alg),
                },
                "the document fails the CycloneDX schema; regenerate it",
            ));
        }
    }
    Ok(())
}

fn cdx_layer(props: &[CdxProperty]) -> (Option<Digest>, Option<Digest>) {
    let mut digest = None;
    let mut diff_id = None;
    for p in props {
        let v = p.value.as_deref();
        match p.name.as_str() {
            // Syft: the first location's layer (a diff id).
            "syft:location:0:layerID" => diff_id = diff_id.or(digest_opt(v)),
            "aquasecurity:trivy:LayerDiffID" => diff_id = digest_opt(v),
            "aquasecurity:trivy:LayerDigest" => digest = digest_opt(v),
            _ => {}
        }
    }
    (digest, diff_id)
}

fn cyclonedx(raw: Raw, name: &str) -> Result<Document, Error> {
    if raw.bom_format.as_deref() != Some("CycloneDX") {
        return Err(bad_field(
            name,
            "bomFormat",
            raw.bom_format.as_deref().unwrap_or(""),
            "is not `CycloneDX`",
            "pass a CycloneDX JSON document",
        ));
    }
    let spec = raw.spec_version.unwrap_or_default();
    if !matches!(spec.as_str(), "1.4" | "1.5" | "1.6") {
        return Err(bad_field(
            name,
            "specVersion",
            &spec,
            "is not supported (CycloneDX 1.4, 1.5 and 1.6 are)",
            "export CycloneDX 1.4–1.6 JSON, e.g. `syft IMAGE -o cyclonedx-json@1.6` or `cyclonedx-py environment --sv 1.6`",
        ));
    }
    let mut doc = empty(Format::CycloneDx, format!("cyclonedx-{spec}"));
    let mut inv = Inventory::default();
    if let Some(m) = raw.metadata {
        doc.created = time_opt(m.timestamp.as_deref());
        doc.tool = match m.tools {
            Some(CdxTools::List(t)) | Some(CdxTools::Object { components: t }) => {
                t.into_iter().next().and_then(|t| {
                    t.name.map(|n| match t.version {
                        Some(v) => format!("{n} {v}"),
                        None => n,
                    })
                })
            }
            None => None,
        };
        if let Some(c) = m.component {
            let oci = c.purl.as_deref().and_then(|p| Purl::parse(p).ok());
            let field = "metadata.component";
            if let Some(d) = oci
                .as_ref()
                .filter(|p| matches!(p.ty(), "oci" | "docker"))
                .and_then(|p| digest_opt(p.version()))
            {
                subjects::push(&mut doc.subjects, format!("{field}.purl"), d);
            } else if c.ty.as_deref() == Some("container") {
                if let Some(d) = digest_opt(c.version.as_deref()) {
                    subjects::push(&mut doc.subjects, format!("{field}.version"), d);
                }
            }
        }
    }
    // Components nest; walk them depth first, keeping the path for messages.
    let mut refs: HashMap<String, u32> = HashMap::new();
    let mut stack: Vec<(String, CdxComponent)> = raw
        .components
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("components[{i}]"), c))
        .rev()
        .collect();
    while let Some((path, c)) = stack.pop() {
        check_hashes(name, &path, &c.hashes)?;
        for (j, child) in c.components.into_iter().enumerate().rev() {
            stack.push((format!("{path}.components[{j}]"), child));
        }
        if matches!(
            c.ty.as_deref(),
            Some("operating-system") | Some("file") | Some("container")
        ) {
            continue;
        }
        let Some(comp_name) = c.name.filter(|n| !n.trim().is_empty()) else {
            continue;
        };
        let full = match c.group.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => format!("{g}/{comp_name}"),
            None => comp_name.clone(),
        };
        let (digest, diff_id) = cdx_layer(&c.properties);
        let layer = inv.layer(digest, diff_id);
        if let Some(purl) = inv.purl(c.purl.as_deref(), "generic", &full, c.version.as_deref()) {
            let i = inv.package(purl, layer);
            if let Some(r) = c.bom_ref {
                refs.insert(r, i);
            }
        }
    }
    if let Some(vulns) = raw.vulnerabilities {
        doc.has_findings = true;
        for v in vulns {
            let Some(id) = v.id.filter(|i| !i.is_empty()) else {
                continue;
            };
            let sev = severity(v.ratings.iter().find_map(|r| r.severity.as_deref()));
            let aliases: Vec<String> = v
                .references
                .iter()
                .filter_map(|r| r.id.clone())
                .filter(|a| *a != id)
                .collect();
            for a in &v.affects {
                if let Some(&package) = refs.get(&a.reference) {
                    inv.findings.push(SbomFinding {
                        id: id.clone(),
                        aliases: aliases.clone(),
                        package,
                        severity: sev.clone(),
                        fixed: None,
                    });
                }
            }
        }
    }
    fill(&mut doc, inv);
    Ok(doc)
}

fn trivy(raw: Raw, name: &str) -> Result<Document, Error> {
    let version = raw
        .schema_version
        .map(|n| n.to_string())
        .unwrap_or_default();
    if version != "2" {
        return Err(bad_field(
            name,
            "SchemaVersion",
            &version,
            "is not supported (Trivy's SchemaVersion 2 is)",
            "scan with a current Trivy: `trivy image --format json IMAGE`",
        ));
    }
    let mut doc = empty(Format::Trivy, "trivy".into());
    doc.has_findings = true;
    doc.tool = Some("trivy".into());
    doc.created = time_opt(raw.created_at.as_deref());
    let mut inv = Inventory::default();
    if let Some(m) = raw.trivy_metadata {
        for (i, r) in m.repo_digests.iter().enumerate() {
            if let Some(d) = repo_digest(r) {
                subjects::push(&mut doc.subjects, format!("Metadata.RepoDigests[{i}]"), d);
            }
        }
        // The image's layers, bottom first: which ones are the base's is decided later.
        for d in &m.diff_ids {
            inv.layer(None, digest_opt(Some(d)));
        }
    }
    if let Some(d) = raw.artifact_name.as_deref().and_then(repo_digest) {
        subjects::push(&mut doc.subjects, "ArtifactName".into(), d);
    }
    for result in raw.results.unwrap_or_default() {
        let ty = purl_type(result.ty.as_deref());
        for p in result.packages {
            let Some(pkg_name) = p.name else { continue };
            let layer = p.layer.and_then(|l| {
                inv.layer(
                    digest_opt(l.digest.as_deref()),
                    digest_opt(l.diff_id.as_deref()),
                )
            });
            let given = p.identifier.and_then(|i| i.purl);
            if let Some(purl) = inv.purl(given.as_deref(), ty, &pkg_name, p.version.as_deref()) {
                inv.package(purl, layer);
            }
        }
        for v in result.vulnerabilities {
            let Some(pkg_name) = v.pkg_name else { continue };
            let layer = v.layer.and_then(|l| {
                inv.layer(
                    digest_opt(l.digest.as_deref()),
                    digest_opt(l.diff_id.as_deref()),
                )
            });
            let given = v.pkg_identifier.and_then(|i| i.purl);
            let Some(purl) = inv.purl(
                given.as_deref(),
                ty,
                &pkg_name,
                v.installed_version.as_deref(),
            ) else {
                continue;
            };
            let package = inv.package(purl, layer);
            inv.findings.push(SbomFinding {
                id: v.id,
                aliases: Vec::new(),
                package,
                severity: severity(v.severity.as_deref()),
                fixed: v.fixed_version.filter(|f| !f.trim().is_empty()),
            });
        }
    }
    fill(&mut doc, inv);
    Ok(doc)
}

fn grype(raw: Raw) -> Result<Document, Error> {
    let mut doc = empty(Format::Grype, "grype".into());
    doc.has_findings = true;
    if let Some(d) = raw.descriptor {
        doc.tool = d
            .name
            .map(|n| match d.version.filter(|v| !v.starts_with('[')) {
                Some(v) => format!("{n} {v}"),
                None => n,
            });
        doc.created = time_opt(d.timestamp.as_deref());
    }
    let mut inv = Inventory::default();
    if let Some(source) = raw.source {
        if let Some(GrypeTarget::Image {
            manifest_digest,
            repo_digests,
            layers,
        }) = source.target
        {
            if let Some(d) = digest_opt(manifest_digest.as_deref()) {
                subjects::push(&mut doc.subjects, "source.target.manifestDigest".into(), d);
            }
            for (i, r) in repo_digests.iter().enumerate() {
                if let Some(d) = repo_digest(r) {
                    subjects::push(
                        &mut doc.subjects,
                        format!("source.target.repoDigests[{i}]"),
                        d,
                    );
                }
            }
            // Syft's layer digests are diff ids, bottom first.
            for l in layers {
                inv.layer(None, digest_opt(l.digest.as_deref()));
            }
        }
    }
    for m in raw.matches.unwrap_or_default() {
        let a = m.artifact;
        let layer = a
            .locations
            .iter()
            .find_map(|l| digest_opt(l.layer_id.as_deref()))
            .and_then(|d| inv.layer(None, Some(d)));
        let Some(purl) = inv.purl(
            a.purl.as_deref(),
            purl_type(a.ty.as_deref()),
            &a.name,
            a.version.as_deref(),
        ) else {
            continue;
        };
        let package = inv.package(purl, layer);
        let fixed = m
            .vulnerability
            .fix
            .map(|f| f.versions.join(", "))
            .filter(|f| !f.is_empty());
        inv.findings.push(SbomFinding {
            id: m.vulnerability.id.clone(),
            aliases: m
                .related
                .into_iter()
                .map(|r| r.id)
                .filter(|r| *r != m.vulnerability.id)
                .collect(),
            package,
            severity: severity(m.vulnerability.severity.as_deref()),
            fixed,
        });
    }
    fill(&mut doc, inv);
    Ok(doc)
}

// ---------------------------------------------------------------------------------------
// From document to record.

/// What the import is for: the image, the command's kind, where the document came from, and
/// who imports it when.
#[derive(Debug, Clone)]
pub struct Target {
    pub image: Repository,
    pub digest: Digest,
    pub kind: Kind,
    /// `file` or the registry attachment.
    pub origin: String,
    /// Other digests of the same image a document may name: the platform manifests of an
    /// index, as the registry lists them.
    pub aliases: Vec<Digest>,
    pub by: Identity,
    pub at: Timestamp,
}

/// Checks that the document fits the command and describes the image, and makes the record.
/// Every refusal is bad input: nothing is written.
pub fn to_record(doc: Document, target: &Target, name: &str) -> Result<SbomImport, Error> {
    match (target.kind, doc.format) {
        (Kind::Sbom, Format::Trivy | Format::Grype) => {
            return Err(Error::Invalid(
                format!("`{name}` is a {} vulnerability report, not an SBOM", doc.format.name()),
                format!(
                    "import it with `lineage scan add {}@{} {name}`",
                    target.image, target.digest
                ),
            ))
        }
        (Kind::Scan, Format::Spdx) | (Kind::Scan, Format::CycloneDx) if !doc.has_findings => {
            return Err(Error::Invalid(
                format!(
                    "`{name}` is an SBOM ({}) with no vulnerability findings (no `vulnerabilities` list)",
                    doc.label
                ),
                format!(
                    "import it with `lineage sbom add {}@{} {name}`",
                    target.image, target.digest
                ),
            ))
        }
        _ => {}
    }
    let ours = |d: &Digest| *d == target.digest || target.aliases.contains(d);
    if !doc.subjects.is_empty() && !doc.subjects.iter().any(|s| ours(&s.digest)) {
        let s = &doc.subjects[0];
        return Err(Error::Invalid(
            format!(
                "`{name}` describes `{}` (`{}`), not `{}`",
                s.digest, s.field, target.digest
            ),
            format!(
                "import it for the image it describes (`{}@{}`), or check that `{name}` is the {} of `{}@{}`",
                target.image,
                s.digest,
                target.kind.as_str(),
                target.image,
                target.digest
            ),
        ));
    }
    // Text from the document reaches terminals and pages; control characters are refused
    // here rather than escaped everywhere.
    let texts = doc
        .findings
        .iter()
        .flat_map(|f| {
            std::iter::once(&f.id)
                .chain(&f.aliases)
                .chain(f.fixed.as_ref())
        })
        .chain(doc.tool.as_ref());
    for t in texts {
        if t.chars().any(char::is_control) || t.len() > 1024 {
            return Err(Error::Invalid(
                format!(
                    "`{name}` holds `{}`, which has a control character or is too long",
                    t.escape_debug()
                ),
                "check where the document came from; scanners do not write such ids".into(),
            ));
        }
    }
    Ok(SbomImport {
        image: target.image.clone(),
        digest: target.digest.clone(),
        kind: target.kind.as_str().to_string(),
        format: doc.label,
        document: doc.sha256,
        size: doc.size,
        tool: doc.tool,
        created: doc.created,
        origin: Some(target.origin.clone()),
        layers: doc.layers,
        packages: doc.packages,
        findings: doc.findings,
        by: target.by.clone(),
        at: target.at,
    })
}

/// What one import did: the `sbom add` / `scan add` result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportResult {
    pub schema: u32,
    /// `recorded`, or `unchanged` when this document is already the newest of its kind and
    /// format for the digest.
    pub outcome: String,
    /// `sbom` or `scan`.
    pub kind: String,
    /// The ledger entry (the existing one when unchanged).
    pub index: u64,
    pub image: String,
    pub digest: String,
    pub format: String,
    pub document: String,
    pub size: u64,
    pub tool: Option<String>,
    pub created: Option<Timestamp>,
    pub origin: Option<String>,
    pub packages: usize,
    pub findings: usize,
    pub layers: usize,
    /// What was accepted with a change (e.g. purls that do not parse).
    pub notes: Vec<String>,
}

/// Records imports, one ledger record each, all in one transaction. A document that is
/// already the newest of its kind and format for its digest is not recorded again.
pub fn record_imports(
    store: &mut dyn lineage_store::Store,
    imports: Vec<(SbomImport, Vec<String>)>,
    by: &Identity,
    at: Timestamp,
) -> Result<Vec<ImportResult>, Error> {
    let mut results = Vec::with_capacity(imports.len());
    let mut records = Vec::new();
    let mut pending = Vec::new();
    for (import, notes) in imports {
        let existing = store.sbom_imports(&import.digest)?.into_iter().find(|i| {
            i.kind == import.kind && i.format == import.format && i.document == import.document
        });
        let mut result = ImportResult {
            schema: 1,
            outcome: "recorded".into(),
            kind: import.kind.clone(),
            index: 0,
            image: import.image.to_string(),
            digest: import.digest.to_string(),
            format: import.format.clone(),
            document: import.document.to_string(),
            size: import.size,
            tool: import.tool.clone(),
            created: import.created,
            origin: import.origin.clone(),
            packages: import.packages.len(),
            findings: import.findings.len(),
            layers: import.layers.len(),
            notes,
        };
        match existing {
            Some(e) => {
                result.outcome = "unchanged".into();
                result.index = e.entry;
            }
            None => {
                pending.push(results.len());
                records.push(lineage_model::Record::Sbom(import));
            }
        }
        results.push(result);
    }
    if !records.is_empty() {
        let indexes = store.append(&records, at, Some(by))?;
        for (slot, index) in pending.into_iter().zip(indexes) {
            results[slot].index = index;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document, Error> {
        read_document(text.as_bytes(), "doc.json", None)
    }

    #[test]
    fn unknown_documents_name_the_fields_looked_for() {
        let e = parse(r#"{"hello": 1}"#).unwrap_err().to_string();
        assert!(
            e.contains("`spdxVersion`") && e.contains("`matches`"),
            "{e}"
        );
        let e = parse(r#"{"bomFormat": "CycloneDX", "specVersion": "1.2"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`specVersion` `1.2`"), "{e}");
        let e = parse(r#"{"SchemaVersion": 1}"#).unwrap_err().to_string();
        assert!(e.contains("`SchemaVersion` `1`"), "{e}");
    }

    #[test]
    fn type_errors_name_the_path() {
        let e = parse(
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": 3}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`components[0].name`"), "{e}");
    }

    #[test]
    fn the_limit_is_stated() {
        let text = format!("{{\"matches\": [], \"pad\": \"{}\"}}", "x".repeat(5000));
        let e = read_limited(text.as_bytes(), "big.json", None, 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1024 bytes"), "{e}");
        let e = check_size("huge.json", 1 << 30).unwrap_err().to_string();
        assert!(e.contains("1.0 GiB") && e.contains("256 MiB"), "{e}");
    }

    #[test]
    fn severities_fold() {
        assert_eq!(severity(Some("MEDIUM")), "medium");
        assert_eq!(severity(Some("Important")), "high");
        assert_eq!(severity(None), "unknown");
    }

    /// The shared fixtures: real scanner and SBOM tool outputs (`../shared/fixtures`).
    mod fixtures {
        use super::*;

        fn doc(relative: &str) -> Document {
            let path = lineage_testkit::fixture(relative);
            let file = std::fs::File::open(&path).unwrap();
            read_document(file, relative, None).unwrap()
        }

        fn purls(d: &Document) -> Vec<String> {
            d.packages.iter().map(|p| p.purl.to_string()).collect()
        }

        #[test]
        fn trivy_alpine_gives_four_medium_fixed_findings_with_layers() {
            let d = doc("trivy/trivy.alpine-310-registry.json");
            assert_eq!(d.label, "trivy");
            assert_eq!(d.findings.len(), 4);
            assert!(d
                .findings
                .iter()
                .all(|f| f.severity == "medium" && f.fixed.is_some()));
            let ids: std::collections::BTreeSet<_> =
                d.findings.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(ids.len(), 2, "2 CVEs × 2 packages: {ids:?}");
            assert_eq!(
                purls(&d),
                [
                    "pkg:apk/alpine/libcrypto1.1@1.1.1c-r0?arch=x86_64&distro=3.10.2",
                    "pkg:apk/alpine/libssl1.1@1.1.1c-r0?arch=x86_64&distro=3.10.2"
                ]
            );
            // One layer, named by both its blob digest and its diff id.
            assert_eq!(d.layers.len(), 1);
            assert_eq!(
                d.layers[0].diff_id.as_ref().unwrap().to_string(),
                "sha256:03901b4a2ea88eeaad62dbe59b072b28b6efa00491962b8741081c5df50c65e0"
            );
            assert_eq!(
                d.layers[0].digest.as_ref().unwrap().to_string(),
                "sha256:9d48c3bd43c520dc2784e868a780e976b207cbf493eaff8c6596eb871cbd9609"
            );
            assert!(d.packages.iter().all(|p| p.layer == Some(0)));
            assert_eq!(d.subjects[0].field, "Metadata.RepoDigests[0]");
            assert_eq!(
                d.subjects[0].digest.to_string(),
                "sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60"
            );
            assert_eq!(d.created.unwrap().date(), "2021-08-25");
        }

        #[test]
        fn trivy_cocoapods_keeps_the_fixed_list_as_written() {
            let d = doc("trivy/trivy.cocoapods-repo.json");
            assert_eq!(d.findings.len(), 1);
            assert_eq!(
                d.findings[0].fixed.as_deref(),
                Some("2.29.1, 2.39.1, 2.42.0")
            );
            assert_eq!(purls(&d), ["pkg:cocoapods/_NIODataStructures@2.41.0"]);
            assert!(d.subjects.is_empty(), "a repository scan names no image");
        }

        #[test]
        fn grype_image_gives_two_matches_with_fixes_and_subject() {
            let d = doc("grype/grype.TestJsonImgsPresenter.golden.json");
            assert_eq!(d.label, "grype");
            assert_eq!(d.findings.len(), 2);
            let low = d.findings.iter().find(|f| f.id == "CVE-1999-0001").unwrap();
            assert_eq!(low.severity, "low");
            assert_eq!(low.fixed.as_deref(), Some("1.2.1, 2.1.3, 3.4.0"));
            let critical = d.findings.iter().find(|f| f.id == "CVE-1999-0002").unwrap();
            assert_eq!(critical.severity, "critical");
            assert_eq!(critical.fixed, None);
            // An artifact without a purl is named by its type, name and version.
            assert_eq!(
                purls(&d),
                ["pkg:rpm/package-1@1.1.1", "pkg:deb/package-2@2.2.2"]
            );
            assert_eq!(d.subjects[0].field, "source.target.manifestDigest");
            assert_eq!(d.layers.len(), 3, "the image's layer list");
        }

        #[test]
        fn grype_directory_target_is_a_string() {
            let d = doc("grype/grype.TestJsonDirsPresenter.golden.json");
            assert_eq!(d.findings.len(), 2);
            assert!(d.subjects.is_empty());
        }

        #[test]
        fn spdx_image_sbom_leaves_out_the_image_itself() {
            let d = doc("sbom-spdx/syft.TestSPDXJSONImageEncoder.golden.spdx.json");
            assert_eq!(d.label, "spdx-2.3");
            assert!(!d.has_findings);
            assert_eq!(
                purls(&d),
                [
                    "pkg:generic/package-1@1.0.1",
                    "pkg:deb/debian/package-2@2.0.1"
                ]
            );
            assert!(d.notes[0].contains("`a-purl-1`"), "{:?}", d.notes);
            assert_eq!(
                d.subjects[0].digest.to_string(),
                "sha256:2731251dc34951c0e50fcc643b4c5f74922dad1a5d98f302b504cf46cd5d9368"
            );
            assert_eq!(d.tool.as_deref(), Some("syft-v0.42.0-bogus"));
        }

        #[test]
        fn spdx_2_2_with_no_packages_imports_empty() {
            let d = doc("sbom-spdx/cosign.bom-go-mod.spdx-2.2.json");
            assert_eq!(d.label, "spdx-2.2");
            assert!(d.packages.is_empty());
            assert_eq!(d.created.unwrap().to_string(), "2022-06-07T22:14:56Z");
        }

        #[test]
        fn cyclonedx_syft_image_keeps_libraries_not_the_os() {
            let d = doc("sbom-cyclonedx/syft.TestCycloneDxImageEncoder.golden.cdx-1.6.json");
            assert_eq!(d.label, "cyclonedx-1.6");
            assert_eq!(
                purls(&d),
                [
                    "pkg:generic/package-1@1.0.1",
                    "pkg:deb/debian/package-2@2.0.1"
                ]
            );
            // `sha256:redacted` is no digest: no layer, no subject.
            assert!(d.layers.is_empty() && d.subjects.is_empty());
            assert_eq!(d.tool.as_deref(), Some("syft v0.42.0-bogus"));
        }

        #[test]
        fn cyclonedx_1_4_and_1_5_import() {
            let d = doc("sbom-cyclonedx/cosign.bom-go-mod.cdx-1.4.json");
            assert_eq!(d.label, "cyclonedx-1.4");
            assert!(d.packages.is_empty());
            let d = doc("sbom-cyclonedx/cyclonedx-spec.valid-component-hashes-1.5.json");
            assert_eq!(purls(&d), ["pkg:generic/acme-example@1.0.0"]);
        }

        #[test]
        fn cyclonedx_bad_hash_is_refused_naming_the_field() {
            let path = lineage_testkit::fixture(
                "sbom-cyclonedx/cyclonedx-spec.invalid-hash-sha256-1.5.json",
            );
            let e = read_document(std::fs::File::open(path).unwrap(), "bad.json", None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`components[0].hashes[2].content` `foo`"), "{e}");
        }

        #[test]
        fn a_scan_for_another_digest_is_refused_naming_the_field() {
            let d = doc("trivy/trivy.alpine-310-registry.json");
            let target = Target {
                image: Repository::parse("localhost/alpine").unwrap(),
                digest: Digest::sha256_from_hex(&"a".repeat(64)).unwrap(),
                kind: Kind::Scan,
                origin: "file".into(),
                aliases: Vec::new(),
                by: Identity::parse("sec@acme.dev").unwrap(),
                at: Timestamp::from_unix(0),
            };
            let e = to_record(d.clone(), &target, "scan.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("`Metadata.RepoDigests[0]`"), "{e}");
            let ok = Target {
                digest: d.subjects[0].digest.clone(),
                ..target
            };
            let record = to_record(d, &ok, "scan.json").unwrap();
            assert_eq!(record.kind, "scan");
            assert_eq!(record.findings.len(), 4);
        }
    }
}
