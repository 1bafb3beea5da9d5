//! The build and deploy gates on the command line: `build check`, `deploy check`, and the
//! gate that `build record` and `deploy record` run before they write.
//!
//! Gathering facts is lenient on purpose: an abbreviated commit or a base without a digest
//! must reach `lineage-policy` as a value, so that it comes back as a coded finding with a
//! fix rather than as a parse error. Everything that is *not* a fact (the policy sections of
//! lineage.toml, the Rego files, `--env`, the signing key) is parsed strictly before the
//! ledger is opened, and a problem with it exits 2: the gate could not decide.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use lineage_core::{ci, provenance, record};
use lineage_model::{
    BuildRecord, CheckResult, DeployRecord, Digest, EnvName, Identity, ImageRef, Record,
    ServiceName, SourceRepo, Timestamp,
};
use lineage_policy::render::SarifOptions;
use lineage_policy::{
    BaseFacts, BuildContext, BuildFacts, DeployFacts, Evaluation, Policies, PolicyConfig, Report,
};
use lineage_store::{Store, StoreError};

use crate::args::{BuildArgs, Format};
use crate::settings::{Settings, ENV_GITHUB_STEP_SUMMARY, ENV_NO_COLOR};
use crate::{CliError, Outcome};

/// How a gate report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For a person; colour on a terminal.
    Human,
    /// The versioned report (`"schema": 1`).
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// GitHub Actions workflow commands (`::error title=…::…`).
    Github,
    /// ASCII without colour, for GitLab and other CI logs.
    Plain,
}

/// Options every gate command shares.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Report format (default: human, or json under `--format json`).
    #[arg(long, value_enum)]
    pub output: Option<Output>,
    /// A directory of Rego policies (`*.rego`), in addition to `policies/` beside lineage.toml.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
}

/// The gate options of `build check` and `build record`.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildGateArgs {
    /// The environment the build is for; it picks the rule severities (default: production's).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub check: CheckArgs,
    /// `build record`: record a build that fails the production build check; the failure is
    /// recorded with it.
    #[arg(long)]
    pub allow_failures: bool,
    /// `build record`: sign SLSA v1 provenance with this private key (PEM; the passphrase
    /// comes from LINEAGE_KEY_PASSWORD or a prompt).
    #[arg(long, value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
}

/// `lineage deploy check`.
#[derive(Debug, Args)]
pub struct DeployCheckArgs {
    /// The image to deploy, ideally pinned: `REPOSITORY@sha256:…`.
    #[arg(long)]
    pub image: String,
    /// The target environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Who deploys (default: LINEAGE_ACTOR, then the CI actor, then $USER).
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub approved_by: Option<String>,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// Rego files larger than this are refused; policies are small.
const MAX_POLICY_BYTES: u64 = 1 << 20;
const MAX_DOCKERFILE_BYTES: u64 = 1 << 20;
/// How many recent builds per service the copied-metadata rules look at.
const RECENT_BUILDS: usize = 50;

/// What a gate needs besides the facts, loaded and checked before the ledger is opened.
pub struct Setup {
    policy: PolicyConfig,
    policies: Option<Policies>,
    output: Output,
    /// Whether `--output` was given (record commands only show findings when asked).
    output_explicit: bool,
    /// Where SARIF results without a file of their own point.
    fallback_uri: Option<String>,
}

pub fn setup(check: &CheckArgs, s: &Settings) -> Result<Setup, CliError> {
    let policy = match &s.config_file {
        Some((text, _)) => PolicyConfig::from_toml(text, &config_name(s)).map_err(|e| {
            CliError::new(
                e.to_string(),
                e.hint.clone().unwrap_or_else(|| {
                    "fix lineage.toml; docs/rules.md lists every setting".into()
                }),
            )
        })?,
        None => PolicyConfig::default(),
    };
    let files = policy_files(s, check.policy_dir.as_deref(), false)?;
    let policies = if files.is_empty() {
        None
    } else {
        Some(Policies::load(&files).map_err(rego_error)?)
    };
    let output = check.output.unwrap_or(match s.format {
        Format::Json => Output::Json,
        Format::Human => Output::Human,
    });
    Ok(Setup {
        policy,
        policies,
        output,
        output_explicit: check.output.is_some(),
        fallback_uri: s.config_file.as_ref().map(|_| config_name(s)),
    })
}

/// The settings file's name as the user knows it, for positions in errors.
pub fn config_name(s: &Settings) -> String {
    s.config_path
        .as_ref()
        .map_or_else(|| "lineage.toml".to_string(), |p| p.display().to_string())
}

pub fn rego_error(e: lineage_policy::RegoError) -> CliError {
    CliError::new(
        e.to_string(),
        "fix the policy at that position; `lineage policy test` runs its tests",
    )
}

/// The policy directories: `policies/` beside lineage.toml (when there is one) and `extra`.
pub fn policy_dirs(s: &Settings, extra: Option<&Path>) -> Result<Vec<PathBuf>, CliError> {
    let mut dirs = Vec::new();
    if let Some((_, dir)) = &s.config_file {
        let beside = dir.join("policies");
        if beside.is_dir() {
            dirs.push(beside);
        }
    }
    if let Some(extra) = extra {
        if !extra.is_dir() {
            return Err(CliError::new(
                format!("--policy-dir `{}` is not a directory", extra.display()),
                "pass the directory that holds your `*.rego` files, e.g. `--policy-dir policies`",
            ));
        }
        let same = dirs.iter().any(|d| {
            d.canonicalize().ok().is_some() && d.canonicalize().ok() == extra.canonicalize().ok()
        });
        if !same {
            dirs.push(extra.to_path_buf());
        }
    }
    Ok(dirs)
}

/// `(path, text)` of every `*.rego` file in the policy directories, sorted per directory so
/// evaluation order (and output) does not depend on the file system. Tests (`*_test.rego`)
/// are included only when asked for.
pub fn policy_files(
    s: &Settings,
    extra: Option<&Path>,
    with_tests: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for dir in policy_dirs(s, extra)? {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            CliError::new(
                format!("cannot read policy directory `{}`: {e}", dir.display()),
                "check the path and its permissions",
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
            .filter(|p| with_tests || !p.to_string_lossy().ends_with("_test.rego"))
            .collect();
        paths.sort();
        for p in paths {
            let text = read_limited(&p, MAX_POLICY_BYTES)?;
            let shown = p.display().to_string();
            let shown = shown.strip_prefix("./").unwrap_or(&shown).to_string();
            out.push((shown, text));
        }
    }
    Ok(out)
}

pub use crate::commands::read_limited;

/// Opens the ledger for reading if it exists. A check never creates one: with no ledger
/// there is simply no context (no exceptions, no other services).
fn open_existing(s: &Settings) -> Result<Option<Box<dyn Store>>, CliError> {
    match lineage_store::open(&s.store, false) {
        Ok(store) => Ok(Some(store)),
        Err(StoreError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The environment class of a build: `--env` (checked against `[environments]`), or
/// production's severities when none is given, because a build can be promoted anywhere.
fn build_env(gate: &BuildGateArgs, s: &Settings) -> Result<(Option<EnvName>, bool), CliError> {
    match &gate.env {
        Some(e) => {
            let env = s.config.environment(e)?;
            let production = s.config.is_production(&env);
            Ok((Some(env), production))
        }
        None => Ok((None, true)),
    }
}

/// The exceptions recorded in the ledger, as the gate reads them.
pub fn exceptions(store: &dyn Store) -> Result<Vec<lineage_policy::Exception>, CliError> {
    Ok(store
        .facts("exception", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Exception(x) => Some(lineage_policy::Exception {
                rule: x.rule,
                service: x.service,
                reason: x.reason,
                approved_by: x.approved_by.to_string(),
                expires: x.expires,
            }),
            _ => None,
        })
        .collect())
}

/// Build facts from flags and the CI environment, without validating anything.
fn facts_from_flags(args: &BuildArgs, s: &Settings, store: Option<&dyn Store>) -> BuildFacts {
    let d = ci::detect(&s.env).unwrap_or_default();
    let pick = |flag: &Option<String>, found: &Option<String>| flag.clone().or(found.clone());
    let parsed = args.image.as_deref().and_then(|i| ImageRef::parse(i).ok());
    let digest = args.digest.clone().or_else(|| {
        args.image
            .as_deref()
            .and_then(|i| i.split_once('@'))
            .map(|(_, d)| d.to_string())
    });
    let mut tags = args.tags.clone();
    if let Some(t) = parsed.as_ref().and_then(|p| p.tag.as_ref()) {
        if !tags.contains(&t.to_string()) {
            tags.insert(0, t.to_string());
        }
    }
    let last = args.bases.len().saturating_sub(1);
    let pulled = &args.base_pulled_at;
    let bases = args
        .bases
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut base = BaseFacts::from_reference(b);
            // Normalise a name that parses (`python` → `docker.io/library/python`), so flags
            // and a stored record give policies the same input; a bad one stays as given.
            if let Some(repo) = base
                .name
                .as_deref()
                .and_then(|n| lineage_model::Repository::parse(n).ok())
            {
                base.name = Some(repo.to_string());
            }
            // One `--base-pulled-at` covers every base; otherwise they pair up in order.
            base.pulled_at = if pulled.len() == 1 {
                pulled.first().cloned()
            } else {
                pulled.get(i).cloned()
            };
            base.final_stage = i == last;
            base
        })
        .collect();
    let service = args.service.clone().or_else(|| {
        let repo = &parsed.as_ref()?.repository;
        let claimed = store.and_then(|st| st.service_for_image(repo).ok().flatten());
        Some(claimed.map_or_else(|| repo.short_name().to_string(), |n| n.to_string()))
    });
    BuildFacts {
        service,
        image: args.image.clone(),
        digest,
        tags,
        bases,
        source_repo: pick(&args.repo, &d.source_repo),
        branch: pick(&args.branch, &d.git_ref),
        commit: pick(&args.commit, &d.commit),
        ci_system: pick(&args.ci_system, &d.system),
        ci_job: pick(&args.ci_job, &d.job),
        ci_run_id: pick(&args.ci_run_id, &d.run_id),
        ci_url: pick(&args.ci_url, &d.url),
        builder: pick(&args.builder, &d.builder),
        dockerfile_path: args.dockerfile.as_ref().map(|p| p.display().to_string()),
    }
}

/// What the build gate looks up in the ledger: the service, and other services' builds for
/// the copied-metadata rules (B010, B011, B012).
fn build_context(
    store: Option<&dyn Store>,
    facts: &BuildFacts,
    env: Option<&EnvName>,
    production: bool,
    dockerfile: Option<String>,
) -> Result<BuildContext, CliError> {
    let mut cx = BuildContext {
        environment: env.map(ToString::to_string),
        production,
        dockerfile,
        ..BuildContext::default()
    };
    let Some(store) = store else {
        return Ok(cx);
    };
    let name = facts.service.as_deref().unwrap_or_default();
    if let Ok(n) = ServiceName::parse(name) {
        cx.service = store.service(&n)?;
    }
    let repo = facts
        .source_repo
        .as_deref()
        .and_then(|r| SourceRepo::parse(r).ok());
    let commit = facts.commit.as_deref().map(str::to_ascii_lowercase);
    let mut others_with_builds = 0;
    let mut all_share_job = facts.ci_job.is_some();
    for other in store.services()? {
        if other.name.as_str() == name {
            continue;
        }
        if let Some(r) = &other.source_repo {
            cx.other_service_repos
                .push((other.name.to_string(), r.to_string()));
        }
        let builds = store.builds_of_service(&other.name, RECENT_BUILDS)?;
        let same_commit = builds.iter().any(|b| {
            repo.is_some()
                && b.source_repo == repo
                && b.commit.as_ref().map(ToString::to_string) == commit
        });
        if same_commit {
            cx.same_commit_services.push(other.name.to_string());
        }
        if let Some(latest) = builds.first() {
            others_with_builds += 1;
            let job = latest.ci.as_ref().and_then(|c| c.job.as_ref());
            all_share_job &= job == facts.ci_job.as_ref();
        }
    }
    cx.ci_job_shared_by_all = all_share_job && others_with_builds > 0;
    Ok(cx)
}

fn run_build_gate(
    setup: &Setup,
    store: Option<&dyn Store>,
    facts: &BuildFacts,
    cx: &BuildContext,
    now: Timestamp,
) -> Result<Report, CliError> {
    let exceptions = match store {
        Some(st) => exceptions(st)?,
        None => Vec::new(),
    };
    let ev = Evaluation {
        config: &setup.policy,
        exceptions: &exceptions,
        policies: setup.policies.as_ref(),
        now,
    };
    lineage_policy::check_build(&ev, facts, cx).map_err(rego_error)
}

fn read_dockerfile(path: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    path.map(|p| read_limited(p, MAX_DOCKERFILE_BYTES))
        .transpose()
}

/// `lineage build check`: the build gate on flags plus CI variables, or on a recorded build
/// (`--digest D` without `--image`).
pub fn build_check(args: BuildArgs, s: &Settings) -> Result<Outcome, CliError> {
    let gate = &args.gate;
    if gate.allow_failures || gate.sign_key.is_some() || args.print_detected {
        return Err(CliError::new(
            "`--allow-failures`, `--sign-key` and `--print-detected` belong to `build record`",
            "drop them from `build check`; it only reports and never writes",
        ));
    }
    let setup = setup(&gate.check, s)?;
    let (env, production) = build_env(gate, s)?;
    let dockerfile = read_dockerfile(args.dockerfile.as_ref())?;
    let (facts, store) = if args.image.is_none() && args.digest.is_some() {
        let raw = args.digest.as_deref().unwrap_or_default();
        let digest = Digest::parse(raw).map_err(|e| CliError::from(e.in_field("--digest")))?;
        let store = crate::commands::open(s, false)?;
        let Some(build) = store.build(&digest)? else {
            return Err(CliError::new(
                format!("no build is recorded for `{digest}`"),
                "check a build before recording it with the same flags as `build record` (`--image REF@DIGEST …`)",
            ));
        };
        let mut facts = BuildFacts::from(&build);
        if let Some(p) = &args.dockerfile {
            facts.dockerfile_path = Some(p.display().to_string());
        }
        (facts, Some(store))
    } else {
        let store = open_existing(s)?;
        (facts_from_flags(&args, s, store.as_deref()), store)
    };
    let cx = build_context(
        store.as_deref(),
        &facts,
        env.as_ref(),
        production,
        dockerfile,
    )?;
    let report = run_build_gate(&setup, store.as_deref(), &facts, &cx, s.now)?;
    emit(&setup, &report, s, false)?;
    Ok(verdict(&report))
}

fn verdict(report: &Report) -> Outcome {
    if report.passed {
        Outcome::Ok
    } else {
        Outcome::NotFound
    }
}

/// The build gate as `build record` runs it: everything parsed before the ledger opens.
pub struct BuildGate {
    setup: Setup,
    env: Option<EnvName>,
    production: bool,
    dockerfile: Option<String>,
    key: Option<lineage_attest::PrivateKey>,
    allow_failures: bool,
}

pub fn prepare_build(args: &BuildArgs, s: &Settings) -> Result<BuildGate, CliError> {
    let setup = setup(&args.gate.check, s)?;
    let (env, production) = build_env(&args.gate, s)?;
    let key = args
        .gate
        .sign_key
        .as_deref()
        .map(|p| crate::gates_admin::load_private_key(p, s))
        .transpose()?;
    Ok(BuildGate {
        setup,
        env,
        production,
        dockerfile: read_dockerfile(args.dockerfile.as_ref())?,
        key,
        allow_failures: args.gate.allow_failures,
    })
}

/// Runs the build gate on the assembled record, then records the build, its check result
/// and (with `--sign-key`) its signed provenance. A failing production build is refused
/// unless `--allow-failures`.
pub fn record_build(
    gate: BuildGate,
    build: BuildRecord,
    store: &mut dyn Store,
    s: &Settings,
) -> Result<Outcome, CliError> {
    // A conflicting record is bad input whatever the gate says; report it as such first.
    if let Some(existing) = store.build(&build.digest)? {
        if existing != build {
            return Err(lineage_core::Error::BuildConflict {
                digest: build.digest.to_string(),
                fields: record::diff(&existing, &build),
            }
            .into());
        }
    }
    let facts = BuildFacts::from(&build);
    let cx = build_context(
        Some(&*store),
        &facts,
        gate.env.as_ref(),
        gate.production,
        gate.dockerfile.clone(),
    )?;
    let report = run_build_gate(&gate.setup, Some(&*store), &facts, &cx, s.now)?;
    if !report.passed && gate.production && !gate.allow_failures {
        emit(&gate.setup, &report, s, false)?;
        refuse(
            s.format,
            format!(
                "the build of `{}` fails the production build check ({}); nothing was recorded",
                build.digest,
                errors_phrase(&report)
            ),
            "fix the findings above and build again, or pass `--allow-failures` to record it anyway (the failure is recorded with it)",
        );
        return Ok(Outcome::NotFound);
    }
    let actor = s.actor(None).ok();
    let result = record::build(store, build.clone(), s.now, None)?;
    let mut facts_to_record = Vec::new();
    let check = CheckResult {
        digest: build.digest.clone(),
        gate: "build".into(),
        passed: report.passed,
        failed_rules: failed_codes(&report),
        allowed_failures: !report.passed && gate.allow_failures,
        by: actor.clone(),
        at: s.now,
    };
    // Re-recording an identical build is a no-op; so is its check, unless the verdict moved.
    let same_as_last = latest_check(&*store, &build.digest)?.is_some_and(|c| {
        (c.passed, &c.failed_rules, c.allowed_failures)
            == (check.passed, &check.failed_rules, check.allowed_failures)
    });
    if result.outcome == "recorded" || !same_as_last {
        facts_to_record.push(Record::Check(check));
    }
    let mut signed_by = None;
    if let Some(key) = &gate.key {
        let already = !store
            .facts("attestation", Some(&build.digest.to_string()))?
            .is_empty();
        if result.outcome == "recorded" || !already {
            let att = provenance::sign_build(&build, key, s.now)?;
            facts_to_record.push(Record::Attestation(att));
            signed_by = Some(key.key_id().to_string());
        }
    }
    let indexes = if facts_to_record.is_empty() {
        Vec::new()
    } else {
        store.record_facts(&facts_to_record, s.now, actor.as_ref())?
    };
    show_findings(&gate.setup, &report, s)?;
    crate::render::record(s.format, &result);
    if let (Some(key_id), Some(index), Format::Human) = (&signed_by, indexes.last(), s.format) {
        println!("signed provenance (SLSA v1) with key {key_id} (ledger entry {index})");
    }
    Ok(Outcome::Ok)
}

/// The newest recorded build-gate result of `digest`.
pub fn latest_check(store: &dyn Store, digest: &Digest) -> Result<Option<CheckResult>, CliError> {
    Ok(store
        .facts("check", Some(&digest.to_string()))?
        .into_iter()
        .rev()
        .find_map(|e| match e.record {
            Record::Check(c) if c.gate == "build" => Some(c),
            _ => None,
        }))
}

fn failed_codes(report: &Report) -> Vec<String> {
    let mut codes: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_failure())
        .map(|d| d.code.clone())
        .collect();
    codes.dedup();
    codes
}

fn errors_phrase(report: &Report) -> String {
    let n = report.counts.errors;
    let codes = failed_codes(report).join(", ");
    format!("{n} error{}: {codes}", if n == 1 { "" } else { "s" })
}

/// Deploy facts for the gate. `image`, `env`, the deployer and the approver are taken as
/// given; the rest is looked up in the ledger and the trust policy.
fn deploy_facts(
    store: &dyn Store,
    s: &Settings,
    trust: &lineage_attest::TrustPolicy,
    image: &str,
    env: Option<&str>,
    deployer: Option<String>,
    approver: Option<String>,
) -> Result<DeployFacts, CliError> {
    let parsed = ImageRef::parse(image).ok();
    let mut facts = DeployFacts {
        image: Some(image.to_string()),
        environment: env.map(str::to_string),
        configured_environments: s
            .config
            .environments
            .iter()
            .map(ToString::to_string)
            .collect(),
        deployer,
        approver,
        ..DeployFacts::default()
    };
    let env = env.and_then(|e| EnvName::parse(e.trim()).ok());
    facts.production = env.as_ref().is_some_and(|e| s.config.is_production(e));
    if let Some(r) = &parsed {
        match record::service_for_image(store, &r.repository, None) {
            Ok(service) => {
                facts.service_name = Some(service.name.to_string());
                facts.owner_known = service.owner.is_some();
                facts.service = Some(service);
            }
            Err(lineage_core::Error::Store(e)) => return Err(e.into()),
            Err(_) => facts.service_name = Some(r.repository.short_name().to_string()),
        }
    }
    let Some(digest) = parsed.and_then(|r| r.digest) else {
        return Ok(facts);
    };
    facts.build = store.build(&digest)?;
    facts.build_check_passed = latest_check(store, &digest)?.map(|c| c.passed);
    facts.retired = store
        .facts("retire", Some(&digest.to_string()))?
        .into_iter()
        .rev()
        .find_map(|e| match e.record {
            Record::Retire(r) => Some(r.reason),
            _ => None,
        });
    facts.signature = provenance::status(store, trust, env.as_ref(), &digest)?;
    facts.first_staging_deploy = store
        .deploys_of_digest(&digest)?
        .iter()
        .filter(|d| d.env.as_str() == "staging")
        .map(|d| d.at)
        .min();
    Ok(facts)
}

fn run_deploy_gate(
    setup: &Setup,
    store: &dyn Store,
    facts: &DeployFacts,
    now: Timestamp,
) -> Result<Report, CliError> {
    let exceptions = exceptions(store)?;
    let ev = Evaluation {
        config: &setup.policy,
        exceptions: &exceptions,
        policies: setup.policies.as_ref(),
        now,
    };
    lineage_policy::check_deploy(&ev, facts).map_err(rego_error)
}

/// `lineage deploy check`.
pub fn deploy_check(args: DeployCheckArgs, s: &Settings) -> Result<Outcome, CliError> {
    let setup = setup(&args.check, s)?;
    let trust = s.trust_policy()?;
    let deployer = match args.by {
        Some(b) => Some(b),
        None => s.actor(None).ok().map(|i| i.to_string()),
    };
    let store = crate::commands::open(s, false)?;
    let facts = deploy_facts(
        store.as_ref(),
        s,
        &trust,
        &args.image,
        args.env.as_deref(),
        deployer,
        args.approved_by,
    )?;
    let report = run_deploy_gate(&setup, store.as_ref(), &facts, s.now)?;
    emit(&setup, &report, s, false)?;
    Ok(verdict(&report))
}

/// Loaded before the ledger opens, so a broken policy or trust section writes nothing.
pub struct DeployGate {
    setup: Setup,
    trust: lineage_attest::TrustPolicy,
}

pub fn prepare_deploy(check: &CheckArgs, s: &Settings) -> Result<DeployGate, CliError> {
    Ok(DeployGate {
        setup: setup(check, s)?,
        trust: s.trust_policy()?,
    })
}

/// Runs the deploy gate on a resolved deploy. Returns the refusal (exit 1, nothing written)
/// when the gate fails; otherwise shows any findings and lets the caller record.
pub fn refuse_deploy(
    gate: &DeployGate,
    store: &dyn Store,
    deploy: &DeployRecord,
    s: &Settings,
) -> Result<Option<Outcome>, CliError> {
    let image = format!("{}@{}", deploy.image, deploy.digest);
    let facts = deploy_facts(
        store,
        s,
        &gate.trust,
        &image,
        Some(deploy.env.as_str()),
        Some(deploy.by.to_string()),
        deploy.approved_by.as_ref().map(Identity::to_string),
    )?;
    let report = run_deploy_gate(&gate.setup, store, &facts, s.now)?;
    if report.passed {
        show_findings(&gate.setup, &report, s)?;
        return Ok(None);
    }
    emit(&gate.setup, &report, s, false)?;
    refuse(
        s.format,
        format!(
            "the deploy of `{image}` to `{}` fails the deploy check ({}); nothing was recorded",
            deploy.env,
            errors_phrase(&report)
        ),
        "fix the findings above, or have an approver record an exception: `lineage exception add --rule CODE --service NAME --reason TEXT --approved-by ID --expires DATE`",
    );
    Ok(Some(Outcome::NotFound))
}

/// A record command wrote nothing because its gate failed: exit 1 with a reason on stderr.
fn refuse(format: Format, message: String, hint: &str) {
    match format {
        Format::Json => eprintln!(
            "{}",
            serde_json::json!({"schema": 1, "error": {"message": format!("refused: {message}"), "hint": hint}})
        ),
        Format::Human => {
            eprintln!("error: refused: {message}");
            eprintln!("  hint: {hint}");
        }
    }
}

/// A record command that passed its gate shows warnings, waivers and notes on stderr, so
/// stdout keeps carrying only the record result. Under `--format json` they are left to
/// `build check`/`deploy check`, unless `--output` asks for them.
fn show_findings(setup: &Setup, report: &Report, s: &Settings) -> Result<(), CliError> {
    let quiet = report.diagnostics.is_empty() && report.notes.is_empty();
    if quiet || (s.format == Format::Json && !setup.output_explicit) {
        append_step_summary(report, s);
        return Ok(());
    }
    emit(setup, report, s, true)
}

/// Prints the report in the chosen format and appends the job summary in GitHub Actions.
fn emit(setup: &Setup, report: &Report, s: &Settings, to_stderr: bool) -> Result<(), CliError> {
    let terminal = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let colour = terminal && !s.env.contains_key(ENV_NO_COLOR);
    let text = match setup.output {
        Output::Human => lineage_policy::render::human(report, colour),
        Output::Json => lineage_policy::render::json(report),
        Output::Sarif => lineage_policy::render::sarif(
            report,
            &SarifOptions {
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                fallback_uri: report
                    .diagnostics
                    .iter()
                    .find_map(|d| d.location.as_ref().map(|l| l.file.clone()))
                    .or_else(|| setup.fallback_uri.clone()),
            },
        ),
        Output::Github => lineage_policy::render::github(report),
        Output::Plain => lineage_policy::render::plain(report),
    };
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    append_step_summary(report, s);
    Ok(())
}

/// Appends the Markdown summary to `$GITHUB_STEP_SUMMARY`. A summary that cannot be written
/// must not change the verdict, so a failure is a warning, not an error.
fn append_step_summary(report: &Report, s: &Settings) {
    let Some(path) = s.env.get(ENV_GITHUB_STEP_SUMMARY).filter(|p| !p.is_empty()) else {
        return;
    };
    let result = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(lineage_policy::render::github_summary(report).as_bytes()));
    if let Err(e) = result {
        match s.format {
            Format::Json => eprintln!(
                "{}",
                serde_json::json!({"schema": 1, "warning": format!("cannot append the job summary to `{path}`: {e}")})
            ),
            Format::Human => {
                eprintln!("warning: cannot append the job summary to `{path}`: {e}")
            }
        }
    }
}
