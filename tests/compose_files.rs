//! The docker compose stacks under compose/ hold together: each compose file parses and
//! (when a compose binary is at hand) passes `compose config`; every service has an image or
//! a build; every bind mount's source is in the repository; every promgate configuration
//! passes promgate's own validation and names hosts the stack has; every Prometheus
//! configuration parses, passes `promtool check config` as its container sees it (mounts
//! laid out in a temporary root) and scrapes hosts of the stack; Grafana's data sources
//! point at the stack's promgate; alert rules and dashboards query metrics promgate exports;
//! `promgate upload` services ship a non-compacting Prometheus's blocks to where a blocks
//! backend reads them; the Dockerfile runs the configuration the stacks mount. Each check also runs on a broken
//! stack, to show it fails. Without promtool or a compose binary those two checks are
//! skipped with a message, except under CI (`CI=true`), where .ci/run installs both.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

#[path = "compose_files/checks.rs"]
mod checks;
#[path = "compose_files/stack.rs"]
mod stack;

use checks::{
    dashboard_problems, exported_metric_names, grafana_problems, prometheus_problems,
    promgate_problems, promtool, rule_problems, upload_problems,
};
use stack::{compose_command, compose_config_problems, copy_into, load_stack};

/// Where promgate's configuration sits in its container (the Dockerfile's CMD).
const PROMGATE_CONFIG_IN_CONTAINER: &str = "/etc/promgate/promgate.toml";
const PROMETHEUS_DEFAULT_CONFIG: &str = "/etc/prometheus/prometheus.yml";

fn compose_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compose")
}

/// Every directory under compose/ holding a compose.yaml.
fn stacks() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(compose_root())
        .expect("compose/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("compose.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Files under `dir` (recursively) whose name satisfies `keep`.
fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn is_prometheus_config(name: &str) -> bool {
    name.starts_with("prometheus") && (name.ends_with(".yml") || name.ends_with(".yaml"))
}

// === the checks, together ===

fn stack_problems(dir: &Path, promtool: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(stack) = load_stack(dir, &mut problems) else {
        return problems;
    };
    problems.extend(promgate_problems(&stack));
    problems.extend(prometheus_problems(&stack, promtool));
    problems.extend(grafana_problems(&stack));
    let exported = exported_metric_names();
    problems.extend(rule_problems(&stack, &exported));
    problems.extend(dashboard_problems(&stack, &exported));
    problems.extend(upload_problems(&stack));
    problems
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_stack_holds_together() {
    let stacks = stacks();
    let names: Vec<String> = stacks
        .iter()
        .filter_map(|d| d.file_name()?.to_str().map(str::to_string))
        .collect();
    for expected in ["ha-pair", "influxdb", "s3-blocks", "two-datacentres"] {
        assert!(names.iter().any(|n| n == expected), "no compose/{expected}");
    }
    let promtool = promtool();
    if promtool.is_none() {
        assert!(!in_ci(), "promtool is missing: .ci/run installs it");
        eprintln!(
            "SKIPPED: promtool check config on compose/ (no promtool: set PROMTOOL or install Prometheus)"
        );
    }
    let mut problems = Vec::new();
    for dir in &stacks {
        problems.extend(stack_problems(dir, promtool.as_deref()));
    }
    assert_no_problems(&problems);
}

#[test]
fn compose_accepts_every_stack() {
    let Some(compose) = compose_command() else {
        assert!(
            !in_ci(),
            "no docker compose v2 binary: .ci/run installs one into /opt/compose"
        );
        eprintln!(
            "SKIPPED: `docker compose config` on compose/ (no compose v2 binary: docker-compose, docker compose, or /opt/compose from Debian's docker-compose package)"
        );
        return;
    };
    let mut problems = Vec::new();
    for dir in stacks() {
        problems.extend(compose_config_problems(&compose, &dir.join("compose.yaml")));
    }
    assert_no_problems(&problems);
}

#[test]
fn every_promgate_config_under_compose_is_valid() {
    let files = files_under(&compose_root(), &|n| n.ends_with(".toml"));
    assert!(
        files.len() >= 4,
        "expected promgate configs, found {files:?}"
    );
    for file in files {
        if let Err(e) = promgate::config::Config::load(&file) {
            panic!("{}: {e}", file.display());
        }
    }
}

#[test]
fn every_prometheus_config_under_compose_is_yaml_with_external_labels() {
    let files = files_under(&compose_root(), &is_prometheus_config);
    assert!(
        files.len() >= 8,
        "expected Prometheus configs, found {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        let labels = doc.get("global").and_then(|g| g.get("external_labels"));
        for label in ["cluster", "replica"] {
            assert!(
                labels.and_then(|l| l.get(label)).is_some(),
                "{}: no external label {label}",
                file.display()
            );
        }
    }
}

/// The image the stacks build: promgate built with the lock file, run unprivileged, with the
/// configuration path the stacks mount and this test assumes.
#[test]
fn the_dockerfile_builds_promgate_and_runs_it_unprivileged_on_the_mounted_config() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("FROM rust:1-bookworm AS build"), "builder stage");
    assert!(
        dockerfile.contains("cargo build --release --locked --bin promgate"),
        "release build with the lock file"
    );
    assert!(has("EXPOSE 9090"));
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(!matches!(user.trim(), "root" | "0"), "runs as {user}");
    assert!(has(r#"ENTRYPOINT ["/usr/local/bin/promgate"]"#));
    assert!(
        has(&format!(
            r#"CMD ["run", "--config", "{PROMGATE_CONFIG_IN_CONTAINER}"]"#
        )),
        "CMD runs the configuration the stacks mount"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    for entry in ["target/", "fuzz/target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

/// Each stack carries its own copy of promgate's alert rules and dashboard, so that a stack's
/// directory stands alone; the copies stay equal.
#[test]
fn every_stack_carries_the_same_rules_and_dashboards() {
    for shared in [
        "rules/promgate.yml",
        "grafana/provisioning/datasources/promgate.yaml",
        "grafana/provisioning/dashboards/promgate.yaml",
        "grafana/provisioning/dashboards/promgate.json",
    ] {
        let copies: Vec<(PathBuf, String)> = stacks()
            .into_iter()
            .map(|d| {
                let file = d.join(shared);
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                (file, text)
            })
            .collect();
        for (file, text) in &copies[1..] {
            assert!(
                text == &copies[0].1,
                "{} differs from {}",
                file.display(),
                copies[0].0.display()
            );
        }
    }
}

// === each check fails on a broken stack ===

/// A copy of compose/ha-pair, edited.
fn broken_stack(edit: &dyn Fn(&Path)) -> tempfile::TempDir {
    broken_copy_of("ha-pair", edit)
}

/// A copy of compose/`name` in a temporary directory whose build context is the repository,
/// with `edit` applied to its files.
fn broken_copy_of(name: &str, edit: &dyn Fn(&Path)) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stack");
    copy_into(&compose_root().join(name), &dir).unwrap();
    let compose = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let repo = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &compose,
        text.replace("build: ../..", &format!("build: {repo}")),
    )
    .unwrap();
    edit(&dir);
    root
}

fn problems_of(root: &tempfile::TempDir) -> Vec<String> {
    stack_problems(&root.path().join("stack"), promtool().as_deref())
}

fn replace_in(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

fn assert_reported(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem with {expected:?}, got {problems:#?}"
    );
}

#[test]
fn an_unchanged_copy_of_a_stack_has_no_problems() {
    assert_no_problems(&problems_of(&broken_stack(&|_| {})));
}

#[test]
fn a_compose_file_that_is_not_yaml_is_reported() {
    let root = broken_stack(&|d| replace_in(&d.join("compose.yaml"), "services:", "services: ["));
    assert_reported(&problems_of(&root), "not YAML");
}

#[test]
fn a_service_without_image_or_build_is_reported() {
    let root =
        broken_stack(&|d| replace_in(&d.join("compose.yaml"), "image: grafana/grafana:11.6.0", ""));
    assert_reported(
        &problems_of(&root),
        "services.grafana: neither image nor build",
    );
}

#[test]
fn a_missing_bind_mount_source_is_reported() {
    let root = broken_stack(&|d| std::fs::remove_dir_all(d.join("rules")).unwrap());
    assert_reported(&problems_of(&root), "bind mount source");
}

#[test]
fn an_invalid_promgate_config_is_reported() {
    let root =
        broken_stack(&|d| replace_in(&d.join("promgate.toml"), "replica_labels", "replica_label"));
    assert_reported(&problems_of(&root), "query.replica_label: unknown key");
}

#[test]
fn a_promgate_backend_outside_the_stack_is_reported() {
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("promgate.toml"),
            "http://prometheus-eu1-b:9090",
            "http://prometheus-eu9-b:9090",
        )
    });
    assert_reported(&problems_of(&root), "is not a service of the stack");
}

#[test]
fn a_prometheus_config_promtool_rejects_is_reported() {
    if promtool().is_none() {
        assert!(!in_ci(), "promtool is missing: .ci/run installs it");
        eprintln!("SKIPPED: no promtool");
        return;
    }
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("prometheus-eu1-a.yml"),
            "rules/promgate.yml",
            "rules/missing.yml",
        )
    });
    assert_reported(&problems_of(&root), "promtool check config");
}

#[test]
fn a_prometheus_config_that_is_not_yaml_is_reported() {
    let root =
        broken_stack(&|d| replace_in(&d.join("prometheus-eu1-b.yml"), "global:", "global: ["));
    assert_reported(&problems_of(&root), "prometheus-eu1-b.yml");
}

#[test]
fn a_scrape_target_outside_the_stack_is_reported() {
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("prometheus-eu1-a.yml"),
            "\"promgate:9090\"",
            "\"gateway:9090\"",
        )
    });
    assert_reported(&problems_of(&root), "gateway is not a service of the stack");
}

#[test]
fn a_grafana_data_source_not_pointing_at_promgate_is_reported() {
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("grafana/provisioning/datasources/promgate.yaml"),
            "http://promgate:9090",
            "http://prometheus-eu1-a:9090",
        )
    });
    let problems = problems_of(&root);
    assert_reported(&problems, "is not a promgate of the stack");
    assert_reported(
        &problems,
        "no default Grafana data source pointing at promgate",
    );
}

#[test]
fn exported_metric_names_cover_every_kind() {
    let names = exported_metric_names();
    for name in [
        "promgate_http_requests_total",
        "promgate_http_request_duration_seconds_bucket",
        "promgate_backend_breaker_state",
        "promgate_build_info",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
}

#[test]
fn an_alert_on_a_metric_promgate_does_not_export_is_reported() {
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("rules/promgate.yml"),
            "promgate_backend_up == 0",
            "promgate_backend_down == 1",
        )
    });
    assert_reported(
        &problems_of(&root),
        "promgate_backend_down is not a metric promgate exports",
    );
}

#[test]
fn a_dashboard_on_another_data_source_or_metric_is_reported() {
    let root = broken_stack(&|d| {
        let file = d.join("grafana/provisioning/dashboards/promgate.json");
        replace_in(
            &file,
            "promgate_query_paths_total",
            "promgate_query_path_total",
        );
        replace_in(&file, "\"uid\": \"promgate\"", "\"uid\": \"thanos\"");
    });
    let problems = problems_of(&root);
    assert_reported(&problems, "promgate_query_path_total is not a metric");
    assert_reported(&problems, "data source uid \"thanos\" is not provisioned");
}

#[test]
fn an_unchanged_copy_of_every_stack_has_no_problems() {
    for name in ["influxdb", "s3-blocks", "two-datacentres"] {
        assert_no_problems(&problems_of(&broken_copy_of(name, &|_| {})));
    }
}

#[test]
fn uploads_from_a_compacting_prometheus_are_reported() {
    let root = broken_copy_of("s3-blocks", &|d| {
        replace_in(
            &d.join("compose.yaml"),
            "      - --storage.tsdb.max-block-duration=2h\n",
            "",
        )
    });
    assert_reported(
        &problems_of(&root),
        "must run with --storage.tsdb.max-block-duration=2h",
    );
}

#[test]
fn uploads_no_blocks_backend_reads_are_reported() {
    let root = broken_copy_of("s3-blocks", &|d| {
        replace_in(&d.join("compose.yaml"), "--prefix eu1/", "--prefix us1/")
    });
    assert_reported(&problems_of(&root), "which no blocks backend reads");
}

#[test]
fn compose_rejects_a_malformed_service() {
    let Some(compose) = compose_command() else {
        assert!(!in_ci(), "no docker compose v2 binary");
        eprintln!("SKIPPED: no compose v2 binary");
        return;
    };
    let root = broken_stack(&|d| {
        replace_in(
            &d.join("compose.yaml"),
            "GF_AUTH_ANONYMOUS_ORG_ROLE: Editor",
            "GF_AUTH_ANONYMOUS_ORG_ROLE: [Editor]",
        )
    });
    let problems = compose_config_problems(&compose, &root.path().join("stack/compose.yaml"));
    assert_reported(&problems, "config -q` failed");
}
