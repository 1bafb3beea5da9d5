//! What feeds the gates besides builds and deploys: exceptions, retirements, Rego policy
//! tests, and signed provenance (`attest sign`, `attest export`, `verify DIGEST|IMAGE`).
//!
//! Each of these is a fact in the ledger (`Record::Exception`, `Record::Retire`,
//! `Record::Attestation`), so the same append-only log that covers builds covers the waivers
//! and signatures that decide whether a build may ship.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lineage_core::gate::{self, ExceptionRow};
use lineage_core::lifecycle;
use lineage_core::provenance::{self, LedgerVerdict};
use lineage_model::{Digest, Exception, ImageRef, Timestamp};
use serde::Serialize;

use crate::args::{ActorArgs, Format};
use crate::gates::{policy_dirs, policy_files, read_limited, rego_error};
use crate::settings::Settings;
use crate::verify::{Reason, VerifyReport};
use crate::{CliError, Outcome};

#[derive(Debug, Subcommand)]
pub enum ExceptionCmd {
    /// Waive one rule for one service (or `*`) until a date; the waiver is shown in checks.
    Add {
        /// A rule code (`B003`), a rule name (`base-digest-missing`) or a Rego policy's code.
        #[arg(long)]
        rule: String,
        /// The service, or `*` for every service.
        #[arg(long)]
        service: String,
        /// Why the risk is accepted (one line).
        #[arg(long)]
        reason: String,
        /// Who accepted the risk.
        #[arg(long)]
        approved_by: String,
        /// When the waiver lapses: `2026-12-01` (midnight UTC) or an RFC 3339 time.
        #[arg(long)]
        expires: String,
        /// More Rego policies whose codes may be waived.
        #[arg(long, value_name = "DIR")]
        policy_dir: Option<PathBuf>,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Every recorded exception, active and expired.
    List,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The digest (or `REPOSITORY@sha256:…`) that must not be deployed any more.
    pub digest: String,
    /// Why it is withdrawn (one line).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Run the Rego policies' own tests (`test_*` rules in `*_test.rego`), like `opa test`.
    Test {
        /// The policy directory (default: `policies/` beside lineage.toml, else `./policies`).
        #[arg(long, value_name = "DIR")]
        policy_dir: Option<PathBuf>,
    },
    /// List the built-in rules: code, name, default severities and what each checks.
    Rules,
}

/// `lineage attest`: the ledger side (`sign`, `export`) and the registry side (`push`,
/// `pull`, in `registry.rs`) under one command.
#[derive(Debug, Subcommand)]
pub enum AttestAll {
    #[command(flatten)]
    Ledger(AttestCmd),
    #[command(flatten)]
    Registry(crate::registry::AttestCmd),
}

pub fn attest_all(cmd: AttestAll, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        AttestAll::Ledger(cmd) => attest(cmd, s),
        AttestAll::Registry(cmd) => crate::registry::attest(cmd, s),
    }
}

#[derive(Debug, Subcommand)]
pub enum AttestCmd {
    /// Sign a recorded build's SLSA v1 provenance and keep the envelope in the ledger.
    Sign {
        /// The digest (or `REPOSITORY@sha256:…`) of a recorded build.
        digest: String,
        /// The private key (PEM; the passphrase comes from LINEAGE_KEY_PASSWORD or a prompt).
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
    },
    /// Print the newest stored provenance envelope of a digest (DSSE JSON).
    Export {
        /// The build's digest (or `REPOSITORY@sha256:…`).
        digest: String,
    },
}

/// A digest, or the digest of a pinned image reference.
fn parse_digest(input: &str, field: &'static str) -> Result<Digest, CliError> {
    if let Ok(d) = Digest::parse(input) {
        return Ok(d);
    }
    if input.contains('@') || input.contains('/') {
        let image = ImageRef::parse(input).map_err(|e| CliError::from(e.in_field(field)))?;
        return image.digest.ok_or_else(|| {
            CliError::new(
                format!("image reference `{input}` is not pinned by digest"),
                format!(
                    "pass `{}@sha256:<64 hex>` or the digest alone",
                    image.repository
                ),
            )
        });
    }
    Digest::parse(input).map_err(|e| CliError::from(e.in_field(field)))
}

/// Reads a signing key, asking for the passphrase only when the key is encrypted.
/// `flag` is the option the path came from, so the error names what the user typed.
pub fn load_private_key(
    path: &Path,
    flag: &str,
    s: &Settings,
) -> Result<lineage_attest::PrivateKey, CliError> {
    let pem = read_limited(path, 1 << 20)?;
    let passphrase = if pem.contains("ENCRYPTED PRIVATE KEY") {
        Some(s.key_password()?)
    } else {
        None
    };
    lineage_attest::PrivateKey::from_pem(&pem, passphrase.as_deref().map(str::as_bytes)).map_err(
        |e| {
            CliError::new(
                format!("{flag} `{}`: {e}", path.display()),
                "pass a PKCS#8 private key from `lineage key generate`, with its passphrase in LINEAGE_KEY_PASSWORD",
            )
        },
    )
}

pub fn exception(cmd: ExceptionCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        ExceptionCmd::Add {
            rule,
            service,
            reason,
            approved_by,
            expires,
            policy_dir,
            actor,
        } => {
            let files = policy_files(s, policy_dir.as_deref(), false)?;
            let rule = gate::canonical_rule(&rule, &files)?;
            if service != "*" {
                lineage_model::ServiceName::parse(&service)
                    .map_err(|e| CliError::from(e.in_field("--service")))?;
            }
            let approved_by = lineage_model::Identity::parse(&approved_by)
                .map_err(|e| CliError::from(e.in_field("--approved-by")))?;
            let expires = parse_expiry(&expires)?;
            let by = s.actor(actor.by.as_deref())?;
            let setup = crate::gates::gate_setup(s, policy_dir.as_deref())?;
            let mut store = crate::commands::open_write(s, false)?;
            let (index, record) = gate::add_exception(
                store.as_mut(),
                &setup,
                Exception {
                    rule,
                    service,
                    reason,
                    approved_by,
                    expires,
                    by,
                    at: s.now,
                },
                s.now,
            )?;
            match s.format {
                Format::Json => crate::render::json(&serde_json::json!({
                    "schema": 1, "outcome": "recorded", "kind": "exception", "index": index,
                    "exception": record,
                })),
                Format::Human => println!(
                    "recorded exception for {} on `{}`, approved by {} until {} (ledger entry {index})",
                    record.rule,
                    record.service,
                    record.approved_by,
                    record.expires.date()
                ),
            }
            Ok(Outcome::Ok)
        }
        ExceptionCmd::List => {
            let store = crate::commands::open(s, false)?;
            let rows = gate::exception_list(store.as_ref(), s.now)?;
            render_exceptions(s.format, &rows);
            Ok(if rows.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
    }
}

fn render_exceptions(format: Format, rows: &[ExceptionRow]) {
    if format == Format::Json {
        crate::render::json(&serde_json::json!({"schema": 1, "exceptions": rows}));
        return;
    }
    if rows.is_empty() {
        eprintln!("no exceptions recorded");
        return;
    }
    println!(
        "{:<8} {:<20} {:<22} {:<11} {:<8} REASON",
        "RULE", "SERVICE", "APPROVED BY", "EXPIRES", "STATUS"
    );
    for r in rows {
        let x = &r.exception;
        println!(
            "{:<8} {:<20} {:<22} {:<11} {:<8} {}",
            x.rule,
            x.service,
            x.approved_by.to_string(),
            x.expires.date(),
            if r.active { "active" } else { "expired" },
            x.reason
        );
    }
}

/// `2026-12-01` means midnight UTC at the start of that day; otherwise RFC 3339.
fn parse_expiry(input: &str) -> Result<Timestamp, CliError> {
    let is_date = input.len() == 10
        && input.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    let text = if is_date {
        format!("{input}T00:00:00Z")
    } else {
        input.to_string()
    };
    Timestamp::parse(&text).map_err(|e| {
        let mut e = CliError::from(e.in_field("--expires"));
        e.hint = Some("write a date (`2026-12-01`, midnight UTC) or an RFC 3339 time (`2026-12-01T17:00:00Z`)".into());
        e
    })
}

pub fn retire(args: RetireArgs, s: &Settings) -> Result<Outcome, CliError> {
    let digest = parse_digest(&args.digest, "digest")?;
    // Checked before the ledger is opened, by the rule `retire` applies.
    let reason = gate::required_reason(&args.reason, lifecycle::RETIRE_REASON_HINT)?;
    let by = s.actor(args.actor.by.as_deref())?;
    let mut store = crate::commands::open_write(s, false)?;
    let report = lifecycle::retire(store.as_mut(), &digest, &reason, &by, s.now)?;
    let index = report.index;
    match s.format {
        Format::Json => crate::render::json(&serde_json::json!({
            "schema": 1, "outcome": "recorded", "kind": "retire", "index": index,
            "digest": digest.to_string(),
            "service": report.service.map(|s| s.to_string()),
        })),
        Format::Human => println!(
            "retired {digest}: {} (ledger entry {index})",
            report.retirement.reason
        ),
    }
    Ok(Outcome::Ok)
}

pub fn policy(cmd: PolicyCmd, s: &Settings) -> Result<Outcome, CliError> {
    let policy_dir = match cmd {
        PolicyCmd::Test { policy_dir } => policy_dir,
        PolicyCmd::Rules => {
            rules(s.format);
            return Ok(Outcome::Ok);
        }
    };
    let dir = match policy_dir {
        Some(d) => Some(d),
        None => {
            let found = policy_dirs(s, None)?;
            if found.is_empty() {
                Some(PathBuf::from("policies"))
            } else {
                None
            }
        }
    };
    if let Some(d) = &dir {
        if !d.is_dir() {
            return Err(CliError::new(
                format!(
                    "no policy directory `{}` ({})",
                    d.display(),
                    s.config_source
                ),
                "put `*.rego` files in `policies/` beside lineage.toml, or pass `--policy-dir DIR`",
            ));
        }
    }
    // Only the one directory: the default one, or the one given.
    let files = match &dir {
        Some(d) => {
            let mut one = policy_files_in(d)?;
            one.sort();
            one
        }
        None => policy_files(s, None, true)?,
    };
    let report = lineage_policy::policy_test(&files).map_err(rego_error)?;
    match s.format {
        Format::Json => crate::render::json(&WithConfig::new(&report, s)),
        Format::Human => {
            eprintln!("{}", s.config_source);
            print!("{}", report.render())
        }
    }
    Ok(if report.ok() {
        Outcome::Ok
    } else {
        Outcome::NotFound
    })
}

fn rules(format: Format) {
    let severity = |v: lineage_policy::Severity| match v {
        lineage_policy::Severity::Error => "error",
        lineage_policy::Severity::Warn => "warn",
        lineage_policy::Severity::Off => "off",
    };
    let rows: Vec<serde_json::Value> = lineage_policy::RuleId::ALL
        .iter()
        .map(|r| {
            let i = r.info();
            serde_json::json!({
                "code": i.code, "name": i.name, "summary": i.summary, "why": i.why,
                "production": severity(i.default_production), "other": severity(i.default_other),
            })
        })
        .collect();
    if format == Format::Json {
        crate::render::json(&serde_json::json!({"schema": 1, "rules": rows}));
        return;
    }
    println!(
        "{:<5} {:<30} {:<11} {:<6} CHECKS",
        "CODE", "NAME", "PRODUCTION", "OTHER"
    );
    for r in &rows {
        let t = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        println!(
            "{:<5} {:<30} {:<11} {:<6} {}",
            t("code"),
            t("name"),
            t("production"),
            t("other"),
            t("summary")
        );
    }
}

fn policy_files_in(dir: &Path) -> Result<Vec<(String, String)>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::new(
            format!("cannot read policy directory `{}`: {e}", dir.display()),
            "check the path and its permissions",
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rego") && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| Ok((p.display().to_string(), read_limited(&p, 1 << 20)?)))
        .collect()
}

pub fn attest(cmd: AttestCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        AttestCmd::Sign { digest, key } => {
            let digest = parse_digest(&digest, "digest")?;
            let key = load_private_key(&key, "--key", s)?;
            let by = s.actor(None).ok();
            let mut store = crate::commands::open_write(s, false)?;
            let report =
                provenance::attest_recorded(store.as_mut(), &digest, &key, by.as_ref(), s.now)?;
            let index = report.index;
            match s.format {
                Format::Json => crate::render::json(&serde_json::json!({
                    "schema": 1, "outcome": "recorded", "kind": "attestation", "index": index,
                    "digest": digest.to_string(), "service": report.service.to_string(),
                    "predicate_type": report.attestation.predicate_type, "key_id": report.key_id,
                })),
                Format::Human => println!(
                    "signed provenance (SLSA v1) of {digest} for {} with key {} (ledger entry {index})",
                    report.service, report.key_id
                ),
            }
            Ok(Outcome::Ok)
        }
        AttestCmd::Export { digest } => {
            let digest = parse_digest(&digest, "digest")?;
            let store = crate::commands::open(s, false)?;
            match provenance::newest(store.as_ref(), &digest)? {
                Some(att) => {
                    println!("{}", att.envelope);
                    Ok(Outcome::Ok)
                }
                None => {
                    crate::render::not_found(
                        s.format,
                        &format!("no provenance attestation is recorded for `{digest}`"),
                    );
                    Ok(Outcome::NotFound)
                }
            }
        }
    }
}

/// `lineage verify DIGEST|IMAGE`: when the target is not a file but a digest or a pinned
/// image, judge the ledger's provenance attestations for it against `[trust]`. Returns
/// `None` when the target is for the file verifiers.
pub fn verify_ledger(
    target: &Path,
    env: Option<&str>,
    s: &Settings,
) -> Result<Option<Outcome>, CliError> {
    if target.exists() {
        return Ok(None);
    }
    let Some(text) = target.to_str() else {
        return Ok(None);
    };
    let digest = match Digest::parse(text) {
        Ok(d) => d,
        Err(_) => match ImageRef::parse(text).ok().and_then(|r| r.digest) {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    let env = env.map(|e| s.toml.config.environment(e)).transpose()?;
    let policy = s.trust_policy()?;
    if policy.keys.is_empty() {
        return Err(CliError::new(
            format!(
                "no trusted keys to verify `{text}` with ({})",
                s.config_source
            ),
            "list the signing key under `[[trust.keys]]` in lineage.toml (`lineage key generate` prints the entry)",
        ));
    }
    let store = crate::commands::open(s, false)?;
    let verdict = provenance::verify_digest(store.as_ref(), &policy, env.as_ref(), &digest)?;
    let (verified, reason, signers) = match verdict {
        LedgerVerdict::Verified { key } => (true, None, vec![key]),
        LedgerVerdict::NotVerified { code, message } => (
            false,
            Some(Reason {
                code: code.into(),
                message,
            }),
            Vec::new(),
        ),
    };
    let report = VerifyReport {
        schema: 1,
        target: text.to_string(),
        kind: "ledger",
        verified,
        reason,
        signers,
        statement: None,
        logged: Vec::new(),
    };
    match s.format {
        Format::Json => crate::render::json(&WithConfig::new(&report, s)),
        Format::Human => {
            eprintln!("{}", s.config_source);
            crate::verify::render(s.format, &report);
        }
    }
    Ok(Some(if verified {
        Outcome::Ok
    } else {
        Outcome::NotFound
    }))
}

/// A report with the `config` it was judged under (`ConfigSource`), for JSON output.
#[derive(Serialize)]
struct WithConfig<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a T,
    config: &'a lineage_core::ConfigSource,
}

impl<'a, T: Serialize> WithConfig<'a, T> {
    fn new(report: &'a T, s: &'a Settings) -> WithConfig<'a, T> {
        WithConfig {
            report,
            config: &s.config_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_expires_at_midnight_utc() {
        assert_eq!(
            parse_expiry("2026-12-01").unwrap().to_string(),
            "2026-12-01T00:00:00Z"
        );
        assert!(parse_expiry("2026-12-01T10:00:00+01:00").is_ok());
        assert!(parse_expiry("next week").is_err());
    }
}
