//! Core on its own: the use cases driven against the real SQLite store, data-driven.
//!
//! Each case is one text: a fleet described line by line, then questions (`? trace api`),
//! and `check` compares the answers, rendered as compact text by this file (core renders
//! nothing), with an `expect!` block (`UPDATE_EXPECT=1` rewrites them).
//!
//! The fleet's lines, written through core's own use cases (`services::add`, `record::build`,
//! `record::deploy`, `placements::end`, `observe::parse` + `observe::record`, facts):
//!
//! ```text
//! day 3                                    the clock: 2026-11-01 plus 3 days (it starts at day 0)
//! service api [owner=priya] [backup=jonas] image ghcr.io/acme/api
//! build api a [base=python:3.12-slim@b] [stage=golang:1.22@g] [commit=1] [tag=1.0] [builder=ci]
//! deploy api a production [by=jonas] [approved=maya] [rollback]
//! retire a [reason…]                       a retirement of digest a
//! gate a failed                            a failed build-gate result for digest a
//! outcome api staging a failed|degraded|healthy
//! end api staging                          the placement ends (`deploy end`)
//! observe stage-1 staging api@a web@c      one complete inventory batch of source stage-1
//! ```
//!
//! A digest is one hex character standing for 64 of it (`a` is `sha256:aaaa…`), a commit one
//! standing for 40; a name `jonas` is `jonas@acme.dev`. Answers print them back the same way,
//! and times as `dN` (days since day 0). In questions, `%a` is the digest `sha256:aaaa…`.
//!
//! Questions: `trace QUERY`, `affected BASE`, `running [ENV]`, `fleet`, `stale`,
//! `history SERVICE`, `drift`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use expect_test::{expect, Expect};
use lineage_core::drift::DriftOptions;
use lineage_core::fleet::{FleetFilter, Scans};
use lineage_core::freshness::{StaleOptions, StaleReport};
use lineage_core::lifecycle::HistoryReport;
use lineage_core::observe::{InputFormat, ObserveOptions, ObservedState};
use lineage_core::query::{AffectedReport, Placement, RunningReport, TraceReport, View};
use lineage_core::{freshness, gate, lifecycle, placements, provenance, record, services, Config};
use lineage_model::{
    Attestation, BaseImage, BuildRecord, CheckResult, CommitId, DeployOutcome, DeployRecord,
    Digest, EnvName, Exception, Identity, OutcomeStatus, Record, Repository, Retirement, Service,
    ServiceName, Tag, Timestamp,
};
use lineage_store::{Store, StoreLocation};

/// Day 0 of every case.
const START: &str = "2026-11-01T00:00:00Z";

fn digest(c: &str) -> Digest {
    assert_eq!(c.len(), 1, "a digest is one hex character: `{c}`");
    Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap()
}

fn id(name: &str) -> Identity {
    Identity::parse(&format!("{name}@acme.dev")).unwrap()
}

fn image(service: &str) -> Repository {
    Repository::parse(&format!("ghcr.io/acme/{service}")).unwrap()
}

/// `python:3.12-slim@b` as a base.
fn base(text: &str, final_stage: bool, at: Timestamp) -> BaseImage {
    let (name, d) = text.split_once('@').expect("a base is NAME:TAG@DIGEST");
    let (name, tag) = match name.rsplit_once(':') {
        Some((n, t)) => (n, Some(Tag::parse(t).unwrap())),
        None => (name, None),
    };
    BaseImage {
        name: Repository::parse(name).unwrap(),
        tag,
        digest: Some(digest(d)),
        pulled_at: Some(at),
        final_stage,
    }
}

/// A ledger in a temporary directory, written and asked through core's use cases.
struct World {
    _dir: tempfile::TempDir,
    store: Box<dyn Store>,
    config: Config,
    now: Timestamp,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = lineage_store::open(&StoreLocation::Sqlite(dir.path().join("ledger.db")), true)
            .unwrap();
        World {
            _dir: dir,
            store,
            config: Config::default(),
            now: Timestamp::parse(START).unwrap(),
        }
    }

    fn s(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Writes one line of a fleet description.
    fn apply(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (flags, plain): (Vec<&str>, Vec<&str>) =
            words[1..].iter().partition(|w| w.contains('='));
        let flags: BTreeMap<&str, &str> =
            flags.iter().map(|f| f.split_once('=').unwrap()).collect();
        let now = self.now;
        match words[0] {
            "day" => {
                let days: i64 = plain[0].parse().unwrap();
                self.now =
                    Timestamp::from_unix(Timestamp::parse(START).unwrap().unix() + days * 86_400);
            }
            "service" => {
                let service = Service {
                    name: ServiceName::parse(plain[0]).unwrap(),
                    owner: flags.get("owner").map(|o| id(o)),
                    backup_owner: flags.get("backup").map(|o| id(o)),
                    emergency_approver: None,
                    source_repo: None,
                    images: vec![image(plain[0])],
                };
                services::add(self.s(), service, id("ops"), now).unwrap();
            }
            "build" => {
                let mut bases = Vec::new();
                if let Some(b) = flags.get("stage") {
                    bases.push(base(b, false, now));
                }
                if let Some(b) = flags.get("base") {
                    bases.push(base(b, true, now));
                }
                let build = BuildRecord {
                    service: ServiceName::parse(plain[0]).unwrap(),
                    image: image(plain[0]),
                    digest: digest(plain[1]),
                    tags: flags
                        .get("tag")
                        .map(|t| Tag::parse(t).unwrap())
                        .into_iter()
                        .collect(),
                    bases,
                    source_repo: None,
                    git_ref: None,
                    commit: flags
                        .get("commit")
                        .map(|c| CommitId::parse(&c.repeat(40)).unwrap()),
                    started_at: None,
                    finished_at: Some(now),
                    ci: None,
                    builder: flags.get("builder").map(|b| id(b)),
                    platform: None,
                    dockerfile: None,
                };
                record::build(self.s(), build, now, None).unwrap();
            }
            "deploy" => {
                let deploy = DeployRecord {
                    config: Vec::new(),
                    service: ServiceName::parse(plain[0]).unwrap(),
                    image: image(plain[0]),
                    digest: digest(plain[1]),
                    env: EnvName::parse(plain[2]).unwrap(),
                    by: id(flags.get("by").unwrap_or(&"jonas")),
                    approved_by: flags.get("approved").map(|a| id(a)),
                    ticket: None,
                    at: now,
                    rollback: plain.get(3) == Some(&"rollback"),
                };
                record::deploy(self.s(), deploy, now, None).unwrap();
            }
            "retire" => {
                let reason = if plain.len() > 1 {
                    plain[1..].join(" ")
                } else {
                    "retired".into()
                };
                self.fact(Record::Retire(Retirement {
                    digest: digest(plain[0]),
                    reason,
                    by: id("sec"),
                    at: now,
                }));
            }
            "gate" => {
                assert_eq!(plain[1], "failed", "only failed gates are written: {line}");
                self.fact(Record::Check(CheckResult {
                    digest: digest(plain[0]),
                    gate: "build".into(),
                    passed: false,
                    failed_rules: vec!["B001".into()],
                    allowed_failures: true,
                    by: None,
                    at: now,
                }));
            }
            "outcome" => {
                self.fact(Record::Outcome(DeployOutcome {
                    service: ServiceName::parse(plain[0]).unwrap(),
                    env: EnvName::parse(plain[1]).unwrap(),
                    digest: digest(plain[2]),
                    status: OutcomeStatus::parse(plain[3]).unwrap(),
                    detail: None,
                    by: id("sre"),
                    at: now,
                }));
            }
            "end" => {
                let config = self.config.clone();
                let input = placements::EndInput {
                    service: ServiceName::parse(plain[0]).unwrap(),
                    env: plain[1].into(),
                    by: id("jonas"),
                    reason: Some("moved".into()),
                };
                placements::end(self.s(), &config, input, None, now)
                    .unwrap()
                    .expect("something runs there");
            }
            "observe" => {
                let mut csv = String::new();
                for item in &plain[2..] {
                    let (service, d) = item.split_once('@').unwrap();
                    writeln!(csv, "{},{}@{}", plain[1], image(service), digest(d)).unwrap();
                }
                let config = self.config.clone();
                let namespaces = BTreeMap::new();
                let parsed = lineage_core::observe::parse(
                    &csv,
                    &ObserveOptions {
                        source: plain[0].into(),
                        format: Some(InputFormat::Csv),
                        namespaces: &namespaces,
                        config: &config,
                        seen_at: now,
                        by: Identity::parse("sa:observer").unwrap(),
                        name: "inventory.csv".into(),
                    },
                )
                .unwrap();
                lineage_core::observe::record(self.s(), parsed, now).unwrap();
            }
            other => panic!("unknown line `{other}`: {line}"),
        }
    }

    fn fact(&mut self, record: Record) {
        let now = self.now;
        self.s().record_facts(&[record], now, None).unwrap();
    }

    /// Answers one question as text.
    fn ask(&self, question: &str) -> String {
        let words: Vec<String> = question.split_whitespace().map(expand).collect();
        let store = self.store.as_ref();
        let config = &self.config;
        let view = View {
            now: Some(self.now),
            observed_only: false,
        };
        match words[0].as_str() {
            "trace" => {
                match lineage_core::query::trace_with(store, config, &words[1], &view).unwrap() {
                    Some(r) => render_trace(&r),
                    None => "nothing found\n".into(),
                }
            }
            "affected" => render_affected(
                &lineage_core::query::affected_by(store, config, &words[1], &view).unwrap(),
            ),
            "running" => {
                let env = words.get(1).map(|e| EnvName::parse(e).unwrap());
                render_running(
                    &lineage_core::query::running_with(store, config, env.as_ref(), &view).unwrap(),
                )
            }
            "history" => {
                let service = ServiceName::parse(&words[1]).unwrap();
                match lineage_core::lifecycle::history(store, config, &service, None).unwrap() {
                    Some(r) => render_history(&r),
                    None => "nothing found\n".into(),
                }
            }
            "stale" => render_stale(
                &lineage_core::freshness::stale(store, config, &StaleOptions::default(), self.now)
                    .unwrap(),
            ),
            "drift" => render_drift(
                &lineage_core::drift::drift(store, config, &DriftOptions::default(), self.now)
                    .unwrap(),
            ),
            "fleet" => self.fleet(),
            other => panic!("unknown question `{other}`"),
        }
    }

    /// The fleet view as the dashboard asks for it, with no trusted keys.
    fn fleet(&self) -> String {
        let store = self.store.as_ref();
        let trust = lineage_attest::trust::TrustPolicy::default();
        let mut envs: Vec<Option<EnvName>> =
            self.config.environments.iter().cloned().map(Some).collect();
        envs.push(None);
        let mut facts = |d: &Digest| gate::digest_facts(store, &trust, &envs, d).map(Arc::new);
        let view = lineage_core::fleet::fleet(
            store,
            &self.config,
            &DriftOptions::default(),
            &FleetFilter::default(),
            &mut facts,
            self.now,
        )
        .unwrap();
        let mut out = String::new();
        let counts: Vec<String> = view
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        writeln!(
            out,
            "services {}, clear {}, unjudged {}",
            view.services, view.clear, view.unjudged
        )
        .unwrap();
        writeln!(out, "counts: {}", counts.join(", ")).unwrap();
        for row in &view.rows {
            let cells: Vec<String> = view
                .envs
                .iter()
                .zip(&row.cells)
                .filter_map(|(env, c)| c.as_ref().map(|c| format!("{env}={}", c.deploy.digest)))
                .collect();
            let scans = match &row.scans {
                Scans::NothingRuns => "nothing runs".to_string(),
                Scans::Findings { critical, high } => format!("{critical} critical {high} high"),
                Scans::Clean => "clean".into(),
                Scans::Unknown { reason } => format!("unknown ({reason})"),
            };
            writeln!(
                out,
                "{} [{}] scans: {scans}",
                row.service.name,
                cells.join(" ")
            )
            .unwrap();
            for f in &row.findings {
                let prod = if f.production { " (production)" } else { "" };
                writeln!(out, "  {}{prod}: {}", f.risk.as_str(), f.text).unwrap();
            }
        }
        tidy(&out)
    }
}

/// `%a` in a question is the digest `sha256:aaaa…`.
fn expand(word: &str) -> String {
    match word.strip_prefix('%') {
        Some(c) => digest(c).to_string(),
        None => word.to_string(),
    }
}

/// Days since day 0 (`d3`), with the time when not midnight.
fn day(t: Timestamp) -> String {
    let secs = t.unix() - Timestamp::parse(START).unwrap().unix();
    match secs % 86_400 {
        0 => format!("d{}", secs / 86_400),
        rest => format!("d{}+{rest}s", secs / 86_400),
    }
}

/// Writes digests, commits and identities back in the cases' short forms.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let after = &rest[i + 7..];
        let run = after.chars().take(64).collect::<String>();
        let first = run.chars().next();
        if run.len() == 64 && first.is_some_and(|f| run.chars().all(|c| c == f)) {
            out.push_str(&rest[..i]);
            out.push(first.unwrap());
            rest = &after[64..];
        } else {
            out.push_str(&rest[..i + 7]);
            rest = after;
        }
    }
    out.push_str(rest);
    // Commits: forty of one hex character.
    let mut text = out;
    for c in "0123456789abcdef".chars() {
        text = text.replace(&c.to_string().repeat(40), &c.to_string());
    }
    text.replace("@acme.dev", "")
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

fn observed(o: &Option<ObservedState>) -> String {
    o.as_ref()
        .map(|o| format!(" {}", o.status))
        .unwrap_or_default()
}

fn placement(p: &Placement) -> String {
    let mut s = format!(
        "{} {} {} by={} approved={} commit={} base={}",
        p.env,
        p.digest,
        day(p.since),
        p.deployed_by,
        opt(&p.approved_by),
        opt(&p.commit),
        opt(&p.base_digest)
    );
    s.push_str(&observed(&p.observed));
    if let Some(o) = &p.outcome {
        write!(s, " outcome={}", o.status).unwrap();
    }
    if let Some(r) = &p.retired {
        write!(s, " retired=({})", r.reason).unwrap();
    }
    s
}

fn render_trace(r: &TraceReport) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{} {}@{} owner={} backup={}",
        r.service,
        r.image,
        r.digest,
        opt(&r.owners.owner),
        opt(&r.owners.backup_owner)
    )
    .unwrap();
    match &r.build {
        Some(b) => {
            let bases: Vec<String> = b
                .bases
                .iter()
                .map(|b| {
                    format!(
                        "{}:{}@{}{}",
                        b.name,
                        b.tag.as_ref().map_or("-", |t| t.as_str()),
                        b.digest.as_ref().map_or("-".into(), |d| d.to_string()),
                        if b.final_stage { "" } else { " (build stage)" }
                    )
                })
                .collect();
            writeln!(
                out,
                "build: commit={} bases=[{}]",
                b.commit.as_ref().map_or("-".into(), |c| c.to_string()),
                bases.join(", ")
            )
            .unwrap();
        }
        None => writeln!(out, "build: none recorded").unwrap(),
    }
    for p in &r.running {
        writeln!(out, "running: {}", placement(p)).unwrap();
    }
    for p in &r.elsewhere {
        writeln!(out, "elsewhere: {}", placement(p)).unwrap();
    }
    for b in &r.previous {
        writeln!(
            out,
            "previous: {} tags=[{}] commit={}",
            b.digest,
            b.tags.join(","),
            opt(&b.commit)
        )
        .unwrap();
    }
    if let Some(m) = &r.retired {
        writeln!(out, "retired: {} by {} at {}", m.reason, m.by, day(m.at)).unwrap();
    }
    tidy(&out)
}

fn render_affected(r: &AffectedReport) -> String {
    let mut out = String::new();
    writeln!(out, "base {}", r.base).unwrap();
    for s in &r.services {
        writeln!(
            out,
            "{} owner={} backup={} builds={} latest={} commit={} bases=[{}]{}",
            s.service,
            opt(&s.owners.owner),
            opt(&s.owners.backup_owner),
            s.builds,
            s.latest_digest,
            opt(&s.latest_commit),
            s.bases.join(", "),
            if s.build_stage_only {
                " build-stage-only"
            } else {
                ""
            }
        )
        .unwrap();
        for p in &s.running {
            writeln!(out, "  {}", placement(p)).unwrap();
        }
    }
    tidy(&out)
}

fn render_running(r: &RunningReport) -> String {
    let mut out = String::new();
    for row in &r.rows {
        writeln!(
            out,
            "{} {} owner={}",
            row.service,
            placement(&row.placement),
            opt(&row.owner)
        )
        .unwrap();
    }
    if r.rows.is_empty() {
        out.push_str("nothing runs\n");
    }
    tidy(&out)
}

fn render_history(r: &HistoryReport) -> String {
    let mut out = String::new();
    for h in &r.rows {
        write!(
            out,
            "{} {} {} by={} approved={} commit={} {}",
            h.env,
            h.digest,
            day(h.at),
            h.by,
            opt(&h.approved_by),
            opt(&h.commit),
            h.state
        )
        .unwrap();
        if let Some(u) = h.until {
            write!(out, " until={}", day(u)).unwrap();
        }
        if h.rollback {
            out.push_str(" rollback");
        }
        if let Some(o) = &h.outcome {
            write!(out, " outcome={}", o.status).unwrap();
        }
        if let Some(r) = &h.retired {
            write!(out, " retired=({})", r.reason).unwrap();
        }
        out.push('\n');
    }
    tidy(&out)
}

fn render_stale(r: &StaleReport) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "up to date {}, below min days {}, fails {}",
        r.up_to_date, r.below_min_days, r.fails
    )
    .unwrap();
    for row in &r.rows {
        writeln!(
            out,
            "{} {} {} base={} {:?} running={} newest={} days={} digests={} since={} source={} owner={} rebuilt={}{}",
            row.env,
            row.service,
            row.digest,
            row.base,
            row.stage,
            row.running_base_digest,
            row.newest_base_digest,
            row.days_behind,
            row.digests_behind,
            day(row.behind_since),
            row.source.join("+"),
            opt(&row.owner),
            opt(&row.rebuilt),
            row.retired.as_ref().map_or(String::new(), |m| format!(" retired=({})", m.reason)),
        )
        .unwrap();
    }
    for n in &r.not_assessed {
        writeln!(
            out,
            "not assessed: {} {} {}: {}",
            n.env, n.service, n.digest, n.reason
        )
        .unwrap();
    }
    for b in &r.bases {
        writeln!(
            out,
            "base {} newest={} first seen={} known={} refreshed={}",
            b.base,
            b.newest_digest,
            day(b.newest_first_seen),
            b.digests_known,
            b.last_refresh.map_or("never".into(), day)
        )
        .unwrap();
    }
    tidy(&out)
}

fn render_drift(r: &lineage_core::drift::DriftReport) -> String {
    let mut out = String::new();
    for s in &r.sources {
        writeln!(
            out,
            "source {} at {} complete={} envs={}",
            s.source,
            day(s.at),
            s.complete,
            s.envs.join(",")
        )
        .unwrap();
    }
    if !r.unwatched.is_empty() {
        writeln!(out, "unwatched: {}", r.unwatched.join(", ")).unwrap();
    }
    for i in &r.items {
        writeln!(
            out,
            "{} {} {} {} recorded={} observed={}: {}",
            i.kind,
            i.service.as_deref().unwrap_or("-"),
            i.env,
            i.digest,
            i.recorded.as_ref().map_or("-", |x| x.digest.as_str()),
            i.observed.status,
            i.message
        )
        .unwrap();
    }
    let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(out, "counts: {}", counts.join(", ")).unwrap();
    tidy(&out)
}

/// Builds the fleet from `input`'s lines, asks its `?` questions in order, and compares the
/// answers, each under its question, with `expect`.
fn check(input: &str, expect: Expect) {
    let mut world = World::new();
    let mut out = String::new();
    for line in input.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix('?') {
            Some(question) => {
                let question = question.trim();
                writeln!(out, "? {question}").unwrap();
                out.push_str(&world.ask(question));
            }
            None => world.apply(line),
        }
    }
    expect.assert_eq(&out);
}

#[test]
fn trace_answers_for_a_service_a_digest_and_a_tag() {
    check(
        r"
        service api owner=priya backup=jonas
        build api a base=python:3.12-slim@b stage=golang:1.22@9 commit=1 tag=1.0
        deploy api a staging
        deploy api a production approved=maya
        day 2
        build api e base=python:3.12-slim@b commit=2 tag=1.1
        deploy api e staging
        retire a CVE-2026-1
        ? trace api
        ? trace %e
        ? trace ghcr.io/acme/api:1.0
        ? trace %7
        ",
        expect![[r#"
            ? trace api
            api ghcr.io/acme/api@a owner=priya backup=jonas
            build: commit=1 bases=[docker.io/library/golang:1.22@9 (build stage), docker.io/library/python:3.12-slim@b]
            running: production a d0 by=jonas approved=maya commit=1 base=b retired=(CVE-2026-1)
            elsewhere: staging e d2 by=jonas approved=- commit=2 base=b
            previous: e tags=[1.1] commit=2
            retired: CVE-2026-1 by sec at d2
            ? trace %e
            api ghcr.io/acme/api@e owner=priya backup=jonas
            build: commit=2 bases=[docker.io/library/python:3.12-slim@b]
            running: staging e d2 by=jonas approved=- commit=2 base=b
            elsewhere: production a d0 by=jonas approved=maya commit=1 base=b retired=(CVE-2026-1)
            previous: a tags=[1.0] commit=1
            ? trace ghcr.io/acme/api:1.0
            api ghcr.io/acme/api@a owner=priya backup=jonas
            build: commit=1 bases=[docker.io/library/golang:1.22@9 (build stage), docker.io/library/python:3.12-slim@b]
            running: production a d0 by=jonas approved=maya commit=1 base=b retired=(CVE-2026-1)
            elsewhere: staging e d2 by=jonas approved=- commit=2 base=b
            previous: e tags=[1.1] commit=2
            retired: CVE-2026-1 by sec at d2
            ? trace %7
            nothing found
        "#]],
    );
}

#[test]
fn affected_lists_production_first_with_owners() {
    check(
        r"
        service api owner=priya backup=jonas
        service web owner=maya
        service batch
        service tools owner=ops
        build api a base=python:3.12-slim@b commit=1
        deploy api a staging
        deploy api a production approved=maya
        build web c base=python:3.12-slim@b commit=2
        deploy web c staging
        build batch d base=python:3.11@8 commit=3
        deploy batch d production approved=maya
        build tools 7 base=alpine:3.20@6 stage=python:3.12-slim@b commit=4
        deploy tools 7 dev
        ? affected %b
        ? affected python:3.12-slim
        ? affected python
        ? affected %5
        ",
        expect![[r#"
            ? affected %b
            base b
            api owner=priya backup=jonas builds=1 latest=a commit=1 bases=[docker.io/library/python:3.12-slim@b]
              production a d0 by=jonas approved=maya commit=1 base=b
              staging a d0 by=jonas approved=- commit=1 base=b
            web owner=maya backup=- builds=1 latest=c commit=2 bases=[docker.io/library/python:3.12-slim@b]
              staging c d0 by=jonas approved=- commit=2 base=b
            tools owner=ops backup=- builds=1 latest=7 commit=4 bases=[docker.io/library/python:3.12-slim@b] build-stage-only
              dev 7 d0 by=jonas approved=- commit=4 base=6
            ? affected python:3.12-slim
            base docker.io/library/python:3.12-slim
            api owner=priya backup=jonas builds=1 latest=a commit=1 bases=[docker.io/library/python:3.12-slim@b]
              production a d0 by=jonas approved=maya commit=1 base=b
              staging a d0 by=jonas approved=- commit=1 base=b
            web owner=maya backup=- builds=1 latest=c commit=2 bases=[docker.io/library/python:3.12-slim@b]
              staging c d0 by=jonas approved=- commit=2 base=b
            tools owner=ops backup=- builds=1 latest=7 commit=4 bases=[docker.io/library/python:3.12-slim@b] build-stage-only
              dev 7 d0 by=jonas approved=- commit=4 base=6
            ? affected python
            base docker.io/library/python
            api owner=priya backup=jonas builds=1 latest=a commit=1 bases=[docker.io/library/python:3.12-slim@b]
              production a d0 by=jonas approved=maya commit=1 base=b
              staging a d0 by=jonas approved=- commit=1 base=b
            batch owner=- backup=- builds=1 latest=d commit=3 bases=[docker.io/library/python:3.11@8]
              production d d0 by=jonas approved=maya commit=3 base=8
            web owner=maya backup=- builds=1 latest=c commit=2 bases=[docker.io/library/python:3.12-slim@b]
              staging c d0 by=jonas approved=- commit=2 base=b
            tools owner=ops backup=- builds=1 latest=7 commit=4 bases=[docker.io/library/python:3.12-slim@b] build-stage-only
              dev 7 d0 by=jonas approved=- commit=4 base=6
            ? affected %5
            base 5
        "#]],
    );
}

#[test]
fn running_shows_what_runs_where_and_not_what_ended() {
    check(
        r"
        service api owner=priya
        service web
        build api a base=python:3.12-slim@b commit=1
        deploy api a dev
        deploy api a production approved=maya
        build web c commit=2
        deploy web c staging by=maya
        day 1
        end api dev
        ? running
        ? running production
        ? running dev
        ",
        expect![[r#"
            ? running
            api production a d0 by=jonas approved=maya commit=1 base=b owner=priya
            web staging c d0 by=maya approved=- commit=2 base=- owner=-
            ? running production
            api production a d0 by=jonas approved=maya commit=1 base=b owner=priya
            ? running dev
            nothing runs
        "#]],
    );
}

#[test]
fn history_shows_replaced_ended_rolled_back_and_outcomes() {
    check(
        r"
        service api owner=priya
        build api a commit=1
        deploy api a production approved=maya
        day 1
        build api e commit=2
        deploy api e production approved=maya
        outcome api production e failed
        day 2
        deploy api a production approved=maya rollback
        deploy api a staging
        day 3
        end api staging
        ? history api
        ? trace api
        ",
        expect![[r#"
            ? history api
            production a d2 by=jonas approved=maya commit=1 running rollback
            staging a d2 by=jonas approved=- commit=1 ended until=d3
            production e d1 by=jonas approved=maya commit=2 replaced until=d2 outcome=failed
            production a d0 by=jonas approved=maya commit=1 replaced until=d1
            ? trace api
            api ghcr.io/acme/api@a owner=priya backup=-
            build: commit=1 bases=[]
            running: production a d2 by=jonas approved=maya commit=1 base=-
            previous: e tags=[] commit=2
        "#]],
    );
}

#[test]
fn stale_reports_a_base_behind_a_later_build_of_the_same_tag() {
    check(
        r"
        service api owner=priya backup=jonas
        service web owner=maya
        service old
        build api a base=python:3.12-slim@b commit=1
        deploy api a production approved=maya
        build web c base=python:3.12-slim@b commit=2
        deploy web c staging
        build old 5 commit=5
        deploy old 5 staging
        day 3
        build web d base=python:3.12-slim@9 commit=2
        day 10
        ? stale
        ",
        expect![[r#"
            ? stale
            up to date 0, below min days 0, fails false
            production api a base=docker.io/library/python:3.12-slim Final running=b newest=9 days=7 digests=1 since=d3 source=build owner=priya rebuilt=-
            staging web c base=docker.io/library/python:3.12-slim Final running=b newest=9 days=7 digests=1 since=d3 source=build owner=maya rebuilt=d
            not assessed: staging old 5: the build records no base image
            base docker.io/library/python:3.12-slim newest=9 first seen=d3 known=2 refreshed=never
        "#]],
    );
}

#[test]
fn drift_compares_recorded_with_observed() {
    check(
        r"
        service api owner=priya
        service web owner=maya
        service worker
        build api a commit=1
        build web c commit=3
        deploy web c staging
        build worker 4 commit=4
        day 1
        build api e commit=2
        deploy api e staging
        retire 4 bad
        observe stage-1 staging api@a worker@4 web@7
        ? drift
        ? running staging
        ",
        expect![[r#"
            ? drift
            source stage-1 at d1 complete=true envs=staging
            older-than-recorded api staging a recorded=e observed=observed: `api` runs `a` in `staging`, built before the recorded `e` (a rollback nobody recorded)
            observed-not-recorded web staging 7 recorded=c observed=observed: `web` runs `7` in `staging`, but `c` is recorded there
            no-build-record web staging 7 recorded=c observed=observed: `ghcr.io/acme/web@7` runs in `staging` but no build record describes it, so its source and base are unknown
            observed-not-recorded worker staging 4 recorded=- observed=observed: `worker` runs `4` in `staging`, where no deploy of it is recorded
            retired worker staging 4 recorded=- observed=observed: `ghcr.io/acme/worker@4` runs in `staging` but is retired
            counts: no-build-record 1, observed-not-recorded 2, older-than-recorded 1, recorded-not-observed 0, retired 1
            ? running staging
            api staging e d1 by=jonas approved=- commit=2 base=- never_observed owner=priya
            web staging c d0 by=jonas approved=- commit=3 base=- never_observed owner=maya
        "#]],
    );
}

#[test]
fn the_fleet_marks_every_risk_it_can_without_keys_and_counts_them() {
    check(
        r"
        service unapproved owner=priya
        service selfie owner=priya
        service nobuild owner=maya
        service failed owner=maya
        service retired
        service outcome
        service drift
        service stale
        service clean owner=priya
        build unapproved 1 commit=1
        deploy unapproved 1 production
        build selfie 2 commit=2
        deploy selfie 2 production by=jonas approved=jonas
        deploy nobuild 3 staging
        build failed 4 commit=4
        gate 4 failed
        deploy failed 4 staging
        build retired 5 commit=5
        deploy retired 5 staging
        retire 5 CVE-2026-1
        build outcome 6 commit=6
        deploy outcome 6 staging
        outcome outcome staging 6 degraded
        build drift 7 commit=7
        deploy drift 7 staging
        build stale 8 base=python:3.12-slim@b commit=8
        deploy stale 8 staging
        build clean 0 commit=0
        deploy clean 0 staging
        day 4
        build stale f base=python:3.12-slim@9 commit=f
        day 10
        observe stage-1 staging nobuild@3 failed@4 retired@5 outcome@6 drift@d stale@8 clean@0
        ? fleet
        ",
        expect![[r#"
            ? fleet
            services 9, clear 1, unjudged true
            counts: unapproved 1, self_approved 1, no_build 1, failed_gate 1, retired 1, bad_outcome 1, drift 3, stale_base 1
            selfie [production=2] scans: unknown (production: never scanned)
              self_approved (production): production: self-approved
            unapproved [production=1] scans: unknown (production: never scanned)
              unapproved (production): production: deployed without approval
            drift [staging=7] scans: unknown (staging: never scanned)
              drift: staging: drift (observed-not-recorded)
              drift: staging: drift (no-build-record)
            nobuild [staging=3] scans: unknown (staging: never scanned)
              no_build: staging: no build record
              drift: staging: drift (no-build-record)
            retired [staging=5] scans: unknown (staging: never scanned)
              retired: staging: retired digest running
              drift: staging: drift (retired)
            failed [staging=4] scans: unknown (staging: never scanned)
              failed_gate: staging: build failed its gate
            outcome [staging=6] scans: unknown (staging: never scanned)
              bad_outcome: staging: deploy degraded
            stale [staging=8] scans: unknown (staging: never scanned)
              stale_base: base 6 days behind its tag
            clean [staging=0] scans: unknown (staging: never scanned)
        "#]],
    );
}

/// ARCHITECTURE.md, "core renders nothing": use cases return report values and the front ends
/// present them, so core's program code (up to its unit tests) draws no HTML, Markdown or Slack
/// message, defines no renderer and prints nothing, and its manifest names no template crate.
#[test]
fn core_renders_nothing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Tags, matched as written (`Vec<Trivy…>` is not a `<tr>`), and words, in any case.
    let tags = [
        "<html", "<table", "<tr>", "<tr ", "<td>", "<td ", "<th>", "<li>", "<ul>", "<p>", "<h1>",
        "<h2>", "<code", "<a href", "<br",
    ];
    let words = [
        "<!doctype",
        "html_escape",
        "markdown",
        "md_cell",
        "slack",
        "mrkdwn",
        "fn render",
        "print!(",
        "println!(",
        "eprintln!(",
        "std::io::stdout",
        "std::io::stderr",
    ];
    let mut found = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for (n, line) in code.lines().enumerate() {
                    let line = line.trim();
                    if line.starts_with("//") {
                        continue;
                    }
                    let lower = line.to_lowercase();
                    let hit = tags.iter().find(|t| line.contains(*t));
                    if let Some(f) = hit.or_else(|| words.iter().find(|w| lower.contains(*w))) {
                        found.push(format!("{}:{}: `{f}`: {line}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for name in [
        "maud",
        "askama",
        "tera",
        "handlebars",
        "minijinja",
        "pulldown-cmark",
    ] {
        if manifest
            .lines()
            .any(|l| l.split(['=', ' ', '.']).next() == Some(name))
        {
            found.push(format!("Cargo.toml names `{name}`"));
        }
    }
    assert!(
        found.is_empty(),
        "core renders; move it to the front end (crates/lineage or lineage-server):\n{}",
        found.join("\n")
    );
}

/// `base add`: a base is written once; the same name, tag, digest and layers again write
/// nothing; new layers for the same digest are a new fact. The rule is the one
/// `--from-registry` uses (`detect::already_known`).
#[test]
fn base_add_writes_a_base_once() {
    use lineage_core::detect::{add_base, BaseAdded};
    let mut w = World::new();
    let now = w.now;
    let seen = lineage_model::BaseSeen {
        name: Repository::parse("python").unwrap(),
        tag: Some(Tag::parse("3.12-slim").unwrap()),
        digest: digest("b"),
        layers: vec![digest("1"), digest("2")],
        created: None,
        seen_at: now,
    };
    let first = add_base(w.s(), &seen, &id("maya"), now).unwrap();
    let BaseAdded::Recorded(index) = first else {
        panic!("{first:?}");
    };
    assert_eq!(
        add_base(w.s(), &seen, &id("maya"), now).unwrap(),
        BaseAdded::Unchanged(index)
    );
    let unread = lineage_model::BaseSeen {
        layers: Vec::new(),
        ..seen.clone()
    };
    assert_eq!(
        add_base(w.s(), &unread, &id("maya"), now).unwrap(),
        BaseAdded::Unchanged(index),
        "a fact without layers adds nothing to one with them"
    );
    let relayered = lineage_model::BaseSeen {
        layers: vec![digest("3")],
        ..seen
    };
    assert!(matches!(
        add_base(w.s(), &relayered, &id("maya"), now).unwrap(),
        BaseAdded::Recorded(i) if i > index
    ));
}

/// `build record --from-registry`: a base newly seen in the registry is written with the
/// build, in the gate's one transaction (build, gate result, base); a refused build writes
/// neither.
#[test]
fn a_base_seen_in_the_registry_is_recorded_with_the_build_or_not_at_all() {
    let mut w = World::new();
    w.apply("service api");
    let setup = gate::Setup::default();
    let now = w.now;
    let seen = lineage_model::BaseSeen {
        name: Repository::parse("python").unwrap(),
        tag: Some(Tag::parse("3.12-slim").unwrap()),
        digest: digest("b"),
        layers: vec![digest("1"), digest("2")],
        created: None,
        seen_at: now,
    };
    let build = BuildRecord {
        service: ServiceName::parse("api").unwrap(),
        image: image("api"),
        digest: digest("a"),
        tags: Vec::new(),
        bases: vec![base("python:3.12-slim@b", true, now)],
        source_repo: None,
        git_ref: None,
        commit: None,
        started_at: None,
        finished_at: Some(now),
        ci: None,
        // Provenance names its builder.
        builder: Some(id("ci")),
        platform: None,
        dockerfile: None,
    };
    let options = |env: Option<&str>| gate::BuildOptions {
        env: env.map(|e| EnvName::parse(e).unwrap()),
        base_seen: Some(seen.clone()),
        ..Default::default()
    };
    let bases = |w: &World| w.store.facts("base", None).unwrap();

    // No commit fails the production gate: refused, and the base is not written either.
    let size = w.store.log_head().unwrap().size;
    let refused = gate::record_build(w.s(), &setup, build.clone(), options(None), None, now);
    assert!(matches!(refused, Ok(gate::Decision::Refused { .. })));
    assert_eq!(w.store.log_head().unwrap().size, size);
    assert!(bases(&w).is_empty());

    // In dev it is recorded: the build, its gate result, its provenance, then the base.
    let key = lineage_attest::PrivateKey::generate(lineage_attest::KeyKind::Ed25519).unwrap();
    let signed = lineage_core::provenance::sign_build(&build, &key, now).unwrap();
    let with_provenance = gate::BuildOptions {
        provenance: Some(signed.envelope),
        ..options(Some("dev"))
    };
    let recorded = gate::record_build(w.s(), &setup, build, with_provenance, None, now);
    let Ok(gate::Decision::Recorded { result, .. }) = recorded else {
        panic!("recorded: {recorded:?}");
    };
    let index = result.record.index;
    assert_eq!(result.provenance_index, Some(index + 2));
    assert_eq!(w.store.log_head().unwrap().size, size + 4);
    let written = bases(&w);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].index, index + 3);
    assert_eq!(written[0].record, Record::Base(seen));
}

/// `attest push` and `attest pull --record`: what is pushed is every stored attestation of
/// the digest, oldest first, as annotated artifacts; nothing stored asks the registry nothing.
#[test]
fn attest_push_attaches_every_stored_attestation_and_nothing_when_none_is_stored() {
    use lineage_core::attest_registry::{self, Attach, PushError};
    use lineage_registry::{Artifact, Attached, Descriptor, ReferrersVia};
    use std::cell::RefCell;

    /// A registry that answers `fails_at` (counting from 0) with an error, the others with
    /// the tag-schema fallback.
    struct Registry {
        attached: RefCell<Vec<Artifact>>,
        fails_at: Option<usize>,
    }
    impl Attach for Registry {
        fn attach(&self, artifact: &Artifact) -> Result<Attached, lineage_registry::Error> {
            let n = self.attached.borrow().len();
            if self.fails_at == Some(n) {
                return Err(lineage_registry::Error::MalformedAttestation {
                    reason: "refused".into(),
                });
            }
            self.attached.borrow_mut().push(artifact.clone());
            Ok(Attached {
                subject: Descriptor {
                    media_type: lineage_registry::media::OCI_MANIFEST.into(),
                    digest: digest("a"),
                    size: 1,
                    artifact_type: None,
                    platform: None,
                    annotations: BTreeMap::new(),
                },
                manifest: digest(&(n + 1).to_string()),
                via: ReferrersVia::TagSchema,
                fallback_tag: Some(Tag::parse("sha256-aaaa").unwrap()),
            })
        }
    }
    let registry = |fails_at| Registry {
        attached: RefCell::new(Vec::new()),
        fails_at,
    };

    let mut w = World::new();
    let none = registry(None);
    let pushed = attest_registry::push(w.store.as_ref(), &digest("a"), &none).unwrap();
    assert!(pushed.is_empty());
    assert!(
        none.attached.borrow().is_empty(),
        "the registry is not asked"
    );

    let att = |predicate: &str, envelope: &str, day: i64| lineage_model::Attestation {
        digest: digest("a"),
        predicate_type: predicate.into(),
        envelope: envelope.into(),
        at: Timestamp::from_unix(Timestamp::parse(START).unwrap().unix() + day * 86_400),
    };
    let first = att("https://slsa.dev/provenance/v1", "{\"one\":1}", 0);
    let second = att("https://example.com/other", "{\"two\":2}", 1);
    let now = w.now;
    let other = lineage_model::Attestation {
        digest: digest("b"),
        ..first.clone()
    };
    let entries = w
        .s()
        .record_facts(
            &[
                Record::Attestation(first),
                Record::Attestation(other),
                Record::Attestation(second),
            ],
            now,
            None,
        )
        .unwrap();

    let ok = registry(None);
    let pushed = attest_registry::push(w.store.as_ref(), &digest("a"), &ok).unwrap();
    let shown: Vec<String> = pushed
        .iter()
        .map(|p| {
            format!(
                "{} {} entry {} {:?} {}",
                p.manifest,
                p.predicate_type,
                p.ledger_entry,
                p.via,
                p.fallback_tag.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            format!(
                "{} https://slsa.dev/provenance/v1 entry {} TagSchema sha256-aaaa",
                digest("1"),
                entries[0]
            ),
            format!(
                "{} https://example.com/other entry {} TagSchema sha256-aaaa",
                digest("2"),
                entries[2]
            ),
        ]
    );
    let attached = ok.attached.borrow();
    assert_eq!(attached[0].payload, b"{\"one\":1}");
    assert_eq!(
        attached[0].artifact_type,
        lineage_registry::LINEAGE_PROVENANCE_ARTIFACT_TYPE
    );
    assert_eq!(
        attached[1].annotations,
        BTreeMap::from([
            (
                "in-toto.io/predicate-type".to_string(),
                "https://example.com/other".to_string()
            ),
            (
                "org.opencontainers.image.created".to_string(),
                "2026-11-02T00:00:00Z".to_string()
            ),
        ])
    );

    // The registry refusing the second stops there; the first stays attached.
    let refusing = registry(Some(1));
    let err = attest_registry::push(w.store.as_ref(), &digest("a"), &refusing).unwrap_err();
    assert!(matches!(err, PushError::Registry(_)), "{err:?}");
    assert_eq!(refusing.attached.borrow().len(), 1);
}

/// `attest pull --record`: what the ledger lacks is written in one transaction; an envelope
/// already stored for the digest is unchanged, and nothing new writes nothing.
#[test]
fn attest_pull_records_only_what_the_ledger_lacks() {
    use lineage_core::attest_registry;

    let mut w = World::new();
    let now = w.now;
    let att = |digest: Digest, envelope: &str| lineage_model::Attestation {
        digest,
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        envelope: envelope.into(),
        at: now,
    };
    let by = id("ops");
    let first =
        attest_registry::record(w.s(), vec![att(digest("a"), "{\"one\":1}")], now, Some(&by))
            .unwrap();
    assert_eq!(first.recorded, [0]);
    assert_eq!(first.unchanged, 0);

    // The same envelope again is unchanged; a new one, and the same envelope for another
    // digest, are recorded together.
    let second = attest_registry::record(
        w.s(),
        vec![
            att(digest("a"), "{\"one\":1}"),
            att(digest("a"), "{\"two\":2}"),
            att(digest("b"), "{\"one\":1}"),
        ],
        now,
        Some(&by),
    )
    .unwrap();
    assert_eq!(second.recorded, [1, 2]);
    assert_eq!(second.unchanged, 1);
    let stored = w
        .store
        .facts("attestation", Some(&digest("a").to_string()))
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[1].record,
        Record::Attestation(att(digest("a"), "{\"two\":2}"))
    );

    // Nothing new: nothing written.
    let size = w.store.log_head().unwrap().size;
    let third =
        attest_registry::record(w.s(), vec![att(digest("b"), "{\"one\":1}")], now, None).unwrap();
    assert!(third.recorded.is_empty());
    assert_eq!(third.unchanged, 1);
    assert_eq!(w.store.log_head().unwrap().size, size);

    // The same new envelope twice in one pull (two manifests, one payload) is written once.
    let twice = vec![
        att(digest("c"), "{\"three\":3}"),
        att(digest("c"), "{\"three\":3}"),
    ];
    let fourth = attest_registry::record(w.s(), twice, now, None).unwrap();
    assert_eq!(fourth.recorded.len(), 1);
    assert_eq!(fourth.unchanged, 1);
    assert_eq!(w.store.log_head().unwrap().size, size + 1);
}

// -------------------------------------------------------------------------------------------
// Use cases the binary only calls (issue 15): retire, exceptions, provenance, rollback, diff
// -------------------------------------------------------------------------------------------

/// A world built from fleet lines, for the use-case tests below.
fn world(lines: &str) -> World {
    let mut w = World::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        w.apply(line);
    }
    w
}

fn size(w: &World) -> u64 {
    w.store.log_head().unwrap().size
}

#[test]
fn retire_refuses_an_unknown_digest_and_a_bad_reason_and_records_a_known_one() {
    let mut w = world("service api\nbuild api a\nservice web\ndeploy web c staging");
    let now = w.now;
    let before = size(&w);
    let err = lifecycle::retire(w.s(), &digest("e"), "CVE-1", &id("sec"), now).unwrap_err();
    assert!(err.to_string().contains("has no build or deploy"), "{err}");
    for bad in ["", "  ", "two\nlines"] {
        let err = lifecycle::retire(w.s(), &digest("a"), bad, &id("sec"), now).unwrap_err();
        assert!(err.to_string().contains("one line"), "{err}");
    }
    assert_eq!(size(&w), before, "a refused retirement writes nothing");

    let built = lifecycle::retire(w.s(), &digest("a"), " CVE-1 ", &id("sec"), now).unwrap();
    assert_eq!(built.service.as_ref().map(|s| s.as_str()), Some("api"));
    assert_eq!(built.retirement.reason, "CVE-1");
    assert_eq!(built.index, before);
    // A digest only deployed (no build) may be retired too; it names no service.
    let deployed = lifecycle::retire(w.s(), &digest("c"), "CVE-2", &id("sec"), now).unwrap();
    assert_eq!(deployed.service, None);
    assert_eq!(
        lifecycle::retirement(w.store.as_ref(), &digest("a"))
            .unwrap()
            .map(|r| r.reason),
        Some("CVE-1".to_string())
    );
}

#[test]
fn an_exception_is_active_until_the_instant_it_expires() {
    let mut w = world("service api");
    let expires = Timestamp::from_unix(w.now.unix() + 86_400);
    w.fact(Record::Exception(Exception {
        rule: "B003".into(),
        service: "api".into(),
        reason: "vendor base".into(),
        approved_by: id("maya"),
        expires,
        by: id("jonas"),
        at: w.now,
    }));
    let active = |w: &World, at: Timestamp| -> Vec<(String, bool)> {
        gate::exception_list(w.store.as_ref(), at)
            .unwrap()
            .into_iter()
            .map(|r| (r.exception.rule, r.active))
            .collect()
    };
    let before = Timestamp::from_unix(expires.unix() - 1);
    assert_eq!(active(&w, before), vec![("B003".to_string(), true)]);
    assert_eq!(active(&w, expires), vec![("B003".to_string(), false)]);
    assert!(gate::exception_list(World::new().store.as_ref(), expires)
        .unwrap()
        .is_empty());
}

#[test]
fn export_takes_the_newest_slsa_attestation_and_sign_needs_a_build() {
    let mut w = world("service api\nbuild api a builder=ci\nbuild api b");
    let now = w.now;
    let attestation = |predicate: &str, envelope: &str| {
        Record::Attestation(Attestation {
            digest: digest("a"),
            predicate_type: predicate.into(),
            envelope: envelope.into(),
            at: now,
        })
    };
    assert_eq!(
        provenance::newest(w.store.as_ref(), &digest("a")).unwrap(),
        None
    );
    w.fact(attestation(provenance::SLSA_PROVENANCE_V1, "first"));
    w.fact(attestation(provenance::SLSA_PROVENANCE_V1, "second"));
    w.fact(attestation("https://spdx.dev/Document", "sbom"));
    let newest = provenance::newest(w.store.as_ref(), &digest("a")).unwrap();
    assert_eq!(newest.map(|a| a.envelope).as_deref(), Some("second"));
    let stored: Vec<String> = provenance::stored(w.store.as_ref(), &digest("a"))
        .unwrap()
        .into_iter()
        .map(|s| s.attestation.envelope)
        .collect();
    assert_eq!(stored, vec!["first", "second"]);

    let key = lineage_attest::PrivateKey::generate(lineage_attest::KeyKind::default()).unwrap();
    let before = size(&w);
    let err = provenance::attest_recorded(w.s(), &digest("e"), &key, None, now).unwrap_err();
    assert!(err.to_string().contains("no build is recorded"), "{err}");
    assert_eq!(size(&w), before);
    let signed =
        provenance::attest_recorded(w.s(), &digest("a"), &key, Some(&id("jonas")), now).unwrap();
    assert_eq!(signed.service.as_str(), "api");
    assert_eq!(signed.key_id, key.key_id());
    assert_eq!(signed.index, before);
    let newest = provenance::newest(w.store.as_ref(), &digest("a")).unwrap();
    assert_eq!(newest, Some(signed.attestation));
}

/// A passed build-gate result, which a known-good rollback target needs.
fn passed(w: &mut World, d: &str) {
    let now = w.now;
    w.fact(Record::Check(CheckResult {
        digest: digest(d),
        gate: "build".into(),
        passed: true,
        failed_rules: Vec::new(),
        allowed_failures: false,
        by: None,
        at: now,
    }));
}

#[test]
fn a_rollback_dry_run_writes_nothing_and_a_real_one_records_the_deploy() {
    let mut w = world(
        "service api owner=priya\nbuild api a\ndeploy api a staging\nday 1\nbuild api b\ndeploy api b staging",
    );
    passed(&mut w, "a");
    passed(&mut w, "b");
    let setup = gate::Setup {
        config: w.config.clone(),
        ..gate::Setup::default()
    };
    let input = lifecycle::RollbackInput {
        service: ServiceName::parse("api").unwrap(),
        env: "staging".into(),
        to: None,
        by: id("jonas"),
        approved_by: None,
        ticket: None,
        at: w.now,
    };
    let now = w.now;
    let before = size(&w);
    match lifecycle::rollback(w.s(), &setup, &input, true, now).unwrap() {
        lifecycle::RollbackOutcome::DryRun { plan, gate } => {
            assert_eq!(plan.digest, digest("a").to_string());
            assert!(gate.passed, "{}", serde_json::to_string(&gate).unwrap());
        }
        other => panic!("expected a dry run, got {other:?}"),
    }
    assert_eq!(size(&w), before, "a dry run writes nothing");

    w.apply("day 2");
    let now = w.now;
    let input = lifecycle::RollbackInput { at: now, ..input };
    match lifecycle::rollback(w.s(), &setup, &input, false, now).unwrap() {
        lifecycle::RollbackOutcome::Decided {
            plan,
            decision: gate::Decision::Recorded { .. },
        } => assert_eq!(plan.digest, digest("a").to_string()),
        other => panic!("expected a recorded rollback, got {other:?}"),
    }
    assert!(size(&w) > before);
    let running = w.ask("running staging");
    assert!(running.contains(" a "), "{running}");

    // Nothing else known-good in production: no target, nothing written.
    let input = lifecycle::RollbackInput {
        env: "production".into(),
        ..input
    };
    let before = size(&w);
    assert!(matches!(
        lifecycle::rollback(w.s(), &setup, &input, false, now).unwrap(),
        lifecycle::RollbackOutcome::NoTarget
    ));
    assert_eq!(size(&w), before);
}

#[test]
fn a_build_diff_finds_builds_by_digest_or_tag_and_refuses_two_services() {
    let w = world("service api\nbuild api a commit=1 tag=1.0\nbuild api b commit=1 tag=1.1\nservice web\nbuild web c");
    let r = |text: &str| freshness::BuildRef::parse(&expand(text), "OLD").unwrap();
    let store = w.store.as_ref();
    let diff = freshness::diff_refs(store, &r("%a"), &r("ghcr.io/acme/api:1.1")).unwrap();
    assert_eq!(diff.service, "api");
    assert_eq!(
        (diff.old.clone(), diff.new.clone()),
        (digest("a").to_string(), digest("b").to_string())
    );

    let err = freshness::diff_refs(store, &r("%a"), &r("%c")).unwrap_err();
    assert!(err.to_string().contains("is a build of `api` but"), "{err}");
    let err = freshness::diff_refs(store, &r("%a"), &r("ghcr.io/acme/api:9.9")).unwrap_err();
    assert!(
        err.to_string().starts_with("no build recorded for"),
        "{err}"
    );
    let err = freshness::BuildRef::parse("ghcr.io/acme/api", "NEW").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("NEW `ghcr.io/acme/api` names no build"),
        "{err}"
    );
}

/// `lineage base refresh` over an in-memory registry: every base tag the builds use is
/// resolved; a tag whose registry fails is reported and does not stop the others.
struct Tags(BTreeMap<String, Result<(Digest, &'static str), String>>);

impl freshness::TagResolver for Tags {
    fn resolve(&self, tag: &freshness::BaseTag) -> Result<lineage_registry::ImageDetails, String> {
        let (d, created) = self
            .0
            .get(&tag.to_string())
            .cloned()
            .unwrap_or_else(|| Err(format!("{tag}: not in this registry")))?;
        Ok(lineage_registry::ImageDetails {
            digest: d.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platforms: Vec::new(),
            platform: None,
            manifest_digest: d,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: digest("c"),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            facts: lineage_registry::ImageFacts {
                created: Some(lineage_registry::Fact {
                    value: created.into(),
                    origin: lineage_registry::FactOrigin::ManifestAnnotation,
                }),
                ..Default::default()
            },
            layers: vec![digest("1"), digest("2")],
        })
    }
}

#[test]
fn refresh_resolves_the_tags_in_use_and_reports_a_failed_one_without_stopping() {
    let mut w = world(
        r"
        service api owner=priya
        service web
        build api a base=python:3.12-slim@b stage=golang:1.23@e
        deploy api a production
        build web c base=alpine:3.20@7
        deploy web c staging
        day 10
        ",
    );
    let slim = "docker.io/library/python:3.12-slim";
    let mut answers = BTreeMap::new();
    answers.insert(slim.to_string(), Ok((digest("9"), "2026-11-05T00:00:00Z")));
    answers.insert(
        "docker.io/library/alpine:3.20".to_string(),
        Ok((digest("7"), "2026-10-01T00:00:00Z")),
    );
    answers.insert(
        "docker.io/library/golang:1.23".to_string(),
        Err("registry down".to_string()),
    );
    let resolver = Tags(answers);
    let now = w.now;
    let by = id("ops");
    let size = w.store.log_head().unwrap().size;
    let report = freshness::refresh(w.s(), &resolver, &(), Some(&by), now).unwrap();
    let rows: Vec<String> = report
        .tags
        .iter()
        .map(|t| {
            format!(
                "{} {} {} was={} {}",
                t.base,
                t.status,
                opt(&t.digest),
                opt(&t.previous),
                opt(&t.error)
            )
        })
        .collect();
    let (a, b, e, n9) = (digest("7"), digest("b"), digest("e"), digest("9"));
    assert_eq!(
        rows,
        [
            format!("docker.io/library/alpine:3.20 unchanged {a} was={a} -"),
            format!("docker.io/library/golang:1.23 failed - was={e} registry down"),
            format!("docker.io/library/python:3.12-slim new {n9} was={b} -"),
        ]
    );
    assert_eq!(report.failed, 1);
    assert_eq!(report.at, now);
    // The two answers are written, as the bases seen, in one batch; the failed tag writes nothing.
    assert_eq!(w.store.log_head().unwrap().size, size + 2);
    let seen: Vec<lineage_model::BaseSeen> = w
        .store
        .facts("base", None)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) => Some(b),
            _ => None,
        })
        .collect();
    let slim_seen = seen
        .iter()
        .find(|s| s.name.to_string() == "docker.io/library/python")
        .unwrap();
    assert_eq!(slim_seen.tag.as_ref().unwrap().as_str(), "3.12-slim");
    assert_eq!(slim_seen.digest, n9);
    assert_eq!(slim_seen.layers, [digest("1"), digest("2")]);
    assert_eq!(
        slim_seen.created,
        Some(Timestamp::parse("2026-11-05T00:00:00Z").unwrap())
    );
    assert_eq!(slim_seen.seen_at, now);

    // The stale report sees the newer digest: api runs on `b`, the registry says `9`.
    let stale = w.ask("stale");
    assert!(
        stale.contains(
            "production api a base=docker.io/library/python:3.12-slim Final running=b newest=9"
        ),
        "{stale}"
    );
    assert!(stale.contains("source=registry"), "{stale}");

    // Asked again with the same answers: nothing is new.
    let again = freshness::refresh(w.s(), &resolver, &(), Some(&by), now).unwrap();
    let statuses: Vec<&str> = again.tags.iter().map(|t| t.status).collect();
    assert_eq!(statuses, ["unchanged", "failed", "unchanged"]);
}

/// README's `lineage.toml` reference, with its commented-out keys switched on, is a valid file:
/// the documentation and the one schema of keys (`config_keys`) cannot drift apart. (They
/// had: `[log] public_key` was documented, read by `[log]`'s parser and refused by the schema.)
#[test]
fn the_readme_lineage_toml_parses_with_every_documented_key() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let start = readme
        .find("```toml\n[environments]")
        .expect("README documents lineage.toml in a ```toml block starting at [environments]");
    let block = &readme[start + "```toml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    // `# key = value` lines are documented keys left at their default: switch them on.
    let text: String = block
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest.to_string()
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("\npublic_key = "), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let parsed = lineage_core::LineageToml::parse(&text, "README.md", dir.path());
    assert!(parsed.is_ok(), "{}", parsed.err().unwrap());
    assert!(parsed.unwrap().log.public_key.is_some());
}

/// `token create|list|revoke`: names are labels, scopes are known and de-duplicated, one live
/// token per name, the ledger keeps the hash (never the secret), revoking twice is a no-op.
#[test]
fn tokens_are_created_listed_and_revoked_through_core() {
    use lineage_core::tokens::{self, Scope, TokenError};
    let mut w = World::new();
    let now = w.now;
    let scopes = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let made = tokens::create(
        w.s(),
        "ci-api",
        &scopes(&["build:write", "read", "build:write"]),
        None,
        &id("maya"),
        now,
    )
    .unwrap();
    assert!(made.secret.starts_with(&format!("lin_{}_", made.grant.id)));
    assert_eq!(made.grant.sha256, tokens::token_hash(&made.secret));
    assert_eq!(made.grant.scopes, ["build:write", "read"]);
    assert!(
        !format!("{made:?}").contains(&made.secret),
        "the secret never reaches Debug"
    );
    for (name, given, wrong) in [
        ("CI", &["read"][..], "BadName"),
        ("ci-api", &["read"][..], "Exists"),
        ("other", &["write"][..], "BadScope"),
        ("other", &[][..], "NoScope"),
    ] {
        let e = tokens::create(w.s(), name, &scopes(given), None, &id("maya"), now).unwrap_err();
        assert!(
            format!("{e:?}").starts_with(wrong),
            "{name} {given:?}: {e:?}"
        );
        assert!(!e.hint().is_empty());
    }
    let info = tokens::TokenInfo::from_grant(&made.grant);
    assert!(info.allows(Scope::BuildWrite) && !info.allows(Scope::Approve));
    let listed = tokens::list(w.s()).unwrap();
    assert_eq!(listed.tokens.len(), 1);
    assert_eq!(listed.tokens[0].identity, "sa:token-ci-api");
    assert!(!listed.tokens[0].revoked);
    let first = tokens::revoke(w.s(), &made.grant.id, &id("maya"), now).unwrap();
    assert!(first.is_some());
    assert_eq!(
        tokens::revoke(w.s(), &made.grant.id, &id("maya"), now).unwrap(),
        None
    );
    assert!(tokens::list(w.s()).unwrap().tokens[0].revoked);
    assert!(matches!(
        tokens::revoke(w.s(), "nope", &id("maya"), now),
        Err(TokenError::Unknown(_))
    ));
    // Revoked, the name is free again.
    tokens::create(w.s(), "ci-api", &scopes(&["read"]), None, &id("maya"), now).unwrap();
}
