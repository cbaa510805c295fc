//! The binary's life: SIGTERM lets a request in flight finish before the process exits.

mod common;

use std::time::Duration;

use common::{PromgateProcess, http_get};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};

#[test]
fn sigterm_drains_requests_in_flight() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let backend = PrometheusServer::start(
        &bin,
        PrometheusOptions::default().labels(&[("cluster", "eu1")]),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nshutdown_grace = \"10s\"\n[[backend]]\nname = \"slow\"\nkind = \"prometheus\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
            backend.url()
        ),
    )
    .unwrap();
    let mut promgate = PromgateProcess::start(&config);
    let base = promgate.base.clone();

    // The backend hangs: the query is in flight until the backend's 2 s timeout.
    backend.suspend();
    let url = format!("{base}/api/v1/query?query=up");
    let in_flight = std::thread::spawn(move || http_get(&url));
    std::thread::sleep(Duration::from_millis(500));
    promgate.signal("TERM");

    let answer = in_flight
        .join()
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json().unwrap()["errorType"], "timeout");
    let status = promgate.wait();
    assert!(status.success(), "{status}");
    backend.resume();
}
