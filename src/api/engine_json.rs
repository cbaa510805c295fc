//! The engine's answers in Prometheus's JSON: sample values as strings in Go's shortest
//! form (`"1"`, `"0.1"`, `"1e-07"`, `"+Inf"`, `"NaN"`), exponent notation only below 1e-6
//! and from 1e21 on, as Prometheus writes them.

use super::json::{write_array, write_labels, write_str};
use crate::promql::engine::{QueryStats, Value};
use crate::time::write_timestamp;

/// Appends `v` as Prometheus writes a sample value (without quotes): Go's shortest digits,
/// laid out as `strconv.FormatFloat(v, 'f', -1, 64)`, or `'e'` below 1e-6 and from 1e21 on.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"+Inf"
        } else {
            b"-Inf"
        });
        return;
    }
    // Whole numbers below 2^53 are exact, and their shortest digits are their own.
    if v == v.trunc() && v.abs() < 9_007_199_254_740_992.0 {
        if v == 0.0 && v.is_sign_negative() {
            out.extend_from_slice(b"-0");
        } else {
            out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        }
        return;
    }
    let mut buf = ryu::Buffer::new();
    let (negative, digits, point) = shortest_digits(buf.format_finite(v).as_bytes());
    if negative {
        out.push(b'-');
    }
    let abs = v.abs();
    if !(1e-6..1e21).contains(&abs) {
        write_exponent(out, digits.as_slice(), point);
    } else {
        write_fixed(out, digits.as_slice(), point);
    }
}

/// Significant decimal digits: at most 17 for a double.
struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The shortest decimal digits of a number written by ryu (`-1.25e-7`, `123.5`), as sign,
/// significant digits (no leading or trailing zeros) and the position of the decimal point
/// relative to them: the number is `0.DIGITS × 10^point`.
fn shortest_digits(text: &[u8]) -> (bool, Digits, i32) {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &b""[..]),
    };
    let mut point: i32 = match exp.split_first() {
        Some((b'-', digits)) => -parse_small(digits),
        _ => parse_small(exp),
    };
    let mut digits = Digits {
        buf: [0; 24],
        len: 0,
    };
    let mut before_point = true;
    for &b in mantissa {
        match b {
            b'.' => before_point = false,
            // A leading zero after the point moves the point left; before it, nothing.
            b'0' if digits.len == 0 => point -= i32::from(!before_point),
            d => {
                if digits.len < digits.buf.len() {
                    digits.buf[digits.len] = d;
                    digits.len += 1;
                }
                point += i32::from(before_point);
            }
        }
    }
    while digits.len > 0 && digits.buf[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (negative, digits, point)
}

/// A short run of ASCII digits (an exponent).
fn parse_small(digits: &[u8]) -> i32 {
    digits
        .iter()
        .fold(0, |n, &d| n * 10 + i32::from(d.wrapping_sub(b'0')))
}

/// `0.DIGITS × 10^point` without an exponent: `0.00012`, `12.5`, `1200`.
fn write_fixed(out: &mut Vec<u8>, digits: &[u8], point: i32) {
    let n = digits.len() as i32;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point < n {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    } else {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (point - n) as usize));
    }
}

/// `0.DIGITS × 10^point` as Go's `'e'` writes it: `1.5e-07`, `1e+21`.
fn write_exponent(out: &mut Vec<u8>, digits: &[u8], point: i32) {
    out.push(digits.first().copied().unwrap_or(b'0'));
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    let exp = point - 1;
    out.push(b'e');
    out.push(if exp < 0 { b'-' } else { b'+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(itoa::Buffer::new().format(abs).as_bytes());
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

    /// Go's layout built from Rust's own shortest formatting, the slow way.
    fn reference(v: f64) -> String {
        if v.is_nan() {
            return "NaN".into();
        }
        if v.is_infinite() {
            return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
        }
        if v != 0.0 && (v.abs() < 1e-6 || v.abs() >= 1e21) {
            let s = format!("{v:e}");
            let (mantissa, exp) = s.split_once('e').unwrap();
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn values_match_the_slow_layout_everywhere() {
        // Random bit patterns (every magnitude), random values of ordinary sizes, integers
        // around 2^53, and decimals with few digits.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values = Vec::new();
        for _ in 0..200_000 {
            values.push(f64::from_bits(next()));
            let r = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let scale = 10f64.powi((next() % 60) as i32 - 30);
            values.push((r - 0.5) * scale);
            values.push(((next() % 1_000_000) as f64) / 100.0);
        }
        for k in -5..5 {
            values.push(9_007_199_254_740_992.0 + f64::from(k) * 2.0);
            values.push(-9_007_199_254_740_992.0 + f64::from(k));
            values.push(1e21 + f64::from(k) * 1e6);
        }
        values.extend([
            1e-6,
            9.99999e-7,
            1e20,
            123.0,
            1e15 + 0.5,
            5e-324,
            f64::MAX,
            f64::MIN,
        ]);
        let significant = |s: &str| -> String {
            let mantissa = s.split('e').next().unwrap_or("");
            let d: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            d.trim_start_matches('0').trim_end_matches('0').to_string()
        };
        for v in values {
            let (ours, slow) = (value(v), reference(v));
            if ours == slow {
                continue;
            }
            // Where the shortest digits end on an exact tie, Rust's own formatting rounds
            // up while Go's strconv (and ryu) round to even: Prometheus writes the even one.
            // Anything else must agree.
            let what = format!("{v:e} ({:#x}): {ours} vs {slow}", v.to_bits());
            assert_eq!(ours.parse::<f64>().unwrap(), v, "{what}");
            let (a, b) = (significant(&ours), significant(&slow));
            assert_eq!(a.len(), b.len(), "{what}");
            assert_eq!(a[..a.len() - 1], b[..b.len() - 1], "{what}");
            let last = |d: &str| d.bytes().last().unwrap() - b'0';
            assert_eq!(last(&a) % 2, 0, "{what}");
            assert_eq!(last(&b), last(&a) + 1, "{what}");
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
