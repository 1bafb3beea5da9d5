//! The CVE questions: which running images contain package X (or CVE X), is it in the base
//! or the app, who fixes it, and what was not scanned recently.
//!
//! Packages and findings come from imported SBOMs and scans (`sbom`), through the store's
//! `sbom_*` projections; only the newest import of each kind and format of a digest counts.
//! Every package shown says whether it is in the base image or the application, and why
//! ([`Attributor`]): its layer is (or is not) one of the base's layers, known from `base add`
//! or from the base's own SBOM; or the base's own SBOM lists (or does not list) it; otherwise
//! "unknown", never a guess. A running production digest whose newest scan is older than
//! `[vulns] max_age` is reported as not scanned recently, never as clean.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use lineage_model::{name_key, BuildRecord, Digest, EnvName, Purl, Record, ServiceName, Timestamp};
use lineage_store::{SbomFindingRow, SbomPackageRow, SbomQuery, Store};
use serde::{Deserialize, Serialize};

use crate::freshness::rebuild_command;
use crate::query::{sort_placements, Owners, Placement};
use crate::{Config, Error};

// ---------------------------------------------------------------------------------------
// Settings: `[vulns]`.

/// `[vulns]` in lineage.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnsConfig {
    /// A running production digest whose newest scan is older than this is "not scanned
    /// recently" (seconds).
    pub max_age_secs: i64,
    /// As written (`7d`), for reports.
    pub max_age: String,
}

impl Default for VulnsConfig {
    fn default() -> VulnsConfig {
        VulnsConfig {
            max_age_secs: 7 * 86_400,
            max_age: "7d".into(),
        }
    }
}

impl VulnsConfig {
    /// Parses `max_age`: a whole number of days, or a string `<n>d` / `<n>h`.
    pub fn parse_max_age(value: &lineage_toml::Scalar) -> Result<VulnsConfig, String> {
        let problem = || {
            "`max_age` must be a number of days (`7`) or a duration such as `\"7d\"` or `\"36h\"`"
                .to_string()
        };
        let (n, unit) = match value {
            lineage_toml::Scalar::Integer(n) => (*n, 'd'),
            lineage_toml::Scalar::String(s) => {
                let s = s.trim();
                let unit = s.chars().last().ok_or_else(problem)?;
                let n: i64 = s[..s.len() - unit.len_utf8()]
                    .trim()
                    .parse()
                    .map_err(|_| problem())?;
                (n, unit)
            }
            _ => return Err(problem()),
        };
        let secs = match unit {
            'd' => n.checked_mul(86_400),
            'h' => n.checked_mul(3_600),
            _ => None,
        }
        .filter(|s| *s > 0)
        .ok_or_else(problem)?;
        Ok(VulnsConfig {
            max_age_secs: secs,
            max_age: format!("{n}{unit}"),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Versions: one ordering per ecosystem, so that `openssl@<3.0.15` means what Debian means.

/// Compares two versions of a package of purl type `ty`.
///
/// Debian, RPM and Alpine versions use the dpkg algorithm (epoch, upstream, revision; `~`
/// sorts before everything, letters before other symbols), which orders RPM and apk versions
/// the same way for the forms their distributions use. Everything else compares release
/// numbers, and a pre-release (`-rc.1`, `rc1`, `a2`, `.dev0`) before its release.
pub fn compare_versions(ty: &str, a: &str, b: &str) -> Ordering {
    match ty {
        "deb" | "rpm" | "apk" => dpkg_compare(a, b),
        _ => generic_compare(a, b),
    }
}

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(0), rest)
        }
        _ => (0, v),
    }
}

fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (ea, ra) = split_epoch(a);
    let (eb, rb) = split_epoch(b);
    let split_rev = |v: &str| match v.rsplit_once('-') {
        Some((u, r)) => (u.to_string(), r.to_string()),
        None => (v.to_string(), String::new()),
    };
    let (ua, va) = split_rev(ra);
    let (ub, vb) = split_rev(rb);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(&ua, &ub))
        .then_with(|| verrevcmp(&va, &vb))
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c) + 256,
        }
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first == Ordering::Equal {
                first = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first != Ordering::Equal {
            return first;
        }
    }
    Ordering::Equal
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Num(u128),
    Word(String),
}

fn tokens(v: &str) -> Vec<Token> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    // Build metadata does not order (semver §10).
    let v = v.split('+').next().unwrap_or(v);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut num = false;
    let flush = |cur: &mut String, num: bool, out: &mut Vec<Token>| {
        if cur.is_empty() {
            return;
        }
        out.push(if num {
            Token::Num(cur.parse().unwrap_or(u128::MAX))
        } else {
            Token::Word(cur.to_ascii_lowercase())
        });
        cur.clear();
    };
    for c in v.chars() {
        if c.is_ascii_digit() {
            if !num {
                flush(&mut cur, num, &mut out);
            }
            num = true;
            cur.push(c);
        } else if c.is_alphanumeric() {
            if num {
                flush(&mut cur, num, &mut out);
            }
            num = false;
            cur.push(c);
        } else {
            flush(&mut cur, num, &mut out);
        }
    }
    flush(&mut cur, num, &mut out);
    out
}

/// Words that come after the release they follow (`1.0.post1` > `1.0`).
fn is_post(word: &str) -> bool {
    matches!(
        word,
        "post" | "p" | "pl" | "patch" | "r" | "rev" | "final" | "ga" | "release"
    )
}

fn generic_compare(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for i in 0..ta.len().max(tb.len()) {
        match (ta.get(i), tb.get(i)) {
            (Some(Token::Num(x)), Some(Token::Num(y))) => match x.cmp(y) {
                Ordering::Equal => {}
                o => return o,
            },
            (Some(Token::Word(x)), Some(Token::Word(y))) => {
                let o = match (is_post(x), is_post(y)) {
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            // A number beats a pre-release word at the same place (`1.0.1` > `1.0.rc1`).
            (Some(Token::Num(_)), Some(Token::Word(w))) => {
                return if is_post(w) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(Token::Word(w)), Some(Token::Num(_))) => {
                return if is_post(w) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            // One ran out: more numbers is later, a trailing word is a pre-release.
            (Some(Token::Num(_)), None) => return Ordering::Greater,
            (None, Some(Token::Num(_))) => return Ordering::Less,
            (Some(Token::Word(w)), None) => {
                return if is_post(w) {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (None, Some(Token::Word(w))) => {
                return if is_post(w) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (None, None) => break,
        }
    }
    Ordering::Equal
}

/// A version or a range: `3.0.11-1`, `<3.0.15`, `>=3.0.0,<3.0.15`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReq {
    /// `(operator, version)` pairs that must all hold; `=` for an exact version.
    pub constraints: Vec<(String, String)>,
}

impl VersionReq {
    pub fn parse(input: &str) -> Result<VersionReq, Error> {
        let bad = |part: &str| {
            Error::Invalid(
                format!("version range `{input}` is not understood (at `{part}`)"),
                "write a version (`openssl@3.0.11-1`) or a range (`openssl@<3.0.15`, `openssl@>=3.0.0,<3.0.15`)".into(),
            )
        };
        let mut constraints = Vec::new();
        for part in input.split(',').map(str::trim) {
            let (op, v) = ["<=", ">=", "!=", "==", "<", ">", "="]
                .iter()
                .find_map(|op| part.strip_prefix(op).map(|v| (*op, v.trim())))
                .unwrap_or(("=", part));
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(bad(part));
            }
            let op = if op == "==" { "=" } else { op };
            constraints.push((op.to_string(), v.to_string()));
        }
        Ok(VersionReq { constraints })
    }

    pub fn matches(&self, ty: &str, version: &str) -> bool {
        self.constraints.iter().all(|(op, v)| {
            let o = compare_versions(ty, version, v);
            match op.as_str() {
                "<" => o == Ordering::Less,
                "<=" => o != Ordering::Greater,
                ">" => o == Ordering::Greater,
                ">=" => o != Ordering::Less,
                "!=" => o != Ordering::Equal,
                _ => o == Ordering::Equal,
            }
        })
    }
}

impl std::fmt::Display for VersionReq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .constraints
            .iter()
            .map(|(op, v)| {
                if op == "=" {
                    v.clone()
                } else {
                    format!("{op}{v}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

// ---------------------------------------------------------------------------------------
// Queries.

/// What `affected` is asked about, beyond a base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageQuery {
    /// `--package [NAMESPACE/]NAME[@VERSION|@RANGE]`.
    Name {
        namespace: Option<String>,
        name: String,
        version: Option<VersionReq>,
    },
    /// `--purl PURL`: ecosystem, namespace and name, and the version when the purl has one.
    Purl(Purl),
    /// `--cve ID` (or any scanner id: `GHSA-…`).
    Vuln(String),
}

impl PackageQuery {
    /// Parses `--package`.
    pub fn package(input: &str) -> Result<PackageQuery, Error> {
        let input = input.trim();
        // An npm scope starts with `@`, so the version `@` is the first one after it.
        let at = input
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '@')
            .map(|(i, _)| i);
        let (path, version) = match at {
            Some(i) => (&input[..i], Some(&input[i + 1..])),
            None => (input, None),
        };
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, n)) => (Some(ns.to_string()), n),
            None => (None, path),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::Invalid(
                format!("--package `{input}` has no package name"),
                "write a package name, optionally with a version or range: `--package openssl`, `--package openssl@<3.0.15`".into(),
            ));
        }
        let version = version
            .map(|v| {
                if v.is_empty() {
                    Err(Error::Invalid(
                        format!("--package `{input}` has an empty version after `@`"),
                        format!("write `--package {path}` for every version, or `--package {path}@<VERSION`"),
                    ))
                } else {
                    VersionReq::parse(v)
                }
            })
            .transpose()?;
        Ok(PackageQuery::Name {
            namespace,
            name: name.to_string(),
            version,
        })
    }

    /// Parses `--purl`.
    pub fn purl(input: &str) -> Result<PackageQuery, Error> {
        Ok(PackageQuery::Purl(
            Purl::parse(input.trim()).map_err(|e| e.in_field("--purl"))?,
        ))
    }

    /// Parses `--cve`: a vulnerability id as scanners write them.
    pub fn vuln(input: &str) -> Result<PackageQuery, Error> {
        let id = input.trim();
        let ok = id.len() >= 3
            && id.len() <= 128
            && id.contains('-')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !ok {
            return Err(Error::Invalid(
                format!("--cve `{input}` is not a vulnerability id"),
                "write an id such as `CVE-2024-5535` or `GHSA-xxxx-xxxx-xxxx`".into(),
            ));
        }
        Ok(PackageQuery::Vuln(id.to_ascii_uppercase()))
    }

    fn name_key(&self) -> Option<String> {
        match self {
            PackageQuery::Name { name, .. } => Some(name_key(name)),
            PackageQuery::Purl(p) => Some(p.name_key()),
            PackageQuery::Vuln(_) => None,
        }
    }

    /// Whether a package (by purl) is the one asked about.
    pub fn matches(&self, purl: &Purl) -> bool {
        let same_name = |asked: &str| {
            if purl.ty() == "pypi" {
                name_key(asked) == purl.name_key()
            } else {
                asked.eq_ignore_ascii_case(purl.name())
            }
        };
        match self {
            PackageQuery::Name {
                namespace,
                name,
                version,
            } => {
                same_name(name)
                    && namespace.as_ref().is_none_or(|ns| {
                        purl.namespace().is_some_and(|p| p.eq_ignore_ascii_case(ns))
                    })
                    && version
                        .as_ref()
                        .is_none_or(|req| purl.version().is_some_and(|v| req.matches(purl.ty(), v)))
            }
            PackageQuery::Purl(q) => {
                q.ty() == purl.ty()
                    && same_name(q.name())
                    && q.namespace().is_none_or(|ns| {
                        purl.namespace().is_some_and(|p| p.eq_ignore_ascii_case(ns))
                    })
                    && q.version().is_none_or(|v| {
                        purl.version()
                            .is_some_and(|pv| compare_versions(purl.ty(), pv, v) == Ordering::Equal)
                    })
            }
            PackageQuery::Vuln(_) => true,
        }
    }

    fn echo(&self) -> QueryEcho {
        match self {
            PackageQuery::Name {
                namespace,
                name,
                version,
            } => QueryEcho {
                package: Some(match namespace {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.clone(),
                }),
                version: version.as_ref().map(|v| v.to_string()),
                purl: None,
                cve: None,
            },
            PackageQuery::Purl(p) => QueryEcho {
                package: None,
                version: None,
                purl: Some(p.to_string()),
                cve: None,
            },
            PackageQuery::Vuln(id) => QueryEcho {
                package: None,
                version: None,
                purl: None,
                cve: Some(id.clone()),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Base or app.

/// Where a package comes from, and what says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// `base`, `app` or `unknown`.
    pub origin: String,
    /// The evidence, in words (`layer sha256:… is a layer of python:3.12-slim@sha256:…`).
    pub evidence: String,
}

impl Attribution {
    fn new(origin: &str, evidence: String) -> Attribution {
        Attribution {
            origin: origin.into(),
            evidence,
        }
    }
}

/// What is known about one base image digest.
struct BaseKnowledge {
    shown: String,
    /// Every layer id (blob digests and diff ids) of the base.
    layers: HashSet<Digest>,
    /// Its packages (purls without qualifiers), when an SBOM or scan of it was imported.
    packages: Option<HashSet<String>>,
}

/// Decides base-or-app for packages, caching what it reads per digest and per base.
pub struct Attributor<'a> {
    store: &'a dyn Store,
    builds: HashMap<Digest, Option<BuildRecord>>,
    bases: HashMap<Digest, BaseKnowledge>,
    /// Per import entry of an image: the layers its document names.
    imports: HashMap<u64, HashSet<Digest>>,
}

/// The identity of a package version, without qualifiers (`arch`, `distro`) that differ
/// between tools describing the same package.
fn package_version(purl: &Purl) -> String {
    format!(
        "{}/{}/{}@{}",
        purl.ty(),
        purl.namespace().unwrap_or(""),
        purl.name_key(),
        purl.version().unwrap_or("")
    )
}

impl<'a> Attributor<'a> {
    pub fn new(store: &'a dyn Store) -> Attributor<'a> {
        Attributor {
            store,
            builds: HashMap::new(),
            bases: HashMap::new(),
            imports: HashMap::new(),
        }
    }

    /// Tells the attributor a build it would otherwise read again (from a running row).
    pub fn know_build(&mut self, digest: &Digest, build: Option<BuildRecord>) {
        self.builds.entry(digest.clone()).or_insert(build);
    }

    /// The build of `digest`, read once.
    pub fn build(&mut self, digest: &Digest) -> Result<Option<BuildRecord>, Error> {
        if let Some(b) = self.builds.get(digest) {
            return Ok(b.clone());
        }
        let b = self.store.build(digest)?;
        self.builds.insert(digest.clone(), b.clone());
        Ok(b)
    }

    fn base(
        &mut self,
        name: &lineage_model::Repository,
        shown: String,
        digest: &Digest,
    ) -> Result<&BaseKnowledge, Error> {
        if !self.bases.contains_key(digest) {
            let mut layers = HashSet::new();
            for e in self.store.facts("base", Some(&name.to_string()))? {
                if let Record::Base(b) = e.record {
                    if b.digest == *digest {
                        layers.extend(b.layers);
                    }
                }
            }
            let imports = self.store.sbom_imports(digest)?;
            let mut packages = None;
            if !imports.is_empty() {
                for i in &imports {
                    layers.extend(i.layers.iter().cloned());
                }
                let mut set = HashSet::new();
                for hit in self
                    .store
                    .sbom_packages(&SbomQuery::Digest(digest.clone()))?
                {
                    layers.extend(hit.row.layer.iter().cloned());
                    set.insert(package_version(&hit.row.purl));
                }
                packages = Some(set);
            }
            self.bases.insert(
                digest.clone(),
                BaseKnowledge {
                    shown,
                    layers,
                    packages,
                },
            );
        }
        Ok(&self.bases[digest])
    }

    fn import_layers(&mut self, row: &SbomPackageRow) -> Result<&HashSet<Digest>, Error> {
        if !self.imports.contains_key(&row.entry) {
            for i in self.store.sbom_imports(&row.digest)? {
                self.imports.insert(i.entry, i.layers.into_iter().collect());
            }
            self.imports.entry(row.entry).or_default();
        }
        Ok(&self.imports[&row.entry])
    }

    /// Base or app, for one package of one image.
    pub fn attribute(&mut self, row: &SbomPackageRow) -> Result<Attribution, Error> {
        let Some(build) = self.build(&row.digest)? else {
            return Ok(Attribution::new(
                "unknown",
                "no build of this digest is recorded, so its base is not known".into(),
            ));
        };
        let Some((name, shown, base_digest)) = build
            .final_base()
            .and_then(|b| b.digest.clone().map(|d| (b.name.clone(), b.display(), d)))
        else {
            return Ok(Attribution::new(
                "unknown",
                "the build names no base digest".into(),
            ));
        };
        let doc_layers = self.import_layers(row)?.clone();
        let base = self.base(&name, shown, &base_digest)?;
        if !row.layer.is_empty() && !base.layers.is_empty() {
            if let Some(l) = row.layer.iter().find(|l| base.layers.contains(l)) {
                return Ok(Attribution::new(
                    "base",
                    format!("layer {l} is a layer of {}", base.shown),
                ));
            }
            // Only when the document and the base name layers the same way (blob digests or
            // diff ids) does a layer outside the base's prove the package is the app's.
            if doc_layers.iter().any(|l| base.layers.contains(l)) {
                return Ok(Attribution::new(
                    "app",
                    format!(
                        "layer {} is not one of {}'s layers",
                        row.layer[0], base.shown
                    ),
                ));
            }
        }
        if let Some(packages) = &base.packages {
            return Ok(if packages.contains(&package_version(&row.purl)) {
                Attribution::new("base", format!("the SBOM of {} lists it", base.shown))
            } else {
                Attribution::new(
                    "app",
                    format!("the SBOM of {} does not list this version", base.shown),
                )
            });
        }
        Ok(Attribution::new(
            "unknown",
            format!(
                "neither the layers nor an SBOM of {} are recorded (`lineage base add`, or `lineage sbom add` for the base)",
                base.shown
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Reports.

/// The query as asked, in the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueryEcho {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
}

/// A finding as reports show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FindingRef {
    pub id: String,
    pub severity: String,
    /// The fixed version(s) as the scanner wrote them; null when it knows none.
    pub fixed: Option<String>,
}

/// One package of a running image that matches the query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageMatch {
    pub purl: String,
    pub name: String,
    pub version: Option<String>,
    /// The purl type: `deb`, `apk`, `pypi`, `npm`, ...
    pub ecosystem: String,
    /// `base`, `app` or `unknown`.
    pub origin: String,
    pub origin_evidence: String,
    /// The layer that holds it, when the document says.
    pub layer: Option<String>,
    /// What the scanner matched to it (for `--cve`, the asked vulnerability).
    pub findings: Vec<FindingRef>,
    /// The first fixed version a finding names, when any does.
    pub fixed: Option<String>,
}

/// A placement (where a digest runs now) with the matching packages in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedPlacement {
    #[serde(flatten)]
    pub placement: Placement,
    pub packages: Vec<PackageMatch>,
    /// For a package in the base: the command that rebuilds this commit on a newer base.
    pub rebuild: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedPackageService {
    pub service: String,
    pub owners: Owners,
    /// Where a digest containing it runs now, production first.
    pub running: Vec<AffectedPlacement>,
}

/// A running production digest the answer cannot vouch for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotScanned {
    pub service: String,
    pub env: String,
    pub digest: String,
    pub owner: Option<String>,
    /// The newest scan (or, for package queries, SBOM or scan); null when there is none.
    pub last: Option<Timestamp>,
    /// `never scanned`, `no SBOM or scan recorded`, or `scanned N days ago`.
    pub reason: String,
}

/// `lineage affected --package/--purl/--cve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AffectedPackagesReport {
    pub schema: u32,
    pub query: QueryEcho,
    pub services: Vec<AffectedPackageService>,
    /// Running production digests whose packages (or recent findings) are not known: they
    /// are not clean, they are unknown.
    pub not_scanned: Vec<NotScanned>,
    pub max_age: String,
}

fn finding_ref(f: &SbomFindingRow) -> FindingRef {
    FindingRef {
        id: f.id.clone(),
        severity: f.severity.clone(),
        fixed: f.fixed.clone(),
    }
}

fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SEVERITIES.len())
}

/// Severities, most severe first.
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "negligible", "unknown"];

/// Parses `--severity critical,high`.
pub fn parse_severities(input: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for part in input.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        if !SEVERITIES.contains(&part.as_str()) {
            return Err(Error::Invalid(
                format!("--severity `{part}` is not a severity"),
                format!(
                    "write one or more of {}, e.g. `--severity critical,high`",
                    SEVERITIES.join(", ")
                ),
            ));
        }
        if !out.contains(&part) {
            out.push(part);
        }
    }
    out.sort_by_key(|s| severity_rank(s));
    Ok(out)
}

fn days_ago(now: Timestamp, then: Timestamp) -> i64 {
    then.days_until(now).max(0)
}

/// Running production digests (optionally in one environment) whose newest import of `kind`
/// (`None`: any kind) is missing or older than the limit (`None`: any age will do).
fn not_scanned(
    store: &dyn Store,
    config: &Config,
    env: Option<&EnvName>,
    kind: Option<&str>,
    max_age: Option<i64>,
    now: Timestamp,
) -> Result<Vec<NotScanned>, Error> {
    let mut newest: BTreeMap<(String, String), (Digest, Option<Timestamp>)> = BTreeMap::new();
    for r in store.running_inventory(kind)? {
        if !config.is_production(&r.env) || env.is_some_and(|e| *e != r.env) {
            continue;
        }
        newest.insert(
            (r.service.to_string(), r.env.to_string()),
            (r.digest, r.newest),
        );
    }
    let mut out = Vec::new();
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    for ((service, env), (digest, last)) in newest {
        let reason = match (last, max_age) {
            (None, _) if kind.is_none() => "no SBOM or scan recorded".to_string(),
            (None, _) => "never scanned".to_string(),
            (Some(t), Some(max)) if now.unix() - t.unix() > max => {
                format!("scanned {} days ago", days_ago(now, t))
            }
            _ => continue,
        };
        let owner = match owners.get(&service) {
            Some(o) => o.clone(),
            None => {
                let o = store
                    .service(&ServiceName::parse(&service)?)?
                    .and_then(|s| s.owner)
                    .map(|o| o.to_string());
                owners.insert(service.clone(), o.clone());
                o
            }
        };
        out.push(NotScanned {
            service,
            env,
            digest: digest.to_string(),
            owner,
            last,
            reason,
        });
    }
    Ok(out)
}

/// Answers "which running images contain this package (or vulnerability), where, base or
/// app, and who fixes it". Services running it in production come first.
pub fn affected(
    store: &dyn Store,
    config: &Config,
    query: &PackageQuery,
    now: Timestamp,
) -> Result<AffectedPackagesReport, Error> {
    // (service, env) → (digest, matched packages keyed by purl)
    type Found = BTreeMap<
        (ServiceName, EnvName),
        BTreeMap<(String, Option<String>), (SbomPackageRow, Vec<FindingRef>)>,
    >;
    let mut found: Found = BTreeMap::new();
    match query {
        PackageQuery::Vuln(id) => {
            for hit in store.sbom_findings(&SbomQuery::RunningId(id.clone()))? {
                let Some(at) = hit.running else { continue };
                let f = finding_ref(&hit.row);
                let pkg = hit.row.package;
                let key = (
                    pkg.purl.to_string(),
                    pkg.layer.first().map(|l| l.to_string()),
                );
                let slot = found
                    .entry(at)
                    .or_default()
                    .entry(key)
                    .or_insert((pkg, Vec::new()));
                if !slot.1.contains(&f) {
                    slot.1.push(f);
                }
            }
        }
        _ => {
            let key = query.name_key().expect("package queries have a name");
            for hit in store.sbom_packages(&SbomQuery::RunningName(key.clone()))? {
                let Some(at) = hit.running else { continue };
                if !query.matches(&hit.row.purl) {
                    continue;
                }
                let k = (
                    hit.row.purl.to_string(),
                    hit.row.layer.first().map(|l| l.to_string()),
                );
                found
                    .entry(at)
                    .or_default()
                    .entry(k)
                    .or_insert((hit.row, Vec::new()));
            }
            // What scanners matched to these packages (their fixed versions).
            for hit in store.sbom_findings(&SbomQuery::RunningName(key))? {
                let Some(at) = hit.running else { continue };
                let purl = hit.row.package.purl.to_string();
                if let Some(pkgs) = found.get_mut(&at) {
                    for ((p, _), (row, findings)) in pkgs.iter_mut() {
                        if *p == purl && row.digest == hit.row.package.digest {
                            let f = finding_ref(&hit.row);
                            if !findings.contains(&f) {
                                findings.push(f);
                            }
                        }
                    }
                }
            }
        }
    }

    let mut attributor = Attributor::new(store);
    // What each matching service runs, read once: its placements and the builds the
    // attribution needs.
    let mut running_of: HashMap<ServiceName, Vec<lineage_store::RunningImage>> = HashMap::new();
    for (service, _) in found.keys() {
        if !running_of.contains_key(service) {
            let rows = store.running(None, Some(service))?;
            for r in &rows {
                attributor.know_build(&r.deploy.digest, r.build.clone());
            }
            running_of.insert(service.clone(), rows);
        }
    }
    let mut by_service: BTreeMap<ServiceName, Vec<(EnvName, Vec<PackageMatch>, Digest)>> =
        BTreeMap::new();
    for ((service, env), pkgs) in found {
        let mut matches = Vec::new();
        let mut digest = None;
        for ((purl, layer), (row, mut findings)) in pkgs {
            findings.sort_by(|a, b| {
                severity_rank(&a.severity)
                    .cmp(&severity_rank(&b.severity))
                    .then(a.id.cmp(&b.id))
            });
            let a = attributor.attribute(&row)?;
            digest = Some(row.digest.clone());
            matches.push(PackageMatch {
                purl,
                name: row.purl.name().to_string(),
                version: row.purl.version().map(str::to_string),
                ecosystem: row.purl.ty().to_string(),
                origin: a.origin,
                origin_evidence: a.evidence,
                layer,
                fixed: findings.iter().find_map(|f| f.fixed.clone()),
                findings,
            });
        }
        if let Some(d) = digest {
            by_service
                .entry(service)
                .or_default()
                .push((env, matches, d));
        }
    }

    let mut services = Vec::new();
    for (service, envs) in by_service {
        let running_now = running_of.remove(&service).unwrap_or_default();
        let mut running = Vec::new();
        for (env, packages, digest) in envs {
            let Some(r) = running_now
                .iter()
                .find(|r| r.deploy.env == env && r.deploy.digest == digest)
            else {
                continue;
            };
            let rebuild = if packages.iter().any(|p| p.origin == "base") {
                r.build.as_ref().and_then(rebuild_command)
            } else {
                None
            };
            running.push(AffectedPlacement {
                placement: Placement::of(&r.deploy, r.build.as_ref()),
                packages,
                rebuild,
            });
        }
        if running.is_empty() {
            continue;
        }
        for r in running.iter_mut() {
            crate::query::mark(store, &service, std::slice::from_mut(&mut r.placement))?;
        }
        let mut placements: Vec<Placement> = running.iter().map(|r| r.placement.clone()).collect();
        sort_placements(config, &mut placements);
        running.sort_by_key(|r| placements.iter().position(|p| *p == r.placement));
        services.push(AffectedPackageService {
            service: service.to_string(),
            owners: Owners::of(store.service(&service)?.as_ref()),
            running,
        });
    }
    services.sort_by_key(|s| {
        let best = s
            .running
            .iter()
            .filter_map(|p| EnvName::parse(&p.placement.env).ok())
            .map(|e| config.env_rank(&e))
            .min()
            .unwrap_or(usize::MAX);
        (best, s.service.clone())
    });
    let not_scanned = match query {
        PackageQuery::Vuln(_) => not_scanned(
            store,
            config,
            None,
            Some("scan"),
            Some(config.vulns.max_age_secs),
            now,
        )?,
        _ => not_scanned(store, config, None, None, None, now)?,
    };
    Ok(AffectedPackagesReport {
        schema: 1,
        query: query.echo(),
        services,
        not_scanned,
        max_age: config.vulns.max_age.clone(),
    })
}

/// Whether one digest, running or not, holds what `query` asks about, read from the same
/// newest imports `affected` reads for running digests. `None` when no import can tell: no
/// scan, for a vulnerability; no SBOM or scan, for a package. Not known is never clean.
pub fn digest_matches(
    store: &dyn Store,
    digest: &Digest,
    query: &PackageQuery,
) -> Result<Option<bool>, Error> {
    let imports = store.sbom_imports(digest)?;
    let telling = match query {
        PackageQuery::Vuln(_) => imports.iter().any(|i| i.kind == "scan"),
        _ => !imports.is_empty(),
    };
    if !telling {
        return Ok(None);
    }
    match query {
        PackageQuery::Vuln(id) => {
            // A finding's aliases live in its import record; the package rows keep only ids.
            for import in &imports {
                for entry in store.entries(import.entry, import.entry + 1)? {
                    if let Record::Sbom(doc) = entry.record {
                        let asked = |x: &String| x.eq_ignore_ascii_case(id);
                        if doc
                            .findings
                            .iter()
                            .any(|f| asked(&f.id) || f.aliases.iter().any(asked))
                        {
                            return Ok(Some(true));
                        }
                    }
                }
            }
            Ok(Some(false))
        }
        _ => Ok(Some(
            store
                .sbom_packages(&SbomQuery::Digest(digest.clone()))?
                .iter()
                .any(|hit| query.matches(&hit.row.purl)),
        )),
    }
}

/// One finding of a running image, as `vulns` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VulnFinding {
    pub id: String,
    pub severity: String,
    pub purl: String,
    pub name: String,
    pub version: Option<String>,
    pub fixed: Option<String>,
    pub origin: String,
    pub origin_evidence: String,
}

/// One running digest of a service and its findings, split by who acts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VulnImage {
    pub service: String,
    /// The environments it runs in now, production first.
    pub envs: Vec<String>,
    pub digest: String,
    /// When its newest scan was made.
    pub scanned_at: Option<Timestamp>,
    /// The final-stage base of its build (`name:tag@digest`), when recorded.
    pub base: Option<String>,
    /// Findings in the base image: rebuilding on a newer base fixes them.
    pub base_findings: Vec<VulnFinding>,
    /// The command that rebuilds the same commit on the newest base.
    pub rebuild: Option<String>,
    /// Findings in the application's own layers or dependencies: its owner patches them.
    pub app_findings: Vec<VulnFinding>,
    /// Findings Lineage cannot place (see each `origin_evidence`).
    pub unknown_findings: Vec<VulnFinding>,
}

/// Everything one owner must act on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnerFindings {
    /// The owner, or null for services without one.
    pub owner: Option<String>,
    pub backup_owner: Option<String>,
    pub images: Vec<VulnImage>,
}

/// `lineage vulns`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VulnsReport {
    pub schema: u32,
    pub env: Option<String>,
    /// The severities shown; all when none was asked for.
    pub severities: Vec<String>,
    pub max_age: String,
    pub owners: Vec<OwnerFindings>,
    /// Running production digests whose newest scan is missing or older than `max_age`.
    pub not_scanned_recently: Vec<NotScanned>,
    /// Findings shown, per severity.
    pub counts: BTreeMap<String, usize>,
}

/// Lists the findings of running images, grouped by owner, base findings apart from app
/// findings.
pub fn vulns(
    store: &dyn Store,
    config: &Config,
    env: Option<&EnvName>,
    severities: &[String],
    now: Timestamp,
) -> Result<VulnsReport, Error> {
    let mut images: BTreeMap<(ServiceName, Digest), Vec<EnvName>> = BTreeMap::new();
    let mut builds: HashMap<Digest, Option<BuildRecord>> = HashMap::new();
    for r in store.running(env, None)? {
        builds.insert(r.deploy.digest.clone(), r.build.clone());
        images
            .entry((r.deploy.service.clone(), r.deploy.digest.clone()))
            .or_default()
            .push(r.deploy.env.clone());
    }
    let mut attributor = Attributor::new(store);
    let mut groups: BTreeMap<Option<String>, OwnerFindings> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for ((service, digest), mut envs) in images {
        envs.sort_by_key(|e| config.env_rank(e));
        let scanned_at = store
            .sbom_imports(&digest)?
            .into_iter()
            .filter(|i| i.kind == "scan")
            .map(|i| i.scanned_at)
            .max();
        let mut seen = BTreeSet::new();
        let mut image = VulnImage {
            service: service.to_string(),
            envs: envs.iter().map(|e| e.to_string()).collect(),
            digest: digest.to_string(),
            scanned_at,
            base: builds
                .get(&digest)
                .and_then(|b| b.as_ref())
                .and_then(|b| b.final_base())
                .map(|b| b.display()),
            base_findings: Vec::new(),
            rebuild: None,
            app_findings: Vec::new(),
            unknown_findings: Vec::new(),
        };
        for hit in store.sbom_findings(&SbomQuery::Digest(digest.clone()))? {
            let f = hit.row;
            if !severities.is_empty() && !severities.contains(&f.severity) {
                continue;
            }
            if !seen.insert((f.id.clone(), f.package.purl.to_string())) {
                continue;
            }
            let a = attributor.attribute(&f.package)?;
            *counts.entry(f.severity.clone()).or_default() += 1;
            let v = VulnFinding {
                id: f.id,
                severity: f.severity,
                purl: f.package.purl.to_string(),
                name: f.package.purl.name().to_string(),
                version: f.package.purl.version().map(str::to_string),
                fixed: f.fixed,
                origin: a.origin.clone(),
                origin_evidence: a.evidence,
            };
            match a.origin.as_str() {
                "base" => image.base_findings.push(v),
                "app" => image.app_findings.push(v),
                _ => image.unknown_findings.push(v),
            }
        }
        for list in [
            &mut image.base_findings,
            &mut image.app_findings,
            &mut image.unknown_findings,
        ] {
            list.sort_by(|a, b| {
                severity_rank(&a.severity)
                    .cmp(&severity_rank(&b.severity))
                    .then_with(|| a.id.cmp(&b.id))
                    .then_with(|| a.purl.cmp(&b.purl))
            });
        }
        if image.base_findings.is_empty()
            && image.app_findings.is_empty()
            && image.unknown_findings.is_empty()
        {
            continue;
        }
        if !image.base_findings.is_empty() {
            image.rebuild = builds
                .get(&digest)
                .and_then(|b| b.as_ref())
                .and_then(rebuild_command);
        }
        let record = store.service(&service)?;
        let owner = record
            .as_ref()
            .and_then(|s| s.owner.as_ref())
            .map(|o| o.to_string());
        let group = groups
            .entry(owner.clone())
            .or_insert_with(|| OwnerFindings {
                owner,
                backup_owner: record
                    .as_ref()
                    .and_then(|s| s.backup_owner.as_ref())
                    .map(|o| o.to_string()),
                images: Vec::new(),
            });
        group.images.push(image);
    }
    let mut owners: Vec<OwnerFindings> = groups.into_values().collect();
    for g in &mut owners {
        g.images.sort_by_key(|i| {
            let best = i
                .envs
                .iter()
                .filter_map(|e| EnvName::parse(e).ok())
                .map(|e| config.env_rank(&e))
                .min()
                .unwrap_or(usize::MAX);
            (best, i.service.clone())
        });
    }
    // Owners with the worst findings first, then by name; services without an owner last.
    owners.sort_by_key(|g| {
        let worst = g
            .images
            .iter()
            .flat_map(|i| {
                i.base_findings
                    .iter()
                    .chain(&i.app_findings)
                    .chain(&i.unknown_findings)
            })
            .map(|f| severity_rank(&f.severity))
            .min()
            .unwrap_or(usize::MAX);
        (g.owner.is_none(), worst, g.owner.clone())
    });
    Ok(VulnsReport {
        schema: 1,
        env: env.map(|e| e.to_string()),
        severities: if severities.is_empty() {
            SEVERITIES.iter().map(|s| s.to_string()).collect()
        } else {
            severities.to_vec()
        },
        max_age: config.vulns.max_age.clone(),
        owners,
        not_scanned_recently: not_scanned(
            store,
            config,
            env,
            Some("scan"),
            Some(config.vulns.max_age_secs),
            now,
        )?,
        counts,
    })
}

/// What the dashboard's incident search and the API make of one free-text query: a CVE id, a
/// purl, or a package name (with an optional version or range). `None`: none of these.
pub fn classify(input: &str) -> Option<PackageQuery> {
    let q = input.trim();
    let upper = q.to_ascii_uppercase();
    if [
        "CVE-", "GHSA-", "GO-", "PYSEC-", "RUSTSEC-", "OSV-", "DSA-", "DLA-", "ALAS", "RHSA-",
        "USN-",
    ]
    .iter()
    .any(|p| upper.starts_with(p))
    {
        return PackageQuery::vuln(q).ok();
    }
    if q.to_ascii_lowercase().starts_with("pkg:") {
        return PackageQuery::purl(q).ok();
    }
    PackageQuery::package(q).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_order_as_dpkg_does() {
        let lt = |a, b| compare_versions("deb", a, b) == Ordering::Less;
        assert!(lt("3.0.11-1~deb12u2", "3.0.15-1~deb12u1"));
        assert!(lt("3.0.15-1~deb12u1", "3.0.15-1"));
        assert!(lt("1.0~rc1", "1.0"));
        assert!(lt("2.36-9+deb12u4", "2.36-9+deb12u7"));
        assert!(lt("9:1.0", "10:0.1"));
        assert!(lt("1.1.1c-r0", "1.1.1d-r0"));
        assert_eq!(compare_versions("deb", "1.0-1", "1.0-1"), Ordering::Equal);
    }

    #[test]
    fn other_versions_put_pre_releases_first() {
        let lt = |a, b| compare_versions("pypi", a, b) == Ordering::Less;
        assert!(lt("2.31.0", "2.32.3"));
        assert!(lt("2.0.0rc1", "2.0.0"));
        assert!(lt("1.0.0-alpha.1", "1.0.0"));
        assert!(lt("1.0", "1.0.post1"));
        assert!(lt("1.9", "1.10"));
        assert!(lt("v1.2.3", "1.2.4"));
        assert_eq!(
            compare_versions("npm", "1.2.3+build5", "1.2.3"),
            Ordering::Equal
        );
    }

    #[test]
    fn package_queries_parse_names_scopes_and_ranges() {
        let q = PackageQuery::package("openssl@<3.0.15").unwrap();
        let PackageQuery::Name {
            name,
            version,
            namespace,
        } = &q
        else {
            panic!()
        };
        assert_eq!((name.as_str(), namespace), ("openssl", &None));
        assert_eq!(version.as_ref().unwrap().to_string(), "<3.0.15");
        assert!(q.matches(&Purl::parse("pkg:deb/debian/openssl@3.0.11-1~deb12u2").unwrap()));
        assert!(!q.matches(&Purl::parse("pkg:deb/debian/openssl@3.0.15-1").unwrap()));
        assert!(!q.matches(&Purl::parse("pkg:deb/debian/libssl3@3.0.11-1").unwrap()));
        let npm = PackageQuery::package("@angular/core@>=16.0.0,<16.2.0").unwrap();
        assert!(npm.matches(&Purl::parse("pkg:npm/%40angular/core@16.1.0").unwrap()));
        assert!(!npm.matches(&Purl::parse("pkg:npm/core@16.1.0").unwrap()));
        let py = PackageQuery::package("Flask_Login").unwrap();
        assert!(py.matches(&Purl::parse("pkg:pypi/flask-login@0.6.3").unwrap()));
        assert!(PackageQuery::package("openssl@").is_err());
        assert!(PackageQuery::package("openssl@<").is_err());
        assert!(PackageQuery::package("openssl@<3 4").is_err());
    }

    #[test]
    fn purl_queries_match_type_name_and_version() {
        let q = PackageQuery::purl("pkg:deb/debian/openssl@3.0.11-1").unwrap();
        assert!(q.matches(&Purl::parse("pkg:deb/debian/openssl@3.0.11-1?arch=amd64").unwrap()));
        assert!(!q.matches(&Purl::parse("pkg:rpm/openssl@3.0.11-1").unwrap()));
        assert!(!q.matches(&Purl::parse("pkg:deb/debian/openssl@3.0.15-1").unwrap()));
    }

    #[test]
    fn incident_queries_are_classified() {
        assert_eq!(
            classify("cve-2024-5535"),
            Some(PackageQuery::Vuln("CVE-2024-5535".into()))
        );
        assert!(matches!(
            classify("pkg:pypi/requests"),
            Some(PackageQuery::Purl(_))
        ));
        assert!(matches!(
            classify("openssl@<3.0.15"),
            Some(PackageQuery::Name { .. })
        ));
        assert_eq!(classify("has space"), None);
    }

    #[test]
    fn max_age_takes_days_or_hours() {
        use lineage_toml::Scalar;
        let c = VulnsConfig::parse_max_age(&Scalar::Integer(3)).unwrap();
        assert_eq!((c.max_age_secs, c.max_age.as_str()), (3 * 86_400, "3d"));
        let c = VulnsConfig::parse_max_age(&Scalar::String("36h")).unwrap();
        assert_eq!(c.max_age_secs, 36 * 3_600);
        assert!(VulnsConfig::parse_max_age(&Scalar::String("7w")).is_err());
        assert!(VulnsConfig::parse_max_age(&Scalar::Integer(0)).is_err());
    }

    #[test]
    fn severities_parse_in_order() {
        assert_eq!(
            parse_severities("HIGH,critical").unwrap(),
            ["critical", "high"]
        );
        assert!(parse_severities("urgent")
            .unwrap_err()
            .to_string()
            .contains("`urgent`"));
    }
}
