//! Hostile input, secrets and ledger creation (issue 14): each test here failed on the code
//! before the fix it guards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NOW: &str = "2026-11-17T09:12:00Z";

struct Ledger {
    dir: tempfile::TempDir,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "maya@acme.dev");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lineage {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with a deadline: a command that would block forever (a FIFO) fails the test
    /// instead of hanging the suite.
    fn run_within(&self, args: &[&str], limit: Duration) -> Output {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lineage {args:?} still ran after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

fn digest(label: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(label.as_bytes()))
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn has_raw_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' || c == '\u{202e}')
}

fn with_service(image: &str) -> Ledger {
    let l = Ledger::new();
    l.ok(&[
        "service",
        "add",
        "web",
        "--owner",
        "priya@acme.dev",
        "--image",
        image,
    ]);
    l
}

#[test]
fn free_text_with_control_characters_is_refused_naming_the_flag_and_writing_nothing() {
    let l = with_service("ghcr.io/acme/web");
    let image = format!("ghcr.io/acme/web@{}", digest("w1"));
    for (flag, value) in [
        ("--branch", "main\u{1b}[2J"),
        ("--branch", "main\nerror: forged line"),
        ("--ci-job", "build\r"),
        (
            "--ci-url",
            "\u{1b}]8;;https://evil.example\u{7}run\u{1b}]8;;\u{7}",
        ),
        ("--ci-run-id", "7\u{202e}"),
    ] {
        let mut args = vec![
            "build",
            "record",
            "--image",
            &image,
            "--ci-system",
            "jenkins",
        ];
        args.extend([flag, value]);
        let out = l.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value:?}: {err}");
        assert!(err.contains(flag), "{flag}: {err}");
        assert!(!has_raw_control(&err), "{flag}: raw control in {err:?}");
    }
    let long = "x".repeat(5000);
    let out = l.run(&["build", "record", "--image", &image, "--branch", &long]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at most 256"), "{}", stderr(&out));
    // A detected value names the variable it came from.
    let out = l
        .cmd(&["build", "record", "--image", &image])
        .env("JENKINS_URL", "https://ci.acme.dev/")
        .env("BUILD_ID", "7")
        .env("GIT_BRANCH", "origin/main\u{1b}[2J")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("GIT_BRANCH"), "{}", stderr(&out));
    // Nothing was written.
    let out = l.run(&["trace", &image]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn times_before_2000_are_refused() {
    let l = with_service("ghcr.io/acme/web");
    let image = format!("ghcr.io/acme/web@{}", digest("w1"));
    for flag in ["--finished-at", "--started-at"] {
        let out = l.run(&[
            "build",
            "record",
            "--image",
            &image,
            flag,
            "0000-01-01T00:00:00Z",
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains("2000-01-01"), "{}", stderr(&out));
    }
    let out = l.run(&[
        "build",
        "record",
        "--image",
        &image,
        "--base",
        &format!("debian:12@{}", digest("d")),
        "--base-pulled-at",
        "0000-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn hostile_text_already_in_the_ledger_is_shown_inert() {
    let l = with_service("ghcr.io/acme/web");
    let image = format!("ghcr.io/acme/web@{}", digest("w1"));
    // Written past the input checks, as an older version or another writer could have.
    let mut store =
        lineage_store::open(&lineage_store::StoreLocation::Sqlite(l.store()), false).unwrap();
    let build = lineage_model::BuildRecord {
        service: lineage_model::ServiceName::parse("web").unwrap(),
        image: lineage_model::Repository::parse("ghcr.io/acme/web").unwrap(),
        digest: lineage_model::Digest::parse(&digest("w1")).unwrap(),
        tags: vec![],
        bases: vec![],
        source_repo: None,
        git_ref: Some("main\u{1b}[2J\nowner attacker@evil.example".into()),
        commit: None,
        started_at: None,
        finished_at: None,
        ci: Some(lineage_model::CiRun {
            system: "jenkins\u{1b}]8;;https://evil.example\u{7}".into(),
            job: None,
            run_id: None,
            url: None,
        }),
        builder: None,
        platform: Some("linux/\u{202e}46dma".into()),
        dockerfile: None,
    };
    store
        .record_builds(
            &[build],
            lineage_model::Timestamp::parse(NOW).unwrap(),
            None,
        )
        .unwrap();
    drop(store);
    let shown = l.ok(&["trace", &image]);
    assert!(
        !has_raw_control(&shown),
        "raw control characters in {shown:?}"
    );
    assert!(shown.contains("main\\u{1b}[2J\\nowner attacker"), "{shown}");
    assert!(
        !shown
            .lines()
            .any(|line| line.trim_start().starts_with("owner attacker")),
        "a forged line: {shown}"
    );
}

#[test]
fn written_names_read_back_unchanged_so_log_verify_stays_clean() {
    // `TEAM/web` and `MIRROR/library/debian` are split like Docker does: the capitals make
    // the first part a registry, and the record must read back the same.
    let l = with_service("TEAM/web");
    l.ok(&[
        "build",
        "record",
        "--image",
        &format!("TEAM/web@{}", digest("w1")),
        "--base",
        &format!("MIRROR/library/debian:12@{}", digest("deb")),
        "--allow-failures",
    ]);
    let out = l.run(&["log", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn plain_http_to_another_host_is_refused_before_any_token_is_sent() {
    let l = with_service("ghcr.io/acme/web");
    let image = format!("ghcr.io/acme/web@{}", digest("w1"));
    let out = l
        .cmd(&[
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "staging",
            "--by",
            "a@acme.dev",
            "--server",
            "http://192.0.2.10:8080",
        ])
        .env("LINEAGE_TOKEN", "lin_secret_value_never_sent")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plain http"), "{err}");
    assert!(!err.contains("lin_secret_value"), "{err}");
}

#[test]
fn webhook_keys_are_private_and_never_written_over() {
    use std::os::unix::fs::PermissionsExt;
    let l = Ledger::new();
    let out_dir = l.dir.path().join("tls");
    std::fs::create_dir(&out_dir).unwrap();
    let key = out_dir.join("tls.key");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = [
        "k8s",
        "webhook-config",
        "--service-name",
        "lineage",
        "--namespace",
        "lineage",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ];
    let out = l.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "old");
    let mut forced = args.to_vec();
    forced.push("--force");
    l.ok(&forced);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "tls.key is {mode:o}");
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .contains("PRIVATE KEY"));
}

#[test]
fn devices_and_fifos_are_refused_at_once() {
    let l = with_service("ghcr.io/acme/web");
    let fifo = l.dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    let image = format!("ghcr.io/acme/web@{}", digest("w1"));
    for input in ["/dev/zero", fifo] {
        for args in [
            vec!["service", "import", input],
            vec!["build", "record", "--image", &image, "--dockerfile", input],
            vec!["verify", input, "--key", input],
            vec!["observe", input, "--cluster", "c"],
            vec!["sbom", "add", &image, input],
        ] {
            let out = l.run_within(&args, Duration::from_secs(20));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains("not a regular file"), "{args:?}: {err}");
        }
    }
    // A ledger path that is not a file is refused, and nothing is made beside it.
    let out = l
        .cmd(&["service", "list"])
        .env("LINEAGE_STORE", fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut out = out;
    while out.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = out.kill();
            panic!("`--store FIFO service list` blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = out.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!Path::new(&format!("{fifo}-journal")).exists());
    assert!(!Path::new(&format!("{fifo}-wal")).exists());
}

#[test]
fn first_writers_on_a_new_ledger_all_succeed_or_write_nothing() {
    for round in 0..10 {
        let l = Ledger::new();
        let children: Vec<_> = (0..8)
            .map(|i| {
                l.cmd(&[
                    "service",
                    "add",
                    &format!("svc-{i}"),
                    "--owner",
                    "priya@acme.dev",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        let outcomes: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let list = l.ok(&["--format", "json", "service", "list"]);
        for (i, out) in outcomes.iter().enumerate() {
            let present = list.contains(&format!("\"svc-{i}\""));
            match out.status.code() {
                Some(0) => assert!(present, "round {round}: svc-{i} acknowledged but missing"),
                Some(2) => assert!(!present, "round {round}: svc-{i} exited 2 but was written"),
                code => panic!("round {round}: svc-{i} exited {code:?}: {}", stderr(out)),
            }
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", stderr(out));
        }
        // No temporary ledger is left behind.
        let stray: Vec<_> = std::fs::read_dir(l.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("creating"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
        let out = l.run(&["log", "verify"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// The crash harness: writers are killed (SIGKILL) at random points. Every acknowledged build
/// must survive, no build may be without its gate result (a failed production build would
/// then pass `deploy check`), and `log verify` must stay clean. `LINEAGE_CRASH_RUNS` makes it
/// longer (the suite runs a short one).
#[test]
fn killed_writers_lose_nothing_acknowledged_and_leave_nothing_half_written() {
    let runs: u64 = std::env::var("LINEAGE_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash harness: {runs} runs, seed {seed}");
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64: enough to spread the kill points.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let l = with_service("ghcr.io/acme/web");
    // The first write made the ledger and its key; time one build to aim the kills.
    let t = Instant::now();
    l.ok(&[
        "build",
        "record",
        "--image",
        &format!("ghcr.io/acme/web@{}", digest("warm")),
        "--env",
        "production",
        "--allow-failures",
    ]);
    let one = t.elapsed().as_micros() as u64;
    let mut acknowledged = Vec::new();
    let mut killed = 0;
    for i in 0..runs {
        let image = format!("ghcr.io/acme/web@{}", digest(&format!("crash-{i}")));
        // No commit, branch or CI: the production build gate fails, so the gate result
        // (failed) is what must not go missing.
        let mut child = l
            .cmd(&[
                "build",
                "record",
                "--image",
                &image,
                "--env",
                "production",
                "--allow-failures",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = next() % (one * 3 / 2 + 1);
        std::thread::sleep(Duration::from_micros(wait));
        match child.try_wait().unwrap() {
            Some(status) => {
                if status.success() {
                    acknowledged.push(image);
                }
            }
            None => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                if status.success() {
                    acknowledged.push(image);
                } else {
                    killed += 1;
                }
            }
        }
    }
    eprintln!(
        "crash harness: {} acknowledged, {killed} killed",
        acknowledged.len()
    );
    for image in &acknowledged {
        let out = l.run(&["trace", image]);
        assert!(out.status.success(), "acknowledged {image} is missing");
    }
    for i in 0..runs {
        let image = format!("ghcr.io/acme/web@{}", digest(&format!("crash-{i}")));
        if !l.run(&["trace", &image]).status.success() {
            continue;
        }
        // Present means whole: the deploy gate sees the failed build check.
        let out = l.run(&[
            "--format",
            "json",
            "deploy",
            "check",
            "--image",
            &image,
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "maya@acme.dev",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("D007"), "{image} has no gate result: {text}");
    }
    let out = l.run(&["log", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

/// Unmounts the test's tmpfs however the test ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A real full disk: a 2 MiB tmpfs (mounting it needs root, which the suite has in CI; a
/// machine where it cannot mount fails this test rather than skipping it).
#[test]
fn a_full_disk_fails_writes_cleanly_and_leaves_reads_working() {
    let l = Ledger::new();
    let disk = l.dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&disk)
        .status()
        .expect("`mount` runs");
    assert!(
        status.success(),
        "cannot mount a tmpfs (this test needs root)"
    );
    let _mounted = Mounted(disk.clone());
    let store = disk.join("ledger.db");
    let run = |args: &[&str]| l.cmd(args).env("LINEAGE_STORE", &store).output().unwrap();
    let w1 = format!("ghcr.io/acme/web@{}", digest("w1"));
    let w2 = format!("ghcr.io/acme/web@{}", digest("w2"));
    for args in [
        vec![
            "service",
            "add",
            "web",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/web",
        ],
        vec!["build", "record", "--image", &w1, "--allow-failures"],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    // Fill the disk.
    let filler = disk.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let out = run(&["build", "record", "--image", &w2, "--allow-failures"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("storage failed"), "{err}");
    assert!(
        !err.contains("not a Lineage ledger"),
        "a wrong diagnosis: {err}"
    );
    // Reads still answer, and the refused build is not there.
    let out = run(&["service", "list"]);
    assert!(
        out.status.success(),
        "service list on a full disk: {}",
        stderr(&out)
    );
    let out = run(&["trace", &w1]);
    assert!(
        out.status.success(),
        "trace on a full disk: {}",
        stderr(&out)
    );
    assert_eq!(run(&["trace", &w2]).status.code(), Some(1));
    // A first write on the full disk: refused, and no empty key or half-made ledger is
    // left to break the next command.
    let fresh = disk.join("fresh.db");
    let out = l
        .cmd(&["service", "add", "web", "--owner", "priya@acme.dev"])
        .env("LINEAGE_STORE", &fresh)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!fresh.exists(), "a ledger was left on the full disk");
    for entry in std::fs::read_dir(&disk).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !(name.ends_with(".key") && meta.len() == 0),
            "an empty key file `{name}` was left"
        );
        assert!(
            !name.contains("creating"),
            "a temporary ledger `{name}` was left"
        );
    }
    // With room again, writes work and the log is whole.
    std::fs::remove_file(&filler).unwrap();
    let out = l
        .cmd(&["service", "add", "web", "--owner", "priya@acme.dev"])
        .env("LINEAGE_STORE", &fresh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["build", "record", "--image", &w2, "--allow-failures"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["log", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A killed `service import` leaves all of the table or none of it: it is one transaction.
#[test]
fn a_killed_import_leaves_all_rows_or_none() {
    let l = Ledger::new();
    l.ok(&["service", "add", "first", "--owner", "priya@acme.dev"]);
    let mut table = String::from("service,owner\n");
    for i in 0..5000 {
        table.push_str(&format!("svc-{i},o{i}@acme.dev\n"));
    }
    std::fs::write(l.dir.path().join("team.csv"), table).unwrap();
    for wait_ms in [5, 20, 60, 150] {
        let mut child = l
            .cmd(&["service", "import", "team.csv"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let list: serde_json::Value =
            serde_json::from_str(&l.ok(&["--format", "json", "service", "list"])).unwrap();
        let count = list["services"].as_array().map_or(0, Vec::len);
        assert!(
            count == 1 || count == 5001,
            "killed after {wait_ms} ms ({status}): {count} services, a half-written import"
        );
        if count == 5001 {
            break;
        }
    }
    let out = l.run(&["log", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
