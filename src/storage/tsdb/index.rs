//! The block index (format v2) read through ranged reads. [`IndexHeader::read`] fetches the
//! table of contents, the symbol table and the postings offset table once, at open; postings
//! lists and series entries are fetched on demand (coalesced, through the [`super::BlockCache`]).
//!
//! Every length and offset taken from the file is checked against the object's size and the
//! section it belongs to before anything is read or allocated, and every section with a
//! CRC32C has it verified.

use std::ops::Range;

use bytes::Bytes;

use super::BlockError;
use super::block::Source;
use super::cache::CacheKind;
use super::chunks::ChunkMeta;
use super::decode::{Dec, DecodeError, crc_matches};
use super::ranges::fetch_ranges;
use crate::storage::object::{ObjectError, ObjectStore};

/// Length of the table of contents at the end of the index, CRC included.
pub const TOC_LEN: u64 = 52;
const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// Bytes read for a series entry whose length is not known yet; longer entries are read
/// again in full.
pub(crate) const SERIES_ESTIMATE: u64 = 512;
/// Series entries start at multiples of this; the series reference is `offset / 16`.
const SERIES_ALIGN: u64 = 16;

/// Where the index's sections start (0 for an absent section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toc {
    pub symbols: u64,
    pub series: u64,
    pub label_indices: u64,
    pub label_offset_table: u64,
    pub postings: u64,
    pub postings_offset_table: u64,
}

impl Toc {
    /// Parses the last [`TOC_LEN`] bytes of an index of `size` bytes.
    pub fn parse(b: &[u8], key: &str, size: u64) -> Result<Toc, BlockError> {
        let base = size.saturating_sub(TOC_LEN);
        if b.len() as u64 != TOC_LEN {
            return Err(BlockError::corrupt(
                key,
                base,
                "table of contents cut short",
            ));
        }
        if !crc_matches(&b[..48], &b[48..]) {
            return Err(BlockError::corrupt(
                key,
                base + 48,
                "table of contents CRC mismatch",
            ));
        }
        let mut d = Dec::new(b);
        let mut next = || d.be64("toc entry").map_err(|e| e.into_block(key, base));
        let toc = Toc {
            symbols: next()?,
            series: next()?,
            label_indices: next()?,
            label_offset_table: next()?,
            postings: next()?,
            postings_offset_table: next()?,
        };
        for (name, off) in toc.entries() {
            if off > base {
                return Err(BlockError::corrupt(
                    key,
                    base,
                    format!("{name} offset {off} past the table of contents"),
                ));
            }
        }
        Ok(toc)
    }

    fn entries(&self) -> [(&'static str, u64); 6] {
        [
            ("symbols", self.symbols),
            ("series", self.series),
            ("label indices", self.label_indices),
            ("label offset table", self.label_offset_table),
            ("postings", self.postings),
            ("postings offset table", self.postings_offset_table),
        ]
    }
}

/// The postings lists of one label name: each value (a symbol number) with the byte range
/// of its list, sorted by value.
#[derive(Debug, Clone)]
struct NamePostings {
    name: u32,
    values: Vec<(u32, Range<u64>)>,
}

/// What a block keeps of its index in memory.
#[derive(Debug, Clone)]
pub struct IndexHeader {
    key: String,
    size: u64,
    toc: Toc,
    /// Sorted, as the format requires (so a string's position is found by binary search).
    symbols: Vec<Box<str>>,
    /// Sorted by name.
    names: Vec<NamePostings>,
    all_postings: Option<Range<u64>>,
    series_end: u64,
}

/// One series of the index: its labels (sorted) and chunk metas (in time order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesEntry {
    /// The series reference (`offset / 16`).
    pub series_ref: u64,
    pub labels: Vec<(String, String)>,
    pub chunks: Vec<ChunkMeta>,
}

impl IndexHeader {
    /// Reads the header of the index object `key` with four ranged reads.
    pub async fn read(objects: &dyn ObjectStore, key: &str) -> Result<IndexHeader, BlockError> {
        let size = objects
            .size(key)
            .await?
            .ok_or_else(|| ObjectError::NotFound(key.to_string()))?;
        if size < 5 + TOC_LEN {
            return Err(BlockError::corrupt(
                key,
                0,
                format!("index of {size} bytes is too small"),
            ));
        }
        let body_end = size - TOC_LEN;
        let tail = objects.get_range(key, body_end..size).await?;
        let toc = Toc::parse(&tail, key, size)?;

        // Magic and version, with the symbol table's length when it is near the start.
        let sym_len_end = if toc.symbols != 0 { toc.symbols + 4 } else { 0 };
        let head_end = if sym_len_end <= 64 * 1024 {
            sym_len_end.max(5)
        } else {
            5
        };
        if head_end > body_end {
            return Err(BlockError::corrupt(
                key,
                0,
                "symbol table past the end of the index",
            ));
        }
        let head = objects.get_range(key, 0..head_end).await?;
        let mut d = Dec::new(&head);
        let magic = d.be32("magic").map_err(|e| e.into_block(key, 0))?;
        if magic != MAGIC_INDEX {
            return Err(BlockError::corrupt(
                key,
                0,
                format!("bad magic {magic:#010x}"),
            ));
        }
        let version = d.byte("version").map_err(|e| e.into_block(key, 0))?;
        if version != 2 {
            return Err(BlockError::UnsupportedVersion {
                key: key.to_string(),
                what: "index",
                version: u32::from(version),
            });
        }

        let symbols = if toc.symbols == 0 {
            Vec::new()
        } else {
            let len_bytes = if head_end == sym_len_end {
                head.slice((toc.symbols as usize)..)
            } else {
                objects.get_range(key, toc.symbols..toc.symbols + 4).await?
            };
            let len = u64::from(
                Dec::new(&len_bytes)
                    .be32("symbol table length")
                    .map_err(|e| e.into_block(key, toc.symbols))?,
            );
            let end = toc.symbols + 4 + len + 4;
            if end > body_end {
                return Err(BlockError::corrupt(
                    key,
                    toc.symbols,
                    format!("symbol table of {len} bytes runs past the end of the index"),
                ));
            }
            let body = objects.get_range(key, toc.symbols + 4..end).await?;
            parse_symbols(&body, key, toc.symbols + 4)?
        };

        let mut header = IndexHeader {
            key: key.to_string(),
            size,
            toc,
            symbols,
            names: Vec::new(),
            all_postings: None,
            series_end: 0,
        };
        header.series_end = header.section_end(toc.series);
        if toc.postings_offset_table != 0 {
            let b = objects
                .get_range(key, toc.postings_offset_table..body_end)
                .await?;
            header.parse_postings_offsets(&b)?;
        }
        Ok(header)
    }

    /// The end of the section or list starting at `offset`: the next section start after
    /// it, or the table of contents.
    fn section_end(&self, offset: u64) -> u64 {
        self.toc
            .entries()
            .iter()
            .map(|(_, o)| *o)
            .filter(|&o| o > offset)
            .min()
            .unwrap_or(self.size - TOC_LEN)
    }

    fn parse_postings_offsets(&mut self, b: &[u8]) -> Result<(), BlockError> {
        let key = self.key.clone();
        let base = self.toc.postings_offset_table;
        let err = |e: DecodeError| e.into_block(&key, base);
        let mut d = Dec::new(b);
        let len = d.be32("postings offset table length").map_err(err)? as usize;
        let body = d
            .bytes(len, "postings offset table cut short")
            .map_err(err)?;
        let crc = d
            .bytes(4, "postings offset table CRC missing")
            .map_err(err)?;
        if !crc_matches(body, crc) {
            return Err(BlockError::corrupt(
                &key,
                base + 4 + len as u64,
                "postings offset table CRC mismatch",
            ));
        }
        let err = |e: DecodeError| e.into_block(&key, base + 4);
        let mut d = Dec::new(body);
        let count = d.be32("postings offset count").map_err(err)?;
        // An entry takes at least four bytes: no allocation beyond what the bytes can hold.
        let mut entries: Vec<(&str, &str, u64)> =
            Vec::with_capacity((count as usize).min(body.len() / 4));
        for _ in 0..count {
            let at = d.pos();
            if d.uvarint("postings offset key size").map_err(err)? != 2 {
                return Err(err(DecodeError {
                    at,
                    what: "postings offset key is not a label pair",
                }));
            }
            let name = d.uvarint_str("postings offset label name").map_err(err)?;
            let value = d.uvarint_str("postings offset label value").map_err(err)?;
            let at = d.pos();
            let offset = d.uvarint("postings offset").map_err(err)?;
            if offset < self.toc.postings || offset >= self.size - TOC_LEN {
                return Err(err(DecodeError {
                    at,
                    what: "postings offset outside the postings section",
                }));
            }
            entries.push((name, value, offset));
        }
        let mut offsets: Vec<u64> = entries.iter().map(|e| e.2).collect();
        offsets.sort_unstable();
        offsets.dedup();
        let end_of = |o: u64| -> u64 {
            let i = offsets.partition_point(|&x| x <= o);
            let next = offsets.get(i).copied().unwrap_or(u64::MAX);
            next.min(self.section_end(o))
        };
        let ranged: Vec<(&str, &str, Range<u64>)> = entries
            .into_iter()
            .map(|(n, v, o)| (n, v, o..end_of(o)))
            .collect();
        let mut names: Vec<NamePostings> = Vec::new();
        for (name, value, range) in ranged {
            if name.is_empty() && value.is_empty() {
                self.all_postings = Some(range);
                continue;
            }
            let (Some(n), Some(v)) = (self.symbol_ref(name), self.symbol_ref(value)) else {
                return Err(BlockError::corrupt(
                    &key,
                    base,
                    format!("label {name}={value:?} of the postings offset table is not a symbol"),
                ));
            };
            match names.last_mut() {
                Some(last) if last.name == n => {
                    if last.values.last().is_some_and(|(pv, _)| *pv >= v) {
                        return Err(BlockError::corrupt(
                            &key,
                            base,
                            "postings offset table not sorted",
                        ));
                    }
                    last.values.push((v, range));
                }
                Some(last) if last.name > n => {
                    return Err(BlockError::corrupt(
                        &key,
                        base,
                        "postings offset table not sorted",
                    ));
                }
                _ => names.push(NamePostings {
                    name: n,
                    values: vec![(v, range)],
                }),
            }
        }
        self.names = names;
        Ok(())
    }

    /// A header holding only `symbols`, for decoding hand-built series entries.
    #[cfg(test)]
    pub(crate) fn with_symbols(symbols: &[&str]) -> IndexHeader {
        IndexHeader {
            key: "i".to_string(),
            size: 1 << 20,
            toc: Toc {
                symbols: 5,
                series: 64,
                label_indices: 0,
                label_offset_table: 0,
                postings: 0,
                postings_offset_table: 0,
            },
            symbols: symbols.iter().map(|s| Box::from(*s)).collect(),
            names: Vec::new(),
            all_postings: None,
            series_end: 1 << 19,
        }
    }

    /// The index object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    pub fn symbols(&self) -> usize {
        self.symbols.len()
    }

    /// The string of symbol number `i`.
    pub fn symbol(&self, i: u32) -> Option<&str> {
        self.symbols.get(i as usize).map(|s| &**s)
    }

    fn symbol_ref(&self, s: &str) -> Option<u32> {
        self.symbols
            .binary_search_by(|x| (**x).cmp(s))
            .ok()
            .map(|i| i as u32)
    }

    /// Every label name with postings, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.iter().filter_map(|n| self.symbol(n.name))
    }

    /// The values of `name` with the byte ranges of their postings lists, sorted by value.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = (&str, Range<u64>)> + '_ {
        let values: &[(u32, Range<u64>)] = match self.symbol_ref(name) {
            Some(n) => match self.names.binary_search_by_key(&n, |p| p.name) {
                Ok(i) => &self.names[i].values,
                Err(_) => &[],
            },
            None => &[],
        };
        values
            .iter()
            .filter_map(|(v, r)| Some((self.symbol(*v)?, r.clone())))
    }

    /// The byte range of the postings list of `name="value"`.
    pub fn postings_range(&self, name: &str, value: &str) -> Option<Range<u64>> {
        let v = self.symbol_ref(value)?;
        let n = self.symbol_ref(name)?;
        let values = &self.names[self.names.binary_search_by_key(&n, |p| p.name).ok()?].values;
        let i = values.binary_search_by_key(&v, |(v, _)| *v).ok()?;
        Some(values[i].1.clone())
    }

    /// The byte range of the list of every series.
    pub fn all_postings_range(&self) -> Option<Range<u64>> {
        self.all_postings.clone()
    }

    /// Bytes of the index held in memory, roughly.
    pub fn memory_bytes(&self) -> usize {
        self.symbols.iter().map(|s| s.len() + 16).sum::<usize>()
            + self
                .names
                .iter()
                .map(|n| 32 + n.values.len() * 24)
                .sum::<usize>()
    }

    /// Reads postings lists by their byte ranges (as given by this header), through the
    /// cache; the answer is in request order, each list sorted.
    pub(crate) async fn postings(
        &self,
        src: &Source,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u64>>, BlockError> {
        let mut out: Vec<Option<Vec<u64>>> = vec![None; ranges.len()];
        let mut missing = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            match src.cache.get(&src.block, CacheKind::Postings, r.start) {
                Some(b) => out[i] = Some(decode_postings(&b, &self.key, r.start)?.1),
                None => missing.push(i),
            }
        }
        let want: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
        let fetched = fetch_ranges(&*src.objects, &self.key, &want).await?;
        for (&i, b) in missing.iter().zip(fetched) {
            let start = ranges[i].start;
            let (used, list) = decode_postings(&b, &self.key, start)?;
            src.cache
                .put(&src.block, CacheKind::Postings, start, b.slice(..used));
            out[i] = Some(list);
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Reads the series entries `refs` (sorted or not), through the cache; the answer is in
    /// request order.
    pub(crate) async fn series(
        &self,
        src: &Source,
        refs: &[u64],
    ) -> Result<Vec<SeriesEntry>, BlockError> {
        let mut raw: Vec<Option<Bytes>> = vec![None; refs.len()];
        let mut missing = Vec::new();
        let mut want = Vec::new();
        for (i, &r) in refs.iter().enumerate() {
            if let Some(b) = src.cache.get(&src.block, CacheKind::Series, r) {
                raw[i] = Some(b);
                continue;
            }
            let start = r
                .checked_mul(SERIES_ALIGN)
                .filter(|&o| o >= self.toc.series && o < self.series_end && self.toc.series != 0);
            let Some(start) = start else {
                return Err(BlockError::corrupt(
                    &self.key,
                    self.toc.series,
                    format!("series reference {r} outside the series section"),
                ));
            };
            missing.push(i);
            want.push(start..(start + SERIES_ESTIMATE).min(self.series_end));
        }
        let fetched = fetch_ranges(&*src.objects, &self.key, &want).await?;
        let mut again = Vec::new();
        let mut again_ranges = Vec::new();
        for ((&i, b), r) in missing.iter().zip(fetched).zip(&want) {
            let total = series_entry_len(&b).map_err(|e| e.into_block(&self.key, r.start))?;
            if total <= b.len() as u64 {
                raw[i] = Some(b.slice(..total as usize));
            } else if r.start + total <= self.series_end {
                again.push(i);
                again_ranges.push(r.start..r.start + total);
            } else {
                return Err(BlockError::corrupt(
                    &self.key,
                    r.start,
                    format!("series entry of {total} bytes runs past the series section"),
                ));
            }
        }
        let fetched = fetch_ranges(&*src.objects, &self.key, &again_ranges).await?;
        for (&i, b) in again.iter().zip(fetched) {
            raw[i] = Some(b);
        }
        let mut out = Vec::with_capacity(refs.len());
        for (i, b) in raw.into_iter().enumerate() {
            let b = b.unwrap_or_default();
            let entry = self.decode_series(refs[i], &b)?;
            if missing.binary_search(&i).is_ok() {
                src.cache.put(&src.block, CacheKind::Series, refs[i], b);
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Decodes one series entry (length prefix, body and CRC) read at `series_ref * 16`.
    pub fn decode_series(&self, series_ref: u64, b: &[u8]) -> Result<SeriesEntry, BlockError> {
        let base = series_ref.saturating_mul(SERIES_ALIGN);
        let err = |e: DecodeError| e.into_block(&self.key, base);
        let mut d = Dec::new(b);
        let len = d.uvarint("series entry length").map_err(err)?;
        let body_at = d.pos();
        if len > d.remaining() as u64 {
            return Err(err(DecodeError {
                at: 0,
                what: "series entry cut short",
            }));
        }
        let body = d.bytes(len as usize, "series entry").map_err(err)?;
        let crc = d.bytes(4, "series entry CRC missing").map_err(err)?;
        if !crc_matches(body, crc) {
            return Err(BlockError::corrupt(
                &self.key,
                base,
                "series entry CRC mismatch",
            ));
        }
        let err = |e: DecodeError| e.into_block(&self.key, base + body_at as u64);
        let mut d = Dec::new(body);
        let n_labels = d.uvarint("series label count").map_err(err)?;
        let mut labels = Vec::with_capacity((n_labels as usize).min(body.len() / 2));
        for _ in 0..n_labels {
            let at = d.pos();
            let name = d.uvarint32("label name reference").map_err(err)?;
            let value = d.uvarint32("label value reference").map_err(err)?;
            let (Some(name), Some(value)) = (self.symbol(name), self.symbol(value)) else {
                return Err(err(DecodeError {
                    at,
                    what: "label reference past the symbol table",
                }));
            };
            labels.push((name.to_string(), value.to_string()));
        }
        let n_chunks = d.uvarint("chunk count").map_err(err)?;
        let mut chunks = Vec::with_capacity((n_chunks as usize).min(body.len() / 3));
        let mut prev_maxt = 0i64;
        let mut prev_ref = 0u64;
        for i in 0..n_chunks {
            let at = d.pos();
            let bad = |what| err(DecodeError { at, what });
            let (mint, r#ref) = if i == 0 {
                let mint = d.varint("chunk min time").map_err(err)?;
                let maxt_delta = d.uvarint("chunk max time").map_err(err)?;
                let r#ref = d.uvarint("chunk reference").map_err(err)?;
                prev_maxt =
                    add_delta(mint, maxt_delta).ok_or_else(|| bad("chunk time overflows"))?;
                (mint, r#ref)
            } else {
                let mint_delta = d.uvarint("chunk min time").map_err(err)?;
                let mint =
                    add_delta(prev_maxt, mint_delta).ok_or_else(|| bad("chunk time overflows"))?;
                let maxt_delta = d.uvarint("chunk max time").map_err(err)?;
                prev_maxt =
                    add_delta(mint, maxt_delta).ok_or_else(|| bad("chunk time overflows"))?;
                let ref_delta = d.varint("chunk reference").map_err(err)?;
                let r#ref = prev_ref
                    .checked_add_signed(ref_delta)
                    .ok_or_else(|| bad("chunk reference overflows"))?;
                (mint, r#ref)
            };
            prev_ref = r#ref;
            chunks.push(ChunkMeta {
                min_time: mint,
                max_time: prev_maxt,
                r#ref,
            });
        }
        Ok(SeriesEntry {
            series_ref,
            labels,
            chunks,
        })
    }
}

fn add_delta(base: i64, delta: u64) -> Option<i64> {
    base.checked_add(i64::try_from(delta).ok()?)
}

/// The whole length (prefix, body and CRC) of the series entry `b` starts with.
pub(crate) fn series_entry_len(b: &[u8]) -> Result<u64, DecodeError> {
    let mut d = Dec::new(b);
    let len = d.uvarint("series entry length")?;
    Ok((d.pos() as u64).saturating_add(len).saturating_add(4))
}

pub(crate) fn parse_symbols(b: &[u8], key: &str, base: u64) -> Result<Vec<Box<str>>, BlockError> {
    let err = |e: DecodeError| e.into_block(key, base);
    let (body, crc) = b.split_at(b.len().saturating_sub(4));
    if !crc_matches(body, crc) {
        return Err(BlockError::corrupt(key, base, "symbol table CRC mismatch"));
    }
    let mut d = Dec::new(body);
    let count = d.be32("symbol count").map_err(err)?;
    let mut symbols: Vec<Box<str>> = Vec::with_capacity((count as usize).min(body.len()));
    for _ in 0..count {
        let at = d.pos();
        let s = d.uvarint_str("symbol").map_err(err)?;
        if symbols.last().is_some_and(|p| &**p >= s) {
            return Err(err(DecodeError {
                at,
                what: "symbols not sorted",
            }));
        }
        symbols.push(s.into());
    }
    Ok(symbols)
}

/// Decodes a postings list read at `offset`: returns the bytes it used (length, body and
/// CRC) and its series references, checked to be increasing.
pub(crate) fn decode_postings(
    b: &[u8],
    key: &str,
    offset: u64,
) -> Result<(usize, Vec<u64>), BlockError> {
    let err = |e: DecodeError| e.into_block(key, offset);
    let mut d = Dec::new(b);
    let len = d.be32("postings length").map_err(err)? as usize;
    let body = d.bytes(len, "postings list cut short").map_err(err)?;
    let crc = d.bytes(4, "postings CRC missing").map_err(err)?;
    if !crc_matches(body, crc) {
        return Err(BlockError::corrupt(key, offset, "postings CRC mismatch"));
    }
    let mut d = Dec::new(body);
    let n = d.be32("postings count").map_err(err)? as usize;
    if len < 4 || n.checked_mul(4) != Some(len - 4) {
        return Err(BlockError::corrupt(
            key,
            offset,
            format!("postings of {len} bytes cannot hold {n} references"),
        ));
    }
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let at = d.pos();
        let r = u64::from(d.be32("series reference").map_err(err)?);
        if refs.last().is_some_and(|&p| p >= r) {
            return Err(err(DecodeError {
                at: at + 4,
                what: "postings not increasing",
            }));
        }
        refs.push(r);
    }
    Ok((8 + len, refs))
}
