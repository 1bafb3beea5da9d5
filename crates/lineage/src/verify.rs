//! `lineage verify` and `lineage key`: signatures on files, ours and the ecosystem's.
//!
//! `verify` looks at what it is given and picks the verifier: a DSSE envelope (Lineage,
//! in-toto), a Sigstore bundle (v0.1 to v0.3), a legacy `cosign sign-blob --bundle` file, or
//! a `cosign save` OCI layout directory. Exit 0 verified, 1 failed with the reason, 2 could not
//! decide (unreadable input, unusable key, or keyless material without both
//! `--certificate-identity[-regexp]` and `--certificate-oidc-issuer[-regexp]`: lineage-sigstore
//! refuses to judge a certificate signer without them, and this module only names the flags).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lineage_attest::{
    dsse, KeyKind, PayloadTypes, PrivateKey, PublicKey, RsaScheme, SigEncoding, Statement,
    TrustedKey, VerifyOptions,
};
use lineage_model::Digest;
use lineage_sigstore::{
    Artifact, BundleError, CosignError, IdentityPolicy, Matcher, PolicyError, TrustedRoot,
};
use serde::Serialize;

use crate::args::Format;
use crate::settings::Settings;
use crate::{CliError, Outcome};

/// Files larger than this are refused: no signature file is this big.
const MAX_INPUT: u64 = 32 << 20;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A DSSE envelope, a Sigstore bundle, a legacy cosign bundle, or an OCI layout directory.
    pub target: PathBuf,
    /// A trusted public key (PEM); repeat for several. DSSE envelopes need at least one.
    #[arg(long = "key", value_name = "PEM")]
    pub keys: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed a DSSE envelope.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threshold: u16,
    /// Accept hex-encoded signatures, as written by older in-toto and securesystemslib.
    #[arg(long)]
    pub legacy_hex: bool,
    /// Treat RSA keys as PKCS#1 v1.5 instead of PSS.
    #[arg(long)]
    pub rsa_pkcs1: bool,
    /// Accept in-toto payloads that are not Statements (e.g. v0.9 links).
    #[arg(long)]
    pub any_payload: bool,
    /// Sigstore trusted root (`trusted_root.json`) for bundles and keyless cosign signatures.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless material: the signer's identity (certificate SAN), exactly. Keyless
    /// verification needs an identity and an issuer.
    #[arg(long)]
    pub certificate_identity: Option<String>,
    /// Keyless material: a regular expression the signer's identity must match (unanchored).
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless material: the OIDC issuer of the signer's certificate, exactly.
    #[arg(long)]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless material: a regular expression the OIDC issuer must match (unanchored).
    #[arg(long)]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// The signed artifact, for message-signature bundles.
    #[arg(long, value_name = "FILE")]
    pub artifact: Option<PathBuf>,
    /// The signed artifact's digest, instead of `--artifact`.
    #[arg(long, value_name = "DIGEST")]
    pub artifact_digest: Option<String>,
    /// For OCI layouts: the image manifest digest the signature must name.
    #[arg(long, value_name = "DIGEST")]
    pub image_digest: Option<String>,
    /// Notation: the Notary Project `trustpolicy.json` that judges the signature.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// Notation: the trust store directory (`truststore/`, holding `x509/{ca,signingAuthority,tsa}/NAME/`).
    #[arg(long, value_name = "DIR")]
    pub trust_store: Option<PathBuf>,
    /// Notation: the signed image, `REGISTRY/REPOSITORY@sha256:<64 hex>` (the repository picks
    /// the trust policy). Not needed when TARGET is the image itself, in a registry.
    #[arg(long, value_name = "REF")]
    pub artifact_ref: Option<String>,
    /// Notation, TARGET in a registry: a registry that is reached over plain HTTP (repeat).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// For a DIGEST or IMAGE target: judge the ledger's provenance with the `[trust]` keys
    /// for this environment.
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Generate a signing key: an encrypted PKCS#8 private key and its public key.
    Generate {
        /// The key's name; files are NAME.key and NAME.pub.
        #[arg(long, default_value = "lineage")]
        name: String,
        /// `ecdsa-p256` (default, cosign-compatible) or `ed25519`.
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// Where to write (default: `keys/` beside the ledger).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List local keys and the keys the trust policy in lineage.toml trusts.
    List {
        /// Where the keys are (default: `keys/` beside the ledger).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The outcome of one verification, in a common shape for every kind of input.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub schema: u32,
    pub target: String,
    /// `dsse`, `sigstore-bundle`, `cosign-legacy-bundle` or `oci-layout`.
    pub kind: &'static str,
    pub verified: bool,
    /// Stable code and sentence when not verified.
    pub reason: Option<Reason>,
    /// Who signed: key ids, or certificate identity and issuer.
    pub signers: Vec<String>,
    /// The in-toto Statement's type and subjects, when the payload is one.
    pub statement: Option<StatementSummary>,
    /// Failures the verification level only logs (Notation `permissive`/`audit`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logged: Vec<Reason>,
}

#[derive(Debug, Serialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct StatementSummary {
    pub predicate_type: String,
    pub subjects: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    crate::input::read_bytes(path, MAX_INPUT)
}

fn load_keys(args: &VerifyArgs) -> Result<Vec<TrustedKey>, CliError> {
    let scheme = if args.rsa_pkcs1 {
        RsaScheme::Pkcs1Sha256
    } else {
        RsaScheme::default()
    };
    args.keys
        .iter()
        .map(|p| {
            let pem = String::from_utf8(read(p)?).map_err(|_| {
                CliError::new(
                    format!("`{}` is not PEM text", p.display()),
                    "pass a PEM public key (`-----BEGIN PUBLIC KEY-----`)",
                )
            })?;
            let key = PublicKey::from_pem_with(&pem, scheme).map_err(|e| {
                CliError::new(
                    format!("--key `{}`: {e}", p.display()),
                    "pass a PEM SubjectPublicKeyInfo public key",
                )
            })?;
            Ok(TrustedKey::new(key))
        })
        .collect()
}

fn identity_policy(args: &VerifyArgs) -> Result<IdentityPolicy, CliError> {
    let matcher = |exact: &Option<String>,
                   re: &Option<String>,
                   flag: &str|
     -> Result<Option<Matcher>, CliError> {
        match (exact, re) {
            (Some(_), Some(_)) => Err(CliError::new(
                format!("both `--{flag}` and `--{flag}-regexp` given"),
                "pass one of them",
            )),
            (Some(e), None) => Ok(Some(Matcher::exact(e.clone()))),
            (None, Some(r)) => Matcher::regex(r).map(Some).map_err(|e| {
                // The regex crate's message draws a caret diagram over several lines; its last
                // line says what is wrong.
                let e = e.to_string();
                let why = e.lines().last().unwrap_or_default().trim();
                let why = why.strip_prefix("error: ").unwrap_or(why);
                let example = if flag == "certificate-oidc-issuer" {
                    r"'^https://token\.actions\.githubusercontent\.com$'"
                } else {
                    r"'^https://github\.com/acme/'"
                };
                CliError::new(
                    format!("--{flag}-regexp `{r}` is not a valid regular expression: {why}"),
                    format!(
                        "write a Go/RE2-style regular expression, e.g. `--{flag}-regexp {example}`"
                    ),
                )
            }),
            (None, None) => Ok(None),
        }
    };
    let identity = matcher(
        &args.certificate_identity,
        &args.certificate_identity_regexp,
        "certificate-identity",
    )?;
    let issuer = matcher(
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
        "certificate-oidc-issuer",
    )?;
    // Partial here is fine: lineage-sigstore decides, once it sees the signer, whether the
    // policy can judge it (a certificate needs both identity and issuer; a key needs neither).
    let mut policy = IdentityPolicy {
        identity,
        issuer,
        ..IdentityPolicy::default()
    };
    if let Some(p) = args.keys.first() {
        let pem = String::from_utf8(read(p)?).unwrap_or_default();
        policy.key = Some(lineage_sigstore::keys::from_pem(&pem).map_err(|e| {
            CliError::new(
                format!("--key `{}`: {e}", p.display()),
                "pass a PEM public key",
            )
        })?);
    }
    Ok(policy)
}

/// A certificate signer and an incomplete identity policy: name the missing flags and show
/// them. The hint's values are an example, never the certificate's own identity: copying
/// whoever signed into the policy would trust any signer.
fn policy_refused(target: &str, e: PolicyError) -> CliError {
    const IDENTITY: &str = "--certificate-identity https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main";
    const ISSUER: &str = "--certificate-oidc-issuer https://token.actions.githubusercontent.com";
    const IDENTITY_RE: &str = r"--certificate-identity-regexp '^https://github\.com/acme/'";
    const ISSUER_RE: &str =
        r"--certificate-oidc-issuer-regexp '^https://token\.actions\.githubusercontent\.com$'";
    let (missing, hint) = match (e.missing_identity(), e.missing_issuer()) {
        (true, true) => (
            "`--certificate-identity` and `--certificate-oidc-issuer` are required (without them any Sigstore user's signature would verify)",
            format!("add `{IDENTITY} {ISSUER}` (or the `-regexp` forms, e.g. `{IDENTITY_RE}`)"),
        ),
        (true, false) => (
            "`--certificate-identity` is required as well as the issuer",
            format!("add `{IDENTITY}` (or `{IDENTITY_RE}`)"),
        ),
        _ => (
            "`--certificate-oidc-issuer` is required as well as the identity",
            format!("add `{ISSUER}` (or `{ISSUER_RE}`)"),
        ),
    };
    CliError::new(format!("`{target}` is signed keyless: {missing}"), hint)
}

fn trusted_root(args: &VerifyArgs) -> Result<TrustedRoot, CliError> {
    let Some(path) = &args.trusted_root else {
        return Err(CliError::new(
            "verifying Sigstore material needs a trusted root",
            "pass `--trusted-root trusted_root.json` (verification is offline: Lineage never fetches it)",
        ));
    };
    TrustedRoot::from_json(&read(path)?).map_err(|e| {
        CliError::new(
            format!("--trusted-root `{}`: {e}", path.display()),
            "pass a Sigstore trusted_root.json",
        )
    })
}

pub fn verify(args: VerifyArgs, s: &Settings) -> Result<Outcome, CliError> {
    // Not a file but a digest or pinned image: verify the ledger's provenance for it.
    // (Unless a Notation trust policy is given: then a pinned image is read from its registry.)
    if args.trust_policy.is_none() {
        if let Some(outcome) =
            crate::gates_admin::verify_ledger(&args.target, args.env.as_deref(), s)?
        {
            return Ok(outcome);
        }
    }
    let target = args.target.display().to_string();
    let report = if args.trust_policy.is_some() {
        verify_notation(&args, &target, s)?
    } else if args.target.is_dir() {
        verify_layout(&args, &target)?
    } else {
        let bytes = read(&args.target)?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            CliError::new(
                format!("`{target}` is not JSON: {e}"),
                "pass a DSSE envelope, a Sigstore bundle or an OCI layout directory",
            )
        })?;
        if json.get("mediaType").is_some() {
            verify_bundle(&args, &target, &bytes)?
        } else if json.get("protected").is_some() && json.get("signature").is_some() {
            return Err(CliError::new(
                format!("`{target}` is a Notation (JWS) signature"),
                "pass `--trust-policy trustpolicy.json --trust-store truststore/ --artifact-ref REGISTRY/REPO@sha256:<64 hex>`",
            ));
        } else if json.get("payloadType").is_some() {
            verify_dsse(&args, &target, &bytes)?
        } else if json.get("base64Signature").is_some() && json.get("rekorBundle").is_some() {
            verify_legacy(&args, &target, &bytes)?
        } else {
            return Err(CliError::new(
                format!("`{target}` is neither a DSSE envelope, a Sigstore bundle nor a cosign bundle"),
                "DSSE envelopes have `payloadType`, Sigstore bundles `mediaType`, cosign sign-blob bundles `base64Signature`",
            ));
        }
    };
    render(s.format, &report);
    Ok(if report.verified {
        Outcome::Ok
    } else {
        Outcome::NotFound
    })
}

fn verify_dsse(args: &VerifyArgs, target: &str, bytes: &[u8]) -> Result<VerifyReport, CliError> {
    let keys = load_keys(args)?;
    if keys.is_empty() {
        return Err(CliError::new(
            "no trusted key to verify the envelope with",
            "pass `--key PUBLIC.pem` (repeat for several keys and use `--threshold N`)",
        ));
    }
    let options = VerifyOptions {
        threshold: usize::from(args.threshold),
        payload_types: PayloadTypes::Any,
        sig_encoding: if args.legacy_hex {
            SigEncoding::HexLegacy
        } else {
            SigEncoding::Base64
        },
    };
    let outcome = dsse::verify_json(bytes, &keys, &options);
    let mut report = VerifyReport {
        schema: 1,
        target: target.to_string(),
        kind: "dsse",
        verified: outcome.is_verified(),
        reason: outcome.failure.as_ref().map(|f| Reason {
            code: f.code().to_string(),
            message: f.to_string(),
        }),
        signers: outcome.verified_keys.clone(),
        statement: None,
        logged: Vec::new(),
    };
    if report.verified {
        let envelope = dsse::Envelope::from_json_with(bytes, options.sig_encoding)
            .map_err(|e| CliError::new(format!("`{target}`: {e}"), "pass a DSSE envelope"))?;
        if envelope.payload_type == dsse::IN_TOTO_PAYLOAD_TYPE {
            match Statement::from_json(&envelope.payload) {
                Ok(st) => report.statement = Some(summary(&st)),
                Err(e) if !args.any_payload => {
                    report.verified = false;
                    report.reason = Some(Reason {
                        code: "not-a-statement".into(),
                        message: format!("the signature is valid, but the payload is not an in-toto Statement ({e}); pass `--any-payload` to accept other in-toto payloads such as links"),
                    });
                }
                Err(_) => {}
            }
        }
    }
    Ok(report)
}

fn summary(st: &Statement) -> StatementSummary {
    let v = serde_json::to_value(st).unwrap_or_default();
    let subjects = v["subject"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let digest = s["digest"]
                        .as_object()
                        .and_then(|d| {
                            d.iter()
                                .next()
                                .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
                        })
                        .unwrap_or_default();
                    format!("{}@{digest}", s["name"].as_str().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    StatementSummary {
        predicate_type: v["predicateType"].as_str().unwrap_or_default().to_string(),
        subjects,
    }
}

fn artifact_bytes(args: &VerifyArgs) -> Result<(Option<Vec<u8>>, Option<Digest>), CliError> {
    let bytes = args.artifact.as_deref().map(read).transpose()?;
    let digest = args
        .artifact_digest
        .as_deref()
        .map(|d| Digest::parse(d).map_err(|e| CliError::from(e.in_field("--artifact-digest"))))
        .transpose()?;
    Ok((bytes, digest))
}

fn sigstore_report(
    target: &str,
    kind: &'static str,
    v: lineage_sigstore::Verification,
) -> VerifyReport {
    let json = serde_json::to_value(&v).unwrap_or_default();
    let reason = v.failure().map(|c| Reason {
        code: serde_json::to_value(c.reason.as_ref())
            .ok()
            .and_then(|r| r.as_str().map(str::to_string))
            .unwrap_or_else(|| c.name.to_string()),
        message: format!("{}: {}", c.name, c.detail),
    });
    let signer = &json["signer"];
    let signers = match signer["kind"].as_str() {
        Some("certificate") => signer["identities"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{} (issuer {})",
                    i.as_str().unwrap_or_default(),
                    signer["issuer"].as_str().unwrap_or("unknown")
                )
            })
            .collect(),
        Some(_) => vec![format!(
            "key {}",
            signer["key_id"].as_str().unwrap_or_default()
        )],
        None => Vec::new(),
    };
    let statement = json
        .get("statement")
        .filter(|s| !s.is_null())
        .and_then(|st| Statement::from_value(st.clone()).ok().map(|s| summary(&s)));
    VerifyReport {
        schema: 1,
        target: target.to_string(),
        kind,
        verified: v.verified,
        reason,
        signers,
        statement,
        logged: Vec::new(),
    }
}

fn verify_bundle(args: &VerifyArgs, target: &str, bytes: &[u8]) -> Result<VerifyReport, CliError> {
    let root = trusted_root(args)?;
    let policy = identity_policy(args)?;
    let (artifact, digest) = artifact_bytes(args)?;
    let artifact = match (&artifact, &digest) {
        (Some(b), _) => Artifact::Bytes(b),
        (None, Some(d)) => Artifact::Digest(d),
        (None, None) => Artifact::Any,
    };
    let v =
        lineage_sigstore::verify_bundle_json(bytes, artifact, &root, &policy).map_err(
            |e| match e {
                BundleError::Policy(p) => policy_refused(target, p),
                e => CliError::new(
                    format!("`{target}`: {e}"),
                    "pass a Sigstore bundle (`*.sigstore.json`)",
                ),
            },
        )?;
    Ok(sigstore_report(target, "sigstore-bundle", v))
}

fn verify_legacy(args: &VerifyArgs, target: &str, bytes: &[u8]) -> Result<VerifyReport, CliError> {
    let root = trusted_root(args)?;
    let policy = identity_policy(args)?;
    let (artifact, digest) = artifact_bytes(args)?;
    let artifact = match (&artifact, &digest) {
        (Some(b), _) => Artifact::Bytes(b),
        (None, Some(d)) => Artifact::Digest(d),
        (None, None) => Artifact::Any,
    };
    let v = lineage_sigstore::verify_legacy_cosign_bundle(bytes, artifact, &root, &policy)
        .map_err(|e| match e {
            CosignError::Policy(p) => policy_refused(target, p),
            e => CliError::new(
                format!("`{target}`: {e}"),
                "pass a `cosign sign-blob --bundle` file",
            ),
        })?;
    Ok(sigstore_report(target, "cosign-legacy-bundle", v))
}

fn verify_layout(args: &VerifyArgs, target: &str) -> Result<VerifyReport, CliError> {
    let Some(d) = &args.image_digest else {
        return Err(CliError::new(
            "verifying an OCI layout needs the image digest the signature must name",
            "pass `--image-digest sha256:<64 hex>`",
        ));
    };
    let digest = Digest::parse(d).map_err(|e| CliError::from(e.in_field("--image-digest")))?;
    let root = trusted_root(args)?;
    let policy = identity_policy(args)?;
    let v = lineage_sigstore::verify_oci_layout(&args.target, &digest, &policy, &root).map_err(
        |e| match e {
            CosignError::Policy(p) => policy_refused(target, p),
            e => CliError::new(
                format!("`{target}`: {e}"),
                "pass a directory written by `cosign save`",
            ),
        },
    )?;
    Ok(sigstore_report(target, "oci-layout", v))
}

/// A Notation signature (a JWS envelope file, or the referrers in an OCI layout directory),
/// judged by `lineage_sigstore::notation` against the trust policy and store.
fn verify_notation(
    args: &VerifyArgs,
    target: &str,
    s: &Settings,
) -> Result<VerifyReport, CliError> {
    use lineage_sigstore::notation::{
        self, NotationError, Subject, TrustPolicyDocument, TrustStore,
    };
    let policy_path = args.trust_policy.as_ref().expect("checked by the caller");
    let policies = TrustPolicyDocument::from_json(&read(policy_path)?).map_err(|e| {
        CliError::new(
            format!("--trust-policy `{}`: {e}", policy_path.display()),
            "pass a Notary Project trustpolicy.json (`\"version\": \"1.0\"`, `trustPolicies`)",
        )
    })?;
    let Some(store_dir) = &args.trust_store else {
        return Err(CliError::new(
            "verifying a Notation signature needs its trust store",
            "pass `--trust-store DIR` (the folder holding `x509/ca/NAME/`)",
        ));
    };
    let store = TrustStore::from_dir(store_dir).map_err(|e| {
        CliError::new(
            e.to_string(),
            "pass the folder holding `x509/{ca,signingAuthority,tsa}/NAME/`",
        )
    })?;
    let hint = "pass `--artifact-ref REGISTRY/REPOSITORY@sha256:<64 hex>`";
    // A TARGET that is no file or directory is the signed image in a registry: its Notation
    // signatures are its OCI referrers.
    let remote = if args.target.exists() {
        None
    } else {
        let image = lineage_model::ImageRef::parse(target)
            .map_err(|e| CliError::from(e.in_field("TARGET")))?;
        if image.digest.is_none() {
            return Err(CliError::new(
                format!("`{target}` is not pinned to a digest"),
                format!(
                    "verify `{}@sha256:<64 hex>`: a signature is for a digest, never a tag",
                    image.repository
                ),
            ));
        }
        Some(image)
    };
    let reference = match (&remote, &args.artifact_ref) {
        (Some(image), _) => format!(
            "{}@{}",
            image.repository,
            image.digest.as_ref().expect("checked above")
        ),
        (None, Some(r)) => r.clone(),
        (None, None) => {
            return Err(CliError::new(
                "verifying a Notation signature needs the signed image",
                hint,
            ))
        }
    };
    let Some((repository, digest)) = reference.rsplit_once('@') else {
        return Err(CliError::new(
            format!("--artifact-ref `{reference}` names no digest"),
            hint,
        ));
    };
    let digest = Digest::parse(digest).map_err(|e| CliError::from(e.in_field("--artifact-ref")))?;
    let digest = digest.to_string();
    let subject = Subject {
        repository,
        digest: &digest,
    };
    // The settings' clock (`LINEAGE_NOW` when pinned), like every other judgement in time.
    let now = time::OffsetDateTime::from_unix_timestamp(s.now.unix())
        .expect("a checked timestamp is in range");
    let refused = |e: NotationError| match e {
        NotationError::NoPolicy(_) => CliError::new(
            format!("`{target}`: {e}"),
            format!("add `\"{repository}\"` (or `\"*\"`) to a trust policy's `registryScopes`"),
        ),
        e => CliError::new(
            format!("`{target}`: {e}"),
            "pass a JWS Notation signature (`application/jose+json`)",
        ),
    };
    let (kind, v) = if let Some(image) = &remote {
        let conn =
            crate::registry::connect(s, &args.insecure_registries, image.repository.registry())?;
        let pulled = lineage_registry::pull_attached(&conn.client, image, notation::ARTIFACT_TYPE)
            .map_err(|e| {
                CliError::new(
                    format!("cannot read the referrers of `{target}`: {e}"),
                    "check the registry and the image (`lineage inspect REF` shows its referrers)",
                )
            })?;
        let envelopes = pulled
            .into_iter()
            .map(|p| (p.payload_media_type, p.payload));
        match notation::verify_notation_envelopes(envelopes, subject, &policies, &store, now)
            .map_err(refused)?
        {
            Some(v) => ("notation-registry", v),
            None => {
                return Ok(VerifyReport {
                    schema: 1,
                    target: target.to_string(),
                    kind: "notation-registry",
                    verified: false,
                    reason: Some(Reason {
                        code: "no-signature".into(),
                        message: format!(
                            "`{target}` has no Notation signature (`{}`) among its referrers",
                            notation::ARTIFACT_TYPE
                        ),
                    }),
                    signers: Vec::new(),
                    statement: None,
                    logged: Vec::new(),
                });
            }
        }
    } else if args.target.is_dir() {
        match notation::verify_notation_layout(&args.target, subject, &policies, &store, now)
            .map_err(refused)?
        {
            Some(v) => ("notation-oci-layout", v),
            None => {
                return Ok(VerifyReport {
                    schema: 1,
                    target: target.to_string(),
                    kind: "notation-oci-layout",
                    verified: false,
                    reason: Some(Reason {
                        code: "no-signature".into(),
                        message: format!(
                            "no Notation signature (`{}`) for `{digest}` in the layout",
                            notation::ARTIFACT_TYPE
                        ),
                    }),
                    signers: Vec::new(),
                    statement: None,
                    logged: Vec::new(),
                });
            }
        }
    } else {
        let bytes = read(&args.target)?;
        let media_type = if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            notation::JWS_MEDIA_TYPE
        } else {
            notation::COSE_MEDIA_TYPE
        };
        let v = notation::verify_notation(&bytes, media_type, subject, &policies, &store, now)
            .map_err(refused)?;
        ("notation", v)
    };
    let code = |c: &notation::NotationCheck| Reason {
        code: c.reason.unwrap_or("failed").to_string(),
        message: format!(
            "{}: {}",
            serde_json::to_value(c.step)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.detail
        ),
    };
    Ok(VerifyReport {
        schema: 1,
        target: target.to_string(),
        kind,
        verified: v.verified,
        reason: v.failure().map(code),
        signers: v
            .signer
            .iter()
            .map(|s| {
                format!(
                    "{s} (policy `{}`, level {})",
                    v.policy,
                    serde_json::to_value(v.level)
                        .ok()
                        .and_then(|l| l.as_str().map(str::to_string))
                        .unwrap_or_default()
                )
            })
            .collect(),
        statement: None,
        logged: v
            .checks
            .iter()
            .filter(|c| c.outcome == "logged")
            .map(code)
            .collect(),
    })
}

pub(crate) fn render(format: Format, r: &VerifyReport) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("reports serialise")
        );
        return;
    }
    if r.verified {
        println!("verified: {} ({})", r.target, r.kind);
    } else {
        println!("NOT verified: {} ({})", r.target, r.kind);
    }
    if let Some(reason) = &r.reason {
        println!("  reason     [{}] {}", reason.code, reason.message);
    }
    for l in &r.logged {
        println!("  logged     [{}] {}", l.code, l.message);
    }
    for s in &r.signers {
        println!("  signed by  {s}");
    }
    if let Some(st) = &r.statement {
        println!("  statement  {}", st.predicate_type);
        for subject in &st.subjects {
            println!("  subject    {subject}");
        }
    }
}

/// Where keys live when `--dir` is not given: `keys/` beside the ledger.
fn key_dir(s: &Settings, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| match &s.store {
        lineage_store::StoreLocation::Sqlite(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("keys"),
        lineage_store::StoreLocation::Postgres(_) => PathBuf::from(".lineage").join("keys"),
    })
}

pub fn key(cmd: KeyCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        KeyCmd::Generate {
            name,
            algorithm,
            dir,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(CliError::new(
                    format!("--name `{name}` is not a plain file name"),
                    "use letters, digits, `-`, `_` and `.`, e.g. `ci-2026`",
                ));
            }
            let kind: KeyKind = algorithm.parse().map_err(|e: String| {
                CliError::new(
                    format!("--algorithm: {e}"),
                    "write `ecdsa-p256` or `ed25519`",
                )
            })?;
            let passphrase = s.key_password()?;
            let dir = key_dir(s, dir);
            let (private, public) = (
                dir.join(format!("{name}.key")),
                dir.join(format!("{name}.pub")),
            );
            if private.exists() || public.exists() {
                return Err(CliError::new(
                    format!("`{}` already exists", private.display()),
                    "pick another `--name`; Lineage never overwrites a key",
                ));
            }
            let key = PrivateKey::generate(kind).map_err(|e| {
                CliError::new(
                    format!("cannot generate a key: {e}"),
                    "report this as a bug",
                )
            })?;
            let pem = key.to_encrypted_pem(passphrase.as_bytes()).map_err(|e| {
                CliError::new(
                    format!("cannot encrypt the key: {e}"),
                    "report this as a bug",
                )
            })?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                CliError::new(
                    format!("cannot create `{}`: {e}", dir.display()),
                    "check permissions",
                )
            })?;
            write_new_file(&private, pem.as_bytes(), true)?;
            std::fs::write(&public, key.public_key().to_pem()).map_err(|e| {
                CliError::new(
                    format!("cannot write `{}`: {e}", public.display()),
                    "check permissions",
                )
            })?;
            let out = serde_json::json!({
                "schema": 1,
                "name": name,
                "algorithm": key.public_key().algorithm().as_str(),
                "key_id": key.key_id(),
                "private_key": private.display().to_string(),
                "public_key": public.display().to_string(),
            });
            match s.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&out).expect("json")),
                Format::Human => {
                    println!(
                        "generated {} key `{name}`",
                        key.public_key().algorithm().as_str()
                    );
                    println!("  key id       {}", key.key_id());
                    println!("  private key  {} (encrypted PKCS#8)", private.display());
                    println!("  public key   {}", public.display());
                    println!("  trust it for builds in lineage.toml:");
                    println!("    [[trust.keys]]\n    id = \"{name}\"\n    public_key_file = \"{}\"\n    roles = [\"builder\"]", public.display());
                }
            }
            Ok(Outcome::Ok)
        }
        KeyCmd::List { dir } => {
            let dir = key_dir(s, dir);
            let mut local = Vec::new();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                paths.sort();
                for p in paths
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                {
                    let Ok(pem) = std::fs::read_to_string(p) else {
                        continue;
                    };
                    let Ok(key) = PublicKey::from_pem(&pem) else {
                        continue;
                    };
                    local.push(serde_json::json!({
                        "name": p.file_stem().map(|n| n.to_string_lossy().to_string()),
                        "algorithm": key.algorithm().as_str(),
                        "key_id": key.key_id(),
                        "public_key": p.display().to_string(),
                        "has_private_key": p.with_extension("key").exists(),
                    }));
                }
            }
            let trusted = s.trust_policy()?;
            let trusted: Vec<serde_json::Value> = trusted
                .keys
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "id": k.id,
                        "key_id": k.public_key.key_id(),
                        "algorithm": k.public_key.algorithm().as_str(),
                        "roles": k.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                        "environments": k.environments.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        "not_before": k.not_before.map(|t| t.to_string()),
                        "not_after": k.not_after.map(|t| t.to_string()),
                        "revoked_at": k.revoked_at.map(|t| t.to_string()),
                    })
                })
                .collect();
            match s.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"schema": 1, "local": local, "trusted": trusted, "config": s.config_source})
                    )
                    .expect("json")
                ),
                Format::Human => {
                    eprintln!("{}", s.config_source);
                    println!("local keys in {}", dir.display());
                    if local.is_empty() {
                        println!("  (none; `lineage key generate` makes one)");
                    }
                    for k in &local {
                        println!(
                            "  {:<16} {:<18} {}{}",
                            k["name"].as_str().unwrap_or_default(),
                            k["algorithm"].as_str().unwrap_or_default(),
                            k["key_id"].as_str().unwrap_or_default(),
                            if k["has_private_key"] == true {
                                "  (private key present)"
                            } else {
                                ""
                            }
                        );
                    }
                    println!("trusted keys (lineage.toml [trust])");
                    if trusted.is_empty() {
                        println!("  (none)");
                    }
                    for k in &trusted {
                        let window = match (k["not_before"].as_str(), k["not_after"].as_str()) {
                            (None, None) => String::new(),
                            (a, b) => {
                                format!("  valid {} to {}", a.unwrap_or("…"), b.unwrap_or("…"))
                            }
                        };
                        let revoked = k["revoked_at"]
                            .as_str()
                            .map(|r| format!("  REVOKED at {r}"))
                            .unwrap_or_default();
                        println!(
                            "  {:<16} roles {}  envs {}{window}{revoked}",
                            k["id"].as_str().unwrap_or_default(),
                            k["roles"],
                            if k["environments"].as_array().is_some_and(|a| a.is_empty()) {
                                "all".to_string()
                            } else {
                                k["environments"].to_string()
                            },
                        );
                    }
                }
            }
            Ok(Outcome::Ok)
        }
    }
}

/// Creates `path` (never over an existing file), writes `bytes` and syncs them; `private`
/// files are made 0600 at creation, so there is no moment a key is readable by others.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let fail = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it exists already; choose another path or remove it first"
        } else {
            "check permissions and free space"
        };
        CliError::new(format!("cannot write `{}`: {e}", path.display()), hint)
    };
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            fail(e)
        })
}
