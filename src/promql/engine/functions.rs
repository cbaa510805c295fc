//! Function calls: argument evaluation and the dispatch to each family's kernels.

use promql_parser::parser::{Call, Expr};

use super::EngineError;
use super::eval::{Evaluator, Grid, StepVector, Val};
use super::kernels;
use crate::model::Labels;

/// Functions whose result keeps the input's metric name.
const KEEP_NAME: &[&str] = &[
    "last_over_time",
    "first_over_time",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
];

pub(super) fn call(ev: &mut Evaluator<'_>, call: &Call, grid: Grid) -> Result<Val, EngineError> {
    let name = call.func.name;
    let args = &call.args.args;
    match name {
        "time" => Ok(Val::Scalar(
            (0..grid.n).map(|i| grid.t(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; grid.n])),
        "vector" => {
            let v = scalar_arg(ev, args, 0, grid)?;
            let mut out = StepVector::new(grid.n);
            let id = out.push_empty(Labels::default());
            for (i, x) in v.into_iter().enumerate() {
                out.set(id, i, x);
            }
            Ok(Val::Vector(out))
        }
        "scalar" => {
            let v = vector_arg(ev, args, 0, grid)?;
            Ok(Val::Scalar(
                (0..grid.n)
                    .map(|i| {
                        let mut present = (0..v.len()).filter_map(|s| v.get(s, i));
                        match (present.next(), present.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "timestamp" => timestamp(ev, args, grid),
        "absent" => absent(ev, args, grid),
        "absent_over_time" => absent_over_time(ev, args, grid),
        "label_replace" => {
            let v = vector_arg(ev, args, 0, grid)?;
            let s = |i| string_arg(args, i);
            kernels::label_replace(v, &s(1)?, &s(2)?, &s(3)?, &s(4)?).map(Val::Vector)
        }
        "label_join" => {
            let v = vector_arg(ev, args, 0, grid)?;
            let dst = string_arg(args, 1)?;
            let sep = string_arg(args, 2)?;
            let src = (3..args.len())
                .map(|i| string_arg(args, i))
                .collect::<Result<Vec<_>, _>>()?;
            kernels::label_join(v, &dst, &sep, &src).map(Val::Vector)
        }
        "sort" | "sort_desc" => {
            let v = vector_arg(ev, args, 0, grid)?;
            Ok(Val::Vector(kernels::sort_by_value(v, name == "sort_desc")))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let v = vector_arg(ev, args, 0, grid)?;
            let names = (1..args.len())
                .map(|i| string_arg(args, i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Val::Vector(kernels::sort_by_label(
                v,
                &names,
                name == "sort_by_label_desc",
            )))
        }
        "histogram_quantile" => {
            let q = scalar_arg(ev, args, 0, grid)?;
            let v = vector_arg(ev, args, 1, grid)?;
            if v.len() > 0 {
                quantile_warning(ev, &q);
            }
            let (out, warnings, infos) = kernels::histogram_quantile(&q, v)?;
            ev.warnings.extend(warnings);
            ev.infos.extend(infos);
            Ok(Val::Vector(out))
        }
        "round" => {
            let v = vector_arg(ev, args, 0, grid)?;
            let to = if args.len() > 1 {
                scalar_arg(ev, args, 1, grid)?
            } else {
                vec![1.0; grid.n]
            };
            Ok(Val::Vector(map_steps(v, |x, i| {
                let inv = 1.0 / to[i];
                (x * inv + 0.5).floor() / inv
            })?))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = vector_arg(ev, args, 0, grid)?;
            let a = scalar_arg(ev, args, 1, grid)?;
            let b = if name == "clamp" {
                scalar_arg(ev, args, 2, grid)?
            } else {
                Vec::new()
            };
            let mut out = map_steps(v, |x, i| match name {
                "clamp_min" => go_max(a[i], x),
                "clamp_max" => go_min(a[i], x),
                _ => go_max(a[i], go_min(b[i], x)),
            })?;
            if name == "clamp" {
                // A maximum below the minimum leaves nothing.
                for s in 0..out.len() {
                    for (i, (lo, hi)) in a.iter().zip(&b).enumerate() {
                        if hi < lo {
                            out.present[s * out.n + i] = false;
                        }
                    }
                }
                out.drop_empty();
            }
            Ok(Val::Vector(out))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let v = if args.is_empty() {
                let mut out = StepVector::new(grid.n);
                let id = out.push_empty(Labels::default());
                for i in 0..grid.n {
                    out.set(id, i, grid.t(i) as f64 / 1000.0);
                }
                out
            } else {
                vector_arg(ev, args, 0, grid)?
            };
            Ok(Val::Vector(map_steps(v, |x, _| {
                kernels::date_part(name, x)
            })?))
        }
        _ if kernels::math_fn(name).is_some() => {
            let f = kernels::math_fn(name).ok_or_else(|| unsupported(name))?;
            let v = vector_arg(ev, args, 0, grid)?;
            Ok(Val::Vector(map_steps(v, |x, _| f(x))?))
        }
        _ => range_function(ev, call, grid),
    }
}

fn unsupported(name: &str) -> EngineError {
    EngineError::Unsupported(format!("function {name}"))
}

/// Functions over a range of samples per step (`rate(x[5m])`, `avg_over_time(...)`).
fn range_function(ev: &mut Evaluator<'_>, call: &Call, grid: Grid) -> Result<Val, EngineError> {
    let name = call.func.name;
    let args = &call.args.args;
    // The range argument is the first one, except for quantile_over_time (second).
    let (range_at, params): (usize, Vec<usize>) = match name {
        "quantile_over_time" => (1, vec![0]),
        "predict_linear" => (0, vec![1]),
        "double_exponential_smoothing" | "holt_winters" => (0, vec![1, 2]),
        _ => (0, vec![]),
    };
    let kernel = match kernels::Extrapolation::of(name) {
        Some(how) => Kernel::Extrapolated(how),
        None => Kernel::Window(kernels::range_kernel(name).ok_or_else(|| unsupported(name))?),
    };
    let params: Vec<Vec<f64>> = params
        .into_iter()
        .map(|i| scalar_arg(ev, args, i, grid))
        .collect::<Result<_, _>>()?;
    let arg = args
        .get(range_at)
        .ok_or_else(|| EngineError::BadData(format!("missing argument to {name}")))?;
    let input = ev.range_input(arg, grid)?;
    if name == "quantile_over_time" && !input.series.is_empty() {
        quantile_warning(ev, &params[0]);
    }
    let keep_name = KEEP_NAME.contains(&name);
    let mut out = StepVector::new(grid.n);
    for s in 0..input.series.len() {
        let mut labels = input.series.labels(s).clone();
        if !keep_name {
            labels.remove("__name__");
        }
        out.push_empty(labels);
    }
    let n = grid.n;
    if n == 0 || input.series.is_empty() {
        return Ok(Val::Vector(StepVector::new(n)));
    }
    // Series are independent: big inputs are split across threads, each decoding its
    // series one at a time and filling their rows of the (series-major) output.
    let threads = if 5 * n * input.series.len() > 1 << 20 {
        std::thread::available_parallelism().map_or(1, |p| p.get().min(8))
    } else {
        1
    };
    let per_thread = input.series.len().div_ceil(threads).max(1);
    let cancel = &ev.cancel;
    let (input_ref, params_ref) = (&input, &params);
    let results: Vec<Result<(), EngineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = out
            .values
            .chunks_mut(n * per_thread)
            .zip(out.present.chunks_mut(n * per_thread))
            .enumerate()
            .map(|(chunk, (values, present))| {
                scope.spawn(move || {
                    let first = chunk * per_thread;
                    for (row, s) in (first..).take(values.len() / n.max(1)).enumerate() {
                        if row % 256 == 255 && cancel.load(std::sync::atomic::Ordering::Relaxed) {
                            return Err(EngineError::Canceled);
                        }
                        let (v, p) = (
                            &mut values[row * n..(row + 1) * n],
                            &mut present[row * n..(row + 1) * n],
                        );
                        eval_series(input_ref, s, grid, params_ref, kernel, v, p)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EngineError::Execution("evaluation failed".into())))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    out.drop_empty();
    if name == "rate" || name == "increase" {
        counter_info(ev, &input.series);
    }
    Ok(Val::Vector(out.merge_equal_labels()?))
}

/// One series of a range function, every step's window into `values`/`present`.
fn eval_series(
    input: &super::eval::RangeInput,
    s: usize,
    grid: Grid,
    params: &[Vec<f64>],
    kernel: Kernel,
    values: &mut [f64],
    present: &mut [bool],
) -> Result<(), EngineError> {
    let series = input.series.get(s)?;
    let (ts, vs) = (&series.ts, &series.vs);
    let mut set = |i: usize, v: f64| {
        values[i] = v;
        present[i] = true;
    };
    match kernel {
        Kernel::Extrapolated(how) => {
            let mut batch = kernels::EdgeBatch::new(input.range);
            windows(input, &series, |i, lo, hi, monotonic| {
                let edges = how.edges(
                    &ts[lo..hi],
                    &vs[lo..hi],
                    input.ends[i],
                    input.range,
                    monotonic,
                );
                if let Some(e) = edges {
                    if batch.push(i, e) {
                        how.finish(&batch, &mut set);
                        batch.clear();
                    }
                }
                Ok(())
            })?;
            how.finish(&batch, &mut set);
        }
        Kernel::Window(kernel) => {
            let mut param_now = vec![0.0; params.len()];
            windows(input, &series, |i, lo, hi, monotonic| {
                for (p, v) in param_now.iter_mut().zip(params) {
                    *p = v[i];
                }
                let window = kernels::Window {
                    ts: &ts[lo..hi],
                    vs: &vs[lo..hi],
                    end: input.ends[i],
                    range: input.range,
                    step_t: grid.t(i),
                    params: &param_now,
                    monotonic,
                };
                if let Some(v) = kernel(&window)? {
                    set(i, v);
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// How a range function computes a window.
#[derive(Clone, Copy)]
enum Kernel {
    /// `rate`, `increase`, `delta`: many windows at a time.
    Extrapolated(kernels::Extrapolation),
    /// Anything else: one window at a time.
    Window(kernels::RangeKernel),
}

/// Calls `f(step, lo, hi, monotonic)` for every step whose window holds samples `lo..hi`
/// (at least one) of `series`, one of `input`'s; `monotonic` tells that none of them is
/// lower than the one before. The windows slide forward with the steps (window ends never
/// decrease), so each step moves two cursors instead of searching.
fn windows(
    input: &super::eval::RangeInput,
    series: &super::eval::RawSeries,
    mut f: impl FnMut(usize, usize, usize, bool) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let ts = &series.ts;
    // Decreases up to each sample, so a window can tell at once that it has none (the usual
    // case for a counter) and spare the kernel its search for resets.
    let mut decreases = Vec::with_capacity(ts.len());
    let mut count = 0u32;
    for (j, v) in series.vs.iter().enumerate() {
        if j > 0 && *v < series.vs[j - 1] {
            count += 1;
        }
        decreases.push(count);
    }
    let (mut lo, mut hi) = (0, 0);
    for (i, &end) in input.ends.iter().enumerate() {
        let start = end.saturating_sub(input.range);
        if i > 0 && end < input.ends[i - 1] {
            (lo, hi) = (0, 0);
        }
        while lo < ts.len() && ts[lo] <= start {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < ts.len() && ts[hi] <= end {
            hi += 1;
        }
        if lo < hi {
            f(i, lo, hi, decreases[hi - 1] == decreases[lo])?;
        }
    }
    Ok(())
}

/// Prometheus's warning for a quantile outside [0, 1] (the answer is then ±Inf or NaN).
pub(super) fn quantile_warning(ev: &mut Evaluator<'_>, q: &[f64]) {
    if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        let w = format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            go_float(*bad)
        );
        if !ev.warnings.contains(&w) {
            ev.warnings.push(w);
        }
    }
}

/// A float as Go's `%v` prints it in messages.
pub(super) fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Prometheus's info when `rate`/`increase` read a metric whose name says it is no counter.
fn counter_info(ev: &mut Evaluator<'_>, series: &super::eval::Selected) {
    for s in 0..series.len() {
        if let Some(name) = series.labels(s).get("__name__") {
            if !["_total", "_sum", "_count", "_bucket"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
            {
                let info = format!(
                    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
                );
                if !ev.infos.contains(&info) {
                    ev.infos.push(info);
                }
            }
        }
    }
}

/// Applies `f(value, step)` to every present value; the metric name goes.
fn map_steps(mut v: StepVector, f: impl Fn(f64, usize) -> f64) -> Result<StepVector, EngineError> {
    let n = v.n;
    for (i, x) in v.values.iter_mut().enumerate() {
        *x = f(*x, i % n.max(1));
    }
    for l in &mut v.labels {
        l.remove("__name__");
    }
    v.merge_equal_labels()
}

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

pub(super) fn scalar_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<Vec<f64>, EngineError> {
    let arg = args
        .get(i)
        .ok_or_else(|| EngineError::BadData("missing scalar argument".into()))?;
    match ev.eval(arg, grid)? {
        Val::Scalar(v) => Ok(v),
        _ => Err(EngineError::BadData("expected a scalar argument".into())),
    }
}

pub(super) fn vector_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<StepVector, EngineError> {
    let arg = args
        .get(i)
        .ok_or_else(|| EngineError::BadData("missing vector argument".into()))?;
    match ev.eval(arg, grid)? {
        Val::Vector(v) => Ok(v),
        _ => Err(EngineError::BadData(
            "expected an instant vector argument".into(),
        )),
    }
}

fn string_arg(args: &[Box<Expr>], i: usize) -> Result<String, EngineError> {
    let mut arg = args
        .get(i)
        .map(|a| a.as_ref())
        .ok_or_else(|| EngineError::BadData("missing string argument".into()))?;
    while let Expr::Paren(p) = arg {
        arg = &p.expr;
    }
    match arg {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(EngineError::BadData("expected a string argument".into())),
    }
}

/// `timestamp(v)`: of a selector, the time of each sample it picked; of anything else, the
/// evaluation time.
fn timestamp(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, EngineError> {
    let mut arg = args
        .first()
        .map(|a| a.as_ref())
        .ok_or_else(|| EngineError::BadData("missing argument to timestamp".into()))?;
    while let Expr::Paren(p) = arg {
        arg = &p.expr;
    }
    if let Expr::VectorSelector(vs) = arg {
        let out = ev.pick_samples(vs, grid, true, |t, _| t as f64 / 1000.0);
        return Ok(Val::Vector(out?.merge_equal_labels()?));
    }
    let v = vector_arg(ev, args, 0, grid)?;
    Ok(Val::Vector(map_steps(v, |_, i| grid.t(i) as f64 / 1000.0)?))
}

/// Labels `absent` gives its one series: the selector's equality matchers.
fn absent_labels(expr: &Expr) -> Labels {
    let mut e = expr;
    loop {
        match e {
            Expr::Paren(p) => e = &p.expr,
            Expr::MatrixSelector(ms) => return selector_equalities(&ms.vs),
            Expr::VectorSelector(vs) => return selector_equalities(vs),
            _ => return Labels::default(),
        }
    }
}

fn selector_equalities(vs: &promql_parser::parser::VectorSelector) -> Labels {
    use promql_parser::label::MatchOp;
    let matchers = &vs.matchers.matchers;
    let mut pairs = Vec::new();
    for m in matchers {
        // A label matched more than once has no single value to report.
        let once = matchers.iter().filter(|o| o.name == m.name).count() == 1;
        if m.name != "__name__" && once && matches!(m.op, MatchOp::Equal) {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    Labels::new(pairs)
}

fn absent(ev: &mut Evaluator<'_>, args: &[Box<Expr>], grid: Grid) -> Result<Val, EngineError> {
    let v = vector_arg(ev, args, 0, grid)?;
    let labels = args.first().map(|a| absent_labels(a)).unwrap_or_default();
    let mut out = StepVector::new(grid.n);
    let id = out.push_empty(labels);
    for i in 0..grid.n {
        if (0..v.len()).all(|s| v.get(s, i).is_none()) {
            out.set(id, i, 1.0);
        }
    }
    out.drop_empty();
    Ok(Val::Vector(out))
}

fn absent_over_time(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Val, EngineError> {
    let arg = args
        .first()
        .ok_or_else(|| EngineError::BadData("missing argument to absent_over_time".into()))?;
    let input = ev.range_input(arg, grid)?;
    let mut out = StepVector::new(grid.n);
    let id = out.push_empty(absent_labels(arg));
    let mut present = vec![false; grid.n];
    for s in 0..input.series.len() {
        let series = input.series.get(s)?;
        for (i, p) in present.iter_mut().enumerate() {
            let (lo, hi) = input.bounds(&series, i);
            *p |= hi > lo;
        }
    }
    for (i, p) in present.iter().enumerate() {
        if !p {
            out.set(id, i, 1.0);
        }
    }
    out.drop_empty();
    Ok(Val::Vector(out))
}
