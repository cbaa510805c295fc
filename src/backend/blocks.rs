//! A blocks backend: the Prometheus TSDB blocks under one bucket prefix or directory, kept
//! in sync with what is there and read as one source of series.
//!
//! A block is there once its `meta.json` is: uploads write it last, so a block without one
//! is still arriving (or was abandoned) and is left alone. A block with a
//! `deletion-mark.json` is on its way out and is not read either. Blocks whose meta or index
//! cannot be read are skipped with a warning and counted; the others serve. Each block's
//! external labels are Thanos's `thanos.labels` from its meta, or the backend's configured
//! labels when it has none; they are attached to its series (winning over a series label of
//! the same name) and matchers on them pick blocks rather than being sent to the index.
//! Blocks whose time ranges do not meet a select are not touched at all. Blocks Thanos
//! downsampled (resolution above zero) hold aggregates, not samples: they are left out, so
//! a bucket Thanos's compactor also works on answers from its raw blocks.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use promql_parser::label::{MatchOp, Matcher};
use tokio::time::Instant;

use super::retry::Repeatable;
use super::{BackendError, ExternalLabels, ReadAnswer};
use crate::storage::object::{CountedObjects, ObjectError, ObjectStore, ReadCounts};
use crate::storage::remote::{RemoteSeries, SeriesData};
use crate::storage::tsdb::meta::is_ulid;
use crate::storage::tsdb::{Block, BlockCache, BlockError, BlockMeta};

/// Blocks opened at once during a sync.
const OPEN_CONCURRENCY: usize = 4;
/// Blocks read at once for one select.
const SELECT_CONCURRENCY: usize = 8;

/// One readable block and the labels its series carry.
struct LoadedBlock {
    block: Block,
    labels: ExternalLabels,
}

impl LoadedBlock {
    fn overlaps(&self, start_ms: i64, end_ms: i64) -> bool {
        // maxTime is exclusive.
        let meta = self.block.meta();
        meta.min_time <= end_ms && meta.max_time > start_ms
    }
}

/// What the last sync found.
#[derive(Default)]
struct Synced {
    /// By ULID.
    blocks: BTreeMap<String, Arc<LoadedBlock>>,
    /// Downsampled blocks seen, not read again.
    downsampled: std::collections::BTreeSet<String>,
    at: Option<Instant>,
}

/// How the blocks of a backend stand, for metrics and the status page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockCounts {
    pub loaded: usize,
    /// Without meta.json yet.
    pub partial: usize,
    /// Marked for deletion.
    pub deleted: usize,
    /// Meta or index unreadable.
    pub failed: usize,
    /// Downsampled by Thanos (not raw samples).
    pub downsampled: usize,
    /// Oldest and newest sample time over the loaded blocks (newest exclusive).
    pub time_range: Option<(i64, i64)>,
}

/// The blocks of one backend.
pub struct BlockSet {
    name: String,
    /// Every read of the backend goes through here, counted.
    counted: Arc<CountedObjects>,
    objects: Arc<dyn ObjectStore>,
    /// Labels of blocks whose meta has none.
    fallback: ExternalLabels,
    cache: Arc<BlockCache>,
    interval: Duration,
    synced: ArcSwap<Synced>,
    counts: Mutex<BlockCounts>,
    /// One sync at a time.
    syncing: tokio::sync::Mutex<()>,
}

impl BlockSet {
    pub fn new(
        name: &str,
        objects: Arc<dyn ObjectStore>,
        fallback: ExternalLabels,
        cache: Arc<BlockCache>,
        interval: Duration,
    ) -> Self {
        let counted = Arc::new(CountedObjects::new(objects));
        BlockSet {
            name: name.to_string(),
            objects: counted.clone(),
            counted,
            fallback,
            cache,
            interval,
            synced: ArcSwap::from_pointee(Synced::default()),
            counts: Mutex::new(BlockCounts::default()),
            syncing: tokio::sync::Mutex::new(()),
        }
    }

    /// The cache the blocks read through.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Requests made and bytes read from the object store so far.
    pub fn reads(&self) -> ReadCounts {
        self.counted.counts()
    }

    /// Where the blocks are.
    pub fn describe(&self) -> String {
        self.objects.describe()
    }

    /// How the blocks stood at the last sync.
    pub fn counts(&self) -> BlockCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The external label sets of the loaded blocks, each once.
    pub fn label_sets(&self) -> Vec<ExternalLabels> {
        let mut out: Vec<ExternalLabels> = Vec::new();
        for b in self.synced.load().blocks.values() {
            if !out.contains(&b.labels) {
                out.push(b.labels.clone());
            }
        }
        out
    }

    /// Whether the block list was never read, or not for the sync interval.
    pub fn due(&self) -> bool {
        self.synced
            .load()
            .at
            .is_none_or(|at| at.elapsed() >= self.interval)
    }

    /// Whether a loaded block holds samples in `start_ms..=end_ms`; before the first sync,
    /// whether it may.
    pub fn covers(&self, start_ms: i64, end_ms: i64) -> bool {
        let synced = self.synced.load();
        synced.at.is_none() || synced.blocks.values().any(|b| b.overlaps(start_ms, end_ms))
    }

    /// Reads the block list again: new blocks are opened, blocks gone or marked for deletion
    /// are dropped, known ones are kept as they are.
    pub async fn sync(&self) -> Result<BlockCounts, ObjectError> {
        let _one = self.syncing.lock().await;
        let listing = self.objects.list("").await?;
        let mut found: BTreeMap<&str, BlockFiles> = BTreeMap::new();
        for object in &listing {
            let Some((dir, file)) = object.key.split_once('/') else {
                continue;
            };
            if !is_ulid(dir) {
                continue;
            }
            let files = found.entry(dir).or_default();
            match file {
                "meta.json" => files.meta = true,
                "deletion-mark.json" => files.deletion_mark = true,
                "index" => files.index = true,
                _ => {}
            }
        }
        let previous = self.synced.load_full();
        let mut counts = BlockCounts::default();
        let mut blocks = BTreeMap::new();
        let mut downsampled = std::collections::BTreeSet::new();
        let mut to_open = Vec::new();
        for (ulid, files) in &found {
            if files.deletion_mark {
                counts.deleted += 1;
            } else if !files.meta || !files.index {
                counts.partial += 1;
            } else if let Some(known) = previous.blocks.get(*ulid) {
                blocks.insert(ulid.to_string(), known.clone());
            } else if previous.downsampled.contains(*ulid) {
                downsampled.insert(ulid.to_string());
            } else {
                to_open.push(ulid.to_string());
            }
        }
        let opened: Vec<(String, Result<Option<LoadedBlock>, BlockError>)> =
            futures::stream::iter(to_open)
                .map(|ulid| async move {
                    let result = self.open(&ulid).await;
                    (ulid, result)
                })
                .buffer_unordered(OPEN_CONCURRENCY)
                .collect()
                .await;
        for (ulid, result) in opened {
            match result {
                Ok(Some(block)) => {
                    blocks.insert(ulid, Arc::new(block));
                }
                Ok(None) => {
                    downsampled.insert(ulid);
                }
                Err(e) => {
                    counts.failed += 1;
                    tracing::warn!(backend = %self.name, block = %ulid, error = %e, "skipping unreadable block");
                }
            }
        }
        counts.loaded = blocks.len();
        counts.downsampled = downsampled.len();
        counts.time_range = blocks
            .values()
            .map(|b| (b.block.meta().min_time, b.block.meta().max_time))
            .reduce(|(a0, a1), (b0, b1)| (a0.min(b0), a1.max(b1)));
        self.synced.store(Arc::new(Synced {
            blocks,
            downsampled,
            at: Some(Instant::now()),
        }));
        if let Ok(mut c) = self.counts.lock() {
            *c = counts.clone();
        }
        Ok(counts)
    }

    /// The block named `ulid`, or `None` when it is downsampled.
    async fn open(&self, ulid: &str) -> Result<Option<LoadedBlock>, BlockError> {
        let raw = self.objects.get(&format!("{ulid}/meta.json")).await?;
        let meta = BlockMeta::parse(&raw)?;
        if meta.downsample_resolution.is_some_and(|r| r > 0) {
            return Ok(None);
        }
        if meta.ulid != ulid {
            return Err(BlockError::Meta(format!(
                "meta.json of {ulid} names block {}",
                meta.ulid
            )));
        }
        let labels = if meta.thanos_labels.is_empty() {
            self.fallback.clone()
        } else {
            meta.thanos_labels.clone()
        };
        let block = Block::open(
            self.objects.clone(),
            format!("{ulid}/"),
            meta,
            self.cache.clone(),
        )
        .await?;
        Ok(Some(LoadedBlock { block, labels }))
    }

    /// Syncs before the first read and starts a sync in the background when the last one
    /// is older than the interval; a failed first sync fails the read.
    async fn fresh(self: &Arc<Self>) -> Result<Arc<Synced>, ObjectError> {
        let synced = self.synced.load_full();
        match synced.at {
            None => {
                self.sync().await?;
                Ok(self.synced.load_full())
            }
            Some(at) if at.elapsed() >= self.interval => {
                if let Ok(guard) = self.syncing.try_lock() {
                    drop(guard);
                    let set = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = set.sync().await {
                            tracing::warn!(backend = %set.name, error = %e, "block list not read");
                        }
                    });
                }
                Ok(synced)
            }
            Some(_) => Ok(synced),
        }
    }

    /// The series matching `matchers` with samples in `start_ms..=end_ms`, external labels
    /// attached; a series split over blocks one after another comes back as one. With
    /// `labels_only`, series with a chunk in the range, as [`SeriesData::Listed`], read from
    /// the index alone.
    pub async fn select(
        self: &Arc<Self>,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        labels_only: bool,
    ) -> Result<Vec<RemoteSeries>, BlockError> {
        let synced = self.fresh().await?;
        let mut reads = Vec::new();
        for loaded in synced.blocks.values() {
            if !loaded.overlaps(start_ms, end_ms) {
                continue;
            }
            if let Some(sent) = for_block(matchers, &loaded.labels) {
                reads.push((loaded.clone(), sent));
            }
        }
        // In time order, so that the series of consecutive blocks concatenate.
        reads.sort_by_key(|(b, _)| b.block.meta().min_time);
        type Answer = Result<(Arc<LoadedBlock>, Vec<RemoteSeries>), BlockError>;
        let answers: Vec<Answer> = futures::stream::iter(reads)
            .map(|(loaded, sent)| async move {
                let series = if labels_only {
                    loaded.block.list(&sent, start_ms, end_ms).await?
                } else {
                    loaded.block.select(&sent, start_ms, end_ms).await?
                };
                Ok((loaded, series))
            })
            .buffered(SELECT_CONCURRENCY)
            .collect()
            .await;
        let mut out: Vec<RemoteSeries> = Vec::new();
        // Labels → index in `out` and the exclusive end of the block it last came from.
        let mut last: HashMap<Vec<(String, String)>, (usize, i64)> = HashMap::new();
        for answer in answers {
            let (loaded, series) = answer?;
            let meta = loaded.block.meta();
            for mut s in series {
                with_labels(&mut s.labels, &loaded.labels);
                match last.get_mut(&s.labels) {
                    Some((i, until)) if *until <= meta.min_time => {
                        if append_chunks(&mut out[*i], &mut s) {
                            *until = meta.max_time;
                        } else {
                            *i = out.len();
                            *until = meta.max_time;
                            out.push(s);
                        }
                    }
                    _ => {
                        last.insert(s.labels.clone(), (out.len(), meta.max_time));
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Which of a block's files a listing showed.
#[derive(Default)]
struct BlockFiles {
    meta: bool,
    index: bool,
    deletion_mark: bool,
}

/// The matchers a block with external labels `labels` is sent: `None` when the labels
/// rule the block out. Matchers on external labels are decided here; when none is left,
/// every series is asked for.
fn for_block(matchers: &[Matcher], labels: &ExternalLabels) -> Option<Vec<Matcher>> {
    let mut sent = Vec::new();
    for m in matchers {
        match labels.get(&m.name) {
            Some(value) if !m.is_match(value) => return None,
            Some(_) => {}
            None => sent.push(m.clone()),
        }
    }
    if sent.is_empty() {
        sent.push(Matcher::new(
            MatchOp::Re(regex::Regex::new("^(?:.+)$").expect("a valid regex")),
            "__name__",
            ".+",
        ));
    }
    Some(sent)
}

/// Sets the external labels on sorted `series_labels`, replacing any of the same name.
fn with_labels(series_labels: &mut Vec<(String, String)>, external: &ExternalLabels) {
    if external.is_empty() {
        return;
    }
    series_labels.retain(|(n, _)| !external.contains_key(n));
    series_labels.extend(external.iter().map(|(k, v)| (k.clone(), v.clone())));
    series_labels.sort_unstable();
}

/// Appends `next`'s chunks to `to` when both are chunks; false when they cannot be joined.
fn append_chunks(to: &mut RemoteSeries, next: &mut RemoteSeries) -> bool {
    match (&mut to.data, &mut next.data) {
        (SeriesData::Chunks(a), SeriesData::Chunks(b)) => {
            a.append(b);
            true
        }
        (SeriesData::Listed, SeriesData::Listed) => true,
        _ => false,
    }
}

/// One select on a blocks backend, with the caller's deadline.
#[derive(Debug, Clone)]
pub struct BlocksCall {
    /// Which series, not their samples (answered [`SeriesData::Listed`]).
    pub labels_only: bool,
    pub matchers: Vec<Matcher>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub deadline: Option<Instant>,
}

impl Repeatable for BlocksCall {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Answers [`BlocksCall`]s from a [`BlockSet`], as a tower Service under the backend's
/// breaker, timeout, limit and retry.
#[derive(Clone)]
pub struct BlocksService {
    set: Arc<BlockSet>,
}

impl BlocksService {
    pub fn new(set: Arc<BlockSet>) -> Self {
        BlocksService { set }
    }
}

impl tower::Service<BlocksCall> for BlocksService {
    type Response = ReadAnswer;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<ReadAnswer, BackendError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: BlocksCall) -> Self::Future {
        let set = self.set.clone();
        Box::pin(async move {
            let read = set.select(&call.matchers, call.start_ms, call.end_ms, call.labels_only);
            let result = match call.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, read)
                    .await
                    .map_err(|_| BackendError::DeadlineExceeded)?,
                None => read.await,
            };
            result.map(ReadAnswer).map_err(block_error)
        })
    }
}

/// Object store trouble is the store's (retried, counted by the breaker); a block that
/// cannot be decoded is reported as such.
fn block_error(e: BlockError) -> BackendError {
    match e {
        BlockError::Object(ObjectError::Timeout) => BackendError::DeadlineExceeded,
        BlockError::Object(e @ (ObjectError::Io { .. } | ObjectError::Status { .. })) => {
            BackendError::Transport(e.to_string())
        }
        other => BackendError::Decode(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(op: &str, name: &str, value: &str) -> Matcher {
        let op = match op {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Re(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
            _ => MatchOp::NotRe(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
        };
        Matcher::new(op, name, value)
    }

    #[test]
    fn external_label_matchers_pick_blocks_and_are_not_sent() {
        let labels: ExternalLabels = [("cluster".to_string(), "eu1".to_string())].into();
        let other = [
            matcher("=", "cluster", "us1"),
            matcher("=", "__name__", "up"),
        ];
        assert!(for_block(&other, &labels).is_none());
        let ours = [
            matcher("=~", "cluster", "eu.*"),
            matcher("=", "__name__", "up"),
        ];
        let sent = for_block(&ours, &labels).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].name, "__name__");
        let only = [matcher("!=", "cluster", "us1")];
        let sent = for_block(&only, &labels).unwrap();
        assert_eq!(
            (sent[0].name.as_str(), sent[0].value.as_str()),
            ("__name__", ".+")
        );
        // A matcher on a label the block has not got is the index's to decide.
        let absent = [matcher("=", "region", "")];
        assert_eq!(for_block(&absent, &labels).unwrap()[0].name, "region");
    }

    #[test]
    fn external_labels_replace_series_labels_of_the_same_name() {
        let mut series = vec![
            ("__name__".to_string(), "up".to_string()),
            ("cluster".to_string(), "old".to_string()),
            ("job".to_string(), "x".to_string()),
        ];
        let labels: ExternalLabels = [
            ("cluster".to_string(), "eu1".to_string()),
            ("replica".to_string(), "a".to_string()),
        ]
        .into();
        with_labels(&mut series, &labels);
        let names: Vec<(&str, &str)> = series
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("__name__", "up"),
                ("cluster", "eu1"),
                ("job", "x"),
                ("replica", "a")
            ]
        );
    }
}
