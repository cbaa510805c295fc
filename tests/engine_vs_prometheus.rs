//! promgate's PromQL engine against Prometheus 3.5 on the same data: several hundred
//! generated queries, each as instant queries at edges of the data and on and off its samples
//! and as range queries over several steps and spans, evaluated by the engine
//! over the Prometheus's raw data (remote read through the merged store) and by the
//! Prometheus itself. Both must give the same result type, the same series, the same
//! timestamps and values within a relative 1e-9; both failing counts as agreement.

// Helpers live beside this file; a crate root looks for modules next to itself.
#[path = "engine_vs_prometheus/compare.rs"]
mod compare;
#[path = "engine_vs_prometheus/data.rs"]
mod data;
#[path = "engine_vs_prometheus/queries.rs"]
mod queries;

use std::sync::Arc;
use std::time::Instant;

use data::{SPAN_MS, T0_MS, at};
use promgate::backend::Topology;
use promgate::backend::client::http_client;
use promgate::promql::engine::{Engine, EngineOptions};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, http_get};
use promgate::storage::MergedStore;
use promgate::telemetry::Metrics;

/// Instant query times: before the data, on its first sample, on and off samples inside it,
/// on its last sample, and after it (within and beyond the 5 min lookback).
fn instant_times() -> Vec<i64> {
    vec![
        T0_MS - 60_000,
        at(0),
        at(0) + 60_000,
        T0_MS + 1_200_000,
        at(120),
        T0_MS + 3_600_000,
        at(250),
        T0_MS + 5_000_500,
        at(420),
        T0_MS + SPAN_MS - 7_000,
        at(599),
        T0_MS + SPAN_MS + 200_000,
        T0_MS + SPAN_MS + 400_000,
    ]
}

/// Range queries as `(start, end, step)`, all in ms: over the whole data at the scrape
/// interval, past both of its ends by the minute, and off every grid.
fn ranges() -> Vec<(i64, i64, i64)> {
    vec![
        (T0_MS, T0_MS + SPAN_MS, 15_000),
        (T0_MS - 600_000, T0_MS + SPAN_MS + 600_000, 60_000),
        (T0_MS + 123_000, T0_MS + 8_000_000, 97_000),
        (at(10), at(590), 15_000),
    ]
}

/// Seconds with milliseconds, as the HTTP API takes times.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Prometheus's answer to an API path, as an outcome.
fn prometheus(base: &str, path: &str, keep_order: bool) -> compare::Outcome {
    let response = http_get(&format!("{base}{path}")).map_err(|e| format!("GET {path}: {e}"))?;
    let body = response
        .json()
        .map_err(|e| format!("GET {path}: status {}: {e}", response.status))?;
    compare::from_json(&body, keep_order)
}

/// How a query is evaluated.
#[derive(Debug, Clone, Copy)]
enum Steps {
    Instant(i64),
    Range(i64, i64, i64),
}

struct Subject {
    engine: Engine,
    store: MergedStore,
    rt: tokio::runtime::Runtime,
    base: String,
}

impl Subject {
    /// The engine's answer rendered in Prometheus's JSON, as an outcome.
    fn ours(&self, query: &str, steps: Steps, keep_order: bool) -> compare::Outcome {
        let expr = promql_parser::parser::parse(query).map_err(|e| format!("parse: {e}"))?;
        let (result, at) = self.rt.block_on(async {
            match steps {
                Steps::Instant(t) => (self.engine.query_instant(&self.store, &expr, t).await, t),
                Steps::Range(start, end, step) => (
                    self.engine
                        .query_range(&self.store, &expr, start, end, step)
                        .await,
                    start,
                ),
            }
        });
        let out = result.map_err(|e| format!("{e:?}"))?;
        let body = promgate::api::json::success(&out.warnings, &out.infos, |buf| {
            promgate::api::engine_json::write_engine_value(buf, &out.value, at)
        });
        let body: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("engine JSON: {e}"))?;
        compare::from_json(&body, keep_order)
    }

    fn theirs(&self, query: &str, steps: Steps, keep_order: bool) -> compare::Outcome {
        let path = match steps {
            Steps::Instant(t) => format!("/api/v1/query?query={}&time={}", enc(query), secs(t)),
            Steps::Range(start, end, step) => format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={}",
                enc(query),
                secs(start),
                secs(end),
                secs(step)
            ),
        };
        prometheus(&self.base, &path, keep_order)
    }
}

#[test]
fn engine_answers_generated_queries_as_prometheus_does() {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let server =
        PrometheusServer::start(&bin, PrometheusOptions::default().data(data::openmetrics()))
            .expect("Prometheus with the backfilled data");
    let config = promgate::config::Config::parse(&format!(
        "[[backend]]\nname = \"prometheus\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
        server.url()
    ))
    .expect("valid config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(async {
        let topology = Topology::build(config, None, &http_client(), &Metrics::new());
        MergedStore::new(Arc::new(topology), false)
    });
    let subject = Subject {
        engine: Engine::new(EngineOptions::default()),
        store,
        rt,
        base: server.url(),
    };

    let began = Instant::now();
    let queries = queries::all();
    let (times, ranges) = (instant_times(), ranges());
    let mut mismatches = Vec::new();
    let (mut evaluations, mut failed, mut empty) = (0, 0, 0);
    for query in &queries {
        let instants = times.iter().map(|t| Steps::Instant(*t));
        let ranged = ranges
            .iter()
            .map(|(s, e, step)| Steps::Range(*s, *e, *step));
        for steps in instants.chain(ranged) {
            // Only an instant vector has an order of its own; a matrix is sorted by labels.
            let keep_order = matches!(steps, Steps::Instant(_))
                && (query.starts_with("sort(") || query.starts_with("sort_desc("));
            evaluations += 1;
            let ours = subject.ours(query, steps, keep_order);
            let theirs = subject.theirs(query, steps, keep_order);
            match &theirs {
                Err(_) => failed += 1,
                Ok(a) if a.is_empty() => empty += 1,
                Ok(_) => {}
            }
            if let Some(d) = compare::diff(&ours, &theirs) {
                mismatches.push(format!("{query}  [{steps:?}]\n    {d}"));
            }
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    println!(
        "{} of {evaluations} evaluations agree ({} queries, each at {} instants and over {} ranges; \
         Prometheus failed {failed} and answered {empty} empty) in {:?}",
        evaluations - mismatches.len(),
        queries.len(),
        times.len(),
        ranges.len(),
        began.elapsed()
    );
    // Agreement on errors and empty answers proves little: most answers must hold data.
    assert!(
        failed + empty < evaluations / 4,
        "too few answers with data"
    );
    assert!(
        mismatches.is_empty(),
        "{} evaluations disagree",
        mismatches.len()
    );
}
