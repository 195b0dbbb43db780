//! Operator rules, bulk moves and the objects rules expired, as stored. What a rule
//! means is the policy's business (`policy::rules`); here a rule is its document.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalogue, CatalogueError, Result, RowLock};
use crate::timestamp::now_ms;

/// A rule as stored: its id and its document (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    /// The operator's name for it.
    pub id: String,
    /// The rule, as the API takes it.
    pub document: String,
    /// First stored at, epoch ms.
    pub created_at: i64,
    /// Last replaced at, epoch ms.
    pub updated_at: i64,
}

/// A bulk move as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Batch id (UUIDv7).
    pub id: String,
    /// The request (filter, tier), as the API took it.
    pub document: String,
    /// Where its objects go.
    pub to_tier: String,
    /// Objects queued.
    pub objects_total: i64,
    /// Their bytes.
    pub bytes_total: i64,
    /// Queued at, epoch ms.
    pub created_at: i64,
    /// Cancelled at, epoch ms.
    pub cancelled_at: Option<i64>,
}

/// A batch's moves by where they stand: objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// Moves completed.
    pub done: (i64, i64),
    /// Moves failed.
    pub failed: (i64, i64),
    /// Moves cancelled.
    pub cancelled: (i64, i64),
    /// Moves queued or running.
    pub remaining: (i64, i64),
}

/// An object an expire rule deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredObject {
    /// Its id.
    pub object_id: String,
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: i64,
    /// The tier it was on.
    pub tier: String,
    /// The rule.
    pub rule_id: String,
    /// Created at, epoch ms.
    pub created_at: i64,
    /// Deleted at, epoch ms.
    pub expired_at: i64,
}

impl Catalogue {
    /// Every rule, by id.
    pub async fn rules(&self) -> Result<Vec<RuleRecord>> {
        let rows =
            sqlx::query("SELECT id, document, created_at, updated_at FROM rules ORDER BY id")
                .fetch_all(&self.reads)
                .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Stores rule `id` with `document`, replacing any of that id. Returns the stored
    /// row and whether it is new.
    pub async fn put_rule(&self, id: &str, document: &str) -> Result<(RuleRecord, bool)> {
        let now = now_ms();
        let mut tx = self.writes.begin().await?;
        let sql = format!(
            "SELECT created_at FROM rules WHERE id = $1 {}",
            self.row_lock(RowLock::Exclusive)
        );
        let existing: Option<(i64,)> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let row = match existing {
            Some(_) => {
                sqlx::query(
                    "UPDATE rules SET document = $2, updated_at = $3 WHERE id = $1 \
                     RETURNING id, document, created_at, updated_at",
                )
                .bind(id)
                .bind(document)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
            }
            None => sqlx::query(
                "INSERT INTO rules (id, document, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) RETURNING id, document, created_at, updated_at",
            )
            .bind(id)
            .bind(document)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                CatalogueError::conflict_or(e, || format!("rule {id} was just created"))
            })?,
        };
        tx.commit().await?;
        Ok((rule_from_row(&row)?, existing.is_none()))
    }

    /// Removes rule `id`.
    pub async fn delete_rule(&self, id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM rules WHERE id = $1")
            .bind(id)
            .execute(&self.writes)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(CatalogueError::NotFound {
                kind: "rule",
                id: id.into(),
            });
        }
        Ok(())
    }

    /// Deletes object `id`, created at `created_at`, as rule `rule_id` asks, and records
    /// it; its bytes are the caller's to remove. `None` when the object is gone or was
    /// replaced by a newer one under its id since the rule looked.
    pub async fn expire_object(
        &self,
        id: &str,
        created_at: i64,
        rule_id: &str,
    ) -> Result<Option<super::ObjectRecord>> {
        let mut tx = self.writes.begin().await?;
        let Some(removed) = self.remove_object(&mut tx, id).await? else {
            return Ok(None);
        };
        if removed.created_at != created_at {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO expirations (object_id, bucket, object_key, size, tier, rule_id, \
             created_at, expired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&removed.id)
        .bind(&removed.bucket)
        .bind(&removed.key)
        .bind(removed.size)
        .bind(&removed.tier)
        .bind(rule_id)
        .bind(removed.created_at)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(removed))
    }

    /// The objects rule `rule_id` expired, newest first, up to `limit`.
    pub async fn expirations(&self, rule_id: &str, limit: i64) -> Result<Vec<ExpiredObject>> {
        let rows = sqlx::query(
            "SELECT object_id, bucket, object_key, size, tier, rule_id, created_at, expired_at \
             FROM expirations WHERE rule_id = $1 ORDER BY expired_at DESC LIMIT $2",
        )
        .bind(rule_id)
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredObject {
                    object_id: row.try_get("object_id")?,
                    bucket: row.try_get("bucket")?,
                    key: row.try_get("object_key")?,
                    size: row.try_get("size")?,
                    tier: row.try_get("tier")?,
                    rule_id: row.try_get("rule_id")?,
                    created_at: row.try_get("created_at")?,
                    expired_at: row.try_get("expired_at")?,
                })
            })
            .collect()
    }

    /// Records a bulk move of `objects` objects, `bytes` bytes to `to_tier`, before its
    /// moves are queued with its id.
    pub async fn create_batch(
        &self,
        id: &str,
        document: &str,
        to_tier: &str,
        objects: i64,
        bytes: i64,
    ) -> Result<BatchRecord> {
        let row = sqlx::query(&format!(
            "INSERT INTO move_batches (id, document, to_tier, objects_total, bytes_total, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {BATCH_COLUMNS}"
        ))
        .bind(id)
        .bind(document)
        .bind(to_tier)
        .bind(objects)
        .bind(bytes)
        .bind(now_ms())
        .fetch_one(&self.writes)
        .await?;
        batch_from_row(&row)
    }

    /// Sets what a batch queued, once its moves are.
    pub async fn set_batch_totals(&self, id: &str, objects: i64, bytes: i64) -> Result<()> {
        sqlx::query("UPDATE move_batches SET objects_total = $2, bytes_total = $3 WHERE id = $1")
            .bind(id)
            .bind(objects)
            .bind(bytes)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    /// The batch with this id.
    pub async fn get_batch(&self, id: &str) -> Result<BatchRecord> {
        let row = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM move_batches WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reads)
        .await?
        .ok_or_else(|| CatalogueError::NotFound {
            kind: "batch",
            id: id.into(),
        })?;
        batch_from_row(&row)
    }

    /// Where the batch's moves stand.
    pub async fn batch_progress(&self, id: &str) -> Result<BatchProgress> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(bytes_total), 0) AS BIGINT) \
             FROM migrations WHERE batch_id = $1 GROUP BY status",
        )
        .bind(id)
        .fetch_all(&self.reads)
        .await?;
        let mut progress = BatchProgress::default();
        for (status, objects, bytes) in rows {
            let slot = match status.as_str() {
                "completed" => &mut progress.done,
                "failed" => &mut progress.failed,
                "cancelled" => &mut progress.cancelled,
                _ => &mut progress.remaining,
            };
            slot.0 += objects;
            slot.1 += bytes;
        }
        Ok(progress)
    }

    /// Cancels the batch's moves that have not started; those running finish. Returns
    /// how many were cancelled.
    pub async fn cancel_batch(&self, id: &str) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.writes.begin().await?;
        let marked = sqlx::query(
            "UPDATE move_batches SET cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Err(CatalogueError::NotFound {
                kind: "batch",
                id: id.into(),
            });
        }
        let cancelled = sqlx::query(
            "UPDATE migrations SET status = 'cancelled', finished_at = $2, updated_at = $2 \
             WHERE batch_id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(cancelled)
    }
}

const BATCH_COLUMNS: &str =
    "id, document, to_tier, objects_total, bytes_total, created_at, cancelled_at";

fn rule_from_row(row: &AnyRow) -> Result<RuleRecord> {
    Ok(RuleRecord {
        id: row.try_get("id")?,
        document: row.try_get("document")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn batch_from_row(row: &AnyRow) -> Result<BatchRecord> {
    Ok(BatchRecord {
        id: row.try_get("id")?,
        document: row.try_get("document")?,
        to_tier: row.try_get("to_tier")?,
        objects_total: row.try_get("objects_total")?,
        bytes_total: row.try_get("bytes_total")?,
        created_at: row.try_get("created_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
    })
}
