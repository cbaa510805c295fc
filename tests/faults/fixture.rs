//! The fault tests' setting: two real Prometheus servers, the second behind a
//! [`FaultProxy`], promgate in front of both, the queries sent and what their answers
//! must hold.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Gateway, PromgateProcess, enc, get_json, http_get};
use crate::proxy::{Fault, FaultProxy};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};

/// Each backend's `timeout`. The timeout layer wraps the retry layer, so it bounds all the
/// attempts of one call together.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(1);
/// `retries` of each backend: a broken connection or a 503 is tried once more.
pub const RETRIES: u32 = 1;
/// `query.timeout`: far above the backend timeout, so an answer bounded by the latter shows
/// that the backend timeout did the bounding.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// `query.hedge_after`: an instant query's replica that has not answered by then gets its
/// twin asked beside it.
pub const HEDGE_AFTER: Duration = Duration::from_millis(500);
/// `breaker.cool_down`.
pub const COOL_DOWN: Duration = Duration::from_secs(3);
/// Every query below sends each backend one request at a time (one partial aggregation,
/// one select, or the query itself).
pub const SEQUENTIAL_CALLS_PER_QUERY: u32 = 1;
/// What promgate itself, the other group and the test's own client may add, on a busy
/// two-core machine.
pub const SLACK: Duration = Duration::from_secs(2);
/// How long promgate waits before trying again to learn the labels of a backend it could
/// not reach.
pub const LABEL_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Proxied connections promgate may keep idle in its pool once the faults are over, when
/// queries come one at a time; a leak of one per failed request would pass it within a few
/// queries.
pub const IDLE_CONNECTIONS: usize = 4;

/// How long any query may take while `dc2` misbehaves.
pub fn answer_bound() -> Duration {
    BACKEND_TIMEOUT * SEQUENTIAL_CALLS_PER_QUERY + SLACK
}

/// promgate, in this process or as a child process of its own.
pub enum Promgate {
    InProcess(Gateway),
    Child(PromgateProcess),
}

impl Promgate {
    pub fn url(&self, path: &str) -> String {
        match self {
            Promgate::InProcess(g) => g.url(path),
            Promgate::Child(p) => format!("{}{path}", p.base),
        }
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        get_json(&self.url(path))
    }

    /// The value of the /metrics sample whose line starts with `line_prefix`, 0 if absent.
    pub fn metric_value(&self, line_prefix: &str) -> f64 {
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
    pub fn resident_bytes(&self) -> u64 {
        let Promgate::Child(p) = self else {
            panic!("promgate shares this process: its memory is not its own")
        };
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", p.pid())).unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
}

pub struct Fixture {
    pub gateway: Promgate,
    pub proxy: FaultProxy,
    pub dc1: PrometheusServer,
    _dc2: PrometheusServer,
    _dir: tempfile::TempDir,
    /// Unix seconds of the last sample.
    pub end: i64,
}

/// How to set up a [`Fixture`].
pub struct Setup {
    /// The TOML of each backend's `[backend.breaker]`.
    pub breaker: String,
    /// promgate as a child process (else in this one).
    pub child: bool,
    /// What the proxy does when promgate starts.
    pub initial: Fault,
    /// The proxied server is replica `b` of `dc1` (backend `dc1-b`, listed first so that it
    /// is asked first), not group `dc2`.
    pub pair: bool,
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
pub fn fixture(setup: Setup) -> Fixture {
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
pub enum Kind {
    /// `sum` across groups: a partial sum from each group, combined by promgate.
    Pushdown,
    /// `quantile` across groups: promgate's engine over remote reads of every backend.
    Engine,
    /// A plain selector: each group's answer, concatenated.
    PerGroup,
}

pub const KINDS: [Kind; 3] = [Kind::Pushdown, Kind::Engine, Kind::PerGroup];

impl Kind {
    pub fn query(self) -> &'static str {
        match self {
            Kind::Pushdown => "sum(demo_temperature_celsius)",
            Kind::Engine => "quantile(0.5, demo_temperature_celsius)",
            Kind::PerGroup => "demo_temperature_celsius",
        }
    }

    /// How the answer was computed, as promgate_query_paths counts it.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Pushdown => "pushdown",
            Kind::Engine => "engine",
            Kind::PerGroup => "per_group",
        }
    }
}

impl Fixture {
    pub fn instant(&self, query: &str) -> String {
        format!("/api/v1/query?query={}&time={}", enc(query), self.end - 600)
    }

    pub fn range(&self, query: &str) -> String {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            enc(query),
            self.end - 1800,
            self.end
        )
    }

    /// A query only dc2 can answer (relayed as dc2 answers it, when it does).
    pub fn dc2_alone(&self) -> String {
        self.instant("demo_temperature_celsius{cluster=\"dc2\"}")
    }

    /// Both endpoints for every kind of query.
    pub fn paths(&self) -> Vec<(Kind, String)> {
        KINDS
            .iter()
            .flat_map(|&k| [(k, self.instant(k.query())), (k, self.range(k.query()))])
            .collect()
    }

    /// The answer to `path` and how long it took.
    pub fn timed(&self, path: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, answer) = self.gateway.get_json(path);
        (status, answer, started.elapsed())
    }

    /// `dc1`'s own answer to `path` (what promgate's answer holds while `dc2` is out).
    pub fn dc1_alone(&self, kind: Kind, path: &str) -> Value {
        let (status, answer) = get_json(&format!("{}{path}", self.dc1.url()));
        assert_eq!(status, 200, "{kind:?} from dc1: {answer}");
        answer
    }

    pub fn dc2_status(&self) -> Value {
        self.backend_status("dc2")
    }

    pub fn backend_status(&self, name: &str) -> Value {
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

    pub fn dc2_metric(&self, name: &str) -> f64 {
        self.gateway
            .metric_value(&format!("{name}{{backend=\"dc2\"}} "))
    }

    /// Queries answered the way `path` names, as promgate_query_paths counts them.
    pub fn query_paths(&self, path: &str) -> f64 {
        self.gateway
            .metric_value(&format!("promgate_query_paths_total{{path=\"{path}\"}} "))
    }

    /// Every kind of query answers completely, with no warning, the way its kind says.
    pub fn assert_complete(&self, when: &str) {
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
pub fn assert_dc1_only(f: &Fixture, kind: Kind, path: &str, answer: &Value, when: &str) {
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

pub fn warnings(answer: &Value) -> Vec<String> {
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
pub const ROUND: usize = KINDS.len() * 2 + 1;

/// Open the breaker after as many failures in a row as there are queries in one round, so
/// that every query of the round meets the fault itself; no failure-ratio trigger.
pub fn breaker_config() -> String {
    let queries = ROUND;
    format!(
        "consecutive_failures = {queries}\nfailure_ratio = 2.0\ncool_down = \"{}s\"\n\
         double_cool_down = false\nhalf_open_probes = 1",
        COOL_DOWN.as_secs()
    )
}

pub fn mentions(text: &str, any_of: &[&str]) -> bool {
    any_of.iter().any(|words| text.contains(words))
}

/// The proxy's open connections fall to what an idle pool keeps, well before the pool's
/// own idle timeout (90 s) could have closed leaked ones.
pub fn assert_idle_connections(f: &Fixture, idle: usize, when: &str) {
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
