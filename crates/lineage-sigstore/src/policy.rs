//! Who must have signed: cosign-style identity matching, or a managed key.
//!
//! The semantics follow cosign's `--certificate-identity[-regexp]` and
//! `--certificate-oidc-issuer[-regexp]`: an exact identity must equal one of the certificate's
//! subject alternative names (email, URI or Fulcio's username otherName); a regular expression
//! must match one of them *somewhere* (Go's `regexp.MatchString` is unanchored, and so is this;
//! anchor with `^…$` to pin the whole value). The issuer comes from Fulcio's extension
//! 1.3.6.1.4.1.57264.1.8, falling back to the deprecated 1.3.6.1.4.1.57264.1.1.
//!
//! A certificate signer is judged only against a policy that names both the identity and the
//! issuer ([`IdentityPolicy::certificate_matchers`]), as cosign and sigstore-python require:
//! Fulcio certifies anyone with an OIDC account, so a valid chain alone says nothing about who
//! signed. A policy that cannot judge the signer is an error ("could not decide"), never a pass.

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

/// Why a policy cannot judge a certificate signer: it lacks the identity, the issuer or both.
/// This is "could not decide": nothing was verified, and the caller must ask for the missing
/// part rather than report a failed or a passed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the signature is by a certificate, and the policy names neither the identity nor the OIDC issuer it must match")]
    MissingIdentityAndIssuer,
    #[error("the signature is by a certificate, and the policy names the OIDC issuer but not the identity it must match")]
    MissingIdentity,
    #[error("the signature is by a certificate, and the policy names the identity but not the OIDC issuer it must match")]
    MissingIssuer,
}

impl PolicyError {
    /// Whether the identity (exact or regular expression) is what is missing.
    pub fn missing_identity(self) -> bool {
        matches!(
            self,
            PolicyError::MissingIdentityAndIssuer | PolicyError::MissingIdentity
        )
    }

    /// Whether the issuer (exact or regular expression) is what is missing.
    pub fn missing_issuer(self) -> bool {
        matches!(
            self,
            PolicyError::MissingIdentityAndIssuer | PolicyError::MissingIssuer
        )
    }
}

/// The verification policy for one signature.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    /// Required certificate identity (SAN). A certificate signer needs it (and `issuer`); a
    /// key signer ignores it.
    pub identity: Option<Matcher>,
    /// Required OIDC issuer. A certificate signer needs it (and `identity`).
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

    /// The identity and the issuer a certificate signer must match, or why this policy cannot
    /// judge one. Every verifier in this crate asks this before checking a certificate-signed
    /// signature, so no caller can verify keyless material without naming who signed.
    pub fn certificate_matchers(&self) -> Result<(&Matcher, &Matcher), PolicyError> {
        match (&self.identity, &self.issuer) {
            (Some(identity), Some(issuer)) => Ok((identity, issuer)),
            (None, None) => Err(PolicyError::MissingIdentityAndIssuer),
            (None, Some(_)) => Err(PolicyError::MissingIdentity),
            (Some(_), None) => Err(PolicyError::MissingIssuer),
        }
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

    #[test]
    fn a_certificate_needs_both_identity_and_issuer() {
        let id = || Some(Matcher::exact("a@b.c"));
        let iss = || Some(Matcher::exact("https://accounts.google.com"));
        let policy = |identity, issuer| IdentityPolicy {
            identity,
            issuer,
            ..IdentityPolicy::default()
        };
        assert!(policy(id(), iss()).certificate_matchers().is_ok());
        let missing = |p: IdentityPolicy| p.certificate_matchers().unwrap_err();
        assert_eq!(
            missing(policy(None, None)),
            PolicyError::MissingIdentityAndIssuer
        );
        assert_eq!(missing(policy(id(), None)), PolicyError::MissingIssuer);
        assert_eq!(missing(policy(None, iss())), PolicyError::MissingIdentity);
        let e = missing(policy(id(), None));
        assert!(e.missing_issuer() && !e.missing_identity());
    }
}
