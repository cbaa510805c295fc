//! A block's `tombstones` file: deleted time intervals per series. It is read whole at
//! open (it is small); a missing file means nothing was deleted.

use std::collections::HashMap;

use super::BlockError;
use super::decode::{Dec, DecodeError, crc_matches};

const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;
const HEADER: usize = 5;

/// Deleted intervals per series reference: inclusive `(min, max)` ms, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: HashMap<u64, Vec<(i64, i64)>>,
}

impl Tombstones {
    /// Parses a tombstones file read from `key`.
    pub fn parse(b: &[u8], key: &str) -> Result<Tombstones, BlockError> {
        if b.len() < HEADER + 4 {
            return Err(BlockError::corrupt(key, 0, "tombstones file too small"));
        }
        let err = |e: DecodeError| e.into_block(key, 0);
        let (content, crc) = b.split_at(b.len() - 4);
        let mut d = Dec::new(content);
        let magic = d.be32("magic").map_err(err)?;
        if magic != MAGIC_TOMBSTONES {
            return Err(BlockError::corrupt(
                key,
                0,
                format!("bad magic {magic:#010x}"),
            ));
        }
        let version = d.byte("version").map_err(err)?;
        if version != 1 {
            return Err(BlockError::UnsupportedVersion {
                key: key.to_string(),
                what: "tombstones",
                version: u32::from(version),
            });
        }
        if !crc_matches(&content[HEADER..], crc) {
            return Err(BlockError::corrupt(
                key,
                content.len() as u64,
                "tombstones CRC mismatch",
            ));
        }
        let mut by_series: HashMap<u64, Vec<(i64, i64)>> = HashMap::new();
        while d.remaining() > 0 {
            let series = d.uvarint("tombstone series reference").map_err(err)?;
            let min = d.varint("tombstone min time").map_err(err)?;
            let max = d.varint("tombstone max time").map_err(err)?;
            by_series.entry(series).or_default().push((min, max));
        }
        for intervals in by_series.values_mut() {
            *intervals = merge_intervals(std::mem::take(intervals));
        }
        Ok(Tombstones { by_series })
    }

    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// The deleted intervals of a series, sorted and disjoint.
    pub fn intervals(&self, series_ref: u64) -> &[(i64, i64)] {
        self.by_series.get(&series_ref).map_or(&[], Vec::as_slice)
    }

    /// Whether `t` of this series is deleted.
    pub fn is_deleted(intervals: &[(i64, i64)], t: i64) -> bool {
        let i = intervals.partition_point(|&(_, max)| max < t);
        intervals.get(i).is_some_and(|&(min, _)| min <= t)
    }
}

fn merge_intervals(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.retain(|(a, b)| a <= b);
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn encode(stones: &[(u64, i64, i64)]) -> Vec<u8> {
    use super::decode::{put_uvarint, put_varint};
    let mut out = MAGIC_TOMBSTONES.to_be_bytes().to_vec();
    out.push(1);
    for &(s, a, b) in stones {
        put_uvarint(&mut out, s);
        put_varint(&mut out, a);
        put_varint(&mut out, b);
    }
    let crc = crc32c::crc32c(&out[HEADER..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges_intervals() {
        let b = encode(&[
            (3, 10, 20),
            (3, 15, 30),
            (3, -5, -1),
            (7, 100, 100),
            (3, 40, 50),
        ]);
        let t = Tombstones::parse(&b, "tombstones").unwrap();
        assert_eq!(t.intervals(3), &[(-5, -1), (10, 30), (40, 50)]);
        assert_eq!(t.intervals(7), &[(100, 100)]);
        assert_eq!(t.intervals(8), &[] as &[(i64, i64)]);
        let iv = t.intervals(3);
        for (ts, deleted) in [
            (-6, false),
            (-5, true),
            (0, false),
            (10, true),
            (30, true),
            (31, false),
            (45, true),
            (51, false),
        ] {
            assert_eq!(Tombstones::is_deleted(iv, ts), deleted, "t={ts}");
        }
        assert!(Tombstones::parse(&encode(&[]), "t").unwrap().is_empty());
    }

    #[test]
    fn corrupt_tombstones_are_errors() {
        let good = encode(&[(3, 10, 20)]);
        let mut bad_crc = good.clone();
        bad_crc[6] ^= 1;
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        assert!(matches!(
            Tombstones::parse(&bad_crc, "t"),
            Err(BlockError::Corrupt { .. })
        ));
        assert!(matches!(
            Tombstones::parse(&bad_magic, "t"),
            Err(BlockError::Corrupt { .. })
        ));
        assert!(matches!(
            Tombstones::parse(&bad_version, "t"),
            Err(BlockError::UnsupportedVersion { .. })
        ));
        assert!(Tombstones::parse(&good[..6], "t").is_err());
        // A cut entry under a matching CRC.
        let mut cut = good[..good.len() - 5].to_vec();
        let crc = crc32c::crc32c(&cut[HEADER..]);
        cut.extend_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            Tombstones::parse(&cut, "t"),
            Err(BlockError::Corrupt { .. })
        ));
    }
}
