//! Backends: each configured server gets a stack of tower layers (timeout, concurrency
//! limit, HTTP client) and a record of what promgate knows about it (its external labels,
//! whether it answered last time). The set of backends is a [`Topology`], swapped whole on
//! reload while unchanged backends carry over with their state.

pub mod blocks;
pub mod client;
pub mod error;
pub mod fanout;
pub mod read;
mod retry;
mod topology;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use tokio::time::Instant;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::config::{BackendConfig, BackendKind};
use crate::error::ErrorType;
use crate::layer::breaker::{BreakerHandle, BreakerOpen, BreakerState, CircuitBreakerLayer};
use crate::model::Envelope;
use crate::storage::object::{FsObjects, ObjectStore, S3Location, S3Objects, UnusableObjects};
use crate::storage::remote::{RemoteReadClient, RemoteReadConfig};
use crate::telemetry::Metrics;
pub use client::{ApiRequest, ApiResponse, HttpClient, PrometheusHttp};
pub use error::BackendError;
pub use read::{ReadAnswer, ReadCall, SelectedSeries};
pub use topology::{ReplicaGroup, Topology, TopologyHandle};

/// External labels of a backend, by name.
pub use crate::promql::ExternalLabels;

/// A backend's layered HTTP API service.
pub type BackendService = BoxCloneSyncService<ApiRequest, ApiResponse, BackendError>;

/// A backend's layered remote read service.
pub type ReadService = BoxCloneSyncService<ReadCall, ReadAnswer, BackendError>;

/// How long to wait before asking an unreachable backend for its labels again.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// A blocks backend's layered select service.
pub type BlocksReadService = BoxCloneSyncService<blocks::BlocksCall, ReadAnswer, BackendError>;

/// How a backend's raw series are read.
enum Reader {
    /// Prometheus remote read (Prometheus, InfluxDB).
    Remote(ReadService),
    /// TSDB blocks read by promgate itself.
    Blocks {
        service: BlocksReadService,
        set: Arc<blocks::BlockSet>,
    },
}

/// One configured backend and what promgate knows about it.
pub struct Backend {
    pub config: BackendConfig,
    service: BackendService,
    reader: Reader,
    labels: ArcSwapOption<ExternalLabels>,
    /// The version from /api/v1/status/buildinfo, once read.
    version: ArcSwapOption<String>,
    last_failed_discovery: Mutex<Option<(Instant, String)>>,
    healthy: AtomicBool,
    status: Mutex<BackendStatus>,
    breaker: BreakerHandle,
    metrics: Arc<Metrics>,
}

/// What the last requests to a backend showed, for /api/v1/status/backends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendStatus {
    /// Unix milliseconds of the last answer (a rejected query counts as one).
    pub last_success_ms: Option<i64>,
    /// The last failure and its unix milliseconds.
    pub last_error: Option<(i64, String)>,
    /// How long the last request took, in seconds.
    pub last_latency_seconds: Option<f64>,
}

impl Backend {
    pub fn new(config: BackendConfig, client: HttpClient, metrics: Arc<Metrics>) -> Backend {
        let breaker = BreakerHandle::new(config.name.as_str(), config.breaker.clone());
        // Both services share the breaker and the concurrency limit: they are one backend.
        let limit = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests));
        // TLS settings of its own mean a connection pool of its own (validation made sure
        // they load).
        let client = match config.tls.as_ref().map(crate::tls::client_config) {
            Some(Ok(tls)) => client::http_client_with_tls(tls),
            Some(Err(e)) => {
                tracing::error!(backend = %config.name, error = %e, "backend TLS settings do not load");
                client
            }
            None => client,
        };
        let authorization = config
            .credentials
            .as_ref()
            .and_then(client::authorization_header);
        let http = PrometheusHttp::new(client.clone(), &config.url, max_response_bytes(&config))
            .with_authorization(authorization.clone());
        let service = layered(http, &config, &breaker, &limit, breaker_failure);
        let reader = match config.kind {
            BackendKind::Blocks => {
                let set = Arc::new(blocks::BlockSet::new(
                    &config.name,
                    object_store(&config),
                    config.labels.clone().unwrap_or_default(),
                    Arc::new(crate::storage::tsdb::BlockCache::new(
                        usize::try_from(config.cache_size.0).unwrap_or(usize::MAX),
                    )),
                    config.sync_interval.0,
                ));
                let service = blocks::BlocksService::new(set.clone());
                Reader::Blocks {
                    service: layered(service, &config, &breaker, &limit, read_breaker_failure),
                    set,
                }
            }
            BackendKind::Prometheus | BackendKind::Influx => {
                let service =
                    read::RemoteReadService::new(read_client(&config, client, authorization));
                Reader::Remote(layered(
                    service,
                    &config,
                    &breaker,
                    &limit,
                    read_breaker_failure,
                ))
            }
        };
        let labels = match (&config.labels, config.kind) {
            (Some(configured), _) => Some(Arc::new(configured.clone())),
            // Nothing to discover: the configured labels (or none) are its external labels
            // (for blocks, those of blocks whose meta names none).
            (None, BackendKind::Influx | BackendKind::Blocks) => {
                Some(Arc::new(ExternalLabels::new()))
            }
            (None, BackendKind::Prometheus) => None,
        };
        let labels = ArcSwapOption::from(labels);
        Backend {
            config,
            service,
            reader,
            labels,
            version: ArcSwapOption::empty(),
            last_failed_discovery: Mutex::new(None),
            healthy: AtomicBool::new(true),
            status: Mutex::new(BackendStatus::default()),
            breaker,
            metrics,
        }
    }

    /// Its circuit breaker's state.
    pub fn breaker(&self) -> crate::layer::breaker::BreakerStatus {
        self.breaker.status()
    }

    /// Notes that the backend left a request unanswered while its twin answered: it is
    /// asked after its twins until a request to it succeeds again.
    pub fn mark_unresponsive(&self, waited: std::time::Duration) {
        self.healthy.store(false, Ordering::Relaxed);
        if let Ok(mut status) = self.status.lock() {
            status.last_error = Some((
                crate::time::now_ms(),
                format!(
                    "no answer after {} while a replica answered",
                    crate::time::format_prometheus_duration(waited)
                ),
            ));
        }
    }

    /// A snapshot of what the last requests showed.
    pub fn status(&self) -> BackendStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether the last request to this backend succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The version the backend reports (`3.5.0`), once read.
    pub fn version(&self) -> Option<Arc<String>> {
        self.version.load_full()
    }

    /// Whether the backend evaluates PromQL as promgate's engine does (Prometheus 3.x:
    /// range windows open on the left). Unknown versions are taken to.
    pub fn evaluates_like_promgate(&self) -> bool {
        match self.version.load().as_deref() {
            Some(v) => v
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|major| major.parse::<u32>().ok())
                .is_none_or(|major| major >= 3),
            None => true,
        }
    }

    /// Reads the version from /api/v1/status/buildinfo.
    async fn discover_version(&self, deadline: Option<Instant>) {
        #[derive(Deserialize)]
        struct Build {
            version: String,
        }
        let mut req = ApiRequest::get("/api/v1/status/buildinfo", Vec::new());
        req.deadline = deadline;
        let version = self.call(req).await.ok().and_then(|resp| {
            serde_json::from_slice::<Envelope<Build>>(&resp.body)
                .ok()
                .and_then(|e| e.data)
        });
        if let Some(build) = version {
            self.version.store(Some(Arc::new(build.version)));
        }
    }

    /// The external labels, when known (configured, or discovered).
    pub fn external_labels(&self) -> Option<Arc<ExternalLabels>> {
        self.labels.load_full()
    }

    /// Sends one API request through the backend's stack; a non-200 answer becomes
    /// [`BackendError::Api`] with the backend's errorType.
    pub async fn call(&self, req: ApiRequest) -> Result<ApiResponse, BackendError> {
        let _inflight = self.metrics.backend_request_started(self.name());
        let started = std::time::Instant::now();
        let result = self.service.clone().oneshot(req).await.and_then(|resp| {
            if resp.status.is_success() {
                Ok(resp)
            } else {
                Err(api_error(&resp))
            }
        });
        self.record(result.as_ref().err(), started.elapsed());
        result
    }

    /// Sends one remote read query through the backend's stack.
    pub async fn read(&self, call: ReadCall) -> Result<ReadAnswer, BackendError> {
        let Reader::Remote(reader) = &self.reader else {
            return Err(BackendError::Decode(format!(
                "backend {} has no remote read endpoint",
                self.name()
            )));
        };
        let _inflight = self.metrics.backend_request_started(self.name());
        let started = std::time::Instant::now();
        let result = reader.clone().oneshot(call).await;
        let failure = result.as_ref().err().filter(|e| !e.is_request_error());
        self.record(failure, started.elapsed());
        result
    }

    /// Reads one select from a blocks backend through its stack.
    async fn read_blocks(
        &self,
        service: &BlocksReadService,
        call: blocks::BlocksCall,
    ) -> Result<ReadAnswer, BackendError> {
        let _inflight = self.metrics.backend_request_started(self.name());
        let started = std::time::Instant::now();
        let result = service.clone().oneshot(call).await;
        self.record(result.as_ref().err(), started.elapsed());
        result
    }

    fn blocks_service(&self) -> Option<&BlocksReadService> {
        match &self.reader {
            Reader::Blocks { service, .. } => Some(service),
            Reader::Remote(_) => None,
        }
    }

    /// Whether the backend may hold series `vs` selects with samples in `start_ms..=end_ms`,
    /// as far as its external labels and (for blocks) time range tell.
    pub fn may_hold(
        &self,
        vs: &promql_parser::parser::VectorSelector,
        start_ms: i64,
        end_ms: i64,
    ) -> bool {
        let alternatives = crate::storage::SelectRequest::selector_matchers(vs);
        let fits = |labels: &ExternalLabels| {
            alternatives.iter().any(|matchers| {
                matchers
                    .iter()
                    .all(|m| labels.get(&m.name).is_none_or(|v| m.is_match(v)))
            })
        };
        match &self.reader {
            Reader::Blocks { set, .. } => {
                let sets = set.label_sets();
                set.covers(start_ms, end_ms) && (sets.is_empty() || sets.iter().any(fits))
            }
            Reader::Remote(_) => self.external_labels().is_none_or(|l| fits(&l)),
        }
    }

    /// The blocks of a blocks backend.
    pub fn block_set(&self) -> Option<&Arc<blocks::BlockSet>> {
        match &self.reader {
            Reader::Blocks { set, .. } => Some(set),
            Reader::Remote(_) => None,
        }
    }

    /// Notes the outcome of one request in the backend's health, status and metrics.
    fn record(&self, error: Option<&BackendError>, took: std::time::Duration) {
        // A query the backend rejected says nothing about its health.
        let ok = error.is_none_or(BackendError::is_query_error);
        self.healthy.store(ok, Ordering::Relaxed);
        if let Ok(mut status) = self.status.lock() {
            let now = crate::time::now_ms();
            status.last_latency_seconds = Some(took.as_secs_f64());
            match error {
                Some(e) if !ok => status.last_error = Some((now, e.to_string())),
                _ => status.last_success_ms = Some(now),
            }
        }
        let outcome = match error {
            None => "success",
            Some(e) if e.is_query_error() => "success",
            Some(e) => e.metric_result(),
        };
        self.metrics.observe_backend(self.name(), outcome, took);
        let state = match self.breaker.status().state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        };
        self.metrics.observe_breaker(self.name(), state);
    }

    /// Makes sure the external labels are known: configured ones always are; otherwise they
    /// are read from the backend's /api/v1/status/config, at most once per retry interval
    /// while it is unreachable.
    pub async fn ensure_labels(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<ExternalLabels>, BackendError> {
        if let Some(labels) = self.labels.load_full() {
            return Ok(labels);
        }
        if let Some((at, err)) = self
            .last_failed_discovery
            .lock()
            .ok()
            .and_then(|g| g.clone())
        {
            if at.elapsed() < DISCOVERY_RETRY {
                return Err(BackendError::LabelsUnknown(err));
            }
        }
        self.discover_labels(deadline).await
    }

    /// Reads the external labels from the backend now (unless configured).
    pub async fn discover_labels(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<ExternalLabels>, BackendError> {
        if !self.config.kind.has_query_api() {
            return Ok(Arc::new(self.config.labels.clone().unwrap_or_default()));
        }
        let version = async {
            if self.version.load().is_none() {
                self.discover_version(deadline).await;
            }
        };
        if let Some(configured) = &self.config.labels {
            version.await;
            return Ok(Arc::new(configured.clone()));
        }
        let mut req = ApiRequest::get("/api/v1/status/config", Vec::new());
        req.deadline = deadline;
        let labels = async {
            self.call(req)
                .await
                .and_then(|resp| parse_external_labels(&resp.body))
        };
        // Both at once: an unresponsive backend costs one backend timeout, not two in a row
        // (which the request waiting for the labels would pay).
        let ((), result) = tokio::join!(version, labels);
        match result {
            Ok(labels) => {
                let labels = Arc::new(labels);
                self.labels.store(Some(labels.clone()));
                if let Ok(mut g) = self.last_failed_discovery.lock() {
                    *g = None;
                }
                Ok(labels)
            }
            Err(e) => {
                if let Ok(mut g) = self.last_failed_discovery.lock() {
                    *g = Some((Instant::now(), e.to_string()));
                }
                Err(BackendError::LabelsUnknown(e.to_string()))
            }
        }
    }
}

/// What the breaker counts as a failure: anything but an answer, a 5xx answer, and a
/// timeout; a query the backend rejected is a healthy backend.
fn breaker_failure(result: Result<&ApiResponse, &BoxError>) -> Option<String> {
    match result {
        Ok(resp) if resp.status.is_server_error() => Some(format!("HTTP {}", resp.status)),
        Ok(_) => None,
        Err(e) => match e.downcast_ref::<BackendError>() {
            Some(be) if be.is_query_error() => None,
            Some(be) => Some(be.to_string()),
            None if e.is::<tower::timeout::error::Elapsed>() => Some("timed out".to_string()),
            None => Some(e.to_string()),
        },
    }
}

/// What the breaker counts as a failure of a remote read: as for the HTTP API, except that
/// a 4xx answer is a request the store refused, not a sick store.
fn read_breaker_failure(result: Result<&ReadAnswer, &BoxError>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(e) => match e.downcast_ref::<BackendError>() {
            Some(be) if be.is_request_error() => None,
            _ => breaker_failure(Err(e)),
        },
    }
}

/// Where a blocks backend's objects are. A bucket that cannot be set up (keys missing from
/// the environment) gives a store failing with the reason, so the backend reports it.
fn object_store(config: &BackendConfig) -> Arc<dyn ObjectStore> {
    let Some(bucket) = &config.bucket else {
        return Arc::new(FsObjects::new(config.dir.clone().unwrap_or_default()));
    };
    let what = format!("s3://{}/{}", bucket.bucket, bucket.prefix);
    match bucket_location(bucket, |name| std::env::var(name).ok())
        .and_then(|location| S3Objects::new(&location, config.timeout.0))
    {
        Ok(store) => Arc::new(store),
        Err(reason) => {
            tracing::error!(backend = %config.name, %reason, "bucket unusable");
            Arc::new(UnusableObjects::new(what, reason))
        }
    }
}

/// The S3 location of `[backend.bucket]`, keys read from the variables it names (`env`
/// looks one up); without keys or names, the S3 client reads AWS's usual variables.
fn bucket_location(
    bucket: &crate::config::BucketConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<S3Location, String> {
    let from_env = |name: &Option<String>| match name {
        Some(n) => env(n)
            .map(Some)
            .ok_or_else(|| format!("environment variable {n} is not set")),
        None => Ok(None),
    };
    let access_key = match &bucket.access_key {
        Some(k) => Some(k.clone()),
        None => from_env(&bucket.access_key_env)?,
    };
    let secret_key = match &bucket.secret_key {
        Some(k) => Some(k.expose().to_string()),
        None => from_env(&bucket.secret_key_env)?,
    };
    Ok(S3Location {
        endpoint: bucket.endpoint.clone(),
        bucket: bucket.bucket.clone(),
        prefix: bucket.prefix.clone(),
        region: bucket.region.clone(),
        path_style: bucket.path_style,
        access_key,
        secret_key,
    })
}

/// The largest answer accepted from a backend, as configured.
fn max_response_bytes(config: &BackendConfig) -> usize {
    usize::try_from(config.max_response_bytes.0).unwrap_or(usize::MAX)
}

/// A remote read client's size limits from the backend's `max_response_bytes`.
fn sized(mut read: RemoteReadConfig, config: &BackendConfig) -> RemoteReadConfig {
    read.max_response_bytes = max_response_bytes(config);
    read.max_frame_bytes = read.max_frame_bytes.min(read.max_response_bytes);
    read
}

/// The remote read endpoint of a backend.
fn read_client(
    config: &BackendConfig,
    client: HttpClient,
    authorization: Option<http::HeaderValue>,
) -> RemoteReadClient {
    let base = config.url.trim_end_matches('/');
    match config.kind {
        BackendKind::Prometheus | BackendKind::Blocks => RemoteReadClient::new(
            client,
            base,
            RemoteReadConfig {
                authorization,
                ..sized(RemoteReadConfig::default(), config)
            },
        ),
        BackendKind::Influx => {
            let db: String = url::form_urlencoded::byte_serialize(
                config.database.as_deref().unwrap_or_default().as_bytes(),
            )
            .collect();
            RemoteReadClient::with_url(
                client,
                format!("{base}/api/v1/prom/read?db={db}"),
                RemoteReadConfig {
                    authorization,
                    ..sized(RemoteReadConfig::samples_only(), config)
                },
            )
        }
    }
}

/// Wraps one of a backend's services in its layers; the breaker and the concurrency limit
/// are the backend's, shared by all its services.
fn layered<S, Req, Resp>(
    inner: S,
    config: &BackendConfig,
    breaker: &BreakerHandle,
    limit: &Arc<tokio::sync::Semaphore>,
    classify: fn(Result<&Resp, &BoxError>) -> Option<String>,
) -> BoxCloneSyncService<Req, Resp, BackendError>
where
    S: tower::Service<Req, Response = Resp, Error = BackendError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    Req: retry::Repeatable + Send + Sync + 'static,
    Resp: retry::Judged + Send + Sync + 'static,
{
    let timeout = config.timeout.0;
    // The breaker sits outside the timeout so that a hung backend's timeouts count.
    let stack = ServiceBuilder::new()
        .map_err(move |e: BoxError| match e.downcast::<BackendError>() {
            Ok(e) => *e,
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => BackendError::Timeout(timeout),
            Err(e) => match e.downcast::<BreakerOpen>() {
                Ok(open) => BackendError::BreakerOpen(open.to_string()),
                Err(e) => BackendError::Transport(e.to_string()),
            },
        })
        .layer(CircuitBreakerLayer::new(breaker.clone(), classify))
        .timeout(timeout)
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(limit.clone()))
        .retry(retry::ReadRetryPolicy::new(
            config.retries,
            config.retry_backoff.0,
        ))
        .service(inner);
    BoxCloneSyncService::new(stack)
}

/// Turns a non-200 answer into an error, keeping Prometheus's errorType when it sent one.
fn api_error(resp: &ApiResponse) -> BackendError {
    let status = resp.status.as_u16();
    match serde_json::from_slice::<Envelope<serde_json::Value>>(&resp.body) {
        Ok(env) if env.status == "error" => BackendError::Api {
            status,
            error_type: env.error_type.as_deref().and_then(ErrorType::parse),
            message: env.error.unwrap_or_default(),
        },
        _ => {
            let text = String::from_utf8_lossy(&resp.body);
            let snippet: String = text.chars().take(200).collect();
            BackendError::Api {
                status,
                error_type: None,
                message: snippet.trim().to_string(),
            }
        }
    }
}

/// `global.external_labels` from the YAML in a /api/v1/status/config answer.
fn parse_external_labels(body: &[u8]) -> Result<ExternalLabels, BackendError> {
    #[derive(Deserialize)]
    struct Data {
        yaml: String,
    }
    #[derive(Deserialize, Default)]
    struct Yaml {
        #[serde(default)]
        global: Global,
    }
    #[derive(Deserialize, Default)]
    struct Global {
        #[serde(default)]
        external_labels: Option<ExternalLabels>,
    }
    let env: Envelope<Data> =
        serde_json::from_slice(body).map_err(|e| BackendError::Decode(e.to_string()))?;
    let data = env
        .data
        .ok_or_else(|| BackendError::Decode("status/config answer without data".into()))?;
    let yaml: Yaml =
        serde_yaml::from_str(&data.yaml).map_err(|e| BackendError::Decode(e.to_string()))?;
    Ok(yaml.global.external_labels.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_labels_are_read_from_config_yaml() {
        let body = br#"{"status":"success","data":{"yaml":"global:\n  scrape_interval: 15s\n  external_labels:\n    cluster: eu1\n    replica: a\nscrape_configs: []\n"}}"#;
        let labels = parse_external_labels(body).unwrap();
        assert_eq!(labels.get("cluster").map(String::as_str), Some("eu1"));
        assert_eq!(labels.get("replica").map(String::as_str), Some("a"));
        let none = br#"{"status":"success","data":{"yaml":"global:\n  scrape_interval: 15s\n"}}"#;
        assert!(parse_external_labels(none).unwrap().is_empty());
    }

    #[test]
    fn bucket_keys_come_from_the_config_or_the_variables_it_names() {
        let mut bucket = crate::config::BucketConfig {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "metrics".into(),
            prefix: "eu1/".into(),
            region: "eu-west-1".into(),
            path_style: true,
            access_key: None,
            secret_key: None,
            access_key_env: Some("K".into()),
            secret_key_env: Some("S".into()),
        };
        let env = |name: &str| match name {
            "K" => Some("key".to_string()),
            "S" => Some("secret".to_string()),
            _ => None,
        };
        let location = bucket_location(&bucket, env).unwrap();
        assert_eq!(location.access_key.as_deref(), Some("key"));
        assert_eq!(location.secret_key.as_deref(), Some("secret"));
        assert_eq!(
            (location.prefix.as_str(), location.path_style),
            ("eu1/", true)
        );
        bucket.secret_key_env = Some("MISSING".into());
        assert_eq!(
            bucket_location(&bucket, env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        bucket.access_key_env = None;
        bucket.secret_key_env = None;
        let location = bucket_location(&bucket, env).unwrap();
        assert_eq!((location.access_key, location.secret_key), (None, None));
    }

    #[test]
    fn api_errors_keep_prometheus_error_type() {
        let resp = ApiResponse {
            status: http::StatusCode::BAD_REQUEST,
            body: bytes::Bytes::from_static(
                br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            ),
        };
        let err = api_error(&resp);
        assert!(err.is_query_error());
        let resp = ApiResponse {
            status: http::StatusCode::BAD_GATEWAY,
            body: bytes::Bytes::from_static(b"<html>bad gateway</html>"),
        };
        assert!(!api_error(&resp).is_query_error());
    }
}
