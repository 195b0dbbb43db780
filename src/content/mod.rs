//! Object content across the tiers: ingest onto the landing tier, reads from wherever
//! an object is now, deletes. The catalogue and the tiers are kept consistent in one
//! direction only: bytes are written before a row points at them, and a row stops
//! pointing at bytes before they are removed.

mod uploads;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use futures_util::{Stream, StreamExt};

use crate::db::{
    Catalogue, CatalogueError, Metadata, NewObject, ObjectContent, ObjectRecord, new_id,
};
use crate::storage::{ByteRange, ByteStream, Declared, Digest, StorageError, Store, Tiers, hex};

/// How often a read follows an object that moved while it was being opened.
const OPEN_ATTEMPTS: usize = 3;

/// Why a content operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The catalogue refused or failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// A tier refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the uploaded body failed; the kind tells why (the upload stream's own limits
    /// report `FileTooLarge` and `TimedOut`).
    #[error("reading the upload failed: {0}")]
    Upload(io::Error),
    /// The requested range lies outside the object.
    #[error("the range lies outside the object's {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size.
        size: u64,
    },
    /// The catalogue names a tier that is not configured (any more).
    #[error("object {id} is on tier {tier:?}, which is not configured")]
    UnknownTier {
        /// The object.
        id: String,
        /// Its tier.
        tier: String,
    },
}

/// An object to store.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The bucket it goes into.
    pub bucket: String,
    /// Key in the bucket; `None` names the object by its new id.
    pub key: Option<String>,
    /// MIME type to keep with it.
    pub content_type: String,
    /// User metadata to keep with it.
    pub metadata: Metadata,
    /// Whether an object already under `key` gets the new content (a new version) rather
    /// than the upload being refused as a conflict.
    pub overwrite: bool,
    /// What the client declared of the body (its length and digests), which the
    /// landing tier's write relies on ([`Store::put`]).
    pub declared: Declared,
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The catalogued object.
    pub object: ObjectRecord,
    /// False when an existing object got new content.
    pub created: bool,
}

/// A part of an object's bytes, as a reader asks for it before knowing the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// From byte `first` to byte `last` (inclusive) or to the end.
    Span {
        /// First byte.
        first: u64,
        /// Last byte, inclusive; `None` reads to the end.
        last: Option<u64>,
    },
    /// The last this many bytes.
    Suffix(u64),
}

impl RangeRequest {
    /// `(offset, length)` of this range in an object of `size` bytes; `None` when no
    /// byte of it lies inside.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            RangeRequest::Span { first, last } => ByteRange {
                start: first,
                end: last,
            }
            .resolve(size)
            .ok(),
            RangeRequest::Suffix(n) if n > 0 && size > 0 => {
                let start = size.saturating_sub(n);
                Some((start, size - start))
            }
            RangeRequest::Suffix(_) => None,
        }
    }
}

/// Object bytes, opened for reading.
pub struct Opened {
    /// The object as catalogued when its bytes were opened.
    pub object: ObjectRecord,
    /// `(offset, length)` of the bytes when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes (or the requested range of them).
    pub bytes: ByteStream,
}

/// Ingest, read and delete of object content; cheap to clone.
#[derive(Clone)]
pub struct Content {
    catalogue: Catalogue,
    tiers: Arc<Tiers>,
    landing_tier: String,
}

impl Content {
    /// Content operations over `tiers`; new objects land on `landing_tier`.
    pub fn new(catalogue: Catalogue, tiers: Arc<Tiers>, landing_tier: String) -> Content {
        Content {
            catalogue,
            tiers,
            landing_tier,
        }
    }

    /// Streams `body` onto the landing tier, then catalogues it. When anything after the
    /// write fails, the written bytes are removed again, so a failed ingest leaves
    /// nothing behind.
    pub async fn ingest(
        &self,
        upload: Upload,
        body: impl Stream<Item = io::Result<Bytes>> + Unpin + Send,
    ) -> Result<Ingested, ContentError> {
        self.store_new(upload, Source::Body(body)).await
    }

    /// Writes `source` onto the landing tier, then catalogues it as `upload` (see
    /// [`Content::ingest`]).
    async fn store_new(
        &self,
        upload: Upload,
        source: Source<impl Stream<Item = io::Result<Bytes>> + Unpin + Send>,
    ) -> Result<Ingested, ContentError> {
        let existing = match &upload.key {
            Some(key) => {
                self.catalogue
                    .find_object_by_key(&upload.bucket, key)
                    .await?
            }
            None => None,
        };
        if let Some(existing) = &existing
            && !upload.overwrite
        {
            return Err(CatalogueError::Conflict(format!(
                "an object with key {:?} exists in bucket {:?} ({}); pass overwrite=true to \
                 replace its content",
                existing.key, existing.bucket, existing.id
            ))
            .into());
        }
        let id = match (&existing, &source) {
            (Some(object), _) => object.id.clone(),
            // Written for a new object, under the id it was given then.
            (None, Source::Written { location, .. }) => location
                .split_once('/')
                .map_or_else(new_id, |(id, _)| id.to_string()),
            (None, _) => new_id(),
        };
        let fresh = format!("{id}/{}", new_id());
        // Every backend's write checks a declared MD5, so one that went with the body
        // is the stored bytes' MD5.
        let md5 = match &source {
            Source::Body(_) => upload.declared.md5.map(|md5| hex(&md5)),
            Source::Parts(_) | Source::Written { .. } => None,
        };
        let (tier, location, digest) = match source {
            Source::Body(body) => {
                let store = self.store(&id, &self.landing_tier)?;
                let digest = store
                    .put(&fresh, body, &upload.content_type, upload.declared)
                    .await;
                (self.landing_tier.clone(), fresh, digest)
            }
            Source::Parts(parts) => {
                let store = self.store(&id, &self.landing_tier)?;
                let digest = store.compose(&parts, &fresh, &upload.content_type).await;
                (self.landing_tier.clone(), fresh, digest)
            }
            Source::Written {
                tier,
                location,
                digest,
            } if location.starts_with(&format!("{id}/")) => (tier, location, Ok(digest)),
            Source::Written {
                tier,
                location: written,
                digest,
            } => {
                // The key names another object than when the bytes were written (it was
                // created or removed meanwhile): a location starts with its object's id.
                tracing::info!(
                    object = %id, %written,
                    "the key was written meanwhile; copying the new bytes under its object"
                );
                let store = self.store(&id, &tier)?;
                let copied = store
                    .compose(std::slice::from_ref(&written), &fresh, &upload.content_type)
                    .await
                    .and_then(|copy| {
                        if copy == digest {
                            Ok(copy)
                        } else {
                            Err(StorageError::Backend {
                                backend: store.to_string(),
                                message: format!("the copy of {written} differs from it"),
                            })
                        }
                    });
                self.remove_bytes(&tier, &written).await;
                (tier, fresh, copied)
            }
        };
        let digest = match digest {
            Ok(digest) => digest,
            Err(e) => {
                // A server may keep bytes it refused (s3s-fs stores a body before it
                // checks its Content-MD5), under a location nothing will point at.
                self.remove_bytes(&tier, &location).await;
                return Err(upload_failure(e));
            }
        };
        let content = ObjectContent {
            size: digest.size as i64,
            content_type: upload.content_type,
            checksum: digest.checksum,
            md5,
            tier: tier.clone(),
            location: location.clone(),
            metadata: upload.metadata,
        };
        let catalogued = match &existing {
            None => self
                .catalogue
                .insert_object(&NewObject {
                    bucket: upload.bucket,
                    key: upload.key.unwrap_or_else(|| id.clone()),
                    id,
                    content,
                })
                .await
                .map(|object| (object, None)),
            Some(old) => self
                .catalogue
                .replace_object_content(&old.id, old.version, &content)
                .await
                .map(|object| (object, Some(old))),
        };
        match catalogued {
            Ok((object, replaced)) => {
                if let Some(old) = replaced {
                    // Nothing points at the old bytes any more; readers that opened them
                    // already keep their stream.
                    self.remove_bytes(&old.tier, &old.location).await;
                }
                tracing::info!(
                    object = %object.id, key = %object.key, tier = %object.tier,
                    size = object.size, version = object.version, "object stored"
                );
                Ok(Ingested {
                    created: replaced.is_none(),
                    object,
                })
            }
            Err(e) => {
                self.remove_bytes(&tier, &location).await;
                Err(match e {
                    CatalogueError::Stale { .. } => CatalogueError::Conflict(
                        "the object was rewritten by another upload meanwhile; retry".into(),
                    ),
                    other => other,
                }
                .into())
            }
        }
    }

    /// The tier new objects land on.
    pub fn landing_tier(&self) -> &str {
        &self.landing_tier
    }

    /// Ingests the bytes of the parts at `locations` on `tier`, one after the other, as
    /// `upload`: the object is a new copy, so the parts can be removed afterwards. Parts
    /// on the landing tier are concatenated there (by the server, for S3); parts left on
    /// another tier (the landing tier changed meanwhile) are streamed across.
    async fn assemble(
        &self,
        upload: Upload,
        tier: &str,
        locations: Vec<String>,
    ) -> Result<Ingested, ContentError> {
        if tier == self.landing_tier {
            return self
                .store_new(upload, Source::<ByteStream>::Parts(locations))
                .await;
        }
        let bytes = self
            .store(upload.key.as_deref().unwrap_or_default(), tier)?
            .read_all(locations);
        self.ingest(upload, bytes).await
    }

    /// Opens the object's bytes (or `range` of them) on whatever tier holds them now.
    ///
    /// A move may switch the object to another tier and remove the old copy between the
    /// catalogue read and the open; the open then fails with `NotFound` and is retried
    /// at the new location. A stream that is already open survives the removal (open
    /// files stay readable; an S3 GET in flight completes).
    pub async fn open(
        &self,
        id: &str,
        range: Option<RangeRequest>,
    ) -> Result<Opened, ContentError> {
        let object = self.catalogue.get_object(id).await?;
        self.open_object(object, range).await
    }

    /// [`Content::open`] of an object the caller has just read from the catalogue.
    pub async fn open_object(
        &self,
        mut object: ObjectRecord,
        range: Option<RangeRequest>,
    ) -> Result<Opened, ContentError> {
        let id = object.id.clone();
        for _ in 0..OPEN_ATTEMPTS {
            let size = object.size as u64;
            let resolved = match range {
                None => None,
                Some(r) => Some(
                    r.resolve(size)
                        .ok_or(ContentError::RangeNotSatisfiable { size })?,
                ),
            };
            let store = self.store(&object.id, &object.tier)?;
            let byte_range = resolved.map(|(start, length)| ByteRange {
                start,
                end: Some(start + length - 1),
            });
            match store.get(&object.location, byte_range, Some(size)).await {
                Ok(bytes) => {
                    let (start, length) = resolved.unwrap_or((0, size));
                    let bytes = self.follow(object.clone(), start, start + length, bytes);
                    return Ok(Opened {
                        object,
                        range: resolved,
                        bytes,
                    });
                }
                Err(StorageError::NotFound { key }) => {
                    let now = self.catalogue.get_object(&id).await?;
                    if now.location == object.location {
                        return Err(StorageError::Backend {
                            backend: store.to_string(),
                            message: format!("the bytes of object {id} are missing at {key}"),
                        }
                        .into());
                    }
                    object = now;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StorageError::Backend {
            backend: object.tier,
            message: format!("object {id} moved {OPEN_ATTEMPTS} times while being opened"),
        }
        .into())
    }

    /// `bytes` (of `object`, from byte `start` to before `end`), going on at the object's
    /// new location when a move removes the old copy while they are read: a backend that
    /// fetches a large object in parts fails the parts after the removal with `NotFound`,
    /// and the rest of the same version is read from where the move put it.
    fn follow(&self, object: ObjectRecord, start: u64, end: u64, bytes: ByteStream) -> ByteStream {
        struct Reading {
            content: Content,
            object: ObjectRecord,
            next: u64,
            end: u64,
            bytes: ByteStream,
            reopened: usize,
        }
        let reading = Reading {
            content: self.clone(),
            object,
            next: start,
            end,
            bytes,
            reopened: 0,
        };
        Box::pin(futures_util::stream::unfold(
            Some(reading),
            |reading| async move {
                let mut r = reading?;
                loop {
                    match r.bytes.next().await {
                        None => return None,
                        Some(Ok(chunk)) => {
                            r.next += chunk.len() as u64;
                            return Some((Ok(chunk), Some(r)));
                        }
                        Some(Err(e))
                            if e.kind() == io::ErrorKind::NotFound
                                && r.reopened < OPEN_ATTEMPTS =>
                        {
                            r.reopened += 1;
                            match r.content.reopen(&r.object, r.next, r.end).await {
                                Some((object, bytes)) => {
                                    tracing::info!(
                                        object = %object.id, tier = %object.tier, at = r.next,
                                        "a read followed the object to its new tier"
                                    );
                                    r.object = object;
                                    r.bytes = bytes;
                                }
                                None => return Some((Err(e), None)),
                            }
                        }
                        Some(Err(e)) => return Some((Err(e), None)),
                    }
                }
            },
        ))
    }

    /// The bytes from `next` to before `end` of `object`'s content at the place the
    /// catalogue has it now, if it moved (same version) since `object` was read.
    async fn reopen(
        &self,
        object: &ObjectRecord,
        next: u64,
        end: u64,
    ) -> Option<(ObjectRecord, ByteStream)> {
        let now = self.catalogue.get_object(&object.id).await.ok()?;
        if now.version != object.version || now.location == object.location {
            return None;
        }
        let range = ByteRange {
            start: next,
            end: Some(end - 1),
        };
        let bytes = self
            .store(&now.id, &now.tier)
            .ok()?
            .get(&now.location, Some(range), None)
            .await
            .ok()?;
        Some((now, bytes))
    }

    /// Removes the object from the catalogue, then its bytes. The returned row is the
    /// object as it was. Bytes that cannot be removed are logged and left as an orphan
    /// that nothing points at.
    pub async fn delete(&self, id: &str) -> Result<ObjectRecord, ContentError> {
        let object = self.catalogue.delete_object(id).await?;
        self.remove_bytes(&object.tier, &object.location).await;
        tracing::info!(object = %object.id, key = %object.key, tier = %object.tier, "object deleted");
        Ok(object)
    }

    /// Deletes object `id`, created at `created_at`, as expire rule `rule_id` asks:
    /// recorded with the rule, then its bytes removed. `None` when it is gone already or
    /// another object has taken its id.
    pub async fn expire(
        &self,
        id: &str,
        created_at: i64,
        rule_id: &str,
    ) -> Result<Option<ObjectRecord>, ContentError> {
        let Some(object) = self
            .catalogue
            .expire_object(id, created_at, rule_id)
            .await?
        else {
            return Ok(None);
        };
        self.remove_bytes(&object.tier, &object.location).await;
        tracing::info!(object = %object.id, key = %object.key, tier = %object.tier, rule = %rule_id, "object expired by rule");
        Ok(Some(object))
    }

    fn store(&self, id: &str, tier: &str) -> Result<&Store, ContentError> {
        self.tiers
            .store(tier)
            .ok_or_else(|| ContentError::UnknownTier {
                id: id.into(),
                tier: tier.into(),
            })
    }

    /// Removes bytes nothing points at any more; a failure is logged and leaves an
    /// orphan for `strata check`.
    pub async fn remove_bytes(&self, tier: &str, location: &str) {
        let Some(store) = self.tiers.store(tier) else {
            tracing::warn!(%tier, %location, "bytes left behind on an unconfigured tier");
            return;
        };
        if let Err(e) = store.delete(location).await {
            tracing::warn!(%tier, %location, error = %e, "could not remove bytes; they are an orphan now");
        }
    }
}

/// Where the bytes of a new object come from.
enum Source<R> {
    /// Streamed in.
    Body(R),
    /// Concatenated from objects already on the landing tier.
    Parts(Vec<String>),
    /// Written already, at `location` on `tier`.
    Written {
        tier: String,
        location: String,
        digest: Digest,
    },
}

/// What a refused upload is told.
pub fn too_large(max: u64) -> String {
    format!("the object is larger than the {max} bytes allowed (MAX_OBJECT_BYTES)")
}

/// An upload's chunks, failing with `FileTooLarge` past `max` bytes and with `TimedOut`
/// when no chunk arrives for `idle`, so a huge or stalled upload cannot hold a tier
/// write open for ever.
pub fn upload_stream<'a>(
    chunks: impl Stream<Item = io::Result<Bytes>> + Send + 'a,
    max: u64,
    idle: Duration,
) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send + 'a {
    let chunks = Box::pin(chunks);
    let limited = futures_util::stream::unfold(Some((chunks, 0u64)), move |state| async move {
        let (mut chunks, seen) = state?;
        let failure = match tokio::time::timeout(idle, chunks.next()).await {
            Ok(None) => return None,
            Ok(Some(Ok(chunk))) => {
                let seen = seen + chunk.len() as u64;
                if seen <= max {
                    return Some((Ok(chunk), Some((chunks, seen))));
                }
                io::Error::new(io::ErrorKind::FileTooLarge, too_large(max))
            }
            Ok(Some(Err(e))) => e,
            Err(_) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no upload data for {idle:?} (API_REQUEST_TIMEOUT_SECS)"),
            ),
        };
        Some((Err(failure), None))
    });
    Box::pin(limited)
}

/// A failed write of uploaded bytes: the upload's own failure, or the tier's.
fn upload_failure(e: StorageError) -> ContentError {
    match e {
        StorageError::Body(e) => ContentError::Upload(e),
        other => ContentError::Storage(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_stream_stops_past_the_limit_and_on_a_stall() {
        use futures_util::TryStreamExt;
        let chunks = |n: usize| {
            futures_util::stream::iter((0..n).map(|_| Ok(Bytes::from_static(b"0123456789"))))
        };
        let read = |chunks, idle| {
            upload_stream(chunks, 30, idle)
                .try_fold(0, |n, chunk| async move { Ok(n + chunk.len()) })
        };
        let fits = read(chunks(3).boxed(), Duration::from_secs(1)).await;
        assert_eq!(fits.unwrap(), 30);

        let err = read(chunks(4).boxed(), Duration::from_secs(1)).await;
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::FileTooLarge);

        let stalled = chunks(1).chain(futures_util::stream::pending()).boxed();
        let err = read(stalled, Duration::from_millis(50)).await;
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
