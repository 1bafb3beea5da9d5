//! Runtime observations: what really runs, read from a Kubernetes `PodList` or a plain
//! inventory, recorded as one ledger entry per batch, and the observed state of a placement
//! (`observed 3 min ago`, `not observed since …`, `never observed`) that every query shows.
//!
//! The whole input is parsed and checked before anything is written: a malformed pod or line
//! is an error naming its path (`items[3].status.containerStatuses[0].imageID`) or line and
//! the field, and nothing is recorded. Namespaces map to environments exactly as
//! `[admission] namespaces` says; pods in other namespaces are reported, never guessed.
//!
//! References: the Pod, PodList and OwnerReference objects of the Kubernetes API
//! (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/>).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lineage_model::{
    Digest, EnvName, Identity, ImageRef, ObservationBatch, Observed, Record, Repository, Timestamp,
};
use lineage_store::{ObservedRow, SourceState, Store};
use serde::{Deserialize, Serialize};

use crate::{Config, Error};

/// Inputs larger than this are refused before they are parsed. A `kubectl get pods -A -o
/// json` of 10,000 pods is about 60 MiB.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

/// The longest source label (`--cluster`).
const MAX_SOURCE_LEN: usize = 128;

/// How an input is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// `kubectl get pods -A -o json` (a `List` or `PodList`, or one `Pod`).
    Kubernetes,
    /// One JSON object per line: `{"env", "image", "host"|"cluster", "seen_at"}`.
    Jsonl,
    /// `env, image@digest[, host|cluster, seen_at]`, with or without a header line.
    Csv,
}

impl InputFormat {
    pub fn parse(input: &str) -> Result<InputFormat, Error> {
        match input {
            "kubernetes" | "k8s" => Ok(InputFormat::Kubernetes),
            "jsonl" => Ok(InputFormat::Jsonl),
            "csv" => Ok(InputFormat::Csv),
            other => Err(Error::Invalid(
                format!("input format `{other}` is not one Lineage reads"),
                "pass `--input-format kubernetes`, `jsonl` or `csv` (or leave it out to detect it)"
                    .into(),
            )),
        }
    }

    /// Guesses the format from the first character: a JSON document with a `kind` is
    /// Kubernetes, other JSON is JSON lines, anything else CSV.
    pub fn detect(text: &str) -> InputFormat {
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            return InputFormat::Csv;
        }
        let first_line = trimmed.lines().next().unwrap_or("");
        // A one-line JSON object with a `kind` at the top is a (compact) Kubernetes object;
        // kubectl pretty-prints, so its first line is a lone `{`.
        match serde_json::from_str::<serde_json::Value>(first_line) {
            Ok(v) if v.get("kind").is_none() => InputFormat::Jsonl,
            _ => InputFormat::Kubernetes,
        }
    }
}

/// What an observation is checked against and labelled with.
#[derive(Debug, Clone)]
pub struct ObserveOptions<'a> {
    /// The cluster or inventory the input describes (`--cluster`).
    pub source: String,
    pub format: Option<InputFormat>,
    /// `[admission] namespaces`: which namespace is which environment.
    pub namespaces: &'a BTreeMap<String, EnvName>,
    pub config: &'a Config,
    /// When the input was taken (default: now); lines may carry their own `seen_at`.
    pub seen_at: Timestamp,
    pub by: Identity,
    /// What the input is called in errors (a file name, or `stdin`).
    pub name: String,
}

/// A namespace whose pods map to no environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnmappedNamespace {
    pub namespace: String,
    pub pods: usize,
}

/// A container that was read but could not be recorded, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    /// Where it is in the input (`items[4].status.containerStatuses[1]`).
    pub at: String,
    pub reason: String,
}

/// A checked batch, ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub batch: ObservationBatch,
    pub format: InputFormat,
    pub unmapped: Vec<UnmappedNamespace>,
    pub skipped: Vec<Skipped>,
}

/// What `lineage observe` recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObserveReport {
    pub schema: u32,
    pub outcome: String,
    pub kind: String,
    /// The ledger entry of the batch.
    pub index: u64,
    pub source: String,
    pub format: String,
    pub at: Timestamp,
    /// Environments the batch speaks for.
    pub envs: Vec<String>,
    /// Containers recorded.
    pub containers: usize,
    /// Distinct (environment, digest) pairs recorded.
    pub digests: usize,
    pub unmapped_namespaces: Vec<UnmappedNamespace>,
    pub skipped: Vec<Skipped>,
}

fn invalid(name: &str, at: &str, problem: impl std::fmt::Display, hint: &str) -> Error {
    Error::Invalid(format!("`{name}`: {at}: {problem}"), hint.to_string())
}

/// Checks a source label: one printable line, no spaces.
pub fn check_source(source: &str) -> Result<(), Error> {
    let ok = !source.is_empty()
        && source.len() <= MAX_SOURCE_LEN
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(
            format!("source label `{}` is not a name", source.escape_debug()),
            format!("name the cluster or inventory with letters, digits and `-_.:/@`, at most {MAX_SOURCE_LEN} characters, e.g. `--cluster prod-eu-1`"),
        ))
    }
}

/// Parses and checks a whole input. Nothing is written; an error names the path or line.
pub fn parse(text: &str, opts: &ObserveOptions<'_>) -> Result<Parsed, Error> {
    check_source(&opts.source)?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(Error::Invalid(
            format!(
                "`{}` is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                opts.name,
                text.len()
            ),
            "split the inventory by cluster or namespace and record each part with its own `--cluster`".into(),
        ));
    }
    let format = opts.format.unwrap_or_else(|| InputFormat::detect(text));
    let mut parsed = match format {
        InputFormat::Kubernetes => parse_pods(text, opts)?,
        InputFormat::Jsonl => parse_jsonl(text, opts)?,
        InputFormat::Csv => parse_csv(text, opts)?,
    };
    parsed.batch.items.sort_by(|a, b| {
        (
            &a.env,
            &a.image,
            &a.digest,
            &a.namespace,
            &a.workload,
            &a.container,
        )
            .cmp(&(
                &b.env,
                &b.image,
                &b.digest,
                &b.namespace,
                &b.workload,
                &b.container,
            ))
    });
    Ok(parsed)
}

fn batch(opts: &ObserveOptions<'_>, format: &str, complete: bool) -> ObservationBatch {
    ObservationBatch {
        source: opts.source.clone(),
        format: format.to_string(),
        complete,
        envs: Vec::new(),
        items: Vec::new(),
        unmapped_namespaces: Vec::new(),
        by: opts.by.clone(),
        at: opts.seen_at,
    }
}

// -------------------------------------------------------------------------------------------
// Kubernetes
// -------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct K8sList {
    kind: Option<String>,
    #[serde(default)]
    items: Vec<K8sObject>,
    #[serde(default)]
    metadata: K8sMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Deserialize)]
struct K8sObject {
    kind: Option<String>,
    #[serde(default)]
    metadata: K8sMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct K8sMeta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
}

#[derive(Deserialize, Clone)]
struct OwnerRef {
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    ephemeral_containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    name: String,
    image: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(rename = "imageID", default)]
    image_id: Option<String>,
}

static NO_SPEC: PodSpec = PodSpec {
    containers: Vec::new(),
    init_containers: Vec::new(),
    ephemeral_containers: Vec::new(),
};
static NO_STATUS: PodStatus = PodStatus {
    container_statuses: Vec::new(),
    init_container_statuses: Vec::new(),
    ephemeral_container_statuses: Vec::new(),
};

impl K8sMeta {
    /// The owner that manages the object: the reference marked `controller`, else the first.
    fn controller(&self) -> Option<&OwnerRef> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or(self.owner_references.first())
    }
}

/// Resolves a pod's workload: ReplicaSet → Deployment, Job → CronJob, StatefulSet,
/// DaemonSet, or the pod itself. Owners listed in the same input (`kubectl get pods,rs,jobs
/// -A -o json`) are followed exactly; otherwise Kubernetes' naming rules are used: a
/// Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`, and a CronJob's Job is
/// `<cronjob>-<scheduled time in minutes>`.
fn workload(
    meta: &K8sMeta,
    namespace: &str,
    owners: &BTreeMap<(String, String, String), OwnerRef>,
) -> String {
    let pod = meta.name.clone().unwrap_or_default();
    let Some(owner) = meta.controller() else {
        return format!("Pod/{pod}");
    };
    let key = (
        namespace.to_string(),
        owner.kind.clone(),
        owner.name.clone(),
    );
    if let Some(up) = owners.get(&key) {
        return format!("{}/{}", up.kind, up.name);
    }
    match owner.kind.as_str() {
        "ReplicaSet" => match meta.labels.get("pod-template-hash") {
            Some(hash) => match owner.name.strip_suffix(&format!("-{hash}")) {
                Some(deployment) if !deployment.is_empty() => format!("Deployment/{deployment}"),
                _ => format!("ReplicaSet/{}", owner.name),
            },
            None => format!("ReplicaSet/{}", owner.name),
        },
        "Job" => match owner.name.rsplit_once('-') {
            Some((cronjob, minutes))
                if !cronjob.is_empty()
                    && minutes.len() >= 8
                    && minutes.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("CronJob/{cronjob}")
            }
            _ => format!("Job/{}", owner.name),
        },
        kind => format!("{kind}/{}", owner.name),
    }
}

/// What a runtime's `imageID` says: a repository digest, or only a local image id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ImageId {
    RepoDigest(ImageRef),
    /// `docker://sha256:…` or a bare `sha256:…`: the image's local id (its config digest),
    /// which names no registry manifest.
    LocalId(Digest),
}

/// Reads every `imageID` spelling runtimes use: `docker-pullable://REPO@sha256:…` (Docker,
/// pulled by digest), `docker://sha256:…` (Docker, a local image id), `REPO@sha256:…`
/// (containerd, CRI-O), and a bare `sha256:…`.
fn parse_image_id(text: &str) -> Result<ImageId, String> {
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains(['/', '@']) => rest,
        _ => text,
    };
    if rest.contains('@') {
        let r = ImageRef::parse(rest).map_err(|e| e.to_string())?;
        if r.digest.is_none() {
            return Err(format!("`{text}` has no digest after `@`"));
        }
        return Ok(ImageId::RepoDigest(r));
    }
    if rest.starts_with("sha256:") || rest.starts_with("sha512:") {
        return Digest::parse(rest)
            .map(ImageId::LocalId)
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "`{text}` is neither `REPOSITORY@sha256:…` nor `sha256:…`"
    ))
}

const IMAGE_ID_HINT: &str = "an `imageID` is what the runtime reports, e.g. `docker-pullable://ghcr.io/acme/api@sha256:<64 hex>` or `ghcr.io/acme/api@sha256:<64 hex>`; pass kubectl's output unchanged";

fn parse_pods(text: &str, opts: &ObserveOptions<'_>) -> Result<Parsed, Error> {
    let name = opts.name.as_str();
    // Tracking the path of every value costs a third of the parse; it is only needed to
    // name where a malformed input went wrong, so it runs then, on the same text.
    if let Ok(list) = serde_json::from_str::<K8sList>(text) {
        return pods_of(list, opts);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let list: K8sList = serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let at = if inner.is_syntax() || inner.is_eof() {
            format!("line {} column {}", inner.line(), inner.column())
        } else {
            e.path().to_string()
        };
        invalid(
            name,
            &at,
            inner,
            "pass the output of `kubectl get pods -A -o json` unchanged",
        )
    })?;
    pods_of(list, opts)
}

fn pods_of(list: K8sList, opts: &ObserveOptions<'_>) -> Result<Parsed, Error> {
    let name = opts.name.as_str();
    let objects = match list.kind.as_deref() {
        Some("List") | Some("PodList") => list.items,
        Some("Pod") => vec![K8sObject {
            kind: Some("Pod".into()),
            metadata: list.metadata,
            spec: list.spec,
            status: list.status,
        }],
        other => {
            return Err(invalid(
                name,
                "kind",
                format!(
                    "is `{}`, not a `List` or `PodList` of pods",
                    other.unwrap_or("(missing)")
                ),
                "pass the output of `kubectl get pods -A -o json`",
            ))
        }
    };
    // Owners of ReplicaSets and Jobs listed in the same input.
    let mut owners = BTreeMap::new();
    for o in &objects {
        if let (Some(kind @ ("ReplicaSet" | "Job")), Some(owner)) =
            (o.kind.as_deref(), o.metadata.controller())
        {
            if let (Some(ns), Some(n)) = (&o.metadata.namespace, &o.metadata.name) {
                owners.insert((ns.clone(), kind.to_string(), n.clone()), owner.clone());
            }
        }
    }
    let mut out = batch(opts, "kubernetes", true);
    // A fleet runs few distinct images in many pods (every pod has the mesh's sidecar):
    // each spelling is parsed once.
    let mut refs: HashMap<&str, ImageRef> = HashMap::new();
    let mut ids: HashMap<&str, Result<ImageId, String>> = HashMap::new();
    let mut unmapped: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut envs = BTreeSet::new();
    for (i, o) in objects.iter().enumerate() {
        match o.kind.as_deref() {
            None | Some("Pod") => {}
            Some("ReplicaSet" | "Job") => continue,
            Some(other) => {
                skipped.push(Skipped {
                    at: format!("items[{i}]"),
                    reason: format!("a `{other}` is not a pod; only pods are read"),
                });
                continue;
            }
        }
        let Some(namespace) = o.metadata.namespace.as_deref().filter(|n| !n.is_empty()) else {
            return Err(invalid(
                name,
                &format!("items[{i}].metadata.namespace"),
                "is missing",
                "pass the output of `kubectl get pods -A -o json`, which names every pod's namespace",
            ));
        };
        let Some(env) = opts.namespaces.get(namespace) else {
            *unmapped.entry(namespace.to_string()).or_default() += 1;
            continue;
        };
        envs.insert(env.clone());
        let workload = workload(&o.metadata, namespace, &owners);
        let spec = o.spec.as_ref().unwrap_or(&NO_SPEC);
        let status = o.status.as_ref().unwrap_or(&NO_STATUS);
        for (field, status_field, kind, containers, statuses) in [
            (
                "containers",
                "containerStatuses",
                None,
                &spec.containers,
                &status.container_statuses,
            ),
            (
                "initContainers",
                "initContainerStatuses",
                Some("init"),
                &spec.init_containers,
                &status.init_container_statuses,
            ),
            (
                "ephemeralContainers",
                "ephemeralContainerStatuses",
                Some("ephemeral"),
                &spec.ephemeral_containers,
                &status.ephemeral_container_statuses,
            ),
        ] {
            for (j, c) in containers.iter().enumerate() {
                let spec_at = format!("items[{i}].spec.{field}[{j}].image");
                let Some(written) = c.image.as_deref() else {
                    return Err(invalid(
                        name,
                        &spec_at,
                        "is missing",
                        "every container names its image",
                    ));
                };
                let spec_ref = match refs.get(written) {
                    Some(r) => r.clone(),
                    None => {
                        let r = ImageRef::parse(written.trim())
                            .map_err(|e| invalid(name, &spec_at, &e, &e.hint))?;
                        refs.insert(written, r.clone());
                        r
                    }
                };
                let found = statuses.iter().position(|s| s.name == c.name);
                let id = match found {
                    Some(k) => {
                        let at = format!("items[{i}].status.{status_field}[{k}].imageID");
                        match statuses[k].image_id.as_deref().filter(|s| !s.is_empty()) {
                            Some(text) => Some(
                                ids.entry(text)
                                    .or_insert_with(|| parse_image_id(text))
                                    .clone()
                                    .map_err(|p| invalid(name, &at, p, IMAGE_ID_HINT))?,
                            ),
                            None => None,
                        }
                    }
                    None => None,
                };
                // A digest in the spec is what the kubelet pulled, whatever the runtime
                // reports; otherwise the runtime's repository digest says what runs.
                let digest = match (&spec_ref.digest, &id) {
                    (Some(d), _) => d.clone(),
                    (None, Some(ImageId::RepoDigest(r))) => {
                        r.digest.clone().expect("checked in parse_image_id")
                    }
                    (None, Some(ImageId::LocalId(local))) => {
                        skipped.push(Skipped {
                            at: format!("items[{i}].status.{status_field}[{}]", found.unwrap_or(0)),
                            reason: format!(
                                "container `{}` runs `{written}` known only by its local image id `{local}`, which names no registry digest; pin the image by digest",
                                c.name
                            ),
                        });
                        continue;
                    }
                    (None, None) => {
                        skipped.push(Skipped {
                            at: format!("items[{i}].spec.{field}[{j}]"),
                            reason: format!(
                                "container `{}` has not pulled `{written}` yet (no `imageID`)",
                                c.name
                            ),
                        });
                        continue;
                    }
                };
                out.items.push(Observed {
                    env: env.clone(),
                    image: spec_ref.repository.clone(),
                    digest,
                    namespace: Some(namespace.to_string()),
                    workload: Some(workload.clone()),
                    container: Some(c.name.clone()),
                    container_kind: kind.map(str::to_string),
                    host: None,
                    seen_at: opts.seen_at,
                });
            }
        }
    }
    out.envs = envs.into_iter().collect();
    out.unmapped_namespaces = unmapped.keys().cloned().collect();
    Ok(Parsed {
        batch: out,
        format: InputFormat::Kubernetes,
        unmapped: unmapped
            .into_iter()
            .map(|(namespace, pods)| UnmappedNamespace { namespace, pods })
            .collect(),
        skipped,
    })
}

// -------------------------------------------------------------------------------------------
// Plain inventories
// -------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    env: String,
    image: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    seen_at: Option<String>,
}

const LINE_HINT: &str = "write one object per line: `{\"env\": \"production\", \"image\": \"ghcr.io/acme/api@sha256:<64 hex>\", \"host\": \"vm-12\", \"seen_at\": \"2026-11-17T09:00:00Z\"}`";
const CSV_HINT: &str = "write `env, image@digest[, host, seen_at]` per line, e.g. `production, ghcr.io/acme/api@sha256:<64 hex>, vm-12, 2026-11-17T09:00:00Z`";

/// One inventory line, checked.
fn item(opts: &ObserveOptions<'_>, at: &str, hint: &str, line: Line) -> Result<Observed, Error> {
    let name = opts.name.as_str();
    let env = opts.config.environment(line.env.trim()).map_err(|e| {
        invalid(
            name,
            &format!("{at}: field `env`"),
            &e,
            &e.hint().unwrap_or_default(),
        )
    })?;
    let image = ImageRef::parse(line.image.trim())
        .map_err(|e| invalid(name, &format!("{at}: field `image`"), &e, &e.hint))?;
    let Some(digest) = image.digest.clone() else {
        return Err(invalid(
            name,
            &format!("{at}: field `image`"),
            format!("`{}` is not pinned by digest", line.image.trim()),
            hint,
        ));
    };
    if line.host.is_some() && line.cluster.is_some() {
        return Err(invalid(
            name,
            at,
            "has both `host` and `cluster`",
            "name where it runs once: a host or a cluster",
        ));
    }
    let host = line
        .host
        .or(line.cluster)
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    if let Some(h) = &host {
        if h.len() > 256 || h.chars().any(char::is_control) {
            return Err(invalid(
                name,
                &format!("{at}: field `host`"),
                "is longer than 256 characters or has control characters",
                hint,
            ));
        }
    }
    let seen_at = match line
        .seen_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(t) => Timestamp::parse(t)
            .map_err(|e| invalid(name, &format!("{at}: field `seen_at`"), &e, &e.hint))?,
        None => opts.seen_at,
    };
    if seen_at.unix() > opts.seen_at.unix() + crate::gate::MAX_FUTURE_SECONDS {
        return Err(invalid(
            name,
            &format!("{at}: field `seen_at`"),
            format!("`{seen_at}` is in the future"),
            "give the time the inventory was taken",
        ));
    }
    Ok(Observed {
        env,
        image: image.repository,
        digest,
        namespace: None,
        workload: None,
        container: None,
        container_kind: None,
        host,
        seen_at,
    })
}

fn inventory_batch(opts: &ObserveOptions<'_>, format: InputFormat, items: Vec<Observed>) -> Parsed {
    let mut b = batch(
        opts,
        match format {
            InputFormat::Csv => "csv",
            _ => "jsonl",
        },
        true,
    );
    let envs: BTreeSet<EnvName> = items.iter().map(|i| i.env.clone()).collect();
    b.envs = envs.into_iter().collect();
    // The batch is as old as its newest line, when lines say when they were seen.
    b.items = items;
    Parsed {
        batch: b,
        format,
        unmapped: Vec::new(),
        skipped: Vec::new(),
    }
}

fn parse_jsonl(text: &str, opts: &ObserveOptions<'_>) -> Result<Parsed, Error> {
    let mut items = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let at = format!("line {}", n + 1);
        let line: Line =
            serde_json::from_str(raw).map_err(|e| invalid(&opts.name, &at, e, LINE_HINT))?;
        items.push(item(opts, &at, LINE_HINT, line)?);
    }
    Ok(inventory_batch(opts, InputFormat::Jsonl, items))
}

fn parse_csv(text: &str, opts: &ObserveOptions<'_>) -> Result<Parsed, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut columns: Vec<String> = ["env", "image", "host", "seen_at"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut items = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(n as u64 + 1, |p| p.line());
            invalid(&opts.name, &format!("line {line}"), e, CSV_HINT)
        })?;
        let line_no = record.position().map_or(n as u64 + 1, |p| p.line());
        let at = format!("line {line_no}");
        if record.iter().all(str::is_empty) {
            continue;
        }
        if n == 0 && record.get(0).is_some_and(|c| c.eq_ignore_ascii_case("env")) {
            columns = record.iter().map(|c| c.to_ascii_lowercase()).collect();
            for c in &columns {
                if !["env", "image", "host", "cluster", "seen_at"].contains(&c.as_str()) {
                    return Err(invalid(
                        &opts.name,
                        &at,
                        format!("has an unknown column `{c}`"),
                        "columns are `env`, `image`, `host` (or `cluster`) and `seen_at`",
                    ));
                }
            }
            continue;
        }
        if record.len() > columns.len() {
            return Err(invalid(
                &opts.name,
                &at,
                format!(
                    "has {} fields; at most {} are read",
                    record.len(),
                    columns.len()
                ),
                CSV_HINT,
            ));
        }
        let get = |col: &str| {
            columns
                .iter()
                .position(|c| c == col)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(env), Some(image)) = (get("env"), get("image")) else {
            return Err(invalid(
                &opts.name,
                &at,
                "needs an `env` and an `image`",
                CSV_HINT,
            ));
        };
        let line = Line {
            env,
            image,
            host: get("host"),
            cluster: get("cluster"),
            seen_at: get("seen_at"),
        };
        items.push(item(opts, &at, CSV_HINT, line)?);
    }
    Ok(inventory_batch(opts, InputFormat::Csv, items))
}

// -------------------------------------------------------------------------------------------
// Recording
// -------------------------------------------------------------------------------------------

/// Records a checked batch as one ledger entry.
pub fn record(
    store: &mut dyn Store,
    parsed: Parsed,
    now: Timestamp,
) -> Result<ObserveReport, Error> {
    let mut batch = parsed.batch;
    // The batch is dated when its newest observation was made.
    if let Some(newest) = batch.items.iter().map(|i| i.seen_at).max() {
        batch.at = batch.at.max(newest);
    }
    let digests: BTreeSet<(&EnvName, &Digest)> =
        batch.items.iter().map(|i| (&i.env, &i.digest)).collect();
    let report = ObserveReport {
        schema: 1,
        outcome: "recorded".into(),
        kind: "observation".into(),
        index: 0,
        source: batch.source.clone(),
        format: batch.format.clone(),
        at: batch.at,
        envs: batch.envs.iter().map(ToString::to_string).collect(),
        containers: batch.items.len(),
        digests: digests.len(),
        unmapped_namespaces: parsed.unmapped,
        skipped: parsed.skipped,
    };
    let by = batch.by.clone();
    let index = store.append(&[Record::Observation(batch)], now, Some(&by))?[0];
    Ok(ObserveReport { index, ..report })
}

// -------------------------------------------------------------------------------------------
// The observed state of a placement
// -------------------------------------------------------------------------------------------

/// Whether a placement was seen running, as every query reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObservedState {
    /// `observed` (in a source's newest batch), `not_observed` (seen before, not any more),
    /// `never_observed` (the environment is observed, this digest never was), or
    /// `unwatched` (no source reports on the environment).
    pub status: String,
    /// When it was last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Seconds from `last_seen` to the time of the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// The sources that saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl ObservedState {
    pub fn is_observed(&self) -> bool {
        self.status == "observed"
    }

    /// `observed 3 min ago`, `not observed since 2026-11-17T09:00:00Z`, `never observed`,
    /// `environment not observed`.
    pub fn phrase(&self) -> String {
        match (self.status.as_str(), self.last_seen) {
            ("observed", _) => match self.age_seconds {
                Some(age) => format!("observed {}", ago(age)),
                None => "observed".into(),
            },
            ("not_observed", Some(t)) => format!("not observed since {t}"),
            ("never_observed", _) => "never observed".into(),
            _ => "environment not observed".into(),
        }
    }
}

/// `just now`, `3 min ago`, `5 h ago`, `2 days ago`.
pub fn ago(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => {
            let d = s / 86_400;
            format!("{d} day{} ago", if d == 1 { "" } else { "s" })
        }
    }
}

/// What runtime sources observed, loaded once for a query.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub sources: Vec<SourceState>,
    /// Rows by environment and digest.
    rows: BTreeMap<EnvName, BTreeMap<Digest, Vec<ObservedRow>>>,
    /// Environments a complete source's newest batch speaks for.
    covered: BTreeSet<EnvName>,
    /// Environments an incremental source (admission) has reported on.
    seen_envs: BTreeSet<EnvName>,
    now: Option<Timestamp>,
}

impl Truth {
    /// Loads what was observed, optionally in one environment and/or of one digest.
    /// `None` when no source ever reported: the ledger knows nothing about runtime, and
    /// reports say nothing about it.
    pub fn load(
        store: &dyn Store,
        env: Option<&EnvName>,
        digest: Option<&Digest>,
        now: Option<Timestamp>,
    ) -> Result<Option<Truth>, Error> {
        let sources = store.observation_sources()?;
        if sources.is_empty() {
            return Ok(None);
        }
        let complete: BTreeSet<&str> = sources
            .iter()
            .filter(|s| s.complete)
            .map(|s| s.source.as_str())
            .collect();
        let covered = sources
            .iter()
            .filter(|s| s.complete)
            .flat_map(|s| s.envs.iter().cloned())
            .collect();
        let mut truth = Truth {
            covered,
            now,
            ..Truth::default()
        };
        for row in store.observed(env, digest)? {
            if !complete.contains(row.source.as_str()) {
                truth.seen_envs.insert(row.env.clone());
            }
            truth
                .rows
                .entry(row.env.clone())
                .or_default()
                .entry(row.digest.clone())
                .or_default()
                .push(row);
        }
        truth.sources = sources;
        Ok(Some(truth))
    }

    fn is_complete(&self, source: &str) -> bool {
        self.sources
            .iter()
            .any(|s| s.source == source && s.complete)
    }

    /// Whether anything reports on `env`.
    pub fn watches(&self, env: &EnvName) -> bool {
        self.covered.contains(env) || self.seen_envs.contains(env)
    }

    /// Whether a complete source speaks for `env`, so that absence means "not running".
    pub fn covers(&self, env: &EnvName) -> bool {
        self.covered.contains(env)
    }

    /// The digests observed in `env`, each with its rows, for drift.
    pub fn digests_in(&self, env: &EnvName) -> Vec<(&Digest, &[ObservedRow])> {
        self.rows
            .get(env)
            .map(|m| m.iter().map(|(d, r)| (d, r.as_slice())).collect())
            .unwrap_or_default()
    }

    /// Every environment something was observed in or a complete source speaks for.
    pub fn envs(&self) -> BTreeSet<EnvName> {
        self.rows
            .keys()
            .cloned()
            .chain(self.covered.iter().cloned())
            .collect()
    }

    /// Whether a row counts as running now: in its complete source's newest batch, or
    /// reported by admission into an environment no complete source speaks for.
    pub fn runs_now(&self, row: &ObservedRow) -> bool {
        if self.is_complete(&row.source) {
            row.current
        } else {
            !self.covers(&row.env)
        }
    }

    /// The state of `digest` in `env`. Complete sources decide when one speaks for the
    /// environment: a digest their newest batch does not list is not running, whatever an
    /// admission once saw.
    pub fn state(&self, env: &EnvName, digest: &Digest) -> ObservedState {
        let rows: &[ObservedRow] = self
            .rows
            .get(env)
            .and_then(|m| m.get(digest))
            .map_or(&[], Vec::as_slice);
        let pick = |rows: Vec<&ObservedRow>, status: &str| {
            let last = rows.iter().map(|r| r.last_seen).max();
            let mut sources: Vec<String> = rows.iter().map(|r| r.source.clone()).collect();
            sources.sort();
            sources.dedup();
            ObservedState {
                status: status.into(),
                last_seen: last,
                age_seconds: match (last, self.now) {
                    (Some(l), Some(n)) if status == "observed" => Some(n.unix() - l.unix()),
                    _ => None,
                },
                sources,
            }
        };
        let complete_now: Vec<&ObservedRow> = rows
            .iter()
            .filter(|r| r.current && self.is_complete(&r.source))
            .collect();
        if !complete_now.is_empty() {
            return pick(complete_now, "observed");
        }
        if self.covers(env) {
            return if rows.is_empty() {
                pick(Vec::new(), "never_observed")
            } else {
                pick(rows.iter().collect(), "not_observed")
            };
        }
        if !rows.is_empty() {
            // Only admission (or a complete source that no longer speaks for the
            // environment) saw it: observed when last seen, nothing more is known.
            let incremental: Vec<&ObservedRow> = rows
                .iter()
                .filter(|r| !self.is_complete(&r.source))
                .collect();
            return if incremental.is_empty() {
                pick(rows.iter().collect(), "not_observed")
            } else {
                pick(incremental, "observed")
            };
        }
        if self.seen_envs.contains(env) {
            return pick(Vec::new(), "never_observed");
        }
        pick(Vec::new(), "unwatched")
    }
}

/// An image admitted by the webhook, for `[admission] observe = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub env: EnvName,
    pub image: Repository,
    pub digest: Digest,
    pub namespace: String,
    pub workload: Option<String>,
    pub container: String,
    pub container_kind: Option<String>,
    pub at: Timestamp,
}

/// The batch admission writes for what it admitted: not complete (a pod starting says
/// nothing about the others), labelled `source`.
pub fn admitted_batch(source: &str, admitted: Vec<Admitted>, by: Identity) -> ObservationBatch {
    let at = admitted
        .iter()
        .map(|a| a.at)
        .max()
        .unwrap_or(Timestamp::from_unix(0));
    let envs: BTreeSet<EnvName> = admitted.iter().map(|a| a.env.clone()).collect();
    let mut items: Vec<Observed> = admitted
        .into_iter()
        .map(|a| Observed {
            env: a.env,
            image: a.image,
            digest: a.digest,
            namespace: Some(a.namespace),
            workload: a.workload,
            container: Some(a.container),
            container_kind: a.container_kind,
            host: None,
            seen_at: a.at,
        })
        .collect();
    items.sort_by(|a, b| {
        (&a.env, &a.image, &a.digest, &a.namespace, &a.container).cmp(&(
            &b.env,
            &b.image,
            &b.digest,
            &b.namespace,
            &b.container,
        ))
    });
    ObservationBatch {
        source: source.to_string(),
        format: "admission".into(),
        complete: false,
        envs: envs.into_iter().collect(),
        items,
        unmapped_namespaces: Vec::new(),
        by,
        at,
    }
}

#[cfg(test)]
mod tests;
