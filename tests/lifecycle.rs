//! The binary's life: SIGTERM lets a request in flight finish before the process exits, and
//! a server started on a port that another took first is not mistaken for that other one.

mod common;

use std::time::Duration;

use common::{PromgateProcess, http_get, run_promgate};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, on_free_port};

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

/// Tests start servers side by side, each on a port found free a moment earlier. When
/// another server binds that port first, its answers must not pass for the new server's:
/// the new one exits on the taken port and is started again on another.
#[test]
fn a_server_whose_port_was_taken_first_starts_again_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    std::fs::write(&config, "").unwrap();
    let first = PromgateProcess::start(&config);
    let taken: u16 = first.base.rsplit(':').next().unwrap().parse().unwrap();

    let log = dir.path().join("second.log");
    let mut ports = Vec::new();
    let (mut second, port) = on_free_port(&log, |free| {
        // The first try loses the race: its port is already the first server's.
        let port = if ports.is_empty() { taken } else { free };
        ports.push(port);
        Ok((run_promgate(&config, &log, port)?, port))
    })
    .expect("the second server started");

    assert_eq!(ports.len(), 2, "tries on ports {ports:?}");
    assert_ne!(port, taken);
    assert!(second.exited().is_none(), "the second server runs");
    let ready = http_get(&format!("http://127.0.0.1:{port}/-/ready")).unwrap();
    assert_eq!(ready.status, 200);
}
