//! The lineage picture as data: base digests → the build (commit, CI run) → each environment
//! it reached, over time, with what runs now and the service's older digests.
//!
//! One home for the picture: the dashboard draws it as SVG, `lineage trace --format dot` and
//! `--format mermaid` write it for Graphviz and Mermaid, and all of them read the nodes and
//! edges computed here from the answers they already have (`trace`, and `history` when the
//! front end has it). Nothing here renders; labels are plain text with every control and
//! bidirectional character removed, and each front end escapes them for its format. Links are
//! decided here too ([`Link::href`]): a Lineage page, or a plain `http(s)` URL, never anything
//! a browser would run.

use lineage_model::{is_unsafe_char, CommitId, Digest, EnvName, ServiceName, Timestamp};
use serde::Serialize;

use crate::lifecycle::HistoryReport;
use crate::query::{Placement, TraceReport};
use crate::Config;

/// How many placements the picture draws (the newest): more stop being readable.
pub const MAX_PLACEMENTS: usize = 24;
/// The longest label line, in characters; longer text is cut with `…`.
const MAX_LINE: usize = 72;

/// What a node stands for.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A base image (`FROM`) of the traced build.
    Base,
    /// A digest of the service: its build, or the digest alone when no build is recorded.
    Build,
    /// A digest deployed to an environment, from `at` until `until` (or now).
    Placement,
}

/// Where a label line leads.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "to")]
pub enum Link {
    /// Lineage's page for a digest (`/digests/DIGEST`).
    Digest(String),
    /// Lineage's page for a service (`/services/NAME`).
    Service(String),
    /// A page elsewhere: a commit in its repository, a CI run.
    Url(String),
}

impl Link {
    /// The address to link to, or `None` when it could not be a safe link: a relative
    /// Lineage path built from a checked digest or service name, or a plain `http(s)` URL
    /// with no quote, angle bracket, space or control character in it.
    pub fn href(&self) -> Option<String> {
        match self {
            Link::Digest(d) => Digest::parse(d).ok().map(|d| format!("/digests/{d}")),
            Link::Service(s) => ServiceName::parse(s)
                .ok()
                .map(|s| format!("/services/{}", s.as_str())),
            Link::Url(u) => web_url(u).map(str::to_string),
        }
    }
}

/// `url` when it is a plain `http(s)` URL that is safe to put in an attribute; `None` for
/// `javascript:`, `data:`, scheme-relative and anything with quotes, brackets, spaces or
/// control characters. URLs in records are whatever a pipeline sent.
pub fn web_url(url: &str) -> Option<&str> {
    let lower = url.to_ascii_lowercase();
    let scheme = lower.starts_with("https://") || lower.starts_with("http://");
    let clean = !url.chars().any(|c| {
        c.is_whitespace() || is_unsafe_char(c) || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
    });
    (scheme && clean).then_some(url)
}

/// The web page of `commit` in the repository at `repo`: GitLab's `/-/commit/`, Bitbucket's
/// `/commits/`, and `/commit/` for GitHub and every other forge (Gitea, Forgejo, …). Only a
/// [`web_url`] becomes a link; this builds the address, the caller still checks it.
pub fn commit_url(repo: &str, commit: &str) -> String {
    let repo = repo.trim_end_matches('/');
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let host = repo
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
        .to_ascii_lowercase();
    if host == "bitbucket.org" {
        format!("{repo}/commits/{commit}")
    } else if host.split('.').any(|part| part == "gitlab") {
        format!("{repo}/-/commit/{commit}")
    } else {
        format!("{repo}/commit/{commit}")
    }
}

/// One line of a node's label, with where it leads.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

impl Line {
    fn plain(text: impl AsRef<str>) -> Line {
        Line {
            text: clean(text.as_ref()),
            link: None,
        }
    }

    fn linked(text: impl AsRef<str>, link: Link) -> Line {
        Line {
            text: clean(text.as_ref()),
            link: Some(link),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Node {
    /// `base0`, `build1`, `place2`: ASCII, safe as an identifier in every format.
    pub id: String,
    pub kind: NodeKind,
    /// The first line is the headline.
    pub lines: Vec<Line>,
    /// When: the build's finish, the deploy's time; `None` when unknown (a base without a
    /// pull time, a digest whose build is not recorded).
    pub at: Option<Timestamp>,
    /// When a placement was replaced or ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// The full digest the node is about (a placement's or a build's; a base's, when known).
    pub digest: Option<String>,
    /// A placement's environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Runs now: a placement that is current, or a build running somewhere.
    pub current: bool,
    /// The digest the picture is about (its build and placements).
    pub traced: bool,
    /// Something about it needs attention (retired, failed outcome, no build record).
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The picture of one service's lineage around one digest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineageGraph {
    pub service: String,
    /// The digest the picture is about.
    pub digest: String,
    /// Environments, in promotion order (production last).
    pub envs: Vec<String>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// True when placements come from the service's history (replaced and ended ones too);
    /// false when only what runs now is known.
    pub history: bool,
    /// Placements left out to keep the picture readable (older than the newest
    /// [`MAX_PLACEMENTS`]).
    pub omitted: usize,
}

impl LineageGraph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Text without control or bidirectional characters, on one line, bounded.
pub fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if is_unsafe_char(c) { ' ' } else { c })
        .collect();
    if out.chars().count() > MAX_LINE {
        out = out.chars().take(MAX_LINE - 1).collect();
        out.push('…');
    }
    out
}

/// `sha256:` and the first 12 hex digits, as the dashboard and the CLI show digests.
pub fn short_digest(d: &str) -> String {
    let cut = d.find(':').map_or(0, |i| i + 1) + 12;
    match d.get(..cut) {
        Some(s) if d.len() > cut => s.to_string(),
        _ => d.to_string(),
    }
}

fn short_commit(c: &str) -> String {
    match CommitId::parse(c) {
        Ok(id) if c.len() > 12 => id.short().to_string(),
        _ => c.chars().take(12).collect(),
    }
}

/// A time as the picture labels it: `2026-11-15 10:00 UTC`.
pub fn when(t: Timestamp) -> String {
    let s = t.to_string();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => s,
    }
}

/// The picture: `trace` gives the digest, its build and bases, what runs now and the older
/// builds; `history` (the service's, `lineage history`), when the front end has it, adds
/// every placement since, replaced and ended ones included.
pub fn of(config: &Config, trace: &TraceReport, history: Option<&HistoryReport>) -> LineageGraph {
    let mut g = LineageGraph {
        service: trace.service.clone(),
        digest: trace.digest.clone(),
        envs: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
        history: history.is_some(),
        omitted: 0,
    };
    // Placements: the history's newest, or what runs now.
    struct Place {
        env: String,
        digest: String,
        at: Timestamp,
        until: Option<Timestamp>,
        by: String,
        approved_by: Option<String>,
        state: String,
        commit: Option<String>,
        warning: Option<String>,
    }
    let of_placement = |p: &Placement| Place {
        env: p.env.clone(),
        digest: p.digest.clone(),
        at: p.since,
        until: None,
        by: p.deployed_by.clone(),
        approved_by: p.approved_by.clone(),
        state: "running".into(),
        commit: p.commit.clone(),
        warning: warning(
            p.retired.as_ref().map(|r| r.reason.as_str()),
            p.outcome.as_ref().map(|o| o.status.as_str()),
        ),
    };
    let mut places: Vec<Place> = match history {
        Some(h) => {
            g.omitted = h.rows.len().saturating_sub(MAX_PLACEMENTS);
            h.rows
                .iter()
                .take(MAX_PLACEMENTS)
                .map(|r| Place {
                    env: r.env.clone(),
                    digest: r.digest.clone(),
                    at: r.at,
                    until: r.until,
                    by: r.by.clone(),
                    approved_by: r.approved_by.clone(),
                    state: r.state.clone(),
                    commit: r.commit.clone(),
                    warning: warning(
                        r.retired.as_ref().map(|x| x.reason.as_str()),
                        r.outcome.as_ref().map(|o| o.status.as_str()),
                    ),
                })
                .collect()
        }
        None => trace
            .running
            .iter()
            .chain(&trace.elsewhere)
            .map(of_placement)
            .collect(),
    };
    places.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.env.cmp(&b.env)));

    // Environments in promotion order: the lowest first, production last.
    let mut envs: Vec<String> = places.iter().map(|p| p.env.clone()).collect();
    envs.sort_by_key(|e| {
        let rank = EnvName::parse(e).map_or(usize::MAX, |e| config.env_rank(&e));
        (std::cmp::Reverse(rank), e.clone())
    });
    envs.dedup();
    g.envs = envs;

    // Builds: the traced digest, the older builds `trace` lists, and any other digest the
    // placements name; oldest first.
    struct Build {
        digest: String,
        at: Option<Timestamp>,
        commit: Option<String>,
        tags: Vec<String>,
        recorded: bool,
    }
    let mut builds: Vec<Build> = Vec::new();
    builds.push(Build {
        digest: trace.digest.clone(),
        at: trace
            .build
            .as_ref()
            .and_then(|b| b.finished_at)
            .or(trace.build_recorded_at),
        commit: trace
            .build
            .as_ref()
            .and_then(|b| b.commit.as_ref())
            .map(|c| c.to_string()),
        tags: trace
            .build
            .as_ref()
            .map(|b| b.tags.iter().map(|t| t.to_string()).collect())
            .unwrap_or_default(),
        recorded: trace.build.is_some(),
    });
    for p in &trace.previous {
        builds.push(Build {
            digest: p.digest.clone(),
            at: p.finished_at,
            commit: p.commit.clone(),
            tags: p.tags.clone(),
            recorded: true,
        });
    }
    for p in &places {
        if !builds.iter().any(|b| b.digest == p.digest) {
            builds.push(Build {
                digest: p.digest.clone(),
                at: None,
                commit: p.commit.clone(),
                tags: Vec::new(),
                // Older than the builds `trace` lists, or never recorded: the commit says which.
                recorded: p.commit.is_some(),
            });
        }
    }
    // Oldest first; a digest with no build time stands where it was first deployed.
    let first_deployed = |digest: &str| {
        places
            .iter()
            .filter(|p| p.digest == digest)
            .map(|p| p.at)
            .min()
    };
    builds.sort_by_key(|b| (b.at.or_else(|| first_deployed(&b.digest)), b.digest.clone()));
    let running: Vec<&str> = places
        .iter()
        .filter(|p| p.state == "running")
        .map(|p| p.digest.as_str())
        .collect();
    let repo = trace.build.as_ref().and_then(|b| b.source_repo.as_ref());
    for (i, b) in builds.iter().enumerate() {
        let traced = b.digest == trace.digest;
        let mut lines = vec![Line::linked(
            short_digest(&b.digest),
            Link::Digest(b.digest.clone()),
        )];
        if !b.tags.is_empty() {
            lines.push(Line::plain(format!("tags {}", b.tags.join(", "))));
        }
        match (&b.commit, traced.then_some(repo).flatten()) {
            (Some(c), Some(repo)) => lines.push(Line::linked(
                format!("commit {}", short_commit(c)),
                Link::Url(commit_url(&repo.to_string(), c)),
            )),
            (Some(c), None) => lines.push(Line::plain(format!("commit {}", short_commit(c)))),
            (None, _) => {}
        }
        if traced {
            if let Some(build) = &trace.build {
                if let Some(r) = &build.git_ref {
                    lines.push(Line::plain(format!("branch {r}")));
                }
                if let Some(ci) = &build.ci {
                    let text = match &ci.run_id {
                        Some(id) => format!("{} run {id}", ci.system),
                        None => ci.system.clone(),
                    };
                    lines.push(match &ci.url {
                        Some(url) => Line::linked(text, Link::Url(url.clone())),
                        None => Line::plain(text),
                    });
                }
            }
        }
        if let Some(at) = b.at {
            lines.push(Line::plain(format!("built {}", when(at))));
        }
        let warning = (!b.recorded).then(|| "no build record".to_string());
        if let Some(w) = &warning {
            lines.push(Line::plain(w.to_uppercase()));
        }
        g.nodes.push(Node {
            id: format!("build{i}"),
            kind: NodeKind::Build,
            lines,
            at: b.at,
            until: None,
            digest: Some(b.digest.clone()),
            env: None,
            current: running.contains(&b.digest.as_str()),
            traced,
            warning,
        });
    }
    let build_id = |digest: &str| {
        builds
            .iter()
            .position(|b| b.digest == digest)
            .map(|i| format!("build{i}"))
    };

    // Bases of the traced build.
    if let (Some(build), Some(traced)) = (&trace.build, build_id(&trace.digest)) {
        for (i, base) in build.bases.iter().enumerate() {
            let name = match &base.tag {
                Some(t) => format!("{}:{}", base.name, t),
                None => base.name.to_string(),
            };
            let mut lines = Vec::new();
            match &base.digest {
                Some(d) => {
                    let d = d.to_string();
                    lines.push(Line::linked(short_digest(&d), Link::Digest(d)));
                }
                None => lines.push(Line::plain("digest unknown")),
            }
            lines.push(Line::plain(name));
            if let Some(at) = base.pulled_at {
                lines.push(Line::plain(format!("pulled {}", when(at))));
            }
            let id = format!("base{i}");
            g.edges.push(Edge {
                from: id.clone(),
                to: traced.clone(),
                label: Some(if base.final_stage || build.bases.len() == 1 {
                    "FROM".into()
                } else {
                    "build stage".into()
                }),
            });
            g.nodes.push(Node {
                id,
                kind: NodeKind::Base,
                lines,
                at: base.pulled_at,
                until: None,
                digest: base.digest.as_ref().map(|d| d.to_string()),
                env: None,
                current: false,
                traced: false,
                warning: base
                    .digest
                    .is_none()
                    .then(|| "base digest unknown".to_string()),
            });
        }
    }

    // Placements, each from its build.
    for (i, p) in places.iter().enumerate() {
        let id = format!("place{i}");
        let mut lines = vec![
            Line::plain(&p.env),
            Line::linked(short_digest(&p.digest), Link::Digest(p.digest.clone())),
            Line::plain(format!("deployed {}", when(p.at))),
            Line::plain(format!("by {}", p.by)),
        ];
        if let Some(a) = &p.approved_by {
            lines.push(Line::plain(format!("approved by {a}")));
        }
        lines.push(Line::plain(match (p.state.as_str(), p.until) {
            ("running", _) => "RUNNING NOW".to_string(),
            (state, Some(until)) => format!("{state} {}", when(until)),
            (state, None) => state.to_string(),
        }));
        if let Some(w) = &p.warning {
            lines.push(Line::plain(w.to_uppercase()));
        }
        if let Some(from) = build_id(&p.digest) {
            g.edges.push(Edge {
                from,
                to: id.clone(),
                label: None,
            });
        }
        g.nodes.push(Node {
            id,
            kind: NodeKind::Placement,
            lines,
            at: Some(p.at),
            until: p.until,
            digest: Some(p.digest.clone()),
            env: Some(p.env.clone()),
            current: p.state == "running",
            traced: p.digest == trace.digest,
            warning: p.warning.clone(),
        });
    }
    g
}

fn warning(retired: Option<&str>, outcome: Option<&str>) -> Option<String> {
    match (retired, outcome) {
        (Some(reason), _) => Some(format!("retired: {reason}")),
        (None, Some(status @ ("failed" | "degraded"))) => Some(format!("outcome {status}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_link_to_their_forge() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        for (repo, want) in [
            (
                "https://github.com/acme/api",
                "https://github.com/acme/api/commit/",
            ),
            (
                "https://github.com/acme/api.git",
                "https://github.com/acme/api/commit/",
            ),
            (
                "https://gitlab.com/acme/group/api/",
                "https://gitlab.com/acme/group/api/-/commit/",
            ),
            (
                "https://gitlab.acme.dev/api",
                "https://gitlab.acme.dev/api/-/commit/",
            ),
            (
                "https://bitbucket.org/acme/api",
                "https://bitbucket.org/acme/api/commits/",
            ),
            (
                "https://git.acme.dev/api",
                "https://git.acme.dev/api/commit/",
            ),
        ] {
            assert_eq!(commit_url(repo, c), format!("{want}{c}"), "{repo}");
        }
    }

    #[test]
    fn only_lineage_paths_and_web_urls_are_links() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Link::Digest(d.clone()).href(),
            Some(format!("/digests/{d}"))
        );
        assert_eq!(
            Link::Service("api".into()).href().as_deref(),
            Some("/services/api")
        );
        assert_eq!(Link::Digest("javascript:alert(1)".into()).href(), None);
        assert_eq!(Link::Service("../../x".into()).href(), None);
        for bad in [
            "javascript:alert(1)",
            " JAVASCRIPT:alert(1)",
            "data:text/html,<b>x</b>",
            "//evil.example/x",
            "https://x\" onmouseover=\"alert(1)",
            "https://x/\u{202e}y",
        ] {
            assert_eq!(Link::Url(bad.into()).href(), None, "{bad}");
        }
        assert_eq!(
            Link::Url("https://ci.acme.dev/run/7".into())
                .href()
                .as_deref(),
            Some("https://ci.acme.dev/run/7")
        );
    }

    #[test]
    fn labels_lose_control_characters_and_stay_short() {
        assert_eq!(clean("main\u{1b}[2J\nx"), "main [2J x");
        assert_eq!(clean(&"x".repeat(200)).chars().count(), MAX_LINE);
        assert_eq!(
            short_digest(&format!("sha256:{}", "b".repeat(64))),
            format!("sha256:{}", "b".repeat(12))
        );
    }
}
