//! The queries: templates over selectors, ranges and parameters, covering every float
//! function, aggregation and operator Prometheus 3.5 has without feature flags, with offset,
//! @ and subqueries.

use super::data::T0_MS;

const COUNTERS: [&str; 3] = [
    "app_requests_total",
    "app_requests_total{job=\"api\"}",
    "app_requests_total{method=~\"p.*\",instance!=\"a:80\"}",
];
const GAUGES: [&str; 3] = [
    "app_temperature",
    "app_queue_depth",
    "app_temperature{instance=~\"[bc]:.*\"}",
];
const RANGES: [&str; 4] = ["1m", "5m", "17m", "1h"];

/// Every query, in a fixed order.
pub fn all() -> Vec<String> {
    let mut q = Vec::new();
    range_functions(&mut q);
    instant_functions(&mut q);
    aggregations(&mut q);
    binary_operators(&mut q);
    modifiers(&mut q);
    q
}

fn range_functions(q: &mut Vec<String>) {
    for sel in COUNTERS {
        for r in RANGES {
            for f in ["rate", "irate", "increase", "resets", "changes"] {
                q.push(format!("{f}({sel}[{r}])"));
            }
        }
    }
    let over_time = [
        "delta",
        "idelta",
        "deriv",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "last_over_time",
        "present_over_time",
    ];
    for sel in GAUGES {
        for r in RANGES {
            for f in over_time {
                q.push(format!("{f}({sel}[{r}])"));
            }
            q.push(format!("predict_linear({sel}[{r}], 600)"));
            q.push(format!("quantile_over_time(0.3, {sel}[{r}])"));
        }
    }
    for r in RANGES {
        q.push(format!(
            "absent_over_time(app_queue_depth{{instance=\"c:90\"}}[{r}])"
        ));
        q.push(format!("absent_over_time(nonexistent{{job=\"x\"}}[{r}])"));
    }
    for p in ["-0.5", "0", "0.99", "1", "1.5"] {
        q.push(format!("quantile_over_time({p}, app_temperature[17m])"));
    }
    q.push("predict_linear(app_requests_total[1h], -300)".into());
    q.push("deriv(app_requests_total[5m])".into());
    q.push("avg_over_time(app_latency_seconds_sum[5m])".into());
}

fn instant_functions(q: &mut Vec<String>) {
    for f in [
        "abs",
        "ceil",
        "floor",
        "round",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
        "sgn",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "deg",
        "rad",
        "timestamp",
    ] {
        q.push(format!("{f}(app_temperature)"));
    }
    for f in ["ln", "sqrt", "acosh", "exp"] {
        q.push(format!("{f}(app_queue_depth)"));
    }
    for e in [
        "round(app_temperature, 0.5)",
        "round(app_temperature, 3)",
        "clamp(app_temperature, -1, 1.5)",
        "clamp(app_temperature, 2, 1)",
        "clamp_min(app_temperature, 0)",
        "clamp_max(app_temperature, 0.25)",
        "timestamp(app_temperature offset 1m)",
        "timestamp(rate(app_requests_total[5m]))",
        "-app_temperature",
        "pi()",
        "time()",
        "vector(time())",
        "vector(1)",
        "scalar(app_temperature)",
        "scalar(app_temperature{instance=\"a:80\"})",
        "scalar(sum(app_requests_total))",
        "absent(app_temperature)",
        "absent(nonexistent{job=\"x\", instance=~\"y\"})",
        "absent(sum(nonexistent))",
        "sort(app_temperature)",
        "sort_desc(app_temperature)",
        "sort(rate(app_requests_total[5m]))",
        "sort_desc(sum by (job) (app_requests_total))",
        "label_replace(app_temperature, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
        "label_replace(app_temperature, \"instance\", \"\", \"instance\", \".*\")",
        "label_replace(app_temperature, \"x\", \"$2\", \"job\", \"(a)(p)i\")",
        "label_join(app_temperature, \"both\", \"/\", \"job\", \"instance\")",
        "label_join(app_temperature, \"job\", \"-\", \"instance\")",
        "1 + 2 * 3",
        "\"text\"",
        "app_temperature[5m]",
    ] {
        q.push(e.to_string());
    }
    for f in [
        "minute",
        "hour",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "month",
        "year",
    ] {
        q.push(format!("{f}()"));
        q.push(format!("{f}(timestamp(app_queue_depth))"));
        q.push(format!("{f}(app_temperature * 1e8)"));
    }
}

fn aggregations(q: &mut Vec<String>) {
    let inputs = [
        "app_temperature",
        "rate(app_requests_total[5m])",
        "app_queue_depth",
    ];
    let groupings = ["", " by (job)", " without (instance)", " by (job, method)"];
    for input in inputs {
        for g in groupings {
            for a in [
                "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
            ] {
                q.push(format!("{a}{g} ({input})"));
            }
            q.push(format!("quantile{g} (0.75, {input})"));
            q.push(format!("topk{g} (2, {input})"));
            q.push(format!("bottomk{g} (1, {input})"));
            q.push(format!("count_values{g} (\"value\", {input})"));
        }
    }
    for e in [
        "quantile(-1, app_temperature)",
        "quantile(2, app_temperature)",
        "quantile(0, app_temperature)",
        "topk(0, app_temperature)",
        "topk(100, app_temperature)",
        "bottomk(scalar(app_queue_depth{instance=\"e:90\"}), app_requests_total)",
        "count_values(\"job\", app_queue_depth)",
        "sum by (le) (app_latency_seconds_bucket)",
        "avg without (method) (increase(app_requests_total[17m]))",
    ] {
        q.push(e.to_string());
    }
}

fn binary_operators(q: &mut Vec<String>) {
    for op in ["+", "-", "*", "/", "%", "^", "atan2"] {
        q.push(format!("app_temperature {op} 2"));
        q.push(format!("3 {op} app_queue_depth"));
        q.push(format!(
            "app_requests_total {op} on (job, instance) app_temperature"
        ));
        q.push(format!(
            "app_requests_total {op} ignoring (method) group_left app_temperature"
        ));
    }
    for op in ["==", "!=", ">", "<", ">=", "<="] {
        q.push(format!("app_temperature {op} 0.5"));
        q.push(format!("app_temperature {op} bool 0.5"));
        q.push(format!("1 {op} bool 2"));
        q.push(format!(
            "app_queue_depth {op} on (job, instance) app_temperature"
        ));
        q.push(format!(
            "app_queue_depth {op} bool on (job, instance) app_temperature"
        ));
    }
    for e in [
        "app_temperature and app_queue_depth",
        "app_temperature and on (instance) app_queue_depth",
        "app_temperature or app_queue_depth",
        "app_temperature > 0 or on (instance) app_queue_depth",
        "app_temperature unless on (instance) app_queue_depth",
        "app_requests_total unless app_requests_total{method=\"get\"}",
        "app_requests_total and ignoring (method) app_temperature > 1",
        "app_requests_total * on (instance) group_left (version) app_build_info",
        "app_build_info * on (instance) group_right (version) app_requests_total",
        "sum by (job) (app_requests_total) / ignoring (method) group_right app_requests_total",
        "app_requests_total / on (instance) group_left app_temperature",
        "app_temperature / on (job) group_left sum by (job) (app_temperature)",
        "app_requests_total / app_requests_total",
        "app_temperature + on () group_left sum(app_queue_depth)",
        "(app_temperature > 0) + 1",
        "app_temperature > bool app_temperature offset 5m",
        "app_temperature - app_temperature offset 1h",
        "-app_queue_depth ^ 2",
        "2 ^ 3 ^ 2",
        "app_queue_depth % -3",
        "app_temperature / 0",
        "app_temperature{instance=\"a:80\"} / on () group_left app_queue_depth{instance=\"e:90\"}",
        "app_requests_total == on (job, instance) group_left app_temperature",
    ] {
        q.push(e.to_string());
    }
}

fn modifiers(q: &mut Vec<String>) {
    let at_s = (T0_MS + 3_000_000) / 1000;
    let at_half = format!("{}.5", (T0_MS + 5_000_000) / 1000);
    for m in [
        "offset 10m".to_string(),
        "offset -5m".to_string(),
        "offset 1h".to_string(),
        "@ start()".to_string(),
        "@ end()".to_string(),
        format!("@ {at_s}"),
        format!("@ {at_half}"),
        format!("@ {at_s} offset 5m"),
    ] {
        q.push(format!("app_temperature {m}"));
        q.push(format!("rate(app_requests_total[5m] {m})"));
        q.push(format!("max_over_time(app_queue_depth[17m] {m})"));
        q.push(format!("sum(app_requests_total {m})"));
    }
    for e in [
        "max_over_time(rate(app_requests_total[1m])[17m:])",
        "max_over_time(rate(app_requests_total[5m])[1h:97s])",
        "avg_over_time(app_temperature[5m:15s])",
        "min_over_time(app_temperature[17m:1m])",
        "rate(app_requests_total[5m:1m])",
        "deriv(app_queue_depth[17m:])",
        "sum_over_time(app_temperature[1h:5m] offset 10m)",
        "last_over_time(app_temperature[5m:] @ end())",
        "count_over_time(app_queue_depth[17m:97s] @ start())",
        "max_over_time(sum(app_requests_total)[1h:7m])",
        "quantile_over_time(0.9, rate(app_requests_total[1m])[17m:30s])",
        "max_over_time(deriv(app_temperature[5m:1m])[1h:5m])",
        "changes(app_temperature[17m:])",
        "app_temperature[5m:1m]",
        "present_over_time(app_queue_depth[5m:])",
    ] {
        q.push(e.to_string());
    }
    for p in ["0", "0.25", "0.5", "0.9", "0.99", "1", "-0.1", "1.1"] {
        q.push(format!(
            "histogram_quantile({p}, rate(app_latency_seconds_bucket[5m]))"
        ));
    }
    for e in [
        "histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket[17m])))",
        "histogram_quantile(0.5, sum by (job, le) (increase(app_latency_seconds_bucket[1h])))",
        "histogram_quantile(0.75, app_latency_seconds_bucket)",
        "histogram_quantile(0.75, app_latency_seconds_bucket{le!=\"+Inf\"})",
        "histogram_quantile(0.5, rate(app_latency_seconds_bucket[1m]))",
        "rate(app_latency_seconds_sum[5m]) / rate(app_latency_seconds_count[5m])",
    ] {
        q.push(e.to_string());
    }
}
