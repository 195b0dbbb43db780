//! Bounded history: access buckets and finished moves older than their retention are
//! removed, a small batch per statement so that no lock is held for long, and the
//! tables' sizes for `/metrics`.

use super::access::{HOUR_MS, MINUTE_MS};
use super::{Backend, Catalogue, Result};

/// What to remove: everything that started (buckets) or finished (moves, expirations)
/// before these times, epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Minute buckets starting before this (only those rolled up into hours already).
    pub minute_buckets_before: i64,
    /// Hour buckets starting before this.
    pub hour_buckets_before: i64,
    /// Moves finished before this, and objects expired before it; `None`: kept.
    pub finished_before: Option<i64>,
}

/// Rows one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Minute buckets.
    pub minute_rows: u64,
    /// Hour buckets.
    pub hour_rows: u64,
    /// Finished moves and expiration records.
    pub finished_rows: u64,
}

/// A table's size, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// The table.
    pub table: &'static str,
    /// Rows: counted on SQLite, PostgreSQL's estimate (as of its last analyze) there.
    pub rows: i64,
    /// Bytes with indexes (PostgreSQL only).
    pub bytes: Option<i64>,
}

/// The tables that grow with objects and time.
const MEASURED: [&str; 5] = [
    "objects",
    "access_buckets",
    "migrations",
    "predictions",
    "expirations",
];

impl Catalogue {
    /// Removes what `retention` lets go, `batch` rows per statement. Minute buckets are
    /// removed only once rolled up into their hours (totals and hours keep them), and a
    /// move only once nothing is left to clean up after it (a completed move whose
    /// source is not deleted yet, a failed one whose copy is not removed yet).
    pub async fn apply_retention(&self, retention: &Retention, batch: i64) -> Result<Removed> {
        let mark: Option<i64> =
            sqlx::query_scalar("SELECT rolled_before FROM access_rollup WHERE id = 1")
                .fetch_one(&self.reads)
                .await?;
        let bucket = |resolution: i64| {
            format!(
                "DELETE FROM access_buckets WHERE (object_id, resolution_ms, bucket_start) IN \
                 (SELECT object_id, resolution_ms, bucket_start FROM access_buckets \
                  WHERE resolution_ms = {resolution} AND bucket_start < $1 LIMIT $2)"
            )
        };
        let mut removed = Removed::default();
        if let Some(mark) = mark {
            let before = retention.minute_buckets_before.min(mark);
            removed.minute_rows = self
                .delete_batches(&bucket(MINUTE_MS), before, batch)
                .await?;
        }
        removed.hour_rows = self
            .delete_batches(&bucket(HOUR_MS), retention.hour_buckets_before, batch)
            .await?;
        if let Some(before) = retention.finished_before {
            removed.finished_rows = self
                .delete_batches(
                    "DELETE FROM migrations WHERE id IN (SELECT id FROM migrations \
                     WHERE finished_at < $1 \
                       AND ((status = 'completed' AND source_deleted = 1) \
                         OR (status IN ('failed', 'cancelled') AND dest_location IS NULL)) \
                     LIMIT $2)",
                    before,
                    batch,
                )
                .await?
                + self
                    .delete_batches(
                        "DELETE FROM expirations WHERE object_id IN (SELECT object_id \
                         FROM expirations WHERE expired_at < $1 LIMIT $2)",
                        before,
                        batch,
                    )
                    .await?;
        }
        Ok(removed)
    }

    /// Runs `sql` (a delete of up to `$2` rows older than `$1`) until it removes fewer
    /// than `batch`; each run its own short transaction.
    async fn delete_batches(&self, sql: &str, before: i64, batch: i64) -> Result<u64> {
        let mut removed = 0;
        loop {
            let n = sqlx::query(sql)
                .bind(before)
                .bind(batch)
                .execute(&self.writes)
                .await?
                .rows_affected();
            removed += n;
            if n < u64::try_from(batch).unwrap_or(u64::MAX) {
                return Ok(removed);
            }
        }
    }

    /// Rows and bytes of the tables that grow.
    pub async fn table_sizes(&self) -> Result<Vec<TableSize>> {
        let mut sizes = Vec::with_capacity(MEASURED.len());
        for table in MEASURED {
            let size = match self.backend {
                Backend::Postgres => {
                    let (rows, bytes): (i64, i64) = sqlx::query_as(
                        "SELECT CAST(GREATEST(reltuples, 0) AS BIGINT), \
                         CAST(pg_total_relation_size(oid) AS BIGINT) \
                         FROM pg_class WHERE oid = CAST(CAST($1 AS TEXT) AS regclass)",
                    )
                    .bind(table)
                    .fetch_one(&self.reads)
                    .await?;
                    TableSize {
                        table,
                        rows,
                        bytes: Some(bytes),
                    }
                }
                Backend::Sqlite => TableSize {
                    table,
                    rows: sqlx::query_scalar(&format!(
                        "SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"
                    ))
                    .fetch_one(&self.reads)
                    .await?,
                    bytes: None,
                },
            };
            sizes.push(size);
        }
        Ok(sizes)
    }
}
