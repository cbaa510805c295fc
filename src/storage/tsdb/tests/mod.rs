//! Blocks written by the real promtool from OpenMetrics text with known values: every sample
//! must come back from `select`, matchers must agree with a brute-force evaluation over the
//! known series, and damaged files must give typed errors. Skipped (with a message) when no
//! promtool is installed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use promql_parser::label::{MatchOp, Matcher};
use regex::Regex;

use super::{Block, BlockCache, BlockError};
use crate::realenv::PrometheusBinary;
use crate::storage::object::{FsObjects, ObjectError, ObjectInfo, ObjectStore};
use crate::storage::remote::RemoteSeries;

mod damage;
mod index_bytes;

use damage::scratch;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// promtool cuts blocks at multiples of 18 h when allowed 24 h (the largest of 2 h × 3^n
/// that fits): starting two hours before such a boundary, the data spans two blocks.
const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % (18 * HOUR) + 16 * HOUR;
const SPAN: i64 = 5 * HOUR;

type Labels = Vec<(String, String)>;
/// Series with their samples, as compared in the tests.
type Answer = Vec<(Labels, Vec<(i64, f64)>)>;
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// The series written, with every sample.
struct Dataset {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

fn dataset() -> Dataset {
    let mut series = BTreeMap::new();
    let mut n = 0usize;
    for metric in ["m_a", "m_b"] {
        for job in ["api", "db"] {
            for inst in 0..3 {
                let inst_s = inst.to_string();
                let mut pairs = vec![
                    ("__name__", metric),
                    ("job", job),
                    ("inst", inst_s.as_str()),
                ];
                match inst {
                    0 => pairs.push(("x", "a")),
                    1 => pairs.push(("x", "b")),
                    _ => {}
                }
                if metric == "m_b" && job == "db" {
                    pairs.push(("y", "1"));
                }
                n += 1;
                // Per-series phase, with milliseconds, and a gap in some series.
                let phase = (n as i64 * 1_237) % 15_000;
                let gap = (metric == "m_a" && inst == 1).then_some((T0 + HOUR, T0 + 2 * HOUR));
                let mut samples = Vec::new();
                let mut k = 0u32;
                let mut t = T0 + phase;
                while t < T0 + SPAN {
                    if !gap.is_some_and(|(a, b)| t >= a && t < b) {
                        let v = if job == "api" {
                            f64::from(k) * 3.0 + n as f64
                        } else {
                            (f64::from(k) * 0.37 + n as f64).sin() * 1e3
                        };
                        samples.push((t, v));
                    }
                    k += 1;
                    t += 15_000;
                }
                series.insert(labels(&pairs), samples);
            }
        }
    }
    // A sparse series: a few samples around the boundary between the blocks.
    series.insert(
        labels(&[("__name__", "m_c"), ("job", "api")]),
        (0..6)
            .map(|i| (T0 + 2 * HOUR - 3 * MIN + i * MIN, -0.5 * i as f64))
            .collect(),
    );
    // A dense series of random values at jittered times: its chunks are longer than the
    // reader's first guess, and its series entry (hundreds of chunks) too.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dense = (0..5 * 3600)
        .map(|k| {
            let t = T0 + k * 1000 + (next() % 900) as i64;
            (t, (next() as f64 / u64::MAX as f64 - 0.5) * 1e6)
        })
        .collect();
    series.insert(labels(&[("__name__", "m_dense"), ("job", "db")]), dense);
    Dataset { series }
}

fn secs(t: i64) -> String {
    format!("{}.{:03}", t.div_euclid(1000), t.rem_euclid(1000))
}

fn openmetrics(d: &Dataset) -> String {
    let mut out = String::new();
    let mut family = "";
    for (l, samples) in &d.series {
        let name = &l.iter().find(|(n, _)| n == "__name__").unwrap().1;
        if name != family {
            let _ = writeln!(out, "# TYPE {name} gauge");
            family = name;
        }
        let inner: Vec<String> = l
            .iter()
            .filter(|(n, _)| n != "__name__")
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .collect();
        for (t, v) in samples {
            let _ = writeln!(out, "{name}{{{}}} {v} {}", inner.join(","), secs(*t));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A temporary data directory with the dataset backfilled by one promtool.
struct Backfilled {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ulids: Vec<String>,
}

fn backfill(bin: &PrometheusBinary, d: &Dataset) -> Backfilled {
    let tmp = tempfile::tempdir().unwrap();
    let om = tmp.path().join("data.om");
    std::fs::write(&om, openmetrics(d)).unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    bin.backfill(&om, &dir).unwrap();
    let mut ulids: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.path()
                .join("meta.json")
                .is_file()
                .then(|| e.file_name().into_string().ok())?
        })
        .collect();
    ulids.sort();
    Backfilled {
        _tmp: tmp,
        dir,
        ulids,
    }
}

/// Every installed promtool (3.x and 2.x), or none with a message.
fn promtools() -> Vec<PrometheusBinary> {
    let found: Vec<PrometheusBinary> = [PrometheusBinary::v3(), PrometheusBinary::v2()]
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    if found.is_empty() {
        eprintln!("skipping: no promtool installed (run .ci/run or apt-get install prometheus)");
    }
    found
}

/// An object store counting ranged reads and their bytes.
struct Counting {
    inner: FsObjects,
    gets: AtomicU64,
    bytes: AtomicU64,
}

impl Counting {
    fn new(root: &Path) -> Arc<Counting> {
        Arc::new(Counting {
            inner: FsObjects::new(root),
            gets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    fn take(&self) -> (u64, u64) {
        (
            self.gets.swap(0, Ordering::SeqCst),
            self.bytes.swap(0, Ordering::SeqCst),
        )
    }
}

impl ObjectStore for Counting {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.bytes
            .fetch_add(range.end - range.start, Ordering::SeqCst);
        self.inner.get_range(key, range)
    }
    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        self.inner.size(key)
    }
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        self.inner.list(prefix)
    }
    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.inner.put(key, data)
    }
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.inner.delete(key)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn matcher(name: &str, op: &str, value: &str) -> Matcher {
    let re = || Regex::new(&format!("^(?:{value})$")).unwrap();
    let op = match op {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Re(re()),
        "!~" => MatchOp::NotRe(re()),
        _ => panic!("{op}"),
    };
    Matcher::new(op, name, value)
}

fn brute_force<'a>(
    d: &'a Dataset,
    ms: &[Matcher],
    start: i64,
    end: i64,
) -> Vec<(&'a Labels, Vec<(i64, f64)>)> {
    d.series
        .iter()
        .filter(|(l, _)| {
            ms.iter().all(|m| {
                let v = l
                    .iter()
                    .find(|(n, _)| *n == m.name)
                    .map_or("", |(_, v)| v.as_str());
                m.is_match(v)
            })
        })
        .map(|(l, s)| {
            (
                l,
                s.iter()
                    .copied()
                    .filter(|(t, _)| *t >= start && *t <= end)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// Samples of the selected series inside the range, per series.
fn decoded(series: &[RemoteSeries], start: i64, end: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    series
        .iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.samples(start, end)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
            )
        })
        .collect()
}

async fn open_all(
    b: &Backfilled,
    objects: Arc<dyn ObjectStore>,
    cache: &Arc<BlockCache>,
) -> Vec<Block> {
    let mut blocks = Vec::new();
    for u in &b.ulids {
        blocks.push(
            Block::open_dir(objects.clone(), format!("{u}/"), cache.clone())
                .await
                .unwrap(),
        );
    }
    blocks
}

#[tokio::test]
async fn select_returns_every_sample_that_went_in() {
    let d = dataset();
    for bin in promtools() {
        let b = backfill(&bin, &d);
        assert_eq!(
            b.ulids.len(),
            2,
            "{}: data across a block boundary makes two blocks",
            bin.promtool.display()
        );
        let cache = Arc::new(BlockCache::new(64 << 20));
        let blocks = open_all(&b, Arc::new(FsObjects::new(&b.dir)), &cache).await;
        let all = [matcher("__name__", "=~", ".+")];
        let mut seen: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        for block in &blocks {
            let (min, max) = (block.meta().min_time, block.meta().max_time);
            // The whole block, and ranges cut inside chunks (at odd milliseconds).
            for (start, end) in [
                (min, max - 1),
                (T0 + 37 * 15_000 + 7, T0 + 3 * HOUR + 1_001),
                (T0 + 2 * HOUR - 90_001, T0 + 2 * HOUR + 60_000),
                (max - 1, max + HOUR),
                (min - HOUR, min),
            ] {
                let got = block.select(&all, start, end).await.unwrap();
                let (lo, hi) = (start.max(min), end.min(max - 1));
                let want: Vec<(Labels, Vec<(i64, f64)>)> = brute_force(&d, &all, lo, hi)
                    .into_iter()
                    .map(|(l, s)| (l.clone(), s))
                    .collect();
                let got_samples = decoded(&got, lo, hi);
                // A series may come with chunks overlapping the range yet no sample inside it
                // only when its samples straddle the range; compare those with data.
                let got_nonempty: Vec<_> = got_samples
                    .iter()
                    .filter(|(_, s)| !s.is_empty())
                    .cloned()
                    .collect();
                assert_eq!(
                    got_nonempty,
                    want,
                    "block {} range {start}..={end}",
                    block.meta().ulid
                );
                assert!(
                    got.windows(2).all(|w| w[0].labels < w[1].labels),
                    "sorted by labels"
                );
                if (start, end) == (min, max - 1) {
                    for (l, s) in got_samples {
                        seen.entry(l).or_default().extend(s);
                    }
                }
            }
        }
        // Both blocks together hold every sample exactly once.
        for s in seen.values_mut() {
            s.sort_by_key(|(t, _)| *t);
        }
        assert_eq!(seen, d.series, "{}", bin.promtool.display());
    }
}

#[tokio::test]
async fn matchers_agree_with_brute_force() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let cache = Arc::new(BlockCache::new(64 << 20));
    let blocks = open_all(&b, Arc::new(FsObjects::new(&b.dir)), &cache).await;
    let sets: Vec<Vec<Matcher>> = vec![
        vec![matcher("__name__", "=", "m_a")],
        vec![matcher("__name__", "!=", "m_a")],
        vec![matcher("__name__", "=~", "m_a|m_c")],
        vec![matcher("__name__", "!~", "m_(a|b)")],
        vec![matcher("job", "=", "db"), matcher("inst", "!=", "1")],
        vec![matcher("x", "=~", "|a")],
        vec![matcher("x", "=", "")],
        vec![matcher("x", "!=", "")],
        vec![matcher("x", "!=", "a")],
        vec![matcher("x", "!~", "a|b")],
        vec![matcher("x", "=~", ".*")],
        vec![matcher("x", "=~", ".+")],
        vec![matcher("missing", "=", "")],
        vec![matcher("missing", "!=", "")],
        vec![matcher("missing", "=~", "|z")],
        vec![matcher("missing", "!~", "z")],
        vec![matcher("missing", "=", "z")],
        vec![matcher("__name__", "=", "m_b"), matcher("y", "=", "")],
        vec![
            matcher("__name__", "=", "m_b"),
            matcher("y", "!=", ""),
            matcher("x", "!~", "b"),
        ],
        vec![
            matcher("__name__", "=~", "m_.*"),
            matcher("job", "=~", "a.*"),
            matcher("x", "=~", "a|"),
        ],
        vec![matcher("inst", "=~", "0|2"), matcher("job", "!=", "api")],
        vec![matcher("job", "=", "nope")],
        vec![matcher("__name__", "=~", "m"), matcher("x", "=", "a")],
        vec![],
    ];
    for block in &blocks {
        let (min, max) = (block.meta().min_time, block.meta().max_time);
        for (start, end) in [
            (min, max - 1),
            (T0 + 2 * HOUR - 2 * MIN, T0 + 2 * HOUR + MIN),
        ] {
            for ms in &sets {
                let got = block.select(ms, start, end).await.unwrap();
                let (lo, hi) = (start.max(min), end.min(max - 1));
                let want: Vec<&Labels> = brute_force(&d, ms, lo, hi)
                    .into_iter()
                    .map(|(l, _)| l)
                    .collect();
                let got_labels: Vec<&Labels> = decoded(&got, lo, hi)
                    .iter()
                    .filter(|(_, s)| !s.is_empty())
                    .map(|(l, _)| d.series.get_key_value(l).unwrap().0)
                    .collect();
                assert_eq!(got_labels, want, "{ms:?} over {start}..={end}");
            }
        }
    }
}

#[tokio::test]
async fn reads_are_coalesced_and_cached() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let ulid = &b.ulids[0];
    let objects = Counting::new(&b.dir);
    let cache = Arc::new(BlockCache::new(64 << 20));
    let block = Block::open_dir(objects.clone(), format!("{ulid}/"), cache.clone())
        .await
        .unwrap();
    let (open_gets, open_bytes) = objects.take();
    // meta.json, tombstones, and four ranged reads of the index.
    assert_eq!(open_gets, 6, "GETs to open");
    let all = [matcher("__name__", "=~", ".+")];
    let (min, max) = (block.meta().min_time, block.meta().max_time);
    let first = block.select(&all, min, max - 1).await.unwrap();
    let (gets, bytes) = objects.take();
    let chunks: usize = first
        .iter()
        .map(|s| match &s.data {
            crate::storage::remote::SeriesData::Chunks(c) => c.len(),
            crate::storage::remote::SeriesData::Samples(_)
            | crate::storage::remote::SeriesData::Listed => 0,
        })
        .sum();
    eprintln!(
        "open: {open_gets} GETs, {open_bytes} bytes; select of {} series, {chunks} chunks: {gets} GETs, {bytes} bytes",
        first.len()
    );
    // Postings (one coalesced read), series (one), chunks (one per segment).
    assert!(gets <= 4, "{gets} GETs for one select");
    let stats = cache.stats();
    assert_eq!(stats.chunks.misses, chunks as u64);
    assert_eq!(stats.series.misses, first.len() as u64);
    let again = block.select(&all, min, max - 1).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        objects.take().0,
        0,
        "a repeated select is served by the cache"
    );
    let stats = cache.stats();
    assert_eq!(stats.chunks.hits, chunks as u64);
    assert_eq!(stats.series.hits, first.len() as u64);
    assert!(stats.postings.hits > 0);

    // Concurrent selects over one shared block agree.
    let block = Arc::new(block);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let block = block.clone();
            tokio::spawn(async move {
                let ms = [matcher("inst", "=", &(i % 3).to_string())];
                block.select(&ms, min, max - 1).await.unwrap()
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let got = t.await.unwrap();
        let want: Vec<_> = first
            .iter()
            .filter(|s| s.label("inst") == Some(&(i % 3).to_string()))
            .cloned()
            .collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn deleted_intervals_are_left_out() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let ulid = b.ulids[1].clone();
    let (tmp, objects) = scratch(&b, &ulid);
    let cache = Arc::new(BlockCache::new(1 << 20));
    let block = Block::open_dir(objects.clone(), format!("{ulid}/"), cache.clone())
        .await
        .unwrap();
    let (min, max) = (block.meta().min_time, block.meta().max_time);
    let pick = |inst: &str, job: &str| {
        [
            matcher("inst", "=", inst),
            matcher("job", "=", job),
            matcher("__name__", "=", "m_a"),
        ]
    };
    let cut = block
        .matching_series(&pick("0", "api"), min, max)
        .await
        .unwrap();
    let gone = block
        .matching_series(&pick("2", "db"), min, max)
        .await
        .unwrap();
    assert_eq!((cut.len(), gone.len()), (1, 1));
    let (cut_ref, gone_ref) = (cut[0].series_ref, gone[0].series_ref);
    let holes = [
        (min + 30 * MIN, min + 40 * MIN),
        (min + 100 * MIN + 1, min + 100 * MIN + 1),
    ];
    let stones = super::tombstones::encode(&[
        (cut_ref, holes[0].0, holes[0].1),
        (gone_ref, i64::MIN, i64::MAX),
        (cut_ref, holes[1].0, holes[1].1),
    ]);
    std::fs::write(tmp.path().join(&ulid).join("tombstones"), stones).unwrap();
    let block = Block::open_dir(objects, format!("{ulid}/"), cache)
        .await
        .unwrap();
    let all = [matcher("__name__", "=~", ".+")];
    let got = decoded(
        &block.select(&all, min, max - 1).await.unwrap(),
        min,
        max - 1,
    );
    let want: Vec<(Labels, Vec<(i64, f64)>)> = brute_force(&d, &all, min, max - 1)
        .into_iter()
        .filter(|(l, _)| *l != &gone[0].labels)
        .map(|(l, s)| {
            let kept = if *l == cut[0].labels {
                s.into_iter()
                    .filter(|(t, _)| !holes.iter().any(|(a, z)| t >= a && t <= z))
                    .collect()
            } else {
                s
            };
            (l.clone(), kept)
        })
        .collect();
    assert_eq!(got, want);
    let cut_samples = &got.iter().find(|(l, _)| *l == cut[0].labels).unwrap().1;
    let before = d.series[&cut[0].labels]
        .iter()
        .filter(|(t, _)| *t >= min && *t < max)
        .count();
    assert!(
        cut_samples.len() + 40 <= before,
        "ten minutes at 15 s and one sample are gone"
    );
    // Inside a deleted interval the series has nothing; across its edge, only what is
    // both inside the range and not deleted.
    let one = [
        matcher("__name__", "=", "m_a"),
        matcher("inst", "=", "0"),
        matcher("job", "=", "api"),
    ];
    let inside = block
        .select(&one, holes[0].0 + MIN, holes[0].1 - MIN)
        .await
        .unwrap();
    assert!(inside.is_empty(), "{inside:?}");
    let (from, to) = (holes[0].0 - 2 * MIN, holes[0].0 + MIN);
    let edge = block.select(&one, from, to).await.unwrap();
    assert_eq!(edge.len(), 1);
    let want: Vec<(i64, f64)> = d.series[&cut[0].labels]
        .iter()
        .copied()
        .filter(|(t, _)| *t >= from && *t < holes[0].0)
        .collect();
    assert_eq!(edge[0].all_samples().unwrap(), want);
}

#[tokio::test]
async fn label_names_and_values() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let cache = Arc::new(BlockCache::new(1 << 20));
    let blocks = open_all(&b, Arc::new(FsObjects::new(&b.dir)), &cache).await;
    let block = &blocks[0];
    let (min, max) = (block.meta().min_time, block.meta().max_time);
    assert_eq!(
        block.label_names(&[], min, max).await.unwrap(),
        ["__name__", "inst", "job", "x", "y"]
    );
    assert_eq!(
        block.label_values("__name__", &[], min, max).await.unwrap(),
        ["m_a", "m_b", "m_c", "m_dense"]
    );
    assert_eq!(
        block.label_values("nope", &[], min, max).await.unwrap(),
        Vec::<String>::new()
    );
    let m_a = [matcher("__name__", "=", "m_a")];
    assert_eq!(
        block.label_names(&m_a, min, max).await.unwrap(),
        ["__name__", "inst", "job", "x"]
    );
    assert_eq!(
        block.label_values("x", &m_a, min, max).await.unwrap(),
        ["a", "b"]
    );
    let db = [matcher("job", "=", "db"), matcher("__name__", "=~", "m_b")];
    assert_eq!(block.label_values("y", &db, min, max).await.unwrap(), ["1"]);
    assert!(
        block
            .label_names(&[], max, max + HOUR)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Reads and time for a larger block (`cargo test --release -- --ignored measure`):
/// 18 hours at 15 s of the synthetic demo metrics over many instances.
#[tokio::test]
#[ignore]
async fn measure_large_block() {
    use crate::realenv::synth::{SynthSpec, openmetrics};
    use std::time::Instant;
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let end = T0 + 2 * HOUR - 15_000;
    let mut spec = SynthSpec::hours_until(end, 18);
    spec.start_ms += 15_000;
    spec.instances = 200;
    let tmp = tempfile::tempdir().unwrap();
    let om = tmp.path().join("data.om");
    std::fs::write(&om, openmetrics(&spec)).unwrap();
    let dir = tmp.path().join("data");
    bin.backfill(&om, &dir).unwrap();
    let ulid = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("meta.json").is_file())
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let size = |p: &str| std::fs::metadata(dir.join(&ulid).join(p)).map_or(0, |m| m.len());
    let objects = Counting::new(&dir);
    let cache = Arc::new(BlockCache::new(256 << 20));
    let t = Instant::now();
    let block = Block::open_dir(objects.clone(), format!("{ulid}/"), cache.clone())
        .await
        .unwrap();
    let (gets, bytes) = objects.take();
    eprintln!(
        "block: {} series, {} samples, {} chunks; index {} bytes, chunks/000001 {} bytes",
        block.meta().stats.num_series,
        block.meta().stats.num_samples,
        block.meta().stats.num_chunks,
        size("index"),
        size("chunks/000001"),
    );
    eprintln!(
        "open: {:?}, {gets} GETs, {bytes} bytes, header ~{} bytes in memory",
        t.elapsed(),
        block.index_header().memory_bytes()
    );
    let (min, max) = (block.meta().min_time, block.meta().max_time);
    let queries: Vec<(&str, Vec<Matcher>, i64, i64)> = vec![
        (
            "one series, whole block",
            vec![
                matcher("__name__", "=", "demo_temperature_celsius"),
                matcher("instance", "=", "i-7"),
            ],
            min,
            max - 1,
        ),
        (
            "counter, last hour",
            vec![matcher("__name__", "=", "demo_requests_total")],
            max - HOUR,
            max - 1,
        ),
        (
            "counter, whole block",
            vec![matcher("__name__", "=", "demo_requests_total")],
            min,
            max - 1,
        ),
        (
            "buckets le!=+Inf, 2 h",
            vec![
                matcher("__name__", "=", "demo_request_duration_seconds_bucket"),
                matcher("le", "!=", "+Inf"),
            ],
            min + 6 * HOUR,
            min + 8 * HOUR,
        ),
        (
            "everything, whole block",
            vec![matcher("job", "=~", "api|x")],
            min,
            max - 1,
        ),
    ];
    for (what, ms, start, end) in &queries {
        let before = cache.stats();
        let t = Instant::now();
        let got = block.select(ms, *start, *end).await.unwrap();
        let cold = t.elapsed();
        let (gets, bytes) = objects.take();
        let samples: usize = got.iter().map(|s| s.samples(*start, *end).count()).sum();
        let t = Instant::now();
        let again = block.select(ms, *start, *end).await.unwrap();
        let warm = t.elapsed();
        assert_eq!(again.len(), got.len());
        let (warm_gets, _) = objects.take();
        let after = cache.stats();
        eprintln!(
            "{what}: {} series, {samples} samples; cold {cold:?} with {gets} GETs / {bytes} bytes; warm {warm:?} with {warm_gets} GETs; chunk cache +{} hits +{} misses",
            got.len(),
            after.chunks.hits - before.chunks.hits,
            after.chunks.misses - before.chunks.misses,
        );
    }
}
