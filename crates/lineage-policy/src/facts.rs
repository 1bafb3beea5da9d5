//! The facts a gate judges, as the caller found them.
//!
//! Build facts are deliberately lenient: raw strings, all optional. The build gate exists to
//! say "the commit `abc123` is abbreviated" as a coded finding with a fix, which it cannot do
//! if the value had to parse before the gate saw it. Anything the caller had to look up
//! (other services, the Dockerfile, the environment's class) comes in a context struct, so
//! this crate stays free of IO.

use std::collections::BTreeMap;

use lineage_model::{BuildRecord, Service, Timestamp};
use serde::{Deserialize, Serialize};

/// One base image as reported, every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// RFC 3339, as given.
    pub pulled_at: Option<String>,
    pub final_stage: bool,
}

impl BaseFacts {
    /// Splits `name[:tag][@digest]` without validating any part, so that a malformed value
    /// reaches the gate and becomes a finding.
    pub fn from_reference(reference: &str) -> BaseFacts {
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        // A `:` after the last `/` is a tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        BaseFacts {
            name: (!name.is_empty()).then(|| name.to_string()),
            tag,
            digest,
            pulled_at: None,
            final_stage: false,
        }
    }

    /// `name:tag@digest` with whatever parts are known.
    pub fn display(&self) -> String {
        let mut s = self.name.clone().unwrap_or_else(|| "<no name>".into());
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// A build as reported by flags, CI variables or an existing record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFacts {
    pub service: Option<String>,
    /// The image as the pipeline refers to it, e.g. `registry.acme.dev/api:1.4.2` or
    /// `registry.acme.dev/api@sha256:...`.
    pub image: Option<String>,
    /// The final image digest, `sha256:<64 hex>`.
    pub digest: Option<String>,
    pub tags: Vec<String>,
    pub bases: Vec<BaseFacts>,
    pub source_repo: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub ci_system: Option<String>,
    pub ci_job: Option<String>,
    pub ci_run_id: Option<String>,
    pub ci_url: Option<String>,
    pub builder: Option<String>,
    /// Path of the Dockerfile, for locations in findings.
    pub dockerfile_path: Option<String>,
}

impl From<&BuildRecord> for BuildFacts {
    fn from(r: &BuildRecord) -> BuildFacts {
        let digest = r.digest.to_string();
        BuildFacts {
            service: Some(r.service.to_string()),
            // A stored record always names its image by digest.
            image: Some(format!("{}@{}", r.image, digest)),
            digest: Some(digest),
            tags: r.tags.iter().map(ToString::to_string).collect(),
            bases: r
                .bases
                .iter()
                .map(|b| BaseFacts {
                    name: Some(b.name.to_string()),
                    tag: b.tag.as_ref().map(ToString::to_string),
                    digest: b.digest.as_ref().map(ToString::to_string),
                    pulled_at: b.pulled_at.as_ref().map(ToString::to_string),
                    final_stage: b.final_stage,
                })
                .collect(),
            source_repo: r.source_repo.as_ref().map(ToString::to_string),
            branch: r.git_ref.clone(),
            commit: r.commit.as_ref().map(ToString::to_string),
            ci_system: r.ci.as_ref().map(|c| c.system.clone()),
            ci_job: r.ci.as_ref().and_then(|c| c.job.clone()),
            ci_run_id: r.ci.as_ref().and_then(|c| c.run_id.clone()),
            ci_url: r.ci.as_ref().and_then(|c| c.url.clone()),
            builder: r.builder.as_ref().map(ToString::to_string),
            dockerfile_path: r.dockerfile.as_ref().map(|d| d.path.clone()),
        }
    }
}

/// What the caller looked up for a build check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildContext {
    /// The environment the build is for, if the pipeline says.
    pub environment: Option<String>,
    /// Whether that environment is production (from `[environments]`); production builds
    /// get the stricter default severities.
    pub production: bool,
    /// The Dockerfile's text, when the caller could read it.
    pub dockerfile: Option<String>,
    /// `--build-arg` values, which override `ARG` defaults in `FROM`.
    pub build_args: BTreeMap<String, String>,
    /// The service as registered, for the owner and its own repository.
    pub service: Option<Service>,
    /// Other services with a build recorded from the same repository and commit.
    pub same_commit_services: Vec<String>,
    /// True when every service (more than one) reports this build's CI job name.
    pub ci_job_shared_by_all: bool,
    /// `(service, source repository)` of the other registered services.
    pub other_service_repos: Vec<(String, String)>,
}

/// What the signing code found about the provenance signature of the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    Verified {
        key: String,
    },
    Untrusted {
        reason: String,
    },
    Unsigned,
    /// Verification was not attempted (no trust configured); no finding.
    #[default]
    NotChecked,
}

/// A deploy about to happen, with what the caller looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployFacts {
    /// The service name as given.
    pub service_name: Option<String>,
    /// The service as registered, if it is.
    pub service: Option<Service>,
    /// Whether the owner resolves to someone the organisation knows (a directory, a team
    /// list); `false` with an owner set means the owner is stale or mistyped.
    pub owner_known: bool,
    /// The requested environment, as given.
    pub environment: Option<String>,
    /// Environment names from `[environments]`.
    pub configured_environments: Vec<String>,
    /// Whether the requested environment is production.
    pub production: bool,
    pub deployer: Option<String>,
    /// The approver the deployer names (`--approved-by`), as given.
    pub approver: Option<String>,
    /// Who recorded an approval of this digest for this environment (`lineage approve`),
    /// oldest first. Under `[gates] approvals = "recorded"` only these count.
    #[serde(default)]
    pub recorded_approvals: Vec<String>,
    /// The image as given, e.g. `registry.acme.dev/api@sha256:...`.
    pub image: Option<String>,
    /// The build record of the digest, if one exists.
    pub build: Option<BuildRecord>,
    /// Whether the build passed its build check; `None` when not known.
    pub build_check_passed: Option<bool>,
    /// Why the digest was retired, when it was.
    pub retired: Option<String>,
    pub signature: SignatureStatus,
    /// When this digest first reached staging, for soak-time policies.
    pub first_staging_deploy: Option<Timestamp>,
    /// The final base, when a newer digest of its tag has been seen, and for how many days.
    #[serde(default)]
    pub stale_base: Option<StaleBase>,
    /// What the ledger records as running for this service in this environment now, when
    /// it is another digest than this one.
    #[serde(default)]
    pub running: Option<RunningDigest>,
    /// The deployer declares this deploy a rollback (`deploy record --rollback`).
    #[serde(default)]
    pub rollback: bool,
    /// Where the digest stands on `[promotion] path`, when the target environment is on it
    /// after its first step (rule D014).
    #[serde(default)]
    pub promotion: Option<PromotionFacts>,
}

/// What rule D014 needs: the environment a digest must come from, and how it did there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionFacts {
    /// The previous environment on the path.
    pub from: String,
    /// When the digest was first deployed there; `None`: never.
    pub reached_at: Option<Timestamp>,
    /// Whole minutes since `reached_at` at the time of the check.
    pub soaked_minutes: Option<i64>,
    /// The soak time required there.
    pub soak_minutes: u64,
    /// The newest recorded outcome of the digest there (`healthy`, `degraded`, `failed`).
    pub outcome: Option<String>,
    /// Whether `[promotion] require_healthy` is set.
    pub require_healthy: bool,
    /// The digest ran in the target environment before: it was promoted then, and going
    /// back to it (a rollback) needs no new promotion.
    pub ran_in_target: bool,
}

/// The digest recorded as running where a deploy goes, for rule D013.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningDigest {
    pub digest: String,
    /// When the deploy that put it there happened.
    pub since: Timestamp,
    /// When its build finished (or started), when recorded.
    pub built_at: Option<Timestamp>,
}

/// A final base left behind by its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleBase {
    /// `name:tag@digest` of the base the build used.
    pub base: String,
    /// When a newer digest of the tag was first seen.
    pub since: Timestamp,
    /// Whole days from `since` to the time of the check.
    pub days: i64,
}
