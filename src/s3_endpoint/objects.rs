//! Single objects: put, get, head, copy and delete by bucket and key.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use md5::{Digest as _, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::S3Endpoint;
use crate::content::{RangeRequest, Upload, upload_reader};
use crate::db::{Metadata, ObjectRecord};
use crate::timestamp::now_ms;

/// Content type of uploads that do not name one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// The ETag of content with this checksum: its hex digest, strong.
pub(super) fn etag(checksum: &str) -> ETag {
    ETag::Strong(checksum.rsplit(':').next().unwrap_or(checksum).to_string())
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

/// An uploaded body as a reader: at most `max` bytes, no pause longer than the
/// endpoint's idle timeout, and, when the client sent a Content-MD5, failing at its end
/// unless the bytes match it (so nothing is catalogued).
pub(super) fn body_reader(
    ep: &S3Endpoint,
    body: Option<StreamingBlob>,
    content_md5: Option<&str>,
    max: u64,
) -> S3Result<impl tokio::io::AsyncRead + Unpin + Send + 'static> {
    let expected = content_md5
        .map(|md5| {
            aws_smithy_types::base64::decode(md5)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 is not a base64 MD5"))
        })
        .transpose()?;
    let chunks = body
        .map(|b| b.map_err(io::Error::other))
        .map(futures_util::StreamExt::boxed);
    let chunks: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> = match chunks {
        Some(chunks) => chunks,
        None => Box::pin(futures_util::stream::empty()),
    };
    let chunks: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> = match expected {
        Some(expected) => Box::pin(Md5Checked {
            inner: chunks,
            hasher: Some(Md5::new()),
            expected,
        }),
        None => chunks,
    };
    Ok(upload_reader(chunks, max, ep.idle_timeout))
}

/// Passes chunks on while hashing them; at the end, an `InvalidData` error instead of
/// the end when the MD5 differs from the one the client declared.
struct Md5Checked {
    inner: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    hasher: Option<Md5>,
    expected: Vec<u8>,
}

impl Stream for Md5Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(hasher) = &mut this.hasher {
                    hasher.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                let digest = this.hasher.take().map(Md5::finalize);
                if digest.is_some_and(|d| d.as_slice() != this.expected) {
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the body does not match its Content-MD5",
                    ))))
                } else {
                    Poll::Ready(None)
                }
            }
            other => other,
        }
    }
}

/// User metadata as S3 sends it.
pub(super) fn metadata(given: Option<s3s::dto::Metadata>) -> Metadata {
    given.unwrap_or_default().into_iter().collect()
}

pub(super) async fn put(ep: &S3Endpoint, input: PutObjectInput) -> S3Result<PutObjectOutput> {
    check_key(&input.key)?;
    if input
        .content_length
        .is_some_and(|len| u64::try_from(len).unwrap_or(0) > ep.max_object_bytes)
    {
        return Err(too_large(ep.max_object_bytes));
    }
    let body = body_reader(
        ep,
        input.body,
        input.content_md5.as_deref(),
        ep.max_object_bytes,
    )?;
    let upload = Upload {
        bucket: input.bucket,
        key: Some(input.key),
        content_type: input
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
        metadata: metadata(input.metadata),
        overwrite: true,
    };
    let ingested = ep.content.ingest(upload, body).await?;
    Ok(PutObjectOutput {
        e_tag: Some(etag(&ingested.object.checksum)),
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
        let ours = etag(&object.checksum);
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
        e_tag: Some(etag(&object.checksum)),
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
        e_tag: Some(etag(&object.checksum)),
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
    };
    let body = tokio_util::io::StreamReader::new(opened.bytes);
    let ingested = ep.content.ingest(upload, body).await?;
    Ok(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&ingested.object.checksum)),
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
