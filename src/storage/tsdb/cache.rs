//! A bounded in-memory cache shared by every open block, for the pieces read on demand:
//! postings lists, series entries and chunks, keyed by block ULID, kind and the piece's
//! position in its file. Admission and eviction are TinyUFO's (a newcomer only displaces
//! entries it is expected to be used more than); hits and misses are counted per kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tinyufo::TinyUfo;

/// TinyUFO weighs entries in `u16`; one unit stands for this many bytes, so entries up to
/// 4 MiB can be cached.
const WEIGHT_UNIT: usize = 64;
/// Bytes charged per entry on top of its data (key, bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

/// What a cached piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    /// A postings list, by its offset in the index.
    Postings,
    /// A series entry, by its series reference.
    Series,
    /// A chunk (encoding byte and data, CRC verified), by its chunk reference.
    Chunk,
}

impl CacheKind {
    fn slot(self) -> usize {
        match self {
            CacheKind::Postings => 0,
            CacheKind::Series => 1,
            CacheKind::Chunk => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    block: Arc<str>,
    kind: CacheKind,
    id: u64,
}

/// Hits and misses of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries offered to the cache (admission may still have refused them).
    pub inserts: u64,
}

/// Counters of a [`BlockCache`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub postings: KindStats,
    pub series: KindStats,
    pub chunks: KindStats,
    pub capacity_bytes: usize,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
}

impl Counters {
    fn read(&self) -> KindStats {
        KindStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
        }
    }
}

/// The cache. A capacity of 0 disables it (every lookup misses, nothing is stored).
pub struct BlockCache {
    /// The key travels with the value: TinyUFO keeps only a 64-bit hash of the key, and a
    /// collision must read as a miss, not as another piece's bytes.
    ufo: Option<TinyUfo<Key, Arc<(Key, Bytes)>>>,
    counters: [Counters; 3],
    capacity_bytes: usize,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding about `capacity_bytes` of data.
    pub fn new(capacity_bytes: usize) -> BlockCache {
        let units = capacity_bytes / WEIGHT_UNIT;
        let ufo = (units > 0).then(|| {
            let estimated_entries = (capacity_bytes / 1024).clamp(256, 1 << 20);
            TinyUfo::new(units, estimated_entries)
        });
        BlockCache {
            ufo,
            counters: Default::default(),
            capacity_bytes,
        }
    }

    /// A cache that stores nothing.
    pub fn disabled() -> BlockCache {
        BlockCache::new(0)
    }

    /// The piece `id` of `kind` of block `block`, when cached.
    pub fn get(&self, block: &Arc<str>, kind: CacheKind, id: u64) -> Option<Bytes> {
        let counters = &self.counters[kind.slot()];
        let key = Key {
            block: block.clone(),
            kind,
            id,
        };
        let found = self
            .ufo
            .as_ref()
            .and_then(|u| u.get(&key))
            .filter(|e| e.0 == key)
            .map(|e| e.1.clone());
        match found {
            Some(b) => {
                counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(b)
            }
            None => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Offers a piece to the cache; pieces too large to weigh are not kept.
    pub fn put(&self, block: &Arc<str>, kind: CacheKind, id: u64, data: Bytes) {
        let Some(ufo) = &self.ufo else { return };
        let units = (data.len() + ENTRY_OVERHEAD).div_ceil(WEIGHT_UNIT);
        let Ok(weight) = u16::try_from(units) else {
            return;
        };
        self.counters[kind.slot()]
            .inserts
            .fetch_add(1, Ordering::Relaxed);
        let key = Key {
            block: block.clone(),
            kind,
            id,
        };
        ufo.put(key.clone(), Arc::new((key, data)), weight);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            postings: self.counters[0].read(),
            series: self.counters[1].read(),
            chunks: self.counters[2].read(),
            capacity_bytes: self.capacity_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_and_misses_are_counted_per_kind() {
        let cache = BlockCache::new(1 << 20);
        let a: Arc<str> = Arc::from("A");
        let b: Arc<str> = Arc::from("B");
        assert_eq!(cache.get(&a, CacheKind::Series, 16), None);
        cache.put(&a, CacheKind::Series, 16, Bytes::from_static(b"series"));
        assert_eq!(
            cache.get(&a, CacheKind::Series, 16).as_deref(),
            Some(&b"series"[..])
        );
        // Same id, other kind or other block: distinct entries.
        assert_eq!(cache.get(&a, CacheKind::Chunk, 16), None);
        assert_eq!(cache.get(&b, CacheKind::Series, 16), None);
        let s = cache.stats();
        assert_eq!(s.series.hits, 1);
        assert_eq!(s.series.misses, 2);
        assert_eq!(s.series.inserts, 1);
        assert_eq!(s.chunks.misses, 1);
        assert_eq!(s.postings, KindStats::default());
    }

    #[test]
    fn stays_within_capacity() {
        let cache = BlockCache::new(64 * 1024);
        let a: Arc<str> = Arc::from("A");
        for i in 0..1000u64 {
            cache.put(&a, CacheKind::Chunk, i, Bytes::from(vec![0u8; 1000]));
        }
        let held = (0..1000u64)
            .filter(|&i| cache.get(&a, CacheKind::Chunk, i).is_some())
            .count();
        assert!(held > 0 && held <= 64, "{held} entries of 1 KB in 64 KB");
        // Too large to weigh: never stored.
        let big = BlockCache::new(1 << 30);
        big.put(&a, CacheKind::Chunk, 1, Bytes::from(vec![0u8; 5 << 20]));
        assert_eq!(big.get(&a, CacheKind::Chunk, 1), None);
        let off = BlockCache::disabled();
        off.put(&a, CacheKind::Chunk, 1, Bytes::from_static(b"x"));
        assert_eq!(off.get(&a, CacheKind::Chunk, 1), None);
    }
}
