//! The lineage picture (issue 21, item 2) end to end: a ledger built through the real CLI,
//! `trace --format dot` drawn by the real Graphviz, `--format mermaid` checked for structure,
//! and the dashboard's service, digest and incident pages carrying an inline SVG that parses
//! as XML and names the right things. Hostile record text (a branch and a CI run id holding
//! markup, quotes and backslashes, a `javascript:` CI URL) must come out inert in every format.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lineage");
const NOW: &str = "2026-11-20T12:00:00Z";
const COMMIT_1: &str = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39";
const COMMIT_2: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807";
const SCRIPT: &str = "<script>alert(1)</script>";
/// A CI run id that would end a DOT string and start a Graphviz escape if not escaped.
const RUN_ID: &str = r#"7"]; evil [label="x\N"#;

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

/// `sha256:` and 12 hex digits, as the picture shows digests.
fn short(d: &str) -> String {
    d[..19].to_string()
}

struct World {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl World {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LINEAGE_STORE", self.dir.path().join("lineage.db"))
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "ops@acme.dev")
            .env("LINEAGE_KEY_PASSWORD", "correct horse battery staple");
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "lineage {args:?}\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r.stdout
    }
}

/// api: build 1 (hostile CI fields) deployed to staging and production, build 2 deployed to
/// staging only; a drill opened on build 1's base.
fn scenario() -> World {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(&[
        "service",
        "add",
        "api",
        "--owner",
        "priya@acme.dev",
        "--repo",
        "https://github.com/acme/api",
        "--image",
        "ghcr.io/acme/api",
    ]);
    let builds = [
        (
            "a1",
            "py1",
            COMMIT_1,
            "2026-11-10T14:00:00Z",
            SCRIPT,
            RUN_ID,
            "javascript:alert(1)",
        ),
        (
            "a2",
            "py2",
            COMMIT_2,
            "2026-11-14T14:00:00Z",
            "main",
            "8",
            "https://ci.acme.dev/runs/8",
        ),
    ];
    for (label, base, commit, at, branch, run_id, url) in builds {
        w.ok(&[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/api:{label}@{}", digest(label)),
            "--base",
            &format!("python:3.12-slim@{}", digest(base)),
            "--base-pulled-at",
            at,
            "--repo",
            "https://github.com/acme/api",
            "--branch",
            branch,
            "--commit",
            commit,
            "--finished-at",
            at,
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            run_id,
            "--ci-url",
            url,
        ]);
    }
    for (label, env, at) in [
        ("a1", "staging", "2026-11-11T10:00:00Z"),
        ("a1", "production", "2026-11-12T10:00:00Z"),
        ("a2", "staging", "2026-11-15T10:00:00Z"),
    ] {
        let image = format!("ghcr.io/acme/api@{}", digest(label));
        let mut args = vec![
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
            "--at",
            at,
        ];
        if env == "production" {
            args.extend(["--approved-by", "maya@acme.dev"]);
        }
        w.ok(&args);
    }
    let base = format!("python:3.12-slim@{}", digest("py1"));
    w.ok(&[
        "incident", "open", "--title", SCRIPT, "--base", &base, "--drill",
    ]);
    w
}

/// The text of every text node under `svg`, in document order.
fn texts(svg: &roxmltree::Document) -> Vec<String> {
    svg.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(str::to_string)
        .collect()
}

fn contains(texts: &[String], needle: &str) -> bool {
    texts.iter().any(|t| t.contains(needle))
}

/// Every `href` in the picture leads to a Lineage page or a plain web page.
fn assert_safe_links(doc: &roxmltree::Document, what: &str) {
    let mut seen = 0;
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            if a.name() == "href" {
                seen += 1;
                let v = a.value();
                assert!(
                    v.starts_with('/') && !v.starts_with("//")
                        || v.starts_with("https://")
                        || v.starts_with("http://"),
                    "{what}: unsafe link {v:?}"
                );
            }
        }
    }
    assert!(seen > 0, "{what}: the picture links nowhere");
}

#[test]
fn trace_as_dot_is_drawn_by_graphviz() {
    let dot = lineage_testkit::require("dot", "graphviz");
    let w = scenario();
    let text = w.ok(&["trace", "api", "--format", "dot"]);
    assert!(text.starts_with("digraph lineage {"), "{text}");
    // Quotes and backslashes in a record stay inside their label.
    assert!(text.contains(r#"7\"]; evil [label=\"x\\N"#), "{text}");
    assert!(!text.contains("javascript:"), "{text}");
    let path = w.dir.path().join("lineage.dot");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(dot).arg("-Tsvg").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "dot refused the graph: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("javascript:"), "{svg}");
    // Graphviz writes a DOCTYPE; roxmltree refuses DTDs unless asked.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).unwrap();
    let t = texts(&doc);
    for needle in [
        "service api".to_string(),
        "staging".into(),
        "production".into(),
        short(&digest("a1")),
        short(&digest("a2")),
        short(&digest("py1")),
        format!("commit {}", &COMMIT_1[..12]),
        "RUNNING NOW".into(),
        // The hostile text is shown as the text it is, whole: the escapes round-tripped.
        format!("branch {SCRIPT}"),
        format!("github-actions run {RUN_ID}"),
    ] {
        assert!(
            contains(&t, &needle),
            "Graphviz's SVG lacks {needle:?}: {t:#?}"
        );
    }
    // No node was injected: every node is one the picture declared.
    let nodes: BTreeSet<String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    assert!(!nodes.contains("evil"), "{nodes:?}");
    assert!(
        nodes
            .iter()
            .all(|n| ["base", "build", "place"].iter().any(|p| n.starts_with(p))),
        "{nodes:?}"
    );
    // Two environments reached by build 1, one by build 2; three placements in all.
    assert_eq!(nodes.iter().filter(|n| n.starts_with("place")).count(), 3);

    // `--server` cannot draw it (the API serves no history): refused, not a smaller picture.
    let r = w.run(&[
        "trace",
        "api",
        "--format",
        "mermaid",
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("does not run with `--server`"),
        "{}",
        r.stderr
    );
    // Other commands do not print pictures.
    let r = w.run(&["running", "--format", "dot"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn trace_as_mermaid_declares_every_node_it_links() {
    let w = scenario();
    let text = w.ok(&["trace", &digest("a1"), "--format", "mermaid"]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("flowchart LR"), "{text}");
    assert!(!text.contains('<'), "a raw `<` in Mermaid:\n{text}");
    assert!(!text.contains("javascript:"), "{text}");
    let mut declared = BTreeSet::new();
    let mut labels = Vec::new();
    let mut edges = Vec::new();
    for line in lines.map(str::trim) {
        if line.starts_with("%%") || line == "end" || line.starts_with("class") {
            continue;
        }
        let line = line.strip_prefix("subgraph ").unwrap_or(line);
        if let Some((id, rest)) = line.split_once("[\"") {
            let label = rest
                .strip_suffix("\"]")
                .unwrap_or_else(|| panic!("unterminated label: {line}"));
            assert!(!label.contains('"'), "a raw quote in a label: {line}");
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric()),
                "node id {id:?}"
            );
            declared.insert(id.to_string());
            labels.push(label.to_string());
        } else if let Some((from, to)) = line.split_once(" -->") {
            let to = match to.trim().strip_prefix("|\"") {
                Some(labelled) => {
                    let (label, to) = labelled.split_once("\"|").unwrap();
                    assert!(!label.contains('"'), "{line}");
                    to.trim()
                }
                None => to.trim(),
            };
            edges.push((from.trim().to_string(), to.to_string()));
        } else {
            panic!("a line that is neither a node, an edge nor a subgraph: {line:?}\n{text}");
        }
    }
    assert!(edges.len() >= 4, "{text}");
    for (from, to) in &edges {
        assert!(
            declared.contains(from) && declared.contains(to),
            "edge {from} --> {to} names an undeclared node:\n{text}"
        );
    }
    for needle in [
        "staging".to_string(),
        "production".into(),
        short(&digest("a1")),
        short(&digest("a2")),
        short(&digest("py1")),
        format!("commit {}", &COMMIT_1[..12]),
        format!("commit {}", &COMMIT_2[..12]),
        // Build 1's hostile fields, escaped for Mermaid.
        "branch #lt;script#gt;alert(1)#lt;/script#gt;".into(),
        "run 7#quot;]; evil [label=#quot;x\\N".into(),
    ] {
        assert!(
            labels.iter().any(|l| l.contains(&needle)),
            "no label holds {needle:?}:\n{text}"
        );
    }
}

/// A running `lineage serve --public-dashboard`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(w: &World) -> Server {
        let mut child = w
            .cmd(&[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--poll-interval",
                "100",
                "--public-dashboard",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("lineage serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from lineage serve: {line:?}"))
            .to_string();
        let s = Server { child, url };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.get("/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn get(&self, path: &str) -> (u16, String) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        match agent.get(&format!("{}{path}", self.url)).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's inline SVG with `class`, parsed.
fn svg_of(page: &str, class: &str, what: &str) -> String {
    let start = page
        .find(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{class}\""
        ))
        .unwrap_or_else(|| panic!("{what}: no {class} picture:\n{page}"));
    let end = page[start..].find("</svg>").unwrap() + start + "</svg>".len();
    page[start..end].to_string()
}

#[test]
fn dashboard_pages_draw_the_lineage_as_svg() {
    let w = scenario();
    let server = Server::start(&w);
    let pages = [
        // The service's picture is about what runs in production: build 1.
        ("/services/api".to_string(), "py1", COMMIT_1),
        (format!("/digests/{}", digest("a1")), "py1", COMMIT_1),
        (format!("/digests/{}", digest("a2")), "py2", COMMIT_2),
    ];
    for (path, base, commit) in &pages {
        let (status, page) = server.get(path);
        assert_eq!(status, 200, "{path}: {page}");
        assert!(!page.contains("<script"), "{path}: markup from a record");
        assert!(
            !page.contains("href=\"javascript:"),
            "{path}: a javascript: link"
        );
        let svg = svg_of(&page, "lineage", path);
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{path}: the SVG is not XML: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(!svg.contains("javascript:"), "{path}: {svg}");
        assert_safe_links(&doc, path);
        let t = texts(&doc);
        for needle in [
            short(&digest(base)),
            format!("commit {}", &commit[..12]),
            short(&digest("a1")),
            short(&digest("a2")),
            "staging".into(),
            "production".into(),
            "RUNNING NOW".into(),
            "service api".into(),
        ] {
            assert!(
                contains(&t, &needle),
                "{path}: the SVG lacks {needle:?}: {t:#?}"
            );
        }
        // Digests lead to their pages, the service to its page.
        for href in [
            format!("/digests/{}", digest("a1")),
            format!("/digests/{}", digest("a2")),
            format!("/digests/{}", digest(base)),
            "/services/api".to_string(),
        ] {
            assert!(
                svg.contains(&format!("href=\"{href}\"")),
                "{path}: no link to {href}"
            );
        }
    }
    // Build 1's hostile fields are in its picture as text, escaped, and its CI URL is no link.
    let (_, page) = server.get("/services/api");
    let svg = svg_of(&page, "lineage", "/services/api");
    assert!(svg.contains("&lt;script&gt;"), "{svg}");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(contains(&texts(&doc), &format!("branch {SCRIPT}")));
    assert!(
        contains(
            &texts(&doc),
            &format!("github-actions run {}", &RUN_ID[..6])
        ),
        "{svg}"
    );
    // Build 2's CI run is a plain https URL: a link.
    let (_, page) = server.get(&format!("/digests/{}", digest("a2")));
    assert!(
        page.contains("href=\"https://ci.acme.dev/runs/8\""),
        "no CI link"
    );

    // A base digest's page says who is built on it.
    let (status, page) = server.get(&format!("/digests/{}", digest("py1")));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("href=\"/services/api\""), "{page}");
    // A digest that is not one is refused, not drawn.
    let (status, page) = server.get("/digests/javascript:alert(1)");
    assert_eq!(status, 422, "{page}");
    assert!(
        !page.contains("<svg") && !page.contains("href=\"javascript"),
        "{page}"
    );

    // The incident page draws its timeline.
    let (status, page) = server.get("/incidents/1");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script"), "{page}");
    let svg = svg_of(&page, "timeline", "/incidents/1");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(contains(&texts(&doc), "opened"), "{svg}");
    assert!(contains(&texts(&doc), "+0s"), "{svg}");
}

/// An identity cannot carry markup at all: it is refused when typed, so owners and deployers
/// reach a picture only as checked names.
#[test]
fn markup_in_an_identity_is_refused_at_input() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    for args in [
        vec![
            "service",
            "add",
            "web",
            "--owner",
            SCRIPT,
            "--image",
            "ghcr.io/acme/web",
        ],
        vec![
            "deploy",
            "record",
            "--image",
            "ghcr.io/acme/web@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "--env",
            "staging",
            "--by",
            "<script>alert(1)</script>@acme.dev",
        ],
    ] {
        let r = w.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("contains `<`"), "{}", r.stderr);
    }
}
