//! Reading an on-disk OCI image layout (image-spec `image-layout.md`): `index.json` names
//! the tagged manifests (`org.opencontainers.image.ref.name`), `blobs/<alg>/<hex>` holds the
//! content. Every blob read is digest-checked, as from a registry.
//!
//! Layouts written by `cosign save` carry no tags for signatures and attestations; they mark
//! the index entries with `kind: dev.cosignproject.cosign/{image,sigs,atts}` instead. The
//! reader maps those to the tags cosign uses in a registry (`<alg>-<hex>.sig` / `.att` of the
//! image entry), so that inspection finds them the same way.

use std::path::{Path, PathBuf};

use lineage_model::Digest;

use crate::client::Reference;
use crate::manifest::{media, verify_digest, Descriptor, FetchedManifest, ImageIndex, Manifest};
use crate::source::{referrers_from_tag, ContentSource, Referrers};
use crate::{Error, Result};

const COSIGN_KIND: &str = "kind";

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    index: ImageIndex,
}

impl OciLayout {
    pub fn open(root: &Path) -> Result<OciLayout> {
        let path = root.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::Layout {
            path: root.display().to_string(),
            reason: format!("cannot read index.json: {e}"),
        })?;
        let index =
            match Manifest::parse(&path.display().to_string(), Some(media::OCI_INDEX), &bytes)? {
                Manifest::Index(i) => i,
                Manifest::Image(_) => {
                    return Err(Error::Layout {
                        path: root.display().to_string(),
                        reason: "index.json is not an image index".into(),
                    })
                }
            };
        Ok(OciLayout {
            root: root.to_path_buf(),
            index,
        })
    }

    /// The layout's top-level `index.json`.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn read(&self, digest: &Digest, what: &'static str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.blob_path(digest)) {
            Ok(bytes) => {
                verify_digest(what, digest, &bytes)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Layout {
                path: self.root.display().to_string(),
                reason: format!("cannot read {digest}: {e}"),
            }),
        }
    }

    fn by_tag(&self, tag: &str) -> Option<&Descriptor> {
        if let Some(d) = self
            .index
            .manifests
            .iter()
            .find(|d| d.annotation(crate::keys::REF_NAME) == Some(tag))
        {
            return Some(d);
        }
        // cosign save layouts: `<alg>-<hex>.sig|.att` of the saved image.
        let (subject, suffix) = tag.rsplit_once('.')?;
        let kind = match suffix {
            "sig" => "dev.cosignproject.cosign/sigs",
            "att" => "dev.cosignproject.cosign/atts",
            _ => return None,
        };
        let image = self
            .index
            .manifests
            .iter()
            .find(|d| d.annotation(COSIGN_KIND) == Some("dev.cosignproject.cosign/image"))?;
        if crate::fallback_tag(&image.digest).as_str() != subject {
            return None;
        }
        self.index
            .manifests
            .iter()
            .find(|d| d.annotation(COSIGN_KIND) == Some(kind))
    }
}

impl ContentSource for OciLayout {
    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn resolve(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        match reference {
            Reference::Tag(t) => Ok(self.by_tag(t.as_str()).cloned()),
            Reference::Digest(d) => {
                if let Some(desc) = self.index.manifests.iter().find(|m| &m.digest == d) {
                    return Ok(Some(desc.clone()));
                }
                match self.read(d, "manifest")? {
                    None => Ok(None),
                    Some(bytes) => {
                        let m = Manifest::parse(&d.to_string(), None, &bytes)?;
                        Ok(Some(Descriptor {
                            media_type: m.media_type().to_string(),
                            digest: d.clone(),
                            size: bytes.len() as u64,
                            artifact_type: None,
                            platform: None,
                            annotations: Default::default(),
                        }))
                    }
                }
            }
        }
    }

    fn manifest(&self, digest: &Digest) -> Result<FetchedManifest> {
        let Some(bytes) = self.read(digest, "manifest")? else {
            return Err(Error::ManifestUnknown {
                repository: self.name(),
                reference: digest.to_string(),
            });
        };
        let hint = self
            .index
            .manifests
            .iter()
            .find(|m| &m.digest == digest)
            .map(|m| m.media_type.clone());
        let manifest = Manifest::parse(&digest.to_string(), hint.as_deref(), &bytes)?;
        Ok(FetchedManifest {
            descriptor: Descriptor {
                media_type: manifest.media_type().to_string(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                artifact_type: None,
                platform: None,
                annotations: Default::default(),
            },
            bytes,
            manifest,
        })
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.read(digest, "blob")?
            .ok_or_else(|| Error::BlobUnknown {
                repository: self.name(),
                digest: digest.clone(),
            })
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers> {
        // A layout has no API; the tag schema is the only way to list referrers there.
        referrers_from_tag(self, subject)
    }
}
