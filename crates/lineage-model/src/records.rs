//! The records Lineage keeps, in their wire form.
//!
//! These are what the ledger stores (as canonical JSON, see [`canonical_json`]) and what JSON
//! output embeds. Field names are part of the public format: add fields, never rename them.
//! Optional facts are `Option`s because an incomplete record is still worth keeping; the build
//! gate decides whether an incomplete record may pass.

use serde::{Deserialize, Serialize};

use crate::{
    CommitId, Digest, EnvName, Identity, ParseError, Purl, Repository, ServiceName, SourceRepo,
    Tag, Timestamp,
};

/// One image build: what was produced, from what, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRecord {
    pub service: ServiceName,
    pub image: Repository,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Every `FROM` image; exactly one is marked `final_stage` when there is any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<SourceRepo>,
    /// Branch or ref, as CI names it (`main`, `refs/tags/v1.2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<Identity>,
    /// `os/arch[/variant]`, e.g. `linux/amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<DockerfileRef>,
}

impl BuildRecord {
    /// The most bytes each free-text field may hold (`git_ref`; the CI run's `system`, `job`,
    /// `run_id`, `url`; `platform`; the Dockerfile `path`).
    pub fn free_text_limit(field: &str) -> usize {
        match field {
            "system" | "platform" => 64,
            "run_id" => 128,
            "git_ref" | "job" => 256,
            "path" => 1024,
            _ => 2048,
        }
    }

    /// Refuses free text that is too long or could drive a terminal (see
    /// [`crate::check_free_text`]). Every writer of builds calls this; reading a record never
    /// does, so older records stay readable and are made inert when shown.
    pub fn check_free_text(&self) -> Result<(), ParseError> {
        let check = |field: &'static str, short: &str, value: Option<&str>| match value {
            Some(v) => crate::check_free_text(field, v, Self::free_text_limit(short)),
            None => Ok(()),
        };
        check("git_ref", "git_ref", self.git_ref.as_deref())?;
        if let Some(ci) = &self.ci {
            check("ci.system", "system", Some(&ci.system))?;
            check("ci.job", "job", ci.job.as_deref())?;
            check("ci.run_id", "run_id", ci.run_id.as_deref())?;
            check("ci.url", "url", ci.url.as_deref())?;
        }
        check("platform", "platform", self.platform.as_deref())?;
        if let Some(d) = &self.dockerfile {
            check("dockerfile.path", "path", Some(&d.path))?;
            if let Some(h) = &d.sha256 {
                if h.len() != 64
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(ParseError::new(
                        "dockerfile.sha256",
                        h,
                        "is not 64 lowercase hex characters",
                        "give the SHA-256 of the Dockerfile, e.g. the output of `sha256sum Dockerfile`",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The base the final stage was built on, which is what runs underneath the app.
    pub fn final_base(&self) -> Option<&BaseImage> {
        self.bases
            .iter()
            .find(|b| b.final_stage)
            .or(self.bases.last())
    }

    /// When this build saw `base` under its tag: the pull time is best, the build's start
    /// and finish next, and the time the ledger recorded the build is a safe upper bound.
    /// One rule, so the store's projection and the freshness answers agree.
    pub fn base_seen_at(&self, base: &BaseImage, recorded_at: Timestamp) -> Timestamp {
        base.pulled_at
            .or(self.started_at)
            .or(self.finished_at)
            .unwrap_or(recorded_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    pub name: Repository,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled_at: Option<Timestamp>,
    /// True for the base of the stage that becomes the image.
    #[serde(default)]
    pub final_stage: bool,
}

impl BaseImage {
    /// `name:tag@digest` with whatever parts are known.
    pub fn display(&self) -> String {
        let mut s = self.name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t.as_str());
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

/// Where a build ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiRun {
    /// `github-actions`, `gitlab-ci`, `jenkins`, `buildkite`, `circleci`,
    /// `azure-pipelines`, `bitbucket-pipelines`, or what the user passed.
    pub system: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerfileRef {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One deploy of one digest to one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRecord {
    pub service: ServiceName,
    pub image: Repository,
    pub digest: Digest,
    pub env: EnvName,
    pub by: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub at: Timestamp,
    /// The deployer declared this deploy a rollback to an older build (`deploy record
    /// --rollback`), so rule D013 does not hold it against them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// The configuration deployed with the image (`deploy record --config`), sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigFile>,
}

/// A service and who answers for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: ServiceName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_owner: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_approver: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<SourceRepo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Repository>,
}

/// A change to a service's record: the full new state, who made it and when. History is the
/// sequence of these; the old value of a field is the previous change's new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceChange {
    pub service: Service,
    pub by: Identity,
    pub at: Timestamp,
}

/// A base image digest seen in a registry or in a build: what layer matching and the
/// staleness report know about a base tag over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSeen {
    pub name: Repository,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    pub digest: Digest,
    /// The image's layer digests, bottom first (for matching images built on it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Digest>,
    /// The image config's `created` time, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// When Lineage first saw this digest under this tag.
    pub seen_at: Timestamp,
}

/// A waiver: one rule does not fail one service's checks until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// The rule code (`B003`) or a Rego policy's code.
    pub rule: String,
    /// The service, or `*` for every service.
    pub service: String,
    pub reason: String,
    pub approved_by: Identity,
    pub expires: Timestamp,
    pub by: Identity,
    pub at: Timestamp,
}

/// A digest that must not be deployed any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retirement {
    pub digest: Digest,
    pub reason: String,
    pub by: Identity,
    pub at: Timestamp,
}

/// Someone agreed that a digest may run in an environment: an act recorded under the
/// approver's own identity, not a claim made by the deployer (`[gates] approvals =
/// "recorded"` makes the deploy gate accept only these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub digest: Digest,
    pub env: EnvName,
    pub by: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// A signed statement about a digest (a DSSE envelope, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    pub digest: Digest,
    pub predicate_type: String,
    pub envelope: String,
    pub at: Timestamp,
}

/// The outcome of a gate for a digest, kept so later gates can ask "did its build pass?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    pub digest: Digest,
    /// `build` or `deploy`.
    pub gate: String,
    pub passed: bool,
    /// Codes of the rules that failed (errors, not warnings or waived ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_rules: Vec<String>,
    /// True when the record was written despite failures (`--allow-failures`).
    #[serde(default)]
    pub allowed_failures: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Identity>,
    pub at: Timestamp,
}

/// An API token of `lineage serve`: its name, what it may do, and the SHA-256 of its secret.
/// The secret itself is shown once when the token is created and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    /// A short random id, public (it names the token in lists and revocations).
    pub id: String,
    pub name: String,
    /// `read`, `build:write`, `deploy:write`, `approve`, `act-as` or `admin`.
    pub scopes: Vec<String>,
    /// Who acts with this token; absent for tokens made before identities, which act as
    /// `sa:token-NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Lowercase hex SHA-256 of the whole secret token string.
    pub sha256: String,
    pub by: Identity,
    pub at: Timestamp,
}

/// A token that must not be accepted any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevocation {
    pub id: String,
    pub by: Identity,
    pub at: Timestamp,
}

/// A deliberate change of the key that signs the ledger's checkpoints (`lineage log
/// rotate-key`). Keeping it in the log lets an auditor follow the chain of keys: checkpoints up
/// to and including this entry are signed by the old key, later ones by the new key. When the
/// old key was lost, it could not sign this entry, and the new key signs it instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogKeyRotation {
    /// The C2SP note key id (8 lowercase hex digits) of the key being retired.
    pub old_key_id: String,
    /// The retired key as a note verifier key (`<origin>+<key id>+<base64 key>`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_public_key: Option<String>,
    /// The key that signs from now on, as a note verifier key.
    pub new_public_key: String,
    /// True when the old key was lost, so this entry is not sealed by it.
    #[serde(default)]
    pub old_key_lost: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: Identity,
    pub at: Timestamp,
}

/// A placement that ended: the service no longer runs in the environment (`deploy end`,
/// `service rename`/`remove`, or reconciliation with what runs). `running` stops showing it;
/// a deploy recorded later starts a new placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementEnd {
    pub service: ServiceName,
    pub env: EnvName,
    /// The digest that was recorded as running when it ended, for the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: Identity,
    pub at: Timestamp,
}

/// How a deploy turned out, as whoever watched it says (`lineage deploy outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    Healthy,
    Degraded,
    Failed,
}

impl OutcomeStatus {
    pub fn parse(input: &str) -> Result<OutcomeStatus, ParseError> {
        match input {
            "healthy" => Ok(OutcomeStatus::Healthy),
            "degraded" => Ok(OutcomeStatus::Degraded),
            "failed" => Ok(OutcomeStatus::Failed),
            _ => Err(ParseError::new(
                "status",
                input,
                "is not an outcome",
                "write `healthy`, `degraded` or `failed`",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Healthy => "healthy",
            OutcomeStatus::Degraded => "degraded",
            OutcomeStatus::Failed => "failed",
        }
    }
}

/// What followed the deploy of `digest` to `env`: health checks passed, or it degraded or
/// failed. The newest outcome of a placement is its state; promotion reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployOutcome {
    pub service: ServiceName,
    pub env: EnvName,
    pub digest: Digest,
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub by: Identity,
    pub at: Timestamp,
}

/// Tags given to a recorded build later (`lineage tag`): kept as a record, so the history
/// says since when a tag pointed at a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagAdded {
    pub image: Repository,
    pub digest: Digest,
    pub tags: Vec<Tag>,
    pub by: Identity,
    pub at: Timestamp,
}

/// A configuration file deployed with an image (a manifest, Helm values), by content.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// As given (`k8s/api.yaml`), or `-` for a digest given without a file.
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// A service that was removed, or renamed to `renamed_to`. Its history stays in the ledger;
/// its name and image repositories are free again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRemoval {
    pub service: ServiceName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: Identity,
    pub at: Timestamp,
}

/// One container image seen running (or admitted) in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub env: EnvName,
    pub image: Repository,
    pub digest: Digest,
    /// The Kubernetes namespace, when the source is a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The owning workload, `Kind/name` (`Deployment/api`, `CronJob/report`), or the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `init` or `ephemeral` for those containers; absent for ordinary ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_kind: Option<String>,
    /// The host or cluster an inventory line names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub seen_at: Timestamp,
}

/// What one runtime source showed at one time: a cluster's pods, an inventory of VMs or
/// tasks, or what admission admitted. A `complete` batch lists everything running at the
/// source, so what it leaves out no longer runs there; admission batches are not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationBatch {
    /// The cluster or inventory the batch came from (`--cluster`), e.g. `prod-eu-1`.
    pub source: String,
    /// `kubernetes`, `inventory` or `admission`.
    pub format: String,
    pub complete: bool,
    /// Environments the batch speaks for: those its namespace mapping or lines name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<EnvName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Observed>,
    /// Namespaces with pods that map to no environment: reported, never guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped_namespaces: Vec<String>,
    pub by: Identity,
    pub at: Timestamp,
}

/// One imported SBOM or vulnerability scan of an image (`lineage sbom add`, `lineage scan
/// add`), in compact form: which packages the document says the image holds, in which layer,
/// and which vulnerabilities a scanner matched to them. The document itself is not kept; its
/// SHA-256 is, so the record says exactly which document it came from.
///
/// Packages and layers are listed once and referred to by position, which keeps a record of a
/// 100,000-component SBOM to a few megabytes; the `sbom_*` projections are rebuilt from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomImport {
    pub image: Repository,
    pub digest: Digest,
    /// `sbom` (a package inventory) or `scan` (vulnerability findings).
    pub kind: String,
    /// `spdx-2.3`, `cyclonedx-1.6`, `trivy`, `grype`, ...
    pub format: String,
    /// The SHA-256 of the document's bytes.
    pub document: Digest,
    /// The document's size in bytes.
    pub size: u64,
    /// The tool that wrote the document (`trivy 0.50.1`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// When the document says it was made (the scan's time), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Where the document came from: `file`, or the registry attachment it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Every layer the document names; the image's own layer list first when it gives one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<SbomLayer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<SbomPackage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<SbomFinding>,
    pub by: Identity,
    pub at: Timestamp,
}

/// A layer as a document names it: its blob digest, its diff id (the digest of the
/// uncompressed tar, what Syft and Grype report), or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomLayer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
}

/// A package in an image. Name, version and ecosystem are the purl's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomPackage {
    pub purl: Purl,
    /// Position in [`SbomImport::layers`] of the layer that holds it, when the document says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<u32>,
}

/// A vulnerability a scanner matched to a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomFinding {
    /// `CVE-2024-5535`, `GHSA-…`, as the scanner names it.
    pub id: String,
    /// Other ids of the same vulnerability (a GHSA's CVE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Position in [`SbomImport::packages`].
    pub package: u32,
    /// `critical`, `high`, `medium`, `low`, `negligible` or `unknown`.
    pub severity: String,
    /// The fixed version(s) as the scanner writes them (`1.1.1d-r0`, `2.29.1, 2.39.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

/// An incident opened (`lineage incident open`): the question asked and what it answered at
/// that moment, the (service, environment, digest) rows the incident then follows until no
/// affected digest runs there. Progress is not recorded: it is computed from the builds,
/// deploys and ends recorded after this entry. An incident's number is its position among
/// the ledger's incident records (1 for the first), so two writers can never give out the
/// same number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentOpened {
    pub title: String,
    pub query: IncidentQuery,
    /// A rehearsal, not a real incident.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// What the query answered when the incident was opened, production first.
    pub affected: Vec<IncidentTarget>,
    pub by: Identity,
    pub at: Timestamp,
}

impl IncidentOpened {
    /// The most bytes a title may hold.
    pub const MAX_TITLE: usize = 200;
}

/// The question an incident is about, as `lineage affected` would be asked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// `base`, `cve` or `package`.
    pub kind: String,
    /// The base (a whole digest, or `name[:tag]`), the vulnerability id, or the package
    /// (`name@range` or a purl with its version).
    pub value: String,
}

/// One place an affected digest ran when the incident was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentTarget {
    pub service: ServiceName,
    pub env: EnvName,
    pub digest: Digest,
    /// When the deploy that put it there happened: a deploy dated earlier, recorded later,
    /// does not replace it (as in `running`).
    pub since: Timestamp,
}

/// Anything the ledger holds, tagged with its kind. The ledger's log leaf covers the
/// canonical JSON of this value.
// Records are read one at a time and moved, not stored in bulk, so the size difference
// between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    Build(BuildRecord),
    Deploy(DeployRecord),
    Service(ServiceChange),
    Base(BaseSeen),
    Exception(Exception),
    Retire(Retirement),
    Attestation(Attestation),
    Check(CheckResult),
    Approval(Approval),
    Token(TokenGrant),
    TokenRevoked(TokenRevocation),
    LogKeyRotation(LogKeyRotation),
    DeployEnd(PlacementEnd),
    ServiceRemoved(ServiceRemoval),
    Observation(ObservationBatch),
    /// A software bill of materials or a scanner's findings for one image.
    Sbom(SbomImport),
    /// How a deploy turned out.
    Outcome(DeployOutcome),
    /// Tags added to a recorded build.
    Tag(TagAdded),
    /// An incident (or a drill) opened on a base, a vulnerability or a package.
    IncidentOpened(IncidentOpened),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Build(_) => "build",
            Record::Deploy(_) => "deploy",
            Record::Service(_) => "service",
            Record::Base(_) => "base",
            Record::Exception(_) => "exception",
            Record::Retire(_) => "retire",
            Record::Attestation(_) => "attestation",
            Record::Check(_) => "check",
            Record::Approval(_) => "approval",
            Record::Token(_) => "token",
            Record::TokenRevoked(_) => "token_revoked",
            Record::LogKeyRotation(_) => "log_key_rotation",
            Record::DeployEnd(_) => "deploy_end",
            Record::ServiceRemoved(_) => "service_removed",
            Record::Observation(_) => "observation",
            Record::Sbom(_) => "sbom",
            Record::Outcome(_) => "outcome",
            Record::Tag(_) => "tag",
            Record::IncidentOpened(_) => "incident_opened",
        }
    }

    /// For facts (every kind but build, deploy and service), the key they are looked up by:
    /// the base repository, the service, the digest, the token id, the observation source,
    /// `log` for log key rotations, or `incident` for incidents.
    pub fn fact_key(&self) -> Option<String> {
        match self {
            Record::Build(_) | Record::Deploy(_) | Record::Service(_) => None,
            Record::Base(b) => Some(b.name.to_string()),
            Record::Exception(e) => Some(e.service.clone()),
            Record::Retire(r) => Some(r.digest.to_string()),
            Record::Attestation(a) => Some(a.digest.to_string()),
            Record::Check(c) => Some(c.digest.to_string()),
            Record::Approval(a) => Some(a.digest.to_string()),
            Record::Token(t) => Some(t.id.clone()),
            Record::TokenRevoked(t) => Some(t.id.clone()),
            // A log has one chain of keys; its rotations are read together, oldest first.
            Record::LogKeyRotation(_) => Some("log".to_string()),
            Record::DeployEnd(e) => Some(e.service.to_string()),
            Record::ServiceRemoved(r) => Some(r.service.to_string()),
            Record::Observation(o) => Some(o.source.clone()),
            Record::Sbom(s) => Some(s.digest.to_string()),
            Record::Outcome(o) => Some(o.service.to_string()),
            Record::Tag(t) => Some(t.digest.to_string()),
            // Incidents are numbered by their order in the ledger, so they are read together.
            Record::IncidentOpened(_) => Some("incident".to_string()),
        }
    }
}

/// Serialises `value` as JSON with object keys sorted and no insignificant whitespace, so
/// that equal records always give equal bytes (and equal log leaf hashes).
pub fn canonical_json<T: Serialize>(value: &T) -> String {
    // serde_json's `Value` keeps object keys in a BTreeMap (the `preserve_order` feature is
    // off), so going through it sorts keys at every level.
    let value = serde_json::to_value(value).expect("records serialise");
    serde_json::to_string(&value).expect("values serialise")
}
