//! Times promgate's engine on the engine benchmarks' data set: loads it into a
//! `MemoryStore` and prints, for each query class, the best of N `Engine::query_range` times
//! (evaluation only: no HTTP, no JSON), then the process's peak RSS. Used by
//! `benches/engine_vs_peers.sh`.
//!
//! `cargo run --release --example engine_time -- --end-ms 1700000000000 --runs 5`
//!
//! Output, tab-separated: `kind/name  best_ms  series` per query, kind `range` (the whole
//! day at 30 s) or `instant` (at its end), `kind/name  ERR  message` when the engine refuses
//! one, `json/kind/name  best_ms  bytes` for the time to write the biggest answers as JSON,
//! then `rss  after_load_kib  peak_kib`. `--list` prints `kind/name  query`.

#[path = "../benches/support/engine_dataset.rs"]
mod dataset;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use promgate::model::Labels;
use promgate::promql::engine::{Engine, EngineOptions, Value};
use promgate::storage::MemoryStore;

#[derive(Parser, Debug)]
struct Args {
    /// End of the day of data, unix ms: the same value the peers' data was made with.
    #[arg(long, default_value_t = 1_700_000_000_000)]
    end_ms: i64,
    /// Timed runs per query after one warm-up; the best counts.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only these queries, as `range/rate` or `instant/rate` (default: all).
    #[arg(long = "query")]
    queries: Vec<String>,
    /// Print the query classes and exit.
    #[arg(long)]
    list: bool,
}

/// VmRSS and VmHWM from /proc, KiB; zeros where /proc is absent.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Every timed query as `(kind/name, PromQL)`: all classes as range queries, then some as
/// instant ones.
fn jobs() -> Vec<(String, &'static str)> {
    let range = dataset::RANGE_QUERIES
        .iter()
        .map(|(name, query)| (format!("range/{name}"), *query));
    let instant = dataset::INSTANT_QUERIES
        .iter()
        .map(|name| (format!("instant/{name}"), dataset::query(name)));
    range.chain(instant).collect()
}

/// Queries whose answers' JSON encoding is timed too: the biggest answers.
const JSON_TIMED: [&str; 2] = ["range/raw", "range/rate"];

/// Prints `json/<name>  best_ms  bytes`: the best time to write the query's answer as the
/// API does (`success_in_pieces` with `write_engine_pieces`), after one warm-up.
fn time_json(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    store: &MemoryStore,
    data: &dataset::Dataset,
    expr: &promql_parser::parser::Expr,
    name: &str,
    runs: usize,
) {
    let answer = rt.block_on(engine.query_range(
        store,
        expr,
        data.query_start_ms(),
        data.query_end_ms(),
        dataset::SCRAPE_MS,
    ));
    let Ok(answer) = answer else {
        println!("json/{name}\tERR\tquery failed");
        return;
    };
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..=runs {
        let started = Instant::now();
        let out = promgate::api::json::success_in_pieces(&[], &[], |out| {
            promgate::api::engine_json::write_engine_pieces(out, &answer.value, 0)
        });
        best = best.min(started.elapsed());
        bytes = out.byte_len();
    }
    println!("json/{name}\t{:.3}\t{bytes}", best.as_secs_f64() * 1000.0);
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for (name, query) in jobs() {
            println!("{name}\t{query}");
        }
        return ExitCode::SUCCESS;
    }
    let data = dataset::Dataset::ending_at(args.end_ms);
    let mut store = MemoryStore::new();
    for spec in data.series() {
        store.append(Labels::new(spec.label_pairs()), &data.samples(&spec));
    }
    let (after_load, _) = rss_kib();
    // One thread, as Prometheus evaluates a query on one core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let engine = Engine::new(EngineOptions::default());
    for (name, query) in jobs() {
        if !args.queries.is_empty() && !args.queries.contains(&name) {
            continue;
        }
        let expr = match promql_parser::parser::parse(query) {
            Ok(e) => e,
            Err(e) => {
                println!("{name}\tERR\tparse: {e}");
                continue;
            }
        };
        let mut best = Duration::MAX;
        let mut series = 0;
        let mut failed = None;
        for _ in 0..=args.runs {
            let started = Instant::now();
            let out = if name.starts_with("instant/") {
                rt.block_on(engine.query_instant(&store, &expr, data.query_end_ms()))
            } else {
                rt.block_on(engine.query_range(
                    &store,
                    &expr,
                    data.query_start_ms(),
                    data.query_end_ms(),
                    dataset::SCRAPE_MS,
                ))
            };
            let took = started.elapsed();
            match out {
                Ok(out) => {
                    series = match &out.value {
                        Value::Matrix(m) => m.len(),
                        Value::Vector(v) => v.len(),
                        _ => 1,
                    };
                    best = best.min(took);
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        match failed {
            Some(e) => println!("{name}\tERR\t{e}"),
            None => println!("{name}\t{:.3}\t{series}", best.as_secs_f64() * 1000.0),
        }
        if JSON_TIMED.contains(&name.as_str()) {
            time_json(&rt, &engine, &store, &data, &expr, &name, args.runs);
        }
    }
    let (_, peak) = rss_kib();
    println!("rss\t{after_load}\t{peak}");
    ExitCode::SUCCESS
}
