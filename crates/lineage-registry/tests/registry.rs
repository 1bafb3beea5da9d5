//! The registry client against a real registry (Debian's `docker-registry` 2.8, started by
//! lineage-testkit) with images built by umoci, skopeo and buildah, plus inspection of the
//! shared fixture layouts. One integration-test binary for the crate.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lineage_model::{Digest, ImageRef, Repository, Tag};
use lineage_registry::{
    attach, decode_statement, fallback_tag, inspect, keys, layer_match, media, pull_attached,
    read_image, Artifact, Client, ClientConfig, Credentials, DockerConfig, Error, FactOrigin,
    Manifest, OciLayout, Platform, Reference, ReferrersVia, RemoteRepository,
    LINEAGE_PROVENANCE_ARTIFACT_TYPE,
};
use lineage_testkit::{fixture, ImageFormat, Pushed, Registry, World};

fn client() -> Client {
    Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(60),
        retry_base_delay: Duration::from_millis(20),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).unwrap()
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

fn tag(s: &str) -> Reference {
    Reference::Tag(Tag::parse(s).unwrap())
}

fn amd64() -> Platform {
    Platform::linux_amd64()
}

/// A two-layer base image built with umoci and pushed with skopeo.
fn push_base(world: &World, registry: &Registry, name: &str) -> Pushed {
    world.umoci_image(
        &registry.reference(name),
        &[
            &[("etc/os-release", "ID=lineage-test\n")],
            &[("usr/share/base/marker", name)],
        ],
        &[("org.example.base", name)],
    )
}

fn layers_of(client: &Client, reference: &str) -> Vec<Digest> {
    let r = image(reference);
    let source = RemoteRepository::new(client, r.repository.clone());
    read_image(&source, &Reference::of(&r), &amd64())
        .unwrap()
        .layers
}

// ---------------------------------------------------------------------------------------
// Real registry: resolve, read, layer match

#[test]
fn buildah_image_resolves_and_reads_for_oci_and_docker_manifests() {
    let registry = Registry::start();
    let world = World::new();
    let client = client();
    let base = push_base(&world, &registry, "base:1");
    let base_layers = layers_of(&client, &base.reference);
    assert_eq!(base_layers.len(), 2);

    // Multi-stage, ARG in FROM, FROM by tag, COPY --from, LABEL.
    let dockerfile = format!(
        "ARG BASE={base}\nFROM ${{BASE}} AS build\nCOPY app.txt /build/app.txt\n\n\
         FROM {base}\nLABEL org.opencontainers.image.source=https://example.com/app.git \
         org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567 \
         org.opencontainers.image.version=1.2.3 com.example.team=payments\n\
         COPY --from=build /build/app.txt /app.txt\n",
        base = base.reference
    );
    let app_tag = registry.reference("app:1");
    world.buildah_build(&dockerfile, &[("app.txt", "hello")], &app_tag, &[]);
    let oci = world.buildah_push(&app_tag, ImageFormat::Oci);
    let docker = world.buildah_push_to(
        &app_tag,
        &registry.reference("app:docker"),
        ImageFormat::Docker,
    );

    // Tag → digest with HEAD, for both media types.
    let d = client.resolve(&image(&oci.reference)).unwrap();
    assert_eq!(d.digest.to_string(), oci.digest);
    assert_eq!(d.media_type, media::OCI_MANIFEST);
    let d = client.resolve(&image(&docker.reference)).unwrap();
    assert_eq!(d.digest.to_string(), docker.digest);
    assert_eq!(d.media_type, media::DOCKER_MANIFEST);
    // A pinned reference resolves to itself.
    let pinned = client.resolve(&image(&oci.pinned())).unwrap();
    assert_eq!(pinned.digest.to_string(), oci.digest);

    // Labels and base annotations of the OCI push.
    let r = image(&oci.reference);
    let source = RemoteRepository::new(&client, r.repository.clone());
    let details = read_image(&source, &Reference::of(&r), &amd64()).unwrap();
    assert_eq!(details.manifest_digest.to_string(), oci.digest);
    assert_eq!(
        details.labels.get("com.example.team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(
        details.labels.get("org.example.base").map(String::as_str),
        Some("base:1"),
        "base labels are inherited"
    );
    let facts = &details.facts;
    assert_eq!(facts.version.as_ref().unwrap().value, "1.2.3");
    assert_eq!(
        facts.source.as_ref().unwrap().origin,
        FactOrigin::ConfigLabel
    );
    let base_digest = facts
        .base_digest
        .as_ref()
        .expect("buildah writes base.digest");
    assert_eq!(base_digest.origin, FactOrigin::ManifestAnnotation);
    assert_eq!(
        base_digest.value, base.digest,
        "base.digest is the base's manifest digest"
    );
    assert_eq!(facts.base_name.as_ref().unwrap().value, base.reference);
    assert!(facts.created.is_some());
    assert_eq!(layer_match(&details.layers, &base_layers), Some((2, 3)));

    // The Docker push carries no annotations: no base facts, but the same layers.
    let r = image(&docker.reference);
    let source = RemoteRepository::new(&client, r.repository.clone());
    let details = read_image(&source, &Reference::of(&r), &amd64()).unwrap();
    assert!(details.facts.base_digest.is_none());
    assert_eq!(details.manifest_media_type, media::DOCKER_MANIFEST);
    assert_eq!(
        details.facts.version.as_ref().unwrap().value,
        "1.2.3",
        "labels survive"
    );
    assert_eq!(layer_match(&details.layers, &base_layers), Some((2, 3)));
}

#[test]
fn from_by_digest_and_skopeo_copy_exercise_layer_match() {
    let registry = Registry::start();
    let world = World::new();
    let client = client();
    let base = push_base(&world, &registry, "base:2");
    let other = push_base(&world, &registry, "other:1");
    let dockerfile = format!(
        "FROM {}\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
        base.pinned()
    );
    let app_tag = registry.reference("pinned:1");
    world.buildah_build(
        &dockerfile,
        &[("a.txt", "a"), ("b.txt", "b")],
        &app_tag,
        &[],
    );
    let pushed = world.buildah_push(&app_tag, ImageFormat::Oci);

    let r = image(&pushed.reference);
    let source = RemoteRepository::new(&client, r.repository.clone());
    let details = read_image(&source, &Reference::of(&r), &amd64()).unwrap();
    let base_digest = details
        .facts
        .base_digest
        .as_ref()
        .expect("base.digest for FROM by digest");
    assert_eq!(base_digest.value, base.digest);
    // For `FROM name@digest`, buildah writes the pinned reference as base.name.
    assert_eq!(
        details.facts.base_name.as_ref().unwrap().value,
        base.pinned()
    );

    // A copy without annotations: only the layers say where it came from.
    let copy = world.skopeo_copy(
        &pushed.reference,
        &registry.reference("copied:1"),
        ImageFormat::Docker,
    );
    assert_ne!(
        copy.digest, pushed.digest,
        "the conversion changes the manifest digest"
    );
    let r = image(&copy.reference);
    let source = RemoteRepository::new(&client, r.repository.clone());
    let copied = read_image(&source, &Reference::of(&r), &amd64()).unwrap();
    assert!(copied.facts.base_digest.is_none() && copied.facts.base_name.is_none());
    assert!(copied.annotations.is_empty());
    let base_layers = layers_of(&client, &base.reference);
    let other_layers = layers_of(&client, &other.reference);
    // buildah without `--layers` commits one layer per stage, whatever the instructions.
    assert_eq!(copied.layers.len(), 3);
    assert_eq!(layer_match(&copied.layers, &base_layers), Some((2, 3)));
    assert_eq!(
        layer_match(&copied.layers, &other_layers),
        None,
        "a different base does not match"
    );
}

#[test]
fn fetches_are_digest_checked_and_unknown_tags_are_specific() {
    let registry = Registry::start();
    let world = World::new();
    let client = client();
    let base = push_base(&world, &registry, "base:1");
    let r = image(&base.reference);
    let m = client.fetch_manifest(&r.repository, &tag("1")).unwrap();
    assert_eq!(m.descriptor.digest.to_string(), base.digest);
    let Manifest::Image(manifest) = &m.manifest else {
        panic!("umoci pushes an image manifest")
    };
    let config = client
        .fetch_blob(&r.repository, &manifest.config.digest)
        .unwrap();
    assert_eq!(
        lineage_registry::digest_of(manifest.config.digest.algorithm(), &config),
        manifest.config.digest
    );

    match client.resolve(&image(&registry.reference("base:nope"))) {
        Err(Error::ManifestUnknown { reference, .. }) => assert_eq!(reference, "nope"),
        other => panic!("expected ManifestUnknown, got {other:?}"),
    }
    match client.fetch_manifest(&r.repository, &tag("nope")) {
        Err(Error::ManifestUnknown { .. }) => {}
        other => panic!("expected ManifestUnknown, got {other:?}"),
    }
    let absent = digest("sha256:0000000000000000000000000000000000000000000000000000000000000000");
    assert!(matches!(
        client.fetch_blob(&r.repository, &absent),
        Err(Error::BlobUnknown { .. })
    ));
    // The registry refuses to store a manifest that does not parse.
    match client.push_manifest(
        &r.repository,
        &tag("broken"),
        media::OCI_MANIFEST,
        b"{\"schemaVersion\":2,\"config\":7}",
    ) {
        Err(Error::MalformedManifest { .. }) => {}
        other => panic!("expected MalformedManifest, got {other:?}"),
    }
}

/// A loopback proxy that forwards to `upstream` and flips one byte in the body of every
/// successful GET of a manifest or blob: a tampering mirror.
fn tampering_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tampered = Arc::new(AtomicUsize::new(0));
    let count = tampered.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let upstream = upstream.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_string();
                let mut forward =
                    format!("{request_line}\r\nHost: {upstream}\r\nConnection: close\r\n");
                for line in lines {
                    let lower = line.to_ascii_lowercase();
                    if line.is_empty()
                        || lower.starts_with("host:")
                        || lower.starts_with("connection:")
                    {
                        continue;
                    }
                    forward.push_str(line);
                    forward.push_str("\r\n");
                }
                forward.push_str("\r\n");
                let mut up = TcpStream::connect(&upstream).unwrap();
                up.write_all(forward.as_bytes()).unwrap();
                let mut response = Vec::new();
                up.read_to_end(&mut response).unwrap();
                let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let (resp_head, body) = response.split_at(split);
                let mut body = body.to_vec();
                let is_get = request_line.starts_with("GET ");
                let content =
                    request_line.contains("/manifests/") || request_line.contains("/blobs/");
                let ok = resp_head.starts_with(b"HTTP/1.1 200")
                    || resp_head.starts_with(b"HTTP/1.0 200");
                if is_get && content && ok && !body.is_empty() {
                    let mid = body.len() / 2;
                    body[mid] ^= 0x01;
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let _ = conn.write_all(resp_head);
                let _ = conn.write_all(&body);
            });
        }
    });
    (addr, tampered)
}

#[test]
fn a_tampering_proxy_is_caught_by_the_digest_check() {
    let registry = Registry::start();
    let world = World::new();
    let base = push_base(&world, &registry, "base:1");
    let (proxy, tampered) = tampering_proxy(registry.host().to_string());
    let client = client();
    let repo = Repository::parse(&format!("{proxy}/base")).unwrap();
    let want = digest(&base.digest);

    match client.fetch_manifest(&repo, &Reference::Digest(want.clone())) {
        Err(Error::DigestMismatch {
            what,
            expected,
            actual,
        }) => {
            assert_eq!(what, "manifest");
            assert_eq!(expected, want);
            assert_ne!(actual, want);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    // By tag, the registry's Docker-Content-Digest is the reference to check against.
    assert!(matches!(
        client.fetch_manifest(&repo, &tag("1")),
        Err(Error::DigestMismatch {
            what: "manifest",
            ..
        })
    ));
    // Blobs: read the config digest straight from the real registry, fetch via the proxy.
    let direct = client
        .fetch_manifest(&image(&base.reference).repository, &Reference::Digest(want))
        .unwrap();
    let Manifest::Image(m) = direct.manifest else {
        panic!("image manifest")
    };
    assert!(matches!(
        client.fetch_blob(&repo, &m.config.digest),
        Err(Error::DigestMismatch { what: "blob", .. })
    ));
    assert!(
        tampered.load(Ordering::SeqCst) >= 3,
        "the proxy really tampered"
    );
}

// ---------------------------------------------------------------------------------------
// Transport and auth faults

#[test]
fn transport_faults_are_distinguished() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match client().ping(&format!("127.0.0.1:{port}")) {
        Err(Error::ConnectionRefused { registry }) => {
            assert_eq!(registry, format!("127.0.0.1:{port}"))
        }
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
    // TLS against a plain-HTTP registry: the handshake fails.
    let registry = Registry::start();
    let strict = Client::new(ClientConfig {
        plain_http_for_loopback: false,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap();
    match strict.ping(registry.host()) {
        Err(Error::Tls { .. }) => {}
        other => panic!("expected Tls, got {other:?}"),
    }
    // A server that accepts and never answers: the request timeout ends the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let hold = std::thread::spawn(move || {
        let conn = silent.accept();
        std::thread::sleep(Duration::from_secs(1));
        drop(conn);
    });
    let impatient = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(300),
        max_retries: 0,
        ..ClientConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    match impatient.ping(&silent_addr) {
        Err(Error::Timeout { registry }) => assert_eq!(registry, silent_addr),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.join().unwrap();
    // `.invalid` never resolves (RFC 6761).
    match client().ping("registry.lineage-test.invalid") {
        Err(Error::Unreachable { .. }) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn basic_auth_needs_the_right_credentials() {
    let registry = Registry::start_with_htpasswd("alice", "correct horse");
    let host = registry.host().to_string();
    let repo = Repository::parse(&format!("{host}/private")).unwrap();

    match client().ping(&host) {
        Err(Error::AuthenticationRequired { registry: r, .. }) => assert_eq!(r, host),
        other => panic!("expected AuthenticationRequired, got {other:?}"),
    }
    match client().resolve(&image(&format!("{host}/private:1"))) {
        Err(Error::AuthenticationRequired { scope, .. }) => {
            assert_eq!(scope, "repository:private:pull")
        }
        other => panic!("expected AuthenticationRequired, got {other:?}"),
    }
    // distribution's htpasswd backend answers wrong credentials with 401, not 403.
    let wrong = client().with_credentials(&host, Credentials::new("alice", "battery staple"));
    match wrong.ping(&host) {
        Err(Error::CredentialsRejected { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected CredentialsRejected, got {other:?}"),
    }

    // The right credentials, read from a docker config.json.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    let auth = base64_encode(b"alice:correct horse");
    std::fs::write(
        &config_path,
        format!(r#"{{"auths":{{"http://{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let good = client().with_docker_config(DockerConfig::load(&config_path).unwrap());
    good.ping(&host).unwrap();
    let blob = good.push_blob(&repo, b"authenticated bytes").unwrap();
    assert_eq!(
        good.fetch_blob(&repo, &blob).unwrap(),
        b"authenticated bytes"
    );
    assert!(matches!(
        good.resolve(&image(&format!("{host}/private:none"))),
        Err(Error::ManifestUnknown { .. })
    ));
}

/// What a scripted loopback server saw: one request line plus its Authorization header.
type Seen = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A scripted HTTP server on loopback: `respond(request line, authorization)` gives status,
/// extra headers and body. For the auth and retry paths a stock registry cannot show.
fn scripted_server(
    respond: impl Fn(&str, Option<&str>) -> (u16, Vec<(String, String)>, String) + Send + Sync + 'static,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if conn.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let line = text.lines().next().unwrap_or_default().to_string();
            let auth = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .map(|l| l.split_once(':').unwrap().1.trim().to_string());
            log.lock().unwrap().push((line.clone(), auth.clone()));
            let (status, headers, body) = respond(&line, auth.as_deref());
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = conn.write_all(out.as_bytes());
        }
    });
    (addr, seen)
}

#[test]
fn bearer_tokens_are_fetched_for_the_repository_scope() {
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let r2 = realm.clone();
    let good = Credentials::new("carol", "pw").basic_header();
    let (addr, seen) = scripted_server(move |line, auth| {
        let challenge = || {
            vec![(
                "WWW-Authenticate".to_string(),
                format!(
                    r#"Bearer realm="http://{}/token",service="test-registry",scope="repository:team/app:pull""#,
                    r2.get().unwrap()
                ),
            )]
        };
        if line.starts_with("GET /token") {
            return match auth {
                Some(a) if a == good => (200, vec![], r#"{"token":"tok-123"}"#.to_string()),
                Some(_) => (401, vec![], String::new()),
                None => (200, vec![], r#"{"access_token":"anon"}"#.to_string()),
            };
        }
        match auth {
            Some("Bearer tok-123") => (
                404,
                vec![],
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                    .to_string(),
            ),
            _ => (401, challenge(), String::new()),
        }
    });
    realm.set(addr.clone()).unwrap();
    let reference = image(&format!("{addr}/team/app:1"));

    let with_creds = client().with_credentials(&addr, Credentials::new("carol", "pw"));
    assert!(matches!(
        with_creds.resolve(&reference),
        Err(Error::ManifestUnknown { .. })
    ));
    let token_request = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(l, _)| l.starts_with("GET /token"))
        .cloned()
        .unwrap();
    assert!(
        token_request.0.contains("service=test-registry"),
        "{token_request:?}"
    );
    assert!(
        token_request
            .0
            .contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{token_request:?}"
    );
    // The token is cached: a second call goes straight to the registry with it.
    let before = seen.lock().unwrap().len();
    assert!(matches!(
        with_creds.resolve(&reference),
        Err(Error::ManifestUnknown { .. })
    ));
    assert_eq!(seen.lock().unwrap().len(), before + 1);

    // Anonymous: the anonymous token is not enough.
    match client().resolve(&reference) {
        Err(Error::AuthenticationRequired { scope, .. }) => {
            assert_eq!(scope, "repository:team/app:pull")
        }
        other => panic!("expected AuthenticationRequired, got {other:?}"),
    }
    // Wrong credentials: the token endpoint refuses them.
    let wrong = client().with_credentials(&addr, Credentials::new("carol", "nope"));
    assert!(matches!(
        wrong.resolve(&reference),
        Err(Error::CredentialsRejected { status: 401, .. })
    ));
}

#[test]
fn forbidden_with_credentials_and_retries_on_5xx_are_bounded() {
    let (addr, _) = scripted_server(|_, auth| match auth {
        None => (
            401,
            vec![("WWW-Authenticate".into(), r#"Basic realm="r""#.into())],
            String::new(),
        ),
        Some(_) => (403, vec![], String::new()),
    });
    let c = client().with_credentials(&addr, Credentials::new("dave", "pw"));
    assert!(matches!(
        c.ping(&addr),
        Err(Error::CredentialsRejected { status: 403, .. })
    ));

    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let (addr, _) = scripted_server(move |_, _| {
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            (503, vec![], String::new())
        } else {
            (200, vec![], "{}".into())
        }
    });
    client().ping(&addr).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two 503s retried, then success"
    );

    let (addr, seen) =
        scripted_server(|_, _| (429, vec![("Retry-After".into(), "0".into())], String::new()));
    let impatient = Client::new(ClientConfig {
        max_retries: 2,
        retry_base_delay: Duration::from_millis(1),
        ..ClientConfig::default()
    })
    .unwrap();
    match impatient.ping(&addr) {
        Err(Error::Http { status, .. }) => assert_eq!(status, 429),
        other => panic!("expected Http 429, got {other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 3, "one try and two retries");
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Attach and pull through the referrers tag schema

#[test]
fn attach_round_trips_through_the_tag_fallback_keeping_other_referrers() {
    let registry = Registry::start();
    let world = World::new();
    let progress = Arc::new(AtomicUsize::new(0));
    let seen = progress.clone();
    let client = client().with_progress(Arc::new(move |_p: &lineage_registry::Progress| {
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let base = push_base(&world, &registry, "app:1");
    let r = image(&base.reference);
    let repo = r.repository.clone();
    let subject = client.resolve(&r).unwrap();

    // distribution 2.8 has no Referrers API.
    assert!(client
        .referrers_api(&repo, &subject.digest)
        .unwrap()
        .is_none());

    // A bare image: nothing attached, no provenance.
    let source = RemoteRepository::new(&client, repo.clone());
    let bare = client.inspect(&r, &amd64()).unwrap();
    assert_eq!(bare.reference, base.reference);
    assert!(!bare.has_provenance);
    assert!(
        bare.referrers.is_empty()
            && bare.cosign.is_empty()
            && bare.buildkit_attestations.is_empty()
    );

    // Another tool's referrer, listed in the fallback index with a field we do not model.
    let other_config = client.push_blob(&repo, b"{}").unwrap();
    let other_layer = client.push_blob(&repo, b"an sbom").unwrap();
    let other_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": media::OCI_EMPTY, "digest": other_config.to_string(), "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": other_layer.to_string(), "size": 7}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    });
    let other_bytes = serde_json::to_vec(&other_manifest).unwrap();
    let other_digest = lineage_registry::digest_of(subject.digest.algorithm(), &other_bytes);
    client
        .push_manifest(
            &repo,
            &Reference::Digest(other_digest.clone()),
            media::OCI_MANIFEST,
            &other_bytes,
        )
        .unwrap();
    let other_entry = serde_json::json!({
        "mediaType": media::OCI_MANIFEST,
        "digest": other_digest.to_string(),
        "size": other_bytes.len(),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example.tool": "sbom-maker"},
        "x-other-tool-field": [1, 2, 3],
    });
    let fallback = fallback_tag(&subject.digest);
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [other_entry.clone()]});
    client
        .push_manifest(
            &repo,
            &Reference::Tag(fallback.clone()),
            media::OCI_INDEX,
            &serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();

    // Attach ours twice: the second push must not duplicate the entry.
    let envelope = provenance_envelope(&subject.digest);
    let mut artifact = Artifact::lineage_provenance(envelope.clone());
    artifact.annotations = BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        "2026-01-01T00:00:00Z".to_string(),
    )]);
    let first = attach(&client, &r, &artifact).unwrap();
    let second = attach(&client, &r, &artifact).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.via, ReferrersVia::TagSchema);
    assert_eq!(first.fallback_tag.as_ref(), Some(&fallback));
    assert_eq!(first.subject.digest, subject.digest);

    let stored = client
        .fetch_manifest(&repo, &Reference::Tag(fallback))
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stored.bytes).unwrap();
    let entries = stored["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{stored:#}");
    assert_eq!(
        entries[0], other_entry,
        "the other tool's entry is kept verbatim"
    );
    assert_eq!(entries[1]["digest"], first.manifest.to_string());
    assert_eq!(entries[1]["artifactType"], LINEAGE_PROVENANCE_ARTIFACT_TYPE);
    assert_eq!(
        entries[1]["annotations"]["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );

    let pulled = pull_attached(&client, &r, LINEAGE_PROVENANCE_ARTIFACT_TYPE).unwrap();
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].payload, envelope);
    assert_eq!(pulled[0].payload_media_type, media::DSSE_ENVELOPE);
    assert_eq!(pulled[0].manifest, first.manifest);
    assert_eq!(pulled[0].via, ReferrersVia::TagSchema);
    let sboms = pull_attached(&client, &r, "application/vnd.example.sbom").unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0].payload, b"an sbom");
    assert!(progress.load(Ordering::SeqCst) > 0, "progress was reported");

    let report = inspect(&source, &Reference::of(&r), &amd64()).unwrap();
    assert!(report.has_provenance, "{:#?}", report.warnings);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);

    // Issue 13, item 15: provenance about another digest, attached to this image, is no
    // provenance of it; inspection says so.
    let stray = push_base(&world, &registry, "stray:1");
    let s_ref = image(&stray.reference);
    let elsewhere = lineage_model::Digest::parse(&format!("sha256:{}", "e".repeat(64))).unwrap();
    attach(
        &client,
        &s_ref,
        &Artifact::lineage_provenance(provenance_envelope(&elsewhere)),
    )
    .unwrap();
    let stray_source = RemoteRepository::new(&client, s_ref.repository.clone());
    let stray_report = inspect(&stray_source, &Reference::of(&s_ref), &amd64()).unwrap();
    assert!(!stray_report.has_provenance, "{stray_report:#?}");
    assert!(
        stray_report
            .warnings
            .iter()
            .any(|w| w.contains("not this image") && w.contains(&elsewhere.to_string())),
        "{:#?}",
        stray_report.warnings
    );
    let types: Vec<_> = report
        .referrers
        .iter()
        .filter_map(|x| x.artifact_type.as_deref())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.example.sbom",
            LINEAGE_PROVENANCE_ARTIFACT_TYPE
        ]
    );
    assert!(report
        .referrers
        .iter()
        .all(|x| x.via == ReferrersVia::TagSchema));
}

#[test]
fn buildkit_and_cosign_attachments_in_a_registry_are_inspected() {
    let registry = Registry::start();
    let world = World::new();
    let client = client();
    let base = push_base(&world, &registry, "app:1");
    let r = image(&base.reference);
    let repo = r.repository.clone();
    let platform_manifest = client.resolve(&r).unwrap();

    // A BuildKit-style index: the image for linux/amd64 plus an attestation manifest whose
    // in-toto layer is the fixture SLSA v1 statement.
    let read = |p: &str| std::fs::read(fixture(p)).unwrap();
    let statement = read("buildkit/slsa-provenance.v1.max.example.json");
    let statement_digest = client.push_blob(&repo, &statement).unwrap();
    let att_config = client
        .push_blob(
            &repo,
            &read("buildkit/attestation-storage.example-config.json"),
        )
        .unwrap();
    let att_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": att_config.to_string(), "size": read("buildkit/attestation-storage.example-config.json").len()},
        "layers": [{"mediaType": media::IN_TOTO, "digest": statement_digest.to_string(), "size": statement.len(),
                    "annotations": {keys::IN_TOTO_PREDICATE_TYPE: "https://slsa.dev/provenance/v1"}}],
    });
    let att_bytes = serde_json::to_vec(&att_manifest).unwrap();
    let att = client
        .push_manifest(
            &repo,
            &Reference::Digest(lineage_registry::digest_of(
                lineage_model::Algorithm::Sha256,
                &att_bytes,
            )),
            media::OCI_MANIFEST,
            &att_bytes,
        )
        .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": platform_manifest.media_type, "digest": platform_manifest.digest.to_string(), "size": platform_manifest.size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": media::OCI_MANIFEST, "digest": att.digest.to_string(), "size": att_bytes.len(),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {keys::DOCKER_REFERENCE_TYPE: "attestation-manifest", keys::DOCKER_REFERENCE_DIGEST: platform_manifest.digest.to_string()}},
        ],
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let pushed_index = client
        .push_manifest(&repo, &tag("multi"), media::OCI_INDEX, &index_bytes)
        .unwrap();

    // cosign's `.att` for the index: the fixture's real attestation manifest and blobs.
    let cosign = "cosign/slsa-verifier-container-att-layout/blobs/sha256/";
    client
        .push_blob(
            &repo,
            &read(&format!(
                "{cosign}f9b849875a33c0a9f8a6b471d32146a96e252e8932c0391de0ef90c567d4d550"
            )),
        )
        .unwrap();
    client
        .push_blob(
            &repo,
            &read(&format!(
                "{cosign}a2ece3a040c3cc7a511e60ef56bc2bfac79118e207e6297aaeaf9aa8fec5c015"
            )),
        )
        .unwrap();
    let att_tag = Tag::parse(&format!("{}.att", fallback_tag(&pushed_index.digest))).unwrap();
    client
        .push_manifest(
            &repo,
            &Reference::Tag(att_tag.clone()),
            media::OCI_MANIFEST,
            &read(&format!(
                "{cosign}b7773d35be754aa50e484d9cac8cfc3696e8dfa937be9783c7f7cd21872816ee"
            )),
        )
        .unwrap();

    let source = RemoteRepository::new(&client, repo.clone());
    let report = inspect(&source, &tag("multi"), &amd64()).unwrap();
    // The fixtures are real statements about the upstream images' digests, grafted onto this
    // test image: they decode, but they are not its provenance (issue 13, item 15).
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(
        report.warnings.iter().all(|w| w.contains("not this image")),
        "{:?}",
        report.warnings
    );
    assert_eq!(report.digest, pushed_index.digest);
    let img = report.image.as_ref().unwrap();
    assert_eq!(img.manifest_digest, platform_manifest.digest);
    assert_eq!(
        img.platforms.len(),
        1,
        "the attestation entry is not a platform"
    );
    assert_eq!(report.buildkit_attestations.len(), 1);
    let bk = &report.buildkit_attestations[0];
    assert_eq!(bk.attests.as_ref(), Some(&platform_manifest.digest));
    let p = bk.layers[0]
        .statement
        .as_ref()
        .unwrap()
        .provenance
        .as_ref()
        .unwrap();
    assert_eq!(p.slsa_version, "v1");
    assert_eq!(
        p.materials[0].uri,
        "pkg:docker/alpine@latest?platform=linux%2Famd64"
    );
    assert_eq!(report.cosign.len(), 1);
    assert_eq!(report.cosign[0].tag, att_tag.as_str());
    assert_eq!(
        report.cosign[0].layers[0]
            .statement
            .as_ref()
            .unwrap()
            .provenance
            .as_ref()
            .unwrap()
            .invocation_id
            .as_deref(),
        Some("2801118579-2")
    );
    assert!(!report.has_provenance);
}

// ---------------------------------------------------------------------------------------
// Fixtures: the same model and inspection over on-disk layouts

#[test]
fn regclient_layout_yields_platforms_labels_base_annotations_and_fallback_referrers() {
    let layout = OciLayout::open(&fixture("oci/regclient-testrepo")).unwrap();
    let report = inspect(&layout, &tag("v2"), &amd64()).unwrap();
    assert_eq!(
        report.digest,
        digest("sha256:adab55c36c56f4054a64972a431e38e407d0060ce90888a2470d67598042f7c8")
    );
    assert_eq!(report.media_type, media::OCI_INDEX);
    let img = report
        .image
        .as_ref()
        .expect("the amd64 manifest and config are in the layout");
    assert_eq!(img.platforms.len(), 3);
    assert_eq!(img.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(
        img.manifest_digest,
        digest("sha256:ef05efc8cfd478ac3140fce1297bd6b72dc5f5f1df31bfce690aa903a2c20310")
    );
    assert_eq!(
        img.config_digest,
        digest("sha256:59d7d153c78102e907d2f6d6390c7c7fb0d89b9226637c63e5bdcfe8eeff9f74")
    );
    assert_eq!(
        img.labels,
        BTreeMap::from([
            ("arg_label".into(), "arg_for_label".into()),
            ("version".into(), "2".into())
        ])
    );
    let base_digest = img.facts.base_digest.as_ref().unwrap();
    assert_eq!(base_digest.origin, FactOrigin::IndexAnnotation);
    assert_eq!(
        base_digest.value,
        "sha256:f91e00c1c151c75243a87073297efc68b8fe83a3dd82142ef6fb9f51dddb6a37"
    );
    assert_eq!(
        img.facts.base_name.as_ref().unwrap().value,
        "ocidir://testrepo:b2"
    );
    assert_eq!(img.layers.len(), 3);

    let referrers: Vec<_> = report
        .referrers
        .iter()
        .filter(|r| r.subject == report.digest)
        .map(|r| {
            (
                r.digest.to_string(),
                r.artifact_type.clone().unwrap_or_default(),
                r.via,
            )
        })
        .collect();
    assert_eq!(
        referrers,
        [
            (
                "sha256:fd90fc9bbcdaace19655b8983e3d4efa946332f8c1f1aac40ac5bead09bdf9c9"
                    .to_string(),
                "application/example.sbom".to_string(),
                ReferrersVia::TagSchema
            ),
            (
                "sha256:b97ab0b611c4224b58c6b701a566b031b7a8fb7b644487668d31797013372cc4"
                    .to_string(),
                "application/example.signature".to_string(),
                ReferrersVia::TagSchema
            ),
        ]
    );
    // The referrer manifests really name the index as subject.
    for r in &report.referrers {
        let m = lineage_registry::ContentSource::manifest(&layout, &r.digest).unwrap();
        let Manifest::Image(m) = m.manifest else {
            panic!("referrers are image manifests")
        };
        assert_eq!(m.subject.as_ref().unwrap().digest, report.digest);
        assert_eq!(
            Some(m.effective_artifact_type()),
            r.artifact_type.as_deref()
        );
    }
    assert!(
        !report.has_provenance,
        "an SBOM and a signature are not provenance"
    );
    assert!(report.cosign.is_empty());
}

#[test]
fn cosign_att_layout_decodes_the_slsa_v02_provenance() {
    let layout = OciLayout::open(&fixture("cosign/slsa-verifier-container-att-layout")).unwrap();
    let image_digest =
        digest("sha256:2bc8d7da45cdfb2902cef3292a3211351079b15b0f14f0ae9d5f9eea98b8b2d2");
    let report = inspect(&layout, &Reference::Digest(image_digest.clone()), &amd64()).unwrap();
    assert_eq!(report.media_type, media::DOCKER_MANIFEST);
    assert!(report.image.is_none(), "the layout has no config blob");
    assert!(
        report.warnings.iter().any(|w| w.contains("5a00797e")),
        "{:?}",
        report.warnings
    );
    assert_eq!(report.cosign.len(), 1);
    let att = &report.cosign[0];
    assert_eq!(att.kind, "attestation");
    assert_eq!(att.tag, format!("sha256-{}.att", image_digest.hex()));
    assert_eq!(
        att.manifest,
        digest("sha256:b7773d35be754aa50e484d9cac8cfc3696e8dfa937be9783c7f7cd21872816ee")
    );
    let layer = &att.layers[0];
    assert_eq!(layer.media_type, media::DSSE_ENVELOPE);
    assert!(layer.annotations.contains_key("dev.sigstore.cosign/bundle"));
    assert_eq!(
        layer
            .annotations
            .get("dev.cosignproject.cosign/signature")
            .map(String::as_str),
        Some("")
    );
    let statement = layer.statement.as_ref().unwrap();
    assert_eq!(statement.predicate_type, "https://slsa.dev/provenance/v0.2");
    assert_eq!(
        statement.subjects[0]
            .digest
            .get("sha256")
            .map(String::as_str),
        Some(image_digest.hex())
    );
    let p = statement.provenance.as_ref().unwrap();
    assert_eq!(p.slsa_version, "v0.2");
    assert_eq!(
        p.builder_id.as_deref(),
        Some("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/heads/main")
    );
    assert_eq!(
        p.invocation_id.as_deref(),
        Some("2801118579-2"),
        "buildInvocationID spelling"
    );
    assert_eq!(
        p.source_repo.as_deref(),
        Some("https://github.com/slsa-framework/example-package")
    );
    assert_eq!(
        p.source_revision.as_deref(),
        Some("450428f4a68587015e502b9173a9fc017a1f7245")
    );
    assert!(report.has_provenance);
    // JSON report: schema 1.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["has_provenance"], true);
}

#[test]
fn buildkit_attestation_examples_parse_and_decode() {
    let read = |name: &str| std::fs::read(fixture(&format!("buildkit/{name}"))).unwrap();
    let Manifest::Index(index) = Manifest::parse(
        "example",
        None,
        &read("attestation-storage.example-index.json"),
    )
    .unwrap() else {
        panic!("an index")
    };
    let image_digest =
        digest("sha256:23678f31b3b3586c4fb318aecfe64a96a1f0916ba8faf9b2be2abee63fa9e827");
    let attestations = index.attestation_manifests();
    assert_eq!(attestations.len(), 1);
    assert_eq!(
        attestations[0].0.digest,
        digest("sha256:02cb9aa7600e73fcf41ee9f0f19cc03122b2d8be43d41ce4b21335118f5dd943")
    );
    assert_eq!(attestations[0].1.as_ref(), Some(&image_digest));
    let index_digest =
        digest("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(
        index.pick(&index_digest, &amd64()).unwrap().digest,
        image_digest
    );
    assert_eq!(
        index.platform_entries().count(),
        1,
        "the unknown/unknown attestation is not a platform"
    );
    assert!(matches!(
        index.pick(&index_digest, &Platform::parse("linux/arm64").unwrap()),
        Err(Error::PlatformNotFound { .. })
    ));

    let Manifest::Image(att) = Manifest::parse(
        "att",
        None,
        &read("attestation-storage.example-attestation-manifest.json"),
    )
    .unwrap() else {
        panic!("an image manifest")
    };
    assert_eq!(att.layers[0].media_type, media::IN_TOTO);
    assert_eq!(
        att.layers[0].annotation(keys::IN_TOTO_PREDICATE_TYPE),
        Some("https://spdx.dev/Document")
    );
    let config = lineage_registry::ImageConfig::parse(
        &att.config.digest,
        &read("attestation-storage.example-config.json"),
    )
    .unwrap();
    assert_eq!(config.os.as_deref(), Some("unknown"));

    let v1 = decode_statement(&read("slsa-provenance.v1.max.example.json")).unwrap();
    let p = v1.provenance.unwrap();
    assert_eq!(p.slsa_version, "v1");
    assert_eq!(
        p.build_type.as_deref(),
        Some("https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md")
    );
    assert_eq!(p.builder_id, None, "BuildKit leaves the builder id empty");
    assert_eq!(
        p.invocation_id.as_deref(),
        Some("46ue2x93k3xj5l463dektwldw")
    );
    assert_eq!(p.materials.len(), 1);
    assert_eq!(
        p.materials[0].uri,
        "pkg:docker/alpine@latest?platform=linux%2Famd64"
    );
    assert_eq!(
        p.materials[0].digest["sha256"],
        "8914eb54f968791faf6a8638949e480fef81e697984fba772b3976835194c6d4"
    );
    let min = decode_statement(&read("slsa-provenance.v1.min.example.json"))
        .unwrap()
        .provenance
        .unwrap();
    assert_eq!(
        min.invocation_id.as_deref(),
        Some("yirbp1aosi1vqjmi3z6bc75nb")
    );

    let v02 = decode_statement(&read("docker-docs.slsa-provenance.v0.2.min.example.json")).unwrap();
    let p = v02.provenance.unwrap();
    assert_eq!(p.slsa_version, "v0.2");
    assert_eq!(
        p.invocation_id.as_deref(),
        Some("c4a87v0sxhliuewig10gnsb6v"),
        "buildInvocationID spelling"
    );
    assert_eq!(
        p.source_repo.as_deref(),
        Some("git@github.com:<org>/<repo>.git")
    );
    assert_eq!(
        p.source_revision.as_deref(),
        Some("a9ba846486420e07d30db1107411ac3697ecab68")
    );
    let uris: Vec<_> = p.materials.iter().map(|m| m.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "pkg:docker/docker/dockerfile@1",
            "pkg:docker/golang@1.19.4-alpine?platform=linux%2Farm64"
        ]
    );
}

#[test]
fn slsa_statements_from_other_producers_decode() {
    let read = |name: &str| std::fs::read(fixture(&format!("slsa/{name}"))).unwrap();
    let npm = decode_statement(&read(
        "npm.sigstore-3.1.0.statement-v1.slsa-v1.github-actions.json",
    ))
    .unwrap();
    let p = npm.provenance.unwrap();
    assert_eq!(
        p.builder_id.as_deref(),
        Some("https://github.com/actions/runner/github-hosted")
    );
    assert_eq!(
        p.source_repo.as_deref(),
        Some("https://github.com/sigstore/sigstore-js")
    );
    assert_eq!(
        p.source_revision.as_deref(),
        Some("06cd267cbdc2eeaa04294995622db9f6ad2fa7cf")
    );
    let old = decode_statement(&read(
        "npm.slsa-provenance-0.0.7.statement-v0.1.slsa-v0.2.json",
    ))
    .unwrap();
    assert_eq!(
        old.provenance.unwrap().invocation_id.as_deref(),
        Some("3024091546-4"),
        "buildInvocationId spelling"
    );
}

/// Writes a layout with one blob under its real digest and an index naming it `t`.
fn temp_layout(dir: &Path, media_type: &str, blob: &[u8]) -> Digest {
    let d = lineage_registry::digest_of(lineage_model::Algorithm::Sha256, blob);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(d.hex()), blob).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": media_type, "digest": d.to_string(), "size": blob.len(), "annotations": {keys::REF_NAME: "t"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    d
}

#[test]
fn layouts_report_malformed_unsupported_and_tampered_content() {
    let dir = tempfile::tempdir().unwrap();
    temp_layout(dir.path(), media::OCI_MANIFEST, b"not json at all");
    let layout = OciLayout::open(dir.path()).unwrap();
    assert!(matches!(
        read_image(&layout, &tag("t"), &amd64()),
        Err(Error::MalformedManifest { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    temp_layout(
        dir.path(),
        media::DOCKER_SCHEMA1_SIGNED,
        br#"{"schemaVersion":1,"name":"x","tag":"t","fsLayers":[]}"#,
    );
    let layout = OciLayout::open(dir.path()).unwrap();
    match read_image(&layout, &tag("t"), &amd64()) {
        Err(Error::UnsupportedMediaType { media_type, .. }) => {
            assert_eq!(media_type, media::DOCKER_SCHEMA1_SIGNED)
        }
        other => panic!("expected UnsupportedMediaType, got {other:?}"),
    }

    // A copy of the regclient layout with one byte of the config changed.
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("oci/regclient-testrepo");
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::copy(src.join("index.json"), dir.path().join("index.json")).unwrap();
    for entry in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("blobs/sha256").join(entry.file_name()),
        )
        .unwrap();
    }
    let config = dir
        .path()
        .join("blobs/sha256/59d7d153c78102e907d2f6d6390c7c7fb0d89b9226637c63e5bdcfe8eeff9f74");
    let mut bytes = std::fs::read(&config).unwrap();
    let at = bytes.iter().position(|&b| b == b'2').unwrap();
    bytes[at] = b'3';
    std::fs::write(&config, bytes).unwrap();
    let layout = OciLayout::open(dir.path()).unwrap();
    match read_image(&layout, &tag("v2"), &amd64()) {
        Err(Error::DigestMismatch { what, expected, .. }) => {
            assert_eq!(what, "blob");
            assert_eq!(
                expected.hex(),
                "59d7d153c78102e907d2f6d6390c7c7fb0d89b9226637c63e5bdcfe8eeff9f74"
            );
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

/// A DSSE envelope (unsigned; inspection decodes, it does not verify) of a SLSA v1
/// statement about `digest`.
fn provenance_envelope(digest: &lineage_model::Digest) -> Vec<u8> {
    use base64::Engine as _;
    let (algo, hex) = digest
        .to_string()
        .split_once(':')
        .map(|(a, h)| (a.to_string(), h.to_string()))
        .unwrap();
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "image", "digest": { algo: hex } }],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": { "buildDefinition": { "buildType": "https://lineage.dev/build/v1" }, "runDetails": { "builder": { "id": "sa:ci" } } },
    });
    let payload = base64::engine::general_purpose::STANDARD.encode(statement.to_string());
    serde_json::json!({ "payloadType": "application/vnd.in-toto+json", "payload": payload, "signatures": [] })
        .to_string()
        .into_bytes()
}
