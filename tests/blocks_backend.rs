//! A blocks backend beside a Prometheus, through promgate: eu1-a's Prometheus keeps the last
//! six hours, and its older thirty hours lie as TSDB blocks in an S3 bucket (moto on
//! loopback), uploaded with `promgate upload` and the replica's external labels; three hours
//! are in both. Answers equal one Prometheus holding all of the data; a query over the last
//! hours leaves the bucket alone; a hung bucket is a warning and an open breaker, not a
//! failed query; damaged, unfinished and deleted blocks are skipped or reported.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Gateway, assert_close, enc, get_json, post_form, wait_until};
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, S3Server};
use promgate::storage::object::S3Objects;
use serde_json::Value;

const HOUR: i64 = 3_600_000;

/// Blocks of `spec` in a fresh directory below `dir`.
fn write_blocks(bin: &PrometheusBinary, spec: &SynthSpec, dir: &Path, name: &str) -> PathBuf {
    let text = dir.join(format!("{name}.om"));
    std::fs::write(&text, openmetrics(spec)).unwrap();
    let blocks = dir.join(name);
    std::fs::create_dir_all(&blocks).unwrap();
    bin.backfill(&text, &blocks)
        .expect("promtool writes blocks");
    blocks
}

/// The block below `dir` that holds `t_ms`. promtool cuts blocks at multiples of its block
/// range since the epoch (18 h when asked for at most 24 h), so data that spans such an
/// instant is written as two blocks, and the first block by name need not hold `t_ms`.
fn block_holding(dir: &Path, t_ms: i64) -> String {
    block_names(dir)
        .into_iter()
        .find(|name| {
            let meta = std::fs::read_to_string(dir.join(name).join("meta.json")).unwrap();
            let meta: Value = serde_json::from_str(&meta).unwrap();
            let (min, max) = (meta["minTime"].as_i64(), meta["maxTime"].as_i64());
            min.is_some_and(|m| m <= t_ms) && max.is_some_and(|m| t_ms < m)
        })
        .unwrap_or_else(|| panic!("no block in {} holds {t_ms}", dir.display()))
}

/// The block directories below `dir`, by name.
fn block_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| promgate::upload::is_ulid(n))
        .collect();
    names.sort();
    names
}

struct Fixture {
    gateway: Gateway,
    reference: PrometheusServer,
    s3: S3Server,
    /// Unix seconds: end of the data, and the first sample of the older part.
    end: i64,
    old_start: i64,
    _prometheus: PrometheusServer,
    _dir: tempfile::TempDir,
}

fn fixture() -> Option<Fixture> {
    let s3 = match S3Server::start() {
        Ok(s) => s,
        Err(e) => {
            println!("skipped, no S3 server: {e}");
            return None;
        }
    };
    s3.create_bucket("metrics").unwrap();
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let end = promgate::time::now_ms() - 2 * 60_000;
    let recent = SynthSpec::hours_until(end, 6);
    let old = SynthSpec::hours_until(end - 3 * HOUR, 30);
    let prometheus = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .labels(&[("cluster", "eu1"), ("replica", "a")])
            .data(openmetrics(&recent)),
    )
    .unwrap();
    let reference = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .data(openmetrics(&old.clone().extra_label("cluster", "eu1")))
            .data(openmetrics(&recent.clone().extra_label("cluster", "eu1"))),
    )
    .unwrap();
    let blocks = write_blocks(&bin, &old, dir.path(), "old");
    let labels = [
        ("cluster".to_string(), "eu1".to_string()),
        ("replica".to_string(), "a".to_string()),
    ]
    .into();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(async {
            let bucket =
                S3Objects::new(&s3.location("metrics", "eu1/"), Duration::from_secs(30)).unwrap();
            promgate::upload::upload(&blocks, &bucket, &labels).await
        })
        .expect("upload");
    assert!(report.uploaded() >= 1, "{}", report.summary());

    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nwatch_config = false\n\
             [query]\nreplica_labels = [\"replica\"]\n\
             [[backend]]\nname = \"eu1-a\"\nkind = \"prometheus\"\nurl = \"{}\"\n\
             [[backend]]\nname = \"lts\"\nkind = \"blocks\"\ntimeout = \"2s\"\nretries = 0\n\
             breaker = {{ consecutive_failures = 2, cool_down = \"1s\", double_cool_down = false }}\n\
             [backend.bucket]\nendpoint = \"{}\"\nbucket = \"metrics\"\nprefix = \"eu1/\"\n\
             path_style = true\naccess_key = \"test-access\"\nsecret_key = \"test-secret\"\n",
            prometheus.url(),
            s3.endpoint()
        ),
    )
    .unwrap();
    Some(Fixture {
        gateway: Gateway::start(&config),
        reference,
        s3,
        end: end / 1000,
        old_start: old.start_ms / 1000,
        _prometheus: prometheus,
        _dir: dir,
    })
}

const QUERIES: [&str; 6] = [
    "demo_temperature_celsius",
    "sum by (cluster) (rate(demo_requests_total[5m]))",
    "increase(demo_requests_total{method=\"get\"}[1h])",
    "histogram_quantile(0.9, sum by (le) (rate(demo_request_duration_seconds_bucket[10m])))",
    "max_over_time(demo_temperature_celsius[2h])",
    "count(demo_requests_total)",
];

#[test]
fn older_data_from_the_bucket_and_recent_data_answer_as_one_prometheus() {
    let Some(f) = fixture() else { return };
    let paths = |t: i64| {
        QUERIES.iter().flat_map(move |q| {
            [
                format!("/api/v1/query?query={}&time={t}", enc(q)),
                format!(
                    "/api/v1/query_range?query={}&start={}&end={}&step=600",
                    enc(q),
                    t - 8 * 3600,
                    t
                ),
            ]
        })
    };
    // Only in the bucket, across the overlap, only in the Prometheus.
    for t in [f.old_start + 20 * 3600, f.end - 4 * 3600, f.end - 600] {
        for path in paths(t) {
            let (status, ours) = f.gateway.get_json(&path);
            let (_, theirs) = get_json(&format!("{}{path}", f.reference.url()));
            assert_eq!(status, 200, "{path}: {ours}");
            assert!(ours.get("warnings").is_none(), "{path}: {ours}");
            assert_close(&ours, &theirs, &path);
        }
    }
    // Which series and labels there were a day ago: the bucket's index alone answers.
    let chunk_reads = || {
        ["hit", "miss"]
            .iter()
            .map(|r| {
                f.gateway.metric_value(&format!(
                    "promgate_blocks_cache_requests_total{{backend=\"lts\",item=\"chunks\",result=\"{r}\"}}"
                ))
            })
            .sum::<f64>()
    };
    let before = chunk_reads();
    let (from, to) = (f.old_start + 10 * 3600, f.old_start + 12 * 3600);
    for path in [
        format!(
            "/api/v1/series?match[]={}&start={from}&end={to}",
            enc("{__name__=~\"demo_.+\",instance!=\"i1\"}")
        ),
        format!("/api/v1/labels?start={from}&end={to}"),
        format!("/api/v1/label/instance/values?start={from}&end={to}"),
        format!(
            "/api/v1/label/le/values?match[]={}&start={from}&end={to}",
            enc("demo_request_duration_seconds_bucket")
        ),
    ] {
        let (status, mut ours) = f.gateway.get_json(&path);
        let (_, mut theirs) = get_json(&format!("{}{path}", f.reference.url()));
        assert_eq!(status, 200, "{path}: {ours}");
        for v in [&mut ours, &mut theirs] {
            if let Some(list) = v["data"].as_array_mut() {
                list.sort_by_key(|x| x.to_string());
            }
        }
        assert!(!ours["data"].as_array().unwrap().is_empty(), "{path}");
        assert_eq!(ours["data"], theirs["data"], "{path}");
    }
    assert_eq!(chunk_reads(), before, "metadata read chunks");

    let status = f.gateway.get_json("/api/v1/status/backends").1;
    let lts = &status["data"][1];
    assert_eq!(lts["name"], "lts");
    assert!(lts["blocks"]["loaded"].as_u64() >= Some(1), "{lts}");
    assert!(
        f.gateway.metric_value(
            "promgate_blocks_cache_requests_total{backend=\"lts\",item=\"chunks\",result=\"hit\"}"
        ) > 0.0,
        "repeated reads of the same chunks hit the cache: {:?}",
        f.gateway.metric("promgate_blocks_cache")
    );
}

#[test]
fn a_query_over_the_last_hours_leaves_the_bucket_alone() {
    let Some(f) = fixture() else { return };
    let requests = || {
        f.gateway
            .metric_value("promgate_blocks_object_requests_total{backend=\"lts\"}")
    };
    let engine = || {
        f.gateway
            .metric_value("promgate_query_paths_total{path=\"engine\"}")
    };
    let (before, evaluated) = (requests(), engine());
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        enc("rate(demo_requests_total[5m])"),
        f.end - 2 * 3600,
        f.end
    );
    let (status, body) = f.gateway.get_json(&path);
    assert_eq!(status, 200, "{body}");
    assert!(!body["data"]["result"].as_array().unwrap().is_empty());
    assert_eq!(requests(), before, "the bucket was read");
    assert_eq!(
        engine(),
        evaluated,
        "answered by the Prometheus, not evaluated here"
    );
    // A day back, the bucket is read and the engine evaluates.
    let path = format!(
        "/api/v1/query?query={}&time={}",
        enc("rate(demo_requests_total[5m])"),
        f.end - 24 * 3600
    );
    let (status, body) = f.gateway.get_json(&path);
    assert_eq!(status, 200, "{body}");
    assert!(!body["data"]["result"].as_array().unwrap().is_empty());
    assert!(requests() > before, "the bucket was not read");
    assert_eq!(engine(), evaluated + 1.0);
}

fn warnings(body: &Value) -> String {
    body["warnings"].to_string()
}

#[test]
fn a_hung_bucket_leaves_a_partial_answer_and_opens_its_breaker() {
    let Some(f) = fixture() else { return };
    let path = |q: &str| {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=600",
            enc(q),
            f.end - 12 * 3600,
            f.end
        )
    };
    let points = |b: &Value| {
        b["data"]["result"][0]["values"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let (_, complete) = f
        .gateway
        .get_json(&path("sum(rate(demo_requests_total[5m]))"));
    assert_eq!(points(&complete), 73, "{complete}");

    f.s3.suspend();
    // What the cache holds needs no bucket; other series do. The bucket's timeout passes
    // and the Prometheus's six hours answer, with a warning.
    let temperatures = path("sum(demo_temperature_celsius)");
    let (status, partial) = f.gateway.get_json(&temperatures);
    assert_eq!(status, 200, "{partial}");
    assert!(warnings(&partial).contains("lts"), "{partial}");
    assert!(points(&partial) > 0 && points(&partial) < 73, "{partial}");
    // Without partial responses the same failure is an error.
    let (status, refused) = f.gateway.get_json(&format!(
        "{}&partial_response=false",
        path("sum(demo_request_duration_seconds_count)")
    ));
    assert_ne!(status, 200, "{refused}");
    assert_eq!(refused["status"], "error");
    wait_until(Duration::from_secs(20), || {
        let status = f.gateway.get_json("/api/v1/status/backends").1;
        status["data"][1]["breaker"]["state"] == "open"
    });
    // An open breaker turns even cached reads away.
    let (status, turned_away) = f
        .gateway
        .get_json(&path("sum(rate(demo_requests_total[5m]))"));
    assert_eq!(status, 200);
    assert!(warnings(&turned_away).contains("lts"), "{turned_away}");

    f.s3.resume();
    wait_until(Duration::from_secs(20), || {
        let (_, body) = f.gateway.get_json(&temperatures);
        body.get("warnings").is_none() && points(&body) == 73
    });
}

#[test]
fn damaged_unfinished_and_deleted_blocks_are_skipped_or_reported() {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let end = promgate::time::now_ms() - 10 * 60_000;
    let spec = SynthSpec::hours_until(end, 3);
    let blocks = write_blocks(&bin, &spec, dir.path(), "blocks");
    let good = block_names(&blocks);
    // The instant queried below.
    let t = end / 1000 - 1800;
    // Blocks of other data, each in a state that must keep its series out of answers.
    let other = |shard: &str| {
        let written = write_blocks(
            &bin,
            &spec.clone().extra_label("shard", shard),
            dir.path(),
            shard,
        );
        let name = block_holding(&written, t * 1000);
        std::fs::rename(written.join(&name), blocks.join(&name)).unwrap();
        name
    };
    let deleted = other("deleted");
    std::fs::write(blocks.join(&deleted).join("deletion-mark.json"), "{}").unwrap();
    let unfinished = other("unfinished");
    let unfinished_meta = blocks.join(&unfinished).join("meta.json");
    let finished_meta = std::fs::read(&unfinished_meta).unwrap();
    std::fs::remove_file(&unfinished_meta).unwrap();
    let downsampled = other("downsampled");
    let meta_path = blocks.join(&downsampled).join("meta.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["thanos"] = serde_json::json!({"labels": {}, "downsample": {"resolution": 300000}});
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let garbled = other("garbled");
    std::fs::write(blocks.join(&garbled).join("meta.json"), "{\"ulid\": 7").unwrap();

    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nwatch_config = false\n\
             [[backend]]\nname = \"lts\"\nkind = \"blocks\"\ndir = \"{}\"\n",
            blocks.display()
        ),
    )
    .unwrap();
    let gw = Gateway::start(&config);
    let state =
        |s: &str| gw.metric_value(&format!("promgate_blocks{{backend=\"lts\",state=\"{s}\"}}"));
    assert_eq!(state("loaded"), good.len() as f64);
    assert_eq!(
        (
            state("deleted"),
            state("partial"),
            state("unreadable"),
            state("downsampled")
        ),
        (1.0, 1.0, 1.0, 1.0)
    );
    let series = |gw: &Gateway| {
        let (status, body) = gw.get_json(&format!(
            "/api/v1/query?query={}&time={t}",
            enc("count by (shard) (demo_temperature_celsius)")
        ));
        assert_eq!(status, 200, "{body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metric"]["shard"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        series(&gw),
        vec![String::new()],
        "only the good blocks answer"
    );

    // The unfinished block completes (its meta.json appears whole, as an upload's last
    // step); a reload picks it up.
    let staged = dir.path().join("meta.json.staged");
    std::fs::write(&staged, finished_meta).unwrap();
    std::fs::rename(&staged, &unfinished_meta).unwrap();
    let reload = post_form(&gw.url("/-/reload"), &[]);
    assert_eq!(reload.status, 200, "{}", reload.text());
    wait_until(Duration::from_secs(10), || state("partial") == 0.0);
    let mut shards = series(&gw);
    shards.sort();
    assert_eq!(shards, vec![String::new(), "unfinished".to_string()]);

    // A chunk damaged under a loaded block: the read fails with a reason, no panic.
    let segment = blocks.join(&good[0]).join("chunks").join("000001");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xA5;
    }
    std::fs::write(&segment, bytes).unwrap();
    let (status, body) = gw.get_json(&format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        enc("count({__name__=~\"demo_.+\"})"),
        spec.start_ms / 1000,
        end / 1000
    ));
    assert_ne!(status, 200, "the only backend's read failed: {body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["error"].to_string().contains("lts"), "{body}");
    // A block removed from the directory is gone after the next sync.
    std::fs::remove_dir_all(blocks.join(&good[0])).unwrap();
    let reload = post_form(&gw.url("/-/reload"), &[]);
    assert_eq!(reload.status, 200);
    // One good block gone, the completed one in.
    wait_until(Duration::from_secs(10), || {
        state("loaded") == good.len() as f64
    });
}
