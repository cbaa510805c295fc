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
//! The decoder is a lazy iterator over the borrowed chunk bytes: no allocation, and a typed
//! error instead of a panic when the bytes end early or contradict themselves.

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

/// Reads bit fields of up to 64 bits, most significant bit first.
#[derive(Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    /// Next bit to read.
    pos: usize,
    /// Bits in `data`.
    end: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            end: data.len() * 8,
        }
    }

    /// The 64 bits starting at `pos`, zero-padded past the end.
    #[inline]
    fn peek64(&self) -> u64 {
        let byte = self.pos >> 3;
        let shift = (self.pos & 7) as u32;
        let (hi, next) = match self.data.get(byte..byte + 9) {
            Some(w) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(&w[..8]);
                (u64::from_be_bytes(word), w[8])
            }
            None => {
                let mut word = [0u8; 9];
                let rest = self.data.get(byte..).unwrap_or(&[]);
                let n = rest.len().min(9);
                word[..n].copy_from_slice(&rest[..n]);
                let mut hi = [0u8; 8];
                hi.copy_from_slice(&word[..8]);
                (u64::from_be_bytes(hi), word[8])
            }
        };
        // `next` fills the low bits vacated by the shift; with shift 0 it contributes nothing.
        (hi << shift) | (u64::from(next) >> (8 - shift))
    }

    /// `n` bits (1..=64) as the low bits of the result, or None when fewer remain.
    #[inline]
    fn read(&mut self, n: u32) -> Option<u64> {
        if self.end - self.pos < n as usize {
            return None;
        }
        let w = self.peek64();
        self.pos += n as usize;
        Some(if n >= 64 { w } else { w >> (64 - n) })
    }

    #[inline]
    fn bit(&mut self) -> Option<bool> {
        if self.pos >= self.end {
            return None;
        }
        let b = self.data[self.pos >> 3] & (0x80 >> (self.pos & 7)) != 0;
        self.pos += 1;
        Some(b)
    }
}

// === impl XorIter ===

/// The samples of one XOR chunk, decoded lazily from borrowed bytes.
#[derive(Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

/// Starts decoding a chunk (header included).
pub fn xor_samples(chunk: &[u8]) -> Result<XorIter<'_>, ChunkError> {
    match chunk {
        [a, b, rest @ ..] => Ok(XorIter {
            r: BitReader::new(rest),
            total: u16::from_be_bytes([*a, *b]),
            read: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
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

    fn truncated(&self) -> ChunkError {
        ChunkError::Truncated {
            sample: self.read,
            total: self.total,
        }
    }

    #[inline]
    fn bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        match self.r.read(n) {
            Some(v) => Ok(v),
            None => Err(self.truncated()),
        }
    }

    #[inline]
    fn bit(&mut self) -> Result<bool, ChunkError> {
        match self.r.bit() {
            Some(v) => Ok(v),
            None => Err(self.truncated()),
        }
    }

    fn uvarint(&mut self) -> Result<u64, ChunkError> {
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
        Err(ChunkError::VarintOverflow { sample: self.read })
    }

    fn step(&mut self) -> Result<(), ChunkError> {
        match self.read {
            0 => {
                let u = self.uvarint()?;
                self.t = ((u >> 1) as i64) ^ -((u & 1) as i64);
                self.v = self.bits(64)?;
                Ok(())
            }
            1 => {
                self.t_delta = self.uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.value()
            }
            _ => {
                if self.regular_step() {
                    return Ok(());
                }
                let dod = if !self.bit()? {
                    0
                } else if !self.bit()? {
                    self.signed(14)?
                } else if !self.bit()? {
                    self.signed(17)?
                } else if !self.bit()? {
                    self.signed(20)?
                } else {
                    self.bits(64)? as i64
                };
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.value()
            }
        }
    }

    /// The common case in one read: the interval is unchanged (`0`) and the value is either
    /// unchanged (`0`) or fits the previous zero window (`10` + bits). False, having read
    /// nothing, for anything else or near the end of the chunk.
    #[inline]
    fn regular_step(&mut self) -> bool {
        if self.r.end - self.r.pos < 64 {
            return false;
        }
        let w = self.r.peek64();
        if w >> 62 == 0 {
            self.r.pos += 2;
        } else if w >> 61 == 0b010 {
            let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
            if significant > 61 {
                return false;
            }
            let xor = (w << 3) >> (64 - significant);
            self.v ^= xor << self.trailing;
            self.r.pos += 3 + significant as usize;
        } else {
            return false;
        }
        self.t = self.t.wrapping_add(self.t_delta as i64);
        true
    }

    /// An `n`-bit delta of deltas; values above 2^(n-1) stand for negatives.
    #[inline]
    fn signed(&mut self, n: u32) -> Result<i64, ChunkError> {
        let b = self.bits(n)? as i64;
        Ok(if b > 1 << (n - 1) { b - (1 << n) } else { b })
    }

    #[inline]
    fn value(&mut self) -> Result<(), ChunkError> {
        if !self.bit()? {
            return Ok(());
        }
        if self.bit()? {
            let leading = self.bits(5)? as u8;
            let significant = match self.bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            if leading + significant > 64 {
                return Err(ChunkError::BadBitCounts {
                    sample: self.read,
                    leading,
                    significant,
                });
            }
            self.leading = leading;
            self.trailing = 64 - leading - significant;
        }
        let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let xor = self.bits(significant)?;
        self.v ^= xor << self.trailing;
        Ok(())
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
                Some(Ok((self.t, f64::from_bits(self.v))))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
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

#[cfg(test)]
pub(crate) mod tests;
