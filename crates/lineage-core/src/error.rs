//! Why a use case could not complete. Each error knows the hint a user needs.

use lineage_model::{ParseError, Repository};
use lineage_store::StoreError;

/// A field whose stored and new values differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub recorded: String,
    pub given: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Parse(ParseError),
    /// `lineage.toml` is not TOML, names a section or key it does not have, or holds a value
    /// of the wrong form, at `file:line:column` (every section; see `config::LineageToml`).
    #[error(transparent)]
    Config(#[from] lineage_toml::ConfigError),
    #[error("environment `{given}` is not configured")]
    UnknownEnvironment {
        given: String,
        suggestion: Option<String>,
        configured: String,
    },
    #[error("service `{0}` is not known")]
    UnknownService(String),
    #[error("service `{0}` already exists")]
    ServiceExists(String),
    #[error("no service owns image repository `{0}`")]
    NoServiceForImage(Repository),
    #[error("image repository `{image}` already belongs to service `{owner}`")]
    ImageClaimed { image: Repository, owner: String },
    #[error("digest `{digest}` is already recorded with a different build ({})", .fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "))]
    BuildConflict {
        digest: String,
        fields: Vec<FieldDiff>,
    },
    #[error("{file}:{line}: {message}")]
    Import {
        file: String,
        line: usize,
        message: String,
        hint: String,
    },
    #[error("{0}")]
    Invalid(String, String),
    /// A Rego policy could not be loaded or evaluated: the gate could not decide.
    #[error(transparent)]
    Policy(#[from] lineage_policy::RegoError),
    /// A change the rules do not allow (an exception nobody may approve, a time in the
    /// future): bad input, nothing written.
    #[error("{0}")]
    Refused(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Error {
        Error::Parse(e)
    }
}

impl Error {
    /// What the user should type or do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Parse(e) => Some(e.hint.clone()),
            Error::Config(e) => Some(e.hint.clone().unwrap_or_else(|| {
                "fix the file; the `lineage.toml` section of README.md lists every setting".into()
            })),
            Error::UnknownEnvironment {
                suggestion,
                configured,
                ..
            } => Some(match suggestion {
                Some(s) => format!("did you mean `{s}`? configured environments: {configured}"),
                None => format!(
                    "configured environments: {configured}; add others under [environments] in lineage.toml"
                ),
            }),
            Error::UnknownService(name) => Some(format!(
                "register it first: `lineage service add {name} --owner EMAIL --image REPOSITORY`"
            )),
            Error::ServiceExists(name) => Some(format!(
                "change its owner with `lineage service set-owner {name} --owner EMAIL`"
            )),
            Error::NoServiceForImage(image) => Some(format!(
                "register the service: `lineage service add NAME --owner EMAIL --image {image}`, or pass `--service NAME`"
            )),
            Error::ImageClaimed { owner, .. } => Some(format!(
                "an image repository belongs to one service; remove it from `{owner}` first or use another repository"
            )),
            Error::BuildConflict { fields, .. } => Some(format!(
                "a digest identifies one build; {}. If the earlier record is wrong, that is worth investigating before recording anything",
                fields
                    .iter()
                    .map(|f| format!("{}: recorded `{}`, given `{}`", f.field, f.recorded, f.given))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Error::Import { hint, .. } => Some(hint.clone()),
            Error::Invalid(_, hint) | Error::Refused(_, hint) => Some(hint.clone()),
            Error::Policy(_) => {
                Some("fix the policy at that position; `lineage policy test` runs its tests".into())
            }
            Error::Store(StoreError::Missing(_)) => Some(
                "record something first (`lineage service add …`), or point `--store` / LINEAGE_STORE at an existing ledger".into(),
            ),
            Error::Store(StoreError::NotLineage { .. }) => {
                Some("pass `--store` with the path of a Lineage ledger; this file was left untouched".into())
            }
            Error::Store(StoreError::NewerSchema { .. }) => {
                Some("upgrade lineage; this file was left untouched".into())
            }
            Error::Store(StoreError::RecordedBeforeLast { last, .. }) => Some(format!(
                "check this machine's clock; if LINEAGE_NOW is set, set it to `{last}` or later, or unset it"
            )),
            Error::Store(StoreError::Io { .. }) => Some(
                "check free space (`df`) and that the ledger's directory is writable; nothing was written (reads still work on a full disk)".into(),
            ),
            Error::Store(_) => None,
        }
    }
}
