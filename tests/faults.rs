//! Faults between promgate and a backend, injected by a TCP proxy in front of a real
//! Prometheus: a slow, hung, resetting, truncating, babbling, 503-answering, trickling
//! backend, or something else answering in its place. Whatever it does, promgate answers within the backend's timeout with the healthy
//! group's data and a warning naming the faulty backend, its breaker opens and then answers
//! at once without asking it, it closes again once the backend recovers, and nothing it
//! started for the faulty backend (connections, requests, tasks, memory) is left behind.
//!
//! Two replica groups: `dc1` asked directly, `dc2` through the proxy.

mod common;
#[path = "faults/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::{Gateway, PromgateProcess, enc, get_json, http_get, wait_until};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use proxy::{Fault, FaultProxy};
use serde_json::Value;

/// Each backend's `timeout`. The timeout layer wraps the retry layer, so it bounds all the
/// attempts of one call together.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(1);
/// `retries` of each backend: a broken connection or a 503 is tried once more.
const RETRIES: u32 = 1;
/// `query.timeout`: far above the backend timeout, so an answer bounded by the latter shows
/// that the backend timeout did the bounding.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// `query.hedge_after`: an instant query's replica that has not answered by then gets its
/// twin asked beside it.
const HEDGE_AFTER: Duration = Duration::from_millis(500);
/// `breaker.cool_down`.
const COOL_DOWN: Duration = Duration::from_secs(3);
/// Every query below sends each backend one request at a time (one partial aggregation,
/// one select, or the query itself).
const SEQUENTIAL_CALLS_PER_QUERY: u32 = 1;
/// What promgate itself, the other group and the test's own client may add, on a busy
/// two-core machine.
const SLACK: Duration = Duration::from_secs(2);
/// How long promgate waits before trying again to learn the labels of a backend it could
/// not reach.
const LABEL_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Proxied connections promgate may keep idle in its pool once the faults are over, when
/// queries come one at a time; a leak of one per failed request would pass it within a few
/// queries.
const IDLE_CONNECTIONS: usize = 4;

/// How long any query may take while `dc2` misbehaves.
fn answer_bound() -> Duration {
    BACKEND_TIMEOUT * SEQUENTIAL_CALLS_PER_QUERY + SLACK
}

/// promgate, in this process or as a child process of its own.
enum Promgate {
    InProcess(Gateway),
    Child(PromgateProcess),
}

impl Promgate {
    fn url(&self, path: &str) -> String {
        match self {
            Promgate::InProcess(g) => g.url(path),
            Promgate::Child(p) => format!("{}{path}", p.base),
        }
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        get_json(&self.url(path))
    }

    /// The value of the /metrics sample whose line starts with `line_prefix`, 0 if absent.
    fn metric_value(&self, line_prefix: &str) -> f64 {
        http_get(&self.url("/metrics"))
            .ok()
            .and_then(|r| {
                r.text()
                    .lines()
                    .find(|l| l.starts_with(line_prefix))
                    .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0.0)
    }

    /// Resident memory of the child process, from /proc/PID/statm.
    fn resident_bytes(&self) -> u64 {
        let Promgate::Child(p) = self else {
            panic!("promgate shares this process: its memory is not its own")
        };
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", p.pid())).unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
}

struct Fixture {
    gateway: Promgate,
    proxy: FaultProxy,
    dc1: PrometheusServer,
    _dc2: PrometheusServer,
    _dir: tempfile::TempDir,
    /// Unix seconds of the last sample.
    end: i64,
}

/// How to set up a [`Fixture`].
struct Setup {
    /// The TOML of each backend's `[backend.breaker]`.
    breaker: String,
    /// promgate as a child process (else in this one).
    child: bool,
    /// What the proxy does when promgate starts.
    initial: Fault,
    /// The proxied server is replica `b` of `dc1` (backend `dc1-b`, listed first so that it
    /// is asked first), not group `dc2`.
    pair: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            breaker: breaker_config(),
            child: false,
            initial: Fault::Pass,
            pair: false,
        }
    }
}

/// Two Prometheus servers with an hour of synthetic data each, the second behind the proxy.
fn fixture(setup: Setup) -> Fixture {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let end_ms = promgate::time::now_ms() - 10 * 60_000;
    let spec = SynthSpec::hours_until(end_ms, 1);
    let start = |labels: &[(&str, &str)]| {
        PrometheusServer::start(
            &bin,
            PrometheusOptions::default()
                .labels(labels)
                .data(openmetrics(&spec)),
        )
        .unwrap()
    };
    let dc1 = start(&[("cluster", "dc1"), ("replica", "a")]);
    let dc2 = if setup.pair {
        start(&[("cluster", "dc1"), ("replica", "b")])
    } else {
        start(&[("cluster", "dc2"), ("replica", "a")])
    };
    let upstream = format!("127.0.0.1:{}", dc2.port()).parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    proxy.set(setup.initial);
    let backends = if setup.pair {
        [("dc1-b", proxy.url()), ("dc1-a", dc1.url())]
    } else {
        [("dc1", dc1.url()), ("dc2", proxy.url())]
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("promgate.toml");
    let mut text = format!(
        "[query]\nreplica_labels = [\"replica\"]\ntimeout = \"{}s\"\nhedge_after = \"{}ms\"\n",
        QUERY_TIMEOUT.as_secs(),
        HEDGE_AFTER.as_millis()
    );
    for (name, url) in backends {
        text.push_str(&format!(
            "[[backend]]\nname = \"{name}\"\nkind = \"prometheus\"\nurl = \"{url}\"\n\
             timeout = \"{}ms\"\nretries = {RETRIES}\nretry_backoff = \"50ms\"\n\
             [backend.breaker]\n{}\n",
            BACKEND_TIMEOUT.as_millis(),
            setup.breaker
        ));
    }
    std::fs::write(&config, text).unwrap();
    let gateway = if setup.child {
        Promgate::Child(PromgateProcess::start(&config))
    } else {
        Promgate::InProcess(Gateway::start(&config))
    };
    Fixture {
        gateway,
        proxy,
        dc1,
        _dc2: dc2,
        _dir: dir,
        end: spec.end_ms / 1000,
    }
}

/// The ways a query reaches the backends.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `sum` across groups: a partial sum from each group, combined by promgate.
    Pushdown,
    /// `quantile` across groups: promgate's engine over remote reads of every backend.
    Engine,
    /// A plain selector: each group's answer, concatenated.
    PerGroup,
}

const KINDS: [Kind; 3] = [Kind::Pushdown, Kind::Engine, Kind::PerGroup];

impl Kind {
    fn query(self) -> &'static str {
        match self {
            Kind::Pushdown => "sum(demo_temperature_celsius)",
            Kind::Engine => "quantile(0.5, demo_temperature_celsius)",
            Kind::PerGroup => "demo_temperature_celsius",
        }
    }

    /// How the answer was computed, as promgate_query_paths counts it.
    fn path(self) -> &'static str {
        match self {
            Kind::Pushdown => "pushdown",
            Kind::Engine => "engine",
            Kind::PerGroup => "per_group",
        }
    }
}

impl Fixture {
    fn instant(&self, query: &str) -> String {
        format!("/api/v1/query?query={}&time={}", enc(query), self.end - 600)
    }

    fn range(&self, query: &str) -> String {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            enc(query),
            self.end - 1800,
            self.end
        )
    }

    /// A query only dc2 can answer (relayed as dc2 answers it, when it does).
    fn dc2_alone(&self) -> String {
        self.instant("demo_temperature_celsius{cluster=\"dc2\"}")
    }

    /// Both endpoints for every kind of query.
    fn paths(&self) -> Vec<(Kind, String)> {
        KINDS
            .iter()
            .flat_map(|&k| [(k, self.instant(k.query())), (k, self.range(k.query()))])
            .collect()
    }

    /// The answer to `path` and how long it took.
    fn timed(&self, path: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, answer) = self.gateway.get_json(path);
        (status, answer, started.elapsed())
    }

    /// `dc1`'s own answer to `path` (what promgate's answer holds while `dc2` is out).
    fn dc1_alone(&self, kind: Kind, path: &str) -> Value {
        let (status, answer) = get_json(&format!("{}{path}", self.dc1.url()));
        assert_eq!(status, 200, "{kind:?} from dc1: {answer}");
        answer
    }

    fn dc2_status(&self) -> Value {
        self.backend_status("dc2")
    }

    fn backend_status(&self, name: &str) -> Value {
        let (status, backends) = self.gateway.get_json("/api/v1/status/backends");
        assert_eq!(status, 200, "{backends}");
        backends["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing in {backends}"))
    }

    fn dc2_metric(&self, name: &str) -> f64 {
        self.gateway
            .metric_value(&format!("{name}{{backend=\"dc2\"}} "))
    }

    /// Queries answered the way `path` names, as promgate_query_paths counts them.
    fn query_paths(&self, path: &str) -> f64 {
        self.gateway
            .metric_value(&format!("promgate_query_paths_total{{path=\"{path}\"}} "))
    }

    /// Every kind of query answers completely, with no warning, the way its kind says.
    fn assert_complete(&self, when: &str) {
        for (kind, path) in self.paths() {
            let before = self.query_paths(kind.path());
            let (status, answer, _) = self.timed(&path);
            assert_eq!(status, 200, "{when}, {kind:?}: {answer}");
            assert!(
                answer.get("warnings").is_none(),
                "{when}, {kind:?}: {answer}"
            );
            let result = answer["data"]["result"].as_array().unwrap();
            let expected = match kind {
                Kind::Pushdown | Kind::Engine => 1,
                Kind::PerGroup => 8,
            };
            assert_eq!(result.len(), expected, "{when}, {kind:?}: {answer}");
            if let Kind::PerGroup = kind {
                for cluster in ["dc1", "dc2"] {
                    assert_eq!(
                        result
                            .iter()
                            .filter(|s| s["metric"]["cluster"] == cluster)
                            .count(),
                        4,
                        "{when}: {answer}"
                    );
                }
            }
            assert_eq!(
                self.query_paths(kind.path()),
                before + 1.0,
                "{when}: {kind:?} did not take the {} path",
                kind.path()
            );
        }
        let relayed = self.query_paths("passthrough");
        let (status, answer, _) = self.timed(&self.dc2_alone());
        assert_eq!(status, 200, "{when}, dc2 alone: {answer}");
        assert!(answer.get("warnings").is_none(), "{when}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 4, "{when}, dc2 alone: {answer}");
        assert_eq!(
            self.query_paths("passthrough"),
            relayed + 1.0,
            "{when}: dc2's answer was not relayed"
        );
    }
}

/// `answer` is dc1's data only: the sum and quantile of dc1's four series, or those series.
fn assert_dc1_only(f: &Fixture, kind: Kind, path: &str, answer: &Value, when: &str) {
    let result = answer["data"]["result"].as_array().unwrap();
    match kind {
        Kind::Pushdown | Kind::Engine => {
            let alone = f.dc1_alone(kind, path);
            let alone = alone["data"]["result"].as_array().unwrap();
            assert_eq!(result.len(), 1, "{when}: {answer}");
            let points = |s: &Value| match s.get("values") {
                Some(v) => v.clone(),
                None => s["value"].clone(),
            };
            assert_eq!(
                points(&result[0]),
                points(&alone[0]),
                "{when}: {kind:?} is not dc1's alone"
            );
        }
        Kind::PerGroup => {
            assert_eq!(result.len(), 4, "{when}: {answer}");
            assert!(
                result.iter().all(|s| s["metric"]["cluster"] == "dc1"),
                "{when}: {answer}"
            );
        }
    }
}

fn warnings(answer: &Value) -> Vec<String> {
    answer["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Queries of one round of [`exercise`] that reach dc2: every kind at both endpoints, and
/// one for dc2 alone.
const ROUND: usize = KINDS.len() * 2 + 1;

/// Open the breaker after as many failures in a row as there are queries in one round, so
/// that every query of the round meets the fault itself; no failure-ratio trigger.
fn breaker_config() -> String {
    let queries = ROUND;
    format!(
        "consecutive_failures = {queries}\nfailure_ratio = 2.0\ncool_down = \"{}s\"\n\
         double_cool_down = false\nhalf_open_probes = 1",
        COOL_DOWN.as_secs()
    )
}

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

fn mentions(text: &str, any_of: &[&str]) -> bool {
    any_of.iter().any(|words| text.contains(words))
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

/// The proxy's open connections fall to what an idle pool keeps, well before the pool's
/// own idle timeout (90 s) could have closed leaked ones.
fn assert_idle_connections(f: &Fixture, idle: usize, when: &str) {
    let until = Instant::now() + BACKEND_TIMEOUT * 4;
    while f.proxy.open_connections() > idle && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        f.proxy.open_connections() <= idle,
        "{when}: {} connections to dc2 still open ({} accepted)",
        f.proxy.open_connections(),
        f.proxy.accepted()
    );
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
    let run = |fault: Fault| {
        f.proxy.set(fault);
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
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
                        // Five clients share the backend's queue: allow each its turn.
                        assert!(
                            took <= answer_bound() * 2,
                            "{fault:?}, {kind:?}: took {took:?}"
                        );
                    }
                });
            }
        });
        f.proxy.set(Fault::Pass);
    };
    // Warm up: connections pooled, labels discovered, caches filled.
    run(Fault::Pass);
    f.assert_complete("warmed up");
    let tasks_before = f.gateway.metric_value("promgate_runtime_alive_tasks ");
    assert!(tasks_before > 0.0, "no task gauge on /metrics");
    let resident_before = f.gateway.resident_bytes();

    for (fault, _) in faults() {
        run(fault);
        let when = format!("after {QUERIES} queries meeting {fault:?}");
        wait_until(BACKEND_TIMEOUT * 4, || {
            f.dc2_metric("promgate_backend_inflight_requests") == 0.0
        });
        // Each client's request may have left one kept-alive connection in the pool.
        assert_idle_connections(&f, CLIENTS, &when);
        // The pooled connections to both backends may have grown to one per client.
        let tasks = f.gateway.metric_value("promgate_runtime_alive_tasks ");
        eprintln!(
            "{when}: resident {} KiB (before {} KiB), {tasks} tasks (before {tasks_before}), {} connections open at the proxy",
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
