//! The in-memory index admission decisions and token checks are answered from.
//!
//! It holds the services, exceptions and live tokens, and a cache of per-digest facts (the
//! same [`DigestFacts`] the deploy gate reads from a store: build, gate result, retirement,
//! signature status per governed environment, approvals, deploys, base freshness). A
//! digest seen for the first time is looked up in the local store once; after that the answer
//! comes from memory. A poller watches the ledger's length and applies new entries, dropping
//! the cached facts they change, so a write through the CLI is seen within one poll interval.
//! Nothing here calls a registry or the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lineage_attest::TrustPolicy;
use lineage_core::gate::{self, DeployLedger, DigestFacts};
use lineage_model::{Digest, EnvName, Record, Repository, Service, ServiceName, Tag, Timestamp};
use lineage_policy::{Exception, RunningDigest};
use lineage_store::{Store, StoreError};

use crate::auth::{token_hash, TokenInfo};

#[derive(Default)]
struct Data {
    /// Ledger entries applied so far.
    len: u64,
    services: HashMap<ServiceName, Service>,
    /// Image repository → the service that lists it.
    images: HashMap<Repository, ServiceName>,
    /// SHA-256 of the token string → token.
    tokens: HashMap<String, Arc<TokenInfo>>,
    digests: HashMap<Digest, Arc<DigestFacts>>,
    exceptions: Vec<Exception>,
    /// What runs per (service, environment), for rule D013.
    running: HashMap<(ServiceName, EnvName), RunningDigest>,
}

impl Data {
    fn set_services(&mut self, services: HashMap<ServiceName, Service>) {
        self.images = services
            .values()
            .flat_map(|s| s.images.iter().map(|i| (i.clone(), s.name.clone())))
            .collect();
        self.services = services;
    }
}

/// A handful of store connections for reads off the request's async thread (SQLite
/// connections are `Send` but not `Sync`, so each sits behind its own lock).
pub struct StorePool {
    stores: Vec<Mutex<Box<dyn Store>>>,
    next: AtomicU64,
}

impl StorePool {
    pub fn new(stores: Vec<Box<dyn Store>>) -> StorePool {
        assert!(!stores.is_empty(), "a pool needs a store");
        StorePool {
            stores: stores.into_iter().map(Mutex::new).collect(),
            next: AtomicU64::new(0),
        }
    }

    /// Runs `f` on a free connection, or waits for the next one in turn.
    pub fn with<T>(&self, f: impl FnOnce(&dyn Store) -> T) -> T {
        for s in &self.stores {
            if let Ok(guard) = s.try_lock() {
                return f(guard.as_ref());
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.stores.len();
        let guard = self.stores[i].lock().unwrap_or_else(|p| p.into_inner());
        f(guard.as_ref())
    }
}

/// The index, shared by every request.
pub struct Index {
    data: RwLock<Data>,
    ready: AtomicBool,
    /// Bumped whenever cached digest facts are dropped, so a lookup that raced a refresh does
    /// not cache what it read before the change.
    generation: AtomicU64,
    trust: TrustPolicy,
    /// Environments whose signature status is worth computing (the governed ones).
    envs: Vec<Option<EnvName>>,
}

impl Index {
    pub fn new(trust: TrustPolicy, envs: Vec<EnvName>) -> Index {
        let envs = envs.into_iter().map(Some).collect();
        Index {
            data: RwLock::new(Data::default()),
            ready: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            trust,
            envs,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads services and tokens and warms the cache with what runs now; then the index is
    /// ready.
    pub fn load(&self, store: &dyn Store, _now: Timestamp) -> Result<(), StoreError> {
        let len = store.len()?;
        let services = store
            .services()?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let revoked: Vec<String> = store
            .facts("token_revoked", None)?
            .into_iter()
            .filter_map(|e| match e.record {
                Record::TokenRevoked(r) => Some(r.id),
                _ => None,
            })
            .collect();
        let tokens = store
            .facts("token", None)?
            .into_iter()
            .filter_map(|e| match e.record {
                Record::Token(g) if !revoked.contains(&g.id) => {
                    Some((g.sha256.clone(), Arc::new(TokenInfo::from_grant(&g))))
                }
                _ => None,
            })
            .collect();
        let mut digests = HashMap::new();
        let mut running = HashMap::new();
        for r in store.running(None, None)? {
            let d = r.deploy.digest.clone();
            if !digests.contains_key(&d) {
                digests.insert(d.clone(), Arc::new(self.lookup(store, &d)?));
            }
            running.insert(
                (r.deploy.service.clone(), r.deploy.env.clone()),
                RunningDigest {
                    digest: d.to_string(),
                    since: r.deploy.at,
                    built_at: r
                        .build
                        .as_ref()
                        .and_then(|b| b.finished_at.or(b.started_at)),
                },
            );
        }
        let exceptions = gate::exceptions(store).map_err(core_error)?;
        {
            let mut data = self.write();
            *data = Data {
                len,
                tokens,
                digests,
                exceptions,
                running,
                ..Data::default()
            };
            data.set_services(services);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Entries written while loading are applied by the next refresh (they are after `len`).
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies entries written since the last look. Returns how many were applied.
    pub fn refresh(&self, store: &dyn Store) -> Result<u64, StoreError> {
        let len = store.len()?;
        let seen = self.read().len;
        if len == seen {
            return Ok(0);
        }
        if len < seen {
            // The ledger only grows; a shorter one was replaced behind our back. Start over.
            self.load(store, Timestamp::from_unix(0))?;
            return Ok(len);
        }
        let entries = store.entries(seen, len)?;
        // What runs where changes with deploys and ends: read those pairs again, with the
        // store's own rule for which deploy is current, before taking the lock.
        let mut pairs: Vec<(ServiceName, EnvName)> = entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Deploy(d) => Some((d.service.clone(), d.env.clone())),
                Record::DeployEnd(x) => Some((x.service.clone(), x.env.clone())),
                _ => None,
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        let mut reread = Vec::with_capacity(pairs.len());
        for (service, env) in pairs {
            let now = gate::running_digest(store, &service, &env).map_err(core_error)?;
            reread.push(((service, env), now));
        }
        let mut data = self.write();
        for (pair, now) in reread {
            match now {
                Some(r) => {
                    data.running.insert(pair, r);
                }
                None => {
                    data.running.remove(&pair);
                }
            }
        }
        let mut services_changed = false;
        for e in &entries {
            // Drop what the entry changes; the next lookup reads it again.
            match &e.record {
                Record::Build(b) => {
                    data.digests.remove(&b.digest);
                    // A build on a new digest of a base tag makes every image on an older
                    // digest of that tag stale (builds count as freshness evidence).
                    let tags: Vec<(&Repository, &Tag)> = b
                        .bases
                        .iter()
                        .filter_map(|base| Some((&base.name, base.tag.as_ref()?)))
                        .collect();
                    if !tags.is_empty() {
                        data.digests.retain(|_, facts| {
                            !facts.build.as_ref().is_some_and(|built| {
                                built.bases.iter().any(|base| {
                                    base.tag
                                        .as_ref()
                                        .is_some_and(|t| tags.contains(&(&base.name, t)))
                                })
                            })
                        });
                    }
                }
                Record::Deploy(d) => {
                    data.digests.remove(&d.digest);
                }
                Record::Retire(r) => {
                    data.digests.remove(&r.digest);
                }
                Record::Attestation(a) => {
                    data.digests.remove(&a.digest);
                }
                Record::Check(c) => {
                    data.digests.remove(&c.digest);
                }
                Record::Approval(a) => {
                    data.digests.remove(&a.digest);
                }
                // Promotion (D014) reads how a digest did in the previous environment.
                Record::Outcome(o) => {
                    data.digests.remove(&o.digest);
                }
                Record::Service(c) => {
                    data.services
                        .insert(c.service.name.clone(), c.service.clone());
                    services_changed = true;
                }
                Record::Exception(x) => data.exceptions.push(Exception {
                    rule: x.rule.clone(),
                    service: x.service.clone(),
                    reason: x.reason.clone(),
                    approved_by: x.approved_by.to_string(),
                    expires: x.expires,
                }),
                // A new base digest can make any build's base stale.
                Record::Base(_) => data.digests.clear(),
                Record::Token(g) => {
                    data.tokens
                        .insert(g.sha256.clone(), Arc::new(TokenInfo::from_grant(g)));
                }
                Record::TokenRevoked(r) => data.tokens.retain(|_, t| t.id != r.id),
                Record::ServiceRemoved(r) => {
                    data.services.remove(&r.service);
                    services_changed = true;
                }
                // Ends were applied above; observations are not gate facts.
                // Admission does not read SBOMs, scans, incidents, nor tags added later.
                Record::LogKeyRotation(_)
                | Record::DeployEnd(_)
                | Record::Observation(_)
                | Record::Sbom(_)
                | Record::Tag(_)
                | Record::IncidentOpened(_) => {}
            }
        }
        if services_changed {
            let services = std::mem::take(&mut data.services);
            data.set_services(services);
        }
        data.len = len;
        drop(data);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(entries.len() as u64)
    }

    /// Ledger entries the index has applied.
    pub fn ledger_len(&self) -> u64 {
        self.read().len
    }

    pub fn cached_digests(&self) -> usize {
        self.read().digests.len()
    }

    /// The live token a presented secret belongs to.
    pub fn token(&self, presented: &str) -> Option<Arc<TokenInfo>> {
        self.read().tokens.get(&token_hash(presented)).cloned()
    }

    pub fn service(&self, name: &ServiceName) -> Option<Service> {
        self.read().services.get(name).cloned()
    }

    /// Cached facts of a digest, if it has been seen.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<DigestFacts>> {
        self.read().digests.get(digest).cloned()
    }

    /// Facts of a digest: from the cache, else from the store (and then cached).
    pub fn facts(&self, pool: &StorePool, digest: &Digest) -> Result<Arc<DigestFacts>, StoreError> {
        if let Some(f) = self.cached(digest) {
            return Ok(f);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let facts = Arc::new(pool.with(|store| self.lookup(store, digest))?);
        let mut data = self.write();
        if self.generation.load(Ordering::Acquire) == generation {
            data.digests.insert(digest.clone(), facts.clone());
        }
        Ok(facts)
    }

    /// Everything the deploy gate needs about `digest`, read from the store: the one
    /// function the CLI's gate uses too, with the signature judged for every governed
    /// environment.
    fn lookup(&self, store: &dyn Store, digest: &Digest) -> Result<DigestFacts, StoreError> {
        gate::digest_facts(store, &self.trust, &self.envs, digest).map_err(core_error)
    }

    /// A view for one admission decision: the index's services and exceptions, and the
    /// facts of the request's digests, all already in memory.
    pub fn ledger<'a>(&'a self, facts: &'a HashMap<Digest, Arc<DigestFacts>>) -> IndexLedger<'a> {
        IndexLedger { index: self, facts }
    }
}

fn core_error(e: lineage_core::Error) -> StoreError {
    match e {
        lineage_core::Error::Store(s) => s,
        other => StoreError::Backend(other.to_string()),
    }
}

/// The deploy gate's view of the ledger during one admission decision. It never touches a
/// store: a digest not looked up beforehand reads as one with no record.
pub struct IndexLedger<'a> {
    index: &'a Index,
    facts: &'a HashMap<Digest, Arc<DigestFacts>>,
}

impl DeployLedger for IndexLedger<'_> {
    fn service(&self, name: &ServiceName) -> Result<Option<Service>, lineage_core::Error> {
        Ok(self.index.service(name))
    }
    fn service_for_image(
        &self,
        image: &Repository,
    ) -> Result<Option<ServiceName>, lineage_core::Error> {
        Ok(self.index.read().images.get(image).cloned())
    }
    fn digest(
        &self,
        digest: &Digest,
        _env: Option<&EnvName>,
    ) -> Result<DigestFacts, lineage_core::Error> {
        Ok(self
            .facts
            .get(digest)
            .map(|f| DigestFacts::clone(f))
            .unwrap_or_default())
    }
    fn exceptions(&self) -> Result<Vec<Exception>, lineage_core::Error> {
        Ok(self.index.read().exceptions.clone())
    }
    fn running(
        &self,
        service: &ServiceName,
        env: &EnvName,
    ) -> Result<Option<RunningDigest>, lineage_core::Error> {
        Ok(self
            .index
            .read()
            .running
            .get(&(service.clone(), env.clone()))
            .cloned())
    }
}
