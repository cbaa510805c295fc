//! A real S3 server on loopback for tests: moto's server (`pip install 'moto[server]'`,
//! which `.ci/run` does). It keeps everything in memory, accepts any credentials without
//! checking signatures and wants path-style URLs.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::http;
use crate::storage::object::S3Location;

/// A running moto server, stopped on drop.
pub struct S3Server {
    process: super::ServerProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto on a free loopback port and waits until it answers; an error when moto
    /// is not installed or does not come up.
    pub fn start() -> Result<Self, String> {
        let present = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("no python3 to run moto's S3 server: {e}"))?;
        if !present.success() {
            return Err(
                "moto's S3 server is not installed: pip install 'moto[server]' (bash .ci/run does)"
                    .into(),
            );
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("moto.log");
        let launch = |port: u16| -> Result<(super::ServerProcess, u16), String> {
            let mut command = Command::new("python3");
            command
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string());
            let limit = Duration::from_secs(60);
            let process =
                super::ServerProcess::start("moto", &mut command, &log, port, "/", 200, limit)?;
            Ok((process, port))
        };
        let (process, port) = super::on_free_port(&log, launch)?;
        let server = S3Server {
            process,
            port,
            _dir: dir,
        };
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (names are 3 to 63 lowercase letters, digits, dots and dashes).
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        let r = http("PUT", &format!("{}/{name}", self.endpoint()), &[], b"")
            .map_err(|e| format!("creating bucket {name}: {e}"))?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!(
                "creating bucket {name}: HTTP {} {}",
                r.status,
                r.text()
            ))
        }
    }

    /// Where `bucket` (below `prefix`, `""` or ending in `/`) is, with throwaway keys.
    pub fn location(&self, bucket: &str, prefix: &str) -> S3Location {
        S3Location {
            endpoint: self.endpoint(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: "us-east-1".to_string(),
            path_style: true,
            access_key: Some("test-access".to_string()),
            secret_key: Some("test-secret".to_string()),
        }
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
