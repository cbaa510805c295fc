//! Faults between promgate and a backend, injected by a TCP proxy in front of a real
//! Prometheus: a slow, hung, resetting, truncating, babbling, 503-answering, trickling
//! backend, or something else answering in its place. Whatever it does, promgate answers
//! within the backend's timeout with the healthy group's data and a warning naming the
//! faulty backend, its breaker opens and then answers at once without asking it, it closes
//! again once the backend recovers, and nothing it started for the faulty backend
//! (connections, requests, tasks, memory) is left behind.
//!
//! Two replica groups: `dc1` asked directly, `dc2` through the proxy (or, for the twin
//! test, replica `b` of `dc1` through the proxy).

mod common;
#[path = "faults/fixture.rs"]
mod fixture;
#[path = "faults/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::{enc, get_json, wait_until};
use fixture::*;
use proxy::Fault;
use serde_json::Value;

/// What each fault does to dc2, and words its warning must carry (one of them: hyper words
/// a cut-off answer by where the cut fell).
fn faults() -> Vec<(Fault, &'static [&'static str])> {
    // Longer than the timeout, whatever the size of the answer.
    let drip = Fault::SlowDrip {
        chunk: 8,
        pause: BACKEND_TIMEOUT / 4,
    };
    vec![
        (Fault::Delay(BACKEND_TIMEOUT * 3), &["timed out"]),
        (Fault::Hang, &["timed out"]),
        (Fault::Reset, &["Connection reset by peer"]),
        (
            Fault::Truncate,
            &[
                "connection closed before message completed",
                "end of file before message length reached",
            ],
        ),
        (Fault::Garbage, &["invalid HTTP"]),
        (Fault::Http5xx, &["HTTP 503"]),
        (Fault::NotTheBackend, &["undecodable"]),
        (drip, &["timed out"]),
    ]
}

/// The errorType of a query that failed because of dc2 alone.
fn error_type(cause: &[&str]) -> &'static str {
    if cause == ["timed out"] {
        "timeout"
    } else {
        "unavailable"
    }
}

/// One fault from start to recovery: partial answers within the timeout bound naming dc2
/// and why, an open breaker that answers without asking dc2, a closed breaker and complete
/// answers once dc2 is back, and no connection or request left open.
fn exercise(f: &Fixture, fault: Fault, cause: &[&str]) {
    let when = format!("{fault:?}");
    let opened_before = f.dc2_status()["breaker"]["opened"].as_u64().unwrap();
    f.proxy.set(fault);

    // (a) Every query meets the fault: 200 within the bound, dc1's data, a warning naming dc2
    // and the cause.
    for (kind, path) in f.paths() {
        let (status, answer, took) = f.timed(&path);
        let what = format!("{when}, {kind:?} {path}");
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(
            took <= answer_bound(),
            "{what}: took {took:?}, more than the bound {:?}",
            answer_bound()
        );
        let warnings = warnings(&answer);
        eprintln!("{what}: {status} in {took:?}, warnings {warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("backend \"dc2\": ") && mentions(w, cause)),
            "{what}: no warning naming dc2 and {cause:?}: {warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("circuit breaker")),
            "{what}: the breaker opened before the fault was met {ROUND} times: {warnings:?}"
        );
        assert_dc1_only(f, kind, &path, &answer, &what);
    }
    // A query for dc2 alone has no healthy group to answer from: an error within the same
    // bound, naming dc2 and the cause (never the backend's broken answer relayed).
    let (status, answer, took) = f.timed(&f.dc2_alone());
    assert_eq!(status, 503, "{when}, dc2 alone: {answer}");
    assert!(took <= answer_bound(), "{when}, dc2 alone: took {took:?}");
    assert_eq!(
        answer["errorType"],
        error_type(cause),
        "{when}, dc2 alone: {answer}"
    );
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("backend \"dc2\": ") && mentions(e, cause)),
        "{when}, dc2 alone: {answer}"
    );

    // (b) That many failures in a row opened dc2's breaker.
    let status = f.dc2_status();
    let breaker = &status["breaker"];
    assert_eq!(breaker["state"], "open", "{when}: {status}");
    assert_eq!(
        breaker["opened"].as_u64().unwrap(),
        opened_before + 1,
        "{when}: {status}"
    );
    assert!(
        breaker["lastError"]
            .as_str()
            .is_some_and(|e| mentions(e, cause)),
        "{when}: {status}"
    );
    assert_eq!(status["up"], false, "{when}: {status}");
    assert_eq!(
        f.dc2_metric("promgate_backend_breaker_state"),
        2.0,
        "{when}"
    );
    let opened_at = Instant::now();

    // An open breaker answers at once, without sending dc2 anything.
    let sent = f.proxy.requests();
    for (kind, path) in f.paths() {
        let (status, answer, took) = f.timed(&path);
        let what = format!("{when}, breaker open, {kind:?}");
        assert_eq!(status, 200, "{what}: {answer}");
        let warnings = warnings(&answer);
        assert!(
            warnings.iter().any(|w| w.starts_with("backend \"dc2\": ")
                && w.contains("circuit breaker of backend dc2 is open")),
            "{what}: {warnings:?}"
        );
        assert!(
            took < BACKEND_TIMEOUT,
            "{what}: took {took:?}: waited for dc2"
        );
        assert_dc1_only(f, kind, &path, &answer, &what);
    }
    // A query for dc2 alone has no healthy group to answer from.
    let (status, answer, _) = f.timed(&f.dc2_alone());
    assert_eq!(status, 503, "{when}: {answer}");
    assert_eq!(answer["errorType"], "unavailable", "{when}: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("circuit breaker of backend dc2 is open")),
        "{when}: {answer}"
    );
    assert_eq!(
        f.proxy.requests(),
        sent,
        "{when}: requests reached dc2 through an open breaker"
    );
    assert!(
        opened_at.elapsed() < COOL_DOWN,
        "{when}: the open-breaker checks outlasted the cool-down"
    );

    // (c) dc2 recovers: after the cool-down a probe goes through, the breaker closes and
    // answers are complete again.
    f.proxy.set(Fault::Pass);
    std::thread::sleep(COOL_DOWN.saturating_sub(opened_at.elapsed()) + Duration::from_millis(200));
    f.assert_complete(&format!("{when}, recovered"));
    let status = f.dc2_status();
    assert_eq!(status["breaker"]["state"], "closed", "{when}: {status}");
    assert_eq!(status["up"], true, "{when}: {status}");
    assert_eq!(
        f.dc2_metric("promgate_backend_breaker_state"),
        0.0,
        "{when}"
    );

    // (d) Nothing left open: no request in flight to dc2, no more than the pool's idle
    // connections at the proxy.
    assert_eq!(
        f.dc2_metric("promgate_backend_inflight_requests"),
        0.0,
        "{when}: requests to dc2 still in flight"
    );
    assert_idle_connections(f, IDLE_CONNECTIONS, &when);
}

#[test]
fn each_fault_gives_partial_answers_opens_the_breaker_and_heals_without_leaks() {
    let f = fixture(Setup::default());
    f.assert_complete("before any fault");
    for (fault, cause) in faults() {
        exercise(&f, fault, cause);
    }
}

#[test]
fn a_backend_hung_from_the_start_is_a_warning_until_its_labels_are_learnt() {
    let f = fixture(Setup {
        initial: Fault::Hang,
        ..Setup::default()
    });
    // promgate asks dc2 for its version and its external labels at once, each call bounded
    // by the backend timeout; until it knows them, dc2 belongs to no group and is left out.
    let bound = answer_bound();
    for (kind, path) in f.paths() {
        let (status, answer, took) = f.timed(&path);
        let what = format!("hung from the start, {kind:?} {path}");
        eprintln!(
            "{what}: {status} in {took:?}, warnings {:?}",
            warnings(&answer)
        );
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(took <= bound, "{what}: took {took:?}, more than {bound:?}");
        assert!(
            warnings(&answer)
                .iter()
                .any(|w| w.starts_with("backend \"dc2\": ")
                    && w.contains("external labels unknown")
                    && w.contains("timed out")),
            "{what}: {answer}"
        );
        assert_dc1_only(&f, kind, &path, &answer, &what);
    }
    // The next attempt to learn them comes with a query after a pause (5 s): that query
    // waits for it, within the same bound.
    std::thread::sleep(LABEL_RETRY_PAUSE);
    let path = f.instant(Kind::Pushdown.query());
    let (status, answer, took) = f.timed(&path);
    eprintln!("hung from the start, after the pause: {status} in {took:?}, {answer}");
    assert_eq!(status, 200, "{answer}");
    assert!(
        took <= bound,
        "after the pause: took {took:?}, more than {bound:?}"
    );
    assert!(
        warnings(&answer)
            .iter()
            .any(|w| w.starts_with("backend \"dc2\": ")
                && w.contains("external labels unknown: timed out")),
        "{answer}"
    );
    assert_dc1_only(&f, Kind::Pushdown, &path, &answer, "after the pause");
    // Once dc2 answers, its labels are learnt again (after a pause between attempts) and
    // answers are complete.
    f.proxy.set(Fault::Pass);
    wait_until(Duration::from_secs(15), || {
        let (status, answer) = f.gateway.get_json(&f.instant(Kind::Pushdown.query()));
        status == 200 && answer.get("warnings").is_none()
    });
    f.assert_complete("dc2 answering again");
    assert_idle_connections(&f, IDLE_CONNECTIONS, "hung from the start");
}

#[test]
fn a_faulty_replica_is_covered_by_its_twin_without_a_warning() {
    let f = fixture(Setup {
        pair: true,
        ..Setup::default()
    });
    // One group: every query goes to it as it is; a replica that fails hands over to its
    // twin at once, one that does not answer after hedge_after gets its twin asked beside
    // it (instant queries), and range queries ask both and wait for the slower one a grace
    // period at most.
    let queries: Vec<String> = KINDS
        .iter()
        .flat_map(|k| [f.instant(k.query()), f.range(k.query())])
        .collect();
    let expected: Vec<Value> = queries
        .iter()
        .map(|path| get_json(&format!("{}{path}", f.dc1.url())).1["data"].clone())
        .collect();
    for (fault, _) in faults() {
        let asked = f.proxy.requests();
        f.proxy.set(fault);
        for (path, expected) in queries.iter().zip(&expected) {
            let (status, answer, took) = f.timed(path);
            let what = format!("replica b {fault:?}, {path}");
            assert_eq!(status, 200, "{what}: {answer}");
            assert!(answer.get("warnings").is_none(), "{what}: {answer}");
            assert!(
                took <= answer_bound(),
                "{what}: took {took:?}, more than {:?}",
                answer_bound()
            );
            // promgate adds the group's label, cluster="dc1"; the rest is replica a's answer.
            let mut data = answer["data"].clone();
            for series in data["result"].as_array_mut().unwrap() {
                if let Some(metric) = series["metric"].as_object_mut() {
                    metric.remove("cluster");
                }
            }
            assert_eq!(&data, expected, "{what}: not replica a's answer");
        }
        assert!(
            f.proxy.requests() > asked,
            "replica b {fault:?}: never asked, the test proves nothing"
        );
        // Back to health before the next fault, so that b is asked first again.
        f.proxy.set(Fault::Pass);
        wait_until(COOL_DOWN * 2, || {
            // Only a request to b shows that it is back: range queries ask both replicas.
            f.gateway.get_json(&queries[1]);
            f.backend_status("dc1-b")["up"] == true
        });
    }
    assert_idle_connections(&f, IDLE_CONNECTIONS, "replica faults over");
}

#[test]
fn metadata_and_strict_queries_meet_each_fault_within_the_bound() {
    let f = fixture(Setup {
        // No breaker: every request meets the fault.
        breaker: "consecutive_failures = 0\nfailure_ratio = 2.0".to_string(),
        ..Setup::default()
    });
    let (start, end) = (f.end - 1800, f.end);
    let metadata = [
        format!("/api/v1/labels?start={start}&end={end}"),
        format!("/api/v1/label/instance/values?start={start}&end={end}"),
        format!(
            "/api/v1/series?match[]={}&start={start}&end={end}",
            enc("demo_temperature_celsius")
        ),
    ];
    for (fault, cause) in faults() {
        f.proxy.set(fault);
        for path in &metadata {
            let (status, answer, took) = f.timed(path);
            let what = format!("{fault:?}, {path}");
            eprintln!(
                "{what}: {status} in {took:?}, warnings {:?}",
                warnings(&answer)
            );
            assert_eq!(status, 200, "{what}: {answer}");
            assert!(took <= answer_bound(), "{what}: took {took:?}");
            assert!(
                warnings(&answer)
                    .iter()
                    .any(|w| w.starts_with("backend \"dc2\": ") && mentions(w, cause)),
                "{what}: {answer}"
            );
            assert!(
                !answer["data"].as_array().unwrap().is_empty(),
                "{what}: dc1's part is missing: {answer}"
            );
        }
        // Without partial responses the failure is the client's answer.
        for (kind, path) in f.paths() {
            let (status, answer, took) = f.timed(&format!("{path}&partial_response=false"));
            let what = format!("{fault:?}, strict {kind:?}");
            assert_eq!(status, 503, "{what}: {answer}");
            assert_eq!(answer["errorType"], error_type(cause), "{what}: {answer}");
            assert!(took <= answer_bound(), "{what}: took {took:?}");
            assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("backend \"dc2\": ") && mentions(e, cause)),
                "{what}: {answer}"
            );
        }
    }
    f.proxy.set(Fault::Pass);
    f.assert_complete("after the faults");
}

#[test]
fn a_probe_into_a_backend_still_failing_opens_the_breaker_again() {
    let f = fixture(Setup::default());
    f.proxy.set(Fault::Reset);
    let path = f.instant(Kind::Pushdown.query());
    for _ in 0..ROUND {
        assert_eq!(f.timed(&path).0, 200);
    }
    let status = f.dc2_status();
    assert_eq!(status["breaker"]["state"], "open", "{status}");
    let opened = status["breaker"]["opened"].as_u64().unwrap();
    std::thread::sleep(COOL_DOWN + Duration::from_millis(200));

    // After the cool-down one request goes through as a probe (with its retry), fails, and
    // the breaker opens again at once.
    let sent = f.proxy.requests();
    let (status, answer, took) = f.timed(&path);
    assert_eq!(status, 200, "{answer}");
    assert!(took <= answer_bound(), "took {took:?}");
    let warnings = warnings(&answer);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("backend \"dc2\": ") && w.contains("Connection reset by peer")),
        "the probe's own failure: {warnings:?}"
    );
    assert_eq!(
        f.proxy.requests() - sent,
        u64::from(1 + RETRIES),
        "one probe, retried as any request"
    );
    let status = f.dc2_status();
    assert_eq!(status["breaker"]["state"], "open", "{status}");
    assert_eq!(status["breaker"]["opened"], opened + 1, "{status}");

    // Open again: nothing reaches dc2.
    let sent = f.proxy.requests();
    let (status, answer, _) = f.timed(&path);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["warnings"]
            .to_string()
            .contains("circuit breaker of backend dc2 is open"),
        "{answer}"
    );
    assert_eq!(f.proxy.requests(), sent);
}

#[test]
fn a_backend_slower_than_usual_but_within_its_timeout_is_no_failure() {
    let f = fixture(Setup::default());
    f.assert_complete("before the delay");
    f.proxy.set(Fault::Delay(BACKEND_TIMEOUT / 4));
    // More rounds than the breaker tolerates failures: it would open if these counted.
    for round in 0..2 {
        f.assert_complete(&format!("delayed, round {round}"));
    }
    let status = f.dc2_status();
    assert_eq!(status["breaker"]["state"], "closed", "{status}");
    assert_eq!(status["breaker"]["consecutiveFailures"], 0, "{status}");
    assert_eq!(status["up"], true, "{status}");
}

#[test]
fn repeated_faults_leave_no_connections_requests_tasks_or_memory_behind() {
    let f = fixture(Setup {
        // No breaker: every query meets the fault.
        breaker: "consecutive_failures = 0\nfailure_ratio = 2.0".to_string(),
        // promgate in a process of its own, so that its memory is measured alone.
        child: true,
        ..Setup::default()
    });
    const QUERIES: usize = 50;
    const CLIENTS: usize = 5;
    let paths = f.paths();
    // Runs the queries meeting `fault`; returns the most requests to dc2 seen in flight.
    let run = |fault: Fault| {
        f.proxy.set(fault);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let most_in_flight = std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let mut most: f64 = 0.0;
                while done.load(std::sync::atomic::Ordering::SeqCst) < CLIENTS {
                    most = most.max(f.dc2_metric("promgate_backend_inflight_requests"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                most
            });
            for _ in 0..CLIENTS {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i >= QUERIES {
                            break;
                        }
                        let (kind, path) = &paths[i % paths.len()];
                        let (status, answer, took) = f.timed(path);
                        assert_eq!(status, 200, "{fault:?}, {kind:?}: {answer}");
                        // Five clients at once on a busy machine: twice the bound.
                        assert!(
                            took <= answer_bound() * 2,
                            "{fault:?}, {kind:?}: took {took:?}"
                        );
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            sampler.join().unwrap()
        });
        f.proxy.set(Fault::Pass);
        most_in_flight
    };
    // Warm up: connections pooled, labels discovered, caches filled.
    run(Fault::Pass);
    f.assert_complete("warmed up");
    let tasks_before = f.gateway.metric_value("promgate_runtime_alive_tasks ");
    assert!(tasks_before > 0.0, "no task gauge on /metrics");
    let resident_before = f.gateway.resident_bytes();

    for (fault, cause) in faults() {
        let most_in_flight = run(fault);
        let when = format!("after {QUERIES} queries meeting {fault:?}");
        if cause == ["timed out"] {
            // Requests wait a second each: the gauge must have shown them.
            assert!(
                most_in_flight >= 1.0,
                "{when}: the in-flight gauge never showed a request to dc2"
            );
        }
        let until = Instant::now() + BACKEND_TIMEOUT * 4;
        while f.dc2_metric("promgate_backend_inflight_requests") > 0.0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            f.dc2_metric("promgate_backend_inflight_requests"),
            0.0,
            "{when}: requests to dc2 still in flight"
        );
        // Each client's request may have left one kept-alive connection in the pool.
        assert_idle_connections(&f, CLIENTS, &when);
        // The pooled connections to both backends may have grown to one per client.
        let tasks = f.gateway.metric_value("promgate_runtime_alive_tasks ");
        eprintln!(
            "{when}: resident {} KiB (before {} KiB), {tasks} tasks (before {tasks_before}), \
             {} connections open at the proxy, at most {most_in_flight} requests in flight",
            f.gateway.resident_bytes() >> 10,
            resident_before >> 10,
            f.proxy.open_connections()
        );
        assert!(
            tasks <= tasks_before + 2.0 * CLIENTS as f64,
            "{when}: {tasks} tasks alive, {tasks_before} before"
        );
    }
    f.assert_complete("after every fault");
    // A generous bound (allocator arenas and caches settle at their own pace); a leak of
    // the answers or connections of 350 failed requests would still show.
    let grown = f.gateway.resident_bytes().saturating_sub(resident_before);
    assert!(
        grown <= 64 << 20,
        "resident memory grew by {} MiB",
        grown >> 20
    );
}
