//! `lineage serve` end to end (issue 8, "Done when"): a real server on loopback; the CLI
//! records a build and a deploy through it with a scoped token; the admission webhook denies
//! an unpinned image and an unknown digest in production and allows a recorded, signed one;
//! the dashboard asks a browser for a token, headless Chromium (driven over WebDriver) signs in
//! through the login form, and the pages show that data and are saved as screenshots under
//! `target/screenshots/`. `--public-dashboard` opens the pages and says so in the log.
//! Every dashboard page, on the demo's data, passes axe-core (`LINEAGE_TEST_AXE`), fits a
//! 375 px window and works by keyboard (issue 21).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lineage");
const NOW: &str = "2026-11-20T12:00:00Z";
const PASSWORD: &str = "correct horse battery staple";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct World {
    dir: tempfile::TempDir,
}

/// Where the path-equivalence tests have the CLI write its gate report (`-o`).
const GATE_REPORT: &str = "gate.json";

impl World {
    fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LINEAGE_STORE", self.dir.path().join("lineage.db"))
            .env("LINEAGE_NOW", NOW)
            .env("LINEAGE_ACTOR", "ops@acme.dev")
            .env("LINEAGE_KEY_PASSWORD", PASSWORD);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self.cmd(args, env).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let r = self.run(args, env);
        assert_eq!(
            r.code, 0,
            "lineage {args:?}\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r
    }
}

/// A running `lineage serve`, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(w: &World) -> Server {
        Server::start_with(w, &[])
    }

    fn start_with(w: &World, extra: &[&str]) -> Server {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "100",
            "--log-format",
            "json",
        ];
        args.extend(extra);
        let mut child = w
            .cmd(&args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("lineage serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from lineage serve: {line:?}"))
            .to_string();
        let s = Server { child, url };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(&format!("{}/readyz", s.url), None).0 != 200 {
            assert!(Instant::now() < deadline, "the server never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> (i32, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// The first answer, with its `Location`: redirects are not followed.
fn get_once(url: &str) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    let r = agent.get(url).call().unwrap();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status().as_u16(), location)
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    match req.call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

fn admit(url: &str, namespace: &str, image: &str) -> Value {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e", "kind": { "group": "apps", "version": "v1", "kind": "Deployment" },
            "namespace": namespace, "operation": "CREATE",
            "object": { "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": image }] } } } }
        }
    });
    let mut r = agent()
        .post(&format!("{url}/admission"))
        .header("Content-Type", "application/json")
        .send(review.to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    v["response"].clone()
}

fn hex(c: char, n: usize) -> String {
    c.to_string().repeat(n)
}

fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "headless Chromium is missing at /usr/bin/chromium: install the Debian package `chromium` (and `chromium-driver`), as `cargo xtask test` does"
    );
    path
}

fn chromedriver() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromedriver");
    assert!(
        path.exists(),
        "chromedriver is missing at /usr/bin/chromedriver: install the Debian package `chromium-driver`, as `cargo xtask test` does"
    );
    path
}

/// Headless Chromium driven over WebDriver (W3C), so a test can type into a form and click,
/// as a person signing in does.
struct Browser {
    driver: Child,
    session: String,
}

/// The key W3C WebDriver gives an element reference under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(profile: &Path) -> Browser {
        let mut driver = Command::new(chromedriver())
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver stopped before it said its port")
                .unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        // Keep reading what it prints, so a full pipe never stalls it.
        std::thread::spawn(move || lines.for_each(drop));
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                ],
            },
        } } });
        let mut b = Browser {
            driver,
            session: base.clone(),
        };
        let v = b.send("POST", "/session", Some(caps));
        b.session = format!("{base}/session/{}", v["sessionId"].as_str().unwrap());
        b
    }

    /// One WebDriver command on the session (or, before there is one, the driver).
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut r = match method {
            "GET" => agent().get(&url).call(),
            "DELETE" => agent().delete(&url).call(),
            _ => agent()
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = r.status().as_u16();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.send("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.send("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.send(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {v}"))
            .to_string()
    }

    fn type_into(&self, element: &str, text: &str) {
        self.send(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, element: &str) {
        self.send("POST", &format!("/element/{element}/click"), None);
    }

    fn css(&self, element: &str, property: &str) -> String {
        let v = self.send("GET", &format!("/element/{element}/css/{property}"), None);
        v.as_str().unwrap().to_string()
    }

    /// Waits (up to 10 s) until the browser is at `url`: a form post navigates on its own time.
    fn wait_for_url(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.url() != url {
            assert!(
                Instant::now() < deadline,
                "the browser is at {}, not {url}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The DOM the user sees, and a screenshot of it saved as `name`.
    fn page(&self, name: &str) -> String {
        let png = self.send("GET", "/screenshot", None);
        self.save_png(name, png.as_str().unwrap());
        self.send("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Saves a base64 PNG from the browser as `target/screenshots/{name}.png`.
    fn save_png(&self, name: &str, base64: &str) {
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        let shot = shots.join(format!("{name}.png"));
        // WebDriver sends the PNG as base64; coreutils decodes it.
        let mut decode = Command::new("base64")
            .arg("--decode")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Written from another thread: a whole page decodes to more than a pipe holds, and
        // `base64` stops reading until its output is read.
        let mut stdin = decode.stdin.take().unwrap();
        let input = base64.to_string();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            stdin.write_all(input.as_bytes())
        });
        let out = decode.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "cannot decode the screenshot of {name}"
        );
        std::fs::write(&shot, &out.stdout).unwrap();
        assert!(
            out.stdout.starts_with(b"\x89PNG") && out.stdout.len() > 5_000,
            "no screenshot of {} at {} ({} bytes)",
            self.url(),
            shot.display(),
            out.stdout.len()
        );
    }

    /// A screenshot of the whole page, not only the window, saved as `name`: at 375 px it
    /// shows what overflows.
    fn full_page(&self, name: &str) {
        let size = self.cdp("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
        let clip =
            json!({ "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 });
        let shot = self.cdp(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true, "clip": clip }),
        );
        self.save_png(name, shot["data"].as_str().unwrap());
    }

    /// A Chrome DevTools command, through chromedriver.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.send(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// Runs `script` (a function body) in the page; `arguments` are `args`.
    fn script(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script`, which calls its last argument with the answer.
    fn script_async(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Makes the page `width` CSS pixels wide, and waits until the page has reflowed to it.
    fn resize(&self, width: u32) {
        self.send(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": 900 })),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inner = self.script("return window.innerWidth;", json!([]));
            if inner == width {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the window never became {width} px wide (innerWidth {inner})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Presses Tab `times` times, as a keyboard does (so `:focus-visible` applies).
    fn press_tab(&self, times: usize) {
        let tab = "\u{E004}";
        let keys: Vec<Value> = (0..times)
            .flat_map(|_| {
                [
                    json!({ "type": "keyDown", "value": tab }),
                    json!({ "type": "keyUp", "value": tab }),
                ]
            })
            .collect();
        self.send(
            "POST",
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": keys }] })),
        );
        self.send("DELETE", "/actions", None);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.session.contains("/session/") {
            let url = self.session.clone();
            let _ = agent().delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The visible text of a DOM dump: tags dropped, entities of the escaper undone.
fn text(dom: &str) -> String {
    let body = dom.split("</style>").nth(1).unwrap_or(dom);
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
}

#[test]
fn done_when_issue_8() {
    let started = Instant::now();
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(&["key", "generate", "--name", "ci", "--dir", "keys"], &[]);
    std::fs::write(
        w.dir.path().join("lineage.toml"),
        // Unsigned provenance fails production here (D010 is a warning by default).
        "[admission]\nnamespaces = { prod = \"production\", default = \"dev\" }\n\n[rules.production]\nD010 = \"error\"\n\n[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"keys/ci.pub\"\nroles = [\"builder\"]\n",
    )
    .unwrap();
    w.ok(
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--backup-owner",
            "jonas@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
        &[],
    );
    let token = w.ok(
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "build:write",
            "deploy:write",
            "read",
            // The pipeline records who pressed the button (`--by`), so it acts for them.
            "act-as",
        ],
        &[],
    );
    let secret = token.stdout.lines().nth(1).unwrap().trim().to_string();
    assert!(secret.starts_with("lin_"), "{}", token.stdout);
    let reader = w.ok(
        &[
            "--format", "json", "token", "create", "--name", "viewer", "--scope", "read",
        ],
        &[],
    );
    let viewer: Value = serde_json::from_str(&reader.stdout).unwrap();
    let viewer = viewer["token"].as_str().unwrap().to_string();
    // Only the hash is stored: the secret is nowhere in the ledger.
    let ledger = std::fs::read(w.dir.path().join("lineage.db")).unwrap();
    assert!(!ledger.windows(secret.len()).any(|x| x == secret.as_bytes()));

    let server = Server::start(&w);
    let url = server.url.clone();
    let remote = |args: &[&str], token: &str| {
        let mut all = args.to_vec();
        all.extend(["--server", url.as_str()]);
        w.run(&all, &[("LINEAGE_TOKEN", token)])
    };

    let d = format!("sha256:{}", hex('a', 64));
    let commit = hex('c', 40);
    let base = format!("python:3.12-slim@sha256:{}", hex('b', 64));
    let build = [
        "build",
        "record",
        "--image",
        &format!("ghcr.io/acme/api:1.8.0@{d}"),
        "--commit",
        &commit,
        "--base",
        &base,
        "--builder",
        "sa:ci",
        "--ci-system",
        "github-actions",
        "--ci-run-id",
        "42",
        "--base-pulled-at",
        NOW,
        "--repo",
        "https://github.com/acme/api",
        "--branch",
        "main",
    ];
    // A read-only token may not record.
    let r = remote(&build, &viewer);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("needs `build:write`"), "{}", r.stderr);
    let r = remote(&build, "lin_nope");
    assert!(
        r.code == 2 && r.stderr.contains("not valid"),
        "{}",
        r.stderr
    );
    let r = remote(&build, &secret);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("recorded build"), "{}", r.stdout);
    // Sign the provenance (on the ledger the server reads) so production admits it.
    w.ok(&["attest", "sign", &d, "--key", "keys/ci.key"], &[]);
    let r = remote(
        &[
            "deploy",
            "record",
            "--image",
            &format!("ghcr.io/acme/api@{d}"),
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "--approved-by",
            "maya@acme.dev",
        ],
        &secret,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // Remote and local give the same output.
    for args in [
        vec!["trace", "api"],
        vec!["affected", "--base", "python:3.12-slim"],
        vec!["running", "--env", "production"],
    ] {
        for format in ["human", "json"] {
            let mut a = vec!["--format", format];
            a.extend(&args);
            let local = w.ok(&a, &[]);
            let far = remote(&a, &viewer);
            assert_eq!(
                (far.code, &far.stdout),
                (0, &local.stdout),
                "{a:?}: {}",
                far.stderr
            );
        }
    }
    // The writes carry the token's identity.
    let trace = w.ok(&["--format", "json", "trace", "api"], &[]);
    assert!(trace.stdout.contains("maya@acme.dev"));

    // Admission, answered from the index.
    let signed = format!("ghcr.io/acme/api:1.8.0@{d}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut r = admit(&url, "prod", &signed);
    while r["allowed"] != true && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        r = admit(&url, "prod", &signed);
    }
    assert_eq!(r["allowed"], true, "recorded and signed: {r}");
    let r = admit(&url, "prod", "ghcr.io/acme/api:1.8.0");
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains("D005"),
        "{r}"
    );
    let r = admit(
        &url,
        "prod",
        &format!("ghcr.io/acme/api@sha256:{}", hex('d', 64)),
    );
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains("D006"),
        "{r}"
    );
    // Recorded but unsigned, with a trust policy: not admitted to production.
    let d2 = format!("sha256:{}", hex('e', 64));
    let r = remote(
        &[
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/api@{d2}"),
            "--commit",
            &commit,
            "--builder",
            "sa:ci",
            // A dev build: its gaps are warnings there.
            "--env",
            "dev",
        ],
        &secret,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = admit(&url, "prod", &format!("ghcr.io/acme/api@{d2}"));
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains("D010"),
        "{r}"
    );

    // A drill on the base, for the incidents pages.
    w.ok(
        &[
            "incident",
            "open",
            "--title",
            "drill <b>base</b>",
            "--base",
            "python:3.12-slim",
            "--drill",
        ],
        &[],
    );
    // How the production deploy turned out, for the service page.
    w.ok(
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "production",
            "--status",
            "degraded",
            "--detail",
            "p99 <up> 40%",
        ],
        &[],
    );

    // The dashboard is private: without a token a browser is sent to the login page.
    assert_eq!(
        get_once(&format!("{url}/services/api")),
        (303, "/login?next=/services/api".to_string())
    );
    let (status, page) = get(&format!("{url}/"), Some(&viewer));
    assert_eq!(status, 200, "{page}");

    // The dashboard, in a real browser, signed in through the login form.
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path());
    browser.go(&format!("{url}/services/api"));
    browser.wait_for_url(&format!("{url}/login?next=/services/api"));
    let login = browser.page("login");
    assert!(text(&login).contains("Sign in"), "{login}");
    let field = browser.find("form[action='/login'] input[type=password][name=token]");
    browser.type_into(&field, &viewer);
    browser.click(&browser.find("form[action='/login'] button[type=submit]"));
    // Back at the page asked for, with its stylesheet (allowed by its hash in the CSP).
    browser.wait_for_url(&format!("{url}/services/api"));
    assert_eq!(
        browser.css(&browser.find("header"), "background-color"),
        "rgba(27, 42, 65, 1)",
        "the inline stylesheet did not apply: the CSP refused it"
    );
    let service_dom = browser.page("service");
    assert!(!service_dom.contains(&viewer), "the token is in the page");
    browser.go(&format!("{url}/"));
    let fleet = text(&browser.page("fleet"));
    for want in [
        "api",
        "priya@acme.dev",
        "jonas@acme.dev",
        "sha256:aaaaaaaaaaaa",
        "signed (ci)",
        "production",
    ] {
        assert!(fleet.contains(want), "fleet page lacks `{want}`:\n{fleet}");
    }
    let service = text(&service_dom);
    for want in [
        "maya@acme.dev",
        "jonas@acme.dev",
        &commit,
        "1.8.0",
        "Deploy timeline",
        "Ownership history",
        // The outcome, in words, with its detail shown as text (never as markup).
        "degraded",
        "(p99 <up> 40%)",
    ] {
        assert!(
            service.contains(want),
            "service page lacks `{want}`:\n{service}"
        );
    }
    browser.go(&format!("{url}/incidents"));
    let drills = text(&browser.page("incidents"));
    for want in ["drill <b>base</b>", "open", "drill", "0/1 environments"] {
        assert!(
            drills.contains(want),
            "incidents page lacks `{want}`:\n{drills}"
        );
    }
    browser.go(&format!("{url}/incidents/1"));
    let drill = text(&browser.page("incident 1"));
    for want in [
        "Incident 1: drill <b>base</b>",
        "api",
        "priya@acme.dev",
        "opened",
        "Timeline",
    ] {
        assert!(
            drill.contains(want),
            "incident page lacks `{want}`:\n{drill}"
        );
    }
    browser.go(&format!("{url}/incident?q=python%3A3.12-slim"));
    let incident = text(&browser.page("incident"));
    for want in [
        "1 services built on",
        "api",
        "priya@acme.dev",
        "jonas@acme.dev",
        "production",
        &commit,
        "maya@acme.dev",
    ] {
        assert!(
            incident.contains(want),
            "incident page lacks `{want}`:\n{incident}"
        );
    }
    browser.go(&format!("{url}/log"));
    let log = text(&browser.page("log"));
    assert!(log.contains("verified"), "log page:\n{log}");
    assert!(log.contains("lineage.local/ledger"), "log page:\n{log}");
    // Signing out forgets the cookie: the next page asks for a token again.
    browser.click(&browser.find("form[action='/logout'] button[type=submit]"));
    browser.wait_for_url(&format!("{url}/login"));
    browser.go(&format!("{url}/log"));
    browser.wait_for_url(&format!("{url}/login?next=/log"));
    drop(browser);

    // Metrics saw it all; SIGTERM stops the server cleanly; no secret reached the log.
    let (_, metrics) = get(&format!("{url}/metrics"), None);
    assert!(
        metrics.contains("lineage_records_written_total{kind=\"deploy\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lineage_admission_decisions_total{outcome=\"denied\",rule=\"D006\"}"),
        "{metrics}"
    );
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("\"message\":\"request\""),
        "JSON log lines expected:\n{log}"
    );
    assert!(
        !log.contains(&secret) && !log.contains(&viewer),
        "a token reached the log"
    );
    eprintln!("done_when_issue_8 took {:?}", started.elapsed());
}

#[test]
fn public_dashboard_opens_the_pages_and_says_so() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
        &[],
    );
    let server = Server::start_with(&w, &["--public-dashboard"]);
    let url = server.url.clone();
    for page in [
        "/",
        "/services/api",
        "/incident?q=python%3A3.12-slim",
        "/log",
    ] {
        let (status, body) = get(&format!("{url}{page}"), None);
        assert_eq!(status, 200, "{page}: {body}");
    }
    assert!(get(&format!("{url}/"), None).1.contains("priya@acme.dev"));
    // The API keeps its tokens.
    assert_eq!(get(&format!("{url}/api/v1/services"), None).0, 401);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    let warning = log
        .lines()
        .find(|l| l.contains("--public-dashboard"))
        .unwrap_or_else(|| panic!("no warning about the public dashboard:\n{log}"));
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
}

// ---------------------------------------------------------------------------------------------
// Issue 21: every dashboard page is accessible, fits a 375 px phone and works by keyboard.
// ---------------------------------------------------------------------------------------------

/// The window widths every page is checked at: a laptop and a small phone.
const WIDTHS: [u32; 2] = [1400, 375];

/// axe-core's `axe.min.js`: `cargo xtask test` installs it from npm and names it in
/// `LINEAGE_TEST_AXE`. Without it the test fails; it never skips.
fn axe_source() -> String {
    let path = std::env::var_os("LINEAGE_TEST_AXE").unwrap_or_else(|| {
        panic!(
            "LINEAGE_TEST_AXE is not set: run `cargo xtask test`, which installs axe-core from npm, \
             or `cargo xtask setup` and export the variables it prints"
        )
    });
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "LINEAGE_TEST_AXE is `{}`, which cannot be read ({e}): run `cargo xtask setup` again",
            Path::new(&path).display()
        )
    });
    assert!(
        source.contains("axe"),
        "LINEAGE_TEST_AXE `{}` is not axe-core's axe.min.js",
        Path::new(&path).display()
    );
    source
}

/// How the in-page checks name an element in a failure: tag, id, classes, link and some text.
const DESCRIBE: &str = r#"
const describe = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    if (typeof el.className === 'string' && el.className.trim()) s += '.' + el.className.trim().split(/\s+/).join('.');
    const href = el.getAttribute('href');
    if (href) s += '[href="' + href + '"]';
    const text = (el.textContent || '').trim().replace(/\s+/g, ' ');
    if (text) s += ' "' + (text.length > 40 ? text.slice(0, 40) + '…' : text) + '"';
    return s;
};
"#;

/// axe-core on the whole page with the WCAG 2.0/2.1 A and AA rules and the best practices
/// (landmarks, headings, …). No rule is left out and every impact counts.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
}).then(
    r => done({
        violations: r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            targets: v.nodes.map(n => n.target.join(' ')),
        })),
        incomplete: r.incomplete.map(v => v.id + ' on ' + v.nodes.length + ' elements'),
    }),
    e => done({ error: String(e) }),
);
"#;

/// Whether the page scrolls sideways, and the outermost elements that stick out.
const OVERFLOW: &str = r#"
const limit = window.innerWidth;
const wide = new Set([...document.body.querySelectorAll('*')]
    .filter(el => el.tagName !== 'BR' && el.getBoundingClientRect().right > limit + 1));
const outermost = [...wide].filter(el => !wide.has(el.parentElement));
return {
    scroll_width: document.documentElement.scrollWidth,
    inner_width: limit,
    culprits: outermost.slice(0, 5)
        .map(el => describe(el) + ' reaches ' + Math.round(el.getBoundingClientRect().right) + 'px'),
};
"#;

/// Every element a keyboard user must reach: links, buttons, form fields, and anything given
/// a tab index. Hidden or disabled ones are left out.
const INTERACTIVE: &str = r#"
const interactive = () => [...document.querySelectorAll(
    'a[href], area[href], button, input:not([type=hidden]), select, textarea, summary, [contenteditable], [tabindex]:not([tabindex="-1"])'
)].filter(el => !el.disabled && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden');
"#;

/// Records every element that takes focus, and whether a focus indicator shows on it then
/// (an outline or a box shadow); answers how many elements Tab must reach.
const TAB_WATCH: &str = r#"
window.lineageTabStops = [];
document.addEventListener('focusin', e => {
    const cs = getComputedStyle(e.target);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
    window.lineageTabStops.push({ el: e.target, indicated: outline || cs.boxShadow !== 'none' });
}, true);
return interactive().length;
"#;

/// After the Tab presses: what Tab never reached, what showed no focus, positive tab indexes.
const TAB_CHECK: &str = r#"
const stops = window.lineageTabStops;
const reached = new Set(stops.map(s => s.el));
// An element passes if Tab showed its focus at least once. When the cycle wraps through the
// browser's own chrome, a busy machine can hand focus back without Chromium's keyboard
// heuristic (`:focus-visible`) set, so one unstyled arrival is the browser's, not the page's.
const shown = new Set(stops.filter(s => s.indicated).map(s => s.el));
return {
    unreached: interactive().filter(el => !reached.has(el)).map(describe),
    no_focus_indicator: [...reached].filter(el => !shown.has(el)).map(describe),
    positive_tabindex: [...document.querySelectorAll('[tabindex]')].filter(el => el.tabIndex > 0).map(describe),
};
"#;

/// Where the fleet page shows `arguments[0]`, a digest: its link, or null.
const DIGEST_BOX: &str = r#"
const link = [...document.querySelectorAll('a[href]')]
    .find(a => a.getAttribute('href').endsWith('/digests/' + arguments[0]));
if (!link) return null;
const r = link.getBoundingClientRect();
return { left: r.left, right: r.right, width: r.width, inner_width: window.innerWidth };
"#;

/// Checks the page the browser is on (`name`, `width` px wide): saves a whole-page screenshot,
/// runs axe-core, looks for sideways scrolling and tabs through it. Answers the problems found.
fn audit(browser: &Browser, axe: &str, name: &str, width: u32) -> Vec<String> {
    let at = format!("{name} at {width}px");
    let mut problems = Vec::new();
    browser.full_page(&format!("a11y-{}-{width}", name.replace(' ', "-")));

    // WebDriver runs scripts through the DevTools protocol, which the page's CSP (no script at
    // all) does not govern; if that ever changed, `axe` would be undefined here and the test
    // would fail, not skip.
    let version = browser.script(
        &format!("{axe}\n;return typeof axe === 'object' ? axe.version : null;"),
        json!([]),
    );
    assert!(
        version.is_string(),
        "{at}: axe-core did not load in the page"
    );
    let report = browser.script_async(AXE_RUN, json!([]));
    assert!(report["error"].is_null(), "{at}: axe-core failed: {report}");
    for v in report["violations"].as_array().unwrap() {
        problems.push(format!(
            "{at}: axe {} ({}): {} — {}",
            v["id"].as_str().unwrap_or("?"),
            v["impact"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or("?"),
            v["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // What axe could not decide is no failure, but it is not a pass either: said in the log.
    let incomplete: Vec<&str> = report["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !incomplete.is_empty() {
        eprintln!(
            "{at}: axe could not decide (needs review): {}",
            incomplete.join(", ")
        );
    }

    // Checked at both widths: a page that scrolls sideways on a laptop is no better.
    let o = browser.script(&format!("{DESCRIBE}{OVERFLOW}"), json!([]));
    if o["scroll_width"].as_f64().unwrap() > o["inner_width"].as_f64().unwrap() + 1.0 {
        problems.push(format!(
            "{at}: scrolls sideways: {} px wide in a {} px window; sticking out: {}",
            o["scroll_width"],
            o["inner_width"],
            o["culprits"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }

    // Tab from wherever focus starts (a field with `autofocus`, or the document). Twice as
    // many presses as elements, and some: the cycle also passes the document itself and any
    // scrolling box Chromium makes focusable, and must come round to where it began.
    let count = browser.script(&format!("{INTERACTIVE}{TAB_WATCH}"), json!([]));
    browser.press_tab(2 * count.as_u64().unwrap() as usize + 4);
    let k = browser.script(&format!("{DESCRIBE}{INTERACTIVE}{TAB_CHECK}"), json!([]));
    for (key, what) in [
        ("unreached", "Tab never reaches"),
        (
            "no_focus_indicator",
            "no visible focus (outline or box-shadow) on",
        ),
        ("positive_tabindex", "positive tabindex on"),
    ] {
        for el in k[key].as_array().unwrap() {
            problems.push(format!("{at}: keyboard: {what} {}", el.as_str().unwrap()));
        }
    }
    problems
}

/// Issue 21: on the demo's data, every page of the dashboard, at 1400 and 375 px: no axe-core
/// violation (WCAG 2.0/2.1 A and AA, best practices), no sideways scrolling, every link and
/// button reachable by Tab with a visible focus, and on a phone the fleet shows each
/// production digest inside the window. Screenshots: `target/screenshots/a11y-*.png`.
#[test]
fn every_dashboard_page_is_accessible_at_1400_and_375_px() {
    let started = Instant::now();
    let axe = axe_source();
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(&["demo"], &[]);
    // A real incident beside the demo's drill, so both kinds are on the pages.
    w.ok(
        &[
            "incident",
            "open",
            "--title",
            "CVE-2026-0451 in libssl3",
            "--cve",
            "CVE-2026-0451",
        ],
        &[],
    );
    let token = w.ok(
        &[
            "--format", "json", "token", "create", "--name", "viewer", "--scope", "read",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&token.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let production: Value = serde_json::from_str(
        &w.ok(&["--format", "json", "running", "--env", "production"], &[])
            .stdout,
    )
    .unwrap();
    let production = production["rows"].as_array().unwrap().clone();
    assert!(production.len() >= 3, "{production:?}");
    let api = production
        .iter()
        .find(|r| r["service"] == "api")
        .expect("the demo runs api in production");
    let pages: Vec<(&str, String)> = vec![
        ("fleet", "/".into()),
        ("service api", "/services/api".into()),
        ("service worker", "/services/worker".into()),
        (
            "digest",
            format!("/digests/{}", api["digest"].as_str().unwrap()),
        ),
        (
            "base digest",
            format!("/digests/{}", api["base_digest"].as_str().unwrap()),
        ),
        ("incident search", "/incident".into()),
        ("incident base", "/incident?q=python%3A3.12-slim".into()),
        ("incident cve", "/incident?q=CVE-2026-0451".into()),
        ("incidents", "/incidents".into()),
        ("incident 1 drill", "/incidents/1".into()),
        ("incident 2", "/incidents/2".into()),
        ("log", "/log".into()),
    ];

    let server = Server::start(&w);
    let url = server.url.clone();
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path());
    let mut problems = Vec::new();
    for width in WIDTHS {
        browser.resize(width);
        browser.go(&format!("{url}/services/api"));
        browser.wait_for_url(&format!("{url}/login?next=/services/api"));
        problems.extend(audit(&browser, &axe, "login", width));
    }
    let field = browser.find("form[action='/login'] input[type=password][name=token]");
    browser.type_into(&field, &token);
    browser.click(&browser.find("form[action='/login'] button[type=submit]"));
    browser.wait_for_url(&format!("{url}/services/api"));
    for width in WIDTHS {
        browser.resize(width);
        for (name, path) in &pages {
            browser.go(&format!("{url}{path}"));
            assert_eq!(browser.url(), format!("{url}{path}"), "signed out?");
            problems.extend(audit(&browser, &axe, name, width));
            if *name == "fleet" && width == 375 {
                for row in &production {
                    let service = row["service"].as_str().unwrap();
                    let digest = row["digest"].as_str().unwrap();
                    let b = browser.script(DIGEST_BOX, json!([digest]));
                    if b.is_null() {
                        problems.push(format!(
                            "fleet at 375px: {service}'s production digest {digest} is not linked (no `/digests/…` link)"
                        ));
                    } else if b["left"].as_f64().unwrap() < 0.0
                        || b["width"].as_f64().unwrap() <= 0.0
                        || b["right"].as_f64().unwrap() > b["inner_width"].as_f64().unwrap()
                    {
                        problems.push(format!(
                            "fleet at 375px: {service}'s production digest is outside the window: \
                             from {} to {} px in a {} px window",
                            b["left"], b["right"], b["inner_width"]
                        ));
                    }
                }
            }
        }
    }
    drop(browser);
    drop(server);
    eprintln!(
        "every_dashboard_page_is_accessible_at_1400_and_375_px took {:?}",
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} accessibility problems on the dashboard (screenshots: target/screenshots/a11y-*.png):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 12: one decision on every path.
// ---------------------------------------------------------------------------------------------

/// What a gate concluded, as any path reports it: passed, and the codes of its errors and of
/// its warnings (waived findings count as neither).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decided {
    passed: bool,
    errors: std::collections::BTreeSet<String>,
    warnings: std::collections::BTreeSet<String>,
}

impl Decided {
    fn of_report(passed: bool, report: Option<&Value>) -> Decided {
        let mut d = Decided {
            passed,
            errors: Default::default(),
            warnings: Default::default(),
        };
        let diagnostics = report
            .and_then(|r| r["diagnostics"].as_array().cloned())
            .unwrap_or_default();
        for diag in diagnostics {
            if diag.get("waived").is_some_and(|w| !w.is_null()) {
                continue;
            }
            let code = diag["code"].as_str().unwrap().to_string();
            match diag["level"].as_str() {
                Some("error") => d.errors.insert(code),
                _ => d.warnings.insert(code),
            };
        }
        assert_eq!(
            passed,
            d.errors.is_empty(),
            "a report passes exactly when it has no errors: {report:?}"
        );
        d
    }

    /// A record command run with `--format json -o gate.json`: the gate report is in the
    /// file whether the gate passed (exit 0) or refused (exit 1).
    fn of_cli(r: &Run, w: &World) -> Decided {
        let file = w.dir.path().join(GATE_REPORT);
        match r.code {
            0 | 1 => {
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
                std::fs::remove_file(&file).unwrap();
                let report: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{e}: {text}\n{}", r.stderr));
                Decided::of_report(r.code == 0, Some(&report))
            }
            code => panic!("exit {code}: {}\n{}", r.stdout, r.stderr),
        }
    }

    /// The API's answer to a gated write: 201/200 with `gate`, or 422 with the report.
    fn of_api(status: u16, body: &Value) -> Decided {
        match status {
            200 | 201 => Decided::of_report(true, Some(&body["gate"])),
            422 => Decided::of_report(false, Some(body)),
            other => panic!("API answered {other}: {body}"),
        }
    }

    /// An admission answer: denied codes come from the denial message, warned ones from the
    /// warnings, both as `CODE NAME:`.
    fn of_admission(r: &Value, rules: &[(String, String)]) -> Decided {
        let message = r["status"]["message"].as_str().unwrap_or("");
        let warnings = r["warnings"].to_string();
        let found = |text: &str| -> std::collections::BTreeSet<String> {
            rules
                .iter()
                .filter(|(code, name)| text.contains(&format!("{code} {name}:")))
                .map(|(code, _)| code.clone())
                .collect()
        };
        let allowed = r["allowed"].as_bool().unwrap();
        Decided {
            passed: allowed,
            errors: if allowed {
                Default::default()
            } else {
                found(message)
            },
            warnings: found(&warnings),
        }
    }
}

fn post(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .send(body.to_string())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The path-equivalence matrix: one row per rule, one column per path (local CLI,
/// `--server`, the raw API, admission where the rule applies). No row may differ.
#[test]
fn every_rule_decides_alike_on_every_path() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    for key in ["ci", "rogue"] {
        w.ok(&["key", "generate", "--name", key, "--dir", "keys"], &[]);
    }
    // D012 needs a base left behind by its tag for a month: two images pushed under one tag
    // to a real registry, each recorded by `base add` when it was current. These are the
    // ledger's first writes, so their earlier times keep recorded-at moving forward.
    let registry = lineage_testkit::Registry::start();
    let images = lineage_testkit::World::new();
    let tag = registry.reference("base:1");
    let old_base = images.umoci_image(&tag, &[&[("etc/os-release", "ID=old\n")]], &[]);
    w.ok(
        &["base", "add", &tag],
        &[("LINEAGE_NOW", "2026-09-01T00:00:00Z")],
    );
    images.umoci_image(&tag, &[&[("etc/os-release", "ID=new\n")]], &[]);
    w.ok(
        &["base", "add", &tag],
        &[("LINEAGE_NOW", "2026-10-01T00:00:00Z")],
    );
    let stale_base = format!("{tag}@{}", old_base.digest);
    std::fs::write(
        w.dir.path().join("lineage.toml"),
        "[gates]\napprovals = \"recorded\"\n\n[admission]\nnamespaces = { prod = \"production\", dev = \"dev\" }\n\n[[trust.keys]]\nid = \"ci\"\npublic_key_file = \"keys/ci.pub\"\nroles = [\"builder\"]\n",
    )
    .unwrap();
    for (name, owner, image) in [
        ("api", Some("priya@acme.dev"), "ghcr.io/acme/api"),
        ("web", Some("ana@acme.dev"), "ghcr.io/acme/web"),
        ("orphan", None, "ghcr.io/acme/orphan"),
    ] {
        let mut args = vec!["service", "add", name, "--image", image];
        if let Some(o) = owner {
            args.extend(["--owner", o]);
        }
        w.ok(&args, &[]);
    }
    let commit = hex('c', 40);
    let base = format!("python:3.12-slim@sha256:{}", hex('b', 64));
    let digest = |c: char| format!("sha256:{}", hex(c, 64));
    // A complete build of `repo@digest(c)`, signed with `key` when given.
    let build_on = |repo: &str, c: char, key: Option<&str>, complete: bool, base: &str| {
        let image = format!("ghcr.io/acme/{repo}@{}", digest(c));
        let mut args: Vec<String> = ["build", "record", "--image", &image, "--base", base]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let facts = [
            "--base-pulled-at",
            NOW,
            "--repo",
            "https://github.com/acme/app",
            "--branch",
            "main",
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            "7",
        ];
        if complete {
            args.extend(["--commit", &commit].iter().map(|s| s.to_string()));
            args.extend(facts.iter().map(|s| s.to_string()));
        } else {
            // No commit, source or CI run: a failing build, recorded anyway.
            args.extend(
                ["--builder", "sa:laptop", "--allow-failures"]
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        if let Some(k) = key {
            args.extend(["--sign-key".to_string(), format!("keys/{k}.key")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        w.ok(&args, &[]);
    };
    let build = |repo: &str, c: char, key: Option<&str>, complete: bool| {
        build_on(repo, c, key, complete, &base)
    };
    build("api", 'a', Some("ci"), true); // passes everything
    build("api", '1', None, true); // unsigned: D010 warns
    build("api", '2', Some("ci"), false); // its build gate failed: D007
    build("api", '3', Some("ci"), true); // retired: D008
    build("api", '4', Some("rogue"), true); // signed by an untrusted key: D009
    build("orphan", '5', Some("ci"), true); // a service with no owner: D001
    build("api", '6', Some("ci"), true); // nobody approved it: D003
    build("api", '7', Some("ci"), true); // approved by its deployer only: D004
    build_on("api", '8', Some("ci"), true, &stale_base); // its base is 47 days behind: D012
    w.ok(&["retire", &digest('3'), "--reason", "CVE-2026-1234"], &[]);
    for (repo, c) in [
        ("api", 'a'),
        ("api", '1'),
        ("api", '2'),
        ("api", '3'),
        ("api", '4'),
        ("orphan", '5'),
        ("api", '8'),
    ] {
        w.ok(
            &[
                "approve",
                &format!("ghcr.io/acme/{repo}@{}", digest(c)),
                "--env",
                "production",
                "--by",
                "maya@acme.dev",
            ],
            &[],
        );
    }
    w.ok(
        &[
            "approve",
            &format!("ghcr.io/acme/api@{}", digest('7')),
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
        ],
        &[],
    );
    let token = w.ok(
        &[
            "--format",
            "json",
            "token",
            "create",
            "--name",
            "deployer",
            "--scope",
            "deploy:write",
            "build:write",
            "act-as",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&token.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let rules: Vec<(String, String)> = {
        let r = w.ok(&["--format", "json", "policy", "rules"], &[]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["code"].as_str().unwrap().into(),
                    r["name"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let server = Server::start(&w);
    let url = server.url.clone();

    // (rule, image, environment, admission namespace where the rule applies there)
    let api = |c: char| format!("ghcr.io/acme/api@{}", digest(c));
    let rows: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("pass", api('a'), "production", Some("prod")),
        (
            "D001",
            format!("ghcr.io/acme/orphan@{}", digest('5')),
            "production",
            Some("prod"),
        ),
        // Admission maps a namespace to a configured environment: D002 cannot arise there.
        ("D002", api('a'), "prodution", None),
        ("D003", api('6'), "production", Some("prod")),
        // A pod has no deployer of its own: four-eyes is judged when the deploy is recorded.
        ("D004", api('7'), "production", None),
        (
            "D005",
            "ghcr.io/acme/api:1.0".into(),
            "production",
            Some("prod"),
        ),
        ("D006", api('d'), "production", Some("prod")),
        ("D007", api('2'), "production", Some("prod")),
        ("D008", api('3'), "production", Some("prod")),
        ("D009", api('4'), "production", Some("prod")),
        ("D010", api('1'), "production", Some("prod")),
        (
            "D011",
            format!("ghcr.io/acme/web@{}", digest('a')),
            "production",
            Some("prod"),
        ),
        ("D012", api('8'), "production", Some("prod")),
    ];
    let mut differ = Vec::new();
    for (rule, image, env, namespace) in &rows {
        let args = [
            "--format",
            "json",
            "deploy",
            "record",
            "--image",
            image,
            "--env",
            env,
            "--by",
            "jonas@acme.dev",
            "-o",
            GATE_REPORT,
        ];
        let local = Decided::of_cli(&w.run(&args, &[]), &w);
        let mut remote_args = args.to_vec();
        remote_args.extend(["--server", url.as_str()]);
        let remote = Decided::of_cli(&w.run(&remote_args, &[("LINEAGE_TOKEN", &token)]), &w);
        let (status, body) = post(
            &format!("{url}/api/v1/deploys"),
            &token,
            &json!({ "image": image, "env": env, "by": "jonas@acme.dev" }),
        );
        let api = Decided::of_api(status, &body);
        // The index sees the CLI's writes within a poll interval.
        std::thread::sleep(Duration::from_millis(250));
        let admission = namespace.map(|ns| Decided::of_admission(&admit(&url, ns, image), &rules));
        match *rule {
            "pass" => assert!(
                local.passed && local.warnings.is_empty(),
                "{rule}: {local:?}"
            ),
            "D010" | "D012" => assert!(
                local.passed && local.warnings.contains(*rule),
                "{rule}: {local:?}"
            ),
            code => assert!(
                !local.passed && local.errors.contains(code),
                "{rule}: the local gate did not refuse with it: {local:?}"
            ),
        }
        for (path, got) in [("--server", &remote), ("API", &api)] {
            if *got != local {
                differ.push(format!("{rule}: local {local:?} but {path} {got:?}"));
            }
        }
        if let Some(admission) = admission {
            if admission != local {
                differ.push(format!(
                    "{rule}: local {local:?} but admission {admission:?}"
                ));
            }
        }
    }
    assert!(differ.is_empty(), "paths disagree:\n{}", differ.join("\n"));

    // Only the passing rows were recorded: what runs in production is the approved digests.
    let running = w.ok(&["--format", "json", "running", "--env", "production"], &[]);
    let running: Value = serde_json::from_str(&running.stdout).unwrap();
    let rows: Vec<(String, String)> = running["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().into(),
                r["digest"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(rows, vec![("api".to_string(), digest('8'))], "{running}");

    // The build gate, on the three write paths: a complete build, one with five gate
    // errors, and a Dockerfile whose `FROM` is not pinned (its text travels to the server).
    std::fs::write(
        w.dir.path().join("Dockerfile"),
        "FROM python:3.12-slim\nCOPY . /app\n",
    )
    .unwrap();
    let complete = |c: char| -> Vec<String> {
        let image = format!("ghcr.io/acme/web@{}", digest(c));
        [
            "build",
            "record",
            "--image",
            &image,
            "--base",
            &base,
            "--base-pulled-at",
            NOW,
            "--commit",
            &commit,
            "--repo",
            "https://github.com/acme/web",
            "--branch",
            "main",
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            "9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let bare = |c: char| -> Vec<String> {
        [
            "build",
            "record",
            "--image",
            &format!("ghcr.io/acme/web@{}", digest(c)),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut dockerfile = complete('f');
    dockerfile.extend(["--dockerfile".to_string(), "Dockerfile".to_string()]);
    let builds: Vec<(&str, Vec<String>, bool)> = vec![
        ("complete", complete('e'), true),
        ("five errors", bare('9'), false),
        ("B009", dockerfile, false),
    ];
    for (what, flags, passes) in builds {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut args = vec!["--format", "json"];
        args.extend(&flags);
        args.extend(["-o", GATE_REPORT]);
        let local = Decided::of_cli(&w.run(&args, &[]), &w);
        assert_eq!(local.passed, passes, "{what}: {local:?}");
        let mut remote_args = args.clone();
        remote_args.extend(["--server", url.as_str()]);
        let remote = Decided::of_cli(&w.run(&remote_args, &[("LINEAGE_TOKEN", &token)]), &w);
        // The raw API gets the record `--print-detected` shows, and the Dockerfile's text.
        let mut detect = vec!["--format", "json"];
        detect.extend(&flags);
        detect.push("--print-detected");
        let detected: Value = serde_json::from_str(&w.ok(&detect, &[]).stdout).unwrap();
        let mut body = detected["build"].clone();
        if flags.contains(&"--dockerfile") {
            body["gate"] = json!({ "dockerfile": std::fs::read_to_string(w.dir.path().join("Dockerfile")).unwrap() });
        }
        let (status, answer) = post(&format!("{url}/api/v1/builds"), &token, &body);
        let api = Decided::of_api(status, &answer);
        assert_eq!(remote, local, "{what}: --server differs");
        assert_eq!(api, local, "{what}: the API differs");
        if what == "five errors" {
            assert!(local.errors.len() >= 4, "{local:?}");
        }
        if what == "B009" {
            assert!(local.errors.contains("B009"), "{local:?}");
        }
    }
}

/// Rule D013 on every path: a digest built before the one recorded as running in production
/// warns alike through the local CLI, `--server`, the API and admission. Each path that
/// records the older digest is undone (the newer one recorded again) before the next one
/// is asked, so each path judges the same ledger; `--rollback` passes silently everywhere.
#[test]
fn an_older_build_than_the_running_one_decides_alike_on_every_path() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(
        w.dir.path().join("lineage.toml"),
        "[gates]\napproval = \"off\"\n\n[admission]\nnamespaces = { prod = \"production\" }\n",
    )
    .unwrap();
    w.ok(
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
        &[],
    );
    let digest = |c: char| format!("sha256:{}", hex(c, 64));
    let image = |c: char| format!("ghcr.io/acme/api@{}", digest(c));
    for (c, at) in [('1', "2026-11-01T10:00:00Z"), ('2', "2026-11-10T10:00:00Z")] {
        let base = format!("python:3.12-slim@sha256:{}", hex('b', 64));
        w.ok(
            &[
                "build",
                "record",
                "--image",
                &image(c),
                "--base",
                &base,
                "--base-pulled-at",
                at,
                "--repo",
                "https://github.com/acme/api",
                "--branch",
                "main",
                "--commit",
                &hex('c', 40),
                "--ci-system",
                "github-actions",
                "--ci-run-id",
                "7",
                "--finished-at",
                at,
            ],
            &[],
        );
    }
    let restore = || {
        w.ok(
            &[
                "deploy",
                "record",
                "--image",
                &image('2'),
                "--env",
                "production",
                "--by",
                "jonas@acme.dev",
            ],
            &[],
        );
    };
    restore();
    let token = w.ok(
        &[
            "--format",
            "json",
            "token",
            "create",
            "--name",
            "deployer",
            "--scope",
            "deploy:write",
            "act-as",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&token.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let rules = vec![("D013".to_string(), "older-than-running".to_string())];
    let server = Server::start(&w);
    let url = server.url.clone();
    for rollback in [false, true] {
        let img = image('1');
        let mut args = vec![
            "--format",
            "json",
            "deploy",
            "record",
            "--image",
            &img,
            "--env",
            "production",
            "--by",
            "jonas@acme.dev",
            "-o",
            GATE_REPORT,
        ];
        if rollback {
            args.push("--rollback");
        }
        let local = Decided::of_cli(&w.run(&args, &[]), &w);
        restore();
        let mut remote_args = args.clone();
        remote_args.extend(["--server", url.as_str()]);
        let remote = Decided::of_cli(&w.run(&remote_args, &[("LINEAGE_TOKEN", &token)]), &w);
        restore();
        let (status, body) = post(
            &format!("{url}/api/v1/deploys"),
            &token,
            &json!({ "image": img, "env": "production", "by": "jonas@acme.dev", "rollback": rollback }),
        );
        let api = Decided::of_api(status, &body);
        restore();
        std::thread::sleep(Duration::from_millis(250));
        assert!(local.passed, "D013 warns by default: {local:?}");
        assert_eq!(local.warnings.contains("D013"), !rollback, "{local:?}");
        assert_eq!(remote, local, "--server differs (rollback {rollback})");
        assert_eq!(api, local, "the API differs (rollback {rollback})");
        if !rollback {
            // A pod is never a rollback of its own; with none recorded, admission warns.
            let admission = Decided::of_admission(&admit(&url, "prod", &img), &rules);
            assert_eq!(admission, local, "admission differs");
        }
    }
    // The placement ends over `--server` as it would locally; then nothing is left to end.
    let end = [
        "--format",
        "json",
        "deploy",
        "end",
        "--service",
        "api",
        "--env",
        "production",
        "--reason",
        "moved",
        "--server",
        url.as_str(),
    ];
    let ended = w.ok(&end, &[("LINEAGE_TOKEN", &token)]);
    let ended: Value = serde_json::from_str(&ended.stdout).unwrap();
    assert_eq!(ended["outcome"], "ended", "{ended}");
    assert_eq!(ended["digest"], digest('2'), "{ended}");
    let again = w.run(&end, &[("LINEAGE_TOKEN", &token)]);
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    // Nothing runs in production any more: `running` finds nothing (exit 1).
    let running = w.run(&["running", "--env", "production"], &[]);
    assert_eq!(running.code, 1, "{}", running.stdout);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
}

/// Rule D014 (promotion) decides alike locally, over `--server`, over the API and at
/// admission: before the digest ran in staging, after it failed there, and once it was
/// recorded healthy (the outcome recorded over `POST /api/v1/outcomes`).
#[test]
fn a_skipped_promotion_decides_alike_on_every_path() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(
        w.dir.path().join("lineage.toml"),
        "[gates]\napproval = \"off\"\n\n[admission]\nnamespaces = { prod = \"production\" }\n\n[promotion]\npath = [\"staging\", \"production\"]\n",
    )
    .unwrap();
    w.ok(
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
        &[],
    );
    let img = format!("ghcr.io/acme/api@sha256:{}", hex('a', 64));
    let base = format!("python:3.12-slim@sha256:{}", hex('b', 64));
    w.ok(
        &[
            "build",
            "record",
            "--image",
            &img,
            "--base",
            &base,
            "--base-pulled-at",
            NOW,
            "--repo",
            "https://github.com/acme/api",
            "--branch",
            "main",
            "--commit",
            &hex('c', 40),
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            "7",
        ],
        &[],
    );
    let token = w.ok(
        &[
            "--format",
            "json",
            "token",
            "create",
            "--name",
            "deployer",
            "--scope",
            "deploy:write",
            "act-as",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&token.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let rules = vec![("D014".to_string(), "promotion-skipped".to_string())];
    let server = Server::start(&w);
    let url = server.url.clone();
    let args = [
        "--format",
        "json",
        "deploy",
        "record",
        "--image",
        &img,
        "--env",
        "production",
        "--by",
        "jonas@acme.dev",
        "-o",
        GATE_REPORT,
    ];
    let refused_everywhere = |phase: &str| {
        let local = Decided::of_cli(&w.run(&args, &[]), &w);
        assert!(
            !local.passed && local.errors.contains("D014"),
            "{phase}: {local:?}"
        );
        let mut remote_args = args.to_vec();
        remote_args.extend(["--server", url.as_str()]);
        let remote = Decided::of_cli(&w.run(&remote_args, &[("LINEAGE_TOKEN", &token)]), &w);
        assert_eq!(remote, local, "{phase}: --server differs");
        let (status, body) = post(
            &format!("{url}/api/v1/deploys"),
            &token,
            &json!({ "image": img, "env": "production", "by": "jonas@acme.dev" }),
        );
        assert_eq!(
            Decided::of_api(status, &body),
            local,
            "{phase}: the API differs"
        );
        std::thread::sleep(Duration::from_millis(250));
        let admission = Decided::of_admission(&admit(&url, "prod", &img), &rules);
        assert_eq!(admission, local, "{phase}: admission differs");
    };
    refused_everywhere("never in staging");
    w.ok(
        &[
            "deploy",
            "record",
            "--image",
            &img,
            "--env",
            "staging",
            "--by",
            "jonas@acme.dev",
        ],
        &[],
    );
    let (status, body) = post(
        &format!("{url}/api/v1/outcomes"),
        &token,
        &json!({ "service": "api", "env": "staging", "status": "failed", "detail": "5xx" }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["digest"], format!("sha256:{}", hex('a', 64)), "{body}");
    refused_everywhere("failed in staging");
    w.ok(
        &[
            "deploy",
            "outcome",
            "--service",
            "api",
            "--env",
            "staging",
            "--status",
            "healthy",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(250));
    let admission = Decided::of_admission(&admit(&url, "prod", &img), &rules);
    assert!(admission.passed, "{admission:?}");
    let (status, body) = post(
        &format!("{url}/api/v1/deploys"),
        &token,
        &json!({ "image": img, "env": "production", "by": "jonas@acme.dev" }),
    );
    assert_eq!(status, 201, "{body}");
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
}

/// No secret reaches an output or a log: an API token (shown once, at creation), a database
/// password in `--store`, the SMTP password, the signing-key passphrase. Every command below
/// runs with all of them in its environment, and every byte it prints, and the server's whole
/// log, is searched for each secret.
#[test]
fn no_secret_reaches_an_output_or_a_log() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(
        &[
            "service",
            "add",
            "api",
            "--owner",
            "priya@acme.dev",
            "--image",
            "ghcr.io/acme/api",
        ],
        &[],
    );
    let created = w.ok(
        &[
            "--format",
            "json",
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "deploy:write",
            "read",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&created.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let db_password = "pg-Secret-7f3a";
    let smtp_password = "smtp-Secret-91bd";
    let key_password = "key-Secret-c04e";
    let secrets = [token.as_str(), db_password, smtp_password, key_password];
    let env = [
        ("LINEAGE_TOKEN", token.as_str()),
        ("LINEAGE_SMTP_PASSWORD", smtp_password),
        ("LINEAGE_KEY_PASSWORD", key_password),
    ];
    let server = Server::start(&w);
    let url = server.url.clone();
    let image = format!("ghcr.io/acme/api@sha256:{}", hex('a', 64));
    let pg = format!("postgres://lineage:{db_password}@127.0.0.1:1/lineage");
    let mut outputs = Vec::new();
    for args in [
        vec!["token", "list"],
        vec!["--format", "json", "token", "list"],
        vec!["deploy", "record", "--help"],
        vec!["serve", "--help"],
        vec!["--help"],
        // A wrong database: the error names the server, never the password.
        vec!["--store", pg.as_str(), "service", "list"],
        vec!["--format", "json", "--store", pg.as_str(), "running"],
        // The token travels to the server, and its answers come back.
        vec!["trace", "api", "--server", url.as_str()],
        vec![
            "deploy",
            "record",
            "--image",
            &image,
            "--env",
            "dev",
            "--by",
            "jonas@acme.dev",
            "--server",
            url.as_str(),
        ],
        // An encrypted key made with the passphrase from the environment.
        vec!["key", "generate", "--name", "signer", "--dir", "keys"],
        // The SMTP password goes to a relay that is not there.
        vec![
            "report",
            "stale",
            "--email-to",
            "oncall@acme.dev",
            "--smtp",
            "smtp://user@127.0.0.1:1",
        ],
    ] {
        let r = w.run(&args, &env);
        let what = args.join(" ");
        // The secrets were in use, not merely absent: the token reached the server, the
        // passphrase encrypted the key, the database error names its server.
        if what.starts_with("trace") {
            // Nothing is deployed yet (exit 1), but the server took the token (not exit 2).
            assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        }
        if what.starts_with("key generate") {
            assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        }
        if what.contains("postgres://") {
            assert!(r.stderr.contains("127.0.0.1"), "{what}: {}", r.stderr);
        }
        outputs.push((what, format!("{}\n{}", r.stdout, r.stderr)));
    }
    // A wrong token is refused without being echoed.
    let (status, body) = get(
        &format!("{url}/api/v1/services"),
        Some("lin_wrong_token_value"),
    );
    assert_eq!(status, 401);
    assert!(!body.contains("lin_wrong_token_value"), "{body}");
    let (status, _) = get(&format!("{url}/api/v1/services"), Some(&token));
    assert_eq!(status, 200);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");
    outputs.push(("the server's log".into(), log));
    for (what, text) in &outputs {
        for secret in secrets {
            assert!(!text.contains(secret), "`{what}` printed a secret:\n{text}");
        }
    }
    // The token is stored hashed: not even the ledger holds it.
    let ledger = std::fs::read(w.dir.path().join("lineage.db")).unwrap();
    assert!(
        !ledger
            .windows(token.len())
            .any(|win| win == token.as_bytes()),
        "the ledger holds the token in clear"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 13 item 9: one freshness answer for the stale report, the deploy gate and the
// dashboard; builds count as evidence when no registry was asked.
// ---------------------------------------------------------------------------------------------

#[test]
fn base_freshness_is_one_answer_on_every_path() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    let digest = |c: char| format!("sha256:{}", hex(c, 64));
    let commit = hex('c', 40);
    for name in ["api", "web", "tool"] {
        w.ok(
            &[
                "service",
                "add",
                name,
                "--owner",
                "priya@acme.dev",
                "--image",
                &format!("ghcr.io/acme/{name}"),
            ],
            &[],
        );
    }
    // api pulled base:1 in September; web pulled a newer digest of base:1 on 1 October, so
    // api's base is 50 days behind, known from builds alone (no registry was ever asked).
    // tool builds in a golang:1 stage api's own CI used a newer digest of later.
    let record = |name: &str, c: char, bases: &[(&str, &str)]| {
        let image = format!("ghcr.io/acme/{name}@{}", digest(c));
        let mut args = vec!["build", "record", "--image", &image];
        for (base, pulled) in bases {
            args.extend(["--base", base, "--base-pulled-at", pulled]);
        }
        args.extend([
            "--commit",
            &commit,
            "--repo",
            "https://github.com/acme/app",
            "--branch",
            "main",
            "--ci-system",
            "github-actions",
            "--ci-run-id",
            "7",
        ]);
        w.ok(&args, &[]);
        w.ok(
            &[
                "deploy",
                "record",
                "--image",
                &image,
                "--env",
                "staging",
                "--by",
                "ana@acme.dev",
            ],
            &[],
        );
    };
    let old_base = format!("base:1@{}", digest('1'));
    let new_base = format!("base:1@{}", digest('2'));
    let old_golang = format!("golang:1@{}", digest('3'));
    let new_golang = format!("golang:1@{}", digest('4'));
    record("api", 'a', &[(&old_base, "2026-09-01T00:00:00Z")]);
    record(
        "web",
        'b',
        &[
            (&new_golang, "2026-10-05T00:00:00Z"),
            (&new_base, "2026-10-01T00:00:00Z"),
        ],
    );
    record(
        "tool",
        'd',
        &[
            (&old_golang, "2026-09-15T00:00:00Z"),
            (&new_base, "2026-10-01T00:00:00Z"),
        ],
    );

    // The report: api 50 days behind, seen by a build; web and tool on the newest digest
    // but never checked in a registry, so not assessed; tool's build stage behind, in its
    // own row that does not fail the report.
    let r = w.run(
        &[
            "--format",
            "json",
            "report",
            "stale",
            "--fail-after",
            "30",
            "--allow-unassessed",
        ],
        &[],
    );
    let report: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}", r.stdout));
    let rows = report["rows"].as_array().unwrap();
    let row = |service: &str, stage: &str| {
        rows.iter()
            .find(|x| x["service"] == service && x["stage"] == stage)
            .unwrap_or_else(|| panic!("no {stage} row for {service}: {report:#}"))
    };
    let api = row("api", "final");
    assert_eq!(api["days_behind"], 50, "{report:#}");
    assert_eq!(api["source"], serde_json::json!(["build"]), "{report:#}");
    assert_eq!(api["newest_base_digest"], digest('2'));
    let tool = row("tool", "build");
    assert_eq!(tool["base"], "docker.io/library/golang:1", "{report:#}");
    assert_eq!(tool["days_behind"], 46, "{report:#}");
    assert_eq!(rows.len(), 2, "{report:#}");
    assert_eq!(
        report["over_limit"], 1,
        "only api's final stage counts: {report:#}"
    );
    assert_eq!(r.code, 1, "api is over the limit: {}", r.stderr);
    let unassessed: Vec<&str> = report["not_assessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["service"].as_str().unwrap())
        .collect();
    assert_eq!(unassessed, ["tool", "web"], "{report:#}");

    // The deploy gate judges the same base the same way (D012: more than 30 days behind).
    let check = w.run(
        &[
            "--format",
            "json",
            "deploy",
            "check",
            "--image",
            &format!("ghcr.io/acme/api@{}", digest('a')),
            "--env",
            "staging",
            "--by",
            "ana@acme.dev",
        ],
        &[],
    );
    let check: Value = serde_json::from_str(&check.stdout).unwrap();
    let d012 = check["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "D012")
        .unwrap_or_else(|| panic!("no D012: {check:#}"));
    assert!(
        d012["message"].as_str().unwrap().contains("50 days"),
        "{d012:#}"
    );

    // The dashboard says the same, and says unknown as unknown.
    let server = Server::start_with(&w, &["--public-dashboard"]);
    let (status, fleet) = get(&format!("{}/", server.url), None);
    assert_eq!(status, 200, "{fleet}");
    let fleet_row = |service: &str| {
        let start = fleet
            .find(&format!("href=\"/services/{service}\""))
            .unwrap_or_else(|| panic!("no row for {service}: {fleet}"));
        let end = fleet[start..].find("</tr>").unwrap() + start;
        text(&fleet[start..end])
    };
    let api = fleet_row("api");
    assert!(api.contains("50 days behind"), "{api}");
    assert!(api.contains("seen by build"), "{api}");
    let web = fleet_row("web");
    assert!(web.contains("not assessed"), "{web}");
    assert!(web.contains("lineage base refresh"), "{web}");
    assert!(!fleet.contains("up to date or unknown"), "{fleet}");
    assert!(!fleet.contains("not checked"), "{fleet}");
    assert!(
        fleet.contains("Provenance signatures are not judged"),
        "{fleet}"
    );
    // A build recorded while the server runs, on a newer digest of base:1, makes web's base
    // behind on the dashboard too: the server's cached facts follow builds, not only
    // registry refreshes.
    record(
        "tool",
        'e',
        &[(&format!("base:1@{}", digest('5')), "2026-11-10T00:00:00Z")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = get(&format!("{}/", server.url), None);
        let start = page.find("href=\"/services/web\"").unwrap();
        let row = text(&page[start..start + page[start..].find("</tr>").unwrap()]);
        if row.contains("10 days behind") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web never showed as behind: {row}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fleet = get(&format!("{}/", server.url), None).1;
    // Every running digest links to its own page (issue 21, links).
    for c in ['a', 'b', 'e'] {
        let href = format!("href=\"/digests/{}\"", digest(c));
        assert!(fleet.contains(&href), "{href} missing: {fleet}");
        let (status, page) = get(&format!("{}/digests/{}", server.url, digest(c)), None);
        assert_eq!(status, 200, "{page}");
    }
}

/// One row of the fleet table: the service, its row class, the risk kinds it is marked with.
struct FleetRow {
    service: String,
    class: String,
    risks: std::collections::BTreeSet<String>,
    html: String,
}

/// The value of `attr="…"` at the start of `tag`.
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    tag[start..].split('"').next()
}

/// The fleet table's rows, read from the page as served.
fn fleet_rows(page: &str) -> Vec<FleetRow> {
    let table = page
        .split("<table class=\"cards fleet\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no fleet table\n{page}"));
    let body = table.split("</table>").next().unwrap();
    body.split("<tr ")
        .skip(1)
        .filter(|r| r.contains("data-service="))
        .map(|r| format!(" {r}"))
        .map(|r| FleetRow {
            service: attr(&r, "data-service").unwrap().to_string(),
            class: attr(&r, "class").unwrap_or("").to_string(),
            risks: r
                .split(" data-risk=\"")
                .skip(1)
                .map(|x| x.split('"').next().unwrap().to_string())
                .collect(),
            html: r,
        })
        .collect()
}

/// The count at the head of the fleet page for each kind of risk.
fn risk_counts(page: &str) -> std::collections::BTreeMap<String, usize> {
    page.split(" data-risk-count=\"")
        .skip(1)
        .map(|x| {
            let kind = x.split('"').next().unwrap().to_string();
            let count = x
                .split("<b>")
                .nth(1)
                .and_then(|b| b.split("</b>").next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no count for {kind}"));
            (kind, count)
        })
        .collect()
}

/// Issue 21, "Done when": `lineage demo`, then `lineage serve`. The fleet page heads with a
/// count of each kind of risk, and each count is the number of rows marked with it; rows with
/// production risks come first and say so in words; each filter keeps exactly the rows with
/// its risk; the service page draws the lineage picture, and the incident page for the demo's
/// base answers who owns it, what runs, which commit and who approved.
#[test]
fn the_demo_fleet_puts_risk_first() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(&["demo"], &[]);
    let server = Server::start_with(&w, &["--public-dashboard"]);
    let url = server.url.clone();
    let (status, page) = get(&format!("{url}/"), None);
    assert_eq!(status, 200, "{page}");
    let rows = fleet_rows(&page);
    let counts = risk_counts(&page);
    assert!(rows.len() >= 3, "{page}");
    assert_eq!(
        counts.len(),
        11,
        "every kind of risk is counted: {counts:?}"
    );
    for (risk, count) in &counts {
        let marked: Vec<&str> = rows
            .iter()
            .filter(|r| r.risks.contains(risk))
            .map(|r| r.service.as_str())
            .collect();
        assert_eq!(*count, marked.len(), "{risk}: {marked:?}");
    }
    // The demo's morning: critical findings in production and a base left behind.
    assert!(counts["vulnerable"] > 0, "{counts:?}");
    assert!(counts["stale_base"] > 0, "{counts:?}");
    let production: Vec<&FleetRow> = rows
        .iter()
        .filter(|r| r.class == "risk-production")
        .collect();
    assert!(!production.is_empty(), "{page}");
    // Risk first: every row with a production risk is above every row without one, and says
    // so in words.
    let first_other = rows
        .iter()
        .position(|r| r.class != "risk-production")
        .unwrap_or(rows.len());
    assert!(
        rows[first_other..]
            .iter()
            .all(|r| r.class != "risk-production"),
        "{:?}",
        rows.iter()
            .map(|r| (&r.service, &r.class))
            .collect::<Vec<_>>()
    );
    for r in &production {
        assert!(r.html.contains("PRODUCTION RISK"), "{}", r.html);
    }
    for (risk, count) in counts.iter().filter(|(_, c)| **c > 0) {
        let (status, filtered) = get(&format!("{url}/?risk={risk}"), None);
        assert_eq!(status, 200, "{filtered}");
        let kept = fleet_rows(&filtered);
        assert_eq!(kept.len(), *count, "?risk={risk}");
        assert!(kept.iter().all(|r| r.risks.contains(risk)), "?risk={risk}");
        // The counts are of the whole fleet whatever the filter.
        assert_eq!(risk_counts(&filtered), counts, "?risk={risk}");
    }
    let (status, bad) = get(&format!("{url}/?risk=%3Cscript%3E"), None);
    assert_eq!(status, 422, "{bad}");
    assert!(
        bad.contains("risk: `&lt;script&gt;` is not a kind of risk")
            && bad.contains("self_approved"),
        "{bad}"
    );
    // The service page draws the picture; its digests link to their pages.
    let service = &production[0].service;
    let (status, page) = get(&format!("{url}/services/{service}"), None);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<svg") && page.contains("class=\"lineage\""),
        "{page}"
    );
    assert!(page.contains("href=\"/digests/sha256:"), "{page}");
}

/// The latest checkpoint reads the same from the CLI and from the API: one report
/// (`ledger_log::CheckpointReport`), not a copy per front end.
#[test]
fn the_checkpoint_is_one_answer_from_the_cli_and_the_api() {
    let w = World {
        dir: tempfile::tempdir().unwrap(),
    };
    w.ok(&["demo"], &[]);
    let reader = w.ok(
        &[
            "--format", "json", "token", "create", "--name", "viewer", "--scope", "read",
        ],
        &[],
    );
    let token: Value = serde_json::from_str(&reader.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let cli: Value =
        serde_json::from_str(&w.ok(&["--format", "json", "log", "checkpoint"], &[]).stdout)
            .unwrap();
    let server = Server::start(&w);
    let (status, body) = get(
        &format!("{}/api/v1/log/checkpoint", server.url),
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api, cli);
    assert_eq!(cli["schema"], 1);
    assert!(cli["size"].as_u64().unwrap() > 0, "{cli}");
    assert_eq!(cli["root"].as_str().unwrap().len(), 64, "{cli}");
    assert!(cli["checkpoint"]
        .as_str()
        .unwrap()
        .starts_with(cli["origin"].as_str().unwrap()));
}
