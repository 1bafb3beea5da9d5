//! in-toto Statements (in-toto attestation framework, `spec/v1/statement.md`; and the older
//! v0.1 layer, which differs only in its `_type`).
//!
//! A Statement binds a predicate to subjects identified by digest. Parsing checks the layer's
//! own rules: a known `_type`, a non-empty `subject` list whose entries each carry at least one
//! digest, and a non-empty `predicateType`. Anything else inside a DSSE envelope with payload
//! type `application/vnd.in-toto+json` (an in-toto v0.9 *link*, say) is reported as "not an
//! in-toto Statement", even when its signature is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `_type` of a v1 Statement.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of a v0.1 Statement.
pub const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";

/// Which Statement layer a document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatementVersion {
    V0_1,
    V1,
}

/// A subject: an artifact named and identified by one or more digests (`DigestSet`,
/// algorithm name -> lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

/// An in-toto Statement. `predicate` is kept as JSON; typed views live in [`crate::slsa`] and
/// [`crate::predicates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub predicate: serde_json::Value,
}

/// Why bytes are not a usable Statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not an in-toto Statement: {0}")]
    NotAStatement(String),
    #[error("invalid in-toto Statement: {0}")]
    Invalid(String),
}

impl Statement {
    /// A v1 Statement.
    pub fn new_v1(
        subject: Vec<Subject>,
        predicate_type: impl Into<String>,
        predicate: serde_json::Value,
    ) -> Statement {
        Statement {
            type_: STATEMENT_V1.to_string(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Parses and checks a v1 or v0.1 Statement.
    pub fn from_json(bytes: &[u8]) -> Result<Statement, StatementError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| StatementError::Json(e.to_string()))?;
        Statement::from_value(value)
    }

    /// As [`Statement::from_json`], from a parsed value.
    pub fn from_value(value: serde_json::Value) -> Result<Statement, StatementError> {
        let obj = value.as_object().ok_or_else(|| {
            StatementError::NotAStatement("the payload is not a JSON object".into())
        })?;
        match obj.get("_type").and_then(|t| t.as_str()) {
            Some(STATEMENT_V1) | Some(STATEMENT_V0_1) => {}
            Some(other) => {
                return Err(StatementError::NotAStatement(format!(
                    "its `_type` is `{other}`, expected `{STATEMENT_V1}` or `{STATEMENT_V0_1}`"
                )))
            }
            None => {
                return Err(StatementError::NotAStatement(
                    "it has no string `_type` field".into(),
                ))
            }
        }
        let statement: Statement =
            serde_json::from_value(value).map_err(|e| StatementError::Invalid(e.to_string()))?;
        statement.check()?;
        Ok(statement)
    }

    fn check(&self) -> Result<(), StatementError> {
        // statement.md: `subject` and `predicateType` are required; every subject needs a
        // digest set with at least one entry.
        if self.subject.is_empty() {
            return Err(StatementError::Invalid("`subject` is empty".into()));
        }
        for (i, s) in self.subject.iter().enumerate() {
            if s.digest.is_empty() {
                return Err(StatementError::Invalid(format!(
                    "`subject[{i}].digest` is empty"
                )));
            }
            if let Some((alg, _)) = s.digest.iter().find(|(_, v)| v.is_empty()) {
                return Err(StatementError::Invalid(format!(
                    "`subject[{i}].digest.{alg}` is empty"
                )));
            }
        }
        if self.predicate_type.is_empty() {
            return Err(StatementError::Invalid("`predicateType` is empty".into()));
        }
        Ok(())
    }

    pub fn version(&self) -> StatementVersion {
        if self.type_ == STATEMENT_V0_1 {
            StatementVersion::V0_1
        } else {
            StatementVersion::V1
        }
    }

    /// Whether some subject carries `digest` (algorithm and hex compared case-insensitively,
    /// as digest hex is case-insensitive).
    pub fn has_subject_digest(&self, digest: &lineage_model::Digest) -> bool {
        let alg = digest.algorithm().as_str();
        self.subject.iter().any(|s| {
            s.digest
                .iter()
                .any(|(a, h)| a.eq_ignore_ascii_case(alg) && h.eq_ignore_ascii_case(digest.hex()))
        })
    }

    /// Canonical JSON bytes (sorted keys, no whitespace), what Lineage signs.
    pub fn to_json(&self) -> Vec<u8> {
        lineage_model::canonical_json(self).into_bytes()
    }
}
