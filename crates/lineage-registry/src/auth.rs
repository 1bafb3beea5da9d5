//! Credentials and the `WWW-Authenticate` challenge.
//!
//! Credentials come from a docker `config.json` whose path the caller passes in (the library
//! reads no environment): `credHelpers` for the registry first, then `credsStore`, then the
//! inline `auths` entry (`auth` = base64 of `user:password`, or `username`/`password`).
//! Helpers are run as `docker-credential-<name> get` with the server name on stdin
//! (docker-credential-helpers protocol). Challenges are parsed per RFC 7235 §4.1 as used by
//! the distribution token specification (`docs/spec/auth/token.md`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::{Error, Result};

/// A username and a secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret, not even in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic` value (RFC 7617).
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// A parsed docker `config.json`.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: String,
    raw: RawConfig,
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    /// Reads `path`. A missing file is an empty config (anonymous access), as in docker.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let shown = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: shown,
                    ..DockerConfig::default()
                })
            }
            Err(e) => {
                return Err(Error::DockerConfig {
                    path: shown,
                    reason: e.to_string(),
                })
            }
        };
        DockerConfig::parse(&shown, &bytes)
    }

    /// Parses config bytes; `origin` names them in errors.
    pub fn parse(origin: &str, bytes: &[u8]) -> Result<DockerConfig> {
        let raw = serde_json::from_slice(bytes).map_err(|e| Error::DockerConfig {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        Ok(DockerConfig {
            path: origin.to_string(),
            raw,
            helper_dir: None,
        })
    }

    /// Runs credential helpers from `dir` instead of looking them up on `PATH`.
    pub fn with_helper_dir(mut self, dir: PathBuf) -> DockerConfig {
        self.helper_dir = Some(dir);
        self
    }

    /// The credentials for `registry` (`host[:port]`), if any are configured.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>> {
        let server = server_key(registry);
        if let Some(helper) = self.raw.cred_helpers.get(&server).or_else(|| {
            self.raw
                .cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k) == server)
                .map(|(_, v)| v)
        }) {
            return self.run_helper(helper, &server);
        }
        if let Some(store) = &self.raw.creds_store {
            if let Some(c) = self.run_helper(store, &server)? {
                return Ok(Some(c));
            }
        }
        let Some(entry) = self
            .raw
            .auths
            .iter()
            .find(|(k, _)| normalize_key(k) == server)
            .map(|(_, v)| v)
        else {
            return Ok(None);
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = |reason: &str| Error::DockerConfig {
                path: self.path.clone(),
                reason: format!("`auths.{registry}.auth` {reason}"),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| bad("does not decode to `user:password`"))?;
            return Ok(Some(Credentials::new(user, pass)));
        }
        match (&entry.username, &entry.password) {
            (Some(u), Some(p)) => Ok(Some(Credentials::new(u.clone(), p.clone()))),
            _ => Ok(None),
        }
    }

    fn run_helper(&self, name: &str, server: &str) -> Result<Option<Credentials>> {
        let fail = |reason: String| Error::CredentialHelper {
            helper: name.to_string(),
            reason,
        };
        let program = format!("docker-credential-{name}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut child = Command::new(&program)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run `{}`: {e}", program.display())))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(server.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stdout).trim().to_string()
                + String::from_utf8_lossy(&out.stderr).trim();
            // The helpers' protocol reports an absent entry with this exact message.
            if msg.contains("credentials not found") {
                return Ok(None);
            }
            return Err(fail(format!("exited with {}: {msg}", out.status)));
        }
        #[derive(Deserialize)]
        struct HelperOut {
            #[serde(rename = "Username")]
            username: String,
            #[serde(rename = "Secret")]
            secret: String,
        }
        let parsed: HelperOut = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("printed unreadable JSON: {e}")))?;
        Ok(Some(Credentials::new(parsed.username, parsed.secret)))
    }
}

/// The key docker uses for a registry in `auths`: Docker Hub keeps its historical v1 URL.
fn server_key(registry: &str) -> String {
    if registry == lineage_model::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host:port/v2/` and `host:port` name the same registry in `auths`.
fn normalize_key(key: &str) -> String {
    if key.contains("index.docker.io") {
        return "https://index.docker.io/v1/".to_string();
    }
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first Basic or Bearer challenge of a `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value` pairs; quoted values may contain commas (scopes do).
fn parse_params(input: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = input.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(stripped) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = stripped.char_indices();
            let mut end = stripped.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &stripped[end.min(stripped.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_comma_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None, "no realm");
    }

    #[test]
    fn auths_entries() {
        let cfg = DockerConfig::parse(
            "test",
            br#"{"auths":{
                "https://registry.example.com/v2/":{"auth":"dXNlcjpwYTpzcw=="},
                "other.example.com:5000":{"username":"u","password":"p"},
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="},
                "broken.example.com":{"auth":"!!"}
            }}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.credentials_for("registry.example.com").unwrap(),
            Some(Credentials::new("user", "pa:ss")),
            "password may contain a colon"
        );
        assert_eq!(
            cfg.credentials_for("other.example.com:5000").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        assert_eq!(
            cfg.credentials_for("docker.io").unwrap(),
            Some(Credentials::new("hub", "hubpass"))
        );
        assert_eq!(cfg.credentials_for("nowhere.example.com").unwrap(), None);
        assert!(matches!(
            cfg.credentials_for("broken.example.com"),
            Err(Error::DockerConfig { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn credential_helper_protocol() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        // The helper echoes the server it was asked about, so the test sees what was sent.
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\nif [ \"$server\" = none.example.com ]; then echo 'credentials not found in native keychain'; exit 1; fi\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"u-%s\",\"Secret\":\"s3cret\"}' \"$server\" \"$server\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = DockerConfig::parse(
            "test",
            br#"{"credHelpers":{"helped.example.com":"fake"},"credsStore":"fake",
                 "auths":{"none.example.com":{"auth":"YTpi"}}}"#,
        )
        .unwrap()
        .with_helper_dir(dir.path().to_path_buf());
        assert_eq!(
            cfg.credentials_for("helped.example.com").unwrap(),
            Some(Credentials::new("u-helped.example.com", "s3cret"))
        );
        assert_eq!(
            cfg.credentials_for("none.example.com").unwrap(),
            Some(Credentials::new("a", "b")),
            "store has nothing, inline auths are the fallback"
        );
        let missing = DockerConfig::parse("t", br#"{"credsStore":"absent"}"#)
            .unwrap()
            .with_helper_dir(dir.path().to_path_buf());
        assert!(matches!(
            missing.credentials_for("x.example.com"),
            Err(Error::CredentialHelper { .. })
        ));
    }
}
