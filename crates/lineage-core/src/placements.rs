//! Placements that end: `deploy end`, and the ends a service rename, removal or move implies.
//!
//! A placement is what `running` shows for a (service, environment): the newest deploy there.
//! Ending it appends a `deploy_end` record; the `current` projection drops the placement in
//! the same transaction, so `running`, `trace`, `affected`, the stale report and admission stop
//! counting it. A deploy recorded later starts a new placement.

use lineage_model::{EnvName, Identity, PlacementEnd, Record, Repository, ServiceName, Timestamp};
use lineage_store::Store;
use serde::{Deserialize, Serialize};

use crate::{Config, Error};

/// The longest reason a placement end keeps.
const MAX_REASON: usize = 1000;

/// What ending a placement recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndReport {
    pub schema: u32,
    pub outcome: String,
    pub kind: String,
    pub index: u64,
    pub service: String,
    pub env: String,
    /// The digest that was recorded as running.
    pub digest: String,
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A placement that a change ended, as rename, remove and import report it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ended {
    pub service: String,
    pub env: String,
    pub digest: String,
    pub image: String,
}

/// Checks a free-text reason: one line, not too long.
pub fn check_reason(reason: Option<&str>) -> Result<Option<String>, Error> {
    match reason.map(str::trim) {
        None | Some("") => Ok(None),
        Some(r) if r.len() > MAX_REASON || r.chars().any(char::is_control) => Err(Error::Invalid(
            format!("the reason must be one line of up to {MAX_REASON} characters"),
            "say why, e.g. `--reason \"decommissioned, CHG-2210\"`".into(),
        )),
        Some(r) => Ok(Some(r.to_string())),
    }
}

/// The end records for every placement of `service`, or only those running an image of
/// `image` when given.
pub fn ends_of(
    store: &dyn Store,
    service: &ServiceName,
    image: Option<&Repository>,
    reason: Option<String>,
    by: &Identity,
    at: Timestamp,
) -> Result<(Vec<Record>, Vec<Ended>), Error> {
    let mut records = Vec::new();
    let mut ended = Vec::new();
    for r in store.running(None, Some(service))? {
        if image.is_some_and(|i| *i != r.deploy.image) {
            continue;
        }
        ended.push(Ended {
            service: service.to_string(),
            env: r.deploy.env.to_string(),
            digest: r.deploy.digest.to_string(),
            image: r.deploy.image.to_string(),
        });
        records.push(Record::DeployEnd(PlacementEnd {
            service: service.clone(),
            env: r.deploy.env.clone(),
            digest: Some(r.deploy.digest.clone()),
            reason: reason.clone(),
            by: by.clone(),
            // An end never predates the deploy it ends: a deploy dated ahead of the clock
            // (within the allowed skew) would otherwise survive its own end.
            at: at.max(r.deploy.at),
        }));
    }
    Ok((records, ended))
}

/// A placement to end, as the user names it.
#[derive(Debug, Clone)]
pub struct EndInput {
    pub service: ServiceName,
    pub env: String,
    pub by: Identity,
    pub reason: Option<String>,
}

/// `lineage deploy end`, `POST /api/v1/deploys/end`: records that `service` no longer runs in
/// `env`. `Ok(None)` when nothing is recorded as running there (nothing is written).
pub fn end(
    store: &mut dyn Store,
    config: &Config,
    input: EndInput,
    recorded_by: Option<&Identity>,
    now: Timestamp,
) -> Result<Option<EndReport>, Error> {
    let env: EnvName = config.environment(&input.env)?;
    let reason = check_reason(input.reason.as_deref())?;
    let Some(running) = store
        .running(Some(&env), Some(&input.service))?
        .into_iter()
        .next()
    else {
        if store.service(&input.service)?.is_none()
            && store.service_history(&input.service)?.is_empty()
        {
            return Err(Error::UnknownService(input.service.to_string()));
        }
        return Ok(None);
    };
    let end = PlacementEnd {
        service: input.service.clone(),
        env: env.clone(),
        digest: Some(running.deploy.digest.clone()),
        reason: reason.clone(),
        by: input.by.clone(),
        at: now.max(running.deploy.at),
    };
    let index = store.append(
        &[Record::DeployEnd(end)],
        now,
        recorded_by.or(Some(&input.by)),
    )?[0];
    Ok(Some(EndReport {
        schema: 1,
        outcome: "ended".into(),
        kind: "deploy_end".into(),
        index,
        service: input.service.to_string(),
        env: env.to_string(),
        digest: running.deploy.digest.to_string(),
        by: input.by.to_string(),
        reason,
    }))
}

/// `arg` as one POSIX shell word, so a printed command can be pasted: unchanged when it holds
/// only safe characters, else in single quotes (a `'` becomes `'\''`), so nothing in it is
/// expanded or run. The one quoting rule for every command Lineage prints.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The command that ends a placement.
pub fn end_command(service: &str, env: &str, reason: &str) -> String {
    format!(
        "lineage deploy end --service {} --env {} --reason {}",
        shell_quote(service),
        shell_quote(env),
        shell_quote(reason)
    )
}
