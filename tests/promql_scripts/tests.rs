//! Tests of the script parser and the result comparison: the conformance numbers are only
//! as good as these two.

use promgate::model::Labels;
use promgate::promql::engine::{InstantSample, QueryOutput, RangeSeries, Value};

use super::compare::{Window, almost_equal, compare_matrix, compare_value, compare_vector};
use super::parse::{
    STALE_NAN_BITS, expand_values, parse_duration_ms, parse_number, parse_script,
    parse_series_labels, unquote,
};
use super::run::{calls, check_annotations, has_nameless_selector, mentions, pin_at, text_matches};
use super::{Command, EvalKind, Expectations, Expected, ExpectedSeries, LabelPairs, TextMatch};

fn lp(pairs: &[(&str, &str)]) -> LabelPairs {
    let mut v: LabelPairs = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn vals(s: &str) -> Vec<Option<f64>> {
    expand_values(s).expect("values parse")
}

#[test]
fn value_expansions() {
    assert_eq!(
        vals("0+10x3"),
        [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(vals("5-2x2"), [Some(5.0), Some(3.0), Some(1.0)]);
    assert_eq!(vals("-1-1x2"), [Some(-1.0), Some(-2.0), Some(-3.0)]);
    assert_eq!(vals("7x2"), [Some(7.0); 3]);
    // `0x10` in a series is zero repeated, not hex 16.
    assert_eq!(vals("0+0x10").len(), 11);
    assert_eq!(vals("0x2"), [Some(0.0); 3]);
    assert_eq!(
        vals("_ 1 _x3 2"),
        [None, Some(1.0), None, None, None, Some(2.0)]
    );
    assert_eq!(
        vals("1e3 -2.5 .5 +3"),
        [Some(1000.0), Some(-2.5), Some(0.5), Some(3.0)]
    );
    assert_eq!(vals("1.5e-1+1e-1x1"), [Some(0.15), Some(0.25)]);
    let inf = vals("Inf -Inf +inf");
    assert_eq!(
        inf,
        [
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::INFINITY)
        ]
    );
    assert!(vals("NaN")[0].is_some_and(f64::is_nan));
    assert!(expand_values("1+x3").is_err());
    assert!(expand_values("abc").is_err());
    assert!(expand_values("1x").is_err());
}

#[test]
fn stale_is_the_staleness_marker() {
    let v = vals("1 stale 2");
    let stale = v[1].expect("stale is a sample");
    assert_eq!(stale.to_bits(), STALE_NAN_BITS);
    assert_eq!(STALE_NAN_BITS, 0x7ff0000000000002);
    // A plain NaN is a different bit pattern.
    assert_ne!(vals("NaN")[0].map(f64::to_bits), Some(STALE_NAN_BITS));
}

#[test]
fn numbers_as_go_reads_them() {
    assert_eq!(parse_number("12.34e6"), Ok(12_340_000.0));
    assert_eq!(parse_number("0x1F"), Ok(31.0));
    assert_eq!(parse_number("-0x10"), Ok(-16.0));
    assert_eq!(parse_number("0x1p-2"), Ok(0.25));
    assert_eq!(parse_number("0x1.8p1"), Ok(3.0));
    assert_eq!(parse_number("010"), Ok(8.0));
    assert_eq!(parse_number("2."), Ok(2.0));
    assert_eq!(parse_number("+Inf"), Ok(f64::INFINITY));
    assert_eq!(parse_number("-inf"), Ok(f64::NEG_INFINITY));
    assert!(parse_number("nan").is_ok_and(f64::is_nan));
    assert!(parse_number("{} 1").is_err());
    assert!(parse_number("foo").is_err());
    assert!(parse_number("infx").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration_ms("5m"), Ok(300_000));
    assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration_ms("10s53ms"), Ok(10_053));
    assert_eq!(parse_duration_ms("1ms"), Ok(1));
    assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
    assert_eq!(parse_duration_ms("0"), Ok(0));
    assert_eq!(parse_duration_ms("100"), Ok(100_000));
    assert!(parse_duration_ms("5x").is_err());
    assert!(parse_duration_ms("m").is_err());
}

#[test]
fn series_labels() {
    let (l, rest) = parse_series_labels(r#"http_requests{job="api", instance="0"} 1 2"#).unwrap();
    assert_eq!(
        l,
        lp(&[
            ("__name__", "http_requests"),
            ("job", "api"),
            ("instance", "0")
        ])
    );
    assert_eq!(rest, "1 2");
    let (l, rest) = parse_series_labels("metric 0+1x2").unwrap();
    assert_eq!(l, lp(&[("__name__", "metric")]));
    assert_eq!(rest, "0+1x2");
    let (l, _) = parse_series_labels(r#"{__name__="m", a="b"} 1"#).unwrap();
    assert_eq!(l, lp(&[("__name__", "m"), ("a", "b")]));
    let (l, _) = parse_series_labels(r#"{"utf8.name", "a.b"="c"} 1"#).unwrap();
    assert_eq!(l, lp(&[("__name__", "utf8.name"), ("a.b", "c")]));
    let (l, rest) = parse_series_labels(r#"{} 3"#).unwrap();
    assert!(l.is_empty());
    assert_eq!(rest, "3");
    let (l, _) = parse_series_labels(r#"m{a="x\"y}\n", b='q', c=`r\s`,} 1"#).unwrap();
    assert_eq!(
        l,
        lp(&[
            ("__name__", "m"),
            ("a", "x\"y}\n"),
            ("b", "q"),
            ("c", "r\\s")
        ])
    );
    let (l, _) = parse_series_labels("name:with:colons{} 1").unwrap();
    assert_eq!(l, lp(&[("__name__", "name:with:colons")]));
    assert!(parse_series_labels(r#"m{a!="b"} 1"#).is_err());
    assert!(parse_series_labels(r#"m{a=~"b"} 1"#).is_err());
    assert!(parse_series_labels(r#"m{a="b" 1"#).is_err());
    assert!(parse_series_labels(r#"m{a="b", a="c"} 1"#).is_err());
    assert!(parse_series_labels("1 2").is_err());
}

#[test]
fn unquoting() {
    assert_eq!(
        unquote(r#""a\tb\\c\x41\101\u00e9""#),
        Ok("a\tb\\cAAé".to_string())
    );
    assert_eq!(unquote("`raw\\n`"), Ok("raw\\n".to_string()));
    assert!(unquote(r#""bad\q""#).is_err());
    assert!(unquote(r#""open"#).is_err());
}

fn only_eval(text: &str) -> super::Eval {
    let script = parse_script(text);
    assert!(script.errors.is_empty(), "{:?}", script.errors);
    match script.commands.into_iter().find_map(|c| match c {
        Command::Eval(e) => Some(e),
        _ => None,
    }) {
        Some(e) => *e,
        None => panic!("no eval in {text:?}"),
    }
}

#[test]
fn eval_headers_and_expectations() {
    let e = only_eval("eval instant at 1h5m sum(rate(x[5m]))\n  {} 1\n");
    assert_eq!(e.kind, EvalKind::Instant { at_ms: 3_900_000 });
    assert_eq!(e.expr, "sum(rate(x[5m]))");
    assert_eq!(e.line, 1);
    assert_eq!(
        e.expected,
        Expected::Series(vec![ExpectedSeries {
            labels: vec![],
            values: vec![Some(1.0)]
        }])
    );

    let e = only_eval("\n# c\neval range from 0 to 10m step 5m foo\n  foo{a=\"b\"} 1 _ 3\n");
    assert_eq!(e.line, 3);
    assert_eq!(
        e.kind,
        EvalKind::Range {
            start_ms: 0,
            end_ms: 600_000,
            step_ms: 300_000
        }
    );
    assert_eq!(
        e.expected,
        Expected::Series(vec![ExpectedSeries {
            labels: lp(&[("__name__", "foo"), ("a", "b")]),
            values: vec![Some(1.0), None, Some(3.0)],
        }])
    );

    let e = only_eval("eval_ordered instant at 5m topk(1, x)\n");
    assert!(e.expect.ordered);
    assert_eq!(e.expected, Expected::Series(vec![]));

    let e = only_eval("eval_fail instant at 0m x\n  expected_fail_message boom \"q\"\n");
    assert_eq!(e.expect.fail, Some(TextMatch::Exact("boom \"q\"".into())));
    let e = only_eval("eval_fail instant at 0m x\n  expected_fail_regexp bo+m\n");
    assert_eq!(e.expect.fail, Some(TextMatch::Regex("bo+m".into())));
    let e = only_eval("eval_warn range from 0 to 1m step 1m x\n");
    assert_eq!(e.expect.warn, Some(TextMatch::Any));
    let e = only_eval("eval_info instant at 0m x\n");
    assert_eq!(e.expect.info, Some(TextMatch::Any));

    let e = only_eval(
        "eval instant at 0m x\n  expect warn msg: PromQL warning: w\n  expect no_info\n  expect ordered\n  3\n",
    );
    assert_eq!(
        e.expect.warn,
        Some(TextMatch::Exact("PromQL warning: w".into()))
    );
    assert!(e.expect.no_info && e.expect.ordered && !e.expect.no_warn);
    assert_eq!(e.expected, Expected::Scalar(3.0));
    let e = only_eval("eval instant at 0m x\n  expect fail regex: a.c\n  expect no_warn\n");
    assert_eq!(e.expect.fail, Some(TextMatch::Regex("a.c".into())));
    assert!(e.expect.no_warn);
    let e = only_eval("eval instant at 0m \"s\"\n  expect string \"s\"\n");
    assert_eq!(e.expected, Expected::String("s".into()));
    let e = only_eval("eval instant at 0m \"s\"\n  \"s\"\n");
    assert_eq!(e.expected, Expected::String("s".into()));
}

#[test]
fn malformed_lines_are_errors_not_panics() {
    // Two values in an instant eval, a bad value, a bad header: each stays with its eval.
    for text in [
        "eval instant at 0m x\n  {} 1 2\n",
        "eval instant at 0m x\n  {} 1+\n",
        "eval instant at 0m x\n  {a=} 1\n",
        "eval instant at 0m x\n  expect sometimes\n",
        "eval instant at 5q x\n",
        "eval sometime x\n",
    ] {
        assert!(only_eval(text).error.is_some(), "{text:?}");
    }
    let script = parse_script("load 5m\n  m{a=\"b\"} 1 x\n\nfrobnicate\n");
    assert_eq!(script.errors.len(), 2);
    assert_eq!(script.errors[0].0, 2);
}

#[test]
fn loads_blocks_and_comments() {
    let script = parse_script(
        "load 5m\n  a 1 _ 3\n  b{x=\"y\"} {{schema:0 sum:1 count:1}}\n# end\n  c 1\n\nclear\n",
    );
    // The comment ends the load block, so `c 1` stands alone and is an unknown command.
    assert_eq!(script.errors.len(), 1);
    let Some(Command::Load(load)) = script.commands.first() else {
        panic!("no load: {:?}", script.commands);
    };
    assert_eq!(load.series.len(), 2);
    assert_eq!(load.series[0].samples, [(0, 1.0), (600_000, 3.0)]);
    assert!(load.series[1].histogram && load.series[1].samples.is_empty());
    assert!(matches!(script.commands.last(), Some(Command::Clear)));
    // `clear` right above a load (no blank line between) leaves the load in force.
    let script = parse_script("clear\nload 1m\n  a 1\n");
    assert!(matches!(script.commands.first(), Some(Command::Clear)));
    assert!(matches!(script.commands.get(1), Some(Command::Load(_))));
}

#[test]
fn float_tolerance() {
    assert!(almost_equal(1.0, 1.0 + 1e-7));
    assert!(!almost_equal(1.0, 1.0 + 1e-5));
    assert!(almost_equal(1e20, 1e20 * (1.0 + 1e-7)));
    assert!(!almost_equal(1e-20, 2e-20));
    // Against zero only (near-)identity counts.
    assert!(!almost_equal(0.0, 1e-10));
    assert!(almost_equal(0.0, -0.0));
    assert!(almost_equal(f64::NAN, f64::from_bits(STALE_NAN_BITS)));
    assert!(!almost_equal(f64::NAN, 1.0));
    assert!(almost_equal(f64::INFINITY, f64::INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::MAX));
}

fn exp(labels: &[(&str, &str)], values: &[Option<f64>]) -> ExpectedSeries {
    ExpectedSeries {
        labels: lp(labels),
        values: values.to_vec(),
    }
}

#[test]
fn vector_matching() {
    let expected = [
        exp(&[("a", "1")], &[Some(1.0)]),
        exp(&[("a", "2")], &[Some(f64::NAN)]),
    ];
    let swapped = [
        (lp(&[("a", "2")]), f64::NAN),
        (lp(&[("a", "1")]), 1.0 + 1e-9),
    ];
    assert_eq!(compare_vector(&expected, false, &swapped), Ok(()));
    assert!(compare_vector(&expected, true, &swapped).is_err());
    let in_order = [(lp(&[("a", "1")]), 1.0), (lp(&[("a", "2")]), f64::NAN)];
    assert_eq!(compare_vector(&expected, true, &in_order), Ok(()));
    // Missing, extra, wrong value, extra label, duplicate.
    assert!(compare_vector(&expected, false, &in_order[..1]).is_err());
    let extra = [
        in_order[0].clone(),
        in_order[1].clone(),
        (lp(&[("a", "3")]), 1.0),
    ];
    assert!(compare_vector(&expected, false, &extra).is_err());
    assert!(
        compare_vector(
            &expected,
            false,
            &[(lp(&[("a", "1")]), 2.0), in_order[1].clone()]
        )
        .is_err()
    );
    let more_labels = [(lp(&[("a", "1"), ("b", "")]), 1.0), in_order[1].clone()];
    assert!(compare_vector(&expected, false, &more_labels).is_err());
    let dup = [in_order[0].clone(), in_order[0].clone()];
    assert!(compare_vector(&expected[..1], false, &dup).is_err());
    assert_eq!(compare_vector(&[], false, &[]), Ok(()));
}

#[test]
fn matrix_with_gaps() {
    // Steps at 0, 10, 20, 30; `_` at 10.
    let expected = [exp(&[("a", "1")], &[Some(1.0), None, Some(3.0), Some(4.0)])];
    let good = [(lp(&[("a", "1")]), vec![(0, 1.0), (20, 3.0), (30, 4.0)])];
    assert_eq!(compare_matrix(&expected, 0, 30, 10, &good), Ok(()));
    // A point where `_` says there is none.
    let extra = [(
        lp(&[("a", "1")]),
        vec![(0, 1.0), (10, 2.0), (20, 3.0), (30, 4.0)],
    )];
    assert!(compare_matrix(&expected, 0, 30, 10, &extra).is_err());
    // Right values at the wrong times.
    let shifted = [(lp(&[("a", "1")]), vec![(0, 1.0), (10, 3.0), (30, 4.0)])];
    assert!(compare_matrix(&expected, 0, 30, 10, &shifted).is_err());
    let wrong = [(lp(&[("a", "1")]), vec![(0, 1.0), (20, 3.5), (30, 4.0)])];
    assert!(compare_matrix(&expected, 0, 30, 10, &wrong).is_err());
    // More expected steps than the range has.
    assert!(compare_matrix(&expected, 0, 20, 10, &good).is_err());
    // A series that is all `_` must be absent.
    let absent = [
        exp(&[("a", "1")], &[Some(1.0), None, Some(3.0), Some(4.0)]),
        exp(&[("b", "1")], &[None, None]),
    ];
    assert!(compare_matrix(&absent, 0, 30, 10, &good).is_err());
    // Unsorted series are refused.
    let two = [
        exp(&[("a", "1")], &[Some(1.0)]),
        exp(&[("a", "2")], &[Some(2.0)]),
    ];
    let sorted = [
        (lp(&[("a", "1")]), vec![(0, 1.0)]),
        (lp(&[("a", "2")]), vec![(0, 2.0)]),
    ];
    assert_eq!(compare_matrix(&two, 0, 0, 10, &sorted), Ok(()));
    let unsorted = [sorted[1].clone(), sorted[0].clone()];
    assert!(compare_matrix(&two, 0, 0, 10, &unsorted).is_err());
}

#[test]
fn values_of_each_kind() {
    let labels = Labels::new(vec![
        ("__name__".into(), "m".into()),
        ("a".into(), "1".into()),
    ]);
    let series = Expected::Series(vec![exp(&[("__name__", "m"), ("a", "1")], &[Some(5.0)])]);
    let vector = Value::Vector(vec![InstantSample {
        labels: labels.clone(),
        value: 5.0,
    }]);
    assert_eq!(
        compare_value(&series, false, Window::Instant(0), &vector),
        Ok(())
    );
    assert!(
        compare_value(
            &series,
            false,
            Window::Range {
                start: 0,
                end: 0,
                step: 1
            },
            &vector
        )
        .is_err()
    );
    let matrix = Value::Matrix(vec![RangeSeries {
        labels,
        points: vec![(7, 5.0)],
    }]);
    assert_eq!(
        compare_value(
            &series,
            false,
            Window::Range {
                start: 7,
                end: 7,
                step: 1
            },
            &matrix
        ),
        Ok(())
    );
    assert!(
        compare_value(
            &series,
            false,
            Window::Range {
                start: 0,
                end: 7,
                step: 1
            },
            &matrix
        )
        .is_err()
    );
    assert_eq!(
        compare_value(
            &Expected::Scalar(2.0),
            false,
            Window::Instant(0),
            &Value::Scalar(2.0)
        ),
        Ok(())
    );
    assert!(
        compare_value(
            &Expected::Scalar(2.0),
            false,
            Window::Instant(0),
            &Value::Scalar(3.0)
        )
        .is_err()
    );
    assert!(compare_value(&Expected::Scalar(5.0), false, Window::Instant(0), &vector).is_err());
    assert!(
        compare_value(
            &Expected::Series(vec![]),
            false,
            Window::Instant(0),
            &Value::Scalar(1.0)
        )
        .is_err()
    );
    assert!(
        compare_value(
            &Expected::String("x".into()),
            false,
            Window::Instant(0),
            &Value::String("y".into())
        )
        .is_err()
    );
}

#[test]
fn annotations_and_messages() {
    let out = QueryOutput {
        value: Value::Scalar(1.0),
        warnings: vec!["PromQL warning: bad quantile".into()],
        infos: vec![],
        stats: Default::default(),
    };
    let mut e = Expectations {
        warn: Some(TextMatch::Any),
        ..Default::default()
    };
    assert_eq!(check_annotations(&e, &out), Ok(()));
    e.warn = Some(TextMatch::Exact("PromQL warning: bad quantile".into()));
    assert_eq!(check_annotations(&e, &out), Ok(()));
    e.warn = Some(TextMatch::Exact("other".into()));
    assert!(check_annotations(&e, &out).is_err());
    let e = Expectations {
        info: Some(TextMatch::Any),
        ..Default::default()
    };
    assert!(check_annotations(&e, &out).is_err());
    let e = Expectations {
        no_warn: true,
        ..Default::default()
    };
    assert!(check_annotations(&e, &out).is_err());
    let e = Expectations {
        no_info: true,
        ..Default::default()
    };
    assert_eq!(check_annotations(&e, &out), Ok(()));
    // Unasked-for annotations are not checked.
    assert_eq!(check_annotations(&Expectations::default(), &out), Ok(()));
    assert!(text_matches(
        &TextMatch::Exact("PromQL info: x".into()),
        "x"
    ));
    assert!(text_matches(
        &TextMatch::Regex("^vector cannot".into()),
        "vector cannot contain"
    ));
    assert!(!text_matches(
        &TextMatch::Regex("^cannot".into()),
        "vector cannot contain"
    ));
}

#[test]
fn word_matching_for_skips() {
    assert!(has_nameless_selector(r#"max({job="a"})"#));
    assert!(has_nameless_selector(r#"{job="a"} == 80"#));
    assert!(!has_nameless_selector(r#"max(x{job="{a}"})"#));
    assert!(!has_nameless_selector(r#"sum by (a) (rate(x{b="c"}[5m]))"#));
    assert!(mentions("rate(foo[5m])", "foo"));
    assert!(!mentions("rate(foo_bar[5m])", "foo"));
    assert!(!mentions("rate(x:foo[5m])", "foo"));
    assert!(calls("sort_by_label (x, \"a\")", "sort_by_label"));
    assert!(!calls("sort_by_label_desc(x)", "sort_by_label"));
    assert!(!calls("info", "info"));
}

#[test]
fn at_pinning() {
    use promql_parser::parser::parse;
    let pin = |q: &str| pin_at(&parse(q).expect("query parses"), 60_000).map(|e| e.to_string());
    let pinned = pin("sum(rate(foo[5m])) + bar offset 1m").expect("pinnable");
    assert_eq!(pinned.matches("@ 60").count(), 2, "{pinned}");
    assert!(pinned.contains("offset 1m"));
    // Existing @ is kept; the inside of a subquery is left to the subquery's steps.
    let pinned = pin("foo @ 10 + max_over_time(bar[5m:1m])").expect("pinnable");
    assert_eq!(pinned.matches("@ 60").count(), 1, "{pinned}");
    assert!(pinned.contains("@ 10"));
    assert_eq!(pin("time() - foo"), None);
    assert_eq!(pin("foo @ start()"), None);
    assert_eq!(pin("max_over_time(hour(foo)[5m:1m])"), None);
}
