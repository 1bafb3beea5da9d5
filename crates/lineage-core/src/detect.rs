//! `build record --from-registry`: what the pushed image's registry says fills the build flags
//! that were not given, and the image's base is found by its OCI annotations or by matching
//! its layers against the bases the ledger knows.
//!
//! This is the decision only. The caller reads the image from its registry (the adapter), the
//! known bases from the ledger, and passes both in; the one further registry question (the
//! annotated base's layers) goes through the [`BaseImages`] port. Nothing here writes: the base
//! fact found is returned, and `gate::record_build` records it in the build's own transaction,
//! so a refused build writes nothing.

use lineage_model::{
    BaseSeen, CommitId, Digest, ImageRef, Record, Repository, SourceRepo, Timestamp,
};
use lineage_registry::{layer_match, Fact, ImageDetails, Platform};
use lineage_store::Store;
use serde::Serialize;

/// How the base was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `org.opencontainers.image.base.*` named it (and the layers did not contradict it).
    Annotation,
    /// A known base's layers are a prefix of the image's.
    LayerMatch,
    /// Neither.
    Unknown,
}

/// How the base of a build read from the registry was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseDetection {
    /// `annotation`, `layer-match` or `unknown`.
    pub method: Method,
    /// `exact (annotation)`, `layer match (k of n layers)` or `unknown`.
    pub summary: String,
    /// The base as recorded: `name[:tag]@digest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_layers: Option<usize>,
    pub image_layers: usize,
    /// Something that went wrong without stopping the build (e.g. the base's layers could
    /// not be read, so later layer matches will not find it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The `build record` flags `--from-registry` fills or checks, as the user gave them.
///
/// `--image` and `--digest` are checked values (the caller parsed them). The others are
/// compared leniently, as typed: a value that does not parse is left to the build record's own
/// checks, which name the flag.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub image: Option<ImageRef>,
    pub digest: Option<Digest>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    pub repo: Option<String>,
    pub commit: Option<String>,
    pub finished_at: Option<String>,
    /// The last `--base` (the final stage's).
    pub base: Option<String>,
}

/// The values for the flags that were not given (`None`: given, or the registry says nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// `--image`: the repository, the tag (the reference's, else `--image`'s) and the digest.
    pub image: ImageRef,
    pub platform: Option<String>,
    pub repo: Option<String>,
    pub commit: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// A `--base` to add (none was given).
    pub base: Option<ImageRef>,
}

/// What `build record --from-registry` learnt from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromRegistry {
    pub filled: Filled,
    pub detection: BaseDetection,
    /// The annotated base with its layers, when the ledger does not know it yet: recorded as a
    /// `base` fact with the build, so that later images copied without annotations match it.
    pub base_fact: Option<BaseSeen>,
}

/// The flag a registry fact contradicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Flag {
    #[serde(rename = "--image")]
    Image,
    #[serde(rename = "--digest")]
    Digest,
    #[serde(rename = "--platform")]
    Platform,
    #[serde(rename = "--repo")]
    Repo,
    #[serde(rename = "--commit")]
    Commit,
    #[serde(rename = "--base")]
    Base,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Image => "--image",
            Flag::Digest => "--digest",
            Flag::Platform => "--platform",
            Flag::Repo => "--repo",
            Flag::Commit => "--commit",
            Flag::Base => "--base",
        }
    }
}

/// A given flag says one thing and the registry another: nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` says `{given}` but the registry's {what} says `{found}`", .flag.as_str())]
pub struct Contradiction {
    pub flag: Flag,
    pub given: String,
    /// What of the registry's said otherwise (`digest for the reference`,
    /// `` `org.opencontainers.image.revision` ``, …).
    pub what: &'static str,
    pub found: String,
}

impl Contradiction {
    pub fn hint(&self) -> String {
        format!(
            "drop `{}` to use the registry's value, or check that `--from-registry` names the image this build pushed",
            self.flag.as_str()
        )
    }
}

/// The port to the annotated base's registry: reads the base image (for the platform the
/// build was read for), for its layers and its `created` time. An `Err` is only said as a
/// warning; it does not make the build wrong.
pub trait BaseImages {
    fn read(
        &self,
        base: &Repository,
        digest: &Digest,
    ) -> Result<ImageDetails, lineage_registry::Error>;
}

/// The bases the ledger knows with their layers, oldest first.
pub fn known_bases(store: &dyn Store) -> Result<Vec<BaseSeen>, crate::Error> {
    Ok(store
        .facts("base", None)?
        .into_iter()
        .filter_map(|e| match e.record {
            Record::Base(b) => Some(b),
            _ => None,
        })
        .collect())
}

fn fact_value(f: &Option<Fact>) -> Option<&str> {
    f.as_ref().map(|f| f.value.as_str())
}

/// The base `image` (read from the registry under `name[:tag]`) as a fact seen at `now`.
pub fn base_seen(reference: &ImageRef, image: &ImageDetails, now: Timestamp) -> BaseSeen {
    BaseSeen {
        name: reference.repository.clone(),
        tag: reference.tag.clone(),
        digest: image.digest.clone(),
        layers: image.layers.clone(),
        created: fact_value(&image.facts.created).and_then(|c| Timestamp::parse(c).ok()),
        seen_at: now,
    }
}

/// Whether `known` already records `seen`: the same name, tag and digest, and the same
/// layers (a fact whose layers could not be read adds nothing to one that has them). The one
/// rule for `base add` and for a base found by `--from-registry`.
pub fn already_known(known: &BaseSeen, seen: &BaseSeen) -> bool {
    known.name == seen.name
        && known.tag == seen.tag
        && known.digest == seen.digest
        && (known.layers == seen.layers || seen.layers.is_empty())
}

/// What `lineage base add` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseAdded {
    /// Written at this ledger entry.
    Recorded(u64),
    /// The ledger already held it, at this entry; nothing was written.
    Unchanged(u64),
}

/// `lineage base add`: records the base the registry showed, unless the ledger already
/// holds it.
pub fn add_base(
    store: &mut dyn Store,
    seen: &BaseSeen,
    by: &lineage_model::Identity,
    now: Timestamp,
) -> Result<BaseAdded, crate::Error> {
    let existing = store
        .facts("base", Some(&seen.name.to_string()))?
        .into_iter()
        .find(|e| matches!(&e.record, Record::Base(b) if already_known(b, seen)));
    if let Some(e) = existing {
        return Ok(BaseAdded::Unchanged(e.index));
    }
    let index = store.record_facts(&[Record::Base(seen.clone())], now, Some(by))?[0];
    Ok(BaseAdded::Recorded(index))
}

/// Fills and checks the build flags from what the registry says about the image `reference`
/// named (`image`), and finds its base among `known` (oldest first). `Err` when a given flag
/// contradicts the registry.
pub fn from_registry(
    reference: &ImageRef,
    given: &Given,
    image: &ImageDetails,
    known: &[BaseSeen],
    bases: &dyn BaseImages,
    now: Timestamp,
) -> Result<FromRegistry, Contradiction> {
    let digest = image.digest.clone();
    let contradiction = |flag, given: &str, what, found: &str| Contradiction {
        flag,
        given: given.to_string(),
        what,
        found: found.to_string(),
    };

    // The digest: the registry's, which `--image` and `--digest` must agree with.
    if let Some(d) = given.image.as_ref().and_then(|i| i.digest.as_ref()) {
        if *d != digest {
            return Err(contradiction(
                Flag::Image,
                &d.to_string(),
                "digest for the reference",
                &digest.to_string(),
            ));
        }
    }
    if let Some(d) = &given.digest {
        if *d != digest {
            return Err(contradiction(
                Flag::Digest,
                &d.to_string(),
                "digest for the reference",
                &digest.to_string(),
            ));
        }
    }
    let tag = reference
        .tag
        .clone()
        .or_else(|| given.image.as_ref().and_then(|i| i.tag.clone()));
    let mut filled = Filled {
        image: ImageRef {
            repository: reference.repository.clone(),
            tag,
            digest: Some(digest),
        },
        platform: None,
        repo: None,
        commit: None,
        finished_at: None,
        base: None,
    };
    if let Some(p) = &image.platform {
        match &given.platform {
            Some(g)
                if Platform::parse(g).map(|g| g.to_string())
                    != Platform::parse(p).map(|x| x.to_string()) =>
            {
                return Err(contradiction(Flag::Platform, g, "chosen platform", p));
            }
            Some(_) => {}
            None => filled.platform = Some(p.clone()),
        }
    }

    // Source and revision: labels or annotations fill the flags; given flags must agree.
    let facts = &image.facts;
    if let Some(found) = fact_value(&facts.source) {
        match &given.repo {
            Some(g) => {
                let same = match (SourceRepo::parse(g), SourceRepo::parse(found)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => g == found,
                };
                if !same {
                    return Err(contradiction(
                        Flag::Repo,
                        g,
                        "`org.opencontainers.image.source`",
                        found,
                    ));
                }
            }
            None => filled.repo = Some(found.to_string()),
        }
    }
    if let Some(found) = fact_value(&facts.revision) {
        match &given.commit {
            Some(g) => {
                let same = match (CommitId::parse(g), CommitId::parse(found)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => g == found,
                };
                if !same {
                    return Err(contradiction(
                        Flag::Commit,
                        g,
                        "`org.opencontainers.image.revision`",
                        found,
                    ));
                }
            }
            None => filled.commit = Some(found.to_string()),
        }
    }
    if given.finished_at.is_none() {
        // Only a fallback: an unreadable `created` is not worth failing a build record for.
        filled.finished_at = fact_value(&facts.created).and_then(|c| Timestamp::parse(c).ok());
    }

    // The base: by annotation, else by layer match against the bases the ledger knows.
    let (detection, base_fact, found) = detect_base(image, known, bases, now);
    if let Some(found) = found {
        match &given.base {
            Some(g) => {
                // Only an exact annotation can contradict a given base; a layer match
                // defers to it. A `--base` that does not parse is the build record's error.
                let given_digest = ImageRef::parse(g).ok().and_then(|r| r.digest);
                if let (Method::Annotation, Some(d)) = (detection.method, given_digest) {
                    if Some(&d) != found.digest.as_ref() {
                        return Err(contradiction(
                            Flag::Base,
                            g,
                            "`org.opencontainers.image.base.digest`",
                            &found
                                .digest
                                .as_ref()
                                .map(|d| d.to_string())
                                .unwrap_or_default(),
                        ));
                    }
                }
            }
            None => filled.base = Some(found),
        }
    }
    Ok(FromRegistry {
        filled,
        detection,
        base_fact,
    })
}

/// The known base whose layers are the longest prefix of `layers`; among equals, the most
/// recently recorded.
pub fn best_layer_match<'a>(
    known: &'a [BaseSeen],
    layers: &[Digest],
) -> Option<(usize, &'a BaseSeen)> {
    let mut best: Option<(usize, &BaseSeen)> = None;
    for b in known {
        if let Some((k, _)) = layer_match(layers, &b.layers) {
            if best.is_none_or(|(bk, _)| k >= bk) {
                best = Some((k, b));
            }
        }
    }
    best
}

/// A known base as an image reference: `name:tag@digest`.
fn pinned(b: &BaseSeen) -> ImageRef {
    ImageRef {
        repository: b.name.clone(),
        tag: b.tag.clone(),
        digest: Some(b.digest.clone()),
    }
}

fn shown(b: &BaseSeen) -> String {
    pinned(b).to_string()
}

/// What the annotations say the base is, with a warning when they say it badly.
fn annotated_base(image: &ImageDetails, known: &[BaseSeen]) -> (Option<Annotated>, Option<String>) {
    match (
        fact_value(&image.facts.base_name),
        fact_value(&image.facts.base_digest),
    ) {
        // A digest-only annotation (buildah writes one for `FROM ${BASE}` with a digest ARG)
        // is named from the bases Lineage knows with that digest.
        (None, Some(digest)) => match Digest::parse(digest) {
            Ok(d) => {
                let named: Vec<&BaseSeen> = known.iter().filter(|k| k.digest == d).collect();
                let mut names: Vec<String> = named.iter().map(|k| shown(k)).collect();
                names.sort();
                names.dedup();
                match named.iter().max_by_key(|k| k.seen_at) {
                    Some(k) => {
                        let warning = (names.len() > 1).then(|| {
                            format!(
                                "the base digest is known under {} names ({}); recorded the most recently seen, `{}`",
                                names.len(),
                                names.join(", "),
                                shown(k)
                            )
                        });
                        let base = ImageRef {
                            repository: k.name.clone(),
                            tag: k.tag.clone(),
                            digest: Some(d.clone()),
                        };
                        (
                            Some(Annotated {
                                base,
                                digest: d,
                                digest_only: true,
                            }),
                            warning,
                        )
                    }
                    None => (
                        None,
                        Some(format!(
                            "the image names its base only by digest (`org.opencontainers.image.base.digest` = `{d}`), and no base Lineage knows has it; teach it with `lineage base add NAME:TAG`; fell back to layer match"
                        )),
                    ),
                }
            }
            Err(_) => (
                None,
                Some(format!(
                    "the base annotation `{}` is not a digest; fell back to layer match",
                    lineage_model::inert(digest)
                )),
            ),
        },
        (Some(name), Some(digest)) => match (ImageRef::parse(name), Digest::parse(digest)) {
            (Ok(r), Ok(d)) if r.digest.as_ref().is_none_or(|x| *x == d) => (
                Some(Annotated {
                    base: ImageRef {
                        digest: Some(d.clone()),
                        ..r
                    },
                    digest: d,
                    digest_only: false,
                }),
                None,
            ),
            _ => (
                None,
                Some(format!(
                    "the base annotations `{name}` / `{digest}` do not form an image reference; fell back to layer match"
                )),
            ),
        },
        _ => (None, None),
    }
}

/// A base the annotations name.
struct Annotated {
    /// `name[:tag]@digest`.
    base: ImageRef,
    digest: Digest,
    /// Only the digest was annotated; the name is a known base's.
    digest_only: bool,
}

fn detect_base(
    image: &ImageDetails,
    known: &[BaseSeen],
    bases: &dyn BaseImages,
    now: Timestamp,
) -> (BaseDetection, Option<BaseSeen>, Option<ImageRef>) {
    let n = image.layers.len();
    let (annotated, mut warning) = annotated_base(image, known);
    if let Some(Annotated {
        base,
        digest,
        digest_only,
    }) = annotated
    {
        // Read the base for its layers, so that later images copied without annotations
        // are still matched to it. Failing to read it does not make the build wrong.
        let (layers, created) = match bases.read(&base.repository, &digest) {
            Ok(b) => (
                b.layers,
                fact_value(&b.facts.created).and_then(|c| Timestamp::parse(c).ok()),
            ),
            Err(e) => {
                warning = Some(format!(
                    "could not read the base's layers ({e}); later layer matches will not find it"
                ));
                (Vec::new(), None)
            }
        };
        // The annotation is a claim and the layers are evidence: when the annotated base's
        // layers are not under the image but a known base's are, the layers win, and the
        // contradiction is said.
        if !layers.is_empty() && layer_match(&image.layers, &layers).is_none() {
            if let Some((k, b)) = best_layer_match(known, &image.layers) {
                if b.digest != digest {
                    let by_layers = pinned(b);
                    let detection = BaseDetection {
                        method: Method::LayerMatch,
                        summary: format!("layer match ({k} of {n} layers)"),
                        base: Some(by_layers.to_string()),
                        matched_layers: Some(k),
                        image_layers: n,
                        warning: Some(format!(
                            "the image's annotations say its base is `{base}`, but its layers are those of `{by_layers}`; recorded the layer evidence"
                        )),
                    };
                    return (detection, None, Some(by_layers));
                }
            }
        }
        let seen = BaseSeen {
            name: base.repository.clone(),
            tag: base.tag.clone(),
            digest: digest.clone(),
            layers,
            created,
            seen_at: now,
        };
        let fact = (!known.iter().any(|k| already_known(k, &seen))).then_some(seen);
        let detection = BaseDetection {
            method: Method::Annotation,
            summary: if digest_only {
                "exact (digest annotation, named from a known base)".into()
            } else {
                "exact (annotation)".into()
            },
            base: Some(base.to_string()),
            matched_layers: None,
            image_layers: n,
            warning,
        };
        return (detection, fact, Some(base));
    }
    let best = best_layer_match(known, &image.layers);
    // A mirror and its origin share layers: an equal match under another name is said, not
    // hidden.
    if let Some((k, b)) = best {
        let mut names: Vec<String> = known
            .iter()
            .filter(|o| layer_match(&image.layers, &o.layers).is_some_and(|(ok, _)| ok == k))
            .map(shown)
            .collect();
        names.sort();
        names.dedup();
        if names.len() > 1 {
            let note = format!(
                "ambiguous layer match: the layers of {} known bases match equally ({}); recorded the most recently seen, `{}`",
                names.len(),
                names.join(", "),
                shown(b)
            );
            warning = Some(match warning {
                Some(w) => format!("{w}; {note}"),
                None => note,
            });
        }
    }
    match best {
        Some((k, b)) => {
            let base = pinned(b);
            (
                BaseDetection {
                    method: Method::LayerMatch,
                    summary: format!("layer match ({k} of {n} layers)"),
                    base: Some(base.to_string()),
                    matched_layers: Some(k),
                    image_layers: n,
                    warning,
                },
                None,
                Some(base),
            )
        }
        None => (
            BaseDetection {
                method: Method::Unknown,
                summary: "unknown".into(),
                base: None,
                matched_layers: None,
                image_layers: n,
                warning,
            },
            None,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lineage_registry::FactOrigin;

    use super::*;

    /// A digest is one hex character standing for 64 of it, as in `tests/core.rs`.
    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn layers(cs: &str) -> Vec<Digest> {
        cs.chars().map(d).collect()
    }

    fn at(day: u32) -> Timestamp {
        Timestamp::parse(&format!("2026-11-{:02}T00:00:00Z", day + 1)).unwrap()
    }

    fn fact(value: &str) -> Option<Fact> {
        Some(Fact {
            value: value.to_string(),
            origin: FactOrigin::ManifestAnnotation,
        })
    }

    /// The image `ghcr.io/acme/app` (digest `a`) with these layers and no facts.
    fn image(layer_chars: &str) -> ImageDetails {
        ImageDetails {
            digest: d('a'),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platforms: Vec::new(),
            platform: None,
            manifest_digest: d('a'),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: d('c'),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            facts: Default::default(),
            layers: layers(layer_chars),
        }
    }

    /// A known base `name` (`python:3.12`) with digest `digest`, these layers, seen on `day`.
    fn taught(name: &str, digest: char, layer_chars: &str, day: u32) -> BaseSeen {
        let r = ImageRef::parse(name).unwrap();
        BaseSeen {
            name: r.repository,
            tag: r.tag,
            digest: d(digest),
            layers: layers(layer_chars),
            created: None,
            seen_at: at(day),
        }
    }

    fn reference() -> ImageRef {
        ImageRef::parse("ghcr.io/acme/app:1.0").unwrap()
    }

    /// The annotated bases' registry: each base by digest, with its layers; others fail.
    struct Bases(Vec<(Digest, Vec<Digest>)>);

    impl BaseImages for Bases {
        fn read(
            &self,
            base: &Repository,
            digest: &Digest,
        ) -> Result<ImageDetails, lineage_registry::Error> {
            match self.0.iter().find(|(d, _)| d == digest) {
                Some((_, l)) => {
                    let mut img = image("");
                    img.digest = digest.clone();
                    img.layers = l.clone();
                    img.facts.created = fact("2026-10-01T00:00:00Z");
                    Ok(img)
                }
                None => Err(lineage_registry::Error::BlobUnknown {
                    repository: base.to_string(),
                    digest: digest.clone(),
                }),
            }
        }
    }

    fn run(
        given: &Given,
        img: &ImageDetails,
        known: &[BaseSeen],
        bases: &Bases,
    ) -> Result<FromRegistry, Contradiction> {
        from_registry(&reference(), given, img, known, bases, at(9))
    }

    fn annotated(name: Option<&str>, digest: &str, layer_chars: &str) -> ImageDetails {
        let mut img = image(layer_chars);
        img.facts.base_name = name.and_then(fact);
        img.facts.base_digest = fact(digest);
        img
    }

    #[test]
    fn the_annotation_names_the_base_and_a_new_base_is_returned_as_a_fact() {
        let python = d('b').to_string();
        let img = annotated(Some("python:3.12"), &python, "123");
        // A shorter known base under the image does not outvote the annotation.
        let known = [taught("alpine:3", 'e', "1", 0)];
        let bases = Bases(vec![(d('b'), layers("12"))]);
        let got = run(&Given::default(), &img, &known, &bases).unwrap();
        assert_eq!(got.detection.method, Method::Annotation);
        assert_eq!(got.detection.summary, "exact (annotation)");
        assert_eq!(got.detection.warning, None);
        let base = got.filled.base.clone().unwrap();
        assert_eq!(
            base.to_string(),
            format!("docker.io/library/python:3.12@{python}")
        );
        assert_eq!(got.detection.base, Some(base.to_string()));
        let fact = got.base_fact.unwrap();
        assert_eq!(fact.digest, d('b'));
        assert_eq!(fact.layers, layers("12"));
        assert_eq!(
            fact.created,
            Some(Timestamp::parse("2026-10-01T00:00:00Z").unwrap())
        );
        assert_eq!(fact.seen_at, at(9));

        // Known already with the same layers: nothing new to record.
        let seen = [taught("python:3.12", 'b', "12", 0)];
        let got = run(&Given::default(), &img, &seen, &bases).unwrap();
        assert_eq!(got.detection.method, Method::Annotation);
        assert_eq!(got.base_fact, None);

        // The base's registry fails: still the annotation, said, recorded without layers.
        let got = run(&Given::default(), &img, &[], &Bases(Vec::new())).unwrap();
        assert_eq!(got.detection.method, Method::Annotation);
        let warning = got.detection.warning.unwrap();
        assert!(
            warning.starts_with("could not read the base's layers"),
            "{warning}"
        );
        assert_eq!(got.base_fact.unwrap().layers, Vec::<Digest>::new());
    }

    #[test]
    fn layers_that_contradict_the_annotation_win() {
        let img = annotated(Some("python:3.11"), &d('b').to_string(), "123");
        let known = [taught("python:3.12", 'f', "12", 0)];
        // The annotated base's layers are not under the image.
        let bases = Bases(vec![(d('b'), layers("45"))]);
        let got = run(&Given::default(), &img, &known, &bases).unwrap();
        assert_eq!(got.detection.method, Method::LayerMatch);
        assert_eq!(got.detection.matched_layers, Some(2));
        assert_eq!(got.filled.base.unwrap().digest, Some(d('f')));
        assert_eq!(got.base_fact, None);
        let warning = got.detection.warning.unwrap();
        assert!(
            warning.contains("annotations say") && warning.contains("python:3.11"),
            "{warning}"
        );
    }

    #[test]
    fn a_digest_only_annotation_is_named_from_the_known_bases() {
        let img = annotated(None, &d('b').to_string(), "123");
        let known = [
            taught("python:3.12", 'b', "12", 0),
            taught("mirror.example/python:3.12", 'b', "12", 1),
        ];
        let bases = Bases(vec![(d('b'), layers("12"))]);
        let got = run(&Given::default(), &img, &known, &bases).unwrap();
        assert_eq!(got.detection.method, Method::Annotation);
        assert_eq!(
            got.detection.summary,
            "exact (digest annotation, named from a known base)"
        );
        // The most recently seen name, and both said.
        let base = got.filled.base.unwrap();
        assert_eq!(base.repository.to_string(), "mirror.example/python");
        let warning = got.detection.warning.unwrap();
        assert!(warning.contains("known under 2 names"), "{warning}");

        // A digest no known base has: layer match, and the way to teach it.
        let img = annotated(None, &d('9').to_string(), "123");
        let got = run(&Given::default(), &img, &known, &bases).unwrap();
        assert_eq!(got.detection.method, Method::LayerMatch);
        let warning = got.detection.warning.unwrap();
        assert!(
            warning.contains("only by digest") && warning.contains("lineage base add"),
            "{warning}"
        );

        // Not a digest at all: said inertly, layer match.
        let img = annotated(None, "sha256:\u{1b}[31mnope", "123");
        let got = run(&Given::default(), &img, &known, &bases).unwrap();
        let warning = got.detection.warning.unwrap();
        assert!(
            !warning.contains('\u{1b}') && warning.contains("is not a digest"),
            "{warning}"
        );
    }

    #[test]
    fn a_layer_match_picks_the_longest_prefix_and_says_an_equal_one() {
        let img = image("1234");
        let known = [
            taught("debian:12", '5', "1", 0),
            taught("python:3.12", '6', "12", 1),
            taught("python:3.12-dev", '7', "125", 2),
        ];
        let got = run(&Given::default(), &img, &known, &Bases(Vec::new())).unwrap();
        assert_eq!(got.detection.method, Method::LayerMatch);
        assert_eq!(got.detection.summary, "layer match (2 of 4 layers)");
        assert_eq!(got.detection.matched_layers, Some(2));
        assert_eq!(got.detection.image_layers, 4);
        assert_eq!(got.filled.base.unwrap().digest, Some(d('6')));
        assert_eq!(got.detection.warning, None);
        assert_eq!(got.base_fact, None);
        assert_eq!(
            best_layer_match(&known, &img.layers).map(|(k, _)| k),
            Some(2)
        );

        // A mirror with the same layers, seen later: the later one, and both named.
        let mut with_mirror = known.to_vec();
        with_mirror.push(taught("mirror.example/python:3.12", '8', "12", 3));
        let got = run(&Given::default(), &img, &with_mirror, &Bases(Vec::new())).unwrap();
        assert_eq!(got.filled.base.unwrap().digest, Some(d('8')));
        let warning = got.detection.warning.unwrap();
        assert!(
            warning.starts_with("ambiguous layer match: the layers of 2 known bases"),
            "{warning}"
        );
    }

    #[test]
    fn no_annotation_and_no_matching_layers_is_unknown() {
        let known = [taught("python:3.12", '6', "89", 0)];
        let got = run(&Given::default(), &image("123"), &known, &Bases(Vec::new())).unwrap();
        assert_eq!(got.detection.method, Method::Unknown);
        assert_eq!(got.detection.summary, "unknown");
        assert_eq!(got.detection.base, None);
        assert_eq!(got.filled.base, None);
        assert_eq!(got.base_fact, None);
        let json = serde_json::to_value(&got.detection).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method": "unknown", "summary": "unknown", "image_layers": 3})
        );
    }

    #[test]
    fn the_registry_fills_what_was_not_given() {
        let mut img = image("1");
        img.platform = Some("linux/arm64/v8".into());
        img.facts.source = fact("https://github.com/acme/app");
        img.facts.revision = fact(&"0123456789".repeat(4));
        img.facts.created = fact("2026-11-02T10:00:00Z");
        let got = run(&Given::default(), &img, &[], &Bases(Vec::new())).unwrap();
        let f = got.filled;
        assert_eq!(
            f.image.to_string(),
            format!("ghcr.io/acme/app:1.0@{}", d('a'))
        );
        assert_eq!(f.platform.as_deref(), Some("linux/arm64/v8"));
        assert_eq!(f.repo.as_deref(), Some("https://github.com/acme/app"));
        assert_eq!(f.commit, Some("0123456789".repeat(4)));
        assert_eq!(
            f.finished_at,
            Some(Timestamp::parse("2026-11-02T10:00:00Z").unwrap())
        );

        // Given flags that agree are kept, not filled: the same repository in another spelling,
        // a tag from `--image` when the reference has none.
        let given = Given {
            image: Some(ImageRef::parse("ghcr.io/acme/app:2.0").unwrap()),
            platform: Some("linux/arm64/v8".into()),
            repo: Some("https://github.com/acme/app.git".into()),
            commit: Some("0123456789".repeat(4)),
            finished_at: Some("2026-11-02T11:00:00Z".into()),
            ..Given::default()
        };
        let untagged = ImageRef::parse("ghcr.io/acme/app").unwrap();
        let got = from_registry(&untagged, &given, &img, &[], &Bases(Vec::new()), at(9)).unwrap();
        let f = got.filled;
        assert_eq!(f.image.tag.unwrap().as_str(), "2.0");
        assert_eq!(
            (f.platform, f.repo, f.commit, f.finished_at),
            (None, None, None, None)
        );
    }

    #[test]
    fn a_given_flag_the_registry_contradicts_is_named() {
        let python = d('b');
        let mut img = annotated(Some("python:3.12"), &python.to_string(), "123");
        img.platform = Some("linux/amd64".into());
        img.facts.source = fact("https://github.com/acme/app");
        img.facts.revision = fact(&"0123456789".repeat(4));
        let bases = Bases(vec![(python.clone(), layers("12"))]);
        let cases: Vec<(Given, Flag, &str)> = vec![
            (
                Given {
                    image: Some(ImageRef::parse(&format!("ghcr.io/acme/app@{}", d('e'))).unwrap()),
                    ..Given::default()
                },
                Flag::Image,
                "digest for the reference",
            ),
            (
                Given {
                    digest: Some(d('e')),
                    ..Given::default()
                },
                Flag::Digest,
                "digest for the reference",
            ),
            (
                Given {
                    platform: Some("linux/arm64".into()),
                    ..Given::default()
                },
                Flag::Platform,
                "chosen platform",
            ),
            (
                Given {
                    repo: Some("https://github.com/acme/other".into()),
                    ..Given::default()
                },
                Flag::Repo,
                "`org.opencontainers.image.source`",
            ),
            (
                Given {
                    commit: Some("f".repeat(40)),
                    ..Given::default()
                },
                Flag::Commit,
                "`org.opencontainers.image.revision`",
            ),
            (
                Given {
                    base: Some(format!("python:3.12@{}", d('e'))),
                    ..Given::default()
                },
                Flag::Base,
                "`org.opencontainers.image.base.digest`",
            ),
        ];
        for (given, flag, what) in cases {
            let err = run(&given, &img, &[], &bases).unwrap_err();
            assert_eq!((err.flag, err.what), (flag, what), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("`{}` says `", flag.as_str())),
                "{err}"
            );
            assert!(err.hint().starts_with(&format!("drop `{}`", flag.as_str())));
        }

        // A given base wins over a layer match (it is only contradicted by an annotation).
        let known = [taught("python:3.12", 'f', "12", 0)];
        let given = Given {
            base: Some(format!("python:3.12@{}", d('e'))),
            ..Given::default()
        };
        let got = run(&given, &image("123"), &known, &bases).unwrap();
        assert_eq!(got.detection.method, Method::LayerMatch);
        assert_eq!(got.filled.base, None);
    }
}
