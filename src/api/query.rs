//! /api/v1/query and /api/v1/query_range: parse, plan per replica group, ask the groups,
//! and combine their answers. One group that answered unchanged is relayed byte for byte.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Reply;
use super::params::Params;
use crate::app::App;
use crate::backend::fanout::{self, GroupOutcome, MemberFailure};
use crate::backend::{ApiRequest, ApiResponse, Backend, BackendError, ReplicaGroup};
use crate::error::{ApiError, ErrorType};
use crate::model::{Envelope, Labels, Point, QueryResult, Series};
use crate::promql::{Exactness, ResultOrder, map_annotation_positions, plan_groups};
use crate::time::{now_ms, write_timestamp};

/// Each answering member of a group with its answer.
type Answers = Vec<(Arc<Backend>, ApiResponse)>;

/// Prometheus's limit on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

#[derive(Debug, Clone, Copy)]
pub(super) enum Range {
    Instant { time: i64 },
    Range { start: i64, end: i64, step: i64 },
}

pub async fn instant(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let time = params.time("time", now_ms())?;
    run(app, params, Range::Instant { time }).await
}

pub async fn range(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let start = params.time("start", now_ms())?;
    let end = params.time("end", now_ms())?;
    if params.non_empty("start").is_none() {
        return Err(ApiError::invalid_param(
            "start",
            "cannot parse \"\" to a valid timestamp",
        ));
    }
    if params.non_empty("end").is_none() {
        return Err(ApiError::invalid_param(
            "end",
            "cannot parse \"\" to a valid timestamp",
        ));
    }
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = match params.duration("step")? {
        Some(step) => step,
        None => {
            return Err(ApiError::invalid_param(
                "step",
                "cannot parse \"\" to a valid duration",
            ));
        }
    };
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    super::limits::check_range(&app.topology.load().config.query, start, end)?;
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    run(app, params, Range::Range { start, end, step }).await
}

/// Whether a backend without a query API (InfluxDB, blocks) may hold series `expr` reads
/// when evaluated over `range`.
fn raw_store_relevant(
    topology: &crate::backend::Topology,
    expr: &promql_parser::parser::Expr,
    range: Range,
    lookback_ms: i64,
) -> bool {
    let raw: Vec<_> = topology
        .backends
        .iter()
        .filter(|b| !b.config.kind.has_query_api())
        .collect();
    if raw.is_empty() {
        return false;
    }
    let (start, end) = match range {
        Range::Instant { time } => (time, time),
        Range::Range { start, end, .. } => (start, end),
    };
    let spans = crate::promql::engine::selector_spans(expr, start, end, lookback_ms);
    raw.iter().any(|b| {
        spans
            .iter()
            .any(|(vs, from, to)| b.may_hold(vs, *from, *to))
    })
}

impl From<Range> for super::evaluate::Steps {
    fn from(r: Range) -> Self {
        match r {
            Range::Instant { time } => super::evaluate::Steps::Instant(time),
            Range::Range { start, end, step } => super::evaluate::Steps::Range { start, end, step },
        }
    }
}

/// Deadline and partial-response policy of one request.
pub(super) struct Budget {
    pub deadline: Instant,
    pub partial_response: bool,
}

impl Budget {
    pub fn from_params(app: &App, params: &Params) -> Result<Budget, ApiError> {
        let config = app.topology.load().config.clone();
        let mut timeout = config.query.timeout.0;
        if let Some(ms) = params.duration("timeout")? {
            if ms > 0 {
                timeout = timeout.min(Duration::from_millis(ms as u64));
            }
        }
        Ok(Budget {
            deadline: Instant::now() + timeout,
            partial_response: params.partial_response(config.query.partial_response)?,
        })
    }

    /// What the backend is told it has left, in seconds.
    pub fn remaining_param(&self) -> String {
        let left = self.deadline.saturating_duration_since(Instant::now());
        format!("{:.3}", left.as_secs_f64().max(0.001))
    }
}

fn seconds(ms: i64) -> String {
    let mut out = Vec::new();
    write_timestamp(&mut out, ms);
    String::from_utf8(out).unwrap_or_default()
}

async fn run(app: &App, params: &Params, range: Range) -> Result<Reply, ApiError> {
    let budget = Budget::from_params(app, params)?;
    let mut lookback_ms = crate::promql::engine::EngineOptions::default().lookback_delta_ms;
    if let Some(v) = params.non_empty("lookback_delta") {
        let ms = crate::time::parse_duration_param(v).map_err(|e| {
            ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))
        })?;
        if ms > 0 {
            lookback_ms = ms;
        }
    }
    let query = params.get("query").unwrap_or("");
    let topology = app.topology.load();
    super::limits::check_query_length(&topology.config.query, "query", query)?;
    let (groups, unknown) = topology.replica_groups(Some(budget.deadline)).await;
    let expr = match app.queries.parse(query) {
        Ok(expr) => expr,
        Err(e) => {
            let ours = ApiError::invalid_param("query", format!("parse error: {e}"));
            let req = ApiRequest::post(
                "/api/v1/query",
                vec![
                    ("query".to_string(), query.to_string()),
                    ("time".to_string(), "0".to_string()),
                ],
            );
            return Err(backend_wording(&groups, req, ours, &budget).await);
        }
    };
    let replica_labels = &topology.config.query.replica_labels;

    let hedge_after = topology.config.query.hedge_after.0;
    let labels: Vec<_> = groups.iter().map(|g| &g.labels).collect();
    let plan = plan_groups(&expr, &labels);

    // Across replica groups where concatenation is not exact, where a store without a
    // query API holds data for the query, or over backends that evaluate PromQL otherwise,
    // promgate evaluates the query itself.
    let across =
        plan.queries.len() > 1 && matches!(plan.exactness, Exactness::NotMergedAcrossGroups);
    // Prometheus 2.x closes range windows on the left: its answers differ from 3.x's at
    // sample-aligned boundaries, so its data is evaluated here.
    let older = plan.queries.iter().any(|q| {
        groups[q.group]
            .members
            .iter()
            .any(|b| !b.evaluates_like_promgate())
    });
    let raw = raw_store_relevant(&topology, &expr, range, lookback_ms);
    // A sample by label hash (`limit_ratio`) must see the external labels the backends do
    // not hold.
    let hashed = crate::promql::hashes_labels(&expr)
        && plan
            .queries
            .iter()
            .any(|q| !groups[q.group].labels.is_empty());
    // An aggregation that decomposes goes to each group as a partial aggregation.
    if across && !older && !raw && !hashed && unknown.is_empty() {
        if let Some(pushdown) = crate::promql::pushdown::plan_pushdown(&expr, &labels) {
            if let Some(answer) = super::pushdown::answer(
                params,
                range,
                &pushdown,
                &groups,
                replica_labels,
                hedge_after,
                &budget,
            )
            .await
            {
                app.metrics.observe_query_path("pushdown");
                return answer;
            }
        }
    }
    if across || older || raw || hashed {
        // What the engine cannot evaluate yet goes the per-group way below.
        if let Some(answer) =
            super::evaluate::evaluate(app, params, &expr, range.into(), &budget).await
        {
            app.metrics.observe_query_path("engine");
            return answer;
        }
    }

    let calls = plan.queries.iter().map(|gq| {
        let group = &groups[gq.group];
        // Unchanged queries go as the client wrote them: positions in annotations stay right.
        let text = if gq.rewritten {
            gq.query.as_str()
        } else {
            query
        };
        let req = backend_request(params, range, text, &budget);
        async move {
            match range {
                Range::Instant { .. } => fanout::first_answer(group, &req, hedge_after).await,
                Range::Range { .. } => fanout::all_answers(group, &req).await,
            }
        }
    });
    let outcomes = futures::future::join_all(calls).await;

    let mut failures = unknown;
    let mut warnings: Vec<String> = failures.iter().map(MemberFailure::warning).collect();
    // Each answering group, its answers, and the query text it was sent when that was not
    // the client's own.
    let mut answered: Vec<(&ReplicaGroup, Answers, Option<&str>)> = Vec::new();
    for (gq, outcome) in plan.queries.iter().zip(outcomes) {
        let sent = gq.rewritten.then_some(gq.query.as_str());
        match outcome {
            GroupOutcome::Answered { answers, .. } => {
                answered.push((&groups[gq.group], answers, sent))
            }
            GroupOutcome::Rejected(e) => return Err(rejected(e)),
            GroupOutcome::Failed(f) => {
                warnings.extend(f.iter().map(MemberFailure::warning));
                failures.extend(f);
            }
        }
    }
    check_failures(&failures, answered.is_empty(), &budget)?;

    // One group, one answer: relay it as it came, with the group's labels added in place
    // when the plan leaves that to promgate.
    if failures.is_empty() && answered.len() == 1 && answered[0].1.len() == 1 {
        let (group, answers, sent) = &answered[0];
        let body = &answers[0].1.body;
        let labels = group.label_pairs();
        // Annotations of a rewritten query need their positions mapped: decode below.
        let relayable = sent.is_none() || !has_annotations(body);
        if relayable && (!plan.attach_external_labels || labels.is_empty()) {
            app.metrics.observe_query_path("passthrough");
            return Ok(Reply::Raw(body.clone()));
        }
        if relayable {
            if let Some(with_labels) = super::json::attach_labels_raw(body, &labels) {
                app.metrics.observe_query_path("passthrough");
                return Ok(Reply::Json(with_labels));
            }
        }
    }

    let mut infos = Vec::new();
    let mut combined: Option<QueryResult> = None;
    let answered_groups = answered.len();
    let mut replicas_disagree = false;
    for (group, answers, sent) in answered {
        let mut result: Option<QueryResult> = None;
        let mut first_shape = None;
        for (backend, resp) in answers {
            let mut env = decode::<QueryResult>(&backend, &resp.body)?;
            if let Some(sent) = sent {
                map_annotation_positions(&mut env.warnings, query, sent);
                map_annotation_positions(&mut env.infos, query, sent);
            }
            push_unique(&mut warnings, env.warnings);
            push_unique(&mut infos, env.infos);
            let Some(data) = env.data else { continue };
            let shape = shape(&data);
            replicas_disagree |= first_shape.is_some_and(|first| first != shape);
            first_shape.get_or_insert(shape);
            result = Some(match result {
                None => data,
                Some(primary) => fill_gaps(primary, data),
            });
        }
        let Some(mut result) = result else { continue };
        if plan.attach_external_labels {
            attach_labels(&mut result, replica_labels, &group.label_pairs());
        }
        combined = Some(match combined {
            None => result,
            Some(acc) => concat(acc, result),
        });
    }
    // Replicas whose answers differ in series or points have a gap: steps next to it were
    // computed from fewer samples than the pair holds. Only evaluating over the merged
    // samples answers those exactly.
    if replicas_disagree && failures.is_empty() {
        if let Some(answer) =
            super::evaluate::evaluate(app, params, &expr, range.into(), &budget).await
        {
            app.metrics.observe_query_path("engine");
            return answer;
        }
    }
    app.metrics.observe_query_path("per_group");
    let mut result = combined.unwrap_or(QueryResult::Vector(Vec::new()));
    if answered_groups > 1 {
        sort_result(&mut result, &plan.order);
        if matches!(plan.exactness, Exactness::NotMergedAcrossGroups) {
            warnings.push(format!(
                "result not merged across replica groups: the query combines series of {answered_groups} groups, which promgate does not evaluate across groups yet; each series shown comes from one group"
            ));
        }
    }
    Ok(Reply::Json(super::json::success(
        &warnings,
        &infos,
        |out| super::json::write_query_result(out, &result),
    )))
}

/// Whether an answer carries warnings or infos (the keys only occur at the top level: label
/// values are strings, never lists).
fn has_annotations(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"warnings\":[").is_some()
        || memchr::memmem::find(body, b"\"infos\":[").is_some()
}

pub(super) fn backend_request(
    params: &Params,
    range: Range,
    query: &str,
    budget: &Budget,
) -> ApiRequest {
    let mut form = vec![("query".to_string(), query.to_string())];
    let path = match range {
        Range::Instant { time } => {
            form.push(("time".into(), seconds(time)));
            "/api/v1/query"
        }
        Range::Range { start, end, step } => {
            form.push(("start".into(), seconds(start)));
            form.push(("end".into(), seconds(end)));
            form.push(("step".into(), seconds(step)));
            "/api/v1/query_range"
        }
    };
    // A client's own timeout is passed on (as what is left of it) so the backend stops
    // working when the client stops waiting; without one, promgate's deadline still bounds
    // the wait and the backend's own default bounds its work.
    if params.non_empty("timeout").is_some() {
        form.push(("timeout".into(), budget.remaining_param()));
    }
    for name in ["stats", "lookback_delta", "limit"] {
        if let Some(v) = params.non_empty(name) {
            form.push((name.to_string(), v.to_string()));
        }
    }
    ApiRequest::form(path, form).with_deadline(budget.deadline)
}

/// Decides whether failed backends fail the request: always when nothing answered, and
/// for any failure when partial responses are off.
pub(super) fn check_failures(
    failures: &[MemberFailure],
    nothing_answered: bool,
    budget: &Budget,
) -> Result<(), ApiError> {
    if failures.is_empty() {
        return Ok(());
    }
    if !nothing_answered && budget.partial_response {
        return Ok(());
    }
    let detail: Vec<String> = failures.iter().map(MemberFailure::warning).collect();
    let kind = if failures.iter().all(|f| f.error.is_timeout()) {
        ErrorType::Timeout
    } else {
        ErrorType::Unavailable
    };
    let message = if nothing_answered {
        format!("no backend answered: {}", detail.join("; "))
    } else {
        format!(
            "partial response disabled and some backends failed: {}",
            detail.join("; ")
        )
    };
    Err(ApiError::new(kind, message))
}

/// A query rejected by a backend is the client's error, with the backend's words.
pub(super) fn rejected(e: BackendError) -> ApiError {
    match e {
        BackendError::Api {
            error_type: Some(kind),
            message,
            ..
        } => ApiError::new(kind, message),
        other => ApiError::internal(other.to_string()),
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    backend: &Backend,
    body: &[u8],
) -> Result<Envelope<T>, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::internal(format!(
            "backend {:?} sent an undecodable answer: {e}",
            backend.name()
        ))
    })
}

pub(super) fn push_unique(into: &mut Vec<String>, more: Vec<String>) {
    for m in more {
        if !into.contains(&m) {
            into.push(m);
        }
    }
}

/// Prometheus's parser words errors with positions; promql-parser does not. A backend asked
/// the same thing gives the exact message a client of Prometheus would see; without one
/// that answers so, `ours` stands.
pub(super) async fn backend_wording(
    groups: &[ReplicaGroup],
    req: ApiRequest,
    ours: ApiError,
    budget: &Budget,
) -> ApiError {
    let Some(member) = groups.iter().flat_map(|g| g.members.iter()).next() else {
        return ours;
    };
    let req = req.with_deadline(budget.deadline.min(Instant::now() + Duration::from_secs(5)));
    match member.call(req).await {
        Err(BackendError::Api {
            error_type: Some(ErrorType::BadData),
            message,
            ..
        }) => ApiError::bad_data(message),
        _ => ours,
    }
}

/// Gaps in the primary replica's answer filled from a twin's: series missing from the
/// primary are taken whole, missing steps are taken point by point.
/// Series and points of an answer: replicas with the same data give the same shape.
fn shape(result: &QueryResult) -> (usize, usize) {
    match result {
        QueryResult::Matrix(m) => (m.len(), m.iter().map(|s| s.values.len()).sum()),
        QueryResult::Vector(v) => (v.len(), v.len()),
        QueryResult::Scalar(_) | QueryResult::String(_) => (1, 1),
    }
}

fn fill_gaps(primary: QueryResult, other: QueryResult) -> QueryResult {
    match (primary, other) {
        (QueryResult::Matrix(mut main), QueryResult::Matrix(extra)) => {
            let mut index: HashMap<Labels, usize> = main
                .iter()
                .enumerate()
                .map(|(i, s)| (s.metric.clone(), i))
                .collect();
            for series in extra {
                match index.get(&series.metric) {
                    Some(&i) => merge_points(&mut main[i], series),
                    None => {
                        index.insert(series.metric.clone(), main.len());
                        main.push(series);
                    }
                }
            }
            main.sort_by(|a, b| a.metric.cmp(&b.metric));
            QueryResult::Matrix(main)
        }
        (QueryResult::Vector(mut main), QueryResult::Vector(extra)) => {
            for sample in extra {
                if !main.iter().any(|s| s.metric == sample.metric) {
                    main.push(sample);
                }
            }
            QueryResult::Vector(main)
        }
        (primary, _) => primary,
    }
}

fn merge_points(into: &mut Series, other: Series) {
    if other.values.is_empty() {
        return;
    }
    let mine = std::mem::take(&mut into.values);
    let mut merged: Vec<Point> = Vec::with_capacity(mine.len().max(other.values.len()));
    let mut a = mine.into_iter().peekable();
    let mut b = other.values.into_iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.t < y.t => merged.extend(a.next()),
            (Some(x), Some(y)) if x.t > y.t => merged.extend(b.next()),
            (Some(_), Some(_)) => {
                merged.extend(a.next());
                b.next();
            }
            (Some(_), None) => merged.extend(a.next()),
            (None, Some(_)) => merged.extend(b.next()),
            (None, None) => break,
        }
    }
    into.values = merged;
}

fn attach_labels(result: &mut QueryResult, remove: &[String], add: &[(String, String)]) {
    match result {
        QueryResult::Vector(v) => v.iter_mut().for_each(|s| s.metric.adjust(remove, add)),
        QueryResult::Matrix(m) => m.iter_mut().for_each(|s| s.metric.adjust(remove, add)),
        QueryResult::Scalar(_) | QueryResult::String(_) => {}
    }
}

fn concat(acc: QueryResult, more: QueryResult) -> QueryResult {
    match (acc, more) {
        (QueryResult::Vector(mut a), QueryResult::Vector(b)) => {
            a.extend(b);
            QueryResult::Vector(a)
        }
        (QueryResult::Matrix(mut a), QueryResult::Matrix(b)) => {
            a.extend(b);
            QueryResult::Matrix(a)
        }
        (acc, _) => acc,
    }
}

fn value_of(p: &Option<Point>) -> f64 {
    p.as_ref()
        .and_then(|p| p.v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Orders a concatenation of several groups' results as one Prometheus would have.
fn sort_result(result: &mut QueryResult, order: &ResultOrder) {
    match result {
        QueryResult::Matrix(m) => m.sort_by(|a, b| a.metric.cmp(&b.metric)),
        QueryResult::Vector(v) => match order {
            ResultOrder::Labels => v.sort_by(|a, b| a.metric.cmp(&b.metric)),
            // NaN sorts last in both directions, as Prometheus's sort() does.
            ResultOrder::ValueAscending => v.sort_by(|a, b| {
                let (x, y) = (value_of(&a.value), value_of(&b.value));
                x.is_nan().cmp(&y.is_nan()).then(x.total_cmp(&y))
            }),
            ResultOrder::ValueDescending => v.sort_by(|a, b| {
                let (x, y) = (value_of(&a.value), value_of(&b.value));
                x.is_nan().cmp(&y.is_nan()).then(y.total_cmp(&x))
            }),
            ResultOrder::ByLabels { names, descending } => v.sort_by(|a, b| {
                let key = |l: &Labels| -> Vec<String> {
                    names
                        .iter()
                        .map(|n| l.get(n).unwrap_or("").to_string())
                        .collect()
                };
                let ord = key(&a.metric)
                    .cmp(&key(&b.metric))
                    .then_with(|| a.metric.cmp(&b.metric));
                if *descending { ord.reverse() } else { ord }
            }),
        },
        QueryResult::Scalar(_) | QueryResult::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(text: &str) -> QueryResult {
        serde_json::from_str(text).unwrap()
    }

    fn times(r: &QueryResult) -> Vec<Vec<i64>> {
        let QueryResult::Matrix(m) = r else {
            panic!("not a matrix")
        };
        m.iter()
            .map(|s| s.values.iter().map(|p| p.t).collect())
            .collect()
    }

    #[test]
    fn gaps_in_the_primary_are_filled_from_the_twin() {
        let primary = matrix(
            r#"{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"],[4,"4"]]}]}"#,
        );
        let twin = matrix(
            r#"{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"9"],[2,"2"],[3,"3"],[4,"9"]]},{"metric":{"a":"0"},"values":[[2,"5"]]}]}"#,
        );
        let merged = fill_gaps(primary, twin);
        assert_eq!(
            times(&merged),
            vec![vec![2000], vec![1000, 2000, 3000, 4000]]
        );
        let QueryResult::Matrix(m) = &merged else {
            unreachable!()
        };
        // The primary's own values win where both have a point.
        assert_eq!(m[1].values[0].v, "1");
        assert_eq!(m[1].values[1].v, "2");
        assert_eq!(m[1].values[3].v, "4");
    }

    #[test]
    fn concatenated_vectors_sort_by_value_for_sort_desc() {
        let mut v = matrix(
            r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"NaN"]},{"metric":{"a":"3"},"value":[1,"5"]}]}"#,
        );
        sort_result(&mut v, &ResultOrder::ValueDescending);
        let QueryResult::Vector(v) = v else {
            unreachable!()
        };
        let order: Vec<&str> = v.iter().map(|s| s.metric.get("a").unwrap()).collect();
        assert_eq!(order, vec!["3", "1", "2"]);
    }

    #[test]
    fn failures_fail_the_request_only_without_partial_response() {
        let failure = MemberFailure {
            backend: "b".into(),
            error: BackendError::Timeout(Duration::from_secs(1)),
        };
        let partial = Budget {
            deadline: Instant::now(),
            partial_response: true,
        };
        assert!(check_failures(std::slice::from_ref(&failure), false, &partial).is_ok());
        let err = check_failures(std::slice::from_ref(&failure), true, &partial).unwrap_err();
        assert_eq!(err.kind, ErrorType::Timeout);
        let strict = Budget {
            deadline: Instant::now(),
            partial_response: false,
        };
        let refused = MemberFailure {
            backend: "c".into(),
            error: BackendError::Connect("refused".into()),
        };
        let err = check_failures(&[failure, refused], false, &strict).unwrap_err();
        assert_eq!(err.kind, ErrorType::Unavailable);
        assert!(
            err.message.contains("\"c\": connection failed: refused"),
            "{}",
            err.message
        );
    }
}
