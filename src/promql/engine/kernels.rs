//! The arithmetic of PromQL's functions as pure kernels over flat slices: range functions
//! over one window of samples, math and date functions over one value, and the label and
//! sorting functions over a whole step vector.

use super::EngineError;
use super::eval::StepVector;
use crate::model::Labels;

/// One window of a range function: samples in `(end - range, end]`, never empty.
pub(super) struct Window<'a> {
    pub ts: &'a [i64],
    pub vs: &'a [f64],
    pub end: i64,
    pub range: i64,
    /// The step's evaluation time (before `@` and `offset`).
    pub step_t: i64,
    /// The function's scalar parameters at this step.
    pub params: &'a [f64],
    /// Known to hold no decrease between consecutive samples (a counter without a reset),
    /// so the counter functions may skip looking for one.
    pub monotonic: bool,
}

pub(super) type RangeKernel = fn(&Window<'_>) -> Result<Option<f64>, EngineError>;

pub(super) fn range_kernel(name: &str) -> Option<RangeKernel> {
    Some(match name {
        "rate" => |w| Ok(extrapolated(w, true, true)),
        "increase" => |w| Ok(extrapolated(w, true, false)),
        "delta" => |w| Ok(extrapolated(w, false, false)),
        "irate" => |w| Ok(instant_delta(w, true)),
        "idelta" => |w| Ok(instant_delta(w, false)),
        "deriv" => |w| Ok((w.vs.len() >= 2).then(|| linear_regression(w.ts, w.vs, w.ts[0]).0)),
        "predict_linear" => |w| {
            Ok((w.vs.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(w.ts, w.vs, w.step_t);
                intercept + slope * w.params[0]
            }))
        },
        "resets" => |w| Ok(Some(w.vs.windows(2).filter(|p| p[1] < p[0]).count() as f64)),
        "changes" => |w| {
            Ok(Some(
                w.vs.windows(2)
                    .filter(|p| !(p[1] == p[0] || (p[1].is_nan() && p[0].is_nan())))
                    .count() as f64,
            ))
        },
        "sum_over_time" => |w| Ok(Some(kahan_sum(w.vs))),
        "avg_over_time" => |w| Ok(Some(average(w.vs))),
        "count_over_time" => |w| Ok(Some(w.vs.len() as f64)),
        "present_over_time" => |_| Ok(Some(1.0)),
        "last_over_time" => |w| Ok(w.vs.last().copied()),
        "first_over_time" => |w| Ok(w.vs.first().copied()),
        "min_over_time" => |w| {
            Ok(Some(w.vs[1..].iter().fold(w.vs[0], |m, &x| {
                if x < m || m.is_nan() { x } else { m }
            })))
        },
        "max_over_time" => |w| {
            Ok(Some(w.vs[1..].iter().fold(w.vs[0], |m, &x| {
                if x > m || m.is_nan() { x } else { m }
            })))
        },
        "stddev_over_time" => |w| Ok(Some(variance(w.vs).sqrt())),
        "stdvar_over_time" => |w| Ok(Some(variance(w.vs))),
        "quantile_over_time" => |w| Ok(Some(quantile(w.params[0], &mut w.vs.to_vec()))),
        "mad_over_time" => |w| {
            let mut values = w.vs.to_vec();
            let median = quantile(0.5, &mut values);
            let mut deviations: Vec<f64> = w.vs.iter().map(|v| (v - median).abs()).collect();
            Ok(Some(quantile(0.5, &mut deviations)))
        },
        "double_exponential_smoothing" | "holt_winters" => double_exponential_smoothing,
        _ => return None,
    })
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards its
/// edges when the samples come close to them, and for counters corrected for resets and
/// never extrapolated below zero.
fn extrapolated(w: &Window<'_>, counter: bool, per_second: bool) -> Option<f64> {
    let how = Extrapolation {
        counter,
        per_second,
    };
    let mut batch = EdgeBatch::new(w.range);
    batch.push(0, how.edges(w.ts, w.vs, w.end, w.range, w.monotonic)?);
    let mut out = None;
    how.finish(&batch, |_, v| out = Some(v));
    out
}

/// How `rate`, `increase` and `delta` treat a window.
#[derive(Clone, Copy)]
pub(super) struct Extrapolation {
    /// Corrected for resets and never extrapolated below zero.
    pub counter: bool,
    /// Divided by the range in seconds.
    pub per_second: bool,
}

/// What an extrapolation needs of a window, gathered sample by sample; the arithmetic on
/// it runs over many windows at once in [`Extrapolation::finish`].
#[derive(Clone, Copy)]
pub(super) struct Edges {
    /// From the window's start to its first sample, ms.
    to_start: f64,
    /// From its last sample to its end, ms.
    to_end: f64,
    /// From its first sample to its last, ms.
    sampled: f64,
    /// Samples less one.
    gaps: f64,
    first: f64,
    /// The change from the first sample to the last, resets added back for counters.
    change: f64,
}

/// Windows of one series waiting for [`Extrapolation::finish`], as columns, so the
/// arithmetic runs in vector registers.
pub(super) struct EdgeBatch {
    range: i64,
    len: usize,
    step: [usize; BATCH],
    to_start: [f64; BATCH],
    to_end: [f64; BATCH],
    sampled: [f64; BATCH],
    gaps: [f64; BATCH],
    first: [f64; BATCH],
    change: [f64; BATCH],
}

const BATCH: usize = 64;

impl EdgeBatch {
    pub fn new(range: i64) -> Self {
        EdgeBatch {
            range,
            len: 0,
            step: [0; BATCH],
            to_start: [0.0; BATCH],
            to_end: [0.0; BATCH],
            sampled: [0.0; BATCH],
            gaps: [0.0; BATCH],
            first: [0.0; BATCH],
            change: [0.0; BATCH],
        }
    }

    /// Adds step `step`'s window; true when the batch is then full.
    pub fn push(&mut self, step: usize, e: Edges) -> bool {
        let k = self.len;
        self.step[k] = step;
        self.to_start[k] = e.to_start;
        self.to_end[k] = e.to_end;
        self.sampled[k] = e.sampled;
        self.gaps[k] = e.gaps;
        self.first[k] = e.first;
        self.change[k] = e.change;
        self.len += 1;
        self.len == BATCH
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Extrapolation {
    pub fn of(name: &str) -> Option<Extrapolation> {
        let (counter, per_second) = match name {
            "rate" => (true, true),
            "increase" => (true, false),
            "delta" => (false, false),
            _ => return None,
        };
        Some(Extrapolation {
            counter,
            per_second,
        })
    }

    /// The edges of the window `(end - range, end]` holding `ts`/`vs`; None with fewer than
    /// two samples. `monotonic` says the values never decrease, sparing the search for resets.
    #[inline]
    pub fn edges(
        &self,
        ts: &[i64],
        vs: &[f64],
        end: i64,
        range: i64,
        monotonic: bool,
    ) -> Option<Edges> {
        let n = vs.len().min(ts.len());
        if n < 2 {
            return None;
        }
        let (first_t, last_t) = (ts[0], ts[n - 1]);
        let mut change = vs[n - 1] - vs[0];
        // A reset adds the value before it; the first sample is compared with 0, which adds 0.
        if self.counter && !monotonic {
            let mut last = 0.0;
            for &v in vs {
                if v < last {
                    change += last;
                }
                last = v;
            }
        }
        // In floats: times at the ends of the i64 range must not overflow.
        let range_start = end as f64 - range as f64;
        Some(Edges {
            to_start: first_t as f64 - range_start,
            to_end: end as f64 - last_t as f64,
            sampled: last_t as f64 - first_t as f64,
            gaps: (n - 1) as f64,
            first: vs[0],
            change,
        })
    }

    /// Extrapolates every window of the batch, handing `(step, value)` to `out` in order.
    /// The loop has no branches (each choice is a select), so it runs two windows per
    /// instruction.
    pub fn finish(&self, b: &EdgeBatch, mut out: impl FnMut(usize, f64)) {
        let n = b.len.min(BATCH);
        let range_s = b.range as f64 / 1000.0;
        let mut results = [0.0; BATCH];
        for k in 0..n {
            let mut to_start = b.to_start[k] / 1000.0;
            let mut to_end = b.to_end[k] / 1000.0;
            let sampled = b.sampled[k] / 1000.0;
            let average_gap = sampled / b.gaps[k];
            let threshold = average_gap * 1.1;
            let change = b.change[k];
            to_start = if to_start >= threshold {
                average_gap / 2.0
            } else {
                to_start
            };
            if self.counter {
                // A counter does not go below zero: do not extrapolate past where it would.
                // (Both sides are computed and one chosen, with `&` rather than `&&`, so that
                // the loop stays free of branches.)
                let zero_point = sampled * (b.first[k] / change);
                let to_zero = if (change > 0.0) & (b.first[k] >= 0.0) {
                    zero_point
                } else {
                    to_start
                };
                to_start = if to_zero < to_start {
                    to_zero
                } else {
                    to_start
                };
            }
            to_end = if to_end >= threshold {
                average_gap / 2.0
            } else {
                to_end
            };
            let mut factor = (sampled + to_start + to_end) / sampled;
            if self.per_second {
                factor /= range_s;
            }
            results[k] = change * factor;
        }
        for k in 0..n {
            out(b.step[k], results[k]);
        }
    }
}

/// `irate` and `idelta`: from the last two samples.
fn instant_delta(w: &Window<'_>, rate: bool) -> Option<f64> {
    let n = w.vs.len();
    if n < 2 {
        return None;
    }
    let (prev, last) = (w.vs[n - 2], w.vs[n - 1]);
    let dt = w.ts[n - 1] - w.ts[n - 2];
    if dt == 0 {
        return None;
    }
    let delta = if rate && last < prev {
        last
    } else {
        last - prev
    };
    Some(if rate {
        delta / (dt as f64 / 1000.0)
    } else {
        delta
    })
}

/// Kahan–Neumaier summation step: returns the new sum and compensation.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub(super) fn kahan_sum(values: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    sum + c
}

/// The mean, switching to an incremental mean if the plain sum overflows.
fn average(values: &[f64]) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0, 0.0, 0.0, 0.0);
    let mut incremental = false;
    for &v in values {
        count += 1.0;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if count == 1.0 || !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Population variance (Welford, compensated).
fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// The φ-quantile by linear interpolation between closest ranks; NaNs sort first.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Least squares over `(t - intercept_t in seconds, v)`: slope and intercept.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init = vs[0];
    let mut constant = true;
    for (i, (&t, &v)) in ts.iter().zip(vs).enumerate() {
        if constant && i > 0 && v != init {
            constant = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if constant {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn double_exponential_smoothing(w: &Window<'_>) -> Result<Option<f64>, EngineError> {
    let (sf, tf) = (w.params[0], w.params[1]);
    if sf <= 0.0 || sf >= 1.0 {
        return Err(EngineError::BadData(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(EngineError::BadData(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
        )));
    }
    let l = w.vs.len();
    if l < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, w.vs[0]);
    let mut b = w.vs[1] - w.vs[0];
    for i in 1..l {
        let x = sf * w.vs[i];
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Ok(Some(s1))
}

/// Functions of one value.
pub(super) fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        "sgn" => |x| {
            if x < 0.0 {
                -1.0
            } else if x > 0.0 {
                1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

/// `hour(v)` and friends: a part of the UTC date of `x` unix seconds, the seconds taken as
/// Go converts a float to an integer: truncated toward zero, and NaN, ±Inf or anything out
/// of range becoming the smallest int64.
pub(super) fn date_part(name: &str, x: f64) -> f64 {
    let secs = if x.is_finite() && x.abs() < 9.2e18 {
        x.trunc() as i64
    } else {
        i64::MIN
    };
    let part = if secs == i64::MIN {
        // Go's date of that instant (its internal epoch shift wraps around there).
        match name {
            "day_of_month" => 4,
            "day_of_week" => 0,
            "day_of_year" => 339,
            "days_in_month" => 31,
            "hour" => 15,
            "minute" => 30,
            "month" => 12,
            _ => 292_277_026_596,
        }
    } else {
        let days = secs.div_euclid(86_400);
        let in_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        match name {
            "day_of_month" => day,
            // 1970-01-01 was a Thursday (4).
            "day_of_week" => (days + 4).rem_euclid(7),
            "day_of_year" => days - days_from_civil(year, 1, 1) + 1,
            "days_in_month" => days_in_month(year, month),
            "hour" => in_day / 3600,
            "minute" => in_day % 3600 / 60,
            "month" => month,
            _ => year,
        }
    };
    part as f64
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01, proleptic Gregorian
/// (the well-known era-based conversion; valid for any i64 day count Go can produce).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn label_replace(
    mut v: StepVector,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<StepVector, EngineError> {
    let re = regex::Regex::new(&format!("^(?s:{regex})$")).map_err(|_| {
        EngineError::BadData(format!(
            "invalid regular expression in label_replace(): {regex}"
        ))
    })?;
    if !is_label_name(dst) {
        return Err(EngineError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    for labels in &mut v.labels {
        let value = labels.get(src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&value) {
            let mut out = String::new();
            caps.expand(&go_template(replacement), &mut out);
            set_label(labels, dst, &out);
        }
    }
    v.merge_equal_labels()
}

/// Go's `$1`/`${1}` templates mean the same in Rust's regex, except that Rust reads `$1x`
/// as a group named `1x`; Go stops a bare name at the first non-word character as well,
/// so both agree once names are braced.
fn go_template(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some((_, '$')) | Some((_, '{')) => {
                out.push('$');
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            Some((_, n)) if n.is_ascii_alphanumeric() || *n == '_' => {
                let mut name = String::new();
                while let Some((_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || *n == '_' {
                        name.push(*n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(&format!("${{{name}}}"));
            }
            _ => out.push('$'),
        }
    }
    out
}

fn set_label(labels: &mut Labels, name: &str, value: &str) {
    labels.remove(name);
    if !value.is_empty() {
        labels.set_if_absent(name, value);
    }
}

pub(super) fn label_join(
    mut v: StepVector,
    dst: &str,
    sep: &str,
    src: &[String],
) -> Result<StepVector, EngineError> {
    if !is_label_name(dst) {
        return Err(EngineError::BadData(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    for labels in &mut v.labels {
        let joined: Vec<&str> = src.iter().map(|s| labels.get(s).unwrap_or("")).collect();
        let joined = joined.join(sep);
        set_label(labels, dst, &joined);
    }
    v.merge_equal_labels()
}

/// Orders series by their value at the (only) step, NaN last.
pub(super) fn sort_by_value(v: StepVector, descending: bool) -> StepVector {
    let mut order: Vec<usize> = (0..v.len()).collect();
    let key = |s: usize| v.get(s, 0).unwrap_or(f64::NAN);
    order.sort_by(|&a, &b| super::rank_order(key(a), key(b), descending));
    reorder(v, &order)
}

pub(super) fn sort_by_label(v: StepVector, names: &[String], descending: bool) -> StepVector {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| {
        let ord = names
            .iter()
            .map(|n| {
                v.labels[a]
                    .get(n)
                    .unwrap_or("")
                    .cmp(v.labels[b].get(n).unwrap_or(""))
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| v.labels[a].cmp(&v.labels[b]));
        if descending { ord.reverse() } else { ord }
    });
    reorder(v, &order)
}

fn reorder(v: StepVector, order: &[usize]) -> StepVector {
    let n = v.n;
    let mut out = StepVector::new(n);
    for &s in order {
        out.labels.push(v.labels[s].clone());
        out.values.extend_from_slice(&v.values[s * n..(s + 1) * n]);
        out.present
            .extend_from_slice(&v.present[s * n..(s + 1) * n]);
    }
    out
}

/// `histogram_quantile` over classic buckets: series grouped by their labels without `le`.
pub(super) fn histogram_quantile(
    q: &[f64],
    v: StepVector,
) -> Result<(StepVector, Vec<String>, Vec<String>), EngineError> {
    let n = v.n;
    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for s in 0..v.len() {
        let labels = &v.labels[s];
        let Some(le) = labels.get("le").and_then(parse_le) else {
            let name = labels.get("__name__").unwrap_or("");
            let w = format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"{}\" for metric name {name:?}",
                labels.get("le").unwrap_or("")
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
            continue;
        };
        let mut key = labels.clone();
        key.remove("le");
        key.remove("__name__");
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, b)) => b.push((le, s)),
            None => groups.push((key, vec![(le, s)])),
        }
    }
    let mut out = StepVector::new(n);
    for (labels, buckets) in groups {
        let id = out.push_empty(labels);
        for i in 0..n {
            let mut present: Vec<(f64, f64)> = buckets
                .iter()
                .filter_map(|&(le, s)| v.get(s, i).map(|c| (le, c)))
                .collect();
            if present.is_empty() {
                continue;
            }
            let (value, forced) = bucket_quantile(q[i], &mut present);
            if forced {
                let info = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".to_string();
                if !infos.contains(&info) {
                    infos.push(info);
                }
            }
            out.set(id, i, value);
        }
    }
    out.drop_empty();
    Ok((out, warnings, infos))
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// The quantile of classic buckets `(upper bound, cumulative count)`; also whether the
/// counts had to be made monotonic.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Buckets with the same bound count once, summed.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut forced = false;
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        let tolerance = 1e-12 * prev.abs().max(curr.abs());
        if (curr - prev).abs() <= tolerance {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let last = merged.len() - 1;
    let b = merged[..last].partition_point(|x| x.1 < rank);
    if b == last {
        return (merged[last - 1].0, forced);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window<'a>(ts: &'a [i64], vs: &'a [f64], end: i64, range: i64) -> Window<'a> {
        Window {
            ts,
            vs,
            end,
            range,
            step_t: end,
            params: &[],
            monotonic: false,
        }
    }

    #[test]
    fn rate_of_a_steady_counter_is_its_slope() {
        let ts: Vec<i64> = (1..=10).map(|i| i * 30_000).collect();
        let vs: Vec<f64> = (1..=10).map(|i| i as f64 * 30.0).collect();
        let w = window(&ts, &vs, 300_000, 300_000);
        let rate = extrapolated(&w, true, true).unwrap();
        assert!((rate - 1.0).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn rate_counts_a_reset_as_the_value_before_it() {
        let ts = [10_000, 20_000, 30_000, 40_000];
        let vs = [10.0, 20.0, 5.0, 15.0];
        let w = window(&ts, &vs, 40_000, 30_001);
        // Increase 10 + (20 reset) 5 + 10 = 25 over 30 s of samples, extrapolated to start.
        let inc = extrapolated(&w, true, false).unwrap();
        assert!(inc > 25.0 && inc < 26.0, "{inc}");
    }

    #[test]
    fn quantile_interpolates_and_sorts_nan_first() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(quantile(0.25, &mut [4.0, 1.0, 2.0, 3.0]), 1.75);
        assert!(quantile(0.0, &mut [1.0, f64::NAN]).is_nan());
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
    }

    #[test]
    fn bucket_quantile_interpolates_inside_the_bucket() {
        let mut b = vec![(0.1, 10.0), (0.5, 50.0), (f64::INFINITY, 100.0)];
        let (v, forced) = bucket_quantile(0.3, &mut b);
        assert!((v - 0.3).abs() < 1e-12, "{v}");
        assert!(!forced);
        let mut high = vec![(1.0, 10.0), (f64::INFINITY, 100.0)];
        assert_eq!(bucket_quantile(0.99, &mut high).0, 1.0);
        let mut no_inf = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).0.is_nan());
    }

    #[test]
    fn dates_truncate_toward_zero_as_go_converts() {
        // 2024-02-29 13:45:10 UTC.
        let t = 1_709_214_310.9;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        // -0.5 s truncates to 0: still 1970-01-01 00:00.
        assert_eq!(date_part("minute", -0.5), 0.0);
        assert_eq!(date_part("minute", -1.0), 59.0);
        assert_eq!(date_part("year", -1.0), 1969.0);
        assert_eq!(date_part("year", f64::NAN), 292_277_026_596.0);
        assert_eq!(date_part("hour", f64::INFINITY), 15.0);
    }

    #[test]
    fn go_templates_keep_their_meaning() {
        assert_eq!(go_template("$1-x"), "${1}-x");
        assert_eq!(go_template("${1}x$$"), "${1}x$$");
        assert_eq!(go_template("$name"), "${name}");
    }
}
