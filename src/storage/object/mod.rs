//! Object access for long-term stores: one trait over an S3 bucket and a local directory.
//! Keys are `/`-separated paths relative to the store's root (a bucket prefix or a
//! directory), such as `01JC2.../index`; ranged reads fetch only what a reader needs.

mod fs;

pub use fs::FsObjects;

use std::ops::Range;

use bytes::Bytes;
use futures::future::BoxFuture;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the store's root.
    pub key: String,
    pub size: u64,
}

/// Why an object could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectError {
    #[error("object {0} not found")]
    NotFound(String),
    /// The range asked for does not lie within the object.
    #[error("object {key}: range {start}..{end} outside its {size} bytes")]
    OutOfRange {
        key: String,
        start: u64,
        end: u64,
        size: u64,
    },
    /// The store answered with an error status.
    #[error("object store answered {status} for {key}: {message}")]
    Status {
        key: String,
        status: u16,
        message: String,
    },
    /// Connection, file system or protocol failure.
    #[error("object {key}: {message}")]
    Io { key: String, message: String },
    #[error("object store did not answer in time")]
    Timeout,
}

impl ObjectError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectError::NotFound(_))
    }
}

/// A place objects are read from (and, for uploads, written to).
pub trait ObjectStore: Send + Sync + 'static {
    /// The whole object.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>>;

    /// Bytes `range.start..range.end` of the object (end exclusive); a range past the end
    /// is [`ObjectError::OutOfRange`].
    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>>;

    /// The object's size, or `None` when there is none under `key`.
    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>>;

    /// Every object whose key starts with `prefix` (all levels below it), sorted by key.
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>>;

    /// Stores `data` under `key`, replacing what was there.
    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>>;

    /// Removes `key`; removing what is not there is no error.
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>>;

    /// Where the objects are, for messages (`s3://bucket/prefix`, a directory).
    fn describe(&self) -> String;
}

/// Checks `range` against an object of `size` bytes.
pub(crate) fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<(), ObjectError> {
    if range.start > range.end || range.end > size {
        return Err(ObjectError::OutOfRange {
            key: key.to_string(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}
