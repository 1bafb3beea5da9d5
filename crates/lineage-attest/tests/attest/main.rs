//! The one integration-test binary of lineage-attest: conformance against the shared fixtures
//! (DSSE protocol vectors, in-toto and SLSA samples), key handling, trust policy, property
//! tests, and interop with the Python reference implementation.

mod dsse_conformance;
mod interop;
mod keys;
mod props;
mod provenance;
mod trust;

use std::path::PathBuf;

/// The shared fixtures directory: `$LINEAGE_FIXTURES`, else `../shared/fixtures` beside the
/// checkout.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("LINEAGE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures"
        )),
    }
}

/// Reads a fixture; a missing fixture fails the test with the path it looked for.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture `{}` is missing ({e}); set LINEAGE_FIXTURES to the shared fixtures directory",
            path.display()
        )
    })
}

pub fn fixture_str(rel: &str) -> String {
    String::from_utf8(fixture(rel)).expect("fixture is UTF-8")
}
