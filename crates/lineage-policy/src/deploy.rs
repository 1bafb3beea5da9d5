//! The deploy gate: rules `D001`–`D014` over [`DeployFacts`].

use lineage_model::ImageRef;

use crate::build::Emitter;
use crate::config::{Approvals, PolicyConfig};
use crate::facts::{DeployFacts, SignatureStatus};
use crate::report::{Report, Subject};
use crate::rules::{Gate, RuleId};

/// Runs the built-in deploy rules, without exceptions or policies (see
/// [`crate::check_deploy`] for the whole gate).
pub fn evaluate_deploy(config: &PolicyConfig, facts: &DeployFacts) -> Report {
    let env = facts
        .environment
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut e = Emitter {
        config,
        env,
        production: facts.production,
        out: Vec::new(),
    };
    let service = facts
        .service_name
        .as_deref()
        .or(facts.service.as_ref().map(|s| s.name.as_str()))
        .unwrap_or("<service>")
        .to_string();

    owner(&mut e, facts, &service);
    environment(&mut e, facts, env);
    approval(&mut e, config, facts, env);
    image(&mut e, facts);
    provenance(&mut e, facts);
    base(&mut e, config, facts);
    older_than_running(&mut e, facts, env);
    promotion(&mut e, facts, env);

    let mut report = Report::new(Gate::Deploy, subject(facts, &service, env));
    report.diagnostics = e.out;
    report.tally();
    report
}

fn subject(facts: &DeployFacts, service: &str, env: Option<&str>) -> Subject {
    let build = facts.build.as_ref();
    Subject {
        service: Some(service.to_string()),
        owner: facts
            .service
            .as_ref()
            .and_then(|s| s.owner.as_ref())
            .map(ToString::to_string),
        environment: env.map(str::to_string),
        production: facts.production,
        image: facts.image.clone(),
        commit: build
            .and_then(|b| b.commit.as_ref())
            .map(ToString::to_string),
        base: build.and_then(|b| b.final_base()).map(|b| b.display()),
        deployer: facts.deployer.clone(),
        approved_by: facts.approver.clone(),
        ci: build.and_then(|b| b.ci.as_ref()).map(|c| match &c.run_id {
            Some(r) => format!("{} run {r}", c.system),
            None => c.system.clone(),
        }),
    }
}

fn owner(e: &mut Emitter, facts: &DeployFacts, service: &str) {
    let set_owner =
        format!("register an owner: `lineage service set-owner {service} --owner EMAIL`");
    match &facts.service {
        None => {
            e.emit(
                RuleId::OwnerMissing,
                format!("service `{service}` is not registered, so it has no owner"),
                format!("register it: `lineage service add {service} --owner EMAIL --repo URL`"),
            );
        }
        Some(s) => match &s.owner {
            None => {
                e.emit(
                    RuleId::OwnerMissing,
                    format!("service `{service}` has no owner"),
                    set_owner,
                );
            }
            Some(owner) if !facts.owner_known => {
                e.emit(
                    RuleId::OwnerMissing,
                    format!("owner `{owner}` of service `{service}` is not a known person or team"),
                    format!("fix the spelling or hand the service over: `lineage service set-owner {service} --owner EMAIL`"),
                );
            }
            Some(_) => {}
        },
    }
}

fn environment(e: &mut Emitter, facts: &DeployFacts, env: Option<&str>) {
    let configured = &facts.configured_environments;
    let list = if configured.is_empty() {
        "none are configured; add `[environments.NAME]` to lineage.toml".to_string()
    } else {
        format!(
            "configured: {}",
            configured
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match env {
        None => {
            let example = configured.first().map_or("production", String::as_str);
            e.emit(
                RuleId::EnvironmentUnknown,
                "no target environment was given".to_string(),
                format!("pass `--env {example}` ({list})"),
            );
        }
        Some(name) if !configured.iter().any(|c| c == name) => {
            let names: Vec<&str> = configured.iter().map(String::as_str).collect();
            let closest = lineage_model::closest(&name.to_ascii_lowercase(), &names);
            let hint = match closest {
                Some(c) => format!("did you mean `--env {c}`? ({list})"),
                None => format!("pass one of the configured environments ({list})"),
            };
            e.emit(
                RuleId::EnvironmentUnknown,
                format!("environment `{name}` is not configured"),
                hint,
            );
        }
        Some(_) => {}
    }
}

fn approval(e: &mut Emitter, config: &PolicyConfig, facts: &DeployFacts, env: Option<&str>) {
    let where_ = env.unwrap_or("this environment");
    let gates = &config.gates;
    let needed = gates.approval_applies(env, facts.production);
    let four_eyes = gates.four_eyes_applies(env, facts.production);
    let deployer = facts
        .deployer
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let declared = facts
        .approver
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let same = |a: &str| deployer.is_some_and(|d| lineage_model::Identity::same(a, d));
    match gates.approvals {
        Approvals::Declared => {
            if needed && declared.is_none() {
                e.emit(
                    RuleId::ApprovalMissing,
                    format!("deploy to `{where_}` has no approver"),
                    "ask a second person to approve and pass `--approved-by EMAIL`".to_string(),
                );
            }
            if let Some(approver) = declared {
                if four_eyes && same(approver) {
                    e.emit(
                        RuleId::FourEyes,
                        format!("`{approver}` approved their own deploy to `{where_}`"),
                        "ask someone other than the deployer to approve and pass their identity in `--approved-by`".to_string(),
                    );
                }
            }
        }
        Approvals::Recorded => {
            let digest = digest_of(facts);
            let approve = format!(
                "someone other than the deployer runs `lineage approve {} --env {where_}`",
                facts.image.as_deref().unwrap_or(&digest)
            );
            let recorded = &facts.recorded_approvals;
            // A named approver must be one who recorded an approval: a name is not an act.
            if let Some(named) = declared {
                if !recorded
                    .iter()
                    .any(|r| lineage_model::Identity::same(r, named))
                {
                    e.emit(
                        RuleId::ApprovalMissing,
                        format!("`{named}` has recorded no approval of `{digest}` for `{where_}` (`[gates] approvals = \"recorded\"`)"),
                        approve,
                    );
                    return;
                }
            }
            let others = recorded.iter().filter(|r| !same(r)).count();
            if needed && recorded.is_empty() {
                e.emit(
                    RuleId::ApprovalMissing,
                    format!("deploy of `{digest}` to `{where_}` has no recorded approval"),
                    approve,
                );
            } else if four_eyes && !recorded.is_empty() && others == 0 {
                let who = deployer.unwrap_or_default();
                e.emit(
                    RuleId::FourEyes,
                    format!("the only recorded approval of `{digest}` for `{where_}` is by the deployer `{who}`"),
                    approve,
                );
            }
        }
    }
}

fn image(e: &mut Emitter, facts: &DeployFacts) {
    let Some(image) = facts
        .image
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        e.emit(
            RuleId::ImageNotPinned,
            "no image was given".to_string(),
            "pass the image by digest: `--image registry.example.com/app@sha256:<64 hex>`"
                .to_string(),
        );
        return;
    };
    match ImageRef::parse(image) {
        Ok(r) if r.is_pinned() => {}
        Ok(r) => {
            e.emit(
                RuleId::ImageNotPinned,
                format!("image `{image}` is not pinned by digest"),
                format!("deploy by digest: `{}@sha256:<64 hex>` (`lineage trace {image}` shows the digest built for it)", r.repository),
            );
        }
        Err(err) => {
            e.emit(
                RuleId::ImageNotPinned,
                format!("image reference `{image}` {}", err.problem),
                err.hint,
            );
        }
    }
}

fn provenance(e: &mut Emitter, facts: &DeployFacts) {
    let image = facts.image.as_deref().unwrap_or("<image>");
    // Without a digest there is nothing to look a build up by; D005 already says so.
    let pinned = ImageRef::parse(image.trim()).is_ok_and(|r| r.digest.is_some());
    match (&facts.build, facts.build_check_passed) {
        (None, _) if !pinned => {}
        (None, _) => {
            e.emit(
                RuleId::BuildRecordMissing,
                format!("image `{image}` has no build record; its provenance is unknown"),
                "deploy an image built by your pipeline, or record its build first: `lineage build record --digest sha256:… …`".to_string(),
            );
        }
        (Some(_), Some(false)) => {
            e.emit(
                RuleId::BuildCheckFailed,
                format!("the build of `{image}` failed its build check"),
                format!("run `lineage build check --digest {}` to see what is missing, fix the pipeline and rebuild", digest_of(facts)),
            );
        }
        _ => {}
    }
    if let Some(build) = facts
        .build
        .as_ref()
        .filter(|b| repository_differs(facts, b))
    {
        e.emit(
            RuleId::ImageRepositoryMismatch,
            format!(
                "`{}` was built as `{}@{}` (service `{}`), not as `{image}`",
                build.digest, build.image, build.digest, build.service
            ),
            format!(
                "deploy it under the repository it was built for: `--image {}@{}`",
                build.image, build.digest
            ),
        );
    }
    if let Some(reason) = &facts.retired {
        e.emit(
            RuleId::DigestRetired,
            format!("image `{image}` is retired: {reason}"),
            format!(
                "deploy a newer build; `lineage trace {}` lists recent digests",
                facts.service_name.as_deref().unwrap_or("SERVICE")
            ),
        );
    }
    match &facts.signature {
        SignatureStatus::Untrusted { reason } => {
            e.emit(
                RuleId::SignatureUntrusted,
                format!("the provenance signature of `{image}` does not verify: {reason}"),
                "check `[trust]` in lineage.toml lists the signing key, or rebuild so the record is signed again".to_string(),
            );
        }
        SignatureStatus::Unsigned => {
            e.emit(
                RuleId::ProvenanceUnsigned,
                format!("the provenance record of `{image}` is not signed"),
                "configure a signing key for `lineage build record` (see `[trust]` in lineage.toml) and rebuild".to_string(),
            );
        }
        SignatureStatus::Verified { .. } | SignatureStatus::NotChecked => {}
    }
}

/// Whether the image names another repository than the one the digest was built under.
fn repository_differs(facts: &DeployFacts, build: &lineage_model::BuildRecord) -> bool {
    facts
        .image
        .as_deref()
        .and_then(|i| ImageRef::parse(i.trim()).ok())
        .is_some_and(|r| r.repository != build.image)
}

fn base(e: &mut Emitter, config: &PolicyConfig, facts: &DeployFacts) {
    let Some(stale) = &facts.stale_base else {
        return;
    };
    let limit = config.gates.stale_base_days;
    if stale.days >= limit {
        e.emit(
            RuleId::BaseStale,
            format!(
                "the final base `{}` has been behind a newer digest of its tag for {} days (limit {limit})",
                stale.base, stale.days
            ),
            "rebuild on the current base: `lineage report stale` gives the command".to_string(),
        );
    }
}

/// D013: a digest built before the one recorded as running in the environment, unless the
/// deployer records it as a rollback. Builds without a recorded time are not compared: a
/// wrong "older" is worse than none.
fn older_than_running(e: &mut Emitter, facts: &DeployFacts, env: Option<&str>) {
    let (Some(running), false) = (&facts.running, facts.rollback) else {
        return;
    };
    let Some(built) = facts
        .build
        .as_ref()
        .and_then(|b| b.finished_at.or(b.started_at))
    else {
        return;
    };
    let Some(running_built) = running.built_at else {
        return;
    };
    let same = facts
        .build
        .as_ref()
        .is_some_and(|b| b.digest.to_string() == running.digest);
    if same || built >= running_built {
        return;
    }
    let image = facts.image.as_deref().unwrap_or("<image>");
    let where_ = env.unwrap_or("this environment");
    e.emit(
        RuleId::OlderThanRunning,
        format!(
            "image `{image}` was built at {built}, before `{}` (built at {running_built}), which is recorded as running in `{where_}` since {}",
            running.digest, running.since
        ),
        format!(
            "deploy the current build, or record the rollback on purpose: `lineage deploy record --image {image} --env {where_} --by EMAIL --rollback`"
        ),
    );
}

/// D014: the target environment is on `[promotion] path` after its first step, and the
/// digest did not run in the step before (or not for its soak time, or failed there, or was
/// not recorded healthy when that is required). A digest that ran in the target before was
/// promoted then.
fn promotion(e: &mut Emitter, facts: &DeployFacts, env: Option<&str>) {
    let Some(p) = &facts.promotion else {
        return;
    };
    if p.ran_in_target {
        return;
    }
    let image = facts.image.as_deref().unwrap_or("<image>");
    let to = env.unwrap_or("this environment");
    let from = &p.from;
    let promote = format!("lineage promote {image} --to {from}");
    let (message, hint) = match (p.reached_at, p.soaked_minutes) {
        (None, _) => (
            format!("image `{image}` never ran in `{from}`, the step before `{to}` on the promotion path"),
            format!("deploy it to `{from}` first (`{promote}`), and promote it once it has run there"),
        ),
        (Some(at), Some(soaked)) if soaked < p.soak_minutes as i64 => (
            format!(
                "image `{image}` has run in `{from}` for {soaked} of the {} minutes it must soak there before `{to}` (since {at})",
                p.soak_minutes
            ),
            format!("wait {} more minutes, or waive D014 with an exception if this cannot wait", p.soak_minutes as i64 - soaked),
        ),
        _ => match p.outcome.as_deref() {
            Some("failed") => (
                format!("image `{image}` failed in `{from}` (its newest outcome there), so it does not go on to `{to}`"),
                format!("fix it and build again; `lineage history SERVICE --env {from}` shows what happened"),
            ),
            Some("healthy") => return,
            other if p.require_healthy => (
                format!(
                    "image `{image}` has no healthy outcome in `{from}` ({}), and `[promotion] require_healthy` asks for one before `{to}`",
                    other.map_or("none recorded".to_string(), |o| format!("newest: {o}"))
                ),
                format!("record it once it is: `lineage deploy outcome --service SERVICE --env {from} --status healthy`"),
            ),
            _ => return,
        },
    };
    e.emit(RuleId::PromotionSkipped, message, hint);
}

fn digest_of(facts: &DeployFacts) -> String {
    facts
        .build
        .as_ref()
        .map(|b| b.digest.to_string())
        .or_else(|| {
            facts
                .image
                .as_deref()
                .and_then(|i| i.split_once('@'))
                .map(|(_, d)| d.to_string())
        })
        .unwrap_or_else(|| "sha256:…".to_string())
}
