//! The build gate: rules `B001`–`B013` over [`BuildFacts`] and [`BuildContext`].

use lineage_model::{CommitId, Digest, ImageRef, Repository, SourceRepo, Tag, Timestamp};

use crate::config::PolicyConfig;
use crate::dockerfile::{parse_dockerfile_with_args, Dockerfile, ImageUse};
use crate::facts::{BaseFacts, BuildContext, BuildFacts};
use crate::report::{Diagnostic, Level, Location, Report, Subject};
use crate::rules::{Gate, RuleId, Severity};

/// Collects findings at the severity the config gives each rule in one environment.
pub(crate) struct Emitter<'a> {
    pub config: &'a PolicyConfig,
    pub env: Option<&'a str>,
    pub production: bool,
    pub out: Vec<Diagnostic>,
}

impl Emitter<'_> {
    pub fn emit(&mut self, rule: RuleId, message: String, hint: String) -> Option<&mut Diagnostic> {
        let level = match self.config.severity(rule, self.env, self.production) {
            Severity::Off => return None,
            Severity::Warn => Level::Warning,
            Severity::Error => Level::Error,
        };
        self.out
            .push(Diagnostic::builtin(rule, level, message, hint));
        self.out.last_mut()
    }
}

/// Runs the built-in build rules and returns the report, without exceptions or policies
/// applied (see [`crate::check_build`] for the whole gate).
pub fn evaluate_build(config: &PolicyConfig, facts: &BuildFacts, cx: &BuildContext) -> Report {
    let dockerfile = cx
        .dockerfile
        .as_deref()
        .map(|text| parse_dockerfile_with_args(text, &cx.build_args));
    let mut e = Emitter {
        config,
        env: cx.environment.as_deref(),
        production: cx.production,
        out: Vec::new(),
    };
    let service = facts.service.as_deref().unwrap_or("<service>");

    final_digest(&mut e, facts);
    bases(&mut e, facts, dockerfile.as_ref());
    commit(&mut e, facts);
    source(&mut e, facts);
    ci(&mut e, facts);
    mutable_tag(&mut e, facts);
    if let Some(df) = &dockerfile {
        unpinned_from(&mut e, facts, df);
        dockerfile_agrees(&mut e, facts, df);
    }
    copied_metadata(&mut e, facts, cx, service);
    allowlist(&mut e, facts, dockerfile.as_ref());

    let mut report = Report::new(Gate::Build, build_subject(facts, cx));
    report.diagnostics = e.out;
    if let Some(df) = &dockerfile {
        let path = dockerfile_path(facts);
        report.notes.extend(
            df.problems
                .iter()
                .map(|p| format!("{path}:{}: {}", p.line, p.message)),
        );
    }
    report.tally();
    report
}

fn build_subject(facts: &BuildFacts, cx: &BuildContext) -> Subject {
    let final_base = facts
        .bases
        .iter()
        .find(|b| b.final_stage)
        .or(facts.bases.last());
    let image = match (&facts.image, &facts.digest) {
        (Some(i), Some(d)) if !i.contains('@') => Some(format!("{i}@{d}")),
        (Some(i), _) => Some(i.clone()),
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    };
    let ci = match (&facts.ci_system, &facts.ci_run_id) {
        (Some(s), Some(r)) => Some(format!("{s} run {r}")),
        (Some(s), None) => Some(s.clone()),
        _ => None,
    };
    Subject {
        service: facts.service.clone(),
        owner: cx
            .service
            .as_ref()
            .and_then(|s| s.owner.as_ref())
            .map(ToString::to_string),
        environment: cx.environment.clone(),
        production: cx.production,
        image,
        commit: facts.commit.clone(),
        base: final_base.map(BaseFacts::display),
        deployer: None,
        approved_by: None,
        ci,
    }
}

fn dockerfile_path(facts: &BuildFacts) -> &str {
    facts.dockerfile_path.as_deref().unwrap_or("Dockerfile")
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn final_digest(e: &mut Emitter, facts: &BuildFacts) {
    let from_image = facts
        .image
        .as_deref()
        .and_then(|i| i.split_once('@'))
        .map(|(_, d)| d);
    let digest = blank(&facts.digest).or(from_image);
    let hint = "pass the digest the registry returned, e.g. `--digest \"$(docker buildx imagetools inspect IMAGE --format '{{json .Manifest.Digest}}' | tr -d '\\\"')\"`, or read it from `docker buildx build --metadata-file`".to_string();
    match digest {
        None => {
            e.emit(
                RuleId::FinalDigestMissing,
                "no final image digest was given".to_string(),
                hint,
            );
        }
        Some(d) => {
            if let Err(err) = Digest::parse(d) {
                e.emit(
                    RuleId::FinalDigestMissing,
                    format!("final digest `{d}` {}", err.problem),
                    format!("write `sha256:<64 hex>`; {hint}"),
                );
            }
        }
    }
}

fn bases(e: &mut Emitter, facts: &BuildFacts, dockerfile: Option<&Dockerfile>) {
    if facts.bases.is_empty() {
        let dockerfile_bases: Vec<&str> = dockerfile
            .map(|df| {
                df.bases
                    .iter()
                    .filter(|b| b.used_by == ImageUse::From)
                    .map(|b| b.reference.as_str())
                    .collect()
            })
            .unwrap_or_default();
        // A Dockerfile that only builds `FROM scratch` legitimately has no base.
        let only_scratch =
            dockerfile.is_some_and(|df| !df.stages.is_empty()) && dockerfile_bases.is_empty();
        if !only_scratch {
            let message = match dockerfile_bases.first() {
                Some(first) => {
                    format!("no base image was recorded, but the Dockerfile builds on `{first}`")
                }
                None => "no base image was recorded".to_string(),
            };
            e.emit(
                RuleId::BaseNameOrTagMissing,
                message,
                "pass each base as `--base NAME:TAG@sha256:<64 hex>` (e.g. `--base docker.io/library/debian:12@sha256:…`)".to_string(),
            );
        }
        return;
    }
    for (i, base) in facts.bases.iter().enumerate() {
        let shown = base.display();
        match blank(&base.name) {
            None => {
                e.emit(
                    RuleId::BaseNameOrTagMissing,
                    format!("base image #{} (`{shown}`) has no name", i + 1),
                    "pass the base as `--base NAME:TAG@sha256:<64 hex>`".to_string(),
                );
            }
            Some(name) => {
                if let Err(err) = Repository::parse(name) {
                    e.emit(
                        RuleId::BaseNameOrTagMissing,
                        format!("base image name `{name}` {}", err.problem),
                        err.hint,
                    );
                }
            }
        }
        let name = base.name.as_deref().unwrap_or("<base>");
        match blank(&base.tag) {
            None => {
                e.emit(
                    RuleId::BaseNameOrTagMissing,
                    format!("base image `{shown}` has no tag"),
                    format!("pass the tag the Dockerfile names, e.g. `--base {name}:12@sha256:<64 hex>`"),
                );
            }
            Some(tag) => {
                if let Err(err) = Tag::parse(tag) {
                    e.emit(
                        RuleId::BaseNameOrTagMissing,
                        format!("base image tag `{tag}` {}", err.problem),
                        err.hint,
                    );
                }
            }
        }
        let tagged = format!("{name}:{}", base.tag.as_deref().unwrap_or("TAG"));
        let name_tag = match &base.tag {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        };
        let digest_hint = format!("resolve it with `docker buildx imagetools inspect {tagged}` and pass `--base {tagged}@sha256:<64 hex>`");
        match blank(&base.digest) {
            None => {
                e.emit(
                    RuleId::BaseDigestMissing,
                    format!("base image `{shown}` has no digest"),
                    digest_hint,
                );
            }
            Some(d) => {
                if let Err(err) = Digest::parse(d) {
                    e.emit(
                        RuleId::BaseDigestMissing,
                        format!(
                            "base image `{shown}` has digest `{d}`, which {}",
                            err.problem
                        ),
                        digest_hint,
                    );
                }
            }
        }
        let pull_hint = format!("pass when `{tagged}` was pulled, in RFC 3339, with one `--base-pulled-at` per `--base` in the same order, e.g. `--base-pulled-at 2026-11-17T09:30:00Z`");
        match blank(&base.pulled_at) {
            None => {
                e.emit(
                    RuleId::BasePullTimeMissing,
                    format!("base image `{name_tag}` has no pull time"),
                    pull_hint,
                );
            }
            Some(t) => {
                if let Err(err) = Timestamp::parse(t) {
                    e.emit(
                        RuleId::BasePullTimeMissing,
                        format!(
                            "base image `{name_tag}` has pull time `{t}`, which {}",
                            err.problem
                        ),
                        pull_hint,
                    );
                }
            }
        }
    }
}

fn commit(e: &mut Emitter, facts: &BuildFacts) {
    let hint = "pass the full id: `--commit \"$(git rev-parse HEAD)\"` (in GitHub Actions `$GITHUB_SHA`, in GitLab CI `$CI_COMMIT_SHA`)".to_string();
    match blank(&facts.commit) {
        None => {
            e.emit(
                RuleId::CommitNotFull,
                "no commit was given".to_string(),
                hint,
            );
        }
        Some(c) => {
            if let Err(err) = CommitId::parse(c) {
                e.emit(
                    RuleId::CommitNotFull,
                    format!("commit `{c}` {}", err.problem),
                    hint,
                );
            }
        }
    }
}

fn source(e: &mut Emitter, facts: &BuildFacts) {
    let repo_hint = "pass `--repo https://github.com/ORG/REPO` (in GitHub Actions `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`, in GitLab CI `$CI_PROJECT_URL`)".to_string();
    match blank(&facts.source_repo) {
        None => {
            e.emit(
                RuleId::SourceRepoOrBranchMissing,
                "no source repository was given".to_string(),
                repo_hint,
            );
        }
        Some(r) => {
            if let Err(err) = SourceRepo::parse(r) {
                e.emit(
                    RuleId::SourceRepoOrBranchMissing,
                    format!("source repository `{r}` {}", err.problem),
                    repo_hint,
                );
            }
        }
    }
    if blank(&facts.branch).is_none() {
        e.emit(
            RuleId::SourceRepoOrBranchMissing,
            "no branch or ref was given".to_string(),
            "pass `--branch \"$(git rev-parse --abbrev-ref HEAD)\"` (in GitHub Actions `$GITHUB_REF`, in GitLab CI `$CI_COMMIT_REF_NAME`)".to_string(),
        );
    }
}

fn ci(e: &mut Emitter, facts: &BuildFacts) {
    let hint = "build in CI and pass `--ci-system github-actions --ci-run-id \"$GITHUB_RUN_ID\"` (GitLab: `--ci-system gitlab-ci --ci-run-id \"$CI_PIPELINE_ID\"`); `lineage build record` reads these from the CI environment".to_string();
    match (blank(&facts.ci_system), blank(&facts.ci_run_id)) {
        (None, None) => {
            e.emit(
                RuleId::NotBuiltInCi,
                "no CI system and no run id: this looks like a build outside CI".to_string(),
                hint,
            );
        }
        (None, Some(run)) => {
            e.emit(
                RuleId::NotBuiltInCi,
                format!("run id `{run}` is given but no CI system"),
                hint,
            );
        }
        (Some(system), None) => {
            e.emit(
                RuleId::NotBuiltInCi,
                format!("CI system `{system}` is given but no run id"),
                hint,
            );
        }
        (Some(_), Some(_)) => {}
    }
}

fn mutable_tag(e: &mut Emitter, facts: &BuildFacts) {
    let Some(image) = blank(&facts.image) else {
        return;
    };
    let Ok(parsed) = ImageRef::parse(image) else {
        return;
    };
    // `--image x:latest --digest D` records the build by D just as `x:latest@D` does.
    let digest_given = facts
        .digest
        .as_deref()
        .is_some_and(|d| lineage_model::Digest::parse(d.trim()).is_ok());
    if parsed.is_pinned() || digest_given {
        return;
    }
    let tag = parsed.tag.as_ref().map_or("latest", Tag::as_str);
    let pinned = format!(
        "{}@{}",
        parsed.repository,
        facts.digest.as_deref().unwrap_or("sha256:<64 hex>")
    );
    e.emit(
        RuleId::MutableTagOnly,
        format!("image `{image}` is referenced only by the mutable tag `{tag}`"),
        format!("refer to the build by digest: `{pinned}`"),
    );
}

fn unpinned_from(e: &mut Emitter, facts: &BuildFacts, df: &Dockerfile) {
    let path = dockerfile_path(facts);
    for base in df.unpinned() {
        let what = match base.used_by {
            ImageUse::From => "FROM",
            ImageUse::CopyFrom => "COPY --from",
        };
        let shown = if base.written != base.reference {
            format!("`{}` (written `{}`)", base.reference, base.written)
        } else {
            format!("`{}`", base.reference)
        };
        let name = base
            .name
            .as_ref()
            .map_or_else(|| base.reference.clone(), ToString::to_string);
        let tagged = match &base.tag {
            Some(t) => format!("{name}:{t}"),
            None => name.clone(),
        };
        if let Some(d) = e.emit(
            RuleId::UnpinnedDockerfileFrom,
            format!("{what} {shown} on line {} is not pinned by digest", base.line),
            format!("pin it: `{what} {tagged}@sha256:<64 hex>` (get the digest with `docker buildx imagetools inspect {tagged}`)"),
        ) {
            d.location = Some(Location {
                file: path.to_string(),
                line: Some(base.line),
                column: Some(1),
            });
        }
    }
}

/// B014: a digest-pinned `FROM` of the Dockerfile must be the base the record names for that
/// image, and the final stage's must be recorded (a record with no bases is B002's business).
fn dockerfile_agrees(e: &mut Emitter, facts: &BuildFacts, df: &Dockerfile) {
    if facts.bases.is_empty() || facts.bases.iter().any(|b| blank(&b.name).is_none()) {
        return;
    }
    let path = dockerfile_path(facts);
    for from in df.bases.iter().filter(|b| b.used_by == ImageUse::From) {
        let (Some(name), Some(digest)) = (&from.name, &from.digest) else {
            continue;
        };
        let recorded: Vec<&BaseFacts> = facts
            .bases
            .iter()
            .filter(|b| {
                b.name
                    .as_deref()
                    .and_then(|n| Repository::parse(n).ok())
                    .is_some_and(|r| r == *name)
            })
            .collect();
        let agrees = recorded
            .iter()
            .any(|b| b.digest.as_deref() == Some(digest.to_string().as_str()));
        // A build stage the record leaves out is an omission, not a contradiction; the
        // final stage's base must be there.
        // A base recorded without a digest is B003's finding, not a contradiction.
        let undigested = !recorded.is_empty()
            && recorded.iter().all(|b| {
                b.digest
                    .as_deref()
                    .is_none_or(|d| Digest::parse(d.trim()).is_err())
            });
        if agrees || undigested || (recorded.is_empty() && !from.final_stage) {
            continue;
        }
        let said = if recorded.is_empty() {
            format!("the record names no base `{name}`")
        } else {
            let list: Vec<String> = recorded
                .iter()
                .map(|b| format!("`{}`", b.display()))
                .collect();
            format!("the record says {}", list.join(", "))
        };
        if let Some(d) = e.emit(
            RuleId::DockerfileBaseMismatch,
            format!("the Dockerfile builds `FROM {name}@{digest}` (line {}), but {said}", from.line),
            format!("record the base the Dockerfile pins: `--base {}@{digest}`, or leave `--base` out and let `--dockerfile` fill it", from.reference.split('@').next().unwrap_or(&from.reference)),
        ) {
            d.location = Some(Location {
                file: path.to_string(),
                line: Some(from.line),
                column: Some(1),
            });
        }
    }
}

fn copied_metadata(e: &mut Emitter, facts: &BuildFacts, cx: &BuildContext, service: &str) {
    if !cx.same_commit_services.is_empty() {
        let others = cx
            .same_commit_services
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let repo = facts.source_repo.as_deref().unwrap_or("<repo>");
        let commit = facts.commit.as_deref().unwrap_or("<commit>");
        e.emit(
            RuleId::SharedCommit,
            format!("repository `{repo}` at commit `{commit}` is also recorded for {others}"),
            format!("make the pipeline of `{service}` report its own `--repo` and `--commit` instead of copied values; for a monorepo that really builds several services from one commit, record an exception: `lineage exception add --rule B010 --service {service} --reason \"monorepo\" ...`"),
        );
    }
    if cx.ci_job_shared_by_all {
        let job = facts.ci_job.as_deref().unwrap_or("<job>");
        e.emit(
            RuleId::SharedCiJob,
            format!("CI job name `{job}` is reported by every service"),
            "pass the job that really built this service, e.g. `--ci-job \"$GITHUB_WORKFLOW/$GITHUB_JOB\"` (GitLab: `$CI_JOB_NAME`), instead of a fixed name".to_string(),
        );
    }
    let Some(given) = blank(&facts.source_repo).and_then(|r| SourceRepo::parse(r).ok()) else {
        return;
    };
    let own = cx.service.as_ref().and_then(|s| s.source_repo.as_ref());
    if own == Some(&given) {
        return;
    }
    let owners: Vec<&str> = cx
        .other_service_repos
        .iter()
        .filter(|(other, repo)| {
            other != service && SourceRepo::parse(repo).ok().as_ref() == Some(&given)
        })
        .map(|(other, _)| other.as_str())
        .collect();
    if let Some(other) = owners.first() {
        let fix = match own {
            Some(own) => format!("pass `--repo {own}`, the repository registered for `{service}`"),
            None => format!("pass `--repo` with the repository `{service}` is built from, and register it with `lineage service add {service} --repo URL`"),
        };
        e.emit(
            RuleId::ForeignSourceRepo,
            format!("source repository `{given}` belongs to service `{other}`, not `{service}`"),
            fix,
        );
    }
}

fn allowlist(e: &mut Emitter, facts: &BuildFacts, dockerfile: Option<&Dockerfile>) {
    let list = &e.config.allowlist;
    if list.is_empty() {
        return;
    }
    let mut seen = Vec::new();
    let recorded = facts
        .bases
        .iter()
        .filter_map(|b| b.name.as_deref().and_then(|n| Repository::parse(n).ok()));
    let from_dockerfile = dockerfile
        .into_iter()
        .flat_map(|df| df.bases.iter().filter_map(|b| b.name.clone()));
    for repo in recorded.chain(from_dockerfile) {
        if seen.contains(&repo) {
            continue;
        }
        if !list.allows(repo.registry(), &repo.to_string()) {
            let allowed = list
                .registries
                .iter()
                .chain(&list.base_images)
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            e.emit(
                RuleId::BaseNotAllowlisted,
                format!("base image `{repo}` is not in the allowlist"),
                format!("build on an allowed base ({allowed}), or add `{repo}` to `base_images` under `[allowlist]` in lineage.toml"),
            );
        }
        seen.push(repo);
    }
}
