//! Serving remote read: decoding the request and encoding either answer, as pure functions
//! over bytes so the HTTP layer only moves them.
//!
//! ```text
//! body ─snappy─prost─▶ ReadRequest ─negotiate─┬▶ SAMPLES:  SamplesResponseBuilder
//!                                             │     ─▶ snappy(ReadResponse)
//!                                             └▶ STREAMED: ChunkedResponseWriter
//!                                                   ─▶ frames, taken as they are produced
//! ```
//!
//! The choices follow what Prometheus's own server does, since its client is the main one:
//! - the first accepted response type the server knows wins; an empty list means SAMPLES;
//! - labels go out sorted by name;
//! - a streamed message carries exactly one series, because Prometheus's chunked client reads
//!   only the first series of each message; a series too large for one frame continues in
//!   the next messages under the same labels;
//! - a streamed series without samples sends nothing, while SAMPLES keeps it as an empty
//!   series (both encoders pass on what they are given; filtering is the caller's business).

use bytes::Bytes;
use prost::Message;
use prost::encoding::encoded_len_varint;

use super::error::RemoteReadError;
use super::frame::encode_frame;
use super::proto::{
    Chunk, ChunkEncoding, ChunkedReadResponse, ChunkedSeries, Label, QueryResult, ReadRequest,
    ReadResponse, ResponseType, Sample, TimeSeries,
};
use super::xor::XorEncoder;

/// `Content-Type` of a SAMPLES answer.
pub const SAMPLES_CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a SAMPLES answer: the body is one snappy block.
pub const SAMPLES_CONTENT_ENCODING: &str = "snappy";
/// `Content-Type` of a STREAMED_XOR_CHUNKS answer; it has no `Content-Encoding`.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
/// The frame budget Prometheus uses for streamed answers.
pub const DEFAULT_MAX_BYTES_IN_FRAME: usize = 1 << 20;
/// Samples per XOR chunk, the size Prometheus's TSDB cuts chunks at: small enough that a
/// reader trimming to a range decodes little it does not need.
pub const SAMPLES_PER_CHUNK: u16 = 120;

// === request ===

/// Decodes a request body: one snappy block around a `ReadRequest`. `max_bytes` bounds the
/// decompressed size, checked from the snappy header before anything is allocated.
pub fn decode_read_request(body: &[u8], max_bytes: usize) -> Result<ReadRequest, RemoteReadError> {
    if snap::raw::decompress_len(body)? > max_bytes {
        return Err(RemoteReadError::RequestTooLarge { limit: max_bytes });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(ReadRequest::decode(raw.as_slice())?)
}

/// The response type to answer with: the first of the client's accepted types (best first)
/// this server supports, skipping values it does not know; SAMPLES when the list is empty,
/// as clients from before streaming send none. Fails when every listed type is unknown, so
/// the client gets an error instead of a body it did not ask for.
pub fn negotiate(accepted: &[i32]) -> Result<ResponseType, RemoteReadError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|&t| ResponseType::try_from(t).ok())
        .ok_or_else(|| RemoteReadError::NoSupportedResponseType {
            accepted: accepted.to_vec(),
        })
}

// === labels ===

/// A label as the encoders take it: a [`Label`] or a `(name, value)` pair of strings.
pub trait LabelRef {
    fn name(&self) -> &str;
    fn value(&self) -> &str;
}

impl LabelRef for Label {
    fn name(&self) -> &str {
        &self.name
    }
    fn value(&self) -> &str {
        &self.value
    }
}

impl<K: AsRef<str>, V: AsRef<str>> LabelRef for (K, V) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

impl<T: LabelRef + ?Sized> LabelRef for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn value(&self) -> &str {
        (**self).value()
    }
}

/// The labels as protobuf labels sorted by name. The sort is stable so that duplicate names,
/// which a well-formed series never has, at least come out in a predictable order.
fn sorted_labels<L: LabelRef>(labels: &[L]) -> Vec<Label> {
    let mut out: Vec<Label> = labels
        .iter()
        .map(|l| Label {
            name: l.name().to_owned(),
            value: l.value().to_owned(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Encoded size of a length-delimited field holding `len` bytes (field numbers below 16 take
/// one key byte, which is all these messages use).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn index_error(index: usize, queries: usize) -> RemoteReadError {
    RemoteReadError::QueryIndexOutOfRange {
        index: i64::try_from(index).unwrap_or(i64::MAX),
        queries,
    }
}

/// The wire form of a query index, or the error for one the request does not have.
fn checked_query_index(index: usize, queries: usize) -> Result<i64, RemoteReadError> {
    match i64::try_from(index) {
        Ok(i) if index < queries => Ok(i),
        _ => Err(index_error(index, queries)),
    }
}

// === SAMPLES ===

/// Collects the series of each query and encodes them as one snappy-compressed
/// `ReadResponse`. The encoded size is tracked exactly as series are added, so a response
/// over `max_bytes` (uncompressed, which is what a client has to hold) is refused while its
/// samples are still being read rather than after they have all been gathered.
#[derive(Debug)]
pub struct SamplesResponseBuilder {
    response: ReadResponse,
    /// Encoded size of each `QueryResult`'s contents.
    result_lens: Vec<usize>,
    /// Encoded size of the whole `ReadResponse`.
    total: usize,
    max_bytes: usize,
}

impl SamplesResponseBuilder {
    /// A response to a request of `queries` queries; each gets a result, empty until series
    /// are added to it.
    pub fn new(queries: usize, max_bytes: usize) -> Self {
        SamplesResponseBuilder {
            response: ReadResponse {
                results: vec![QueryResult::default(); queries],
            },
            result_lens: vec![0; queries],
            total: queries * field_len(0),
            max_bytes,
        }
    }

    /// Adds one series to the result of query `query_index`, reading its samples (in time
    /// order) until they end or the response would pass `max_bytes`. On error nothing of the
    /// series is kept and the builder can still be finished.
    pub fn add_series<L, I>(
        &mut self,
        query_index: usize,
        labels: &[L],
        samples: I,
    ) -> Result<(), RemoteReadError>
    where
        L: LabelRef,
        I: IntoIterator<Item = (i64, f64)>,
    {
        let queries = self.result_lens.len();
        let (Some(&result_len), Some(result)) = (
            self.result_lens.get(query_index),
            self.response.results.get_mut(query_index),
        ) else {
            return Err(index_error(query_index, queries));
        };
        // The response's size without this result, and with it once it holds the series.
        let others = self.total - field_len(result_len);
        let max_bytes = self.max_bytes;
        let total_with = |series_len: usize| others + field_len(result_len + field_len(series_len));
        let too_large = RemoteReadError::ResponseTooLarge { limit: max_bytes };

        let labels = sorted_labels(labels);
        let mut series_len: usize = labels.iter().map(|l| field_len(l.encoded_len())).sum();
        if total_with(series_len) > max_bytes {
            return Err(too_large);
        }
        let mut out = Vec::new();
        for (timestamp, value) in samples {
            let sample = Sample { value, timestamp };
            series_len += field_len(sample.encoded_len());
            if total_with(series_len) > max_bytes {
                return Err(too_large);
            }
            out.push(sample);
        }
        let new_result_len = result_len + field_len(series_len);
        self.total = others + field_len(new_result_len);
        self.result_lens[query_index] = new_result_len;
        result.timeseries.push(TimeSeries {
            labels,
            samples: out,
        });
        Ok(())
    }

    /// Encoded size of the `ReadResponse` so far, before compression.
    pub fn encoded_len(&self) -> usize {
        self.total
    }

    /// The response body: the `ReadResponse` compressed as one snappy block.
    pub fn finish(self) -> Result<Bytes, RemoteReadError> {
        let raw = self.response.encode_to_vec();
        debug_assert_eq!(raw.len(), self.total, "size tracking drifted");
        Ok(Bytes::from(snap::raw::Encoder::new().compress_vec(&raw)?))
    }
}

// === STREAMED_XOR_CHUNKS ===

/// Cuts a series' samples into XOR chunks of at most [`SAMPLES_PER_CHUNK`] samples.
struct ChunkCutter {
    enc: XorEncoder,
    min_t: i64,
    max_t: i64,
}

impl ChunkCutter {
    fn new() -> Self {
        ChunkCutter {
            enc: XorEncoder::new(),
            min_t: i64::MAX,
            max_t: i64::MIN,
        }
    }

    /// Adds a sample; returns the previous chunk when this sample starts a new one.
    fn push(&mut self, t: i64, v: f64) -> Option<Chunk> {
        let mut done = None;
        loop {
            if self.enc.len() < SAMPLES_PER_CHUNK && self.enc.append(t, v).is_ok() {
                self.min_t = self.min_t.min(t);
                self.max_t = self.max_t.max(t);
                return done;
            }
            // A fresh encoder takes any sample; this guard only keeps the loop finite.
            if self.enc.is_empty() {
                return done;
            }
            done = self.take();
        }
    }

    /// The chunk being filled, if it has samples, leaving a fresh one.
    fn take(&mut self) -> Option<Chunk> {
        if self.enc.is_empty() {
            return None;
        }
        let full = std::mem::replace(self, ChunkCutter::new());
        Some(Chunk {
            // Min and max rather than first and last, so the bounds hold for any order.
            min_time_ms: full.min_t,
            max_time_ms: full.max_t,
            r#type: ChunkEncoding::Xor as i32,
            data: Bytes::from(full.enc.into_bytes()),
        })
    }
}

/// Encodes series as STREAMED_XOR_CHUNKS frames into a buffer the HTTP layer drains with
/// [`take_ready`](Self::take_ready) as it goes, so only about one frame's chunks plus the
/// undrained output are held at a time.
///
/// Each frame holds one `ChunkedReadResponse` with one series. Its chunks are packed until
/// the next would take the message over `max_bytes_in_frame`; then the message is sent and
/// the series continues in the next one, under the same labels. A message passes the budget
/// only when its labels and a single chunk alone do.
#[derive(Debug)]
pub struct ChunkedResponseWriter {
    out: Vec<u8>,
    queries: usize,
    max_bytes_in_frame: usize,
    frames: usize,
}

impl ChunkedResponseWriter {
    /// An answer to a request of `queries` queries. `max_bytes_in_frame` bounds each frame's
    /// message (the length a frame announces); [`DEFAULT_MAX_BYTES_IN_FRAME`] is what
    /// Prometheus uses.
    pub fn new(queries: usize, max_bytes_in_frame: usize) -> Self {
        ChunkedResponseWriter {
            out: Vec::new(),
            queries,
            max_bytes_in_frame,
            frames: 0,
        }
    }

    /// Writes one series of query `query_index`: its samples, in time order, become XOR
    /// chunks spread over as many frames as the budget needs. A series without samples
    /// writes nothing.
    pub fn write_series<L, I>(
        &mut self,
        query_index: usize,
        labels: &[L],
        samples: I,
    ) -> Result<(), RemoteReadError>
    where
        L: LabelRef,
        I: IntoIterator<Item = (i64, f64)>,
    {
        let index = checked_query_index(query_index, self.queries)?;
        let labels = sorted_labels(labels);
        let labels_len: usize = labels.iter().map(|l| field_len(l.encoded_len())).sum();
        // query_index is a varint field, left out when zero.
        let index_len = if index == 0 {
            0
        } else {
            1 + encoded_len_varint(index as u64)
        };
        let message_len = |chunks_len: usize| index_len + field_len(labels_len + chunks_len);

        let mut message = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels,
                chunks: Vec::new(),
            }],
            query_index: index,
        };
        let mut chunks_len = 0;
        let mut cutter = ChunkCutter::new();
        let mut samples = samples.into_iter();
        loop {
            let chunk = match samples.next() {
                Some((t, v)) => match cutter.push(t, v) {
                    Some(chunk) => chunk,
                    None => continue,
                },
                None => match cutter.take() {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            let chunk_len = field_len(chunk.encoded_len());
            if chunks_len > 0 && message_len(chunks_len + chunk_len) > self.max_bytes_in_frame {
                self.emit(&mut message);
                chunks_len = 0;
            }
            if let Some(series) = message.chunked_series.first_mut() {
                series.chunks.push(chunk);
            }
            chunks_len += chunk_len;
        }
        if chunks_len > 0 {
            self.emit(&mut message);
        }
        Ok(())
    }

    /// Frames the message, then empties its chunks for the rest of the series.
    fn emit(&mut self, message: &mut ChunkedReadResponse) {
        encode_frame(&message.encode_to_vec(), &mut self.out);
        self.frames += 1;
        if let Some(series) = message.chunked_series.first_mut() {
            series.chunks.clear();
        }
    }

    /// The frames written since the last call, None when there are none: whole frames only,
    /// ready to go out as one piece of the body.
    pub fn take_ready(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(Bytes::from(std::mem::take(&mut self.out)))
        }
    }

    /// Frames written so far, taken or not.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The frames not yet taken.
    pub fn finish(self) -> Bytes {
        Bytes::from(self.out)
    }
}

#[cfg(test)]
mod tests;
