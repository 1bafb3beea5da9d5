//! SBOM and scan imports in the store: the `sbom_*` projection rows of an import (part of
//! [`crate::projection`]), and the parsing of those rows when they are read back.

use lineage_model::{Digest, EnvName, Purl, SbomImport, SbomLayer, ServiceName, Timestamp};

use crate::api::{SbomFindingRow, SbomPackageRow, StoreError};
use crate::projection::{FindingRow, ImportRow, PackageRow, Row};

fn layer_ids(layer: &SbomLayer) -> String {
    let mut out = Vec::with_capacity(2);
    if let Some(d) = &layer.digest {
        out.push(d.to_string());
    }
    if let Some(d) = &layer.diff_id {
        out.push(d.to_string());
    }
    out.join(" ")
}

/// The rows `s`, stored at journal `entry` and recorded at `recorded_at`, projects to.
pub(crate) fn rows(s: &SbomImport, entry: i64, recorded_at: Timestamp, out: &mut Vec<Row>) {
    // A document may not claim to be newer than its recording: a clock ahead of the ledger
    // would otherwise keep a stale scan "newest" and "recent" for good.
    let scanned_at = s
        .created
        .map_or(recorded_at.unix(), |c| c.unix().min(recorded_at.unix()));
    let digest = s.digest.to_string();
    out.push(Row::SbomImport(ImportRow {
        digest: digest.clone(),
        kind: s.kind.clone(),
        format: s.format.clone(),
        entry,
        scanned_at,
        document: s.document.to_string(),
        layers: s
            .layers
            .iter()
            .map(layer_ids)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }));
    for (i, p) in s.packages.iter().enumerate() {
        out.push(Row::SbomPackage(PackageRow {
            entry,
            pkg: i as i64,
            digest: digest.clone(),
            name_key: p.purl.name_key(),
            purl: p.purl.to_string(),
            layer: p
                .layer
                .and_then(|l| s.layers.get(l as usize))
                .map(layer_ids)
                .unwrap_or_default(),
        }));
    }
    for (i, f) in s.findings.iter().enumerate() {
        let mut seen: Vec<String> = Vec::new();
        for id in std::iter::once(&f.id).chain(&f.aliases) {
            let key = id.trim().to_ascii_uppercase();
            if key.is_empty() || seen.contains(&key) {
                continue;
            }
            out.push(Row::SbomFinding(FindingRow {
                entry,
                finding: i as i64,
                alias: seen.len() as i64,
                vuln_id: key.clone(),
                id: f.id.clone(),
                pkg: i64::from(f.package),
                digest: digest.clone(),
                severity: f.severity.clone(),
                fixed: f.fixed.clone().unwrap_or_default(),
            }));
            seen.push(key);
        }
    }
}

fn corrupt(entry: u64, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        index: entry,
        detail: format!("sbom projection {what}: {e}"),
    }
}

/// Parses a package row's columns back into a [`SbomPackageRow`].
pub(crate) fn package_row(
    entry: i64,
    pkg: i64,
    digest: &str,
    purl: &str,
    layer: &str,
) -> Result<SbomPackageRow, StoreError> {
    let entry = entry as u64 - 1;
    Ok(SbomPackageRow {
        entry,
        pkg: pkg as u32,
        digest: Digest::parse(digest).map_err(|e| corrupt(entry, "digest", e))?,
        purl: Purl::parse(purl).map_err(|e| corrupt(entry, "purl", e))?,
        layer: layers(entry, layer)?,
    })
}

pub(crate) fn layers(entry: u64, text: &str) -> Result<Vec<Digest>, StoreError> {
    text.split(' ')
        .filter(|l| !l.is_empty())
        .map(|l| Digest::parse(l).map_err(|e| corrupt(entry, "layer", e)))
        .collect()
}

pub(crate) fn finding_row(
    package: SbomPackageRow,
    id: String,
    severity: String,
    fixed: String,
) -> SbomFindingRow {
    SbomFindingRow {
        package,
        id,
        severity,
        fixed: (!fixed.is_empty()).then_some(fixed),
    }
}

/// Where a row's digest runs, from the `current` columns (absent for digest queries).
pub(crate) fn running(
    entry: u64,
    service: Option<String>,
    env: Option<String>,
) -> Result<Option<(ServiceName, EnvName)>, StoreError> {
    match (service, env) {
        (Some(s), Some(e)) => Ok(Some((
            ServiceName::parse(&s).map_err(|x| corrupt(entry, "service", x))?,
            EnvName::parse(&e).map_err(|x| corrupt(entry, "env", x))?,
        ))),
        _ => Ok(None),
    }
}
