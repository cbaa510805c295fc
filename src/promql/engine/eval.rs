//! Evaluation of an expression over a range of steps.

use promql_parser::parser::Expr;

use super::{Engine, EngineError, QueryOutput};
use crate::storage::Store;

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

pub async fn run<S: Store>(
    _engine: &Engine,
    _store: &S,
    expr: &Expr,
    _range: Range,
) -> Result<QueryOutput, EngineError> {
    Err(EngineError::Unsupported(format!(
        "evaluation of {} expressions",
        expr.value_type()
    )))
}
