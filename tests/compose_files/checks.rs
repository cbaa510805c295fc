//! Checks of the files a stack mounts: promgate's configuration, Prometheus's (with
//! promtool, as the container sees it) and Grafana's data sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use super::stack::{Service, Source, Stack, copy_into, text_of};
use super::{
    PROMETHEUS_DEFAULT_CONFIG, PROMGATE_CONFIG_IN_CONTAINER, files_under, is_prometheus_config,
};

// === promgate's configuration ===

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
}

/// Every promgate configuration mounted in the stack is valid, listens beyond loopback, and
/// names only hosts that are services of the stack.
pub fn promgate_problems(stack: &Stack) -> Vec<String> {
    let mut problems = Vec::new();
    let mounted = stack.sources_of(PROMGATE_CONFIG_IN_CONTAINER);
    if mounted.is_empty() {
        problems.push(format!(
            "{}: no service mounts a promgate configuration at {PROMGATE_CONFIG_IN_CONTAINER}",
            stack.dir.display()
        ));
    }
    for (service, path) in mounted {
        let at = format!("{} (services.{})", path.display(), service.name);
        let config = match promgate::config::Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        match promgate::config::parse_listen(&config.server.listen) {
            Ok(addr) if addr.ip().is_loopback() => problems.push(format!(
                "{at}: server.listen {} is unreachable from other containers",
                config.server.listen
            )),
            _ => {}
        }
        for backend in &config.backends {
            let urls = [
                Some(backend.url.as_str()),
                backend.bucket.as_ref().map(|b| b.endpoint.as_str()),
            ];
            for url in urls.into_iter().flatten().filter(|u| !u.is_empty()) {
                match host_of(url) {
                    Some(host) if stack.has_service(&host) => {}
                    _ => problems.push(format!(
                        "{at}: backend {}: {url} is not a service of the stack",
                        backend.name
                    )),
                }
            }
        }
    }
    problems
}

/// The port promgate listens on in the services that mount its configuration.
fn promgate_ports(stack: &Stack) -> BTreeMap<String, u16> {
    stack
        .sources_of(PROMGATE_CONFIG_IN_CONTAINER)
        .into_iter()
        .filter_map(|(service, path)| {
            let config = promgate::config::Config::load(&path).ok()?;
            let addr = promgate::config::parse_listen(&config.server.listen).ok()?;
            Some((service.name.clone(), addr.port()))
        })
        .collect()
}

// === Prometheus ===

pub fn promtool() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PROMTOOL").map(PathBuf::from),
        Some(PathBuf::from("/opt/prom3/usr/bin/promtool")),
        Some(PathBuf::from("promtool")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn is_prometheus(service: &Service) -> bool {
    service
        .image
        .as_deref()
        .is_some_and(|i| i.starts_with("prom/prometheus:"))
}

fn config_file_flag(service: &Service) -> String {
    service
        .command
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .unwrap_or(PROMETHEUS_DEFAULT_CONFIG)
        .to_string()
}

/// Hosts a Prometheus configuration talks to: scrape targets and remote endpoints.
fn prometheus_hosts(config: &Value) -> Vec<String> {
    let mut hosts = Vec::new();
    for job in config
        .get("scrape_configs")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        for statics in job
            .get("static_configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for target in statics
                .get("targets")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(text_of)
            {
                hosts.push(
                    target
                        .rsplit_once(':')
                        .map_or(target.clone(), |(h, _)| h.to_string()),
                );
            }
        }
    }
    for key in ["remote_write", "remote_read"] {
        for endpoint in config
            .get(key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(host) = endpoint
                .get("url")
                .and_then(text_of)
                .and_then(|u| host_of(&u))
            {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// Each Prometheus service's configuration parses, reaches only hosts of the stack, and —
/// with `promtool` — passes `promtool check config` with the service's bind mounts laid out
/// as in its container, so rule files resolve as they will there. Every prometheus*.yml of
/// the stack must be some service's configuration.
pub fn prometheus_problems(stack: &Stack, promtool: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for service in stack.services.iter().filter(|s| is_prometheus(s)) {
        let at = format!("{}: services.{}", stack.dir.display(), service.name);
        let config_in_container = config_file_flag(service);
        let Some((_, config_path)) = stack
            .sources_of(&config_in_container)
            .into_iter()
            .find(|(s, _)| s.name == service.name)
        else {
            problems.push(format!("{at}: nothing mounted at {config_in_container}"));
            continue;
        };
        used.insert(config_path.canonicalize().unwrap_or(config_path.clone()));
        let config: Value = match std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_yaml::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", config_path.display()));
                continue;
            }
        };
        for host in prometheus_hosts(&config) {
            if host != "localhost" && !stack.has_service(&host) {
                problems.push(format!(
                    "{}: {host} is not a service of the stack",
                    config_path.display()
                ));
            }
        }
        let Some(promtool) = promtool else { continue };
        let root = tempfile::tempdir().expect("temporary directory");
        for mount in &service.mounts {
            if let Source::Bind(from) = &mount.source {
                let to = root.path().join(mount.target.trim_start_matches('/'));
                if let Err(e) = copy_into(from, &to) {
                    problems.push(format!("{at}: copying {}: {e}", from.display()));
                }
            }
        }
        let file = root
            .path()
            .join(config_in_container.trim_start_matches('/'));
        match Command::new(promtool)
            .args(["check", "config"])
            .arg(&file)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => problems.push(format!(
                "{at}: promtool check config {} failed:\n{}{}",
                config_path.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => problems.push(format!("{at}: cannot run promtool: {e}")),
        }
    }
    for file in files_under(&stack.dir, &is_prometheus_config) {
        if !used.contains(&file.canonicalize().unwrap_or(file.clone())) {
            problems.push(format!(
                "{}: not the configuration of any Prometheus service",
                file.display()
            ));
        }
    }
    problems
}

// === Grafana ===

/// Grafana's provisioned data sources: a default Prometheus one whose URL is the stack's
/// promgate at the port its configuration listens on.
pub fn grafana_problems(stack: &Stack) -> Vec<String> {
    let mut problems = Vec::new();
    let promgates = promgate_ports(stack);
    let files = files_under(&stack.dir.join("grafana/provisioning/datasources"), &|n| {
        n.ends_with(".yaml") || n.ends_with(".yml")
    });
    if files.is_empty() {
        problems.push(format!(
            "{}: no Grafana data source under grafana/provisioning/datasources",
            stack.dir.display()
        ));
    }
    let mut default_is_promgate = false;
    for file in files {
        let doc: Value = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_yaml::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        for ds in doc
            .get("datasources")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = ds.get("name").and_then(text_of).unwrap_or_default();
            let at = format!("{}: data source {name:?}", file.display());
            if ds.get("type").and_then(text_of).as_deref() != Some("prometheus") {
                continue;
            }
            let url = ds.get("url").and_then(text_of).unwrap_or_default();
            let parsed = url::Url::parse(&url).ok();
            let target = parsed
                .as_ref()
                .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)));
            match target {
                Some((host, port)) if promgates.get(&host) == Some(&port) => {
                    if ds.get("isDefault").and_then(Value::as_bool) == Some(true) {
                        default_is_promgate = true;
                    }
                }
                _ => problems.push(format!(
                    "{at}: url {url:?} is not a promgate of the stack (those: {promgates:?})"
                )),
            }
            let json = ds.get("jsonData");
            let flavour = json.and_then(|j| j.get("prometheusType")).and_then(text_of);
            if flavour.as_deref() != Some("Prometheus") {
                problems.push(format!(
                    "{at}: jsonData.prometheusType is {flavour:?}, not \"Prometheus\""
                ));
            }
            let version = json
                .and_then(|j| j.get("prometheusVersion"))
                .and_then(text_of);
            if version.as_deref() != Some("3.5.0") {
                problems.push(format!(
                    "{at}: jsonData.prometheusVersion is {version:?}; promgate's buildinfo says 3.5.0"
                ));
            }
        }
    }
    if !default_is_promgate {
        problems.push(format!(
            "{}: no default Grafana data source pointing at promgate",
            stack.dir.display()
        ));
    }
    problems
}

// === promgate's metrics in alert rules and dashboards ===

/// Every series name promgate's /metrics can hold, from the `# TYPE` lines of a fresh
/// registry: counters as `_total`, histograms as `_bucket`, `_sum` and `_count`, info
/// metrics as `_info`.
pub fn exported_metric_names() -> BTreeSet<String> {
    let text = promgate::telemetry::Metrics::new().render();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for suffix in suffixes {
            let full = format!("{name}{suffix}");
            // A counter whose TYPE line already carries the suffix.
            names.insert(full.replace("_total_total", "_total"));
        }
    }
    names
}

/// `promgate_*` names in a PromQL expression that promgate does not export, or the
/// parser's complaint when it is not PromQL.
fn unknown_metrics(expr: &str, exported: &BTreeSet<String>) -> Vec<String> {
    if let Err(e) = promql_parser::parser::parse(expr) {
        return vec![format!("not PromQL ({e}): {expr}")];
    }
    let names = regex::Regex::new(r"\bpromgate_[a-zA-Z0-9_]*").expect("regex");
    names
        .find_iter(expr)
        .map(|m| m.as_str().to_string())
        .filter(|name| !exported.contains(name))
        .map(|name| format!("{name} is not a metric promgate exports"))
        .collect()
}

/// Alert and recording rules under the stack's rules/: YAML, PromQL, and only metrics
/// promgate exports.
pub fn rule_problems(stack: &Stack, exported: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files_under(&stack.dir.join("rules"), &|n| {
        n.ends_with(".yml") || n.ends_with(".yaml")
    }) {
        let doc: Value = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_yaml::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        for group in doc
            .get("groups")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for rule in group
                .get("rules")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let expr = rule.get("expr").and_then(text_of).unwrap_or_default();
                for p in unknown_metrics(&expr, exported) {
                    problems.push(format!("{}: {p}", file.display()));
                }
            }
        }
    }
    problems
}

/// The uids of the data sources the stack provisions in Grafana.
fn datasource_uids(stack: &Stack) -> BTreeSet<String> {
    files_under(&stack.dir.join("grafana/provisioning/datasources"), &|n| {
        n.ends_with(".yaml") || n.ends_with(".yml")
    })
    .into_iter()
    .filter_map(|f| serde_yaml::from_str::<Value>(&std::fs::read_to_string(f).ok()?).ok())
    .flat_map(|doc| {
        doc.get("datasources")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    })
    .filter_map(|ds| ds.get("uid").and_then(text_of))
    .collect()
}

/// Provisioned dashboards: JSON whose panels use provisioned data sources and whose queries
/// are PromQL over metrics promgate exports.
pub fn dashboard_problems(stack: &Stack, exported: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let uids = datasource_uids(stack);
    for file in files_under(&stack.dir.join("grafana/provisioning/dashboards"), &|n| {
        n.ends_with(".json")
    }) {
        let dashboard: serde_json::Value = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let mut panels: Vec<&serde_json::Value> = Vec::new();
        let mut pending: Vec<&serde_json::Value> = vec![&dashboard];
        while let Some(node) = pending.pop() {
            for panel in node["panels"].as_array().into_iter().flatten() {
                panels.push(panel);
                pending.push(panel);
            }
        }
        if panels.is_empty() {
            problems.push(format!("{}: no panels", file.display()));
        }
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            let at = format!("{}: panel {title:?}", file.display());
            let mut sources = vec![&panel["datasource"]];
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            for target in &targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                for p in unknown_metrics(expr, exported) {
                    problems.push(format!("{at}: {p}"));
                }
            }
            sources.extend(targets.iter().map(|t| &t["datasource"]).collect::<Vec<_>>());
            for source in sources.into_iter().filter(|s| !s.is_null()) {
                let uid = source["uid"].as_str().unwrap_or_default();
                if !uids.contains(uid) {
                    problems.push(format!(
                        "{at}: data source uid {uid:?} is not provisioned ({uids:?})"
                    ));
                }
            }
        }
    }
    problems
}

// === shipping blocks ===

/// The value of `--flag VALUE` or `--flag=VALUE` in a command's words.
fn flag_value(words: &[String], flag: &str) -> Option<String> {
    let with_equals = format!("{flag}=");
    words.iter().enumerate().find_map(|(i, w)| {
        if w == flag {
            words.get(i + 1).cloned()
        } else {
            w.strip_prefix(&with_equals).map(str::to_string)
        }
    })
}

fn with_slash(prefix: &str) -> String {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// Services that run `promgate upload`: each reads the data volume of a Prometheus that cuts
/// 2-hour blocks and never compacts them (so an uploaded block stays what is on disk), and
/// uploads to a bucket and prefix a blocks backend of the stack's promgate reads, at an
/// endpoint that is a service of the stack.
pub fn upload_problems(stack: &Stack) -> Vec<String> {
    let mut problems = Vec::new();
    let readers: Vec<(String, String)> = stack
        .sources_of(PROMGATE_CONFIG_IN_CONTAINER)
        .into_iter()
        .filter_map(|(_, path)| promgate::config::Config::load(&path).ok())
        .flat_map(|config| config.backends)
        .filter_map(|b| b.bucket)
        .map(|b| (b.bucket, with_slash(&b.prefix)))
        .collect();
    for service in &stack.services {
        let words: Vec<String> = service
            .command
            .iter()
            .flat_map(|c| c.split_whitespace())
            .filter(|w| *w != "\\")
            .map(str::to_string)
            .collect();
        if !words
            .windows(2)
            .any(|w| w[0] == "promgate" && w[1] == "upload")
        {
            continue;
        }
        let at = format!("{}: services.{}", stack.dir.display(), service.name);
        let from = flag_value(&words, "--from").unwrap_or_default();
        let volume = service.mounts.iter().find_map(|m| match &m.source {
            Source::Volume(v) if m.target == from => Some(v.clone()),
            _ => None,
        });
        let Some(volume) = volume else {
            problems.push(format!("{at}: --from {from} is not a mounted volume"));
            continue;
        };
        let prometheus = stack.services.iter().find(|s| {
            let data =
                flag_value(&s.command, "--storage.tsdb.path").unwrap_or("/prometheus".to_string());
            is_prometheus(s)
                && s.mounts.iter().any(|m| {
                    matches!(&m.source, Source::Volume(v) if *v == volume) && m.target == data
                })
        });
        match prometheus {
            None => problems.push(format!(
                "{at}: volume {volume} is no Prometheus's data directory"
            )),
            Some(p) => {
                for flag in [
                    "--storage.tsdb.min-block-duration",
                    "--storage.tsdb.max-block-duration",
                ] {
                    if flag_value(&p.command, flag).as_deref() != Some("2h") {
                        problems.push(format!(
                            "{at}: services.{} must run with {flag}=2h, or its blocks are compacted after upload",
                            p.name
                        ));
                    }
                }
            }
        }
        let bucket = flag_value(&words, "--bucket").unwrap_or_default();
        let prefix = with_slash(&flag_value(&words, "--prefix").unwrap_or_default());
        if !readers.contains(&(bucket.clone(), prefix.clone())) {
            problems.push(format!(
                "{at}: uploads to bucket {bucket:?} prefix {prefix:?}, which no blocks backend reads ({readers:?})"
            ));
        }
        let endpoint = flag_value(&words, "--endpoint").unwrap_or_default();
        if !host_of(&endpoint).is_some_and(|h| stack.has_service(&h)) {
            problems.push(format!(
                "{at}: --endpoint {endpoint:?} is not a service of the stack"
            ));
        }
    }
    problems
}
