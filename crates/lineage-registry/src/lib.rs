//! Lineage's OCI distribution client.
//!
//! It reads what a registry knows about an image (digest, platforms, labels, base
//! annotations, layers), inspects the attestations other tools attach (BuildKit attestation
//! manifests, cosign `.sig`/`.att` tags, OCI 1.1 referrers), and attaches Lineage's own
//! provenance as an OCI 1.1 artifact. The same manifest model and inspection logic run over
//! an on-disk OCI image layout ([`OciLayout`]), so they are testable on fixtures.
//!
//! Specifications cited in this crate: the OCI distribution spec v1.1 (`spec.md`), the OCI
//! image spec v1.1 (`manifest.md`, `image-index.md`, `descriptor.md`, `config.md`,
//! `annotations.md`, `image-layout.md`) and Docker's token auth spec (`token.md`).
//!
//! The crate prints nothing and reads no environment variables: the caller passes the docker
//! config path, insecure registries and proxy in, and may pass a progress callback.

mod attach;
mod auth;
mod client;
mod error;
mod inspect;
mod layout;
mod manifest;
mod provenance;
mod source;

pub use attach::{
    attach, pull_attached, Artifact, Attached, PulledArtifact, LINEAGE_PROVENANCE_ARTIFACT_TYPE,
};
pub use auth::{parse_challenge, Challenge, Credentials, DockerConfig};
pub use client::{Client, ClientConfig, PushedManifest, Reference};
pub use error::{Error, Result};
pub use inspect::{
    inspect, read_image, AttachedLayer, BuildkitAttestation, CosignArtifact, Fact, FactOrigin,
    ImageDetails, ImageFacts, Inspection, PlatformEntry, Referrer, INSPECTION_SCHEMA,
};
pub use layout::OciLayout;
pub use manifest::{
    digest_of, keys, layer_match, media, verify_digest, Descriptor, FetchedManifest, ImageConfig,
    ImageIndex, ImageManifest, Manifest, Platform, RuntimeConfig,
};
pub use provenance::{
    decode_dsse_payload, decode_statement, Material, Provenance, Statement, SLSA_V02, SLSA_V1,
};
pub use source::{fallback_tag, ContentSource, Referrers, ReferrersVia, RemoteRepository};

/// One progress report: `done` of `total` units (bytes, tags, manifests) of a named task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub task: &'static str,
    pub done: u64,
    pub total: Option<u64>,
}

/// A progress callback. The CLI decides whether to draw anything.
pub type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;
