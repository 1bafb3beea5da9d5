//! Recording builds and deploys.

use lineage_model::{
    BuildRecord, ConfigFile, DeployRecord, Identity, ImageRef, Repository, Service, ServiceName,
    Timestamp,
};
use lineage_store::{BuildOutcome, Store};
use serde::Serialize;

use crate::{Config, Error, FieldDiff};

/// Finds the service an image belongs to: the one named explicitly, or the one that lists the
/// image repository.
pub fn service_for_image(
    store: &dyn Store,
    image: &Repository,
    explicit: Option<&ServiceName>,
) -> Result<Service, Error> {
    let claimed = store.service_for_image(image)?;
    let name = match (explicit, claimed) {
        (Some(explicit), Some(claimed)) if *explicit != claimed => {
            return Err(Error::ImageClaimed {
                image: image.clone(),
                owner: claimed.to_string(),
            })
        }
        (Some(explicit), _) => explicit.clone(),
        (None, Some(claimed)) => claimed,
        (None, None) => return Err(Error::NoServiceForImage(image.clone())),
    };
    store
        .service(&name)?
        .ok_or_else(|| Error::UnknownService(name.to_string()))
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    pub schema: u32,
    /// `recorded`, or `unchanged` when an identical record already existed.
    pub outcome: &'static str,
    pub kind: &'static str,
    pub index: u64,
    pub digest: String,
    pub service: String,
}

/// Records a build. An identical existing record is a no-op; a different one for the same
/// digest is an error naming the fields that differ.
pub fn build(
    store: &mut dyn Store,
    build: BuildRecord,
    recorded_at: Timestamp,
    recorded_by: Option<&Identity>,
) -> Result<RecordReport, Error> {
    if store.service(&build.service)?.is_none() {
        return Err(Error::UnknownService(build.service.to_string()));
    }
    let outcome = store
        .record_builds(std::slice::from_ref(&build), recorded_at, recorded_by)?
        .pop()
        .expect("one outcome per build");
    let (outcome, index) = match outcome {
        BuildOutcome::Recorded { index } => ("recorded", index),
        BuildOutcome::AlreadyRecorded { index } => ("unchanged", index),
        BuildOutcome::Conflict { existing } => {
            return Err(Error::BuildConflict {
                digest: build.digest.to_string(),
                fields: diff(&existing, &build),
            })
        }
    };
    Ok(RecordReport {
        schema: 1,
        outcome,
        kind: "build",
        index,
        digest: build.digest.to_string(),
        service: build.service.to_string(),
    })
}

/// The top-level fields whose JSON values differ.
pub fn diff(recorded: &BuildRecord, given: &BuildRecord) -> Vec<FieldDiff> {
    let (a, b) = (
        serde_json::to_value(recorded).expect("records serialise"),
        serde_json::to_value(given).expect("records serialise"),
    );
    let (a, b) = (
        a.as_object().cloned().unwrap_or_default(),
        b.as_object().cloned().unwrap_or_default(),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        None => "(none)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldDiff {
            field: k.clone(),
            recorded: show(a.get(k)),
            given: show(b.get(k)),
        })
        .collect()
}

/// A deploy as the user describes it, before the service and environment are resolved.
#[derive(Debug, Clone)]
pub struct DeployInput {
    pub image: ImageRef,
    pub env: String,
    pub by: Identity,
    pub approved_by: Option<Identity>,
    pub ticket: Option<String>,
    /// When the deploy happened (the caller defaults it to now).
    pub at: Timestamp,
    /// A deliberate rollback to an older build (rule D013 lets it pass).
    pub rollback: bool,
    /// The configuration deployed with the image, by content (see [`ConfigFile`]).
    pub config: Vec<ConfigFile>,
}

/// Resolves a deploy's service and environment into a record, writing nothing.
pub fn resolve_deploy(
    store: &dyn Store,
    config: &Config,
    input: DeployInput,
) -> Result<DeployRecord, Error> {
    let Some(digest) = input.image.digest.clone() else {
        return Err(Error::Invalid(
            format!("image reference `{}` is not pinned by digest", input.image),
            format!(
                "deploys are recorded by digest: `{}@sha256:<64 hex>` (`lineage trace {}` shows recorded digests)",
                input.image.repository, input.image.repository
            ),
        ));
    };
    let env = config.environment(&input.env)?;
    let service = service_for_image(store, &input.image.repository, None)?;
    if let Some(ticket) = &input.ticket {
        lineage_model::check_free_text("ticket", ticket, 2048)?;
    }
    Ok(DeployRecord {
        service: service.name,
        image: input.image.repository,
        digest,
        env,
        by: input.by,
        approved_by: input.approved_by,
        ticket: input.ticket,
        at: input.at,
        rollback: input.rollback,
        config: checked_config(input.config)?,
    })
}

/// The configuration of a deploy, sorted by path: each path free text (no control
/// characters, at most 1024 bytes), each hash 64 lowercase hex, each path once.
fn checked_config(mut config: Vec<ConfigFile>) -> Result<Vec<ConfigFile>, Error> {
    if config.len() > 64 {
        return Err(Error::Invalid(
            format!("{} configuration files on one deploy; at most 64 are kept", config.len()),
            "pass the files that make the release (manifests, Helm values), or a digest of the rendered whole with `--config-digest`".into(),
        ));
    }
    for c in &config {
        lineage_model::check_free_text("config.path", &c.path, 1024)?;
        if c.sha256.len() != 64
            || !c
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::Invalid(
                format!(
                    "config.sha256 `{}` of `{}` is not 64 lowercase hex characters",
                    lineage_model::inert(&c.sha256),
                    lineage_model::inert(&c.path)
                ),
                "give the SHA-256 of the file's bytes".into(),
            ));
        }
    }
    config.sort();
    if let Some(w) = config.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(Error::Invalid(
            format!(
                "configuration file `{}` is given twice",
                lineage_model::inert(&w[0].path)
            ),
            "name each file once".into(),
        ));
    }
    Ok(config)
}

pub fn deploy(
    store: &mut dyn Store,
    record: DeployRecord,
    recorded_at: Timestamp,
    recorded_by: Option<&Identity>,
) -> Result<RecordReport, Error> {
    let index = store.record_deploys(std::slice::from_ref(&record), recorded_at, recorded_by)?[0];
    Ok(RecordReport {
        schema: 1,
        outcome: "recorded",
        kind: "deploy",
        index,
        digest: record.digest.to_string(),
        service: record.service.to_string(),
    })
}
