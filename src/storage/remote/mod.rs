//! Prometheus remote read: the protobuf messages (written by hand, no protoc), the streamed
//! frame format, the XOR chunk codec, the HTTP client that speaks both response types and
//! the encoders for serving both.
//!
//! ```text
//! ReadRequest ─prost─▶ snappy (block) ─POST /api/v1/read─▶ server
//!   ◀── STREAMED_XOR_CHUNKS: [uvarint len][crc32c BE][ChunkedReadResponse]…  (frame.rs, xor.rs)
//!   ◀── SAMPLES: snappy (block) ReadResponse
//! ```

pub mod client;
pub mod error;
pub mod frame;
pub mod proto;
pub mod series;
pub mod server;
pub mod xor;

pub use client::{RemoteReadClient, RemoteReadConfig, SeriesStream, decode_samples_response};
pub use error::RemoteReadError;
pub use frame::{FrameDecoder, FrameLimits, decode_frames, encode_frame};
pub use proto::{
    Chunk, ChunkEncoding, ChunkedReadResponse, ChunkedSeries, Label, LabelMatcher, MatcherType,
    Query, QueryResult, ReadHints, ReadRequest, ReadResponse, ResponseType, Sample, TimeSeries,
};
pub use series::{RemoteSeries, SampleIter, SeriesData};
pub use server::{
    ChunkedResponseWriter, DEFAULT_MAX_BYTES_IN_FRAME, LabelRef, SAMPLES_CONTENT_ENCODING,
    SAMPLES_CONTENT_TYPE, SAMPLES_PER_CHUNK, STREAMED_CONTENT_TYPE, SamplesResponseBuilder,
    decode_read_request, negotiate,
};
pub use xor::{ChunkError, ChunkFull, XorEncoder, XorIter, encode_xor, xor_samples};
