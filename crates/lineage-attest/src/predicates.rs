//! Lineage's own predicate types for deploys, approvals and ownership changes, wrapped in
//! in-toto v1 Statements (in-toto attestation framework, `spec/v1/predicate.md`: a predicate
//! type is a versioned URI owned by its author).
//!
//! Each predicate's fields are documented in `PREDICATES.md`; field names are a public format
//! (add fields, never rename). Times are RFC 3339 UTC strings, identities are Lineage
//! identities as recorded.

use std::collections::BTreeMap;

use lineage_model::{DeployRecord, ServiceChange};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::statement::{Statement, Subject};

/// A digest was deployed to an environment.
pub const DEPLOY_PREDICATE_V1: &str = "https://lineage.dev/attestation/deploy/v1";
/// Someone approved deploying a digest to an environment.
pub const APPROVAL_PREDICATE_V1: &str = "https://lineage.dev/attestation/approval/v1";
/// A service's owners or metadata changed.
pub const OWNERSHIP_PREDICATE_V1: &str = "https://lineage.dev/attestation/ownership/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployPredicate {
    pub service: String,
    pub environment: String,
    pub deployed_by: String,
    pub deployed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPredicate {
    pub service: String,
    pub environment: String,
    pub approved_by: String,
    /// The deploy the approval was recorded with; Lineage records approvals at deploy time.
    pub approved_at: String,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipPredicate {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    pub changed_by: String,
    pub changed_at: String,
}

fn image_subject(deploy: &DeployRecord) -> Subject {
    Subject {
        name: deploy.image.to_string(),
        digest: BTreeMap::from([(
            deploy.digest.algorithm().as_str().to_string(),
            deploy.digest.hex().to_string(),
        )]),
    }
}

/// The deploy statement: subject = the deployed image and digest.
pub fn deploy_statement(deploy: &DeployRecord) -> Statement {
    let predicate = DeployPredicate {
        service: deploy.service.as_str().to_string(),
        environment: deploy.env.as_str().to_string(),
        deployed_by: deploy.by.as_str().to_string(),
        deployed_at: deploy.at.to_string(),
        approved_by: deploy.approved_by.as_ref().map(|i| i.as_str().to_string()),
        ticket: deploy.ticket.clone(),
    };
    Statement::new_v1(
        vec![image_subject(deploy)],
        DEPLOY_PREDICATE_V1,
        serde_json::to_value(predicate).expect("predicates serialise"),
    )
}

/// The approval statement of a deploy, or `None` when nobody approved it.
pub fn approval_statement(deploy: &DeployRecord) -> Option<Statement> {
    let approver = deploy.approved_by.as_ref()?;
    let predicate = ApprovalPredicate {
        service: deploy.service.as_str().to_string(),
        environment: deploy.env.as_str().to_string(),
        approved_by: approver.as_str().to_string(),
        approved_at: deploy.at.to_string(),
        requested_by: deploy.by.as_str().to_string(),
        ticket: deploy.ticket.clone(),
    };
    Some(Statement::new_v1(
        vec![image_subject(deploy)],
        APPROVAL_PREDICATE_V1,
        serde_json::to_value(predicate).expect("predicates serialise"),
    ))
}

/// The ownership-change statement. A service is not an artifact with a digest, so the subject
/// is named `lineage:service/NAME` and its digest is the SHA-256 of the canonical JSON of the
/// new service record: the statement pins exactly the state it vouches for.
pub fn ownership_statement(change: &ServiceChange) -> Statement {
    let s = &change.service;
    let record_hash = Sha256::digest(lineage_model::canonical_json(s).as_bytes());
    let predicate = OwnershipPredicate {
        service: s.name.as_str().to_string(),
        owner: s.owner.as_ref().map(|i| i.as_str().to_string()),
        backup_owner: s.backup_owner.as_ref().map(|i| i.as_str().to_string()),
        emergency_approver: s
            .emergency_approver
            .as_ref()
            .map(|i| i.as_str().to_string()),
        source_repo: s.source_repo.as_ref().map(|r| r.as_str().to_string()),
        images: s.images.iter().map(|i| i.to_string()).collect(),
        changed_by: change.by.as_str().to_string(),
        changed_at: change.at.to_string(),
    };
    Statement::new_v1(
        vec![Subject {
            name: format!("lineage:service/{}", s.name.as_str()),
            digest: BTreeMap::from([("sha256".to_string(), hex::encode(record_hash))]),
        }],
        OWNERSHIP_PREDICATE_V1,
        serde_json::to_value(predicate).expect("predicates serialise"),
    )
}
