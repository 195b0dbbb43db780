//! Puts: one `PutObject` for a body that fits in one part, else a multipart upload with
//! parts in flight while the next is read; every part's CRC32C (or a one-request put's
//! declared MD5) sent and the server's receipt checked against it (see the parent
//! module).

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use hyper::body::{Frame, SizeHint};
use md5::{Digest as _, Md5};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::io::StreamReader;

use super::{PartUploads, S3Store};
use crate::storage::{
    ContentHasher, Declared, Digest, Md5Checked, Md5Sum, Result, Sha256Sum, StorageError,
    body_buffer, hex, md5_mismatch,
};

/// What the server's receipt of written bytes can be checked with, beyond a CRC32C it
/// reports.
pub(super) enum Sent<'a> {
    /// An MD5 the client declared (the server was sent it as Content-MD5).
    DeclaredMd5(&'a Md5Sum),
    /// An MD5 hashed while the bytes travelled.
    HashedMd5(String),
    /// The payload's SHA-256, signed: the server refuses bytes that do not match it, so
    /// what it stored needs no further check.
    SignedSha256,
    /// Nothing.
    Unknown,
}

impl Sent<'_> {
    /// What a write with `md5` declared and `payload` signed is checked with, before
    /// anything is hashed for it.
    fn before_hashing(md5: Option<&Md5Sum>, payload: PayloadHash) -> Sent<'_> {
        match (md5, payload) {
            (Some(md5), _) => Sent::DeclaredMd5(md5),
            (None, PayloadHash::Unsigned) => Sent::Unknown,
            (None, PayloadHash::Declared(_) | PayloadHash::Hashed) => Sent::SignedSha256,
        }
    }
}

impl S3Store {
    pub(in crate::storage) async fn put(
        &self,
        key: &str,
        body: impl Stream<Item = io::Result<Bytes>> + Unpin,
        content_type: &str,
        declared: Declared,
    ) -> Result<Digest> {
        let md5 = declared.md5;
        let payload = PayloadHash::of(self.sign_payload, declared);
        let part_size = self.transfer.part_size as usize;
        if let Some(length) = declared.length.filter(|&n| n < part_size as u64)
            && (md5.is_some() || matches!(payload, PayloadHash::Declared(_)))
        {
            return self
                .put_streamed(key, body, content_type, length, md5, payload)
                .await;
        }
        let mut body = StreamReader::new(body);
        let mut hasher = ContentHasher::new();
        let first = read_part(
            &mut body,
            part_size,
            body_buffer(declared.length, part_size),
        )
        .await?
        .freeze();
        hasher.update(&first);
        if first.len() < part_size {
            // One request: a declared MD5 goes with it and the server checks it, so a
            // CRC32C would only cost both sides a pass over the bytes.
            let crc32c = md5.is_none().then(|| crc32c(&first));
            let request = self
                .put_request(key, content_type, md5)
                .set_checksum_crc32_c(crc32c.clone())
                .body(SdkByteStream::from(first.clone()));
            let out = request
                .customize()
                .interceptor(PayloadSigning::of(payload))
                .send()
                .await
                .map_err(|e| self.refused_md5_or(md5.is_some(), "putting", key, e))?;
            self.check_receipt(
                key,
                &first,
                crc32c.as_deref(),
                Sent::before_hashing(md5.as_ref(), payload),
                out.checksum_crc32_c(),
                out.e_tag(),
            )?;
            return Ok(hasher.finish());
        }

        // Many requests: the server checks each part, never the whole.
        let mut body = Md5Checked::after(&first, body, md5);
        let upload_id = self.start_upload(key, content_type).await?;
        // Aborts the upload if this future is dropped part-way (a cancelled move), so
        // the server does not keep the parts of an upload nobody will complete.
        let mut guard = AbortOnDrop {
            store: self.clone(),
            key: key.to_string(),
            upload_id: upload_id.clone(),
            in_flight: JoinSet::new(),
            completion: None,
            armed: true,
        };
        let uploaded = async {
            let parts = self
                .upload_parts(
                    key,
                    &upload_id,
                    first,
                    &mut body,
                    &mut hasher,
                    &mut guard.in_flight,
                )
                .await?;
            // A task of its own: a completion the server has begun is not cut off
            // half-way when this put is dropped (s3s-fs then kept the parts of an upload
            // it had already forgotten); the guard waits for it instead.
            let (store, owned_key, owned_id) = (self.clone(), key.to_string(), upload_id.clone());
            let completion = guard.completion.insert(tokio::spawn(async move {
                store.complete_upload(&owned_key, &owned_id, parts).await
            }));
            completion.await.unwrap_or_else(|e| {
                Err(self.failure(format!("completing multipart upload of {key}: {e}")))
            })
        }
        .await;
        guard.armed = false;
        match uploaded {
            Ok(()) => Ok(hasher.finish()),
            Err(err) => {
                finish_parts(&mut guard.in_flight).await;
                self.abort_upload(key, &upload_id).await;
                Err(err)
            }
        }
    }

    /// A `PutObject` of `key`, with its MD5 when one was declared.
    fn put_request(
        &self,
        key: &str,
        content_type: &str,
        md5: Option<Md5Sum>,
    ) -> PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_md5(md5.map(aws_smithy_types::base64::encode))
    }

    /// One `PutObject` whose bytes go on to the server as they arrive, for a body of a
    /// declared `length` that the server checks whole (a declared MD5 or a signed SHA-256
    /// it was given): nothing needs them all in hand first. Such a request cannot be
    /// retried by the SDK; its failure fails the put, which its sender retries.
    async fn put_streamed(
        &self,
        key: &str,
        mut body: impl Stream<Item = io::Result<Bytes>> + Unpin,
        content_type: &str,
        length: u64,
        md5: Option<Md5Sum>,
        payload: PayloadHash,
    ) -> Result<Digest> {
        let (chunks, streamed) = StreamedBody::new(length);
        let request = self
            .put_request(key, content_type, md5)
            .content_length(i64::try_from(length).unwrap_or(i64::MAX))
            .body(SdkByteStream::from_body_1_x(streamed))
            .customize()
            .interceptor(PayloadSigning::of(payload))
            .send();
        // The body is read to its end whatever becomes of the request: its own checks
        // (the client's checksums, the size limit) fail it there. Its chunks go on as
        // they came, not copied.
        let pump = async move {
            let mut hasher = ContentHasher::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => {
                        hasher.update(&chunk);
                        // Once the request has ended, sends fail at once.
                        let _ = chunks.send(Ok(chunk)).await;
                    }
                    Err(e) => {
                        let _ = chunks
                            .send(Err(io::Error::new(e.kind(), e.to_string())))
                            .await;
                        return Err(StorageError::Body(e));
                    }
                }
            }
            Ok(hasher)
        };
        let (pumped, answer) = tokio::join!(pump, request);
        let digest = pumped?.finish();
        if digest.size != length {
            return Err(StorageError::Body(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the body is {} bytes, not the {length} declared",
                    digest.size
                ),
            )));
        }
        let out = answer.map_err(|e| self.refused_md5_or(md5.is_some(), "putting", key, e))?;
        self.check_receipt(
            key,
            &[],
            None,
            Sent::before_hashing(md5.as_ref(), payload),
            out.checksum_crc32_c(),
            out.e_tag(),
        )?;
        Ok(digest)
    }

    /// Best effort; an upload that cannot be aborted now is left to the bucket's
    /// lifecycle rules.
    pub(in crate::storage) async fn abort_upload(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, %key, error = %DisplayErrorContext(&e), "cannot abort multipart upload");
        }
    }

    pub(super) async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut (impl AsyncRead + Unpin),
        hasher: &mut ContentHasher,
        in_flight: &mut PartUploads,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = self.transfer.part_size as usize;
        let mut done: Vec<CompletedPart> = Vec::new();
        let mut part = first;
        let mut number = 1;
        loop {
            let store = self.clone();
            let (key_owned, upload_id_owned) = (key.to_string(), upload_id.to_string());
            in_flight.spawn(async move {
                store
                    .upload_part(
                        &key_owned,
                        &upload_id_owned,
                        number,
                        part,
                        Declared::default(),
                    )
                    .await
            });
            if in_flight.len() >= self.transfer.part_concurrency {
                done.push(self.join_part(key, in_flight).await?);
            }
            part = read_part(body, part_size, BytesMut::with_capacity(part_size))
                .await?
                .freeze();
            if part.is_empty() {
                break;
            }
            hasher.update(&part);
            number += 1;
        }
        while !in_flight.is_empty() {
            done.push(self.join_part(key, in_flight).await?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }

    /// Completes the multipart upload `upload_id` of `key` with its parts, in order.
    pub(super) async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("completing multipart upload of", key, e))?;
        Ok(())
    }

    /// Uploads part `number` of `key` (whose MD5 is `md5` when known already) and
    /// checks what the server received.
    pub(in crate::storage) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
        declared: Declared,
    ) -> Result<CompletedPart> {
        let md5 = declared.md5;
        let payload = PayloadHash::of(self.sign_payload, declared);
        let crc32c = crc32c(&part);
        let upload = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_crc32_c(&crc32c)
            .set_content_md5(md5.map(aws_smithy_types::base64::encode))
            .body(SdkByteStream::from(part.clone()))
            .customize()
            .interceptor(PayloadSigning::of(payload));
        // The MD5 an ETag may have to be compared with, hashed while the part travels
        // (off the async workers), unless the part is checked otherwise or the server is
        // known to report CRC32Cs.
        let sent = Sent::before_hashing(md5.as_ref(), payload);
        let hashing = (matches!(sent, Sent::Unknown)
            && !self.learnt.reports_crc32c.load(Ordering::Relaxed))
        .then(|| {
            let part = part.clone();
            tokio::task::spawn_blocking(move || hex_md5(&part))
        });
        let out = upload
            .send()
            .await
            .map_err(|e| self.refused_md5_or(md5.is_some(), "uploading a part of", key, e))?;
        let sent = match hashing {
            Some(hashing) => hashing.await.map_or(Sent::Unknown, Sent::HashedMd5),
            None => sent,
        };
        if out.checksum_crc32_c().is_some() {
            self.learnt.reports_crc32c.store(true, Ordering::Relaxed);
        }
        self.check_receipt(
            key,
            &part,
            Some(&crc32c),
            sent,
            out.checksum_crc32_c(),
            out.e_tag(),
        )?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_string))
            .checksum_crc32_c(crc32c)
            .build())
    }

    /// Checks the server's answer to a request that sent `bytes` (whose CRC32C is
    /// `crc32c` when one was sent; `sent` what else is known of them): the CRC32C it
    /// reports, else the signed SHA-256 or declared MD5 it checked them against, else an
    /// ETag that is an MD5 (32 hex digits; not one under SSE-KMS or of a multipart
    /// object), else nothing to compare. An MD5 the client declared is compared with such
    /// an ETag in any case: a server that ignores a Content-MD5 still tells what it
    /// stored.
    pub(super) fn check_receipt(
        &self,
        key: &str,
        bytes: &[u8],
        crc32c: Option<&str>,
        sent: Sent<'_>,
        reported_crc32c: Option<&str>,
        etag: Option<&str>,
    ) -> Result<()> {
        let etag_md5 = etag.and_then(md5_etag);
        if let (Sent::DeclaredMd5(declared), Some(etag)) = (&sent, etag_md5)
            && hex(*declared) != etag
        {
            return Err(StorageError::Body(md5_mismatch()));
        }
        let (what, expected, reported) = match (crc32c.zip(reported_crc32c), etag_md5) {
            (Some((ours, reported)), _) => ("CRC32C", ours.to_string(), reported.to_string()),
            // The server checked the bytes against a hash it was given (a declared MD5
            // was also compared with an MD5 ETag just above).
            (None, _) if matches!(sent, Sent::SignedSha256 | Sent::DeclaredMd5(_)) => {
                return Ok(());
            }
            (None, Some(etag)) => {
                if !self.learnt.md5_said.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        bucket = %self.bucket,
                        "the server reports no CRC32C for some writes; their MD5 ETags are compared instead"
                    );
                }
                // Writes the server checked against a hash returned above.
                let expected = match sent {
                    Sent::HashedMd5(hashed) => hashed,
                    _ => hex_md5(bytes),
                };
                ("MD5", expected, etag.to_string())
            }
            (None, None) => {
                if !self.learnt.unchecked_said.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        bucket = %self.bucket,
                        "the server reports neither a CRC32C nor an MD5 ETag for what it receives; writes to it are checked by stored size only"
                    );
                }
                return Ok(());
            }
        };
        if expected == reported {
            return Ok(());
        }
        Err(self.failure(format!(
            "writing {key}: the server received other bytes than were sent \
             ({what} {reported}, sent {expected})"
        )))
    }

    pub(super) async fn join_part(
        &self,
        key: &str,
        in_flight: &mut PartUploads,
    ) -> Result<CompletedPart> {
        match in_flight.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(join)) => Err(self.failure(format!("part upload of {key} stopped: {join}"))),
            None => Err(self.failure(format!("no part upload of {key} in flight"))),
        }
    }
}

/// Aborts a multipart upload when dropped while armed, after its parts in flight have
/// finished: a part that lands after the abort would stay on the server. When the
/// completion had begun, waits for it instead and removes the object it made.
struct AbortOnDrop {
    store: S3Store,
    key: String,
    upload_id: String,
    in_flight: PartUploads,
    completion: Option<tokio::task::JoinHandle<Result<()>>>,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let upload_id = std::mem::take(&mut self.upload_id);
            let mut in_flight = std::mem::take(&mut self.in_flight);
            let completion = self.completion.take();
            runtime.spawn(async move {
                finish_parts(&mut in_flight).await;
                let completed = match completion {
                    Some(completion) => matches!(completion.await, Ok(Ok(()))),
                    None => false,
                };
                if !completed {
                    store.abort_upload(&key, &upload_id).await;
                } else if let Err(e) = store.delete(&key).await {
                    tracing::warn!(bucket = %store.bucket, %key, error = %e, "cannot remove the object of a dropped put");
                }
            });
        }
    }
}

/// Waits for every part upload in flight to end, whatever its outcome.
async fn finish_parts(in_flight: &mut PartUploads) {
    while in_flight.join_next().await.is_some() {}
}

/// CRC32C of `bytes` as S3 headers carry it: big-endian, base64.
fn crc32c(bytes: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32;
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

/// MD5 of `bytes` in hex, as an ETag shows it.
fn hex_md5(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// The MD5 an ETag holds, when it is one: 32 hex digits, quotes removed.
fn md5_etag(etag: &str) -> Option<&str> {
    let inner = etag.trim_matches('"');
    (inner.len() == 32 && inner.bytes().all(|b| b.is_ascii_hexdigit())).then_some(inner)
}

/// The payload hash a write's signature carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadHash {
    /// None (`UNSIGNED-PAYLOAD`).
    Unsigned,
    /// The SHA-256 its sender declared, not hashed again.
    Declared(Sha256Sum),
    /// The SHA-256 the SDK hashes as it signs.
    Hashed,
}

impl PayloadHash {
    /// None when the tier's writes are not to be signed, or when the write carries a
    /// declared MD5 (a signed header the server checks the bytes against: a payload hash
    /// protects them no further); else the declared SHA-256, else one hashed here.
    fn of(sign_payload: bool, declared: Declared) -> PayloadHash {
        match declared {
            _ if !sign_payload => PayloadHash::Unsigned,
            Declared { md5: Some(_), .. } => PayloadHash::Unsigned,
            Declared {
                sha256: Some(sha256),
                ..
            } => PayloadHash::Declared(sha256),
            _ => PayloadHash::Hashed,
        }
    }
}

/// Sets the signer's payload override, when there is one, for the request it goes with.
#[derive(Debug)]
struct PayloadSigning(Option<PayloadSigningOverride>);

impl PayloadSigning {
    /// How a write whose signature carries `payload` is signed.
    fn of(payload: PayloadHash) -> PayloadSigning {
        PayloadSigning(match payload {
            PayloadHash::Unsigned => Some(PayloadSigningOverride::unsigned_payload()),
            PayloadHash::Declared(sha256) => {
                Some(PayloadSigningOverride::Precomputed(hex(&sha256)))
            }
            PayloadHash::Hashed => None,
        })
    }
}

impl Intercept for PayloadSigning {
    fn name(&self) -> &'static str {
        "PayloadSigning"
    }

    fn modify_before_signing(
        &self,
        _: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(payload) = &self.0 {
            cfg.interceptor_state().store_put(payload.clone());
        }
        Ok(())
    }
}

/// Reads into `buf` until it holds `size` bytes or the body ends. A full buffer is not
/// read into again: a `BytesMut` grows for any read, even one that finds nothing.
async fn read_part(
    body: &mut (impl AsyncRead + Unpin),
    size: usize,
    mut buf: BytesMut,
) -> Result<BytesMut> {
    let mut rest = body.take(size.saturating_sub(buf.len()) as u64);
    while buf.len() < size && rest.read_buf(&mut buf).await.map_err(StorageError::Body)? > 0 {}
    Ok(buf)
}

/// A request body of a known length whose chunks arrive on a channel as they are read;
/// an error sent on it fails the request.
struct StreamedBody {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl StreamedBody {
    /// The sender of the chunks, and the body of `length` bytes they make.
    fn new(length: u64) -> (mpsc::Sender<io::Result<Bytes>>, StreamedBody) {
        let (sender, chunks) = mpsc::channel(2);
        (
            sender,
            StreamedBody {
                chunks,
                remaining: length,
            },
        )
    }
}

impl hyper::body::Body for StreamedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match ready!(self.chunks.poll_recv(cx)) {
            Some(Ok(chunk)) => match self.remaining.checked_sub(chunk.len() as u64) {
                Some(remaining) => {
                    self.remaining = remaining;
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                None => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the body is longer than declared",
                )))),
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_part_stops_at_its_size_whether_its_buffer_grows_or_not() {
        let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut rest = &body[..];
        let grown = read_part(&mut rest, 3000, BytesMut::new()).await.unwrap();
        assert_eq!(&grown[..], &body[..3000]);
        let sized = read_part(&mut rest, 3000, BytesMut::with_capacity(3000))
            .await
            .unwrap();
        assert_eq!(&sized[..], &body[3000..]);
        assert!(
            read_part(&mut rest, 3000, BytesMut::new())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_body_of_its_declared_length_fills_its_buffer_without_growing_it() {
        let body = vec![7u8; 3000];
        let part = read_part(&mut &body[..], 8000, body_buffer(Some(3000), 8000))
            .await
            .unwrap();
        assert_eq!((part.len(), part.capacity()), (3000, 3001));
        // Declared longer than a part: a part, and the rest left for the next.
        let long = vec![7u8; 9000];
        let mut rest = &long[..];
        let part = read_part(&mut rest, 8000, body_buffer(Some(9000), 8000))
            .await
            .unwrap();
        assert_eq!(
            (part.len(), part.capacity(), rest.len()),
            (8000, 8000, 1000)
        );
        // Declared wrong: the body is read to its end all the same.
        let part = read_part(&mut &body[..], 8000, body_buffer(Some(10), 8000))
            .await
            .unwrap();
        assert_eq!(part.len(), 3000);
    }

    #[test]
    fn a_payload_hash_is_signed_only_where_nothing_else_protects_the_bytes() {
        let md5 = Some([1; 16]);
        let sha256 = Some([2; 32]);
        let declared = |md5, sha256| Declared {
            md5,
            sha256,
            ..Declared::default()
        };
        assert_eq!(
            PayloadHash::of(false, declared(None, sha256)),
            PayloadHash::Unsigned
        );
        assert_eq!(
            PayloadHash::of(true, declared(md5, sha256)),
            PayloadHash::Unsigned,
            "a signed Content-MD5 goes with the bytes"
        );
        assert_eq!(
            PayloadHash::of(true, declared(None, sha256)),
            PayloadHash::Declared([2; 32])
        );
        assert_eq!(
            PayloadHash::of(true, declared(None, None)),
            PayloadHash::Hashed
        );
    }

    #[test]
    fn only_a_write_checked_by_nothing_else_needs_an_md5_hashed() {
        let md5 = [1; 16];
        let checked = |md5, payload| match Sent::before_hashing(md5, payload) {
            Sent::DeclaredMd5(_) => "declared md5",
            Sent::SignedSha256 => "signed sha256",
            Sent::HashedMd5(_) => "hashed md5",
            Sent::Unknown => "nothing",
        };
        assert_eq!(checked(Some(&md5), PayloadHash::Unsigned), "declared md5");
        assert_eq!(checked(None, PayloadHash::Hashed), "signed sha256");
        assert_eq!(
            checked(None, PayloadHash::Declared([2; 32])),
            "signed sha256"
        );
        assert_eq!(checked(None, PayloadHash::Unsigned), "nothing");
    }

    #[test]
    fn checksums_are_written_as_s3_writes_them() {
        // RFC 3720's CRC32C check value, and the MD5 of the empty string.
        assert_eq!(
            crc32c(b"123456789"),
            aws_smithy_types::base64::encode([0xe3, 0x06, 0x92, 0x83])
        );
        assert_eq!(hex_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            md5_etag("\"d41d8cd98f00b204e9800998ecf8427e\""),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            md5_etag("\"d41d8cd98f00b204e9800998ecf8427e-3\""),
            None,
            "multipart"
        );
        assert_eq!(md5_etag("opaque"), None);
    }
}
