//! Reading an image's facts and everything attached to it.
//!
//! [`read_image`] resolves a reference, picks a platform from an index (image-spec
//! `image-index.md`), and reads the manifest, the config's labels and the pre-defined
//! annotations (`annotations.md`). [`inspect`] adds what other tools attach:
//! - BuildKit attestation manifests inside the index (`vnd.docker.reference.type:
//!   attestation-manifest`, buildkit `docs/attestations/attestation-storage.md`), whose
//!   in-toto layers are decoded;
//! - cosign's `<alg>-<hex>.sig` and `.att` tags (cosign `specs/SIGNATURE_SPEC.md`);
//! - OCI 1.1 referrers, through the API or the tag schema (distribution-spec `spec.md`).
//!
//! Faults in attachments (a missing blob, an undecodable statement) become `warnings` in
//! the report rather than errors: the report is still worth showing, and a broken
//! attestation is itself a finding.

use std::collections::BTreeMap;

use lineage_model::{Digest, Tag};
use serde::Serialize;

use crate::attach::LINEAGE_PROVENANCE_ARTIFACT_TYPE;
use crate::client::Reference;
use crate::manifest::{keys, media, Descriptor, ImageConfig, Manifest, Platform};
use crate::provenance::{decode_dsse_payload, decode_statement, Statement};
use crate::source::{ContentSource, ReferrersVia};
use crate::{Error, Progress, Result};

/// Version of the [`Inspection`] wire format.
pub const INSPECTION_SCHEMA: u32 = 1;

/// Attachment blobs larger than this are not decoded; attestations are kilobytes.
const MAX_ATTESTATION_BYTES: u64 = 8 * 1024 * 1024;

/// Where a fact was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FactOrigin {
    /// An annotation on the platform's image manifest.
    ManifestAnnotation,
    /// An annotation on the image index.
    IndexAnnotation,
    /// A label in the image config.
    ConfigLabel,
    /// A field of the image config (only `created`).
    Config,
}

/// One value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub value: String,
    pub origin: FactOrigin,
}

/// The `org.opencontainers.image.*` facts Lineage records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageFacts {
    pub source: Option<Fact>,
    pub revision: Option<Fact>,
    pub created: Option<Fact>,
    pub version: Option<Fact>,
    pub base_name: Option<Fact>,
    pub base_digest: Option<Fact>,
}

/// One platform entry of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformEntry {
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
}

/// What a registry says about one image, for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageDetails {
    /// What the reference resolved to: an index or a manifest.
    pub digest: Digest,
    pub media_type: String,
    /// Every platform of the index (empty for a single manifest).
    pub platforms: Vec<PlatformEntry>,
    /// The chosen platform, when the reference is an index.
    pub platform: Option<String>,
    /// The platform's image manifest (equal to `digest` for a single manifest).
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config_digest: Digest,
    pub labels: BTreeMap<String, String>,
    /// Index annotations, overridden by the manifest's own.
    pub annotations: BTreeMap<String, String>,
    pub facts: ImageFacts,
    /// Layer blob digests, base first.
    pub layers: Vec<Digest>,
}

/// A BuildKit attestation manifest and its decoded statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildkitAttestation {
    pub manifest: Digest,
    /// The platform manifest it attests (`vnd.docker.reference.digest`).
    pub attests: Option<Digest>,
    pub layers: Vec<AttachedLayer>,
}

/// One layer of an attestation or signature manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachedLayer {
    pub digest: Digest,
    pub media_type: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The decoded in-toto statement, when the layer holds one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<Statement>,
}

/// A cosign `.sig` or `.att` manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CosignArtifact {
    pub tag: String,
    /// `signature` or `attestation`.
    pub kind: &'static str,
    pub manifest: Digest,
    pub layers: Vec<AttachedLayer>,
}

/// An OCI 1.1 referrer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referrer {
    pub subject: Digest,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub via: ReferrersVia,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<AttachedLayer>,
}

/// Everything the registry holds about an image; the `lineage inspect` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub schema: u32,
    pub source: String,
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The image read for the requested platform; `None` when it could not be read (see
    /// `warnings`), e.g. a layout without config blobs.
    pub image: Option<ImageDetails>,
    pub buildkit_attestations: Vec<BuildkitAttestation>,
    pub cosign: Vec<CosignArtifact>,
    pub referrers: Vec<Referrer>,
    /// Whether any attachment is a build provenance attestation. An image without one is a
    /// red flag: a lookalike published under a familiar name usually has none.
    pub has_provenance: bool,
    pub warnings: Vec<String>,
}

/// Resolves `reference` in `source` and reads the image for `platform`.
pub fn read_image(
    source: &dyn ContentSource,
    reference: &Reference,
    platform: &Platform,
) -> Result<ImageDetails> {
    let top = resolve(source, reference)?;
    read_resolved(source, &top, platform)
}

fn resolve(source: &dyn ContentSource, reference: &Reference) -> Result<Descriptor> {
    source
        .resolve(reference)?
        .ok_or_else(|| Error::ManifestUnknown {
            repository: source.name(),
            reference: reference.to_string(),
        })
}

fn read_resolved(
    source: &dyn ContentSource,
    top: &Descriptor,
    platform: &Platform,
) -> Result<ImageDetails> {
    let fetched = source.manifest(&top.digest)?;
    let mut annotations = BTreeMap::new();
    let mut platforms = Vec::new();
    let mut chosen = None;
    let (image, image_digest, index_annotations) = match fetched.manifest {
        Manifest::Image(m) => (m, top.digest.clone(), BTreeMap::new()),
        Manifest::Index(index) => {
            platforms = index
                .platform_entries()
                .map(|(p, d)| PlatformEntry {
                    platform: p.to_string(),
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                })
                .collect();
            let entry = index.pick(&top.digest, platform)?;
            chosen = entry.platform.as_ref().map(Platform::to_string);
            let inner = source.manifest(&entry.digest)?;
            match inner.manifest {
                Manifest::Image(m) => (m, entry.digest.clone(), index.annotations.clone()),
                Manifest::Index(_) => {
                    return Err(Error::MalformedManifest {
                        reference: entry.digest.to_string(),
                        reason: "a platform entry points at another index".into(),
                    })
                }
            }
        }
    };
    annotations.extend(index_annotations.clone());
    annotations.extend(image.annotations.clone());
    match image.config.media_type.as_str() {
        media::OCI_CONFIG | media::DOCKER_CONFIG => {}
        other => {
            return Err(Error::UnsupportedMediaType {
                reference: image_digest.to_string(),
                media_type: format!("{other} (an artifact, not an image config)"),
            })
        }
    }
    let config_bytes = source.blob(&image.config.digest)?;
    let config = ImageConfig::parse(&image.config.digest, &config_bytes)?;
    let labels = config.labels();

    let fact = |key: &str| -> Option<Fact> {
        if let Some(v) = image.annotations.get(key) {
            return Some(Fact {
                value: v.clone(),
                origin: FactOrigin::ManifestAnnotation,
            });
        }
        if let Some(v) = index_annotations.get(key) {
            return Some(Fact {
                value: v.clone(),
                origin: FactOrigin::IndexAnnotation,
            });
        }
        labels.get(key).map(|v| Fact {
            value: v.clone(),
            origin: FactOrigin::ConfigLabel,
        })
    };
    let facts = ImageFacts {
        source: fact(keys::SOURCE),
        revision: fact(keys::REVISION),
        created: fact(keys::CREATED).or_else(|| {
            config.created.clone().map(|value| Fact {
                value,
                origin: FactOrigin::Config,
            })
        }),
        version: fact(keys::VERSION),
        base_name: fact(keys::BASE_NAME),
        base_digest: fact(keys::BASE_DIGEST),
    };
    Ok(ImageDetails {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        platforms,
        platform: chosen,
        manifest_digest: image_digest,
        manifest_media_type: image.media_type.clone(),
        config_digest: image.config.digest.clone(),
        labels,
        annotations,
        facts,
        layers: image.layer_digests(),
    })
}

/// Inspects `reference` in `source`: image facts for `platform` plus every attachment.
pub fn inspect(
    source: &dyn ContentSource,
    reference: &Reference,
    platform: &Platform,
) -> Result<Inspection> {
    let top = resolve(source, reference)?;
    let fetched = source.manifest(&top.digest)?;
    let mut warnings = Vec::new();
    let mut report = Inspection {
        schema: INSPECTION_SCHEMA,
        source: source.name(),
        reference: reference.to_string(),
        digest: top.digest.clone(),
        media_type: fetched.manifest.media_type().to_string(),
        annotations: fetched.manifest.annotations().clone(),
        image: None,
        buildkit_attestations: Vec::new(),
        cosign: Vec::new(),
        referrers: Vec::new(),
        has_provenance: false,
        warnings: Vec::new(),
    };
    match read_resolved(source, &top, platform) {
        Ok(details) => report.image = Some(details),
        Err(e) => warnings.push(format!("image for {platform}: {e}")),
    }

    if let Manifest::Index(index) = &fetched.manifest {
        let found = index.attestation_manifests();
        for (i, (desc, attests)) in found.iter().enumerate() {
            source.progress(Progress {
                task: "attestations",
                done: i as u64,
                total: Some(found.len() as u64),
            });
            match source.manifest(&desc.digest) {
                Ok(m) => {
                    let layers = match m.manifest {
                        Manifest::Image(m) => m.layers,
                        Manifest::Index(_) => Vec::new(),
                    };
                    report.buildkit_attestations.push(BuildkitAttestation {
                        manifest: desc.digest.clone(),
                        attests: attests.clone(),
                        layers: read_layers(source, &layers, &mut warnings),
                    });
                }
                Err(e) => warnings.push(format!("attestation manifest {}: {e}", desc.digest)),
            }
        }
    }

    // cosign and referrers may hang off the index and off the platform manifest.
    let mut subjects = vec![top.digest.clone()];
    if let Some(img) = &report.image {
        if img.manifest_digest != top.digest {
            subjects.push(img.manifest_digest.clone());
        }
    }
    for subject in &subjects {
        for (suffix, kind) in [("sig", "signature"), ("att", "attestation")] {
            let tag = format!("{}.{suffix}", crate::fallback_tag(subject));
            let Ok(tag_checked) = Tag::parse(&tag) else {
                continue;
            };
            let desc = match source.resolve(&Reference::Tag(tag_checked)) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    warnings.push(format!("cosign tag {tag}: {e}"));
                    continue;
                }
            };
            match source.manifest(&desc.digest) {
                Ok(m) => {
                    let layers = match m.manifest {
                        Manifest::Image(m) => m.layers,
                        Manifest::Index(_) => Vec::new(),
                    };
                    report.cosign.push(CosignArtifact {
                        tag,
                        kind,
                        manifest: desc.digest.clone(),
                        layers: read_layers(source, &layers, &mut warnings),
                    });
                }
                Err(e) => warnings.push(format!("cosign {kind} {}: {e}", desc.digest)),
            }
        }
        match source.referrers(subject) {
            Ok(found) => {
                for desc in found.manifests {
                    report.referrers.push(read_referrer(
                        source,
                        subject,
                        desc,
                        found.via,
                        &mut warnings,
                    ));
                }
            }
            Err(e) => warnings.push(format!("referrers of {subject}: {e}")),
        }
    }

    let statements = report
        .buildkit_attestations
        .iter()
        .flat_map(|a| &a.layers)
        .chain(report.cosign.iter().flat_map(|c| &c.layers))
        .chain(report.referrers.iter().flat_map(|r| &r.layers));
    // Provenance counts only when it is about this image: its index or one of its platform
    // manifests. A statement about another digest, attached here, proves nothing about it.
    let mut ours = vec![top.digest.to_string()];
    if let Manifest::Index(index) = &fetched.manifest {
        ours.extend(index.manifests.iter().map(|d| d.digest.to_string()));
    }
    let about_this = |st: &Statement| {
        st.subjects.iter().any(|m| {
            m.digest
                .iter()
                .any(|(algo, hex)| ours.contains(&format!("{algo}:{hex}")))
        })
    };
    for st in statements.clone().filter_map(|l| l.statement.as_ref()) {
        if st.provenance.is_some() && !about_this(st) {
            let named: Vec<String> = st
                .subjects
                .iter()
                .flat_map(|m| m.digest.iter().map(|(a, h)| format!("{a}:{h}")))
                .collect();
            warnings.push(format!(
                "a provenance attestation attached to {} is about {}, not this image: not counted as its provenance",
                top.digest,
                if named.is_empty() { "no digest".to_string() } else { named.join(", ") }
            ));
        }
    }
    // Lineage's own provenance artifacts are judged like any other: by the statement inside.
    report.has_provenance = statements.clone().any(|l| {
        l.statement
            .as_ref()
            .is_some_and(|s| s.provenance.is_some() && about_this(s))
    });
    report.warnings = warnings;
    Ok(report)
}

fn read_referrer(
    source: &dyn ContentSource,
    subject: &Digest,
    desc: Descriptor,
    via: ReferrersVia,
    warnings: &mut Vec<String>,
) -> Referrer {
    let mut referrer = Referrer {
        subject: subject.clone(),
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        artifact_type: desc.artifact_type.clone(),
        annotations: desc.annotations.clone(),
        via,
        layers: Vec::new(),
    };
    // Only attestation-like artifacts are opened; an SBOM or a signature is listed as is.
    let attestation_like = |t: &str| {
        t == LINEAGE_PROVENANCE_ARTIFACT_TYPE
            || t == media::IN_TOTO
            || t == media::DSSE_ENVELOPE
            || t.starts_with("application/vnd.dev.sigstore.bundle")
    };
    if desc.artifact_type.as_deref().is_some_and(attestation_like) {
        match source.manifest(&desc.digest) {
            Ok(m) => {
                if let Manifest::Image(m) = m.manifest {
                    referrer.layers = read_layers(source, &m.layers, warnings);
                }
            }
            Err(e) => warnings.push(format!("referrer {}: {e}", desc.digest)),
        }
    }
    referrer
}

/// Lists layers and decodes those that hold an in-toto statement, bare or in DSSE.
fn read_layers(
    source: &dyn ContentSource,
    layers: &[Descriptor],
    warnings: &mut Vec<String>,
) -> Vec<AttachedLayer> {
    layers
        .iter()
        .map(|l| {
            let mut out = AttachedLayer {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                annotations: l.annotations.clone(),
                statement: None,
            };
            let wrapped = match l.media_type.as_str() {
                media::IN_TOTO => false,
                media::DSSE_ENVELOPE => true,
                _ => return out,
            };
            if l.size > MAX_ATTESTATION_BYTES {
                warnings.push(format!(
                    "attestation layer {} is too large to decode",
                    l.digest
                ));
                return out;
            }
            let decoded = source.blob(&l.digest).and_then(|bytes| {
                if wrapped {
                    let (_, payload) = decode_dsse_payload(&bytes)?;
                    decode_statement(&payload)
                } else {
                    decode_statement(&bytes)
                }
            });
            match decoded {
                Ok(s) => out.statement = Some(s),
                Err(e) => warnings.push(format!("attestation layer {}: {e}", l.digest)),
            }
            out
        })
        .collect()
}

impl crate::Client {
    /// [`read_image`] for a registry reference: what `build record --from-registry` and
    /// `base add` need.
    pub fn read_image(
        &self,
        image: &lineage_model::ImageRef,
        platform: &Platform,
    ) -> Result<ImageDetails> {
        let source = crate::RemoteRepository::new(self, image.repository.clone());
        read_image(&source, &Reference::of(image), platform)
    }

    /// [`inspect`] for a registry reference; the report's `reference` is the full one given.
    pub fn inspect(
        &self,
        image: &lineage_model::ImageRef,
        platform: &Platform,
    ) -> Result<Inspection> {
        let source = crate::RemoteRepository::new(self, image.repository.clone());
        let mut report = inspect(&source, &Reference::of(image), platform)?;
        report.reference = image_display(image);
        Ok(report)
    }
}

fn image_display(image: &lineage_model::ImageRef) -> String {
    let mut s = image.repository.to_string();
    if let Some(t) = &image.tag {
        s.push(':');
        s.push_str(t.as_str());
    }
    if let Some(d) = &image.digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
    s
}
