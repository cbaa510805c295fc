//! Real Prometheus servers on loopback, for the integration tests, the benchmarks and
//! `promgate demo`: finding the binaries, backfilling synthetic data with promtool, starting
//! a server on a free port and stopping it (also on drop, so a failing test leaves nothing
//! running).

mod http;
mod influx;
mod s3;
pub mod synth;

pub use http::{HttpResponse, http, http_get, post_form};
pub use influx::InfluxServer;
pub use s3::S3Server;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus release on this machine: the server and its promtool.
#[derive(Debug, Clone)]
pub struct PrometheusBinary {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

impl PrometheusBinary {
    /// Debian 12's Prometheus 2.42 (`apt-get install prometheus`).
    pub fn v2() -> Result<Self, String> {
        Self::in_dir(Path::new("/usr/bin"))
    }

    /// Prometheus 3.5 LTS, unpacked from Debian sid into /opt/prom3 (see .ci/run), or the
    /// directory in `PROMGATE_PROMETHEUS_V3_DIR`.
    pub fn v3() -> Result<Self, String> {
        let dir = std::env::var_os("PROMGATE_PROMETHEUS_V3_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/prom3/usr/bin"));
        Self::in_dir(&dir)
    }

    /// 3.5 when present, else 2.42.
    pub fn any() -> Result<Self, String> {
        Self::v3().or_else(|_| Self::v2())
    }

    fn in_dir(dir: &Path) -> Result<Self, String> {
        let bin = PrometheusBinary {
            prometheus: dir.join("prometheus"),
            promtool: dir.join("promtool"),
        };
        if bin.prometheus.is_file() && bin.promtool.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "no prometheus and promtool in {}: run `bash .ci/run` (or apt-get install prometheus) first",
                dir.display()
            ))
        }
    }

    /// Writes blocks for an OpenMetrics file into `data_dir` with promtool, each covering
    /// up to a day.
    pub fn backfill(&self, openmetrics: &Path, data_dir: &Path) -> Result<(), String> {
        self.backfill_blocks(openmetrics, data_dir, "24h")
    }

    /// Writes blocks for an OpenMetrics file into `data_dir` with promtool, each covering
    /// up to `max_block_duration` (`2h` gives the blocks a Prometheus writes itself).
    pub fn backfill_blocks(
        &self,
        openmetrics: &Path,
        data_dir: &Path,
        max_block_duration: &str,
    ) -> Result<(), String> {
        let out = Command::new(&self.promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(format!("--max-block-duration={max_block_duration}"))
            .arg(openmetrics)
            .arg(data_dir)
            .output()
            .map_err(|e| format!("running promtool: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "promtool failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// How to start one server.
#[derive(Debug, Clone, Default)]
pub struct PrometheusOptions {
    pub external_labels: BTreeMap<String, String>,
    /// OpenMetrics texts backfilled before the start (overlapping blocks are merged by
    /// Prometheus when it reads them).
    pub openmetrics: Vec<String>,
    /// Scrape itself at this interval (gives `up`, metadata and live samples).
    pub scrape_self: Option<Duration>,
    /// Further `host:port` targets scraped with it (an HA pair scrapes the same targets).
    pub scrape_targets: Vec<String>,
    /// A fixed port (to restart a stopped server where it was); a free one otherwise.
    pub port: Option<u16>,
    /// Reuse this data directory instead of a fresh one (restart with the same data).
    pub data_dir: Option<PathBuf>,
    /// Top-level YAML appended to the configuration (`remote_write:`, `remote_read:`).
    pub extra_config: String,
    /// A web configuration (`--web.config.file`: `tls_server_config`,
    /// `basic_auth_users`). With one, readiness is that the listener answers plain HTTP at
    /// all (400 from a TLS listener, 401 behind basic auth); the caller checks the rest.
    pub web_config: Option<String>,
    /// Further command-line flags (`--enable-feature=...`).
    pub flags: Vec<String>,
}

impl PrometheusOptions {
    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.external_labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    pub fn data(mut self, openmetrics: String) -> Self {
        self.openmetrics.push(openmetrics);
        self
    }

    pub fn scrape_self(mut self, every: Duration) -> Self {
        self.scrape_self = Some(every);
        self
    }
}

/// The last lines of a server's log, for messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
}

/// A server process started here: suspended, resumed or killed on request, and killed
/// (resumed first, so that it can die) when dropped, so a failing test leaves nothing behind.
pub struct ServerProcess {
    child: Option<Child>,
}

impl ServerProcess {
    pub fn new(child: Child) -> Self {
        ServerProcess { child: Some(child) }
    }

    /// Runs `command` with its standard error in a fresh `log` and waits until it answers
    /// `path` on loopback `port` with `status`, from this very process: a port found free
    /// can be taken by another server before this one binds it. The error ends with the
    /// log's last lines.
    pub fn start(
        what: &str,
        command: &mut Command,
        log: &Path,
        port: u16,
        path: &str,
        status: u16,
        limit: Duration,
    ) -> Result<Self, String> {
        let stderr = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {what}: {e}"))?;
        let mut process = ServerProcess::new(child);
        let url = format!("http://127.0.0.1:{port}{path}");
        process
            .wait_for(what, port, &url, status, limit)
            .map_err(|e| format!("{e}: {}", log_tail(log)))?;
        Ok(process)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGSTOP: it keeps its sockets but answers nothing, as a hung server would.
    pub fn suspend(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Kills it at once (SIGKILL), as a crash would: connections are refused from then on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until `url` answers with `status` while this very process listens on `port`:
    /// a port found free can be taken by another server before this one binds it, and that
    /// server's answers must not pass for this one's. `what` names the server in the error
    /// when it exits first or `limit` passes.
    fn wait_for(
        &mut self,
        what: &str,
        port: u16,
        url: &str,
        status: u16,
        limit: Duration,
    ) -> Result<(), String> {
        let until = Instant::now() + limit;
        loop {
            if http_get(url).is_ok_and(|r| r.status == status)
                && self.listens_on(port) != Some(false)
            {
                return Ok(());
            }
            if let Some(exit) = self.exited() {
                return Err(format!("{what} exited with {exit}"));
            }
            if Instant::now() > until {
                return Err(format!("{what} not ready within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether this process holds a socket listening on loopback `port`; None where
    /// `/proc` cannot tell.
    fn listens_on(&self, port: u16) -> Option<bool> {
        let pid = self.pid()?;
        let sockets: Vec<String> = listening_sockets(port)?
            .iter()
            .map(|inode| format!("socket:[{inode}]"))
            .collect();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        Some(
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|link| sockets.iter().any(|s| link.as_os_str() == s.as_str())),
        )
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.wait(),
            None => Err(std::io::Error::other("already killed")),
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// A running Prometheus, stopped on drop.
pub struct PrometheusServer {
    process: ServerProcess,
    port: u16,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    pub fn start(bin: &PrometheusBinary, opts: PrometheusOptions) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
        for (i, text) in opts.openmetrics.iter().enumerate() {
            let file = dir.path().join(format!("data-{i}.om"));
            std::fs::write(&file, text).map_err(|e| e.to_string())?;
            bin.backfill(&file, &data_dir)?;
        }
        let log = dir.path().join("prometheus.log");
        let ready = match &opts.web_config {
            Some(web) if web.contains("tls_server_config") => 400,
            Some(web) if web.contains("basic_auth_users") => 401,
            _ => 200,
        };
        let launch = |port: u16| -> Result<(ServerProcess, u16), String> {
            let config = dir.path().join("prometheus.yml");
            std::fs::write(&config, config_yaml(&opts, port)).map_err(|e| e.to_string())?;
            let mut command = Command::new(&bin.prometheus);
            if let Some(web) = &opts.web_config {
                let path = dir.path().join("web.yml");
                std::fs::write(&path, web).map_err(|e| e.to_string())?;
                command.arg(format!("--web.config.file={}", path.display()));
            }
            command
                .args(&opts.flags)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                .arg("--storage.tsdb.retention.time=3650d")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--web.enable-lifecycle")
                .arg("--web.enable-admin-api");
            let limit = Duration::from_secs(60);
            let process = ServerProcess::start(
                "prometheus",
                &mut command,
                &log,
                port,
                "/-/ready",
                ready,
                limit,
            )?;
            Ok((process, port))
        };
        let (process, port) = match opts.port {
            Some(port) => launch(port)?,
            None => on_free_port(&log, launch)?,
        };
        Ok(PrometheusServer {
            process,
            port,
            data_dir,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing, as a hung one would.
    pub fn suspend(&self) {
        self.process.suspend();
    }

    pub fn resume(&self) {
        self.process.resume();
    }
}

fn config_yaml(opts: &PrometheusOptions, port: u16) -> String {
    let mut y = String::from("global:\n");
    if let Some(every) = opts.scrape_self {
        y.push_str(&format!("  scrape_interval: {}ms\n", every.as_millis()));
    }
    if !opts.external_labels.is_empty() {
        y.push_str("  external_labels:\n");
        for (k, v) in &opts.external_labels {
            y.push_str(&format!("    {k}: {v:?}\n"));
        }
    }
    match opts.scrape_self {
        Some(_) => {
            let mut targets = vec![format!("'127.0.0.1:{port}'")];
            let own = format!("127.0.0.1:{port}");
            targets.extend(
                opts.scrape_targets
                    .iter()
                    .filter(|t| **t != own)
                    .map(|t| format!("'{t}'")),
            );
            y.push_str(&format!(
                "scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ))
        }
        None => y.push_str("scrape_configs: []\n"),
    }
    y.push_str(&opts.extra_config);
    y
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Starts a server through `start` on a free loopback port, and on another one (three
/// tries in all) when the server's `log` says the port was taken between being found free
/// and being bound, as happens when tests start servers side by side.
pub fn on_free_port<T>(
    log: &Path,
    mut start: impl FnMut(u16) -> Result<T, String>,
) -> Result<T, String> {
    let mut tries = 1;
    loop {
        let port = free_port()?;
        match start(port) {
            Err(_) if tries < 3 && port_was_taken(log) => tries += 1,
            started => return started,
        }
    }
}

fn port_was_taken(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .is_ok_and(|text| text.to_ascii_lowercase().contains("address already in use"))
}

/// The inodes of the TCP sockets listening on `port`, from `/proc/net`; None without it.
fn listening_sockets(port: u16) -> Option<Vec<u64>> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if local_port == Some(port) && *state == LISTEN {
                inodes.extend(inode.parse::<u64>().ok());
            }
        }
    }
    readable.then_some(inodes)
}
