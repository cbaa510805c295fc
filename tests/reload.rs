//! Reloading the configuration at run time: backends added and removed, a broken file that
//! leaves the running configuration in force, reloads by file change and by SIGHUP, and
//! queries racing reloads that all succeed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Gateway, PromgateProcess, enc, http, http_get, wait_until};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, free_port};
use serde_json::Value;

fn server(cluster: &str) -> PrometheusServer {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let spec = SynthSpec::hours_until(promgate::time::now_ms() - 10 * 60_000, 2);
    PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .labels(&[("cluster", cluster), ("replica", "a")])
            .data(openmetrics(&spec)),
    )
    .unwrap()
}

fn config_text(backends: &[(&str, &PrometheusServer)], extra: &str) -> String {
    let mut text = format!("{extra}[query]\nreplica_labels = [\"replica\"]\n");
    for (name, s) in backends {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
            s.url()
        ));
    }
    text
}

/// Writes the file in one step (rename), as config managers do.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const CLUSTERS: &str = "/api/v1/query?query=count%20by%20(cluster)%20(last_over_time(demo_temperature_celsius%5B1h%5D))";

fn clusters(answer: &Value) -> Vec<String> {
    let mut out: Vec<String> = answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result in {answer}"))
        .iter()
        .map(|s| s["metric"]["cluster"].as_str().unwrap_or("").to_string())
        .collect();
    out.sort();
    out
}

fn reload(gw: &Gateway) -> (u16, String) {
    let r = http("POST", &gw.url("/-/reload"), &[], b"").unwrap();
    (r.status, r.text())
}

#[test]
fn backends_are_added_and_removed_and_a_broken_file_keeps_the_old_config() {
    let eu1 = server("eu1");
    let us1 = server("us1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    // File watching off: each step below reloads explicitly.
    let no_watch = "[server]\nwatch_config = false\n";
    write_config(&path, &config_text(&[("eu1", &eu1)], no_watch));
    let gw = Gateway::start(&path);
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["eu1"]);

    write_config(
        &path,
        &config_text(&[("eu1", &eu1), ("us1", &us1)], no_watch),
    );
    assert_eq!(reload(&gw).0, 200);
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["eu1", "us1"]);

    write_config(&path, &config_text(&[("us1", &us1)], no_watch));
    assert_eq!(reload(&gw).0, 200);
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["us1"]);
    assert!(gw.metric("promgate_backend_up{backend=\"eu1\"}").is_none());

    std::fs::write(&path, "[[backend]]\nname = \"x\"\nurl = \"nowhere\"\n").unwrap();
    let (status, body) = reload(&gw);
    assert_eq!(status, 500);
    assert!(
        body.contains("backend[0].kind") || body.contains("missing field"),
        "{body}"
    );
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["us1"]);
    assert_eq!(
        gw.metric("promgate_config_last_reload_successful")
            .as_deref(),
        Some("promgate_config_last_reload_successful 0")
    );

    write_config(
        &path,
        &config_text(&[("eu1", &eu1), ("us1", &us1)], no_watch),
    );
    assert_eq!(reload(&gw).0, 200);
    assert_eq!(
        gw.metric("promgate_config_last_reload_successful")
            .as_deref(),
        Some("promgate_config_last_reload_successful 1")
    );
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["eu1", "us1"]);
}

#[test]
fn a_changed_file_is_picked_up_without_being_asked() {
    let eu1 = server("eu1");
    let us1 = server("us1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    write_config(&path, &config_text(&[("eu1", &eu1)], ""));
    let gw = Gateway::start(&path);
    assert_eq!(clusters(&gw.get_json(CLUSTERS).1), vec!["eu1"]);
    write_config(&path, &config_text(&[("eu1", &eu1), ("us1", &us1)], ""));
    wait_until(Duration::from_secs(10), || {
        clusters(&gw.get_json(CLUSTERS).1) == ["eu1", "us1"]
    });
}

#[test]
fn queries_racing_reloads_all_succeed() {
    let eu1 = server("eu1");
    let us1 = server("us1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    let no_watch = "[server]\nwatch_config = false\n";
    let a = config_text(&[("eu1", &eu1), ("us1", &us1)], no_watch);
    // Same servers under other names: every backend is replaced on each swap.
    let b = config_text(&[("eu1-bis", &eu1), ("us1-bis", &us1)], no_watch);
    write_config(&path, &a);
    let gw = Gateway::start(&path);
    let url = gw.url(&format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        enc("sum by (cluster) (rate(demo_requests_total[5m]))"),
        promgate::time::now_ms() / 1000 - 3600,
        promgate::time::now_ms() / 1000 - 600,
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || done < 10 {
                    let r = http_get(&url).unwrap();
                    let v = r.json().unwrap();
                    assert_eq!(r.status, 200, "{v}");
                    assert!(v.get("warnings").is_none(), "{v}");
                    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
                    done += 1;
                }
                done
            })
        })
        .collect();
    for i in 0..20 {
        write_config(&path, if i % 2 == 0 { &b } else { &a });
        assert_eq!(reload(&gw).0, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(total >= 40, "{total} queries");
}

#[test]
fn sighup_reloads_and_sigterm_stops_the_binary() {
    let eu1 = server("eu1");
    let us1 = server("us1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    let no_watch = "[server]\nwatch_config = false\n";
    write_config(&path, &config_text(&[("eu1", &eu1)], no_watch));
    let mut promgate = PromgateProcess::start(&path);
    let url = format!("{}{CLUSTERS}", promgate.base);
    assert_eq!(clusters(&common::get_json(&url).1), vec!["eu1"]);
    write_config(
        &path,
        &config_text(&[("eu1", &eu1), ("us1", &us1)], no_watch),
    );
    promgate.signal("HUP");
    wait_until(Duration::from_secs(10), || {
        clusters(&common::get_json(&url).1) == ["eu1", "us1"]
    });
    promgate.signal("TERM");
    let status = promgate.wait();
    assert!(status.success(), "{status}");
}

#[test]
fn a_backend_down_at_start_joins_when_it_comes_up() {
    let eu1 = server("eu1");
    let late_port = free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    let mut text = config_text(&[("eu1", &eu1)], "[server]\nwatch_config = false\n");
    text.push_str(&format!(
        "[[backend]]\nname = \"us1\"\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:{late_port}\"\n"
    ));
    write_config(&path, &text);
    let gw = Gateway::start(&path);
    let (status, answer) = gw.get_json(CLUSTERS);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(clusters(&answer), vec!["eu1"]);
    let warning = answer["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.starts_with("backend \"us1\": external labels unknown"),
        "{answer}"
    );

    let bin = PrometheusBinary::any().unwrap();
    let spec = SynthSpec::hours_until(promgate::time::now_ms() - 10 * 60_000, 2);
    let mut options = PrometheusOptions::default()
        .labels(&[("cluster", "us1"), ("replica", "a")])
        .data(openmetrics(&spec));
    options.port = Some(late_port);
    let _us1 = PrometheusServer::start(&bin, options).unwrap();
    wait_until(Duration::from_secs(15), || {
        let (_, answer) = gw.get_json(CLUSTERS);
        clusters(&answer) == ["eu1", "us1"] && answer.get("warnings").is_none()
    });
}
