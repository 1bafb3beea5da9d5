//! The runtime-truth benchmark (issue 17).
//!
//! - Ingest: a `kubectl get pods -A -o json` of 10,000 pods × 3 containers (an app, an init
//!   container and a sidecar) through `observe::parse` + `observe::record` (parse, check every
//!   field, one ledger entry with its log leaf and projections), next to a raw insert of the
//!   same rows (the journal row, pre-serialised, and one upsert per container) in the same
//!   run. Rates are containers per second; the ratio is the figure that matters.
//! - Drift: `lineage drift` over 1,000 services placed in 3 environments, observed by one
//!   cluster per environment with some drift of every kind; p50/p99 over repeated runs, for
//!   the whole fleet and for one environment.
//!
//! `cargo bench -p lineage-core --bench runtime`; LINEAGE_BENCH_PODS changes the pod count.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lineage_core::drift::{self, DriftOptions};
use lineage_core::observe::{self, ObserveOptions};
use lineage_core::Config;
use lineage_model::{
    canonical_json, DeployRecord, EnvName, Identity, ObservationBatch, Observed, Record,
    Repository, Timestamp,
};
use lineage_store::bench::{raw_insert_observations, RawObserved};
use lineage_store::StoreLocation;
use serde_json::json;

use common::*;

const ROUNDS: usize = 3;
const DRIFT_RUNS: usize = 200;

fn app(s: usize) -> String {
    format!("registry.acme.dev/apps/svc-{s}")
}

/// A pod of service `s`'s Deployment running digest `label`, with an init container and a
/// sidecar, as kubectl prints it (containerd `imageID` spelling).
fn pod(namespace: &str, s: usize, i: usize, label: &str) -> serde_json::Value {
    let hash = format!("{:09x}", s * 7919 % 0xfffffffff);
    let image = app(s);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("svc-{s}-{hash}-{i:05}"), "namespace": namespace,
            "labels": { "app": format!("svc-{s}"), "pod-template-hash": hash },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": true,
                                  "name": format!("svc-{s}-{hash}"), "uid": "0b6a1f2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b" }],
        },
        "spec": {
            "initContainers": [{ "name": "migrate", "image": format!("{image}-migrate:live") }],
            "containers": [
                { "name": "app", "image": format!("{image}:live") },
                { "name": "proxy", "image": "registry.acme.dev/mesh/proxy:1.22" },
            ],
        },
        "status": {
            "phase": "Running",
            "initContainerStatuses": [{ "name": "migrate", "ready": true, "restartCount": 0,
                "imageID": format!("{image}-migrate@{}", digest(&format!("migrate {s}"))) }],
            "containerStatuses": [
                { "name": "app", "ready": true, "restartCount": 0, "image": format!("{image}:live"),
                  "imageID": format!("{image}@{}", digest(label)),
                  "state": { "running": { "startedAt": "2026-11-17T08:00:00Z" } } },
                { "name": "proxy", "ready": true, "restartCount": 0, "image": "registry.acme.dev/mesh/proxy:1.22",
                  "imageID": format!("docker-pullable://registry.acme.dev/mesh/proxy@{}", digest("proxy 1.22")) },
            ],
        },
    })
}

fn main() {
    let pods: usize = std::env::var("LINEAGE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::from_unix(1_800_000_000);
    let config = Config::default();
    let mut namespaces = BTreeMap::new();
    namespaces.insert("prod".to_string(), EnvName::parse("production").unwrap());
    let by = Identity::parse("sa:inventory").unwrap();

    // ---- Ingest ---------------------------------------------------------------------------
    let list = json!({
        "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "" },
        "items": (0..pods).map(|i| pod("prod", i % SERVICES, i, &format!("app {}", i % SERVICES))).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&list).unwrap();
    drop(list);
    println!(
        "ingest: {pods} pods × 3 containers, {:.1} MiB of kubectl JSON, one batch per round",
        text.len() as f64 / (1 << 20) as f64
    );
    let (mut api_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let opts = ObserveOptions {
            source: "prod-eu-1".into(),
            format: None,
            namespaces: &namespaces,
            config: &config,
            seen_at: now,
            by: by.clone(),
            name: "pods.json".into(),
        };
        let mut store = lineage_store::open(
            &StoreLocation::Sqlite(dir.path().join(format!("api{r}.db"))),
            true,
        )
        .unwrap();
        seed_services(store.as_mut());
        let t = Instant::now();
        let parsed = observe::parse(&text, &opts).unwrap();
        let parse_took = t.elapsed();
        let report = observe::record(store.as_mut(), parsed, now).unwrap();
        let took = t.elapsed();
        println!(
            "  round {r}: parse {:.0} ms, record {:.0} ms",
            parse_took.as_secs_f64() * 1e3,
            (took - parse_took).as_secs_f64() * 1e3
        );
        assert_eq!(report.containers, pods * 3);
        api_rates.push(report.containers as f64 / took.as_secs_f64());

        // The same rows, raw.
        let parsed = observe::parse(&text, &opts).unwrap();
        let t0 = Instant::now();
        let body = canonical_json(&Record::Observation(parsed.batch.clone()));
        println!(
            "  canonical json {:.0} ms, {} bytes",
            t0.elapsed().as_secs_f64() * 1e3,
            body.len()
        );
        let rows: Vec<RawObserved> = parsed
            .batch
            .items
            .iter()
            .map(|i| RawObserved {
                env: i.env.to_string(),
                image: i.image.to_string(),
                digest: i.digest.to_string(),
                seen_at: i.seen_at.unix(),
                workload: i.workload.clone().unwrap_or_default(),
            })
            .collect();
        let path = dir.path().join(format!("raw{r}.db"));
        let mut fresh = lineage_store::open(&StoreLocation::Sqlite(path.clone()), true).unwrap();
        seed_services(fresh.as_mut());
        drop(fresh);
        let t = Instant::now();
        raw_insert_observations(&path, "prod-eu-1", &body, &rows).unwrap();
        raw_rates.push(rows.len() as f64 / t.elapsed().as_secs_f64());
        println!(
            "  round {r}: ingest {:.0} ms ({:.0} containers/s), raw {:.0} containers/s",
            took.as_secs_f64() * 1e3,
            api_rates[r],
            raw_rates[r]
        );
    }
    let (api, raw) = (median(api_rates), median(raw_rates));
    println!("  observe (parse, check, record)  {api:>10.0} containers/s");
    println!("  raw INSERT of the same rows     {raw:>10.0} containers/s");
    println!(
        "  ratio                           {:>10.2}x  (goal >= 0.5x)",
        api / raw
    );

    // ---- Drift over 1,000 services --------------------------------------------------------
    let mut store =
        lineage_store::open(&StoreLocation::Sqlite(dir.path().join("drift.db")), true).unwrap();
    seed_services(store.as_mut());
    let envs = ["dev", "staging", "production"].map(|e| EnvName::parse(e).unwrap());
    // Two builds per service; the newer one is recorded in every environment.
    let mut records = Vec::new();
    for s in 0..SERVICES {
        let old = common::build("old", s, SERVICES);
        let mut new = common::build("new", s, SERVICES);
        new.finished_at = old.finished_at.map(|t| t.plus(time::Duration::days(3)));
        for env in &envs {
            records.push(Record::Deploy(DeployRecord {
                config: Vec::new(),
                service: new.service.clone(),
                image: new.image.clone(),
                digest: new.digest.clone(),
                env: env.clone(),
                by: Identity::parse("sa:deployer").unwrap(),
                approved_by: None,
                ticket: None,
                at: new.finished_at.unwrap().plus(time::Duration::hours(1)),
                rollback: false,
            }));
        }
        records.insert(0, Record::Build(old));
        records.insert(0, Record::Build(new));
    }
    for chunk in records.chunks(BATCH) {
        store.append(chunk, now, None).unwrap();
    }
    // One cluster per environment runs the recorded digest, except: every 50th service runs
    // nothing (recorded-not-observed), every 40th runs its older build (older-than-recorded),
    // every 60th runs an unrecorded digest (observed-not-recorded, no-build-record).
    for env in &envs {
        let mut items = Vec::new();
        for s in 0..SERVICES {
            if s % 50 == 7 {
                continue;
            }
            let label = if s % 40 == 3 {
                format!("old {s}")
            } else if s % 60 == 5 {
                format!("hotfix {s}")
            } else {
                format!("new {s}")
            };
            for replica in 0..3 {
                items.push(Observed {
                    env: env.clone(),
                    image: Repository::parse(&app(s)).unwrap(),
                    digest: digest(&label),
                    namespace: Some(env.to_string()),
                    workload: Some(format!("Deployment/svc-{s}")),
                    container: Some(format!("app-{replica}")),
                    container_kind: None,
                    host: None,
                    seen_at: now,
                });
            }
        }
        let batch = ObservationBatch {
            source: format!("cluster-{env}"),
            format: "kubernetes".into(),
            complete: true,
            envs: vec![env.clone()],
            items,
            unmapped_namespaces: Vec::new(),
            by: by.clone(),
            at: now,
        };
        store
            .append(&[Record::Observation(batch)], now, None)
            .unwrap();
    }
    for (label, env) in [
        ("whole fleet", None),
        ("--env production", Some(envs[2].clone())),
    ] {
        let options = DriftOptions {
            env,
            ..DriftOptions::default()
        };
        let report = drift::drift(store.as_ref(), &config, &options, now).unwrap();
        let mut times: Vec<Duration> = Vec::with_capacity(DRIFT_RUNS);
        for _ in 0..DRIFT_RUNS {
            let t = Instant::now();
            let r = drift::drift(store.as_ref(), &config, &options, now).unwrap();
            times.push(t.elapsed());
            assert_eq!(r.items.len(), report.items.len());
        }
        let p50 = percentile(&mut times, 0.5);
        let p99 = percentile(&mut times, 0.99);
        println!(
            "drift, {label} ({} services × {} env(s), {} items: {:?}): p50 {:.1} ms, p99 {:.1} ms (goal p99 < 100 ms)",
            SERVICES,
            if label == "whole fleet" { 3 } else { 1 },
            report.items.len(),
            report.counts,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}
