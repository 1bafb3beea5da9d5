//! Inline SVG pictures for the dashboard: a service's lineage ([`lineage_svg`], drawn from
//! [`lineage_core::lineage_graph`], the graph `trace --format dot|mermaid` writes too) and an
//! incident's timeline ([`timeline_svg`]).
//!
//! Server-rendered, no script: readable in a screenshot and printable. Styling is presentation
//! attributes only (the CSP allows no inline `style`). Every text is XML-escaped, links are
//! only what [`Link::href`] allows (a relative Lineage path or a plain `http(s)` URL), and the
//! layout is computed here from the graph's plain data. The SVG is a `maud` template like the
//! pages, so every text and attribute is escaped by construction.

use maud::{html, Markup};

use lineage_core::incident::IncidentReport;
use lineage_core::lineage_graph::{
    clean, short_digest, when, Line, LineageGraph, Link, Node, NodeKind,
};
use lineage_model::Timestamp;

const FONT: &str = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace";
/// Roughly how wide one character of the 11 px monospace font is.
const CHAR_W: f64 = 6.7;
const BOX_W: f64 = 232.0;
const GAP: f64 = 28.0;
const LINE_H: f64 = 14.0;
const GUTTER: f64 = 112.0;
const TOP: f64 = 40.0;
/// One colour per digest of the service, so its build and its placements match.
const PALETTE: &[&str] = &[
    "#1f6feb", "#8250df", "#bf8700", "#0a7ea4", "#cf222e", "#1a7f37", "#953800", "#6e7781",
];

/// The most characters a label line shows inside a box; the whole line is its tooltip.
fn fit(text: &str) -> String {
    let max = ((BOX_W - 14.0) / CHAR_W) as usize;
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// How a label is drawn: presentation attributes only (the CSP allows no inline style).
#[derive(Clone, Copy, Default)]
struct Look {
    bold: bool,
    fill: Option<&'static str>,
    size: Option<u32>,
    underline: bool,
}

impl Look {
    fn fill(fill: &'static str) -> Look {
        Look {
            fill: Some(fill),
            ..Look::default()
        }
    }

    fn bold(self) -> Look {
        Look { bold: true, ..self }
    }
}

const LINK: Look = Look {
    bold: false,
    fill: Some("#0b57d0"),
    size: None,
    underline: true,
};

/// `<text>` at (x, y), linked when the link is one [`Link::href`] allows.
fn text(x: f64, y: f64, body: &str, full: &str, link: Option<&Link>, look: Look) -> Markup {
    // Labels from the graph are clean already; the rest (incident fields) is cleaned here, as
    // XML has no place for control characters even escaped.
    let (body, full) = (clean(body), clean(full));
    let t = html! {
        text x=(format!("{x:.0}")) y=(format!("{y:.0}"))
            font-weight=[look.bold.then_some("bold")]
            fill=[look.fill]
            font-size=[look.size]
            text-decoration=[look.underline.then_some("underline")] {
            @if body != full { title { (full) } }
            (body)
        }
    };
    match link.and_then(Link::href) {
        Some(href) => html! { a href=(href) { (t) } },
        None => t,
    }
}

fn line_text(x: f64, y: f64, line: &Line, look: Look) -> Markup {
    let look = if line.link.as_ref().and_then(Link::href).is_some() {
        Look {
            fill: LINK.fill,
            underline: true,
            ..look
        }
    } else {
        look
    };
    text(x, y, &fit(&line.text), &line.text, line.link.as_ref(), look)
}

/// A number as an SVG coordinate.
fn n(v: f64) -> String {
    format!("{v:.0}")
}

/// Which lane a node is drawn in: each base its own, then the builds, then one per
/// environment in promotion order.
fn lane_of(g: &LineageGraph, n: &Node, bases: &[&Node]) -> usize {
    match n.kind {
        NodeKind::Base => bases.iter().position(|b| b.id == n.id).unwrap_or(0),
        NodeKind::Build => bases.len(),
        NodeKind::Placement => {
            bases.len()
                + 1
                + g.envs
                    .iter()
                    .position(|e| Some(e) == n.env.as_ref())
                    .unwrap_or(0)
        }
    }
}

/// The service's lineage: lanes for the bases, the builds and each environment, time from
/// left to right (in order, packed: a column holds at most one node per lane), edges from
/// each base to the build and from each build to where it was deployed. What runs now is
/// outlined thick and says RUNNING NOW; the traced digest's build is outlined thick too.
pub fn lineage_svg(g: &LineageGraph) -> Markup {
    let bases: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Base)
        .collect();
    let lanes = bases.len() + 1 + g.envs.len();
    // A build with no known time stands where its digest was first deployed.
    let time_of = |n: &Node| -> Option<Timestamp> {
        n.at.or_else(|| {
            g.nodes
                .iter()
                .filter(|p| p.kind == NodeKind::Placement && p.digest == n.digest)
                .filter_map(|p| p.at)
                .min()
        })
    };
    // Columns: builds and placements in time order, builds before what they deployed.
    let mut events: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| n.kind != NodeKind::Base)
        .collect();
    events.sort_by_key(|n| (time_of(n), n.kind == NodeKind::Placement));
    let mut column: Vec<(String, usize)> = Vec::new();
    let mut used: Vec<Vec<usize>> = Vec::new();
    let mut col = 0usize;
    for n in &events {
        let lane = lane_of(g, n, &bases);
        if used.get(col).is_some_and(|l| l.contains(&lane)) {
            col += 1;
        }
        if used.len() <= col {
            used.push(Vec::new());
        }
        used[col].push(lane);
        column.push((n.id.clone(), col));
    }
    // Bases stand above the build they went into.
    let traced_col = g
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::Build && n.traced)
        .and_then(|n| column.iter().find(|(id, _)| *id == n.id))
        .map_or(0, |(_, c)| *c);
    for b in &bases {
        column.push((b.id.clone(), traced_col));
    }
    let columns = used.len().max(1);
    let col_of = |id: &str| column.iter().find(|(i, _)| i == id).map_or(0, |(_, c)| *c);
    // Each lane is as tall as its tallest box.
    let mut lane_h = vec![LINE_H * 2.0 + 12.0; lanes];
    for n in &g.nodes {
        let l = lane_of(g, n, &bases);
        lane_h[l] = lane_h[l].max(n.lines.len() as f64 * LINE_H + 12.0);
    }
    let mut lane_y = Vec::with_capacity(lanes);
    let mut y = TOP;
    for h in &lane_h {
        lane_y.push(y);
        y += h + GAP;
    }
    let axis_y = y;
    let width = GUTTER + columns as f64 * (BOX_W + GAP) + 70.0;
    let height = axis_y + 44.0;
    let x_of = |c: usize| GUTTER + c as f64 * (BOX_W + GAP);
    let colour = |n: &Node| {
        let builds: Vec<&Node> = g
            .nodes
            .iter()
            .filter(|b| b.kind == NodeKind::Build)
            .collect();
        if n.kind == NodeKind::Base {
            return "#57606a";
        }
        builds
            .iter()
            .position(|b| b.digest == n.digest)
            .map_or("#57606a", |i| PALETTE[i % PALETTE.len()])
    };
    let title = format!(
        "Lineage of {} in service {}",
        short_digest(&g.digest),
        g.service
    );
    // The heading: the service, linked to its page.
    let mut head = format!("service {}", g.service);
    if !g.history {
        head.push_str(" · placements now");
    }
    if g.omitted > 0 {
        head.push_str(&format!(" · {} older placements not shown", g.omitted));
    }
    let lane_name = |l: usize| {
        if l < bases.len() {
            "base".to_string()
        } else if l == bases.len() {
            "builds".to_string()
        } else {
            g.envs[l - bases.len() - 1].clone()
        }
    };
    // Where each box is: (x, y top, height).
    let place = |n: &Node| {
        let l = lane_of(g, n, &bases);
        (
            x_of(col_of(&n.id)),
            lane_y[l],
            n.lines.len() as f64 * LINE_H + 10.0,
        )
    };
    let column_time = |c: usize| {
        events
            .iter()
            .filter(|n| col_of(&n.id) == c)
            .filter_map(|n| time_of(n))
            .min()
    };
    let edges: Vec<(&Node, &Node, Option<&String>)> = g
        .edges
        .iter()
        .filter_map(|e| Some((g.node(&e.from)?, g.node(&e.to)?, e.label.as_ref())))
        .collect();
    let grey = Look::fill("#57606a");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="group" aria-labelledby="lineage-title"
            width=(n(width)) height=(n(height)) viewBox={ "0 0 " (n(width)) " " (n(height)) }
            font-family=(FONT) font-size="11" {
            title #lineage-title { (title) }
            defs {
                marker #lineage-arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M0 0L10 5L0 10z" fill="#57606a" {}
                }
            }
            rect width="100%" height="100%" fill="#ffffff" {}
            (text(12.0, 22.0, &head, &head, Some(&Link::Service(g.service.clone())), Look { size: Some(13), ..LINK.bold() }))
            // Lanes and their names.
            @for (l, top) in lane_y.iter().enumerate() {
                rect x="4" y=(n(top - GAP / 2.0 + 2.0)) width=(n(width - 8.0)) height=(n(lane_h[l] + GAP - 4.0))
                    fill=(if l % 2 == 0 { "#f6f8fa" } else { "#ffffff" }) {}
                @let name = lane_name(l);
                (text(12.0, top + 16.0, &name, &name, None, Look::fill("#1b1f24").bold()))
            }
            // The time axis: each column's earliest time.
            line x1=(n(GUTTER)) y1=(n(axis_y)) x2=(n(width - 20.0)) y2=(n(axis_y)) stroke="#57606a" marker-end="url(#lineage-arrow)" {}
            (text(width - 62.0, axis_y + 30.0, "time", "time", None, grey))
            @for c in 0..columns {
                @let x = x_of(c);
                line x1=(n(x)) y1=(n(axis_y - 4.0)) x2=(n(x)) y2=(n(axis_y + 4.0)) stroke="#57606a" {}
                @if let Some(t) = column_time(c) {
                    @let w = when(t);
                    (text(x, axis_y + 18.0, &w, &w, None, grey))
                }
            }
            // Edges under the boxes.
            @for (from, to, label) in &edges {
                @let (fx, fy, fh) = place(from);
                @let (tx, ty, _) = place(to);
                @let (x1, y1) = (fx + BOX_W / 2.0, fy + fh);
                @let (x2, y2) = (tx + 18.0, ty);
                @let mid = (y1 + y2) / 2.0;
                path d={ "M" (n(x1)) " " (n(y1)) "C" (n(x1)) " " (n(mid)) " " (n(x2)) " " (n(mid)) " " (n(x2)) " " (n(y2)) }
                    fill="none" stroke=(colour(to)) stroke-width="1.5" marker-end="url(#lineage-arrow)" {}
                @if let Some(label) = label {
                    (text(x1 + 6.0, y1 + 14.0, label, label, None, Look { size: Some(10), ..grey }))
                }
            }
            // A current placement runs on to the right edge: now.
            @for node in g.nodes.iter().filter(|n| n.kind == NodeKind::Placement && n.current) {
                @let (x, y, h) = place(node);
                line x1=(n(x + BOX_W)) y1=(n(y + h / 2.0)) x2=(n(width - 44.0)) y2=(n(y + h / 2.0))
                    stroke="#116329" stroke-width="3" marker-end="url(#lineage-arrow)" {}
                (text(width - 38.0, y + h / 2.0 + 4.0, "now", "now", None, Look::fill("#116329").bold()))
            }
            // The boxes.
            @for node in &g.nodes {
                @let (x, y, h) = place(node);
                @let stroke = if node.warning.is_some() { "#b42318" } else { colour(node) };
                @let fill = match (node.kind, node.current) {
                    (_, _) if node.warning.is_some() => "#fff1f0",
                    (NodeKind::Placement, true) => "#ecfdf3",
                    (NodeKind::Base, _) => "#f6f8fa",
                    _ => "#ffffff",
                };
                g {
                    rect x=(n(x)) y=(n(y)) width=(n(BOX_W)) height=(n(h)) rx="6" fill=(fill) stroke=(stroke)
                        stroke-width=(if node.current || node.traced { 3 } else { 1 }) {}
                    @for (i, line) in node.lines.iter().enumerate() {
                        @let look = if line.text == "RUNNING NOW" {
                            Look::fill("#116329").bold()
                        } else if line.text.chars().next().is_some_and(char::is_uppercase) && node.warning.is_some() {
                            Look::fill("#b42318").bold()
                        } else {
                            Look { bold: i == 0, ..Look::default() }
                        };
                        (line_text(x + 8.0, y + 16.0 + i as f64 * LINE_H, line, look))
                    }
                }
            }
        }
    }
}

/// An incident's timeline, oldest first, one row per event: how long after the opening, what
/// happened, to which service, environment and digest (linked to their pages).
pub fn timeline_svg(r: &IncidentReport) -> Markup {
    const ROW: f64 = 40.0;
    const AXIS_X: f64 = 112.0;
    let rows = r.timeline.len().max(1);
    let height = 24.0 + rows as f64 * ROW;
    let longest = r
        .timeline
        .iter()
        .map(|t| {
            t.service.as_deref().map_or(0, |s| s.chars().count() + 10)
                + t.env.as_deref().map_or(0, |s| s.chars().count() + 5)
                + t.digest.as_ref().map_or(0, |_| 22)
        })
        .max()
        .unwrap_or(0)
        .max(40);
    let width = AXIS_X + 24.0 + longest as f64 * CHAR_W + 20.0;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="group" aria-labelledby="timeline-title"
            width=(n(width)) height=(n(height)) viewBox={ "0 0 " (n(width)) " " (n(height)) }
            font-family=(FONT) font-size="11" {
            title #timeline-title { "Timeline of incident " (r.id) }
            rect width="100%" height="100%" fill="#ffffff" {}
            line x1=(n(AXIS_X)) y1="12" x2=(n(AXIS_X)) y2=(n(height - 12.0)) stroke="#57606a" stroke-width="2" {}
            @for (i, t) in r.timeline.iter().enumerate() {
                @let y = 28.0 + i as f64 * ROW;
                @let colour = match t.event.as_str() {
                    "opened" => "#b42318",
                    "first_fixed_build" => "#9a6700",
                    _ => "#116329",
                };
                @let after = format!("+{}", lineage_core::incident::duration(t.elapsed_secs));
                (text(10.0, y + 4.0, &after, &after, None, Look::default().bold()))
                circle cx=(n(AXIS_X)) cy=(n(y)) r="6" fill=(colour) {}
                @let event = format!("{} · {}", t.event.replace('_', " "), when(t.at));
                (text(AXIS_X + 16.0, y + 4.0, &event, &event, None, Look::fill(colour).bold()))
                // The details below: service, environment, digest, each where the last one ends.
                @for (x, label, link) in details(t, AXIS_X + 16.0) {
                    @let look = if link.as_ref().and_then(Link::href).is_some() { LINK } else { Look::fill("#1b1f24") };
                    (text(x, y + 19.0, &label, &label, link.as_ref(), look))
                }
            }
        }
    }
}

/// A timeline event's details, left to right from `x`: (where, label, link).
fn details(
    t: &lineage_core::incident::TimelineEvent,
    mut x: f64,
) -> Vec<(f64, String, Option<Link>)> {
    let mut parts = Vec::new();
    if let Some(s) = &t.service {
        parts.push((format!("service {s}"), Some(Link::Service(s.clone()))));
    }
    if let Some(e) = &t.env {
        parts.push((format!("env {e}"), None));
    }
    if let Some(d) = &t.digest {
        parts.push((short_digest(d), Some(Link::Digest(d.clone()))));
    }
    parts
        .into_iter()
        .map(|(label, link)| {
            let at = x;
            x += (label.chars().count() + 2) as f64 * CHAR_W;
            (at, label, link)
        })
        .collect()
}
