//! Reading render results under a byte cap: an HTTP body or a command's stdout is read in
//! chunks and abandoned as soon as it passes the cap, so a renderer that answers 50 MB costs
//! at most the cap in memory, and a worker at most `concurrency × cap` in renders.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// A body that passed its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// The cap.
    pub(crate) cap: usize,
}

/// Why a capped read stopped.
#[derive(Debug)]
pub(crate) enum ReadError<E> {
    /// The body passed the cap.
    TooLarge(TooLarge),
    /// The transport failed.
    Io(E),
}

/// Reads an HTTP response body, at most `cap` bytes: a `content-length` above it is refused
/// before reading, a body that grows past it is dropped at the chunk that passes it.
pub(crate) async fn http(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Bytes, ReadError<reqwest::Error>> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge(TooLarge { cap }));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Io)? {
        if buf.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge(TooLarge { cap }));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads a stream to its end, at most `cap` bytes.
pub(crate) async fn stream<R: AsyncRead + Unpin>(
    r: R,
    cap: usize,
) -> Result<Vec<u8>, ReadError<std::io::Error>> {
    let mut buf = Vec::new();
    // One byte past the cap tells a body of exactly `cap` bytes from a larger one.
    r.take(cap as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(ReadError::Io)?;
    if buf.len() > cap {
        return Err(ReadError::TooLarge(TooLarge { cap }));
    }
    Ok(buf)
}

/// Reads a stream to its end and keeps its last `keep` bytes (a command's stderr: the end
/// says why it failed, and the rest must be drained so the command does not block).
pub(crate) async fn tail<R: AsyncRead + Unpin>(mut r: R, keep: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 2 * keep {
                    buf.drain(..buf.len() - keep);
                }
            }
        }
    }
    if buf.len() > keep {
        buf.drain(..buf.len() - keep);
    }
    buf
}
