//! The failure promgate exists to fix, reproduced with the real parts: Prometheus 2.42 with
//! remote_read to an InfluxDB. While InfluxDB refuses connections Prometheus still answers
//! from local data with a warning; while it hangs, every query waits for the remote read's
//! timeout, and a client that waits less gets a 503 and loses the local data too.
//!
//! Then the same parts behind promgate, which reads InfluxDB itself (the Prometheus only
//! remote-writes into it): while InfluxDB hangs, answers come with the Prometheus's data and
//! a warning; after a few timeouts the breaker opens and answers are fast again; when
//! InfluxDB is back the breaker closes and its data is in the answers once more.

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, enc, get_json, wait_until};
use promgate::realenv::{InfluxServer, PrometheusBinary, PrometheusOptions, PrometheusServer};

#[test]
fn prometheus_blocks_on_a_hung_remote_read_store() {
    let mut influx =
        InfluxServer::start("prometheus").expect("InfluxDB (bash .ci/run installs it)");
    let bin = PrometheusBinary::v2().expect("Prometheus 2.42 (bash .ci/run installs it)");
    let mut options = PrometheusOptions::default()
        .labels(&[("cluster", "eu1"), ("replica", "a")])
        .scrape_self(Duration::from_secs(1));
    options.extra_config = format!(
        "remote_write:\n  - url: {}\nremote_read:\n  - url: {}\n    read_recent: true\n    remote_timeout: 4s\n",
        influx.write_url("prometheus"),
        influx.read_url("prometheus"),
    );
    let prometheus = PrometheusServer::start(&bin, options).unwrap();
    let query = |extra: &str| {
        let url = format!(
            "{}/api/v1/query?query={}{extra}",
            prometheus.url(),
            enc("up")
        );
        let started = Instant::now();
        let answer = get_json(&url);
        (answer, started.elapsed())
    };
    wait_until(Duration::from_secs(20), || {
        let ((status, v), _) = query("");
        status == 200 && !v["data"]["result"].as_array().is_none_or(Vec::is_empty)
    });

    // Hung store: the query waits for remote_timeout before answering...
    influx.suspend();
    // A read may still meet a connection InfluxDB had just closed (an error, answered at
    // once); a few tries show the hang.
    let waited = (0..3)
        .map(|_| query(""))
        .find(|(_, took)| *took >= Duration::from_secs(3));
    let ((status, v), _) = waited.expect("no query waited for the hung store");
    assert_eq!(status, 200, "{v}");
    // ...and a client with a shorter timeout loses the local data as well.
    let timed_out = (0..3)
        .map(|_| query("&timeout=1s"))
        .find(|((status, _), _)| *status == 503);
    let ((_, v), _) = timed_out.expect("no query timed out on the hung store");
    assert_eq!(v["errorType"], "timeout", "{v}");
    influx.resume();

    // A store that refuses connections: local data and a warning.
    influx.kill();
    let ((status, v), took) = query("");
    assert_eq!(status, 200, "{v}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(!v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["warnings"].to_string().contains("remote"), "{v}");
}

#[test]
fn promgate_keeps_answering_while_the_store_hangs() {
    let influx = InfluxServer::start("prometheus").expect("InfluxDB (bash .ci/run installs it)");
    let bin = PrometheusBinary::v2().expect("Prometheus 2.42 (bash .ci/run installs it)");
    let mut options = PrometheusOptions::default()
        .labels(&[("cluster", "eu1"), ("replica", "a")])
        .scrape_self(Duration::from_secs(1));
    options.extra_config = format!(
        "remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 1s}}\n",
        influx.write_url("prometheus"),
    );
    let prometheus = PrometheusServer::start(&bin, options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[query]\nreplica_labels = [\"replica\"]\n\
             [[backend]]\nname = \"eu1-a\"\nkind = \"prometheus\"\nurl = \"{}\"\n\
             [[backend]]\nname = \"lts\"\nkind = \"influx\"\nurl = \"{}\"\ndatabase = \"prometheus\"\n\
             timeout = \"2s\"\nretries = 0\n\
             breaker = {{ consecutive_failures = 2, cool_down = \"3s\", double_cool_down = false }}\n",
            prometheus.url(),
            influx.url(),
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config);
    let start = promgate::time::now_ms() / 1000 - 60;
    let series = || {
        let started = Instant::now();
        let (status, v) = gateway.get_json(&format!("/api/v1/series?match[]=up&start={start}"));
        assert_eq!(status, 200, "{v}");
        (v, started.elapsed())
    };
    let from_influx = |v: &serde_json::Value| v["warnings"].as_array().is_none_or(Vec::is_empty);
    // Both answer: the series once (replica label gone, the two sources merged).
    wait_until(Duration::from_secs(30), || {
        let (v, _) = series();
        from_influx(&v) && v["data"].as_array().is_some_and(|d| d.len() == 1)
    });

    influx.suspend();
    // The first reads wait for the backend's timeout, and answer without InfluxDB.
    let mut timed_out = 0;
    for _ in 0..2 {
        let (v, took) = series();
        assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");
        assert!(v["warnings"].to_string().contains("lts"), "{v}");
        assert!(took < Duration::from_secs(4), "took {took:?}");
        if took >= Duration::from_millis(1900) {
            timed_out += 1;
        }
    }
    assert!(timed_out >= 1, "no read waited for the hung store");
    // Now the breaker is open: every answer is fast, still with the warning.
    for _ in 0..5 {
        let (v, took) = series();
        assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");
        assert!(v["warnings"].to_string().contains("lts"), "{v}");
        assert!(
            took < Duration::from_millis(500),
            "took {took:?} with the breaker open"
        );
        let started = Instant::now();
        let (status, q) = gateway.get_json(&format!("/api/v1/query?query={}", enc("up")));
        assert_eq!(status, 200, "{q}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    let (_, backends) = gateway.get_json("/api/v1/status/backends");
    assert!(backends.to_string().contains("open"), "{backends}");

    // InfluxDB is back: after the cool-down a probe goes through and the breaker closes.
    influx.resume();
    wait_until(Duration::from_secs(20), || from_influx(&series().0));
    let (_, backends) = gateway.get_json("/api/v1/status/backends");
    let lts = backends["data"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == "lts"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(lts["breaker"]["state"], "closed", "{lts}");
}
