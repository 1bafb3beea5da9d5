//! Prometheus metrics, in the text exposition format, without a metrics library: a few
//! counters and one latency histogram family are all the server needs.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Upper bounds of the latency buckets, in seconds: fine below a millisecond, where admission
/// answers live, coarse above.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }
}

/// One route's latency for one (method, status).
type ByMethodStatus = (String, u16, Histogram);

/// Labelled counters: label values → count.
#[derive(Default)]
struct Counter(RwLock<BTreeMap<Vec<String>, AtomicU64>>);

impl Counter {
    fn add(&self, labels: &[&str], n: u64) {
        {
            let map = self.0.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map
                .iter()
                .find(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()))
            {
                c.1.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.entry(labels.iter().map(|s| s.to_string()).collect())
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    /// route → (method, status, latency). Looked up by `&str` so a request allocates nothing.
    requests: RwLock<BTreeMap<String, Vec<ByMethodStatus>>>,
    records: Counter,
    decisions: Counter,
    /// Group commits, and the writes they carried.
    groups: Counter,
    grouped_writes: Counter,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        {
            let map = self.requests.read().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = map
                .get(route)
                .and_then(|v| v.iter().find(|(m, s, _)| m == method && *s == status))
            {
                h.2.observe(seconds);
                return;
            }
        }
        let mut map = self.requests.write().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(route.to_string()).or_default();
        match list
            .iter()
            .position(|(m, s, _)| m == method && *s == status)
        {
            Some(i) => list[i].2.observe(seconds),
            None => {
                let h = Histogram::new();
                h.observe(seconds);
                list.push((method.to_string(), status, h));
                list.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            }
        }
    }

    /// A ledger record written through the server (`build`, `deploy`, `service`).
    pub fn record_written(&self, kind: &str) {
        self.records.add(&[kind], 1);
    }

    /// A group commit of `writes` writes.
    pub fn write_group(&self, writes: usize) {
        self.groups.add(&[], 1);
        self.grouped_writes.add(&[], writes as u64);
    }

    /// An admission decision, once per rule that fired (`none` when none did).
    pub fn decision(&self, outcome: &str, rules: &[&str]) {
        if rules.is_empty() {
            self.decisions.add(&[outcome, "none"], 1);
        }
        for r in rules {
            self.decisions.add(&[outcome, r], 1);
        }
    }

    /// The exposition text; `gauges` are added as they are (name, help, value).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP lineage_http_request_duration_seconds Time to answer an HTTP request, by route.\n");
        out.push_str("# TYPE lineage_http_request_duration_seconds histogram\n");
        let map = self.requests.read().unwrap_or_else(|p| p.into_inner());
        let rows = map
            .iter()
            .flat_map(|(route, v)| v.iter().map(move |(m, s, h)| (route, m, s, h)));
        for (route, method, status, h) in rows {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                esc(route),
                esc(method)
            );
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "lineage_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}");
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lineage_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "lineage_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "lineage_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        drop(map);
        counter(
            &mut out,
            "lineage_records_written_total",
            "Ledger records written through the server.",
            &["kind"],
            &self.records,
        );
        counter(
            &mut out,
            "lineage_write_groups_total",
            "Group commits of the ledger writer (one transaction and one disk sync each).",
            &[],
            &self.groups,
        );
        counter(
            &mut out,
            "lineage_grouped_writes_total",
            "Writes committed by the ledger writer's group commits.",
            &[],
            &self.grouped_writes,
        );
        counter(
            &mut out,
            "lineage_admission_decisions_total",
            "Admission decisions, by outcome and by the rule that fired.",
            &["outcome", "rule"],
            &self.decisions,
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, label_names: &[&str], c: &Counter) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let map = c.0.read().unwrap_or_else(|p| p.into_inner());
    for (values, n) in map.iter() {
        let labels: Vec<String> = label_names
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(out, "{name}{labels} {}", n.load(Ordering::Relaxed));
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_and_counters() {
        let m = Metrics::default();
        m.observe_request("/healthz", "GET", 200, 0.0003);
        m.observe_request("/healthz", "GET", 200, 2.0);
        m.decision("denied", &["D005", "D006"]);
        m.record_written("build");
        let text = m.render(&[("lineage_ledger_entries", "Entries.", 3.0)]);
        assert!(text.contains("lineage_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\",le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(
            text.contains("lineage_admission_decisions_total{outcome=\"denied\",rule=\"D006\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("lineage_records_written_total{kind=\"build\"} 1"),
            "{text}"
        );
        assert!(text.contains("lineage_ledger_entries 3"), "{text}");
    }
}
