//! Adoption, tested as a new team would meet it: the GitHub Action's and the GitLab
//! template's shell steps run for real, with each CI system's variables set, against a real
//! registry; the Kubernetes manifests against the Kubernetes schemas; the container image
//! built with buildah; the stale report sent to a real SMTP server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lineage_testkit::{ImageFormat, Pushed, Registry, World};
use serde_json::Value;

const NOW: &str = "2026-11-17T09:12:00Z";
const PASSWORD: &str = "correct horse battery staple";
const COMMIT: &str = "8d3c0a9b1e2f4a5b6c7d8e9f0a1b2c3d4e5f6a7b";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A ledger directory where `lineage` runs as a CI job would run it.
struct Job {
    dir: tempfile::TempDir,
}

impl Job {
    fn new() -> Job {
        Job {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> String {
        self.path("ledger.db").display().to_string()
    }

    /// PATH with the binary under test first, as if installed.
    fn path_var() -> String {
        let bin = Path::new(env!("CARGO_BIN_EXE_lineage")).parent().unwrap();
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn lineage(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(["--format", "json"])
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", Self::path_var())
            .env("LINEAGE_STORE", self.store())
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "ops@acme.dev")
            .env("LINEAGE_KEY_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lineage {args:?}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Runs a CI shell step as the CI system would: bash, errexit and pipefail, the variables
    /// in `env` and nothing else from this process but PATH and HOME.
    fn shell(&self, script: &str, env: &BTreeMap<String, String>) {
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", Self::path_var())
            .env("HOME", self.dir.path())
            .envs(env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "step failed ({}):\n{script}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A base image and an app image built on it with buildah, pushed to `registry`; the ledger
/// knows the service and has a signing key.
fn built_app(world: &World, registry: &Registry, job: &Job, name: &str) -> (Pushed, Pushed) {
    let base = world.umoci_image(
        &registry.reference(&format!("{name}-base:1")),
        &[&[("etc/os-release", "ID=lineage-test\n")]],
        &[],
    );
    let dockerfile = format!("FROM {}\nCOPY app.txt /app.txt\n", base.pinned());
    std::fs::write(job.path("Dockerfile"), &dockerfile).unwrap();
    let tag = registry.reference(&format!("{name}:1.0"));
    world.buildah_build(&dockerfile, &[("app.txt", name)], &tag, &[]);
    let app = world.buildah_push(&tag, ImageFormat::Oci);
    let repository = tag.rsplit_once(':').unwrap().0.to_string();
    job.lineage(&[
        "service",
        "add",
        name,
        "--owner",
        "priya@acme.dev",
        "--image",
        &repository,
    ]);
    if !job.path("keys/ci.key").exists() {
        job.lineage(&["key", "generate", "--name", "ci", "--dir", "keys"]);
    }
    (base, app)
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `${{ … }}` expressions as GitHub evaluates the few the action uses.
fn expand(value: &str, ctx: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed expression") + start;
        let expr = rest[start + 3..end].trim();
        out.push_str(ctx.get(expr).map(String::as_str).unwrap_or(""));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// An `if:` of `a == 'x' && b != ''` form.
fn condition(expr: &str, ctx: &BTreeMap<String, String>) -> bool {
    expr.split("&&").all(|clause| {
        let (lhs, rhs, equal) = match clause.split_once("!=") {
            Some((l, r)) => (l, r, false),
            None => {
                let (l, r) = clause.split_once("==").expect("a comparison");
                (l, r, true)
            }
        };
        let lhs = ctx.get(lhs.trim()).cloned().unwrap_or_default();
        let rhs = rhs.trim().trim_matches('\'');
        (lhs == rhs) == equal
    })
}

/// Done when (issue 20): the GitHub Action's shell steps, run with GitHub's variables against
/// a real registry, record the build from buildx metadata, leave SARIF for code scanning and
/// attach signed provenance to the image.
#[test]
fn the_github_action_records_checks_and_attaches_in_a_workflow() {
    let registry = Registry::start();
    let world = World::new();
    let job = Job::new();
    let (base, app) = built_app(&world, &registry, &job, "api");

    // What docker/build-push-action's `metadata` output holds for this push.
    let (base_name, _) = base.reference.rsplit_once(':').unwrap();
    let meta = serde_json::json!({
        "containerimage.digest": app.digest,
        "image.name": app.reference,
        "buildx.build.provenance": {
            "buildType": "https://mobyproject.org/buildkit@v1",
            "materials": [{
                "uri": format!("pkg:docker/{base_name}@1?platform=linux%2Famd64"),
                "digest": {"sha256": base.digest.trim_start_matches("sha256:")}
            }],
            "metadata": {"buildStartedOn": "2026-11-17T09:00:00Z", "buildFinishedOn": "2026-11-17T09:05:00Z"}
        }
    });
    std::fs::write(job.path("buildx-metadata.json"), meta.to_string()).unwrap();
    let output = job.path("github_output");
    std::fs::write(&output, "").unwrap();

    let action = yaml(&repo_root().join("action.yml"));
    assert_eq!(text(&action["runs"]["using"]), "composite");
    let mut ctx: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in action["inputs"].as_mapping().unwrap() {
        ctx.insert(format!("inputs.{}", text(k)), text(&v["default"]));
    }
    for (k, v) in [
        ("image", app.reference.as_str()),
        ("buildx-metadata", "buildx-metadata.json"),
        ("dockerfile", "Dockerfile"),
        ("env", "staging"),
        ("sign-key", "keys/ci.key"),
        ("store", &job.store()),
    ] {
        ctx.insert(format!("inputs.{k}"), v.to_string());
    }
    ctx.insert(
        "github.action_path".into(),
        repo_root().display().to_string(),
    );
    let github: BTreeMap<String, String> = [
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/api"),
        ("GITHUB_SHA", COMMIT),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_WORKFLOW", "build"),
        ("GITHUB_JOB", "image"),
        ("GITHUB_RUN_ID", "7712"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_ACTOR", "priya"),
        (
            "GITHUB_WORKFLOW_REF",
            "acme/api/.github/workflows/build.yml@refs/heads/main",
        ),
        ("LINEAGE_NOW", NOW),
        ("LINEAGE_KEY_PASSWORD", PASSWORD),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("GITHUB_OUTPUT".to_string(), output.display().to_string())])
    .chain([(
        "GITHUB_STEP_SUMMARY".to_string(),
        job.path("summary.md").display().to_string(),
    )])
    .collect();

    let mut ran = Vec::new();
    for step in action["runs"]["steps"].as_sequence().unwrap() {
        let name = text(&step["name"]);
        if let Some(cond) = step.get("if") {
            if !condition(&text(cond), &ctx) {
                continue;
            }
        }
        let mut env = github.clone();
        if let Some(map) = step.get("env").and_then(|e| e.as_mapping()) {
            for (k, v) in map {
                env.insert(text(k), expand(&text(v), &ctx));
            }
        }
        job.shell(&text(&step["run"]), &env);
        // Step outputs, as GitHub reads them from GITHUB_OUTPUT.
        if let Some(id) = step.get("id") {
            for line in std::fs::read_to_string(&output).unwrap().lines() {
                if let Some((k, v)) = line.split_once('=') {
                    ctx.insert(format!("steps.{}.outputs.{k}", text(id)), v.to_string());
                }
            }
        }
        ran.push(name);
    }
    assert_eq!(ran.len(), 4, "every step ran: {ran:?}");

    // The SARIF report is there for upload-sarif, and the job summary was written.
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(job.path("lineage.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(std::fs::read_to_string(job.path("summary.md"))
        .unwrap()
        .contains("build"));
    assert_eq!(ctx["steps.record.outputs.digest"], app.digest);

    // The record carries GitHub's facts and the buildx metadata's base.
    let trace = job.lineage(&["trace", &app.digest]);
    let build = &trace["build"];
    assert_eq!(build["commit"], COMMIT, "{trace:#}");
    assert_eq!(build["ci"]["system"], "github-actions");
    assert_eq!(build["ci"]["run_id"], "7712.1");
    assert_eq!(build["bases"][0]["digest"], base.digest.as_str());
    assert_eq!(build["started_at"], "2026-11-17T09:00:00Z");

    // The provenance is beside the image: a consumer pulls it back.
    let consumer = Job::new();
    let pulled = consumer.lineage(&["attest", "pull", &app.pinned()]);
    let found = pulled["attestations"].as_array().unwrap();
    assert!(!found.is_empty(), "{pulled:#}");
}

/// Done when (issue 20): the GitLab template's script, run with GitLab's variables against a
/// real registry, records the build from buildah's real digest file, writes the code quality
/// report merge requests show, and attaches signed provenance.
#[test]
fn the_gitlab_template_records_checks_and_attaches_in_a_pipeline() {
    let registry = Registry::start();
    let world = World::new();
    let job = Job::new();
    let (_, app) = built_app(&world, &registry, &job, "web");
    std::fs::copy(&app.digest_file, job.path("digest.txt")).unwrap();

    let template = yaml(&repo_root().join("ci/gitlab/lineage.gitlab-ci.yml"));
    let record = &template[".lineage-record"];
    let mut env: BTreeMap<String, String> = record["variables"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect();
    // The including job's variables, then GitLab's predefined ones.
    for (k, v) in [
        ("LINEAGE_IMAGE", app.reference.as_str()),
        ("LINEAGE_DIGEST_FILE", "digest.txt"),
        ("LINEAGE_DOCKERFILE", "Dockerfile"),
        ("LINEAGE_ENV", "staging"),
        ("LINEAGE_SIGN_KEY", "keys/ci.key"),
        ("LINEAGE_STORE", &job.store()),
        ("LINEAGE_NOW", NOW),
        ("LINEAGE_KEY_PASSWORD", PASSWORD),
        ("GITLAB_CI", "true"),
        ("CI", "true"),
        ("CI_JOB_NAME", "lineage"),
        ("CI_PIPELINE_ID", "4410"),
        ("CI_JOB_URL", "https://gitlab.com/acme/web/-/jobs/99"),
        ("CI_PROJECT_URL", "https://gitlab.com/acme/web"),
        ("CI_COMMIT_REF_NAME", "main"),
        ("CI_COMMIT_SHA", COMMIT),
        ("CI_SERVER_URL", "https://gitlab.com"),
        ("CI_RUNNER_ID", "12"),
        ("GITLAB_USER_EMAIL", "priya@acme.dev"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    let script: Vec<String> = record["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    job.shell(&script.join("\n"), &env);

    let quality: Value = serde_json::from_str(
        &std::fs::read_to_string(job.path("gl-code-quality-report.json")).unwrap(),
    )
    .unwrap();
    for item in quality.as_array().unwrap() {
        for key in [
            "description",
            "check_name",
            "fingerprint",
            "severity",
            "location",
        ] {
            assert!(item.get(key).is_some(), "{key} missing: {item}");
        }
    }
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(job.path("lineage-record.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["digest"], app.digest.as_str());
    let trace = job.lineage(&["trace", &app.digest]);
    assert_eq!(trace["build"]["ci"]["system"], "gitlab-ci", "{trace:#}");
    assert_eq!(trace["build"]["commit"], COMMIT);
    let consumer = Job::new();
    let pulled = consumer.lineage(&["attest", "pull", &app.pinned()]);
    assert!(
        !pulled["attestations"].as_array().unwrap().is_empty(),
        "{pulled:#}"
    );
}

/// The venv `cargo xtask test` makes (LINEAGE_TEST_PYTHON), and a program in it.
fn venv_bin(program: &str) -> PathBuf {
    let python = std::env::var("LINEAGE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("LINEAGE_TEST_PYTHON is not set: run `cargo xtask test`, which installs {program} from PyPI")
    });
    Path::new(&python).parent().unwrap().join(program)
}

/// YAML documents of a stream, as JSON.
fn documents(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| {
            let v = serde_yaml::Value::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize as _;

/// Runs `lineage k8s SUBCOMMAND` with a lineage.toml naming admission namespaces.
fn k8s(job: &Job, args: &[&str]) -> String {
    std::fs::write(
        job.path("lineage.toml"),
        "[admission]\nnamespaces = { prod = \"production\", web = \"staging\" }\n\n[log]\nkey = \"/etc/lineage/secrets/log.key\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["k8s"])
        .args(args)
        // The test makes certificates more than once in one directory; replacing is explicit.
        .args(["--out-dir", "certs", "--force"])
        .current_dir(job.dir.path())
        .env_clear()
        .env("LINEAGE_STORE", job.store())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Done when (issue 20): the cluster manifests pass the Kubernetes schemas strictly, run two
/// replicas with the probes, and the webhook never judges kube-system or Lineage's namespace.
#[test]
fn k8s_manifests_validate_against_the_kubernetes_schemas() {
    let job = Job::new();
    let stream = k8s(
        &job,
        &[
            "manifests",
            "--namespace",
            "lineage-system",
            "--image",
            "ghcr.io/acme/lineage:0.1.0",
        ],
    );
    let file = job.path("lineage.yaml");
    std::fs::write(&file, &stream).unwrap();
    let validate = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate (PyPI) in the test venv");
    assert!(
        validate.status.success(),
        "kubernetes-validate --strict:\n{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    // A broken document is caught by the same validator (the check has teeth).
    let broken = stream.replace("minAvailable: 1", "minAvailable: 1\n  minimumAvailable: 1");
    std::fs::write(job.path("broken.yaml"), broken).unwrap();
    let refused = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(job.path("broken.yaml"))
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "an unknown field passed --strict"
    );

    let docs = documents(&stream);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ValidatingWebhookConfiguration"
        ]
    );
    let deployment = &docs[1];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        container["env"][1]["valueFrom"]["secretKeyRef"]["key"],
        "database-url"
    );
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("lineage-secrets") && volumes.contains("lineage-tls"),
        "{volumes}"
    );
    // The settings travel in the ConfigMap, as written.
    assert!(docs[0]["data"]["lineage.toml"]
        .as_str()
        .unwrap()
        .contains("prod = \"production\""));
    check_webhook(&docs[5], "lineage-system", &["prod", "web"]);

    // `k8s webhook-config` has the same selector.
    let stream = k8s(
        &job,
        &[
            "webhook-config",
            "--service-name",
            "lineage",
            "--namespace",
            "ops",
        ],
    );
    let docs = documents(&stream);
    check_webhook(&docs[1], "ops", &["prod", "web"]);
    std::fs::write(&file, &stream).unwrap();
    let validate = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );
}

fn check_webhook(doc: &Value, own: &str, governed: &[&str]) {
    let hook = &doc["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 5);
    let exprs = hook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap();
    assert_eq!(exprs[0]["operator"], "NotIn");
    assert_eq!(exprs[0]["values"], serde_json::json!(["kube-system", own]));
    assert_eq!(exprs[1]["operator"], "In");
    assert_eq!(exprs[1]["values"], serde_json::json!(governed));
}

/// The shared libraries `binary` loads, as `ldd` lists them (absolute paths).
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .expect("ldd (libc-bin)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Done when (issue 20): the Containerfile's runtime stage, built offline with buildah around
/// the locally built binary (and the glibc libraries the distroless base provides), runs
/// `lineage --version` and the demo as its unprivileged user.
#[test]
fn the_container_image_runs_the_cli_and_the_demo() {
    let world = World::new();
    let job = Job::new();
    let context = job.path("context");
    let rootfs = context.join("rootfs");
    let binary = Path::new(env!("CARGO_BIN_EXE_lineage"));
    for lib in shared_libraries(binary) {
        let target = rootfs.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&lib).unwrap(), &target).unwrap();
    }
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::create_dir_all(context.join("home/nonroot")).unwrap();
    std::fs::copy(binary, context.join("lineage")).unwrap();

    // The Containerfile's last stage, with the distroless base stood in for by the libraries
    // above and the build stage's binary by the local one.
    let containerfile = std::fs::read_to_string(repo_root().join("Containerfile")).unwrap();
    let runtime = &containerfile[containerfile.rfind("\nFROM ").unwrap() + 1..];
    let mut lines = runtime.lines();
    let from = lines.next().unwrap();
    assert!(from.contains("distroless/cc"), "{from}");
    let mut test_file =
        String::from("FROM scratch\nCOPY rootfs/ /\nCOPY --chown=65532:65532 home/ /home/\n");
    let mut copied = false;
    for line in lines {
        if line.starts_with("COPY --from=build ") {
            let dest = line.split_whitespace().last().unwrap();
            test_file.push_str(&format!("COPY lineage {dest}\n"));
            copied = true;
        } else {
            test_file.push_str(line);
            test_file.push('\n');
        }
    }
    assert!(
        copied,
        "the runtime stage copies the binary from the build stage"
    );
    std::fs::write(context.join("Containerfile.test"), &test_file).unwrap();
    world.buildah_build_context(
        &context,
        &context.join("Containerfile.test"),
        "localhost/lineage:test",
    );

    let version = world.buildah_run(
        "localhost/lineage:test",
        &["/usr/local/bin/lineage", "--version"],
    );
    assert_eq!(
        version.trim(),
        format!("lineage {}", env!("CARGO_PKG_VERSION"))
    );
    let demo = world.buildah_run(
        "localhost/lineage:test",
        &["/usr/local/bin/lineage", "demo"],
    );
    assert!(demo.contains("lineage trace"), "{demo}");
    // The demo wrote its ledger as the image's unprivileged user, in its working directory,
    // and answered from it (each `buildah run` is a fresh container, so this is the check).
    assert!(demo.contains("lineage-demo/lineage.db"), "{demo}");
}

/// A free loopback port (the kernel picks it; the listener is closed again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (aiosmtpd from PyPI) on loopback, writing what it receives to a
/// Maildir; stopped when dropped.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        let port = free_port();
        let maildir = dir.join("maildir");
        let child = Command::new(venv_bin("python"))
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd (PyPI) in the test venv");
        // Dropping `Smtp` stops and reaps the server, on every path out of here.
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        // Ready when it answers with its greeting.
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::Read as _;
                let mut greeting = [0u8; 3];
                if s.read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                    return smtp;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Done when (issue 20): `report stale --email-to` delivers the report to a real SMTP server,
/// plain text with the Markdown table as an alternative.
#[test]
fn the_stale_report_is_emailed_through_a_real_smtp_server() {
    let job = Job::new();
    let digest = |s: &str| {
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s.as_bytes()))
        )
    };
    for (service, owner) in [("api", "priya@acme.dev"), ("web", "lee@acme.dev")] {
        job.lineage(&[
            "service",
            "add",
            service,
            "--owner",
            owner,
            "--image",
            &format!("ghcr.io/acme/{service}"),
        ]);
    }
    // api runs on the base's first digest; web, built later, shows the tag moved on.
    for (service, base, at) in [
        ("api", "py1", "2026-11-01T10:00:00Z"),
        ("web", "py2", "2026-11-08T10:00:00Z"),
    ] {
        let image = format!("ghcr.io/acme/{service}@{}", digest(service));
        job.lineage(&[
            "build",
            "record",
            "--image",
            &image,
            "--base",
            &format!("python:3.12-slim@{}", digest(base)),
            "--base-pulled-at",
            at,
            "--commit",
            COMMIT,
            "--repo",
            &format!("https://github.com/acme/{service}"),
            "--started-at",
            at,
            "--finished-at",
            at,
            "--env",
            "staging",
        ]);
        job.lineage(&[
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "staging",
            "--by",
            "jonas@acme.dev",
            "--at",
            at,
        ]);
    }

    let smtp = Smtp::start(job.dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([
            "report",
            "stale",
            "--email-to",
            "team@acme.dev",
            "--email-to",
            "priya@acme.dev",
        ])
        .args(["--email-from", "lineage@acme.dev", "--smtp"])
        .arg(format!("smtp://127.0.0.1:{}", smtp.port))
        .current_dir(job.dir.path())
        .env_clear()
        .env("LINEAGE_STORE", job.store())
        .env("LINEAGE_NOW", NOW)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("emailed the report to team@acme.dev, priya@acme.dev"),
        "{stderr}"
    );
    assert!(
        stdout.contains("api in staging"),
        "the report names the stale service:\n{stdout}"
    );

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one message for both recipients");
    let m = &messages[0];
    assert!(m.contains("From: lineage@acme.dev"), "{m}");
    assert!(m.contains("To: team@acme.dev, priya@acme.dev"), "{m}");
    assert!(
        m.contains("Subject: [lineage] 1 service runs on an outdated base image"),
        "{m}"
    );
    assert!(m.contains("multipart/alternative"), "{m}");
    let plain = m
        .find("Content-Type: text/plain")
        .expect("a text/plain part");
    let markdown = m
        .find("Content-Type: text/markdown")
        .expect("a text/markdown part");
    assert!(
        plain < markdown,
        "plain text first, Markdown as the richer alternative"
    );
    assert!(m.contains("# Stale base images"), "{m}");
    assert!(m.contains("api in staging"), "{m}");

    // Without a reachable relay nothing pretends to have been sent.
    let down = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["report", "stale", "--email-to", "team@acme.dev", "--smtp"])
        .arg(format!("smtp://127.0.0.1:{}", free_port()))
        .current_dir(job.dir.path())
        .env_clear()
        .env("LINEAGE_STORE", job.store())
        .env("LINEAGE_NOW", NOW)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&down.stderr).contains("sending the report through"));
}
