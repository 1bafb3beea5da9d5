//! Project automation: `cargo xtask test` sets up every real component the test suite needs
//! (Debian packages, a Python with the in-toto reference implementations, a fresh PostgreSQL
//! database, dropped afterwards) and runs the whole suite; `cargo xtask bench` runs the benchmarks.
//!
//! A missing component makes the run fail, never skip: the tests themselves refuse to run
//! without what they need.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests run for real.
const APT_PACKAGES: &[&str] = &[
    // The PostgreSQL backend is tested against a real server (started if it is not running).
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
];

/// PyPI packages for interop tests, pinned so CI runs what was tested.
const PIP_PACKAGES: &[&str] = &[
    "in-toto==3.1.0",
    "securesystemslib[crypto]==1.6.0",
    // `cyclonedx-py` writes the CycloneDX SBOMs the import tests read (issue 18).
    "cyclonedx-bom==7.5.0",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("setup") => setup().map(|_| ()),
        _ => Err("usage: cargo xtask test [-- CARGO TEST ARGS] | bench | setup".to_string()),
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
    fixtures: PathBuf,
}

/// PostgreSQL on loopback, as this project's machines run it (trust auth for local users).
const PG_HOST: &str = "127.0.0.1";
const PG_PORT: &str = "5432";
const PG_USER: &str = "postgres";

/// A database made for one test run and dropped when the run ends, pass or fail.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    fn url(&self) -> String {
        format!("postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{}", self.name)
    }

    fn create() -> Result<TestDatabase, String> {
        ensure_postgres()?;
        let name = format!("lineage_test_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(&format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase { name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Tests may have made extra databases named after this one.
        let list = Command::new("psql")
            .args([
                "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", "postgres", "-tA", "-c",
            ])
            .arg(format!(
                "SELECT datname FROM pg_database WHERE datname LIKE '{}%'",
                self.name
            ))
            .output();
        if let Ok(out) = list {
            for db in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
            {
                let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
            }
        }
    }
}

fn psql(sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([
            "-h",
            PG_HOST,
            "-p",
            PG_PORT,
            "-U",
            PG_USER,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn pg_ready() -> bool {
    Command::new("pg_isready")
        .args(["-h", PG_HOST, "-p", PG_PORT, "-q"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Starts the machine's PostgreSQL cluster, installing Debian's `postgresql` first if needed.
fn ensure_postgres() -> Result<(), String> {
    if pg_ready() {
        return Ok(());
    }
    // Any installed server version will do; Debian's `postgresql` brings the current one.
    if !Path::new("/etc/postgresql").exists() {
        ensure_apt(&["postgresql"])?;
    }
    let versions = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("PostgreSQL is installed but /etc/postgresql is unreadable: {e}"))?;
    for version in versions.flatten() {
        let version = version.file_name().to_string_lossy().to_string();
        eprintln!("xtask: starting PostgreSQL {version}");
        let _ = run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "start",
        ]));
    }
    for _ in 0..50 {
        if pg_ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Err(format!(
        "PostgreSQL did not become ready on {PG_HOST}:{PG_PORT}"
    ))
}

fn setup() -> Result<World, String> {
    let fixtures = root().join("../shared/fixtures");
    if !fixtures.join("SOURCES.md").exists() {
        return Err(format!(
            "fixtures not found at {}: the tests read ../shared/fixtures beside the checkout",
            fixtures.display()
        ));
    }
    ensure_apt(APT_PACKAGES)?;
    let python = ensure_python()?;
    Ok(World {
        python,
        fixtures: fixtures.canonicalize().map_err(|e| e.to_string())?,
    })
}

fn test(extra: &[String]) -> Result<(), String> {
    let world = setup()?;
    let database = TestDatabase::create()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("LINEAGE_TEST_PYTHON", &world.python)
        .env("LINEAGE_FIXTURES", &world.fixtures)
        .env("LINEAGE_TEST_PG", database.url());
    run(&mut cmd)
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["bench", "--workspace"])
        .args(extra);
    run(&mut cmd)
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

fn ensure_apt(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let sudo: &[&str] = if root_user { &[] } else { &["sudo"] };
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
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(PIP_PACKAGES))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}
