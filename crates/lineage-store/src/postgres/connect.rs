//! Where a PostgreSQL ledger lives and how Lineage connects to it: the URL, its TLS options,
//! the password-redacting display, and the process-wide connection pools.
//!
//! TLS follows libpq's `sslmode` words, so a URL that works with `psql` works here:
//! - `disable`: plain TCP;
//! - `prefer` (the default, as in libpq): TLS when the server offers it, plain otherwise; the
//!   server certificate is not checked, which protects against eavesdroppers only;
//! - `require`: TLS or no connection; the certificate is not checked unless `sslrootcert` is
//!   given (libpq's rule);
//! - `verify-ca` and `verify-full`: TLS, and the server certificate must chain to
//!   `sslrootcert=PATH` (a PEM file) or, without it, to the public Web PKI roots. rustls always
//!   checks the host name too, so `verify-ca` is as strict as `verify-full`.
//!
//! `pool_max_size=N` (a Lineage option, not libpq's) caps the connections one process opens
//! to the database (default 8).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use postgres::config::{Host, SslMode};
use r2d2_postgres::PostgresConnectionManager;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::api::StoreError;

/// The connection manager every pool uses.
pub(crate) type Manager = PostgresConnectionManager<MakeRustlsConnect>;
pub(crate) type Pool = r2d2::Pool<Manager>;

const DEFAULT_POOL_SIZE: u32 = 8;
/// How long a start-up connection attempt may take before Lineage reports the server
/// unreachable (libpq's `connect_timeout` overrides it).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL ledger location: a `postgres://` or `postgresql://` URL.
///
/// Its `Display` and `Debug` never show the password, so a location can be logged or put in
/// an error message as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    /// The URL as given, password included.
    url: String,
    /// The URL without Lineage's own options, for the client library.
    client_url: String,
    sslmode: TlsMode,
    root_cert: Option<String>,
    pool_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Disable,
    Prefer,
    Require,
    Verify,
}

impl PgLocation {
    /// Parses a `postgres://user:password@host:port/database?options` URL.
    pub fn parse(input: &str) -> Result<PgLocation, StoreError> {
        let shown = redact(input);
        let bad = |problem: String| StoreError::BadLocation {
            input: shown.clone(),
            problem,
        };
        if !(input.starts_with("postgres://") || input.starts_with("postgresql://")) {
            return Err(bad("it does not start with `postgres://`".into()));
        }
        let (base, query) = match input.split_once('?') {
            Some((b, q)) => (b, q),
            None => (input, ""),
        };
        let mut kept = Vec::new();
        let (mut sslmode, mut root_cert, mut pool_size) =
            (TlsMode::Prefer, None, DEFAULT_POOL_SIZE);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    sslmode = match value {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" | "verify-full" => TlsMode::Verify,
                        other => {
                            return Err(bad(format!(
                                "`sslmode={other}` is not one of disable, prefer, require, \
                                 verify-ca, verify-full"
                            )))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                "pool_max_size" => {
                    pool_size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("`pool_max_size={value}` is not a positive number"))
                    })?
                }
                _ => kept.push(pair),
            }
        }
        let client_url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let config = postgres::Config::from_str(&client_url).map_err(|e| bad(e.to_string()))?;
        if config.get_dbname().is_none() {
            return Err(bad(
                "it names no database (add `/DATABASE` after the host)".into()
            ));
        }
        if sslmode == TlsMode::Require && root_cert.is_some() {
            // libpq: with a root certificate, `require` behaves like `verify-ca`.
            sslmode = TlsMode::Verify;
        }
        Ok(PgLocation {
            url: input.to_string(),
            client_url,
            sslmode,
            root_cert,
            pool_size,
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The URL exactly as given, password included. For tools that must hand it on (say,
    /// to create a sibling test database); never print it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn database(&self) -> String {
        self.config().get_dbname().unwrap_or_default().to_string()
    }

    /// `host:port` of the first server the URL names, for error messages.
    pub fn server(&self) -> String {
        let config = self.config();
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    pub(crate) fn config(&self) -> postgres::Config {
        let mut config =
            postgres::Config::from_str(&self.client_url).expect("checked when the URL was parsed");
        config.ssl_mode(match self.sslmode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::Verify => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("lineage");
        }
        config
    }

    pub(crate) fn tls(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("TLS set-up failed: {e}")))?;
        let config = if self.sslmode == TlsMode::Verify {
            let mut roots = RootCertStore::empty();
            match &self.root_cert {
                Some(path) => {
                    let bad = |e: String| StoreError::BadLocation {
                        input: self.redacted(),
                        problem: format!("cannot read `sslrootcert` file `{path}`: {e}"),
                    };
                    for cert in
                        CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?
                    {
                        roots
                            .add(cert.map_err(|e| bad(e.to_string()))?)
                            .map_err(|e| bad(e.to_string()))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth()
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

impl std::fmt::Display for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PgLocation").field(&self.redacted()).finish()
    }
}

/// Replaces the password of a URL (`user:PASSWORD@`, `password=` option) with `***`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{hosts}"),
            None => format!("{userinfo}@{hosts}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `sslmode=prefer`/`require` without a root certificate: encrypt, but accept any
/// server certificate. Handshake signatures are still checked, so the session key is bound
/// to the certificate the server showed.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens one connection now, so that an unreachable server or a missing database is reported
/// at start-up with the host and port, not as a pool time-out later.
pub(crate) fn connect(location: &PgLocation) -> Result<postgres::Client, StoreError> {
    location
        .config()
        .connect(location.tls()?)
        .map_err(|e| connect_error(location, e))
}

/// The pool for `location`, shared by every store handle this process opens on it, so that
/// opening the ledger again (a server's readers, the CLI's seal step) reuses connections.
/// `fresh` is true when the pool was created by this call (and the schema not yet checked).
pub(crate) fn pool(location: &PgLocation) -> Result<(Pool, bool), StoreError> {
    let pools = POOLS.get_or_init(Default::default);
    if let Some(pool) = pools.lock().expect("pool map").get(&location.url) {
        return Ok((pool.clone(), false));
    }
    let manager = PostgresConnectionManager::new(location.config(), location.tls()?);
    let pool = r2d2::Pool::builder()
        .max_size(location.pool_size)
        .min_idle(Some(0))
        // A broken connection is detected when used (`is_closed`) and replaced; a test query
        // on every check-out would double the round trips of every read.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .build_unchecked(manager);
    pools
        .lock()
        .expect("pool map")
        .insert(location.url.clone(), pool.clone());
    Ok((pool, true))
}

/// Forgets the pool of `location` (after a failed start-up, so the next open tries afresh).
pub(crate) fn forget_pool(location: &PgLocation) {
    if let Some(pools) = POOLS.get() {
        pools.lock().expect("pool map").remove(&location.url);
    }
}

/// Pools by URL (password included, so two users never share connections).
static POOLS: OnceLock<Mutex<HashMap<String, Pool>>> = OnceLock::new();

/// A connection error as the user needs it: what could not be reached, and why.
pub(crate) fn connect_error(location: &PgLocation, e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &postgres::error::SqlState::INVALID_CATALOG_NAME {
            return StoreError::Missing(location.redacted());
        }
        return StoreError::Unavailable {
            location: location.redacted(),
            server: location.server(),
            detail: db.message().to_string(),
        };
    }
    StoreError::Unavailable {
        location: location.redacted(),
        server: location.server(),
        detail: error_chain(&e),
    }
}

/// An error and its sources on one line (the client's own `Display` is often just "db error").
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let loc =
            PgLocation::parse("postgres://lineage:s3cret@db.internal:6432/ledger?sslmode=require")
                .unwrap();
        for shown in [loc.to_string(), format!("{loc:?}"), loc.redacted()] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(
                shown.contains("lineage:***@db.internal:6432/ledger"),
                "{shown}"
            );
        }
        assert_eq!(loc.server(), "db.internal:6432");
        assert_eq!(loc.database(), "ledger");
        let opt = PgLocation::parse("postgres://u@h/db?password=hunter2&sslmode=disable").unwrap();
        assert!(!format!("{opt:?}").contains("hunter2"));
    }

    #[test]
    fn bad_urls_are_named_with_the_problem() {
        for (input, problem) in [
            ("postgres://h/db?sslmode=sometimes", "sslmode=sometimes"),
            ("postgres://h:notaport/db", "invalid"),
            ("postgres://u:pw@h", "names no database"),
            ("postgres://h/db?pool_max_size=0", "pool_max_size=0"),
        ] {
            let err = PgLocation::parse(input).unwrap_err().to_string();
            assert!(err.contains(problem), "{input}: {err}");
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn tls_modes_follow_libpq() {
        let mode = |u: &str| PgLocation::parse(u).unwrap().sslmode;
        assert_eq!(mode("postgres://h/db"), TlsMode::Prefer);
        assert_eq!(mode("postgres://h/db?sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("postgres://h/db?sslmode=require"), TlsMode::Require);
        assert_eq!(
            mode("postgres://h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"),
            TlsMode::Verify
        );
        assert_eq!(
            PgLocation::parse("postgres://h/db?sslrootcert=%2Fetc%2Fca.pem")
                .unwrap()
                .root_cert
                .as_deref(),
            Some("/etc/ca.pem")
        );
        assert_eq!(
            mode("postgresql://h/db?sslmode=verify-full"),
            TlsMode::Verify
        );
    }
}
