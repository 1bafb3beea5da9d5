//! Strict names: a document held to a schema of every section and key, before any section's
//! reader looks at values. The first unknown name is an error at its `file:line:column`, with
//! the closest valid name, or the valid names when none is close. Values are not looked at.

use std::ops::Range;

use toml_edit::{Item, Table, TableLike, Value};

use crate::{line_col, ConfigError, Document};

/// What a key may hold, as far as names go.
#[derive(Debug)]
pub enum Shape {
    /// A value; its section's reader checks its type and content.
    Value,
    /// A table holding exactly these keys.
    Table(&'static [Field]),
    /// A table whose keys the user names (environments, namespaces, rules), each value of the
    /// given shape.
    Map(&'static Shape),
    /// An array of tables (`[[trust.keys]]`), each holding exactly these keys.
    Tables(&'static [Field]),
    /// Anything below: the owning reader validates the names itself (rule codes and names in
    /// `[rules]` and `[rules.ENV]`, which lineage-policy checks against its rule list).
    Free,
}

/// A section or key name and what it holds.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
}

impl Field {
    /// The keys of a table (or of each table in an array of tables); none for other shapes.
    pub fn keys(&self) -> &'static [Field] {
        match self.shape {
            Shape::Table(fields) | Shape::Tables(fields) => fields,
            _ => &[],
        }
    }

    /// The field named `name` among this table's keys.
    pub fn key(&self, name: &str) -> Option<&'static Field> {
        self.keys().iter().find(|f| f.name == name)
    }
}

/// A key holding a value.
pub const fn value(name: &'static str) -> Field {
    Field {
        name,
        shape: Shape::Value,
    }
}

/// Checks every section and key name of `doc` against `schema` (the top-level fields).
pub fn check_names(doc: &Document, schema: &[Field]) -> Result<(), ConfigError> {
    let cx = Cx { doc };
    cx.table(doc.doc.as_table(), &[], schema, false)
}

/// The hint for an unknown `name` among `names` in `section` (`[log]`).
pub(crate) fn suggestion(name: &str, names: &[&str], section: &str) -> String {
    match lineage_model::closest(name, names) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!(
            "valid keys in `{section}`: {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

struct Cx<'a> {
    doc: &'a Document,
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
    /// `array`: the table is one of an array of tables, and reads as its `[[header]]`.
    fn table(
        &self,
        table: &dyn TableLike,
        path: &[&str],
        fields: &[Field],
        array: bool,
    ) -> Result<(), ConfigError> {
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
                None => return Err(self.unknown(span, path, name, item, fields, array)),
            }
        }
        Ok(())
    }

    fn shape(&self, item: &Item, path: &[&str], shape: &Shape) -> Result<(), ConfigError> {
        match shape {
            Shape::Value | Shape::Free => Ok(()),
            // A value where a table belongs is a type error, which the section's reader
            // reports with the right hint; names are all this check looks at.
            Shape::Table(fields) => match item.as_table_like() {
                Some(t) => self.table(t, path, fields, false),
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
                    self.table(t, path, fields, true)?;
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
        array: bool,
    ) -> ConfigError {
        let form = Form::of(item);
        let (line, column) = line_col(self.doc.doc.raw(), span.map_or(0, |s| s.start));
        let section = if array {
            format!("[[{}]]", path.join("."))
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
        let hint = match lineage_model::closest(name, &names) {
            Some(near) => format!("did you mean `{}`?", shown(near)),
            None if path.is_empty() => format!(
                "valid sections: {}",
                names
                    .iter()
                    .map(|n| format!("`[{n}]`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => suggestion(name, &names, &section),
        };
        ConfigError {
            file: self.doc.file.clone(),
            line,
            column,
            message,
            hint: Some(hint),
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
