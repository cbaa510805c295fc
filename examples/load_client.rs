//! A closed-loop HTTP load client for promgate's soak runs (`benches/soak.sh`): CONCURRENCY
//! clients each send GETs of the given URLs in turn for DURATION, and it prints what came
//! back: counts by status, latency percentiles of the 200s, and the failures (connection
//! errors, statuses other than 200, 429 and 503, and 429/503 answers that are not
//! Prometheus's error JSON). Exits 1 when there was any failure.
//!
//! `cargo run --release --example load_client -- --concurrency 16 --duration 60 URL...`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser, Debug)]
struct Args {
    /// Clients sending at once, each waiting for its answer before the next request.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Milliseconds a client waits after a 429 or 503 before its next request.
    #[arg(long, default_value_t = 50)]
    backoff_ms: u64,
    /// URLs to GET, taken in turn.
    #[arg(required = true)]
    urls: Vec<String>,
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    ok_latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (status, n) in other.by_status {
            *self.by_status.entry(status).or_default() += n;
        }
        self.ok_latencies.extend(other.ok_latencies);
        self.failures.extend(other.failures);
    }
}

/// Whether a 429/503 body is Prometheus's error JSON.
fn is_prometheus_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
        v["status"] == "error" && v["errorType"].is_string() && v["error"].is_string()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut uris = Vec::new();
    for url in &args.urls {
        match url.parse::<http::Uri>() {
            Ok(uri) => uris.push(uri),
            Err(e) => {
                eprintln!("{url}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http::<Empty<Bytes>>();
    let until = Instant::now() + Duration::from_secs(args.duration);
    let backoff = Duration::from_millis(args.backoff_ms);
    let started = Instant::now();
    let clients: Vec<_> = (0..args.concurrency)
        .map(|c| {
            let client = client.clone();
            let uris = uris.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut next = c % uris.len();
                while Instant::now() < until {
                    let uri = uris[next].clone();
                    next = (next + 1) % uris.len();
                    let sent = Instant::now();
                    let resp = match client.get(uri.clone()).await {
                        Ok(resp) => resp,
                        Err(e) => {
                            tally.failures.push(format!("GET {uri}: {e:?}"));
                            continue;
                        }
                    };
                    let status = resp.status().as_u16();
                    let body = match resp.into_body().collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => {
                            tally.failures.push(format!("reading {uri}: {e:?}"));
                            continue;
                        }
                    };
                    *tally.by_status.entry(status).or_default() += 1;
                    match status {
                        200 => tally.ok_latencies.push(sent.elapsed()),
                        429 | 503 if is_prometheus_error(&body) => {
                            tokio::time::sleep(backoff).await
                        }
                        _ => tally.failures.push(format!(
                            "{uri}: {status} {}",
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        )),
                    }
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for c in clients {
        match c.await {
            Ok(t) => tally.merge(t),
            Err(e) => tally.failures.push(format!("client task: {e}")),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tally.ok_latencies.sort();
    let total: u64 = tally.by_status.values().sum();
    let statuses: Vec<String> = tally
        .by_status
        .iter()
        .map(|(s, n)| format!("{s}={n}"))
        .collect();
    println!(
        "requests {total} ({:.1}/s), statuses {}, 200 latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, failures {}",
        total as f64 / elapsed,
        statuses.join(" "),
        percentile(&tally.ok_latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&tally.ok_latencies, 0.99).as_secs_f64() * 1e3,
        tally
            .ok_latencies
            .last()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3,
        tally.failures.len()
    );
    for f in tally.failures.iter().take(5) {
        println!("failure: {f}");
    }
    if tally.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
