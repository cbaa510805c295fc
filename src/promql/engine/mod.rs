//! promgate's own PromQL engine: evaluates a parsed query over a [`Store`] with Prometheus
//! 3.5 semantics.
//!
//! ```text
//! Expr ─plan─▶ selectors with their time ranges ─Store::select (all at once)─▶ series
//!      ─eval─▶ operators over steps: selectors, functions, aggregations, binary ops
//!      ─▶ Value (scalar, string, vector, matrix) + warnings and infos
//! ```
//!
//! Data is read first, in one concurrent round of selects; evaluation after that is plain
//! CPU work over flat arrays, step by step.

// Loops run over step indexes shared by several parallel arrays (values, presence,
// parameters per step); indexing says that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

mod aggregate;
mod binary;
mod eval;
mod functions;
mod kernels;

pub use eval::selector_spans;

use promql_parser::parser::Expr;

use crate::model::Labels;
use crate::storage::Store;

/// Order of values when ranking (`sort`, `topk`, ...): ascending, or descending with
/// `descending`; NaN last either way.
pub fn rank_order(x: f64, y: f64, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if descending => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Settings that change answers, as Prometheus's flags do.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Most series one selector may read; 0 = no limit.
    pub max_series_per_select: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60_000,
            max_samples: 50_000_000,
            max_series_per_select: 0,
        }
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a matrix: `(t_ms, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// What a query evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    /// An instant query's vector, all at the query's time.
    Vector(Vec<InstantSample>),
    /// A range query's result, or an instant query of a range selector.
    Matrix(Vec<RangeSeries>),
}

/// A query's answer and the annotations Prometheus would attach.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// What a query cost, as Prometheus reports it with `stats=all`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    /// Raw samples read from the store.
    pub total_samples: usize,
    /// Most samples held at once: raw samples plus the points of the answer.
    pub peak_samples: usize,
    /// Seconds spent reading series.
    pub prepare_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
}

/// Why a query has no answer, with the errorType Prometheus gives it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The query is not valid PromQL for this evaluation (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (422 `execution`), e.g. too many samples or duplicate series.
    #[error("{0}")]
    Execution(String),
    /// The query's deadline passed (503 `timeout`).
    #[error("query timed out")]
    Timeout,
    /// The caller went away.
    #[error("query was canceled")]
    Canceled,
    /// Something this engine does not evaluate yet (native histograms, some functions).
    #[error("not supported by promgate's engine: {0}")]
    Unsupported(String),
    /// Reading series failed.
    #[error("{0}")]
    Store(String),
    /// Reading series failed because backends did not answer in time (503 `timeout`, as
    /// when the query itself runs out of time).
    #[error("{0}")]
    StoreTimeout(String),
}

/// Evaluates queries with one set of options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
    deadline: Option<tokio::time::Instant>,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Engine {
            options,
            deadline: None,
        }
    }

    /// Reads for the query give up at `deadline`.
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub(crate) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `expr` at one instant (unix milliseconds).
    pub async fn query_instant<S: Store>(
        &self,
        store: &S,
        expr: &Expr,
        at_ms: i64,
    ) -> Result<QueryOutput, EngineError> {
        eval::run(self, store, expr, eval::Range::instant(at_ms)).await
    }

    /// Evaluates `expr` at every `step_ms` from `start_ms` to `end_ms` (inclusive); the
    /// answer is always a matrix (or an error).
    pub async fn query_range<S: Store>(
        &self,
        store: &S,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryOutput, EngineError> {
        if step_ms <= 0 {
            return Err(EngineError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        // Every step holds at least one value: more steps than samples allowed never fit.
        if end_ms > start_ms
            && end_ms.abs_diff(start_ms) / step_ms.unsigned_abs() >= self.options.max_samples as u64
        {
            return Err(EngineError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        eval::run(
            self,
            store,
            expr,
            eval::Range::new(start_ms, end_ms, step_ms),
        )
        .await
    }
}
#[cfg(test)]
mod tests;
