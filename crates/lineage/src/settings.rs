//! Settings resolved once at start-up. Every environment variable Lineage reads is declared
//! here (clap reads `LINEAGE_STORE` and `LINEAGE_CONFIG` through `args`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lineage_core::{ConfigHow, ConfigSource, LineageToml};
use lineage_model::{Identity, Timestamp};
use lineage_store::StoreLocation;

use crate::args::{Cli, ColorChoice, Format, FormatChoice};
use crate::CliError;

/// Who is acting, when no `--by` is given.
pub const ENV_ACTOR: &str = "LINEAGE_ACTOR";
/// Pins "now" to an RFC 3339 time, for reproducible demos, tests and screenshots.
pub const ENV_NOW: &str = "LINEAGE_NOW";
/// The passphrase of encrypted private keys (read here, never logged or echoed).
pub const ENV_KEY_PASSWORD: &str = "LINEAGE_KEY_PASSWORD";
/// The SMTP password for `report stale --email-to` (read here, never logged or echoed).
pub const ENV_SMTP_PASSWORD: &str = "LINEAGE_SMTP_PASSWORD";
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
/// The settings file, when `--config` is not given (clap reads it through `args`; it is named
/// here to tell the two apart in `ConfigSource`).
pub const ENV_CONFIG: &str = "LINEAGE_CONFIG";
/// Default ledger location, relative to the working directory.
pub const DEFAULT_STORE: &str = ".lineage/lineage.db";

pub struct Settings {
    pub store: StoreLocation,
    /// Whether the ledger location was given (flag or LINEAGE_STORE) rather than defaulted.
    pub store_explicit: bool,
    /// `lineage.toml`, parsed once: every section, checked. Commands take their section from
    /// here, never from the text.
    pub toml: LineageToml,
    /// The file's text, kept only to ship it verbatim (`serve k8s` puts it in a ConfigMap).
    /// Never parsed again: `LineageToml::parse` in `load_config` is the one parse (a test in
    /// lineage-toml holds the workspace to that).
    pub config_text: Option<String>,
    /// How long a registry may take to connect and to answer one request.
    pub registry_timeout: std::time::Duration,
    /// The settings file's directory, when there is a file: relative `public_key_file` paths
    /// and `policies/` are found from it.
    pub config_dir: Option<PathBuf>,
    /// The settings file's path as given (or, when discovered, relative to the working
    /// directory: `lineage.toml`, `../lineage.toml`), for `file:line:col` in errors.
    pub config_path: Option<PathBuf>,
    /// Which settings file and policy directory were read, and how the file was chosen; every
    /// judging command reports it.
    pub config_source: ConfigSource,
    pub format: Format,
    /// `--format` as given: commands with formats of their own (the gates' SARIF, the stale
    /// report's Markdown) read this; everything else prints `format`.
    pub format_choice: FormatChoice,
    /// Whether to colour output: `--color`, else on a terminal unless NO_COLOR is set. Decided
    /// per stream by [`Settings::colour`].
    pub color: ColorChoice,
    /// `--quiet`: no progress bars.
    pub quiet: bool,
    /// `--server URL`: a Lineage server to send commands to instead of the local ledger.
    pub server: Option<String>,
    pub now: Timestamp,
    /// The process environment, captured once; CI detection reads it from here.
    pub env: BTreeMap<String, String>,
}

/// Seconds a registry may take, when neither `--registry-timeout` nor lineage.toml says.
pub const DEFAULT_REGISTRY_TIMEOUT: u64 = 30;

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
        let loaded = load_config(cli.config.as_deref(), &env)?;
        let registry_timeout = cli
            .registry_timeout
            .or(loaded.toml.registry_timeout)
            .unwrap_or(DEFAULT_REGISTRY_TIMEOUT);
        Ok(Settings {
            registry_timeout: std::time::Duration::from_secs(registry_timeout),
            store_explicit: cli.store.is_some(),
            store,
            toml: loaded.toml,
            config_text: loaded.text,
            config_path: loaded.path,
            config_dir: loaded.dir,
            config_source: loaded.source,
            format: cli.format.base(),
            format_choice: cli.format,
            color: cli.color,
            quiet: cli.quiet,
            server: cli.command.server().map(str::to_string),
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

/// The settings as loaded: the parsed file, its directory, the path to show in errors, and
/// where it all came from.
struct Loaded {
    toml: LineageToml,
    text: Option<String>,
    dir: Option<PathBuf>,
    path: Option<PathBuf>,
    source: ConfigSource,
}

/// Finds the settings file (`--config`, LINEAGE_CONFIG, else the nearest `lineage.toml` from
/// the working directory up to the repository root) and parses it, once, into every section
/// ([`LineageToml::parse`]: names first, then each section's values).
fn load_config(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<Loaded, CliError> {
    let cwd = std::env::current_dir().map_err(|e| {
        CliError::new(
            format!("cannot read the working directory: {e}"),
            "run lineage from an existing directory, or pass `--config PATH`",
        )
    })?;
    let (source, path) = match explicit {
        Some(p) => {
            // clap fills `--config` from LINEAGE_CONFIG; the same value there means it came
            // from the environment (or both said the same, which names the same file).
            let how = if env.get(ENV_CONFIG).map(Path::new) == Some(p) {
                ConfigHow::Env
            } else {
                ConfigHow::Flag
            };
            (ConfigSource::given(p, how, &cwd), p.to_path_buf())
        }
        None => {
            let source = ConfigSource::discover(&cwd);
            let Some(file) = &source.file else {
                return Ok(Loaded {
                    toml: LineageToml::default(),
                    text: None,
                    dir: None,
                    path: None,
                    source,
                });
            };
            let shown = relative_to(file, &cwd);
            (source, shown)
        }
    };
    // lineage.toml is small; 1 MiB is generous and keeps a wrong `--config /dev/zero` cheap.
    let text = crate::input::read_text(&path, 1 << 20).map_err(|e| {
        CliError::new(
            format!("settings file: {}", e.message),
            "pass an existing file with `--config`, or remove the flag to use the defaults",
        )
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let toml = LineageToml::parse(&text, &path.display().to_string(), &dir)?;
    Ok(Loaded {
        toml,
        text: Some(text),
        dir: Some(dir),
        path: Some(path),
        source,
    })
}

/// `file` (found in `cwd` or one of its parents) as a path relative to `cwd`, so paths in
/// messages stay short: `lineage.toml`, `../../lineage.toml`.
fn relative_to(file: &Path, cwd: &Path) -> PathBuf {
    let Some(dir) = file.parent() else {
        return file.to_path_buf();
    };
    match cwd.strip_prefix(dir) {
        Ok(below) => {
            let mut rel: PathBuf = below.components().map(|_| "..").collect();
            rel.push(file.file_name().unwrap_or_default());
            rel
        }
        Err(_) => file.to_path_buf(),
    }
}

impl Settings {
    /// Whether to colour what goes to a stream that is (or is not) a terminal: `--color
    /// always|never` decide; `auto` colours a terminal unless NO_COLOR is set (no-color.org).
    pub fn colour(&self, terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !self.env.contains_key(ENV_NO_COLOR),
        }
    }

    /// Whether progress bars may be drawn on stderr: a terminal, not `--quiet`, not JSON.
    pub fn progress(&self) -> bool {
        use std::io::IsTerminal;
        !self.quiet && self.format == Format::Human && std::io::stderr().is_terminal()
    }

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
        let dir = self.config_dir.as_deref().unwrap_or(Path::new("."));
        self.toml
            .trust
            .clone()
            .resolve(|p| std::fs::read_to_string(dir.join(p)))
            .map_err(|e| {
                CliError::new(
                    e.to_string(),
                    "check the `public_key_file` paths (relative to lineage.toml)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_file_is_shown_relative_to_the_working_directory() {
        let file = Path::new("/repo/lineage.toml");
        assert_eq!(
            relative_to(file, Path::new("/repo")),
            Path::new("lineage.toml")
        );
        assert_eq!(
            relative_to(file, Path::new("/repo/svc/api")),
            Path::new("../../lineage.toml")
        );
        assert_eq!(relative_to(file, Path::new("/elsewhere")), file);
    }
}
