//! Lineage's domain types.
//!
//! Everything a user types is parsed here, once, into a checked type; code past the edge never
//! re-validates a string. Parse errors carry the field, the bad value and an example of the
//! right form ([`ParseError`]). This crate does no IO.

mod digest;
mod error;
mod names;
mod progress;
mod purl;
mod records;
mod reference;
mod suggest;
mod text;
mod timestamp;

pub use digest::{Algorithm, Digest, DigestQuery, MIN_DIGEST_PREFIX};
pub use error::ParseError;
pub use names::{CommitId, EnvName, Identity, IdentityKind, ServiceName, SourceRepo};
pub use progress::Progress;
pub use purl::{name_key, Purl};
pub use records::{
    canonical_json, Approval, Attestation, BaseImage, BaseSeen, BuildRecord, CheckResult, CiRun,
    ConfigFile, DeployOutcome, DeployRecord, DockerfileRef, Exception, IncidentOpened,
    IncidentQuery, IncidentTarget, LogKeyRotation, ObservationBatch, Observed, OutcomeStatus,
    PlacementEnd, Record, Retirement, SbomFinding, SbomImport, SbomLayer, SbomPackage, Service,
    ServiceChange, ServiceRemoval, TagAdded, TokenGrant, TokenRevocation,
};
pub use reference::{ImageRef, Repository, Tag, DOCKER_HUB, MAX_NAME_LEN, MAX_TAG_LEN};
pub use suggest::closest;
pub use text::{check_free_text, inert, is_unsafe_char};
pub use timestamp::Timestamp;
