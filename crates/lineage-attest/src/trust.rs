//! The trust policy: which key may sign which kind of statement for which environment, and
//! when.
//!
//! A valid signature only says "this key signed"; the policy decides whether that key counts.
//! Each key has roles (builder, deployer, approver), optional environments, an optional
//! validity window (rotation: several keys may be valid at once, each for its own period) and
//! an optional revocation time. A revoked key's signatures made *before* the revocation still
//! count; those made at or after it do not, and the outcome says so.
//!
//! The signing time is the caller's to supply. Prefer a time from a transparency log or a
//! timestamp authority: a time taken from the signed statement itself is asserted by the very
//! key being judged, so a stolen key could backdate.
//!
//! Configured in `lineage.toml`:
//! ```toml
//! [[trust.keys]]
//! id = "ci-2026"
//! public_key_file = "keys/ci-2026.pub.pem"
//! roles = ["builder"]
//! environments = ["staging", "production"]   # omit for every environment
//! not_before = "2026-01-01T00:00:00Z"        # optional
//! not_after = "2027-01-01T00:00:00Z"         # optional
//! revoked_at = "2026-06-01T12:00:00Z"        # optional
//! ```
//! Loading the PEM files is the caller's job ([`TrustConfig::resolve`] takes a loader).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use lineage_model::{EnvName, Timestamp};
use serde::{Deserialize, Serialize};

use crate::dsse::TrustedKey;
use crate::keys::{KeyError, PublicKey};

/// What a key may sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Build provenance.
    Builder,
    /// Deploy statements.
    Deployer,
    /// Approvals.
    Approver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Builder => "builder",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[trust.keys]]` entry as written, before its key file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKeyConfig {
    pub id: String,
    pub public_key_file: PathBuf,
    pub roles: BTreeSet<Role>,
    /// Empty = every environment.
    pub environments: Vec<EnvName>,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// The `[trust]` table as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustConfig {
    pub keys: Vec<TrustedKeyConfig>,
}

/// One trusted key with its constraints.
#[derive(Debug, Clone)]
pub struct TrustedKeyEntry {
    pub id: String,
    pub public_key: PublicKey,
    pub roles: BTreeSet<Role>,
    /// Empty = every environment.
    pub environments: Vec<EnvName>,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// The resolved trust policy.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<TrustedKeyEntry>,
}

/// Why the trust configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TrustConfigError {
    #[error("invalid trust configuration: {0}")]
    Toml(String),
    #[error("trust key `{id}`: {problem}")]
    Entry { id: String, problem: String },
    #[error("trust key `{id}` is listed twice")]
    DuplicateId { id: String },
    #[error("trust key `{id}`: could not read `{path}`: {reason}")]
    Load {
        id: String,
        path: PathBuf,
        reason: String,
    },
    #[error("trust key `{id}`: `{path}` is not a usable public key: {source}")]
    Key {
        id: String,
        path: PathBuf,
        #[source]
        source: KeyError,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TomlTime {
    Text(String),
    Native(toml::value::Datetime),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    public_key_file: PathBuf,
    roles: Vec<Role>,
    #[serde(default)]
    environments: Vec<String>,
    not_before: Option<TomlTime>,
    not_after: Option<TomlTime>,
    revoked_at: Option<TomlTime>,
}

#[derive(Deserialize, Default)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(default)]
    trust: Option<RawTrust>,
}

impl TrustConfig {
    /// Reads the `[trust]` table of a whole `lineage.toml` (other tables are ignored; a
    /// missing `[trust]` is an empty policy).
    pub fn from_toml_str(text: &str) -> Result<TrustConfig, TrustConfigError> {
        let doc: RawDocument =
            toml::from_str(text).map_err(|e| TrustConfigError::Toml(e.to_string()))?;
        TrustConfig::from_raw(doc.trust.unwrap_or_default())
    }

    /// Reads an already-parsed `[trust]` table.
    pub fn from_toml_value(table: toml::Value) -> Result<TrustConfig, TrustConfigError> {
        let raw: RawTrust = table
            .try_into()
            .map_err(|e: toml::de::Error| TrustConfigError::Toml(e.to_string()))?;
        TrustConfig::from_raw(raw)
    }

    fn from_raw(raw: RawTrust) -> Result<TrustConfig, TrustConfigError> {
        let mut keys: Vec<TrustedKeyConfig> = Vec::new();
        for e in raw.keys {
            let problem = |p: String| TrustConfigError::Entry {
                id: e.id.clone(),
                problem: p,
            };
            if e.id.is_empty() {
                return Err(problem("`id` is empty".into()));
            }
            if keys.iter().any(|k| k.id == e.id) {
                return Err(TrustConfigError::DuplicateId { id: e.id });
            }
            if e.roles.is_empty() {
                return Err(problem(
                    "`roles` is empty; write e.g. `roles = [\"builder\"]`".into(),
                ));
            }
            let environments = e
                .environments
                .iter()
                .map(|s| EnvName::parse(s).map_err(|err| problem(err.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let time = |field: &str,
                        t: &Option<TomlTime>|
             -> Result<Option<Timestamp>, TrustConfigError> {
                match t {
                    None => Ok(None),
                    Some(TomlTime::Text(s)) => Timestamp::parse(s)
                        .map(Some)
                        .map_err(|err| problem(format!("`{field}`: {err}"))),
                    Some(TomlTime::Native(d)) => Timestamp::parse(&d.to_string())
                        .map(Some)
                        .map_err(|err| problem(format!("`{field}`: {err}"))),
                }
            };
            let not_before = time("not_before", &e.not_before)?;
            let not_after = time("not_after", &e.not_after)?;
            let revoked_at = time("revoked_at", &e.revoked_at)?;
            if let (Some(a), Some(b)) = (not_before, not_after) {
                if b < a {
                    return Err(problem(format!(
                        "`not_after` ({b}) is before `not_before` ({a})"
                    )));
                }
            }
            keys.push(TrustedKeyConfig {
                id: e.id.clone(),
                public_key_file: e.public_key_file,
                roles: e.roles.into_iter().collect(),
                environments,
                not_before,
                not_after,
                revoked_at,
            });
        }
        Ok(TrustConfig { keys })
    }

    /// Reads each key file through `load` (which returns the PEM text) and builds the policy.
    /// Relative paths are passed as written; resolving them is the loader's business.
    pub fn resolve<E: fmt::Display>(
        self,
        mut load: impl FnMut(&Path) -> Result<String, E>,
    ) -> Result<TrustPolicy, TrustConfigError> {
        let mut keys = Vec::with_capacity(self.keys.len());
        for k in self.keys {
            let pem = load(&k.public_key_file).map_err(|e| TrustConfigError::Load {
                id: k.id.clone(),
                path: k.public_key_file.clone(),
                reason: e.to_string(),
            })?;
            let public_key = PublicKey::from_pem(&pem).map_err(|source| TrustConfigError::Key {
                id: k.id.clone(),
                path: k.public_key_file.clone(),
                source: source.into(),
            })?;
            keys.push(TrustedKeyEntry {
                id: k.id,
                public_key,
                roles: k.roles,
                environments: k.environments,
                not_before: k.not_before,
                not_after: k.not_after,
                revoked_at: k.revoked_at,
            });
        }
        Ok(TrustPolicy { keys })
    }
}

impl TrustPolicy {
    /// Every key, named by its policy id, for DSSE verification. Verify against all of them
    /// and then [`evaluate`], so that a signature by a known key in the wrong role gets that
    /// precise reason instead of "no trusted signature".
    pub fn trusted_keys(&self) -> Vec<TrustedKey> {
        self.keys
            .iter()
            .map(|k| TrustedKey::with_id(k.id.clone(), k.public_key.clone()))
            .collect()
    }

    pub fn entry(&self, id: &str) -> Option<&TrustedKeyEntry> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// Why one verified key does not make a statement trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Untrusted {
    /// No key verified a signature at all.
    NoVerifiedSignature,
    /// The key verified but is not in the policy.
    UnknownKey { key: String },
    WrongRole {
        key: String,
        role: Role,
        allowed: Vec<Role>,
    },
    WrongEnvironment {
        key: String,
        environment: String,
        allowed: Vec<String>,
    },
    NotYetValid {
        key: String,
        not_before: String,
        signed_at: String,
    },
    Expired {
        key: String,
        not_after: String,
        signed_at: String,
    },
    Revoked {
        key: String,
        revoked_at: String,
        signed_at: String,
    },
}

impl Untrusted {
    pub fn code(&self) -> &'static str {
        match self {
            Untrusted::NoVerifiedSignature => "trust-no-verified-signature",
            Untrusted::UnknownKey { .. } => "trust-unknown-key",
            Untrusted::WrongRole { .. } => "trust-wrong-role",
            Untrusted::WrongEnvironment { .. } => "trust-wrong-environment",
            Untrusted::NotYetValid { .. } => "trust-key-not-yet-valid",
            Untrusted::Expired { .. } => "trust-key-expired",
            Untrusted::Revoked { .. } => "trust-key-revoked",
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Untrusted::NoVerifiedSignature => {
                write!(f, "no signature verified with any key in the trust policy")
            }
            Untrusted::UnknownKey { key } => {
                write!(f, "signed by key `{key}`, which is not in the trust policy")
            }
            Untrusted::WrongRole { key, role, allowed } => write!(
                f,
                "signed by key `{key}`, which is not trusted as {role} (its roles: {})",
                list(allowed)
            ),
            Untrusted::WrongEnvironment {
                key,
                environment,
                allowed,
            } => write!(
                f,
                "signed by key `{key}`, which is not trusted for {environment} (only for {})",
                list(allowed)
            ),
            Untrusted::NotYetValid {
                key,
                not_before,
                signed_at,
            } => write!(
                f,
                "key `{key}` is valid from {not_before}; signature made at {signed_at}, before that"
            ),
            Untrusted::Expired {
                key,
                not_after,
                signed_at,
            } => write!(
                f,
                "key `{key}` was valid until {not_after}; signature made at {signed_at}, after that"
            ),
            Untrusted::Revoked {
                key,
                revoked_at,
                signed_at,
            } => write!(
                f,
                "key `{key}` was revoked at {revoked_at}; signature made at {signed_at} after revocation"
            ),
        }
    }
}

/// The policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum TrustOutcome {
    /// At least one verified key is trusted for this role, environment and time.
    Trusted { key: String },
    /// No verified key is; one reason per verified key (or [`Untrusted::NoVerifiedSignature`]).
    Untrusted { reasons: Vec<Untrusted> },
}

impl TrustOutcome {
    pub fn is_trusted(&self) -> bool {
        matches!(self, TrustOutcome::Trusted { .. })
    }
}

/// Decides whether a statement whose signatures verified with `verified_key_ids` (policy
/// ids, as [`TrustPolicy::trusted_keys`] names them) is trusted for `role` in `env` (`None`:
/// not environment-specific, e.g. a build) at `signed_at`.
pub fn evaluate(
    policy: &TrustPolicy,
    role: Role,
    env: Option<&EnvName>,
    signed_at: Timestamp,
    verified_key_ids: &[String],
) -> TrustOutcome {
    let mut reasons = Vec::new();
    for id in verified_key_ids {
        let Some(entry) = policy.entry(id) else {
            reasons.push(Untrusted::UnknownKey { key: id.clone() });
            continue;
        };
        match check_entry(entry, role, env, signed_at) {
            None => return TrustOutcome::Trusted { key: id.clone() },
            Some(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        reasons.push(Untrusted::NoVerifiedSignature);
    }
    TrustOutcome::Untrusted { reasons }
}

fn check_entry(
    entry: &TrustedKeyEntry,
    role: Role,
    env: Option<&EnvName>,
    signed_at: Timestamp,
) -> Option<Untrusted> {
    let key = entry.id.clone();
    if !entry.roles.contains(&role) {
        return Some(Untrusted::WrongRole {
            key,
            role,
            allowed: entry.roles.iter().copied().collect(),
        });
    }
    if let Some(env) = env {
        if !entry.environments.is_empty() && !entry.environments.contains(env) {
            return Some(Untrusted::WrongEnvironment {
                key,
                environment: env.as_str().to_string(),
                allowed: entry
                    .environments
                    .iter()
                    .map(|e| e.as_str().to_string())
                    .collect(),
            });
        }
    }
    // Revocation first: it is the most important thing to tell a user about this key.
    if let Some(revoked_at) = entry.revoked_at {
        if signed_at >= revoked_at {
            return Some(Untrusted::Revoked {
                key,
                revoked_at: revoked_at.to_string(),
                signed_at: signed_at.to_string(),
            });
        }
    }
    if let Some(nb) = entry.not_before {
        if signed_at < nb {
            return Some(Untrusted::NotYetValid {
                key,
                not_before: nb.to_string(),
                signed_at: signed_at.to_string(),
            });
        }
    }
    if let Some(na) = entry.not_after {
        if signed_at > na {
            return Some(Untrusted::Expired {
                key,
                not_after: na.to_string(),
                signed_at: signed_at.to_string(),
            });
        }
    }
    None
}
