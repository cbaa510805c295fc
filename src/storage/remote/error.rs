//! What can go wrong reading from a remote read endpoint, as one typed error: the transport,
//! the HTTP status, each layer of the encoding (snappy, protobuf, frames, chunks) and the
//! size limits that keep a misbehaving server from exhausting memory. Serving remote read
//! uses the same type: the encoding layers and limits are shared, and a few variants
//! (`RequestTooLarge`, `NoSupportedResponseType`) only arise on that side.

use super::xor::ChunkError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteReadError {
    /// The server answered with a status other than 200.
    #[error("remote read answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// Connecting failed (refused, unreachable).
    #[error("remote read connection failed: {0}")]
    Connect(String),
    /// Sending or reading the body failed.
    #[error("remote read transport: {0}")]
    Transport(String),
    #[error("remote read timed out")]
    Timeout,
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("protobuf decode: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A frame's CRC-32C does not match its message bytes.
    #[error("frame CRC-32C mismatch: header says {expected:#010x}, message has {got:#010x}")]
    CrcMismatch { expected: u32, got: u32 },
    /// The body ended inside a frame.
    #[error("response ended inside a frame ({have} bytes of a frame left over)")]
    TruncatedFrame { have: usize },
    /// A frame announced a length above the limit (or an unreadable length).
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { len: u64, limit: usize },
    /// The body (or, for SAMPLES, its decompressed size) exceeds the limit; when serving, the
    /// SAMPLES response being built would exceed it.
    #[error("response exceeds the limit of {limit} bytes")]
    ResponseTooLarge { limit: usize },
    /// A request body (served side) decompresses to more than the limit.
    #[error("read request exceeds the limit of {limit} bytes")]
    RequestTooLarge { limit: usize },
    /// A request (served side) accepts only response types this server does not know.
    #[error("none of the accepted response types {accepted:?} is supported")]
    NoSupportedResponseType { accepted: Vec<i32> },
    #[error("corrupt chunk: {0}")]
    ChunkCorrupt(#[from] ChunkError),
    /// A chunk in an encoding this client cannot decode (native histograms).
    #[error("unsupported chunk encoding {0}")]
    UnsupportedChunkEncoding(i32),
    /// A streamed frame (or, when serving, a series) named a query the request did not have.
    #[error("frame for query {index} but the request had {queries} queries")]
    QueryIndexOutOfRange { index: i64, queries: usize },
}
