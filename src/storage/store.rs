//! The Store: what the engine and the raw-data endpoints read series from. A select names
//! matchers and a time range and gets back series with their final labels (external labels
//! attached, replica labels gone); each series keeps the raw answers of every backend and
//! replica that held it, and merges and deduplicates them lazily when its samples are read.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use tokio::time::Instant;

use super::dedup::{DedupMode, Replica, ReplicaDedup, Sample, SeriesMerge};
use super::remote::{ChunkError, RemoteSeries, SampleIter, SeriesData};
use crate::backend::fanout::MemberFailure;
use crate::model::Labels;

/// What to read.
#[derive(Debug, Clone)]
pub struct SelectRequest {
    /// All must match (PromQL's matchers, regexes anchored).
    pub matchers: Vec<Matcher>,
    /// Inclusive, unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// What the reader will do with the series, passed on to stores that use it.
    pub hints: Option<SelectHints>,
    pub deadline: Option<Instant>,
}

/// How the series will be used (remote read's `ReadHints`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectHints {
    pub step_ms: i64,
    /// The function around the selector (`rate`), or `series` for metadata.
    pub func: String,
    pub range_ms: i64,
    pub grouping: Vec<String>,
    pub by: bool,
}

impl SelectRequest {
    /// The matchers of a selector: its label matchers plus the metric name. Alternatives
    /// (`{a="1" or b="2"}`) come out as one list each.
    pub fn selector_matchers(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
        let name = vs
            .name
            .as_deref()
            .map(|n| Matcher::new(MatchOp::Equal, "__name__", n));
        let with_name = |mut list: Vec<Matcher>| {
            if let Some(n) = &name {
                if !list.contains(n) {
                    list.push(n.clone());
                }
            }
            list
        };
        if vs.matchers.or_matchers.is_empty() {
            vec![with_name(vs.matchers.matchers.clone())]
        } else {
            vs.matchers
                .or_matchers
                .iter()
                .map(|alt| with_name(alt.clone()))
                .collect()
        }
    }

    /// Whether the select only asks which series there are (`series`, labels): stores may
    /// then answer [`SeriesData::Listed`] without reading samples.
    pub fn is_metadata(&self) -> bool {
        self.hints.as_ref().is_some_and(|h| h.func == "series")
    }

    /// How replicas' values are to be merged for a reader that applies `func`.
    pub fn dedup_mode(&self) -> DedupMode {
        match self.hints.as_ref().map(|h| h.func.as_str()) {
            Some("rate" | "increase" | "irate" | "resets") => DedupMode::Counter,
            _ => DedupMode::Gauge,
        }
    }
}

/// Series source: anything a select can be sent to.
pub trait Store: Send + Sync {
    fn select(
        &self,
        request: &SelectRequest,
    ) -> impl Future<Output = Result<SeriesSet, StoreError>> + Send;
}

/// The answer of a select.
#[derive(Default)]
pub struct SeriesSet {
    /// Sorted by labels, each label set once.
    pub series: Vec<StoreSeries>,
    /// Backends that failed (the answer is partial) and why.
    pub failures: Vec<MemberFailure>,
    /// How many backends answered.
    pub answered: usize,
}

/// Why a select gave no answer at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A backend failed and partial answers are off.
    #[error("{0}")]
    BackendFailed(String),
    /// A backend did not answer in time and partial answers are off.
    #[error("{0}")]
    BackendTimedOut(String),
}

/// One series of a select: its labels and the raw data of every replica that has it.
pub struct StoreSeries {
    pub labels: Labels,
    /// One entry per replica (distinct values of the replica labels), in the order replicas
    /// are preferred; each holds the answers of the backends that returned the series with
    /// exactly those labels (a Prometheus and the long-term store it writes to).
    replicas: Vec<Vec<Arc<RemoteSeries>>>,
}

impl StoreSeries {
    pub fn new(labels: Labels, replicas: Vec<Vec<Arc<RemoteSeries>>>) -> Self {
        StoreSeries { labels, replicas }
    }

    /// Whether the series has a sample in `start_ms..=end_ms` (or a store listed it as
    /// having one without reading its samples).
    pub fn has_samples(&self, start_ms: i64, end_ms: i64) -> bool {
        let listed = self
            .replicas
            .iter()
            .flatten()
            .any(|s| matches!(s.data, SeriesData::Listed));
        listed
            || self
                .samples(start_ms, end_ms, DedupMode::Gauge)
                .next()
                .is_some()
    }

    /// How many replicas hold the series.
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// The merged, deduplicated samples with `start_ms <= t <= end_ms`, decoded as they are
    /// read. A corrupt chunk ends the iteration; [`StoreSamples::error`] tells.
    pub fn samples(&self, start_ms: i64, end_ms: i64, mode: DedupMode) -> StoreSamples<'_> {
        let error = Arc::new(OnceLock::new());
        let source = |answers| source(answers, start_ms, end_ms, &error);
        let inner = match self.replicas.as_slice() {
            [one] => Inner::One(source(one)),
            many => Inner::Dedup(ReplicaDedup::new(
                many.iter().map(|answers| {
                    let src = source(answers);
                    match time_range(answers) {
                        Some((min, max)) => {
                            Replica::with_range(src, min.max(start_ms), max.min(end_ms))
                        }
                        None => Replica::new(src),
                    }
                }),
                mode,
            )),
        };
        StoreSamples { inner, error }
    }
}

impl StoreSeries {
    /// Appends what [`samples`](Self::samples) yields to `ts` and `vs`. A series one backend
    /// alone answered (the usual case) is decoded whole chunks at a time; merged and
    /// deduplicated ones sample by sample. On error both keep their old lengths.
    pub fn decode_into(
        &self,
        start_ms: i64,
        end_ms: i64,
        mode: DedupMode,
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Result<(), ChunkError> {
        if let [replica] = self.replicas.as_slice() {
            if let [one] = replica.as_slice() {
                return one.decode_into(start_ms, end_ms, ts, vs);
            }
        }
        let (old_t, old_v) = (ts.len(), vs.len());
        let mut samples = self.samples(start_ms, end_ms, mode);
        for (t, v) in samples.by_ref() {
            ts.push(t);
            vs.push(v);
        }
        match samples.error() {
            Some(e) => {
                ts.truncate(old_t);
                vs.truncate(old_v);
                Err(e.clone())
            }
            None => Ok(()),
        }
    }
}

impl StoreSeries {
    /// At least as many samples as [`samples`](Self::samples) yields, from chunk headers
    /// alone (every backend's and replica's, before merging).
    pub fn samples_bound(&self, start_ms: i64, end_ms: i64) -> usize {
        self.replicas
            .iter()
            .flatten()
            .map(|s| s.samples_bound(start_ms, end_ms))
            .sum()
    }

    /// How many samples [`samples`](Self::samples) yields: from chunk headers for a series
    /// one backend alone answered, by reading the samples for merged ones.
    pub fn count_samples(
        &self,
        start_ms: i64,
        end_ms: i64,
        mode: DedupMode,
    ) -> Result<usize, ChunkError> {
        if let [replica] = self.replicas.as_slice() {
            if let [one] = replica.as_slice() {
                return one.count(start_ms, end_ms);
            }
        }
        let mut samples = self.samples(start_ms, end_ms, mode);
        let n = samples.by_ref().count();
        match samples.error() {
            Some(e) => Err(e.clone()),
            None => Ok(n),
        }
    }
}

/// One replica's samples: its one answer, or its answers merged.
fn source<'a>(
    answers: &'a [Arc<RemoteSeries>],
    start_ms: i64,
    end_ms: i64,
    error: &Arc<OnceLock<ChunkError>>,
) -> Source<'a> {
    let checked = |s: &'a Arc<RemoteSeries>| Checked {
        inner: s.samples(start_ms, end_ms),
        error: error.clone(),
    };
    match answers {
        [one] => Source::One(checked(one)),
        many => Source::Merged(SeriesMerge::new(many.iter().map(checked))),
    }
}

/// The time range all of `answers`' samples lie in, when they say.
fn time_range(answers: &[Arc<RemoteSeries>]) -> Option<(i64, i64)> {
    answers
        .iter()
        .map(|s| s.time_range())
        .reduce(|a, b| match (a, b) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            _ => None,
        })
        .flatten()
}

/// Samples of a [`StoreSeries`].
pub struct StoreSamples<'a> {
    inner: Inner<'a>,
    error: Arc<OnceLock<ChunkError>>,
}

impl StoreSamples<'_> {
    /// The corrupt chunk that ended the iteration early, if one did.
    pub fn error(&self) -> Option<&ChunkError> {
        self.error.get()
    }
}

enum Inner<'a> {
    One(Source<'a>),
    Dedup(ReplicaDedup<Source<'a>>),
}

impl Iterator for StoreSamples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        match &mut self.inner {
            Inner::One(s) => s.next(),
            Inner::Dedup(d) => d.next(),
        }
    }
}

/// The samples of one replica: one backend's answer, or several merged.
enum Source<'a> {
    One(Checked<'a>),
    Merged(SeriesMerge<Checked<'a>>),
}

impl Iterator for Source<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        match self {
            Source::One(s) => s.next(),
            Source::Merged(m) => m.next(),
        }
    }
}

/// A chunk decoder that stops at the first corrupt chunk and leaves the error in a slot
/// the whole series shares.
struct Checked<'a> {
    inner: SampleIter<'a>,
    error: Arc<OnceLock<ChunkError>>,
}

impl Iterator for Checked<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        match self.inner.next()? {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = self.error.set(e);
                None
            }
        }
    }
}
