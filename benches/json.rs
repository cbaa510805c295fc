//! Decoding and encoding Prometheus query answers, the work promgate adds to every answer it
//! has to merge (HA range queries) rather than relay: a range answer of 200 series x 1 441
//! points (about 7 MB) as Prometheus writes it.
//! The engine's answers are written without a decode: `engine_matrix` writes a matrix of
//! 200 series x 1 441 points, once of rates and gauges mixed (`encode`), once of rates alone
//! (`rates`, the longest values there are), and once more of rates as an answer is served
//! (`rates_as_served`: in fresh memory, in pieces).
//!
//! `cargo bench --bench json`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promgate::model::{Envelope, QueryResult};

fn range_answer(series: usize, points: usize) -> String {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for s in 0..series {
        if s > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"metric":{{"__name__":"demo_requests_total","instance":"i-{s}","job":"api","method":"get"}},"values":["#
        ));
        for p in 0..points {
            if p > 0 {
                out.push(',');
            }
            let t = 1_700_000_000 + p as i64 * 15;
            let v = (s * 1000 + p) as f64 * 0.25;
            out.push_str(&format!(r#"[{t},"{v}"]"#));
        }
        out.push_str("]}");
    }
    out.push_str("]}}");
    out
}

fn bench(c: &mut Criterion) {
    let body = range_answer(200, 1441);
    let mut group = c.benchmark_group("range_answer");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let env: Envelope<QueryResult> = serde_json::from_str(&body).unwrap();
            env.data.unwrap()
        })
    });
    let env: Envelope<QueryResult> = serde_json::from_str(&body).unwrap();
    let result = env.data.unwrap();
    group.bench_function("encode", |b| {
        b.iter(|| {
            promgate::api::json::success(&[], &[], |out| {
                promgate::api::json::write_query_result(out, &result)
            })
        })
    });
    let labels = vec![("cluster".to_string(), "eu1".to_string())];
    group.bench_function("attach_labels_raw", |b| {
        b.iter(|| promgate::api::json::attach_labels_raw(body.as_bytes(), &labels).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("engine_matrix");
    for (name, mix) in [("encode", Mix::Mixed), ("rates", Mix::Rates)] {
        let matrix = engine_matrix(200, 1441, mix);
        let mut sized = Vec::new();
        promgate::api::engine_json::write_engine_value(&mut sized, &matrix, 0);
        group.throughput(Throughput::Bytes(sized.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(sized.len());
                promgate::api::engine_json::write_engine_value(&mut out, &matrix, 0);
                out
            })
        });
        if let Mix::Rates = mix {
            // As an answer is served: the whole envelope, into memory of its own each time,
            // the parts written on other threads left as pieces.
            group.bench_function("rates_as_served", |b| {
                b.iter(|| {
                    promgate::api::json::success_in_pieces(&[], &[], |out| {
                        promgate::api::engine_json::write_engine_pieces(out, &matrix, 0)
                    })
                })
            });
        }
    }
    group.finish();
}

/// What an engine answer's values look like.
#[derive(Clone, Copy)]
enum Mix {
    /// Rates (fractions with many digits), gauges with two decimals and integer counts.
    Mixed,
    /// Rates only, as `rate(...)` answers: 16 or 17 significant digits each.
    Rates,
}

fn engine_matrix(series: usize, points: usize, mix: Mix) -> promgate::promql::engine::Value {
    use promgate::model::Labels;
    use promgate::promql::engine::{RangeSeries, Value};
    Value::Matrix(
        (0..series)
            .map(|s| RangeSeries {
                labels: Labels::new(vec![
                    ("instance".to_string(), format!("i-{s}")),
                    ("job".to_string(), "api".to_string()),
                ]),
                points: (0..points)
                    .map(|p| {
                        let t = 1_700_000_000_000 + p as i64 * 15_000;
                        let kind = match mix {
                            Mix::Mixed => s % 3,
                            Mix::Rates => 0,
                        };
                        let v = match kind {
                            0 => (s * 7 + p * 13) as f64 / 15.0,
                            1 => ((s * 100 + p) as f64 * 0.37).round() / 100.0,
                            _ => (s * 1000 + p) as f64,
                        };
                        (t, v)
                    })
                    .collect(),
            })
            .collect(),
    )
}

criterion_group!(benches, bench);
criterion_main!(benches);
