//! Metadata from the backends that have no query API (InfluxDB): their series are read with
//! remote read through the store, and series, label names and label values are taken from
//! the labels of what comes back. A store that cannot be read that way (no metric name to
//! ask InfluxDB for) is a warning, as a failed backend is.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;

use super::query::Budget;
use crate::app::App;
use crate::backend::fanout::MemberFailure;
use crate::error::ApiError;
use crate::model::Labels;
use crate::storage::{MergedStore, SelectHints, SelectRequest, Store, StoreError};

/// The label sets the raw-only backends hold.
#[derive(Default)]
pub(super) struct RawSeries {
    pub labels: Vec<Labels>,
    pub failures: Vec<MemberFailure>,
    /// Whether any raw-only backend answered.
    pub answered: bool,
}

/// Label sets of the series matching any of `selectors` (all series without selectors,
/// or with `extra` added when given) that have a sample in `start_ms..=end_ms`.
pub(super) async fn raw_series(
    app: &App,
    budget: &Budget,
    selectors: &[VectorSelector],
    extra: Option<Matcher>,
    start_ms: i64,
    end_ms: i64,
) -> Result<RawSeries, ApiError> {
    let topology = app.topology.load();
    let backends: Vec<_> = topology
        .backends
        .iter()
        .filter(|b| !b.config.kind.has_query_api())
        .cloned()
        .collect();
    if backends.is_empty() {
        return Ok(RawSeries::default());
    }
    // Failures come back with the series; the caller weighs them with the other backends'.
    let store = MergedStore::with_backends(topology.clone(), backends, true);
    let mut alternatives: Vec<Vec<Matcher>> = selectors
        .iter()
        .flat_map(SelectRequest::selector_matchers)
        .collect();
    if alternatives.is_empty() {
        alternatives.push(vec![any_metric()]);
    }
    let mut out = RawSeries::default();
    for mut matchers in alternatives {
        matchers.extend(extra.clone());
        let request = SelectRequest {
            matchers,
            start_ms,
            end_ms,
            hints: Some(SelectHints {
                func: "series".to_string(),
                ..SelectHints::default()
            }),
            deadline: Some(budget.deadline),
        };
        let set = store.select(&request).await.map_err(|e| match e {
            StoreError::BackendFailed(m) => ApiError::unavailable(m),
            StoreError::BackendTimedOut(m) => ApiError::timeout(m),
        })?;
        out.answered |= set.answered > 0;
        for series in set.series {
            if series.has_samples(start_ms, end_ms) {
                out.labels.push(series.labels);
            }
        }
        for f in set.failures {
            if !out.failures.iter().any(|o| o.backend == f.backend) {
                out.failures.push(f);
            }
        }
    }
    Ok(out)
}

fn any_metric() -> Matcher {
    Matcher::new(
        MatchOp::Re(regex::Regex::new("^(?:.+)$").expect("a valid regex")),
        "__name__",
        ".+",
    )
}

/// A matcher that keeps the series carrying label `name`.
pub(super) fn has_label(name: &str) -> Matcher {
    Matcher::new(
        MatchOp::Re(regex::Regex::new("^(?:.+)$").expect("a valid regex")),
        name,
        ".+",
    )
}
