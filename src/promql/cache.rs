//! Parsed queries, kept by text. Dashboards send the same queries again and again with new
//! times, and parsing a query of a few selectors takes promql-parser around 100 µs — as
//! long as Prometheus takes to answer a small one — so each distinct text is parsed once.
//! Bounded: when full, the half least recently used is dropped. Failed parses are not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use promql_parser::parser::Expr;

/// Query text → parsed query and when it was last used (a tick of `clock`).
type Entries = HashMap<Box<str>, (Arc<Expr>, u64)>;

pub struct ParseCache {
    entries: Mutex<Entries>,
    capacity: usize,
    clock: AtomicU64,
}

impl ParseCache {
    pub fn new(capacity: usize) -> Self {
        ParseCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
            clock: AtomicU64::new(0),
        }
    }

    /// The parsed query, from the cache when it was parsed before.
    pub fn parse(&self, query: &str) -> Result<Arc<Expr>, String> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut entries) = self.entries.lock() {
            if let Some((expr, used)) = entries.get_mut(query) {
                *used = now;
                return Ok(expr.clone());
            }
        }
        let expr = Arc::new(super::parse(query)?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                let mut ages: Vec<u64> = entries.values().map(|(_, used)| *used).collect();
                let cut = ages.len() / 2;
                let (_, median, _) = ages.select_nth_unstable(cut);
                let median = *median;
                entries.retain(|_, (_, used)| *used > median);
            }
            entries.insert(query.into(), (expr.clone(), now));
        }
        Ok(expr)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_queries_share_one_parse() {
        let cache = ParseCache::new(8);
        let a = cache.parse("sum(rate(x[5m]))").unwrap();
        let b = cache.parse("sum(rate(x[5m]))").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.parse("sum(").is_err());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_least_recently_used_half_goes_when_full() {
        let cache = ParseCache::new(4);
        for q in ["a", "b", "c", "d"] {
            cache.parse(q).unwrap();
        }
        cache.parse("a").unwrap();
        cache.parse("e").unwrap();
        assert!(cache.len() <= 4);
        let kept = cache.parse("a").unwrap();
        // "a" was used last before "e": it survived, so this is the same parse.
        assert!(Arc::ptr_eq(&kept, &cache.parse("a").unwrap()));
        let entries = cache.entries.lock().unwrap();
        assert!(entries.contains_key("a") && entries.contains_key("e"));
        assert!(!entries.contains_key("b"));
    }
}
