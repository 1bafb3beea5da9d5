//! The stale-base report and the rebuild diff as people read them: plain text for terminals,
//! chat and email, Markdown, a self-contained HTML page, and the Slack / Mattermost webhook
//! payload. The values and every decision in them come from `lineage_core::freshness`; this
//! module only presents them. Screens and chat show 12 hex digits of a digest, enough to tell
//! them apart; JSON carries the full digest.
//!
//! The HTML page is a `maud` template, which escapes every interpolated value: no tag is
//! assembled from strings.

use std::fmt::Write as _;

use lineage_core::freshness::{
    BaseFreshness, BuildDiff, FieldChange, Stage, StaleReport, StaleRow,
};
use lineage_core::lifecycle::RetiredMark;
use maud::{html, PreEscaped, DOCTYPE};

use crate::render::short;

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn headline(r: &StaleReport) -> String {
    let scope = r.env.as_ref().map_or(String::new(), |e| format!(" in {e}"));
    if r.rows.is_empty() && r.below_min_days > 0 {
        format!(
            "No base image more than {} days behind{scope} (as of {}); {} fewer days behind left out.",
            r.min_days,
            r.generated_at,
            plural(r.below_min_days as i64, "image", "images")
        )
    } else if r.rows.is_empty() && r.up_to_date == 0 && !r.not_assessed.is_empty() {
        format!(
            "Nothing could be assessed{scope} (as of {}): see \"not assessed\" below.",
            r.generated_at
        )
    } else if r.rows.is_empty() {
        format!("No stale base images{scope} (as of {}).", r.generated_at)
    } else {
        let running = r
            .rows
            .iter()
            .filter(|row| row.stage == Stage::Final)
            .count();
        let stages = r.rows.len() - running;
        let stages = if stages == 0 {
            String::new()
        } else {
            format!(
                "; {} behind in build stages only",
                plural(stages as i64, "base", "bases")
            )
        };
        format!(
            "{} on an outdated base image{scope}{stages} (as of {}).",
            plural(running as i64, "service runs", "services run"),
            r.generated_at
        )
    }
}

/// The row's base tag, marked when only a build stage used it.
fn base_label(row: &StaleRow) -> String {
    match row.stage {
        Stage::Final => row.base.clone(),
        Stage::Build => format!("{} (build stage)", row.base),
    }
}

/// Who saw the first newer digest, in words.
fn source_phrase(row: &StaleRow) -> String {
    let who: Vec<&str> = row
        .source
        .iter()
        .map(|s| match *s {
            "build" => "a recorded build",
            "registry" => "the registry",
            other => other,
        })
        .collect();
    format!("newer digest seen by {}", who.join(" and "))
}

/// The subject line of the emailed report: the headline, tagged so filters can find it.
pub fn email_subject(r: &StaleReport) -> String {
    format!("[lineage] {}", headline(r).trim_end_matches('.'))
}

fn owners_line(row: &StaleRow) -> String {
    let owner = row.owner.as_deref().unwrap_or("(no owner)");
    match &row.backup_owner {
        Some(b) => format!("{owner}, backup {b}"),
        None => owner.to_string(),
    }
}

fn freshness_line(b: &BaseFreshness) -> String {
    let refreshed = match b.last_refresh {
        Some(t) => format!("registry last checked {t}"),
        None => "never checked in a registry; history from builds only".to_string(),
    };
    format!(
        "{}: {refreshed}; {} known, newest {} first seen {}",
        b.base,
        plural(b.digests_known as i64, "digest", "digests"),
        short(&b.newest_digest),
        b.newest_first_seen
    )
}

fn rebuild_line(row: &StaleRow) -> String {
    match (&row.rebuild, &row.ci_url) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(url)) => format!("re-run CI with a fresh pull: {url}"),
        (None, None) => "commit unknown: rebuild from the source of the running digest".into(),
    }
}

fn footer_counts(r: &StaleReport) -> String {
    let mut s = format!("Up to date: {}.", r.up_to_date);
    if !r.not_assessed.is_empty() {
        let _ = write!(s, " Not assessed: {}.", r.not_assessed.len());
    }
    if let Some(n) = r.fail_after {
        let _ = write!(s, " More than {n} days behind: {}.", r.over_limit);
    }
    s
}

/// Plain text that reads well in a terminal and pasted into chat or email.
pub fn render_text(r: &StaleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(r));
    for row in &r.rows {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} in {}: {} behind ({} newer than the running one)",
            row.service,
            row.env,
            plural(row.days_behind, "day", "days"),
            plural(row.digests_behind as i64, "base digest", "base digests")
        );
        let _ = writeln!(out, "  running   {}@{}", row.image, short(&row.digest));
        let _ = writeln!(
            out,
            "  base      {} {} -> {} ({})",
            base_label(row),
            short(&row.running_base_digest),
            short(&row.newest_base_digest),
            source_phrase(row)
        );
        let _ = writeln!(out, "  owner     {}", owners_line(row));
        match &row.rebuilt {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "  ready     {} is built on the new base: deploy it",
                    short(d)
                );
            }
            None => {
                let _ = writeln!(out, "  pin       {}", row.from_line);
                let _ = writeln!(out, "  rebuild   {}", rebuild_line(row));
            }
        }
        if let Some(o) = &row.observed {
            let _ = writeln!(out, "  runtime   {}", o.phrase());
        }
        if let Some(x) = &row.retired {
            let _ = writeln!(out, "  RETIRED   {}", retired_line(x));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", footer_counts(r));
    for n in &r.not_assessed {
        let _ = writeln!(
            out,
            "  not assessed: {} in {}: {}",
            n.service, n.env, n.reason
        );
    }
    if !r.bases.is_empty() {
        let _ = writeln!(out, "Data freshness:");
        for b in &r.bases {
            let _ = writeln!(out, "  {}", freshness_line(b));
        }
    }
    out
}

/// A retired digest still running: it must not run at all, stale or not.
fn retired_line(x: &RetiredMark) -> String {
    format!(
        "retired by {} at {} ({}), yet it runs here",
        x.by,
        x.at,
        lineage_model::inert(&x.reason)
    )
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown document: a table of rows, then the rebuild commands and data freshness.
pub fn render_markdown(r: &StaleReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Stale base images\n");
    let _ = writeln!(out, "{}\n", headline(r));
    if !r.rows.is_empty() {
        let _ = writeln!(
            out,
            "| service | environment | running digest | base | running base | newest base | days behind | digests behind | owner | backup owner |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---:|---:|---|---|");
        for row in &r.rows {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | `{}` | `{}` | `{}` | {} | {} | {} | {} |",
                md_cell(&row.service),
                md_cell(&row.env),
                short(&row.digest),
                md_cell(&base_label(row)),
                short(&row.running_base_digest),
                short(&row.newest_base_digest),
                row.days_behind,
                row.digests_behind,
                md_cell(row.owner.as_deref().unwrap_or("—")),
                md_cell(row.backup_owner.as_deref().unwrap_or("—")),
            );
        }
        for row in r.rows.iter().filter(|row| row.retired.is_some()) {
            if let Some(x) = &row.retired {
                let _ = writeln!(
                    out,
                    "\n**RETIRED** {} in {}: {}",
                    md_cell(&row.service),
                    md_cell(&row.env),
                    md_cell(&retired_line(x))
                );
            }
        }
        let _ = writeln!(out, "\n## Rebuild on the new base\n");
        for row in &r.rows {
            let _ = writeln!(
                out,
                "- **{}** ({}): `{}`",
                md_cell(&row.service),
                md_cell(&row.env),
                md_cell(&rebuild_line(row))
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}\n", footer_counts(r));
    if !r.not_assessed.is_empty() {
        let _ = writeln!(out, "## Not assessed\n");
        for n in &r.not_assessed {
            let _ = writeln!(
                out,
                "- {} in {}: {}",
                md_cell(&n.service),
                md_cell(&n.env),
                n.reason
            );
        }
        let _ = writeln!(out);
    }
    if !r.bases.is_empty() {
        let _ = writeln!(out, "## Data freshness\n");
        for b in &r.bases {
            let _ = writeln!(out, "- {}", md_cell(&freshness_line(b)));
        }
    }
    out
}

/// The page's stylesheet: a constant of this file, the only markup the template does not
/// escape.
const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2329}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}
td.num{text-align:right}
code{font-family:ui-monospace,monospace;font-size:.9em}
.late{color:#b42318;font-weight:600}
footer{margin-top:1.5rem;color:#57606a;font-size:.9em}
";

/// The table's columns, in order.
const COLUMNS: [&str; 11] = [
    "service",
    "environment",
    "running digest",
    "base",
    "running base",
    "newest base",
    "days behind",
    "digests behind",
    "owner",
    "backup owner",
    "rebuild",
];

/// A self-contained HTML page: inline CSS, no scripts, no external assets, so it can be
/// mailed or archived as one file. The `"\n"` text nodes keep one element per line, so the
/// page reads (and diffs) as source.
pub fn render_html(r: &StaleReport) -> String {
    let nl = "\n";
    html! {
        (DOCTYPE) (nl)
        html lang="en" {
            (nl)
            head {
                (nl)
                meta charset="utf-8";
                (nl)
                title { "Stale base images" }
                (nl)
                style { (PreEscaped(STYLE)) }
                (nl)
            }
            (nl)
            body {
                (nl)
                h1 { "Stale base images" }
                (nl)
                p { (headline(r)) }
                (nl)
                @if !r.rows.is_empty() {
                    table {
                        (nl)
                        thead { tr { @for c in COLUMNS { th { (c) } } } }
                        (nl)
                        tbody {
                            (nl)
                            @for row in &r.rows {
                                @let late = r.fail_after.is_some_and(|n| row.days_behind > i64::from(n));
                                tr {
                                    td { (row.service) }
                                    td { (row.env) }
                                    td {
                                        code title=(row.digest) {
                                            (short(&row.digest))
                                            @if row.retired.is_some() { " RETIRED" }
                                        }
                                    }
                                    td { code { (base_label(row)) } }
                                    td { code title=(row.running_base_digest) { (short(&row.running_base_digest)) } }
                                    td { code title=(row.newest_base_digest) { (short(&row.newest_base_digest)) } }
                                    td.num.late[late] { (row.days_behind) }
                                    td class="num" { (row.digests_behind) }
                                    td { (row.owner.as_deref().unwrap_or("—")) }
                                    td { (row.backup_owner.as_deref().unwrap_or("—")) }
                                    td { code { (rebuild_line(row)) } }
                                }
                                (nl)
                            }
                        }
                        (nl)
                    }
                    (nl)
                }
                p { (footer_counts(r)) }
                (nl)
                @if !r.not_assessed.is_empty() {
                    h2 { "Not assessed" }
                    (nl)
                    ul {
                        (nl)
                        @for n in &r.not_assessed {
                            li { (n.service) " in " (n.env) ": " (n.reason) }
                            (nl)
                        }
                    }
                    (nl)
                }
                @if !r.bases.is_empty() {
                    footer {
                        (nl)
                        h2 { "Data freshness" }
                        (nl)
                        ul {
                            (nl)
                            @for b in &r.bases {
                                li { (freshness_line(b)) }
                                (nl)
                            }
                        }
                        (nl)
                    }
                    (nl)
                }
            }
            (nl)
        }
        (nl)
    }
    .into_string()
}

/// Slack allows 50 blocks per message; rows past this are summarised in one line.
const MAX_ROW_BLOCKS: usize = 40;

/// A Slack / Mattermost incoming-webhook payload. `text` carries the whole plain report,
/// which Mattermost shows and Slack uses for notifications; `blocks` is Slack's richer layout.
pub fn slack_payload(r: &StaleReport) -> serde_json::Value {
    use serde_json::json;
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Stale base images"}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": headline(r)}}),
    ];
    for row in r.rows.iter().take(MAX_ROW_BLOCKS) {
        let text = format!(
            "*{}* in *{}*: {} behind ({} newer than the running one)\nbase `{}` `{}` → `{}`\nowner {}\nrebuild: `{}`",
            row.service,
            row.env,
            plural(row.days_behind, "day", "days"),
            plural(row.digests_behind as i64, "base digest", "base digests"),
            base_label(row),
            short(&row.running_base_digest),
            short(&row.newest_base_digest),
            owners_line(row),
            rebuild_line(row)
        );
        let text = match &row.retired {
            Some(x) => format!("{text}\n*RETIRED*: {}", retired_line(x)),
            None => text,
        };
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if r.rows.len() > MAX_ROW_BLOCKS {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("…and {} more; see `lineage report stale`", r.rows.len() - MAX_ROW_BLOCKS)}}));
    }
    let mut context = vec![footer_counts(r)];
    context.extend(r.bases.iter().map(freshness_line));
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": context.join("\n")}
    ]}));
    json!({"text": render_text(r), "blocks": blocks})
}

/// The diff as text: changed fields first, then the verdicts.
pub fn render_diff_text(d: &BuildDiff, expect_base_only: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} -> {}", d.service, short(&d.old), short(&d.new));
    let show = |v: &Option<String>| match v {
        Some(s) if s.starts_with("sha256:") && !s.contains(", ") => short(s),
        Some(s) => s
            .split(", ")
            .map(|p| {
                if p.starts_with("sha256:") {
                    short(p)
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => "(not recorded)".to_string(),
    };
    let changed: Vec<&FieldChange> = d.fields.iter().filter(|f| f.changed).collect();
    if changed.is_empty() {
        let _ = writeln!(out, "  no recorded field differs");
    }
    for f in &changed {
        let _ = writeln!(
            out,
            "  changed    {:<13} {} -> {}",
            f.field,
            show(&f.old),
            show(&f.new)
        );
    }
    for f in d.fields.iter().filter(|f| !f.changed) {
        let _ = writeln!(out, "  same       {:<13} {}", f.field, show(&f.old));
    }
    let _ = match d.reproducibility.verdict {
        "not reproducible" if !d.reproducibility.could_explain.is_empty() => writeln!(
            out,
            "reproducibility: not reproducible (could be explained by: {})",
            d.reproducibility.could_explain.join(", ")
        ),
        "not reproducible" => writeln!(
            out,
            "reproducibility: not reproducible (no recorded field explains it)"
        ),
        "reproducible" => writeln!(out, "reproducibility: reproducible"),
        _ => writeln!(out, "reproducibility: not applicable (inputs differ)"),
    };
    if d.base_only.holds {
        let _ = writeln!(out, "base-only: yes, only the base changed");
    } else if expect_base_only {
        let _ = writeln!(
            out,
            "base-only: FAILED, also changed: {}",
            d.base_only.also_changed.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "base-only: no ({})",
            d.base_only.also_changed.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_core::freshness::NotAssessed;
    use lineage_model::Timestamp;

    #[test]
    fn a_retired_digest_that_still_runs_is_flagged_in_every_format() {
        let t = Timestamp::parse("2026-11-17T09:00:00Z").unwrap();
        let row = StaleRow {
            service: "api".into(),
            env: "production".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            image: "ghcr.io/acme/api".into(),
            base: "python:3.12-slim".into(),
            stage: Stage::Final,
            running_base_digest: format!("sha256:{}", "b".repeat(64)),
            newest_base_digest: format!("sha256:{}", "c".repeat(64)),
            days_behind: 40,
            digests_behind: 2,
            behind_since: t,
            source: vec!["registry"],
            owner: Some("priya@acme.dev".into()),
            backup_owner: None,
            commit: None,
            rebuild: None,
            from_line: "FROM python:3.12-slim@sha256:cccc".into(),
            rebuilt: None,
            ci_url: None,
            observed: None,
            retired: Some(RetiredMark {
                reason: "CVE-2026-1234 <in base>".into(),
                by: "maya@acme.dev".into(),
                at: t,
            }),
        };
        let report = StaleReport {
            schema: 1,
            generated_at: t,
            env: None,
            min_days: 0,
            fail_after: None,
            over_limit: 0,
            fails: false,
            below_min_days: 0,
            rows: vec![row],
            up_to_date: 0,
            not_assessed: Vec::new(),
            bases: Vec::new(),
        };
        assert!(render_text(&report).contains("RETIRED   retired by maya@acme.dev"));
        assert!(render_markdown(&report).contains("**RETIRED** api in production"));
        let html = render_html(&report);
        assert!(html.contains("RETIRED"), "{html}");
        assert!(!html.contains("<in base>"));
        assert!(slack_payload(&report).to_string().contains("*RETIRED*"));
    }

    /// Whatever the ledger holds is text on the page, never markup: every field a row, a
    /// skipped placement or a base shows is escaped by the template.
    #[test]
    fn the_page_escapes_everything_it_shows() {
        let t = Timestamp::parse("2026-11-17T09:00:00Z").unwrap();
        let hostile = "<script>alert('x')</script>&\"";
        let row = StaleRow {
            service: hostile.into(),
            env: hostile.into(),
            digest: hostile.into(),
            image: hostile.into(),
            base: hostile.into(),
            stage: Stage::Build,
            running_base_digest: hostile.into(),
            newest_base_digest: hostile.into(),
            days_behind: 9,
            digests_behind: 1,
            behind_since: t,
            source: vec!["build"],
            owner: Some(hostile.into()),
            backup_owner: Some(hostile.into()),
            commit: None,
            rebuild: Some(hostile.into()),
            from_line: hostile.into(),
            rebuilt: None,
            ci_url: None,
            observed: None,
            retired: None,
        };
        let report = StaleReport {
            schema: 1,
            generated_at: t,
            env: Some(hostile.into()),
            min_days: 0,
            fail_after: Some(3),
            over_limit: 0,
            fails: true,
            below_min_days: 0,
            rows: vec![row],
            up_to_date: 0,
            not_assessed: vec![NotAssessed {
                service: hostile.into(),
                env: hostile.into(),
                digest: hostile.into(),
                reason: hostile.into(),
            }],
            bases: vec![BaseFreshness {
                base: hostile.into(),
                last_refresh: None,
                newest_digest: hostile.into(),
                newest_first_seen: t,
                digests_known: 2,
            }],
        };
        let html = render_html(&report);
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("<td>&lt;script&gt;alert('x')&lt;/script&gt;&amp;&quot;</td>"),
            "{html}"
        );
        assert!(
            html.contains("<code title=\"&lt;script&gt;alert('x')&lt;/script&gt;&amp;&quot;\">"),
            "{html}"
        );
        assert!(html.contains("<td class=\"num late\">9</td>"), "{html}");
    }

    /// The page is a template: no tag is assembled in a string, where one missed escape is an
    /// injection.
    #[test]
    fn the_page_is_not_built_from_strings() {
        let code = include_str!("freshness_render.rs")
            .split("#[cfg(test)]")
            .next()
            .unwrap();
        for needle in [
            "format!(\"<",
            "push_str(\"<",
            "\"<td",
            "\"<tr",
            "\"<li",
            "escape(",
        ] {
            assert!(
                !code.contains(needle),
                "HTML built from strings: `{needle}`"
            );
        }
    }
}
