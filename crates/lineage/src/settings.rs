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
/// The passphrase of encrypted private keys (read here, never logged or echoed).
pub const ENV_KEY_PASSWORD: &str = "LINEAGE_KEY_PASSWORD";
/// The bearer token sent to `--server` (read here, never logged or echoed).
pub const ENV_TOKEN: &str = "LINEAGE_TOKEN";
/// The directory holding docker's `config.json` (registry credentials), as docker reads it.
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// The home directory: `~/.docker/config.json` when DOCKER_CONFIG is unset.
pub const ENV_HOME: &str = "HOME";
/// Proxies for registry requests (loopback registries never use one), as curl reads them.
pub const ENV_HTTPS_PROXY: &str = "HTTPS_PROXY";
pub const ENV_HTTPS_PROXY_LOWER: &str = "https_proxy";
pub const ENV_HTTP_PROXY: &str = "HTTP_PROXY";
pub const ENV_HTTP_PROXY_LOWER: &str = "http_proxy";
pub const ENV_NO_PROXY: &str = "NO_PROXY";
pub const ENV_NO_PROXY_LOWER: &str = "no_proxy";
/// GitHub Actions: a file the gate commands append their Markdown job summary to.
pub const ENV_GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// When set (to anything), gate reports are never coloured (https://no-color.org).
pub const ENV_NO_COLOR: &str = "NO_COLOR";
/// Default ledger location, relative to the working directory.
pub const DEFAULT_STORE: &str = ".lineage/lineage.db";

pub struct Settings {
    pub store: StoreLocation,
    /// Whether the ledger location was given (flag or LINEAGE_STORE) rather than defaulted.
    pub store_explicit: bool,
    pub config: Config,
    /// The settings file's text and directory, for sections other crates parse.
    pub config_file: Option<(String, PathBuf)>,
    /// The settings file's path as given (or `lineage.toml`), for `file:line:col` in errors.
    pub config_path: Option<PathBuf>,
    pub format: Format,
    /// `--server URL`: a Lineage server to send commands to instead of the local ledger.
    pub server: Option<String>,
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
        let store =
            StoreLocation::parse(cli.store.as_deref().unwrap_or(DEFAULT_STORE)).map_err(|e| {
                CliError::new(
                    e.to_string(),
                    "pass `--store postgres://USER@HOST:5432/DATABASE` or an SQLite file path",
                )
            })?;
        let (config, config_file) = load_config(cli.config.as_deref())?;
        Ok(Settings {
            store_explicit: cli.store.is_some(),
            store,
            config,
            config_path: config_file
                .as_ref()
                .map(|_| cli.config.clone().unwrap_or_else(|| "lineage.toml".into())),
            config_file,
            format: cli.format,
            server: cli.server.clone(),
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

type ConfigFile = Option<(String, PathBuf)>;

fn load_config(explicit: Option<&Path>) -> Result<(Config, ConfigFile), CliError> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let default = PathBuf::from("lineage.toml");
            if !default.exists() {
                return Ok((Config::default(), None));
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
    let config = Config::from_toml(&text, &path.display().to_string())?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((config, Some((text, dir))))
}

impl Settings {
    /// The passphrase for encrypted keys: LINEAGE_KEY_PASSWORD, else a prompt on the terminal.
    pub fn key_password(&self) -> Result<String, CliError> {
        if let Some(p) = self.env.get(ENV_KEY_PASSWORD) {
            return Ok(p.clone());
        }
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(
                "no key passphrase",
                format!("set {ENV_KEY_PASSWORD}, or run in a terminal to be prompted"),
            ));
        }
        rpassword::prompt_password("key passphrase: ").map_err(|e| {
            CliError::new(
                format!("cannot read the passphrase: {e}"),
                format!("set {ENV_KEY_PASSWORD}"),
            )
        })
    }

    /// The `[trust]` section of lineage.toml with its key files loaded (relative to the file).
    pub fn trust_policy(&self) -> Result<lineage_attest::TrustPolicy, CliError> {
        let Some((text, dir)) = &self.config_file else {
            return Ok(lineage_attest::TrustPolicy::default());
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| CliError::new(e.to_string(), "fix lineage.toml"))?;
        let Some(trust) = table.get("trust") else {
            return Ok(lineage_attest::TrustPolicy::default());
        };
        // `from_toml_value` takes the `[trust]` table itself (its `keys`), not the document.
        let config = lineage_attest::TrustConfig::from_toml_value(trust.clone()).map_err(|e| {
            CliError::new(
                format!("lineage.toml: {e}"),
                "see `[[trust.keys]]` in the README",
            )
        })?;
        config
            .resolve(|p| std::fs::read_to_string(dir.join(p)))
            .map_err(|e| {
                CliError::new(
                    format!("lineage.toml: {e}"),
                    "check the `public_key_file` paths (relative to lineage.toml)",
                )
            })
    }
}
