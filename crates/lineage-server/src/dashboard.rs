//! The dashboard: server-rendered HTML pages for people, read during an incident on a laptop.
//!
//! Every page is one HTML document with its stylesheet inline: no script, no font, no CDN, so
//! it works on an isolated network and prints. Values from the ledger are escaped before they
//! reach the page. Pages read the same reports the API returns.
//!
//! Pages need a `read` token unless the server runs with `--public-dashboard`, and every
//! answer carries a script-free Content-Security-Policy ([`access`]).

mod access;
mod picture;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};

use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lineage_core::drift::{self, DriftOptions, DriftReport};
use lineage_core::freshness::Freshness;
use lineage_core::observe::{ObservedState, Truth};
use lineage_core::{incident, lifecycle, lineage_graph, query, services, vulns};
use lineage_model::{EnvName, ServiceName, Timestamp};
use lineage_policy::SignatureStatus;
use lineage_store::lineage_log::checkpoint::verify_checkpoint;
use lineage_store::Store;
use serde::Deserialize;

use crate::{blocking, ApiError, AppState};

pub use access::{safe_next, DashboardConfig, COOKIE, CSP, LOGIN, LOGIN_FORM_LIMIT};

/// The pages, guarded by a `read` token (or open with `--public-dashboard`), and the login
/// and logout forms; all of them answer with the dashboard's security headers.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(fleet))
        .route("/services/{name}", get(service))
        .route("/digests/{digest}", get(digest_page))
        .route("/incident", get(incident))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident_page))
        .route("/log", get(log))
        // A route layer, so a page added above is guarded without anyone remembering to.
        .route_layer(middleware::from_fn_with_state(state, access::require_read))
        .merge(access::routes())
        .layer(middleware::map_response(access::security_headers))
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b2a41;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header b{font-size:18px}header a{color:#cfe0ff;text-decoration:none}header a:hover{text-decoration:underline}
main{padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px;text-transform:uppercase;letter-spacing:.03em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.ok{color:#116329}.bad{color:#b42318;font-weight:600}.warn{color:#9a6700}.muted{color:#6b7280}
.card{background:#fff;padding:12px 16px;box-shadow:0 1px 2px #0002;margin-bottom:14px}
form input[type=text],form input[type=password]{font-size:16px;padding:6px 8px;width:min(640px,90%)}form button{font-size:16px;padding:6px 14px}
header form{margin:0 0 0 auto}header form button{font-size:13px;padding:2px 10px}
td.mono{word-break:break-all}
pre{background:#fff;padding:10px;box-shadow:0 1px 2px #0002;overflow-x:auto}
.picture{overflow-x:auto;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:14px}.picture svg{display:block}
";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One HTML document: the stylesheet inline (its hash is in the CSP), `nav` in the header bar.
fn document(title: &str, nav: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} · Lineage</title><style>{STYLE}</style></head><body><header><b>Lineage</b>{nav}</header><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

/// A page with the dashboard's links, and a sign-out button unless the dashboard is public.
fn page(st: &AppState, title: &str, body: &str) -> Html<String> {
    let mut nav = String::from(
        "<a href=\"/\">Fleet</a><a href=\"/incident\">Incident</a><a href=\"/incidents\">Drills</a><a href=\"/log\">Log</a>",
    );
    if !st.cfg.dashboard.public {
        nav.push_str("<form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>");
    }
    Html(document(title, &nav, body))
}

fn error_page(st: &AppState, e: ApiError) -> Response {
    let body = format!(
        "<p class=\"bad\">{}</p><p>{}</p>",
        esc(&e.message),
        esc(e.hint.as_deref().unwrap_or(""))
    );
    (e.status, page(st, "Error", &body)).into_response()
}

/// A digest as people read it: algorithm and the first 12 hex digits, the full one on hover,
/// linked to its Lineage page.
fn short(d: &str) -> String {
    let cut = d.find(':').map_or(0, |i| i + 1) + 12;
    let shown = if d.len() > cut { &d[..cut] } else { d };
    let code = format!("<code title=\"{}\">{}</code>", esc(d), esc(shown));
    match lineage_core::lineage_graph::Link::Digest(d.to_string()).href() {
        Some(href) => format!("<a href=\"{}\">{code}</a>", esc(&href)),
        None => code,
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.map_or_else(|| "<span class=\"muted\">—</span>".to_string(), esc)
}

fn signature(s: &SignatureStatus) -> String {
    match s {
        SignatureStatus::Verified { key } => {
            format!("<span class=\"ok\">signed ({})</span>", esc(key))
        }
        SignatureStatus::Untrusted { .. } => "<span class=\"bad\">untrusted</span>".into(),
        SignatureStatus::Unsigned => "<span class=\"bad\">unsigned</span>".into(),
        // Said once above the table, not in every cell (see `fleet_html`).
        SignatureStatus::NotChecked => String::new(),
    }
}

/// `text` (already escaped) as a link to `url`, when `url` is plain `http(s)`; otherwise the
/// text alone. URLs come from build records (a CI link is whatever the pipeline sent), so a
/// `javascript:` or `data:` URL never becomes a link.
fn link(url: &str, text: &str) -> String {
    if lineage_graph::web_url(url).is_some() {
        format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">{text}</a>",
            esc(url)
        )
    } else {
        text.to_string()
    }
}

/// An outcome, coloured and in words: healthy, degraded, failed, or none recorded.
fn outcome_html(outcome: Option<&lifecycle::OutcomeMark>) -> String {
    match outcome {
        None => "<span class=\"muted\">none recorded</span>".into(),
        Some(o) => {
            let class = match o.status.as_str() {
                "healthy" => "ok",
                "failed" => "bad",
                _ => "warn",
            };
            let detail = o
                .detail
                .as_deref()
                .map(|d| format!(" ({})", esc(d)))
                .unwrap_or_default();
            format!("<span class=\"{class}\">{}</span>{detail}", esc(&o.status))
        }
    }
}

/// A placement's observed state, coloured: seen running, gone, never seen, not watched.
fn observed(state: &ObservedState) -> String {
    let class = match state.status.as_str() {
        "observed" => "ok",
        "not_observed" => "bad",
        "never_observed" => "warn",
        _ => "muted",
    };
    format!("<span class=\"{class}\">{}</span>", esc(&state.phrase()))
}

/// Drift over the fleet, or `None` when no runtime source ever reported.
fn drift_report(st: &AppState, store: &dyn Store) -> Result<Option<DriftReport>, ApiError> {
    if store.observation_sources()?.is_empty() {
        return Ok(None);
    }
    let options = DriftOptions {
        allow: st.cfg.admission.allow.clone(),
        ..DriftOptions::default()
    };
    Ok(Some(drift::drift(
        store,
        &st.cfg.gate.config,
        &options,
        st.now(),
    )?))
}

/// The drift table, for the fleet or one service.
fn drift_html(report: &DriftReport, service: Option<&str>) -> String {
    let items: Vec<_> = report
        .items
        .iter()
        .filter(|i| service.is_none() || i.service.as_deref() == service)
        .collect();
    let mut html = String::from("<h2>Drift: recorded vs. running</h2>");
    let sources: Vec<String> = report
        .sources
        .iter()
        .map(|s| format!("<code>{}</code> {}", esc(&s.source), esc(&s.at.to_string())))
        .collect();
    let _ = write!(
        html,
        "<p class=\"muted\">Compared with {}{}</p>",
        sources.join(", "),
        if report.unwatched.is_empty() {
            String::new()
        } else {
            format!(" · not observed: {}", esc(&report.unwatched.join(", ")))
        }
    );
    if items.is_empty() {
        html.push_str("<p class=\"ok\">No drift.</p>");
        return html;
    }
    html.push_str("<table><thead><tr><th>Kind</th><th>Service</th><th>Environment</th><th>Digest</th><th>What</th><th>Fix</th></tr></thead><tbody>");
    for i in items.iter().take(200) {
        let svc = match &i.service {
            Some(n) => format!("<a href=\"/services/{n}\">{n}</a>", n = esc(n)),
            None => "<span class=\"muted\">no service</span>".into(),
        };
        let _ = write!(
            html,
            "<tr><td class=\"bad\">{}</td><td>{svc}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(&i.kind),
            esc(&i.env),
            short(&i.digest),
            esc(&i.message),
            esc(&i.fix),
        );
    }
    html.push_str("</tbody></table>");
    if items.len() > 200 {
        let _ = write!(
            html,
            "<p class=\"muted\">{} more; <code>lineage drift</code> lists them all.</p>",
            items.len() - 200
        );
    }
    html
}

fn envs_in_order(st: &AppState) -> Vec<EnvName> {
    let mut envs = st.cfg.gate.config.environments.clone();
    envs.sort_by_key(|e| st.cfg.gate.config.env_rank(e));
    envs
}

async fn fleet(State(st): State<Arc<AppState>>) -> Response {
    let s = st.clone();
    match blocking(move || s.read(|store| fleet_html(&s, store))).await {
        Ok(body) => page(&st, "Fleet", &body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn fleet_html(st: &AppState, store: &dyn Store) -> Result<String, ApiError> {
    let now = st.now();
    let envs = envs_in_order(st);
    let services = store.services()?;
    let mut running: BTreeMap<ServiceName, Vec<lineage_store::RunningImage>> = BTreeMap::new();
    for r in store.running(None, None)? {
        running.entry(r.deploy.service.clone()).or_default().push(r);
    }
    let truth = Truth::load(store, None, None, Some(now))?;
    // Whether any placement's provenance went unjudged (no trusted keys): said once.
    let mut unjudged = false;
    let mut html = String::new();
    let _ = write!(html, "<p class=\"muted\">{} services · now {}</p><table><thead><tr><th>Service</th><th>Owner</th><th>Backup</th>", services.len(), esc(&now.to_string()));
    for e in &envs {
        let _ = write!(html, "<th>{}</th>", esc(e.as_str()));
    }
    html.push_str(
        "<th>Needs attention</th><th>Base behind</th><th>Last deploy</th></tr></thead><tbody>",
    );
    // Risk first: each service's row is built with what needs attention, in words, and the
    // rows are ordered by it (production findings, then any), then by name.
    let mut table: Vec<((usize, usize), String, String)> = Vec::with_capacity(services.len());
    for svc in &services {
        let mut row = String::new();
        let rows = running.get(&svc.name).map(Vec::as_slice).unwrap_or(&[]);
        let _ = write!(
            row,
            "<tr><td><a href=\"/services/{n}\">{n}</a></td><td>{}</td><td>{}</td>",
            or_dash(svc.owner.as_ref().map(|o| o.to_string()).as_deref()),
            or_dash(svc.backup_owner.as_ref().map(|o| o.to_string()).as_deref()),
            n = esc(svc.name.as_str()),
        );
        let mut facts_kept = Vec::new();
        // (production, what) for every finding of this service.
        let mut attention: Vec<(bool, String)> = Vec::new();
        for e in &envs {
            match rows.iter().find(|r| r.deploy.env == *e) {
                Some(r) => {
                    let facts = st.index.facts(&st.readers, &r.deploy.digest)?;
                    let production = st.cfg.gate.config.is_production(e);
                    let judged = lifecycle::attention(&st.cfg.gate.config, &r.deploy, &facts);
                    unjudged |= facts.signature_for(Some(e)) == SignatureStatus::NotChecked;
                    attention.extend(
                        judged
                            .findings
                            .iter()
                            .map(|what| (production, format!("{e}: {what}"))),
                    );
                    let seen = truth
                        .as_ref()
                        .map(|t| format!("<br>{}", observed(&t.state(e, &r.deploy.digest))))
                        .unwrap_or_default();
                    // A retired digest that runs, or a deploy that went wrong, stands out.
                    let mut marks = String::new();
                    if facts.retired.is_some() {
                        marks.push_str(" <span class=\"bad\">RETIRED</span>");
                    }
                    if let Some(o) = &judged.outcome {
                        let class = match o.status {
                            lineage_model::OutcomeStatus::Failed => "bad",
                            _ => "warn",
                        };
                        let _ = write!(
                            marks,
                            "<br><span class=\"{class}\">{}</span>",
                            o.status.as_str()
                        );
                    }
                    let sig = signature(&facts.signature_for(Some(e)));
                    let _ = write!(
                        row,
                        "<td>{}{marks}{}{seen}</td>",
                        short(&r.deploy.digest.to_string()),
                        if sig.is_empty() {
                            sig
                        } else {
                            format!("<br>{sig}")
                        }
                    );
                    facts_kept.push(facts);
                }
                None => row.push_str("<td><span class=\"muted\">—</span></td>"),
            }
        }
        let freshness: Vec<&Freshness> = facts_kept
            .iter()
            .filter_map(|f| f.base_freshness.as_ref())
            .collect();
        let worst = worst_behind(&freshness, now);
        if let Some(d) = worst.map(|(d, _)| d).filter(|d| *d > 0) {
            attention.push((false, format!("base {d} days behind its tag")));
        }
        let findings = if attention.is_empty() {
            "<span class=\"muted\">nothing found</span>".to_string()
        } else {
            attention
                .iter()
                .map(|(prod, what)| {
                    let class = if *prod { "bad" } else { "warn" };
                    format!("<span class=\"{class}\">{}</span>", esc(what))
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let last = rows.iter().map(|r| &r.deploy).max_by_key(|d| d.at);
        let _ = write!(
            row,
            "<td>{findings}</td><td>{}</td><td>{}</td></tr>",
            base_cell(&freshness, worst, facts_kept.len()),
            match last {
                Some(d) => format!(
                    "{} to {} by {}",
                    esc(&d.at.to_string()),
                    esc(d.env.as_str()),
                    esc(&d.by.to_string())
                ),
                None => "<span class=\"muted\">never deployed</span>".into(),
            }
        );
        let production = attention.iter().filter(|(p, _)| *p).count();
        table.push(((production, attention.len()), svc.name.to_string(), row));
    }
    table.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, _, row) in table {
        html.push_str(&row);
    }
    html.push_str("</tbody></table>");
    if unjudged {
        html.push_str("<p class=\"muted\">Provenance signatures are not judged: <code>lineage.toml</code> trusts no key (<code>[[trust.keys]]</code>; see <code>lineage key</code>).</p>");
    }
    if services.is_empty() {
        html.push_str("<p>No services yet: <code>lineage service add NAME --owner EMAIL --image REPOSITORY</code></p>");
    }
    match drift_report(st, store)? {
        Some(report) => html.push_str(&drift_html(&report, None)),
        None => html.push_str("<h2>Drift: recorded vs. running</h2><p class=\"muted\">No runtime observations yet, so placements are as deploy jobs recorded them: <code>kubectl get pods -A -o json | lineage observe - --cluster NAME</code></p>"),
    }
    Ok(html)
}

/// The most days any of `freshness` is behind, and who saw the newer digest.
fn worst_behind<'a>(
    freshness: &[&'a Freshness],
    now: Timestamp,
) -> Option<(i64, &'a [&'static str])> {
    freshness
        .iter()
        .filter_map(|f| match f {
            Freshness::Behind { since, source, .. } => {
                Some((since.days_until(now).max(0), source.as_slice()))
            }
            _ => None,
        })
        .max_by_key(|(days, _)| *days)
}

/// The "Base behind" cell: the worst of a service's placements, in the words `report stale`
/// uses, and where the answer came from. Unknown is said as unknown, with what finds out.
fn base_cell(
    freshness: &[&Freshness],
    worst: Option<(i64, &[&'static str])>,
    placements: usize,
) -> String {
    if let Some((days, source)) = worst {
        return format!(
            "<span class=\"warn\">{days} days behind</span><br><span class=\"muted\">newer digest seen by {}</span>",
            esc(&source.join(" and "))
        );
    }
    if placements == 0 {
        return "<span class=\"muted\">—</span>".into();
    }
    let unknown = freshness.iter().find_map(|f| match f {
        Freshness::NotAssessed { reason } => Some(reason.as_str()),
        _ => None,
    });
    let unknown = unknown
        .or((freshness.len() < placements).then_some("no build record for a running digest"));
    if let Some(reason) = unknown {
        return format!(
            "<span class=\"warn\">not assessed</span><br><span class=\"muted\">{}</span>",
            esc(reason)
        );
    }
    let checked = freshness
        .iter()
        .filter_map(|f| match f {
            Freshness::Current { checked_at, .. } => Some(*checked_at),
            _ => None,
        })
        .min();
    match checked {
        Some(at) => format!("<span class=\"ok\">up to date</span><br><span class=\"muted\">registry checked {}</span>", esc(&at.to_string())),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

async fn service(State(st): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = st.clone();
    let title = format!("Service {name}");
    match blocking(move || s.read(|store| service_html(&s, store, &name))).await {
        Ok(body) => page(&st, &title, &body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn service_html(st: &AppState, store: &dyn Store, name: &str) -> Result<String, ApiError> {
    let name = ServiceName::parse(name).map_err(|e| e.in_field("service"))?;
    let report = services::show(store, &name)?;
    let svc = &report.service;
    let id = |v: &Option<lineage_model::Identity>| v.as_ref().map(|i| i.to_string());
    let mut html = String::new();
    let _ = write!(
        html,
        "<div class=\"card\">Owner <b>{}</b> · backup <b>{}</b> · emergency approver <b>{}</b><br>Source {} · images {}</div>",
        or_dash(id(&svc.owner).as_deref()),
        or_dash(id(&svc.backup_owner).as_deref()),
        or_dash(id(&svc.emergency_approver).as_deref()),
        or_dash(svc.source_repo.as_ref().map(|r| r.to_string()).as_deref()),
        esc(&svc.images.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
    );
    // The picture: `trace`'s answer for the service and its history, drawn.
    let history = lifecycle::history(store, &st.cfg.gate.config, &name, None)?;
    html.push_str("<h2>Lineage</h2>");
    match query::trace(store, &st.cfg.gate.config, name.as_str())? {
        Some(trace) => html.push_str(&picture_html(st, &trace, history.as_ref())),
        None => html
            .push_str("<p class=\"muted\">No build or deploy recorded yet: nothing to draw.</p>"),
    }
    let builds = store.builds_of_service(&name, 50)?;
    html.push_str("<h2>Builds</h2><table><thead><tr><th>Digest</th><th>Tags</th><th>Commit</th><th>Finished</th><th>Base</th><th>Built by</th><th>CI run</th></tr></thead><tbody>");
    for b in &builds {
        // The commit links to the repository, the run to the CI system: the next click during
        // an incident.
        let commit = match (&b.commit, &b.source_repo) {
            (Some(c), Some(repo)) => link(&format!("{repo}/commit/{c}"), &esc(c.as_str())),
            (Some(c), None) => esc(c.as_str()),
            (None, _) => or_dash(None),
        };
        let run = match b.ci.as_ref() {
            Some(ci) => {
                let label = esc(&format!(
                    "{} {}",
                    ci.system,
                    ci.run_id.as_deref().unwrap_or("")
                ));
                match &ci.url {
                    Some(url) => link(url, &label),
                    None => label,
                }
            }
            None => or_dash(None),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            short(&b.digest.to_string()),
            esc(&b.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")),
            commit,
            or_dash(b.finished_at.map(|t| t.to_string()).as_deref()),
            or_dash(b.final_base().map(|x| x.display()).as_deref()),
            or_dash(b.builder.as_ref().map(|x| x.to_string()).as_deref()),
            run,
        );
    }
    html.push_str("</tbody></table>");
    let truth = Truth::load(store, None, None, Some(st.now()))?;
    html.push_str("<h2>Runs now</h2><table><thead><tr><th>Environment</th><th>Digest</th><th>Since</th><th>Deployed by</th><th>Outcome</th><th>Observed</th></tr></thead><tbody>");
    let mut placements = store.running(None, Some(&name))?;
    placements.sort_by_key(|r| st.cfg.gate.config.env_rank(&r.deploy.env));
    let outcomes = lifecycle::outcomes(store, &name)?;
    for r in &placements {
        let retired = match lifecycle::retirement(store, &r.deploy.digest)? {
            Some(x) => format!(" <span class=\"bad\">RETIRED ({})</span>", esc(&x.reason)),
            None => String::new(),
        };
        let outcome =
            lifecycle::newest_outcome(&outcomes, &r.deploy.env, &r.deploy.digest, r.deploy.at)
                .map(lifecycle::OutcomeMark::of);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.deploy.env.as_str()),
            short(&r.deploy.digest.to_string()),
            retired,
            esc(&r.deploy.at.to_string()),
            esc(&r.deploy.by.to_string()),
            outcome_html(outcome.as_ref()),
            match &truth {
                Some(t) => observed(&t.state(&r.deploy.env, &r.deploy.digest)),
                None => "<span class=\"muted\">no observations</span>".into(),
            },
        );
    }
    if placements.is_empty() {
        html.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">not recorded as running anywhere</td></tr>",
        );
    }
    html.push_str("</tbody></table>");
    if let Some(report) = drift_report(st, store)? {
        html.push_str(&drift_html(&report, Some(name.as_str())));
    }
    // The history is `lineage history`'s answer (one home), with what needs attention in
    // words as well as colour.
    html.push_str("<h2>Deploy timeline</h2><table><thead><tr><th>When</th><th>Environment</th><th>Digest</th><th>State</th><th>Outcome</th><th>Deployed by</th><th>Approved by</th><th>Release</th></tr></thead><tbody>");
    for row in history.iter().flat_map(|h| &h.rows) {
        let state = match (row.state.as_str(), row.until) {
            ("running", _) => "<span class=\"ok\">running</span>".to_string(),
            (state, Some(until)) => format!("{} {}", esc(state), esc(&until.to_string())),
            (state, None) => esc(state),
        };
        let mut marks = String::new();
        if row.rollback {
            marks.push_str(" <span class=\"warn\">rollback</span>");
        }
        if let Some(r) = &row.retired {
            let _ = write!(
                marks,
                " <span class=\"bad\">RETIRED ({})</span>",
                esc(&r.reason)
            );
        }
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(&row.at.to_string()),
            esc(&row.env),
            short(&row.digest),
            marks,
            state,
            outcome_html(row.outcome.as_ref()),
            esc(&row.by),
            or_dash(row.approved_by.as_deref()),
            if row.config.is_empty() { "<span class=\"muted\">—</span>".to_string() } else { esc(&row.release) },
        );
    }
    html.push_str("</tbody></table><h2>Ownership history</h2><table><thead><tr><th>When</th><th>By</th><th>Field</th><th>Old</th><th>New</th></tr></thead><tbody>");
    for h in &report.history {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&h.at.to_string()),
            esc(&h.by.to_string()),
            esc(&h.field),
            or_dash(h.old.as_deref()),
            or_dash(h.new.as_deref()),
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

/// The lineage picture of a trace, with the service's history when there is one.
fn picture_html(
    st: &AppState,
    trace: &query::TraceReport,
    history: Option<&lifecycle::HistoryReport>,
) -> String {
    let graph = lineage_graph::of(&st.cfg.gate.config, trace, history);
    format!(
        "<div class=\"picture\">{}</div><p class=\"muted\">The same picture for docs and chat: <code>lineage trace {} --format dot</code> or <code>--format mermaid</code>.</p>",
        picture::lineage_svg(&graph),
        esc(&trace.digest),
    )
}

async fn digest_page(State(st): State<Arc<AppState>>, Path(digest): Path<String>) -> Response {
    let s = st.clone();
    let title = format!(
        "Digest {}",
        lineage_graph::short_digest(&digest.chars().take(80).collect::<String>())
    );
    match blocking(move || s.read(|store| digest_html(&s, store, &digest))).await {
        Ok(body) => page(&st, &title, &body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

/// A digest's page: `trace`'s answer for it, drawn, with where it runs; for a base digest,
/// the services built on it.
fn digest_html(st: &AppState, store: &dyn Store, digest: &str) -> Result<String, ApiError> {
    let parsed = lineage_model::Digest::parse(digest).map_err(|e| e.in_field("digest"))?;
    let digest = parsed.to_string();
    let trace = match query::trace(store, &st.cfg.gate.config, &digest) {
        Ok(t) => t,
        // A base is not traced; its page says who is built on it.
        Err(e) => match base_html(st, store, &digest)? {
            Some(html) => return Ok(html),
            None => return Err(e.into()),
        },
    };
    let Some(trace) = trace else {
        return Ok(base_html(st, store, &digest)?.unwrap_or_else(|| {
            format!("<p>Nothing recorded for <code>{}</code>.</p>", esc(&digest))
        }));
    };
    let service = ServiceName::parse(&trace.service).map_err(|e| e.in_field("service"))?;
    let history = lifecycle::history(store, &st.cfg.gate.config, &service, None)?;
    let mut html = String::new();
    let build = trace.build.as_ref();
    let _ = write!(
        html,
        "<div class=\"card\">Service <a href=\"/services/{s}\">{s}</a> · owner <b>{}</b> · backup <b>{}</b><br>Image <code>{}@{}</code><br>Commit <span class=\"mono\">{}</span> · base {}{}</div>",
        or_dash(trace.owners.owner.as_deref()),
        or_dash(trace.owners.backup_owner.as_deref()),
        esc(&trace.image),
        esc(&trace.digest),
        or_dash(build.and_then(|b| b.commit.as_ref()).map(|c| c.to_string()).as_deref()),
        or_dash(build.and_then(|b| b.final_base()).map(|b| b.display()).as_deref()),
        if build.is_none() {
            " · <span class=\"bad\">NO BUILD RECORD: provenance unknown</span>"
        } else {
            ""
        },
        s = esc(&trace.service),
    );
    html.push_str(&picture_html(st, &trace, history.as_ref()));
    html.push_str("<h2>Runs now</h2><table><thead><tr><th>Environment</th><th>Since</th><th>Deployed by</th><th>Approved by</th></tr></thead><tbody>");
    for p in &trace.running {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.env),
            esc(&p.since.to_string()),
            esc(&p.deployed_by),
            or_dash(p.approved_by.as_deref()),
        );
    }
    if trace.running.is_empty() {
        html.push_str(
            "<tr><td colspan=\"4\" class=\"muted\">not recorded as running anywhere</td></tr>",
        );
    }
    html.push_str("</tbody></table>");
    Ok(html)
}

#[derive(Deserialize)]
struct IncidentQuery {
    q: Option<String>,
}

async fn incident(State(st): State<Arc<AppState>>, Query(q): Query<IncidentQuery>) -> Response {
    let query = q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mut html = format!(
        "<form method=\"get\" action=\"/incident\"><p>A CVE id (<code>CVE-2024-5535</code>), a package (<code>openssl@&lt;3.0.15</code>), a purl, a base digest, a base name (<code>python:3.12-slim</code>) or an image.</p><input type=\"text\" name=\"q\" value=\"{}\" autofocus> <button type=\"submit\">Who is affected?</button></form>",
        esc(query.as_deref().unwrap_or(""))
    );
    if let Some(q) = query {
        let s = st.clone();
        match blocking(move || s.read(|store| incident_html(&s, store, &q))).await {
            Ok(body) => html.push_str(&body),
            Err(e) => {
                let _ = write!(
                    html,
                    "<p class=\"bad\">{}</p><p>{}</p>",
                    esc(&e.message),
                    esc(e.hint.as_deref().unwrap_or(""))
                );
            }
        }
    }
    page(&st, "Incident", &html).into_response()
}

fn incident_html(st: &AppState, store: &dyn Store, q: &str) -> Result<String, ApiError> {
    // A CVE id or a purl cannot be a base or an image; a bare name may be either, and is
    // tried as a base or image first, then as a package.
    let package = vulns::classify(q);
    if let Some(pq @ (vulns::PackageQuery::Vuln(_) | vulns::PackageQuery::Purl(_))) = &package {
        return package_html(st, store, pq);
    }
    let found = base_html(st, store, q)?;
    if let (None, Some(pq)) = (&found, &package) {
        let report = vulns::affected(store, &st.cfg.gate.config, pq, st.now())?;
        if !report.services.is_empty() {
            return Ok(package_report_html(&report));
        }
    }
    Ok(found.unwrap_or_else(|| {
        format!("<p>Nothing recorded for <code>{}</code>: no base, image, package or vulnerability of that name.</p>", esc(q))
    }))
}

fn package_html(
    st: &AppState,
    store: &dyn Store,
    query: &vulns::PackageQuery,
) -> Result<String, ApiError> {
    let report = vulns::affected(store, &st.cfg.gate.config, query, st.now())?;
    Ok(package_report_html(&report))
}

/// The same report `affected --package/--purl/--cve` prints, as a table.
fn package_report_html(r: &vulns::AffectedPackagesReport) -> String {
    let q = &r.query;
    let asked = match (&q.package, &q.version, &q.purl, &q.cve) {
        (Some(p), Some(v), _, _) => format!("{p}@{v}"),
        (Some(p), None, _, _) => p.clone(),
        (_, _, Some(p), _) => p.clone(),
        (_, _, _, Some(c)) => c.clone(),
        _ => String::new(),
    };
    let mut html = String::new();
    if r.services.is_empty() {
        let _ = write!(
            html,
            "<p>No running image contains <code>{}</code>, as far as imported SBOMs and scans say.</p>",
            esc(&asked)
        );
    } else {
        let _ = write!(
            html,
            "<h2>{} services run <code>{}</code> now</h2>",
            r.services.len(),
            esc(&asked)
        );
        html.push_str("<table><thead><tr><th>Service</th><th>Call</th><th>Runs now</th><th>Package</th><th>Base or app</th><th>Fix</th></tr></thead><tbody>");
        for s in &r.services {
            for p in &s.running {
                let pl = &p.placement;
                let mut pkgs = String::new();
                let mut origin = String::new();
                for m in &p.packages {
                    let findings: Vec<String> = m
                        .findings
                        .iter()
                        .map(|f| {
                            format!(
                                "{} {} · {}",
                                esc(&f.id),
                                esc(&f.severity),
                                f.fixed
                                    .as_deref()
                                    .map_or("no fix known".into(), |v| format!(
                                        "fixed in {}",
                                        esc(v)
                                    ))
                            )
                        })
                        .collect();
                    let _ = write!(
                        pkgs,
                        "<div><b>{}</b> {} <span class=\"muted\">{}</span>{}</div>",
                        esc(&m.name),
                        or_dash(m.version.as_deref()),
                        esc(&m.ecosystem),
                        if findings.is_empty() {
                            String::new()
                        } else {
                            format!("<br>{}", findings.join("<br>"))
                        }
                    );
                    let class = match m.origin.as_str() {
                        "base" => "warn",
                        "app" => "bad",
                        _ => "muted",
                    };
                    let _ = write!(
                        origin,
                        "<div><span class=\"{class}\">{}</span> <span class=\"muted\">{}</span></div>",
                        esc(&m.origin),
                        esc(&m.origin_evidence)
                    );
                }
                let fix = match &p.rebuild {
                    Some(cmd) => format!("rebuild on a newer base: <code>{}</code>", esc(cmd)),
                    None if p.packages.iter().any(|m| m.origin == "app") => {
                        format!(
                            "{} upgrades it in the service",
                            or_dash(s.owners.owner.as_deref())
                        )
                    }
                    None => "<span class=\"muted\">base or app unknown</span>".to_string(),
                };
                let _ = write!(
                    html,
                    "<tr><td><a href=\"/services/{n}\">{n}</a></td><td>owner {}<br>backup {}<br>emergency {}</td><td><b>{}</b> {} since {}<br>commit <span class=\"mono\">{}</span></td><td>{pkgs}</td><td>{origin}</td><td>{fix}</td></tr>",
                    or_dash(s.owners.owner.as_deref()),
                    or_dash(s.owners.backup_owner.as_deref()),
                    or_dash(s.owners.emergency_approver.as_deref()),
                    esc(&pl.env),
                    short(&pl.digest),
                    esc(&pl.since.to_string()),
                    or_dash(pl.commit.as_deref()),
                    n = esc(&s.service),
                );
            }
        }
        html.push_str("</tbody></table>");
    }
    if !r.not_scanned.is_empty() {
        let _ = write!(
            html,
            "<h2 class=\"warn\">Not scanned recently (max age {}): unknown, not clean</h2><table><thead><tr><th>Service</th><th>Environment</th><th>Digest</th><th>Owner</th><th>Why</th></tr></thead><tbody>",
            esc(&r.max_age)
        );
        for n in &r.not_scanned {
            let _ = write!(
                html,
                "<tr><td><a href=\"/services/{s}\">{s}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&n.env),
                short(&n.digest),
                or_dash(n.owner.as_deref()),
                esc(&n.reason),
                s = esc(&n.service),
            );
        }
        html.push_str("</tbody></table>");
    }
    html
}

/// The base (or image's base) answer; `None` when `q` names no recorded base or image.
fn base_html(st: &AppState, store: &dyn Store, q: &str) -> Result<Option<String>, ApiError> {
    let mut html = String::new();
    let mut filter = query::resolve_base_filter(store, q).ok().flatten();
    let mut report = match &filter {
        Some(f) => Some(query::affected(store, &st.cfg.gate.config, f)?),
        None => None,
    };
    if report.as_ref().is_none_or(|r| r.services.is_empty()) {
        // Not a base anyone built on: maybe an application image; then ask about its base.
        if let Some(t) = query::trace(store, &st.cfg.gate.config, q)? {
            let base = t
                .build
                .as_ref()
                .and_then(|b| b.final_base())
                .and_then(|b| b.digest.clone());
            let _ = write!(
                html,
                "<div class=\"card\"><code>{}</code> is service <a href=\"/services/{s}\">{s}</a>, digest {}; its base is {}.</div>",
                esc(q),
                short(&t.digest),
                or_dash(t.build.as_ref().and_then(|b| b.final_base()).map(|b| b.display()).as_deref()),
                s = esc(&t.service),
            );
            if let Some(d) = base {
                let f = lineage_store::BaseFilter::Digest(d);
                report = Some(query::affected(store, &st.cfg.gate.config, &f)?);
                filter = Some(f);
            }
        }
    }
    let _ = filter;
    let Some(report) = report else {
        return Ok(None);
    };
    if report.services.is_empty() {
        if html.is_empty() {
            return Ok(None);
        }
        let _ = write!(
            html,
            "<p>No recorded build uses base <code>{}</code>.</p>",
            esc(&report.base)
        );
        return Ok(Some(html));
    }
    let _ = write!(
        html,
        "<h2>{} services built on <code>{}</code></h2>",
        report.services.len(),
        esc(&report.base)
    );
    html.push_str("<table><thead><tr><th>Service</th><th>Call</th><th>Runs now</th><th>Latest build</th><th>Bases</th></tr></thead><tbody>");
    for s in &report.services {
        let mut runs = String::new();
        for p in &s.running {
            let _ = write!(
                runs,
                "<div><b>{}</b> {} since {} · deployed by {} · approved by {} · commit <span class=\"mono\">{}</span></div>",
                esc(&p.env),
                short(&p.digest),
                esc(&p.since.to_string()),
                esc(&p.deployed_by),
                or_dash(p.approved_by.as_deref()),
                or_dash(p.commit.as_deref()),
            );
        }
        if runs.is_empty() {
            runs = "<span class=\"muted\">not running anywhere</span>".into();
        }
        let _ = write!(
            html,
            "<tr><td><a href=\"/services/{n}\">{n}</a></td><td>owner {}<br>backup {}<br>emergency {}</td><td>{runs}</td><td>{}<br>commit <span class=\"mono\">{}</span><br>{} builds on this base</td><td class=\"mono\">{}</td></tr>",
            or_dash(s.owners.owner.as_deref()),
            or_dash(s.owners.backup_owner.as_deref()),
            or_dash(s.owners.emergency_approver.as_deref()),
            short(&s.latest_digest),
            or_dash(s.latest_commit.as_deref()),
            s.builds,
            esc(&s.bases.join("\n")),
            n = esc(&s.service),
        );
    }
    html.push_str("</tbody></table>");
    Ok(Some(html))
}

async fn incidents(State(st): State<Arc<AppState>>) -> Response {
    let s = st.clone();
    let body =
        blocking(move || s.read(|store| Ok(incident::list(store, &s.cfg.gate.config, s.now())?)))
            .await;
    match body {
        Ok(list) => {
            let mut html = String::from("<p class=\"muted\">Incidents and drills (<code>lineage incident open</code>), newest first: how long each took from alert to the last fixed deploy.</p><table><thead><tr><th>#</th><th>Status</th><th>Kind</th><th>Opened</th><th>Elapsed</th><th>Fixed</th><th>Title</th></tr></thead><tbody>");
            for i in &list.incidents {
                let status = if i.status == "closed" {
                    "<span class=\"ok\">closed</span>".to_string()
                } else {
                    "<span class=\"bad\">open</span>".to_string()
                };
                let _ = write!(
                    html,
                    "<tr><td><a href=\"/incidents/{id}\">{id}</a></td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{} environments</td><td>{}</td></tr>",
                    if i.drill { "drill" } else { "incident" },
                    esc(&i.opened_at.to_string()),
                    incident::duration(i.elapsed_secs),
                    i.counts.envs_fixed,
                    i.counts.envs,
                    esc(&i.title),
                    id = i.id,
                );
            }
            if list.incidents.is_empty() {
                html.push_str("<tr><td colspan=\"7\" class=\"muted\">none yet: <code>lineage incident open --title TEXT --base IMAGE --drill</code> runs a drill</td></tr>");
            }
            html.push_str("</tbody></table>");
            page(&st, "Incidents and drills", &html).into_response()
        }
        Err(e) => error_page(&st, e),
    }
}

async fn incident_page(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error_page(
            &st,
            ApiError::from(lineage_core::Error::Invalid(
                format!(
                    "incident `{}` is not a number",
                    id.chars().take(40).collect::<String>()
                ),
                "incidents are numbered 1, 2, …: see /incidents".into(),
            )),
        );
    };
    let s = st.clone();
    let report = blocking(move || {
        s.read(|store| Ok(incident::show(store, &s.cfg.gate.config, id, s.now())?))
    })
    .await;
    match report {
        Ok(Some(r)) => page(&st, &format!("Incident {}: {}", r.id, r.title), &incident_report_html(&r)).into_response(),
        Ok(None) => page(&st, "Incident", &format!("<p class=\"bad\">No incident {id}.</p><p><a href=\"/incidents\">All incidents</a></p>")).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn incident_report_html(r: &incident::IncidentReport) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<div class=\"card\">{} · {} · opened {} by {} · {} · {}/{} environments fixed{}</div>",
        if r.status == "closed" {
            "<span class=\"ok\">closed</span>"
        } else {
            "<span class=\"bad\">open</span>"
        },
        if r.drill { "drill" } else { "incident" },
        esc(&r.opened_at.to_string()),
        esc(&r.opened_by),
        incident::duration(r.elapsed_secs),
        r.counts.envs_fixed,
        r.counts.envs,
        r.closed_at
            .map(|t| format!(" · closed {}", esc(&t.to_string())))
            .unwrap_or_default(),
    );
    html.push_str("<h2>Services</h2><table><thead><tr><th>Service</th><th>Status</th><th>Environments</th><th>Call</th></tr></thead><tbody>");
    for s in &r.services {
        let envs: Vec<String> = s
            .envs
            .iter()
            .map(|e| {
                let class = if e.status == "fixed" { "ok" } else { "bad" };
                format!(
                    "{} <span class=\"{class}\">{}</span>{}",
                    esc(&e.env),
                    esc(&e.status),
                    e.elapsed_secs
                        .map(|x| format!(" after {}", incident::duration(x)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let call = if s.status == "fixed" {
            "<span class=\"muted\">—</span>".to_string()
        } else {
            format!(
                "{} · backup {}",
                or_dash(s.owners.owner.as_deref()),
                or_dash(s.owners.backup_owner.as_deref())
            )
        };
        let _ = write!(
            html,
            "<tr><td><a href=\"/services/{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{call}</td></tr>",
            esc(&s.status),
            envs.join("<br>"),
            n = esc(&s.service),
        );
    }
    html.push_str("</tbody></table><h2>Timeline</h2>");
    if !r.timeline.is_empty() {
        let _ = write!(
            html,
            "<div class=\"picture\">{}</div>",
            picture::timeline_svg(r)
        );
    }
    html.push_str("<table><thead><tr><th>When</th><th>After</th><th>Event</th><th>Service</th><th>Environment</th><th>Digest</th></tr></thead><tbody>");
    for t in &r.timeline {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.at.to_string()),
            incident::duration(t.elapsed_secs),
            esc(&t.event.replace('_', " ")),
            or_dash(t.service.as_deref()),
            or_dash(t.env.as_deref()),
            t.digest
                .as_deref()
                .map_or_else(|| "<span class=\"muted\">—</span>".to_string(), short),
        );
    }
    html.push_str("</tbody></table>");
    html
}

async fn log(State(st): State<Arc<AppState>>) -> Response {
    let s = st.clone();
    match blocking(move || s.read(|store| log_html(&s, store))).await {
        Ok(body) => page(&st, "Log", &body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn log_html(st: &AppState, store: &dyn Store) -> Result<String, ApiError> {
    let head = store.log_head()?;
    let mut html = format!("<p>The ledger holds <b>{}</b> entries.</p>", head.size);
    let Some(latest) = store.latest_checkpoint()? else {
        html.push_str("<p class=\"warn\">No signed checkpoint yet: record something first.</p>");
        return Ok(html);
    };
    let status = match &st.cfg.log {
        None => "<span class=\"muted\">not checked (the server has no log key)</span>".to_string(),
        Some((key, _)) => match verify_checkpoint(&latest.text, &key.verifier()).verified() {
            Some(cp) => {
                let root = store.log_root(cp.size)?;
                if root == cp.root && cp.size == latest.size {
                    "<span class=\"ok\">verified: the signature is the log key's and the root matches the ledger</span>".to_string()
                } else {
                    "<span class=\"bad\">MISMATCH: the signed root differs from the ledger's; run <code>lineage log verify</code></span>".to_string()
                }
            }
            None => "<span class=\"bad\">the signature does not verify with the log key; run <code>lineage log verify</code></span>".to_string(),
        },
    };
    let cp = crate::api::checkpoint_json(&latest);
    let _ = write!(
        html,
        "<div class=\"card\">Latest checkpoint: size <b>{}</b> · origin <code>{}</code> · created {}<br>Root <code>{}</code><br>Status: {status}{}</div><pre>{}</pre>",
        latest.size,
        esc(cp["origin"].as_str().unwrap_or("")),
        esc(&latest.created.to_string()),
        esc(cp["root"].as_str().unwrap_or("")),
        if latest.size < head.size {
            format!("<br><span class=\"warn\">{} newer entries are not yet covered by a checkpoint</span>", head.size - latest.size)
        } else {
            String::new()
        },
        esc(&latest.text),
    );
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_become_links() {
        assert_eq!(
            link("https://ci.acme.dev/run/7", "run 7"),
            "<a href=\"https://ci.acme.dev/run/7\" rel=\"noopener noreferrer\">run 7</a>"
        );
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<b>x</b>",
            "https://x\" onmouseover=\"alert(1)",
            "//evil.example/x",
        ] {
            assert_eq!(link(bad, "run"), "run", "{bad}");
        }
    }
}
