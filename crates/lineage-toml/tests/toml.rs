//! The reader's error forms, and the workspace held to one TOML parser and one parse.

use std::path::{Path, PathBuf};

use lineage_toml::{ConfigError, Document, Scalar};

fn err(e: ConfigError) -> String {
    format!(
        "{}:{}: {}; hint: {}",
        e.line,
        e.column,
        e.message,
        e.hint.unwrap_or_default()
    )
}

#[test]
fn readers_name_the_key_path_the_value_as_written_and_the_right_form() {
    let doc = Document::parse(
        "[gates]\napproval = 1\nfour_eyes = [\"a\",\n  2]\n[gates.environments.dev]\nx = true\n",
        "conf/lineage.toml",
    )
    .unwrap();
    let gates = doc.section("gates").unwrap().table().unwrap();
    assert_eq!(gates.header(), "[gates]");
    let approval = gates.get("approval").unwrap();
    assert_eq!(approval.path(), "gates.approval");
    assert_eq!(
        err(approval.string("\"production\"").unwrap_err()),
        "2:12: `gates.approval` is `1`, not a string; hint: write `approval = \"production\"`"
    );
    assert_eq!(approval.scalar(), Scalar::Integer(1));
    // An element is reported where it is, and a value over several lines is quoted on one.
    let four_eyes = gates.get("four_eyes").unwrap();
    assert_eq!(
        err(four_eyes.strings("[\"production\"]").unwrap_err()),
        "4:3: `gates.four_eyes` holds `2`, which is not a string; hint: write `four_eyes = [\"production\"]`"
    );
    assert_eq!(
        err(four_eyes.bool().unwrap_err()),
        "3:13: `gates.four_eyes` is `[\"a\", 2]`, not true or false; hint: write `four_eyes = true`"
    );
    assert_eq!(
        err(approval.table().unwrap_err()),
        "2:12: `gates.approval` is `1`, not a table; hint: write `[gates.approval]` on its own line and the entries below it"
    );
    let dev = gates
        .get("environments")
        .unwrap()
        .table()
        .unwrap()
        .get("dev")
        .unwrap()
        .table()
        .unwrap();
    assert_eq!(dev.path(), "gates.environments.dev");
    assert_eq!(
        err(dev.deny_unknown(&["four_eyes", "approval"]).unwrap_err()),
        "6:1: unknown key `x` in `[gates.environments.dev]`; hint: valid keys in `[gates.environments.dev]`: `four_eyes`, `approval`"
    );
    assert_eq!(
        approval.error("m", "h").to_string(),
        "conf/lineage.toml:2:12: m"
    );
}

#[test]
fn arrays_of_tables_read_as_their_header() {
    for text in [
        "[[trust.keys]]\nid = \"a\"\n[[trust.keys]]\nid = \"b\"\nroles = 1\n",
        "trust.keys = [{ id = \"a\" }, { id = \"b\", roles = 1 }]\n",
    ] {
        let doc = Document::parse(text, "lineage.toml").unwrap();
        let trust = doc.section("trust").unwrap().table().unwrap();
        let keys = trust.get("keys").unwrap().tables().unwrap();
        assert_eq!(keys.len(), 2, "{text}");
        assert_eq!(keys[1].header(), "[[trust.keys]]");
        let e = keys[1].deny_unknown(&["id", "role"]).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.hint.as_deref()),
            (
                "unknown key `roles` in `[[trust.keys]]`",
                Some("did you mean `role`?")
            ),
            "{text}"
        );
    }
    let doc = Document::parse("[trust]\nkeys = 3\n", "lineage.toml").unwrap();
    let keys = doc.section("trust").unwrap().table().unwrap().get("keys");
    assert_eq!(
        err(keys.unwrap().tables().err().unwrap()),
        "2:8: `trust.keys` is `3`, not a list of tables; hint: write each entry under its own `[[trust.keys]]` header"
    );
}

#[test]
fn a_syntax_error_is_at_its_line_and_column() {
    let e =
        Document::parse("[rules]\nB004 = \"warn\"\nB003 = \n", "conf/lineage.toml").unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("conf/lineage.toml", 3));
    assert!(e.column >= 7, "{e}");
    assert_eq!(e.hint, None);
}

#[test]
fn quoted_values_are_inert() {
    let doc = Document::parse("a = \"\u{202e}x\\u001b[31m\"\n", "lineage.toml").unwrap();
    let a = doc.section("a").unwrap();
    // As written: the escape stays an escape, the bidi override is shown as one.
    assert_eq!(a.written(), "\"\\u{202e}x\\u001b[31m\"");
}

// ---------------------------------------------------------------------------------------------
// One library, one parse.
// ---------------------------------------------------------------------------------------------

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `crates/*/src` and `xtask/src`, with its text up to its unit tests
/// (`#[cfg(test)]` modules come last in this workspace).
fn sources() -> Vec<(String, String)> {
    let root = workspace();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("src"))
        .collect();
    dirs.push(root.join("xtask/src"));
    let mut out = Vec::new();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                out.push((name, code));
            }
        }
    }
    out.sort();
    out
}

/// The code lines (not comments) of `code` containing `needle`, each with the name of the
/// function it is in.
fn calls<'a>(code: &'a str, needle: &str) -> Vec<(&'a str, &'a str)> {
    let mut function = "";
    let mut found = Vec::new();
    for line in code.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if let Some(rest) = t
            .strip_prefix("pub fn ")
            .or_else(|| t.strip_prefix("pub(crate) fn "))
            .or_else(|| t.strip_prefix("fn "))
        {
            function = rest.split(['(', '<']).next().unwrap_or("");
        }
        if t.contains(needle) {
            found.push((function, t));
        }
    }
    found
}

/// `toml_edit` is the only TOML library, and only this crate names it.
#[test]
fn one_toml_library_behind_this_crate() {
    let root = workspace();
    let mut manifests = vec![root.join("Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        manifests.push(entry.path().join("Cargo.toml"));
    }
    manifests.push(root.join("xtask/Cargo.toml"));
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let name = line.split(['=', ' ', '.']).next().unwrap_or("");
            let ours = manifest.ends_with("crates/lineage-toml/Cargo.toml");
            assert!(
                !matches!(name, "toml" | "serde_spanned" | "basic-toml" | "taplo")
                    && (ours || name != "toml_edit"),
                "{}: `{line}`: read TOML through lineage-toml",
                manifest.display()
            );
        }
    }
    for (file, code) in sources() {
        if file.starts_with("crates/lineage-toml/") {
            continue;
        }
        // `toml::…` as a path of its own (not the end of `lineage_toml::…`).
        let toml_crate = code.match_indices("toml::").any(|(i, _)| {
            !code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        assert!(
            calls(&code, "toml_edit").is_empty() && !toml_crate,
            "{file} uses a TOML library directly"
        );
    }
}

/// `lineage.toml` is parsed once: `Document::parse` is called only by `LineageToml::parse`
/// and by the standalone readers of one section (`from_toml`, `from_toml_str`, for tests and
/// tools), those readers are called by no program code, and `LineageToml::parse` is called
/// once, by the binary's settings. Every other reader takes the parsed `Document`.
#[test]
fn lineage_toml_is_parsed_once() {
    let mut parses = Vec::new();
    let mut standalone = Vec::new();
    let mut loads = Vec::new();
    for (file, code) in sources() {
        if file.starts_with("crates/lineage-toml/") {
            continue;
        }
        for (function, line) in calls(&code, "Document::parse(") {
            parses.push(format!("{file}: {function}"));
            assert!(
                matches!(function, "parse" | "from_toml" | "from_toml_str"),
                "{file}: `{line}` in `{function}`: read sections from the one parsed document"
            );
        }
        for needle in ["::from_toml(", "::from_toml_str("] {
            for (function, line) in calls(&code, needle) {
                // A standalone reader may call another's `from_document`, never `from_toml`.
                standalone.push(format!("{file}: {function}: {line}"));
            }
        }
        for (function, line) in calls(&code, "LineageToml::parse(") {
            loads.push(format!("{file}: {function}: {line}"));
        }
    }
    assert!(
        standalone.is_empty(),
        "program code calls a standalone section reader (take the section from `LineageToml`):\n{}",
        standalone.join("\n")
    );
    assert_eq!(
        loads,
        ["crates/lineage/src/settings.rs: load_config: let toml = LineageToml::parse(&text, &path.display().to_string(), &dir)?;"],
        "lineage.toml is loaded in one place"
    );
    assert!(
        parses.contains(&"crates/lineage-core/src/config.rs: parse".to_string()),
        "{parses:?}"
    );
}
