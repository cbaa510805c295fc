//! Through promgate, one Prometheus with external labels answers exactly like a Prometheus
//! holding the same data with those labels as ordinary labels (the replica label excepted):
//! every endpoint, results, errors and warnings. Both servers are real Prometheus 3.5
//! processes with backfilled data.

mod common;

use std::time::Duration;

use common::{Gateway, enc, get_json, post_form};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use serde_json::Value;

struct Fixture {
    gateway: Gateway,
    reference: PrometheusServer,
    _backend: PrometheusServer,
    _dir: tempfile::TempDir,
    /// End of the backfilled data, unix seconds.
    end: i64,
}

fn fixture() -> Fixture {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let end_ms = promgate::time::now_ms() - 10 * 60_000;
    let spec = SynthSpec::hours_until(end_ms, 6);
    let backend = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .labels(&[("cluster", "eu1"), ("replica", "a")])
            .data(openmetrics(&spec))
            .scrape_self(Duration::from_secs(1)),
    )
    .unwrap();
    let reference = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .data(openmetrics(&spec.clone().extra_label("cluster", "eu1")))
            .scrape_self(Duration::from_secs(1)),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[query]\nreplica_labels = [\"replica\"]\n[[backend]]\nname = \"eu1-a\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
            backend.url()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config);
    Fixture {
        gateway,
        reference,
        _backend: backend,
        _dir: dir,
        end: spec.end_ms / 1000,
    }
}

/// The same request to promgate and to the reference.
fn both(f: &Fixture, path_and_query: &str) -> ((u16, Value), (u16, Value)) {
    let ours = f.gateway.get_json(path_and_query);
    let theirs = get_json(&format!("{}{}", f.reference.url(), path_and_query));
    (ours, theirs)
}

/// Prometheus leaves the order of an instant vector unspecified except after the sort
/// functions (aggregations come out in hash-map order): compare those as sets.
fn normalise(mut answer: Value, path_and_query: &str) -> Value {
    let sorted = path_and_query.contains("query=sort");
    if answer["data"]["resultType"] == "vector" && !sorted {
        if let Some(result) = answer["data"]["result"].as_array_mut() {
            result.sort_by_key(|s| s["metric"].to_string());
        }
    }
    answer
}

fn assert_same(f: &Fixture, path_and_query: &str) {
    let (ours, theirs) = both(f, path_and_query);
    assert_eq!(
        ours.0, theirs.0,
        "status of {path_and_query}: {ours:?} vs {theirs:?}"
    );
    assert_eq!(
        normalise(ours.1, path_and_query),
        normalise(theirs.1, path_and_query),
        "answer to {path_and_query}"
    );
}

const QUERIES: &[&str] = &[
    "demo_requests_total",
    "demo_requests_total{instance=\"i-1\"}",
    "demo_requests_total{cluster=\"eu1\"}",
    "demo_requests_total{cluster=\"us1\"}",
    "demo_requests_total{cluster=~\"eu.*\",method=\"get\"}",
    "demo_requests_total{cluster!=\"eu1\"}",
    "{__name__=~\"demo_temp.*\",cluster=\"eu1\"}",
    "rate(demo_requests_total[5m])",
    "sum(rate(demo_requests_total[5m]))",
    "sum by (cluster, method) (rate(demo_requests_total[5m]))",
    "sum without (instance) (rate(demo_requests_total[5m]))",
    "count by (cluster) (demo_temperature_celsius)",
    "histogram_quantile(0.9, sum by (le, cluster) (rate(demo_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, rate(demo_request_duration_seconds_bucket[5m]))",
    "label_replace(demo_temperature_celsius, \"dc\", \"$1\", \"cluster\", \"(.*)\")",
    "label_join(demo_temperature_celsius, \"both\", \"-\", \"cluster\", \"instance\")",
    "topk(2, demo_temperature_celsius)",
    "sort_desc(demo_temperature_celsius)",
    "sort_by_label(demo_temperature_celsius, \"instance\")",
    "demo_temperature_celsius offset 1h",
    "max_over_time(demo_temperature_celsius[30m:1m])",
    "absent(demo_nonexistent{cluster=\"eu1\",job=\"x\"})",
    "absent(demo_temperature_celsius)",
    "absent_over_time(demo_nonexistent{cluster=\"eu1\"}[5m])",
    "vector(1)",
    "time()",
    "1 + 1",
    "\"text\"",
    "scalar(sum(demo_temperature_celsius))",
    "demo_temperature_celsius > bool 21",
    "demo_requests_total / on (instance, method) group_left demo_requests_total",
    "demo_requests_total / ignoring (method) group_left sum without (method) (demo_requests_total)",
    "timestamp(demo_temperature_celsius)",
    "count_values(\"cluster\", demo_temperature_celsius > 100)",
    "rate(demo_temperature_celsius[5m])",
    "sum by (cluster) (rate(demo_temperature_celsius[5m]))",
    "sum(\n  rate(demo_temperature_celsius{cluster=\"eu1\"}[5m])\n)",
    "changes(demo_temperature_celsius[1h]) + resets(demo_requests_total[1h])",
];

#[test]
fn queries_answer_as_one_prometheus_with_external_labels_as_labels() {
    let f = fixture();
    let t = f.end - 1800;
    for q in QUERIES {
        assert_same(&f, &format!("/api/v1/query?query={}&time={t}", enc(q)));
        let range = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            enc(q),
            f.end - 3 * 3600,
            f.end
        );
        assert_same(&f, &range);
    }
    // Instant queries may return a range vector.
    assert_same(
        &f,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("demo_temperature_celsius{instance=\"i-2\"}[2m]")
        ),
    );
    // POST forms answer like GET.
    let q = "sum by (cluster) (rate(demo_requests_total[5m]))";
    let ts = t.to_string();
    let ours = post_form(
        &f.gateway.url("/api/v1/query"),
        &[("query", q), ("time", &ts)],
    );
    let theirs = post_form(
        &format!("{}/api/v1/query", f.reference.url()),
        &[("query", q), ("time", &ts)],
    );
    assert_eq!(ours.status, 200);
    assert_eq!(ours.json().unwrap(), theirs.json().unwrap());
}

#[test]
fn bad_input_gets_prometheus_errors() {
    let f = fixture();
    let t = f.end;
    for pq in [
        format!("/api/v1/query?query={}", enc("sum(")),
        format!(
            "/api/v1/query?query={}",
            enc("rate(demo_temperature_celsius)")
        ),
        format!("/api/v1/query?query={}", enc("up{")),
        "/api/v1/query".to_string(),
        "/api/v1/query?query=up&time=yesterday".to_string(),
        "/api/v1/query?query=up&timeout=soon".to_string(),
        format!("/api/v1/query_range?query=up&start={t}&end={}", t - 10),
        format!(
            "/api/v1/query_range?query=up&start={t}&end={}&step=0",
            t + 10
        ),
        format!("/api/v1/query_range?query=up&start={t}&end={}", t + 10),
        format!("/api/v1/query_range?query=up&start=0&end={t}&step=1"),
        "/api/v1/query_range?query=up&end=10&step=1".to_string(),
        "/api/v1/series".to_string(),
        format!("/api/v1/series?match[]={}", enc("up{")),
        "/api/v1/series?match[]=up&start=nope".to_string(),
        "/api/v1/series?match[]=up&limit=-1".to_string(),
        "/api/v1/labels?limit=x".to_string(),
        "/api/v1/metadata?limit=x".to_string(),
        format!("/api/v1/query_exemplars?query={}", enc("sum(")),
    ] {
        let (ours, theirs) = both(&f, &pq);
        assert_eq!(ours.0, theirs.0, "status of {pq}: {ours:?} vs {theirs:?}");
        assert_eq!(ours.1["status"], "error", "{pq}");
        assert_eq!(ours.1["errorType"], theirs.1["errorType"], "{pq}");
        assert_eq!(ours.1["error"], theirs.1["error"], "{pq}");
    }
}

#[test]
fn metadata_endpoints_match_the_reference() {
    let f = fixture();
    let (start, end) = (f.end - 3 * 3600, f.end);
    for pq in [
        format!("/api/v1/series?match[]=demo_temperature_celsius&start={start}&end={end}"),
        format!(
            "/api/v1/series?match[]={}&match[]={}&start={start}&end={end}",
            enc("demo_requests_total{method=\"get\"}"),
            enc("{__name__=\"demo_temperature_celsius\",cluster=\"eu1\"}")
        ),
        format!(
            "/api/v1/series?match[]={}&start={start}&end={end}",
            enc("demo_requests_total{cluster=\"us1\"}")
        ),
        format!("/api/v1/series?match[]=demo_requests_total&limit=3&start={start}&end={end}"),
        format!("/api/v1/labels?match[]=demo_requests_total&start={start}&end={end}"),
        format!(
            "/api/v1/labels?match[]={}&start={start}&end={end}",
            enc("{cluster=\"eu1\",__name__=~\"demo_.*\"}")
        ),
        format!("/api/v1/label/cluster/values?match[]=demo_requests_total&start={start}&end={end}"),
        format!(
            "/api/v1/label/instance/values?match[]=demo_temperature_celsius&start={start}&end={end}"
        ),
        format!(
            "/api/v1/label/__name__/values?match[]={}&start={start}&end={end}",
            enc("{cluster=\"eu1\",__name__=~\"demo_.*\"}")
        ),
        format!(
            "/api/v1/label/instance/values?match[]={}&start={start}&end={end}",
            enc("demo_temperature_celsius{cluster=\"us1\"}")
        ),
        "/api/v1/label/cluster/values?match[]=demo_requests_total".to_string(),
        format!(
            "/api/v1/label/instance/values?match[]=demo_temperature_celsius&limit=2&start={start}&end={end}"
        ),
        "/api/v1/metadata?metric=prometheus_build_info".to_string(),
        "/api/v1/metadata?metric=demo_temperature_celsius".to_string(),
        format!("/api/v1/query_exemplars?query=demo_requests_total&start={start}&end={end}"),
        format!(
            "/api/v1/format_query?query={}",
            enc("sum(rate(x[5m]))by(job)")
        ),
        format!(
            "/api/v1/format_query?query={}",
            enc(
                "sum by (job) (rate(demo_requests_total{instance=~\"i-.*\"}[5m] offset 1h)) / on(job) group_left sum(up)"
            )
        ),
    ] {
        assert_same(&f, &pq);
    }
    // The replica label is not a label of the answer: no values, not among the names.
    let (status, values) = f.gateway.get_json("/api/v1/label/replica/values");
    assert_eq!(status, 200);
    assert_eq!(values["data"], serde_json::json!([]));
    let (_, names) = f.gateway.get_json("/api/v1/labels");
    let names = names["data"].as_array().unwrap().clone();
    assert!(names.contains(&Value::from("cluster")), "{names:?}");
    assert!(!names.contains(&Value::from("replica")), "{names:?}");
}

#[test]
fn buildinfo_compression_h2c_and_own_endpoints() {
    let f = fixture();
    let (status, info) = f.gateway.get_json("/api/v1/status/buildinfo");
    assert_eq!(status, 200);
    let version = info["data"]["version"].as_str().unwrap();
    assert!(version.starts_with("3."), "{version}");
    for field in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(info["data"][field].is_string(), "{field} missing in {info}");
    }

    // gzip when asked for.
    let r = common::http(
        "GET",
        &f.gateway.url("/api/v1/query?query=vector(1)"),
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b]);

    // HTTP/2 with prior knowledge (h2c) on the same port.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(f.gateway.url("/api/v1/query?query=vector(1)"))
        .output();
    if let Ok(out) = out {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    }

    assert_eq!(
        common::http_get(&f.gateway.url("/-/healthy"))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        common::http_get(&f.gateway.url("/-/ready")).unwrap().status,
        200
    );
    let metrics = common::http_get(&f.gateway.url("/metrics")).unwrap().text();
    for name in [
        "promgate_http_requests_total{handler=\"query\",code=\"200\"}",
        "promgate_http_request_duration_seconds_bucket",
        "promgate_backend_requests_total{backend=\"eu1-a\",result=\"success\"}",
        "promgate_backend_up{backend=\"eu1-a\"} 1",
        "promgate_config_last_reload_successful 1",
    ] {
        assert!(metrics.contains(name), "{name} missing in\n{metrics}");
    }
    assert_eq!(
        common::http_get(&f.gateway.url("/api/v1/nope"))
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        common::http("DELETE", &f.gateway.url("/api/v1/query"), &[], b"")
            .unwrap()
            .status,
        405
    );
}

#[test]
fn odd_input_never_breaks_the_server() {
    let f = fixture();
    let long = "x".repeat(20_000);
    for pq in [
        "/api/v1/label/values".to_string(),
        "/api/v1/label//values".to_string(),
        "/api/v1/label/%ZZ/values".to_string(),
        "/api/v1/query?query=up&time=1e308".to_string(),
        "/api/v1/query?query=up&time=-1e308".to_string(),
        "/api/v1/query?query=up&time=NaN".to_string(),
        "/api/v1/query_range?query=up&start=0&end=1e18&step=1e-9".to_string(),
        "/api/v1/query_range?query=up&start=1&end=2&step=-Inf".to_string(),
        "/api/v1/query?query=up&timeout=-5s".to_string(),
        format!("/api/v1/query?query={}", enc("up{a=\"\u{2028}é\u{0}\"}")),
        format!("/api/v1/query?query={}", enc("{__name__=~\"(\"}")),
        format!("/api/v1/query?query={}", enc(&long)),
        format!("/api/v1/series?match[]={}", enc("{a=~\".*\"}")),
        format!("/api/v1/series?match[]={}", enc("sum(up)")),
        "/api/v1/query?query=up&partial_response=maybe".to_string(),
        "/api/v1/query?query=%FF%FE".to_string(),
        "/api/v1/metadata?limit=-1&limit_per_metric=0".to_string(),
        "/api/v1/parse_query?query=".to_string(),
        "/api/v1/format_query?query=%28".to_string(),
    ] {
        let shown: String = pq.chars().take(120).collect();
        let r = common::http_get(&f.gateway.url(&pq)).unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert!(
            r.status < 500 || r.status == 503,
            "{shown}: {} {}",
            r.status,
            r.text()
        );
        if r.status != 404 {
            let v = r.json().unwrap_or_else(|e| panic!("{shown}: {e}"));
            assert!(
                v["status"] == "success" || v["status"] == "error",
                "{shown}: {v}"
            );
        }
    }
    // A request line longer than the HTTP layer accepts is refused, not served.
    let huge = format!("/api/v1/query?query={}", "x".repeat(200_000));
    let r = common::http_get(&f.gateway.url(&huge)).unwrap();
    assert!(
        r.status == 414 || r.status == 431 || r.status == 400,
        "{}",
        r.status
    );
    // Still serving.
    let (status, _) = f.gateway.get_json("/api/v1/query?query=vector(1)");
    assert_eq!(status, 200);
}
