//! Custom policies in Rego, evaluated in-process with `regorus`.
//!
//! A policy file declares a package and any of two rule sets:
//!
//! ```rego
//! package lineage.bases
//!
//! deny contains {"code": "ACME001", "msg": "...", "hint": "..."} if { ... }
//! warn contains "plain message" if { ... }
//! ```
//!
//! Each `deny` entry becomes an error and each `warn` entry a warning in the report; an object
//! entry gives its own code, a plain string gets the code [`POLICY_CODE`]. The input document
//! is built by [`build_input`] / [`deploy_input`] and described in docs/rules.md.
//!
//! Tests follow `opa test`: every rule whose name starts with `test_` must evaluate to `true`.
//! Policies use Rego v1 syntax (`contains`, `if`), the default of OPA 1.0.

use std::collections::BTreeMap;
use std::fmt;

use lineage_model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::dockerfile::parse_dockerfile_with_args;
use crate::exception::Exception;
use crate::facts::{BuildContext, BuildFacts, DeployFacts};
use crate::report::{Diagnostic, Level, Origin};

/// The code given to `deny`/`warn` entries that are plain strings.
pub const POLICY_CODE: &str = "POLICY";

/// A policy that could not be loaded or evaluated: Lineage cannot decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegoError {
    pub file: String,
    /// 1-based; 0 when regorus gave no position.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for RegoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl RegoError {
    /// Reads regorus's error text, which places the position on a `--> file:line:col` line
    /// and the message on the last `error: ...` line.
    fn from_regorus(file: &str, err: &dyn fmt::Display) -> RegoError {
        let text = err.to_string();
        let mut line = 0;
        let mut column = 0;
        let mut found_file = file.to_string();
        if let Some(pos_line) = text.lines().find_map(|l| l.trim().strip_prefix("--> ")) {
            let mut parts = pos_line.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.trim().parse().ok());
            let ln = parts.next().and_then(|l| l.trim().parse().ok());
            if let (Some(c), Some(l), Some(f)) = (col, ln, parts.next()) {
                line = l;
                column = c;
                found_file = f.to_string();
            }
        }
        let message = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.trim())
            .to_string();
        RegoError {
            file: found_file,
            line,
            column,
            message,
        }
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
struct PolicyFile {
    path: String,
    /// `lineage.bases` (without the `data.` prefix).
    package: String,
    is_test: bool,
}

/// A set of loaded, syntax-checked policy files.
#[derive(Clone)]
pub struct Policies {
    engine: regorus::Engine,
    files: Vec<PolicyFile>,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policies")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Policies {
    /// Parses every `(path, text)` pair. Files ending in `_test.rego` are tests: they are
    /// loaded (so `policy_test` can run them) but never asked for `deny`/`warn`.
    pub fn load(files: &[(String, String)]) -> Result<Policies, RegoError> {
        let mut engine = regorus::Engine::new();
        let mut loaded = Vec::new();
        for (path, text) in files {
            let package = engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| RegoError::from_regorus(path, &e))?;
            let package = package
                .strip_prefix("data.")
                .unwrap_or(&package)
                .to_string();
            loaded.push(PolicyFile {
                path: path.clone(),
                package,
                is_test: path.ends_with("_test.rego"),
            });
        }
        Ok(Policies {
            engine,
            files: loaded,
        })
    }

    /// The packages of the non-test files, each with the first file that declares it.
    fn packages(&self) -> BTreeMap<&str, &str> {
        let mut out = BTreeMap::new();
        for f in self.files.iter().filter(|f| !f.is_test) {
            out.entry(f.package.as_str()).or_insert(f.path.as_str());
        }
        out
    }

    /// Evaluates `deny` and `warn` of every package against `input`.
    pub fn evaluate(&self, input: &Json) -> Result<Vec<Diagnostic>, RegoError> {
        let mut engine = self.engine.clone();
        engine.set_input(regorus::Value::from(input.clone()));
        let mut out = Vec::new();
        for (package, file) in self.packages() {
            for (set, level) in [("deny", Level::Error), ("warn", Level::Warning)] {
                let query = format!("data.{package}.{set}");
                let results = engine
                    .eval_query(query, false)
                    .map_err(|e| RegoError::from_regorus(file, &e))?;
                for value in results
                    .result
                    .iter()
                    .flat_map(|r| r.expressions.iter())
                    .map(|e| serde_json::to_value(&e.value).unwrap_or(Json::Null))
                {
                    let entries = match value {
                        Json::Array(items) => items,
                        other => {
                            return Err(RegoError {
                                file: file.to_string(),
                                line: 0,
                                column: 0,
                                message: format!(
                                "`{set}` in package `{package}` must be a set, but is `{other}`"
                            ),
                            })
                        }
                    };
                    for entry in entries {
                        out.push(entry_diagnostic(&entry, level, package, file)?);
                    }
                }
            }
        }
        Ok(out)
    }
}

fn entry_diagnostic(
    entry: &Json,
    level: Level,
    package: &str,
    file: &str,
) -> Result<Diagnostic, RegoError> {
    let origin = Origin::Policy {
        file: file.to_string(),
        package: package.to_string(),
    };
    let text = |key: &str| entry.get(key).and_then(Json::as_str).map(str::to_string);
    let (code, message, hint, why) = match entry {
        Json::String(s) => (
            POLICY_CODE.to_string(),
            s.clone(),
            String::new(),
            String::new(),
        ),
        Json::Object(_) => {
            let Some(message) = text("msg").or_else(|| text("message")) else {
                return Err(RegoError {
                    file: file.to_string(),
                    line: 0,
                    column: 0,
                    message: format!("an entry of package `{package}` has no `msg`: `{entry}`"),
                });
            };
            (
                text("code").unwrap_or_else(|| POLICY_CODE.to_string()),
                message,
                text("hint").unwrap_or_default(),
                text("why").unwrap_or_default(),
            )
        }
        other => {
            return Err(RegoError {
                file: file.to_string(),
                line: 0,
                column: 0,
                message: format!(
                    "an entry of package `{package}` is neither a string nor an object: `{other}`"
                ),
            })
        }
    };
    Ok(Diagnostic {
        code,
        name: package.to_string(),
        level,
        message,
        why,
        hint,
        location: None,
        origin,
        waived: None,
    })
}

/// The outcome of one `test_` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub file: String,
    pub package: String,
    pub name: String,
    pub passed: bool,
    /// Why it failed: undefined, false, or an evaluation error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What `lineage policy test` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub schema: u32,
    pub results: Vec<TestResult>,
    pub passed: usize,
    pub failed: usize,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }

    /// One line per test and a closing `N passed, N failed` line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for r in &self.results {
            let status = if r.passed { "PASS" } else { "FAIL" };
            s.push_str(&format!(
                "{status} {}: data.{}.{}",
                r.file, r.package, r.name
            ));
            if let Some(f) = &r.failure {
                s.push_str(&format!(" ({f})"));
            }
            s.push('\n');
        }
        s.push_str(&format!("{} passed, {} failed\n", self.passed, self.failed));
        s
    }
}

/// Runs every `test_*` rule in `files`, like `opa test`. A file that does not parse is an
/// `Err`; a test that is false, undefined or errors is a failed result.
pub fn policy_test(files: &[(String, String)]) -> Result<TestReport, RegoError> {
    let policies = Policies::load(files)?;
    let mut results = Vec::new();
    for (file, (path, text)) in policies.files.iter().zip(files) {
        for name in test_rule_names(text) {
            let mut engine = policies.engine.clone();
            let query = format!("data.{}.{name}", file.package);
            let failure = match engine.eval_query(query, false) {
                Err(e) => Some(RegoError::from_regorus(path, &e).to_string()),
                Ok(r) => {
                    let values: Vec<_> = r
                        .result
                        .iter()
                        .flat_map(|r| r.expressions.iter())
                        .map(|e| e.value.clone())
                        .collect();
                    match values.as_slice() {
                        [v] if *v == regorus::Value::from(true) => None,
                        [] => Some("undefined".to_string()),
                        [v] => Some(format!(
                            "evaluated to {}",
                            serde_json::to_string(v).unwrap_or_default()
                        )),
                        _ => Some("produced more than one value".to_string()),
                    }
                }
            };
            results.push(TestResult {
                file: path.clone(),
                package: file.package.clone(),
                name,
                passed: failure.is_none(),
                failure,
            });
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    Ok(TestReport {
        schema: 1,
        failed: results.len() - passed,
        passed,
        results,
    })
}

/// Names of the `test_` rules a file defines. Rule heads start at column 0, as `opa fmt`
/// writes them; a rule defined in several bodies is one test.
fn test_rule_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        let name = &line[..end];
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

fn exceptions_json(exceptions: &[Exception], now: Timestamp) -> Json {
    Json::Array(
        exceptions
            .iter()
            .map(|e| {
                json!({
                    "rule": e.rule,
                    "service": e.service,
                    "reason": e.reason,
                    "approved_by": e.approved_by,
                    "expires": e.expires.to_string(),
                    "active": e.is_active(now),
                })
            })
            .collect(),
    )
}

fn owners_json(service: Option<&lineage_model::Service>) -> Json {
    let s = |f: fn(&lineage_model::Service) -> Option<&lineage_model::Identity>| {
        service.and_then(f).map(ToString::to_string)
    };
    json!({
        "owner": s(|x| x.owner.as_ref()),
        "backup_owner": s(|x| x.backup_owner.as_ref()),
        "emergency_approver": s(|x| x.emergency_approver.as_ref()),
    })
}

/// The input document for a build check (see docs/rules.md).
pub fn build_input(
    facts: &BuildFacts,
    cx: &BuildContext,
    exceptions: &[Exception],
    now: Timestamp,
) -> Json {
    let dockerfile = cx.dockerfile.as_deref().map(|text| {
        let df = parse_dockerfile_with_args(text, &cx.build_args);
        json!({
            "bases": df.bases.iter().map(|b| json!({
                "reference": b.reference,
                "registry": b.name.as_ref().map(|n| n.registry().to_string()),
                "name": b.name.as_ref().map(ToString::to_string),
                "tag": b.tag.as_ref().map(ToString::to_string),
                "digest": b.digest.as_ref().map(ToString::to_string),
                "line": b.line,
                "final_stage": b.final_stage,
            })).collect::<Vec<_>>(),
        })
    });
    let bases: Vec<Json> = facts
        .bases
        .iter()
        .map(|b| {
            let registry = b
                .name
                .as_deref()
                .and_then(|n| lineage_model::Repository::parse(n).ok())
                .map(|r| r.registry().to_string());
            let mut v = serde_json::to_value(b).unwrap_or(Json::Null);
            if let Json::Object(m) = &mut v {
                m.insert("registry".into(), json!(registry));
            }
            v
        })
        .collect();
    let mut build = serde_json::to_value(facts).unwrap_or(Json::Null);
    if let Json::Object(m) = &mut build {
        m.insert("bases".into(), Json::Array(bases));
    }
    json!({
        "kind": "build",
        "now": now.to_string(),
        "now_unix": now.unix(),
        "environment": { "name": cx.environment, "production": cx.production },
        "build": build,
        "dockerfile": dockerfile,
        "service": cx.service,
        "owners": owners_json(cx.service.as_ref()),
        "exceptions": exceptions_json(exceptions, now),
    })
}

/// The input document for a deploy check (see docs/rules.md).
pub fn deploy_input(facts: &DeployFacts, exceptions: &[Exception], now: Timestamp) -> Json {
    let staging = facts
        .first_staging_deploy
        .map(|t| json!({ "first_deployed_at": t.to_string(), "first_deployed_at_unix": t.unix() }));
    json!({
        "kind": "deploy",
        "now": now.to_string(),
        "now_unix": now.unix(),
        "environment": {
            "name": facts.environment,
            "production": facts.production,
            "configured": facts.configured_environments,
        },
        "deploy": {
            "service": facts.service_name,
            "image": facts.image,
            "deployer": facts.deployer,
            "approver": facts.approver,
            "recorded_approvals": facts.recorded_approvals,
            "owner_known": facts.owner_known,
            "build_check_passed": facts.build_check_passed,
            "retired": facts.retired,
            "signature": facts.signature,
            "rollback": facts.rollback,
        },
        "running": facts.running,
        "build": facts.build,
        "service": facts.service,
        "owners": owners_json(facts.service.as_ref()),
        "staging": staging,
        "stale_base": facts.stale_base,
        "exceptions": exceptions_json(exceptions, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_can_be_shared_across_threads() {
        // The server keeps one loaded set for all requests.
        fn shareable<T: Send + Sync>() {}
        shareable::<Policies>();
    }

    #[test]
    fn finds_test_rules_once() {
        let text = "package p\ntest_a if { true }\ntest_a if { 1 == 1 }\n  test_not_head := 1\ntest_b := true\n";
        assert_eq!(test_rule_names(text), vec!["test_a", "test_b"]);
    }

    #[test]
    fn reads_regorus_error_position() {
        let text = "\n--> policies/x.rego:3:7\n  |\n3 | deny contains {\n  |       ^\nerror: unexpected token";
        let e = RegoError::from_regorus("fallback.rego", &text);
        assert_eq!(
            (e.file.as_str(), e.line, e.column),
            ("policies/x.rego", 3, 7)
        );
        assert_eq!(e.message, "unexpected token");
    }
}
