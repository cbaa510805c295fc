//! promgate's own metrics (served at /metrics in the Prometheus text format) and the
//! tracing subscriber. One [`Telemetry`] per process; handles are cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    pub handler: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerOnly {
    pub handler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendResult {
    pub backend: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryPath {
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalReason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendOnly {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockState {
    pub backend: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheOutcome {
    pub backend: String,
    pub item: String,
    pub result: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0,
    ])
}

/// Every metric promgate exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HandlerLabels, Counter>,
    pub http_duration: Family<HandlerOnly, Histogram, fn() -> Histogram>,
    pub http_in_flight: Gauge,
    pub http_queued: Gauge,
    pub http_refused: Family<RefusalReason, Counter>,
    pub backend_requests: Family<BackendResult, Counter>,
    pub backend_duration: Family<BackendOnly, Histogram, fn() -> Histogram>,
    pub backend_up: Family<BackendOnly, Gauge>,
    pub breaker_state: Family<BackendOnly, Gauge>,
    pub backend_inflight: Family<BackendOnly, Gauge>,
    pub runtime_tasks: Gauge,
    pub reload_successful: Gauge,
    pub reload_success_time: Gauge,
    pub reloads: Family<HandlerOnly, Counter>,
    pub query_paths: Family<QueryPath, Counter>,
    pub blocks: Family<BlockState, Gauge>,
    pub block_cache: Family<CacheOutcome, Counter>,
    pub object_requests: Family<BackendOnly, Counter>,
    pub object_bytes: Family<BackendOnly, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("promgate");
        let http_requests = Family::<HandlerLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by handler and status code",
            http_requests.clone(),
        );
        let http_duration =
            Family::<HandlerOnly, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by handler",
            http_duration.clone(),
        );
        let http_in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "API requests being served (holding one of server.max_concurrent_requests)",
            http_in_flight.clone(),
        );
        let http_queued = Gauge::default();
        registry.register(
            "http_requests_queued",
            "API requests waiting for a slot",
            http_queued.clone(),
        );
        let http_refused = Family::<RefusalReason, Counter>::default();
        registry.register(
            "http_requests_refused",
            "API requests refused before being served, by reason (rate_limited, \
             queue_full, queue_timeout)",
            http_refused.clone(),
        );
        let backend_requests = Family::<BackendResult, Counter>::default();
        registry.register(
            "backend_requests",
            "Requests sent to backends, by backend and result (success, error, timeout)",
            backend_requests.clone(),
        );
        let backend_duration =
            Family::<BackendOnly, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "backend_request_duration_seconds",
            "Time backends took to answer, by backend",
            backend_duration.clone(),
        );
        let backend_up = Family::<BackendOnly, Gauge>::default();
        registry.register(
            "backend_up",
            "Whether the last request to the backend succeeded (1) or failed (0)",
            backend_up.clone(),
        );
        let breaker_state = Family::<BackendOnly, Gauge>::default();
        registry.register(
            "backend_breaker_state",
            "Circuit breaker of the backend: 0 closed, 1 half-open (probing), 2 open",
            breaker_state.clone(),
        );
        let backend_inflight = Family::<BackendOnly, Gauge>::default();
        registry.register(
            "backend_inflight_requests",
            "Requests sent to the backend and not finished yet (answered, failed or abandoned)",
            backend_inflight.clone(),
        );
        let runtime_tasks = Gauge::default();
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive on the runtime serving promgate (connections, requests, background \
             work), when /metrics was read",
            runtime_tasks.clone(),
        );
        let reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration reload attempt succeeded",
            reload_successful.clone(),
        );
        let reload_success_time = Gauge::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload",
            reload_success_time.clone(),
        );
        let reloads = Family::<HandlerOnly, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reload attempts, by outcome (handler=success|failure)",
            reloads.clone(),
        );
        let query_paths = Family::<QueryPath, Counter>::default();
        registry.register(
            "query_paths",
            "Queries by how they were answered: passthrough (one group, relayed), per_group \
             (answers of several groups concatenated), pushdown (partial aggregations per \
             group, combined), engine (evaluated by promgate over raw data)",
            query_paths.clone(),
        );
        let blocks = Family::<BlockState, Gauge>::default();
        registry.register(
            "blocks",
            "TSDB blocks of blocks backends by state at the last sync: loaded, partial (no \
             meta.json yet), deleted (deletion mark), unreadable, downsampled (left out)",
            blocks.clone(),
        );
        let block_cache = Family::<CacheOutcome, Counter>::default();
        registry.register(
            "blocks_cache_requests",
            "Lookups in a blocks backend's cache by item (postings, series, chunks) and \
             result (hit, miss)",
            block_cache.clone(),
        );
        let object_requests = Family::<BackendOnly, Counter>::default();
        registry.register(
            "blocks_object_requests",
            "Requests a blocks backend made to its bucket or directory (reads, listings)",
            object_requests.clone(),
        );
        let object_bytes = Family::<BackendOnly, Counter>::default();
        registry.register(
            "blocks_object_read_bytes",
            "Bytes a blocks backend read from its bucket or directory",
            object_bytes.clone(),
        );
        registry.register(
            "build",
            "promgate build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Arc::new(Metrics {
            registry,
            http_requests,
            http_duration,
            http_in_flight,
            http_queued,
            http_refused,
            backend_requests,
            backend_duration,
            backend_up,
            breaker_state,
            backend_inflight,
            runtime_tasks,
            reload_successful,
            reload_success_time,
            reloads,
            query_paths,
            blocks,
            block_cache,
            object_requests,
            object_bytes,
        })
    }

    /// Counts one request refused for `reason`.
    pub fn observe_refused(&self, reason: &str) {
        self.http_refused
            .get_or_create(&RefusalReason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts one query answered the way `path` names.
    pub fn observe_query_path(&self, path: &str) {
        self.query_paths
            .get_or_create(&QueryPath {
                path: path.to_string(),
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            self.runtime_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn observe_backend(&self, backend: &str, result: &str, took: Duration) {
        self.backend_requests
            .get_or_create(&BackendResult {
                backend: backend.to_string(),
                result: result.to_string(),
            })
            .inc();
        let key = BackendOnly {
            backend: backend.to_string(),
        };
        self.backend_duration
            .get_or_create(&key)
            .observe(took.as_secs_f64());
        self.backend_up
            .get_or_create(&key)
            .set(i64::from(result == "success"));
    }

    /// Counts a request to `backend` as in flight until the returned guard is dropped
    /// (whether the request finished or was abandoned).
    pub fn backend_request_started(&self, backend: &str) -> InflightGuard {
        let gauge = self
            .backend_inflight
            .get_or_create(&BackendOnly {
                backend: backend.to_string(),
            })
            .clone();
        gauge.inc();
        InflightGuard(gauge)
    }

    pub fn observe_breaker(&self, backend: &str, state: i64) {
        self.breaker_state
            .get_or_create(&BackendOnly {
                backend: backend.to_string(),
            })
            .set(state);
    }

    /// Shows how many of a blocks backend's blocks are in each state.
    pub fn observe_blocks(&self, backend: &str, states: &[(&str, usize)]) {
        for (state, n) in states {
            self.blocks
                .get_or_create(&BlockState {
                    backend: backend.to_string(),
                    state: state.to_string(),
                })
                .set(*n as i64);
        }
    }

    /// Brings a blocks backend's cache counters up to `total` lookups of `item` with
    /// `result` (the cache counts; this mirrors it).
    pub fn observe_block_cache(&self, backend: &str, item: &str, result: &str, total: u64) {
        let counter = self.block_cache.get_or_create(&CacheOutcome {
            backend: backend.to_string(),
            item: item.to_string(),
            result: result.to_string(),
        });
        let seen = counter.get();
        if total > seen {
            counter.inc_by(total - seen);
        }
    }

    /// Brings a blocks backend's object store counters up to its totals.
    pub fn observe_object_reads(&self, backend: &str, requests: u64, bytes: u64) {
        let key = BackendOnly {
            backend: backend.to_string(),
        };
        for (family, total) in [
            (&self.object_requests, requests),
            (&self.object_bytes, bytes),
        ] {
            let counter = family.get_or_create(&key);
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
    }

    /// Drops the series of a backend that left the configuration.
    pub fn forget_backend(&self, backend: &str) {
        let key = BackendOnly {
            backend: backend.to_string(),
        };
        self.backend_duration.remove(&key);
        self.backend_up.remove(&key);
        self.breaker_state.remove(&key);
        self.backend_inflight.remove(&key);
        self.object_requests.remove(&key);
        self.object_bytes.remove(&key);
        for state in ["loaded", "partial", "deleted", "unreadable", "downsampled"] {
            self.blocks.remove(&BlockState {
                backend: backend.to_string(),
                state: state.to_string(),
            });
        }
        for item in ["postings", "series", "chunks"] {
            for result in ["hit", "miss"] {
                self.block_cache.remove(&CacheOutcome {
                    backend: backend.to_string(),
                    item: item.to_string(),
                    result: result.to_string(),
                });
            }
        }
        for result in ["success", "error", "timeout"] {
            self.backend_requests.remove(&BackendResult {
                backend: backend.to_string(),
                result: result.to_string(),
            });
        }
    }
}

/// One request in flight to a backend; see [`Metrics::backend_request_started`].
pub struct InflightGuard(Gauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
