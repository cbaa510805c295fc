//! The synthetic data set of the engine benchmarks: one day of 1 600 series scraped every
//! 30 s, shared by `benches/engine.rs`, `examples/engine_data.rs` and
//! `examples/engine_time.rs` so that promgate, Prometheus and VictoriaMetrics all answer
//! over exactly the same samples.
//!
//! 40 targets (4 jobs × 10 instances), each with:
//! - `http_requests_total{method, code}`: 2 × 5 = 10 counters (400 in all);
//! - `http_request_duration_seconds` classic histograms per method: 10 `_bucket` series
//!   (9 bounds and `+Inf`), `_sum` and `_count`: 24 series (960 in all, 800 of them buckets);
//! - `queue_depth{queue}`: 5 gauges (200 in all);
//! - `up`: 1 gauge (40 in all).
//!
//! Every instance restarts about twice a day, resetting all its counters, so `rate` meets
//! real counter resets. Samples sit 7 s past the 30 s grid so no query step lands on a
//! sample, which is the common case in production and exercises the lookback.
//!
//! Values are deterministic functions of (series, scrape index), so each series can be
//! generated on its own without holding the whole set.

// Each includer (bench, data printer, timer) uses a different part of this file.
#![allow(dead_code)]

use std::fmt::Write as _;

pub const SCRAPE_MS: i64 = 30_000;
/// How far past the 30 s grid every sample lies.
pub const OFFSET_MS: i64 = 7_000;
pub const DAY_MS: i64 = 86_400_000;
pub const SCRAPES: i64 = DAY_MS / SCRAPE_MS;

pub const JOBS: [&str; 4] = ["api", "web", "auth", "billing"];
pub const INSTANCES_PER_JOB: usize = 10;
const METHODS: [&str; 2] = ["GET", "POST"];
/// Status codes and their share of requests.
const CODES: [(&str, f64); 5] = [
    ("200", 0.80),
    ("201", 0.10),
    ("404", 0.06),
    ("500", 0.03),
    ("503", 0.01),
];
/// Bucket bounds (as Prometheus 3 writes them) and the share of requests at or below each.
const BUCKETS: [(&str, f64); 10] = [
    ("0.005", 0.02),
    ("0.01", 0.05),
    ("0.025", 0.15),
    ("0.05", 0.30),
    ("0.1", 0.50),
    ("0.25", 0.75),
    ("0.5", 0.88),
    ("1.0", 0.95),
    ("2.5", 0.99),
    ("+Inf", 1.0),
];
const QUEUES: [&str; 5] = ["ingest", "email", "billing", "search", "export"];

/// Which generator a series' values come from.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Requests { method: usize, code: usize },
    Bucket { method: usize, bucket: usize },
    HistogramSum { method: usize },
    HistogramCount { method: usize },
    Queue { queue: usize },
    Up,
}

/// One series: its metric name, its other labels (sorted by name), and how to make it.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    /// The target's index, 0..40: the seed of its restarts.
    pub target: usize,
    pub kind: Kind,
}

impl SeriesSpec {
    /// All labels including `__name__`, as owned pairs.
    pub fn label_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![("__name__".to_string(), self.name.to_string())];
        pairs.extend(self.labels.iter().map(|(k, v)| (k.to_string(), v.clone())));
        pairs
    }

    /// `name{a="x",b="y"}` in the text formats' syntax.
    pub fn text_name(&self) -> String {
        let mut out = String::from(self.name);
        out.push('{');
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
        out
    }
}

/// The data set's time span: scrapes at `start_ms + OFFSET_MS + k * scrape_ms` for
/// `k` in `0..scrapes`, of the first `targets` targets.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// A multiple of the scrape interval.
    pub start_ms: i64,
    pub scrape_ms: i64,
    pub scrapes: i64,
    pub targets: usize,
}

impl Dataset {
    /// The day that ends at `end_ms` rounded down to the scrape interval.
    pub fn ending_at(end_ms: i64) -> Self {
        Self::spanning(end_ms, 1, SCRAPE_MS, JOBS.len() * INSTANCES_PER_JOB)
    }

    /// `days` days ending at `end_ms` rounded down to `scrape_ms`, scraped every
    /// `scrape_ms` (a divisor of a day), of the first `targets` targets (40 series each).
    /// Counters grow by the same amounts per scrape whatever the interval.
    pub fn spanning(end_ms: i64, days: i64, scrape_ms: i64, targets: usize) -> Self {
        let end = end_ms - end_ms.rem_euclid(scrape_ms);
        Dataset {
            start_ms: end - days * DAY_MS,
            scrape_ms,
            scrapes: days * DAY_MS / scrape_ms,
            targets: targets.min(JOBS.len() * INSTANCES_PER_JOB),
        }
    }

    /// The range queries' span: the whole day, on the 30 s grid (off the samples).
    pub fn query_start_ms(&self) -> i64 {
        self.start_ms
    }

    pub fn query_end_ms(&self) -> i64 {
        self.start_ms + self.scrapes * self.scrape_ms
    }

    pub fn timestamps(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.scrapes).map(move |k| self.start_ms + OFFSET_MS + k * self.scrape_ms)
    }

    pub fn series(&self) -> Vec<SeriesSpec> {
        let mut out = Vec::with_capacity(1_600);
        for (j, job) in JOBS.iter().enumerate() {
            for i in 0..INSTANCES_PER_JOB {
                let target = j * INSTANCES_PER_JOB + i;
                if target >= self.targets {
                    break;
                }
                let instance = format!("10.0.{j}.{i}:8080");
                let base = |extra: &[(&'static str, String)]| {
                    let mut l = vec![("instance", instance.clone()), ("job", job.to_string())];
                    l.extend_from_slice(extra);
                    l.sort_by(|a, b| a.0.cmp(b.0));
                    l
                };
                for (m, method) in METHODS.iter().enumerate() {
                    for (c, (code, _)) in CODES.iter().enumerate() {
                        out.push(SeriesSpec {
                            name: "http_requests_total",
                            labels: base(&[
                                ("method", method.to_string()),
                                ("code", code.to_string()),
                            ]),
                            target,
                            kind: Kind::Requests { method: m, code: c },
                        });
                    }
                }
                for (m, method) in METHODS.iter().enumerate() {
                    for (b, (le, _)) in BUCKETS.iter().enumerate() {
                        out.push(SeriesSpec {
                            name: "http_request_duration_seconds_bucket",
                            labels: base(&[("method", method.to_string()), ("le", le.to_string())]),
                            target,
                            kind: Kind::Bucket {
                                method: m,
                                bucket: b,
                            },
                        });
                    }
                    out.push(SeriesSpec {
                        name: "http_request_duration_seconds_sum",
                        labels: base(&[("method", method.to_string())]),
                        target,
                        kind: Kind::HistogramSum { method: m },
                    });
                    out.push(SeriesSpec {
                        name: "http_request_duration_seconds_count",
                        labels: base(&[("method", method.to_string())]),
                        target,
                        kind: Kind::HistogramCount { method: m },
                    });
                }
                for (q, queue) in QUEUES.iter().enumerate() {
                    out.push(SeriesSpec {
                        name: "queue_depth",
                        labels: base(&[("queue", queue.to_string())]),
                        target,
                        kind: Kind::Queue { queue: q },
                    });
                }
                out.push(SeriesSpec {
                    name: "up",
                    labels: base(&[]),
                    target,
                    kind: Kind::Up,
                });
            }
        }
        out
    }

    /// The series' samples in time order.
    pub fn samples(&self, spec: &SeriesSpec) -> Vec<(i64, f64)> {
        let mut out = Vec::with_capacity(self.scrapes as usize);
        let mut total = 0.0f64;
        for (k, t) in self.timestamps().enumerate() {
            let k = k as i64;
            let restarted = restarts_at(spec.target, k);
            let v = match spec.kind {
                Kind::Requests { method, code } => {
                    if restarted {
                        total = 0.0;
                    }
                    let n = requests(spec.target, method, k);
                    // Rounding each code's share on its own keeps every counter integral.
                    total += (n * CODES[code].1).round();
                    total
                }
                Kind::Bucket { method, bucket } => {
                    if restarted {
                        total = 0.0;
                    }
                    let n = requests(spec.target, method, k);
                    // Floor of a growing share: buckets stay cumulative across `le`.
                    total += (n * BUCKETS[bucket].1).floor();
                    total
                }
                Kind::HistogramCount { method } => {
                    if restarted {
                        total = 0.0;
                    }
                    total += requests(spec.target, method, k);
                    total
                }
                Kind::HistogramSum { method } => {
                    if restarted {
                        total = 0.0;
                    }
                    // About 0.12 s per request, in whole milliseconds so the text is short.
                    total += (requests(spec.target, method, k) * 120.0).round() / 1000.0;
                    (total * 1000.0).round() / 1000.0
                }
                Kind::Queue { queue } => {
                    let phase = (spec.target * 5 + queue) as f64;
                    let wave = (k as f64 / 97.0 + phase).sin() * 40.0;
                    let noise = (mix(spec.target as u64 * 31 + queue as u64, k as u64) % 1000)
                        as f64
                        / 100.0;
                    ((50.0 + wave + noise) * 100.0).round() / 100.0
                }
                Kind::Up => {
                    if restarted {
                        0.0
                    } else {
                        1.0
                    }
                }
            };
            out.push((t, v));
        }
        out
    }

    /// Every series with its samples, as OpenMetrics text (seconds) for promtool's backfill.
    pub fn write_openmetrics(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let series = self.series();
        let mut family = "";
        let mut line = String::new();
        // Families must be contiguous in OpenMetrics: series() keeps targets together,
        // so print family by family instead.
        for (fam, kind) in [
            ("http_requests", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("queue_depth", "gauge"),
            ("up", "gauge"),
        ] {
            for spec in series.iter().filter(|s| family_of(s.name) == fam) {
                if family != fam {
                    writeln!(out, "# TYPE {fam} {kind}")?;
                    family = fam;
                }
                let name = spec.text_name();
                for (t, v) in self.samples(spec) {
                    line.clear();
                    let _ = writeln!(line, "{name} {v} {}.{:03}", t / 1000, t % 1000);
                    out.write_all(line.as_bytes())?;
                }
            }
        }
        writeln!(out, "# EOF")
    }

    /// Every series with its samples, as Prometheus text format with ms timestamps, for
    /// VictoriaMetrics' `/api/v1/import/prometheus`.
    pub fn write_prometheus_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut line = String::new();
        for spec in self.series() {
            let name = spec.text_name();
            for (t, v) in self.samples(&spec) {
                line.clear();
                let _ = writeln!(line, "{name} {v} {t}");
                out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }
}

fn family_of(name: &str) -> &str {
    if name == "http_requests_total" {
        "http_requests"
    } else if name.starts_with("http_request_duration_seconds") {
        "http_request_duration_seconds"
    } else {
        name
    }
}

/// A 64-bit hash of two numbers (splitmix64's finaliser): cheap and reproducible.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the target restarted just before scrape `k`: about twice a day.
fn restarts_at(target: usize, k: i64) -> bool {
    k > 0 && mix(target as u64 + 1_000, k as u64) % (SCRAPES as u64 / 2) == 0
}

/// Requests a target served for one method during scrape interval `k`: a daily wave with
/// noise, so rates vary from step to step.
fn requests(target: usize, method: usize, k: i64) -> f64 {
    let base = if method == 0 { 300.0 } else { 60.0 };
    let day = (k as f64 / SCRAPES as f64 * std::f64::consts::TAU + target as f64).sin();
    let noise = (mix(target as u64 * 2 + method as u64, k as u64) % 40) as f64;
    (base * (1.0 + 0.5 * day) + noise).round()
}

/// The query classes compared, by short name: each runs as a range query over the whole day
/// at a 30 s step.
pub const RANGE_QUERIES: [(&str, &str); 11] = [
    ("raw", "http_requests_total"),
    ("rate", "rate(http_requests_total[5m])"),
    (
        "sum_by_rate",
        "sum by (job) (rate(http_requests_total[5m]))",
    ),
    ("sum_rate", "sum(rate(http_requests_total[5m]))"),
    ("topk_rate", "topk(5, rate(http_requests_total[5m]))"),
    (
        "ratio_join",
        "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "hist_quantile",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "subquery",
        "max_over_time(rate(http_requests_total[5m])[1h:1m])",
    ),
    ("avg_over_time", "avg_over_time(queue_depth[10m])"),
    (
        "quantile_over_time",
        "quantile_over_time(0.9, queue_depth[10m])",
    ),
    ("count", "count(http_requests_total)"),
];

/// The classes also timed as instant queries at the end of the day.
pub const INSTANT_QUERIES: [&str; 5] = [
    "rate",
    "sum_by_rate",
    "hist_quantile",
    "subquery",
    "quantile_over_time",
];

pub fn query(name: &str) -> &'static str {
    RANGE_QUERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, q)| *q)
        .expect("a known query name")
}
