//! Admission throughput and latency under open-loop load, next to `/healthz` on the same
//! server in the same run.
//!
//! The server runs in a second process (this binary re-executed with `--serve-child`), on
//! loopback. The load generator keeps a fixed schedule per connection and measures each
//! latency from the request's scheduled start, so a slow answer counts against every request
//! queued behind it (no coordinated omission). Phases:
//! - `/healthz`, closed loop, as fast as it goes: the HTTP baseline;
//! - admission of an already-indexed digest at 20,000/s;
//! - admission of digests seen for the first time (each looked up in the local ledger once)
//!   at 5,000/s.
//!
//! Run: `cargo bench -p lineage-server --bench admission` (three rounds; medians printed).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lineage_model::{BuildRecord, Digest, Identity, Repository, Service, ServiceName, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
const INDEXED_RATE: f64 = 20_000.0;
const FIRST_SIGHT_RATE: f64 = 5_000.0;
const PHASE: Duration = Duration::from_secs(4);

fn digest(i: u64) -> String {
    format!("sha256:{i:064x}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-child") {
        return serve_child(&args[2]);
    }
    let rounds = if args.iter().any(|a| a == "--quick") {
        1
    } else {
        ROUNDS
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let first_sight = (FIRST_SIGHT_RATE * PHASE.as_secs_f64() * 1.2) as u64 * rounds as u64;
    seed(&db, first_sight + 1);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve-child", db.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("the child prints its address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut results: Vec<[Stats; 4]> = Vec::new();
    let mut next_digest = 1u64;
    for round in 0..rounds {
        let health = rt.block_on(closed_loop(addr, get("/healthz"), PHASE));
        let indexed_body = Arc::new(vec![admission(&digest(0))]);
        rt.block_on(closed_loop(
            addr,
            indexed_body.clone(),
            Duration::from_millis(200),
        )); // warm
        let capacity = rt.block_on(closed_loop(addr, indexed_body.clone(), PHASE));
        let indexed = rt.block_on(open_loop(addr, indexed_body, INDEXED_RATE, PHASE));
        let n = (FIRST_SIGHT_RATE * PHASE.as_secs_f64()) as u64 + 100;
        let bodies: Vec<Vec<u8>> = (next_digest..next_digest + n)
            .map(|i| admission(&digest(i)))
            .collect();
        next_digest += n;
        let first = rt.block_on(open_loop(addr, Arc::new(bodies), FIRST_SIGHT_RATE, PHASE));
        println!(
            "round {}: healthz {} | indexed closed loop {} | indexed {} | first sight {}",
            round + 1,
            health.line(),
            capacity.line(),
            indexed.line(),
            first.line()
        );
        results.push([health, indexed, first, capacity]);
    }
    let _ = child.kill();
    let _ = child.wait();
    let median = |k: usize, f: fn(&Stats) -> f64| {
        let mut v: Vec<f64> = results.iter().map(|r| f(&r[k])).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let h = median(0, |s| s.rate);
    println!("\nmedians of {rounds} rounds ({CONNECTIONS} connections, loopback, server in a second process):");
    println!(
        "  /healthz (closed loop)          {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        h,
        median(0, |s| s.p50),
        median(0, |s| s.p99)
    );
    for (k, name, target) in [
        (1, "admission, indexed digest", INDEXED_RATE),
        (2, "admission, first sight", FIRST_SIGHT_RATE),
    ] {
        let r = median(k, |s| s.rate);
        println!(
            "  {name:<31} {:>9.0} dec/s  p50 {:>7.3} ms  p99 {:>7.3} ms  (target {target:.0}/s; {:.2} of healthz; errors {})",
            r,
            median(k, |s| s.p50),
            median(k, |s| s.p99),
            r / h,
            results.iter().map(|x| x[k].errors).sum::<u64>()
        );
    }
}

/// One service and `n` recorded builds (digests 0..n).
fn seed(db: &std::path::Path, n: u64) {
    let location = lineage_store::StoreLocation::Sqlite(db.to_path_buf());
    let mut store = lineage_store::open(&location, true).unwrap();
    let now = Timestamp::parse("2026-11-20T12:00:00Z").unwrap();
    let by = Identity::parse("ops@acme.dev").unwrap();
    let service = Service {
        name: ServiceName::parse("api").unwrap(),
        owner: Some(by.clone()),
        backup_owner: None,
        emergency_approver: None,
        source_repo: None,
        images: vec![Repository::parse("ghcr.io/acme/api").unwrap()],
    };
    lineage_core::services::add(store.as_mut(), service, by, now).unwrap();
    let builds: Vec<BuildRecord> = (0..n)
        .map(|i| BuildRecord {
            service: ServiceName::parse("api").unwrap(),
            image: Repository::parse("ghcr.io/acme/api").unwrap(),
            digest: Digest::parse(&digest(i)).unwrap(),
            tags: vec![],
            bases: vec![],
            source_repo: None,
            git_ref: None,
            commit: None,
            started_at: None,
            finished_at: None,
            ci: None,
            builder: None,
            platform: None,
            dockerfile: None,
        })
        .collect();
    for chunk in builds.chunks(5_000) {
        store.record_builds(chunk, now, None).unwrap();
    }
}

fn serve_child(db: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = lineage_core::Config::default();
        let admission = lineage_server::AdmissionConfig::from_toml(
            "[admission]\nnamespaces = { prod = \"production\" }\n",
            "lineage.toml",
            &config,
        )
        .unwrap();
        let now = Timestamp::parse("2026-11-20T12:00:00Z").unwrap();
        let state = lineage_server::state(lineage_server::ServerConfig {
            store: lineage_store::StoreLocation::Sqlite(db.into()),
            gate: lineage_core::gate::Setup {
                config,
                ..Default::default()
            },
            admission,
            log: None,
            body_limit: lineage_server::DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            clock: Arc::new(move || now),
            dashboard: Default::default(),
        })
        .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", tcp.local_addr().unwrap());
        lineage_server::serve(
            state,
            lineage_server::Listener::Plain(tcp),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
}

fn get(path: &str) -> Arc<Vec<Vec<u8>>> {
    Arc::new(vec![
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes()
    ])
}

fn admission(d: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": { "uid": "bench", "kind": { "group": "apps", "version": "v1", "kind": "Deployment" },
            "namespace": "prod", "operation": "CREATE",
            "object": { "metadata": { "name": "api" }, "spec": { "template": { "spec": {
                "containers": [{ "name": "api", "image": format!("ghcr.io/acme/api@{d}") }] } } } } }
    })
    .to_string();
    format!("POST /admission HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

#[derive(Clone, Copy, Default)]
struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

impl Stats {
    fn line(&self) -> String {
        format!(
            "{:.0}/s p50 {:.3} ms p99 {:.3} ms err {}",
            self.rate, self.p50, self.p99, self.errors
        )
    }

    fn of(mut lat: Vec<f64>, errors: u64, elapsed: Duration) -> Stats {
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Stats {
            rate: lat.len() as f64 / elapsed.as_secs_f64(),
            p50: q(0.5),
            p99: q(0.99),
            errors,
        }
    }
}

/// Sends one request and reads the whole response; true when it was a 200 that is not a
/// denial.
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<bool> {
    s.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let ok = head.starts_with("http/1.1 200")
                    && !buf.windows(16).any(|w| w == b"\"allowed\":false");
                return Ok(ok);
            }
        }
    }
}

async fn closed_loop(addr: std::net::SocketAddr, reqs: Arc<Vec<Vec<u8>>>, dur: Duration) -> Stats {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let reqs = reqs.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let (mut lat, mut errors, mut buf, mut i) = (Vec::new(), 0u64, Vec::new(), c);
                while start.elapsed() < dur {
                    let t = Instant::now();
                    match exchange(&mut s, &reqs[i % reqs.len()], &mut buf).await {
                        Ok(true) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        _ => errors += 1,
                    }
                    i += CONNECTIONS;
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    Stats::of(lat, errors, start.elapsed())
}

/// Each connection sends on a fixed schedule (`rate / CONNECTIONS` per second); latency runs
/// from the scheduled start. Request `k` uses body `k` (distinct digests for first sight).
async fn open_loop(
    addr: std::net::SocketAddr,
    reqs: Arc<Vec<Vec<u8>>>,
    rate: f64,
    dur: Duration,
) -> Stats {
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let reqs = reqs.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let offset = interval.mul_f64(c as f64 / CONNECTIONS as f64);
                let (mut lat, mut errors, mut buf) = (Vec::new(), 0u64, Vec::new());
                let mut k = 0u32;
                loop {
                    let due = start + offset + interval * k;
                    if due >= start + dur {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let body = &reqs[(k as usize * CONNECTIONS + c) % reqs.len()];
                    match exchange(&mut s, body, &mut buf).await {
                        Ok(true) => lat.push(due.elapsed().as_secs_f64() * 1e3),
                        _ => errors += 1,
                    }
                    k += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    Stats::of(lat, errors, dur)
}
