//! The SBOM benchmark: importing a large CycloneDX document, and the CVE questions on a fleet.
//!
//! Import: a generated CycloneDX 1.6 document shaped like Syft's output (components with a
//! purl, a CPE, a license and Syft's location properties), about 100 MB. Reported, as medians
//! over rounds, next to the same-run reference `serde_json::from_slice::<Value>` of the same
//! bytes already in memory:
//! - parse: `sbom::read_document` streaming the file (hashing, size limit, typed shapes);
//! - import: parse, record and store (`record_imports` into a fresh SQLite ledger: the record,
//!   its Merkle leaf and every `sbom_*` row, one transaction, durable).
//!
//! Queries: 1,000 running services × 500 packages each (and 10 findings each), on 50 base
//! images whose own scans name their layers; `affected --package NAME`, `--package
//! NAME@<RANGE` and `--cve ID` latency p50/p99 over 1,000 queries each, base-or-app included.
//!
//! `cargo bench -p lineage-core --bench sbom`; LINEAGE_BENCH_SBOM_MB sets the document size
//! (default 100), LINEAGE_BENCH_SERVICES the fleet (default 1,000).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use lineage_core::sbom::{self, Kind, Target};
use lineage_core::vulns::{self, PackageQuery};
use lineage_core::Config;
use lineage_model::{
    BaseImage, BuildRecord, DeployRecord, EnvName, Identity, Purl, Record, Repository, SbomFinding,
    SbomImport, SbomLayer, SbomPackage, Tag, Timestamp,
};
use lineage_store::StoreLocation;

use common::*;

const ROUNDS: usize = 3;
const QUERIES: usize = 1_000;
const PACKAGES: usize = 500;
/// Of each image's packages, how many come from its base (one of them openssl).
const BASE_PACKAGES: usize = 200;
const POOL: usize = 5_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes a Syft-like CycloneDX 1.6 document of about `mb` megabytes; returns its component
/// count.
fn write_cyclonedx(path: &std::path::Path, mb: usize) -> usize {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write!(
        f,
        "{{\"$schema\":\"http://cyclonedx.org/schema/bom-1.6.schema.json\",\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.6\",\"serialNumber\":\"urn:uuid:00000000-0000-0000-0000-000000000000\",\"version\":1,\"metadata\":{{\"timestamp\":\"2026-11-16T08:00:00Z\",\"tools\":{{\"components\":[{{\"type\":\"application\",\"author\":\"anchore\",\"name\":\"syft\",\"version\":\"1.18.0\"}}]}},\"component\":{{\"bom-ref\":\"root\",\"type\":\"container\",\"name\":\"registry.acme.dev/apps/big\",\"version\":\"latest\"}}}},\n\"components\":[\n"
    )
    .unwrap();
    let target = mb << 20;
    let mut written = 0usize;
    let mut n = 0usize;
    while written < target {
        let layer = hash(&format!("layer {}", n % 12));
        let component = format!(
            "{}{{\"bom-ref\":\"pkg:deb/debian/package-{n}@1.{m}.{p}-1?arch=amd64&distro=debian-12&package-id={id}\",\"type\":\"library\",\"publisher\":\"Debian Maintainers <debian@example.org>\",\"name\":\"package-{n}\",\"version\":\"1.{m}.{p}-1\",\"licenses\":[{{\"license\":{{\"id\":\"GPL-2.0-or-later\"}}}}],\"cpe\":\"cpe:2.3:a:package-{n}:package-{n}:1.{m}.{p}-1:*:*:*:*:*:*:*\",\"purl\":\"pkg:deb/debian/package-{n}@1.{m}.{p}-1?arch=amd64&distro=debian-12\",\"properties\":[{{\"name\":\"syft:package:foundBy\",\"value\":\"dpkg-db-cataloger\"}},{{\"name\":\"syft:package:type\",\"value\":\"deb\"}},{{\"name\":\"syft:package:metadataType\",\"value\":\"dpkg-db-entry\"}},{{\"name\":\"syft:location:0:layerID\",\"value\":\"sha256:{layer}\"}},{{\"name\":\"syft:location:0:path\",\"value\":\"/var/lib/dpkg/status.d/package-{n}\"}},{{\"name\":\"syft:metadata:installedSize\",\"value\":\"{size}\"}}]}}\n",
            if n == 0 { "" } else { "," },
            m = n % 97,
            p = n % 13,
            id = &hash(&n.to_string())[..16],
            size = 1000 + n % 5000,
        );
        f.write_all(component.as_bytes()).unwrap();
        written += component.len();
        n += 1;
    }
    writeln!(f, "],\"dependencies\":[]}}").unwrap();
    f.flush().unwrap();
    n
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let mb = env_usize("LINEAGE_BENCH_SBOM_MB", 100);
    let services = env_usize("LINEAGE_BENCH_SERVICES", SERVICES);
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::from_unix(1_800_000_000);
    let by = Identity::parse("sec@acme.dev").unwrap();

    // --- Import ---
    let doc_path = dir.path().join("big.cdx.json");
    let components = write_cyclonedx(&doc_path, mb);
    let size = std::fs::metadata(&doc_path).unwrap().len();
    println!(
        "document: CycloneDX 1.6, {} components, {:.1} MB",
        components,
        size as f64 / 1e6
    );
    let (mut reference, mut parse, mut import) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        // Reference: serde_json's own parse of the same bytes, already in memory.
        let bytes = std::fs::read(&doc_path).unwrap();
        let t = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        reference.push(t.elapsed().as_secs_f64());
        drop(v);
        drop(bytes);

        let t = Instant::now();
        let doc =
            sbom::read_document(std::fs::File::open(&doc_path).unwrap(), "big", None).unwrap();
        parse.push(t.elapsed().as_secs_f64());
        assert_eq!(doc.packages.len(), components);
        drop(doc);

        let mut store = lineage_store::open(
            &StoreLocation::Sqlite(dir.path().join(format!("i{r}.db"))),
            true,
        )
        .unwrap();
        let t = Instant::now();
        let mut doc =
            sbom::read_document(std::fs::File::open(&doc_path).unwrap(), "big", None).unwrap();
        let notes = std::mem::take(&mut doc.notes);
        let target = Target {
            image: Repository::parse("registry.acme.dev/apps/big").unwrap(),
            digest: digest("big"),
            kind: Kind::Sbom,
            origin: "file".into(),
            aliases: Vec::new(),
            by: by.clone(),
            at: now,
        };
        let record = sbom::to_record(doc, &target, "big").unwrap();
        sbom::record_imports(store.as_mut(), vec![(record, notes)], &by, now).unwrap();
        import.push(t.elapsed().as_secs_f64());
        drop(store);
    }
    let (reference, parse, import) = (median(reference), median(parse), median(import));
    let rate = |secs: f64| size as f64 / 1e6 / secs;
    println!("| path | seconds | MB/s | components/s | ratio to serde_json |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, secs) in [
        (
            "serde_json::from_slice::<Value> (reference, bytes in memory)",
            reference,
        ),
        (
            "parse: sbom::read_document (streamed from the file, hashed)",
            parse,
        ),
        (
            "import: parse + record + store (SQLite, one transaction)",
            import,
        ),
    ] {
        println!(
            "| {name} | {secs:.2} | {:.0} | {:.0} | {:.2}× |",
            rate(secs),
            components as f64 / secs,
            reference / secs
        );
    }

    // --- Queries over a fleet ---
    let mut store =
        lineage_store::open(&StoreLocation::Sqlite(dir.path().join("fleet.db")), true).unwrap();
    seed_services(store.as_mut());
    let prod = EnvName::parse("production").unwrap();
    let t = Instant::now();
    let layer = |b: usize, i: usize| digest(&format!("base {b} layer {i}"));
    // The bases' own scans say which layers are theirs.
    let mut batch = Vec::new();
    for b in 0..BASES {
        batch.push(Record::Sbom(SbomImport {
            image: base_name(b),
            digest: base_digest(b, 0),
            kind: "scan".into(),
            format: "trivy".into(),
            document: digest(&format!("base doc {b}")),
            size: 1,
            tool: None,
            created: Some(now),
            origin: None,
            layers: (0..3)
                .map(|i| SbomLayer {
                    digest: None,
                    diff_id: Some(layer(b, i)),
                })
                .collect(),
            packages: Vec::new(),
            findings: Vec::new(),
            by: by.clone(),
            at: now,
        }));
    }
    store.append(&batch, now, Some(&by)).unwrap();
    for s in 0..services {
        let b = s % BASES;
        let d = digest(&format!("app {s}"));
        let build = BuildRecord {
            service: service_name(s),
            image: Repository::parse(&format!("registry.acme.dev/apps/svc-{s}")).unwrap(),
            digest: d.clone(),
            tags: vec![Tag::parse("1.0").unwrap()],
            bases: vec![BaseImage {
                name: base_name(b),
                tag: Some(Tag::parse("stable").unwrap()),
                digest: Some(base_digest(b, 0)),
                pulled_at: Some(now),
                final_stage: true,
            }],
            source_repo: None,
            git_ref: None,
            commit: Some(lineage_model::CommitId::parse(&hash(&format!("c{s}"))[..40]).unwrap()),
            started_at: None,
            finished_at: Some(now),
            ci: None,
            builder: None,
            platform: None,
            dockerfile: None,
        };
        let deploy = DeployRecord {
            config: Vec::new(),
            service: service_name(s),
            image: build.image.clone(),
            digest: d.clone(),
            env: prod.clone(),
            by: by.clone(),
            approved_by: Some(Identity::parse("maya@acme.dev").unwrap()),
            ticket: None,
            at: now,
            rollback: false,
        };
        // 200 packages from the base's set, 300 from the shared pool, each in its layer.
        let mut lcg = Lcg(s as u64 + 1);
        let mut packages: Vec<SbomPackage> = Vec::with_capacity(PACKAGES);
        // Every base has openssl, in one of 16 versions.
        packages.push(SbomPackage {
            purl: Purl::parse(&format!("pkg:deb/debian/openssl@3.0.{}-1", b % 16)).unwrap(),
            layer: Some(0),
        });
        for i in 1..BASE_PACKAGES {
            let n = (b * 37 + i) % POOL;
            packages.push(SbomPackage {
                purl: Purl::parse(&format!("pkg:deb/debian/lib{n}@1.{}.0-1", n % 7)).unwrap(),
                layer: Some((i % 3) as u32),
            });
        }
        for _ in BASE_PACKAGES..PACKAGES {
            let n = lcg.next(POOL);
            packages.push(SbomPackage {
                purl: Purl::parse(&format!("pkg:pypi/py{n}@2.{}.0", n % 11)).unwrap(),
                layer: Some(3),
            });
        }
        let findings = (0..10)
            .map(|i| {
                let pkg = (i * 47) % PACKAGES;
                SbomFinding {
                    id: format!("CVE-2026-{:05}", (s * 7 + i * 131) % 2_000),
                    aliases: Vec::new(),
                    package: pkg as u32,
                    severity: ["critical", "high", "medium"][i % 3].into(),
                    fixed: Some("9.9.9".into()),
                }
            })
            .collect();
        let mut layers: Vec<SbomLayer> = (0..3)
            .map(|i| SbomLayer {
                digest: None,
                diff_id: Some(layer(b, i)),
            })
            .collect();
        layers.push(SbomLayer {
            digest: None,
            diff_id: Some(digest(&format!("app {s} layer"))),
        });
        let scan = SbomImport {
            image: build.image.clone(),
            digest: d,
            kind: "scan".into(),
            format: "trivy".into(),
            document: digest(&format!("doc {s}")),
            size: 1,
            tool: None,
            created: Some(now),
            origin: None,
            layers,
            packages,
            findings,
            by: by.clone(),
            at: now,
        };
        store
            .append(
                &[
                    Record::Build(build),
                    Record::Deploy(deploy),
                    Record::Sbom(scan),
                ],
                now,
                Some(&by),
            )
            .unwrap();
    }
    println!(
        "\nfleet: {services} services × {PACKAGES} packages, 10 findings each, on {BASES} bases, loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let config = Config::default();
    let mut lcg = Lcg(42);
    println!("| query | p50 | p99 | answers (median services) |");
    println!("| --- | ---: | ---: | ---: |");
    let base_lib = |l: &mut Lcg| (l.next(BASES) * 37 + 1 + l.next(BASE_PACKAGES - 1)) % POOL;
    type MakeQuery = Box<dyn Fn(&mut Lcg) -> PackageQuery>;
    let kinds: [(&str, MakeQuery); 5] = [
        (
            "`affected --package NAME` (a base package of some bases)",
            Box::new(move |l: &mut Lcg| {
                PackageQuery::package(&format!("lib{}", base_lib(l))).unwrap()
            }),
        ),
        (
            "`affected --package openssl@<3.0.N-1` (in every image; half match)",
            Box::new(|l: &mut Lcg| {
                PackageQuery::package(&format!("openssl@<3.0.{}-1", 4 + l.next(9))).unwrap()
            }),
        ),
        (
            "`affected --package NAME@<RANGE` (app package)",
            Box::new(|l: &mut Lcg| {
                PackageQuery::package(&format!("py{}@<2.5.0", l.next(POOL))).unwrap()
            }),
        ),
        (
            "`affected --purl PURL`",
            Box::new(move |l: &mut Lcg| {
                PackageQuery::purl(&format!("pkg:deb/debian/lib{}", base_lib(l))).unwrap()
            }),
        ),
        (
            "`affected --cve ID`",
            Box::new(|l: &mut Lcg| {
                PackageQuery::vuln(&format!("CVE-2026-{:05}", l.next(2_000))).unwrap()
            }),
        ),
    ];
    for (name, make) in kinds.iter() {
        let mut times = Vec::with_capacity(QUERIES);
        let mut answers = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let q = make(&mut lcg);
            let t = Instant::now();
            let report = vulns::affected(store.as_ref(), &config, &q, now).unwrap();
            times.push(t.elapsed());
            answers.push(report.services.len() as f64);
        }
        println!(
            "| {name} | {} | {} | {:.0} |",
            ms(percentile(&mut times, 0.5)),
            ms(percentile(&mut times, 0.99)),
            median(answers)
        );
    }
    let t = Instant::now();
    let v = vulns::vulns(store.as_ref(), &config, Some(&prod), &[], now).unwrap();
    println!(
        "\n`vulns --env production` over the whole fleet: {} ({} owners)",
        ms(t.elapsed()),
        v.owners.len()
    );
}
