//! `lineage.toml`: the project's settings, parsed once into one [`LineageToml`] that owns every
//! section as a checked value. [`Config`] is the part every use case needs (`[environments]`,
//! `[vulns]`, `[promotion]`); the other sections are read by the crate or module that owns them
//! (`lineage-policy`, `lineage-attest`, [`crate::ledger_log`], [`crate::admission`]) from the
//! same parsed document.

use std::path::Path;

use lineage_attest::TrustConfig;
use lineage_model::EnvName;
use lineage_policy::PolicyConfig;
use lineage_toml::{value, ConfigError, Document, Entry, Field, Shape, Table};

use crate::admission::AdmissionConfig;
use crate::ledger_log::LogSettings;
use crate::Error;

/// Everything `lineage.toml` says, each section checked. Made once per process by
/// [`LineageToml::parse`] (the only reader of the file's text); every front end takes its
/// sections from this value, never from the text. `LineageToml::default()` is the file's
/// absence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineageToml {
    /// `[environments]`, `[vulns]` and `[promotion]`.
    pub config: Config,
    /// `[rules]`, `[allowlist]`, `[gates]` and `[exceptions]`: the gates' policy.
    pub policy: PolicyConfig,
    /// `[trust]`, before its key files are read (`TrustConfig::resolve`, by the caller).
    pub trust: TrustConfig,
    /// `[log]`, with paths relative to the file's directory made absolute against it.
    pub log: LogSettings,
    /// `[admission]`.
    pub admission: AdmissionConfig,
    /// `[registry] timeout`: seconds a registry may take, when the command line does not say.
    pub registry_timeout: Option<u64>,
}

impl LineageToml {
    /// Parses `text`, the contents of `file` (the name errors show), found in `dir` (the base
    /// of relative paths): once, with one TOML parser. Names are checked first, against the one
    /// schema of every section and key ([`crate::config_keys`]), so a misspelt section never
    /// falls back to defaults; then each section is read and checked. Every error is at
    /// `file:line:column`.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<LineageToml, Error> {
        let doc = Document::parse(text, file)?;
        crate::config_keys::check_keys(&doc)?;
        let config = Config::from_document(&doc)?;
        Ok(LineageToml {
            policy: PolicyConfig::from_document(&doc)?,
            trust: TrustConfig::from_document(&doc, Some(&config.environments))?,
            log: LogSettings::from_document(&doc, dir)?,
            admission: AdmissionConfig::from_document(&doc, &config)?,
            registry_timeout: registry_timeout(&doc)?,
            config,
        })
    }
}

/// The keys of the sections read here, one list each: the readers below and the
/// whole-document check (`config_keys`) both hold the file to them.
pub(crate) const ENVIRONMENTS: Field = Field {
    name: "environments",
    shape: Shape::Table(&[value("names"), value("production")]),
};
pub(crate) const REGISTRY: Field = Field {
    name: "registry",
    shape: Shape::Table(&[value("timeout")]),
};
pub(crate) const VULNS: Field = Field {
    name: "vulns",
    shape: Shape::Table(&[value("max_age")]),
};
pub(crate) const PROMOTION: Field = Field {
    name: "promotion",
    shape: Shape::Table(&[
        value("path"),
        Field {
            name: "soak_minutes",
            shape: Shape::Map(&Shape::Value),
        },
        value("require_healthy"),
    ]),
};

/// `[registry] timeout`: a whole number of seconds from 1 to 3600.
fn registry_timeout(doc: &Document) -> Result<Option<u64>, ConfigError> {
    let Some(section) = doc.section("registry") else {
        return Ok(None);
    };
    let table = section.table()?;
    table.deny_unknown_fields(REGISTRY.keys())?;
    let Some(entry) = table.get("timeout") else {
        return Ok(None);
    };
    match entry.integer("30")? {
        n @ 1..=3600 => Ok(Some(n as u64)),
        _ => Err(entry.error(
            format!("`[registry] timeout` is `{}`", entry.written()),
            "write a whole number of seconds from 1 to 3600, e.g. `timeout = 30`",
        )),
    }
}

/// Environments when `lineage.toml` names none.
pub const DEFAULT_ENVIRONMENTS: [&str; 3] = ["dev", "staging", "production"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Configured environments, in promotion order (the last ones matter most).
    pub environments: Vec<EnvName>,
    /// The environments that count as production for gates and report ordering.
    pub production: Vec<EnvName>,
    /// `[vulns]`: how old a scan of a running production digest may be.
    pub vulns: crate::vulns::VulnsConfig,
    /// `[promotion]`: the path a digest takes to production (rule D014); none when the
    /// section is absent.
    pub promotion: Option<Promotion>,
}

/// `[promotion]`: each environment on the path takes only digests that ran in the one before
/// it, for at least its soak time, and (with `require_healthy`) were recorded healthy there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// In order; at least two environments, each once.
    pub path: Vec<EnvName>,
    /// Minutes a digest must have run in an environment before it may go to the next one.
    pub soak_minutes: std::collections::BTreeMap<EnvName, u64>,
    /// Whether the previous environment must have a `healthy` outcome recorded.
    pub require_healthy: bool,
}

impl Promotion {
    /// The environment a digest must come from to reach `env`, if `env` is on the path
    /// after its first step.
    pub fn previous(&self, env: &EnvName) -> Option<&EnvName> {
        let i = self.path.iter().position(|e| e == env)?;
        i.checked_sub(1).map(|p| &self.path[p])
    }
}

impl Default for Config {
    fn default() -> Config {
        let environments: Vec<EnvName> = DEFAULT_ENVIRONMENTS
            .iter()
            .map(|e| EnvName::parse(e).expect("default names are valid"))
            .collect();
        Config {
            production: vec![environments[2].clone()],
            environments,
            vulns: crate::vulns::VulnsConfig::default(),
            promotion: None,
        }
    }
}

impl Config {
    /// Parses `[environments]`, `[vulns]` and `[promotion]` of a standalone `lineage.toml`
    /// text (tests, tools); `file` names it in errors. Lineage itself reads the file once,
    /// through [`LineageToml::parse`].
    pub fn from_toml(text: &str, file: &str) -> Result<Config, Error> {
        Ok(Config::from_document(&Document::parse(text, file)?)?)
    }

    /// Reads `[environments]`, `[vulns]` and `[promotion]`.
    pub fn from_document(doc: &Document) -> Result<Config, ConfigError> {
        let mut config = match doc.section("environments") {
            None => Config::default(),
            Some(section) => Config::environments_from(&section.table()?)?,
        };
        if let Some(section) = doc.section("vulns") {
            let table = section.table()?;
            table.deny_unknown_fields(VULNS.keys())?;
            if let Some(entry) = table.get("max_age") {
                config.vulns = crate::vulns::VulnsConfig::parse_max_age(&entry.scalar()).map_err(
                    |message| {
                        entry.error(
                            format!("`vulns.max_age` is `{}`: {message}", entry.written()),
                            "write `max_age = \"7d\"` (days) or `max_age = \"36h\"` (hours)",
                        )
                    },
                )?;
            }
        }
        if let Some(section) = doc.section("promotion") {
            config.promotion = Some(config.promotion_from(&section.table()?)?);
        }
        Ok(config)
    }

    /// `[promotion]`, checked against the configured environments.
    fn promotion_from(&self, table: &Table) -> Result<Promotion, ConfigError> {
        table.deny_unknown_fields(PROMOTION.keys())?;
        let names: Vec<&str> = self.environments.iter().map(|e| e.as_str()).collect();
        let configured = |name: &str, at: &Entry| -> Result<EnvName, ConfigError> {
            let found = EnvName::parse(name)
                .ok()
                .filter(|e| self.environments.contains(e));
            found.ok_or_else(|| {
                at.error(
                    format!(
                        "`{name}` in `[promotion]` is not a configured environment (configured: {})",
                        names.join(", ")
                    ),
                    match closest(name, &names) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => "name environments listed in `[environments] names`".into(),
                    },
                )
            })
        };
        let example = "[\"staging\", \"production\"]";
        let path = match table.get("path") {
            None => self.environments.clone(),
            Some(list) => {
                let mut path = Vec::new();
                for (name, at) in list.strings(example)? {
                    let env = configured(name, &at)?;
                    if path.contains(&env) {
                        return Err(at.error(
                            format!("`{env}` appears twice in `[promotion] path`: a path cannot go back to an environment (a cycle)"),
                            format!("list each environment once, in order: `path = {example}`"),
                        ));
                    }
                    path.push(env);
                }
                if path.len() < 2 {
                    return Err(list.error(
                        format!("`[promotion] path` is `{}`; it needs at least two environments, e.g. `{example}`", list.written()),
                        format!("write `path = {example}`"),
                    ));
                }
                path
            }
        };
        let mut soak_minutes = std::collections::BTreeMap::new();
        if let Some(soak) = table.get("soak_minutes") {
            for entry in soak.table()?.entries() {
                let env = configured(entry.key(), &entry)?;
                if path.last() == Some(&env) || !path.contains(&env) {
                    return Err(entry.key_error(
                        format!("`soak_minutes` names `{env}`, which promotes to no later environment on the path; a soak time belongs to an environment a digest leaves"),
                        "give soak times only to environments a digest is promoted from",
                    ));
                }
                let m = entry.integer("60")?;
                if !(0..=525_600).contains(&m) {
                    return Err(entry.error(
                        format!(
                            "`soak_minutes` for `{env}` is {m}; give 0 to 525600 minutes (a year)"
                        ),
                        format!("write `{env} = 60`"),
                    ));
                }
                soak_minutes.insert(env, m as u64);
            }
        }
        let require_healthy = match table.get("require_healthy") {
            Some(entry) => entry.bool()?,
            None => false,
        };
        Ok(Promotion {
            path,
            soak_minutes,
            require_healthy,
        })
    }

    fn environments_from(table: &Table) -> Result<Config, ConfigError> {
        table.deny_unknown_fields(ENVIRONMENTS.keys())?;
        let example = "[\"dev\", \"staging\", \"production\"]";
        let Some(names) = table.get("names") else {
            return Err(table.error(
                "`[environments]` has no `names`",
                format!("write `names = {example}`"),
            ));
        };
        let mut environments = Vec::new();
        for (name, at) in names.strings(example)? {
            let env = EnvName::parse(name).map_err(|e| at.error(e.to_string(), e.hint.clone()))?;
            if environments.contains(&env) {
                return Err(at.error(
                    format!("environment `{env}` is listed twice"),
                    "list each environment once",
                ));
            }
            environments.push(env);
        }
        if environments.is_empty() {
            return Err(names.error(
                "`environments.names` is empty; name at least one environment",
                format!("write `names = {example}`"),
            ));
        }
        let production = match table.get("production") {
            None => environments
                .iter()
                .filter(|e| e.as_str() == "production")
                .cloned()
                .collect(),
            Some(list) => {
                let mut out = Vec::new();
                for (name, at) in list.strings("[\"production\"]")? {
                    match environments.iter().find(|e| e.as_str() == name) {
                        Some(env) => out.push(env.clone()),
                        None => {
                            return Err(at.error(
                                format!(
                                    "`{name}` is listed as production but is not in `environments.names`"
                                ),
                                "add it to `names`, or list only environments named there",
                            ));
                        }
                    }
                }
                out
            }
        };
        Ok(Config {
            environments,
            production,
            vulns: crate::vulns::VulnsConfig::default(),
            promotion: None,
        })
    }

    pub fn is_production(&self, env: &EnvName) -> bool {
        self.production.contains(env)
    }

    /// Checks that `input` names a configured environment, suggesting the closest one if not.
    pub fn environment(&self, input: &str) -> Result<EnvName, Error> {
        let env = EnvName::parse(input).map_err(|e| Error::Parse(e.in_field("environment")))?;
        if self.environments.contains(&env) {
            return Ok(env);
        }
        let names: Vec<&str> = self.environments.iter().map(|e| e.as_str()).collect();
        Err(Error::UnknownEnvironment {
            given: input.to_string(),
            suggestion: closest(input, &names).map(str::to_string),
            configured: names.join(", "),
        })
    }

    /// Sorts environments the way reports show them: production first, then in reverse
    /// promotion order.
    pub fn env_rank(&self, env: &EnvName) -> usize {
        if self.is_production(env) {
            return 0;
        }
        match self.environments.iter().position(|e| e == env) {
            Some(i) => 1 + (self.environments.len() - i),
            None => usize::MAX,
        }
    }
}

pub use lineage_model::closest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_custom_environments() {
        let c = Config::from_toml("", "lineage.toml").unwrap();
        assert_eq!(c, Config::default());
        let c = Config::from_toml(
            "[environments]\nnames = [\"dev\", \"staging\", \"production\", \"customer-eu\"]\nproduction = [\"production\", \"customer-eu\"]\n",
            "lineage.toml",
        )
        .unwrap();
        assert_eq!(c.environments.len(), 4);
        assert!(c.is_production(&EnvName::parse("customer-eu").unwrap()));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = Config::from_toml(
            "[environments]\nnames = [\"dev\", \"Prod\"]\n",
            "lineage.toml",
        )
        .unwrap_err();
        match err {
            Error::Config(e) => assert_eq!((e.line, e.column), (2, 17)),
            other => panic!("{other:?}"),
        }
        // An unterminated array is reported where the `]` is missing: the end of the file.
        let err = Config::from_toml("[environments]\nnames = [\"dev\"\n", "x.toml").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref e) if e.line == 3),
            "{err:?}"
        );
        let err =
            Config::from_toml("[environments]\nnames=[\"a\"]\nextra = 1\n", "x.toml").unwrap_err();
        assert!(
            matches!(err, Error::Config(ref e) if e.line == 3),
            "{err:?}"
        );
    }

    #[test]
    fn suggests_the_closest_environment() {
        let c = Config::default();
        match c.environment("prod").unwrap_err() {
            Error::UnknownEnvironment { suggestion, .. } => {
                assert_eq!(suggestion.as_deref(), Some("production"))
            }
            other => panic!("{other:?}"),
        }
        match c.environment("stagin").unwrap_err() {
            Error::UnknownEnvironment { suggestion, .. } => {
                assert_eq!(suggestion.as_deref(), Some("staging"))
            }
            other => panic!("{other:?}"),
        }
        match c.environment("stgaing").unwrap_err() {
            Error::UnknownEnvironment { suggestion, .. } => {
                assert_eq!(suggestion.as_deref(), Some("staging"))
            }
            other => panic!("{other:?}"),
        }
        match c.environment("qa").unwrap_err() {
            Error::UnknownEnvironment { suggestion, .. } => assert_eq!(suggestion, None),
            other => panic!("{other:?}"),
        }
    }

    /// `LineageToml::parse` of `text` as `line:col: message; hint: hint`, or `ok`.
    fn load(text: &str) -> String {
        match LineageToml::parse(text, "lineage.toml", Path::new("/etc/lineage")) {
            Ok(_) => "ok".into(),
            Err(Error::Config(e)) => format!(
                "{}:{}: {}; hint: {}",
                e.line,
                e.column,
                e.message,
                e.hint.unwrap_or_default()
            ),
            Err(other) => format!("not a config error: {other}"),
        }
    }

    /// Each text loads to its expected result; an expectation ending in `…` is a prefix.
    fn check(cases: &[(&str, &str)]) {
        let mut wrong = Vec::new();
        for (text, expect) in cases {
            let got = load(text);
            let ok = match expect.strip_suffix('…') {
                Some(prefix) => got.starts_with(prefix),
                None => got == *expect,
            };
            if !ok {
                wrong.push(format!("{text}\n  expected: {expect}\n  got:      {got}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// Every section of the file, written in full: one parse gives each its checked value.
    #[test]
    fn one_parse_reads_every_section() {
        let text = r#"
[environments]
names = ["dev", "staging", "production"]
[vulns]
max_age = "36h"
[promotion]
path = ["staging", "production"]
soak_minutes = { staging = 30 }
[rules]
B004 = "warn"
[allowlist]
registries = ["registry.acme.dev"]
[gates]
approvals = "recorded"
[exceptions]
max_days = 30
[[trust.keys]]
id = "ci"
public_key_file = "keys/ci.pub"
roles = ["builder"]
environments = ["production"]
not_before = 2026-01-01T00:00:00Z
[log]
origin = "ci.acme.dev/ledger"
key = "log.key"
[registry]
timeout = 5
[admission]
namespaces = { prod = "production" }
mode = "audit"
"#;
        let t = LineageToml::parse(text, "lineage.toml", Path::new("/etc/lineage")).unwrap();
        assert_eq!(t.config.vulns.max_age, "36h");
        assert_eq!(t.config.promotion.unwrap().soak_minutes.len(), 1);
        assert_eq!(t.policy.rules.len(), 1);
        assert_eq!(t.policy.allowlist.registries, ["registry.acme.dev"]);
        assert_eq!(
            t.policy.gates.approvals,
            lineage_policy::Approvals::Recorded
        );
        assert_eq!(t.policy.exceptions.max_days, 30);
        let key = &t.trust.keys[0];
        assert_eq!((key.id.as_str(), key.environments.len()), ("ci", 1));
        assert_eq!(key.not_before.unwrap().to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(key.at.as_ref().unwrap().to_string(), "lineage.toml:19:19");
        assert_eq!(t.log.origin, "ci.acme.dev/ledger");
        assert_eq!(t.log.key, Some(Path::new("/etc/lineage/log.key").into()));
        assert_eq!(t.registry_timeout, Some(5));
        assert_eq!(t.admission.mode, crate::admission::Mode::Audit);
        assert_eq!(t.admission.namespaces.len(), 1);
        assert_eq!(
            LineageToml::parse("", "lineage.toml", Path::new(".")).unwrap(),
            LineageToml::default()
        );
    }

    /// A bad value in any section is an error at its `line:column`, naming the key and the
    /// value as written, with the right form in the hint.
    #[test]
    fn a_bad_value_in_every_section_is_at_its_line_and_column() {
        check(&[
            ("[environments]\nnames = [\"dev\", 3]\n", "2:17: `environments.names` holds `3`, which is not a string; hint: write `names = [\"dev\", \"staging\", \"production\"]`"),
            ("[environments]\nnames = [\"dev\"]\nproduction = [\"prod\"]\n", "3:15: `prod` is listed as production but is not in `environments.names`; hint: add it to `names`, or list only environments named there"),
            ("[vulns]\nmax_age = \"7w\"\n", "2:11: `vulns.max_age` is `\"7w\"`: `max_age` must be a number of days (`7`) or a duration such as `\"7d\"` or `\"36h\"`; hint: write `max_age = \"7d\"` (days) or `max_age = \"36h\"` (hours)"),
            ("[promotion]\npath = [\"dev\", \"prodution\"]\n", "2:16: `prodution` in `[promotion]` is not a configured environment (configured: dev, staging, production); hint: did you mean `production`?"),
            ("[promotion]\nsoak_minutes = { dev = -1 }\n", "2:24: `soak_minutes` for `dev` is -1; give 0 to 525600 minutes (a year); hint: write `dev = 60`"),
            ("[promotion]\nrequire_healthy = \"yes\"\n", "2:19: `promotion.require_healthy` is `\"yes\"`, not true or false; hint: write `require_healthy = true`"),
            ("[rules]\nB004 = \"loud\"\n", "2:8: severity `loud` for `B004` is not one of error, warn, off; hint: write `B004 = \"warn\"`"),
            ("[rules]\nB099 = \"off\"\n", "2:1: unknown rule `B099`; valid rules are: B001 (final-digest-missing), …"),
            ("[allowlist]\nregistries = \"registry.acme.dev\"\n", "2:14: `allowlist.registries` is `\"registry.acme.dev\"`, not a list; hint: write `registries = [\"registry.example.com\"]`"),
            ("[allowlist]\nbase_images = [\"debian\", \"Not Valid\"]\n", "2:26: allowlist entry `Not Valid`: contains whitespace or a control character (\' \'); hint: write a repository such as `docker.io/library/debian` or a prefix such as `gcr.io/distroless/*`"),
            ("[gates]\nfour_eyes = \"sometimes\"\n", "2:13: `four_eyes = \"sometimes\"` is not one of off, production, all; hint: write `four_eyes = \"production\"`"),
            ("[gates]\nstale_base_days = \"30\"\n", "2:19: `gates.stale_base_days` is `\"30\"`, not a whole number; hint: write `stale_base_days = 30`"),
            ("[gates.environments.staging]\nfour_eyes = \"yes\"\n", "2:13: `gates.environments.staging.four_eyes` is `\"yes\"`, not true or false; hint: write `four_eyes = true`"),
            ("[exceptions]\nmax_days = 0\n", "2:12: `exceptions.max_days` is `0`; it must be a whole number of days from 1 to 3650; hint: write `max_days = 30`"),
            ("[exceptions.approvers]\nD004 = [\"sec@acme.dev\", \"not an id\"]\n", "2:25: `exceptions.approvers.D004`: identity `not an id` contains whitespace; hint: write an email (`maya@acme.dev`), a handle (`maya`), or a service account (`sa:deploy-bot`)"),
            ("[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"k.pub\"\nroles = [\"builder\"]\nenvironments = [\"prodution\"]\n", "5:17: trust key `ci`: environment `prodution` is not configured; hint: did you mean `production`? configured environments: dev, staging, production"),
            ("[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"k.pub\"\nroles = [\"builder\"]\nrevoked_at = \"yesterday\"\n", "5:14: trust key `ci`: `revoked_at` is `\"yesterday\"`: has no time zone; hint: write `revoked_at = \"2026-01-01T00:00:00Z\"`"),
            ("[[trust.keys]]\nid = \"ci\"\nroles = [\"builder\"]\n", "1:1: trust key `ci`: `public_key_file` is missing; hint: write `public_key_file = \"keys/ci.pub\"`"),
            ("[log]\norigin = \"a b\"\n", "2:10: `log.origin` `a b` must be non-empty, without spaces or `+` (e.g. `lineage.acme.dev/ledger`); hint: write `origin = \"lineage.acme.dev/ledger\"`: a host and path naming this ledger"),
            ("[log]\nkey = 3\n", "2:7: `log.key` is `3`, not a string; hint: write `key = \"/etc/lineage/log.key\"`"),
            ("[registry]\ntimeout = 7200\n", "2:11: `[registry] timeout` is `7200`; hint: write a whole number of seconds from 1 to 3600, e.g. `timeout = 30`"),
            ("[admission]\nnamespaces = { prod = \"prodution\" }\n", "2:23: `admission.namespaces.prod`: environment `prodution` is not configured; hint: did you mean `production`? configured environments: dev, staging, production"),
            ("[admission]\nallow = [\"nginx\"]\n", "2:10: `admission.allow`: `nginx` has no `@`: only pinned images can be allowed; …"),
            ("[admission]\nobserve = 1\n", "2:11: `admission.observe` is `1`, not true or false; hint: write `observe = true`"),
            ("[environments]\nnames = [\"dev\"\n", "3:1: invalid array…"),
        ]);
    }

    /// An unknown name in any section is refused at its `line:column` with the closest name.
    #[test]
    fn an_unknown_key_in_every_section_names_the_closest() {
        check(&[
            ("[enviroments]\nnames = [\"dev\"]\n", "1:2: unknown section `[enviroments]`; hint: did you mean `[environments]`?"),
            ("[environments]\nname = [\"dev\"]\n", "2:1: unknown key `name` in `[environments]`; hint: did you mean `names`?"),
            ("[vulns]\nmaxage = 3\n", "2:1: unknown key `maxage` in `[vulns]`; hint: did you mean `max_age`?"),
            ("[promotion]\nsoak_minute = 5\n", "2:1: unknown key `soak_minute` in `[promotion]`; hint: did you mean `soak_minutes`?"),
            ("[rules]\nB04 = \"off\"\n", "2:1: unknown rule `B04`; valid rules are: …"),
            ("[allowlist]\nregistry = [\"a.dev\"]\n", "2:1: unknown key `registry` in `[allowlist]`; hint: did you mean `registries`?"),
            ("[gates]\napprover = \"all\"\n", "2:1: unknown key `approver` in `[gates]`; hint: did you mean `approval`?"),
            ("[gates.environments.dev]\napprovals = true\n", "2:1: unknown key `approvals` in `[gates.environments.dev]`; hint: did you mean `approval`?"),
            ("[exceptions]\napprover = { \"*\" = [\"a@b.dev\"] }\n", "2:1: unknown key `approver` in `[exceptions]`; hint: did you mean `approvers`?"),
            ("[trust]\nkey = []\n", "2:1: unknown key `key` in `[trust]`; hint: did you mean `keys`?"),
            ("[[trust.keys]]\nid = \"ci\"\nrole = [\"builder\"]\n", "3:1: unknown key `role` in `[[trust.keys]]`; hint: did you mean `roles`?"),
            ("[log]\ncheckpoint_dirs = \"w\"\n", "2:1: unknown key `checkpoint_dirs` in `[log]`; hint: did you mean `checkpoint_dir`?"),
            ("[registry]\ntimeouts = 3\n", "2:1: unknown key `timeouts` in `[registry]`; hint: did you mean `timeout`?"),
            ("[admission]\nobserved = true\n", "2:1: unknown key `observed` in `[admission]`; hint: did you mean `observe`?"),
            ("admision.mode = \"audit\"\n", "1:1: unknown top-level key `admision`; hint: did you mean `[admission]`?"),
        ]);
    }
}
