//! Chunk segment files (`chunks/000001`, …) read through ranged reads. A chunk reference
//! holds the segment's position in the sorted list of segment files in its upper 32 bits
//! and the chunk's byte offset in the lower 32; a chunk is framed as a uvarint data length,
//! an encoding byte, the data and a CRC32C over encoding and data, which is verified.

use std::ops::Range;

use bytes::Bytes;

use super::BlockError;
use super::block::Source;
use super::cache::CacheKind;
use super::decode::{Dec, crc_matches};
use super::ranges::fetch_ranges;

/// The chunk encoding of XOR (Gorilla) float chunks.
pub const ENCODING_XOR: u8 = 1;
/// Bytes read for a chunk before its length is known: a full 120-sample XOR chunk fits.
/// Longer chunks are read again in full.
const CHUNK_ESTIMATE: u64 = 1100;
/// Segment header: magic, version and padding.
const SEGMENT_HEADER: u64 = 8;

/// Where one chunk of a series lies and which samples it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Time of the first sample (ms).
    pub min_time: i64,
    /// Time of the last sample (ms), inclusive.
    pub max_time: i64,
    pub r#ref: u64,
}

impl ChunkMeta {
    /// Position of the segment file in the block's sorted list of segments.
    pub fn segment(&self) -> u32 {
        (self.r#ref >> 32) as u32
    }

    /// Byte offset in the segment file.
    pub fn offset(&self) -> u64 {
        self.r#ref & 0xffff_ffff
    }

    /// Whether the chunk may hold samples with `start <= t <= end`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.max_time >= start && self.min_time <= end
    }
}

/// A chunk read from its segment: encoding byte and data, CRC checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChunk {
    pub encoding: u8,
    pub data: Bytes,
}

/// The segment files of a block: keys and sizes, sorted.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    files: Vec<(String, u64)>,
}

impl Segments {
    /// From a listing of the block's `chunks/` prefix: files whose name is a number, in
    /// order.
    pub fn from_listing(prefix: &str, listing: Vec<crate::storage::object::ObjectInfo>) -> Self {
        let mut files: Vec<(u64, String, u64)> = listing
            .into_iter()
            .filter_map(|o| {
                let name = o.key.strip_prefix(prefix)?;
                let n: u64 = name.parse().ok()?;
                Some((n, o.key, o.size))
            })
            .collect();
        files.sort();
        Segments {
            files: files.into_iter().map(|(_, k, s)| (k, s)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn locate(&self, r: u64, series: &str) -> Result<(usize, u64), BlockError> {
        let meta = ChunkMeta {
            min_time: 0,
            max_time: 0,
            r#ref: r,
        };
        let seg = meta.segment() as usize;
        let Some((key, size)) = self.files.get(seg) else {
            return Err(BlockError::corrupt(
                series,
                r,
                format!(
                    "chunk reference {r:#x} names segment {seg} of {}",
                    self.files.len()
                ),
            ));
        };
        let off = meta.offset();
        if off < SEGMENT_HEADER || off >= *size {
            return Err(BlockError::corrupt(
                key,
                off,
                format!("chunk offset outside the segment's {size} bytes"),
            ));
        }
        Ok((seg, off))
    }

    /// Reads the chunks `wanted` (any order) through the cache, one batch of coalesced
    /// reads per segment; the answer is in request order. Each chunk comes with the offset
    /// its frame ends by, when known (the start of the series' next chunk); otherwise a
    /// guess is read and, when too short, the rest. `series` names the series in errors.
    pub(crate) async fn read(
        &self,
        src: &Source,
        wanted: &[(u64, Option<u64>)],
        series: &str,
    ) -> Result<Vec<RawChunk>, BlockError> {
        let refs: Vec<u64> = wanted.iter().map(|(r, _)| *r).collect();
        let mut out: Vec<Option<RawChunk>> = vec![None; refs.len()];
        // Per segment: (request index, estimated range).
        let mut per_segment: Vec<Vec<(usize, Range<u64>)>> = vec![Vec::new(); self.files.len()];
        for (i, &(r, end_hint)) in wanted.iter().enumerate() {
            if let Some(b) = src.cache.get(&src.block, CacheKind::Chunk, r) {
                out[i] = Some(RawChunk {
                    encoding: b[0],
                    data: b.slice(1..),
                });
                continue;
            }
            let (seg, off) = self.locate(r, series)?;
            let end = end_hint
                .filter(|&e| e > off)
                .unwrap_or(off + CHUNK_ESTIMATE)
                .min(self.files[seg].1);
            per_segment[seg].push((i, off..end));
        }
        let reads = per_segment
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.is_empty())
            .map(|(seg, want)| self.read_segment(src, seg, want));
        for done in futures::future::try_join_all(reads).await? {
            for (i, b) in done {
                src.cache
                    .put(&src.block, CacheKind::Chunk, refs[i], b.clone());
                out[i] = Some(RawChunk {
                    encoding: b[0],
                    data: b.slice(1..),
                });
            }
        }
        Ok(out
            .into_iter()
            .map(|c| c.expect("every chunk was read or found in the cache"))
            .collect())
    }

    /// Reads chunks of one segment; each answer is the encoding byte followed by the data.
    async fn read_segment(
        &self,
        src: &Source,
        seg: usize,
        want: &[(usize, Range<u64>)],
    ) -> Result<Vec<(usize, Bytes)>, BlockError> {
        let (key, size) = &self.files[seg];
        let ranges: Vec<Range<u64>> = want.iter().map(|(_, r)| r.clone()).collect();
        let fetched = fetch_ranges(&*src.objects, key, &ranges).await?;
        let mut out = Vec::with_capacity(want.len());
        let mut again = Vec::new();
        for ((i, r), b) in want.iter().zip(fetched) {
            match frame(&b, key, r.start)? {
                Framed::Whole(body) => out.push((*i, body)),
                Framed::Needs(total) if r.start + total <= *size => {
                    again.push((*i, r.start..r.start + total));
                }
                Framed::Needs(total) => {
                    return Err(BlockError::corrupt(
                        key,
                        r.start,
                        format!("chunk of {total} bytes runs past the segment's {size} bytes"),
                    ));
                }
            }
        }
        let ranges: Vec<Range<u64>> = again.iter().map(|(_, r)| r.clone()).collect();
        let fetched = fetch_ranges(&*src.objects, key, &ranges).await?;
        for ((i, r), b) in again.iter().zip(fetched) {
            match frame(&b, key, r.start)? {
                Framed::Whole(body) => out.push((*i, body)),
                Framed::Needs(_) => {
                    return Err(BlockError::corrupt(key, r.start, "chunk cut short"));
                }
            }
        }
        Ok(out)
    }
}

enum Framed {
    /// Encoding byte and data, CRC verified.
    Whole(Bytes),
    /// The frame is this long in all; more must be read.
    Needs(u64),
}

/// Unframes the chunk `b` starts with (read at `offset` of segment `key`).
fn frame(b: &Bytes, key: &str, offset: u64) -> Result<Framed, BlockError> {
    let mut d = Dec::new(b);
    let len = match d.uvarint("chunk length") {
        Ok(len) => len,
        // A length cut off by the end of the read: all of `b` is less than five bytes.
        Err(_) if b.len() < 5 => return Ok(Framed::Needs(b.len() as u64 + 5)),
        Err(e) => return Err(e.into_block(key, offset)),
    };
    if d.pos() > 5 {
        return Err(BlockError::corrupt(
            key,
            offset,
            "chunk length longer than 5 bytes",
        ));
    }
    let start = d.pos();
    let total = (start as u64)
        .saturating_add(1)
        .saturating_add(len)
        .saturating_add(4);
    if total > b.len() as u64 {
        return Ok(Framed::Needs(total));
    }
    let body_end = start + 1 + len as usize;
    let body = b.slice(start..body_end);
    if !crc_matches(&body, &b[body_end..body_end + 4]) {
        return Err(BlockError::corrupt(key, offset, "chunk CRC mismatch"));
    }
    Ok(Framed::Whole(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tsdb::decode::put_uvarint;

    fn framed(enc: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint(&mut out, data.len() as u64);
        out.push(enc);
        out.extend_from_slice(data);
        let mut crc_in = vec![enc];
        crc_in.extend_from_slice(data);
        out.extend_from_slice(&crc32c::crc32c(&crc_in).to_be_bytes());
        out
    }

    #[test]
    fn frames_are_checked() {
        let good = Bytes::from(framed(ENCODING_XOR, b"abcdef"));
        match frame(&good, "c", 8).unwrap() {
            Framed::Whole(b) => assert_eq!(&b[..], b"\x01abcdef"),
            Framed::Needs(_) => panic!("whole frame"),
        }
        // Cut short: asks for the full length.
        match frame(&good.slice(..6), "c", 8).unwrap() {
            Framed::Needs(n) => assert_eq!(n, good.len() as u64),
            Framed::Whole(_) => panic!("cut frame"),
        }
        let mut bad = framed(ENCODING_XOR, b"abcdef");
        bad[3] ^= 0x40;
        assert!(matches!(
            frame(&Bytes::from(bad), "c", 8),
            Err(BlockError::Corrupt { .. })
        ));
        // A length of 2^60 does not allocate: it asks for more than any segment holds.
        let mut huge = Vec::new();
        put_uvarint(&mut huge, 1 << 60);
        huge.extend_from_slice(&[1, 2, 3]);
        assert!(frame(&Bytes::from(huge), "c", 8).is_err());
    }

    #[test]
    fn refs_split_into_segment_and_offset() {
        let m = ChunkMeta {
            min_time: 0,
            max_time: 10,
            r#ref: (3 << 32) | 1234,
        };
        assert_eq!(m.segment(), 3);
        assert_eq!(m.offset(), 1234);
        assert!(m.overlaps(10, 20) && m.overlaps(-5, 0) && !m.overlaps(11, 20));
    }
}
