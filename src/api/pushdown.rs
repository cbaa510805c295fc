//! Answers a query planned as partial aggregations per replica group (see
//! `promql::pushdown`): every group's backend evaluates its partial query, promgate combines
//! the partial answers step by step.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Reply;
use super::params::Params;
use super::query::{Budget, Range, backend_request, check_failures, decode, push_unique, rejected};
use crate::backend::ReplicaGroup;
use crate::backend::fanout::{self, GroupOutcome, MemberFailure};
use crate::error::ApiError;
use crate::model::{Labels, QueryResult};
use crate::promql::engine::{InstantSample, RangeSeries, Value};
use crate::promql::pushdown::{Combine, Pushdown};

/// One partial answer: series with their points (`(t_ms, value)`).
type Partial = Vec<(Labels, Vec<(i64, f64)>)>;

/// Top-k candidates per step and `by` group: value and series labels.
type Candidates = BTreeMap<(i64, Vec<String>), Vec<(f64, Labels)>>;

/// The combined answer; `None` when the partial answers cannot give the exact one (the
/// replicas of a group disagree, so one of them has a gap): the caller evaluates instead.
pub(super) async fn answer(
    params: &Params,
    range: Range,
    plan: &Pushdown,
    groups: &[ReplicaGroup],
    replica_labels: &[String],
    hedge_after: Duration,
    budget: &Budget,
) -> Option<Result<Reply, ApiError>> {
    let asked: Vec<(&ReplicaGroup, &Vec<String>)> = groups
        .iter()
        .zip(&plan.queries)
        .filter_map(|(g, q)| q.as_ref().map(|q| (g, q)))
        .collect();
    let calls = asked.iter().map(|(group, queries)| async move {
        let mut outcomes = Vec::new();
        for q in queries.iter() {
            let req = backend_request(params, range, q, budget);
            outcomes.push(match range {
                Range::Instant { .. } => fanout::first_answer(group, &req, hedge_after).await,
                Range::Range { .. } => fanout::all_answers(group, &req).await,
            });
        }
        outcomes
    });
    let results = futures::future::join_all(calls).await;
    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    let mut failures: Vec<MemberFailure> = Vec::new();
    // Per partial query: the partial answers of the groups that answered all of theirs.
    let mut partials: Vec<Vec<(&ReplicaGroup, Partial)>> = vec![Vec::new(); 2];
    for ((group, _), outcomes) in asked.iter().zip(results) {
        let mut answers = Vec::new();
        for outcome in outcomes {
            match outcome {
                GroupOutcome::Answered { answers: a, .. } => {
                    let mut decoded = Vec::new();
                    for (backend, resp) in a {
                        let env = match decode::<QueryResult>(&backend, &resp.body) {
                            Ok(env) => env,
                            Err(e) => return Some(Err(e)),
                        };
                        push_unique(&mut warnings, env.warnings);
                        push_unique(&mut infos, env.infos);
                        decoded.extend(env.data.map(|d| points(d, range)));
                    }
                    // Replicas whose answers differ in series or steps have a gap: not
                    // exact from here. (Values may differ a little: replicas scrape at
                    // their own instants; the first replica's answer stands, as for a
                    // query relayed to one group.)
                    if decoded.windows(2).any(|w| !same_shape(&w[0], &w[1])) {
                        return None;
                    }
                    match decoded.into_iter().next() {
                        Some(p) => answers.push(p),
                        None => return None,
                    }
                }
                GroupOutcome::Rejected(e) => return Some(Err(rejected(e))),
                GroupOutcome::Failed(f) => {
                    warnings.extend(f.iter().map(MemberFailure::warning));
                    failures.extend(f);
                    answers.clear();
                    break;
                }
            }
        }
        if answers.len() == plan.queries.iter().flatten().next().map_or(0, Vec::len) {
            for (i, a) in answers.into_iter().enumerate() {
                let mut a = a;
                if matches!(plan.combine, Combine::TopK(_) | Combine::BottomK(_)) {
                    // Ranked series keep their own labels: the group's are added.
                    let pairs = group.label_pairs();
                    for (labels, _) in &mut a {
                        labels.adjust(replica_labels, &pairs);
                    }
                }
                partials[i].push((group, a));
            }
        }
    }
    let answered = !partials[0].is_empty();
    if let Err(e) = check_failures(&failures, !answered, budget) {
        return Some(Err(e));
    }
    let combined = combine(plan, &partials);
    let value = match range {
        Range::Instant { time } => Value::Vector(
            combined
                .into_iter()
                .filter_map(|(labels, pts)| {
                    pts.into_iter()
                        .find(|(t, _)| *t == time)
                        .map(|(_, value)| InstantSample { labels, value })
                })
                .collect(),
        ),
        Range::Range { .. } => Value::Matrix(
            combined
                .into_iter()
                .map(|(labels, points)| RangeSeries { labels, points })
                .collect(),
        ),
    };
    let at = match range {
        Range::Instant { time } => time,
        Range::Range { start, .. } => start,
    };
    Some(Ok(Reply::JsonPieces(super::json::success_in_pieces(
        &warnings,
        &infos,
        |out| super::engine_json::write_engine_pieces(out, &value, at),
    ))))
}

/// Same series with points at the same steps.
fn same_shape(a: &Partial, b: &Partial) -> bool {
    let mut a: Vec<(&Labels, Vec<i64>)> = a
        .iter()
        .map(|(l, p)| (l, p.iter().map(|(t, _)| *t).collect()))
        .collect();
    let mut b: Vec<(&Labels, Vec<i64>)> = b
        .iter()
        .map(|(l, p)| (l, p.iter().map(|(t, _)| *t).collect()))
        .collect();
    a.sort();
    b.sort();
    a == b
}

/// An answer's series and points as numbers.
fn points(result: QueryResult, range: Range) -> Partial {
    let parse = |v: &str| match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or(f64::NAN),
    };
    match result {
        QueryResult::Vector(v) => v
            .into_iter()
            .filter_map(|s| {
                let p = s.value?;
                let t = match range {
                    Range::Instant { time } => time,
                    Range::Range { .. } => p.t,
                };
                Some((s.metric, vec![(t, parse(&p.v))]))
            })
            .collect(),
        QueryResult::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let pts = s.values.iter().map(|p| (p.t, parse(&p.v))).collect();
                (s.metric, pts)
            })
            .collect(),
        QueryResult::Scalar(_) | QueryResult::String(_) => Vec::new(),
    }
}

/// The combined series, sorted by labels.
fn combine(
    plan: &Pushdown,
    partials: &[Vec<(&ReplicaGroup, Partial)>],
) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut acc: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    let fold = |acc: &mut BTreeMap<Labels, BTreeMap<i64, f64>>,
                partial: &[(&ReplicaGroup, Partial)],
                f: &dyn Fn(f64, f64) -> f64| {
        for (_, series) in partial {
            for (labels, pts) in series {
                let slot = acc.entry(labels.clone()).or_default();
                for &(t, v) in pts {
                    slot.entry(t).and_modify(|x| *x = f(*x, v)).or_insert(v);
                }
            }
        }
    };
    match plan.combine {
        Combine::Sum => fold(&mut acc, &partials[0], &|a, b| a + b),
        Combine::Min => fold(&mut acc, &partials[0], &|a, b| {
            if b < a || a.is_nan() { b } else { a }
        }),
        Combine::Max => fold(&mut acc, &partials[0], &|a, b| {
            if b > a || a.is_nan() { b } else { a }
        }),
        Combine::Group => fold(&mut acc, &partials[0], &|_, _| 1.0),
        Combine::Avg => {
            let mut counts: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
            fold(&mut acc, &partials[0], &|a, b| a + b);
            fold(&mut counts, &partials[1], &|a, b| a + b);
            for (labels, pts) in acc.iter_mut() {
                let c = counts.get(labels);
                pts.retain(|t, _| c.is_some_and(|c| c.contains_key(t)));
                for (t, v) in pts.iter_mut() {
                    *v /= c.and_then(|c| c.get(t)).copied().unwrap_or(f64::NAN);
                }
            }
        }
        Combine::TopK(k) | Combine::BottomK(k) => {
            let top = matches!(plan.combine, Combine::TopK(_));
            // Per step and `by` group: every group's candidates, best first, k kept.
            let mut by_step: Candidates = BTreeMap::new();
            for (_, series) in &partials[0] {
                for (labels, pts) in series {
                    let key: Vec<String> = plan
                        .by
                        .iter()
                        .map(|b| labels.get(b).unwrap_or("").to_string())
                        .collect();
                    for &(t, v) in pts {
                        by_step
                            .entry((t, key.clone()))
                            .or_default()
                            .push((v, labels.clone()));
                    }
                }
            }
            for ((t, _), mut cands) in by_step {
                cands.sort_by(|a, b| crate::promql::engine::rank_order(a.0, b.0, top));
                for (v, labels) in cands.into_iter().take(k) {
                    acc.entry(labels).or_default().insert(t, v);
                }
            }
        }
    }
    acc.into_iter()
        .map(|(labels, pts)| (labels, pts.into_iter().collect()))
        .filter(|(_, pts): &(Labels, Vec<(i64, f64)>)| !pts.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(points: &[(&str, &[(i64, f64)])]) -> Partial {
        points
            .iter()
            .map(|(job, pts)| {
                (
                    Labels::new(vec![("job".into(), job.to_string())]),
                    pts.to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn replicas_agree_on_shape_even_when_values_differ() {
        let a = partial(&[("x", &[(0, 1.0), (60, 2.0)]), ("y", &[(0, 3.0)])]);
        let b = partial(&[("y", &[(0, 3.5)]), ("x", &[(0, 1.1), (60, 2.2)])]);
        assert!(same_shape(&a, &b));
        let gap = partial(&[("x", &[(0, 1.0)]), ("y", &[(0, 3.0)])]);
        assert!(!same_shape(&a, &gap));
        let missing = partial(&[("x", &[(0, 1.0), (60, 2.0)])]);
        assert!(!same_shape(&a, &missing));
    }
}
