//! Object access for long-term stores: one trait over an S3 bucket and a local directory.
//! Keys are `/`-separated paths relative to the store's root (a bucket prefix or a
//! directory), such as `01JC2.../index`; ranged reads fetch only what a reader needs.

mod counted;
mod fs;
mod memory;
mod s3;

pub use counted::{CountedObjects, ReadCounts};
pub use fs::FsObjects;
pub use memory::MemoryObjects;
pub use s3::{S3Location, S3Objects};

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

/// A store that could not be set up (credentials missing from the environment, say):
/// every call fails with the reason, so the backend reports it as it would an outage.
pub struct UnusableObjects {
    what: String,
    reason: String,
}

impl UnusableObjects {
    pub fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        UnusableObjects {
            what: what.into(),
            reason: reason.into(),
        }
    }

    fn fail<T: Send + 'static>(&self, key: &str) -> BoxFuture<'static, Result<T, ObjectError>> {
        let error = ObjectError::Io {
            key: key.to_string(),
            message: self.reason.clone(),
        };
        Box::pin(async move { Err(error) })
    }
}

impl ObjectStore for UnusableObjects {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.fail(key)
    }

    fn get_range(&self, key: &str, _: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.fail(key)
    }

    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        self.fail(key)
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        self.fail(prefix)
    }

    fn put(&self, key: &str, _: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.fail(key)
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.fail(key)
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use futures::{StreamExt, TryStreamExt};

    use super::*;
    use crate::realenv::S3Server;

    /// What every store must do alike; `store` starts empty.
    pub(crate) async fn exercise(store: &dyn ObjectStore) {
        store
            .put("b1/chunks/000001", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        store
            .put("b1/meta.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        store
            .put("b2/index", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(store.get("b1/meta.json").await.unwrap(), "{}");
        let chunks = "b1/chunks/000001";
        assert_eq!(store.get(chunks).await.unwrap(), "0123456789");
        assert_eq!(store.get_range(chunks, 2..5).await.unwrap(), "234");
        assert_eq!(store.get_range(chunks, 0..10).await.unwrap(), "0123456789");
        assert_eq!(store.get_range(chunks, 9..10).await.unwrap(), "9");
        assert_eq!(store.get_range(chunks, 3..3).await.unwrap(), "");
        let out = |start, end| ObjectError::OutOfRange {
            key: chunks.into(),
            start,
            end,
            size: 10,
        };
        assert_eq!(store.get_range(chunks, 8..11).await, Err(out(8, 11)));
        assert_eq!(store.get_range(chunks, 10..12).await, Err(out(10, 12)));
        assert_eq!(store.get_range(chunks, 20..30).await, Err(out(20, 30)));
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..4;
        assert_eq!(store.get_range(chunks, backwards).await, Err(out(5, 4)));
        assert_eq!(store.size(chunks).await.unwrap(), Some(10));
        assert_eq!(store.size("b1/nothing").await.unwrap(), None);
        assert_eq!(
            store.get("b9/index").await,
            Err(ObjectError::NotFound("b9/index".into()))
        );
        assert!(
            store
                .get_range("b9/index", 0..1)
                .await
                .unwrap_err()
                .is_not_found()
        );
        let keys = |list: Vec<ObjectInfo>| list.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            store.list("b1/").await.unwrap(),
            vec![
                ObjectInfo {
                    key: "b1/chunks/000001".into(),
                    size: 10
                },
                ObjectInfo {
                    key: "b1/meta.json".into(),
                    size: 2
                }
            ]
        );
        assert_eq!(
            keys(store.list("").await.unwrap()),
            vec!["b1/chunks/000001", "b1/meta.json", "b2/index"]
        );
        assert_eq!(keys(store.list("b").await.unwrap()).len(), 3);
        assert_eq!(keys(store.list("b1/c").await.unwrap()), vec![chunks]);
        assert_eq!(store.list("b3/").await.unwrap(), vec![]);
        store
            .put("b1/meta.json", Bytes::from_static(b"{\"v\":2}"))
            .await
            .unwrap();
        assert_eq!(store.get("b1/meta.json").await.unwrap(), "{\"v\":2}");
        store.delete("b1/meta.json").await.unwrap();
        store.delete("b1/meta.json").await.unwrap();
        assert_eq!(store.list("b1/m").await.unwrap(), vec![]);
        assert!(store.get("b1/meta.json").await.unwrap_err().is_not_found());
    }

    /// A moto server, or `None` (with a message) where moto is not installed.
    pub(crate) fn moto() -> Option<S3Server> {
        match S3Server::start() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("skipped, no S3 server: {e}");
                None
            }
        }
    }

    fn s3(server: &S3Server, bucket: &str, prefix: &str) -> S3Objects {
        S3Objects::new(&server.location(bucket, prefix), Duration::from_secs(10)).unwrap()
    }

    #[tokio::test]
    async fn s3_objects_behave_as_files_do() {
        let Some(server) = moto() else { return };
        server.create_bucket("blocks").unwrap();
        exercise(&s3(&server, "blocks", "")).await;
        exercise(&s3(&server, "blocks", "tenant/a/")).await;
    }

    #[tokio::test]
    async fn s3_listings_go_past_one_page() {
        let Some(server) = moto() else { return };
        server.create_bucket("many").unwrap();
        let store = s3(&server, "many", "p/");
        let keys: Vec<String> = (0..1205).map(|i| format!("d{}/o{i:05}", i % 3)).collect();
        futures::stream::iter(keys.iter())
            .map(|k| store.put(k, Bytes::from(k.clone())))
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .unwrap();
        let listed = store.list("").await.unwrap();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(
            listed.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
            expected
        );
        assert!(listed.iter().all(|o| o.size == 9));
        assert_eq!(store.list("d1/").await.unwrap().len(), 402);
    }

    #[tokio::test]
    async fn s3_prefixes_keep_stores_apart() {
        let Some(server) = moto() else { return };
        server.create_bucket("shared").unwrap();
        let a = s3(&server, "shared", "a/");
        let b = s3(&server, "shared", "b/");
        let ab = s3(&server, "shared", "a/b/");
        a.put("k", Bytes::from_static(b"from a")).await.unwrap();
        b.put("k", Bytes::from_static(b"from b")).await.unwrap();
        b.put("only-b", Bytes::from_static(b"1")).await.unwrap();
        ab.put("k", Bytes::from_static(b"from ab")).await.unwrap();
        assert_eq!(a.get("k").await.unwrap(), "from a");
        assert_eq!(b.get("k").await.unwrap(), "from b");
        assert!(a.get("only-b").await.unwrap_err().is_not_found());
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(keys(a.list("").await.unwrap()), vec!["b/k", "k"]);
        assert_eq!(keys(b.list("").await.unwrap()), vec!["k", "only-b"]);
        assert_eq!(keys(ab.list("").await.unwrap()), vec!["k"]);
        a.delete("only-b").await.unwrap();
        assert_eq!(b.size("only-b").await.unwrap(), Some(1));
        let root = s3(&server, "shared", "");
        assert_eq!(
            keys(root.list("").await.unwrap()),
            vec!["a/b/k", "a/k", "b/k", "b/only-b"]
        );
        assert_eq!(
            root.describe(),
            format!("s3://shared/ at {}", server.endpoint())
        );
    }

    #[tokio::test]
    async fn s3_failures_become_object_errors() {
        let Some(mut server) = moto() else { return };
        server.create_bucket("flaky").unwrap();
        let store =
            S3Objects::new(&server.location("flaky", ""), Duration::from_millis(500)).unwrap();
        store.put("k", Bytes::from_static(b"v")).await.unwrap();
        let missing_bucket = s3(&server, "no-such-bucket", "");
        match missing_bucket.get("k").await {
            Err(ObjectError::Status {
                status: 404,
                message,
                ..
            }) => {
                assert!(message.contains("NoSuchBucket"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            missing_bucket.list("").await,
            Err(ObjectError::Status { status: 404, .. })
        ));

        server.suspend();
        let started = Instant::now();
        // An empty range needs no request.
        assert_eq!(store.get_range("k", 1..1).await.unwrap(), "");
        assert_eq!(store.get("k").await, Err(ObjectError::Timeout));
        assert_eq!(store.list("").await, Err(ObjectError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
        server.resume();
        assert_eq!(store.get("k").await.unwrap(), "v");

        server.kill();
        let e = store.get("k").await;
        assert!(matches!(e, Err(ObjectError::Io { .. })), "{e:?}");
        assert!(matches!(store.size("k").await, Err(ObjectError::Io { .. })));
    }
}
