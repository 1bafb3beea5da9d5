//! Getting started and fitting in: `lineage init`, `lineage completions`, `lineage man`, and
//! `build record --buildx-metadata / --digest-file` (reading what the image builder already
//! wrote). What `init` writes is planned in `lineage_core::init`, and builders' files are parsed
//! in `lineage_core::builder_output`; this module looks at the disk, writes, and prints.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, ValueEnum};
use lineage_core::builder_output::{self, BuilderOutput};
use lineage_core::init::{self, CiKind, RepoFacts};

use crate::args::{BuildArgs, Cli, Format};
use crate::settings::Settings;
use crate::{CliError, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

/// `lineage init`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cd my-service && lineage init")]
pub struct InitArgs {
    /// The repository to set up (default: the repository holding the working directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace lineage.toml and the example policy when they exist.
    #[arg(long)]
    pub force: bool,
}

/// `--buildx-metadata` and `--digest-file` of `build record` and `build check`.
#[derive(Debug, Clone, Default, Args)]
pub struct BuilderFileArgs {
    /// The file `docker buildx build --metadata-file` wrote: fills the digest, the image name
    /// and, when buildx included provenance, the bases, source, commit and build times.
    #[arg(long, value_name = "FILE")]
    pub buildx_metadata: Option<PathBuf>,
    /// The digest file kaniko (`--digest-file`) or buildah (`--digestfile`) wrote.
    #[arg(long, value_name = "FILE", conflicts_with = "buildx_metadata")]
    pub digest_file: Option<PathBuf>,
}

/// Builders' files hold a few hundred bytes; anything larger is not one.
const MAX_BUILDER_FILE_BYTES: u64 = 4 << 20;

pub fn completions(shell: Shell) -> Outcome {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "lineage", &mut out);
    Outcome::Ok
}

pub fn man(out_dir: Option<&Path>) -> Result<Outcome, CliError> {
    let cmd = Cli::command();
    match out_dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf).map_err(|e| {
                CliError::new(
                    format!("cannot render the man page: {e}"),
                    "report this as a bug",
                )
            })?;
            let _ = std::io::stdout().write_all(&buf);
        }
        Some(dir) => {
            let cannot = |e: std::io::Error| {
                CliError::new(
                    format!("cannot write man pages to `{}`: {e}", dir.display()),
                    "pass a writable directory to `--out-dir`",
                )
            };
            std::fs::create_dir_all(dir).map_err(cannot)?;
            clap_mangen::generate_to(cmd, dir).map_err(cannot)?;
            let count = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
                        .count()
                })
                .unwrap_or(0);
            eprintln!("wrote {count} man pages to {}", dir.display());
        }
    }
    Ok(Outcome::Ok)
}

/// Fills `args` from `--buildx-metadata` or `--digest-file`, as if the facts had been given
/// as flags; what fills and what contradicts is `lineage_core::builder_output::fill`. A flag
/// that contradicts the file is an error naming both values.
pub fn fill_builder_files(mut args: BuildArgs) -> Result<BuildArgs, CliError> {
    let files = args.builder_files.clone();
    let (output, file_flag) = if let Some(path) = &files.digest_file {
        let text = crate::commands::read_limited(path, MAX_BUILDER_FILE_BYTES)?;
        let digest = builder_output::parse_digest_file(&text, &path.display().to_string())?;
        let output = BuilderOutput {
            digest: Some(digest),
            ..BuilderOutput::default()
        };
        (output, "--digest-file")
    } else if let Some(path) = &files.buildx_metadata {
        let text = crate::commands::read_limited(path, MAX_BUILDER_FILE_BYTES)?;
        let output = builder_output::parse_buildx_metadata(&text, &path.display().to_string())?;
        (output, "--buildx-metadata")
    } else {
        return Ok(args);
    };
    let given = builder_output::Given {
        image: args.image.clone(),
        digest: args.digest.clone(),
        bases: !args.bases.is_empty(),
        repo: args.repo.clone(),
        commit: args.commit.clone(),
        started_at: args.started_at.clone(),
        finished_at: args.finished_at.clone(),
    };
    let filled = builder_output::fill(&given, &output, file_flag)
        .map_err(|c| CliError::new(c.to_string(), c.hint()))?;
    if !filled.unplaced_bases.is_empty() {
        eprintln!(
            "note: the build's provenance names {} images ({}); pass `--base` once per `FROM`, the final stage last, to record them",
            filled.unplaced_bases.len(),
            filled.unplaced_bases.join(", ")
        );
    }
    let set = |flag: &mut Option<String>, value: Option<String>| {
        if value.is_some() {
            *flag = value;
        }
    };
    set(&mut args.image, filled.image);
    set(&mut args.digest, filled.digest.map(|d| d.to_string()));
    args.bases.extend(filled.base);
    set(&mut args.repo, filled.repo);
    set(&mut args.commit, filled.commit);
    set(&mut args.started_at, filled.started_at);
    set(&mut args.finished_at, filled.finished_at);
    Ok(args)
}

/// The repository root: the nearest directory holding `.git`, else `start` itself.
fn repo_root(start: &Path) -> PathBuf {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    start.to_path_buf()
}

/// `origin`'s URL from `.git/config`, read as text (no git needed).
fn origin_url(root: &Path) -> Option<String> {
    let config = std::fs::read_to_string(root.join(".git/config")).ok()?;
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
        } else if in_origin {
            if let Some(url) = line.strip_prefix("url").map(str::trim_start) {
                if let Some(url) = url.strip_prefix('=') {
                    return Some(url.trim().to_string());
                }
            }
        }
    }
    None
}

/// What init looks at: top-level names, `.github/workflows`, and Dockerfiles one level down.
fn repo_files(root: &Path) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut dockerfiles = Vec::new();
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for name in names(root) {
        if name == "Dockerfile" || name == "Containerfile" || name.ends_with(".Dockerfile") {
            dockerfiles.push(name.clone());
        }
        let path = root.join(&name);
        if path.is_dir() && !name.starts_with('.') && name != "target" && name != "node_modules" {
            for inner in names(&path) {
                if inner == "Dockerfile" || inner == "Containerfile" {
                    dockerfiles.push(format!("{name}/{inner}"));
                }
            }
        }
        files.push(name);
    }
    for wf in names(&root.join(".github/workflows")) {
        files.push(format!(".github/workflows/{wf}"));
    }
    (files, dockerfiles)
}

pub fn init(args: InitArgs, s: &Settings) -> Result<Outcome, CliError> {
    let start = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| {
            CliError::new(
                format!("cannot read the working directory: {e}"),
                "pass `--dir DIR`",
            )
        })?,
    };
    if !start.is_dir() {
        return Err(CliError::new(
            format!("`{}` is not a directory", start.display()),
            "pass the repository's directory to `--dir`",
        ));
    }
    let root = repo_root(&start);
    let (files, dockerfiles) = repo_files(&root);
    let facts = RepoFacts {
        name: root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        origin: origin_url(&root).and_then(|u| init::web_url(&u)),
        ci: CiKind::detect(&files),
        dockerfiles,
    };
    let plan = init::plan(facts);
    // Nothing is written unless every file can be: an existing file stops the whole init.
    if !args.force {
        if let Some(existing) = plan
            .files
            .iter()
            .map(|f| root.join(&f.path))
            .find(|p| p.exists())
        {
            return Err(CliError::new(
                format!("`{}` already exists; nothing was written", existing.display()),
                "keep it, or run `lineage init --force` to replace lineage.toml and the example policy",
            ));
        }
    }
    for f in &plan.files {
        let path = root.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                CliError::new(
                    format!("cannot create `{}`: {e}", parent.display()),
                    "check the permissions",
                )
            })?;
        }
        std::fs::write(&path, &f.text).map_err(|e| {
            CliError::new(
                format!("cannot write `{}`: {e}", path.display()),
                "check the permissions",
            )
        })?;
    }
    match s.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plans serialise")
        ),
        Format::Human => {
            for f in &plan.files {
                println!("wrote {}", root.join(&f.path).display());
            }
            let ci = plan.facts.ci.unwrap_or(CiKind::Other);
            println!();
            match &plan.ci_file {
                Some(file) => println!("Add this to {file} ({} found):", ci.name()),
                None => println!("Add this to your CI after the image is pushed:"),
            }
            println!();
            print!("{}", plan.ci_snippet);
            println!();
            println!("Then:");
            for n in &plan.next {
                println!("  {n}");
            }
        }
    }
    Ok(Outcome::Ok)
}
