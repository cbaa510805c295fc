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

use harness::{Subject, compare_all};
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
