//! Shared by the integration tests: promgate run in-process on its own runtime, and a small
//! blocking HTTP client for talking to it and to the real servers behind it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

#[allow(unused_imports)]
pub use promgate::realenv::{HttpResponse, http, http_get};

pub fn post_form(url: &str, form: &[(&str, &str)]) -> HttpResponse {
    promgate::realenv::post_form(url, form).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// promgate serving on a free loopback port from a config file, until dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub app: std::sync::Arc<promgate::app::App>,
}

impl Gateway {
    /// Starts promgate with `config_path` and waits until /-/ready answers 200 (over
    /// plain HTTP; a TLS listener's caller waits with its own client).
    pub fn start(config_path: &Path) -> Gateway {
        let config = promgate::config::Config::load(config_path).expect("valid config");
        let plain = config.server.tls.is_none();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let path = config_path.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = promgate::app::App::new(config, Some(path.clone()));
                let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
                let mut server = promgate::server::Server::start(app.clone(), listen)
                    .await
                    .expect("bind");
                server.watch_reloads(&path);
                addr_tx.send((server.local_addr(), app)).unwrap();
                let _ = stop_rx.await;
                server.shutdown().await;
            });
        });
        let (addr, app) = addr_rx.recv().expect("gateway started");
        let gw = Gateway {
            addr,
            config_path: config_path.to_path_buf(),
            stop: Some(stop_tx),
            thread: Some(thread),
            app,
        };
        wait_until(Duration::from_secs(15), || {
            !plain
                || http_get(&gw.url("/-/ready"))
                    .map(|r| r.status == 200)
                    .unwrap_or(false)
        });
        gw
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// The first line of /metrics starting with `line_prefix`.
    pub fn metric(&self, line_prefix: &str) -> Option<String> {
        http_get(&self.url("/metrics"))
            .ok()?
            .text()
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .map(str::to_string)
    }

    /// The value of the /metrics sample whose line starts with `line_prefix`, 0 if absent.
    pub fn metric_value(&self, line_prefix: &str) -> f64 {
        self.metric(line_prefix)
            .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0)
    }

    /// GET an API path, returning status and parsed JSON.
    pub fn get_json(&self, path_and_query: &str) -> (u16, Value) {
        get_json(&self.url(path_and_query))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not met within {limit:?}");
}

pub fn get_json(url: &str) -> (u16, Value) {
    let r = http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status, r.json().unwrap())
}

/// Equal results, values within a relative 1e-9 (summation order differs between engines).
pub fn assert_close(ours: &Value, theirs: &Value, what: &str) {
    assert_eq!(ours["status"], "success", "{what}: {ours}");
    assert_eq!(
        ours["data"]["resultType"], theirs["data"]["resultType"],
        "{what}"
    );
    let key = |s: &Value| s["metric"].to_string();
    let mut a = ours["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut b = theirs["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>(),
        "{what}: {ours} vs {theirs}"
    );
    let points = |s: &Value| -> Vec<(f64, f64)> {
        let list = match s.get("values") {
            Some(v) => v.as_array().cloned().unwrap_or_default(),
            None => vec![s["value"].clone()],
        };
        list.iter()
            .map(|p| {
                let v = p[1].as_str().unwrap_or("NaN");
                let v = match v {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().unwrap_or(f64::NAN),
                };
                (p[0].as_f64().unwrap_or(f64::NAN), v)
            })
            .collect()
    };
    for (x, y) in a.iter().zip(&b) {
        let (px, py) = (points(x), points(y));
        assert_eq!(
            px.iter().map(|p| p.0).collect::<Vec<_>>(),
            py.iter().map(|p| p.0).collect::<Vec<_>>(),
            "{what}: timestamps of {}",
            key(x)
        );
        for ((t, u), (_, v)) in px.iter().zip(&py) {
            let close = (u.is_nan() && v.is_nan())
                || u == v
                || (u - v).abs() <= 1e-9 * u.abs().max(v.abs());
            assert!(close, "{what}: {} at {t}: {u} vs {v}", key(x));
        }
    }
}

/// Percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `promgate run --config CONFIG` on loopback `port`, its standard error in `log`, once
/// /-/ready answers 200 from it.
pub fn run_promgate(
    config: &Path,
    log: &Path,
    port: u16,
) -> Result<promgate::realenv::ServerProcess, String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_promgate"));
    command
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let limit = Duration::from_secs(15);
    promgate::realenv::ServerProcess::start(
        "promgate",
        &mut command,
        log,
        port,
        "/-/ready",
        200,
        limit,
    )
}

/// The promgate binary run as a child process (for signals), killed on drop.
pub struct PromgateProcess {
    process: promgate::realenv::ServerProcess,
    pub base: String,
    _log: tempfile::TempDir,
}

impl PromgateProcess {
    /// `promgate run --config CONFIG` on a free loopback port, once /-/ready answers 200.
    pub fn start(config: &Path) -> PromgateProcess {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("promgate.log");
        let (process, port) = promgate::realenv::on_free_port(&log, |port| {
            Ok((run_promgate(config, &log, port)?, port))
        })
        .expect("promgate started");
        PromgateProcess {
            process,
            base: format!("http://127.0.0.1:{port}"),
            _log: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().expect("running")
    }

    /// Sends a signal (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.process.wait().unwrap()
    }
}

/// A remote read answer: every series by its labels, samples as `(t, value bits)` so that
/// NaN compares equal.
pub type ReadMap = std::collections::BTreeMap<Vec<(String, String)>, Vec<(i64, u64)>>;

/// Every series `query` reads from the remote read endpoint `url`.
pub fn remote_read(
    url: &str,
    config: promgate::storage::remote::RemoteReadConfig,
    query: &promgate::storage::remote::Query,
) -> ReadMap {
    use promgate::storage::remote::{ReadRequest, RemoteReadClient};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RemoteReadClient::with_url(
        promgate::backend::client::http_client(),
        url.to_string(),
        config,
    );
    rt.block_on(client.read(&ReadRequest {
        queries: vec![query.clone()],
        accepted_response_types: Vec::new(),
    }))
    .unwrap_or_else(|e| panic!("remote read of {url}: {e}"))
    .into_iter()
    .flatten()
    .map(|s| {
        let samples = s
            .all_samples()
            .unwrap()
            .into_iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        (s.labels, samples)
    })
    .collect()
}
