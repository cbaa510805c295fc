//! Remote read answers in one decoded form, whichever response type the server chose: a
//! series is its sorted labels plus either raw samples (SAMPLES) or XOR chunks
//! (STREAMED_XOR_CHUNKS), and [`RemoteSeries::samples`] walks either, trimmed to a range.

use std::slice;

use super::error::RemoteReadError;
use super::proto::{Chunk, ChunkEncoding, ChunkedSeries, Label, TimeSeries};
use super::xor::{ChunkError, XorIter, xor_samples};

/// One series of a remote read answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSeries {
    /// Sorted by name, external labels included (the server adds them).
    pub labels: Vec<(String, String)>,
    pub data: SeriesData,
}

/// How a series' samples arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesData {
    /// `(timestamp ms, value)` in time order.
    Samples(Vec<(i64, f64)>),
    /// XOR chunks in time order (other encodings are refused when the series is built).
    Chunks(Vec<Chunk>),
    /// Known to hold samples in the range asked, which were not read: the answer to a
    /// metadata select (`series`, labels) from a store that can tell without reading them.
    Listed,
}

fn sorted_labels(labels: Vec<Label>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels.into_iter().map(|l| (l.name, l.value)).collect();
    out.sort_unstable();
    out
}

impl RemoteSeries {
    pub fn from_time_series(ts: TimeSeries) -> Self {
        RemoteSeries {
            labels: sorted_labels(ts.labels),
            data: SeriesData::Samples(ts.samples.iter().map(|s| (s.timestamp, s.value)).collect()),
        }
    }

    /// Fails on chunks that are not XOR (native histograms), which this client cannot read.
    pub fn from_chunked(series: ChunkedSeries) -> Result<Self, RemoteReadError> {
        if let Some(c) = series
            .chunks
            .iter()
            .find(|c| c.r#type != ChunkEncoding::Xor as i32)
        {
            return Err(RemoteReadError::UnsupportedChunkEncoding(c.r#type));
        }
        Ok(RemoteSeries {
            labels: sorted_labels(series.labels),
            data: SeriesData::Chunks(series.chunks),
        })
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The samples with `start_ms <= t <= end_ms`, decoded lazily.
    pub fn samples(&self, start_ms: i64, end_ms: i64) -> SampleIter<'_> {
        let inner = match &self.data {
            // Straight to the first sample in range.
            SeriesData::Samples(s) => {
                Inner::Samples(s[s.partition_point(|(t, _)| *t < start_ms)..].iter())
            }
            SeriesData::Chunks(c) => Inner::Chunks {
                chunks: c.iter(),
                current: None,
            },
            SeriesData::Listed => Inner::Samples([].iter()),
        };
        SampleIter {
            inner,
            start_ms,
            end_ms,
            done: false,
        }
    }

    /// The first and last timestamp the data covers, from chunk headers or raw samples;
    /// `None` when there is no data.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        match &self.data {
            SeriesData::Samples(s) => Some((s.first()?.0, s.last()?.0)),
            SeriesData::Chunks(c) => Some((c.first()?.min_time_ms, c.last()?.max_time_ms)),
            SeriesData::Listed => None,
        }
    }

    /// Appends the samples [`samples`](Self::samples) yields to `ts` and `vs`, whole chunks
    /// at a time, several times faster than iterating. On error both keep their old lengths.
    pub fn decode_into(
        &self,
        start_ms: i64,
        end_ms: i64,
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Result<(), ChunkError> {
        let (old_t, old_v) = (ts.len(), vs.len());
        match &self.data {
            SeriesData::Samples(s) => {
                let from = s.partition_point(|(t, _)| *t < start_ms);
                for &(t, v) in &s[from..] {
                    if t > end_ms {
                        break;
                    }
                    ts.push(t);
                    vs.push(v);
                }
            }
            SeriesData::Chunks(chunks) => {
                for chunk in chunks {
                    if chunk.max_time_ms < start_ms {
                        continue;
                    }
                    if chunk.min_time_ms > end_ms {
                        break;
                    }
                    let decoded =
                        xor_samples(&chunk.data).and_then(|mut it| it.decode_into(ts, vs));
                    if let Err(e) = decoded {
                        ts.truncate(old_t);
                        vs.truncate(old_v);
                        return Err(e);
                    }
                }
                // Chunk headers bound only roughly: keep what the iterator keeps, the
                // samples from `start_ms` on up to the first one past `end_ms`.
                let (ts_new, vs_new) = (&mut ts[old_t..], &mut vs[old_v..]);
                let mut kept = 0;
                for i in 0..ts_new.len().min(vs_new.len()) {
                    let t = ts_new[i];
                    if t > end_ms {
                        break;
                    }
                    if t >= start_ms {
                        ts_new[kept] = t;
                        vs_new[kept] = vs_new[i];
                        kept += 1;
                    }
                }
                ts.truncate(old_t + kept);
                vs.truncate(old_v + kept);
            }
            SeriesData::Listed => {}
        }
        Ok(())
    }

    /// How many samples [`samples`](Self::samples) yields, from chunk headers where a chunk
    /// lies inside the range and by decoding the ones it cuts.
    pub fn count(&self, start_ms: i64, end_ms: i64) -> Result<usize, ChunkError> {
        match &self.data {
            SeriesData::Samples(s) => {
                let from = s.partition_point(|(t, _)| *t < start_ms);
                let to = s.partition_point(|(t, _)| *t <= end_ms);
                Ok(to.saturating_sub(from))
            }
            SeriesData::Chunks(chunks) => {
                let mut n = 0;
                for chunk in chunks {
                    if chunk.max_time_ms < start_ms {
                        continue;
                    }
                    if chunk.min_time_ms > end_ms {
                        break;
                    }
                    let mut it = xor_samples(&chunk.data)?;
                    if chunk.min_time_ms >= start_ms && chunk.max_time_ms <= end_ms {
                        n += usize::from(it.num_samples());
                    } else {
                        let (mut ts, mut vs) = (Vec::new(), Vec::new());
                        it.decode_into(&mut ts, &mut vs)?;
                        n += ts
                            .iter()
                            .filter(|t| (start_ms..=end_ms).contains(*t))
                            .count();
                    }
                }
                Ok(n)
            }
            SeriesData::Listed => Ok(0),
        }
    }

    /// At least as many samples as [`samples`](Self::samples) yields, from chunk headers
    /// alone: every sample of every chunk the range touches.
    pub fn samples_bound(&self, start_ms: i64, end_ms: i64) -> usize {
        match &self.data {
            SeriesData::Chunks(chunks) => chunks
                .iter()
                .filter(|c| c.max_time_ms >= start_ms && c.min_time_ms <= end_ms)
                .map(|c| match c.data.get(..2) {
                    Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
                    _ => 0,
                })
                .sum(),
            _ => self.count(start_ms, end_ms).unwrap_or(0),
        }
    }

    /// Every sample, decoded into a vector.
    pub fn all_samples(&self) -> Result<Vec<(i64, f64)>, ChunkError> {
        self.samples(i64::MIN, i64::MAX).collect()
    }
}

/// Samples of a [`RemoteSeries`] inside a time range.
pub struct SampleIter<'a> {
    inner: Inner<'a>,
    start_ms: i64,
    end_ms: i64,
    done: bool,
}

enum Inner<'a> {
    Samples(slice::Iter<'a, (i64, f64)>),
    Chunks {
        chunks: slice::Iter<'a, Chunk>,
        current: Option<XorIter<'a>>,
    },
}

impl Inner<'_> {
    fn next_sample(
        &mut self,
        start_ms: i64,
        end_ms: i64,
    ) -> Option<Result<(i64, f64), ChunkError>> {
        match self {
            Inner::Samples(it) => it.next().map(|s| Ok(*s)),
            Inner::Chunks { chunks, current } => loop {
                if let Some(it) = current {
                    match it.next() {
                        Some(s) => return Some(s),
                        None => *current = None,
                    }
                }
                let chunk = chunks.next()?;
                if chunk.max_time_ms < start_ms {
                    continue;
                }
                if chunk.min_time_ms > end_ms {
                    return None;
                }
                match xor_samples(&chunk.data) {
                    Ok(it) => *current = Some(it),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.inner.next_sample(self.start_ms, self.end_ms) {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok((t, _))) if t < self.start_ms => continue,
                Some(Ok((t, _))) if t > self.end_ms => self.done = true,
                Some(Ok(s)) => return Some(Ok(s)),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::remote::proto::Sample;
    use crate::storage::remote::xor::encode_xor;

    fn chunk(samples: &[(i64, f64)], kind: ChunkEncoding) -> Chunk {
        Chunk {
            min_time_ms: samples.first().map_or(0, |s| s.0),
            max_time_ms: samples.last().map_or(0, |s| s.0),
            r#type: kind as i32,
            data: encode_xor(samples).expect("fits").into(),
        }
    }

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn chunks_and_samples_trim_to_the_same_inclusive_range() {
        let all: Vec<(i64, f64)> = (0..300).map(|i| (i * 15, i as f64)).collect();
        let chunked = RemoteSeries::from_chunked(ChunkedSeries {
            labels: vec![label("b", "2"), label("a", "1")],
            chunks: all
                .chunks(120)
                .map(|c| chunk(c, ChunkEncoding::Xor))
                .collect(),
        })
        .expect("xor");
        let raw = RemoteSeries::from_time_series(TimeSeries {
            labels: vec![label("a", "1"), label("b", "2")],
            samples: all
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        });
        assert_eq!(chunked.labels, raw.labels);
        assert_eq!(chunked.label("b"), Some("2"));
        for (start, end) in [
            (0, 10_000),
            (15, 15),
            (1790, 1815),
            (-5, 3),
            (4485, 9999),
            (7, 8),
        ] {
            let want: Vec<(i64, f64)> = all
                .iter()
                .copied()
                .filter(|s| s.0 >= start && s.0 <= end)
                .collect();
            let a: Result<Vec<_>, _> = chunked.samples(start, end).collect();
            let b: Result<Vec<_>, _> = raw.samples(start, end).collect();
            assert_eq!(a, Ok(want.clone()), "{start}..={end}");
            assert_eq!(b, Ok(want), "{start}..={end}");
        }
    }

    #[test]
    fn histogram_chunks_are_refused() {
        let err = RemoteSeries::from_chunked(ChunkedSeries {
            labels: vec![],
            chunks: vec![chunk(&[(1, 1.0)], ChunkEncoding::Histogram)],
        });
        assert!(matches!(
            err,
            Err(RemoteReadError::UnsupportedChunkEncoding(2))
        ));
    }

    #[test]
    fn a_corrupt_chunk_ends_the_iteration_with_its_error() {
        let mut c = chunk(&[(1, 1.0), (2, 2.0), (3, 3.0)], ChunkEncoding::Xor);
        c.data = c.data.slice(..c.data.len() - 1);
        let s = RemoteSeries::from_chunked(ChunkedSeries {
            labels: vec![],
            chunks: vec![c],
        })
        .expect("xor");
        let got: Vec<_> = s.samples(0, 10).collect();
        assert!(matches!(
            got.last(),
            Some(Err(ChunkError::Truncated { .. }))
        ));
    }
}
