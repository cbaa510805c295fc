use super::*;

fn labels(pairs: &[(&str, &str)]) -> ExternalLabels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn plan(query: &str, groups: &[ExternalLabels]) -> GroupPlan {
    let expr = promql_parser::parser::parse(query).unwrap();
    let refs: Vec<&ExternalLabels> = groups.iter().collect();
    plan_groups(&expr, &refs)
}

fn eu1() -> ExternalLabels {
    labels(&[("cluster", "eu1")])
}

fn us1() -> ExternalLabels {
    labels(&[("cluster", "us1")])
}

fn queries(p: &GroupPlan) -> Vec<(usize, &str)> {
    p.queries
        .iter()
        .map(|q| (q.group, q.query.as_str()))
        .collect()
}

#[test]
fn selectors_get_external_labels_injected() {
    let p = plan("up", &[eu1()]);
    assert_eq!(
        queries(&p),
        vec![(0, r#"label_replace(up, "cluster", "eu1", "cluster", "")"#)]
    );
    assert_eq!(p.exactness, Exactness::Exact);
}

#[test]
fn groups_without_external_labels_get_the_query_unchanged() {
    let p = plan(
        "sum by (job) (rate(http_requests_total[5m]))",
        &[ExternalLabels::new()],
    );
    assert_eq!(
        queries(&p),
        vec![(0, "sum by (job) (rate(http_requests_total[5m]))")]
    );
}

#[test]
fn matchers_on_external_labels_prune_groups_and_are_not_sent() {
    let p = plan(r#"up{cluster="us1",job="a"}"#, &[eu1(), us1()]);
    assert_eq!(
        queries(&p),
        vec![(
            1,
            r#"label_replace(up{job="a"}, "cluster", "us1", "cluster", "")"#
        )]
    );
    let p = plan(r#"up{cluster=~"eu.*|us1"}"#, &[eu1(), us1()]);
    assert_eq!(p.queries.len(), 2);
    let p = plan(r#"up{cluster!="eu1"}"#, &[eu1(), us1()]);
    assert_eq!(queries(&p).iter().map(|q| q.0).collect::<Vec<_>>(), vec![1]);
    // Regexes are anchored, as in Prometheus.
    let p = plan(r#"up{cluster=~"eu"}"#, &[eu1(), us1()]);
    assert_eq!(p.queries.len(), 1);
    assert_eq!(p.queries[0].group, 0);
    assert!(p.queries[0].query.contains("__promgate_none__"), "{:?}", p);
}

#[test]
fn a_selector_emptied_of_matchers_still_selects_something() {
    let p = plan(r#"{cluster="eu1"}"#, &[eu1()]);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"label_replace({__name__=~".+"}, "cluster", "eu1", "cluster", "")"#
        )]
    );
}

#[test]
fn selectors_excluded_in_a_relevant_group_select_nothing_there() {
    let p = plan(
        r#"up{cluster="eu1"} or down{cluster="us1"}"#,
        &[eu1(), us1()],
    );
    assert_eq!(p.queries.len(), 2);
    assert_eq!(
        p.queries[0].query,
        r#"label_replace(up, "cluster", "eu1", "cluster", "") or label_replace(down{__promgate_none__=~".^"}, "cluster", "eu1", "cluster", "")"#
    );
}

#[test]
fn functions_over_ranges_are_wrapped_whole() {
    let p = plan("rate(x[5m] offset 1h)", &[eu1()]);
    assert_eq!(
        p.queries[0].query,
        r#"label_replace(rate(x[5m] offset 1h), "cluster", "eu1", "cluster", "")"#
    );
    let p = plan("max_over_time(rate(x[5m])[1h:1m])", &[eu1()]);
    assert_eq!(
        p.queries[0].query,
        r#"max_over_time(label_replace(rate(x[5m]), "cluster", "eu1", "cluster", "")[1h:1m])"#
    );
}

#[test]
fn timestamp_of_a_bare_selector_is_wrapped_outside() {
    let p = plan("timestamp(x @ end())", &[eu1()]);
    assert_eq!(
        p.queries[0].query,
        r#"label_replace(timestamp(x @ end()), "cluster", "eu1", "cluster", "")"#
    );
}

#[test]
fn absent_gets_back_its_removed_equality_labels() {
    let p = plan(r#"absent(x{cluster="eu1",job="a"})"#, &[eu1()]);
    assert_eq!(
        p.queries[0].query,
        r#"label_replace(absent(x{job="a"}), "cluster", "eu1", "", "")"#
    );
    let p = plan("absent(x)", &[eu1()]);
    assert_eq!(p.queries[0].query, "absent(x)");
    // No group holds cluster us1: evaluated once, and absent says so with the label.
    let p = plan(r#"absent_over_time(x{cluster="us1"}[5m])"#, &[eu1()]);
    assert_eq!(
        p.queries[0].query,
        r#"label_replace(absent_over_time(x{__promgate_none__=~".^"}[5m]), "cluster", "us1", "", "")"#
    );
}

#[test]
fn queries_without_selectors_go_to_one_group() {
    for q in ["vector(1)", "1 + 1", "time()", r#""text""#] {
        let p = plan(q, &[eu1(), us1()]);
        assert_eq!(p.queries.len(), 1, "{q}");
        assert_eq!(p.exactness, Exactness::Exact, "{q}");
    }
    assert!(plan("up", &[]).queries.is_empty());
}

#[test]
fn aggregations_are_exact_across_groups_only_when_they_keep_the_group_labels() {
    let groups = [eu1(), us1()];
    let exact = [
        "up",
        "rate(x[5m])",
        "sum by (cluster) (x)",
        "sum by (cluster, job) (rate(x[5m]))",
        "sum without (instance) (x)",
        "topk by (cluster) (3, x)",
        "histogram_quantile(0.9, sum by (le, cluster) (rate(x_bucket[5m])))",
        "x / y",
        "x / on (cluster, job) y",
        "x / ignoring (job) y",
        "x > 2",
        "sort_desc(x)",
        "label_replace(x, \"dst\", \"$1\", \"cluster\", \"(.*)\")",
        "max_over_time(sum by (cluster) (x)[1h:])",
        "-x",
    ];
    for q in exact {
        assert_eq!(plan(q, &groups).exactness, Exactness::Exact, "{q}");
    }
    let not_exact = [
        "sum(x)",
        "count(x)",
        "sum by (job) (x)",
        "sum without (cluster) (x)",
        "topk(3, x)",
        "x / on (job) y",
        "x / ignoring (cluster) y",
        "x / scalar(y)",
        "scalar(x)",
        "absent(x)",
        "label_replace(x, \"cluster\", \"all\", \"\", \"\")",
        "count_values(\"cluster\", x)",
        "max_over_time(sum(x)[1h:])",
    ];
    for q in not_exact {
        assert_eq!(
            plan(q, &groups).exactness,
            Exactness::NotMergedAcrossGroups,
            "{q}"
        );
    }
}

#[test]
fn labels_equal_in_all_groups_do_not_split_them() {
    let a = labels(&[("cluster", "eu1"), ("env", "prod")]);
    let b = labels(&[("cluster", "us1"), ("env", "prod")]);
    assert_eq!(
        plan("sum by (cluster) (x)", &[a.clone(), b.clone()]).exactness,
        Exactness::Exact
    );
    assert_eq!(
        plan("sum by (env) (x)", &[a, b]).exactness,
        Exactness::NotMergedAcrossGroups
    );
}

#[test]
fn one_relevant_group_is_always_exact() {
    let p = plan(r#"sum(x{cluster="eu1"})"#, &[eu1(), us1()]);
    assert_eq!(p.exactness, Exactness::Exact);
    assert_eq!(p.queries.len(), 1);
}

#[test]
fn sort_functions_set_the_order_and_range_results_need_attaching() {
    assert_eq!(plan("sort(x)", &[eu1()]).order, ResultOrder::ValueAscending);
    assert_eq!(
        plan("(sort_desc(x))", &[eu1()]).order,
        ResultOrder::ValueDescending
    );
    assert_eq!(
        plan(r#"sort_by_label_desc(x, "a", "b")"#, &[eu1()]).order,
        ResultOrder::ByLabels {
            names: vec!["a".into(), "b".into()],
            descending: true
        }
    );
    assert!(plan("x[5m]", &[eu1()]).attach_external_labels);
    assert!(plan("rate(x[5m])[1h:]", &[eu1()]).attach_external_labels);
    assert!(!plan("rate(x[5m])", &[eu1()]).attach_external_labels);
}

#[test]
fn match_selectors_are_rewritten_per_group() {
    let Expr::VectorSelector(vs) =
        promql_parser::parser::parse(r#"{cluster="eu1",__name__=~"demo_.*"}"#).unwrap()
    else {
        panic!("not a selector")
    };
    assert_eq!(
        rewrite_selector_for_group(&vs, &eu1()).as_deref(),
        Some(r#"{__name__=~"demo_.*"}"#)
    );
    assert_eq!(rewrite_selector_for_group(&vs, &us1()), None);
}

#[test]
fn rewritten_queries_parse_again() {
    for q in [
        r#"sum by (cluster) (rate(x{cluster=~"eu.*"}[5m])) / ignoring (job) group_left count(y offset 5m)"#,
        r#"absent(nonexistent{cluster="us1"})"#,
        r#"histogram_quantile(0.9, rate(x_bucket{cluster="eu1"}[5m]))"#,
        "topk(2, x @ end())",
    ] {
        for g in plan(q, &[eu1(), us1()]).queries {
            promql_parser::parser::parse(&g.query)
                .unwrap_or_else(|e| panic!("{q} -> {}: {e}", g.query));
        }
    }
}
