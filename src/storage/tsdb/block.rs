//! One TSDB block in an object store: opened once (meta, index header, segment listing and
//! tombstones), then queried concurrently by label matchers and time range. Answers are
//! [`RemoteSeries`] holding the block's XOR chunks as they are stored, so the rest of
//! promgate merges them with remote read answers.

use std::sync::Arc;

use promql_parser::label::Matcher;

use super::BlockError;
use super::cache::BlockCache;
use super::chunks::{ENCODING_XOR, RawChunk, Segments};
use super::index::{IndexHeader, SeriesEntry};
use super::meta::BlockMeta;
use super::postings::postings_for_matchers;
use super::tombstones::Tombstones;
use crate::storage::object::ObjectStore;
use crate::storage::remote::proto::{Chunk, ChunkEncoding};
use crate::storage::remote::xor::xor_samples;
use crate::storage::remote::{RemoteSeries, SeriesData};

/// Where a block's pieces are read from: the store, the shared cache and the block's ULID
/// (the cache key's first part).
pub(crate) struct Source {
    pub objects: Arc<dyn ObjectStore>,
    pub cache: Arc<BlockCache>,
    pub block: Arc<str>,
}

/// An open block. Cheap to share behind an `Arc`; every method takes `&self` and may run
/// concurrently with the others.
pub struct Block {
    src: Source,
    dir: String,
    meta: BlockMeta,
    header: IndexHeader,
    segments: Segments,
    tombstones: Tombstones,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("ulid", &self.meta.ulid)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Block {
    /// Opens the block under `dir` (a key prefix ending in `/`, such as `01JC…/`): reads
    /// the index header, lists the chunk segments and reads the tombstones.
    pub async fn open(
        objects: Arc<dyn ObjectStore>,
        dir: String,
        meta: BlockMeta,
        cache: Arc<BlockCache>,
    ) -> Result<Block, BlockError> {
        let index_key = format!("{dir}index");
        let header = IndexHeader::read(&*objects, &index_key).await?;
        let chunks_prefix = format!("{dir}chunks/");
        let segments = Segments::from_listing(&chunks_prefix, objects.list(&chunks_prefix).await?);
        let tombstones_key = format!("{dir}tombstones");
        let tombstones = match objects.get(&tombstones_key).await {
            Ok(b) => Tombstones::parse(&b, &tombstones_key)?,
            Err(e) if e.is_not_found() => Tombstones::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(Block {
            src: Source {
                objects,
                cache,
                block: Arc::from(meta.ulid.as_str()),
            },
            dir,
            meta,
            header,
            segments,
            tombstones,
        })
    }

    /// Reads `{dir}meta.json` and opens the block.
    pub async fn open_dir(
        objects: Arc<dyn ObjectStore>,
        dir: String,
        cache: Arc<BlockCache>,
    ) -> Result<Block, BlockError> {
        let meta = BlockMeta::parse(&objects.get(&format!("{dir}meta.json")).await?)?;
        Block::open(objects, dir, meta, cache).await
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn index_header(&self) -> &IndexHeader {
        &self.header
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// The series matching every matcher with at least one chunk overlapping
    /// `start_ms..=end_ms`, their chunks cut down to those overlapping.
    pub(crate) async fn matching_series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesEntry>, BlockError> {
        Ok(self
            .matching_with_ends(matchers, start_ms, end_ms)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The series [`Block::select`] would return, without their samples: labels, and
    /// [`SeriesData::Listed`] (read from the index only; no chunk is fetched).
    pub async fn list(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RemoteSeries>, BlockError> {
        let found = self.matching_series(matchers, start_ms, end_ms).await?;
        Ok(found
            .into_iter()
            .map(|s| RemoteSeries {
                labels: s.labels,
                data: SeriesData::Listed,
            })
            .collect())
    }

    /// Like [`Block::matching_series`], with for each chunk kept the offset at which the
    /// series' next chunk starts when it lies in the same segment: chunks of a series are
    /// written one after the other, so that bounds the chunk's end and spares a guess.
    async fn matching_with_ends(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SeriesEntry, Vec<Option<u64>>)>, BlockError> {
        if !self.meta.overlaps(start_ms, end_ms) {
            return Ok(Vec::new());
        }
        let refs = postings_for_matchers(&self.header, &self.src, matchers).await?;
        let series = self.header.series(&self.src, &refs).await?;
        let mut out = Vec::with_capacity(series.len());
        for mut s in series {
            let mut ends = Vec::new();
            let mut kept = Vec::new();
            for (i, c) in s.chunks.iter().enumerate() {
                if c.overlaps(start_ms, end_ms) {
                    let next = s.chunks.get(i + 1).filter(|n| n.segment() == c.segment());
                    ends.push(next.map(|n| n.offset()));
                    kept.push(*c);
                }
            }
            if kept.is_empty() {
                continue;
            }
            s.chunks = kept;
            out.push((s, ends));
        }
        Ok(out)
    }

    /// The series matching every matcher (all must hold; see [`super::postings`]) with at
    /// least one chunk overlapping `start_ms..=end_ms`, sorted by labels. Chunks are those
    /// overlapping the range, whole (samples outside it included); series with deleted
    /// intervals come as their samples inside the range minus the deleted ones (and not
    /// at all when none is left). Labels are the block's own, without
    /// external labels. A chunk that is not XOR fails the call with
    /// [`BlockError::UnsupportedEncoding`].
    pub async fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<RemoteSeries>, BlockError> {
        self.select_inner(matchers, start_ms, end_ms, None).await
    }

    /// Like [`Block::select`], but chunks that are not XOR (native histograms) are left
    /// out instead of failing the call: each series that lost some is named by one
    /// [`BlockError::UnsupportedEncoding`] in the warnings, and a series left without
    /// chunks is not returned.
    pub async fn select_floats(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(Vec<RemoteSeries>, Vec<BlockError>), BlockError> {
        let mut warnings = Vec::new();
        let series = self
            .select_inner(matchers, start_ms, end_ms, Some(&mut warnings))
            .await?;
        Ok((series, warnings))
    }

    /// `select`, failing on a chunk that is not XOR unless `skipped` collects warnings.
    async fn select_inner(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        mut skipped: Option<&mut Vec<BlockError>>,
    ) -> Result<Vec<RemoteSeries>, BlockError> {
        let found = self.matching_with_ends(matchers, start_ms, end_ms).await?;
        let wanted: Vec<(u64, Option<u64>)> = found
            .iter()
            .flat_map(|(s, ends)| s.chunks.iter().map(|c| c.r#ref).zip(ends.iter().copied()))
            .collect();
        let mut raw = self
            .segments
            .read(&self.src, &wanted, &self.dir)
            .await?
            .into_iter();
        let mut out = Vec::with_capacity(found.len());
        for (mut s, _) in found {
            let mut chunks: Vec<RawChunk> = raw.by_ref().take(s.chunks.len()).collect();
            if let Some(c) = chunks.iter().find(|c| c.encoding != ENCODING_XOR) {
                let err = BlockError::UnsupportedEncoding {
                    series: describe(&s.labels),
                    encoding: c.encoding,
                };
                let Some(warnings) = skipped.as_deref_mut() else {
                    return Err(err);
                };
                warnings.push(err);
                let keep: Vec<bool> = chunks.iter().map(|c| c.encoding == ENCODING_XOR).collect();
                let mut flags = keep.iter();
                s.chunks.retain(|_| *flags.next().unwrap_or(&false));
                let mut flags = keep.iter();
                chunks.retain(|_| *flags.next().unwrap_or(&false));
                if chunks.is_empty() {
                    continue;
                }
            }
            let deleted = self.tombstones.intervals(s.series_ref);
            let touched = deleted
                .iter()
                .any(|&(a, b)| s.chunks.iter().any(|c| c.min_time <= b && c.max_time >= a));
            let data = if touched {
                let mut samples = Vec::new();
                for c in &chunks {
                    let iter = xor_samples(&c.data).map_err(|e| {
                        BlockError::corrupt(&self.dir, 0, format!("{}: {e}", describe(&s.labels)))
                    })?;
                    for sample in iter {
                        let (t, v) = sample.map_err(|e| {
                            BlockError::corrupt(
                                &self.dir,
                                0,
                                format!("{}: {e}", describe(&s.labels)),
                            )
                        })?;
                        if (start_ms..=end_ms).contains(&t) && !Tombstones::is_deleted(deleted, t) {
                            samples.push((t, v));
                        }
                    }
                }
                if samples.is_empty() {
                    continue;
                }
                SeriesData::Samples(samples)
            } else {
                SeriesData::Chunks(
                    s.chunks
                        .iter()
                        .zip(chunks)
                        .map(|(m, c)| Chunk {
                            min_time_ms: m.min_time,
                            max_time_ms: m.max_time,
                            r#type: ChunkEncoding::Xor as i32,
                            data: c.data,
                        })
                        .collect(),
                )
            };
            out.push(RemoteSeries {
                labels: s.labels,
                data,
            });
        }
        // Series references follow label order already; this keeps the promise cheaply.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Label names of the series matching `matchers` with data in `start_ms..=end_ms`,
    /// sorted. Without matchers, every name of the block (read from the index header).
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, BlockError> {
        if !self.meta.overlaps(start_ms, end_ms) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self.header.label_names().map(str::to_string).collect());
        }
        let mut names: Vec<String> = self
            .matching_series(matchers, start_ms, end_ms)
            .await?
            .into_iter()
            .flat_map(|s| s.labels.into_iter().map(|(n, _)| n))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Values of label `name` among the series matching `matchers` with data in
    /// `start_ms..=end_ms`, sorted. Without matchers, every value of the block.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, BlockError> {
        if !self.meta.overlaps(start_ms, end_ms) {
            return Ok(Vec::new());
        }
        if matchers.is_empty() {
            return Ok(self
                .header
                .label_values(name)
                .map(|(v, _)| v.to_string())
                .collect());
        }
        let mut values: Vec<String> = self
            .matching_series(matchers, start_ms, end_ms)
            .await?
            .into_iter()
            .filter_map(|s| {
                s.labels
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
            })
            .collect();
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

fn describe(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}
