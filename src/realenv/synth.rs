//! Synthetic metrics in the OpenMetrics text format that promtool backfills: a counter with
//! resets, a gauge and a classic histogram over a few instances. Every value is a pure
//! function of the series and the timestamp, so two replicas written with different scrape
//! offsets or gaps hold the same underlying data, and a reference server can be given the
//! same data with extra labels.

use std::fmt::Write;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// First and last sample time (inclusive bound on the last), in unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    pub interval_ms: i64,
    /// Shifts every sample (a replica scrapes at another phase).
    pub offset_ms: i64,
    /// Half-open ranges `[from, to)` with no samples (a replica that was down).
    pub gaps: Vec<(i64, i64)>,
    /// Labels added to every series (to build a reference server holding external labels
    /// as ordinary labels).
    pub extra_labels: Vec<(String, String)>,
    /// Instances per metric.
    pub instances: usize,
}

impl SynthSpec {
    /// `hours` of data at 15 s ending `end_ms`, over four instances.
    pub fn hours_until(end_ms: i64, hours: i64) -> SynthSpec {
        let interval_ms = 15_000;
        let end_ms = end_ms - end_ms.rem_euclid(interval_ms);
        SynthSpec {
            start_ms: end_ms - hours * 3_600_000,
            end_ms,
            interval_ms,
            offset_ms: 0,
            gaps: Vec::new(),
            extra_labels: Vec::new(),
            instances: 4,
        }
    }

    pub fn offset(mut self, ms: i64) -> Self {
        self.offset_ms = ms;
        self
    }

    pub fn gap(mut self, from_ms: i64, to_ms: i64) -> Self {
        self.gaps.push((from_ms, to_ms));
        self
    }

    pub fn extra_label(mut self, name: &str, value: &str) -> Self {
        self.extra_labels
            .push((name.to_string(), value.to_string()));
        self
    }

    fn timestamps(&self) -> impl Iterator<Item = i64> + '_ {
        let first = self.start_ms + self.offset_ms;
        (0..)
            .map(move |k| first + k * self.interval_ms)
            .take_while(move |t| *t <= self.end_ms)
            .filter(move |t| !self.gaps.iter().any(|(a, b)| *t >= *a && *t < *b))
    }
}

/// Counter increase per second of instance `i`.
fn rate(i: usize) -> f64 {
    0.5 + i as f64 * 0.75
}

/// The counter restarts from zero every this many milliseconds on instance 0.
const RESET_EVERY_MS: i64 = 3 * 3_600_000;

/// `demo_requests_total` of (instance, method) at `t`.
pub fn counter_value(instance: usize, method: usize, t: i64) -> f64 {
    let since = if instance == 0 {
        t.rem_euclid(RESET_EVERY_MS)
    } else {
        t.rem_euclid(1 << 40)
    };
    ((since as f64 / 1000.0) * rate(instance) * (1.0 + method as f64)).floor()
}

/// `demo_temperature_celsius` of an instance at `t`.
pub fn gauge_value(instance: usize, t: i64) -> f64 {
    let phase = (t as f64 / 1000.0) / 1800.0 + instance as f64;
    ((20.0 + 5.0 * phase.sin()) * 1000.0).round() / 1000.0
}

/// Upper bounds of the histogram's buckets and the share of observations at or below each.
pub const BUCKETS: [(&str, f64); 4] = [("0.1", 0.5), ("0.5", 0.8), ("1", 0.95), ("+Inf", 1.0)];

/// Observations so far of the histogram of an instance at `t`.
pub fn histogram_count(instance: usize, t: i64) -> f64 {
    (t.rem_euclid(1 << 40) as f64 / 1000.0 * rate(instance) * 4.0).floor()
}

fn labels(pairs: &[(&str, String)], extra: &[(String, String)]) -> String {
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    all.extend(extra.iter().cloned());
    all.sort();
    let inner: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

fn secs(t: i64) -> String {
    if t % 1000 == 0 {
        (t / 1000).to_string()
    } else {
        format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
    }
}

/// The OpenMetrics text, ending with `# EOF`.
pub fn openmetrics(spec: &SynthSpec) -> String {
    let mut out = String::new();
    let times: Vec<i64> = spec.timestamps().collect();
    let instance = |i: usize| format!("i-{i}");
    let extra = &spec.extra_labels;

    out.push_str("# HELP demo_requests Requests served.\n# TYPE demo_requests counter\n");
    for i in 0..spec.instances {
        for (m, method) in ["get", "post"].iter().enumerate() {
            let l = labels(
                &[
                    ("instance", instance(i)),
                    ("job", "api".into()),
                    ("method", method.to_string()),
                ],
                extra,
            );
            for &t in &times {
                let _ = writeln!(
                    out,
                    "demo_requests_total{l} {} {}",
                    counter_value(i, m, t),
                    secs(t)
                );
            }
        }
    }

    out.push_str(
        "# HELP demo_temperature_celsius Temperature.\n# TYPE demo_temperature_celsius gauge\n",
    );
    for i in 0..spec.instances {
        let l = labels(&[("instance", instance(i)), ("job", "api".into())], extra);
        for &t in &times {
            let _ = writeln!(
                out,
                "demo_temperature_celsius{l} {} {}",
                gauge_value(i, t),
                secs(t)
            );
        }
    }

    out.push_str("# HELP demo_request_duration_seconds Request latency.\n# TYPE demo_request_duration_seconds histogram\n");
    for i in 0..spec.instances {
        for (le, share) in BUCKETS {
            let l = labels(
                &[
                    ("instance", instance(i)),
                    ("job", "api".into()),
                    ("le", le.into()),
                ],
                extra,
            );
            for &t in &times {
                let v = (histogram_count(i, t) * share).floor();
                let _ = writeln!(
                    out,
                    "demo_request_duration_seconds_bucket{l} {v} {}",
                    secs(t)
                );
            }
        }
        let l = labels(&[("instance", instance(i)), ("job", "api".into())], extra);
        for &t in &times {
            let sum = (histogram_count(i, t) * 0.3 * 1000.0).round() / 1000.0;
            let _ = writeln!(
                out,
                "demo_request_duration_seconds_sum{l} {sum} {}",
                secs(t)
            );
        }
        for &t in &times {
            let _ = writeln!(
                out,
                "demo_request_duration_seconds_count{l} {} {}",
                histogram_count(i, t),
                secs(t)
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Series per instance: 2 counters, 1 gauge, 4 buckets + sum + count.
pub const SERIES_PER_INSTANCE: usize = 9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_offsets_shape_the_timestamps() {
        let spec = SynthSpec::hours_until(3_600_000 * 10, 1)
            .offset(5_000)
            .gap(3_600_000 * 9 + 60_000, 3_600_000 * 9 + 120_000);
        let times: Vec<i64> = spec.timestamps().collect();
        assert_eq!(times[0], 3_600_000 * 9 + 5_000);
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert!(
            !times
                .iter()
                .any(|t| (3_600_000 * 9 + 60_000..3_600_000 * 9 + 120_000).contains(t))
        );
        assert_eq!(times.len(), 240 - 4);
    }

    #[test]
    fn text_is_openmetrics_with_every_series_and_eof() {
        let spec = SynthSpec::hours_until(1_700_000_000_000, 1).extra_label("cluster", "eu1");
        let text = openmetrics(&spec);
        assert!(text.ends_with("# EOF\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 241 * spec.instances * SERIES_PER_INSTANCE);
        assert!(text.contains(
            "demo_requests_total{cluster=\"eu1\",instance=\"i-0\",job=\"api\",method=\"get\"}"
        ));
    }

    #[test]
    fn counters_reset_only_on_instance_zero() {
        let before = counter_value(0, 0, RESET_EVERY_MS - 1000);
        let after = counter_value(0, 0, RESET_EVERY_MS);
        assert!(after < before);
        assert!(counter_value(1, 0, RESET_EVERY_MS) > counter_value(1, 0, RESET_EVERY_MS - 1000));
    }

    #[test]
    fn buckets_are_cumulative() {
        let t = 1_700_000_000_000;
        let values: Vec<f64> = BUCKETS
            .iter()
            .map(|(_, s)| (histogram_count(2, t) * s).floor())
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*values.last().unwrap(), histogram_count(2, t));
    }
}
