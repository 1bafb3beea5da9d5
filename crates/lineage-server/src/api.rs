//! The REST API under `/api/v1`. Each endpoint checks its scope first, parses its input into
//! checked types, runs a `lineage-core` use case and answers with the report the CLI prints
//! under `--format json`. [`ROUTES`] lists every endpoint with its scope; the OpenAPI document
//! is generated from it and the authorization-matrix test walks it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lineage_core::gate::{self, Decision};
use lineage_core::{ledger_log, lifecycle, placements, query, record, services, vulns};
use lineage_model::{
    BuildRecord, Digest, Identity, ImageRef, Repository, Service, ServiceName, SourceRepo,
    Timestamp,
};
use lineage_store::lineage_log::proof::ProofBundle;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Scope;
use crate::{blocking, body_error, ApiError, AppState};

/// One endpoint: what the router serves and the OpenAPI document describes.
pub struct RouteDoc {
    pub method: &'static str,
    /// The path as OpenAPI writes it (`{name}` for a parameter).
    pub path: &'static str,
    /// `None`: no token needed.
    pub scope: Option<Scope>,
    pub summary: &'static str,
    /// JSON Schema of the request body, for writes.
    pub body: Option<fn() -> Value>,
    /// Query parameters (name, required).
    pub query: &'static [(&'static str, bool)],
}

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/healthz", scope: None, summary: "Liveness: the process answers", body: None, query: &[] },
    RouteDoc { method: "get", path: "/readyz", scope: None, summary: "Readiness: 200 once the admission index is loaded, else 503", body: None, query: &[] },
    RouteDoc { method: "get", path: "/metrics", scope: None, summary: "Prometheus metrics", body: None, query: &[] },
    RouteDoc { method: "post", path: "/admission", scope: None, summary: "Kubernetes validating admission webhook (AdmissionReview v1); TLS-protected, no token", body: Some(admission_schema), query: &[] },
    RouteDoc { method: "get", path: "/api/v1/services", scope: Some(Scope::Read), summary: "All services and owners (`service list`)", body: None, query: &[] },
    RouteDoc { method: "post", path: "/api/v1/services", scope: Some(Scope::Admin), summary: "Register a service (`service add`)", body: Some(service_schema), query: &[] },
    RouteDoc { method: "get", path: "/api/v1/services/{name}", scope: Some(Scope::Read), summary: "A service, its owners and ownership history (`service show`)", body: None, query: &[] },
    RouteDoc { method: "patch", path: "/api/v1/services/{name}", scope: Some(Scope::Admin), summary: "Change owners (`service set-owner`)", body: Some(owners_schema), query: &[] },
    RouteDoc { method: "post", path: "/api/v1/builds", scope: Some(Scope::BuildWrite), summary: "Record a build (`build record`) after the build gate; 422 with the gate report when refused. The body is a build record (`service` optional) plus optional `gate` options", body: Some(build_schema), query: &[] },
    RouteDoc { method: "post", path: "/api/v1/deploys", scope: Some(Scope::DeployWrite), summary: "Record a deploy (`deploy record`) after the deploy gate; 422 with the gate report when refused. `by` defaults to the token's identity; another identity needs `act-as`", body: Some(deploy_schema), query: &[] },
    RouteDoc { method: "post", path: "/api/v1/outcomes", scope: Some(Scope::DeployWrite), summary: "Record how a deploy turned out (`deploy outcome`): `healthy`, `degraded` or `failed`, for what runs there (or `digest`). `by` defaults to the token's identity; another identity needs `act-as`. 404 with `found: false` when nothing runs there", body: Some(outcome_schema), query: &[] },
    RouteDoc { method: "post", path: "/api/v1/deploys/end", scope: Some(Scope::DeployWrite), summary: "End a placement (`deploy end`): the service no longer runs in the environment. `by` defaults to the token's identity; another identity needs `act-as`. 404 with `found: false` when nothing is recorded as running there", body: Some(deploy_end_schema), query: &[] },
    RouteDoc { method: "post", path: "/api/v1/approvals", scope: Some(Scope::Approve), summary: "Record an approval of a digest for an environment (`approve`), as the token's identity", body: Some(approval_schema), query: &[] },
    RouteDoc { method: "get", path: "/api/v1/trace/{target}", scope: Some(Scope::Read), summary: "One image, digest or service on one screen (`trace`); 404 with `found: false` when nothing matches", body: None, query: &[("observed_only", false)] },
    RouteDoc { method: "get", path: "/api/v1/affected", scope: Some(Scope::Read), summary: "Services built on a base (`affected --base`), or running a package, purl or vulnerability (`affected --package/--purl/--cve`); exactly one parameter", body: None, query: &[("base", false), ("package", false), ("purl", false), ("cve", false), ("observed_only", false)] },
    RouteDoc { method: "get", path: "/api/v1/vulns", scope: Some(Scope::Read), summary: "Findings of running images by owner, base apart from app, and digests not scanned recently (`vulns`)", body: None, query: &[("env", false), ("severity", false)] },
    RouteDoc { method: "get", path: "/api/v1/running", scope: Some(Scope::Read), summary: "What runs where (`running`), with each placement's observed state", body: None, query: &[("env", false), ("observed_only", false)] },
    RouteDoc { method: "get", path: "/api/v1/drift", scope: Some(Scope::Read), summary: "Where what runs differs from what is recorded (`drift`)", body: None, query: &[("env", false), ("fail_on", false)] },
    RouteDoc { method: "get", path: "/api/v1/log/checkpoint", scope: Some(Scope::Read), summary: "The latest signed checkpoint (`log checkpoint`)", body: None, query: &[] },
    RouteDoc { method: "get", path: "/api/v1/log/proof/{index}", scope: Some(Scope::Read), summary: "Inclusion proof bundle of a ledger entry (`log prove`)", body: None, query: &[] },
    RouteDoc { method: "get", path: "/api/v1/log/consistency", scope: Some(Scope::Read), summary: "Consistency proof bundle between two tree sizes (`log consistency`)", body: None, query: &[("old", true), ("new", true)] },
    RouteDoc { method: "get", path: "/api/v1/tokens", scope: Some(Scope::Admin), summary: "Tokens (ids, names, scopes; never secrets)", body: None, query: &[] },
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/services", get(list_services).post(add_service))
        .route(
            "/api/v1/services/{name}",
            get(show_service).patch(set_owner),
        )
        .route("/api/v1/builds", post(record_build))
        .route("/api/v1/deploys", post(record_deploy))
        .route("/api/v1/deploys/end", post(end_deploy))
        .route("/api/v1/outcomes", post(record_outcome))
        .route("/api/v1/drift", get(drift))
        .route("/api/v1/approvals", post(record_approval))
        .route("/api/v1/trace/{*target}", get(trace))
        .route("/api/v1/affected", get(affected))
        .route("/api/v1/vulns", get(vulns))
        .route("/api/v1/running", get(running))
        .route("/api/v1/log/checkpoint", get(checkpoint))
        .route("/api/v1/log/proof/{index}", get(proof))
        .route("/api/v1/log/consistency", get(consistency))
        .route("/api/v1/tokens", get(tokens))
}

/// `GET /openapi.json`: OpenAPI 3.1, generated from [`ROUTES`].
pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}'], "_")),
            "responses": {
                "200": { "description": "the report, as the CLI prints it with `--format json`", "content": { "application/json": { "schema": { "type": "object" } } } },
                "400": { "$ref": "#/components/responses/Error" },
                "422": { "$ref": "#/components/responses/Error" },
            },
        });
        let mut params: Vec<Value> = Vec::new();
        let mut rest = r.path;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
            params.push(json!({ "name": &rest[start + 1..end], "in": "path", "required": true, "schema": { "type": "string" } }));
            rest = &rest[end..];
        }
        for (name, required) in r.query {
            params.push(json!({ "name": name, "in": "query", "required": required, "schema": { "type": "string" } }));
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(schema) = r.body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema() } } });
            op["responses"]["413"] = json!({ "$ref": "#/components/responses/Error" });
        }
        match r.scope {
            Some(scope) => {
                op["security"] = json!([{ "bearer": [scope.as_str()] }]);
                op["responses"]["401"] = json!({ "$ref": "#/components/responses/Error" });
                op["responses"]["403"] = json!({ "$ref": "#/components/responses/Error" });
                op["x-lineage-scope"] = json!(scope.as_str());
            }
            None => op["security"] = json!([]),
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lineage",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What runs, where it came from, and who fixes it now. Tokens: `lineage token create --name NAME --scope SCOPE`; `admin` implies every scope.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "`{\"schema\": 1, \"error\": {\"message\", \"hint\"}}`",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["schema", "error"],
                        "properties": {
                            "schema": { "const": 1 },
                            "error": { "type": "object", "required": ["message"], "properties": {
                                "message": { "type": "string" }, "hint": { "type": ["string", "null"] } } },
                        },
                    } } },
                },
            },
        },
    })
}

fn identity_schema() -> Value {
    json!({ "type": "string", "description": "an email, handle, `sa:NAME` or workload URI" })
}

fn owners_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": {
        "owner": identity_schema(), "backup_owner": identity_schema(), "emergency_approver": identity_schema() } })
}

fn service_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": ["name"], "properties": {
        "name": { "type": "string" }, "owner": identity_schema(), "backup_owner": identity_schema(),
        "emergency_approver": identity_schema(), "repo": { "type": "string" },
        "images": { "type": "array", "items": { "type": "string" } } } })
}

fn build_schema() -> Value {
    json!({ "type": "object", "required": ["image", "digest"], "description": "a build record (README: JSON formats); `service` defaults to the service that lists the image repository",
        "properties": {
            "service": { "type": "string" }, "image": { "type": "string" }, "digest": { "type": "string" },
            "tags": { "type": "array", "items": { "type": "string" } },
            "bases": { "type": "array", "items": { "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string" }, "tag": { "type": "string" }, "digest": { "type": "string" },
                "pulled_at": { "type": "string", "format": "date-time" }, "final_stage": { "type": "boolean" } } } },
            "source_repo": { "type": "string" }, "git_ref": { "type": "string" }, "commit": { "type": "string" },
            "started_at": { "type": "string", "format": "date-time" }, "finished_at": { "type": "string", "format": "date-time" },
            "ci": { "type": "object" }, "builder": identity_schema(), "platform": { "type": "string" }, "dockerfile": { "type": "object" },
            "gate": { "type": "object", "additionalProperties": false, "description": "how the build gate judges the upload; not stored", "properties": {
                "env": { "type": "string" }, "allow_failures": { "type": "boolean" },
                "dockerfile": { "type": "string", "description": "the Dockerfile's text" },
                "provenance": { "type": "string", "description": "a DSSE envelope of the build's SLSA provenance, signed by the client" } } } } })
}

fn approval_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": ["image", "env"], "properties": {
        "image": { "type": "string", "description": "`REPOSITORY@sha256:…` of a recorded build" }, "env": { "type": "string" },
        "by": identity_schema(), "reason": { "type": "string" } } })
}

fn deploy_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": ["image", "env"], "properties": {
        "image": { "type": "string", "description": "`REPOSITORY@sha256:…`" }, "env": { "type": "string" },
        "by": identity_schema(), "approved_by": identity_schema(), "ticket": { "type": "string" },
        "at": { "type": "string", "format": "date-time" },
        "rollback": { "type": "boolean", "description": "a deliberate rollback to an older build (rule D013)" },
        "config": { "type": "array", "maxItems": 64, "description": "configuration deployed with the image (manifests, Helm values), by content; with the digest it makes the release",
            "items": { "type": "object", "additionalProperties": false, "required": ["path", "sha256"], "properties": {
                "path": { "type": "string", "maxLength": 1024 }, "sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" } } } } } })
}

fn outcome_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": ["service", "env", "status"], "properties": {
        "service": { "type": "string" }, "env": { "type": "string" },
        "status": { "type": "string", "enum": ["healthy", "degraded", "failed"] },
        "digest": { "type": "string", "description": "the digest the outcome is about (default: the one running there)" },
        "detail": { "type": "string", "maxLength": 1000 }, "by": identity_schema(),
        "at": { "type": "string", "format": "date-time" } } })
}

fn deploy_end_schema() -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": ["service", "env"], "properties": {
        "service": { "type": "string" }, "env": { "type": "string" },
        "by": identity_schema(), "reason": { "type": "string" } } })
}

fn admission_schema() -> Value {
    json!({ "type": "object", "description": "an AdmissionReview (admission.k8s.io/v1)" })
}

/// Reads a JSON body into `T`, answering 413 / 400 / 422 in the API's error format.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request body does not match: {e}"),
            "`GET /openapi.json` shows the body each endpoint takes",
        )
    })
}

fn opt<T>(
    v: Option<&str>,
    parse: fn(&str) -> Result<T, lineage_model::ParseError>,
    field: &'static str,
) -> Result<Option<T>, ApiError> {
    v.map(|v| parse(v).map_err(|e| ApiError::from(e.in_field(field))))
        .transpose()
}

fn changed(service: &Service, index: Option<u64>, what: &str) -> Response {
    Json(json!({ "schema": 1, "outcome": what, "index": index, "service": service }))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceInput {
    name: String,
    owner: Option<String>,
    backup_owner: Option<String>,
    emergency_approver: Option<String>,
    repo: Option<String>,
    #[serde(default)]
    images: Vec<String>,
}

async fn add_service(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::Admin)?;
    let input: ServiceInput = parse_body(body)?;
    let service = Service {
        name: ServiceName::parse(&input.name).map_err(|e| e.in_field("name"))?,
        owner: opt(input.owner.as_deref(), Identity::parse, "owner")?,
        backup_owner: opt(
            input.backup_owner.as_deref(),
            Identity::parse,
            "backup_owner",
        )?,
        emergency_approver: opt(
            input.emergency_approver.as_deref(),
            Identity::parse,
            "emergency_approver",
        )?,
        source_repo: opt(input.repo.as_deref(), SourceRepo::parse, "repo")?,
        images: input
            .images
            .iter()
            .map(|i| Repository::parse(i).map_err(|e| ApiError::from(e.in_field("images"))))
            .collect::<Result<_, _>>()?,
    };
    let by = token.identity();
    let s = st.clone();
    let svc = service.clone();
    let index = blocking(move || {
        let now = s.now();
        s.write(move |_, store| Ok(services::add(store, svc, by, now)?))
    })
    .await?;
    st.metrics.record_written("service");
    tracing::info!(service = %service.name, by = %token.identity(), "service added");
    let mut response = changed(&service, Some(index), "added");
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnersInput {
    owner: Option<String>,
    backup_owner: Option<String>,
    emergency_approver: Option<String>,
}

async fn set_owner(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::Admin)?;
    let input: OwnersInput = parse_body(body)?;
    let name = ServiceName::parse(&name).map_err(|e| e.in_field("name"))?;
    let change = services::OwnerChange {
        owner: opt(input.owner.as_deref(), Identity::parse, "owner")?,
        backup_owner: opt(
            input.backup_owner.as_deref(),
            Identity::parse,
            "backup_owner",
        )?,
        emergency_approver: opt(
            input.emergency_approver.as_deref(),
            Identity::parse,
            "emergency_approver",
        )?,
    };
    let by = token.identity();
    let s = st.clone();
    let (service, index) = blocking(move || {
        let now = s.now();
        s.write(move |_, store| {
            let index = services::set_owner(store, &name, change, by, now)?;
            let service = store
                .service(&name)?
                .ok_or_else(|| lineage_core::Error::UnknownService(name.to_string()))?;
            Ok((service, index))
        })
    })
    .await?;
    if index.is_some() {
        st.metrics.record_written("service");
    }
    Ok(changed(
        &service,
        index,
        if index.is_some() {
            "updated"
        } else {
            "unchanged"
        },
    ))
}

async fn list_services(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let s = st.clone();
    let list = blocking(move || s.read(|store| Ok(store.services()?))).await?;
    Ok(Json(json!({ "schema": 1, "services": list })).into_response())
}

async fn show_service(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let name = ServiceName::parse(&name).map_err(|e| e.in_field("name"))?;
    let s = st.clone();
    let report = blocking(move || s.read(|store| Ok(services::show(store, &name)?))).await?;
    Ok(Json(report).into_response())
}

/// The gate options a build upload may carry beside the record (`gate` in the body).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BuildGateInput {
    /// The environment the build is for; production's severities when absent.
    env: Option<String>,
    #[serde(default)]
    allow_failures: bool,
    /// The Dockerfile's text, for the `FROM` rules.
    dockerfile: Option<String>,
    /// The provenance DSSE envelope the client signed (its key never leaves the client).
    provenance: Option<String>,
}

/// A refusal by a gate: 422 with the gate report, exactly the JSON `build check` / `deploy
/// check --format json` print.
fn refused(report: &lineage_policy::Report) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(report)).into_response()
}

/// A record that was written: 201 with the record result and the gate report (warnings,
/// waivers), or 200 when an identical record already existed.
fn recorded<T: serde::Serialize>(
    result: &T,
    created: bool,
    gate: &lineage_policy::Report,
) -> Response {
    let mut body = serde_json::to_value(result).expect("reports serialise");
    body["gate"] = serde_json::to_value(gate).expect("reports serialise");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn record_build(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::BuildWrite)?;
    let mut raw: Value = parse_body(body)?;
    let options: BuildGateInput = match raw.as_object_mut().and_then(|o| o.remove("gate")) {
        Some(g) => serde_json::from_value(g).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`gate` does not match: {e}"),
                "`gate` takes `env`, `allow_failures`, `dockerfile` and `provenance`",
            )
        })?,
        None => BuildGateInput::default(),
    };
    let env = options
        .env
        .as_deref()
        .map(|e| st.cfg.gate.config.environment(e))
        .transpose()?;
    let by = token.identity();
    let s = st.clone();
    let decision = blocking(move || {
        let now = s.now();
        s.write(move |s, store| {
            // The service defaults to the one listing the image repository, as in the CLI.
            let explicit = raw.get("service").and_then(Value::as_str).map(ServiceName::parse).transpose()
                .map_err(|e| ApiError::from(e.in_field("service")))?;
            let image = raw.get("image").and_then(Value::as_str).unwrap_or_default();
            let image = Repository::parse(image).map_err(|e| ApiError::from(e.in_field("image")))?;
            let service = record::service_for_image(store, &image, explicit.as_ref())?;
            raw["service"] = Value::String(service.name.to_string());
            let build: BuildRecord = serde_json::from_value(raw).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the build record does not parse: {e}"),
                    "send a build record as `lineage build record --print-detected --format json` shows it",
                )
            })?;
            let options = gate::BuildOptions {
                env,
                dockerfile: options.dockerfile,
                allow_failures: options.allow_failures,
                provenance: options.provenance,
                // `--from-registry` is the CLI's: the server records the build it is sent.
                base_seen: None,
            };
            Ok(gate::record_build(store, &s.cfg.gate, build, options, Some(&by), now)?)
        })
    })
    .await?;
    match decision {
        Decision::Refused { gate } => {
            tracing::info!(image = ?gate.subject.image, by = %token.identity(), "build refused by its gate");
            Ok(refused(&gate))
        }
        Decision::Recorded { result, gate } => {
            let created = result.record.outcome == "recorded";
            if created {
                st.metrics.record_written("build");
            }
            tracing::info!(digest = %result.record.digest, service = %result.record.service, outcome = result.record.outcome, by = %token.identity(), "build");
            Ok(recorded(&result, created, &gate))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    image: String,
    env: String,
    /// The deployer; the token's identity when absent. Another identity needs `act-as`.
    by: Option<String>,
    approved_by: Option<String>,
    ticket: Option<String>,
    at: Option<String>,
    #[serde(default)]
    rollback: bool,
    /// The configuration deployed with the image: `[{"path": …, "sha256": …}]`.
    #[serde(default)]
    config: Vec<lineage_model::ConfigFile>,
}

/// The identity a write acts as: the token's own, or the one the body names when the token
/// may act for others (403 otherwise).
fn acting_as(
    token: &crate::auth::TokenInfo,
    claimed: Option<&str>,
    field: &'static str,
) -> Result<Identity, ApiError> {
    let claimed = opt(claimed, Identity::parse, field)?;
    token.acting_as(claimed.as_ref()).map_err(|own| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token `{}` acts as `{own}`, not as `{}`",
                token.name,
                claimed.map(|c| c.to_string()).unwrap_or_default()
            ),
            format!(
                "leave `{field}` out (it defaults to `{own}`), or use a token with scope `act-as`: `lineage token create --name NAME --scope deploy:write --scope act-as`"
            ),
        )
    })
}

async fn record_deploy(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::DeployWrite)?;
    let b: DeployBody = parse_body(body)?;
    let input = record::DeployInput {
        image: ImageRef::parse(&b.image).map_err(|e| e.in_field("image"))?,
        env: b.env,
        by: acting_as(&token, b.by.as_deref(), "by")?,
        approved_by: opt(b.approved_by.as_deref(), Identity::parse, "approved_by")?,
        ticket: b.ticket,
        at: opt(b.at.as_deref(), Timestamp::parse, "at")?.unwrap_or_else(|| st.now()),
        rollback: b.rollback,
        config: b.config,
    };
    let recorded_by = token.identity();
    let s = st.clone();
    let decision = blocking(move || {
        let now = s.now();
        s.write(move |s, store| {
            Ok(gate::record_deploy(
                store,
                &s.cfg.gate,
                input,
                Some(&recorded_by),
                now,
            )?)
        })
    })
    .await?;
    match decision {
        Decision::Refused { gate } => {
            tracing::info!(image = ?gate.subject.image, by = %token.identity(), "deploy refused by its gate");
            Ok(refused(&gate))
        }
        Decision::Recorded { result, gate } => {
            st.metrics.record_written("deploy");
            tracing::info!(digest = %result.digest, service = %result.service, by = %token.identity(), "deploy");
            Ok(recorded(&result, true, &gate))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployEndBody {
    service: String,
    env: String,
    /// Who ends it; the token's identity when absent. Another identity needs `act-as`.
    by: Option<String>,
    reason: Option<String>,
}

async fn end_deploy(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::DeployWrite)?;
    let b: DeployEndBody = parse_body(body)?;
    let input = placements::EndInput {
        service: ServiceName::parse(&b.service).map_err(|e| e.in_field("service"))?,
        env: b.env,
        by: acting_as(&token, b.by.as_deref(), "by")?,
        reason: b.reason,
    };
    let recorded_by = token.identity();
    let s = st.clone();
    let (service, env) = (input.service.to_string(), input.env.clone());
    let report = blocking(move || {
        let now = s.now();
        s.write(move |s, store| {
            Ok(placements::end(
                store,
                &s.cfg.gate.config,
                input,
                Some(&recorded_by),
                now,
            )?)
        })
    })
    .await?;
    let Some(report) = report else {
        return Ok(not_found(format!(
            "nothing is recorded as running for `{service}` in `{env}`"
        )));
    };
    st.metrics.record_written("deploy_end");
    tracing::info!(service = %report.service, env = %report.env, by = %report.by, "placement ended");
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    service: String,
    env: String,
    status: String,
    digest: Option<String>,
    detail: Option<String>,
    /// Who saw it; the token's identity when absent. Another identity needs `act-as`.
    by: Option<String>,
    at: Option<String>,
}

/// `POST /api/v1/outcomes`: how a deploy turned out (`deploy outcome`).
async fn record_outcome(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::DeployWrite)?;
    let b: OutcomeBody = parse_body(body)?;
    let input = lifecycle::OutcomeInput {
        service: ServiceName::parse(&b.service).map_err(|e| e.in_field("service"))?,
        env: b.env,
        status: lineage_model::OutcomeStatus::parse(&b.status).map_err(|e| e.in_field("status"))?,
        digest: opt(b.digest.as_deref(), Digest::parse, "digest")?,
        detail: b.detail,
        by: acting_as(&token, b.by.as_deref(), "by")?,
        at: opt(b.at.as_deref(), Timestamp::parse, "at")?.unwrap_or_else(|| st.now()),
    };
    let recorded_by = token.identity();
    let s = st.clone();
    let (service, env) = (input.service.to_string(), input.env.clone());
    let report = blocking(move || {
        let now = s.now();
        s.write(move |s, store| {
            Ok(lifecycle::record_outcome(
                store,
                &s.cfg.gate.config,
                input,
                Some(&recorded_by),
                now,
            )?)
        })
    })
    .await?;
    let Some(report) = report else {
        return Ok(not_found(format!(
            "nothing is recorded as running for `{service}` in `{env}`"
        )));
    };
    st.metrics.record_written("outcome");
    tracing::info!(service = %report.service, env = %report.env, status = %report.status, "outcome");
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalBody {
    image: String,
    env: String,
    /// The approver; the token's identity when absent. Another identity needs `act-as`.
    by: Option<String>,
    reason: Option<String>,
}

async fn record_approval(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = st.authorize(&headers, Scope::Approve)?;
    let b: ApprovalBody = parse_body(body)?;
    let input = gate::ApprovalInput {
        image: ImageRef::parse(&b.image).map_err(|e| e.in_field("image"))?,
        env: b.env,
        by: acting_as(&token, b.by.as_deref(), "by")?,
        reason: b.reason,
    };
    let recorded_by = token.identity();
    let s = st.clone();
    let report = blocking(move || {
        let now = s.now();
        s.write(move |s, store| {
            Ok(gate::approve(
                store,
                &s.cfg.gate.config,
                input,
                Some(&recorded_by),
                now,
            )?)
        })
    })
    .await?;
    let created = report.outcome == "recorded";
    if created {
        st.metrics.record_written("approval");
    }
    tracing::info!(digest = %report.digest, env = %report.env, by = %report.by, "approval");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

fn not_found(message: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "schema": 1, "found": false, "message": message })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ViewQuery {
    #[serde(default)]
    observed_only: bool,
}

impl AppState {
    /// How a query looks at runtime truth: now, and `observed_only` when asked.
    fn view(&self, observed_only: bool) -> query::View {
        query::View {
            now: Some(self.now()),
            observed_only,
        }
    }
}

async fn trace(
    State(st): State<Arc<AppState>>,
    Path(target): Path<String>,
    Query(q): Query<ViewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let s = st.clone();
    let t = target.clone();
    let view = st.view(q.observed_only);
    let report = blocking(move || {
        s.read(|store| Ok(query::trace_with(store, &s.cfg.gate.config, &t, &view)?))
    })
    .await?;
    Ok(match report {
        Some(r) => Json(r).into_response(),
        None => not_found(format!("nothing recorded for `{target}`")),
    })
}

#[derive(Deserialize)]
struct AffectedQuery {
    base: Option<String>,
    #[serde(default)]
    observed_only: bool,
    package: Option<String>,
    purl: Option<String>,
    cve: Option<String>,
}

async fn affected(
    State(st): State<Arc<AppState>>,
    Query(q): Query<AffectedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let given = [&q.base, &q.package, &q.purl, &q.cve]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "pass exactly one of `base`, `package`, `purl` and `cve`",
            "e.g. `?base=python:3.12-slim`, `?package=openssl@<3.0.15`, `?purl=pkg:deb/debian/openssl` or `?cve=CVE-2024-5535`",
        ));
    }
    let package = match (q.package, q.purl, q.cve) {
        (Some(p), _, _) => Some(vulns::PackageQuery::package(&p)?),
        (_, Some(p), _) => Some(vulns::PackageQuery::purl(&p)?),
        (_, _, Some(c)) => Some(vulns::PackageQuery::vuln(&c)?),
        _ => None,
    };
    if let Some(query) = package {
        let s = st.clone();
        let report = blocking(move || {
            s.read(|store| Ok(vulns::affected(store, &s.cfg.gate.config, &query, s.now())?))
        })
        .await?;
        return Ok(Json(report).into_response());
    }
    let base = q.base.expect("one parameter is given");
    query::check_base_query(&base)?;
    let s = st.clone();
    let view = st.view(q.observed_only);
    let report = blocking(move || {
        s.read(|store| Ok(query::affected_by(store, &s.cfg.gate.config, &base, &view)?))
    })
    .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct VulnsQuery {
    env: Option<String>,
    severity: Option<String>,
}

async fn vulns(
    State(st): State<Arc<AppState>>,
    Query(q): Query<VulnsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let env = q
        .env
        .map(|e| st.cfg.gate.config.environment(&e))
        .transpose()?;
    let severities = q
        .severity
        .map(|v| vulns::parse_severities(&v))
        .transpose()?
        .unwrap_or_default();
    let s = st.clone();
    let report = blocking(move || {
        s.read(|store| {
            Ok(vulns::vulns(
                store,
                &s.cfg.gate.config,
                env.as_ref(),
                &severities,
                s.now(),
            )?)
        })
    })
    .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct RunningQuery {
    env: Option<String>,
    #[serde(default)]
    observed_only: bool,
}

async fn running(
    State(st): State<Arc<AppState>>,
    Query(q): Query<RunningQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let env = q
        .env
        .map(|e| st.cfg.gate.config.environment(&e))
        .transpose()?;
    let s = st.clone();
    let view = st.view(q.observed_only);
    let report = blocking(move || {
        s.read(|store| {
            Ok(query::running_with(
                store,
                &s.cfg.gate.config,
                env.as_ref(),
                &view,
            )?)
        })
    })
    .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct DriftQuery {
    env: Option<String>,
    fail_on: Option<String>,
}

async fn drift(
    State(st): State<Arc<AppState>>,
    Query(q): Query<DriftQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let options = lineage_core::drift::DriftOptions {
        env: q
            .env
            .map(|e| st.cfg.gate.config.environment(&e))
            .transpose()?,
        fail_on: q
            .fail_on
            .as_deref()
            .map(lineage_core::drift::DriftKind::parse_list)
            .transpose()?
            .unwrap_or_default(),
        allow: st.cfg.admission.allow.clone(),
    };
    let s = st.clone();
    let report = blocking(move || {
        let now = s.now();
        s.read(|store| {
            Ok(lineage_core::drift::drift(
                store,
                &s.cfg.gate.config,
                &options,
                now,
            )?)
        })
    })
    .await?;
    Ok(Json(report).into_response())
}

async fn checkpoint(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let s = st.clone();
    let latest = blocking(move || s.read(|store| Ok(store.latest_checkpoint()?))).await?;
    let Some(latest) = latest else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the ledger has no signed checkpoint yet",
            "record something first; each write signs one",
        ));
    };
    // Keys sorted, as the CLI prints them.
    let report =
        serde_json::to_value(ledger_log::CheckpointReport::of(&latest)).expect("reports serialise");
    Ok(Json(report).into_response())
}

/// The checkpoint as `lineage log checkpoint --format json` prints it.
async fn proof(
    State(st): State<Arc<AppState>>,
    Path(index): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let index: u64 = index.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{index}` is not a ledger index"),
            "give a number, e.g. `/api/v1/log/proof/12`",
        )
    })?;
    let s = st.clone();
    let bundle = blocking(move || s.read(|store| Ok(ledger_log::prove(store, index)?))).await?;
    // The same tagged bundle `lineage log prove` writes, so `log verify-proof` reads it.
    Ok(Json(ProofBundle::Inclusion(bundle)).into_response())
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: Option<u64>,
    new: Option<u64>,
}

async fn consistency(
    State(st): State<Arc<AppState>>,
    Query(q): Query<ConsistencyQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Read)?;
    let (Some(old), Some(new)) = (q.old, q.new) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "`old` and `new` are required",
            "e.g. `?old=10&new=42`",
        ));
    };
    let s = st.clone();
    let bundle =
        blocking(move || s.read(|store| Ok(ledger_log::consistency(store, old, new)?))).await?;
    Ok(Json(ProofBundle::Consistency(bundle)).into_response())
}

async fn tokens(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.authorize(&headers, Scope::Admin)?;
    let s = st.clone();
    let list = blocking(move || {
        s.read(|store| crate::auth::list(store).map_err(|e| ApiError::internal(e.to_string())))
    })
    .await?;
    Ok(Json(list).into_response())
}
