//! Kubernetes admission as a deploy gate: which namespaces are which environment, and the
//! judgement of a pod's images. The server turns an AdmissionReview into a namespace and a
//! list of images, calls [`judge`], and turns the [`Verdict`] back into an AdmissionReview.
//!
//! A pod starting is a deploy of each of its images to the namespace's environment, so each
//! image is judged by [`gate::check_deploy`] — the same rules, severities, Rego policies and
//! exceptions as `deploy check`. The deployer and approver are the ones of the newest
//! recorded deploy of that digest to that environment: admission admits what was deployed
//! through Lineage, and a production image nobody recorded (with an approval) is denied
//! with the same codes the deploy job would have been refused with.

use std::collections::BTreeMap;

use lineage_model::{Digest, EnvName, ImageRef, Repository, Timestamp};
use lineage_policy::{Level, Report};

use crate::gate::{self, DeployLedger, DeployRequest, Setup};
use crate::{Config, Error};

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

/// Images of repositories no service owns that may run anyway (`[admission] allow`):
/// `REPOSITORY@*` (any digest of it), `REPOSITORY@sha256:…` (that digest) or `PREFIX/*@*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowPattern {
    /// As written, for the reason shown on an admitted pod.
    pub text: String,
    /// A normalised repository, or a prefix that must be followed by `/`.
    repository: String,
    prefix: bool,
    digest: Option<Digest>,
}

impl AllowPattern {
    pub fn parse(text: &str) -> Result<AllowPattern, String> {
        let hint = "write `docker.io/library/nginx@*`, `REPOSITORY@sha256:<64 hex>` or `registry.example.com/vendor/*@*`";
        let Some((repo, digest)) = text.split_once('@') else {
            return Err(format!(
                "`{text}` has no `@`: only pinned images can be allowed; {hint}"
            ));
        };
        let digest = match digest {
            "*" => None,
            d => Some(Digest::parse(d).map_err(|e| format!("`{text}`: {e}; {hint}"))?),
        };
        let (name, prefix) = match repo.strip_suffix("/*") {
            Some(p) => (p, true),
            None => (repo, false),
        };
        let parsed = Repository::parse(name).map_err(|e| format!("`{text}`: {e}; {hint}"))?;
        let mut repository = parsed.to_string();
        // `docker.io/library/x` normalisation only applies to one-part names; a prefix such
        // as `acme/*` means `docker.io/acme/*`.
        if prefix
            && name.contains('/')
            && !name.contains(['.', ':'])
            && !name.starts_with("localhost")
        {
            repository = format!("docker.io/{name}");
        }
        Ok(AllowPattern {
            text: text.to_string(),
            repository,
            prefix,
            digest,
        })
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        let Some(digest) = &image.digest else {
            return false;
        };
        let repo = image.repository.to_string();
        let repo_ok = if self.prefix {
            repo.strip_prefix(&self.repository)
                .is_some_and(|rest| rest.starts_with('/'))
        } else {
            repo == self.repository
        };
        repo_ok && self.digest.as_ref().is_none_or(|d| d == digest)
    }
}

/// `[admission]` in lineage.toml.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdmissionConfig {
    /// Kubernetes namespace → Lineage environment. Namespaces not listed are not governed.
    pub namespaces: BTreeMap<String, EnvName>,
    pub mode: Mode,
    pub when_not_ready: NotReady,
    /// Third-party images that may run although no service owns their repository.
    pub allow: Vec<AllowPattern>,
    /// Record what admission admitted as observations (source `admission`), batched by
    /// the server, never on the answer's path.
    pub observe: bool,
}

/// `[admission]`'s keys, here and in the whole-document check (`config_keys`).
pub(crate) const SECTION: lineage_toml::Field = lineage_toml::Field {
    name: "admission",
    shape: lineage_toml::Shape::Table(&[
        lineage_toml::Field {
            name: "namespaces",
            shape: lineage_toml::Shape::Map(&lineage_toml::Shape::Value),
        },
        lineage_toml::value("mode"),
        lineage_toml::value("when_not_ready"),
        lineage_toml::value("allow"),
        lineage_toml::value("observe"),
    ]),
};

impl AdmissionConfig {
    /// Parses `[admission]` of a standalone settings text (tests, tools), named `file` in
    /// errors. Environments must be ones `config` configures. Lineage itself reads the file
    /// once, through `LineageToml::parse`.
    pub fn from_toml(text: &str, file: &str, config: &Config) -> Result<AdmissionConfig, Error> {
        let doc = lineage_toml::Document::parse(text, file)?;
        Ok(AdmissionConfig::from_document(&doc, config)?)
    }

    /// Reads `[admission]`; environments must be ones `config` configures.
    pub fn from_document(
        doc: &lineage_toml::Document,
        config: &Config,
    ) -> Result<AdmissionConfig, lineage_toml::ConfigError> {
        let Some(section) = doc.section("admission") else {
            return Ok(AdmissionConfig::default());
        };
        let table = section.table()?;
        table.deny_unknown_fields(SECTION.keys())?;
        let mut namespaces = BTreeMap::new();
        if let Some(map) = table.get("namespaces") {
            for entry in map.table()?.entries() {
                let ns = entry.key();
                let env = entry.string("\"production\"")?;
                let parsed = config.environment(env).map_err(|e| {
                    entry.error(
                        format!("`admission.namespaces.{ns}`: {e}"),
                        e.hint().unwrap_or_default(),
                    )
                })?;
                namespaces.insert(ns.to_string(), parsed);
            }
        }
        let choice = |key: &str, a: &str, b: &str| -> Result<bool, lineage_toml::ConfigError> {
            let Some(entry) = table.get(key) else {
                return Ok(true);
            };
            match entry.string(&format!("\"{a}\""))? {
                m if m == a => Ok(true),
                m if m == b => Ok(false),
                m => Err(entry.error(
                    format!("`admission.{key}` is `{m}`; write `\"{a}\"` or `\"{b}\"`"),
                    format!("write `{key} = \"{a}\"` or `{key} = \"{b}\"`"),
                )),
            }
        };
        let mode = if choice("mode", "enforce", "audit")? {
            Mode::Enforce
        } else {
            Mode::Audit
        };
        let when_not_ready = if choice("when_not_ready", "deny", "allow")? {
            NotReady::Deny
        } else {
            NotReady::Allow
        };
        let mut allow = Vec::new();
        if let Some(list) = table.get("allow") {
            for (pattern, at) in list.strings("[\"registry.k8s.io/pause@*\"]")? {
                let parsed = AllowPattern::parse(pattern).map_err(|m| {
                    at.error(
                        format!("`admission.allow`: {m}"),
                        "write `allow = [\"docker.io/library/nginx@*\"]`",
                    )
                })?;
                allow.push(parsed);
            }
        }
        let observe = match table.get("observe") {
            Some(entry) => entry.bool()?,
            None => false,
        };
        Ok(AdmissionConfig {
            namespaces,
            mode,
            when_not_ready,
            allow,
            observe,
        })
    }

    /// The environment a namespace maps to, if it is governed.
    pub fn environment(&self, namespace: Option<&str>) -> Option<&EnvName> {
        namespace.and_then(|ns| self.namespaces.get(ns))
    }
}

/// Where in the pod spec an image was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// `containers`, `initContainers` or `ephemeralContainers`.
    pub field: &'static str,
    pub container: String,
    pub image: String,
}

/// One gate finding about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: String,
    pub name: String,
    /// Denies (in enforce mode) or only warns.
    pub deny: bool,
    pub image: String,
    pub message: String,
    pub hint: String,
}

impl Finding {
    /// `D005 image-not-pinned: image `x` ...; fix: ...`
    pub fn line(&self) -> String {
        format!(
            "{} {}: {}; fix: {}",
            self.code, self.name, self.message, self.hint
        )
    }
}

/// The webhook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The denial message, or why a request was allowed without a check.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    pub findings: Vec<Finding>,
    /// For metrics: `allowed`, `denied`, `warned`, `skipped`, `malformed`, `not_ready`.
    pub outcome: &'static str,
}

/// Judges the images of a pod about to start in `namespace`. Reads only `ledger`: with the
/// server's index behind it, nothing here waits for a disk or the network.
pub fn judge(
    ledger: &dyn DeployLedger,
    setup: &Setup,
    config: &AdmissionConfig,
    namespace: Option<&str>,
    images: &[ContainerImage],
    now: Timestamp,
) -> Result<Verdict, Error> {
    let Some(env) = config.environment(namespace) else {
        return Ok(skipped(format!(
            "namespace `{}` is not governed by Lineage (not under `[admission] namespaces`)",
            namespace.unwrap_or("")
        )));
    };
    let mut findings = Vec::new();
    let mut allowed_by = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for c in images {
        if seen.contains(&c.image.as_str()) {
            continue;
        }
        seen.push(&c.image);
        let parsed = ImageRef::parse(c.image.trim()).ok();
        if let Some(image) = &parsed {
            if let Some(pattern) = third_party(ledger, config, image)? {
                allowed_by.push(format!(
                    "image `{}` is allowed by `[admission] allow` pattern `{}`",
                    c.image, pattern.text
                ));
                continue;
            }
        }
        let recorded = match parsed.as_ref().and_then(|p| p.digest.as_ref()) {
            Some(d) => ledger.digest(d, Some(env))?.deployed_to(env).cloned(),
            None => None,
        };
        let req = DeployRequest {
            image: c.image.clone(),
            env: Some(env.to_string()),
            deployer: recorded.as_ref().map(|d| d.by.to_string()),
            approver: recorded
                .as_ref()
                .and_then(|d| d.approved_by.as_ref())
                .map(ToString::to_string),
            // A pod is no rollback of its own; a recorded rollback made its digest the one
            // recorded as running, so rule D013 lets it pass.
            rollback: false,
        };
        let report = gate::check_deploy(ledger, setup, &req, now)?;
        findings.extend(findings_of(&report, c));
    }
    let mut verdict = verdict(findings, config.mode);
    if verdict.allowed && !allowed_by.is_empty() {
        verdict.message = Some(allowed_by.join("; "));
    }
    Ok(verdict)
}

/// The allow pattern that lets `image` run, when no service owns its repository.
fn third_party<'a>(
    ledger: &dyn DeployLedger,
    config: &'a AdmissionConfig,
    image: &ImageRef,
) -> Result<Option<&'a AllowPattern>, Error> {
    let Some(pattern) = config.allow.iter().find(|p| p.matches(image)) else {
        return Ok(None);
    };
    Ok(ledger
        .service_for_image(&image.repository)?
        .is_none()
        .then_some(pattern))
}

fn findings_of(report: &Report, c: &ContainerImage) -> Vec<Finding> {
    let at = format!("image `{}` ({} `{}`)", c.image, c.field, c.container);
    report
        .diagnostics
        .iter()
        .map(|d| {
            let mut message = format!("{at}: {}", d.message);
            if let Some(w) = &d.waived {
                message.push_str(&format!(
                    " (waived by {} until {}: {})",
                    w.approved_by, w.expires, w.reason
                ));
            }
            Finding {
                code: d.code.clone(),
                name: d.name.clone(),
                deny: d.level == Level::Error && d.waived.is_none(),
                image: c.image.clone(),
                message,
                hint: d.hint.clone(),
            }
        })
        .collect()
}

fn verdict(findings: Vec<Finding>, mode: Mode) -> Verdict {
    let denials: Vec<String> = findings
        .iter()
        .filter(|f| f.deny)
        .map(Finding::line)
        .collect();
    let mut warnings: Vec<String> = findings
        .iter()
        .filter(|f| !f.deny)
        .map(Finding::line)
        .collect();
    if denials.is_empty() {
        return Verdict {
            allowed: true,
            message: None,
            outcome: if warnings.is_empty() {
                "allowed"
            } else {
                "warned"
            },
            warnings,
            findings,
        };
    }
    match mode {
        Mode::Enforce => Verdict {
            allowed: false,
            message: Some(format!(
                "lineage denied this request: {}",
                denials.join("; ")
            )),
            warnings,
            findings,
            outcome: "denied",
        },
        Mode::Audit => {
            warnings.extend(
                denials
                    .into_iter()
                    .map(|d| format!("audit mode, would deny: {d}")),
            );
            Verdict {
                allowed: true,
                message: None,
                warnings,
                findings,
                outcome: "warned",
            }
        }
    }
}

/// The verdict for a review that could not be read.
pub fn malformed(reason: &str, mode: Mode) -> Verdict {
    let message = format!("lineage could not read this AdmissionReview: {reason}");
    match mode {
        Mode::Enforce => Verdict {
            allowed: false,
            message: Some(message),
            warnings: Vec::new(),
            findings: Vec::new(),
            outcome: "malformed",
        },
        Mode::Audit => Verdict {
            allowed: true,
            message: None,
            warnings: vec![format!("audit mode, would deny: {message}")],
            findings: Vec::new(),
            outcome: "malformed",
        },
    }
}

/// The verdict while the index is loading, or when it could not be read.
pub fn not_ready(allow: bool) -> Verdict {
    unchecked(
        "lineage's admission index is still loading; try again in a few seconds".into(),
        allow,
    )
}

/// The verdict when the gate could not decide (a broken policy, an unreadable ledger):
/// allowed only when `[admission] when_not_ready = "allow"`, like a loading index.
pub fn undecided(reason: &str, allow: bool) -> Verdict {
    unchecked(format!("lineage could not decide: {reason}"), allow)
}

fn unchecked(message: String, allow: bool) -> Verdict {
    Verdict {
        allowed: allow,
        warnings: if allow {
            vec![format!("allowed unchecked: {message}")]
        } else {
            Vec::new()
        },
        message: Some(message),
        findings: Vec::new(),
        outcome: "not_ready",
    }
}

/// The verdict for a request with nothing to judge.
pub fn skipped(reason: String) -> Verdict {
    Verdict {
        allowed: true,
        message: Some(reason),
        warnings: Vec::new(),
        findings: Vec::new(),
        outcome: "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_patterns() {
        let d = format!("sha256:{}", "a".repeat(64));
        let nginx = ImageRef::parse(&format!("nginx@{d}")).unwrap();
        assert!(AllowPattern::parse("docker.io/library/nginx@*")
            .unwrap()
            .matches(&nginx));
        assert!(AllowPattern::parse("nginx@*").unwrap().matches(&nginx));
        assert!(AllowPattern::parse(&format!("nginx@{d}"))
            .unwrap()
            .matches(&nginx));
        let other = format!("sha256:{}", "b".repeat(64));
        assert!(!AllowPattern::parse(&format!("nginx@{other}"))
            .unwrap()
            .matches(&nginx));
        let vendor = ImageRef::parse(&format!("registry.acme.dev/vendor/x@{d}")).unwrap();
        assert!(AllowPattern::parse("registry.acme.dev/vendor/*@*")
            .unwrap()
            .matches(&vendor));
        assert!(!AllowPattern::parse("registry.acme.dev/vend/*@*")
            .unwrap()
            .matches(&vendor));
        // Unpinned images are never allowed by a pattern: their bytes can change.
        assert!(!AllowPattern::parse("nginx@*")
            .unwrap()
            .matches(&ImageRef::parse("nginx:1.27").unwrap()));
        assert!(AllowPattern::parse("nginx").is_err());
    }
}
