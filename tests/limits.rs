//! Operator limits, each broken on purpose against a real Prometheus: the answer is
//! Prometheus's error JSON with the status Prometheus uses for the case, and what stays
//! within the limits is answered.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Gateway, enc, http, http_get, post_form};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use serde_json::Value;

/// A Prometheus with two hours of the synthetic data (four instances, 15 s apart).
fn server(bin: &PrometheusBinary) -> PrometheusServer {
    let spec = SynthSpec::hours_until(promgate::time::now_ms() - 10 * 60_000, 2);
    PrometheusServer::start(
        bin,
        PrometheusOptions::default()
            .labels(&[("cluster", "eu1"), ("replica", "a")])
            .data(openmetrics(&spec)),
    )
    .unwrap()
}

fn gateway(
    dir: &Path,
    prom: &PrometheusServer,
    server: &str,
    query: &str,
    backend: &str,
) -> Gateway {
    let path = dir.join("promgate.toml");
    let text = format!(
        "[server]\nwatch_config = false\n{server}\n[query]\nreplica_labels = [\"replica\"]\n{query}\n\
         [[backend]]\nname = \"eu1\"\nkind = \"prometheus\"\nurl = \"{}\"\n{backend}\n",
        prom.url()
    );
    std::fs::write(&path, text).unwrap();
    Gateway::start(&path)
}

/// Asserts Prometheus's error shape and returns the message.
fn error(status: u16, body: &Value, want_status: u16, want_type: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], want_type, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

fn range_path(query: &str, seconds: i64) -> String {
    let end = promgate::time::now_ms() / 1000 - 15 * 60;
    format!(
        "/api/v1/query_range?query={}&start={}&end={end}&step=15",
        enc(query),
        end - seconds
    )
}

#[test]
fn queries_over_the_samples_or_series_limits_are_execution_errors() {
    // Prometheus 2.x's answers are evaluated by promgate's engine, where these limits act.
    let bin = PrometheusBinary::v2().expect("Prometheus 2.42 installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        dir.path(),
        &prom,
        "",
        "max_samples = 500\nmax_series_per_select = 3",
        "",
    );

    let (status, body) = gw.get_json(&range_path(
        "demo_temperature_celsius{instance=\"i-0\"}",
        3600,
    ));
    let message = error(status, &body, 422, "execution");
    assert_eq!(
        message,
        "query processing would load too many samples into memory in query execution"
    );
    let (status, body) = gw.get_json(&range_path(
        "demo_temperature_celsius{instance=\"i-0\"}",
        600,
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        1,
        "{body}"
    );

    // The data ends ten minutes ago.
    let at = promgate::time::now_ms() / 1000 - 15 * 60;
    let (status, body) = gw.get_json(&format!(
        "/api/v1/query?query={}&time={at}",
        enc("max(demo_temperature_celsius)")
    ));
    let message = error(status, &body, 422, "execution");
    assert_eq!(
        message,
        "the selector demo_temperature_celsius matched 4 series, more than the limit of 3 \
         series per selector (query.max_series_per_select)"
    );
    let (status, body) = gw.get_json(&format!(
        "/api/v1/query?query={}&time={at}",
        enc("max(demo_temperature_celsius{instance=~\"i-[012]\"})")
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert!(
        gw.metric_value("promgate_query_paths_total{path=\"engine\"}") >= 2.0,
        "the engine answered"
    );
}

#[test]
fn long_queries_and_wide_ranges_are_bad_data() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        dir.path(),
        &prom,
        "",
        "max_query_length = 60\nmax_range = \"1h\"",
        "",
    );
    let long = format!(
        "demo_temperature_celsius{{instance=\"{}\"}}",
        "x".repeat(40)
    );
    assert_eq!(long.chars().count(), 77);
    let (status, body) = gw.get_json(&format!("/api/v1/query?query={}", enc(&long)));
    assert_eq!(
        error(status, &body, 400, "bad_data"),
        "invalid parameter \"query\": the expression is 77 characters long, more than the \
         limit of 60 (query.max_query_length)"
    );
    // POSTed forms too, and series selectors.
    let r = post_form(&gw.url("/api/v1/query"), &[("query", &long)]);
    error(r.status, &r.json().unwrap(), 400, "bad_data");
    let (status, body) = gw.get_json(&format!(
        "/api/v1/series?match[]={}&start=0&end=60",
        enc(&long)
    ));
    error(status, &body, 400, "bad_data");

    let (status, body) = gw.get_json(&range_path("demo_temperature_celsius", 2 * 3600));
    assert_eq!(
        error(status, &body, 400, "bad_data"),
        "invalid parameter \"end\": the time range (end - start) of 2h is wider than the \
         limit of 1h (query.max_range)"
    );
    let (status, body) = gw.get_json(&range_path("demo_temperature_celsius", 3600));
    assert_eq!(status, 200, "{body}");
    let now = promgate::time::now_ms() / 1000;
    let (status, body) = gw.get_json(&format!(
        "/api/v1/series?match[]=demo_temperature_celsius&start={}&end={now}",
        now - 7200
    ));
    error(status, &body, 400, "bad_data");
    // Without start and end a series request spans all time.
    let (status, body) = gw.get_json("/api/v1/series?match[]=demo_temperature_celsius");
    error(status, &body, 400, "bad_data");
    let (status, body) = gw.get_json(&format!(
        "/api/v1/series?match[]=demo_temperature_celsius&start={}&end={now}",
        now - 1800
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 4, "{body}");
}

#[test]
fn oversized_bodies_headers_and_backend_answers_are_refused() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        dir.path(),
        &prom,
        "max_request_body_bytes = 4096\nmax_header_bytes = \"8KiB\"",
        "partial_response = false",
        "max_response_bytes = 8000",
    );
    let big = format!("up or {}", "x".repeat(5000));
    let r = post_form(&gw.url("/api/v1/query"), &[("query", &big)]);
    let message = error(r.status, &r.json().unwrap(), 400, "bad_data");
    assert!(
        message.starts_with("error parsing form values"),
        "{message}"
    );

    let cookie = "c".repeat(16 << 10);
    let r = http(
        "GET",
        &gw.url("/api/v1/query?query=up"),
        &[("Cookie", &cookie)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 431, "{}", r.text());

    // One series fits in 8000 bytes, four with a range of points do not.
    let (status, body) =
        gw.get_json("/api/v1/query?query=demo_temperature_celsius%7Binstance%3D%22i-0%22%7D");
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw.get_json(&range_path("demo_temperature_celsius", 3600));
    let message = error(status, &body, 503, "unavailable");
    assert!(
        message.contains("response larger than max_response_bytes (8000 bytes)"),
        "{message}"
    );
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_health_checks_pass() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), &prom, "client_requests_per_second = 2", "", "");
    let url = gw.url("/api/v1/query?query=vector(1)");
    let mut refused = None;
    let mut served = 0;
    for _ in 0..20 {
        let r = http_get(&url).unwrap();
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        served += 1;
    }
    let r = refused.expect("a client sending 20 requests at once is limited to 2 a second");
    assert!(
        (1..=3).contains(&served),
        "{served} served before the limit"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    let message = error(r.status, &r.json().unwrap(), 429, "unavailable");
    assert!(
        message.contains("too many requests from this client"),
        "{message}"
    );
    for path in ["/-/healthy", "/-/ready", "/metrics"] {
        assert_eq!(http_get(&gw.url(path)).unwrap().status, 200, "{path}");
    }
    assert!(
        gw.metric_value("promgate_http_requests_refused_total{reason=\"rate_limited\"}") >= 1.0
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(http_get(&url).unwrap().status, 200, "the rate recovers");
}

#[test]
fn a_saturated_gateway_queues_then_sheds_and_still_answers_health_checks() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        dir.path(),
        &prom,
        "max_concurrent_requests = 1\nmax_queued_requests = 1\nqueue_timeout = \"300ms\"",
        "",
        "timeout = \"4s\"\nretries = 0",
    );
    // A suspended Prometheus holds the only slot until the backend timeout.
    prom.suspend();
    let url = gw.url("/api/v1/query?query=demo_temperature_celsius");
    let holder = {
        let url = url.clone();
        std::thread::spawn(move || http_get(&url).unwrap())
    };
    common::wait_until(Duration::from_secs(5), || {
        gw.metric_value("promgate_http_requests_in_flight") == 1.0
    });
    let started = Instant::now();
    let queued = {
        let url = url.clone();
        std::thread::spawn(move || (http_get(&url).unwrap(), Instant::now()))
    };
    common::wait_until(Duration::from_secs(5), || {
        gw.metric_value("promgate_http_requests_queued") == 1.0
    });
    let r = http_get(&url).unwrap();
    assert_eq!(r.header("retry-after"), Some("1"));
    let message = error(r.status, &r.json().unwrap(), 503, "unavailable");
    assert!(message.contains("the queue is full"), "{message}");

    let healthy_at = Instant::now();
    assert_eq!(http_get(&gw.url("/-/healthy")).unwrap().status, 200);
    assert_eq!(http_get(&gw.url("/metrics")).unwrap().status, 200);
    assert!(
        healthy_at.elapsed() < Duration::from_secs(2),
        "health checks do not queue"
    );

    let (r, done) = queued.join().unwrap();
    let message = error(r.status, &r.json().unwrap(), 503, "unavailable");
    assert!(message.contains("queue_timeout"), "{message}");
    assert!(
        done - started >= Duration::from_millis(300),
        "it waited its queue_timeout"
    );
    prom.resume();
    let held = holder.join().unwrap();
    assert!(held.status == 200 || held.status == 503, "{}", held.text());
    let r = http_get(&url).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        gw.metric_value("promgate_http_requests_refused_total{reason=\"queue_full\"}"),
        1.0
    );
    assert_eq!(
        gw.metric_value("promgate_http_requests_refused_total{reason=\"queue_timeout\"}"),
        1.0
    );
}

#[test]
fn limits_read_from_the_configuration_change_on_reload() {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let prom = server(&bin);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), &prom, "", "", "");
    let query = "/api/v1/query?query=vector(1)%20%2B%20vector(2)";
    let (status, body) = gw.get_json(query);
    assert_eq!(status, 200, "{body}");
    for _ in 0..5 {
        assert_eq!(http_get(&gw.url(query)).unwrap().status, 200);
    }

    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("[query]\n", "[query]\nmax_query_length = 10\n");
    let text = text.replace("[server]\n", "[server]\nclient_requests_per_second = 1\n");
    std::fs::write(&gw.config_path, text).unwrap();
    let r = http("POST", &gw.url("/-/reload"), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    let (status, body) = gw.get_json(query);
    let message = error(status, &body, 400, "bad_data");
    assert!(message.contains("more than the limit of 10"), "{message}");
    let r = http_get(&gw.url(query)).unwrap();
    error(r.status, &r.json().unwrap(), 429, "unavailable");
}
