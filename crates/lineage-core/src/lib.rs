//! Lineage's use cases: record services, builds and deploys, and answer the incident
//! questions. Every function takes its inputs as checked values, the store and the time, and
//! returns a serializable report; the CLI and the server only render it.
//!
//! Nothing here prints, reads the environment or the clock.

pub mod admission;
pub mod attest_registry;
pub mod builder_output;
pub mod ci;
mod config;
mod config_keys;
mod config_source;
pub mod detect;
pub mod drift;
mod error;
pub mod fleet;
pub mod freshness;
pub mod gate;
pub mod incident;
pub mod init;
pub mod ledger_log;
pub mod lifecycle;
pub mod lineage_graph;
pub mod observe;
pub mod placements;
pub mod provenance;
pub mod query;
pub mod record;
pub mod sbom;
pub mod sbom_registry;
pub mod services;
pub mod tokens;
pub mod vulns;

pub use config::{closest, Config, LineageToml, Promotion, DEFAULT_ENVIRONMENTS};
pub use config_source::{ConfigHow, ConfigSource, CONFIG_FILE, POLICY_DIR};
pub use error::{Error, FieldDiff};
