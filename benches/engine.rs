//! promgate's PromQL engine over one day of 1 600 series at 30 s (see
//! `benches/support/engine_dataset.rs`: 400 request counters with restarts, 80 classic
//! histograms = 800 `_bucket` series plus 160 `_sum`/`_count`, 240 gauges), held in a
//! `MemoryStore`. Range queries cover the whole day at a 30 s step; instant queries run at
//! the end of it. Only `Engine::query_range` / `query_instant` is timed: no HTTP, no JSON.
//!
//! `cargo bench --bench engine` (one group per kind; filter with e.g. `-- range/rate`).
//! `benches/engine_vs_peers.sh` runs the same queries against Prometheus and
//! VictoriaMetrics.

#[path = "support/engine_dataset.rs"]
mod dataset;

use std::time::Duration;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use promgate::model::Labels;
use promgate::promql::engine::{Engine, EngineOptions};
use promgate::storage::MemoryStore;

/// A fixed end, so runs compare: 2023-11-14T22:13:00Z rounded to 30 s.
const END_MS: i64 = 1_700_000_000_000;

fn load(data: &dataset::Dataset) -> MemoryStore {
    let mut store = MemoryStore::new();
    for spec in data.series() {
        store.append(Labels::new(spec.label_pairs()), &data.samples(&spec));
    }
    store
}

fn engine(c: &mut Criterion) {
    let data = dataset::Dataset::ending_at(END_MS);
    let store = load(&data);
    // One thread, as Prometheus evaluates a query on one core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let engine = Engine::new(EngineOptions::default());

    let mut range = c.benchmark_group("range");
    range
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, query) in dataset::RANGE_QUERIES {
        let expr = promql_parser::parser::parse(query).expect("valid PromQL");
        // A query the engine refuses would time only the refusal: say so and skip it.
        if let Err(e) = rt.block_on(engine.query_range(
            &store,
            &expr,
            data.query_start_ms(),
            data.query_end_ms(),
            dataset::SCRAPE_MS,
        )) {
            eprintln!("range/{name}: skipped, the engine refuses it: {e}");
            continue;
        }
        range.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(engine.query_range(
                    &store,
                    black_box(&expr),
                    data.query_start_ms(),
                    data.query_end_ms(),
                    dataset::SCRAPE_MS,
                ))
            })
        });
    }
    range.finish();

    let mut instant = c.benchmark_group("instant");
    instant
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for name in dataset::INSTANT_QUERIES {
        let expr = promql_parser::parser::parse(dataset::query(name)).expect("valid PromQL");
        let at = data.query_end_ms();
        if let Err(e) = rt.block_on(engine.query_instant(&store, &expr, at)) {
            eprintln!("instant/{name}: skipped, the engine refuses it: {e}");
            continue;
        }
        instant.bench_function(name, |b| {
            b.iter(|| rt.block_on(engine.query_instant(&store, black_box(&expr), at)))
        });
    }
    instant.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
