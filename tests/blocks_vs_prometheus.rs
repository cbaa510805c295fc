//! TSDB blocks read by promgate itself against a Prometheus serving the very same blocks:
//! promtool writes two-hour blocks of the engine comparison's data, a Prometheus 3.5 starts
//! on a copy of them, and every query of the comparison set is answered by promgate's engine
//! over a `kind = "blocks"` backend and by the Prometheus. Answers must agree as in the
//! engine comparison (same series, timestamps, values within 1e-9 relative). The blocks are
//! read once from a directory and once from an S3 bucket (moto's server on loopback) they
//! were uploaded to with `promgate upload`. Blocks a running Prometheus wrote itself (its
//! head, cut into a block by a snapshot) are compared on what it scraped.

mod common;
#[path = "engine_vs_prometheus/compare.rs"]
mod compare;
#[path = "engine_vs_prometheus/data.rs"]
mod data;
#[path = "engine_vs_prometheus/harness.rs"]
mod harness;
#[path = "engine_vs_prometheus/queries.rs"]
mod queries;

use std::path::Path;
use std::time::Duration;

use common::{Gateway, assert_close, enc, get_json, post_form};

use harness::{Subject, compare_all};
use promgate::config::Config;
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer, S3Server};
use promgate::storage::object::S3Objects;

/// Copies a data directory's blocks (every file below it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("target directory");
    for entry in std::fs::read_dir(from).expect("source directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Two-hour blocks of the comparison data in a fresh directory.
fn blocks(bin: &PrometheusBinary, dir: &Path) -> std::path::PathBuf {
    let text = dir.join("data.om");
    std::fs::write(&text, data::openmetrics()).expect("write OpenMetrics");
    let blocks = dir.join("blocks");
    std::fs::create_dir_all(&blocks).expect("blocks directory");
    bin.backfill_blocks(&text, &blocks, "2h")
        .expect("promtool writes blocks");
    let count = std::fs::read_dir(&blocks).expect("blocks").count();
    assert!(count >= 2, "the data spans more than one block ({count})");
    blocks
}

/// The blocks, and a Prometheus 3.5 serving a copy of them.
fn blocks_and_prometheus(dir: &Path) -> (std::path::PathBuf, PrometheusServer) {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let blocks = blocks(&bin, dir);
    let served = dir.join("prometheus");
    copy_dir(&blocks, &served);
    let options = PrometheusOptions {
        data_dir: Some(served),
        ..PrometheusOptions::default()
    };
    let server = PrometheusServer::start(&bin, options).expect("Prometheus on the blocks");
    (blocks, server)
}

#[test]
fn blocks_from_a_directory_answer_as_prometheus_does() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (blocks, server) = blocks_and_prometheus(dir.path());
    let config = Config::parse(&format!(
        "[[backend]]\nname = \"lts\"\nkind = \"blocks\"\ndir = \"{}\"\n",
        blocks.display()
    ))
    .expect("valid config");
    compare_all(&Subject::over(config, server.url())).assert_agreement();
}

#[test]
fn blocks_from_a_bucket_answer_as_prometheus_does() {
    let s3 = match S3Server::start() {
        Ok(s) => s,
        Err(e) => {
            println!("skipped, no S3 server: {e}");
            return;
        }
    };
    s3.create_bucket("metrics").expect("bucket");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (blocks, server) = blocks_and_prometheus(dir.path());
    let location = s3.location("metrics", "eu1/");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt.block_on(async {
        let bucket =
            S3Objects::new(&location, std::time::Duration::from_secs(30)).expect("bucket access");
        promgate::upload::upload(&blocks, &bucket, &Default::default()).await
    });
    let report = report.expect("upload");
    assert!(report.uploaded() >= 2, "{}", report.summary());
    let config = Config::parse(&format!(
        "[[backend]]\nname = \"lts\"\nkind = \"blocks\"\n\
         [backend.bucket]\nendpoint = \"{}\"\nbucket = \"metrics\"\nprefix = \"eu1/\"\n\
         path_style = true\naccess_key = \"test-access\"\nsecret_key = \"test-secret\"\n",
        s3.endpoint()
    ))
    .expect("valid config");
    compare_all(&Subject::over(config, server.url())).assert_agreement();
}

#[test]
fn blocks_a_running_prometheus_wrote_answer_as_it_does() {
    let bin = PrometheusBinary::v3().expect("Prometheus 3.5 (bash .ci/run installs it)");
    let server = PrometheusServer::start(
        &bin,
        PrometheusOptions::default().scrape_self(Duration::from_secs(1)),
    )
    .expect("Prometheus scraping itself");
    std::thread::sleep(Duration::from_secs(25));
    // A snapshot writes the head, everything scraped so far, as a block.
    let snapshot = post_form(&format!("{}/api/v1/admin/tsdb/snapshot", server.url()), &[]);
    assert_eq!(snapshot.status, 200, "{}", snapshot.text());
    let taken = promgate::time::now_ms() / 1000;
    let name = snapshot.json().unwrap()["data"]["name"]
        .as_str()
        .expect("snapshot name")
        .to_string();
    let blocks = server.data_dir().join("snapshots").join(name);
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("promgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[backend]]\nname = \"lts\"\nkind = \"blocks\"\ndir = \"{}\"\n",
            blocks.display()
        ),
    )
    .expect("config");
    let gateway = Gateway::start(&config);
    // Samples up to a few seconds before the snapshot are in it whatever was in flight.
    let end = taken - 3;
    let queries = [
        "up",
        "prometheus_tsdb_head_series",
        "rate(prometheus_http_requests_total[10s])",
        "sum by (handler) (prometheus_http_requests_total)",
        "count({__name__=~\"prometheus_.+\"})",
        "max_over_time(process_resident_memory_bytes[15s])",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10s])))",
    ];
    let mut with_data = 0;
    for q in queries {
        for path in [
            format!("/api/v1/query?query={}&time={end}", enc(q)),
            format!("/api/v1/query?query={}&time={}", enc(q), end - 9),
            format!(
                "/api/v1/query_range?query={}&start={}&end={end}&step=2",
                enc(q),
                end - 20
            ),
        ] {
            let (status, ours) = gateway.get_json(&path);
            let (_, theirs) = get_json(&format!("{}{path}", server.url()));
            assert_eq!(status, 200, "{path}: {ours}");
            assert_close(&ours, &theirs, &path);
            if !ours["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                with_data += 1;
            }
        }
    }
    assert!(with_data >= 18, "too few answers with data ({with_data})");
}
