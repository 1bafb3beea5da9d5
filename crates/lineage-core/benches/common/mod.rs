//! The synthetic fleet both fleet benchmarks generate, so SQLite and PostgreSQL figures come
//! from the same records: 1,000 services, builds over 50 bases whose digests rotate over time.

#![allow(dead_code)]

use std::time::Duration;

use lineage_model::{
    BaseImage, BuildRecord, CiRun, CommitId, DeployRecord, Digest, EnvName, Identity, Repository,
    Service, ServiceChange, ServiceName, Tag, Timestamp,
};
use lineage_store::Store;
use sha2::{Digest as _, Sha256};

pub const SERVICES: usize = 1_000;
pub const BASES: usize = 50;
pub const DIGESTS_PER_BASE: usize = 20;
/// Records per transaction when loading the fleet.
pub const BATCH: usize = 1_000;

pub fn hash(label: &str) -> String {
    hex::encode(Sha256::digest(label.as_bytes()))
}

pub fn digest(label: &str) -> Digest {
    Digest::parse(&format!("sha256:{}", hash(label))).unwrap()
}

pub fn base_name(b: usize) -> Repository {
    Repository::parse(&format!("registry.acme.dev/base/image-{b}")).unwrap()
}

pub fn base_digest(b: usize, d: usize) -> Digest {
    digest(&format!("base {b} {d}"))
}

pub fn service_name(s: usize) -> ServiceName {
    ServiceName::parse(&format!("svc-{s}")).unwrap()
}

/// Build number `i` of the fleet, from a seed so ingest rounds use fresh digests.
pub fn build(seed: &str, i: usize, total: usize) -> BuildRecord {
    let s = i % SERVICES;
    let b = s % BASES;
    // Base digests advance as the fleet's history advances.
    let d = (i * DIGESTS_PER_BASE / total.max(1)).min(DIGESTS_PER_BASE - 1);
    let at = Timestamp::from_unix(1_760_000_000 + i as i64 * 60);
    BuildRecord {
        service: service_name(s),
        image: Repository::parse(&format!("registry.acme.dev/apps/svc-{s}")).unwrap(),
        digest: digest(&format!("{seed} {i}")),
        tags: vec![Tag::parse(&format!("build-{i}")).unwrap()],
        bases: vec![BaseImage {
            name: base_name(b),
            tag: Some(Tag::parse("stable").unwrap()),
            digest: Some(base_digest(b, d)),
            pulled_at: Some(at),
            final_stage: true,
        }],
        source_repo: Some(
            lineage_model::SourceRepo::parse(&format!("https://git.acme.dev/apps/svc-{s}"))
                .unwrap(),
        ),
        git_ref: Some("main".into()),
        commit: Some(CommitId::parse(&hash(&format!("commit {seed} {i}"))[..40]).unwrap()),
        started_at: Some(at),
        finished_at: Some(at.plus(time::Duration::minutes(4))),
        ci: Some(CiRun {
            system: "gitlab-ci".into(),
            job: Some(format!("svc-{s}/image")),
            run_id: Some(i.to_string()),
            url: Some(format!("https://git.acme.dev/apps/svc-{s}/-/jobs/{i}")),
        }),
        builder: Some(Identity::parse("sa:gitlab-runner").unwrap()),
        platform: Some("linux/amd64".into()),
        dockerfile: None,
    }
}

pub fn seed_services(store: &mut dyn Store) {
    seed_services_n(store, SERVICES)
}

/// The first `n` services of the fleet.
pub fn seed_services_n(store: &mut dyn Store, n: usize) {
    let at = Timestamp::from_unix(1_750_000_000);
    for s in 0..n {
        let change = ServiceChange {
            service: Service {
                name: service_name(s),
                owner: Some(Identity::parse(&format!("owner{s}@acme.dev")).unwrap()),
                backup_owner: Some(Identity::parse(&format!("backup{s}@acme.dev")).unwrap()),
                emergency_approver: None,
                source_repo: None,
                images: vec![
                    Repository::parse(&format!("registry.acme.dev/apps/svc-{s}")).unwrap(),
                ],
            },
            by: Identity::parse("platform@acme.dev").unwrap(),
            at,
        };
        store.record_service_change(&change, at).unwrap();
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A small deterministic generator, so runs query the same targets.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Loads `total` builds in batches of [`BATCH`], each deployed to dev, two in three to staging
/// and one in three to production; returns the number of deploys.
pub fn load_fleet(store: &mut dyn Store, total: usize, now: Timestamp) -> usize {
    let envs = ["dev", "staging", "production"].map(|e| EnvName::parse(e).unwrap());
    let mut deploys = 0usize;
    for start in (0..total).step_by(BATCH) {
        let builds: Vec<BuildRecord> = (start..(start + BATCH).min(total))
            .map(|i| build("fleet", i, total))
            .collect();
        store.record_builds(&builds, now, None).unwrap();
        // Every build goes to dev, two in three to staging, one in three to production.
        let mut batch = Vec::new();
        for (k, b) in builds.iter().enumerate() {
            let i = start + k;
            for (e, env) in envs.iter().enumerate() {
                if e == 0 || (e == 1 && i % 3 != 0) || (e == 2 && i % 3 == 0) {
                    batch.push(DeployRecord {
                        config: Vec::new(),
                        service: b.service.clone(),
                        image: b.image.clone(),
                        digest: b.digest.clone(),
                        env: env.clone(),
                        by: Identity::parse("sa:deployer").unwrap(),
                        approved_by: (e == 2).then(|| Identity::parse("lead@acme.dev").unwrap()),
                        ticket: None,
                        at: b.finished_at.unwrap().plus(time::Duration::hours(e as i64)),
                        rollback: false,
                    });
                }
            }
        }
        deploys += batch.len();
        store.record_deploys(&batch, now, None).unwrap();
    }
    deploys
}
