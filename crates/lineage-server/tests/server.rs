//! The server, in process: the authorization matrix over every endpoint, the admission webhook
//! on the shared fixtures and on generated reviews of every workload kind, bad input, body
//! limits, metrics, the OpenAPI document, and the dashboard's login and security headers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use lineage_core::{record, services, Config};
use lineage_model::{
    BaseImage, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record, Repository,
    Retirement, Service, ServiceName, Tag, Timestamp,
};
use lineage_server::auth::{self, Scope};
use lineage_server::{AdmissionConfig, AppState, DashboardConfig, Mode, ServerConfig};
use lineage_store::StoreLocation;
use serde_json::{json, Value};
use tower::ServiceExt;

fn fixtures() -> std::path::PathBuf {
    std::env::var_os("LINEAGE_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures").into())
}

const NOW: &str = "2026-11-20T12:00:00Z";

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    /// Scope name → secret; `admin` included.
    tokens: Vec<(Option<Scope>, String)>,
}

/// A ledger with services `api` (owned) and `orphan` (no owner), builds `a` (api, running in
/// production), `r` (api, retired), `o` (orphan), a token per scope, served with `mode`.
fn world(mode: Mode) -> World {
    world_with(mode, DashboardConfig::default())
}

fn world_with(mode: Mode, dashboard: DashboardConfig) -> World {
    world_full(mode, dashboard, "")
}

/// A world whose lineage.toml also holds `extra` (gate sections, `[admission]` keys).
fn world_full(mode: Mode, dashboard: DashboardConfig, extra: &str) -> World {
    world_seeded(mode, dashboard, extra, Default::default(), |_, _| {})
}

/// [`world_full`] with more records, written by `seed` before the server starts.
fn world_seeded(
    mode: Mode,
    dashboard: DashboardConfig,
    extra: &str,
    trust: lineage_attest::trust::TrustPolicy,
    seed: impl FnOnce(&mut dyn lineage_store::Store, Timestamp),
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("l.db"));
    let now = Timestamp::parse(NOW).unwrap();
    let mut store = lineage_store::open(&location, true).unwrap();
    let s = store.as_mut();
    let svc = |name: &str, owner: Option<&str>, image: &str| Service {
        name: ServiceName::parse(name).unwrap(),
        owner: owner.map(id),
        backup_owner: owner.map(|_| id("jonas@acme.dev")),
        emergency_approver: None,
        source_repo: None,
        images: vec![Repository::parse(image).unwrap()],
    };
    services::add(
        s,
        svc("api", Some("priya@acme.dev"), "ghcr.io/acme/api"),
        id("ops@acme.dev"),
        now,
    )
    .unwrap();
    services::add(
        s,
        svc("orphan", None, "ghcr.io/acme/orphan"),
        id("ops@acme.dev"),
        now,
    )
    .unwrap();
    let build = |service: &str, image: &str, d: Digest| BuildRecord {
        service: ServiceName::parse(service).unwrap(),
        image: Repository::parse(image).unwrap(),
        digest: d,
        tags: vec![Tag::parse("1.0").unwrap()],
        bases: vec![BaseImage {
            name: Repository::parse("python").unwrap(),
            tag: Some(Tag::parse("3.12-slim").unwrap()),
            digest: Some(digest('b')),
            pulled_at: Some(now),
            final_stage: true,
        }],
        source_repo: None,
        git_ref: None,
        commit: Some(CommitId::parse(&"c".repeat(40)).unwrap()),
        started_at: None,
        finished_at: Some(now),
        ci: None,
        builder: None,
        platform: None,
        dockerfile: None,
    };
    record::build(s, build("api", "ghcr.io/acme/api", digest('a')), now, None).unwrap();
    record::build(s, build("api", "ghcr.io/acme/api", digest('e')), now, None).unwrap();
    record::build(
        s,
        build("orphan", "ghcr.io/acme/orphan", digest('f')),
        now,
        None,
    )
    .unwrap();
    record::deploy(
        s,
        DeployRecord {
            config: Vec::new(),
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: digest('a'),
            env: EnvName::parse("production").unwrap(),
            by: id("jonas@acme.dev"),
            approved_by: Some(id("maya@acme.dev")),
            ticket: None,
            at: now,
            rollback: false,
        },
        now,
        None,
    )
    .unwrap();
    s.record_facts(
        &[Record::Retire(Retirement {
            digest: digest('e'),
            reason: "CVE-2026-1234 in openssl".into(),
            by: id("sec@acme.dev"),
            at: now,
        })],
        now,
        None,
    )
    .unwrap();
    let mut tokens = Vec::new();
    for scope in Scope::ALL {
        let name = scope.as_str().replace(':', "-");
        let created = auth::create(
            s,
            &name,
            &[scope.as_str().to_string()],
            None,
            &id("ops@acme.dev"),
            now,
        )
        .unwrap();
        tokens.push((Some(scope), created.secret));
    }
    // A revoked admin token must be refused like an unknown one.
    let revoked = auth::create(
        s,
        "old",
        &["admin".to_string()],
        None,
        &id("ops@acme.dev"),
        now,
    )
    .unwrap();
    auth::revoke(s, &revoked.grant.id, &id("ops@acme.dev"), now).unwrap();
    tokens.push((None, revoked.secret));
    seed(s, now);
    drop(store);

    let config = Config::default();
    let toml =
        format!("[admission]\nnamespaces = {{ prod = \"production\", dev = \"dev\" }}\n{extra}");
    let mut admission = AdmissionConfig::from_toml(&toml, "lineage.toml", &config).unwrap();
    admission.mode = mode;
    let policy = lineage_policy::PolicyConfig::from_toml(&toml, "lineage.toml").unwrap();
    let key = lineage_store::lineage_log::keys::LogKey::generate("lineage.test/ledger").unwrap();
    let state = lineage_server::state(ServerConfig {
        store: location,
        gate: lineage_core::gate::Setup {
            config,
            policy,
            trust,
            ..Default::default()
        },
        admission,
        log: Some((Arc::new(key), Default::default())),
        body_limit: 64 * 1024,
        request_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        clock: Arc::new(move || now),
        dashboard,
    })
    .unwrap();
    let store = lineage_store::open(&state.cfg.store, false).unwrap();
    state.index.load(store.as_ref(), now).unwrap();
    World {
        _dir: dir,
        state,
        tokens,
    }
}

async fn call(
    w: &World,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("Content-Type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let response = lineage_server::router(w.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// A request that is valid for each documented endpoint, so an authorized caller gets past
/// authorization (and is not answered 404 "no such endpoint").
fn example(method: &str, path: &str, n: usize) -> (String, Option<Value>) {
    let d = format!("sha256:{}", "a".repeat(64));
    let uri = path
        .replace("{name}", "api")
        .replace("{target}", "api")
        .replace("{index}", "0");
    let uri = match path {
        "/api/v1/affected" => format!("{uri}?base=python:3.12-slim"),
        "/api/v1/running" => format!("{uri}?env=production"),
        "/api/v1/log/consistency" => format!("{uri}?old=1&new=2"),
        _ => uri,
    };
    let body = match (method, path) {
        ("post", "/api/v1/services") => Some(
            json!({ "name": format!("svc-{n}"), "owner": "a@acme.dev", "images": [format!("ghcr.io/acme/svc-{n}")] }),
        ),
        ("patch", _) => Some(json!({ "backup_owner": format!("b{n}@acme.dev") })),
        ("post", "/api/v1/builds") => {
            Some(json!({ "image": "ghcr.io/acme/api", "digest": format!("sha256:{:064x}", n + 1) }))
        }
        ("post", "/api/v1/deploys") => {
            Some(json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "staging" }))
        }
        // An environment that is not configured: past authorization, nothing ended.
        ("post", "/api/v1/deploys/end") => Some(json!({ "service": "api", "env": "qa" })),
        ("post", "/api/v1/approvals") => {
            Some(json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "staging" }))
        }
        ("post", "/admission") => Some(review(
            "Pod",
            "dev",
            pod_spec(&[("containers", "app", "nginx:1.27")]),
        )),
        _ => None,
    };
    (uri, body)
}

#[tokio::test]
async fn authorization_matrix() {
    let w = world(Mode::Enforce);
    let mut n = 0;
    let mut failures = Vec::new();
    for route in lineage_server::api::ROUTES {
        // Callers: no token, a bad token, a revoked token, then one token per scope.
        let mut callers: Vec<(String, Option<String>, Option<Scope>)> = vec![
            ("no token".into(), None, None),
            (
                "bad token".into(),
                Some("lin_000000000000_bad".into()),
                None,
            ),
        ];
        for (scope, secret) in &w.tokens {
            let label = scope.map_or("revoked admin".to_string(), |s| s.as_str().to_string());
            callers.push((label, Some(secret.clone()), *scope));
        }
        for (label, token, scope) in callers {
            n += 1;
            let (uri, body) = example(route.method, route.path, n);
            let (status, value) = call(
                &w,
                &route.method.to_uppercase(),
                &uri,
                token.as_deref(),
                body,
            )
            .await;
            let expected = match (route.scope, token.is_some(), scope) {
                (None, _, _) => "allowed",
                (Some(_), false, _) => "401",
                (Some(_), true, None) => "401",
                (Some(needed), true, Some(has)) if has == needed || has == Scope::Admin => {
                    "allowed"
                }
                (Some(_), true, Some(_)) => "403",
            };
            let ok = match expected {
                "401" => {
                    status == StatusCode::UNAUTHORIZED
                        && value["error"]["message"].is_string()
                        && value["error"]["hint"].is_string()
                }
                "403" => {
                    status == StatusCode::FORBIDDEN
                        && value["error"]["message"]
                            .as_str()
                            .unwrap_or("")
                            .contains("needs")
                }
                _ => {
                    status.is_success()
                        || (status.is_client_error()
                            && status != StatusCode::UNAUTHORIZED
                            && status != StatusCode::FORBIDDEN
                            && status != StatusCode::NOT_FOUND
                            && status != StatusCode::METHOD_NOT_ALLOWED)
                }
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {label}: expected {expected}, got {status} {value}",
                    route.method, uri
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every documented endpoint is in the OpenAPI document with its scope.
    let (status, doc) = call(&w, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for route in lineage_server::api::ROUTES {
        let op = &doc["paths"][route.path][route.method];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
        assert_eq!(
            op["x-lineage-scope"].as_str(),
            route.scope.map(|s| s.as_str())
        );
    }
}

#[tokio::test]
async fn writes_record_the_token_identity_and_metrics_count_them() {
    let w = world(Mode::Enforce);
    let build_token = &w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::BuildWrite))
        .unwrap()
        .1;
    let d = format!("sha256:{}", "9".repeat(64));
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/builds",
        Some(build_token),
        Some(complete_build(&d, "2.0")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["gate"]["passed"], true, "{v}");
    assert_eq!(
        (
            v["outcome"].as_str(),
            v["kind"].as_str(),
            v["service"].as_str()
        ),
        (Some("recorded"), Some("build"), Some("api"))
    );
    let store = lineage_store::open(&w.state.cfg.store, false).unwrap();
    let index = v["index"].as_u64().unwrap();
    let entry = store.entries(index, index + 1).unwrap().pop().unwrap();
    assert_eq!(
        entry.recorded_by.unwrap().to_string(),
        "sa:token-build-write"
    );
    // Sealed: a checkpoint covers the write.
    assert!(store.latest_checkpoint().unwrap().unwrap().size > index);
    let (_, metrics) = call(&w, "GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("lineage_records_written_total{kind=\"build\"} 1"),
        "{text}"
    );
    assert!(text.contains("lineage_http_request_duration_seconds_bucket{route=\"/api/v1/builds\",method=\"POST\",status=\"201\""), "{text}");
    // The same digest with other facts is a conflict with a hint, not a 500.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/builds",
        Some(build_token),
        Some(complete_build(&d, "3.0")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["error"]["hint"].is_string());
}

/// A build record that passes the production build gate.
fn complete_build(digest: &str, tag: &str) -> Value {
    json!({
        "image": "ghcr.io/acme/api", "digest": digest, "tags": [tag],
        "bases": [{ "name": "docker.io/library/python", "tag": "3.12-slim",
                    "digest": format!("sha256:{}", "b".repeat(64)),
                    "pulled_at": NOW, "final_stage": true }],
        "source_repo": "https://github.com/acme/api", "git_ref": "main",
        "commit": "c".repeat(40),
        "ci": { "system": "github-actions", "run_id": "42" },
    })
}

#[tokio::test]
async fn bad_bodies_get_json_errors_and_too_large_gets_413() {
    let w = world(Mode::Enforce);
    let admin = &w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::Admin))
        .unwrap()
        .1;
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/services",
        Some(admin),
        Some(json!({ "name": "Bad Name" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["hint"].is_string(), "{v}");
    // A service made is answered 201 Created, like every other record.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/services",
        Some(admin),
        Some(json!({ "name": "fresh", "owner": "a@acme.dev" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], "added", "{v}");
    let huge = json!({ "name": "x".repeat(100_000) });
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/services",
        Some(admin),
        Some(huge.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["schema"], 1);
    let (status, _) = call(&w, "POST", "/admission", None, Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, v) = call(
        &w,
        "GET",
        "/api/v1/trace/ghcr.io/acme/nothing:1.0",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["found"], false);
    let (status, v) = call(
        &w,
        "GET",
        "/api/v1/trace/ghcr.io/acme/api:1.0",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["service"], "api");
}

// --- Admission ---------------------------------------------------------------------------

fn review(kind: &str, namespace: &str, pod_spec: Value) -> Value {
    let object = match kind {
        "Pod" => json!({ "metadata": { "name": "p" }, "spec": pod_spec }),
        "CronJob" => {
            json!({ "spec": { "jobTemplate": { "spec": { "template": { "spec": pod_spec } } } } })
        }
        _ => json!({ "spec": { "template": { "spec": pod_spec } } }),
    };
    let group = match kind {
        "Pod" => "",
        "Job" | "CronJob" => "batch",
        _ => "apps",
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{kind}-{namespace}"),
            "kind": { "group": group, "version": "v1", "kind": kind },
            "namespace": namespace,
            "operation": "CREATE",
            "object": object,
        }
    })
}

fn pod_spec(containers: &[(&str, &str, &str)]) -> Value {
    let mut spec = json!({});
    for (field, name, image) in containers {
        let list = spec
            .as_object_mut()
            .unwrap()
            .entry(field.to_string())
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!({ "name": name, "image": image }));
    }
    spec
}

async fn admit(w: &World, body: Value) -> Value {
    let (status, v) = call(w, "POST", "/admission", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    v["response"].clone()
}

/// (what, allowed, rule codes expected in the message or warnings)
fn check(r: &Value, allowed: bool, codes: &[&str], what: &str) {
    assert_eq!(r["allowed"], allowed, "{what}: {r}");
    let text = format!("{} {}", r["status"]["message"], r["warnings"]);
    for c in codes {
        assert!(text.contains(c), "{what}: expected {c} in {text}");
    }
}

#[tokio::test]
async fn every_workload_kind_and_container_field() {
    let w = world(Mode::Enforce);
    let good = format!("ghcr.io/acme/api:1.0@sha256:{}", "a".repeat(64));
    let unknown = format!("ghcr.io/acme/api@sha256:{}", "d".repeat(64));
    let retired = format!("ghcr.io/acme/api@sha256:{}", "e".repeat(64));
    let orphan = format!("ghcr.io/acme/orphan@sha256:{}", "f".repeat(64));
    for kind in [
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    ] {
        for field in ["containers", "initContainers", "ephemeralContainers"] {
            let at = format!("{kind}/{field}");
            // The bad image sits in `field`; a good one always runs as the main container.
            let spec = |bad: &str| {
                let mut list = vec![("containers", "main", good.as_str())];
                list.push((field, "checked", bad));
                pod_spec(&list)
            };
            let r = admit(&w, review(kind, "prod", spec(&good))).await;
            check(&r, true, &[], &format!("{at} recorded"));
            assert_eq!(r["uid"], format!("uid-{kind}-prod"));
            let r = admit(&w, review(kind, "prod", spec("nginx:1.27"))).await;
            check(
                &r,
                false,
                &["D005", "image-not-pinned", "nginx:1.27", field],
                &format!("{at} unpinned"),
            );
            let r = admit(&w, review(kind, "prod", spec(&unknown))).await;
            check(
                &r,
                false,
                &["D006", "provenance is unknown"],
                &format!("{at} unknown digest"),
            );
            let r = admit(&w, review(kind, "prod", spec(&retired))).await;
            check(
                &r,
                false,
                &["D008", "CVE-2026-1234"],
                &format!("{at} retired"),
            );
            let r = admit(&w, review(kind, "prod", spec(&orphan))).await;
            check(
                &r,
                false,
                &["D001", "set-owner orphan"],
                &format!("{at} no owner"),
            );
            // Outside production an unpinned image of an owned service is only a warning
            // (`nginx:1.27` would be denied there too: no service owns it, D001).
            let r = admit(&w, review(kind, "dev", spec("ghcr.io/acme/api:1.0"))).await;
            check(&r, true, &["D005"], &format!("{at} unpinned in dev"));
            // A namespace Lineage does not govern is allowed, with the reason.
            let r = admit(&w, review(kind, "kube-system", spec(&unknown))).await;
            check(&r, true, &[], &format!("{at} ungoverned"));
            assert!(r["status"]["message"]
                .as_str()
                .unwrap()
                .contains("not governed"));
        }
    }
    let (_, metrics) = call(&w, "GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("lineage_admission_decisions_total{outcome=\"denied\",rule=\"D005\"} 21"),
        "{text}"
    );
}

#[tokio::test]
async fn audit_mode_only_warns() {
    let w = world(Mode::Audit);
    let r = admit(
        &w,
        review(
            "Deployment",
            "prod",
            pod_spec(&[("containers", "web", "nginx:1.27")]),
        ),
    )
    .await;
    check(&r, true, &["audit mode, would deny", "D005"], "audit");
}

#[tokio::test]
async fn shared_fixtures() {
    let w = world(Mode::Enforce);
    let dir = fixtures().join("admission");
    // The Kubernetes round-trip fixture: every field set, placeholder kind. Allowed, with why.
    let text = std::fs::read_to_string(
        dir.join("k8s-api-testdata.admission.k8s.io.v1.AdmissionReview.json"),
    )
    .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", dir.display()));
    let r = admit(&w, serde_json::from_str(&text).unwrap()).await;
    assert_eq!(r["uid"], "uidValue");
    check(&r, true, &[], "k8s testdata");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("kindValue"),
        "{r}"
    );
    // Kubewarden's bare requests, wrapped, in a production namespace.
    let wrap = |file: &str| {
        let mut request: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        request["namespace"] = json!("prod");
        json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request })
    };
    let r = admit(&w, wrap("kubewarden.pod_creation_with_digest.request.json")).await;
    assert_eq!(r["uid"], "1299d386-525b-4032-98ae-1949f69f9cfc");
    check(
        &r,
        false,
        &[
            "D006",
            "sha256:89102e348749bb17a6a651a4b2a17420e1a66d2a44a675b981973d49a5af3a5e",
        ],
        "kubewarden digest",
    );
    let r = admit(
        &w,
        wrap("kubewarden.pod_creation_with_init_container.request.json"),
    )
    .await;
    check(
        &r,
        false,
        &["D005", "initContainers `init`", "containers `nginx`"],
        "kubewarden init container",
    );
}

#[tokio::test]
async fn bad_reviews_get_well_formed_answers() {
    let w = world(Mode::Enforce);
    let cases: Vec<(&str, Body)> = vec![
        ("not json", Body::from("{{{")),
        ("not a review", Body::from(json!({ "kind": "Pod" }).to_string())),
        ("no request", Body::from(json!({ "kind": "AdmissionReview" }).to_string())),
        ("no uid", Body::from(json!({ "kind": "AdmissionReview", "request": { "kind": { "kind": "Pod" } } }).to_string())),
        ("container without image", Body::from(review("Pod", "prod", json!({ "containers": [{ "name": "x" }] })).to_string())),
        ("containers not a list", Body::from(review("Pod", "prod", json!({ "containers": 7 })).to_string())),
        ("no pod spec", Body::from(json!({ "kind": "AdmissionReview", "request": { "uid": "u", "kind": { "kind": "Deployment" }, "operation": "CREATE", "object": { "spec": {} } } }).to_string())),
        ("empty body", Body::empty()),
    ];
    for (what, body) in cases {
        let req = Request::builder()
            .method("POST")
            .uri("/admission")
            .body(body)
            .unwrap();
        let response = lineage_server::router(w.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        let v: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(v["kind"], "AdmissionReview", "{what}");
        assert_eq!(v["response"]["allowed"], false, "{what}: {v}");
        assert!(
            v["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("could not read"),
            "{what}: {v}"
        );
    }
    // Unknown kinds and deletes are allowed, and the answer says why.
    let mut r = review("Pod", "prod", json!({}));
    r["request"]["kind"]["kind"] = json!("ConfigMap");
    let resp = admit(&w, r).await;
    check(&resp, true, &[], "configmap");
    assert!(resp["status"]["message"]
        .as_str()
        .unwrap()
        .contains("ConfigMap"));
    let mut r = review("Pod", "prod", json!({}));
    r["request"]["operation"] = json!("DELETE");
    r["request"]["object"] = Value::Null;
    check(&admit(&w, r).await, true, &[], "delete");
}

#[tokio::test]
async fn index_sees_new_ledger_entries_and_revocations() {
    let w = world(Mode::Enforce);
    let unknown = format!("ghcr.io/acme/api@sha256:{}", "7".repeat(64));
    let r = admit(
        &w,
        review("Pod", "prod", pod_spec(&[("containers", "c", &unknown)])),
    )
    .await;
    check(&r, false, &["D006"], "before");
    // A write through another connection (the CLI), then one poll.
    let now = Timestamp::parse(NOW).unwrap();
    let mut store = lineage_store::open(&w.state.cfg.store, false).unwrap();
    let b = store.build(&digest('a')).unwrap().unwrap();
    let mut nb = b.clone();
    nb.digest = digest('7');
    record::build(store.as_mut(), nb, now, None).unwrap();
    let reader = lineage_store::open(&w.state.cfg.store, false).unwrap();
    w.state.index.refresh(reader.as_ref()).unwrap();
    // Recorded but never deployed to production with an approval: the deploy gate's D003.
    let r = admit(
        &w,
        review("Pod", "prod", pod_spec(&[("containers", "c", &unknown)])),
    )
    .await;
    check(&r, false, &["D003"], "built, not deployed");
    record::deploy(
        store.as_mut(),
        DeployRecord {
            config: Vec::new(),
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: digest('7'),
            env: EnvName::parse("production").unwrap(),
            by: id("jonas@acme.dev"),
            approved_by: Some(id("maya@acme.dev")),
            ticket: None,
            at: now,
            rollback: false,
        },
        now,
        None,
    )
    .unwrap();
    w.state.index.refresh(reader.as_ref()).unwrap();
    let r = admit(
        &w,
        review("Pod", "prod", pod_spec(&[("containers", "c", &unknown)])),
    )
    .await;
    check(&r, true, &[], "after");
    // Revoking a token takes effect on the next refresh.
    let read = w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::Read))
        .unwrap()
        .1
        .clone();
    assert_eq!(
        call(&w, "GET", "/api/v1/services", Some(&read), None)
            .await
            .0,
        StatusCode::OK
    );
    let list = auth::list(store.as_ref()).unwrap();
    let rid = list
        .tokens
        .iter()
        .find(|t| t.name == "read")
        .unwrap()
        .id
        .clone();
    auth::revoke(store.as_mut(), &rid, &id("ops@acme.dev"), now).unwrap();
    w.state.index.refresh(reader.as_ref()).unwrap();
    assert_eq!(
        call(&w, "GET", "/api/v1/services", Some(&read), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let _ = store.len();
}

#[tokio::test]
async fn readiness_and_not_ready_answer() {
    let w = world(Mode::Enforce);
    assert_eq!(
        call(&w, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    // A fresh state whose index has not loaded: readyz 503, admission denies (the default).
    let cfg = &w.state.cfg;
    let fresh = lineage_server::state(ServerConfig {
        store: cfg.store.clone(),
        gate: cfg.gate.clone(),
        admission: cfg.admission.clone(),
        log: None,
        body_limit: cfg.body_limit,
        request_timeout: cfg.request_timeout,
        poll_interval: cfg.poll_interval,
        clock: cfg.clock.clone(),
        dashboard: cfg.dashboard,
    })
    .unwrap();
    let w2 = World {
        _dir: tempfile::tempdir().unwrap(),
        state: fresh,
        tokens: Vec::new(),
    };
    assert_eq!(
        call(&w2, "GET", "/readyz", None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let good = format!("ghcr.io/acme/api@sha256:{}", "a".repeat(64));
    let r = admit(
        &w2,
        review("Pod", "prod", pod_spec(&[("containers", "c", &good)])),
    )
    .await;
    check(&r, false, &[], "not ready");
    assert!(r["status"]["message"].as_str().unwrap().contains("loading"));
    // A valid token is not "not valid" while the tokens load: 503 with Retry-After.
    let (_, secret) = &w.tokens[0];
    let response = lineage_server::router(w2.state.clone())
        .oneshot(
            Request::builder()
                .uri("/api/v1/services")
                .header("Authorization", format!("Bearer {secret}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
}

#[test]
fn webhook_config_has_a_ca_and_a_serving_certificate() {
    let b = lineage_server::k8s::webhook_config(&lineage_server::k8s::WebhookParams {
        service_name: "lineage".into(),
        namespace: "lineage-system".into(),
        port: 443,
        target_port: 8443,
        namespaces: vec!["prod".into()],
        failure_policy: "Fail",
    })
    .unwrap();
    assert!(b.manifests.contains("kind: ValidatingWebhookConfiguration"));
    assert!(b.manifests.contains("kind: Service"));
    assert!(b.manifests.contains("path: /admission"));
    assert!(b.manifests.contains("values: [\"prod\"]"));
    assert!(b.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(b.key_pem.contains("PRIVATE KEY"));
    // The pair loads as a TLS server configuration.
    lineage_server::tls::server_config(b.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap();
}

// --- Dashboard: login, access and security headers ----------------------------------------

/// Every dashboard page, with a request that renders it.
const PAGES: &[&str] = &["/", "/services/api", "/incident?q=python:3.12-slim", "/log"];

/// How a request presents a token to the dashboard.
#[derive(Clone, Copy)]
enum Via<'a> {
    Nothing,
    Header(&'a str),
    Cookie(&'a str),
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

async fn send(w: &World, req: Request<Body>) -> Answer {
    let response = lineage_server::router(w.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into(),
    }
}

async fn browse(w: &World, uri: &str, via: Via<'_>) -> Answer {
    let req = Request::builder().uri(uri);
    let req = match via {
        Via::Nothing => req,
        Via::Header(t) => req.header("Authorization", format!("Bearer {t}")),
        Via::Cookie(t) => req.header("Cookie", format!("theme=dark; lineage_token={t}")),
    };
    send(w, req.body(Body::empty()).unwrap()).await
}

async fn post_form(w: &World, uri: &str, form: &str, extra: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("Content-Type", "application/x-www-form-urlencoded");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    send(w, req.body(Body::from(form.to_string())).unwrap()).await
}

fn token(w: &World, scope: Option<Scope>) -> String {
    w.tokens
        .iter()
        .find(|(s, _)| *s == scope)
        .unwrap()
        .1
        .clone()
}

/// Form-encodes a value the way a browser does.
fn form_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers every dashboard answer must carry; returns what is wrong.
fn page_headers(what: &str, a: &Answer) -> Vec<String> {
    let mut wrong = Vec::new();
    let csp = a.header(header::CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for want in [
        "default-src 'none'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        if !directives.contains(&want) {
            wrong.push(format!("{what}: CSP lacks `{want}`: {csp:?}"));
        }
    }
    let style = directives
        .iter()
        .find(|d| d.starts_with("style-src "))
        .copied()
        .unwrap_or("");
    if !(style == "style-src 'unsafe-inline'" || style.starts_with("style-src 'sha256-")) {
        wrong.push(format!("{what}: CSP style-src is {style:?}"));
    }
    if csp.contains("script") {
        wrong.push(format!("{what}: CSP allows scripts: {csp:?}"));
    }
    for (name, want) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if a.header(name.clone()) != want {
            wrong.push(format!(
                "{what}: {name} is {:?}, want {want:?}",
                a.header(name.clone())
            ));
        }
    }
    wrong
}

#[tokio::test]
async fn dashboard_needs_a_read_token() {
    let w = world(Mode::Enforce);
    let read = token(&w, Some(Scope::Read));
    let admin = token(&w, Some(Scope::Admin));
    let build = token(&w, Some(Scope::BuildWrite));
    let deploy = token(&w, Some(Scope::DeployWrite));
    let revoked = token(&w, None);
    let bad = "lin_000000000000_bad";
    let mut wrong = Vec::new();
    for &page in PAGES {
        let cases: Vec<(&str, Via, StatusCode)> = vec![
            ("no token", Via::Nothing, StatusCode::SEE_OTHER),
            (
                "bad token in the header",
                Via::Header(bad),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "bad token in the cookie",
                Via::Cookie(bad),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "revoked token",
                Via::Cookie(&revoked),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "read token in the header",
                Via::Header(&read),
                StatusCode::OK,
            ),
            (
                "read token in the cookie",
                Via::Cookie(&read),
                StatusCode::OK,
            ),
            (
                "admin token in the cookie",
                Via::Cookie(&admin),
                StatusCode::OK,
            ),
            (
                "build:write token in the header",
                Via::Header(&build),
                StatusCode::FORBIDDEN,
            ),
            (
                "build:write token in the cookie",
                Via::Cookie(&build),
                StatusCode::FORBIDDEN,
            ),
            (
                "deploy:write token in the cookie",
                Via::Cookie(&deploy),
                StatusCode::FORBIDDEN,
            ),
        ];
        for (label, via, want) in cases {
            let what = format!("GET {page} with {label}");
            let a = browse(&w, page, via).await;
            if a.status != want {
                wrong.push(format!("{what}: got {}, want {want}", a.status));
                continue;
            }
            wrong.extend(page_headers(&what, &a));
            if !a.header(header::CONTENT_TYPE).starts_with("text/html") {
                wrong.push(format!(
                    "{what}: not HTML: {:?}",
                    a.header(header::CONTENT_TYPE)
                ));
            }
            let ok = match want {
                StatusCode::SEE_OTHER => {
                    let location = a.header(header::LOCATION);
                    let back = if page == "/" {
                        "/login".to_string()
                    } else {
                        format!("/login?next={}", form_value(page).replace("%2F", "/"))
                    };
                    location == back && a.body.contains("href=\"/login")
                }
                StatusCode::UNAUTHORIZED => {
                    // The login form again, with the error, never with what was presented.
                    a.body.contains("type=\"password\"")
                        && a.body.contains("not valid")
                        && !a.body.contains(bad)
                        && !a.body.contains(&revoked)
                }
                StatusCode::FORBIDDEN => a.body.contains("needs `read`"),
                _ => a.body.contains("Sign out") && !a.body.contains("type=\"password\""),
            };
            if !ok {
                wrong.push(format!(
                    "{what}: unexpected answer {:?}\n{}",
                    a.header(header::LOCATION),
                    a.body
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases failed:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // A revoked token in the cookie is forgotten, so the next visit is a clean login.
    let a = browse(&w, "/", Via::Cookie(&revoked)).await;
    assert!(
        a.header(header::SET_COOKIE)
            .starts_with("lineage_token=; Max-Age=0"),
        "{:?}",
        a.headers
    );
}

#[tokio::test]
async fn public_dashboard_needs_no_token_but_the_api_still_does() {
    let w = world_with(
        Mode::Enforce,
        DashboardConfig {
            public: true,
            secure_cookie: false,
        },
    );
    for &page in PAGES {
        let a = browse(&w, page, Via::Nothing).await;
        assert_eq!(a.status, StatusCode::OK, "{page}: {}", a.body);
        assert!(
            page_headers(page, &a).is_empty(),
            "{:?}",
            page_headers(page, &a)
        );
        assert!(!a.body.contains("Sign out"), "{page}");
    }
    assert!(browse(&w, "/", Via::Nothing)
        .await
        .body
        .contains("priya@acme.dev"));
    // There is nothing to sign in to: the login page sends the browser on.
    let a = browse(&w, "/login?next=/log", Via::Nothing).await;
    assert_eq!(
        (a.status, a.header(header::LOCATION)),
        (StatusCode::SEE_OTHER, "/log")
    );
    let (status, _) = call(&w, "GET", "/api/v1/services", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_logout_clears_it() {
    let w = world(Mode::Enforce);
    let read = token(&w, Some(Scope::Read));
    // The form: one password field, and the page asked for, escaped.
    let a = browse(&w, "/login?next=/services/api%22%3E", Via::Nothing).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.matches("<input").count(), 2, "{}", a.body);
    assert_eq!(a.body.matches("type=\"password\"").count(), 1, "{}", a.body);
    assert!(
        a.body.contains("value=\"/services/api&quot;&gt;\""),
        "{}",
        a.body
    );
    assert!(
        page_headers("GET /login", &a).is_empty(),
        "{:?}",
        page_headers("GET /login", &a)
    );

    let form = format!(
        "token={}&next={}",
        form_value(&read),
        form_value("/services/api")
    );
    let a = post_form(&w, "/login", &form, &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.header(header::LOCATION), "/services/api");
    assert!(
        page_headers("POST /login", &a).is_empty(),
        "{:?}",
        page_headers("POST /login", &a)
    );
    let cookie = a.header(header::SET_COOKIE).to_string();
    let mut parts: Vec<&str> = cookie.split(';').map(str::trim).collect();
    parts.sort();
    let value = format!("lineage_token={read}");
    let mut want = vec!["HttpOnly", "Path=/", "SameSite=Strict", value.as_str()];
    want.sort();
    assert_eq!(parts, want, "{cookie}");
    // The cookie it set opens the page asked for.
    let a = browse(&w, "/services/api", Via::Cookie(&read)).await;
    assert_eq!(a.status, StatusCode::OK);

    // Served over TLS, the cookie is also `Secure`.
    let tls = world_with(
        Mode::Enforce,
        DashboardConfig {
            public: false,
            secure_cookie: true,
        },
    );
    let tls_read = token(&tls, Some(Scope::Read));
    let a = post_form(
        &tls,
        "/login",
        &format!("token={}", form_value(&tls_read)),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header(header::LOCATION), "/");
    assert!(
        a.header(header::SET_COOKIE)
            .split(';')
            .any(|p| p.trim() == "Secure"),
        "{:?}",
        a.headers
    );
    let a = post_form(&w, "/login", &form, &[]).await;
    assert!(
        !a.header(header::SET_COOKIE).contains("Secure"),
        "{:?}",
        a.headers
    );

    // A bad token: the form again, 401, without what was typed.
    let typed = "lin_0123456789ab_typed-by-hand";
    let a = post_form(&w, "/login", &format!("token={typed}&next=/log"), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.body.contains("not valid") && a.body.contains("type=\"password\""),
        "{}",
        a.body
    );
    assert!(
        !a.body.contains(typed) && !a.body.contains("typed-by-hand"),
        "{}",
        a.body
    );
    assert!(a.header(header::SET_COOKIE).is_empty());
    assert!(page_headers("bad login", &a).is_empty());
    // A live token without `read`: refused, and no cookie.
    let build = token(&w, Some(Scope::BuildWrite));
    let a = post_form(&w, "/login", &format!("token={}", form_value(&build)), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("needs `read`"), "{}", a.body);
    assert!(!a.body.contains(&build));
    assert!(a.header(header::SET_COOKIE).is_empty());
    // A form that is too large, or not a form, is refused without quoting it.
    let huge = format!("token={}", "x".repeat(8 * 1024));
    let a = post_form(&w, "/login", &huge, &[]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!a.body.contains("xxxxxxxx"));
    assert!(page_headers("huge login", &a).is_empty());
    let req = Request::builder()
        .method("POST")
        .uri("/login")
        .header("Content-Type", "application/json")
        .body(Body::from(json!({ "token": read }).to_string()))
        .unwrap();
    let a = send(&w, req).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!a.body.contains(&read));
    assert!(a.header(header::SET_COOKIE).is_empty());
    // Another site's page may not post the form.
    let a = post_form(&w, "/login", &form, &[("Sec-Fetch-Site", "cross-site")]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.header(header::SET_COOKIE).is_empty());

    // Logout clears the cookie.
    let a = post_form(
        &w,
        "/logout",
        "",
        &[("Cookie", &format!("lineage_token={read}"))],
    )
    .await;
    assert_eq!(
        (a.status, a.header(header::LOCATION)),
        (StatusCode::SEE_OTHER, "/login")
    );
    let cleared = a.header(header::SET_COOKIE);
    assert!(cleared.starts_with("lineage_token=;"), "{cleared}");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/"),
        "{cleared}"
    );
    assert!(page_headers("logout", &a).is_empty());
}

#[tokio::test]
async fn login_redirects_only_to_local_paths() {
    let w = world(Mode::Enforce);
    let read = token(&w, Some(Scope::Read));
    for (next, want) in [
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil", "/"),
        ("/\\/evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("evil.example/", "/"),
        ("", "/"),
        (
            "/incident?q=python:3.12-slim",
            "/incident?q=python:3.12-slim",
        ),
    ] {
        let form = format!("token={}&next={}", form_value(&read), form_value(next));
        let a = post_form(&w, "/login", &form, &[]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{next:?}: {}", a.body);
        assert_eq!(a.header(header::LOCATION), want, "next = {next:?}");
        let a = browse(
            &w,
            &format!("/login?next={}", form_value(next)),
            Via::Nothing,
        )
        .await;
        assert!(
            a.body.contains(&format!(
                "name=\"next\" value=\"{}\"",
                want.replace('"', "&quot;")
            )),
            "{next:?}: {}",
            a.body
        );
    }
}

#[tokio::test]
async fn every_response_carries_its_security_headers() {
    let w = world(Mode::Enforce);
    let read = token(&w, Some(Scope::Read));
    let mut wrong = Vec::new();
    // Dashboard answers of every kind: pages, errors, a wrong method, login, redirects.
    let mut answers = vec![
        ("page", browse(&w, "/log", Via::Header(&read)).await),
        (
            "error page",
            browse(&w, "/services/nothing-here", Via::Header(&read)).await,
        ),
        (
            "bad service name",
            browse(&w, "/services/Bad%20Name", Via::Header(&read)).await,
        ),
        ("login", browse(&w, "/login", Via::Nothing).await),
        ("redirect", browse(&w, "/incident", Via::Nothing).await),
        (
            "forbidden",
            browse(&w, "/", Via::Header(&token(&w, Some(Scope::BuildWrite)))).await,
        ),
        (
            "bad login",
            post_form(&w, "/login", "token=nope", &[]).await,
        ),
        ("logout", post_form(&w, "/logout", "", &[]).await),
    ];
    let req = Request::builder()
        .method("POST")
        .uri("/")
        .header("Authorization", format!("Bearer {read}"))
        .body(Body::empty())
        .unwrap();
    answers.push(("wrong method", send(&w, req).await));
    for (what, a) in &answers {
        wrong.extend(page_headers(what, a));
    }
    assert!(
        answers[1].1.status.is_client_error(),
        "{}",
        answers[1].1.body
    );
    // JSON answers are not sniffed into HTML either.
    for (what, uri, token) in [
        ("API answer", "/api/v1/services", Some(read.as_str())),
        ("API refusal", "/api/v1/services", None),
        ("health", "/healthz", None),
        ("no such endpoint", "/api/v1/nothing", None),
    ] {
        let a = browse(&w, uri, token.map_or(Via::Nothing, Via::Header)).await;
        if a.header(header::X_CONTENT_TYPE_OPTIONS) != "nosniff" {
            wrong.push(format!("{what}: no `X-Content-Type-Options: nosniff`"));
        }
        if what == "no such endpoint" && !a.body.contains("no such endpoint") {
            wrong.push(format!("{what}: not the API's 404: {}", a.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// --- Issue 12: authenticated identity on every write ---------------------------------------

/// Makes a token in the world's ledger and lets the index see it.
fn new_token(w: &World, name: &str, scopes: &[&str], identity: Option<&str>) -> String {
    let now = Timestamp::parse(NOW).unwrap();
    let mut store = lineage_store::open(&w.state.cfg.store, false).unwrap();
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let created = auth::create(
        store.as_mut(),
        name,
        &scopes,
        identity.map(id).as_ref(),
        &id("ops@acme.dev"),
        now,
    )
    .unwrap();
    w.state.index.refresh(store.as_ref()).unwrap();
    created.secret
}

#[tokio::test]
async fn every_write_endpoint_checks_the_token_and_who_it_acts_as() {
    let w = world(Mode::Enforce);
    let d = format!("sha256:{}", "a".repeat(64));
    // (endpoint, scope it needs, body, whether the body can name another actor)
    let writes: Vec<(&str, &str, &str, Value, bool)> = vec![
        (
            "POST",
            "/api/v1/services",
            "admin",
            json!({ "name": "svc-x", "owner": "a@acme.dev" }),
            false,
        ),
        (
            "PATCH",
            "/api/v1/services/api",
            "admin",
            json!({ "backup_owner": "b@acme.dev" }),
            false,
        ),
        (
            "POST",
            "/api/v1/builds",
            "build:write",
            complete_build(&format!("sha256:{}", "8".repeat(64)), "4.0"),
            false,
        ),
        (
            "POST",
            "/api/v1/deploys",
            "deploy:write",
            json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "staging" }),
            true,
        ),
        (
            "POST",
            "/api/v1/approvals",
            "approve",
            json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "production" }),
            true,
        ),
    ];
    for (n, (method, path, scope, body, names_actor)) in writes.into_iter().enumerate() {
        let what = format!("{method} {path}");
        let (status, _) = call(&w, method, path, None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} without a token");
        let wrong = if scope == "build:write" {
            "deploy:write"
        } else {
            "build:write"
        };
        let wrong_token = new_token(&w, &format!("wrong-{n}"), &[wrong], None);
        let (status, v) = call(&w, method, path, Some(&wrong_token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what} with `{wrong}`: {v}");
        let right = new_token(&w, &format!("right-{n}"), &[scope], None);
        if names_actor {
            // The right scope, claiming to act for someone else: refused, nothing written.
            let before = lineage_store::open(&w.state.cfg.store, false)
                .unwrap()
                .len()
                .unwrap();
            let mut other = body.clone();
            other["by"] = json!("jonas@acme.dev");
            let (status, v) = call(&w, method, path, Some(&right), Some(other.clone())).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{what} acting for another: {v}"
            );
            assert!(
                v["error"]["hint"].as_str().unwrap().contains("act-as"),
                "{v}"
            );
            let after = lineage_store::open(&w.state.cfg.store, false)
                .unwrap()
                .len()
                .unwrap();
            assert_eq!(before, after, "{what}: a refused write wrote");
            // A token that may act for others records the named actor, and who wrote it.
            let bot = new_token(&w, &format!("bot-{n}"), &[scope, "act-as"], None);
            let (status, v) = call(&w, method, path, Some(&bot), Some(other)).await;
            assert_eq!(status, StatusCode::CREATED, "{what} with act-as: {v}");
            let store = lineage_store::open(&w.state.cfg.store, false).unwrap();
            let index = v["index"].as_u64().unwrap();
            let entry = store.entries(index, index + 1).unwrap().pop().unwrap();
            let actor = match &entry.record {
                Record::Deploy(d) => d.by.to_string(),
                Record::Approval(a) => a.by.to_string(),
                other => panic!("{what} wrote a {}", other.kind()),
            };
            assert_eq!(actor, "jonas@acme.dev", "{what}");
            let by = entry.recorded_by.map(|i| i.to_string()).unwrap_or_default();
            assert!(by.starts_with("sa:token-bot-"), "{what}: recorded by {by}");
        }
        // Without a name, the actor is the token's own identity.
        let (status, v) = call(&w, method, path, Some(&right), Some(body.clone())).await;
        assert!(status.is_success(), "{what} with `{scope}`: {status} {v}");
    }
    // A token made for a person acts as that person, and may name them.
    let jonas = new_token(&w, "jonas", &["approve"], Some("jonas@acme.dev"));
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/approvals",
        Some(&jonas),
        Some(json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "staging", "by": "jonas@acme.dev" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["by"], "jonas@acme.dev");
}

#[tokio::test]
async fn a_write_the_gate_refuses_is_422_with_the_report_and_writes_nothing() {
    let w = world(Mode::Enforce);
    let writer = new_token(
        &w,
        "writer",
        &["build:write", "deploy:write", "act-as"],
        None,
    );
    let before = lineage_store::open(&w.state.cfg.store, false)
        .unwrap()
        .len()
        .unwrap();
    // A production deploy with no approval: D003, as `deploy check` says.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys",
        Some(&writer),
        Some(json!({ "image": format!("ghcr.io/acme/api@{}", digest('a')), "env": "production", "by": "jonas@acme.dev" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        (v["schema"].clone(), v["gate"].clone(), v["passed"].clone()),
        (json!(1), json!("deploy"), json!(false))
    );
    assert_eq!(v["diagnostics"][0]["code"], "D003", "{v}");
    // A build with five gate errors.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/builds",
        Some(&writer),
        Some(
            json!({ "image": "ghcr.io/acme/api", "digest": format!("sha256:{}", "9".repeat(64)) }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["counts"]["errors"], 5, "{v}");
    // A deploy dated next year, or before its build finished: bad input, 422 with a hint.
    for at in ["2027-06-01T00:00:00Z", "2026-01-01T00:00:00Z"] {
        let (status, v) = call(
            &w,
            "POST",
            "/api/v1/deploys",
            Some(&writer),
            Some(json!({ "image": format!("ghcr.io/acme/api@{}", digest('a')), "env": "staging", "at": at })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{at}: {v}");
        assert!(v["error"]["hint"].is_string(), "{v}");
    }
    let after = lineage_store::open(&w.state.cfg.store, false)
        .unwrap()
        .len()
        .unwrap();
    assert_eq!(before, after, "a refused write wrote");
}

#[tokio::test]
async fn admission_allows_listed_third_party_images_and_its_annotations_are_valid_keys() {
    let mut w = world(Mode::Enforce);
    let nginx = format!("docker.io/library/nginx@sha256:{}", "c".repeat(64));
    let r = admit(
        &w,
        review("Pod", "prod", pod_spec(&[("containers", "web", &nginx)])),
    )
    .await;
    check(
        &r,
        false,
        &["D001", "D006"],
        "an unlisted third-party image",
    );
    for key in r["auditAnnotations"].as_object().unwrap().keys() {
        assert!(lineage_server::admission::audit_key_ok(key), "`{key}`");
    }
    // `[admission] allow` names it: admitted, and the answer says which pattern did it.
    let cfg = &w.state.cfg;
    let admission = AdmissionConfig::from_toml(
        "[admission]\nnamespaces = { prod = \"production\" }\nallow = [\"nginx@*\"]\n",
        "lineage.toml",
        &cfg.gate.config,
    )
    .unwrap();
    let state = lineage_server::state(ServerConfig {
        store: cfg.store.clone(),
        gate: cfg.gate.clone(),
        admission,
        log: None,
        body_limit: cfg.body_limit,
        request_timeout: cfg.request_timeout,
        poll_interval: cfg.poll_interval,
        clock: cfg.clock.clone(),
        dashboard: Default::default(),
    })
    .unwrap();
    let store = lineage_store::open(&state.cfg.store, false).unwrap();
    state
        .index
        .load(store.as_ref(), Timestamp::parse(NOW).unwrap())
        .unwrap();
    w.state = state;
    let r = admit(
        &w,
        review("Pod", "prod", pod_spec(&[("containers", "web", &nginx)])),
    )
    .await;
    check(&r, true, &[], "a listed third-party image");
    assert!(
        r["status"]["message"].as_str().unwrap().contains("nginx@*"),
        "{r}"
    );
    for key in r["auditAnnotations"].as_object().unwrap().keys() {
        assert!(lineage_server::admission::audit_key_ok(key), "`{key}`");
    }
    // A pattern never admits an image of a repository a service owns, nor an unpinned one.
    let r = admit(
        &w,
        review(
            "Pod",
            "prod",
            pod_spec(&[("containers", "web", "nginx:1.27")]),
        ),
    )
    .await;
    check(&r, false, &["D005"], "unpinned");
    assert!(!lineage_server::admission::audit_key_ok(
        "lineage.dev/reason"
    ));
    assert!(lineage_server::admission::audit_key_ok("reason"));
}

/// Issue 13, item 21: what the API serves as a proof, `lineage log verify-proof` reads.
#[tokio::test]
async fn proof_bundles_from_the_api_carry_their_kind() {
    use lineage_store::lineage_log::proof::ProofBundle;
    let w = world(Mode::Enforce);
    let read = w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::Read))
        .unwrap()
        .1
        .clone();
    // Seal a checkpoint over the world's records first, as any write does.
    let store = lineage_store::open(&w.state.cfg.store, false).unwrap();
    let size = store.len().unwrap();
    drop(store);
    let (_, _) = call(
        &w,
        "POST",
        "/api/v1/services",
        Some(
            &w.tokens
                .iter()
                .find(|(s, _)| *s == Some(Scope::Admin))
                .unwrap()
                .1,
        ),
        Some(json!({ "name": "sealer", "owner": "a@acme.dev" })),
    )
    .await;
    let (status, v) = call(&w, "GET", "/api/v1/log/proof/0", Some(&read), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "inclusion", "{v}");
    assert!(ProofBundle::from_json(&v.to_string()).is_ok(), "{v}");
    let (status, v) = call(
        &w,
        "GET",
        &format!("/api/v1/log/consistency?old=1&new={}", size + 1),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "consistency", "{v}");
    assert!(ProofBundle::from_json(&v.to_string()).is_ok(), "{v}");
}

// ---------------------------------------------------------------------------------------------
// Runtime truth (issue 17).
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deploy_end_over_the_api_acts_as_the_token() {
    let w = world(Mode::Enforce);
    let deployer = new_token(&w, "ender", &["deploy:write"], Some("sre@acme.dev"));
    let body =
        json!({ "service": "api", "env": "production", "reason": "moved to the new cluster" });
    // Naming someone else needs `act-as`.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys/end",
        Some(&deployer),
        Some(json!({ "service": "api", "env": "production", "by": "maya@acme.dev" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys/end",
        Some(&deployer),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["by"], "sre@acme.dev");
    assert_eq!(v["digest"], digest('a').to_string());
    assert_eq!(v["reason"], "moved to the new cluster");
    let reader = token(&w, Some(Scope::Read));
    let (_, running) = call(&w, "GET", "/api/v1/running", Some(&reader), None).await;
    assert!(running["rows"].as_array().unwrap().is_empty(), "{running}");
    // Nothing left to end.
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys/end",
        Some(&deployer),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["found"], false);
}

/// An older build than the one running, in production, with `[rules.production] D013 =
/// "error"`: admission denies it, the API refuses it, and a recorded rollback lets both pass.
#[tokio::test]
async fn an_older_digest_than_the_running_one_is_denied_until_its_rollback_is_recorded() {
    let w = world_full(
        Mode::Enforce,
        DashboardConfig::default(),
        "[gates]\napproval = \"off\"\n[rules.production]\nD013 = \"error\"\n",
    );
    let now = Timestamp::parse(NOW).unwrap();
    let old = digest('d');
    let rewritten = old.clone();
    w.state
        .write(move |_, store| {
            let mut b = match store.build(&digest('a')).unwrap() {
                Some(b) => b,
                None => unreachable!(),
            };
            b.digest = rewritten;
            b.finished_at = Some(now.plus(time::Duration::days(-10)));
            Ok(record::build(store, b, now, None)?)
        })
        .unwrap();
    let image = format!("ghcr.io/acme/api@{old}");
    let pod = review("Pod", "prod", pod_spec(&[("containers", "app", &image)]));
    let r = admit(&w, pod.clone()).await;
    check(&r, false, &["D013 older-than-running"], "older digest");
    let deployer = new_token(&w, "rollbacker", &["deploy:write"], Some("jonas@acme.dev"));
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys",
        Some(&deployer),
        Some(json!({ "image": image, "env": "production" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("D013"), "{v}");
    let (status, v) = call(
        &w,
        "POST",
        "/api/v1/deploys",
        Some(&deployer),
        Some(json!({ "image": image, "env": "production", "rollback": true })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let r = admit(&w, pod).await;
    check(&r, true, &[], "recorded rollback");
    // The newer digest is now "newer than running", never denied by D013.
    let newer = review(
        "Pod",
        "prod",
        pod_spec(&[(
            "containers",
            "app",
            &format!("ghcr.io/acme/api@{}", digest('a')),
        )]),
    );
    let r = admit(&w, newer).await;
    assert!(!r.to_string().contains("D013"), "{r}");
}

#[tokio::test]
async fn admission_records_what_it_admitted_off_the_answer_path() {
    let w = world_full(
        Mode::Enforce,
        DashboardConfig::default(),
        "observe = true\n",
    );
    let image = format!("ghcr.io/acme/api@{}", digest('a'));
    let mut pod = review("Pod", "prod", pod_spec(&[("containers", "app", &image)]));
    pod["request"]["object"]["metadata"]["ownerReferences"] =
        json!([{ "kind": "ReplicaSet", "name": "api-7d9f8c6b5", "controller": true }]);
    let r = admit(&w, pod).await;
    check(&r, true, &[], "running digest");
    // Denied and ungoverned pods are not observations.
    admit(
        &w,
        review(
            "Pod",
            "prod",
            pod_spec(&[("containers", "app", "ghcr.io/acme/api:1.0")]),
        ),
    )
    .await;
    admit(
        &w,
        review("Pod", "other", pod_spec(&[("containers", "app", &image)])),
    )
    .await;
    // Nothing is written until the flusher runs.
    let store = lineage_store::open(&w.state.cfg.store, false).unwrap();
    assert!(store.observation_sources().unwrap().is_empty());
    lineage_server::flush_admitted(w.state.clone()).await;
    let sources = store.observation_sources().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (sources[0].source.as_str(), sources[0].complete),
        ("admission", false)
    );
    let rows = store.observed(None, None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].workload.as_deref(),
        Some("ReplicaSet/api-7d9f8c6b5")
    );
    // Queries and the dashboard show it.
    let reader = token(&w, Some(Scope::Read));
    let (_, running) = call(
        &w,
        "GET",
        "/api/v1/running?observed_only=true",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(
        running["rows"][0]["observed"]["status"], "observed",
        "{running}"
    );
    assert_eq!(running["rows"][0]["observed"]["sources"][0], "admission");
    let page = browse(&w, "/", Via::Header(&reader)).await;
    assert!(page.body.contains("observed just now"), "{}", page.body);
    assert!(
        page.body.contains("Drift: recorded vs. running"),
        "{}",
        page.body
    );
    let page = browse(&w, "/services/api", Via::Header(&reader)).await;
    assert!(
        page.body.contains("Runs now") && page.body.contains("observed just now"),
        "{}",
        page.body
    );
    // An empty buffer writes nothing.
    let before = store.len().unwrap();
    lineage_server::flush_admitted(w.state.clone()).await;
    assert_eq!(store.len().unwrap(), before);
}

#[tokio::test]
async fn drift_over_the_api_and_on_the_dashboard() {
    let w = world(Mode::Enforce);
    let now = Timestamp::parse(NOW).unwrap();
    // A cluster that runs the orphan's digest and not api's.
    w.state
        .write(move |_, store| {
            let batch = lineage_model::ObservationBatch {
                source: "prod-eu-1".into(),
                format: "kubernetes".into(),
                complete: true,
                envs: vec![EnvName::parse("production").unwrap()],
                items: vec![lineage_model::Observed {
                    env: EnvName::parse("production").unwrap(),
                    image: Repository::parse("ghcr.io/acme/orphan").unwrap(),
                    digest: digest('f'),
                    namespace: Some("prod".into()),
                    workload: Some("Deployment/orphan".into()),
                    container: Some("app".into()),
                    container_kind: None,
                    host: None,
                    seen_at: now,
                }],
                unmapped_namespaces: Vec::new(),
                by: id("sa:inventory"),
                at: now,
            };
            Ok(store.append(&[Record::Observation(batch)], now, None)?)
        })
        .unwrap();
    let reader = token(&w, Some(Scope::Read));
    let (status, v) = call(
        &w,
        "GET",
        "/api/v1/drift?fail_on=recorded-not-observed",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["recorded-not-observed", "observed-not-recorded"],
        "{v}"
    );
    assert_eq!(v["failed"], true);
    let (status, v) = call(
        &w,
        "GET",
        "/api/v1/drift?fail_on=nonsense",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("recorded-not-observed"),
        "{v}"
    );
    let page = browse(&w, "/", Via::Header(&reader)).await;
    assert!(
        page.body.contains("recorded-not-observed") && page.body.contains("never observed"),
        "{}",
        page.body
    );
    let page = browse(&w, "/services/orphan", Via::Header(&reader)).await;
    assert!(page.body.contains("observed-not-recorded"), "{}", page.body);
    assert!(
        !page.body.contains("recorded-not-observed"),
        "{}",
        page.body
    );
}

/// An SBOM/scan import of `d` with one package in one layer and optional findings.
fn sbom_import(
    d: Digest,
    kind: &str,
    purl: &str,
    layer: &str,
    findings: &[&str],
) -> lineage_model::SbomImport {
    let layer = Digest::parse(&format!("sha256:{}", layer.repeat(64))).unwrap();
    lineage_model::SbomImport {
        image: Repository::parse("ghcr.io/acme/api").unwrap(),
        digest: d,
        kind: kind.into(),
        format: "trivy".into(),
        document: digest('9'),
        size: 100,
        tool: None,
        created: Some(Timestamp::parse("2026-11-19T12:00:00Z").unwrap()),
        origin: Some("file".into()),
        layers: vec![lineage_model::SbomLayer {
            digest: None,
            diff_id: Some(layer),
        }],
        packages: vec![lineage_model::SbomPackage {
            purl: lineage_model::Purl::parse(purl).unwrap(),
            layer: Some(0),
        }],
        findings: findings
            .iter()
            .map(|id| lineage_model::SbomFinding {
                id: id.to_string(),
                aliases: vec![],
                package: 0,
                severity: "critical".into(),
                fixed: Some("3.0.15-1".into()),
            })
            .collect(),
        by: id("sec@acme.dev"),
        at: Timestamp::parse(NOW).unwrap(),
    }
}

#[tokio::test]
async fn package_and_cve_queries_answer_over_the_api_and_the_dashboard() {
    let w = world(Mode::Enforce);
    {
        let mut store = lineage_store::open(&w.state.cfg.store, false).unwrap();
        let now = Timestamp::parse(NOW).unwrap();
        // The base's own scan names layer 1; the app's scan finds openssl in that layer.
        store
            .append(
                &[
                    Record::Sbom(sbom_import(
                        digest('b'),
                        "scan",
                        "pkg:deb/debian/openssl@3.0.11-1",
                        "1",
                        &[],
                    )),
                    Record::Sbom(sbom_import(
                        digest('a'),
                        "scan",
                        "pkg:deb/debian/openssl@3.0.11-1",
                        "1",
                        &["CVE-2026-0001"],
                    )),
                ],
                now,
                None,
            )
            .unwrap();
    }
    let read = token(&w, Some(Scope::Read));
    let (status, r) = call(
        &w,
        "GET",
        "/api/v1/affected?cve=cve-2026-0001",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["services"][0]["service"], "api");
    let pkg = &r["services"][0]["running"][0]["packages"][0];
    assert_eq!(pkg["origin"], "base", "{pkg}");
    assert_eq!(pkg["fixed"], "3.0.15-1");
    let (status, r) = call(
        &w,
        "GET",
        "/api/v1/affected?package=openssl%40%3C3.0.15",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["query"]["version"], "<3.0.15");
    assert_eq!(r["services"][0]["running"][0]["env"], "production");
    for bad in [
        "/api/v1/affected",
        "/api/v1/affected?base=python&cve=CVE-2026-0001",
    ] {
        let (status, r) = call(&w, "GET", bad, Some(&read), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {r}");
    }
    // A value that does not parse is refused like every other parse error (422).
    let (status, r) = call(&w, "GET", "/api/v1/affected?cve=no%20id", Some(&read), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("`no id`"),
        "{r}"
    );
    let (status, v) = call(
        &w,
        "GET",
        "/api/v1/vulns?env=production&severity=critical",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["owners"][0]["owner"], "priya@acme.dev");
    assert_eq!(
        v["owners"][0]["images"][0]["base_findings"][0]["id"],
        "CVE-2026-0001"
    );
    assert_eq!(
        call(&w, "GET", "/api/v1/vulns", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The dashboard's incident search takes a CVE id, a package and a purl.
    for q in ["CVE-2026-0001", "openssl", "pkg%3Adeb%2Fdebian%2Fopenssl"] {
        let page = browse(&w, &format!("/incident?q={q}"), Via::Header(&read)).await;
        assert_eq!(page.status, StatusCode::OK, "{q}");
        assert!(page.body.contains("1 services run"), "{q}: {}", page.body);
        assert!(page.body.contains("href=\"/services/api\""), "{q}");
        assert!(page.body.contains("rebuild on a newer base"), "{q}");
    }
    // A base name still answers as before.
    let page = browse(&w, "/incident?q=python:3.12-slim", Via::Header(&read)).await;
    assert!(page.body.contains("services built on"), "{}", page.body);
}

/// Sends `bytes` as the body of `method uri` and returns the status and whether the answer
/// is JSON.
async fn call_bytes(
    w: &World,
    method: &str,
    uri: &str,
    token: Option<&str>,
    bytes: Vec<u8>,
) -> (StatusCode, bool) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let response = lineage_server::router(w.state.clone())
        .oneshot(req.body(Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice::<Value>(&bytes).is_ok())
}

/// Property-based fuzzing of every body the server parses: AdmissionReviews and the API's
/// write bodies, each mutated from a valid one (cuts, structural and control characters,
/// repeats). Every answer is a JSON document with a 2xx or 4xx status, never a 5xx and never
/// a panic; admission always answers 200 with an AdmissionReview. `PROPTEST_CASES` makes a
/// run longer.
#[test]
fn mutated_bodies_are_answered_never_failed() {
    use proptest::prelude::*;
    let w = world(Mode::Enforce);
    let admin = w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::Admin))
        .unwrap()
        .1
        .clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = format!("sha256:{}", "a".repeat(64));
    let seeds: Vec<(&str, &str, String)> = vec![
        (
            "POST",
            "/admission",
            review("Deployment", "prod", pod_spec(&[("api", &format!("ghcr.io/acme/api@{d}"), "")]))
                .to_string(),
        ),
        (
            "POST",
            "/api/v1/builds",
            json!({ "image": "ghcr.io/acme/api", "digest": d, "git_ref": "main", "ci": { "system": "github-actions" } })
                .to_string(),
        ),
        (
            "POST",
            "/api/v1/deploys",
            json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "staging", "config": [{ "path": "k8s.yaml", "sha256": "b".repeat(64) }] })
                .to_string(),
        ),
        (
            "POST",
            "/api/v1/services",
            json!({ "name": "svc", "owner": "a@acme.dev", "images": ["ghcr.io/acme/svc"] }).to_string(),
        ),
        (
            "POST",
            "/api/v1/outcomes",
            json!({ "service": "api", "env": "production", "status": "healthy", "detail": "ok" })
                .to_string(),
        ),
        (
            "POST",
            "/api/v1/approvals",
            json!({ "image": format!("ghcr.io/acme/api@{d}"), "env": "production" }).to_string(),
        ),
    ];
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    for (method, uri, seed) in seeds {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&lineage_testkit::fuzz::mutated(seed), |body| {
                let token = (uri != "/admission").then_some(admin.as_str());
                let (status, json) = rt.block_on(call_bytes(
                    &w,
                    method,
                    uri,
                    token,
                    body.clone().into_bytes(),
                ));
                prop_assert!(
                    status.is_success() || status.is_client_error(),
                    "{method} {uri} answered {status} to {body:?}"
                );
                prop_assert!(
                    json,
                    "{method} {uri} answered {status} without JSON to {body:?}"
                );
                if uri == "/admission" {
                    prop_assert!(
                        status == StatusCode::OK || status.is_client_error(),
                        "{status}"
                    );
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    }
}

/// Issue 21 (risk first): the fleet page says what needs attention, in words, and the service
/// with production findings comes before one with findings elsewhere, before one with none.
#[tokio::test]
async fn the_fleet_page_puts_what_needs_attention_first() {
    let w = world(Mode::Enforce);
    let now = Timestamp::parse(NOW).unwrap();
    {
        let location = StoreLocation::Sqlite(w._dir.path().join("l.db"));
        let mut store = lineage_store::open(&location, false).unwrap();
        let deploy =
            |service: &str, image: &str, d: char, env: &str, approver: Option<&str>| DeployRecord {
                config: Vec::new(),
                service: ServiceName::parse(service).unwrap(),
                image: Repository::parse(image).unwrap(),
                digest: digest(d),
                env: EnvName::parse(env).unwrap(),
                by: id("ana@acme.dev"),
                approved_by: approver.map(id),
                ticket: None,
                at: now,
                rollback: false,
            };
        // orphan: in production without approval; api: its retired build runs in staging.
        for d in [
            deploy("orphan", "ghcr.io/acme/orphan", 'f', "production", None),
            deploy(
                "api",
                "ghcr.io/acme/api",
                'e',
                "staging",
                Some("maya@acme.dev"),
            ),
        ] {
            record::deploy(store.as_mut(), d, now, None).unwrap();
        }
    }
    let viewer = w
        .tokens
        .iter()
        .find(|(s, _)| *s == Some(Scope::Read))
        .unwrap()
        .1
        .clone();
    let page = browse(&w, "/", Via::Header(&viewer)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("Needs attention"), "{body}");
    assert!(
        body.contains("production: deployed without approval"),
        "{body}"
    );
    assert!(body.contains("staging: retired digest running"), "{body}");
    let at = |name: &str| body.find(&format!("href=\"/services/{name}\"")).unwrap();
    assert!(
        at("orphan") < at("api"),
        "production findings come first:\n{body}"
    );
}

/// Group commit (issue 22): writes that queue while another is being written share one
/// transaction and one signed checkpoint; each caller is answered only once its group is
/// durable (another connection sees the write when the call returns), and a refused write
/// leaves the rest of its group.
#[test]
fn writes_that_queue_share_one_commit() {
    let w = world(Mode::Enforce);
    let reader = || lineage_store::open(&w.state.cfg.store, false).unwrap();
    let (len_before, checkpoints_before) = {
        let r = reader();
        (r.len().unwrap(), r.checkpoints().unwrap().len())
    };
    let now = Timestamp::parse(NOW).unwrap();
    let seen = move |i: u8| {
        Record::Base(lineage_model::BaseSeen {
            name: Repository::parse("python").unwrap(),
            tag: Some(Tag::parse("3.12").unwrap()),
            digest: Digest::parse(&format!("sha256:{:064x}", i)).unwrap(),
            layers: Vec::new(),
            created: None,
            seen_at: now,
        })
    };
    let (entered, wait_entered) = std::sync::mpsc::channel::<()>();
    let (release, wait_release) = std::sync::mpsc::channel::<()>();
    let results: Vec<Result<u64, String>> = std::thread::scope(|scope| {
        let state = &w.state;
        // The first write holds the writer until released, so the next ones queue.
        let first = scope.spawn(move || {
            state.write(move |_, store| {
                entered.send(()).unwrap();
                wait_release.recv().unwrap();
                Ok(store.record_facts(&[seen(0)], now, None)?[0])
            })
        });
        wait_entered.recv().unwrap();
        let others: Vec<_> = (1..=10u8)
            .map(|i| {
                scope.spawn(move || {
                    let out = state.write(move |_, store| {
                        let index = store.record_facts(&[seen(i)], now, None)?[0];
                        // A request that fails or panics after writing leaves nothing.
                        if i == 4 {
                            return Err(lineage_server::ApiError::internal("refused"));
                        }
                        if i == 7 {
                            panic!("a write that panics after writing");
                        }
                        Ok(index)
                    });
                    // Answered only after the commit: a new connection sees it now.
                    if let Ok(index) = &out {
                        let r = lineage_store::open(&state.cfg.store, false).unwrap();
                        assert!(
                            r.len().unwrap() > *index,
                            "write {i} answered before it was durable"
                        );
                    }
                    out
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while state.queued_writes() < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writes never queued"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        std::iter::once(first)
            .chain(others)
            .map(|t| t.join().unwrap().map_err(|e| e.message))
            .collect()
    });
    assert!(results[0].is_ok(), "{results:?}");
    for (i, r) in results.iter().enumerate().skip(1) {
        assert_eq!(r.is_err(), i == 4 || i == 7, "write {i}: {r:?}");
    }
    let r = reader();
    // Nine writes kept, in two groups: two commits, two checkpoints, the last covering them.
    assert_eq!(r.len().unwrap(), len_before + 9);
    let checkpoints = r.checkpoints().unwrap();
    assert_eq!(checkpoints.len(), checkpoints_before + 2, "{checkpoints:?}");
    assert_eq!(checkpoints.last().unwrap().size, len_before + 9);
    let digests: Vec<Digest> = r
        .facts("base", None)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) => Some(b.digest),
            _ => None,
        })
        .collect();
    for i in [4u8, 7] {
        let left = Digest::parse(&format!("sha256:{:064x}", i)).unwrap();
        assert!(!digests.contains(&left), "the failed write {i} was kept");
    }
    assert!(r.check_projections(10).unwrap().is_empty());
    let metrics = w.state.metrics.render(&[]);
    assert!(
        metrics.contains("lineage_grouped_writes_total 11"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lineage_write_groups_total 2"),
        "{metrics}"
    );
}

/// Text meant to break a page: markup, an attribute break-out, a terminal escape, a bidi
/// override and a line break.
const HOSTILE: &str =
    "<script>alert(1)</script>\"><img src=x onerror=alert(2)>\u{1b}[2J\u{202e}\r\nend";

/// Every element the dashboard writes: anything else on a page came from data.
const ELEMENTS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "style", "body", "header", "b", "nav", "a",
    "form", "button", "main", "h1", "h2", "p", "span", "code", "br", "table", "thead", "tbody",
    "tr", "th", "td", "ul", "li", "div", "select", "option", "label", "input", "pre", "svg",
    "defs", "marker", "path", "rect", "text", "line", "g", "circle",
];

/// Each tag of a page: its element name and its attribute names. Escaped values hold no `<`,
/// `>` or `"`, so a tag ends at the first `>`, and quoted values can be dropped.
fn tags(page: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let body = page.split("</style>").nth(1).unwrap_or(page);
    for part in body.split('<').skip(1) {
        let tag = part.split('>').next().unwrap_or("");
        if tag.starts_with('/') {
            continue;
        }
        let mut unquoted = String::new();
        for (i, piece) in tag.split('"').enumerate() {
            if i % 2 == 0 {
                unquoted.push_str(piece);
                unquoted.push(' ');
            }
        }
        let mut words = unquoted.split_whitespace();
        let name = words.next().unwrap_or("").to_lowercase();
        let attrs = words
            .map(|w| w.trim_end_matches('=').trim_end_matches('/').to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        out.push((name, attrs));
    }
    out
}

/// Issue 21: hostile text reached the ledger in every free-text field a page shows (the way
/// an older record or a direct store write could carry it) and a `javascript:` CI link; every
/// page escapes all of it by construction: no element, attribute or link comes from a record,
/// and no control or bidi character reaches the page.
#[tokio::test]
async fn hostile_text_in_every_field_never_becomes_markup() {
    let w = world_seeded(
        Mode::Enforce,
        DashboardConfig::default(),
        "",
        Default::default(),
        |s, now| {
            let hostile = |d: char, url: &str| BuildRecord {
                service: ServiceName::parse("api").unwrap(),
                image: Repository::parse("ghcr.io/acme/api").unwrap(),
                digest: digest(d),
                tags: vec![Tag::parse("2.0").unwrap()],
                bases: vec![BaseImage {
                    name: Repository::parse("python").unwrap(),
                    tag: Some(Tag::parse("3.12-slim").unwrap()),
                    digest: Some(digest('b')),
                    pulled_at: Some(now),
                    final_stage: true,
                }],
                source_repo: None,
                git_ref: Some(HOSTILE.into()),
                commit: Some(CommitId::parse(&"d".repeat(40)).unwrap()),
                started_at: None,
                finished_at: Some(now),
                ci: Some(lineage_model::CiRun {
                    system: HOSTILE.into(),
                    job: Some(HOSTILE.into()),
                    run_id: Some(HOSTILE.into()),
                    url: Some(url.into()),
                }),
                builder: None,
                platform: Some(HOSTILE.into()),
                dockerfile: Some(lineage_model::DockerfileRef {
                    path: HOSTILE.into(),
                    sha256: None,
                }),
            };
            record::build(s, hostile('d', "javascript:alert(3)"), now, None).unwrap();
            record::build(
                s,
                hostile('9', "https://ci.acme.dev/\"><script>"),
                now,
                None,
            )
            .unwrap();
            let deploy = DeployRecord {
                config: Vec::new(),
                service: ServiceName::parse("api").unwrap(),
                image: Repository::parse("ghcr.io/acme/api").unwrap(),
                digest: digest('d'),
                env: EnvName::parse("staging").unwrap(),
                by: id("jonas@acme.dev"),
                approved_by: None,
                ticket: Some(HOSTILE.into()),
                at: now,
                rollback: false,
            };
            record::deploy(s, deploy, now, None).unwrap();
            s.record_facts(
                &[
                    Record::Retire(Retirement {
                        digest: digest('d'),
                        reason: HOSTILE.into(),
                        by: id("sec@acme.dev"),
                        at: now,
                    }),
                    Record::Outcome(lineage_model::DeployOutcome {
                        service: ServiceName::parse("api").unwrap(),
                        env: EnvName::parse("staging").unwrap(),
                        digest: digest('d'),
                        status: lineage_model::OutcomeStatus::Degraded,
                        detail: Some(HOSTILE.into()),
                        by: id("sre@acme.dev"),
                        at: now,
                    }),
                    Record::IncidentOpened(lineage_model::IncidentOpened {
                        title: HOSTILE.into(),
                        query: lineage_model::IncidentQuery {
                            kind: "base".into(),
                            value: digest('b').to_string(),
                        },
                        drill: true,
                        affected: vec![lineage_model::IncidentTarget {
                            service: ServiceName::parse("api").unwrap(),
                            env: EnvName::parse("staging").unwrap(),
                            digest: digest('d'),
                            since: now,
                        }],
                        by: id("sec@acme.dev"),
                        at: now,
                    }),
                ],
                now,
                None,
            )
            .unwrap();
        },
    );
    let reader = token(&w, Some(Scope::Read));
    let asked = form_value(HOSTILE);
    let pages = [
        "/".to_string(),
        format!("/?owner={asked}&service={asked}"),
        "/?risk=%3Cscript%3E".to_string(),
        "/services/api".to_string(),
        format!("/digests/{}", digest('d')),
        format!("/digests/{}", digest('9')),
        format!("/incident?q={asked}"),
        format!("/incident?q={}", digest('b')),
        "/incidents".to_string(),
        "/incidents/1".to_string(),
        "/log".to_string(),
        format!("/services/{asked}"),
        format!("/digests/{asked}"),
        format!("/incidents/{asked}"),
    ];
    let mut shown = 0;
    for uri in &pages {
        let a = browse(&w, uri, Via::Header(&reader)).await;
        let body = &a.body;
        let lower = body.to_lowercase();
        assert!(
            !lower.contains("<script"),
            "{uri}: a script element\n{body}"
        );
        for (name, attrs) in tags(body) {
            assert!(
                ELEMENTS.contains(&name.as_str()),
                "{uri}: a <{name}> element\n{body}"
            );
            for a in attrs {
                assert!(
                    !a.starts_with("on") && a != "style",
                    "{uri}: <{name} {a}=…>\n{body}"
                );
            }
        }
        for (i, _) in lower.match_indices("href=\"") {
            let target = &lower[i + 6..];
            assert!(
                target.starts_with('/')
                    || target.starts_with("https://")
                    || target.starts_with("http://"),
                "{uri}: a link that is not a page or http(s): {}",
                &body[i..(i + 60).min(body.len())]
            );
        }
        assert!(
            !body
                .chars()
                .any(|c| lineage_model::is_unsafe_char(c) && c != '\n' && c != '\t'),
            "{uri}: a control or bidi character reached the page"
        );
        if body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") {
            shown += 1;
        }
    }
    // The hostile text was on the pages (escaped), so the pages did render those fields.
    assert!(shown >= 6, "hostile text shown on only {shown} pages");
    let service = browse(&w, "/services/api", Via::Header(&reader)).await.body;
    assert!(service.contains("RETIRED (&lt;script&gt;"), "{service}");
    // A control character is shown as its escape, as a terminal shows it.
    assert!(service.contains("\\u{1b}[2J\\u{202e}"), "{service}");
    assert!(!service.contains("href=\"javascript"), "{service}");
    let incident = browse(&w, "/incidents/1", Via::Header(&reader)).await.body;
    assert!(
        incident.contains("<svg"),
        "the incident timeline is drawn\n{incident}"
    );
}

/// The service of each fleet row and the risk kinds it is marked with, in page order.
fn fleet_marks(page: &str) -> Vec<(String, String, Vec<String>)> {
    let table = page
        .split("<table class=\"cards fleet\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{page}"));
    let body = table.split("</table>").next().unwrap();
    body.split("<tr class=\"")
        .skip(1)
        .map(|row| {
            let class = row.split('"').next().unwrap().to_string();
            let service = row
                .split("data-service=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string();
            let mut risks: Vec<String> = row
                .split(" data-risk=\"")
                .skip(1)
                .map(|x| x.split('"').next().unwrap().to_string())
                .collect();
            risks.sort();
            risks.dedup();
            (service, class, risks)
        })
        .collect()
}

/// Issue 21 (risk first): one service per kind of risk a deploy record, a check, a retirement,
/// an outcome, an observation or a signature can carry; the fleet page marks each row with
/// its kinds, in words, counts the rows of each kind at the top, puts production risks first,
/// and leaves the one clean, signed service unmarked.
#[tokio::test]
async fn the_fleet_marks_every_kind_of_risk() {
    let trusted = lineage_attest::keys::PrivateKey::generate(Default::default()).unwrap();
    let stranger = lineage_attest::keys::PrivateKey::generate(Default::default()).unwrap();
    let pem = trusted.public_key().to_pem();
    let trust = lineage_attest::trust::TrustConfig::from_toml_str(
        "[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"ci.pub\"\nroles = [\"builder\"]\n",
    )
    .unwrap()
    .resolve(|_| Ok::<_, String>(pem.clone()))
    .unwrap();
    let w = world_seeded(
        Mode::Enforce,
        DashboardConfig::default(),
        "",
        trust,
        |s, now| {
            let name = |n: &str| ServiceName::parse(n).unwrap();
            let image = |n: &str| Repository::parse(&format!("ghcr.io/acme/{n}")).unwrap();
            let add = |s: &mut dyn lineage_store::Store, n: &str| {
                services::add(
                    s,
                    Service {
                        name: name(n),
                        owner: Some(id("priya@acme.dev")),
                        backup_owner: None,
                        emergency_approver: None,
                        source_repo: None,
                        images: vec![image(n)],
                    },
                    id("ops@acme.dev"),
                    now,
                )
                .unwrap();
            };
            let build = |s: &mut dyn lineage_store::Store, n: &str, d: char| {
                let b = BuildRecord {
                    service: name(n),
                    image: image(n),
                    digest: digest(d),
                    tags: vec![Tag::parse("1.0").unwrap()],
                    bases: Vec::new(),
                    source_repo: None,
                    git_ref: None,
                    commit: Some(CommitId::parse(&d.to_string().repeat(40)).unwrap()),
                    started_at: None,
                    finished_at: Some(now),
                    ci: Some(lineage_model::CiRun {
                        system: "github-actions".into(),
                        job: None,
                        run_id: Some("7".into()),
                        url: None,
                    }),
                    builder: None,
                    platform: None,
                    dockerfile: None,
                };
                record::build(s, b.clone(), now, None).unwrap();
                b
            };
            let deploy = |s: &mut dyn lineage_store::Store,
                          n: &str,
                          d: char,
                          env: &str,
                          by: &str,
                          approved: Option<&str>| {
                record::deploy(
                    s,
                    DeployRecord {
                        config: Vec::new(),
                        service: name(n),
                        image: image(n),
                        digest: digest(d),
                        env: EnvName::parse(env).unwrap(),
                        by: id(by),
                        approved_by: approved.map(id),
                        ticket: None,
                        at: now,
                        rollback: false,
                    },
                    now,
                    None,
                )
                .unwrap();
            };
            let sign = |s: &mut dyn lineage_store::Store,
                        b: &BuildRecord,
                        key: &lineage_attest::keys::PrivateKey| {
                let att = lineage_core::provenance::sign_build(b, key, now).unwrap();
                s.record_facts(&[Record::Attestation(att)], now, None)
                    .unwrap();
            };
            for n in [
                "unapproved",
                "selfie",
                "nobuild",
                "failed",
                "retired",
                "outcome",
                "drift",
                "stranger",
                "clean",
            ] {
                add(s, n);
            }
            let b = build(s, "unapproved", '1');
            sign(s, &b, &trusted);
            deploy(s, "unapproved", '1', "production", "jonas@acme.dev", None);
            let b = build(s, "selfie", '2');
            sign(s, &b, &trusted);
            deploy(
                s,
                "selfie",
                '2',
                "production",
                "jonas@acme.dev",
                Some("jonas@acme.dev"),
            );
            deploy(s, "nobuild", '3', "staging", "jonas@acme.dev", None);
            let b = build(s, "failed", '4');
            sign(s, &b, &trusted);
            s.record_facts(
                &[Record::Check(lineage_model::CheckResult {
                    digest: digest('4'),
                    gate: "build".into(),
                    passed: false,
                    failed_rules: vec!["B001".into()],
                    allowed_failures: true,
                    by: None,
                    at: now,
                })],
                now,
                None,
            )
            .unwrap();
            deploy(s, "failed", '4', "staging", "jonas@acme.dev", None);
            let b = build(s, "retired", '5');
            sign(s, &b, &trusted);
            deploy(s, "retired", '5', "staging", "jonas@acme.dev", None);
            let b = build(s, "outcome", '6');
            sign(s, &b, &trusted);
            deploy(s, "outcome", '6', "staging", "jonas@acme.dev", None);
            let b = build(s, "drift", '7');
            sign(s, &b, &trusted);
            deploy(s, "drift", '7', "staging", "jonas@acme.dev", None);
            let b = build(s, "stranger", '8');
            sign(s, &b, &stranger);
            // Signatures are judged for production, where the trust policy applies.
            deploy(
                s,
                "stranger",
                '8',
                "production",
                "jonas@acme.dev",
                Some("maya@acme.dev"),
            );
            let b = build(s, "clean", '0');
            sign(s, &b, &trusted);
            deploy(s, "clean", '0', "staging", "jonas@acme.dev", None);
            s.record_facts(
                &[
                    Record::Retire(Retirement {
                        digest: digest('5'),
                        reason: "CVE-2026-1".into(),
                        by: id("sec@acme.dev"),
                        at: now,
                    }),
                    Record::Outcome(lineage_model::DeployOutcome {
                        service: name("outcome"),
                        env: EnvName::parse("staging").unwrap(),
                        digest: digest('6'),
                        status: lineage_model::OutcomeStatus::Failed,
                        detail: None,
                        by: id("sre@acme.dev"),
                        at: now,
                    }),
                ],
                now,
                None,
            )
            .unwrap();
            // The cluster runs another digest of `drift` in staging than the one recorded.
            let config = Config::default();
            let namespaces = Default::default();
            let parsed = lineage_core::observe::parse(
                &format!(
                    "staging,ghcr.io/acme/drift@{}\nstaging,ghcr.io/acme/clean@{}\n",
                    digest('7').to_string().replace('7', "6"),
                    digest('0')
                ),
                &lineage_core::observe::ObserveOptions {
                    source: "stage-1".into(),
                    format: Some(lineage_core::observe::InputFormat::Csv),
                    namespaces: &namespaces,
                    config: &config,
                    seen_at: now,
                    by: id("sa:observer"),
                    name: "inventory.csv".into(),
                },
            )
            .unwrap();
            lineage_core::observe::record(s, parsed, now).unwrap();
        },
    );
    let reader = token(&w, Some(Scope::Read));
    let page = browse(&w, "/", Via::Header(&reader)).await.body;
    let rows = fleet_marks(&page);
    let marks = |service: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r.0 == service)
            .unwrap_or_else(|| panic!("no row {service}\n{page}"))
            .2
            .clone()
    };
    for (service, risk) in [
        ("unapproved", "unapproved"),
        ("selfie", "self_approved"),
        ("nobuild", "no_build"),
        ("api", "unsigned"),
        ("failed", "failed_gate"),
        ("retired", "retired"),
        ("outcome", "bad_outcome"),
        ("drift", "drift"),
        ("stranger", "untrusted"),
    ] {
        assert!(
            marks(service).contains(&risk.to_string()),
            "{service} lacks {risk}: {:?}",
            marks(service)
        );
    }
    assert_eq!(marks("clean"), Vec::<String>::new(), "{page}");
    assert!(page.contains("signed (ci)"), "{page}");
    assert!(
        page.contains("production: deployed without approval"),
        "{page}"
    );
    assert!(page.contains("production: self-approved"), "{page}");
    // Each count at the top is the number of rows marked with its kind.
    for kind in lineage_core::lifecycle::Risk::ALL {
        let kind = kind.as_str();
        let shown: usize = page
            .split(&format!("data-risk-count=\"{kind}\"><b>"))
            .nth(1)
            .and_then(|x| x.split("</b>").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count for {kind}"));
        let marked = rows
            .iter()
            .filter(|r| r.2.iter().any(|k| k == kind))
            .count();
        assert_eq!(shown, marked, "{kind}");
    }
    // Production risks first.
    let classes: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let first_other = classes
        .iter()
        .position(|c| *c != "risk-production")
        .unwrap();
    assert!(
        first_other >= 2
            && classes[first_other..]
                .iter()
                .all(|c| *c != "risk-production"),
        "{classes:?}"
    );
    // Each service's page says the same, at the top.
    for (service, risk) in [
        ("selfie", "self_approved"),
        ("stranger", "untrusted"),
        ("drift", "drift"),
    ] {
        let page = browse(&w, &format!("/services/{service}"), Via::Header(&reader))
            .await
            .body;
        let card = page
            .split("<div class=\"card attention\">")
            .nth(1)
            .and_then(|c| c.split("</div>").next())
            .unwrap_or_else(|| panic!("{service}: no attention card\n{page}"));
        assert!(
            card.contains(&format!("data-risk=\"{risk}\"")),
            "{service}: {card}"
        );
    }
    let clean = browse(&w, "/services/clean", Via::Header(&reader))
        .await
        .body;
    assert!(
        clean.contains("Needs attention: </b><span class=\"ok\">nothing found"),
        "{clean}"
    );
    // A filter keeps the rows of its kind; the counts stay those of the fleet.
    let filtered = browse(&w, "/?risk=untrusted", Via::Header(&reader))
        .await
        .body;
    let kept: Vec<String> = fleet_marks(&filtered).into_iter().map(|r| r.0).collect();
    assert_eq!(kept, ["stranger"], "{filtered}");
    let filtered = browse(&w, "/?env=production&owner=PRIYA", Via::Header(&reader))
        .await
        .body;
    let mut kept: Vec<String> = fleet_marks(&filtered).into_iter().map(|r| r.0).collect();
    kept.sort();
    assert_eq!(
        kept,
        ["api", "selfie", "stranger", "unapproved"],
        "{filtered}"
    );
}
