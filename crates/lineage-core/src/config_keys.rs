//! Strict keys for `lineage.toml`: one table of every section and key Lineage reads, and one
//! check that runs on the whole parsed document before any section is read
//! ([`crate::LineageToml::parse`]).
//!
//! Each section is read by the crate that owns it (`[environments]`, `[vulns]` and
//! `[promotion]` by `config`, `[rules]`, `[allowlist]`, `[gates]` and `[exceptions]` by
//! lineage-policy, `[[trust.keys]]` by lineage-attest, `[log]` by `ledger_log`, `[admission]` by
//! `admission`), and each reader skips the sections it does not own. This check sees the whole
//! file, so a misspelt section (`[enviroments]`) is refused at its position with the closest
//! name instead of leaving the defaults it meant to override in force. It only knows names;
//! values are checked by the section readers.

use lineage_toml::{check_names, Document, Field};

use crate::Error;

/// Every section Lineage reads from `lineage.toml`, each with its keys as its own reader
/// declares them: one list per section, so this check and the section's reader cannot
/// disagree about a name.
const SCHEMA: &[Field] = &[
    crate::config::ENVIRONMENTS,
    lineage_policy::config::RULES,
    lineage_policy::config::ALLOWLIST,
    lineage_policy::config::GATES,
    lineage_policy::config::EXCEPTIONS,
    lineage_attest::trust::SECTION,
    crate::ledger_log::SECTION,
    crate::config::REGISTRY,
    crate::admission::SECTION,
    crate::config::VULNS,
    crate::config::PROMOTION,
];

/// Checks every section and key name of `doc` against the schema. The first unknown name is an
/// error at its `file:line:column`, with the closest valid name, or the valid names when none
/// is close.
pub(crate) fn check_keys(doc: &Document) -> Result<(), Error> {
    Ok(check_names(doc, SCHEMA)?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// `Ok` or the error as `line:col: message; hint`.
    fn check(text: &str) -> Result<(), String> {
        let doc = Document::parse(text, "lineage.toml").map_err(|e| e.to_string())?;
        check_keys(&doc).map_err(|e| match &e {
            Error::Config(e) => format!(
                "{}:{}: {}; {}",
                e.line,
                e.column,
                e.message,
                e.hint.as_deref().unwrap_or_default()
            ),
            other => format!("{other}"),
        })
    }

    /// Every section and key the README documents, plus the ones added alongside this check.
    const FULL: &str = r#"
[environments]
names = ["dev", "staging", "production", "customer-eu"]
production = ["production", "customer-eu"]

[rules]
B004 = "warn"
shared-ci-job = "off"
[rules.production]
B004 = "error"

[allowlist]
registries = ["registry.acme.dev"]
base_images = ["docker.io/library/debian", "gcr.io/distroless/*"]

[gates]
four_eyes = "production"
approval = "production"
approvals = "recorded"
[gates.environments.staging]
four_eyes = true
approval = false

[exceptions]
max_days = 30
[exceptions.approvers]
B004 = ["sec@acme.dev"]
"*" = ["ciso@acme.dev"]

[[trust.keys]]
id = "ci-2026"
public_key_file = "keys/ci-2026.pub"
roles = ["builder"]
environments = ["staging", "production"]
not_before = "2026-01-01T00:00:00Z"
not_after = "2027-01-01T00:00:00Z"
revoked_at = "2026-06-01T12:00:00Z"

[[trust.keys]]
id = "deployer"
public_key_file = "keys/deployer.pub"
roles = ["deployer"]

[log]
origin = "lineage.acme.dev/ledger"
key = "log.key"
checkpoint_dir = "witness/"
checkpoint_file = "checkpoint.txt"

[admission]
namespaces = { prod = "production", default = "dev" }
mode = "enforce"
when_not_ready = "deny"
allow = ["registry.k8s.io/pause@*"]
observe = true
"#;

    #[test]
    fn a_full_file_passes() {
        assert_eq!(check(FULL), Ok(()));
        assert_eq!(check(""), Ok(()));
        // Dotted keys and inline tables are the same names.
        assert_eq!(
            check("gates.environments.dev.four_eyes = true\ntrust = { keys = [{ id = \"a\" }] }\n"),
            Ok(())
        );
    }

    #[test]
    fn a_misspelt_section_names_the_right_one() {
        assert_eq!(
            check("[enviroments]\nnames = [\"dev\"]\n"),
            Err("1:2: unknown section `[enviroments]`; did you mean `[environments]`?".into())
        );
        assert_eq!(
            check("[[trust.key]]\nid = \"a\"\n"),
            Err("1:9: unknown section `[[trust.key]]`; did you mean `[[trust.keys]]`?".into())
        );
        assert_eq!(
            check("[gates.enviroments.staging]\nfour_eyes = true\n"),
            Err(
                "1:8: unknown section `[gates.enviroments]`; did you mean `[gates.environments]`?"
                    .into()
            )
        );
    }

    #[test]
    fn unknown_keys_name_the_closest_valid_one() {
        assert_eq!(
            check("[gates]\nfour_eye = \"all\"\n"),
            Err("2:1: unknown key `four_eye` in `[gates]`; did you mean `four_eyes`?".into())
        );
        assert_eq!(
            check("[log]\norign = \"x\"\n"),
            Err("2:1: unknown key `orign` in `[log]`; did you mean `origin`?".into())
        );
        assert_eq!(
            check("[gates]\nstale_base_day = 3\n"),
            Err(
                "2:1: unknown key `stale_base_day` in `[gates]`; did you mean `stale_base_days`?"
                    .into()
            )
        );
        assert_eq!(
            check("[[trust.keys]]\nid = \"a\"\nrevoke_at = \"2026-01-01T00:00:00Z\"\n"),
            Err(
                "3:1: unknown key `revoke_at` in `[[trust.keys]]`; did you mean `revoked_at`?"
                    .into()
            )
        );
        assert_eq!(
            check("[gates.environments.prod]\nfour_eyess = true\n"),
            Err("2:1: unknown key `four_eyess` in `[gates.environments.prod]`; did you mean `four_eyes`?".into())
        );
        assert_eq!(
            check("environments = 1\nfoo = 2\n"),
            Err("2:1: unknown top-level key `foo`; valid sections: `[environments]`, `[rules]`, `[allowlist]`, `[gates]`, `[exceptions]`, `[trust]`, `[log]`, `[registry]`, `[admission]`, `[vulns]`, `[promotion]`".into())
        );
    }

    #[test]
    fn vulns_max_age_is_a_known_key() {
        assert_eq!(check("[vulns]\nmax_age = \"7d\"\n"), Ok(()));
        assert_eq!(
            check("[vulns]\nmax_ages = 3\n"),
            Err("2:1: unknown key `max_ages` in `[vulns]`; did you mean `max_age`?".into())
        );
    }

    #[test]
    fn with_nothing_close_the_valid_names_are_listed() {
        assert_eq!(
            check("[log]\nwitnesses = 3\n"),
            Err("2:1: unknown key `witnesses` in `[log]`; valid keys in `[log]`: `origin`, `key`, `public_key`, `checkpoint_dir`, `checkpoint_file`".into())
        );
        assert_eq!(
            check("[server]\nport = 1\n"),
            Err("1:2: unknown section `[server]`; valid sections: `[environments]`, `[rules]`, `[allowlist]`, `[gates]`, `[exceptions]`, `[trust]`, `[log]`, `[registry]`, `[admission]`, `[vulns]`, `[promotion]`".into())
        );
    }

    #[test]
    fn free_form_maps_take_any_name() {
        assert_eq!(
            check("[rules]\nANY = \"off\"\n[rules.customer-eu]\nX = 1\n[admission.namespaces]\nwhatever = \"dev\"\n[exceptions.approvers]\nD005 = []\n"),
            Ok(())
        );
    }

    #[test]
    fn a_file_that_is_not_toml_is_an_error_at_its_position() {
        let e = Document::parse("[log\n", "x.toml").unwrap_err();
        assert_eq!(e.line, 1, "{e:?}");
    }

    /// Every key of the schema, written alone under its section, is never refused by name by
    /// its section's reader: the reader and this check hold one list. (Values may be refused:
    /// `"x"` is rarely a valid setting; only "unknown key" errors count here.)
    #[test]
    fn every_reader_accepts_every_name_the_schema_holds() {
        for section in SCHEMA {
            for key in section.keys() {
                let text = match key.shape {
                    lineage_toml::Shape::Map(_) => {
                        format!("[{}.{}]\nx = \"x\"\n", section.name, key.name)
                    }
                    lineage_toml::Shape::Tables(_) | lineage_toml::Shape::Table(_) => {
                        format!("[[{}.{}]]\nid = \"x\"\n", section.name, key.name)
                    }
                    _ => format!("[{}]\n{} = \"x\"\n", section.name, key.name),
                };
                assert_eq!(check(&text), Ok(()), "{text}");
                if let Err(e) = crate::LineageToml::parse(&text, "lineage.toml", Path::new(".")) {
                    let e = e.to_string();
                    assert!(!e.contains("unknown key"), "{text}: {e}");
                }
            }
        }
    }
}
