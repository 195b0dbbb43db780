//! Single objects: put, get, head, copy and delete by bucket and key.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::S3Endpoint;
use crate::content::{RangeRequest, Upload, upload_stream};
use crate::db::{Metadata, ObjectRecord};
use crate::storage::{Declared, Md5Sum, Sha256Sum, from_hex};
use crate::timestamp::now_ms;

/// Content type of uploads that do not name one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// The ETag of content with this checksum: its hex digest, strong.
pub(super) fn etag(checksum: &str) -> ETag {
    ETag::Strong(checksum.rsplit(':').next().unwrap_or(checksum).to_string())
}

/// An object's ETag: its MD5 when its writer declared one, as S3's for a one-request
/// put (clients compare it with their own MD5: rclone checks each transfer so), else its
/// checksum's digest, which no client takes for an MD5.
pub(super) fn object_etag(object: &ObjectRecord) -> ETag {
    match &object.md5 {
        Some(md5) => ETag::Strong(md5.clone()),
        None => etag(&object.checksum),
    }
}

/// An epoch-millisecond time as S3 shows it.
pub(super) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// S3's own limits on a key, and no control characters (XML 1.0 cannot carry them in a
/// listing).
pub(super) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(s3_error!(
            KeyTooLongError,
            "a key is 1 to 1024 bytes of UTF-8"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(s3_error!(
            InvalidArgument,
            "keys with control characters are not accepted"
        ));
    }
    Ok(())
}

/// The object under `key` in `bucket`, or `NoSuchKey`.
pub(super) async fn find(ep: &S3Endpoint, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
    ep.catalogue
        .find_object_by_key(bucket, key)
        .await?
        .ok_or_else(|| s3_error!(NoSuchKey, "no key {key:?} in bucket {bucket:?}"))
}

/// The integrity checks a client declared for a body: a Content-MD5, and S3's
/// additional checksums (`x-amz-checksum-*`), in headers or in the trailer that follows
/// an aws-chunked body.
#[derive(Default)]
pub(super) struct DeclaredChecks {
    /// The body's length (`Content-Length`).
    pub length: Option<i64>,
    /// Base64 MD5 (`Content-MD5`).
    pub md5: Option<String>,
    /// The algorithm of a checksum to come in the trailer (`x-amz-sdk-checksum-algorithm`).
    pub algorithm: Option<ChecksumAlgorithm>,
    /// Checksums given as headers.
    pub sums: Checksum,
    /// The trailer, readable once the body has been read.
    pub trailers: Option<s3s::TrailingHeaders>,
    /// The SHA-256 a signed request gave for its whole payload (see
    /// [`signed_payload_sha256`]).
    pub payload_sha256: Option<Sha256Sum>,
}

impl DeclaredChecks {
    /// What the tier's write takes of them: the length, the MD5 declared
    /// (`Content-MD5`), decoded, and the payload's SHA-256.
    pub(super) fn for_write(&self) -> S3Result<Declared> {
        let md5 = self
            .md5
            .as_deref()
            .map(|md5| {
                aws_smithy_types::base64::decode(md5)
                    .ok()
                    .and_then(|d| Md5Sum::try_from(d).ok())
                    .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
            })
            .transpose()?;
        Ok(Declared {
            length: self.length.and_then(|n| u64::try_from(n).ok()),
            md5,
            sha256: self.payload_sha256,
        })
    }
}

/// The SHA-256 a request signed its payload with (`x-amz-content-sha256` as 64 hex
/// digits; not an unsigned or aws-chunked payload). s3s fails the body at its end when
/// the bytes differ, and the tier that is sent it as the payload hash checks them again.
pub(super) fn signed_payload_sha256(headers: &axum::http::HeaderMap) -> Option<Sha256Sum> {
    from_hex(headers.get("x-amz-content-sha256")?.as_bytes())
}

/// The [`DeclaredChecks`] of a PutObject or UploadPart input (the same fields in both),
/// moving them out of it, and of its request's headers.
macro_rules! declared {
    ($input:ident, $trailers:expr, $headers:expr) => {
        DeclaredChecks {
            length: $input.content_length,
            md5: $input.content_md5,
            algorithm: $input.checksum_algorithm,
            sums: Checksum {
                checksum_crc32: $input.checksum_crc32,
                checksum_crc32c: $input.checksum_crc32c,
                checksum_crc64nvme: $input.checksum_crc64nvme,
                checksum_sha1: $input.checksum_sha1,
                checksum_sha256: $input.checksum_sha256,
                ..Default::default()
            },
            trailers: $trailers,
            payload_sha256: signed_payload_sha256($headers),
        }
    };
}
pub(super) use declared;

/// An uploaded body's chunks: at most `max` bytes, no pause longer than the
/// endpoint's idle timeout, and failing at its end, so that nothing is catalogued, unless
/// the bytes match every checksum the client declared. A `Content-MD5` is left to the
/// tier's write, which checks it (see [`crate::storage::Store::put`]).
pub(super) fn body_stream(
    ep: &S3Endpoint,
    body: Option<StreamingBlob>,
    declared: DeclaredChecks,
    max: u64,
) -> S3Result<impl Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static> {
    let sums = checksum_hasher(&declared)?;
    let chunks: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> = match body {
        Some(body) => Box::pin(body.map_err(io::Error::other)),
        None => Box::pin(futures_util::stream::empty()),
    };
    let chunks: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> = match sums {
        None => chunks,
        Some(sums) => Box::pin(Verified {
            inner: chunks,
            sums: Some(sums),
            declared,
        }),
    };
    Ok(upload_stream(chunks, max, ep.idle_timeout))
}

/// A hasher of every algorithm the client declared a checksum of (or will, in the
/// trailer); `None` when it declared none.
fn checksum_hasher(declared: &DeclaredChecks) -> S3Result<Option<ChecksumHasher>> {
    let mut hasher = ChecksumHasher::default();
    let sums = &declared.sums;
    let trailing = declared.algorithm.as_ref().map(ChecksumAlgorithm::as_str);
    let wants = |given: &Option<String>, name: &str| given.is_some() || trailing == Some(name);
    if wants(&sums.checksum_crc32, ChecksumAlgorithm::CRC32) {
        hasher.crc32 = Some(Default::default());
    }
    if wants(&sums.checksum_crc32c, ChecksumAlgorithm::CRC32C) {
        hasher.crc32c = Some(Default::default());
    }
    if wants(&sums.checksum_crc64nvme, ChecksumAlgorithm::CRC64NVME) {
        hasher.crc64nvme = Some(Default::default());
    }
    if wants(&sums.checksum_sha1, ChecksumAlgorithm::SHA1) {
        hasher.sha1 = Some(Default::default());
    }
    if wants(&sums.checksum_sha256, ChecksumAlgorithm::SHA256) {
        hasher.sha256 = Some(Default::default());
    }
    let any = hasher.crc32.is_some()
        || hasher.crc32c.is_some()
        || hasher.crc64nvme.is_some()
        || hasher.sha1.is_some()
        || hasher.sha256.is_some();
    match (any, trailing) {
        (true, _) | (false, None) => Ok(any.then_some(hasher)),
        (false, Some(other)) => Err(s3_error!(
            InvalidArgument,
            "checksum algorithm {other} is not supported"
        )),
    }
}

/// Passes chunks on while hashing them; at the end, an `InvalidData` error instead of
/// the end when a checksum differs from the one the client declared.
struct Verified {
    inner: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    /// `None` once the end has been checked.
    sums: Option<ChecksumHasher>,
    declared: DeclaredChecks,
}

impl Verified {
    /// What the body's end finds: `None` when every declared checksum matches.
    fn mismatch(&mut self) -> Option<String> {
        let computed = self.sums.take()?.finalize();
        let trailer = |name: &str| {
            self.declared
                .trailers
                .as_ref()?
                .read(|h| h.get(name)?.to_str().ok().map(str::to_string))?
        };
        let sums = &self.declared.sums;
        for (name, given, ours) in [
            (
                "x-amz-checksum-crc32",
                &sums.checksum_crc32,
                &computed.checksum_crc32,
            ),
            (
                "x-amz-checksum-crc32c",
                &sums.checksum_crc32c,
                &computed.checksum_crc32c,
            ),
            (
                "x-amz-checksum-crc64nvme",
                &sums.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
            ),
            (
                "x-amz-checksum-sha1",
                &sums.checksum_sha1,
                &computed.checksum_sha1,
            ),
            (
                "x-amz-checksum-sha256",
                &sums.checksum_sha256,
                &computed.checksum_sha256,
            ),
        ] {
            if let (Some(expected), Some(ours)) = (given.clone().or_else(|| trailer(name)), ours)
                && &expected != ours
            {
                return Some(format!("the body does not match its {name}"));
            }
        }
        None
    }
}

impl Stream for Verified {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(hasher) = &mut this.sums {
                    hasher.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => match this.mismatch() {
                Some(message) => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    message,
                )))),
                None => Poll::Ready(None),
            },
            other => other,
        }
    }
}

/// User metadata as S3 sends it.
pub(super) fn metadata(given: Option<s3s::dto::Metadata>) -> Metadata {
    given.unwrap_or_default().into_iter().collect()
}

pub(super) async fn put(
    ep: &S3Endpoint,
    input: PutObjectInput,
    trailers: Option<s3s::TrailingHeaders>,
    headers: &axum::http::HeaderMap,
) -> S3Result<PutObjectOutput> {
    check_key(&input.key)?;
    if input
        .content_length
        .is_some_and(|len| u64::try_from(len).unwrap_or(0) > ep.max_object_bytes)
    {
        return Err(too_large(ep.max_object_bytes));
    }
    let declared = declared!(input, trailers, headers);
    let for_write = declared.for_write()?;
    let body = body_stream(ep, input.body, declared, ep.max_object_bytes)?;
    let upload = Upload {
        bucket: input.bucket,
        key: Some(input.key),
        content_type: input
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
        metadata: metadata(input.metadata),
        overwrite: true,
        declared: for_write,
    };
    let ingested = ep.content.ingest(upload, body).await?;
    Ok(PutObjectOutput {
        e_tag: Some(object_etag(&ingested.object)),
        size: Some(ingested.object.size),
        ..Default::default()
    })
}

pub(super) fn too_large(max: u64) -> S3Error {
    s3_error!(
        EntityTooLarge,
        "larger than the {max} bytes allowed (MAX_OBJECT_BYTES)"
    )
}

/// The conditional headers of a GET or HEAD.
struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

impl Conditions<'_> {
    /// RFC 9110's order: If-Match (else If-Unmodified-Since) can fail the request with
    /// 412; If-None-Match (else If-Modified-Since) can answer 304.
    fn check(&self, object: &ObjectRecord) -> S3Result<()> {
        let ours = object_etag(object);
        let matches = |condition: &ETagCondition| match condition {
            ETagCondition::Any => true,
            ETagCondition::ETag(tag) => tag.value() == ours.value(),
        };
        // HTTP dates have whole seconds.
        let modified = object.modified_at.div_euclid(1000);
        let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
        let failed = match (self.if_match, self.if_unmodified_since) {
            (Some(condition), _) => !matches(condition),
            (None, Some(since)) => modified > secs(since),
            (None, None) => false,
        };
        if failed {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let unchanged = match (self.if_none_match, self.if_modified_since) {
            (Some(condition), _) => matches(condition),
            (None, Some(since)) => modified <= secs(since),
            (None, None) => false,
        };
        if unchanged {
            let mut err = S3Error::new(S3ErrorCode::Custom("NotModified".into()));
            err.set_status_code(axum::http::StatusCode::NOT_MODIFIED);
            if let Ok(value) = ours.to_http_header() {
                let mut headers = axum::http::HeaderMap::new();
                headers.insert(axum::http::header::ETAG, value);
                err.set_headers(headers);
            }
            return Err(err);
        }
        Ok(())
    }
}

fn range_request(range: Range) -> RangeRequest {
    match range {
        Range::Int { first, last } => RangeRequest::Span { first, last },
        Range::Suffix { length } => RangeRequest::Suffix(length),
    }
}

pub(super) async fn get(ep: &S3Endpoint, input: GetObjectInput) -> S3Result<GetObjectOutput> {
    let conditions = Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    };
    let found = find(ep, &input.bucket, &input.key).await?;
    conditions.check(&found)?;
    let version = found.version;
    let opened = ep
        .content
        .open_object(found, input.range.map(range_request))
        .await?;
    let object = opened.object;
    if object.version != version {
        // Rewritten between the look-up and the open: the conditions are about what is served.
        conditions.check(&object)?;
    }
    if let Err(e) = ep.publisher.publish_reads(&object.id, 1, now_ms()) {
        // The read itself succeeds: serving the bytes matters more than counting them.
        tracing::warn!(object = %object.id, error = %e, "access event not published");
    }
    let size = object.size;
    let (content_length, content_range) = match opened.range {
        Some((start, length)) => (
            i64::try_from(length).unwrap_or(i64::MAX),
            Some(format!(
                "bytes {start}-{}/{size}",
                start + length.saturating_sub(1)
            )),
        ),
        None => (size, None),
    };
    let body = s3s::Body::http_body_unsync(axum::body::Body::from_stream(opened.bytes));
    Ok(GetObjectOutput {
        body: Some(StreamingBlob::from(body)),
        accept_ranges: Some("bytes".into()),
        content_length: Some(content_length),
        content_range,
        content_type: Some(object.content_type.clone()),
        e_tag: Some(object_etag(&object)),
        last_modified: Some(timestamp(object.modified_at)),
        metadata: Some(object.metadata.into_iter().collect()),
        ..Default::default()
    })
}

pub(super) async fn head(ep: &S3Endpoint, input: HeadObjectInput) -> S3Result<HeadObjectOutput> {
    let object = find(ep, &input.bucket, &input.key).await?;
    Conditions {
        if_match: input.if_match.as_ref(),
        if_none_match: input.if_none_match.as_ref(),
        if_modified_since: input.if_modified_since.as_ref(),
        if_unmodified_since: input.if_unmodified_since.as_ref(),
    }
    .check(&object)?;
    Ok(HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(object.size),
        content_type: Some(object.content_type.clone()),
        e_tag: Some(object_etag(&object)),
        last_modified: Some(timestamp(object.modified_at)),
        metadata: Some(object.metadata.into_iter().collect()),
        ..Default::default()
    })
}

/// A copy within Strata: the source's bytes streamed into a new object on the landing
/// tier (a copy is new data; the policy places it by its own accesses).
pub(super) async fn copy(ep: &S3Endpoint, input: CopyObjectInput) -> S3Result<CopyObjectOutput> {
    check_key(&input.key)?;
    let CopySource::Bucket {
        bucket: source_bucket,
        key: source_key,
        ..
    } = &input.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "only copies from a bucket of this endpoint"
        ));
    };
    ep.bucket(source_bucket)?;
    let source = find(ep, source_bucket, source_key).await?;
    let opened = ep.content.open_object(source, None).await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let (content_type, metadata) = if replace {
        (
            input
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            metadata(input.metadata),
        )
    } else {
        (
            opened.object.content_type.clone(),
            opened.object.metadata.clone(),
        )
    };
    let upload = Upload {
        bucket: input.bucket,
        key: Some(input.key),
        content_type,
        metadata,
        overwrite: true,
        // The source's MD5 goes with its bytes: the copy's write checks them against it,
        // and the copy keeps it as its ETag.
        declared: Declared {
            length: u64::try_from(opened.object.size).ok(),
            md5: opened
                .object
                .md5
                .as_deref()
                .and_then(|md5| from_hex(md5.as_bytes())),
            ..Declared::default()
        },
    };
    let ingested = ep.content.ingest(upload, opened.bytes).await?;
    Ok(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(object_etag(&ingested.object)),
            last_modified: Some(timestamp(ingested.object.modified_at)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Deletes the object under `key`; a key that is not there is deleted already, as S3
/// answers.
pub(super) async fn delete(ep: &S3Endpoint, bucket: &str, key: &str) -> S3Result<()> {
    let Some(object) = ep.catalogue.find_object_by_key(bucket, key).await? else {
        return Ok(());
    };
    match ep.content.delete(&object.id).await {
        Ok(_) => Ok(()),
        Err(crate::content::ContentError::Catalogue(crate::db::CatalogueError::NotFound {
            ..
        })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_many(ep: &S3Endpoint, input: DeleteObjectsInput) -> DeleteObjectsOutput {
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for target in input.delete.objects {
        match delete(ep, &input.bucket, &target.key).await {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject {
                key: Some(target.key),
                ..Default::default()
            }),
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_string()),
                message: e.message().map(str::to_string),
                key: Some(target.key),
                ..Default::default()
            }),
        }
    }
    DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }
}
