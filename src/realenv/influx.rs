//! A real InfluxDB 1.x (Debian's `influxdb` package) on loopback: the long-term store that
//! Prometheus remote-writes to and remote-reads from.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{free_port, http};

/// A running `influxd`, stopped on drop.
pub struct InfluxServer {
    process: super::ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl InfluxServer {
    /// Starts influxd with its data in a temporary directory and creates `database`.
    pub fn start(database: &str) -> Result<Self, String> {
        let influxd = Path::new("/usr/bin/influxd");
        if !influxd.is_file() {
            return Err("no /usr/bin/influxd: apt-get install influxdb (bash .ci/run does)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("influxd.log");
        let launch = |port: u16| -> Result<(super::ServerProcess, u16), String> {
            let rpc = free_port()?;
            let d = dir.path().display();
            let config = format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = \"{d}/meta\"\n\
                 [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
                 [monitor]\n  store-enabled = false\n"
            );
            let config_path = dir.path().join("influxdb.conf");
            std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
            let mut command = Command::new(influxd);
            command.arg("run").arg("-config").arg(&config_path);
            let limit = Duration::from_secs(30);
            let process = super::ServerProcess::start(
                "influxd",
                &mut command,
                &log,
                port,
                "/ping",
                204,
                limit,
            )?;
            Ok((process, port))
        };
        let (process, port) = super::on_free_port(&log, launch)?;
        let server = InfluxServer { process, port, dir };
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &format!("CREATE DATABASE \"{database}\""))
            .finish();
        let r = http("POST", &format!("{}/query?{q}", server.url()), &[], b"")
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("CREATE DATABASE: HTTP {} {}", r.status, r.text()));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Prometheus `remote_write` URL for `database`.
    pub fn write_url(&self, database: &str) -> String {
        format!("{}/api/v1/prom/write?db={database}", self.url())
    }

    /// Prometheus `remote_read` URL for `database`.
    pub fn read_url(&self, database: &str) -> String {
        format!("{}/api/v1/prom/read?db={database}", self.url())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGSTOP: keeps its socket, answers nothing (a hung store).
    pub fn suspend(&self) {
        self.process.suspend();
    }

    pub fn resume(&self) {
        self.process.resume();
    }

    /// Stops it at once: connections are refused from then on.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
