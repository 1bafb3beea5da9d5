//! Small checked names: commits, environments, services, identities and source repositories.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A full git object id: 40 hex characters (SHA-1) or 64 (SHA-256 repositories).
///
/// Abbreviated ids are refused: two services can share a 7-character prefix, and an
/// abbreviation cannot be checked against the repository later.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

impl CommitId {
    pub fn parse(input: &str) -> Result<CommitId, ParseError> {
        let hint = "give the full id, e.g. the output of `git rev-parse HEAD`: 40 hex characters";
        if let Some(bad) = input.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ParseError::new(
                "commit",
                input,
                format!("contains `{bad}`, which is not a hex character"),
                hint,
            ));
        }
        match input.len() {
            40 | 64 => Ok(CommitId(input.to_ascii_lowercase())),
            0 => Err(ParseError::new("commit", input, "is empty", hint)),
            n if n < 40 => Err(ParseError::new(
                "commit",
                input,
                format!("is abbreviated ({n} hex characters); a full commit id has 40 (or 64)"),
                hint,
            )),
            n => Err(ParseError::new(
                "commit",
                input,
                format!("has {n} hex characters; a commit id has 40 (or 64)"),
                hint,
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

/// Checks a lowercase DNS-label-like name: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`.
fn check_label(field: &'static str, input: &str, example: &str) -> Result<(), ParseError> {
    let hint = || {
        format!("use 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit, e.g. `{example}`")
    };
    if input.is_empty() {
        return Err(ParseError::new(field, input, "is empty", hint()));
    }
    if input.len() > 63 {
        return Err(ParseError::new(
            field,
            input,
            format!("is {} characters long; the limit is 63", input.len()),
            hint(),
        ));
    }
    if input.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::new(
            field,
            input,
            "has uppercase letters",
            format!("write `{}`", input.to_ascii_lowercase()),
        ));
    }
    if let Some(bad) = input
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(ParseError::new(
            field,
            input,
            format!("contains `{bad}`"),
            hint(),
        ));
    }
    if input.starts_with('-') || input.ends_with('-') {
        return Err(ParseError::new(
            field,
            input,
            "starts or ends with `-`",
            hint(),
        ));
    }
    Ok(())
}

/// The name of a deployment environment, e.g. `production` or `customer-eu`.
///
/// This checks only the spelling; whether the environment is configured is the caller's
/// question, because only the caller has the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(input: &str) -> Result<EnvName, ParseError> {
        check_label("environment", input, "production")?;
        Ok(EnvName(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a service, the unit that has an owner, e.g. `api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(input: &str) -> Result<ServiceName, ParseError> {
        check_label("service", input, "payments-api")?;
        Ok(ServiceName(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an identity is a human or a machine account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Person,
    ServiceAccount,
}

/// Who did something: a person (`maya@acme.dev` or a handle `maya`) or a service account
/// (`sa:deploy-bot`, a Kubernetes `system:serviceaccount:NAMESPACE:NAME`, or a workload URI
/// such as a CI workflow `https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(String);

const IDENTITY_HINT: &str =
    "write an email (`maya@acme.dev`), a handle (`maya`), or a service account (`sa:deploy-bot`)";

impl Identity {
    pub fn parse(input: &str) -> Result<Identity, ParseError> {
        let err = |p: &str| ParseError::new("identity", input, p, IDENTITY_HINT);
        if input.is_empty() {
            return Err(err("is empty"));
        }
        if input.len() > 254 {
            return Err(err("is longer than 254 characters"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace"));
        }
        let body = input
            .strip_prefix("sa:")
            .or_else(|| input.strip_prefix("system:serviceaccount:"))
            .unwrap_or(input);
        if body.is_empty() {
            return Err(err("names no account after the prefix"));
        }
        // A URI names a workload identity (a CI workflow, a SPIFFE id): it may carry
        // percent-encoded characters; no email rules apply.
        let is_uri = body.contains("://");
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || "._-+@:/".contains(c) || (is_uri && c == '%');
        if let Some(bad) = body.chars().find(|c| !allowed(*c)) {
            return Err(ParseError::new(
                "identity",
                input,
                format!("contains `{bad}`"),
                IDENTITY_HINT,
            ));
        }
        if let Some((local, domain)) = body.split_once('@').filter(|_| !is_uri) {
            if local.is_empty()
                || domain.is_empty()
                || domain.contains('@')
                || !domain.contains('.')
            {
                return Err(err("is not a valid email address"));
            }
        }
        Ok(Identity(input.to_string()))
    }

    pub fn kind(&self) -> IdentityKind {
        if self.0.starts_with("sa:")
            || self.0.starts_with("system:serviceaccount:")
            || self.0.contains("://")
        {
            IdentityKind::ServiceAccount
        } else {
            IdentityKind::Person
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two identities, as written, name the same person or workload: e-mail addresses
    /// are compared without case. The one rule for self-approval (deploy gate, policy, fleet).
    pub fn same(a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }
}

/// A source repository, normalised so that the SSH and HTTPS spellings of one repository are
/// equal: `git@github.com:acme/api.git` and `https://github.com/acme/api` both become the latter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRepo(String);

impl SourceRepo {
    pub fn parse(input: &str) -> Result<SourceRepo, ParseError> {
        let hint = "write the repository URL, e.g. `https://github.com/acme/api`";
        let err = |p: &str| ParseError::new("source repository", input, p, hint);
        if input.len() > 2048 {
            return Err(err("is longer than 2048 bytes"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace"));
        }
        let (host, path) = if let Some(rest) = input
            .strip_prefix("https://")
            .or_else(|| input.strip_prefix("http://"))
            .or_else(|| input.strip_prefix("ssh://"))
            .or_else(|| input.strip_prefix("git+https://"))
        {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            match rest.split_once('/') {
                Some((host, path)) => (host, path),
                None => return Err(err("has no path after the host")),
            }
        } else if let Some((user_host, path)) = input.split_once(':') {
            // scp-like syntax: `git@github.com:acme/api.git`.
            let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
            (host, path)
        } else {
            return Err(err("is not a URL"));
        };
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix(":22").unwrap_or(&host);
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        if host.is_empty() || !host.contains(['.', ':']) && host != "localhost" {
            return Err(err("has no host"));
        }
        if path.is_empty() {
            return Err(err("has no path after the host"));
        }
        Ok(SourceRepo(format!("https://{host}/{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_type {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::parse(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_type!(CommitId, EnvName, ServiceName, Identity, SourceRepo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits() {
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(CommitId::parse(full).unwrap().as_str(), full);
        assert_eq!(
            CommitId::parse(&full.to_uppercase()).unwrap().as_str(),
            full,
            "uppercase hex is the same commit"
        );
        assert!(CommitId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            CommitId::parse("0123456").unwrap_err().problem,
            "is abbreviated (7 hex characters); a full commit id has 40 (or 64)"
        );
        assert_eq!(
            CommitId::parse(&"a".repeat(41)).unwrap_err().problem,
            "has 41 hex characters; a commit id has 40 (or 64)"
        );
        assert_eq!(
            CommitId::parse("main").unwrap_err().problem,
            "contains `m`, which is not a hex character"
        );
    }

    #[test]
    fn labels() {
        assert!(EnvName::parse("customer-eu").is_ok());
        assert_eq!(EnvName::parse("Prod").unwrap_err().hint, "write `prod`");
        assert_eq!(
            EnvName::parse("-x").unwrap_err().problem,
            "starts or ends with `-`"
        );
        assert_eq!(EnvName::parse("a_b").unwrap_err().problem, "contains `_`");
        assert_eq!(
            ServiceName::parse(&"a".repeat(64)).unwrap_err().problem,
            "is 64 characters long; the limit is 63"
        );
    }

    #[test]
    fn identities() {
        assert_eq!(
            Identity::parse("maya@acme.dev").unwrap().kind(),
            IdentityKind::Person
        );
        assert_eq!(
            Identity::parse("maya").unwrap().kind(),
            IdentityKind::Person
        );
        assert_eq!(
            Identity::parse("sa:deploy-bot").unwrap().kind(),
            IdentityKind::ServiceAccount
        );
        assert_eq!(
            Identity::parse("system:serviceaccount:ci:deployer")
                .unwrap()
                .kind(),
            IdentityKind::ServiceAccount
        );
        assert_eq!(
            Identity::parse("maya@").unwrap_err().problem,
            "is not a valid email address"
        );
        assert_eq!(
            Identity::parse("a b").unwrap_err().problem,
            "contains whitespace"
        );
        assert_eq!(
            Identity::parse("sa:").unwrap_err().problem,
            "names no account after the prefix"
        );
        assert_eq!(Identity::parse("x;y").unwrap_err().problem, "contains `;`");
    }

    #[test]
    fn source_repos_normalise() {
        for input in [
            "https://github.com/acme/api",
            "https://github.com/acme/api.git",
            "https://github.com/acme/api/",
            "git@github.com:acme/api.git",
            "ssh://git@github.com/acme/api.git",
            "https://GitHub.com/acme/api",
        ] {
            assert_eq!(
                SourceRepo::parse(input).unwrap().as_str(),
                "https://github.com/acme/api",
                "input {input}"
            );
        }
        assert_eq!(
            SourceRepo::parse("acme/api").unwrap_err().problem,
            "is not a URL"
        );
        assert_eq!(
            SourceRepo::parse("https://github.com").unwrap_err().problem,
            "has no path after the host"
        );
        // A repository URL is bounded like every other free value.
        let long = format!("https://github.com/acme/{}", "a".repeat(3000));
        assert_eq!(
            SourceRepo::parse(&long).unwrap_err().problem,
            "is longer than 2048 bytes"
        );
    }
}
