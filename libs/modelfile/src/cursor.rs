//! A bounds-checked reader over a prefix of a file. Every read says what it is reading, so a short
//! read becomes either [`Error::Incomplete`] (more of the file exists; the caller should fetch it) or
//! [`Error::Truncated`] (the file itself ends there), and counts are checked against the bytes that
//! can still follow before anything is allocated or walked.

use crate::Error;

/// A position in `buf`, which holds the first `buf.len()` bytes of a file of `file_len` bytes
/// (unknown when `None`).
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    file_len: Option<u64>,
    /// Reads past the prefix asking for more than this many bytes in total are refused.
    max_header: u64,
    pub(crate) big_endian: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], file_len: Option<u64>, max_header: u64) -> Self {
        Cursor {
            buf,
            pos: 0,
            file_len,
            max_header,
            big_endian: false,
        }
    }

    /// The current byte offset in the file.
    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// How many bytes can still follow the current position: up to the end of the file when its
    /// length is known, otherwise up to the header limit (or the prefix, if longer).
    pub(crate) fn available(&self) -> u64 {
        let end = match self.file_len {
            Some(len) => len.max(self.buf.len() as u64),
            None => self.max_header.max(self.buf.len() as u64),
        };
        end.saturating_sub(self.pos as u64)
    }

    /// Refuses `count` items of at least `min_size` bytes each when they cannot fit in what is left.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &'static str,
        offset: u64,
    ) -> Result<(), Error> {
        let available = self.available();
        match count.checked_mul(min_size) {
            Some(need) if need <= available => Ok(()),
            _ => Err(Error::CountTooLarge {
                offset,
                what,
                count,
                available,
            }),
        }
    }

    /// The error for a read of `[offset, end)` that goes past the prefix.
    fn short(&self, offset: u64, end: u64, what: &'static str) -> Error {
        match self.file_len {
            Some(file_len) if end > file_len => Error::Truncated {
                offset,
                what,
                needed: end,
                file_len,
            },
            _ if end > self.max_header => Error::HeaderTooLarge {
                offset,
                needed: end,
                max: self.max_header,
            },
            _ => Error::Incomplete { needed: end },
        }
    }

    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Error> {
        let start = self.pos as u64;
        let end = start.checked_add(n).ok_or(Error::CountTooLarge {
            offset: start,
            what,
            count: n,
            available: self.available(),
        })?;
        if end > self.buf.len() as u64 {
            return Err(self.short(start, end, what));
        }
        // `end <= buf.len()`, so it fits in usize.
        let slice = &self.buf[self.pos..end as usize];
        self.pos = end as usize;
        Ok(slice)
    }

    /// The bytes of the prefix not yet read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Skips `n` bytes of [`Cursor::rest`].
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Bytes `[start, end)` already read through this cursor.
    pub(crate) fn span(&self, start: u64, end: u64) -> &'a [u8] {
        let end = (end as usize).min(self.pos);
        let start = (start as usize).min(end);
        &self.buf[start..end]
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let b = self.array(what)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// A GGUF string: u64 length, then that many bytes (not yet checked for UTF-8).
    pub(crate) fn raw_string(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let len = self.u64(what)?;
        let at = self.pos();
        self.check_count(len, 1, what, at)?;
        self.take(len, what)
    }

    /// A GGUF string that must be valid UTF-8.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a str, Error> {
        let bytes = self.raw_string(what)?;
        let start = self.pos() - bytes.len() as u64;
        std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            offset: start + e.valid_up_to() as u64,
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_read_in_a_prefix_asks_for_more() {
        let mut c = Cursor::new(&[1, 2, 3], Some(100), 1000);
        assert_eq!(c.u64("x"), Err(Error::Incomplete { needed: 8 }));
    }

    #[test]
    fn short_read_at_the_end_of_the_file_is_truncation() {
        let mut c = Cursor::new(&[1, 2, 3], Some(3), 1000);
        assert!(matches!(
            c.u32("thing"),
            Err(Error::Truncated {
                offset: 0,
                what: "thing",
                needed: 4,
                file_len: 3
            })
        ));
    }

    #[test]
    fn short_read_past_the_header_limit_is_refused() {
        let mut c = Cursor::new(&[0; 16], None, 32);
        c.take(8, "a").expect("in prefix");
        assert!(matches!(
            c.take(100, "big"),
            Err(Error::HeaderTooLarge { needed: 108, .. })
        ));
    }

    #[test]
    fn huge_string_length_is_refused_before_reading() {
        let mut buf = u64::MAX.to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        let len = buf.len() as u64;
        let mut c = Cursor::new(&buf, Some(len), 1 << 20);
        assert!(matches!(
            c.string("key"),
            Err(Error::CountTooLarge {
                offset: 8,
                count: u64::MAX,
                available: 3,
                ..
            })
        ));
    }

    #[test]
    fn big_endian_reads() {
        let mut c = Cursor::new(&[0, 0, 0, 3], None, 100);
        c.big_endian = true;
        assert_eq!(c.u32("v"), Ok(3));
    }
}
