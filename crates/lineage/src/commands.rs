//! Commands: turn arguments into checked values, call a use case, render the report.
//!
//! Every input is parsed before the store is opened, so bad input writes nothing.

use lineage_core::record::{BuildInput, DockerfileInput};
use lineage_core::{ci, query, record, services};
use lineage_model::{
    BuildRecord, Identity, ImageRef, Repository, Service, ServiceName, SourceRepo, Timestamp,
};
use lineage_store::Store;

use crate::args::{BuildArgs, BuildCmd, Command, DeployCmd, OwnerArgs, ServiceCmd};
use crate::render;
use crate::settings::Settings;
use crate::{CliError, Outcome};

pub fn run(command: Command, s: &Settings) -> Result<Outcome, CliError> {
    // What the image builder wrote is read into the build flags first, for every path.
    let command = match command {
        Command::Build(BuildCmd::Record(mut r)) => {
            r.build = crate::adopt::fill_builder_files(r.build)?;
            Command::Build(BuildCmd::Record(r))
        }
        Command::Build(BuildCmd::Check(args)) => {
            Command::Build(BuildCmd::Check(crate::adopt::fill_builder_files(args)?))
        }
        other => other,
    };
    let command = match crate::serve::remote(command, s)? {
        Ok(outcome) => return Ok(outcome),
        Err(command) => command,
    };
    match command {
        Command::Service(cmd) => service(cmd, s),
        Command::Build(BuildCmd::Record(r)) => build_record(r.build, s),
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
            remote: _,
        }) => {
            let input = lineage_core::record::DeployInput {
                image: ImageRef::parse(&image).map_err(|e| e.in_field("--image"))?,
                env,
                by: Identity::parse(&by).map_err(|e| e.in_field("--by"))?,
                approved_by: parse_opt(approved_by.as_deref(), Identity::parse, "--approved-by")?,
                ticket,
                at: parse_opt(at.as_deref(), Timestamp::parse, "--at")?.unwrap_or(s.now),
                rollback,
                config: config.read()?,
            };
            let setup = crate::gates::setup(&check, s)?;
            // The deploy gate decides before anything is written; a refusal exits 1.
            crate::gates::record_deploy(&setup, input, s)
        }
        Command::Approve(args) => crate::gates::approve(args, s),
        Command::Trace {
            target,
            observed_only,
            ..
        } => {
            let store = open(s, false)?;
            let view = crate::runtime::view(s, observed_only);
            match query::trace_with(store.as_ref(), &s.toml.config, &target, &view)? {
                Some(report) if crate::picture::wanted(s) => {
                    // The picture adds every placement of the service since (`history`).
                    let service = ServiceName::parse(&report.service)?;
                    let history = lineage_core::lifecycle::history(
                        store.as_ref(),
                        &s.toml.config,
                        &service,
                        None,
                    )?;
                    crate::picture::print(s, &report, history.as_ref());
                    Ok(Outcome::Ok)
                }
                Some(report) => {
                    render::trace(s.format, &report);
                    Ok(Outcome::Ok)
                }
                None => {
                    render::not_found(s.format, &format!("nothing recorded for `{target}`"));
                    Ok(Outcome::NotFound)
                }
            }
        }
        Command::Affected(args) => crate::vulns::affected(args, s),
        Command::Sbom(cmd) => crate::vulns::sbom(cmd, s),
        Command::Scan(cmd) => crate::vulns::scan(cmd, s),
        Command::Vulns(args) => crate::vulns::vulns_cmd(args, s),
        Command::Running {
            env, observed_only, ..
        } => {
            let env = env.map(|e| s.toml.config.environment(&e)).transpose()?;
            let store = open(s, false)?;
            let view = crate::runtime::view(s, observed_only);
            let report = query::running_with(store.as_ref(), &s.toml.config, env.as_ref(), &view)?;
            render::running(s.format, &report);
            Ok(if report.rows.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
        Command::Incident(cmd) => crate::incident::run(cmd, s),
        Command::Demo => crate::demo::run(s, s.store_explicit),
        Command::Log(cmd) => crate::log::run(cmd, s),
        Command::Verify(args) => crate::verify::verify(args, s),
        Command::Key(cmd) => crate::verify::key(cmd, s),
        Command::Base(crate::registry::BaseCmd::Freshness(cmd)) => crate::freshness::base(cmd, s),
        Command::Base(cmd) => crate::registry::base(cmd, s),
        Command::Report(cmd) => crate::freshness::report(cmd, s),
        Command::Build(BuildCmd::Diff(args)) => crate::freshness::build_diff(args, s),
        Command::Inspect(args) => crate::registry::inspect(args, s),
        Command::Attest(cmd) => crate::gates_admin::attest_all(cmd, s),
        Command::Build(BuildCmd::Check(args)) => crate::gates::build_check(args, s),
        Command::Deploy(DeployCmd::Check(args)) => crate::gates::deploy_check(args, s),
        Command::Exception(cmd) => crate::gates_admin::exception(cmd, s),
        Command::Retire(args) => crate::gates_admin::retire(args, s),
        Command::Policy(cmd) => crate::gates_admin::policy(cmd, s),
        Command::Serve(args) => crate::serve::serve(args, s),
        Command::Token(cmd) => crate::serve::token(cmd, s),
        Command::K8s(cmd) => crate::serve::k8s(cmd, s),
        Command::Store(cmd) => crate::store_cmd::run(cmd, s),
        Command::Observe(args) => crate::runtime::observe(args, s),
        Command::Drift(args) => crate::runtime::drift(args, s),
        Command::Deploy(DeployCmd::End(args)) => crate::runtime::end(args, s),
        Command::Deploy(DeployCmd::Outcome(args)) => crate::lifecycle::outcome(args, s),
        Command::Promote(args) => crate::lifecycle::promote(args, s),
        Command::Rollback(args) => crate::lifecycle::rollback(args, s),
        Command::History(args) => crate::lifecycle::history(args, s),
        Command::Tag(args) => crate::lifecycle::tag(args, s),
        Command::Init(args) => crate::adopt::init(args, s),
        Command::Completions { shell } => Ok(crate::adopt::completions(shell)),
        Command::Man { out_dir } => crate::adopt::man(out_dir.as_deref()),
    }
}

/// Opens the ledger for a command that only reads. Nothing opened this way is ever signed or
/// written; commands that write use [`open_write`].
pub fn open(s: &Settings, create: bool) -> Result<Box<dyn Store>, CliError> {
    if create {
        return Ok(lineage_store::open(&s.store, true)?);
    }
    Ok(lineage_store::open_read(&s.store)?)
}

/// Opens the ledger for a command that writes: the one way the binary writes to a ledger.
/// The log key is checked first (a ledger with checkpoints and no matching key is refused,
/// nothing written), and when the returned writer goes out of scope it seals a checkpoint
/// over what the command appended.
pub fn open_write(s: &Settings, create: bool) -> Result<crate::log::Writer, CliError> {
    crate::log::Writer::open(s, create)
}

fn parse_opt<T>(
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, lineage_model::ParseError>,
    field: &'static str,
) -> Result<Option<T>, CliError> {
    value
        .map(|v| parse(v).map_err(|e| CliError::from(e.in_field(field))))
        .transpose()
}

fn owners(args: &OwnerArgs) -> Result<services::OwnerChange, CliError> {
    Ok(services::OwnerChange {
        owner: parse_opt(args.owner.as_deref(), Identity::parse, "--owner")?,
        backup_owner: parse_opt(
            args.backup_owner.as_deref(),
            Identity::parse,
            "--backup-owner",
        )?,
        emergency_approver: parse_opt(
            args.emergency_approver.as_deref(),
            Identity::parse,
            "--emergency-approver",
        )?,
    })
}

fn service(cmd: ServiceCmd, s: &Settings) -> Result<Outcome, CliError> {
    match cmd {
        ServiceCmd::Add {
            name,
            owners: o,
            repo,
            images,
            actor,
        } => {
            let o = owners(&o)?;
            let service = Service {
                name: ServiceName::parse(&name)?,
                owner: o.owner,
                backup_owner: o.backup_owner,
                emergency_approver: o.emergency_approver,
                source_repo: parse_opt(repo.as_deref(), SourceRepo::parse, "--repo")?,
                images: images
                    .iter()
                    .map(|i| Repository::parse(i).map_err(|e| e.in_field("--image")))
                    .collect::<Result<_, _>>()?,
            };
            let by = s.actor(actor.by.as_deref())?;
            let mut store = open_write(s, true)?;
            let index = services::add(store.as_mut(), service.clone(), by, s.now)?;
            render::service_changed(s.format, &service, Some(index), "added");
            Ok(Outcome::Ok)
        }
        ServiceCmd::SetOwner {
            name,
            owners: o,
            actor,
        } => {
            let name = ServiceName::parse(&name)?;
            let change = owners(&o)?;
            if change.owner.is_none()
                && change.backup_owner.is_none()
                && change.emergency_approver.is_none()
            {
                return Err(CliError::new(
                    "nothing to change",
                    format!("pass `--owner`, `--backup-owner` or `--emergency-approver`, e.g. `lineage service set-owner {name} --owner sam@acme.dev`"),
                ));
            }
            let by = s.actor(actor.by.as_deref())?;
            let mut store = open_write(s, false)?;
            let index = services::set_owner(store.as_mut(), &name, change, by, s.now)?;
            let service = store
                .service(&name)?
                .expect("service exists after set-owner");
            render::service_changed(
                s.format,
                &service,
                index,
                if index.is_some() {
                    "updated"
                } else {
                    "unchanged"
                },
            );
            Ok(Outcome::Ok)
        }
        ServiceCmd::Show { name } => {
            let name = ServiceName::parse(&name)?;
            let store = open(s, false)?;
            let report = services::show(store.as_ref(), &name)?;
            render::service_report(s.format, &report);
            Ok(Outcome::Ok)
        }
        ServiceCmd::List => {
            let store = open(s, false)?;
            let list = store.services()?;
            render::service_list(s.format, &list);
            Ok(if list.is_empty() {
                Outcome::NotFound
            } else {
                Outcome::Ok
            })
        }
        ServiceCmd::Import { file, actor } => {
            let text = read_limited(&file, MAX_IMPORT_BYTES)?;
            let rows = services::parse_import(&text, &file.display().to_string())?;
            let by = s.actor(actor.by.as_deref())?;
            let mut store = open_write(s, true)?;
            let report = services::import(store.as_mut(), rows, by, s.now)?;
            render::import(s.format, &report);
            Ok(Outcome::Ok)
        }
        ServiceCmd::Rename(args) => crate::runtime::rename(args, s),
        ServiceCmd::Remove(args) => crate::runtime::remove(args, s),
    }
}

/// Input files larger than this are refused rather than read into memory.
const MAX_IMPORT_BYTES: u64 = 16 << 20;
const MAX_DOCKERFILE_BYTES: u64 = 1 << 20;

pub fn read_limited(path: &std::path::Path, limit: u64) -> Result<String, CliError> {
    crate::input::read_text(path, limit)
}

/// A build as the flags describe it, with the CI environment's values and the Dockerfile's
/// text, for `lineage_core::record::assemble` (`build record`) and
/// `lineage_core::gate::build_facts` (`build check`), which read it by the same rules.
pub(crate) fn build_input(args: &BuildArgs, s: &Settings) -> Result<BuildInput, CliError> {
    let dockerfile = args
        .dockerfile
        .as_ref()
        .map(|path| {
            Ok::<_, CliError>(DockerfileInput {
                path: path.display().to_string(),
                text: read_limited(path, MAX_DOCKERFILE_BYTES)?,
            })
        })
        .transpose()?;
    Ok(BuildInput {
        image: args.image.clone(),
        digest: args.digest.clone(),
        tags: args.tags.clone(),
        service: args.service.clone(),
        bases: args.bases.clone(),
        base_pulled_at: args.base_pulled_at.clone(),
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        commit: args.commit.clone(),
        started_at: args.started_at.clone(),
        finished_at: args.finished_at.clone(),
        ci_system: args.ci_system.clone(),
        ci_job: args.ci_job.clone(),
        ci_run_id: args.ci_run_id.clone(),
        ci_url: args.ci_url.clone(),
        builder: args.builder.clone(),
        platform: args.platform.clone(),
        dockerfile,
        detected: ci::detect(&s.env).unwrap_or_default(),
    })
}

/// Builds a `BuildRecord` from flags, filling gaps from the CI environment (flags win), by
/// `lineage_core::record::assemble`; also what CI detection found, for `--print-detected`.
pub(crate) fn assemble_build(
    args: &BuildArgs,
    s: &Settings,
    store: Option<&dyn Store>,
) -> Result<(BuildRecord, Option<ci::Detected>), CliError> {
    let input = build_input(args, s)?;
    let build = record::assemble(&input, store)?;
    Ok((build, ci::detect(&s.env)))
}

fn build_record(args: BuildArgs, s: &Settings) -> Result<Outcome, CliError> {
    // With `--from-registry`, the registry fills the flags; how the base was found goes to
    // the renderer, and a newly seen base is recorded with the build.
    let (args, from_registry) = crate::registry::fill_from_registry(args, s)?;
    if args.print_detected {
        // Use the ledger for the service name when there is one, but never create it.
        let store = lineage_store::open(&s.store, false).ok();
        let (build, detected) = assemble_build(&args, s, store.as_deref())?;
        let detection = from_registry.as_ref().map(|f| &f.detection);
        render::detected(s.format, &build, detected.as_ref(), detection);
        return Ok(Outcome::Ok);
    }
    // Parse everything that needs no ledger first, so bad input never creates one.
    assemble_build(&args, s, None)?;
    let gate = crate::gates::prepare_build(&args, s)?;
    // A build needs a registered service, so the ledger must already exist.
    let mut store = open_write(s, false)?;
    let (build, _) = assemble_build(&args, s, Some(store.as_ref()))?;
    // The build gate runs first; it records the build, its check result and its signature.
    crate::gates::record_build(gate, build, from_registry, store.as_mut(), s)
}
