//! Recording builds and deploys, and reading a build as the user describes it
//! ([`BuildInput`]) into the record ([`assemble`]).

use lineage_model::{
    BaseImage, BuildRecord, CiRun, CommitId, ConfigFile, DeployRecord, Digest, DockerfileRef,
    Identity, ImageRef, Repository, Service, ServiceName, SourceRepo, Tag, Timestamp,
};
use lineage_store::{BuildOutcome, Store};
use serde::Serialize;
use sha2::Digest as _;

use crate::{Config, Error, FieldDiff};

/// Finds the service an image belongs to: the one named explicitly, or the one that lists the
/// image repository.
pub fn service_for_image(
    store: &dyn Store,
    image: &Repository,
    explicit: Option<&ServiceName>,
) -> Result<Service, Error> {
    let claimed = store.service_for_image(image)?;
    let name = match (explicit, claimed) {
        (Some(explicit), Some(claimed)) if *explicit != claimed => {
            return Err(Error::ImageClaimed {
                image: image.clone(),
                owner: claimed.to_string(),
            })
        }
        (Some(explicit), _) => explicit.clone(),
        (None, Some(claimed)) => claimed,
        (None, None) => return Err(Error::NoServiceForImage(image.clone())),
    };
    store
        .service(&name)?
        .ok_or_else(|| Error::UnknownService(name.to_string()))
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    pub schema: u32,
    /// `recorded`, or `unchanged` when an identical record already existed.
    pub outcome: &'static str,
    pub kind: &'static str,
    pub index: u64,
    pub digest: String,
    pub service: String,
}

/// Records a build. An identical existing record is a no-op; a different one for the same
/// digest is an error naming the fields that differ.
pub fn build(
    store: &mut dyn Store,
    build: BuildRecord,
    recorded_at: Timestamp,
    recorded_by: Option<&Identity>,
) -> Result<RecordReport, Error> {
    if store.service(&build.service)?.is_none() {
        return Err(Error::UnknownService(build.service.to_string()));
    }
    let outcome = store
        .record_builds(std::slice::from_ref(&build), recorded_at, recorded_by)?
        .pop()
        .expect("one outcome per build");
    let (outcome, index) = match outcome {
        BuildOutcome::Recorded { index } => ("recorded", index),
        BuildOutcome::AlreadyRecorded { index } => ("unchanged", index),
        BuildOutcome::Conflict { existing } => {
            return Err(Error::BuildConflict {
                digest: build.digest.to_string(),
                fields: diff(&existing, &build),
            })
        }
    };
    Ok(RecordReport {
        schema: 1,
        outcome,
        kind: "build",
        index,
        digest: build.digest.to_string(),
        service: build.service.to_string(),
    })
}

/// The top-level fields whose JSON values differ.
pub fn diff(recorded: &BuildRecord, given: &BuildRecord) -> Vec<FieldDiff> {
    let (a, b) = (
        serde_json::to_value(recorded).expect("records serialise"),
        serde_json::to_value(given).expect("records serialise"),
    );
    let (a, b) = (
        a.as_object().cloned().unwrap_or_default(),
        b.as_object().cloned().unwrap_or_default(),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        None => "(none)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldDiff {
            field: k.clone(),
            recorded: show(a.get(k)),
            given: show(b.get(k)),
        })
        .collect()
}

/// A deploy as the user describes it, before the service and environment are resolved.
#[derive(Debug, Clone)]
pub struct DeployInput {
    pub image: ImageRef,
    pub env: String,
    pub by: Identity,
    pub approved_by: Option<Identity>,
    pub ticket: Option<String>,
    /// When the deploy happened (the caller defaults it to now).
    pub at: Timestamp,
    /// A deliberate rollback to an older build (rule D013 lets it pass).
    pub rollback: bool,
    /// The configuration deployed with the image, by content (see [`ConfigFile`]).
    pub config: Vec<ConfigFile>,
}

/// Resolves a deploy's service and environment into a record, writing nothing.
pub fn resolve_deploy(
    store: &dyn Store,
    config: &Config,
    input: DeployInput,
) -> Result<DeployRecord, Error> {
    let Some(digest) = input.image.digest.clone() else {
        return Err(Error::Invalid(
            format!("image reference `{}` is not pinned by digest", input.image),
            format!(
                "deploys are recorded by digest: `{}@sha256:<64 hex>` (`lineage trace {}` shows recorded digests)",
                input.image.repository, input.image.repository
            ),
        ));
    };
    let env = config.environment(&input.env)?;
    let service = service_for_image(store, &input.image.repository, None)?;
    if let Some(ticket) = &input.ticket {
        lineage_model::check_free_text("ticket", ticket, 2048)?;
    }
    Ok(DeployRecord {
        service: service.name,
        image: input.image.repository,
        digest,
        env,
        by: input.by,
        approved_by: input.approved_by,
        ticket: input.ticket,
        at: input.at,
        rollback: input.rollback,
        config: checked_config(input.config)?,
    })
}

/// The configuration of a deploy, sorted by path: each path free text (no control
/// characters, at most 1024 bytes), each hash 64 lowercase hex, each path once.
fn checked_config(mut config: Vec<ConfigFile>) -> Result<Vec<ConfigFile>, Error> {
    if config.len() > 64 {
        return Err(Error::Invalid(
            format!("{} configuration files on one deploy; at most 64 are kept", config.len()),
            "pass the files that make the release (manifests, Helm values), or a digest of the rendered whole with `--config-digest`".into(),
        ));
    }
    for c in &config {
        lineage_model::check_free_text("config.path", &c.path, 1024)?;
        if c.sha256.len() != 64
            || !c
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::Invalid(
                format!(
                    "config.sha256 `{}` of `{}` is not 64 lowercase hex characters",
                    lineage_model::inert(&c.sha256),
                    lineage_model::inert(&c.path)
                ),
                "give the SHA-256 of the file's bytes".into(),
            ));
        }
    }
    config.sort();
    if let Some(w) = config.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(Error::Invalid(
            format!(
                "configuration file `{}` is given twice",
                lineage_model::inert(&w[0].path)
            ),
            "name each file once".into(),
        ));
    }
    Ok(config)
}

pub fn deploy(
    store: &mut dyn Store,
    record: DeployRecord,
    recorded_at: Timestamp,
    recorded_by: Option<&Identity>,
) -> Result<RecordReport, Error> {
    let index = store.record_deploys(std::slice::from_ref(&record), recorded_at, recorded_by)?[0];
    Ok(RecordReport {
        schema: 1,
        outcome: "recorded",
        kind: "deploy",
        index,
        digest: record.digest.to_string(),
        service: record.service.to_string(),
    })
}

// -------------------------------------------------------------------------------------------
// A build as the user describes it
// -------------------------------------------------------------------------------------------

/// A build as the user describes it: the flags as typed, what CI detection found, and the
/// Dockerfile. It is read two ways, by the same rules: [`assemble`] strictly, into the record
/// `build record` writes (a bad value is an error naming its flag), and
/// [`crate::gate::build_facts`] leniently, into the facts `build check` judges (a bad value
/// reaches the gate and comes back as a coded finding). Which tag goes first, how pull times
/// pair with bases, which base is the final stage, when the Dockerfile gives the bases, which
/// service a build belongs to and how CI detection fills gaps are each decided once, below.
#[derive(Debug, Clone, Default)]
pub struct BuildInput {
    /// `--image`: `REPOSITORY[:TAG][@DIGEST]`.
    pub image: Option<String>,
    pub digest: Option<String>,
    pub tags: Vec<String>,
    pub service: Option<String>,
    /// `--base`, once per `FROM`, the final stage last.
    pub bases: Vec<String>,
    /// `--base-pulled-at`: once for every base, or once per base in the same order.
    pub base_pulled_at: Vec<String>,
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub ci_system: Option<String>,
    pub ci_job: Option<String>,
    pub ci_run_id: Option<String>,
    pub ci_url: Option<String>,
    pub builder: Option<String>,
    pub platform: Option<String>,
    pub dockerfile: Option<DockerfileInput>,
    /// What CI detection found; a flag wins over it.
    pub detected: crate::ci::Detected,
}

/// The Dockerfile of a build: its path as given and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileInput {
    pub path: String,
    pub text: String,
}

/// A build field that CI detection can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    Commit,
    SourceRepo,
    Builder,
    StartedAt,
    GitRef,
    System,
    Job,
    RunId,
    Url,
}

impl Gap {
    /// The flag that gives it, and its key in [`crate::ci::Detected::from`] (and the free text
    /// limit of [`BuildRecord::free_text_limit`]).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Gap::Commit => ("--commit", "commit"),
            Gap::SourceRepo => ("--repo", "source_repo"),
            Gap::Builder => ("--builder", "builder"),
            Gap::StartedAt => ("--started-at", "started_at"),
            Gap::GitRef => ("--branch", "git_ref"),
            Gap::System => ("--ci-system", "system"),
            Gap::Job => ("--ci-job", "job"),
            Gap::RunId => ("--ci-run-id", "run_id"),
            Gap::Url => ("--ci-url", "url"),
        }
    }
}

/// Where a value came from: the flag, or a CI variable (named when detection knows it).
enum Source {
    Flag,
    Detected(Option<&'static str>),
}

impl BuildInput {
    /// The flag's value, else the one CI detection found: flags win, CI fills gaps.
    fn given(&self, gap: Gap) -> Option<(&str, Source)> {
        let d = &self.detected;
        let (flag, found) = match gap {
            Gap::Commit => (&self.commit, &d.commit),
            Gap::SourceRepo => (&self.repo, &d.source_repo),
            Gap::Builder => (&self.builder, &d.builder),
            Gap::StartedAt => (&self.started_at, &d.started_at),
            Gap::GitRef => (&self.branch, &d.git_ref),
            Gap::System => (&self.ci_system, &d.system),
            Gap::Job => (&self.ci_job, &d.job),
            Gap::RunId => (&self.ci_run_id, &d.run_id),
            Gap::Url => (&self.ci_url, &d.url),
        };
        match (flag, found) {
            (Some(v), _) => Some((v.as_str(), Source::Flag)),
            (None, Some(v)) => Some((
                v.as_str(),
                Source::Detected(d.from.get(gap.names().1).copied()),
            )),
            (None, None) => None,
        }
    }

    /// As typed, for the lenient reading.
    pub(crate) fn raw(&self, gap: Gap) -> Option<String> {
        self.given(gap).map(|(v, _)| v.to_string())
    }

    /// Parsed, for the strict reading. An error about a detected value names the variable it
    /// came from, since the user never typed it.
    fn parsed<T>(
        &self,
        gap: Gap,
        parse: impl Fn(&str) -> Result<T, lineage_model::ParseError>,
    ) -> Result<Option<T>, Error> {
        let (flag, _) = gap.names();
        let Some((value, source)) = self.given(gap) else {
            return Ok(None);
        };
        parse(value).map(Some).map_err(|e| {
            let e = e.in_field(flag);
            match source {
                Source::Detected(Some(var)) => Error::Invalid(
                    format!("{e} (detected from {var}; pass `{flag}` to give it yourself)"),
                    e.hint,
                ),
                _ => Error::Parse(e),
            }
        })
    }

    /// Free text from a flag or the CI's variables, checked by the function the core applies
    /// to every build (`BuildRecord::check_free_text`), but named by flag or variable.
    fn text(&self, gap: Gap) -> Result<Option<String>, Error> {
        let max = BuildRecord::free_text_limit(gap.names().1);
        self.parsed(gap, |v| {
            lineage_model::check_free_text("value", v, max).map(|()| v.to_string())
        })
    }

    /// The digest `--image` pins (after its `@`), as typed.
    pub(crate) fn image_digest(&self) -> Option<&str> {
        self.image
            .as_deref()
            .and_then(|i| i.split_once('@'))
            .map(|(_, d)| d)
    }

    /// Where the bases come from: every `--base`, or, when none is given, the Dockerfile's
    /// `FROM`s (it says what the build is on, so the record cannot contradict it).
    pub(crate) fn stages(&self) -> Stages<'_> {
        match (&self.dockerfile, self.bases.is_empty()) {
            (Some(df), true) => Stages::Dockerfile(crate::gate::bases_from_dockerfile(
                &df.text,
                &Default::default(),
            )),
            _ => Stages::Flags(&self.bases),
        }
    }
}

/// A build's bases in `FROM` order, before they are read.
pub(crate) enum Stages<'a> {
    /// `--base` references as typed; the last is the final stage ([`final_stage`]).
    Flags(&'a [String]),
    /// The Dockerfile's, with its final stage marked.
    Dockerfile(Vec<lineage_model::BaseImage>),
}

/// Whether the `i`th of `n` `--base` values is the final stage: the last one is.
pub(crate) fn final_stage(i: usize, n: usize) -> bool {
    i + 1 == n
}

/// The tags of a build: the image reference's tag first (unless listed), then `--tag`s.
pub(crate) fn with_image_tag<T: PartialEq + Clone>(
    mut tags: Vec<T>,
    image_tag: Option<&T>,
) -> Vec<T> {
    if let Some(t) = image_tag {
        if !tags.contains(t) {
            tags.insert(0, t.clone());
        }
    }
    tags
}

/// Pairs `--base-pulled-at` values with `bases` bases: one value covers every base, otherwise
/// there is one per base, in the same order. Any other count cannot be paired (which time is
/// which base's?), so it is refused by both readings.
pub(crate) fn pull_times<T>(pulled: &[T], bases: usize) -> Result<Vec<Option<&T>>, Error> {
    match pulled.len() {
        0 => Ok(vec![None; bases]),
        1 => Ok(vec![pulled.first(); bases]),
        n if n == bases => Ok(pulled.iter().map(Some).collect()),
        n => Err(Error::Invalid(
            format!("{n} `--base-pulled-at` values for {bases} base images"),
            "give one `--base-pulled-at` for all bases, or one per `--base`, in the same order"
                .into(),
        )),
    }
}

/// The one digest of a build: `--image`'s and `--digest` must agree.
pub(crate) fn one_digest(
    pinned: Option<&Digest>,
    flag: Option<&Digest>,
) -> Result<Option<Digest>, Error> {
    match (pinned, flag) {
        (Some(a), Some(b)) if a != b => Err(Error::Invalid(
            format!("`--image` says `{a}` but `--digest` says `{b}`"),
            "pass one digest: the one your registry reported on push".into(),
        )),
        (a, b) => Ok(a.or(b).cloned()),
    }
}

/// The service of a build that names none and whose repository no service lists: the
/// repository's short name (`ghcr.io/acme/api` → `api`). The gate judges it as it is; a
/// record, which needs a valid name, falls back to `unknown` ([`assemble`] without a store).
pub(crate) fn implied_service(image: &Repository) -> &str {
    image.short_name()
}

fn parse_opt<T>(
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, lineage_model::ParseError>,
    field: &'static str,
) -> Result<Option<T>, Error> {
    value
        .map(|v| parse(v).map_err(|e| Error::Parse(e.in_field(field))))
        .transpose()
}

/// Reads a build strictly into the record `build record` writes; every problem is an error
/// naming the flag (or the CI variable) it came from. With a `store`, the service is the
/// one that lists the image ([`service_for_image`]); without one (printing what was
/// detected, or a record sent to a server, which resolves it), `--service`, else the
/// [`implied_service`].
pub fn assemble(input: &BuildInput, store: Option<&dyn Store>) -> Result<BuildRecord, Error> {
    let Some(image_arg) = &input.image else {
        return Err(Error::Invalid(
            "`--image` is required".into(),
            "pass the pushed image: `--image ghcr.io/acme/api@sha256:<64 hex>` (or `--image ghcr.io/acme/api --digest sha256:<64 hex>`)".into(),
        ));
    };
    let image = ImageRef::parse(image_arg).map_err(|e| e.in_field("--image"))?;
    let flag_digest = parse_opt(input.digest.as_deref(), Digest::parse, "--digest")?;
    let Some(digest) = one_digest(image.digest.as_ref(), flag_digest.as_ref())? else {
        return Err(Error::Invalid(
            format!("image reference `{image_arg}` is not pinned by digest"),
            format!(
                "a build is recorded by its digest: `--image {}@sha256:<64 hex>` or add `--digest`",
                image.repository
            ),
        ));
    };
    let tags: Vec<Tag> = input
        .tags
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| e.in_field("--tag")))
        .collect::<Result<_, _>>()?;
    let tags = with_image_tag(tags, image.tag.as_ref());

    let pulled: Vec<Timestamp> = input
        .base_pulled_at
        .iter()
        .map(|t| Timestamp::parse(t).map_err(|e| e.in_field("--base-pulled-at")))
        .collect::<Result<_, _>>()?;
    let mut bases = match input.stages() {
        Stages::Flags(refs) => refs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let r = ImageRef::parse(b).map_err(|e| e.in_field("--base"))?;
                Ok(BaseImage {
                    name: r.repository,
                    tag: r.tag,
                    digest: r.digest,
                    pulled_at: None,
                    final_stage: final_stage(i, refs.len()),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
        Stages::Dockerfile(bases) => bases,
    };
    let times = pull_times(&pulled, bases.len())?;
    for (base, t) in bases.iter_mut().zip(times) {
        base.pulled_at = t.copied();
    }

    let commit = input.parsed(Gap::Commit, CommitId::parse)?;
    let source_repo = input.parsed(Gap::SourceRepo, SourceRepo::parse)?;
    let builder = input.parsed(Gap::Builder, Identity::parse)?;
    let git_ref = input.text(Gap::GitRef)?;
    let ci = match input.text(Gap::System)? {
        Some(system) => Some(CiRun {
            system,
            job: input.text(Gap::Job)?,
            run_id: input.text(Gap::RunId)?,
            url: input.text(Gap::Url)?,
        }),
        None => None,
    };
    if let Some(p) = &input.platform {
        let parts: Vec<&str> = p.split('/').collect();
        let ok = (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !ok {
            return Err(Error::Invalid(
                format!("--platform `{p}` is not `os/arch[/variant]`"),
                "write e.g. `linux/amd64` or `linux/arm64/v8`".into(),
            ));
        }
    }
    let dockerfile = input.dockerfile.as_ref().map(|df| DockerfileRef {
        path: df.path.clone(),
        sha256: Some(hex::encode(sha2::Sha256::digest(df.text.as_bytes()))),
    });
    let explicit = parse_opt(input.service.as_deref(), ServiceName::parse, "--service")?;
    let service = match store {
        Some(store) => service_for_image(store, &image.repository, explicit.as_ref())?.name,
        None => explicit.unwrap_or_else(|| {
            ServiceName::parse(implied_service(&image.repository))
                .unwrap_or_else(|_| ServiceName::parse("unknown").expect("a valid name"))
        }),
    };
    Ok(BuildRecord {
        service,
        image: image.repository,
        digest,
        tags,
        bases,
        source_repo,
        git_ref,
        commit,
        started_at: input.parsed(Gap::StartedAt, Timestamp::parse)?,
        finished_at: parse_opt(
            input.finished_at.as_deref(),
            Timestamp::parse,
            "--finished-at",
        )?,
        ci,
        builder,
        platform: input.platform.clone(),
        dockerfile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::build_facts;

    const D: &str = "sha256:2c1e5b3f8d6a4b7c9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
    const E: &str = "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn input() -> BuildInput {
        BuildInput {
            image: Some(format!("ghcr.io/acme/api:1.8.0@{D}")),
            tags: vec!["latest".into(), "1.8.0".into(), "main".into()],
            bases: vec![
                format!("golang:1.22@{E}"),
                format!("gcr.io/distroless/static:nonroot@{E}"),
            ],
            base_pulled_at: vec!["2026-11-14T12:00:00Z".into()],
            commit: Some("a".repeat(40)),
            repo: Some("https://github.com/acme/api".into()),
            ..BuildInput::default()
        }
    }

    /// `build check` judges what `build record` records: for a build that parses, the lenient
    /// facts are the record's facts (the image stays as typed, for the report's subject).
    #[test]
    fn both_readings_give_the_same_facts() {
        let mut input = input();
        input.detected = crate::ci::Detected {
            system: Some("github-actions".into()),
            run_id: Some("42".into()),
            job: Some("release".into()),
            ..Default::default()
        };
        let strict = lineage_policy::BuildFacts::from(&assemble(&input, None).unwrap());
        let lenient = build_facts(&input, None).unwrap();
        assert_eq!(
            lineage_policy::BuildFacts {
                image: input.image.clone(),
                digest: Some(D.into()),
                ..strict
            },
            lenient
        );
    }

    #[test]
    fn the_image_tag_goes_first_and_the_last_base_is_the_final_stage() {
        let mut input = input();
        input.tags = vec!["latest".into()];
        let build = assemble(&input, None).unwrap();
        let tags: Vec<String> = build.tags.iter().map(ToString::to_string).collect();
        assert_eq!(tags, ["1.8.0", "latest"]);
        let finals: Vec<bool> = build.bases.iter().map(|b| b.final_stage).collect();
        assert_eq!(finals, [false, true]);
        assert!(
            build.bases.iter().all(|b| b.pulled_at.is_some()),
            "one time covers all"
        );
        assert_eq!(build.service.as_str(), "api", "the repository's short name");
    }

    #[test]
    fn pull_times_that_cannot_be_paired_are_refused_by_both_readings() {
        let mut input = input();
        input.base_pulled_at = vec![
            "2026-11-14T12:00:00Z".into(),
            "2026-11-14T12:01:00Z".into(),
            "2026-11-14T12:02:00Z".into(),
        ];
        let expected = "3 `--base-pulled-at` values for 2 base images";
        assert_eq!(assemble(&input, None).unwrap_err().to_string(), expected);
        assert_eq!(build_facts(&input, None).unwrap_err().to_string(), expected);
        input.base_pulled_at.pop();
        let build = assemble(&input, None).unwrap();
        assert_ne!(
            build.bases[0].pulled_at, build.bases[1].pulled_at,
            "paired in order"
        );
        // A malformed time is the gate's to report, not a pairing problem.
        input.base_pulled_at[1] = "yesterday".into();
        let facts = build_facts(&input, None).unwrap();
        assert_eq!(facts.bases[1].pulled_at.as_deref(), Some("yesterday"));
    }

    #[test]
    fn two_digests_are_refused_by_both_readings_and_a_malformed_one_is_a_fact() {
        let mut input = input();
        input.digest = Some(E.into());
        let expected = format!("`--image` says `{D}` but `--digest` says `{E}`");
        assert_eq!(assemble(&input, None).unwrap_err().to_string(), expected);
        assert_eq!(build_facts(&input, None).unwrap_err().to_string(), expected);
        input.digest = Some("sha256:ABC".into());
        assert!(assemble(&input, None).is_err());
        let facts = build_facts(&input, None).unwrap();
        assert_eq!(facts.digest.as_deref(), Some("sha256:ABC"));
    }

    #[test]
    fn the_dockerfile_gives_the_bases_when_no_base_is_given() {
        let mut input = input();
        input.bases.clear();
        input.dockerfile = Some(DockerfileInput {
            path: "Dockerfile".into(),
            text: format!(
                "FROM golang:1.22@{E} AS build\nFROM gcr.io/distroless/static:nonroot@{E}\n"
            ),
        });
        let build = assemble(&input, None).unwrap();
        let finals: Vec<bool> = build.bases.iter().map(|b| b.final_stage).collect();
        assert_eq!(finals, [false, true]);
        assert_eq!(
            build
                .dockerfile
                .as_ref()
                .and_then(|d| d.sha256.as_deref())
                .map(str::len),
            Some(64)
        );
        let facts = build_facts(&input, None).unwrap();
        assert_eq!(lineage_policy::BuildFacts::from(&build).bases, facts.bases);
    }

    #[test]
    fn flags_win_and_a_bad_detected_value_names_its_variable() {
        let mut input = input();
        input.commit = None;
        input.detected.commit = Some("abc123".into());
        input.detected.from.insert("commit", "GITHUB_SHA");
        let e = assemble(&input, None).unwrap_err().to_string();
        assert!(
            e.contains("(detected from GITHUB_SHA; pass `--commit` to give it yourself)"),
            "{e}"
        );
        assert_eq!(
            build_facts(&input, None).unwrap().commit.as_deref(),
            Some("abc123")
        );
        input.commit = Some("b".repeat(40));
        assert_eq!(
            assemble(&input, None).unwrap().commit.unwrap().as_str(),
            "b".repeat(40)
        );
    }

    #[test]
    fn a_repository_that_is_no_service_name_is_judged_as_is_and_recorded_as_unknown() {
        let mut input = input();
        input.image = Some(format!("ghcr.io/acme/my_api@{D}"));
        assert_eq!(assemble(&input, None).unwrap().service.as_str(), "unknown");
        let facts = build_facts(&input, None).unwrap();
        assert_eq!(facts.service.as_deref(), Some("my_api"));
    }
}
