//! The manifest model shared by the registry client and the on-disk layout reader.
//!
//! One set of types reads both the OCI image spec (`manifest.md`, `image-index.md`,
//! `descriptor.md`, `config.md`) and Docker's image manifest v2 schema 2 and manifest list,
//! because the two are field-for-field compatible for what Lineage reads; only the media
//! types differ. Docker schema 1 is refused: it has no content-addressed config and is
//! deprecated by every registry that still serves it.

use std::collections::BTreeMap;
use std::fmt;

use lineage_model::{Algorithm, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

use crate::{Error, Result};

/// Media types this crate reads or writes.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// The empty descriptor's media type (image-spec `manifest.md`, "Guidance for an Empty
    /// Descriptor"), used as the config of artifacts.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// A DSSE envelope, as cosign and Lineage store attestations.
    pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
    /// A bare in-toto statement, as BuildKit stores attestations.
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";

    /// The `Accept` header for manifest requests: every manifest kind this crate reads,
    /// so that a registry never down-converts to schema 1.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
}

/// Annotation and label keys from image-spec `annotations.md`, "Pre-Defined Annotation Keys".
pub mod keys {
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// BuildKit's marker for attestation manifests inside an index
    /// (buildkit `docs/attestations/attestation-storage.md`).
    pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
    pub const DOCKER_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
    pub const IN_TOTO_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
}

/// The digest of `bytes` with `algorithm`.
pub fn digest_of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
    let hex = match algorithm {
        Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
        Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
    };
    Digest::parse(&format!("{}:{hex}", algorithm.as_str()))
        .expect("a hex-encoded hash is a valid digest")
}

/// Checks that `bytes` hash to `expected` (image-spec `descriptor.md`, "Verification").
pub fn verify_digest(what: &'static str, expected: &Digest, bytes: &[u8]) -> Result<()> {
    let actual = digest_of(expected.algorithm(), bytes);
    if &actual == expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what,
            expected: expected.clone(),
            actual,
        })
    }
}

/// A content descriptor (image-spec `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`, hashed with sha256.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest_of(Algorithm::Sha256, bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// An image platform (image-spec `image-index.md`, `platform`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(input: &str) -> Option<Platform> {
        let mut parts = input.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant,
            os_version: None,
        })
    }

    /// `linux/amd64`, the platform picked when the caller names none.
    pub fn linux_amd64() -> Platform {
        Platform::parse("linux/amd64").expect("constant platform")
    }

    /// Whether an index entry's platform satisfies this requested one. A requested variant
    /// must match; an unrequested variant matches any.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none() || self.variant == candidate.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (image-spec `manifest.md`; Docker v2 schema 2 has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The artifact type as the referrers API reports it (distribution-spec `spec.md`,
    /// "Listing Referrers"): `artifactType`, else the config's media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }

    pub fn layer_digests(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.digest.clone()).collect()
    }
}

/// An image index (image-spec `image-index.md`) or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// The entry for `platform`, skipping BuildKit attestation manifests (which carry the
    /// `unknown/unknown` platform and would never match anyway, but are excluded explicitly).
    pub fn pick(&self, digest: &Digest, platform: &Platform) -> Result<&Descriptor> {
        self.manifests
            .iter()
            .filter(|d| d.annotation(keys::DOCKER_REFERENCE_TYPE).is_none())
            .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| Error::PlatformNotFound {
                digest: digest.clone(),
                platform: platform.to_string(),
                available: self
                    .platform_entries()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The image entries with a platform, without attestation manifests.
    pub fn platform_entries(&self) -> impl Iterator<Item = (&Platform, &Descriptor)> {
        self.manifests.iter().filter_map(|d| {
            if d.annotation(keys::DOCKER_REFERENCE_TYPE).is_some() {
                return None;
            }
            d.platform.as_ref().map(|p| (p, d))
        })
    }

    /// BuildKit attestation manifests: `(attestation manifest, digest it attests)`.
    pub fn attestation_manifests(&self) -> Vec<(&Descriptor, Option<Digest>)> {
        self.manifests
            .iter()
            .filter(|d| d.annotation(keys::DOCKER_REFERENCE_TYPE) == Some("attestation-manifest"))
            .map(|d| {
                let target = d
                    .annotation(keys::DOCKER_REFERENCE_DIGEST)
                    .and_then(|s| Digest::parse(s).ok());
                (d, target)
            })
            .collect()
    }
}

/// A parsed manifest of either kind.
// Boxing the larger variant would buy nothing: a manifest is parsed once and consumed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Index(ImageIndex),
    Image(ImageManifest),
}

/// A manifest together with the exact bytes and digest it was read from.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

impl Manifest {
    /// Parses manifest bytes. The media type comes from the document's `mediaType` field,
    /// else from `content_type` (the HTTP header or the referring descriptor), else from the
    /// shape (`manifests` → index, `config` → image): image-spec `manifest.md` makes
    /// `mediaType` optional, so older OCI documents have none.
    pub fn parse(reference: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest> {
        let malformed = |reason: String| Error::MalformedManifest {
            reference: reference.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(malformed("not a JSON object".into()));
        };
        let declared = object.get("mediaType").and_then(|v| v.as_str());
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
        let media_type = match (declared, header) {
            (Some(d), _) => d.to_string(),
            (None, Some(h)) => h.to_string(),
            (None, None) if object.contains_key("manifests") => media::OCI_INDEX.to_string(),
            (None, None) if object.contains_key("config") => media::OCI_MANIFEST.to_string(),
            (None, None) => return Err(malformed("has no mediaType and no known shape".into())),
        };
        let is_index = match media_type.as_str() {
            media::OCI_INDEX | media::DOCKER_LIST => true,
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => false,
            other => {
                return Err(Error::UnsupportedMediaType {
                    reference: reference.to_string(),
                    media_type: other.to_string(),
                })
            }
        };
        if object.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
            return Err(malformed("schemaVersion is not 2".into()));
        }
        if is_index {
            let mut index: ImageIndex =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            index.media_type = media_type;
            Ok(Manifest::Index(index))
        } else {
            let mut image: ImageManifest =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            image.media_type = media_type;
            Ok(Manifest::Image(image))
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Index(i) => &i.media_type,
            Manifest::Image(m) => &m.media_type,
        }
    }

    pub fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Manifest::Index(i) => &i.annotations,
            Manifest::Image(m) => &m.annotations,
        }
    }
}

/// The parts of an image configuration Lineage reads (image-spec `config.md`). Every field is
/// optional so that artifact configs (`{}`) and Docker configs parse too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    #[serde(default, rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageConfig {
    pub fn parse(digest: &Digest, bytes: &[u8]) -> Result<ImageConfig> {
        serde_json::from_slice(bytes).map_err(|e| Error::MalformedManifest {
            reference: digest.to_string(),
            reason: format!("image config: {e}"),
        })
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
    }
}

/// Where the base image was found, when it is found at all. `k` leading layers of an image
/// of `n` layers equal a base's `k` layers.
///
/// Returns `Some((k, n))` when `base_layers` is a non-empty prefix of `image_layers`. An
/// image built `FROM base` starts with exactly the base's layer blobs, in order (image-spec
/// `manifest.md`: "the base layer MUST be at index 0"), so a prefix match is strong evidence;
/// matching is on compressed blob digests, which survive re-tagging and manifest format
/// conversion (`skopeo copy`) but not re-compression.
pub fn layer_match(image_layers: &[Digest], base_layers: &[Digest]) -> Option<(usize, usize)> {
    if base_layers.is_empty() || base_layers.len() > image_layers.len() {
        return None;
    }
    if image_layers.starts_with(base_layers) {
        Some((base_layers.len(), image_layers.len()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        digest_of(Algorithm::Sha256, &[n])
    }

    #[test]
    fn layer_match_needs_a_nonempty_prefix() {
        let image = [d(1), d(2), d(3)];
        assert_eq!(layer_match(&image, &[d(1)]), Some((1, 3)));
        assert_eq!(layer_match(&image, &[d(1), d(2)]), Some((2, 3)));
        assert_eq!(layer_match(&image, &image), Some((3, 3)));
        assert_eq!(layer_match(&image, &[]), None);
        assert_eq!(layer_match(&image, &[d(2)]), None, "not a prefix");
        assert_eq!(layer_match(&image, &[d(2), d(1)]), None, "order matters");
        assert_eq!(layer_match(&[d(1)], &[d(1), d(2)]), None, "base longer");
    }

    #[test]
    fn media_type_rules() {
        let schema1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(matches!(
            Manifest::parse("x", None, schema1),
            Err(Error::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            Manifest::parse("x", None, b"{\"schemaVersion\":2"),
            Err(Error::MalformedManifest { .. })
        ));
        let bad_digest = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:XYZ","size":1},"layers":[]}"#;
        assert!(matches!(
            Manifest::parse("x", None, bad_digest),
            Err(Error::MalformedManifest { .. })
        ));
        let no_type = br#"{"schemaVersion":2,"manifests":[]}"#;
        let Manifest::Index(i) = Manifest::parse("x", None, no_type).unwrap() else {
            panic!("shape says index")
        };
        assert_eq!(i.media_type, media::OCI_INDEX);
        let from_header = Manifest::parse("x", Some(media::DOCKER_LIST), no_type).unwrap();
        assert_eq!(from_header.media_type(), media::DOCKER_LIST);
    }

    #[test]
    fn platform_parse_and_match() {
        let want = Platform::parse("linux/arm64").unwrap();
        let have = Platform::parse("linux/arm64/v8").unwrap();
        assert!(want.matches(&have));
        assert!(!have.matches(&Platform::parse("linux/arm64/v7").unwrap()));
        assert_eq!(have.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }
}
