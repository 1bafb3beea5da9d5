//! `lineage serve`: the team server. One axum router serves the REST API (scoped bearer
//! tokens), the dashboard, the Kubernetes admission webhook, health, readiness and metrics.
//!
//! Only this crate knows HTTP and AdmissionReview. Use cases come from `lineage-core` and
//! return the same reports the CLI renders, so an API answer is the CLI's `--format json`.
//! SQLite work runs on blocking threads; admission answers come from the in-memory
//! [`index::Index`], which a poller keeps in step with the ledger.

pub mod admission;
pub mod api;
pub mod auth;
pub mod dashboard;
mod error;
pub mod index;
pub mod k8s;
pub mod metrics;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lineage_core::gate;
use lineage_core::ledger_log::LogSettings;
use lineage_model::Timestamp;
use lineage_store::lineage_log::keys::LogKey;
use lineage_store::{Store, StoreLocation};

pub use dashboard::DashboardConfig;
pub use error::ApiError;
pub use lineage_core::admission::{AdmissionConfig, Mode, NotReady};

use crate::auth::{Scope, TokenInfo};
use crate::index::{Index, StorePool};
use crate::metrics::Metrics;

/// "Now", as the caller defines it (the binary pins it for reproducible tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Everything the server needs, resolved by the binary.
pub struct ServerConfig {
    pub store: StoreLocation,
    /// What every gate judges by (environments, rules, Rego, exceptions, trust): loaded by
    /// the binary with the same function the CLI uses, so both decide alike.
    pub gate: gate::Setup,
    pub admission: AdmissionConfig,
    /// The log key and `[log]` settings: every write is sealed into a signed checkpoint.
    pub log: Option<(Arc<LogKey>, LogSettings)>,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How often the index looks for new ledger entries.
    pub poll_interval: Duration,
    pub clock: Clock,
    /// Who may read the dashboard, and how its login cookie is marked.
    pub dashboard: DashboardConfig,
}

/// Default request body limit: 1 MiB, well above any AdmissionReview of a real pod.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] lineage_store::StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What every request shares.
pub struct AppState {
    pub cfg: ServerConfig,
    /// Writes for the one connection that writes, owned by the group-commit thread
    /// ([`AppState::write`]).
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    /// Writes sent to the writer thread and not yet taken into a group.
    queued: std::sync::atomic::AtomicUsize,
    /// Connections for reads.
    pub readers: StorePool,
    pub index: Index,
    pub metrics: Metrics,
    /// What admission admitted and has not yet been recorded (`[admission] observe`).
    pub admitted: Mutex<Vec<lineage_core::observe::Admitted>>,
}

/// A write waiting for the writer thread: it runs on the writer's store inside a group and
/// returns whether it succeeded (its writes are kept only then) and what answers its caller
/// once the group's fate is known (`None`: durable).
type Job = Box<dyn FnOnce(&AppState, &mut dyn Store) -> (bool, Answer) + Send>;
type Answer = Box<dyn FnOnce(Option<&ApiError>) + Send>;

/// At most this many writes share one commit; a longer queue waits for the next.
const MAX_GROUP: usize = 256;

/// How often admitted images are recorded as one observation batch.
pub const OBSERVE_FLUSH: Duration = Duration::from_secs(5);
/// At most this many admitted images wait for a flush; more are dropped (and counted), so
/// a ledger that cannot be written never grows the server's memory.
pub const OBSERVE_BUFFER: usize = 100_000;
/// The source label of admission's observations.
pub const ADMISSION_SOURCE: &str = "admission";

impl AppState {
    pub fn now(&self) -> Timestamp {
        (self.cfg.clock)()
    }

    /// The token a request presents, checked for `needed`. 401 without a live token, 403
    /// with one that lacks the scope. Never logs or echoes what was presented.
    pub fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
        needed: Scope,
    ) -> Result<Arc<TokenInfo>, ApiError> {
        let create = format!("create one: `lineage token create --name NAME --scope {needed}`");
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs a bearer token",
                format!(
                    "send `Authorization: Bearer <token>` (the CLI reads LINEAGE_TOKEN); {create}"
                ),
            ));
        };
        self.authorize_token(value.to_str().ok().and_then(auth::bearer), needed)
    }

    /// The one token decision, whatever carried the token (an `Authorization` header, the
    /// dashboard's cookie or its login form): `None` is a malformed token. 401 unless the
    /// token is live, 403 if it lacks `needed`.
    pub fn authorize_token(
        &self,
        token: Option<&str>,
        needed: Scope,
    ) -> Result<Arc<TokenInfo>, ApiError> {
        let create = format!("create one: `lineage token create --name NAME --scope {needed}`");
        if token.is_some() && !self.index.is_ready() {
            // The tokens load with the index: "not valid" now would be a false answer.
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is still loading the ledger, so it cannot check tokens yet",
                "retry in a few seconds; `GET /readyz` answers 200 once it is ready",
            ));
        }
        let Some(info) = token.and_then(|t| self.index.token(t)) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the bearer token is not valid (unknown, malformed or revoked)",
                format!("check LINEAGE_TOKEN; `lineage token list` shows live tokens; {create}"),
            ));
        };
        if !info.allows(needed) {
            let has: Vec<&str> = info.scopes.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` has scope {} but this needs `{needed}`",
                    info.name,
                    has.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
                format!("use a token with `{needed}`: `lineage token create --name NAME --scope {needed}`"),
            ));
        }
        Ok(info)
    }

    /// Runs `f` on the writer and answers once what it wrote is durable.
    ///
    /// Group commit: one thread owns the writing connection. Writes that arrive while it
    /// commits wait in a queue and then run one after another in one transaction (each in
    /// its own savepoint, so a refused or failed write leaves the others), followed by one
    /// signed checkpoint and one commit: one disk sync for the whole group. Every write is
    /// answered only after that commit; if it fails, every write of the group gets the error
    /// and none is in the ledger.
    pub fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AppState, &mut dyn Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (send, receive) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |state, store| {
            let out = f(state, store);
            let kept = out.is_ok();
            let answer: Answer = Box::new(move |failed: Option<&ApiError>| {
                let _ = send.send(match failed {
                    Some(e) => Err(e.clone()),
                    None => out,
                });
            });
            (kept, answer)
        });
        {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            self.queued
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            jobs.send(job)
                .map_err(|_| ApiError::internal("the ledger writer has stopped"))?;
        }
        receive
            .recv()
            .unwrap_or_else(|_| Err(ApiError::internal("a write failed; see the server's log")))
    }

    /// Writes waiting for the writer thread (they will share the next commit).
    pub fn queued_writes(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One group: runs `jobs` on `store` in one transaction, seals one checkpoint, commits,
    /// lets the index see the writes, then answers every job.
    fn commit_group(&self, store: &mut dyn Store, jobs: Vec<Job>) {
        let mut answers: Vec<Answer> = Vec::with_capacity(jobs.len());
        // Jobs that never run (the group could not begin) drop their channels, which answers
        // their callers with an error.
        let committed = match store.begin_group() {
            Err(e) => Err(ApiError::from(e)),
            Ok(()) => match self.run_group(store, jobs, &mut answers) {
                Ok(()) => store.commit_group().map_err(ApiError::from),
                Err(e) => {
                    store.rollback_group();
                    Err(e)
                }
            },
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e.message, writes = answers.len(), "a group of writes was not committed");
        } else if let Err(e) = self.index.refresh(store) {
            tracing::warn!(error = %e, "index refresh after a write failed; the poller retries");
        }
        for answer in answers {
            answer(committed.as_ref().err());
        }
    }

    /// Runs each job of an open group as one step (a failed or panicking job leaves none of
    /// its writes), then seals the group's checkpoint.
    fn run_group(
        &self,
        store: &mut dyn Store,
        jobs: Vec<Job>,
        answers: &mut Vec<Answer>,
    ) -> Result<(), ApiError> {
        for job in jobs {
            store.begin_step().map_err(ApiError::from)?;
            // A panicking job drops its caller's channel: its caller gets a 500.
            let (kept, answer) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(self, store)))
                    .unwrap_or_else(|_| (false, Box::new(|_| ())));
            store.end_step(kept).map_err(ApiError::from)?;
            answers.push(answer);
        }
        if let Some((key, settings)) = &self.cfg.log {
            lineage_core::ledger_log::seal(store, key, settings, self.now())?;
        }
        Ok(())
    }

    /// Runs `f` on a read connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.readers.with(f)
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("a worker failed: {e}"))))
}

/// Opens the ledger connections and builds the shared state. The index is not loaded yet.
pub fn state(cfg: ServerConfig) -> Result<Arc<AppState>, ServeError> {
    // The server may be the first writer of a team's ledger, so it creates one.
    let mut writer = lineage_store::open(&cfg.store, true)?;
    let readers = (0..2)
        .map(|_| lineage_store::open(&cfg.store, false))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = cfg
        .admission
        .namespaces
        .values()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let state = Arc::new(AppState {
        index: Index::new(cfg.gate.trust.clone(), envs),
        cfg,
        jobs: Mutex::new(jobs),
        queued: Default::default(),
        readers: StorePool::new(readers),
        metrics: Metrics::default(),
        admitted: Mutex::new(Vec::new()),
    });
    // The writer thread holds the state weakly: when the last request and task let go of
    // it, the channel closes and the thread ends.
    let weak = Arc::downgrade(&state);
    std::thread::Builder::new()
        .name("lineage-writer".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                let Some(state) = weak.upgrade() else { return };
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                state
                    .queued
                    .fetch_sub(group.len(), std::sync::atomic::Ordering::SeqCst);
                state.metrics.write_group(group.len());
                state.commit_group(writer.as_mut(), group);
            }
        })?;
    Ok(state)
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(api::openapi))
        .route("/admission", post(admit))
        .merge(api::routes())
        .merge(dashboard::routes(state.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.cfg.body_limit))
        .layer(middleware::map_response(nosniff))
        .with_state(state)
}

/// Every answer, JSON included, is what its `Content-Type` says: a browser must not sniff an
/// API error or a ledger value into HTML.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Loads the index in the background and keeps it fresh until `stop` resolves.
pub fn start_index(state: Arc<AppState>, stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut stop = stop;
        let mut poller: Option<Box<dyn Store>> = None;
        loop {
            let st = state.clone();
            let p = poller.take();
            let result = tokio::task::spawn_blocking(move || {
                let store = match p {
                    Some(s) => s,
                    None => lineage_store::open(&st.cfg.store, false)?,
                };
                if st.index.is_ready() {
                    // Woken by the database (`LISTEN` on PostgreSQL) or by the log's head
                    // moving (SQLite), never by scanning the ledger.
                    let seen = st.index.ledger_len();
                    if store.wait_for_change(seen, st.cfg.poll_interval)? > seen {
                        st.index.refresh(store.as_ref())?;
                    }
                } else {
                    st.index.load(store.as_ref(), st.now())?;
                    tracing::info!(entries = st.index.ledger_len(), "admission index loaded");
                }
                Ok::<_, lineage_store::StoreError>(store)
            })
            .await;
            let waited = match result {
                Ok(Ok(store)) => {
                    poller = Some(store);
                    true
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot refresh the index from the ledger");
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "index refresh failed");
                    false
                }
            };
            if waited {
                if stop.has_changed().unwrap_or(true) {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(state.cfg.poll_interval) => {}
                _ = stop.changed() => return,
            }
        }
    });
}

/// Where to listen.
pub enum Listener {
    Plain(tokio::net::TcpListener),
    Tls(tls::TlsListener),
}

/// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
pub async fn serve(
    state: Arc<AppState>,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    start_index(state.clone(), stop_rx.clone());
    if state.cfg.admission.observe {
        start_observer(state.clone(), stop_rx);
    }
    let app = router(state.clone());
    let result = match listener {
        Listener::Plain(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
        Listener::Tls(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
    };
    let _ = stop_tx.send(true);
    // What was admitted while draining is recorded before the process ends.
    flush_admitted(state).await;
    result.map_err(ServeError::Io)
}

/// Records what admission admitted, one batch every [`OBSERVE_FLUSH`], until `stop`.
pub fn start_observer(state: Arc<AppState>, stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(OBSERVE_FLUSH) => {}
                _ = stop.changed() => return,
            }
            flush_admitted(state.clone()).await;
        }
    });
}

/// Writes the admitted images waiting in memory as one observation batch (source
/// `admission`, not complete). Runs off the admission path: admission only appends to the
/// buffer. A failed write puts the batch back for the next flush.
pub async fn flush_admitted(state: Arc<AppState>) {
    let pending = std::mem::take(&mut *state.admitted.lock().unwrap_or_else(|p| p.into_inner()));
    if pending.is_empty() {
        return;
    }
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let by = lineage_model::Identity::parse("sa:lineage-admission").expect("a valid identity");
        let batch =
            lineage_core::observe::admitted_batch(ADMISSION_SOURCE, pending.clone(), by.clone());
        let n = batch.items.len();
        let written = st.write(move |st, store| {
            let now = st.now();
            Ok(store.append(&[lineage_model::Record::Observation(batch)], now, Some(&by))?)
        });
        (written.map(|_| n), pending)
    })
    .await;
    match result {
        Ok((Ok(n), _)) => {
            state.metrics.record_written("observation");
            tracing::info!(images = n, "recorded what admission admitted");
        }
        Ok((Err(e), pending)) => {
            tracing::warn!(error = %e.message, "cannot record admitted images; retrying at the next flush");
            let mut buffer = state.admitted.lock().unwrap_or_else(|p| p.into_inner());
            let room = OBSERVE_BUFFER.saturating_sub(buffer.len());
            buffer.extend(pending.into_iter().take(room));
        }
        Err(e) => tracing::warn!(error = %e, "recording admitted images failed"),
    }
}

/// Times each request, enforces the request timeout and writes one log line per request.
/// The line has the route template, never the query or headers, so no secret reaches it.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = match tokio::time::timeout(state.cfg.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {:?}",
                state.cfg.request_timeout
            ),
            "try again; if it persists, see the server's log",
        )
        .into_response(),
    };
    let elapsed = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    state
        .metrics
        .observe_request(route, method.as_str(), status, elapsed);
    tracing::info!(method = %method, route = %route, status, ms = elapsed * 1e3, "request");
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.index.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            "loading the ledger: tokens and the admission index are not ready yet\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(&[
        (
            "lineage_ledger_entries",
            "Ledger entries the index has applied.",
            state.index.ledger_len() as f64,
        ),
        (
            "lineage_write_queue",
            "Writes waiting for the next group commit.",
            state.queued_writes() as f64,
        ),
        (
            "lineage_admission_index_digests",
            "Digests with cached facts.",
            state.index.cached_digests() as f64,
        ),
        (
            "lineage_ready",
            "1 once the admission index is loaded.",
            if state.index.is_ready() { 1.0 } else { 0.0 },
        ),
    ]);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint",
        "`GET /openapi.json` lists the API; the dashboard is at `/`",
    )
}

/// Turns a body rejection (too large, unreadable) into the API's JSON error.
pub fn body_error(r: BytesRejection) -> ApiError {
    let status = r.status();
    let hint = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "send a smaller body; the server's limit is `--body-limit`"
    } else {
        "send the whole body"
    };
    ApiError::new(status, r.body_text(), hint)
}

async fn admit(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_error(r).into_response(),
    };
    let cfg = &state.cfg.admission;
    let now = state.now();
    let (api_version, parsed) = admission::parse(&body);
    let mut judged = None;
    let (uid, verdict) = match parsed {
        admission::Parsed::Malformed { uid, reason } => {
            let v = admission::malformed(&reason, cfg.mode);
            (uid, v)
        }
        admission::Parsed::Skip { uid, reason } => (uid, admission::skipped(reason)),
        admission::Parsed::Judge(req) => {
            let v = if !state.index.is_ready() {
                admission::not_ready(cfg.when_not_ready == NotReady::Allow)
            } else {
                decide(&state, &req, now).await
            };
            let uid = req.uid.clone();
            judged = Some(req);
            (uid, v)
        }
    };
    let rules: Vec<&str> = verdict.findings.iter().map(|f| f.code.as_str()).collect();
    state.metrics.decision(verdict.outcome, &rules);
    if let (true, true, Some(req)) = (cfg.observe, verdict.allowed, judged.as_ref()) {
        remember_admitted(&state, req, now);
    }
    if !verdict.allowed {
        tracing::info!(uid = %uid, outcome = verdict.outcome, rules = ?rules, "admission denied");
    }
    Json(admission::response(&api_version, &uid, &verdict)).into_response()
}

/// Keeps the pinned images of an admitted request for the next observation batch. Only an
/// append to memory: the answer never waits for a disk.
fn remember_admitted(state: &AppState, req: &admission::Request, now: Timestamp) {
    let Some(env) = state.cfg.admission.environment(req.namespace.as_deref()) else {
        return;
    };
    let items: Vec<lineage_core::observe::Admitted> = req
        .images
        .iter()
        .filter_map(|c| {
            let image = lineage_model::ImageRef::parse(c.image.trim()).ok()?;
            Some(lineage_core::observe::Admitted {
                env: env.clone(),
                digest: image.digest?,
                image: image.repository,
                namespace: req.namespace.clone().unwrap_or_default(),
                workload: req.workload.clone(),
                container: c.container.clone(),
                container_kind: match c.field {
                    "initContainers" => Some("init".into()),
                    "ephemeralContainers" => Some("ephemeral".into()),
                    _ => None,
                },
                at: now,
            })
        })
        .collect();
    let mut buffer = state.admitted.lock().unwrap_or_else(|p| p.into_inner());
    let room = OBSERVE_BUFFER.saturating_sub(buffer.len());
    if room < items.len() {
        tracing::warn!(
            dropped = items.len() - room,
            "the admitted-images buffer is full; dropping"
        );
    }
    buffer.extend(items.into_iter().take(room));
}

async fn decide(
    state: &Arc<AppState>,
    req: &admission::Request,
    now: Timestamp,
) -> admission::Verdict {
    let cfg = &state.cfg.admission;
    let digests = if cfg.environment(req.namespace.as_deref()).is_some() {
        admission::digests(req)
    } else {
        Vec::new()
    };
    let mut facts = HashMap::new();
    let mut missing = Vec::new();
    for d in digests {
        match state.index.cached(&d) {
            Some(f) => {
                facts.insert(d, f);
            }
            None => missing.push(d),
        }
    }
    if !missing.is_empty() {
        // First sight: read the digest's facts from the local ledger once, off the async
        // threads; later requests for it are answered from memory.
        let st = state.clone();
        let looked = tokio::task::spawn_blocking(move || {
            missing
                .into_iter()
                .map(|d| st.index.facts(&st.readers, &d).map(|f| (d, f)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        match looked {
            Ok(Ok(found)) => facts.extend(found),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "admission could not read the ledger");
                return admission::not_ready(cfg.when_not_ready == NotReady::Allow);
            }
            Err(e) => {
                tracing::warn!(error = %e, "admission lookup failed");
                return admission::not_ready(cfg.when_not_ready == NotReady::Allow);
            }
        }
    }
    // The deploy gate, over memory only: the same rules, severities, Rego and exceptions as
    // `deploy check`.
    let ledger = state.index.ledger(&facts);
    match lineage_core::admission::judge(
        &ledger,
        &state.cfg.gate,
        cfg,
        req.namespace.as_deref(),
        &req.images,
        now,
    ) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "admission could not decide");
            lineage_core::admission::undecided(
                &e.to_string(),
                cfg.when_not_ready == NotReady::Allow,
            )
        }
    }
}
