//! Where the settings came from: which `lineage.toml` (if any) and which `policies/` were
//! read, and how that file was chosen. Every judging command reports it, so "passed" with the
//! project's rules can be told from "passed with the built-in defaults because no file was
//! found".
//!
//! The file is `--config PATH`, else `LINEAGE_CONFIG`, else the first `lineage.toml` found by
//! walking up from the working directory. The walk stops at the repository root (the first
//! directory holding `.git`, a directory or, in a worktree or submodule, a file) or at the
//! file system root, so a project never picks up settings from outside its repository.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The settings file's name, looked for in each directory of the walk.
pub const CONFIG_FILE: &str = "lineage.toml";
/// The Rego policy directory, beside the settings file.
pub const POLICY_DIR: &str = "policies";

/// How the settings file was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigHow {
    /// `--config PATH`.
    Flag,
    /// The `LINEAGE_CONFIG` environment variable.
    Env,
    /// Found by walking up from the working directory.
    Discovered,
    /// No file: the built-in defaults.
    None,
}

/// Which settings a command used: a versioned wire part (fields may be added, never renamed)
/// that reports embed as `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSource {
    /// The settings file, absolute; `None` when none was found.
    pub file: Option<PathBuf>,
    pub how: ConfigHow,
    /// The working directory the command ran in (where a search starts).
    pub searched_from: PathBuf,
    /// Where the search stopped without finding a file: the repository root or `/`. `None`
    /// when a file was given or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched_to: Option<PathBuf>,
    /// `policies/` beside the settings file, absolute, when that directory exists.
    pub policy_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// A file named by `--config` or `LINEAGE_CONFIG` (`how`), relative to `cwd` if relative.
    pub fn given(path: &Path, how: ConfigHow, cwd: &Path) -> ConfigSource {
        let joined = cwd.join(path);
        // Canonical when it exists, so the report names the real file; an unreadable path is
        // reported by the caller as it was given.
        let file = joined.canonicalize().unwrap_or(joined);
        ConfigSource {
            policy_dir: policy_dir_beside(&file),
            file: Some(file),
            how,
            searched_from: cwd.to_path_buf(),
            searched_to: None,
        }
    }

    /// Looks for `lineage.toml` in `cwd` and its parents, up to the repository root or `/`.
    pub fn discover(cwd: &Path) -> ConfigSource {
        let mut dir = cwd;
        loop {
            let candidate = dir.join(CONFIG_FILE);
            if candidate.is_file() {
                return ConfigSource {
                    policy_dir: policy_dir_beside(&candidate),
                    file: Some(candidate),
                    how: ConfigHow::Discovered,
                    searched_from: cwd.to_path_buf(),
                    searched_to: None,
                };
            }
            // `.git` is a directory in a clone and a file in a worktree or submodule.
            let at_root = dir.join(".git").exists();
            match dir.parent() {
                Some(parent) if !at_root => dir = parent,
                _ => break,
            }
        }
        ConfigSource {
            file: None,
            how: ConfigHow::None,
            searched_from: cwd.to_path_buf(),
            searched_to: Some(dir.to_path_buf()),
            policy_dir: None,
        }
    }

    /// One line for people, e.g. `configuration: /repo/lineage.toml (found from /repo/svc);
    /// policies: /repo/policies`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(file) = &self.file else {
            let to = self.searched_to.as_deref().unwrap_or(Path::new("/"));
            return write!(
                f,
                "configuration: none found from {} up to {}; built-in defaults",
                self.searched_from.display(),
                to.display()
            );
        };
        let how = match self.how {
            ConfigHow::Flag => "from --config".to_string(),
            ConfigHow::Env => "from LINEAGE_CONFIG".to_string(),
            ConfigHow::Discovered | ConfigHow::None => {
                format!("found from {}", self.searched_from.display())
            }
        };
        write!(f, "configuration: {} ({how}); ", file.display())?;
        match &self.policy_dir {
            Some(dir) => write!(f, "policies: {}", dir.display()),
            None => write!(f, "no {POLICY_DIR}/ beside it"),
        }
    }
}

fn policy_dir_beside(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?.join(POLICY_DIR);
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_walks_up_and_stops_at_the_repository_root() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().canonicalize().unwrap();
        // top/lineage.toml is outside the repository top/repo and must not be found from it.
        std::fs::write(top.join(CONFIG_FILE), "").unwrap();
        let repo = top.join("repo");
        let svc = repo.join("svc/api");
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(repo.join(".git"), "gitdir: elsewhere\n").unwrap();
        let none = ConfigSource::discover(&svc);
        assert_eq!(none.file, None);
        assert_eq!(none.how, ConfigHow::None);
        assert_eq!(none.searched_to.as_deref(), Some(repo.as_path()));
        assert_eq!(
            none.to_string(),
            format!(
                "configuration: none found from {} up to {}; built-in defaults",
                svc.display(),
                repo.display()
            )
        );

        // A file at the repository root is found from a subdirectory, with its policies.
        std::fs::write(repo.join(CONFIG_FILE), "").unwrap();
        std::fs::create_dir(repo.join(POLICY_DIR)).unwrap();
        let found = ConfigSource::discover(&svc);
        assert_eq!(found.file, Some(repo.join(CONFIG_FILE)));
        assert_eq!(found.how, ConfigHow::Discovered);
        assert_eq!(found.policy_dir, Some(repo.join(POLICY_DIR)));
        assert_eq!(
            found.to_string(),
            format!(
                "configuration: {} (found from {}); policies: {}",
                repo.join(CONFIG_FILE).display(),
                svc.display(),
                repo.join(POLICY_DIR).display()
            )
        );

        // The nearest file wins.
        std::fs::write(svc.join(CONFIG_FILE), "").unwrap();
        let near = ConfigSource::discover(&svc);
        assert_eq!(near.file, Some(svc.join(CONFIG_FILE)));
        assert_eq!(near.policy_dir, None);
        assert!(near.to_string().ends_with("no policies/ beside it"));
    }

    #[test]
    fn a_given_path_is_made_absolute_and_serialises_as_the_wire_part() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("conf")).unwrap();
        std::fs::write(dir.join("conf/ci.toml"), "").unwrap();
        let s = ConfigSource::given(Path::new("conf/ci.toml"), ConfigHow::Env, &dir);
        assert_eq!(s.file, Some(dir.join("conf/ci.toml")));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "file": dir.join("conf/ci.toml"),
                "how": "env",
                "searched_from": dir,
                "policy_dir": null,
            })
        );
        assert!(s.to_string().contains("(from LINEAGE_CONFIG)"), "{s}");
    }
}
