//! The remote read messages of Prometheus's `prompb` package (remote.proto and types.proto),
//! written out by hand with prost's derive so the build needs no protoc. Only what remote
//! read uses is here; fields left out (exemplars, native histograms) are skipped as unknown
//! fields when decoding, so a server that sends them does not break the decoder.
//!
//! Field numbers and wire types follow the `.proto` files exactly.

use bytes::Bytes;

/// The body of a remote read request (before snappy compression).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Response types the client accepts, best first; the server uses the first it knows.
    #[prost(enumeration = "ResponseType", repeated, packed = "true", tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One snappy-compressed [`ReadResponse`] holding raw samples.
    Samples = 0,
    /// A stream of CRC-checked [`ChunkedReadResponse`] frames holding XOR chunks.
    StreamedXorChunks = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

impl LabelMatcher {
    pub fn new(kind: MatcherType, name: impl Into<String>, value: impl Into<String>) -> Self {
        LabelMatcher {
            r#type: kind as i32,
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    Eq = 0,
    Neq = 1,
    Re = 2,
    Nre = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// The answer of the SAMPLES response type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// In the order of the request's queries.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// A series with raw samples. Exemplars (3) and native histograms (4) are not modelled.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One frame of the STREAMED_XOR_CHUNKS response type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Index of the request's query these series answer.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    #[prost(enumeration = "ChunkEncoding", tag = "3")]
    pub r#type: i32,
    /// Shares the frame's buffer when decoded from `Bytes`: no copy per chunk.
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// `Chunk.Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChunkEncoding {
    Unknown = 0,
    Xor = 1,
    Histogram = 2,
    FloatHistogram = 3,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn read_request_encodes_with_prometheus_field_numbers() {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 1,
                end_timestamp_ms: 2,
                matchers: vec![LabelMatcher::new(MatcherType::Re, "a", "b")],
                hints: None,
            }],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let bytes = req.encode_to_vec();
        // queries: field 1, length-delimited; start=1 (08 01), end=2 (10 02), matcher (1a ..)
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(&bytes[2..6], &[0x08, 0x01, 0x10, 0x02]);
        assert_eq!(bytes[6], 0x1a);
        // accepted_response_types: field 2 packed = [1, 0]
        assert_eq!(&bytes[bytes.len() - 4..], &[0x12, 0x02, 0x01, 0x00]);
        assert_eq!(ReadRequest::decode(bytes.as_slice()).ok(), Some(req));
    }

    #[test]
    fn time_series_with_histograms_and_exemplars_still_decodes() {
        // labels {a="b"}, one sample, plus field 3 (exemplar) and field 4 (histogram) bytes.
        let mut bytes = TimeSeries {
            labels: vec![Label {
                name: "a".into(),
                value: "b".into(),
            }],
            samples: vec![Sample {
                value: 1.5,
                timestamp: 7,
            }],
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x1a, 0x02, 0x10, 0x05]); // exemplar { value-ish field 2 }
        bytes.extend_from_slice(&[0x22, 0x02, 0x08, 0x01]); // histogram { count_int: 1 }
        let ts = TimeSeries::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(ts.samples.len(), 1);
        assert_eq!(ts.labels[0].value, "b");
    }
}
