//! Bounds-checked reading of the integer encodings the TSDB files use: big-endian fixed
//! widths, Go's unsigned and zig-zag varints and length-prefixed byte strings. Every read
//! that would pass the end of the buffer, or a varint longer than 64 bits, is an error that
//! names where it happened.

use super::BlockError;

/// A decoding failure at byte `at` of the decoded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub at: usize,
    pub what: &'static str,
}

impl DecodeError {
    /// The error for the object `key`, whose byte 0 of this buffer lies at `base`.
    pub fn into_block(self, key: &str, base: u64) -> BlockError {
        BlockError::corrupt(key, base + self.at as u64, self.what)
    }
}

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Dec { b, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError { at: self.pos, what })
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return self.fail(what);
        }
        let out = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn be32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn be64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    pub fn uvarint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut x: u64 = 0;
        let mut shift = 0u32;
        for i in 0..10 {
            let Some(&b) = self.b.get(self.pos + i) else {
                return self.fail(what);
            };
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return self.fail(what);
                }
                self.pos += i + 1;
                return Ok(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        self.fail(what)
    }

    /// An unsigned varint that must fit 32 bits.
    pub fn uvarint32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let v = self.uvarint(what)?;
        u32::try_from(v).map_err(|_| DecodeError { at: start, what })
    }

    /// A zig-zag encoded signed varint.
    pub fn varint(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let u = self.uvarint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A uvarint length followed by that many bytes.
    pub fn uvarint_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let n = self.uvarint(what)?;
        if n > self.remaining() as u64 {
            self.pos = start;
            return self.fail(what);
        }
        self.bytes(n as usize, what)
    }

    /// Like [`Dec::uvarint_bytes`], as UTF-8.
    pub fn uvarint_str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let b = self.uvarint_bytes(what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError { at: start, what })
    }
}

/// Checks that the big-endian CRC32C stored in `stored` matches `data`.
pub(crate) fn crc_matches(data: &[u8], stored: &[u8]) -> bool {
    stored.len() == 4 && crc32c::crc32c(data).to_be_bytes() == stored
}

#[cfg(test)]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            let mut d = Dec::new(&b);
            assert_eq!(d.uvarint("v").unwrap(), v);
            assert_eq!(d.remaining(), 0);
        }
        for v in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Dec::new(&b).varint("v").unwrap(), v);
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert!(Dec::new(&[0x80, 0x80]).uvarint("v").is_err());
        assert!(Dec::new(&[]).uvarint("v").is_err());
        // Eleven bytes of continuation, and a tenth byte carrying more than bit 63.
        assert!(Dec::new(&[0xff; 11]).uvarint("v").is_err());
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(Dec::new(&ten).uvarint("v").is_err());
        let mut big = Vec::new();
        put_uvarint(&mut big, u64::from(u32::MAX) + 1);
        assert!(Dec::new(&big).uvarint32("v").is_err());
    }

    #[test]
    fn length_prefixed_bytes_past_the_end_are_errors() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 1 << 40);
        b.extend_from_slice(b"abc");
        let err = Dec::new(&b).uvarint_bytes("symbol").unwrap_err();
        assert_eq!(err.what, "symbol");
        assert!(Dec::new(&[4, b'a']).uvarint_str("s").is_err());
        assert!(Dec::new(&[2, 0xff, 0xfe]).uvarint_str("s").is_err());
        assert_eq!(Dec::new(&[2, b'h', b'i']).uvarint_str("s").unwrap(), "hi");
        assert!(Dec::new(&[1, 2, 3]).be32("x").is_err());
        assert!(Dec::new(&[1, 2, 3, 4, 5, 6, 7]).be64("x").is_err());
    }
}
