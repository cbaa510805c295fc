//! Objects held in memory: for fuzzing the block reader and for tests that need a store
//! without a disk or a server.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{ObjectError, ObjectInfo, ObjectStore, check_range};

/// A map from key to bytes behind the object store trait.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryObjects {
    pub fn new() -> Self {
        MemoryObjects::default()
    }

    fn lookup(&self, key: &str) -> Result<Bytes, ObjectError> {
        self.objects
            .lock()
            .map_err(|_| ObjectError::Io {
                key: key.to_string(),
                message: "store poisoned".to_string(),
            })?
            .get(key)
            .cloned()
            .ok_or_else(|| ObjectError::NotFound(key.to_string()))
    }

    fn with_map<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Bytes>) -> T,
    ) -> Result<T, ObjectError> {
        let mut map = self.objects.lock().map_err(|_| ObjectError::Io {
            key: String::new(),
            message: "store poisoned".to_string(),
        })?;
        Ok(f(&mut map))
    }
}

impl ObjectStore for MemoryObjects {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let result = self.lookup(key);
        Box::pin(async move { result })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let result = self.lookup(key).and_then(|data| {
            check_range(key, &range, data.len() as u64)?;
            Ok(data.slice(range.start as usize..range.end as usize))
        });
        Box::pin(async move { result })
    }

    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        let result = match self.lookup(key) {
            Ok(data) => Ok(Some(data.len() as u64)),
            Err(ObjectError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        Box::pin(async move { result })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        let result = self.with_map(|map| {
            map.range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| ObjectInfo {
                    key: k.clone(),
                    size: v.len() as u64,
                })
                .collect()
        });
        Box::pin(async move { result })
    }

    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        let result = self.with_map(|map| {
            map.insert(key.to_string(), data);
        });
        Box::pin(async move { result })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        let result = self.with_map(|map| {
            map.remove(key);
        });
        Box::pin(async move { result })
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_objects_behave_as_every_store_must() {
        crate::storage::object::tests::exercise(&super::MemoryObjects::new()).await;
    }
}
