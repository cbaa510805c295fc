//! A Prometheus 2.x backend: its range windows include their left edge, 3.x's do not, so the
//! same query differs where a sample sits exactly on the edge. promgate reads the version
//! from /api/v1/status/buildinfo and evaluates such a backend's data itself, answering as
//! Prometheus 3.5 does.

mod common;

use common::{Gateway, enc, get_json};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};

#[test]
fn queries_over_prometheus_2_are_answered_with_3_x_semantics() {
    let v2 = PrometheusBinary::v2().expect("Prometheus 2.42 (bash .ci/run installs it)");
    let v3 = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let spec = SynthSpec::hours_until(promgate::time::now_ms() - 10 * 60_000, 2);
    let start = |bin: &PrometheusBinary| {
        PrometheusServer::start(bin, PrometheusOptions::default().data(openmetrics(&spec))).unwrap()
    };
    let old = start(&v2);
    let reference = start(&v3);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[backend]]\nname = \"old\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
            old.url()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config);
    common::wait_until(std::time::Duration::from_secs(10), || {
        gateway.get_json("/api/v1/status/backends").1["data"][0]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2."))
    });

    // Samples every 15 s on the minute grid: a 1m window ending on a sample holds 4 samples
    // for 3.x and 5 for 2.x.
    let t = spec.end_ms / 1000 - 600;
    for q in [
        "count_over_time(demo_temperature_celsius[1m])",
        "sum(count_over_time(demo_requests_total[2m]))",
    ] {
        let path = format!("/api/v1/query?query={}&time={t}", enc(q));
        let (status, ours) = gateway.get_json(&path);
        assert_eq!(status, 200, "{ours}");
        let (_, theirs_v3) = get_json(&format!("{}{path}", reference.url()));
        let (_, theirs_v2) = get_json(&format!("{}{path}", old.url()));
        let sorted = |v: &serde_json::Value| {
            let mut r = v["data"]["result"].as_array().cloned().unwrap_or_default();
            r.sort_by_key(|s| s["metric"].to_string());
            r
        };
        assert_ne!(
            sorted(&theirs_v2),
            sorted(&theirs_v3),
            "{q}: the versions agree here"
        );
        assert_eq!(sorted(&ours), sorted(&theirs_v3), "{q}");
    }
}
