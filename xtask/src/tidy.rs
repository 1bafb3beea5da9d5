//! ARCHITECTURE.md's invariants that a machine can check, as ordinary tests (`cargo test
//! --workspace` runs them with the suite): the direction of the crate dependencies, which
//! crates may know a terminal, SQL, HTTP or the command line, and who reads the environment.

#![cfg(test)]

use std::path::{Path, PathBuf};

/// The workspace's crates, lowest first: a crate depends only on crates before it. This is
/// ARCHITECTURE.md's "Dependencies point one way", as a list.
const LAYERS: &[&str] = &[
    "lineage-model",
    "lineage-log",
    "lineage-toml",
    "lineage-attest",
    "lineage-policy",
    "lineage-store",
    "lineage-registry",
    "lineage-sigstore",
    "lineage-core",
    "lineage-server",
    "lineage",
];

/// Libraries that make a crate a front end or a backend, and the only crates that may use
/// them (as normal dependencies; tests and benches may use anything).
const EDGES: &[(&str, &[&str])] = &[
    ("clap", &["lineage"]),
    ("indicatif", &["lineage"]),
    ("axum", &["lineage-server"]),
    ("maud", &["lineage-server", "lineage"]),
    ("rusqlite", &["lineage-store"]),
    ("postgres", &["lineage-store"]),
    ("tokio-postgres", &["lineage-store"]),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// The names under `[section]` of a Cargo.toml (one `name = …` or `name.workspace = …` per line).
fn deps(manifest: &str, section: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        out.push(name.trim_matches('"').to_string());
    }
    out
}

fn crates() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        out.push((name, manifest));
    }
    out.sort();
    out
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `src` files of every crate, except those `skip(crate, file)` leaves out.
fn crate_sources(skip: impl Fn(&str, &Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, _) in crates() {
        for file in sources(&root().join("crates").join(&name).join("src")) {
            if !skip(&name, &file) {
                out.push(file);
            }
        }
    }
    out
}

/// Lines of `file` (outside `#[cfg(test)]` modules at the end of a file, and outside
/// comments) that contain one of `needles`, as `path:line: text`.
fn find(file: &Path, needles: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        if needles.iter().any(|w| code.contains(w)) {
            let shown = file.strip_prefix(root()).unwrap_or(file).display();
            out.push(format!("{shown}:{}: {}", n + 1, code));
        }
    }
    out
}

#[test]
fn dependencies_point_one_way() {
    let mut wrong = Vec::new();
    for (name, manifest) in crates() {
        if name == "lineage-testkit" {
            assert!(
                deps(&manifest, "dependencies")
                    .iter()
                    .all(|d| !d.starts_with("lineage")),
                "the test kit depends on no Lineage crate"
            );
            continue;
        }
        let Some(at) = LAYERS.iter().position(|l| *l == name) else {
            wrong.push(format!(
                "crate `{name}` is not in xtask/src/tidy.rs LAYERS (and ARCHITECTURE.md's map)"
            ));
            continue;
        };
        for dep in deps(&manifest, "dependencies") {
            if dep == "lineage-testkit" {
                wrong.push(format!(
                    "{name} depends on the test kit outside [dev-dependencies]"
                ));
            }
            if let Some(d) = LAYERS.iter().position(|l| *l == dep) {
                if d >= at {
                    wrong.push(format!("{name} depends on {dep}, which is not below it"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn front_end_and_backend_libraries_stay_in_their_crates() {
    let mut wrong = Vec::new();
    for (name, manifest) in crates() {
        for dep in deps(&manifest, "dependencies") {
            if let Some((lib, allowed)) = EDGES.iter().find(|(lib, _)| *lib == dep) {
                if !allowed.contains(&name.as_str()) {
                    wrong.push(format!(
                        "{name} depends on {lib}; only {} may",
                        allowed.join(", ")
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn library_crates_print_nothing() {
    // Only the binary talks to a terminal; libraries return reports (or log through
    // `tracing`, which the binary configures).
    let mut found = Vec::new();
    for file in crate_sources(|name, _| name == "lineage") {
        found.extend(find(
            &file,
            &["println!(", "print!(", "eprintln!(", "eprint!(", "dbg!("],
        ));
    }
    assert!(
        found.is_empty(),
        "printing in a library crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_settings_read_the_environment() {
    // Every variable is declared and read in one place, so `--help` and the docs can list
    // them all; the test kit reads its own (it is never shipped).
    let mut found = Vec::new();
    let skip = |name: &str, file: &Path| {
        name == "lineage-testkit" || file.ends_with("crates/lineage/src/settings.rs")
    };
    for file in crate_sources(skip) {
        found.extend(find(
            &file,
            &["env::var(", "env::var_os(", "env::vars(", "env::vars_os("],
        ));
    }
    assert!(
        found.is_empty(),
        "environment read outside crates/lineage/src/settings.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_global_mutable_state() {
    // A use case's result travels as a value, never through a process-wide slot (issue 15
    // found one carrying a registry answer from a fill to a renderer). The one exception is a
    // resource cache: PostgreSQL connection pools, shared per URL by every store handle.
    const ALLOWED: &[&str] = &["crates/lineage-store/src/postgres/connect.rs"];
    let allowed = |_: &str, file: &Path| {
        let shown = file.strip_prefix(root()).unwrap_or(file);
        ALLOWED.iter().any(|a| shown == Path::new(a))
    };
    let found: Vec<String> = crate_sources(allowed)
        .iter()
        .flat_map(|f| mutable_statics(f))
        .collect();
    assert!(
        found.is_empty(),
        "global mutable state:\n{}",
        found.join("\n")
    );
}

/// `static` items of `file` (before its test module) whose type can change at run time.
fn mutable_statics(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        let item = ["static ", "pub static ", "pub(crate) static "]
            .iter()
            .any(|p| code.starts_with(p));
        let mutable = [
            "mut ",
            "Mutex",
            "RwLock",
            "Atomic",
            "Cell<",
            "OnceLock<Mutex",
        ]
        .iter()
        .any(|w| code.contains(w));
        if item && mutable {
            out.push(format!("{}:{}: {code}", file.display(), n + 1));
        }
    }
    out
}

#[test]
fn the_checks_find_what_they_look_for() {
    // The searches above must be able to fail: run them on text that breaks each rule.
    let dir = std::env::temp_dir().join(format!("lineage-tidy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.rs");
    std::fs::write(
        &file,
        "// println!(\"a comment\")\nfn f() { println!(\"x\"); let _ = std::env::var(\"HOME\"); }\n#[cfg(test)]\nmod tests { fn g() { println!(\"y\"); } }\n",
    )
    .unwrap();
    assert_eq!(find(&file, &["println!("]).len(), 1);
    assert_eq!(find(&file, &["env::var("]).len(), 1);
    std::fs::write(
        &file,
        "struct A { b: RefCell<&'static str> }\nstatic NAME: &str = \"x\";\nstatic SLOT: Mutex<Option<u8>> = Mutex::new(None);\n",
    )
    .unwrap();
    assert_eq!(
        mutable_statics(&file).len(),
        1,
        "only SLOT is global mutable state"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nlineage-core.workspace = true\nclap = { version = \"4\" }\n# a comment\n\n[dev-dependencies]\nlineage-testkit = { path = \"x\" }\n";
    assert_eq!(deps(manifest, "dependencies"), ["lineage-core", "clap"]);
    assert_eq!(deps(manifest, "dev-dependencies"), ["lineage-testkit"]);
}
