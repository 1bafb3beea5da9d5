//! PodLists written by hand from the Kubernetes API reference (Pod, PodList, OwnerReference,
//! ContainerStatus), as `kubectl get pods -A -o json` prints them under Docker and containerd.

use super::*;

fn hex(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

struct Fixture {
    namespaces: BTreeMap<String, EnvName>,
    config: Config,
}

impl Fixture {
    fn new() -> Fixture {
        let mut namespaces = BTreeMap::new();
        namespaces.insert("prod".into(), EnvName::parse("production").unwrap());
        namespaces.insert("staging".into(), EnvName::parse("staging").unwrap());
        Fixture {
            namespaces,
            config: Config::default(),
        }
    }

    fn opts(&self, format: Option<InputFormat>) -> ObserveOptions<'_> {
        ObserveOptions {
            source: "prod-eu-1".into(),
            format,
            namespaces: &self.namespaces,
            config: &self.config,
            seen_at: Timestamp::parse("2026-11-17T09:00:00Z").unwrap(),
            by: Identity::parse("sa:inventory").unwrap(),
            name: "pods.json".into(),
        }
    }

    fn parse(&self, text: &str) -> Result<Parsed, Error> {
        parse(text, &self.opts(None))
    }

    fn error(&self, text: &str) -> String {
        match self.parse(text) {
            Ok(p) => panic!("parsed: {:#?}", p.batch.items),
            Err(e) => format!("{e} | hint: {}", e.hint().unwrap_or_default()),
        }
    }
}

/// (workload, container, kind, image, digest) per item.
fn summary(p: &Parsed) -> Vec<(String, String, String, String, String)> {
    p.batch
        .items
        .iter()
        .map(|i| {
            (
                i.workload.clone().unwrap_or_default(),
                i.container.clone().unwrap_or_default(),
                i.container_kind.clone().unwrap_or_default(),
                i.image.to_string(),
                i.digest.to_string(),
            )
        })
        .collect()
}

const DOCKER: &str = include_str!("testdata/docker-list.json");
const OWNERS: &str = include_str!("testdata/with-owners.json");

#[test]
fn a_docker_pod_list_resolves_owners_and_every_container_kind() {
    let f = Fixture::new();
    let p = f.parse(DOCKER).unwrap();
    assert_eq!(p.format, InputFormat::Kubernetes);
    let mut got = summary(&p);
    got.sort();
    let row = |w: &str, c: &str, k: &str, i: &str, d: char| {
        (w.into(), c.into(), k.into(), i.into(), hex(d))
    };
    assert_eq!(
        got,
        vec![
            // ReplicaSet `api-7d9f8c6b5` with pod-template-hash `7d9f8c6b5` is Deployment `api`;
            // `docker-pullable://` gives the repository digest of a tag.
            row("Deployment/api", "api", "", "ghcr.io/acme/api", 'a'),
            // The init container counts, with its own digest.
            row(
                "Deployment/api",
                "migrate",
                "init",
                "ghcr.io/acme/api-migrate",
                'c'
            ),
            // A CronJob's Job is `<cronjob>-<minutes>`; containerd writes `REPO@sha256:…`.
            row("CronJob/report", "report", "", "ghcr.io/acme/report", 'd'),
            row(
                "DaemonSet/log-agent",
                "agent",
                "",
                "ghcr.io/acme/agent",
                '9'
            ),
            row(
                "StatefulSet/db",
                "postgres",
                "",
                "docker.io/library/postgres",
                'f'
            ),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(p.batch.envs, vec![EnvName::parse("production").unwrap()]);
    assert!(p.batch.complete);
    assert_eq!(
        p.unmapped,
        vec![UnmappedNamespace {
            namespace: "kube-system".into(),
            pods: 1
        }]
    );
    assert_eq!(p.batch.unmapped_namespaces, vec!["kube-system".to_string()]);
    // The ephemeral debug container runs a tag known only by its local image id
    // (`docker://sha256:…`), and one container has not pulled yet: both are reported.
    let reasons: Vec<&str> = p.skipped.iter().map(|s| s.at.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "items[0].status.ephemeralContainerStatuses[0]",
            "items[4].spec.containers[0]"
        ]
    );
    assert!(
        p.skipped[0].reason.contains("local image id"),
        "{:?}",
        p.skipped
    );
    assert!(
        p.skipped[1].reason.contains("no `imageID`"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn owners_listed_in_the_same_input_are_followed_exactly() {
    let f = Fixture::new();
    let p = f.parse(OWNERS).unwrap();
    let got: Vec<String> = summary(&p).into_iter().map(|r| r.0).collect();
    // No pod-template-hash label and a Job name without minutes: only the listed
    // ReplicaSet and Job objects say who owns them.
    assert_eq!(got, vec!["CronJob/nightly", "Deployment/web"]);
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
}

#[test]
fn every_image_id_spelling() {
    let a = hex('a');
    for (id, want) in [
        (
            format!("docker-pullable://ghcr.io/acme/api@{a}"),
            Some("ghcr.io/acme/api"),
        ),
        (format!("ghcr.io/acme/api@{a}"), Some("ghcr.io/acme/api")),
        (
            format!("docker.io/library/nginx@{a}"),
            Some("docker.io/library/nginx"),
        ),
        (format!("nginx@{a}"), Some("docker.io/library/nginx")),
        (format!("docker://{a}"), None),
        (a.clone(), None),
    ] {
        match (parse_image_id(&id).unwrap(), want) {
            (ImageId::RepoDigest(r), Some(repo)) => {
                assert_eq!(r.repository.to_string(), repo, "{id}");
                assert_eq!(r.digest.unwrap().to_string(), a, "{id}");
            }
            (ImageId::LocalId(d), None) => assert_eq!(d.to_string(), a, "{id}"),
            (other, _) => panic!("{id}: {other:?}"),
        }
    }
    assert!(parse_image_id("docker-pullable://ghcr.io/acme/api@sha256:zz").is_err());
    assert!(parse_image_id("ghcr.io/acme/api:1.0").is_err());
}

#[test]
fn a_malformed_pod_names_its_path_and_field() {
    let f = Fixture::new();
    let bad_id = DOCKER.replace(
        "docker-pullable://ghcr.io/acme/api@sha256:aaaa",
        "docker-pullable://ghcr.io/acme/api@sha256:zzzz",
    );
    let e = f.error(&bad_id);
    assert!(
        e.starts_with("`pods.json`: items[0].status.containerStatuses[0].imageID: "),
        "{e}"
    );
    let no_ns = OWNERS.replacen("\"namespace\": \"staging\",", "", 1);
    let e = f.error(&no_ns);
    assert!(
        e.starts_with("`pods.json`: items[0].metadata.namespace: is missing"),
        "{e}"
    );
    let wrong_type = OWNERS.replacen(
        "\"containerStatuses\": [",
        "\"containerStatuses\": {\"x\": [",
        1,
    );
    let wrong_type = wrong_type.replacen(
        "\"restartCount\": 0}\n                ]",
        "\"restartCount\": 0}\n                ]}",
        1,
    );
    let e = f.error(&wrong_type);
    assert!(e.contains("items[0].status.containerStatuses"), "{e}");
    let e = f.error("{\"kind\": \"Deployment\", \"metadata\": {\"name\": \"api\"}}");
    assert!(e.contains("kind: is `Deployment`"), "{e}");
    let e = f.error("{\"kind\": \"List\", \"items\": [");
    assert!(e.contains("line 1 column"), "{e}");
    let unpinned_bad = OWNERS.replacen(
        "ghcr.io/acme/web:3.1.0\", \"name\"",
        "ghcr.io/acme/web:\", \"name\"",
        1,
    );
    let e = f.error(&unpinned_bad);
    assert!(e.contains("items[0].spec.containers[0].image"), "{e}");
}

#[test]
fn inventories_as_json_lines_and_csv() {
    let f = Fixture::new();
    let a = hex('a');
    let jsonl = format!(
        "{{\"env\": \"production\", \"image\": \"ghcr.io/acme/api@{a}\", \"host\": \"vm-12\", \"seen_at\": \"2026-11-17T08:58:00Z\"}}\n\n{{\"env\": \"staging\", \"image\": \"ghcr.io/acme/api:1.8.0@{a}\", \"cluster\": \"ecs-1\"}}\n"
    );
    let p = f.parse(&jsonl).unwrap();
    assert_eq!(p.format, InputFormat::Jsonl);
    assert_eq!(p.batch.items.len(), 2);
    assert_eq!(p.batch.items[0].host.as_deref(), Some("vm-12"));
    assert_eq!(
        p.batch.items[0].seen_at,
        Timestamp::parse("2026-11-17T08:58:00Z").unwrap()
    );
    assert_eq!(p.batch.items[1].host.as_deref(), Some("ecs-1"));
    let csv = format!("env,image,host,seen_at\nproduction, ghcr.io/acme/api@{a}, vm-12, 2026-11-17T08:58:00Z\nstaging,ghcr.io/acme/api@{a}\n");
    let p = f.parse(&csv).unwrap();
    assert_eq!(p.format, InputFormat::Csv);
    assert_eq!(p.batch.items.len(), 2);
    let headerless = format!("production,ghcr.io/acme/api@{a},vm-12\n");
    assert_eq!(f.parse(&headerless).unwrap().batch.items.len(), 1);

    let e = f.error(&format!(
        "{{\"env\": \"production\", \"image\": \"ghcr.io/acme/api@{a}\"}}\n{{\"env\": \"prodution\", \"image\": \"ghcr.io/acme/api@{a}\"}}\n"
    ));
    assert!(
        e.starts_with(
            "`pods.json`: line 2: field `env`: environment `prodution` is not configured"
        ),
        "{e}"
    );
    assert!(e.contains("did you mean `production`?"), "{e}");
    let e = f.error("production,ghcr.io/acme/api:1.8.0\n");
    assert!(
        e.starts_with(
            "`pods.json`: line 1: field `image`: `ghcr.io/acme/api:1.8.0` is not pinned by digest"
        ),
        "{e}"
    );
    let e = f.error(&format!(
        "{{\"env\": \"production\", \"image\": \"ghcr.io/acme/api@{a}\", \"node\": \"x\"}}\n"
    ));
    assert!(e.contains("line 1: unknown field `node`"), "{e}");
}

#[test]
fn sources_are_names() {
    assert!(check_source("prod-eu-1").is_ok());
    assert!(check_source("").is_err());
    assert!(check_source("prod eu").is_err());
    assert!(check_source("a\u{1b}[31m").is_err());
}

#[test]
fn ages_read_like_people_say_them() {
    assert_eq!(ago(5), "just now");
    assert_eq!(ago(180), "3 min ago");
    assert_eq!(ago(7200), "2 h ago");
    assert_eq!(ago(86_400), "1 day ago");
    assert_eq!(ago(3 * 86_400), "3 days ago");
}
