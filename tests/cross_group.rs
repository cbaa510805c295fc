//! Two data centres — eu1 as an HA pair whose first replica has a gap, us1 as one server —
//! through promgate, against one
//! Prometheus holding all of their data with the external labels as ordinary labels. What
//! promgate answers equals the reference: per data centre through the backends' own query
//! API, across data centres through promgate's engine over their raw data.

mod common;

use common::{Gateway, assert_close, enc, get_json};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use serde_json::Value;

struct Fixture {
    gateway: Gateway,
    reference: PrometheusServer,
    _servers: Vec<PrometheusServer>,
    _dir: tempfile::TempDir,
    end: i64,
}

fn fixture() -> Fixture {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let spec = SynthSpec::hours_until(promgate::time::now_ms() - 10 * 60_000, 3);
    // Experimental functions on everywhere, so that a query sent to a backend would be
    // answered, not refused, if promgate sent it there.
    let experimental = || PrometheusOptions {
        flags: vec!["--enable-feature=promql-experimental-functions".to_string()],
        ..PrometheusOptions::default()
    };
    let start = |labels: &[(&str, &str)], spec: &SynthSpec| {
        PrometheusServer::start(&bin, experimental().labels(labels).data(openmetrics(spec)))
            .unwrap()
    };
    // Replica b (asked first) misses 40 minutes that replica a has.
    let gappy = spec
        .clone()
        .gap(spec.end_ms - 100 * 60_000, spec.end_ms - 60 * 60_000);
    let servers = vec![
        start(&[("cluster", "eu1"), ("replica", "b")], &gappy),
        start(&[("cluster", "eu1"), ("replica", "a")], &spec),
        start(&[("cluster", "us1"), ("replica", "a")], &spec),
    ];
    let reference = PrometheusServer::start(
        &bin,
        experimental()
            .data(openmetrics(&spec.clone().extra_label("cluster", "eu1")))
            .data(openmetrics(&spec.clone().extra_label("cluster", "us1"))),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    let mut text = String::from("[query]\nreplica_labels = [\"replica\"]\n");
    for (name, s) in ["eu1-b", "eu1-a", "us1-a"].iter().zip(&servers) {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
            s.url()
        ));
    }
    std::fs::write(&config, text).unwrap();
    Fixture {
        gateway: Gateway::start(&config),
        reference,
        _servers: servers,
        _dir: dir,
        end: spec.end_ms / 1000,
    }
}

fn sorted(mut v: Value, keep_order: bool) -> Value {
    if !keep_order {
        if let Some(r) = v["data"]["result"].as_array_mut() {
            r.sort_by_key(|s| s["metric"].to_string());
        }
    }
    v
}

#[test]
fn queries_that_keep_data_centres_apart_equal_one_prometheus_with_all_data() {
    let f = fixture();
    let t = f.end - 1200;
    for q in [
        "demo_temperature_celsius",
        "sum by (cluster) (rate(demo_requests_total[5m]))",
        "sum by (cluster, method) (increase(demo_requests_total[10m]))",
        "count by (cluster, job) (demo_temperature_celsius)",
        "topk by (cluster) (1, demo_temperature_celsius)",
        "sort_desc(demo_temperature_celsius)",
        "rate(demo_requests_total{cluster=\"us1\"}[5m])",
        "sum(rate(demo_requests_total{cluster=\"eu1\"}[5m]))",
        "histogram_quantile(0.5, sum by (cluster, le) (rate(demo_request_duration_seconds_bucket[5m])))",
        "demo_temperature_celsius / on (cluster, instance) group_left sum by (cluster, instance) (rate(demo_requests_total[5m]))",
        "max_over_time(demo_temperature_celsius{cluster=~\"eu1|us1\"}[30m])",
        // Samples by a hash of all labels, the external ones included.
        "limit_ratio(0.5, demo_request_duration_seconds_bucket{cluster=\"us1\"})",
        "limit_ratio by (cluster) (-0.5, rate(demo_request_duration_seconds_bucket[5m]))",
        "count by (cluster) (limit_ratio(0.3, demo_request_duration_seconds_bucket))",
    ] {
        let keep_order = q.starts_with("sort");
        let instant = format!("/api/v1/query?query={}&time={t}", enc(q));
        let range = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=120",
            enc(q),
            f.end - 2 * 3600,
            f.end
        );
        for path in [instant, range] {
            let (status, ours) = f.gateway.get_json(&path);
            let (_, theirs) = get_json(&format!("{}{path}", f.reference.url()));
            assert_eq!(status, 200, "{path}: {ours}");
            assert!(ours.get("warnings").is_none(), "{path}: {ours}");
            assert_eq!(
                sorted(ours, keep_order),
                sorted(theirs, keep_order),
                "{path}"
            );
        }
    }
}

#[test]
fn aggregations_and_joins_across_data_centres_equal_one_prometheus() {
    let f = fixture();
    let t = f.end - 1200;
    for q in [
        "sum(rate(demo_requests_total[5m]))",
        "count(demo_temperature_celsius)",
        "avg(demo_temperature_celsius)",
        "sum by (method) (rate(demo_requests_total[5m]))",
        "topk(1, demo_temperature_celsius)",
        "quantile(0.9, demo_temperature_celsius)",
        "stddev(demo_temperature_celsius)",
        "max(demo_temperature_celsius) - min(demo_temperature_celsius)",
        "histogram_quantile(0.9, sum by (le) (rate(demo_request_duration_seconds_bucket[5m])))",
        "sum(rate(demo_requests_total[5m])) / sum(rate(demo_requests_total[5m] offset 30m))",
        "max_over_time(sum(rate(demo_requests_total[5m]))[30m:1m])",
        "count by (job) (demo_temperature_celsius > 20)",
        "max by (job) (demo_temperature_celsius)",
        "min(rate(demo_requests_total[5m]))",
        "group by (method) (demo_requests_total)",
        "bottomk(2, rate(demo_requests_total[10m]))",
        "avg by (method) (increase(demo_requests_total[15m]))",
    ] {
        let instant = format!("/api/v1/query?query={}&time={t}", enc(q));
        let range = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=120",
            enc(q),
            f.end - 2 * 3600,
            f.end
        );
        for path in [instant, range] {
            let (status, ours) = f.gateway.get_json(&path);
            let (_, theirs) = get_json(&format!("{}{path}", f.reference.url()));
            assert_eq!(status, 200, "{path}: {ours}");
            assert!(ours.get("warnings").is_none(), "{path}: {ours}");
            assert_close(&ours, &theirs, &path);
        }
    }
    // An answer big enough to be written on several threads and sent in pieces arrives
    // whole: as Prometheus's, and the same through gzip over HTTP/2.
    let big = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=2",
        enc(
            "rate(demo_request_duration_seconds_bucket[5m]) / on (cluster, instance) group_left sum by (cluster, instance) (rate(demo_requests_total[5m]))"
        ),
        f.end - 2 * 3600,
        f.end
    );
    let (status, ours) = f.gateway.get_json(&big);
    assert_eq!(status, 200, "{ours}");
    let points: usize = ours["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(points >= 100_000, "only {points} points");
    let (_, theirs) = get_json(&format!("{}{big}", f.reference.url()));
    assert_close(&ours, &theirs, &big);
    let compressed = std::process::Command::new("curl")
        .args(["-sf", "--compressed", "--http2-prior-knowledge"])
        .arg(f.gateway.url(&big))
        .output()
        .expect("curl (bash .ci/run installs it)");
    assert!(compressed.status.success(), "{compressed:?}");
    let unpacked: Value = serde_json::from_slice(&compressed.stdout).unwrap();
    assert_eq!(unpacked, ours);

    // Decomposable aggregations went to the groups as partial aggregations; the rest (and
    // range queries over the gap, where the replicas differ) were evaluated by promgate.
    let metrics = common::http_get(&f.gateway.url("/metrics")).unwrap().text();
    for path in ["pushdown", "engine"] {
        let line = format!("promgate_query_paths_total{{path=\"{path}\"}} ");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(count > 0.0, "no query took the {path} path:\n{metrics}");
    }
}
