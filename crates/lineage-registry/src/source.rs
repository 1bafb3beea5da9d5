//! Where manifests and blobs come from: a registry repository or an on-disk layout.
//!
//! Inspection and image reading are written against [`ContentSource`], so that the logic the
//! CLI runs against a registry is the logic the tests run against fixture layouts.

use lineage_model::{Digest, ImageRef, Repository, Tag};

use crate::client::{Client, Reference};
use crate::manifest::{Descriptor, FetchedManifest, Manifest};
use crate::{Error, Progress, Result};

/// How referrers were discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersVia {
    /// `GET /v2/<name>/referrers/<digest>` answered.
    Api,
    /// The registry has no Referrers API; the `<alg>-<hex>` tag was read instead.
    TagSchema,
}

/// The referrers of one subject.
#[derive(Debug, Clone)]
pub struct Referrers {
    pub via: ReferrersVia,
    pub manifests: Vec<Descriptor>,
}

/// Read access to content-addressed manifests and blobs plus tags.
pub trait ContentSource {
    /// A name for messages: `registry/path` or the layout directory.
    fn name(&self) -> String;
    /// The manifest descriptor `reference` names, or `None` when there is no such tag or
    /// manifest.
    fn resolve(&self, reference: &Reference) -> Result<Option<Descriptor>>;
    /// A manifest by digest, digest-checked.
    fn manifest(&self, digest: &Digest) -> Result<FetchedManifest>;
    /// A blob by digest, digest-checked.
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// Manifests whose `subject` is `subject`.
    fn referrers(&self, subject: &Digest) -> Result<Referrers>;
    /// Reports progress; sources without a callback ignore it.
    fn progress(&self, _event: Progress) {}
}

/// The tag under which the referrers tag schema keeps the referrers of `digest`
/// (distribution-spec `spec.md`, "Referrers Tag Schema": `<alg>-<ref>`, the algorithm cut
/// to 32 characters and the encoded digest to 64).
pub fn fallback_tag(digest: &Digest) -> Tag {
    let alg: String = digest.algorithm().as_str().chars().take(32).collect();
    let hex: String = digest.hex().chars().take(64).collect();
    Tag::parse(&format!("{alg}-{hex}")).expect("an algorithm and hex make a valid tag")
}

/// Reads the tag-schema index for `subject`; an absent tag means no referrers.
pub(crate) fn referrers_from_tag(
    source: &dyn ContentSource,
    subject: &Digest,
) -> Result<Referrers> {
    let tag = fallback_tag(subject);
    let manifests = match source.resolve(&Reference::Tag(tag.clone()))? {
        None => Vec::new(),
        Some(desc) => match source.manifest(&desc.digest)?.manifest {
            Manifest::Index(index) => index.manifests,
            Manifest::Image(_) => {
                return Err(Error::MalformedManifest {
                    reference: format!("{}:{tag}", source.name()),
                    reason: "the referrers tag points at an image manifest, not an index".into(),
                })
            }
        },
    };
    Ok(Referrers {
        via: ReferrersVia::TagSchema,
        manifests,
    })
}

/// One repository of a registry, seen through a [`Client`].
pub struct RemoteRepository<'a> {
    pub client: &'a Client,
    pub repository: Repository,
}

impl<'a> RemoteRepository<'a> {
    pub fn new(client: &'a Client, repository: Repository) -> RemoteRepository<'a> {
        RemoteRepository { client, repository }
    }

    fn image_ref(&self, reference: &Reference) -> ImageRef {
        let (tag, digest) = match reference {
            Reference::Tag(t) => (Some(t.clone()), None),
            Reference::Digest(d) => (None, Some(d.clone())),
        };
        ImageRef {
            repository: self.repository.clone(),
            tag,
            digest,
        }
    }
}

impl ContentSource for RemoteRepository<'_> {
    fn name(&self) -> String {
        self.repository.to_string()
    }

    fn resolve(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        match self.client.resolve(&self.image_ref(reference)) {
            Ok(d) => Ok(Some(d)),
            Err(Error::ManifestUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn manifest(&self, digest: &Digest) -> Result<FetchedManifest> {
        self.client
            .fetch_manifest(&self.repository, &Reference::Digest(digest.clone()))
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.client.fetch_blob(&self.repository, digest)
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers> {
        match self.client.referrers_api(&self.repository, subject)? {
            Some(index) => Ok(Referrers {
                via: ReferrersVia::Api,
                manifests: index.manifests,
            }),
            None => referrers_from_tag(self, subject),
        }
    }

    fn progress(&self, event: Progress) {
        self.client.report(event);
    }
}
