//! The Kubernetes admission webhook: AdmissionReview v1 in, a decision out.
//!
//! Parsing never fails the request: a review that cannot be read still gets a well-formed
//! AdmissionReview back (denied in enforce mode, because nothing unchecked should start).
//! Decisions use the deploy rules' codes from `lineage-policy`, so a denial names the same
//! rule a `deploy check` would. Everything a decision needs is passed in, already looked up;
//! nothing here touches the store or the network.
//!
//! Reference: <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/>

use std::collections::HashMap;
use std::sync::Arc;

use lineage_model::{Digest, EnvName, ImageRef, Service, ServiceName, Timestamp};
use lineage_policy::{RuleId, SignatureStatus};
use serde_json::{json, Value};

use crate::config::{AdmissionConfig, Mode};
use crate::index::DigestFacts;

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Where in the pod spec an image was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// `containers`, `initContainers` or `ephemeralContainers`.
    pub field: &'static str,
    pub container: String,
    pub image: String,
}

/// A review Lineage can judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub uid: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub operation: String,
    pub images: Vec<ContainerImage>,
}

/// What reading a review gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Judge(Request),
    /// Nothing to judge (an unknown kind, a delete); allowed, with the reason.
    Skip {
        uid: String,
        reason: String,
    },
    /// Unreadable; `uid` is empty when it could not be found.
    Malformed {
        uid: String,
        reason: String,
    },
}

/// Kinds whose pod spec is checked, and where the pod spec sits in the object.
const POD_SPEC_PATHS: [(&str, &[&str]); 7] = [
    ("Pod", &["spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
];

const CONTAINER_FIELDS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Reads an AdmissionReview body. Returns the apiVersion to answer with and what was found.
pub fn parse(body: &[u8]) -> (String, Parsed) {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                API_VERSION.into(),
                Parsed::Malformed {
                    uid: String::new(),
                    reason: format!("the body is not JSON: {e}"),
                },
            )
        }
    };
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| v.starts_with("admission.k8s.io/"))
        .unwrap_or(API_VERSION)
        .to_string();
    (api_version, parse_value(&value))
}

fn parse_value(value: &Value) -> Parsed {
    let malformed = |uid: &str, reason: String| Parsed::Malformed {
        uid: uid.to_string(),
        reason,
    };
    if value.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return malformed(
            "",
            "the body is not an AdmissionReview (`kind` must be `AdmissionReview`)".into(),
        );
    }
    let Some(request) = value.get("request").filter(|r| r.is_object()) else {
        return malformed("", "the AdmissionReview has no `request`".into());
    };
    let uid = match request.get("uid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => return malformed("", "the request has no `uid`".into()),
    };
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some((_, path)) = POD_SPEC_PATHS.iter().find(|(k, _)| *k == kind) else {
        return Parsed::Skip {
            uid,
            reason: format!(
                "kind `{}` runs no containers Lineage checks (it checks Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob)",
                if kind.is_empty() { "(none)" } else { &kind }
            ),
        };
    };
    if operation == "DELETE" || operation == "CONNECT" {
        return Parsed::Skip {
            uid,
            reason: format!("operation `{operation}` starts no containers"),
        };
    }
    let Some(object) = request.get("object").filter(|o| o.is_object()) else {
        return malformed(&uid, format!("the {kind} request has no `object`"));
    };
    let mut spec = object;
    for step in *path {
        match spec.get(step) {
            Some(next) => spec = next,
            None => {
                return malformed(
                    &uid,
                    format!("the {kind} has no pod spec at `{}`", path.join(".")),
                )
            }
        }
    }
    let mut images = Vec::new();
    for field in CONTAINER_FIELDS {
        let Some(list) = spec.get(field) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            return malformed(&uid, format!("`{field}` is not a list"));
        };
        for c in list {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match c.get("image").and_then(Value::as_str) {
                Some(image) => images.push(ContainerImage {
                    field,
                    container: name,
                    image: image.to_string(),
                }),
                None => {
                    return malformed(
                        &uid,
                        format!("container `{name}` in `{field}` has no image"),
                    )
                }
            }
        }
    }
    let namespace = request
        .get("namespace")
        .and_then(Value::as_str)
        .or_else(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    Parsed::Judge(Request {
        uid,
        kind,
        namespace,
        operation,
        images,
    })
}

/// One broken rule for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule code (`D005`), or `K001` for a stale base (admission only).
    pub code: &'static str,
    pub name: &'static str,
    /// Denies (in enforce mode) or only warns.
    pub deny: bool,
    pub image: String,
    pub message: String,
    pub hint: String,
}

impl Finding {
    fn rule(rule: RuleId, image: &str, message: String, hint: String) -> Finding {
        let info = rule.info();
        Finding {
            code: info.code,
            name: info.name,
            deny: true,
            image: image.to_string(),
            message,
            hint,
        }
    }

    /// `D005 image-not-pinned: image `x` ...; fix: ...`
    pub fn line(&self) -> String {
        format!(
            "{} {}: {}; fix: {}",
            self.code, self.name, self.message, self.hint
        )
    }
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The denial message, or why a request was allowed without a check.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    pub findings: Vec<Finding>,
    /// For metrics: `allowed`, `denied`, `warned`, `skipped`, `malformed`, `not_ready`.
    pub outcome: &'static str,
}

/// The code of the stale-base warning; admission-only, so outside the deploy rule catalogue.
pub const STALE_BASE: (&str, &str) = ("K001", "base-stale");

/// Everything a decision reads, looked up beforehand.
pub struct Context<'a> {
    pub config: &'a AdmissionConfig,
    pub production: &'a dyn Fn(&EnvName) -> bool,
    pub facts: &'a HashMap<Digest, Arc<DigestFacts>>,
    pub service: &'a dyn Fn(&ServiceName) -> Option<Service>,
    pub now: Timestamp,
}

/// The environment a request's namespace maps to, if the namespace is governed.
pub fn environment<'a>(config: &'a AdmissionConfig, req: &Request) -> Option<&'a EnvName> {
    req.namespace
        .as_ref()
        .and_then(|ns| config.namespaces.get(ns))
}

/// The digests a request's images are pinned to (what must be looked up before judging).
pub fn digests(req: &Request) -> Vec<Digest> {
    let mut out: Vec<Digest> = req
        .images
        .iter()
        .filter_map(|i| ImageRef::parse(&i.image).ok().and_then(|r| r.digest))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Judges a parsed request.
pub fn judge(req: &Request, cx: &Context) -> Verdict {
    let Some(env) = environment(cx.config, req) else {
        return Verdict {
            allowed: true,
            message: Some(format!(
                "namespace `{}` is not governed by Lineage (not under `[admission] namespaces`)",
                req.namespace.as_deref().unwrap_or("")
            )),
            warnings: Vec::new(),
            findings: Vec::new(),
            outcome: "skipped",
        };
    };
    let production = (cx.production)(env);
    let mut findings = Vec::new();
    let mut seen = Vec::new();
    for c in &req.images {
        if seen.contains(&c.image) {
            continue;
        }
        seen.push(c.image.clone());
        findings.extend(judge_image(c, env, production, cx));
    }
    verdict(findings, cx.config.mode)
}

fn judge_image(c: &ContainerImage, env: &EnvName, production: bool, cx: &Context) -> Vec<Finding> {
    let shown = &c.image;
    let at = format!("image `{shown}` ({} `{}`)", c.field, c.container);
    let image = match ImageRef::parse(shown) {
        Ok(i) => i,
        Err(e) => {
            return vec![Finding::rule(
                RuleId::ImageNotPinned,
                shown,
                format!("{at} is not a valid image reference: {}", e),
                e.hint.clone(),
            )]
        }
    };
    let Some(digest) = &image.digest else {
        let mut f = Finding::rule(
            RuleId::ImageNotPinned,
            shown,
            format!("{at} is not pinned by digest in environment `{env}`"),
            format!(
                "deploy `{}@sha256:<64 hex>` (`lineage trace {}` lists recorded digests)",
                image.repository, image.repository
            ),
        );
        // Outside production an unpinned image is allowed but cannot be checked.
        f.deny = production;
        if !production {
            f.message.push_str(", so its provenance was not checked");
        }
        return vec![f];
    };
    let Some(facts) = cx.facts.get(digest) else {
        // Not looked up: the caller could not read the store. Treat as unknown.
        return vec![no_provenance(&at, shown, digest)];
    };
    let Some((service_name, _)) = &facts.build else {
        return vec![no_provenance(&at, shown, digest)];
    };
    let mut out = Vec::new();
    if let Some(reason) = &facts.retired {
        out.push(Finding::rule(
            RuleId::DigestRetired,
            shown,
            format!("{at} is retired: {reason}"),
            format!(
                "deploy a newer digest of `{}` (`lineage trace {service_name}`)",
                image.repository
            ),
        ));
    }
    match (cx.service)(service_name).and_then(|s| s.owner) {
        Some(_) => {}
        None => out.push(Finding::rule(
            RuleId::OwnerMissing,
            shown,
            format!("{at} belongs to service `{service_name}`, which has no owner"),
            format!("`lineage service set-owner {service_name} --owner EMAIL`"),
        )),
    }
    match facts.signature_for(env) {
        SignatureStatus::Verified { .. } | SignatureStatus::NotChecked => {}
        SignatureStatus::Unsigned => out.push(Finding::rule(
            RuleId::ProvenanceUnsigned,
            shown,
            format!(
                "{at} has provenance that no one signed, and `{env}` requires a trusted signature"
            ),
            format!("sign it in CI: `lineage attest sign {digest} --key KEY` with a key trusted for `{env}`"),
        )),
        SignatureStatus::Untrusted { reason } => out.push(Finding::rule(
            RuleId::SignatureUntrusted,
            shown,
            format!("{at} is not signed by a key trusted for `{env}`: {reason}"),
            format!("sign the provenance with a key `[trust]` allows for `{env}`"),
        )),
    }
    if let Some((base, since)) = &facts.stale_base {
        let days = since.days_until(cx.now);
        if days >= cx.config.stale_base_days {
            out.push(Finding {
                code: STALE_BASE.0,
                name: STALE_BASE.1,
                deny: false,
                image: shown.clone(),
                message: format!(
                    "{at} is built on `{base}`, {days} days behind a newer digest of its tag"
                ),
                hint: "rebuild on the current base".into(),
            });
        }
    }
    out
}

fn no_provenance(at: &str, shown: &str, digest: &Digest) -> Finding {
    Finding::rule(
        RuleId::BuildRecordMissing,
        shown,
        format!("{at} has no provenance in Lineage (no build record for `{digest}`)"),
        "record the build in CI: `lineage build record --image REPOSITORY@DIGEST …`".into(),
    )
}

fn verdict(findings: Vec<Finding>, mode: Mode) -> Verdict {
    let denials: Vec<String> = findings
        .iter()
        .filter(|f| f.deny)
        .map(Finding::line)
        .collect();
    let mut warnings: Vec<String> = findings
        .iter()
        .filter(|f| !f.deny)
        .map(Finding::line)
        .collect();
    if denials.is_empty() {
        return Verdict {
            allowed: true,
            message: None,
            outcome: if warnings.is_empty() {
                "allowed"
            } else {
                "warned"
            },
            warnings,
            findings,
        };
    }
    match mode {
        Mode::Enforce => Verdict {
            allowed: false,
            message: Some(format!(
                "lineage denied this request: {}",
                denials.join("; ")
            )),
            warnings,
            findings,
            outcome: "denied",
        },
        Mode::Audit => {
            warnings.extend(
                denials
                    .into_iter()
                    .map(|d| format!("audit mode, would deny: {d}")),
            );
            Verdict {
                allowed: true,
                message: None,
                warnings,
                findings,
                outcome: "warned",
            }
        }
    }
}

/// The verdict for a review that could not be read.
pub fn malformed(reason: &str, mode: Mode) -> Verdict {
    let message = format!("lineage could not read this AdmissionReview: {reason}");
    match mode {
        Mode::Enforce => Verdict {
            allowed: false,
            message: Some(message),
            warnings: Vec::new(),
            findings: Vec::new(),
            outcome: "malformed",
        },
        Mode::Audit => Verdict {
            allowed: true,
            message: None,
            warnings: vec![format!("audit mode, would deny: {message}")],
            findings: Vec::new(),
            outcome: "malformed",
        },
    }
}

/// The verdict while the index is loading.
pub fn not_ready(allow: bool) -> Verdict {
    let message =
        "lineage's admission index is still loading; try again in a few seconds".to_string();
    Verdict {
        allowed: allow,
        message: Some(message.clone()),
        warnings: if allow {
            vec![format!("allowed unchecked: {message}")]
        } else {
            Vec::new()
        },
        findings: Vec::new(),
        outcome: "not_ready",
    }
}

/// The verdict for a request with nothing to judge.
pub fn skipped(reason: String) -> Verdict {
    Verdict {
        allowed: true,
        message: Some(reason),
        warnings: Vec::new(),
        findings: Vec::new(),
        outcome: "skipped",
    }
}

/// The AdmissionReview answer.
pub fn response(api_version: &str, uid: &str, v: &Verdict) -> Value {
    let mut response = json!({ "uid": uid, "allowed": v.allowed });
    if let Some(message) = &v.message {
        // `status` is only read by the API server on a denial, but an allowed answer carries
        // its reason too (and in an audit annotation), so "why was this let through" has an
        // answer in the audit log.
        response["status"] = if v.allowed {
            json!({ "code": 200, "message": message })
        } else {
            json!({ "code": 403, "reason": "Forbidden", "message": message })
        };
        if v.allowed {
            response["auditAnnotations"] = json!({ "lineage.dev/reason": message });
        }
    }
    if !v.warnings.is_empty() {
        response["warnings"] = json!(v.warnings);
    }
    json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": response })
}
