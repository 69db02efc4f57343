//! Request framing: a 4-byte big-endian size, then that many bytes of request.
//!
//! Kafka's size is a signed int32. A negative size, or one above `socket.request.max.bytes`,
//! is a broken frame: the connection is closed, as Kafka closes it. The decoder never reserves
//! more than [`READ_CHUNK`] ahead of the bytes that have actually arrived, so a client that
//! claims a 100 MiB frame and sends nothing costs us nothing.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// The largest amount of buffer space reserved in one step while a frame is arriving.
const READ_CHUNK: usize = 1 << 20;

/// The smallest request: api key (2), api version (2), correlation id (4), client id length (2).
pub const MIN_REQUEST_SIZE: usize = 10;

/// Why a connection's byte stream cannot be framed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("frame size {size} is larger than socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("frame size {0} is too small for a request header")]
    TooSmall(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into request frames (the size prefix removed).
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max: usize,
}

impl FrameCodec {
    /// A codec that refuses frames larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameCodec { max }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if size < 0 {
            return Err(FrameError::Negative(size));
        }
        let size = size as usize;
        if size > self.max {
            return Err(FrameError::TooLarge { size, max: self.max });
        }
        if size < MIN_REQUEST_SIZE {
            return Err(FrameError::TooSmall(size));
        }
        let total = 4 + size;
        if src.len() < total {
            src.reserve((total - src.len()).min(READ_CHUNK));
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size).freeze()))
    }
}

/// The first fields of every request header, read without decoding anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPeek {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPeek {
    /// Reads api key, version and correlation id. `None` if the frame is shorter than 8 bytes.
    pub fn read(frame: &[u8]) -> Option<Self> {
        if frame.len() < 8 {
            return None;
        }
        Some(HeaderPeek {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(size: i32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&size.to_be_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn whole_frames_come_out_and_partial_ones_wait() {
        let mut c = FrameCodec::new(100);
        let mut buf = framed(12, &[7u8; 12]);
        buf.extend_from_slice(&framed(10, &[1u8; 5])); // second frame still arriving
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().len(), 12);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[1u8; 5]);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().len(), 10);
        assert!(buf.is_empty());
    }

    #[test]
    fn broken_sizes_are_errors() {
        let mut c = FrameCodec::new(100);
        assert!(matches!(c.decode(&mut framed(-1, &[])), Err(FrameError::Negative(-1))));
        assert!(matches!(c.decode(&mut framed(101, &[])), Err(FrameError::TooLarge { .. })));
        assert!(matches!(c.decode(&mut framed(3, &[0; 3])), Err(FrameError::TooSmall(3))));
    }

    #[test]
    fn a_huge_claim_reserves_only_a_chunk() {
        let mut c = FrameCodec::new(usize::MAX);
        let mut buf = framed(i32::MAX, &[0; 16]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= READ_CHUNK + 64);
    }
}
