//! `promgate upload`: copies a Prometheus data directory's finished blocks to an object
//! store, laid out as Thanos lays them out (`<ULID>/chunks/000001`, `<ULID>/index`,
//! `<ULID>/meta.json`), so promgate and Thanos can both read them.
//!
//! A block is a directory named by a ULID holding a `meta.json`. The write-ahead log
//! (`wal/`), the head's chunks (`chunks_head/`), compactions in progress (`*.tmp*`) and
//! blocks marked for deletion (`deletion-mark.json`) stay behind. Each block's `meta.json`
//! goes last, with Thanos's external labels added: a block without one in the store is a
//! partial upload that readers ignore and the next run uploads again in full. Files are read
//! whole into memory (Prometheus cuts chunk segments at 512 MiB).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::storage::object::{ObjectError, ObjectStore};
pub use crate::storage::tsdb::meta::is_ulid;

/// What happened to one directory of the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The directory's name (the block's ULID for blocks).
    pub name: String,
    pub action: BlockAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAction {
    /// Copied now: this many objects (meta.json included) and bytes.
    Uploaded { objects: usize, bytes: u64 },
    /// Its meta.json was in the store already.
    AlreadyThere,
    /// Not uploaded, for this reason.
    Skipped(String),
}

impl fmt::Display for BlockOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            BlockAction::Uploaded { objects, bytes } => {
                write!(
                    f,
                    "{}: uploaded ({objects} objects, {bytes} bytes)",
                    self.name
                )
            }
            BlockAction::AlreadyThere => write!(f, "{}: already there", self.name),
            BlockAction::Skipped(why) => write!(f, "{}: skipped, {why}", self.name),
        }
    }
}

/// Every directory looked at, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    pub blocks: Vec<BlockOutcome>,
}

impl UploadReport {
    pub fn uploaded(&self) -> usize {
        self.count(|a| matches!(a, BlockAction::Uploaded { .. }))
    }

    pub fn already_there(&self) -> usize {
        self.count(|a| matches!(a, BlockAction::AlreadyThere))
    }

    pub fn skipped(&self) -> usize {
        self.count(|a| matches!(a, BlockAction::Skipped(_)))
    }

    /// Bytes copied by this run.
    pub fn bytes(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| match b.action {
                BlockAction::Uploaded { bytes, .. } => bytes,
                _ => 0,
            })
            .sum()
    }

    /// `3 blocks uploaded (1234 bytes), 2 already there, 4 skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} blocks uploaded ({} bytes), {} already there, {} skipped",
            self.uploaded(),
            self.bytes(),
            self.already_there(),
            self.skipped()
        )
    }

    fn count(&self, f: impl Fn(&BlockAction) -> bool) -> usize {
        self.blocks.iter().filter(|b| f(&b.action)).count()
    }
}

/// Why an upload stopped; blocks finished before it stay in the store.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{path}: {message}")]
    Local { path: PathBuf, message: String },
    #[error("block {block} to {store}: {source}")]
    Store {
        block: String,
        store: String,
        source: ObjectError,
    },
}

/// Uploads the finished blocks of the data directory `from` into `to` (see the module),
/// with `labels` as the blocks' external labels.
pub async fn upload(
    from: &Path,
    to: &dyn ObjectStore,
    labels: &BTreeMap<String, String>,
) -> Result<UploadReport, UploadError> {
    upload_with(from, to, labels, &mut |_| {}).await
}

/// [`upload`], calling `progress` as each directory is done with.
pub async fn upload_with(
    from: &Path,
    to: &dyn ObjectStore,
    labels: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(&BlockOutcome) + Send),
) -> Result<UploadReport, UploadError> {
    let local = |path: &Path, e: std::io::Error| UploadError::Local {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut dirs = Vec::new();
    let mut entries = tokio::fs::read_dir(from)
        .await
        .map_err(|e| local(from, e))?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| local(from, e))? {
        let kind = entry
            .file_type()
            .await
            .map_err(|e| local(&entry.path(), e))?;
        if kind.is_dir() {
            dirs.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    dirs.sort();
    let mut report = UploadReport::default();
    for (name, path) in dirs {
        let action = upload_dir(&name, &path, to, labels).await?;
        let outcome = BlockOutcome { name, action };
        progress(&outcome);
        report.blocks.push(outcome);
    }
    Ok(report)
}

/// Why a directory of a data directory is no block to upload, if it is none.
async fn not_a_block(name: &str, dir: &Path) -> Option<String> {
    if name == "wal" {
        return Some("write-ahead log".into());
    }
    if name == "chunks_head" {
        return Some("the head's chunks".into());
    }
    if name.contains(".tmp") {
        return Some("being written (temporary directory)".into());
    }
    if !is_ulid(name) {
        return Some("not a block (its name is no ULID)".into());
    }
    if !is_file(&dir.join("meta.json")).await {
        return Some("no meta.json (unfinished block)".into());
    }
    if tokio::fs::try_exists(dir.join("deletion-mark.json"))
        .await
        .unwrap_or(true)
    {
        return Some("marked for deletion".into());
    }
    if !is_file(&dir.join("index")).await {
        return Some("no index".into());
    }
    None
}

async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file())
}

async fn upload_dir(
    name: &str,
    dir: &Path,
    to: &dyn ObjectStore,
    labels: &BTreeMap<String, String>,
) -> Result<BlockAction, UploadError> {
    if let Some(why) = not_a_block(name, dir).await {
        return Ok(BlockAction::Skipped(why));
    }
    let store_err = |source| UploadError::Store {
        block: name.to_string(),
        store: to.describe(),
        source,
    };
    let local = |path: &Path, e: &dyn fmt::Display| UploadError::Local {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta_path = dir.join("meta.json");
    let raw = tokio::fs::read(&meta_path)
        .await
        .map_err(|e| local(&meta_path, &e))?;
    let meta: Value = match serde_json::from_slice(&raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Ok(BlockAction::Skipped("meta.json is no JSON object".into())),
        Err(e) => return Ok(BlockAction::Skipped(format!("meta.json unreadable: {e}"))),
    };
    match meta.get("ulid").and_then(Value::as_str) {
        Some(ulid) if ulid != name => {
            return Ok(BlockAction::Skipped(format!(
                "meta.json names another block, {ulid}"
            )));
        }
        _ => {}
    }
    let meta_key = format!("{name}/meta.json");
    if to.size(&meta_key).await.map_err(store_err)?.is_some() {
        return Ok(BlockAction::AlreadyThere);
    }

    // Relative paths of the files to copy before meta.json, with their sizes.
    let mut files: Vec<(String, u64)> = Vec::new();
    let chunks = dir.join("chunks");
    match tokio::fs::read_dir(&chunks).await {
        Ok(mut entries) => {
            let mut segments = Vec::new();
            while let Some(entry) = entries.next_entry().await.map_err(|e| local(&chunks, &e))? {
                let m = entry
                    .metadata()
                    .await
                    .map_err(|e| local(&entry.path(), &e))?;
                let file = entry.file_name().to_string_lossy().into_owned();
                if m.is_file() && !file.contains(".tmp") {
                    segments.push((format!("chunks/{file}"), m.len()));
                }
            }
            segments.sort();
            files.extend(segments);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(local(&chunks, &e)),
    }
    for file in ["index", "tombstones"] {
        match tokio::fs::metadata(dir.join(file)).await {
            Ok(m) if m.is_file() => files.push((file.to_string(), m.len())),
            _ => {}
        }
    }

    let mut bytes = 0;
    for (rel, _) in &files {
        let path = dir.join(rel);
        let data = tokio::fs::read(&path).await.map_err(|e| local(&path, &e))?;
        bytes += data.len() as u64;
        to.put(&format!("{name}/{rel}"), Bytes::from(data))
            .await
            .map_err(store_err)?;
    }
    let meta = with_thanos_section(meta, labels, &files);
    let body = serde_json::to_vec_pretty(&meta).map_err(|e| local(&meta_path, &e))?;
    bytes += body.len() as u64;
    to.put(&meta_key, Bytes::from(body))
        .await
        .map_err(store_err)?;
    Ok(BlockAction::Uploaded {
        objects: files.len() + 1,
        bytes,
    })
}

/// `meta` with Thanos's section: the external labels, no downsampling, promgate as the
/// source and the block's files (a Thanos reader then needs no listing). Fields of a
/// `thanos` section already there that are not set here are kept.
pub fn with_thanos_section(
    mut meta: Value,
    labels: &BTreeMap<String, String>,
    files: &[(String, u64)],
) -> Value {
    let Some(top) = meta.as_object_mut() else {
        return meta;
    };
    let mut thanos = match top.remove("thanos") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    thanos.insert("labels".into(), json!(labels));
    thanos.insert("downsample".into(), json!({"resolution": 0}));
    thanos.insert("source".into(), json!("promgate"));
    let segments: Vec<&str> = files
        .iter()
        .filter_map(|(rel, _)| rel.strip_prefix("chunks/"))
        .collect();
    thanos.insert("segment_files".into(), json!(segments));
    let mut listed: Vec<Value> = files
        .iter()
        .map(|(rel, size)| json!({"rel_path": rel, "size_bytes": size}))
        .collect();
    listed.push(json!({"rel_path": "meta.json"}));
    thanos.insert("files".into(), Value::Array(listed));
    top.insert("thanos".into(), Value::Object(thanos));
    meta
}

/// `k=v,k2=v2` as labels; names must be Prometheus label names.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?} is not name=value"))?;
        let name = name.trim();
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid || name.starts_with("__") {
            return Err(format!("{name:?} is not a label name"));
        }
        if labels
            .insert(name.to_string(), value.trim().to_string())
            .is_some()
        {
            return Err(format!("label {name} given twice"));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_pairs() {
        let l = parse_labels("dc=eu1, replica=a,,env=").unwrap();
        assert_eq!(
            l.into_iter().collect::<Vec<_>>(),
            vec![
                ("dc".to_string(), "eu1".to_string()),
                ("env".to_string(), String::new()),
                ("replica".to_string(), "a".to_string())
            ]
        );
        assert_eq!(parse_labels("").unwrap(), BTreeMap::new());
        for bad in ["dc", "1dc=x", "d-c=x", "__name__=x", "a=1,a=2", "=x"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thanos_section_keeps_the_rest_of_meta() {
        let meta = json!({
            "ulid": "01JC2Z8X3W5Q7R9T1V3X5Z7B9D",
            "minTime": 1, "maxTime": 2, "version": 1,
            "stats": {"numSamples": 10},
            "compaction": {"level": 1, "sources": ["01JC2Z8X3W5Q7R9T1V3X5Z7B9D"]},
            "thanos": {"labels": {"old": "x"}, "extra": true}
        });
        let labels = BTreeMap::from([("dc".to_string(), "eu1".to_string())]);
        let files = vec![("chunks/000001".to_string(), 5), ("index".to_string(), 7)];
        let out = with_thanos_section(meta.clone(), &labels, &files);
        for field in [
            "ulid",
            "minTime",
            "maxTime",
            "version",
            "stats",
            "compaction",
        ] {
            assert_eq!(out[field], meta[field], "{field}");
        }
        assert_eq!(
            out["thanos"],
            json!({
                "labels": {"dc": "eu1"},
                "downsample": {"resolution": 0},
                "source": "promgate",
                "extra": true,
                "segment_files": ["000001"],
                "files": [
                    {"rel_path": "chunks/000001", "size_bytes": 5},
                    {"rel_path": "index", "size_bytes": 7},
                    {"rel_path": "meta.json"}
                ]
            })
        );
    }
}
