//! Queries promgate evaluates itself, with its engine over the store of every backend: the
//! ones that combine several replica groups in a way per-group answers cannot reproduce,
//! and the ones that need data from stores without a query API.

use promql_parser::parser::Expr;

use super::Reply;
use super::params::Params;
use super::query::Budget;
use crate::app::App;
use crate::error::{ApiError, ErrorType};
use crate::promql::engine::{Engine, EngineError, EngineOptions};
use crate::storage::MergedStore;

/// When to evaluate.
#[derive(Debug, Clone, Copy)]
pub enum Steps {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

/// The answer, or `None` when the engine does not support the query yet.
pub async fn evaluate(
    app: &App,
    params: &Params,
    expr: &Expr,
    steps: Steps,
    budget: &Budget,
) -> Option<Result<Reply, ApiError>> {
    let topology = app.topology.load();
    let query_config = &topology.config.query;
    let mut options = EngineOptions {
        max_samples: query_config.max_samples,
        max_series_per_select: query_config.max_series_per_select,
        ..EngineOptions::default()
    };
    match params
        .non_empty("lookback_delta")
        .map(crate::time::parse_duration_param)
    {
        Some(Ok(ms)) if ms > 0 => options.lookback_delta_ms = ms,
        Some(Err(e)) => {
            return Some(Err(ApiError::bad_data(format!(
                "error parsing lookback delta duration: {e}"
            ))));
        }
        _ => {}
    }
    let engine = Engine::new(options).with_deadline(budget.deadline);
    let store = MergedStore::new(app.topology.load(), budget.partial_response);
    let run = async {
        match steps {
            Steps::Instant(t) => engine.query_instant(&store, expr, t).await,
            Steps::Range { start, end, step } => {
                engine.query_range(&store, expr, start, end, step).await
            }
        }
    };
    let result = match tokio::time::timeout_at(budget.deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(EngineError::Timeout),
    };
    let at = match steps {
        Steps::Instant(t) => t,
        Steps::Range { start, .. } => start,
    };
    let stats = params.non_empty("stats").is_some();
    Some(match result {
        Ok(out) => Ok(Reply::JsonPieces(super::json::success_in_pieces(
            &out.warnings,
            &out.infos,
            |pieces| {
                super::engine_json::write_engine_pieces(pieces, &out.value, at);
                if stats {
                    // `data` is still open: the stats go inside it, after the result.
                    let tail = &mut pieces.open;
                    tail.pop();
                    super::engine_json::write_stats(tail, &out.stats);
                    tail.push(b'}');
                }
            },
        ))),
        Err(EngineError::Unsupported(_)) => return None,
        Err(e) => Err(api_error(e)),
    })
}

fn api_error(e: EngineError) -> ApiError {
    let kind = match &e {
        EngineError::BadData(_) => ErrorType::BadData,
        EngineError::Execution(_) => ErrorType::Execution,
        EngineError::Timeout => ErrorType::Timeout,
        EngineError::Canceled => ErrorType::Canceled,
        EngineError::Store(_) => ErrorType::Unavailable,
        EngineError::StoreTimeout(_) => ErrorType::Timeout,
        EngineError::Unsupported(_) => ErrorType::Execution,
    };
    let message = match e {
        EngineError::Timeout => "query timed out in query execution".to_string(),
        other => other.to_string(),
    };
    ApiError::new(kind, message)
}
