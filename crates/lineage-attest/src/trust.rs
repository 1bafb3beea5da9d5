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
//! Loading the PEM files is the caller's job ([`TrustConfig::resolve`] takes a loader). The
//! table is read from the one parsed `lineage.toml` ([`TrustConfig::from_document`]), so every
//! error points at `file:line:column`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use lineage_model::{EnvName, Timestamp};
use lineage_toml::{value, ConfigError, Document, Entry, Field, Position, Scalar, Shape, Table};
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
    /// Where `public_key_file` is written, for errors about the file it names.
    pub at: Option<Position>,
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
    /// `[trust]` is not written right: where, what, and the right form.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}trust key `{id}`: could not read `{path}`: {reason}", prefix(.at))]
    Load {
        id: String,
        path: PathBuf,
        reason: String,
        /// Where `public_key_file` is written (boxed: errors stay small).
        at: Option<Box<Position>>,
    },
    #[error("{}trust key `{id}`: `{path}` is not a usable public key: {source}", prefix(.at))]
    Key {
        id: String,
        path: PathBuf,
        #[source]
        source: KeyError,
        at: Option<Box<Position>>,
    },
}

/// `file:line:column: ` before a message about the key written there.
fn prefix(at: &Option<Box<Position>>) -> String {
    at.as_ref().map(|p| format!("{p}: ")).unwrap_or_default()
}

/// The keys of one `[[trust.keys]]` entry.
const KEY_FIELDS: &[Field] = &[
    value("id"),
    value("public_key_file"),
    value("roles"),
    value("environments"),
    value("not_before"),
    value("not_after"),
    value("revoked_at"),
];

/// `[trust]`'s keys, here and in the whole-document check (`lineage_core`'s schema).
pub const SECTION: Field = Field {
    name: "trust",
    shape: Shape::Table(&[Field {
        name: "keys",
        shape: Shape::Tables(KEY_FIELDS),
    }]),
};

impl TrustConfig {
    /// Reads the `[trust]` table of a standalone `lineage.toml` text (tests, tools); other
    /// tables are ignored and a missing `[trust]` is an empty policy. Lineage itself reads the
    /// file once (`lineage_core::LineageToml`) and calls [`TrustConfig::from_document`].
    pub fn from_toml_str(text: &str) -> Result<TrustConfig, TrustConfigError> {
        let doc = Document::parse(text, "lineage.toml")?;
        Ok(TrustConfig::from_document(&doc, None)?)
    }

    /// Reads `[trust]` (its `[[trust.keys]]`). With `environments`, every environment a key
    /// names must be one of them: a misspelt one would make the key silently trusted nowhere.
    pub fn from_document(
        doc: &Document,
        environments: Option<&[EnvName]>,
    ) -> Result<TrustConfig, ConfigError> {
        let Some(trust) = doc.section("trust") else {
            return Ok(TrustConfig::default());
        };
        let trust = trust.table()?;
        trust.deny_unknown_fields(SECTION.keys())?;
        let Some(entries) = trust.get("keys") else {
            return Ok(TrustConfig::default());
        };
        let mut keys: Vec<TrustedKeyConfig> = Vec::new();
        for table in entries.tables()? {
            let key = read_key(&table, environments)?;
            if keys.iter().any(|k| k.id == key.id) {
                let message = format!("trust key `{}` is listed twice", key.id);
                let hint = "give each `[[trust.keys]]` entry its own `id`";
                return Err(match table.get("id") {
                    Some(id) => id.error(message, hint),
                    None => table.error(message, hint),
                });
            }
            keys.push(key);
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
                at: k.at.clone().map(Box::new),
            })?;
            let public_key = PublicKey::from_pem(&pem).map_err(|source| TrustConfigError::Key {
                id: k.id.clone(),
                path: k.public_key_file.clone(),
                source: source.into(),
                at: k.at.clone().map(Box::new),
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

/// One `[[trust.keys]]` entry.
fn read_key(
    table: &Table,
    environments: Option<&[EnvName]>,
) -> Result<TrustedKeyConfig, ConfigError> {
    let id_entry = table.get("id").ok_or_else(|| {
        table.error(
            "a `[[trust.keys]]` entry has no `id`",
            "name the key: `id = \"ci-2026\"`",
        )
    })?;
    let id = id_entry.string("\"ci-2026\"")?;
    if id.is_empty() {
        return Err(id_entry.error(
            "trust key ``: `id` is empty",
            "name the key: `id = \"ci-2026\"`",
        ));
    }
    // Named after the key, so an error in a long list says which entry it is in.
    let named = |m: String| format!("trust key `{id}`: {m}");
    for entry in table.entries() {
        let names: Vec<&str> = KEY_FIELDS.iter().map(|f| f.name).collect();
        if !names.contains(&entry.key()) {
            let hint = match lineage_model::closest(entry.key(), &names) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!(
                    "a key has {}",
                    names
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(entry.key_error(named(format!("unknown field `{}`", entry.key())), hint));
        }
    }
    let required = |name: &str, example: &str| {
        table.get(name).ok_or_else(|| {
            table.error(
                named(format!("`{name}` is missing")),
                format!("write `{name} = {example}`"),
            )
        })
    };
    let file = required("public_key_file", "\"keys/ci.pub\"")?;
    let public_key_file = PathBuf::from(file.string("\"keys/ci.pub\"")?);
    let roles_entry = required("roles", "[\"builder\"]")?;
    let mut roles = BTreeSet::new();
    for (role, at) in roles_entry.strings("[\"builder\"]")? {
        let parsed =
            match role {
                "builder" => Role::Builder,
                "deployer" => Role::Deployer,
                "approver" => Role::Approver,
                other => return Err(at.error(
                    named(format!("unknown variant `{other}` in `roles`")),
                    "a role is `builder`, `deployer` or `approver`: write `roles = [\"builder\"]`",
                )),
            };
        roles.insert(parsed);
    }
    if roles.is_empty() {
        return Err(roles_entry.error(
            named("`roles` is empty".into()),
            "write e.g. `roles = [\"builder\"]`",
        ));
    }
    let mut envs = Vec::new();
    if let Some(list) = table.get("environments") {
        for (name, at) in list.strings("[\"staging\", \"production\"]")? {
            let env = EnvName::parse(name).map_err(|e| at.error(named(e.to_string()), e.hint))?;
            if let Some(configured) = environments {
                if !configured.contains(&env) {
                    let names: Vec<&str> = configured.iter().map(EnvName::as_str).collect();
                    let listed = names.join(", ");
                    let hint = match lineage_model::closest(name, &names) {
                        Some(near) => {
                            format!("did you mean `{near}`? configured environments: {listed}")
                        }
                        None => format!("configured environments: {listed}; add others under [environments] in lineage.toml"),
                    };
                    return Err(at.error(
                        named(format!("environment `{name}` is not configured")),
                        hint,
                    ));
                }
            }
            envs.push(env);
        }
    }
    let time = |field: &str| -> Result<Option<(Timestamp, Entry)>, ConfigError> {
        let Some(entry) = table.get(field) else {
            return Ok(None);
        };
        let text = match entry.scalar() {
            Scalar::String(s) => s.to_string(),
            Scalar::Datetime(d) => d,
            _ => return Err(entry.expected("a time", "\"2026-01-01T00:00:00Z\"")),
        };
        let t = Timestamp::parse(&text).map_err(|e| {
            entry.error(
                named(format!("`{field}` is `{}`: {}", entry.written(), e.problem)),
                format!("write `{field} = \"2026-01-01T00:00:00Z\"`"),
            )
        })?;
        Ok(Some((t, entry)))
    };
    let not_before = time("not_before")?;
    let not_after = time("not_after")?;
    let revoked_at = time("revoked_at")?;
    if let (Some((a, _)), Some((b, at))) = (&not_before, &not_after) {
        if b < a {
            return Err(at.error(
                named(format!("`not_after` ({b}) is before `not_before` ({a})")),
                "a key is valid from `not_before` until `not_after`; swap them",
            ));
        }
    }
    Ok(TrustedKeyConfig {
        id: id.to_string(),
        public_key_file,
        roles,
        environments: envs,
        not_before: not_before.map(|(t, _)| t),
        not_after: not_after.map(|(t, _)| t),
        revoked_at: revoked_at.map(|(t, _)| t),
        at: Some(file.position()),
    })
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
