//! What a CI system tells us about a build, from its documented environment variables.
//!
//! The caller passes the environment in (library crates never read it themselves), so tests
//! can feed each CI system's variables directly.

use std::collections::BTreeMap;

use serde::Serialize;

/// What was detected. Every field is what the CI system said, unvalidated except where noted:
/// the caller parses it into checked types, so a bad value from CI gets the same error as a
/// bad flag, and `from` says which variable it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub system: Option<String>,
    pub job: Option<String>,
    pub run_id: Option<String>,
    pub url: Option<String>,
    pub source_repo: Option<String>,
    /// The branch or tag name as people write it (`release/2.4`, not `2.4` or
    /// `refs/heads/release/2.4` or `origin/release/2.4`).
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    /// Normalised into a valid identity: agents are `sa:SYSTEM-agent:NAME` with every run of
    /// characters an identity cannot hold turned into `-`; URIs are percent-encoded.
    pub builder: Option<String>,
    /// When the job started, RFC 3339, where the CI system says (GitLab does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Field (`builder`, `git_ref`, …) → the variable its value came from, for errors.
    #[serde(skip)]
    pub from: BTreeMap<&'static str, &'static str>,
}

impl Detected {
    /// `--builder` when the value was given, else `AGENT_NAME (detected)`: an error about a
    /// detected value names the variable the user can look at.
    pub fn field(&self, field: &'static str, flag: &'static str) -> String {
        match self.from.get(field) {
            Some(var) => format!("{var} (detected for {flag})"),
            None => flag.to_string(),
        }
    }
}

pub type Env = BTreeMap<String, String>;

/// Reads variables, remembering which one gave each value.
struct Vars<'a> {
    env: &'a Env,
    from: BTreeMap<&'static str, &'static str>,
}

impl Vars<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// The first of `keys` that is set, recorded as the source of `field`.
    fn first(&mut self, field: &'static str, keys: &[&'static str]) -> Option<String> {
        let (key, value) = keys.iter().find_map(|k| self.get(k).map(|v| (*k, v)))?;
        self.from.insert(field, key);
        Some(value)
    }
}

/// The branch or tag a ref names: `refs/heads/release/2.4` → `release/2.4`,
/// `refs/tags/v1` → `v1`, `origin/main` and `refs/remotes/origin/main` → `main`.
pub fn branch_name(git_ref: &str) -> String {
    let r = git_ref.trim();
    if let Some(rest) = r
        .strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/tags/"))
    {
        return rest.to_string();
    }
    if let Some(rest) = r.strip_prefix("refs/remotes/") {
        return rest.split_once('/').map_or(rest, |(_, b)| b).to_string();
    }
    // Jenkins' GIT_BRANCH names the remote-tracking branch.
    r.strip_prefix("origin/").unwrap_or(r).to_string()
}

/// `sa:KIND:NAME` for a CI agent, with every run of characters an identity cannot hold (a
/// space in `Azure Pipelines 3`) turned into one `-`.
pub fn agent_identity(kind: &str, name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    format!(
        "sa:{kind}:{}",
        if slug.is_empty() { "unnamed" } else { slug }
    )
}

/// A URI as an identity: characters an identity cannot hold are percent-encoded (RFC 3986
/// §2.1), so `…/workflows/my release.yml@refs/heads/main` stays one valid workload URI.
pub fn uri_identity(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    for b in uri.trim().bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "._-+@:/%".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Detects the CI system from `env`; `None` when no known system's marker variable is set.
pub fn detect(env: &Env) -> Option<Detected> {
    let mut v = Vars {
        env,
        from: BTreeMap::new(),
    };
    let mut d = detect_with(&mut v)?;
    d.git_ref = d.git_ref.map(|r| branch_name(&r));
    d.from = v.from;
    Some(d)
}

fn detect_with(v: &mut Vars) -> Option<Detected> {
    if v.get("GITHUB_ACTIONS").as_deref() == Some("true") {
        let server = v
            .get("GITHUB_SERVER_URL")
            .unwrap_or_else(|| "https://github.com".into());
        let repo = v
            .first("source_repo", &["GITHUB_REPOSITORY"])
            .map(|r| format!("{server}/{r}"));
        let run = v.first("run_id", &["GITHUB_RUN_ID"]);
        let url = match (&repo, &run) {
            (Some(repo), Some(id)) => Some(format!("{repo}/actions/runs/{id}")),
            _ => None,
        };
        let job = match (v.get("GITHUB_WORKFLOW"), v.get("GITHUB_JOB")) {
            (Some(w), Some(j)) => Some(format!("{w}/{j}")),
            (w, j) => w.or(j),
        };
        let builder = match v.first("builder", &["GITHUB_WORKFLOW_REF"]) {
            Some(w) => Some(uri_identity(&format!("{server}/{w}"))),
            None => v
                .first("builder", &["GITHUB_ACTOR"])
                .map(|a| agent_identity("github-actor", &a)),
        };
        return Some(Detected {
            system: Some("github-actions".into()),
            job,
            run_id: run.map(|id| match v.get("GITHUB_RUN_ATTEMPT") {
                Some(a) => format!("{id}.{a}"),
                None => id,
            }),
            url,
            source_repo: repo,
            // For pull requests GITHUB_REF is the merge ref; the head branch is what people mean.
            git_ref: v.first(
                "git_ref",
                &["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "GITHUB_REF"],
            ),
            commit: v.first("commit", &["GITHUB_SHA"]),
            builder,
            ..Detected::default()
        });
    }
    if v.get("GITLAB_CI").as_deref() == Some("true") {
        let builder = v.first("builder", &["CI_SERVER_URL"]).map(|s| {
            uri_identity(&match v.get("CI_RUNNER_ID") {
                Some(r) => format!("{s}/runners/{r}"),
                None => s,
            })
        });
        return Some(Detected {
            system: Some("gitlab-ci".into()),
            job: v.first("job", &["CI_JOB_NAME"]),
            run_id: v.first("run_id", &["CI_PIPELINE_ID"]),
            url: v.first("url", &["CI_JOB_URL", "CI_PIPELINE_URL"]),
            source_repo: v.first("source_repo", &["CI_PROJECT_URL"]),
            git_ref: v.first("git_ref", &["CI_COMMIT_REF_NAME"]),
            commit: v.first("commit", &["CI_COMMIT_SHA"]),
            builder,
            started_at: v.first("started_at", &["CI_JOB_STARTED_AT"]),
            ..Detected::default()
        });
    }
    if v.get("BUILDKITE").as_deref() == Some("true") {
        let job =
            v.first("job", &["BUILDKITE_PIPELINE_SLUG"])
                .map(|p| match v.get("BUILDKITE_LABEL") {
                    Some(l) => format!("{p}/{l}"),
                    None => p,
                });
        return Some(Detected {
            system: Some("buildkite".into()),
            job,
            run_id: v.first("run_id", &["BUILDKITE_BUILD_NUMBER"]),
            url: v.first("url", &["BUILDKITE_BUILD_URL"]),
            source_repo: v.first("source_repo", &["BUILDKITE_REPO"]),
            git_ref: v.first("git_ref", &["BUILDKITE_BRANCH", "BUILDKITE_TAG"]),
            commit: v.first("commit", &["BUILDKITE_COMMIT"]),
            builder: v
                .first("builder", &["BUILDKITE_AGENT_NAME"])
                .map(|a| agent_identity("buildkite-agent", &a)),
            ..Detected::default()
        });
    }
    if v.get("CIRCLECI").as_deref() == Some("true") {
        return Some(Detected {
            system: Some("circleci".into()),
            job: v.first("job", &["CIRCLE_JOB"]),
            run_id: v.first("run_id", &["CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"]),
            url: v.first("url", &["CIRCLE_BUILD_URL"]),
            source_repo: v.first("source_repo", &["CIRCLE_REPOSITORY_URL"]),
            git_ref: v.first("git_ref", &["CIRCLE_BRANCH", "CIRCLE_TAG"]),
            commit: v.first("commit", &["CIRCLE_SHA1"]),
            builder: Some("sa:circleci".into()),
            ..Detected::default()
        });
    }
    if v.get("TF_BUILD")
        .is_some_and(|t| t.eq_ignore_ascii_case("true"))
    {
        let run = v.first("run_id", &["BUILD_BUILDID"]);
        let url = match (
            v.get("SYSTEM_COLLECTIONURI"),
            v.get("SYSTEM_TEAMPROJECT"),
            &run,
        ) {
            (Some(c), Some(p), Some(id)) => Some(format!(
                "{}/{p}/_build/results?buildId={id}",
                c.trim_end_matches('/')
            )),
            _ => None,
        };
        let job = v.first("job", &["BUILD_DEFINITIONNAME"]).map(|d| {
            match v.get("SYSTEM_JOBDISPLAYNAME") {
                Some(j) => format!("{d}/{j}"),
                None => d,
            }
        });
        return Some(Detected {
            system: Some("azure-pipelines".into()),
            job,
            run_id: run,
            url,
            source_repo: v.first("source_repo", &["BUILD_REPOSITORY_URI"]),
            // BUILD_SOURCEBRANCHNAME is only the last segment (`2.4` for `release/2.4`); for a
            // pull request the source branch is what people mean.
            git_ref: v.first(
                "git_ref",
                &[
                    "SYSTEM_PULLREQUEST_SOURCEBRANCH",
                    "BUILD_SOURCEBRANCH",
                    "BUILD_SOURCEBRANCHNAME",
                ],
            ),
            commit: v.first("commit", &["BUILD_SOURCEVERSION"]),
            builder: v
                .first("builder", &["AGENT_NAME"])
                .map(|a| agent_identity("azure-agent", &a)),
            ..Detected::default()
        });
    }
    if v.get("BITBUCKET_BUILD_NUMBER").is_some() {
        let origin = v.first("source_repo", &["BITBUCKET_GIT_HTTP_ORIGIN"]);
        let run = v.first("run_id", &["BITBUCKET_BUILD_NUMBER"]);
        let url = match (&origin, &run) {
            (Some(o), Some(n)) => Some(format!("{o}/pipelines/results/{n}")),
            _ => None,
        };
        return Some(Detected {
            system: Some("bitbucket-pipelines".into()),
            job: v.first("job", &["BITBUCKET_STEP_UUID", "BITBUCKET_PIPELINE_UUID"]),
            run_id: run,
            url,
            source_repo: origin,
            git_ref: v.first("git_ref", &["BITBUCKET_BRANCH", "BITBUCKET_TAG"]),
            commit: v.first("commit", &["BITBUCKET_COMMIT"]),
            builder: Some("sa:bitbucket-pipelines".into()),
            ..Detected::default()
        });
    }
    if v.get("JENKINS_URL").is_some() || v.get("JENKINS_HOME").is_some() {
        let builder = v.first("builder", &["JENKINS_URL"]).map(|u| {
            uri_identity(&match v.get("NODE_NAME") {
                Some(n) => format!("{}/computer/{n}", u.trim_end_matches('/')),
                None => u,
            })
        });
        return Some(Detected {
            system: Some("jenkins".into()),
            job: v.first("job", &["JOB_NAME"]),
            run_id: v.first("run_id", &["BUILD_NUMBER"]),
            url: v.first("url", &["BUILD_URL"]),
            source_repo: v.first("source_repo", &["GIT_URL"]),
            git_ref: v.first(
                "git_ref",
                &["BRANCH_NAME", "GIT_LOCAL_BRANCH", "GIT_BRANCH"],
            ),
            commit: v.first("commit", &["GIT_COMMIT"]),
            builder,
            ..Detected::default()
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SHA: &str = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39";

    #[test]
    fn no_ci() {
        assert_eq!(detect(&env(&[("HOME", "/root"), ("CI", "true")])), None);
    }

    #[test]
    fn every_system_is_detected() {
        let cases: Vec<(Env, &str, &str, &str)> = vec![
            (
                env(&[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_SERVER_URL", "https://github.com"),
                    ("GITHUB_REPOSITORY", "acme/api"),
                    ("GITHUB_RUN_ID", "912"),
                    ("GITHUB_RUN_ATTEMPT", "2"),
                    ("GITHUB_WORKFLOW", "release"),
                    ("GITHUB_JOB", "image"),
                    ("GITHUB_REF_NAME", "main"),
                    ("GITHUB_SHA", SHA),
                ]),
                "github-actions",
                "912.2",
                "https://github.com/acme/api/actions/runs/912",
            ),
            (
                env(&[
                    ("GITLAB_CI", "true"),
                    ("CI_JOB_NAME", "build-image"),
                    ("CI_PIPELINE_ID", "77"),
                    ("CI_JOB_URL", "https://gitlab.com/acme/api/-/jobs/5"),
                    ("CI_COMMIT_SHA", SHA),
                ]),
                "gitlab-ci",
                "77",
                "https://gitlab.com/acme/api/-/jobs/5",
            ),
            (
                env(&[
                    ("JENKINS_URL", "https://ci.acme.dev/"),
                    ("BUILD_NUMBER", "31"),
                    ("BUILD_URL", "https://ci.acme.dev/job/api/31/"),
                    ("GIT_COMMIT", SHA),
                ]),
                "jenkins",
                "31",
                "https://ci.acme.dev/job/api/31/",
            ),
            (
                env(&[
                    ("BUILDKITE", "true"),
                    ("BUILDKITE_BUILD_NUMBER", "8"),
                    (
                        "BUILDKITE_BUILD_URL",
                        "https://buildkite.com/acme/api/builds/8",
                    ),
                    ("BUILDKITE_COMMIT", SHA),
                ]),
                "buildkite",
                "8",
                "https://buildkite.com/acme/api/builds/8",
            ),
            (
                env(&[
                    ("CIRCLECI", "true"),
                    ("CIRCLE_WORKFLOW_ID", "wf-1"),
                    ("CIRCLE_BUILD_URL", "https://circleci.com/gh/acme/api/9"),
                    ("CIRCLE_SHA1", SHA),
                ]),
                "circleci",
                "wf-1",
                "https://circleci.com/gh/acme/api/9",
            ),
            (
                env(&[
                    ("TF_BUILD", "True"),
                    ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
                    ("SYSTEM_TEAMPROJECT", "api"),
                    ("BUILD_BUILDID", "44"),
                    ("BUILD_SOURCEVERSION", SHA),
                ]),
                "azure-pipelines",
                "44",
                "https://dev.azure.com/acme/api/_build/results?buildId=44",
            ),
            (
                env(&[
                    ("BITBUCKET_BUILD_NUMBER", "12"),
                    (
                        "BITBUCKET_GIT_HTTP_ORIGIN",
                        "https://bitbucket.org/acme/api",
                    ),
                    ("BITBUCKET_COMMIT", SHA),
                ]),
                "bitbucket-pipelines",
                "12",
                "https://bitbucket.org/acme/api/pipelines/results/12",
            ),
        ];
        for (vars, system, run_id, url) in cases {
            let d = detect(&vars).unwrap_or_else(|| panic!("{system} not detected"));
            assert_eq!(d.system.as_deref(), Some(system));
            assert_eq!(d.run_id.as_deref(), Some(run_id), "{system}");
            assert_eq!(d.url.as_deref(), Some(url), "{system}");
            assert_eq!(d.commit.as_deref(), Some(SHA), "{system}");
        }
    }

    /// Issue 13, items 1 and 2: detected values are valid identities and branches as people
    /// write them.
    #[test]
    fn builders_and_branches_are_normalised() {
        let azure = detect(&env(&[
            ("TF_BUILD", "True"),
            ("AGENT_NAME", "Azure Pipelines 3"),
            ("BUILD_SOURCEBRANCH", "refs/heads/release/2.4"),
            ("BUILD_SOURCEBRANCHNAME", "2.4"),
        ]))
        .unwrap();
        assert_eq!(
            azure.builder.as_deref(),
            Some("sa:azure-agent:Azure-Pipelines-3")
        );
        assert_eq!(azure.git_ref.as_deref(), Some("release/2.4"));
        assert_eq!(
            azure.field("builder", "--builder"),
            "AGENT_NAME (detected for --builder)"
        );
        assert!(lineage_model::Identity::parse(azure.builder.as_deref().unwrap()).is_ok());
        let jenkins = detect(&env(&[
            ("JENKINS_URL", "https://ci.acme.dev/"),
            ("NODE_NAME", "build node 7"),
            ("GIT_BRANCH", "origin/main"),
        ]))
        .unwrap();
        assert_eq!(jenkins.git_ref.as_deref(), Some("main"));
        assert_eq!(
            jenkins.builder.as_deref(),
            Some("https://ci.acme.dev/computer/build%20node%207")
        );
        assert!(lineage_model::Identity::parse(jenkins.builder.as_deref().unwrap()).is_ok());
        let github = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            (
                "GITHUB_WORKFLOW_REF",
                "acme/api/.github/workflows/my release.yml@refs/heads/main",
            ),
            ("GITHUB_REF", "refs/heads/feature/x"),
        ]))
        .unwrap();
        assert_eq!(
            github.builder.as_deref(),
            Some("https://github.com/acme/api/.github/workflows/my%20release.yml@refs/heads/main")
        );
        assert!(lineage_model::Identity::parse(github.builder.as_deref().unwrap()).is_ok());
        assert_eq!(github.git_ref.as_deref(), Some("feature/x"));
        let gitlab = detect(&env(&[
            ("GITLAB_CI", "true"),
            ("CI_JOB_STARTED_AT", "2026-11-17T09:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(gitlab.started_at.as_deref(), Some("2026-11-17T09:00:00Z"));
        for (given, want) in [
            ("refs/tags/v1.2.0", "v1.2.0"),
            ("refs/remotes/upstream/dev", "dev"),
            ("main", "main"),
        ] {
            assert_eq!(branch_name(given), want);
        }
    }

    #[test]
    fn github_pull_requests_use_the_head_branch() {
        let d = detect(&env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_HEAD_REF", "fix-cve"),
        ]))
        .unwrap();
        assert_eq!(d.git_ref.as_deref(), Some("fix-cve"));
    }
}
