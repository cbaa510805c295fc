//! Runs scripts against promgate's engine: loads data into a `MemoryStore`, evaluates each
//! eval as Prometheus's runner does, and sorts the outcome into passed, failed and skipped.
//!
//! Besides the plain query, an instant eval is re-run the ways Prometheus's runner re-runs
//! it, because those catch real engine bugs: as a range query from t−1m to t+1m whose middle
//! step must give the same answer, and (unless the query depends on the evaluation time)
//! with `@ t` on every top-level selector and subquery, evaluated at −10t, 0, t/5, t and 10t.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promgate::model::Labels;
use promgate::promql::engine::{Engine, EngineError, EngineOptions, QueryOutput, Value};
use promgate::storage::MemoryStore;
use promql_parser::parser::{self, AtModifier, Expr};
use regex::Regex;

use super::compare::{
    Window, compare_label_sets, compare_value, compare_vector, kind_of_value, pairs,
};
use super::parse::parse_script;
use super::{Command, Eval, EvalKind, Expectations, Expected, LabelPairs, TextMatch};

/// Files left out whole, with why.
const FILE_SKIPS: &[(&str, &str)] = &[
    ("native_histograms.test", "native histogram"),
    (
        "duration_expression.test",
        "experimental: duration expressions",
    ),
    (
        "name_label_dropping.test",
        "experimental: delayed __name__ removal",
    ),
    ("type_and_unit.test", "experimental: type and unit labels"),
];

/// Functions that only do something for native histograms.
const HISTOGRAM_FUNCTIONS: &[&str] = &[
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_fraction",
    "histogram_stddev",
    "histogram_stdvar",
];

/// Experimental at v3.5.3 (Prometheus needs a feature flag for them).
const EXPERIMENTAL_FUNCTIONS: &[&str] = &[
    "double_exponential_smoothing",
    "info",
    "mad_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "ts_of_last_over_time",
    "sort_by_label",
    "sort_by_label_desc",
    "limitk",
    "limit_ratio",
];

/// Functions whose answer depends on the evaluation time itself, so pinning selectors with
/// `@` cannot keep the answer the same (the list Prometheus's runner uses).
const TIME_DEPENDENT_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    // Of a computed vector, `timestamp` is the evaluation time.
    "timestamp",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct EvalReport {
    pub line: usize,
    pub expr: String,
    pub outcome: Outcome,
    /// What the plain query returned, kept for a single-eval run.
    pub detail: Option<String>,
}

#[derive(Debug, Default)]
pub struct FileReport {
    pub name: String,
    pub evals: Vec<EvalReport>,
    /// Lines outside an eval the parser could not read; a non-empty list is a runner bug or
    /// a script form it does not know.
    pub script_errors: Vec<(usize, String)>,
}

impl FileReport {
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.evals.iter().filter(|e| f(&e.outcome)).count()
    }
    pub fn skip_reasons(&self) -> Vec<(String, usize)> {
        let mut m: HashMap<String, usize> = HashMap::new();
        for e in &self.evals {
            if let Outcome::Skip(r) = &e.outcome {
                *m.entry(r.clone()).or_default() += 1;
            }
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort();
        v
    }
}

/// EVAL-INDEX.tsv: tags per (file, eval line). Missing file = no tags.
pub fn load_index(path: &Path) -> HashMap<(String, usize), Vec<String>> {
    let mut index = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return index;
    };
    for row in text.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (Some(file), Some(line), Some(tags)) = (cols.first(), cols.get(1), cols.get(6)) else {
            continue;
        };
        let Ok(line) = line.parse::<usize>() else {
            continue;
        };
        let tags = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "-")
            .map(String::from)
            .collect();
        index.insert((file.to_string(), line), tags);
    }
    index
}

/// Which evals to run and how much to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFilter {
    /// Only the eval starting on this line (earlier loads still apply).
    pub line: Option<usize>,
    pub verbose: bool,
}

pub async fn run_file(
    name: &str,
    text: &str,
    index: &HashMap<(String, usize), Vec<String>>,
    filter: RunFilter,
) -> FileReport {
    let script = parse_script(text);
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60_000,
        max_samples: 10_000,
        ..EngineOptions::default()
    });
    let mut store = MemoryStore::new();
    // Metric names that hold native histograms since the last clear, and names touched by
    // `load_with_nhcb`: evals that mention them are skipped.
    let mut histogram_names: HashSet<String> = HashSet::new();
    let mut nhcb_names: HashSet<String> = HashSet::new();
    let file_skip = FILE_SKIPS.iter().find(|(f, _)| *f == name).map(|(_, r)| *r);
    let mut report = FileReport {
        name: name.to_string(),
        script_errors: script.errors,
        ..Default::default()
    };
    for command in &script.commands {
        match command {
            Command::Clear => {
                store.clear();
                histogram_names.clear();
                nhcb_names.clear();
            }
            Command::Load(load) => {
                for s in &load.series {
                    let metric = s
                        .labels
                        .iter()
                        .find(|(k, _)| k == "__name__")
                        .map(|(_, v)| v);
                    if s.histogram {
                        histogram_names.extend(metric.cloned());
                        continue;
                    }
                    // The converted histograms take the base name (`x` of `x_bucket`);
                    // the classic float series themselves load and run as usual.
                    if let (true, Some(m)) = (load.nhcb, metric) {
                        for suffix in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = m.strip_suffix(suffix) {
                                nhcb_names.insert(base.to_string());
                            }
                        }
                    }
                    if !s.samples.is_empty() {
                        store.append(Labels::new(s.labels.clone()), &s.samples);
                    }
                }
            }
            Command::Eval(eval) => {
                if filter.line.is_some_and(|l| l != eval.line) {
                    continue;
                }
                let tags = index
                    .get(&(name.to_string(), eval.line))
                    .cloned()
                    .unwrap_or_default();
                let skip = file_skip
                    .map(String::from)
                    .or_else(|| skip_reason(eval, &tags, &histogram_names, &nhcb_names));
                let (outcome, detail) = match (skip, &eval.error) {
                    (_, Some(e)) => (Outcome::Fail(format!("script: {e}")), None),
                    (Some(reason), None) => (Outcome::Skip(reason), None),
                    (None, None) => run_eval(&engine, &store, eval, filter.verbose).await,
                };
                report.evals.push(EvalReport {
                    line: eval.line,
                    expr: eval.expr.clone(),
                    outcome,
                    detail,
                });
            }
        }
    }
    report
}

fn skip_reason(
    eval: &Eval,
    tags: &[String],
    histogram_names: &HashSet<String>,
    nhcb_names: &HashSet<String>,
) -> Option<String> {
    let tag = |t: &str| tags.iter().any(|x| x == t);
    let reason = if tag("nh") || eval.histogram_expected {
        "native histogram"
    } else if tag("expfn") || EXPERIMENTAL_FUNCTIONS.iter().any(|f| calls(&eval.expr, f)) {
        "experimental function"
    } else if tag("durexpr") {
        "experimental: duration expressions"
    } else if tag("typeunit") {
        "experimental: type and unit labels"
    } else if histogram_names.iter().any(|n| mentions(&eval.expr, n)) {
        "native histogram"
    } else if !histogram_names.is_empty()
        && (eval.expect.info.is_some() || eval.expect.warn.is_some())
        && has_nameless_selector(&eval.expr)
    {
        // `{job="x"}` also selects the histogram series that were not loaded, and the
        // annotation expected is about them.
        "native histogram"
    } else if nhcb_names.iter().any(|n| mentions(&eval.expr, n)) {
        "load_with_nhcb"
    } else if HISTOGRAM_FUNCTIONS.iter().any(|f| calls(&eval.expr, f)) {
        "native histogram function"
    } else {
        return None;
    };
    Some(reason.to_string())
}

/// Whether `expr` has a selector without a metric name (`{job="a"}`).
pub fn has_nameless_selector(expr: &str) -> bool {
    let chars: Vec<char> = expr.chars().collect();
    let mut in_string = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == '"' && (i == 0 || chars[i - 1] != '\\') {
            in_string = !in_string;
        }
        if c != '{' || in_string {
            continue;
        }
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
        if before.is_none_or(|&b| !is_ident(b)) {
            return true;
        }
    }
    false
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// `expr` names `name` as a whole word.
pub fn mentions(expr: &str, name: &str) -> bool {
    expr.match_indices(name).any(|(i, _)| {
        let before = expr[..i].chars().next_back();
        let after = expr[i + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// `expr` calls function `name` (the word followed by `(`).
pub fn calls(expr: &str, name: &str) -> bool {
    expr.match_indices(name).any(|(i, _)| {
        let before = expr[..i].chars().next_back();
        let after = expr[i + name.len()..].trim_start();
        !before.is_some_and(is_ident) && after.starts_with('(')
    })
}

async fn run_eval(
    engine: &Engine,
    store: &MemoryStore,
    eval: &Eval,
    verbose: bool,
) -> (Outcome, Option<String>) {
    let expr = match parser::parse(&eval.expr) {
        Ok(e) => e,
        Err(e) => {
            // Prometheus parses everything it does not expect to fail; when promql-parser
            // refuses such a query (or words the error differently) the engine is not at
            // fault.
            let outcome = match &eval.expect.fail {
                Some(m) if text_matches(m, &e) => Outcome::Pass,
                Some(_) => Outcome::Skip("parser limit (error text differs)".into()),
                None => Outcome::Skip("parser limit".into()),
            };
            return (outcome, Some(format!("parse error: {e}")));
        }
    };
    let (result, detail) = match eval.kind {
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => {
            let res = engine
                .query_range(store, &expr, start_ms, end_ms, step_ms)
                .await;
            let detail = verbose.then(|| format!("{res:?}"));
            let window = Window::Range {
                start: start_ms,
                end: end_ms,
                step: step_ms,
            };
            (check(&eval.expect, &eval.expected, window, &res), detail)
        }
        EvalKind::Instant { at_ms } => {
            let res = engine.query_instant(store, &expr, at_ms).await;
            let detail = verbose.then(|| format!("{res:?}"));
            let mut result = check(&eval.expect, &eval.expected, Window::Instant(at_ms), &res);
            if result.is_ok() && eval.expect.fail.is_none() {
                if let Ok(out) = &res {
                    result = reruns(engine, store, eval, &expr, at_ms, &out.value).await;
                }
            }
            (result, detail)
        }
    };
    let outcome = match result {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    };
    (outcome, detail)
}

/// The extra runs of a passing instant eval (see the module comment).
async fn reruns(
    engine: &Engine,
    store: &MemoryStore,
    eval: &Eval,
    expr: &Expr,
    at_ms: i64,
    value: &Value,
) -> Result<(), String> {
    // A range query cannot return a range vector or a string, so those have no range form.
    if matches!(value, Value::Matrix(_) | Value::String(_)) {
        return Ok(());
    }
    range_middle(engine, store, eval, expr, at_ms)
        .await
        .map_err(|e| format!("as range query around t={at_ms}ms: {e}"))?;
    let Some(pinned) = pin_at(expr, at_ms) else {
        return Ok(());
    };
    let mut times = vec![-10 * at_ms, 0, at_ms / 5, at_ms, 10 * at_ms];
    times.dedup();
    for t in times {
        let ctx = |e: String| format!("with @ {at_ms}ms evaluated at {t}ms: {e}");
        let res = engine.query_instant(store, &pinned, t).await;
        let annotations_unchecked = Expectations {
            ordered: eval.expect.ordered,
            ..Default::default()
        };
        check(
            &annotations_unchecked,
            &eval.expected,
            Window::Instant(t),
            &res,
        )
        .map_err(ctx)?;
        range_middle(engine, store, eval, &pinned, t)
            .await
            .map_err(|e| ctx(format!("as range query: {e}")))?;
    }
    Ok(())
}

/// Runs `expr` from t−1m to t+1m step 1m and compares the step at t with the expectation.
async fn range_middle(
    engine: &Engine,
    store: &MemoryStore,
    eval: &Eval,
    expr: &Expr,
    t: i64,
) -> Result<(), String> {
    // A range result is sorted by labels, so an expected order cannot be checked on it.
    if eval.expect.ordered {
        return Ok(());
    }
    let out = engine
        .query_range(store, expr, t - 60_000, t + 60_000, 60_000)
        .await
        .map_err(|e| format!("engine error: {e}"))?;
    let Value::Matrix(m) = &out.value else {
        return Err(format!("returned {}", kind_of_value(&out.value)));
    };
    let series: Vec<(LabelPairs, &Vec<(i64, f64)>)> =
        m.iter().map(|s| (pairs(&s.labels), &s.points)).collect();
    if let Some(w) = series
        .windows(2)
        .find(|w| compare_label_sets(&w[0].0, &w[1].0) != std::cmp::Ordering::Less)
    {
        return Err(format!("matrix not sorted by labels at {:?}", w[1].0));
    }
    let middle: Vec<(LabelPairs, f64)> = series
        .iter()
        .filter_map(|(l, p)| {
            p.iter()
                .find(|(pt, _)| *pt == t)
                .map(|(_, v)| (l.clone(), *v))
        })
        .collect();
    match &eval.expected {
        Expected::Series(expected) => compare_vector(expected, false, &middle),
        Expected::Scalar(want) => match middle.as_slice() {
            [(_, got)] if super::compare::almost_equal(*want, *got) => Ok(()),
            _ => Err(format!(
                "expected scalar {want} at t={t} but got {middle:?}"
            )),
        },
        Expected::String(_) => Ok(()),
    }
}

/// A copy of `expr` with `@ at_ms` on every selector and subquery outside subqueries that
/// has none; `None` when the answer would legitimately change with the evaluation time
/// (time functions, `@ start()` / `@ end()`).
pub fn pin_at(expr: &Expr, at_ms: i64) -> Option<Expr> {
    let at = if at_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(at_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(at_ms.unsigned_abs())
    };
    let mut e = expr.clone();
    pin(&mut e, Some(at)).then_some(e)
}

/// Pins with `at` (when given) and returns whether the query stays step invariant; inside a
/// subquery nothing more is pinned, since the subquery's own steps drive its inner query.
fn pin(e: &mut Expr, at: Option<SystemTime>) -> bool {
    let set = |m: &mut Option<AtModifier>| match m {
        None => {
            if let Some(t) = at {
                *m = Some(AtModifier::At(t));
            }
            true
        }
        Some(AtModifier::At(_)) => true,
        Some(AtModifier::Start | AtModifier::End) => false,
    };
    match e {
        Expr::Aggregate(a) => pin(&mut a.expr, at) && a.param.as_mut().is_none_or(|p| pin(p, at)),
        Expr::Unary(u) => pin(&mut u.expr, at),
        Expr::Binary(b) => pin(&mut b.lhs, at) && pin(&mut b.rhs, at),
        Expr::Paren(p) => pin(&mut p.expr, at),
        Expr::Subquery(s) => set(&mut s.at) && pin(&mut s.expr, None),
        Expr::VectorSelector(v) => set(&mut v.at),
        Expr::MatrixSelector(m) => set(&mut m.vs.at),
        Expr::Call(c) => {
            !TIME_DEPENDENT_FUNCTIONS.contains(&c.func.name)
                && c.args.args.iter_mut().all(|a| pin(a, at))
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => true,
    }
}

/// An engine answer against the eval: the expected error, or the expected value and the
/// annotations the eval asks about.
fn check(
    expect: &Expectations,
    expected: &Expected,
    window: Window,
    res: &Result<QueryOutput, EngineError>,
) -> Result<(), String> {
    match (&expect.fail, res) {
        // "Not supported" is the engine declining, not the error the script expects.
        (Some(_), Err(e @ EngineError::Unsupported(_))) => Err(format!("engine: {e}")),
        (Some(m), Err(e)) => {
            let text = e.to_string();
            if text_matches(m, &text) {
                Ok(())
            } else {
                Err(format!("error {text:?} does not match expected {m:?}"))
            }
        }
        (Some(_), Ok(out)) => Err(format!(
            "expected an error but got {}",
            kind_of_value(&out.value)
        )),
        (None, Err(e)) => Err(format!("engine error: {e}")),
        (None, Ok(out)) => {
            compare_value(expected, expect.ordered, window, &out.value)?;
            check_annotations(expect, out)
        }
    }
}

pub fn check_annotations(expect: &Expectations, out: &QueryOutput) -> Result<(), String> {
    for (want, got, what) in [
        (&expect.warn, &out.warnings, "warning"),
        (&expect.info, &out.infos, "info"),
    ] {
        if let Some(m) = want {
            if !got.iter().any(|g| text_matches(m, g)) {
                return Err(format!("expected a {what} matching {m:?}, got {got:?}"));
            }
        }
    }
    if expect.no_warn && !out.warnings.is_empty() {
        return Err(format!("expected no warnings, got {:?}", out.warnings));
    }
    if expect.no_info && !out.infos.is_empty() {
        return Err(format!("expected no infos, got {:?}", out.infos));
    }
    Ok(())
}

/// Whether an error or annotation text is the expected one. The scripts write annotations
/// with Prometheus's `PromQL warning: ` / `PromQL info: ` prefix; the engine may or may not
/// include it, so it is ignored on both sides.
pub fn text_matches(m: &TextMatch, text: &str) -> bool {
    fn strip(s: &str) -> &str {
        let s = s.trim();
        s.strip_prefix("PromQL warning: ")
            .or_else(|| s.strip_prefix("PromQL info: "))
            .unwrap_or(s)
    }
    match m {
        TextMatch::Any => true,
        TextMatch::Exact(want) => strip(want) == strip(text),
        TextMatch::Regex(re) => Regex::new(re).is_ok_and(|r| r.is_match(text)),
    }
}
