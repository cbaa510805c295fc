//! Ranged reads of one object with neighbouring ranges coalesced: requests whose gap is at
//! most [`COALESCE_GAP`] bytes are served by one GET (up to [`MAX_COALESCED`] bytes), and
//! each caller gets a zero-copy slice of it.

use std::ops::Range;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::storage::object::{ObjectError, ObjectStore};

/// Ranges closer than this are read together (a GET costs more than this many bytes).
pub(crate) const COALESCE_GAP: u64 = 16 * 1024;
/// No coalesced read grows beyond this (single ranges larger than it are read as they are).
pub(crate) const MAX_COALESCED: u64 = 16 << 20;
/// GETs of one batch in flight at once.
const PARALLEL_GETS: usize = 8;

/// One GET covering the requested ranges listed in `members` (indexes into the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub range: Range<u64>,
    pub members: Vec<usize>,
}

/// Plans the GETs for `ranges` (any order, may overlap).
pub(crate) fn coalesce(ranges: &[Range<u64>], gap: u64, max: u64) -> Vec<Group> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut groups: Vec<Group> = Vec::new();
    for i in order {
        let r = &ranges[i];
        if let Some(g) = groups.last_mut() {
            let end = g.range.end.max(r.end);
            if r.start <= g.range.end.saturating_add(gap) && end - g.range.start <= max {
                g.range.end = end;
                g.members.push(i);
                continue;
            }
        }
        groups.push(Group {
            range: r.clone(),
            members: vec![i],
        });
    }
    groups
}

/// Reads every range of `key`, coalescing neighbours; the answer is in request order.
pub(crate) async fn fetch_ranges(
    objects: &dyn ObjectStore,
    key: &str,
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>, ObjectError> {
    let groups = coalesce(ranges, COALESCE_GAP, MAX_COALESCED);
    let fetched: Vec<(Group, Bytes)> = futures::stream::iter(groups)
        .map(|g| async move {
            let b = objects.get_range(key, g.range.clone()).await?;
            Ok::<_, ObjectError>((g, b))
        })
        .buffer_unordered(PARALLEL_GETS)
        .try_collect()
        .await?;
    let mut out = vec![Bytes::new(); ranges.len()];
    for (g, b) in fetched {
        for &i in &g.members {
            let r = &ranges[i];
            let start = (r.start - g.range.start) as usize;
            let end = (r.end - g.range.start) as usize;
            if end > b.len() {
                return Err(ObjectError::OutOfRange {
                    key: key.to_string(),
                    start: r.start,
                    end: r.end,
                    size: g.range.start + b.len() as u64,
                });
            }
            out[i] = b.slice(start..end);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_merge_and_distant_ranges_do_not() {
        let ranges = vec![100..200, 0..50, 60..80, 10_000..10_010, 250..300];
        let groups = coalesce(&ranges, 10, 1 << 20);
        assert_eq!(
            groups,
            vec![
                Group {
                    range: 0..80,
                    members: vec![1, 2]
                },
                Group {
                    range: 100..200,
                    members: vec![0]
                },
                Group {
                    range: 250..300,
                    members: vec![4]
                },
                Group {
                    range: 10_000..10_010,
                    members: vec![3]
                },
            ]
        );
        // A large gap allowance merges everything but the size cap splits again.
        let groups = coalesce(&ranges, 1 << 20, 1000);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].range, 0..300);
        // Overlapping and contained ranges share a read.
        let groups = coalesce(&[0..100, 10..20, 50..150], 0, 1 << 20);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].range, 0..150);
    }
}
