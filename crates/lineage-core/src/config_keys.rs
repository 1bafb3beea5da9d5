//! Strict keys for `lineage.toml`: one table of every section and key Lineage reads, and one
//! check that runs on the whole file before any section parser sees it.
//!
//! Each section is parsed by the crate that owns it (`[environments]` here, `[rules]`,
//! `[allowlist]` and `[gates]` by lineage-policy, `[[trust.keys]]` by lineage-attest, `[log]` by
//! `ledger_log`, `[admission]` by lineage-server, `[vulns]` here), and each parser skips the sections it does
//! not own. So without this check a misspelt section (`[enviroments]`) or a key no parser
//! looks at was silently ignored, and the defaults it meant to override stayed in force. The
//! check only knows names; values are still checked by the section parsers.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use crate::config::{closest, line_col};
use crate::Error;

/// What a key may hold, as far as names go.
#[derive(Debug)]
enum Shape {
    /// A value; its section's parser checks its type and content.
    Value,
    /// A table holding exactly these keys.
    Table(&'static [Field]),
    /// A table whose keys the user names (environments, namespaces, rules), each value of the
    /// given shape.
    Map(&'static Shape),
    /// An array of tables (`[[trust.keys]]`), each holding exactly these keys.
    Tables(&'static [Field]),
    /// Anything below: the owning parser validates the names itself (rule codes and names in
    /// `[rules]` and `[rules.ENV]`, which lineage-policy checks against its rule list).
    Free,
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    shape: Shape,
}

const fn value(name: &'static str) -> Field {
    Field {
        name,
        shape: Shape::Value,
    }
}

/// Every section and key Lineage reads from `lineage.toml`. A new setting is added here and in
/// the parser of its section; a name missing here is refused before that parser runs.
const SCHEMA: &[Field] = &[
    Field {
        name: "environments",
        shape: Shape::Table(&[value("names"), value("production")]),
    },
    Field {
        name: "rules",
        shape: Shape::Free,
    },
    Field {
        name: "allowlist",
        shape: Shape::Table(&[value("registries"), value("base_images")]),
    },
    Field {
        name: "gates",
        shape: Shape::Table(&[
            value("four_eyes"),
            value("approval"),
            value("approvals"),
            value("stale_base_days"),
            Field {
                name: "environments",
                shape: Shape::Map(&Shape::Table(&[value("four_eyes"), value("approval")])),
            },
        ]),
    },
    Field {
        name: "exceptions",
        shape: Shape::Table(&[
            value("max_days"),
            Field {
                name: "approvers",
                shape: Shape::Map(&Shape::Value),
            },
        ]),
    },
    Field {
        name: "trust",
        shape: Shape::Table(&[Field {
            name: "keys",
            shape: Shape::Tables(&[
                value("id"),
                value("public_key_file"),
                value("roles"),
                value("environments"),
                value("not_before"),
                value("not_after"),
                value("revoked_at"),
            ]),
        }]),
    },
    Field {
        name: "log",
        shape: Shape::Table(&[
            value("origin"),
            value("key"),
            value("checkpoint_dir"),
            value("checkpoint_file"),
        ]),
    },
    Field {
        name: "registry",
        shape: Shape::Table(&[value("timeout")]),
    },
    Field {
        name: "admission",
        shape: Shape::Table(&[
            Field {
                name: "namespaces",
                shape: Shape::Map(&Shape::Value),
            },
            value("mode"),
            value("when_not_ready"),
            value("allow"),
            value("observe"),
        ]),
    },
    Field {
        name: "vulns",
        shape: Shape::Table(&[value("max_age")]),
    },
    Field {
        name: "promotion",
        shape: Shape::Table(&[
            value("path"),
            Field {
                name: "soak_minutes",
                shape: Shape::Map(&Shape::Value),
            },
            value("require_healthy"),
        ]),
    },
];

/// Checks every section and key name in `text` (the contents of `file`) against the schema.
/// The first unknown name is an error at its `file:line:column`, with the closest valid name,
/// or the valid names when none is close. A file that is not TOML is an error too.
pub fn check_keys(text: &str, file: &str) -> Result<(), Error> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let (line, col) = line_col(text, e.span().map_or(0, |s| s.start));
        Error::Config {
            file: file.to_string(),
            line,
            col,
            message: e.message().trim().to_string(),
        }
    })?;
    let cx = Cx { text, file };
    cx.table(doc.as_table(), &[], SCHEMA)
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

/// How a name is written in the file, so that messages and suggestions use the same form.
#[derive(Clone, Copy)]
enum Form {
    /// A `[section]` header.
    Header,
    /// A `[[section]]` header.
    ArrayHeader,
    /// `key = …`, also dotted or inline.
    Key,
}

impl Form {
    fn of(item: &Item) -> Form {
        match item {
            Item::Table(t) if !t.is_dotted() => Form::Header,
            Item::ArrayOfTables(_) => Form::ArrayHeader,
            _ => Form::Key,
        }
    }

    /// `name` (the full dotted path for headers) as the user would write it.
    fn show(self, path: &[&str], name: &str) -> String {
        let full = path
            .iter()
            .copied()
            .chain([name])
            .collect::<Vec<_>>()
            .join(".");
        match self {
            Form::Header => format!("[{full}]"),
            Form::ArrayHeader => format!("[[{full}]]"),
            Form::Key => name.to_string(),
        }
    }
}

impl Cx<'_> {
    fn table(&self, table: &dyn TableLike, path: &[&str], fields: &[Field]) -> Result<(), Error> {
        for (name, item) in table.iter() {
            let span = table
                .get_key_value(name)
                .and_then(|(key, _)| key.span())
                .or_else(|| item.span());
            match fields.iter().find(|f| f.name == name) {
                Some(field) => {
                    let mut inner = path.to_vec();
                    inner.push(name);
                    self.shape(item, &inner, &field.shape)?;
                }
                None => return Err(self.unknown(span, path, name, item, fields)),
            }
        }
        Ok(())
    }

    fn shape(&self, item: &Item, path: &[&str], shape: &Shape) -> Result<(), Error> {
        match shape {
            Shape::Value | Shape::Free => Ok(()),
            // A value where a table belongs is a type error, which the section's parser
            // reports with the right hint; names are all this check looks at.
            Shape::Table(fields) => match item.as_table_like() {
                Some(t) => self.table(t, path, fields),
                None => Ok(()),
            },
            Shape::Map(inner) => match item.as_table_like() {
                Some(t) => {
                    for (name, item) in t.iter() {
                        let mut p = path.to_vec();
                        p.push(name);
                        self.shape(item, &p, inner)?;
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            Shape::Tables(fields) => {
                for t in tables(item) {
                    self.table(t, path, fields)?;
                }
                Ok(())
            }
        }
    }

    fn unknown(
        &self,
        span: Option<Range<usize>>,
        path: &[&str],
        name: &str,
        item: &Item,
        fields: &[Field],
    ) -> Error {
        let form = Form::of(item);
        let (line, col) = line_col(self.text, span.map_or(0, |s| s.start));
        // Inside `[[trust.keys]]` the section reads as the array header it is written as.
        let section = if path == ["trust", "keys"] {
            "[[trust.keys]]".to_string()
        } else {
            format!("[{}]", path.join("."))
        };
        let message = match (form, path.is_empty()) {
            (Form::Header | Form::ArrayHeader, _) => {
                format!("unknown section `{}`", form.show(path, name))
            }
            (Form::Key, true) => format!("unknown top-level key `{name}`"),
            (Form::Key, false) => format!("unknown key `{name}` in `{section}`"),
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        // At the top level every valid name is a section, so suggest it as one.
        let shown = |n: &str| match form {
            Form::Key if path.is_empty() => format!("[{n}]"),
            _ => form.show(path, n),
        };
        let hint = match closest(name, &names) {
            Some(near) => format!("did you mean `{}`?", shown(near)),
            None if path.is_empty() => format!(
                "valid sections: {}",
                names
                    .iter()
                    .map(|n| format!("`[{n}]`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "valid keys in `{section}`: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Error::ConfigKey {
            file: self.file.to_string(),
            line,
            col,
            message,
            hint,
        }
    }
}

/// The tables of an array of tables, written either as `[[header]]`s or inline.
fn tables(item: &Item) -> Vec<&dyn TableLike> {
    match item {
        Item::ArrayOfTables(a) => a.iter().map(|t: &Table| t as &dyn TableLike).collect(),
        Item::Value(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok` or the error as `line:col: message; hint`.
    fn check(text: &str) -> Result<(), String> {
        check_keys(text, "lineage.toml").map_err(|e| match &e {
            Error::ConfigKey {
                line,
                col,
                message,
                hint,
                ..
            } => format!("{line}:{col}: {message}; {hint}"),
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
            Err("2:1: unknown key `witnesses` in `[log]`; valid keys in `[log]`: `origin`, `key`, `checkpoint_dir`, `checkpoint_file`".into())
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
        let e = check_keys("[log\n", "x.toml").unwrap_err();
        assert!(matches!(e, Error::Config { line: 1, .. }), "{e:?}");
    }
}
