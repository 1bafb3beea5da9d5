//! The sections of `lineage.toml` this crate owns: `[rules]`, `[allowlist]` and `[gates]`.
//!
//! The file is parsed with `toml_edit`, which keeps the byte span of every key and value, so
//! every error points at `file:line:column`. Sections owned by other parts of Lineage
//! (`[environments]`, `[trust]`, `[log]`, ...) are skipped without a look: this crate must not
//! reject a file because another crate grew a setting. Inside its own sections it is strict,
//! because a misspelt severity or rule silently weakens a gate.
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
use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike};

use crate::rules::{valid_rule_list, RuleId, Severity};

/// A `lineage.toml` that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    /// 1-based, in characters; 0 when the position is unknown.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

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
    /// Parses and validates the policy sections of a `lineage.toml`. `file_name` is only used
    /// in error messages.
    pub fn from_toml(text: &str, file_name: &str) -> Result<PolicyConfig, ConfigError> {
        let doc = ImDocument::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            ConfigError::at(file_name, text, span, message, None)
        })?;
        let cx = Cx {
            file: file_name,
            text,
        };
        let root = doc.as_table();
        let mut config = PolicyConfig::default();
        if let Some((key, item)) = root.get_key_value("rules") {
            let table = cx.table(key.span(), item, "rules")?;
            cx.rules(table, &mut config)?;
        }
        if let Some((key, item)) = root.get_key_value("allowlist") {
            let table = cx.table(key.span(), item, "allowlist")?;
            cx.allowlist(table, &mut config.allowlist)?;
        }
        if let Some((key, item)) = root.get_key_value("gates") {
            let table = cx.table(key.span(), item, "gates")?;
            cx.gates(table, &mut config.gates)?;
        }
        if let Some((key, item)) = root.get_key_value("exceptions") {
            let table = cx.table(key.span(), item, "exceptions")?;
            cx.exceptions(table, &mut config.exceptions)?;
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

impl ConfigError {
    fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: String,
        hint: Option<String>,
    ) -> ConfigError {
        let (line, column) = line_col(text, span.start);
        ConfigError {
            file: file.to_string(),
            line,
            column,
            message,
            hint,
        }
    }
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The file being read, for positions in errors.
struct Cx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn err(
        &self,
        span: Option<Range<usize>>,
        message: String,
        hint: Option<String>,
    ) -> ConfigError {
        ConfigError::at(self.file, self.text, span.unwrap_or(0..0), message, hint)
    }

    fn table<'i>(
        &self,
        key_span: Option<Range<usize>>,
        item: &'i Item,
        what: &str,
    ) -> Result<&'i dyn TableLike, ConfigError> {
        item.as_table_like().ok_or_else(|| {
            self.err(
                item.span().or(key_span),
                format!("`{what}` must be a table"),
                Some(format!(
                    "write `[{what}]` on its own line and the entries below it"
                )),
            )
        })
    }

    /// Iterates a table with the span of each key, for precise errors.
    fn entries<'i>(
        &self,
        table: &'i dyn TableLike,
    ) -> Vec<(&'i str, Option<Range<usize>>, &'i Item)> {
        table
            .iter()
            .map(|(k, item)| {
                let span = table.get_key_value(k).and_then(|(key, _)| key.span());
                (k, span.or_else(|| item.span()), item)
            })
            .collect()
    }

    fn string<'i>(
        &self,
        span: Option<Range<usize>>,
        item: &'i Item,
        what: &str,
    ) -> Result<&'i str, ConfigError> {
        item.as_str().ok_or_else(|| {
            self.err(
                item.span().or(span),
                format!("`{what}` must be a string"),
                None,
            )
        })
    }

    fn severity(
        &self,
        span: Option<Range<usize>>,
        item: &Item,
        key: &str,
    ) -> Result<Severity, ConfigError> {
        let value = self.string(span.clone(), item, key)?;
        Severity::parse(value).ok_or_else(|| {
            self.err(
                item.span().or(span),
                format!("severity `{value}` for `{key}` is not one of error, warn, off"),
                Some(format!("write `{key} = \"warn\"`")),
            )
        })
    }

    fn rule(&self, span: Option<Range<usize>>, key: &str) -> Result<RuleId, ConfigError> {
        crate::rules::validate_rule_code(key).map_err(|e| {
            self.err(
                span,
                format!(
                    "unknown rule `{key}`; valid rules are: {}",
                    valid_rule_list()
                ),
                Some(e.hint()),
            )
        })
    }

    fn rules(&self, table: &dyn TableLike, config: &mut PolicyConfig) -> Result<(), ConfigError> {
        for (key, span, item) in self.entries(table) {
            if item.is_table_like() {
                // A sub-table is an environment: `[rules.production]`, `[rules.staging]`.
                if let Err(e) = lineage_model::EnvName::parse(key) {
                    return Err(self.err(
                        span,
                        format!("`[rules.{key}]`: environment name {}", e.problem),
                        Some(e.hint),
                    ));
                }
                let env_rules = config.rules_by_env.entry(key.to_string()).or_default();
                let sub = self.table(span, item, &format!("rules.{key}"))?;
                for (rule_key, rule_span, value) in self.entries(sub) {
                    let rule = self.rule(rule_span.clone(), rule_key)?;
                    env_rules.insert(rule, self.severity(rule_span, value, rule_key)?);
                }
            } else {
                let rule = self.rule(span.clone(), key)?;
                config.rules.insert(rule, self.severity(span, item, key)?);
            }
        }
        Ok(())
    }

    fn string_list(
        &self,
        span: Option<Range<usize>>,
        item: &Item,
        what: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let not_list = || {
            self.err(
                item.span().or(span.clone()),
                format!("`{what}` must be a list of strings"),
                Some(format!("write `{what} = [\"registry.example.com\"]`")),
            )
        };
        let array = item.as_array().ok_or_else(not_list)?;
        array
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    self.err(
                        v.span().or(span.clone()),
                        format!("`{what}` must be a list of strings"),
                        None,
                    )
                })
            })
            .collect()
    }

    fn unknown_key(
        &self,
        span: Option<Range<usize>>,
        section: &str,
        key: &str,
        valid: &[&str],
    ) -> ConfigError {
        let closest = valid
            .iter()
            .min_by_key(|v| strsim::levenshtein(key, v))
            .filter(|v| strsim::levenshtein(key, v) <= 3);
        self.err(
            span,
            format!(
                "unknown key `{key}` in `[{section}]`; expected one of: {}",
                valid.join(", ")
            ),
            closest.map(|c| format!("did you mean `{c}`?")),
        )
    }

    fn allowlist(&self, table: &dyn TableLike, out: &mut Allowlist) -> Result<(), ConfigError> {
        const KEYS: [&str; 2] = ["registries", "base_images"];
        for (key, span, item) in self.entries(table) {
            match key {
                "registries" => out.registries = self.string_list(span, item, "registries")?,
                "base_images" => {
                    let list = self.string_list(span.clone(), item, "base_images")?;
                    out.base_images = list
                        .into_iter()
                        .map(|p| normalise_pattern(&p).map_err(|m| self.err(item.span().or(span.clone()), m, Some("write a repository such as `docker.io/library/debian` or a prefix such as `gcr.io/distroless/*`".into()))))
                        .collect::<Result<_, _>>()?;
                }
                _ => return Err(self.unknown_key(span, "allowlist", key, &KEYS)),
            }
        }
        Ok(())
    }

    fn scope(
        &self,
        span: Option<Range<usize>>,
        item: &Item,
        key: &str,
    ) -> Result<Scope, ConfigError> {
        let value = self.string(span.clone(), item, key)?;
        Scope::parse(value).ok_or_else(|| {
            self.err(
                item.span().or(span),
                format!("`{key} = \"{value}\"` is not one of off, production, all"),
                Some(format!("write `{key} = \"production\"`")),
            )
        })
    }

    fn bool(
        &self,
        span: Option<Range<usize>>,
        item: &Item,
        key: &str,
    ) -> Result<bool, ConfigError> {
        item.as_bool().ok_or_else(|| {
            self.err(
                item.span().or(span),
                format!("`{key}` must be true or false"),
                Some(format!("write `{key} = true`")),
            )
        })
    }

    fn gates(&self, table: &dyn TableLike, out: &mut Gates) -> Result<(), ConfigError> {
        const KEYS: [&str; 5] = [
            "four_eyes",
            "approval",
            "approvals",
            "stale_base_days",
            "environments",
        ];
        const ENV_KEYS: [&str; 2] = ["four_eyes", "approval"];
        for (key, span, item) in self.entries(table) {
            match key {
                "four_eyes" => out.four_eyes = self.scope(span, item, key)?,
                "approval" => out.approval = self.scope(span, item, key)?,
                "approvals" => {
                    out.approvals = match self.string(span.clone(), item, key)? {
                        "declared" => Approvals::Declared,
                        "recorded" => Approvals::Recorded,
                        other => {
                            return Err(self.err(
                                item.span().or(span),
                                format!("`approvals = \"{other}\"` is not one of declared, recorded"),
                                Some("write `approvals = \"recorded\"` to accept only approvals recorded with `lineage approve`".into()),
                            ))
                        }
                    }
                }
                "stale_base_days" => out.stale_base_days = self.days(span, item, key)?,
                "environments" => {
                    let envs = self.table(span, item, "gates.environments")?;
                    for (env, env_span, env_item) in self.entries(envs) {
                        let section = format!("gates.environments.{env}");
                        let t = self.table(env_span, env_item, &section)?;
                        let gates = out.environments.entry(env.to_string()).or_default();
                        for (k, s, v) in self.entries(t) {
                            match k {
                                "four_eyes" => gates.four_eyes = Some(self.bool(s, v, k)?),
                                "approval" => gates.approval = Some(self.bool(s, v, k)?),
                                _ => return Err(self.unknown_key(s, &section, k, &ENV_KEYS)),
                            }
                        }
                    }
                }
                _ => return Err(self.unknown_key(span, "gates", key, &KEYS)),
            }
        }
        Ok(())
    }
}

impl Cx<'_> {
    /// A whole number of days, at least 1.
    fn days(&self, span: Option<Range<usize>>, item: &Item, key: &str) -> Result<i64, ConfigError> {
        match item.as_integer() {
            Some(n) if (1..=3650).contains(&n) => Ok(n),
            _ => Err(self.err(
                item.span().or(span),
                format!("`{key}` must be a whole number of days from 1 to 3650"),
                Some(format!("write `{key} = 30`")),
            )),
        }
    }

    fn exceptions(
        &self,
        table: &dyn TableLike,
        out: &mut ExceptionRules,
    ) -> Result<(), ConfigError> {
        const KEYS: [&str; 2] = ["max_days", "approvers"];
        for (key, span, item) in self.entries(table) {
            match key {
                "max_days" => out.max_days = self.days(span, item, key)?,
                "approvers" => {
                    let rules = self.table(span, item, "exceptions.approvers")?;
                    for (rule, rule_span, list) in self.entries(rules) {
                        let code = if rule == "*" {
                            "*".to_string()
                        } else {
                            self.rule(rule_span.clone(), rule)?.code().to_string()
                        };
                        let what = format!("exceptions.approvers.{rule}");
                        let ids = self.string_list(rule_span.clone(), list, &what)?;
                        let mut checked = Vec::with_capacity(ids.len());
                        for id in ids {
                            let parsed = lineage_model::Identity::parse(&id).map_err(|e| {
                                self.err(
                                    list.span().or(rule_span.clone()),
                                    format!("`{what}`: identity `{id}` {}", e.problem),
                                    Some(e.hint.clone()),
                                )
                            })?;
                            checked.push(parsed.to_string());
                        }
                        if checked.is_empty() {
                            return Err(self.err(
                                list.span().or(rule_span),
                                format!("`{what}` is empty, so nobody could approve an exception for it"),
                                Some(format!("name who may approve: `{rule} = [\"security@acme.dev\"]`, or remove the entry")),
                            ));
                        }
                        out.approvers.insert(code, checked);
                    }
                }
                _ => return Err(self.unknown_key(span, "exceptions", key, &KEYS)),
            }
        }
        Ok(())
    }
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
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        let second_eq = text.rfind('=').unwrap();
        assert_eq!(line_col(text, second_eq), (2, 4));
    }

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
