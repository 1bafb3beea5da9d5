//! Decoding in-toto statements and the SLSA provenance predicates inside them.
//!
//! Statements arrive bare (BuildKit stores `application/vnd.in-toto+json` layers) or inside a
//! DSSE envelope (cosign `.att`, Lineage's own artifacts). This module only *reads* them for
//! display and base detection; verifying signatures is lineage-attest's job.
//!
//! SLSA v0.2 (`https://slsa.dev/provenance/v0.2`) and v1 (`https://slsa.dev/provenance/v1`)
//! differ in where everything lives; [`Provenance`] is the common summary. Producers disagree
//! on spelling (`buildInvocationId` vs BuildKit's and slsa-github-generator's
//! `buildInvocationID`), so both are read.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// An in-toto statement, reduced to what inspection shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    #[serde(rename = "type")]
    pub statement_type: String,
    pub predicate_type: String,
    pub subjects: Vec<Material>,
    /// Present when the predicate is SLSA provenance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// A subject or material: a name/URI and its digests (`{"sha256": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Material {
    pub uri: String,
    pub digest: BTreeMap<String, String>,
}

/// What a SLSA provenance predicate says about a build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// `v0.2` or `v1`.
    pub slsa_version: String,
    pub build_type: Option<String>,
    pub builder_id: Option<String>,
    pub invocation_id: Option<String>,
    /// v0.2 `materials` / v1 `resolvedDependencies`: for image builds, the base images.
    pub materials: Vec<Material>,
    pub source_repo: Option<String>,
    pub source_revision: Option<String>,
    pub started_on: Option<String>,
    pub finished_on: Option<String>,
}

/// Decodes the payload of a DSSE envelope (`{"payloadType","payload","signatures"}`) without
/// verifying it. Returns `(payloadType, payload bytes)`.
pub fn decode_dsse_payload(envelope: &[u8]) -> Result<(String, Vec<u8>)> {
    let bad = |reason: String| Error::MalformedAttestation { reason };
    let v: Value = serde_json::from_slice(envelope)
        .map_err(|e| bad(format!("DSSE envelope is not JSON: {e}")))?;
    let payload_type = v["payloadType"]
        .as_str()
        .ok_or_else(|| bad("DSSE envelope has no payloadType".into()))?;
    let payload = v["payload"]
        .as_str()
        .ok_or_else(|| bad("DSSE envelope has no payload".into()))?;
    // The DSSE spec allows standard or URL-safe base64, with or without padding.
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|e| e.decode(payload).ok())
        .ok_or_else(|| bad("DSSE payload is not base64".into()))?;
    Ok((payload_type.to_string(), bytes))
}

/// Decodes an in-toto statement (v0.1 or v1) and, when it carries SLSA provenance, the
/// provenance summary.
pub fn decode_statement(bytes: &[u8]) -> Result<Statement> {
    let bad = |reason: String| Error::MalformedAttestation { reason };
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("statement is not JSON: {e}")))?;
    let statement_type =
        str_at(&v, &["_type"]).ok_or_else(|| bad("statement has no `_type`".into()))?;
    if !statement_type.starts_with("https://in-toto.io/Statement/") {
        return Err(bad(format!(
            "`_type` `{statement_type}` is not an in-toto Statement"
        )));
    }
    let predicate_type = str_at(&v, &["predicateType"])
        .ok_or_else(|| bad("statement has no `predicateType`".into()))?;
    let subjects = materials(&v["subject"], "name");
    let predicate = &v["predicate"];
    let provenance = if predicate_type == SLSA_V02 {
        Some(slsa_v02(predicate))
    } else if predicate_type == SLSA_V1
        || predicate_type.starts_with("https://slsa.dev/provenance/v1.")
    {
        Some(slsa_v1(predicate))
    } else {
        None
    };
    Ok(Statement {
        statement_type,
        predicate_type,
        subjects,
        provenance,
    })
}

fn slsa_v02(p: &Value) -> Provenance {
    let meta = &p["metadata"];
    let (mut source_repo, mut source_revision) =
        buildkit_vcs(&meta["https://mobyproject.org/buildkit@v1#metadata"]);
    if source_repo.is_none() {
        // slsa-github-generator and npm: `invocation.configSource` is the git repo at a ref.
        let cs = &p["invocation"]["configSource"];
        source_repo = str_at(cs, &["uri"]).map(|u| git_repo(&u));
        source_revision =
            str_at(cs, &["digest", "sha1"]).or_else(|| str_at(cs, &["digest", "gitCommit"]));
    }
    Provenance {
        slsa_version: "v0.2".into(),
        build_type: str_at(p, &["buildType"]),
        builder_id: str_at(p, &["builder", "id"]).filter(|s| !s.is_empty()),
        invocation_id: str_at(meta, &["buildInvocationId"])
            .or_else(|| str_at(meta, &["buildInvocationID"])),
        materials: materials(&p["materials"], "uri"),
        source_repo,
        source_revision,
        started_on: str_at(meta, &["buildStartedOn"]),
        finished_on: str_at(meta, &["buildFinishedOn"]),
    }
}

fn slsa_v1(p: &Value) -> Provenance {
    let def = &p["buildDefinition"];
    let run = &p["runDetails"];
    let meta = &run["metadata"];
    let deps = materials(&def["resolvedDependencies"], "uri");
    let (mut source_repo, mut source_revision) = buildkit_vcs(&meta["buildkit_metadata"]);
    if source_repo.is_none() {
        // GitHub Actions build types name the repository in `externalParameters.workflow`
        // and pin it in a `git+` resolved dependency.
        source_repo = str_at(&def["externalParameters"], &["workflow", "repository"]);
        let git = deps.iter().find(|m| m.uri.starts_with("git+"));
        if source_repo.is_none() {
            source_repo = git.map(|m| git_repo(&m.uri));
        }
        source_revision = git.and_then(|m| {
            m.digest
                .get("gitCommit")
                .or_else(|| m.digest.get("sha1"))
                .cloned()
        });
    }
    Provenance {
        slsa_version: "v1".into(),
        build_type: str_at(def, &["buildType"]),
        builder_id: str_at(run, &["builder", "id"]).filter(|s| !s.is_empty()),
        invocation_id: str_at(meta, &["invocationId"]).or_else(|| str_at(meta, &["invocationID"])),
        materials: deps,
        source_repo,
        source_revision,
        started_on: str_at(meta, &["startedOn"]),
        finished_on: str_at(meta, &["finishedOn"]),
    }
}

/// BuildKit's `vcs` block: `{source, revision}` (buildkit `docs/attestations/slsa-definitions.md`).
fn buildkit_vcs(meta: &Value) -> (Option<String>, Option<String>) {
    (
        str_at(meta, &["vcs", "source"]),
        str_at(meta, &["vcs", "revision"]),
    )
}

/// `git+https://github.com/o/r@refs/heads/main` → `https://github.com/o/r`.
fn git_repo(uri: &str) -> String {
    let u = uri.strip_prefix("git+").unwrap_or(uri);
    // The `@ref` suffix comes after the path; an `@` in `git@host:` comes before it.
    match u.rfind('@') {
        Some(i) if u[..i].contains('/') => u[..i].to_string(),
        _ => u.to_string(),
    }
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().map(str::to_string)
}

fn materials(v: &Value, name_key: &str) -> Vec<Material> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .map(|m| Material {
                    uri: str_at(m, &[name_key]).unwrap_or_default(),
                    digest: m["digest"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_repo_strips_ref_not_user() {
        assert_eq!(
            git_repo("git+https://github.com/o/r@refs/heads/main"),
            "https://github.com/o/r"
        );
        assert_eq!(
            git_repo("git+https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(git_repo("git@github.com:o/r.git"), "git@github.com:o/r.git");
    }

    #[test]
    fn rejects_non_statements() {
        assert!(matches!(
            decode_statement(b"{\"_type\":\"link\"}"),
            Err(Error::MalformedAttestation { .. })
        ));
        assert!(matches!(
            decode_statement(b"[]"),
            Err(Error::MalformedAttestation { .. })
        ));
        assert!(matches!(
            decode_dsse_payload(b"{\"payloadType\":\"x\",\"payload\":\"@@\"}"),
            Err(Error::MalformedAttestation { .. })
        ));
    }
}
