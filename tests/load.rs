//! promgate under load in front of a real Prometheus: ten times more clients than request
//! slots, a reload adding and then removing a backend in the middle. Every answer is data or
//! Prometheus's overload error, the slots bound what is served at once, and the bounds on
//! latency and memory are the ones the configuration sets (not performance targets).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Gateway, enc};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};

/// Request slots, and ten clients for each.
const SLOTS: usize = 4;
const CLIENTS: usize = 10 * SLOTS;
const QUEUE: usize = 4;
const QUEUE_TIMEOUT: Duration = Duration::from_millis(500);
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RESPONSE_BYTES: u64 = 8 << 20;
const LOAD: Duration = Duration::from_secs(6);

/// How long an answer may take beyond the configured bounds: encoding it, writing it, the
/// client noticing it on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(2);

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

fn config_text(backends: &[(&str, &PrometheusServer)]) -> String {
    let mut text = format!(
        "[server]\nwatch_config = false\nmax_concurrent_requests = {SLOTS}\n\
         max_queued_requests = {QUEUE}\nqueue_timeout = \"{}ms\"\n\
         [query]\nreplica_labels = [\"replica\"]\ntimeout = \"{}s\"\n",
        QUEUE_TIMEOUT.as_millis(),
        QUERY_TIMEOUT.as_secs()
    );
    for (name, s) in backends {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{}\"\n\
             max_response_bytes = {MAX_RESPONSE_BYTES}\n",
            s.url()
        ));
    }
    text
}

fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Resident memory of this process (promgate runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// What one request came to.
#[derive(Debug)]
enum Outcome {
    Data(Duration),
    Shed(Duration),
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn get(client: &HttpClient, url: &str) -> Result<(u16, Option<String>, Bytes), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let resp = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading body of {url}: {e:?}"))?
        .to_bytes();
    Ok((status, retry_after, body))
}

/// One query's answer judged: data, or shedding in Prometheus's format; anything else is a
/// failure of the test.
async fn one_query(client: &HttpClient, url: &str) -> Result<Outcome, String> {
    let started = Instant::now();
    let (status, retry_after, body) = get(client, url).await?;
    let took = started.elapsed();
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("status {status}, not JSON ({e}): {body:?}"))?;
    match status {
        200 => {
            let result = json["data"]["result"].as_array();
            if json["status"] != "success" || result.is_none_or(|r| r.is_empty()) {
                return Err(format!("200 without data: {json}"));
            }
            Ok(Outcome::Data(took))
        }
        503 | 429 => {
            let message = json["error"].as_str().unwrap_or_default();
            let shed = json["status"] == "error"
                && json["errorType"] == "unavailable"
                && retry_after.as_deref() == Some("1")
                && (message.starts_with("too many concurrent requests")
                    || message.starts_with("too many requests from this client"));
            if !shed {
                return Err(format!("{status} that is not shedding: {json}"));
            }
            Ok(Outcome::Shed(took))
        }
        other => Err(format!("unexpected status {other}: {json}")),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[test]
fn ten_clients_per_slot_get_data_or_shedding_and_a_reload_loses_nothing() {
    let eu1 = server("eu1");
    let us1 = server("us1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("promgate.toml");
    write_config(&path, &config_text(&[("eu1", &eu1)]));
    let gw = Gateway::start(&path);
    let now = promgate::time::now_ms() / 1000;
    let url = gw.url(&format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=30",
        enc("sum by (cluster, instance) (rate(demo_requests_total[5m]))"),
        now - 2 * 3600,
        now - 600,
    ));
    let metrics_url = gw.url("/metrics");
    let reload_url = gw.url("/-/reload");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS * 2)
        .build_http();

    // Warm up (connections, first queries, allocator pools) before the memory baseline.
    rt.block_on(async {
        for _ in 0..20 {
            one_query(&client, &url).await.unwrap();
        }
    });
    let rss_before = rss_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let (outcomes, in_flight_max, reloads) = rt.block_on(async {
        let sampler = {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut max = 0.0f64;
                let mut samples = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, _, body) = get(&client, &metrics_url).await.unwrap();
                    assert_eq!(status, 200, "/metrics is never shed");
                    let text = String::from_utf8_lossy(&body);
                    let value = text
                        .lines()
                        .find_map(|l| l.strip_prefix("promgate_http_requests_in_flight "))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .expect("promgate_http_requests_in_flight on /metrics");
                    max = max.max(value);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (max, samples)
            })
        };
        let reloader = {
            let client = client.clone();
            let path = path.clone();
            let (one, two) = (
                config_text(&[("eu1", &eu1), ("us1", &us1)]),
                config_text(&[("eu1", &eu1)]),
            );
            tokio::spawn(async move {
                let mut done = 0;
                for text in [one, two] {
                    tokio::time::sleep(LOAD / 3).await;
                    write_config(&path, &text);
                    let req = hyper::Request::post(reload_url.as_str())
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let resp = client.request(req).await.unwrap();
                    assert_eq!(resp.status(), 200, "reload");
                    done += 1;
                }
                done
            })
        };
        let started = Instant::now();
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while started.elapsed() < LOAD {
                        let outcome = one_query(&client, &url).await;
                        if matches!(outcome, Ok(Outcome::Shed(_))) {
                            // As a client honouring Retry-After would, only sooner.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for w in workers {
            outcomes.extend(w.await.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        let (in_flight_max, samples) = sampler.await.unwrap();
        assert!(samples > 10, "{samples} samples of /metrics");
        (outcomes, in_flight_max, reloader.await.unwrap())
    });
    let rss_after = rss_bytes();

    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failures.len(),
        outcomes.len(),
        failures.first()
    );
    let mut admitted: Vec<Duration> = Vec::new();
    let mut shed: Vec<Duration> = Vec::new();
    for o in outcomes.into_iter().flatten() {
        match o {
            Outcome::Data(d) => admitted.push(d),
            Outcome::Shed(d) => shed.push(d),
        }
    }
    admitted.sort();
    shed.sort();
    let p99 = percentile(&admitted, 0.99);
    eprintln!(
        "load: {} answered with data, {} shed, in flight at most {in_flight_max}, \
         admitted p50 {:?} p99 {:?} max {:?}, shed max {:?}, RSS {} -> {} MiB, {reloads} reloads",
        admitted.len(),
        shed.len(),
        percentile(&admitted, 0.5),
        p99,
        admitted.last().copied().unwrap_or_default(),
        shed.last().copied().unwrap_or_default(),
        rss_before >> 20,
        rss_after >> 20,
    );
    assert_eq!(reloads, 2);
    assert!(!admitted.is_empty(), "some queries were answered");
    assert!(
        !shed.is_empty(),
        "{CLIENTS} clients on {SLOTS} slots: some were shed"
    );
    assert!(
        in_flight_max <= SLOTS as f64,
        "{in_flight_max} in flight with {SLOTS} slots"
    );
    assert!(in_flight_max >= 1.0, "the in-flight gauge moved");
    // A request waits at most queue_timeout for its slot, then at most query.timeout.
    let admitted_bound = QUEUE_TIMEOUT + QUERY_TIMEOUT + SLACK;
    assert!(p99 <= admitted_bound, "p99 {p99:?} > {admitted_bound:?}");
    let shed_bound = QUEUE_TIMEOUT + SLACK;
    let slowest_shed = shed.last().copied().unwrap_or_default();
    assert!(
        slowest_shed <= shed_bound,
        "a shed answer took {slowest_shed:?} > {shed_bound:?}"
    );
    // What promgate may hold at once: an answer of at most max_response_bytes per request
    // in a slot or the queue, decoded and re-encoded (four copies), over a baseline.
    let ceiling = (SLOTS + QUEUE) as u64 * MAX_RESPONSE_BYTES * 4 + (64 << 20);
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth <= ceiling,
        "RSS grew {} MiB, more than {} MiB",
        growth >> 20,
        ceiling >> 20
    );
}
