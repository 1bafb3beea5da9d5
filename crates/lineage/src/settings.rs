//! Settings resolved once at start-up. Every environment variable Lineage reads is declared
//! here (clap reads `LINEAGE_STORE` and `LINEAGE_CONFIG` through `args`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lineage_core::Config;
use lineage_model::{Identity, Timestamp};
use lineage_store::StoreLocation;

use crate::args::{Cli, Format};
use crate::CliError;

/// Who is acting, when no `--by` is given.
pub const ENV_ACTOR: &str = "LINEAGE_ACTOR";
/// Pins "now" to an RFC 3339 time, for reproducible demos, tests and screenshots.
pub const ENV_NOW: &str = "LINEAGE_NOW";
/// Default ledger location, relative to the working directory.
pub const DEFAULT_STORE: &str = ".lineage/lineage.db";

pub struct Settings {
    pub store: StoreLocation,
    /// Whether the ledger location was given (flag or LINEAGE_STORE) rather than defaulted.
    pub store_explicit: bool,
    pub config: Config,
    pub format: Format,
    pub now: Timestamp,
    /// The process environment, captured once; CI detection reads it from here.
    pub env: BTreeMap<String, String>,
}

impl Settings {
    pub fn resolve(cli: &Cli) -> Result<Settings, CliError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let now = match env.get(ENV_NOW) {
            Some(v) => Timestamp::parse(v).map_err(|e| CliError::from(e.in_field(ENV_NOW)))?,
            // Whole seconds: sub-second precision only adds noise to records people read.
            None => Timestamp::from_unix(time::OffsetDateTime::now_utc().unix_timestamp()),
        };
        let store = StoreLocation::parse(cli.store.as_deref().unwrap_or(DEFAULT_STORE));
        let config = load_config(cli.config.as_deref())?;
        Ok(Settings {
            store_explicit: cli.store.is_some(),
            store,
            config,
            format: cli.format,
            now,
            env,
        })
    }

    /// The acting identity: `--by`, then LINEAGE_ACTOR, then the CI's actor, then $USER.
    pub fn actor(&self, by: Option<&str>) -> Result<Identity, CliError> {
        let candidates = [
            by.map(|b| ("--by", b.to_string())),
            self.env.get(ENV_ACTOR).map(|v| (ENV_ACTOR, v.clone())),
            self.env
                .get("GITHUB_ACTOR")
                .map(|v| ("GITHUB_ACTOR", v.clone())),
            self.env
                .get("GITLAB_USER_EMAIL")
                .map(|v| ("GITLAB_USER_EMAIL", v.clone())),
            self.env.get("USER").map(|v| ("USER", v.clone())),
        ];
        match candidates.into_iter().flatten().next() {
            Some((field, value)) => {
                Identity::parse(&value).map_err(|e| CliError::from(e.in_field(field)))
            }
            None => Err(CliError::new(
                "no identity for this change",
                "pass `--by EMAIL` or set LINEAGE_ACTOR",
            )),
        }
    }
}

fn load_config(explicit: Option<&Path>) -> Result<Config, CliError> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let default = PathBuf::from("lineage.toml");
            if !default.exists() {
                return Ok(Config::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::new(
            format!("cannot read settings file `{}`: {e}", path.display()),
            "pass an existing file with `--config`, or remove the flag to use the defaults",
        )
    })?;
    Ok(Config::from_toml(&text, &path.display().to_string())?)
}
