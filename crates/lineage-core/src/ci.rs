//! What a CI system tells us about a build, from its documented environment variables.
//!
//! The caller passes the environment in (library crates never read it themselves), so tests
//! can feed each CI system's variables directly.

use std::collections::BTreeMap;

use serde::Serialize;

/// What was detected. Every field is what the CI system said, unvalidated: the caller parses
/// it into checked types, so a bad value from CI gets the same error as a bad flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub system: Option<String>,
    pub job: Option<String>,
    pub run_id: Option<String>,
    pub url: Option<String>,
    pub source_repo: Option<String>,
    pub git_ref: Option<String>,
    pub commit: Option<String>,
    pub builder: Option<String>,
}

pub type Env = BTreeMap<String, String>;

fn get(env: &Env, key: &str) -> Option<String> {
    env.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Detects the CI system from `env`; `None` when no known system's marker variable is set.
pub fn detect(env: &Env) -> Option<Detected> {
    let g = |k: &str| get(env, k);
    if g("GITHUB_ACTIONS").as_deref() == Some("true") {
        let server = g("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let repo = g("GITHUB_REPOSITORY").map(|r| format!("{server}/{r}"));
        let url = match (&repo, g("GITHUB_RUN_ID")) {
            (Some(repo), Some(id)) => Some(format!("{repo}/actions/runs/{id}")),
            _ => None,
        };
        // For pull requests GITHUB_REF is the merge ref; the head branch is what people mean.
        let git_ref = g("GITHUB_HEAD_REF")
            .or_else(|| g("GITHUB_REF_NAME"))
            .or_else(|| g("GITHUB_REF"));
        return Some(Detected {
            system: Some("github-actions".into()),
            job: match (g("GITHUB_WORKFLOW"), g("GITHUB_JOB")) {
                (Some(w), Some(j)) => Some(format!("{w}/{j}")),
                (w, j) => w.or(j),
            },
            run_id: g("GITHUB_RUN_ID").map(|id| match g("GITHUB_RUN_ATTEMPT") {
                Some(a) => format!("{id}.{a}"),
                None => id,
            }),
            url,
            source_repo: repo,
            git_ref,
            commit: g("GITHUB_SHA"),
            builder: g("GITHUB_WORKFLOW_REF")
                .map(|w| format!("{server}/{w}"))
                .or_else(|| g("GITHUB_ACTOR")),
        });
    }
    if g("GITLAB_CI").as_deref() == Some("true") {
        return Some(Detected {
            system: Some("gitlab-ci".into()),
            job: g("CI_JOB_NAME"),
            run_id: g("CI_PIPELINE_ID"),
            url: g("CI_JOB_URL").or_else(|| g("CI_PIPELINE_URL")),
            source_repo: g("CI_PROJECT_URL"),
            git_ref: g("CI_COMMIT_REF_NAME"),
            commit: g("CI_COMMIT_SHA"),
            builder: g("CI_SERVER_URL").map(|s| match g("CI_RUNNER_ID") {
                Some(r) => format!("{s}/runners/{r}"),
                None => s,
            }),
        });
    }
    if g("BUILDKITE").as_deref() == Some("true") {
        return Some(Detected {
            system: Some("buildkite".into()),
            job: g("BUILDKITE_PIPELINE_SLUG").map(|p| match g("BUILDKITE_LABEL") {
                Some(l) => format!("{p}/{l}"),
                None => p,
            }),
            run_id: g("BUILDKITE_BUILD_NUMBER"),
            url: g("BUILDKITE_BUILD_URL"),
            source_repo: g("BUILDKITE_REPO"),
            git_ref: g("BUILDKITE_BRANCH"),
            commit: g("BUILDKITE_COMMIT"),
            builder: g("BUILDKITE_AGENT_NAME").map(|a| format!("buildkite-agent:{a}")),
        });
    }
    if g("CIRCLECI").as_deref() == Some("true") {
        return Some(Detected {
            system: Some("circleci".into()),
            job: g("CIRCLE_JOB"),
            run_id: g("CIRCLE_WORKFLOW_ID").or_else(|| g("CIRCLE_BUILD_NUM")),
            url: g("CIRCLE_BUILD_URL"),
            source_repo: g("CIRCLE_REPOSITORY_URL"),
            git_ref: g("CIRCLE_BRANCH").or_else(|| g("CIRCLE_TAG")),
            commit: g("CIRCLE_SHA1"),
            builder: Some("circleci".into()),
        });
    }
    if g("TF_BUILD")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        == Some("true")
    {
        let url = match (
            g("SYSTEM_COLLECTIONURI"),
            g("SYSTEM_TEAMPROJECT"),
            g("BUILD_BUILDID"),
        ) {
            (Some(c), Some(p), Some(id)) => Some(format!(
                "{}/{p}/_build/results?buildId={id}",
                c.trim_end_matches('/')
            )),
            _ => None,
        };
        return Some(Detected {
            system: Some("azure-pipelines".into()),
            job: g("BUILD_DEFINITIONNAME").map(|d| match g("SYSTEM_JOBDISPLAYNAME") {
                Some(j) => format!("{d}/{j}"),
                None => d,
            }),
            run_id: g("BUILD_BUILDID"),
            url,
            source_repo: g("BUILD_REPOSITORY_URI"),
            git_ref: g("BUILD_SOURCEBRANCHNAME").or_else(|| g("BUILD_SOURCEBRANCH")),
            commit: g("BUILD_SOURCEVERSION"),
            builder: g("AGENT_NAME").map(|a| format!("azure-agent:{a}")),
        });
    }
    if g("BITBUCKET_BUILD_NUMBER").is_some() {
        let url = match (g("BITBUCKET_GIT_HTTP_ORIGIN"), g("BITBUCKET_BUILD_NUMBER")) {
            (Some(o), Some(n)) => Some(format!("{o}/pipelines/results/{n}")),
            _ => None,
        };
        return Some(Detected {
            system: Some("bitbucket-pipelines".into()),
            job: g("BITBUCKET_STEP_UUID").or_else(|| g("BITBUCKET_PIPELINE_UUID")),
            run_id: g("BITBUCKET_BUILD_NUMBER"),
            url,
            source_repo: g("BITBUCKET_GIT_HTTP_ORIGIN"),
            git_ref: g("BITBUCKET_BRANCH").or_else(|| g("BITBUCKET_TAG")),
            commit: g("BITBUCKET_COMMIT"),
            builder: Some("bitbucket-pipelines".into()),
        });
    }
    if g("JENKINS_URL").is_some() || g("JENKINS_HOME").is_some() {
        return Some(Detected {
            system: Some("jenkins".into()),
            job: g("JOB_NAME"),
            run_id: g("BUILD_NUMBER"),
            url: g("BUILD_URL"),
            source_repo: g("GIT_URL"),
            git_ref: g("BRANCH_NAME").or_else(|| g("GIT_BRANCH")),
            commit: g("GIT_COMMIT"),
            builder: g("JENKINS_URL").map(|u| match g("NODE_NAME") {
                Some(n) => format!("{}/computer/{n}", u.trim_end_matches('/')),
                None => u,
            }),
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
