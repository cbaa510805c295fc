//! promgate's PromQL engine against Prometheus 3.5 on the same data: several hundred
//! generated queries, each as instant queries at edges of the data and on and off its samples
//! and as range queries over several steps and spans, evaluated by the engine
//! over the Prometheus's raw data (remote read through the merged store) and by the
//! Prometheus itself. Both must give the same result type, the same series, the same
//! timestamps and values within a relative 1e-9; both failing counts as agreement.

// Helpers live beside this file; a crate root looks for modules next to itself.
#[path = "engine_vs_prometheus/compare.rs"]
mod compare;
#[path = "engine_vs_prometheus/data.rs"]
mod data;
#[path = "engine_vs_prometheus/harness.rs"]
mod harness;
#[path = "engine_vs_prometheus/queries.rs"]
mod queries;

use harness::{Steps, Subject, compare_all, instant_times, ranges};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};

#[test]
fn engine_answers_generated_queries_as_prometheus_does() {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let server =
        PrometheusServer::start(&bin, PrometheusOptions::default().data(data::openmetrics()))
            .expect("Prometheus with the backfilled data");
    let config = promgate::config::Config::parse(&format!(
        "[[backend]]\nname = \"prometheus\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
        server.url()
    ))
    .expect("valid config");
    let subject = Subject::over(config, server.url());
    compare_all(&subject).assert_agreement();
}

/// The experimental functions and aggregations, which Prometheus answers only with
/// `--enable-feature=promql-experimental-functions`: `limit_ratio` must keep exactly the
/// series Prometheus keeps (its sample is a hash of the labels); `limitk`, `sort_by_label`,
/// `mad_over_time` and `double_exponential_smoothing` the same answers.
#[test]
fn experimental_functions_answer_as_prometheus_does() {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let opts = PrometheusOptions {
        flags: vec!["--enable-feature=promql-experimental-functions".to_string()],
        ..PrometheusOptions::default()
    }
    .data(data::openmetrics());
    let server = PrometheusServer::start(&bin, opts).expect("Prometheus with the backfilled data");
    let config = promgate::config::Config::parse(&format!(
        "[[backend]]\nname = \"prometheus\"\nkind = \"prometheus\"\nurl = \"{}\"\n",
        server.url()
    ))
    .expect("valid config");
    let subject = Subject::over(config, server.url());
    let queries = [
        "limit_ratio(0.5, app_latency_seconds_bucket)",
        "limit_ratio(-0.5, app_latency_seconds_bucket)",
        "limit_ratio(0.1, app_latency_seconds_bucket)",
        "limit_ratio(-0.9, {__name__=~\"app_.*\"})",
        "limit_ratio by (job) (0.3, rate(app_requests_total[5m]))",
        "count(limit_ratio(0.2, app_latency_seconds_bucket) or limit_ratio(-0.8, app_latency_seconds_bucket))",
        "count(limit_ratio(0.5, app_latency_seconds_bucket) and limit_ratio(-0.5, app_latency_seconds_bucket))",
        "limit_ratio(time() % 17 / 17, app_temperature)",
        "limit_ratio(1.5, app_temperature)",
        "limit_ratio(-1, app_queue_depth)",
        "limit_ratio(0, app_temperature)",
        "limitk(2, app_requests_total)",
        "limitk by (job) (1, app_temperature)",
        "sort_by_label(app_temperature, \"instance\")",
        "sort_by_label_desc(app_requests_total, \"method\", \"instance\")",
        "mad_over_time(app_temperature[10m])",
        "double_exponential_smoothing(app_temperature[10m], 0.5, 0.5)",
        "double_exponential_smoothing(app_queue_depth[5m], 0.1, 0.9)",
    ];
    let mut mismatches = Vec::new();
    let (mut evaluations, mut with_data) = (0, 0);
    for query in queries {
        let instants = instant_times().into_iter().map(Steps::Instant);
        let ranged = ranges()
            .into_iter()
            .map(|(s, e, step)| Steps::Range(s, e, step));
        for steps in instants.chain(ranged) {
            let keep_order = matches!(steps, Steps::Instant(_)) && query.starts_with("sort");
            evaluations += 1;
            let theirs = subject.theirs(query, steps, keep_order);
            if theirs.as_ref().is_ok_and(|a| !a.is_empty()) {
                with_data += 1;
            }
            if let Some(d) = compare::diff(&subject.ours(query, steps, keep_order), &theirs) {
                mismatches.push(format!("{query}  [{steps:?}]\n    {d}"));
            }
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(
        with_data > evaluations / 2,
        "{with_data} of {evaluations} with data"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {evaluations} disagree",
        mismatches.len()
    );
}
