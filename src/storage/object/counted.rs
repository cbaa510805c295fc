//! An object store that counts what is read through it: requests and bytes, for metrics
//! and for measuring what a query costs.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{ObjectError, ObjectInfo, ObjectStore};

/// Reads so far: requests of every kind, and bytes of object data received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub requests: u64,
    pub bytes: u64,
}

/// Wraps a store and counts its reads.
pub struct CountedObjects {
    inner: Arc<dyn ObjectStore>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl CountedObjects {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        CountedObjects {
            inner,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn received(&self, result: Result<Bytes, ObjectError>) -> Result<Bytes, ObjectError> {
        if let Ok(data) = &result {
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        result
    }
}

impl ObjectStore for CountedObjects {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.request();
        let read = self.inner.get(key);
        Box::pin(async move { self.received(read.await) })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        self.request();
        let read = self.inner.get_range(key, range);
        Box::pin(async move { self.received(read.await) })
    }

    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        self.request();
        self.inner.size(key)
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        self.request();
        self.inner.list(prefix)
    }

    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.request();
        self.inner.put(key, data)
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        self.request();
        self.inner.delete(key)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::object::FsObjects;

    #[tokio::test]
    async fn reads_are_counted_in_requests_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = CountedObjects::new(Arc::new(FsObjects::new(dir.path())));
        store
            .put("a/b", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        assert_eq!(store.get("a/b").await.unwrap().len(), 10);
        assert_eq!(store.get_range("a/b", 2..6).await.unwrap().len(), 4);
        assert!(store.get("a/missing").await.is_err());
        assert_eq!(store.list("a/").await.unwrap().len(), 1);
        assert_eq!(
            store.counts(),
            ReadCounts {
                requests: 5,
                bytes: 14
            }
        );
    }
}
