//! The frames of a STREAMED_XOR_CHUNKS response: each is the message length as an unsigned
//! varint, the CRC-32C (Castagnoli) of the message as 4 big-endian bytes, then the
//! `ChunkedReadResponse` message itself. The decoder is fed the body as it arrives and hands
//! out whole, checked frames; bytes are copied once into its buffer and the frames (and the
//! chunk data decoded from them) share that buffer.

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

use super::error::RemoteReadError;
use super::proto::ChunkedReadResponse;

/// Limits for one streamed response.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest message a frame may announce.
    pub max_frame_bytes: usize,
    /// Largest whole body.
    pub max_response_bytes: usize,
}

/// Incremental frame decoder: `push` body bytes, take frames with `next_frame`, and call
/// `finish` at the end of the body.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    limits: FrameLimits,
    received: usize,
}

impl FrameDecoder {
    pub fn new(limits: FrameLimits) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            limits,
            received: 0,
        }
    }

    /// Appends body bytes; fails once the body passes the response limit.
    pub fn push(&mut self, data: &[u8]) -> Result<(), RemoteReadError> {
        self.received = self.received.saturating_add(data.len());
        if self.received > self.limits.max_response_bytes {
            return Err(RemoteReadError::ResponseTooLarge {
                limit: self.limits.max_response_bytes,
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next whole frame's message bytes, CRC checked, or None until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, RemoteReadError> {
        let Some((len, header)) = read_uvarint(&self.buf) else {
            return Ok(None);
        };
        if len > self.limits.max_frame_bytes as u64 {
            return Err(RemoteReadError::FrameTooLarge {
                len,
                limit: self.limits.max_frame_bytes,
            });
        }
        // Fits usize: bounded by max_frame_bytes.
        let len = len as usize;
        if self.buf.len() < header + 4 + len {
            // Reserve now so the rest of the frame lands without repeated regrowth.
            self.buf.reserve(header + 4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(header);
        let expected = self.buf.get_u32();
        let message = self.buf.split_to(len).freeze();
        let got = crc32c::crc32c(&message);
        if got != expected {
            return Err(RemoteReadError::CrcMismatch { expected, got });
        }
        Ok(Some(message))
    }

    /// The next frame decoded as a `ChunkedReadResponse`.
    pub fn next_message(&mut self) -> Result<Option<ChunkedReadResponse>, RemoteReadError> {
        match self.next_frame()? {
            Some(bytes) => Ok(Some(ChunkedReadResponse::decode(bytes)?)),
            None => Ok(None),
        }
    }

    /// Checks that the body ended on a frame boundary.
    pub fn finish(&self) -> Result<(), RemoteReadError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RemoteReadError::TruncatedFrame {
                have: self.buf.len(),
            })
        }
    }
}

/// A uvarint at the start of `buf` and its length in bytes; None when `buf` ends inside it.
/// A varint longer than 64 bits reads as `u64::MAX`, which no frame limit admits.
fn read_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Some((u64::MAX, 10));
        }
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// Writes one frame (for tests and for serving remote read).
pub fn encode_frame(message: &[u8], out: &mut Vec<u8>) {
    let mut len = message.len() as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(&crc32c::crc32c(message).to_be_bytes());
    out.extend_from_slice(message);
}

/// Decodes a whole streamed body at once.
pub fn decode_frames(
    body: &[u8],
    limits: FrameLimits,
) -> Result<Vec<ChunkedReadResponse>, RemoteReadError> {
    let mut dec = FrameDecoder::new(limits);
    dec.push(body)?;
    let mut out = Vec::new();
    while let Some(m) = dec.next_message()? {
        out.push(m);
    }
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests;
