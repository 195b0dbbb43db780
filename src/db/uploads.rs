//! Multipart uploads in progress through the S3 endpoint and the parts they hold.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::objects::{Metadata, metadata_from_json, metadata_json};
use super::{Catalogue, CatalogueError, Result, RowLock};

const UPLOAD_COLUMNS: &str =
    "id, bucket, object_key, content_type, metadata, tier, created_at, tier_key, tier_upload_id";
const PART_COLUMNS: &str =
    "part_number, size, checksum, location, created_at, tier_etag, tier_crc32c, tree_offset, tree";

/// A multipart upload that has been started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Upload id, as the client names it.
    pub id: String,
    /// Bucket of the object it makes.
    pub bucket: String,
    /// Key of the object it makes.
    pub key: String,
    /// MIME type of that object.
    pub content_type: String,
    /// Its user metadata.
    pub metadata: Metadata,
    /// Tier the parts are stored on.
    pub tier: String,
    /// When it started, epoch ms.
    pub created_at: i64,
    /// The multipart upload on the tier that parts pass straight into, when the tier
    /// has them (S3).
    pub tier_upload: Option<TierUpload>,
}

/// A multipart upload on a tier, which completes into the object's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierUpload {
    /// The key it writes, the object's location once complete.
    pub key: String,
    /// Its id on the tier.
    pub id: String,
}

impl UploadRecord {
    fn from_row(row: &AnyRow) -> Result<UploadRecord, sqlx::Error> {
        Ok(UploadRecord {
            id: row.try_get("id")?,
            bucket: row.try_get("bucket")?,
            key: row.try_get("object_key")?,
            content_type: row.try_get("content_type")?,
            metadata: metadata_from_json(&row.try_get::<String, _>("metadata")?)?,
            tier: row.try_get("tier")?,
            created_at: row.try_get("created_at")?,
            tier_upload: match (
                row.try_get::<Option<String>, _>("tier_key")?,
                row.try_get::<Option<String>, _>("tier_upload_id")?,
            ) {
                (Some(key), Some(id)) => Some(TierUpload { key, id }),
                _ => None,
            },
        })
    }
}

/// One stored part of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// Its number, 1 to 10,000.
    pub part_number: i64,
    /// Its size in bytes.
    pub size: i64,
    /// Checksum of its bytes (its ETag).
    pub checksum: String,
    /// Where its bytes are on the upload's tier: an object of its own, or the tier
    /// upload's key when it went into the tier upload.
    pub location: String,
    /// When it was stored, epoch ms.
    pub created_at: i64,
    /// The tier's ETag of it when it went into the upload's tier upload.
    pub tier_etag: Option<String>,
    /// The CRC32C (base64) it went there with.
    pub tier_crc32c: Option<String>,
    /// The BLAKE3 chaining values of its blocks as hex, hashed as if the part began
    /// at the offset given first.
    pub tree: Option<(i64, String)>,
}

impl PartRecord {
    fn from_row(row: &AnyRow) -> Result<PartRecord, sqlx::Error> {
        Ok(PartRecord {
            part_number: row.try_get("part_number")?,
            size: row.try_get("size")?,
            checksum: row.try_get("checksum")?,
            location: row.try_get("location")?,
            created_at: row.try_get("created_at")?,
            tier_etag: row.try_get("tier_etag")?,
            tier_crc32c: row.try_get("tier_crc32c")?,
            tree: match (
                row.try_get::<Option<i64>, _>("tree_offset")?,
                row.try_get::<Option<String>, _>("tree")?,
            ) {
                (Some(offset), Some(cvs)) => Some((offset, cvs)),
                _ => None,
            },
        })
    }
}

fn no_such_upload(id: &str) -> CatalogueError {
    CatalogueError::NotFound {
        kind: "upload",
        id: id.into(),
    }
}

impl Catalogue {
    /// Records a started upload.
    pub async fn insert_upload(&self, upload: &UploadRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&upload.id)
        .bind(&upload.bucket)
        .bind(&upload.key)
        .bind(&upload.content_type)
        .bind(metadata_json(&upload.metadata))
        .bind(&upload.tier)
        .bind(upload.created_at)
        .bind(upload.tier_upload.as_ref().map(|t| t.key.as_str()))
        .bind(upload.tier_upload.as_ref().map(|t| t.id.as_str()))
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// The upload with this id.
    pub async fn get_upload(&self, id: &str) -> Result<UploadRecord> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reads)
        .await?
        .ok_or_else(|| no_such_upload(id))?;
        Ok(UploadRecord::from_row(&row)?)
    }

    /// Records a stored part; returns the part it replaces (same number), whose bytes
    /// nothing points at any more. Fails with `NotFound` when the upload was completed
    /// or aborted meanwhile: its parts are being removed, so this one must not stay.
    pub async fn insert_part(
        &self,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<Option<PartRecord>> {
        let mut tx = self.writes.begin().await?;
        // Holding the upload row keeps a completion or abort from removing the parts
        // before this one is among them.
        let lock = self.row_lock(RowLock::Share);
        sqlx::query(&format!("SELECT id FROM uploads WHERE id = $1 {lock}"))
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| no_such_upload(upload_id))?;
        let replaced = sqlx::query(&format!(
            "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = $1 AND part_number = $2"
        ))
        .bind(upload_id)
        .bind(part.part_number)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| PartRecord::from_row(&row))
        .transpose()?;
        sqlx::query(&format!(
            "INSERT INTO upload_parts (upload_id, {PART_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, \
               checksum = excluded.checksum, location = excluded.location, \
               created_at = excluded.created_at, tier_etag = excluded.tier_etag, \
               tier_crc32c = excluded.tier_crc32c, \
               tree_offset = excluded.tree_offset, tree = excluded.tree",
        ))
        .bind(upload_id)
        .bind(part.part_number)
        .bind(part.size)
        .bind(&part.checksum)
        .bind(&part.location)
        .bind(part.created_at)
        .bind(part.tier_etag.as_deref())
        .bind(part.tier_crc32c.as_deref())
        .bind(part.tree.as_ref().map(|(offset, _)| *offset))
        .bind(part.tree.as_ref().map(|(_, cvs)| cvs.as_str()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// The upload's parts in part-number order.
    pub async fn upload_parts(&self, upload_id: &str) -> Result<Vec<PartRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PART_COLUMNS} FROM upload_parts WHERE upload_id = $1 ORDER BY part_number"
        ))
        .bind(upload_id)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(PartRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Removes the upload and its parts' rows; returns the parts, whose bytes the caller
    /// removes. `NotFound` when it is gone already.
    pub async fn delete_upload(&self, id: &str) -> Result<Vec<PartRecord>> {
        let mut tx = self.writes.begin().await?;
        let deleted = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(no_such_upload(id));
        }
        let rows = sqlx::query(&format!(
            "DELETE FROM upload_parts WHERE upload_id = $1 RETURNING {PART_COLUMNS}"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut parts = rows
            .iter()
            .map(PartRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// Uploads started before `before` (epoch ms) that have stored no part since.
    pub async fn idle_uploads(&self, before: i64) -> Result<Vec<UploadRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads u WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM upload_parts p WHERE p.upload_id = u.id AND p.created_at >= $1)"
        ))
        .bind(before)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(UploadRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// `(tier, location)` of every stored part of an upload in progress.
    pub async fn copies_in_uploads(&self) -> Result<HashSet<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.tier, p.location FROM upload_parts p JOIN uploads u ON u.id = p.upload_id",
        )
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.into_iter().collect())
    }
}
