//! Image references per the distribution reference grammar
//! (`distribution/reference`, `reference.go` and `normalize.go`):
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [domain "/"] path-component ["/" path-component]*
//! domain    := host [":" port]
//! tag       := [\w][\w.-]{0,127}
//! ```
//!
//! Names are normalised the way Docker does it: a first component is a registry only when it
//! contains `.` or `:` or is `localhost`; otherwise the registry is `docker.io`, and a
//! single-component Docker Hub path gets `library/` in front (`nginx` → `docker.io/library/nginx`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Digest, ParseError};

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// Limit on the whole name (registry and path), from `NameTotalLengthMax`.
pub const MAX_NAME_LEN: usize = 255;
/// Limit on a tag, from the tag grammar `[\w][\w.-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

const REF_HINT: &str = "write `registry.example.com/team/app:1.4.2`, or pin a digest: `registry.example.com/team/app@sha256:<64 hex>`";

/// A registry plus a repository path: the name of an image without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    pub fn parse(input: &str) -> Result<Repository, ParseError> {
        let image = ImageRef::parse(input).map_err(|e| e.in_field("image repository"))?;
        if image.tag.is_some() || image.digest.is_some() {
            return Err(ParseError::new(
                "image repository",
                input,
                "has a tag or digest; a repository is the name alone",
                format!("write `{}`", image.repository),
            ));
        }
        Ok(image.repository)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last path component, which is usually what people call the image (`api`).
    pub fn short_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(input: &str) -> Result<Tag, ParseError> {
        let err = |problem: String| {
            ParseError::new(
                "tag",
                input,
                problem,
                "a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, e.g. `1.4.2`",
            )
        };
        let Some(first) = input.chars().next() else {
            return Err(err("is empty".into()));
        };
        if input.len() > MAX_TAG_LEN {
            return Err(err(format!(
                "is {} characters long; the limit is {MAX_TAG_LEN}",
                input.len()
            )));
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(err(format!("starts with `{first}`")));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(err(format!("contains `{bad}`")));
        }
        Ok(Tag(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub repository: Repository,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ParseError> {
        let field = "image reference";
        let err = |problem: String| ParseError::new(field, input, problem, REF_HINT);
        if input.is_empty() {
            return Err(err("is empty".into()));
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!(
                "contains whitespace or a control character ({c:?})"
            )));
        }

        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|e| ParseError {
                    field,
                    value: e.value.clone(),
                    problem: format!("has a bad digest: {}", e.problem),
                    hint: e.hint,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // The tag is after the last `:` that follows the last `/`; an earlier `:` is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (name, tag) = rest.split_at(last_slash + i);
                let tag = &tag[1..];
                if tag.is_empty() {
                    return Err(ParseError::new(
                        field,
                        input,
                        "has an empty tag",
                        format!("write `{name}:1.4.2` or pin a digest: `{name}@sha256:<64 hex>`"),
                    ));
                }
                let tag = Tag::parse(tag).map_err(|e| ParseError {
                    field,
                    value: input.to_string(),
                    problem: format!("has a bad tag `{}`: it {}", e.value, e.problem),
                    hint: e.hint,
                })?;
                (name, Some(tag))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(err("has no repository name".into()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(format!(
                "has a name of {} characters; the limit is {MAX_NAME_LEN}",
                name.len()
            )));
        }

        let (registry, path) = split_registry(name);
        check_registry(registry).map_err(err)?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::new(
                field,
                input,
                "has uppercase letters in the repository; repository names must be lowercase",
                format!(
                    "write `{}`",
                    input.replace(path, &path.to_ascii_lowercase())
                ),
            ));
        }
        for component in path.split('/') {
            check_path_component(component).map_err(err)?;
        }

        // Host names are case-insensitive, so a registry is held in lowercase, unless only
        // its capitals make it a registry (`MIRROR/library/debian`, as Docker splits it):
        // lowercased, it would read back as a Docker Hub path, and the stored record would
        // no longer parse to what was written (a false `log verify` alarm).
        let mut registry = match registry.to_ascii_lowercase() {
            lower if split_registry(&format!("{lower}/x")).0 == lower => lower,
            _ => registry.to_string(),
        };
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(ImageRef {
            repository: Repository { registry, path },
            tag,
            digest,
        })
    }

    /// Whether the reference names content by digest and not only by a movable tag.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// The same reference with another digest.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

/// Splits `name` into registry and path the way `splitDockerDomain` does.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // An IPv6 literal: `[::1]:5000`.
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(format!("has registry `{registry}` with an unclosed `[`"));
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("has registry `{registry}` with a bad IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(format!("has registry `{registry}` with text after `]`")),
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(format!(
                "has registry `{registry}` with a bad port `{port}`"
            ));
        }
    }
    if let Some(host) = host {
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!("has a bad registry host `{host}`"));
            }
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn check_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("has an empty path component (`//` or a trailing `/`)".into());
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "has path component `{component}`, which must start and end with a letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "has path component `{component}` with separator `{sep}`; allowed are `.`, `_`, `__` and dashes"
            ));
        }
    }
    Ok(())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(ImageRef);
string_serde!(Repository);
string_serde!(Tag);

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(input: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(input).unwrap();
        (
            r.repository.registry().to_string(),
            r.repository.path().to_string(),
            r.tag.map(|t| t.to_string()),
            r.digest.map(|d| d.to_string()),
        )
    }

    fn check_ok(input: &str, registry: &str, path: &str, tag: Option<&str>, digest: bool) {
        let (r, p, t, d) = parts(input);
        assert_eq!(
            (r.as_str(), p.as_str(), t.as_deref(), d.is_some()),
            (registry, path, tag, digest),
            "input {input}"
        );
    }

    #[test]
    fn normalises_and_splits() {
        check_ok("nginx", "docker.io", "library/nginx", None, false);
        check_ok(
            "nginx:1.25",
            "docker.io",
            "library/nginx",
            Some("1.25"),
            false,
        );
        check_ok(
            "bitnami/redis:7",
            "docker.io",
            "bitnami/redis",
            Some("7"),
            false,
        );
        check_ok(
            "index.docker.io/library/nginx",
            "docker.io",
            "library/nginx",
            None,
            false,
        );
        check_ok("docker.io/nginx", "docker.io", "library/nginx", None, false);
        check_ok(
            &format!("localhost:5000/a/b:tag@sha256:{HEX}"),
            "localhost:5000",
            "a/b",
            Some("tag"),
            true,
        );
        check_ok("localhost/app", "localhost", "app", None, false);
        check_ok("ghcr.io/acme/api", "ghcr.io", "acme/api", None, false);
        check_ok(
            "127.0.0.1:5000/app:v1",
            "127.0.0.1:5000",
            "app",
            Some("v1"),
            false,
        );
        check_ok("[::1]:5000/app", "[::1]:5000", "app", None, false);
        check_ok(
            "Registry.Example.com/a",
            "registry.example.com",
            "a",
            None,
            false,
        );
        check_ok(
            "a/b__c/d-e--f/g.h_i",
            "docker.io",
            "a/b__c/d-e--f/g.h_i",
            None,
            false,
        );
    }

    #[test]
    fn port_versus_tag() {
        // With no slash, `host:5000` is a repository called `host` with tag `5000`.
        check_ok(
            "localhost:5000",
            "docker.io",
            "library/localhost",
            Some("5000"),
            false,
        );
        check_ok(
            "example.com:5000/app",
            "example.com:5000",
            "app",
            None,
            false,
        );
        check_ok(
            "example.com:5000/app:5000",
            "example.com:5000",
            "app",
            Some("5000"),
            false,
        );
    }

    #[test]
    fn round_trips_display() {
        let input = format!("localhost:5000/a/b:tag@sha256:{HEX}");
        assert_eq!(ImageRef::parse(&input).unwrap().to_string(), input);
        assert_eq!(
            ImageRef::parse("nginx:1.25").unwrap().to_string(),
            "docker.io/library/nginx:1.25"
        );
    }

    #[test]
    fn rejects_bad_references() {
        let long_tag = format!("app:{}", "a".repeat(129));
        let long_name = format!("r.io/{}", "a".repeat(251));
        let cases: Vec<(&str, &str)> = vec![
            ("", "is empty"),
            ("registry.example.com/API", "has uppercase letters in the repository; repository names must be lowercase"),
            ("registry.example.com/api:", "has an empty tag"),
            ("api:-x", "has a bad tag `-x`: it starts with `-`"),
            (&long_tag, "has a bad tag `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`: it is 129 characters long; the limit is 128"),
            (&long_name, "has a name of 256 characters; the limit is 255"),
            ("r.io/a//b", "has an empty path component (`//` or a trailing `/`)"),
            ("r.io/a/", "has an empty path component (`//` or a trailing `/`)"),
            ("r.io/-a", "has path component `-a`, which must start and end with a letter or digit"),
            ("r.io/a...b", "has path component `a...b` with separator `...`; allowed are `.`, `_`, `__` and dashes"),
            ("r.io:x/a", "has registry `r.io:x` with a bad port `x`"),
            ("bad_host.io/a", "has a bad registry host `bad_host.io`"),
            ("a b", "contains whitespace or a control character (' ')"),
        ];
        for (input, problem) in cases {
            let err = ImageRef::parse(input).unwrap_err();
            assert_eq!(err.problem, problem, "input {input:?}");
            assert_eq!(err.field, "image reference");
            assert!(!err.hint.is_empty());
        }
        let err = ImageRef::parse(&format!("app@sha256:{}", &HEX[..63])).unwrap_err();
        assert_eq!(
            err.problem,
            "has a bad digest: has 63 hex characters; sha256 needs 64"
        );
    }

    #[test]
    fn uppercase_hint_shows_the_lowercase_form() {
        let err = ImageRef::parse("ghcr.io/Acme/API:1").unwrap_err();
        assert_eq!(err.hint, "write `ghcr.io/acme/api:1`");
    }

    #[test]
    fn maximum_lengths_are_inclusive() {
        let tag = "a".repeat(128);
        assert!(ImageRef::parse(&format!("app:{tag}")).is_ok());
        let name = format!("r.io/{}", "a".repeat(250));
        assert_eq!(name.len(), 255);
        assert!(ImageRef::parse(&name).is_ok());
    }

    #[test]
    fn repository_refuses_tags() {
        assert_eq!(
            Repository::parse("nginx").unwrap().to_string(),
            "docker.io/library/nginx"
        );
        let err = Repository::parse("nginx:1").unwrap_err();
        assert_eq!(err.hint, "write `docker.io/library/nginx`");
    }

    #[test]
    fn a_registry_named_only_by_its_capitals_keeps_them() {
        for input in ["MIRROR/library/debian:12", "TEAM/web"] {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r, "{input}");
        }
        assert_eq!(
            ImageRef::parse("Mirror.Example.COM/x")
                .unwrap()
                .repository
                .registry,
            "mirror.example.com"
        );
        assert_eq!(
            ImageRef::parse("LOCALHOST:5000/x")
                .unwrap()
                .repository
                .registry,
            "localhost:5000"
        );
    }

    mod round_trip {
        use super::super::*;
        use proptest::prelude::*;

        fn registry() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                "[a-zA-Z]{1,6}",
                "[a-zA-Z0-9-]{1,5}\\.[a-zA-Z]{2,3}",
                "[a-z]{1,5}\\.[a-z]{2,3}:[1-9][0-9]{0,3}",
                Just("localhost".to_string()),
                Just("LocalHost:5000".to_string()),
                Just("index.docker.io".to_string()),
                Just("Docker.IO".to_string()),
                Just("registry-1.docker.io".to_string()),
                Just("127.0.0.1:5000".to_string()),
                Just("[::1]:5000".to_string()),
            ]
        }

        fn reference() -> impl Strategy<Value = String> {
            (
                registry(),
                proptest::option::of(Just("library")),
                proptest::collection::vec("[a-zA-Z0-9]{1,4}([._-][a-z0-9]{1,3})?", 1..4),
                proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}"),
                proptest::option::of("[0-9a-fA-F]{64}"),
            )
                .prop_map(|(registry, library, path, tag, digest)| {
                    let mut s = String::new();
                    if !registry.is_empty() {
                        s.push_str(&registry);
                        s.push('/');
                    }
                    if let Some(l) = library {
                        s.push_str(l);
                        s.push('/');
                    }
                    s.push_str(&path.join("/"));
                    if let Some(t) = tag {
                        s.push(':');
                        s.push_str(&t);
                    }
                    if let Some(d) = digest {
                        s.push_str("@sha256:");
                        s.push_str(&d);
                    }
                    s
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// What is written (Display, JSON) parses back to the same value: `log verify`
            /// rebuilds projections from the stored text, so any drift here is a false
            /// tamper alarm.
            #[test]
            fn written_references_read_back_unchanged(input in reference()) {
                if let Ok(r) = ImageRef::parse(&input) {
                    let shown = r.to_string();
                    prop_assert_eq!(&ImageRef::parse(&shown).unwrap(), &r, "{} -> {}", input, shown);
                    let repo = Repository::parse(&r.repository.to_string()).unwrap();
                    prop_assert_eq!(&repo, &r.repository);
                    let json = serde_json::to_string(&r.repository).unwrap();
                    prop_assert_eq!(serde_json::from_str::<Repository>(&json).unwrap(), repo);
                }
            }
        }
    }
}
