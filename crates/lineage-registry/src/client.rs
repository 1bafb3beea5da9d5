//! The blocking HTTP client for the OCI distribution API (distribution-spec `spec.md`).
//!
//! Auth follows the challenge flow: a request goes out with whatever `Authorization` header
//! is cached for its registry and scope; a 401 carries `WWW-Authenticate`, which says either
//! Basic (send credentials) or Bearer (fetch a token for `repository:<name>:<actions>` from
//! the realm, with credentials if any, per the distribution token spec `token.md`). Every
//! manifest and blob is hashed and compared with the digest it was requested by.
//!
//! Plain HTTP is used only for loopback registries (127.0.0.0/8, ::1, `localhost`) and for
//! registries the caller lists as insecure; everything else is TLS with the webpki roots.
//!
//! The HTTP client is `ureq` 3 rather than `reqwest`: it is blocking without an async runtime
//! (no tokio/hyper/tower to compile), and its TLS runs on rustls with the aws-lc-rs provider
//! that the workspace already builds, so the registry client adds no second crypto stack.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lineage_model::{Digest, ImageRef, Repository, Tag};
use serde::Deserialize;

use crate::auth::{parse_challenge, Challenge, Credentials, DockerConfig};
use crate::manifest::{media, verify_digest, Descriptor, FetchedManifest, ImageIndex, Manifest};
use crate::{Error, Progress, ProgressFn, Result};

/// Settings for a [`Client`]; `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (`host` or `host:port`) that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Whether loopback registries use plain HTTP (the default, as docker does). Turn off to
    /// insist on TLS everywhere.
    pub plain_http_for_loopback: bool,
    pub connect_timeout: Duration,
    /// Limit on one whole request, body included.
    pub request_timeout: Duration,
    /// How often a 429 or 5xx answer is retried before it becomes an error.
    pub max_retries: u32,
    /// First retry delay; each further retry doubles it (capped at 8 times the base).
    pub retry_base_delay: Duration,
    pub max_manifest_bytes: u64,
    pub max_blob_bytes: u64,
    /// An HTTP proxy URL. The library reads no proxy variables itself; the CLI passes them.
    pub proxy: Option<String>,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            plain_http_for_loopback: true,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(250),
            // distribution limits manifests to 4 MiB by default; anything larger is suspect.
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 512 * 1024 * 1024,
            proxy: None,
            user_agent: concat!("lineage/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// The reference part after the repository: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// The digest when the image reference pins one, else its tag, else `latest` (the
    /// default docker applies).
    pub fn of(image: &ImageRef) -> Reference {
        match (&image.digest, &image.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => Reference::Tag(Tag::parse("latest").expect("constant tag")),
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => write!(f, "{t}"),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// What pushing a manifest returned.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The registry answered with `OCI-Subject`, i.e. it indexed the subject for the
    /// Referrers API (distribution-spec `spec.md`, "Pushing Manifests with Subject").
    pub subject_indexed: bool,
}

#[derive(Default)]
struct AuthState {
    credentials: HashMap<String, Option<Credentials>>,
    /// `Authorization` values by `(registry, scope)`.
    headers: HashMap<(String, String), String>,
}

/// A blocking registry client. Cheap to share by reference; caches tokens per scope.
pub struct Client {
    agent: ureq::Agent,
    config: ClientConfig,
    docker_config: Option<DockerConfig>,
    static_credentials: HashMap<String, Credentials>,
    state: Mutex<AuthState>,
    progress: Option<ProgressFn>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    inner: ureq::http::Response<ureq::Body>,
    pub url: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::WebPki)
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let proxy = match &config.proxy {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| Error::Transport {
                url: p.clone(),
                reason: format!("bad proxy: {e}"),
            })?),
            None => None,
        };
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            .tls_config(tls)
            .proxy(proxy)
            .user_agent(config.user_agent.as_str())
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(agent_config),
            config,
            docker_config: None,
            static_credentials: HashMap::new(),
            state: Mutex::new(AuthState::default()),
            progress: None,
        })
    }

    /// Looks credentials up in this docker config.
    pub fn with_docker_config(mut self, config: DockerConfig) -> Client {
        self.docker_config = Some(config);
        self
    }

    /// Uses `credentials` for `registry`, ahead of any docker config.
    pub fn with_credentials(mut self, registry: &str, credentials: Credentials) -> Client {
        self.static_credentials
            .insert(registry.to_string(), credentials);
        self
    }

    /// Reports progress of long operations to `callback`.
    pub fn with_progress(mut self, callback: ProgressFn) -> Client {
        self.progress = Some(callback);
        self
    }

    pub(crate) fn report(&self, event: Progress) {
        if let Some(cb) = &self.progress {
            cb(&event);
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `http` or `https` for `registry`, per the rule in the module docs.
    pub fn scheme_for(&self, registry: &str) -> &'static str {
        let host = host_of(registry);
        let loopback = host == "localhost"
            || host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        let listed = self
            .config
            .insecure_registries
            .iter()
            .any(|r| r == registry || r == host);
        if (loopback && self.config.plain_http_for_loopback) || listed {
            "http"
        } else {
            "https"
        }
    }

    fn base_url(&self, registry: &str) -> String {
        // Docker Hub's API lives on another host than its name (`normalize.go`).
        let host = if registry == lineage_model::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{}://{host}", self.scheme_for(registry))
    }

    fn url(&self, repo: &Repository, tail: &str) -> String {
        format!(
            "{}/v2/{}/{tail}",
            self.base_url(repo.registry()),
            repo.path()
        )
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(c) = self.static_credentials.get(registry) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = self.lock().credentials.get(registry) {
            return Ok(c.clone());
        }
        let found = match &self.docker_config {
            Some(cfg) => cfg.credentials_for(registry)?,
            None => None,
        };
        self.lock()
            .credentials
            .insert(registry.to_string(), found.clone());
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that `/v2/` answers, authenticating if challenged (distribution-spec
    /// `spec.md`, "Determining Support").
    pub fn ping(&self, registry: &str) -> Result<()> {
        let url = format!("{}/v2/", self.base_url(registry));
        let resp = self.send(registry, None, Method::Get, &url, &[], None)?;
        match resp.status {
            200..=299 => Ok(()),
            s => Err(http_error(Method::Get, &url, s, "")),
        }
    }

    /// Sends one request with auth and retries. `scope` is `(repository path, actions)`.
    pub(crate) fn send(
        &self,
        registry: &str,
        scope: Option<(&str, &str)>,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let scope_str = scope
            .map(|(path, actions)| format!("repository:{path}:{actions}"))
            .unwrap_or_else(|| "registry:catalog:*".to_string());
        let key = (registry.to_string(), scope_str.clone());
        let mut authenticated_once = false;
        let mut attempt = 0;
        loop {
            let auth = self.lock().headers.get(&key).cloned();
            let resp = self.raw(registry, method, url, headers, body, auth.as_deref())?;
            match resp.status {
                401 => {
                    let creds = self.credentials(registry)?;
                    if authenticated_once {
                        return Err(match creds {
                            Some(_) => Error::CredentialsRejected {
                                registry: registry.to_string(),
                                scope: scope_str,
                                status: 401,
                            },
                            None => Error::AuthenticationRequired {
                                registry: registry.to_string(),
                                scope: scope_str,
                            },
                        });
                    }
                    let challenge = resp
                        .header("www-authenticate")
                        .and_then(parse_challenge)
                        .ok_or_else(|| match &creds {
                            Some(_) => Error::CredentialsRejected {
                                registry: registry.to_string(),
                                scope: scope_str.clone(),
                                status: 401,
                            },
                            None => Error::AuthenticationRequired {
                                registry: registry.to_string(),
                                scope: scope_str.clone(),
                            },
                        })?;
                    let header = match challenge {
                        Challenge::Basic => match &creds {
                            Some(c) => c.basic_header(),
                            None => {
                                return Err(Error::AuthenticationRequired {
                                    registry: registry.to_string(),
                                    scope: scope_str,
                                })
                            }
                        },
                        Challenge::Bearer { realm, service, .. } => {
                            // Ask for the scope this request needs, not the one echoed in
                            // the challenge, so one token serves the whole operation.
                            let token = self.fetch_token(
                                registry,
                                &realm,
                                service.as_deref(),
                                scope.map(|_| scope_str.as_str()),
                                creds.as_ref(),
                            )?;
                            format!("Bearer {token}")
                        }
                    };
                    self.lock().headers.insert(key.clone(), header);
                    authenticated_once = true;
                }
                403 => {
                    let sent_creds = auth.is_some() && self.credentials(registry)?.is_some();
                    return Err(if sent_creds {
                        Error::CredentialsRejected {
                            registry: registry.to_string(),
                            scope: scope_str,
                            status: 403,
                        }
                    } else {
                        Error::Denied {
                            registry: registry.to_string(),
                            scope: scope_str,
                        }
                    });
                }
                429 | 500 | 502 | 503 | 504 if attempt < self.config.max_retries => {
                    let delay = resp
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                        .unwrap_or_else(|| self.config.retry_base_delay * (1 << attempt.min(3)));
                    // A server asking for minutes would stall a CI job; cap the wait.
                    std::thread::sleep(delay.min(Duration::from_secs(30)));
                    attempt += 1;
                }
                _ => return Ok(resp),
            }
        }
    }

    fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in [("service", service), ("scope", scope)] {
            if let Some(v) = v {
                url.push(sep);
                url.push_str(k);
                url.push('=');
                url.push_str(&percent_encode(v));
                sep = '&';
            }
        }
        let basic = creds.map(Credentials::basic_header);
        let mut resp = self.raw(registry, Method::Get, &url, &[], None, basic.as_deref())?;
        let scope_text = scope.unwrap_or("").to_string();
        match resp.status {
            200 => {}
            401 | 403 => {
                return Err(match creds {
                    Some(_) => Error::CredentialsRejected {
                        registry: registry.to_string(),
                        scope: scope_text,
                        status: resp.status,
                    },
                    None => Error::AuthenticationRequired {
                        registry: registry.to_string(),
                        scope: scope_text,
                    },
                })
            }
            s => {
                return Err(Error::Token {
                    realm: realm.to_string(),
                    reason: format!("HTTP {s}"),
                })
            }
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let bytes = self.read_body(&mut resp, 1024 * 1024, "token response")?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| Error::Token {
            realm: realm.to_string(),
            reason: e.to_string(),
        })?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Token {
                realm: realm.to_string(),
                reason: "no `token` in the answer".into(),
            })
    }

    /// One HTTP exchange, with transport errors classified.
    fn raw(
        &self,
        registry: &str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        auth: Option<&str>,
    ) -> Result<Response> {
        let result = match method {
            Method::Get | Method::Head => {
                let mut req = if method == Method::Get {
                    self.agent.get(url)
                } else {
                    self.agent.head(url)
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            Method::Put | Method::Post => {
                let mut req = if method == Method::Put {
                    self.agent.put(url)
                } else {
                    self.agent.post(url)
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                match body {
                    Some(b) => req.send(b),
                    None => req.send_empty(),
                }
            }
        };
        let inner = result.map_err(|e| classify(registry, url, e))?;
        let headers = inner
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        Ok(Response {
            status: inner.status().as_u16(),
            headers,
            inner,
            url: url.to_string(),
        })
    }

    /// Reads a body up to `limit` bytes, reporting progress for large ones.
    pub(crate) fn read_body(
        &self,
        resp: &mut Response,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let total = resp
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(t) = total {
            if t > limit {
                return Err(Error::TooLarge {
                    what,
                    url: resp.url.clone(),
                    limit,
                });
            }
        }
        let url = resp.url.clone();
        let mut reader = resp
            .inner
            .body_mut()
            .with_config()
            .limit(limit.saturating_add(1))
            .reader();
        let mut out = Vec::with_capacity(total.unwrap_or(0).min(limit) as usize);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(|e| Error::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() as u64 > limit {
                return Err(Error::TooLarge { what, url, limit });
            }
            if total.is_some_and(|t| t > 1024 * 1024) {
                self.report(Progress {
                    task: what,
                    done: out.len() as u64,
                    total,
                });
            }
        }
        Ok(out)
    }

    /// Resolves a tag (or checks a digest) to the manifest's descriptor with `HEAD`
    /// (distribution-spec `spec.md`, "Checking if content exists in the registry"). Falls
    /// back to `GET` when a registry answers `HEAD` without `Docker-Content-Digest`.
    pub fn resolve(&self, image: &ImageRef) -> Result<Descriptor> {
        let reference = Reference::of(image);
        let repo = &image.repository;
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull")),
            Method::Head,
            &url,
            &[("Accept", media::MANIFEST_ACCEPT)],
            None,
        )?;
        match resp.status {
            200 => {}
            404 => return Err(manifest_unknown(repo, &reference, None)),
            s => return Err(http_error(Method::Head, &url, s, "")),
        }
        let header_digest = resp
            .header("docker-content-digest")
            .and_then(|d| Digest::parse(d.trim()).ok());
        let media_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let size = resp
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        match (header_digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) if is_manifest_type(&media_type) => {
                if let Some(want) = reference.digest() {
                    if want != &digest {
                        return Err(Error::DigestMismatch {
                            what: "manifest",
                            expected: want.clone(),
                            actual: digest,
                        });
                    }
                }
                Ok(Descriptor {
                    media_type,
                    digest,
                    size,
                    artifact_type: None,
                    platform: None,
                    annotations: Default::default(),
                })
            }
            _ => Ok(self.fetch_manifest(repo, &reference)?.descriptor),
        }
    }

    /// Fetches and parses a manifest or index, checking its digest: against the requested
    /// digest, or against `Docker-Content-Digest` when fetched by tag.
    pub fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
    ) -> Result<FetchedManifest> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let mut resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull")),
            Method::Get,
            &url,
            &[("Accept", media::MANIFEST_ACCEPT)],
            None,
        )?;
        match resp.status {
            200 => {}
            404 => {
                let body = self
                    .read_body(&mut resp, 64 * 1024, "error")
                    .unwrap_or_default();
                return Err(manifest_unknown(repo, reference, Some(&body)));
            }
            s => {
                let body = self
                    .read_body(&mut resp, 64 * 1024, "error")
                    .unwrap_or_default();
                return Err(http_error(Method::Get, &url, s, &error_detail(&body)));
            }
        }
        let content_type = resp.header("content-type").map(str::to_string);
        let header_digest = resp.header("docker-content-digest").map(str::to_string);
        let bytes = self.read_body(&mut resp, self.config.max_manifest_bytes, "manifest")?;
        let digest = match reference {
            Reference::Digest(d) => {
                verify_digest("manifest", d, &bytes)?;
                d.clone()
            }
            Reference::Tag(_) => match header_digest.and_then(|h| Digest::parse(h.trim()).ok()) {
                Some(d) => {
                    verify_digest("manifest", &d, &bytes)?;
                    d
                }
                None => crate::manifest::digest_of(lineage_model::Algorithm::Sha256, &bytes),
            },
        };
        let manifest =
            Manifest::parse(&format!("{repo}@{digest}"), content_type.as_deref(), &bytes)?;
        Ok(FetchedManifest {
            descriptor: Descriptor {
                media_type: manifest.media_type().to_string(),
                digest,
                size: bytes.len() as u64,
                artifact_type: None,
                platform: None,
                annotations: Default::default(),
            },
            bytes,
            manifest,
        })
    }

    /// Fetches a blob and checks that it hashes to `digest`.
    pub fn fetch_blob(&self, repo: &Repository, digest: &Digest) -> Result<Vec<u8>> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let mut resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull")),
            Method::Get,
            &url,
            &[],
            None,
        )?;
        match resp.status {
            200 => {}
            404 => {
                return Err(Error::BlobUnknown {
                    repository: repo.to_string(),
                    digest: digest.clone(),
                })
            }
            s => return Err(http_error(Method::Get, &url, s, "")),
        }
        let bytes = self.read_body(&mut resp, self.config.max_blob_bytes, "blob")?;
        verify_digest("blob", digest, &bytes)?;
        Ok(bytes)
    }

    /// Whether the repository holds blob `digest`.
    pub fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull")),
            Method::Head,
            &url,
            &[],
            None,
        )?;
        match resp.status {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(http_error(Method::Head, &url, s, "")),
        }
    }

    /// Uploads `bytes` as one blob, monolithically (distribution-spec `spec.md`, "POST then
    /// PUT"), unless the repository already holds it.
    pub fn push_blob(&self, repo: &Repository, bytes: &[u8]) -> Result<Digest> {
        let digest = crate::manifest::digest_of(lineage_model::Algorithm::Sha256, bytes);
        if self.blob_exists_for_push(repo, &digest)? {
            return Ok(digest);
        }
        let scope = Some((repo.path(), "pull,push"));
        let url = self.url(repo, "blobs/uploads/");
        let resp = self.send(repo.registry(), scope, Method::Post, &url, &[], None)?;
        if resp.status != 202 {
            return Err(http_error(Method::Post, &url, resp.status, ""));
        }
        let location = resp.header("location").ok_or_else(|| Error::Transport {
            url: url.clone(),
            reason: "upload answer has no Location".into(),
        })?;
        let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base_url(repo.registry()))
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={}", percent_encode(&digest.to_string())));
        let len = bytes.len().to_string();
        self.report(Progress {
            task: "upload",
            done: 0,
            total: Some(bytes.len() as u64),
        });
        let resp = self.send(
            repo.registry(),
            scope,
            Method::Put,
            &put_url,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            Some(bytes),
        )?;
        if resp.status != 201 {
            return Err(http_error(Method::Put, &put_url, resp.status, ""));
        }
        self.report(Progress {
            task: "upload",
            done: bytes.len() as u64,
            total: Some(bytes.len() as u64),
        });
        Ok(digest)
    }

    fn blob_exists_for_push(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        // Use the push scope so that the token fetched here serves the upload too.
        let url = self.url(repo, &format!("blobs/{digest}"));
        let resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull,push")),
            Method::Head,
            &url,
            &[],
            None,
        )?;
        Ok(resp.status == 200)
    }

    /// Pushes manifest `bytes` of `media_type` under `reference` (a tag, or its digest).
    pub fn push_manifest(
        &self,
        repo: &Repository,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<PushedManifest> {
        let digest = crate::manifest::digest_of(lineage_model::Algorithm::Sha256, bytes);
        if let Some(want) = reference.digest() {
            verify_digest("manifest", want, bytes)?;
        }
        let url = self.url(repo, &format!("manifests/{reference}"));
        let mut resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull,push")),
            Method::Put,
            &url,
            &[("Content-Type", media_type)],
            Some(bytes),
        )?;
        if resp.status != 201 {
            let body = self
                .read_body(&mut resp, 64 * 1024, "error")
                .unwrap_or_default();
            let detail = error_detail(&body);
            if resp.status == 400 && detail.contains("MANIFEST_INVALID") {
                return Err(Error::MalformedManifest {
                    reference: format!("{repo}:{reference}"),
                    reason: format!("registry refused it: {detail}"),
                });
            }
            return Err(http_error(Method::Put, &url, resp.status, &detail));
        }
        if let Some(echo) = resp
            .header("docker-content-digest")
            .and_then(|d| Digest::parse(d.trim()).ok())
        {
            if echo != digest {
                return Err(Error::DigestMismatch {
                    what: "pushed manifest",
                    expected: digest,
                    actual: echo,
                });
            }
        }
        Ok(PushedManifest {
            digest,
            subject_indexed: resp.header("oci-subject").is_some(),
        })
    }

    /// Queries the Referrers API (distribution-spec `spec.md`, "Listing Referrers").
    /// `Ok(None)` means the registry has no such API (it answers 404).
    pub fn referrers_api(&self, repo: &Repository, subject: &Digest) -> Result<Option<ImageIndex>> {
        let url = self.url(repo, &format!("referrers/{subject}"));
        let mut resp = self.send(
            repo.registry(),
            Some((repo.path(), "pull")),
            Method::Get,
            &url,
            &[("Accept", media::OCI_INDEX)],
            None,
        )?;
        match resp.status {
            200 => {}
            404 => return Ok(None),
            s => return Err(http_error(Method::Get, &url, s, "")),
        }
        let content_type = resp.header("content-type").map(str::to_string);
        let bytes = self.read_body(&mut resp, self.config.max_manifest_bytes, "referrers")?;
        match Manifest::parse(
            &format!("referrers of {subject}"),
            content_type.as_deref(),
            &bytes,
        )? {
            Manifest::Index(i) => Ok(Some(i)),
            Manifest::Image(_) => Err(Error::MalformedManifest {
                reference: format!("referrers of {subject}"),
                reason: "is an image manifest, not an index".into(),
            }),
        }
    }

    /// Lists the repository's tags (`/tags/list`), following `Link` pagination.
    pub fn tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let mut url = self.url(repo, "tags/list?n=1000");
        let mut tags = Vec::new();
        loop {
            let mut resp = self.send(
                repo.registry(),
                Some((repo.path(), "pull")),
                Method::Get,
                &url,
                &[],
                None,
            )?;
            if resp.status == 404 {
                return Err(Error::NameUnknown {
                    repository: repo.to_string(),
                });
            }
            if resp.status != 200 {
                return Err(http_error(Method::Get, &url, resp.status, ""));
            }
            let link = resp.header("link").map(str::to_string);
            let bytes = self.read_body(&mut resp, self.config.max_manifest_bytes, "tag list")?;
            #[derive(Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&bytes).map_err(|e| Error::Transport {
                url: url.clone(),
                reason: format!("unreadable tag list: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            self.report(Progress {
                task: "tags",
                done: tags.len() as u64,
                total: None,
            });
            // `Link: </v2/name/tags/list?last=x&n=1000>; rel="next"` (RFC 5988).
            match link.and_then(|l| {
                let start = l.find('<')? + 1;
                let end = l.find('>')?;
                Some(l[start..end].to_string())
            }) {
                Some(next) => url = format!("{}{next}", self.base_url(repo.registry())),
                None => return Ok(tags),
            }
        }
    }
}

fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        media::OCI_INDEX | media::OCI_MANIFEST | media::DOCKER_LIST | media::DOCKER_MANIFEST
    )
}

/// `host` of `host[:port]`, `[::1]:port` or `::1`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if registry.matches(':').count() > 1 {
        return registry; // a bare IPv6 address
    }
    registry.split(':').next().unwrap_or(registry)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The distribution error codes in an error body, e.g. `MANIFEST_UNKNOWN: manifest unknown`.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

fn manifest_unknown(repo: &Repository, reference: &Reference, body: Option<&[u8]>) -> Error {
    if body.is_some_and(|b| error_detail(b).starts_with("NAME_UNKNOWN")) {
        return Error::NameUnknown {
            repository: repo.to_string(),
        };
    }
    Error::ManifestUnknown {
        repository: repo.to_string(),
        reference: reference.to_string(),
    }
}

fn http_error(method: Method, url: &str, status: u16, detail: &str) -> Error {
    Error::Http {
        method: method.as_str(),
        url: url.to_string(),
        status,
        detail: detail.to_string(),
    }
}

fn classify(registry: &str, url: &str, e: ureq::Error) -> Error {
    let registry = registry.to_string();
    match e {
        ureq::Error::Io(io) => {
            // ureq reports a failed name lookup as a plain I/O error; tell it apart by
            // trying the lookup ourselves.
            if io.kind() != std::io::ErrorKind::ConnectionRefused && !resolves(&registry) {
                return Error::Unreachable {
                    registry,
                    reason: format!("cannot resolve the host: {io}"),
                };
            }
            classify_io(registry, url, io)
        }
        ureq::Error::HostNotFound => Error::Unreachable {
            registry,
            reason: "host not found".into(),
        },
        ureq::Error::ConnectionFailed => Error::Unreachable {
            registry,
            reason: "connection failed".into(),
        },
        ureq::Error::Timeout(_) => Error::Timeout { registry },
        ureq::Error::Tls(msg) => Error::Tls {
            registry,
            reason: msg.to_string(),
        },
        ureq::Error::Rustls(err) => Error::Tls {
            registry,
            reason: err.to_string(),
        },
        other => Error::Transport {
            url: url.to_string(),
            reason: other.to_string(),
        },
    }
}

fn resolves(registry: &str) -> bool {
    use std::net::ToSocketAddrs;
    let host = host_of(registry);
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    (host, 443)
        .to_socket_addrs()
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

fn classify_io(registry: String, url: &str, io: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    if io
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    {
        return Error::Tls {
            registry,
            reason: io.to_string(),
        };
    }
    match io.kind() {
        K::ConnectionRefused => Error::ConnectionRefused { registry },
        K::TimedOut | K::WouldBlock => Error::Timeout { registry },
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => Error::Unreachable {
            registry,
            reason: io.to_string(),
        },
        _ => Error::Transport {
            url: url.to_string(),
            reason: io.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed() {
        let mut config = ClientConfig {
            insecure_registries: vec!["build.internal:5000".into(), "lab.internal".into()],
            ..ClientConfig::default()
        };
        let c = Client::new(config.clone()).unwrap();
        for (registry, scheme) in [
            ("127.0.0.1:5000", "http"),
            ("127.8.9.10", "http"),
            ("localhost:5000", "http"),
            ("[::1]:5000", "http"),
            ("build.internal:5000", "http"),
            ("build.internal:5001", "https"),
            ("lab.internal:443", "http"),
            ("registry.example.com", "https"),
            ("10.0.0.1:5000", "https"),
            ("docker.io", "https"),
        ] {
            assert_eq!(c.scheme_for(registry), scheme, "{registry}");
        }
        config.plain_http_for_loopback = false;
        let strict = Client::new(config).unwrap();
        assert_eq!(strict.scheme_for("127.0.0.1:5000"), "https");
    }

    #[test]
    fn reference_defaults_to_latest_and_prefers_digest() {
        let r = ImageRef::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(Reference::of(&r).to_string(), "latest");
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = ImageRef::parse(&format!("127.0.0.1:5000/app:1@sha256:{hex}")).unwrap();
        assert_eq!(Reference::of(&r).to_string(), format!("sha256:{hex}"));
    }
}
