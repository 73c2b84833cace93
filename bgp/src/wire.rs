//! A bounds-checked cursor over a message. Every read reports the absolute offset of a short read,
//! so errors can name the byte where things went wrong.

use crate::error::{DecodeError, ErrorKind};

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` from the start of the message.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Takes `n` bytes, or fails with `kind` at the current offset.
    pub(crate) fn take(
        &mut self,
        n: usize,
        kind: impl FnOnce() -> ErrorKind,
    ) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::new(self.offset(), kind()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Splits off a sub-reader of `n` bytes.
    pub(crate) fn sub(
        &mut self,
        n: usize,
        kind: impl FnOnce() -> ErrorKind,
    ) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let s = self.take(n, kind)?;
        Ok(Reader::new(s, base))
    }

    pub(crate) fn u8(&mut self, kind: impl FnOnce() -> ErrorKind) -> Result<u8, DecodeError> {
        Ok(self.take(1, kind)?[0])
    }

    pub(crate) fn u16(&mut self, kind: impl FnOnce() -> ErrorKind) -> Result<u16, DecodeError> {
        let b = self.take(2, kind)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, kind: impl FnOnce() -> ErrorKind) -> Result<u32, DecodeError> {
        let b = self.take(4, kind)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads a big-endian u16/u32 from a slice known to be long enough.
pub(crate) fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Converts a length to a u8/u16 length field or reports which field overflowed.
pub(crate) fn len_u8(len: usize, what: &'static str) -> Result<u8, crate::EncodeError> {
    u8::try_from(len).map_err(|_| crate::EncodeError::FieldTooLong { what, len })
}

pub(crate) fn len_u16(len: usize, what: &'static str) -> Result<u16, crate::EncodeError> {
    u16::try_from(len).map_err(|_| crate::EncodeError::FieldTooLong { what, len })
}
