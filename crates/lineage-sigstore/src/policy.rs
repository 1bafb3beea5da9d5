//! Who must have signed: cosign-style identity matching, or a managed key.
//!
//! The semantics follow cosign's `--certificate-identity[-regexp]` and
//! `--certificate-oidc-issuer[-regexp]`: an exact identity must equal one of the certificate's
//! subject alternative names (email, URI or Fulcio's username otherName); a regular expression
//! must match one of them *somewhere* (Go's `regexp.MatchString` is unanchored, and so is this;
//! anchor with `^…$` to pin the whole value). The issuer comes from Fulcio's extension
//! 1.3.6.1.4.1.57264.1.8, falling back to the deprecated 1.3.6.1.4.1.57264.1.1.

use time::OffsetDateTime;

use crate::keys::VerifyingKey;

/// An exact value or a regular expression.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn exact(value: impl Into<String>) -> Matcher {
        Matcher::Exact(value.into())
    }

    /// A regular expression in the `regex` crate's syntax (RE2-like, as Go's).
    pub fn regex(pattern: &str) -> Result<Matcher, regex::Error> {
        regex::Regex::new(pattern).map(Matcher::Regex)
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Matcher::Exact(e) => format!("`{e}`"),
            Matcher::Regex(r) => format!("regexp `{}`", r.as_str()),
        }
    }
}

/// The verification policy for one signature.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    /// Required certificate identity (SAN); `None` accepts any identity.
    pub identity: Option<Matcher>,
    /// Required OIDC issuer; `None` accepts any issuer.
    pub issuer: Option<Matcher>,
    /// A managed key: when set, the signature must be by this key and not by a certificate.
    pub key: Option<VerifyingKey>,
    /// Check certificate validity at this time instead of the log's or TSA's verified time.
    /// For re-verifying under an externally known signing time; the log evidence is still
    /// verified in full.
    pub at: Option<OffsetDateTime>,
}

impl IdentityPolicy {
    /// Keyless: the certificate must match both.
    pub fn keyless(identity: Matcher, issuer: Matcher) -> IdentityPolicy {
        IdentityPolicy {
            identity: Some(identity),
            issuer: Some(issuer),
            ..IdentityPolicy::default()
        }
    }

    /// Keyless with no identity requirement: the chain, log and signature are still checked,
    /// but anyone with a Fulcio certificate passes. For inspection, not for gates.
    pub fn any_identity() -> IdentityPolicy {
        IdentityPolicy::default()
    }

    /// A managed key.
    pub fn key(key: VerifyingKey) -> IdentityPolicy {
        IdentityPolicy {
            key: Some(key),
            ..IdentityPolicy::default()
        }
    }

    /// Check certificate validity at `at` instead of the evidence's time.
    pub fn at_time(mut self, at: OffsetDateTime) -> IdentityPolicy {
        self.at = Some(at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_unanchored_like_cosign_and_exact_is_exact() {
        let r = Matcher::regex("github.com/kubewarden/").unwrap();
        assert!(r.matches("https://github.com/kubewarden/x@refs/tags/v1"));
        assert!(!r.matches("https://gitlab.com/kubewarden/x"));
        let anchored = Matcher::regex("^https://github.com/kubewarden/").unwrap();
        assert!(!anchored.matches("evil https://github.com/kubewarden/"));
        let e = Matcher::exact("a@b.c");
        assert!(e.matches("a@b.c"));
        assert!(!e.matches("a@b.cd"));
    }
}
