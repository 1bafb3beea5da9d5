//! Test-only helpers: a real registry on loopback, and real images built with the tools
//! people use (`umoci`, `skopeo`, `buildah`), so that registry code is tested against real
//! bytes rather than against mocks.
//!
//! Every external program is checked for first; a missing one panics with the apt package
//! that provides it. Tests never skip: a missing component is a failure, with a message
//! saying what to install:
//!
//! ```text
//! apt-get install -y docker-registry buildah skopeo umoci apache2-utils
//! ```
//!
//! Nothing here depends on machine configuration: buildah and skopeo get their own storage
//! root, signature policy, registries and storage configuration in a temporary directory, so
//! a fresh machine and a shared CI runner behave the same, and tests do not interfere.
//! Everything binds to 127.0.0.1.

pub mod fuzz;
mod registry;
mod tools;

pub use registry::Registry;
pub use tools::{ImageFormat, Pushed, World};

use std::path::{Path, PathBuf};

/// The shared fixtures directory: `LINEAGE_FIXTURES` when set, else `../shared/fixtures`
/// next to the workspace.
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LINEAGE_FIXTURES") {
        return PathBuf::from(dir);
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
}

/// A path inside the fixtures directory, which must exist.
pub fn fixture(relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    assert!(
        path.exists(),
        "fixture `{}` is missing; set LINEAGE_FIXTURES to the shared fixtures directory",
        path.display()
    );
    path
}

/// The path of `binary`, or a panic naming the apt package that provides it.
pub fn require(binary: &str, apt_package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
        let candidate = Path::new(dir).join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(binary);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{binary}` is not installed; this test needs a real one. Install it with: apt-get install -y {apt_package}"
    )
}

/// Runs `cmd`, panicking with its output when it fails. Returns stdout.
pub(crate) fn run(cmd: &mut std::process::Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    if !out.status.success() {
        panic!(
            "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
