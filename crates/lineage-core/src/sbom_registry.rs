//! `sbom add --from-registry` and `scan add --from-registry`: the SBOMs and vulnerability
//! scans attached to an image in its registry, as the records to import.
//!
//! These are the decisions only. The caller (the adapter) inspects the image, then hands the
//! [`Inspection`] over with the [`AttachedBlobs`] port, through which the manifests and blobs
//! of the chosen attachments are read. Which attachments may hold a document of the command's
//! kind is judged by predicate type (BuildKit attestations, cosign `.att`, referrers whose
//! statements were decoded) or by artifact and layer media type (referrers that carry the
//! document itself, e.g. `oras attach --artifact-type application/spdx+json`); each blob is
//! read once, whatever number of attachments carry it. A document that turns out not to be of
//! the command's kind is skipped, and said so; one that does not parse, or describes another
//! image, refuses the whole import.

use lineage_model::{Digest, Identity, Repository, SbomImport, Timestamp};
use lineage_registry::{keys, media, Inspection, Manifest};

use crate::sbom::{self, Kind, Target};

/// The port to the image's repository in its registry.
pub trait AttachedBlobs {
    /// The manifest `digest` (a referrer that inspection does not open).
    fn manifest(&self, digest: &Digest) -> Result<Manifest, lineage_registry::Error>;
    /// The blob `digest`: an attached document.
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>, lineage_registry::Error>;
}

/// An attachment that may hold a document, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `buildkit attestation <manifest>`, `cosign <tag>` or `referrer <manifest>`.
    pub origin: String,
    pub blob: Digest,
}

/// What the attachments hold for the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromRegistry {
    /// The records to import, each with its notes, in the order found.
    pub imports: Vec<(SbomImport, Vec<String>)>,
    /// Attachments that were read but are not of this command's kind.
    pub skipped: Vec<String>,
}

/// Why the attachments could not be imported: the registry refused a read, or a document is
/// bad input (it does not parse, or describes another image).
#[derive(Debug, thiserror::Error)]
pub enum FromRegistryError {
    #[error(transparent)]
    Registry(lineage_registry::Error),
    #[error(transparent)]
    Document(#[from] crate::Error),
}

/// Whether an attachment's predicate or media type can hold a document of `kind`.
pub fn may_hold(kind: Kind, predicate_or_media: &str) -> bool {
    let t = predicate_or_media.to_ascii_lowercase();
    let sbom_like = t.starts_with("https://spdx.dev/document")
        || t.starts_with("https://cyclonedx.org/bom")
        || t.contains("spdx+json")
        || t.contains("cyclonedx+json");
    match kind {
        Kind::Sbom => sbom_like,
        Kind::Scan => {
            t.starts_with("https://cosign.sigstore.dev/attestation/vuln")
                || t.starts_with("https://cyclonedx.org/bom")
                || t.contains("cyclonedx+json")
        }
    }
}

/// The digests a document of the inspected image may name besides the one the reference
/// resolves to (often an index): the platform's manifest and every platform of the index,
/// which the registry says belong to it.
pub fn aliases(report: &Inspection) -> Vec<Digest> {
    let mut aliases = Vec::new();
    if let Some(img) = &report.image {
        aliases.push(img.manifest_digest.clone());
        aliases.extend(img.platforms.iter().map(|p| p.digest.clone()));
    }
    aliases
}

/// The attachments of an inspected image that may hold documents of `kind`, each blob once
/// (the first place it was found): BuildKit attestations, then cosign attestations, then
/// referrers. A referrer not opened by inspection is read through `registry` when its
/// artifact type fits.
pub fn candidates(
    kind: Kind,
    report: &Inspection,
    registry: &dyn AttachedBlobs,
) -> Result<Vec<Candidate>, lineage_registry::Error> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |origin: String, blob: &Digest| {
        if !out.iter().any(|c| c.blob == *blob) {
            out.push(Candidate {
                origin,
                blob: blob.clone(),
            });
        }
    };
    for a in &report.buildkit_attestations {
        for l in &a.layers {
            let predicate = l
                .annotations
                .get(keys::IN_TOTO_PREDICATE_TYPE)
                .cloned()
                .or_else(|| l.statement.as_ref().map(|s| s.predicate_type.clone()))
                .unwrap_or_default();
            if may_hold(kind, &predicate) {
                push(format!("buildkit attestation {}", a.manifest), &l.digest);
            }
        }
    }
    for c in report.cosign.iter().filter(|c| c.kind == "attestation") {
        for l in &c.layers {
            // A statement too large to decode during inspection is still worth reading.
            let fits = l
                .statement
                .as_ref()
                .is_none_or(|st| may_hold(kind, &st.predicate_type));
            if fits && (l.media_type == media::DSSE_ENVELOPE || l.media_type == media::IN_TOTO) {
                push(format!("cosign {}", c.tag), &l.digest);
            }
        }
    }
    for r in &report.referrers {
        if !r.layers.is_empty() {
            for l in &r.layers {
                let fits = l
                    .statement
                    .as_ref()
                    .is_some_and(|st| may_hold(kind, &st.predicate_type));
                if fits {
                    push(format!("referrer {}", r.digest), &l.digest);
                }
            }
            continue;
        }
        // SBOM artifacts (`oras attach --artifact-type application/spdx+json`) are not opened
        // by inspection; their layers are the documents.
        if r.artifact_type
            .as_deref()
            .is_some_and(|t| may_hold(kind, t))
        {
            if let Manifest::Image(m) = registry.manifest(&r.digest)? {
                for l in &m.layers {
                    if may_hold(kind, &l.media_type) || l.media_type == media::IN_TOTO {
                        push(format!("referrer {}", r.digest), &l.digest);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `sbom add --from-registry` / `scan add --from-registry`: reads every candidate attachment
/// of the inspected image `image` through `registry`, in order, and makes the records to
/// import for the digest the reference resolved to (`report.digest`), with the platform
/// digests as aliases and the attachment as origin (`registry <where>`). A document of another
/// kind is skipped; nothing found is an empty `imports`, for the caller to report.
pub fn from_attachments(
    kind: Kind,
    image: &Repository,
    report: &Inspection,
    registry: &dyn AttachedBlobs,
    by: &Identity,
    at: Timestamp,
) -> Result<FromRegistry, FromRegistryError> {
    let aliases = aliases(report);
    let mut imports = Vec::new();
    let mut skipped = Vec::new();
    for c in candidates(kind, report, registry).map_err(FromRegistryError::Registry)? {
        let bytes = registry
            .blob(&c.blob)
            .map_err(FromRegistryError::Registry)?;
        let name = format!("{image} ({})", c.origin);
        let mut doc = sbom::parse_bytes(&bytes, &name, None)?;
        drop(bytes);
        let fits = match kind {
            Kind::Sbom => matches!(doc.format, sbom::Format::Spdx | sbom::Format::CycloneDx),
            Kind::Scan => doc.has_findings,
        };
        if !fits {
            skipped.push(format!(
                "{}: {} is not {}",
                c.origin,
                doc.label,
                match kind {
                    Kind::Sbom => "an SBOM",
                    Kind::Scan => "a vulnerability scan",
                }
            ));
            continue;
        }
        let notes = std::mem::take(&mut doc.notes);
        let target = Target {
            image: image.clone(),
            digest: report.digest.clone(),
            kind,
            origin: format!("registry {}", c.origin),
            aliases: aliases.clone(),
            by: by.clone(),
            at,
        };
        imports.push((sbom::to_record(doc, &target, &name)?, notes));
    }
    Ok(FromRegistry { imports, skipped })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};

    use lineage_registry::{
        AttachedLayer, BuildkitAttestation, CosignArtifact, Descriptor, ImageDetails, ImageFacts,
        ImageManifest, PlatformEntry, Referrer, ReferrersVia, Statement,
    };

    use super::*;

    /// A digest named by one letter: its code in hex, repeated.
    fn digest(c: char) -> Digest {
        Digest::sha256_from_hex(&format!("{:02x}", c as u32).repeat(32)).unwrap()
    }

    /// An in-memory repository; it counts the blobs read.
    #[derive(Default)]
    struct Memory {
        manifests: HashMap<Digest, Manifest>,
        blobs: HashMap<Digest, Vec<u8>>,
        read: RefCell<Vec<Digest>>,
    }

    impl AttachedBlobs for Memory {
        fn manifest(&self, digest: &Digest) -> Result<Manifest, lineage_registry::Error> {
            self.manifests.get(digest).cloned().ok_or_else(|| {
                lineage_registry::Error::MalformedManifest {
                    reference: digest.to_string(),
                    reason: "not stored".into(),
                }
            })
        }
        fn blob(&self, digest: &Digest) -> Result<Vec<u8>, lineage_registry::Error> {
            self.read.borrow_mut().push(digest.clone());
            self.blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| lineage_registry::Error::BlobUnknown {
                    repository: "app".into(),
                    digest: digest.clone(),
                })
        }
    }

    fn repo() -> Repository {
        Repository::parse("localhost:5000/app").unwrap()
    }

    fn by() -> Identity {
        Identity::parse("ci@acme.dev").unwrap()
    }

    fn at() -> Timestamp {
        Timestamp::from_unix(0)
    }

    /// The index `i`, whose amd64 manifest is `m` (and arm64 `n`).
    fn inspection() -> Inspection {
        Inspection {
            schema: 1,
            source: "registry".into(),
            reference: "localhost:5000/app:1".into(),
            digest: digest('i'),
            media_type: media::OCI_INDEX.into(),
            annotations: BTreeMap::new(),
            image: Some(ImageDetails {
                digest: digest('i'),
                media_type: media::OCI_INDEX.into(),
                platforms: vec![
                    PlatformEntry {
                        platform: "linux/amd64".into(),
                        digest: digest('m'),
                        media_type: media::OCI_MANIFEST.into(),
                    },
                    PlatformEntry {
                        platform: "linux/arm64".into(),
                        digest: digest('n'),
                        media_type: media::OCI_MANIFEST.into(),
                    },
                ],
                platform: Some("linux/amd64".into()),
                manifest_digest: digest('m'),
                manifest_media_type: media::OCI_MANIFEST.into(),
                config_digest: digest('c'),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                facts: ImageFacts::default(),
                layers: Vec::new(),
            }),
            buildkit_attestations: Vec::new(),
            cosign: Vec::new(),
            referrers: Vec::new(),
            has_provenance: false,
            warnings: Vec::new(),
        }
    }

    fn statement(predicate_type: &str) -> Statement {
        Statement {
            statement_type: "https://in-toto.io/Statement/v1".into(),
            predicate_type: predicate_type.into(),
            subjects: Vec::new(),
            provenance: None,
        }
    }

    fn layer(blob: Digest, media_type: &str, predicate_type: Option<&str>) -> AttachedLayer {
        AttachedLayer {
            digest: blob,
            media_type: media_type.into(),
            annotations: BTreeMap::new(),
            statement: predicate_type.map(statement),
        }
    }

    fn referrer(
        manifest: Digest,
        artifact_type: Option<&str>,
        layers: Vec<AttachedLayer>,
    ) -> Referrer {
        Referrer {
            subject: digest('m'),
            digest: manifest,
            media_type: media::OCI_MANIFEST.into(),
            artifact_type: artifact_type.map(str::to_string),
            annotations: BTreeMap::new(),
            via: ReferrersVia::Api,
            layers,
        }
    }

    /// An in-toto statement around an empty SPDX 2.3 document, naming `subject`.
    fn spdx_statement(subject: &Digest) -> Vec<u8> {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "app", "digest": {"sha256": subject.hex()}}],
            "predicate": {"spdxVersion": "SPDX-2.3", "packages": []},
        })
        .to_string()
        .into_bytes()
    }

    const SPDX: &str = "https://spdx.dev/Document";
    const SLSA: &str = "https://slsa.dev/provenance/v1";

    #[test]
    fn an_sbom_attached_as_a_referrer_is_imported_for_the_resolved_digest() {
        let mut report = inspection();
        report.referrers = vec![referrer(
            digest('r'),
            None,
            vec![layer(digest('1'), media::IN_TOTO, Some(SPDX))],
        )];
        let mut memory = Memory::default();
        // The statement names the platform manifest, an alias of the index.
        memory
            .blobs
            .insert(digest('1'), spdx_statement(&digest('m')));
        let found = from_attachments(Kind::Sbom, &repo(), &report, &memory, &by(), at()).unwrap();
        assert!(found.skipped.is_empty());
        assert_eq!(found.imports.len(), 1);
        let (record, notes) = &found.imports[0];
        assert!(notes.is_empty());
        assert_eq!(record.digest, digest('i'));
        assert_eq!(record.image, repo());
        assert_eq!(record.kind, "sbom");
        assert_eq!(record.format, "spdx-2.3");
        let origin = format!("registry referrer {}", digest('r'));
        assert_eq!(record.origin.as_deref(), Some(origin.as_str()));
        assert_eq!(
            aliases(&report),
            vec![digest('m'), digest('m'), digest('n')]
        );
    }

    #[test]
    fn a_statement_for_another_image_refuses_the_import() {
        let mut report = inspection();
        report.referrers = vec![referrer(
            digest('r'),
            None,
            vec![layer(digest('1'), media::IN_TOTO, Some(SPDX))],
        )];
        let mut memory = Memory::default();
        memory
            .blobs
            .insert(digest('1'), spdx_statement(&digest('x')));
        let e = from_attachments(Kind::Sbom, &repo(), &report, &memory, &by(), at()).unwrap_err();
        assert!(matches!(e, FromRegistryError::Document(_)), "{e:?}");
        let name = format!("localhost:5000/app (referrer {})", digest('r'));
        assert!(e.to_string().contains(&name), "{e}");
    }

    #[test]
    fn one_blob_attached_twice_is_read_and_imported_once() {
        let mut report = inspection();
        // BuildKit first: the origin is where the blob was found first.
        let mut annotated = layer(digest('1'), media::IN_TOTO, None);
        annotated
            .annotations
            .insert(keys::IN_TOTO_PREDICATE_TYPE.into(), SPDX.into());
        report.buildkit_attestations = vec![BuildkitAttestation {
            manifest: digest('b'),
            attests: Some(digest('m')),
            layers: vec![annotated],
        }];
        report.cosign = vec![CosignArtifact {
            tag: "sha256-iii.att".into(),
            kind: "attestation",
            manifest: digest('s'),
            layers: vec![layer(digest('1'), media::DSSE_ENVELOPE, Some(SPDX))],
        }];
        report.referrers = vec![referrer(
            digest('r'),
            None,
            vec![layer(digest('1'), media::IN_TOTO, Some(SPDX))],
        )];
        let mut memory = Memory::default();
        memory
            .blobs
            .insert(digest('1'), spdx_statement(&digest('i')));
        let found = from_attachments(Kind::Sbom, &repo(), &report, &memory, &by(), at()).unwrap();
        assert_eq!(found.imports.len(), 1);
        assert_eq!(*memory.read.borrow(), vec![digest('1')]);
        let origin = format!("registry buildkit attestation {}", digest('b'));
        assert_eq!(found.imports[0].0.origin.as_deref(), Some(origin.as_str()));
    }

    #[test]
    fn attachments_of_another_kind_are_not_read_or_are_skipped() {
        let mut report = inspection();
        report.referrers = vec![
            // Provenance: not a candidate, never read.
            referrer(
                digest('p'),
                None,
                vec![layer(digest('2'), media::IN_TOTO, Some(SLSA))],
            ),
            // An artifact whose type says SBOM but whose document is a Grype scan: read, skipped.
            referrer(digest('q'), Some("application/spdx+json"), Vec::new()),
        ];
        let mut memory = Memory::default();
        memory.manifests.insert(
            digest('q'),
            Manifest::Image(ImageManifest {
                schema_version: 2,
                media_type: media::OCI_MANIFEST.into(),
                artifact_type: Some("application/spdx+json".into()),
                config: Descriptor::for_bytes(media::OCI_EMPTY, b"{}"),
                layers: vec![Descriptor {
                    media_type: "application/spdx+json".into(),
                    digest: digest('3'),
                    size: 14,
                    artifact_type: None,
                    platform: None,
                    annotations: BTreeMap::new(),
                }],
                subject: None,
                annotations: BTreeMap::new(),
            }),
        );
        memory
            .blobs
            .insert(digest('3'), br#"{"matches": []}"#.to_vec());
        let found = from_attachments(Kind::Sbom, &repo(), &report, &memory, &by(), at()).unwrap();
        assert!(found.imports.is_empty());
        assert_eq!(*memory.read.borrow(), vec![digest('3')]);
        assert_eq!(
            found.skipped,
            vec![format!("referrer {}: grype is not an SBOM", digest('q'))]
        );
        // For `scan add`, neither is a candidate: the artifact type is not a scan's.
        let found = from_attachments(Kind::Scan, &repo(), &report, &memory, &by(), at()).unwrap();
        assert!(found.imports.is_empty() && found.skipped.is_empty());
    }

    #[test]
    fn what_may_hold_a_document() {
        assert!(may_hold(Kind::Sbom, "https://spdx.dev/Document/v2.3"));
        assert!(may_hold(Kind::Sbom, "application/vnd.cyclonedx+json"));
        assert!(!may_hold(Kind::Sbom, SLSA));
        assert!(may_hold(
            Kind::Scan,
            "https://cosign.sigstore.dev/attestation/vuln/v1"
        ));
        assert!(may_hold(Kind::Scan, "https://cyclonedx.org/bom"));
        assert!(!may_hold(Kind::Scan, SPDX));
    }

    #[test]
    fn a_registry_refusal_is_a_registry_error() {
        let mut report = inspection();
        report.referrers = vec![referrer(
            digest('r'),
            None,
            vec![layer(digest('1'), media::IN_TOTO, Some(SPDX))],
        )];
        let e = from_attachments(
            Kind::Sbom,
            &repo(),
            &report,
            &Memory::default(),
            &by(),
            at(),
        )
        .unwrap_err();
        assert!(matches!(e, FromRegistryError::Registry(_)), "{e:?}");
    }
}
