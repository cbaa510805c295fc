//! The failure promgate exists to fix, reproduced with the real parts: Prometheus 2.42 with
//! remote_read to an InfluxDB. While InfluxDB refuses connections Prometheus still answers
//! from local data with a warning; while it hangs, every query waits for the remote read's
//! timeout, and a client that waits less gets a 503 and loses the local data too.

mod common;

use std::time::{Duration, Instant};

use common::{enc, get_json, wait_until};
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
