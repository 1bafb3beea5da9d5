//! SLSA provenance: generating SLSA Provenance v1 for Lineage builds, and reading v0.2 and v1
//! provenance written by other tools (slsa.dev/spec/v1.0/provenance, slsa.dev/provenance/v0.2).
//!
//! Generation maps a [`BuildRecord`] onto the v1 model:
//! `buildDefinition.buildType` is [`LINEAGE_BUILD_TYPE`], `externalParameters` are the inputs a
//! user controls (repository, ref, Dockerfile path), `resolvedDependencies` pins the source
//! commit and every base image by digest, `runDetails.builder.id` names the CI identity, and
//! `runDetails.metadata` carries the CI run URL and the build's start and end times. Field
//! meanings are documented in `PREDICATES.md`.
//!
//! Reading turns either version into a [`ProvenanceSummary`]: the few facts a policy needs.
//! v0.2 producers disagree on the spelling `buildInvocationId` / `buildInvocationID`
//! (npm vs. slsa-github-generator and BuildKit), so both are read.

use std::collections::BTreeMap;

use lineage_model::{BuildRecord, Digest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::statement::{Statement, StatementError, Subject};

/// `predicateType` of SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// `predicateType` of SLSA Provenance v0.2.
pub const SLSA_PROVENANCE_V0_2: &str = "https://slsa.dev/provenance/v0.2";
/// The `buildType` of a container image built by a CI job and recorded by Lineage.
pub const LINEAGE_BUILD_TYPE: &str = "https://lineage.dev/buildtypes/container/v1";

/// A SLSA v1 `ResourceDescriptor` (in-toto attestation spec, `resource_descriptor.md`),
/// restricted to the fields Lineage writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    pub uri: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `buildDefinition.externalParameters` of [`LINEAGE_BUILD_TYPE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageExternalParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
}

/// `buildDefinition.internalParameters` of [`LINEAGE_BUILD_TYPE`]: facts the platform chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageInternalParameters {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(rename = "ciSystem", default, skip_serializing_if = "Option::is_none")]
    pub ci_system: Option<String>,
    #[serde(rename = "ciJob", default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    #[serde(rename = "ciRunId", default, skip_serializing_if = "Option::is_none")]
    pub ci_run_id: Option<String>,
    #[serde(
        rename = "dockerfileSha256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dockerfile_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: LineageExternalParameters,
    pub internal_parameters: LineageInternalParameters,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: BuildMetadata,
}

/// A SLSA Provenance v1 predicate as Lineage writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceV1 {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

/// Why a build record cannot become provenance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenanceError {
    #[error("the build record names no builder and no CI system, and SLSA requires `runDetails.builder.id`")]
    NoBuilder,
}

/// The builder id of a record: the builder identity as a URI when it is one, otherwise a
/// Lineage URI naming it. SLSA requires a URI (`TypeURI`) here.
fn builder_id(build: &BuildRecord) -> Result<String, ProvenanceError> {
    if let Some(b) = &build.builder {
        let s = b.as_str();
        if s.starts_with("https://") || s.starts_with("http://") {
            return Ok(s.to_string());
        }
        return Ok(format!("https://lineage.dev/builders/identity/{s}"));
    }
    if let Some(ci) = &build.ci {
        return Ok(format!("https://lineage.dev/builders/ci/{}", ci.system));
    }
    Err(ProvenanceError::NoBuilder)
}

fn digest_set(d: &Digest) -> BTreeMap<String, String> {
    BTreeMap::from([(d.algorithm().as_str().to_string(), d.hex().to_string())])
}

/// The SLSA v1 predicate for `build`.
pub fn provenance_v1(build: &BuildRecord) -> Result<ProvenanceV1, ProvenanceError> {
    let mut deps = Vec::new();
    if let (Some(repo), Some(commit)) = (&build.source_repo, &build.commit) {
        // SPDX download location / SLSA convention: `git+<repo>@<revision>`.
        deps.push(ResourceDescriptor {
            uri: format!("git+{}@{}", repo.as_str(), commit.as_str()),
            digest: BTreeMap::from([("gitCommit".to_string(), commit.as_str().to_string())]),
            name: None,
        });
    }
    for base in &build.bases {
        // Package URL for Docker images (purl-spec `docker` type), with the registry and path
        // kept whole so the name is unambiguous; `@tag` when known.
        let mut uri = format!("pkg:docker/{}", base.name);
        if let Some(tag) = &base.tag {
            uri.push('@');
            uri.push_str(tag.as_str());
        }
        deps.push(ResourceDescriptor {
            uri,
            digest: base.digest.as_ref().map(digest_set).unwrap_or_default(),
            name: Some(base.display()),
        });
    }
    let ci = build.ci.as_ref();
    Ok(ProvenanceV1 {
        build_definition: BuildDefinition {
            build_type: LINEAGE_BUILD_TYPE.to_string(),
            external_parameters: LineageExternalParameters {
                repository: build.source_repo.as_ref().map(|r| r.as_str().to_string()),
                git_ref: build.git_ref.clone(),
                dockerfile: build.dockerfile.as_ref().map(|d| d.path.clone()),
            },
            internal_parameters: LineageInternalParameters {
                service: build.service.as_str().to_string(),
                platform: build.platform.clone(),
                ci_system: ci.map(|c| c.system.clone()),
                ci_job: ci.and_then(|c| c.job.clone()),
                ci_run_id: ci.and_then(|c| c.run_id.clone()),
                dockerfile_sha256: build.dockerfile.as_ref().and_then(|d| d.sha256.clone()),
                tags: build.tags.iter().map(|t| t.as_str().to_string()).collect(),
            },
            resolved_dependencies: deps,
        },
        run_details: RunDetails {
            builder: Builder {
                id: builder_id(build)?,
            },
            metadata: BuildMetadata {
                invocation_id: ci.and_then(|c| c.url.clone().or_else(|| c.run_id.clone())),
                started_on: build.started_at.map(|t| t.to_string()),
                finished_on: build.finished_at.map(|t| t.to_string()),
            },
        },
    })
}

/// The in-toto v1 Statement for `build`: subject = image name + digest, SLSA v1 predicate.
pub fn provenance_statement(build: &BuildRecord) -> Result<Statement, ProvenanceError> {
    let predicate = provenance_v1(build)?;
    Ok(Statement::new_v1(
        vec![Subject {
            name: build.image.to_string(),
            digest: digest_set(&build.digest),
        }],
        SLSA_PROVENANCE_V1,
        serde_json::to_value(predicate).expect("provenance serialises"),
    ))
}

/// Which SLSA provenance version a predicate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SlsaVersion {
    #[serde(rename = "v0.2")]
    V0_2,
    #[serde(rename = "v1")]
    V1,
}

/// A material / resolved dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Material {
    pub uri: String,
    pub digest: BTreeMap<String, String>,
}

/// The source a build came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    /// As written by the producer, without a `git+` prefix or `@ref` suffix.
    pub repository: String,
    /// A commit id, when the producer gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// The facts of a provenance predicate a policy looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenanceSummary {
    pub version: SlsaVersion,
    pub build_type: String,
    /// Empty when the producer left it empty (BuildKit's examples do).
    pub builder_id: String,
    pub materials: Vec<Material>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// Why a predicate cannot be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    #[error("predicate type `{0}` is not SLSA provenance v0.2 or v1")]
    NotProvenance(String),
    #[error("malformed SLSA {version} predicate: {reason}")]
    Malformed {
        version: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Statement(#[from] StatementError),
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn materials(list: Option<&Value>) -> Vec<Material> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| {
                    let uri = m.get("uri")?.as_str()?.to_string();
                    let digest = m
                        .get("digest")
                        .and_then(Value::as_object)
                        .map(|d| {
                            d.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some(Material { uri, digest })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `git+https://host/repo@ref` -> `https://host/repo`.
fn strip_git_uri(uri: &str) -> String {
    let u = uri.strip_prefix("git+").unwrap_or(uri);
    // The `@ref` suffix follows the path; an `@` before the host (user info) is not a ref.
    match u.rfind('@') {
        Some(at)
            if u[..at].contains("://") && u[..at].rfind('/') > u.find("://").map(|i| i + 2) =>
        {
            u[..at].to_string()
        }
        _ => u.to_string(),
    }
}

fn git_source(materials: &[Material]) -> Option<SourceRef> {
    materials
        .iter()
        .find(|m| m.uri.starts_with("git+"))
        .map(|m| SourceRef {
            repository: strip_git_uri(&m.uri),
            revision: m
                .digest
                .get("gitCommit")
                .or_else(|| m.digest.get("sha1"))
                .cloned(),
        })
}

/// Summarises a SLSA predicate of type `predicate_type`.
pub fn summarize(
    predicate_type: &str,
    predicate: &Value,
) -> Result<ProvenanceSummary, SummaryError> {
    match predicate_type {
        SLSA_PROVENANCE_V1 => summarize_v1(predicate),
        SLSA_PROVENANCE_V0_2 => summarize_v0_2(predicate),
        other => Err(SummaryError::NotProvenance(other.to_string())),
    }
}

/// Summarises a Statement's predicate.
pub fn summarize_statement(statement: &Statement) -> Result<ProvenanceSummary, SummaryError> {
    summarize(&statement.predicate_type, &statement.predicate)
}

/// Summarises JSON that is either a Statement or a bare predicate (whose version is then
/// recognised by its shape: v1 has `buildDefinition`, v0.2 has `builder` + `buildType`).
pub fn summarize_json(bytes: &[u8]) -> Result<ProvenanceSummary, SummaryError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| SummaryError::Statement(StatementError::Json(e.to_string())))?;
    if value.get("_type").is_some() {
        let statement = Statement::from_value(value)?;
        return summarize_statement(&statement);
    }
    if value.get("buildDefinition").is_some() {
        summarize_v1(&value)
    } else if value.get("buildType").is_some() {
        summarize_v0_2(&value)
    } else {
        Err(SummaryError::NotProvenance(
            "(bare JSON with neither `buildDefinition` nor `buildType`)".into(),
        ))
    }
}

fn summarize_v1(p: &Value) -> Result<ProvenanceSummary, SummaryError> {
    let malformed = |reason: &str| SummaryError::Malformed {
        version: "v1",
        reason: reason.to_string(),
    };
    let bd = p
        .get("buildDefinition")
        .ok_or_else(|| malformed("no `buildDefinition`"))?;
    let build_type = str_at(bd, &["buildType"])
        .ok_or_else(|| malformed("no `buildDefinition.buildType`"))?
        .to_string();
    let builder_id = str_at(p, &["runDetails", "builder", "id"])
        .ok_or_else(|| malformed("no `runDetails.builder.id`"))?
        .to_string();
    let materials = materials(bd.get("resolvedDependencies"));
    let source = git_source(&materials).or_else(|| {
        // GitHub Actions build types name the repository in `externalParameters.workflow`.
        str_at(bd, &["externalParameters", "workflow", "repository"]).map(|r| SourceRef {
            repository: r.to_string(),
            revision: None,
        })
    });
    let meta = p.get("runDetails").and_then(|r| r.get("metadata"));
    let meta_str = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(ProvenanceSummary {
        version: SlsaVersion::V1,
        build_type,
        builder_id,
        materials,
        source,
        invocation_id: meta_str("invocationId"),
        started_on: meta_str("startedOn"),
        finished_on: meta_str("finishedOn"),
    })
}

fn summarize_v0_2(p: &Value) -> Result<ProvenanceSummary, SummaryError> {
    let malformed = |reason: &str| SummaryError::Malformed {
        version: "v0.2",
        reason: reason.to_string(),
    };
    let build_type = str_at(p, &["buildType"])
        .ok_or_else(|| malformed("no `buildType`"))?
        .to_string();
    let builder_id = str_at(p, &["builder", "id"])
        .ok_or_else(|| malformed("no `builder.id`"))?
        .to_string();
    let materials = materials(p.get("materials"));
    let meta = p.get("metadata");
    let meta_str = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // The spec spells it `buildInvocationId`; slsa-github-generator and BuildKit write
    // `buildInvocationID`. Accept both, preferring the spec's.
    let invocation_id = meta_str("buildInvocationId").or_else(|| meta_str("buildInvocationID"));
    let config_source = p.get("invocation").and_then(|i| i.get("configSource"));
    let source = config_source
        .and_then(|c| {
            let uri = c.get("uri")?.as_str()?;
            Some(SourceRef {
                repository: strip_git_uri(uri),
                revision: c
                    .get("digest")
                    .and_then(|d| d.get("sha1").or_else(|| d.get("gitCommit")))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .or_else(|| {
            // BuildKit puts VCS facts in its own metadata extension.
            let vcs = meta?
                .get("https://mobyproject.org/buildkit@v1#metadata")?
                .get("vcs")?;
            Some(SourceRef {
                repository: vcs.get("source")?.as_str()?.to_string(),
                revision: vcs
                    .get("revision")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .or_else(|| git_source(&materials));
    Ok(ProvenanceSummary {
        version: SlsaVersion::V0_2,
        build_type,
        builder_id,
        materials,
        source,
        invocation_id,
        started_on: meta_str("buildStartedOn"),
        finished_on: meta_str("buildFinishedOn"),
    })
}

#[cfg(test)]
mod tests {
    use super::strip_git_uri;

    #[test]
    fn git_uris_lose_prefix_and_ref_but_keep_user_info() {
        assert_eq!(
            strip_git_uri("git+https://h.io/o/r@refs/heads/main"),
            "https://h.io/o/r"
        );
        assert_eq!(strip_git_uri("git+https://h.io/o/r"), "https://h.io/o/r");
        assert_eq!(
            strip_git_uri("git+ssh://git@h.io/o/r"),
            "ssh://git@h.io/o/r"
        );
        assert_eq!(
            strip_git_uri("git+ssh://git@h.io/o/r@abc"),
            "ssh://git@h.io/o/r"
        );
    }
}
