//! The in-memory index admission decisions and token checks are answered from.
//!
//! It holds the services and live tokens, and a cache of per-digest facts (its build, whether
//! it was retired, its signature status per environment, whether its base has moved on). A
//! digest seen for the first time is looked up in the local store once; after that the answer
//! comes from memory. A poller watches the ledger's length and applies new entries, dropping
//! the cached facts they change, so a write through the CLI is seen within one poll interval.
//! Nothing here calls a registry or the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lineage_attest::TrustPolicy;
use lineage_model::{Digest, EnvName, Record, Repository, Service, ServiceName, Tag, Timestamp};
use lineage_policy::SignatureStatus;
use lineage_store::{Store, StoreError};

use crate::auth::{token_hash, TokenInfo};

/// What the ledger says about one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFacts {
    /// `(service, image repository)` of its build record; `None` when it has no provenance.
    pub build: Option<(ServiceName, Repository)>,
    /// Why it was retired, when it was.
    pub retired: Option<String>,
    /// Signature status per environment the webhook governs.
    pub signature: Vec<(EnvName, SignatureStatus)>,
    /// The final base, and since when a newer digest of its tag has been seen.
    pub stale_base: Option<(String, Timestamp)>,
}

impl DigestFacts {
    pub fn signature_for(&self, env: &EnvName) -> SignatureStatus {
        self.signature
            .iter()
            .find(|(e, _)| e == env)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Data {
    /// Ledger entries applied so far.
    len: u64,
    services: HashMap<ServiceName, Service>,
    /// SHA-256 of the token string → token.
    tokens: HashMap<String, Arc<TokenInfo>>,
    digests: HashMap<Digest, Arc<DigestFacts>>,
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
    envs: Vec<EnvName>,
}

impl Index {
    pub fn new(trust: TrustPolicy, envs: Vec<EnvName>) -> Index {
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
    pub fn load(&self, store: &dyn Store, now: Timestamp) -> Result<(), StoreError> {
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
        for r in store.running(None, None)? {
            let d = r.deploy.digest.clone();
            if !digests.contains_key(&d) {
                digests.insert(d.clone(), Arc::new(self.lookup(store, &d, now)?));
            }
        }
        {
            let mut data = self.write();
            *data = Data {
                len,
                services,
                tokens,
                digests,
            };
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
        let mut data = self.write();
        for e in &entries {
            match &e.record {
                Record::Build(b) => {
                    data.digests.remove(&b.digest);
                }
                Record::Retire(r) => {
                    data.digests.remove(&r.digest);
                }
                Record::Attestation(a) => {
                    data.digests.remove(&a.digest);
                }
                Record::Service(c) => {
                    data.services
                        .insert(c.service.name.clone(), c.service.clone());
                }
                // A new base digest can make any build's base stale.
                Record::Base(_) => data.digests.clear(),
                Record::Token(g) => {
                    data.tokens
                        .insert(g.sha256.clone(), Arc::new(TokenInfo::from_grant(g)));
                }
                Record::TokenRevoked(r) => data.tokens.retain(|_, t| t.id != r.id),
                Record::Deploy(_)
                | Record::Exception(_)
                | Record::Check(_)
                | Record::LogKeyRotation(_) => {}
            }
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
    pub fn facts(
        &self,
        pool: &StorePool,
        digest: &Digest,
        now: Timestamp,
    ) -> Result<Arc<DigestFacts>, StoreError> {
        if let Some(f) = self.cached(digest) {
            return Ok(f);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let facts = Arc::new(pool.with(|store| self.lookup(store, digest, now))?);
        let mut data = self.write();
        if self.generation.load(Ordering::Acquire) == generation {
            data.digests.insert(digest.clone(), facts.clone());
        }
        Ok(facts)
    }

    /// Everything admission needs about `digest`, read from the store.
    fn lookup(
        &self,
        store: &dyn Store,
        digest: &Digest,
        _now: Timestamp,
    ) -> Result<DigestFacts, StoreError> {
        let key = digest.to_string();
        let build = store.build(digest)?;
        let retired = store
            .facts("retire", Some(&key))?
            .into_iter()
            .find_map(|e| match e.record {
                Record::Retire(r) => Some(r.reason),
                _ => None,
            });
        let mut signature = Vec::new();
        for env in &self.envs {
            let status = lineage_core::provenance::status(store, &self.trust, Some(env), digest)
                .unwrap_or_else(|e| SignatureStatus::Untrusted {
                    reason: e.to_string(),
                });
            signature.push((env.clone(), status));
        }
        let stale_base = match build.as_ref().and_then(|b| b.final_base()) {
            Some(base) => match (&base.tag, &base.digest) {
                (Some(tag), Some(d)) => newer_base_since(store, &base.name, tag, d)?
                    .map(|since| (base.display(), since)),
                _ => None,
            },
            None => None,
        };
        Ok(DigestFacts {
            build: build.map(|b| (b.service, b.image)),
            retired,
            signature,
            stale_base,
        })
    }
}

/// When a digest other than `digest` was first seen under `name:tag` after `digest` was,
/// if one was.
fn newer_base_since(
    store: &dyn Store,
    name: &Repository,
    tag: &Tag,
    digest: &Digest,
) -> Result<Option<Timestamp>, StoreError> {
    let seen: Vec<_> = store
        .facts("base", Some(&name.to_string()))?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) if b.tag.as_ref() == Some(tag) => Some(b),
            _ => None,
        })
        .collect();
    let ours = seen
        .iter()
        .filter(|b| b.digest == *digest)
        .map(|b| b.seen_at)
        .min();
    Ok(seen
        .iter()
        .filter(|b| b.digest != *digest && ours.is_none_or(|o| b.seen_at > o))
        .map(|b| b.seen_at)
        .min())
}
