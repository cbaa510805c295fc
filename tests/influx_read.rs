//! Remote read from a real InfluxDB 1.6 that Prometheus remote-writes into, and the quirks
//! promgate has to work around when it reads from one: SAMPLES whatever is asked, one query
//! per request, and unanchored regexes.

mod common;

use std::time::Duration;

use common::wait_until;
use promgate::backend::client::http_client;
use promgate::realenv::{InfluxServer, PrometheusBinary, PrometheusOptions, PrometheusServer};
use promgate::storage::remote::{
    LabelMatcher, MatcherType, Query, ReadRequest, RemoteReadClient, RemoteReadConfig,
    RemoteReadError, RemoteSeries,
};

fn query(matchers: Vec<LabelMatcher>) -> Query {
    let now = promgate::time::now_ms();
    Query {
        start_timestamp_ms: now - 600_000,
        end_timestamp_ms: now + 60_000,
        matchers,
        hints: None,
    }
}

fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher::new(MatcherType::Eq, name, value)
}

#[test]
fn influxdb_answers_remote_read_with_its_quirks() {
    let influx = InfluxServer::start("prometheus").expect("InfluxDB (bash .ci/run installs it)");
    let bin = PrometheusBinary::any().expect("Prometheus (bash .ci/run installs it)");
    let mut options = PrometheusOptions::default().scrape_self(Duration::from_secs(1));
    options.extra_config = format!(
        "remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 1s}}\n",
        influx.write_url("prometheus")
    );
    let _prometheus = PrometheusServer::start(&bin, options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Asking for streamed chunks first, as for Prometheus: InfluxDB answers SAMPLES anyway.
    let client = RemoteReadClient::with_url(
        http_client(),
        influx.read_url("prometheus"),
        RemoteReadConfig::default(),
    );
    let read = |queries: Vec<Query>| -> Result<Vec<Vec<RemoteSeries>>, RemoteReadError> {
        rt.block_on(client.read(&ReadRequest {
            queries,
            accepted_response_types: vec![1, 0],
        }))
    };

    let mut up = Vec::new();
    wait_until(Duration::from_secs(30), || {
        up = read(vec![query(vec![eq("__name__", "up")])])
            .map(|mut r| r.remove(0))
            .unwrap_or_default();
        !up.is_empty()
    });
    let series = &up[0];
    assert_eq!(series.label("__name__"), Some("up"));
    assert_eq!(series.label("job"), Some("prometheus"));
    let samples = series.all_samples().unwrap();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|(_, v)| *v == 1.0), "{samples:?}");

    // Two queries in one request: refused.
    let two = read(vec![
        query(vec![eq("__name__", "up")]),
        query(vec![eq("__name__", "up")]),
    ]);
    assert!(
        matches!(two, Err(RemoteReadError::Http { status: 400, .. })),
        "{:?}",
        two.map(|r| r.len())
    );
    // Without a metric name matcher it answers (every series of the job).
    let nameless = read(vec![query(vec![eq("job", "prometheus")])]).unwrap();
    assert!(nameless[0].len() > 1, "{} series", nameless[0].len());
    // Regexes are not anchored: "p" matches "up" (Prometheus would match nothing).
    let unanchored = read(vec![query(vec![LabelMatcher::new(
        MatcherType::Re,
        "__name__",
        "p",
    )])])
    .unwrap();
    assert!(
        unanchored[0]
            .iter()
            .any(|s| s.label("__name__") == Some("up")),
        "{} series",
        unanchored[0].len()
    );
}
