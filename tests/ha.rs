//! HA pairs: a gap in one replica is filled from its twin, a dead replica is covered by its
//! twin without a warning, and a dead group gives a partial answer with a warning (or an
//! error when partial responses are off). Real Prometheus servers, killed for real.

mod common;

use common::{Gateway, ReadMap, enc, get_json};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use promgate::storage::remote::{LabelMatcher, MatcherType, Query, RemoteReadConfig};
use serde_json::Value;

struct Fixture {
    gateway: Gateway,
    /// Replica a of eu1: complete data.
    eu1_a: PrometheusServer,
    /// Replica b of eu1: an hour missing, scrapes 5 s later; listed first, so it is asked first.
    eu1_b: PrometheusServer,
    us1: PrometheusServer,
    _dir: tempfile::TempDir,
    end: i64,
    gap: (i64, i64),
}

fn fixture() -> Fixture {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let end_ms = promgate::time::now_ms() - 10 * 60_000;
    let spec = SynthSpec::hours_until(end_ms, 4);
    let gap = (spec.end_ms - 3 * 3_600_000, spec.end_ms - 2 * 3_600_000);
    let start = |labels: &[(&str, &str)], spec: &SynthSpec| {
        PrometheusServer::start(
            &bin,
            PrometheusOptions::default()
                .labels(labels)
                .data(openmetrics(spec)),
        )
        .unwrap()
    };
    let eu1_a = start(&[("cluster", "eu1"), ("replica", "a")], &spec);
    let eu1_b = start(
        &[("cluster", "eu1"), ("replica", "b")],
        &spec.clone().offset(5_000).gap(gap.0, gap.1),
    );
    let us1 = start(&[("cluster", "us1"), ("replica", "a")], &spec);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    let mut text = String::from("[query]\nreplica_labels = [\"replica\"]\n");
    for (name, server) in [("eu1-b", &eu1_b), ("eu1-a", &eu1_a), ("us1-a", &us1)] {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{}\"\ntimeout = \"5s\"\n",
            server.url()
        ));
    }
    std::fs::write(&config, text).unwrap();
    Fixture {
        gateway: Gateway::start(&config),
        eu1_a,
        eu1_b,
        us1,
        _dir: dir,
        end: spec.end_ms / 1000,
        gap: (gap.0 / 1000, gap.1 / 1000),
    }
}

/// One backend's entry of /api/v1/status/backends.
fn backend_status(gateway: &Gateway, name: &str) -> Value {
    let (status, backends) = gateway.get_json("/api/v1/status/backends");
    assert_eq!(status, 200, "{backends}");
    backends["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing in {backends}"))
}

fn series_of(answer: &Value) -> &Vec<Value> {
    answer["data"]["result"].as_array().expect("a result list")
}

fn timestamps(series: &Value) -> Vec<i64> {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap() as i64)
        .collect()
}

#[test]
fn range_query_over_a_replica_gap_has_no_gap() {
    let f = fixture();
    let (start, end) = (f.end - 4 * 3600 + 600, f.end);
    let q = "demo_temperature_celsius{cluster=\"eu1\"}";
    let path = format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step=60",
        enc(q)
    );
    // The gappy replica alone has the hole (the test would prove nothing otherwise).
    let (_, direct_b) = get_json(&format!(
        "{}/api/v1/query_range?query=demo_temperature_celsius&start={start}&end={end}&step=60",
        f.eu1_b.url()
    ));
    let expected_steps = ((end - start) / 60 + 1) as usize;
    let b_steps = timestamps(&series_of(&direct_b)[0]).len();
    assert!(
        b_steps < expected_steps - 50,
        "replica b has {b_steps} of {expected_steps}"
    );

    let (status, answer) = f.gateway.get_json(&path);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("warnings").is_none(), "{answer}");
    let (_, direct_a) = get_json(&format!(
        "{}/api/v1/query_range?query=demo_temperature_celsius&start={start}&end={end}&step=60",
        f.eu1_a.url()
    ));
    let ours = series_of(&answer);
    assert_eq!(ours.len(), 4);
    for (s, a) in ours.iter().zip(series_of(&direct_a)) {
        assert_eq!(s["metric"]["cluster"], "eu1");
        assert!(s["metric"].get("replica").is_none());
        assert_eq!(timestamps(s).len(), expected_steps, "{}", s["metric"]);
        // Inside the gap the points are replica a's.
        for (p, pa) in s["values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(a["values"].as_array().unwrap())
        {
            let t = p[0].as_f64().unwrap() as i64;
            if t > f.gap.0 + 300 && t < f.gap.1 {
                assert_eq!(p, pa, "at {t}");
            }
        }
    }
}

#[test]
fn dead_replica_is_covered_by_its_twin_and_dead_group_is_a_warning() {
    let mut f = fixture();
    let t = f.end - 600;
    let instant = format!("/api/v1/query?query=demo_temperature_celsius&time={t}");
    let range = format!(
        "/api/v1/query_range?query=demo_temperature_celsius&start={}&end={}&step=60",
        f.end - 3600,
        f.end
    );
    let (status, answer) = f.gateway.get_json(&instant);
    assert_eq!(status, 200);
    assert_eq!(series_of(&answer).len(), 8, "{answer}");

    // Replica b (asked first) dies: a answers, nothing to warn about.
    f.eu1_b.kill();
    for path in [&instant, &range] {
        let (status, answer) = f.gateway.get_json(path);
        assert_eq!(status, 200, "{answer}");
        assert!(answer.get("warnings").is_none(), "{path}: {answer}");
        assert_eq!(series_of(&answer).len(), 8, "{path}: {answer}");
    }

    // The status page says who is down and why.
    let b = backend_status(&f.gateway, "eu1-b");
    assert_eq!(b["up"], false, "{b}");
    assert!(
        b["lastError"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{b}"
    );
    assert_eq!(b["group"], serde_json::json!({"cluster": "eu1"}));
    assert_eq!(b["externalLabels"]["replica"], "b");
    let a = backend_status(&f.gateway, "eu1-a");
    assert_eq!(a["up"], true, "{a}");
    assert!(a["lastLatencySeconds"].as_f64().is_some(), "{a}");

    // Range queries keep asking both replicas: after five failures in a row eu1-b's breaker
    // opens and it is not asked any more, until a probe after the cool-down.
    for _ in 0..6 {
        let (status, answer) = f.gateway.get_json(&range);
        assert_eq!(status, 200, "{answer}");
        assert!(answer.get("warnings").is_none(), "{answer}");
    }
    let b = backend_status(&f.gateway, "eu1-b");
    assert_eq!(b["breaker"]["state"], "open", "{b}");
    assert!(b["breaker"]["rejections"].as_u64().unwrap() >= 1, "{b}");
    let metrics = common::http_get(&f.gateway.url("/metrics")).unwrap().text();
    assert!(
        metrics.contains("promgate_backend_breaker_state{backend=\"eu1-b\"} 2"),
        "{metrics}"
    );

    // The whole of eu1 dies: us1 answers, with a warning naming the dead backends.
    f.eu1_a.kill();
    for path in [&instant, &range] {
        let (status, answer) = f.gateway.get_json(path);
        assert_eq!(status, 200, "{answer}");
        let result = series_of(&answer);
        assert_eq!(result.len(), 4, "{answer}");
        assert!(result.iter().all(|s| s["metric"]["cluster"] == "us1"));
        let warnings = answer["warnings"].to_string();
        assert!(
            warnings.contains("eu1-a") && warnings.contains("eu1-b"),
            "{warnings}"
        );
    }

    // Without partial responses that is an error.
    let (status, answer) = f
        .gateway
        .get_json(&format!("{instant}&partial_response=false"));
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["errorType"], "unavailable");

    // A query that only concerns the live group has no warning at all.
    let (status, answer) = f.gateway.get_json(&format!(
        "/api/v1/query?query={}&time={t}",
        enc("demo_temperature_celsius{cluster=\"us1\"}")
    ));
    assert_eq!(status, 200);
    assert!(answer.get("warnings").is_none(), "{answer}");

    // Everything down: 503 unavailable.
    f.us1.kill();
    let (status, answer) = f.gateway.get_json(&instant);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["errorType"], "unavailable");
}

#[test]
fn hung_replica_delays_answers_boundedly() {
    let f = fixture();
    let instant = format!(
        "/api/v1/query?query=demo_temperature_celsius&time={}",
        f.end - 600
    );
    let range = format!(
        "/api/v1/query_range?query=demo_temperature_celsius&start={}&end={}&step=60",
        f.end - 3600,
        f.end
    );
    let timed = |path: &str| {
        let started = std::time::Instant::now();
        let answer = f.gateway.get_json(path);
        (answer, started.elapsed())
    };
    // eu1-b is asked first (configuration order) and hangs.
    f.eu1_b.suspend();
    // An instant query asks one replica; after query.hedge_after (2 s) its twin as well.
    let ((instant_status, instant_answer), instant_took) = timed(&instant);
    // The hung replica is asked after its twin from then on: no more waiting for it.
    let ((again_status, _), again_took) = timed(&instant);
    // A range query asks both; the hung one gets a bounded grace, not its 5 s timeout.
    let ((range_status, range_answer), range_took) = timed(&range);
    let b = backend_status(&f.gateway, "eu1-b");
    f.eu1_b.resume();

    assert_eq!(instant_status, 200, "{instant_answer}");
    assert_eq!(series_of(&instant_answer).len(), 8, "{instant_answer}");
    assert!(instant_answer.get("warnings").is_none(), "{instant_answer}");
    assert!(
        instant_took >= std::time::Duration::from_secs(2)
            && instant_took < std::time::Duration::from_secs(5),
        "took {instant_took:?}: expected the 2 s hedge, not the 5 s timeout"
    );
    assert_eq!(again_status, 200);
    assert!(
        again_took < std::time::Duration::from_secs(1),
        "took {again_took:?}: the hung replica was asked first again"
    );
    assert_eq!(range_status, 200, "{range_answer}");
    assert_eq!(series_of(&range_answer).len(), 8, "{range_answer}");
    assert!(range_answer.get("warnings").is_none(), "{range_answer}");
    assert!(
        range_took < std::time::Duration::from_secs(5),
        "took {range_took:?}: waited for the hung replica's timeout"
    );
    assert_eq!(b["up"], false, "{b}");
    assert!(
        b["lastError"].as_str().unwrap().contains("no answer after"),
        "{b}"
    );
}

/// Every series of a remote read of `url`'s /api/v1/read, the replica label left out.
fn remote_read(url: &str, matchers: Vec<LabelMatcher>, start: i64, end: i64) -> ReadMap {
    let query = Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
        hints: None,
    };
    common::remote_read(
        &format!("{url}/api/v1/read"),
        RemoteReadConfig::default(),
        &query,
    )
    .into_iter()
    .map(|(labels, samples)| {
        let labels = labels.into_iter().filter(|(k, _)| k != "replica").collect();
        (labels, samples)
    })
    .collect()
}

#[test]
fn remote_read_from_promgate_deduplicates_the_pair_across_a_gap() {
    let f = fixture();
    let (start, end) = ((f.end - 4 * 3600) * 1000, f.end * 1000);
    let name = LabelMatcher::new(MatcherType::Eq, "__name__", "demo_temperature_celsius");
    let eu1 = LabelMatcher::new(MatcherType::Eq, "cluster", "eu1");
    let ours = remote_read(
        &f.gateway.url(""),
        vec![name.clone(), eu1.clone()],
        start,
        end,
    );
    let a = remote_read(&f.eu1_a.url(), vec![name.clone()], start, end);
    let b = remote_read(&f.eu1_b.url(), vec![name], start, end);
    assert_eq!(ours.len(), 4);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>(),
        "one series per replicated series, replica label gone"
    );
    for (labels, merged) in &ours {
        let (a, b) = (&a[labels], &b[labels]);
        // The gappy replica alone misses an hour (the test would prove nothing otherwise).
        assert!(b.len() + 200 < a.len(), "b has {} of {}", b.len(), a.len());
        // Every sample is one a replica has, in time order, one per scrape, no hole.
        assert!(
            merged.iter().all(|s| a.contains(s) || b.contains(s)),
            "{labels:?}"
        );
        assert!(merged.windows(2).all(|w| w[0].0 < w[1].0));
        let widest = merged.windows(2).map(|w| w[1].0 - w[0].0).max();
        assert!(widest <= Some(30_000), "{labels:?}: widest step {widest:?}");
        assert!(
            merged.len().abs_diff(a.len()) <= 1,
            "{labels:?}: {} samples, the complete replica has {}",
            merged.len(),
            a.len()
        );
    }
}
