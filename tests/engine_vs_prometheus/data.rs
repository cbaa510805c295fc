//! The data both engines read, as OpenMetrics text for promtool: counters with resets, gauges
//! with negative values and NaN, a classic histogram with a reset, a series with a gap, series
//! that start late or end early, over several jobs and instances. Samples are 15 s apart and
//! 7 s off the minute, so no query step lands on a sample unless a query asks for it. Values
//! come from a fixed hash, so every run sees the same data.

use std::fmt::Write;

/// The first sample time of the data, minus [`PHASE_MS`] (a whole hour, in unix ms).
pub const T0_MS: i64 = 1_699_999_200_000;
/// Span of the data from [`T0_MS`]: two and a half hours.
pub const SPAN_MS: i64 = 9_000_000;
pub const INTERVAL_MS: i64 = 15_000;
/// Every sample is this far past a multiple of the interval.
pub const PHASE_MS: i64 = 7_000;
/// Samples per series when a series covers the whole span.
const STEPS: i64 = (SPAN_MS - PHASE_MS) / INTERVAL_MS + 1;

/// Sample time of step `k`.
pub fn at(k: i64) -> i64 {
    T0_MS + PHASE_MS + k * INTERVAL_MS
}

/// A number in [0, 1) fixed by `seed` and `k` (splitmix64).
fn noise(seed: u64, k: i64) -> f64 {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k as u64);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// One series: its labels (without the name) and which steps it has a sample at.
struct Series {
    labels: Vec<(&'static str, String)>,
    first: i64,
    last: i64,
    gap: Option<(i64, i64)>,
}

impl Series {
    fn new(labels: &[(&'static str, &str)]) -> Series {
        Series {
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            first: 0,
            last: STEPS - 1,
            gap: None,
        }
    }

    fn steps(&self) -> impl Iterator<Item = i64> + '_ {
        (self.first..=self.last).filter(|k| !self.gap.is_some_and(|(a, b)| *k >= a && *k < b))
    }

    fn label_text(&self, extra: Option<(&str, &str)>) -> String {
        let mut all: Vec<(&str, &str)> =
            self.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend(extra);
        all.sort();
        let inner: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{{{}}}", inner.join(","))
    }
}

fn write_series(out: &mut String, name: &str, labels: &str, points: &[(i64, f64)]) {
    for (t, v) in points {
        let v = if v.is_nan() {
            "NaN".to_string()
        } else {
            v.to_string()
        };
        let _ = writeln!(out, "{name}{labels} {v} {}", t / 1000);
    }
}

const TARGETS: [(&str, &str); 4] = [
    ("api", "a:80"),
    ("api", "b:80"),
    ("worker", "c:90"),
    ("worker", "d:90"),
];

/// The whole OpenMetrics text, ending with `# EOF`.
pub fn openmetrics() -> String {
    let mut out = String::new();
    counters(&mut out);
    gauges(&mut out);
    histogram(&mut out);
    out.push_str("# EOF\n");
    out
}

/// `app_requests_total`: uneven increments, resets on two series, and d:90 scraped only
/// from 25 min to 2 h 5 min.
fn counters(out: &mut String) {
    out.push_str("# HELP app_requests Requests served.\n# TYPE app_requests counter\n");
    for (i, (job, instance)) in TARGETS.iter().enumerate() {
        for (m, method) in ["get", "post"].iter().enumerate() {
            let mut s = Series::new(&[("job", job), ("instance", instance), ("method", method)]);
            let resets: &[i64] = match (i, m) {
                (0, 0) => &[200, 420],
                (2, 1) => &[333],
                _ => &[],
            };
            if i == 3 {
                (s.first, s.last) = (100, 500);
            }
            let seed = (i * 2 + m) as u64 + 1;
            let mut value = 1000.0 * i as f64;
            let points: Vec<(i64, f64)> = s
                .steps()
                .map(|k| {
                    let inc = (noise(seed, k) * 10.0 * (i + 1) as f64).floor() / 2.0;
                    value = if resets.contains(&k) {
                        inc
                    } else {
                        value + inc
                    };
                    (at(k), value)
                })
                .collect();
            write_series(out, "app_requests_total", &s.label_text(None), &points);
        }
    }
}

/// `app_temperature` (negative values; NaN now and then on c:90; a 5 min gap on b:80; d:90
/// ends after 75 min), `app_queue_depth` (integers, both series start late and end early)
/// and `app_build_info` (constant 1, to join on).
fn gauges(out: &mut String) {
    out.push_str("# HELP app_temperature Temperature.\n# TYPE app_temperature gauge\n");
    for (i, (job, instance)) in TARGETS.iter().enumerate() {
        let mut s = Series::new(&[("job", job), ("instance", instance)]);
        match i {
            1 => s.gap = Some((240, 260)),
            3 => s.last = 300,
            _ => {}
        }
        let points: Vec<(i64, f64)> = s
            .steps()
            .map(|k| {
                let v = 3.0 * (k as f64 / 40.0 + i as f64).sin() + noise(10 + i as u64, k) - 0.5;
                let v = if i == 2 && k % 97 == 0 {
                    f64::NAN
                } else {
                    (v * 1000.0).round() / 1000.0
                };
                (at(k), v)
            })
            .collect();
        write_series(out, "app_temperature", &s.label_text(None), &points);
    }

    out.push_str("# HELP app_queue_depth Queued jobs.\n# TYPE app_queue_depth gauge\n");
    for (i, (instance, first, last)) in [("c:90", 120, 400), ("e:90", 50, 580)].iter().enumerate() {
        let mut s = Series::new(&[("job", "worker"), ("instance", instance)]);
        (s.first, s.last) = (*first, *last);
        let mut depth = 3.0;
        let points: Vec<(i64, f64)> = s
            .steps()
            .map(|k| {
                depth = (depth + (noise(20 + i as u64, k) * 5.0).floor() - 2.0).clamp(-5.0, 20.0);
                (at(k), depth)
            })
            .collect();
        write_series(out, "app_queue_depth", &s.label_text(None), &points);
    }

    out.push_str("# HELP app_build_info Build.\n# TYPE app_build_info gauge\n");
    for (i, (job, instance)) in TARGETS.iter().enumerate() {
        let version = if i % 2 == 0 { "1.0" } else { "1.1" };
        let s = Series::new(&[("job", job), ("instance", instance), ("version", version)]);
        let points: Vec<(i64, f64)> = s.steps().map(|k| (at(k), 1.0)).collect();
        write_series(out, "app_build_info", &s.label_text(None), &points);
    }
}

/// `app_latency_seconds`, a classic histogram on the two api instances; b:80 restarts
/// (every bucket back to zero) at step 300.
fn histogram(out: &mut String) {
    const BUCKETS: [(&str, f64); 5] = [
        ("0.05", 0.2),
        ("0.1", 0.45),
        ("0.5", 0.8),
        ("1", 0.93),
        ("+Inf", 1.0),
    ];
    out.push_str("# HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram\n");
    for (i, (job, instance)) in TARGETS[..2].iter().enumerate() {
        let s = Series::new(&[("job", job), ("instance", instance)]);
        let mut buckets = [0.0; BUCKETS.len()];
        let mut sum = 0.0;
        let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); BUCKETS.len() + 2];
        for k in s.steps() {
            if i == 1 && k == 300 {
                buckets = [0.0; BUCKETS.len()];
                sum = 0.0;
            }
            let n = (noise(30 + i as u64, k) * 20.0).floor();
            for (b, (_, share)) in BUCKETS.iter().enumerate() {
                buckets[b] += (n * share).floor();
                rows[b].push((at(k), buckets[b]));
            }
            sum += (n * noise(40 + i as u64, k) * 0.6 * 1000.0).round() / 1000.0;
            rows[BUCKETS.len()].push((at(k), (sum * 1000.0_f64).round() / 1000.0));
            rows[BUCKETS.len() + 1].push((at(k), buckets[BUCKETS.len() - 1]));
        }
        for (b, (le, _)) in BUCKETS.iter().enumerate() {
            let labels = s.label_text(Some(("le", le)));
            write_series(out, "app_latency_seconds_bucket", &labels, &rows[b]);
        }
        let labels = s.label_text(None);
        write_series(
            out,
            "app_latency_seconds_sum",
            &labels,
            &rows[BUCKETS.len()],
        );
        write_series(
            out,
            "app_latency_seconds_count",
            &labels,
            &rows[BUCKETS.len() + 1],
        );
    }
}
