//! Objects as files under a directory: `key` is the path below it. Reads are positioned
//! reads on a blocking thread; writes go to a temporary file renamed into place, so a reader
//! never sees half an object.

use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{ObjectError, ObjectInfo, ObjectStore, check_range};

/// A directory seen as an object store.
#[derive(Debug, Clone)]
pub struct FsObjects {
    root: PathBuf,
}

impl FsObjects {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsObjects { root: root.into() }
    }

    /// The file behind `key`; keys that would leave the root are refused.
    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        let relative = Path::new(key);
        let inside = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(ObjectError::Io {
                key: key.to_string(),
                message: "not a relative path below the store's root".to_string(),
            });
        }
        Ok(self.root.join(relative))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        work: impl FnOnce(PathBuf) -> io::Result<T> + Send + 'static,
    ) -> Result<T, ObjectError> {
        let path = self.path(key)?;
        let owned = key.to_string();
        match tokio::task::spawn_blocking(move || work(path)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Err(ObjectError::NotFound(owned)),
            Ok(Err(e)) => Err(ObjectError::Io {
                key: owned,
                message: e.to_string(),
            }),
            Err(e) => Err(ObjectError::Io {
                key: owned,
                message: e.to_string(),
            }),
        }
    }
}

impl ObjectStore for FsObjects {
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            self.blocking(&key, |p| std::fs::read(p).map(Bytes::from))
                .await
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            let asked = range.clone();
            let (size, data) = self
                .blocking(&key, move |p| {
                    let file = std::fs::File::open(p)?;
                    let size = file.metadata()?.len();
                    if asked.start > asked.end || asked.end > size {
                        return Ok((size, None));
                    }
                    let mut buf = vec![0; (asked.end - asked.start) as usize];
                    file.read_exact_at(&mut buf, asked.start)?;
                    Ok((size, Some(Bytes::from(buf))))
                })
                .await?;
            match data {
                Some(d) => Ok(d),
                None => check_range(&key, &range, size).map(|()| Bytes::new()),
            }
        })
    }

    fn size(&self, key: &str) -> BoxFuture<'_, Result<Option<u64>, ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            match self.blocking(&key, std::fs::metadata).await {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(ObjectError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<ObjectInfo>, ObjectError>> {
        let prefix = prefix.to_string();
        let root = self.root.clone();
        Box::pin(async move {
            let listed = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                walk(&root, &root, &prefix, &mut out)?;
                out.sort_by(|a: &ObjectInfo, b| a.key.cmp(&b.key));
                Ok::<_, io::Error>(out)
            })
            .await;
            match listed {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(ObjectError::Io {
                    key: String::new(),
                    message: e.to_string(),
                }),
                Err(e) => Err(ObjectError::Io {
                    key: String::new(),
                    message: e.to_string(),
                }),
            }
        })
    }

    fn put(&self, key: &str, data: Bytes) -> BoxFuture<'_, Result<(), ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            self.blocking(&key, move |p| {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut tmp = p.clone().into_os_string();
                tmp.push(".promgate-tmp");
                std::fs::write(&tmp, &data)?;
                std::fs::rename(&tmp, &p)
            })
            .await
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), ObjectError>> {
        let key = key.to_string();
        Box::pin(async move {
            match self.blocking(&key, std::fs::remove_file).await {
                Err(ObjectError::NotFound(_)) => Ok(()),
                other => other,
            }
        })
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Adds the files below `dir` whose keys start with `prefix`, skipping directories that
/// cannot hold such keys.
fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Some(key) = path
            .strip_prefix(root)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if kind.is_file() && key.starts_with(prefix) && !key.ends_with(".promgate-tmp") {
            out.push(ObjectInfo {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_round_trip_with_ranges_listing_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        crate::storage::object::tests::exercise(&FsObjects::new(dir.path())).await;
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjects::new(dir.path().join("inner"));
        for key in ["../secret", "/etc/passwd", "", "a/../../b"] {
            assert!(
                matches!(store.get(key).await, Err(ObjectError::Io { .. })),
                "{key}"
            );
        }
    }
}
