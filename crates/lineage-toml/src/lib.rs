//! `lineage.toml` as a document: the one place TOML text is parsed, and the positions every
//! configuration error points at.
//!
//! [`Document::parse`] is the workspace's only call into a TOML parser (`toml_edit`, which keeps
//! the byte span of every key and value). A section is read through [`Table`] and [`Entry`],
//! which carry their key path, so every error names `file:line:column`, the key, the value as
//! written and, in its hint, the form to write instead. [`check_names`] holds a document to a
//! schema of section and key names and suggests the closest name for a misspelt one.
//!
//! `lineage_core::LineageToml` parses the file once and hands the document to the reader of
//! each section (`lineage-policy`, `lineage-attest`, core's own modules). A reader takes a
//! `&Document`, never text, and a `Document` does not give its text back, so no reader can
//! parse the file a second time.
//!
//! No IO.

mod names;

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

pub use names::{check_names, value, Field, Shape};

/// A place in a settings file: `file:line:column`, both 1-based, the column in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A settings file that could not be used: where, what (the key path and the value as
/// written) and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    /// The right form; `None` only for TOML syntax errors, whose message says what the parser
    /// expected.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl ConfigError {
    pub fn at(at: &Position, message: impl Into<String>, hint: Option<String>) -> ConfigError {
        ConfigError {
            file: at.file.clone(),
            line: at.line,
            column: at.column,
            message: message.into(),
            hint,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

/// 1-based line and character column of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// `s` as a TOML string value, quoted and escaped (`"/etc/lineage/log.key"`), for settings
/// Lineage prints for the user to paste.
pub fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// A parsed settings file. Made only by [`Document::parse`]; it keeps the text for positions
/// but never hands it out.
#[derive(Debug)]
pub struct Document {
    file: String,
    doc: ImDocument<String>,
}

impl Document {
    /// Parses `text`, the contents of `file` (the name errors show). A syntax error points at
    /// its line and column.
    pub fn parse(text: &str, file: &str) -> Result<Document, ConfigError> {
        match ImDocument::parse(text.to_string()) {
            Ok(doc) => Ok(Document {
                file: file.to_string(),
                doc,
            }),
            Err(e) => {
                let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
                Err(ConfigError {
                    file: file.to_string(),
                    line,
                    column,
                    message: e.message().trim().to_string(),
                    hint: None,
                })
            }
        }
    }

    /// The file's name as errors show it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The top-level table.
    pub fn root(&self) -> Table<'_> {
        Table {
            doc: self,
            path: String::new(),
            table: self.doc.as_table(),
            span: None,
            array: false,
        }
    }

    /// A top-level section (`[log]`), if the file has it.
    pub fn section(&self, name: &str) -> Option<Entry<'_>> {
        self.root().get(name)
    }

    fn position(&self, span: Option<Range<usize>>) -> Position {
        let (line, column) = line_col(self.doc.raw(), span.map_or(0, |s| s.start));
        Position {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// The text of `span` as written, on one line, at most 80 characters, control and bidi
    /// characters escaped: safe to quote in a message.
    fn written(&self, span: Option<Range<usize>>) -> String {
        let raw = span
            .and_then(|s| self.doc.raw().get(s))
            .unwrap_or_default()
            .trim();
        let one_line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = if one_line.chars().count() > 80 {
            one_line.chars().take(79).chain(['…']).collect()
        } else {
            one_line
        };
        lineage_model::inert(&short).into_owned()
    }
}

/// The key path of `key` inside `path`, dotted as TOML writes it.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A table of the document, with its key path.
#[derive(Clone)]
pub struct Table<'a> {
    doc: &'a Document,
    path: String,
    table: &'a dyn TableLike,
    span: Option<Range<usize>>,
    /// One table of an array of tables (`[[trust.keys]]`).
    array: bool,
}

impl<'a> Table<'a> {
    /// The dotted key path (`gates.environments.staging`); empty for the top level.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The table as a header writes it: `[log]`, `[[trust.keys]]`.
    pub fn header(&self) -> String {
        if self.array {
            format!("[[{}]]", self.path)
        } else {
            format!("[{}]", self.path)
        }
    }

    pub fn get(&self, key: &str) -> Option<Entry<'a>> {
        let (k, item) = self.table.get_key_value(key)?;
        Some(Entry {
            doc: self.doc,
            path: join(&self.path, key),
            key: k.get(),
            key_span: k.span(),
            node: Node::Item(item),
        })
    }

    /// Every entry, in the order of the file.
    pub fn entries(&self) -> Vec<Entry<'a>> {
        let table = self.table;
        table
            .iter()
            .filter_map(|(name, _)| table.get_key_value(name))
            .map(|(k, item)| Entry {
                doc: self.doc,
                path: join(&self.path, k.get()),
                key: k.get(),
                key_span: k.span(),
                node: Node::Item(item),
            })
            .collect()
    }

    pub fn position(&self) -> Position {
        self.doc.position(self.span.clone())
    }

    /// An error about the table as a whole, at its header.
    pub fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.position(), message, Some(hint.into()))
    }

    /// Refuses a key that is not in `known`, at the key, with the closest known name.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), ConfigError> {
        for entry in self.entries() {
            if !known.contains(&entry.key()) {
                return Err(entry.key_error(
                    format!("unknown key `{}` in `{}`", entry.key(), self.header()),
                    names::suggestion(entry.key(), known, &self.header()),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a key that is not one of `fields`: the section's one list of keys, the same
    /// list the whole-document check (`check_names`) holds the file to.
    pub fn deny_unknown_fields(&self, fields: &[Field]) -> Result<(), ConfigError> {
        let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
        self.deny_unknown(&known)
    }
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({} at {})", self.header(), self.position())
    }
}

/// A key and its value: a scalar, an array or a table.
#[derive(Clone)]
pub struct Entry<'a> {
    doc: &'a Document,
    path: String,
    key: &'a str,
    key_span: Option<Range<usize>>,
    node: Node<'a>,
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Entry({} = {} at {})",
            self.path,
            self.written(),
            self.position()
        )
    }
}

/// Table items and array elements are different types in `toml_edit`.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn value(self) -> Option<&'a Value> {
        match self {
            Node::Item(item) => item.as_value(),
            Node::Value(v) => Some(v),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(item) => item.span(),
            Node::Value(v) => v.span(),
        }
    }

    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(item) => item.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }
}

/// What a value is, for readers that accept more than one type (`max_age = 7` or `"36h"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    String(&'a str),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A TOML date-time (`2026-01-01T00:00:00Z` without quotes), as written.
    Datetime(String),
    Array,
    Table,
}

impl<'a> Entry<'a> {
    /// The key's own name (`four_eyes`).
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The dotted key path (`gates.four_eyes`); an array element has its array's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn scalar(&self) -> Scalar<'a> {
        match self.node.value() {
            Some(Value::String(s)) => Scalar::String(s.value()),
            Some(Value::Integer(n)) => Scalar::Integer(*n.value()),
            Some(Value::Float(f)) => Scalar::Float(*f.value()),
            Some(Value::Boolean(b)) => Scalar::Boolean(*b.value()),
            Some(Value::Datetime(d)) => Scalar::Datetime(d.value().to_string()),
            Some(Value::Array(_)) => Scalar::Array,
            _ => match self.node {
                Node::Item(Item::ArrayOfTables(_)) => Scalar::Array,
                _ => Scalar::Table,
            },
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        self.node.value().and_then(Value::as_str)
    }

    pub fn is_table(&self) -> bool {
        self.node.table().is_some()
    }

    /// The value as written (`"loud"`, `[1, 2]`), on one line and safe to print.
    pub fn written(&self) -> String {
        self.doc.written(self.node.span())
    }

    /// Where the value is (the key's place when the value has none, e.g. an implicit table).
    pub fn position(&self) -> Position {
        self.doc
            .position(self.node.span().or_else(|| self.key_span.clone()))
    }

    /// Where the key is.
    pub fn key_position(&self) -> Position {
        self.doc
            .position(self.key_span.clone().or_else(|| self.node.span()))
    }

    /// An error about the value, at the value.
    pub fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.position(), message, Some(hint.into()))
    }

    /// An error about the key itself, at the key.
    pub fn key_error(&self, message: impl Into<String>, hint: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.key_position(), message, Some(hint.into()))
    }

    /// The error for a value of the wrong type: "`gates.approval` is `1`, not a string", with
    /// `example` (a value of the right form) in the hint.
    pub fn expected(&self, what: &str, example: &str) -> ConfigError {
        self.error(
            format!("`{}` is `{}`, not {what}", self.path, self.written()),
            format!("write `{} = {example}`", self.key),
        )
    }

    pub fn string(&self, example: &str) -> Result<&'a str, ConfigError> {
        self.as_str()
            .ok_or_else(|| self.expected("a string", example))
    }

    pub fn integer(&self, example: &str) -> Result<i64, ConfigError> {
        match self.scalar() {
            Scalar::Integer(n) => Ok(n),
            _ => Err(self.expected("a whole number", example)),
        }
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.scalar() {
            Scalar::Boolean(b) => Ok(b),
            _ => Err(self.expected("true or false", "true")),
        }
    }

    /// The elements of an array, each with this entry's key and path.
    pub fn array(&self, example: &str) -> Result<Vec<Entry<'a>>, ConfigError> {
        match self.node.value() {
            Some(Value::Array(a)) => Ok(a
                .iter()
                .map(|v| Entry {
                    doc: self.doc,
                    path: self.path.clone(),
                    key: self.key,
                    key_span: self.key_span.clone(),
                    node: Node::Value(v),
                })
                .collect()),
            _ => Err(self.expected("a list", example)),
        }
    }

    /// An array of strings, each with its entry (for errors about one element).
    pub fn strings(&self, example: &str) -> Result<Vec<(&'a str, Entry<'a>)>, ConfigError> {
        self.array(example)?
            .into_iter()
            .map(|e| match e.as_str() {
                Some(s) => Ok((s, e)),
                None => Err(ConfigError::at(
                    &e.position(),
                    format!(
                        "`{}` holds `{}`, which is not a string",
                        self.path,
                        e.written()
                    ),
                    Some(format!("write `{} = {example}`", self.key)),
                )),
            })
            .collect()
    }

    /// The value as a table (`[section]`, a dotted key or an inline `{ … }`).
    pub fn table(&self) -> Result<Table<'a>, ConfigError> {
        match self.node.table() {
            Some(table) => Ok(Table {
                doc: self.doc,
                path: self.path.clone(),
                table,
                span: self.node.span().or_else(|| self.key_span.clone()),
                array: false,
            }),
            None => Err(self.error(
                format!("`{}` is `{}`, not a table", self.path, self.written()),
                format!(
                    "write `[{}]` on its own line and the entries below it",
                    self.path
                ),
            )),
        }
    }

    /// The tables of an array of tables (`[[trust.keys]]` headers or an inline array).
    pub fn tables(&self) -> Result<Vec<Table<'a>>, ConfigError> {
        let wrong = || {
            self.error(
                format!(
                    "`{}` is `{}`, not a list of tables",
                    self.path,
                    self.written()
                ),
                format!("write each entry under its own `[[{}]]` header", self.path),
            )
        };
        let table = |t: &'a dyn TableLike, span: Option<Range<usize>>| Table {
            doc: self.doc,
            path: self.path.clone(),
            table: t,
            span,
            array: true,
        };
        match self.node {
            Node::Item(Item::ArrayOfTables(a)) => {
                Ok(a.iter().map(|t| table(t, t.span())).collect())
            }
            node => match node.value() {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| match v.as_inline_table() {
                        Some(t) => Ok(table(t, v.span())),
                        None => Err(wrong()),
                    })
                    .collect(),
                _ => Err(wrong()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(text, text.rfind('=').unwrap()), (2, 4));
        // Inside a character: the character's own column.
        assert_eq!(line_col(text, 8), (2, 2));
        assert_eq!(line_col(text, 1000), (3, 1));
    }

    #[test]
    fn a_quoted_string_reads_back_as_itself() {
        for s in [
            "/etc/lineage/log.key",
            "C:\\keys\\log.key",
            "a \"b\"\n\u{7}",
            "",
        ] {
            let doc = Document::parse(&format!("k = {}\n", quote(s)), "x").unwrap();
            assert_eq!(doc.section("k").unwrap().as_str(), Some(s));
        }
        assert_eq!(quote("/etc/lineage/log.key"), "\"/etc/lineage/log.key\"");
    }
}
