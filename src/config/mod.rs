//! promgate's TOML configuration: the model, loading with every problem reported by field
//! path, and the defaults. One file configures the listener, query behaviour and backends;
//! it is re-read on reload, and a file that fails validation never replaces a running one.

mod security;
mod validate;

pub use security::{
    Authorization, BackendTls, BasicAuth, ClientAuth, Secret, ServerTls, check_hash,
};

pub use validate::{is_label_name, parse_listen};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::parse_prometheus_duration;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub query: QueryConfig,
    #[serde(rename = "backend")]
    pub backends: Vec<BackendConfig>,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// Requests served at once; more wait in a bounded queue (see `max_queued_requests`).
    /// Health, readiness, reload and /metrics are not counted. Applies at start only.
    pub max_concurrent_requests: usize,
    /// Requests that may wait for a slot; beyond that a request is refused with 503 at once.
    pub max_queued_requests: usize,
    /// How long a queued request waits for a slot before it is refused with 503.
    pub queue_timeout: PromDuration,
    /// Requests per second each client address may keep up; 0 turns the limit off.
    pub client_requests_per_second: f64,
    /// Requests above `client_requests_per_second` a client may send in a second that
    /// follows a second within its rate.
    pub client_burst: u32,
    /// Largest request head (request line and headers) accepted; larger ones get 431.
    /// Applies at start only.
    pub max_header_bytes: ByteSize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: PromDuration,
    /// Re-read the config file when it changes on disk.
    pub watch_config: bool,
    /// Largest request body accepted (POST forms), in bytes.
    pub max_request_body_bytes: usize,
    /// Serve HTTPS.
    pub tls: Option<ServerTls>,
    /// Require clients to authenticate.
    pub auth: Option<ClientAuth>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:9090".to_string(),
            max_concurrent_requests: 256,
            max_queued_requests: 256,
            queue_timeout: PromDuration(Duration::from_secs(2)),
            client_requests_per_second: 0.0,
            client_burst: 0,
            max_header_bytes: ByteSize(64 << 10),
            shutdown_grace: PromDuration(Duration::from_secs(30)),
            watch_config: true,
            max_request_body_bytes: 8 << 20,
            tls: None,
            auth: None,
        }
    }
}

impl ServerConfig {
    /// The settings fixed when the listener starts that differ in `other`: a reload cannot
    /// change them (the rate limit, the queue and the body size apply at once).
    pub fn listener_settings_differ(&self, other: &ServerConfig) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.listen != other.listen {
            differ.push("server.listen");
        }
        if self.max_concurrent_requests != other.max_concurrent_requests {
            differ.push("server.max_concurrent_requests");
        }
        if self.shutdown_grace != other.shutdown_grace {
            differ.push("server.shutdown_grace");
        }
        if self.watch_config != other.watch_config {
            differ.push("server.watch_config");
        }
        if self.max_header_bytes != other.max_header_bytes {
            differ.push("server.max_header_bytes");
        }
        if self.tls != other.tls {
            differ.push("server.tls");
        }
        differ
    }
}

/// `[query]`: how queries are answered.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct QueryConfig {
    /// Labels that tell HA replicas apart; series equal but for these are one series.
    pub replica_labels: Vec<String>,
    /// Answer from the backends that did answer, with a warning, when others fail.
    pub partial_response: bool,
    /// Upper bound for one query, end to end.
    pub timeout: PromDuration,
    /// An instant query whose replica has not answered after this long is also sent to the
    /// next replica of its group; the first answer wins.
    pub hedge_after: PromDuration,
    /// Most samples a query promgate evaluates may hold at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Most series one selector of a query promgate evaluates may read; 0 = no limit.
    pub max_series_per_select: usize,
    /// Longest PromQL expression accepted, in characters; 0 = no limit.
    pub max_query_length: usize,
    /// Widest time range (end - start) of a range query or a series request; 0 = no limit.
    pub max_range: PromDuration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            replica_labels: Vec::new(),
            partial_response: true,
            timeout: PromDuration(Duration::from_secs(120)),
            hedge_after: PromDuration(Duration::from_secs(2)),
            max_samples: 50_000_000,
            max_series_per_select: 0,
            max_query_length: 0,
            max_range: PromDuration(Duration::ZERO),
        }
    }
}

/// One `[[backend]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BackendConfig {
    pub name: String,
    pub kind: BackendKind,
    /// Prometheus and InfluxDB: where the server is.
    #[serde(default)]
    pub url: String,
    /// InfluxDB only: the database read through `/api/v1/prom/read?db=`.
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default = "default_backend_timeout")]
    pub timeout: PromDuration,
    /// Overrides the external labels discovered from the backend.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Requests sent to this backend at once.
    #[serde(default = "default_backend_concurrency")]
    pub max_concurrent_requests: usize,
    /// Further attempts after a failed connection or a gateway error (reads are safe to
    /// repeat).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry, doubling for each further one (with ±50% jitter).
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: PromDuration,
    /// When to stop sending this backend requests for a while.
    #[serde(default)]
    pub breaker: crate::layer::breaker::BreakerConfig,
    /// Largest answer accepted from this backend (HTTP API answers and remote read).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: ByteSize,
    /// Blocks only: the S3 bucket holding them.
    #[serde(default)]
    pub bucket: Option<BucketConfig>,
    /// Blocks only: the directory holding them (instead of a bucket).
    #[serde(default)]
    pub dir: Option<String>,
    /// Blocks only: how often the block list is read again.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: PromDuration,
    /// Blocks only: memory for cached postings, series and chunks.
    #[serde(default = "default_cache_size")]
    pub cache_size: ByteSize,
    /// How an `https://` backend is checked, and the client certificate shown to it.
    #[serde(default)]
    pub tls: Option<BackendTls>,
    /// HTTP basic auth towards the backend.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// An `Authorization` header (bearer token) towards the backend.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// The `Authorization` header value, read from `basic_auth` or `authorization` when
    /// the file is loaded (so a changed password file changes the backend on reload).
    #[serde(skip)]
    pub credentials: Option<Secret>,
}

/// `[backend.bucket]`: an S3 bucket (AWS or any S3-compatible server). The secret key is a
/// [`Secret`]: never shown.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub bucket: String,
    /// Only objects under this prefix (`eu1-a/`).
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key` (MinIO and most
    /// S3-compatible servers want this).
    #[serde(default)]
    pub path_style: bool,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// Names of environment variables holding the keys; without keys or these,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are used.
    #[serde(default)]
    pub access_key_env: Option<String>,
    #[serde(default)]
    pub secret_key_env: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_sync_interval() -> PromDuration {
    PromDuration(Duration::from_secs(180))
}

fn default_max_response_bytes() -> ByteSize {
    ByteSize(1 << 30)
}

fn default_cache_size() -> ByteSize {
    ByteSize(512 << 20)
}

/// A size in bytes, written as a number or with a unit (`"512MiB"`, `"2GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a size (like 512MiB)"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} (B, KB, KiB, MB, MiB, GB, GiB)"
                ));
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

fn default_retries() -> u32 {
    1
}

fn default_retry_backoff() -> PromDuration {
    PromDuration(Duration::from_millis(50))
}

fn default_backend_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}

fn default_backend_concurrency() -> usize {
    64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A Prometheus server: its HTTP API, and remote read for raw data.
    Prometheus,
    /// InfluxDB 1.x through its Prometheus remote read endpoint: raw data only.
    Influx,
    /// Prometheus TSDB blocks in an S3 bucket or a directory: raw data only.
    Blocks,
}

impl BackendKind {
    /// Whether the backend answers the Prometheus query and metadata API; the others only
    /// give raw series.
    pub fn has_query_api(self) -> bool {
        matches!(self, BackendKind::Prometheus)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendKind::Prometheus => f.write_str("prometheus"),
            BackendKind::Influx => f.write_str("influx"),
            BackendKind::Blocks => f.write_str("blocks"),
        }
    }
}

/// A duration written in Prometheus syntax (`"30s"`, `"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromDuration(pub Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_prometheus_duration(&s)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_prometheus_duration(self.0))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Everything wrong with a configuration file, one problem a line, each led by its field
/// path (`backend[2].url: relative URL without a base`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate::parse(&text, base)
    }

    /// Parses and validates configuration text; relative file paths in it are relative to
    /// the working directory.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        validate::parse(text, Path::new(""))
    }

    /// The configuration as YAML for /api/v1/status/config, secrets shown as `<secret>`.
    pub fn to_redacted_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot show: {e}\n"))
    }
}
