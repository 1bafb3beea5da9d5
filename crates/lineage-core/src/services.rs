//! Services and who owns them: add, change owners, import a team's table, rename, remove,
//! and show history. A rename, a removal or an image repository moving to another service
//! ends the placements it makes untrue, in the same transaction; the history stays.

use std::collections::HashMap;

use lineage_model::{
    Identity, Record, Repository, Service, ServiceChange, ServiceName, ServiceRemoval, SourceRepo,
    Timestamp,
};
use lineage_store::Store;
use serde::Serialize;

use crate::placements::{self, Ended};
use crate::Error;

/// Adds a new service. Refuses a name that exists or an image another service owns.
pub fn add(
    store: &mut dyn Store,
    service: Service,
    by: Identity,
    at: Timestamp,
) -> Result<u64, Error> {
    if store.service(&service.name)?.is_some() {
        return Err(Error::ServiceExists(service.name.to_string()));
    }
    check_images_free(store, &service)?;
    Ok(store.record_service_change(&ServiceChange { service, by, at }, at)?)
}

fn check_images_free(store: &dyn Store, service: &Service) -> Result<(), Error> {
    for image in &service.images {
        if let Some(owner) = store.service_for_image(image)? {
            if owner != service.name {
                return Err(Error::ImageClaimed {
                    image: image.clone(),
                    owner: owner.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Which ownership fields to change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct OwnerChange {
    pub owner: Option<Identity>,
    pub backup_owner: Option<Identity>,
    pub emergency_approver: Option<Identity>,
}

/// Changes owners. Returns `None` when nothing changed (no entry is written).
pub fn set_owner(
    store: &mut dyn Store,
    name: &ServiceName,
    change: OwnerChange,
    by: Identity,
    at: Timestamp,
) -> Result<Option<u64>, Error> {
    let mut service = store
        .service(name)?
        .ok_or_else(|| Error::UnknownService(name.to_string()))?;
    let before = service.clone();
    if let Some(o) = change.owner {
        service.owner = Some(o);
    }
    if let Some(o) = change.backup_owner {
        service.backup_owner = Some(o);
    }
    if let Some(o) = change.emergency_approver {
        service.emergency_approver = Some(o);
    }
    if service == before {
        return Ok(None);
    }
    Ok(Some(store.record_service_change(
        &ServiceChange { service, by, at },
        at,
    )?))
}

/// One row of an import file, parsed.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: usize,
    pub service: Service,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub schema: u32,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Placements ended because their image repository moved to another service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<Ended>,
}

/// Parses a YAML or CSV service table. The whole file is checked before anything is written.
pub fn parse_import(text: &str, file: &str) -> Result<Vec<ImportRow>, Error> {
    let is_csv = file.ends_with(".csv")
        || (!file.ends_with(".yaml")
            && !file.ends_with(".yml")
            && text
                .lines()
                .next()
                .is_some_and(|l| l.contains(',') && !l.contains(':')));
    let raw = if is_csv {
        parse_csv(text, file)?
    } else {
        parse_yaml(text, file)?
    };
    let mut rows: Vec<ImportRow> = Vec::new();
    // Name → its row, image → its row: duplicates are found in one pass, so a 20,000-row
    // table does not take 20,000² comparisons.
    let mut by_name: HashMap<ServiceName, usize> = HashMap::new();
    let mut by_image: HashMap<Repository, usize> = HashMap::new();
    for (line, r) in raw {
        let err = |e: lineage_model::ParseError| Error::Import {
            file: file.to_string(),
            line,
            message: e.to_string(),
            hint: e.hint.clone(),
        };
        let ident = |v: &Option<String>, field: &'static str| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Identity::parse(s.trim()).map_err(|e| err(e.in_field(field))))
                .transpose()
        };
        let name = ServiceName::parse(r.service.trim()).map_err(|e| err(e.in_field("service")))?;
        let images = r
            .images
            .iter()
            .map(|i| Repository::parse(i.trim()).map_err(&err))
            .collect::<Result<Vec<_>, _>>()?;
        let service = Service {
            owner: ident(&r.owner, "owner")?,
            backup_owner: ident(&r.backup_owner, "backup owner")?,
            emergency_approver: ident(&r.emergency_approver, "emergency approver")?,
            source_repo: r
                .source_repo
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| SourceRepo::parse(s.trim()).map_err(&err))
                .transpose()?,
            images,
            name,
        };
        if let Some(prev) = by_name.get(&service.name).map(|&i| &rows[i]) {
            return Err(Error::Import {
                file: file.to_string(),
                line,
                message: format!(
                    "service `{}` appears twice (first on line {})",
                    service.name, prev.line
                ),
                hint: "keep one row per service".into(),
            });
        }
        for image in &service.images {
            if let Some(prev) = by_image.get(image).map(|&i| &rows[i]) {
                return Err(Error::Import {
                    file: file.to_string(),
                    line,
                    message: format!(
                        "image repository `{image}` is also claimed by `{}` on line {}",
                        prev.service.name, prev.line
                    ),
                    hint: "an image repository belongs to one service".into(),
                });
            }
        }
        by_name.insert(service.name.clone(), rows.len());
        for image in &service.images {
            by_image.insert(image.clone(), rows.len());
        }
        rows.push(ImportRow { line, service });
    }
    Ok(rows)
}

/// Applies parsed rows: adds new services, records a change for rows that differ. An image
/// repository that moves to another service ends the placements of its old service that run
/// that repository. Everything is one transaction.
pub fn import(
    store: &mut dyn Store,
    rows: Vec<ImportRow>,
    by: Identity,
    at: Timestamp,
) -> Result<ImportReport, Error> {
    // Check every row against the ledger first, so a conflict on row 9 writes nothing.
    let mut moves: Vec<(ServiceName, Repository, ServiceName)> = Vec::new();
    for row in &rows {
        for image in &row.service.images {
            if let Some(owner) = store.service_for_image(image)? {
                let moving_within_file = rows.iter().any(|r| r.service.name == owner);
                if owner != row.service.name && !moving_within_file {
                    return Err(Error::ImageClaimed {
                        image: image.clone(),
                        owner: owner.to_string(),
                    });
                }
                if owner != row.service.name {
                    moves.push((owner, image.clone(), row.service.name.clone()));
                }
            }
        }
    }
    let mut report = ImportReport {
        schema: 1,
        ..ImportReport::default()
    };
    let mut records = Vec::new();
    for row in rows {
        let name = row.service.name.to_string();
        match store.service(&row.service.name)? {
            Some(existing) if existing == row.service => report.unchanged.push(name),
            existing => {
                records.push(Record::Service(ServiceChange {
                    service: row.service,
                    by: by.clone(),
                    at,
                }));
                if existing.is_some() {
                    report.updated.push(name);
                } else {
                    report.added.push(name);
                }
            }
        }
    }
    for (from, image, to) in &moves {
        let reason = format!("image repository `{image}` moved to service `{to}`");
        let (ends, ended) = placements::ends_of(&*store, from, Some(image), Some(reason), &by, at)?;
        records.extend(ends);
        report.ended.extend(ended);
    }
    if !records.is_empty() {
        store.append(&records, at, Some(&by))?;
    }
    Ok(report)
}

/// What a rename or a removal did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemoveReport {
    pub schema: u32,
    /// `renamed` or `removed`.
    pub outcome: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
    /// The ledger index of the removal entry.
    pub index: u64,
    /// Placements ended by the change; a renamed service's deploys start new ones.
    pub ended: Vec<Ended>,
}

/// `service rename OLD NEW`: the service keeps its owners, repository, images and history
/// under the new name; its placements end, because the name they were recorded under no
/// longer runs anything. The next deploy (or `drift --reconcile`) records where NEW runs.
pub fn rename(
    store: &mut dyn Store,
    old: &ServiceName,
    new: ServiceName,
    reason: Option<String>,
    by: Identity,
    at: Timestamp,
) -> Result<RemoveReport, Error> {
    let reason = placements::check_reason(reason.as_deref())?;
    let Some(mut service) = store.service(old)? else {
        return Err(Error::UnknownService(old.to_string()));
    };
    if store.service(&new)?.is_some() {
        return Err(Error::ServiceExists(new.to_string()));
    }
    let (ends, ended) = placements::ends_of(
        &*store,
        old,
        None,
        Some(
            reason
                .clone()
                .unwrap_or_else(|| format!("service renamed to `{new}`")),
        ),
        &by,
        at,
    )?;
    let mut records = ends;
    records.push(Record::ServiceRemoved(ServiceRemoval {
        service: old.clone(),
        renamed_to: Some(new.clone()),
        reason,
        by: by.clone(),
        at,
    }));
    service.name = new.clone();
    records.push(Record::Service(ServiceChange {
        service,
        by: by.clone(),
        at,
    }));
    let n = records.len();
    let indexes = store.append(&records, at, Some(&by))?;
    Ok(RemoveReport {
        schema: 1,
        outcome: "renamed".into(),
        service: old.to_string(),
        renamed_to: Some(new.to_string()),
        index: indexes[n - 2],
        ended,
    })
}

/// `service remove NAME`: a decommissioned service. Its placements end, its name and image
/// repositories are free again, and its history stays (`service show NAME`).
pub fn remove(
    store: &mut dyn Store,
    name: &ServiceName,
    reason: Option<String>,
    by: Identity,
    at: Timestamp,
) -> Result<RemoveReport, Error> {
    let reason = placements::check_reason(reason.as_deref())?;
    if store.service(name)?.is_none() {
        return Err(Error::UnknownService(name.to_string()));
    }
    let (mut records, ended) = placements::ends_of(
        &*store,
        name,
        None,
        Some(reason.clone().unwrap_or_else(|| "service removed".into())),
        &by,
        at,
    )?;
    records.push(Record::ServiceRemoved(ServiceRemoval {
        service: name.clone(),
        renamed_to: None,
        reason,
        by: by.clone(),
        at,
    }));
    let indexes = store.append(&records, at, Some(&by))?;
    Ok(RemoveReport {
        schema: 1,
        outcome: "removed".into(),
        service: name.to_string(),
        renamed_to: None,
        index: *indexes.last().expect("one removal"),
        ended,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    service: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default, alias = "backup owner", alias = "backup-owner")]
    backup_owner: Option<String>,
    #[serde(default, alias = "source repo", alias = "source-repo", alias = "repo")]
    source_repo: Option<String>,
    #[serde(default, alias = "image repositories", alias = "image-repositories")]
    images: Vec<String>,
    #[serde(default, alias = "emergency approver", alias = "emergency-approver")]
    emergency_approver: Option<String>,
}

/// How deep a service table may nest: it needs 3 levels (`services:`, a row, its `images`).
const MAX_YAML_DEPTH: usize = 16;

/// Refuses YAML nested deeper than [`MAX_YAML_DEPTH`] before the YAML parser sees it: a small
/// file of nested brackets or dashes costs the parser seconds of CPU to reject.
fn check_yaml_depth(text: &str, file: &str) -> Result<(), Error> {
    let too_deep = |line: usize| {
        Error::Import {
        file: file.to_string(),
        line,
        message: format!("nests deeper than {MAX_YAML_DEPTH} levels"),
        hint: "a service table is `services:` with a list of flat entries; nothing in it nests deeper than 3 levels".into(),
    }
    };
    let mut brackets = 0usize;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let mut rest = line.trim_start();
        let mut dashes = 0;
        while let Some(r) = rest
            .strip_prefix('-')
            .filter(|r| r.starts_with([' ', '\t']))
        {
            dashes += 1;
            rest = r.trim_start();
        }
        // Two spaces per level is the narrowest YAML people write.
        if indent / 2 + dashes > MAX_YAML_DEPTH * 2 {
            return Err(too_deep(i + 1));
        }
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    brackets += 1;
                    if brackets > MAX_YAML_DEPTH {
                        return Err(too_deep(i + 1));
                    }
                }
                (None, ']' | '}') => brackets = brackets.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

fn parse_yaml(text: &str, file: &str) -> Result<Vec<(usize, RawRow)>, Error> {
    check_yaml_depth(text, file)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        services: Vec<RawRow>,
    }
    let doc: Doc = serde_yaml::from_str(text).map_err(|e| Error::Import {
        file: file.to_string(),
        line: e.location().map_or(1, |l| l.line()),
        message: e.to_string(),
        hint: "write `services:` followed by a list of `- service: api` entries with owner, backup_owner, emergency_approver, source_repo and images".into(),
    })?;
    // serde_yaml does not give per-item positions; find each item's `service:` line instead.
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_start()
                .trim_start_matches("- ")
                .trim_start()
                .starts_with("service:")
        })
        .map(|(i, _)| i + 1)
        .collect();
    Ok(doc
        .services
        .into_iter()
        .enumerate()
        .map(|(i, r)| (lines.get(i).copied().unwrap_or(1), r))
        .collect())
}

const CSV_COLUMNS: &str =
    "service, owner, backup owner, source repo, image repositories, emergency approver";

fn parse_csv(text: &str, file: &str) -> Result<Vec<(usize, RawRow)>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::Import {
            file: file.to_string(),
            line: 1,
            message: e.to_string(),
            hint: format!("the first line names the columns: {CSV_COLUMNS}"),
        })?
        .iter()
        .map(|h| h.to_ascii_lowercase().replace(['_', '-'], " "))
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let Some(service_col) = column("service") else {
        return Err(Error::Import {
            file: file.to_string(),
            line: 1,
            message: "has no `service` column".into(),
            hint: format!("the first line names the columns: {CSV_COLUMNS}"),
        });
    };
    let known = [
        "service",
        "owner",
        "backup owner",
        "source repo",
        "image repositories",
        "emergency approver",
    ];
    if let Some(unknown) = headers.iter().find(|h| !known.contains(&h.as_str())) {
        return Err(Error::Import {
            file: file.to_string(),
            line: 1,
            message: format!("has an unknown column `{unknown}`"),
            hint: format!("columns are: {CSV_COLUMNS}"),
        });
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::Import {
            file: file.to_string(),
            line,
            message: e.to_string(),
            hint: format!("every row has the columns: {CSV_COLUMNS}"),
        })?;
        let cell = |name: &str| {
            column(name)
                .and_then(|c| record.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        rows.push((
            line,
            RawRow {
                service: record.get(service_col).unwrap_or_default().to_string(),
                owner: cell("owner"),
                backup_owner: cell("backup owner"),
                source_repo: cell("source repo"),
                // Several repositories share one cell, separated by spaces or semicolons.
                images: cell("image repositories")
                    .map(|c| {
                        c.split([' ', ';'])
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                emergency_approver: cell("emergency approver"),
            },
        ));
    }
    Ok(rows)
}

/// One ownership change as `service show` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryItem {
    pub at: Timestamp,
    pub by: Identity,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub schema: u32,
    pub service: Service,
    pub history: Vec<HistoryItem>,
    /// Set when the service was removed or renamed: its last state is `service`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<ServiceRemoval>,
}

/// `service show`: a service and its history; a removed or renamed one too, from its history.
pub fn show(store: &dyn Store, name: &ServiceName) -> Result<ServiceReport, Error> {
    let changes = store.service_history(name)?;
    let removals: Vec<ServiceRemoval> = store
        .facts("service_removed", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::ServiceRemoved(r)
                if r.service == *name || r.renamed_to.as_ref() == Some(name) =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect();
    let (service, removed) = match store.service(name)? {
        Some(s) => (s, None),
        None => {
            let last = changes
                .last()
                .map(|c| c.service.clone())
                .ok_or_else(|| Error::UnknownService(name.to_string()))?;
            let removal = removals.iter().rev().find(|r| r.service == *name).cloned();
            (last, removal)
        }
    };
    let mut items = history(&changes);
    for r in &removals {
        let (old, new) = if r.service == *name {
            (
                Some(r.service.to_string()),
                r.renamed_to.as_ref().map(ToString::to_string),
            )
        } else {
            (Some(r.service.to_string()), Some(name.to_string()))
        };
        items.push(HistoryItem {
            at: r.at,
            by: r.by.clone(),
            field: if r.renamed_to.is_some() {
                "name"
            } else {
                "removed"
            }
            .to_string(),
            old,
            new,
        });
    }
    items.sort_by_key(|i| i.at);
    Ok(ServiceReport {
        schema: 1,
        service,
        history: items,
        removed,
    })
}

/// Turns full-state changes into field-level `old → new` items.
pub fn history(changes: &[ServiceChange]) -> Vec<HistoryItem> {
    let fields = |s: &Service| -> Vec<(&'static str, Option<String>)> {
        vec![
            ("owner", s.owner.as_ref().map(|i| i.to_string())),
            (
                "backup owner",
                s.backup_owner.as_ref().map(|i| i.to_string()),
            ),
            (
                "emergency approver",
                s.emergency_approver.as_ref().map(|i| i.to_string()),
            ),
            ("source repo", s.source_repo.as_ref().map(|i| i.to_string())),
            (
                "images",
                Some(
                    s.images
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
                .filter(|s| !s.is_empty()),
            ),
        ]
    };
    let mut out = Vec::new();
    let mut previous: Option<&Service> = None;
    for change in changes {
        let new = fields(&change.service);
        let old = previous.map(fields);
        for (i, (field, value)) in new.into_iter().enumerate() {
            let before = old.as_ref().and_then(|o| o[i].1.clone());
            if before != value {
                out.push(HistoryItem {
                    at: change.at,
                    by: change.by.clone(),
                    field: field.to_string(),
                    old: before,
                    new: value,
                });
            }
        }
        previous = Some(&change.service);
    }
    out
}
