//! The sections of `lineage.toml` the server owns: `[admission]` (which namespaces are which
//! environment, enforce or audit, and the answer while the index is loading).
//!
//! Other crates parse their own sections from the same text, so unknown top-level sections are
//! ignored here, but unknown keys inside `[admission]` are errors: a typo in a security setting
//! must not silently fall back to a default.

use std::collections::BTreeMap;

use lineage_core::{Config, Error};
use lineage_model::EnvName;
use serde::Deserialize;

/// What the webhook does with a request that breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Deny it.
    #[default]
    Enforce,
    /// Allow it with warnings: for rolling the webhook out.
    Audit,
}

/// The answer while the index is still loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotReady {
    /// Fail closed: nothing starts that was not checked.
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdmissionConfig {
    /// Kubernetes namespace → Lineage environment. Namespaces not listed are not governed.
    pub namespaces: BTreeMap<String, EnvName>,
    pub mode: Mode,
    pub when_not_ready: NotReady,
    /// A base older than this many days (behind a newer digest of its tag) earns a warning.
    pub stale_base_days: i64,
}

#[derive(Deserialize)]
struct Raw {
    admission: Option<RawAdmission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmission {
    #[serde(default)]
    namespaces: BTreeMap<String, toml::Spanned<String>>,
    mode: Option<toml::Spanned<String>>,
    when_not_ready: Option<toml::Spanned<String>>,
    stale_base_days: Option<i64>,
}

/// Days behind before a stale base is mentioned, when `stale_base_days` is not set.
pub const DEFAULT_STALE_BASE_DAYS: i64 = 30;

impl AdmissionConfig {
    /// Parses `[admission]` from the settings file `text` (named `file`). Environments must be
    /// ones `[environments]` configures.
    pub fn from_toml(text: &str, file: &str, config: &Config) -> Result<AdmissionConfig, Error> {
        let err = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            Error::Config {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let raw: Raw = toml::from_str(text)
            .map_err(|e| err(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        let Some(raw) = raw.admission else {
            return Ok(AdmissionConfig {
                stale_base_days: DEFAULT_STALE_BASE_DAYS,
                ..AdmissionConfig::default()
            });
        };
        let mut namespaces = BTreeMap::new();
        for (ns, env) in raw.namespaces {
            let parsed = config.environment(env.get_ref()).map_err(|e| {
                err(
                    env.span().start,
                    format!(
                        "`admission.namespaces.{ns}`: {e}; {}",
                        e.hint().unwrap_or_default()
                    ),
                )
            })?;
            namespaces.insert(ns, parsed);
        }
        let mode = match raw.mode {
            None => Mode::Enforce,
            Some(m) => match m.get_ref().as_str() {
                "enforce" => Mode::Enforce,
                "audit" => Mode::Audit,
                other => {
                    return Err(err(
                        m.span().start,
                        format!(
                            "`admission.mode` is `{other}`; write `\"enforce\"` or `\"audit\"`"
                        ),
                    ))
                }
            },
        };
        let when_not_ready = match raw.when_not_ready {
            None => NotReady::Deny,
            Some(m) => match m.get_ref().as_str() {
                "deny" => NotReady::Deny,
                "allow" => NotReady::Allow,
                other => {
                    return Err(err(
                        m.span().start,
                        format!(
                        "`admission.when_not_ready` is `{other}`; write `\"deny\"` or `\"allow\"`"
                    ),
                    ))
                }
            },
        };
        Ok(AdmissionConfig {
            namespaces,
            mode,
            when_not_ready,
            stale_base_days: raw.stale_base_days.unwrap_or(DEFAULT_STALE_BASE_DAYS),
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
    fn parses_and_rejects() {
        let c = Config::default();
        let a = AdmissionConfig::from_toml(
            "[admission]\nnamespaces = { prod = \"production\", default = \"dev\" }\nmode = \"audit\"\nwhen_not_ready = \"allow\"\n",
            "lineage.toml",
            &c,
        )
        .unwrap();
        assert_eq!(a.namespaces["prod"].as_str(), "production");
        assert_eq!((a.mode, a.when_not_ready), (Mode::Audit, NotReady::Allow));
        let e = AdmissionConfig::from_toml("[admission]\nmode = \"loud\"\n", "x", &c).unwrap_err();
        assert!(matches!(e, Error::Config { line: 2, .. }), "{e:?}");
        let e = AdmissionConfig::from_toml("[admission]\nnamespaces = { a = \"prod\" }\n", "x", &c)
            .unwrap_err();
        assert!(e.to_string().contains("production"), "{e}");
        let e = AdmissionConfig::from_toml("[admission]\nmodes = 1\n", "x", &c).unwrap_err();
        assert!(matches!(e, Error::Config { .. }));
    }
}
