//! The `s3://` backend, through aws-sdk-s3: AWS S3 itself or any S3-protocol server
//! (MinIO, …) with a custom endpoint and path-style addressing.
//!
//! Puts read the body one part at a time. A body that fits in one part is sent with a
//! single `PutObject`: streamed on as it arrives when its length was declared and the
//! server checks it whole (a declared MD5 or signed SHA-256), else read first, so the
//! SDK can retry the request; a larger one becomes a multipart upload with up to
//! `part_concurrency` parts in flight while the next part is read, so memory stays
//! near `part_size × (part_concurrency + 1)` whatever the object's size. A failed
//! multipart upload is aborted so the server does not keep its parts.
//!
//! Every request that carries bytes also carries their CRC32C (but a `PutObject` whose
//! MD5 was declared, which carries that instead), which the server checks on receipt,
//! and its answer is checked against what was sent: the CRC32C it reports; where it
//! reports none, the signed SHA-256 of a signed write's payload or the declared MD5,
//! which the server checked the bytes against, else an ETag that is the MD5 of the
//! bytes (a declared MD5 is compared with such an ETag too). Bytes
//! damaged on the way fail the put; only an unsigned write to a server that reports
//! neither leaves the stored size as the check (said once in the log).
//!
//! Gets of more than one part are split into ranged requests, `part_concurrency` of them
//! in flight and handed out in order, the way download managers (and rclone) fetch large
//! files; all the gets of a store share that many parts fetched and not yet handed on,
//! so memory stays bounded however many readers there are. Every range is pinned to the ETag seen first (`If-Match`), so a concurrent
//! overwrite fails the read instead of splicing two versions together.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

mod compose;
mod http;
mod upload;

use super::{ByteRange, ByteStream, Listed, Result, StorageError, md5_mismatch};
use crate::config::{S3Config, TransferConfig};

/// Part uploads in flight: each yields its completed part or why it failed.
type PartUploads = JoinSet<Result<CompletedPart>>;

/// A tier kept in an S3-protocol bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    transfer: TransferConfig,
    /// See [`S3Config::sign_payload`].
    sign_payload: bool,
    /// What was learnt about the server, shared by the clones of this store.
    learnt: Arc<Learnt>,
    /// Parts that all reads of the store together may hold fetched and not yet handed
    /// on: a client reading in several ranged streams at once does not multiply them.
    read_budget: Arc<Semaphore>,
}

/// What an S3 store learns about its server from its answers; the flags that end in
/// `_said` are set once the finding was said in the log.
#[derive(Debug, Default)]
struct Learnt {
    /// The server reports neither checksums nor MD5 ETags.
    unchecked_said: AtomicBool,
    /// The server reports an MD5 ETag but no checksum.
    md5_said: AtomicBool,
    /// The server reported a CRC32C for a part (some report them for whole objects
    /// only): from then on parts are not hashed with MD5 ahead of the answer.
    reports_crc32c: AtomicBool,
    /// The server cannot list multipart uploads.
    unsweepable_said: AtomicBool,
    /// The server's list of an upload's parts could not be read.
    unreadable_parts_said: AtomicBool,
}

impl S3Store {
    /// Builds a client for `config`. Static keys are used when configured, otherwise the
    /// AWS default credential chain (environment, profile, web identity, instance role).
    /// Fails only when the tier's CA certificates cannot be used.
    pub async fn open(config: &S3Config, transfer: TransferConfig) -> Result<S3Store> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        let client = http::QuickAckClient::new(config.ca_certificates.as_deref()).map_err(|e| {
            StorageError::Backend {
                backend: format!("s3://{}", config.bucket),
                message: format!("its TLS client could not be built: {e}"),
            }
        })?;
        loader = loader.http_client(client);
        if let Some(keys) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &keys.access_key_id,
                &keys.secret_access_key,
                None,
                None,
                "strata-config",
            ));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            // Strata computes each request's CRC32C itself (to compare with what the
            // server reports); the SDK's own would be a second pass over the bytes.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            transfer,
            sign_payload: config.sign_payload,
            learnt: Arc::default(),
            read_budget: Arc::new(Semaphore::new(transfer.part_concurrency)),
        })
    }

    /// The size of the parts transfers are cut into.
    pub fn part_size(&self) -> u64 {
        self.transfer.part_size
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A failure of this store's backend.
    fn failure(&self, message: String) -> StorageError {
        StorageError::Backend {
            backend: format!("s3://{}", self.bucket),
            message,
        }
    }

    fn error<E, R>(&self, doing: &str, key: &str, err: SdkError<E, R>) -> StorageError
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        self.failure(format!("{doing} {key}: {}", DisplayErrorContext(&err)))
    }

    /// Like [`S3Store::error`], but the server's refusal of the MD5 declared for a write
    /// (`BadDigest`), when one was sent, becomes the body's mismatch: the client's bytes,
    /// not the tier, are at fault.
    fn refused_md5_or<E, R>(
        &self,
        md5_sent: bool,
        doing: &str,
        key: &str,
        err: SdkError<E, R>,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        if md5_sent
            && err.as_service_error().and_then(ProvideErrorMetadata::code) == Some("BadDigest")
        {
            return StorageError::Body(md5_mismatch());
        }
        self.error(doing, key, err)
    }

    /// Like [`S3Store::error`], but a 404 answer becomes [`StorageError::NotFound`].
    fn not_found_or<E>(
        &self,
        doing: &str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StorageError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => StorageError::NotFound { key: key.into() },
            _ => self.error(doing, key, err),
        }
    }

    pub(super) async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        known_size: Option<u64>,
    ) -> Result<ByteStream> {
        let part_size = self.transfer.part_size;
        // A read of one request needs nothing from the server first when the caller
        // knows the size; reads of several parts ask for the ETag they must all match.
        let (offset, len, etag) = match known_size.map(|size| resolve(range, size)).transpose()? {
            Some((offset, len)) if len <= part_size => (offset, len, None),
            _ => {
                let (size, etag) = self.head(key).await?;
                // Resolve against the real size: S3 answers an unsatisfiable range with
                // 416, and an end beyond the object silently with less.
                let (offset, len) = resolve(range, size)?;
                (offset, len, etag)
            }
        };
        if len == 0 {
            return Ok(Box::pin(stream::empty()));
        }
        if len <= part_size {
            return self.get_in_one(key, offset, len, etag.as_deref()).await;
        }
        let store = self.clone();
        let key = key.to_string();
        let parts = (0..len.div_ceil(part_size)).map(move |i| {
            let start = offset + i * part_size;
            (start, part_size.min(offset + len - start))
        });
        Ok(Box::pin(
            stream::iter(parts)
                .map(move |(start, part_len)| {
                    let store = store.clone();
                    let key = key.clone();
                    let etag = etag.clone();
                    async move {
                        // Taken in part order (the semaphore is fair), so the part a
                        // reader waits for never waits behind later ones.
                        let permit = store
                            .read_budget
                            .clone()
                            .acquire_owned()
                            .await
                            .map_err(std::io::Error::other)?;
                        let part = store
                            .fetch_part(&key, start, part_len, etag.as_deref())
                            .await?;
                        Ok((part, permit))
                    }
                })
                .buffered(self.transfer.part_concurrency)
                .map_ok(|(part, _handed_on)| part),
        ))
    }

    fn range_request(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        etag: Option<&str>,
    ) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", offset, offset + len - 1))
            .set_if_match(etag.map(str::to_string))
    }

    /// One whole part of a parallel download.
    async fn fetch_part(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        etag: Option<&str>,
    ) -> std::io::Result<Bytes> {
        let out = self
            .range_request(key, offset, len, etag)
            .send()
            .await
            .map_err(|e| match self.not_found_or("getting", key, e) {
                // A reader that follows moves tells a removed source by its kind.
                e @ StorageError::NotFound { .. } => {
                    std::io::Error::new(std::io::ErrorKind::NotFound, e)
                }
                e => std::io::Error::other(e),
            })?;
        // Filled in place: collecting the body and then joining its chunks would hold
        // each part twice.
        let mut bytes = BytesMut::with_capacity(len as usize);
        let mut body = out.body;
        while let Some(chunk) = body.try_next().await.map_err(std::io::Error::other)? {
            bytes.extend_from_slice(&chunk);
        }
        if bytes.len() as u64 != len {
            return Err(std::io::Error::other(format!(
                "s3://{}: range {offset}+{len} of {key} returned {} bytes",
                self.bucket,
                bytes.len()
            )));
        }
        Ok(bytes.freeze())
    }

    pub(super) async fn probe(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.error("reaching", "the bucket", e))?;
        Ok(())
    }

    pub(super) async fn size(&self, key: &str) -> Result<u64> {
        Ok(self.head(key).await?.0)
    }

    /// `len` bytes of `key` from `offset`, in one request (matching `etag` when given).
    async fn get_in_one(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        etag: Option<&str>,
    ) -> Result<ByteStream> {
        let out = self
            .range_request(key, offset, len, etag)
            .send()
            .await
            .map_err(|e| self.not_found_or("getting", key, e))?;
        Ok(Box::pin(stream::unfold(out.body, |mut body| async move {
            body.try_next()
                .await
                .map_err(std::io::Error::other)
                .transpose()
                .map(|chunk| (chunk, body))
        })))
    }

    /// Size and ETag of the object under `key`.
    async fn head(&self, key: &str) -> Result<(u64, Option<String>)> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.not_found_or("reading metadata of", key, e))?;
        let size = out.content_length().unwrap_or_default().max(0) as u64;
        Ok((size, out.e_tag().map(str::to_string)))
    }

    pub(super) async fn list(&self) -> Result<Vec<Listed>> {
        let mut listed = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("listing", "the bucket", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                listed.push(Listed {
                    key: key.to_string(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    modified: object
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(listed)
    }

    /// Aborts multipart uploads of Strata's key layout (`<object id>/<name>`) whose
    /// latest part (or start) is older than `before`, except those to `live` keys.
    pub(super) async fn sweep(&self, before: SystemTime, live: &HashSet<String>) -> Result<u64> {
        let mut aborted = 0;
        let (mut key_marker, mut upload_id_marker) = (None, None);
        loop {
            let page = match self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error().and_then(|s| s.meta().code())
                        == Some("NotImplemented") =>
                {
                    if !self.learnt.unsweepable_said.swap(true, Ordering::Relaxed) {
                        tracing::warn!(bucket = %self.bucket, "the server cannot list multipart uploads; interrupted uploads there are left to the bucket's lifecycle rules");
                    }
                    return Ok(0);
                }
                Err(e) => return Err(self.error("listing multipart uploads of", "the bucket", e)),
            };
            for upload in page.uploads() {
                let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if !is_strata_key(key) || live.contains(key) {
                    continue;
                }
                let started = upload
                    .initiated()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                if started.is_none_or(|at| at >= before) {
                    continue;
                }
                // Without its parts' times an upload may still be in progress: left alone,
                // and the other uploads are judged all the same.
                match self.last_part_at(key, upload_id).await {
                    Ok(last) if last < Some(before) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        if !self
                            .learnt
                            .unreadable_parts_said
                            .swap(true, Ordering::Relaxed)
                        {
                            tracing::warn!(bucket = %self.bucket, error = %e, "cannot read the parts of a multipart upload; uploads whose parts cannot be listed are left to the bucket's lifecycle rules");
                        }
                        continue;
                    }
                }
                tracing::info!(bucket = %self.bucket, %key, "aborting an interrupted multipart upload");
                self.abort_upload(key, upload_id).await;
                aborted += 1;
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            upload_id_marker = page.next_upload_id_marker().map(str::to_string);
        }
    }

    /// When the latest part of an upload arrived; `None` before the first.
    async fn last_part_at(&self, key: &str, upload_id: &str) -> Result<Option<SystemTime>> {
        let mut latest = None;
        let mut pages = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("listing the parts of", key, e))?;
            for part in page.parts() {
                let at = part
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                latest = latest.max(at);
            }
        }
        Ok(latest)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("deleting", key, e))?;
        Ok(())
    }
}

/// Whether `key` has the shape of Strata's locations, `<object id>/<name>`: a bucket
/// may hold other writers' uploads, which are not Strata's to abort.
fn is_strata_key(key: &str) -> bool {
    key.split_once('/').is_some_and(|(id, name)| {
        uuid::Uuid::parse_str(id).is_ok() && !name.is_empty() && !name.contains('/')
    })
}

/// The offset and length `range` (the whole object when `None`) names of `size` bytes.
fn resolve(range: Option<ByteRange>, size: u64) -> Result<(u64, u64)> {
    range.map_or(Ok((0, size)), |r| r.resolve(size))
}
