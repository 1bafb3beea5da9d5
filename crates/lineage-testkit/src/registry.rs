//! A real CNCF distribution registry (Debian's `docker-registry`, 2.8) on a free loopback
//! port with its own storage directory, stopped when dropped.
//!
//! Distribution 2.8 has no OCI 1.1 Referrers API: `GET /v2/<name>/referrers/<digest>` is an
//! unknown route and answers 404. That makes it the "registry without the Referrers API"
//! case that the referrers tag schema exists for.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{require, run};

/// A running registry. Killed (and its storage deleted) on drop.
pub struct Registry {
    host: String,
    child: Child,
    dir: TempDir,
    credentials: Option<(String, String)>,
}

impl Registry {
    /// An anonymous registry with deletes enabled.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that requires HTTP basic auth with one user (htpasswd, bcrypt).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user.to_string(), password.to_string())))
    }

    fn launch(credentials: Option<(String, String)>) -> Registry {
        let binary = require("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("lineage-registry-")
            .tempdir()
            .expect("temp dir");
        let auth = match &credentials {
            None => String::new(),
            Some((user, password)) => {
                let htpasswd = require("htpasswd", "apache2-utils");
                // -B: bcrypt, the only hash distribution's htpasswd backend accepts.
                let line = run(Command::new(htpasswd).args(["-Bbn", user, password]));
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, line.trim_end().to_string() + "\n").expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: lineage-test\n    path: {}\n",
                    path.display()
                )
            }
        };
        // A port picked by the kernel can be taken again between our probe and the
        // registry's bind; retry a few times rather than flake.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: lineage-test-secret\n{auth}",
                    dir.path().join("storage").display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut child = child;
            if wait_ready(
                &host,
                &mut child,
                credentials.is_some(),
                Duration::from_secs(15),
            ) {
                return Registry {
                    host,
                    child,
                    dir,
                    credentials,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not start; last log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `127.0.0.1:PORT/<name>`, e.g. `reference("app:1")`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }

    /// The user and password of an htpasswd instance.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The storage directory (to simulate corruption in tests).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

/// Polls `GET /v2/` until the registry answers 200 (or 401 when auth is on).
fn wait_ready(host: &str, child: &mut Child, auth: bool, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Some(status) = http_status(host, "/v2/") {
            if status == 200 || (status == 401 && auth) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A minimal HTTP/1.0 GET returning the status code; the testkit does not need a client.
fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}
