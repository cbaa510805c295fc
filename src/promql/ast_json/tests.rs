use super::*;
use promql_parser::parser::parse;

/// Queries and the `data` Prometheus 3.5.3's /api/v1/parse_query returned for them.
const PARSE_QUERY_REFERENCE: &[(&str, &str)] = &[
    (
        r#"foo"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo{job="api",instance!="a",path=~"/v1/.*",code!~"5.."}"#,
        r#"{"matchers":[{"name":"job","type":"=","value":"api"},{"name":"instance","type":"!=","value":"a"},{"name":"path","type":"=~","value":"/v1/.*"},{"name":"code","type":"!~","value":"5.."},{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"{__name__="foo",job="x"}"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"},{"name":"job","type":"=","value":"x"}],"name":"","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo offset 5m"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":300000,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo offset -1h30m"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":-5400000,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo @ 1609746000"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":1609746000000,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo @ start()"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":"start","timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo @ end() offset 10s"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":10000,"startOrEnd":"end","timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"rate(foo[5m])"#,
        r#"{"args":[{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"range":300000,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"}"#,
    ),
    (
        r#"foo[1h] offset 1d"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":86400000,"range":3600000,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}"#,
    ),
    (
        r#"foo[5m] @ 100.5"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"range":300000,"startOrEnd":null,"timestamp":100500,"type":"matrixSelector"}"#,
    ),
    (
        r#"sum(rate(http_requests_total{job="api"}[5m])) by (job, instance)"#,
        r#"{"expr":{"args":[{"matchers":[{"name":"job","type":"=","value":"api"},{"name":"__name__","type":"=","value":"http_requests_total"}],"name":"http_requests_total","offset":0,"range":300000,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"},"grouping":["job","instance"],"op":"sum","param":null,"type":"aggregation","without":false}"#,
    ),
    (
        r#"sum without (instance) (foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":["instance"],"op":"sum","param":null,"type":"aggregation","without":true}"#,
    ),
    (
        r#"topk(5, foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":[],"op":"topk","param":{"type":"numberLiteral","val":"5"},"type":"aggregation","without":false}"#,
    ),
    (
        r#"count_values("value", foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":[],"op":"count_values","param":{"type":"stringLiteral","val":"value"},"type":"aggregation","without":false}"#,
    ),
    (
        r#"avg(foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":[],"op":"avg","param":null,"type":"aggregation","without":false}"#,
    ),
    (
        r#"a + b"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"one-to-one","include":[],"labels":[],"on":false},"op":"+","rhs":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
    (
        r#"a * on(job) group_left(instance) b"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"many-to-one","include":["instance"],"labels":["job"],"on":true},"op":"*","rhs":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
    (
        r#"a / ignoring(code) group_right c"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"one-to-many","include":[],"labels":["code"],"on":false},"op":"/","rhs":{"matchers":[{"name":"__name__","type":"=","value":"c"}],"name":"c","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
    (
        r#"a and b"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"many-to-many","include":[],"labels":[],"on":false},"op":"and","rhs":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
    (
        r#"a or on(x) b"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"many-to-many","include":[],"labels":["x"],"on":true},"op":"or","rhs":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
    (
        r#"foo > bool 1"#,
        r#"{"bool":true,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":null,"op":">","rhs":{"type":"numberLiteral","val":"1"},"type":"binaryExpr"}"#,
    ),
    (
        r#"1 + 2"#,
        r#"{"bool":false,"lhs":{"type":"numberLiteral","val":"1"},"matching":null,"op":"+","rhs":{"type":"numberLiteral","val":"2"},"type":"binaryExpr"}"#,
    ),
    (
        r#"-foo"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"op":"-","type":"unaryExpr"}"#,
    ),
    (r#"-1"#, r#"{"type":"numberLiteral","val":"-1"}"#),
    (
        r#"(foo + bar) * 2"#,
        r#"{"bool":false,"lhs":{"expr":{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"one-to-one","include":[],"labels":[],"on":false},"op":"+","rhs":{"matchers":[{"name":"__name__","type":"=","value":"bar"}],"name":"bar","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"},"type":"parenExpr"},"matching":null,"op":"*","rhs":{"type":"numberLiteral","val":"2"},"type":"binaryExpr"}"#,
    ),
    (
        r#""a string""#,
        r#"{"type":"stringLiteral","val":"a string"}"#,
    ),
    (r#"1e6"#, r#"{"type":"numberLiteral","val":"1000000"}"#),
    (r#"NaN"#, r#"{"type":"numberLiteral","val":"NaN"}"#),
    (r#"-Inf"#, r#"{"type":"numberLiteral","val":"-Inf"}"#),
    (
        r#"rate(foo[5m:30s])"#,
        r#"{"args":[{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":0,"range":300000,"startOrEnd":null,"step":30000,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"}"#,
    ),
    (
        r#"foo[10m:]"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":0,"range":600000,"startOrEnd":null,"step":0,"timestamp":null,"type":"subquery"}"#,
    ),
    (
        r#"max_over_time(rate(foo[1m])[1h:5m] offset 1h)"#,
        r#"{"args":[{"expr":{"args":[{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"range":60000,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","variadic":0},"type":"call"},"offset":3600000,"range":3600000,"startOrEnd":null,"step":300000,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"name":"max_over_time","returnType":"vector","variadic":0},"type":"call"}"#,
    ),
    (
        r#"min_over_time(foo[5m:1m] @ end())"#,
        r#"{"args":[{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":0,"range":300000,"startOrEnd":"end","step":60000,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"name":"min_over_time","returnType":"vector","variadic":0},"type":"call"}"#,
    ),
    (
        r#"label_join(up, "dst", ",", "a", "b", "c")"#,
        r#"{"args":[{"matchers":[{"name":"__name__","type":"=","value":"up"}],"name":"up","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},{"type":"stringLiteral","val":"dst"},{"type":"stringLiteral","val":","},{"type":"stringLiteral","val":"a"},{"type":"stringLiteral","val":"b"},{"type":"stringLiteral","val":"c"}],"func":{"argTypes":["vector","string","string","string"],"name":"label_join","returnType":"vector","variadic":-1},"type":"call"}"#,
    ),
    (
        r#"round(foo)"#,
        r#"{"args":[{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}],"func":{"argTypes":["vector","scalar"],"name":"round","returnType":"vector","variadic":1},"type":"call"}"#,
    ),
    (
        r#"time()"#,
        r#"{"args":[],"func":{"argTypes":[],"name":"time","returnType":"scalar","variadic":0},"type":"call"}"#,
    ),
    (
        r#"day_of_week()"#,
        r#"{"args":[],"func":{"argTypes":["vector"],"name":"day_of_week","returnType":"vector","variadic":1},"type":"call"}"#,
    ),
    (
        r#"limitk(2, foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":[],"op":"limitk","param":{"type":"numberLiteral","val":"2"},"type":"aggregation","without":false}"#,
    ),
    (
        r#"{"foo.bar"}"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo.bar"}],"name":"","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"}"#,
    ),
    (
        r#"sum by ("a.b") (foo)"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"grouping":["a.b"],"op":"sum","param":null,"type":"aggregation","without":false}"#,
    ),
    (r#"Inf"#, r#"{"type":"numberLiteral","val":"+Inf"}"#),
    (
        r#"foo @ -100"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":-100000,"type":"vectorSelector"}"#,
    ),
    (
        r#"foo[1w] offset 500ms"#,
        r#"{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":500,"range":604800000,"startOrEnd":null,"timestamp":null,"type":"matrixSelector"}"#,
    ),
    (
        r#"foo[1h:5m] @ 1000 offset 1m"#,
        r#"{"expr":{"matchers":[{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":60000,"range":3600000,"startOrEnd":null,"step":300000,"timestamp":1000000,"type":"subquery"}"#,
    ),
    (
        r#"a + on() b"#,
        r#"{"bool":false,"lhs":{"matchers":[{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"matching":{"card":"one-to-one","include":[],"labels":[],"on":true},"op":"+","rhs":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"type":"binaryExpr"}"#,
    ),
];

/// Queries and the `data` Prometheus 3.5.3's /api/v1/format_query returned for them.
const FORMAT_QUERY_REFERENCE: &[(&str, &str)] = &[
    (
        "foo{job=\"api\",instance!=\"a\",path=~\"/v1/.*\",code!~\"5..\"}",
        "foo{code!~\"5..\",instance!=\"a\",job=\"api\",path=~\"/v1/.*\"}",
    ),
    ("foo @ 1609746000", "foo @ 1609746000.000"),
    ("foo[5m] @ 100.5", "foo[5m] @ 100.500"),
    (
        "sum(rate(http_requests_total{job=\"api\"}[5m])) by (job, instance)",
        "sum by (job, instance) (rate(http_requests_total{job=\"api\"}[5m]))",
    ),
    (
        "a / ignoring(code) group_right c",
        "a / ignoring (code) group_right () c",
    ),
    ("1e6", "1000000"),
    (
        "sum by (job) (rate(http_requests_total{job=\"api-server\",handler!~\"/metrics|/-/healthy\"}[5m])) / on(job) group_left sum by (job) (rate(http_requests_total[5m]))",
        "  sum by (job) (rate(http_requests_total{handler!~\"/metrics|/-/healthy\",job=\"api-server\"}[5m]))\n/ on (job) group_left ()\n  sum by (job) (rate(http_requests_total[5m]))",
    ),
    ("Inf", "+Inf"),
    ("foo @ -100", "foo @ -100.000"),
    (
        "sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m]))",
        "sum by (job, instance, namespace, pod, container) (\n  rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n)",
    ),
    (
        "histogram_quantile(0.99, sum by (le, job, instance) (rate(prometheus_http_request_duration_seconds_bucket{handler=\"/api/v1/query\"}[5m])))",
        "histogram_quantile(\n  0.99,\n  sum by (le, job, instance) (\n    rate(prometheus_http_request_duration_seconds_bucket{handler=\"/api/v1/query\"}[5m])\n  )\n)",
    ),
    (
        "label_replace(sum by (job, instance) (rate(node_network_receive_bytes_total{device!~\"lo|veth.*\"}[5m])), \"host\", \"$1\", \"instance\", \"(.*):.*\")",
        "label_replace(\n  sum by (job, instance) (rate(node_network_receive_bytes_total{device!~\"lo|veth.*\"}[5m])),\n  \"host\",\n  \"$1\",\n  \"instance\",\n  \"(.*):.*\"\n)",
    ),
    (
        "topk(10, sum by (namespace, pod) (container_memory_working_set_bytes{container!=\"\",image!=\"\"})) / on (namespace, pod) group_left () kube_pod_container_resource_limits",
        "  topk(10, sum by (namespace, pod) (container_memory_working_set_bytes{container!=\"\",image!=\"\"}))\n/ on (namespace, pod) group_left ()\n  kube_pod_container_resource_limits",
    ),
    (
        "(sum by (job) (rate(http_requests_total{code=~\"5..\",job=\"some-very-long-job-name\"}[5m])) / sum by (job) (rate(http_requests_total{job=\"some-very-long-job-name\"}[5m]))) > 0.05",
        "  (\n      sum by (job) (rate(http_requests_total{code=~\"5..\",job=\"some-very-long-job-name\"}[5m]))\n    /\n      sum by (job) (rate(http_requests_total{job=\"some-very-long-job-name\"}[5m]))\n  )\n>\n  0.05",
    ),
    (
        "max_over_time(sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total[5m]))[1h:1m])",
        "max_over_time(\n  sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total[5m]))[1h:1m]\n)",
    ),
    (
        "-sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m]))",
        "-sum by (job, instance, namespace, pod, container) (\n  rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n)",
    ),
    ("a + b + c + d", "a + b + c + d"),
    (
        "veryveryveryveryverylongmetricname_one + veryveryveryveryverylongmetricname_two + veryveryveryverylongmetricname_three",
        "  veryveryveryveryverylongmetricname_one + veryveryveryveryverylongmetricname_two\n+\n  veryveryveryverylongmetricname_three",
    ),
    (
        "foo{job=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",instance=\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
        "foo{instance=\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",job=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
    ),
    (
        "max_over_time(rate(some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghijklmnopqrstuvwxyz\"}[5m])[1h:1m])",
        "max_over_time(\n  rate(some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghijklmnopqrstuvwxyz\"}[5m])[1h:1m]\n)",
    ),
    (
        "topk(5, sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])))",
        "topk(\n  5,\n  sum by (job, instance, namespace, pod, container) (\n    rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n  )\n)",
    ),
    (
        "clamp(sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])), 0, 1)",
        "clamp(\n  sum by (job, instance, namespace, pod, container) (\n    rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n  ),\n  0,\n  1\n)",
    ),
    (
        "-(sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])))",
        "-(\n  sum by (job, instance, namespace, pod, container) (\n    rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n  )\n)",
    ),
    (
        "((sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m]))))",
        "(\n  (\n    sum by (job, instance, namespace, pod, container) (\n      rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n    )\n  )\n)",
    ),
    (
        "sum by (job, instance, namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])) > bool on (job) group_right (pod) foo",
        "  sum by (job, instance, namespace, pod, container) (\n    rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n  )\n> bool on (job) group_right (pod)\n  foo",
    ),
    (
        "count_values without (instance) (\"some_really_long_label_name_here\", rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m]))",
        "count_values without (instance) (\n  \"some_really_long_label_name_here\",\n  rate(container_cpu_usage_seconds_total{namespace=\"kube-system\"}[5m])\n)",
    ),
    ("foo @ 1.5 offset -5m", "foo @ 1.500 offset -5m"),
    (
        "foo[5m:] @ start() offset -1s",
        "foo[5m:] @ start() offset -1s",
    ),
    (
        "quantile_over_time(scalar(some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghij\"}), rate(foo[5m])[1h:1m])",
        "quantile_over_time(\n  scalar(some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghij\"}),\nrate(foo[5m])[1h:1m]\n)",
    ),
    (
        "\"a\\x01b\\u00a0c\\u200bd\\aé😀\\ufeff\"",
        "\"a\\x01b\\u00a0c\\u200bd\\aé😀\\ufeff\"",
    ),
    (
        "-max_over_time(rate(foo[5m])[1h:1m]) + some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghijklmnopqrstuvwxyz\"}",
        "  -max_over_time(rate(foo[5m])[1h:1m])\n+\n  some_really_long_metric_name_for_testing_purposes_total{job=\"abcdefghijklmnopqrstuvwxyz\"}",
    ),
];

#[test]
fn ast_json_equals_prometheus_parse_query() {
    for (query, expected) in PARSE_QUERY_REFERENCE {
        let expr = parse(query).expect("reference query parses");
        let expected: Value = serde_json::from_str(expected).expect("reference is JSON");
        assert_eq!(ast_to_json(&expr), expected, "{query}");
    }
}

#[test]
fn format_query_equals_prometheus_format_query() {
    for (query, expected) in FORMAT_QUERY_REFERENCE {
        let expr = parse(query).expect("reference query parses");
        assert_eq!(format_query(&expr), *expected, "{query}");
    }
}

#[test]
fn one_line_promql_parses_back_to_the_same_expression() {
    // Matchers come back sorted, so compare the printed forms.
    let all = PARSE_QUERY_REFERENCE.iter().chain(FORMAT_QUERY_REFERENCE);
    for (query, _) in all {
        let expr = parse(query).expect("reference query parses");
        let line = to_promql(&expr);
        let again = parse(&line).expect("printed query parses");
        assert_eq!(to_promql(&again), line, "{query}");
        let pretty = parse(&format_query(&expr)).expect("formatted query parses");
        assert_eq!(to_promql(&pretty), line, "{query}");
    }
}

#[test]
fn prettify_of_the_parser_differs_from_prometheus_where_documented() {
    let cases = [
        ("Inf", "Inf", "+Inf"),
        ("foo @ -100", "foo @ 0.000", "foo @ -100.000"),
        (r#""\x01""#, "\"\u{1}\"", r#""\x01""#),
    ];
    for (query, parser_prints, prometheus_prints) in cases {
        let expr = parse(query).expect("query parses");
        assert_eq!(expr.prettify(), parser_prints, "{query}");
        assert_eq!(format_query(&expr), prometheus_prints, "{query}");
    }
}

#[test]
fn unary_plus_is_dropped_by_the_parser() {
    // Prometheus answers {"type":"unaryExpr","op":"+",...} and formats "+foo".
    let expr = parse("+foo").expect("query parses");
    assert_eq!(ast_to_json(&expr)["type"], "vectorSelector");
    assert_eq!(format_query(&expr), "foo");
}

#[test]
fn intentional_differences_keep_the_output_valid() {
    // Prometheus prints "a * b" (dropping group_left) and "a * on (a.b) ... b" (invalid).
    let expr = parse("a * ignoring() group_left b").expect("query parses");
    assert_eq!(format_query(&expr), "a * ignoring () group_left () b");
    let expr = parse(r#"a * on("a.b") group_left("c.d") b"#).expect("query parses");
    assert_eq!(
        format_query(&expr),
        r#"a * on ("a.b") group_left ("c.d") b"#
    );
}
