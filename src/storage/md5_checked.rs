//! A body that must have the MD5 its client declared, checked as it is read, for the
//! writes whose server does not check it (a directory; an S3 multipart upload, whose
//! parts the server checks one by one but never as a whole).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use md5::{Digest as _, Md5};
use tokio::io::{AsyncRead, ReadBuf};

use super::Md5Sum;

/// The error a body that does not match its declared MD5 ends with.
pub fn md5_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the body does not match its Content-MD5",
    )
}

/// Reads through `inner`, hashing; at its end, [`md5_mismatch`] instead of the end
/// when the body does not have the MD5 expected.
pub struct Md5Checked<R> {
    inner: R,
    /// The hash so far and the MD5 expected; `None` when there is nothing (left) to
    /// check.
    check: Option<(Md5, Md5Sum)>,
}

impl<R> Md5Checked<R> {
    /// `inner`, the rest of a body whose `first` bytes were read already, which must have
    /// MD5 `expected`; read through unchecked when `None`.
    pub fn after(first: &[u8], inner: R, expected: Option<Md5Sum>) -> Md5Checked<R> {
        Md5Checked {
            inner,
            check: expected.map(|md5| (Md5::new_with_prefix(first), md5)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Checked<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let (before, asked) = (buf.filled().len(), buf.remaining() > 0);
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if let Some((hasher, _)) = &mut this.check {
                hasher.update(read);
            }
        } else if asked
            && let Some((hasher, expected)) = this.check.take()
            && hasher.finalize().as_slice() != expected
        {
            return Poll::Ready(Err(md5_mismatch()));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn md5_of(bytes: &[u8]) -> Md5Sum {
        Md5::digest(bytes).into()
    }

    #[tokio::test]
    async fn a_body_with_its_md5_reads_to_its_end_and_another_fails_there() {
        let body = b"hello, world".as_slice();
        let mut read = Vec::new();
        Md5Checked::after(b"", body, Some(md5_of(b"hello, world")))
            .read_to_end(&mut read)
            .await
            .unwrap();
        assert_eq!(read, b"hello, world");
        // The first bytes, read before, count.
        let mut rest = Vec::new();
        Md5Checked::after(b"hello", &body[5..], Some(md5_of(b"hello, world")))
            .read_to_end(&mut rest)
            .await
            .unwrap();
        assert_eq!(rest, b", world");
        let err = Md5Checked::after(b"", body, Some(md5_of(b"hello, there")))
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Nothing declared: read through.
        let mut unchecked = Vec::new();
        Md5Checked::after(b"", body, None)
            .read_to_end(&mut unchecked)
            .await
            .unwrap();
        assert_eq!(unchecked, b"hello, world");
    }
}
