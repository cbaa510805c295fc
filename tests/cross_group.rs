//! Two data centres — eu1 as an HA pair, us1 as one server — through promgate, against one
//! Prometheus holding all of their data with the external labels as ordinary labels. What
//! promgate can answer exactly equals the reference; what it cannot yet (aggregations across
//! data centres) comes with a warning, never silently wrong.

mod common;

use common::{Gateway, enc, get_json};
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
    let start = |labels: &[(&str, &str)]| {
        PrometheusServer::start(
            &bin,
            PrometheusOptions::default()
                .labels(labels)
                .data(openmetrics(&spec)),
        )
        .unwrap()
    };
    let servers = vec![
        start(&[("cluster", "eu1"), ("replica", "b")]),
        start(&[("cluster", "eu1"), ("replica", "a")]),
        start(&[("cluster", "us1"), ("replica", "a")]),
    ];
    let reference = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
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
fn aggregations_across_data_centres_come_with_a_warning() {
    let f = fixture();
    let t = f.end - 1200;
    for q in [
        "sum(rate(demo_requests_total[5m]))",
        "count(demo_temperature_celsius)",
        "sum by (method) (rate(demo_requests_total[5m]))",
        "topk(1, demo_temperature_celsius)",
    ] {
        let (status, ours) = f
            .gateway
            .get_json(&format!("/api/v1/query?query={}&time={t}", enc(q)));
        assert_eq!(status, 200, "{q}: {ours}");
        let warnings = ours["warnings"].to_string();
        assert!(
            warnings.contains("not merged across replica groups"),
            "{q}: {ours}"
        );
        // Each group's own answer is there, labelled by nothing that tells them apart.
        let (_, reference) = get_json(&format!(
            "{}/api/v1/query?query={}&time={t}",
            f.reference.url(),
            enc(q)
        ));
        let ours_len = ours["data"]["result"].as_array().unwrap().len();
        let ref_len = reference["data"]["result"].as_array().unwrap().len();
        assert_eq!(ours_len, 2 * ref_len, "{q}: {ours} vs {reference}");
    }
}
