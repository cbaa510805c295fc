//! The binary's life: SIGTERM lets a request in flight finish before the process exits.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, wait_until};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, free_port};

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
    let port = free_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_promgate"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(15), || {
        http_get(&format!("{base}/-/ready")).is_ok_and(|r| r.status == 200)
    });

    // The backend hangs: the query is in flight until the backend's 2 s timeout.
    backend.suspend();
    let url = format!("{base}/api/v1/query?query=up");
    let in_flight = std::thread::spawn(move || http_get(&url));
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    let answer = in_flight
        .join()
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json().unwrap()["errorType"], "timeout");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    backend.resume();
}
