//! InfluxDB as a promgate backend (`kind = "influx"`), with a real Prometheus remote-writing
//! into a real InfluxDB 1.x: what promgate reads back from InfluxDB equals what the
//! Prometheus holds, whatever matchers are used (InfluxDB's unanchored regexes and its view
//! of missing tags notwithstanding), through promgate's own remote read endpoint and its
//! series, label and label value endpoints.

mod common;

use std::time::Duration;

use common::{Gateway, ReadMap, enc, remote_read as read, wait_until};
use promgate::realenv::{InfluxServer, PrometheusBinary, PrometheusOptions, PrometheusServer};
use promgate::storage::remote::{LabelMatcher, MatcherType, Query, RemoteReadConfig};
use serde_json::Value;

fn matcher(kind: MatcherType, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher::new(kind, name, value)
}

struct Fixture {
    prometheus: PrometheusServer,
    _influx: InfluxServer,
    gateway: Gateway,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let influx = InfluxServer::start("prometheus").expect("InfluxDB (bash .ci/run installs it)");
    // 3.x: its range windows are promgate's (left-open), so query answers compare.
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let mut options = PrometheusOptions::default()
        .labels(&[("cluster", "eu1"), ("replica", "a")])
        .scrape_self(Duration::from_secs(1));
    options.extra_config = format!(
        "remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 1s}}\n",
        influx.write_url("prometheus")
    );
    let prometheus = PrometheusServer::start(&bin, options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[backend]]\nname = \"lts\"\nkind = \"influx\"\nurl = \"{}\"\ndatabase = \"prometheus\"\ntimeout = \"10s\"\n",
            influx.url()
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config);
    Fixture {
        prometheus,
        _influx: influx,
        gateway,
        _dir: dir,
    }
}

#[test]
fn influx_data_reads_back_through_promgate_as_prometheus_holds_it() {
    let f = fixture();
    let start = promgate::time::now_ms() - 60_000;
    // Let a few scrapes land, then compare a range that has been written out.
    let up = Query {
        start_timestamp_ms: start,
        end_timestamp_ms: promgate::time::now_ms() + 60_000,
        matchers: vec![matcher(MatcherType::Eq, "__name__", "up")],
        hints: None,
    };
    let prometheus_read = format!("{}/api/v1/read", f.prometheus.url());
    wait_until(Duration::from_secs(30), || {
        read(&prometheus_read, RemoteReadConfig::samples_only(), &up)
            .values()
            .any(|s| s.len() >= 4)
    });
    let end = promgate::time::now_ms() - 1_500;
    let cases: Vec<(&str, Vec<LabelMatcher>)> = vec![
        ("equality", vec![matcher(MatcherType::Eq, "__name__", "up")]),
        (
            "anchored regex on the name",
            vec![matcher(
                MatcherType::Re,
                "__name__",
                "prometheus_http_requests_total|up",
            )],
        ),
        (
            "a regex that InfluxDB alone would take as a substring",
            vec![matcher(MatcherType::Re, "__name__", "u")],
        ),
        (
            "negative matchers",
            vec![
                matcher(
                    MatcherType::Eq,
                    "__name__",
                    "prometheus_http_requests_total",
                ),
                matcher(MatcherType::Neq, "handler", "/metrics"),
                matcher(MatcherType::Nre, "code", "5.."),
            ],
        ),
        (
            "empty matchers: a missing label is empty, a present one is not",
            vec![
                matcher(
                    MatcherType::Re,
                    "__name__",
                    "up|prometheus_http_requests_total",
                ),
                matcher(MatcherType::Eq, "nonexistent", ""),
                matcher(MatcherType::Re, "handler", "|/metrics"),
            ],
        ),
        (
            "a regex matching the empty string",
            vec![
                matcher(
                    MatcherType::Eq,
                    "__name__",
                    "prometheus_http_requests_total",
                ),
                matcher(MatcherType::Re, "handler", ".*query.*"),
            ],
        ),
    ];
    for (what, matchers) in cases {
        let query = Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers,
            hints: None,
        };
        let from_prometheus = read(&prometheus_read, RemoteReadConfig::samples_only(), &query);
        // An unanchored "u" would match `up` in InfluxDB; in PromQL it matches nothing.
        let substring = what.starts_with("a regex that InfluxDB");
        assert_eq!(
            from_prometheus.is_empty(),
            substring,
            "{what}: {from_prometheus:?}"
        );
        // Remote write may trail by a batch: wait until InfluxDB holds the whole range.
        let mut through_promgate = ReadMap::new();
        for response in [
            RemoteReadConfig::default(),
            RemoteReadConfig::samples_only(),
        ] {
            wait_until(Duration::from_secs(20), || {
                through_promgate = read(&f.gateway.url("/api/v1/read"), response.clone(), &query);
                through_promgate == from_prometheus
            });
        }
        assert_eq!(through_promgate, from_prometheus, "{what}");
    }
}

fn data(v: &Value) -> Vec<Value> {
    assert_eq!(v["status"], "success", "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

#[test]
fn series_labels_and_values_come_from_influx() {
    let f = fixture();
    let prometheus = |path: &str| common::get_json(&format!("{}{path}", f.prometheus.url())).1;
    let selector = enc(r#"prometheus_http_requests_total{handler=~"/api/v1/.+"}"#);
    let start = promgate::time::now_ms() / 1000 - 600;
    let q = format!("match[]={selector}&start={start}");
    wait_until(Duration::from_secs(20), || {
        !data(&f.gateway.get_json(&format!("/api/v1/series?{q}")).1).is_empty()
    });
    // The series Prometheus holds, with its external labels, as InfluxDB got them.
    let ours = data(&f.gateway.get_json(&format!("/api/v1/series?{q}")).1);
    let mut theirs = data(&prometheus(&format!("/api/v1/series?{q}")));
    for s in &mut theirs {
        s["cluster"] = "eu1".into();
        s["replica"] = "a".into();
    }
    let sort = |mut v: Vec<Value>| {
        v.sort_by_key(|s| s.to_string());
        v
    };
    // Remote write sends a series once it has a sample: compare once both agree.
    let mut ours = sort(ours);
    let theirs = sort(theirs);
    wait_until(Duration::from_secs(20), || {
        ours = sort(data(&f.gateway.get_json(&format!("/api/v1/series?{q}")).1));
        ours == theirs
    });
    assert_eq!(ours, theirs);

    let names = data(&f.gateway.get_json(&format!("/api/v1/labels?{q}")).1);
    for name in ["__name__", "cluster", "code", "handler", "instance", "job"] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    let handlers = data(
        &f.gateway
            .get_json(&format!("/api/v1/label/handler/values?{q}"))
            .1,
    );
    assert!(!handlers.is_empty());
    assert!(
        handlers
            .iter()
            .all(|h| h.as_str().is_some_and(|h| h.starts_with("/api/v1/"))),
        "{handlers:?}"
    );
}

#[test]
fn queries_over_influx_equal_the_prometheus_that_wrote_the_data() {
    let f = fixture();
    let prometheus = |path: &str| common::get_json(&format!("{}{path}", f.prometheus.url())).1;
    // Ten seconds of scrapes, then a window that ended two seconds ago.
    wait_until(Duration::from_secs(40), || {
        let v = prometheus("/api/v1/query?query=count_over_time(up[1m])");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .is_some_and(|n| n.parse::<f64>().unwrap_or(0.0) >= 10.0)
    });
    let end = promgate::time::now_ms() / 1000 - 2;
    let start = end - 7;
    for q in [
        "up",
        "count_over_time(up[5s])",
        "max_over_time(scrape_samples_scraped[3s])",
        "sum by (job) (rate(prometheus_http_requests_total[4s]))",
    ] {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=1",
            enc(q)
        );
        let theirs = prometheus(&path);
        let mut ours = Value::Null;
        // The last of it may still be on its way to InfluxDB.
        wait_until(Duration::from_secs(20), || {
            ours = f.gateway.get_json(&path).1;
            // The external labels remote write stored with the series are ordinary labels
            // here; Prometheus's own query API leaves them out.
            if let Some(series) = ours["data"]["result"].as_array_mut() {
                for s in series {
                    if let Some(m) = s["metric"].as_object_mut() {
                        m.remove("cluster");
                        m.remove("replica");
                    }
                }
            }
            ours["data"] == theirs["data"]
        });
        assert_eq!(ours["status"], "success", "{q}: {ours}");
        assert_eq!(ours["data"], theirs["data"], "{q}");
    }
}
