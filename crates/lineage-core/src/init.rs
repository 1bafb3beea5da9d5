//! `lineage init`: what to write into a repository to start using Lineage, decided from what
//! the repository holds (its CI files, its `origin` remote, its Dockerfiles). The caller looks
//! at the repository and writes the files; this module only plans them, so the plan is the
//! same whoever asks and is tested without a file system.

use serde::Serialize;

/// A CI system `init` knows how to wire Lineage into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CiKind {
    GithubActions,
    GitlabCi,
    Other,
}

impl CiKind {
    /// The CI system a repository uses, from the files it holds (paths relative to its root).
    pub fn detect(files: &[String]) -> Option<CiKind> {
        let has = |p: &str| {
            files
                .iter()
                .any(|f| f == p || f.starts_with(&format!("{p}/")))
        };
        if has(".github/workflows") {
            Some(CiKind::GithubActions)
        } else if has(".gitlab-ci.yml") {
            Some(CiKind::GitlabCi)
        } else if [
            "Jenkinsfile",
            ".buildkite",
            ".circleci",
            "azure-pipelines.yml",
            "bitbucket-pipelines.yml",
        ]
        .iter()
        .any(|p| has(p))
        {
            Some(CiKind::Other)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CiKind::GithubActions => "GitHub Actions",
            CiKind::GitlabCi => "GitLab CI",
            CiKind::Other => "your CI",
        }
    }
}

/// What `init` found in the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepoFacts {
    /// The repository directory's name: the default service name.
    pub name: String,
    /// The `origin` remote as a web URL (`https://github.com/acme/api`), when there is one.
    pub origin: Option<String>,
    pub ci: Option<CiKind>,
    /// Dockerfiles found (relative paths).
    pub dockerfiles: Vec<String>,
}

/// A file `init` writes, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    pub path: String,
    pub text: String,
}

/// Everything `init` writes and prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitPlan {
    pub schema: u32,
    pub facts: RepoFacts,
    pub files: Vec<PlannedFile>,
    /// Where the CI snippet goes, and the snippet itself.
    pub ci_file: Option<String>,
    pub ci_snippet: String,
    /// The commands to run next.
    pub next: Vec<String>,
}

/// A service name from a directory name: lowercase letters, digits and `-`.
pub fn service_name(dir: &str) -> String {
    let mut out = String::new();
    for c in dir.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "app".into()
    } else {
        out
    }
}

/// A Git remote (`git@github.com:acme/api.git`, `https://github.com/acme/api.git`) as the web
/// URL Lineage records; `None` for anything else (local paths, unknown schemes).
pub fn web_url(remote: &str) -> Option<String> {
    let remote = remote.trim();
    let (host, path) = if let Some(rest) = remote.strip_prefix("git@") {
        rest.split_once(':')?
    } else if let Some(rest) = remote
        .strip_prefix("https://")
        .or_else(|| remote.strip_prefix("ssh://git@"))
    {
        let rest = rest.rsplit('@').next()?;
        rest.split_once('/')?
    } else {
        return None;
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("https://{host}/{path}"))
}

/// Plans `lineage init` for a repository.
pub fn plan(facts: RepoFacts) -> InitPlan {
    let service = service_name(&facts.name);
    let dockerfile = facts
        .dockerfiles
        .first()
        .cloned()
        .unwrap_or_else(|| "Dockerfile".into());
    let files = vec![
        PlannedFile {
            path: crate::CONFIG_FILE.into(),
            text: lineage_toml(&facts),
        },
        PlannedFile {
            path: format!("{}/example.rego", crate::POLICY_DIR),
            text: EXAMPLE_POLICY.into(),
        },
        PlannedFile {
            path: format!("{}/example_test.rego", crate::POLICY_DIR),
            text: EXAMPLE_POLICY_TEST.into(),
        },
    ];
    let (ci_file, ci_snippet) = match facts.ci.unwrap_or(CiKind::Other) {
        CiKind::GithubActions => (
            Some(".github/workflows/<your build workflow>.yml".to_string()),
            github_snippet(&service, &dockerfile),
        ),
        CiKind::GitlabCi => (
            Some(".gitlab-ci.yml".to_string()),
            gitlab_snippet(&service, &dockerfile),
        ),
        CiKind::Other => (None, shell_snippet(&service, &dockerfile)),
    };
    let repo = facts
        .origin
        .as_deref()
        .map(|o| format!(" --repo {o}"))
        .unwrap_or_default();
    let next = vec![
        format!("lineage service add {service} --owner YOU@EXAMPLE.COM{repo} --image REGISTRY/{service}"),
        "lineage policy test".into(),
        "lineage demo   # a small team's CVE morning, in a ledger of its own".into(),
    ];
    InitPlan {
        schema: 1,
        facts,
        files,
        ci_file,
        ci_snippet,
        next,
    }
}

fn lineage_toml(facts: &RepoFacts) -> String {
    let origin = facts
        .origin
        .as_deref()
        .map(|o| format!("# Source: {o}\n"))
        .unwrap_or_default();
    format!(
        r#"# Lineage settings for this repository (written by `lineage init`).
{origin}# Every section and key is checked: a misspelt name is an error, never silently ignored.
# Rego policies live in `policies/` beside this file. Reference: the README's lineage.toml section.

[environments]
# Your environments, lowest first; the highest one a digest runs in is what `trace` shows.
names = ["dev", "staging", "production"]
# Environments with production rules (approvals, four-eyes, stricter severities).
production = ["production"]

[gates]
# Who must approve a deploy: off | production | all.
approval = "production"
# The approver must not be the deployer: off | production | all.
four_eyes = "production"
# "declared" trusts `deploy record --approved-by`; a team server should use "recorded",
# where only approvals recorded by the approver (`lineage approve`) count.
approvals = "declared"
# D012 warns when a build's final base is this many days behind its tag.
stale_base_days = 30

[rules]
# Severity per rule code or name: error | warn | off (`lineage policy rules` lists them).
# B004 = "warn"

# [allowlist]
# registries = ["ghcr.io"]
# base_images = ["docker.io/library/debian", "gcr.io/distroless/*"]

[exceptions]
# The longest an exception (`lineage exception add`) may run.
max_days = 90

[promotion]
# Rule D014: a digest reaches each environment only after running in the one before it
# (`lineage promote IMAGE@DIGEST --to ENV`). Waive it with an exception for a hotfix.
path = ["dev", "staging", "production"]
# Minutes a digest must run in an environment before the next one, e.g. {{ staging = 60 }}.
soak_minutes = {{}}
# Require a `healthy` outcome (`lineage deploy outcome`) at each step first.
require_healthy = false

# [log]
# The tamper-evident log's key. Default: log.key beside an SQLite ledger. Required for
# PostgreSQL, e.g. a mounted secret:
# key = "/etc/lineage/log.key"

# [admission]
# Kubernetes namespaces the admission webhook judges, and their environments.
# namespaces = {{ prod = "production", staging = "staging" }}
# mode = "enforce"
"#
    )
}

const EXAMPLE_POLICY: &str = r#"# An example Rego policy (written by `lineage init`). Lineage evaluates every `*.rego` file in
# this directory in the build and deploy gates: each `deny` entry is an error, each `warn` entry
# a warning, with its own code. `lineage policy test` runs the `test_*` rules in `*_test.rego`;
# docs/rules.md in the Lineage repository describes the input document.
package lineage.example

has_commit if {
	is_string(input.build.commit)
	input.build.commit != ""
}

# Builds should say which commit they came from (CI variables give it; or pass `--commit`).
warn contains {
	"code": "EXAMPLE001",
	"msg": "the build names no commit",
	"hint": "record builds from CI, where the commit is detected, or pass `--commit SHA`",
} if {
	input.kind == "build"
	not has_commit
}
"#;

const EXAMPLE_POLICY_TEST: &str = r#"package lineage.example_test

import data.lineage.example

test_a_build_without_a_commit_is_warned_about if {
	count(example.warn) == 1 with input as {"kind": "build", "build": {"commit": null}}
}

test_a_build_with_a_commit_passes if {
	count(example.warn) == 0 with input as {"kind": "build", "build": {"commit": "0123456789abcdef0123456789abcdef01234567"}}
}

test_deploys_are_not_judged if {
	count(example.warn) == 0 with input as {"kind": "deploy"}
}
"#;

fn github_snippet(service: &str, dockerfile: &str) -> String {
    format!(
        r#"# In the job that builds and pushes the image, after checkout:
      - uses: docker/build-push-action@v6
        id: build
        with:
          push: true
          tags: ghcr.io/${{{{ github.repository_owner }}}}/{service}:${{{{ github.sha }}}}
          file: {dockerfile}
      - name: Record the build in Lineage
        run: echo '${{{{ steps.build.outputs.metadata }}}}' > buildx-metadata.json
      - uses: OWNER/lineage@v1   # the action.yml at the root of the Lineage repository
        with:
          image: ghcr.io/${{{{ github.repository_owner }}}}/{service}:${{{{ github.sha }}}}
          buildx-metadata: buildx-metadata.json
          dockerfile: {dockerfile}
          server: ${{{{ vars.LINEAGE_SERVER }}}}
        env:
          LINEAGE_TOKEN: ${{{{ secrets.LINEAGE_TOKEN }}}}
      - uses: github/codeql-action/upload-sarif@v3
        if: always()
        with:
          sarif_file: lineage.sarif
"#
    )
}

fn gitlab_snippet(service: &str, dockerfile: &str) -> String {
    format!(
        r#"# .gitlab-ci.yml: include the template from the Lineage repository (ci/gitlab/lineage.gitlab-ci.yml),
# then extend its job after your build job has pushed the image and written its digest file.
include:
  - remote: https://<where you host Lineage>/ci/gitlab/lineage.gitlab-ci.yml

lineage:
  extends: .lineage-record
  needs: [build]
  variables:
    LINEAGE_IMAGE: $CI_REGISTRY_IMAGE/{service}:$CI_COMMIT_SHA
    LINEAGE_DIGEST_FILE: digest.txt        # kaniko --digest-file / buildah --digestfile
    LINEAGE_DOCKERFILE: {dockerfile}
    # LINEAGE_SERVER and LINEAGE_TOKEN: set as CI/CD variables (the token masked)
"#
    )
}

fn shell_snippet(service: &str, dockerfile: &str) -> String {
    format!(
        r#"# After the image is pushed (commit, branch and CI run come from your CI's variables):
lineage build check  --image REGISTRY/{service}@"$(cat digest.txt)" --dockerfile {dockerfile} --format plain
lineage build record --image REGISTRY/{service} --digest-file digest.txt --dockerfile {dockerfile} \
    --server "$LINEAGE_SERVER"    # with LINEAGE_TOKEN set; or --store for a local ledger
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_ci_system_is_detected_from_its_files() {
        let ci = |l: &[&str]| CiKind::detect(&files(l));
        assert_eq!(
            ci(&[".github/workflows/build.yml"]),
            Some(CiKind::GithubActions)
        );
        assert_eq!(ci(&[".gitlab-ci.yml", "src"]), Some(CiKind::GitlabCi));
        assert_eq!(ci(&["Jenkinsfile"]), Some(CiKind::Other));
        assert_eq!(ci(&["README.md"]), None);
    }

    #[test]
    fn remotes_become_web_urls() {
        assert_eq!(
            web_url("git@github.com:acme/api.git").as_deref(),
            Some("https://github.com/acme/api")
        );
        assert_eq!(
            web_url("https://token@gitlab.com/acme/group/api.git").as_deref(),
            Some("https://gitlab.com/acme/group/api")
        );
        assert_eq!(web_url("/srv/git/api"), None);
    }

    #[test]
    fn service_names_are_valid_names() {
        assert_eq!(service_name("My_API.v2"), "my-api-v2");
        assert_eq!(service_name("__"), "app");
        for n in ["api", "My_API.v2", "x--y"] {
            lineage_model::ServiceName::parse(&service_name(n)).unwrap();
        }
    }

    #[test]
    fn the_planned_settings_file_passes_the_strict_key_check_and_parses() {
        for origin in [None, Some("https://github.com/acme/api".to_string())] {
            let p = plan(RepoFacts {
                name: "api".into(),
                origin,
                ci: Some(CiKind::GithubActions),
                dockerfiles: vec!["Dockerfile".into()],
            });
            let toml = &p.files[0].text;
            crate::LineageToml::parse(toml, "lineage.toml", std::path::Path::new(".")).unwrap();
            assert!(p.ci_snippet.contains("buildx-metadata"));
        }
    }
}
