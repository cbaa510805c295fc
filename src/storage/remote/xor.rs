//! The XOR (Gorilla) float chunk codec, bit for bit as Prometheus's TSDB writes it, so chunks
//! from remote read (and later from TSDB blocks) decode here and chunks encoded here decode
//! in Prometheus.
//!
//! Layout: a 2-byte big-endian sample count, then a bit stream, most significant bit first.
//! The first sample is the timestamp as a zigzag varint and the value's 64 raw bits. The
//! second is the timestamp delta as an unsigned varint and the value XOR-encoded. Every
//! further timestamp is a delta of deltas in one of five buckets: `0` (unchanged), `10` + 14
//! bits, `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits (two's complement; the ranges
//! reach one further on the positive side than on the negative). A value is `0` when it
//! equals the previous one; else `1`, then `0` + the significant bits of the XOR when they
//! fit inside the previous leading/trailing zero window, or `1` + 5 bits of leading zeros
//! (capped at 31) + 6 bits of significant-bit count (0 meaning 64) + those bits.
//!
//! The decoder is a lazy iterator over the borrowed chunk bytes (no allocation), which can
//! also decode the rest of a chunk into flat timestamp and value vectors in one tight loop
//! (`flat`: from a zero-padded copy of the chunk, falling back to the iterator's own steps
//! for long, truncated or corrupt chunks); both give a typed error instead of a panic when
//! the bytes end early or contradict themselves.

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk of {len} bytes is shorter than its 2-byte header")]
    MissingHeader { len: usize },
    #[error("chunk ends inside sample {sample} of {total}")]
    Truncated { sample: u16, total: u16 },
    #[error("varint longer than 64 bits in sample {sample}")]
    VarintOverflow { sample: u16 },
    #[error(
        "sample {sample}: {leading} leading zeros and {significant} significant bits exceed 64"
    )]
    BadBitCounts {
        sample: u16,
        leading: u8,
        significant: u8,
    },
}

/// An encoder is full at 65 535 samples (the header is a u16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("XOR chunk already holds the maximum of 65535 samples")]
pub struct ChunkFull;

// === impl BitReader ===

/// Reads bit fields most significant bit first through a 64-bit buffer. `buf` holds the next
/// bits left-aligned; the top `avail` of them are counted, and any bits below those are the
/// stream's own following bits or zero, so a refill can OR a fresh word over them. A refill
/// is one unaligned big-endian load while 8 bytes remain; only the last few bytes of a chunk
/// go byte by byte, and `avail` never counts bits past the end, which is how truncation shows.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte not yet loaded into `buf`.
    next: usize,
    buf: u64,
    /// Counted bits in `buf`, at most 63 so a shift by it is always defined.
    avail: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            next: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// A reader positioned `pos` bits into `data` (at most its length in bits).
    fn at(data: &'a [u8], pos: usize) -> Self {
        let mut r = BitReader::new(data);
        r.next = (pos >> 3).min(data.len());
        let skip = (pos & 7) as u32;
        if skip > 0 {
            r.refill();
            r.consume(skip.min(r.avail));
        }
        r
    }

    /// Tops `buf` up to at least 56 counted bits, or to everything left near the end.
    #[inline(always)]
    fn refill(&mut self) {
        match self
            .data
            .get(self.next..)
            .and_then(<[u8]>::first_chunk::<8>)
        {
            Some(word) => {
                self.buf |= u64::from_be_bytes(*word) >> self.avail;
                // Advance by whole bytes only; the partial byte is loaded again next time.
                self.next += ((63 - self.avail) >> 3) as usize;
                self.avail |= 56;
            }
            None => *self = self.refill_tail(),
        }
    }

    /// Fewer than 8 bytes remain: the chunk's last 8 bytes, shifted so the next unread byte
    /// is on top and zeros follow. By value rather than through `&mut self`, so that the
    /// reader in the hot loop never has its address taken and can stay in registers.
    #[cold]
    #[inline(never)]
    fn refill_tail(mut self) -> Self {
        let len = self.data.len();
        let left = len.saturating_sub(self.next);
        if left == 0 {
            return self;
        }
        let word = match self.data.last_chunk::<8>() {
            Some(last) => u64::from_be_bytes(*last) << (8 * (8 - left)),
            // A chunk body under 8 bytes: assemble it byte by byte.
            None => self.data[self.next..]
                .iter()
                .enumerate()
                .fold(0, |w, (i, &b)| w | u64::from(b) << (56 - 8 * i)),
        };
        self.buf |= word >> self.avail;
        // As many whole bytes as fit, but only those that exist.
        let take = (((63 - self.avail) >> 3) as usize).min(left);
        self.next += take;
        self.avail += 8 * take as u32;
        self
    }

    /// Drops `n` (0..=63) bits the caller has already checked are counted.
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.avail -= n;
    }

    /// `n` (1..=56) bits as the low bits of the result, or None when fewer remain. Refills
    /// only when short: a counter's few significant bits usually come from the buffer the
    /// timestamp's refill filled.
    #[inline(always)]
    fn read(&mut self, n: u32) -> Option<u64> {
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return None;
            }
        }
        let v = self.buf >> (64 - n);
        self.consume(n);
        Some(v)
    }

    /// `n` (1..=64) bits; wider than a refill guarantees, so in two halves when needed.
    #[inline(always)]
    fn read_long(&mut self, n: u32) -> Option<u64> {
        if n <= 56 {
            return self.read(n);
        }
        let hi = self.read(n - 32)?;
        let lo = self.read(32)?;
        Some(hi << 32 | lo)
    }
}

// === impl Decoder ===

/// Prefix length and payload width of the delta-of-delta bucket, indexed by the first four
/// bits of the stream: `0`, `10`, `110`, `1110` and the 64-bit escape `1111`.
const DOD_CODES: [(u32, u32); 16] = [
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (2, 14),
    (2, 14),
    (2, 14),
    (2, 14),
    (3, 17),
    (3, 17),
    (4, 20),
    (4, 64),
];

/// What went wrong, before the sample number is attached; kept small so the hot loop
/// carries no more than a tag.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Truncated,
    VarintOverflow,
    BadBitCounts { leading: u8, significant: u8 },
}

/// Everything that carries from one sample to the next. It is `Copy` so the tight loop can
/// work on a local copy that lives in registers, and write it back once.
#[derive(Clone, Copy)]
struct Decoder<'a> {
    r: BitReader<'a>,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Decoder<'_> {
    #[inline(always)]
    fn bits(&mut self, n: u32) -> Result<u64, Fault> {
        self.r.read_long(n).ok_or(Fault::Truncated)
    }

    fn uvarint(&mut self) -> Result<u64, Fault> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = self.bits(8)?;
            if i == 9 && b > 1 {
                break;
            }
            x |= (b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(Fault::VarintOverflow)
    }

    fn first(&mut self) -> Result<(), Fault> {
        let u = self.uvarint()?;
        self.t = ((u >> 1) as i64) ^ -((u & 1) as i64);
        self.v = self.bits(64)?;
        Ok(())
    }

    fn second(&mut self) -> Result<(), Fault> {
        self.t_delta = self.uvarint()?;
        self.t = self.t.wrapping_add(self.t_delta as i64);
        self.value()
    }

    /// A sample after the second: delta of deltas, then value.
    #[inline(always)]
    fn regular(&mut self) -> Result<(), Fault> {
        self.r.refill();
        let w = self.r.buf;
        // An unchanged interval is by far the most common, so it is the predicted branch;
        // the rest go through a table on the first four bits.
        let dod = if w >> 63 == 0 && self.r.avail >= 1 {
            self.r.consume(1);
            0
        } else {
            self.dod(w)?
        };
        self.t_delta = self.t_delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.t_delta as i64);
        self.value()
    }

    /// A non-zero delta of deltas, `w` being the buffer with its prefix on top.
    #[inline(always)]
    fn dod(&mut self, w: u64) -> Result<u64, Fault> {
        let (ctrl, width) = DOD_CODES[(w >> 60) as usize];
        if width == 64 {
            if self.r.avail < 4 {
                return Err(Fault::Truncated);
            }
            self.r.consume(4);
            return self.bits(64);
        }
        if self.r.avail < ctrl + width {
            return Err(Fault::Truncated);
        }
        // Two shifts so a zero width yields 0 instead of an overlong shift.
        let raw = ((w << ctrl) >> 1) >> (63 - width);
        self.r.consume(ctrl + width);
        // Values above half the range stand for negatives (two's complement, one more on
        // the positive side); zero width gives half 0 and no adjustment.
        let half = (1u64 << width) >> 1;
        Ok(if raw > half {
            raw.wrapping_sub(1 << width)
        } else {
            raw
        })
    }

    /// A value. Its prefix is at most 13 bits, which the refill before a regular sample's
    /// timestamp always leaves; only after the first samples' varints or a 64-bit delta of
    /// deltas may the buffer be shorter.
    #[inline(always)]
    fn value(&mut self) -> Result<(), Fault> {
        if self.r.avail < 13 {
            self.r.refill();
        }
        let w = self.r.buf;
        if self.r.avail < 2 {
            // One bit may be all that is left: an unchanged value at the very end.
            if self.r.avail == 1 && w >> 63 == 0 {
                self.r.consume(1);
                return Ok(());
            }
            return Err(Fault::Truncated);
        }
        if w >> 63 == 0 {
            self.r.consume(1);
            return Ok(());
        }
        // `10` reuses the zero window, `11` brings a new one in the next 11 bits. Which of
        // the two comes next is close to random on gauges, so both are computed and one is
        // selected instead of branching.
        let fresh = (w >> 62) & 1 == 1;
        let new_leading = ((w >> 57) & 0x1f) as u8;
        let new_significant = match ((w >> 51) & 0x3f) as u8 {
            0 => 64,
            n => n,
        };
        let ctrl = if fresh { 13 } else { 2 };
        if self.r.avail < ctrl {
            return Err(Fault::Truncated);
        }
        if fresh && new_leading + new_significant > 64 {
            return Err(Fault::BadBitCounts {
                leading: new_leading,
                significant: new_significant,
            });
        }
        self.r.consume(ctrl);
        if fresh {
            self.leading = new_leading;
            self.trailing = 64 - new_leading - new_significant;
        }
        let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let xor = self.bits(significant)?;
        self.v ^= xor << self.trailing;
        Ok(())
    }
}

// === impl XorIter ===

/// The samples of one XOR chunk, decoded lazily from borrowed bytes.
#[derive(Clone)]
pub struct XorIter<'a> {
    d: Decoder<'a>,
    total: u16,
    read: u16,
    failed: bool,
}

/// Starts decoding a chunk (header included).
pub fn xor_samples(chunk: &[u8]) -> Result<XorIter<'_>, ChunkError> {
    match chunk {
        [a, b, rest @ ..] => Ok(XorIter {
            d: Decoder {
                r: BitReader::new(rest),
                t: 0,
                v: 0,
                t_delta: 0,
                leading: 0,
                trailing: 0,
            },
            total: u16::from_be_bytes([*a, *b]),
            read: 0,
            failed: false,
        }),
        _ => Err(ChunkError::MissingHeader { len: chunk.len() }),
    }
}

impl XorIter<'_> {
    /// The sample count the chunk's header announces.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    /// Appends every sample not yet read to `ts` and `vs` in one tight loop, several times
    /// faster than iterating. Returns how many were appended. On error nothing is appended
    /// (both vectors keep their old lengths) and the iterator is finished.
    pub fn decode_into(
        &mut self,
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Result<usize, ChunkError> {
        self.decode_into_with(flat::Loop::best(), ts, vs)
    }

    /// As [`decode_into`](Self::decode_into), through the given build of the fast loop.
    fn decode_into_with(
        &mut self,
        with: flat::Loop,
        ts: &mut Vec<i64>,
        vs: &mut Vec<f64>,
    ) -> Result<usize, ChunkError> {
        if self.failed {
            return Ok(0);
        }
        let (old_t, old_v) = (ts.len(), vs.len());
        let left = usize::from(self.total - self.read);
        // Sized up front so the loop writes through two slices: no capacity check or length
        // store per sample.
        ts.resize(old_t + left, 0);
        vs.resize(old_v + left, 0.0);
        let result = self.fill(with, &mut ts[old_t..], &mut vs[old_v..]);
        if let Err(f) = result {
            self.failed = true;
            ts.truncate(old_t);
            vs.truncate(old_v);
            return Err(self.error(f));
        }
        Ok(left)
    }

    /// Decodes into the slices, exactly one sample per slot; `read` counts the samples done.
    fn fill(&mut self, with: flat::Loop, ts: &mut [i64], vs: &mut [f64]) -> Result<(), Fault> {
        let n = ts.len().min(vs.len());
        let (ts, vs) = (&mut ts[..n], &mut vs[..n]);
        let mut skip = 0;
        // The first two samples have their own encodings; the rest is the steady state.
        while self.read < 2 && skip < n {
            self.step()?;
            self.read += 1;
            ts[skip] = self.d.t;
            vs[skip] = f64::from_bits(self.d.v);
            skip += 1;
        }
        let (ts, vs) = (&mut ts[skip..], &mut vs[skip..]);
        if ts.is_empty() {
            return Ok(());
        }
        let d = self.d;
        if d.r.data.len() <= flat::MAX_BODY {
            let mut st = flat::State {
                pos: 8 * d.r.next - d.r.avail as usize,
                t: d.t,
                v: d.v,
                t_delta: d.t_delta,
                leading: d.leading.into(),
                trailing: d.trailing.into(),
            };
            if flat::fill(with, d.r.data, &mut st, ts, vs) {
                // The slots number at most the u16 sample count.
                self.read += ts.len() as u16;
                self.d = Decoder {
                    r: BitReader::at(d.r.data, st.pos),
                    t: st.t,
                    v: st.v,
                    t_delta: st.t_delta,
                    leading: st.leading as u8,
                    trailing: st.trailing as u8,
                };
                return Ok(());
            }
        }
        // Too long for the fast path, or truncated or corrupt: the reference way, which also
        // names the exact error.
        let mut d = d;
        let mut done = 0u16;
        let mut result = Ok(());
        for (t, v) in ts.iter_mut().zip(vs.iter_mut()) {
            if let Err(f) = d.regular() {
                result = Err(f);
                break;
            }
            done += 1;
            *t = d.t;
            *v = f64::from_bits(d.v);
        }
        self.d = d;
        self.read += done;
        result
    }

    fn error(&self, f: Fault) -> ChunkError {
        let sample = self.read;
        match f {
            Fault::Truncated => ChunkError::Truncated {
                sample,
                total: self.total,
            },
            Fault::VarintOverflow => ChunkError::VarintOverflow { sample },
            Fault::BadBitCounts {
                leading,
                significant,
            } => ChunkError::BadBitCounts {
                sample,
                leading,
                significant,
            },
        }
    }

    #[inline(always)]
    fn step(&mut self) -> Result<(), Fault> {
        match self.read {
            0 => self.d.first(),
            1 => self.d.second(),
            _ => self.d.regular(),
        }
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.read >= self.total {
            return None;
        }
        match self.step() {
            Ok(()) => {
                self.read += 1;
                Some(Ok((self.d.t, f64::from_bits(self.d.v))))
            }
            Err(f) => {
                self.failed = true;
                Some(Err(self.error(f)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed {
            return (0, Some(0));
        }
        let left = usize::from(self.total - self.read);
        (0, Some(left))
    }
}

// === impl XorEncoder ===

/// Writes samples into an XOR chunk exactly as Prometheus's appender does.
#[derive(Debug, Clone)]
pub struct XorEncoder {
    buf: Vec<u8>,
    /// Bits written after the header.
    bits: usize,
    num: u16,
    t: i64,
    v: u64,
    t_delta: u64,
    /// 0xff until the first XOR with a non-zero result sets a window.
    leading: u8,
    trailing: u8,
}

impl Default for XorEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl XorEncoder {
    pub fn new() -> Self {
        XorEncoder {
            buf: vec![0, 0],
            bits: 0,
            num: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    pub fn len(&self) -> u16 {
        self.num
    }

    pub fn is_empty(&self) -> bool {
        self.num == 0
    }

    /// The chunk so far, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends a sample; timestamps are expected to increase but anything round-trips.
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkFull> {
        if self.num == u16::MAX {
            return Err(ChunkFull);
        }
        let v = v.to_bits();
        let mut t_delta = 0;
        match self.num {
            0 => {
                let zigzag = ((t << 1) ^ (t >> 63)) as u64;
                self.write_uvarint(zigzag);
                self.write(v, 64);
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                self.write_uvarint(t_delta);
                self.write_value(v);
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.write(0, 1);
                } else if fits(dod, 14) {
                    self.write(0b10, 2);
                    self.write(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.write(0b110, 3);
                    self.write(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.write(0b1110, 4);
                    self.write(dod as u64, 20);
                } else {
                    self.write(0b1111, 4);
                    self.write(dod as u64, 64);
                }
                self.write_value(v);
            }
        }
        self.t = t;
        self.v = v;
        self.t_delta = t_delta;
        self.num += 1;
        self.buf[..2].copy_from_slice(&self.num.to_be_bytes());
        Ok(())
    }

    fn write_value(&mut self, v: u64) {
        let xor = v ^ self.v;
        if xor == 0 {
            self.write(0, 1);
            return;
        }
        self.write(1, 1);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.write(0, 1);
            let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.write(xor >> self.trailing, significant);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.write(1, 1);
        self.write(u64::from(leading), 5);
        let significant = 64 - u32::from(leading) - u32::from(trailing);
        // 64 significant bits are written as 0: 6 bits cannot hold 64, and 0 never occurs.
        self.write(u64::from(significant) & 0x3f, 6);
        self.write(xor >> trailing, significant);
    }

    fn write_uvarint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.write((x & 0x7f) | 0x80, 8);
            x >>= 7;
        }
        self.write(x, 8);
    }

    /// Writes the low `n` bits of `value` (1..=64), most significant first.
    fn write(&mut self, value: u64, mut n: u32) {
        while n > 0 {
            let used = (self.bits & 7) as u32;
            if used == 0 {
                self.buf.push(0);
            }
            let free = 8 - used;
            let take = free.min(n);
            let chunk = (value >> (n - take)) & ((1u64 << take) - 1);
            if let Some(last) = self.buf.last_mut() {
                *last |= (chunk << (free - take)) as u8;
            }
            n -= take;
            self.bits += take as usize;
        }
    }
}

/// Whether a delta of deltas fits an `n`-bit bucket (the range Prometheus uses).
fn fits(x: i64, n: u32) -> bool {
    -((1i64 << (n - 1)) - 1) <= x && x <= 1i64 << (n - 1)
}

/// Encodes samples into one chunk (at most 65 535).
pub fn encode_xor(samples: &[(i64, f64)]) -> Result<Vec<u8>, ChunkFull> {
    let mut enc = XorEncoder::new();
    for &(t, v) in samples {
        enc.append(t, v)?;
    }
    Ok(enc.into_bytes())
}

mod flat;

#[cfg(test)]
pub(crate) mod tests;
