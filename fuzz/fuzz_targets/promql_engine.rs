//! Any query that parses must evaluate to an answer or an error, never a panic.
//!
//! Input: the query text, optionally followed by a NUL byte and a few bytes that choose the
//! evaluation (instant and/or range, times, step). Without the NUL the whole input is the
//! query, so the seed corpus and the dictionary stay plain PromQL.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use promgate::model::Labels;
use promgate::promql::engine::{Engine, EngineError, EngineOptions};
use promgate::storage::MemoryStore;
use promgate::time::{MAX_TIME_MS, MIN_TIME_MS};

const STALE: u64 = 0x7ff0_0000_0000_0002;

/// Evaluation times (ms): inside the data, at its edges, far before and after it, and the
/// extremes the HTTP API accepts (`promgate::time::{MIN,MAX}_TIME_MS`).
const TIMES: [i64; 10] = [
    300_000,
    0,
    600_000,
    -1,
    123_457,
    3_600_000_000,
    -86_400_000,
    1_700_000_000_000,
    MIN_TIME_MS,
    MAX_TIME_MS,
];
const STEPS: [i64; 8] = [
    15_000,
    1,
    1_000,
    60_000,
    7_000,
    86_400_000,
    31_536_000_000,
    1_000_000_000_000_000,
];
/// Most points per series the HTTP API lets a range query have.
const MAX_POINTS: i64 = 11_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Ten minutes of 15 s scrapes: counters (one resetting, one huge), gauges with NaN, ±Inf
/// and staleness markers, classic histogram buckets (one set not monotonic), and a few
/// odd series (a single sample, odd label values, data before 1970).
fn store() -> MemoryStore {
    let stale = f64::from_bits(STALE);
    let mut s = MemoryStore::new();
    let times = |n: i64| (0..n).map(|i| i * 15_000);
    let series = |f: &dyn Fn(i64, i64) -> f64| -> Vec<(i64, f64)> {
        times(41).map(|t| (t, f(t, t / 15_000))).collect()
    };
    s.append(
        labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "a"),
            ("code", "200"),
        ]),
        &series(&|_, i| {
            if i < 20 {
                i as f64 * 10.0
            } else {
                (i - 20) as f64 * 3.0
            }
        }),
    );
    s.append(
        labels(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "b"),
            ("code", "500"),
        ]),
        &series(&|_, i| (i / 4) as f64),
    );
    s.append(
        labels(&[
            ("__name__", "http_requests_total"),
            ("job", "web"),
            ("instance", "a"),
            ("code", "200"),
        ]),
        &series(&|_, i| 1e15 + i as f64 * 1e14),
    );
    s.append(
        labels(&[("__name__", "node_temp"), ("instance", "a")]),
        &series(&|_, i| 40.0 + (i as f64 / 3.0).sin() * 5.0),
    );
    s.append(
        labels(&[("__name__", "node_temp"), ("instance", "b")]),
        &series(&|_, i| match i % 7 {
            0 => f64::NAN,
            3 if i == 10 => f64::INFINITY,
            5 if i == 26 => f64::NEG_INFINITY,
            _ => -(i as f64) + 0.5,
        }),
    );
    s.append(
        labels(&[("__name__", "up"), ("job", "api"), ("instance", "a")]),
        // Up, then a staleness marker at 300 s, then nothing until it comes back at 450 s.
        &series(&|_, i| if i == 20 { stale } else { 1.0 })
            .into_iter()
            .filter(|(t, _)| !(315_000..450_000).contains(t))
            .collect::<Vec<_>>(),
    );
    s.append(
        labels(&[("__name__", "up"), ("job", "web"), ("instance", "a")]),
        &series(&|_, i| (i % 2) as f64),
    );
    for (job, buckets) in [
        (
            "api",
            [("0.1", 1.0), ("0.5", 3.0), ("1", 4.0), ("+Inf", 5.0)],
        ),
        // Not monotonic, as buckets scraped at slightly different times can be.
        (
            "web",
            [("0.1", 4.0), ("0.5", 2.0), ("1", 6.0), ("+Inf", 5.0)],
        ),
    ] {
        for (le, per_step) in buckets {
            s.append(
                labels(&[
                    ("__name__", "req_duration_seconds_bucket"),
                    ("job", job),
                    ("le", le),
                ]),
                &series(&|_, i| i as f64 * per_step),
            );
        }
        s.append(
            labels(&[("__name__", "req_duration_seconds_sum"), ("job", job)]),
            &series(&|_, i| i as f64 * 2.5),
        );
        s.append(
            labels(&[("__name__", "req_duration_seconds_count"), ("job", job)]),
            &series(&|_, i| i as f64 * 5.0),
        );
    }
    s.append(labels(&[("__name__", "sparse")]), &[(120_000, 7.0)]);
    s.append(
        labels(&[
            ("__name__", "odd_labels"),
            ("path", "/a/b?c=\"d\"\\e"),
            ("unicode", "ünïcødé ✓"),
            ("empty", ""),
        ]),
        &series(&|_, i| if i % 2 == 0 { -0.0 } else { f64::MAX }),
    );
    s.append(
        labels(&[("__name__", "old_metric"), ("job", "api")]),
        &[(-1_000_000_000, 1.0), (-999_985_000, 2.0), (-15_000, 3.0)],
    );
    s
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    store: MemoryStore,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        // The engine evaluates on the blocking pool, which a current-thread runtime has.
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        store: store(),
    })
}

/// A panic on the blocking pool comes back as an error rather than unwinding here; it is a
/// bug all the same.
fn check(
    query: &str,
    how: &str,
    result: Result<promgate::promql::engine::QueryOutput, EngineError>,
) {
    if let Err(EngineError::Execution(msg)) = &result
        && msg.contains("panicked")
    {
        panic!("{how} evaluation of {query:?} panicked: {msg}");
    }
}

/// The query, if it parses. promql-parser itself panics on some inputs (a range of
/// `[14444444444444444444440]` overflows `Duration::from_secs_f64`); that is the parser's
/// bug, not the engine's, so such inputs are skipped rather than reported again and again.
/// libFuzzer's panic hook aborts even on a caught panic, so it is set aside meanwhile.
fn parse(query: &str) -> Option<promql_parser::parser::Expr> {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(query));
    std::panic::set_hook(fuzzer_hook);
    parsed.ok()?.ok()
}

fuzz_target!(|data: &[u8]| {
    let (text, params) = match data.iter().rposition(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(text) else {
        return;
    };
    // The parser's own limits are not the engine's concern; very long inputs only slow the
    // search down.
    if query.len() > 4096 {
        return;
    }
    let Some(expr) = parse(query) else {
        return;
    };
    let p = |i: usize| params.get(i).copied().unwrap_or(0) as usize;
    let mode = p(0) % 3; // 0: both, 1: instant only, 2: range only
    let fx = fixture();
    let engine = || {
        Engine::new(EngineOptions {
            max_samples: 100_000,
            ..Default::default()
        })
        .with_deadline(tokio::time::Instant::now() + Duration::from_secs(2))
    };
    fx.rt.block_on(async {
        if mode != 2 {
            let at = TIMES[p(1) % TIMES.len()];
            let r = engine().query_instant(&fx.store, &expr, at).await;
            check(query, "instant", r);
        }
        if mode != 1 {
            let start = TIMES[p(2) % TIMES.len()];
            let step = STEPS[p(3) % STEPS.len()];
            // Spans as steps, capped as the API caps them; a start near the end of time
            // runs backwards. Times stay within the RFC 3339 range of the API: beyond it
            // (float seconds near the ends of i64) the engine's time arithmetic overflows,
            // which is known and would stop every run at the same place.
            let steps = [40, 0, 1, 7, MAX_POINTS][p(4) % 5].min(MAX_POINTS);
            let span = step.saturating_mul(steps);
            let (start, end) = if start > 0 {
                (start.saturating_sub(span).max(MIN_TIME_MS), start)
            } else {
                (start, start.saturating_add(span).min(MAX_TIME_MS))
            };
            let r = engine()
                .query_range(&fx.store, &expr, start, end, step)
                .await;
            check(query, "range", r);
        }
    });
});
