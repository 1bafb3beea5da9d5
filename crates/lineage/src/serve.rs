//! `lineage serve`, `lineage token …`, `lineage k8s webhook-config`, and `--server URL`: the
//! CLI as a client of a Lineage server, with the same output as when it works locally.
//!
//! The server itself lives in `lineage-server`; this module resolves settings for it, sets up
//! logging and the runtime, and renders what it returns with the CLI's own renderers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use lineage_core::gate::{self, Decision};
use lineage_core::ledger_log;
use lineage_core::query::{RunningReport, TraceReport};
use lineage_core::record::RecordReport;
use lineage_core::tokens;
use lineage_model::{Identity, ImageRef, Timestamp};

use crate::args::{BuildCmd, Command, DeployCmd, Format};
use crate::render;
use crate::settings::{Settings, ENV_NOW, ENV_TOKEN};
use crate::{CliError, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// PEM certificate chain; serve HTTPS (the admission webhook needs it).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Log lines as text or JSON (to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = lineage_server::DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub body_limit: usize,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub request_timeout: u64,
    /// How often (milliseconds) the admission index looks for new ledger entries.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub poll_interval: u64,
    /// Log level: error, warn, info or debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Let anyone who reaches the server read the dashboard, without a token. The JSON API
    /// still needs its tokens.
    #[arg(long)]
    pub public_dashboard: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make an API token; its secret is printed once and only its SHA-256 is kept.
    Create {
        /// A lowercase label; writes are recorded as `sa:token-NAME`.
        #[arg(long)]
        name: String,
        /// `read`, `build:write`, `deploy:write`, `approve`, `act-as` (write as another
        /// identity) or `admin` (repeatable).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Who acts with the token: writes and approvals are recorded as this identity
        /// (default `sa:token-NAME`).
        #[arg(long, value_name = "IDENTITY")]
        identity: Option<String>,
        /// Who creates the token (default: LINEAGE_ACTOR, then the CI actor, then $USER).
        #[arg(long = "by", value_name = "IDENTITY")]
        by: Option<String>,
    },
    /// List tokens (ids, names, scopes; never secrets).
    List,
    /// Revoke a token by id; the server stops accepting it within a poll interval.
    Revoke {
        /// The token's id (`lineage token list`).
        id: String,
        /// Who revokes it (default: LINEAGE_ACTOR, then the CI actor, then $USER).
        #[arg(long = "by", value_name = "IDENTITY")]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum K8sCmd {
    /// Print a ValidatingWebhookConfiguration and a Service; write a new CA and serving
    /// certificate for `lineage serve --tls-cert --tls-key`.
    WebhookConfig {
        /// The Kubernetes Service in front of `lineage serve`.
        #[arg(long)]
        service_name: String,
        /// The namespace `lineage serve` runs in; the webhook never judges it.
        #[arg(long)]
        namespace: String,
        /// The port `lineage serve` listens on in the pod.
        #[arg(long, default_value_t = 8443)]
        target_port: u16,
        /// Where to write `ca.crt`, `tls.crt` and `tls.key`.
        #[arg(long, default_value = ".", value_name = "DIR")]
        out_dir: PathBuf,
        /// Let pods start when the webhook cannot be reached (`Ignore`) instead of refusing.
        #[arg(long)]
        fail_open: bool,
        /// Replace `ca.crt`, `tls.crt` and `tls.key` when they exist (the key is made anew, 0600).
        #[arg(long)]
        force: bool,
    },
    /// Print everything to run the server in a cluster: Deployment (two replicas, probes on
    /// /readyz and /healthz), Service, PodDisruptionBudget, NetworkPolicy, the settings as a
    /// ConfigMap and the webhook configuration; write the webhook's CA and serving certificate.
    #[command(
        after_help = "Example:\n  lineage k8s manifests --namespace lineage --image ghcr.io/acme/lineage:0.1.0 --out-dir k8s > k8s/lineage.yaml"
    )]
    Manifests {
        /// The namespace the server runs in; the webhook never judges it (nor kube-system).
        #[arg(long, default_value = "lineage")]
        namespace: String,
        /// The name of the Deployment, Service and Secrets.
        #[arg(long, default_value = "lineage")]
        name: String,
        /// The Lineage container image (see the Containerfile).
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// The port `lineage serve` listens on in the pod.
        #[arg(long, default_value_t = 8443)]
        target_port: u16,
        /// Where to write `ca.crt`, `tls.crt` and `tls.key`.
        #[arg(long, default_value = ".", value_name = "DIR")]
        out_dir: PathBuf,
        /// Let pods start when no replica answers (`failurePolicy: Ignore`) instead of refusing.
        #[arg(long)]
        fail_open: bool,
        /// Replace `ca.crt`, `tls.crt` and `tls.key` when they exist (the key is made anew, 0600).
        #[arg(long)]
        force: bool,
    },
}

pub fn serve(args: ServeArgs, s: &Settings) -> Result<Outcome, CliError> {
    let admission = s.toml.admission.clone();
    // The same loader the CLI's gates use: one set of rules for every path.
    let gate = crate::gates::gate_setup(s, None)?;
    // The same key rule as every CLI writer, decided before serving: a ledger with checkpoints
    // and no matching key is refused rather than signed with a new key.
    let log_settings = s.toml.log.clone();
    let key_file = log_settings.writer_key_file(&s.store)?;
    let key = match lineage_store::open(&s.store, false) {
        Ok(store) => ledger_log::writer_key(Some(store.as_ref()), &log_settings, &key_file)?,
        Err(lineage_store::StoreError::Missing(_)) => {
            ledger_log::writer_key(None, &log_settings, &key_file)?
        }
        Err(e) => return Err(e.into()),
    };
    let listen: std::net::SocketAddr = args.listen.parse().map_err(|_| {
        CliError::new(
            format!("`--listen {}` is not an address and port", args.listen),
            "write e.g. `--listen 127.0.0.1:8080` or `--listen 0.0.0.0:8443`",
        )
    })?;
    let level = match args.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        other => {
            return Err(CliError::new(
                format!("`--log-level {other}` is not a level"),
                "use error, warn, info or debug",
            ))
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| {
                    CliError::new(
                        format!("cannot read `{}`: {e}", p.display()),
                        "check the path",
                    )
                })
            };
            Some(
                lineage_server::tls::server_config(&read(cert)?, &read(key)?).map_err(|e| {
                    CliError::new(
                        e.to_string(),
                        "`lineage k8s webhook-config` writes a matching pair",
                    )
                })?,
            )
        }
        _ => None,
    };
    // A pinned LINEAGE_NOW keeps tests and screenshots reproducible; otherwise the wall clock.
    let clock: lineage_server::Clock = if s.env.contains_key(ENV_NOW) {
        let now = s.now;
        Arc::new(move || now)
    } else {
        Arc::new(|| Timestamp::from_unix(time::OffsetDateTime::now_utc().unix_timestamp()))
    };
    let cfg = lineage_server::ServerConfig {
        store: s.store.clone(),
        gate,
        admission,
        log: Some((Arc::new(key), log_settings)),
        body_limit: args.body_limit,
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
        poll_interval: Duration::from_millis(args.poll_interval.max(10)),
        clock,
        dashboard: lineage_server::DashboardConfig {
            public: args.public_dashboard,
            secure_cookie: tls.is_some(),
        },
    };
    init_logging(args.log_format, level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                format!("cannot start the runtime: {e}"),
                "check system limits",
            )
        })?;
    // Open the ledger before entering the runtime: the PostgreSQL client is synchronous and
    // runs a runtime of its own, which tokio refuses to start inside another.
    let state = lineage_server::state(cfg)?;
    runtime.block_on(async move {
        let tcp = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            CliError::new(
                format!("cannot listen on `{listen}`: {e}"),
                "pick a free port, e.g. `--listen 127.0.0.1:8081`",
            )
        })?;
        let local = tcp.local_addr().map_err(lineage_server::ServeError::Io)?;
        let (listener, scheme) = match tls {
            Some(config) => (
                lineage_server::Listener::Tls(
                    lineage_server::tls::TlsListener::new(tcp, config)
                        .map_err(lineage_server::ServeError::Io)?,
                ),
                "https",
            ),
            None => (lineage_server::Listener::Plain(tcp), "http"),
        };
        tracing::info!(address = %local, scheme, "listening");
        if args.public_dashboard {
            tracing::warn!(
                address = %local,
                "the dashboard is public (--public-dashboard): anyone who reaches this address reads the ledger without a token"
            );
        }
        println!("lineage serve: listening on {scheme}://{local}");
        lineage_server::serve(state, listener, shutdown_signal()).await?;
        tracing::info!("stopped; in-flight requests were answered");
        Ok::<_, CliError>(())
    })?;
    Ok(Outcome::Ok)
}

impl From<lineage_server::ServeError> for CliError {
    fn from(e: lineage_server::ServeError) -> CliError {
        let hint = match &e {
            lineage_server::ServeError::Store(se) => {
                return CliError::from(lineage_core::Error::Store(match se {
                    lineage_store::StoreError::Missing(p) => {
                        lineage_store::StoreError::Missing(p.clone())
                    }
                    other => lineage_store::StoreError::Backend(other.to_string()),
                }))
            }
            lineage_server::ServeError::Io(_) => "check `--listen`",
            lineage_server::ServeError::Tls(_) => "check `--tls-cert` and `--tls-key`",
        };
        CliError::new(e.to_string(), hint)
    }
}

fn init_logging(format: LogFormat, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Resolves on ctrl-c or SIGTERM (what Kubernetes sends before it kills a pod).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new connections; draining in-flight requests");
}

fn token_error(e: tokens::TokenError) -> CliError {
    let hint = e.hint();
    match e {
        tokens::TokenError::Store(se) => CliError::from(se),
        other => CliError::new(other.to_string(), hint),
    }
}

pub fn token(cmd: TokenCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        TokenCmd::Create {
            name,
            scopes,
            identity,
            by,
        } => {
            let identity = identity
                .map(|i| Identity::parse(&i).map_err(|e| e.in_field("--identity")))
                .transpose()?;
            let by = s.actor(by.as_deref())?;
            let mut store = crate::commands::open_write(s, true)?;
            let created = tokens::create(
                store.as_mut(),
                &name,
                &scopes,
                identity.as_ref(),
                &by,
                s.now,
            )
            .map_err(token_error)?;
            match s.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "schema": 1,
                        "id": created.grant.id,
                        "name": created.grant.name,
                        "scopes": created.grant.scopes,
                        "identity": tokens::TokenInfo::from_grant(&created.grant).identity().to_string(),
                        "index": created.index,
                        "token": created.secret,
                    }))
                    .expect("json")
                ),
                Format::Human => {
                    println!(
                        "created token `{}` (id {}) with scope {}",
                        created.grant.name,
                        created.grant.id,
                        created.grant.scopes.join(", ")
                    );
                    println!("{}", created.secret);
                    eprintln!(
                        "store it now: it is not shown again (the ledger keeps only its SHA-256)"
                    );
                    eprintln!("use it with: LINEAGE_TOKEN=<token> lineage --server URL …");
                }
            }
            Ok(Outcome::Ok)
        }
        TokenCmd::List => {
            let store = lineage_store::open(&s.store, false)?;
            let list = tokens::list(store.as_ref()).map_err(token_error)?;
            match s.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&list).expect("json")),
                Format::Human => {
                    if list.tokens.is_empty() {
                        println!("no tokens");
                    }
                    for t in &list.tokens {
                        println!(
                            "{}  {:<20} {:<28} {} by {}{}",
                            t.id,
                            t.name,
                            t.scopes.join(","),
                            t.created_at,
                            t.created_by,
                            if t.revoked { "  (revoked)" } else { "" }
                        );
                    }
                }
            }
            Ok(if list.tokens.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
        TokenCmd::Revoke { id, by } => {
            let by = s.actor(by.as_deref())?;
            let mut store = crate::commands::open_write(s, false)?;
            let index = tokens::revoke(store.as_mut(), &id, &by, s.now).map_err(token_error)?;
            match s.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"schema": 1, "id": id, "outcome": if index.is_some() {"revoked"} else {"unchanged"}, "index": index})
                ),
                Format::Human => match index {
                    Some(_) => println!("revoked token {id}"),
                    None => println!("token {id} was already revoked"),
                },
            }
            Ok(Outcome::Ok)
        }
    }
}

pub fn k8s(cmd: K8sCmd, s: &Settings) -> Result<Outcome, CliError> {
    let (service_name, namespace, target_port, out_dir, fail_open, force, image) = match cmd {
        K8sCmd::WebhookConfig {
            service_name,
            namespace,
            target_port,
            out_dir,
            fail_open,
            force,
        } => (
            service_name,
            namespace,
            target_port,
            out_dir,
            fail_open,
            force,
            None,
        ),
        K8sCmd::Manifests {
            namespace,
            name,
            image,
            target_port,
            out_dir,
            fail_open,
            force,
        } => {
            lineage_model::ImageRef::parse(&image).map_err(|e| e.in_field("--image"))?;
            (
                name,
                namespace,
                target_port,
                out_dir,
                fail_open,
                force,
                Some(image),
            )
        }
    };
    for (field, v) in [
        ("--service-name", &service_name),
        ("--namespace", &namespace),
    ] {
        lineage_model::ServiceName::parse(v).map_err(|e| CliError::from(e.in_field(field)))?;
    }
    let admission = s.toml.admission.clone();
    let webhook = lineage_server::k8s::WebhookParams {
        service_name,
        namespace,
        port: 443,
        target_port,
        namespaces: admission.namespaces.keys().cloned().collect(),
        failure_policy: if fail_open { "Ignore" } else { "Fail" },
    };
    let bundle = match image {
        None => lineage_server::k8s::webhook_config(&webhook),
        Some(image) => lineage_server::k8s::server_manifests(&lineage_server::k8s::ServerParams {
            webhook,
            image,
            settings: s.config_text.clone(),
        }),
    }
    .map_err(|e| {
        CliError::new(
            format!("cannot generate certificates: {e}"),
            "report this as a bug",
        )
    })?;
    std::fs::create_dir_all(&out_dir).map_err(|e| {
        CliError::new(
            format!("cannot create `{}`: {e}", out_dir.display()),
            "check `--out-dir`",
        )
    })?;
    // Nothing is written over: an existing `tls.key` may be world-readable, and opening it
    // would keep its mode. With `--force` the old files are removed and made anew.
    let names = ["ca.crt", "tls.crt", "tls.key"];
    let existing: Vec<String> = names
        .iter()
        .map(|n| out_dir.join(n))
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        return Err(CliError::new(
            format!(
                "{} already exist(s); nothing was written",
                existing.join(", ")
            ),
            "choose another `--out-dir`, or pass `--force` to replace them with a new CA and key",
        ));
    }
    let write = |name: &str, text: &str, private: bool| -> Result<PathBuf, CliError> {
        let path = out_dir.join(name);
        if force {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CliError::new(
                        format!("cannot replace `{}`: {e}", path.display()),
                        "check `--out-dir`",
                    ))
                }
                _ => {}
            }
        }
        crate::verify::write_new_file(&path, text.as_bytes(), private)?;
        Ok(path)
    };
    write("ca.crt", &bundle.ca_pem, false)?;
    let cert = write("tls.crt", &bundle.cert_pem, false)?;
    let key = write("tls.key", &bundle.key_pem, true)?;
    print!("{}", bundle.manifests);
    eprintln!(
        "wrote {}, {} and {}; serve with `lineage serve --listen 0.0.0.0:{target_port} --tls-cert {} --tls-key {}`",
        out_dir.join("ca.crt").display(),
        cert.display(),
        key.display(),
        cert.display(),
        key.display()
    );
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------------------------------------
// `--server URL`: the CLI as a client.
// ---------------------------------------------------------------------------------------------

/// With `--server`, runs the commands the API serves remotely and gives back any other
/// command unrun (`Ok(Err(command))`) only when there is no `--server`.
pub fn remote(command: Command, s: &Settings) -> Result<Result<Outcome, Command>, CliError> {
    let Some(server) = s.server.clone() else {
        return Ok(Err(command));
    };
    let client = Client::new(s, &server)?;
    match command {
        Command::Build(BuildCmd::Record(r)) if !r.build.print_detected => {
            let args = r.build;
            // Everything is parsed (and the provenance signed) here, so bad input never
            // reaches the server and the key never leaves this machine.
            let (build, _) = crate::commands::assemble_build(&args, s, None)?;
            let gate = crate::gates::prepare_build(&args, s)?;
            let options = gate.options(&build, s)?;
            let mut body = serde_json::to_value(&build).expect("records serialise");
            // Without `--service`, the server picks the service that lists the image, as a
            // local `build record` does.
            if args.service.is_none() {
                body.as_object_mut().expect("an object").remove("service");
            }
            body["gate"] = serde_json::json!({
                "env": options.env.as_ref().map(ToString::to_string),
                "allow_failures": options.allow_failures,
                "dockerfile": options.dockerfile,
                "provenance": options.provenance,
            });
            let decision = match client.send("POST", "/api/v1/builds", Some(&body))? {
                Reply::Refused(report) => Decision::Refused {
                    gate: typed(report)?,
                },
                reply => {
                    let mut value = reply.ok()?;
                    let report = value.as_object_mut().and_then(|o| o.remove("gate"));
                    Decision::Recorded {
                        result: gate::BuildRecorded {
                            record: record_report(&value)?,
                            provenance_index: value
                                .get("provenance_index")
                                .and_then(|i| i.as_u64()),
                        },
                        gate: typed(report.ok_or_else(|| {
                            CliError::new(
                                "the server's answer has no gate report",
                                "use the same lineage version as the server",
                            )
                        })?)?,
                    }
                }
            };
            Ok(Ok(crate::gates::show_build(&gate, decision, None, s)?))
        }
        Command::Deploy(DeployCmd::Record {
            image,
            env,
            by,
            approved_by,
            ticket,
            at,
            rollback,
            config,
            check,
            ..
        }) => {
            // Check what can be checked here, so bad input never reaches the server.
            let config = config.read()?;
            ImageRef::parse(&image).map_err(|e| e.in_field("--image"))?;
            Identity::parse(&by).map_err(|e| e.in_field("--by"))?;
            if let Some(a) = &approved_by {
                Identity::parse(a).map_err(|e| e.in_field("--approved-by"))?;
            }
            let at = match at {
                Some(t) => Some(
                    Timestamp::parse(&t)
                        .map_err(|e| e.in_field("--at"))?
                        .to_string(),
                ),
                None => None,
            };
            let setup = crate::gates::setup(&check, s)?;
            let body = serde_json::json!({
                "image": image, "env": env, "by": by, "approved_by": approved_by,
                "ticket": ticket, "at": at, "rollback": rollback, "config": config,
            });
            let decision = match client.send("POST", "/api/v1/deploys", Some(&body))? {
                Reply::Refused(report) => Decision::Refused {
                    gate: typed(report)?,
                },
                reply => {
                    let mut value = reply.ok()?;
                    let report = value.as_object_mut().and_then(|o| o.remove("gate"));
                    Decision::Recorded {
                        result: record_report(&value)?,
                        gate: typed(report.ok_or_else(|| {
                            CliError::new(
                                "the server's answer has no gate report",
                                "use the same lineage version as the server",
                            )
                        })?)?,
                    }
                }
            };
            Ok(Ok(crate::gates::show_deploy(&setup, decision, s)?))
        }
        Command::Approve(args) => {
            ImageRef::parse(&args.image).map_err(|e| e.in_field("IMAGE"))?;
            if let Some(b) = &args.actor.by {
                Identity::parse(b).map_err(|e| e.in_field("--by"))?;
            }
            let body = serde_json::json!({
                "image": args.image, "env": args.env, "by": args.actor.by, "reason": args.reason,
            });
            let report: gate::ApprovalReport = typed(
                client
                    .send("POST", "/api/v1/approvals", Some(&body))?
                    .ok()?,
            )?;
            crate::gates::show_approval(&report, s);
            Ok(Ok(Outcome::Ok))
        }
        Command::Deploy(DeployCmd::End(args)) => {
            let body = crate::runtime::end_body(&args, s)?;
            match client.send("POST", "/api/v1/deploys/end", Some(&body))? {
                Reply::NotFound(message) => {
                    render::not_found(s.format, &message);
                    Ok(Ok(Outcome::NotFound))
                }
                reply => {
                    let report: lineage_core::placements::EndReport = typed(reply.ok()?)?;
                    crate::runtime::show_end(s, &report);
                    Ok(Ok(Outcome::Ok))
                }
            }
        }
        Command::Trace {
            target,
            observed_only,
            ..
        } => {
            if crate::picture::wanted(s) {
                // The picture needs the service's history, which the API does not serve; a
                // picture of fewer placements would differ from the local one.
                return Err(CliError::new(
                    format!(
                        "`trace --format {}` does not run with `--server`",
                        s.format_choice.name()
                    ),
                    "run it against the ledger (`--store`), or open the dashboard's `/services/NAME` page for the same picture",
                ));
            }
            let mut path = format!("/api/v1/trace/{}", encode(&target, true));
            if observed_only {
                path.push_str("?observed_only=true");
            }
            match client.send("GET", &path, None)? {
                Reply::NotFound(message) => {
                    render::not_found(s.format, &message);
                    Ok(Ok(Outcome::NotFound))
                }
                reply => {
                    let report: TraceReport = typed(reply.ok()?)?;
                    render::trace(s.format, &report);
                    Ok(Ok(Outcome::Ok))
                }
            }
        }
        Command::Affected(args) => {
            let path = crate::vulns::affected_path(&args)?;
            let value = client.send("GET", &path, None)?.ok()?;
            Ok(Ok(crate::vulns::show_remote_affected(&args, value, s)?))
        }
        Command::Running {
            env, observed_only, ..
        } => {
            let mut path = match &env {
                Some(e) => format!("/api/v1/running?env={}", encode(e, false)),
                None => "/api/v1/running?".to_string(),
            };
            if observed_only {
                path.push_str(if env.is_some() {
                    "&observed_only=true"
                } else {
                    "observed_only=true"
                });
            }
            let path = path.trim_end_matches('?').to_string();
            let report: RunningReport = typed(client.send("GET", &path, None)?.ok()?)?;
            render::running(s.format, &report);
            Ok(Ok(if report.rows.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            }))
        }
        _ => Err(CliError::new(
            "this command does not work with `--server` yet",
            format!(
                "`--server` works with {}; run others against the ledger (`--store`)",
                crate::args::REMOTE_COMMANDS
            ),
        )),
    }
}

pub(crate) fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| {
        CliError::new(
            format!("the server's answer is not the report this lineage expects: {e}"),
            "use the same lineage version as the server",
        )
    })
}

fn record_report(v: &serde_json::Value) -> Result<RecordReport, CliError> {
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let outcome = match v.get("outcome").and_then(|x| x.as_str()) {
        Some("recorded") => "recorded",
        Some("unchanged") => "unchanged",
        _ => {
            return Err(CliError::new(
                "the server's answer is not a record result",
                "use the same lineage version as the server",
            ))
        }
    };
    let kind = match v.get("kind").and_then(|x| x.as_str()) {
        Some("build") => "build",
        _ => "deploy",
    };
    Ok(RecordReport {
        schema: 1,
        outcome,
        kind,
        index: v.get("index").and_then(|x| x.as_u64()).unwrap_or_default(),
        digest: text("digest"),
        service: text("service"),
    })
}

/// Percent-encodes everything but unreserved characters (and `/` in paths).
pub(crate) fn encode(input: &str, path: bool) -> String {
    let mut out = String::new();
    for b in input.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric()
            || "-._~".contains(c)
            || (path && c == '/')
            || (path && c == ':')
            || (path && c == '@')
        {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

enum Reply {
    Ok(serde_json::Value),
    NotFound(String),
    /// 422 with a gate report: a gate refused the write and nothing was written.
    Refused(serde_json::Value),
}

impl Reply {
    fn ok(self) -> Result<serde_json::Value, CliError> {
        match self {
            Reply::Ok(v) => Ok(v),
            Reply::NotFound(m) => Err(CliError::new(m, "check the name")),
            Reply::Refused(_) => Err(CliError::new(
                "the server refused the request",
                "run the matching `check` command to see why",
            )),
        }
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(s: &Settings, server: &str) -> Result<Client, CliError> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::new(
                format!("`--server {server}` is not an http(s) URL"),
                "write e.g. `--server https://lineage.acme.dev`",
            ));
        }
        if let Some(rest) = base.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or(rest);
            let host = authority.rsplit('@').next().unwrap_or(authority);
            if !crate::registry::is_loopback(host) {
                return Err(CliError::new(
                    format!(
                        "`--server {server}` is plain http to `{host}`, which is not this machine: the API token would cross the network in clear"
                    ),
                    "use `https://`; plain `http://` is accepted only for loopback (`http://127.0.0.1:8080`)",
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::WebPki)
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .tls_config(tls)
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base,
            token: s.env.get(ENV_TOKEN).filter(|t| !t.is_empty()).cloned(),
        })
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, CliError> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let unreachable = |e: ureq::Error| {
            CliError::new(
                format!("cannot reach the server at `{}`: {e}", self.base),
                "check `--server` and that `lineage serve` runs there",
            )
        };
        let mut response = match (method, body) {
            ("POST", Some(b)) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(b.to_string()).map_err(unreachable)?
            }
            _ => {
                let mut req = self.agent.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call().map_err(unreachable)?
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            CliError::new(
                format!("the server answered {status} without JSON"),
                "check `--server`: it must be a `lineage serve` URL",
            )
        })?;
        if status == 404 && value.get("found") == Some(&serde_json::Value::Bool(false)) {
            let message = value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("not found")
                .to_string();
            return Ok(Reply::NotFound(message));
        }
        if (200..300).contains(&status) {
            return Ok(Reply::Ok(value));
        }
        if status == 422 && value.get("diagnostics").is_some() && value.get("gate").is_some() {
            return Ok(Reply::Refused(value));
        }
        let error = value.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("the server refused the request");
        let mut hint = error
            .and_then(|e| e.get("hint"))
            .and_then(|m| m.as_str())
            .map(str::to_string);
        if status == 401 && self.token.is_none() {
            hint = Some(format!(
                "set {ENV_TOKEN} to a token from `lineage token create`"
            ));
        }
        Err(CliError {
            message: message.to_string(),
            hint,
        })
    }
}
