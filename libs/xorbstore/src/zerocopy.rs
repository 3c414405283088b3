//! Zero-copy writes to a plain TCP socket, for the peer server and the edge's HTTP data port: a
//! small header sent with `MSG_MORE` (so it leaves in the same segment as the payload that
//! follows), and a payload sent with `sendfile(2)` straight from a stored range file's page
//! cache into the socket ([`crate::RangeView::file_segment`]), without mapping or copying it
//! through user space. Both loop on partial writes and wait for the socket to become writable on
//! `EAGAIN` (tokio's readiness, so a slow reader never blocks a worker thread), at most `stall`
//! per wait. Linux only; elsewhere callers write through [`tokio::io::AsyncWrite`].
//!
//! The safe `rustix` wrappers are used, so this module needs no `unsafe`.

use std::fs::File;
use std::io;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes asked of one `sendfile(2)` call (the kernel caps a call near 2 GiB anyway).
const SENDFILE_MAX: usize = 1 << 30;

/// Why [`sendfile_all`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum SendFileError {
    /// `sendfile(2)` cannot send this file to this socket (`EINVAL`, `ENOSYS`); `sent` bytes
    /// went out before. The rest can be written another way.
    #[error("sendfile(2) is not supported here ({sent} bytes sent)")]
    Unsupported { sent: usize },
    /// The socket took nothing for the stall time.
    #[error("the peer stopped reading")]
    Stalled,
    /// The file ended early (stored range files never should).
    #[error("the file is shorter than the bytes to send")]
    FileEnded,
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<SendFileError> for io::Error {
    fn from(e: SendFileError) -> io::Error {
        match e {
            SendFileError::Io(e) => e,
            SendFileError::Stalled => io::Error::new(io::ErrorKind::TimedOut, "write stalled"),
            SendFileError::FileEnded => io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
            SendFileError::Unsupported { .. } => {
                io::Error::new(io::ErrorKind::Unsupported, e.to_string())
            }
        }
    }
}

/// Waits until `tcp` is writable, at most `stall`.
async fn writable(tcp: &TcpStream, stall: Duration) -> Result<(), SendFileError> {
    match tokio::time::timeout(stall, tcp.writable()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SendFileError::Stalled),
    }
}

/// Writes all of `bytes` to `tcp`, telling the kernel more data follows at once (`MSG_MORE`):
/// the bytes are held back until the next write fills the segment (or the socket is flushed by
/// a write without the flag).
pub async fn send_more(
    tcp: &TcpStream,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), SendFileError> {
    while !bytes.is_empty() {
        writable(tcp, stall).await?;
        let sent = tcp.try_io(Interest::WRITABLE, || {
            rustix::net::send(tcp, bytes, rustix::net::SendFlags::MORE).map_err(io::Error::from)
        });
        match sent {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` starting at `offset` to `tcp` with `sendfile(2)`.
pub async fn sendfile_all(
    tcp: &TcpStream,
    file: &File,
    mut offset: u64,
    len: usize,
    stall: Duration,
) -> Result<(), SendFileError> {
    let mut sent = 0usize;
    while sent < len {
        writable(tcp, stall).await?;
        let want = (len - sent).min(SENDFILE_MAX);
        // `sendfile` advances `offset` by what it sent.
        let r = tcp.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(tcp, file, Some(&mut offset), want).map_err(io::Error::from)
        });
        match r {
            Ok(0) => return Err(SendFileError::FileEnded),
            Ok(n) => sent += n.min(len - sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) =>
            {
                return Err(SendFileError::Unsupported { sent })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 977) as u8).collect()
    }

    /// A connected pair; the sender's send buffer as small as the kernel allows, so every
    /// large send is cut into many partial writes and waits on `EAGAIN`.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_send_buffer_size(4096).unwrap();
        let (c, s) = tokio::join!(sock.connect(addr), l.accept());
        (c.unwrap(), s.unwrap().0)
    }

    #[tokio::test]
    async fn sendfile_sends_exactly_the_segment_through_partial_writes() {
        let data = pattern(3 << 20);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let (tx, mut rx) = pair().await;
        let (off, len) = (12_345usize, (2 << 20) + 7);
        // The reader is slow: it starts after the sender has filled every buffer.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut got = vec![0u8; 3 + len + 2];
            rx.read_exact(&mut got).await.unwrap();
            got
        });
        let stall = std::time::Duration::from_secs(10);
        send_more(&tx, b"hdr", stall).await.unwrap();
        sendfile_all(&tx, &f, off as u64, len, stall).await.unwrap();
        send_more(&tx, b"ok", stall).await.unwrap();
        drop(tx); // closing pushes out what MSG_MORE held back

        let got = reader.await.unwrap();
        assert_eq!(&got[..3], b"hdr");
        assert!(got[3..3 + len] == data[off..off + len], "payload differs");
        assert_eq!(&got[3 + len..], b"ok");
    }

    #[tokio::test]
    async fn sendfile_past_the_end_of_the_file_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&pattern(1000)).unwrap();
        let (tx, mut rx) = pair().await;
        let drain = tokio::spawn(async move {
            let mut v = Vec::new();
            let _ = rx.read_to_end(&mut v).await;
            v.len()
        });
        let stall = std::time::Duration::from_secs(10);
        let e = sendfile_all(&tx, &f, 900, 200, stall).await.unwrap_err();
        assert!(matches!(e, SendFileError::FileEnded), "{e:?}");
        drop(tx);
        assert_eq!(drain.await.unwrap(), 100);
    }
}
