//! The engine's answers in Prometheus's JSON: sample values as strings in Go's shortest
//! form (`"1"`, `"0.1"`, `"1e-07"`, `"+Inf"`, `"NaN"`), exponent notation only below 1e-6
//! and from 1e21 on, as Prometheus writes them.

use super::json::{Pieces, write_array, write_labels, write_str};
use crate::promql::engine::{QueryStats, RangeSeries, Value};
use crate::time::{timestamp_parts, write_timestamp};

/// Appends `v` as Prometheus writes a sample value (without quotes): Go's shortest digits,
/// laid out as `strconv.FormatFloat(v, 'f', -1, 64)`, or `'e'` below 1e-6 and from 1e21 on.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    put_value(out, v);
}

fn put_value(out: &mut impl Sink, v: f64) {
    if !v.is_finite() {
        out.put_all(if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"+Inf"
        } else {
            b"-Inf"
        });
        return;
    }
    let abs = v.abs();
    // Whole numbers below 2^53 are exact, and their shortest digits are their own. (A
    // round trip through an integer tells them apart without a call to `trunc`.)
    let whole = abs as i64;
    if abs < 9_007_199_254_740_992.0 && whole as f64 == abs {
        if v.is_sign_negative() {
            out.put(b'-');
        }
        out.put_decimal(whole as u64);
        return;
    }
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    // Fractions from 1e-5 up zmij writes without an exponent, exactly as Go does (every
    // number from 2^53 up is whole).
    if (1e-5..9_007_199_254_740_992.0).contains(&abs) {
        out.put_all(text);
        return;
    }
    let (negative, digits, point) = shortest_digits(text);
    if negative {
        out.put(b'-');
    }
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

/// The shortest decimal digits of a number written by zmij (`-1.25e-7`, `1e+30`, `123.5`),
/// as sign, significant digits (no leading or trailing zeros) and the position of the
/// decimal point relative to them: the number is `0.DIGITS × 10^point`.
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
        Some((b'+', digits)) => parse_small(digits),
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
fn write_fixed(out: &mut impl Sink, digits: &[u8], point: i32) {
    let n = digits.len() as i32;
    if point <= 0 {
        out.put_all(b"0.");
        for _ in 0..-point {
            out.put(b'0');
        }
        out.put_all(digits);
    } else if point < n {
        out.put_all(&digits[..point as usize]);
        out.put(b'.');
        out.put_all(&digits[point as usize..]);
    } else {
        out.put_all(digits);
        for _ in 0..point - n {
            out.put(b'0');
        }
    }
}

/// `0.DIGITS × 10^point` as Go's `'e'` writes it: `1.5e-07`, `1e+21`.
fn write_exponent(out: &mut impl Sink, digits: &[u8], point: i32) {
    out.put(digits.first().copied().unwrap_or(b'0'));
    if digits.len() > 1 {
        out.put(b'.');
        out.put_all(&digits[1..]);
    }
    let exp = point - 1;
    out.put(b'e');
    out.put(if exp < 0 { b'-' } else { b'+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.put(b'0');
    }
    out.put_decimal(u64::from(abs));
}

/// `[t,"v"]` (after a comma unless `first`), written into room made for it at the end of
/// `out`: the answer's bulk is points, and a handful of small appends each would cost more
/// than writing them.
fn write_point(out: &mut Vec<u8>, t: i64, v: f64, first: bool, stamps: &mut Stamps) {
    let at = out.len();
    out.resize(at + POINT, 0);
    let mut p = Point {
        buf: &mut out[at..],
        len: 0,
        overflow: false,
    };
    if !first {
        p.put(b',');
    }
    p.put(b'[');
    put_timestamp(&mut p, t, stamps);
    p.put_all(b",\"");
    put_value(&mut p, v);
    p.put_all(b"\"]");
    let (len, overflow) = (p.len, p.overflow);
    out.truncate(at + len);
    if overflow {
        out.truncate(at);
        if !first {
            out.push(b',');
        }
        out.push(b'[');
        write_timestamp(out, t);
        out.extend_from_slice(b",\"");
        write_value(out, v);
        out.extend_from_slice(b"\"]");
    }
}

/// Where a value's bytes go: the answer itself, or the room made for one point.
trait Sink {
    fn put(&mut self, b: u8);
    fn put_all(&mut self, bytes: &[u8]);

    /// `n` in decimal.
    fn put_decimal(&mut self, n: u64) {
        self.put_all(itoa::Buffer::new().format(n).as_bytes());
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }

    fn put_all(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Room for any point: `,[`, a timestamp of at most 21 bytes, `,"`, a value of at most 25
/// and `"]`.
const POINT: usize = 64;

/// Room for one point. Copies into it are a few fixed-size moves, never a call.
struct Point<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// Set instead of writing past the end, which no point should reach.
    overflow: bool,
}

impl Sink for Point<'_> {
    #[inline(always)]
    fn put(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    #[inline(always)]
    fn put_all(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        let Some(to) = self.buf.get_mut(self.len..self.len + n) else {
            self.overflow = true;
            return;
        };
        // Two overlapping moves of a fixed size cover any length in their range.
        match n {
            0 => {}
            1..4 => {
                to[0] = bytes[0];
                to[n / 2] = bytes[n / 2];
                to[n - 1] = bytes[n - 1];
            }
            4..8 => {
                to[..4].copy_from_slice(&bytes[..4]);
                to[n - 4..].copy_from_slice(&bytes[n - 4..]);
            }
            8..=16 => {
                to[..8].copy_from_slice(&bytes[..8]);
                to[n - 8..].copy_from_slice(&bytes[n - 8..]);
            }
            17..=32 => {
                to[..16].copy_from_slice(&bytes[..16]);
                to[n - 16..].copy_from_slice(&bytes[n - 16..]);
            }
            _ => to.copy_from_slice(bytes),
        }
        self.len += n;
    }

    /// Straight into the room, two digits at a time from the end.
    #[inline(always)]
    fn put_decimal(&mut self, mut n: u64) {
        let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
        let Some(to) = self.buf.get_mut(self.len..self.len + len) else {
            self.overflow = true;
            return;
        };
        let mut i = len;
        while n >= 100 && i >= 2 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            to[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 && i >= 2 {
            let pair = n as usize * 2;
            to[i - 2..i].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else if i >= 1 {
            to[i - 1] = b'0' + n as u8;
        }
        self.len += len;
    }
}

/// `00` to `99`.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A timestamp in seconds as Prometheus writes it (`1700000000.5`).
#[inline(always)]
fn put_timestamp(out: &mut impl Sink, ms: i64, stamps: &mut Stamps) {
    let (negative, seconds, fraction) = timestamp_parts(ms);
    if negative {
        out.put(b'-');
    }
    if seconds < 10_000 {
        out.put_decimal(seconds);
    } else {
        let (high, low) = (seconds / 10_000, (seconds % 10_000) as usize);
        out.put_all(stamps.leading(high));
        let (a, b) = (low / 100 * 2, low % 100 * 2);
        out.put_all(&[PAIRS[a], PAIRS[a + 1], PAIRS[b], PAIRS[b + 1]]);
    }
    out.put_all(fraction.as_slice());
}

/// The leading digits (all but the last four) of the seconds last written, as text. A
/// series' points are steps apart, so their seconds mostly share those digits, and only the
/// last four need writing anew: a division and two table lookups instead of a chain of five
/// divisions.
#[derive(Default)]
struct Stamps {
    high: u64,
    text: [u8; 20],
    len: usize,
}

impl Stamps {
    fn leading(&mut self, high: u64) -> &[u8] {
        if high != self.high || self.len == 0 {
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(high).as_bytes();
            self.text[..digits.len()].copy_from_slice(digits);
            self.len = digits.len();
            self.high = high;
        }
        &self.text[..self.len]
    }
}

/// `{"resultType":...,"result":...}` for an engine answer; `at_ms` is an instant query's
/// time (the timestamp of its vector samples and scalar).
pub fn write_engine_value(out: &mut Vec<u8>, value: &Value, at_ms: i64) {
    let mut pieces = Pieces::from(std::mem::take(out));
    write_engine_pieces(&mut pieces, value, at_ms);
    *out = pieces.into_vec();
}

/// As [`write_engine_value`], with a big matrix's parts left as pieces of their own.
pub fn write_engine_pieces(out: &mut Pieces, value: &Value, at_ms: i64) {
    let kind = match value {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "vector",
        Value::Matrix(_) => "matrix",
    };
    let head = &mut out.open;
    head.extend_from_slice(b"{\"resultType\":\"");
    head.extend_from_slice(kind.as_bytes());
    head.extend_from_slice(b"\",\"result\":");
    match value {
        Value::Scalar(v) => write_point(head, at_ms, *v, true, &mut Stamps::default()),
        Value::String(s) => {
            head.push(b'[');
            write_timestamp(head, at_ms);
            head.push(b',');
            write_str(head, s);
            head.push(b']');
        }
        Value::Vector(samples) => {
            let mut stamps = Stamps::default();
            write_array(head, samples, |out, s| {
                out.extend_from_slice(b"{\"metric\":");
                write_labels(out, &s.labels);
                out.extend_from_slice(b",\"value\":");
                write_point(out, at_ms, s.value, true, &mut stamps);
                out.push(b'}');
            })
        }
        Value::Matrix(series) => write_matrix(out, series),
    }
    out.open.push(b'}');
}

/// Answers of at least this many points are written on several threads.
const PARALLEL_POINTS: usize = 100_000;

/// A matrix's `[...]`. A big one is cut into runs of series with about as many points each,
/// written on as many threads (up to four), each run into a piece of its own.
fn write_matrix(out: &mut Pieces, series: &[RangeSeries]) {
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let threads = if points >= PARALLEL_POINTS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    out.open.push(b'[');
    if threads <= 1 {
        out.open.reserve(size_bound(series));
        write_series(&mut out.open, series, true);
    } else {
        let mut parts = Vec::with_capacity(threads);
        let (mut from, mut taken) = (0, 0);
        for (i, s) in series.iter().enumerate() {
            taken += s.points.len();
            if taken * threads >= points * (parts.len() + 1) {
                parts.push(&series[from..=i]);
                from = i + 1;
            }
        }
        if from < series.len() {
            parts.push(&series[from..]);
        }
        let written: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let others: Vec<_> = parts[1..]
                .iter()
                .map(|part| {
                    scope.spawn(move || {
                        let mut buf = Vec::with_capacity(size_bound(part));
                        write_series(&mut buf, part, false);
                        buf
                    })
                })
                .collect();
            out.open.reserve(size_bound(parts[0]));
            write_series(&mut out.open, parts[0], true);
            others
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for part in written {
            out.add(part);
        }
    }
    out.open.push(b']');
}

/// About the most bytes a run of series takes: 44 a point (`,[`, a timestamp of this era
/// with milliseconds, `,"`, at most 24 for the value, `"]`), each label its name and value
/// and 6 more, and 30 a series; more only where labels need escaping. Room reserved and
/// never written costs no memory, so the bound may be loose.
fn size_bound(series: &[RangeSeries]) -> usize {
    series
        .iter()
        .map(|s| {
            let labels: usize = s.labels.iter().map(|(n, v)| n.len() + v.len() + 6).sum();
            44 * s.points.len() + labels + 30
        })
        .sum()
}

/// `{"metric":...,"values":[...]}` for each series, comma-separated, after a comma too
/// unless `first`.
fn write_series(out: &mut Vec<u8>, series: &[RangeSeries], first: bool) {
    let mut stamps = Stamps::default();
    for (i, s) in series.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"metric\":");
        write_labels(out, &s.labels);
        out.extend_from_slice(b",\"values\":[");
        for (k, &(t, v)) in s.points.iter().enumerate() {
            write_point(out, t, v, k == 0, &mut stamps);
        }
        out.extend_from_slice(b"]}");
    }
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
            1e-5,
            -1e-5,
            9.99999e-6,
            1.00001e-5,
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
            // up while Go's strconv (and zmij) round to even: Prometheus writes the even one.
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

    #[test]
    fn big_matrices_written_in_parts_equal_one_pass() {
        // Series of uneven sizes, some empty, so parts end anywhere.
        let series: Vec<RangeSeries> = (0..400)
            .map(|i: i64| RangeSeries {
                labels: Labels::new(vec![("i".into(), i.to_string())]),
                points: (0..(i * 37) % 1_100)
                    .map(|k| (1_700_000_000_000 + k * 15_250, (i * k) as f64 / 7.0))
                    .collect(),
            })
            .collect();
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        assert!(points >= PARALLEL_POINTS, "{points}");
        let mut parted = Pieces::default();
        write_matrix(&mut parted, &series);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        assert_eq!(
            parted.len(),
            threads + 1,
            "a piece a thread, then the closing bracket"
        );
        let parted = parted.into_vec();
        let mut one = vec![b'['];
        write_series(&mut one, &series, true);
        one.push(b']');
        assert_eq!(
            String::from_utf8(parted).unwrap(),
            String::from_utf8(one.clone()).unwrap()
        );
        let parsed: serde_json::Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(parsed.as_array().map(Vec::len), Some(400));
        assert_eq!(
            parsed[5]["values"][2][0],
            serde_json::json!(1_700_000_030.5)
        );
    }

    #[test]
    fn timestamps_in_a_row_are_written_as_alone() {
        // Runs that cross the kept leading digits (9_999 -> 10_000 s, 19_999 -> 20_000 s,
        // 99_999_999 -> 100_000_000 s), negative times, and jumps back.
        let mut times: Vec<i64> = Vec::new();
        for around in [
            0i64,
            10_000_000,
            20_000_000,
            100_000_000_000,
            1_700_000_000_000,
        ] {
            times.extend((-40..40).map(|k| around + k * 250));
        }
        times.extend([
            -1,
            -999,
            -1_000,
            -10_000_001,
            5,
            1_700_000_000_000,
            999_999_999_999,
        ]);
        let series = vec![RangeSeries {
            labels: Labels::new(vec![]),
            points: times.iter().map(|&t| (t, 1.5)).collect(),
        }];
        let mut out = Vec::new();
        write_series(&mut out, &series, true);
        let mut expected = b"{\"metric\":{},\"values\":[".to_vec();
        for (k, &t) in times.iter().enumerate() {
            if k > 0 {
                expected.push(b',');
            }
            expected.push(b'[');
            write_timestamp(&mut expected, t);
            expected.extend_from_slice(b",\"1.5\"]");
        }
        expected.extend_from_slice(b"]}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
