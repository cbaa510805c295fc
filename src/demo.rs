//! `promgate demo`: real Prometheus servers with two days of synthetic data and a promgate
//! configuration in front of them, so a newcomer sees fan-out, external labels and replica
//! deduplication within a minute.
//!
//! Data centre `eu1` is an HA pair (replicas `a` and `b` scrape at different offsets, and
//! `b` was down for 30 minutes), data centre `us1` is one server, on Prometheus 2.42 when it
//! is installed beside 3.5 (real fleets are rarely uniform). Every server also scrapes
//! itself, so `up` and metric metadata exist. Older data of `eu1` (the week before) lies in
//! TSDB blocks in a directory, as a long-term store would hold them, read by a blocks
//! backend. [`Demo`] keeps the servers running until it is dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::realenv::synth::{SynthSpec, openmetrics};
use crate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, free_port};

const HOUR: i64 = 3_600_000;

/// The demo's servers and the configuration written for them.
pub struct Demo {
    /// Backend name, cluster, replica and the running server, in configuration order.
    pub backends: Vec<(String, String, String, PrometheusServer)>,
    pub config_path: PathBuf,
    /// End of the synthetic data, unix milliseconds.
    pub data_end_ms: i64,
    /// eu1-b's gap, unix milliseconds.
    pub gap: (i64, i64),
    /// Where eu1's older blocks are, and the time range they cover (unix milliseconds).
    pub blocks: (PathBuf, i64, i64),
}

/// Days of older data in the blocks backend.
const BLOCK_DAYS: i64 = 7;

/// Installs Prometheus when it is missing (as root on Debian), starts the three servers with
/// `hours` of backfilled data, and writes `dir/promgate.toml` listening on `listen`.
pub fn prepare_demo(dir: &Path, listen: &str, hours: i64) -> Result<Demo, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let main = match PrometheusBinary::any() {
        Ok(bin) => bin,
        Err(missing) => {
            if !can_install() {
                return Err(missing);
            }
            eprintln!("Prometheus is missing: installing Debian's package");
            install_prometheus()?;
            PrometheusBinary::any()?
        }
    };
    let other = PrometheusBinary::v2().unwrap_or_else(|_| main.clone());

    // Backfilled samples must be older than the ones the servers scrape from now on.
    let end = crate::time::now_ms() - 2 * 60_000;
    let eu1 = SynthSpec::hours_until(end, hours.max(1));
    let gap_start = eu1.end_ms - 6 * HOUR;
    let gap = (gap_start, gap_start + 30 * 60_000);
    let eu1_b = eu1.clone().offset(7_500).gap(gap.0, gap.1);
    let mut us1 = eu1.clone().offset(3_000);
    us1.instances = 6;
    // The week before, at one sample a minute: what eu1-a would have shipped to storage.
    let mut older = SynthSpec::hours_until(eu1.start_ms - 60_000, BLOCK_DAYS * 24);
    older.interval_ms = 60_000;
    let blocks_dir = dir.join("blocks-eu1");

    let ports = [
        preferred_port(9091)?,
        preferred_port(9092)?,
        preferred_port(9093)?,
    ];
    // The HA pair scrapes the same targets, as real replicas do.
    let eu1_targets: Vec<String> = ports[..2]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let plans = [
        (
            "eu1-a",
            "eu1",
            "a",
            &main,
            eu1.clone(),
            ports[0],
            eu1_targets.clone(),
        ),
        ("eu1-b", "eu1", "b", &main, eu1_b, ports[1], eu1_targets),
        ("us1-a", "us1", "a", &other, us1, ports[2], Vec::new()),
    ];
    eprintln!(
        "backfilling {hours} h of data into 3 Prometheus servers and starting them, \
         and {BLOCK_DAYS} days of older data into blocks..."
    );
    let (started, blocks): (Vec<Result<PrometheusServer, String>>, Result<(), String>) =
        std::thread::scope(|s| {
            let blocks = s.spawn(|| write_blocks(&main, &older, &blocks_dir));
            let handles: Vec<_> = plans
                .iter()
                .map(|(_, cluster, replica, bin, spec, port, targets)| {
                    s.spawn(move || {
                        let mut options = PrometheusOptions::default()
                            .labels(&[("cluster", cluster), ("replica", replica)])
                            .data(openmetrics(spec))
                            .scrape_self(Duration::from_secs(15));
                        options.port = Some(*port);
                        options.scrape_targets = targets.clone();
                        PrometheusServer::start(bin, options)
                    })
                })
                .collect();
            let started = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a server start panicked".to_string()))
                })
                .collect();
            let blocks = blocks
                .join()
                .unwrap_or_else(|_| Err("writing blocks panicked".to_string()));
            (started, blocks)
        });
    blocks?;
    let mut backends = Vec::new();
    for ((name, cluster, replica, ..), server) in plans.iter().zip(started) {
        backends.push((
            name.to_string(),
            cluster.to_string(),
            replica.to_string(),
            server?,
        ));
    }
    let config_path = dir.join("promgate.toml");
    std::fs::write(&config_path, config_toml(listen, &backends, &blocks_dir))
        .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
    Ok(Demo {
        backends,
        config_path,
        data_end_ms: eu1.end_ms,
        gap,
        blocks: (blocks_dir, older.start_ms, older.end_ms),
    })
}

/// Writes the blocks of `spec` into a fresh `dir`.
fn write_blocks(bin: &PrometheusBinary, spec: &SynthSpec, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("clearing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let text = dir.with_extension("om");
    std::fs::write(&text, openmetrics(spec))
        .map_err(|e| format!("writing {}: {e}", text.display()))?;
    let written = bin.backfill(&text, dir);
    let _ = std::fs::remove_file(&text);
    written
}

fn config_toml(
    listen: &str,
    backends: &[(String, String, String, PrometheusServer)],
    blocks: &Path,
) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut t = String::from("# Written by `promgate demo`.\n");
    let _ = writeln!(t, "[server]\nlisten = {}\n", quote(listen));
    t.push_str(
        "[query]\nreplica_labels = [\"replica\"]\npartial_response = true\ntimeout = \"2m\"\n",
    );
    for (name, _, _, server) in backends {
        let _ = write!(
            t,
            "\n[[backend]]\nname = {}\nkind = \"prometheus\"\nurl = {}\ntimeout = \"30s\"\n",
            quote(name),
            quote(&server.url())
        );
    }
    let _ = write!(
        t,
        "\n# eu1's older data, as eu1-a would have shipped it to a bucket.\n\
         [[backend]]\nname = \"eu1-lts\"\nkind = \"blocks\"\ndir = {}\n\
         labels = {{ cluster = \"eu1\", replica = \"a\" }}\n",
        quote(&blocks.display().to_string())
    );
    t
}

impl Demo {
    /// What to tell the user once promgate listens on `listen`.
    pub fn tips(&self, listen: &str) -> String {
        let base = format!("http://{listen}");
        let mut t = String::new();
        let _ = writeln!(t, "\npromgate is answering the Prometheus API on {base}");
        let _ = writeln!(
            t,
            "(in Grafana: a Prometheus data source with URL {base})\n"
        );
        let _ = writeln!(t, "Behind it:");
        for (name, cluster, replica, server) in &self.backends {
            let _ = writeln!(
                t,
                "  {name:<6} {}  cluster={cluster} replica={replica}",
                server.url()
            );
        }
        let _ = writeln!(
            t,
            "The synthetic data ends at {}; eu1-b misses 30 minutes, which promgate fills from eu1-a.",
            rfc3339(self.data_end_ms)
        );
        let (blocks, from, to) = &self.blocks;
        let _ = writeln!(
            t,
            "  eu1-lts blocks in {} from {} to {}, cluster=eu1 replica=a",
            blocks.display(),
            rfc3339(*from),
            rfc3339(*to)
        );
        let _ = writeln!(t, "Config: {}\n", self.config_path.display());
        let at = format!("time={}", self.data_end_ms / 1000);
        let (start, end) = (self.gap.0 / 1000 - 3600, self.gap.1 / 1000 + 3600);
        let (_, from, to) = &self.blocks;
        let week = format!("time={}", (from + to) / 2 / 1000);
        let examples: [(&str, &str, Vec<String>); 6] = [
            (
                "every scrape target, both data centres",
                "/api/v1/query",
                vec!["query=up".into()],
            ),
            (
                "request rate per data centre (exact: the groups stay apart)",
                "/api/v1/query",
                vec![
                    "query=sum by (cluster) (rate(demo_requests_total[5m]))".into(),
                    at.clone(),
                ],
            ),
            (
                "eu1's temperatures across eu1-b's gap, without a hole",
                "/api/v1/query_range",
                vec![
                    "query=demo_temperature_celsius{cluster=\"eu1\"}".into(),
                    format!("start={start}"),
                    format!("end={end}"),
                    "step=60".into(),
                ],
            ),
            (
                "a sum across data centres (exact: partial sums per group, combined)",
                "/api/v1/query",
                vec!["query=sum(demo_temperature_celsius)".into(), at],
            ),
            (
                "eu1 last week, from its blocks",
                "/api/v1/query",
                vec![
                    "query=sum by (cluster) (rate(demo_requests_total[5m]))".into(),
                    week,
                ],
            ),
            ("values of a label", "/api/v1/label/cluster/values", vec![]),
        ];
        let _ = writeln!(t, "Try:");
        for (what, path, params) in examples {
            let _ = writeln!(t, "  # {what}");
            let mut cmd = format!("  curl -sG {base}{path}");
            for p in params {
                let _ = write!(cmd, " --data-urlencode '{p}'");
            }
            let _ = writeln!(t, "{cmd}");
        }
        t
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The conventional port when it is free, else any free one.
fn preferred_port(port: u16) -> Result<u16, String> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        Ok(port)
    } else {
        free_port()
    }
}

/// Root on Debian: apt can install the `prometheus` package.
fn can_install() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    });
    root && Path::new("/etc/debian_version").exists()
}

/// `apt-get install prometheus`, with a policy-rc.d that keeps the packaged service from
/// starting (it would take port 9090).
fn install_prometheus() -> Result<(), String> {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    if !policy.exists() {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")
            .map_err(|e| format!("writing {}: {e}", policy.display()))?;
        let _ = Command::new("chmod")
            .args(["755", "/usr/sbin/policy-rc.d"])
            .status();
    }
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "prometheus"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("apt-get {} exited with {status}", args.join(" ")));
        }
    }
    Ok(())
}
