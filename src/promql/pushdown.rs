//! Distributed execution of an aggregation across replica groups: `sum(rate(x[5m]))` over
//! two data centres is `sum` of each data centre's own `sum(rate(x[5m]))`, so each group's
//! Prometheus evaluates the heavy part over its own data and promgate only combines the
//! small partial answers.
//!
//! Applies where that is exact: the aggregation is the whole query; it is one that
//! decomposes (`sum`, `count`, `min`, `max`, `group`, `topk`, `bottomk`, and `avg` as a sum
//! and a count); it groups `by` labels none of which is an external label (else the
//! per-group answers are already disjoint and concatenation is exact); and its argument
//! keeps each series within its group (selectors and per-series functions, arithmetic with
//! numbers), so no series of the argument mixes data of two groups.

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::ast_json::to_promql;
use super::groups::{ExternalLabels, group_local, rewrite_for_group_text};

/// How the partial answers combine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    /// Add the partial sums (also for `count`: counts add up).
    Sum,
    Min,
    Max,
    /// 1 wherever any group has the series.
    Group,
    /// The `k` highest of the partial top-k (each group's top k holds the overall top k's
    /// members from that group).
    TopK(usize),
    BottomK(usize),
    /// Partial sums divided by partial counts.
    Avg,
}

/// The partial queries and how to combine them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushdown {
    pub combine: Combine,
    /// The `by` labels (empty without a `by`): the combined series' labels for sums and
    /// the like; for `topk`/`bottomk` the labels the ranking is done within.
    pub by: Vec<String>,
    /// Per group: the partial queries (one; `avg` has a sum and a count), or `None` where
    /// no selector of the query can match the group.
    pub queries: Vec<Option<Vec<String>>>,
}

/// Plans `expr` as partial aggregations per group, when that is exact.
pub fn plan_pushdown(expr: &Expr, groups: &[&ExternalLabels]) -> Option<Pushdown> {
    let a = match unwrap(expr) {
        Expr::Aggregate(a) => a,
        _ => return None,
    };
    let op = a.op.to_string().to_lowercase();
    let by: Vec<String> = match &a.modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(l)) => l.labels.clone(),
        Some(LabelModifier::Exclude(_)) => return None,
    };
    if by
        .iter()
        .any(|name| groups.iter().any(|g| g.contains_key(name)))
    {
        return None;
    }
    if !group_local(&a.expr) {
        return None;
    }
    let k = || -> Option<usize> {
        match a.param.as_deref().map(unwrap) {
            Some(Expr::NumberLiteral(n)) if n.val >= 1.0 && n.val.is_finite() => {
                Some(n.val as usize)
            }
            _ => None,
        }
    };
    let (combine, partial_ops): (Combine, Vec<&str>) = match op.as_str() {
        "sum" => (Combine::Sum, vec!["sum"]),
        "count" => (Combine::Sum, vec!["count"]),
        "min" => (Combine::Min, vec!["min"]),
        "max" => (Combine::Max, vec!["max"]),
        "group" => (Combine::Group, vec!["group"]),
        "avg" => (Combine::Avg, vec!["sum", "count"]),
        "topk" => (Combine::TopK(k()?), vec!["topk"]),
        "bottomk" => (Combine::BottomK(k()?), vec!["bottomk"]),
        _ => return None,
    };
    let queries = groups
        .iter()
        .map(|ext| {
            let (inner, can_match) = rewrite_for_group_text(&a.expr, ext);
            can_match.then(|| {
                partial_ops
                    .iter()
                    .map(|op| partial(a, op, &by, &inner))
                    .collect()
            })
        })
        .collect();
    Some(Pushdown {
        combine,
        by,
        queries,
    })
}

fn partial(a: &AggregateExpr, op: &str, by: &[String], inner: &str) -> String {
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" by ({})", by.join(", "))
    };
    match a.param.as_deref() {
        Some(p) if matches!(op, "topk" | "bottomk") => {
            format!("{op}{by} ({}, {inner})", to_promql(p))
        }
        _ => format!("{op}{by} ({inner})"),
    }
}

fn unwrap(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap(&p.expr),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> ExternalLabels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn plan(q: &str) -> Option<Pushdown> {
        let expr = promql_parser::parser::parse(q).unwrap();
        let eu = ext(&[("cluster", "eu1")]);
        let us = ext(&[("cluster", "us1")]);
        plan_pushdown(&expr, &[&eu, &us])
    }

    #[test]
    fn sums_and_counts_go_to_each_group() {
        let p = plan("sum by (job) (rate(x[5m]))").unwrap();
        assert_eq!(p.combine, Combine::Sum);
        assert_eq!(p.by, vec!["job"]);
        assert_eq!(
            p.queries[0],
            Some(vec!["sum by (job) (rate(x[5m]))".to_string()])
        );
        let p = plan("count(up)").unwrap();
        assert_eq!(p.combine, Combine::Sum);
        assert_eq!(p.queries[1], Some(vec!["count (up)".to_string()]));
        let p = plan("avg(up)").unwrap();
        assert_eq!(
            p.queries[0],
            Some(vec!["sum (up)".to_string(), "count (up)".to_string()])
        );
        assert_eq!(plan("topk(3, up)").unwrap().combine, Combine::TopK(3));
    }

    #[test]
    fn matchers_on_external_labels_select_groups() {
        let p = plan(r#"sum(up{cluster="us1"})"#).unwrap();
        assert_eq!(p.queries[0], None);
        assert_eq!(p.queries[1], Some(vec!["sum (up)".to_string()]));
    }

    #[test]
    fn what_does_not_decompose_or_mixes_groups_is_not_pushed() {
        for q in [
            "quantile(0.9, up)",
            "stddev(up)",
            "sum by (cluster) (up)",
            "sum without (job) (up)",
            "sum(a / on (job) b)",
            "sum(up) / 2",
            "topk(scalar(x), up)",
            "sum(absent(up))",
        ] {
            assert_eq!(plan(q), None, "{q}");
        }
    }
}
