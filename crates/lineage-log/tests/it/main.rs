//! The one integration-test binary of `lineage-log`: RFC 6962 vectors, real checkpoints,
//! property tests, signing round trips and proof bundles.

mod bundles;
mod checkpoints;
mod merkle_vectors;
mod properties;

use std::path::PathBuf;

/// The shared fixtures directory (`LINEAGE_FIXTURES` overrides the default beside the repo).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("LINEAGE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/fixtures"
            ))
        });
    assert!(
        dir.is_dir(),
        "fixtures directory {} is missing (set LINEAGE_FIXTURES)",
        dir.display()
    );
    dir
}

/// Reads one fixture file, failing the test with its path when it is missing.
pub fn fixture(rel: &str) -> String {
    let path = fixtures().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}
