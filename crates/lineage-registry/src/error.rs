//! The error of this crate: why a registry (or an on-disk layout) could not answer.
//!
//! Each fault the CLI must tell apart is its own variant, so that callers match on the
//! variant rather than on message text: a refused connection, a TLS failure, missing or
//! rejected credentials, an unknown tag, a malformed manifest, an unsupported media type and
//! content that does not hash to the requested digest. The distribution spec's error codes
//! (`spec.md`, "Error Codes") are mapped where they carry that meaning.

use lineage_model::Digest;

/// Everything that can stop a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting failed because nothing listens on the port.
    #[error("registry `{registry}` refused the connection")]
    ConnectionRefused { registry: String },

    /// The host could not be resolved or reached at all (DNS, routing, closed network).
    #[error("registry `{registry}` is unreachable: {reason}")]
    Unreachable { registry: String, reason: String },

    /// The registry did not answer within the configured timeout.
    #[error("registry `{registry}` did not answer in time")]
    Timeout { registry: String },

    /// The TLS handshake failed: bad certificate, wrong host name, or a peer that does not
    /// speak TLS at all.
    #[error("TLS with registry `{registry}` failed: {reason}")]
    Tls { registry: String, reason: String },

    /// A plain-HTTP registry that is neither loopback nor listed as insecure.
    #[error("registry `{registry}` would need plain HTTP, which is allowed only for loopback or listed insecure registries")]
    InsecureNotAllowed { registry: String },

    /// The registry wants credentials and none were configured for it (HTTP 401).
    #[error("registry `{registry}` requires credentials for `{scope}` and none are configured")]
    AuthenticationRequired { registry: String, scope: String },

    /// Credentials were sent and the registry refused them (HTTP 401 after sending them,
    /// or 403).
    #[error("registry `{registry}` rejected the credentials for `{scope}` (HTTP {status})")]
    CredentialsRejected {
        registry: String,
        scope: String,
        status: u16,
    },

    /// HTTP 403 without any credentials having been sent.
    #[error("registry `{registry}` denied access to `{scope}` (HTTP 403)")]
    Denied { registry: String, scope: String },

    /// A tag or digest the repository does not hold (`MANIFEST_UNKNOWN`, or 404).
    #[error("`{repository}` has no manifest `{reference}`")]
    ManifestUnknown {
        repository: String,
        reference: String,
    },

    /// The repository itself is unknown (`NAME_UNKNOWN`).
    #[error("registry has no repository `{repository}`")]
    NameUnknown { repository: String },

    /// A blob the registry does not hold (`BLOB_UNKNOWN`, or 404).
    #[error("`{repository}` has no blob `{digest}`")]
    BlobUnknown { repository: String, digest: Digest },

    /// A manifest (or index, or config) that is not valid JSON of the expected shape.
    #[error("manifest `{reference}` is malformed: {reason}")]
    MalformedManifest { reference: String, reason: String },

    /// A media type this client does not read, e.g. Docker schema 1.
    #[error("`{reference}` has unsupported media type `{media_type}`")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },

    /// Bytes that do not hash to the digest they were requested by: a tampering registry or
    /// proxy, or corruption.
    #[error("{what} `{expected}` has content that hashes to `{actual}`")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },

    /// The response is larger than the configured limit.
    #[error("{what} from `{url}` is larger than the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        url: String,
        limit: u64,
    },

    /// An HTTP status this client has no specific meaning for (after retries for 429/5xx).
    #[error("registry answered HTTP {status} to {method} `{url}`{}", detail_suffix(.detail))]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },

    /// The docker config file could not be read or parsed.
    #[error("docker config `{path}` is unusable: {reason}")]
    DockerConfig { path: String, reason: String },

    /// A `docker-credential-*` helper failed.
    #[error("credential helper `docker-credential-{helper}` failed: {reason}")]
    CredentialHelper { helper: String, reason: String },

    /// The bearer-token endpoint answered something unusable.
    #[error("token endpoint `{realm}` failed: {reason}")]
    Token { realm: String, reason: String },

    /// An attestation (DSSE envelope or in-toto statement) that does not decode.
    #[error("attestation is malformed: {reason}")]
    MalformedAttestation { reason: String },

    /// An on-disk OCI layout could not be read.
    #[error("OCI layout `{path}`: {reason}")]
    Layout { path: String, reason: String },

    /// No manifest in an index matches the requested platform.
    #[error("index `{digest}` has no manifest for platform `{platform}` (it has: {available})")]
    PlatformNotFound {
        digest: Digest,
        platform: String,
        available: String,
    },

    /// Any other transport failure.
    #[error("request to `{url}` failed: {reason}")]
    Transport { url: String, reason: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
