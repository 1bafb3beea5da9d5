//! API tokens: scopes, secrets and their hashes; `token create|list|revoke`, which the CLI
//! calls and the server judges presented tokens by.
//!
//! A token is `lin_` + a public id + `_` + 256 random bits (base64url). The ledger keeps only
//! the SHA-256 of the whole string, so a copy of the ledger cannot be used to call the server;
//! the secret is shown once, when it is created. Looking a presented token up by its hash
//! means no secret is ever compared byte by byte, and nothing secret reaches a log line.

use base64::Engine as _;
use lineage_model::{Identity, Record, ServiceName, Timestamp, TokenGrant, TokenRevocation};
use lineage_store::Store;
use serde::Serialize;
use sha2::Digest as _;

/// What a token may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Read,
    BuildWrite,
    DeployWrite,
    /// Record approvals, as the token's identity.
    Approve,
    /// Write on behalf of another identity (a `by` that is not the token's own): for a
    /// deploy bot that records who pressed the button.
    ActAs,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Read,
        Scope::BuildWrite,
        Scope::DeployWrite,
        Scope::Approve,
        Scope::ActAs,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::BuildWrite => "build:write",
            Scope::DeployWrite => "deploy:write",
            Scope::Approve => "approve",
            Scope::ActAs => "act-as",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(input: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == input)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A live token as the server knows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Who acts with it (`token create --identity`); `sa:token-NAME` when none was given.
    pub identity: Option<Identity>,
}

impl TokenInfo {
    /// Whether the token may act with `needed`.
    pub fn allows(&self, needed: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == needed || *s == Scope::Admin)
    }

    /// The identity writes made with this token are recorded under.
    pub fn identity(&self) -> Identity {
        match &self.identity {
            Some(i) => i.clone(),
            None => Identity::parse(&format!("sa:token-{}", self.name))
                .expect("token names are checked labels"),
        }
    }

    /// The identity a write acts as: the token's own, or `claimed` when the token may act
    /// for others. Anything else is refused (403): on the server, `by` is an authenticated
    /// fact, not free text.
    pub fn acting_as(&self, claimed: Option<&Identity>) -> Result<Identity, Identity> {
        let own = self.identity();
        match claimed {
            None => Ok(own),
            Some(c) if *c == own || self.allows(Scope::ActAs) => Ok(c.clone()),
            Some(_) => Err(own),
        }
    }

    pub fn from_grant(g: &TokenGrant) -> TokenInfo {
        TokenInfo {
            id: g.id.clone(),
            name: g.name.clone(),
            scopes: g.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            identity: g.identity.clone(),
        }
    }
}

/// The lowercase hex SHA-256 a token is stored and looked up by.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name `{0}` is not a lowercase label")]
    BadName(String),
    #[error("unknown scope `{0}`")]
    BadScope(String),
    #[error("a token needs at least one scope")]
    NoScope,
    #[error("a live token named `{0}` already exists")]
    Exists(String),
    #[error("no token with id `{0}`")]
    Unknown(String),
    #[error("cannot read random bytes: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] lineage_store::StoreError),
}

impl TokenError {
    pub fn hint(&self) -> String {
        match self {
            TokenError::BadName(_) => "use lowercase letters, digits and `-`, e.g. `--name ci-api`".into(),
            TokenError::BadScope(_) | TokenError::NoScope => {
                "pass `--scope` with one of `read`, `build:write`, `deploy:write`, `approve`, `act-as`, `admin`".into()
            }
            TokenError::Exists(name) => format!(
                "pick another name, or revoke the old one first (`lineage token list` shows the id of `{name}`)"
            ),
            TokenError::Unknown(_) => "`lineage token list` shows the ids".into(),
            TokenError::Random(_) => "check that the system's random source works".into(),
            TokenError::Store(_) => "check `--store`".into(),
        }
    }
}

/// A new token: what the ledger keeps, and the secret to show once.
pub struct Created {
    pub grant: TokenGrant,
    pub index: u64,
    /// The only copy of the secret.
    pub secret: String,
}

impl std::fmt::Debug for Created {
    // The secret never reaches a debug print or a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("grant", &self.grant)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn random(n: usize) -> Result<Vec<u8>, TokenError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(buf)
}

/// Makes a token and records its hash in the ledger.
pub fn create(
    store: &mut dyn Store,
    name: &str,
    scopes: &[String],
    identity: Option<&Identity>,
    by: &Identity,
    now: Timestamp,
) -> Result<Created, TokenError> {
    // A token name becomes part of an identity (`sa:token-NAME`), so it is a checked label.
    ServiceName::parse(name).map_err(|_| TokenError::BadName(name.to_string()))?;
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    let mut checked: Vec<String> = Vec::new();
    for s in scopes {
        let scope = Scope::parse(s).ok_or_else(|| TokenError::BadScope(s.clone()))?;
        if !checked.iter().any(|c| c == scope.as_str()) {
            checked.push(scope.as_str().to_string());
        }
    }
    if list(store)?
        .tokens
        .iter()
        .any(|t| t.name == name && !t.revoked)
    {
        return Err(TokenError::Exists(name.to_string()));
    }
    let id = hex::encode(random(6)?);
    let secret = format!(
        "lin_{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random(32)?)
    );
    let grant = TokenGrant {
        id,
        name: name.to_string(),
        scopes: checked,
        identity: identity.cloned(),
        sha256: token_hash(&secret),
        by: by.clone(),
        at: now,
    };
    let index = store.record_facts(&[Record::Token(grant.clone())], now, Some(by))?[0];
    Ok(Created {
        grant,
        index,
        secret,
    })
}

/// One token as `token list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Who acts with the token.
    pub identity: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenList {
    pub schema: u32,
    pub tokens: Vec<TokenRow>,
}

/// Every token ever made, oldest first, with whether it was revoked.
pub fn list(store: &dyn Store) -> Result<TokenList, TokenError> {
    let revoked: Vec<String> = store
        .facts("token_revoked", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::TokenRevoked(r) => Some(r.id),
            _ => None,
        })
        .collect();
    let tokens = store
        .facts("token", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Token(g) => Some(TokenRow {
                revoked: revoked.contains(&g.id),
                identity: TokenInfo::from_grant(&g).identity().to_string(),
                id: g.id,
                name: g.name,
                scopes: g.scopes,
                created_by: g.by.to_string(),
                created_at: g.at,
            }),
            _ => None,
        })
        .collect();
    Ok(TokenList { schema: 1, tokens })
}

/// Revokes a token; revoking a revoked token is a no-op (`Ok(None)`).
pub fn revoke(
    store: &mut dyn Store,
    id: &str,
    by: &Identity,
    now: Timestamp,
) -> Result<Option<u64>, TokenError> {
    let tokens = list(store)?;
    let Some(row) = tokens.tokens.iter().find(|t| t.id == id) else {
        return Err(TokenError::Unknown(id.to_string()));
    };
    if row.revoked {
        return Ok(None);
    }
    let record = Record::TokenRevoked(TokenRevocation {
        id: id.to_string(),
        by: by.clone(),
        at: now,
    });
    Ok(Some(store.record_facts(&[record], now, Some(by))?[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_identities() {
        let t = TokenInfo {
            id: "a".into(),
            name: "ci".into(),
            scopes: vec![Scope::BuildWrite],
            identity: None,
        };
        assert!(t.allows(Scope::BuildWrite) && !t.allows(Scope::Read));
        let admin = TokenInfo {
            scopes: vec![Scope::Admin],
            ..t.clone()
        };
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        assert_eq!(t.identity().to_string(), "sa:token-ci");
        let jonas = Identity::parse("jonas@acme.dev").unwrap();
        assert_eq!(t.acting_as(None).unwrap().to_string(), "sa:token-ci");
        assert!(t.acting_as(Some(&jonas)).is_err());
        let own = TokenInfo {
            identity: Some(jonas.clone()),
            ..t.clone()
        };
        assert_eq!(own.acting_as(Some(&jonas)).unwrap(), jonas);
        let bot = TokenInfo {
            scopes: vec![Scope::DeployWrite, Scope::ActAs],
            ..t.clone()
        };
        assert_eq!(bot.acting_as(Some(&jonas)).unwrap(), jonas);
        assert_eq!(admin.acting_as(Some(&jonas)).unwrap(), jonas);
    }
}
