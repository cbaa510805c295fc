//! The engine on hand-made data in a memory store; the PromQL test scripts (tests/) cover
//! the language at large.

use super::*;
use crate::storage::MemoryStore;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// `name{job}` every 30 s from 0 for 10 minutes, value `f(t_seconds)`.
fn store() -> MemoryStore {
    let mut s = MemoryStore::new();
    for (job, slope) in [("a", 1.0), ("b", 2.0)] {
        let samples: Vec<(i64, f64)> = (0..=20)
            .map(|i| (i * 30_000, slope * (i * 30) as f64))
            .collect();
        s.append(
            labels(&[
                ("__name__", "requests_total"),
                ("job", job),
                ("env", "prod"),
            ]),
            &samples,
        );
    }
    s.append(
        labels(&[("__name__", "limit"), ("env", "prod")]),
        &[(0, 100.0), (300_000, 200.0)],
    );
    let stale = f64::from_bits(super::eval::STALE_NAN);
    s.append(
        labels(&[("__name__", "gone")]),
        &[(0, 1.0), (60_000, stale)],
    );
    s
}

fn instant(q: &str, at_s: i64) -> Value {
    let expr = promql_parser::parser::parse(q).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(Engine::default().query_instant(&store(), &expr, at_s * 1000))
        .unwrap()
        .value
}

fn vector(q: &str, at_s: i64) -> Vec<(String, f64)> {
    match instant(q, at_s) {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| {
                    let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    (l.join(","), s.value)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("not a vector: {other:?}"),
    }
}

#[test]
fn selector_takes_the_latest_sample_in_the_lookback_window() {
    let v = vector("requests_total{job=\"a\"}", 95);
    assert_eq!(
        v,
        vec![("__name__=requests_total,env=prod,job=a".into(), 90.0)]
    );
    // Ten minutes after the last sample, beyond the 5 m lookback: nothing.
    assert!(vector("requests_total", 600 + 301).is_empty());
}

#[test]
fn a_staleness_marker_ends_the_series() {
    assert_eq!(vector("gone", 30).len(), 1);
    assert!(vector("gone", 90).is_empty());
}

#[test]
fn rate_and_sum_by() {
    let v = vector("sum by (env) (rate(requests_total[5m]))", 600);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, "env=prod");
    assert!((v[0].1 - 3.0).abs() < 1e-9, "{v:?}");
}

#[test]
fn group_left_copies_the_one_side() {
    let v = vector("requests_total / on (env) group_left limit", 300);
    assert_eq!(
        v,
        vec![
            ("env=prod,job=a".into(), 300.0 / 200.0),
            ("env=prod,job=b".into(), 600.0 / 200.0)
        ]
    );
}

#[test]
fn comparisons_filter_and_bool_gives_zero_or_one() {
    assert_eq!(vector("requests_total > 400", 300).len(), 1);
    let v = vector("requests_total > bool 400", 300);
    assert_eq!(
        v.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
        vec![0.0, 1.0]
    );
}

#[test]
fn range_queries_give_a_sorted_matrix() {
    let expr = promql_parser::parser::parse("requests_total * 2").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = rt
        .block_on(Engine::default().query_range(&store(), &expr, 0, 60_000, 30_000))
        .unwrap();
    let Value::Matrix(m) = out.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].labels.get("job"), Some("a"));
    assert_eq!(m[0].points, vec![(0, 0.0), (30_000, 60.0), (60_000, 120.0)]);
    assert_eq!(m[1].points[2], (60_000, 240.0));
}

#[test]
fn a_passed_deadline_stops_the_evaluation() {
    let expr = promql_parser::parser::parse("sum(rate(requests_total[5m]))").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = Engine::default().with_deadline(tokio::time::Instant::now());
    let out = rt.block_on(engine.query_range(&store(), &expr, 0, 600_000, 1_000));
    assert_eq!(out.unwrap_err(), EngineError::Timeout);
}

/// A store whose every backend failed with `error`.
struct FailingStore {
    error: crate::backend::BackendError,
    partial_response: bool,
}

impl crate::storage::Store for FailingStore {
    async fn select(
        &self,
        _request: &crate::storage::SelectRequest,
    ) -> Result<crate::storage::SeriesSet, crate::storage::StoreError> {
        let failure = crate::backend::fanout::MemberFailure {
            backend: "dc2".to_string(),
            error: self.error.clone(),
        };
        if !self.partial_response {
            return Err(if failure.error.is_timeout() {
                crate::storage::StoreError::BackendTimedOut(failure.warning())
            } else {
                crate::storage::StoreError::BackendFailed(failure.warning())
            });
        }
        Ok(crate::storage::SeriesSet {
            series: Vec::new(),
            failures: vec![failure],
            answered: 0,
        })
    }
}

#[test]
fn backends_that_time_out_are_a_timeout_and_others_a_store_failure() {
    use crate::backend::BackendError;
    let expr = promql_parser::parser::parse("sum(requests_total)").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for partial_response in [true, false] {
        let timed_out = FailingStore {
            error: BackendError::Timeout(std::time::Duration::from_secs(1)),
            partial_response,
        };
        let out = rt.block_on(Engine::default().query_instant(&timed_out, &expr, 60_000));
        assert!(
            matches!(&out, Err(EngineError::StoreTimeout(m)) if m.contains("dc2")),
            "partial {partial_response}: {:?}",
            out.err()
        );
        let refused = FailingStore {
            error: BackendError::Connect("refused".into()),
            partial_response,
        };
        let out = rt.block_on(Engine::default().query_instant(&refused, &expr, 60_000));
        assert!(
            matches!(&out, Err(EngineError::Store(m)) if m.contains("dc2")),
            "partial {partial_response}: {:?}",
            out.err()
        );
    }
}

#[test]
fn too_many_samples_is_an_execution_error() {
    let expr = promql_parser::parser::parse("requests_total").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let out = rt.block_on(engine.query_range(&store(), &expr, 0, 600_000, 30_000));
    assert!(
        matches!(&out, Err(EngineError::Execution(m)) if m.contains("too many samples")),
        "{out:?}"
    );
}

/// Selections big enough to stay compressed until read answer as small ones, which are
/// decoded at once: each query over 300 series is compared, series by series, with the
/// same query over one series alone.
#[test]
fn big_selections_read_lazily_answer_as_small_ones() {
    let mut s = MemoryStore::new();
    let points = 4_000i64;
    for i in 0..300i64 {
        let stale = f64::from_bits(super::eval::STALE_NAN);
        let samples: Vec<(i64, f64)> = (0..points)
            .map(|k| {
                let t = k * 15_000 + i * 7;
                // A reset, a staleness marker and a gap in some series.
                let v = match k {
                    1_000 if i % 3 == 0 => stale,
                    _ if k % 900 == 0 && i % 2 == 0 => 1.0,
                    _ => (k * (i + 1)) as f64 + (k % 900) as f64,
                };
                (t, v)
            })
            .filter(|(t, _)| !(i % 5 == 0 && (20_000_000..23_000_000).contains(t)))
            .collect();
        s.append(
            labels(&[("__name__", "big_total"), ("i", &i.to_string())]),
            &samples,
        );
    }
    let bound: usize = 300 * points as usize;
    assert!(bound >= super::eval::LAZY_SAMPLES, "{bound}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = Engine::default();
    let range = |q: &str| {
        let expr = promql_parser::parser::parse(q).unwrap();
        match rt
            .block_on(engine.query_range(&s, &expr, 600_000, 59_000_000, 60_000))
            .unwrap()
            .value
        {
            Value::Matrix(m) => m,
            other => panic!("{q}: {other:?}"),
        }
    };
    for q in [
        "big_total{}",
        "rate(big_total{}[5m])",
        "count_over_time(big_total{}[10m])",
        "last_over_time(big_total{}[1m])",
        "timestamp(big_total{})",
    ] {
        let all = range(&q.replace("{}", ""));
        assert_eq!(all.len(), 300, "{q}");
        for i in [0, 1, 2, 5, 150, 299] {
            let one = range(&q.replace("{}", &format!("{{i=\"{i}\"}}")));
            let from_all = all
                .iter()
                .find(|s| s.labels.get("i") == Some(i.to_string().as_str()))
                .unwrap_or_else(|| panic!("{q}: series {i} missing"));
            assert_eq!(one.len(), 1, "{q} {i}");
            assert_eq!(one[0].points, from_all.points, "{q} series {i}");
        }
    }
    let absent = range("absent_over_time(big_total[1m])");
    assert!(absent.is_empty(), "{absent:?}");
}
