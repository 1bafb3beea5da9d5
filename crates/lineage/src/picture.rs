//! `trace --format dot` and `--format mermaid`: the lineage picture
//! ([`lineage_core::lineage_graph`], the one the dashboard draws) as Graphviz DOT and as a
//! Mermaid `flowchart LR`, for docs and chat.
//!
//! Labels come from records (image names, identities, CI fields), so each is escaped for its
//! format here: DOT quoted strings with `"` and `\` escaped, Mermaid quoted labels with
//! `"`, `<`, `>`, `&`, `#` and backticks written as Mermaid entities. Control characters were
//! removed when the graph was built. Node ids are the graph's own ASCII ids.

use std::fmt::Write as _;

use lineage_core::lifecycle::HistoryReport;
use lineage_core::lineage_graph::{self, LineageGraph, Node, NodeKind};
use lineage_core::query::TraceReport;

use crate::args::FormatChoice;
use crate::settings::Settings;

/// Whether `--format` asks for the picture.
pub fn wanted(s: &Settings) -> bool {
    matches!(s.format_choice, FormatChoice::Dot | FormatChoice::Mermaid)
}

/// Prints the picture of `trace` (and the service's `history`) in the format asked for.
pub fn print(s: &Settings, trace: &TraceReport, history: Option<&HistoryReport>) {
    let graph = lineage_graph::of(&s.toml.config, trace, history);
    match s.format_choice {
        FormatChoice::Mermaid => print!("{}", mermaid(&graph)),
        _ => print!("{}", dot(&graph)),
    }
}

/// A DOT quoted string's contents: `\` and `"` escaped, so neither a record's text nor a
/// Graphviz escape (`\N`, `\l`) can end the string or change the label.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid quoted label's contents: no raw `"`, `<`, `>`, `&`, `#` or backtick.
fn mermaid_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' => out.push_str("#35;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn fill(n: &Node) -> &'static str {
    match (n.kind, n.warning.is_some(), n.current) {
        (_, true, _) => "#fde2e1",
        (NodeKind::Base, _, _) => "#eef1f5",
        (NodeKind::Placement, _, true) => "#dcfce7",
        (NodeKind::Build, _, true) => "#e0ecff",
        _ => "#ffffff",
    }
}

fn title(g: &LineageGraph) -> String {
    let mut t = format!(
        "service {} · lineage of {}",
        g.service,
        lineage_core::lineage_graph::short_digest(&g.digest)
    );
    if !g.history {
        t.push_str(" · placements now");
    }
    if g.omitted > 0 {
        let _ = write!(t, " · {} older placements not shown", g.omitted);
    }
    t
}

/// The picture as a Graphviz digraph, left to right; each environment is a cluster.
pub fn dot(g: &LineageGraph) -> String {
    let mut out = String::from("digraph lineage {\n");
    let _ = writeln!(
        out,
        "  graph [rankdir=LR, labelloc=t, fontname=\"Helvetica\", label=\"{}\"];",
        dot_str(&title(g))
    );
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let node = |n: &Node| {
        let label: Vec<String> = n.lines.iter().map(|l| dot_str(&l.text)).collect();
        let mut attrs = format!("label=\"{}\", fillcolor=\"{}\"", label.join("\\n"), fill(n));
        if n.traced || n.current {
            attrs.push_str(", penwidth=2");
        }
        // The node leads where its first linked line does (its digest's page).
        if let Some(href) = n.lines.iter().find_map(|l| l.link.as_ref()?.href()) {
            let _ = write!(attrs, ", URL=\"{}\"", dot_str(&href));
        }
        format!("{} [{attrs}];\n", n.id)
    };
    for n in g.nodes.iter().filter(|n| n.kind != NodeKind::Placement) {
        out.push_str("  ");
        out.push_str(&node(n));
    }
    for (i, env) in g.envs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_env{i} {{\n    label=\"{}\";\n    style=\"rounded\";",
            dot_str(env)
        );
        for n in g
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Placement && n.env.as_ref() == Some(env))
        {
            out.push_str("    ");
            out.push_str(&node(n));
        }
        out.push_str("  }\n");
    }
    for e in &g.edges {
        match &e.label {
            Some(l) => {
                let _ = writeln!(out, "  {} -> {} [label=\"{}\"];", e.from, e.to, dot_str(l));
            }
            None => {
                let _ = writeln!(out, "  {} -> {};", e.from, e.to);
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The picture as a Mermaid `flowchart LR`; each environment is a subgraph.
pub fn mermaid(g: &LineageGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    let _ = writeln!(out, "  %% {}", mermaid_str(&title(g)));
    let node = |n: &Node| {
        let label: Vec<String> = n.lines.iter().map(|l| mermaid_str(&l.text)).collect();
        format!("{}[\"{}\"]\n", n.id, label.join(" · "))
    };
    for n in g.nodes.iter().filter(|n| n.kind != NodeKind::Placement) {
        out.push_str("  ");
        out.push_str(&node(n));
    }
    for (i, env) in g.envs.iter().enumerate() {
        let _ = writeln!(out, "  subgraph env{i}[\"{}\"]", mermaid_str(env));
        for n in g
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Placement && n.env.as_ref() == Some(env))
        {
            out.push_str("    ");
            out.push_str(&node(n));
        }
        out.push_str("  end\n");
    }
    for e in &g.edges {
        match &e.label {
            Some(l) => {
                let _ = writeln!(out, "  {} -->|\"{}\"| {}", e.from, mermaid_str(l), e.to);
            }
            None => {
                let _ = writeln!(out, "  {} --> {}", e.from, e.to);
            }
        }
    }
    out.push_str("  classDef current stroke-width:3px,stroke:#116329\n");
    out.push_str("  classDef warning stroke-width:3px,stroke:#b42318\n");
    let ids = |pred: &dyn Fn(&Node) -> bool| -> Vec<&str> {
        g.nodes
            .iter()
            .filter(|n| pred(n))
            .map(|n| n.id.as_str())
            .collect()
    };
    let current = ids(&|n| n.current && n.warning.is_none());
    if !current.is_empty() {
        let _ = writeln!(out, "  class {} current", current.join(","));
    }
    let warned = ids(&|n| n.warning.is_some());
    if !warned.is_empty() {
        let _ = writeln!(out, "  class {} warning", warned.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cannot_leave_their_quotes() {
        assert_eq!(dot_str(r#"a"b\c\N"#), r#"a\"b\\c\\N"#);
        assert_eq!(
            mermaid_str("<script>\"x\"#lt;`"),
            "#lt;script#gt;#quot;x#quot;#35;lt;#96;"
        );
    }
}
