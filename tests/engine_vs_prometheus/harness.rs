//! The comparison both engine tests run: every generated query at every instant and over
//! every range, through promgate's engine over some store and through a Prometheus holding
//! the same data.

use std::sync::Arc;
use std::time::Instant;

use super::compare;
use super::data::{SPAN_MS, T0_MS, at};
use super::queries;
use promgate::backend::Topology;
use promgate::backend::client::http_client;
use promgate::config::Config;
use promgate::promql::engine::{Engine, EngineOptions};
use promgate::realenv::http_get;
use promgate::storage::MergedStore;
use promgate::telemetry::Metrics;

/// Instant query times: before the data, on its first sample, on and off samples inside it,
/// on its last sample, and after it (within and beyond the 5 min lookback).
pub fn instant_times() -> Vec<i64> {
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
pub fn ranges() -> Vec<(i64, i64, i64)> {
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
pub enum Steps {
    Instant(i64),
    Range(i64, i64, i64),
}

pub struct Subject {
    pub engine: Engine,
    pub store: MergedStore,
    pub rt: tokio::runtime::Runtime,
    /// The Prometheus answering the same queries.
    pub base: String,
}

impl Subject {
    /// The engine over every backend of `config` (partial answers off), compared with the
    /// Prometheus at `base`.
    pub fn over(config: Config, base: String) -> Subject {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt.block_on(async {
            let topology = Topology::build(config, None, &http_client(), &Metrics::new());
            MergedStore::new(Arc::new(topology), false)
        });
        Subject {
            engine: Engine::new(EngineOptions::default()),
            store,
            rt,
            base,
        }
    }

    /// The engine's answer rendered in Prometheus's JSON, as an outcome.
    pub fn ours(&self, query: &str, steps: Steps, keep_order: bool) -> compare::Outcome {
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

    pub fn theirs(&self, query: &str, steps: Steps, keep_order: bool) -> compare::Outcome {
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

/// How a comparison went.
pub struct Report {
    pub evaluations: usize,
    /// Prometheus's answer was an error.
    pub failed: usize,
    /// Prometheus's answer held no series.
    pub empty: usize,
    pub mismatches: Vec<String>,
}

impl Report {
    /// Fails the test on any disagreement, or when too few answers held data for the
    /// agreement to mean much.
    pub fn assert_agreement(&self) {
        assert!(
            self.failed + self.empty < self.evaluations / 4,
            "too few answers with data"
        );
        assert!(
            self.mismatches.is_empty(),
            "{} evaluations disagree",
            self.mismatches.len()
        );
    }
}

/// Runs every generated query both ways and prints what disagreed.
pub fn compare_all(subject: &Subject) -> Report {
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
    Report {
        evaluations,
        failed,
        empty,
        mismatches,
    }
}
