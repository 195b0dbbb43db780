//! Deterministic test data of any size.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::ReaderStream;

/// `reader`'s bytes as the chunks a tier's put takes, 64 KiB at a time, as a client's
/// body arrives.
pub fn chunks<R: AsyncRead>(reader: R) -> ReaderStream<R> {
    ReaderStream::with_capacity(reader, 64 << 10)
}

/// A reader producing `len` deterministic pseudo-random bytes from `seed` without
/// holding them in memory, so tests can stream objects of any size.
pub struct PatternReader {
    state: u64,
    remaining: u64,
}

impl PatternReader {
    pub fn new(seed: u64, len: u64) -> Self {
        PatternReader {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            remaining: len,
        }
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining).min(256 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for byte in chunk.iter_mut() {
            // xorshift64: cheap, deterministic, and not compressible.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
        self.remaining -= n as u64;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// The MD5 of `data`, as a `Content-MD5` declares it.
pub fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

/// What a put of `data` reports: its size and checksum.
pub fn digest_of(data: &[u8]) -> strata::storage::Digest {
    let mut hasher = strata::storage::ContentHasher::new();
    hasher.update(data);
    hasher.finish()
}

/// The bytes [`PatternReader`] produces, collected (for small objects only).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut reader = PatternReader::new(seed, len as u64);
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut storage = vec![0u8; 256 * 1024];
    loop {
        let mut buf = ReadBuf::new(&mut storage);
        let _ = Pin::new(&mut reader).poll_read(&mut cx, &mut buf);
        if buf.filled().is_empty() {
            return out;
        }
        out.extend_from_slice(buf.filled());
    }
}
