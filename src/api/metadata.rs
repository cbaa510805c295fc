//! The metadata endpoints — series, label names, label values, metric metadata and
//! exemplars — answered from every relevant replica group, all members asked so that a gap
//! in one replica is covered by its twin, external labels added and replica labels removed.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{Expr, VectorSelector};

use super::Reply;
use super::json;
use super::params::Params;
use super::query::{Budget, backend_wording, check_failures, decode, push_unique, rejected};
use super::raw::{RawSeries, has_label, raw_series};
use crate::app::App;
use crate::backend::fanout::{self, GroupOutcome, MemberFailure};
use crate::backend::{ApiRequest, ReplicaGroup};
use crate::error::ApiError;
use crate::model::{ExemplarSeries, Labels, MetricMetadata};
use crate::promql::{plan_groups, rewrite_selector_for_group};
use crate::time::{MAX_TIME_MS, MIN_TIME_MS};

/// Prometheus's warning when a limit cut the answer short.
const TRUNCATED: &str = "results truncated due to limit";

/// What every metadata request shares: its groups, budget and the answers as they come.
struct Gathered<T> {
    /// Per answering group: the group and each member's decoded data.
    answers: Vec<(ReplicaGroup, Vec<T>)>,
    warnings: Vec<String>,
    failures: Vec<MemberFailure>,
}

impl<T> Gathered<T> {
    /// Fails the request as the budget says when backends failed; `others` tells whether
    /// backends asked another way answered.
    fn check(&self, budget: &Budget, others: bool) -> Result<(), ApiError> {
        check_failures(&self.failures, self.answers.is_empty() && !others, budget)
    }

    /// Takes in what the raw-only backends gave: their failures become warnings.
    fn add_raw(&mut self, raw: &mut RawSeries) {
        for f in raw.failures.drain(..) {
            push_unique(&mut self.warnings, vec![f.warning()]);
            self.failures.push(f);
        }
    }
}

/// Sends `request_for(group)` to every member of every group that has one; decodes answers.
async fn gather<T: serde::de::DeserializeOwned>(
    app: &App,
    budget: &Budget,
    request_for: impl Fn(&ReplicaGroup) -> Option<ApiRequest>,
) -> Result<Gathered<T>, ApiError> {
    let topology = app.topology.load();
    let (groups, unknown) = topology.replica_groups(Some(budget.deadline)).await;
    let mut failures = unknown;
    let mut warnings: Vec<String> = failures.iter().map(MemberFailure::warning).collect();
    let asked: Vec<(ReplicaGroup, ApiRequest)> = groups
        .iter()
        .filter_map(|g| request_for(g).map(|r| (g.clone(), r.with_deadline(budget.deadline))))
        .collect();
    let outcomes =
        futures::future::join_all(asked.iter().map(|(g, r)| fanout::all_answers(g, r))).await;
    let mut answers = Vec::new();
    for ((group, _), outcome) in asked.into_iter().zip(outcomes) {
        match outcome {
            GroupOutcome::Answered { answers: a, .. } => {
                let mut decoded = Vec::new();
                for (backend, resp) in a {
                    let env = decode::<T>(&backend, &resp.body)?;
                    push_unique(&mut warnings, env.warnings);
                    decoded.extend(env.data);
                }
                answers.push((group, decoded));
            }
            GroupOutcome::Rejected(e) => return Err(rejected(e)),
            GroupOutcome::Failed(f) => {
                warnings.extend(f.iter().map(MemberFailure::warning));
                failures.extend(f);
            }
        }
    }
    Ok(Gathered {
        answers,
        warnings,
        failures,
    })
}

/// The `match[]` selectors of a request, parsed.
async fn selectors(
    app: &App,
    params: &Params,
    budget: &Budget,
    path: &str,
) -> Result<Vec<VectorSelector>, ApiError> {
    let mut out = Vec::new();
    for m in params.all("match[]") {
        let parsed = crate::promql::parse(&m).map_err(|e| format!("parse error: {e}"));
        match parsed {
            Ok(Expr::VectorSelector(vs)) => out.push(vs),
            Ok(_) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"match[]\": {m:?} is not a series selector"
                )));
            }
            Err(e) => {
                let groups = app
                    .topology
                    .load()
                    .replica_groups(Some(budget.deadline))
                    .await
                    .0;
                let req = ApiRequest::get(path, vec![("match[]".to_string(), m.clone())]);
                return Err(backend_wording(&groups, req, ApiError::bad_data(e), budget).await);
            }
        }
    }
    Ok(out)
}

/// The selectors as `group`'s backends must receive them; `None` when none can match there.
/// Without selectors the group is always asked.
fn group_selectors(selectors: &[VectorSelector], group: &ReplicaGroup) -> Option<Vec<String>> {
    if selectors.is_empty() {
        return Some(Vec::new());
    }
    let rewritten: Vec<String> = selectors
        .iter()
        .filter_map(|s| rewrite_selector_for_group(s, &group.labels))
        .collect();
    (!rewritten.is_empty()).then_some(rewritten)
}

/// `start` and `end` in milliseconds, all of time by default.
fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        params.time("start", MIN_TIME_MS)?,
        params.time("end", MAX_TIME_MS)?,
    ))
}

fn range_params(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for name in ["start", "end"] {
        let default = if name == "start" {
            MIN_TIME_MS
        } else {
            MAX_TIME_MS
        };
        params.time(name, default)?;
        if let Some(v) = params.non_empty(name) {
            out.push((name.to_string(), v.to_string()));
        }
    }
    if let Some(limit) = params.limit()? {
        out.push(("limit".to_string(), limit.to_string()));
    }
    Ok(out)
}

fn with_matches(mut form: Vec<(String, String)>, matches: Vec<String>) -> Vec<(String, String)> {
    form.extend(matches.into_iter().map(|m| ("match[]".to_string(), m)));
    form
}

fn truncate<T>(items: &mut Vec<T>, limit: Option<usize>, warnings: &mut Vec<String>) {
    if let Some(limit) = limit {
        if items.len() > limit {
            items.truncate(limit);
            push_unique(warnings, vec![TRUNCATED.to_string()]);
        }
    }
}

pub async fn series(app: &App, params: &Params) -> Result<Reply, ApiError> {
    if params.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let base = range_params(params)?;
    let limit = params.limit()?;
    let (start, end) = time_range(params)?;
    {
        let topology = app.topology.load();
        for m in params.all("match[]") {
            super::limits::check_query_length(&topology.config.query, "match[]", &m)?;
        }
        super::limits::check_range(&topology.config.query, start, end)?;
    }
    let budget = Budget::from_params(app, params)?;
    let sels = selectors(app, params, &budget, "/api/v1/series").await?;
    let replica_labels = app.topology.load().config.query.replica_labels.clone();
    let (gathered, raw) = futures::join!(
        gather::<Vec<Labels>>(app, &budget, |g| {
            let m = group_selectors(&sels, g)?;
            Some(ApiRequest::post(
                "/api/v1/series",
                with_matches(base.clone(), m),
            ))
        }),
        raw_series(app, &budget, &sels, None, start, end)
    );
    let (mut gathered, mut raw) = (gathered?, raw?);
    gathered.add_raw(&mut raw);
    gathered.check(&budget, raw.answered)?;
    let mut all: BTreeSet<Labels> = raw.labels.into_iter().collect();
    for (group, answers) in gathered.answers {
        let pairs = group.label_pairs();
        for mut labels in answers.into_iter().flatten() {
            labels.adjust(&replica_labels, &pairs);
            all.insert(labels);
        }
    }
    let mut warnings = gathered.warnings;
    let mut all: Vec<Labels> = all.into_iter().collect();
    truncate(&mut all, limit, &mut warnings);
    Ok(Reply::Json(json::success(&warnings, &[], |out| {
        json::write_array(out, &all, json::write_labels);
    })))
}

#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Strings(#[serde(deserialize_with = "crate::model::strings_or_null")] Vec<String>);

pub async fn label_names(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let base = range_params(params)?;
    let limit = params.limit()?;
    let budget = Budget::from_params(app, params)?;
    let sels = selectors(app, params, &budget, "/api/v1/labels").await?;
    let replica_labels = app.topology.load().config.query.replica_labels.clone();
    let (start, end) = time_range(params)?;
    let (gathered, raw) = futures::join!(
        gather::<Strings>(app, &budget, |g| {
            let m = group_selectors(&sels, g)?;
            Some(ApiRequest::post(
                "/api/v1/labels",
                with_matches(base.clone(), m),
            ))
        }),
        raw_series(app, &budget, &sels, None, start, end)
    );
    let (mut gathered, mut raw) = (gathered?, raw?);
    gathered.add_raw(&mut raw);
    gathered.check(&budget, raw.answered)?;
    let mut names: BTreeSet<String> = raw
        .labels
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.to_string()))
        .collect();
    for (group, answers) in gathered.answers {
        let mut any = false;
        for Strings(list) in answers {
            any |= !list.is_empty();
            names.extend(list);
        }
        if any {
            names.extend(group.labels.keys().cloned());
        }
    }
    for r in &replica_labels {
        names.remove(r);
    }
    let mut warnings = gathered.warnings;
    let mut names: Vec<String> = names.into_iter().collect();
    truncate(&mut names, limit, &mut warnings);
    Ok(Reply::Json(json::success(&warnings, &[], |out| {
        json::write_strings(out, &names)
    })))
}

pub async fn label_values(app: &App, params: &Params, name: &str) -> Result<Reply, ApiError> {
    let base = range_params(params)?;
    let limit = params.limit()?;
    let budget = Budget::from_params(app, params)?;
    let sels = selectors(app, params, &budget, "/api/v1/series").await?;
    let topology = app.topology.load();
    if topology
        .config
        .query
        .replica_labels
        .iter()
        .any(|r| r == name)
    {
        return Ok(Reply::Json(json::success(&[], &[], |out| {
            json::write_strings(out, &[])
        })));
    }
    let path = format!(
        "/api/v1/label/{}/values",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    // Values from the backends themselves.
    let (start, end) = time_range(params)?;
    let (gathered, raw) = futures::join!(
        gather::<Strings>(app, &budget, |g| {
            let m = group_selectors(&sels, g)?;
            Some(ApiRequest::get(path.clone(), with_matches(base.clone(), m)))
        }),
        raw_series(app, &budget, &sels, Some(has_label(name)), start, end)
    );
    let (mut gathered, mut raw) = (gathered?, raw?);
    gathered.add_raw(&mut raw);
    gathered.check(&budget, raw.answered)?;
    let mut values: BTreeSet<String> = raw
        .labels
        .iter()
        .filter_map(|l| l.get(name).map(str::to_string))
        .collect();
    let mut warnings = gathered.warnings;
    for (_, answers) in gathered.answers {
        for Strings(list) in answers {
            values.extend(list);
        }
    }
    // An external label's value counts where its group holds a matching series.
    let holders: Gathered<Strings> = gather(app, &budget, |g| {
        g.labels.get(name)?;
        let m = group_selectors(&sels, g)?;
        Some(ApiRequest::post(
            "/api/v1/labels",
            with_matches(base.clone(), m),
        ))
    })
    .await?;
    holders.check(&budget, true)?;
    push_unique(&mut warnings, holders.warnings);
    for (group, answers) in holders.answers {
        if answers.iter().any(|Strings(l)| !l.is_empty()) {
            if let Some(v) = group.labels.get(name) {
                values.insert(v.clone());
            }
        }
    }
    let mut values: Vec<String> = values.into_iter().collect();
    truncate(&mut values, limit, &mut warnings);
    Ok(Reply::Json(json::success(&warnings, &[], |out| {
        json::write_strings(out, &values)
    })))
}

pub async fn metadata(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let parse_limit = |name: &str| -> Result<Option<usize>, ApiError> {
        match params.non_empty(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n < 0 => Ok(None),
                Ok(n) => Ok(Some(n as usize)),
                Err(_) => Err(ApiError::bad_data(format!("{name} must be a number"))),
            },
        }
    };
    let limit = parse_limit("limit")?;
    let per_metric = parse_limit("limit_per_metric")?;
    let budget = Budget::from_params(app, params)?;
    let mut form = Vec::new();
    if let Some(m) = params.non_empty("metric") {
        form.push(("metric".to_string(), m.to_string()));
    }
    let gathered: Gathered<BTreeMap<String, Vec<MetricMetadata>>> = gather(app, &budget, |_| {
        Some(ApiRequest::get("/api/v1/metadata", form.clone()))
    })
    .await?;
    gathered.check(&budget, false)?;
    let mut merged: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
    for (_, answers) in gathered.answers {
        for answer in answers {
            for (metric, entries) in answer {
                let slot = merged.entry(metric).or_default();
                for e in entries {
                    if !slot.contains(&e) {
                        slot.push(e);
                    }
                }
            }
        }
    }
    if let Some(limit) = limit {
        if limit == 0 {
            merged.clear();
        }
        while merged.len() > limit {
            merged.pop_last();
        }
    }
    if let Some(per) = per_metric {
        for entries in merged.values_mut() {
            entries.truncate(per.max(1));
        }
    }
    Ok(Reply::Json(json::success(&gathered.warnings, &[], |out| {
        out.push(b'{');
        for (i, (metric, entries)) in merged.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, metric);
            out.push(b':');
            json::write_array(out, entries, |out, e| {
                out.extend_from_slice(b"{\"type\":");
                json::write_str(out, &e.kind);
                out.extend_from_slice(b",\"help\":");
                json::write_str(out, &e.help);
                out.extend_from_slice(b",\"unit\":");
                json::write_str(out, &e.unit);
                out.push(b'}');
            });
        }
        out.push(b'}');
    })))
}

pub async fn exemplars(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let budget = Budget::from_params(app, params)?;
    let query = params.get("query").unwrap_or("");
    let expr = match app.queries.parse(query) {
        Ok(e) => e,
        Err(e) => {
            let groups = app
                .topology
                .load()
                .replica_groups(Some(budget.deadline))
                .await
                .0;
            let req = ApiRequest::post(
                "/api/v1/query_exemplars",
                vec![("query".to_string(), query.to_string())],
            );
            let ours = ApiError::invalid_param("query", format!("parse error: {e}"));
            return Err(backend_wording(&groups, req, ours, &budget).await);
        }
    };
    let mut form = Vec::new();
    for name in ["start", "end"] {
        if let Some(v) = params.non_empty(name) {
            form.push((name.to_string(), v.to_string()));
        }
    }
    let topology = app.topology.load();
    let replica_labels = topology.config.query.replica_labels.clone();
    let gathered: Gathered<Vec<ExemplarSeries>> = gather(app, &budget, |g| {
        let plan = plan_groups(&expr, &[&g.labels]);
        let q = plan.queries.into_iter().next()?.query;
        let mut f = form.clone();
        f.push(("query".to_string(), q));
        Some(ApiRequest::post("/api/v1/query_exemplars", f))
    })
    .await?;
    gathered.check(&budget, false)?;
    let mut merged: BTreeMap<Labels, Vec<crate::model::Exemplar>> = BTreeMap::new();
    for (group, answers) in gathered.answers {
        let pairs = group.label_pairs();
        for mut series in answers.into_iter().flatten() {
            series.series_labels.adjust(&replica_labels, &pairs);
            let slot = merged.entry(series.series_labels).or_default();
            for e in series.exemplars {
                if !slot.contains(&e) {
                    slot.push(e);
                }
            }
        }
    }
    Ok(Reply::Json(json::success(&gathered.warnings, &[], |out| {
        json::write_array(out, &merged, |out, (labels, exemplars)| {
            out.extend_from_slice(b"{\"seriesLabels\":");
            json::write_labels(out, labels);
            out.extend_from_slice(b",\"exemplars\":");
            json::write_array(out, exemplars, |out, e| {
                out.extend_from_slice(b"{\"labels\":");
                json::write_labels(out, &e.labels);
                out.extend_from_slice(b",\"value\":");
                json::write_str(out, &e.value);
                out.extend_from_slice(b",\"timestamp\":");
                crate::time::write_timestamp(out, e.timestamp.0);
                out.push(b'}');
            });
            out.push(b'}');
        });
    })))
}
