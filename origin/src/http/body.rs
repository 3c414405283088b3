//! Streamed response bodies read from a file: plain ranges and `multipart/byteranges`.
//!
//! Bodies are read piece by piece (never the whole file in memory), pass through the bandwidth
//! cap, may get one byte flipped (the corrupt-bytes test switch), and are counted in the
//! served-bytes metrics as they leave.

use std::io::{self, SeekFrom};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use prometheus::IntCounter;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::faults::Faults;

/// A part of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Fixed bytes (multipart headers and delimiters).
    Static(Bytes),
    /// `len` bytes of the file from `offset`.
    File { offset: u64, len: u64 },
}

/// What a body is made of.
#[derive(Debug)]
pub struct BodySpec {
    pub segments: Vec<Segment>,
    /// Offset, among the file bytes of the body, of a byte to flip.
    pub corrupt_at: Option<u64>,
}

impl BodySpec {
    /// Total body length.
    pub fn total_len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Static(b) => b.len() as u64,
                Segment::File { len, .. } => *len,
            })
            .sum()
    }

    /// Bytes taken from the file.
    pub fn file_len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                if let Segment::File { len, .. } = s {
                    *len
                } else {
                    0
                }
            })
            .sum()
    }

    /// One file range.
    pub fn single(offset: u64, len: u64) -> Self {
        BodySpec {
            segments: vec![Segment::File { offset, len }],
            corrupt_at: None,
        }
    }

    /// `multipart/byteranges` of inclusive `ranges` of a resource of `total` bytes.
    pub fn multipart(
        ranges: &[(u64, u64)],
        total: u64,
        boundary: &str,
        content_type: &str,
    ) -> Self {
        let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
        for &(s, e) in ranges {
            segments.push(Segment::Static(Bytes::from(format!(
                "--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {s}-{e}/{total}\r\n\r\n"
            ))));
            segments.push(Segment::File {
                offset: s,
                len: e - s + 1,
            });
            segments.push(Segment::Static(Bytes::from_static(b"\r\n")));
        }
        segments.push(Segment::Static(Bytes::from(format!("--{boundary}--\r\n"))));
        BodySpec {
            segments,
            corrupt_at: None,
        }
    }
}

/// The body of a HEAD answer: announces `len` bytes (so `Content-Length` is right) and sends
/// none; actix-web does not send bodies of HEAD answers.
pub fn head_body(
    len: u64,
) -> actix_web::body::SizedStream<futures::stream::Empty<Result<Bytes, io::Error>>> {
    actix_web::body::SizedStream::new(len, futures::stream::empty())
}

struct StreamState {
    file: tokio::fs::File,
    segments: std::vec::IntoIter<Segment>,
    current: Option<(u64, u64)>,
    file_pos: Option<u64>,
    file_bytes_sent: u64,
    corrupt_at: Option<u64>,
    faults: Arc<Faults>,
    counter: IntCounter,
}

/// The body as a stream of pieces.
pub fn stream(
    file: tokio::fs::File,
    spec: BodySpec,
    faults: Arc<Faults>,
    counter: IntCounter,
) -> impl Stream<Item = Result<Bytes, io::Error>> {
    let st = StreamState {
        file,
        segments: spec.segments.into_iter(),
        current: None,
        file_pos: None,
        file_bytes_sent: 0,
        corrupt_at: spec.corrupt_at,
        faults,
        counter,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        loop {
            if let Some((offset, left)) = st.current {
                if left == 0 {
                    st.current = None;
                    continue;
                }
                if st.file_pos != Some(offset) {
                    st.file.seek(SeekFrom::Start(offset)).await?;
                }
                let want = left.min(st.faults.piece_size() as u64) as usize;
                st.faults.throttle(want).await;
                let mut buf = BytesMut::zeroed(want);
                let mut got = 0;
                while got < want {
                    let n = st.file.read(&mut buf[got..]).await?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shorter than expected",
                        ));
                    }
                    got += n;
                }
                if let Some(at) = st.corrupt_at {
                    if (st.file_bytes_sent..st.file_bytes_sent + want as u64).contains(&at) {
                        buf[(at - st.file_bytes_sent) as usize] ^= 0xFF;
                    }
                }
                st.file_bytes_sent += want as u64;
                st.file_pos = Some(offset + want as u64);
                st.current = Some((offset + want as u64, left - want as u64));
                st.counter.inc_by(want as u64);
                return Ok(Some((buf.freeze(), st)));
            }
            match st.segments.next() {
                None => return Ok(None),
                Some(Segment::Static(b)) => return Ok(Some((b, st))),
                Some(Segment::File { offset, len }) => st.current = Some((offset, len)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultConfig;
    use futures::TryStreamExt;

    async fn collect(spec: BodySpec, data: &[u8], faults: FaultConfig) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, data).expect("write");
        let f = tokio::fs::File::open(&p).await.expect("open");
        let c = IntCounter::new("c", "c").expect("counter");
        let s = stream(f, spec, Arc::new(Faults::new(faults)), c.clone());
        let parts: Vec<Bytes> = s.try_collect().await.expect("stream");
        parts.concat()
    }

    #[tokio::test]
    async fn multipart_body_has_every_part() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let spec = BodySpec::multipart(
            &[(0, 9), (5000, 9999)],
            10_000,
            "B",
            "application/octet-stream",
        );
        let len = spec.total_len();
        let body = collect(spec, &data, FaultConfig::default()).await;
        assert_eq!(body.len() as u64, len);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-9/10000\r\n\r\n"));
        assert!(text.ends_with("\r\n--B--\r\n"));
        assert!(body.windows(5000).any(|w| w == &data[5000..]));
    }

    #[tokio::test]
    async fn corrupts_exactly_one_byte() {
        let data = vec![7u8; 600_000];
        let mut spec = BodySpec::single(100, 500_000);
        spec.corrupt_at = Some(300_000);
        let body = collect(spec, &data, FaultConfig::default()).await;
        assert_eq!(body.len(), 500_000);
        let diffs: Vec<usize> = (0..body.len()).filter(|&i| body[i] != 7).collect();
        assert_eq!(diffs, vec![300_000]);
    }
}
