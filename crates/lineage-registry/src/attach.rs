//! Attaching Lineage's provenance to an image, and reading it back.
//!
//! The provenance is pushed as an OCI 1.1 artifact: an image manifest with `artifactType`,
//! the empty config (image-spec `manifest.md`, "Guidelines for Artifact Usage"), one layer
//! holding the caller's bytes (a DSSE envelope), and `subject` = the image. Registries with
//! the Referrers API index it by `subject`. Registries without one (they answer 404 on
//! `/referrers/`) need the client to maintain the referrers tag schema (distribution-spec
//! `spec.md`, "Referrers Tag Schema"): an index under the tag `<alg>-<hex>` listing every
//! referrer with `artifactType` and annotations copied up. That index is shared with other
//! tools, so it is read, extended and written back with their entries untouched.
//!
//! The read-modify-write of the tag index is not atomic: the spec suggests conditional
//! requests, which distribution 2.8 does not support. Two concurrent writers can lose an
//! entry; the artifact manifest itself is never lost.

use std::collections::BTreeMap;

use lineage_model::{Digest, ImageRef, Tag};
use serde_json::{json, Value};

use crate::client::{Client, Reference};
use crate::manifest::{media, Descriptor, ImageManifest, Manifest};
use crate::source::{fallback_tag, ContentSource, ReferrersVia, RemoteRepository};
use crate::{Error, Progress, Result};

/// The artifact type of Lineage's provenance artifacts. The single layer is a DSSE envelope
/// whose payload is an in-toto statement.
pub const LINEAGE_PROVENANCE_ARTIFACT_TYPE: &str = "application/vnd.lineage.provenance.v1+json";

/// The content of the empty descriptor, `{}` (image-spec `manifest.md`).
const EMPTY_JSON: &[u8] = b"{}";

/// What to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub artifact_type: String,
    /// The layer's media type, e.g. [`media::DSSE_ENVELOPE`].
    pub payload_media_type: String,
    pub payload: Vec<u8>,
    /// Manifest annotations; copied into the tag-schema index entry too.
    pub annotations: BTreeMap<String, String>,
}

impl Artifact {
    /// Lineage's provenance: a DSSE envelope the caller has built and signed.
    pub fn lineage_provenance(dsse_envelope: Vec<u8>) -> Artifact {
        Artifact {
            artifact_type: LINEAGE_PROVENANCE_ARTIFACT_TYPE.to_string(),
            payload_media_type: media::DSSE_ENVELOPE.to_string(),
            payload: dsse_envelope,
            annotations: BTreeMap::new(),
        }
    }
}

/// The outcome of [`attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The image the artifact refers to.
    pub subject: Descriptor,
    /// The artifact manifest's digest.
    pub manifest: Digest,
    pub via: ReferrersVia,
    /// The tag-schema index tag, when the fallback was maintained.
    pub fallback_tag: Option<Tag>,
}

/// An artifact read back by [`pull_attached`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledArtifact {
    pub manifest: Digest,
    pub artifact_type: String,
    pub annotations: BTreeMap<String, String>,
    pub payload_media_type: String,
    pub payload: Vec<u8>,
    pub via: ReferrersVia,
}

/// Pushes `artifact` as a referrer of `image` (resolved to its digest first).
pub fn attach(client: &Client, image: &ImageRef, artifact: &Artifact) -> Result<Attached> {
    let repo = &image.repository;
    let subject = client.resolve(image)?;
    let payload_digest = client.push_blob(repo, &artifact.payload)?;
    let config_digest = client.push_blob(repo, EMPTY_JSON)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: media::OCI_MANIFEST.to_string(),
        artifact_type: Some(artifact.artifact_type.clone()),
        config: Descriptor {
            media_type: media::OCI_EMPTY.to_string(),
            digest: config_digest,
            size: EMPTY_JSON.len() as u64,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: vec![Descriptor {
            media_type: artifact.payload_media_type.clone(),
            digest: payload_digest,
            size: artifact.payload.len() as u64,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }],
        subject: Some(Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }),
        annotations: artifact.annotations.clone(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let descriptor = Descriptor {
        artifact_type: Some(artifact.artifact_type.clone()),
        annotations: artifact.annotations.clone(),
        ..Descriptor::for_bytes(media::OCI_MANIFEST, &bytes)
    };
    let pushed = client.push_manifest(
        repo,
        &Reference::Digest(descriptor.digest.clone()),
        media::OCI_MANIFEST,
        &bytes,
    )?;
    let api = pushed.subject_indexed || client.referrers_api(repo, &subject.digest)?.is_some();
    if api {
        return Ok(Attached {
            subject,
            manifest: pushed.digest,
            via: ReferrersVia::Api,
            fallback_tag: None,
        });
    }
    let tag = fallback_tag(&subject.digest);
    update_fallback_index(client, image, &tag, &descriptor)?;
    Ok(Attached {
        subject,
        manifest: pushed.digest,
        via: ReferrersVia::TagSchema,
        fallback_tag: Some(tag),
    })
}

/// Adds `ours` to the tag-schema index, keeping every other entry byte-for-byte as JSON
/// values (so fields this crate does not model survive) and replacing an earlier copy of
/// ours.
fn update_fallback_index(
    client: &Client,
    image: &ImageRef,
    tag: &Tag,
    ours: &Descriptor,
) -> Result<()> {
    let repo = &image.repository;
    let mut index: Value = match client.fetch_manifest(repo, &Reference::Tag(tag.clone())) {
        Ok(existing) => {
            if !matches!(existing.manifest, Manifest::Index(_)) {
                return Err(Error::MalformedManifest {
                    reference: format!("{repo}:{tag}"),
                    reason: "the referrers tag points at an image manifest, not an index".into(),
                });
            }
            serde_json::from_slice(&existing.bytes).map_err(|e| Error::MalformedManifest {
                reference: format!("{repo}:{tag}"),
                reason: e.to_string(),
            })?
        }
        Err(Error::ManifestUnknown { .. }) => json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [],
        }),
        Err(e) => return Err(e),
    };
    let entry = serde_json::to_value(ours).expect("a descriptor serializes");
    let ours_digest = ours.digest.to_string();
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::MalformedManifest {
            reference: format!("{repo}:{tag}"),
            reason: "the referrers index has no `manifests` array".into(),
        })?;
    manifests.retain(|m| m.get("digest").and_then(Value::as_str) != Some(ours_digest.as_str()));
    manifests.push(entry);
    let bytes = serde_json::to_vec(&index).expect("JSON serializes");
    client.push_manifest(repo, &Reference::Tag(tag.clone()), media::OCI_INDEX, &bytes)?;
    Ok(())
}

/// Reads back every referrer of `image` with `artifact_type`, digest-checked, and checks
/// that each really names the image as its `subject` (a tag-schema index is writable by
/// anyone with push access, so its entries are not trusted blindly).
pub fn pull_attached(
    client: &Client,
    image: &ImageRef,
    artifact_type: &str,
) -> Result<Vec<PulledArtifact>> {
    let subject = client.resolve(image)?;
    let source = RemoteRepository::new(client, image.repository.clone());
    let referrers = source.referrers(&subject.digest)?;
    let mut out = Vec::new();
    let total = referrers.manifests.len() as u64;
    for (i, desc) in referrers.manifests.into_iter().enumerate() {
        client.report(Progress {
            task: "referrers",
            done: i as u64,
            total: Some(total),
        });
        if desc
            .artifact_type
            .as_deref()
            .is_some_and(|t| t != artifact_type)
        {
            continue;
        }
        let fetched = source.manifest(&desc.digest)?;
        let Manifest::Image(m) = fetched.manifest else {
            continue;
        };
        if m.effective_artifact_type() != artifact_type {
            continue;
        }
        if m.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
            continue;
        }
        let Some(layer) = m.layers.first() else {
            return Err(Error::MalformedManifest {
                reference: desc.digest.to_string(),
                reason: "artifact has no layer".into(),
            });
        };
        let payload = source.blob(&layer.digest)?;
        out.push(PulledArtifact {
            manifest: desc.digest.clone(),
            artifact_type: artifact_type.to_string(),
            annotations: m.annotations.clone(),
            payload_media_type: layer.media_type.clone(),
            payload,
            via: referrers.via,
        });
    }
    Ok(out)
}
