//! `promgate upload` with blocks written by promtool: to moto's S3 server through the
//! library and the command line, and to a directory through the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, S3Server};
use promgate::storage::object::{FsObjects, ObjectError, ObjectInfo, ObjectStore, S3Objects};
use promgate::upload::{BlockAction, UploadError, upload};
use serde_json::Value;

/// A data directory with promtool's blocks and what must stay behind: the WAL, the head's
/// chunks, a compaction in progress, a block marked for deletion and one without meta.json.
struct DataDir {
    dir: tempfile::TempDir,
    /// The finished blocks' names.
    blocks: Vec<String>,
}

impl DataDir {
    fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn data_dir() -> DataDir {
    let bin = PrometheusBinary::any().expect("Prometheus installed (bash .ci/run)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let om = dir.path().join("data.om");
    std::fs::write(
        &om,
        openmetrics(&SynthSpec::hours_until(1_700_000_000_000, 60)),
    )
    .unwrap();
    bin.backfill(&om, &data).unwrap();
    let mut blocks: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| promgate::upload::is_ulid(n))
        .collect();
    blocks.sort();
    assert!(blocks.len() >= 3, "promtool wrote {blocks:?}");

    let write = |rel: &str, bytes: &[u8]| {
        let p = data.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    write("wal/00000000", b"wal segment");
    write("chunks_head/000001", b"head chunks");
    write("queries.active", b"");
    write("lock", b"");
    // A compaction in progress, a deleted block and an unfinished one: copies of a real
    // block under other names.
    let first = data.join(&blocks[0]);
    copy_dir(
        &first,
        &data.join("01HZZZZZZZZZZZZZZZZZZZZZZZ.tmp-for-creation"),
    );
    copy_dir(&first, &data.join("01HZZZZZZZZZZZZZZZZZZZZZZY"));
    write("01HZZZZZZZZZZZZZZZZZZZZZZY/deletion-mark.json", b"{}");
    copy_dir(&first, &data.join("01HZZZZZZZZZZZZZZZZZZZZZZX"));
    std::fs::remove_file(data.join("01HZZZZZZZZZZZZZZZZZZZZZZX/meta.json")).unwrap();
    DataDir { dir, blocks }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file of a block below its directory, as `chunks/000001`, `index`, ...
fn block_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap().file_name().to_string_lossy().into_owned();
                out.push(format!("{name}/{inner}"));
            }
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Checks that the store holds exactly the finished blocks, byte for byte, with the
/// labels in each meta.json.
async fn check_store(store: &dyn ObjectStore, data: &DataDir, labels: &BTreeMap<String, String>) {
    let mut expected = BTreeSet::new();
    for block in &data.blocks {
        let dir = data.path().join(block);
        let files = block_files(&dir);
        assert!(files.contains(&"index".to_string()), "{files:?}");
        assert!(files.iter().any(|f| f.starts_with("chunks/")), "{files:?}");
        for rel in files {
            let key = format!("{block}/{rel}");
            let local = std::fs::read(dir.join(&rel)).unwrap();
            let stored = store.get(&key).await.unwrap();
            if rel == "meta.json" {
                let local: Value = serde_json::from_slice(&local).unwrap();
                let stored: Value = serde_json::from_slice(&stored).unwrap();
                for (field, value) in local.as_object().unwrap() {
                    assert_eq!(&stored[field], value, "{key} {field}");
                }
                assert_eq!(stored["thanos"]["labels"], serde_json::json!(labels));
                assert_eq!(stored["thanos"]["downsample"]["resolution"], 0);
                assert_eq!(stored["thanos"]["source"], "promgate");
            } else {
                assert!(stored == local, "{key} differs from the local file");
            }
            expected.insert(key);
        }
    }
    let listed: BTreeSet<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, expected);
}

/// Records the keys put, in order, and passes everything on.
struct Recording<S> {
    inner: S,
    puts: Arc<Mutex<Vec<String>>>,
}

impl<S: ObjectStore> ObjectStore for Recording<S> {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.inner.get_range(key, range)
    }
    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        self.inner.size(key)
    }
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        self.inner.list(prefix)
    }
    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.puts.lock().unwrap().push(key.to_string());
        self.inner.put(key, data)
    }
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn moto() -> Option<S3Server> {
    match S3Server::start() {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipped, no S3 server: {e}");
            None
        }
    }
}

#[tokio::test]
async fn blocks_reach_the_bucket_once_and_partial_uploads_are_redone() {
    let Some(server) = moto() else { return };
    server.create_bucket("prom").unwrap();
    let data = data_dir();
    let labels = BTreeMap::from([
        ("dc".to_string(), "eu1".to_string()),
        ("replica".to_string(), "a".to_string()),
    ]);
    let s3 = S3Objects::new(&server.location("prom", "tenant/"), Duration::from_secs(30)).unwrap();
    let puts = Arc::new(Mutex::new(Vec::new()));
    let store = Recording {
        inner: s3,
        puts: puts.clone(),
    };

    let report = upload(&data.path(), &store, &labels).await.unwrap();
    assert_eq!(report.uploaded(), data.blocks.len(), "{report:?}");
    assert_eq!(report.already_there(), 0);
    let skipped: BTreeMap<&str, &BlockAction> = report
        .blocks
        .iter()
        .filter(|b| matches!(b.action, BlockAction::Skipped(_)))
        .map(|b| (b.name.as_str(), &b.action))
        .collect();
    assert_eq!(
        skipped.keys().copied().collect::<Vec<_>>(),
        vec![
            "01HZZZZZZZZZZZZZZZZZZZZZZX",
            "01HZZZZZZZZZZZZZZZZZZZZZZY",
            "01HZZZZZZZZZZZZZZZZZZZZZZZ.tmp-for-creation",
            "chunks_head",
            "wal"
        ],
        "{report:?}"
    );
    check_store(&store, &data, &labels).await;
    // Each block's meta.json is its last object.
    let order = puts.lock().unwrap().clone();
    for block in &data.blocks {
        let mine: Vec<&String> = order
            .iter()
            .filter(|k| k.starts_with(&format!("{block}/")))
            .collect();
        assert_eq!(mine.last().unwrap().as_str(), format!("{block}/meta.json"));
    }
    // Under the prefix only.
    let root = S3Objects::new(&server.location("prom", ""), Duration::from_secs(30)).unwrap();
    assert!(
        root.list("")
            .await
            .unwrap()
            .iter()
            .all(|o| o.key.starts_with("tenant/"))
    );

    // Again: nothing to do.
    puts.lock().unwrap().clear();
    let report = upload(&data.path(), &store, &labels).await.unwrap();
    assert_eq!(report.uploaded(), 0, "{report:?}");
    assert_eq!(report.already_there(), data.blocks.len());
    assert!(puts.lock().unwrap().is_empty());

    // A partial upload of the second block (its meta.json and index missing): that block
    // and only it goes up again.
    let partial = &data.blocks[1];
    store.delete(&format!("{partial}/meta.json")).await.unwrap();
    store.delete(&format!("{partial}/index")).await.unwrap();
    let report = upload(&data.path(), &store, &labels).await.unwrap();
    assert_eq!(report.uploaded(), 1, "{report:?}");
    assert_eq!(report.already_there(), data.blocks.len() - 1);
    assert!(
        report
            .blocks
            .iter()
            .any(|b| &b.name == partial && matches!(b.action, BlockAction::Uploaded { .. }))
    );
    assert!(
        puts.lock()
            .unwrap()
            .iter()
            .all(|k| k.starts_with(&format!("{partial}/")))
    );
    check_store(&store, &data, &labels).await;

    // A store that does not answer stops the upload with its error.
    server.suspend();
    let hung = S3Objects::new(
        &server.location("prom", "tenant/"),
        Duration::from_millis(500),
    )
    .unwrap();
    match upload(&data.path(), &hung, &labels).await {
        Err(UploadError::Store {
            source: ObjectError::Timeout,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    server.resume();
}

fn promgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_promgate"))
        .arg("upload")
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_command_uploads_to_a_directory_and_a_bucket() {
    let data = data_dir();
    let from = data.path();
    let from = from.to_str().unwrap();
    let out_dir = data.dir.path().join("out");
    let to = out_dir.to_str().unwrap();
    let labels = BTreeMap::from([("dc".to_string(), "eu2".to_string())]);

    let run = promgate(&["--from", from, "--to-dir", to, "--labels", "dc=eu2"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for block in &data.blocks {
        assert!(stdout.contains(&format!("{block}: uploaded (")), "{stdout}");
    }
    assert!(stdout.contains("wal: skipped"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} blocks uploaded", data.blocks.len())),
        "{stdout}"
    );
    check_store(&FsObjects::new(&out_dir), &data, &labels).await;

    let again = promgate(&["--from", from, "--to-dir", to, "--labels", "dc=eu2"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success());
    assert!(
        stdout.contains(&format!(
            "0 blocks uploaded (0 bytes), {} already there",
            data.blocks.len()
        )),
        "{stdout}"
    );

    // Failures exit non-zero: bad labels, a destination that cannot be written.
    assert!(
        !promgate(&["--from", from, "--to-dir", to, "--labels", "dc"])
            .status
            .success()
    );
    let file = data.dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let blocked = promgate(&["--from", from, "--to-dir", file.to_str().unwrap()]);
    assert!(!blocked.status.success());
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("upload failed"));
    assert!(!promgate(&["--from", from]).status.success());

    let Some(server) = moto() else { return };
    server.create_bucket("cli").unwrap();
    let endpoint = server.endpoint();
    let args = [
        "--from",
        from,
        "--bucket",
        "cli",
        "--endpoint",
        &endpoint,
        "--path-style",
        "--prefix",
        "p",
        "--access-key",
        "k",
        "--secret-key",
        "s",
        "--labels",
        "dc=eu2",
    ];
    let run = promgate(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("to s3://cli/p/"), "{stdout}");
    let store = S3Objects::new(&server.location("cli", "p/"), Duration::from_secs(30)).unwrap();
    check_store(&store, &data, &labels).await;
}
