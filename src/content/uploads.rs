//! The parts of multipart uploads on the tiers, and the object they make.
//!
//! On a tier with multipart uploads of its own (S3) an upload starts one there, each
//! part that fits in memory goes straight into it, and completing the upload completes
//! the tier's: the server puts the object together, as it would for a client of its
//! own. A part too large to hold is stored as an object of its own and copied in by the
//! server. Every part is hashed, as it passes, into the BLAKE3 blocks it will be in the
//! object (assuming the parts before it are as long as it is, as clients cut them), so
//! the object's checksum needs no read-back; a part that turns out to sit elsewhere is
//! read again from the object, alone. On a directory tier parts are files, and the
//! object their concatenation.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use super::{Content, ContentError, Ingested, Source, Upload, upload_failure};
use crate::db::{PartRecord, TierUpload, UploadRecord, new_id};
use crate::storage::tree::{PartTree, TreeHasher, object_checksum};
use crate::storage::{
    ByteRange, ByteStream, Declared, Digest, SentPart, StorageError, Store, UploadedPart,
    body_buffer,
};
use crate::timestamp::now_ms;

impl Content {
    /// Starts, on the landing tier, the multipart upload that the parts of an upload of
    /// `key` in `bucket` go into, when the tier has them; its key is a location of the
    /// object the key names now (or of a new one).
    pub async fn start_tier_upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> Result<Option<TierUpload>, ContentError> {
        let Some(multipart) = self.store(key, &self.landing_tier)?.multipart() else {
            return Ok(None);
        };
        let id = self
            .catalogue
            .find_object_by_key(bucket, key)
            .await?
            .map_or_else(new_id, |object| object.id);
        let location = format!("{id}/{}", new_id());
        let upload_id = multipart.start(&location, content_type).await?;
        Ok(Some(TierUpload {
            key: location,
            id: upload_id,
        }))
    }

    /// Aborts `upload`'s tier upload, if it has one, removing the parts sent into it.
    pub async fn abort_tier_upload(&self, upload: &UploadRecord) {
        if let (Some(tier_upload), Some(store)) =
            (&upload.tier_upload, self.tiers.store(&upload.tier))
            && let Some(multipart) = store.multipart()
        {
            multipart.abort(&tier_upload.key, &tier_upload.id).await;
        }
    }

    /// Stores part `number` of `upload`, with the length and digests the client
    /// `declared` (checked as the body is read), on the upload's tier; returns its
    /// record. Nothing points at its bytes until the caller records it.
    pub async fn put_part(
        &self,
        upload: &UploadRecord,
        number: i32,
        declared: Declared,
        body: impl Stream<Item = io::Result<Bytes>> + Unpin + Send,
    ) -> Result<PartRecord, ContentError> {
        let store = self.store(&upload.id, &upload.tier)?;
        let len = declared.length;
        let offset = u64::try_from(number - 1).unwrap_or(0) * len.unwrap_or(0);
        let mut body = Hashing {
            inner: body,
            tree: TreeHasher::at(offset),
        };
        let into_tier = upload
            .tier_upload
            .as_ref()
            .zip(store.multipart())
            .filter(|(_, multipart)| len.is_some_and(|len| len <= multipart.part_limit()));
        let (location, size, checksum, sent) = match into_tier {
            Some((tier_upload, multipart)) => {
                let limit = multipart.part_limit();
                let mut bytes = body_buffer(len, usize::try_from(limit + 1).unwrap_or(usize::MAX));
                let mut limited = StreamReader::new(&mut body).take(limit + 1);
                while limited
                    .read_buf(&mut bytes)
                    .await
                    .map_err(ContentError::Upload)?
                    > 0
                {}
                if bytes.len() as u64 > limit {
                    return Err(ContentError::Upload(io::Error::other(
                        "the part is longer than it was declared",
                    )));
                }
                let size = bytes.len() as u64;
                let sent = multipart
                    .send_part(
                        &tier_upload.key,
                        &tier_upload.id,
                        number,
                        bytes.freeze(),
                        declared,
                    )
                    .await?;
                let checksum = format!("etag:{}", sent.etag.trim_matches('"'));
                (tier_upload.key.clone(), size, checksum, Some(sent))
            }
            None => {
                let location = format!("{}/{}", upload.id, new_id());
                let digest = store
                    .put(&location, &mut body, "application/octet-stream", declared)
                    .await
                    .map_err(upload_failure)?;
                (location, digest.size, digest.checksum, None)
            }
        };
        let tree = body.tree.map(TreeHasher::finish);
        let (tier_etag, tier_crc32c) = sent.map(|s| (s.etag, s.crc32c)).unzip();
        Ok(PartRecord {
            part_number: i64::from(number),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            checksum,
            location,
            created_at: now_ms(),
            tier_etag,
            tier_crc32c: tier_crc32c.flatten(),
            tree: tree.map(|tree| (i64::try_from(tree.offset).unwrap_or(-1), tree.cvs_hex())),
        })
    }

    /// Makes the object `target` of `upload`'s `parts`, in order (their sizes checked
    /// by the caller). The parts' own bytes are the caller's to remove afterwards.
    pub async fn complete_upload(
        &self,
        upload: &UploadRecord,
        parts: &[PartRecord],
        target: Upload,
    ) -> Result<Ingested, ContentError> {
        let store = self.store(&upload.id, &upload.tier)?;
        let total: u64 = parts
            .iter()
            .map(|p| u64::try_from(p.size).unwrap_or(0))
            .sum();
        let tier_upload = upload.tier_upload.as_ref().zip(store.multipart());
        if total == 0 {
            // Nothing to put together (S3 cannot copy an empty part).
            self.abort_tier_upload(upload).await;
            return self.ingest(target, futures_util::stream::empty()).await;
        }
        let Some((tier_upload, multipart)) = tier_upload else {
            let locations = parts.iter().map(|p| p.location.clone()).collect();
            return self.assemble(target, &upload.tier, locations).await;
        };
        let named = parts
            .iter()
            .map(|part| {
                let number = i32::try_from(part.part_number).unwrap_or(0);
                match &part.tier_etag {
                    Some(etag) => UploadedPart::Sent {
                        number,
                        part: SentPart {
                            etag: etag.clone(),
                            crc32c: part.tier_crc32c.clone(),
                        },
                    },
                    None => UploadedPart::Stored {
                        number,
                        location: part.location.clone(),
                    },
                }
            })
            .collect();
        multipart
            .finish(&tier_upload.key, &tier_upload.id, named)
            .await?;
        let made = match object_digest(store, &tier_upload.key, parts, total).await {
            Ok(digest) => {
                self.store_new(
                    target,
                    Source::<ByteStream>::Written {
                        tier: upload.tier.clone(),
                        location: tier_upload.key.clone(),
                        digest,
                    },
                )
                .await
            }
            Err(e) => Err(e.into()),
        };
        if made.is_err() {
            self.remove_bytes(&upload.tier, &tier_upload.key).await;
        }
        made
    }
}

/// Size and checksum of the object at `key`, made of `parts` (`total` bytes): put
/// together from the parts' trees, re-reading only the parts hashed at another offset
/// than they have; read whole when the parts do not fit BLAKE3's blocks.
async fn object_digest(
    store: &Store,
    key: &str,
    parts: &[PartRecord],
    total: u64,
) -> Result<Digest, StorageError> {
    let mut trees = Vec::with_capacity(parts.len());
    let mut offset = 0;
    for part in parts {
        let len = u64::try_from(part.size).unwrap_or(0);
        let stored = part.tree.as_ref().and_then(|(at, cvs)| {
            PartTree::from_hex(u64::try_from(*at).ok()?, len, cvs).filter(|t| t.offset == offset)
        });
        let tree = match (stored, TreeHasher::at(offset)) {
            (Some(tree), _) => tree,
            (None, Some(hasher)) => rehash(store, key, offset, len, hasher).await?,
            (None, None) => break,
        };
        trees.push(tree);
        offset += len;
    }
    let digest = match (trees.len() == parts.len())
        .then(|| object_checksum(&trees))
        .flatten()
    {
        Some(checksum) => Digest {
            size: store.size(key).await?,
            checksum,
        },
        None => store.digest(key).await?,
    };
    if digest.size != total {
        return Err(StorageError::Backend {
            backend: store.to_string(),
            message: format!(
                "{key} holds {} bytes where its parts had {total}",
                digest.size
            ),
        });
    }
    Ok(digest)
}

/// The tree of the `len` bytes at `offset` of the object at `key`.
async fn rehash(
    store: &Store,
    key: &str,
    offset: u64,
    len: u64,
    mut hasher: TreeHasher,
) -> Result<PartTree, StorageError> {
    if len == 0 {
        return Ok(hasher.finish());
    }
    let range = ByteRange {
        start: offset,
        end: Some(offset + len - 1),
    };
    let mut bytes = store.get(key, Some(range), None).await?;
    while let Some(chunk) = bytes.next().await {
        hasher.update(&chunk.map_err(StorageError::Body)?);
    }
    Ok(hasher.finish())
}

/// Chunks that are hashed, as they pass, into a part's tree.
struct Hashing<S> {
    inner: S,
    tree: Option<TreeHasher>,
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for Hashing<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some(tree)) = (&polled, &mut self.tree) {
            tree.update(chunk);
        }
        polled
    }
}
