//! The engine's answers in Prometheus's JSON: sample values as strings in Go's shortest
//! form (`"1"`, `"0.1"`, `"1e-07"`, `"+Inf"`, `"NaN"`), exponent notation only below 1e-6
//! and from 1e21 on, as Prometheus writes them.

use super::json::{write_array, write_labels, write_str};
use crate::promql::engine::{QueryStats, Value};
use crate::time::write_timestamp;

/// Appends `v` as Prometheus writes a sample value (without quotes).
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else if v != 0.0 && (v.abs() < 1e-6 || v.abs() >= 1e21) {
        // Rust writes `1.5e-7`; Go writes `1.5e-07`: a signed exponent of two digits or more.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_timestamp(out, t);
    out.extend_from_slice(b",\"");
    write_value(out, v);
    out.extend_from_slice(b"\"]");
}

/// `{"resultType":...,"result":...}` for an engine answer; `at_ms` is an instant query's
/// time (the timestamp of its vector samples and scalar).
pub fn write_engine_value(out: &mut Vec<u8>, value: &Value, at_ms: i64) {
    let kind = match value {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "vector",
        Value::Matrix(_) => "matrix",
    };
    out.extend_from_slice(b"{\"resultType\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    match value {
        Value::Scalar(v) => write_point(out, at_ms, *v),
        Value::String(s) => {
            out.push(b'[');
            write_timestamp(out, at_ms);
            out.push(b',');
            write_str(out, s);
            out.push(b']');
        }
        Value::Vector(samples) => write_array(out, samples, |out, s| {
            out.extend_from_slice(b"{\"metric\":");
            write_labels(out, &s.labels);
            out.extend_from_slice(b",\"value\":");
            write_point(out, at_ms, s.value);
            out.push(b'}');
        }),
        Value::Matrix(series) => write_array(out, series, |out, s| {
            out.extend_from_slice(b"{\"metric\":");
            write_labels(out, &s.labels);
            out.extend_from_slice(b",\"values\":");
            write_array(out, &s.points, |out, &(t, v)| write_point(out, t, v));
            out.push(b'}');
        }),
    }
    out.push(b'}');
}

/// `,"stats":{...}` as Prometheus writes it inside `data` for `stats=all`.
pub fn write_stats(out: &mut Vec<u8>, stats: &QueryStats) {
    use std::io::Write;
    let total = stats.prepare_seconds + stats.eval_seconds;
    let _ = write!(
        out,
        ",\"stats\":{{\"timings\":{{\"evalTotalTime\":{total},\"resultSortTime\":0,\"queryPreparationTime\":{},\"innerEvalTime\":{},\"execQueueTime\":0,\"execTotalTime\":{total}}},\"samples\":{{\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        stats.prepare_seconds, stats.eval_seconds, stats.total_samples, stats.peak_samples
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::promql::engine::InstantSample;

    fn value(v: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_written_as_go_writes_them() {
        for (v, s) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e6, "1000000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-07"),
            (-1.5e-7, "-1.5e-07"),
            (1e21, "1e+21"),
            (1.2345e300, "1.2345e+300"),
            (123456789012.5, "123456789012.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(value(v), s, "{v:e}");
        }
    }

    #[test]
    fn stats_are_valid_json_inside_data() {
        let mut out = Vec::new();
        write_engine_value(&mut out, &Value::Scalar(1.0), 0);
        out.pop();
        write_stats(
            &mut out,
            &QueryStats {
                total_samples: 7,
                peak_samples: 8,
                prepare_seconds: 0.5,
                eval_seconds: 0.25,
            },
        );
        out.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stats"]["samples"]["totalQueryableSamples"], 7);
        assert_eq!(v["stats"]["samples"]["peakSamples"], 8);
        assert_eq!(v["stats"]["timings"]["evalTotalTime"], 0.75);
        assert_eq!(v["result"][1], "1");
    }

    #[test]
    fn vectors_carry_the_query_time() {
        let mut out = Vec::new();
        let v = Value::Vector(vec![InstantSample {
            labels: Labels::new(vec![("job".into(), "a".into())]),
            value: 2.0,
        }]);
        write_engine_value(&mut out, &v, 1_500);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1.5,"2"]}]}"#
        );
    }
}
