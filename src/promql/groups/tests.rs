use super::*;
use promql_parser::parser::parse;

fn ext(pairs: &[(&str, &str)]) -> ExternalLabels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn plan(q: &str, groups: &[ExternalLabels]) -> GroupPlan {
    let expr = parse(q).expect("test query parses");
    let refs: Vec<&ExternalLabels> = groups.iter().collect();
    let p = plan_groups(&expr, &refs);
    for gq in &p.queries {
        assert!(parse(&gq.query).is_ok(), "invalid rewrite {}", gq.query);
    }
    p
}

fn eu_us() -> Vec<ExternalLabels> {
    vec![
        ext(&[("cluster", "eu1"), ("env", "prod")]),
        ext(&[("cluster", "us1"), ("env", "prod")]),
    ]
}

/// `(group, query)` of every planned query.
fn queries(p: &GroupPlan) -> Vec<(usize, &str)> {
    p.queries
        .iter()
        .map(|q| (q.group, q.query.as_str()))
        .collect()
}

const EU: &str = r#", "cluster", "eu1", "cluster", ""), "env", "prod", "env", "")"#;
const US: &str = r#", "cluster", "us1", "cluster", ""), "env", "prod", "env", "")"#;

fn wrapped(inner: &str, labels: &str) -> String {
    format!("label_replace(label_replace({inner}{labels}")
}

#[test]
fn single_group_is_exact_passthrough_with_labels_injected() {
    let p = plan("sum(rate(x[5m]))", &[ext(&[("cluster", "eu1")])]);
    assert_eq!(p.exactness, Exactness::Exact);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"sum(label_replace(rate(x[5m]), "cluster", "eu1", "cluster", ""))"#
        )]
    );
    assert!(p.queries[0].rewritten);
    assert!(!p.attach_external_labels);
}

#[test]
fn groups_without_external_labels_get_the_query_unchanged() {
    let p = plan(r#"sum by (job) (up{job="a"})"#, &[ext(&[])]);
    assert_eq!(queries(&p), vec![(0, r#"sum by (job) (up{job="a"})"#)]);
    assert!(!p.queries[0].rewritten);
}

#[test]
fn matching_external_label_matcher_is_dropped_and_other_groups_pruned() {
    let p = plan(r#"up{cluster="eu1",job="a"}"#, &eu_us());
    assert_eq!(p.exactness, Exactness::Exact);
    // A bare selector keeps its labels: they are attached to the answer, not injected.
    assert!(p.attach_external_labels);
    assert_eq!(queries(&p), vec![(0, r#"up{job="a"}"#)]);
    let p = plan(r#"sum by (job) (up{cluster="eu1",job="a"})"#, &eu_us());
    assert!(!p.attach_external_labels);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            format!("sum by (job) ({})", wrapped(r#"up{job="a"}"#, EU)).as_str()
        )]
    );
}

#[test]
fn regex_matchers_are_fully_anchored() {
    let p = plan(r#"up{cluster=~"eu"}"#, &eu_us());
    // Matches in no group: evaluated once, on group 0, matching nothing.
    assert_eq!(queries(&p), vec![(0, r#"up{__promgate_none__=~".^"}"#)]);
    let p = plan(r#"up{cluster=~"eu.*|x"}"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, "up")]);
    let p = plan(r#"up{cluster!~"eu.*"}"#, &eu_us());
    assert_eq!(queries(&p), vec![(1, "up")]);
    let p = plan(r#"count(up{cluster!="eu1"})"#, &eu_us());
    assert_eq!(
        queries(&p),
        vec![(1, format!("count({})", wrapped("up", US)).as_str())]
    );
}

#[test]
fn regex_dot_matches_newline_as_in_prometheus() {
    let groups = vec![ext(&[("site", "a\nb")]), ext(&[("site", "ab")])];
    let p = plan(r#"up{site=~"a.b"}"#, &groups);
    assert_eq!(queries(&p), vec![(0, "up")]);
    let p = plan(r#"count(up{site!~"a.+"})"#, &groups);
    assert_eq!(p.queries.len(), 1);
    assert_eq!(
        p.queries[0].query,
        r#"count(label_replace(up{__promgate_none__=~".^"}, "site", "a\nb", "site", ""))"#
    );
    // Go-only syntax the parser accepts (a literal `{`) still evaluates.
    let p = plan(r#"up{site=~"a{b}|ab"}"#, &groups);
    assert_eq!(
        p.queries.iter().map(|q| q.group).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn selector_left_without_non_empty_matcher_selects_any_name() {
    let p = plan(r#"{cluster="eu1"}"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, r#"{__name__=~".+"}"#)]);
    let p = plan(r#"{cluster="eu1",job=~".*"}"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, r#"{__name__=~".+",job=~".*"}"#)]);
    // A remaining matcher that rejects "" is enough.
    let p = plan(r#"{cluster="eu1",job="a"}"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, r#"{job="a"}"#)]);
}

#[test]
fn selector_that_cannot_match_in_a_relevant_group_matches_nothing_there() {
    let p = plan(r#"up{cluster="us1"} or down"#, &eu_us());
    assert_eq!(p.exactness, Exactness::Exact);
    assert_eq!(
        queries(&p),
        vec![
            (
                0,
                format!(
                    "{} or {}",
                    wrapped(r#"up{__promgate_none__=~".^"}"#, EU),
                    wrapped("down", EU)
                )
                .as_str()
            ),
            (
                1,
                format!("{} or {}", wrapped("up", US), wrapped("down", US)).as_str()
            ),
        ]
    );
}

#[test]
fn labels_that_are_not_external_labels_of_the_group_are_left_to_the_backend() {
    let groups = vec![ext(&[("cluster", "eu1")]), ext(&[])];
    let p = plan(r#"up{cluster="eu1"}"#, &groups);
    assert_eq!(queries(&p), vec![(0, "up"), (1, r#"up{cluster="eu1"}"#)]);
    assert_eq!(p.exactness, Exactness::Exact);
}

#[test]
fn expressions_without_selectors_are_evaluated_once() {
    for q in ["vector(1)", "1 + 1", "time()", r#""s""#, "pi() * 2"] {
        let p = plan(q, &eu_us());
        assert_eq!(p.queries.len(), 1, "{q}");
        assert_eq!(p.queries[0].group, 0);
        assert!(!p.queries[0].rewritten);
        assert_eq!(p.exactness, Exactness::Exact);
    }
    assert_eq!(plan("1 + 1", &eu_us()).queries[0].query, "1 + 1");
    assert!(plan("vector(1)", &[]).queries.is_empty());
}

#[test]
fn absent_gets_labels_of_removed_equality_matchers_only() {
    let p = plan(r#"absent(up{cluster="eu1",job="x"})"#, &eu_us());
    assert_eq!(p.exactness, Exactness::Exact);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"label_replace(absent(up{job="x"}), "cluster", "eu1", "cluster", "")"#
        )]
    );
    let p = plan(r#"absent(up{cluster=~"eu.*"})"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, "absent(up)")]);
    // A second matcher on the name removes it from absent's output.
    let p = plan(r#"absent(up{cluster="eu1",cluster!="x"})"#, &eu_us());
    assert_eq!(queries(&p), vec![(0, "absent(up)")]);
    let p = plan(r#"absent_over_time(up{cluster="us1"}[5m])"#, &eu_us());
    assert_eq!(
        queries(&p),
        vec![(
            1,
            r#"label_replace(absent_over_time(up[5m]), "cluster", "us1", "cluster", "")"#
        )]
    );
}

#[test]
fn absent_of_a_selector_matching_nowhere_still_derives_its_labels() {
    let p = plan(r#"absent(up{cluster="nope"})"#, &eu_us());
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"label_replace(absent(up{__promgate_none__=~".^"}), "cluster", "nope", "cluster", "")"#
        )]
    );
    assert_eq!(p.exactness, Exactness::Exact);
}

#[test]
fn absent_over_several_groups_is_not_exact() {
    let p = plan(r#"absent(up{job="x"})"#, &eu_us());
    assert_eq!(
        queries(&p),
        vec![(0, r#"absent(up{job="x"})"#), (1, r#"absent(up{job="x"})"#)]
    );
    assert_eq!(p.exactness, Exactness::NotMergedAcrossGroups);
}

#[test]
fn timestamp_of_a_selector_is_wrapped_outside_the_call() {
    let p = plan("count(timestamp((up)))", &[ext(&[("cluster", "eu1")])]);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"count(label_replace(timestamp((up)), "cluster", "eu1", "cluster", ""))"#
        )]
    );
    let p = plan("count(timestamp(abs(up)))", &[ext(&[("cluster", "eu1")])]);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"count(timestamp(abs(label_replace(up, "cluster", "eu1", "cluster", ""))))"#
        )]
    );
    // Alone, it keeps its labels: attached afterwards.
    let p = plan("timestamp((up))", &[ext(&[("cluster", "eu1")])]);
    assert!(p.attach_external_labels);
    assert_eq!(queries(&p), vec![(0, "timestamp((up))")]);
}

#[test]
fn top_level_matrix_selector_asks_the_caller_to_attach_labels() {
    let p = plan(r#"up{cluster="eu1"}[5m] offset 1m"#, &eu_us());
    assert!(p.attach_external_labels);
    assert_eq!(queries(&p), vec![(0, "up[5m] offset 1m")]);
    // A subquery of an aggregation carries the injected labels itself.
    let p = plan("count(up)[5m:1m]", &[ext(&[("cluster", "eu1")])]);
    assert!(!p.attach_external_labels);
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"count(label_replace(up, "cluster", "eu1", "cluster", ""))[5m:1m]"#
        )]
    );
}

#[test]
fn modifiers_subqueries_and_parentheses_are_kept() {
    let p = plan(
        "max_over_time((rate(x[5m] @ 100))[1h:1m] offset 5m) / (y offset -1m)",
        &[ext(&[("cluster", "eu1")])],
    );
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"max_over_time((label_replace(rate(x[5m] @ 100.000), "cluster", "eu1", "cluster", ""))[1h:1m] offset 5m) / (label_replace(y offset -1m, "cluster", "eu1", "cluster", ""))"#
        )]
    );
}

#[test]
fn rewritten_queries_keep_what_the_parser_display_would_lose() {
    let p = plan(
        "up @ -100 * ignoring () group_left b",
        &[ext(&[("c", "x")])],
    );
    assert_eq!(
        queries(&p),
        vec![(
            0,
            r#"label_replace(up @ -100.000, "c", "x", "c", "") * ignoring () group_left () label_replace(b, "c", "x", "c", "")"#
        )]
    );
}

#[test]
fn several_external_labels_wrap_in_name_order() {
    let p = plan("group(up)", &eu_us()[..1]);
    assert_eq!(
        queries(&p),
        vec![(0, format!("group({})", wrapped("up", EU)).as_str())]
    );
}

#[test]
fn result_order_follows_the_top_level_sort() {
    let o = |q: &str| plan(q, &eu_us()).order;
    assert_eq!(o("up"), ResultOrder::Labels);
    assert_eq!(o("sort(up)"), ResultOrder::ValueAscending);
    assert_eq!(o("(sort_desc(up))"), ResultOrder::ValueDescending);
    assert_eq!(
        o(r#"sort_by_label_desc(up, "job", "instance")"#),
        ResultOrder::ByLabels {
            names: vec!["job".into(), "instance".into()],
            descending: true
        }
    );
    assert_eq!(o("abs(sort(up))"), ResultOrder::Labels);
}

#[test]
fn exactness_across_groups_follows_the_labels_that_tell_groups_apart() {
    use Exactness::{Exact, NotMergedAcrossGroups as Not};
    let cases = [
        ("up", Exact),
        ("-rate(x[5m])", Exact),
        ("(up)", Exact),
        ("up[5m:1m]", Exact),
        ("sum(up)", Not),
        ("sum by (cluster) (up)", Exact),
        ("sum by (job, cluster) (up)", Exact),
        ("sum by (env) (up)", Not),
        ("sum without (job) (up)", Exact),
        ("sum without (cluster) (up)", Not),
        ("max_over_time(sum by (cluster) (up)[5m:])", Exact),
        ("topk(3, up)", Not),
        ("topk by (cluster) (3, up)", Exact),
        ("topk by (cluster) (scalar(y), up)", Not),
        ("bottomk without (job) (3, up)", Exact),
        ("quantile by (cluster) (0.9, up)", Exact),
        ("limitk(2, up)", Not),
        ("limit_ratio by (cluster) (0.5, up)", Exact),
        (r#"count_values by (cluster) ("v", up)"#, Exact),
        (r#"count_values by (cluster) ("cluster", up)"#, Not),
        ("a + b", Exact),
        ("a + on (job) b", Not),
        ("a * on (job, cluster) group_left (x) b", Exact),
        ("a + ignoring (cluster) b", Not),
        ("a + ignoring (job) b", Exact),
        ("a and b", Exact),
        ("a or on (job) b", Not),
        ("a unless ignoring (env) b", Exact),
        ("a * 2", Exact),
        ("time() - a", Exact),
        ("a > bool 1", Exact),
        ("a * scalar(b)", Not),
        ("scalar(a)", Not),
        ("scalar(a) + 1", Not),
        ("absent(a)", Not),
        ("absent_over_time(a[5m])", Not),
        ("a or vector(0)", Not),
        ("day_of_week() + a", Not),
        ("day_of_week(a)", Exact),
        (r#"label_replace(a, "cluster", "x", "", "")"#, Not),
        (r#"label_replace(a, "dst", "$1", "cluster", "(.*)")"#, Exact),
        (r#"label_join(a, "cluster", ",", "a")"#, Not),
        (r#"label_join(a, "dst", ",", "cluster")"#, Exact),
        (
            "histogram_quantile(0.9, sum by (le, cluster) (rate(x[5m])))",
            Exact,
        ),
        ("histogram_quantile(0.9, sum by (le) (rate(x[5m])))", Not),
        ("histogram_quantile(scalar(y), rate(x[5m]))", Not),
        ("round(a, 0.5)", Exact),
        ("clamp(a, 0, scalar(b))", Not),
        ("sort_desc(a)", Exact),
        (r#"sort_by_label(a, "job")"#, Exact),
        ("predict_linear(a[1h], 3600)", Exact),
        ("timestamp(a)", Exact),
        ("info(a)", Not),
    ];
    for (q, want) in cases {
        assert_eq!(plan(q, &eu_us()).exactness, want, "{q}");
    }
}

#[test]
fn groups_that_cannot_be_told_apart_are_never_exact() {
    let same = vec![ext(&[("env", "prod")]), ext(&[("env", "prod")])];
    assert_eq!(
        plan("up", &same).exactness,
        Exactness::NotMergedAcrossGroups
    );
    let none = vec![ext(&[]), ext(&[])];
    assert_eq!(
        plan("up", &none).exactness,
        Exactness::NotMergedAcrossGroups
    );
}

#[test]
fn a_missing_external_label_counts_as_empty_when_telling_groups_apart() {
    let groups = vec![ext(&[("cluster", "eu1")]), ext(&[])];
    let p = plan("sum by (cluster) (up)", &groups);
    assert_eq!(p.exactness, Exactness::Exact);
    let p = plan("sum by (job) (up)", &groups);
    assert_eq!(p.exactness, Exactness::NotMergedAcrossGroups);
}

#[test]
fn exactness_only_considers_relevant_groups() {
    let groups = vec![
        ext(&[("cluster", "eu1"), ("dc", "a")]),
        ext(&[("cluster", "eu1"), ("dc", "b")]),
        ext(&[("cluster", "us1"), ("dc", "c")]),
    ];
    let p = plan(r#"sum by (dc) (up{cluster="eu1"})"#, &groups);
    assert_eq!(
        p.queries.iter().map(|q| q.group).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(p.exactness, Exactness::Exact);
}

#[test]
fn rewrite_selector_for_group_evaluates_external_matchers_only() {
    let eu = ext(&[("cluster", "eu1")]);
    let sel = |s: &str| parse_match_selector(s).expect("selector parses");
    let rw = |s: &str| rewrite_selector_for_group(&sel(s), &eu);
    assert_eq!(rw(r#"up{cluster="eu1"}"#).as_deref(), Some("up"));
    assert_eq!(
        rw(r#"{cluster=~"eu.+"}"#).as_deref(),
        Some(r#"{__name__=~".+"}"#)
    );
    assert_eq!(rw(r#"{cluster="us1"}"#), None);
    assert_eq!(
        rw(r#"up{region="x",job!="a"}"#).as_deref(),
        Some(r#"up{job!="a",region="x"}"#)
    );
    assert!(parse_match_selector("rate(up[5m])").is_err());
}

#[test]
fn match_selectors_are_planned_per_group() {
    let groups = eu_us();
    let refs: Vec<&ExternalLabels> = groups.iter().collect();
    let sels: Vec<VectorSelector> = [r#"up{cluster="us1"}"#, r#"{env="prod",job="a"}"#]
        .iter()
        .map(|s| parse_match_selector(s).expect("selector parses"))
        .collect();
    assert_eq!(
        plan_match_selectors(&sels, &refs),
        vec![
            GroupSelectors {
                group: 0,
                selectors: vec![r#"{job="a"}"#.to_string()],
            },
            GroupSelectors {
                group: 1,
                selectors: vec!["up".to_string(), r#"{job="a"}"#.to_string()],
            },
        ]
    );
    let nowhere = vec![parse_match_selector(r#"up{cluster="x"}"#).expect("parses")];
    assert!(plan_match_selectors(&nowhere, &refs).is_empty());
}

#[test]
fn expressions_that_keep_series_labels_get_labels_attached_not_injected() {
    let groups = [ext(&[("cluster", "eu1")])];
    for q in [
        "up",
        "rate(x[5m])",
        "x * 2",
        "2 > bool x",
        "-x",
        "histogram_quantile(0.9, rate(x_bucket[5m]))",
        "sort_desc(rate(x[5m]))",
        "clamp(x, 0, 1)",
        "max_over_time(x[1h:5m])",
        "x[5m]",
        "(timestamp(x) > 1)",
        r#"sort_by_label(x, "instance")"#,
    ] {
        let p = plan(q, &groups);
        assert!(p.attach_external_labels, "{q}");
        assert!(
            !p.queries[0].query.contains("label_replace"),
            "{q}: {:?}",
            p.queries
        );
    }
    for q in [
        "sum(x)",
        "x / y",
        "x * scalar(y)",
        r#"label_replace(x, "a", "$1", "cluster", "(.*)")"#,
        "absent(x)",
        "vector(1)",
        "count_values(\"v\", x)",
    ] {
        let p = plan(q, &groups);
        assert!(!p.attach_external_labels, "{q}");
    }
}
