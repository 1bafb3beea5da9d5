//! `lineage demo`: a six-person SaaS team's last four weeks, then a CVE on a Tuesday morning.
//!
//! The demo runs this very binary as a subprocess for every step and prints each command
//! first, so what a newcomer reads is exactly what ran, and can be typed again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lineage_model::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::settings::Settings;
use crate::{CliError, Outcome};

/// Where the demo ledger goes unless `--store` names another.
pub const DEMO_STORE: &str = "lineage-demo/lineage.db";

/// A digest that looks real and is stable: the SHA-256 of a label.
pub fn digest(label: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(label.as_bytes())))
}

/// A stable 40-hex commit id for a label.
pub fn commit(label: &str) -> String {
    hex::encode(Sha256::digest(format!("commit {label}").as_bytes()))[..40].to_string()
}

pub const PYTHON: &str = "docker.io/library/python:3.12-slim";
pub const NODE: &str = "docker.io/library/node:22-alpine";
pub const NGINX: &str = "docker.io/library/nginx:1.27-alpine";

/// When the demo's drill was opened, in days before today.
const DRILL_DAYS_AGO: i64 = 9;

/// One build in the story.
struct Build {
    service: &'static str,
    label: &'static str,
    version: &'static str,
    days_ago: i64,
    bases: &'static [(&'static str, &'static str)],
}

/// One deploy in the story.
struct Deploy {
    label: &'static str,
    service: &'static str,
    env: &'static str,
    days_ago: i64,
    by: &'static str,
    approved_by: Option<&'static str>,
}

const BUILDS: &[Build] = &[
    Build {
        service: "api",
        label: "api-1",
        version: "1.7.0",
        days_ago: 26,
        bases: &[(PYTHON, "python-old")],
    },
    Build {
        service: "worker",
        label: "worker-1",
        version: "2.3.0",
        days_ago: 24,
        bases: &[(PYTHON, "python-old")],
    },
    Build {
        service: "web",
        label: "web-1",
        version: "4.0.0",
        days_ago: 21,
        bases: &[(NODE, "node"), (NGINX, "nginx")],
    },
    Build {
        service: "api",
        label: "api-2",
        version: "1.7.1",
        days_ago: 19,
        bases: &[(PYTHON, "python-old")],
    },
    Build {
        service: "worker",
        label: "worker-2",
        version: "2.3.1",
        days_ago: 12,
        bases: &[(PYTHON, "python-old")],
    },
    Build {
        service: "web",
        label: "web-2",
        version: "4.1.0",
        days_ago: 10,
        bases: &[(NODE, "node"), (NGINX, "nginx")],
    },
    Build {
        service: "api",
        label: "api-3",
        version: "1.8.0",
        days_ago: 8,
        bases: &[(PYTHON, "python-new")],
    },
    Build {
        service: "worker",
        label: "worker-3",
        version: "2.4.0",
        days_ago: 5,
        bases: &[(PYTHON, "python-new")],
    },
    Build {
        service: "web",
        label: "web-3",
        version: "4.2.0",
        days_ago: 3,
        bases: &[(NODE, "node"), (NGINX, "nginx")],
    },
    Build {
        service: "api",
        label: "api-4",
        version: "1.9.0",
        days_ago: 2,
        bases: &[(PYTHON, "python-new")],
    },
];

const DEPLOYS: &[Deploy] = &[
    Deploy {
        label: "api-1",
        service: "api",
        env: "staging",
        days_ago: 26,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "api-1",
        service: "api",
        env: "production",
        days_ago: 25,
        by: "jonas@acme.dev",
        approved_by: Some("maya@acme.dev"),
    },
    Deploy {
        label: "worker-1",
        service: "worker",
        env: "production",
        days_ago: 23,
        by: "jonas@acme.dev",
        approved_by: Some("priya@acme.dev"),
    },
    Deploy {
        label: "web-1",
        service: "web",
        env: "production",
        days_ago: 20,
        by: "ana@acme.dev",
        approved_by: Some("lee@acme.dev"),
    },
    Deploy {
        label: "api-2",
        service: "api",
        env: "staging",
        days_ago: 19,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "api-2",
        service: "api",
        env: "production",
        days_ago: 18,
        by: "priya@acme.dev",
        approved_by: Some("maya@acme.dev"),
    },
    Deploy {
        label: "worker-2",
        service: "worker",
        env: "production",
        days_ago: 11,
        by: "sam@acme.dev",
        approved_by: Some("jonas@acme.dev"),
    },
    Deploy {
        label: "web-2",
        service: "web",
        env: "production",
        days_ago: 9,
        by: "ana@acme.dev",
        approved_by: Some("priya@acme.dev"),
    },
    Deploy {
        label: "api-3",
        service: "api",
        env: "staging",
        days_ago: 8,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "api-3",
        service: "api",
        env: "production",
        days_ago: 6,
        by: "jonas@acme.dev",
        approved_by: Some("maya@acme.dev"),
    },
    Deploy {
        label: "worker-3",
        service: "worker",
        env: "staging",
        days_ago: 4,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "web-3",
        service: "web",
        env: "staging",
        days_ago: 3,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "api-4",
        service: "api",
        env: "dev",
        days_ago: 2,
        by: "sa:deploy-bot",
        approved_by: None,
    },
    Deploy {
        label: "api-4",
        service: "api",
        env: "staging",
        days_ago: 1,
        by: "sa:deploy-bot",
        approved_by: None,
    },
];

pub fn run(s: &Settings, explicit_store: bool) -> Result<Outcome, CliError> {
    let store = match (&s.store, explicit_store) {
        (lineage_store::StoreLocation::Sqlite(p), true) => p.clone(),
        _ => PathBuf::from(DEMO_STORE),
    };
    prepare(&store, explicit_store)?;
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(
            format!("cannot find the lineage binary: {e}"),
            "run the demo as `lineage demo`",
        )
    })?;
    let demo = Demo {
        exe,
        store,
        now: s.now,
    };
    demo.story()
}

/// Removes a previous demo ledger at the default path; refuses to touch any other ledger.
fn prepare(store: &Path, explicit: bool) -> Result<(), CliError> {
    if !store.exists() {
        return Ok(());
    }
    if explicit {
        return Err(CliError::new(
            format!("`{}` already exists", store.display()),
            "the demo seeds a fresh ledger: pass a `--store` path that does not exist yet, or omit `--store`",
        ));
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", store.display()));
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| {
                CliError::new(
                    format!(
                        "cannot remove the previous demo ledger `{}`: {e}",
                        path.display()
                    ),
                    "remove it by hand",
                )
            })?;
        }
    }
    Ok(())
}

struct Demo {
    exe: PathBuf,
    store: PathBuf,
    now: Timestamp,
}

impl Demo {
    fn at(&self, days_ago: i64, hour: i64) -> String {
        // Anchor the story on today's date at 00:00 UTC so times read like a work day.
        let midnight = self.now.unix() - self.now.unix().rem_euclid(86_400);
        Timestamp::from_unix(midnight - days_ago * 86_400 + hour * 3_600).to_string()
    }

    fn base_digest(label: &str) -> String {
        digest(&format!("base {label}"))
    }

    /// Runs `lineage ARGS`, printing the command; with `show`, its output goes to the terminal.
    /// The story's clock for seeded steps (`None`: now) is passed as LINEAGE_NOW, so ledger
    /// times match the story.
    fn lineage_at(&self, args: &[String], show: bool, at: Option<String>) -> Result<(), CliError> {
        println!(
            "$ lineage {}",
            args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
        );
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("LINEAGE_STORE", &self.store)
            .env_remove("LINEAGE_CONFIG")
            .stdin(Stdio::null());
        if let Some(at) = at {
            cmd.env(crate::settings::ENV_NOW, at);
        }
        if !show {
            cmd.stdout(Stdio::null());
        }
        let status = cmd.status().map_err(|e| {
            CliError::new(
                format!("cannot run lineage: {e}"),
                "check that the binary is intact",
            )
        })?;
        if status.code() == Some(2) {
            return Err(CliError::new(
                "a demo step failed (see the error above)",
                "please report this: the demo should always run on a fresh ledger",
            ));
        }
        if show {
            println!();
        }
        Ok(())
    }

    fn lineage(&self, args: &[String], show: bool) -> Result<(), CliError> {
        self.lineage_at(args, show, None)
    }

    fn story(&self) -> Result<Outcome, CliError> {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        println!(
            "Lineage demo: Acme, a six-person SaaS team, runs three services: api, worker and web."
        );
        println!(
            "Ledger: {} (explore it afterwards with `--store {}`)\n",
            self.store.display(),
            self.store.display()
        );

        println!("# Four weeks ago Maya, the tech lead, wrote down who owns what.");
        let services = [
            ("api", "priya@acme.dev", "jonas@acme.dev"),
            ("worker", "jonas@acme.dev", "lee@acme.dev"),
            ("web", "ana@acme.dev", "priya@acme.dev"),
        ];
        for (i, (name, owner, backup)) in services.iter().enumerate() {
            self.lineage_at(
                &a(&[
                    "service",
                    "add",
                    name,
                    "--owner",
                    owner,
                    "--backup-owner",
                    backup,
                    "--emergency-approver",
                    "maya@acme.dev",
                    "--repo",
                    &format!("https://github.com/acme/{name}"),
                    "--image",
                    &format!("ghcr.io/acme/{name}"),
                    "--by",
                    "maya@acme.dev",
                ]),
                i == 0,
                Some(self.at(28, 9)),
            )?;
        }

        println!("# Since then CI recorded every build, and every deploy was recorded too.");
        // One timeline: builds at 14:00, deploys at 16:00, the owner change at 09:00.
        enum Event<'a> {
            Build(&'a Build),
            Deploy(&'a Deploy),
            Rotation,
            Drill,
        }
        let mut timeline: Vec<(i64, Event)> = Vec::new();
        timeline.extend(
            BUILDS
                .iter()
                .map(|b| (-b.days_ago * 24 + 14, Event::Build(b))),
        );
        timeline.extend(
            DEPLOYS
                .iter()
                .map(|d| (-d.days_ago * 24 + 16, Event::Deploy(d))),
        );
        timeline.push((-14 * 24 + 9, Event::Rotation));
        timeline.push((-DRILL_DAYS_AGO * 24 + 10, Event::Drill));
        timeline.sort_by_key(|(t, _)| *t);
        let mut first_build = true;
        for (_, event) in &timeline {
            match event {
                Event::Build(b) => {
                    self.build(b, first_build)?;
                    first_build = false;
                }
                Event::Deploy(d) => self.deploy(d)?,
                Event::Rotation => self.rotation()?,
                Event::Drill => self.open_drill()?,
            }
        }

        println!(
            "\n# Tuesday, 09:12. A critical OpenSSL CVE is published against python:3.12-slim,"
        );
        println!(
            "# digest {}. Four questions, four commands.\n",
            Self::base_digest("python-new")
        );
        println!("# 1. Which services are built on that base, and where does it run now?");
        self.lineage(
            &a(&[
                "affected",
                "--base",
                &format!("{PYTHON}@{}", Self::base_digest("python-new")),
            ]),
            true,
        )?;
        println!(
            "# 2-4. What exactly runs in production for api, which commit built it, who approved"
        );
        println!("#      the deploy, and who owns the fix?");
        self.lineage(&a(&["trace", "api"]), true)?;
        println!("# The whole fleet, per environment, with base digests and owners:");
        self.lineage(&a(&["running"]), true)?;
        println!("# worker changed hands two weeks ago; the history says who to call now:");
        self.lineage(&a(&["service", "show", "worker"]), true)?;
        println!("# Every older python:3.12-slim digest too, not just the one in the advisory:");
        self.lineage(&a(&["affected", "--base", PYTHON]), true)?;
        self.package_drill()?;
        self.drill_result()?;
        println!(
            "Done. Try `lineage --store {} trace worker` or add `--format json` to any query.",
            self.store.display()
        );
        Ok(Outcome::Ok)
    }

    /// The second advisory names a package, not a digest. The nightly Trivy scans of what
    /// runs (and of the two base digests, which say which layers are the base's) are
    /// imported first, as a scanning job would.
    fn package_drill(&self) -> Result<(), CliError> {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let dir = self
            .store
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("scans");
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::new(
                format!("cannot create `{}`: {e}", dir.display()),
                "check that the demo directory is writable",
            )
        })?;
        let layers = |label: &str, n: usize| -> Vec<String> {
            (1..=n)
                .map(|i| digest(&format!("layer {label} {i}")))
                .collect()
        };
        let old_base = layers("python-old", 2);
        let new_base = layers("python-new", 2);
        let with_app = |base: &[String], label: &str| {
            let mut l = base.to_vec();
            l.push(digest(&format!("layer {label} app")));
            l
        };
        const OLD_SSL: &str = "3.0.11-1~deb12u2";
        const NEW_SSL: &str = "3.0.15-1~deb12u1";
        let ssl_cve = (
            "libssl3",
            OLD_SSL,
            "deb",
            1,
            "CVE-2026-0451",
            "CRITICAL",
            NEW_SSL,
        );
        // (what, image, digest label or base, layers, scanned days ago, findings)
        let scans: Vec<Scan> = vec![
            (
                format!(
                    "docker.io/library/python@{}",
                    Self::base_digest("python-old")
                ),
                Self::base_digest("python-old"),
                old_base.clone(),
                1,
                vec![ssl_cve],
            ),
            (
                format!(
                    "docker.io/library/python@{}",
                    Self::base_digest("python-new")
                ),
                Self::base_digest("python-new"),
                new_base.clone(),
                1,
                vec![],
            ),
            (
                format!("ghcr.io/acme/worker@{}", digest("worker-2")),
                digest("worker-2"),
                with_app(&old_base, "worker-2"),
                1,
                vec![ssl_cve],
            ),
            (
                format!("ghcr.io/acme/api@{}", digest("api-3")),
                digest("api-3"),
                with_app(&new_base, "api-3"),
                1,
                vec![(
                    "requests",
                    "2.31.0",
                    "pypi",
                    2,
                    "CVE-2026-0452",
                    "HIGH",
                    "2.32.0",
                )],
            ),
            (
                format!("ghcr.io/acme/worker@{}", digest("worker-3")),
                digest("worker-3"),
                with_app(&new_base, "worker-3"),
                1,
                vec![],
            ),
            (
                format!("ghcr.io/acme/web@{}", digest("web-2")),
                digest("web-2"),
                layers("web-2", 3),
                9,
                vec![],
            ),
        ];
        println!("\n# Every night CI scans what runs with Trivy, and the base images too; the scans go in");
        println!(
            "# the ledger like everything else. (The web scan job has been broken for a week.)"
        );
        for (i, (image, subject, diff_ids, days, findings)) in scans.iter().enumerate() {
            let at = self.at(*days, 2);
            let doc = trivy_report(image, subject, diff_ids, &at, findings);
            let file = dir.join(format!("scan-{i}.json"));
            std::fs::write(
                &file,
                serde_json::to_vec_pretty(&doc).expect("JSON serialises"),
            )
            .map_err(|e| {
                CliError::new(
                    format!("cannot write `{}`: {e}", file.display()),
                    "check that the demo directory is writable",
                )
            })?;
            // Recorded now; the report's own time says when the scan ran.
            self.lineage(
                &a(&[
                    "scan",
                    "add",
                    image,
                    &file.display().to_string(),
                    "--by",
                    "sa:scanner",
                ]),
                i == 0,
            )?;
        }
        println!("\n# Wednesday, 08:30. A second advisory, CVE-2026-0451 (a made-up id), names a package,");
        println!("# not a digest: libssl3 before {NEW_SSL}. Who runs it, where, base or app, who fixes it:");
        self.lineage(
            &a(&["affected", "--package", &format!("libssl3@<{NEW_SSL}")]),
            true,
        )?;
        println!("# Everything the scans found in production, by owner: base findings with the rebuild that");
        println!(
            "# fixes them, apart from app findings; and what was not scanned recently (not clean):"
        );
        self.lineage(&a(&["vulns", "--env", "production"]), true)?;
        Ok(())
    }

    /// Nine days ago Maya rehearsed the morning this demo ends with: a drill on the base
    /// digest everything ran on then. The builds and deploys the story records afterwards
    /// are what the drill follows.
    fn open_drill(&self) -> Result<(), CliError> {
        println!(
            "# Nine days ago Maya ran a drill: \"the python:3.12-slim digest we run has a critical CVE.\""
        );
        println!("# Lineage took a snapshot of what ran on it; the clock started.");
        self.lineage_at(
            &[
                "incident",
                "open",
                "--drill",
                "--title",
                "Critical CVE in our python:3.12-slim base",
                "--base",
                &format!(
                    "docker.io/library/python@{}",
                    Self::base_digest("python-old")
                ),
                "--by",
                "maya@acme.dev",
            ]
            .map(str::to_string),
            true,
            Some(self.at(DRILL_DAYS_AGO, 10)),
        )?;
        println!("# The team went on as usual; the ledger kept recording.");
        Ok(())
    }

    /// The drill, nine days on: the rebuilds and deploys since then are its timeline.
    fn drill_result(&self) -> Result<(), CliError> {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        println!(
            "\n# And the drill Maya opened nine days ago? The builds and deploys recorded since are its"
        );
        println!("# timeline: how long each service took, and who to call for what still runs the old base.");
        self.lineage(&a(&["incident", "show", "1"]), true)?;
        self.lineage(&a(&["incident", "list"]), true)?;
        Ok(())
    }

    fn rotation(&self) -> Result<(), CliError> {
        println!("# Two weeks ago Jonas moved teams; Sam took over the worker.");
        self.lineage_at(
            &[
                "service",
                "set-owner",
                "worker",
                "--owner",
                "sam@acme.dev",
                "--by",
                "maya@acme.dev",
            ]
            .map(str::to_string),
            false,
            Some(self.at(14, 9)),
        )?;
        println!("# Back to the usual rhythm.");
        Ok(())
    }

    fn build(&self, b: &Build, show: bool) -> Result<(), CliError> {
        let mut args: Vec<String> = [
            "build",
            "record",
            "--image",
            &format!(
                "ghcr.io/acme/{}:{}@{}",
                b.service,
                b.version,
                digest(b.label)
            ),
        ]
        .map(str::to_string)
        .to_vec();
        for (name, base_label) in b.bases {
            args.push("--base".into());
            args.push(format!("{name}@{}", Self::base_digest(base_label)));
        }
        let finished = self.at(b.days_ago, 14);
        args.extend(
            [
                "--base-pulled-at",
                &self.at(b.days_ago, 13),
                "--repo",
                &format!("https://github.com/acme/{}", b.service),
                "--branch",
                "main",
                "--commit",
                &commit(b.label),
                "--started-at",
                &self.at(b.days_ago, 13),
                "--finished-at",
                &finished,
                "--ci-system",
                "github-actions",
                "--ci-job",
                &format!("{}/release-image", b.service),
                "--ci-run-id",
                &format!("{}", 7000 + b.days_ago),
                "--ci-url",
                &format!(
                    "https://github.com/acme/{}/actions/runs/{}",
                    b.service,
                    7000 + b.days_ago
                ),
                "--builder",
                &format!(
                    "https://github.com/acme/{}/.github/workflows/release.yml@refs/heads/main",
                    b.service
                ),
                "--platform",
                "linux/amd64",
            ]
            .map(str::to_string),
        );
        self.lineage_at(&args, show, Some(finished))
    }

    fn deploy(&self, d: &Deploy) -> Result<(), CliError> {
        let mut args: Vec<String> = [
            "deploy",
            "record",
            "--image",
            &format!("ghcr.io/acme/{}@{}", d.service, digest(d.label)),
            "--env",
            d.env,
            "--by",
            d.by,
            "--at",
            &self.at(d.days_ago, 16),
        ]
        .map(str::to_string)
        .to_vec();
        if let Some(a) = d.approved_by {
            args.push("--approved-by".into());
            args.push(a.into());
        }
        let at = self.at(d.days_ago, 16);
        self.lineage_at(&args, false, Some(at))
    }
}

fn quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{arg}'")
    }
}

/// A finding in a demo scan: package, version, purl type, layer index, id, severity, fix.
type Finding = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    &'static str,
    &'static str,
    &'static str,
);

/// A demo scan: image, its digest, its layers, days since the scan, findings.
type Scan = (String, String, Vec<String>, i64, Vec<Finding>);

/// A Trivy report (SchemaVersion 2) of `image`, as `trivy image --format json` writes one.
fn trivy_report(
    image: &str,
    subject: &str,
    diff_ids: &[String],
    created: &str,
    findings: &[Finding],
) -> serde_json::Value {
    let vulns: Vec<serde_json::Value> = findings
        .iter()
        .map(|(name, version, ty, layer, id, severity, fixed)| {
            let ns = if *ty == "deb" { "debian/" } else { "" };
            serde_json::json!({
                "VulnerabilityID": id, "PkgName": name, "InstalledVersion": version,
                "PkgIdentifier": {"PURL": format!("pkg:{ty}/{ns}{name}@{version}")},
                "FixedVersion": fixed, "Status": "fixed", "Severity": severity,
                "Layer": {"DiffID": diff_ids[*layer]},
            })
        })
        .collect();
    let repo = image.split('@').next().unwrap_or(image);
    serde_json::json!({
        "SchemaVersion": 2,
        "CreatedAt": created,
        "ArtifactName": image,
        "ArtifactType": "container_image",
        "Metadata": {
            "OS": {"Family": "debian", "Name": "12.8"},
            "DiffIDs": diff_ids,
            "RepoDigests": [format!("{repo}@{subject}")],
        },
        "Results": [{"Target": format!("{image} (debian 12.8)"), "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}],
    })
}
