//! The dashboard: server-rendered HTML pages for people, read during an incident on a laptop
//! or a phone.
//!
//! Every page is one HTML document with its stylesheet inline: no script, no font, no CDN, so
//! it works on an isolated network and prints. Pages are `maud` templates, checked when the
//! crate compiles: every value interpolated into a page is escaped by the template, so no
//! ledger string can reach a page as markup; the one way around it (`PreEscaped`) is used
//! only in `document` for the stylesheet constant. Pages render the reports core computes
//! (the fleet's risks are `lineage_core::fleet`); they decide nothing.
//!
//! Every table turns into cards on a narrow screen (each cell labelled by its column), so the
//! key facts need no horizontal scrolling at 375 px.
//!
//! Pages need a `read` token unless the server runs with `--public-dashboard`, and every
//! answer carries a script-free Content-Security-Policy ([`access`]).

mod access;
mod picture;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lineage_core::drift::{DriftOptions, DriftReport};
use lineage_core::fleet::{self, FleetFilter, FleetView, Scans};
use lineage_core::freshness::Freshness;
use lineage_core::lifecycle::{Finding, Risk};
use lineage_core::observe::{ObservedState, Truth};
use lineage_core::{incident, lifecycle, lineage_graph, query, services, vulns};
use lineage_model::{is_unsafe_char, EnvName, ServiceName};
use lineage_policy::SignatureStatus;
use lineage_store::lineage_log::checkpoint::verify_checkpoint;
use lineage_store::Store;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::{blocking, ApiError, AppState};

pub use access::{safe_next, DashboardConfig, COOKIE, CSP, LOGIN, LOGIN_FORM_LIMIT};

/// The pages, guarded by a `read` token (or open with `--public-dashboard`), and the login
/// and logout forms; all of them answer with the dashboard's security headers.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(fleet_page))
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

/// The one stylesheet (its hash is in the CSP). Colours meet WCAG AA contrast on their
/// backgrounds; every mark has a word too, never colour alone.
const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b2a41;color:#fff;padding:10px 24px;display:flex;flex-wrap:wrap;gap:8px 24px;align-items:baseline}
header b{font-size:18px}header a{color:#dbe7ff;text-decoration:none}header a:hover{text-decoration:underline}
header nav{display:flex;flex-wrap:wrap;gap:8px 20px}
a{color:#0b57d0}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
main{padding:16px 24px;max-width:1400px}
h1{font-size:22px;margin:8px 0 12px;overflow-wrap:anywhere}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6ea;vertical-align:top}
.wrap{overflow-wrap:anywhere}code.digest{white-space:nowrap}
th{background:#eef1f5;font-weight:600;font-size:13px;text-transform:uppercase;letter-spacing:.03em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
.ok{color:#116329}.bad{color:#b42318;font-weight:600}.warn{color:#7a4f00}.muted{color:#5c6370}
.card{background:#fff;padding:12px 16px;box-shadow:0 1px 2px #0002;margin-bottom:14px;overflow-wrap:anywhere}
form input[type=text],form input[type=password]{font-size:16px;padding:6px 8px;width:min(640px,90%)}form button{font-size:16px;padding:6px 14px}
header form{margin:0 0 0 auto}header form button{font-size:13px;padding:2px 10px}
td.mono{word-break:break-all}
pre{background:#fff;padding:10px;box-shadow:0 1px 2px #0002;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
.picture{overflow-x:auto;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:14px}.picture svg{display:block}
.copy{user-select:all;-webkit-user-select:all;cursor:copy;background:#eef1f5;padding:1px 4px}
.risks{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px;padding:0;list-style:none}
.risks a,.risks span{display:inline-block;padding:4px 10px;background:#fff;box-shadow:0 1px 2px #0002;text-decoration:none}
.risks a.bad{border-left:4px solid #b42318}.risks a.warn{border-left:4px solid #9a6700}.risks .chosen{outline:2px solid #1b2a41}
.filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:end;margin:0 0 14px}
.filters label{display:flex;flex-direction:column;font-size:13px;color:#5c6370}
.filters input[type=text],.filters select{font-size:15px;padding:4px 6px;width:auto;min-width:9em}
.filters button{font-size:15px;padding:4px 12px}
tr.risk-production td:first-child{box-shadow:inset 4px 0 #b42318}tr.risk-other td:first-child{box-shadow:inset 4px 0 #9a6700}
.mark{display:inline-block;font-size:12px;font-weight:700;padding:0 5px;border:1px solid currentColor;border-radius:3px;margin:1px 0}
@media (max-width:720px){
header{padding:10px 12px}main{padding:12px}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:auto}
table.cards thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
table.cards{background:none;box-shadow:none}
table.cards tr{background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:12px;padding:6px 0}
table.cards td{border:0;padding:3px 12px;overflow-wrap:anywhere}
table.cards td[data-label]::before{content:attr(data-label);display:block;font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.03em;color:#5c6370}
table.cards td.empty{display:none}
}
";

/// One HTML document: the stylesheet inline (its hash is in the CSP), `nav` in the header bar.
/// The template has escaped every value; control and bidi characters from the ledger are then
/// written as visible escapes (`\u{1b}`), so no page carries one (line breaks and tabs stay).
fn document(title: &str, nav: Markup, body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Lineage" }
                // The only markup not escaped by the template: a constant of this file.
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { b { "Lineage" } (nav) }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_string();
    if !page
        .chars()
        .any(|c| is_unsafe_char(c) && !matches!(c, '\n' | '\t'))
    {
        return page;
    }
    page.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if is_unsafe_char(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A page with the dashboard's links, and a sign-out button unless the dashboard is public.
fn page(st: &AppState, title: &str, body: Markup) -> Html<String> {
    let nav = html! {
        nav aria-label="Dashboard" {
            a href="/" { "Fleet" }
            a href="/incident" { "Incident" }
            a href="/incidents" { "Drills" }
            a href="/log" { "Log" }
        }
        @if !st.cfg.dashboard.public {
            form method="post" action="/logout" { button type="submit" { "Sign out" } }
        }
    };
    Html(document(title, nav, body))
}

fn error_markup(e: &ApiError) -> Markup {
    html! {
        p.bad { (e.message) }
        @if let Some(hint) = &e.hint { p { (hint) } }
    }
}

fn error_page(st: &AppState, e: ApiError) -> Response {
    (e.status, page(st, "Error", error_markup(&e))).into_response()
}

/// A digest as people read it: algorithm and the first 12 hex digits, the full one on hover,
/// linked to its Lineage page.
fn short(d: &str) -> Markup {
    let shown = lineage_graph::short_digest(d);
    let href = lineage_graph::Link::Digest(d.to_string()).href();
    html! {
        @if let Some(href) = href {
            a href=(href) { code.digest title=(d) { (shown) } }
        } @else {
            code.digest title=(d) { (shown) }
        }
    }
}

/// A value selected whole by one click (`user-select: all`), for copying; no script needed.
fn copyable(text: &str) -> Markup {
    html! { code.copy title="one click selects it all" { (text) } }
}

fn or_dash(v: Option<&str>) -> Markup {
    html! {
        @match v {
            Some(v) => (v),
            None => span.muted { "—" },
        }
    }
}

fn signature(s: &SignatureStatus) -> Markup {
    html! {
        @match s {
            SignatureStatus::Verified { key } => span.ok { "signed (" (key) ")" },
            SignatureStatus::Untrusted { .. } => span.bad data-risk="untrusted" { "untrusted" },
            SignatureStatus::Unsigned => span.bad data-risk="unsigned" { "unsigned" },
            // Said once above the table, not in every cell (see `fleet_markup`).
            SignatureStatus::NotChecked => {},
        }
    }
}

/// `text` as a link to `url` when `url` is plain `http(s)`; otherwise the text alone. URLs
/// come from build records (a CI link is whatever the pipeline sent), so a `javascript:` or
/// `data:` URL never becomes a link.
fn link(url: &str, text: Markup) -> Markup {
    html! {
        @if let Some(url) = lineage_graph::web_url(url) {
            a href=(url) rel="noopener noreferrer" { (text) }
        } @else {
            (text)
        }
    }
}

/// A commit, linked to its page in the repository when the repository is known.
fn commit_link(commit: Option<&str>, repo: Option<&str>) -> Markup {
    match (commit, repo) {
        (Some(c), Some(repo)) => link(
            &lineage_graph::commit_url(repo, c),
            html! { span.mono { (c) } },
        ),
        (Some(c), None) => html! { span.mono { (c) } },
        (None, _) => or_dash(None),
    }
}

/// A finding, in words and coloured: red in production, amber elsewhere.
fn finding(f: &Finding) -> Markup {
    let class = if f.production { "bad" } else { "warn" };
    html! { span class=(class) data-risk=(f.risk.as_str()) { (f.text) } }
}

/// An outcome, coloured and in words: healthy, degraded, failed, or none recorded.
fn outcome_html(outcome: Option<&lifecycle::OutcomeMark>) -> Markup {
    html! {
        @match outcome {
            None => span.muted { "none recorded" },
            Some(o) => {
                @let class = match o.status.as_str() {
                    "healthy" => "ok",
                    "failed" => "bad",
                    _ => "warn",
                };
                span class=(class) { (o.status) }
                @if let Some(d) = &o.detail { " (" (d) ")" }
            }
        }
    }
}

/// A placement's observed state, coloured: seen running, gone, never seen, not watched.
fn observed(state: &ObservedState) -> Markup {
    let class = match state.status.as_str() {
        "observed" => "ok",
        "not_observed" => "bad",
        "never_observed" => "warn",
        _ => "muted",
    };
    html! { span class=(class) { (state.phrase()) } }
}

/// A table's header row; the same labels mark each cell on a narrow screen.
fn head(columns: &[&str]) -> Markup {
    html! { thead { tr { @for c in columns { th scope="col" { (c) } } } } }
}

fn drift_options(st: &AppState) -> DriftOptions {
    DriftOptions {
        allow: st.cfg.admission.allow.clone(),
        ..DriftOptions::default()
    }
}

/// The drift table, for the fleet or one service.
fn drift_markup(report: &DriftReport, service: Option<&str>) -> Markup {
    let items: Vec<_> = report
        .items
        .iter()
        .filter(|i| service.is_none() || i.service.as_deref() == service)
        .collect();
    const SHOWN: usize = 200;
    let columns = ["Kind", "Service", "Environment", "Digest", "What", "Fix"];
    html! {
        h2 { "Drift: recorded vs. running" }
        p.muted {
            "Compared with "
            @for (i, s) in report.sources.iter().enumerate() {
                @if i > 0 { ", " }
                code { (s.source) } " " (s.at)
            }
            @if !report.unwatched.is_empty() { " · not observed: " (report.unwatched.join(", ")) }
        }
        @if items.is_empty() {
            p.ok { "No drift." }
        } @else {
            table.cards {
                (head(&columns))
                tbody {
                    @for i in items.iter().take(SHOWN) {
                        tr {
                            td.bad data-label=(columns[0]) data-risk="drift" { (i.kind) }
                            td data-label=(columns[1]) {
                                @match &i.service {
                                    Some(n) => a href={ "/services/" (n) } { (n) },
                                    None => span.muted { "no service" },
                                }
                            }
                            td data-label=(columns[2]) { (i.env) }
                            td data-label=(columns[3]) { (short(&i.digest)) }
                            td data-label=(columns[4]) { (i.message) }
                            td.mono.wrap data-label=(columns[5]) { (i.fix) }
                        }
                    }
                }
            }
            @if items.len() > SHOWN {
                p.muted { (items.len() - SHOWN) " more; " code { "lineage drift" } " lists them all." }
            }
        }
    }
}

/// `?risk=…&env=…&owner=…&service=…` on the fleet page.
#[derive(Deserialize, Default)]
struct FleetQuery {
    risk: Option<String>,
    env: Option<String>,
    owner: Option<String>,
    service: Option<String>,
}

impl FleetQuery {
    /// The checked filter; a bad value is an error that names the field and the right form.
    fn filter(self, st: &AppState) -> Result<FleetFilter, ApiError> {
        let some = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let risk = match some(self.risk) {
            None => None,
            Some(r) => Some(Risk::parse(&r).ok_or_else(|| {
                ApiError::from(lineage_core::Error::Invalid(
                    format!(
                        "risk: `{}` is not a kind of risk",
                        r.chars().take(40).collect::<String>()
                    ),
                    format!(
                        "use one of {}",
                        Risk::ALL
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            })?),
        };
        let env = match some(self.env) {
            None => None,
            Some(e) => Some(st.cfg.gate.config.environment(&e)?),
        };
        let bounded = |v: Option<String>| some(v).map(|s| s.chars().take(100).collect());
        Ok(FleetFilter {
            risk,
            env,
            owner: bounded(self.owner),
            service: bounded(self.service),
        })
    }
}

async fn fleet_page(
    State(st): State<Arc<AppState>>,
    q: Result<Query<FleetQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = q
        .map_err(|e| {
            ApiError::from(lineage_core::Error::Invalid(
                format!("the filter is not a query string: {}", e.body_text()),
                "filter with ?risk=KIND&env=ENV&owner=TEXT&service=TEXT".into(),
            ))
        })
        .and_then(|Query(q)| q.filter(&st));
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return error_page(&st, e),
    };
    let s = st.clone();
    let view = blocking(move || {
        s.read(|store| {
            let mut facts = |d: &lineage_model::Digest| {
                s.index
                    .facts(&s.readers, d)
                    .map_err(lineage_core::Error::from)
            };
            Ok(fleet::fleet(
                store,
                &s.cfg.gate.config,
                &drift_options(&s),
                &filter,
                &mut facts,
                s.now(),
            )?)
        })
    })
    .await;
    match view {
        Ok(view) => page(&st, "Fleet", fleet_markup(&view)).into_response(),
        Err(e) => error_page(&st, e),
    }
}

/// The current filter's query string with `risk` replaced (`None`: removed).
fn with_risk(filter: &FleetFilter, risk: Option<Risk>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(r) = risk {
        pairs.push(("risk", r.as_str().to_string()));
    }
    if let Some(e) = &filter.env {
        pairs.push(("env", e.to_string()));
    }
    if let Some(o) = &filter.owner {
        pairs.push(("owner", o.clone()));
    }
    if let Some(s) = &filter.service {
        pairs.push(("service", s.clone()));
    }
    if pairs.is_empty() {
        return "/".into();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", access::encode(v)))
        .collect();
    format!("/?{}", query.join("&"))
}

fn fleet_markup(view: &FleetView) -> Markup {
    let filter = &view.filter;
    let envs: Vec<String> = view.envs.iter().map(|e| e.to_string()).collect();
    let mut columns: Vec<&str> = vec!["Service", "Owner"];
    columns.extend(envs.iter().map(String::as_str));
    columns.extend(["Needs attention", "Base behind", "Scans", "Last deploy"]);
    let at_risk = view.services - view.clear;
    html! {
        p.muted { (view.services) " services · " (at_risk) " need attention · now " (view.now) }
        ul.risks aria-label="Services with each kind of risk" {
            @for (risk, count) in &view.counts {
                li {
                    @if *count == 0 {
                        span.muted data-risk-count=(risk.as_str()) { b { "0" } " " (risk.label()) }
                    } @else {
                        @let class = if filter.risk == Some(*risk) { "bad chosen" } else if is_production_kind(*risk) { "bad" } else { "warn" };
                        a class=(class) href=(with_risk(filter, Some(*risk))) data-risk-count=(risk.as_str()) {
                            b { (count) } " " (risk.label())
                        }
                    }
                }
            }
            li { span.ok { b { (view.clear) } " nothing found" } }
        }
        form.filters method="get" action="/" role="search" aria-label="Filter services" {
            label { "Risk"
                select name="risk" {
                    option value="" { "any" }
                    @for risk in Risk::ALL {
                        option value=(risk.as_str()) selected[filter.risk == Some(*risk)] { (risk.label()) }
                    }
                }
            }
            label { "Environment"
                select name="env" {
                    option value="" { "any" }
                    @for e in &view.envs {
                        option value=(e.as_str()) selected[filter.env.as_ref() == Some(e)] { (e.as_str()) }
                    }
                }
            }
            label { "Owner" input type="text" name="owner" value=(filter.owner.as_deref().unwrap_or("")); }
            label { "Service" input type="text" name="service" value=(filter.service.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
            @if !filter.is_empty() { a href="/" { "Show all" } }
        }
        @if !filter.is_empty() {
            p.muted { (view.rows.len()) " of " (view.services) " services match." }
        }
        table.cards.fleet {
            (head(&columns))
            tbody {
                @for row in &view.rows {
                    @let class = if row.production_risks() > 0 { "risk-production" } else if !row.findings.is_empty() { "risk-other" } else { "" };
                    tr class=(class) data-service=(row.service.name.as_str()) {
                        td data-label="Service" {
                            a href={ "/services/" (row.service.name.as_str()) } { (row.service.name.as_str()) }
                            @if row.production_risks() > 0 {
                                br; span.mark.bad { "PRODUCTION RISK" }
                            }
                        }
                        td data-label="Owner" {
                            (or_dash(row.service.owner.as_ref().map(|o| o.to_string()).as_deref()))
                            br; span.muted { "backup " } (or_dash(row.service.backup_owner.as_ref().map(|o| o.to_string()).as_deref()))
                        }
                        @for (env, cell) in envs.iter().zip(&row.cells) {
                            @match cell {
                                Some(c) => td data-label=(env) data-env=(env) {
                                    (short(&c.deploy.digest.to_string()))
                                    @if c.retired { " " span.mark.bad data-risk="retired" { "RETIRED" } }
                                    @if let Some(o) = &c.outcome {
                                        br; span class=(if o.status == lineage_model::OutcomeStatus::Failed { "bad" } else { "warn" }) { "deploy " (o.status.as_str()) }
                                    }
                                    @let sig = signature(&c.signature);
                                    @if !sig.0.is_empty() { br; (sig) }
                                    @if let Some(seen) = &c.observed { br; (observed(seen)) }
                                },
                                None => td.empty data-label=(env) { span.muted { "—" } },
                            }
                        }
                        td data-label="Needs attention" {
                            @if row.findings.is_empty() {
                                span.ok { "nothing found" }
                            } @else {
                                @for (i, f) in row.findings.iter().enumerate() {
                                    @if i > 0 { br; }
                                    (finding(f))
                                }
                            }
                        }
                        td data-label="Base behind" { (base_cell(row)) }
                        td data-label="Scans" { (scans_cell(&row.scans)) }
                        td data-label="Last deploy" {
                            @match &row.last_deploy {
                                Some(d) => { (d.at) " to " (d.env.as_str()) " by " (d.by.to_string()) },
                                None => span.muted { "never deployed" },
                            }
                        }
                    }
                }
            }
        }
        @if view.rows.is_empty() && view.services > 0 {
            p { "No service matches. " a href="/" { "Show all" } }
        }
        @if view.unjudged {
            p.muted { "Provenance signatures are not judged: " code { "lineage.toml" } " trusts no key (" code { "[[trust.keys]]" } "; see " code { "lineage key" } ")." }
        }
        @if view.services == 0 {
            p { "No services yet: " code { "lineage service add NAME --owner EMAIL --image REPOSITORY" } }
        }
        @match &view.drift {
            Some(report) => (drift_markup(report, None)),
            None => {
                h2 { "Drift: recorded vs. running" }
                p.muted { "No runtime observations yet, so placements are as deploy jobs recorded them: " code { "kubectl get pods -A -o json | lineage observe - --cluster NAME" } }
            }
        }
    }
}

/// Kinds that are red wherever they are: a page counts services, not placements.
fn is_production_kind(risk: Risk) -> bool {
    matches!(
        risk,
        Risk::Unapproved
            | Risk::SelfApproved
            | Risk::NoBuild
            | Risk::FailedGate
            | Risk::Unsigned
            | Risk::Untrusted
            | Risk::Retired
            | Risk::BadOutcome
            | Risk::Vulnerable
    )
}

/// The "Base behind" cell: the worst of a service's placements, in the words `report stale`
/// uses, and where the answer came from. Unknown is said as unknown, with what finds out.
fn base_cell(row: &fleet::Row) -> Markup {
    if let Some((days, source)) = &row.behind {
        // Marked as a risk only when days behind: `fleet` counts it so.
        let risk = (*days > 0).then_some(Risk::StaleBase.as_str());
        return html! {
            span.warn data-risk=[risk] { (days) " days behind" }
            br; span.muted { "newer digest seen by " (source.join(" and ")) }
        };
    }
    if row.placements() == 0 {
        return or_dash(None);
    }
    let unknown = row.freshness.iter().find_map(|f| match f {
        Freshness::NotAssessed { reason } => Some(reason.as_str()),
        _ => None,
    });
    let unknown =
        unknown.or((row.without_build > 0).then_some("no build record for a running digest"));
    if let Some(reason) = unknown {
        return html! { span.warn { "not assessed" } br; span.muted { (reason) } };
    }
    let checked = row
        .freshness
        .iter()
        .filter_map(|f| match f {
            Freshness::Current { checked_at, .. } => Some(*checked_at),
            _ => None,
        })
        .min();
    match checked {
        Some(at) => html! { span.ok { "up to date" } br; span.muted { "registry checked " (at) } },
        None => or_dash(None),
    }
}

/// What the scans of the running digests found; unknown is unknown, with the command.
fn scans_cell(scans: &Scans) -> Markup {
    html! {
        @match scans {
            Scans::NothingRuns => span.muted { "—" },
            Scans::Findings { critical, high } => span.bad data-risk="vulnerable" {
                (critical) " critical, " (high) " high"
            },
            Scans::Clean => span.ok { "no critical or high" },
            Scans::Unknown { reason } => {
                span.warn { "unknown" } br;
                span.muted { (reason) "; " code { "lineage scan add IMAGE@DIGEST FILE" } }
            },
        }
    }
}

async fn service(State(st): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = st.clone();
    let title = format!("Service {}", name.chars().take(80).collect::<String>());
    match blocking(move || s.read(|store| service_markup(&s, store, &name))).await {
        Ok(body) => page(&st, &title, body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn service_markup(st: &AppState, store: &dyn Store, name: &str) -> Result<Markup, ApiError> {
    let config = &st.cfg.gate.config;
    let name = ServiceName::parse(name).map_err(|e| e.in_field("service"))?;
    let report = services::show(store, &name)?;
    let svc = &report.service;
    let id = |v: &Option<lineage_model::Identity>| v.as_ref().map(|i| i.to_string());
    let repo = svc.source_repo.as_ref().map(|r| r.to_string());
    // The picture: `trace`'s answer for the service and its history, drawn.
    let history = lifecycle::history(store, config, &name, None)?;
    let trace = query::trace(store, config, name.as_str())?;
    let builds = store.builds_of_service(&name, 50)?;
    let truth = Truth::load(store, None, None, Some(st.now()))?;
    let mut placements = store.running(None, Some(&name))?;
    placements.sort_by_key(|r| config.env_rank(&r.deploy.env));
    let outcomes = lifecycle::outcomes(store, &name)?;
    let mut running = Vec::with_capacity(placements.len());
    for r in &placements {
        let retired = lifecycle::retirement(store, &r.deploy.digest)?;
        let outcome =
            lifecycle::newest_outcome(&outcomes, &r.deploy.env, &r.deploy.digest, r.deploy.at)
                .map(lifecycle::OutcomeMark::of);
        running.push((r, retired, outcome));
    }
    // What needs attention, as the fleet page judges it (one home: `fleet::fleet`).
    let filter = FleetFilter {
        service: Some(name.to_string()),
        ..FleetFilter::default()
    };
    let mut facts = |d: &lineage_model::Digest| {
        st.index
            .facts(&st.readers, d)
            .map_err(lineage_core::Error::from)
    };
    let view = fleet::fleet(
        store,
        config,
        &drift_options(st),
        &filter,
        &mut facts,
        st.now(),
    )?;
    let judged = view.rows.iter().find(|r| r.service.name == name);
    let build_cols = [
        "Digest", "Tags", "Commit", "Finished", "Base", "Built by", "CI run",
    ];
    let run_cols = [
        "Environment",
        "Digest",
        "Since",
        "Deployed by",
        "Outcome",
        "Observed",
    ];
    let timeline_cols = [
        "When",
        "Environment",
        "Digest",
        "State",
        "Outcome",
        "Deployed by",
        "Approved by",
        "Release",
    ];
    let owner_cols = ["When", "By", "Field", "Old", "New"];
    Ok(html! {
        div.card {
            "Owner " b { (or_dash(id(&svc.owner).as_deref())) }
            " · backup " b { (or_dash(id(&svc.backup_owner).as_deref())) }
            " · emergency approver " b { (or_dash(id(&svc.emergency_approver).as_deref())) }
            br;
            "Source " (match &repo { Some(r) => link(r, html! { (r) }), None => or_dash(None) })
            " · images " (svc.images.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
        }
        @if let Some(row) = judged {
            div.card.attention {
                b { "Needs attention: " }
                @if row.findings.is_empty() {
                    span.ok { "nothing found" }
                } @else {
                    @for (i, f) in row.findings.iter().enumerate() {
                        @if i > 0 { " · " }
                        (finding(f))
                    }
                }
                br; b { "Base: " } (base_cell(row))
                br; b { "Scans: " } (scans_cell(&row.scans))
            }
        }
        h2 { "Lineage" }
        @match &trace {
            Some(trace) => (picture_markup(st, trace, history.as_ref())),
            None => p.muted { "No build or deploy recorded yet: nothing to draw." },
        }
        h2 { "Runs now" }
        table.cards {
            (head(&run_cols))
            tbody {
                @for (r, retired, outcome) in &running {
                    tr {
                        td data-label=(run_cols[0]) { (r.deploy.env.as_str()) }
                        td data-label=(run_cols[1]) {
                            (short(&r.deploy.digest.to_string()))
                            @if let Some(x) = retired { " " span.mark.bad data-risk="retired" { "RETIRED (" (x.reason) ")" } }
                            br; (copyable(&format!("{}@{}", r.deploy.image, r.deploy.digest)))
                        }
                        td data-label=(run_cols[2]) { (r.deploy.at) }
                        td data-label=(run_cols[3]) { (r.deploy.by.to_string()) }
                        td data-label=(run_cols[4]) { (outcome_html(outcome.as_ref())) }
                        td data-label=(run_cols[5]) {
                            @match &truth {
                                Some(t) => (observed(&t.state(&r.deploy.env, &r.deploy.digest))),
                                None => span.muted { "no observations" },
                            }
                        }
                    }
                }
                @if running.is_empty() {
                    tr { td colspan="6" .muted { "not recorded as running anywhere" } }
                }
            }
        }
        @if let Some(report) = &view.drift { (drift_markup(report, Some(name.as_str()))) }
        h2 { "Builds" }
        table.cards {
            (head(&build_cols))
            tbody {
                @for b in &builds {
                    tr {
                        td data-label=(build_cols[0]) { (short(&b.digest.to_string())) }
                        td data-label=(build_cols[1]) { (b.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")) }
                        // The commit links to the repository, the run to the CI system: the
                        // next click during an incident.
                        td data-label=(build_cols[2]) {
                            (commit_link(b.commit.as_ref().map(|c| c.as_str()), b.source_repo.as_ref().map(|r| r.to_string()).as_deref()))
                        }
                        td data-label=(build_cols[3]) { (or_dash(b.finished_at.map(|t| t.to_string()).as_deref())) }
                        td.mono data-label=(build_cols[4]) { (or_dash(b.final_base().map(|x| x.display()).as_deref())) }
                        td data-label=(build_cols[5]) { (or_dash(b.builder.as_ref().map(|x| x.to_string()).as_deref())) }
                        td data-label=(build_cols[6]) {
                            @match &b.ci {
                                Some(ci) => {
                                    @let label = html! { (ci.system) " " (ci.run_id.as_deref().unwrap_or("")) };
                                    @match &ci.url {
                                        Some(url) => (link(url, label)),
                                        None => (label),
                                    }
                                },
                                None => (or_dash(None)),
                            }
                        }
                    }
                }
                @if builds.is_empty() {
                    tr { td colspan="7" .muted { "no build recorded" } }
                }
            }
        }
        // The history is `lineage history`'s answer (one home), with what needs attention in
        // words as well as colour.
        h2 { "Deploy timeline" }
        table.cards {
            (head(&timeline_cols))
            tbody {
                @for row in history.iter().flat_map(|h| &h.rows) {
                    tr {
                        td data-label=(timeline_cols[0]) { (row.at) }
                        td data-label=(timeline_cols[1]) { (row.env) }
                        td data-label=(timeline_cols[2]) {
                            (short(&row.digest))
                            @if row.rollback { " " span.mark.warn { "rollback" } }
                            @if let Some(r) = &row.retired { " " span.mark.bad data-risk="retired" { "RETIRED (" (r.reason) ")" } }
                        }
                        td data-label=(timeline_cols[3]) {
                            @match (row.state.as_str(), row.until) {
                                ("running", _) => span.ok { "running" },
                                (state, Some(until)) => { (state) " " (until) },
                                (state, None) => (state),
                            }
                        }
                        td data-label=(timeline_cols[4]) { (outcome_html(row.outcome.as_ref())) }
                        td data-label=(timeline_cols[5]) { (row.by) }
                        td data-label=(timeline_cols[6]) {
                            @let risk = EnvName::parse(&row.env).ok().and_then(|env| lifecycle::approval_risk(config, &env, &row.by, row.approved_by.as_deref()));
                            @match (&row.approved_by, risk) {
                                (Some(a), Some(risk)) => span.bad data-risk=(risk.as_str()) { (a) " (self-approved)" },
                                (Some(a), None) => (a),
                                (None, Some(risk)) => span.bad data-risk=(risk.as_str()) { "none: deployed without approval" },
                                (None, None) => span.muted { "—" },
                            }
                        }
                        td.mono data-label=(timeline_cols[7]) {
                            @if row.config.is_empty() { span.muted { "—" } } @else { (row.release) }
                        }
                    }
                }
            }
        }
        h2 { "Ownership history" }
        table.cards {
            (head(&owner_cols))
            tbody {
                @for h in &report.history {
                    tr {
                        td data-label=(owner_cols[0]) { (h.at) }
                        td data-label=(owner_cols[1]) { (h.by.to_string()) }
                        td data-label=(owner_cols[2]) { (h.field) }
                        td data-label=(owner_cols[3]) { (or_dash(h.old.as_deref())) }
                        td data-label=(owner_cols[4]) { (or_dash(h.new.as_deref())) }
                    }
                }
            }
        }
    })
}

/// The lineage picture of a trace, with the service's history when there is one.
fn picture_markup(
    st: &AppState,
    trace: &query::TraceReport,
    history: Option<&lifecycle::HistoryReport>,
) -> Markup {
    let graph = lineage_graph::of(&st.cfg.gate.config, trace, history);
    html! {
        // Wider than a phone: it scrolls in its own box, which the keyboard can reach.
        div.picture tabindex="0" role="region" aria-label="Lineage picture" { (picture::lineage_svg(&graph)) }
        p.muted {
            "The same picture for docs and chat: "
            code { "lineage trace " (trace.digest) " --format dot" } " or " code { "--format mermaid" } "."
        }
    }
}

async fn digest_page(State(st): State<Arc<AppState>>, Path(digest): Path<String>) -> Response {
    let s = st.clone();
    let title = format!(
        "Digest {}",
        lineage_graph::short_digest(&digest.chars().take(80).collect::<String>())
    );
    match blocking(move || s.read(|store| digest_markup(&s, store, &digest))).await {
        Ok(body) => page(&st, &title, body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

/// A digest's page: `trace`'s answer for it, drawn, with where it runs; for a base digest,
/// the services built on it.
fn digest_markup(st: &AppState, store: &dyn Store, digest: &str) -> Result<Markup, ApiError> {
    let parsed = lineage_model::Digest::parse(digest).map_err(|e| e.in_field("digest"))?;
    let digest = parsed.to_string();
    let trace = match query::trace(store, &st.cfg.gate.config, &digest) {
        Ok(t) => t,
        // A base is not traced; its page says who is built on it.
        Err(e) => match base_markup(st, store, &digest)? {
            Some(html) => return Ok(html),
            None => return Err(e.into()),
        },
    };
    let Some(trace) = trace else {
        return Ok(base_markup(st, store, &digest)?.unwrap_or_else(|| {
            html! { p { "Nothing recorded for " code { (digest) } "." } }
        }));
    };
    let service = ServiceName::parse(&trace.service).map_err(|e| e.in_field("service"))?;
    let history = lifecycle::history(store, &st.cfg.gate.config, &service, None)?;
    let build = trace.build.as_ref();
    let columns = ["Environment", "Since", "Deployed by", "Approved by"];
    Ok(html! {
        div.card {
            "Service " a href={ "/services/" (trace.service) } { (trace.service) }
            " · owner " b { (or_dash(trace.owners.owner.as_deref())) }
            " · backup " b { (or_dash(trace.owners.backup_owner.as_deref())) }
            br; "Image " (copyable(&format!("{}@{}", trace.image, trace.digest)))
            br; "Commit " (commit_link(build.and_then(|b| b.commit.as_ref()).map(|c| c.as_str()), build.and_then(|b| b.source_repo.as_ref()).map(|r| r.to_string()).as_deref()))
            " · base " (or_dash(build.and_then(|b| b.final_base()).map(|b| b.display()).as_deref()))
            @if build.is_none() {
                " · " span.mark.bad data-risk="no_build" { "NO BUILD RECORD: provenance unknown" }
            }
        }
        (picture_markup(st, &trace, history.as_ref()))
        h2 { "Runs now" }
        table.cards {
            (head(&columns))
            tbody {
                @for p in &trace.running {
                    tr {
                        td data-label=(columns[0]) { (p.env) }
                        td data-label=(columns[1]) { (p.since) }
                        td data-label=(columns[2]) { (p.deployed_by) }
                        td data-label=(columns[3]) { (or_dash(p.approved_by.as_deref())) }
                    }
                }
                @if trace.running.is_empty() {
                    tr { td colspan="4" .muted { "not recorded as running anywhere" } }
                }
            }
        }
    })
}

#[derive(Deserialize)]
struct IncidentQuery {
    q: Option<String>,
}

async fn incident(State(st): State<Arc<AppState>>, Query(q): Query<IncidentQuery>) -> Response {
    let query = q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let answer = match query.clone() {
        None => None,
        Some(q) => {
            let s = st.clone();
            Some(blocking(move || s.read(|store| incident_markup(&s, store, &q))).await)
        }
    };
    let body = html! {
        form method="get" action="/incident" role="search" {
            p { label for="q" {
                "A CVE id (" code { "CVE-2024-5535" } "), a package (" code { "openssl@<3.0.15" }
                "), a purl, a base digest, a base name (" code { "python:3.12-slim" } ") or an image."
            } }
            input #q type="text" name="q" value=(query.as_deref().unwrap_or("")) autofocus;
            " " button type="submit" { "Who is affected?" }
        }
        @match &answer {
            Some(Ok(body)) => (body),
            Some(Err(e)) => (error_markup(e)),
            None => {},
        }
    };
    page(&st, "Incident", body).into_response()
}

fn incident_markup(st: &AppState, store: &dyn Store, q: &str) -> Result<Markup, ApiError> {
    // A CVE id or a purl cannot be a base or an image; a bare name may be either, and is
    // tried as a base or image first, then as a package.
    let package = vulns::classify(q);
    if let Some(pq @ (vulns::PackageQuery::Vuln(_) | vulns::PackageQuery::Purl(_))) = &package {
        let report = vulns::affected(store, &st.cfg.gate.config, pq, st.now())?;
        return Ok(package_report_markup(&report));
    }
    let found = base_markup(st, store, q)?;
    if let (None, Some(pq)) = (&found, &package) {
        let report = vulns::affected(store, &st.cfg.gate.config, pq, st.now())?;
        if !report.services.is_empty() {
            return Ok(package_report_markup(&report));
        }
    }
    Ok(found.unwrap_or_else(|| {
        html! { p { "Nothing recorded for " code { (q) } ": no base, image, package or vulnerability of that name." } }
    }))
}

/// Who to call: owner, backup and emergency approver, one per line.
fn call(owners: &query::Owners) -> Markup {
    html! {
        "owner " (or_dash(owners.owner.as_deref()))
        br; "backup " (or_dash(owners.backup_owner.as_deref()))
        br; "emergency " (or_dash(owners.emergency_approver.as_deref()))
    }
}

/// The same report `affected --package/--purl/--cve` prints, as a table.
fn package_report_markup(r: &vulns::AffectedPackagesReport) -> Markup {
    let q = &r.query;
    let asked = match (&q.package, &q.version, &q.purl, &q.cve) {
        (Some(p), Some(v), _, _) => format!("{p}@{v}"),
        (Some(p), None, _, _) => p.clone(),
        (_, _, Some(p), _) => p.clone(),
        (_, _, _, Some(c)) => c.clone(),
        _ => String::new(),
    };
    let columns = [
        "Service",
        "Call",
        "Runs now",
        "Package",
        "Base or app",
        "Fix",
    ];
    let unscanned = ["Service", "Environment", "Digest", "Owner", "Why"];
    html! {
        @if r.services.is_empty() {
            p { "No running image contains " code { (asked) } ", as far as imported SBOMs and scans say." }
        } @else {
            h2 { (r.services.len()) " services run " code { (asked) } " now" }
            table.cards {
                (head(&columns))
                tbody {
                    @for s in &r.services {
                        @for p in &s.running {
                            @let pl = &p.placement;
                            tr {
                                td data-label=(columns[0]) { a href={ "/services/" (s.service) } { (s.service) } }
                                td data-label=(columns[1]) { (call(&s.owners)) }
                                td data-label=(columns[2]) {
                                    b { (pl.env) } " " (short(&pl.digest)) " since " (pl.since)
                                    br; "commit " span.mono { (or_dash(pl.commit.as_deref())) }
                                }
                                td.wrap data-label=(columns[3]) {
                                    @for m in &p.packages {
                                        div {
                                            b { (m.name) } " " (or_dash(m.version.as_deref())) " " span.muted { (m.ecosystem) }
                                            @for f in &m.findings {
                                                br; (f.id) " " (f.severity) " · "
                                                @match &f.fixed { Some(v) => { "fixed in " (v) }, None => "no fix known" }
                                            }
                                        }
                                    }
                                }
                                td.wrap data-label=(columns[4]) {
                                    @for m in &p.packages {
                                        @let class = match m.origin.as_str() { "base" => "warn", "app" => "bad", _ => "muted" };
                                        div { span class=(class) { (m.origin) } " " span.muted { (m.origin_evidence) } }
                                    }
                                }
                                td.wrap data-label=(columns[5]) {
                                    @match &p.rebuild {
                                        Some(cmd) => { "rebuild on a newer base: " code { (cmd) } },
                                        None if p.packages.iter().any(|m| m.origin == "app") => {
                                            (or_dash(s.owners.owner.as_deref())) " upgrades it in the service"
                                        },
                                        None => span.muted { "base or app unknown" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !r.not_scanned.is_empty() {
            h2.warn { "Not scanned recently (max age " (r.max_age) "): unknown, not clean" }
            table.cards {
                (head(&unscanned))
                tbody {
                    @for n in &r.not_scanned {
                        tr {
                            td data-label=(unscanned[0]) { a href={ "/services/" (n.service) } { (n.service) } }
                            td data-label=(unscanned[1]) { (n.env) }
                            td data-label=(unscanned[2]) { (short(&n.digest)) }
                            td data-label=(unscanned[3]) { (or_dash(n.owner.as_deref())) }
                            td data-label=(unscanned[4]) { (n.reason) }
                        }
                    }
                }
            }
        }
    }
}

/// The base (or image's base) answer; `None` when `q` names no recorded base or image.
fn base_markup(st: &AppState, store: &dyn Store, q: &str) -> Result<Option<Markup>, ApiError> {
    let config = &st.cfg.gate.config;
    let filter = query::resolve_base_filter(store, q).ok().flatten();
    let mut report = match &filter {
        Some(f) => Some(query::affected(store, config, f)?),
        None => None,
    };
    // Not a base anyone built on: maybe an application image; then ask about its base.
    let mut image = None;
    if report.as_ref().is_none_or(|r| r.services.is_empty()) {
        if let Some(t) = query::trace(store, config, q)? {
            if let Some(d) = t
                .build
                .as_ref()
                .and_then(|b| b.final_base())
                .and_then(|b| b.digest.clone())
            {
                report = Some(query::affected(
                    store,
                    config,
                    &lineage_store::BaseFilter::Digest(d),
                )?);
            }
            image = Some(t);
        }
    }
    let Some(report) = report else {
        return Ok(None);
    };
    if report.services.is_empty() && image.is_none() {
        return Ok(None);
    }
    let columns = ["Service", "Call", "Runs now", "Latest build", "Bases"];
    Ok(Some(html! {
        @if let Some(t) = &image {
            div.card {
                code { (q) } " is service " a href={ "/services/" (t.service) } { (t.service) }
                ", digest " (short(&t.digest)) "; its base is "
                (or_dash(t.build.as_ref().and_then(|b| b.final_base()).map(|b| b.display()).as_deref())) "."
            }
        }
        @if report.services.is_empty() {
            p { "No recorded build uses base " code { (report.base) } "." }
        } @else {
            h2 { (report.services.len()) " services built on " code { (report.base) } }
            table.cards {
                (head(&columns))
                tbody {
                    @for s in &report.services {
                        tr {
                            td data-label=(columns[0]) { a href={ "/services/" (s.service) } { (s.service) } }
                            td data-label=(columns[1]) { (call(&s.owners)) }
                            td data-label=(columns[2]) {
                                @for p in &s.running {
                                    div {
                                        b { (p.env) } " " (short(&p.digest)) " since " (p.since)
                                        " · deployed by " (p.deployed_by) " · approved by " (or_dash(p.approved_by.as_deref()))
                                        " · commit " span.mono { (or_dash(p.commit.as_deref())) }
                                    }
                                }
                                @if s.running.is_empty() { span.muted { "not running anywhere" } }
                            }
                            td data-label=(columns[3]) {
                                (short(&s.latest_digest))
                                br; "commit " span.mono { (or_dash(s.latest_commit.as_deref())) }
                                br; (s.builds) " builds on this base"
                            }
                            td.mono.wrap data-label=(columns[4]) {
                                @for (i, b) in s.bases.iter().enumerate() { @if i > 0 { br; } (b) }
                            }
                        }
                    }
                }
            }
        }
    }))
}

fn status_mark(status: &str) -> Markup {
    html! {
        @if status == "closed" { span.ok { "closed" } } @else { span.bad { "open" } }
    }
}

async fn incidents(State(st): State<Arc<AppState>>) -> Response {
    let s = st.clone();
    let list =
        blocking(move || s.read(|store| Ok(incident::list(store, &s.cfg.gate.config, s.now())?)))
            .await;
    let list = match list {
        Ok(list) => list,
        Err(e) => return error_page(&st, e),
    };
    let columns = ["#", "Status", "Kind", "Opened", "Elapsed", "Fixed", "Title"];
    let body = html! {
        p.muted { "Incidents and drills (" code { "lineage incident open" } "), newest first: how long each took from alert to the last fixed deploy." }
        table.cards {
            (head(&columns))
            tbody {
                @for i in &list.incidents {
                    tr {
                        td data-label=(columns[0]) { a href={ "/incidents/" (i.id) } { (i.id) } }
                        td data-label=(columns[1]) { (status_mark(&i.status)) }
                        td data-label=(columns[2]) { (if i.drill { "drill" } else { "incident" }) }
                        td data-label=(columns[3]) { (i.opened_at) }
                        td data-label=(columns[4]) { (incident::duration(i.elapsed_secs)) }
                        td data-label=(columns[5]) { (i.counts.envs_fixed) "/" (i.counts.envs) " environments" }
                        td data-label=(columns[6]) { (i.title) }
                    }
                }
                @if list.incidents.is_empty() {
                    tr { td colspan="7" .muted { "none yet: " code { "lineage incident open --title TEXT --base IMAGE --drill" } " runs a drill" } }
                }
            }
        }
    };
    page(&st, "Incidents and drills", body).into_response()
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
        Ok(Some(r)) => page(
            &st,
            &format!("Incident {}: {}", r.id, r.title),
            incident_report_markup(&r),
        )
        .into_response(),
        Ok(None) => page(
            &st,
            "Incident",
            html! { p.bad { "No incident " (id) "." } p { a href="/incidents" { "All incidents" } } },
        )
        .into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn incident_report_markup(r: &incident::IncidentReport) -> Markup {
    let services = ["Service", "Status", "Environments", "Call"];
    let timeline = ["When", "After", "Event", "Service", "Environment", "Digest"];
    html! {
        div.card {
            (status_mark(&r.status)) " · " (if r.drill { "drill" } else { "incident" })
            " · opened " (r.opened_at) " by " (r.opened_by)
            " · " (incident::duration(r.elapsed_secs))
            " · " (r.counts.envs_fixed) "/" (r.counts.envs) " environments fixed"
            @if let Some(t) = r.closed_at { " · closed " (t) }
        }
        h2 { "Services" }
        table.cards {
            (head(&services))
            tbody {
                @for s in &r.services {
                    tr {
                        td data-label=(services[0]) { a href={ "/services/" (s.service) } { (s.service) } }
                        td data-label=(services[1]) { (s.status) }
                        td data-label=(services[2]) {
                            @for (i, e) in s.envs.iter().enumerate() {
                                @if i > 0 { br; }
                                (e.env) " " span class=(if e.status == "fixed" { "ok" } else { "bad" }) { (e.status) }
                                @if let Some(x) = e.elapsed_secs { " after " (incident::duration(x)) }
                            }
                        }
                        td data-label=(services[3]) {
                            @if s.status == "fixed" {
                                span.muted { "—" }
                            } @else {
                                (or_dash(s.owners.owner.as_deref())) " · backup " (or_dash(s.owners.backup_owner.as_deref()))
                            }
                        }
                    }
                }
            }
        }
        h2 { "Timeline" }
        @if !r.timeline.is_empty() {
            div.picture tabindex="0" role="region" aria-label="Timeline picture" { (picture::timeline_svg(r)) }
        }
        table.cards {
            (head(&timeline))
            tbody {
                @for t in &r.timeline {
                    tr {
                        td data-label=(timeline[0]) { (t.at) }
                        td data-label=(timeline[1]) { (incident::duration(t.elapsed_secs)) }
                        td data-label=(timeline[2]) { (t.event.replace('_', " ")) }
                        td data-label=(timeline[3]) { (or_dash(t.service.as_deref())) }
                        td data-label=(timeline[4]) { (or_dash(t.env.as_deref())) }
                        td data-label=(timeline[5]) {
                            @match &t.digest { Some(d) => (short(d)), None => (or_dash(None)) }
                        }
                    }
                }
            }
        }
    }
}

async fn log(State(st): State<Arc<AppState>>) -> Response {
    let s = st.clone();
    match blocking(move || s.read(|store| log_markup(&s, store))).await {
        Ok(body) => page(&st, "Log", body).into_response(),
        Err(e) => error_page(&st, e),
    }
}

fn log_markup(st: &AppState, store: &dyn Store) -> Result<Markup, ApiError> {
    let head = store.log_head()?;
    let Some(latest) = store.latest_checkpoint()? else {
        return Ok(html! {
            p { "The ledger holds " b { (head.size) } " entries." }
            p.warn { "No signed checkpoint yet: record something first." }
        });
    };
    let status = match &st.cfg.log {
        None => html! { span.muted { "not checked (the server has no log key)" } },
        Some((key, _)) => match verify_checkpoint(&latest.text, &key.verifier()).verified() {
            Some(cp) => {
                let root = store.log_root(cp.size)?;
                if root == cp.root && cp.size == latest.size {
                    html! { span.ok { "verified: the signature is the log key's and the root matches the ledger" } }
                } else {
                    html! { span.bad { "MISMATCH: the signed root differs from the ledger's; run " code { "lineage log verify" } } }
                }
            }
            None => {
                html! { span.bad { "the signature does not verify with the log key; run " code { "lineage log verify" } } }
            }
        },
    };
    let cp = lineage_core::ledger_log::CheckpointReport::of(&latest);
    Ok(html! {
        p { "The ledger holds " b { (head.size) } " entries." }
        div.card {
            "Latest checkpoint: size " b { (latest.size) }
            " · origin " code { (cp.origin.as_deref().unwrap_or("")) }
            " · created " (latest.created)
            br; "Root " code { (cp.root.as_deref().unwrap_or("")) }
            br; "Status: " (status)
            @if latest.size < head.size {
                br; span.warn { (head.size - latest.size) " newer entries are not yet covered by a checkpoint" }
            }
        }
        pre { (latest.text) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_become_links() {
        assert_eq!(
            link("https://ci.acme.dev/run/7", html! { "run 7" }).into_string(),
            "<a href=\"https://ci.acme.dev/run/7\" rel=\"noopener noreferrer\">run 7</a>"
        );
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<b>x</b>",
            "https://x\" onmouseover=\"alert(1)",
            "//evil.example/x",
        ] {
            assert_eq!(link(bad, html! { "run" }).into_string(), "run", "{bad}");
        }
    }

    /// Pages are templates: no tag is assembled in a string, where one missed escape is an
    /// injection. (The redirect body and the login page are templates too.)
    #[test]
    fn no_page_is_built_from_strings() {
        for (file, source) in [
            ("dashboard.rs", include_str!("dashboard.rs")),
            ("dashboard/access.rs", include_str!("dashboard/access.rs")),
            ("dashboard/picture.rs", include_str!("dashboard/picture.rs")),
        ] {
            let code = source.split("#[cfg(test)]").next().unwrap();
            for needle in [
                "format!(\"<",
                "push_str(\"<",
                "write!(html",
                "write!(svg",
                "\"<td",
                "\"<tr",
                "\"<a ",
            ] {
                assert!(
                    !code.contains(needle),
                    "{file} builds HTML from strings: `{needle}`"
                );
            }
        }
    }

    #[test]
    fn a_filter_link_keeps_the_other_filters() {
        let filter = FleetFilter {
            owner: Some("a&b <x>".into()),
            ..FleetFilter::default()
        };
        assert_eq!(
            with_risk(&filter, Some(Risk::SelfApproved)),
            "/?risk=self_approved&owner=a%26b%20%3Cx%3E"
        );
        assert_eq!(with_risk(&FleetFilter::default(), None), "/");
    }
}
