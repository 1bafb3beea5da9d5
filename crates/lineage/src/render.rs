//! Rendering reports: human text for terminals and CI logs, or the report's JSON.
//!
//! Human output leads with the answer and keeps one fact per line, so it reads in a
//! terminal, a CI log and a chat paste alike. JSON output is the report itself (`"schema": 1`).

use std::fmt::Write as _;

use lineage_core::ci::Detected;
use lineage_core::detect::BaseDetection;
use lineage_core::query::{AffectedReport, Placement, RunningReport, TraceReport};
use lineage_core::record::RecordReport;
use lineage_core::services::{ImportReport, ServiceReport};
use lineage_model::{inert, BuildRecord, Service};
use serde::Serialize;

use crate::args::Format;

pub(crate) fn json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialise")
    );
}

/// `sha256:0123456789ab`: enough to tell digests apart on screen; JSON carries the full one.
pub(crate) fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

fn or_none(v: Option<&str>) -> &str {
    v.unwrap_or("(none)")
}

pub fn not_found(format: Format, message: &str) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"schema": 1, "found": false, "message": message})
        ),
        Format::Human => eprintln!("{message}"),
    }
}

/// With `--from-registry`, says first how the base was found. Under JSON, prints `value` with
/// a `base_detection` field and returns true (the caller prints nothing more); for humans,
/// prints the detection line and returns false. Without a detection, does nothing.
fn base_detection<T: Serialize>(
    format: Format,
    value: &T,
    detection: Option<&BaseDetection>,
) -> bool {
    let Some(detection) = detection else {
        return false;
    };
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(value).expect("reports serialise");
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "base_detection".into(),
                    serde_json::to_value(detection).expect("serialises"),
                );
            }
            json(&v);
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

/// A recorded build or deploy; a build from `--from-registry` says how its base was found.
pub fn record(format: Format, r: &RecordReport, detection: Option<&BaseDetection>) {
    if base_detection(format, r, detection) {
        return;
    }
    match format {
        Format::Json => json(r),
        Format::Human => println!(
            "{} {} {} for {} (ledger entry {})",
            r.outcome,
            r.kind,
            short(&r.digest),
            r.service,
            r.index
        ),
    }
}

pub fn service_changed(format: Format, service: &Service, index: Option<u64>, what: &str) {
    match format {
        Format::Json => json(&serde_json::json!({
            "schema": 1, "outcome": what, "index": index, "service": service,
        })),
        Format::Human => {
            println!("{what} service {}", service.name);
            print!("{}", owners_block(service));
        }
    }
}

fn owners_block(s: &Service) -> String {
    let mut out = String::new();
    let id = |i: &Option<lineage_model::Identity>| i.as_ref().map(|i| i.to_string());
    let _ = writeln!(
        out,
        "  owner               {}",
        or_none(id(&s.owner).as_deref())
    );
    let _ = writeln!(
        out,
        "  backup owner        {}",
        or_none(id(&s.backup_owner).as_deref())
    );
    let _ = writeln!(
        out,
        "  emergency approver  {}",
        or_none(id(&s.emergency_approver).as_deref())
    );
    if let Some(r) = &s.source_repo {
        let _ = writeln!(out, "  source repo         {r}");
    }
    for image in &s.images {
        let _ = writeln!(out, "  image               {image}");
    }
    out
}

pub fn service_report(format: Format, r: &ServiceReport) {
    match format {
        Format::Json => json(r),
        Format::Human => {
            println!("service {}", r.service.name);
            if let Some(removed) = &r.removed {
                match &removed.renamed_to {
                    Some(new) => println!("  RENAMED to {new} at {} by {}", removed.at, removed.by),
                    None => println!("  REMOVED at {} by {}", removed.at, removed.by),
                }
            }
            print!("{}", owners_block(&r.service));
            println!("history");
            for h in &r.history {
                println!(
                    "  {}  {:<18}  {} → {}  (by {})",
                    h.at,
                    h.field,
                    or_none(h.old.as_deref()),
                    or_none(h.new.as_deref()),
                    h.by
                );
            }
        }
    }
}

pub fn service_list(format: Format, list: &[Service]) {
    match format {
        Format::Json => json(&serde_json::json!({"schema": 1, "services": list})),
        Format::Human => {
            let rows: Vec<[String; 4]> = list
                .iter()
                .map(|s| {
                    let id = |i: &Option<lineage_model::Identity>| {
                        i.as_ref().map_or("(none)".to_string(), |i| i.to_string())
                    };
                    [
                        s.name.to_string(),
                        id(&s.owner),
                        id(&s.backup_owner),
                        id(&s.emergency_approver),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["SERVICE", "OWNER", "BACKUP", "EMERGENCY APPROVER"], &rows)
            );
        }
    }
}

pub fn import(format: Format, r: &ImportReport) {
    match format {
        Format::Json => json(r),
        Format::Human => {
            println!(
                "imported: {} added, {} updated, {} unchanged",
                r.added.len(),
                r.updated.len(),
                r.unchanged.len()
            );
            for e in &r.ended {
                println!(
                    "  ended {} in {} ({}): `{}` moved to another service",
                    e.service,
                    e.env,
                    short(&e.digest),
                    e.image
                );
            }
        }
    }
}

pub fn detected(
    format: Format,
    build: &BuildRecord,
    ci: Option<&Detected>,
    detection: Option<&BaseDetection>,
) {
    let whole = serde_json::json!({"schema": 1, "ci": ci, "build": build});
    if base_detection(format, &whole, detection) {
        return;
    }
    match format {
        Format::Json => json(&serde_json::json!({"schema": 1, "ci": ci, "build": build})),
        Format::Human => {
            match ci.and_then(|c| c.system.as_deref()) {
                Some(system) => println!("detected CI: {system}"),
                None => println!("detected CI: none (not running in a known CI system)"),
            }
            println!("would record (nothing written):");
            print!("{}", build_block(build, None));
        }
    }
}

/// A build's facts; `recorded_at` stands in for a build time the pipeline did not give.
fn build_block(b: &BuildRecord, recorded_at: Option<lineage_model::Timestamp>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  image     {}@{}", b.image, b.digest);
    if !b.tags.is_empty() {
        let tags: Vec<&str> = b.tags.iter().map(|t| t.as_str()).collect();
        let _ = writeln!(out, "  tags      {}", tags.join(", "));
    }
    if b.bases.is_empty() {
        let _ = writeln!(out, "  base      (none recorded)");
    }
    for base in &b.bases {
        let stage = if base.final_stage {
            "final stage"
        } else {
            "build stage"
        };
        let pulled = base
            .pulled_at
            .map(|t| format!(", pulled {t}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  base      {} ({stage}{pulled})", base.display());
    }
    let _ = writeln!(
        out,
        "  source    {} @ {}, commit {}",
        or_none(b.source_repo.as_ref().map(|r| r.as_str())),
        inert(or_none(b.git_ref.as_deref())),
        or_none(b.commit.as_ref().map(|c| c.as_str()))
    );
    let built = match (b.finished_at, recorded_at) {
        (Some(t), _) => t.to_string(),
        (None, Some(r)) => format!("{r} (recorded; no build time given)"),
        (None, None) => "(none)".to_string(),
    };
    let _ = writeln!(
        out,
        "  built     {built} by {}",
        or_none(b.builder.as_ref().map(|i| i.as_str()))
    );
    if let Some(ci) = &b.ci {
        let mut line = inert(&ci.system).into_owned();
        for part in [&ci.job, &ci.run_id, &ci.url].into_iter().flatten() {
            line.push(' ');
            line.push_str(&inert(part));
        }
        let _ = writeln!(out, "  ci        {line}");
    } else {
        let _ = writeln!(out, "  ci        (none: not built in CI)");
    }
    if let Some(p) = &b.platform {
        let _ = writeln!(out, "  platform  {}", inert(p));
    }
    if let Some(d) = &b.dockerfile {
        let _ = writeln!(
            out,
            "  docker    {} (sha256 {})",
            inert(&d.path),
            inert(or_none(d.sha256.as_deref()))
        );
    }
    out
}

fn placement_line(p: &Placement, show_digest: bool) -> String {
    let mut line = format!("{:<12} ", p.env);
    if show_digest {
        let _ = write!(line, "{}  ", short(&p.digest));
    }
    let _ = write!(
        line,
        "since {}  deployed by {}  approved by {}",
        p.since,
        p.deployed_by,
        or_none(p.approved_by.as_deref())
    );
    if let Some(t) = &p.ticket {
        let _ = write!(line, "  ticket {}", inert(t));
    }
    if let Some(o) = &p.observed {
        let _ = write!(line, "  {}", o.phrase());
    }
    if let Some(o) = &p.outcome {
        let _ = write!(line, "  outcome {} ({})", o.status.to_uppercase(), o.at);
    }
    if let Some(r) = &p.release {
        let _ = write!(line, "  release {r}");
    }
    if let Some(r) = &p.retired {
        let _ = write!(line, "  RETIRED by {} ({})", r.by, inert(&r.reason));
    }
    line
}

pub fn trace(format: Format, r: &TraceReport) {
    if format == Format::Json {
        return json(r);
    }
    println!("service   {}", r.service);
    println!(
        "  owner               {}",
        or_none(r.owners.owner.as_deref())
    );
    println!(
        "  backup owner        {}",
        or_none(r.owners.backup_owner.as_deref())
    );
    println!(
        "  emergency approver  {}",
        or_none(r.owners.emergency_approver.as_deref())
    );
    println!();
    match &r.build {
        Some(b) => print!("{}", build_block(b, r.build_recorded_at)),
        None => {
            println!("  image     {}@{}", r.image, r.digest);
            println!("  build     NOT RECORDED: provenance of this digest is unknown");
        }
    }
    println!();
    if r.running.is_empty() {
        println!("runs now  nowhere");
    } else {
        println!("runs now");
        for p in &r.running {
            println!("  {}", placement_line(p, false));
        }
    }
    if !r.elsewhere.is_empty() {
        println!("other digests of {} running now", r.service);
        for p in &r.elsewhere {
            println!("  {}", placement_line(p, true));
        }
    }
    if !r.previous.is_empty() {
        println!("previous builds");
        for b in &r.previous {
            println!(
                "  {}  {:<12}  commit {}  built {}",
                short(&b.digest),
                if b.tags.is_empty() {
                    "-".to_string()
                } else {
                    b.tags.join(",")
                },
                b.commit
                    .as_deref()
                    .map_or("(none)", |c| &c[..12.min(c.len())]),
                or_none(b.finished_at.map(|t| t.to_string()).as_deref())
            );
        }
    }
}

pub fn affected(format: Format, r: &AffectedReport) {
    if format == Format::Json {
        return json(r);
    }
    if r.services.is_empty() {
        println!("no recorded build uses base {}", r.base);
        return;
    }
    let running: usize = r.services.iter().filter(|s| !s.running.is_empty()).count();
    println!(
        "base {}: {} service(s) built on it, {} running it now",
        r.base,
        r.services.len(),
        running
    );
    for s in &r.services {
        println!();
        println!(
            "{}  owner {}  backup {}  emergency {}",
            s.service,
            or_none(s.owners.owner.as_deref()),
            or_none(s.owners.backup_owner.as_deref()),
            or_none(s.owners.emergency_approver.as_deref())
        );
        if s.build_stage_only {
            println!("  build stage  only: the base built the app but is not in the image");
        }
        if s.running.is_empty() {
            println!("  runs now     nowhere on this base");
        }
        for p in &s.running {
            println!(
                "  runs now     {:<12} {}  commit {}  since {}  approved by {}{}",
                p.env,
                short(&p.digest),
                p.commit
                    .as_deref()
                    .map_or("(none)", |c| &c[..12.min(c.len())]),
                p.since,
                or_none(p.approved_by.as_deref()),
                p.observed
                    .as_ref()
                    .map(|o| format!("  {}", o.phrase()))
                    .unwrap_or_default()
            );
        }
        println!(
            "  built on it  {} build(s), newest {} (commit {})",
            s.builds,
            short(&s.latest_digest),
            s.latest_commit
                .as_deref()
                .map_or("(none)", |c| &c[..12.min(c.len())])
        );
        println!("  base         {}", s.bases.join(", "));
    }
}

pub fn running(format: Format, r: &RunningReport) {
    if format == Format::Json {
        return json(r);
    }
    if r.rows.is_empty() {
        println!(
            "nothing is recorded as running{}",
            r.env
                .as_ref()
                .map(|e| format!(" in {e}"))
                .unwrap_or_default()
        );
        return;
    }
    let rows: Vec<[String; 8]> = r
        .rows
        .iter()
        .map(|row| {
            let p = &row.placement;
            // What needs attention stands next to the digest, in words.
            let mut digest = short(&p.digest);
            if let Some(o) = p.outcome.as_ref().filter(|o| o.status != "healthy") {
                digest.push(' ');
                digest.push_str(&o.status.to_uppercase());
            }
            if p.retired.is_some() {
                digest.push_str(" RETIRED");
            }
            [
                row.service.clone(),
                p.env.clone(),
                digest,
                p.since.to_string(),
                p.deployed_by.clone(),
                or_none(p.approved_by.as_deref()).to_string(),
                p.base_digest.as_deref().map_or("(unknown)".into(), short),
                or_none(row.owner.as_deref()).to_string(),
            ]
        })
        .collect();
    // With observations in the ledger, each row also says whether it was seen running.
    if r.rows.iter().any(|row| row.placement.observed.is_some()) {
        let rows: Vec<[String; 9]> = rows
            .into_iter()
            .zip(&r.rows)
            .map(|(cells, row)| {
                let [a, b, c, d, e, f, g, h] = cells;
                let seen = row
                    .placement
                    .observed
                    .as_ref()
                    .map_or(String::new(), |o| o.phrase());
                [a, b, c, d, e, f, g, h, seen]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "SERVICE",
                    "ENV",
                    "DIGEST",
                    "SINCE",
                    "DEPLOYED BY",
                    "APPROVED BY",
                    "BASE",
                    "OWNER",
                    "OBSERVED"
                ],
                &rows
            )
        );
        return;
    }
    print!(
        "{}",
        table(
            &[
                "SERVICE",
                "ENV",
                "DIGEST",
                "SINCE",
                "DEPLOYED BY",
                "APPROVED BY",
                "BASE",
                "OWNER"
            ],
            &rows
        )
    );
}

/// A plain left-aligned table with two spaces between columns.
pub(crate) fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut all = vec![header.map(str::to_string)];
    all.extend_from_slice(rows);
    aligned(&all)
}

/// Rows in columns as wide as their widest cell; the last column is not padded.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut l = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}
