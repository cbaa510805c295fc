//! Prometheus TSDB blocks read straight from an object store with ranged reads: the block's
//! `meta.json`, its index (format v2), chunk segment files and tombstones. A [`Block`] keeps
//! only the index header (table of contents, symbols, postings offset table) in memory and
//! fetches postings lists, series entries and chunks on demand, coalescing neighbouring
//! ranges and keeping hot pieces in a shared [`BlockCache`].

pub mod block;
pub mod cache;
pub mod chunks;
mod decode;
pub mod index;
pub mod meta;
pub mod postings;
mod ranges;
pub mod tombstones;

#[cfg(test)]
mod tests;

pub use block::Block;
pub use cache::{BlockCache, CacheKind, CacheStats, KindStats};
pub use chunks::ChunkMeta;
pub use index::{IndexHeader, SeriesEntry, Toc};
pub use meta::{BlockMeta, BlockStats};
pub use tombstones::Tombstones;

use super::object::ObjectError;

/// Why a block could not be opened or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BlockError {
    /// The object store failed (missing object, I/O, timeout).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Bytes that contradict the format: what was wrong, in which object and at which byte.
    #[error("{key}: corrupt at byte {offset}: {what}")]
    Corrupt {
        key: String,
        offset: u64,
        what: String,
    },
    /// A format version this reader does not understand (index v1, chunks or tombstones
    /// other than v1).
    #[error("{key}: unsupported {what} version {version}")]
    UnsupportedVersion {
        key: String,
        what: &'static str,
        version: u32,
    },
    /// A chunk that is not XOR (native histograms and newer encodings). `Block::select`
    /// fails with it rather than silently dropping samples; `Block::select_floats` leaves
    /// such chunks out and returns this as a warning per series.
    #[error("series {series}: chunk encoding {encoding} is not supported (only XOR floats)")]
    UnsupportedEncoding { series: String, encoding: u8 },
    /// `meta.json` is not valid JSON or lacks required fields.
    #[error("meta.json: {0}")]
    Meta(String),
}

impl BlockError {
    pub(crate) fn corrupt(key: &str, offset: u64, what: impl Into<String>) -> Self {
        BlockError::Corrupt {
            key: key.to_string(),
            offset,
            what: what.into(),
        }
    }
}
