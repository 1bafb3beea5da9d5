//! Content digests as defined by the OCI image spec (`descriptor.md`, "Digests").
//!
//! Only the two registered algorithms are accepted, and only in their canonical lowercase
//! form: a digest is an identity, and two spellings of one identity would split the ledger.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A checked `algorithm:hex` digest, e.g. `sha256:e3b0c442…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

const DIGEST_HINT: &str = "write `sha256:` followed by 64 lowercase hex characters, e.g. `sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`";

impl Digest {
    pub fn parse(input: &str) -> Result<Digest, ParseError> {
        let err = |problem: String| ParseError::new("digest", input, problem, DIGEST_HINT);
        let Some((algo, hex)) = input.split_once(':') else {
            return Err(err("has no algorithm prefix".into()));
        };
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "SHA256" | "SHA512" | "Sha256" | "Sha512" => {
                return Err(err(
                    "has an uppercase algorithm; digests are lowercase".into()
                ))
            }
            other => {
                return Err(err(format!(
                    "uses unsupported algorithm `{other}` (supported: sha256, sha512)"
                )))
            }
        };
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("has uppercase hex; digests are lowercase".into()));
        }
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(err(format!(
                "contains `{bad}`, which is not a hex character"
            )));
        }
        if hex.len() != algorithm.hex_len() {
            return Err(err(format!(
                "has {} hex characters; {} needs {}",
                hex.len(),
                algorithm.as_str(),
                algorithm.hex_len()
            )));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// A sha256 digest of `bytes`' hex encoding; the caller has computed the hash.
    pub fn sha256_from_hex(hex: &str) -> Result<Digest, ParseError> {
        Digest::parse(&format!("sha256:{hex}"))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, the way `docker images` shortens ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn accepts_canonical_forms() {
        let d = Digest::parse(&format!("sha256:{HEX64}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), format!("sha256:{HEX64}"));
        assert_eq!(d.short(), "e3b0c44298fc");
        let d = Digest::parse(&format!("sha512:{HEX64}{HEX64}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            (
                format!("sha256:{}", &HEX64[..63]),
                "has 63 hex characters; sha256 needs 64",
            ),
            (
                format!("sha256:{HEX64}0"),
                "has 65 hex characters; sha256 needs 64",
            ),
            (
                format!("sha256:{}", HEX64.to_uppercase()),
                "has uppercase hex; digests are lowercase",
            ),
            (
                format!("SHA256:{HEX64}"),
                "has an uppercase algorithm; digests are lowercase",
            ),
            (
                format!("md5:{HEX64}"),
                "uses unsupported algorithm `md5` (supported: sha256, sha512)",
            ),
            (HEX64.to_string(), "has no algorithm prefix"),
            (
                format!("sha256:{}g", &HEX64[..63]),
                "contains `g`, which is not a hex character",
            ),
            (
                format!("sha512:{HEX64}"),
                "has 64 hex characters; sha512 needs 128",
            ),
        ];
        for (input, problem) in cases {
            let err = Digest::parse(&input).unwrap_err();
            assert_eq!(err.problem, problem, "input {input}");
            assert_eq!(err.field, "digest");
            assert!(err.hint.contains("sha256:"));
        }
    }
}

/// The shortest prefix of a digest Lineage accepts for one, as git accepts short commit ids:
/// the 12 hex characters its human output shows.
pub const MIN_DIGEST_PREFIX: usize = 12;

/// What a user typed to name a digest: the whole digest, or a prefix of at least
/// [`MIN_DIGEST_PREFIX`] hex characters that the ledger must resolve. A bare hex string is a
/// sha256 digest (or prefix), never an image name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestQuery {
    Full(Digest),
    /// `sha256:` or `sha512:` followed by lowercase hex, shorter than a whole digest.
    Prefix(String),
}

impl DigestQuery {
    /// `None` when `input` does not look like a digest at all (an image name, a service);
    /// an error when it looks like one but is malformed.
    pub fn parse(input: &str) -> Option<Result<DigestQuery, ParseError>> {
        let (algorithm, hex) = match input.split_once(':') {
            Some((a @ ("sha256" | "sha512"), hex)) => (a, hex),
            Some(_) => return None,
            None if input.len() >= MIN_DIGEST_PREFIX
                && input.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                ("sha256", input)
            }
            None => return None,
        };
        let full = format!("{algorithm}:{hex}");
        let hex_len = if algorithm == "sha256" { 64 } else { 128 };
        if hex.len() >= hex_len {
            return Some(Digest::parse(&full).map(DigestQuery::Full));
        }
        let err = |problem: &str| {
            ParseError::new(
                "digest",
                input,
                problem,
                format!(
                    "give the whole digest or at least its first {MIN_DIGEST_PREFIX} hex characters, e.g. `sha256:4f2a9c1e8b7d`"
                ),
            )
        };
        if hex.len() < MIN_DIGEST_PREFIX {
            return Some(Err(err(&format!(
                "has {} hex characters; a digest prefix needs at least {MIN_DIGEST_PREFIX}",
                hex.len()
            ))));
        }
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Some(Err(err(&format!(
                "contains `{bad}`, which is not a hex character"
            ))));
        }
        Some(Ok(DigestQuery::Prefix(full.to_ascii_lowercase())))
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn prefixes_and_bare_hex() {
        let full = "a".repeat(64);
        assert!(matches!(
            DigestQuery::parse(&full),
            Some(Ok(DigestQuery::Full(_)))
        ));
        assert_eq!(
            DigestQuery::parse("sha256:4f2a9c1e8b7d"),
            Some(Ok(DigestQuery::Prefix("sha256:4f2a9c1e8b7d".into())))
        );
        assert_eq!(
            DigestQuery::parse("4F2A9C1E8B7D00"),
            Some(Ok(DigestQuery::Prefix("sha256:4f2a9c1e8b7d00".into())))
        );
        assert!(matches!(DigestQuery::parse("sha256:4f2a"), Some(Err(_))));
        assert_eq!(DigestQuery::parse("ghcr.io/acme/api:1.0"), None);
        assert_eq!(DigestQuery::parse("api"), None);
        assert_eq!(DigestQuery::parse("deadbeef"), None);
    }
}
