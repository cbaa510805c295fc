//! Decoding and encoding Prometheus query answers, the work promgate adds to every answer it
//! has to merge (HA range queries) rather than relay: a range answer of 200 series x 1 441
//! points (about 7 MB) as Prometheus writes it.
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
