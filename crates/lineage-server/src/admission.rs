//! The Kubernetes admission webhook: AdmissionReview v1 in, a decision out.
//!
//! Parsing never fails the request: a review that cannot be read still gets a well-formed
//! AdmissionReview back (denied in enforce mode, because nothing unchecked should start).
//! The decision itself is `lineage_core::admission::judge`, which runs the deploy gate, so a
//! denial names the same rules a `deploy check` would; this module only reads and writes
//! AdmissionReviews.
//!
//! Reference: <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/>

use lineage_model::{Digest, ImageRef};
use serde_json::{json, Value};

pub use lineage_core::admission::{
    malformed, not_ready, skipped, ContainerImage, Finding, Verdict,
};

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A review Lineage can judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub uid: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub operation: String,
    pub images: Vec<ContainerImage>,
    /// The object's workload, `Kind/name` (a pod's controlling owner), for observations.
    pub workload: Option<String>,
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
    let workload = workload_of(&kind, object);
    Parsed::Judge(Request {
        uid,
        kind,
        namespace,
        operation,
        images,
        workload,
    })
}

/// `Kind/name` of what a request starts: a pod's controlling owner (a ReplicaSet, a Job, a
/// StatefulSet…), else the object itself. Pods made from `generateName` have no name yet.
fn workload_of(kind: &str, object: &Value) -> Option<String> {
    let owners = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    let owner = owners.and_then(|o| {
        o.iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .or(o.first())
    });
    let (kind, name) = match owner {
        Some(o) => (
            o.get("kind").and_then(Value::as_str)?,
            o.get("name").and_then(Value::as_str)?,
        ),
        None => (
            kind,
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .or_else(|| {
                    object
                        .pointer("/metadata/generateName")
                        .and_then(Value::as_str)
                })?,
        ),
    };
    Some(format!("{kind}/{}", name.trim_end_matches('-')))
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
            response["auditAnnotations"] = json!({ "reason": message });
        }
    }
    if !v.findings.is_empty() {
        let mut codes: Vec<&str> = v.findings.iter().map(|f| f.code.as_str()).collect();
        codes.sort();
        codes.dedup();
        let annotations = response
            .as_object_mut()
            .expect("an object")
            .entry("auditAnnotations")
            .or_insert_with(|| json!({}));
        annotations["rules"] = json!(codes.join(","));
    }
    if !v.warnings.is_empty() {
        response["warnings"] = json!(v.warnings);
    }
    json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": response })
}

/// Whether Kubernetes accepts `key` as an `auditAnnotations` key: the API server prefixes it
/// with the webhook's name and a `/`, so the key itself must be a qualified name
/// (`[A-Za-z0-9][-A-Za-z0-9_.]*`, at most 63 bytes) with no prefix of its own.
pub fn audit_key_ok(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
