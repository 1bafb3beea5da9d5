//! The one integration-test binary of lineage-policy: every rule failing and passing, config
//! and Rego errors with positions, exceptions over time, the Dockerfile reader on real-world
//! shapes, and snapshots of every renderer.

use std::collections::BTreeSet;
use std::path::PathBuf;

use lineage_model::{BuildRecord, Identity, Service, ServiceName, SourceRepo, Timestamp};
use lineage_policy::dockerfile::{ImageUse, StageSource};
use lineage_policy::render::{self, SarifOptions};
use lineage_policy::*;

const D_BASE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D_IMAGE: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D_NODE: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
const COMMIT: &str = "4f1c2ab9e0d3b5a7c6e8f9a0b1c2d3e4f5a6b7c8";
const API_REPO: &str = "https://github.com/acme/api";
const BILLING_REPO: &str = "https://github.com/acme/billing";

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn now() -> Timestamp {
    ts("2026-11-17T12:00:00Z")
}

fn api_service(owner: Option<&str>) -> Service {
    Service {
        name: ServiceName::parse("api").unwrap(),
        owner: owner.map(|o| Identity::parse(o).unwrap()),
        backup_owner: None,
        emergency_approver: None,
        source_repo: Some(SourceRepo::parse(API_REPO).unwrap()),
        images: vec![],
    }
}

fn pinned_dockerfile() -> String {
    format!(
        "FROM registry.acme.dev/mirror/node:22@{D_NODE} AS build\nRUN npm ci\n\
         FROM registry.acme.dev/mirror/debian:12@{D_BASE}\nCOPY --from=build /app /app\n"
    )
}

/// A CI build of `api` for production with every fact present.
fn full_build() -> BuildFacts {
    BuildFacts {
        service: Some("api".into()),
        image: Some(format!("registry.acme.dev/api:1.4.2@{D_IMAGE}")),
        digest: Some(D_IMAGE.into()),
        tags: vec!["1.4.2".into()],
        bases: vec![BaseFacts {
            name: Some("registry.acme.dev/mirror/debian".into()),
            tag: Some("12".into()),
            digest: Some(D_BASE.into()),
            pulled_at: Some("2026-11-17T09:30:00Z".into()),
            final_stage: true,
        }],
        source_repo: Some(API_REPO.into()),
        branch: Some("main".into()),
        commit: Some(COMMIT.into()),
        ci_system: Some("github-actions".into()),
        ci_job: Some("release/build-api".into()),
        ci_run_id: Some("9812345".into()),
        ci_url: None,
        builder: None,
        dockerfile_path: Some("services/api/Dockerfile".into()),
    }
}

fn prod_context() -> BuildContext {
    BuildContext {
        environment: Some("production".into()),
        production: true,
        dockerfile: Some(pinned_dockerfile()),
        service: Some(api_service(Some("maya@acme.dev"))),
        other_service_repos: vec![("billing".into(), BILLING_REPO.into())],
        ..BuildContext::default()
    }
}

fn build_record() -> BuildRecord {
    serde_json::from_value(serde_json::json!({
        "service": "api",
        "image": "registry.acme.dev/api",
        "digest": D_IMAGE,
        "bases": [{"name": "registry.acme.dev/mirror/debian", "tag": "12", "digest": D_BASE,
                   "pulled_at": "2026-11-17T09:30:00Z", "final_stage": true}],
        "source_repo": API_REPO,
        "git_ref": "main",
        "commit": COMMIT,
        "ci": {"system": "github-actions", "job": "release/build-api", "run_id": "9812345"},
    }))
    .unwrap()
}

fn full_deploy() -> DeployFacts {
    DeployFacts {
        service_name: Some("api".into()),
        service: Some(api_service(Some("maya@acme.dev"))),
        owner_known: true,
        environment: Some("production".into()),
        configured_environments: vec!["staging".into(), "production".into()],
        production: true,
        deployer: Some("li@acme.dev".into()),
        approver: Some("maya@acme.dev".into()),
        image: Some(format!("registry.acme.dev/api@{D_IMAGE}")),
        build: Some(build_record()),
        build_check_passed: Some(true),
        retired: None,
        signature: SignatureStatus::Verified {
            key: "acme-release".into(),
        },
        first_staging_deploy: Some(ts("2026-11-15T08:00:00Z")),
        recorded_approvals: Vec::new(),
        stale_base: None,
        running: None,
        rollback: false,
        promotion: None,
    }
}

fn build_with(config: &PolicyConfig, facts: &BuildFacts, cx: &BuildContext) -> Report {
    let ev = Evaluation {
        config,
        exceptions: &[],
        policies: None,
        now: now(),
    };
    check_build(&ev, facts, cx).unwrap()
}

fn deploy_with(config: &PolicyConfig, facts: &DeployFacts) -> Report {
    let ev = Evaluation {
        config,
        exceptions: &[],
        policies: None,
        now: now(),
    };
    check_deploy(&ev, facts).unwrap()
}

fn codes(report: &Report) -> BTreeSet<String> {
    report.diagnostics.iter().map(|d| d.code.clone()).collect()
}

fn one(code: &str) -> BTreeSet<String> {
    BTreeSet::from([code.to_string()])
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------
// Build rules: each mutation of the full build must trip exactly its rule.

#[test]
fn full_build_passes_with_no_findings() {
    let report = build_with(&PolicyConfig::default(), &full_build(), &prod_context());
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert!(report.passed);
}

#[test]
fn every_build_rule_fails_on_its_own_case() {
    type Mutation = (&'static str, fn(&mut BuildFacts, &mut BuildContext));
    let cases: Vec<Mutation> = vec![
        ("B001", |f, _| {
            f.digest = None;
            f.image = None;
        }),
        ("B001", |f, _| f.digest = Some("sha256:abc".into())),
        ("B002", |f, _| f.bases[0].tag = None),
        ("B002", |f, _| f.bases[0].name = None),
        ("B002", |f, _| f.bases.clear()),
        ("B014", |_, cx| {
            cx.dockerfile = Some(format!(
                "FROM registry.acme.dev/mirror/debian:12@sha256:{}\nCOPY x /x\n",
                "9".repeat(64)
            ))
        }),
        ("B003", |f, _| f.bases[0].digest = None),
        ("B003", |f, _| f.bases[0].digest = Some("sha256:12".into())),
        ("B004", |f, _| f.bases[0].pulled_at = None),
        ("B004", |f, _| {
            f.bases[0].pulled_at = Some("yesterday".into())
        }),
        ("B005", |f, _| f.commit = Some("4f1c2ab".into())),
        ("B005", |f, _| f.commit = None),
        ("B006", |f, _| f.branch = None),
        ("B006", |f, _| f.source_repo = Some("not a url".into())),
        ("B007", |f, _| {
            f.ci_system = None;
            f.ci_run_id = None;
        }),
        ("B007", |f, _| f.ci_run_id = None),
        ("B009", |_, cx| {
            cx.dockerfile = Some("FROM registry.acme.dev/mirror/debian:12\nCOPY x /x\n".to_string())
        }),
        ("B010", |_, cx| {
            cx.same_commit_services = vec!["billing".into()]
        }),
        ("B011", |_, cx| cx.ci_job_shared_by_all = true),
        ("B012", |f, _| {
            f.source_repo = Some("git@github.com:acme/billing.git".into())
        }),
    ];
    for (code, mutate) in cases {
        let mut facts = full_build();
        let mut cx = prod_context();
        mutate(&mut facts, &mut cx);
        let report = build_with(&PolicyConfig::default(), &facts, &cx);
        assert_eq!(
            codes(&report),
            one(code),
            "{code}: {:#?}",
            report.diagnostics
        );
        let d = report.with_code(code).next().unwrap();
        assert!(
            !d.hint.is_empty() && !d.why.is_empty(),
            "{code} lacks hint or why"
        );
        assert!(!report.passed || d.level == Level::Warning, "{code}");
    }
}

#[test]
fn a_mutable_tag_alone_fails_but_a_digest_given_apart_pins() {
    let mut facts = full_build();
    facts.image = Some("registry.acme.dev/api:latest".into());
    // The digest, given apart (`--digest`), pins the build as `api:latest@D` would.
    let report = build_with(&PolicyConfig::default(), &facts, &prod_context());
    assert!(codes(&report).is_empty(), "{:#?}", report.diagnostics);
    facts.digest = None;
    let report = build_with(&PolicyConfig::default(), &facts, &prod_context());
    assert!(codes(&report).contains("B008"), "{:#?}", report.diagnostics);
}

#[test]
fn base_allowlist_denies_other_registries() {
    let config = PolicyConfig::from_toml(
        "[allowlist]\nregistries = [\"registry.acme.dev\"]\n",
        "lineage.toml",
    )
    .unwrap();
    let ok = build_with(&config, &full_build(), &prod_context());
    assert!(ok.diagnostics.is_empty(), "{:#?}", ok.diagnostics);

    let mut facts = full_build();
    facts.bases[0].name = Some("debian".into());
    // Without the Dockerfile, which names another image (B014 would say so too).
    let mut cx = prod_context();
    cx.dockerfile = None;
    let report = build_with(&config, &facts, &cx);
    assert_eq!(codes(&report), one("B013"));
    assert!(report.diagnostics[0]
        .message
        .contains("docker.io/library/debian"));

    // The Dockerfile's bases are checked too.
    let mut cx = prod_context();
    cx.dockerfile = Some(format!("FROM ghcr.io/evil/base:1@{D_BASE}\n"));
    let report = build_with(&config, &full_build(), &cx);
    // The record (debian) contradicts that Dockerfile too: B014.
    assert_eq!(
        codes(&report),
        BTreeSet::from(["B013".to_string(), "B014".to_string()])
    );
}

#[test]
fn mutable_tag_rule_is_for_production_only() {
    let mut facts = full_build();
    facts.image = Some("registry.acme.dev/api:latest".into());
    let mut cx = prod_context();
    cx.environment = Some("staging".into());
    cx.production = false;
    let report = build_with(&PolicyConfig::default(), &facts, &cx);
    assert!(codes(&report).is_empty(), "{:#?}", report.diagnostics);
}

#[test]
fn unpinned_from_points_at_the_dockerfile_line() {
    let mut cx = prod_context();
    cx.dockerfile = Some(format!(
        "# syntax=docker/dockerfile:1\nFROM registry.acme.dev/mirror/node:22 AS build\n\nFROM registry.acme.dev/mirror/debian:12@{D_BASE}\n"
    ));
    let report = build_with(&PolicyConfig::default(), &full_build(), &cx);
    let d = report.with_code("B009").next().expect("B009");
    let loc = d.location.as_ref().unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line),
        ("services/api/Dockerfile", Some(2))
    );
    assert!(d.message.contains("registry.acme.dev/mirror/node:22"));
    assert!(d.hint.contains("@sha256:"));
}

#[test]
fn build_facts_from_a_record_pass() {
    let record = build_record();
    let facts = BuildFacts::from(&record);
    assert_eq!(facts.commit.as_deref(), Some(COMMIT));
    assert_eq!(facts.bases[0].digest.as_deref(), Some(D_BASE));
    let report = build_with(&PolicyConfig::default(), &facts, &prod_context());
    assert!(report.passed, "{:#?}", report.diagnostics);
    assert!(report.diagnostics.is_empty());
}

#[test]
fn base_facts_split_a_reference_leniently() {
    let b = BaseFacts::from_reference(&format!("localhost:5000/base/debian:12@{D_BASE}"));
    assert_eq!(b.name.as_deref(), Some("localhost:5000/base/debian"));
    assert_eq!(b.tag.as_deref(), Some("12"));
    assert_eq!(b.digest.as_deref(), Some(D_BASE));
    let b = BaseFacts::from_reference("localhost:5000/debian");
    assert_eq!(
        (b.name.as_deref(), b.tag),
        (Some("localhost:5000/debian"), None)
    );
}

// ---------------------------------------------------------------------------------------
// Deploy rules.

#[test]
fn full_deploy_passes_with_no_findings() {
    let report = deploy_with(&PolicyConfig::default(), &full_deploy());
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    assert!(report.passed);
}

#[test]
fn every_deploy_rule_fails_on_its_own_case() {
    type Mutation = (&'static str, fn(&mut DeployFacts));
    let cases: Vec<Mutation> = vec![
        ("D001", |f| f.service = Some(api_service(None))),
        ("D001", |f| f.service = None),
        ("D001", |f| f.owner_known = false),
        ("D002", |f| f.environment = None),
        ("D002", |f| f.environment = Some("prodution".into())),
        ("D003", |f| f.approver = None),
        ("D004", |f| f.approver = f.deployer.clone()),
        ("D005", |f| {
            f.image = Some("registry.acme.dev/api:1.4.2".into())
        }),
        ("D006", |f| f.build = None),
        ("D007", |f| f.build_check_passed = Some(false)),
        ("D008", |f| {
            f.retired = Some("CVE-2026-1234 in openssl".into())
        }),
        ("D009", |f| {
            f.signature = SignatureStatus::Untrusted {
                reason: "key `old-ci` is not in [trust]".into(),
            }
        }),
        ("D010", |f| f.signature = SignatureStatus::Unsigned),
        ("D011", |f| {
            f.image = Some(format!("registry.acme.dev/web@{D_IMAGE}"))
        }),
        ("D012", |f| {
            f.stale_base = Some(StaleBase {
                base: format!("registry.acme.dev/mirror/debian:12@{D_BASE}"),
                since: ts("2026-10-01T00:00:00Z"),
                days: 47,
            })
        }),
        ("D013", |f| {
            f.build.as_mut().unwrap().finished_at = Some(ts("2026-11-15T07:00:00Z"));
            f.running = Some(newer_running());
        }),
    ];
    for (code, mutate) in cases {
        let mut facts = full_deploy();
        mutate(&mut facts);
        let report = deploy_with(&PolicyConfig::default(), &facts);
        assert_eq!(
            codes(&report),
            one(code),
            "{code}: {:#?}",
            report.diagnostics
        );
        let d = report.with_code(code).next().unwrap();
        assert!(!d.hint.is_empty() && !d.why.is_empty(), "{code}");
    }
}

/// A digest recorded as running in production, built after `build_record()`.
fn newer_running() -> RunningDigest {
    RunningDigest {
        digest: format!("sha256:{}", "9".repeat(64)),
        since: ts("2026-11-16T10:00:00Z"),
        built_at: Some(ts("2026-11-16T09:00:00Z")),
    }
}

#[test]
fn an_older_build_than_the_running_one_warns_unless_it_is_a_recorded_rollback() {
    let mut facts = full_deploy();
    facts.build.as_mut().unwrap().finished_at = Some(ts("2026-11-15T07:00:00Z"));
    facts.running = Some(newer_running());
    let report = deploy_with(&PolicyConfig::default(), &facts);
    assert_eq!(codes(&report), one("D013"));
    assert!(report.passed, "D013 warns by default");
    // A declared rollback passes silently.
    facts.rollback = true;
    assert!(codes(&deploy_with(&PolicyConfig::default(), &facts)).is_empty());
    // A newer build than the running one, or one with no recorded time, is not older.
    facts.rollback = false;
    let mut running = newer_running();
    running.built_at = Some(ts("2020-01-01T00:00:00Z"));
    facts.running = Some(running);
    assert!(codes(&deploy_with(&PolicyConfig::default(), &facts)).is_empty());
    facts.running = Some(RunningDigest {
        built_at: None,
        ..newer_running()
    });
    assert!(codes(&deploy_with(&PolicyConfig::default(), &facts)).is_empty());
    // `[rules.production] D013 = "error"` refuses it (admission in enforce mode denies).
    facts.running = Some(newer_running());
    let config =
        PolicyConfig::from_toml("[rules.production]\nD013 = \"error\"\n", "lineage.toml").unwrap();
    let report = deploy_with(&config, &facts);
    assert!(!report.passed);
    assert_eq!(codes(&report), one("D013"));
}

#[test]
fn a_base_behind_its_tag_warns_from_stale_base_days() {
    let mut facts = full_deploy();
    facts.stale_base = Some(StaleBase {
        base: format!("registry.acme.dev/mirror/debian:12@{D_BASE}"),
        since: ts("2026-11-01T00:00:00Z"),
        days: 16,
    });
    assert!(codes(&deploy_with(&PolicyConfig::default(), &facts)).is_empty());
    let config =
        PolicyConfig::from_toml("[gates]\nstale_base_days = 14\n", "lineage.toml").unwrap();
    let report = deploy_with(&config, &facts);
    assert_eq!(codes(&report), one("D012"));
    assert!(report.passed, "a stale base warns, it does not fail");
}

#[test]
fn recorded_approvals_are_acts_not_names() {
    let config =
        PolicyConfig::from_toml("[gates]\napprovals = \"recorded\"\n", "lineage.toml").unwrap();
    // The approver the deployer names has recorded nothing: a claim, refused.
    let facts = full_deploy();
    let report = deploy_with(&config, &facts);
    assert_eq!(codes(&report), one("D003"), "{:#?}", report.diagnostics);
    assert!(report.diagnostics[0]
        .message
        .contains("has recorded no approval"));
    // No name, no recorded approval: D003.
    let mut facts = full_deploy();
    facts.approver = None;
    assert_eq!(codes(&deploy_with(&config, &facts)), one("D003"));
    // Recorded by someone else: passes, named or not.
    facts.recorded_approvals = vec!["maya@acme.dev".into()];
    assert!(codes(&deploy_with(&config, &facts)).is_empty());
    facts.approver = Some("maya@acme.dev".into());
    assert!(codes(&deploy_with(&config, &facts)).is_empty());
    // Only the deployer approved: four-eyes.
    facts.approver = None;
    facts.recorded_approvals = vec!["li@acme.dev".into()];
    assert_eq!(codes(&deploy_with(&config, &facts)), one("D004"));
    // Declared mode still takes the name.
    let mut facts = full_deploy();
    facts.recorded_approvals.clear();
    assert!(codes(&deploy_with(&PolicyConfig::default(), &facts)).is_empty());
    let bad =
        PolicyConfig::from_toml("[gates]\napprovals = \"signed\"\n", "lineage.toml").unwrap_err();
    assert_eq!((bad.line, bad.column), (2, 13), "{bad}");
}

#[test]
fn exception_rules_parse_and_point_at_mistakes() {
    let config = PolicyConfig::from_toml(
        "[exceptions]\nmax_days = 30\n[exceptions.approvers]\nfour-eyes = [\"sec@acme.dev\"]\n\"*\" = [\"maya@acme.dev\"]\n",
        "lineage.toml",
    )
    .unwrap();
    assert_eq!(config.exceptions.max_days, 30);
    assert_eq!(
        config.exceptions.approvers_for("D004"),
        Some(&["sec@acme.dev".to_string()][..])
    );
    assert_eq!(
        config.exceptions.approvers_for("B003"),
        Some(&["maya@acme.dev".to_string()][..])
    );
    assert_eq!(PolicyConfig::default().exceptions.max_days, 90);
    for (text, line) in [
        ("[exceptions]\nmax_days = 0\n", 2),
        ("[exceptions]\nmax_dys = 3\n", 2),
        ("[exceptions.approvers]\nD999 = [\"a@b.c\"]\n", 2),
        ("[exceptions.approvers]\nD004 = []\n", 2),
        ("[exceptions.approvers]\nD004 = [\"not an id\"]\n", 2),
    ] {
        let e = PolicyConfig::from_toml(text, "lineage.toml").unwrap_err();
        assert_eq!(e.line, line, "{text}: {e}");
    }
}

#[test]
fn misspelt_environment_suggests_the_closest() {
    let mut facts = full_deploy();
    facts.environment = Some("prodution".into());
    let report = deploy_with(&PolicyConfig::default(), &facts);
    let d = report.with_code("D002").next().unwrap();
    assert!(d.message.contains("`prodution`"), "{}", d.message);
    assert!(
        d.hint.contains("did you mean `--env production`"),
        "{}",
        d.hint
    );
    assert!(!report.passed);

    facts.environment = Some("stagign".into());
    let report = deploy_with(&PolicyConfig::default(), &facts);
    assert!(report.diagnostics[0].hint.contains("`--env staging`"));
}

#[test]
fn unsigned_provenance_warns_without_failing() {
    let mut facts = full_deploy();
    facts.signature = SignatureStatus::Unsigned;
    let report = deploy_with(&PolicyConfig::default(), &facts);
    assert_eq!(report.diagnostics[0].level, Level::Warning);
    assert!(report.passed);
    assert_eq!(report.counts.warnings, 1);
}

#[test]
fn four_eyes_and_approval_apply_to_production_by_default_and_are_configurable() {
    let mut staging = full_deploy();
    staging.environment = Some("staging".into());
    staging.production = false;
    staging.approver = staging.deployer.clone();
    assert!(deploy_with(&PolicyConfig::default(), &staging)
        .diagnostics
        .is_empty());

    let strict = PolicyConfig::from_toml(
        "[gates.environments.staging]\nfour_eyes = true\n",
        "lineage.toml",
    )
    .unwrap();
    assert_eq!(codes(&deploy_with(&strict, &staging)), one("D004"));

    let mut prod = full_deploy();
    prod.approver = prod.deployer.clone();
    let off = PolicyConfig::from_toml("[gates]\nfour_eyes = \"off\"\n", "lineage.toml").unwrap();
    assert!(deploy_with(&off, &prod).diagnostics.is_empty());
    let all = PolicyConfig::from_toml("[gates]\napproval = \"all\"\n", "lineage.toml").unwrap();
    staging.approver = None;
    assert_eq!(codes(&deploy_with(&all, &staging)), one("D003"));
}

#[test]
fn production_deploy_of_a_service_without_an_owner_is_refused() {
    let mut facts = full_deploy();
    facts.service = Some(api_service(None));
    let report = deploy_with(&PolicyConfig::default(), &facts);
    assert!(!report.passed);
    let d = report.with_code("D001").next().unwrap();
    assert_eq!(d.level, Level::Error);
    assert_eq!(d.message, "service `api` has no owner");
    assert!(d.hint.contains("lineage service set-owner api --owner"));
    assert_eq!(report.subject.owner, None);
}

// ---------------------------------------------------------------------------------------
// Config.

#[test]
fn config_severities_by_code_name_and_environment() {
    let text = r#"
[environments.production]
production = true
[trust]
keys = ["whatever"]

[rules]
B004 = "warn"
shared-ci-job = "off"

[rules.production]
B004 = "error"

[rules.staging]
base-digest-missing = "off"
"#;
    let config = PolicyConfig::from_toml(text, "lineage.toml").unwrap();
    assert_eq!(
        config.severity(RuleId::BasePullTimeMissing, Some("dev"), false),
        Severity::Warn
    );
    assert_eq!(
        config.severity(RuleId::BasePullTimeMissing, Some("prod-eu"), true),
        Severity::Error
    );
    assert_eq!(
        config.severity(RuleId::SharedCiJob, Some("production"), true),
        Severity::Off
    );
    assert_eq!(
        config.severity(RuleId::BaseDigestMissing, Some("staging"), false),
        Severity::Off
    );
    assert_eq!(
        config.severity(RuleId::BaseDigestMissing, Some("dev"), false),
        Severity::Warn
    );

    // The configured severity reaches the report.
    let mut facts = full_build();
    facts.bases[0].pulled_at = None;
    let mut cx = prod_context();
    cx.environment = Some("dev".into());
    cx.production = false;
    let report = build_with(&config, &facts, &cx);
    assert_eq!(report.diagnostics[0].level, Level::Warning);
    assert!(report.passed);
    let ci_shared = PolicyConfig::from_toml("[rules]\nB011 = \"off\"\n", "x").unwrap();
    cx.ci_job_shared_by_all = true;
    assert!(build_with(&ci_shared, &full_build(), &cx)
        .diagnostics
        .is_empty());
}

#[test]
fn unknown_rule_in_config_points_at_it_and_lists_codes() {
    let text = "[log]\nurl = \"x\"\n\n[rules]\nB004 = \"warn\"\n  B099 = \"off\"\n";
    let err = PolicyConfig::from_toml(text, "lineage.toml").unwrap_err();
    assert_eq!((err.line, err.column), (6, 3), "{err}");
    assert!(err
        .to_string()
        .starts_with("lineage.toml:6:3: unknown rule `B099`"));
    assert!(err.message.contains("B001 (final-digest-missing)"));
    assert!(err.message.contains("D010 (provenance-unsigned)"));
}

#[test]
fn bad_severity_and_unknown_keys_point_at_line_and_column() {
    let err = PolicyConfig::from_toml("[rules]\nB004 = \"loud\"\n", "lineage.toml").unwrap_err();
    assert_eq!((err.line, err.column), (2, 8), "{err}");
    assert!(err.message.contains("`loud`"));

    let err = PolicyConfig::from_toml("[gates]\nfour_eye = \"all\"\n", "lineage.toml").unwrap_err();
    assert_eq!((err.line, err.column), (2, 1), "{err}");
    assert_eq!(err.hint.as_deref(), Some("did you mean `four_eyes`?"));

    let err = PolicyConfig::from_toml(
        "[allowlist]\nregistries = \"registry.acme.dev\"\n",
        "lineage.toml",
    )
    .unwrap_err();
    assert_eq!(err.line, 2, "{err}");
}

#[test]
fn malformed_toml_gives_line_and_column() {
    let text = "[rules]\nB004 = \"warn\"\nB003 = \n";
    let err = PolicyConfig::from_toml(text, "conf/lineage.toml").unwrap_err();
    assert_eq!(err.file, "conf/lineage.toml");
    assert_eq!(err.line, 3, "{err}");
    assert!(err.column >= 7, "{err}");
    assert!(err.to_string().starts_with("conf/lineage.toml:3:"));
}

#[test]
fn sections_owned_elsewhere_are_ignored() {
    let text =
        "[environments.prod]\nproduction = true\nweird = [1, {a = 2}]\n[trust]\nx = 1\n[log]\n";
    assert_eq!(
        PolicyConfig::from_toml(text, "lineage.toml").unwrap(),
        PolicyConfig::default()
    );
}

// ---------------------------------------------------------------------------------------
// Exceptions.

fn waiver(rule: &str, expires: &str) -> Exception {
    Exception {
        rule: rule.into(),
        service: "api".into(),
        reason: "vendor base image, tracked in SEC-142".into(),
        approved_by: "sam@acme.dev".into(),
        expires: ts(expires),
    }
}

#[test]
fn an_exception_waives_a_rule_until_it_expires() {
    let mut facts = full_build();
    facts.bases[0].digest = None;
    let config = PolicyConfig::default();
    let exceptions = [waiver("B003", "2026-12-01T00:00:00Z")];
    let at = |now: Timestamp| {
        let ev = Evaluation {
            config: &config,
            exceptions: &exceptions,
            policies: None,
            now,
        };
        check_build(&ev, &facts, &prod_context()).unwrap()
    };

    let before = at(ts("2026-11-30T23:59:59Z"));
    assert!(before.passed);
    assert_eq!((before.counts.errors, before.counts.waived), (0, 1));
    let w = before.diagnostics[0].waived.as_ref().unwrap();
    assert_eq!(w.approved_by, "sam@acme.dev");
    assert!(before.notes.is_empty());
    assert!(render::human(&before, false).contains(
        "waived by sam@acme.dev until 2026-12-01: vendor base image, tracked in SEC-142"
    ));

    let after = at(ts("2026-12-01T00:00:00Z"));
    assert!(!after.passed);
    assert_eq!((after.counts.errors, after.counts.waived), (1, 0));
    assert!(after.diagnostics[0].waived.is_none());
    assert_eq!(after.notes.len(), 1);
    assert!(
        after.notes[0].contains("expired on 2026-12-01 and was ignored"),
        "{}",
        after.notes[0]
    );
}

#[test]
fn exceptions_match_by_name_and_only_their_service() {
    let mut facts = full_build();
    facts.bases[0].digest = None;
    let config = PolicyConfig::default();
    let by_name = [waiver("base-digest-missing", "2027-01-01T00:00:00Z")];
    let other = [Exception {
        service: "billing".into(),
        ..waiver("B003", "2027-01-01T00:00:00Z")
    }];
    let run = |exceptions: &[Exception]| {
        let ev = Evaluation {
            config: &config,
            exceptions,
            policies: None,
            now: now(),
        };
        check_build(&ev, &facts, &prod_context()).unwrap()
    };
    assert!(run(&by_name).passed);
    assert!(!run(&other).passed);
}

#[test]
fn exception_rule_codes_are_validated() {
    assert_eq!(
        validate_rule_code("B003").unwrap(),
        RuleId::BaseDigestMissing
    );
    assert_eq!(validate_rule_code("four-eyes").unwrap(), RuleId::FourEyes);
    let err = validate_rule_code("B3").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("unknown rule `B3`; valid rules are: B001"),
        "{text}"
    );
    assert!(text.contains("D004 (four-eyes)"));
}

// ---------------------------------------------------------------------------------------
// Rego.

fn example_policies() -> Vec<(String, String)> {
    let dir = workspace_root().join("examples/policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .map(|p| {
            let name = format!(
                "examples/policies/{}",
                p.file_name().unwrap().to_string_lossy()
            );
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn example_policies_pass_their_own_tests() {
    let report = policy_test(&example_policies()).unwrap();
    assert!(report.ok(), "{}", report.render());
    assert_eq!(report.passed, 8, "{}", report.render());
    assert!(report.render().ends_with("8 passed, 0 failed\n"));
}

#[test]
fn a_failing_policy_test_is_reported() {
    let files = vec![(
        "p_test.rego".to_string(),
        "package p\n\ntest_true if { 1 == 1 }\n\ntest_false if { 1 == 2 }\n".to_string(),
    )];
    let report = policy_test(&files).unwrap();
    assert_eq!((report.passed, report.failed), (1, 1));
    let failed = report.results.iter().find(|r| !r.passed).unwrap();
    assert_eq!(failed.name, "test_false");
    assert!(!report.ok());
}

#[test]
fn a_rego_syntax_error_gives_file_line_and_column() {
    let files = vec![(
        "policies/broken.rego".to_string(),
        "package lineage.broken\n\ndeny contains msg if {\n    msg := \"x\" +\n}\n".to_string(),
    )];
    let err = Policies::load(&files).unwrap_err();
    assert_eq!(err.file, "policies/broken.rego");
    assert_eq!(err.line, 4, "{err}");
    assert!(err.column > 0, "{err}");
    assert!(err.to_string().starts_with(&format!(
        "policies/broken.rego:{}:{}: ",
        err.line, err.column
    )));
    assert!(policy_test(&files).is_err());
}

#[test]
fn a_rego_policy_adds_its_own_denial() {
    let policies = Policies::load(&example_policies()).unwrap();
    let config = PolicyConfig::default();
    let ev = Evaluation {
        config: &config,
        exceptions: &[],
        policies: Some(&policies),
        now: now(),
    };
    // All built-in rules pass; only the registry policy objects to Docker Hub.
    let mut facts = full_build();
    facts.bases[0].name = Some("docker.io/library/debian".into());
    let mut cx = prod_context();
    cx.dockerfile = None;
    let report = check_build(&ev, &facts, &cx).unwrap();
    assert_eq!(codes(&report), one("ACME001"), "{:#?}", report.diagnostics);
    let d = &report.diagnostics[0];
    assert_eq!(d.level, Level::Error);
    assert!(d.message.contains("docker.io/library/debian"));
    assert!(d.hint.contains("registry.acme.dev/mirror"));
    assert_eq!(
        d.origin,
        Origin::Policy {
            file: "examples/policies/registry.rego".into(),
            package: "lineage.registry".into()
        }
    );
    assert!(!report.passed);

    // The full build on the mirror passes the same policies.
    assert!(
        check_build(&ev, &full_build(), &prod_context())
            .unwrap()
            .passed
    );
}

#[test]
fn staging_soak_policy_holds_a_fresh_image() {
    let policies = Policies::load(&example_policies()).unwrap();
    let config = PolicyConfig::default();
    let exceptions = [Exception {
        service: "api".into(),
        ..waiver("ACME002", "2026-11-18T00:00:00Z")
    }];
    let mut facts = full_deploy();
    facts.first_staging_deploy = Some(ts("2026-11-17T06:00:00Z"));
    let run = |exceptions: &[Exception]| {
        let ev = Evaluation {
            config: &config,
            exceptions,
            policies: Some(&policies),
            now: now(),
        };
        check_deploy(&ev, &facts).unwrap()
    };
    let report = run(&[]);
    assert_eq!(codes(&report), one("ACME002"));
    assert!(
        report.diagnostics[0].message.contains("for 6 hours"),
        "{}",
        report.diagnostics[0].message
    );
    // Policy codes can be waived like built-in ones.
    assert!(run(&exceptions).passed);
    // Two days of soak pass.
    let ev = Evaluation {
        config: &config,
        exceptions: &[],
        policies: Some(&policies),
        now: now(),
    };
    assert!(check_deploy(&ev, &full_deploy()).unwrap().passed);
}

#[test]
fn plain_string_entries_and_warn_rules_become_diagnostics() {
    let files = vec![(
        "policies/misc.rego".to_string(),
        "package acme.misc\n\nwarn contains \"no ticket\" if { input.kind == \"deploy\" }\n\ndeny contains {\"msg\": \"friday\", \"code\": \"ACME9\"} if { input.environment.production }\n".to_string(),
    )];
    let policies = Policies::load(&files).unwrap();
    let input = deploy_input(&full_deploy(), &[], now());
    let ds = policies.evaluate(&input).unwrap();
    assert_eq!(ds.len(), 2);
    assert!(ds
        .iter()
        .any(|d| d.code == "ACME9" && d.level == Level::Error && d.message == "friday"));
    assert!(ds.iter().any(|d| d.code == rego::POLICY_CODE
        && d.level == Level::Warning
        && d.name == "acme.misc"));
}

#[test]
fn input_documents_carry_the_documented_fields() {
    let input = build_input(
        &full_build(),
        &prod_context(),
        &[waiver("B003", "2027-01-01T00:00:00Z")],
        now(),
    );
    assert_eq!(input["kind"], "build");
    assert_eq!(input["environment"]["production"], true);
    assert_eq!(input["build"]["bases"][0]["registry"], "registry.acme.dev");
    assert_eq!(input["owners"]["owner"], "maya@acme.dev");
    assert_eq!(input["exceptions"][0]["active"], true);
    assert_eq!(input["dockerfile"]["bases"][1]["final_stage"], true);
    assert_eq!(input["now_unix"], now().unix());

    let input = deploy_input(&full_deploy(), &[], now());
    assert_eq!(input["kind"], "deploy");
    assert_eq!(input["deploy"]["approver"], "maya@acme.dev");
    assert_eq!(
        input["staging"]["first_deployed_at"],
        "2026-11-15T08:00:00Z"
    );
    assert_eq!(input["build"]["commit"], COMMIT);
    assert_eq!(input["deploy"]["signature"]["status"], "verified");
}

// ---------------------------------------------------------------------------------------
// Dockerfile reader.

#[test]
fn dockerfile_real_world_shapes() {
    let text = r#"# syntax=docker/dockerfile:1.7
# escape=\
ARG NODE_VERSION=22
ARG REGISTRY=registry.acme.dev
ARG DEBIAN_TAG
# a comment between instructions
from --platform=$BUILDPLATFORM ${REGISTRY}/mirror/node:${NODE_VERSION}-slim AS Build
RUN <<EOF
FROM not-a-real-base:1
echo "heredoc bodies are not instructions"
EOF
RUN apt-get update \
    # comments inside a continuation are dropped
    && apt-get install -y \
       curl
COPY <<-"CONF" /etc/app.conf
	FROM also-not-a-base
	CONF
FROM build AS test
RUN npm test
FROM scratch AS empty
Copy --from=docker.io/library/busybox:1.36 /bin/busybox /busybox
FROM $REGISTRY/mirror/debian:${DEBIAN_TAG:-12}@sha256:1111111111111111111111111111111111111111111111111111111111111111 AS runtime
COPY --from=build /app /app
COPY --from=0 /x /x
"#;
    let df = parse_dockerfile(text);
    assert!(df.problems.is_empty(), "{:?}", df.problems);
    let refs: Vec<(&str, u32, ImageUse)> = df
        .bases
        .iter()
        .map(|b| (b.reference.as_str(), b.line, b.used_by))
        .collect();
    assert_eq!(
        refs,
        vec![
            ("registry.acme.dev/mirror/node:22-slim", 7, ImageUse::From),
            ("docker.io/library/busybox:1.36", 22, ImageUse::CopyFrom),
            (
                "registry.acme.dev/mirror/debian:12@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                23,
                ImageUse::From
            ),
        ]
    );
    assert_eq!(df.stages.len(), 4);
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].platform.as_deref(), Some(""));
    assert_eq!(df.stages[1].source, StageSource::Stage(0));
    assert_eq!(df.stages[2].source, StageSource::Scratch);
    assert_eq!(df.final_stage(), Some(3));
    assert!(df.bases[2].final_stage && !df.bases[0].final_stage);
    let unpinned: Vec<u32> = df.unpinned().map(|b| b.line).collect();
    assert_eq!(unpinned, vec![7, 22]);
    assert_eq!(
        df.bases[0].written,
        "${REGISTRY}/mirror/node:${NODE_VERSION}-slim"
    );
}

#[test]
fn dockerfile_build_args_override_defaults() {
    let text = "ARG BASE=debian:12\nFROM ${BASE}\n";
    let args = [("BASE".to_string(), "ubuntu:24.04".to_string())].into();
    let df = parse_dockerfile_with_args(text, &args);
    assert_eq!(df.bases[0].reference, "ubuntu:24.04");
    assert_eq!(
        df.bases[0].name.as_ref().unwrap().to_string(),
        "docker.io/library/ubuntu"
    );
    assert_eq!(parse_dockerfile(text).bases[0].reference, "debian:12");
}

#[test]
fn dockerfile_final_stage_follows_stage_chain_and_backtick_escape() {
    let text = "# escape=`\nFROM golang:1.23 AS base\nFROM base AS builder\nRUN go build `\n  ./...\nFROM builder\n";
    let df = parse_dockerfile(text);
    assert_eq!(df.bases.len(), 1);
    assert!(df.bases[0].final_stage);
    assert_eq!(df.stages[2].source, StageSource::Stage(1));
    assert_eq!(df.stages[2].line, 6);
}

#[test]
fn dockerfile_unresolvable_from_is_a_problem_and_unpinned() {
    let df = parse_dockerfile("FROM ${MISSING}\nFROM scratch\n");
    assert_eq!(df.problems.len(), 2, "{:?}", df.problems);
    assert_eq!(df.problems[0].line, 1);
    assert_eq!(df.unpinned().count(), 1);
    assert!(!df.bases[0].final_stage);
}

#[test]
fn scratch_only_dockerfile_needs_no_base() {
    let mut facts = full_build();
    facts.bases.clear();
    let mut cx = prod_context();
    cx.dockerfile = Some("FROM scratch\nCOPY app /app\n".into());
    let report = build_with(&PolicyConfig::default(), &facts, &cx);
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
}

// ---------------------------------------------------------------------------------------
// The issue's CI scenario.

/// Facts the way a CI job would gather them (GitHub Actions variables), with the base digest
/// left out.
fn ci_like_build_without_base_digest() -> (BuildFacts, BuildContext) {
    let env = [
        ("GITHUB_SHA", COMMIT),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_RUN_ID", "9812345"),
        ("GITHUB_REPOSITORY", "acme/api"),
    ];
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let mut base = BaseFacts::from_reference("registry.acme.dev/mirror/debian:12");
    base.pulled_at = Some("2026-11-17T09:30:00Z".into());
    base.final_stage = true;
    let facts = BuildFacts {
        service: Some("api".into()),
        image: Some(format!("registry.acme.dev/api@{D_IMAGE}")),
        digest: Some(D_IMAGE.into()),
        bases: vec![base],
        source_repo: var("GITHUB_REPOSITORY").map(|r| format!("https://github.com/{r}")),
        branch: var("GITHUB_REF_NAME"),
        commit: var("GITHUB_SHA"),
        ci_system: Some("github-actions".into()),
        ci_run_id: var("GITHUB_RUN_ID"),
        ..BuildFacts::default()
    };
    let cx = BuildContext {
        dockerfile: None,
        ..prod_context()
    };
    (facts, cx)
}

#[test]
fn ci_build_missing_base_digest_fails_with_code_and_hint_then_passes_when_complete() {
    let (facts, cx) = ci_like_build_without_base_digest();
    let report = build_with(&PolicyConfig::default(), &facts, &cx);
    assert!(!report.passed);
    assert_eq!(codes(&report), one("B003"));
    let d = &report.diagnostics[0];
    assert_eq!(d.name, "base-digest-missing");
    assert_eq!(
        d.message,
        "base image `registry.acme.dev/mirror/debian:12` has no digest"
    );
    assert!(d
        .hint
        .contains("docker buildx imagetools inspect registry.acme.dev/mirror/debian:12"));
    assert!(render::human(&report, false).contains("error[B003]"));

    let mut complete = facts;
    complete.bases[0].digest = Some(D_BASE.into());
    let report = build_with(&PolicyConfig::default(), &complete, &cx);
    assert!(
        report.passed && report.diagnostics.is_empty(),
        "{:#?}",
        report.diagnostics
    );
}

// ---------------------------------------------------------------------------------------
// Renderers.

/// A failing production build with an error located in the Dockerfile, a warning, a waived
/// finding and a note: every part a renderer shows.
fn sample_report() -> Report {
    let mut facts = full_build();
    facts.bases[0].pulled_at = None;
    facts.commit = Some("4f1c2ab".into());
    let mut cx = prod_context();
    cx.ci_job_shared_by_all = true;
    cx.dockerfile = Some(format!(
        "FROM node:22 AS build\nFROM registry.acme.dev/mirror/debian:12@{D_BASE}\n"
    ));
    let config = PolicyConfig::default();
    let exceptions = [
        waiver("B004", "2026-12-01T00:00:00Z"),
        Exception {
            reason: "old: 50%, done".into(),
            ..waiver("B005", "2026-11-01T00:00:00Z")
        },
    ];
    let ev = Evaluation {
        config: &config,
        exceptions: &exceptions,
        policies: None,
        now: now(),
    };
    check_build(&ev, &facts, &cx).unwrap()
}

fn sarif_options() -> SarifOptions {
    SarifOptions {
        tool_version: "0.0.0-test".into(),
        fallback_uri: Some("lineage.toml".into()),
    }
}

#[test]
fn snapshot_human() {
    insta::assert_snapshot!("human_build", render::human(&sample_report(), false));
    let mut deploy = full_deploy();
    deploy.service = Some(api_service(None));
    deploy.approver = deploy.deployer.clone();
    deploy.environment = Some("prodution".into());
    let report = deploy_with(&PolicyConfig::default(), &deploy);
    insta::assert_snapshot!("human_deploy", render::human(&report, false));
}

#[test]
fn human_colour_is_a_parameter() {
    let report = sample_report();
    let coloured = render::human(&report, true);
    let plain = render::human(&report, false);
    assert!(coloured.contains("\x1b[1;31merror[B005]\x1b[0m"));
    assert!(!plain.contains('\x1b'));
}

#[test]
fn snapshot_json() {
    insta::assert_snapshot!("json_build", render::json(&sample_report()));
}

#[test]
fn json_round_trips() {
    let report = sample_report();
    let back: Report = serde_json::from_str(&render::json(&report)).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.schema, 1);
}

#[test]
fn snapshot_sarif() {
    insta::assert_snapshot!(
        "sarif_build",
        render::sarif(&sample_report(), &sarif_options())
    );
}

#[test]
fn snapshot_github_and_plain() {
    let report = sample_report();
    insta::assert_snapshot!("github_build", render::github(&report));
    insta::assert_snapshot!("github_summary_build", render::github_summary(&report));
    insta::assert_snapshot!("plain_build", render::plain(&report));
}

#[test]
fn sarif_is_read_by_the_typed_sarif_model() {
    let text = render::sarif(&sample_report(), &sarif_options());
    let log: serde_sarif::sarif::Sarif = serde_json::from_str(&text).unwrap();
    let run = &log.runs[0];
    let rules = run.tool.driver.rules.as_ref().unwrap();
    let results = run.results.as_ref().unwrap();
    assert_eq!(results.len(), sample_report().diagnostics.len());
    for r in results {
        let id = r.rule_id.as_deref().unwrap();
        let index = r.rule_index.unwrap() as usize;
        assert_eq!(rules[index].id, id);
        assert!(r.locations.as_ref().is_some_and(|l| !l.is_empty()));
    }
    let b009 = results
        .iter()
        .find(|r| r.rule_id.as_deref() == Some("B009"))
        .unwrap();
    let region = b009.locations.as_ref().unwrap()[0]
        .physical_location
        .as_ref()
        .unwrap()
        .region
        .as_ref()
        .unwrap();
    assert_eq!(region.start_line, Some(1));
    let waived = results
        .iter()
        .find(|r| r.rule_id.as_deref() == Some("B004"))
        .unwrap();
    assert_eq!(waived.suppressions.as_ref().unwrap().len(), 1);
}

/// The official SARIF 2.1.0 schema, as shipped inside the serde-sarif package (a
/// dev-dependency), read from Cargo's registry sources so no copy of it lives in this
/// repository.
fn sarif_schema() -> serde_json::Value {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let wanted = "serde-sarif-0.8.";
    let path = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo registry sources exist")
        .flat_map(|index| std::fs::read_dir(index.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(wanted))
        })
        .map(|p| p.join("src/schema.json"))
        .find(|p| p.exists())
        .expect("serde-sarif's sources are unpacked (it is a dev-dependency)");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        schema["title"],
        "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    );
    schema
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let mut schema = sarif_schema();
    // Erratum in the published schema: the `language` patterns (on `run` and
    // `toolComponent`) have a stray `]`, which a strict validator refuses as a regex while
    // checking the schema itself. Lineage never writes `language`, so dropping exactly those
    // patterns changes nothing its output is judged on.
    fn drop_erratum(v: &mut serde_json::Value) -> usize {
        const BAD: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
        match v {
            serde_json::Value::Object(m) => {
                let mut n = 0;
                if m.get("pattern").and_then(|p| p.as_str()) == Some(BAD) {
                    m.remove("pattern");
                    n += 1;
                }
                n + m.values_mut().map(drop_erratum).sum::<usize>()
            }
            serde_json::Value::Array(a) => a.iter_mut().map(drop_erratum).sum(),
            _ => 0,
        }
    }
    assert_eq!(drop_erratum(&mut schema), 2);
    let validator = jsonschema::validator_for(&schema).unwrap();
    for report in [
        sample_report(),
        deploy_with(&PolicyConfig::default(), &full_deploy()),
    ] {
        let log: serde_json::Value =
            serde_json::from_str(&render::sarif(&report, &sarif_options())).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&log)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // The validator does reject a broken log, so the check above means something.
    let broken = serde_json::json!({"version": "2.1.0", "runs": [{"results": []}]});
    assert!(!validator.is_valid(&broken));
}

/// Code-scanning UIs open `helpUri` as it stands: it must be absolute, and its anchor must be
/// the one a Markdown renderer (GitHub's: lowercase, spaces to `-`) gives the rule's heading.
#[test]
fn sarif_rule_links_are_absolute_and_land_on_the_rule() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/rules.md")).unwrap();
    let anchors: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_ascii_lowercase().replace(' ', "-"))
        .collect();
    let text = render::sarif(&sample_report(), &sarif_options());
    let log: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let builtin: Vec<&serde_json::Value> = rules
        .iter()
        .filter(|r| RuleId::lookup(r["id"].as_str().unwrap()).is_some())
        .collect();
    assert!(!builtin.is_empty());
    for rule in builtin {
        let uri = rule["helpUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{rule:#}"));
        let (page, anchor) = uri.split_once('#').unwrap();
        assert!(
            page.starts_with("https://") && page.ends_with("/docs/rules.md"),
            "{uri}"
        );
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{uri}: no such heading"
        );
        assert!(
            rule["help"]["markdown"].as_str().unwrap().contains(uri),
            "{rule:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tidy: docs/rules.md documents every rule, with the defaults the code uses.

#[test]
fn rules_doc_covers_every_rule_with_its_defaults() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/rules.md")).unwrap();
    for rule in RuleId::ALL {
        let info = rule.info();
        let heading = format!("### {} {}\n", info.code, info.name);
        assert!(
            doc.contains(&heading),
            "docs/rules.md lacks `{}`",
            heading.trim()
        );
        let row_start = format!("| {} | {} | ", info.code, info.name);
        let row = doc
            .lines()
            .find(|l| l.starts_with(&row_start))
            .unwrap_or_else(|| panic!("docs/rules.md has no table row for {}", info.code));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3], info.default_production.as_str(), "{row}");
        assert!(cells[4].starts_with(info.default_other.as_str()), "{row}");
        let section = &doc[doc.find(&heading).unwrap()..];
        let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
        assert!(
            section.contains(&format!("[{}]: ", info.code)),
            "{} has no example failure",
            info.code
        );
        assert!(section.contains("**Fix:**"), "{} has no fix", info.code);
    }
}
