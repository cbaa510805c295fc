//! Random PromQL from a small grammar, evaluated by promgate's engine over a fixed memory
//! store, instant and range: no query may panic or outlive its deadline, whatever it asks.
//!
//! The generator is seeded, so a failure names queries that fail the same way on every run.
//! `RANDOM_QUERIES=<n>` and `RANDOM_QUERIES_SEED=<seed>` explore further;
//! `RANDOM_QUERIES_TRACE=1` prints every evaluation before it runs, which names the query
//! when the process dies of something no unwind can catch (an abort on a failed allocation).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use promgate::model::Labels;
use promgate::promql::engine::{Engine, EngineError, EngineOptions, QueryOutput};
use promgate::storage::MemoryStore;
use promgate::time::{MAX_TIME_MS, MIN_TIME_MS};

const STALE: u64 = 0x7ff0_0000_0000_0002;

/// Most points per series the HTTP API lets a range query have.
const MAX_POINTS: i64 = 11_000;

/// Each evaluation stops at this deadline; one that returns much later ignores it.
const DEADLINE: Duration = Duration::from_secs(2);
const DEADLINE_SLACK: Duration = Duration::from_secs(3);

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
    let series = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..41).map(|i| (i * 15_000, f(i))).collect()
    };
    let counter = |job: &str, instance: &str, code: &str| {
        labels(&[
            ("__name__", "http_requests_total"),
            ("job", job),
            ("instance", instance),
            ("code", code),
        ])
    };
    s.append(
        counter("api", "a", "200"),
        &series(&|i| {
            if i < 20 {
                i as f64 * 10.0
            } else {
                (i - 20) as f64 * 3.0
            }
        }),
    );
    s.append(counter("api", "b", "500"), &series(&|i| (i / 4) as f64));
    s.append(
        counter("web", "a", "200"),
        &series(&|i| 1e15 + i as f64 * 1e14),
    );
    s.append(
        labels(&[("__name__", "node_temp"), ("instance", "a")]),
        &series(&|i| 40.0 + (i as f64 / 3.0).sin() * 5.0),
    );
    s.append(
        labels(&[("__name__", "node_temp"), ("instance", "b")]),
        &series(&|i| match i {
            10 => f64::INFINITY,
            26 => f64::NEG_INFINITY,
            _ if i % 7 == 0 => f64::NAN,
            _ => -(i as f64) + 0.5,
        }),
    );
    // Up, then a staleness marker at 300 s, then nothing until it comes back at 450 s.
    let up: Vec<(i64, f64)> = series(&|i| if i == 20 { stale } else { 1.0 })
        .into_iter()
        .filter(|(t, _)| !(315_000..450_000).contains(t))
        .collect();
    s.append(
        labels(&[("__name__", "up"), ("job", "api"), ("instance", "a")]),
        &up,
    );
    s.append(
        labels(&[("__name__", "up"), ("job", "web"), ("instance", "a")]),
        &series(&|i| (i % 2) as f64),
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
                &series(&|i| i as f64 * per_step),
            );
        }
        s.append(
            labels(&[("__name__", "req_duration_seconds_sum"), ("job", job)]),
            &series(&|i| i as f64 * 2.5),
        );
        s.append(
            labels(&[("__name__", "req_duration_seconds_count"), ("job", job)]),
            &series(&|i| i as f64 * 5.0),
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
        &series(&|i| if i % 2 == 0 { -0.0 } else { f64::MAX }),
    );
    s.append(
        labels(&[("__name__", "old_metric"), ("job", "api")]),
        &[(-1_000_000_000, 1.0), (-999_985_000, 2.0), (-15_000, 3.0)],
    );
    s
}

/// xorshift64*: small, deterministic, and good enough to pick grammar branches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Scalar,
    Vector,
    Matrix,
    Str,
}

const METRICS: &[&str] = &[
    "http_requests_total",
    "node_temp",
    "up",
    "req_duration_seconds_bucket",
    "req_duration_seconds_sum",
    "req_duration_seconds_count",
    "sparse",
    "odd_labels",
    "old_metric",
    "no_such_metric",
];
const LABELS: &[&str] = &[
    "job", "instance", "code", "le", "path", "empty", "__name__", "nope",
];
const VALUES: &[&str] = &[
    "api",
    "a",
    "b",
    "200",
    "0.1",
    "+Inf",
    "",
    "web",
    "x",
    "ünïcødé ✓",
];
const REGEXES: &[&str] = &[
    ".*", ".+", "a|b", "2..", "", "(.*)", "(a)?(b)?", "[^a]*", "\\\\d+", "^api$", "(?i)API",
    ".*.*.*.*", "x{0,3}", "\\\\.", "\\\\\\\\", "(|)", "ü+",
];
const DURATIONS: &[&str] = &[
    "1ms", "1s", "15s", "30s", "1m", "5m", "10m", "1h", "1h30m", "1d", "1w", "1y", "59s999ms",
    "2m1s", "90s", "100ms", "7", "0.5", "3600",
];
/// Subquery steps: coarse enough that a window holds at most some thousands of steps.
const SUBQUERY_STEPS: &[&str] = &["", "1s", "15s", "1m", "5m", "1h", "10", "7s"];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.5",
    "2",
    "10",
    "100",
    "NaN",
    "Inf",
    "-Inf",
    "+Inf",
    "1e308",
    "-1e308",
    "1e-308",
    "5e-324",
    "0x10",
    "0x7fffffffffffffff",
    "-0",
    "3.14159",
    "1_000",
    "0.99",
    "1.5",
    "9007199254740993",
    "1e30",
];

/// Range functions taking a matrix and nothing else.
const MATRIX_FNS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "first_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
    "present_over_time",
    "absent_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "xrate",
    "xincrease",
    "xdelta",
];
/// Functions of one vector.
const VECTOR_FNS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "round",
    "timestamp",
    "sort",
    "sort_desc",
    "absent",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "deg",
    "rad",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
];
const AGGS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
];
const PARAM_AGGS: &[&str] = &["topk", "bottomk", "quantile", "limitk", "limit_ratio"];
const ARITH: &[&str] = &["+", "-", "*", "/", "%", "^", "atan2"];
const CMP: &[&str] = &["==", "!=", ">", "<", ">=", "<="];
const SET: &[&str] = &["and", "or", "unless"];

struct Gen {
    rng: Rng,
}

impl Gen {
    fn expr(&mut self, ty: Ty, depth: u32) -> String {
        // Now and then an argument of the wrong type: the parser or the engine must say no.
        let ty = if self.rng.chance(3) {
            [Ty::Scalar, Ty::Vector, Ty::Matrix, Ty::Str][self.rng.below(4)]
        } else {
            ty
        };
        let leaf = depth == 0 || self.rng.chance(25);
        match ty {
            Ty::Scalar => self.scalar(depth, leaf),
            Ty::Vector => self.vector(depth, leaf),
            Ty::Matrix => self.matrix(depth, leaf),
            Ty::Str => self.string(),
        }
    }

    fn string(&mut self) -> String {
        format!("\"{}\"", self.rng.pick(VALUES))
    }

    fn duration(&mut self) -> String {
        self.rng.pick(DURATIONS).to_string()
    }

    fn number(&mut self) -> String {
        self.rng.pick(NUMBERS).to_string()
    }

    fn scalar(&mut self, depth: u32, leaf: bool) -> String {
        if leaf {
            return match self.rng.below(6) {
                0 => "time()".into(),
                1 => "pi()".into(),
                _ => self.number(),
            };
        }
        let d = depth - 1;
        match self.rng.below(6) {
            0 => format!("scalar({})", self.expr(Ty::Vector, d)),
            1 => {
                let op = self.rng.pick(ARITH);
                format!(
                    "{} {op} {}",
                    self.expr(Ty::Scalar, d),
                    self.expr(Ty::Scalar, d)
                )
            }
            2 => {
                let op = self.rng.pick(CMP);
                format!(
                    "{} {op} bool {}",
                    self.expr(Ty::Scalar, d),
                    self.expr(Ty::Scalar, d)
                )
            }
            3 => format!("-({})", self.expr(Ty::Scalar, d)),
            4 => format!("({})", self.expr(Ty::Scalar, d)),
            _ => self.number(),
        }
    }

    fn matchers(&mut self) -> String {
        let n = self.rng.below(3);
        let mut parts = Vec::new();
        for _ in 0..n {
            let label = self.rng.pick(LABELS);
            let m = match self.rng.below(4) {
                0 => format!("{label}=\"{}\"", self.rng.pick(VALUES)),
                1 => format!("{label}!=\"{}\"", self.rng.pick(VALUES)),
                2 => format!("{label}=~\"{}\"", self.rng.pick(REGEXES)),
                _ => format!("{label}!~\"{}\"", self.rng.pick(REGEXES)),
            };
            parts.push(m);
        }
        if parts.is_empty() && self.rng.chance(30) {
            return String::new();
        }
        format!("{{{}}}", parts.join(","))
    }

    fn modifiers(&mut self) -> String {
        let mut out = String::new();
        if self.rng.chance(15) {
            let sign = if self.rng.chance(30) { "-" } else { "" };
            let d = if self.rng.chance(10) {
                ["292y", "100000d", "15250w"][self.rng.below(3)].to_string()
            } else {
                self.duration()
            };
            out += &format!(" offset {sign}{d}");
        }
        if self.rng.chance(10) {
            let at = match self.rng.below(7) {
                0 => "start()".to_string(),
                1 => "end()".to_string(),
                2 => "-1".to_string(),
                3 => "1e10".to_string(),
                // The ends of time the API accepts, in seconds.
                4 => ["9223309901257", "-9223309901257"][self.rng.below(2)].to_string(),
                _ => ["0", "300", "600", "123.456"][self.rng.below(4)].to_string(),
            };
            out = format!(" @ {at}{out}");
        }
        out
    }

    fn selector(&mut self) -> String {
        let name = self.rng.pick(METRICS);
        let m = self.matchers();
        if self.rng.chance(5) {
            // No name at all: the matchers must select (and not match the empty string).
            return format!("{{__name__=~\"{name}|up\"}}");
        }
        format!("{name}{m}")
    }

    fn grouping(&mut self) -> String {
        if self.rng.chance(40) {
            return String::new();
        }
        let n = self.rng.below(3);
        let ls: Vec<&str> = (0..n).map(|_| self.rng.pick(LABELS)).collect();
        let kw = if self.rng.chance(50) { "by" } else { "without" };
        format!(" {kw} ({})", ls.join(", "))
    }

    fn vector(&mut self, depth: u32, leaf: bool) -> String {
        if leaf {
            return format!("{}{}", self.selector(), self.modifiers());
        }
        let d = depth - 1;
        match self.rng.below(20) {
            0..=2 => {
                let f = self.rng.pick(MATRIX_FNS);
                format!("{f}({})", self.expr(Ty::Matrix, d))
            }
            3..=4 => {
                let f = self.rng.pick(VECTOR_FNS);
                format!("{f}({})", self.expr(Ty::Vector, d))
            }
            5 => match self.rng.below(9) {
                0 => format!(
                    "clamp({}, {}, {})",
                    self.expr(Ty::Vector, d),
                    self.expr(Ty::Scalar, d),
                    self.expr(Ty::Scalar, d)
                ),
                1 => format!(
                    "clamp_min({}, {})",
                    self.expr(Ty::Vector, d),
                    self.expr(Ty::Scalar, d)
                ),
                2 => format!(
                    "round({}, {})",
                    self.expr(Ty::Vector, d),
                    self.expr(Ty::Scalar, d)
                ),
                3 => format!(
                    "predict_linear({}, {})",
                    self.expr(Ty::Matrix, d),
                    self.expr(Ty::Scalar, d)
                ),
                4 => format!(
                    "quantile_over_time({}, {})",
                    self.expr(Ty::Scalar, d),
                    self.expr(Ty::Matrix, d)
                ),
                5 => format!(
                    "double_exponential_smoothing({}, {}, {})",
                    self.expr(Ty::Matrix, d),
                    self.expr(Ty::Scalar, d),
                    self.expr(Ty::Scalar, d)
                ),
                6 => format!("vector({})", self.expr(Ty::Scalar, d)),
                7 => format!(
                    "clamp_max({}, {})",
                    self.expr(Ty::Vector, d),
                    self.expr(Ty::Scalar, d)
                ),
                _ => {
                    let f = ["sort_by_label", "sort_by_label_desc"][self.rng.below(2)];
                    format!(
                        "{f}({}, \"{}\", \"{}\")",
                        self.expr(Ty::Vector, d),
                        self.rng.pick(LABELS),
                        self.rng.pick(LABELS)
                    )
                }
            },
            6 => {
                let inner = match self.rng.below(3) {
                    0 => format!(
                        "sum by (le{}) (rate({}[{}]))",
                        if self.rng.chance(50) { ", job" } else { "" },
                        self.selector(),
                        self.duration()
                    ),
                    1 => "req_duration_seconds_bucket".to_string(),
                    _ => self.expr(Ty::Vector, d),
                };
                format!("histogram_quantile({}, {inner})", self.expr(Ty::Scalar, d))
            }
            7 => format!(
                "label_replace({}, \"{}\", \"{}\", \"{}\", \"{}\")",
                self.expr(Ty::Vector, d),
                self.rng
                    .pick(&["dst", "job", "__name__", "le", "a-b", "", "_"]),
                self.rng
                    .pick(&["$1", "$2", "${1}x", "$0", "", "$name", "$$", "x"]),
                self.rng.pick(LABELS),
                self.rng.pick(REGEXES)
            ),
            8 => {
                let n = self.rng.below(4);
                let srcs: Vec<String> = (0..n)
                    .map(|_| format!("\"{}\"", self.rng.pick(LABELS)))
                    .collect();
                let mut args = vec![
                    self.expr(Ty::Vector, d),
                    format!("\"{}\"", self.rng.pick(&["dst", "job", "__name__", "le"])),
                    format!("\"{}\"", self.rng.pick(&[",", "", "-", "\\\\"])),
                ];
                args.extend(srcs);
                format!("label_join({})", args.join(", "))
            }
            9..=10 => {
                let a = self.rng.pick(AGGS);
                let g = self.grouping();
                let inner = self.expr(Ty::Vector, d);
                if self.rng.chance(50) {
                    format!("{a}{g} ({inner})")
                } else {
                    format!("{a} ({inner}){g}")
                }
            }
            11 => {
                let a = self.rng.pick(PARAM_AGGS);
                let g = self.grouping();
                let p = self.expr(Ty::Scalar, d);
                format!("{a}{g} ({p}, {})", self.expr(Ty::Vector, d))
            }
            12 => {
                let g = self.grouping();
                format!(
                    "count_values{g} (\"{}\", {})",
                    self.rng.pick(&["value", "job", "le", "__name__", ""]),
                    self.expr(Ty::Vector, d)
                )
            }
            13..=15 => self.binary(d),
            16 => format!("-{}", self.expr(Ty::Vector, d)),
            17 => format!("({})", self.expr(Ty::Vector, d)),
            18 => format!("absent({})", self.expr(Ty::Vector, d)),
            _ => format!("{}{}", self.selector(), self.modifiers()),
        }
    }

    fn binary(&mut self, d: u32) -> String {
        let lhs_scalar = self.rng.chance(20);
        let lhs = if lhs_scalar {
            self.expr(Ty::Scalar, d)
        } else {
            self.expr(Ty::Vector, d)
        };
        let rhs_scalar = !lhs_scalar && self.rng.chance(25);
        let rhs = if rhs_scalar {
            self.expr(Ty::Scalar, d)
        } else {
            self.expr(Ty::Vector, d)
        };
        let both_vectors = !lhs_scalar && !rhs_scalar;
        let kind = self.rng.below(3);
        let op = match kind {
            0 => self.rng.pick(ARITH).to_string(),
            1 => {
                let op = self.rng.pick(CMP);
                if self.rng.chance(40) {
                    format!("{op} bool")
                } else {
                    op.to_string()
                }
            }
            _ => self.rng.pick(SET).to_string(),
        };
        let mut matching = String::new();
        if both_vectors && self.rng.chance(40) {
            let n = self.rng.below(3);
            let ls: Vec<&str> = (0..n).map(|_| self.rng.pick(LABELS)).collect();
            let kw = if self.rng.chance(50) {
                "on"
            } else {
                "ignoring"
            };
            matching = format!(" {kw}({})", ls.join(", "));
            if kind != 2 && self.rng.chance(40) {
                let side = if self.rng.chance(50) {
                    "group_left"
                } else {
                    "group_right"
                };
                let extra = if self.rng.chance(50) {
                    format!("({})", self.rng.pick(LABELS))
                } else {
                    String::new()
                };
                matching += &format!(" {side}{extra}");
            }
        }
        format!("{lhs} {op}{matching} {rhs}")
    }

    fn matrix(&mut self, depth: u32, leaf: bool) -> String {
        if leaf || self.rng.chance(60) {
            return format!(
                "{}[{}]{}",
                self.selector(),
                self.duration(),
                self.modifiers()
            );
        }
        let d = depth - 1;
        let inner = self.expr(Ty::Vector, d);
        // Subquery windows stay within some thousands of steps so that the test is quick.
        let (range, step) = loop {
            let range = self.duration();
            let step = self.rng.pick(SUBQUERY_STEPS).to_string();
            let r = seconds(&range);
            let s = if step.is_empty() {
                60.0
            } else {
                seconds(&step)
            };
            if r / s <= 5_000.0 {
                break (range, step);
            }
        };
        let wrapped = if inner.contains(' ') {
            format!("({inner})")
        } else {
            inner
        };
        format!("{wrapped}[{range}:{step}]{}", self.modifiers())
    }
}

/// Seconds in one of the durations above.
fn seconds(d: &str) -> f64 {
    if let Ok(n) = d.parse::<f64>() {
        return n;
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                's' => 1.0,
                'm' => 60.0,
                'h' => 3600.0,
                'd' => 86_400.0,
                'w' => 604_800.0,
                'y' => 31_536_000.0,
                _ => panic!("unit {c} in {d}"),
            }
        };
        total += num.parse::<f64>().unwrap() * unit;
        num.clear();
    }
    total
}

/// Evaluation times (ms): inside the data, at its edges, far before and after it, and the
/// extremes the HTTP API accepts (`promgate::time::{MIN,MAX}_TIME_MS`).
const TIMES: &[i64] = &[
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
const STEPS: &[i64] = &[
    15_000,
    1,
    1_000,
    60_000,
    7_000,
    86_400_000,
    31_536_000_000,
    1_000_000_000_000_000,
];

struct Failure {
    query: String,
    how: String,
    message: String,
}

enum Outcome {
    Ok,
    Err,
    Failed(String),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

fn evaluate<F>(rt: &tokio::runtime::Runtime, f: F) -> Outcome
where
    F: std::future::Future<Output = Result<QueryOutput, EngineError>>,
{
    let started = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(f)));
    let elapsed = started.elapsed();
    match result {
        Err(payload) => Outcome::Failed(format!("panicked: {}", panic_message(&*payload))),
        // A panic on the blocking pool reaches us as an error, not an unwind.
        Ok(Err(EngineError::Execution(msg))) if msg.contains("panicked") => Outcome::Failed(msg),
        _ if elapsed > DEADLINE + DEADLINE_SLACK => {
            Outcome::Failed(format!("took {elapsed:?}, past its {DEADLINE:?} deadline"))
        }
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(_)) => Outcome::Err,
    }
}

#[test]
fn random_queries_never_panic_and_mostly_evaluate() {
    let count: usize = std::env::var("RANDOM_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let seed: u64 = std::env::var("RANDOM_QUERIES_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        .max(1);
    let store = store();
    // The engine evaluates on the blocking pool, which a current-thread runtime has.
    let new_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let mut rt = new_runtime();
    let trace = std::env::var_os("RANDOM_QUERIES_TRACE").is_some();
    // Panics of this test's evaluations are collected and reported together below; their
    // default report would bury the summary. Other tests' panics are reported as usual.
    let default_hook = std::sync::Arc::new(std::panic::take_hook());
    let this_thread = std::thread::current().id();
    {
        let default_hook = default_hook.clone();
        std::panic::set_hook(Box::new(move |info| {
            let t = std::thread::current();
            let ours =
                t.id() == this_thread || t.name().is_some_and(|n| n.starts_with("tokio-runtime"));
            if !ours {
                default_hook(info);
            }
        }));
    }

    let started = Instant::now();
    let mut generator = Gen { rng: Rng(seed) };
    let mut parsed = 0usize;
    let mut evaluated_ok = 0usize;
    let mut failures: Vec<Failure> = Vec::new();
    for i in 0..count {
        let depth = 1 + generator.rng.below(4) as u32;
        let ty = if generator.rng.chance(85) {
            Ty::Vector
        } else {
            Ty::Scalar
        };
        let query = generator.expr(ty, depth);
        let Ok(expr) = promql_parser::parser::parse(&query) else {
            continue;
        };
        parsed += 1;
        let engine = || {
            Engine::new(EngineOptions {
                max_samples: 100_000,
                ..Default::default()
            })
            .with_deadline(tokio::time::Instant::now() + DEADLINE)
        };

        // Mostly times inside the data, sometimes anywhere the API allows.
        let pick_time = |r: &mut Rng| {
            if r.chance(70) {
                TIMES[r.below(3)]
            } else {
                TIMES[r.below(TIMES.len())]
            }
        };
        let at = pick_time(&mut generator.rng);
        if trace {
            eprintln!("instant at {at}: {query}");
        }
        let instant = evaluate(&rt, engine().query_instant(&store, &expr, at));

        let step = if generator.rng.chance(60) {
            STEPS[0]
        } else {
            STEPS[generator.rng.below(STEPS.len())]
        };
        // Capped as the API caps it, and mostly short so that the whole test stays quick.
        let steps = if generator.rng.chance(5) {
            MAX_POINTS
        } else {
            [0, 1, 7, 40, 200][generator.rng.below(5)]
        };
        // A subquery is evaluated over the whole span at its own step, so its span stays
        // short; `huge_step_range_query_with_a_subquery_does_not_abort` covers the rest.
        let max_span = if query.contains(':') {
            86_400_000
        } else {
            i64::MAX
        };
        let span = step.saturating_mul(steps).min(max_span);
        let anchor = pick_time(&mut generator.rng);
        // Times stay within what the API accepts; near the end of time the range runs
        // backwards from the anchor.
        let (start, end) = if anchor > 0 {
            (anchor.saturating_sub(span).max(MIN_TIME_MS), anchor)
        } else {
            (anchor, anchor.saturating_add(span).min(MAX_TIME_MS))
        };
        // Now and then all of time, in as few steps as the API lets a client ask for.
        let (start, end, step) = if max_span == i64::MAX && generator.rng.chance(3) {
            (MIN_TIME_MS, MAX_TIME_MS, 10_000_000_000_000)
        } else {
            (start, end, step)
        };
        if trace {
            eprintln!("range {start}..{end} step {step}: {query}");
        }
        let range = evaluate(&rt, engine().query_range(&store, &expr, start, end, step));

        let mut rebuild = false;
        for (how, outcome) in [
            (format!("instant at {at}"), &instant),
            (format!("range {start}..{end} step {step}"), &range),
        ] {
            match outcome {
                Outcome::Ok => evaluated_ok += 1,
                Outcome::Err => {}
                Outcome::Failed(message) => {
                    rebuild = true;
                    failures.push(Failure {
                        query: query.clone(),
                        how,
                        message: message.clone(),
                    });
                }
            }
        }
        // A runtime that unwound mid-task is not trusted with the next query.
        if rebuild {
            rt = new_runtime();
        }
        if i % 500 == 499 {
            eprintln!(
                "{} queries, {parsed} parsed, {} failures, {:?}",
                i + 1,
                failures.len(),
                started.elapsed()
            );
        }
    }
    let _ = std::panic::take_hook();
    let elapsed = started.elapsed();
    eprintln!(
        "{count} queries generated, {parsed} parsed, {evaluated_ok} of {} evaluations \
         succeeded, {} failed, in {elapsed:?}",
        parsed * 2,
        failures.len()
    );

    if !failures.is_empty() {
        let mut report = String::new();
        for f in &failures {
            report += &format!("\n  {}\n    {}: {}", f.query, f.how, f.message);
        }
        panic!(
            "{} evaluations panicked or passed their deadline:{report}",
            failures.len()
        );
    }
    // The generator is only useful while most of what it writes is valid and evaluable.
    assert!(
        parsed * 100 >= count * 60,
        "only {parsed} of {count} queries parsed"
    );
    assert!(
        evaluated_ok * 100 >= count * 2 * 40,
        "only {evaluated_ok} of {} evaluations succeeded",
        count * 2
    );
}

/// A range query may have 11,000 steps of any size, and a subquery in it is evaluated over
/// the whole range at the subquery's step: a failed allocation there aborts the process,
/// which no unwind catches, so the evaluation runs in a child process.
#[test]
fn huge_step_range_query_with_a_subquery_does_not_abort() {
    const NAME: &str = "huge_step_range_query_with_a_subquery_does_not_abort";
    let query = "max_over_time(up[1d:])";
    let (start, end, step) = (0, 7_000_000_000_000_000, 1_000_000_000_000_000);
    if std::env::var_os("ENGINE_ABORT_PROBE").is_some() {
        let expr = promql_parser::parser::parse(query).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::new(EngineOptions {
            max_samples: 100_000,
            ..Default::default()
        })
        .with_deadline(tokio::time::Instant::now() + DEADLINE);
        let result = rt.block_on(engine.query_range(&store(), &expr, start, end, step));
        eprintln!("{result:?}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("ENGINE_ABORT_PROBE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "range query {query:?} from {start} to {end} step {step} killed the process ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The API takes float seconds as far as i64 milliseconds reach, beyond the RFC 3339 range
/// the random queries keep to; the engine must answer there too.
#[test]
fn evaluation_at_the_ends_of_float_api_times_does_not_panic() {
    let min = promgate::time::parse_time("-9223372036854775").unwrap();
    let max = promgate::time::parse_time("9223372036854775").unwrap();
    let store = store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = || {
        Engine::new(EngineOptions {
            max_samples: 100_000,
            ..Default::default()
        })
        .with_deadline(tokio::time::Instant::now() + DEADLINE)
    };
    let mut failures = Vec::new();
    for query in [
        "up",
        "rate(http_requests_total[5m])",
        "up offset -5m",
        "max_over_time(up[1m:10s])",
        "time()",
    ] {
        let expr = promql_parser::parser::parse(query).unwrap();
        for at in [min, max] {
            if let Outcome::Failed(m) = evaluate(&rt, engine().query_instant(&store, &expr, at)) {
                failures.push(format!("{query} instant at {at}: {m}"));
            }
        }
        for (start, end) in [(min, min + 60_000), (max - 60_000, max)] {
            let e = engine();
            let r = e.query_range(&store, &expr, start, end, 15_000);
            if let Outcome::Failed(m) = evaluate(&rt, r) {
                failures.push(format!("{query} range {start}..{end} step 15000: {m}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
