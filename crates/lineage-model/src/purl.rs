//! Package URLs (purl): `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH`, the package
//! identity SBOMs and scanners share (package-url/purl-spec, `PURL-SPECIFICATION.rst`).
//!
//! A purl is parsed once into its parts (percent-decoded) and written back in one canonical
//! form: type lowercased, qualifiers sorted by key, the same characters encoded every time. So
//! two documents that spell one package differently store and compare as one package.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// A checked package URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purl {
    ty: String,
    namespace: Option<String>,
    name: String,
    version: Option<String>,
    /// Sorted by key; keys are lowercase.
    qualifiers: Vec<(String, String)>,
    subpath: Option<String>,
}

const HINT: &str = "write a package URL such as `pkg:deb/debian/openssl@3.0.15-1~deb12u1` or `pkg:pypi/requests@2.32.3`";

/// Longest purl accepted; real ones are well under a kilobyte.
const MAX_LEN: usize = 4096;

impl Purl {
    pub fn parse(input: &str) -> Result<Purl, ParseError> {
        let err = |problem: &str| ParseError::new("purl", input, problem, HINT);
        if input.len() > MAX_LEN {
            return Err(err("is too long"));
        }
        let rest = match input.get(..4) {
            Some(scheme) if scheme.eq_ignore_ascii_case("pkg:") => &input[4..],
            _ => return Err(err("does not start with `pkg:`")),
        };
        // The spec tolerates `pkg://type/...`.
        let rest = rest.trim_start_matches('/');
        let (rest, subpath) = match rest.rsplit_once('#') {
            Some((r, s)) => (r, Some(s)),
            None => (rest, None),
        };
        let (rest, qualifiers) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (ty, rest) = rest
            .split_once('/')
            .ok_or_else(|| err("has no `/` between the type and the name"))?;
        if ty.is_empty()
            || !ty.starts_with(|c: char| c.is_ascii_alphabetic())
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        {
            return Err(err(
                "has a type that is not letters, digits, `.`, `+` or `-`",
            ));
        }
        let rest = rest.trim_matches('/');
        // The version follows the last `@`; an `@` in a namespace is always encoded.
        let (path, version) = match rest.rsplit_once('@') {
            Some((p, v)) => (p, Some(v)),
            None => (rest, None),
        };
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| decode(s).ok_or_else(|| err("has a malformed percent-encoding")))
            .collect::<Result<_, _>>()?;
        let name = segments
            .pop()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| err("has no name"))?;
        let namespace = (!segments.is_empty()).then(|| segments.join("/"));
        let version = match version {
            Some(v) if !v.is_empty() => {
                Some(decode(v).ok_or_else(|| err("has a malformed percent-encoding"))?)
            }
            _ => None,
        };
        let mut quals = Vec::new();
        for pair in qualifiers
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(v).ok_or_else(|| err("has a malformed percent-encoding"))?;
            // Empty values are the same as absent ones (spec: "must be ignored").
            if !value.is_empty() {
                quals.push((k.to_ascii_lowercase(), value));
            }
        }
        quals.sort();
        quals.dedup_by(|a, b| a.0 == b.0);
        let subpath = match subpath {
            Some(s) => {
                let parts: Vec<String> = s
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != "." && *p != "..")
                    .map(|p| decode(p).ok_or_else(|| err("has a malformed percent-encoding")))
                    .collect::<Result<_, _>>()?;
                (!parts.is_empty()).then(|| parts.join("/"))
            }
            None => None,
        };
        let texts = std::iter::once(&name)
            .chain(namespace.iter())
            .chain(version.iter())
            .chain(quals.iter().map(|(_, v)| v))
            .chain(subpath.iter());
        for t in texts {
            if t.chars().any(char::is_control) {
                return Err(err("has a control character"));
            }
        }
        Ok(Purl {
            ty: ty.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers: quals,
            subpath,
        })
    }

    /// A package that has no purl of its own: `pkg:generic/NAME@VERSION`.
    pub fn generic(name: &str, version: Option<&str>) -> Result<Purl, ParseError> {
        Purl::of("generic", None, name, version)
    }

    /// A purl built from its parts, as scanners that print no purl describe a package.
    pub fn of(
        ty: &str,
        namespace: Option<&str>,
        name: &str,
        version: Option<&str>,
    ) -> Result<Purl, ParseError> {
        if name.trim().is_empty() {
            return Err(ParseError::new("purl", name, "has no name", HINT));
        }
        let texts = [Some(name), namespace, version];
        if texts
            .iter()
            .flatten()
            .any(|t| t.chars().any(char::is_control))
        {
            return Err(ParseError::new(
                "purl",
                name,
                "has a control character",
                HINT,
            ));
        }
        Ok(Purl {
            ty: ty.to_ascii_lowercase(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            name: name.to_string(),
            version: version.filter(|v| !v.is_empty()).map(str::to_string),
            qualifiers: Vec::new(),
            subpath: None,
        })
    }

    pub fn ty(&self) -> &str {
        &self.ty
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    pub fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same package without version, qualifiers or subpath: what "the same package in
    /// another version" shares.
    pub fn package(&self) -> Purl {
        Purl {
            ty: self.ty.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: None,
            qualifiers: Vec::new(),
            subpath: None,
        }
    }

    /// The lookup key of the name: lowercase, with runs of `-`, `_` and `.` written as one
    /// `-` (PyPI's rule, PEP 503). Lookups narrow by this key; exact comparison is the
    /// caller's, since only some ecosystems fold case and punctuation.
    pub fn name_key(&self) -> String {
        name_key(&self.name)
    }
}

/// See [`Purl::name_key`].
pub fn name_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters and `extra`.
fn encode(s: &str, extra: &[u8], out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || extra.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        s.push_str("pkg:");
        s.push_str(&self.ty);
        s.push('/');
        if let Some(ns) = &self.namespace {
            for seg in ns.split('/') {
                encode(seg, b"", &mut s);
                s.push('/');
            }
        }
        encode(&self.name, b"", &mut s);
        if let Some(v) = &self.version {
            s.push('@');
            encode(v, b":+", &mut s);
        }
        for (i, (k, v)) in self.qualifiers.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(k);
            s.push('=');
            encode(v, b":/+,", &mut s);
        }
        if let Some(p) = &self.subpath {
            s.push('#');
            for (i, seg) in p.split('/').enumerate() {
                if i > 0 {
                    s.push('/');
                }
                encode(seg, b"", &mut s);
            }
        }
        f.write_str(&s)
    }
}

impl Serialize for Purl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Purl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Purl::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_canonically() {
        let p = Purl::parse("pkg:DEB/debian/openssl@3.0.11-1~deb12u2?distro=debian-12&arch=amd64")
            .unwrap();
        assert_eq!(p.ty(), "deb");
        assert_eq!(p.namespace(), Some("debian"));
        assert_eq!(p.name(), "openssl");
        assert_eq!(p.version(), Some("3.0.11-1~deb12u2"));
        assert_eq!(
            p.to_string(),
            "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
        );
        assert_eq!(Purl::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn decodes_namespaces_and_versions() {
        let p = Purl::parse("pkg:npm/%40angular/core@16.0.0").unwrap();
        assert_eq!(p.namespace(), Some("@angular"));
        assert_eq!(p.to_string(), "pkg:npm/%40angular/core@16.0.0");
        let oci = Purl::parse("pkg:oci/user-image-input@sha256%3A2731?arch=").unwrap();
        assert_eq!(oci.version(), Some("sha256:2731"));
        assert_eq!(oci.qualifier("arch"), None);
        let maven = Purl::parse("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1").unwrap();
        assert_eq!(maven.namespace(), Some("org.apache.logging.log4j"));
        assert_eq!(maven.name(), "log4j-core");
    }

    #[test]
    fn refuses_what_is_not_a_purl() {
        for bad in [
            "a-purl-1",
            "pkg:",
            "pkg:deb",
            "pkg:/name",
            "pkg:deb/",
            "pkg:deb/x%zz",
        ] {
            assert!(Purl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_keys_fold_case_and_punctuation() {
        assert_eq!(name_key("Flask_SQLAlchemy"), "flask-sqlalchemy");
        assert_eq!(name_key("zope.interface"), "zope-interface");
        assert_eq!(name_key("libssl3"), "libssl3");
        assert_eq!(name_key("_NIODataStructures"), "niodatastructures");
    }
}
