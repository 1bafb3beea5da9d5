//! `lineage.toml`: the project's settings. This module owns the sections core needs
//! (`environments`); other crates parse the sections they own from the same text.

use lineage_model::EnvName;
use serde::Deserialize;

use crate::Error;

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

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    environments: Option<EnvironmentsSection>,
    #[serde(default)]
    vulns: Option<VulnsSection>,
    #[serde(default)]
    promotion: Option<PromotionSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionSection {
    #[serde(default)]
    path: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
    #[serde(default)]
    soak_minutes: std::collections::BTreeMap<toml::Spanned<String>, toml::Spanned<i64>>,
    #[serde(default)]
    require_healthy: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VulnsSection {
    max_age: Option<toml::Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentsSection {
    names: Vec<toml::Spanned<String>>,
    #[serde(default)]
    production: Option<Vec<toml::Spanned<String>>>,
}

impl Config {
    /// Parses `text` (the contents of `file`). Errors point at line and column.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, Error> {
        let at = |span: std::ops::Range<usize>| line_col(text, span.start);
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), at);
            Error::Config {
                file: file.to_string(),
                line,
                col,
                message: e.message().to_string(),
            }
        })?;
        let vulns = match raw.vulns.and_then(|v| v.max_age) {
            Some(value) => {
                crate::vulns::VulnsConfig::parse_max_age(value.get_ref()).map_err(|message| {
                    let (line, col) = at(value.span());
                    Error::Config {
                        file: file.to_string(),
                        line,
                        col,
                        message,
                    }
                })?
            }
            None => crate::vulns::VulnsConfig::default(),
        };
        let promotion = raw.promotion;
        let mut config = match raw.environments {
            None => Config {
                vulns,
                ..Config::default()
            },
            Some(section) => Config::environments_from(section, vulns, text, file)?,
        };
        if let Some(section) = promotion {
            config.promotion = Some(config.promotion_from(section, text, file)?);
        }
        Ok(config)
    }

    /// `[promotion]`, checked against the configured environments.
    fn promotion_from(
        &self,
        section: PromotionSection,
        text: &str,
        file: &str,
    ) -> Result<Promotion, Error> {
        let err = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            Error::Config {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let configured = |name: &toml::Spanned<String>| -> Result<EnvName, Error> {
            let found = EnvName::parse(name.get_ref())
                .ok()
                .filter(|e| self.environments.contains(e));
            found.ok_or_else(|| {
                let names: Vec<&str> = self.environments.iter().map(|e| e.as_str()).collect();
                err(
                    name.span(),
                    format!(
                        "`{}` in `[promotion]` is not a configured environment (configured: {})",
                        name.get_ref(),
                        names.join(", ")
                    ),
                )
            })
        };
        let path = match &section.path {
            None => self.environments.clone(),
            Some(list) => {
                let mut path = Vec::new();
                for name in list.get_ref() {
                    let env = configured(name)?;
                    if path.contains(&env) {
                        return Err(err(
                            name.span(),
                            format!("`{env}` appears twice in `[promotion] path`: a path cannot go back to an environment (a cycle)"),
                        ));
                    }
                    path.push(env);
                }
                if path.len() < 2 {
                    return Err(err(
                        list.span(),
                        "`[promotion] path` needs at least two environments, e.g. `[\"staging\", \"production\"]`".into(),
                    ));
                }
                path
            }
        };
        let mut soak_minutes = std::collections::BTreeMap::new();
        for (name, minutes) in &section.soak_minutes {
            let env = configured(name)?;
            if path.last() == Some(&env) || !path.contains(&env) {
                return Err(err(
                    name.span(),
                    format!("`soak_minutes` names `{env}`, which promotes to no later environment on the path; a soak time belongs to an environment a digest leaves"),
                ));
            }
            let m = *minutes.get_ref();
            if !(0..=525_600).contains(&m) {
                return Err(err(
                    minutes.span(),
                    format!("`soak_minutes` for `{env}` is {m}; give 0 to 525600 minutes (a year)"),
                ));
            }
            soak_minutes.insert(env, m as u64);
        }
        Ok(Promotion {
            path,
            soak_minutes,
            require_healthy: section.require_healthy,
        })
    }

    fn environments_from(
        section: EnvironmentsSection,
        vulns: crate::vulns::VulnsConfig,
        text: &str,
        file: &str,
    ) -> Result<Config, Error> {
        let at = |span: std::ops::Range<usize>| line_col(text, span.start);
        let mut environments = Vec::new();
        for name in &section.names {
            let env = EnvName::parse(name.get_ref()).map_err(|e| {
                let (line, col) = at(name.span());
                Error::Config {
                    file: file.to_string(),
                    line,
                    col,
                    message: format!("{e}; {}", e.hint),
                }
            })?;
            if environments.contains(&env) {
                let (line, col) = at(name.span());
                return Err(Error::Config {
                    file: file.to_string(),
                    line,
                    col,
                    message: format!("environment `{env}` is listed twice"),
                });
            }
            environments.push(env);
        }
        if environments.is_empty() {
            return Err(Error::Config {
                file: file.to_string(),
                line: 1,
                col: 1,
                message: "`environments.names` is empty; name at least one environment".into(),
            });
        }
        let production = match section.production {
            None => environments
                .iter()
                .filter(|e| e.as_str() == "production")
                .cloned()
                .collect(),
            Some(list) => {
                let mut out = Vec::new();
                for name in list {
                    match environments.iter().find(|e| e.as_str() == name.get_ref()) {
                        Some(env) => out.push(env.clone()),
                        None => {
                            let (line, col) = at(name.span());
                            return Err(Error::Config {
                                file: file.to_string(),
                                line,
                                col,
                                message: format!(
                                    "`{}` is listed as production but is not in `environments.names`",
                                    name.get_ref()
                                ),
                            });
                        }
                    }
                }
                out
            }
        };
        Ok(Config {
            environments,
            production,
            vulns,
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

/// 1-based line and column of a byte offset, for errors that point into a settings file.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

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
            Error::Config { line, col, .. } => assert_eq!((line, col), (2, 17)),
            other => panic!("{other:?}"),
        }
        // An unterminated array is reported where the `]` is missing: the end of the file.
        let err = Config::from_toml("[environments]\nnames = [\"dev\"\n", "x.toml").unwrap_err();
        assert!(matches!(err, Error::Config { line: 3, .. }), "{err:?}");
        let err =
            Config::from_toml("[environments]\nnames=[\"a\"]\nextra = 1\n", "x.toml").unwrap_err();
        assert!(matches!(err, Error::Config { line: 3, .. }), "{err:?}");
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
}
