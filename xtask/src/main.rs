//! Project automation: `cargo xtask test` sets up every real component the test suite needs
//! (Debian packages, a Python with the reference implementations, axe-core from npm, a
//! PostgreSQL of its own, stopped afterwards) and runs clippy and the whole suite; `cargo xtask
//! bench` runs the benchmarks; `cargo xtask setup` only sets up, and prints the variables that
//! run a single test by hand; `cargo xtask audit` runs only the dependency audit.
//!
//! It needs no machine configuration: on a fresh clone it starts a throwaway PostgreSQL
//! cluster (`initdb` in a temporary directory, a free loopback port) unless `LINEAGE_TEST_PG`
//! names a server to use. The conformance tests read the shared fixtures (`LINEAGE_FIXTURES`,
//! else `../shared/fixtures` beside the checkout); without them those tests are reported as
//! not run, loudly, and the run fails only under `CI=true`, where `.ci/run` provides them.
//!
//! A missing component makes the run fail, never skip: the tests themselves refuse to run
//! without what they need.

mod postgres;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests run for real.
const APT_PACKAGES: &[&str] = &[
    // The PostgreSQL backend is tested against a real server; `postgres` is started by
    // `postgres::Cluster` unless LINEAGE_TEST_PG names one.
    "postgresql-client",
    // Tamper tests edit ledgers behind Lineage's back.
    "sqlite3",
    // Interop: keys Lineage writes must open in OpenSSL, and the other way round.
    "openssl",
    // A real OCI registry, and real images built and copied with the standard tools.
    "docker-registry",
    "buildah",
    "skopeo",
    "umoci",
    "apache2-utils",
    // The dashboard is tested in a real headless browser.
    "chromium",
    "chromium-driver",
    // Python reference implementations run in a venv.
    "python3-venv",
    // `trace --format dot` is parsed and drawn by the real Graphviz.
    "graphviz",
];

/// PyPI packages for interop tests, pinned so CI runs what was tested: the in-toto reference
/// implementation, the Kubernetes schemas `lineage k8s manifests` is validated against, a
/// real SMTP server for `report stale --email-to`, and `cyclonedx-py`, which writes the
/// CycloneDX SBOMs the import tests read.
const PIP_PACKAGES: &[&str] = &[
    "in-toto==3.1.0",
    "securesystemslib[crypto]==1.6.0",
    "cyclonedx-bom==7.5.0",
    "kubernetes-validate==1.37.0",
    "aiosmtpd==1.4.6",
];

/// Tests that read the shared fixtures. Without fixtures they are not run (and said so); a
/// fixture test missing from this list fails on a fresh clone, so the list cannot silently
/// fall behind.
const CONFORMANCE: &[Conformance] = &[
    // Every test in these targets reads fixtures.
    Conformance::Target {
        package: "lineage-sigstore",
        target: "sigstore",
    },
    Conformance::Tests(&[
        // lineage-attest
        "all_protocol_vectors_reproduce_pae_and_outcome",
        "hello_world_example_verifies_with_raw_r_s_signature",
        "hex_signature_link_fails_strictly_and_passes_in_legacy_mode",
        "in_toto_golang_link_verifies_with_rsa_pss_but_is_not_a_statement",
        "signing_with_vector_seeds_reproduces_vector_signatures",
        "every_slsa_and_buildkit_provenance_fixture_summarises",
        "reads_fixture_keys_of_every_algorithm",
        // lineage-log
        "conformance_checkpoint_verifies_only_with_its_own_key",
        "rekor_v1_checkpoints_verify_with_the_production_key",
        "rekor_v2_checkpoint_verifies_with_pem_and_vkey",
        "spec_examples_parse_with_the_signature_block_after_the_last_blank_line",
        "every_vector_gives_its_want_err",
        "must_error_vectors_fail_for_the_right_reason",
        "stored_hash_tree_reproduces_the_vectors",
        // lineage-registry
        "buildkit_and_cosign_attachments_in_a_registry_are_inspected",
        "buildkit_attestation_examples_parse_and_decode",
        "cosign_att_layout_decodes_the_slsa_v02_provenance",
        "layouts_report_malformed_unsupported_and_tampered_content",
        "regclient_layout_yields_platforms_labels_base_annotations_and_fallback_referrers",
        "slsa_statements_from_other_producers_decode",
        // lineage-server
        "shared_fixtures",
        // lineage-testkit
        "fixtures_are_found",
        // lineage
        "a_deploy_check_refuses_provenance_signed_by_an_untrusted_key",
        "keyless_verify_with_half_a_policy_is_refused_and_a_wrong_identity_fails",
        "keyless_verify_without_an_identity_policy_is_refused_and_key_signed_needs_none",
        "inspect_decodes_the_fixture_layouts",
        "inspect_decodes_buildkit_attestations_in_a_registry_and_flags_a_bare_image",
        "every_sigstore_conformance_case_reproduces_its_outcome",
        "notation_signatures_verify_from_a_layout_and_an_envelope_by_level",
        "notation_signatures_are_read_from_a_registry_as_referrers",
        "every_fixture_format_imports_as_one_record",
        "bad_documents_exit_2_name_the_field_and_write_nothing",
        // lineage-core: SBOM and scan parsers over real scanner outputs
        "trivy_alpine_gives_four_medium_fixed_findings_with_layers",
        "trivy_cocoapods_keeps_the_fixed_list_as_written",
        "grype_image_gives_two_matches_with_fixes_and_subject",
        "grype_directory_target_is_a_string",
        "spdx_image_sbom_leaves_out_the_image_itself",
        "spdx_2_2_with_no_packages_imports_empty",
        "cyclonedx_syft_image_keeps_libraries_not_the_os",
        "cyclonedx_1_4_and_1_5_import",
        "cyclonedx_bad_hash_is_refused_naming_the_field",
        "a_scan_for_another_digest_is_refused_naming_the_field",
    ]),
];

/// The accessibility engine the dashboard test runs in Chromium (`LINEAGE_TEST_AXE` names its
/// `axe.min.js`), pinned so CI runs what was tested.
const AXE_CORE: &str = "axe-core@4.14.1";

/// The dependency auditor (`deny.toml` is its policy), pinned like every other tool here.
const CARGO_DENY_VERSION: &str = "0.20.2";

enum Conformance {
    /// A whole test target (`--test TARGET` of `package`).
    Target {
        package: &'static str,
        target: &'static str,
    },
    /// Tests whose names contain one of these (libtest `--skip` matches substrings).
    Tests(&'static [&'static str]),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("audit") => audit(),
        Some("setup") => setup().map(|world| {
            // What `cargo xtask test` passes to the tests, to run one by hand.
            println!("export LINEAGE_TEST_PYTHON={}", world.python.display());
            println!("export LINEAGE_TEST_AXE={}", world.axe.display());
        }),
        _ => Err("usage: cargo xtask test [CARGO TEST ARGS] | bench | setup | audit".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// What the test processes are told about the world `setup` made.
struct World {
    python: PathBuf,
    /// axe-core's `axe.min.js`.
    axe: PathBuf,
    /// The shared fixtures, when there are any.
    fixtures: Option<PathBuf>,
}

/// Where the fixtures are: `LINEAGE_FIXTURES` (which must then exist), else
/// `../shared/fixtures` beside the checkout when it exists, else none.
fn find_fixtures() -> Result<Option<PathBuf>, String> {
    if let Some(dir) = std::env::var_os("LINEAGE_FIXTURES").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(format!(
                "LINEAGE_FIXTURES is `{}`, which is not a directory; unset it to run without the conformance tests",
                dir.display()
            ));
        }
        return dir.canonicalize().map(Some).map_err(|e| e.to_string());
    }
    let beside = root().join("../shared/fixtures");
    if beside.is_dir() {
        return beside.canonicalize().map(Some).map_err(|e| e.to_string());
    }
    Ok(None)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn setup() -> Result<World, String> {
    let fixtures = find_fixtures()?;
    if fixtures.is_none() && in_ci() {
        return Err(format!(
            "CI=true but there are no fixtures (LINEAGE_FIXTURES is unset and {} does not exist): CI must run the conformance tests",
            root().join("../shared/fixtures").display()
        ));
    }
    ensure_apt(APT_PACKAGES)?;
    let python = ensure_python()?;
    let axe = ensure_axe()?;
    Ok(World {
        python,
        axe,
        fixtures,
    })
}

fn not_run_banner() -> String {
    let line = "=".repeat(78);
    format!(
        "{line}\nxtask: CONFORMANCE TESTS NOT RUN: no fixtures (LINEAGE_FIXTURES is unset and {} does not exist).\n\
         xtask: these were left out: {}.\n\
         xtask: set LINEAGE_FIXTURES=/path/to/shared/fixtures to run them (CI does).\n{line}",
        root().join("../shared/fixtures").display(),
        CONFORMANCE
            .iter()
            .map(|c| match c {
                Conformance::Target { package, target } => format!("{package} --test {target}"),
                Conformance::Tests(names) => format!("{} more tests by name", names.len()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn test(extra: &[String]) -> Result<(), String> {
    let world = setup()?;
    if world.fixtures.is_none() {
        eprintln!("{}", not_run_banner());
    }
    // Clippy first: it is cheaper than the suite and CI treats a warning as a failure.
    run(Command::new(env!("CARGO")).current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    audit()?;
    // A server named by LINEAGE_TEST_PG is used as it is; otherwise one of our own, stopped
    // (and its directory removed) when this function returns, pass or fail.
    let given = std::env::var("LINEAGE_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty());
    let cluster = match &given {
        Some(_) => None,
        None => Some(postgres::Cluster::start()?),
    };
    let pg_url = match (&given, &cluster) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => c.create_database("lineage_test")?,
        (None, None) => unreachable!("a cluster is started when no URL is given"),
    };
    let cargo_test = |args: &[&str], skips: &[&str]| -> Result<(), String> {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root())
            .arg("test")
            .args(args)
            .arg("--no-fail-fast")
            .args(extra)
            .env("LINEAGE_TEST_PYTHON", &world.python)
            .env("LINEAGE_TEST_AXE", &world.axe)
            .env("LINEAGE_TEST_PG", &pg_url)
            // Tests that run on SQLite alone when no PostgreSQL is configured fail instead
            // when this is set: here every backend runs.
            .env("LINEAGE_TEST_REQUIRE_PG", "1");
        match &world.fixtures {
            Some(f) => {
                cmd.env("LINEAGE_FIXTURES", f);
            }
            None => {
                cmd.env_remove("LINEAGE_FIXTURES");
            }
        }
        if !skips.is_empty() {
            if !extra.iter().any(|a| a == "--") {
                cmd.arg("--");
            }
            for s in skips {
                cmd.args(["--skip", s]);
            }
        }
        run(&mut cmd)
    };
    let result = match &world.fixtures {
        Some(_) => cargo_test(&["--workspace"], &[]),
        None => {
            let mut skips = Vec::new();
            let mut whole = Vec::new();
            for c in CONFORMANCE {
                match c {
                    Conformance::Target { package, target } => whole.push((*package, *target)),
                    Conformance::Tests(names) => skips.extend_from_slice(names),
                }
            }
            let mut args = vec!["--workspace"];
            for (package, _) in &whole {
                args.extend(["--exclude", package]);
            }
            let first = cargo_test(&args, &skips);
            // The excluded packages' other targets still run.
            let mut rest = Ok(());
            for (package, target) in &whole {
                let mut args = vec!["-p", package];
                if !extra.iter().any(|a| a == "--lib") {
                    args.push("--lib");
                }
                let others = test_targets(package)?;
                for t in others.iter().filter(|t| t.as_str() != *target) {
                    args.extend(["--test", t.as_str()]);
                }
                if let Err(e) = cargo_test(&args, &[]) {
                    rest = Err(e);
                }
            }
            eprintln!("{}", not_run_banner());
            first.and(rest)
        }
    };
    drop(cluster);
    result
}

/// The integration-test targets of a workspace package (its `tests/*.rs` and `tests/*/main.rs`).
fn test_targets(package: &str) -> Result<Vec<String>, String> {
    let dir = root().join("crates").join(package).join("tests");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".rs") {
            out.push(stem.to_string());
        } else if path.join("main.rs").is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["bench", "--workspace"])
        .args(extra);
    run(&mut cmd)
}

/// `cargo deny check` against `deny.toml`: licences, sources and bans always; advisories when
/// the RustSec database can be fetched (it lives on github.com), or from cargo-deny's cache
/// when it cannot. With neither, the run says loudly that advisories were not checked: the
/// database is data from the network, not a component this machine can install.
fn audit() -> Result<(), String> {
    let bin = ensure_cargo_deny()?;
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .map_err(|e| e.to_string())?;
    let deny = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root()).env("PATH", &path).arg("deny");
        cmd
    };
    // cargo-deny reads `cargo metadata`, which wants the sources of every platform's
    // dependencies (windows-sys and the like); a build here only downloads Linux's. Fetch the
    // rest first so the offline checks below see the whole graph on a clean machine.
    run(Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["fetch", "--locked"]))?;
    run(deny().args(["--offline", "check", "bans", "licenses", "sources"]))?;
    eprintln!("xtask: running cargo deny check advisories");
    let online = deny()
        .args(["check", "advisories"])
        .output()
        .map_err(|e| format!("cannot run cargo deny: {e}"))?;
    let stderr = String::from_utf8_lossy(&online.stderr);
    if online.status.success() {
        return Ok(());
    }
    if !stderr.contains("failed to fetch advisory database") {
        eprint!("{stderr}");
        return Err("cargo deny check advisories found advisories (above)".to_string());
    }
    let cached = dirs_with_prefix(&cargo_home().join("advisory-dbs"), "advisory-db-");
    if !cached.is_empty() {
        eprintln!(
            "xtask: the advisory database cannot be fetched; checking against the cached copy"
        );
        return run(deny().args(["--offline", "check", "advisories"]));
    }
    let line = "=".repeat(78);
    eprintln!(
        "{line}\nxtask: ADVISORIES NOT CHECKED: the RustSec advisory database (github.com/RustSec/advisory-db)\n\
         xtask: cannot be fetched from this machine and no cached copy is in {}.\n\
         xtask: licences, sources and duplicate versions were checked.\n{line}",
        cargo_home().join("advisory-dbs").display()
    );
    Ok(())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// The directories in `dir` whose names start with `prefix` and hold a git checkout.
fn dirs_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
                && p.join(".git").exists()
        })
        .collect()
}

/// cargo-deny, built once into `target/test-tools` (a debug build: it compiles in about a
/// third of the time and checks this workspace in seconds). Answers its `bin` directory.
fn ensure_cargo_deny() -> Result<PathBuf, String> {
    let tools = root().join("target/test-tools");
    let bin = tools.join("bin");
    let version = Command::new(bin.join("cargo-deny"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if version == format!("cargo-deny {CARGO_DENY_VERSION}") {
        return Ok(bin);
    }
    run(Command::new(env!("CARGO"))
        .args([
            "install",
            "--locked",
            "--debug",
            "--force",
            "cargo-deny",
            "--version",
        ])
        .arg(CARGO_DENY_VERSION)
        .arg("--root")
        .arg(&tools)
        .arg("--target-dir")
        .arg(tools.join("build")))?;
    let _ = std::fs::remove_dir_all(tools.join("build"));
    Ok(bin)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn ensure_apt(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend_from_slice(args);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["apt-get", "update", "-q"])?;
    apt(&[
        &["apt-get", "install", "-y", "-q", "--no-install-recommends"][..],
        &missing,
    ]
    .concat())
    .map_err(|e| {
        format!(
            "{e}; install these Debian packages by hand: {}",
            missing.join(" ")
        )
    })
}

/// A venv under target/ with the Python reference implementations and `cyclonedx-py`.
fn ensure_python() -> Result<PathBuf, String> {
    let venv = root().join("target/test-python");
    let python = venv.join("bin/python");
    let stamp = venv.join("lineage-packages.txt");
    let wanted = PIP_PACKAGES.join("\n");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    // No pip cache and temporary files under target/: a CI machine's /tmp or home
    // may be small, and a cache there outlives the run (CI once failed with ENOSPC here).
    let tmp = venv.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    run(Command::new(&python)
        .env("TMPDIR", &tmp)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-cache-dir",
        ])
        .args(PIP_PACKAGES))?;
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// axe-core from the npm registry, installed under target/ (never globally): its `axe.min.js`.
fn ensure_axe() -> Result<PathBuf, String> {
    let dir = root().join("target/test-node");
    let js = dir.join("node_modules/axe-core/axe.min.js");
    let stamp = dir.join("lineage-packages.txt");
    if js.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(AXE_CORE) {
        return Ok(js);
    }
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_npm {
        ensure_apt(&["npm"])?;
    }
    // The cache under target/ too, removed afterwards, as for pip.
    let cache = dir.join("cache");
    run(Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&dir)
        .args([
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--save-exact",
            "--cache",
        ])
        .arg(&cache)
        .arg(AXE_CORE))?;
    let _ = std::fs::remove_dir_all(&cache);
    if !js.is_file() {
        return Err(format!(
            "npm installed {AXE_CORE} but `{}` is missing",
            js.display()
        ));
    }
    std::fs::write(&stamp, AXE_CORE).map_err(|e| e.to_string())?;
    Ok(js)
}
