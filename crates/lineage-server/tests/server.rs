//! The server, in process: the authorization matrix over every endpoint, the admission webhook
//! on the shared fixtures and on generated reviews of every workload kind, bad input, body
//! limits, metrics and the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lineage_core::{record, services, Config};
use lineage_model::{
    BaseImage, BuildRecord, CommitId, DeployRecord, Digest, EnvName, Identity, Record, Repository,
    Retirement, Service, ServiceName, Tag, Timestamp,
};
use lineage_server::auth::{self, Scope};
use lineage_server::{AdmissionConfig, AppState, Mode, ServerConfig};
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
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: digest('a'),
            env: EnvName::parse("production").unwrap(),
            by: id("jonas@acme.dev"),
            approved_by: Some(id("maya@acme.dev")),
            ticket: None,
            at: now,
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
    drop(store);

    let config = Config::default();
    let mut admission = AdmissionConfig::from_toml(
        "[admission]\nnamespaces = { prod = \"production\", dev = \"dev\" }\n",
        "lineage.toml",
        &config,
    )
    .unwrap();
    admission.mode = mode;
    let key = lineage_store::lineage_log::keys::LogKey::generate("lineage.test/ledger").unwrap();
    let state = lineage_server::state(ServerConfig {
        store: location,
        gate: lineage_core::gate::Setup {
            config,
            ..Default::default()
        },
        admission,
        log: Some((Arc::new(key), Default::default())),
        body_limit: 64 * 1024,
        request_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(50),
        clock: Arc::new(move || now),
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
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: digest('7'),
            env: EnvName::parse("production").unwrap(),
            by: id("jonas@acme.dev"),
            approved_by: Some(id("maya@acme.dev")),
            ticket: None,
            at: now,
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
