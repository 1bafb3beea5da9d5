//! What image builders already wrote about a build: `docker buildx build --metadata-file`
//! (BuildKit's exporter response, with its SLSA provenance when buildx includes it), and the
//! digest files of kaniko (`--digest-file`) and buildah (`--digestfile`). Parsed here once into
//! facts that `build record` fills into its flags, so a build described by a builder's file is
//! recorded through the same path as one described by flags.
//!
//! Formats, as the tools document them: the buildx metadata file is a JSON object with
//! `containerimage.digest`, `image.name` (comma-separated names) and, when provenance is
//! included (`BUILDX_METADATA_PROVENANCE`, on by default since buildx 0.13 in `min` mode),
//! `buildx.build.provenance`: an SLSA v0.2 predicate (`materials`, `metadata`,
//! `invocation`) or an SLSA v1 one (`buildDefinition.resolvedDependencies`, `runDetails`).
//! A digest file holds the manifest digest, `sha256:` and 64 hex characters.

use lineage_model::Digest;
use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// Facts a builder's file states. Every field is what the file said; `bases` are
/// `NAME[:TAG]@DIGEST` references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuilderOutput {
    pub digest: Option<Digest>,
    /// Image names the build pushed (`ghcr.io/acme/api:1.8.0`), in the file's order.
    pub image_names: Vec<String>,
    /// Base images from the provenance's materials, in its order.
    pub bases: Vec<String>,
    pub source_repo: Option<String>,
    pub commit: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The provenance predicate type when the file carried provenance.
    pub provenance: Option<String>,
}

/// Reads a buildx metadata file. `file` names it in errors. A bake metadata file (one object
/// per target) is accepted when it has exactly one target with an image digest.
pub fn parse_buildx_metadata(text: &str, file: &str) -> Result<BuilderOutput, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::Invalid(
            format!("`{file}` is not a buildx metadata file: {e}"),
            "pass the file `docker buildx build --metadata-file FILE` wrote".into(),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(not_metadata(file));
    };
    let build = if object.contains_key("containerimage.digest") {
        object
    } else {
        // `docker buildx bake --metadata-file`: one object per target.
        let targets: Vec<_> = object
            .values()
            .filter_map(Value::as_object)
            .filter(|t| t.contains_key("containerimage.digest"))
            .collect();
        match targets.as_slice() {
            [one] => *one,
            [] => return Err(not_metadata(file)),
            _ => {
                return Err(Error::Invalid(
                    format!("`{file}` describes {} bake targets with images", targets.len()),
                    "record each image on its own: `jq '.TARGET' FILE > one.json`, then `--buildx-metadata one.json`".into(),
                ))
            }
        }
    };
    let digest = build
        .get("containerimage.digest")
        .and_then(Value::as_str)
        .map(|d| Digest::parse(d).map_err(|e| Error::Parse(e.in_field("containerimage.digest"))))
        .transpose()?;
    let image_names = build
        .get("image.name")
        .and_then(Value::as_str)
        .map(|names| {
            names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut out = BuilderOutput {
        digest,
        image_names,
        ..BuilderOutput::default()
    };
    if let Some(p) = build.get("buildx.build.provenance") {
        provenance_facts(p, &mut out);
    }
    Ok(out)
}

fn not_metadata(file: &str) -> Error {
    Error::Invalid(
        format!("`{file}` has no `containerimage.digest`: it is not a buildx metadata file of an image build"),
        "build with `docker buildx build --push --metadata-file FILE …` and pass that FILE".into(),
    )
}

/// Fills what the provenance predicate states: materials that are container images become
/// bases, the VCS source and revision become source and commit, and the build's times.
fn provenance_facts(p: &Value, out: &mut BuilderOutput) {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    // SLSA v1: buildDefinition / runDetails.
    if let Some(def) = p.get("buildDefinition") {
        out.provenance = Some("https://slsa.dev/provenance/v1".into());
        for dep in def
            .get("resolvedDependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push_base(s(dep.get("uri")), dep.get("digest"), out);
        }
        let meta = p.get("runDetails").and_then(|r| r.get("metadata"));
        out.started_at = s(meta.and_then(|m| m.get("startedOn")));
        out.finished_at = s(meta.and_then(|m| m.get("finishedOn")));
        vcs(def.get("internalParameters"), out);
        vcs(p.get("runDetails").and_then(|r| r.get("metadata")), out);
        return;
    }
    out.provenance = Some("https://slsa.dev/provenance/v0.2".into());
    for m in p
        .get("materials")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_base(s(m.get("uri")), m.get("digest"), out);
    }
    let meta = p.get("metadata");
    out.started_at = s(meta.and_then(|m| m.get("buildStartedOn")));
    out.finished_at = s(meta.and_then(|m| m.get("buildFinishedOn")));
    vcs(meta, out);
}

/// BuildKit puts the Git source and revision under its own metadata key.
fn vcs(meta: Option<&Value>, out: &mut BuilderOutput) {
    let Some(meta) = meta else { return };
    let buildkit = meta
        .get("https://mobyproject.org/buildkit@v1#metadata")
        .or_else(|| meta.get("buildkit_metadata"));
    let Some(v) = buildkit.and_then(|b| b.get("vcs")) else {
        return;
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if out.source_repo.is_none() {
        out.source_repo = s("source");
    }
    if out.commit.is_none() {
        out.commit = s("revision");
    }
}

/// A `pkg:docker/NAME@TAG?platform=…` material with a sha256 digest, as `NAME:TAG@sha256:…`.
fn push_base(uri: Option<String>, digest: Option<&Value>, out: &mut BuilderOutput) {
    let (Some(uri), Some(hex)) = (
        uri,
        digest.and_then(|d| d.get("sha256")).and_then(Value::as_str),
    ) else {
        return;
    };
    let Some(rest) = uri.strip_prefix("pkg:docker/") else {
        return;
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    // purl percent-encodes; names and tags use only `/` and `:` of what it encodes.
    let rest = rest.replace("%2F", "/").replace("%3A", ":");
    let (name, tag) = match rest.rsplit_once('@') {
        Some((n, t)) => (n.to_string(), Some(t.to_string())),
        None => (rest.clone(), None),
    };
    let base = match tag {
        Some(t) => format!("{name}:{t}@sha256:{hex}"),
        None => format!("{name}@sha256:{hex}"),
    };
    if !out.bases.contains(&base) {
        out.bases.push(base);
    }
}

/// Reads a kaniko or buildah digest file: the manifest digest, optionally followed by a
/// newline.
pub fn parse_digest_file(text: &str, file: &str) -> Result<Digest, Error> {
    let trimmed = text.trim();
    Digest::parse(trimmed).map_err(|e| {
        Error::Invalid(
            format!("`{file}` does not hold an image digest: {}", e.problem),
            "pass the file kaniko's `--digest-file` or buildah's `--digestfile` wrote (`sha256:` and 64 hex characters)".into(),
        )
    })
}

/// The `build record`/`build check` flags a builder's file fills or checks, as the user typed
/// them (`--image`, `--digest`, `--base`, `--repo`, `--commit`, `--started-at`,
/// `--finished-at`).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub image: Option<String>,
    pub digest: Option<String>,
    /// Whether any `--base` was given.
    pub bases: bool,
    pub repo: Option<String>,
    pub commit: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The values for the flags that were not given (`None`: given, or the file says nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filled {
    /// `--image`: the first name the build pushed.
    pub image: Option<String>,
    /// `--digest`, unless `--image` already pins it.
    pub digest: Option<Digest>,
    /// A `--base`: the provenance's one image.
    pub base: Option<String>,
    pub repo: Option<String>,
    pub commit: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The provenance's images when it names several: it lists materials, not which `FROM`
    /// is the final stage, so none is filled and the caller says so.
    pub unplaced_bases: Vec<String>,
}

/// A given flag says one thing and the builder's file another: nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{flag}` says `{given}` but `{file_flag}` says `{found}`")]
pub struct Contradiction {
    /// `--image` or `--digest`.
    pub flag: &'static str,
    pub given: String,
    /// `--buildx-metadata` or `--digest-file`.
    pub file_flag: &'static str,
    pub found: String,
}

impl Contradiction {
    pub fn hint(&self) -> String {
        format!(
            "drop `{}`: the builder's file says what was built",
            self.flag
        )
    }
}

/// Fills and checks the build flags from what a builder's file (`file_flag`) states: the
/// file's digest must be the one `--image` pins and `--digest` gives (compared as digests; a
/// given value that is not a digest is not the file's either); the other facts fill only
/// what no flag gave. A digest file is a [`BuilderOutput`] with a digest only.
pub fn fill(
    given: &Given,
    output: &BuilderOutput,
    file_flag: &'static str,
) -> Result<Filled, Contradiction> {
    let mut filled = Filled::default();
    let image = given
        .image
        .clone()
        .or_else(|| output.image_names.first().cloned());
    if given.image.is_none() {
        filled.image = image.clone();
    }
    if let Some(found) = &output.digest {
        let differs = |given: &str| !Digest::parse(given).is_ok_and(|g| g == *found);
        let contradiction = |flag, given: &str| Contradiction {
            flag,
            given: given.to_string(),
            file_flag,
            found: found.to_string(),
        };
        if let Some(d) = given.digest.as_deref().filter(|d| differs(d)) {
            return Err(contradiction("--digest", d));
        }
        match image.as_deref().and_then(|i| i.split_once('@')) {
            Some((_, pinned)) if differs(pinned) => return Err(contradiction("--image", pinned)),
            Some(_) => {}
            None => filled.digest = Some(found.clone()),
        }
    }
    if !given.bases {
        match output.bases.as_slice() {
            [one] => filled.base = Some(one.clone()),
            [] => {}
            several => filled.unplaced_bases = several.to_vec(),
        }
    }
    let gap = |flag: &Option<String>, value: &Option<String>| match flag {
        Some(_) => None,
        None => value.clone(),
    };
    filled.repo = gap(&given.repo, &output.source_repo);
    filled.commit = gap(&given.commit, &output.commit);
    filled.started_at = gap(&given.started_at, &output.started_at);
    filled.finished_at = gap(&given.finished_at, &output.finished_at);
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c1e5b3f8d6a4b7c9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
    const B: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn buildx_metadata_gives_the_digest_names_and_provenance_facts() {
        let text = serde_json::json!({
            "buildx.build.ref": "default/default/abc",
            "containerimage.digest": D,
            "image.name": "ghcr.io/acme/api:1.8.0,ghcr.io/acme/api:latest",
            "buildx.build.provenance": {
                "buildType": "https://mobyproject.org/buildkit@v1",
                "materials": [
                    {"uri": "pkg:docker/docker/dockerfile@1", "digest": {"sha256": B}},
                    {"uri": "pkg:docker/python@3.12-slim?platform=linux%2Famd64", "digest": {"sha256": B}}
                ],
                "metadata": {
                    "buildStartedOn": "2026-11-14T13:00:00Z",
                    "buildFinishedOn": "2026-11-14T13:02:00Z",
                    "https://mobyproject.org/buildkit@v1#metadata": {
                        "vcs": {"source": "https://github.com/acme/api", "revision": "a".repeat(40)}
                    }
                }
            }
        })
        .to_string();
        let out = parse_buildx_metadata(&text, "meta.json").unwrap();
        assert_eq!(out.digest.unwrap().to_string(), D);
        assert_eq!(
            out.image_names,
            ["ghcr.io/acme/api:1.8.0", "ghcr.io/acme/api:latest"]
        );
        assert_eq!(
            out.bases,
            [
                format!("docker/dockerfile:1@sha256:{B}"),
                format!("python:3.12-slim@sha256:{B}")
            ]
        );
        assert_eq!(
            out.source_repo.as_deref(),
            Some("https://github.com/acme/api")
        );
        assert_eq!(out.commit, Some("a".repeat(40)));
        assert_eq!(out.started_at.as_deref(), Some("2026-11-14T13:00:00Z"));
        assert_eq!(
            out.provenance.as_deref(),
            Some("https://slsa.dev/provenance/v0.2")
        );
    }

    #[test]
    fn metadata_without_provenance_gives_the_digest_only() {
        let text = format!(r#"{{"containerimage.digest": "{D}", "image.name": "reg/x:1"}}"#);
        let out = parse_buildx_metadata(&text, "m.json").unwrap();
        assert_eq!(out.digest.unwrap().to_string(), D);
        assert!(out.bases.is_empty() && out.provenance.is_none());
    }

    #[test]
    fn a_bake_file_with_one_image_target_is_read_and_one_with_two_is_refused() {
        let one = format!(r#"{{"api": {{"containerimage.digest": "{D}"}}, "lint": {{}}}}"#);
        assert!(parse_buildx_metadata(&one, "b.json")
            .unwrap()
            .digest
            .is_some());
        let two = format!(
            r#"{{"api": {{"containerimage.digest": "{D}"}}, "web": {{"containerimage.digest": "{D}"}}}}"#
        );
        let e = parse_buildx_metadata(&two, "b.json").unwrap_err();
        assert!(e.to_string().contains("2 bake targets"), "{e}");
    }

    #[test]
    fn files_that_are_not_metadata_are_refused_with_the_file_named() {
        let e = parse_buildx_metadata("{}", "x.json").unwrap_err();
        assert!(e.to_string().contains("`x.json`"), "{e}");
        assert!(parse_buildx_metadata("not json", "x.json").is_err());
    }

    #[test]
    fn digest_files_of_kaniko_and_buildah_are_read() {
        assert_eq!(parse_digest_file(D, "d").unwrap().to_string(), D);
        assert_eq!(
            parse_digest_file(&format!("{D}\n"), "d")
                .unwrap()
                .to_string(),
            D
        );
        let e = parse_digest_file("latest", "digest.txt").unwrap_err();
        assert!(e.to_string().contains("`digest.txt`"), "{e}");
    }

    fn output(digest: &str) -> BuilderOutput {
        BuilderOutput {
            digest: Some(Digest::parse(digest).unwrap()),
            ..BuilderOutput::default()
        }
    }

    #[test]
    fn the_files_digest_fills_the_digest_and_must_agree_with_the_pinned_image() {
        let filled = fill(&Given::default(), &output(D), "--digest-file").unwrap();
        assert_eq!(filled.digest.unwrap().to_string(), D);
        let pinned = Given {
            image: Some(format!("reg/api@{D}")),
            ..Given::default()
        };
        let filled = fill(&pinned, &output(D), "--digest-file").unwrap();
        assert_eq!(filled.digest, None, "the image pins it already");
        let other = format!("sha256:{B}");
        let e = fill(&pinned, &output(&other), "--digest-file").unwrap_err();
        assert_eq!(e.flag, "--image");
        assert_eq!(
            e.to_string(),
            format!("`--image` says `{D}` but `--digest-file` says `{other}`")
        );
    }

    #[test]
    fn digests_are_compared_as_digests_and_a_bad_one_contradicts() {
        let given = |d: &str| Given {
            digest: Some(d.to_string()),
            ..Given::default()
        };
        assert!(fill(&given(D), &output(D), "--digest-file").is_ok());
        let e = fill(&given(&D.to_uppercase()), &output(D), "--digest-file").unwrap_err();
        assert_eq!((e.flag, e.file_flag), ("--digest", "--digest-file"));
    }

    #[test]
    fn metadata_fills_only_what_no_flag_gave() {
        let out = BuilderOutput {
            digest: Some(Digest::parse(D).unwrap()),
            image_names: vec!["reg/api:1".into(), "reg/api:latest".into()],
            bases: vec![format!("python:3.12@sha256:{B}")],
            source_repo: Some("https://github.com/acme/api".into()),
            commit: Some("a".repeat(40)),
            ..BuilderOutput::default()
        };
        let given = Given {
            commit: Some("b".repeat(40)),
            bases: true,
            ..Given::default()
        };
        let filled = fill(&given, &out, "--buildx-metadata").unwrap();
        assert_eq!(filled.image.as_deref(), Some("reg/api:1"));
        assert_eq!(filled.base, None);
        assert_eq!(filled.commit, None);
        assert_eq!(filled.repo, out.source_repo);
        let several = BuilderOutput {
            bases: vec!["a@x".into(), "b@y".into()],
            ..out
        };
        let filled = fill(&Given::default(), &several, "--buildx-metadata").unwrap();
        assert_eq!((filled.base, filled.unplaced_bases.len()), (None, 2));
    }
}
