//! The testkit's own tests: real programs start, answer and stop, and a missing program
//! fails with the package to install.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lineage_testkit::{fixtures_dir, require, ImageFormat, Registry, World};

/// `(status, head)` of a plain HTTP/1.0 request; the testkit has no HTTP client.
fn http(host: &str, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out)
}

#[test]
fn a_missing_program_names_its_apt_package() {
    let err = std::panic::catch_unwind(|| require("lineage-no-such-program", "lineage-pkg"))
        .expect_err("must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("apt-get install -y lineage-pkg") && msg.contains("lineage-no-such-program"),
        "{msg}"
    );
    assert!(require("sh", "dash").is_file());
}

#[test]
fn registry_answers_has_no_referrers_api_and_stops_on_drop() {
    let registry = Registry::start();
    let host = registry.host().to_string();
    assert!(host.starts_with("127.0.0.1:"));
    let (status, head) = http(&host, "GET", "/v2/");
    assert_eq!(status, 200, "{head}\n{}", registry.log());
    // distribution 2.8 does not know the OCI 1.1 referrers route.
    let (status, _) = http(
        &host,
        "GET",
        "/v2/x/referrers/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert_eq!(status, 404);
    drop(registry);
    let refused = TcpStream::connect(&host).map_err(|e| e.kind());
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the registry process is gone after drop"
    );
}

#[test]
fn htpasswd_registry_challenges_for_basic_auth() {
    let registry = Registry::start_with_htpasswd("bob", "pw");
    assert_eq!(registry.credentials(), Some(("bob", "pw")));
    let (status, head) = http(registry.host(), "GET", "/v2/");
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"lineage-test\""),
        "{head}"
    );
}

#[test]
fn world_builds_with_umoci_buildah_and_copies_with_skopeo() {
    let registry = Registry::start();
    let world = World::new();
    let base = world.umoci_image(
        &registry.reference("base:1"),
        &[&[("etc/hello", "hi")]],
        &[("k", "v")],
    );
    let (status, _) = http(
        registry.host(),
        "HEAD",
        &format!("/v2/base/manifests/{}", base.digest),
    );
    assert_eq!(status, 200);
    assert_eq!(
        base.pinned(),
        format!("{}/base@{}", registry.host(), base.digest)
    );

    let app = registry.reference("app:1");
    world.buildah_build(
        &format!(
            "ARG B={}\nFROM ${{B}}\nCOPY f /f\nLABEL a=b\n",
            base.reference
        ),
        &[("f", "x")],
        &app,
        &[],
    );
    let pushed = world.buildah_push(&app, ImageFormat::Oci);
    let (status, head) = http(
        registry.host(),
        "GET",
        &format!("/v2/app/manifests/{}", pushed.digest),
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("org.opencontainers.image.base.digest"),
        "{head}"
    );
    let copy = world.skopeo_copy(&app, &registry.reference("copy:1"), ImageFormat::Docker);
    let (status, head) = http(
        registry.host(),
        "GET",
        &format!("/v2/copy/manifests/{}", copy.digest),
    );
    assert_eq!(status, 200);
    assert!(!head.contains("annotations"), "{head}");
}

#[test]
fn fixtures_are_found() {
    assert!(
        fixtures_dir().join("SOURCES.md").is_file(),
        "{}",
        fixtures_dir().display()
    );
}
