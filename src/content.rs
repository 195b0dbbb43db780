//! Object content across the tiers: ingest onto the landing tier, reads from wherever
//! an object is now, deletes. The catalogue and the tiers are kept consistent in one
//! direction only: bytes are written before a row points at them, and a row stops
//! pointing at bytes before they are removed.

use std::io;
use std::sync::Arc;

use tokio::io::AsyncRead;

use crate::db::{Catalogue, CatalogueError, NewObject, ObjectContent, ObjectRecord, new_id};
use crate::storage::{ByteRange, ByteStream, StorageError, Store, Tiers};

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
    /// Reading the uploaded body failed; the kind tells why (the reader's own limits
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
    /// Catalogue key; `None` names the object by its new id.
    pub key: Option<String>,
    /// MIME type to keep with it.
    pub content_type: String,
    /// Whether an object already under `key` gets the new content (a new version) rather
    /// than the upload being refused as a conflict.
    pub overwrite: bool,
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
        body: impl AsyncRead + Unpin + Send,
    ) -> Result<Ingested, ContentError> {
        if let Some(key) = &upload.key {
            crate::storage::validate_key(key)?;
        }
        let existing = match &upload.key {
            Some(key) => self.catalogue.find_object_by_key(key).await?,
            None => None,
        };
        if let Some(existing) = &existing
            && !upload.overwrite
        {
            return Err(CatalogueError::Conflict(format!(
                "an object with key {:?} exists ({}); pass overwrite=true to replace its content",
                existing.key, existing.id
            ))
            .into());
        }
        let id = existing
            .as_ref()
            .map_or_else(new_id, |object| object.id.clone());
        let location = format!("{id}/{}", new_id());
        let store = self.store(&id, &self.landing_tier)?;
        let digest = store
            .put(&location, body, &upload.content_type)
            .await
            .map_err(|e| match e {
                StorageError::Body(e) => ContentError::Upload(e),
                other => ContentError::Storage(other),
            })?;
        let content = ObjectContent {
            size: digest.size as i64,
            content_type: upload.content_type,
            checksum: digest.checksum,
            tier: self.landing_tier.clone(),
            location: location.clone(),
        };
        let catalogued = match &existing {
            None => self
                .catalogue
                .insert_object(&NewObject {
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
                self.remove_bytes(&self.landing_tier, &location).await;
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
        let mut object = self.catalogue.get_object(id).await?;
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
            match store.get(&object.location, byte_range).await {
                Ok(bytes) => {
                    return Ok(Opened {
                        object,
                        range: resolved,
                        bytes,
                    });
                }
                Err(StorageError::NotFound { key }) => {
                    let now = self.catalogue.get_object(id).await?;
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

    /// Removes the object from the catalogue, then its bytes. The returned row is the
    /// object as it was. Bytes that cannot be removed are logged and left as an orphan
    /// that nothing points at.
    pub async fn delete(&self, id: &str) -> Result<ObjectRecord, ContentError> {
        let object = self.catalogue.delete_object(id).await?;
        self.remove_bytes(&object.tier, &object.location).await;
        tracing::info!(object = %object.id, key = %object.key, tier = %object.tier, "object deleted");
        Ok(object)
    }

    fn store(&self, id: &str, tier: &str) -> Result<&Store, ContentError> {
        self.tiers
            .store(tier)
            .ok_or_else(|| ContentError::UnknownTier {
                id: id.into(),
                tier: tier.into(),
            })
    }

    async fn remove_bytes(&self, tier: &str, location: &str) {
        let Some(store) = self.tiers.store(tier) else {
            tracing::warn!(%tier, %location, "bytes left behind on an unconfigured tier");
            return;
        };
        if let Err(e) = store.delete(location).await {
            tracing::warn!(%tier, %location, error = %e, "could not remove bytes; they are an orphan now");
        }
    }
}
