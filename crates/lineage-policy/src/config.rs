//! The sections of `lineage.toml` this crate owns: `[rules]`, `[allowlist]` and `[gates]`.
//!
//! They are read from the one parsed `lineage.toml` ([`lineage_toml::Document`]), so every error
//! points at `file:line:column`. Sections owned by other parts of Lineage (`[environments]`,
//! `[trust]`, `[log]`, ...) are skipped without a look: this crate must not reject a file
//! because another crate grew a setting. Inside its own sections it is strict, because a
//! misspelt severity or rule silently weakens a gate.
//!
//! ```toml
//! [rules]
//! B004 = "warn"                      # by code ...
//! shared-ci-job = "off"              # ... or by name
//! [rules.production]                 # any environment the caller marks as production
//! B004 = "error"
//! [rules.staging]                    # one environment by name
//! D005 = "error"
//!
//! [allowlist]
//! registries = ["registry.acme.dev"]
//! base_images = ["docker.io/library/debian", "gcr.io/distroless/*"]
//!
//! [gates]
//! four_eyes = "production"           # off | production | all
//! approval = "production"            # off | production | all
//! [gates.environments.staging]
//! four_eyes = true
//! ```

use std::collections::BTreeMap;

use lineage_toml::{value, Document, Entry, Field, Shape, Table};

use crate::rules::{valid_rule_list, RuleId, Severity};

/// A `lineage.toml` that could not be used, with where and why (one error type for every
/// section of the file).
pub use lineage_toml::ConfigError;

/// Where a rule applies with respect to environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    Off,
    #[default]
    Production,
    All,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "off" => Some(Scope::Off),
            "production" => Some(Scope::Production),
            "all" => Some(Scope::All),
            _ => None,
        }
    }

    fn applies(self, production: bool) -> bool {
        match self {
            Scope::Off => false,
            Scope::Production => production,
            Scope::All => true,
        }
    }
}

/// `[allowlist]`: which base images may be built on. Empty lists mean "no allowlist".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Registry hosts, e.g. `registry.acme.dev`; every repository in them is allowed.
    pub registries: Vec<String>,
    /// Repositories (`docker.io/library/debian`) or prefixes ending in `/*`
    /// (`gcr.io/distroless/*`).
    pub base_images: Vec<String>,
}

impl Allowlist {
    pub fn is_empty(&self) -> bool {
        self.registries.is_empty() && self.base_images.is_empty()
    }

    /// Whether a normalised repository (`registry/path`) is allowed.
    pub fn allows(&self, registry: &str, repository: &str) -> bool {
        self.registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(registry))
            || self
                .base_images
                .iter()
                .any(|pattern| match pattern.strip_suffix("/*") {
                    Some(prefix) => repository
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/')),
                    None => pattern == repository,
                })
    }
}

/// Per-environment overrides in `[gates.environments.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvGates {
    pub four_eyes: Option<bool>,
    pub approval: Option<bool>,
}

/// What counts as an approval for rules D003 and D004.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approvals {
    /// The deployer names the approver (`--approved-by`): a claim, enough for a laptop
    /// ledger or a team that trusts its deploy jobs.
    #[default]
    Declared,
    /// Only approvals recorded by the approver themselves (`lineage approve`, `POST
    /// /api/v1/approvals`) count; four-eyes then rests on two authenticated acts.
    Recorded,
}

/// Days a final base may stay behind a newer digest of its tag before rule D012 speaks.
pub const DEFAULT_STALE_BASE_DAYS: i64 = 30;

/// `[gates]`: which deploy checks apply where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gates {
    /// D004: the approver must not be the deployer. Production by default.
    pub four_eyes: Scope,
    /// D003: an approver is required. Production by default.
    pub approval: Scope,
    pub approvals: Approvals,
    /// D012: days behind before a stale base is reported.
    pub stale_base_days: i64,
    pub environments: BTreeMap<String, EnvGates>,
}

impl Default for Gates {
    fn default() -> Gates {
        Gates {
            four_eyes: Scope::default(),
            approval: Scope::default(),
            approvals: Approvals::default(),
            stale_base_days: DEFAULT_STALE_BASE_DAYS,
            environments: BTreeMap::new(),
        }
    }
}

/// The longest an exception may last when `[exceptions] max_days` is not set.
pub const DEFAULT_EXCEPTION_MAX_DAYS: i64 = 90;

/// `[exceptions]`: who may waive what, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRules {
    /// An exception may not expire later than this many days after it is recorded.
    pub max_days: i64,
    /// Rule code (or `*`) → the only identities who may approve an exception for it.
    pub approvers: BTreeMap<String, Vec<String>>,
}

impl Default for ExceptionRules {
    fn default() -> ExceptionRules {
        ExceptionRules {
            max_days: DEFAULT_EXCEPTION_MAX_DAYS,
            approvers: BTreeMap::new(),
        }
    }
}

impl ExceptionRules {
    /// Who may approve an exception for `code`: the rule's own list, else the `*` list;
    /// `None` when anyone (but the requester) may.
    pub fn approvers_for(&self, code: &str) -> Option<&[String]> {
        self.approvers
            .get(code)
            .or_else(|| self.approvers.get("*"))
            .map(Vec::as_slice)
    }
}

impl Gates {
    pub fn four_eyes_applies(&self, env: Option<&str>, production: bool) -> bool {
        env.and_then(|e| self.environments.get(e))
            .and_then(|g| g.four_eyes)
            .unwrap_or_else(|| self.four_eyes.applies(production))
    }

    pub fn approval_applies(&self, env: Option<&str>, production: bool) -> bool {
        env.and_then(|e| self.environments.get(e))
            .and_then(|g| g.approval)
            .unwrap_or_else(|| self.approval.applies(production))
    }
}

/// The validated policy part of `lineage.toml`. `PolicyConfig::default()` is the policy with
/// no file: every rule at its default severity, no allowlist, four-eyes in production.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `[rules]` top-level entries.
    pub rules: BTreeMap<RuleId, Severity>,
    /// `[rules.ENV]` entries; the key `production` also applies to every environment the
    /// caller marks as production.
    pub rules_by_env: BTreeMap<String, BTreeMap<RuleId, Severity>>,
    pub allowlist: Allowlist,
    pub gates: Gates,
    pub exceptions: ExceptionRules,
}

impl PolicyConfig {
    /// Parses and validates the policy sections of a standalone `lineage.toml` text (tests,
    /// tools); `file_name` is only used in error messages. Lineage itself reads the file once
    /// (`lineage_core::LineageToml`) and calls [`PolicyConfig::from_document`].
    pub fn from_toml(text: &str, file_name: &str) -> Result<PolicyConfig, ConfigError> {
        PolicyConfig::from_document(&Document::parse(text, file_name)?)
    }

    /// Reads and validates `[rules]`, `[allowlist]`, `[gates]` and `[exceptions]`.
    pub fn from_document(doc: &Document) -> Result<PolicyConfig, ConfigError> {
        let mut config = PolicyConfig::default();
        if let Some(rules) = doc.section("rules") {
            read_rules(&rules.table()?, &mut config)?;
        }
        if let Some(allowlist) = doc.section("allowlist") {
            read_allowlist(&allowlist.table()?, &mut config.allowlist)?;
        }
        if let Some(gates) = doc.section("gates") {
            read_gates(&gates.table()?, &mut config.gates)?;
        }
        if let Some(exceptions) = doc.section("exceptions") {
            read_exceptions(&exceptions.table()?, &mut config.exceptions)?;
        }
        Ok(config)
    }

    /// The effective severity of `rule` in environment `env`.
    ///
    /// Most specific wins: `[rules.ENV]`, then `[rules.production]` for a production
    /// environment, then `[rules]`, then the rule's default.
    pub fn severity(&self, rule: RuleId, env: Option<&str>, production: bool) -> Severity {
        let by_env = |name: &str| self.rules_by_env.get(name).and_then(|m| m.get(&rule));
        env.and_then(by_env)
            .or_else(|| production.then(|| by_env("production")).flatten())
            .or_else(|| self.rules.get(&rule))
            .copied()
            .unwrap_or_else(|| rule.default_severity(production))
    }
}

fn severity(entry: &Entry) -> Result<Severity, ConfigError> {
    let key = entry.key();
    let value = entry.string("\"warn\"")?;
    Severity::parse(value).ok_or_else(|| {
        entry.error(
            format!("severity `{value}` for `{key}` is not one of error, warn, off"),
            format!("write `{key} = \"warn\"`"),
        )
    })
}

/// A rule code or name written as a key.
fn rule(entry: &Entry) -> Result<RuleId, ConfigError> {
    let key = entry.key();
    crate::rules::validate_rule_code(key).map_err(|e| {
        entry.key_error(
            format!(
                "unknown rule `{key}`; valid rules are: {}",
                valid_rule_list()
            ),
            e.hint(),
        )
    })
}

fn read_rules(table: &Table, config: &mut PolicyConfig) -> Result<(), ConfigError> {
    for entry in table.entries() {
        let key = entry.key();
        if entry.is_table() {
            // A sub-table is an environment: `[rules.production]`, `[rules.staging]`.
            if let Err(e) = lineage_model::EnvName::parse(key) {
                return Err(entry.key_error(
                    format!("`[rules.{key}]`: environment name {}", e.problem),
                    e.hint,
                ));
            }
            let env_rules = config.rules_by_env.entry(key.to_string()).or_default();
            for rule_entry in entry.table()?.entries() {
                env_rules.insert(rule(&rule_entry)?, severity(&rule_entry)?);
            }
        } else {
            config.rules.insert(rule(&entry)?, severity(&entry)?);
        }
    }
    Ok(())
}

/// `[rules]`: its names are rule codes and names, which `read_rules` checks against the rules.
pub const RULES: Field = Field {
    name: "rules",
    shape: Shape::Free,
};

/// `[allowlist]`'s keys, here and in the whole-document check (`lineage_core`'s schema).
pub const ALLOWLIST: Field = Field {
    name: "allowlist",
    shape: Shape::Table(&[value("registries"), value("base_images")]),
};

/// The keys of `[gates.environments.ENV]`.
const GATES_PER_ENVIRONMENT: &[Field] = &[value("four_eyes"), value("approval")];

/// `[gates]`'s keys.
pub const GATES: Field = Field {
    name: "gates",
    shape: Shape::Table(&[
        value("four_eyes"),
        value("approval"),
        value("approvals"),
        value("stale_base_days"),
        Field {
            name: "environments",
            shape: Shape::Map(&Shape::Table(GATES_PER_ENVIRONMENT)),
        },
    ]),
};

/// `[exceptions]`'s keys.
pub const EXCEPTIONS: Field = Field {
    name: "exceptions",
    shape: Shape::Table(&[
        value("max_days"),
        Field {
            name: "approvers",
            shape: Shape::Map(&Shape::Value),
        },
    ]),
};

fn read_allowlist(table: &Table, out: &mut Allowlist) -> Result<(), ConfigError> {
    table.deny_unknown_fields(ALLOWLIST.keys())?;
    if let Some(entry) = table.get("registries") {
        out.registries = entry
            .strings("[\"registry.example.com\"]")?
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect();
    }
    if let Some(entry) = table.get("base_images") {
        out.base_images = entry
            .strings("[\"docker.io/library/debian\"]")?
            .into_iter()
            .map(|(p, at)| {
                normalise_pattern(p).map_err(|m| {
                    at.error(m, "write a repository such as `docker.io/library/debian` or a prefix such as `gcr.io/distroless/*`")
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

fn scope(entry: &Entry) -> Result<Scope, ConfigError> {
    let key = entry.key();
    let value = entry.string("\"production\"")?;
    Scope::parse(value).ok_or_else(|| {
        entry.error(
            format!("`{key} = \"{value}\"` is not one of off, production, all"),
            format!("write `{key} = \"production\"`"),
        )
    })
}

fn read_gates(table: &Table, out: &mut Gates) -> Result<(), ConfigError> {
    table.deny_unknown_fields(GATES.keys())?;
    for entry in table.entries() {
        match entry.key() {
            "four_eyes" => out.four_eyes = scope(&entry)?,
            "approval" => out.approval = scope(&entry)?,
            "approvals" => {
                out.approvals = match entry.string("\"recorded\"")? {
                    "declared" => Approvals::Declared,
                    "recorded" => Approvals::Recorded,
                    other => {
                        return Err(entry.error(
                            format!("`approvals = \"{other}\"` is not one of declared, recorded"),
                            "write `approvals = \"recorded\"` to accept only approvals recorded with `lineage approve`",
                        ))
                    }
                }
            }
            "stale_base_days" => out.stale_base_days = days(&entry)?,
            // `deny_unknown` above leaves only `environments`.
            _ => {
                for env in entry.table()?.entries() {
                    let t = env.table()?;
                    t.deny_unknown_fields(GATES_PER_ENVIRONMENT)?;
                    let gates = out.environments.entry(env.key().to_string()).or_default();
                    if let Some(e) = t.get("four_eyes") {
                        gates.four_eyes = Some(e.bool()?);
                    }
                    if let Some(e) = t.get("approval") {
                        gates.approval = Some(e.bool()?);
                    }
                }
            }
        }
    }
    Ok(())
}

/// A whole number of days, at least 1.
fn days(entry: &Entry) -> Result<i64, ConfigError> {
    let key = entry.key();
    match entry.integer("30")? {
        n if (1..=3650).contains(&n) => Ok(n),
        _ => Err(entry.error(
            format!(
                "`{}` is `{}`; it must be a whole number of days from 1 to 3650",
                entry.path(),
                entry.written()
            ),
            format!("write `{key} = 30`"),
        )),
    }
}

fn read_exceptions(table: &Table, out: &mut ExceptionRules) -> Result<(), ConfigError> {
    table.deny_unknown_fields(EXCEPTIONS.keys())?;
    if let Some(entry) = table.get("max_days") {
        out.max_days = days(&entry)?;
    }
    let Some(approvers) = table.get("approvers") else {
        return Ok(());
    };
    for list in approvers.table()?.entries() {
        let rule_key = list.key();
        let code = if rule_key == "*" {
            "*".to_string()
        } else {
            rule(&list)?.code().to_string()
        };
        let what = format!("exceptions.approvers.{rule_key}");
        let mut checked = Vec::new();
        for (id, at) in list.strings("[\"security@acme.dev\"]")? {
            let parsed = lineage_model::Identity::parse(id).map_err(|e| {
                at.error(
                    format!("`{what}`: identity `{id}` {}", e.problem),
                    e.hint.clone(),
                )
            })?;
            checked.push(parsed.to_string());
        }
        if checked.is_empty() {
            return Err(list.error(
                format!("`{what}` is empty, so nobody could approve an exception for it"),
                format!("name who may approve: `{rule_key} = [\"security@acme.dev\"]`, or remove the entry"),
            ));
        }
        out.approvers.insert(code, checked);
    }
    Ok(())
}

/// Normalises an allowlist entry the way image references are normalised (`debian` →
/// `docker.io/library/debian`), keeping a trailing `/*`.
fn normalise_pattern(pattern: &str) -> Result<String, String> {
    let (name, wildcard) = match pattern.strip_suffix("/*") {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let repo = lineage_model::Repository::parse(name)
        .map_err(|e| format!("allowlist entry `{pattern}`: {}", e.problem))?;
    let mut s = repo.to_string();
    if wildcard {
        // `docker.io/library` style prefixes are written by users without `library/`.
        if name.contains('/') && !name.contains(['.', ':']) && !name.starts_with("localhost") {
            s = format!("docker.io/{name}");
        }
        s.push_str("/*");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_patterns() {
        let a = Allowlist {
            registries: vec!["registry.acme.dev".into()],
            base_images: vec![
                normalise_pattern("debian").unwrap(),
                normalise_pattern("gcr.io/distroless/*").unwrap(),
            ],
        };
        assert!(a.allows("registry.acme.dev", "registry.acme.dev/base/node"));
        assert!(a.allows("docker.io", "docker.io/library/debian"));
        assert!(a.allows("gcr.io", "gcr.io/distroless/static"));
        assert!(!a.allows("gcr.io", "gcr.io/distroless-evil/static"));
        assert!(!a.allows("docker.io", "docker.io/library/ubuntu"));
    }
}
