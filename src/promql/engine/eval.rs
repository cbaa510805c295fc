//! Evaluation of an expression over a grid of steps.
//!
//! Every intermediate result covers all steps at once: a [`StepVector`] is its series' labels
//! and one flat, series-major array of values with a presence mask, so operators are loops
//! over flat arrays. Selectors are read from the store before evaluation starts (one
//! concurrent round of selects, each over the widest time range the expression needs), so
//! evaluation itself is synchronous.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};

use super::{Engine, EngineError, InstantSample, QueryOutput, QueryStats, RangeSeries, Value};
use crate::model::Labels;
use crate::storage::dedup::DedupMode;
use crate::storage::{SelectHints, SelectRequest, Store, StoreError, StoreSeries};

/// Default step of a subquery without one (Prometheus's default evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The steps a query is evaluated at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    /// An instant query: one step, and a vector (not a matrix) as its answer.
    pub instant: bool,
}

impl Range {
    pub fn instant(at_ms: i64) -> Self {
        Range {
            start_ms: at_ms,
            end_ms: at_ms,
            step_ms: 1,
            instant: true,
        }
    }

    pub fn new(start_ms: i64, end_ms: i64, step_ms: i64) -> Self {
        Range {
            start_ms,
            end_ms,
            step_ms,
            instant: false,
        }
    }
}

/// Evenly spaced evaluation times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn t(&self, i: usize) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(i as i64))
    }

    fn from_range(start: i64, end: i64, step: i64) -> Grid {
        let n = if end < start {
            0
        } else {
            (end.abs_diff(start) / step.unsigned_abs()) as usize + 1
        };
        Grid { start, step, n }
    }
}

/// Raw samples of one series: times and values in time order.
#[derive(Debug, Clone, Default)]
pub(super) struct RawSeries {
    pub labels: Labels,
    pub ts: Vec<i64>,
    pub vs: Vec<f64>,
}

impl RawSeries {
    /// Drops staleness markers, which range selectors never see.
    fn drop_stale(&mut self) {
        let Some(first) = self.vs.iter().position(|v| is_stale(*v)) else {
            return;
        };
        let mut kept = first;
        for i in first..self.ts.len().min(self.vs.len()) {
            if !is_stale(self.vs[i]) {
                self.ts[kept] = self.ts[i];
                self.vs[kept] = self.vs[i];
                kept += 1;
            }
        }
        self.ts.truncate(kept);
        self.vs.truncate(kept);
    }
}

/// The series of one selector. Fetched ones stay as the store answered them (compressed
/// chunks, a byte or two a sample) and are decoded one at a time where they are read, so a
/// query holds its data compressed; a subquery's series are its points.
pub(super) enum Selected {
    Stored {
        series: Vec<StoreSeries>,
        read: Read,
    },
    Decoded(Vec<RawSeries>),
    /// A subquery's points: a row per series (none empty) at the steps of `grid`, turned
    /// into samples one series at a time.
    Steps {
        steps: StepVector,
        grid: Grid,
    },
}

/// Selections that may hold at least this many samples stay compressed until read.
pub(super) const LAZY_SAMPLES: usize = 1 << 20;

/// How stored series are read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Read {
    /// Inclusive, ms.
    start: i64,
    end: i64,
    mode: DedupMode,
    /// Range selectors never see staleness markers.
    drop_stale: bool,
}

impl Default for Selected {
    fn default() -> Self {
        Selected::Decoded(Vec::new())
    }
}

impl Selected {
    pub fn len(&self) -> usize {
        match self {
            Selected::Stored { series, .. } => series.len(),
            Selected::Decoded(series) => series.len(),
            Selected::Steps { steps, .. } => steps.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn labels(&self, i: usize) -> &Labels {
        match self {
            Selected::Stored { series, .. } => &series[i].labels,
            Selected::Decoded(series) => &series[i].labels,
            Selected::Steps { steps, .. } => &steps.labels[i],
        }
    }

    /// Every series' samples in `(from, to]`, staleness markers left out; series without
    /// any are left out.
    pub fn windows(&self, from: i64, to: i64) -> Result<Vec<RawSeries>, EngineError> {
        let mut out = Vec::new();
        for s in 0..self.len() {
            let series = self.get(s)?;
            let w = window(&series, from, to);
            if !w.ts.is_empty() {
                out.push(w);
            }
        }
        Ok(out)
    }

    /// Series `i` with its samples, decoded now when stored.
    pub fn get(&self, i: usize) -> Result<Cow<'_, RawSeries>, EngineError> {
        match self {
            Selected::Decoded(series) => Ok(Cow::Borrowed(&series[i])),
            Selected::Steps { steps, grid } => {
                let mut raw = RawSeries {
                    labels: steps.labels[i].clone(),
                    ..RawSeries::default()
                };
                for k in 0..grid.n {
                    if let Some(x) = steps.get(i, k) {
                        raw.ts.push(grid.t(k));
                        raw.vs.push(x);
                    }
                }
                Ok(Cow::Owned(raw))
            }
            Selected::Stored { series, read } => {
                let series = &series[i];
                let mut raw = RawSeries {
                    labels: series.labels.clone(),
                    ..RawSeries::default()
                };
                read.decode(series, &mut raw)?;
                Ok(Cow::Owned(raw))
            }
        }
    }
}

impl Read {
    /// The samples of `series` this read takes, into `raw`'s (empty) vectors.
    fn decode(&self, series: &StoreSeries, raw: &mut RawSeries) -> Result<(), EngineError> {
        series
            .decode_into(self.start, self.end, self.mode, &mut raw.ts, &mut raw.vs)
            .map_err(|e| EngineError::Store(format!("corrupt chunk: {e}")))?;
        if self.drop_stale {
            raw.drop_stale();
        }
        Ok(())
    }
}

/// Values of several series at every step of a grid.
#[derive(Debug, Clone, Default)]
pub(super) struct StepVector {
    pub labels: Vec<Labels>,
    /// `values[series * n + step]`.
    pub values: Vec<f64>,
    pub present: Vec<bool>,
    pub n: usize,
}

impl StepVector {
    pub fn new(n: usize) -> Self {
        StepVector {
            n,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn get(&self, series: usize, step: usize) -> Option<f64> {
        let i = series * self.n + step;
        self.present[i].then(|| self.values[i])
    }

    /// Adds a series with no points yet; returns its id.
    pub fn push_empty(&mut self, labels: Labels) -> usize {
        self.labels.push(labels);
        self.values.extend(std::iter::repeat_n(0.0, self.n));
        self.present.extend(std::iter::repeat_n(false, self.n));
        self.labels.len() - 1
    }

    pub fn set(&mut self, series: usize, step: usize, v: f64) {
        let i = series * self.n + step;
        self.values[i] = v;
        self.present[i] = true;
    }

    /// Series that are present at some step.
    pub fn drop_empty(&mut self) {
        let n = self.n;
        let keep: Vec<bool> = (0..self.len())
            .map(|s| self.present[s * n..(s + 1) * n].iter().any(|p| *p))
            .collect();
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut out = StepVector::new(n);
        for (s, k) in keep.iter().enumerate() {
            if *k {
                out.labels.push(std::mem::take(&mut self.labels[s]));
                out.values
                    .extend_from_slice(&self.values[s * n..(s + 1) * n]);
                out.present
                    .extend_from_slice(&self.present[s * n..(s + 1) * n]);
            }
        }
        *self = out;
    }

    /// Merges series whose labels became equal (after a function dropped the metric name):
    /// they may share a label set as long as no two of them have a value at the same step.
    pub fn merge_equal_labels(self) -> Result<StepVector, EngineError> {
        let n = self.n;
        let mut index: HashMap<&Labels, usize> = HashMap::with_capacity(self.len());
        let mut collision = false;
        for l in &self.labels {
            if index.insert(l, 0).is_some() {
                collision = true;
                break;
            }
        }
        if !collision {
            return Ok(self);
        }
        let mut out = StepVector::new(n);
        let mut ids: HashMap<Labels, usize> = HashMap::new();
        for s in 0..self.len() {
            let id = *ids
                .entry(self.labels[s].clone())
                .or_insert_with(|| out.push_empty(self.labels[s].clone()));
            for step in 0..n {
                if let Some(v) = self.get(s, step) {
                    if out.present[id * n + step] {
                        return Err(EngineError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    out.set(id, step, v);
                }
            }
        }
        Ok(out)
    }
}

/// An intermediate result.
#[derive(Debug, Clone)]
pub(super) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    Vector(StepVector),
    /// A range selector or subquery evaluated at one instant (the only place a matrix is
    /// an answer).
    Matrix(Vec<RawSeries>),
}

/// What evaluation needs besides the expression.
pub(super) struct Evaluator<'a> {
    pub engine: &'a Engine,
    /// Set when the caller went away: evaluation stops at the next check.
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// Series of every selector, by the selector's address in the expression.
    pub data: HashMap<usize, Arc<Selected>>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

pub async fn run<S: Store>(
    engine: &Engine,
    store: &S,
    expr: &Expr,
    range: Range,
) -> Result<QueryOutput, EngineError> {
    let grid = Grid::from_range(range.start_ms, range.end_ms, range.step_ms);
    let mut needs = Vec::new();
    let ctx = SpanContext {
        query_start: range.start_ms,
        query_end: range.end_ms,
        lookback: engine.options().lookback_delta_ms,
    };
    // Selectors are known by their address: the expression is boxed once here so that the
    // copy evaluated on the blocking pool is the one whose selectors were read.
    let expr = Box::new(expr.clone());
    collect_selectors(&expr, range.start_ms, range.end_ms, &ctx, None, &mut needs);
    let started = std::time::Instant::now();
    let max_series = engine.options().max_series_per_select;
    let (data, total_samples, warnings) =
        fetch(store, needs, engine.deadline(), max_series).await?;
    let max_samples = engine.options().max_samples;
    if total_samples > max_samples {
        return Err(too_many_samples());
    }
    let prepared = std::time::Instant::now();
    // Evaluation is CPU work: it runs on the blocking pool, and stops when this future is
    // dropped (the client went away) or the deadline passes.
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let engine = engine.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut ev = Evaluator {
            engine: &engine,
            cancel,
            query_start: range.start_ms,
            query_end: range.end_ms,
            data,
            warnings,
            infos: Vec::new(),
        };
        let val = ev.eval(&expr, grid)?;
        let value = finish(val, grid, range.instant)?;
        Ok::<_, EngineError>((value, ev.warnings, ev.infos))
    });
    let (value, warnings, infos) = task
        .await
        .map_err(|e| EngineError::Execution(format!("evaluation failed: {e}")))??;
    let points = match &value {
        Value::Scalar(_) | Value::String(_) => 1,
        Value::Vector(v) => v.len(),
        Value::Matrix(m) => m.iter().map(|s| s.points.len()).sum(),
    };
    let peak_samples = total_samples + points;
    if peak_samples > max_samples {
        return Err(too_many_samples());
    }
    Ok(QueryOutput {
        value,
        warnings,
        infos,
        stats: QueryStats {
            total_samples,
            peak_samples,
            prepare_seconds: (prepared - started).as_secs_f64(),
            eval_seconds: prepared.elapsed().as_secs_f64(),
        },
    })
}

/// Tells a running evaluation to stop when the future waiting for it is dropped.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A selector read more series than `query.max_series_per_select` allows.
fn too_many_series(selector: &VectorSelector, selected: usize, max: usize) -> EngineError {
    EngineError::Execution(format!(
        "the selector {selector} matched {selected} series, more than the limit of {max} \
         series per selector (query.max_series_per_select)"
    ))
}

/// Prometheus's error when a query passes `--query.max-samples`.
fn too_many_samples() -> EngineError {
    EngineError::Execution(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// The answer for the client: a vector or scalar at the instant, or a matrix over the grid.
fn finish(val: Val, grid: Grid, instant: bool) -> Result<Value, EngineError> {
    Ok(match (val, instant) {
        (Val::Scalar(v), true) => Value::Scalar(v.first().copied().unwrap_or(f64::NAN)),
        (Val::String(s), true) => Value::String(s),
        (Val::Vector(v), true) => Value::Vector(
            (0..v.len())
                .filter_map(|s| {
                    v.get(s, 0).map(|value| InstantSample {
                        labels: v.labels[s].clone(),
                        value,
                    })
                })
                .collect(),
        ),
        (Val::Matrix(m), true) => Value::Matrix(
            m.into_iter()
                .filter(|s| !s.ts.is_empty())
                .map(|s| RangeSeries {
                    labels: s.labels,
                    points: s.ts.into_iter().zip(s.vs).collect(),
                })
                .collect(),
        ),
        (Val::Scalar(v), false) => Value::Matrix(vec![RangeSeries {
            labels: Labels::default(),
            points: (0..grid.n).map(|i| (grid.t(i), v[i])).collect(),
        }]),
        (Val::Vector(v), false) => {
            let mut out: Vec<RangeSeries> = (0..v.len())
                .map(|s| RangeSeries {
                    labels: v.labels[s].clone(),
                    points: (0..grid.n)
                        .filter_map(|i| v.get(s, i).map(|x| (grid.t(i), x)))
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(out)
        }
        (Val::String(_), false) => {
            return Err(EngineError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        (Val::Matrix(_), false) => {
            return Err(EngineError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
    })
}

// === reading the data ===

/// One selector to read: its matchers, the time span it needs, and how replicas merge.
struct Need {
    key: usize,
    selector: VectorSelector,
    start: i64,
    end: i64,
    func: Option<&'static str>,
    /// Read by a range selector, which never sees staleness markers: they are dropped as
    /// the samples arrive, so the series can be shared rather than copied without them.
    range: bool,
}

struct SpanContext {
    query_start: i64,
    query_end: i64,
    lookback: i64,
}

impl SpanContext {
    /// The instants `[start, end]` become once `@` and `offset` apply.
    fn shift(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        start: i64,
        end: i64,
    ) -> (i64, i64) {
        let (s, e) = match at_ms(at, self.query_start, self.query_end) {
            Some(t) => (t, t),
            None => (start, end),
        };
        let off = offset_ms(offset);
        (s.saturating_sub(off), e.saturating_sub(off))
    }
}

pub(super) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

pub(super) fn at_ms(at: &Option<AtModifier>, query_start: i64, query_end: i64) -> Option<i64> {
    match at {
        Some(AtModifier::Start) => Some(query_start),
        Some(AtModifier::End) => Some(query_end),
        Some(AtModifier::At(t)) => Some(match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }),
        None => None,
    }
}

fn key_of(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Functions whose argument is read as a counter (replica switches must not look like
/// resets).
fn counter_function(name: &str) -> Option<&'static str> {
    ["rate", "increase", "irate", "resets"]
        .into_iter()
        .find(|f| *f == name)
}

/// Every selector of `expr` evaluated over `start..=end` and the time range of samples it
/// reads (both ends inclusive), with `@` and `offset` applied.
pub fn selector_spans(
    expr: &Expr,
    start: i64,
    end: i64,
    lookback_ms: i64,
) -> Vec<(VectorSelector, i64, i64)> {
    let ctx = SpanContext {
        query_start: start,
        query_end: end,
        lookback: lookback_ms,
    };
    let mut needs = Vec::new();
    collect_selectors(expr, start, end, &ctx, None, &mut needs);
    needs
        .into_iter()
        .map(|n| (n.selector, n.start.saturating_add(1), n.end))
        .collect()
}

fn collect_selectors(
    expr: &Expr,
    start: i64,
    end: i64,
    ctx: &SpanContext,
    func: Option<&'static str>,
    out: &mut Vec<Need>,
) {
    match expr {
        Expr::VectorSelector(vs) => {
            let (s, e) = ctx.shift(&vs.at, &vs.offset, start, end);
            out.push(Need {
                key: key_of(vs),
                selector: vs.clone(),
                start: s.saturating_sub(ctx.lookback),
                end: e,
                func,
                range: false,
            });
        }
        Expr::MatrixSelector(MatrixSelector { vs, range }) => {
            let (s, e) = ctx.shift(&vs.at, &vs.offset, start, end);
            out.push(Need {
                key: key_of(vs),
                selector: vs.clone(),
                start: s.saturating_sub(range.as_millis() as i64),
                end: e,
                func,
                range: true,
            });
        }
        Expr::Subquery(sq) => {
            let (s, e) = ctx.shift(&sq.at, &sq.offset, start, end);
            let from = s.saturating_sub(sq.range.as_millis() as i64);
            collect_selectors(&sq.expr, from, e, ctx, None, out);
        }
        Expr::Call(call) => {
            let f = counter_function(call.func.name);
            for a in &call.args.args {
                collect_selectors(a, start, end, ctx, f, out);
            }
        }
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, start, end, ctx, None, out);
            if let Some(p) = &a.param {
                collect_selectors(p, start, end, ctx, None, out);
            }
        }
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, start, end, ctx, None, out);
            collect_selectors(&b.rhs, start, end, ctx, None, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, start, end, ctx, func, out),
        Expr::Unary(u) => collect_selectors(&u.expr, start, end, ctx, func, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every selector's series, how many samples they hold, and the warnings of stores that
/// failed.
type Fetched = (HashMap<usize, Arc<Selected>>, usize, Vec<String>);

/// Reads every selector at once. Backends that failed become warnings; a selector no
/// backend answered fails the query.
async fn fetch<S: Store>(
    store: &S,
    needs: Vec<Need>,
    deadline: Option<tokio::time::Instant>,
    max_series: usize,
) -> Result<Fetched, EngineError> {
    let reads = needs.iter().map(|need| async move {
        let mut all = Vec::new();
        let mut warnings = Vec::new();
        let mut read = None;
        for matchers in SelectRequest::selector_matchers(&need.selector) {
            let request = SelectRequest {
                matchers,
                start_ms: need.start.saturating_add(1),
                end_ms: need.end,
                hints: need.func.map(|f| SelectHints {
                    func: f.to_string(),
                    ..SelectHints::default()
                }),
                deadline,
            };
            let mode = if need.func.is_some() {
                DedupMode::Counter
            } else {
                DedupMode::Gauge
            };
            let set = store.select(&request).await.map_err(|e| match e {
                StoreError::BackendFailed(m) => EngineError::Store(m),
                StoreError::BackendTimedOut(m) => EngineError::StoreTimeout(m),
            })?;
            let failed: Vec<String> = set.failures.iter().map(|f| f.warning()).collect();
            if set.answered == 0 && !failed.is_empty() {
                let message = format!("no backend answered: {}", failed.join("; "));
                return Err(if set.failures.iter().all(|f| f.error.is_timeout()) {
                    EngineError::StoreTimeout(message)
                } else {
                    EngineError::Store(message)
                });
            }
            warnings.extend(failed);
            let selected = all.len() + set.series.len();
            if max_series > 0 && selected > max_series {
                return Err(too_many_series(&need.selector, selected, max_series));
            }
            all.extend(set.series);
            read = Some(Read {
                start: request.start_ms,
                end: request.end_ms,
                mode,
                drop_stale: need.range,
            });
        }
        let Some(read) = read else {
            return Ok((need.key, Selected::default(), 0, warnings));
        };
        // Small selections are decoded at once; big ones stay compressed until read.
        let bound: usize = all
            .iter()
            .map(|s| s.samples_bound(read.start, read.end))
            .sum();
        let corrupt = |e| EngineError::Store(format!("corrupt chunk: {e}"));
        let (selected, samples) = if bound < LAZY_SAMPLES {
            let series = all
                .into_iter()
                .map(|series| {
                    let mut raw = RawSeries::default();
                    read.decode(&series, &mut raw)?;
                    raw.labels = series.labels;
                    // Held until the query ends: without the slack growth left behind.
                    raw.ts.shrink_to_fit();
                    raw.vs.shrink_to_fit();
                    Ok(raw)
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            let samples = series.iter().map(|s| s.ts.len()).sum();
            (Selected::Decoded(series), samples)
        } else {
            let mut samples = 0;
            for s in &all {
                samples += s
                    .count_samples(read.start, read.end, read.mode)
                    .map_err(corrupt)?;
            }
            (Selected::Stored { series: all, read }, samples)
        };
        Ok::<_, EngineError>((need.key, selected, samples, warnings))
    });
    let results = futures::future::join_all(reads).await;
    let mut data = HashMap::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut total = 0;
    for r in results {
        let (key, series, samples, failed) = r?;
        data.insert(key, Arc::new(series));
        total += samples;
        for w in failed {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    Ok((data, total, warnings))
}

// === evaluation ===

/// Staleness marker: a NaN with this exact bit pattern ends a series.
pub(super) const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub(super) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

impl Evaluator<'_> {
    /// Fails once the query was abandoned or its deadline passed; called often enough
    /// (per node, per batch of series) to stop a long evaluation soon.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(EngineError::Canceled);
        }
        if self
            .engine
            .deadline()
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            return Err(EngineError::Timeout);
        }
        Ok(())
    }

    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Val, EngineError> {
        self.check()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; grid.n])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(mut v) => {
                    for x in &mut v.values {
                        *x = -*x;
                    }
                    for l in &mut v.labels {
                        l.remove("__name__");
                    }
                    Ok(Val::Vector(v.merge_equal_labels()?))
                }
                _ => Err(EngineError::BadData(
                    "unary expression only allowed on expressions of type scalar or vector".into(),
                )),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.instant_selector(vs, grid)?)),
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.matrix_at_instant(ms, grid)?)),
            // At an instant, a subquery is a matrix: its points in the window.
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, grid)?)),
            Expr::Call(call) => super::functions::call(self, call, grid),
            Expr::Aggregate(a) => super::aggregate::aggregate(self, a, grid),
            Expr::Binary(b) => super::binary::binary(self, b, grid),
            Expr::Extension(_) => Err(EngineError::Unsupported("extension expressions".into())),
        }
    }

    pub(super) fn data_of(&self, vs: &VectorSelector) -> Arc<Selected> {
        self.data.get(&key_of(vs)).cloned().unwrap_or_default()
    }

    /// Evaluation time of step `i` for a selector with `@`/`offset`.
    pub fn shifted(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        grid: Grid,
        i: usize,
    ) -> i64 {
        at_ms(at, self.query_start, self.query_end)
            .unwrap_or_else(|| grid.t(i))
            .saturating_sub(offset_ms(offset))
    }

    /// An instant selector: at each step, the latest sample in the lookback window.
    fn instant_selector(&self, vs: &VectorSelector, grid: Grid) -> Result<StepVector, EngineError> {
        self.pick_samples(vs, grid, false, |_, v| v)
    }

    /// For every series of `vs` and every step, the sample an instant selector picks there
    /// (the latest in `(t - lookback, t]`, unless it is a staleness marker), mapped by
    /// `value(t, v)`; `drop_name` drops the metric name.
    pub fn pick_samples(
        &self,
        vs: &VectorSelector,
        grid: Grid,
        drop_name: bool,
        value: impl Fn(i64, f64) -> f64,
    ) -> Result<StepVector, EngineError> {
        let lookback = self.engine.options().lookback_delta_ms;
        let data = self.data_of(vs);
        let mut out = StepVector::new(grid.n);
        for s in 0..data.len() {
            let series = data.get(s)?;
            let mut labels = series.labels.clone();
            if drop_name {
                labels.remove("__name__");
            }
            let id = out.push_empty(labels);
            // Steps are in time order: the samples up to each are found walking forward.
            let mut idx = 0;
            for i in 0..grid.n {
                let t = self.shifted(&vs.at, &vs.offset, grid, i);
                idx = advance(&series.ts, idx, t);
                if idx == 0 {
                    continue;
                }
                let (st, sv) = (series.ts[idx - 1], series.vs[idx - 1]);
                if st > t.saturating_sub(lookback) && !is_stale(sv) {
                    out.set(id, i, value(st, sv));
                }
            }
        }
        out.drop_empty();
        Ok(out)
    }

    /// Samples of a range selector in `(t - range, t]` at an instant query's one step.
    fn matrix_at_instant(
        &self,
        ms: &MatrixSelector,
        grid: Grid,
    ) -> Result<Vec<RawSeries>, EngineError> {
        let range = ms.range.as_millis() as i64;
        let t = self.shifted(&ms.vs.at, &ms.vs.offset, grid, 0);
        self.data_of(&ms.vs).windows(t.saturating_sub(range), t)
    }

    /// The series a range function reads: from a range selector or a subquery, with the
    /// window end of each step and the window length.
    pub fn range_input(&mut self, expr: &Expr, grid: Grid) -> Result<RangeInput, EngineError> {
        match expr {
            Expr::MatrixSelector(ms) => {
                let ends = (0..grid.n)
                    .map(|i| self.shifted(&ms.vs.at, &ms.vs.offset, grid, i))
                    .collect();
                Ok(RangeInput {
                    series: self.data_of(&ms.vs),
                    ends,
                    range: ms.range.as_millis() as i64,
                })
            }
            Expr::Subquery(sq) => {
                let ends = (0..grid.n)
                    .map(|i| self.shifted(&sq.at, &sq.offset, grid, i))
                    .collect();
                let series = Arc::new(self.subquery_series(sq, grid)?);
                Ok(RangeInput {
                    series,
                    ends,
                    range: sq.range.as_millis() as i64,
                })
            }
            Expr::Paren(p) => self.range_input(&p.expr, grid),
            _ => Err(EngineError::BadData(
                "expected type range vector in call to function".into(),
            )),
        }
    }

    /// A subquery at an instant query's step: its points in the window.
    fn subquery(&mut self, sq: &SubqueryExpr, grid: Grid) -> Result<Vec<RawSeries>, EngineError> {
        let t = self.shifted(&sq.at, &sq.offset, grid, 0);
        let range = sq.range.as_millis() as i64;
        self.subquery_series(sq, grid)?
            .windows(t.saturating_sub(range), t)
    }

    /// The inner expression of a subquery evaluated at its own steps (multiples of its
    /// step) across every window the outer grid needs.
    fn subquery_series(&mut self, sq: &SubqueryExpr, grid: Grid) -> Result<Selected, EngineError> {
        let step = sq
            .step
            .map(|s| s.as_millis() as i64)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        let range = sq.range.as_millis() as i64;
        let first = self.shifted(&sq.at, &sq.offset, grid, 0);
        let last = self.shifted(&sq.at, &sq.offset, grid, grid.n.saturating_sub(1));
        let (lo, hi) = (first.min(last), first.max(last));
        // Inner steps are aligned to absolute multiples of the step, after (lo - range).
        let from = lo.saturating_sub(range);
        let mut start = from.div_euclid(step).saturating_mul(step);
        if start <= from {
            start = start.saturating_add(step);
        }
        let inner = Grid::from_range(start, hi, step);
        // Prometheus counts a subquery's steps against max_samples as it evaluates them;
        // the whole grid is known here, so a grid that could never fit is refused at once.
        if inner.n > self.engine.options().max_samples {
            return Err(too_many_samples());
        }
        let steps = match self.eval(&sq.expr, inner)? {
            Val::Vector(mut v) => {
                v.drop_empty();
                v
            }
            Val::Scalar(values) => {
                let mut v = StepVector::new(inner.n);
                let id = v.push_empty(Labels::default());
                for (k, x) in values.into_iter().enumerate().take(inner.n) {
                    v.set(id, k, x);
                }
                v
            }
            _ => {
                return Err(EngineError::BadData(
                    "subquery is only allowed on instant vector".into(),
                ));
            }
        };
        Ok(Selected::Steps { steps, grid: inner })
    }
}

/// How many of the sorted `ts` are at or before `t`, knowing at least `from` are: a few
/// steps forward, then a binary search for long jumps.
pub(super) fn advance(ts: &[i64], from: usize, t: i64) -> usize {
    const NEAR: usize = 8;
    let near = ts.len().min(from + NEAR);
    let mut i = from;
    while i < near && ts[i] <= t {
        i += 1;
    }
    if i < near || i == ts.len() || ts[i] > t {
        return i;
    }
    i + ts[i..].partition_point(|&x| x <= t)
}

/// The samples of `s` in `(from, to]`, staleness markers left out.
fn window(s: &RawSeries, from: i64, to: i64) -> RawSeries {
    let lo = s.ts.partition_point(|&t| t <= from);
    let hi = s.ts.partition_point(|&t| t <= to);
    let mut out = RawSeries {
        labels: s.labels.clone(),
        ..RawSeries::default()
    };
    for i in lo..hi {
        if !is_stale(s.vs[i]) {
            out.ts.push(s.ts[i]);
            out.vs.push(s.vs[i]);
        }
    }
    out
}

/// Input of a range function: series, and per step the end of its window.
pub(super) struct RangeInput {
    /// Shared with the fetched data (or a subquery's points), never copied; series read
    /// from it hold no staleness markers.
    pub series: Arc<Selected>,
    /// Window end per step; the window is `(end - range, end]`.
    pub ends: Vec<i64>,
    pub range: i64,
}

impl RangeInput {
    /// Index bounds of step `step`'s window in `series` (one of these series, decoded).
    pub fn bounds(&self, series: &RawSeries, step: usize) -> (usize, usize) {
        let ts = &series.ts;
        let end = self.ends[step];
        let lo = ts.partition_point(|&t| t <= end.saturating_sub(self.range));
        let hi = ts.partition_point(|&t| t <= end);
        (lo, hi)
    }
}
